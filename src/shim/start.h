/* berth-shim start-up steps before the container exists (start.c). */
#ifndef BERTH_SHIM_START_H
#define BERTH_SHIM_START_H

void close_inherited_fds(void);
/* Forks twice and detaches; the caller's process exits with the middle
 * child's status. */
void daemonize(void);
int write_file(const char *path, const char *data, int flags);
int shim_running(void);

#endif
