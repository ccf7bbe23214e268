/* START: releasing a created runc container without running `runc start`
 * (release.c). */
#ifndef BERTH_SHIM_RELEASE_H
#define BERTH_SHIM_RELEASE_H

/* Lets the container's init exec the container process; NULL on success,
 * else why not (a static message). */
const char *release_container(void);

#endif
