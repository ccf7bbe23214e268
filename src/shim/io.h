/* The container's stdio: output to the CRI log and attach clients, stdin,
 * the terminal size (io.c). */
#ifndef BERTH_SHIM_IO_H
#define BERTH_SHIM_IO_H

#include "crilog.h"
#include "proto.h"

#include <stddef.h>

/* (Re)opens the CRI log file (--log-path); 0 without one. */
int open_log(void);
/* crilog_emit_fn writing one record to the CRI log file. */
void log_emit(void *ctx, const char *stream, char tag, const char *data, size_t len);
int pump_output(int *fd, struct crilog_stream *ls, enum shim_frame_type type);
void stdin_close_now(void);
void stdin_flush(void);
void do_resize(unsigned w, unsigned h, const char **err);

#endif
