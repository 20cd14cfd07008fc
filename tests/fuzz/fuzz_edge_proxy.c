/* fuzz_edge_proxy — the PROXY protocol v1/v2 parser (core/edge/edge_proxy.c).
 *
 * Input: the first bytes of a connection, as read from the socket.
 *
 * Checks, beyond "no crash, no leak":
 *  - the return value is -1, 0 or a length <= n; a refusal has a reason
 *    and leaves a zeroed result; "need more" never comes once
 *    EDGE_PROXY_MAX bytes (107 for a v1 line) are there;
 *  - an accepted header: version 1 or 2; `local` or both addresses of one
 *    family (AF_INET or AF_INET6) with their exact lengths and non-zero
 *    ports; a v1 header is one line ending at its first CRLF, within 107
 *    bytes, with no TLVs; a v2 header is 16 + its length field, at most
 *    EDGE_PROXY_V2_MAX, and every TLV value lies inside it;
 *  - the verdict agrees with a plain reference written here from the
 *    spec (v1 by splitting the line on spaces and inet_pton; v2 by
 *    reading the fixed fields, walking the TLVs and a table-driven
 *    CRC32c): same accept/refuse, same addresses, same TLV values;
 *  - the bytes after the header change nothing (the same header with the
 *    input cut right after it gives the same result), a few strict
 *    prefixes of an accepted header are "need more", and the prefixes of
 *    a refused input are never accepted; once a prefix is refused a
 *    longer one is too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>

#include "edge/edge_proxy.h"
#include "fuzz_common.h"

/* ---- the reference --------------------------------------------------- */

struct ref {
	int verdict; /* 1 accepted, -1 refused, 0 undecided (incomplete) */
	size_t len;
	bool local;
	int family;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	const uint8_t *alpn, *authority, *unique_id;
	size_t alpn_n, authority_n, unique_id_n;
	bool crc;
};

static bool ref_port(const char *s, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static bool ref_addr(const char *s, size_t n, int family, uint8_t *out)
{
	char buf[64];
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (family == AF_INET6) {
		/* inet_pton takes nothing else, but say it plainly. */
		for (size_t i = 0; i < n; i++)
			if (!strchr("0123456789abcdefABCDEF:.", buf[i]))
				return false;
	}
	return inet_pton(family, buf, out) == 1;
}

static void ref_v1(const uint8_t *p, size_t n, struct ref *r)
{
	size_t lim = n < 107 ? n : 107, crlf = 0;
	bool found = false;
	for (size_t i = 0; i + 1 < lim; i++) {
		if (p[i] == '\r' && p[i + 1] == '\n') {
			crlf = i;
			found = true;
			break;
		}
	}
	if (!found) {
		r->verdict = n >= 107 ? -1 : 0;
		return;
	}
	r->verdict = -1;
	for (size_t i = 0; i < crlf; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return;
	/* Split on single spaces, keeping empty fields. */
	const char *line = (const char *)p;
	const char *f[8];
	size_t fl[8], nf = 0, s = 0;
	for (size_t i = 0; i <= crlf; i++) {
		if (i == crlf || line[i] == ' ') {
			if (nf == 8)
				break;
			f[nf] = line + s;
			fl[nf++] = i - s;
			s = i + 1;
		}
	}
	if (nf < 2 || fl[0] != 5 || memcmp(f[0], "PROXY", 5) != 0)
		return;
	if (fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
		r->verdict = 1;
		r->local = true;
		r->len = crlf + 2;
		return;
	}
	if (nf != 6 || fl[1] != 4 || memcmp(f[1], "TCP", 3) != 0 || (f[1][3] != '4' && f[1][3] != '6'))
		return;
	int fam = f[1][3] == '4' ? AF_INET : AF_INET6;
	if (!ref_addr(f[2], fl[2], fam, r->src) || !ref_addr(f[3], fl[3], fam, r->dst) ||
	    !ref_port(f[4], fl[4], &r->sport) || !ref_port(f[5], fl[5], &r->dport))
		return;
	r->verdict = 1;
	r->family = fam;
	r->len = crlf + 2;
}

static uint32_t ref_crc32c(const uint8_t *p, size_t n, size_t zero_at)
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
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (i >= zero_at && i < zero_at + 4) ? 0 : p[i];
		crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
	}
	return crc ^ 0xFFFFFFFFu;
}

static void ref_v2(const uint8_t *p, size_t n, struct ref *r)
{
	static const uint8_t sig[12] = { 13, 10, 13, 10, 0, 13, 10, 'Q', 'U', 'I', 'T', 10 };
	r->verdict = -1;
	if (n < 16) {
		r->verdict = 0;
		return;
	}
	if (memcmp(p, sig, 12) != 0 || p[12] >> 4 != 2 || (p[12] & 15) > 1)
		return;
	size_t alen;
	switch (p[13]) {
	case 0x00: alen = 0; break;
	case 0x11: case 0x12: alen = 12; break;
	case 0x21: case 0x22: alen = 36; break;
	case 0x31: case 0x32: alen = 216; break;
	default: return;
	}
	size_t total = 16 + ((size_t)p[14] << 8 | p[15]);
	if (total > 4096 || total < 16 + alen)
		return;
	if (n < total) {
		r->verdict = 0;
		return;
	}
	bool proxy = (p[12] & 15) == 1 && (p[13] == 0x11 || p[13] == 0x21);
	if (proxy) {
		size_t al = p[13] == 0x11 ? 4 : 16;
		r->family = al == 4 ? AF_INET : AF_INET6;
		memcpy(r->src, p + 16, al);
		memcpy(r->dst, p + 16 + al, al);
		r->sport = (uint16_t)(p[16 + 2 * al] << 8 | p[17 + 2 * al]);
		r->dport = (uint16_t)(p[18 + 2 * al] << 8 | p[19 + 2 * al]);
		if (!r->sport || !r->dport)
			return;
	}
	int seen[256] = { 0 };
	size_t crc_at = 0;
	for (size_t off = 16 + alen; off != total;) {
		if (off + 3 > total)
			return;
		uint8_t t = p[off];
		size_t l = (size_t)p[off + 1] << 8 | p[off + 2];
		const uint8_t *v = p + off + 3;
		if (off + 3 + l > total)
			return;
		if (((t >= 1 && t <= 3) || t == 5 || t == 0x20) && seen[t]++)
			return;
		if (t == 1) {
			r->alpn = v;
			r->alpn_n = l;
		} else if (t == 2) {
			r->authority = v;
			r->authority_n = l;
		} else if (t == 3) {
			if (l != 4)
				return;
			crc_at = off + 3;
		} else if (t == 5) {
			if (l > 128)
				return;
			r->unique_id = v;
			r->unique_id_n = l;
		} else if (t == 0x20) {
			if (l < 5)
				return;
			int sub[256] = { 0 };
			for (size_t so = 5; so != l;) {
				if (so + 3 > l || so + 3 + ((size_t)v[so + 1] << 8 | v[so + 2]) > l)
					return;
				if (v[so] >= 0x21 && v[so] <= 0x23 && sub[v[so]]++)
					return;
				so += 3 + ((size_t)v[so + 1] << 8 | v[so + 2]);
			}
		}
		off += 3 + l;
	}
	if (crc_at) {
		uint32_t want = (uint32_t)p[crc_at] << 24 | (uint32_t)p[crc_at + 1] << 16 |
				(uint32_t)p[crc_at + 2] << 8 | p[crc_at + 3];
		if (ref_crc32c(p, total, crc_at) != want)
			return;
		r->crc = true;
	}
	r->verdict = 1;
	r->local = !proxy;
	r->len = total;
}

/* ---- the checks ------------------------------------------------------- */

static void check_addr(const struct sockaddr_storage *ss, socklen_t len, int family, const uint8_t *addr,
		       uint16_t port)
{
	CHECK(ss->ss_family == family, "family %d, reference %d", ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		CHECK(len == sizeof *a, "IPv4 length %u", (unsigned)len);
		CHECK(memcmp(&a->sin_addr, addr, 4) == 0, "IPv4 address differs from the reference");
		CHECK(ntohs(a->sin_port) == port && port != 0, "port %u, reference %u", ntohs(a->sin_port), port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		CHECK(len == sizeof *a, "IPv6 length %u", (unsigned)len);
		CHECK(memcmp(&a->sin6_addr, addr, 16) == 0, "IPv6 address differs from the reference");
		CHECK(ntohs(a->sin6_port) == port && port != 0, "port %u, reference %u", ntohs(a->sin6_port), port);
	}
}

static void check_bytes(struct edge_proxy_bytes b, const uint8_t *rp, size_t rn, const uint8_t *data,
			size_t hdr, const char *what)
{
	CHECK(b.p == rp && b.n == rn, "%s: %p+%zu, reference %p+%zu", what, (const void *)b.p, b.n,
	      (const void *)rp, rn);
	if (b.p)
		CHECK(fuzz_inside(b.p, b.n, data, hdr), "%s outside the header", what);
}

static void check_accepted(const uint8_t *data, size_t size, ssize_t r, const struct edge_proxy_result *res)
{
	CHECK(res->version == 1 || res->version == 2, "version %d", res->version);
	if (res->local) {
		CHECK(res->src_len == 0 && res->dst_len == 0 && res->src.ss_family == 0 && res->dst.ss_family == 0,
		      "local result with addresses");
	} else {
		CHECK(res->src.ss_family == res->dst.ss_family, "src and dst of different families");
		CHECK(res->src.ss_family == AF_INET || res->src.ss_family == AF_INET6, "family %d",
		      res->src.ss_family);
	}
	const struct edge_proxy_bytes *all[] = { &res->tlvs, &res->alpn, &res->authority, &res->unique_id,
						 &res->ssl_version, &res->ssl_cn, &res->ssl_cipher };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (all[i]->p)
			CHECK(fuzz_inside(all[i]->p, all[i]->n, data, (size_t)r), "TLV value %zu outside the header", i);
		else
			CHECK(all[i]->n == 0, "absent value %zu with a length", i);
		if (res->version == 1)
			CHECK(!all[i]->p, "v1 header with a TLV value");
	}
	CHECK(res->unique_id.n <= EDGE_PP2_UNIQUE_ID_MAX, "unique id of %zu bytes", res->unique_id.n);
	if (res->version == 1) {
		CHECK(data[0] == 'P' && r <= EDGE_PROXY_V1_MAX, "v1 header of %zd bytes", r);
		CHECK(data[r - 2] == '\r' && data[r - 1] == '\n', "v1 header does not end in CRLF");
		for (ssize_t i = 0; i + 2 < r; i++)
			CHECK(data[i] != '\r' && data[i] != '\n', "CR or LF inside a v1 line");
	} else {
		CHECK(size >= 16 && r == 16 + (data[14] << 8 | data[15]) && r <= EDGE_PROXY_V2_MAX,
		      "v2 header of %zd bytes", r);
	}
	/* edge_proxy_tlv_find gives the first TLV of a type, or NULL. */
	uint8_t type = data[size - 1];
	size_t flen;
	const uint8_t *fv = edge_proxy_tlv_find(res, type, &flen);
	const uint8_t *first = NULL;
	size_t first_len = 0;
	for (size_t off = 0; res->tlvs.p && off < res->tlvs.n;) {
		const uint8_t *t = res->tlvs.p + off;
		size_t l = (size_t)t[1] << 8 | t[2];
		CHECK(off + 3 + l <= res->tlvs.n, "TLVs do not tile their area");
		if (t[0] == type && !first) {
			first = t + 3;
			first_len = l;
		}
		off += 3 + l;
	}
	CHECK(fv == first && (fv ? flen == first_len : flen == 0), "tlv_find(0x%02x) is not the first such TLV", type);
	/* Trailing bytes change nothing. */
	if ((size_t)r < size) {
		struct edge_proxy_result again;
		const char *why = NULL;
		CHECK(edge_proxy_parse(data, (size_t)r, &again, &why) == r, "cut after the header: %s", why);
		CHECK(memcmp(&again, res, sizeof again) == 0, "result depends on the bytes after the header");
	}
	/* Strict prefixes need more. */
	size_t cuts[] = { (size_t)r - 1, (size_t)r / 2, 1, 13, 15, 16, (size_t)r - 3 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		if (cuts[i] >= (size_t)r)
			continue;
		struct edge_proxy_result part;
		const char *why = NULL;
		ssize_t pr = edge_proxy_parse(data, cuts[i], &part, &why);
		CHECK(pr == 0, "prefix %zu of an accepted %zd-byte header: %zd (%s)", cuts[i], r, pr, why ? why : "");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct edge_proxy_result res;
	const char *why = NULL;
	ssize_t r = edge_proxy_parse(data, size, &res, &why);
	CHECK(r >= -1 && r <= (ssize_t)size, "returned %zd for %zu bytes", r, size);

	if (r == -1) {
		CHECK(why && *why, "refused without a reason");
		static const struct edge_proxy_result zero;
		CHECK(memcmp(&res, &zero, sizeof res) == 0, "refused with a filled result");
	} else if (r == 0) {
		CHECK(size < EDGE_PROXY_MAX, "need more after %zu bytes", size);
		CHECK(size == 0 || data[0] != 'P' || size < EDGE_PROXY_V1_MAX, "v1 needs more after %zu bytes", size);
	} else {
		check_accepted(data, size, r, &res);
	}

	/* The reference, where it can decide. */
	struct ref ref;
	memset(&ref, 0, sizeof ref);
	ref.verdict = -1;
	if (size > 0 && data[0] == 'P')
		ref_v1(data, size, &ref);
	else if (size > 0 && data[0] == '\r')
		ref_v2(data, size, &ref);
	else if (size == 0)
		ref.verdict = 0;
	if (ref.verdict == 1) {
		CHECK(r == (ssize_t)ref.len, "reference accepts %zu bytes, parser says %zd (%s)", ref.len, r,
		      why ? why : "");
		CHECK(res.local == ref.local, "local %d, reference %d", res.local, ref.local);
		if (!ref.local) {
			check_addr(&res.src, res.src_len, ref.family, ref.src, ref.sport);
			check_addr(&res.dst, res.dst_len, ref.family, ref.dst, ref.dport);
		}
		check_bytes(res.alpn, ref.alpn, ref.alpn_n, data, ref.len, "ALPN");
		check_bytes(res.authority, ref.authority, ref.authority_n, data, ref.len, "authority");
		check_bytes(res.unique_id, ref.unique_id, ref.unique_id_n, data, ref.len, "unique id");
		CHECK(res.crc_verified == ref.crc, "CRC verified %d, reference %d", res.crc_verified, ref.crc);
	} else if (ref.verdict == -1) {
		CHECK(r == -1, "reference refuses, parser says %zd", r);
	} else if (data && size > 0 && data[0] == '\r' && size >= 16) {
		/* v2 with a sound fixed part, waiting for the rest. */
		CHECK(r == 0, "v2 fixed part fine and incomplete, parser says %zd (%s)", r, why ? why : "");
	} else {
		CHECK(r <= 0, "incomplete for the reference, parser accepted %zd", r);
	}

	/* Refusal is final: a longer input is never "need more" again. */
	if (r == -1 && size > 1) {
		struct edge_proxy_result part;
		const char *pw = NULL;
		size_t k = size - 1 - (size_t)(fuzz_hash(data, size) % (size - 1));
		ssize_t pr = edge_proxy_parse(data, k, &part, &pw);
		CHECK(pr <= 0, "prefix %zu of a refused input accepted", k);
		if (pr == -1) {
			pr = edge_proxy_parse(data, k + (size - k) / 2, &part, &pw);
			CHECK(pr == -1, "refused at %zu, not at %zu", k, k + (size - k) / 2);
		}
	}
	return 0;
}
