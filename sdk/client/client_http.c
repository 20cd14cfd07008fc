/* client_http — the HTTP side of the client: response heads (from the
 * WebSocket server and from a proxy), the 101 answer's checks (RFC 6455
 * §4.1) and the permessage-deflate answer (RFC 7692 §7.1). Pure: no I/O,
 * no allocation, pointers into the caller's buffer. Servers can be
 * hostile too, so everything here is bounded and fuzzed
 * (tests/fuzz/fuzz_client_parse.c). */
#include "client_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_tchar(int c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

/* Finds the end of the line starting at p[i]: returns the index of '\n',
 * or -1 if none before n. */
static long line_end(const char *p, size_t i, size_t n)
{
	const char *nl = memchr(p + i, '\n', n - i);
	return nl ? (long)(nl - p) : -1;
}

int cl_http_parse(const char *p, size_t n, struct cl_http_resp *r, char *err, size_t errcap)
{
	memset(r, 0, sizeof *r);
	size_t lim = n < CL_HTTP_MAX_HEAD ? n : CL_HTTP_MAX_HEAD;
	long e = line_end(p, 0, lim);
	if (e < 0) {
		if (n >= CL_HTTP_MAX_HEAD)
			return fail(err, errcap, "response head larger than %d bytes", CL_HTTP_MAX_HEAD);
		/* Refuse early what can never become a status line. */
		const char *want = "HTTP/1.";
		size_t k = n < 7 ? n : 7;
		if (memcmp(p, want, k) != 0)
			return fail(err, errcap, "not an HTTP response");
		return 0;
	}
	size_t le = (size_t)e;
	size_t ll = le > 0 && p[le - 1] == '\r' ? le - 1 : le;
	/* Status line: HTTP/1.x SP 3DIGIT [SP reason] */
	if (ll < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) || p[8] != ' ' ||
	    !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]) ||
	    (ll > 12 && p[12] != ' '))
		return fail(err, errcap, "not an HTTP response: %.*s", (int)(ll < 60 ? ll : 60), p);
	r->minor = p[7] - '0';
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (r->status < 100)
		return fail(err, errcap, "invalid HTTP status %d", r->status);
	r->reason = ll > 13 ? p + 13 : p + ll;
	r->reason_len = ll > 13 ? ll - 13 : 0;
	for (size_t i = 0; i < r->reason_len; i++) {
		unsigned char ch = (unsigned char)r->reason[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return fail(err, errcap, "control character in the HTTP reason phrase");
	}
	size_t i = le + 1;
	for (;;) {
		e = line_end(p, i, lim);
		if (e < 0) {
			if (n >= CL_HTTP_MAX_HEAD)
				return fail(err, errcap, "response head larger than %d bytes", CL_HTTP_MAX_HEAD);
			return 0;
		}
		le = (size_t)e;
		ll = le > i && p[le - 1] == '\r' ? le - 1 - i : le - i;
		const char *line = p + i;
		i = le + 1;
		if (ll == 0)
			return (int)i;
		if (line[0] == ' ' || line[0] == '\t')
			return fail(err, errcap, "obsolete header line folding in the response");
		const char *colon = memchr(line, ':', ll);
		if (!colon || colon == line)
			return fail(err, errcap, "malformed header line in the response");
		for (const char *q = line; q < colon; q++)
			if (!is_tchar((unsigned char)*q))
				return fail(err, errcap, "invalid character in a response header name");
		const char *v = colon + 1, *ve = line + ll;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++) {
			unsigned char ch = (unsigned char)*q;
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return fail(err, errcap, "control character in a response header value");
		}
		if (r->nh == CL_HTTP_MAX_HEADERS)
			return fail(err, errcap, "more than %d header fields in the response", CL_HTTP_MAX_HEADERS);
		struct cl_http_header *h = &r->h[r->nh++];
		h->name = line;
		h->name_len = (size_t)(colon - line);
		h->value = v;
		h->value_len = (size_t)(ve - v);
	}
}

int cl_http_header(const struct cl_http_resp *r, const char *name, const char **v, size_t *len)
{
	size_t nl = strlen(name);
	int found = 0;
	for (size_t i = 0; i < r->nh; i++) {
		if (r->h[i].name_len == nl && strncasecmp(r->h[i].name, name, nl) == 0) {
			if (found)
				return -1;
			found = 1;
			*v = r->h[i].value;
			*len = r->h[i].value_len;
		}
	}
	return found;
}

void cl_accept_key(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char in[64 + sizeof guid];
	size_t kl = strlen(key);
	if (kl > 64)
		kl = 64;
	memcpy(in, key, kl);
	memcpy(in + kl, guid, sizeof guid - 1);
	unsigned char md[20];
	unsigned int mdlen = 0;
	EVP_Digest(in, kl + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	out[28] = 0;
}

/* True when the comma-separated list v[0..n) holds token tok
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
static bool list_has(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return true;
	}
	return false;
}

/* A small cursor over an extension list (RFC 6455 §9.1 grammar). */
struct cur {
	const char *p, *e;
};

static void ows(struct cur *c)
{
	while (c->p < c->e && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static size_t token(struct cur *c, const char **t)
{
	*t = c->p;
	while (c->p < c->e && is_tchar((unsigned char)*c->p))
		c->p++;
	return (size_t)(c->p - *t);
}

/* Reads a parameter value (token or quoted-string) into buf. */
static int param_value(struct cur *c, char *buf, size_t cap)
{
	size_t o = 0;
	if (c->p < c->e && *c->p == '"') {
		c->p++;
		while (c->p < c->e && *c->p != '"') {
			char ch = *c->p++;
			if (ch == '\\') {
				if (c->p == c->e)
					return -1;
				ch = *c->p++;
			}
			if (o + 1 >= cap)
				return -1;
			buf[o++] = ch;
		}
		if (c->p == c->e)
			return -1;
		c->p++;
	} else {
		const char *t;
		size_t n = token(c, &t);
		if (n == 0 || n + 1 > cap)
			return -1;
		memcpy(buf, t, n);
		o = n;
	}
	buf[o] = 0;
	return 0;
}

/* 8..15 in decimal without leading zeros, or 0. */
static unsigned bits_value(const char *s)
{
	if (!strcmp(s, "8") || !strcmp(s, "9"))
		return (unsigned)(s[0] - '0');
	if (s[0] == '1' && s[1] >= '0' && s[1] <= '5' && s[2] == 0)
		return 10u + (unsigned)(s[1] - '0');
	return 0;
}

int cl_deflate_response(const char *v, size_t len, bool offered_client_bits,
			struct cl_deflate_agreed *out, char *err, size_t errcap)
{
	struct cur c = { v, v + len };
	int seen = 0;
	memset(out, 0, sizeof *out);
	out->server_max_window_bits = out->client_max_window_bits = 15;
	for (;;) {
		ows(&c);
		while (c.p < c.e && *c.p == ',') {
			c.p++;
			ows(&c);
		}
		if (c.p == c.e)
			break;
		const char *name;
		size_t nl = token(&c, &name);
		if (nl == 0)
			return fail(err, errcap, "malformed Sec-WebSocket-Extensions in the answer");
		if (nl != strlen(WS_DEFLATE_NAME) || memcmp(name, WS_DEFLATE_NAME, nl) != 0)
			return fail(err, errcap, "the server accepted extension %.*s, which we did not offer",
				    (int)(nl < 60 ? nl : 60), name);
		if (seen++)
			return fail(err, errcap, "the server accepted permessage-deflate twice");
		bool snct = false, cnct = false, sbits = false, cbits = false;
		for (;;) {
			ows(&c);
			if (c.p == c.e || *c.p == ',')
				break;
			if (*c.p != ';')
				return fail(err, errcap, "malformed Sec-WebSocket-Extensions in the answer");
			c.p++;
			ows(&c);
			const char *pn;
			size_t pl = token(&c, &pn);
			if (pl == 0)
				return fail(err, errcap, "malformed Sec-WebSocket-Extensions in the answer");
			ows(&c);
			char val[32];
			bool has_val = false;
			if (c.p < c.e && *c.p == '=') {
				c.p++;
				ows(&c);
				if (param_value(&c, val, sizeof val) < 0)
					return fail(err, errcap, "invalid permessage-deflate parameter value in the answer");
				has_val = true;
			}
#define PIS(s) (pl == sizeof(s) - 1 && memcmp(pn, s, pl) == 0)
			if (PIS("server_no_context_takeover") || PIS("client_no_context_takeover")) {
				bool *flag = PIS("server_no_context_takeover") ? &snct : &cnct;
				if (*flag)
					return fail(err, errcap, "duplicate %.*s in the permessage-deflate answer", (int)pl, pn);
				if (has_val)
					return fail(err, errcap, "%.*s with a value in the permessage-deflate answer", (int)pl, pn);
				*flag = true;
			} else if (PIS("server_max_window_bits") || PIS("client_max_window_bits")) {
				bool srv = PIS("server_max_window_bits");
				bool *flag = srv ? &sbits : &cbits;
				if (*flag)
					return fail(err, errcap, "duplicate %.*s in the permessage-deflate answer", (int)pl, pn);
				*flag = true;
				unsigned b = has_val ? bits_value(val) : 0;
				if (b == 0)
					return fail(err, errcap, "%.*s must be 8..15 in the permessage-deflate answer", (int)pl, pn);
				/* RFC 7692 §7.1.2.2: only if we offered it. */
				if (!srv && !offered_client_bits)
					return fail(err, errcap, "client_max_window_bits in the answer, but we did not offer it");
				if (srv)
					out->server_max_window_bits = b;
				else
					out->client_max_window_bits = b;
			} else {
				return fail(err, errcap, "unknown parameter %.*s in the permessage-deflate answer",
					    (int)(pl < 60 ? pl : 60), pn);
			}
#undef PIS
		}
		out->server_no_context_takeover = snct;
		out->client_no_context_takeover = cnct;
	}
	if (!seen)
		return fail(err, errcap, "empty Sec-WebSocket-Extensions in the answer");
	return 1;
}

int cl_handshake_check(const struct cl_http_resp *r, const struct cl_hs_offer *o,
		       struct cl_hs_result *res, char *err, size_t errcap)
{
	memset(res, 0, sizeof *res);
	if (r->status != 101)
		return fail(err, errcap, "server answered %d %.*s", r->status,
			    (int)(r->reason_len < 100 ? r->reason_len : 100), r->reason);
	const char *v;
	size_t vl;
	int f = cl_http_header(r, "Upgrade", &v, &vl);
	if (f != 1 || !list_has(v, vl, "websocket"))
		return fail(err, errcap, "invalid 101 answer: Upgrade is not websocket");
	f = cl_http_header(r, "Connection", &v, &vl);
	/* Several Connection headers are one list (RFC 9110 §5.3). */
	bool conn_ok = false;
	for (size_t i = 0; i < r->nh; i++)
		if (r->h[i].name_len == 10 && strncasecmp(r->h[i].name, "Connection", 10) == 0 &&
		    list_has(r->h[i].value, r->h[i].value_len, "upgrade"))
			conn_ok = true;
	if (!conn_ok)
		return fail(err, errcap, "invalid 101 answer: Connection does not contain Upgrade");
	f = cl_http_header(r, "Sec-WebSocket-Accept", &v, &vl);
	if (f != 1)
		return fail(err, errcap, "invalid 101 answer: %s Sec-WebSocket-Accept", f ? "repeated" : "no");
	char want[29];
	cl_accept_key(o->key, want);
	if (vl != 28 || memcmp(v, want, 28) != 0)
		return fail(err, errcap, "invalid 101 answer: Sec-WebSocket-Accept does not match our key");
	f = cl_http_header(r, "Sec-WebSocket-Protocol", &v, &vl);
	if (f < 0)
		return fail(err, errcap, "invalid 101 answer: repeated Sec-WebSocket-Protocol");
	if (f == 1) {
		bool ok = false;
		for (size_t i = 0; i < o->nprotos; i++)
			if (strlen(o->protos[i]) == vl && memcmp(o->protos[i], v, vl) == 0)
				ok = true;
		if (!ok)
			return fail(err, errcap, "the server chose subprotocol '%.*s', which we did not offer",
				    (int)(vl < 100 ? vl : 100), v);
		memcpy(res->subprotocol, v, vl);
		res->subprotocol[vl] = 0;
	}
	/* Extensions: every header is part of one list; join them. */
	char ext[512];
	size_t el = 0;
	for (size_t i = 0; i < r->nh; i++) {
		const struct cl_http_header *h = &r->h[i];
		if (h->name_len != 24 || strncasecmp(h->name, "Sec-WebSocket-Extensions", 24) != 0)
			continue;
		if (el + h->value_len + 2 >= sizeof ext)
			return fail(err, errcap, "invalid 101 answer: Sec-WebSocket-Extensions too long");
		if (el)
			ext[el++] = ',';
		memcpy(ext + el, h->value, h->value_len);
		el += h->value_len;
	}
	ext[el] = 0;
	size_t nonblank = strspn(ext, " \t,");
	if (nonblank < el) {
		if (!o->deflate)
			return fail(err, errcap, "the server accepted extensions (%.100s) we did not offer", ext);
		char why[160];
		if (cl_deflate_response(ext, el, true, &res->dp, why, sizeof why) < 0)
			return fail(err, errcap, "invalid 101 answer: %s", why);
		res->deflate = true;
		snprintf(res->extensions, sizeof res->extensions, "%s", ext + nonblank);
	}
	return 0;
}
