/* edge_forwarded — who the client really is behind trusted proxies: the
 * trusted-proxy list (addresses and CIDRs) and the evaluation of
 * X-Forwarded-For, X-Forwarded-Proto and Forwarded (RFC 7239). No I/O.
 *
 * Stage "HTTP upgrade": once the request head is parsed, the connection
 * path asks edge_forwarded_resolve for the client address that limits, logs
 * and plugins see, and for the scheme the client used. The peer address it
 * starts from is the socket's, or the one a PROXY protocol header gave
 * (edge_proxy.h).
 *
 * Rules (each one is what an operator of nginx's realip module or of
 * HAProxy would expect):
 *
 *  - Headers are believed only when the immediate peer is trusted. From
 *    any other peer they are ignored whatever they say: the client address
 *    is the peer and the scheme is "".
 *  - Chains are walked from the right (the hop nearest to us), skipping
 *    trusted addresses; the first untrusted address is the client. If every
 *    address is trusted, the leftmost one is. Several header lines with the
 *    same name are one list, in order (RFC 9110 §5.3). What lies left of the
 *    chosen element was written by the client itself and is never looked
 *    at in X-Forwarded-For.
 *  - Precedence: when both are present, X-Forwarded-For (with
 *    X-Forwarded-Proto) wins over Forwarded, and Forwarded is not looked at.
 *    The proxies in front of gateways (nginx, HAProxy, cloud load
 *    balancers, CDNs) maintain X-Forwarded-For by default and pass a
 *    client's Forwarded header through untouched; believing Forwarded first
 *    would let any client choose its address behind them. An operator whose
 *    proxy maintains only Forwarded sets `headers` to EDGE_FWD_FORWARDED so
 *    that a client-sent X-Forwarded-For cannot do the same.
 *  - The scheme comes with the address: from the chosen Forwarded
 *    element's proto=, or from X-Forwarded-Proto, whose element aligned with
 *    the chosen X-Forwarded-For hop (counting from the right; each proxy
 *    that appends to one appends to the other) is taken, or its leftmost
 *    element when it is shorter (proxies that overwrite it rather than
 *    append). X-Forwarded-Proto alone, without X-Forwarded-For or
 *    Forwarded, gives the scheme from its rightmost element. A scheme is
 *    returned lower-cased; it is whatever the proxy said ("https", "wss",
 *    ...), syntactically checked (RFC 3986 scheme), for the caller to map.
 *  - Hidden clients: an X-Forwarded-For element "unknown" or "_name", or a
 *    Forwarded element whose for= is "unknown", an obfuscated "_name", or
 *    absent, stops the walk: the client address stays the peer (the scheme
 *    of that element is still used), and *why says so.
 *  - Malformed input is never guessed at: the header is ignored, the peer
 *    address kept, and *why gives the reason for the log. An
 *    X-Forwarded-For element is malformed when it is not an IPv4 address
 *    (optionally ":port"), an IPv6 address (bare or "[...]", optionally
 *    ":port"), "unknown" or "_name"; a malformed X-Forwarded-For also
 *    discards X-Forwarded-Proto (no alignment is possible). Forwarded must
 *    be well-formed as a whole (RFC 7239 §4: tokens or quoted strings,
 *    each parameter at most once per element, for= and by= nodes per §6
 *    with IPv6 in brackets and the value quoted, proto= a URI scheme, host=
 *    a host[:port]): a quoted string may hide a comma, so once anything in
 *    it is malformed no element boundary can be trusted. Whitespace is
 *    allowed around ',' and ';', not around '='.
 *  - The returned client port is the one the header gave ("1.2.3.4:5678",
 *    for="[2001:db8::1]:4711"), or 0.
 *
 * Pure functions, any thread; an edge_trusted is read-only once parsed.
 */
#ifndef MBGW_EDGE_FORWARDED_H
#define MBGW_EDGE_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/http_parser.h"

#define EDGE_TRUSTED_MAX 256   /* entries in one list */
#define EDGE_FWD_MAX_HOPS 32   /* Forwarded elements walked from the right */
#define EDGE_SCHEME_MAX 16     /* longest scheme believed, NUL excluded */

/* Which headers a trusted peer is believed for (edge_trusted.headers). */
#define EDGE_FWD_XFF       0x1u  /* X-Forwarded-For and X-Forwarded-Proto */
#define EDGE_FWD_FORWARDED 0x2u  /* Forwarded (RFC 7239) */

/* One address block. addr holds the network in network byte order (4
 * bytes used for AF_INET), host bits zero. */
struct edge_cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t prefix;      /* 0..32 or 0..128 */
	uint8_t addr[16];
};

struct edge_trusted {
	size_t n;
	unsigned headers;    /* EDGE_FWD_* bits; both after edge_trusted_parse */
	struct edge_cidr cidr[EDGE_TRUSTED_MAX];
};

/* Parses a list such as "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8" into *out
 * (replacing what it held). Entries are separated by commas and/or blanks;
 * an address without "/len" is a single host (/32, /128); an empty or NULL
 * list trusts nobody. Refused, with `file:line`-free text in err (for the
 * caller to prefix) such as "'10.0.0.1/8' has host bits set (did you mean
 * 10.0.0.0/8?)": bad addresses, prefix lengths out of range or with
 * leading zeros, bits set beyond the prefix, empty entries (",,"), more
 * than EDGE_TRUSTED_MAX entries.
 * Returns 0, or MBGW_E_INVAL with err filled (err may be NULL). */
int edge_trusted_parse(const char *list, struct edge_trusted *out, char *err, size_t errcap);

/* True if addr (AF_INET or AF_INET6; other families never match) falls in
 * one of t's blocks. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for IPv4 clients) matches the IPv4 blocks that
 * contain a.b.c.d, and an IPv4 address the IPv6 blocks that contain its
 * mapped form. */
bool edge_trusted_contains(const struct edge_trusted *t, const struct sockaddr *addr);

/* Resolves the real client address and scheme of `req`, received from
 * `peer` (borrowed, AF_INET or AF_INET6), by the rules above.
 * Writes the client address to *client / *client_len (always: the peer's,
 * port included, when the headers are not believed) and the scheme to
 * scheme[0..scheme_cap) as a NUL-terminated lower-case string, or "" when
 * no believed header gave one (the caller then uses the connection's own,
 * ws or wss); a scheme that does not fit scheme_cap is ignored.
 * *why (may be NULL) is set to a static reason when a forwarding header
 * was present but not (wholly) believed — untrusted peer, malformed,
 * hidden client — and to NULL otherwise.
 * Returns 1 when the client address comes from a header, 0 when it is the
 * peer's, MBGW_E_INVAL when the peer is not an IP address (nothing
 * written but *why). */
int edge_forwarded_resolve(const struct edge_trusted *t, const struct sockaddr *peer,
			   const struct http_request *req, struct sockaddr_storage *client,
			   socklen_t *client_len, char *scheme, size_t scheme_cap, const char **why);

#endif
