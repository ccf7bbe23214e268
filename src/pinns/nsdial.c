/*
 * berth-nsdial NETNS: dials TCP connections inside a pod's network namespace
 * for berthd's port-forwarding, one helper per pod instead of one process per
 * connection.
 *
 * It enters NETNS once (setns), then serves requests on Node's IPC channel
 * (the fd named by NODE_CHANNEL_FD, JSON lines): for {"dial":PORT,"id":N} it
 * connects a socket to 127.0.0.1:PORT, which belongs to the pod's namespace
 * because it was created there, and sends it back to berthd as Node's IPC
 * sends a net.Socket: a NODE_HANDLE message with the descriptor attached
 * (SCM_RIGHTS). berthd then owns an ordinary socket: data, backpressure and
 * half-close need no relay. A failed connect answers {"id":N,"error":"..."}.
 * It exits when berthd closes the channel.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

/* Requests are a few dozen bytes; a longer line is not berthd's and ends us. */
#define LINE_MAX_BYTES 4096

static int send_all(int ch, const char *msg, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	char control[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(control, 0, sizeof(control));
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (iov.iov_len > 0) {
		ssize_t n = sendmsg(ch, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		/* The descriptor went with the first bytes; the rest is plain. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
	}
	return 0;
}

/* The integer after "key": in a JSON line, or -1. */
static long field(const char *line, const char *key)
{
	const char *p = strstr(line, key);
	if (!p)
		return -1;
	p += strlen(key);
	char *end;
	long v = strtol(p, &end, 10);
	return end == p ? -1 : v;
}

static void serve(int ch, const char *line)
{
	long port = field(line, "\"dial\":");
	long id = field(line, "\"id\":");
	if (port < 1 || port > 65535 || id < 0)
		return; /* acks and anything else berthd's IPC layer sends */
	char msg[256];
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		/* Loopback connects finish at once; a full backlog must not hang us for ever. */
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			struct timeval none = { 0 };
			setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
			int n = snprintf(msg, sizeof(msg), "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"id\":%ld}}\n", id);
			int rc = send_all(ch, msg, (size_t)n, s);
			close(s);
			if (rc < 0)
				exit(0);
			return;
		}
	}
	int n = snprintf(msg, sizeof(msg), "{\"id\":%ld,\"error\":\"connect to 127.0.0.1:%ld: %s\"}\n", id, port, strerror(errno));
	if (s >= 0)
		close(s);
	if (send_all(ch, msg, (size_t)n, -1) < 0)
		exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: berth-nsdial NETNS_PATH (run by berthd with an IPC channel)\n");
		return 2;
	}
	const char *chs = getenv("NODE_CHANNEL_FD");
	if (!chs) {
		fprintf(stderr, "berth-nsdial: NODE_CHANNEL_FD is not set\n");
		return 2;
	}
	int ch = atoi(chs);
	int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
		fprintf(stderr, "berth-nsdial: entering %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	close(ns);
	char buf[LINE_MAX_BYTES];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(ch, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
			*nl = '\0';
			serve(ch, start);
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len >= sizeof(buf) - 1)
			return 1;
	}
}
