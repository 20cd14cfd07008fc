/* fuzz_client_parse — what libmbgw-client parses from a server (servers
 * can be hostile too): HTTP response heads and the checks of the 101
 * answer (sdk/client/client_http.c), permessage-deflate answers, and the
 * frame reader with inflation (sdk/client/client_reader.c); plus URLs,
 * proxy URLs and no_proxy lists (client_url.c).
 *
 * Input layout:
 *   byte 0   bits 0-1 mode: 0 response head + 101 checks, 1 frames,
 *            2 extension answer, 3 URLs; bits 2-7 piece length - 1 for
 *            feeding frames in pieces
 *   rest     the bytes under test
 *
 * Checks:
 *  - cl_http_parse returns -1, 0 or a head length <= the input; a head
 *    accepted whole is never refused for a prefix, and every prefix of it
 *    is "need more"; headers point inside the head;
 *  - cl_handshake_check never accepts a status other than 101, never a
 *    subprotocol we did not offer, and fills a NUL-terminated result;
 *  - the frame reader, fed the same bytes whole and in pieces, produces
 *    the same events (it buffers nothing itself beyond the message), never
 *    a message larger than the limit, only valid UTF-8 text, and consumes
 *    only bytes it was given;
 *  - URL parsing yields a port > 0, a path starting with '/', and a Host
 *    value that names the host.
 */
#include <stdbool.h>
#include <string.h>

#include "client_internal.h"
#include "fuzz_common.h"

#define MAX_MSG 65536

static void fuzz_head(const uint8_t *p, size_t n)
{
	struct cl_http_resp r;
	char err[200];
	int hl = cl_http_parse((const char *)p, n, &r, err, sizeof err);
	CHECK(hl >= -1 && hl <= (int)n, "head length %d of %zu", hl, n);
	if (hl <= 0)
		return;
	for (size_t i = 0; i < r.nh; i++) {
		CHECK((const uint8_t *)r.h[i].name >= p && (const uint8_t *)r.h[i].value + r.h[i].value_len <= p + hl,
		      "header %zu outside the head", i);
	}
	/* Every prefix is "need more" (or refused early only if it can never
	 * be a head, which a complete valid head contradicts). */
	for (size_t k = 0; k < (size_t)hl; k += 1 + k / 8) {
		struct cl_http_resp r2;
		int h2 = cl_http_parse((const char *)p, k, &r2, err, sizeof err);
		CHECK(h2 == 0, "prefix %zu of an accepted head gave %d (%s)", k, h2, err);
	}
	static const char *const protos[] = { "chat.v1", "x" };
	struct cl_hs_offer o = { "dGhlIHNhbXBsZSBub25jZQ==", protos, 2, true };
	struct cl_hs_result res;
	int rc = cl_handshake_check(&r, &o, &res, err, sizeof err);
	if (rc == 0) {
		CHECK(r.status == 101, "accepted status %d", r.status);
		CHECK(!res.subprotocol[0] || !strcmp(res.subprotocol, "chat.v1") || !strcmp(res.subprotocol, "x"),
		      "accepted subprotocol %s", res.subprotocol);
		CHECK(memchr(res.extensions, 0, sizeof res.extensions), "extensions not terminated");
		if (res.deflate) {
			CHECK(res.dp.server_max_window_bits >= 8 && res.dp.server_max_window_bits <= 15, "bits");
			CHECK(res.dp.client_max_window_bits >= 8 && res.dp.client_max_window_bits <= 15, "bits");
		}
	} else {
		CHECK(rc == -1 && err[0], "refusal without a reason");
	}
}

struct evlog {
	char kinds[64];
	size_t n;
	uint64_t sum;
};

static void note(struct evlog *l, const struct cl_event *ev)
{
	if (l->n < sizeof l->kinds)
		l->kinds[l->n++] = (char)('0' + ev->kind);
	for (size_t i = 0; i < ev->len; i++)
		l->sum = l->sum * 31 + ev->data[i];
	l->sum += ev->code;
}

/* Runs the reader over p[0..n) in pieces of `piece` bytes, with a
 * client-side inflater, like the client's read loop. */
static void run_reader(const uint8_t *p, size_t n, size_t piece, struct evlog *log)
{
	struct ws_deflate_config cfg;
	ws_deflate_config_default(&cfg);
	struct ws_deflate_params dp = { false, false, 15, 15 };
	struct ws_deflate d;
	CHECK(ws_deflate_init(&d, &cfg, &dp) == 0, "deflate init");
	struct cl_reader r;
	memset(&r, 0, sizeof r);
	cl_reader_init(&r, MAX_MSG, &d);
	uint8_t *in = malloc(n + 1);
	size_t have = 0, off = 0;
	memset(log, 0, sizeof *log);
	bool dead = false;
	while (!dead && off < n) {
		size_t k = n - off < piece ? n - off : piece;
		memcpy(in + have, p + off, k);
		have += k;
		off += k;
		for (;;) {
			struct cl_event ev;
			size_t used = cl_reader_next(&r, in, have, &ev);
			CHECK(used <= have, "consumed %zu of %zu", used, have);
			if (ev.kind == CL_EV_ERROR) {
				CHECK(ev.code >= 1000 && ev.code <= 1011 && ev.reason[0], "error %u", ev.code);
				note(log, &ev);
				dead = true;
				break;
			}
			if (used == 0)
				break;
			if (ev.kind == CL_EV_MESSAGE) {
				CHECK(ev.len <= MAX_MSG, "message of %zu bytes", ev.len);
				CHECK(ev.data[ev.len] == 0, "no NUL after the message");
				if (ev.opcode == WS_OP_TEXT)
					CHECK(ws_utf8_valid(ev.data, ev.len), "invalid UTF-8 delivered");
			}
			if (ev.kind != CL_EV_NONE)
				note(log, &ev);
			memmove(in, in + used, have - used);
			have -= used;
		}
	}
	free(in);
	cl_reader_free(&r);
	ws_deflate_free(&d);
}

static void fuzz_frames(const uint8_t *p, size_t n, size_t piece)
{
	struct evlog whole, pieces;
	run_reader(p, n, n ? n : 1, &whole);
	run_reader(p, n, piece, &pieces);
	CHECK(whole.n == pieces.n && !memcmp(whole.kinds, pieces.kinds, whole.n) && whole.sum == pieces.sum,
	      "events differ whole (%.*s) and in pieces of %zu (%.*s)", (int)whole.n, whole.kinds, piece,
	      (int)pieces.n, pieces.kinds);
}

static void fuzz_ext(const uint8_t *p, size_t n)
{
	struct cl_deflate_agreed a;
	char err[200];
	int rc = cl_deflate_response((const char *)p, n, n & 1, &a, err, sizeof err);
	CHECK(rc == 1 || rc == -1, "rc %d", rc);
	if (rc == 1)
		CHECK(a.server_max_window_bits >= 8 && a.server_max_window_bits <= 15 &&
		      a.client_max_window_bits >= 8 && a.client_max_window_bits <= 15, "window bits");
}

static void fuzz_urls(const uint8_t *p, size_t n)
{
	char s[4096];
	if (n >= sizeof s)
		n = sizeof s - 1;
	memcpy(s, p, n);
	s[n] = 0;
	struct cl_url u;
	char err[300];
	if (cl_url_parse(s, &u, err, sizeof err) == 0) {
		CHECK(u.port > 0 && u.path[0] == '/' && u.host[0], "url %s", s);
		CHECK(strstr(u.hostport, u.host) != NULL, "Host %s lacks %s", u.hostport, u.host);
	}
	struct cl_proxy px;
	if (cl_proxy_parse(s, &px, err, sizeof err) == 0)
		CHECK(px.port > 0 && px.host[0], "proxy %s", s);
	cl_no_proxy_match(s, "a.example.com");
	cl_no_proxy_match("example.com,.x", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3;
	size_t piece = (size_t)(data[0] >> 2) + 1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (mode) {
	case 0:
		fuzz_head(p, n);
		break;
	case 1:
		fuzz_frames(p, n, piece);
		break;
	case 2:
		fuzz_ext(p, n);
		break;
	default:
		fuzz_urls(p, n);
		break;
	}
	return 0;
}
