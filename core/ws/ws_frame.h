/* ws_frame — the RFC 6455 §5.2 frame header codec and payload masking.
 *
 * Pure functions over caller buffers: no I/O, no allocation, any thread.
 * The decoder validates everything that can be judged from one header
 * (reserved bits, opcodes, control-frame rules, masking, length encoding);
 * rules that span frames (continuations, message size) live in ws_reader.
 */
#ifndef MBGW_WS_FRAME_H
#define MBGW_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

#define WS_RSV1 0x40
#define WS_RSV2 0x20
#define WS_RSV3 0x10

/* Close status codes (RFC 6455 §7.4.1). */
enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005,   /* never sent on the wire */
	WS_CLOSE_ABNORMAL = 1006,    /* never sent on the wire */
	WS_CLOSE_INVALID_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_EXTENSION = 1010,
	WS_CLOSE_INTERNAL = 1011,
};

#define WS_MAX_HEADER 14       /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL 125

struct ws_frame_hdr {
	bool fin;
	uint8_t rsv;        /* the RSV bits as in the first byte (WS_RSV1...) */
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;       /* payload length */
	uint8_t hdr_len;    /* bytes of header, 2..14 */
};

/* Why decoding failed: a close code and a human reason (static string or
 * formatted into `reason`). */
struct ws_err {
	uint16_t code;
	char reason[120];
};

static inline bool ws_opcode_is_control(uint8_t op) { return op & 0x8; }

/* Decodes a frame header from p[0..n).
 * rsv_allowed: RSV bits an extension has negotiated (0 or WS_RSV1).
 * require_mask: true on the server side (§5.1: clients must mask).
 * Returns the header length (>0) when complete, 0 when more bytes are
 * needed, -1 on a protocol violation (err filled, code 1002). */
int ws_frame_decode_header(const uint8_t *p, size_t n, uint8_t rsv_allowed,
			   bool require_mask, struct ws_frame_hdr *h, struct ws_err *err);

/* Encodes a header into out (at least WS_MAX_HEADER bytes). mask may be
 * NULL (server frames are never masked). Returns the header length. */
size_t ws_frame_encode_header(uint8_t *out, bool fin, uint8_t rsv, uint8_t opcode,
			      uint64_t len, const uint8_t *mask);

/* XORs p[0..n) with the mask, starting at mask byte `offset` (0..3), so a
 * payload can be unmasked in pieces as it arrives. Works a machine word at
 * a time. Returns the mask offset for the next piece. */
unsigned ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned offset);

/* True for close codes a peer may send (§7.4.1, §7.4.2): 1000-1003,
 * 1007-1011 (1012-1014 are registered by IANA and also accepted) and
 * 3000-4999. */
bool ws_close_code_valid(uint16_t code);

#endif
