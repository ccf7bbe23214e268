/* berth-exec --launcher: forks exec supervisors for berthd.
 *
 * A fork of berthd (Node) costs its event loop 1-2 ms, a fork of this small
 * process a fraction of that, off berthd's thread. berthd starts one launcher
 * with Node's IPC channel (NODE_CHANNEL_FD, JSON lines) and asks
 * {"start":ID,"stdin":BOOL}; the launcher makes the supervisor's stdio and
 * control sockets, forks and execs `berth-exec --control-fd 3`, and hands
 * berthd its ends as Node's IPC sends a net.Socket (a NODE_HANDLE message
 * with the descriptor attached, SCM_RIGHTS): {"id":ID,"fd":0..3} for stdin
 * (when asked), stdout, stderr and the control socket, then {"id":ID,"pid":PID}
 * (or {"id":ID,"error":"..."}). It reaps the supervisors and reports each
 * exit as {"exited":PID,"code":N,"signal":N}. It exits when berthd closes
 * the channel; its supervisors then get SIGTERM (their PDEATHSIG) and their
 * control sockets' EOF, and kill what they started. See EXEC.md. */
#include "launcher.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static int ch = -1;

/* One message on the channel, with `fd` attached when >= 0. Exits when berthd is gone. */
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
	while (iov.iov_len > 0) {
		ssize_t n = sendmsg(ch, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(0);
		mh.msg_control = NULL; /* the descriptor went with the first bytes */
		mh.msg_controllen = 0;
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= (size_t)n;
	}
}

/* In the forked child: the supervisor's ends become fds 0-3, then it is exec'd. */
static void exec_supervisor(const int child_end[4])
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int k = 0; k < 4; k++) {
		int fd = child_end[k] >= 0 ? child_end[k] : open("/dev/null", O_RDWR | O_CLOEXEC);
		/* Every source is above 3 (0-3 are taken in the launcher), so no dup2 clobbers another's source. */
		if (fd < 0 || dup2(fd, k) < 0)
			_exit(127);
	}
	execl("/proc/self/exe", "berth-exec", "--control-fd", "3", (char *)NULL);
	_exit(127);
}

static void start_supervisor(long id, int with_stdin)
{
	int ends[4][2], child_end[4] = { -1, -1, -1, -1 };
	char msg[256];
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
	}
	pid_t pid = err ? -1 : fork();
	if (pid == 0)
		exec_supervisor(child_end);
	if (pid < 0 && !err)
		err = errno;
	for (int k = 0; k < made; k++)
		if (ends[k][1] >= 0)
			close(ends[k][1]);
	for (int k = 0; k < made; k++) {
		if (ends[k][0] < 0)
			continue;
		if (!err) {
			snprintf(msg, sizeof(msg), "{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"id\":%ld,\"fd\":%d}}\n", id, k);
			send_message(msg, ends[k][0]);
		}
		close(ends[k][0]);
	}
	if (err)
		snprintf(msg, sizeof(msg), "{\"id\":%ld,\"error\":\"cannot start berth-exec: %s\"}\n", id, strerror(err));
	else
		snprintf(msg, sizeof(msg), "{\"id\":%ld,\"pid\":%d}\n", id, (int)pid);
	send_message(msg, -1);
}

static void report_exits(void)
{
	int st;
	pid_t pid;
	char msg[128];
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		snprintf(msg, sizeof(msg), "{\"exited\":%d,\"code\":%d,\"signal\":%d}\n", (int)pid,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		send_message(msg, -1);
	}
}

/* A request line; Node's own messages (NODE_HANDLE_ACK for each socket it took) are skipped. */
static void handle_line(const char *line)
{
	const char *start = strstr(line, "\"start\":");
	if (strstr(line, "\"cmd\":\"NODE_") || !start)
		return;
	long id = strtol(start + strlen("\"start\":"), NULL, 10);
	start_supervisor(id, strstr(line, "\"stdin\":true") != NULL);
}

int launcher_main(void)
{
	const char *chan = getenv("NODE_CHANNEL_FD");
	if (!chan)
		return 2;
	ch = atoi(chan);
	/* Blocking, so a reply is written whole; and not for the supervisors. */
	fcntl(ch, F_SETFL, fcntl(ch, F_GETFL) & ~O_NONBLOCK);
	fcntl(ch, F_SETFD, FD_CLOEXEC);
	/* Not for the supervisors, nor the runtime they run. */
	unsetenv("NODE_CHANNEL_FD");
	unsetenv("NODE_CHANNEL_SERIALIZATION_MODE");
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		return 0;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		return 1;
	char buf[LINE_MAX_BYTES];
	size_t len = 0;
	for (;;) {
		struct pollfd pf[2] = { { .fd = ch, .events = POLLIN }, { .fd = sig_fd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
			report_exits();
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(ch, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0; /* berthd closed the channel */
		len += (size_t)n;
		buf[len] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			handle_line(line);
			line = nl + 1;
		}
		len = strlen(line);
		if (len == sizeof(buf) - 1)
			return 1; /* a line this long is not berthd's */
		memmove(buf, line, len);
	}
}
