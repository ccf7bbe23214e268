/* The control protocol server on <state-dir>/ctl.sock (PROTOCOL.md; parsing
 * in proto.c): accepting clients, reading their commands, replying. */
#include "ctrl.h"

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "io.h"
#include "proto.h"
#include "release.h"
#include "shim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A command client's input holds one command line and its '\n' (a longer
 * one is refused); an attach client's, one whole frame. Only attach needs the
 * 32 KiB, so the buffer grows on ATTACH: a WAIT connection, which berthd
 * keeps open for the container's life, holds a small one. */
#define CLIENT_CMD_IN_CAP (SHIM_CMD_MAX + 1)
#define CLIENT_ATTACH_IN_CAP (SHIM_FRAME_HDR + SHIM_FRAME_MAX)

struct client *clients[MAX_CLIENTS];

void client_free(int idx)
{
	struct client *c = clients[idx];
	if (!c)
		return;
	if (c->mode == CLIENT_ATTACH && (c->flags & SHIM_ATTACH_STDIN) && opt.stdin_once && !stdin_once_used)
		stdin_once_used = stdin_closing = 1;
	close(c->fd);
	free(c->in);
	obuf_free(&c->out);
	free(c);
	clients[idx] = NULL;
}

static const char *status_json(char *buf, size_t cap)
{
	if (exit_json[0]) {
		snprintf(buf, cap, "{\"pid\":%d,\"status\":\"exited\",\"exit\":%s}", (int)container_pid, exit_json);
	} else {
		snprintf(buf, cap, "{\"pid\":%d,\"status\":\"%s\",\"shimPid\":%d}", (int)container_pid,
			 container_exited ? "exiting" : "running", (int)getpid());
	}
	return buf;
}

void reply(int idx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (obuf_append(&clients[idx]->out, line, (size_t)n, CLIENT_OUT_LIMIT) < 0)
		client_free(idx);
}

static void handle_command(int idx, const char *line, size_t len)
{
	struct shim_cmd cmd;
	const char *err = NULL;
	char buf[512];
	if (shim_parse_command(line, len, &cmd, &err) < 0) {
		reply(idx, "ERR %s", err);
		return;
	}
	switch (cmd.kind) {
	case SHIM_CMD_STATE:
		reply(idx, "OK %s", status_json(buf, sizeof(buf)));
		break;
	case SHIM_CMD_REOPEN:
		if (!opt.log_path)
			reply(idx, "ERR no log path configured");
		else if (open_log() < 0)
			reply(idx, "ERR reopen %s: %s", opt.log_path, strerror(errno));
		else
			reply(idx, "OK");
		break;
	case SHIM_CMD_RESIZE:
		do_resize(cmd.width, cmd.height, &err);
		if (err)
			reply(idx, "ERR resize: %s", err);
		else
			reply(idx, "OK");
		break;
	case SHIM_CMD_CLOSE_STDIN:
		if (stdin_fd >= 0)
			stdin_closing = 1;
		stdin_flush();
		reply(idx, "OK");
		break;
	case SHIM_CMD_START:
		err = release_container();
		if (err)
			reply(idx, "ERR %s", err);
		else
			reply(idx, "OK");
		break;
	case SHIM_CMD_WAIT:
		if (exit_json[0])
			reply(idx, "OK %s", exit_json);
		else if (clients[idx])
			clients[idx]->mode = CLIENT_WAIT;
		break;
	case SHIM_CMD_ATTACH:
		if ((cmd.attach_flags & SHIM_ATTACH_STDIN) && !opt.use_stdin) {
			reply(idx, "ERR stdin was not enabled for this container");
			break;
		}
		if ((cmd.attach_flags & SHIM_ATTACH_STDIN) && (stdin_fd < 0 || stdin_once_used || stdin_closing)) {
			reply(idx, "ERR stdin is closed");
			break;
		}
		if (exit_json[0]) {
			reply(idx, "ERR container has exited");
			break;
		}
		uint8_t *in = realloc(clients[idx]->in, CLIENT_ATTACH_IN_CAP);
		if (!in) {
			reply(idx, "ERR out of memory");
			break;
		}
		clients[idx]->in = in;
		clients[idx]->in_cap = CLIENT_ATTACH_IN_CAP;
		reply(idx, "OK");
		if (clients[idx]) {
			clients[idx]->mode = CLIENT_ATTACH;
			clients[idx]->flags = cmd.attach_flags;
		}
		break;
	}
}

void client_readable(int idx)
{
	struct client *c = clients[idx];
	ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(idx);
		return;
	}
	c->in_len += (size_t)n;
	size_t pos = 0;
	while (clients[idx] && pos < c->in_len) {
		if (c->mode == CLIENT_CMD) {
			uint8_t *nl = memchr(c->in + pos, '\n', c->in_len - pos);
			if (!nl) {
				if (c->in_len - pos > SHIM_CMD_MAX) {
					reply(idx, "ERR command too long");
					if (clients[idx])
						clients[idx]->closing = 1;
					return;
				}
				break;
			}
			size_t len = (size_t)(nl - (c->in + pos));
			handle_command(idx, (const char *)c->in + pos, len);
			pos += len + 1;
		} else if (c->mode == CLIENT_ATTACH) {
			struct shim_frame f;
			long r = shim_frame_next(c->in + pos, c->in_len - pos, &f);
			if (r == 0)
				break;
			if (r < 0) {
				diag("invalid attach frame; closing client");
				client_free(idx);
				return;
			}
			handle_frame(idx, &f);
			pos += (size_t)r;
		} else {
			pos = c->in_len; /* WAIT: input ignored */
		}
	}
	if (clients[idx]) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
}

void accept_clients(void)
{
	for (;;) {
		int fd = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid()) {
			close(fd);
			continue;
		}
		int slot = -1;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (!clients[i]) {
				slot = i;
				break;
			}
		struct client *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
		if (c)
			c->in = malloc(CLIENT_CMD_IN_CAP);
		if (!c || !c->in) {
			static const char busy[] = "ERR too many clients\n";
			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* nothing more to do */
			}
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->in_cap = CLIENT_CMD_IN_CAP;
		c->mode = CLIENT_CMD;
		clients[slot] = c;
	}
}
