/* client_url — ws:// and wss:// URLs, HTTP proxy URLs and no_proxy
 * matching. Pure string work, any thread. */
#include "client_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

/* Splits "host[:port]" or "[v6][:port]" at s[0..n). */
static int parse_authority(const char *s, size_t n, char *host, size_t hostcap, bool *ipv6,
			   uint16_t *port, uint16_t defport, char *err, size_t errcap)
{
	const char *hs, *he, *rest;
	*ipv6 = false;
	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return fail(err, errcap, "unterminated IPv6 address (missing ']')");
		hs = s + 1;
		he = close;
		rest = close + 1;
		*ipv6 = true;
		if (memchr(hs, ':', (size_t)(he - hs)) == NULL)
			return fail(err, errcap, "'[%.*s]' is not an IPv6 address", (int)(he - hs), hs);
	} else {
		hs = s;
		const char *colon = memchr(s, ':', n);
		he = colon ? colon : s + n;
		rest = he;
		if (colon && memchr(colon + 1, ':', (size_t)(s + n - colon - 1)))
			return fail(err, errcap, "an IPv6 address must be written in brackets: [%.*s]", (int)n, s);
	}
	size_t hl = (size_t)(he - hs);
	if (hl == 0)
		return fail(err, errcap, "no host name");
	if (hl >= hostcap)
		return fail(err, errcap, "host name too long");
	for (size_t i = 0; i < hl; i++) {
		unsigned char ch = (unsigned char)hs[i];
		if (ch <= ' ' || ch >= 0x7f || strchr("/?#@[]\\\"<>", ch))
			return fail(err, errcap, "invalid character '%c' in the host name", ch > ' ' ? ch : '?');
	}
	memcpy(host, hs, hl);
	host[hl] = 0;
	*port = defport;
	const char *end = s + n;
	if (rest < end) {
		if (*rest != ':')
			return fail(err, errcap, "unexpected characters after the host");
		rest++;
		if (rest == end)
			return fail(err, errcap, "empty port");
		unsigned long v = 0;
		for (const char *q = rest; q < end; q++) {
			if (!isdigit((unsigned char)*q))
				return fail(err, errcap, "port is not a number");
			v = v * 10 + (unsigned long)(*q - '0');
			if (v > 65535)
				return fail(err, errcap, "port out of range (1-65535)");
		}
		if (v == 0)
			return fail(err, errcap, "port out of range (1-65535)");
		*port = (uint16_t)v;
	}
	return 0;
}

int cl_url_parse(const char *s, struct cl_url *u, char *err, size_t errcap)
{
	memset(u, 0, sizeof *u);
	if (!s)
		return fail(err, errcap, "no URL");
	const char *p;
	if (strncasecmp(s, "ws://", 5) == 0) {
		p = s + 5;
	} else if (strncasecmp(s, "wss://", 6) == 0) {
		p = s + 6;
		u->tls = true;
	} else {
		return fail(err, errcap, "URL must start with ws:// or wss://: %s", s);
	}
	size_t alen = strcspn(p, "/?#");
	if (memchr(p, '@', alen))
		return fail(err, errcap, "user names and passwords in a ws:// URL are not supported (send an Authorization header)");
	char perr[160];
	if (parse_authority(p, alen, u->host, sizeof u->host, &u->ipv6, &u->port, u->tls ? 443 : 80,
			    perr, sizeof perr) < 0)
		return fail(err, errcap, "invalid URL %s: %s", s, perr);
	const char *path = p + alen;
	/* RFC 6455 §3: fragment identifiers have no meaning in WebSocket URIs. */
	if (strchr(path, '#'))
		return fail(err, errcap, "invalid URL %s: a fragment (#...) is not allowed in a WebSocket URL", s);
	for (const char *q = path; *q; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
			return fail(err, errcap, "invalid URL %s: spaces and non-ASCII characters must be percent-encoded", s);
	if (*path == 0)
		path = "/";
	if (*path == '?') {
		if (strlen(path) + 2 > sizeof u->path)
			return fail(err, errcap, "URL path too long");
		snprintf(u->path, sizeof u->path, "/%s", path);
	} else {
		if (strlen(path) + 1 > sizeof u->path)
			return fail(err, errcap, "URL path too long");
		snprintf(u->path, sizeof u->path, "%s", path);
	}
	bool defport = u->port == (u->tls ? 443 : 80);
	const char *ob = u->ipv6 ? "[" : "", *cb = u->ipv6 ? "]" : "";
	if (defport)
		snprintf(u->hostport, sizeof u->hostport, "%s%s%s", ob, u->host, cb);
	else
		snprintf(u->hostport, sizeof u->hostport, "%s%s%s:%u", ob, u->host, cb, u->port);
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated). */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			if (i + 2 >= n)
				return -1;
			int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0)
				return -1;
			ch = a * 16 + b;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = 0;
	return 0;
}

int cl_proxy_parse(const char *s, struct cl_proxy *p, char *err, size_t errcap)
{
	memset(p, 0, sizeof *p);
	if (!s || !*s)
		return fail(err, errcap, "empty proxy URL");
	const char *q = s;
	const char *sep = strstr(s, "://");
	if (sep) {
		if ((size_t)(sep - s) != 4 || strncasecmp(s, "http", 4) != 0)
			return fail(err, errcap, "proxy %s: only http:// proxies are supported", s);
		q = sep + 3;
	}
	size_t alen = strcspn(q, "/?#");
	for (const char *t = q + alen; *t; t++)
		if (*t != '/')
			return fail(err, errcap, "proxy %s: a proxy URL has no path", s);
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++)
		if (q[i] == '@')
			at = q + i;
	if (at) {
		const char *colon = memchr(q, ':', (size_t)(at - q));
		size_t ul = colon ? (size_t)(colon - q) : (size_t)(at - q);
		if (pct_decode(q, ul, p->user, sizeof p->user) < 0)
			return fail(err, errcap, "proxy %s: bad user name", s);
		if (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), p->pass, sizeof p->pass) < 0)
			return fail(err, errcap, "proxy %s: bad password", s);
		p->has_auth = true;
		alen -= (size_t)(at + 1 - q);
		q = at + 1;
	}
	char perr[160];
	if (parse_authority(q, alen, p->host, sizeof p->host, &p->ipv6, &p->port, 1080, perr, sizeof perr) < 0)
		return fail(err, errcap, "proxy %s: %s", s, perr);
	return 0;
}

bool cl_no_proxy_match(const char *list, const char *host)
{
	if (!list || !host)
		return false;
	size_t hl = strlen(host);
	const char *p = list;
	while (*p) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		const char *e = p;
		size_t el = n;
		if (el == 1 && e[0] == '*')
			return true;
		if (e[0] == '[') {
			/* [v6] or [v6]:port */
			const char *cb = memchr(e, ']', el);
			if (cb) {
				e++;
				el = (size_t)(cb - e);
			}
		} else {
			const char *colon = memchr(e, ':', el);
			/* host:port, but not a bare IPv6 address (several colons) */
			if (colon && !memchr(colon + 1, ':', el - (size_t)(colon - e) - 1))
				el = (size_t)(colon - e);
		}
		if (el && e[0] == '.') {
			e++;
			el--;
		}
		if (el && el <= hl && strncasecmp(host + hl - el, e, el) == 0 &&
		    (el == hl || host[hl - el - 1] == '.'))
			return true;
		p += n;
	}
	return false;
}
