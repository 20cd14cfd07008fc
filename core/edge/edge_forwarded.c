/* edge_forwarded — see edge_forwarded.h. */
#include "edge/edge_forwarded.h"

#include <arpa/inet.h>
#include <mbgw/plugin.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

static const uint8_t V4MAPPED[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* An IPv4 or IPv6 address, exactly as inet_pton(3) reads it: dotted quads
 * without leading zeros, no zone ids. */
static bool parse_ip(const char *s, size_t n, int only_family, int *family, uint8_t addr[16])
{
	char buf[INET6_ADDRSTRLEN];
	if (n == 0 || n >= sizeof buf || memchr(s, '\0', n))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (only_family != AF_INET6 && inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (only_family != AF_INET && inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

/* 1*5DIGIT, at most 65535. */
static bool parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;
	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* RFC 7239 §6.3 obfuscated identifier, the "_" included. */
static bool is_obf(const char *s, size_t n)
{
	if (n < 2 || s[0] != '_')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* ---- trusted list ---------------------------------------------------- */

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix / 8, rem = prefix % 8;
	if (memcmp(a, net, full) != 0)
		return false;
	if (rem == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rem));
	return (a[full] & mask) == net[full];
}

/* Matching works on a normalised address: an IPv4-mapped IPv6 address is
 * the IPv4 address it maps, so a client is judged the same whether it
 * reached an IPv4 or a dual-stack socket. An IPv4 address then matches
 * the IPv4 blocks, and the IPv6 blocks inside ::ffff:0:0/96 through its
 * mapped form — but not "::/0", which an operator writes to mean "all of
 * IPv6". */
static bool contains_raw(const struct edge_trusted *t, int family, const uint8_t *addr)
{
	uint8_t v4[4], mapped[16];
	if (family == AF_INET6 && memcmp(addr, V4MAPPED, 12) == 0) {
		memcpy(v4, addr + 12, 4);
		family = AF_INET;
		addr = v4;
	}
	if (family == AF_INET) {
		memcpy(mapped, V4MAPPED, 12);
		memcpy(mapped + 12, addr, 4);
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct edge_cidr *c = &t->cidr[i];
		if (c->family == family) {
			if (prefix_match(addr, c->addr, c->prefix))
				return true;
		} else if (family == AF_INET && c->family == AF_INET6 && c->prefix >= 96 &&
			   memcmp(c->addr, V4MAPPED, 12) == 0) {
			if (prefix_match(mapped, c->addr, c->prefix))
				return true;
		}
	}
	return false;
}

bool edge_trusted_contains(const struct edge_trusted *t, const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET)
		return contains_raw(t, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr);
	if (addr->sa_family == AF_INET6)
		return contains_raw(t, AF_INET6,
				    (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr);
	return false;
}

static int entry_error(char *err, size_t errcap, const char *s, size_t n, const char *what)
{
	if (err && errcap)
		snprintf(err, errcap, "'%.*s': %s", n > 64 ? 64 : (int)n, s, what);
	return MBGW_E_INVAL;
}

static int parse_entry(const char *s, size_t n, struct edge_cidr *c, char *err, size_t errcap)
{
	const char *slash = memchr(s, '/', n);
	size_t an = slash ? (size_t)(slash - s) : n;
	memset(c, 0, sizeof *c);
	if (!parse_ip(s, an, 0, &c->family, c->addr))
		return entry_error(err, errcap, s, n, "not an IPv4 or IPv6 address");
	unsigned max = c->family == AF_INET ? 32 : 128;
	unsigned prefix = max;
	if (slash) {
		const char *d = slash + 1;
		size_t dn = n - an - 1;
		prefix = 0;
		if (dn == 0 || dn > 3 || (dn > 1 && d[0] == '0'))
			return entry_error(err, errcap, s, n, "prefix length must be a decimal number without leading zeros");
		for (size_t i = 0; i < dn; i++) {
			if (!is_digit(d[i]))
				return entry_error(err, errcap, s, n, "prefix length must be a decimal number without leading zeros");
			prefix = prefix * 10 + (unsigned)(d[i] - '0');
		}
		if (prefix > max)
			return entry_error(err, errcap, s, n, max == 32 ? "prefix length must be 0..32 for IPv4"
								       : "prefix length must be 0..128 for IPv6");
	}
	c->prefix = (uint8_t)prefix;

	/* Bits beyond the prefix are almost always a typo for another
	 * network: refuse rather than silently trust a wider or narrower one. */
	uint8_t net[16] = { 0 };
	size_t bytes = max / 8;
	memcpy(net, c->addr, bytes);
	for (unsigned b = prefix; b < max; b++)
		net[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
	if (memcmp(net, c->addr, bytes) != 0) {
		char ip[INET6_ADDRSTRLEN], msg[128];
		inet_ntop(c->family, net, ip, sizeof ip);
		snprintf(msg, sizeof msg, "has host bits set (did you mean %s/%u?)", ip, prefix);
		return entry_error(err, errcap, s, n, msg);
	}
	return 0;
}

int edge_trusted_parse(const char *list, struct edge_trusted *out, char *err, size_t errcap)
{
	enum { START, COMMA, ENTRY } last = START;
	memset(out, 0, sizeof *out);
	out->headers = EDGE_FWD_XFF | EDGE_FWD_FORWARDED;
	if (err && errcap)
		err[0] = '\0';
	if (!list)
		return 0;
	for (size_t i = 0;;) {
		while (is_blank(list[i]))
			i++;
		if (list[i] == '\0') {
			if (last == COMMA)
				goto out_empty;
			return 0;
		}
		if (list[i] == ',') {
			if (last != ENTRY)
				goto out_empty;
			last = COMMA;
			i++;
			continue;
		}
		size_t j = i;
		while (list[j] && list[j] != ',' && !is_blank(list[j]))
			j++;
		if (out->n == EDGE_TRUSTED_MAX) {
			if (err && errcap)
				snprintf(err, errcap, "more than %d trusted proxy entries", EDGE_TRUSTED_MAX);
			goto out_clear;
		}
		if (parse_entry(list + i, j - i, &out->cidr[out->n], err, errcap) < 0)
			goto out_clear;
		out->n++;
		last = ENTRY;
		i = j;
	}
out_empty:
	if (err && errcap)
		snprintf(err, errcap, "empty entry in the trusted proxy list (two commas, or one at an end)");
out_clear:
	out->n = 0;
	return MBGW_E_INVAL;
}

/* ---- shared by both header families ----------------------------------- */

static void set_addr(struct sockaddr_storage *ss, socklen_t *len, int family, const uint8_t *addr,
		     uint16_t port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, addr, 4);
		a->sin_port = htons(port);
		*len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, addr, 16);
		a->sin6_port = htons(port);
		*len = sizeof *a;
	}
}

/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static bool is_scheme(const char *s, size_t n)
{
	if (n == 0 || n > EDGE_SCHEME_MAX || !is_alpha(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

static bool put_scheme(char *out, size_t cap, const char *s, size_t n)
{
	if (n + 1 > cap)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
	out[n] = '\0';
	return true;
}

enum node_kind { NODE_BAD, NODE_IP, NODE_HIDDEN };

struct node {
	int family;
	uint8_t addr[16];
	uint16_t port;
};

/* ---- X-Forwarded-For / X-Forwarded-Proto ------------------------------ */

/* Walks the elements of every header line named `name`, from the last
 * element of the last line to the first of the first, skipping empty ones
 * (RFC 9110 §5.6.1). Element boundaries are plain commas: these headers
 * have no quoting. */
struct rlist {
	const struct http_request *req;
	const char *name;
	size_t hi;             /* headers[hi..] are done */
	const char *s, *e;     /* what is left of the current line */
	bool active;
};

static void rlist_init(struct rlist *it, const struct http_request *req, const char *name)
{
	it->req = req;
	it->name = name;
	it->hi = req->nheaders;
	it->s = it->e = NULL;
	it->active = false;
}

static bool rlist_prev(struct rlist *it, struct http_str *out)
{
	for (;;) {
		if (!it->active) {
			while (it->hi > 0 && !http_str_ieq(it->req->headers[it->hi - 1].name, it->name))
				it->hi--;
			if (it->hi == 0)
				return false;
			const struct http_header *h = &it->req->headers[--it->hi];
			if (h->value.n == 0)
				continue;
			it->s = h->value.p;
			it->e = h->value.p + h->value.n;
			it->active = true;
		}
		const char *b = it->e, *end = it->e;
		while (b > it->s && b[-1] != ',')
			b--;
		if (b > it->s)
			it->e = b - 1;
		else
			it->active = false;
		while (b < end && is_blank(*b))
			b++;
		while (end > b && is_blank(end[-1]))
			end--;
		if (b == end)
			continue;
		*out = (struct http_str){ b, (size_t)(end - b) };
		return true;
	}
}

/* One X-Forwarded-For element: "192.0.2.1", "192.0.2.1:4711",
 * "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:4711", or a hidden client
 * ("unknown", "_name"). */
static enum node_kind xff_element(struct http_str el, struct node *nd)
{
	const char *s = el.p;
	size_t n = el.n;
	nd->port = 0;
	if ((n == 7 && strncasecmp(s, "unknown", 7) == 0) || is_obf(s, n))
		return NODE_HIDDEN;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close || !parse_ip(s + 1, (size_t)(close - s - 1), AF_INET6, &nd->family, nd->addr))
			return NODE_BAD;
		size_t rest = n - (size_t)(close - s) - 1;
		if (rest == 0)
			return NODE_IP;
		if (close[1] != ':' || !parse_port(close + 2, rest - 1, &nd->port))
			return NODE_BAD;
		return NODE_IP;
	}
	const char *colon = memchr(s, ':', n);
	if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) {
		/* One colon: an IPv4 address and its port. */
		size_t an = (size_t)(colon - s);
		if (!parse_ip(s, an, AF_INET, &nd->family, nd->addr) || !parse_port(colon + 1, n - an - 1, &nd->port))
			return NODE_BAD;
		return NODE_IP;
	}
	return parse_ip(s, n, 0, &nd->family, nd->addr) ? NODE_IP : NODE_BAD;
}

/* The X-Forwarded-Proto element for hop k (0 = rightmost), or its leftmost
 * element when it has fewer. Returns false when the header is absent. */
static bool xfp_element(const struct http_request *req, size_t k, struct http_str *out)
{
	struct rlist it;
	struct http_str el;
	bool any = false;
	rlist_init(&it, req, "X-Forwarded-Proto");
	for (size_t j = 0; j <= k && rlist_prev(&it, &el); j++) {
		*out = el;
		any = true;
	}
	return any;
}

static void xfp_scheme(const struct http_request *req, size_t k, char *scheme, size_t cap, const char **why)
{
	struct http_str el;
	if (!xfp_element(req, k, &el))
		return;
	if (!is_scheme(el.p, el.n)) {
		*why = "X-Forwarded-Proto is not a URI scheme: header ignored";
		return;
	}
	if (!put_scheme(scheme, cap, el.p, el.n))
		*why = "X-Forwarded-Proto longer than the caller's buffer: header ignored";
}

static int resolve_xff(const struct edge_trusted *t, const struct http_request *req,
		       struct sockaddr_storage *client, socklen_t *client_len, char *scheme, size_t cap,
		       const char **why)
{
	struct rlist it;
	struct http_str el;
	struct node nd, chosen = { 0 };
	size_t k = 0;          /* hops skipped so far: the chosen one's index from the right */
	bool found = false, untrusted = false;
	rlist_init(&it, req, "X-Forwarded-For");
	while (rlist_prev(&it, &el)) {
		enum node_kind kind = xff_element(el, &nd);
		if (kind == NODE_BAD) {
			*why = "X-Forwarded-For holds something other than an IP address: X-Forwarded-* ignored";
			return 0;
		}
		if (kind == NODE_HIDDEN) {
			*why = "X-Forwarded-For: client hidden (\"unknown\" or obfuscated)";
			xfp_scheme(req, k, scheme, cap, why);
			return 0;
		}
		chosen = nd;
		found = true;
		if (!contains_raw(t, nd.family, nd.addr)) {
			untrusted = true;
			break;
		}
		k++;
	}
	if (!found) {
		*why = "X-Forwarded-For without any address: X-Forwarded-* ignored";
		return 0;
	}
	if (!untrusted)
		k--; /* every hop trusted: the leftmost is the client */
	set_addr(client, client_len, chosen.family, chosen.addr, chosen.port);
	xfp_scheme(req, k, scheme, cap, why);
	return 1;
}

/* ---- Forwarded (RFC 7239) -------------------------------------------- */

struct fwd_value {
	const char *p;   /* token, or the inside of a quoted string */
	size_t n;
	bool quoted;
};

struct fwd_elem {
	struct fwd_value for_, proto;
	bool has_for, has_proto;
};

struct fwd_list {
	struct fwd_elem ring[EDGE_FWD_MAX_HOPS]; /* the last ones, by count % size */
	size_t count;
};

#define FWD_VALUE_MAX 256

/* The value's text, quoted-pairs undone, NUL-terminated in buf. Returns
 * its length or -1 when it does not fit. */
static ssize_t value_text(const struct fwd_value *v, char *buf, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < v->n; i++) {
		char c = v->p[i];
		if (v->quoted && c == '\\')
			c = v->p[++i]; /* the parser saw a character after it */
		if (o + 1 >= cap)
			return -1;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return (ssize_t)o;
}

/* RFC 7239 §6: node = nodename [ ":" node-port ]. */
static enum node_kind parse_node(const char *s, size_t n, struct node *nd)
{
	const char *name_end;
	enum node_kind kind;
	nd->port = 0;
	if (n > 0 && s[0] == '[') {
		/* §6.1: IPv6 only in brackets (and so only quoted). */
		name_end = memchr(s, ']', n);
		if (!name_end || !parse_ip(s + 1, (size_t)(name_end - s - 1), AF_INET6, &nd->family, nd->addr))
			return NODE_BAD;
		name_end++;
		kind = NODE_IP;
	} else {
		name_end = memchr(s, ':', n);
		if (!name_end)
			name_end = s + n;
		size_t nn = (size_t)(name_end - s);
		if ((nn == 7 && strncasecmp(s, "unknown", 7) == 0) || is_obf(s, nn))
			kind = NODE_HIDDEN;
		else if (parse_ip(s, nn, AF_INET, &nd->family, nd->addr))
			kind = NODE_IP;
		else
			return NODE_BAD;
	}
	size_t rest = n - (size_t)(name_end - s);
	if (rest == 0)
		return kind;
	if (name_end[0] != ':' || rest < 2)
		return NODE_BAD;
	if (is_obf(name_end + 1, rest - 1))
		return kind; /* obfuscated port: the address stays usable */
	return parse_port(name_end + 1, rest - 1, &nd->port) ? kind : NODE_BAD;
}

/* RFC 9110 §7.2 Host: uri-host [ ":" port ], loosely: the characters of a
 * reg-name, an IP-literal and a port. */
static bool is_host(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!is_alpha(c) && !is_digit(c) && !strchr("-._~!$&'()*+,;=%:[]", c))
			return false;
	}
	return true;
}

enum { P_FOR = 1, P_BY = 2, P_PROTO = 4, P_HOST = 8 };

/* Checks one parameter's value; records for= and proto=. */
static const char *fwd_param(struct http_str name, const struct fwd_value *v, unsigned *seen,
			     struct fwd_elem *e)
{
	unsigned bit = http_str_ieq(name, "for") ? P_FOR : http_str_ieq(name, "by") ? P_BY
		       : http_str_ieq(name, "proto") ? P_PROTO : http_str_ieq(name, "host") ? P_HOST : 0;
	if (!bit)
		return NULL; /* an extension (§5.5): any token or quoted string */
	if (*seen & bit)
		return "Forwarded: parameter repeated in one element";
	*seen |= bit;
	char buf[FWD_VALUE_MAX];
	ssize_t len = value_text(v, buf, sizeof buf);
	if (len < 0)
		return "Forwarded: value too long";
	struct node nd;
	switch (bit) {
	case P_FOR:
		if (parse_node(buf, (size_t)len, &nd) == NODE_BAD)
			return "Forwarded: for= is not a node (IPv4, \"[IPv6]\", unknown or _name, optional :port)";
		e->for_ = *v;
		e->has_for = true;
		break;
	case P_BY:
		if (parse_node(buf, (size_t)len, &nd) == NODE_BAD)
			return "Forwarded: by= is not a node";
		break;
	case P_PROTO:
		if (!is_scheme(buf, (size_t)len))
			return "Forwarded: proto= is not a URI scheme";
		e->proto = *v;
		e->has_proto = true;
		break;
	default:
		if (!is_host(buf, (size_t)len))
			return "Forwarded: host= is not a host";
		break;
	}
	return NULL;
}

/* RFC 7230 §3.2.6 quoted-string, from the opening quote at v[*i]. */
static const char *quoted(const char *v, size_t n, size_t *i, struct fwd_value *out)
{
	size_t s = ++*i;
	for (; *i < n && v[*i] != '"'; (*i)++) {
		unsigned char c = (unsigned char)v[*i];
		if (c == '\\') {
			if (++*i == n)
				break;
			c = (unsigned char)v[*i];
			if (c != '\t' && (c < 0x20 || c == 0x7F))
				return "Forwarded: control character in a quoted string";
		} else if (c != '\t' && (c < 0x20 || c == 0x7F)) {
			return "Forwarded: control character in a quoted string";
		}
	}
	if (*i >= n)
		return "Forwarded: unterminated quoted string";
	*out = (struct fwd_value){ v + s, *i - s, true };
	(*i)++;
	return NULL;
}

/* Parses one Forwarded header line, appending its elements to l. */
static const char *fwd_parse_line(const char *v, size_t n, struct fwd_list *l)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && is_blank(v[i]))
			i++;
		if (i == n)
			break;
		if (v[i] == ',') { /* empty element (RFC 9110 §5.6.1) */
			i++;
			continue;
		}
		struct fwd_elem e = { 0 };
		unsigned seen = 0;
		for (;;) {
			while (i < n && is_blank(v[i]))
				i++;
			if (i < n && v[i] == ';') { /* empty pair */
				i++;
				continue;
			}
			if (i == n || v[i] == ',')
				break;
			size_t ns = i;
			while (i < n && is_tchar(v[i]))
				i++;
			if (i == ns)
				return "Forwarded: expected a parameter name";
			if (i == n || v[i] != '=')
				return "Forwarded: expected '=' right after a parameter name";
			struct http_str name = { v + ns, i - ns };
			struct fwd_value val;
			i++;
			if (i < n && v[i] == '"') {
				const char *r = quoted(v, n, &i, &val);
				if (r)
					return r;
			} else {
				size_t vs = i;
				while (i < n && is_tchar(v[i]))
					i++;
				if (i == vs)
					return "Forwarded: parameter without a value";
				val = (struct fwd_value){ v + vs, i - vs, false };
			}
			const char *r = fwd_param(name, &val, &seen, &e);
			if (r)
				return r;
			while (i < n && is_blank(v[i]))
				i++;
			if (i < n && v[i] != ';' && v[i] != ',')
				return "Forwarded: expected ';' or ',' after a value";
		}
		l->ring[l->count % EDGE_FWD_MAX_HOPS] = e;
		l->count++;
	}
	return NULL;
}

static int resolve_forwarded(const struct edge_trusted *t, const struct http_request *req,
			     struct sockaddr_storage *client, socklen_t *client_len, char *scheme,
			     size_t cap, const char **why)
{
	/* ~1.3 KiB on the stack, once per handshake. */
	struct fwd_list l;
	l.count = 0;
	for (size_t h = 0; h < req->nheaders; h++) {
		if (!http_str_ieq(req->headers[h].name, "Forwarded"))
			continue;
		const char *r = fwd_parse_line(req->headers[h].value.p, req->headers[h].value.n, &l);
		if (r) {
			*why = r;
			return 0;
		}
	}
	if (l.count == 0) {
		*why = "Forwarded without any element: header ignored";
		return 0;
	}

	size_t lo = l.count > EDGE_FWD_MAX_HOPS ? l.count - EDGE_FWD_MAX_HOPS : 0;
	const struct fwd_elem *e = NULL;
	struct node nd = { 0 };
	enum node_kind kind = NODE_HIDDEN;
	for (size_t i = l.count; i-- > lo;) {
		e = &l.ring[i % EDGE_FWD_MAX_HOPS];
		kind = NODE_HIDDEN;
		if (e->has_for) {
			char buf[FWD_VALUE_MAX];
			ssize_t len = value_text(&e->for_, buf, sizeof buf);
			kind = parse_node(buf, (size_t)len, &nd); /* checked when parsed */
		}
		if (kind != NODE_IP || i == 0 || !contains_raw(t, nd.family, nd.addr))
			break;
		if (i == lo) {
			*why = "Forwarded: more trusted hops than mbgw walks (32), client unknown";
			return 0;
		}
	}
	if (e->has_proto) {
		char buf[FWD_VALUE_MAX];
		ssize_t len = value_text(&e->proto, buf, sizeof buf);
		if (!put_scheme(scheme, cap, buf, (size_t)len))
			*why = "Forwarded: proto= longer than the caller's buffer: ignored";
	}
	if (kind != NODE_IP) {
		*why = "Forwarded: client hidden (for= unknown, obfuscated or absent)";
		return 0;
	}
	set_addr(client, client_len, nd.family, nd.addr, nd.port);
	return 1;
}

/* ---- the entry point -------------------------------------------------- */

int edge_forwarded_resolve(const struct edge_trusted *t, const struct sockaddr *peer,
			   const struct http_request *req, struct sockaddr_storage *client,
			   socklen_t *client_len, char *scheme, size_t scheme_cap, const char **why)
{
	const char *reason = NULL;
	if (why)
		*why = NULL;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
		memset(client, 0, sizeof *client);
		memcpy(client, a, sizeof *a);
		*client_len = sizeof *a;
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
		memset(client, 0, sizeof *client);
		memcpy(client, a, sizeof *a);
		*client_len = sizeof *a;
	} else {
		if (why)
			*why = "peer is not an IP address";
		return MBGW_E_INVAL;
	}
	if (scheme_cap)
		scheme[0] = '\0';
	else
		scheme = NULL;

	bool has_xff = http_find_header(req, "X-Forwarded-For") != NULL;
	bool has_xfp = http_find_header(req, "X-Forwarded-Proto") != NULL;
	bool has_fwd = http_find_header(req, "Forwarded") != NULL;
	if (!has_xff && !has_xfp && !has_fwd)
		return 0;
	if (!edge_trusted_contains(t, peer)) {
		if (why)
			*why = "forwarding headers from an untrusted peer ignored";
		return 0;
	}

	int r = 0;
	char local[EDGE_SCHEME_MAX + 1];
	/* Work in a local buffer so that a header ignored half-way leaves the
	 * caller's scheme empty. */
	local[0] = '\0';
	if ((t->headers & EDGE_FWD_XFF) && has_xff)
		r = resolve_xff(t, req, client, client_len, local, sizeof local, &reason);
	else if ((t->headers & EDGE_FWD_FORWARDED) && has_fwd)
		r = resolve_forwarded(t, req, client, client_len, local, sizeof local, &reason);
	else if ((t->headers & EDGE_FWD_XFF) && has_xfp)
		xfp_scheme(req, 0, local, sizeof local, &reason);
	if (local[0] && scheme) {
		if (!put_scheme(scheme, scheme_cap, local, strlen(local)))
			reason = "forwarded scheme longer than the caller's buffer: ignored";
	}
	if (why)
		*why = reason;
	return r;
}
