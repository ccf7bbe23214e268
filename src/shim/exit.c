/* The container's exit: reaping children (we are a subreaper), recording the
 * exit status durably in <state-dir>/exit, and the last words to clients. */
#include "exit.h"

#include "attach.h"
#include "cli.h"
#include "ctrl.h"
#include "diag.h"
#include "oom.h"
#include "shim.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FINAL_FLUSH_MS 1000           /* last output to clients before exit */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void note_exit(pid_t pid, int status, long long at)
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
void reap_children(pid_t runtime_pid, int *rt_status, int *rt_done)
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

void drain_signalfd(void)
{
	struct signalfd_siginfo si;
	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
}

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

void finish(void)
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
