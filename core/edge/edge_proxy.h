/* edge_proxy — the PROXY protocol header (HAProxy, versions 1 and 2), with
 * no I/O.
 *
 * Stage "socket → read buffer", before TLS and HTTP: on a listener
 * configured with `proxy_protocol`, the first bytes of every connection are
 * a PROXY header written by the load balancer in front of us, carrying the
 * client's real addresses. Given the bytes read so far the parser answers
 * "complete (n bytes of header)", "need more" or "error (static reason)",
 * in the style of picohttpparser: it allocates nothing, and the TLV values
 * it reports point into the caller's buffer. Bytes behind the header (the
 * TLS ClientHello or the HTTP request) are never touched.
 *
 * Detection. The spec (proxy-protocol.txt §5) forbids guessing whether a
 * header is there: the caller calls this only on listeners that expect one,
 * and anything that is not a PROXY header — a plain HTTP request, a TLS
 * ClientHello — is an error ("expected a PROXY protocol header"), reported
 * as soon as the first byte shows it. Both versions are accepted on such a
 * listener (the spec recommends it of v2 receivers).
 *
 * Strictness. Version 1: one line of at most 107 bytes ending in CRLF,
 * "PROXY", exactly one space between fields, "TCP4" / "TCP6" followed by
 * two addresses of that family and two ports, or "UNKNOWN" followed by
 * nothing or by a space and printable text that is ignored. IPv4 addresses
 * are dotted quads without leading zeros; IPv6 addresses are what
 * inet_pton(3) accepts (the form inet_ntop(3) writes, which is what senders
 * use, including "::ffff:192.0.2.1"). Ports are decimal without leading
 * zeros, 1..65535: the spec allows 0 but no TCP connection has it, so a 0
 * means a broken sender. Control characters, a lone CR or LF and
 * anything else refuse the line, as early as the bytes show it.
 * Version 2: the 12-byte signature, version 2, command LOCAL or PROXY,
 * a defined family/protocol byte, a length whose address block fits the
 * family, at most EDGE_PROXY_V2_MAX bytes in all, and TLVs that exactly
 * tile what follows the addresses (a TLV running past the header is
 * refused, and so are the SSL TLV's sub-TLVs). A CRC32c TLV, when present,
 * is verified (RFC 4960 appendix B; the spec's "MUST treat as invalid").
 * The TLVs mbgw reads — ALPN, AUTHORITY, CRC32C, UNIQUE_ID, SSL — may each
 * appear at most once: two values for one name are an ambiguity nobody
 * should resolve by guessing. Other TLVs are skipped.
 *
 * Which headers give addresses. Only TCP over IPv4 or IPv6 ("TCP4"/"TCP6",
 * v2 0x11/0x21) with the PROXY command fills src/dst. v1 UNKNOWN, v2 LOCAL,
 * and every other valid v2 family/protocol — UNSPEC, UDP (0x12/0x22), and
 * AF_UNIX (0x31/0x32) — set `local`: the connection keeps the socket's own
 * addresses (those of the proxy). For UNSPEC/UDP that is what the spec asks
 * of a receiver that does not support them ("falls back to the UNSPEC
 * mode"). For AF_UNIX it is a decision: a proxy that accepted its client on
 * a UNIX socket has no IP address to tell us, and refusing would make such
 * a set-up (a local TLS terminator on a socket path) unusable, while
 * keeping the proxy's address can never be used to spoof one. `family`
 * tells the caller which it was, for its log.
 *
 * Pure functions, any thread.
 */
#ifndef MBGW_EDGE_PROXY_H
#define MBGW_EDGE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define EDGE_PROXY_V1_MAX 107   /* longest v1 line, CRLF included (spec §2.1) */
/* Longest v2 header we accept, signature to last TLV. The spec sizes the
 * header to fit a 536-byte segment; TLVs make it longer (an SSL TLV with
 * client CN, cipher and algorithms, a unique id of up to 128 bytes, cloud
 * vendors' custom TLVs), but nothing real comes near 4 KiB, and the bound
 * tells the caller how large its read buffer must be. */
#define EDGE_PROXY_V2_MAX 4096
/* The most bytes a complete header can take: a caller with this much
 * buffered and still told "need more" cannot happen. */
#define EDGE_PROXY_MAX EDGE_PROXY_V2_MAX

/* v2 TLV types (spec §2.2). */
#define EDGE_PP2_TYPE_ALPN        0x01
#define EDGE_PP2_TYPE_AUTHORITY   0x02
#define EDGE_PP2_TYPE_CRC32C      0x03
#define EDGE_PP2_TYPE_NOOP        0x04
#define EDGE_PP2_TYPE_UNIQUE_ID   0x05
#define EDGE_PP2_TYPE_SSL         0x20
#define EDGE_PP2_SUBTYPE_SSL_VERSION 0x21
#define EDGE_PP2_SUBTYPE_SSL_CN      0x22
#define EDGE_PP2_SUBTYPE_SSL_CIPHER  0x23
#define EDGE_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define EDGE_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define EDGE_PP2_TYPE_NETNS       0x30

/* Bits of edge_proxy_result.ssl_client (spec §2.2.6). */
#define EDGE_PP2_CLIENT_SSL       0x01
#define EDGE_PP2_CLIENT_CERT_CONN 0x02
#define EDGE_PP2_CLIENT_CERT_SESS 0x04

#define EDGE_PP2_UNIQUE_ID_MAX 128  /* spec §2.2.5 */

/* A value inside the parsed header: borrowed from the caller's buffer,
 * p == NULL and n == 0 when absent. Not NUL-terminated; may hold any byte
 * (a sender's bytes, not checked for UTF-8 or printability). */
struct edge_proxy_bytes {
	const uint8_t *p;
	size_t n;
};

struct edge_proxy_result {
	int version;                  /* 1 or 2 */
	bool local;                   /* keep the socket's own addresses */
	/* What the header said, for logs: v1 "TCP4" 0x11, "TCP6" 0x21,
	 * "UNKNOWN" 0x00; v2 the family/protocol byte as sent. */
	uint8_t family;
	/* The client (src) and the address it connected to (dst), ports
	 * included: AF_INET or AF_INET6 when !local, zeroed with length 0 when
	 * local. */
	struct sockaddr_storage src, dst;
	socklen_t src_len, dst_len;

	/* Version 2 only (all absent for v1). */
	struct edge_proxy_bytes tlvs;      /* every TLV, for callers after custom types */
	struct edge_proxy_bytes alpn;      /* e.g. "h2", "http/1.1" */
	struct edge_proxy_bytes authority; /* the TLS SNI (or other host name) */
	struct edge_proxy_bytes unique_id; /* at most EDGE_PP2_UNIQUE_ID_MAX bytes */
	bool crc_verified;                 /* a CRC32c TLV was present and matched */
	bool ssl;                          /* an SSL TLV was present */
	uint8_t ssl_client;                /* EDGE_PP2_CLIENT_* bits */
	uint32_t ssl_verify;               /* 0: client certificate verified */
	struct edge_proxy_bytes ssl_version; /* e.g. "TLSv1.3" */
	struct edge_proxy_bytes ssl_cn;      /* client certificate's CN */
	struct edge_proxy_bytes ssl_cipher;  /* e.g. "TLS_AES_256_GCM_SHA384" */
};

/* Parses a PROXY protocol header (v1 or v2) from p[0..n).
 * Returns the header's length (> 0) when it is complete and valid, with
 * *out filled; 0 when every byte so far can still start a valid header and
 * more are needed (never for n >= EDGE_PROXY_MAX); -1 when the bytes are
 * not a valid header, with *why set to a static, human-readable reason
 * (e.g. "PROXY v1: port out of range"). *out is meaningful only after a
 * return > 0; its edge_proxy_bytes point into p. why may be NULL. */
ssize_t edge_proxy_parse(const uint8_t *p, size_t n, struct edge_proxy_result *out, const char **why);

/* Finds the first TLV of `type` among res->tlvs (version 2), for types the
 * parser does not interpret itself (e.g. a cloud vendor's 0xE0..0xEF).
 * Returns a pointer to its value (borrowed, like res) and its length in
 * *len, or NULL. */
const uint8_t *edge_proxy_tlv_find(const struct edge_proxy_result *res, uint8_t type, size_t *len);

/* CRC32c (Castagnoli, RFC 4960 appendix B) of p[0..n), continuing from
 * `crc` (0 to start). Exposed for tests and for writing headers. */
uint32_t edge_proxy_crc32c(uint32_t crc, const uint8_t *p, size_t n);

#endif
