/*
 * berth-notify: sends sd_notify(3) messages to $NOTIFY_SOCKET for berthd.
 *
 * Node.js cannot send on unix datagram sockets, and systemd's notify socket
 * is one. Rather than a process per message (systemd-notify), berthd starts
 * this helper once and writes messages to its stdin; see PROTOCOL.md.
 *
 *   berth-notify PID      (NOTIFY_SOCKET in the environment)
 *
 * Each NUL-terminated message read from stdin is sent as one datagram, with
 * SCM_CREDENTIALS naming PID (berthd) as the sender, so systemd's default
 * NotifyAccess=main accepts it (root may name another PID; if the kernel
 * refuses, the message goes without, and needs NotifyAccess=all). One line
 * "ok" or "error: ..." is written to stdout per message (never blocking:
 * a full socket queue is an error, not a hang). Exits 0 at EOF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MESSAGE 4096

static int send_message(int fd, const struct sockaddr_un *addr, socklen_t addrlen, const char *msg, size_t len, pid_t pid)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} control;
	struct msghdr mh = {
		.msg_name = (void *)addr,
		.msg_namelen = addrlen,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};
	memset(&control, 0, sizeof(control));
	if (pid > 0) {
		struct cmsghdr *cm;
		struct ucred cred = { .pid = pid, .uid = getuid(), .gid = getgid() };
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_CREDENTIALS;
		cm->cmsg_len = CMSG_LEN(sizeof(struct ucred));
		memcpy(CMSG_DATA(cm), &cred, sizeof(cred));
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
		return 0;
	if (pid > 0 && (errno == EPERM || errno == ESRCH)) {
		/* Not allowed to speak for PID: send as ourselves. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr;
	socklen_t addrlen;
	pid_t pid;
	size_t plen;
	int fd;
	char msg[MAX_MESSAGE + 1];
	size_t len = 0;
	int c;

	if (argc != 2) {
		fprintf(stderr, "usage: berth-notify PID (with NOTIFY_SOCKET set)\n");
		return 2;
	}
	pid = (pid_t)strtol(argv[1], NULL, 10);
	if (!path || !*path) {
		fprintf(stderr, "berth-notify: NOTIFY_SOCKET is not set\n");
		return 2;
	}
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(addr.sun_path)) {
		fprintf(stderr, "berth-notify: NOTIFY_SOCKET=%s: not a unix socket path or @abstract name\n", path);
		return 2;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, plen);
	if (path[0] == '@')
		addr.sun_path[0] = '\0'; /* abstract namespace: the length, not a NUL, ends the name */
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "berth-notify: socket: %s\n", strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getchar()) != EOF) {
		if (c != '\0') {
			if (len < MAX_MESSAGE)
				msg[len++] = (char)c;
			continue;
		}
		if (len == 0)
			continue;
		if (send_message(fd, &addr, addrlen, msg, len, pid) == 0)
			printf("ok\n");
		else
			printf("error: sendmsg to %s: %s\n", path, strerror(errno));
		len = 0;
	}
	return 0;
}
