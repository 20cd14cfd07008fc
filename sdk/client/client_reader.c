/* client_reader — server frames to messages, the client's half of
 * RFC 6455 §5-§8 and RFC 7692 §6-§7.
 *
 * One call decodes one frame: its header with the core's codec
 * (ws_frame_decode_header), then the client-only rules: server frames are
 * never masked (§5.1), continuation frames only inside a message (§5.4),
 * RSV1 only on the first frame of a compressed message (RFC 7692 §6.1),
 * messages no larger than max_msg after inflation (checked before the
 * payload is even buffered), text valid UTF-8 (fail fast, across frames,
 * §8.1), close frames with a valid code and UTF-8 reason (§5.5.1, §7.4).
 * Pure: no I/O. */
#include "client_internal.h"

#include <stdio.h>
#include <string.h>

void cl_reader_init(struct cl_reader *r, uint64_t max_msg, struct ws_deflate *deflate)
{
	struct buf keep = r->msg;
	memset(r, 0, sizeof *r);
	r->msg = keep;
	r->msg.len = 0;
	r->max_msg = max_msg;
	r->deflate = deflate;
}

void cl_reader_free(struct cl_reader *r)
{
	buf_free(&r->msg);
	r->in_msg = false;
}

static size_t error(struct cl_event *ev, uint16_t code, const char *reason)
{
	ev->kind = CL_EV_ERROR;
	ev->code = code;
	snprintf(ev->reason, sizeof ev->reason, "%s", reason);
	return 0;
}

static size_t deflate_error(struct cl_event *ev, int rc)
{
	switch (rc) {
	case WS_DEFLATE_E_TOOBIG:
		return error(ev, WS_CLOSE_TOO_BIG, "Message too big (after inflation)");
	case WS_DEFLATE_E_NOMEM:
		return error(ev, WS_CLOSE_INTERNAL, "Out of memory inflating a message");
	default:
		return error(ev, WS_CLOSE_INVALID_DATA, "Invalid compressed data");
	}
}

size_t cl_reader_next(struct cl_reader *r, const uint8_t *p, size_t n, struct cl_event *ev)
{
	memset(ev, 0, sizeof *ev);
	struct ws_frame_hdr h;
	struct ws_err werr;
	int hl = ws_frame_decode_header(p, n, r->deflate ? WS_RSV1 : 0, false, &h, &werr);
	if (hl < 0)
		return error(ev, werr.code, werr.reason);
	if (hl == 0)
		return 0;
	if (h.masked)
		return error(ev, WS_CLOSE_PROTOCOL, "Server frame is masked");

	if (ws_opcode_is_control(h.opcode)) {
		if (n - (size_t)hl < h.len)
			return 0;
		const uint8_t *pl = p + hl;
		size_t len = (size_t)h.len;
		size_t used = (size_t)hl + len;
		ev->data = pl;
		ev->len = len;
		if (h.opcode == WS_OP_PING) {
			ev->kind = CL_EV_PING;
		} else if (h.opcode == WS_OP_PONG) {
			ev->kind = CL_EV_PONG;
		} else {
			ev->kind = CL_EV_CLOSE;
			if (len == 0) {
				ev->code = WS_CLOSE_NO_STATUS;
			} else if (len == 1) {
				return error(ev, WS_CLOSE_PROTOCOL, "Close frame with a 1-byte payload");
			} else {
				ev->code = (uint16_t)(pl[0] << 8 | pl[1]);
				if (!ws_close_code_valid(ev->code))
					return error(ev, WS_CLOSE_PROTOCOL, "Invalid close code");
				if (!ws_utf8_valid(pl + 2, len - 2))
					return error(ev, WS_CLOSE_INVALID_DATA, "Close reason is not valid UTF-8");
				ev->data = pl + 2;
				ev->len = len - 2;
			}
		}
		return used;
	}

	if (h.opcode == WS_OP_CONT && !r->in_msg)
		return error(ev, WS_CLOSE_PROTOCOL, "Continuation frame without a message to continue");
	if (h.opcode != WS_OP_CONT && r->in_msg)
		return error(ev, WS_CLOSE_PROTOCOL, "New message inside a fragmented message");
	if (h.opcode == WS_OP_CONT && (h.rsv & WS_RSV1))
		return error(ev, WS_CLOSE_PROTOCOL, "RSV1 set on a continuation frame");
	bool compressed = h.opcode == WS_OP_CONT ? r->compressed : (h.rsv & WS_RSV1) != 0;
	/* Judge the size from the header, before buffering the payload. A
	 * compressed payload can exceed its inflated size a little
	 * (incompressible data): allow it a margin, the inflated size is
	 * checked exactly by the inflater. */
	uint64_t have = h.opcode == WS_OP_CONT ? (compressed ? 0 : r->msg.len) : 0;
	uint64_t limit = compressed ? r->max_msg + r->max_msg / 8 + 1024 : r->max_msg;
	if (h.len > limit || have + h.len > limit) {
		char why[128];
		snprintf(why, sizeof why, "Message of at least %llu bytes exceeds the maximum of %llu",
			 (unsigned long long)(have + h.len), (unsigned long long)r->max_msg);
		return error(ev, WS_CLOSE_TOO_BIG, why);
	}
	if (n - (size_t)hl < h.len)
		return 0;
	const uint8_t *pl = p + hl;
	size_t len = (size_t)h.len;
	size_t used = (size_t)hl + len;

	if (h.opcode != WS_OP_CONT) {
		r->in_msg = true;
		r->msg_op = h.opcode;
		r->compressed = compressed;
		r->msg.len = 0;
		/* Give back what one large message took (DESIGN: small while
		 * idle); the common small message reuses its buffer. */
		if (r->msg.cap > CL_READER_KEEP)
			buf_free(&r->msg);
		ws_utf8_init(&r->utf8);
		/* msg.data is never NULL from here on, even for an empty
		 * message (the codecs take no NULL pointers). */
		if (buf_reserve(&r->msg, 1) < 0)
			return error(ev, WS_CLOSE_INTERNAL, "Out of memory");
	}
	if (compressed) {
		int rc = ws_deflate_inflate_feed(r->deflate, pl, len, (size_t)r->max_msg, &r->msg);
		if (rc == 0 && h.fin)
			rc = ws_deflate_inflate_end(r->deflate, (size_t)r->max_msg, &r->msg);
		if (rc < 0)
			return deflate_error(ev, rc);
		if (r->msg_op == WS_OP_TEXT && h.fin && !ws_utf8_valid(r->msg.data, r->msg.len))
			return error(ev, WS_CLOSE_INVALID_DATA, "Text message is not valid UTF-8");
	} else {
		if (len && buf_append(&r->msg, pl, len) < 0)
			return error(ev, WS_CLOSE_INTERNAL, "Out of memory");
		if (r->msg_op == WS_OP_TEXT) {
			if (!ws_utf8_feed(&r->utf8, pl, len))
				return error(ev, WS_CLOSE_INVALID_DATA, "Text message is not valid UTF-8");
			if (h.fin && !ws_utf8_complete(&r->utf8))
				return error(ev, WS_CLOSE_INVALID_DATA, "Text message ends inside a UTF-8 character");
		}
	}
	if (!h.fin) {
		ev->kind = CL_EV_NONE;
		return used;
	}
	/* A NUL after the message, not counted, for callers that print it. */
	if (buf_reserve(&r->msg, 1) < 0)
		return error(ev, WS_CLOSE_INTERNAL, "Out of memory");
	r->msg.data[r->msg.len] = 0;
	r->in_msg = false;
	ev->kind = CL_EV_MESSAGE;
	ev->opcode = r->msg_op;
	ev->data = r->msg.data;
	ev->len = r->msg.len;
	return used;
}
