/* test_ws_reader — from client bytes to messages and control frames.
 *
 * A driver plays the connection: it keeps unconsumed bytes, appends each
 * new read, feeds the reader and records every callback. Each stream is
 * fed whole, in two parts at every byte boundary and byte by byte, and
 * must produce the same events and the same error. Covers fragmentation
 * with interleaved control frames, empty fragments, UTF-8 failing fast
 * across fragments, max_payload over several fragments (1009), frame
 * sequence errors (1002), close payload validation and WS_READER_STOP.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_reader.h"

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

/* ---- building client streams ----------------------------------------- */

struct stream {
	uint8_t *p;
	size_t n, cap;
	unsigned nframes;
	size_t frame_end[64]; /* offset after each frame */
};

static void stream_put(struct stream *s, const void *p, size_t n)
{
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2 + 64;
		s->p = realloc(s->p, s->cap);
		EXPECT(s->p);
	}
	if (n)
		memcpy(s->p + s->n, p, n);
	s->n += n;
}

/* Appends one masked frame (first byte given raw: FIN|RSV|opcode). */
static void frame_raw(struct stream *s, uint8_t b0, const void *payload, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	const uint8_t mask[4] = { (uint8_t)(0x11 + s->nframes), 0xA5, (uint8_t)(0x3C ^ s->nframes), 0xFF };
	size_t hl = ws_frame_encode_header(hdr, b0 & 0x80, b0 & 0x70, b0 & 0x0F, len, mask);
	stream_put(s, hdr, hl);
	size_t at = s->n;
	stream_put(s, payload, len);
	ws_mask(s->p + at, len, mask, 0);
	if (s->nframes < 64)
		s->frame_end[s->nframes] = s->n;
	s->nframes++;
}

static void frame(struct stream *s, bool fin, uint8_t opcode, const void *payload, size_t len)
{
	frame_raw(s, (uint8_t)((fin ? 0x80 : 0) | opcode), payload, len);
}

static void frame_str(struct stream *s, bool fin, uint8_t opcode, const char *str)
{
	frame(s, fin, opcode, str, strlen(str));
}

static void stream_free(struct stream *s)
{
	free(s->p);
	memset(s, 0, sizeof *s);
}

/* ---- recording callbacks ---------------------------------------------- */

enum { EV_MSG, EV_CTL };

struct event {
	int kind;
	uint8_t opcode;
	bool compressed;
	uint8_t *data;
	size_t len;
};

struct rec {
	struct event ev[256];
	size_t n;
	/* Return WS_READER_STOP from the callback that records event number
	 * stop_at (1-based; 0: never). */
	size_t stop_at;
	bool stopped;
};

static int record(struct rec *r, int kind, uint8_t opcode, bool compressed, uint8_t *data, size_t len)
{
	EXPECT_LT(r->n, sizeof r->ev / sizeof r->ev[0]);
	EXPECT_NOT_NULL(data, "message data must never be NULL, even when empty");
	struct event *e = &r->ev[r->n++];
	e->kind = kind;
	e->opcode = opcode;
	e->compressed = compressed;
	e->len = len;
	e->data = malloc(len + 1);
	EXPECT(e->data);
	if (len)
		memcpy(e->data, data, len);
	if (r->stop_at && r->n == r->stop_at) {
		r->stopped = true;
		return WS_READER_STOP;
	}
	return WS_READER_CONTINUE;
}

static int on_message(void *ud, uint8_t opcode, bool compressed, uint8_t *data, size_t len)
{
	return record(ud, EV_MSG, opcode, compressed, data, len);
}

static int on_control(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
	return record(ud, EV_CTL, opcode, false, data, len);
}

static const struct ws_reader_ops OPS = { on_message, on_control, NULL };

static void rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ev[i].data);
	r->n = 0;
}

/* ---- the driver -------------------------------------------------------- */

struct result {
	struct rec rec;
	int rc;             /* 0 ok, -1 error */
	struct ws_err err;
	size_t left;        /* bytes never consumed */
	size_t fed_at_error;/* input bytes handed over when the error came */
};

struct reader_cfg {
	uint64_t max_payload;
	uint8_t rsv_allowed;
	bool require_mask;
};

static const struct reader_cfg DEFAULT_CFG = { 1 << 20, 0, true };

/* Feeds `in` in chunks ending at the given cut offsets (the last chunk
 * ends at n). Unconsumed bytes are kept and fed again with the next
 * chunk, as a connection does with its read buffer. */
static void drive(const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
		  const struct reader_cfg *cfg, struct result *res)
{
	memset(res, 0, sizeof *res);
	struct ws_reader rd;
	ws_reader_init(&rd, cfg->max_payload, cfg->rsv_allowed, cfg->require_mask);
	uint8_t *pend = malloc(n + 1);
	EXPECT(pend);
	size_t plen = 0, pos = 0;
	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		EXPECT_GEQ(end, pos);
		memcpy(pend + plen, in + pos, end - pos);
		plen += end - pos;
		pos = end;
		for (;;) {
			res->rec.stopped = false;
			ssize_t r = ws_reader_feed(&rd, pend, plen, &OPS, &res->rec, &res->err);
			if (r < 0) {
				res->rc = -1;
				res->fed_at_error = pos;
				goto out;
			}
			EXPECT_LEQ((size_t)r, plen);
			memmove(pend, pend + r, plen - (size_t)r);
			plen -= (size_t)r;
			/* After a STOP the caller resumes with what is left. */
			if (!res->rec.stopped || plen == 0)
				break;
		}
	}
out:
	res->left = plen;
	free(pend);
	ws_reader_free(&rd);
}

static void drive_whole(const struct stream *s, const struct reader_cfg *cfg, struct result *res)
{
	drive(s->p, s->n, NULL, 0, cfg, res);
}

static void result_free(struct result *r)
{
	rec_free(&r->rec);
}

static void assert_same(const struct result *a, const struct result *b, const char *how)
{
	EXPECT_EQ(a->rc, b->rc, "%s: rc %d vs %d", how, a->rc, b->rc);
	if (a->rc < 0) {
		EXPECT_EQ(a->err.code, b->err.code, "%s: code %u vs %u", how, a->err.code, b->err.code);
		EXPECT_STR_EQ(a->err.reason, b->err.reason, "%s", how);
	}
	EXPECT_EQ(a->rec.n, b->rec.n, "%s: %zu vs %zu events", how, a->rec.n, b->rec.n);
	for (size_t i = 0; i < a->rec.n; i++) {
		const struct event *x = &a->rec.ev[i], *y = &b->rec.ev[i];
		EXPECT_EQ(x->kind, y->kind, "%s: event %zu", how, i);
		EXPECT_EQ(x->opcode, y->opcode, "%s: event %zu", how, i);
		EXPECT_EQ(x->compressed, y->compressed, "%s: event %zu", how, i);
		EXPECT_EQ(x->len, y->len, "%s: event %zu", how, i);
		EXPECT_EQ(memcmp(x->data, y->data, x->len), 0, "%s: event %zu payload", how, i);
	}
	if (a->rc == 0)
		EXPECT_EQ(a->left, b->left, "%s", how);
}

/* Feeds the stream whole, split in two at every offset, byte by byte and
 * in three pieces at a few offsets; all results must equal the whole one,
 * which is returned in *whole. */
static void check_every_split(const struct stream *s, const struct reader_cfg *cfg, struct result *whole)
{
	drive_whole(s, cfg, whole);
	for (size_t cut = 0; cut <= s->n; cut++) {
		struct result r;
		drive(s->p, s->n, &cut, 1, cfg, &r);
		char how[64];
		snprintf(how, sizeof how, "cut at %zu of %zu", cut, s->n);
		assert_same(whole, &r, how);
		result_free(&r);
	}
	size_t *cuts = malloc((s->n + 1) * sizeof *cuts);
	EXPECT(cuts);
	for (size_t i = 0; i < s->n; i++)
		cuts[i] = i + 1;
	struct result r;
	drive(s->p, s->n, cuts, s->n, cfg, &r);
	assert_same(whole, &r, "byte by byte");
	result_free(&r);
	for (size_t a = 1; a < s->n; a += 7) {
		for (size_t b = a; b < s->n; b += 5) {
			size_t c2[2] = { a, b };
			drive(s->p, s->n, c2, 2, cfg, &r);
			assert_same(whole, &r, "three pieces");
			result_free(&r);
		}
	}
	free(cuts);
}

static void assert_msg(const struct result *r, size_t i, uint8_t opcode, const void *data, size_t len)
{
	EXPECT_LT(i, r->rec.n, "event %zu missing (%zu events)", i, r->rec.n);
	const struct event *e = &r->rec.ev[i];
	EXPECT_EQ(e->kind, EV_MSG, "event %zu is not a message", i);
	EXPECT_EQ(e->opcode, opcode, "event %zu opcode", i);
	EXPECT_EQ(e->len, len, "event %zu length %zu, expected %zu", i, e->len, len);
	EXPECT_EQ(memcmp(e->data, data, len), 0, "event %zu payload", i);
}

static void assert_ctl(const struct result *r, size_t i, uint8_t opcode, const void *data, size_t len)
{
	EXPECT_LT(i, r->rec.n, "event %zu missing", i);
	const struct event *e = &r->rec.ev[i];
	EXPECT_EQ(e->kind, EV_CTL, "event %zu is not a control frame", i);
	EXPECT_EQ(e->opcode, opcode);
	EXPECT_EQ(e->len, len);
	EXPECT_EQ(memcmp(e->data, data, len), 0);
}

static void assert_error(const struct result *r, uint16_t code, const char *reason_part)
{
	EXPECT_EQ(r->rc, -1, "expected an error %u", code);
	EXPECT_EQ(r->err.code, code, "code %u, expected %u (%s)", r->err.code, code, r->err.reason);
	if (reason_part)
		EXPECT(strstr(r->err.reason, reason_part), "reason '%s' lacks '%s'", r->err.reason,
			  reason_part);
}

/* ---- messages ------------------------------------------------------------ */

Test(ws_reader, rfc_masked_hello)
{
	uint8_t f[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct stream s = { 0 };
	stream_put(&s, f, sizeof f);
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	EXPECT_EQ(r.rec.n, 1);
	assert_msg(&r, 0, WS_OP_TEXT, "Hello", 5);
	EXPECT_NOT(r.rec.ev[0].compressed);
	EXPECT_EQ(r.left, 0);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, feed_returns_bytes_consumed_and_leaves_partial_header)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "abc");
	size_t first = s.n;
	frame(&s, true, WS_OP_BINARY, "0123456789", 10);
	struct ws_reader rd;
	ws_reader_init(&rd, 1 << 20, 0, true);
	struct rec rec = { .n = 0 };
	struct ws_err err;
	/* The first frame and one byte of the next header. */
	EXPECT_EQ(ws_reader_feed(&rd, s.p, first + 1, &OPS, &rec, &err), (ssize_t)first);
	EXPECT_EQ(rec.n, 1);
	EXPECT_NOT(ws_reader_mid_message(&rd));
	/* Header plus part of the payload: everything is consumed. */
	EXPECT_EQ(ws_reader_feed(&rd, s.p + first, 8, &OPS, &rec, &err), 8);
	EXPECT(ws_reader_mid_message(&rd));
	EXPECT_EQ(rec.n, 1);
	EXPECT_EQ(ws_reader_feed(&rd, s.p + first + 8, s.n - first - 8, &OPS, &rec, &err),
		     (ssize_t)(s.n - first - 8));
	EXPECT_EQ(rec.n, 2);
	EXPECT_NOT(ws_reader_mid_message(&rd));
	EXPECT_EQ(rec.ev[1].len, 10);
	EXPECT_ARR_EQ(rec.ev[1].data, "0123456789", 10);
	/* Nothing at all. */
	EXPECT_EQ(ws_reader_feed(&rd, s.p, 0, &OPS, &rec, &err), 0);
	rec_free(&rec);
	ws_reader_free(&rd);
	stream_free(&s);
}

Test(ws_reader, single_frame_text_and_binary_all_length_encodings)
{
	const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t len = lens[i];
		uint8_t *pl = malloc(len + 1);
		EXPECT(pl);
		for (size_t k = 0; k < len; k++)
			pl[k] = (uint8_t)('a' + k % 26);
		struct stream s = { 0 };
		frame(&s, true, WS_OP_TEXT, pl, len);
		frame(&s, true, WS_OP_BINARY, pl, len);
		struct result r;
		drive_whole(&s, &DEFAULT_CFG, &r);
		EXPECT_EQ(r.rc, 0, "len %zu: %s", len, r.err.reason);
		EXPECT_EQ(r.rec.n, 2);
		assert_msg(&r, 0, WS_OP_TEXT, pl, len);
		assert_msg(&r, 1, WS_OP_BINARY, pl, len);
		result_free(&r);
		/* In pieces of 1000 bytes: the payload is streamed. */
		size_t ncut = s.n / 1000;
		size_t *cuts = malloc((ncut + 1) * sizeof *cuts);
		for (size_t k = 0; k < ncut; k++)
			cuts[k] = (k + 1) * 1000;
		drive(s.p, s.n, cuts, ncut, &DEFAULT_CFG, &r);
		EXPECT_EQ(r.rc, 0);
		assert_msg(&r, 0, WS_OP_TEXT, pl, len);
		assert_msg(&r, 1, WS_OP_BINARY, pl, len);
		result_free(&r);
		free(cuts);
		free(pl);
		stream_free(&s);
	}
}

Test(ws_reader, fragmented_text)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "Hel");
	frame_str(&s, true, WS_OP_CONT, "lo");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	EXPECT_EQ(r.rec.n, 1);
	assert_msg(&r, 0, WS_OP_TEXT, "Hello", 5);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, fragmented_binary_with_interleaved_controls)
{
	struct stream s = { 0 };
	frame(&s, false, WS_OP_BINARY, "\x00\x01", 2);
	frame_str(&s, true, WS_OP_PING, "p1");
	frame(&s, false, WS_OP_CONT, "\x02\xff", 2);
	frame_str(&s, true, WS_OP_PONG, "");
	frame_str(&s, true, WS_OP_PING, "p2");
	frame(&s, true, WS_OP_CONT, "\x03", 1);
	frame_str(&s, true, WS_OP_TEXT, "after");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 5);
	assert_ctl(&r, 0, WS_OP_PING, "p1", 2);
	assert_ctl(&r, 1, WS_OP_PONG, "", 0);
	assert_ctl(&r, 2, WS_OP_PING, "p2", 2);
	assert_msg(&r, 3, WS_OP_BINARY, "\x00\x01\x02\xff\x03", 5);
	assert_msg(&r, 4, WS_OP_TEXT, "after", 5);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, empty_fragments)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "");
	frame_str(&s, false, WS_OP_CONT, "");
	frame_str(&s, false, WS_OP_CONT, "abc");
	frame_str(&s, false, WS_OP_CONT, "");
	frame_str(&s, true, WS_OP_CONT, "");
	/* A message made only of empty fragments. */
	frame_str(&s, false, WS_OP_BINARY, "");
	frame_str(&s, true, WS_OP_CONT, "");
	/* An empty single-frame message. */
	frame_str(&s, true, WS_OP_TEXT, "");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 3);
	assert_msg(&r, 0, WS_OP_TEXT, "abc", 3);
	assert_msg(&r, 1, WS_OP_BINARY, "", 0);
	assert_msg(&r, 2, WS_OP_TEXT, "", 0);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, many_messages_and_controls_every_split)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "first");
	frame(&s, true, WS_OP_BINARY, "\xde\xad\xbe\xef", 4);
	frame_str(&s, true, WS_OP_PING, "ping!");
	frame_str(&s, false, WS_OP_TEXT, "\xce\xba\xe1");  /* κόσμε split inside characters */
	frame_str(&s, false, WS_OP_CONT, "\xbd\xb9\xcf");
	frame_str(&s, true, WS_OP_PING, "");
	frame_str(&s, true, WS_OP_CONT, "\x83\xce\xbc\xce\xb5");
	char big[300];
	memset(big, 'z', sizeof big);
	frame(&s, true, WS_OP_TEXT, big, sizeof big);
	frame(&s, true, WS_OP_CLOSE, "\x03\xe8" "bye", 5);
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 7);
	assert_msg(&r, 0, WS_OP_TEXT, "first", 5);
	assert_msg(&r, 1, WS_OP_BINARY, "\xde\xad\xbe\xef", 4);
	assert_ctl(&r, 2, WS_OP_PING, "ping!", 5);
	assert_ctl(&r, 3, WS_OP_PING, "", 0);
	assert_msg(&r, 4, WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
	assert_msg(&r, 5, WS_OP_TEXT, big, sizeof big);
	assert_ctl(&r, 6, WS_OP_CLOSE, "\x03\xe8" "bye", 5);
	EXPECT_EQ(r.left, 0);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, large_fragmented_message_and_buffer_reuse)
{
	enum { N = 200000 };
	uint8_t *pl = malloc(N);
	EXPECT(pl);
	for (size_t i = 0; i < N; i++)
		pl[i] = (uint8_t)(i * 31 + 7);
	struct stream s = { 0 };
	frame(&s, false, WS_OP_BINARY, pl, 70000);
	frame(&s, false, WS_OP_CONT, pl + 70000, 60000);
	frame(&s, true, WS_OP_CONT, pl + 130000, N - 130000);
	frame(&s, true, WS_OP_BINARY, "small", 5);
	frame(&s, false, WS_OP_BINARY, "tw", 2);
	frame(&s, true, WS_OP_CONT, "o", 1);
	struct result r;
	const size_t cuts[] = { 3, 5000, 70005, 70020, 140000, 199999, 200010 };
	drive(s.p, s.n, cuts, sizeof cuts / sizeof cuts[0], &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 3);
	assert_msg(&r, 0, WS_OP_BINARY, pl, N);
	assert_msg(&r, 1, WS_OP_BINARY, "small", 5);
	assert_msg(&r, 2, WS_OP_BINARY, "two", 3);
	result_free(&r);
	drive_whole(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	assert_msg(&r, 0, WS_OP_BINARY, pl, N);
	assert_msg(&r, 2, WS_OP_BINARY, "two", 3);
	result_free(&r);
	free(pl);
	stream_free(&s);
}

Test(ws_reader, binary_is_not_utf8_checked)
{
	struct stream s = { 0 };
	frame(&s, true, WS_OP_BINARY, "\xff\xfe\xc0\x80", 4);
	frame(&s, false, WS_OP_BINARY, "\xed", 1);
	frame(&s, true, WS_OP_CONT, "\xa0\x80", 2);
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	EXPECT_EQ(r.rec.n, 2);
	assert_msg(&r, 1, WS_OP_BINARY, "\xed\xa0\x80", 3);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, unmasked_frames_accepted_only_when_not_required)
{
	uint8_t f[] = { 0x81, 0x02, 'h', 'i' };
	struct stream s = { 0 };
	stream_put(&s, f, sizeof f);
	struct result r;
	const struct reader_cfg client = { 1 << 20, 0, false };
	check_every_split(&s, &client, &r);
	EXPECT_EQ(r.rc, 0);
	assert_msg(&r, 0, WS_OP_TEXT, "hi", 2);
	result_free(&r);
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, compressed_flag_and_rsv1_rules)
{
	const struct reader_cfg deflate = { 1 << 20, WS_RSV1, true };
	struct stream s = { 0 };
	/* RSV1 on the first frame marks the message compressed; its bytes
	 * are not UTF-8 checked here (the caller inflates first). */
	frame_raw(&s, 0x80 | WS_RSV1 | WS_OP_TEXT, "\xff\x00\x01", 3);
	frame_raw(&s, WS_RSV1 | WS_OP_TEXT, "\xc0", 1);
	frame_raw(&s, 0x80 | WS_OP_CONT, "\x80", 1);
	frame_str(&s, true, WS_OP_TEXT, "plain");
	struct result r;
	check_every_split(&s, &deflate, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 3);
	assert_msg(&r, 0, WS_OP_TEXT, "\xff\x00\x01", 3);
	EXPECT(r.rec.ev[0].compressed);
	assert_msg(&r, 1, WS_OP_TEXT, "\xc0\x80", 2);
	EXPECT(r.rec.ev[1].compressed);
	EXPECT_NOT(r.rec.ev[2].compressed);
	result_free(&r);
	stream_free(&s);

	/* RSV1 on a continuation frame is a protocol error (RFC 7692 §6.1). */
	frame_raw(&s, WS_OP_BINARY, "a", 1);
	frame_raw(&s, 0x80 | WS_RSV1 | WS_OP_CONT, "b", 1);
	check_every_split(&s, &deflate, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	EXPECT_EQ(r.rec.n, 0);
	result_free(&r);
	stream_free(&s);

	/* Without the extension RSV1 is refused outright. */
	frame_raw(&s, 0x80 | WS_RSV1 | WS_OP_TEXT, "x", 1);
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	result_free(&r);
	stream_free(&s);
}

/* ---- UTF-8 -------------------------------------------------------------- */

Test(ws_reader, utf8_valid_across_fragment_boundaries)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "\xe2");
	frame_str(&s, false, WS_OP_CONT, "\x82");
	frame_str(&s, true, WS_OP_CONT, "\xac");
	frame_str(&s, false, WS_OP_TEXT, "\xf0\x9f");
	frame_str(&s, true, WS_OP_PING, "x");
	frame_str(&s, true, WS_OP_CONT, "\x98\x80");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 3);
	assert_msg(&r, 0, WS_OP_TEXT, "\xe2\x82\xac", 3);
	assert_msg(&r, 2, WS_OP_TEXT, "\xf0\x9f\x98\x80", 4);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, invalid_utf8_single_frame)
{
	const char *bad[] = { "\xff", "a\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "abc\xe2\x82" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct stream s = { 0 };
		frame_str(&s, true, WS_OP_TEXT, "ok");
		frame_str(&s, true, WS_OP_TEXT, bad[i]);
		struct result r;
		check_every_split(&s, &DEFAULT_CFG, &r);
		assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
		EXPECT_EQ(r.rec.n, 1, "the valid message before is delivered");
		result_free(&r);
		stream_free(&s);
	}
}

/* The error must come as soon as the offending byte is fed, long before
 * the final fragment. */
Test(ws_reader, invalid_utf8_fails_fast_in_fragmented_message)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "abc\xce\xba");
	frame_str(&s, false, WS_OP_CONT, "de\xf4\x90xyz"); /* F4 90: > U+10FFFF */
	size_t bad_frame_end = s.n;
	frame_str(&s, false, WS_OP_CONT, "more");
	frame_str(&s, true, WS_OP_CONT, "end");
	/* Offset of the byte 0x90 in the stream: second frame header is 6
	 * bytes (masked, short), payload "de\xf4\x90". */
	size_t bad_byte = s.frame_end[0] + 6 + 3;

	/* Only up to the end of the bad fragment. */
	struct result r;
	drive(s.p, bad_frame_end, NULL, 0, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	EXPECT_EQ(r.rec.n, 0);
	result_free(&r);

	/* Byte by byte: the error comes with the bad byte itself. */
	size_t *cuts = malloc(s.n * sizeof *cuts);
	for (size_t i = 0; i < s.n; i++)
		cuts[i] = i + 1;
	drive(s.p, s.n, cuts, s.n, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	EXPECT_EQ(r.fed_at_error, bad_byte + 1, "error after %zu bytes, expected %zu",
		     r.fed_at_error, bad_byte + 1);
	result_free(&r);
	free(cuts);

	/* Up to just before the bad byte: no error yet. */
	drive(s.p, bad_byte, NULL, 0, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	result_free(&r);

	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, invalid_utf8_across_fragment_boundary)
{
	/* E2 82 then '(' : the sequence breaks in the second fragment. */
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "\xe2\x82");
	frame_str(&s, false, WS_OP_CONT, "(");
	size_t upto = s.n;
	frame_str(&s, true, WS_OP_CONT, "x");
	struct result r;
	drive(s.p, upto, NULL, 0, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	result_free(&r);
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, text_ending_inside_a_character_fails_at_fin)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "a\xe2");
	frame_str(&s, false, WS_OP_CONT, "\x82");
	size_t before_fin = s.n;
	frame_str(&s, true, WS_OP_CONT, "");
	struct result r;
	drive(s.p, before_fin, NULL, 0, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0, "a valid prefix is not an error yet");
	result_free(&r);
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_INVALID_DATA, NULL);
	EXPECT_EQ(r.rec.n, 0);
	result_free(&r);
	stream_free(&s);
}

/* ---- max_payload --------------------------------------------------------- */

Test(ws_reader, max_payload_single_frame)
{
	const struct reader_cfg cfg = { 10, 0, true };
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "0123456789"); /* exactly the limit */
	frame_str(&s, true, WS_OP_TEXT, "0123456789A");
	struct result r;
	check_every_split(&s, &cfg, &r);
	assert_error(&r, WS_CLOSE_TOO_BIG, "Frame size of 11 exceeds maximum of 10");
	EXPECT_EQ(r.rec.n, 1);
	assert_msg(&r, 0, WS_OP_TEXT, "0123456789", 10);
	result_free(&r);
	/* Refused from the header alone, before the payload is buffered. */
	drive(s.p, s.frame_end[0] + 6, NULL, 0, &cfg, &r);
	assert_error(&r, WS_CLOSE_TOO_BIG, NULL);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, max_payload_counts_all_fragments)
{
	const struct reader_cfg cfg = { 10, 0, true };
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_BINARY, "aaaa");
	frame_str(&s, true, WS_OP_PING, "this ping does not count");
	frame_str(&s, false, WS_OP_CONT, "bbbb");
	frame_str(&s, true, WS_OP_CONT, "ccc");
	size_t third_hdr = s.frame_end[2] + 6;
	struct result r;
	check_every_split(&s, &cfg, &r);
	assert_error(&r, WS_CLOSE_TOO_BIG, "Frame size of 11 exceeds maximum of 10");
	EXPECT_STR_EQ(r.err.reason, "Frame size of 11 exceeds maximum of 10");
	EXPECT_EQ(r.rec.n, 1, "the ping before the error is delivered");
	assert_ctl(&r, 0, WS_OP_PING, "this ping does not count", 24);
	result_free(&r);
	/* The error comes with the header of the fragment that overflows. */
	drive(s.p, third_hdr, NULL, 0, &cfg, &r);
	assert_error(&r, WS_CLOSE_TOO_BIG, NULL);
	result_free(&r);
	drive(s.p, third_hdr - 1, NULL, 0, &cfg, &r);
	EXPECT_EQ(r.rc, 0);
	result_free(&r);
	stream_free(&s);

	/* Exactly the limit over fragments is fine, and the count restarts
	 * with the next message. */
	frame_str(&s, false, WS_OP_TEXT, "aaaa");
	frame_str(&s, true, WS_OP_CONT, "bbbbbb");
	frame_str(&s, false, WS_OP_TEXT, "cccccc");
	frame_str(&s, true, WS_OP_CONT, "dddd");
	check_every_split(&s, &cfg, &r);
	EXPECT_EQ(r.rc, 0, "%s", r.err.reason);
	EXPECT_EQ(r.rec.n, 2);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, max_payload_huge_64bit_length)
{
	const struct reader_cfg cfg = { 1 << 20, 0, true };
	uint8_t f[] = { 0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4 };
	struct stream s = { 0 };
	stream_put(&s, f, sizeof f);
	struct result r;
	check_every_split(&s, &cfg, &r);
	assert_error(&r, WS_CLOSE_TOO_BIG, "Frame size of 9223372036854775807 exceeds maximum of 1048576");
	result_free(&r);
	stream_free(&s);
}

/* ---- frame sequence ------------------------------------------------------- */

Test(ws_reader, continuation_without_start)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "fine");
	frame_str(&s, true, WS_OP_CONT, "orphan");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	EXPECT_EQ(r.rec.n, 1);
	result_free(&r);
	stream_free(&s);

	frame_str(&s, false, WS_OP_CONT, "");
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	result_free(&r);
	stream_free(&s);
}

Test(ws_reader, new_data_frame_inside_fragmented_message)
{
	const uint8_t ops[] = { WS_OP_TEXT, WS_OP_BINARY };
	for (size_t i = 0; i < 2; i++) {
		for (int fin = 0; fin < 2; fin++) {
			struct stream s = { 0 };
			frame_str(&s, false, WS_OP_TEXT, "part");
			frame_str(&s, true, WS_OP_PING, "");
			frame_str(&s, fin, ops[i], "intruder");
			struct result r;
			check_every_split(&s, &DEFAULT_CFG, &r);
			assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
			EXPECT_EQ(r.rec.n, 1);
			result_free(&r);
			stream_free(&s);
		}
	}
}

Test(ws_reader, protocol_errors_from_the_header)
{
	const uint8_t bad_first[] = {
		0x83,        /* reserved opcode */
		0x8B,        /* reserved control opcode */
		0x09,        /* fragmented ping */
		0xA1,        /* RSV2 */
		0x91,        /* RSV3 */
	};
	for (size_t i = 0; i < sizeof bad_first; i++) {
		struct stream s = { 0 };
		frame_str(&s, true, WS_OP_TEXT, "before");
		frame_raw(&s, bad_first[i], "x", 1);
		struct result r;
		check_every_split(&s, &DEFAULT_CFG, &r);
		assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
		EXPECT_EQ(r.rec.n, 1, "first byte %02x", bad_first[i]);
		result_free(&r);
		stream_free(&s);
	}
	/* A ping with 126 bytes. */
	char big[126];
	memset(big, 'p', sizeof big);
	struct stream s = { 0 };
	frame(&s, true, WS_OP_PING, big, sizeof big);
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	result_free(&r);
	stream_free(&s);
	/* 125 is fine, also streamed. */
	frame(&s, true, WS_OP_PING, big, 125);
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	assert_ctl(&r, 0, WS_OP_PING, big, 125);
	result_free(&r);
	stream_free(&s);
}

/* Every message completed before the bad frame is delivered first. */
Test(ws_reader, messages_before_an_error_are_delivered)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "one");
	frame_str(&s, false, WS_OP_BINARY, "tw");
	frame_str(&s, true, WS_OP_CONT, "o");
	frame_str(&s, true, WS_OP_PING, "three");
	frame_str(&s, true, WS_OP_TEXT, "four");
	frame_raw(&s, 0x85, "boom", 4);
	frame_str(&s, true, WS_OP_TEXT, "never");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	assert_error(&r, WS_CLOSE_PROTOCOL, NULL);
	EXPECT_EQ(r.rec.n, 4);
	assert_msg(&r, 0, WS_OP_TEXT, "one", 3);
	assert_msg(&r, 1, WS_OP_BINARY, "two", 3);
	assert_ctl(&r, 2, WS_OP_PING, "three", 5);
	assert_msg(&r, 3, WS_OP_TEXT, "four", 4);
	result_free(&r);
	stream_free(&s);
}

/* ---- close frames ----------------------------------------------------------- */

static void close_case(const void *payload, size_t len, int expect_code)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "x");
	frame(&s, true, WS_OP_CLOSE, payload, len);
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	if (expect_code == 0) {
		EXPECT_EQ(r.rc, 0, "close payload of %zu bytes: %s", len, r.err.reason);
		EXPECT_EQ(r.rec.n, 2);
		assert_ctl(&r, 1, WS_OP_CLOSE, payload, len);
	} else {
		assert_error(&r, (uint16_t)expect_code, NULL);
		EXPECT_EQ(r.rec.n, 1);
	}
	result_free(&r);
	stream_free(&s);

	/* ws_close_payload_valid agrees. */
	struct ws_err err = { 0 };
	EXPECT_EQ(ws_close_payload_valid(payload, len, &err), expect_code == 0);
	if (expect_code)
		EXPECT_EQ(err.code, expect_code);
}

Test(ws_reader, close_payloads)
{
	close_case("", 0, 0);
	close_case("\x03", 1, WS_CLOSE_PROTOCOL);
	const uint16_t bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t p[2] = { (uint8_t)(bad[i] >> 8), (uint8_t)bad[i] };
		close_case(p, 2, WS_CLOSE_PROTOCOL);
	}
	const uint16_t good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999 };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint8_t p[2] = { (uint8_t)(good[i] >> 8), (uint8_t)good[i] };
		close_case(p, 2, 0);
	}
	close_case("\x03\xe8" "normal closure", 16, 0);
	close_case("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 13, 0);
	close_case("\x03\xe8\xff", 3, WS_CLOSE_INVALID_DATA);
	close_case("\x03\xe8" "ab\xe2\x82", 6, WS_CLOSE_INVALID_DATA); /* truncated character */
	close_case("\x03\xe8\xed\xa0\x80", 5, WS_CLOSE_INVALID_DATA);
	/* The code is checked before the reason. */
	close_case("\x03\xed\xff", 3, WS_CLOSE_PROTOCOL);
	/* A full-size 125-byte close frame. */
	uint8_t p[125];
	memset(p, 'r', sizeof p);
	p[0] = 0x0F;
	p[1] = 0xA0; /* 4000 */
	close_case(p, sizeof p, 0);
}

Test(ws_reader, close_reason_messages)
{
	struct ws_err err = { 0 };
	EXPECT_NOT(ws_close_payload_valid((const uint8_t *)"\x03\xed", 2, &err));
	EXPECT_STR_EQ(err.reason, "Invalid close code 1005");
	EXPECT_NOT(ws_close_payload_valid((const uint8_t *)"\x03", 1, &err));
	EXPECT_EQ(err.code, 1002);
	EXPECT_GT(strlen(err.reason), 0);
}

/* ---- WS_READER_STOP ------------------------------------------------------- */

static void stop_case(const struct stream *s, size_t stop_at, size_t expect_consumed)
{
	struct ws_reader rd;
	ws_reader_init(&rd, 1 << 20, 0, true);
	uint8_t *buf = malloc(s->n);
	memcpy(buf, s->p, s->n);
	struct rec rec = { .stop_at = stop_at };
	struct ws_err err;
	ssize_t n = ws_reader_feed(&rd, buf, s->n, &OPS, &rec, &err);
	EXPECT_EQ(n, (ssize_t)expect_consumed, "stop at event %zu: consumed %zd, expected %zu",
		     stop_at, n, expect_consumed);
	EXPECT_EQ(rec.n, stop_at, "no callback after STOP");
	/* The rest, fed later, continues where it stopped. */
	rec.stop_at = 0;
	ssize_t m = ws_reader_feed(&rd, buf + n, s->n - (size_t)n, &OPS, &rec, &err);
	EXPECT_EQ(m, (ssize_t)(s->n - (size_t)n));
	EXPECT_EQ(rec.n, 4);
	EXPECT_EQ(rec.ev[0].len, 5);
	EXPECT_ARR_EQ(rec.ev[0].data, "first", 5);
	EXPECT_EQ(rec.ev[1].opcode, WS_OP_PING);
	EXPECT_EQ(rec.ev[2].len, 11);
	EXPECT_ARR_EQ(rec.ev[2].data, "second part", 11);
	EXPECT_EQ(rec.ev[3].len, 5);
	EXPECT_ARR_EQ(rec.ev[3].data, "third", 5);
	rec_free(&rec);
	free(buf);
	ws_reader_free(&rd);
}

Test(ws_reader, stop_leaves_the_rest_unconsumed)
{
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "first");
	frame_str(&s, false, WS_OP_TEXT, "second");
	frame_str(&s, true, WS_OP_PING, "pi");
	frame_str(&s, true, WS_OP_CONT, " part");
	frame_str(&s, true, WS_OP_TEXT, "third");
	stop_case(&s, 1, s.frame_end[0]);
	stop_case(&s, 2, s.frame_end[2]);
	stop_case(&s, 3, s.frame_end[3]);
	stop_case(&s, 4, s.frame_end[4]);
	stream_free(&s);
}

Test(ws_reader, stop_while_streaming_then_resume_in_pieces)
{
	/* Every split, with a STOP on each event in turn: the driver resumes
	 * with what is left, and the events are those of a plain run. */
	struct stream s = { 0 };
	frame_str(&s, true, WS_OP_TEXT, "first");
	frame_str(&s, false, WS_OP_TEXT, "second");
	frame_str(&s, true, WS_OP_PING, "pi");
	frame_str(&s, true, WS_OP_CONT, " part");
	frame_str(&s, true, WS_OP_TEXT, "third");
	struct result whole;
	drive_whole(&s, &DEFAULT_CFG, &whole);
	EXPECT_EQ(whole.rec.n, 4);
	for (size_t stop = 1; stop <= 4; stop++) {
		for (size_t cut = 0; cut <= s.n; cut++) {
			struct result r;
			memset(&r, 0, sizeof r);
			/* drive() clears the recorder, so set stop_at through a
			 * copy of the driver loop. */
			struct ws_reader rd;
			ws_reader_init(&rd, 1 << 20, 0, true);
			uint8_t *pend = malloc(s.n);
			size_t plen = 0;
			r.rec.stop_at = stop;
			const size_t ends[2] = { cut, s.n };
			size_t pos = 0;
			for (int c = 0; c < 2; c++) {
				memcpy(pend + plen, s.p + pos, ends[c] - pos);
				plen += ends[c] - pos;
				pos = ends[c];
				for (;;) {
					r.rec.stopped = false;
					ssize_t k = ws_reader_feed(&rd, pend, plen, &OPS, &r.rec, &r.err);
					EXPECT_GEQ(k, 0);
					memmove(pend, pend + k, plen - (size_t)k);
					plen -= (size_t)k;
					if (!r.rec.stopped || plen == 0)
						break;
				}
			}
			EXPECT_EQ(plen, 0);
			assert_same(&whole, &r, "stop and resume");
			result_free(&r);
			free(pend);
			ws_reader_free(&rd);
		}
	}
	result_free(&whole);
	stream_free(&s);
}

/* ---- memory ------------------------------------------------------------------ */

/* A message made only of empty fragments, on a fresh reader, still gets a
 * usable (non-NULL) data pointer: callers pass it to memcpy, for which NULL
 * is undefined even with length 0 (the recorder asserts it). */
Test(ws_reader, empty_fragmented_message_on_fresh_reader)
{
	struct stream s = { 0 };
	frame_str(&s, false, WS_OP_TEXT, "");
	frame_str(&s, true, WS_OP_CONT, "");
	frame_str(&s, false, WS_OP_BINARY, "");
	frame_str(&s, true, WS_OP_PING, "");
	frame_str(&s, true, WS_OP_CONT, "");
	struct result r;
	check_every_split(&s, &DEFAULT_CFG, &r);
	EXPECT_EQ(r.rc, 0);
	EXPECT_EQ(r.rec.n, 3);
	assert_msg(&r, 0, WS_OP_TEXT, "", 0);
	assert_ctl(&r, 1, WS_OP_PING, "", 0);
	assert_msg(&r, 2, WS_OP_BINARY, "", 0);
	result_free(&r);
	stream_free(&s);
}

/* A header announcing a large frame does not make the reader allocate the
 * announced size before the bytes arrive. */
Test(ws_reader, announced_length_is_not_allocated_up_front)
{
	const uint64_t huge = 1ULL << 40;
	struct ws_reader rd;
	ws_reader_init(&rd, huge, 0, true);
	uint8_t hdr[WS_MAX_HEADER + 8];
	const uint8_t mask[4] = { 1, 2, 3, 4 };
	size_t hl = ws_frame_encode_header(hdr, true, 0, WS_OP_BINARY, huge, mask);
	memcpy(hdr + hl, "12345678", 8);
	struct rec rec = { .n = 0 };
	struct ws_err err = { 0 };
	ssize_t n = ws_reader_feed(&rd, hdr, hl + 8, &OPS, &rec, &err);
	EXPECT_EQ(n, (ssize_t)(hl + 8), "rc %zd: %u %s", n, err.code, err.reason);
	EXPECT(ws_reader_mid_message(&rd));
	EXPECT_LEQ(rd.msg.cap, 1 << 20, "reserved %zu bytes for 8 received", rd.msg.cap);
	EXPECT_EQ(rd.msg.len, 8);
	ws_reader_free(&rd);

	ws_reader_init(&rd, 1 << 20, 0, true);
	hl = ws_frame_encode_header(hdr, true, 0, WS_OP_BINARY, 1 << 20, mask);
	EXPECT_EQ(ws_reader_feed(&rd, hdr, hl + 8, &OPS, &rec, &err), (ssize_t)(hl + 8));
	EXPECT_LEQ(rd.msg.cap, 64 * 1024);
	ws_reader_free(&rd);
}
