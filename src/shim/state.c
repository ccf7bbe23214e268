/* berth-shim's shared state (shim.h) in one place: paths, fds, the container
 * and its exit status. */
#include "shim.h"

#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *path_ctl = "", *path_console = "", *path_pid = "", *path_exit = "", *path_exit_tmp = "",
	   *path_runtime_log = "", *path_shim_log = "", *path_shim_pid = "";
static const char *console_path = "";

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

int state_paths_init(void)
{
	static const struct {
		const char **path;
		const char *name;
	} files[] = {
		{ &path_ctl, "ctl.sock" },
		{ &path_pid, "container.pid" },
		{ &path_exit, "exit" },
		{ &path_exit_tmp, "exit.tmp" },
		{ &path_runtime_log, "runtime.log" },
		{ &path_shim_log, "shim.log" },
		{ &path_shim_pid, "shim.pid" },
		{ &console_path, "console.sock" },
	};
	enum { N_FILES = sizeof(files) / sizeof(files[0]) };
	size_t dir_len = strlen(opt.state_dir), total = 0;
	for (size_t i = 0; i < N_FILES; i++) {
		size_t len = dir_len + 1 + strlen(files[i].name);
		if (len >= PATH_MAX) {
			errno = ENAMETOOLONG;
			return -1;
		}
		total += len + 1;
	}
	char *p = malloc(total);
	if (!p)
		return -1;
	for (size_t i = 0; i < N_FILES; i++) {
		*files[i].path = p;
		memcpy(p, opt.state_dir, dir_len);
		p[dir_len] = '/';
		p = stpcpy(p + dir_len + 1, files[i].name) + 1;
	}
	return 0;
}

void use_console_path(void)
{
	path_console = console_path;
}
