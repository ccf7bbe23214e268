/* `<runtime> create`: the container's stdio pipes or terminal, waiting for
 * the runtime, and the container's pid. */
#include "create.h"

#include "cli.h"
#include "diag.h"
#include "exit.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads what the runtime wrote on a pipe (its stderr), non-blocking. */
static size_t read_available(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	if (fd < 0)
		return 0;
	set_nonblock(fd);
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = 0;
	return len;
}

/* The runtime failed: its stderr in the ERR line. Apart from create_container
 * so its buffer is not in that frame, under which the shim waits for the
 * runtime. */
static __attribute__((noinline, noreturn)) void fail_create(int rt_status, int runtime_stderr)
{
	char msg[3000];
	size_t len = read_available(runtime_stderr, msg, sizeof(msg));
	if (WIFEXITED(rt_status))
		fail_start("%s create failed (exit status %d): %s", opt.runtime, WEXITSTATUS(rt_status),
			   len ? msg : "no error output; see runtime.log");
	fail_start("%s create killed by signal %d", opt.runtime, WTERMSIG(rt_status));
}

void create_container(const sigset_t *orig_mask)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	int console_fd = -1;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		fail_start("open /dev/null: %s", strerror(errno));

	if (opt.tty) {
		use_console_path();
		console_fd = listen_unix(path_console, 16);
		if (console_fd < 0)
			fail_start("console socket %s: %s", path_console, strerror(errno));
		/* The runtime's own stderr, for its error message. */
		if (pipe2(err_pipe, O_CLOEXEC) < 0)
			fail_start("pipe: %s", strerror(errno));
	} else {
		if ((opt.use_stdin && pipe2(in_pipe, O_CLOEXEC) < 0) || pipe2(out_pipe, O_CLOEXEC) < 0 ||
		    pipe2(err_pipe, O_CLOEXEC) < 0)
			fail_start("pipe: %s", strerror(errno));
	}

	const char *argv[MAX_LIST + 24];
	int n = runtime_argv_prefix(argv, opt.runtime, opt.runtime_args, opt.n_runtime_args, opt.runtime_root,
				    path_runtime_log);
	argv[n++] = "create";
	argv[n++] = "--bundle";
	argv[n++] = opt.bundle;
	argv[n++] = "--pid-file";
	argv[n++] = path_pid;
	if (opt.tty) {
		argv[n++] = "--console-socket";
		argv[n++] = path_console;
	}
	argv[n++] = opt.id;
	argv[n] = NULL;

	unlink(path_pid);
	pid_t rt = fork();
	if (rt < 0)
		fail_start("fork: %s", strerror(errno));
	if (rt == 0) {
		/* Child: restore what the container must not inherit from us. */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sigprocmask(SIG_SETMASK, orig_mask, NULL);
		umask(saved_umask);
		int fin = opt.tty ? nul : (opt.use_stdin ? in_pipe[0] : nul);
		int fout = opt.tty ? nul : out_pipe[1];
		int ferr = err_pipe[1];
		if (dup2(fin, 0) < 0 || dup2(fout, 1) < 0 || dup2(ferr, 2) < 0)
			_exit(127);
		/* From berth-launch's sealed copy, so runc init need not clone its binary
		 * (src/launch/runtime_copy.c); by path when there is none or it fails. */
		if (opt.runtime_fd >= 0)
			fexecve(opt.runtime_fd, (char *const *)argv, environ);
		execvp(opt.runtime, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", opt.runtime, strerror(errno));
		_exit(127);
	}
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
	close_fd(&opt.runtime_fd); /* not needed again; held, it would keep a replaced runc's copy in memory */
	close(nul);

	/* Wait for the runtime, taking the pty master meanwhile. */
	int rt_status = 0, rt_done = 0;
	int pty = -1;
	while (!rt_done) {
		struct pollfd pf[2] = { { .fd = sig_fd, .events = POLLIN }, { .fd = console_fd, .events = POLLIN } };
		int np = console_fd >= 0 ? 2 : 1;
		if (poll(pf, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail_start("poll: %s", strerror(errno));
		}
		if (np == 2 && (pf[1].revents & POLLIN)) {
			pty = take_console_fd(&console_fd, path_console);
			if (pty < 0)
				diag("receiving console fd: %s", strerror(errno));
		}
		if (pf[0].revents & POLLIN) {
			drain_signalfd();
			reap_children(rt, &rt_status, &rt_done);
		}
	}
	/* The runtime may have connected just before exiting. */
	if (console_fd >= 0)
		pty = take_pending_console_fd(&console_fd, path_console);

	if (!WIFEXITED(rt_status) || WEXITSTATUS(rt_status) != 0)
		fail_create(rt_status, err_pipe[0]);
	container_pid = read_pid_file(path_pid);
	if (container_pid <= 0)
		fail_start("%s create succeeded but pid file %s is unreadable", opt.runtime, path_pid);
	for (int i = 0; i < n_early; i++)
		note_exit(early[i].pid, early[i].status, early[i].at);
	n_early = 0;

	if (opt.tty) {
		close_fd(&err_pipe[0]);
		if (pty < 0)
			fail_start("%s did not send a terminal on the console socket", opt.runtime);
		out_fd = pty;
		if (opt.use_stdin) {
			stdin_fd = fcntl(pty, F_DUPFD_CLOEXEC, 3);
			if (stdin_fd < 0)
				fail_start("dup: %s", strerror(errno));
		}
	} else {
		out_fd = out_pipe[0];
		err_fd = err_pipe[0];
		stdin_fd = in_pipe[1];
	}
	if (out_fd >= 0)
		set_nonblock(out_fd);
	if (err_fd >= 0)
		set_nonblock(err_fd);
	if (stdin_fd >= 0)
		set_nonblock(stdin_fd);
}
