/* http_parser — see http_parser.h. */
#include "http/http_parser.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static ssize_t fail(struct http_error *err, int status, const char *reason)
{
	err->status = status;
	err->reason = reason;
	return -1;
}

bool http_str_ieq(struct http_str s, const char *c)
{
	size_t n = strlen(c);
	return s.n == n && strncasecmp(s.p, c, n) == 0;
}

bool http_str_eq(struct http_str s, const char *c)
{
	size_t n = strlen(c);
	return s.n == n && memcmp(s.p, c, n) == 0;
}

/* Finds the end of the head (CRLFCRLF). Returns its length or 0. */
static size_t find_head_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++) {
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	}
	return 0;
}

static ssize_t parse_request_line(const char *p, const char *eol, struct http_request *req,
				  struct http_error *err)
{
	const char *s = p;
	while (s < eol && is_tchar((unsigned char)*s))
		s++;
	if (s == p || s == eol || *s != ' ')
		return fail(err, 400, "Malformed request line");
	req->method = (struct http_str){ p, (size_t)(s - p) };
	const char *t = ++s;
	while (s < eol && *s != ' ') {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f)
			return fail(err, 400, "Invalid character in request target");
		s++;
	}
	if (s == t || s == eol)
		return fail(err, 400, "Malformed request line");
	req->target = (struct http_str){ t, (size_t)(s - t) };
	s++;
	if (eol - s != 8 || memcmp(s, "HTTP/1.", 7) != 0) {
		if (eol - s >= 5 && memcmp(s, "HTTP/", 5) == 0)
			return fail(err, 505, "HTTP version not supported (HTTP/1.1 required)");
		return fail(err, 400, "Malformed request line");
	}
	if (s[7] != '0' && s[7] != '1')
		return fail(err, 505, "HTTP version not supported (HTTP/1.1 required)");
	req->minor_version = s[7] - '0';

	/* Split path and query; an absolute-form target keeps only its path. */
	struct http_str tg = req->target;
	if (tg.n && tg.p[0] != '/') {
		if (tg.n == 1 && tg.p[0] == '*')
			return fail(err, 400, "Asterisk-form request target not allowed");
		const char *scheme = memchr(tg.p, ':', tg.n);
		if (!scheme || (size_t)(tg.p + tg.n - scheme) < 3 || memcmp(scheme, "://", 3) != 0)
			return fail(err, 400, "Request target must be an absolute path");
		const char *auth = scheme + 3;
		const char *slash = memchr(auth, '/', (size_t)(tg.p + tg.n - auth));
		if (!slash)
			return fail(err, 400, "Request target has no path");
		tg.n -= (size_t)(slash - tg.p);
		tg.p = slash;
	}
	const char *q = memchr(tg.p, '?', tg.n);
	if (q) {
		req->path = (struct http_str){ tg.p, (size_t)(q - tg.p) };
		req->query = (struct http_str){ q + 1, (size_t)(tg.p + tg.n - q - 1) };
	} else {
		req->path = tg;
		req->query = (struct http_str){ tg.p + tg.n, 0 };
	}
	/* A fragment is never sent by a conforming client (RFC 6455 §3). */
	if (memchr(tg.p, '#', tg.n))
		return fail(err, 400, "Request target contains a fragment");
	return 0;
}

ssize_t http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
			   struct http_request *req, struct http_error *err)
{
	size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS_CAP ? lim->max_headers : HTTP_MAX_HEADERS_CAP;
	size_t scan = len < lim->max_head ? len : lim->max_head;

	/* RFC 9112 §2.2: ignore at least one empty line before the request line. */
	size_t start = 0;
	if (scan >= 2 && buf[0] == '\r' && buf[1] == '\n')
		start = 2;

	size_t head = find_head_end(buf, scan);

	/* Bare CR, bare LF and NUL anywhere in the head are refused, also
	 * while the head is still incomplete: a client that ends its lines
	 * with LF alone would otherwise never see its CRLFCRLF and only get
	 * an answer at the size limit or the timeout. A CR that is the last
	 * byte so far may still be followed by its LF. */
	size_t upto = head ? head : scan;
	for (size_t i = 0; i < upto; i++) {
		char c = buf[i];
		if (c == '\r' && i + 1 < upto && buf[i + 1] != '\n')
			return fail(err, 400, "Bare CR in request head");
		if (c == '\n' && (i == 0 || buf[i - 1] != '\r'))
			return fail(err, 400, "Bare LF in request head");
		if (c == '\0')
			return fail(err, 400, "NUL byte in request head");
	}

	if (!head) {
		if (len >= lim->max_head)
			return fail(err, 431, "Request header fields too large");
		/* Refuse obvious garbage early instead of waiting for a timeout:
		 * the first byte of a request line is a token character (or the
		 * CR of an empty line before it). */
		if (len > start && !is_tchar((unsigned char)buf[start]) &&
		    !(start == 0 && buf[0] == '\r'))
			return fail(err, 400, "Malformed request line");
		return 0;
	}

	const char *p = buf + start, *end = buf + head - 2; /* before final CRLF */
	const char *eol = memchr(p, '\r', (size_t)(end - p));
	if (!eol)
		return fail(err, 400, "Malformed request line");
	memset(req, 0, offsetof(struct http_request, headers));
	if (parse_request_line(p, eol, req, err) < 0)
		return -1;
	p = eol + 2;

	while (p < end) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol)
			return fail(err, 400, "Malformed header line");
		if (*p == ' ' || *p == '\t')
			return fail(err, 400, "Obsolete header line folding");
		const char *c = p;
		while (c < eol && is_tchar((unsigned char)*c))
			c++;
		if (c == p || c == eol || *c != ':')
			return fail(err, 400, c < eol && (*c == ' ' || *c == '\t')
					  ? "Whitespace before colon in header field"
					  : "Malformed header field name");
		if (req->nheaders >= max_headers)
			return fail(err, 431, "Too many request header fields");
		struct http_header *h = &req->headers[req->nheaders++];
		h->name = (struct http_str){ p, (size_t)(c - p) };
		const char *v = c + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *x = v; x < ve; x++) {
			unsigned char ch = (unsigned char)*x;
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return fail(err, 400, "Control character in header field value");
		}
		h->value = (struct http_str){ v, (size_t)(ve - v) };
		p = eol + 2;
	}

	/* Smuggling guards: exactly one Host (RFC 9112 §3.2: HTTP/1.0 may omit
	 * it, but no request may carry two), no body framing ambiguity. */
	size_t nhost = http_count_headers(req, "Host");
	if (nhost > 1)
		return fail(err, 400, "Duplicate Host header");
	if (nhost == 0 && req->minor_version == 1)
		return fail(err, 400, "Missing Host header");
	if (http_find_header(req, "Transfer-Encoding"))
		return fail(err, 501, "Request bodies are not supported (Transfer-Encoding)");
	size_t ncl = http_count_headers(req, "Content-Length");
	if (ncl > 1)
		return fail(err, 400, "Duplicate Content-Length header");
	if (ncl == 1) {
		/* RFC 9110 §8.6: 1*DIGIT. Any spelling of zero is no body. */
		const struct http_header *cl = http_find_header(req, "Content-Length");
		bool zero = true;
		if (cl->value.n == 0)
			return fail(err, 400, "Invalid Content-Length");
		for (size_t i = 0; i < cl->value.n; i++) {
			if (cl->value.p[i] < '0' || cl->value.p[i] > '9')
				return fail(err, 400, "Invalid Content-Length");
			zero &= cl->value.p[i] == '0';
		}
		if (!zero)
			return fail(err, 413, "Request bodies are not supported");
	}
	return (ssize_t)head;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (http_str_ieq(req->headers[i].name, name))
			return &req->headers[i];
	return NULL;
}

size_t http_count_headers(const struct http_request *req, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < req->nheaders; i++)
		if (http_str_ieq(req->headers[i].name, name))
			n++;
	return n;
}

bool http_list_has_token(struct http_str list, const char *token)
{
	size_t tn = strlen(token);
	const char *p = list.p, *end = list.p + list.n;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tn && strncasecmp(s, token, tn) == 0)
			return true;
	}
	return false;
}
