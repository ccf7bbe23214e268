/* Attach clients: output frames out, stdin and resize frames in (attach.c). */
#ifndef BERTH_SHIM_ATTACH_H
#define BERTH_SHIM_ATTACH_H

#include "proto.h"

#include <stddef.h>

void client_send(int idx, enum shim_frame_type type, const void *data, size_t len);
/* Sends container output to every attach client that asked for the stream. */
void fan_out(enum shim_frame_type type, const char *data, size_t len);
void handle_frame(int idx, const struct shim_frame *f);

#endif
