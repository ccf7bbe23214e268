/* Control-protocol parsing for berth-shim. Pure functions over byte buffers so
 * the fuzzer can drive them; see PROTOCOL.md for the format. */
#include "proto.h"

#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* Splits line into at most max tokens; returns the count or -1 if too many. */
static int tokenize(const char *line, size_t len, const char **tok, size_t *tlen, int max)
{
	int n = 0;
	size_t i = 0;
	while (i < len) {
		while (i < len && is_space(line[i]))
			i++;
		if (i == len)
			break;
		if (n == max)
			return -1;
		tok[n] = line + i;
		size_t start = i;
		while (i < len && !is_space(line[i]))
			i++;
		tlen[n] = i - start;
		n++;
	}
	return n;
}

static int tok_eq(const char *t, size_t tl, const char *word)
{
	size_t wl = strlen(word);
	return tl == wl && memcmp(t, word, wl) == 0;
}

/* Decimal in [0, 65535], no sign, no leading junk. */
static int parse_u16(const char *t, size_t tl, unsigned *out)
{
	if (tl == 0 || tl > 5)
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < tl; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(t[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = v;
	return 0;
}

int shim_parse_command(const char *line, size_t len, struct shim_cmd *out, const char **err)
{
	const char *tok[5];
	size_t tlen[5];
	int n;

	memset(out, 0, sizeof(*out));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > SHIM_CMD_MAX) {
		*err = "command too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 && c != '\t') {
			*err = "control character in command";
			return -1;
		}
	}
	n = tokenize(line, len, tok, tlen, 5);
	if (n < 0) {
		*err = "too many arguments";
		return -1;
	}
	if (n == 0) {
		*err = "empty command";
		return -1;
	}
#define NOARGS(name, k)                                      \
	if (tok_eq(tok[0], tlen[0], name)) {                 \
		if (n != 1) {                                \
			*err = name " takes no arguments";   \
			return -1;                           \
		}                                            \
		out->kind = k;                               \
		return 0;                                    \
	}
	NOARGS("STATE", SHIM_CMD_STATE)
	NOARGS("REOPEN", SHIM_CMD_REOPEN)
	NOARGS("CLOSE_STDIN", SHIM_CMD_CLOSE_STDIN)
	NOARGS("WAIT", SHIM_CMD_WAIT)
	NOARGS("START", SHIM_CMD_START)
#undef NOARGS
	if (tok_eq(tok[0], tlen[0], "RESIZE")) {
		if (n != 3 || parse_u16(tok[1], tlen[1], &out->width) < 0 ||
		    parse_u16(tok[2], tlen[2], &out->height) < 0) {
			*err = "usage: RESIZE <width> <height> (0-65535)";
			return -1;
		}
		out->kind = SHIM_CMD_RESIZE;
		return 0;
	}
	if (tok_eq(tok[0], tlen[0], "ATTACH")) {
		out->kind = SHIM_CMD_ATTACH;
		for (int i = 1; i < n; i++) {
			unsigned f;
			if (tok_eq(tok[i], tlen[i], "stdin"))
				f = SHIM_ATTACH_STDIN;
			else if (tok_eq(tok[i], tlen[i], "stdout"))
				f = SHIM_ATTACH_STDOUT;
			else if (tok_eq(tok[i], tlen[i], "stderr"))
				f = SHIM_ATTACH_STDERR;
			else {
				*err = "usage: ATTACH [stdin] [stdout] [stderr]";
				return -1;
			}
			if (out->attach_flags & f) {
				*err = "duplicate ATTACH stream";
				return -1;
			}
			out->attach_flags |= f;
		}
		if (out->attach_flags == 0) {
			*err = "ATTACH needs at least one of stdin, stdout, stderr";
			return -1;
		}
		return 0;
	}
	*err = "unknown command";
	return -1;
}

long shim_frame_next(const uint8_t *buf, size_t len, struct shim_frame *out)
{
	if (len < SHIM_FRAME_HDR)
		return 0;
	uint32_t plen = ((uint32_t)buf[1] << 24) | ((uint32_t)buf[2] << 16) | ((uint32_t)buf[3] << 8) | buf[4];
	if (plen > SHIM_FRAME_MAX)
		return -1;
	memset(out, 0, sizeof(*out));
	switch (buf[0]) {
	case SHIM_FRAME_STDIN:
		break;
	case SHIM_FRAME_RESIZE:
		if (plen != 4)
			return -1;
		break;
	case SHIM_FRAME_STDIN_EOF:
		if (plen != 0)
			return -1;
		break;
	default:
		return -1;
	}
	if (len - SHIM_FRAME_HDR < plen)
		return 0;
	out->type = (enum shim_frame_type)buf[0];
	out->payload = buf + SHIM_FRAME_HDR;
	out->len = plen;
	if (out->type == SHIM_FRAME_RESIZE) {
		out->width = ((unsigned)out->payload[0] << 8) | out->payload[1];
		out->height = ((unsigned)out->payload[2] << 8) | out->payload[3];
	}
	return (long)(SHIM_FRAME_HDR + plen);
}

void shim_frame_header(uint8_t hdr[SHIM_FRAME_HDR], enum shim_frame_type type, uint32_t len)
{
	hdr[0] = (uint8_t)type;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}
