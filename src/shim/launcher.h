/* berth-exec --launcher (launcher.c): forks exec supervisors for berthd. */
#ifndef BERTH_SHIM_LAUNCHER_H
#define BERTH_SHIM_LAUNCHER_H

/* Serves berthd's requests on its IPC channel until it closes; the exit status. */
int launcher_main(void);

#endif
