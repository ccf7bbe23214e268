/* The forked child's side of starting a program (child.c). */
#ifndef BERTH_LAUNCH_CHILD_H
#define BERTH_LAUNCH_CHILD_H

/* Default signal dispositions, nothing blocked, a new session if asked, cwd
 * (unless empty), stdio[0..nfds) as fds 0..nfds-1 (nfds <= 10), then exec of `file` (looked
 * up in envp's PATH without a '/'); on failure the errno goes to errpipe and
 * the child exits 127. Never returns. */
void child_exec(int stdio[], int nfds, int setsid_flag, const char *cwd, const char *file, char **argv, char **envp,
		int errpipe) __attribute__((noreturn));

#endif
