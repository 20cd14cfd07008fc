/* test_ws_utf8 — incremental UTF-8 validation (RFC 3629, RFC 6455 §8.1).
 *
 * Each sample has an expected verdict: valid, incomplete (a valid prefix
 * that does not end on a character boundary) or invalid at a given byte.
 * Every sample is also fed split at every byte boundary, byte by byte and
 * padded with ASCII (to cross the word-at-a-time fast path), and must give
 * the same verdict, failing exactly at the first byte that makes it
 * invalid. An independent oracle, built by encoding every Unicode scalar
 * value, checks all inputs of up to three bytes exhaustively.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_utf8.h"

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

enum verdict { VALID, INCOMPLETE, INVALID };

struct sample {
	const char *name;
	const char *bytes;
	size_t n;
	enum verdict v;
	size_t bad;        /* INVALID: index of the first byte that is invalid */
};

#define S(name, lit, v, bad) { name, lit, sizeof(lit) - 1, v, bad }

static const struct sample SAMPLES[] = {
	/* valid */
	S("empty", "", VALID, 0),
	S("ascii", "Hello, world! {\"a\":1}", VALID, 0),
	S("nul", "a\0b", VALID, 0),
	S("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID, 0),
	S("U+0080", "\xc2\x80", VALID, 0),
	S("U+07FF", "\xdf\xbf", VALID, 0),
	S("U+0800", "\xe0\xa0\x80", VALID, 0),
	S("U+D7FF", "\xed\x9f\xbf", VALID, 0),
	S("U+E000", "\xee\x80\x80", VALID, 0),
	S("U+FFFD", "\xef\xbf\xbd", VALID, 0),
	S("U+FFFE", "\xef\xbf\xbe", VALID, 0),
	S("U+FFFF", "\xef\xbf\xbf", VALID, 0),
	S("U+10000", "\xf0\x90\x80\x80", VALID, 0),
	S("U+1F600", "\xf0\x9f\x98\x80", VALID, 0),
	S("U+FFFFF", "\xf3\xbf\xbf\xbf", VALID, 0),
	S("U+100000", "\xf4\x80\x80\x80", VALID, 0),
	S("U+10FFFF", "\xf4\x8f\xbf\xbf", VALID, 0),
	S("mixed", "a\xc3\xa9" "b\xe2\x82\xac" "c\xf0\x9d\x84\x9e" "d", VALID, 0),
	S("long ascii then euro", "0123456789abcdefghij\xe2\x82\xac", VALID, 0),
	/* overlong forms */
	S("C0 80", "\xc0\x80", INVALID, 0),
	S("C0 AF", "\xc0\xaf", INVALID, 0),
	S("C1 BF", "\xc1\xbf", INVALID, 0),
	S("E0 80 80", "\xe0\x80\x80", INVALID, 1),
	S("E0 80 AF", "\xe0\x80\xaf", INVALID, 1),
	S("E0 9F BF", "\xe0\x9f\xbf", INVALID, 1),
	S("F0 80 80 80", "\xf0\x80\x80\x80", INVALID, 1),
	S("F0 80 80 AF", "\xf0\x80\x80\xaf", INVALID, 1),
	S("F0 8F BF BF", "\xf0\x8f\xbf\xbf", INVALID, 1),
	S("F8 88 80 80 80", "\xf8\x88\x80\x80\x80", INVALID, 0),
	S("FC 84 80 80 80 80", "\xfc\x84\x80\x80\x80\x80", INVALID, 0),
	/* surrogates */
	S("ED A0 80", "\xed\xa0\x80", INVALID, 1),
	S("ED AD BF", "\xed\xad\xbf", INVALID, 1),
	S("ED AE 80", "\xed\xae\x80", INVALID, 1),
	S("ED B0 80", "\xed\xb0\x80", INVALID, 1),
	S("ED BF BF", "\xed\xbf\xbf", INVALID, 1),
	S("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", INVALID, 1),
	S("kosme then surrogate", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited",
	  INVALID, 12),
	/* above U+10FFFF */
	S("F4 90 80 80", "\xf4\x90\x80\x80", INVALID, 1),
	S("F4 BF BF BF", "\xf4\xbf\xbf\xbf", INVALID, 1),
	S("F5 80 80 80", "\xf5\x80\x80\x80", INVALID, 0),
	S("F6", "\xf6", INVALID, 0),
	S("F7 BF BF BF", "\xf7\xbf\xbf\xbf", INVALID, 0),
	S("FE", "\xfe", INVALID, 0),
	S("FF", "\xff", INVALID, 0),
	S("ascii then FF", "abcdefghijklmnop\xff", INVALID, 16),
	/* stray continuation bytes */
	S("80", "\x80", INVALID, 0),
	S("BF", "\xbf", INVALID, 0),
	S("a 80", "a\x80", INVALID, 1),
	S("C2 80 80", "\xc2\x80\x80", INVALID, 2),
	S("euro then BF", "\xe2\x82\xac\xbf", INVALID, 3),
	S("U+10FFFF then 80", "\xf4\x8f\xbf\xbf\x80", INVALID, 4),
	/* a sequence cut short by something that is not a continuation */
	S("C2 41", "\xc2\x41", INVALID, 1),
	S("E1 80 41", "\xe1\x80\x41", INVALID, 2),
	S("F1 80 80 41", "\xf1\x80\x80\x41", INVALID, 3),
	S("C2 C2 80", "\xc2\xc2\x80", INVALID, 1),
	S("E2 82 E2 82 AC", "\xe2\x82\xe2\x82\xac", INVALID, 2),
	S("F4 8F BF 00", "\xf4\x8f\xbf\x00", INVALID, 3),
	/* truncated: a valid prefix that is not complete */
	S("C2", "\xc2", INCOMPLETE, 0),
	S("DF", "\xdf", INCOMPLETE, 0),
	S("E0 A0", "\xe0\xa0", INCOMPLETE, 0),
	S("E1", "\xe1", INCOMPLETE, 0),
	S("ED 9F", "\xed\x9f", INCOMPLETE, 0),
	S("F0 90 80", "\xf0\x90\x80", INCOMPLETE, 0),
	S("F4 8F BF", "\xf4\x8f\xbf", INCOMPLETE, 0),
	S("F1", "\xf1", INCOMPLETE, 0),
	S("abc E2 82", "abc\xe2\x82", INCOMPLETE, 0),
	S("kosme truncated", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce", INCOMPLETE, 0),
};

#define NSAMPLES (sizeof SAMPLES / sizeof SAMPLES[0])

/* Feeds p in pieces at the given cut points (sorted), checks the verdict
 * and that the failing piece is the one containing byte `bad`. */
static void check_split(const char *name, const uint8_t *p, size_t n, enum verdict v, size_t bad,
			size_t cut)
{
	struct ws_utf8 u;
	ws_utf8_init(&u);
	bool ok1 = ws_utf8_feed(&u, p, cut);
	if (v == INVALID && bad < cut) {
		EXPECT_NOT(ok1, "%s: first piece [0,%zu) must fail (bad byte %zu)", name, cut, bad);
		return;
	}
	EXPECT(ok1, "%s: first piece [0,%zu) must be accepted", name, cut);
	bool ok2 = ws_utf8_feed(&u, p + cut, n - cut);
	if (v == INVALID) {
		EXPECT_NOT(ok2, "%s: second piece [%zu,%zu) must fail", name, cut, n);
		return;
	}
	EXPECT(ok2, "%s: cut at %zu", name, cut);
	EXPECT_EQ(ws_utf8_complete(&u), v == VALID, "%s: cut at %zu: complete", name, cut);
}

static void check_bytewise(const char *name, const uint8_t *p, size_t n, enum verdict v, size_t bad)
{
	struct ws_utf8 u;
	ws_utf8_init(&u);
	for (size_t i = 0; i < n; i++) {
		bool ok = ws_utf8_feed(&u, p + i, 1);
		if (v == INVALID && i == bad) {
			EXPECT_NOT(ok, "%s: byte %zu must be refused", name, i);
			return;
		}
		EXPECT(ok, "%s: byte %zu must be accepted", name, i);
	}
	EXPECT_NEQ(v, INVALID, "%s: never failed", name);
	EXPECT_EQ(ws_utf8_complete(&u), v == VALID, "%s: complete", name);
}

static void check_all_ways(const char *name, const uint8_t *p, size_t n, enum verdict v, size_t bad)
{
	EXPECT_EQ(ws_utf8_valid(p, n), v == VALID, "%s: ws_utf8_valid", name);
	/* The prefix before the bad byte is still fine. */
	if (v == INVALID) {
		struct ws_utf8 u;
		ws_utf8_init(&u);
		EXPECT(ws_utf8_feed(&u, p, bad), "%s: prefix before byte %zu", name, bad);
		EXPECT_NOT(ws_utf8_feed(&u, p + bad, 1), "%s: byte %zu", name, bad);
	}
	for (size_t cut = 0; cut <= n; cut++)
		check_split(name, p, n, v, bad, cut);
	check_bytewise(name, p, n, v, bad);
	/* Three pieces: every pair of cuts. */
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			struct ws_utf8 u;
			ws_utf8_init(&u);
			bool ok = ws_utf8_feed(&u, p, a) && ws_utf8_feed(&u, p + a, b - a) &&
				  ws_utf8_feed(&u, p + b, n - b);
			EXPECT_EQ(ok, v != INVALID, "%s: cuts %zu,%zu", name, a, b);
			if (ok)
				EXPECT_EQ(ws_utf8_complete(&u), v == VALID, "%s: cuts %zu,%zu", name, a, b);
		}
	}
}

Test(ws_utf8, samples_every_split)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		const struct sample *s = &SAMPLES[i];
		check_all_ways(s->name, (const uint8_t *)s->bytes, s->n, s->v, s->bad);
	}
}

/* Padding with ASCII before (and, unless incomplete, after) each sample
 * moves it across the 8-byte fast path at every alignment. */
Test(ws_utf8, samples_padded_with_ascii)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		const struct sample *s = &SAMPLES[i];
		for (size_t pre = 0; pre <= 17; pre++) {
			for (size_t post = 0; post <= 9; post += 9) {
				uint8_t buf[128];
				EXPECT_LEQ(pre + s->n + post, sizeof buf);
				memset(buf, 'x', sizeof buf);
				memcpy(buf + pre, s->bytes, s->n);
				size_t n = pre + s->n + post;
				enum verdict v = s->v;
				size_t bad = pre + s->bad;
				if (v == INCOMPLETE && post) {
					/* ASCII cannot continue a sequence. */
					v = INVALID;
					bad = pre + s->n;
				}
				if (v == VALID && post == 0 && pre == 0)
					continue; /* covered above */
				char name[160];
				snprintf(name, sizeof name, "%s (pre %zu post %zu)", s->name, pre, post);
				check_all_ways(name, buf, n, v, bad);
			}
		}
	}
}

Test(ws_utf8, state_is_reusable_and_zero_length_feed_is_neutral)
{
	struct ws_utf8 u;
	ws_utf8_init(&u);
	EXPECT(ws_utf8_complete(&u));
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"", 0));
	EXPECT(ws_utf8_complete(&u));
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"\xf0", 1));
	EXPECT_NOT(ws_utf8_complete(&u));
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"", 0));
	EXPECT_NOT(ws_utf8_complete(&u));
	/* The range restriction of F0 (>= 0x90) survives the empty feed. */
	struct ws_utf8 v = u;
	EXPECT_NOT(ws_utf8_feed(&v, (const uint8_t *)"\x8f", 1));
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"\x90\x80", 2));
	EXPECT_NOT(ws_utf8_complete(&u));
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"\x80", 1));
	EXPECT(ws_utf8_complete(&u));
	/* Re-initialising after a failure starts afresh. */
	EXPECT_NOT(ws_utf8_feed(&u, (const uint8_t *)"\xff", 1));
	ws_utf8_init(&u);
	EXPECT(ws_utf8_feed(&u, (const uint8_t *)"ok", 2));
	EXPECT(ws_utf8_complete(&u));
}

Test(ws_utf8, large_valid_buffer_fast_path)
{
	enum { N = 100000 };
	uint8_t *p = malloc(N);
	EXPECT(p);
	/* ASCII with a 4-byte character every 1000 bytes. */
	for (size_t i = 0; i < N; i++)
		p[i] = (uint8_t)('a' + i % 26);
	for (size_t i = 500; i + 4 <= N; i += 1000)
		memcpy(p + i, "\xf0\x9f\x98\x80", 4);
	EXPECT(ws_utf8_valid(p, N));
	/* One bad byte deep inside is found at exactly that position. */
	p[77777] = 0x80;
	struct ws_utf8 u;
	ws_utf8_init(&u);
	EXPECT(ws_utf8_feed(&u, p, 77777));
	EXPECT_NOT(ws_utf8_feed(&u, p + 77777, N - 77777));
	EXPECT_NOT(ws_utf8_valid(p, N));
	free(p);
}

/* ---- an independent oracle --------------------------------------------- */

/* Bitmaps of every strict prefix (viable) and every complete encoding
 * (full) of lengths 1..3, built by encoding all Unicode scalar values. */
static uint8_t *viable3, *full3;
static uint8_t viable2[65536 / 8], full2[65536 / 8], viable1[256 / 8], full1[256 / 8];

#define BSET(m, i) ((m)[(i) >> 3] |= (uint8_t)(1u << ((i) & 7)))
#define BGET(m, i) (((m)[(i) >> 3] >> ((i) & 7)) & 1)

static size_t encode(uint32_t cp, uint8_t out[4])
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xC0 | cp >> 6);
		out[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xE0 | cp >> 12);
		out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | cp >> 18);
	out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

static void build_oracle(void)
{
	viable3 = calloc(1, (1u << 24) / 8);
	full3 = calloc(1, (1u << 24) / 8);
	EXPECT(viable3 && full3);
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		uint8_t e[4];
		size_t n = encode(cp, e);
		uint32_t k1 = e[0], k2 = k1 << 8 | e[1], k3 = k2 << 8 | e[2];
		if (n == 1)
			BSET(full1, k1);
		else
			BSET(viable1, k1);
		if (n == 2)
			BSET(full2, k2);
		else if (n > 2)
			BSET(viable2, k2);
		if (n == 3)
			BSET(full3, k3);
		else if (n > 3)
			BSET(viable3, k3);
	}
}

static void free_oracle(void)
{
	free(viable3);
	free(full3);
}

/* A 4-byte sequence is complete iff it decodes to a code point whose
 * encoding it is. */
static bool full4(const uint8_t s[4])
{
	if ((s[0] & 0xF8) != 0xF0)
		return false;
	for (int i = 1; i < 4; i++)
		if ((s[i] & 0xC0) != 0x80)
			return false;
	uint32_t cp = (uint32_t)(s[0] & 7) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
		      (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
	if (cp > 0x10FFFF)
		return false;
	uint8_t e[4];
	return encode(cp, e) == 4 && memcmp(e, s, 4) == 0;
}

/* Returns the verdict of the oracle; *bad is the failing index. */
static enum verdict oracle(const uint8_t *p, size_t n, size_t *bad)
{
	uint8_t s[4];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		s[k++] = p[i];
		uint32_t key = 0;
		for (size_t j = 0; j < k; j++)
			key = key << 8 | s[j];
		bool full, viable;
		switch (k) {
		case 1: full = BGET(full1, key); viable = BGET(viable1, key); break;
		case 2: full = BGET(full2, key); viable = BGET(viable2, key); break;
		case 3: full = BGET(full3, key); viable = BGET(viable3, key); break;
		default: full = full4(s); viable = false; break;
		}
		if (full) {
			k = 0;
		} else if (!viable) {
			*bad = i;
			return INVALID;
		}
	}
	return k ? INCOMPLETE : VALID;
}

static void compare_with_oracle(const uint8_t *p, size_t n)
{
	size_t bad = 0;
	enum verdict v = oracle(p, n, &bad);
	struct ws_utf8 u;
	ws_utf8_init(&u);
	bool ok = ws_utf8_feed(&u, p, n);
	if (ok != (v != INVALID) || (ok && ws_utf8_complete(&u) != (v == VALID))) {
		char hex[64] = "";
		for (size_t i = 0; i < n && i < 16; i++)
			snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02X ", p[i]);
		cr_assert_fail("input %s: oracle verdict %d, validator ok=%d complete=%d", hex, v, ok,
			       ok ? ws_utf8_complete(&u) : -1);
	}
	if (v == INVALID) {
		struct ws_utf8 w;
		ws_utf8_init(&w);
		EXPECT(ws_utf8_feed(&w, p, bad));
		EXPECT_NOT(ws_utf8_feed(&w, p + bad, 1), "first bad byte at %zu", bad);
	}
}

Test(ws_utf8, oracle_agrees_with_samples, .init = build_oracle, .fini = free_oracle)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		size_t bad = 0;
		const struct sample *s = &SAMPLES[i];
		enum verdict v = oracle((const uint8_t *)s->bytes, s->n, &bad);
		EXPECT_EQ(v, s->v, "%s", s->name);
		if (v == INVALID)
			EXPECT_EQ(bad, s->bad, "%s", s->name);
	}
}

Test(ws_utf8, exhaustive_up_to_three_bytes, .init = build_oracle, .fini = free_oracle, .timeout = 100)
{
	uint8_t p[3];
	for (unsigned a = 0; a < 256; a++) {
		p[0] = (uint8_t)a;
		compare_with_oracle(p, 1);
		for (unsigned b = 0; b < 256; b++) {
			p[1] = (uint8_t)b;
			compare_with_oracle(p, 2);
			/* All third bytes for lead bytes; a representative set
			 * otherwise (ASCII first bytes reset the state). */
			if (a < 0x80 && b < 0x80 && b != 0x41)
				continue;
			for (unsigned c = 0; c < 256; c++) {
				p[2] = (uint8_t)c;
				compare_with_oracle(p, 3);
			}
		}
	}
}

Test(ws_utf8, random_four_byte_sequences, .init = build_oracle, .fini = free_oracle)
{
	/* Lead bytes E0..FF followed by bytes near the continuation range. */
	srand(1234);
	for (int i = 0; i < 400000; i++) {
		uint8_t p[4];
		p[0] = (uint8_t)(0xE0 + rand() % 32);
		for (int j = 1; j < 4; j++)
			p[j] = (uint8_t)(0x70 + rand() % 0x60);
		compare_with_oracle(p, 4);
	}
	/* Every 4-byte sequence with lead F0 or F4 and continuation-range bytes. */
	const uint8_t leads[] = { 0xF0, 0xF4 };
	for (size_t l = 0; l < 2; l++) {
		uint8_t p[4] = { leads[l] };
		for (unsigned b = 0x7F; b <= 0xC0; b++)
			for (unsigned c = 0x7F; c <= 0xC0; c += 0x41)
				for (unsigned d = 0x7F; d <= 0xC0; d++) {
					p[1] = (uint8_t)b;
					p[2] = (uint8_t)c;
					p[3] = (uint8_t)d;
					compare_with_oracle(p, 4);
				}
	}
}

Test(ws_utf8, random_mixed_strings_every_split, .init = build_oracle, .fini = free_oracle)
{
	srand(99);
	for (int iter = 0; iter < 3000; iter++) {
		uint8_t p[40];
		size_t n = 0;
		while (n + 4 <= sizeof p && rand() % 12) {
			int kind = rand() % 8;
			if (kind < 5) {
				/* a valid character of random length */
				uint32_t cp;
				do {
					static const uint32_t top[] = { 0x80, 0x800, 0x10000, 0x110000 };
					cp = (uint32_t)rand() % top[rand() % 4];
				} while (cp >= 0xD800 && cp <= 0xDFFF);
				n += encode(cp, p + n);
			} else if (kind < 7) {
				p[n++] = (uint8_t)('a' + rand() % 26);
			} else {
				p[n++] = (uint8_t)rand(); /* noise */
			}
		}
		size_t bad = 0;
		enum verdict v = oracle(p, n, &bad);
		compare_with_oracle(p, n);
		for (size_t cut = 0; cut <= n; cut++)
			check_split("random", p, n, v, bad, cut);
		check_bytewise("random", p, n, v, bad);
	}
}
