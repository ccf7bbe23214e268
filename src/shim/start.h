/* berth-shim start-up steps before the container exists (start.c). */
#ifndef BERTH_SHIM_START_H
#define BERTH_SHIM_START_H

void close_inherited_fds(void);
/* Forks twice and detaches; the caller's process exits with the middle
 * child's status. */
void daemonize(void);
int write_file(const char *path, const char *data, int flags);
/* Writes pid_line into DIR/cgroup.procs for every --shim-cgroup DIR; a failure
 * is fatal (fail_start). Apart from main: its path buffer is off main's frame,
 * under which the shim's whole life runs. */
void join_shim_cgroups(const char *pid_line);
int shim_running(void);

#endif
