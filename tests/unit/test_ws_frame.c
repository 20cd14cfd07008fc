/* test_ws_frame — the RFC 6455 §5.2 frame header codec and masking.
 *
 * Covers the §5.7 examples, every payload length encoding and its
 * boundaries, each protocol violation the decoder must refuse (1002),
 * "need more" for every truncated header, encode/decode round trips, the
 * word-at-a-time ws_mask against a naive byte loop, and close codes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_frame.h"

/* Criterion records every assertion when run with --full-stats (as CTest
 * does), which makes millions of passing checks in loops very slow. These
 * wrappers only reach the real assertion, with its full diagnostics, when
 * the condition fails. */
#define EXPECT(c, ...) do { if (!(c)) cr_assert(c, "" __VA_ARGS__); } while (0)
#define EXPECT_NOT(c, ...) do { if (c) cr_assert_not(c, "" __VA_ARGS__); } while (0)
#define EXPECT_EQ(a, b, ...) do { if (!((a) == (b))) cr_assert_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_NEQ(a, b, ...) do { if ((a) == (b)) cr_assert_neq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LT(a, b, ...) do { if (!((a) < (b))) cr_assert_lt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LEQ(a, b, ...) do { if (!((a) <= (b))) cr_assert_leq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_GT(a, b, ...) do { if (!((a) > (b))) cr_assert_gt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_GEQ(a, b, ...) do { if (!((a) >= (b))) cr_assert_geq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_ARR_EQ(a, b, n, ...) \
	do { if (memcmp(a, b, n) != 0) cr_assert_arr_eq(a, b, n, "" __VA_ARGS__); } while (0)
#define EXPECT_STR_EQ(a, b, ...) \
	do { if (strcmp(a, b) != 0) cr_assert_str_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_NOT_NULL(p, ...) do { if (!(p)) cr_assert_not_null(p, "" __VA_ARGS__); } while (0)

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

static int decode(const uint8_t *p, size_t n, uint8_t rsv_allowed, bool require_mask,
		  struct ws_frame_hdr *h, struct ws_err *err)
{
	memset(h, 0xAA, sizeof *h);
	memset(err, 0, sizeof *err);
	return ws_frame_decode_header(p, n, rsv_allowed, require_mask, h, err);
}

/* Asserts that every strict prefix of a complete header is "need more". */
static void assert_prefixes_need_more(const uint8_t *p, size_t hdr_len, uint8_t rsv_allowed,
				      bool require_mask)
{
	for (size_t k = 0; k < hdr_len; k++) {
		struct ws_frame_hdr h;
		struct ws_err err;
		EXPECT_EQ(decode(p, k, rsv_allowed, require_mask, &h, &err), 0,
			     "prefix of %zu of %zu header bytes must need more", k, hdr_len);
	}
}

/* Asserts a protocol error (1002 with a reason) for the complete input and
 * "need more" or the same error for every prefix. */
static void assert_protocol_error(const uint8_t *p, size_t n, uint8_t rsv_allowed, bool require_mask)
{
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(p, n, rsv_allowed, require_mask, &h, &err), -1,
		     "header %02x %02x must be refused", p[0], p[1]);
	EXPECT_EQ(err.code, WS_CLOSE_PROTOCOL);
	EXPECT_GT(strlen(err.reason), 0, "a reason must be given");
	for (size_t k = 0; k < n; k++) {
		int rc = decode(p, k, rsv_allowed, require_mask, &h, &err);
		EXPECT(rc == 0 || (rc == -1 && err.code == WS_CLOSE_PROTOCOL),
			  "prefix %zu: rc %d", k, rc);
	}
}

/* ---- RFC 6455 §5.7 examples ------------------------------------------ */

Test(ws_frame, rfc_single_frame_unmasked_text)
{
	uint8_t f[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, sizeof f, 0, false, &h, &err), 2);
	EXPECT(h.fin);
	EXPECT_EQ(h.rsv, 0);
	EXPECT_EQ(h.opcode, WS_OP_TEXT);
	EXPECT_NOT(h.masked);
	EXPECT_EQ(h.len, 5);
	EXPECT_EQ(h.hdr_len, 2);
	uint8_t zero[4] = { 0 };
	EXPECT_ARR_EQ(h.mask, zero, 4, "unmasked frame must report a zero mask");
	/* A server requires client frames to be masked (§5.1). */
	assert_protocol_error(f, sizeof f, 0, true);
}

Test(ws_frame, rfc_single_frame_masked_text)
{
	uint8_t f[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, sizeof f, 0, true, &h, &err), 6);
	EXPECT(h.fin);
	EXPECT_EQ(h.opcode, WS_OP_TEXT);
	EXPECT(h.masked);
	EXPECT_ARR_EQ(h.mask, MASK, 4);
	EXPECT_EQ(h.len, 5);
	EXPECT_EQ(h.hdr_len, 6);
	EXPECT_EQ(ws_mask(f + 6, 5, h.mask, 0), 1);
	EXPECT_ARR_EQ(f + 6, "Hello", 5);
	assert_prefixes_need_more(f, 6, 0, true);
	/* The header alone (no payload yet) is already complete. */
	EXPECT_EQ(decode(f, 6, 0, true, &h, &err), 6);
}

Test(ws_frame, rfc_fragmented_unmasked_text)
{
	uint8_t f1[] = { 0x01, 0x03, 'H', 'e', 'l' };
	uint8_t f2[] = { 0x80, 0x02, 'l', 'o' };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f1, sizeof f1, 0, false, &h, &err), 2);
	EXPECT_NOT(h.fin);
	EXPECT_EQ(h.opcode, WS_OP_TEXT);
	EXPECT_EQ(h.len, 3);
	EXPECT_EQ(decode(f2, sizeof f2, 0, false, &h, &err), 2);
	EXPECT(h.fin);
	EXPECT_EQ(h.opcode, WS_OP_CONT);
	EXPECT_EQ(h.len, 2);
}

Test(ws_frame, rfc_ping_and_masked_pong)
{
	uint8_t ping[] = { 0x89, 0x05, 'H', 'e', 'l', 'l', 'o' };
	uint8_t pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(ping, sizeof ping, 0, false, &h, &err), 2);
	EXPECT(h.fin);
	EXPECT_EQ(h.opcode, WS_OP_PING);
	EXPECT_EQ(h.len, 5);
	EXPECT_EQ(decode(pong, sizeof pong, 0, true, &h, &err), 6);
	EXPECT_EQ(h.opcode, WS_OP_PONG);
	EXPECT_EQ(h.len, 5);
	ws_mask(pong + 6, 5, h.mask, 0);
	EXPECT_ARR_EQ(pong + 6, "Hello", 5);
}

Test(ws_frame, rfc_256_bytes_binary)
{
	uint8_t f[] = { 0x82, 0x7E, 0x01, 0x00 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, sizeof f, 0, false, &h, &err), 4);
	EXPECT_EQ(h.opcode, WS_OP_BINARY);
	EXPECT_EQ(h.len, 256);
	EXPECT_EQ(h.hdr_len, 4);
	assert_prefixes_need_more(f, sizeof f, 0, false);
	uint8_t out[WS_MAX_HEADER];
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_BINARY, 256, NULL), 4);
	EXPECT_ARR_EQ(out, f, 4);
}

Test(ws_frame, rfc_64k_binary)
{
	uint8_t f[] = { 0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, sizeof f, 0, false, &h, &err), 10);
	EXPECT_EQ(h.opcode, WS_OP_BINARY);
	EXPECT_EQ(h.len, 65536);
	EXPECT_EQ(h.hdr_len, 10);
	assert_prefixes_need_more(f, sizeof f, 0, false);
	uint8_t out[WS_MAX_HEADER];
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_BINARY, 65536, NULL), 10);
	EXPECT_ARR_EQ(out, f, 10);
}

/* ---- length encodings and round trips --------------------------------- */

static const uint64_t LENGTHS[] = {
	0, 1, 124, 125, 126, 127, 128, 255, 256, 65534, 65535, 65536, 65537,
	0xFFFFFFFFULL, 0x100000000ULL, 0x7FFFFFFFFFFFFFFFULL,
};

static size_t expected_hdr_len(uint64_t len, bool masked)
{
	size_t n = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
	return n + (masked ? 4 : 0);
}

Test(ws_frame, encode_length_encodings)
{
	uint8_t out[WS_MAX_HEADER];
	/* 125: one byte; 126 and 65535: 16-bit; 65536: 64-bit. */
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 125, NULL), 2);
	EXPECT_EQ(out[1], 125);
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 126, NULL), 4);
	EXPECT_EQ(out[1], 126);
	EXPECT_EQ(out[2], 0x00);
	EXPECT_EQ(out[3], 126);
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 65535, NULL), 4);
	EXPECT_EQ(out[2], 0xFF);
	EXPECT_EQ(out[3], 0xFF);
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 65536, NULL), 10);
	EXPECT_EQ(out[1], 127);
	uint8_t be[8] = { 0, 0, 0, 0, 0, 1, 0, 0 };
	EXPECT_ARR_EQ(out + 2, be, 8);
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 0x0102030405060708ULL, NULL), 10);
	uint8_t be2[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	EXPECT_ARR_EQ(out + 2, be2, 8);
	EXPECT_EQ(ws_frame_encode_header(out, true, 0, WS_OP_TEXT, 0, NULL), 2);
	EXPECT_EQ(out[0], 0x81);
	EXPECT_EQ(out[1], 0x00);
}

Test(ws_frame, encode_first_byte_bits)
{
	uint8_t out[WS_MAX_HEADER];
	ws_frame_encode_header(out, false, 0, WS_OP_BINARY, 3, NULL);
	EXPECT_EQ(out[0], 0x02);
	ws_frame_encode_header(out, true, WS_RSV1, WS_OP_TEXT, 3, NULL);
	EXPECT_EQ(out[0], 0xC1);
	ws_frame_encode_header(out, true, 0, WS_OP_CLOSE, 2, NULL);
	EXPECT_EQ(out[0], 0x88);
	ws_frame_encode_header(out, false, 0, WS_OP_CONT, 2, NULL);
	EXPECT_EQ(out[0], 0x00);
	/* Bits outside the RSV and opcode fields are not smuggled in. */
	ws_frame_encode_header(out, true, 0xFF, 0xFF, 2, NULL);
	EXPECT_EQ(out[0], 0xFF);
	ws_frame_encode_header(out, false, 0x80, 0x1F, 2, NULL);
	EXPECT_EQ(out[0], 0x0F);
}

Test(ws_frame, encode_decode_round_trip_every_length)
{
	for (size_t i = 0; i < sizeof LENGTHS / sizeof LENGTHS[0]; i++) {
		for (int masked = 0; masked < 2; masked++) {
			uint64_t len = LENGTHS[i];
			uint8_t out[WS_MAX_HEADER + 2];
			memset(out, 0xEE, sizeof out);
			size_t n = ws_frame_encode_header(out, true, 0, WS_OP_BINARY, len,
							  masked ? MASK : NULL);
			EXPECT_EQ(n, expected_hdr_len(len, masked), "len %llu masked %d",
				     (unsigned long long)len, masked);
			EXPECT_EQ(out[n], 0xEE, "encoder wrote past the header");
			EXPECT_EQ(out[1] & 0x80, masked ? 0x80 : 0);
			struct ws_frame_hdr h;
			struct ws_err err;
			EXPECT_EQ(decode(out, n, 0, masked, &h, &err), (int)n,
				     "len %llu masked %d: %s", (unsigned long long)len, masked, err.reason);
			EXPECT_EQ(h.len, len);
			EXPECT_EQ(h.hdr_len, n);
			EXPECT_EQ(h.masked, (bool)masked);
			EXPECT(h.fin);
			EXPECT_EQ(h.opcode, WS_OP_BINARY);
			if (masked)
				EXPECT_ARR_EQ(h.mask, MASK, 4);
			assert_prefixes_need_more(out, n, 0, masked);
		}
	}
}

Test(ws_frame, decode_all_data_and_control_opcodes)
{
	const uint8_t ops[] = { WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	for (size_t i = 0; i < sizeof ops; i++) {
		uint8_t out[WS_MAX_HEADER];
		size_t n = ws_frame_encode_header(out, true, 0, ops[i], 125, MASK);
		struct ws_frame_hdr h;
		struct ws_err err;
		EXPECT_EQ(decode(out, n, 0, true, &h, &err), (int)n, "opcode %u", ops[i]);
		EXPECT_EQ(h.opcode, ops[i]);
		EXPECT_EQ(ws_opcode_is_control(ops[i]), ops[i] >= 8);
	}
}

Test(ws_frame, rsv1_allowed_on_data_frames_when_negotiated)
{
	uint8_t f[] = { 0xC1, 0x80, 1, 2, 3, 4 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, sizeof f, WS_RSV1, true, &h, &err), 6);
	EXPECT_EQ(h.rsv, WS_RSV1);
	EXPECT_EQ(h.len, 0);
	/* Without the extension the same header is refused. */
	assert_protocol_error(f, sizeof f, 0, true);
}

/* ---- protocol violations ---------------------------------------------- */

Test(ws_frame, reserved_bits_refused)
{
	const uint8_t bits[] = { WS_RSV1, WS_RSV2, WS_RSV3, WS_RSV1 | WS_RSV2, 0x70 };
	for (size_t i = 0; i < sizeof bits; i++) {
		uint8_t f[] = { (uint8_t)(0x81 | bits[i]), 0x80, 1, 2, 3, 4 };
		assert_protocol_error(f, sizeof f, 0, true);
		/* RSV2/RSV3 are refused even when RSV1 is negotiated. */
		if (bits[i] != WS_RSV1)
			assert_protocol_error(f, sizeof f, WS_RSV1, true);
	}
	/* Refused as soon as two bytes are in, before the mask arrives. */
	uint8_t f[] = { 0xA1, 0x80 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, 2, 0, true, &h, &err), -1);
	EXPECT_EQ(err.code, 1002);
}

Test(ws_frame, reserved_opcodes_refused)
{
	const uint8_t ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
	for (size_t i = 0; i < sizeof ops; i++) {
		for (int fin = 0; fin < 2; fin++) {
			uint8_t f[] = { (uint8_t)((fin ? 0x80 : 0) | ops[i]), 0x80, 1, 2, 3, 4 };
			assert_protocol_error(f, sizeof f, 0, true);
			assert_protocol_error(f, sizeof f, WS_RSV1, false);
			struct ws_frame_hdr h;
			struct ws_err err;
			EXPECT_EQ(decode(f, 2, 0, true, &h, &err), -1, "opcode %x", ops[i]);
		}
	}
}

Test(ws_frame, fragmented_control_frame_refused)
{
	const uint8_t ops[] = { WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	for (size_t i = 0; i < sizeof ops; i++) {
		uint8_t f[] = { ops[i], 0x80, 1, 2, 3, 4 };
		assert_protocol_error(f, sizeof f, 0, true);
	}
}

Test(ws_frame, control_frame_over_125_refused)
{
	const uint8_t ops[] = { WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	for (size_t i = 0; i < sizeof ops; i++) {
		/* 126 as a 16-bit length, and 65536 as a 64-bit length. */
		uint8_t f16[] = { (uint8_t)(0x80 | ops[i]), 0xFE, 0x00, 0x7E, 1, 2, 3, 4 };
		assert_protocol_error(f16, sizeof f16, 0, true);
		uint8_t f64[] = { (uint8_t)(0x80 | ops[i]), 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 };
		assert_protocol_error(f64, sizeof f64, 0, true);
		/* 125 is fine. */
		uint8_t ok[] = { (uint8_t)(0x80 | ops[i]), 0xFD, 1, 2, 3, 4 };
		struct ws_frame_hdr h;
		struct ws_err err;
		EXPECT_EQ(decode(ok, sizeof ok, 0, true, &h, &err), 6);
		EXPECT_EQ(h.len, 125);
	}
}

Test(ws_frame, rsv1_on_control_frame_refused_even_if_negotiated)
{
	uint8_t f[] = { 0xC9, 0x80, 1, 2, 3, 4 };
	assert_protocol_error(f, sizeof f, WS_RSV1, true);
}

Test(ws_frame, unmasked_client_frame_refused)
{
	uint8_t text[] = { 0x81, 0x00 };
	assert_protocol_error(text, sizeof text, 0, true);
	uint8_t ping[] = { 0x89, 0x00 };
	assert_protocol_error(ping, sizeof ping, 0, true);
	uint8_t big[] = { 0x82, 0x7E, 0x01, 0x00 };
	assert_protocol_error(big, sizeof big, 0, true);
	/* The client side accepts unmasked server frames. */
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(text, sizeof text, 0, false, &h, &err), 2);
}

Test(ws_frame, non_minimal_16bit_length_refused)
{
	const uint16_t lens[] = { 0, 1, 125 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		uint8_t f[] = { 0x82, 0xFE, (uint8_t)(lens[i] >> 8), (uint8_t)lens[i], 1, 2, 3, 4 };
		assert_protocol_error(f, sizeof f, 0, true);
		/* Undecidable until the length bytes are in. */
		struct ws_frame_hdr h;
		struct ws_err err;
		EXPECT_EQ(decode(f, 3, 0, true, &h, &err), 0);
	}
	uint8_t ok[] = { 0x82, 0xFE, 0x00, 0x7E, 1, 2, 3, 4 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(ok, sizeof ok, 0, true, &h, &err), 8);
	EXPECT_EQ(h.len, 126);
}

Test(ws_frame, non_minimal_64bit_length_refused)
{
	const uint64_t lens[] = { 0, 125, 126, 65535 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		uint8_t f[14] = { 0x82, 0xFF };
		for (int k = 0; k < 8; k++)
			f[2 + k] = (uint8_t)(lens[i] >> (56 - 8 * k));
		memcpy(f + 10, MASK, 4);
		assert_protocol_error(f, sizeof f, 0, true);
	}
}

Test(ws_frame, length_with_msb_set_refused)
{
	uint8_t f[] = { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	assert_protocol_error(f, sizeof f, 0, true);
	uint8_t g[] = { 0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4 };
	assert_protocol_error(g, sizeof g, 0, true);
	/* 2^63 - 1 is the largest legal length. */
	uint8_t ok[] = { 0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4 };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(ok, sizeof ok, 0, true, &h, &err), 14);
	EXPECT_EQ(h.len, 0x7FFFFFFFFFFFFFFFULL);
}

Test(ws_frame, empty_and_one_byte_input_need_more)
{
	uint8_t f[] = { 0xFF };
	struct ws_frame_hdr h;
	struct ws_err err;
	EXPECT_EQ(decode(f, 0, 0, true, &h, &err), 0);
	EXPECT_EQ(decode(f, 1, 0, true, &h, &err), 0);
}

/* ---- masking ------------------------------------------------------------ */

static void naive_mask(uint8_t *p, size_t n, const uint8_t m[4], unsigned off)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= m[(off + i) & 3];
}

static void fill_random(uint8_t *p, size_t n, unsigned seed)
{
	srand(seed);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rand();
}

/* Checks ws_mask against the naive loop for one size, offset and alignment,
 * with guard bytes on both sides. */
static void check_mask(size_t n, unsigned off, size_t align, const uint8_t m[4])
{
	size_t total = n + 32;
	uint8_t *a = malloc(total), *b = malloc(total);
	EXPECT(a && b);
	fill_random(a, total, (unsigned)(n * 7 + off * 3 + align));
	memcpy(b, a, total);
	unsigned next = ws_mask(a + 8 + align, n, m, off);
	naive_mask(b + 8 + align, n, m, off);
	EXPECT_EQ(next, (off + n) & 3, "n %zu off %u: next offset", n, off);
	EXPECT_EQ(memcmp(a, b, total), 0, "n %zu off %u align %zu differs", n, off, align);
	free(a);
	free(b);
}

Test(ws_frame, mask_matches_naive_loop_small)
{
	const uint8_t m[4] = { 0x01, 0x23, 0x45, 0x67 };
	for (size_t n = 0; n <= 100; n++)
		for (unsigned off = 0; off < 4; off++)
			for (size_t align = 0; align < 8; align++)
				check_mask(n, off, align, m);
}

Test(ws_frame, mask_matches_naive_loop_large)
{
	const uint8_t m[4] = { 0xde, 0xad, 0xbe, 0xef };
	const size_t sizes[] = { 127, 128, 129, 1000, 4095, 4096, 4099, 65535, 65536, 65541, 1 << 20 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		for (unsigned off = 0; off < 4; off++)
			check_mask(sizes[i], off, (i + off) % 8, m);
}

Test(ws_frame, mask_zero_is_identity_and_twice_restores)
{
	uint8_t data[300], orig[300];
	fill_random(orig, sizeof orig, 42);
	memcpy(data, orig, sizeof data);
	const uint8_t zero[4] = { 0 };
	ws_mask(data, sizeof data, zero, 2);
	EXPECT_ARR_EQ(data, orig, sizeof data);
	ws_mask(data, sizeof data, MASK, 1);
	EXPECT_NEQ(memcmp(data, orig, sizeof data), 0);
	ws_mask(data, sizeof data, MASK, 1);
	EXPECT_ARR_EQ(data, orig, sizeof data);
}

Test(ws_frame, mask_in_pieces_equals_one_shot)
{
	enum { N = 777 };
	uint8_t whole[N], pieces[N];
	fill_random(whole, N, 7);
	memcpy(pieces, whole, N);
	ws_mask(whole, N, MASK, 0);
	/* Every first-piece size, then the rest in pieces of a varying size. */
	for (size_t first = 0; first <= 40; first++) {
		uint8_t work[N];
		memcpy(work, pieces, N);
		unsigned off = ws_mask(work, first, MASK, 0);
		EXPECT_EQ(off, first & 3);
		size_t pos = first, step = 1;
		while (pos < N) {
			size_t take = step < N - pos ? step : N - pos;
			off = ws_mask(work + pos, take, MASK, off);
			pos += take;
			step = step * 3 % 37 + 1;
		}
		EXPECT_EQ(off, N & 3);
		EXPECT_ARR_EQ(work, whole, N, "first piece %zu", first);
	}
}

Test(ws_frame, mask_rfc_hello_byte_by_byte)
{
	uint8_t p[] = { 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	unsigned off = 0;
	for (size_t i = 0; i < sizeof p; i++)
		off = ws_mask(p + i, 1, MASK, off);
	EXPECT_ARR_EQ(p, "Hello", 5);
	EXPECT_EQ(off, 1);
}

/* ---- close codes --------------------------------------------------------- */

Test(ws_frame, close_code_valid_table)
{
	for (unsigned c = 0; c <= 65535; c++) {
		bool expect = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
			      (c >= 3000 && c <= 4999);
		EXPECT_EQ(ws_close_code_valid((uint16_t)c), expect, "code %u", c);
	}
	const uint16_t bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		EXPECT_NOT(ws_close_code_valid(bad[i]), "code %u", bad[i]);
	const uint16_t good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999 };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		EXPECT(ws_close_code_valid(good[i]), "code %u", good[i]);
}
