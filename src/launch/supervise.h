/* berth-launch's exec supervisors (supervise.c): forked on request, their
 * sockets handed to berthd over Node's IPC channel, their exits reported there. */
#ifndef BERTH_LAUNCH_SUPERVISE_H
#define BERTH_LAUNCH_SUPERVISE_H

#include <sys/types.h>

/* Takes Node's IPC channel from NODE_CHANNEL_FD (and out of the environment); -1 without one. */
int channel_open(void);
/* Reads and drops what berthd sent on the channel (Node's acknowledgements); 0 once it closed. */
int channel_drain(void);
/* Forks `file --control-fd 3` with new socketpairs as its fds 0-3 (stdin /dev/null unless with_stdin) and,
 * when `runtime` is not empty, a sealed copy of that runtime binary as fd 4 (`--runtime-fd 4`; runtime_copy.c);
 * the errno when it could not be asked for (no channel, too many), else 0 and the outcome goes on the channel. */
int supervisor_start(unsigned long long id, int with_stdin, const char *file, const char *runtime);
/* Reports a reaped child on the channel if it was a supervisor; 1 if it was. */
int supervisor_reaped(pid_t pid, int status);

#endif
