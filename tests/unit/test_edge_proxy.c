/* test_edge_proxy — the PROXY protocol v1/v2 header parser.
 *
 * Every accepted header is also fed in every strict prefix (each must be
 * "need more") and with the bytes that follow it on the wire (which must
 * not be consumed); every refused one is fed in every prefix too (a prefix
 * may be "need more" or already refused, but once refused, longer inputs
 * stay refused, and no prefix is ever accepted). Inputs are copied to
 * buffers of exactly their size, so that a read past the end trips ASan.
 * Examples are those of HAProxy's proxy-protocol.txt.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge_proxy.h"

static ssize_t parse_exact(const uint8_t *p, size_t n, struct edge_proxy_result *res, const char **why)
{
	uint8_t *copy = malloc(n ? n : 1);
	cr_assert(copy);
	memcpy(copy, p, n);
	*why = NULL;
	ssize_t r = edge_proxy_parse(copy, n, res, why);
	/* Values point into the buffer they came from: move them to p. */
	struct edge_proxy_bytes *b[] = { &res->tlvs, &res->alpn, &res->authority, &res->unique_id,
					 &res->ssl_version, &res->ssl_cn, &res->ssl_cipher };
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		if (b[i]->p) {
			cr_assert(b[i]->p >= copy && b[i]->p + b[i]->n <= copy + n, "value outside the input");
			b[i]->p = p + (b[i]->p - copy);
		}
	}
	free(copy);
	return r;
}

/* Accepted: exactly n bytes, every prefix needs more, trailing bytes are
 * left alone. */
static void accept_n(const uint8_t *p, size_t n, struct edge_proxy_result *res)
{
	const char *why;
	for (size_t k = 0; k < n; k++) {
		ssize_t r = parse_exact(p, k, res, &why);
		cr_assert_eq(r, 0, "prefix %zu of %zu: %zd (%s)", k, n, r, why ? why : "");
	}
	static const char tail[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	uint8_t *more = malloc(n + sizeof tail);
	cr_assert(more);
	memcpy(more, p, n);
	memcpy(more + n, tail, sizeof tail);
	ssize_t r = parse_exact(more, n + sizeof tail, res, &why);
	cr_assert_eq(r, (ssize_t)n, "with trailing bytes: %zd (%s)", r, why ? why : "");
	free(more);
	r = parse_exact(p, n, res, &why);
	cr_assert_eq(r, (ssize_t)n, "complete: %zd (%s)", r, why ? why : "");
	cr_assert_null(why);
}

static void accept_s(const char *s, struct edge_proxy_result *res)
{
	accept_n((const uint8_t *)s, strlen(s), res);
}

/* Refused with a reason containing `part`; no prefix accepted, and once a
 * prefix is refused every longer one is. */
static void refuse_n(const uint8_t *p, size_t n, const char *part)
{
	struct edge_proxy_result res;
	const char *why;
	bool refused = false;
	for (size_t k = 0; k < n; k++) {
		ssize_t r = parse_exact(p, k, &res, &why);
		cr_assert(r <= 0, "prefix %zu of %zu accepted (%zd)", k, n, r);
		if (refused)
			cr_assert_eq(r, -1, "prefix %zu of %zu: need more after an earlier refusal", k, n);
		if (r == -1) {
			cr_assert(why && *why);
			refused = true;
		}
	}
	ssize_t r = parse_exact(p, n, &res, &why);
	cr_assert_eq(r, -1, "accepted or incomplete (%zd) instead of refused with '%s'", r, part);
	cr_assert(why && strstr(why, part), "reason '%s' lacks '%s'", why ? why : "(null)", part);
	/* Nothing is left in the result of a refused header. */
	cr_assert_eq(res.version, 0);
	cr_assert_eq(res.src_len, 0);
}

static void refuse_s(const char *s, const char *part)
{
	refuse_n((const uint8_t *)s, strlen(s), part);
}

static void assert_in4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, uint16_t port)
{
	const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];
	cr_assert_eq(len, sizeof *a);
	cr_assert_eq(a->sin_family, AF_INET);
	inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
	cr_assert_str_eq(buf, ip);
	cr_assert_eq(ntohs(a->sin_port), port);
}

static void assert_in6(const struct sockaddr_storage *ss, socklen_t len, const char *ip, uint16_t port)
{
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];
	cr_assert_eq(len, sizeof *a);
	cr_assert_eq(a->sin6_family, AF_INET6);
	inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
	cr_assert_str_eq(buf, ip);
	cr_assert_eq(ntohs(a->sin6_port), port);
}

static void assert_bytes(struct edge_proxy_bytes b, const char *s)
{
	cr_assert_not_null(b.p, "missing value, expected '%s'", s);
	cr_assert_eq(b.n, strlen(s), "'%.*s' vs '%s'", (int)b.n, (const char *)b.p, s);
	cr_assert_eq(memcmp(b.p, s, b.n), 0, "'%.*s' vs '%s'", (int)b.n, (const char *)b.p, s);
}

/* ---- version 1 ------------------------------------------------------- */

Test(edge_proxy_v1, spec_example_before_a_request)
{
	/* §2.1's example, followed by the request it introduces. */
	const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
	struct edge_proxy_result res;
	const char *why;
	size_t line = strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	cr_assert_eq(parse_exact((const uint8_t *)s, strlen(s), &res, &why), (ssize_t)line);
	cr_assert_eq(res.version, 1);
	cr_assert_not(res.local);
	cr_assert_eq(res.family, 0x11);
	assert_in4(&res.src, res.src_len, "192.168.0.1", 56324);
	assert_in4(&res.dst, res.dst_len, "192.168.0.11", 443);
	accept_n((const uint8_t *)s, line, &res);
}

Test(edge_proxy_v1, spec_longest_lines)
{
	struct edge_proxy_result res;
	const char *v4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
	cr_assert_eq(strlen(v4), 56);
	accept_s(v4, &res);
	assert_in4(&res.src, res.src_len, "255.255.255.255", 65535);

	const char *v6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	cr_assert_eq(strlen(v6), 104);
	accept_s(v6, &res);
	cr_assert_eq(res.family, 0x21);
	assert_in6(&res.src, res.src_len, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

	const char *unknown = "PROXY UNKNOWN\r\n";
	cr_assert_eq(strlen(unknown), 15);
	accept_s(unknown, &res);
	cr_assert(res.local);
	cr_assert_eq(res.version, 1);
	cr_assert_eq(res.src_len, 0);
	cr_assert_eq(res.dst_len, 0);

	/* The worst case the spec sizes its 107 bytes for. */
	const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	cr_assert_eq(strlen(worst), 107);
	accept_s(worst, &res);
	cr_assert(res.local);
}

Test(edge_proxy_v1, ipv6_forms)
{
	struct edge_proxy_result res;
	accept_s("PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n", &res);
	assert_in6(&res.src, res.src_len, "2001:db8::1", 4711);
	assert_in6(&res.dst, res.dst_len, "2001:db8::2", 443);
	accept_s("PROXY TCP6 ::1 :: 1 65535\r\n", &res);
	assert_in6(&res.src, res.src_len, "::1", 1);
	assert_in6(&res.dst, res.dst_len, "::", 65535);
	/* Upper case hex, full groups with zeros, and the mapped form
	 * inet_ntop writes for an IPv4 client on a dual-stack socket. */
	accept_s("PROXY TCP6 2001:DB8:0000:0000:0000:0000:0000:0001 ::ffff:192.0.2.1 1024 80\r\n", &res);
	assert_in6(&res.src, res.src_len, "2001:db8::1", 1024);
	assert_in6(&res.dst, res.dst_len, "::ffff:192.0.2.1", 80);
}

Test(edge_proxy_v1, unknown_ignores_the_rest)
{
	struct edge_proxy_result res;
	accept_s("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", &res);
	cr_assert(res.local);
	accept_s("PROXY UNKNOWN anything at all, even  double  spaces\r\n", &res);
	cr_assert(res.local);
	accept_s("PROXY UNKNOWN \r\n", &res);
	refuse_s("PROXY UNKNOWNX\r\n", "protocol");
	refuse_s("PROXY UNKNOWN\tx\r\n", "control character");
}

Test(edge_proxy_v1, too_long)
{
	char s[256];
	/* 108 bytes: one too many, refused once 107 bytes show no CRLF. */
	snprintf(s, sizeof s, "PROXY UNKNOWN %092d\r\n", 0);
	cr_assert_eq(strlen(s), 108);
	refuse_s(s, "longer than 107");
	/* 107 bytes is still fine. */
	snprintf(s, sizeof s, "PROXY UNKNOWN %091d\r\n", 0);
	cr_assert_eq(strlen(s), 107);
	struct edge_proxy_result res;
	accept_s(s, &res);
	/* A CR as the 107th byte can never be followed by its LF in time. */
	memset(s, 'a', sizeof s);
	memcpy(s, "PROXY UNKNOWN ", 14);
	s[106] = '\r';
	s[107] = '\n';
	refuse_n((const uint8_t *)s, 108, "longer than 107");
	/* Long but otherwise harmless garbage. */
	memset(s + 14, 'x', 200);
	refuse_n((const uint8_t *)s, 214, "longer than 107");
}

Test(edge_proxy_v1, line_ends)
{
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx", "CR without LF");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "CR without LF");
	refuse_s("PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "LF without CR");
	refuse_s("PROXY UNKNOWN\n", "LF without CR");
	/* NUL and other bytes outside printable ASCII. */
	refuse_n((const uint8_t *)"PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 34, "control character");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x7f\r\n", "control character");
	refuse_s("PROXY UNKNOWN \xc3\xa9\r\n", "non-ASCII");
}

Test(edge_proxy_v1, bad_addresses)
{
	refuse_s("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "address");
	refuse_s("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 1234.2.3.4 5.6.7.8 1 2\r\n", "bad IPv4 address");
	refuse_s("PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "address");
	refuse_s("PROXY TCP4 0x7f.0.0.1 5.6.7.8 1 2\r\n", "address");
	refuse_s("PROXY TCP6 2001:db8::1::2 ::1 1 2\r\n", "bad IPv6 address");
	refuse_s("PROXY TCP6 2001:db8:: ::1%eth0 1 2\r\n", "address");
	refuse_s("PROXY TCP6 12345::1 ::1 1 2\r\n", "bad IPv6 address");
	refuse_s("PROXY TCP6 [::1] ::1 1 2\r\n", "address");
	refuse_s("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "bad IPv6 address");
	refuse_s("PROXY TCP6 g::1 ::1 1 2\r\n", "address");
}

Test(edge_proxy_v1, address_family_must_match)
{
	refuse_s("PROXY TCP4 ::1 ::1 1 2\r\n", "IPv6 address after TCP4");
	refuse_s("PROXY TCP4 1.2.3.4 ::ffff:1.2.3.4 1 2\r\n", "IPv6 address after TCP4");
	refuse_s("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "IPv4 address after TCP6");
	refuse_s("PROXY TCP6 ::1 10.0.0.1 1 2\r\n", "IPv4 address after TCP6");
}

Test(edge_proxy_v1, ports)
{
	struct edge_proxy_result res;
	accept_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 65535\r\n", &res);
	assert_in4(&res.dst, res.dst_len, "5.6.7.8", 65535);
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 0 443\r\n", "port 0");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 443 0\r\n", "port 0");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n", "out of range");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 443 99999\r\n", "out of range");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 443 100000\r\n", "out of range");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 0443 443\r\n", "leading zero");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 +443 443\r\n", "decimal");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n", "decimal");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 44a 443\r\n", "decimal");
	refuse_s("PROXY TCP6 ::1 ::1 443 0x50\r\n", "port");
}

Test(edge_proxy_v1, fields_and_spaces)
{
	refuse_s("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "more than one space");
	refuse_s("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "more than one space");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "after the destination port");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "after the destination port");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "empty field");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "missing fields");
	refuse_s("PROXY TCP4 1.2.3.4 5.6.7.8\r\n", "missing fields");
	refuse_s("PROXY TCP4\r\n", "missing fields");
	refuse_s("PROXY\r\n", "missing fields");
	refuse_s("PROXY \r\n", "protocol");
	refuse_s("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", "control character");
	refuse_s("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
	refuse_s("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
	refuse_s("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
	refuse_s("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n", "protocol");
	refuse_s("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected a PROXY protocol header");
	refuse_s("PROXx TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected a PROXY protocol header");
}

Test(edge_proxy_v1, refused_as_early_as_the_bytes_show)
{
	struct edge_proxy_result res;
	const char *why;
	/* Each of these is a prefix no more bytes can save. */
	const char *early[] = { "G", "PROXY  ", "PROXY TCP7", "PROXY TCP4 1.2.3.4 5:", "PROXY TCP4 01",
				"PROXY TCP4 1.2.3.4 5.6.7.8.", "PROXY TCP4 256", "PROXY TCP4 1..",
				"PROXY TCP4 1.2.3.4 5.6.7.8 0", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
				"PROXY TCP6 ::x", "PROXY TCP4 1.2.3.4 5.6.7.8 1 123456" };
	for (size_t i = 0; i < sizeof early / sizeof early[0]; i++)
		cr_assert_eq(parse_exact((const uint8_t *)early[i], strlen(early[i]), &res, &why), -1,
			     "'%s' should already be refused", early[i]);
	/* ...and these may still become valid. */
	const char *later[] = { "P", "PROXY", "PROXY UNK", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
				"PROXY TCP6 ::ffff:1.2", "PROXY UNKNOWN whatever" };
	for (size_t i = 0; i < sizeof later / sizeof later[0]; i++)
		cr_assert_eq(parse_exact((const uint8_t *)later[i], strlen(later[i]), &res, &why), 0,
			     "'%s' should need more (%s)", later[i], why ? why : "");
}

Test(edge_proxy, not_a_proxy_header)
{
	/* The listener expects PROXY: a client speaking directly is refused
	 * on its first byte. */
	refuse_s("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "expected a PROXY protocol header");
	const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03 };
	refuse_n(hello, sizeof hello, "expected a PROXY protocol header");
	refuse_s("\r\n\r\nGET", "expected a PROXY protocol header");
	refuse_s(" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected a PROXY protocol header");
	refuse_s("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "expected a PROXY protocol header");
	struct edge_proxy_result res;
	const char *why;
	cr_assert_eq(parse_exact((const uint8_t *)"", 0, &res, &why), 0);
}

/* ---- version 2 ------------------------------------------------------- */

static const uint8_t SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

struct v2 {
	uint8_t b[8192];
	size_t n;
};

static void v2_begin(struct v2 *h, uint8_t ver_cmd, uint8_t fam)
{
	memcpy(h->b, SIG, 12);
	h->b[12] = ver_cmd;
	h->b[13] = fam;
	h->n = 16;
}

static void v2_put(struct v2 *h, const void *p, size_t n)
{
	cr_assert(h->n + n <= sizeof h->b);
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void v2_u16(struct v2 *h, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	v2_put(h, b, 2);
}

static void v2_tlv(struct v2 *h, uint8_t type, const void *v, size_t n)
{
	v2_put(h, &type, 1);
	v2_u16(h, (uint16_t)n);
	v2_put(h, v, n);
}

static void v2_end(struct v2 *h)
{
	size_t len = h->n - 16;
	h->b[14] = (uint8_t)(len >> 8);
	h->b[15] = (uint8_t)len;
}

/* TCP over IPv4: 192.0.2.1:4711 -> 198.51.100.7:443. */
static void v2_tcp4(struct v2 *h, uint8_t cmd)
{
	const uint8_t a[] = { 192, 0, 2, 1, 198, 51, 100, 7 };
	v2_begin(h, 0x20 | cmd, 0x11);
	v2_put(h, a, sizeof a);
	v2_u16(h, 4711);
	v2_u16(h, 443);
}

Test(edge_proxy_v2, haproxy_capture)
{
	/* A header HAProxy wrote (TCP4 172.19.0.1:42578 -> 172.19.0.3:80),
	 * followed by the request it carried. */
	const uint8_t cap[] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
				0x21, 0x11, 0x00, 0x0c, 0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03,
				0xa6, 0x52, 0x00, 0x50, 'G', 'E', 'T', ' ', '/', ' ', 'H' };
	struct edge_proxy_result res;
	const char *why;
	cr_assert_eq(parse_exact(cap, sizeof cap, &res, &why), 28);
	cr_assert_eq(res.version, 2);
	cr_assert_not(res.local);
	cr_assert_eq(res.family, 0x11);
	assert_in4(&res.src, res.src_len, "172.19.0.1", 42578);
	assert_in4(&res.dst, res.dst_len, "172.19.0.3", 80);
	cr_assert_null(res.alpn.p);
	cr_assert_eq(res.tlvs.n, 0);
	accept_n(cap, 28, &res);
}

Test(edge_proxy_v2, tcp6)
{
	struct v2 h;
	uint8_t a[32];
	inet_pton(AF_INET6, "2001:db8::1", a);
	inet_pton(AF_INET6, "2001:db8::ff", a + 16);
	v2_begin(&h, 0x21, 0x21);
	v2_put(&h, a, 32);
	v2_u16(&h, 65535);
	v2_u16(&h, 8443);
	v2_end(&h);
	struct edge_proxy_result res;
	accept_n(h.b, h.n, &res);
	cr_assert_eq(h.n, 52);
	cr_assert_eq(res.family, 0x21);
	assert_in6(&res.src, res.src_len, "2001:db8::1", 65535);
	assert_in6(&res.dst, res.dst_len, "2001:db8::ff", 8443);
}

Test(edge_proxy_v2, local_keeps_the_socket_addresses)
{
	struct v2 h;
	struct edge_proxy_result res;
	/* A health check: LOCAL, UNSPEC, no address. */
	v2_begin(&h, 0x20, 0x00);
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert_eq(h.n, 16);
	cr_assert(res.local);
	cr_assert_eq(res.version, 2);
	cr_assert_eq(res.src_len, 0);
	/* LOCAL with addresses anyway: they are skipped (§2.2 "discard"). */
	v2_tcp4(&h, 0x0);
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert(res.local);
	cr_assert_eq(res.src_len, 0);
	cr_assert_eq(res.src.ss_family, 0);
	/* LOCAL followed by TLVs, as HAProxy writes them. */
	v2_begin(&h, 0x20, 0x00);
	v2_tlv(&h, EDGE_PP2_TYPE_UNIQUE_ID, "abc", 3);
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert(res.local);
	assert_bytes(res.unique_id, "abc");
}

Test(edge_proxy_v2, other_families_fall_back_to_local)
{
	struct edge_proxy_result res;
	struct v2 h;
	/* AF_UNIX stream and datagram: 2 x 108 bytes of paths. */
	for (uint8_t fam = 0x31; fam <= 0x32; fam++) {
		uint8_t paths[216] = { 0 };
		memcpy(paths, "/run/haproxy.sock", 17);
		v2_begin(&h, 0x21, fam);
		v2_put(&h, paths, sizeof paths);
		v2_tlv(&h, EDGE_PP2_TYPE_AUTHORITY, "example.com", 11);
		v2_end(&h);
		accept_n(h.b, h.n, &res);
		cr_assert(res.local);
		cr_assert_eq(res.family, fam);
		cr_assert_eq(res.src_len, 0);
		assert_bytes(res.authority, "example.com");
	}
	/* UDP over IPv4 and IPv6. */
	v2_tcp4(&h, 0x1);
	h.b[13] = 0x12;
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert(res.local);
	cr_assert_eq(res.family, 0x12);
	uint8_t a6[36] = { 0 };
	v2_begin(&h, 0x21, 0x22);
	v2_put(&h, a6, sizeof a6);
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert(res.local);
	/* PROXY with UNSPEC. */
	v2_begin(&h, 0x21, 0x00);
	v2_end(&h);
	accept_n(h.b, h.n, &res);
	cr_assert(res.local);
}

Test(edge_proxy_v2, tlvs)
{
	struct v2 h;
	struct edge_proxy_result res;
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_ALPN, "h2", 2);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, "\0\0\0", 3);
	v2_tlv(&h, EDGE_PP2_TYPE_AUTHORITY, "chat.example.com", 16);
	v2_tlv(&h, 0xE1, "\x01\x02", 2); /* a vendor's */
	v2_tlv(&h, EDGE_PP2_TYPE_NETNS, "blue", 4);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, "", 0);
	uint8_t uid[128];
	memset(uid, 0x5a, sizeof uid);
	v2_tlv(&h, EDGE_PP2_TYPE_UNIQUE_ID, uid, sizeof uid);
	/* SSL: client over TLS with a verified certificate. */
	uint8_t ssl[128];
	size_t sn = 0;
	ssl[sn++] = EDGE_PP2_CLIENT_SSL | EDGE_PP2_CLIENT_CERT_CONN;
	memcpy(ssl + sn, "\0\0\0\0", 4);
	sn += 4;
	const struct { uint8_t t; const char *v; } sub[] = {
		{ EDGE_PP2_SUBTYPE_SSL_VERSION, "TLSv1.3" },
		{ EDGE_PP2_SUBTYPE_SSL_CN, "alice" },
		{ EDGE_PP2_SUBTYPE_SSL_CIPHER, "TLS_AES_256_GCM_SHA384" },
		{ EDGE_PP2_SUBTYPE_SSL_SIG_ALG, "RSA-SHA256" },
		{ EDGE_PP2_SUBTYPE_SSL_KEY_ALG, "RSA2048" },
	};
	for (size_t i = 0; i < 5; i++) {
		size_t l = strlen(sub[i].v);
		ssl[sn++] = sub[i].t;
		ssl[sn++] = 0;
		ssl[sn++] = (uint8_t)l;
		memcpy(ssl + sn, sub[i].v, l);
		sn += l;
	}
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, ssl, sn);
	v2_end(&h);

	accept_n(h.b, h.n, &res);
	assert_in4(&res.src, res.src_len, "192.0.2.1", 4711);
	assert_bytes(res.alpn, "h2");
	assert_bytes(res.authority, "chat.example.com");
	cr_assert_eq(res.unique_id.n, 128);
	cr_assert(res.ssl);
	cr_assert_eq(res.ssl_client, EDGE_PP2_CLIENT_SSL | EDGE_PP2_CLIENT_CERT_CONN);
	cr_assert_eq(res.ssl_verify, 0);
	assert_bytes(res.ssl_version, "TLSv1.3");
	assert_bytes(res.ssl_cn, "alice");
	assert_bytes(res.ssl_cipher, "TLS_AES_256_GCM_SHA384");
	cr_assert_not(res.crc_verified);
	cr_assert_eq(res.tlvs.n, h.n - 28);

	size_t len;
	const uint8_t *v = edge_proxy_tlv_find(&res, 0xE1, &len);
	cr_assert_not_null(v);
	cr_assert_eq(len, 2);
	cr_assert_eq(v[1], 2);
	v = edge_proxy_tlv_find(&res, EDGE_PP2_TYPE_NETNS, &len);
	cr_assert_eq(len, 4);
	cr_assert_eq(memcmp(v, "blue", 4), 0);
	cr_assert_null(edge_proxy_tlv_find(&res, 0xEF, &len));
	cr_assert_eq(len, 0);

	/* A failed verification is reported, not judged. */
	struct v2 h2;
	v2_tcp4(&h2, 0x1);
	v2_tlv(&h2, EDGE_PP2_TYPE_SSL, "\x01\x00\x00\x00\x2a", 5);
	v2_end(&h2);
	accept_n(h2.b, h2.n, &res);
	cr_assert(res.ssl);
	cr_assert_eq(res.ssl_verify, 42);
	cr_assert_null(res.ssl_version.p);
}

/* An independent CRC32c: the table-driven form, built here. */
static uint32_t ref_crc32c(const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
	}
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

Test(edge_proxy_v2, crc32c)
{
	/* The CRC-32C check value (RFC 3720 B.4 / the catalogue). */
	cr_assert_eq(edge_proxy_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
	cr_assert_eq(ref_crc32c((const uint8_t *)"123456789", 9), 0xE3069283u);
	/* Continuation equals one pass. */
	uint32_t c = edge_proxy_crc32c(0, (const uint8_t *)"1234", 4);
	cr_assert_eq(edge_proxy_crc32c(c, (const uint8_t *)"56789", 5), 0xE3069283u);
	/* RFC 3720 B.4: 32 bytes of zeros. */
	uint8_t z[32] = { 0 };
	cr_assert_eq(edge_proxy_crc32c(0, z, 32), 0x8A9136AAu);

	struct v2 h;
	struct edge_proxy_result res;
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_ALPN, "http/1.1", 8);
	size_t at = h.n + 3;
	v2_tlv(&h, EDGE_PP2_TYPE_CRC32C, "\0\0\0\0", 4);
	v2_tlv(&h, EDGE_PP2_TYPE_UNIQUE_ID, "id-1", 4);
	v2_end(&h);
	uint32_t crc = ref_crc32c(h.b, h.n);
	h.b[at] = (uint8_t)(crc >> 24);
	h.b[at + 1] = (uint8_t)(crc >> 16);
	h.b[at + 2] = (uint8_t)(crc >> 8);
	h.b[at + 3] = (uint8_t)crc;
	accept_n(h.b, h.n, &res);
	cr_assert(res.crc_verified);
	assert_bytes(res.alpn, "http/1.1");

	/* Any changed bit anywhere in the header is caught. */
	for (size_t i = 12; i < h.n; i++) {
		if (i == 14 || i == 15 || i == at - 3)
			continue; /* a longer header, or no CRC TLV any more */
		h.b[i] ^= 0x01;
		const char *why;
		ssize_t r = parse_exact(h.b, h.n, &res, &why);
		cr_assert_eq(r, -1, "flipped byte %zu accepted", i);
		h.b[i] ^= 0x01;
	}
	h.b[at] ^= 0x80;
	refuse_n(h.b, h.n, "CRC32c mismatch");
	h.b[at] ^= 0x80;
	h.b[20] ^= 0x01; /* the source address */
	refuse_n(h.b, h.n, "CRC32c mismatch");
	h.b[20] ^= 0x01;

	struct v2 bad;
	v2_tcp4(&bad, 0x1);
	v2_tlv(&bad, EDGE_PP2_TYPE_CRC32C, "\0\0\0", 3);
	v2_end(&bad);
	refuse_n(bad.b, bad.n, "not 4 bytes");

	/* A CRC on a LOCAL health check is checked too. */
	v2_begin(&h, 0x20, 0x00);
	v2_tlv(&h, EDGE_PP2_TYPE_CRC32C, "\0\0\0\0", 4);
	v2_end(&h);
	crc = ref_crc32c(h.b, h.n);
	h.b[19] = (uint8_t)(crc >> 24);
	h.b[20] = (uint8_t)(crc >> 16);
	h.b[21] = (uint8_t)(crc >> 8);
	h.b[22] = (uint8_t)crc;
	accept_n(h.b, h.n, &res);
	cr_assert(res.crc_verified && res.local);
	h.b[22] ^= 1;
	refuse_n(h.b, h.n, "CRC32c mismatch");
}

Test(edge_proxy_v2, bad_signature)
{
	struct v2 h;
	v2_tcp4(&h, 0x1);
	v2_end(&h);
	for (size_t i = 0; i < 12; i++) {
		struct v2 b = h;
		b.b[i] ^= 0x20;
		refuse_n(b.b, b.n, "expected a PROXY protocol header");
	}
}

Test(edge_proxy_v2, version_and_command)
{
	struct v2 h;
	v2_tcp4(&h, 0x1);
	v2_end(&h);
	const uint8_t versions[] = { 0x01, 0x11, 0x31, 0xF1, 0x00 };
	for (size_t i = 0; i < sizeof versions; i++) {
		h.b[12] = versions[i];
		refuse_n(h.b, h.n, "version is not 2");
	}
	for (uint8_t cmd = 2; cmd < 16; cmd++) {
		h.b[12] = (uint8_t)(0x20 | cmd);
		refuse_n(h.b, h.n, "neither LOCAL nor PROXY");
	}
}

Test(edge_proxy_v2, families)
{
	struct v2 h;
	v2_tcp4(&h, 0x1);
	v2_end(&h);
	const uint8_t bad[] = { 0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0x40, 0xF1, 0xFF };
	for (size_t i = 0; i < sizeof bad; i++) {
		h.b[13] = bad[i];
		refuse_n(h.b, h.n, "unknown address family");
	}
}

Test(edge_proxy_v2, lengths)
{
	struct v2 h;
	/* The address block must fit the family. */
	v2_tcp4(&h, 0x1);
	h.n--;
	v2_end(&h);
	refuse_n(h.b, h.n, "too short for the address family");
	uint8_t a[35] = { 0 };
	v2_begin(&h, 0x21, 0x21);
	v2_put(&h, a, sizeof a);
	v2_end(&h);
	refuse_n(h.b, h.n, "too short for the address family");
	uint8_t paths[215] = { 0 };
	v2_begin(&h, 0x21, 0x31);
	v2_put(&h, paths, sizeof paths);
	v2_end(&h);
	refuse_n(h.b, h.n, "too short for the address family");
	/* LOCAL is held to the same: the family byte says where TLVs start. */
	v2_tcp4(&h, 0x0);
	h.n -= 2;
	v2_end(&h);
	refuse_n(h.b, h.n, "too short for the address family");

	/* The whole header fits EDGE_PROXY_V2_MAX, and no more. */
	v2_tcp4(&h, 0x1);
	size_t pad = EDGE_PROXY_V2_MAX - h.n - 3;
	uint8_t *z = calloc(1, pad);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, z, pad);
	v2_end(&h);
	cr_assert_eq(h.n, EDGE_PROXY_V2_MAX);
	struct edge_proxy_result res;
	accept_n(h.b, h.n, &res);
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, z, pad);
	v2_put(&h, "\x04\x00\x00", 3);
	v2_end(&h);
	free(z);
	refuse_n(h.b, h.n, "longer than 4096");
	/* A length announcing more than will ever be accepted is refused on
	 * the 16th byte, without waiting for the rest. */
	v2_begin(&h, 0x21, 0x11);
	h.b[14] = 0xFF;
	h.b[15] = 0xFF;
	const char *why;
	cr_assert_eq(parse_exact(h.b, 16, &res, &why), -1);
	cr_assert(strstr(why, "longer than 4096"));
}

Test(edge_proxy_v2, truncated_needs_more)
{
	/* A header cut anywhere, even right before its last TLV byte, is
	 * "need more": the caller's timeout decides, not the parser. */
	struct v2 h;
	struct edge_proxy_result res;
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_AUTHORITY, "a.example", 9);
	v2_end(&h);
	const char *why;
	for (size_t k = 0; k < h.n; k++)
		cr_assert_eq(parse_exact(h.b, k, &res, &why), 0, "cut at %zu", k);
}

Test(edge_proxy_v2, tlv_overrun)
{
	struct v2 h;
	/* A TLV whose length runs past the header. */
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_ALPN, "h2", 2);
	v2_end(&h);
	h.b[h.n - 3] = 3;
	refuse_n(h.b, h.n, "TLV overruns the header");
	h.b[h.n - 4] = 0x80;
	refuse_n(h.b, h.n, "TLV overruns the header");
	/* One or two stray bytes: not even a TLV header. */
	for (size_t extra = 1; extra <= 2; extra++) {
		v2_tcp4(&h, 0x1);
		v2_put(&h, "\x04\x00", extra);
		v2_end(&h);
		refuse_n(h.b, h.n, "TLV header overruns");
	}
	/* A TLV that would fit the bytes received but not the header's
	 * length: the bytes behind the header are not TLVs. */
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_ALPN, "h2", 2);
	v2_end(&h);
	h.b[15] -= 1;
	refuse_n(h.b, h.n - 1, "TLV overruns the header");
}

Test(edge_proxy_v2, tlv_rules)
{
	struct v2 h;
	/* Interpreted TLVs at most once. */
	const uint8_t once[] = { EDGE_PP2_TYPE_ALPN, EDGE_PP2_TYPE_AUTHORITY, EDGE_PP2_TYPE_UNIQUE_ID,
				 EDGE_PP2_TYPE_CRC32C };
	for (size_t i = 0; i < sizeof once; i++) {
		v2_tcp4(&h, 0x1);
		v2_tlv(&h, once[i], "abcd", 4);
		v2_tlv(&h, once[i], "abcd", 4);
		v2_end(&h);
		refuse_n(h.b, h.n, "repeated");
	}
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x00\x00\x00\x00\x00", 5);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x00\x00\x00\x00\x00", 5);
	v2_end(&h);
	refuse_n(h.b, h.n, "repeated");
	/* Skipped TLVs may repeat. */
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, "", 0);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, "", 0);
	v2_tlv(&h, 0xE0, "x", 1);
	v2_tlv(&h, 0xE0, "y", 1);
	v2_end(&h);
	struct edge_proxy_result res;
	accept_n(h.b, h.n, &res);

	uint8_t uid[129] = { 0 };
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_UNIQUE_ID, uid, sizeof uid);
	v2_end(&h);
	refuse_n(h.b, h.n, "unique ID longer than 128");

	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x01\x00\x00\x00", 4);
	v2_end(&h);
	refuse_n(h.b, h.n, "SSL TLV shorter than 5");

	/* Sub-TLVs are bounded by the SSL TLV, not by the header. */
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x01\x00\x00\x00\x00\x21\x00\x09TLSv1.3", 15);
	v2_tlv(&h, EDGE_PP2_TYPE_NOOP, "xx", 2);
	v2_end(&h);
	refuse_n(h.b, h.n, "SSL sub-TLV overruns");
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x01\x00\x00\x00\x00\x21\x00", 7);
	v2_end(&h);
	refuse_n(h.b, h.n, "SSL sub-TLV header overruns");
	v2_tcp4(&h, 0x1);
	v2_tlv(&h, EDGE_PP2_TYPE_SSL, "\x01\x00\x00\x00\x00\x22\x00\x01" "a\x22\x00\x01" "b", 13);
	v2_end(&h);
	refuse_n(h.b, h.n, "SSL sub-TLV repeated");
}

Test(edge_proxy_v2, port_zero)
{
	struct v2 h;
	v2_tcp4(&h, 0x1);
	v2_end(&h);
	h.b[24] = h.b[25] = 0;
	refuse_n(h.b, h.n, "port 0");
	v2_tcp4(&h, 0x1);
	v2_end(&h);
	h.b[26] = h.b[27] = 0;
	refuse_n(h.b, h.n, "port 0");
	/* LOCAL ignores the addresses, so their ports too. */
	v2_tcp4(&h, 0x0);
	v2_end(&h);
	h.b[24] = h.b[25] = 0;
	struct edge_proxy_result res;
	accept_n(h.b, h.n, &res);
}
