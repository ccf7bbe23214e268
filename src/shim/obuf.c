/* Output buffers (obuf.h): queue bytes, write what a non-blocking fd takes. */
#include "obuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int obuf_append(struct obuf *b, const void *data, size_t len, size_t limit)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len - b->off + len > limit)
		return -1;
	if (b->len + len > b->cap) {
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + len > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + len)
				cap *= 2;
			char *d = realloc(b->data, cap);
			if (!d)
				return -1;
			b->data = d;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

size_t obuf_pending(const struct obuf *b) { return b->len - b->off; }

/* Writes what the fd accepts; returns -1 on a fatal write error. */
int obuf_flush(struct obuf *b, int fd)
{
	while (obuf_pending(b) > 0) {
		ssize_t n = write(fd, b->data + b->off, obuf_pending(b));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		b->off += (size_t)n;
	}
	b->off = b->len = 0;
	return 0;
}

void obuf_free(struct obuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
