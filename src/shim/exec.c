/* berth-exec: supervises one process exec'd into a running container.
 *
 * berth-launch (src/launch/supervise.c) starts it ahead of need: it waits for its orders (a RUN frame:
 * runtime, container id, process JSON) on the control fd, and only then
 * makes its scratch directory and starts the runtime. It becomes a child
 * subreaper, runs `<runtime> exec --detach`, so the exec'd
 * process is reparented to it when the runtime exits, waits for it, and
 * reports its exit status on the control fd. With --tty it receives the pty
 * master on the console socket and relays between its own stdin/stdout and
 * the terminal; without, the process writes straight into the supervisor's
 * inherited stdio (the supervisor keeps no copy, so EOF reaches the reader
 * when the process and its children close them). SIGTERM/SIGINT/SIGHUP, a
 * KILL command or EOF on the control fd SIGKILL the process: a client that
 * goes away leaves nothing running. See EXEC.md. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNTIME_ARGS 8
#define MAX_EARLY 64
#define BUF_SIZE 32768
#define TTY_DRAIN_MS 1000 /* pty output read after the process exited (children may hold it) */
#define EXIT_FAIL 125
#define MAX_RUN_ARGS 64
#define MAX_RUN_ARGS_BYTES 65536
#define MAX_PROCESS_BYTES (16 << 20)
#define MAX_LOG_BYTES 16384 /* of the runtime's log, forwarded as LOG lines after a failure */

static const char *runtime = "runc", *root, *tmp_dir, *log_path, *process_file, *pid_file, *console_path, *id;
static const char *runtime_args[MAX_RUNTIME_ARGS];
static int n_runtime_args, tty, ctl_fd = -1;
/* A sealed memfd copy of the runtime binary from berth-launch (--runtime-fd), exec'd instead of the path: runc
 * then skips re-exec'ing itself from a copy of its own (src/launch/runtime_copy.c). -1: none. */
static int runtime_fd = -1;
/* The private scratch directory (empty until made); make_scratch names the files in it. */
static char scratch[PATH_MAX];

static int sig_fd = -1, console_fd = -1, pty = -1;
static pid_t runtime_pid = -1, proc_pid = -1;
static int kill_requested, proc_done, proc_status, rt_done, rt_status;
static struct { pid_t pid; int status; } early[MAX_EARLY];
static int n_early;

static void status_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void status_line(const char *fmt, ...)
{
	if (ctl_fd < 0)
		return;
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = format_line(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* The control fd stays blocking: a status line is tiny. */
	if (n > 0)
		write_all(ctl_fd, buf, (size_t)n);
}

/* Removes the scratch directory and everything the runtime or we put in it. */
static void remove_scratch(void)
{
	if (!scratch[0])
		return;
	const char *names[] = { "process.json", "exec.pid", ".exec.pid", "log.json", "console.sock" };
	char p[PATH_MAX];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (snprintf(p, sizeof(p), "%s/%s", scratch, names[i]) < (int)sizeof(p))
			unlink(p);
	rmdir(scratch);
	scratch[0] = 0;
}

/* The runtime's log, one LOG line per line of it (berthd picks out its error messages). */
static void forward_runtime_log(void)
{
	static char text[MAX_LOG_BYTES];
	if (!log_path || read_small_file(log_path, text, sizeof(text)) < 0)
		return;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		status_line("LOG %s", line);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	char buf[3000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	forward_runtime_log();
	remove_scratch();
	status_line("FAIL %s", buf);
	_exit(EXIT_FAIL);
}

static void usage(void)
{
	dprintf(2, "usage: berth-exec --control-fd N [--runtime-fd M]   (then a RUN frame on fd N, see EXEC.md)\n");
	_exit(2);
}

static int fd_argument(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*end || n < 3 || n > 1024)
		usage();
	return (int)n;
}

static void parse_command_line(int argc, char **argv)
{
	if ((argc != 3 && argc != 5) || strcmp(argv[1], "--control-fd"))
		usage();
	ctl_fd = fd_argument(argv[2]);
	if (argc == 5) {
		if (strcmp(argv[3], "--runtime-fd"))
			usage();
		runtime_fd = fd_argument(argv[4]);
		if (runtime_fd == ctl_fd)
			usage();
	}
}

/* The RUN frame's arguments: [--runtime PATH] [--runtime-arg ARG]... --root DIR --tmp-dir DIR [--tty] ID. */
static void parse_run_args(int argc, char **argv)
{
	int i = 0;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] != '-')
			break;
		if (!strcmp(a, "--tty")) {
			tty = 1;
			continue;
		}
		if (i + 1 >= argc)
			fail("RUN: %s needs a value", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--runtime"))
			runtime = v;
		else if (!strcmp(a, "--runtime-arg")) {
			if (n_runtime_args == MAX_RUNTIME_ARGS)
				fail("RUN: more than %d --runtime-arg", MAX_RUNTIME_ARGS);
			runtime_args[n_runtime_args++] = v;
		} else if (!strcmp(a, "--root"))
			root = v;
		else if (!strcmp(a, "--tmp-dir"))
			tmp_dir = v;
		else
			fail("RUN: unknown argument %s", a);
	}
	if (i != argc - 1 || !root || !tmp_dir)
		fail("RUN: --root, --tmp-dir and one container id are required");
	id = argv[i];
}

/* Reads exactly len bytes of the control fd (blocking); -1 on EOF or error. */
static int read_exact(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* <scratch>/<name>, in an allocation of its size (a PATH_MAX buffer each would
 * be a page each for the life of the exec), kept until we exit. */
static const char *scratch_file(const char *name)
{
	size_t len = strlen(scratch) + 1 + strlen(name) + 1;
	if (len > PATH_MAX)
		fail("scratch path too long under %s", tmp_dir);
	char *out = malloc(len);
	if (!out)
		fail("out of memory");
	char *end = stpcpy(out, scratch);
	*end = '/';
	strcpy(end + 1, name);
	return out;
}

/* Makes the private scratch directory and names the files in it; the process JSON is written by receive_run. */
static void make_scratch(void)
{
	if (snprintf(scratch, sizeof(scratch), "%s/exec-XXXXXX", tmp_dir) >= (int)sizeof(scratch) || !mkdtemp(scratch)) {
		scratch[0] = 0;
		fail("scratch directory under %s: %s", tmp_dir, strerror(errno));
	}
	process_file = scratch_file("process.json");
	pid_file = scratch_file("exec.pid");
	log_path = scratch_file("log.json");
	if (tty)
		console_path = scratch_file("console.sock");
}

/* Waits for "RUN <args-bytes> <process-bytes>\n", then the NUL-terminated
 * arguments, then the process JSON, which goes to the scratch directory
 * without being held whole. EOF before it: berthd no longer needs us. */
static void receive_run(void)
{
	char head[64];
	size_t n = 0;
	for (;;) {
		if (read_exact(ctl_fd, head + n, 1) < 0)
			_exit(0);
		if (head[n] == '\n')
			break;
		if (++n == sizeof(head) - 1)
			fail("RUN: header too long");
	}
	head[n] = 0;
	unsigned long args_len, process_len;
	char extra;
	if (sscanf(head, "RUN %lu %lu%c", &args_len, &process_len, &extra) != 2 || args_len == 0 || process_len == 0)
		fail("RUN: bad header \"%s\"", head);
	if (args_len > MAX_RUN_ARGS_BYTES || process_len > MAX_PROCESS_BYTES)
		fail("RUN: %lu bytes of arguments and %lu of process JSON, over the limits (%d and %d)", args_len, process_len,
		     MAX_RUN_ARGS_BYTES, MAX_PROCESS_BYTES);
	static char args[MAX_RUN_ARGS_BYTES];
	if (read_exact(ctl_fd, args, args_len) < 0 || args[args_len - 1] != 0)
		fail("RUN: arguments cut short");
	char *argv[MAX_RUN_ARGS];
	int argc = 0;
	for (size_t off = 0; off < args_len; off += strlen(args + off) + 1) {
		if (argc == MAX_RUN_ARGS)
			fail("RUN: more than %d arguments", MAX_RUN_ARGS);
		argv[argc++] = args + off;
	}
	parse_run_args(argc, argv);
	make_scratch();
	int fd = open(process_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		fail("%s: %s", process_file, strerror(errno));
	static char chunk[65536];
	while (process_len > 0) {
		size_t want = process_len < sizeof(chunk) ? process_len : sizeof(chunk);
		if (read_exact(ctl_fd, chunk, want) < 0)
			fail("RUN: process JSON cut short");
		if (write_all(fd, chunk, want) < 0)
			fail("%s: %s", process_file, strerror(errno));
		process_len -= want;
	}
	close(fd);
}

/* Only 0-2, the control fd and the runtime copy are kept, both close-on-exec:
 * nothing else may leak into the runtime (which is exec'd from the copy, not
 * given it). */
static void close_inherited_fds(void)
{
	close_fds_except(ctl_fd, runtime_fd);
	if (runtime_fd >= 0 && fcntl(runtime_fd, F_SETFD, FD_CLOEXEC) < 0)
		runtime_fd = -1; /* not open: the runtime is exec'd by path */
	if (ctl_fd >= 0 && fcntl(ctl_fd, F_SETFD, FD_CLOEXEC) < 0)
		fail("control fd %d: %s", ctl_fd, strerror(errno));
}

static int listen_console(void)
{
	int fd = listen_unix(console_path, 4);
	if (fd < 0 && errno == ENAMETOOLONG)
		fail("console socket path too long: %s", console_path);
	if (fd < 0)
		fail("console socket %s: %s", console_path, strerror(errno));
	return fd;
}

/* The parent pid from /proc/<pid>/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (read_small_file(p, buf, sizeof(buf)) < 0)
		return -1;
	char *rp = strrchr(buf, ')'); /* comm may contain anything but ends at the last ')' */
	int ppid;
	if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* Stops every descendant of the process (so none forks on), repeatedly until
 * no new one appears; returns how many were found. Orphans of the process go
 * to the container's init, so they are found while their parent is alive. */
#define MAX_TREE 1024
static pid_t tree[MAX_TREE];
static int n_tree;

static int in_tree(pid_t pid)
{
	for (int i = 0; i < n_tree; i++)
		if (tree[i] == pid)
			return 1;
	return 0;
}

static void stop_tree(void)
{
	for (int pass = 0, grew = 1; grew && pass < 16; pass++) {
		grew = 0;
		DIR *d = opendir("/proc");
		if (!d)
			return;
		struct dirent *e;
		while ((e = readdir(d)) && n_tree < MAX_TREE) {
			pid_t pid = (pid_t)atoi(e->d_name);
			if (pid <= 0 || in_tree(pid))
				continue;
			pid_t pp = parent_of(pid);
			if (pp > 0 && in_tree(pp)) {
				kill(pid, SIGSTOP);
				tree[n_tree++] = pid;
				grew = 1;
			}
		}
		closedir(d);
	}
}

/* SIGKILLs the process and everything it started. */
static void kill_process(void)
{
	kill_requested = 1;
	if (proc_pid <= 0) {
		/* Still starting: stop the runtime; the pid file tells whether the process started. */
		if (runtime_pid > 0 && !rt_done)
			kill(runtime_pid, SIGKILL);
		return;
	}
	if (proc_done)
		return;
	n_tree = 0;
	tree[n_tree++] = proc_pid;
	kill(proc_pid, SIGSTOP);
	stop_tree();
	for (int i = n_tree - 1; i >= 0; i--)
		kill(tree[i], SIGKILL);
}

static void reap(void)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return;
		if (p == runtime_pid) {
			rt_status = st;
			rt_done = 1;
		} else if (proc_pid > 0 && p == proc_pid) {
			proc_status = st;
			proc_done = 1;
		} else if (proc_pid <= 0 && n_early < MAX_EARLY) {
			/* Can be the process itself if it exited before we read the pid file. */
			early[n_early].pid = p;
			early[n_early].status = st;
			n_early++;
		}
	}
}

static void handle_signals(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		kill_process();
	}
	reap();
}

static struct winsize pending_ws;
static int have_ws;

static void apply_winsize(void)
{
	if (pty >= 0 && have_ws)
		ioctl(pty, TIOCSWINSZ, &pending_ws);
}

/* Control commands, one per line: "RESIZE <w> <h>", "KILL". EOF means the client is gone. */
static char ctl_buf[256];
static size_t ctl_len;
static int ctl_open = 1;

static void handle_control(void)
{
	ssize_t n = read(ctl_fd, ctl_buf + ctl_len, sizeof(ctl_buf) - ctl_len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		n = 0;
	}
	if (n == 0) {
		ctl_open = 0;
		kill_process();
		return;
	}
	ctl_len += (size_t)n;
	char *nl;
	while ((nl = memchr(ctl_buf, '\n', ctl_len))) {
		*nl = 0;
		unsigned w, h;
		if (!strcmp(ctl_buf, "KILL"))
			kill_process();
		else if (sscanf(ctl_buf, "RESIZE %u %u", &w, &h) == 2 && w <= 65535 && h <= 65535) {
			pending_ws.ws_col = (unsigned short)w;
			pending_ws.ws_row = (unsigned short)h;
			have_ws = 1;
			apply_winsize();
		}
		size_t used = (size_t)(nl - ctl_buf) + 1;
		memmove(ctl_buf, nl + 1, ctl_len - used);
		ctl_len -= used;
	}
	if (ctl_len == sizeof(ctl_buf))
		ctl_len = 0; /* an overlong line is dropped */
}

static void start_runtime(const sigset_t *orig_mask)
{
	const char *argv[MAX_RUNTIME_ARGS + 24];
	int n = runtime_argv_prefix(argv, runtime, runtime_args, n_runtime_args, root, log_path);
	argv[n++] = "exec";
	argv[n++] = "--detach";
	argv[n++] = "--pid-file";
	argv[n++] = pid_file;
	if (tty) {
		argv[n++] = "--tty";
		argv[n++] = "--console-socket";
		argv[n++] = console_path;
	}
	argv[n++] = "--process";
	argv[n++] = process_file;
	argv[n++] = id;
	argv[n] = NULL;

	unlink(pid_file);
	runtime_pid = fork();
	if (runtime_pid < 0)
		fail("fork: %s", strerror(errno));
	if (runtime_pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, orig_mask, NULL);
		if (tty) {
			/* The terminal is the process's stdio; the runtime gets none but stderr. */
			int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0)
				_exit(127);
		}
		/* argv[0] stays the runtime's path. A copy that cannot be exec'd (a script: its
		 * interpreter cannot open the close-on-exec fd) falls back to the path. */
		if (runtime_fd >= 0)
			fexecve(runtime_fd, (char *const *)argv, environ);
		execvp(runtime, (char *const *)argv);
		dprintf(2, "berth-exec: exec %s: %s\n", runtime, strerror(errno));
		_exit(127);
	}
	if (runtime_fd >= 0) {
		close(runtime_fd); /* not needed again; held, it would keep a replaced runc's copy in memory */
		runtime_fd = -1;
	}
	if (!tty) {
		/* Only the process holds the pipes now, so its EOF is the reader's EOF. */
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
			fail("redirecting stdio to /dev/null: %s", strerror(errno));
		close(nul);
	}
}

/* Waits for the runtime (taking the pty master meanwhile) and learns the process's pid. */
static void wait_runtime(void)
{
	while (!rt_done) {
		struct pollfd pf[3] = { { .fd = sig_fd, .events = POLLIN },
					{ .fd = ctl_open ? ctl_fd : -1, .events = POLLIN },
					{ .fd = console_fd, .events = POLLIN } };
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
		}
		if (pf[2].revents & POLLIN)
			pty = take_console_fd(&console_fd, console_path);
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
			handle_control();
		if (pf[0].revents & POLLIN)
			handle_signals();
	}
	if (console_fd >= 0)
		pty = take_pending_console_fd(&console_fd, console_path);
	if (kill_requested && WIFSIGNALED(rt_status)) {
		/* We killed the runtime: kill the process too if it got that far. */
		pid_t started = read_pid_file(pid_file);
		if (started > 0)
			kill(started, SIGKILL);
		fail("killed before the process was started");
	}
	if (!WIFEXITED(rt_status) || WEXITSTATUS(rt_status) != 0) {
		if (WIFEXITED(rt_status))
			fail("%s exec failed (exit status %d)", runtime, WEXITSTATUS(rt_status));
		fail("%s exec killed by signal %d", runtime, WTERMSIG(rt_status));
	}
	proc_pid = read_pid_file(pid_file);
	if (proc_pid <= 0)
		fail("%s exec succeeded but pid file %s is unreadable", runtime, pid_file);
	for (int i = 0; i < n_early; i++)
		if (early[i].pid == proc_pid) {
			proc_done = 1;
			proc_status = early[i].status;
		}
	n_early = 0;
	if (tty && pty < 0) {
		kill(proc_pid, SIGKILL);
		fail("%s did not send a terminal on the console socket", runtime);
	}
	apply_winsize();
	status_line("PID %d", (int)proc_pid);
	if (kill_requested)
		kill_process();
}

struct buf {
	char data[BUF_SIZE];
	size_t off, len;
};

/* Moves bytes from src to dst through b; returns -1 on EOF/error of src. */
static int buf_fill(struct buf *b, int src)
{
	ssize_t n = read(src, b->data, sizeof(b->data));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	b->off = 0;
	b->len = (size_t)n;
	return 0;
}

static int buf_flush(struct buf *b, int dst)
{
	while (b->off < b->len) {
		ssize_t n = write(dst, b->data + b->off, b->len - b->off);
		if (n < 0)
			return errno == EINTR || errno == EAGAIN ? 0 : -1;
		b->off += (size_t)n;
	}
	b->off = b->len = 0;
	return 0;
}

/* Waits for the process; in tty mode relays stdin -> pty -> stdout meanwhile and drains the pty after. */
static void supervise(void)
{
	static struct buf in, out;
	int in_fd = tty ? 0 : -1, out_fd = tty ? 1 : -1;
	long long drain_deadline = -1;
	if (tty) {
		set_nonblock(pty);
		set_nonblock(0);
		set_nonblock(1);
	}
	for (;;) {
		if (proc_done) {
			if (pty < 0 || out_fd < 0)
				break;
			if (drain_deadline < 0) {
				drain_deadline = mono_ms() + TTY_DRAIN_MS;
				in_fd = -1;
			}
		}
		int timeout = -1;
		if (drain_deadline >= 0) {
			long long left = drain_deadline - mono_ms();
			if (left <= 0)
				break;
			timeout = (int)left;
		}
		struct pollfd pf[5] = {
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = ctl_open ? ctl_fd : -1, .events = POLLIN },
			{ .fd = (in_fd >= 0 && in.len == 0) ? in_fd : -1, .events = POLLIN },
			{ .fd = pty, .events = (short)((out.len == 0 ? POLLIN : 0) | (in.len ? POLLOUT : 0)) },
			{ .fd = out.len ? out_fd : -1, .events = POLLOUT },
		};
		if (pty >= 0 && pf[3].events == 0)
			pf[3].fd = -1;
		int r = poll(pf, 5, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
		}
		if (pf[0].revents & POLLIN)
			handle_signals();
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
			handle_control();
		if (pf[2].revents & (POLLIN | POLLHUP | POLLERR)) {
			/* A terminal has no EOF: the end of input only stops the relay. */
			if (buf_fill(&in, in_fd) < 0)
				in_fd = -1;
		}
		if (pf[3].revents & POLLOUT) {
			if (buf_flush(&in, pty) < 0)
				in.len = in.off = 0;
		}
		if (pf[3].revents & (POLLIN | POLLHUP | POLLERR)) {
			/* EIO: every slave fd is closed, all output was read. */
			if (buf_fill(&out, pty) < 0) {
				close(pty);
				pty = -1;
			}
		}
		if (out.len && out_fd >= 0 && (pf[4].revents & (POLLOUT | POLLERR | POLLHUP) || pf[3].revents)) {
			if (buf_flush(&out, out_fd) < 0) {
				out_fd = -1; /* the reader is gone: keep waiting for the process, drop output */
				out.len = out.off = 0;
			}
		}
		if (pty < 0 && out.len == 0 && proc_done)
			break;
	}
	if (out.len && out_fd >= 0) {
		fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) & ~O_NONBLOCK);
		buf_flush(&out, out_fd);
	}
}

int main(int argc, char **argv)
{
	parse_command_line(argc, argv);
	close_inherited_fds();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fail("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	/* The launcher (berth-launch), our parent, leaves when berthd does: that must not leave the process behind
	 * (the control fd's EOF covers it too). Until RUN arrives nothing is started, so a signal's
	 * default action (exit) is right. */
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1)
		_exit(EXIT_FAIL);
	fcntl(ctl_fd, F_SETFL, fcntl(ctl_fd, F_GETFL) & ~O_NONBLOCK);
	receive_run();

	sigset_t mask, orig;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &orig);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		fail("signalfd: %s", strerror(errno));
	if (tty)
		console_fd = listen_console();

	start_runtime(&orig);
	wait_runtime();
	supervise();

	reap();
	remove_scratch();
	int code = exit_code(proc_status);
	status_line("EXIT %d", code);
	return code;
}
