/* ws_deflate — see ws_deflate.h. Negotiation first, then the zlib side. */
#include "ws/ws_deflate.h"

#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

void ws_deflate_config_default(struct ws_deflate_config *cfg)
{
	cfg->enabled = true;
	cfg->server_max_window_bits = 15;
	cfg->client_max_window_bits = 15;
	cfg->server_no_context_takeover = false;
	cfg->client_no_context_takeover = false;
	cfg->mem_level = 8;
	/* Level 1 (zlib's fastest, no lazy matching): on JSON messages it
	 * costs a few percent of ratio against the default 6 and is several
	 * times cheaper in CPU; a gateway compresses every message it sends.
	 * Measurements in docs/compression.md. */
	cfg->level = 1;
	cfg->threshold = 1024;
}

int ws_deflate_config_check(const struct ws_deflate_config *cfg, const char **why)
{
	const char *w = NULL;
	if (cfg->server_max_window_bits < 8 || cfg->server_max_window_bits > 15)
		w = "server_max_window_bits must be 8..15";
	else if (cfg->client_max_window_bits < 8 || cfg->client_max_window_bits > 15)
		w = "client_max_window_bits must be 8..15";
	else if (cfg->mem_level < 1 || cfg->mem_level > 9)
		w = "mem_level must be 1..9";
	else if (cfg->level < 0 || cfg->level > 9)
		w = "level must be 0..9";
	if (why)
		*why = w;
	return w ? WS_DEFLATE_E_INVAL : 0;
}

/* ------------------------------------------------------------------ */
/* Negotiation: RFC 6455 §9.1 grammar, RFC 7692 §7.1 semantics          */
/* ------------------------------------------------------------------ */

/* tchar (RFC 7230 §3.2.6), which RFC 6455's token means. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

struct scan {
	const char *p, *end;
};

static void skip_ows(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
		s->p++;
}

static size_t scan_token(struct scan *s)
{
	const char *start = s->p;
	while (s->p < s->end && is_tchar((unsigned char)*s->p))
		s->p++;
	return (size_t)(s->p - start);
}

#define VALUE_MAX 16  /* longer values are kept only as "too long" */

struct value {
	bool present;
	bool too_long;
	size_t len;
	char text[VALUE_MAX];
};

static void value_add(struct value *v, char c)
{
	if (v->len < VALUE_MAX)
		v->text[v->len] = c;
	else
		v->too_long = true;
	v->len++;
}

/* A parameter value: token / quoted-string whose unescaped content is a
 * token (RFC 6455 §9.1). Returns false on a grammar error. */
static bool scan_value(struct scan *s, struct value *v, const char **why)
{
	v->present = true;
	if (s->p < s->end && *s->p == '"') {
		s->p++;
		for (;;) {
			if (s->p == s->end) {
				*why = "unterminated quoted-string in Sec-WebSocket-Extensions";
				return false;
			}
			unsigned char c = (unsigned char)*s->p++;
			if (c == '"')
				break;
			if (c == '\\') {
				if (s->p == s->end) {
					*why = "unterminated quoted-string in Sec-WebSocket-Extensions";
					return false;
				}
				c = (unsigned char)*s->p++;
			}
			/* Whatever is quoted must still be a token once unquoted. */
			if (!is_tchar(c)) {
				*why = "quoted parameter value is not a token (RFC 6455 §9.1)";
				return false;
			}
			value_add(v, (char)c);
		}
		if (v->len == 0) {
			*why = "empty quoted parameter value in Sec-WebSocket-Extensions";
			return false;
		}
		return true;
	}
	const char *start = s->p;
	size_t n = scan_token(s);
	if (n == 0) {
		*why = "parameter value missing after '=' in Sec-WebSocket-Extensions";
		return false;
	}
	for (size_t i = 0; i < n; i++)
		value_add(v, start[i]);
	return true;
}

/* Window bits: 1*DIGIT without leading zeros, 8..15 (§7.1.2.1, §7.1.2.2).
 * Returns the value or 0. */
static unsigned window_bits_value(const struct value *v)
{
	if (v->too_long || v->len == 0 || v->len > 2 || v->text[0] == '0')
		return 0;
	unsigned n = 0;
	for (size_t i = 0; i < v->len; i++) {
		if (v->text[i] < '0' || v->text[i] > '9')
			return 0;
		n = n * 10 + (unsigned)(v->text[i] - '0');
	}
	return n >= 8 && n <= 15 ? n : 0;
}

/* One permessage-deflate offer being judged. */
struct offer {
	bool declined;
	const char *why;
	bool server_nct, client_nct;
	bool has_server_bits, has_client_bits;
	unsigned server_bits;  /* valid when has_server_bits */
	unsigned client_bits;  /* 0: offered without a value */
};

static void decline(struct offer *o, const char *why)
{
	if (!o->declined) {
		o->declined = true;
		o->why = why;
	}
}

static void offer_param(struct offer *o, const char *name, size_t n, const struct value *v)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
	bool *seen;
	if (IS("server_no_context_takeover"))
		seen = &o->server_nct;
	else if (IS("client_no_context_takeover"))
		seen = &o->client_nct;
	else if (IS("server_max_window_bits"))
		seen = &o->has_server_bits;
	else if (IS("client_max_window_bits"))
		seen = &o->has_client_bits;
	else {
		decline(o, "unknown parameter in a permessage-deflate offer");
		return;
	}
	if (*seen) {
		decline(o, "duplicate parameter in a permessage-deflate offer");
		return;
	}
	*seen = true;
	if (seen == &o->server_nct || seen == &o->client_nct) {
		/* §7.1.1.1, §7.1.1.2: these parameters have no value. */
		if (v->present)
			decline(o, "a no_context_takeover parameter with a value in a permessage-deflate offer");
	} else if (seen == &o->has_server_bits) {
		/* §7.1.2.1: the value is required in an offer. */
		o->server_bits = v->present ? window_bits_value(v) : 0;
		if (o->server_bits == 0)
			decline(o, "server_max_window_bits is not 8..15 in a permessage-deflate offer");
	} else {
		/* §7.1.2.2: the value is optional. */
		o->client_bits = v->present ? window_bits_value(v) : 0;
		if (v->present && o->client_bits == 0)
			decline(o, "client_max_window_bits is not 8..15 in a permessage-deflate offer");
	}
#undef IS
}

static unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }

/* Builds the agreed parameters and the response for an acceptable offer. */
static int accept_offer(const struct ws_deflate_config *cfg, const struct offer *o,
			struct ws_deflate_params *out, char *response, size_t cap)
{
	struct ws_deflate_params p;
	p.server_no_context_takeover = o->server_nct || cfg->server_no_context_takeover;
	p.client_no_context_takeover = o->client_nct || cfg->client_no_context_takeover;
	p.server_max_window_bits = o->has_server_bits ? umin(o->server_bits, cfg->server_max_window_bits)
						      : cfg->server_max_window_bits;
	bool say_server_bits = o->has_server_bits || p.server_max_window_bits < 15;
	bool say_client_bits = false;
	p.client_max_window_bits = 15;
	if (o->has_client_bits) {
		unsigned offered = o->client_bits ? o->client_bits : 15;
		p.client_max_window_bits = umin(offered, cfg->client_max_window_bits);
		say_client_bits = o->client_bits != 0 || p.client_max_window_bits < 15;
	}
	int n = snprintf(response, cap, "%s%s%s", WS_DEFLATE_NAME,
			 p.server_no_context_takeover ? "; server_no_context_takeover" : "",
			 p.client_no_context_takeover ? "; client_no_context_takeover" : "");
	if (n < 0 || (size_t)n >= cap)
		return WS_DEFLATE_E_INVAL;
	size_t len = (size_t)n;
	if (say_server_bits) {
		n = snprintf(response + len, cap - len, "; server_max_window_bits=%u", p.server_max_window_bits);
		if (n < 0 || (size_t)n >= cap - len)
			return WS_DEFLATE_E_INVAL;
		len += (size_t)n;
	}
	if (say_client_bits) {
		n = snprintf(response + len, cap - len, "; client_max_window_bits=%u", p.client_max_window_bits);
		if (n < 0 || (size_t)n >= cap - len)
			return WS_DEFLATE_E_INVAL;
	}
	*out = p;
	return 1;
}

int ws_deflate_negotiate(const struct ws_deflate_config *cfg, const char *const *values,
			 const size_t *lens, size_t nvalues, struct ws_deflate_params *out,
			 char *response, size_t cap, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = "the client offers no permessage-deflate";
	if (cap > 0)
		response[0] = '\0';
	if (!cfg->enabled) {
		*why = "compression is disabled";
		return 0;
	}
	if (cap < WS_DEFLATE_RESPONSE_MAX) {
		*why = "response buffer too small";
		return WS_DEFLATE_E_INVAL;
	}
	/* The whole header is parsed even after an offer is chosen, so that
	 * the verdict on its syntax does not depend on where the error is. */
	struct offer chosen = { 0 };
	bool have_chosen = false;
	const char *decline_why = NULL;
	for (size_t i = 0; i < nvalues; i++) {
		if (lens[i] == 0)
			continue;
		struct scan s = { values[i], values[i] + lens[i] };
		for (;;) {
			skip_ows(&s);
			if (s.p == s.end)
				break;
			if (*s.p == ',') {  /* empty list element */
				s.p++;
				continue;
			}
			const char *ext = s.p;
			size_t ext_len = scan_token(&s);
			if (ext_len == 0) {
				*why = "extension name expected in Sec-WebSocket-Extensions";
				return WS_DEFLATE_E_SYNTAX;
			}
			bool ours = !have_chosen && ext_len == sizeof WS_DEFLATE_NAME - 1 &&
				    memcmp(ext, WS_DEFLATE_NAME, ext_len) == 0;
			struct offer o = { 0 };
			skip_ows(&s);
			while (s.p < s.end && *s.p == ';') {
				s.p++;
				skip_ows(&s);
				const char *name = s.p;
				size_t name_len = scan_token(&s);
				if (name_len == 0) {
					*why = "parameter name expected after ';' in Sec-WebSocket-Extensions";
					return WS_DEFLATE_E_SYNTAX;
				}
				skip_ows(&s);
				struct value v = { 0 };
				if (s.p < s.end && *s.p == '=') {
					s.p++;
					skip_ows(&s);
					if (!scan_value(&s, &v, why))
						return WS_DEFLATE_E_SYNTAX;
					skip_ows(&s);
				}
				if (ours)
					offer_param(&o, name, name_len, &v);
			}
			if (s.p < s.end && *s.p != ',') {
				*why = "unexpected character in Sec-WebSocket-Extensions";
				return WS_DEFLATE_E_SYNTAX;
			}
			if (ours) {
				if (o.declined) {
					decline_why = o.why;
				} else {
					chosen = o;
					have_chosen = true;
				}
			}
		}
	}
	if (!have_chosen) {
		if (decline_why)
			*why = decline_why;
		return 0;
	}
	int rc = accept_offer(cfg, &chosen, out, response, cap);
	*why = rc == 1 ? NULL : "response buffer too small";
	return rc;
}

/* ------------------------------------------------------------------ */
/* zlib memory: counted per stream and process-wide                     */
/* ------------------------------------------------------------------ */

static atomic_size_t g_mem;
static atomic_size_t g_peak;
static unsigned long g_fail_after;

void ws_deflate_fail_alloc_after(unsigned long nth) { g_fail_after = nth; }

static bool inject_failure(void)
{
	if (g_fail_after == 0)
		return false;
	return --g_fail_after == 0;
}

static void mem_add(size_t n)
{
	size_t now = atomic_fetch_add_explicit(&g_mem, n, memory_order_relaxed) + n;
	size_t peak = atomic_load_explicit(&g_peak, memory_order_relaxed);
	while (now > peak &&
	       !atomic_compare_exchange_weak_explicit(&g_peak, &peak, now, memory_order_relaxed,
						      memory_order_relaxed))
		;
}

static void mem_sub(size_t n) { atomic_fetch_sub_explicit(&g_mem, n, memory_order_relaxed); }

size_t ws_deflate_memory_total(void) { return atomic_load_explicit(&g_mem, memory_order_relaxed); }
size_t ws_deflate_memory_peak(void) { return atomic_load_explicit(&g_peak, memory_order_relaxed); }

struct ws_deflate_stream {
	z_stream z;
	size_t mem;     /* bytes held through zalloc, plus this struct */
	bool inflate;
};

/* Every zlib block carries its size in front so that zfree can count. */
#define ZHDR (sizeof(max_align_t) > sizeof(size_t) ? sizeof(max_align_t) : sizeof(size_t))

static voidpf counting_zalloc(voidpf opaque, uInt items, uInt size)
{
	size_t n = (size_t)items * size;
	if (inject_failure())
		return Z_NULL;
	unsigned char *p = malloc(ZHDR + n);
	if (!p)
		return Z_NULL;
	memcpy(p, &n, sizeof n);
	if (opaque)
		((struct ws_deflate_stream *)opaque)->mem += n;
	mem_add(n);
	return p + ZHDR;
}

static void counting_zfree(voidpf opaque, voidpf addr)
{
	if (!addr)
		return;
	unsigned char *p = (unsigned char *)addr - ZHDR;
	size_t n;
	memcpy(&n, p, sizeof n);
	if (opaque)
		((struct ws_deflate_stream *)opaque)->mem -= n;
	mem_sub(n);
	free(p);
}

static struct ws_deflate_stream *stream_new(bool inflate)
{
	if (inject_failure())
		return NULL;
	struct ws_deflate_stream *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->inflate = inflate;
	st->mem = sizeof *st;
	mem_add(sizeof *st);
	st->z.zalloc = counting_zalloc;
	st->z.zfree = counting_zfree;
	st->z.opaque = st;
	return st;
}

/* Ends a stream whose init succeeded (or never ran: zlib's *End accept a
 * stream without state) and frees it. */
static void stream_free(struct ws_deflate_stream **stp)
{
	struct ws_deflate_stream *st = *stp;
	if (!st)
		return;
	if (st->inflate)
		inflateEnd(&st->z);
	else
		deflateEnd(&st->z);
	mem_sub(sizeof *st);
	free(st);
	*stp = NULL;
}

size_t ws_deflate_memory(const struct ws_deflate *d)
{
	return (d->tx ? d->tx->mem : 0) + (d->rx ? d->rx->mem : 0);
}

const char *ws_deflate_strerror(int rc)
{
	switch (rc) {
	case 0: return "success";
	case WS_DEFLATE_E_NOMEM: return "out of memory";
	case WS_DEFLATE_E_TOOBIG: return "inflated message too big";
	case WS_DEFLATE_E_DATA: return "invalid compressed data";
	case WS_DEFLATE_E_SYNTAX: return "malformed Sec-WebSocket-Extensions header";
	case WS_DEFLATE_E_INVAL: return "invalid argument or configuration";
	default: return "unknown error";
	}
}

/* ------------------------------------------------------------------ */
/* Per-connection state                                                 */
/* ------------------------------------------------------------------ */

static bool bits_ok(unsigned b) { return b >= 8 && b <= 15; }

int ws_deflate_init(struct ws_deflate *d, const struct ws_deflate_config *cfg,
		    const struct ws_deflate_params *p)
{
	memset(d, 0, sizeof *d);
	if (ws_deflate_config_check(cfg, NULL) < 0 || !bits_ok(p->server_max_window_bits) ||
	    !bits_ok(p->client_max_window_bits))
		return WS_DEFLATE_E_INVAL;
	d->p = *p;
	d->level = cfg->level;
	d->mem_level = cfg->mem_level;
	d->threshold = cfg->threshold;
	return 0;
}

void ws_deflate_free(struct ws_deflate *d)
{
	stream_free(&d->tx);
	stream_free(&d->rx);
	d->tx_in_msg = d->rx_in_msg = d->rx_stream_end = false;
	d->tx_msg = d->rx_msg = d->rx_out = 0;
}

/* zlib counts in uInt; larger inputs go in slices. */
#define SLICE ((size_t)1 << 30)

/* ------------------------------------------------------------------ */
/* Inflate                                                              */
/* ------------------------------------------------------------------ */

static const uint8_t TAIL[4] = { 0x00, 0x00, 0xff, 0xff };

static int rx_fail(struct ws_deflate *d, int rc)
{
	stream_free(&d->rx);
	d->rx_err = rc;
	d->rx_in_msg = d->rx_stream_end = false;
	return rc;
}

static int rx_open(struct ws_deflate *d)
{
	if (d->rx)
		return 0;
	d->rx = stream_new(true);
	if (!d->rx)
		return WS_DEFLATE_E_NOMEM;
	/* Raw DEFLATE with the agreed window: a client that reaches further
	 * back than it agreed to is refused ("invalid distance too far
	 * back"). zlib inflates with 8 bits; only its deflate lacks 8. */
	int zrc = inflateInit2(&d->rx->z, -(int)d->p.client_max_window_bits);
	if (zrc != Z_OK) {
		/* inflateInit2 frees its own state on failure. */
		mem_sub(sizeof *d->rx);
		free(d->rx);
		d->rx = NULL;
		return zrc == Z_MEM_ERROR ? WS_DEFLATE_E_NOMEM : WS_DEFLATE_E_INVAL;
	}
	d->rx_stream_end = false;
	return 0;
}

/* A block with BFINAL set ended zlib's stream, but RFC 7692 §7.2.1 lets
 * more blocks follow (in the same message or the next one) and the LZ77
 * window carries on across it. Restart the stream with its own window as
 * the dictionary. */
static int rx_restart(struct ws_deflate *d)
{
	z_stream *z = &d->rx->z;
	size_t wsize = (size_t)1 << d->p.client_max_window_bits;
	unsigned char *win = inject_failure() ? NULL : malloc(wsize);
	if (!win)
		return WS_DEFLATE_E_NOMEM;
	uInt n = 0;
	int zrc = inflateGetDictionary(z, win, &n);
	if (zrc == Z_OK)
		zrc = inflateReset(z);
	if (zrc == Z_OK && n > 0)
		zrc = inflateSetDictionary(z, win, n);
	free(win);
	if (zrc != Z_OK)
		return zrc == Z_MEM_ERROR ? WS_DEFLATE_E_NOMEM : WS_DEFLATE_E_DATA;
	d->rx_stream_end = false;
	return 0;
}

/* Grows out for inflation, never beyond len + room (room = what this
 * message may still produce, plus the one byte that tells "too big"). */
static int out_grow(struct buf *out, size_t room)
{
	size_t limit = out->len + room;
	if (limit < out->len)
		limit = SIZE_MAX;
	if (out->cap >= limit)
		return 0;
	size_t cap = out->cap ? out->cap : 256;
	if (cap <= SIZE_MAX / 2)
		cap *= 2;
	if (cap < out->len + 256 && out->len + 256 > out->len)
		cap = out->len + 256;
	if (cap > limit)
		cap = limit;
	if (inject_failure())
		return WS_DEFLATE_E_NOMEM;
	uint8_t *p = realloc(out->data, cap);
	if (!p)
		return WS_DEFLATE_E_NOMEM;
	out->data = p;
	out->cap = cap;
	return 0;
}

/* Runs in[0..len) through the inflate stream into out. */
static int rx_run(struct ws_deflate *d, const uint8_t *in, size_t len, size_t max_size,
		  struct buf *out)
{
	z_stream *z = &d->rx->z;
	while (len > 0) {
		if (d->rx_stream_end) {
			int rc = rx_restart(d);
			if (rc < 0)
				return rc;
		}
		size_t slice = len < SLICE ? len : SLICE;
		z->next_in = (Bytef *)(uintptr_t)in;
		z->avail_in = (uInt)slice;
		for (;;) {
			/* The bytes this message may still produce, plus one:
			 * producing that one is how "too big" is seen. */
			size_t room = max_size - d->rx_out;
			room = room == SIZE_MAX ? SIZE_MAX : room + 1;
			if (out->cap == out->len) {
				int rc = out_grow(out, room);
				if (rc < 0)
					return rc;
			}
			size_t space = out->cap - out->len;
			if (space > room)
				space = room;
			if (space > SLICE)
				space = SLICE;
			z->next_out = out->data + out->len;
			z->avail_out = (uInt)space;
			int zrc = inflate(z, Z_SYNC_FLUSH);
			size_t produced = space - z->avail_out;
			out->len += produced;
			d->rx_out += produced;
			if (d->rx_out > max_size)
				return WS_DEFLATE_E_TOOBIG;
			if (zrc == Z_STREAM_END) {
				if (z->avail_in == 0) {
					d->rx_stream_end = true;
					break;
				}
				int rc = rx_restart(d);
				if (rc < 0)
					return rc;
				continue;
			}
			if (zrc == Z_MEM_ERROR)
				return WS_DEFLATE_E_NOMEM;
			if (zrc != Z_OK && zrc != Z_BUF_ERROR)
				return WS_DEFLATE_E_DATA;  /* Z_DATA_ERROR, Z_NEED_DICT */
			/* Done with this slice when all input is in and zlib
			 * had room to spare (nothing left pending). */
			if (z->avail_in == 0 && z->avail_out > 0)
				break;
		}
		in += slice;
		len -= slice;
	}
	return 0;
}

int ws_deflate_inflate_feed(struct ws_deflate *d, const uint8_t *in, size_t len,
			    size_t max_size, struct buf *out)
{
	if (d->rx_err)
		return d->rx_err;
	if (!d->rx_in_msg) {
		d->rx_in_msg = true;
		d->rx_msg = 0;
		d->rx_out = 0;
	}
	if (len == 0)
		return 0;
	int rc = rx_open(d);
	if (rc < 0)
		return rx_fail(d, rc);
	d->rx_msg += len;
	rc = rx_run(d, in, len, max_size, out);
	return rc < 0 ? rx_fail(d, rc) : 0;
}

int ws_deflate_inflate_end(struct ws_deflate *d, size_t max_size, struct buf *out)
{
	if (d->rx_err)
		return d->rx_err;
	bool empty = !d->rx_in_msg || d->rx_msg == 0;
	d->rx_in_msg = false;
	if (empty)
		return 0;  /* the empty message; the window is untouched */
	/* A message whose last block had BFINAL set and nothing after it is
	 * complete as it is (RFC 7692 §7.2.3.4 adds a 0x00 octet after such a
	 * block so that the appended tail parses; a sender that leaves it out
	 * has still said everything). */
	if (!d->rx_stream_end) {
		size_t before = d->rx_out;
		int rc = rx_run(d, TAIL, sizeof TAIL, max_size, out);
		if (rc < 0)
			return rx_fail(d, rc);
		/* The tail completes an empty stored block whose header bits
		 * end the payload, so it yields no data and leaves the stream
		 * between blocks (data_type 128, zlib.h) with no bits left over
		 * (data_type's low bits). Anything else is a message cut short,
		 * its tail read as the rest of a compressed block. (A payload
		 * ending in the header of a final stored block, 0x01, ends the
		 * stream instead: as good.) */
		if (d->rx_out != before || (!d->rx_stream_end && (d->rx->z.data_type & 0xff) != 128))
			return rx_fail(d, WS_DEFLATE_E_DATA);
	}
	if (d->p.client_no_context_takeover)
		stream_free(&d->rx);  /* §7.2.2: each message starts empty */
	return 0;
}

int ws_deflate_inflate(struct ws_deflate *d, const uint8_t *in, size_t len, size_t max_size,
		       struct buf *out)
{
	int rc = ws_deflate_inflate_feed(d, in, len, max_size, out);
	return rc < 0 ? rc : ws_deflate_inflate_end(d, max_size, out);
}

/* ------------------------------------------------------------------ */
/* Deflate                                                              */
/* ------------------------------------------------------------------ */

/* zlib's deflate has no 256-byte window: deflateInit2 refuses raw -8
 * (zlib >= 1.2.9; older versions silently used 9). A 9-bit zlib window
 * is fine for a peer that agreed to 8: zlib never emits a distance above
 * w_size - MIN_LOOKAHEAD = 512 - 262 = 250 (MAX_DIST in deflate.h), which
 * a 256-byte window decodes. test_ws_deflate checks this with a strict
 * 8-bit inflater. */
static int zlib_bits(unsigned bits) { return bits < 9 ? 9 : (int)bits; }

static int z_deflate_init(z_stream *z, int level, unsigned window_bits, unsigned mem_level)
{
	int zrc = deflateInit2(z, level, Z_DEFLATED, -zlib_bits(window_bits), (int)mem_level,
			       Z_DEFAULT_STRATEGY);
	if (zrc == Z_OK)
		return 0;
	return zrc == Z_MEM_ERROR ? WS_DEFLATE_E_NOMEM : WS_DEFLATE_E_INVAL;
}

/* Runs in[0..len) through deflate with flush, appending to out; with
 * Z_SYNC_FLUSH removes the 0x00 0x00 0xff 0xff it ends with. */
static int z_deflate_run(z_stream *z, const uint8_t *in, size_t len, int flush, struct buf *out)
{
	size_t start = out->len;
	do {
		size_t slice = len < SLICE ? len : SLICE;
		bool last = slice == len;
		int f = last ? flush : Z_NO_FLUSH;
		z->next_in = (Bytef *)(uintptr_t)in;
		z->avail_in = (uInt)slice;
		/* deflateBound covers a Z_FINISH; a sync flush adds at most a
		 * few bytes more, and the loop below grows anyway. */
		size_t want = (size_t)deflateBound(z, (uLong)slice) + 16;
		for (;;) {
			if (out->cap - out->len < 64 || out->cap - out->len < want) {
				if (inject_failure() || buf_reserve(out, want) < 0)
					return WS_DEFLATE_E_NOMEM;
			}
			size_t space = out->cap - out->len;
			if (space > SLICE)
				space = SLICE;
			z->next_out = out->data + out->len;
			z->avail_out = (uInt)space;
			int zrc = deflate(z, f);
			out->len += space - z->avail_out;
			if (zrc != Z_OK && zrc != Z_BUF_ERROR)
				return WS_DEFLATE_E_INVAL;  /* Z_STREAM_ERROR: a bug */
			/* Done when zlib stopped with output room left over. */
			if (z->avail_in == 0 && z->avail_out > 0)
				break;
			want = 4096;
		}
		in += slice;
		len -= slice;
	} while (len > 0);
	if (flush == Z_SYNC_FLUSH) {
		/* §7.2.1 step 3. A sync flush always ends with an empty stored
		 * block whose LEN/NLEN bytes are written by this very call. */
		if (out->len - start < 4 || memcmp(out->data + out->len - 4, TAIL, 4) != 0)
			return WS_DEFLATE_E_INVAL;
		out->len -= 4;
	}
	return 0;
}

static int tx_fail(struct ws_deflate *d, int rc)
{
	stream_free(&d->tx);
	d->tx_err = rc;
	d->tx_in_msg = false;
	return rc;
}

int ws_deflate_compress_feed(struct ws_deflate *d, const uint8_t *in, size_t len, bool fin,
			     struct buf *out)
{
	if (d->tx_err)
		return d->tx_err;
	if (!d->tx_in_msg) {
		d->tx_in_msg = true;
		d->tx_msg = 0;
	}
	if (fin && d->tx_msg == 0 && len == 0) {
		/* The empty message: one empty stored block, tail removed
		 * (§7.2.3.6). zlib is not asked: after a sync flush it would
		 * emit nothing at all for a second, empty one. */
		d->tx_in_msg = false;
		if (inject_failure() || buf_append(out, "", 1) < 0)
			return tx_fail(d, WS_DEFLATE_E_NOMEM);
		return 0;
	}
	if (len == 0 && !fin)
		return 0;
	if (!d->tx) {
		d->tx = stream_new(false);
		if (!d->tx)
			return tx_fail(d, WS_DEFLATE_E_NOMEM);
		int rc = z_deflate_init(&d->tx->z, d->level, d->p.server_max_window_bits, d->mem_level);
		if (rc < 0)
			return tx_fail(d, rc);
	}
	d->tx_msg += len;
	int rc = z_deflate_run(&d->tx->z, in, len, fin ? Z_SYNC_FLUSH : Z_NO_FLUSH, out);
	if (rc < 0)
		return tx_fail(d, rc);
	if (fin) {
		d->tx_in_msg = false;
		if (d->p.server_no_context_takeover)
			stream_free(&d->tx);  /* §7.2.1: the next message starts empty */
	}
	return 0;
}

int ws_deflate_compress(struct ws_deflate *d, const uint8_t *in, size_t len, struct buf *out)
{
	return ws_deflate_compress_feed(d, in, len, true, out);
}

int ws_deflate_compress_oneshot(const struct ws_deflate_config *cfg, unsigned window_bits,
				const uint8_t *in, size_t len, struct buf *out)
{
	if (ws_deflate_config_check(cfg, NULL) < 0 || !bits_ok(window_bits))
		return WS_DEFLATE_E_INVAL;
	if (len == 0)
		return inject_failure() || buf_append(out, "", 1) < 0 ? WS_DEFLATE_E_NOMEM : 0;
	z_stream z;
	memset(&z, 0, sizeof z);
	z.zalloc = counting_zalloc;
	z.zfree = counting_zfree;
	z.opaque = NULL;
	int rc = z_deflate_init(&z, cfg->level, window_bits, cfg->mem_level);
	if (rc < 0)
		return rc;
	size_t start = out->len;
	rc = z_deflate_run(&z, in, len, Z_SYNC_FLUSH, out);
	deflateEnd(&z);
	if (rc < 0)
		out->len = start;
	return rc;
}
