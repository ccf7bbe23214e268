/* berth-shim's shared state, defined in state.c: the paths in the state
 * directory, the fds it holds, and what is known of the container and its
 * exit. */
#ifndef BERTH_SHIM_SHIM_H
#define BERTH_SHIM_SHIM_H

#include "crilog.h"
#include "obuf.h"

#include <limits.h>
#include <sys/types.h>

extern char path_ctl[PATH_MAX], path_console[PATH_MAX], path_pid[PATH_MAX], path_exit[PATH_MAX],
	path_exit_tmp[PATH_MAX], path_runtime_log[PATH_MAX], path_shim_log[PATH_MAX], path_shim_pid[PATH_MAX];

extern int log_fd, out_fd, err_fd, stdin_fd;
extern int stdin_closing, stdin_once_used;
extern struct obuf stdin_buf;
extern int ctl_fd, sig_fd;
extern pid_t container_pid;
extern int container_exited, exit_wstatus;
extern long long exited_at_ns, oom_baseline;
extern int oom_killed;
extern char exit_json[256];
extern struct crilog_stream log_out, log_err;

#define MAX_EARLY 16
struct early_exit { pid_t pid; int status; long long at; };
extern struct early_exit early[MAX_EARLY];
extern int n_early;
extern mode_t saved_umask;

/* <state-dir>/name into dst (PATH_MAX bytes); -1 when it is too long. */
int state_path(char *dst, const char *name);
/* Closes *fd if open and sets it to -1. */
void close_fd(int *fd);

#endif
