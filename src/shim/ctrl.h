/* The control protocol server on ctl.sock (ctrl.c; PROTOCOL.md): its clients
 * and their commands. */
#ifndef BERTH_SHIM_CTRL_H
#define BERTH_SHIM_CTRL_H

#include "obuf.h"

#include <stddef.h>
#include <stdint.h>

#define MAX_CLIENTS 64
#define CLIENT_OUT_LIMIT (1u << 20)   /* slow attach clients are dropped past this */

enum client_mode { CLIENT_CMD, CLIENT_ATTACH, CLIENT_WAIT };

struct client {
	int fd;
	enum client_mode mode;
	unsigned flags;
	int closing; /* close once out is drained */
	uint8_t *in;
	size_t in_len, in_cap;
	struct obuf out;
};

extern struct client *clients[MAX_CLIENTS];

void client_free(int idx);
/* Queues one reply line (the '\n' is added) to client idx. */
void reply(int idx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void client_readable(int idx);
void accept_clients(void);

#endif
