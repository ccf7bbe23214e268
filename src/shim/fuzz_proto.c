/* libFuzzer target for the control protocol: the first byte picks the parser
 * (command line, attach frames, CRI log splitting), the rest is the input. */
#include "crilog.h"
#include "proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t emitted;

static void count_emit(void *ctx, const char *stream, char tag, const char *data, size_t len)
{
	(void)ctx;
	(void)stream;
	if (tag != 'P' && tag != 'F')
		abort();
	/* Touch every byte so ASan checks the bounds. */
	for (size_t i = 0; i < len; i++)
		emitted += (unsigned char)data[i] == '\n';
	if (emitted)
		abort(); /* content never contains a newline */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	switch (mode % 3) {
	case 0: {
		/* Heap copy so reads past the line are caught. */
		char *line = malloc(size ? size : 1);
		if (!line)
			return 0;
		memcpy(line, data, size);
		struct shim_cmd cmd;
		const char *err = NULL;
		if (shim_parse_command(line, size, &cmd, &err) < 0 && !err)
			abort();
		free(line);
		break;
	}
	case 1: {
		size_t pos = 0;
		while (pos < size) {
			struct shim_frame f;
			long r = shim_frame_next(data + pos, size - pos, &f);
			if (r <= 0)
				break;
			if ((size_t)r > size - pos || f.len + SHIM_FRAME_HDR != (size_t)r)
				abort();
			pos += (size_t)r;
		}
		break;
	}
	case 2: {
		struct crilog_stream s;
		size_t max = 1 + (mode >> 2) % 64;
		if (crilog_init(&s, "stdout", max, count_emit, NULL) < 0)
			return 0;
		size_t half = size / 2;
		crilog_feed(&s, (const char *)data, half);
		crilog_feed(&s, (const char *)data + half, size - half);
		crilog_flush(&s);
		crilog_free(&s);
		break;
	}
	}
	return 0;
}
