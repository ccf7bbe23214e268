/* berth-launch: starts berthd's helper processes (runc, berth-shim,
 * berth-pinns, CNI plugins, mount) on berthd's behalf, so berthd never forks
 * itself. A fork of berthd (a Node process of ~90 MB) copies its page tables
 * and blocks its event loop until the child has exec'd, about 2 ms per child
 * on a 2-core machine; this process is a few hundred KiB and forks in tens of
 * microseconds. One instance per berthd, started once; requests and replies
 * travel on its stdin and stdout (PROTOCOL.md). It also forks berthd's exec
 * supervisors and hands their sockets over Node's IPC channel (supervise.c).
 * It reaps every child, and exits when its stdin closes (berthd gone), leaving
 * running children alone (supervisors leave too: their PDEATHSIG). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "runtime_copy.h"
#include "supervise.h"

#define MAX_REQUEST (8u << 20)   /* one request frame, stdin data included */
#define MAX_CHILDREN 256         /* children running at once; more are refused (EAGAIN) */
#define MAX_FIELDS 4096          /* argv + env entries of one request */
#define MAX_CAP (16u << 20)      /* bytes kept of one output stream */

enum { S_OUT, S_ERR, S_READY, S_EXECERR, N_STREAMS };
enum { F_SETSID = 1, F_READY_FD = 2, F_STDIN = 4 };

struct buf {
	char *data;
	size_t len, cap;
};

struct child {
	int used;
	unsigned long long id;
	pid_t pid;
	int fd[N_STREAMS];      /* read ends; -1 once at EOF */
	struct buf out[N_STREAMS];
	size_t keep[N_STREAMS]; /* bytes kept of each stream; the rest is read and dropped */
	int in_fd;              /* write end of the child's stdin, while data is left */
	char *in_data;
	size_t in_len, in_off;
	int exited, status, timed_out, kill_sig;
	long long deadline_ms;  /* 0: none */
};

static struct child children[MAX_CHILDREN];
static struct buf inbuf, outq;
static size_t outq_off;
static int sig_fd = -1;
static int stdin_open = 1;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
	fprintf(stderr, "berth-launch: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			die("out of memory");
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf){ 0 };
}

static void put_u32(struct buf *b, uint32_t v)
{
	unsigned char h[4] = { v >> 24, v >> 16, v >> 8, v };
	buf_add(b, h, 4);
}

/* Queues one reply frame: the header fields, then each stream's bytes. */
static void reply(unsigned long long id, const char *kind, long value, int timed_out, struct buf *streams, int n)
{
	char head[256];
	int hl = snprintf(head, sizeof(head), "%llu%c%s%c%ld%c%d%c", id, 0, kind, 0, value, 0, timed_out, 0);
	size_t total = (size_t)hl;
	for (int i = 0; i < n; i++) {
		char num[32];
		total += (size_t)snprintf(num, sizeof(num), "%zu", streams[i].len) + 1 + streams[i].len;
	}
	put_u32(&outq, (uint32_t)total);
	buf_add(&outq, head, (size_t)hl);
	for (int i = 0; i < n; i++) {
		char num[32];
		int nl = snprintf(num, sizeof(num), "%zu", streams[i].len);
		buf_add(&outq, num, (size_t)nl + 1);
	}
	for (int i = 0; i < n; i++)
		if (streams[i].len)
			buf_add(&outq, streams[i].data, streams[i].len);
}

static struct buf no_output[3];

static void reply_error(unsigned long long id, int err)
{
	reply(id, "error", err, 0, no_output, 3);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---------- requests ---------- */

struct fields {
	char *f[MAX_FIELDS];
	int n;
	size_t off; /* where the next field starts */
	char *rest; /* bytes after the last NUL-terminated field taken */
	size_t rest_len;
};

/* Takes `want` NUL-terminated fields from p[0..len); -1 if they are not all there. */
static int take_fields(struct fields *fs, char *p, size_t len, int want)
{
	size_t off = fs->off;
	while (fs->n < want) {
		if (fs->n >= MAX_FIELDS)
			return -1;
		char *z = memchr(p + off, 0, len - off);
		if (!z)
			return -1;
		fs->f[fs->n++] = p + off;
		off = (size_t)(z - p) + 1;
	}
	fs->off = off;
	fs->rest = p + off;
	fs->rest_len = len - off;
	return 0;
}

static int parse_num(const char *s, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int nonblock_cloexec_pipe(int p[2])
{
	return pipe2(p, O_CLOEXEC | O_NONBLOCK);
}

/* `run`: id timeout_ms kill_signal flags cwd cap_out cap_err cap_ready runtime file argc argv... envc env... [stdin bytes] */
static void start_run(char *p, size_t len)
{
	struct fields fs = { .n = 0 };
	long long id = 0, timeout, sig, flags, caps[3], argc, envc;
	if (take_fields(&fs, p, len, 11) < 0 || parse_num(fs.f[1], LLONG_MAX, &id) < 0)
		return reply_error((unsigned long long)id, EINVAL);
	if (parse_num(fs.f[2], INT_MAX, &timeout) < 0 || parse_num(fs.f[3], NSIG - 1, &sig) < 0 ||
	    parse_num(fs.f[4], 7, &flags) < 0 || parse_num(fs.f[6], MAX_CAP, &caps[0]) < 0 ||
	    parse_num(fs.f[7], MAX_CAP, &caps[1]) < 0 || parse_num(fs.f[8], MAX_CAP, &caps[2]) < 0)
		return reply_error((unsigned long long)id, EINVAL);
	const char *cwd = fs.f[5];
	const char *runtime = fs.f[9];
	const char *file = fs.f[10];
	if (take_fields(&fs, p, len, 12) < 0 || parse_num(fs.f[11], MAX_FIELDS / 2, &argc) < 0 ||
	    take_fields(&fs, p, len, 12 + (int)argc + 1) < 0 ||
	    parse_num(fs.f[12 + argc], MAX_FIELDS / 2, &envc) < 0 ||
	    take_fields(&fs, p, len, 12 + (int)argc + 1 + (int)envc) < 0)
		return reply_error((unsigned long long)id, EINVAL);
	struct child *c = NULL;
	for (int i = 0; i < MAX_CHILDREN && !c; i++)
		if (!children[i].used)
			c = &children[i];
	if (!c)
		return reply_error((unsigned long long)id, EAGAIN);

	/* A sealed copy of `runtime` (runtime_copy.c), the child's next fd after its stdio, named by
	 * `--runtime-fd N` after its arguments; none (not asked for, or not made): nothing added. */
	int nfds = (flags & F_READY_FD) ? 4 : 3;
	int runtime_fd = *runtime ? runtime_copy(runtime) : -1;
	char runtime_fd_arg[16];
	snprintf(runtime_fd_arg, sizeof(runtime_fd_arg), "%d", nfds);
	char *argv[MAX_FIELDS / 2 + 4], *envp[MAX_FIELDS / 2 + 1];
	argv[0] = (char *)file;
	for (int i = 0; i < argc; i++)
		argv[i + 1] = fs.f[12 + i];
	argv[argc + 1] = NULL;
	if (runtime_fd >= 0) {
		argv[argc + 1] = "--runtime-fd";
		argv[argc + 2] = runtime_fd_arg;
		argv[argc + 3] = NULL;
	}
	for (int i = 0; i < envc; i++)
		envp[i] = fs.f[13 + argc + i];
	envp[envc] = NULL;

	int pipes[N_STREAMS][2], in_pipe[2] = { -1, -1 }, nul = -1;
	for (int i = 0; i < N_STREAMS; i++)
		pipes[i][0] = pipes[i][1] = -1;
	int err = 0;
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0 || nonblock_cloexec_pipe(pipes[S_OUT]) < 0 || nonblock_cloexec_pipe(pipes[S_ERR]) < 0 ||
	    nonblock_cloexec_pipe(pipes[S_EXECERR]) < 0 || ((flags & F_READY_FD) && nonblock_cloexec_pipe(pipes[S_READY]) < 0) ||
	    ((flags & F_STDIN) && nonblock_cloexec_pipe(in_pipe) < 0))
		err = errno;
	pid_t pid = -1;
	if (!err) {
		/* The child's ends block, as Node's do. */
		for (int i = 0; i < N_STREAMS; i++)
			if (pipes[i][1] >= 0)
				fcntl(pipes[i][1], F_SETFL, 0);
		if (in_pipe[0] >= 0)
			fcntl(in_pipe[0], F_SETFL, 0);
		int stdio[5] = { in_pipe[0] >= 0 ? in_pipe[0] : nul, pipes[S_OUT][1], pipes[S_ERR][1], pipes[S_READY][1], -1 };
		stdio[nfds] = runtime_fd;
		pid = fork();
		if (pid == 0)
			child_exec(stdio, runtime_fd >= 0 ? nfds + 1 : nfds, (flags & F_SETSID) != 0, cwd, file, argv, envp,
				   pipes[S_EXECERR][1]);
		if (pid < 0)
			err = errno;
	}
	close_fd(&nul);
	close_fd(&in_pipe[0]);
	for (int i = 0; i < N_STREAMS; i++)
		close_fd(&pipes[i][1]);
	if (err) {
		for (int i = 0; i < N_STREAMS; i++)
			close_fd(&pipes[i][0]);
		close_fd(&in_pipe[1]);
		return reply_error((unsigned long long)id, err);
	}
	*c = (struct child){ .used = 1, .id = (unsigned long long)id, .pid = pid, .in_fd = -1, .kill_sig = (int)sig };
	for (int i = 0; i < N_STREAMS; i++)
		c->fd[i] = pipes[i][0];
	c->keep[S_OUT] = (size_t)caps[0];
	c->keep[S_ERR] = (size_t)caps[1];
	c->keep[S_READY] = (size_t)caps[2];
	c->keep[S_EXECERR] = sizeof(int);
	c->deadline_ms = timeout > 0 ? now_ms() + timeout : 0;
	if (in_pipe[1] >= 0) {
		c->in_fd = in_pipe[1];
		c->in_len = fs.rest_len;
		c->in_data = malloc(fs.rest_len ? fs.rest_len : 1);
		if (!c->in_data)
			die("out of memory");
		memcpy(c->in_data, fs.rest, fs.rest_len);
		if (c->in_len == 0)
			close_fd(&c->in_fd);
	}
}

/* The id and flags of a syscall request with `want` fields; replies EINVAL and returns -1 when malformed. */
static int syscall_request(struct fields *fs, char *p, size_t len, int want, int flags_at, long long flags_max,
			   long long *id, long long *flags)
{
	if (take_fields(fs, p, len, want) < 0 || parse_num(fs->f[1], LLONG_MAX, id) < 0 ||
	    parse_num(fs->f[flags_at], flags_max, flags) < 0) {
		reply_error((unsigned long long)*id, EINVAL);
		return -1;
	}
	return 0;
}

static void reply_syscall(long long id, int err)
{
	if (err)
		reply_error((unsigned long long)id, err);
	else
		reply((unsigned long long)id, "exit", 0, 0, no_output, 3);
}

/* `mount`: id source fstype flags data target cwd (relative overlay lower dirs resolve against cwd). */
static void do_mount(char *p, size_t len)
{
	struct fields fs = { .n = 0 };
	long long id = 0, flags;
	if (syscall_request(&fs, p, len, 8, 4, UINT32_MAX, &id, &flags) < 0)
		return;
	int back = open(".", O_PATH | O_CLOEXEC | O_DIRECTORY);
	int err = 0;
	if (back < 0 || (*fs.f[7] && chdir(fs.f[7]) < 0))
		err = errno;
	else if (mount(fs.f[2], fs.f[6], fs.f[3], (unsigned long)flags, *fs.f[5] ? fs.f[5] : NULL) < 0)
		err = errno;
	if (back >= 0 && fchdir(back) < 0)
		die("fchdir");
	close_fd(&back);
	reply_syscall(id, err);
}

/* `umount`: id flags target */
static void do_umount(char *p, size_t len)
{
	struct fields fs = { .n = 0 };
	long long id = 0, flags;
	if (syscall_request(&fs, p, len, 4, 2, INT_MAX, &id, &flags) < 0)
		return;
	reply_syscall(id, umount2(fs.f[3], (int)flags) < 0 ? errno : 0);
}

/* `supervise`: id flags file runtime (flags: 1 = a stdin socket; runtime: the binary to give a sealed
 * copy of, or empty); the outcome goes on the IPC channel. */
static void do_supervise(char *p, size_t len)
{
	struct fields fs = { .n = 0 };
	long long id = 0, flags;
	if (syscall_request(&fs, p, len, 5, 2, 1, &id, &flags) < 0)
		return;
	int err = supervisor_start((unsigned long long)id, flags & 1, fs.f[3], fs.f[4]);
	if (err)
		reply_error((unsigned long long)id, err);
}

static void handle_request(char *p, size_t len)
{
	size_t op_len = strnlen(p, len);
	if (op_len == len)
		return reply_error(0, EINVAL);
	if (!strcmp(p, "run"))
		start_run(p, len);
	else if (!strcmp(p, "mount"))
		do_mount(p, len);
	else if (!strcmp(p, "umount"))
		do_umount(p, len);
	else if (!strcmp(p, "supervise"))
		do_supervise(p, len);
	else {
		struct fields fs = { .n = 0 };
		long long id = 0;
		if (take_fields(&fs, p, len, 2) == 0)
			parse_num(fs.f[1], LLONG_MAX, &id);
		reply_error((unsigned long long)id, ENOSYS);
	}
}

static void read_requests(void)
{
	char tmp[65536];
	ssize_t n = read(0, tmp, sizeof(tmp));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		stdin_open = 0;
		return;
	}
	if (n < 0)
		return;
	buf_add(&inbuf, tmp, (size_t)n);
	size_t off = 0;
	while (inbuf.len - off >= 4) {
		const unsigned char *h = (const unsigned char *)inbuf.data + off;
		uint32_t flen = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
		if (flen > MAX_REQUEST) {
			fprintf(stderr, "berth-launch: request of %u bytes is over the limit\n", flen);
			exit(1);
		}
		if (inbuf.len - off - 4 < flen)
			break;
		/* A request's fields are read in place: it ends in a NUL of its own. */
		char *req = malloc(flen + 1);
		if (!req)
			die("out of memory");
		memcpy(req, inbuf.data + off + 4, flen);
		req[flen] = 0;
		handle_request(req, flen);
		free(req);
		off += 4 + flen;
	}
	memmove(inbuf.data, inbuf.data + off, inbuf.len - off);
	inbuf.len -= off;
}

/* ---------- children ---------- */

static void drain(struct child *c, int s)
{
	char tmp[65536];
	for (;;) {
		ssize_t n = read(c->fd[s], tmp, sizeof(tmp));
		if (n > 0) {
			size_t room = c->keep[s] > c->out[s].len ? c->keep[s] - c->out[s].len : 0;
			buf_add(&c->out[s], tmp, (size_t)n < room ? (size_t)n : room);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close_fd(&c->fd[s]);
		return;
	}
}

static void feed_stdin(struct child *c)
{
	while (c->in_off < c->in_len) {
		ssize_t n = write(c->in_fd, c->in_data + c->in_off, c->in_len - c->in_off);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break; /* EPIPE: the child does not read its input; its exit status tells */
		c->in_off += (size_t)n;
	}
	close_fd(&c->in_fd);
}

/* Replies for a child once it exited and its pipes are at EOF (Node's 'close'). */
static void maybe_finish(struct child *c)
{
	if (!c->exited)
		return;
	for (int i = 0; i < N_STREAMS; i++)
		if (c->fd[i] >= 0)
			return;
	if (c->out[S_EXECERR].len == sizeof(int)) {
		int e;
		memcpy(&e, c->out[S_EXECERR].data, sizeof(e));
		reply_error(c->id, e);
	} else if (WIFSIGNALED(c->status)) {
		reply(c->id, "signal", WTERMSIG(c->status), c->timed_out, c->out, 3);
	} else {
		reply(c->id, "exit", WEXITSTATUS(c->status), c->timed_out, c->out, 3);
	}
	close_fd(&c->in_fd);
	free(c->in_data);
	for (int i = 0; i < N_STREAMS; i++)
		buf_free(&c->out[i]);
	*c = (struct child){ 0 };
}

static void reap(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) == sizeof(si))
		;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		if (supervisor_reaped(pid, status))
			continue;
		for (int i = 0; i < MAX_CHILDREN; i++) {
			struct child *c = &children[i];
			if (c->used && c->pid == pid) {
				c->exited = 1;
				c->status = status;
				close_fd(&c->in_fd);
			}
		}
	}
}

static void flush_replies(void)
{
	while (outq_off < outq.len) {
		ssize_t n = write(1, outq.data + outq_off, outq.len - outq_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			exit(0); /* berthd is gone */
		outq_off += (size_t)n;
	}
	outq.len = outq_off = 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_fd < 0)
		die("signalfd");
	if (fcntl(0, F_SETFL, O_NONBLOCK) < 0 || fcntl(1, F_SETFL, O_NONBLOCK) < 0)
		die("stdio");
	int ch = channel_open();
	/* Anything else inherited stays out of the children. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != sig_fd)
			fcntl(fd, F_SETFD, FD_CLOEXEC);

	static struct pollfd pf[3 + MAX_CHILDREN * (N_STREAMS + 1)];
	static struct { struct child *c; int s; } who[3 + MAX_CHILDREN * (N_STREAMS + 1)];
	while (stdin_open || outq.len > outq_off) {
		int np = 0;
		pf[np++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = stdin_open ? 0 : -1, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = ch, .events = POLLIN };
		long long now = now_ms(), next = -1;
		for (int i = 0; i < MAX_CHILDREN; i++) {
			struct child *c = &children[i];
			if (!c->used)
				continue;
			if (c->deadline_ms && !c->exited && !c->timed_out) {
				if (now >= c->deadline_ms) {
					c->timed_out = 1;
					kill(c->pid, c->kill_sig);
				} else if (next < 0 || c->deadline_ms - now < next) {
					next = c->deadline_ms - now;
				}
			}
			for (int s = 0; s < N_STREAMS; s++) {
				if (c->fd[s] < 0)
					continue;
				who[np].c = c;
				who[np].s = s;
				pf[np++] = (struct pollfd){ .fd = c->fd[s], .events = POLLIN };
			}
			if (c->in_fd >= 0) {
				who[np].c = c;
				who[np].s = -1;
				pf[np++] = (struct pollfd){ .fd = c->in_fd, .events = POLLOUT };
			}
		}
		int out_slot = -1;
		if (outq.len > outq_off) {
			out_slot = np;
			pf[np++] = (struct pollfd){ .fd = 1, .events = POLLOUT };
		}
		if (poll(pf, (nfds_t)np, (int)next) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pf[0].revents)
			reap();
		if (pf[2].revents && !channel_drain())
			ch = -1;
		for (int k = 3; k < np; k++) {
			if (k == out_slot || !pf[k].revents)
				continue;
			if (who[k].s < 0)
				feed_stdin(who[k].c);
			else if (who[k].c->fd[who[k].s] == pf[k].fd)
				drain(who[k].c, who[k].s);
		}
		if (pf[1].revents)
			read_requests();
		for (int i = 0; i < MAX_CHILDREN; i++)
			if (children[i].used)
				maybe_finish(&children[i]);
		flush_replies();
	}
	return 0;
}
