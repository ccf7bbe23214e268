/* The `supervise` request of berth-launch (PROTOCOL.md): forks a berth-exec
 * supervisor (src/shim/EXEC.md) with new socketpairs as its stdio and control
 * socket, and hands berthd its ends over Node's IPC channel (the fd Node
 * names in NODE_CHANNEL_FD, JSON lines), as Node's IPC sends a net.Socket: a
 * NODE_HANDLE message with the descriptor attached (SCM_RIGHTS). A stream of
 * bytes (stdout) cannot carry descriptors, hence the second channel. */
#define _GNU_SOURCE
#include "supervise.h"
#include "child.h"
#include "runtime_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SUPERVISORS 1024 /* supervisors alive at once; more are refused (EAGAIN) */

extern char **environ;

static int ch = -1;
static pid_t supervisors[MAX_SUPERVISORS]; /* 0: free */

int channel_open(void)
{
	const char *fd = getenv("NODE_CHANNEL_FD");
	if (fd) {
		ch = atoi(fd);
		/* Blocking, so a message is written whole (berthd's event loop always reads it). */
		if (ch < 3 || fcntl(ch, F_SETFL, fcntl(ch, F_GETFL) & ~O_NONBLOCK) < 0)
			ch = -1;
	}
	/* Not for the supervisors, nor the runtime they run. */
	unsetenv("NODE_CHANNEL_FD");
	unsetenv("NODE_CHANNEL_SERIALIZATION_MODE");
	return ch;
}

int channel_drain(void)
{
	char tmp[4096];
	ssize_t n = read(ch, tmp, sizeof(tmp));
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(ch);
		ch = -1;
		return 0;
	}
	return 1;
}

/* One message on the channel, with `fd` attached when >= 0; dropped once berthd closed it. */
static void send_message(const char *msg, int fd)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		*c = (struct cmsghdr){ .cmsg_len = CMSG_LEN(sizeof(int)), .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS };
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (ch >= 0 && iov.iov_len > 0) {
		ssize_t n = sendmsg(ch, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		mh.msg_control = NULL; /* the descriptor went with the first bytes */
		mh.msg_controllen = 0;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
	}
}

/* Forks and waits for the exec (a CLOEXEC pipe closes, or carries the errno): the pid, or -errno.
 * With a runtime copy (>= 0) it is the supervisor's fd 4, named on its command line. */
static pid_t fork_supervisor(const int child_end[4], int runtime_fd, const char *file)
{
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) < 0)
		return -errno;
	int stdio[5] = { child_end[0], child_end[1], child_end[2], child_end[3], runtime_fd };
	char *argv[] = { "berth-exec", "--control-fd", "3", runtime_fd >= 0 ? "--runtime-fd" : NULL, "4", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		if (stdio[0] < 0 && (stdio[0] = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
			_exit(127);
		child_exec(stdio, runtime_fd >= 0 ? 5 : 4, 0, "", file, argv, environ, errpipe[1]);
	}
	int err = pid < 0 ? errno : 0;
	close(errpipe[1]);
	int e;
	ssize_t n;
	while (pid > 0 && (n = read(errpipe[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(errpipe[0]);
	if (pid > 0 && n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		err = e;
	}
	return err ? -err : pid;
}

int supervisor_start(unsigned long long id, int with_stdin, const char *file, const char *runtime)
{
	int slot = -1;
	for (int i = 0; i < MAX_SUPERVISORS && slot < 0; i++)
		if (!supervisors[i])
			slot = i;
	if (ch < 0)
		return ENOTCONN;
	if (slot < 0)
		return EAGAIN;
	int ends[4][2], child_end[4] = { -1, -1, -1, -1 };
	int made = 0, err = 0;
	for (; made < 4; made++) {
		ends[made][0] = ends[made][1] = -1;
		if (made == 0 && !with_stdin)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends[made]) < 0) {
			err = errno;
			break;
		}
		child_end[made] = ends[made][1];
		/* berthd's end non-blocking: libuv takes a handle received over IPC as it
		 * is, and reads until EAGAIN, so a blocking one would stop berthd's event
		 * loop in read(2) as soon as a stream has nothing more for now. */
		if (fcntl(ends[made][0], F_SETFL, fcntl(ends[made][0], F_GETFL) | O_NONBLOCK) < 0) {
			err = errno;
			made++;
			break;
		}
	}
	/* No copy (not made, or not asked for): the runtime is exec'd by path and protects itself. */
	int runtime_fd = *runtime ? runtime_copy(runtime) : -1;
	pid_t pid = err ? -err : fork_supervisor(child_end, runtime_fd, file);
	char msg[256];
	for (int k = 0; k < made; k++) {
		if (ends[k][1] >= 0)
			close(ends[k][1]);
		if (ends[k][0] < 0)
			continue;
		if (pid > 0) {
			snprintf(msg, sizeof(msg), "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"id\":%llu,\"fd\":%d}}\n", id, k);
			send_message(msg, ends[k][0]);
		}
		close(ends[k][0]);
	}
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "{\"id\":%llu,\"error\":\"cannot start %s: %s\"}\n", id, "berth-exec", strerror((int)-pid));
	} else {
		supervisors[slot] = pid;
		snprintf(msg, sizeof(msg), "{\"id\":%llu,\"pid\":%d}\n", id, (int)pid);
	}
	send_message(msg, -1);
	return 0;
}

int supervisor_reaped(pid_t pid, int status)
{
	for (int i = 0; i < MAX_SUPERVISORS; i++) {
		if (supervisors[i] != pid)
			continue;
		supervisors[i] = 0;
		char msg[128];
		snprintf(msg, sizeof(msg), "{\"exited\":%d,\"code\":%d,\"signal\":%d}\n", (int)pid,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		send_message(msg, -1);
		return 1;
	}
	return 0;
}
