/* berth-shim's shared state (shim.h) in one place: paths, fds, the container
 * and its exit status. */
#include "shim.h"

#include "cli.h"

#include <stdio.h>
#include <unistd.h>

char path_ctl[PATH_MAX], path_console[PATH_MAX], path_pid[PATH_MAX], path_exit[PATH_MAX],
	path_exit_tmp[PATH_MAX], path_runtime_log[PATH_MAX], path_shim_log[PATH_MAX], path_shim_pid[PATH_MAX];

int log_fd = -1;
int out_fd = -1;   /* stdout pipe read end, or pty master */
int err_fd = -1;   /* stderr pipe read end (not in tty mode) */
int stdin_fd = -1; /* stdin pipe write end, or dup of pty master */
int stdin_closing;
int stdin_once_used;
struct obuf stdin_buf;
int ctl_fd = -1;
int sig_fd = -1;
pid_t container_pid;
int container_exited;
int exit_wstatus;
long long exited_at_ns;
long long oom_baseline = -1;
int oom_killed;
char exit_json[256];
struct crilog_stream log_out, log_err;

/* Statuses reaped before the container pid was known (bounded). */
struct early_exit early[MAX_EARLY];
int n_early;
mode_t saved_umask = 022;

void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int state_path(char *dst, const char *name)
{
	int n = snprintf(dst, PATH_MAX, "%s/%s", opt.state_dir, name);
	return (n < 0 || n >= PATH_MAX) ? -1 : 0;
}
