/* Helpers shared by berth-shim and berth-exec (exec.c): fds, unix
 * sockets, the runtime's console socket and pid file, exit statuses. */
#ifndef BERTH_SHIM_UTIL_H
#define BERTH_SHIM_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

/* Milliseconds on the monotonic clock. */
long long mono_ms(void);

/* Writes all of buf, retrying on EINTR; -1 on error. */
int write_all(int fd, const void *buf, size_t len);

int set_nonblock(int fd);

/* Formats one status line into buf: newlines inside become spaces, the text is
 * cut to fit and ends in '\n'. Returns its length, or -1. */
int format_line(char *buf, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* A wait status as a shell-style exit code: the exit status, 128 + the signal
 * for a killed process, 255 otherwise. */
int exit_code(int status);

/* Closes every fd above stdio but `keep` and `keep_too` (-1 for none), so
 * nothing inherited leaks into the runtime or the container. */
void close_fds_except(int keep, int keep_too);

/* A non-blocking, close-on-exec listening unix socket at path (mode 0600,
 * replacing a stale one). -1 with errno set on failure. */
int listen_unix(const char *path, int backlog);

/* Reads the start of a small file (at most cap - 1 bytes) into buf and ends it
 * with a NUL; returns the length, or -1 when the file is unreadable or empty. */
ssize_t read_small_file(const char *path, char *buf, size_t cap);

/* The pid in a runtime's --pid-file, or -1. */
pid_t read_pid_file(const char *path);

/* Receives the pty master that the runtime sends on the console socket;
 * -1 with errno set when none came. */
int recv_console_fd(int listen_fd);

/* Receives the pty master from a ready console socket, then closes and
 * removes the socket (*listen_fd becomes -1). -1 with errno from the receive
 * when no terminal came. */
int take_console_fd(int *listen_fd, const char *path);

/* After the runtime exited: the pty master if it connected just before
 * exiting, else -1; closes and removes the console socket either way. */
int take_pending_console_fd(int *listen_fd, const char *path);

/* Fills argv with `runtime [runtime_args...] --root root [--log log_path
 * --log-format json]` and returns how many entries it used. */
int runtime_argv_prefix(const char **argv, const char *runtime, const char *const *runtime_args, int n_runtime_args,
			const char *root, const char *log_path);

#endif
