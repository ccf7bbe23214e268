/* The forked child's side of starting a program for berth-launch (launch.c,
 * supervise.c): what berthd's own children got from Node, then exec. */
#define _GNU_SOURCE
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* execvpe without a shell: the PATH of the child's own environment. */
static void exec_file(const char *file, char *const argv[], char *const envp[])
{
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (int i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path = envp[i] + 5;
	int err = ENOENT;
	for (const char *p = path;; p++) {
		const char *colon = strchrnul(p, ':');
		char full[PATH_MAX];
		if (snprintf(full, sizeof(full), "%.*s/%s", (int)(colon - p), p, file) < (int)sizeof(full)) {
			execve(full, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		if (!*colon)
			break;
		p = colon;
	}
	errno = err;
}

/* In the child: what berthd's own children got from Node (default signal
 * dispositions, nothing blocked), the requested stdio, then exec. */
void child_exec(int stdio[], int nfds, int setsid_flag, const char *cwd, const char *file, char **argv,
		       char **envp, int errpipe)
{
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid_flag && setsid() < 0)
		goto fail;
	if (*cwd && chdir(cwd) < 0)
		goto fail;
	/* Out of the way of 0..nfds-1 first, so no dup2 below overwrites a source
	 * (nor is a no-op that would leave a source close-on-exec). */
	for (int i = 0; i < nfds; i++)
		if (stdio[i] < nfds && (stdio[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 10)) < 0)
			goto fail;
	for (int i = 0; i < nfds; i++)
		if (dup2(stdio[i], i) < 0)
			goto fail;
	exec_file(file, argv, envp);
fail:;
	int e = errno;
	if (write(errpipe, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}
