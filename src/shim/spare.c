/* A spare shim (--spare-socket): started and detached ahead of need, it waits
 * on one connection for its orders, the command line of a shim, so a create
 * costs no process start (PROTOCOL.md, "Spare shims"). */
#include "spare.h"

#include "cli.h"
#include "diag.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ORDERS_MAX (64 * 1024)
#define ORDERS_ARGS_MAX 256
#define CONNECT_TIMEOUT_MS 10000

/* The connection of the one peer with our uid, or exit: no peer in time, or
 * a stranger. */
static int accept_orderer(void)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(opt.spare_socket);
	if (lfd < 0 || n + 1 > sizeof(sa.sun_path)) {
		report_ready("ERR spare socket: %s", lfd < 0 ? strerror(errno) : "name too long");
		exit(1);
	}
	/* Abstract: no file to create or remove, nothing left if we die. The
	 * address is the whole of sun_path, NUL-padded, as Node's net module
	 * (libuv) names an abstract socket. */
	memcpy(sa.sun_path + 1, opt.spare_socket, n);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		report_ready("ERR spare socket %s: %s", opt.spare_socket, strerror(errno));
		exit(1);
	}
	report_ready("SPARE %d", (int)getpid());
	struct pollfd pf = { .fd = lfd, .events = POLLIN };
	int r;
	while ((r = poll(&pf, 1, CONNECT_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		exit(0);
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (c < 0 || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid())
		exit(1);
	close(lfd);
	return c;
}

/* Reads exactly len bytes; 0 at EOF before the first byte, -1 on a short read or error. */
static int read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t k = read(fd, buf + got, len - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return got == 0 && k == 0 ? 0 : -1;
		got += (size_t)k;
	}
	return 1;
}

/* /proc/<pid>/cmdline shows the orders (for whoever finds a shim by its
 * state dir or id): they are written over our own argument strings, as far
 * as they reach (the --spare-pad argument makes room). */
static void retitle(int argc, char **argv, int n, char **args)
{
	char *p = argv[0] + strlen(argv[0]) + 1;
	char *end = argv[argc - 1] + strlen(argv[argc - 1]);
	memset(p, 0, (size_t)(end - p));
	for (int i = 1; i < n && p < end; i++) {
		size_t l = strlen(args[i]);
		if (l > (size_t)(end - p))
			l = (size_t)(end - p);
		memcpy(p, args[i], l);
		p += l + 1;
	}
}

void await_orders(int argc, char **argv)
{
	int c = accept_orderer();
	/* "RUN <length>\n", then that many bytes of NUL-terminated arguments. */
	char head[32];
	size_t hl = 0;
	for (;;) {
		if (hl + 1 >= sizeof(head))
			exit(1);
		int r = read_exact(c, head + hl, 1);
		if (r == 0)
			exit(0); /* berthd let go of its spare */
		if (r < 0)
			exit(1);
		if (head[hl++] == '\n')
			break;
	}
	head[hl - 1] = 0;
	char *endp;
	long len = strncmp(head, "RUN ", 4) == 0 ? strtol(head + 4, &endp, 10) : -1;
	if (len <= 0 || len > ORDERS_MAX || *endp) {
		dprintf(c, "ERR bad orders header\n");
		exit(1);
	}
	char *buf = malloc((size_t)len);
	if (!buf || read_exact(c, buf, (size_t)len) != 1 || buf[len - 1] != 0)
		exit(1);
	char *args[ORDERS_ARGS_MAX + 1];
	int n = 0;
	args[n++] = argv[0];
	for (char *p = buf; p < buf + len; p += strlen(p) + 1) {
		if (n >= ORDERS_ARGS_MAX) {
			dprintf(c, "ERR too many arguments in the orders\n");
			exit(1);
		}
		args[n++] = p;
	}
	args[n] = NULL;
	/* The runtime copy came with the spare's own command line (berth-launch's fd). */
	int runtime_fd = opt.runtime_fd;
	opt = (struct options){ .log_max_line = 16384, .ready_fd = -1, .runtime_fd = -1 };
	parse_args(n, args);
	if (opt.ready_fd >= 0 || opt.foreground || opt.spare_socket || opt.runtime_fd >= 0) {
		dprintf(c, "ERR orders may not carry --ready-fd, --runtime-fd, --foreground or --spare-socket\n");
		exit(1);
	}
	opt.ready_fd = c;
	opt.runtime_fd = runtime_fd;
	retitle(argc, argv, n, args);
}
