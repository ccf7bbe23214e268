/* berth-shim control protocol: pure parsing, no I/O (fuzzed by fuzz_proto.c).
 * The wire format is documented in PROTOCOL.md. */
#ifndef BERTH_SHIM_PROTO_H
#define BERTH_SHIM_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* Longest command line accepted, excluding the '\n'. */
#define SHIM_CMD_MAX 4096

enum shim_cmd_kind {
	SHIM_CMD_STATE,
	SHIM_CMD_REOPEN,
	SHIM_CMD_RESIZE,
	SHIM_CMD_CLOSE_STDIN,
	SHIM_CMD_ATTACH,
	SHIM_CMD_WAIT,
	SHIM_CMD_START,
};

/* ATTACH flags */
#define SHIM_ATTACH_STDIN 1u
#define SHIM_ATTACH_STDOUT 2u
#define SHIM_ATTACH_STDERR 4u

struct shim_cmd {
	enum shim_cmd_kind kind;
	unsigned width, height;  /* RESIZE */
	unsigned attach_flags;   /* ATTACH */
};

/* Parses one command line (without its '\n'; a trailing '\r' is tolerated).
 * Returns 0 on success, -1 with *err set to a static message otherwise. */
int shim_parse_command(const char *line, size_t len, struct shim_cmd *out, const char **err);

/* Attach-stream frames: 1 byte type, 4 bytes big-endian payload length, payload. */
#define SHIM_FRAME_HDR 5
#define SHIM_FRAME_MAX 32768

enum shim_frame_type {
	SHIM_FRAME_STDIN = 0,      /* client -> shim */
	SHIM_FRAME_STDOUT = 1,     /* shim -> client */
	SHIM_FRAME_STDERR = 2,     /* shim -> client */
	SHIM_FRAME_RESIZE = 3,     /* client -> shim: u16be width, u16be height */
	SHIM_FRAME_STDIN_EOF = 4,  /* client -> shim, empty */
	SHIM_FRAME_EXIT = 5,       /* shim -> client: exit JSON */
};

struct shim_frame {
	enum shim_frame_type type;
	const uint8_t *payload;
	uint32_t len;
	unsigned width, height; /* RESIZE */
};

/* Decodes the next client->shim frame from buf. Returns the number of bytes it
 * occupies (> 0), 0 if more bytes are needed, or -1 if the stream is invalid
 * (unknown or shim->client type, oversized payload, malformed RESIZE). */
long shim_frame_next(const uint8_t *buf, size_t len, struct shim_frame *out);

/* Writes a frame header for a payload of len bytes into hdr. */
void shim_frame_header(uint8_t hdr[SHIM_FRAME_HDR], enum shim_frame_type type, uint32_t len);

#endif
