/* ws_reader — see ws_reader.h. */
#include "ws/ws_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Assembly buffers larger than this are released after each message so an
 * idle connection does not keep a large allocation alive. */
#define MSG_KEEP_CAP (64 * 1024)

void ws_reader_init(struct ws_reader *r, uint64_t max_payload, uint8_t rsv_allowed, bool require_mask)
{
	memset(r, 0, sizeof *r);
	r->max_payload = max_payload;
	r->rsv_allowed = rsv_allowed;
	r->require_mask = require_mask;
	ws_utf8_init(&r->utf8);
}

void ws_reader_free(struct ws_reader *r)
{
	buf_free(&r->msg);
	free(r->ctl);
	r->ctl = NULL;
}

static ssize_t fail(struct ws_err *err, uint16_t code, const char *reason)
{
	err->code = code;
	snprintf(err->reason, sizeof err->reason, "%s", reason);
	return -1;
}

bool ws_close_payload_valid(const uint8_t *p, size_t n, struct ws_err *err)
{
	if (n == 0)
		return true;
	if (n == 1) {
		fail(err, WS_CLOSE_PROTOCOL, "Close frame with a 1-byte payload");
		return false;
	}
	uint16_t code = (uint16_t)(p[0] << 8 | p[1]);
	if (!ws_close_code_valid(code)) {
		err->code = WS_CLOSE_PROTOCOL;
		snprintf(err->reason, sizeof err->reason, "Invalid close code %u", code);
		return false;
	}
	if (!ws_utf8_valid(p + 2, n - 2)) {
		fail(err, WS_CLOSE_INVALID_DATA, "Close reason is not valid UTF-8");
		return false;
	}
	return true;
}

/* The assembled message. Never NULL, even when nothing was ever buffered
 * (a message of empty fragments): callbacks may hand the pointer to
 * memcpy and friends, for which NULL is undefined even with length 0. */
static uint8_t *msg_data(struct ws_reader *r)
{
	static uint8_t empty[1];
	return r->msg.data ? r->msg.data : empty;
}

static void message_done(struct ws_reader *r)
{
	r->msg_opcode = 0;
	r->msg_compressed = false;
	r->msg.len = 0;
	if (r->msg.cap > MSG_KEEP_CAP)
		buf_free(&r->msg);
	ws_utf8_init(&r->utf8);
}

/* Checks the frame-sequence rules (§5.4) for a data frame header and
 * starts a message if this is a first frame. */
static ssize_t begin_data_frame(struct ws_reader *r, const struct ws_frame_hdr *h, struct ws_err *err)
{
	if (h->opcode == WS_OP_CONT) {
		if (!r->msg_opcode)
			return fail(err, WS_CLOSE_PROTOCOL, "Continuation frame without a message in progress");
		if (h->rsv & WS_RSV1)
			return fail(err, WS_CLOSE_PROTOCOL, "RSV1 set on a continuation frame");
	} else {
		if (r->msg_opcode)
			return fail(err, WS_CLOSE_PROTOCOL, "New data frame while a fragmented message is in progress");
		r->msg_opcode = h->opcode;
		r->msg_compressed = h->rsv & WS_RSV1;
		r->msg_frames = 0;
		r->msg_wire = 0;
		ws_utf8_init(&r->utf8);
	}
	r->msg_frames++;
	/* Counted on the wire over all frames: a streamed (on_piece)
	 * message keeps nothing in r->msg, so its size is tracked here. */
	uint64_t total = r->msg_wire + h->len;
	r->msg_wire = total;
	/* A compressed message is judged by its inflated size (the caller
	 * inflates under max_payload); on the wire it may be slightly larger
	 * than the data when it does not compress (stored blocks: 5 bytes per
	 * 64 KiB), so allow that much. */
	uint64_t limit = r->msg_compressed ? r->max_payload + r->max_payload / 64 + 1024 : r->max_payload;
	if (total > limit) {
		err->code = WS_CLOSE_TOO_BIG;
		snprintf(err->reason, sizeof err->reason,
			 "Frame size of %llu exceeds maximum of %llu",
			 (unsigned long long)total, (unsigned long long)limit);
		return -1;
	}
	return 0;
}

/* Validates UTF-8 of one unmasked piece of a text message. */
static inline bool text_piece_ok(struct ws_reader *r, const uint8_t *p, size_t n)
{
	if (r->msg_opcode != WS_OP_TEXT || r->msg_compressed)
		return true;
	return ws_utf8_feed(&r->utf8, p, n);
}

static inline bool text_end_ok(struct ws_reader *r)
{
	if (r->msg_opcode != WS_OP_TEXT || r->msg_compressed)
		return true;
	return ws_utf8_complete(&r->utf8);
}

/* True when a compressed message is streamed to the caller (on_piece)
 * instead of being assembled here. */
static inline bool streams(const struct ws_reader *r, const struct ws_reader_ops *ops)
{
	return r->msg_compressed && ops->on_piece;
}

static int deliver_control(struct ws_reader *r, uint8_t opcode, uint8_t *p, size_t n,
			   const struct ws_reader_ops *ops, void *ud, struct ws_err *err)
{
	(void)r;
	if (opcode == WS_OP_CLOSE && !ws_close_payload_valid(p, n, err))
		return -1;
	return ops->on_control(ud, opcode, p, n);
}

ssize_t ws_reader_feed(struct ws_reader *r, uint8_t *p, size_t n,
		       const struct ws_reader_ops *ops, void *ud, struct ws_err *err)
{
	size_t off = 0;
	while (off < n) {
		if (!r->in_payload) {
			struct ws_frame_hdr *h = &r->hdr;
			int hl = ws_frame_decode_header(p + off, n - off, r->rsv_allowed,
							r->require_mask, h, err);
			if (hl < 0)
				return -1;
			if (hl == 0)
				break;
			bool control = ws_opcode_is_control(h->opcode);
			if (!control && begin_data_frame(r, h, err) < 0)
				return -1;
			size_t avail = n - off - (size_t)hl;

			/* Fast path: the whole frame is here. */
			if (h->len <= avail) {
				uint8_t *pl = p + off + hl;
				size_t len = (size_t)h->len;
				ws_mask(pl, len, h->mask, 0);
				off += (size_t)hl + len;
				int rc;
				if (control) {
					rc = deliver_control(r, h->opcode, pl, len, ops, ud, err);
				} else if (h->fin && r->msg.len == 0 && h->opcode != WS_OP_CONT) {
					/* Single-frame message: deliver in place. */
					if (!text_piece_ok(r, pl, len) || !text_end_ok(r))
						return fail(err, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
					uint8_t op = r->msg_opcode;
					bool comp = r->msg_compressed;
					r->msg_opcode = 0;
					r->msg_compressed = false;
					r->last_fragmented = r->msg_frames > 1;
					rc = ops->on_message(ud, op, comp, pl, len);
				} else if (streams(r, ops)) {
					if (h->fin)
						r->last_fragmented = r->msg_frames > 1;
					rc = ops->on_piece(ud, r->msg_opcode, pl, len, h->fin);
					if (h->fin)
						message_done(r);
				} else {
					if (!text_piece_ok(r, pl, len))
						return fail(err, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
					if (buf_append(&r->msg, pl, len) < 0)
						return fail(err, WS_CLOSE_INTERNAL, "Out of memory assembling a message");
					if (!h->fin) {
						rc = WS_READER_CONTINUE;
					} else {
						if (!text_end_ok(r))
							return fail(err, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
						uint8_t op = r->msg_opcode;
						bool comp = r->msg_compressed;
						r->last_fragmented = r->msg_frames > 1;
						rc = ops->on_message(ud, op, comp, msg_data(r), r->msg.len);
						message_done(r);
					}
				}
				if (rc < 0)
					return -1;
				if (rc == WS_READER_STOP)
					return (ssize_t)off;
				continue;
			}
			/* Partial frame: take the header and stream the payload. */
			off += (size_t)hl;
			r->in_payload = true;
			r->remaining = h->len;
			r->mask_off = 0;
			r->ctl_len = 0;
			/* A control frame split across reads is rare: its buffer is
			 * taken now and given back when it is complete, so idle
			 * connections do not carry 125 bytes each. */
			if (control && !r->ctl && !(r->ctl = malloc(WS_MAX_CONTROL)))
				return fail(err, WS_CLOSE_INTERNAL, "Out of memory assembling a control frame");
			/* Reserve for the declared length only up to a bound: a peer
			 * that announces max_payload and sends nothing must not make
			 * us allocate it; buf_append grows as bytes really arrive. */
			if (!control && buf_reserve(&r->msg, h->len < MSG_KEEP_CAP ? (size_t)h->len
										    : MSG_KEEP_CAP) < 0)
				return fail(err, WS_CLOSE_INTERNAL, "Out of memory assembling a message");
		}

		/* Streaming a frame's payload. */
		struct ws_frame_hdr *h = &r->hdr;
		size_t take = n - off;
		if (take > r->remaining)
			take = (size_t)r->remaining;
		uint8_t *pl = p + off;
		r->mask_off = ws_mask(pl, take, h->mask, r->mask_off);
		off += take;
		r->remaining -= take;
		if (ws_opcode_is_control(h->opcode)) {
			memcpy(r->ctl + r->ctl_len, pl, take);
			r->ctl_len += take;
		} else if (streams(r, ops)) {
			bool piece_fin = h->fin && r->remaining == 0;
			if (piece_fin)
				r->last_fragmented = r->msg_frames > 1;
			int prc = ops->on_piece(ud, r->msg_opcode, pl, take, piece_fin);
			if (r->remaining == 0) {
				r->in_payload = false;
				if (piece_fin)
					message_done(r);
			}
			if (prc == WS_READER_STOP)
				return (ssize_t)off;
			continue;
		} else {
			if (!text_piece_ok(r, pl, take))
				return fail(err, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
			if (buf_append(&r->msg, pl, take) < 0)
				return fail(err, WS_CLOSE_INTERNAL, "Out of memory assembling a message");
		}
		if (r->remaining)
			continue; /* take == everything we had */
		r->in_payload = false;
		int rc = WS_READER_CONTINUE;
		if (ws_opcode_is_control(h->opcode)) {
			/* Copy out so the buffer can go back before the callback. */
			uint8_t ctl[WS_MAX_CONTROL];
			size_t n_ctl = r->ctl_len;
			memcpy(ctl, r->ctl, n_ctl);
			free(r->ctl);
			r->ctl = NULL;
			rc = deliver_control(r, h->opcode, ctl, n_ctl, ops, ud, err);
		} else if (h->fin) {
			if (!text_end_ok(r))
				return fail(err, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
			r->last_fragmented = r->msg_frames > 1;
			rc = ops->on_message(ud, r->msg_opcode, r->msg_compressed, msg_data(r), r->msg.len);
			message_done(r);
		}
		if (rc < 0)
			return -1;
		if (rc == WS_READER_STOP)
			return (ssize_t)off;
	}
	return (ssize_t)off;
}
