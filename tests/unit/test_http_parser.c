/* test_http_parser — the HTTP/1.1 request-head parser.
 *
 * A complete head gives its length (never counting bytes behind it), every
 * strict prefix of a good head gives "need more", and each refused form
 * gives its status: 400 for smuggling-prone syntax (bare CR/LF, obs-fold,
 * whitespace before a colon, Host missing or twice, NUL), 431 for size and
 * count limits, 501 for Transfer-Encoding, 413 for a body, 505 for other
 * HTTP versions. Also the token-list and lookup helpers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parser.h"

static const struct http_limits LIM = { 8192, 64 };

static ssize_t parse_lim(const char *s, size_t n, const struct http_limits *lim,
			 struct http_request *req, struct http_error *err)
{
	memset(err, 0, sizeof *err);
	return http_parse_request(s, n, lim, req, err);
}

static ssize_t parse(const char *s, struct http_request *req, struct http_error *err)
{
	return parse_lim(s, strlen(s), &LIM, req, err);
}

static void assert_slice(struct http_str s, const char *expect)
{
	cr_assert_eq(s.n, strlen(expect), "'%.*s' vs '%s'", (int)s.n, s.p ? s.p : "", expect);
	cr_assert_eq(memcmp(s.p, expect, s.n), 0, "'%.*s' vs '%s'", (int)s.n, s.p, expect);
}

/* Every strict prefix must be "need more" (or, when `or_status` is not 0,
 * that same error: an error may be detected early). */
static void assert_prefixes(const char *s, size_t n, int or_status)
{
	struct http_request *req = malloc(sizeof *req);
	cr_assert(req);
	for (size_t k = 0; k < n; k++) {
		struct http_error err;
		ssize_t r = parse_lim(s, k, &LIM, req, &err);
		if (r == 0)
			continue;
		if (!(or_status && r == -1 && err.status == or_status))
			cr_assert_fail("prefix %zu of %zu: rc %zd status %d (%s)", k, n, r, err.status,
				       err.reason ? err.reason : "");
	}
	free(req);
}

/* The whole request must fail with `status` (and a reason), and no prefix
 * may be accepted. */
static void assert_status(const char *s, int status)
{
	struct http_request *req = malloc(sizeof *req);
	cr_assert(req);
	struct http_error err;
	ssize_t r = parse(s, req, &err);
	cr_assert_eq(r, -1, "request must be refused with %d: %s", status, s);
	cr_assert_eq(err.status, status, "status %d (%s), expected %d for: %s", err.status,
		     err.reason, status, s);
	cr_assert(err.reason && *err.reason);
	assert_prefixes(s, strlen(s), status);
	free(req);
}

static void assert_reason(const char *s, const char *part)
{
	struct http_request req;
	struct http_error err;
	cr_assert_eq(parse(s, &req, &err), -1);
	cr_assert(strstr(err.reason, part), "reason '%s' lacks '%s'", err.reason, part);
}

#define UPGRADE_REQ \
	"GET /chat?room=1&x=%20y HTTP/1.1\r\n" \
	"Host: server.example.com\r\n" \
	"Upgrade: websocket\r\n" \
	"Connection: Upgrade\r\n" \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Origin: http://example.com\r\n" \
	"Sec-WebSocket-Protocol: chat, superchat\r\n" \
	"Sec-WebSocket-Version: 13\r\n" \
	"\r\n"

Test(http_parser, complete_request)
{
	struct http_request req;
	struct http_error err;
	const char *s = UPGRADE_REQ;
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.method, "GET");
	assert_slice(req.target, "/chat?room=1&x=%20y");
	assert_slice(req.path, "/chat");
	assert_slice(req.query, "room=1&x=%20y");
	cr_assert_eq(req.minor_version, 1);
	cr_assert_eq(req.nheaders, 7);
	assert_slice(req.headers[0].name, "Host");
	assert_slice(req.headers[0].value, "server.example.com");
	assert_slice(req.headers[6].name, "Sec-WebSocket-Version");
	assert_slice(req.headers[6].value, "13");
	/* Slices point into the caller's buffer. */
	cr_assert_eq(req.method.p, s);
	cr_assert(req.headers[3].value.p > s && req.headers[3].value.p < s + strlen(s));

	const struct http_header *h = http_find_header(&req, "sec-websocket-key");
	cr_assert_not_null(h);
	assert_slice(h->value, "dGhlIHNhbXBsZSBub25jZQ==");
	cr_assert_null(http_find_header(&req, "Sec-WebSocket-Extensions"));
	cr_assert_eq(http_count_headers(&req, "HOST"), 1);
	cr_assert_eq(http_count_headers(&req, "Cookie"), 0);
}

Test(http_parser, every_prefix_needs_more)
{
	assert_prefixes(UPGRADE_REQ, strlen(UPGRADE_REQ), 0);
	const char *leading = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_prefixes(leading, strlen(leading), 0);
}

Test(http_parser, pipelined_bytes_are_not_part_of_the_head)
{
	const char head[] = "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n";
	char buf[256];
	size_t hn = strlen(head);
	memcpy(buf, head, hn);
	/* A masked WebSocket frame, and then a second request. */
	const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	memcpy(buf + hn, frame, sizeof frame - 1);
	memcpy(buf + hn + sizeof frame - 1, head, hn);
	size_t total = hn + sizeof frame - 1 + hn;
	struct http_request req;
	struct http_error err;
	cr_assert_eq(parse_lim(buf, total, &LIM, &req, &err), (ssize_t)hn);
	/* Two requests back to back: only the first. */
	memcpy(buf + hn, head, hn);
	cr_assert_eq(parse_lim(buf, 2 * hn, &LIM, &req, &err), (ssize_t)hn);
	/* Bytes behind the head are not looked at, even NUL or bare LF. */
	memcpy(buf + hn, "\n\0\r", 3);
	cr_assert_eq(parse_lim(buf, hn + 3, &LIM, &req, &err), (ssize_t)hn);
}

Test(http_parser, odd_but_legal_whitespace)
{
	struct http_request req;
	struct http_error err;
	const char *s = "GET / HTTP/1.1\r\n"
			"Host:nospace\r\n"
			"X-Spaces:    a b   \r\n"
			"X-Tabs:\t\tv\t \r\n"
			"X-Empty:\r\n"
			"X-Blank:   \r\n"
			"X-Obs-Text: caf\xc3\xa9\r\n"
			"\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	cr_assert_eq(req.nheaders, 6);
	assert_slice(req.headers[0].value, "nospace");
	assert_slice(req.headers[1].value, "a b");
	assert_slice(req.headers[2].value, "v");
	assert_slice(req.headers[3].value, "");
	assert_slice(req.headers[4].value, "");
	assert_slice(req.headers[5].value, "caf\xc3\xa9");
}

Test(http_parser, leading_empty_line_is_ignored)
{
	struct http_request req;
	struct http_error err;
	const char *s = "\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.method, "GET");
	assert_slice(req.path, "/x");
}

Test(http_parser, absolute_form_target)
{
	struct http_request req;
	struct http_error err;
	const char *s = "GET http://example.com:8080/chat/room?a=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.target, "http://example.com:8080/chat/room?a=1");
	assert_slice(req.path, "/chat/room");
	assert_slice(req.query, "a=1");
	s = "GET wss://h/ws HTTP/1.1\r\nHost: h\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.path, "/ws");
	assert_slice(req.query, "");
	assert_status("GET example.com/ws HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

Test(http_parser, query_split)
{
	struct http_request req;
	struct http_error err;
	struct { const char *target, *path, *query; } cases[] = {
		{ "/", "/", "" },
		{ "/ws", "/ws", "" },
		{ "/ws?", "/ws", "" },
		{ "/ws?a", "/ws", "a" },
		{ "/ws?a=1&b=2?c", "/ws", "a=1&b=2?c" },
		{ "/a/b/c?x=/y", "/a/b/c", "x=/y" },
		{ "/?", "/", "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char s[256];
		snprintf(s, sizeof s, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].target);
		cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s: %s", cases[i].target, err.reason);
		assert_slice(req.target, cases[i].target);
		assert_slice(req.path, cases[i].path);
		assert_slice(req.query, cases[i].query);
	}
	assert_status("GET /ws#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET /ws?a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

Test(http_parser, other_methods_parse)
{
	struct http_request req;
	struct http_error err;
	const char *s = "POST /ws HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.method, "POST");
	s = "M-SEARCH /ws HTTP/1.1\r\nHost: h\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	assert_slice(req.method, "M-SEARCH");
}

/* ---- refused forms ----------------------------------------------------------- */

Test(http_parser, bare_lf)
{
	assert_status("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n", "Bare LF");
	assert_status("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

/* A client that ends lines with LF alone never sends CRLFCRLF: it must be
 * answered as soon as the first bare LF arrives, not at the size limit. */
Test(http_parser, bare_lf_refused_before_head_is_complete)
{
	struct http_request req;
	struct http_error err;
	const char *s = "GET / HTTP/1.1\nHost: h\n\n";
	cr_assert_eq(parse(s, &req, &err), -1);
	cr_assert_eq(err.status, 400);
	cr_assert(strstr(err.reason, "Bare LF"), "%s", err.reason);
	/* Right at the first LF. */
	cr_assert_eq(parse_lim(s, 14, &LIM, &req, &err), 0);
	cr_assert_eq(parse_lim(s, 15, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 400);
}

Test(http_parser, bare_cr)
{
	assert_status("GET / HTTP/1.1\rHost: h\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", "Bare CR");
	assert_status("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", 400);
	/* A CR as the last byte read so far may still get its LF. */
	struct http_request req;
	struct http_error err;
	cr_assert_eq(parse_lim("GET / HTTP/1.1\r", 15, &LIM, &req, &err), 0);
	cr_assert_eq(parse_lim("\r", 1, &LIM, &req, &err), 0);
}

Test(http_parser, nul_and_control_characters)
{
	struct http_request req;
	struct http_error err;
	const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
	cr_assert_eq(parse_lim(s, sizeof s - 1, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 400);
	/* Refused as soon as the NUL is in, too. */
	cr_assert_eq(parse_lim(s, 30, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 400);
	const char t[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
	cr_assert_eq(parse_lim(t, sizeof t - 1, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400);
	assert_status("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

Test(http_parser, obs_fold)
{
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "folding");
	/* Whitespace between the request line and the first header. */
	assert_status("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400);
}

Test(http_parser, whitespace_before_colon)
{
	assert_status("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX\t: a\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nHost : h\r\n\r\n", "Whitespace before colon");
}

Test(http_parser, malformed_header_lines)
{
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nBad[Name]: x\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nX Y: x\r\n\r\n", 400);
}

Test(http_parser, malformed_request_lines)
{
	assert_status("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET /\r\nHost: h\r\n\r\n", 400);
	assert_status("GET\r\nHost: h\r\n\r\n", 400);
	assert_status(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("GET / FOO/1.1\r\nHost: h\r\n\r\n", 400);
	assert_status("\r\n\r\n", 400);
}

Test(http_parser, garbage_is_refused_early)
{
	/* A TLS ClientHello sent to a plain port: refused from the first byte. */
	struct http_request req;
	struct http_error err;
	const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	cr_assert_eq(parse_lim(hello, 1, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 400);
	cr_assert_eq(parse_lim(hello, sizeof hello - 1, &LIM, &req, &err), -1);
	cr_assert_eq(parse_lim(" ", 1, &LIM, &req, &err), -1);
	cr_assert_eq(parse_lim("", 0, &LIM, &req, &err), 0);
}

Test(http_parser, host_rules)
{
	assert_status("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nX: y\r\n\r\n", "Missing Host");
	assert_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", "Duplicate Host");
	/* RFC 9112 §3.2: two Host fields are refused in any version. */
	assert_status("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	assert_reason("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "Duplicate Host");
}

Test(http_parser, http_versions)
{
	struct http_request req;
	struct http_error err;
	/* HTTP/1.0 parses (Host optional); the handshake refuses it later. */
	const char *s = "GET / HTTP/1.0\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	cr_assert_eq(req.minor_version, 0);
	cr_assert_eq(req.nheaders, 0);
	s = "GET / HTTP/1.0\r\nHost: h\r\n\r\n";
	cr_assert_eq(parse(s, &req, &err), (ssize_t)strlen(s));
	assert_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
	assert_status("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
	assert_status("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505);
	assert_status("GET / HTTP/3\r\nHost: h\r\n\r\n", 505);
	assert_status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
}

Test(http_parser, bodies_are_refused)
{
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n", 501);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 501);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", 413);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", 413);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400);
	assert_status("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400);
	struct http_request req;
	struct http_error err;
	const char *ok[] = {
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n",
	};
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(parse(ok[i], &req, &err), (ssize_t)strlen(ok[i]), "%s: %d %s", ok[i],
			     err.status, err.reason);
}

/* ---- limits ---------------------------------------------------------------- */

static char *request_with_headers(size_t n)
{
	size_t cap = 64 + n * 32;
	char *s = malloc(cap);
	cr_assert(s);
	size_t len = (size_t)snprintf(s, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (size_t i = 1; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "X-H%zu: v\r\n", i);
	snprintf(s + len, cap - len, "\r\n");
	return s;
}

Test(http_parser, too_many_headers)
{
	struct http_request req;
	struct http_error err;
	const struct http_limits lim = { 65536, 10 };
	char *s = request_with_headers(10);
	cr_assert_eq(parse_lim(s, strlen(s), &lim, &req, &err), (ssize_t)strlen(s), "%s", err.reason);
	cr_assert_eq(req.nheaders, 10);
	free(s);
	s = request_with_headers(11);
	cr_assert_eq(parse_lim(s, strlen(s), &lim, &req, &err), -1);
	cr_assert_eq(err.status, 431);
	free(s);
	/* A limit above the array size is clamped to it. */
	const struct http_limits big = { 1 << 20, 100000 };
	s = request_with_headers(HTTP_MAX_HEADERS_CAP);
	cr_assert_eq(parse_lim(s, strlen(s), &big, &req, &err), (ssize_t)strlen(s));
	free(s);
	s = request_with_headers(HTTP_MAX_HEADERS_CAP + 1);
	cr_assert_eq(parse_lim(s, strlen(s), &big, &req, &err), -1);
	cr_assert_eq(err.status, 431);
	free(s);
}

Test(http_parser, head_size_limit)
{
	struct http_request req;
	struct http_error err;
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789\r\n\r\n";
	size_t n = strlen(s);
	/* A head of exactly max_head bytes is fine. */
	struct http_limits lim = { n, 64 };
	cr_assert_eq(parse_lim(s, n, &lim, &req, &err), (ssize_t)n);
	/* One byte more than the limit is refused as soon as the limit is
	 * reached without the end of the head. */
	lim.max_head = n - 1;
	cr_assert_eq(parse_lim(s, n - 2, &lim, &req, &err), 0);
	cr_assert_eq(parse_lim(s, n - 1, &lim, &req, &err), -1);
	cr_assert_eq(err.status, 431);
	cr_assert_eq(parse_lim(s, n, &lim, &req, &err), -1);
	cr_assert_eq(err.status, 431);
	/* A long stream of header bytes with no end. */
	size_t big = 20000;
	char *b = malloc(big);
	memcpy(b, "GET / HTTP/1.1\r\nX: ", 19);
	memset(b + 19, 'a', big - 19);
	cr_assert_eq(parse_lim(b, big, &LIM, &req, &err), -1);
	cr_assert_eq(err.status, 431);
	cr_assert_eq(parse_lim(b, 8191, &LIM, &req, &err), 0);
	free(b);
}

/* ---- helpers --------------------------------------------------------------- */

static bool has(const char *list, const char *token)
{
	return http_list_has_token((struct http_str){ list, strlen(list) }, token);
}

Test(http_parser, list_has_token)
{
	cr_assert(has("keep-alive, Upgrade", "upgrade"));
	cr_assert(has("upgrade", "upgrade"));
	cr_assert(has(" UPGRADE ", "upgrade"));
	cr_assert(has("Upgrade,keep-alive", "upgrade"));
	cr_assert(has("a,,\tupgrade\t,b", "upgrade"));
	cr_assert(has(",upgrade,", "upgrade"));
	cr_assert_not(has("upgrades", "upgrade"));
	cr_assert_not(has("keep-alive, upgrades", "upgrade"));
	cr_assert_not(has("xupgrade", "upgrade"));
	cr_assert_not(has("upgrade-x", "upgrade"));
	cr_assert_not(has("up grade", "upgrade"));
	cr_assert_not(has("", "upgrade"));
	cr_assert_not(has(" , ,", "upgrade"));
	cr_assert_not(has("keep-alive", "upgrade"));
	cr_assert_not(has("upgrad", "upgrade"));
	/* A slice is not read past its length. */
	struct http_str s = { "upgrade", 6 };
	cr_assert_not(http_list_has_token(s, "upgrade"));
	s = (struct http_str){ "close, upgradeXYZ", 14 };
	cr_assert(http_list_has_token(s, "upgrade"));
}

Test(http_parser, str_compare)
{
	struct http_str s = { "WebSocket!", 9 };
	cr_assert(http_str_ieq(s, "websocket"));
	cr_assert(http_str_ieq(s, "WEBSOCKET"));
	cr_assert_not(http_str_ieq(s, "websocke"));
	cr_assert_not(http_str_ieq(s, "websocket!"));
	cr_assert(http_str_eq(s, "WebSocket"));
	cr_assert_not(http_str_eq(s, "websocket"));
	struct http_str e = { "", 0 };
	cr_assert(http_str_eq(e, ""));
	cr_assert(http_str_ieq(e, ""));
}
