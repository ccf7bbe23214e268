/* The container's stdio: its output to the CRI log file and to attach
 * clients, its stdin, and its terminal size. */
#include "io.h"

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#define READ_CHUNK 32768

/*
 * Opens (or, on REOPEN, re-opens) the CRI log without following a symlink
 * planted at the file or as its directory: whoever can write in the pod's log
 * directory must not make the shim (root) append to, or create, a file
 * elsewhere. The directory is opened with O_NOFOLLOW|O_DIRECTORY and the file
 * relative to it with O_NOFOLLOW; O_NONBLOCK keeps a fifo planted there from
 * blocking us, and anything but a regular file is refused after the open.
 */
int open_log(void)
{
	if (!opt.log_path)
		return 0;
	const char *slash = strrchr(opt.log_path, '/');
	const char *base = slash ? slash + 1 : opt.log_path;
	if (*base == '\0' || !strcmp(base, ".") || !strcmp(base, "..")) {
		errno = EINVAL;
		return -1;
	}
	int dirfd = AT_FDCWD;
	if (slash) {
		char dir[4096];
		size_t dlen = slash == opt.log_path ? 1 : (size_t)(slash - opt.log_path);
		if (dlen >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, opt.log_path, dlen);
		dir[dlen] = '\0';
		dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dirfd < 0)
			return -1;
	}
	int fd = openat(dirfd, base, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
	int saved = errno;
	if (dirfd >= 0)
		close(dirfd);
	if (fd < 0) {
		errno = saved;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	close_fd(&log_fd);
	log_fd = fd;
	return 0;
}

/* ---------- output ---------- */

void log_emit(void *ctx, const char *stream, char tag, const char *data, size_t len)
{
	(void)ctx;
	if (log_fd < 0)
		return;
	char hdr[96];
	size_t n = crilog_timestamp(hdr, sizeof(hdr));
	n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, " %s %c ", stream, tag);
	struct iovec iov[3] = {
		{ .iov_base = hdr, .iov_len = n },
		{ .iov_base = (void *)data, .iov_len = len },
		{ .iov_base = "\n", .iov_len = 1 },
	};
	size_t total = n + len + 1;
	ssize_t w;
	do
		w = writev(log_fd, iov, 3);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		/* E.g. ENOSPC: the record is lost; say so once per log file. */
		static int reported_fd = -1;
		if (reported_fd != log_fd) {
			reported_fd = log_fd;
			diag("writing %s: %s (dropping records)", opt.log_path, strerror(errno));
		}
		return;
	}
	if ((size_t)w < total) {
		/* Short write (rare on regular files): finish it byte-exactly. */
		size_t done = (size_t)w;
		for (int i = 0; i < 3; i++) {
			if (done >= iov[i].iov_len) {
				done -= iov[i].iov_len;
				continue;
			}
			write_all(log_fd, (char *)iov[i].iov_base + done, iov[i].iov_len - done);
			done = 0;
		}
	}
}

/* Returns 0 while the stream is open, -1 at EOF. */
int pump_output(int *fd, struct crilog_stream *ls, enum shim_frame_type type)
{
	/* Static, not on the stack: a stack frame this size would put every
	 * call below it (read, the log record, diag) 32 KiB down and keep those
	 * pages for the shim's life; here only what a read fills is touched. */
	static char buf[READ_CHUNK];
	for (int rounds = 0; rounds < 8; rounds++) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			/* EIO: the last slave of the pty closed. */
			n = 0;
		}
		if (n == 0) {
			close_fd(fd);
			if (opt.tty)
				close_fd(&stdin_fd); /* same pty */
			crilog_flush(ls);
			return -1;
		}
		crilog_feed(ls, buf, (size_t)n);
		fan_out(type, buf, (size_t)n);
	}
	return 0;
}

/* ---------- stdin ---------- */

void stdin_close_now(void)
{
	/* In tty mode this is a dup of the pty master: closing it only stops
	 * input; a terminal has no EOF other than what the program reads. */
	close_fd(&stdin_fd);
	obuf_free(&stdin_buf);
	stdin_closing = 0;
}

void stdin_flush(void)
{
	if (stdin_fd < 0)
		return;
	if (obuf_flush(&stdin_buf, stdin_fd) < 0) {
		/* EPIPE: the container closed its stdin; discard. */
		stdin_close_now();
		return;
	}
	if (stdin_closing && obuf_pending(&stdin_buf) == 0)
		stdin_close_now();
}

/* ---------- terminal ---------- */

void do_resize(unsigned w, unsigned h, const char **err)
{
	*err = NULL;
	if (!opt.tty || out_fd < 0) {
		*err = opt.tty ? "terminal closed" : "container has no terminal";
		return;
	}
	struct winsize ws = { .ws_col = (unsigned short)w, .ws_row = (unsigned short)h };
	if (ioctl(out_fd, TIOCSWINSZ, &ws) < 0)
		*err = strerror(errno);
}
