/* berth-shim command-line parsing into struct options. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options opt = { .log_max_line = 16384, .ready_fd = -1, .runtime_fd = -1 };

static void usage(void)
{
	fprintf(stderr,
		"usage: berth-shim --id ID --bundle DIR --state-dir DIR --runtime-root DIR [options]\n"
		"  --runtime PATH        OCI runtime binary (default: runc)\n"
		"  --runtime-arg ARG     extra global runtime argument (repeatable)\n"
		"  --runtime-fd N        exec the runtime from fd N, a sealed copy of it (berth-launch)\n"
		"  --log-path FILE       CRI log file for the container's output\n"
		"  --log-max-line N      split log lines longer than N bytes into P records (default 16384)\n"
		"  --stdin               keep the container's stdin open for attach\n"
		"  --stdin-once          close stdin when the first attach session with stdin ends\n"
		"  --tty                 allocate a terminal (runtime --console-socket)\n"
		"  --cgroup-path PATH    container cgroup, for OOM detection (repeatable)\n"
		"  --shim-cgroup DIR     move the shim into DIR (writes DIR/cgroup.procs; repeatable)\n"
		"  --ready-fd N          write 'OK <pid>' or 'ERR <message>' to fd N once created\n"
		"  --foreground          do not detach (debugging)\n"
		"usage: berth-shim --spare-socket NAME --ready-fd N [--spare-pad X]\n"
		"  detach, report 'SPARE <pid>', then take the options above as orders on\n"
		"  one connection to the abstract unix socket NAME (PROTOCOL.md)\n");
	exit(2);
}

void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL()                                                              \
	do {                                                               \
		if (!v) {                                                  \
			fprintf(stderr, "berth-shim: %s needs a value\n", a); \
			usage();                                           \
		}                                                          \
		i++;                                                       \
	} while (0)
#define LIST(arr, n)                                                        \
	do {                                                                \
		VAL();                                                      \
		if ((n) >= MAX_LIST) {                                      \
			fprintf(stderr, "berth-shim: too many %s\n", a);    \
			exit(2);                                            \
		}                                                           \
		(arr)[(n)++] = v;                                           \
	} while (0)
		if (!strcmp(a, "--id")) { VAL(); opt.id = v; }
		else if (!strcmp(a, "--bundle")) { VAL(); opt.bundle = v; }
		else if (!strcmp(a, "--state-dir")) { VAL(); opt.state_dir = v; }
		else if (!strcmp(a, "--runtime")) { VAL(); opt.runtime = v; }
		else if (!strcmp(a, "--runtime-root")) { VAL(); opt.runtime_root = v; }
		else if (!strcmp(a, "--log-path")) { VAL(); opt.log_path = v; }
		else if (!strcmp(a, "--runtime-arg")) LIST(opt.runtime_args, opt.n_runtime_args);
		else if (!strcmp(a, "--cgroup-path")) LIST(opt.cgroup_paths, opt.n_cgroup_paths);
		else if (!strcmp(a, "--shim-cgroup")) LIST(opt.shim_cgroups, opt.n_shim_cgroups);
		else if (!strcmp(a, "--stdin")) opt.use_stdin = 1;
		else if (!strcmp(a, "--stdin-once")) opt.stdin_once = 1;
		else if (!strcmp(a, "--tty")) opt.tty = 1;
		else if (!strcmp(a, "--foreground")) opt.foreground = 1;
		else if (!strcmp(a, "--spare-socket")) { VAL(); opt.spare_socket = v; }
		else if (!strcmp(a, "--spare-pad")) VAL(); /* room for the orders in /proc/<pid>/cmdline */
		else if (!strcmp(a, "--log-max-line") || !strcmp(a, "--ready-fd") || !strcmp(a, "--runtime-fd")) {
			VAL();
			char *end;
			errno = 0;
			long n = strtol(v, &end, 10);
			if (errno || *end || end == v || n < 0 || n > (1L << 24)) {
				fprintf(stderr, "berth-shim: bad value for %s: %s\n", a, v);
				exit(2);
			}
			if (a[2] == 'l') {
				if (n < 1) {
					fprintf(stderr, "berth-shim: --log-max-line must be >= 1\n");
					exit(2);
				}
				opt.log_max_line = (size_t)n;
			} else if (!strcmp(a, "--ready-fd")) {
				opt.ready_fd = (int)n;
			} else {
				opt.runtime_fd = (int)n;
			}
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage();
		} else {
			fprintf(stderr, "berth-shim: unknown argument %s\n", a);
			usage();
		}
#undef VAL
#undef LIST
	}
	if (!opt.runtime)
		opt.runtime = "runc";
	if (opt.spare_socket && opt.ready_fd < 0) {
		fprintf(stderr, "berth-shim: --spare-socket needs --ready-fd\n");
		exit(2);
	}
	if (!opt.spare_socket && (!opt.id || !opt.bundle || !opt.state_dir || !opt.runtime_root)) {
		fprintf(stderr, "berth-shim: --id, --bundle, --state-dir and --runtime-root are required\n");
		usage();
	}
	if (opt.runtime_fd >= 0 && (opt.runtime_fd < 3 || opt.runtime_fd == opt.ready_fd)) {
		fprintf(stderr, "berth-shim: --runtime-fd must be >= 3 and not the --ready-fd\n");
		exit(2);
	}
	if (opt.ready_fd >= 0 && opt.ready_fd < 3) {
		fprintf(stderr, "berth-shim: --ready-fd must be >= 3 (stdio goes to /dev/null)\n");
		exit(2);
	}
	if (opt.stdin_once && !opt.use_stdin) {
		fprintf(stderr, "berth-shim: --stdin-once needs --stdin\n");
		exit(2);
	}
}
