/* Growable output buffers: bytes queued for a non-blocking fd (attach and
 * control clients, the container's stdin). */
#ifndef BERTH_SHIM_OBUF_H
#define BERTH_SHIM_OBUF_H

#include <stddef.h>

struct obuf {
	char *data;
	size_t off, len, cap;
};

/* Appends len bytes; -1 when more than limit bytes would be pending or on
 * out of memory. */
int obuf_append(struct obuf *b, const void *data, size_t len, size_t limit);
size_t obuf_pending(const struct obuf *b);
int obuf_flush(struct obuf *b, int fd);
void obuf_free(struct obuf *b);

#endif
