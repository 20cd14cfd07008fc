/* ws_frame — see ws_frame.h. */
#include "ws/ws_frame.h"

#include <stdio.h>
#include <string.h>

static int fail(struct ws_err *err, const char *reason)
{
	err->code = WS_CLOSE_PROTOCOL;
	snprintf(err->reason, sizeof err->reason, "%s", reason);
	return -1;
}

int ws_frame_decode_header(const uint8_t *p, size_t n, uint8_t rsv_allowed,
			   bool require_mask, struct ws_frame_hdr *h, struct ws_err *err)
{
	if (n < 2)
		return 0;
	uint8_t b0 = p[0], b1 = p[1];
	h->fin = b0 & 0x80;
	h->rsv = b0 & 0x70;
	h->opcode = b0 & 0x0F;
	h->masked = b1 & 0x80;
	uint64_t len = b1 & 0x7F;

	/* Judge what we can from the first two bytes before waiting for more:
	 * a bad frame is refused as soon as it is recognisable. */
	if (h->rsv & ~rsv_allowed)
		return fail(err, "Reserved bits set without a negotiated extension");
	switch (h->opcode) {
	case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
		break;
	case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
		/* §5.5: control frames are never fragmented, carry at most 125
		 * bytes, and (RFC 7692 §6) never set RSV1. */
		if (!h->fin)
			return fail(err, "Fragmented control frame");
		if (len > WS_MAX_CONTROL)
			return fail(err, "Control frame payload exceeds 125 bytes");
		if (h->rsv)
			return fail(err, "Reserved bits set on a control frame");
		break;
	default:
		return fail(err, "Reserved opcode");
	}
	if (require_mask && !h->masked)
		return fail(err, "Client frame is not masked");

	size_t need = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (h->masked ? 4 : 0);
	if (n < need)
		return 0;
	const uint8_t *q = p + 2;
	if (len == 126) {
		len = (uint64_t)q[0] << 8 | q[1];
		q += 2;
		/* §5.2: "the minimal number of bytes MUST be used". */
		if (len < 126)
			return fail(err, "Non-minimal payload length encoding");
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | q[i];
		q += 8;
		if (len >> 63)
			return fail(err, "Payload length has the most significant bit set");
		if (len <= 0xFFFF)
			return fail(err, "Non-minimal payload length encoding");
	}
	if (h->masked)
		memcpy(h->mask, q, 4);
	else
		memset(h->mask, 0, 4);
	h->len = len;
	h->hdr_len = (uint8_t)need;
	return (int)need;
}

size_t ws_frame_encode_header(uint8_t *out, bool fin, uint8_t rsv, uint8_t opcode,
			      uint64_t len, const uint8_t *mask)
{
	size_t n = 2;
	out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 0x70) | (opcode & 0x0F));
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		out[1] = (uint8_t)(m | len);
	} else if (len <= 0xFFFF) {
		out[1] = m | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = m | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

unsigned ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned offset)
{
	size_t i = 0;
	/* Align the mask to the piece: rotate so that byte 0 of the word lines
	 * up with mask[offset]. */
	uint8_t m8[8];
	for (int k = 0; k < 8; k++)
		m8[k] = mask[(offset + (unsigned)k) & 3];
	uint64_t mw;
	memcpy(&mw, m8, 8);
	for (; i + 32 <= n; i += 32) {
		uint64_t w[4];
		memcpy(w, p + i, 32);
		w[0] ^= mw; w[1] ^= mw; w[2] ^= mw; w[3] ^= mw;
		memcpy(p + i, w, 32);
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		w ^= mw;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= m8[i & 7];
	return (offset + (unsigned)(n & 3)) & 3;
}

bool ws_close_code_valid(uint16_t code)
{
	if (code >= 1000 && code <= 1003)
		return true;
	if (code >= 1007 && code <= 1014)
		return true;
	return code >= 3000 && code <= 4999;
}
