/* Creating the container through the OCI runtime (create.c). */
#ifndef BERTH_SHIM_CREATE_H
#define BERTH_SHIM_CREATE_H

#include <signal.h>

/* Runs `<runtime> create` and takes the container's stdio; fail_start()s on
 * any error. orig_mask is the signal mask the runtime gets back. */
void create_container(const sigset_t *orig_mask);

#endif
