/* OOM detection from the container's memory cgroup (oom.c). */
#ifndef BERTH_SHIM_OOM_H
#define BERTH_SHIM_OOM_H

long long read_oom_kills(void);

#endif
