/* berth-shim: one small process per container.
 *
 * It detaches from berthd, becomes a child subreaper, runs `<runtime> create`
 * so the container's init becomes its child, holds the container's stdio,
 * writes output to the CRI log file, serves attach and a small control
 * protocol on <state-dir>/ctl.sock (PROTOCOL.md), and records the exit
 * status durably in <state-dir>/exit before it exits.
 *
 * main.c: the start-up sequence and the poll loop. The rest, by concern:
 * cli.c (command line), state.c (shared state, shim.h), diag.c (shim.log,
 * --ready-fd), start.c (detaching), create.c (`<runtime> create`), io.c
 * (container stdio, CRI log), ctrl.c (control protocol server), attach.c
 * (attach clients), exit.c (reaping, exit file), release.c (START of a runc
 * container), oom.c (OOM detection), spare.c (a shim started ahead of need),
 * obuf.c (output buffers), proto.c (protocol parsing), crilog.c (CRI log
 * records), util.c (shared with berth-exec). */
#include "attach.h"
#include "cli.h"
#include "create.h"
#include "crilog.h"
#include "ctrl.h"
#include "diag.h"
#include "exit.h"
#include "io.h"
#include "oom.h"
#include "proto.h"
#include "shim.h"
#include "spare.h"
#include "start.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define STDIN_HIGH (256u * 1024)      /* stop reading attach stdin past this */
#define DRAIN_TIMEOUT_MS 2000         /* output drain after the container exited */

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
	signal(SIGPIPE, SIG_IGN);
	close_inherited_fds();
	/* Our files are created with explicit modes; the runtime (and a container
	 * without process.user.umask) gets the caller's umask back. */
	saved_umask = umask(027);
	/* A spare detaches first and gets the rest of its command line later. */
	int detached = 0;
	if (opt.spare_socket) {
		if (!opt.foreground)
			daemonize();
		detached = 1;
		await_orders(argc, argv);
	}
	if (state_paths_init() < 0) {
		const char *why = errno == ENAMETOOLONG ? "state dir path too long" : "out of memory";
		report_ready("ERR %s", why);
		fprintf(stderr, "berth-shim: %s\n", why);
		return 2;
	}
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
	if (!opt.foreground && !detached)
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
	join_shim_cgroups(pidbuf);
	if (write_file(path_shim_pid, pidbuf, O_CREAT | O_TRUNC) < 0)
		fail_start("write %s: %s", path_shim_pid, strerror(errno));
	if (open_log() < 0)
		fail_start("open log %s: %s", opt.log_path, strerror(errno));
	if (crilog_init(&log_out, "stdout", opt.log_max_line, log_emit, NULL) < 0 ||
	    crilog_init(&log_err, "stderr", opt.log_max_line, log_emit, NULL) < 0)
		fail_start("bad --log-max-line");
	ctl_fd = listen_unix(path_ctl, 16);
	if (ctl_fd < 0)
		fail_start("control socket %s: %s", path_ctl, strerror(errno));

	create_container(&orig);
	oom_baseline = read_oom_kills();
	report_ready("OK %d %d", (int)container_pid, (int)getpid());

	serve();
	finish();
	return 0;
}
