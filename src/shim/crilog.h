/* Splits a byte stream into kubelet CRI log records:
 *   <RFC3339Nano UTC> <stdout|stderr> <P|F> <content>\n
 * A complete line becomes one F record (its "\n" and a "\r" before it are
 * dropped); a line longer than max bytes is cut into P records of max bytes
 * followed by the F record with the rest; a line the end of the stream cuts
 * off is a last P record. */
#ifndef BERTH_SHIM_CRILOG_H
#define BERTH_SHIM_CRILOG_H

#include <stddef.h>

typedef void (*crilog_emit_fn)(void *ctx, const char *stream, char tag, const char *data, size_t len);

struct crilog_stream {
	const char *name; /* "stdout" or "stderr" */
	char *buf;        /* pending bytes of an unfinished line, capacity max; made for the first one */
	size_t len;
	size_t max;
	crilog_emit_fn emit;
	void *ctx;
};

/* -1 when max is 0. */
int crilog_init(struct crilog_stream *s, const char *name, size_t max, crilog_emit_fn emit, void *ctx);
void crilog_feed(struct crilog_stream *s, const char *data, size_t len);
/* End of stream: an unfinished line is emitted as a P record. */
void crilog_flush(struct crilog_stream *s);
void crilog_free(struct crilog_stream *s);

/* Formats the current CLOCK_REALTIME as 2006-01-02T15:04:05.000000000Z into
 * out (at least 31 bytes); returns the length. */
size_t crilog_timestamp(char *out, size_t cap);

#endif
