/* berth-shim's shared state, defined in state.c: the paths in the state
 * directory, the fds it holds, and what is known of the container and its
 * exit. */
#ifndef BERTH_SHIM_SHIM_H
#define BERTH_SHIM_SHIM_H

#include "crilog.h"
#include "obuf.h"

#include <limits.h>
#include <sys/types.h>

/* Files in the state directory: "" until state_paths_init (path_console until
 * terminal mode sets it up, use_console_path). */
extern const char *path_ctl, *path_console, *path_pid, *path_exit, *path_exit_tmp, *path_runtime_log,
	*path_shim_log, *path_shim_pid;

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

/* Sets the paths above to <state-dir>/<name>, all in one allocation sized
 * to them (a long-running shim keeps them: no page of the shim's own per
 * path). -1 with errno ENAMETOOLONG when one would reach PATH_MAX, ENOMEM
 * when the allocation fails. */
int state_paths_init(void);
/* Terminal mode: from now on path_console is <state-dir>/console.sock. */
void use_console_path(void);
/* Closes *fd if open and sets it to -1. */
void close_fd(int *fd);

#endif
