/* berth-shim's command line: the options it was started with (cli.c). */
#ifndef BERTH_SHIM_CLI_H
#define BERTH_SHIM_CLI_H

#include <stddef.h>

#define MAX_LIST 8

struct options {
	const char *id, *bundle, *state_dir, *runtime, *runtime_root, *log_path;
	const char *cgroup_paths[MAX_LIST];
	int n_cgroup_paths;
	const char *shim_cgroups[MAX_LIST];
	int n_shim_cgroups;
	const char *runtime_args[MAX_LIST];
	int n_runtime_args;
	int use_stdin, stdin_once, tty, foreground;
	size_t log_max_line;
	int ready_fd;
	int runtime_fd; /* a sealed copy of the runtime binary to exec (berth-launch), or -1 */
	const char *spare_socket; /* spare mode (spare.c): the abstract socket name */
};

extern struct options opt;

/* Fills opt from argv; prints usage and exits 2 on a bad command line. */
void parse_args(int argc, char **argv);

#endif
