/* OOM detection: the oom_kill counter of the container's memory cgroup
 * (--cgroup-path), read after create and again at exit. */
#include "oom.h"

#include "cli.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "oom_kill N" line of a memory.events (v2) or memory.oom_control (v1)
 * file, or -1. Read without stdio: a FILE would leave its buffer in the heap
 * of a shim that lives as long as its container. Both files are a few short
 * lines. */
static long long oom_kill_count(const char *path)
{
	char text[512];
	if (read_small_file(path, text, sizeof(text)) < 0)
		return -1;
	for (const char *line = text; line;) {
		if (strncmp(line, "oom_kill ", 9) == 0) {
			char *end;
			long long v = strtoll(line + 9, &end, 10);
			return end != line + 9 && v >= 0 ? v : -1;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

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
				long long v = oom_kill_count(p);
				if (v >= 0)
					return v;
			}
		}
	}
	return -1;
}
