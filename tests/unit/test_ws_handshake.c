/* test_ws_handshake — the server side of the RFC 6455 §4.2 handshake.
 *
 * Requests are parsed with http_parser exactly as the server does, then
 * judged by ws_handshake_check: 101 with the right accept key and
 * subprotocol, or the documented refusal (405, 400, 426). Subprotocol
 * selection follows the server's order of preference among what the
 * client offers and never picks one the client did not offer.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_handshake.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

struct parsed {
	char text[2048];
	struct http_request req;
};

/* Parses "METHOD / HTTP/1.1" followed by the given header lines (each
 * without CRLF; NULL ends the list). */
static struct parsed *parse_req(const char *request_line, const char *const *headers)
{
	struct parsed *p = calloc(1, sizeof *p);
	cr_assert(p);
	size_t n = (size_t)snprintf(p->text, sizeof p->text, "%s\r\n", request_line);
	for (size_t i = 0; headers[i]; i++)
		n += (size_t)snprintf(p->text + n, sizeof p->text - n, "%s\r\n", headers[i]);
	n += (size_t)snprintf(p->text + n, sizeof p->text - n, "\r\n");
	cr_assert_lt(n, sizeof p->text);
	struct http_limits lim = { sizeof p->text, 64 };
	struct http_error err = { 0 };
	ssize_t r = http_parse_request(p->text, n, &lim, &p->req, &err);
	cr_assert_eq(r, (ssize_t)n, "test request does not parse: %d %s", err.status, err.reason);
	return p;
}

static bool check(const char *request_line, const char *const *headers, const char *const *protos,
		  size_t nprotos, bool require, struct ws_handshake_result *res)
{
	struct parsed *p = parse_req(request_line, headers);
	memset(res, 0xAB, sizeof *res);
	bool ok = ws_handshake_check(&p->req, protos, nprotos, require, res);
	free(p);
	return ok;
}

static void assert_refused(const char *request_line, const char *const *headers, int status)
{
	struct ws_handshake_result res;
	cr_assert_not(check(request_line, headers, NULL, 0, false, &res), "must be refused with %d",
		      status);
	cr_assert_eq(res.status, status, "status %d (%s), expected %d", res.status, res.reason, status);
	cr_assert(res.reason && *res.reason);
	cr_assert_null(res.subprotocol);
}

#define GOOD_HEADERS "Host: example.com", "Upgrade: websocket", "Connection: Upgrade", \
	"Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13"

/* ---- accept key and key syntax ------------------------------------------- */

Test(ws_handshake, accept_key_rfc_example)
{
	char out[WS_ACCEPT_LEN + 1];
	memset(out, 'x', sizeof out);
	ws_accept_key(KEY, strlen(KEY), out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* A second well-known pair. */
	ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
	cr_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	/* Only key_len bytes are hashed. */
	ws_accept_key(KEY "garbage", strlen(KEY), out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static bool key_ok(const char *k)
{
	return ws_key_valid(k, strlen(k));
}

Test(ws_handshake, key_syntax)
{
	cr_assert(key_ok(KEY));
	cr_assert(key_ok("x3JJHMbDL1EzLkh9GBhXDw=="));
	cr_assert(key_ok("AAAAAAAAAAAAAAAAAAAAAA=="));
	cr_assert(key_ok("/////////////////////w=="));
	cr_assert(key_ok("+++++++++++++++++++++g=="));
	/* wrong length */
	cr_assert_not(key_ok(""));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZQ="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZQ==="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZQ"));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZQAA"));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZQ==dGhl"));
	/* 17 or 15 bytes encoded */
	cr_assert_not(key_ok("AAAAAAAAAAAAAAAAAAAAAAA="));
	cr_assert_not(key_ok("AAAAAAAAAAAAAAAAAAAA"));
	/* characters outside base64 */
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZ!=="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25j Q=="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25j-Q=="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25j_Q=="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub2=jZQ=="));
	/* padding bits: the 22nd character carries 2 bits, the low 4 are 0 */
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZR=="));
	cr_assert_not(key_ok("dGhlIHNhbXBsZSBub25jZB=="));
	cr_assert_not(key_ok("AAAAAAAAAAAAAAAAAAAAAP=="));
	cr_assert(key_ok("AAAAAAAAAAAAAAAAAAAAAQ=="));
	cr_assert(key_ok("AAAAAAAAAAAAAAAAAAAAAg=="));
	cr_assert(key_ok("AAAAAAAAAAAAAAAAAAAAAw=="));
	/* every last data character: valid iff its low 4 bits are zero */
	const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int v = 0; v < 64; v++) {
		char k[25] = "AAAAAAAAAAAAAAAAAAAAAA==";
		k[21] = b64[v];
		cr_assert_eq(key_ok(k), (v & 15) == 0, "last character %c", b64[v]);
	}
}

/* ---- ws_handshake_check ------------------------------------------------------ */

Test(ws_handshake, success)
{
	const char *h[] = { GOOD_HEADERS, NULL };
	struct ws_handshake_result res;
	cr_assert(check("GET /chat HTTP/1.1", h, NULL, 0, false, &res));
	cr_assert_eq(res.status, 101);
	cr_assert_str_eq(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	cr_assert_null(res.subprotocol);
}

Test(ws_handshake, header_spelling_is_flexible)
{
	const char *h[] = {
		"host: example.com", "upgrade: WebSocket", "connection: keep-alive, Upgrade",
		"sec-websocket-key: " KEY, "sec-websocket-version: 13", "Origin: http://example.com", NULL
	};
	struct ws_handshake_result res;
	cr_assert(check("GET /chat HTTP/1.1", h, NULL, 0, false, &res), "%d %s", res.status, res.reason);
	cr_assert_str_eq(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* Connection split over two header lines. */
	const char *h2[] = { "Host: x", "Upgrade: websocket", "Connection: keep-alive",
			     "Connection: upgrade", "Sec-WebSocket-Key: " KEY,
			     "Sec-WebSocket-Version: 13", NULL };
	cr_assert(check("GET / HTTP/1.1", h2, NULL, 0, false, &res), "%d %s", res.status, res.reason);
}

Test(ws_handshake, is_upgrade)
{
	const char *yes[] = { "Host: x", "Upgrade: websocket", NULL };
	const char *no[] = { "Host: x", "Upgrade: h2c", NULL };
	const char *none[] = { "Host: x", NULL };
	struct parsed *p = parse_req("GET / HTTP/1.1", yes);
	cr_assert(ws_handshake_is_upgrade(&p->req));
	free(p);
	p = parse_req("GET / HTTP/1.1", no);
	cr_assert_not(ws_handshake_is_upgrade(&p->req));
	free(p);
	p = parse_req("GET / HTTP/1.1", none);
	cr_assert_not(ws_handshake_is_upgrade(&p->req));
	free(p);
}

Test(ws_handshake, method_must_be_get)
{
	const char *h[] = { GOOD_HEADERS, NULL };
	assert_refused("POST /chat HTTP/1.1", h, 405);
	assert_refused("HEAD /chat HTTP/1.1", h, 405);
	assert_refused("get /chat HTTP/1.1", h, 405);
}

Test(ws_handshake, http_1_0_refused)
{
	const char *h[] = { GOOD_HEADERS, NULL };
	assert_refused("GET /chat HTTP/1.0", h, 400);
}

Test(ws_handshake, upgrade_header)
{
	const char *missing[] = { "Host: x", "Connection: Upgrade", "Sec-WebSocket-Key: " KEY,
				  "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", missing, 426);
	const char *wrong[] = { "Host: x", "Upgrade: h2c", "Connection: Upgrade",
				"Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", wrong, 426);
	const char *similar[] = { "Host: x", "Upgrade: websockets", "Connection: Upgrade",
				  "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", similar, 426);
}

Test(ws_handshake, connection_header)
{
	const char *missing[] = { "Host: x", "Upgrade: websocket", "Sec-WebSocket-Key: " KEY,
				  "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", missing, 400);
	const char *wrong[] = { "Host: x", "Upgrade: websocket", "Connection: keep-alive",
				"Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", wrong, 400);
	const char *similar[] = { "Host: x", "Upgrade: websocket", "Connection: upgraded",
				  "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", similar, 400);
}

Test(ws_handshake, version)
{
	const char *v8[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			     "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 8", NULL };
	assert_refused("GET / HTTP/1.1", v8, 426);
	const char *none[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			       "Sec-WebSocket-Key: " KEY, NULL };
	assert_refused("GET / HTTP/1.1", none, 426);
	const char *two[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			      "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13",
			      "Sec-WebSocket-Version: 8", NULL };
	assert_refused("GET / HTTP/1.1", two, 426);
	const char *list[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			       "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 13, 8", NULL };
	assert_refused("GET / HTTP/1.1", list, 426);
	const char *v130[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			       "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Version: 130", NULL };
	assert_refused("GET / HTTP/1.1", v130, 426);
}

Test(ws_handshake, key_header)
{
	const char *bad[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			      "Sec-WebSocket-Key: not-a-key", "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", bad, 400);
	const char *bits[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", bits, 400);
	const char *missing[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
				  "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", missing, 400);
	const char *two[] = { "Host: x", "Upgrade: websocket", "Connection: Upgrade",
			      "Sec-WebSocket-Key: " KEY, "Sec-WebSocket-Key: " KEY,
			      "Sec-WebSocket-Version: 13", NULL };
	assert_refused("GET / HTTP/1.1", two, 400);
}

/* ---- subprotocols ------------------------------------------------------------ */

static const char *select_proto(const char *offer, const char *const *protos, size_t n, bool require,
				int *status)
{
	const char *h[8] = { GOOD_HEADERS, NULL, NULL };
	char line[256];
	if (offer) {
		snprintf(line, sizeof line, "Sec-WebSocket-Protocol: %s", offer);
		h[5] = line;
	}
	struct ws_handshake_result res;
	bool ok = check("GET /chat HTTP/1.1", h, protos, n, require, &res);
	*status = res.status;
	cr_assert_eq(ok, res.status == 101);
	if (ok)
		cr_assert_str_eq(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	return ok ? res.subprotocol : NULL;
}

Test(ws_handshake, subprotocol_server_order_wins)
{
	const char *protos[] = { "chat.v2", "chat.v1", "chat.v0" };
	int st;
	/* The client lists v1 first, the server prefers v2. */
	const char *got = select_proto("chat.v1, chat.v2", protos, 3, false, &st);
	cr_assert_eq(st, 101);
	cr_assert_eq(got, protos[0], "got %s", got ? got : "(none)");
	got = select_proto("chat.v0,chat.v1", protos, 3, false, &st);
	cr_assert_eq(got, protos[1]);
	got = select_proto("chat.v0", protos, 3, false, &st);
	cr_assert_eq(got, protos[2]);
	/* The result is borrowed from the server's array. */
	cr_assert_eq(select_proto(" chat.v0 ", protos, 3, false, &st), protos[2]);
}

Test(ws_handshake, subprotocol_over_several_header_lines)
{
	const char *protos[] = { "b", "a" };
	const char *h[] = { GOOD_HEADERS, "Sec-WebSocket-Protocol: x, a", "Sec-WebSocket-Protocol: b", NULL };
	struct ws_handshake_result res;
	cr_assert(check("GET / HTTP/1.1", h, protos, 2, false, &res));
	cr_assert_eq(res.subprotocol, protos[0]);
}

Test(ws_handshake, subprotocol_never_one_not_offered)
{
	const char *protos[] = { "chat.v1", "chat" };
	int st;
	cr_assert_null(select_proto("other", protos, 2, false, &st));
	cr_assert_eq(st, 101);
	cr_assert_null(select_proto(NULL, protos, 2, false, &st));
	cr_assert_eq(st, 101);
	cr_assert_null(select_proto("chat.v", protos, 1, false, &st));
	cr_assert_null(select_proto("chat.v12", protos, 1, false, &st));
	cr_assert_null(select_proto("xchat.v1", protos, 1, false, &st));
	/* "chat" is offered, "chat.v1" is not. */
	cr_assert_eq(select_proto("chat", protos, 2, false, &st), protos[1]);
	/* A server without subprotocols never picks one. */
	cr_assert_null(select_proto("chat.v1", NULL, 0, false, &st));
	cr_assert_eq(st, 101);
}

Test(ws_handshake, require_subprotocol)
{
	const char *protos[] = { "mqtt" };
	int st;
	cr_assert_null(select_proto(NULL, protos, 1, true, &st));
	cr_assert_eq(st, 400);
	cr_assert_null(select_proto("other, stomp", protos, 1, true, &st));
	cr_assert_eq(st, 400);
	cr_assert_eq(select_proto("other, mqtt", protos, 1, true, &st), protos[0]);
	cr_assert_eq(st, 101);
}

/* Subprotocol names are compared exactly: a client that offers "CHAT"
 * must not be answered with "chat", which it did not offer (browsers and
 * the npm ws client then fail the connection). */
Test(ws_handshake, subprotocol_match_is_case_sensitive)
{
	const char *protos[] = { "chat", "Chat.V2" };
	int st;
	const char *got = select_proto("CHAT", protos, 1, false, &st);
	cr_assert_null(got, "answered with '%s', which the client did not offer", got);
	cr_assert_eq(st, 101);
	cr_assert_null(select_proto("CHAT", protos, 1, true, &st));
	cr_assert_eq(st, 400);
	cr_assert_eq(select_proto("chat.v2, Chat.V2", protos, 2, false, &st), protos[1]);
}

Test(ws_handshake, offers)
{
	const char *h[] = { GOOD_HEADERS, "Sec-WebSocket-Protocol: a.v1 ,\tb", "Sec-WebSocket-Protocol: c",
			    "X-Protocol: d", NULL };
	struct parsed *p = parse_req("GET / HTTP/1.1", h);
	cr_assert(ws_handshake_offers(&p->req, "a.v1"));
	cr_assert(ws_handshake_offers(&p->req, "b"));
	cr_assert(ws_handshake_offers(&p->req, "c"));
	cr_assert_not(ws_handshake_offers(&p->req, "d"));
	cr_assert_not(ws_handshake_offers(&p->req, "A.V1"));
	cr_assert_not(ws_handshake_offers(&p->req, "a"));
	cr_assert_not(ws_handshake_offers(&p->req, ""));
	free(p);
}
