/* Reaping children and the container's exit (exit.c). */
#ifndef BERTH_SHIM_EXIT_H
#define BERTH_SHIM_EXIT_H

#include <sys/types.h>

void note_exit(pid_t pid, int status, long long at);
void reap_children(pid_t runtime_pid, int *rt_status, int *rt_done);
void drain_signalfd(void);
/* Records the exit, tells the clients, and closes everything. */
void finish(void);

#endif
