/* test_edge_forwarded — trusted-proxy lists and the forwarded headers.
 *
 * CIDR lists: every form an operator writes (IPv4, IPv6, /0, host routes,
 * blanks and commas), every mistake refused with a readable reason, and
 * matching at block edges, across IPv4-mapped addresses. Resolution:
 * headers believed only from trusted peers, chains walked from the right
 * past trusted hops (a client's own prepended entries never win), the
 * RFC 7239 examples, IPv6 forms, hidden clients, precedence, and
 * malformed headers ignored with a reason.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <mbgw/plugin.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "edge/edge_forwarded.h"

/* A parsed list; a few stay valid at once (tests compare lists). */
static struct edge_trusted *trusted(const char *list)
{
	static struct edge_trusted pool[4];
	static unsigned next;
	struct edge_trusted *t = &pool[next++ % 4];
	char err[256];
	int r = edge_trusted_parse(list, t, err, sizeof err);
	cr_assert_eq(r, 0, "'%s': %s", list, err);
	return t;
}

static void refuse_list(const char *list, const char *part)
{
	struct edge_trusted *t = malloc(sizeof *t);
	char err[256];
	cr_assert(t);
	t->n = 99;
	cr_assert_eq(edge_trusted_parse(list, t, err, sizeof err), MBGW_E_INVAL, "'%s' accepted", list);
	cr_assert(strstr(err, part), "'%s': reason '%s' lacks '%s'", list, err, part);
	cr_assert_eq(t->n, 0, "a refused list must trust nobody");
	free(t);
}

/* "1.2.3.4" or "2001:db8::1", with a port. */
static struct sockaddr_storage addr(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &a6->sin6_addr), 1, "bad test address %s", ip);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
	}
	return ss;
}

static bool has(const struct edge_trusted *t, const char *ip)
{
	struct sockaddr_storage ss = addr(ip, 1);
	return edge_trusted_contains(t, (const struct sockaddr *)&ss);
}

/* ---- trusted lists ---------------------------------------------------- */

Test(edge_trusted, the_documented_example)
{
	const struct edge_trusted *t = trusted("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8");
	cr_assert_eq(t->n, 4);
	cr_assert_eq(t->headers, EDGE_FWD_XFF | EDGE_FWD_FORWARDED);
	cr_assert_eq(t->cidr[0].family, AF_INET);
	cr_assert_eq(t->cidr[0].prefix, 32);
	cr_assert_eq(t->cidr[1].prefix, 8);
	cr_assert_eq(t->cidr[2].family, AF_INET6);
	cr_assert_eq(t->cidr[2].prefix, 128);
	cr_assert_eq(t->cidr[3].prefix, 8);
	cr_assert(has(t, "127.0.0.1"));
	cr_assert_not(has(t, "127.0.0.2"));
	cr_assert(has(t, "10.0.0.0"));
	cr_assert(has(t, "10.255.255.255"));
	cr_assert_not(has(t, "11.0.0.0"));
	cr_assert_not(has(t, "9.255.255.255"));
	cr_assert(has(t, "::1"));
	cr_assert_not(has(t, "::2"));
	cr_assert(has(t, "fd12:3456::1"));
	cr_assert(has(t, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	cr_assert_not(has(t, "fe00::1"));
	cr_assert_not(has(t, "fc00::1"));
	cr_assert_not(has(t, "192.0.2.1"));
}

Test(edge_trusted, separators)
{
	const char *lists[] = { "10.0.0.0/8,192.168.0.0/16", "10.0.0.0/8 192.168.0.0/16",
				"  10.0.0.0/8 ,\t192.168.0.0/16  ", "10.0.0.0/8\t,  192.168.0.0/16",
				"\t10.0.0.0/8,\t\t192.168.0.0/16\t" };
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		const struct edge_trusted *t = trusted(lists[i]);
		cr_assert_eq(t->n, 2, "'%s'", lists[i]);
		cr_assert(has(t, "192.168.255.1"));
	}
	cr_assert_eq(trusted("")->n, 0);
	cr_assert_eq(trusted("   ")->n, 0);
	cr_assert_eq(trusted(NULL)->n, 0);
	cr_assert_not(has(trusted(""), "127.0.0.1"));
	refuse_list("10.0.0.0/8,,192.168.0.0/16", "empty entry");
	refuse_list("10.0.0.0/8, ,192.168.0.0/16", "empty entry");
	refuse_list(",10.0.0.0/8", "empty entry");
	refuse_list("10.0.0.0/8,", "empty entry");
	refuse_list("10.0.0.0/8 , ", "empty entry");
	refuse_list(",", "empty entry");
}

Test(edge_trusted, prefix_lengths)
{
	const struct edge_trusted *t = trusted("0.0.0.0/0");
	cr_assert(has(t, "0.0.0.0"));
	cr_assert(has(t, "255.255.255.255"));
	cr_assert(has(t, "::ffff:203.0.113.9")); /* IPv4 on a dual-stack socket */
	cr_assert_not(has(t, "2001:db8::1"));
	t = trusted("::/0");
	cr_assert(has(t, "2001:db8::1"));
	cr_assert(has(t, "::"));
	/* "All of IPv6" does not quietly trust all of IPv4 too. */
	cr_assert_not(has(t, "192.0.2.1"));
	cr_assert_not(has(t, "::ffff:192.0.2.1"));
	t = trusted("192.0.2.7/32, 2001:db8::7/128");
	cr_assert(has(t, "192.0.2.7"));
	cr_assert_not(has(t, "192.0.2.6"));
	cr_assert(has(t, "2001:db8::7"));
	cr_assert_not(has(t, "2001:db8::6"));
	/* Prefixes that do not end on a byte. */
	t = trusted("192.168.2.0/23, 2001:db8:8000::/33, 0.0.0.0/1");
	cr_assert(has(t, "192.168.2.0"));
	cr_assert(has(t, "192.168.3.255"));
	cr_assert_not(has(t, "192.168.4.0"));
	cr_assert_not(has(t, "192.168.1.255"));
	cr_assert(has(t, "2001:db8:8000::1"));
	cr_assert(has(t, "2001:db8:ffff:ffff::1"));
	cr_assert_not(has(t, "2001:db8:7fff::1"));
	cr_assert(has(t, "127.255.255.255"));
	cr_assert_not(has(t, "128.0.0.0"));
}

Test(edge_trusted, ipv4_mapped)
{
	/* A v4 block matches the mapped form a dual-stack socket reports. */
	const struct edge_trusted *t = trusted("10.0.0.0/8");
	cr_assert(has(t, "::ffff:10.1.2.3"));
	cr_assert_not(has(t, "::ffff:11.1.2.3"));
	cr_assert_not(has(t, "::10.1.2.3")); /* compatible, not mapped */
	/* ...and a block written in the mapped form matches plain IPv4. */
	t = trusted("::ffff:10.0.0.0/104");
	cr_assert(has(t, "10.200.0.1"));
	cr_assert(has(t, "::ffff:10.200.0.1"));
	cr_assert_not(has(t, "11.0.0.1"));
	t = trusted("::ffff:0:0/96");
	cr_assert(has(t, "198.51.100.1"));
	cr_assert_not(has(t, "2001:db8::1"));
	/* A socket family other than IP never matches. */
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "/run/mbgw.sock" };
	cr_assert_not(edge_trusted_contains(trusted("0.0.0.0/0, ::/0"), (const struct sockaddr *)&un));
}

Test(edge_trusted, mistakes)
{
	refuse_list("10.0.0.0/33", "0..32");
	refuse_list("::/129", "0..128");
	refuse_list("10.0.0.0/-1", "decimal");
	refuse_list("10.0.0.0/", "decimal");
	refuse_list("10.0.0.0/08", "leading zeros");
	refuse_list("10.0.0.0/1a", "decimal");
	refuse_list("10.0.0.0/1000", "decimal");
	refuse_list("10.0.0.0/8/9", "decimal");
	refuse_list("10.0.0.0/ 8", "");
	refuse_list("10.0.0", "not an IPv4 or IPv6 address");
	refuse_list("010.0.0.1", "not an IPv4 or IPv6 address");
	refuse_list("10.0.0.256", "not an IPv4 or IPv6 address");
	refuse_list("localhost", "not an IPv4 or IPv6 address");
	refuse_list("[::1]", "not an IPv4 or IPv6 address");
	refuse_list("fe80::1%eth0", "not an IPv4 or IPv6 address");
	refuse_list("10.0.0.0/8;192.168.0.0/16", "decimal");
	refuse_list("10.0.0.0;192.168.0.0", "not an IPv4 or IPv6 address");
	refuse_list("/8", "not an IPv4 or IPv6 address");
	refuse_list("10.0.0.1/8", "has host bits set (did you mean 10.0.0.0/8?)");
	refuse_list("192.168.1.0/23", "did you mean 192.168.0.0/23?");
	refuse_list("fd00::1/8", "did you mean fd00::/8?");
	refuse_list("127.0.0.1, 10.0.0.1/8", "'10.0.0.1/8'");
	refuse_list("1.2.3.4/0", "did you mean 0.0.0.0/0?");

	/* EDGE_TRUSTED_MAX entries, and one more. */
	size_t cap = (EDGE_TRUSTED_MAX + 1) * 16;
	char *list = malloc(cap);
	size_t o = 0;
	for (int i = 0; i < EDGE_TRUSTED_MAX; i++)
		o += (size_t)snprintf(list + o, cap - o, "10.%d.%d.0/24,", i / 256, i % 256);
	list[o - 1] = '\0';
	struct edge_trusted *t = malloc(sizeof *t);
	char err[128];
	cr_assert_eq(edge_trusted_parse(list, t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t->n, EDGE_TRUSTED_MAX);
	snprintf(list + o - 1, cap - o + 1, ",10.9.9.0/24");
	refuse_list(list, "more than 256");
	/* A NULL or tiny error buffer is fine. */
	cr_assert_eq(edge_trusted_parse("x", t, NULL, 0), MBGW_E_INVAL);
	cr_assert_eq(edge_trusted_parse("x", t, err, 1), MBGW_E_INVAL);
	cr_assert_eq(err[0], '\0');
	free(t);
	free(list);
}

/* ---- resolution -------------------------------------------------------- */

struct outcome {
	int rc;
	struct sockaddr_storage client;
	socklen_t len;
	char scheme[32];
	const char *why;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;
};

/* Resolves a request carrying `headers` ("Name: value\r\n" lines) that
 * came from peer ip:port. */
static struct outcome resolve_cap(const struct edge_trusted *t, const char *peer_ip, uint16_t peer_port,
				  const char *headers, size_t scheme_cap)
{
	static char head[8192];
	snprintf(head, sizeof head, "GET /ws HTTP/1.1\r\nHost: gw.example\r\n%s\r\n", headers);
	struct http_request *req = malloc(sizeof *req);
	struct http_error herr;
	const struct http_limits lim = { sizeof head, 64 };
	cr_assert(req);
	cr_assert_gt(http_parse_request(head, strlen(head), &lim, req, &herr), 0, "%s", herr.reason);
	struct sockaddr_storage peer = addr(peer_ip, peer_port);
	struct outcome o;
	memset(&o, 0x55, sizeof o);
	o.rc = edge_forwarded_resolve(t, (const struct sockaddr *)&peer, req, &o.client, &o.len, o.scheme,
				      scheme_cap, &o.why);
	free(req);
	if (o.client.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&o.client;
		cr_assert_eq(o.len, sizeof *a);
		inet_ntop(AF_INET, &a->sin_addr, o.ip, sizeof o.ip);
		o.port = ntohs(a->sin_port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&o.client;
		cr_assert_eq(o.client.ss_family, AF_INET6);
		cr_assert_eq(o.len, sizeof *a);
		inet_ntop(AF_INET6, &a->sin6_addr, o.ip, sizeof o.ip);
		o.port = ntohs(a->sin6_port);
	}
	return o;
}

static struct outcome resolve(const struct edge_trusted *t, const char *peer_ip, const char *headers)
{
	return resolve_cap(t, peer_ip, 40000, headers, 32);
}

/* The client must be the given address (1) or the peer (0), with scheme. */
static void expect(const struct outcome *o, int rc, const char *ip, const char *scheme)
{
	cr_assert_eq(o->rc, rc, "rc %d, expected %d (client %s, why %s)", o->rc, rc, o->ip,
		     o->why ? o->why : "-");
	cr_assert_str_eq(o->ip, ip, "client %s, expected %s (why %s)", o->ip, ip, o->why ? o->why : "-");
	cr_assert_str_eq(o->scheme, scheme, "scheme '%s', expected '%s' (why %s)", o->scheme, scheme,
			 o->why ? o->why : "-");
}

static void expect_ignored(const struct outcome *o, const char *peer_ip, const char *why_part)
{
	expect(o, 0, peer_ip, "");
	cr_assert_eq(o->port, 40000, "the peer's own port is kept");
	cr_assert(o->why && strstr(o->why, why_part), "why '%s' lacks '%s'", o->why ? o->why : "(null)",
		  why_part);
}

#define PROXY_NET "10.0.0.0/8, fd00::/8"

Test(edge_forwarded, untrusted_peer_is_never_believed)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	const char *spoofs[] = {
		"X-Forwarded-For: 10.0.0.1\r\n",
		"X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n",
		"X-Forwarded-Proto: https\r\n",
		"Forwarded: for=192.0.2.1;proto=https\r\n",
		"Forwarded: for=\"[2001:db8::1]\"\r\nX-Forwarded-For: 192.0.2.9\r\n",
	};
	for (size_t i = 0; i < sizeof spoofs / sizeof spoofs[0]; i++) {
		struct outcome o = resolve(t, "203.0.113.50", spoofs[i]);
		expect_ignored(&o, "203.0.113.50", "untrusted peer");
		o = resolve(t, "2001:db8:bad::1", spoofs[i]);
		expect_ignored(&o, "2001:db8:bad::1", "untrusted peer");
	}
	/* Nothing to say when there is nothing forwarded. */
	struct outcome o = resolve(t, "203.0.113.50", "User-Agent: x\r\n");
	expect(&o, 0, "203.0.113.50", "");
	cr_assert_null(o.why);
	o = resolve(t, "10.0.0.1", "");
	expect(&o, 0, "10.0.0.1", "");
	cr_assert_null(o.why);
	cr_assert_eq(o.port, 40000);
}

Test(edge_forwarded, xff_single_proxy)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	struct outcome o = resolve(t, "10.0.0.2", "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
	expect(&o, 1, "203.0.113.7", "https");
	cr_assert_null(o.why);
	cr_assert_eq(o.port, 0);
	o = resolve(t, "10.0.0.2", "x-forwarded-for: 203.0.113.7\r\n");
	expect(&o, 1, "203.0.113.7", "");
	/* The peer on a dual-stack socket. */
	o = resolve(t, "::ffff:10.0.0.2", "X-Forwarded-For: 203.0.113.7\r\n");
	expect(&o, 1, "203.0.113.7", "");
}

Test(edge_forwarded, xff_chain_from_the_right)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	/* client -> 10.0.0.3 -> 10.0.0.2 (peer) */
	struct outcome o = resolve(t, "10.0.0.2", "X-Forwarded-For: 203.0.113.7, 10.0.0.3\r\n");
	expect(&o, 1, "203.0.113.7", "");
	/* The client sent its own X-Forwarded-For: what it wrote is left of
	 * what our proxies appended, and never wins. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.0.0.3\r\n");
	expect(&o, 1, "203.0.113.7", "");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 10.0.0.9, 203.0.113.7\r\n");
	expect(&o, 1, "203.0.113.7", "");
	/* Even garbage to the left of the client is never looked at. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: <script>, , ;;, 203.0.113.7\r\n");
	expect(&o, 1, "203.0.113.7", "");
	cr_assert_null(o.why);
	/* Every hop trusted: the leftmost is the client. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 10.1.1.1, 10.0.0.3\r\n");
	expect(&o, 1, "10.1.1.1", "");
	/* Several lines are one list, in order. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.3\r\n");
	expect(&o, 1, "203.0.113.7", "");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-For: 10.0.0.3\r\n");
	expect(&o, 1, "203.0.113.7", "");
	o = resolve(t, "10.0.0.2",
		    "X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nUser-Agent: x\r\nX-Forwarded-For: 10.0.0.3,\r\n"
		    "X-Forwarded-For: fd00::5\r\n");
	expect(&o, 1, "203.0.113.7", "");
	/* Empty elements are skipped (RFC 9110 §5.6.1). */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: ,203.0.113.7,, 10.0.0.3 ,\r\n");
	expect(&o, 1, "203.0.113.7", "");
}

Test(edge_forwarded, xff_ipv6_and_ports)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	struct outcome o = resolve(t, "fd00::2", "X-Forwarded-For: 2001:db8::1\r\n");
	expect(&o, 1, "2001:db8::1", "");
	o = resolve(t, "fd00::2", "X-Forwarded-For: [2001:db8::1]\r\n");
	expect(&o, 1, "2001:db8::1", "");
	cr_assert_eq(o.port, 0);
	o = resolve(t, "fd00::2", "X-Forwarded-For: [2001:db8::1]:4711, fd00::3\r\n");
	expect(&o, 1, "2001:db8::1", "");
	cr_assert_eq(o.port, 4711);
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 192.0.2.1:8080\r\n");
	expect(&o, 1, "192.0.2.1", "");
	cr_assert_eq(o.port, 8080);
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: ::ffff:192.0.2.1\r\n");
	expect(&o, 1, "::ffff:192.0.2.1", "");
	/* A mapped hop is judged as the IPv4 address it is. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 192.0.2.1, ::ffff:10.0.0.3\r\n");
	expect(&o, 1, "192.0.2.1", "");

	const char *bad[] = { "[2001:db8::1", "2001:db8::1]:80", "[192.0.2.1]", "192.0.2.1:", "192.0.2.1:65536",
			      "192.0.2.1:080a", "fe80::1%eth0", "[2001:db8::1]80", "[2001:db8::1]:", "example.com",
			      "192.0.2", "192.0.2.01", "1:2", "\"192.0.2.1\"", "for=192.0.2.1", "192.0.2.1 x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char h[128];
		snprintf(h, sizeof h, "X-Forwarded-For: %s, 10.0.0.3\r\nX-Forwarded-Proto: https\r\n", bad[i]);
		o = resolve(t, "10.0.0.2", h);
		expect_ignored(&o, "10.0.0.2", "X-Forwarded-For holds something other than an IP address");
	}
}

Test(edge_forwarded, xff_hidden_and_empty)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	struct outcome o = resolve(t, "10.0.0.2", "X-Forwarded-For: unknown\r\n");
	expect_ignored(&o, "10.0.0.2", "hidden");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 192.0.2.1, UNKNOWN, 10.0.0.3\r\nX-Forwarded-Proto: https\r\n");
	cr_assert(strstr(o.why, "hidden"));
	expect(&o, 0, "10.0.0.2", "https"); /* the scheme of that hop is still known */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: _hidden\r\n");
	expect_ignored(&o, "10.0.0.2", "hidden");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For:\r\n");
	expect_ignored(&o, "10.0.0.2", "without any address");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: , ,\r\nX-Forwarded-Proto: https\r\n");
	expect_ignored(&o, "10.0.0.2", "without any address");
}

Test(edge_forwarded, xff_proto_alignment)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	/* Each proxy appended to both: the client's hop is the 2nd from the
	 * right in each. */
	struct outcome o = resolve(t, "10.0.0.2",
				   "X-Forwarded-For: 203.0.113.7, 10.0.0.3\r\nX-Forwarded-Proto: https, http\r\n");
	expect(&o, 1, "203.0.113.7", "https");
	/* The inner proxy overwrote it: its only value is the best we have. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 203.0.113.7, 10.0.0.3\r\nX-Forwarded-Proto: wss\r\n");
	expect(&o, 1, "203.0.113.7", "wss");
	/* What the client put left of the aligned element is not read. */
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: bogus!!, https\r\n");
	expect(&o, 1, "203.0.113.7", "https");
	cr_assert_null(o.why);
	o = resolve(t, "10.0.0.2",
		    "X-Forwarded-For: 203.0.113.7, 10.0.0.3\r\nX-Forwarded-Proto: javascript, HTTPS\r\n"
		    "X-Forwarded-Proto: http\r\n");
	expect(&o, 1, "203.0.113.7", "https");
	/* A malformed scheme: the address stands, the scheme is ignored. */
	const char *bad[] = { "ht tp", "1http", "https:", "-", "h_ttp", "\"https\"",
			      "aaaaaaaaaaaaaaaaa" /* 17 > EDGE_SCHEME_MAX */ };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char h[128];
		snprintf(h, sizeof h, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: %s\r\n", bad[i]);
		o = resolve(t, "10.0.0.2", h);
		expect(&o, 1, "203.0.113.7", "");
		cr_assert(o.why && strstr(o.why, "X-Forwarded-Proto"), "'%s': %s", bad[i], o.why);
	}
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: aaaaaaaaaaaaaaaa\r\n");
	expect(&o, 1, "203.0.113.7", "aaaaaaaaaaaaaaaa");
	/* Every X-Forwarded-For hop trusted: the leftmost is the client, and
	 * the proto aligned with it. */
	o = resolve(t, "10.0.0.2",
		    "X-Forwarded-For: 10.1.1.1, 10.0.0.3\r\nX-Forwarded-Proto: ftp, https, http\r\n");
	expect(&o, 1, "10.1.1.1", "https");
	/* X-Forwarded-Proto alone (a TLS terminator that does not add XFF). */
	o = resolve(t, "10.0.0.2", "X-Forwarded-Proto: https\r\n");
	expect(&o, 0, "10.0.0.2", "https");
	cr_assert_null(o.why);
	o = resolve(t, "10.0.0.2", "X-Forwarded-Proto: ftp, https\r\n");
	expect(&o, 0, "10.0.0.2", "https");
}

Test(edge_forwarded, rfc7239_examples)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	/* §4 */
	struct outcome o = resolve(t, "10.0.0.2", "Forwarded: for=\"_gazonk\"\r\n");
	expect_ignored(&o, "10.0.0.2", "hidden");
	o = resolve(t, "10.0.0.2", "Forwarded: For=\"[2001:db8:cafe::17]:4711\"\r\n");
	expect(&o, 1, "2001:db8:cafe::17", "");
	cr_assert_eq(o.port, 4711);
	o = resolve(t, "10.0.0.2", "Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n");
	expect(&o, 1, "192.0.2.60", "http");
	cr_assert_null(o.why);
	o = resolve(t, "10.0.0.2", "Forwarded: for=192.0.2.43, for=198.51.100.17\r\n");
	expect(&o, 1, "198.51.100.17", "");
	cr_assert_eq(o.port, 0);
	o = resolve(trusted(PROXY_NET ", 198.51.100.0/24"), "10.0.0.2", "Forwarded: for=192.0.2.43, for=198.51.100.17\r\n");
	expect(&o, 1, "192.0.2.43", "");
	/* §7.1: the same list over several lines. */
	o = resolve(trusted(PROXY_NET ", 198.51.100.0/24"), "10.0.0.2",
		    "Forwarded: for=192.0.2.43\r\nForwarded: for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com\r\n");
	expect(&o, 1, "192.0.2.43", "");
	/* §7.4 */
	o = resolve(t, "10.0.0.2", "Forwarded: for=192.0.2.43,for=\"[2001:db8:cafe::17]\",for=unknown\r\n");
	expect_ignored(&o, "10.0.0.2", "hidden");
	o = resolve(trusted("10.0.0.0/8, 2001:db8:cafe::/48"), "10.0.0.2",
		    "Forwarded: for=192.0.2.43,for=\"[2001:db8:cafe::17]\"\r\n");
	expect(&o, 1, "192.0.2.43", "");
	/* §6.3 obfuscated port: the address stays. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=\"192.0.2.1:_abc\"\r\n");
	expect(&o, 1, "192.0.2.1", "");
	cr_assert_eq(o.port, 0);
	o = resolve(t, "10.0.0.2", "Forwarded: for=\"192.0.2.1:443\";by=\"[2001:db8::1]:_p1\";host=\"gw.example:8443\"\r\n");
	expect(&o, 1, "192.0.2.1", "");
	cr_assert_eq(o.port, 443);
}

Test(edge_forwarded, forwarded_details)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	/* Names are case-insensitive, schemes lower-cased. */
	struct outcome o = resolve(t, "10.0.0.2", "Forwarded: FOR=192.0.2.1;PROTO=HTTPS\r\n");
	expect(&o, 1, "192.0.2.1", "https");
	/* Whitespace around ';' and ',' is tolerated. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=6.6.6.6 ,  for=192.0.2.1 ; proto=wss\t;by=_lb\r\n");
	expect(&o, 1, "192.0.2.1", "wss");
	/* Quoted pairs are undone. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=\"192.0.2.\\61\";proto=\"ht\\tps\"\r\n");
	expect(&o, 1, "192.0.2.61", "https");
	/* Extensions and empty pairs/elements. */
	o = resolve(t, "10.0.0.2", "Forwarded: ,for=192.0.2.1;;secret=\"a, b; c\";ext=tok;,\r\n");
	expect(&o, 1, "192.0.2.1", "");
	/* The client's own element left of ours never wins... */
	o = resolve(t, "10.0.0.2", "Forwarded: for=6.6.6.6;proto=https, for=192.0.2.1;proto=http\r\n");
	expect(&o, 1, "192.0.2.1", "http");
	/* ...and the proto is the chosen element's, not another's. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=192.0.2.1;proto=https, for=10.0.0.3;proto=http\r\n");
	expect(&o, 1, "192.0.2.1", "https");
	o = resolve(t, "10.0.0.2", "Forwarded: for=192.0.2.1, for=10.0.0.3;proto=http\r\n");
	expect(&o, 1, "192.0.2.1", "");
	/* No for=: the address is hidden, the scheme known. */
	o = resolve(t, "10.0.0.2", "Forwarded: proto=https\r\n");
	expect(&o, 0, "10.0.0.2", "https");
	cr_assert(strstr(o.why, "hidden"));
	o = resolve(t, "10.0.0.2", "Forwarded: for=\"_x\";proto=https, for=10.0.0.3\r\n");
	expect(&o, 0, "10.0.0.2", "https");
	/* Every hop trusted: the leftmost. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=10.9.9.9, for=\"[fd00::3]\"\r\n");
	expect(&o, 1, "10.9.9.9", "");
}

Test(edge_forwarded, forwarded_malformed)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	struct {
		const char *value, *why;
	} bad[] = {
		{ "for=2001:db8::1", "for= is not a node" },        /* IPv6 must be quoted... */
		{ "for=[2001:db8::1]", "without a value" },
		{ "for=\"2001:db8::1\"", "for= is not a node" },     /* ...and bracketed */
		{ "for=\"[192.0.2.1]\"", "for= is not a node" },
		{ "for=\"[2001:db8::1]:65536\"", "for= is not a node" },
		{ "for=\"192.0.2.1:\"", "for= is not a node" },
		{ "for=\"192.0.2.1:x\"", "for= is not a node" },
		{ "for=example.com", "for= is not a node" },
		{ "for=\"\"", "for= is not a node" },
		{ "for=_", "for= is not a node" },
		{ "for=\"_a b\"", "for= is not a node" },
		{ "for=192.0.2.1;for=192.0.2.2", "repeated" },
		{ "for=192.0.2.1;Proto=http;PROTO=https", "repeated" },
		{ "for = 192.0.2.1", "expected '=' right after" },
		{ "for= 192.0.2.1", "without a value" },
		{ "for", "expected '=' right after" },
		{ "=192.0.2.1", "expected a parameter name" },
		{ "for=\"192.0.2.1", "unterminated quoted string" },
		{ "for=\"192.0.2.1\\\"", "unterminated quoted string" },
		{ "for=192.0.2.1 proto=http", "expected ';' or ','" },
		{ "for=192.0.2.1;proto=\"ht tp\"", "proto= is not a URI scheme" },
		{ "for=192.0.2.1;proto=1", "proto= is not a URI scheme" },
		{ "for=192.0.2.1;host=\"a b\"", "host= is not a host" },
		{ "for=192.0.2.1;host=\"\"", "host= is not a host" },
		{ "for=192.0.2.1;by=\"[::1\"", "by= is not a node" },
		{ "for=192.0.2.1;by=localhost", "by= is not a node" },
		{ "for=192.0.2.1;ext=\"\x01\"", "control character" },
		{ "", "without any element" },
		{ " , ,", "without any element" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char h[256];
		snprintf(h, sizeof h, "Forwarded: %s\r\n", bad[i].value);
		if (strchr(bad[i].value, '\x01')) {
			/* The HTTP parser refuses control characters itself. */
			continue;
		}
		struct outcome o = resolve(t, "10.0.0.2", h);
		expect_ignored(&o, "10.0.0.2", bad[i].why);
	}
	/* Malformed anywhere means ignored: once a quoted string can hide a
	 * comma, no element boundary can be trusted. */
	struct outcome o = resolve(t, "10.0.0.2", "Forwarded: for=\"6.6.6.6, for=192.0.2.1\r\n");
	expect_ignored(&o, "10.0.0.2", "unterminated");
	o = resolve(t, "10.0.0.2", "Forwarded: for=junk\r\nForwarded: for=192.0.2.1\r\n");
	expect_ignored(&o, "10.0.0.2", "for= is not a node");
	/* A value too long to be a node. */
	char h[600];
	char v[300];
	memset(v, 'a', sizeof v);
	v[0] = '_';
	snprintf(h, sizeof h, "Forwarded: for=%.*s\r\n", (int)sizeof v, v);
	o = resolve(t, "10.0.0.2", h);
	expect_ignored(&o, "10.0.0.2", "too long");
}

Test(edge_forwarded, forwarded_hop_limit)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	char h[2048];
	size_t o_ = (size_t)snprintf(h, sizeof h, "Forwarded: for=192.0.2.1");
	for (int i = 0; i < EDGE_FWD_MAX_HOPS - 1; i++)
		o_ += (size_t)snprintf(h + o_, sizeof h - o_, ", for=10.0.0.%d", i + 1);
	snprintf(h + o_, sizeof h - o_, "\r\n");
	/* 32 elements: the client is the 32nd from the right. */
	struct outcome o = resolve(t, "10.0.0.2", h);
	expect(&o, 1, "192.0.2.1", "");
	/* 33: one trusted hop too many to see past. */
	snprintf(h + o_, sizeof h - o_, ", for=10.0.0.99\r\n");
	o = resolve(t, "10.0.0.2", h);
	expect_ignored(&o, "10.0.0.2", "more trusted hops");
	/* Many elements, but the client near the right: fine. */
	o_ = (size_t)snprintf(h, sizeof h, "Forwarded: for=6.6.6.6");
	for (int i = 0; i < 60; i++)
		o_ += (size_t)snprintf(h + o_, sizeof h - o_, ", for=6.6.6.%d", i);
	snprintf(h + o_, sizeof h - o_, ", for=192.0.2.1, for=10.0.0.7\r\n");
	o = resolve(t, "10.0.0.2", h);
	expect(&o, 1, "192.0.2.1", "");
}

Test(edge_forwarded, precedence)
{
	struct edge_trusted *t = trusted(PROXY_NET);
	const char *both = "Forwarded: for=198.51.100.9;proto=http\r\n"
			   "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n";
	/* X-Forwarded-For wins. */
	struct outcome o = resolve(t, "10.0.0.2", both);
	expect(&o, 1, "192.0.2.1", "https");
	/* A malformed X-Forwarded-For does not fall back to Forwarded. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=198.51.100.9\r\nX-Forwarded-For: nonsense\r\n");
	expect_ignored(&o, "10.0.0.2", "X-Forwarded-For");
	/* X-Forwarded-Proto without X-Forwarded-For: Forwarded decides. */
	o = resolve(t, "10.0.0.2", "Forwarded: for=198.51.100.9;proto=http\r\nX-Forwarded-Proto: https\r\n");
	expect(&o, 1, "198.51.100.9", "http");
	/* An operator whose proxy writes only Forwarded. */
	t->headers = EDGE_FWD_FORWARDED;
	o = resolve(t, "10.0.0.2", both);
	expect(&o, 1, "198.51.100.9", "http");
	o = resolve(t, "10.0.0.2", "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n");
	expect(&o, 0, "10.0.0.2", "");
	/* ...or only X-Forwarded-*. */
	t->headers = EDGE_FWD_XFF;
	o = resolve(t, "10.0.0.2", "Forwarded: for=198.51.100.9;proto=http\r\n");
	expect(&o, 0, "10.0.0.2", "");
	o = resolve(t, "10.0.0.2", "Forwarded: for=198.51.100.9;proto=http\r\nX-Forwarded-Proto: https\r\n");
	expect(&o, 0, "10.0.0.2", "https");
	t->headers = 0;
	o = resolve(t, "10.0.0.2", both);
	expect(&o, 0, "10.0.0.2", "");
}

Test(edge_forwarded, scheme_buffer)
{
	const struct edge_trusted *t = trusted(PROXY_NET);
	const char *h = "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\n";
	struct outcome o = resolve_cap(t, "10.0.0.2", 40000, h, 6);
	expect(&o, 1, "192.0.2.1", "https");
	o = resolve_cap(t, "10.0.0.2", 40000, h, 5);
	expect(&o, 1, "192.0.2.1", "");
	cr_assert(o.why && strstr(o.why, "longer than the caller's buffer"));
	o = resolve_cap(t, "10.0.0.2", 40000, h, 0);
	cr_assert_eq(o.rc, 1);
	cr_assert_str_eq(o.ip, "192.0.2.1");
}

Test(edge_forwarded, peer_must_be_ip)
{
	const struct edge_trusted *t = trusted("0.0.0.0/0");
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = "/run/mbgw.sock" };
	struct http_request req = { 0 };
	struct sockaddr_storage client;
	socklen_t len = 0;
	char scheme[8] = "x";
	const char *why = NULL;
	cr_assert_eq(edge_forwarded_resolve(t, (const struct sockaddr *)&un, &req, &client, &len, scheme,
					    sizeof scheme, &why),
		     MBGW_E_INVAL);
	cr_assert(why && strstr(why, "not an IP address"));
	/* NULL why is allowed. */
	struct sockaddr_storage peer = addr("192.0.2.1", 1);
	cr_assert_eq(edge_forwarded_resolve(t, (const struct sockaddr *)&peer, &req, &client, &len, scheme,
					    sizeof scheme, NULL),
		     0);
	cr_assert_eq(len, sizeof(struct sockaddr_in));
	cr_assert_eq(memcmp(&client, &peer, len), 0);
}
