/* Helpers shared by berth-shim and berth-exec; see util.h. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int format_line(char *buf, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, cap - 1, fmt, ap);
	if (n < 0)
		return -1;
	if ((size_t)n > cap - 2)
		n = (int)cap - 2;
	/* One line: newlines inside runtime errors become spaces. */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	return n;
}

int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

/* The /proc/self/fd walk, for a kernel without close_range (before 5.9). */
static void close_fds_listed_except(int keep, int keep_too)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int dfd = dirfd(d);
	int fds[256], n = 0, more = 1;
	/* Collect first, then close: closing while iterating confuses readdir. */
	while (more) {
		struct dirent *e;
		n = 0;
		more = 0;
		rewinddir(d);
		while ((e = readdir(d))) {
			int fd = atoi(e->d_name);
			if (e->d_name[0] == '.' || fd < 3 || fd == dfd || fd == keep || fd == keep_too)
				continue;
			if (n == (int)(sizeof(fds) / sizeof(fds[0]))) {
				more = 1;
				break;
			}
			fds[n++] = fd;
		}
		for (int i = 0; i < n; i++)
			close(fds[i]);
	}
	closedir(d);
}

void close_fds_except(int keep, int keep_too)
{
	/* close_range over the gaps between the kept fds: no directory walk, and
	 * none of opendir's 32 KiB buffer left in a long-lived process's heap. */
	int lo = keep < keep_too ? keep : keep_too, hi = keep < keep_too ? keep_too : keep;
	unsigned first = 3;
	int ok = 1;
	for (int k = 0; k < 2 && ok; k++) {
		int fd = k == 0 ? lo : hi;
		if (fd < (int)first)
			continue;
		if (fd > (int)first)
			ok = close_range(first, (unsigned)fd - 1, 0) == 0;
		first = (unsigned)fd + 1;
	}
	if (!ok || close_range(first, ~0U, 0) < 0)
		close_fds_listed_except(keep, keep_too);
}

int listen_unix(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return n;
}

pid_t read_pid_file(const char *path)
{
	char buf[32];
	if (read_small_file(path, buf, sizeof(buf)) < 0)
		return -1;
	long v = strtol(buf, NULL, 10);
	return v > 0 && v < INT_MAX ? (pid_t)v : -1;
}

int recv_console_fd(int listen_fd)
{
	int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return -1;
	/* The data is the terminal's name, which nothing here uses: a short buffer
	 * takes the fd with its start, and the rest goes with the connection. */
	char name[128];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	do
		n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(c);
	if (n < 0)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int))) {
		errno = EBADMSG;
		return -1;
	}
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

/* Closes and removes the console socket, keeping errno for the caller. */
static void close_console(int *listen_fd, const char *path)
{
	int e = errno;
	close(*listen_fd);
	*listen_fd = -1;
	unlink(path);
	errno = e;
}

int take_console_fd(int *listen_fd, const char *path)
{
	int fd = recv_console_fd(*listen_fd);
	close_console(listen_fd, path);
	return fd;
}

int take_pending_console_fd(int *listen_fd, const char *path)
{
	struct pollfd pf = { .fd = *listen_fd, .events = POLLIN };
	int fd = poll(&pf, 1, 0) == 1 ? recv_console_fd(*listen_fd) : -1;
	close_console(listen_fd, path);
	return fd;
}

int runtime_argv_prefix(const char **argv, const char *runtime, const char *const *runtime_args, int n_runtime_args,
			const char *root, const char *log_path)
{
	int n = 0;
	argv[n++] = runtime;
	for (int i = 0; i < n_runtime_args; i++)
		argv[n++] = runtime_args[i];
	argv[n++] = "--root";
	argv[n++] = root;
	if (log_path) {
		argv[n++] = "--log";
		argv[n++] = log_path;
		argv[n++] = "--log-format";
		argv[n++] = "json";
	}
	return n;
}
