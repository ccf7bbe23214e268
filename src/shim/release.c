/* START: what `runc start` does to a created runc (1.x) container, without a
 * runtime process. runc's init, once created, blocks opening
 * <runtime-root>/<id>/exec.fifo for writing; opening it for reading lets it
 * write one byte and exec the container process. The reader then removes the
 * fifo, which is how runc tells "running" from "created". The shim is init's
 * parent, so it learns at once when init died instead of waiting. berthd asks
 * this only of runc containers (crun's fifo works the other way round). */
#include "release.h"

#include "cli.h"
#include "exit.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* init is already waiting on the fifo; this only bounds a stuck one. */
#define RELEASE_TIMEOUT_MS 10000

static const char *dead(int fd)
{
	close(fd);
	return "container process is already dead";
}

const char *release_container(void)
{
	static char msg[PATH_MAX + 128];
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s/exec.fifo", opt.runtime_root, opt.id) >= (int)sizeof(path))
		return "exec fifo path too long";
	if (container_exited)
		return "container process is already dead";
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return "container is not in the created state (it has no exec fifo)";
		snprintf(msg, sizeof(msg), "open %s: %s", path, strerror(errno));
		return msg;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		close(fd);
		snprintf(msg, sizeof(msg), "%s is not a fifo", path);
		return msg;
	}
	long long deadline = mono_ms() + RELEASE_TIMEOUT_MS;
	for (;;) {
		long long left = deadline - mono_ms();
		if (left <= 0) {
			close(fd);
			return "the container's init did not take the start signal within 10 s";
		}
		struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = sig_fd, .events = POLLIN } };
		if (poll(pf, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return "poll failed";
		}
		if (pf[0].revents) {
			char c;
			ssize_t n = read(fd, &c, 1);
			if (n == 1)
				break;
			if (n == 0) /* the writer came and went without a byte */
				return dead(fd);
			if (errno != EAGAIN && errno != EINTR) {
				close(fd);
				return "reading the exec fifo failed";
			}
		}
		if (pf[1].revents & POLLIN) {
			int st_unused = 0, done_unused = 0;
			drain_signalfd();
			reap_children(-1, &st_unused, &done_unused);
			if (container_exited)
				return dead(fd);
		}
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(msg, sizeof(msg), "started, but removing %s failed: %s", path, strerror(errno));
		return msg;
	}
	return NULL;
}
