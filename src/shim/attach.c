/* Attach clients (a control client after ATTACH, PROTOCOL.md): frames of the
 * container's output to them, their stdin and resize frames to the container. */
#include "attach.h"

#include "cli.h"
#include "ctrl.h"
#include "diag.h"
#include "io.h"
#include "shim.h"

#include <stdint.h>

void client_send(int idx, enum shim_frame_type type, const void *data, size_t len)
{
	struct client *c = clients[idx];
	uint8_t hdr[SHIM_FRAME_HDR];
	shim_frame_header(hdr, type, (uint32_t)len);
	if (obuf_append(&c->out, hdr, sizeof(hdr), CLIENT_OUT_LIMIT) < 0 ||
	    obuf_append(&c->out, data, len, CLIENT_OUT_LIMIT) < 0) {
		diag("dropping slow attach client");
		client_free(idx);
	}
}

void fan_out(enum shim_frame_type type, const char *data, size_t len)
{
	unsigned want = type == SHIM_FRAME_STDOUT ? SHIM_ATTACH_STDOUT : SHIM_ATTACH_STDERR;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c && c->mode == CLIENT_ATTACH && !c->closing && (c->flags & want)) {
			for (size_t off = 0; off < len && clients[i]; off += SHIM_FRAME_MAX) {
				size_t chunk = len - off < SHIM_FRAME_MAX ? len - off : SHIM_FRAME_MAX;
				client_send(i, type, data + off, chunk);
			}
		}
	}
}

void handle_frame(int idx, const struct shim_frame *f)
{
	struct client *c = clients[idx];
	const char *err;
	switch (f->type) {
	case SHIM_FRAME_STDIN:
		if ((c->flags & SHIM_ATTACH_STDIN) && stdin_fd >= 0 && !stdin_closing && f->len > 0) {
			if (obuf_append(&stdin_buf, f->payload, f->len, SIZE_MAX) < 0)
				diag("stdin buffer: out of memory");
			stdin_flush();
		}
		break;
	case SHIM_FRAME_RESIZE:
		do_resize(f->width, f->height, &err);
		break;
	case SHIM_FRAME_STDIN_EOF:
		if ((c->flags & SHIM_ATTACH_STDIN) && opt.stdin_once && stdin_fd >= 0) {
			stdin_once_used = stdin_closing = 1;
			stdin_flush();
		}
		break;
	default:
		break;
	}
}
