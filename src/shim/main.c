/* berth-shim: one small process per container.
 *
 * It detaches from berthd, becomes a child subreaper, runs `<runtime> create`
 * so the container's init becomes its child, holds the container's stdio,
 * writes output to the CRI log file, serves attach and a small control
 * protocol on <state-dir>/ctl.sock (PROTOCOL.md), and records the exit
 * status durably in <state-dir>/exit before it exits. */
#include "crilog.h"
#include "proto.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 8
#define MAX_CLIENTS 64
#define CLIENT_IN_CAP (SHIM_FRAME_HDR + SHIM_FRAME_MAX)
#define CLIENT_OUT_LIMIT (1u << 20)   /* slow attach clients are dropped past this */
#define STDIN_HIGH (256u * 1024)      /* stop reading attach stdin past this */
#define DRAIN_TIMEOUT_MS 2000         /* output drain after the container exited */
#define FINAL_FLUSH_MS 1000           /* last output to clients before exit */
#define READ_CHUNK 32768

struct options {
	const char *id, *bundle, *state_dir, *runtime, *runtime_root, *log_path;
	const char *cgroup_paths[MAX_LIST];
	int n_cgroup_paths;
	const char *shim_cgroups[MAX_LIST];
	int n_shim_cgroups;
	const char *runtime_args[MAX_LIST];
	int n_runtime_args;
	int use_stdin, stdin_once, tty, foreground;
	size_t log_max_line;
	int ready_fd;
};

struct obuf {
	char *data;
	size_t off, len, cap;
};

enum client_mode { CLIENT_CMD, CLIENT_ATTACH, CLIENT_WAIT };

struct client {
	int fd;
	enum client_mode mode;
	unsigned flags;
	int closing; /* close once out is drained */
	uint8_t *in;
	size_t in_len;
	struct obuf out;
};

static struct options opt = { .log_max_line = 16384, .ready_fd = -1 };
static char path_ctl[PATH_MAX], path_console[PATH_MAX], path_pid[PATH_MAX], path_exit[PATH_MAX],
	path_exit_tmp[PATH_MAX], path_runtime_log[PATH_MAX], path_shim_log[PATH_MAX], path_shim_pid[PATH_MAX];

static int log_fd = -1;
static int out_fd = -1;   /* stdout pipe read end, or pty master */
static int err_fd = -1;   /* stderr pipe read end (not in tty mode) */
static int stdin_fd = -1; /* stdin pipe write end, or dup of pty master */
static int stdin_closing;
static int stdin_once_used;
static struct obuf stdin_buf;
static int ctl_fd = -1;
static int sig_fd = -1;
static pid_t container_pid;
static int container_exited;
static int exit_wstatus;
static long long exited_at_ns;
static long long oom_baseline = -1;
static int oom_killed;
static char exit_json[256];
static struct client *clients[MAX_CLIENTS];
static struct crilog_stream log_out, log_err;

/* Statuses reaped before the container pid was known (bounded). */
static struct { pid_t pid; int status; long long at; } early[16];
static int n_early;
static mode_t saved_umask = 022;

/* ---------- small helpers ---------- */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Diagnostics go to <state-dir>/shim.log: stdio is /dev/null once detached. */
static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
	char ts[64], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	crilog_timestamp(ts, sizeof(ts));
	int fd = path_shim_log[0] ? open(path_shim_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0)
		fd = dup(STDERR_FILENO);
	if (fd >= 0) {
		dprintf(fd, "%s berth-shim[%d]: %s\n", ts, (int)getpid(), msg);
		close(fd);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int obuf_append(struct obuf *b, const void *data, size_t len, size_t limit)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len - b->off + len > limit)
		return -1;
	if (b->len + len > b->cap) {
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + len > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + len)
				cap *= 2;
			char *d = realloc(b->data, cap);
			if (!d)
				return -1;
			b->data = d;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static size_t obuf_pending(const struct obuf *b) { return b->len - b->off; }

/* Writes what the fd accepts; returns -1 on a fatal write error. */
static int obuf_flush(struct obuf *b, int fd)
{
	while (obuf_pending(b) > 0) {
		ssize_t n = write(fd, b->data + b->off, obuf_pending(b));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		b->off += (size_t)n;
	}
	b->off = b->len = 0;
	return 0;
}

static void obuf_free(struct obuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int state_path(char *dst, const char *name)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s", opt.state_dir, name);
	return (n < 0 || n >= PATH_MAX) ? -1 : 0;
}

static void report_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_ready(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = format_line(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (opt.ready_fd >= 0) {
		write_all(opt.ready_fd, msg, (size_t)n);
		close_fd(&opt.ready_fd);
	}
	if (strncmp(msg, "ERR", 3) == 0)
		diag("%.*s", n - 1, msg);
}

static void fail_start(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail_start(const char *fmt, ...)
{
	char msg[3800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report_ready("ERR %s", msg);
	if (path_ctl[0] && ctl_fd >= 0)
		unlink(path_ctl);
	if (path_console[0])
		unlink(path_console);
	unlink(path_shim_pid);
	exit(1);
}

/* ---------- options ---------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: berth-shim --id ID --bundle DIR --state-dir DIR --runtime-root DIR [options]\n"
		"  --runtime PATH        OCI runtime binary (default: runc)\n"
		"  --runtime-arg ARG     extra global runtime argument (repeatable)\n"
		"  --log-path FILE       CRI log file for the container's output\n"
		"  --log-max-line N      split log lines longer than N bytes into P records (default 16384)\n"
		"  --stdin               keep the container's stdin open for attach\n"
		"  --stdin-once          close stdin when the first attach session with stdin ends\n"
		"  --tty                 allocate a terminal (runtime --console-socket)\n"
		"  --cgroup-path PATH    container cgroup, for OOM detection (repeatable)\n"
		"  --shim-cgroup DIR     move the shim into DIR (writes DIR/cgroup.procs; repeatable)\n"
		"  --ready-fd N          write 'OK <pid>' or 'ERR <message>' to fd N once created\n"
		"  --foreground          do not detach (debugging)\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL()                                                              \
	do {                                                               \
		if (!v) {                                                  \
			fprintf(stderr, "berth-shim: %s needs a value\n", a); \
			usage();                                           \
		}                                                          \
		i++;                                                       \
	} while (0)
#define LIST(arr, n)                                                        \
	do {                                                                \
		VAL();                                                      \
		if ((n) >= MAX_LIST) {                                      \
			fprintf(stderr, "berth-shim: too many %s\n", a);    \
			exit(2);                                            \
		}                                                           \
		(arr)[(n)++] = v;                                           \
	} while (0)
		if (!strcmp(a, "--id")) { VAL(); opt.id = v; }
		else if (!strcmp(a, "--bundle")) { VAL(); opt.bundle = v; }
		else if (!strcmp(a, "--state-dir")) { VAL(); opt.state_dir = v; }
		else if (!strcmp(a, "--runtime")) { VAL(); opt.runtime = v; }
		else if (!strcmp(a, "--runtime-root")) { VAL(); opt.runtime_root = v; }
		else if (!strcmp(a, "--log-path")) { VAL(); opt.log_path = v; }
		else if (!strcmp(a, "--runtime-arg")) LIST(opt.runtime_args, opt.n_runtime_args);
		else if (!strcmp(a, "--cgroup-path")) LIST(opt.cgroup_paths, opt.n_cgroup_paths);
		else if (!strcmp(a, "--shim-cgroup")) LIST(opt.shim_cgroups, opt.n_shim_cgroups);
		else if (!strcmp(a, "--stdin")) opt.use_stdin = 1;
		else if (!strcmp(a, "--stdin-once")) opt.stdin_once = 1;
		else if (!strcmp(a, "--tty")) opt.tty = 1;
		else if (!strcmp(a, "--foreground")) opt.foreground = 1;
		else if (!strcmp(a, "--log-max-line") || !strcmp(a, "--ready-fd")) {
			VAL();
			char *end;
			errno = 0;
			long n = strtol(v, &end, 10);
			if (errno || *end || end == v || n < 0 || n > (1L << 24)) {
				fprintf(stderr, "berth-shim: bad value for %s: %s\n", a, v);
				exit(2);
			}
			if (a[2] == 'l') {
				if (n < 1) {
					fprintf(stderr, "berth-shim: --log-max-line must be >= 1\n");
					exit(2);
				}
				opt.log_max_line = (size_t)n;
			} else {
				opt.ready_fd = (int)n;
			}
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
		} else {
			fprintf(stderr, "berth-shim: unknown argument %s\n", a);
			usage();
		}
#undef VAL
#undef LIST
	}
	if (!opt.runtime)
		opt.runtime = "runc";
	if (!opt.id || !opt.bundle || !opt.state_dir || !opt.runtime_root) {
		fprintf(stderr, "berth-shim: --id, --bundle, --state-dir and --runtime-root are required\n");
		usage();
	}
	if (opt.ready_fd >= 0 && opt.ready_fd < 3) {
		fprintf(stderr, "berth-shim: --ready-fd must be >= 3 (stdio goes to /dev/null)\n");
		exit(2);
	}
	if (opt.stdin_once && !opt.use_stdin) {
		fprintf(stderr, "berth-shim: --stdin-once needs --stdin\n");
		exit(2);
	}
}

/* ---------- start-up ---------- */

/* Nothing the caller leaked may reach the runtime or the container, and no
 * pipe of the caller may be held open for the container's lifetime: close
 * every inherited fd but stdio and the ready fd. */
static void close_inherited_fds(void)
{
	close_fds_except(opt.ready_fd);
	if (opt.ready_fd >= 0)
		fcntl(opt.ready_fd, F_SETFD, FD_CLOEXEC);
}

static void daemonize(void)
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

static int write_file(const char *path, const char *data, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		return -1;
	int r = write_all(fd, data, strlen(data));
	if (close(fd) < 0)
		r = -1;
	return r;
}

static int open_log(void)
{
	if (!opt.log_path)
		return 0;
	int fd = open(opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -1;
	close_fd(&log_fd);
	log_fd = fd;
	return 0;
}

/* A live shim answers on ctl.sock: never steal its socket or exit file. */
static int shim_running(void)
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

/* Current oom_kill counter of the container's memory cgroup, or -1. */
static long long read_oom_kills(void)
{
	static const char *const roots[] = { "", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	static const char *const files[] = { "memory.events", "memory.oom_control" };
	for (int i = 0; i < opt.n_cgroup_paths; i++) {
		for (size_t r = 0; r < sizeof(roots) / sizeof(roots[0]); r++) {
			for (size_t f = 0; f < 2; f++) {
				char p[PATH_MAX];
				const char *cg = opt.cgroup_paths[i];
				if (r == 0 && cg[0] != '/')
					continue;
				if (snprintf(p, sizeof(p), "%s%s%s/%s", roots[r], cg[0] == '/' ? "" : "/", cg, files[f]) >= (int)sizeof(p))
					continue;
				FILE *fp = fopen(p, "re");
				if (!fp)
					continue;
				char line[256];
				long long v = -1;
				while (fgets(line, sizeof(line), fp))
					if (sscanf(line, "oom_kill %lld", &v) == 1)
						break;
				fclose(fp);
				if (v >= 0)
					return v;
			}
		}
	}
	return -1;
}

static void note_exit(pid_t pid, int status, long long at)
{
	if (container_pid > 0 && pid == container_pid) {
		if (!container_exited) {
			container_exited = 1;
			exit_wstatus = status;
			exited_at_ns = at;
		}
	} else if (container_pid <= 0 && n_early < (int)(sizeof(early) / sizeof(early[0]))) {
		early[n_early].pid = pid;
		early[n_early].status = status;
		early[n_early].at = at;
		n_early++;
	}
}

/* Reaps every exited child (we are a subreaper: no zombies). Returns the
 * runtime's status through *rt_status when runtime_pid is among them. */
static void reap_children(pid_t runtime_pid, int *rt_status, int *rt_done)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			break;
		if (runtime_pid > 0 && p == runtime_pid) {
			*rt_status = st;
			*rt_done = 1;
		} else {
			note_exit(p, st, now_ns());
		}
	}
}

static void drain_signalfd(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
}

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

static void create_container(const sigset_t *orig_mask)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	int console_fd = -1;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		fail_start("open /dev/null: %s", strerror(errno));

	if (opt.tty) {
		if (state_path(path_console, "console.sock") < 0)
			fail_start("state dir path too long");
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
		execvp(opt.runtime, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", opt.runtime, strerror(errno));
		_exit(127);
	}
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	close_fd(&err_pipe[1]);
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

	if (!WIFEXITED(rt_status) || WEXITSTATUS(rt_status) != 0) {
		char msg[3000];
		size_t len = read_available(err_pipe[0], msg, sizeof(msg));
		if (WIFEXITED(rt_status))
			fail_start("%s create failed (exit status %d): %s", opt.runtime, WEXITSTATUS(rt_status),
				   len ? msg : "no error output; see runtime.log");
		fail_start("%s create killed by signal %d", opt.runtime, WTERMSIG(rt_status));
	}
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

/* ---------- output ---------- */

static void log_emit(void *ctx, const char *stream, char tag, const char *data, size_t len)
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

static void client_free(int idx)
{
	struct client *c = clients[idx];
	if (!c)
		return;
	if (c->mode == CLIENT_ATTACH && (c->flags & SHIM_ATTACH_STDIN) && opt.stdin_once && !stdin_once_used)
		stdin_once_used = stdin_closing = 1;
	close(c->fd);
	free(c->in);
	obuf_free(&c->out);
	free(c);
	clients[idx] = NULL;
}

static void client_send(int idx, enum shim_frame_type type, const void *data, size_t len)
{
	struct client *c = clients[idx];
	uint8_t hdr[SHIM_FRAME_HDR];
	shim_frame_header(hdr, type, (uint32_t)len);
	if (obuf_append(&c->out, hdr, sizeof(hdr), CLIENT_OUT_LIMIT) < 0 ||
	    obuf_append(&c->out, data, len, CLIENT_OUT_LIMIT) < 0) {
		diag("dropping slow attach client");
		client_free(idx);
	}
}

static void fan_out(enum shim_frame_type type, const char *data, size_t len)
{
	unsigned want = type == SHIM_FRAME_STDOUT ? SHIM_ATTACH_STDOUT : SHIM_ATTACH_STDERR;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c && c->mode == CLIENT_ATTACH && !c->closing && (c->flags & want)) {
			for (size_t off = 0; off < len && clients[i]; off += SHIM_FRAME_MAX) {
				size_t chunk = len - off < SHIM_FRAME_MAX ? len - off : SHIM_FRAME_MAX;
				client_send(i, type, data + off, chunk);
			}
		}
	}
}

/* Returns 0 while the stream is open, -1 at EOF. */
static int pump_output(int *fd, struct crilog_stream *ls, enum shim_frame_type type)
{
	char buf[READ_CHUNK];
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

static void stdin_close_now(void)
{
	/* In tty mode this is a dup of the pty master: closing it only stops
	 * input; a terminal has no EOF other than what the program reads. */
	close_fd(&stdin_fd);
	obuf_free(&stdin_buf);
	stdin_closing = 0;
}

static void stdin_flush(void)
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

/* ---------- control protocol ---------- */

static const char *status_json(char *buf, size_t cap)
{
	if (exit_json[0]) {
		snprintf(buf, cap, "{\"pid\":%d,\"status\":\"exited\",\"exit\":%s}", (int)container_pid, exit_json);
	} else {
		snprintf(buf, cap, "{\"pid\":%d,\"status\":\"%s\",\"shimPid\":%d}", (int)container_pid,
			 container_exited ? "exiting" : "running", (int)getpid());
	}
	return buf;
}

static void reply(int idx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int idx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (obuf_append(&clients[idx]->out, line, (size_t)n, CLIENT_OUT_LIMIT) < 0)
		client_free(idx);
}

static void do_resize(unsigned w, unsigned h, const char **err)
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

static void handle_command(int idx, const char *line, size_t len)
{
	struct shim_cmd cmd;
	const char *err = NULL;
	char buf[512];
	if (shim_parse_command(line, len, &cmd, &err) < 0) {
		reply(idx, "ERR %s", err);
		return;
	}
	switch (cmd.kind) {
	case SHIM_CMD_STATE:
		reply(idx, "OK %s", status_json(buf, sizeof(buf)));
		break;
	case SHIM_CMD_REOPEN:
		if (!opt.log_path)
			reply(idx, "ERR no log path configured");
		else if (open_log() < 0)
			reply(idx, "ERR reopen %s: %s", opt.log_path, strerror(errno));
		else
			reply(idx, "OK");
		break;
	case SHIM_CMD_RESIZE:
		do_resize(cmd.width, cmd.height, &err);
		if (err)
			reply(idx, "ERR resize: %s", err);
		else
			reply(idx, "OK");
		break;
	case SHIM_CMD_CLOSE_STDIN:
		if (stdin_fd >= 0)
			stdin_closing = 1;
		stdin_flush();
		reply(idx, "OK");
		break;
	case SHIM_CMD_WAIT:
		if (exit_json[0])
			reply(idx, "OK %s", exit_json);
		else if (clients[idx])
			clients[idx]->mode = CLIENT_WAIT;
		break;
	case SHIM_CMD_ATTACH:
		if ((cmd.attach_flags & SHIM_ATTACH_STDIN) && !opt.use_stdin) {
			reply(idx, "ERR stdin was not enabled for this container");
			break;
		}
		if ((cmd.attach_flags & SHIM_ATTACH_STDIN) && (stdin_fd < 0 || stdin_once_used || stdin_closing)) {
			reply(idx, "ERR stdin is closed");
			break;
		}
		if (exit_json[0]) {
			reply(idx, "ERR container has exited");
			break;
		}
		reply(idx, "OK");
		if (clients[idx]) {
			clients[idx]->mode = CLIENT_ATTACH;
			clients[idx]->flags = cmd.attach_flags;
		}
		break;
	}
}

static void handle_frame(int idx, const struct shim_frame *f)
{
	struct client *c = clients[idx];
	const char *err;
	switch (f->type) {
	case SHIM_FRAME_STDIN:
		if ((c->flags & SHIM_ATTACH_STDIN) && stdin_fd >= 0 && !stdin_closing && f->len > 0) {
			if (obuf_append(&stdin_buf, f->payload, f->len, SIZE_MAX) < 0)
				diag("stdin buffer: out of memory");
			stdin_flush();
		}
		break;
	case SHIM_FRAME_RESIZE:
		do_resize(f->width, f->height, &err);
		break;
	case SHIM_FRAME_STDIN_EOF:
		if ((c->flags & SHIM_ATTACH_STDIN) && opt.stdin_once && stdin_fd >= 0) {
			stdin_once_used = stdin_closing = 1;
			stdin_flush();
		}
		break;
	default:
		break;
	}
}

static void client_readable(int idx)
{
	struct client *c = clients[idx];
	ssize_t n = read(c->fd, c->in + c->in_len, CLIENT_IN_CAP - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(idx);
		return;
	}
	c->in_len += (size_t)n;
	size_t pos = 0;
	while (clients[idx] && pos < c->in_len) {
		if (c->mode == CLIENT_CMD) {
			uint8_t *nl = memchr(c->in + pos, '\n', c->in_len - pos);
			if (!nl) {
				if (c->in_len - pos > SHIM_CMD_MAX) {
					reply(idx, "ERR command too long");
					if (clients[idx])
						clients[idx]->closing = 1;
					return;
				}
				break;
			}
			size_t len = (size_t)(nl - (c->in + pos));
			handle_command(idx, (const char *)c->in + pos, len);
			pos += len + 1;
		} else if (c->mode == CLIENT_ATTACH) {
			struct shim_frame f;
			long r = shim_frame_next(c->in + pos, c->in_len - pos, &f);
			if (r == 0)
				break;
			if (r < 0) {
				diag("invalid attach frame; closing client");
				client_free(idx);
				return;
			}
			handle_frame(idx, &f);
			pos += (size_t)r;
		} else {
			pos = c->in_len; /* WAIT: input ignored */
		}
	}
	if (clients[idx]) {
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
}

static void accept_clients(void)
{
	for (;;) {
		int fd = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid()) {
			close(fd);
			continue;
		}
		int slot = -1;
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (!clients[i]) {
				slot = i;
				break;
			}
		struct client *c = slot >= 0 ? calloc(1, sizeof(*c)) : NULL;
		if (c)
			c->in = malloc(CLIENT_IN_CAP);
		if (!c || !c->in) {
			static const char busy[] = "ERR too many clients\n";
			if (write(fd, busy, sizeof(busy) - 1) < 0) {
				/* nothing more to do */
			}
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->mode = CLIENT_CMD;
		clients[slot] = c;
	}
}

/* ---------- exit ---------- */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

static void record_exit(void)
{
	int code = exit_code(exit_wstatus), sig = WIFSIGNALED(exit_wstatus) ? WTERMSIG(exit_wstatus) : 0;
	long long kills = read_oom_kills();
	oom_killed = kills > 0 && kills > oom_baseline;
	snprintf(exit_json, sizeof(exit_json),
		 "{\"pid\":%d,\"exitCode\":%d,\"signal\":%d,\"exitedAtNs\":\"%lld\",\"oomKilled\":%s}",
		 (int)container_pid, code, sig, exited_at_ns, oom_killed ? "true" : "false");
	char data[300];
	snprintf(data, sizeof(data), "%s\n", exit_json);
	int fd = open(path_exit_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, strlen(data)) < 0 || fsync(fd) < 0) {
		diag("writing %s: %s", path_exit_tmp, strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	if (rename(path_exit_tmp, path_exit) < 0)
		diag("rename %s: %s", path_exit, strerror(errno));
	fsync_dir(opt.state_dir);
	if (log_fd >= 0)
		fsync(log_fd);
}

static void finish(void)
{
	crilog_flush(&log_out);
	crilog_flush(&log_err);
	record_exit();
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (!c)
			continue;
		if (c->mode == CLIENT_WAIT)
			reply(i, "OK %s", exit_json);
		else if (c->mode == CLIENT_ATTACH)
			client_send(i, SHIM_FRAME_EXIT, exit_json, strlen(exit_json));
	}
	/* Unlink first: a connection attempt from now on fails fast and the
	 * caller reads the exit file instead. */
	unlink(path_ctl);
	close_fd(&ctl_fd);
	/* A stale pid file would let someone signal whoever reuses the pid. */
	unlink(path_shim_pid);
	long long deadline = mono_ms() + FINAL_FLUSH_MS;
	for (;;) {
		struct pollfd pf[MAX_CLIENTS];
		int map[MAX_CLIENTS], np = 0;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i] && obuf_pending(&clients[i]->out) > 0) {
				pf[np].fd = clients[i]->fd;
				pf[np].events = POLLOUT;
				map[np++] = i;
			}
		}
		long long left = deadline - mono_ms();
		if (np == 0 || left <= 0)
			break;
		if (poll(pf, (nfds_t)np, (int)left) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < np; k++)
			if (pf[k].revents && obuf_flush(&clients[map[k]]->out, clients[map[k]]->fd) < 0)
				client_free(map[k]);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_free(i);
	close_fd(&out_fd);
	close_fd(&err_fd);
	close_fd(&stdin_fd);
	close_fd(&log_fd);
	close_fd(&sig_fd);
	obuf_free(&stdin_buf);
	crilog_free(&log_out);
	crilog_free(&log_err);
}

/* ---------- main loop ---------- */

static void serve(void)
{
	long long drain_deadline = -1;
	for (;;) {
		int dummy_status, dummy_done = 0;
		if (container_exited) {
			if (out_fd < 0 && err_fd < 0)
				break;
			if (drain_deadline < 0)
				drain_deadline = mono_ms() + DRAIN_TIMEOUT_MS;
			else if (mono_ms() >= drain_deadline)
				break;
		}
		if (stdin_closing && obuf_pending(&stdin_buf) == 0)
			stdin_close_now();

		struct pollfd pf[5 + MAX_CLIENTS];
		int cmap[5 + MAX_CLIENTS];
		int np = 0;
		pf[np++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = err_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = (stdin_fd >= 0 && obuf_pending(&stdin_buf)) ? stdin_fd : -1,
					    .events = POLLOUT };
		int stdin_full = obuf_pending(&stdin_buf) >= STDIN_HIGH;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = clients[i];
			if (!c)
				continue;
			short ev = 0;
			if (!c->closing && !(c->mode == CLIENT_ATTACH && stdin_full))
				ev |= POLLIN;
			if (obuf_pending(&c->out))
				ev |= POLLOUT;
			cmap[np] = i;
			pf[np++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		int timeout = -1;
		if (drain_deadline >= 0) {
			long long left = drain_deadline - mono_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		if (poll(pf, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			diag("poll: %s", strerror(errno));
			break;
		}
		if (pf[0].revents) {
			drain_signalfd();
			reap_children(-1, &dummy_status, &dummy_done);
		}
		if (pf[1].revents & POLLIN)
			accept_clients();
		if (pf[2].revents && out_fd >= 0)
			pump_output(&out_fd, &log_out, SHIM_FRAME_STDOUT);
		if (pf[3].revents && err_fd >= 0)
			pump_output(&err_fd, &log_err, SHIM_FRAME_STDERR);
		if (pf[4].revents)
			stdin_flush();
		for (int k = 5; k < np; k++) {
			int i = cmap[k];
			if (!clients[i] || pf[k].fd != clients[i]->fd)
				continue;
			if (pf[k].revents & POLLOUT) {
				if (obuf_flush(&clients[i]->out, clients[i]->fd) < 0) {
					client_free(i);
					continue;
				}
				if (clients[i]->closing && !obuf_pending(&clients[i]->out)) {
					client_free(i);
					continue;
				}
			}
			if (pf[k].revents & (POLLIN | POLLHUP | POLLERR))
				client_readable(i);
		}
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (opt.ready_fd >= 0 && fcntl(opt.ready_fd, F_GETFD) < 0) {
		fprintf(stderr, "berth-shim: --ready-fd %d is not open\n", opt.ready_fd);
		return 2;
	}
	if (state_path(path_ctl, "ctl.sock") < 0 || state_path(path_pid, "container.pid") < 0 ||
	    state_path(path_exit, "exit") < 0 || state_path(path_exit_tmp, "exit.tmp") < 0 ||
	    state_path(path_runtime_log, "runtime.log") < 0 || state_path(path_shim_log, "shim.log") < 0 ||
	    state_path(path_shim_pid, "shim.pid") < 0) {
		fprintf(stderr, "berth-shim: state dir path too long\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	close_inherited_fds();
	/* Our files are created with explicit modes; the runtime (and a container
	 * without process.user.umask) gets the caller's umask back. */
	saved_umask = umask(027);
	/* The control socket grants attach: its directory is owner-only. */
	if ((mkdir(opt.state_dir, 0700) < 0 && errno != EEXIST) || chmod(opt.state_dir, 0700) < 0) {
		report_ready("ERR state dir %s: %s", opt.state_dir, strerror(errno));
		return 1;
	}
	if (strlen(path_ctl) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		report_ready("ERR control socket path %s is too long for a unix socket", path_ctl);
		return 1;
	}
	if (shim_running()) {
		report_ready("ERR a shim is already running in %s", opt.state_dir);
		return 1;
	}
	unlink(path_exit);
	if (!opt.foreground)
		daemonize();

	signal(SIGHUP, SIG_IGN);
	sigset_t mask, orig;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &orig);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		fail_start("signalfd: %s", strerror(errno));
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		fail_start("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

	char pidbuf[32];
	snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
	for (int i = 0; i < opt.n_shim_cgroups; i++) {
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/cgroup.procs", opt.shim_cgroups[i]) >= (int)sizeof(p) ||
		    write_file(p, pidbuf, O_APPEND) < 0)
			fail_start("move shim into cgroup %s: %s", opt.shim_cgroups[i], strerror(errno));
	}
	if (write_file(path_shim_pid, pidbuf, O_CREAT | O_TRUNC) < 0)
		fail_start("write %s: %s", path_shim_pid, strerror(errno));
	if (open_log() < 0)
		fail_start("open log %s: %s", opt.log_path, strerror(errno));
	if (crilog_init(&log_out, "stdout", opt.log_max_line, log_emit, NULL) < 0 ||
	    crilog_init(&log_err, "stderr", opt.log_max_line, log_emit, NULL) < 0)
		fail_start("out of memory");
	ctl_fd = listen_unix(path_ctl, 16);
	if (ctl_fd < 0)
		fail_start("control socket %s: %s", path_ctl, strerror(errno));

	create_container(&orig);
	oom_baseline = read_oom_kills();
	report_ready("OK %d", (int)container_pid);

	serve();
	finish();
	return 0;
}
