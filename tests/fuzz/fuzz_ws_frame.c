/* fuzz_ws_frame — the pure codecs under the frame parser: the §5.2 header
 * decoder and encoder, payload masking in pieces, incremental UTF-8
 * validation and close payload validation (core/ws/ws_frame.c, ws_utf8.c,
 * ws_close_payload_valid in ws_reader.c).
 *
 * Input layout:
 *   byte 0   bits 4-6 RSV bits the decoder allows, bit 0 require_mask,
 *            bits 1-3 piece length - 1 for the incremental checks
 *   byte 1   mask offset (low 2 bits) for ws_mask
 *   rest     the bytes under test: a frame header, a payload, text
 *
 * Checks, each against a plain reference written here:
 *  - the decoder returns -1 (code 1002), 0 (only for fewer than 14 bytes)
 *    or the header length; an accepted header obeys §5.2/§5.5 and
 *    re-encodes to exactly its bytes (lengths are minimal); no prefix of
 *    an accepted header is refused;
 *  - any header the encoder writes decodes to the same fields;
 *  - masking in pieces with the returned offsets equals masking byte by
 *    byte, and masking twice gives the input back;
 *  - ws_utf8_valid agrees with an independent validator, and feeding in
 *    pieces fails exactly at the piece holding the first impossible byte;
 *  - close codes and close payloads are judged as §7.4 says.
 */
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_ref_utf8.h"
#include "ws/ws_reader.h"

static bool opcode_known(uint8_t op)
{
	return op <= 2 || (op >= 8 && op <= 10);
}

static bool close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

static void check_decode(const uint8_t *p, size_t n, uint8_t rsv_allowed, bool require_mask)
{
	struct ws_frame_hdr h;
	struct ws_err err;
	memset(&err, 0, sizeof err);
	int rc = ws_frame_decode_header(p, n, rsv_allowed, require_mask, &h, &err);
	CHECK(rc >= -1 && rc <= WS_MAX_HEADER && rc != 1, "decode returned %d", rc);
	if (rc < 0) {
		CHECK(err.code == WS_CLOSE_PROTOCOL && err.reason[0], "error %u '%s'", err.code, err.reason);
		return;
	}
	if (rc == 0) {
		CHECK(n < WS_MAX_HEADER, "'need more' with %zu bytes", n);
		return;
	}
	CHECK(h.hdr_len == rc, "hdr_len %u, returned %d", h.hdr_len, rc);
	CHECK(h.fin == !!(p[0] & 0x80) && h.rsv == (p[0] & 0x70) && h.opcode == (p[0] & 0x0F) &&
	      h.masked == !!(p[1] & 0x80), "fields do not match the first two bytes");
	CHECK(!(h.rsv & ~rsv_allowed), "RSV 0x%02x accepted, allowed 0x%02x", h.rsv, rsv_allowed);
	CHECK(opcode_known(h.opcode), "opcode %u accepted", h.opcode);
	if (h.opcode >= 8)
		CHECK(h.fin && h.len <= WS_MAX_CONTROL && !h.rsv, "bad control frame accepted");
	CHECK(!require_mask || h.masked, "unmasked frame accepted");
	CHECK(!(h.len >> 63), "length %llu accepted", (unsigned long long)h.len);
	uint8_t out[WS_MAX_HEADER];
	size_t en = ws_frame_encode_header(out, h.fin, h.rsv, h.opcode, h.len, h.masked ? h.mask : NULL);
	CHECK(en == (size_t)rc && memcmp(out, p, en) == 0, "header does not re-encode to its bytes");
	if (h.masked)
		CHECK(memcmp(h.mask, p + rc - 4, 4) == 0, "mask key not taken from the header");
	for (size_t k = 0; k < (size_t)rc; k++) {
		struct ws_frame_hdr hk;
		CHECK(ws_frame_decode_header(p, k, rsv_allowed, require_mask, &hk, &err) == 0,
		      "prefix of %zu bytes of an accepted header is not 'need more'", k);
	}
}

static void check_encode(const uint8_t *p, size_t n)
{
	if (n < 14)
		return;
	bool fin = p[0] & 0x80;
	uint8_t rsv = p[0] & 0x70, op = p[0] & 0x0F;
	uint64_t len = 0;
	for (int i = 0; i < 8; i++)
		len = len << 8 | p[2 + i];
	len >>= (p[1] & 63); /* reach every length encoding */
	const uint8_t *mask = (p[1] & 0x80) ? p + 10 : NULL;
	uint8_t out[WS_MAX_HEADER];
	size_t en = ws_frame_encode_header(out, fin, rsv, op, len, mask);
	size_t want = 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + (mask ? 4 : 0);
	CHECK(en == want, "encoded %zu bytes, expected %zu", en, want);
	if (!opcode_known(op) || (op >= 8 && (!fin || len > 125 || rsv)) || len >> 63)
		return;
	struct ws_frame_hdr h;
	struct ws_err err;
	int rc = ws_frame_decode_header(out, en, 0x70, mask != NULL, &h, &err);
	CHECK(rc == (int)en, "encoded header does not decode (%d: %s)", rc, rc < 0 ? err.reason : "");
	CHECK(h.fin == fin && h.rsv == rsv && h.opcode == op && h.len == len && h.masked == (mask != NULL) &&
	      (!mask || memcmp(h.mask, mask, 4) == 0), "encoded header decodes to other fields");
}

static void check_mask(const uint8_t *p, size_t n, size_t piece, unsigned offset)
{
	if (n < 4)
		return;
	const uint8_t *mask = p;
	p += 4;
	n -= 4;
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	if (!a || !b)
		abort();
	memcpy(a, p, n);
	memcpy(b, p, n);
	for (size_t i = 0; i < n; i++)
		b[i] ^= mask[(offset + i) & 3];
	/* Pieces of varying length so the word loop meets every alignment. */
	unsigned off = offset;
	for (size_t i = 0, k = 0; i < n; k++) {
		size_t len = (piece * (k + 1) * 7) % 41;
		if (len > n - i)
			len = n - i;
		unsigned next = ws_mask(a + i, len, mask, off);
		CHECK(next == ((off + len) & 3), "ws_mask returned offset %u after %zu bytes from %u", next, len, off);
		off = next;
		i += len;
	}
	CHECK(memcmp(a, b, n) == 0, "masking in pieces differs from masking bytewise");
	ws_mask(a, n, mask, offset);
	CHECK(memcmp(a, p, n) == 0, "masking twice does not restore the payload");
	free(a);
	free(b);
}

static void check_utf8(const uint8_t *p, size_t n, size_t piece)
{
	bool boundary;
	size_t bad = ref_utf8_scan(p, n, &boundary);
	bool valid = bad == n && boundary;
	CHECK(ws_utf8_valid(p, n) == valid, "ws_utf8_valid says %d, reference %d (first bad byte %zu)",
	      !valid, valid, bad);
	struct ws_utf8 u;
	ws_utf8_init(&u);
	size_t i = 0;
	while (i < n) {
		size_t len = piece < n - i ? piece : n - i;
		bool ok = ws_utf8_feed(&u, p + i, len);
		bool holds_bad = bad >= i && bad < i + len;
		CHECK(ok == !holds_bad, "feeding bytes %zu..%zu returned %d, first bad byte is %zu", i,
		      i + len, ok, bad);
		if (!ok)
			return;
		i += len;
	}
	CHECK(ws_utf8_complete(&u) == boundary, "complete() %d at the end, reference %d",
	      ws_utf8_complete(&u), boundary);
}

static void check_close(const uint8_t *p, size_t n)
{
	if (n >= 2) {
		unsigned code = (unsigned)p[0] << 8 | p[1];
		CHECK(ws_close_code_valid((uint16_t)code) == close_code_ok(code), "close code %u", code);
	}
	if (n > WS_MAX_CONTROL)
		n = WS_MAX_CONTROL;
	struct ws_err err;
	memset(&err, 0, sizeof err);
	bool ok = ws_close_payload_valid(p, n, &err);
	bool code_ok = n == 0 || (n >= 2 && close_code_ok((unsigned)p[0] << 8 | p[1]));
	bool want = n == 0 || (code_ok && ref_utf8_valid(p + 2, n - 2));
	CHECK(ok == want, "close payload of %zu bytes judged %d", n, ok);
	if (!ok)
		CHECK(err.code == (code_ok ? WS_CLOSE_INVALID_DATA : WS_CLOSE_PROTOCOL) && err.reason[0],
		      "close payload refused with %u", err.code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t rsv_allowed = data[0] & 0x70;
	bool require_mask = data[0] & 1;
	size_t piece = 1 + ((data[0] >> 1) & 7);
	unsigned offset = data[1] & 3;
	size_t n = size - 2;
	/* A private copy so that ASan sees reads past the end. */
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		return 0;
	memcpy(p, data + 2, n);

	check_decode(p, n, rsv_allowed, require_mask);
	check_encode(p, n);
	check_mask(p, n, piece, offset);
	check_utf8(p, n, piece);
	check_close(p, n);
	free(p);
	return 0;
}
