/* fuzz_http_request — the HTTP/1.1 request-head parser (core/http) and, for
 * every head it accepts, the WebSocket handshake check (core/ws).
 *
 * Input: the raw bytes a client sends, as read from the socket (so corpus
 * files are plain requests). Beyond "no crash", it checks:
 *  - the result is -1 (with a known status), 0 (only below the size limit
 *    and without a CRLFCRLF) or a head length <= input and <= the limit
 *    that ends at the first CRLFCRLF;
 *  - every slice (method, target, path, query, header names and values)
 *    lies inside the head and holds only what the grammar allows;
 *  - bytes after the head change nothing, and a prefix of the input never
 *    contradicts the whole (a complete head's prefixes "need more"; an
 *    error on a prefix stays an error), as when a head arrives in pieces;
 *  - tighter limits never turn an error into success or move the head;
 *  - the handshake answers 101 only to a valid upgrade, with the RFC's
 *    accept key and our most preferred subprotocol among those the client
 *    offered (compared exactly).
 */
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "http/http_parser.h"
#include "ws/ws_handshake.h"

static const struct http_limits LIM = { 2048, 64 };

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool str_ieq(struct http_str s, const char *c)
{
	return s.n == strlen(c) && strncasecmp(s.p, c, s.n) == 0;
}

static size_t count(const struct http_request *req, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < req->nheaders; i++)
		n += str_ieq(req->headers[i].name, name);
	return n;
}

/* Reference for http_list_has_token: split on ',', trim blanks, compare
 * case-insensitively, or exactly for subprotocols (RFC 6455 §4.1: the
 * client checks the answer against the exact strings it offered). */
static bool ref_has_token(struct http_str list, const char *token, bool exact)
{
	size_t tn = strlen(token), i = 0;
	while (i <= list.n) {
		size_t j = i;
		while (j < list.n && list.p[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && (list.p[a] == ' ' || list.p[a] == '\t'))
			a++;
		while (b > a && (list.p[b - 1] == ' ' || list.p[b - 1] == '\t'))
			b--;
		if (b - a == tn && tn &&
		    (exact ? memcmp(list.p + a, token, tn) : strncasecmp(list.p + a, token, tn)) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

static void check_head(const char *buf, size_t head, const struct http_limits *lim,
		       const struct http_request *req)
{
	CHECK(head >= 4 && head <= lim->max_head, "head %zu, limit %zu", head, lim->max_head);
	CHECK(memcmp(buf + head - 4, "\r\n\r\n", 4) == 0, "head does not end with CRLFCRLF");
	CHECK(!memmem(buf, head - 1, "\r\n\r\n", 4), "head does not end at the first CRLFCRLF");

	const struct http_str *m = &req->method, *t = &req->target;
	CHECK(m->n > 0 && fuzz_inside(m->p, m->n, buf, head), "method outside the head");
	for (size_t i = 0; i < m->n; i++)
		CHECK(tchar((unsigned char)m->p[i]), "method byte 0x%02x", (unsigned char)m->p[i]);
	CHECK(m->p[m->n] == ' ', "method not followed by SP");
	CHECK(t->n > 0 && fuzz_inside(t->p, t->n, buf, head) && t->p > m->p + m->n,
	      "target outside the head");
	for (size_t i = 0; i < t->n; i++) {
		unsigned char c = (unsigned char)t->p[i];
		CHECK(c > 0x20 && c < 0x7f, "target byte 0x%02x", c);
	}
	CHECK(t->p[t->n] == ' ' && memcmp(t->p + t->n + 1, "HTTP/1.", 7) == 0 &&
	      t->p[t->n + 8] == '0' + req->minor_version && memcmp(t->p + t->n + 9, "\r\n", 2) == 0,
	      "request line does not end with ' HTTP/1.%d' CRLF", req->minor_version);
	CHECK(req->minor_version == 0 || req->minor_version == 1, "minor version %d", req->minor_version);

	/* path and query are slices of the target: /path[?query], no '#'. */
	const struct http_str *pa = &req->path, *q = &req->query;
	CHECK(pa->n > 0 && pa->p[0] == '/' && fuzz_inside(pa->p, pa->n, t->p, t->n),
	      "path '%.*s' is not an absolute path inside the target", (int)pa->n, pa->p);
	CHECK(!memchr(pa->p, '?', pa->n) && !memchr(pa->p, '#', pa->n), "path holds '?' or '#'");
	if (q->p == pa->p + pa->n) {
		CHECK(q->n == 0 && pa->p + pa->n == t->p + t->n, "path does not reach the target's end");
	} else {
		CHECK(q->p == pa->p + pa->n + 1 && pa->p[pa->n] == '?' && q->p + q->n == t->p + t->n,
		      "query is not what follows '?' up to the target's end");
		CHECK(!memchr(q->p, '#', q->n), "query holds '#'");
	}
	if (t->p[0] == '/')
		CHECK(pa->p == t->p, "origin-form path does not start the target");

	size_t maxh = lim->max_headers < HTTP_MAX_HEADERS_CAP ? lim->max_headers : HTTP_MAX_HEADERS_CAP;
	CHECK(req->nheaders <= maxh, "%zu headers, limit %zu", req->nheaders, maxh);
	const char *prev_end = t->p + t->n;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		CHECK(h->name.n > 0 && fuzz_inside(h->name.p, h->name.n, buf, head) &&
		      h->name.p >= prev_end && h->name.p[-2] == '\r' && h->name.p[-1] == '\n',
		      "header %zu name does not start a line of the head", i);
		for (size_t k = 0; k < h->name.n; k++)
			CHECK(tchar((unsigned char)h->name.p[k]), "header name byte 0x%02x",
			      (unsigned char)h->name.p[k]);
		CHECK(h->name.p[h->name.n] == ':', "header name not followed by ':'");
		CHECK(fuzz_inside(h->value.p, h->value.n, buf, head) && h->value.p > h->name.p + h->name.n,
		      "header %zu value outside the head", i);
		for (size_t k = 0; k < h->value.n; k++) {
			unsigned char c = (unsigned char)h->value.p[k];
			CHECK((c >= 0x20 || c == '\t') && c != 0x7f, "header value byte 0x%02x", c);
		}
		if (h->value.n) {
			char a = h->value.p[0], z = h->value.p[h->value.n - 1];
			CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t', "header value not trimmed");
		}
		/* Only blanks between the value and the line's CRLF. */
		const char *e = h->value.p + h->value.n;
		while (*e == ' ' || *e == '\t')
			e++;
		CHECK(e[0] == '\r' && e[1] == '\n', "header value does not reach its line end");
		prev_end = e;
	}
	CHECK(prev_end + 4 == buf + head || (req->nheaders == 0 && prev_end + 13 == buf + head),
	      "headers do not cover the head");

	/* Smuggling guards. */
	if (req->minor_version == 1)
		CHECK(count(req, "Host") == 1, "HTTP/1.1 head with %zu Host headers", count(req, "Host"));
	CHECK(count(req, "Transfer-Encoding") == 0, "Transfer-Encoding accepted");
	size_t ncl = count(req, "Content-Length");
	CHECK(ncl <= 1, "%zu Content-Length headers accepted", ncl);
	if (ncl) {
		/* Only a length of zero, written in digits (1*DIGIT). */
		const struct http_str *v = &http_find_header(req, "Content-Length")->value;
		CHECK(v->n > 0, "empty Content-Length accepted");
		for (size_t i = 0; i < v->n; i++)
			CHECK(v->p[i] == '0', "a body was accepted: Content-Length: %.*s", (int)v->n, v->p);
	}

	/* http_find_header returns the first match, http_count_headers counts. */
	static const char *const names[] = { "host", "UPGRADE", "Connection", "sec-websocket-key", "X" };
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		const struct http_header *f = http_find_header(req, names[k]);
		size_t first = req->nheaders;
		for (size_t i = 0; i < req->nheaders && first == req->nheaders; i++)
			if (str_ieq(req->headers[i].name, names[k]))
				first = i;
		CHECK(f == (first < req->nheaders ? &req->headers[first] : NULL), "http_find_header(%s)", names[k]);
		CHECK(http_count_headers(req, names[k]) == count(req, names[k]), "http_count_headers(%s)", names[k]);
	}
}

static void check_same(const struct http_request *a, const struct http_request *b)
{
	CHECK(a->method.p == b->method.p && a->method.n == b->method.n &&
	      a->target.p == b->target.p && a->target.n == b->target.n &&
	      a->path.p == b->path.p && a->path.n == b->path.n &&
	      a->query.p == b->query.p && a->query.n == b->query.n &&
	      a->minor_version == b->minor_version && a->nheaders == b->nheaders,
	      "bytes after the head changed the request line");
	for (size_t i = 0; i < a->nheaders; i++)
		CHECK(a->headers[i].name.p == b->headers[i].name.p && a->headers[i].name.n == b->headers[i].name.n &&
		      a->headers[i].value.p == b->headers[i].value.p && a->headers[i].value.n == b->headers[i].value.n,
		      "bytes after the head changed header %zu", i);
}

static bool b64char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static void check_handshake(const struct http_request *req, bool require)
{
	static const char *const protos[] = { "chat", "superchat", "v2.mbgw.example" };
	static const char *const tokens[] = { "websocket", "upgrade", "chat", "a b" };
	struct ws_handshake_result res;
	bool ok = ws_handshake_check(req, protos, 3, require, &res);
	if (!ok) {
		CHECK(res.status == 400 || res.status == 405 || res.status == 426, "status %d", res.status);
		CHECK(res.reason && *res.reason, "refusal without a reason");
		return;
	}
	CHECK(res.status == 101, "accepted with status %d", res.status);
	CHECK(str_ieq(req->method, "GET") && req->method.p[0] == 'G', "upgrade accepted for a non-GET");
	CHECK(req->minor_version == 1, "upgrade accepted over HTTP/1.0");
	CHECK(ws_handshake_is_upgrade(req), "upgrade accepted without Upgrade: websocket");
	CHECK(count(req, "Sec-WebSocket-Key") == 1 && count(req, "Sec-WebSocket-Version") == 1,
	      "key or version missing or repeated");
	const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
	CHECK(key->value.n == 24 && key->value.p[22] == '=' && key->value.p[23] == '=', "key is not 24 chars ending ==");
	for (size_t i = 0; i < 22; i++)
		CHECK(b64char(key->value.p[i]), "key char 0x%02x", (unsigned char)key->value.p[i]);
	CHECK(strlen(res.accept) == WS_ACCEPT_LEN, "accept key length %zu", strlen(res.accept));
	for (size_t i = 0; i < WS_ACCEPT_LEN - 1; i++)
		CHECK(b64char(res.accept[i]), "accept char 0x%02x", (unsigned char)res.accept[i]);
	CHECK(res.accept[WS_ACCEPT_LEN - 1] == '=', "accept key does not end with '='");
	/* RFC 6455 §1.3's own example. */
	if (memcmp(key->value.p, "dGhlIHNhbXBsZSBub25jZQ==", 24) == 0)
		CHECK(strcmp(res.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "accept %s", res.accept);

	/* The chosen subprotocol is our most preferred one the client offered. */
	const char *want = NULL;
	for (size_t k = 0; k < 3 && !want; k++)
		for (size_t i = 0; i < req->nheaders && !want; i++)
			if (str_ieq(req->headers[i].name, "Sec-WebSocket-Protocol") &&
			    ref_has_token(req->headers[i].value, protos[k], true))
				want = protos[k];
	CHECK(res.subprotocol == want, "subprotocol %s, expected %s",
	      res.subprotocol ? res.subprotocol : "(none)", want ? want : "(none)");
	CHECK(!require || want, "require_subprotocol ignored");

	for (size_t i = 0; i < req->nheaders; i++)
		for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++)
			CHECK(http_list_has_token(req->headers[i].value, tokens[k]) ==
			      ref_has_token(req->headers[i].value, tokens[k], false),
			      "http_list_has_token('%.*s', '%s')", (int)req->headers[i].value.n,
			      req->headers[i].value.p, tokens[k]);
}

static bool known_status(int s)
{
	return s == 400 || s == 413 || s == 431 || s == 501 || s == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy: its end is where ASan puts the redzone, so any read
	 * past the input is caught even when libFuzzer's buffer is larger. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	uint64_t hash = fuzz_hash(data, size);

	struct http_request req, req2;
	struct http_error err = { 0, NULL };
	ssize_t r = http_parse_request(buf, size, &LIM, &req, &err);
	CHECK(r >= -1 && r <= (ssize_t)size, "returned %zd for %zu bytes", r, size);
	if (r < 0) {
		CHECK(known_status(err.status) && err.reason && *err.reason, "error %d '%s'", err.status,
		      err.reason ? err.reason : "(null)");
	} else if (r == 0) {
		CHECK(size < LIM.max_head, "'need more' at %zu bytes, limit %zu", size, LIM.max_head);
		CHECK(!memmem(buf, size, "\r\n\r\n", 4), "'need more' with a CRLFCRLF in the input");
	} else {
		check_head(buf, (size_t)r, &LIM, &req);
		/* Bytes after the head are not looked at. */
		struct http_error e2;
		ssize_t r2 = http_parse_request(buf, (size_t)r, &LIM, &req2, &e2);
		CHECK(r2 == r, "head alone parses as %zd, with trailing bytes as %zd", r2, r);
		check_same(&req, &req2);
		check_handshake(&req, hash & 1);
	}

	/* A prefix, as if the rest had not arrived yet. */
	size_t k = size ? (size_t)(hash >> 8) % size : 0;
	for (int pass = 0; pass < 2; pass++, k = 1) {
		if (k >= size)
			continue;
		struct http_error ek = { 0, NULL };
		ssize_t rk = http_parse_request(buf, k, &LIM, &req2, &ek);
		if (r > 0 && k < (size_t)r)
			CHECK(rk == 0, "complete head of %zd bytes, but its %zu-byte prefix gives %zd (%d %s)",
			      r, k, rk, ek.status, ek.reason ? ek.reason : "");
		if (r == 0)
			CHECK(rk == 0, "%zu bytes need more, but a %zu-byte prefix gives %zd (%d %s)",
			      size, k, rk, ek.status, ek.reason ? ek.reason : "");
		if (rk < 0)
			CHECK(r < 0, "%zu-byte prefix fails (%d %s), whole input gives %zd", k, ek.status,
			      ek.reason, r);
		if (rk > 0)
			CHECK(rk == r, "%zu-byte prefix gives %zd, whole input %zd", k, rk, r);
	}

	/* Tighter limits: never a success where the normal ones fail. */
	struct http_limits tight = { 1 + (size_t)(hash >> 24) % LIM.max_head, (size_t)(hash >> 40) % 9 };
	struct http_error et = { 0, NULL };
	ssize_t rt = http_parse_request(buf, size, &tight, &req2, &et);
	if (rt > 0) {
		CHECK(rt == r, "with limits %zu/%zu the head is %zd bytes, normally %zd", tight.max_head,
		      tight.max_headers, rt, r);
		check_head(buf, (size_t)rt, &tight, &req2);
	} else if (rt == 0) {
		CHECK(size < tight.max_head, "'need more' at %zu bytes, limit %zu", size, tight.max_head);
	} else {
		CHECK(known_status(et.status), "error %d", et.status);
	}

	free(buf);
	return 0;
}
