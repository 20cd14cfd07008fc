/* fuzz_ws_deflate — RFC 7692 permessage-deflate (core/ws/ws_deflate.c):
 * the Sec-WebSocket-Extensions negotiation and the inflate path that every
 * compressed client message takes, plus the compressor.
 *
 * Input layout:
 *   byte 0   bits 0-2 client_max_window_bits - 8, bit 3 client no context
 *            takeover, bits 4-5 max_size (1, 64, 4096, 1 MiB), bit 6
 *            negotiation (else data), bit 7 server no context takeover
 *   byte 1   bits 0-3 compression level (mod 10) or, for negotiation,
 *            bits 0-2 the server's window bits - 8 and bit 3 its
 *            server_no_context_takeover; bits 4-7 piece length seed
 *   rest     negotiation: Sec-WebSocket-Extensions values, one per line;
 *            data: compressed client messages separated by "\xff\xfe\xfd"
 *
 * Negotiation is compared with a reference written from RFC 6455 §9.1 and
 * RFC 7692 §7 (and ws_deflate.h's documented choices): the same verdict
 * (accepted, declined, malformed) and the same agreed parameters, and the
 * response says exactly those parameters (never a client_max_window_bits
 * the client did not offer).
 *
 * Data: each message is inflated whole and, on a second connection state,
 * fed in pieces into a buffer that is drained between calls; both give
 * the same result and bytes, respect max_size and the documented bound on
 * how far the output buffer may grow (decompression bombs), errors are
 * sticky, and a success agrees with zlib's own inflate run by hand with
 * the agreed window. Each message's bytes are also compressed (whole, in
 * pieces, and once for many when the server keeps no context) and must
 * come back unchanged through a strict inflater with the server's window.
 * Afterwards the process-wide zlib memory count is back where it was.
 */
#include <string.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "ws/ws_deflate.h"

/* ------------------------------------------------------------------ */
/* Negotiation reference                                                */
/* ------------------------------------------------------------------ */

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

struct ref_param {
	char name[40];
	bool has_value;
	char value[40];  /* unquoted; truncated values are marked by len */
	size_t value_len;
};

#define REF_MAX_PARAMS 16

struct ref_offer {
	size_t n;
	bool overflow;
	struct ref_param p[REF_MAX_PARAMS];
};

enum { REF_SYNTAX = -1, REF_NONE = 0, REF_ACCEPT = 1 };

struct ref_result {
	int verdict;
	struct ws_deflate_params params;
	bool offered_client_bits, client_bits_value, offered_server_bits;
};

/* Window bits: decimal 8..15 without leading zeros, else 0. */
static unsigned ref_bits(const struct ref_param *p)
{
	if (!p->has_value || p->value_len == 0 || p->value_len > 2 || p->value[0] == '0')
		return 0;
	unsigned n = 0;
	for (size_t i = 0; i < p->value_len; i++) {
		if (p->value[i] < '0' || p->value[i] > '9')
			return 0;
		n = n * 10 + (unsigned)(p->value[i] - '0');
	}
	return n >= 8 && n <= 15 ? n : 0;
}

/* Judges one permessage-deflate offer; returns true if acceptable. */
static bool ref_judge(const struct ref_offer *o, const struct ws_deflate_config *cfg, struct ref_result *r)
{
	if (o->overflow)
		return false; /* more than REF_MAX_PARAMS: some is a duplicate */
	bool snct = false, cnct = false, sb = false, cb = false;
	unsigned sbits = 0, cbits = 0;
	for (size_t i = 0; i < o->n; i++) {
		const struct ref_param *p = &o->p[i];
		bool *seen;
		if (strcmp(p->name, "server_no_context_takeover") == 0)
			seen = &snct;
		else if (strcmp(p->name, "client_no_context_takeover") == 0)
			seen = &cnct;
		else if (strcmp(p->name, "server_max_window_bits") == 0)
			seen = &sb;
		else if (strcmp(p->name, "client_max_window_bits") == 0)
			seen = &cb;
		else
			return false;
		if (*seen)
			return false;
		*seen = true;
		if ((seen == &snct || seen == &cnct) && p->has_value)
			return false;
		if (seen == &sb && !(sbits = ref_bits(p)))
			return false;
		if (seen == &cb && p->has_value && !(cbits = ref_bits(p)))
			return false;
	}
	r->params.server_no_context_takeover = snct || cfg->server_no_context_takeover;
	r->params.client_no_context_takeover = cnct || cfg->client_no_context_takeover;
	r->params.server_max_window_bits = sb && sbits < cfg->server_max_window_bits ? sbits
											: cfg->server_max_window_bits;
	unsigned want = cbits ? cbits : 15;
	r->params.client_max_window_bits = cb ? (want < cfg->client_max_window_bits ? want : cfg->client_max_window_bits)
					      : 15;
	r->offered_client_bits = cb;
	r->client_bits_value = cbits != 0;
	r->offered_server_bits = sb;
	return true;
}

/* Parses one header value (RFC 6455 §9.1 with RFC 7230 §7 lists and
 * quoted-strings). Offers of permessage-deflate are handed to judge in
 * order until one is accepted. Returns false on a syntax error. */
static bool ref_parse(const char *s, size_t n, const struct ws_deflate_config *cfg, struct ref_result *r)
{
	size_t i = 0;
#define OWS() while (i < n && (s[i] == ' ' || s[i] == '\t')) i++
	for (;;) {
		OWS();
		if (i == n)
			return true;
		if (s[i] == ',') {
			i++;
			continue;
		}
		size_t t0 = i;
		while (i < n && tchar((unsigned char)s[i]))
			i++;
		if (i == t0)
			return false;
		bool ours = i - t0 == 18 && memcmp(s + t0, "permessage-deflate", 18) == 0;
		struct ref_offer o;
		memset(&o, 0, sizeof o);
		OWS();
		while (i < n && s[i] == ';') {
			i++;
			OWS();
			size_t p0 = i;
			while (i < n && tchar((unsigned char)s[i]))
				i++;
			if (i == p0)
				return false;
			struct ref_param prm;
			memset(&prm, 0, sizeof prm);
			size_t nl = i - p0 < sizeof prm.name - 1 ? i - p0 : sizeof prm.name - 1;
			memcpy(prm.name, s + p0, nl);
			if (i - p0 >= sizeof prm.name - 1)
				prm.name[0] = '?'; /* too long to be a known name */
			OWS();
			if (i < n && s[i] == '=') {
				i++;
				OWS();
				prm.has_value = true;
				if (i < n && s[i] == '"') {
					i++;
					for (;;) {
						if (i == n)
							return false;
						unsigned char c = (unsigned char)s[i++];
						if (c == '"')
							break;
						if (c == '\\') {
							if (i == n)
								return false;
							c = (unsigned char)s[i++];
						}
						if (!tchar(c))
							return false; /* unquoted, it must be a token */
						if (prm.value_len < sizeof prm.value)
							prm.value[prm.value_len] = (char)c;
						prm.value_len++;
					}
					if (prm.value_len == 0)
						return false;
				} else {
					size_t v0 = i;
					while (i < n && tchar((unsigned char)s[i]))
						i++;
					if (i == v0)
						return false;
					prm.value_len = i - v0;
					memcpy(prm.value, s + v0, prm.value_len < sizeof prm.value ? prm.value_len
												    : sizeof prm.value);
				}
				if (prm.value_len > sizeof prm.value)
					prm.value_len = sizeof prm.value; /* still not 8..15 */
				OWS();
			}
			if (o.n < REF_MAX_PARAMS)
				o.p[o.n++] = prm;
			else
				o.overflow = true;
		}
		if (i < n && s[i] != ',')
			return false;
		if (ours && r->verdict != REF_ACCEPT && ref_judge(&o, cfg, r))
			r->verdict = REF_ACCEPT;
	}
#undef OWS
}

/* Reads the response back as an offer: its parameters, each at most once. */
static void check_response(const char *resp, const struct ref_result *r)
{
	size_t n = strlen(resp);
	CHECK(n < WS_DEFLATE_RESPONSE_MAX, "response of %zu bytes", n);
	struct ws_deflate_config any;
	ws_deflate_config_default(&any);
	any.server_max_window_bits = 15;
	any.client_max_window_bits = 15;
	any.server_no_context_takeover = any.client_no_context_takeover = false;
	struct ref_result back;
	memset(&back, 0, sizeof back);
	CHECK(ref_parse(resp, n, &any, &back) && back.verdict == REF_ACCEPT,
	      "response '%s' does not read as one permessage-deflate element", resp);
	CHECK(strncmp(resp, "permessage-deflate", 18) == 0 && !strchr(resp, ','), "response '%s'", resp);
	const struct ws_deflate_params *a = &r->params, *b = &back.params;
	CHECK(a->server_no_context_takeover == b->server_no_context_takeover &&
	      a->client_no_context_takeover == b->client_no_context_takeover,
	      "response '%s' misstates the context takeover", resp);
	CHECK(back.offered_server_bits == (r->offered_server_bits || a->server_max_window_bits < 15) &&
	      b->server_max_window_bits == a->server_max_window_bits,
	      "response '%s' misstates server_max_window_bits %u", resp, a->server_max_window_bits);
	/* §7.1.2.2: only if offered, and then only with a value. */
	CHECK(!back.offered_client_bits || r->offered_client_bits,
	      "response '%s' has client_max_window_bits the client did not offer", resp);
	CHECK(!back.offered_client_bits || back.client_bits_value, "response '%s': client_max_window_bits without a value",
	      resp);
	CHECK(back.offered_client_bits == (r->offered_client_bits &&
					   (r->client_bits_value || a->client_max_window_bits < 15)),
	      "response '%s' should%s say client_max_window_bits", resp, back.offered_client_bits ? " not" : "");
	if (back.offered_client_bits)
		CHECK(b->client_max_window_bits == a->client_max_window_bits, "response '%s' client bits, agreed %u",
		      resp, a->client_max_window_bits);
}

static void negotiation(const uint8_t *data, size_t size)
{
	struct ws_deflate_config cfg;
	ws_deflate_config_default(&cfg);
	cfg.client_max_window_bits = 8 + (data[0] & 7);
	cfg.client_no_context_takeover = data[0] & 8;
	cfg.server_max_window_bits = 8 + (data[1] & 7);
	cfg.server_no_context_takeover = data[1] & 8;
	CHECK(ws_deflate_config_check(&cfg, NULL) == 0, "config rejected");

	const char *text = (const char *)data + 2;
	size_t n = size - 2;
	const char *values[64];
	size_t lens[64], nv = 0;
	char *copy = malloc(n ? n : 1); /* private: reads past the end are caught */
	if (!copy)
		abort();
	memcpy(copy, text, n);
	for (size_t i = 0, start = 0; i <= n && nv < 64; i++) {
		if (i == n || copy[i] == '\n') {
			values[nv] = copy + start;
			lens[nv++] = i - start;
			start = i + 1;
		}
	}

	struct ref_result ref;
	memset(&ref, 0, sizeof ref);
	for (size_t i = 0; i < nv && ref.verdict != REF_SYNTAX; i++)
		if (!ref_parse(values[i], lens[i], &cfg, &ref))
			ref.verdict = REF_SYNTAX;

	struct ws_deflate_params p;
	char resp[WS_DEFLATE_RESPONSE_MAX];
	const char *why = "unset";
	int rc = ws_deflate_negotiate(&cfg, values, lens, nv, &p, resp, sizeof resp, &why);
	int want = ref.verdict == REF_SYNTAX ? WS_DEFLATE_E_SYNTAX : ref.verdict;
	CHECK(rc == want, "negotiate returned %d (%s), reference %d", rc, why ? why : "", want);
	if (rc == 1) {
		CHECK(why == NULL, "accepted with a reason '%s'", why);
		CHECK(p.server_no_context_takeover == ref.params.server_no_context_takeover &&
		      p.client_no_context_takeover == ref.params.client_no_context_takeover &&
		      p.server_max_window_bits == ref.params.server_max_window_bits &&
		      p.client_max_window_bits == ref.params.client_max_window_bits,
		      "agreed snct %d cnct %d sbits %u cbits %u, reference %d %d %u %u", p.server_no_context_takeover,
		      p.client_no_context_takeover, p.server_max_window_bits, p.client_max_window_bits,
		      ref.params.server_no_context_takeover, ref.params.client_no_context_takeover,
		      ref.params.server_max_window_bits, ref.params.client_max_window_bits);
		check_response(resp, &ref);
		struct ws_deflate d;
		CHECK(ws_deflate_init(&d, &cfg, &p) == 0, "agreed parameters refused by ws_deflate_init");
		ws_deflate_free(&d);
	} else {
		CHECK(why && *why, "verdict %d without a reason", rc);
	}
	/* Disabled: the header is not even looked at. */
	cfg.enabled = false;
	CHECK(ws_deflate_negotiate(&cfg, values, lens, nv, &p, resp, sizeof resp, &why) == 0,
	      "negotiated with compression disabled");
	free(copy);
}

/* ------------------------------------------------------------------ */
/* Data                                                                 */
/* ------------------------------------------------------------------ */

static const uint8_t TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

/* zlib's inflate driven by hand: the client's messages with the agreed
 * window. Gives up (lost) once a stream ends (BFINAL), which needs the
 * restart logic this reference deliberately does not copy. */
struct ref_inflate {
	z_stream z;
	bool open, lost;
	int bits;
	bool reset_each;
	bool lenient;   /* any distance zlib can resolve, no output cap */
};

/* Most output the reference judges; beyond it, it gives up (it is slow). */
#define REF_MAX_OUT 16384

/* Runs in[0..n) through r's stream into out; 0, -1 (data error), -2
 * (the stream ended, or too much output: not judged) or -3 (more than
 * limit bytes). One output byte per call keeps zlib strict about the
 * window: with room in the output buffer it would also resolve distances
 * into what it wrote in the same call, reaching further back than
 * windowBits, and so accept a peer that overstepped the agreed window. */
static int ref_run(struct ref_inflate *r, const uint8_t *in, size_t n, size_t limit, struct buf *out)
{
	r->z.next_in = (Bytef *)(uintptr_t)in;
	r->z.avail_in = (uInt)n;
	for (;;) {
		size_t room = r->lenient ? 4096 : 1;
		if (buf_reserve(out, room) < 0)
			abort();
		r->z.next_out = out->data + out->len;
		r->z.avail_out = (uInt)room;
		int zrc = inflate(&r->z, Z_SYNC_FLUSH);
		out->len += room - r->z.avail_out;
		if (zrc == Z_STREAM_END)
			return -2;
		if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return -1;
		if (out->len > limit)
			return -3;
		if (out->len > REF_MAX_OUT && !r->lenient)
			return -2;
		if (r->z.avail_in == 0 && r->z.avail_out > 0)
			return 0;
	}
}

/* One message: its bytes, then the 0x00 0x00 0xff 0xff the sender took
 * off (RFC 7692 §7.2.2), which must complete an empty stored block: no
 * output from it, and the stream left between blocks. Returns as ref_run;
 * -1 also for a message cut short. */
static int ref_inflate(struct ref_inflate *r, const uint8_t *in, size_t n, size_t limit, struct buf *out)
{
	if (r->lost)
		return -2;
	if (n == 0)
		return 0; /* the empty message */
	if (!r->open) {
		memset(&r->z, 0, sizeof r->z);
		if (inflateInit2(&r->z, -r->bits) != Z_OK)
			abort();
		r->open = true;
	}
	int res = ref_run(r, in, n, limit, out);
	if (res == 0) {
		size_t before = out->len;
		res = ref_run(r, TAIL, 4, limit, out);
		if (res == 0 && (out->len != before || (r->z.data_type & 0xff) != 128))
			res = -1;
	}
	if (res == -1 || res == -2) {
		inflateEnd(&r->z);
		r->open = false;
		r->lost = true;
	} else if (r->reset_each && res == 0) {
		inflateEnd(&r->z);
		r->open = false;
	}
	return res;
}

static void ref_end(struct ref_inflate *r)
{
	if (r->open)
		inflateEnd(&r->z);
	r->open = false;
}

/* Inflates in pieces, draining out between calls into all. */
static int inflate_pieces(struct ws_deflate *d, const uint8_t *in, size_t n, size_t piece, size_t max_size,
			  struct buf *out, struct buf *all)
{
	size_t inflated = 0;
	for (size_t i = 0, k = 0; i <= n; k++) {
		bool end = i == n;
		size_t len = end ? 0 : (piece * (k + 3)) % 53 + (k & 1);
		if (len > n - i)
			len = n - i;
		size_t len_entry = out->len, cap_entry = out->cap;
		int rc = end ? ws_deflate_inflate_end(d, max_size, out)
			     : ws_deflate_inflate_feed(d, in + i, len, max_size, out);
		/* The bomb bound of ws_deflate.h. */
		if (out->cap > cap_entry)
			CHECK(out->cap <= len_entry + (max_size - inflated) + 1,
			      "out grew to %zu (len %zu on entry, %zu of max %zu inflated)", out->cap, len_entry,
			      inflated, max_size);
		inflated += out->len - len_entry;
		if (buf_append(all, out->data, out->len) < 0)
			abort();
		out->len = 0;
		if (rc < 0)
			return rc;
		i += len;
		if (end)
			break;
	}
	return 0;
}

/* Compresses m as tx (whole) and tx_pieces (in pieces) would send it; both
 * must inflate back to m at the peer. */
static void round_trip(struct ws_deflate *tx, struct ws_deflate *tx_pieces, struct ws_deflate *rx_own,
		       struct ref_inflate *client, struct ref_inflate *client2, const struct ws_deflate_config *cfg,
		       const uint8_t *m, size_t n, size_t piece)
{
	struct buf c = { 0 }, c2 = { 0 }, back = { 0 }, back2 = { 0 }, own = { 0 }, one = { 0 };
	int rc = ws_deflate_compress(tx, m, n, &c);
	CHECK(rc == 0, "compress failed: %d", rc);
	if (n == 0)
		CHECK(c.len == 1 && c.data[0] == 0, "the empty message is not the byte 0x00");
	/* A strict inflater with the server's window gets the bytes back. */
	rc = ref_inflate(client, c.data, c.len, n, &back);
	CHECK(rc == 0 && back.len == n && (n == 0 || memcmp(back.data, m, n) == 0),
	      "compressed message of %zu bytes inflates to %zu bytes (rc %d)", n, back.len, rc);
	/* ws_deflate's own inflater, configured as the peer, agrees. */
	rc = ws_deflate_inflate(rx_own, c.data, c.len, n, &own);
	CHECK(rc == 0 && own.len == n && (n == 0 || memcmp(own.data, m, n) == 0),
	      "ws_deflate cannot inflate its own output (rc %d, %zu of %zu bytes)", rc, own.len, n);
	/* Compressed in pieces: perhaps other bytes, the same message. */
	for (size_t i = 0, k = 0; i < n; k++) {
		size_t len = 1 + (piece * (k + 1)) % 97;
		if (len > n - i)
			len = n - i;
		rc = ws_deflate_compress_feed(tx_pieces, m + i, len, false, &c2);
		CHECK(rc == 0, "compress_feed failed: %d", rc);
		i += len;
	}
	rc = ws_deflate_compress_feed(tx_pieces, m + n, 0, true, &c2);
	CHECK(rc == 0, "compress_feed(fin) failed: %d", rc);
	rc = ref_inflate(client2, c2.data, c2.len, n, &back2);
	CHECK(rc == 0 && back2.len == n && (n == 0 || memcmp(back2.data, m, n) == 0),
	      "message compressed in pieces (%zu bytes) inflates to %zu bytes (rc %d)", n, back2.len, rc);
	if (tx->p.server_no_context_takeover) {
		rc = ws_deflate_compress_oneshot(cfg, tx->p.server_max_window_bits, m, n, &one);
		CHECK(rc == 0 && one.len == c.len && memcmp(one.data, c.data, c.len) == 0,
		      "compress_oneshot differs from compress (%zu vs %zu bytes)", one.len, c.len);
	}
	buf_free(&c);
	buf_free(&c2);
	buf_free(&back);
	buf_free(&back2);
	buf_free(&own);
	buf_free(&one);
}

static void data_path(const uint8_t *data, size_t size)
{
	static const size_t max_sizes[4] = { 1, 64, 4096, 1 << 20 };
	struct ws_deflate_config cfg;
	ws_deflate_config_default(&cfg);
	cfg.level = (data[1] & 15) % 10;
	size_t max_size = max_sizes[(data[0] >> 4) & 3];
	size_t piece = 1 + (data[1] >> 4);
	struct ws_deflate_params p = {
		.server_no_context_takeover = data[0] & 0x80,
		.client_no_context_takeover = data[0] & 8,
		.server_max_window_bits = 8 + (data[0] & 7),
		.client_max_window_bits = 8 + (data[0] & 7),
	};
	size_t mem_before = ws_deflate_memory_total();

	struct ws_deflate whole, pieces, tx, tx_pieces, rx_own;
	CHECK(ws_deflate_init(&whole, &cfg, &p) == 0 && ws_deflate_init(&pieces, &cfg, &p) == 0 &&
	      ws_deflate_init(&tx, &cfg, &p) == 0 && ws_deflate_init(&tx_pieces, &cfg, &p) == 0,
	      "ws_deflate_init refused valid parameters");
	/* The peer of tx: inflates with the server's window and context. */
	struct ws_deflate_params peer = p;
	peer.client_max_window_bits = p.server_max_window_bits;
	peer.client_no_context_takeover = p.server_no_context_takeover;
	CHECK(ws_deflate_init(&rx_own, &cfg, &peer) == 0, "ws_deflate_init refused the peer's parameters");
	struct ref_inflate ref = { .bits = (int)p.client_max_window_bits, .reset_each = p.client_no_context_takeover };
	struct ref_inflate client = { .bits = (int)p.server_max_window_bits, .reset_each = p.server_no_context_takeover };
	struct ref_inflate client2 = client;
	/* With the largest window: tells a message that only oversteps the
	 * agreed window from corrupt data. */
	struct ref_inflate lenient = { .bits = 15, .reset_each = p.client_no_context_takeover, .lenient = true };

	const uint8_t *rest = data + 2, *end = data + size;
	int sticky = 0;
	for (;;) {
		const uint8_t *sep = memmem(rest, (size_t)(end - rest), "\xff\xfe\xfd", 3);
		size_t n = sep ? (size_t)(sep - rest) : (size_t)(end - rest);
		uint8_t *m = malloc(n ? n : 1); /* private: reads past the end are caught */
		if (!m)
			abort();
		memcpy(m, rest, n);

		struct buf a = { 0 }, b = { 0 }, all = { 0 }, r = { 0 };
		int before = sticky;
		bool judged = !ref.lost && !before;
		struct buf l = { 0 };
		int rl = ref_inflate(&lenient, m, n, SIZE_MAX, &l);
		buf_free(&l);
		/* Reported: whether a message reaching further back than the
		 * agreed window is refused depends on the output buffer. */
		const char *window = p.client_max_window_bits < 15 && (rl == 0 || lenient.lost) ? "deflate-window" : "-";
		int ra = ws_deflate_inflate(&whole, m, n, max_size, &a);
		int rb = inflate_pieces(&pieces, m, n, piece, max_size, &b, &all);
		CHECK(ra == 0 || ra == WS_DEFLATE_E_TOOBIG || ra == WS_DEFLATE_E_DATA, "inflate returned %d", ra);
		if (ra != rb) {
			/* The client window check is best effort (docs/compression.md):
			 * a stream that breaks the agreed window may be refused in one
			 * split and not in another. Anything else is a bug. */
			if (strcmp(window, "deflate-window") != 0)
				CHECK(false, "whole message gives %d, in pieces %d", ra, rb);
			/* skipped: the two states have parted, stop here */
			buf_free(&a);
			buf_free(&b);
			buf_free(&all);
			free(m);
			break;
		}
		CHECK(!before || ra == before, "error %d not sticky: now %d", before, ra);
		if (ra == 0) {
			CHECK(a.len == all.len && (a.len == 0 || memcmp(a.data, all.data, a.len) == 0),
			      "whole message inflates to %zu bytes, in pieces to %zu", a.len, all.len);
			CHECK(a.len <= max_size, "%zu bytes inflated, max_size %zu", a.len, max_size);
		} else {
			sticky = ra;
		}
		if (judged) {
			int rr = ref_inflate(&ref, m, n, max_size, &r);
			if (rr == 0)
				CHECK(ra == 0 && r.len == a.len && (a.len == 0 || memcmp(r.data, a.data, a.len) == 0),
				      "zlib inflates %zu bytes, ws_deflate %zu with %d", r.len, a.len, ra);
			/* The strict reference refuses what breaks the agreed client
			 * window; ws_deflate's check is best effort there
			 * (docs/compression.md), so only other failures count. */
			if (rr == -1 && strcmp(window, "deflate-window") != 0)
				CHECK(ra == WS_DEFLATE_E_DATA || ra == WS_DEFLATE_E_TOOBIG,
				      "zlib fails (or the message is cut short), ws_deflate returns %d", ra);
			if (rr == -3)
				CHECK(ra == WS_DEFLATE_E_TOOBIG, "more than max_size %zu, but ws_deflate returns %d",
				      max_size, ra);
			if (ra == WS_DEFLATE_E_TOOBIG)
				CHECK(rr != 0, "ws_deflate finds it too big, zlib inflates %zu bytes", r.len);
			if (ra != 0 && !ref.lost) {
				ref_end(&ref);
				ref.lost = true; /* the states part ways */
			}
		}

		round_trip(&tx, &tx_pieces, &rx_own, &client, &client2, &cfg, m, n, piece);

		buf_free(&a);
		buf_free(&b);
		buf_free(&all);
		buf_free(&r);
		free(m);
		if (!sep)
			break;
		rest = sep + 3;
	}
	ws_deflate_free(&whole);
	ws_deflate_free(&pieces);
	ws_deflate_free(&tx);
	ws_deflate_free(&tx_pieces);
	ws_deflate_free(&rx_own);
	CHECK(ws_deflate_memory(&whole) == 0, "memory held after ws_deflate_free");
	ref_end(&ref);
	ref_end(&client);
	ref_end(&client2);
	ref_end(&lenient);
	CHECK(ws_deflate_memory_total() == mem_before, "zlib memory count %zu after, %zu before",
	      ws_deflate_memory_total(), mem_before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] & 0x40)
		negotiation(data, size);
	else
		data_path(data, size);
	return 0;
}
