/* ws_reader — turns a stream of client bytes into WebSocket messages.
 *
 * Stage "frame parser" of the message path: header decoding (ws_frame),
 * unmasking, fragment assembly, control frames interleaved with fragments,
 * UTF-8 validation of text (failing at the first bad byte, across frame and
 * read boundaries), close-frame validation and the max_payload limit counted
 * over all fragments of a message.
 *
 * No I/O: the caller hands in whatever bytes it has read. A single-frame
 * message that is wholly inside the input is unmasked and delivered in
 * place (no copy); anything else is unmasked piece by piece as it arrives
 * and assembled in the reader's own buffer, so a large frame never has to
 * fit in the read buffer and an oversized one is refused before its payload
 * is buffered.
 *
 * Thread: one reader belongs to one connection and is used by one thread.
 */
#ifndef MBGW_WS_READER_H
#define MBGW_WS_READER_H

#include "util/util_buf.h"
#include "ws/ws_frame.h"
#include "ws/ws_utf8.h"

/* Callback results. */
#define WS_READER_CONTINUE 0
#define WS_READER_STOP 1   /* stop feeding; unconsumed bytes stay with the caller */

struct ws_reader_ops {
	/* A complete text or binary message. `data` is borrowed for the call
	 * and may point into the caller's input (already unmasked). compressed
	 * is true when RSV1 was set on its first frame (the caller inflates;
	 * UTF-8 is then not checked here). Return WS_READER_CONTINUE or
	 * WS_READER_STOP. */
	int (*on_message)(void *ud, uint8_t opcode, bool compressed, uint8_t *data, size_t len);
	/* A ping, pong or close frame. For close the payload has been
	 * validated (code allowed, reason UTF-8). Same return values. */
	int (*on_control)(void *ud, uint8_t opcode, uint8_t *data, size_t len);
	/* Optional. When set, a compressed message of more than one piece is
	 * not assembled here: each piece of its payload (unmasked, borrowed)
	 * is handed over as it arrives, so the caller can inflate as it goes
	 * and refuse a decompression bomb or bad UTF-8 at once; fin marks the
	 * last piece, after which the caller has the whole message. A
	 * compressed message that arrives whole in one frame still comes
	 * through on_message. Same return values. */
	int (*on_piece)(void *ud, uint8_t opcode, const uint8_t *data, size_t len, bool fin);
};

struct ws_reader {
	/* settings */
	uint64_t max_payload;
	uint8_t rsv_allowed;
	bool require_mask;
	/* frame in progress */
	bool in_payload;
	struct ws_frame_hdr hdr;
	uint64_t remaining;
	unsigned mask_off;
	/* message in progress (msg_opcode 0: none) */
	uint8_t msg_opcode;
	bool msg_compressed;
	uint32_t msg_frames;        /* frames of the message so far */
	uint64_t msg_wire;          /* payload bytes of the message so far, on the wire */
	bool last_fragmented;       /* the message being delivered came in > 1 frame */
	struct ws_utf8 utf8;
	struct buf msg;
	/* control frame being collected piece by piece */
	uint8_t *ctl;         /* taken only while a control frame arrives in pieces */
	size_t ctl_len;
};

void ws_reader_init(struct ws_reader *r, uint64_t max_payload, uint8_t rsv_allowed, bool require_mask);
/* Frees the assembly buffer. */
void ws_reader_free(struct ws_reader *r);

/* Consumes bytes from p[0..n), mutating them in place (unmasking), and
 * calls `ops` for each complete message and control frame, in order.
 * Returns the number of bytes consumed (possibly fewer than n: an
 * incomplete header stays unconsumed, and a callback may return STOP), or
 * -1 on a protocol error with err filled (1002, 1007 or 1009): every
 * message completed before the error has been delivered first. Also -1
 * with 1011 if memory runs out. */
ssize_t ws_reader_feed(struct ws_reader *r, uint8_t *p, size_t n,
		       const struct ws_reader_ops *ops, void *ud, struct ws_err *err);

/* True while a fragmented message or a frame is partly received. */
static inline bool ws_reader_mid_message(const struct ws_reader *r)
{
	return r->in_payload || r->msg_opcode != 0;
}

/* Validates a close frame payload (§5.5.1, §7.4): empty, or a 2-byte code
 * from the allowed set followed by a UTF-8 reason. Returns true, or false
 * with err filled (1002 or 1007). */
bool ws_close_payload_valid(const uint8_t *p, size_t n, struct ws_err *err);

#endif
