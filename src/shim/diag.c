/* Diagnostics to <state-dir>/shim.log and the start-up report on --ready-fd. */
#include "diag.h"

#include "cli.h"
#include "crilog.h"
#include "shim.h"
#include "util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Diagnostics go to <state-dir>/shim.log: stdio is /dev/null once detached. */
void diag(const char *fmt, ...)
{
	char ts[64], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	crilog_timestamp(ts, sizeof(ts));
	int fd = path_shim_log[0] ? open(path_shim_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0)
		fd = dup(STDERR_FILENO);
	if (fd >= 0) {
		dprintf(fd, "%s berth-shim[%d]: %s\n", ts, (int)getpid(), msg);
		close(fd);
	}
}

void report_ready(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = format_line(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (opt.ready_fd >= 0) {
		write_all(opt.ready_fd, msg, (size_t)n);
		close_fd(&opt.ready_fd);
	}
	if (strncmp(msg, "ERR", 3) == 0)
		diag("%.*s", n - 1, msg);
}

void fail_start(const char *fmt, ...)
{
	char msg[3800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report_ready("ERR %s", msg);
	if (path_ctl[0] && ctl_fd >= 0)
		unlink(path_ctl);
	if (path_console[0])
		unlink(path_console);
	unlink(path_shim_pid);
	exit(1);
}
