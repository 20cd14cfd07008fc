/* fuzz_edge_forwarded — trusted-proxy lists and the resolution of
 * X-Forwarded-For / X-Forwarded-Proto / Forwarded
 * (core/edge/edge_forwarded.c).
 *
 * Input layout:
 *   byte 0    bits 0-1 edge_trusted.headers (EDGE_FWD_* bits)
 *             bit 2    the peer is IPv6 (16 address bytes follow), else IPv4 (4)
 *             bit 3    an IPv4 peer is given as ::ffff:a.b.c.d (a dual-stack socket)
 *             bits 4-5 scheme buffer of 32, 0, 5 or 6 bytes
 *   4/16      the peer's address
 *   rest      lines: the first is the trusted list ("10.0.0.0/8, ::1");
 *             each further line is a request header "Name:value", or
 *             "1value", "2value", "3value" for X-Forwarded-For,
 *             X-Forwarded-Proto and Forwarded. The request is built
 *             directly, not parsed, so values may hold any byte.
 *   A list that does not parse is replaced by a fixed one, so that header
 *   inputs keep being exercised.
 *
 * Checks, beyond "no crash, no leak":
 *  - a parsed list has at most EDGE_TRUSTED_MAX blocks, each IPv4 or IPv6
 *    with a prefix in range and no host bits; written back as text and
 *    parsed again it is the same list; a refused list has a reason and
 *    trusts nobody;
 *  - edge_trusted_contains agrees with a bit-by-bit reference of the
 *    documented rule (IPv4-mapped addresses are IPv4) for the peer and
 *    for every address the headers hold;
 *  - edge_forwarded_resolve returns 0 or 1 with an AF_INET/AF_INET6
 *    client of the right length; 0 means the client is exactly the peer;
 *  - headers are never believed from an untrusted peer: the client is the
 *    peer, the scheme "", and *why says so when such headers were sent —
 *    checked with the input's list and again with an empty one;
 *  - an address taken from the headers (1) is one that is written in an
 *    X-Forwarded-For or Forwarded value, of a header family the list
 *    allows; a scheme is "" or a lower-case RFC 3986 scheme of at most
 *    EDGE_SCHEME_MAX bytes that fits the buffer and is written in an
 *    X-Forwarded-Proto or Forwarded value;
 *  - the same call twice gives the same answer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <strings.h>

#include "edge/edge_forwarded.h"
#include "fuzz_common.h"

static const char *FALLBACK_LIST = "10.0.0.0/8, fd00::/8, 192.0.2.0/24, ::ffff:198.51.100.0/120";

/* ---- references -------------------------------------------------------- */

static bool bit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

static bool ref_contains(const struct edge_trusted *t, const struct sockaddr *sa)
{
	static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	bool v4;
	if (sa->sa_family == AF_INET) {
		memcpy(a, mapped_prefix, 12);
		memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		v4 = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		v4 = memcmp(a, mapped_prefix, 12) == 0;
	} else {
		return false;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct edge_cidr *c = &t->cidr[i];
		bool match = true;
		if (c->family == AF_INET) {
			if (!v4)
				continue;
			for (unsigned b = 0; b < c->prefix && match; b++)
				match = bit(a + 12, b) == bit(c->addr, b);
		} else {
			/* An IPv4 address only matches IPv6 blocks inside
			 * ::ffff:0:0/96. */
			if (v4 && (c->prefix < 96 || memcmp(c->addr, mapped_prefix, 12) != 0))
				continue;
			for (unsigned b = 0; b < c->prefix && match; b++)
				match = bit(a, b) == bit(c->addr, b);
		}
		if (match)
			return true;
	}
	return false;
}

static void check_list(const struct edge_trusted *t)
{
	CHECK(t->n <= EDGE_TRUSTED_MAX, "%zu blocks", t->n);
	char *text = malloc(t->n * 64 + 1);
	size_t o = 0;
	text[0] = '\0';
	for (size_t i = 0; i < t->n; i++) {
		const struct edge_cidr *c = &t->cidr[i];
		unsigned max = c->family == AF_INET ? 32 : 128;
		CHECK(c->family == AF_INET || c->family == AF_INET6, "block family %d", c->family);
		CHECK(c->prefix <= max, "prefix /%u", c->prefix);
		for (unsigned b = c->prefix; b < max; b++)
			CHECK(!bit(c->addr, b), "host bit %u set in a /%u block", b, c->prefix);
		if (c->family == AF_INET)
			for (unsigned b = 4; b < 16; b++)
				CHECK(c->addr[b] == 0, "IPv4 block with bytes beyond 4");
		char ip[INET6_ADDRSTRLEN];
		inet_ntop(c->family, c->addr, ip, sizeof ip);
		o += (size_t)snprintf(text + o, 64, "%s%s/%u", i ? ", " : "", ip, c->prefix);
	}
	struct edge_trusted *again = malloc(sizeof *again);
	char err[256];
	int r = edge_trusted_parse(text, again, err, sizeof err);
	CHECK(r == 0, "list written back does not parse: '%s': %s", text, err);
	CHECK(again->n == t->n && memcmp(again->cidr, t->cidr, t->n * sizeof t->cidr[0]) == 0,
	      "list written back parses differently: '%s'", text);
	free(again);
	free(text);
}

/* ---- what the headers hold ------------------------------------------------ */

static bool name_is(struct http_str n, const char *name)
{
	return http_str_ieq(n, name);
}

/* The value with every backslash removed (quoted-pairs undone, loosely). */
static size_t unescape(struct http_str v, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < v.n && o + 1 < cap; i++)
		if (v.p[i] != '\\')
			out[o++] = v.p[i];
	out[o] = '\0';
	return o;
}

static bool is_sep(char c)
{
	return strchr(",; \t\"[]=", c) != NULL || c == '\0';
}

/* Calls fn on every piece of the values of headers `name`, split at
 * separators; stops early when fn returns true. */
static bool any_token(const struct http_request *req, const char *name,
		      bool (*fn)(const char *tok, size_t n, void *arg), void *arg)
{
	static char buf[70000];
	for (size_t h = 0; h < req->nheaders; h++) {
		if (!name_is(req->headers[h].name, name))
			continue;
		size_t n = unescape(req->headers[h].value, buf, sizeof buf);
		for (size_t i = 0; i < n;) {
			while (i < n && is_sep(buf[i]))
				i++;
			size_t s = i;
			while (i < n && !is_sep(buf[i]))
				i++;
			if (i > s && fn(buf + s, i - s, arg))
				return true;
		}
	}
	return false;
}

static bool token_is_addr(const char *tok, size_t n, void *arg)
{
	const struct sockaddr_storage *c = arg;
	char s[64];
	uint8_t a[16];
	if (c->ss_family == AF_INET) {
		/* "a.b.c.d" or "a.b.c.d:port" (the port may be long: "_obf"). */
		const char *colon = memchr(tok, ':', n);
		if (colon && memchr(colon + 1, ':', n - (size_t)(colon - tok) - 1))
			return false;
		size_t an = colon ? (size_t)(colon - tok) : n;
		if (an >= sizeof s)
			return false;
		memcpy(s, tok, an);
		s[an] = '\0';
		return inet_pton(AF_INET, s, a) == 1 &&
		       memcmp(a, &((const struct sockaddr_in *)c)->sin_addr, 4) == 0;
	}
	/* Brackets are separators: the token is the address itself (a token
	 * such as ":4711" never parses). */
	if (n >= sizeof s)
		return false;
	memcpy(s, tok, n);
	s[n] = '\0';
	return inet_pton(AF_INET6, s, a) == 1 && memcmp(a, &((const struct sockaddr_in6 *)c)->sin6_addr, 16) == 0;
}

static bool token_is_scheme(const char *tok, size_t n, void *arg)
{
	const char *scheme = arg;
	return n == strlen(scheme) && strncasecmp(tok, scheme, n) == 0;
}

static bool token_trust_agrees(const char *tok, size_t n, void *arg)
{
	const struct edge_trusted *t = arg;
	char s[64];
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (n >= sizeof s)
		return false;
	memcpy(s, tok, n);
	s[n] = '\0';
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1)
		a4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1)
		a6->sin6_family = AF_INET6;
	else
		return false;
	bool got = edge_trusted_contains(t, (const struct sockaddr *)&ss);
	bool want = ref_contains(t, (const struct sockaddr *)&ss);
	CHECK(got == want, "contains(%s) = %d, reference %d", s, got, want);
	return false;
}

/* ---- the target ----------------------------------------------------------- */

struct answer {
	int rc;
	struct sockaddr_storage client;
	socklen_t len;
	char scheme[40];
	const char *why;
};

static struct answer run(const struct edge_trusted *t, const struct sockaddr *peer,
			 const struct http_request *req, size_t cap)
{
	struct answer a;
	memset(&a, 0xAA, sizeof a);
	a.rc = edge_forwarded_resolve(t, peer, req, &a.client, &a.len, a.scheme, cap, &a.why);
	return a;
}

static bool same_addr(const struct sockaddr_storage *c, socklen_t len, const struct sockaddr *peer)
{
	size_t want = peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	return len == want && memcmp(c, peer, want) == 0;
}

static void check_answer(const struct answer *a, const struct edge_trusted *t, const struct sockaddr *peer,
			 const struct http_request *req, size_t cap)
{
	bool has_xff = http_find_header(req, "X-Forwarded-For");
	bool has_xfp = http_find_header(req, "X-Forwarded-Proto");
	bool has_fwd = http_find_header(req, "Forwarded");
	bool trusted = ref_contains(t, peer);
	const char *scheme = cap ? a->scheme : "";

	CHECK(a->rc == 0 || a->rc == 1, "rc %d", a->rc);
	CHECK(a->client.ss_family == AF_INET || a->client.ss_family == AF_INET6, "client family %d",
	      a->client.ss_family);
	CHECK(a->len == (a->client.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)),
	      "client length %u", (unsigned)a->len);
	if (cap)
		CHECK(memchr(a->scheme, '\0', cap) != NULL, "scheme not terminated within its buffer");

	if (!has_xff && !has_xfp && !has_fwd) {
		CHECK(a->rc == 0 && !a->why && !*scheme, "no forwarding header, yet rc %d why %s", a->rc,
		      a->why ? a->why : "-");
	}
	if (!trusted) {
		CHECK(a->rc == 0, "headers believed from an untrusted peer");
		CHECK(!*scheme, "scheme '%s' from an untrusted peer", scheme);
		if (has_xff || has_xfp || has_fwd)
			CHECK(a->why && strstr(a->why, "untrusted"), "untrusted peer ignored without a reason");
	}
	if (a->rc == 0) {
		CHECK(same_addr(&a->client, a->len, peer), "rc 0 but the client is not the peer");
	} else {
		CHECK(trusted, "address from the headers of an untrusted peer");
		bool from_xff = (t->headers & EDGE_FWD_XFF) && has_xff;
		bool from_fwd = !from_xff && (t->headers & EDGE_FWD_FORWARDED) && has_fwd;
		CHECK(from_xff || from_fwd, "address from a header family the list does not allow");
		CHECK(any_token(req, from_xff ? "X-Forwarded-For" : "Forwarded", token_is_addr,
				(void *)&a->client),
		      "client address is not written in %s", from_xff ? "X-Forwarded-For" : "Forwarded");
	}
	if (*scheme) {
		size_t n = strlen(scheme);
		CHECK(trusted, "scheme from an untrusted peer");
		CHECK(n <= EDGE_SCHEME_MAX && n < cap, "scheme of %zu bytes for a %zu-byte buffer", n, cap);
		CHECK(scheme[0] >= 'a' && scheme[0] <= 'z', "scheme '%s'", scheme);
		for (size_t i = 1; i < n; i++)
			CHECK((scheme[i] >= 'a' && scheme[i] <= 'z') || (scheme[i] >= '0' && scheme[i] <= '9') ||
			      strchr("+-.", scheme[i]), "scheme '%s'", scheme);
		CHECK(any_token(req, "X-Forwarded-Proto", token_is_scheme, (void *)scheme) ||
		      any_token(req, "Forwarded", token_is_scheme, (void *)scheme),
		      "scheme '%s' is not written in any header", scheme);
	}
}

#define MAX_INPUT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_INPUT)
		return 0;
	uint8_t set = data[0];
	size_t alen = (set & 4) ? 16 : 4;
	if (size < 1 + alen)
		return 0;
	static const size_t caps[4] = { 32, 0, 5, 6 };
	size_t cap = caps[(set >> 4) & 3];

	struct sockaddr_storage peer;
	memset(&peer, 0, sizeof peer);
	if (alen == 16) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&peer;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, data + 1, 16);
		a->sin6_port = htons(40000);
	} else if (set & 8) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&peer;
		a->sin6_family = AF_INET6;
		a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&a->sin6_addr.s6_addr[12], data + 1, 4);
		a->sin6_port = htons(40000);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&peer;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, data + 1, 4);
		a->sin_port = htons(40000);
	}
	const char *text = (const char *)data + 1 + alen;
	size_t tn = size - 1 - alen;

	/* The trusted list: the first line. */
	const char *nl = memchr(text, '\n', tn);
	size_t ln = nl ? (size_t)(nl - text) : tn;
	char *list = malloc(ln + 1);
	memcpy(list, text, ln);
	list[ln] = '\0';
	struct edge_trusted *t = malloc(sizeof *t);
	char err[256];
	if (edge_trusted_parse(list, t, err, sizeof err) == 0) {
		check_list(t);
	} else {
		CHECK(t->n == 0 && err[0], "refused list with %zu blocks or no reason", t->n);
		CHECK(edge_trusted_parse(FALLBACK_LIST, t, err, sizeof err) == 0, "fallback: %s", err);
	}
	free(list);
	t->headers = set & 3;

	/* The headers. */
	struct http_request *req = calloc(1, sizeof *req);
	static const char *const short_names[] = { "X-Forwarded-For", "X-Forwarded-Proto", "Forwarded" };
	const char *p = nl ? nl + 1 : text + tn, *end = text + tn;
	req->headers[req->nheaders++] = (struct http_header){ { "Host", 4 }, { "gw", 2 } };
	while (p < end && req->nheaders < HTTP_MAX_HEADERS_CAP) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			e = end;
		struct http_header h;
		if (p < e && *p >= '1' && *p <= '3') {
			const char *nm = short_names[*p - '1'];
			h.name = (struct http_str){ nm, strlen(nm) };
			h.value = (struct http_str){ p + 1, (size_t)(e - p - 1) };
			req->headers[req->nheaders++] = h;
		} else {
			const char *colon = memchr(p, ':', (size_t)(e - p));
			if (colon) {
				h.name = (struct http_str){ p, (size_t)(colon - p) };
				h.value = (struct http_str){ colon + 1, (size_t)(e - colon - 1) };
				req->headers[req->nheaders++] = h;
			}
		}
		p = e + 1;
	}

	/* Trust of the peer and of every address the headers hold agrees with
	 * the reference. */
	const struct sockaddr *sp = (const struct sockaddr *)&peer;
	CHECK(edge_trusted_contains(t, sp) == ref_contains(t, sp), "contains(peer) disagrees with the reference");
	any_token(req, "X-Forwarded-For", token_trust_agrees, t);
	any_token(req, "Forwarded", token_trust_agrees, t);

	struct answer a = run(t, sp, req, cap);
	check_answer(&a, t, sp, req, cap);
	struct answer b = run(t, sp, req, cap);
	CHECK(a.rc == b.rc && a.len == b.len && memcmp(&a.client, &b.client, a.len) == 0 && a.why == b.why &&
	      (!cap || strcmp(a.scheme, b.scheme) == 0), "a second call answers differently");

	/* With nobody trusted, nothing is believed. */
	unsigned headers = t->headers;
	CHECK(edge_trusted_parse("", t, err, sizeof err) == 0 && t->n == 0, "empty list: %s", err);
	t->headers = headers;
	a = run(t, sp, req, cap);
	check_answer(&a, t, sp, req, cap);
	CHECK(a.rc == 0 && same_addr(&a.client, a.len, sp), "believed with an empty trusted list");

	free(req);
	free(t);
	return 0;
}
