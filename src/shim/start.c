/* Start-up of the shim process itself: inherited fds, detaching, small
 * files, and refusing to run twice in one state directory. */
#include "start.h"

#include "cli.h"
#include "diag.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Nothing the caller leaked may reach the runtime or the container, and no
 * pipe of the caller may be held open for the container's lifetime: close
 * every inherited fd but stdio and the ready fd. */
void close_inherited_fds(void)
{
	close_fds_except(opt.ready_fd, opt.runtime_fd);
	if (opt.ready_fd >= 0)
		fcntl(opt.ready_fd, F_SETFD, FD_CLOEXEC);
	if (opt.runtime_fd >= 0 && fcntl(opt.runtime_fd, F_SETFD, FD_CLOEXEC) < 0)
		opt.runtime_fd = -1; /* not open: the runtime is exec'd by path */
}

void daemonize(void)
{
	pid_t p = fork();
	if (p < 0) {
		report_ready("ERR fork: %s", strerror(errno));
		exit(1);
	}
	if (p > 0) {
		/* First parent: wait for the middle child so the caller sees a
		 * clean exit; the grandchild reports readiness on --ready-fd. */
		int st;
		close_fd(&opt.ready_fd);
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
	}
	if (setsid() < 0)
		_exit(1);
	p = fork();
	if (p < 0)
		_exit(1);
	if (p > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		_exit(1);
	for (int fd = 0; fd < 3; fd++)
		if (fd != nul && dup2(nul, fd) < 0)
			_exit(1);
	if (nul > 2)
		close(nul);
}

int write_file(const char *path, const char *data, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return -1;
	int r = write_all(fd, data, strlen(data));
	if (close(fd) < 0)
		r = -1;
	return r;
}

void join_shim_cgroups(const char *pid_line)
{
	for (int i = 0; i < opt.n_shim_cgroups; i++) {
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/cgroup.procs", opt.shim_cgroups[i]) >= (int)sizeof(p) ||
		    write_file(p, pid_line, O_APPEND) < 0)
			fail_start("move shim into cgroup %s: %s", opt.shim_cgroups[i], strerror(errno));
	}
}

/* A live shim answers on ctl.sock: never steal its socket or exit file. */
int shim_running(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path_ctl) >= sizeof(sa.sun_path))
		return 0;
	strcpy(sa.sun_path, path_ctl);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return r;
}
