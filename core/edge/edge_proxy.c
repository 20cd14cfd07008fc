/* edge_proxy — see edge_proxy.h. Section numbers are those of HAProxy's
 * proxy-protocol.txt (2020/03/05). */
#include "edge/edge_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t V2_SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char V1_SIG[] = "PROXY";

static ssize_t fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

uint32_t edge_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	/* Bitwise, reflected polynomial 0x1EDC6F41: headers are short and the
	 * TLV rare, so a table (and its thread-safe initialisation) would buy
	 * nothing. */
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

static void set_in4(struct sockaddr_storage *ss, socklen_t *len, const uint8_t addr[4], uint16_t port)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof *ss);
	a->sin_family = AF_INET;
	memcpy(&a->sin_addr, addr, 4);
	a->sin_port = htons(port);
	*len = sizeof *a;
}

static void set_in6(struct sockaddr_storage *ss, socklen_t *len, const uint8_t addr[16], uint16_t port)
{
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof *ss);
	a->sin6_family = AF_INET6;
	memcpy(&a->sin6_addr, addr, 16);
	a->sin6_port = htons(port);
	*len = sizeof *a;
}

/* ---- version 1 ------------------------------------------------------ */

/* A field of the v1 line. `open` when it runs into the end of the bytes
 * received so far and may still grow: it is then judged as a prefix. */
struct v1_field {
	const char *s;
	size_t n;
	bool open;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_prefix_of(const struct v1_field *f, const char *word)
{
	size_t wn = strlen(word);
	if (f->open ? f->n > wn : f->n != wn)
		return false;
	return memcmp(f->s, word, f->n) == 0;
}

/* §2.1: "exactly 4 integers in the range [0..255] ... separated by exactly
 * one dot ... Heading zeroes are not permitted". */
static bool parse_ipv4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;
	for (int k = 0; k < 4; k++) {
		if (k > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		size_t start = i;
		unsigned v = 0;
		while (i < n && is_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		size_t digits = i - start;
		if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
			return false;
		out[k] = (uint8_t)v;
	}
	return i == n;
}

/* IPv6 as inet_pton(3) reads it, from the characters a v6 address can
 * hold (so that no other syntax inet_pton might take slips through). */
static bool parse_ipv6(const char *s, size_t n, uint8_t out[16])
{
	char buf[INET6_ADDRSTRLEN];
	if (n == 0 || n >= sizeof buf)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

static ssize_t v1_address(const struct v1_field *f, bool v6, uint8_t out[16], const char **why)
{
	if (f->open) {
		/* Judge what there is: the right characters, not too many, and
		 * for IPv4 the octets seen so far. */
		if (f->n > (v6 ? INET6_ADDRSTRLEN - 1 : 15))
			return fail(why, "PROXY v1: address too long");
		unsigned octet = 0, digits = 0, dots = 0;
		for (size_t i = 0; i < f->n; i++) {
			char c = f->s[i];
			if (!v6 && c == ':')
				return fail(why, "PROXY v1: IPv6 address after TCP4");
			if (!(is_digit(c) || c == '.' || (v6 && (is_hex(c) || c == ':'))))
				return fail(why, "PROXY v1: bad address");
			if (v6)
				continue;
			if (c == '.') {
				if (digits == 0 || ++dots > 3)
					return fail(why, "PROXY v1: bad IPv4 address");
				octet = digits = 0;
				continue;
			}
			if (digits == 1 && octet == 0)
				return fail(why, "PROXY v1: bad IPv4 address");
			octet = octet * 10 + (unsigned)(c - '0');
			if (++digits > 3 || octet > 255)
				return fail(why, "PROXY v1: bad IPv4 address");
		}
		return 0;
	}
	if (!v6 && parse_ipv4(f->s, f->n, out))
		return 1;
	if (v6 && parse_ipv6(f->s, f->n, out))
		return 1;
	/* A valid address of the other family is a mismatch worth naming. */
	uint8_t other[16];
	if (!v6 && parse_ipv6(f->s, f->n, other))
		return fail(why, "PROXY v1: IPv6 address after TCP4");
	if (v6 && parse_ipv4(f->s, f->n, other))
		return fail(why, "PROXY v1: IPv4 address after TCP6");
	return fail(why, v6 ? "PROXY v1: bad IPv6 address" : "PROXY v1: bad IPv4 address");
}

static ssize_t v1_port(const struct v1_field *f, uint16_t *port, const char **why)
{
	unsigned long v = 0;
	if (!f->open && f->n == 0)
		return fail(why, "PROXY v1: empty port");
	for (size_t i = 0; i < f->n; i++) {
		if (!is_digit(f->s[i]))
			return fail(why, "PROXY v1: port is not a decimal number");
		if (i >= 5)
			return fail(why, "PROXY v1: port out of range");
		v = v * 10 + (unsigned long)(f->s[i] - '0');
	}
	if (f->n > 0 && f->s[0] == '0')
		return fail(why, f->n == 1 ? "PROXY v1: port 0" : "PROXY v1: port with a leading zero");
	if (v > 65535)
		return fail(why, "PROXY v1: port out of range");
	if (f->open)
		return 0;
	*port = (uint16_t)v;
	return 1;
}

/* Splits the next field off line[*pos..n) at a space. Returns false when
 * the bytes end before the field starts (only possible when partial). */
static bool v1_next(const char *line, size_t n, size_t *pos, bool partial, struct v1_field *f)
{
	if (*pos >= n && partial)
		return false;
	size_t s = *pos, e = s;
	while (e < n && line[e] != ' ')
		e++;
	f->s = line + s;
	f->n = e - s;
	f->open = partial && e == n;
	*pos = e;
	return true;
}

/* After a field: expects the single space before the next one. Returns 1
 * when it is there, 0 when the bytes end first, -1 otherwise. */
static ssize_t v1_space(const char *line, size_t n, size_t *pos, bool partial, const char **why)
{
	if (*pos >= n) {
		if (partial)
			return 0;
		return fail(why, "PROXY v1: missing fields");
	}
	(*pos)++; /* line[*pos] is a space: v1_next stops only there */
	if (*pos < n && line[*pos] == ' ')
		return fail(why, "PROXY v1: more than one space between fields");
	return 1;
}

/* Parses line[0..n) — the CRLF excluded — as the fields of a v1 header.
 * With `partial`, the line is not complete yet: returns 0 if it can still
 * become valid, -1 if not. Otherwise returns 1 with *out filled, or -1. */
static ssize_t v1_fields(const char *line, size_t n, bool partial, struct edge_proxy_result *out,
			 const char **why)
{
	size_t pos = 0;
	struct v1_field f;
	ssize_t r;

	if (!v1_next(line, n, &pos, partial, &f))
		return 0;
	if (!is_prefix_of(&f, V1_SIG))
		return fail(why, "expected a PROXY protocol header");
	if (f.open)
		return 0;
	if ((r = v1_space(line, n, &pos, partial, why)) <= 0)
		return r;

	if (!v1_next(line, n, &pos, partial, &f))
		return 0;
	if (!is_prefix_of(&f, "TCP4") && !is_prefix_of(&f, "TCP6") && !is_prefix_of(&f, "UNKNOWN"))
		return fail(why, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (f.open)
		return 0;
	if (f.n == 7) {
		/* §2.1: after UNKNOWN "the receiver must ignore anything
		 * presented before the CRLF" (already checked to be printable). */
		if (pos < n && line[pos] != ' ')
			return fail(why, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
		if (partial)
			return 0;
		out->local = true;
		out->family = 0x00;
		return 1;
	}
	bool v6 = f.s[3] == '6';

	uint8_t addr[2][16];
	uint16_t port[2];
	for (int i = 0; i < 4; i++) {
		if ((r = v1_space(line, n, &pos, partial, why)) <= 0)
			return r;
		if (!v1_next(line, n, &pos, partial, &f))
			return 0;
		if (f.n == 0 && !f.open)
			return fail(why, "PROXY v1: empty field");
		r = i < 2 ? v1_address(&f, v6, addr[i], why) : v1_port(&f, &port[i - 2], why);
		if (r <= 0)
			return r;
	}
	if (pos < n)
		return fail(why, "PROXY v1: unexpected data after the destination port");
	if (partial)
		return 0;
	out->family = v6 ? 0x21 : 0x11;
	if (v6) {
		set_in6(&out->src, &out->src_len, addr[0], port[0]);
		set_in6(&out->dst, &out->dst_len, addr[1], port[1]);
	} else {
		set_in4(&out->src, &out->src_len, addr[0], port[0]);
		set_in4(&out->dst, &out->dst_len, addr[1], port[1]);
	}
	return 1;
}

static ssize_t parse_v1(const uint8_t *p, size_t n, struct edge_proxy_result *out, const char **why)
{
	const char *line = (const char *)p;
	size_t i;
	/* §2.1: wait for the CRLF before decoding, but refuse what can no
	 * longer become a valid line as soon as it shows ("abort the
	 * connection as soon as possible"). */
	for (i = 0; i < n && i < EDGE_PROXY_V1_MAX; i++) {
		uint8_t c = p[i];
		if (c == '\r') {
			if (i + 2 > EDGE_PROXY_V1_MAX)
				return fail(why, "PROXY v1: line longer than 107 bytes");
			if (i + 1 == n)
				break; /* the LF may follow */
			if (p[i + 1] != '\n')
				return fail(why, "PROXY v1: CR without LF");
			ssize_t r = v1_fields(line, i, false, out, why);
			if (r < 0)
				return r;
			out->version = 1;
			return (ssize_t)(i + 2);
		}
		if (c == '\n')
			return fail(why, "PROXY v1: LF without CR");
		if (c < 0x20 || c > 0x7E)
			return fail(why, "PROXY v1: control character or non-ASCII byte");
	}
	if (i >= EDGE_PROXY_V1_MAX)
		return fail(why, "PROXY v1: line longer than 107 bytes");
	return v1_fields(line, i, true, out, why);
}

/* ---- version 2 ------------------------------------------------------ */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Length of the address block for a family/protocol byte, or -1 for a
 * byte outside the list §2.2 says receivers may see. */
static int v2_addr_len(uint8_t fam)
{
	switch (fam) {
	case 0x00: return 0;
	case 0x11: case 0x12: return 12;
	case 0x21: case 0x22: return 36;
	case 0x31: case 0x32: return 216;
	default: return -1;
	}
}

static bool take_once(struct edge_proxy_bytes *slot, const uint8_t *v, size_t l)
{
	if (slot->p)
		return false;
	slot->p = v;
	slot->n = l;
	return true;
}

/* §2.2.6: the SSL TLV is a client byte, a 32-bit verify result, then
 * sub-TLVs with the same layout as TLVs. */
static ssize_t v2_ssl(const uint8_t *v, size_t l, struct edge_proxy_result *out, const char **why)
{
	if (l < 5)
		return fail(why, "PROXY v2: SSL TLV shorter than 5 bytes");
	out->ssl = true;
	out->ssl_client = v[0];
	out->ssl_verify = be32(v + 1);
	for (size_t off = 5; off < l;) {
		if (l - off < 3)
			return fail(why, "PROXY v2: SSL sub-TLV header overruns the SSL TLV");
		uint8_t t = v[off];
		size_t sl = be16(v + off + 1);
		const uint8_t *sv = v + off + 3;
		if (sl > l - off - 3)
			return fail(why, "PROXY v2: SSL sub-TLV overruns the SSL TLV");
		bool ok = true;
		if (t == EDGE_PP2_SUBTYPE_SSL_VERSION)
			ok = take_once(&out->ssl_version, sv, sl);
		else if (t == EDGE_PP2_SUBTYPE_SSL_CN)
			ok = take_once(&out->ssl_cn, sv, sl);
		else if (t == EDGE_PP2_SUBTYPE_SSL_CIPHER)
			ok = take_once(&out->ssl_cipher, sv, sl);
		if (!ok)
			return fail(why, "PROXY v2: SSL sub-TLV repeated");
		off += 3 + sl;
	}
	return 1;
}

/* Walks the TLVs in p[start..total): they must tile it exactly. */
static ssize_t v2_tlvs(const uint8_t *p, size_t start, size_t total, struct edge_proxy_result *out,
		       const char **why)
{
	size_t crc_at = 0;
	out->tlvs.p = p + start;
	out->tlvs.n = total - start;
	for (size_t off = start; off < total;) {
		if (total - off < 3)
			return fail(why, "PROXY v2: TLV header overruns the header");
		uint8_t t = p[off];
		size_t l = be16(p + off + 1);
		const uint8_t *v = p + off + 3;
		if (l > total - off - 3)
			return fail(why, "PROXY v2: TLV overruns the header");
		bool ok = true;
		switch (t) {
		case EDGE_PP2_TYPE_ALPN:
			ok = take_once(&out->alpn, v, l);
			break;
		case EDGE_PP2_TYPE_AUTHORITY:
			ok = take_once(&out->authority, v, l);
			break;
		case EDGE_PP2_TYPE_CRC32C:
			if (l != 4)
				return fail(why, "PROXY v2: CRC32c TLV is not 4 bytes");
			ok = crc_at == 0;
			crc_at = off + 3;
			break;
		case EDGE_PP2_TYPE_UNIQUE_ID:
			if (l > EDGE_PP2_UNIQUE_ID_MAX)
				return fail(why, "PROXY v2: unique ID longer than 128 bytes");
			ok = take_once(&out->unique_id, v, l);
			break;
		case EDGE_PP2_TYPE_SSL: {
			if (out->ssl)
				return fail(why, "PROXY v2: TLV repeated");
			ssize_t r = v2_ssl(v, l, out, why);
			if (r < 0)
				return r;
			break;
		}
		default:
			break; /* NOOP, NETNS, custom and future types: skipped */
		}
		if (!ok)
			return fail(why, "PROXY v2: TLV repeated");
		off += 3 + l;
	}
	if (crc_at) {
		/* §2.2.3: the checksum of the whole header with the field
		 * itself taken as zeros. */
		static const uint8_t zero[4];
		uint32_t crc = edge_proxy_crc32c(0, p, crc_at);
		crc = edge_proxy_crc32c(crc, zero, 4);
		crc = edge_proxy_crc32c(crc, p + crc_at + 4, total - crc_at - 4);
		if (crc != be32(p + crc_at))
			return fail(why, "PROXY v2: CRC32c mismatch");
		out->crc_verified = true;
	}
	return 1;
}

static ssize_t parse_v2(const uint8_t *p, size_t n, struct edge_proxy_result *out, const char **why)
{
	/* Judge each byte as soon as it is there (§2.2 "must drop"). */
	if (memcmp(p, V2_SIG, n < sizeof V2_SIG ? n : sizeof V2_SIG) != 0)
		return fail(why, "expected a PROXY protocol header");
	if (n < 13)
		return 0;
	if ((p[12] >> 4) != 2)
		return fail(why, "PROXY v2: version is not 2");
	uint8_t cmd = p[12] & 0x0F;
	if (cmd > 1)
		return fail(why, "PROXY v2: command is neither LOCAL nor PROXY");
	if (n < 14)
		return 0;
	uint8_t fam = p[13];
	int alen = v2_addr_len(fam);
	if (alen < 0)
		return fail(why, "PROXY v2: unknown address family or transport protocol");
	if (n < 16)
		return 0;
	size_t total = 16 + (size_t)be16(p + 14);
	if (total > EDGE_PROXY_V2_MAX)
		return fail(why, "PROXY v2: header longer than 4096 bytes");
	if (total < 16 + (size_t)alen)
		return fail(why, "PROXY v2: length too short for the address family");
	if (n < total)
		return 0;

	const uint8_t *a = p + 16;
	out->version = 2;
	out->family = fam;
	/* §2.2: LOCAL keeps the real endpoints; families we do not serve
	 * fall back to the UNSPEC mode, i.e. the same (see edge_proxy.h). */
	out->local = !(cmd == 1 && (fam == 0x11 || fam == 0x21));
	if (!out->local) {
		size_t al = fam == 0x11 ? 4 : 16;
		uint16_t sport = be16(a + 2 * al), dport = be16(a + 2 * al + 2);
		if (sport == 0 || dport == 0)
			return fail(why, "PROXY v2: port 0");
		if (fam == 0x11) {
			set_in4(&out->src, &out->src_len, a, sport);
			set_in4(&out->dst, &out->dst_len, a + 4, dport);
		} else {
			set_in6(&out->src, &out->src_len, a, sport);
			set_in6(&out->dst, &out->dst_len, a + 16, dport);
		}
	}
	/* UNSPEC has an empty address block: HAProxy writes its TLVs (CRC,
	 * unique id...) right after the 16 fixed bytes, LOCAL included. */
	ssize_t r = v2_tlvs(p, 16 + (size_t)alen, total, out, why);
	if (r < 0)
		return r;
	return (ssize_t)total;
}

ssize_t edge_proxy_parse(const uint8_t *p, size_t n, struct edge_proxy_result *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (n == 0)
		return 0;
	/* The first byte tells the versions apart: 'P' or CR. */
	ssize_t r;
	if (p[0] == V1_SIG[0])
		r = parse_v1(p, n, out, why);
	else if (p[0] == V2_SIG[0])
		r = parse_v2(p, n, out, why);
	else
		return fail(why, "expected a PROXY protocol header");
	if (r <= 0)
		memset(out, 0, sizeof *out);
	return r;
}

const uint8_t *edge_proxy_tlv_find(const struct edge_proxy_result *res, uint8_t type, size_t *len)
{
	const uint8_t *t = res->tlvs.p;
	size_t n = res->tlvs.n;
	/* The parser has checked that the TLVs tile the area exactly. */
	for (size_t off = 0; t && off + 3 <= n;) {
		size_t l = be16(t + off + 1);
		if (l > n - off - 3)
			break;
		if (t[off] == type) {
			*len = l;
			return t + off + 3;
		}
		off += 3 + l;
	}
	*len = 0;
	return NULL;
}
