/* test_ws_deflate — RFC 7692 permessage-deflate: negotiation and codec.
 *
 * Negotiation: a table of offers with the exact response and agreed
 * parameters expected, every declined form (unknown, duplicate, invalid
 * or missing values), several offers and several header fields, syntax
 * errors anywhere in the header, and every combination of the four
 * parameters checked against the rules a client applies to the response.
 *
 * Codec: the RFC 7692 §7.2.3 examples byte for byte (each also fed split
 * at every boundary), round trips of random and text data of many sizes
 * at every window size with and without context takeover (the server's
 * output inflated by a mirror "client" state), streaming in pieces, the
 * 8-bit window checked with a strict 256-byte inflater, decompression
 * bombs (TOOBIG with out->cap bounded), corrupt and truncated data, the
 * memory each setting holds, and allocation failures at every step.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws/ws_deflate.h"

/* Criterion records every assertion when run with --full-stats (as CTest
 * does), which makes millions of passing checks in loops very slow. These
 * wrappers only reach the real assertion, with its full diagnostics, when
 * the condition fails. */
#define EXPECT(c, ...) do { if (!(c)) cr_assert(c, "" __VA_ARGS__); } while (0)
#define EXPECT_EQ(a, b, ...) do { if (!((a) == (b))) cr_assert_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LEQ(a, b, ...) do { if (!((a) <= (b))) cr_assert_leq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LT(a, b, ...) do { if (!((a) < (b))) cr_assert_lt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_GT(a, b, ...) do { if (!((a) > (b))) cr_assert_gt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_ARR_EQ(a, b, n, ...) \
	do { if (memcmp(a, b, n) != 0) cr_assert_arr_eq(a, b, n, "" __VA_ARGS__); } while (0)
#define EXPECT_STR_EQ(a, b, ...) \
	do { if (strcmp(a, b) != 0) cr_assert_str_eq(a, b, "" __VA_ARGS__); } while (0)

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random bytes (incompressible) or word salad (compressible, with repeats
 * at every distance). */
static void fill(uint8_t *p, size_t n, bool text)
{
	static const char *const words[] = { "alpha ", "bravo ", "charlie ", "{\"id\":", "42,", "\"text\":",
					     "delta ", "echo\n", "foxtrot ", "}", "golf ", "hotel " };
	if (!text) {
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)rnd();
		return;
	}
	size_t i = 0;
	while (i < n) {
		const char *w = words[rnd() % 12];
		for (; *w && i < n; w++)
			p[i++] = (uint8_t)*w;
	}
}

static struct ws_deflate_config cfg_default(void)
{
	struct ws_deflate_config c;
	ws_deflate_config_default(&c);
	return c;
}

static struct ws_deflate_params params(unsigned sbits, unsigned cbits, bool snct, bool cnct)
{
	struct ws_deflate_params p = { snct, cnct, sbits, cbits };
	return p;
}

/* The peer's view of the same agreement: its inflater reads what our
 * deflater writes, so it gets our server_* parameters as its client_*. */
static struct ws_deflate_params mirror(struct ws_deflate_params p)
{
	return params(p.client_max_window_bits, p.server_max_window_bits, p.client_no_context_takeover,
		      p.server_no_context_takeover);
}

static void init_ok(struct ws_deflate *d, struct ws_deflate_params p)
{
	struct ws_deflate_config c = cfg_default();
	cr_assert_eq(ws_deflate_init(d, &c, &p), 0);
}

/* Inflates a whole message with a generous limit and compares. */
static void expect_inflate(struct ws_deflate *d, const uint8_t *in, size_t n, const char *want)
{
	struct buf out = { 0 };
	int rc = ws_deflate_inflate(d, in, n, 1 << 20, &out);
	cr_assert_eq(rc, 0, "inflate: %s", ws_deflate_strerror(rc));
	cr_assert_eq(out.len, strlen(want));
	if (out.len)
		cr_assert_arr_eq(out.data, want, out.len);
	buf_free(&out);
}

/* ---- RFC 7692 §7.2.3 examples -------------------------------------------- */

static const uint8_t HELLO[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };          /* §7.2.3.1 */
static const uint8_t HELLO_AGAIN[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };               /* §7.2.3.2 */
static const uint8_t HELLO_STORED[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65,
					0x6c, 0x6c, 0x6f, 0x00 };                    /* §7.2.3.3 */
static const uint8_t HELLO_BFINAL[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00 }; /* §7.2.3.4 */
static const uint8_t HELLO_TWO_BLOCKS[] = { 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
					    0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00 };       /* §7.2.3.5 */

Test(rfc7692, one_compressed_block)
{
	/* The frame of §7.2.3.1 is c1 07 + these 7 bytes; the fragmented
	 * form (41 03 f2 48 cd, 80 04 c9 c9 07 00) is the same payload fed
	 * in two pieces, covered by every_example_split below. */
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
	ws_deflate_free(&d);
}

Test(rfc7692, compressor_output_matches_examples)
{
	/* Our deflater writes the RFC's bytes: "Hello", then "Hello" again
	 * as a back-reference into the shared window (§7.2.3.2). */
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	struct buf out = { 0 };
	cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"Hello", 5, &out), 0);
	cr_assert_eq(out.len, sizeof HELLO);
	cr_assert_arr_eq(out.data, HELLO, sizeof HELLO);
	out.len = 0;
	cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"Hello", 5, &out), 0);
	cr_assert_eq(out.len, sizeof HELLO_AGAIN);
	cr_assert_arr_eq(out.data, HELLO_AGAIN, sizeof HELLO_AGAIN);
	buf_free(&out);
	ws_deflate_free(&d);

	/* Without context takeover the second message is standalone. */
	init_ok(&d, params(15, 15, true, false));
	for (int i = 0; i < 2; i++) {
		struct buf o = { 0 };
		cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"Hello", 5, &o), 0);
		cr_assert_eq(o.len, sizeof HELLO);
		cr_assert_arr_eq(o.data, HELLO, sizeof HELLO);
		buf_free(&o);
	}
	ws_deflate_free(&d);
}

Test(rfc7692, sharing_the_window)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
	expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
	ws_deflate_free(&d);

	/* With client_no_context_takeover the window is gone: the second
	 * message points before the start of the data. */
	init_ok(&d, params(15, 15, false, true));
	expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
	struct buf out = { 0 };
	cr_assert_eq(ws_deflate_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, 1 << 20, &out), WS_DEFLATE_E_DATA);
	buf_free(&out);
	ws_deflate_free(&d);
}

Test(rfc7692, no_compression_block)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO_STORED, sizeof HELLO_STORED, "Hello");
	/* The window now holds "Hello": a back-reference still works. */
	expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
	ws_deflate_free(&d);
}

Test(rfc7692, bfinal_block)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO_BFINAL, sizeof HELLO_BFINAL, "Hello");
	/* The LZ77 window carries on past a final block (§7.2.1). */
	expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
	expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
	/* A sender that leaves out the padding octet after the final block
	 * has still sent a complete message. */
	expect_inflate(&d, HELLO_BFINAL, sizeof HELLO_BFINAL - 1, "Hello");
	expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
	ws_deflate_free(&d);

	/* A payload ending in the header bits of a final stored block: the
	 * tail completes it and ends the stream; the window carries on. */
	init_ok(&d, params(15, 15, false, false));
	uint8_t final_stored[sizeof HELLO_STORED];
	memcpy(final_stored, HELLO_STORED, sizeof HELLO_STORED);
	final_stored[sizeof HELLO_STORED - 1] = 0x01;  /* BFINAL=1, BTYPE=00, padding */
	expect_inflate(&d, final_stored, sizeof final_stored, "Hello");
	expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
	ws_deflate_free(&d);

	/* Blocks after a final block within one message (the final block
	 * without its padding octet, which would start a stored block),
	 * referring back across it. */
	init_ok(&d, params(15, 15, false, false));
	uint8_t two[sizeof HELLO_BFINAL - 1 + sizeof HELLO_AGAIN];
	memcpy(two, HELLO_BFINAL, sizeof HELLO_BFINAL - 1);
	memcpy(two + sizeof HELLO_BFINAL - 1, HELLO_AGAIN, sizeof HELLO_AGAIN);
	expect_inflate(&d, two, sizeof two, "HelloHello");
	ws_deflate_free(&d);
}

Test(rfc7692, two_blocks_in_one_message)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO_TWO_BLOCKS, sizeof HELLO_TWO_BLOCKS, "Hello");
	ws_deflate_free(&d);
}

Test(rfc7692, empty_message)
{
	/* §7.2.3.6: the empty message compresses to one 0x00 octet, with or
	 * without a context, and even right after another message (where a
	 * zlib sync flush would produce nothing). */
	for (int nct = 0; nct < 2; nct++) {
		struct ws_deflate d;
		init_ok(&d, params(15, 15, nct, nct));
		struct buf out = { 0 };
		cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"", 0, &out), 0);
		cr_assert_eq(out.len, 1);
		cr_assert_eq(out.data[0], 0x00);
		out.len = 0;
		cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"Hello", 5, &out), 0);
		out.len = 0;
		cr_assert_eq(ws_deflate_compress(&d, NULL, 0, &out), 0);
		cr_assert_eq(out.len, 1);
		cr_assert_eq(out.data[0], 0x00);
		buf_free(&out);
		expect_inflate(&d, (const uint8_t *)"\0", 1, "");
		/* An empty payload with RSV1 is the empty message too. */
		expect_inflate(&d, NULL, 0, "");
		expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
		expect_inflate(&d, NULL, 0, "");
		if (!nct)
			expect_inflate(&d, HELLO_AGAIN, sizeof HELLO_AGAIN, "Hello");
		ws_deflate_free(&d);
	}
	struct ws_deflate_config c = cfg_default();
	struct buf out = { 0 };
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, NULL, 0, &out), 0);
	cr_assert_eq(out.len, 1);
	cr_assert_eq(out.data[0], 0x00);
	buf_free(&out);
}

/* Every example, in a context-takeover sequence, fed whole, in two pieces
 * at every boundary, and byte by byte: the same text every time. */
Test(rfc7692, every_example_split)
{
	struct {
		const uint8_t *p;
		size_t n;
	} seq[] = {
		{ HELLO, sizeof HELLO },
		{ HELLO_AGAIN, sizeof HELLO_AGAIN },
		{ HELLO_STORED, sizeof HELLO_STORED },
		{ HELLO_BFINAL, sizeof HELLO_BFINAL },
		{ HELLO_AGAIN, sizeof HELLO_AGAIN },
		{ HELLO_TWO_BLOCKS, sizeof HELLO_TWO_BLOCKS },
		{ HELLO_BFINAL, sizeof HELLO_BFINAL - 1 },
		{ HELLO_AGAIN, sizeof HELLO_AGAIN },
	};
	size_t nseq = sizeof seq / sizeof seq[0];
	for (size_t cut = 0; cut <= 14; cut++) {
		/* cut 14: byte by byte; otherwise split at min(cut, n). */
		struct ws_deflate d;
		init_ok(&d, params(15, 15, false, false));
		for (size_t m = 0; m < nseq; m++) {
			struct buf out = { 0 };
			size_t n = seq[m].n;
			if (cut == 14) {
				for (size_t i = 0; i < n; i++)
					EXPECT_EQ(ws_deflate_inflate_feed(&d, seq[m].p + i, 1, 100, &out), 0);
			} else {
				size_t k = cut < n ? cut : n;
				EXPECT_EQ(ws_deflate_inflate_feed(&d, seq[m].p, k, 100, &out), 0);
				EXPECT_EQ(ws_deflate_inflate_feed(&d, seq[m].p + k, n - k, 100, &out), 0);
			}
			EXPECT_EQ(ws_deflate_inflate_end(&d, 100, &out), 0, "message %zu cut %zu", m, cut);
			EXPECT_EQ(out.len, 5, "message %zu cut %zu", m, cut);
			EXPECT_ARR_EQ(out.data, "Hello", 5);
			buf_free(&out);
		}
		ws_deflate_free(&d);
	}
}

/* ---- negotiation ----------------------------------------------------------- */

struct neg_case {
	const char *offer;
	int rc;
	const char *response;         /* when rc == 1 */
	unsigned sbits, cbits;        /* agreed, when rc == 1 */
	bool snct, cnct;
};

static int negotiate1(const struct ws_deflate_config *c, const char *offer, struct ws_deflate_params *p,
		      char *resp, const char **why)
{
	const char *values[1] = { offer };
	size_t lens[1] = { strlen(offer) };
	return ws_deflate_negotiate(c, values, lens, 1, p, resp, WS_DEFLATE_RESPONSE_MAX, why);
}

static void run_cases(const struct ws_deflate_config *c, const struct neg_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct neg_case *t = &cases[i];
		struct ws_deflate_params p = { 0 };
		char resp[WS_DEFLATE_RESPONSE_MAX];
		const char *why = "unset";
		int rc = negotiate1(c, t->offer, &p, resp, &why);
		cr_assert_eq(rc, t->rc, "offer [%s]: rc %d, want %d (%s)", t->offer, rc, t->rc, why ? why : "");
		if (rc != 1) {
			cr_assert(why != NULL && why[0] != '\0', "offer [%s]: no reason", t->offer);
			continue;
		}
		cr_assert_null(why);
		cr_assert_str_eq(resp, t->response, "offer [%s]", t->offer);
		cr_assert_eq(p.server_max_window_bits, t->sbits, "offer [%s]", t->offer);
		cr_assert_eq(p.client_max_window_bits, t->cbits, "offer [%s]", t->offer);
		cr_assert_eq(p.server_no_context_takeover, t->snct, "offer [%s]", t->offer);
		cr_assert_eq(p.client_no_context_takeover, t->cnct, "offer [%s]", t->offer);
	}
}

#define PMD "permessage-deflate"

Test(negotiate, each_parameter_default_config)
{
	static const struct neg_case cases[] = {
		{ PMD, 1, PMD, 15, 15, false, false },
		{ PMD "; server_no_context_takeover", 1, PMD "; server_no_context_takeover", 15, 15, true, false },
		{ PMD "; client_no_context_takeover", 1, PMD "; client_no_context_takeover", 15, 15, false, true },
		{ PMD "; server_max_window_bits=10", 1, PMD "; server_max_window_bits=10", 10, 15, false, false },
		{ PMD "; server_max_window_bits=15", 1, PMD "; server_max_window_bits=15", 15, 15, false, false },
		{ PMD "; server_max_window_bits=8", 1, PMD "; server_max_window_bits=8", 8, 15, false, false },
		{ PMD "; server_max_window_bits=9", 1, PMD "; server_max_window_bits=9", 9, 15, false, false },
		/* Without a value: the client can limit itself, we ask nothing. */
		{ PMD "; client_max_window_bits", 1, PMD, 15, 15, false, false },
		{ PMD "; client_max_window_bits=12", 1, PMD "; client_max_window_bits=12", 15, 12, false, false },
		{ PMD "; client_max_window_bits=8", 1, PMD "; client_max_window_bits=8", 15, 8, false, false },
		{ PMD "; client_max_window_bits=15", 1, PMD "; client_max_window_bits=15", 15, 15, false, false },
		/* Quoted values (RFC 6455 §9.1), whitespace around separators. */
		{ PMD "; client_max_window_bits=\"10\"", 1, PMD "; client_max_window_bits=10", 15, 10, false, false },
		{ PMD "; server_max_window_bits=\"9\"", 1, PMD "; server_max_window_bits=9", 9, 15, false, false },
		{ PMD "; server_max_window_bits=\"1\\1\"", 1, PMD "; server_max_window_bits=11", 11, 15, false, false },
		{ "  " PMD " ;\tclient_max_window_bits = 11 ;server_no_context_takeover  ", 1,
		  PMD "; server_no_context_takeover; client_max_window_bits=11", 15, 11, true, false },
		/* All four, in the response's canonical order. */
		{ PMD "; client_max_window_bits=11; server_max_window_bits=9; client_no_context_takeover; "
		      "server_no_context_takeover", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
		      "client_max_window_bits=11", 9, 11, true, true },
	};
	struct ws_deflate_config c = cfg_default();
	run_cases(&c, cases, sizeof cases / sizeof cases[0]);
}

Test(negotiate, server_policy)
{
	struct ws_deflate_config c = cfg_default();
	c.server_max_window_bits = 12;
	c.client_max_window_bits = 10;
	c.server_no_context_takeover = true;
	c.client_no_context_takeover = true;
	static const struct neg_case cases[] = {
		/* Forced no_context_takeover both ways, our window said even
		 * when not offered, client window only when offered. */
		{ PMD, 1, PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
		  12, 15, true, true },
		{ PMD "; client_max_window_bits", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; "
		      "client_max_window_bits=10", 12, 10, true, true },
		{ PMD "; client_max_window_bits=9", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; "
		      "client_max_window_bits=9", 12, 9, true, true },
		{ PMD "; client_max_window_bits=14", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; "
		      "client_max_window_bits=10", 12, 10, true, true },
		{ PMD "; server_max_window_bits=10", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
		  10, 15, true, true },
		{ PMD "; server_max_window_bits=14", 1,
		  PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
		  12, 15, true, true },
	};
	run_cases(&c, cases, sizeof cases / sizeof cases[0]);

	/* Window bits 8 in the configuration. */
	c = cfg_default();
	c.server_max_window_bits = 8;
	c.client_max_window_bits = 8;
	static const struct neg_case eight[] = {
		{ PMD, 1, PMD "; server_max_window_bits=8", 8, 15, false, false },
		{ PMD "; client_max_window_bits", 1, PMD "; server_max_window_bits=8; client_max_window_bits=8", 8, 8,
		  false, false },
		{ PMD "; server_max_window_bits=15; client_max_window_bits=15", 1,
		  PMD "; server_max_window_bits=8; client_max_window_bits=8", 8, 8, false, false },
	};
	run_cases(&c, eight, sizeof eight / sizeof eight[0]);
}

Test(negotiate, declined_offers)
{
	static const char *const bad[] = {
		PMD "; foo",
		PMD "; foo=1",
		PMD "; x-unknown=\"a\"",
		PMD "; Server_No_Context_Takeover",   /* names compare exactly */
		PMD "; server_no_context_takeover; server_no_context_takeover",
		PMD "; client_no_context_takeover; client_no_context_takeover",
		PMD "; server_max_window_bits=10; server_max_window_bits=10",
		PMD "; client_max_window_bits; client_max_window_bits",
		PMD "; client_max_window_bits=10; client_max_window_bits",
		PMD "; server_no_context_takeover=1",
		PMD "; server_no_context_takeover=\"true\"",
		PMD "; client_no_context_takeover=0",
		PMD "; server_max_window_bits",
		PMD "; server_max_window_bits=7",
		PMD "; server_max_window_bits=16",
		PMD "; server_max_window_bits=0",
		PMD "; server_max_window_bits=08",
		PMD "; server_max_window_bits=010",
		PMD "; server_max_window_bits=+9",
		PMD "; server_max_window_bits=9.0",
		PMD "; server_max_window_bits=1a",
		PMD "; server_max_window_bits=100000000000000000000009",
		PMD "; server_max_window_bits=\"08\"",
		PMD "; client_max_window_bits=7",
		PMD "; client_max_window_bits=16",
		PMD "; client_max_window_bits=0",
		PMD "; client_max_window_bits=09",
		PMD "; client_max_window_bits=x",
		PMD "; client_max_window_bits=\"16\"",
		/* a valid parameter does not save an offer with a bad one */
		PMD "; server_no_context_takeover; foo; client_max_window_bits",
	};
	struct ws_deflate_config c = cfg_default();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ws_deflate_params p;
		char resp[WS_DEFLATE_RESPONSE_MAX];
		const char *why = NULL;
		int rc = negotiate1(&c, bad[i], &p, resp, &why);
		cr_assert_eq(rc, 0, "[%s] rc %d", bad[i], rc);
		cr_assert_not_null(why);
		cr_assert(strstr(why, "permessage-deflate offer") != NULL, "[%s]: %s", bad[i], why);
		cr_assert_str_eq(resp, "", "[%s]", bad[i]);
	}
}

Test(negotiate, several_offers_and_fields)
{
	static const struct neg_case cases[] = {
		/* The first acceptable offer wins; invalid ones are skipped. */
		{ PMD "; foo, " PMD "; client_max_window_bits", 1, PMD, 15, 15, false, false },
		{ PMD "; server_max_window_bits=16, " PMD "; server_max_window_bits=10, " PMD, 1,
		  PMD "; server_max_window_bits=10", 10, 15, false, false },
		{ PMD "; server_max_window_bits=10; client_max_window_bits, " PMD, 1,
		  PMD "; server_max_window_bits=10", 10, 15, false, false },
		{ PMD "; server_no_context_takeover; server_no_context_takeover, " PMD "; client_no_context_takeover",
		  1, PMD "; client_no_context_takeover", 15, 15, false, true },
		/* Other extensions are ignored, whatever their parameters. */
		{ "x-webkit-deflate-frame, " PMD, 1, PMD, 15, 15, false, false },
		{ "foo; bar=1; baz=\"q\"; server_max_window_bits=99, " PMD "; server_no_context_takeover", 1,
		  PMD "; server_no_context_takeover", 15, 15, true, false },
		{ "permessage-deflate-x, " PMD "x, Permessage-Deflate", 0, NULL, 0, 0, false, false },
		/* Empty list elements are allowed (RFC 7230 §7). */
		{ ", ,\t, " PMD " ,,", 1, PMD, 15, 15, false, false },
		{ "", 0, NULL, 0, 0, false, false },
		{ "   ", 0, NULL, 0, 0, false, false },
		{ ",", 0, NULL, 0, 0, false, false },
		{ PMD "; foo, " PMD "; bar", 0, NULL, 0, 0, false, false },
	};
	struct ws_deflate_config c = cfg_default();
	run_cases(&c, cases, sizeof cases / sizeof cases[0]);

	/* Several header fields form one list. */
	const char *values[] = { "foo; a=1", PMD "; client_max_window_bits=20", "",
				 PMD "; client_max_window_bits=13" };
	size_t lens[4];
	for (int i = 0; i < 4; i++)
		lens[i] = strlen(values[i]);
	struct ws_deflate_params p;
	char resp[WS_DEFLATE_RESPONSE_MAX];
	cr_assert_eq(ws_deflate_negotiate(&c, values, lens, 4, &p, resp, sizeof resp, NULL), 1);
	cr_assert_str_eq(resp, PMD "; client_max_window_bits=13");
	cr_assert_eq(p.client_max_window_bits, 13);
	/* Lengths are honoured: the value need not be NUL-terminated. */
	const char *tail_garbage = PMD "; client_max_window_bits=9 GARBAGE";
	size_t n = strlen(PMD "; client_max_window_bits=9");
	cr_assert_eq(ws_deflate_negotiate(&c, &tail_garbage, &n, 1, &p, resp, sizeof resp, NULL), 1);
	cr_assert_eq(p.client_max_window_bits, 9);
	cr_assert_eq(ws_deflate_negotiate(&c, NULL, NULL, 0, &p, resp, sizeof resp, NULL), 0);
}

Test(negotiate, syntax_errors)
{
	static const char *const bad[] = {
		PMD ";",
		PMD "; ",
		PMD ";;",
		PMD "; =10",
		PMD "; a=",
		PMD "; a= ;b",
		PMD "; a=\"unterminated",
		PMD "; a=\"x\\",
		PMD "; a=\"x y\"",
		PMD "; a=\"\"",
		PMD "; a=\"a,b\"",
		PMD "; a=b=c",
		PMD "; a b",
		PMD " x",
		PMD "/1",
		"; " PMD,
		"=" PMD,
		"\"" PMD "\"",
		PMD "; server_max_window_bits=\"1 0\"",
		PMD "\x7f",
		"foo;, " PMD,
		/* after an acceptable offer, the rest must still parse */
		PMD ", foo;;",
		PMD ", foo; a=\"b",
	};
	struct ws_deflate_config c = cfg_default();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ws_deflate_params p;
		char resp[WS_DEFLATE_RESPONSE_MAX];
		const char *why = NULL;
		int rc = negotiate1(&c, bad[i], &p, resp, &why);
		cr_assert_eq(rc, WS_DEFLATE_E_SYNTAX, "[%s] rc %d", bad[i], rc);
		cr_assert_not_null(why);
	}
	/* NUL and control bytes inside the value. */
	const char nul[] = PMD "\0; a";
	const char *v = nul;
	size_t n = sizeof nul - 1;
	struct ws_deflate_params p;
	char resp[WS_DEFLATE_RESPONSE_MAX];
	cr_assert_eq(ws_deflate_negotiate(&c, &v, &n, 1, &p, resp, sizeof resp, NULL), WS_DEFLATE_E_SYNTAX);
	const char *ctl = PMD "; a=\"\x01\"";
	n = strlen(ctl);
	cr_assert_eq(ws_deflate_negotiate(&c, &ctl, &n, 1, &p, resp, sizeof resp, NULL), WS_DEFLATE_E_SYNTAX);
}

Test(negotiate, disabled_and_small_buffer)
{
	struct ws_deflate_config c = cfg_default();
	c.enabled = false;
	struct ws_deflate_params p;
	char resp[WS_DEFLATE_RESPONSE_MAX];
	const char *why = NULL;
	cr_assert_eq(negotiate1(&c, PMD, &p, resp, &why), 0);
	cr_assert_str_eq(why, "compression is disabled");
	/* Not even parsed when disabled. */
	cr_assert_eq(negotiate1(&c, PMD ";;", &p, resp, NULL), 0);

	c.enabled = true;
	const char *v = PMD;
	size_t n = strlen(v);
	char small[16];
	cr_assert_eq(ws_deflate_negotiate(&c, &v, &n, 1, &p, small, sizeof small, NULL), WS_DEFLATE_E_INVAL);
}

/* Every combination of the four parameters, each absent, bare, or with
 * valid and invalid values, in two orders and under two server policies.
 * Checked: declined exactly when a parameter is invalid; otherwise the
 * response passes every check RFC 7692 §7.1 makes a client apply, says
 * exactly what the agreed parameters are, and honours the policy. */
enum form { ABSENT, BARE, VAL };
struct pform {
	enum form f;
	const char *value;
	bool valid;
	unsigned bits;
};

static const struct pform NCT_FORMS[] = {
	{ ABSENT, NULL, true, 0 }, { BARE, NULL, true, 0 }, { VAL, "1", false, 0 },
};
static const struct pform SBITS_FORMS[] = {
	{ ABSENT, NULL, true, 0 }, { BARE, NULL, false, 0 }, { VAL, "8", true, 8 },
	{ VAL, "12", true, 12 }, { VAL, "15", true, 15 }, { VAL, "16", false, 0 },
	{ VAL, "\"10\"", true, 10 },
};
static const struct pform CBITS_FORMS[] = {
	{ ABSENT, NULL, true, 0 }, { BARE, NULL, true, 0 }, { VAL, "8", true, 8 },
	{ VAL, "11", true, 11 }, { VAL, "15", true, 15 }, { VAL, "07", false, 0 },
	{ VAL, "\"9\"", true, 9 },
};

/* Parses our own response as a client would. Returns false if malformed. */
static bool parse_response(const char *r, bool *snct, bool *cnct, int *sbits, int *cbits)
{
	*snct = *cnct = false;
	*sbits = *cbits = -1;
	if (strncmp(r, PMD, strlen(PMD)) != 0)
		return false;
	r += strlen(PMD);
	while (*r) {
		if (strncmp(r, "; ", 2) != 0)
			return false;
		r += 2;
		size_t n = strcspn(r, ";");
		char item[64];
		if (n >= sizeof item)
			return false;
		memcpy(item, r, n);
		item[n] = '\0';
		r += n;
		int v;
		char extra;
		if (strcmp(item, "server_no_context_takeover") == 0 && !*snct)
			*snct = true;
		else if (strcmp(item, "client_no_context_takeover") == 0 && !*cnct)
			*cnct = true;
		else if (sscanf(item, "server_max_window_bits=%d%c", &v, &extra) == 1 && *sbits < 0 && v >= 8 &&
			 v <= 15)
			*sbits = v;
		else if (sscanf(item, "client_max_window_bits=%d%c", &v, &extra) == 1 && *cbits < 0 && v >= 8 &&
			 v <= 15)
			*cbits = v;
		else
			return false;
	}
	return true;
}

Test(negotiate, every_combination)
{
	struct ws_deflate_config policies[2];
	policies[0] = cfg_default();
	policies[1] = cfg_default();
	policies[1].server_max_window_bits = 10;
	policies[1].client_max_window_bits = 9;
	policies[1].server_no_context_takeover = true;
	policies[1].client_no_context_takeover = true;
	const size_t nn = sizeof NCT_FORMS / sizeof NCT_FORMS[0];
	const size_t ns = sizeof SBITS_FORMS / sizeof SBITS_FORMS[0];
	const size_t nc = sizeof CBITS_FORMS / sizeof CBITS_FORMS[0];
	static const char *const names[4] = { "server_no_context_takeover", "client_no_context_takeover",
					      "server_max_window_bits", "client_max_window_bits" };
	unsigned checked = 0;
	for (int pol = 0; pol < 2; pol++)
	for (size_t a = 0; a < nn; a++)
	for (size_t b = 0; b < nn; b++)
	for (size_t s = 0; s < ns; s++)
	for (size_t cb = 0; cb < nc; cb++)
	for (int order = 0; order < 2; order++) {
		const struct ws_deflate_config *c = &policies[pol];
		const struct pform *f[4] = { &NCT_FORMS[a], &NCT_FORMS[b], &SBITS_FORMS[s], &CBITS_FORMS[cb] };
		char offer[256];
		size_t len = (size_t)snprintf(offer, sizeof offer, "%s", PMD);
		for (int k = 0; k < 4; k++) {
			int i = order ? 3 - k : k;
			if (f[i]->f == ABSENT)
				continue;
			len += (size_t)snprintf(offer + len, sizeof offer - len, "; %s%s%s", names[i],
						f[i]->f == VAL ? "=" : "", f[i]->f == VAL ? f[i]->value : "");
		}
		bool valid = f[0]->valid && f[1]->valid && f[2]->valid && f[3]->valid;
		struct ws_deflate_params p;
		char resp[WS_DEFLATE_RESPONSE_MAX];
		int rc = negotiate1(c, offer, &p, resp, NULL);
		checked++;
		if (!valid) {
			EXPECT_EQ(rc, 0, "[%s]", offer);
			continue;
		}
		EXPECT_EQ(rc, 1, "[%s]", offer);
		bool snct, cnct;
		int sbits, cbits;
		EXPECT(parse_response(resp, &snct, &cnct, &sbits, &cbits), "[%s] -> [%s]", offer, resp);
		/* Client rules (§7.1.1.1, §7.1.2.1, §7.1.2.2). */
		if (f[2]->f != ABSENT)
			EXPECT(sbits >= 8 && (unsigned)sbits <= f[2]->bits, "[%s] -> [%s]", offer, resp);
		if (f[3]->f == ABSENT)
			EXPECT_EQ(cbits, -1, "[%s] -> [%s]", offer, resp);
		else if (f[3]->f == VAL && cbits >= 0)
			EXPECT_LEQ((unsigned)cbits, f[3]->bits, "[%s] -> [%s]", offer, resp);
		/* What was offered as no_context_takeover is agreed. */
		if (f[0]->f == BARE)
			EXPECT(snct, "[%s] -> [%s]", offer, resp);
		if (f[1]->f == BARE)
			EXPECT(cnct, "[%s] -> [%s]", offer, resp);
		/* The agreed parameters are what the response says. */
		EXPECT_EQ(p.server_no_context_takeover, snct, "[%s]", offer);
		EXPECT_EQ(p.client_no_context_takeover, cnct, "[%s]", offer);
		EXPECT_EQ(p.server_max_window_bits, sbits < 0 ? 15u : (unsigned)sbits, "[%s]", offer);
		unsigned client_limit = cbits >= 0 ? (unsigned)cbits : f[3]->bits ? f[3]->bits : 15;
		EXPECT_EQ(p.client_max_window_bits, client_limit, "[%s] -> [%s]", offer, resp);
		/* The server's policy holds. */
		EXPECT_LEQ(p.server_max_window_bits, c->server_max_window_bits, "[%s]", offer);
		if (f[3]->f != ABSENT)
			EXPECT_LEQ(p.client_max_window_bits, c->client_max_window_bits, "[%s]", offer);
		if (c->server_no_context_takeover)
			EXPECT(snct, "[%s]", offer);
		if (c->client_no_context_takeover)
			EXPECT(cnct, "[%s]", offer);
		EXPECT_LT(strlen(resp), (size_t)WS_DEFLATE_RESPONSE_MAX);
	}
	cr_assert_eq(checked, 2u * 3 * 3 * 7 * 7 * 2);
}

/* ---- round trips ---------------------------------------------------------- */

/* Sends `count` messages of the given sizes from a server state with
 * params p to a mirror client state, optionally in random pieces, and
 * checks every byte. */
static void round_trip(struct ws_deflate_params p, const size_t *sizes, size_t count, bool text, bool pieces)
{
	struct ws_deflate srv, cli;
	init_ok(&srv, p);
	init_ok(&cli, mirror(p));
	struct buf wire = { 0 }, back = { 0 };
	for (size_t m = 0; m < count; m++) {
		size_t n = sizes[m];
		uint8_t *msg = malloc(n ? n : 1);
		EXPECT(msg);
		fill(msg, n, text);
		wire.len = back.len = 0;
		if (pieces) {
			size_t off = 0;
			while (off < n) {
				size_t k = 1 + rnd() % (n / 3 + 1);
				if (k > n - off)
					k = n - off;
				EXPECT_EQ(ws_deflate_compress_feed(&srv, msg + off, k, false, &wire), 0);
				off += k;
			}
			EXPECT_EQ(ws_deflate_compress_feed(&srv, NULL, 0, true, &wire), 0);
			off = 0;
			while (off < wire.len) {
				size_t k = 1 + rnd() % (wire.len / 3 + 1);
				if (k > wire.len - off)
					k = wire.len - off;
				EXPECT_EQ(ws_deflate_inflate_feed(&cli, wire.data + off, k, n, &back), 0);
				off += k;
			}
			EXPECT_EQ(ws_deflate_inflate_end(&cli, n, &back), 0);
		} else {
			EXPECT_EQ(ws_deflate_compress(&srv, msg, n, &wire), 0);
			/* The exact size as the limit: allowed. */
			EXPECT_EQ(ws_deflate_inflate(&cli, wire.data, wire.len, n, &back), 0, "size %zu", n);
		}
		EXPECT_EQ(back.len, n, "size %zu", n);
		if (n)
			EXPECT_ARR_EQ(back.data, msg, n, "size %zu", n);
		/* Without context takeover nothing is held between messages. */
		if (p.server_no_context_takeover)
			EXPECT(srv.tx == NULL);
		if (p.server_no_context_takeover)
			EXPECT(cli.rx == NULL);
		free(msg);
	}
	buf_free(&wire);
	buf_free(&back);
	ws_deflate_free(&srv);
	ws_deflate_free(&cli);
}

Test(roundtrip, many_sizes_every_window, .timeout = 120)
{
	size_t sizes[64];
	size_t ns = 0;
	for (size_t n = 0; n <= 20; n++)
		sizes[ns++] = n;
	for (size_t sh = 5; sh <= 17; sh++) {
		sizes[ns++] = ((size_t)1 << sh) - 1;
		sizes[ns++] = ((size_t)1 << sh) + 1;
	}
	sizes[ns++] = 250000;
	rng_state = 0x9E3779B97F4A7C15ull;
	unsigned runs = 0;
	for (unsigned bits = 8; bits <= 15; bits++)
		for (int nct = 0; nct < 4; nct++)
			for (int text = 0; text < 2; text++) {
				struct ws_deflate_params p = params(bits, bits == 8 ? 15 : 23 - bits, nct & 1, nct & 2);
				round_trip(p, sizes, ns, text, false);
				runs++;
			}
	cr_assert_eq(runs, 64);
}

Test(roundtrip, streaming_pieces)
{
	size_t sizes[] = { 1, 10, 100, 1000, 5000, 20000, 70000, 3, 0, 65536 };
	rng_state = 12345;
	for (unsigned bits = 8; bits <= 15; bits++)
		for (int nct = 0; nct < 2; nct++)
			for (int text = 0; text < 2; text++)
				round_trip(params(bits, bits, nct, nct), sizes, sizeof sizes / sizeof sizes[0], text, true);
}

Test(roundtrip, every_level_and_mem_level)
{
	rng_state = 777;
	uint8_t msg[20000];
	fill(msg, sizeof msg, true);
	for (int level = 0; level <= 9; level++)
		for (unsigned ml = 1; ml <= 9; ml++) {
			struct ws_deflate_config c = cfg_default();
			c.level = level;
			c.mem_level = ml;
			struct ws_deflate_params p = params(12, 15, false, false);
			struct ws_deflate srv, cli;
			cr_assert_eq(ws_deflate_init(&srv, &c, &p), 0);
			init_ok(&cli, mirror(p));
			for (int m = 0; m < 3; m++) {
				struct buf wire = { 0 }, back = { 0 };
				EXPECT_EQ(ws_deflate_compress(&srv, msg, sizeof msg, &wire), 0);
				EXPECT_EQ(ws_deflate_inflate(&cli, wire.data, wire.len, sizeof msg, &back), 0);
				EXPECT_EQ(back.len, sizeof msg);
				EXPECT_ARR_EQ(back.data, msg, sizeof msg);
				if (level > 0)
					EXPECT_LT(wire.len, sizeof msg / 2, "level %d memLevel %u", level, ml);
				buf_free(&wire);
				buf_free(&back);
			}
			ws_deflate_free(&srv);
			ws_deflate_free(&cli);
		}
}

Test(roundtrip, context_takeover_pays)
{
	rng_state = 4242;
	uint8_t msg[3000];
	fill(msg, sizeof msg, false);  /* random: only the window can help */
	for (int nct = 0; nct < 2; nct++) {
		struct ws_deflate d;
		init_ok(&d, params(15, 15, nct, false));
		struct buf a = { 0 }, b = { 0 };
		cr_assert_eq(ws_deflate_compress(&d, msg, sizeof msg, &a), 0);
		cr_assert_eq(ws_deflate_compress(&d, msg, sizeof msg, &b), 0);
		if (nct)
			cr_assert_eq(b.len, a.len);
		else
			cr_assert_lt(b.len, 40, "second copy is one back-reference, got %zu bytes", b.len);
		buf_free(&a);
		buf_free(&b);
		ws_deflate_free(&d);
	}
}

Test(roundtrip, oneshot_equals_connection_output)
{
	rng_state = 99;
	uint8_t msg[9000];
	fill(msg, sizeof msg, true);
	struct ws_deflate_config c = cfg_default();
	for (unsigned bits = 8; bits <= 15; bits++) {
		struct ws_deflate d;
		init_ok(&d, params(bits, 15, true, false));
		cr_assert_eq(ws_deflate_shared_bits(&d), bits);
		for (size_t n = 0; n <= sizeof msg; n += 1500) {
			struct buf a = { 0 }, b = { 0 };
			cr_assert_eq(ws_deflate_compress(&d, msg, n, &a), 0);
			cr_assert_eq(ws_deflate_compress_oneshot(&c, bits, msg, n, &b), 0);
			cr_assert_eq(a.len, b.len, "bits %u n %zu", bits, n);
			cr_assert_arr_eq(a.data, b.data, a.len);
			buf_free(&a);
			buf_free(&b);
		}
		ws_deflate_free(&d);
		init_ok(&d, params(bits, 15, false, false));
		cr_assert_eq(ws_deflate_shared_bits(&d), 0);
		ws_deflate_free(&d);
	}
	struct buf o = { 0 };
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 7, msg, 10, &o), WS_DEFLATE_E_INVAL);
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 16, msg, 10, &o), WS_DEFLATE_E_INVAL);
	/* Output is appended after what out already holds. */
	buf_append(&o, "hdr", 3);
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, (const uint8_t *)"Hello", 5, &o), 0);
	cr_assert_eq(o.len, 3 + sizeof HELLO);
	cr_assert_arr_eq(o.data + 3, HELLO, sizeof HELLO);
	buf_free(&o);
}

/* ---- the 8-bit window ------------------------------------------------------ */

/* Inflates raw DEFLATE with a 256-byte window, one output byte at a time
 * so that nothing but the window can satisfy a back-reference. Returns
 * true if the data decodes to want. */
static bool strict_inflate8(const uint8_t *in, size_t n, const uint8_t *want, size_t want_len)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	cr_assert_eq(inflateInit2(&z, -8), Z_OK);
	uint8_t *tmp = malloc(n + 4);
	memcpy(tmp, in, n);
	memcpy(tmp + n, "\x00\x00\xff\xff", 4);
	z.next_in = tmp;
	z.avail_in = (uInt)(n + 4);
	size_t got = 0;
	bool ok = true;
	while (ok) {
		uint8_t c;
		z.next_out = &c;
		z.avail_out = 1;
		int rc = inflate(&z, Z_SYNC_FLUSH);
		if (z.avail_out == 0) {
			if (got >= want_len || c != want[got])
				ok = false;
			got++;
		}
		if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_MEM_ERROR)
			ok = false;
		else if (z.avail_in == 0 && z.avail_out == 1)
			break;
	}
	inflateEnd(&z);
	free(tmp);
	return ok && got == want_len;
}

Test(window8, deflate_fits_a_256_byte_window)
{
	/* zlib cannot deflate with 8 bits; we deflate with 9, whose longest
	 * distance is 512 - 262 = 250. Data with repeats at distances 251..511
	 * tempts it. A 15-bit stream of the same data must fail the strict
	 * inflater, or this test proves nothing. */
	rng_state = 8;
	size_t n = 60000;
	uint8_t *msg = malloc(n);
	for (size_t i = 0; i < n; i += 300) {
		size_t blk = n - i < 300 ? n - i : 300;
		if ((i / 300) % 3 == 0)
			fill(msg + i, blk, false);
		else
			memcpy(msg + i, msg + i - 300 * ((i / 300) % 3), blk);
	}
	struct ws_deflate_config c = cfg_default();
	for (int level = 1; level <= 9; level += 4) {
		c.level = level;
		struct buf w8 = { 0 }, w15 = { 0 };
		cr_assert_eq(ws_deflate_compress_oneshot(&c, 8, msg, n, &w8), 0);
		cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, msg, n, &w15), 0);
		cr_assert(strict_inflate8(w8.data, w8.len, msg, n), "level %d: 8-bit output needs a bigger window", level);
		cr_assert_not(strict_inflate8(w15.data, w15.len, msg, n), "level %d: control did not fail", level);
		buf_free(&w8);
		buf_free(&w15);
	}
	/* Per connection, with context takeover across messages too. */
	struct ws_deflate d;
	struct ws_deflate_config dc = cfg_default();
	struct ws_deflate_params p = params(8, 15, false, false);
	cr_assert_eq(ws_deflate_init(&d, &dc, &p), 0);
	z_stream z;
	memset(&z, 0, sizeof z);
	cr_assert_eq(inflateInit2(&z, -8), Z_OK);
	for (int m = 0; m < 20; m++) {
		struct buf w = { 0 };
		size_t off = (size_t)m * 2000;
		cr_assert_eq(ws_deflate_compress(&d, msg + off, 2000, &w), 0);
		buf_append(&w, "\x00\x00\xff\xff", 4);
		z.next_in = w.data;
		z.avail_in = (uInt)w.len;
		for (size_t i = 0; i < 2000; i++) {
			uint8_t ch;
			z.next_out = &ch;
			z.avail_out = 1;
			int rc = inflate(&z, Z_SYNC_FLUSH);
			cr_assert(rc == Z_OK || rc == Z_BUF_ERROR, "message %d byte %zu: %s", m, i, z.msg ? z.msg : "");
			cr_assert_eq(z.avail_out, 0);
			EXPECT_EQ(ch, msg[off + i]);
		}
		buf_free(&w);
	}
	inflateEnd(&z);
	ws_deflate_free(&d);
	free(msg);
}

Test(window8, inflate_with_8_bits)
{
	/* We inflate with the agreed 8 bits: what zlib's 9-bit deflater
	 * writes decodes, a 15-bit stream reaching further back does not. */
	rng_state = 88;
	size_t n = 20000;
	uint8_t *msg = malloc(n);
	for (size_t i = 0; i < n; i += 1000) {
		fill(msg + i, 500, false);
		memcpy(msg + i + 500, msg + i, 500);
	}
	struct ws_deflate_config c = cfg_default();
	struct buf w8 = { 0 }, w15 = { 0 }, back = { 0 };
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 8, msg, n, &w8), 0);
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, msg, n, &w15), 0);
	struct ws_deflate d;
	init_ok(&d, params(15, 8, false, false));
	cr_assert_eq(ws_deflate_inflate(&d, w8.data, w8.len, n, &back), 0);
	cr_assert_eq(back.len, n);
	cr_assert_arr_eq(back.data, msg, n);
	ws_deflate_free(&d);
	/* The 15-bit stream copies 500 bytes from 500 back. zlib checks a
	 * distance against its window plus what the same call has written,
	 * so the stream is fed a byte per call: only the window counts. */
	init_ok(&d, params(15, 8, false, false));
	back.len = 0;
	int rc = 0;
	for (size_t off = 0; off < w15.len && rc == 0; off++)
		rc = ws_deflate_inflate_feed(&d, w15.data + off, 1, n, &back);
	if (rc == 0)
		rc = ws_deflate_inflate_end(&d, n, &back);
	cr_assert_eq(rc, WS_DEFLATE_E_DATA, "a 500-byte distance passed an 8-bit window");
	ws_deflate_free(&d);
	buf_free(&w8);
	buf_free(&w15);
	buf_free(&back);
	free(msg);
}

/* ---- decompression bombs ------------------------------------------------- */

static struct buf make_bomb(size_t inflated)
{
	uint8_t *zeros = calloc(1, inflated);
	struct ws_deflate_config c = cfg_default();
	c.level = 9;
	struct buf b = { 0 };
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, zeros, inflated, &b), 0);
	free(zeros);
	return b;
}

Test(bomb, whole_message)
{
	size_t big = (size_t)64 << 20;
	struct buf bomb = make_bomb(big);
	cr_assert_lt(bomb.len, (size_t)100 << 10, "bomb is %zu bytes", bomb.len);
	size_t limits[] = { 0, 1, 1000, 65536, 1 << 20, (1 << 20) + 7 };
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
		size_t max = limits[i];
		struct ws_deflate d;
		init_ok(&d, params(15, 15, false, false));
		struct buf out = { 0 };
		cr_assert_eq(ws_deflate_inflate(&d, bomb.data, bomb.len, max, &out), WS_DEFLATE_E_TOOBIG);
		cr_assert_leq(out.cap, max + 1, "max %zu: cap %zu", max, out.cap);
		cr_assert_leq(out.len, max + 1);
		/* Sticky: the connection is done. */
		cr_assert_eq(ws_deflate_inflate(&d, HELLO, sizeof HELLO, max, &out), WS_DEFLATE_E_TOOBIG);
		cr_assert_eq(ws_deflate_memory(&d), 0, "the stream is released");
		buf_free(&out);
		ws_deflate_free(&d);
	}
	/* out already holds data: the bound is relative to it. */
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	struct buf out = { 0 };
	buf_append(&out, "prefix", 6);
	cr_assert_eq(ws_deflate_inflate(&d, bomb.data, bomb.len, 5000, &out), WS_DEFLATE_E_TOOBIG);
	cr_assert_leq(out.cap, (size_t)256 + 5000 + 1);
	buf_free(&out);
	ws_deflate_free(&d);
	buf_free(&bomb);
}

Test(bomb, streaming_stops_early)
{
	size_t big = (size_t)64 << 20;
	struct buf bomb = make_bomb(big);
	size_t max = 1 << 20;
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	struct buf out = { 0 };
	size_t off = 0, step = 512;
	int rc = 0;
	size_t peak_cap = 0;
	while (off < bomb.len && rc == 0) {
		size_t k = bomb.len - off < step ? bomb.len - off : step;
		rc = ws_deflate_inflate_feed(&d, bomb.data + off, k, max, &out);
		off += k;
		if (out.cap > peak_cap)
			peak_cap = out.cap;
		/* The caller may consume between feeds; the limit is still on
		 * the whole message. */
		out.len = 0;
	}
	cr_assert_eq(rc, WS_DEFLATE_E_TOOBIG);
	cr_assert_lt(off, bomb.len / 8, "stopped after %zu of %zu compressed bytes", off, bomb.len);
	cr_assert_leq(peak_cap, max + 1);
	buf_free(&out);
	ws_deflate_free(&d);
	buf_free(&bomb);
}

Test(bomb, exact_limit)
{
	rng_state = 5;
	uint8_t msg[5000];
	fill(msg, sizeof msg, true);
	struct ws_deflate_config c = cfg_default();
	struct buf w = { 0 };
	cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, msg, sizeof msg, &w), 0);
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, true));
	struct buf out = { 0 };
	cr_assert_eq(ws_deflate_inflate(&d, w.data, w.len, sizeof msg, &out), 0);
	cr_assert_eq(out.len, sizeof msg);
	cr_assert_leq(out.cap, sizeof msg + 1);
	buf_free(&out);
	cr_assert_eq(ws_deflate_inflate(&d, w.data, w.len, sizeof msg - 1, &out), WS_DEFLATE_E_TOOBIG);
	cr_assert_leq(out.cap, sizeof msg);
	buf_free(&out);
	buf_free(&w);
	ws_deflate_free(&d);
}

/* ---- corrupt data ---------------------------------------------------------- */

static int inflate_fresh(const uint8_t *p, size_t n, bool takeover)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, !takeover));
	struct buf out = { 0 };
	int rc = ws_deflate_inflate(&d, p, n, 1 << 20, &out);
	buf_free(&out);
	ws_deflate_free(&d);
	return rc;
}

Test(corrupt, invalid_streams)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t n;
	} cases[] = {
		{ "reserved block type 11", "\x07", 1 },
		{ "reserved block type, not final", "\x06\x00", 2 },
		{ "stored LEN/NLEN mismatch", "\x00\x05\x00\x00\x00Hello\x00", 11 },
		{ "distance before the start", "\xf2\x00\x11\x00\x00", 5 },
		{ "truncated stored block", "\x00\x05\x00\xfa\xff\x48\x65", 7 },
		{ "truncated fixed block", "\xf2\x48\xcd", 3 },
		{ "invalid code lengths", "\x05\xff\xff\xff\xff\xff", 6 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_assert_eq(inflate_fresh((const uint8_t *)cases[i].bytes, cases[i].n, true), WS_DEFLATE_E_DATA,
			     "%s", cases[i].name);

	/* A message cut short is refused: the appended tail then lands
	 * inside a block. The tail's bits may well decode as the end of that
	 * block (a few literals and an end-of-block code: this happened for
	 * 1 cut in 6 before the check also required the tail to produce
	 * nothing); only a cut at a real block boundary passes. */
	rng_state = 3;
	static const size_t sizes[] = { 300, 2000, 40000 };
	struct ws_deflate_config c = cfg_default();
	for (size_t si = 0; si < 3; si++)
	for (int text = 0; text < 2; text++) {
		size_t n = sizes[si];
		uint8_t *msg = malloc(n);
		fill(msg, n, text);
		struct buf w = { 0 };
		cr_assert_eq(ws_deflate_compress_oneshot(&c, 15, msg, n, &w), 0);
		size_t step = w.len > 3000 ? 7 : 1;
		for (size_t cut = 1; cut < w.len; cut += step) {
			struct ws_deflate d;
			init_ok(&d, params(15, 15, false, true));
			struct buf out = { 0 };
			int rc = ws_deflate_inflate(&d, w.data, cut, n, &out);
			/* Only a cut at a real block boundary passes, and then
			 * yields a prefix: here, random data goes in a stored
			 * block whose first byte is its header, and a cut right
			 * after it is the empty message. */
			if (rc == 0)
				EXPECT(cut == 1 && !text && out.len == 0, "size %zu text %d: cut at %zu of %zu passed",
				       n, text, cut, w.len);
			else  /* the tail read as data may also pass the limit */
				EXPECT(rc == WS_DEFLATE_E_DATA || rc == WS_DEFLATE_E_TOOBIG, "rc %d", rc);
			buf_free(&out);
			ws_deflate_free(&d);
		}
		EXPECT_EQ(inflate_fresh(w.data, w.len, true), 0);
		buf_free(&w);
		free(msg);
	}
}

Test(corrupt, sticky_and_released)
{
	struct ws_deflate d;
	init_ok(&d, params(15, 15, false, false));
	expect_inflate(&d, HELLO, sizeof HELLO, "Hello");
	cr_assert_gt(ws_deflate_memory(&d), 0);
	struct buf out = { 0 };
	cr_assert_eq(ws_deflate_inflate(&d, (const uint8_t *)"\x07", 1, 100, &out), WS_DEFLATE_E_DATA);
	cr_assert_eq(ws_deflate_memory(&d), 0);
	cr_assert_eq(ws_deflate_inflate(&d, HELLO, sizeof HELLO, 100, &out), WS_DEFLATE_E_DATA);
	cr_assert_eq(ws_deflate_inflate_feed(&d, HELLO, sizeof HELLO, 100, &out), WS_DEFLATE_E_DATA);
	cr_assert_eq(ws_deflate_inflate_end(&d, 100, &out), WS_DEFLATE_E_DATA);
	/* The deflate side is independent. */
	cr_assert_eq(ws_deflate_compress(&d, (const uint8_t *)"Hello", 5, &out), 0);
	buf_free(&out);
	ws_deflate_free(&d);
}

Test(corrupt, random_garbage_never_crashes)
{
	rng_state = 0xdeadbeef;
	unsigned data_errors = 0;
	for (int i = 0; i < 3000; i++) {
		uint8_t junk[64];
		size_t n = 1 + rnd() % sizeof junk;
		fill(junk, n, false);
		int rc = inflate_fresh(junk, n, i & 1);
		EXPECT(rc == 0 || rc == WS_DEFLATE_E_DATA || rc == WS_DEFLATE_E_TOOBIG, "rc %d", rc);
		data_errors += rc == WS_DEFLATE_E_DATA;
	}
	cr_assert_gt(data_errors, 2500);
}

/* ---- memory ------------------------------------------------------------------ */

/* What a connection holds after one message each way with context
 * takeover, per setting. Printed for docs/compression.md and checked
 * against zlib's documented formulas. */
Test(memory, per_setting)
{
	rng_state = 1;
	uint8_t msg[40000];
	fill(msg, sizeof msg, true);
	size_t base_total = ws_deflate_memory_total();
	printf("deflate (server -> client), bytes held with context takeover:\n");
	printf("bits |");
	for (unsigned ml = 1; ml <= 9; ml++)
		printf(" memLevel %u |", ml);
	printf("\n");
	for (unsigned bits = 8; bits <= 15; bits++) {
		printf("%4u |", bits);
		for (unsigned ml = 1; ml <= 9; ml++) {
			struct ws_deflate_config c = cfg_default();
			c.mem_level = ml;
			struct ws_deflate_params p = params(bits, 15, false, false);
			struct ws_deflate d;
			cr_assert_eq(ws_deflate_init(&d, &c, &p), 0);
			cr_assert_eq(ws_deflate_memory(&d), 0, "nothing before first use");
			struct buf w = { 0 };
			cr_assert_eq(ws_deflate_compress(&d, msg, sizeof msg, &w), 0);
			size_t held = ws_deflate_memory(&d);
			unsigned zb = bits < 9 ? 9 : bits;
			size_t formula = ((size_t)1 << (zb + 2)) + ((size_t)1 << (ml + 9));
			cr_assert_geq(held, formula, "bits %u memLevel %u", bits, ml);
			cr_assert_leq(held, formula + 8192, "bits %u memLevel %u: %zu", bits, ml, held);
			printf(" %10zu |", held);
			buf_free(&w);
			ws_deflate_free(&d);
			cr_assert_eq(ws_deflate_memory(&d), 0);
		}
		printf("\n");
	}
	printf("inflate (client -> server), bytes held with context takeover:\n");
	for (unsigned bits = 8; bits <= 15; bits++) {
		struct ws_deflate_config c = cfg_default();
		struct ws_deflate_params p = params(15, bits, false, false);
		struct buf w = { 0 }, back = { 0 };
		cr_assert_eq(ws_deflate_compress_oneshot(&c, bits, msg, sizeof msg, &w), 0);
		struct ws_deflate d;
		cr_assert_eq(ws_deflate_init(&d, &c, &p), 0);
		cr_assert_eq(ws_deflate_inflate(&d, w.data, w.len, sizeof msg, &back), 0);
		size_t held = ws_deflate_memory(&d);
		size_t window = (size_t)1 << bits;
		cr_assert_geq(held, window);
		cr_assert_leq(held, window + 8192, "bits %u: %zu", bits, held);
		printf("bits %2u: %6zu (window %5zu + %zu)\n", bits, held, window, held - window);
		buf_free(&w);
		buf_free(&back);
		ws_deflate_free(&d);
	}
	/* Without context takeover nothing stays after a message. */
	struct ws_deflate_params p = params(15, 15, true, true);
	struct ws_deflate d, peer;
	init_ok(&d, p);
	init_ok(&peer, mirror(p));
	struct buf w = { 0 }, back = { 0 };
	cr_assert_eq(ws_deflate_compress(&d, msg, sizeof msg, &w), 0);
	cr_assert_eq(ws_deflate_memory(&d), 0);
	cr_assert_eq(ws_deflate_inflate(&peer, w.data, w.len, sizeof msg, &back), 0);
	cr_assert_eq(ws_deflate_memory(&peer), 0);
	/* ... but a message in progress holds its stream. */
	cr_assert_eq(ws_deflate_inflate_feed(&peer, w.data, 10, sizeof msg, &back), 0);
	cr_assert_gt(ws_deflate_memory(&peer), 0);
	ws_deflate_free(&peer);
	cr_assert_eq(ws_deflate_memory(&peer), 0);
	buf_free(&w);
	buf_free(&back);
	ws_deflate_free(&d);
	cr_assert_eq(ws_deflate_memory_total(), base_total, "every counted byte was given back");
	cr_assert_geq(ws_deflate_memory_peak(), (size_t)256 << 10);
	fflush(stdout);
}

/* ---- allocation failures --------------------------------------------------- */

/* Fails the nth allocation of a compress + inflate exchange, for every n
 * until one run completes: each failure is NOMEM, sticky, and nothing
 * leaks (the process-wide counter returns to its start; ASan checks the
 * rest). */
Test(alloc, every_failure_point)
{
	rng_state = 10;
	uint8_t msg[5000];
	fill(msg, sizeof msg, true);
	size_t base = ws_deflate_memory_total();
	for (unsigned long nth = 1;; nth++) {
		cr_assert_lt(nth, 200, "never completed");
		struct ws_deflate srv, cli;
		struct ws_deflate_params p = params(15, 15, nth & 1, nth & 2);
		init_ok(&srv, p);
		init_ok(&cli, mirror(p));
		struct buf w = { 0 }, back = { 0 };
		ws_deflate_fail_alloc_after(nth);
		int rc = 0;
		for (int m = 0; m < 2 && rc == 0; m++) {
			w.len = back.len = 0;
			rc = ws_deflate_compress(&srv, msg, sizeof msg, &w);
			if (rc == 0)
				rc = ws_deflate_inflate(&cli, w.data, w.len, sizeof msg, &back);
			if (rc == 0) {
				EXPECT_EQ(back.len, sizeof msg);
				EXPECT_ARR_EQ(back.data, msg, sizeof msg);
			}
		}
		struct ws_deflate_config c = cfg_default();
		int rc1 = rc == 0 ? ws_deflate_compress_oneshot(&c, 12, msg, sizeof msg, &w) : 0;
		ws_deflate_fail_alloc_after(0);
		EXPECT(rc == 0 || rc == WS_DEFLATE_E_NOMEM, "nth %lu: rc %d", nth, rc);
		EXPECT(rc1 == 0 || rc1 == WS_DEFLATE_E_NOMEM, "nth %lu: rc1 %d", nth, rc1);
		buf_free(&w);
		buf_free(&back);
		ws_deflate_free(&srv);
		ws_deflate_free(&cli);
		EXPECT_EQ(ws_deflate_memory_total(), base, "nth %lu leaks", nth);
		if (rc == 0 && rc1 == 0)
			break;
	}
}

/* ---- configuration ------------------------------------------------------- */

Test(config, defaults_and_ranges)
{
	struct ws_deflate_config c = cfg_default();
	cr_assert(c.enabled);
	cr_assert_eq(c.server_max_window_bits, 15);
	cr_assert_eq(c.client_max_window_bits, 15);
	cr_assert_eq(c.mem_level, 8);
	cr_assert_eq(c.level, 1);
	cr_assert_eq(c.threshold, 1024);
	const char *why = "x";
	cr_assert_eq(ws_deflate_config_check(&c, &why), 0);
	cr_assert_null(why);
	struct { unsigned *f; unsigned bad; } u[] = {
		{ &c.server_max_window_bits, 7 }, { &c.server_max_window_bits, 16 },
		{ &c.client_max_window_bits, 7 }, { &c.client_max_window_bits, 16 },
		{ &c.mem_level, 0 }, { &c.mem_level, 10 },
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		unsigned keep = *u[i].f;
		*u[i].f = u[i].bad;
		cr_assert_eq(ws_deflate_config_check(&c, &why), WS_DEFLATE_E_INVAL);
		cr_assert_not_null(why);
		*u[i].f = keep;
	}
	c.level = -1;
	cr_assert_eq(ws_deflate_config_check(&c, &why), WS_DEFLATE_E_INVAL);
	c.level = 10;
	cr_assert_eq(ws_deflate_config_check(&c, &why), WS_DEFLATE_E_INVAL);
	c.level = 0;
	cr_assert_eq(ws_deflate_config_check(&c, NULL), 0);

	struct ws_deflate d;
	struct ws_deflate_config ok = cfg_default();
	struct ws_deflate_params p = params(7, 15, false, false);
	cr_assert_eq(ws_deflate_init(&d, &ok, &p), WS_DEFLATE_E_INVAL);
	p = params(15, 16, false, false);
	cr_assert_eq(ws_deflate_init(&d, &ok, &p), WS_DEFLATE_E_INVAL);

	/* Threshold: the predicate the sender asks. */
	p = params(15, 15, false, false);
	cr_assert_eq(ws_deflate_init(&d, &ok, &p), 0);
	cr_assert_not(ws_deflate_wanted(&d, 1023));
	cr_assert(ws_deflate_wanted(&d, 1024));
	ws_deflate_free(&d);

	for (int rc = 0; rc >= -6; rc--)
		cr_assert_not_null(ws_deflate_strerror(rc));
	cr_assert_str_eq(ws_deflate_strerror(WS_DEFLATE_E_TOOBIG), "inflated message too big");
}
