/* CRI log line splitting; see crilog.h. */
#include "crilog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int crilog_init(struct crilog_stream *s, const char *name, size_t max, crilog_emit_fn emit, void *ctx)
{
	memset(s, 0, sizeof(*s));
	if (max == 0)
		return -1;
	s->name = name;
	s->max = max;
	s->emit = emit;
	s->ctx = ctx;
	return 0;
}

static void emit_line(struct crilog_stream *s, const char *data, size_t len, char tag)
{
	if (tag == 'F' && len > 0 && data[len - 1] == '\r')
		len--;
	s->emit(s->ctx, s->name, tag, data, len);
}

void crilog_feed(struct crilog_stream *s, const char *data, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl ? (size_t)(nl - data) : len;
		/* Fill the pending buffer; every time it is full, emit a partial. */
		while (s->len + seg >= s->max && !(nl && s->len + seg == s->max)) {
			size_t take = s->max - s->len;
			if (s->len == 0) {
				emit_line(s, data, take, 'P');
			} else {
				memcpy(s->buf + s->len, data, take);
				emit_line(s, s->buf, s->max, 'P');
				s->len = 0;
			}
			data += take;
			len -= take;
			seg -= take;
		}
		if (!nl) {
			if (seg == 0)
				return;
			/* The buffer is made for the first unfinished line: most
			 * containers only ever write whole ones. Without memory
			 * the piece goes out at once as a partial. */
			if (!s->buf)
				s->buf = malloc(s->max);
			if (!s->buf) {
				emit_line(s, data, seg, 'P');
				return;
			}
			memcpy(s->buf + s->len, data, seg);
			s->len += seg;
			return;
		}
		if (s->len == 0) {
			emit_line(s, data, seg, 'F');
		} else {
			memcpy(s->buf + s->len, data, seg);
			emit_line(s, s->buf, s->len + seg, 'F');
			s->len = 0;
		}
		data += seg + 1;
		len -= seg + 1;
	}
}

void crilog_flush(struct crilog_stream *s)
{
	/* The line never ended: say so with P, as the kubelet expects (it
	 * does not invent the newline the container did not write). */
	if (s->len > 0) {
		emit_line(s, s->buf, s->len, 'P');
		s->len = 0;
	}
}

void crilog_free(struct crilog_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
}

size_t crilog_timestamp(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	int m = snprintf(out + n, cap - n, ".%09ldZ", (long)ts.tv_nsec);
	if (m < 0 || (size_t)m >= cap - n)
		return n;
	return n + (size_t)m;
}
