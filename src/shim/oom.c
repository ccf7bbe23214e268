/* OOM detection: the oom_kill counter of the container's memory cgroup
 * (--cgroup-path), read after create and again at exit. */
#include "oom.h"

#include "cli.h"

#include <limits.h>
#include <stdio.h>

/* Current oom_kill counter of the container's memory cgroup, or -1. */
long long read_oom_kills(void)
{
	static const char *const roots[] = { "", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	static const char *const files[] = { "memory.events", "memory.oom_control" };
	for (int i = 0; i < opt.n_cgroup_paths; i++) {
		for (size_t r = 0; r < sizeof(roots) / sizeof(roots[0]); r++) {
			for (size_t f = 0; f < 2; f++) {
				char p[PATH_MAX];
				const char *cg = opt.cgroup_paths[i];
				if (r == 0 && cg[0] != '/')
					continue;
				if (snprintf(p, sizeof(p), "%s%s%s/%s", roots[r], cg[0] == '/' ? "" : "/", cg, files[f]) >= (int)sizeof(p))
					continue;
				FILE *fp = fopen(p, "re");
				if (!fp)
					continue;
				char line[256];
				long long v = -1;
				while (fgets(line, sizeof(line), fp))
					if (sscanf(line, "oom_kill %lld", &v) == 1)
						break;
				fclose(fp);
				if (v >= 0)
					return v;
			}
		}
	}
	return -1;
}
