/* client_internal — what the files of libmbgw-client share.
 *
 * The library is layered like the server's message path, in reverse:
 *
 *   client_url.c      URLs, proxy URLs, no_proxy (pure)
 *   client_http.c     the upgrade request, HTTP response heads, checking
 *                     the 101 answer, permessage-deflate response (pure)
 *   client_reader.c   frames from the server → messages (unmasked check,
 *                     fragments, control frames, inflate, UTF-8) (pure)
 *   client.c          sockets, proxy tunnel, TLS, states, timers,
 *                     heartbeat, reconnection, queues, requests
 *   client_msg.c      "header\nJSON" helpers (pure)
 *
 * The pure parts allocate only into caller-owned buffers and never do
 * I/O, so the fuzz target (tests/fuzz/fuzz_client_parse.c) drives them
 * directly. Names: cl_<file stem>_*; nothing here is exported from the
 * shared library (hidden visibility).
 */
#ifndef MBGW_CLIENT_INTERNAL_H
#define MBGW_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util_buf.h"
#include "ws/ws_deflate.h"
#include "ws/ws_frame.h"
#include "ws/ws_utf8.h"

/* ------------------------------------------------------------------ */
/* client_url.c */

struct cl_url {
	bool tls;            /* wss */
	bool ipv6;           /* host is an IPv6 literal (kept without brackets) */
	char host[256];
	uint16_t port;
	char hostport[300];  /* the Host header value: host[:port], brackets for IPv6 */
	char path[2048];     /* path and query, at least "/" */
};

/* Parses a ws:// or wss:// URL. Returns 0 or -1 with a reason in err. */
int cl_url_parse(const char *s, struct cl_url *u, char *err, size_t errcap);

struct cl_proxy {
	char host[256];
	bool ipv6;
	uint16_t port;
	char user[256];      /* percent-decoded; empty: no credentials */
	char pass[256];
	bool has_auth;
};

/* Parses an HTTP proxy URL: [http://][user[:pass]@]host[:port][/]
 * (default port 1080). Returns 0 or -1 with a reason in err. */
int cl_proxy_parse(const char *s, struct cl_proxy *p, char *err, size_t errcap);

/* True when host (without brackets) matches the no_proxy list value
 * (comma- or space-separated names; "*" matches all; a leading '.' and a
 * ":port" suffix of an entry are ignored; subdomains match). */
bool cl_no_proxy_match(const char *no_proxy, const char *host);

/* ------------------------------------------------------------------ */
/* client_http.c */

#define CL_HTTP_MAX_HEAD 16384
#define CL_HTTP_MAX_HEADERS 64

struct cl_http_header {
	const char *name;
	size_t name_len;
	const char *value;   /* without surrounding whitespace */
	size_t value_len;
};

/* An HTTP/1.x response head; pointers into the parsed buffer (borrowed). */
struct cl_http_resp {
	int minor;           /* HTTP/1.<minor> */
	int status;
	const char *reason;
	size_t reason_len;
	struct cl_http_header h[CL_HTTP_MAX_HEADERS];
	size_t nh;
};

/* Parses a response head from p[0..n). Returns its length (through the
 * empty line) when complete, 0 when more bytes are needed, -1 when it is
 * not a valid HTTP/1.x response head (err says why). Lines end in CRLF
 * (a bare LF is accepted as well). Heads longer than CL_HTTP_MAX_HEAD or
 * with more than CL_HTTP_MAX_HEADERS fields are refused. */
int cl_http_parse(const char *p, size_t n, struct cl_http_resp *r, char *err, size_t errcap);

/* The value of the only header called name (case-insensitive): 1 found,
 * 0 absent, -1 repeated. */
int cl_http_header(const struct cl_http_resp *r, const char *name, const char **v, size_t *len);

/* Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2): 28 chars + NUL. */
void cl_accept_key(const char *key, char out[29]);

/* Agreed permessage-deflate parameters, from the client's point of view. */
struct cl_deflate_agreed {
	bool server_no_context_takeover;
	bool client_no_context_takeover;
	unsigned server_max_window_bits;  /* 8..15, 15 when not said */
	unsigned client_max_window_bits;  /* 8..15, 15 when not said */
};

/* What we offered, to check the 101 answer against. */
struct cl_hs_offer {
	const char *key;                  /* Sec-WebSocket-Key sent */
	const char *const *protos;        /* subprotocols offered */
	size_t nprotos;
	bool deflate;                     /* permessage-deflate offered (with client_max_window_bits) */
};

struct cl_hs_result {
	char subprotocol[256];            /* "" when none */
	char extensions[256];             /* the agreed extension value, "" when none */
	bool deflate;
	struct cl_deflate_agreed dp;
};

/* Checks a complete response head against the offer (RFC 6455 §4.1, the
 * client's duties; RFC 7692 §5, §7.1). Returns 0 (accepted), or -1 with
 * the reason in err: not 101 ("server answered 404 Not Found"), or a 101
 * that must be failed (Upgrade, Connection, Accept, a subprotocol or
 * extension not offered, bad extension parameters). */
int cl_handshake_check(const struct cl_http_resp *r, const struct cl_hs_offer *o,
		       struct cl_hs_result *res, char *err, size_t errcap);

/* Parses the value of a Sec-WebSocket-Extensions answer. Returns 1 with
 * the parameters when it is a valid permessage-deflate answer to our
 * offer, -1 with a reason otherwise (unknown extension or parameter,
 * duplicate, bad value, client_max_window_bits without our offer). */
int cl_deflate_response(const char *v, size_t len, bool offered_client_bits,
			struct cl_deflate_agreed *out, char *err, size_t errcap);

/* ------------------------------------------------------------------ */
/* client_reader.c */

enum cl_ev_kind {
	CL_EV_NONE = 0,      /* need more bytes (or a data frame was absorbed: call again) */
	CL_EV_MESSAGE,       /* data/len: a complete message in r->msg */
	CL_EV_PING,          /* data/len: the ping payload (in the input) */
	CL_EV_PONG,
	CL_EV_CLOSE,         /* code (1005 if none), data/len the reason */
	CL_EV_ERROR,         /* code: what to close with, reason: why */
};

struct cl_event {
	enum cl_ev_kind kind;
	uint8_t opcode;              /* message type for CL_EV_MESSAGE */
	const uint8_t *data;
	size_t len;
	uint16_t code;
	char reason[128];
};

/* A message buffer larger than this is freed at the next message. */
#define CL_READER_KEEP (256u << 10)

struct cl_reader {
	uint64_t max_msg;            /* largest message, after inflation */
	struct ws_deflate *deflate;  /* NULL: RSV1 is refused */
	bool in_msg;
	uint8_t msg_op;
	bool compressed;
	struct ws_utf8 utf8;
	struct buf msg;              /* the message being assembled (owned) */
};

/* Prepares r (max_msg bytes per message, deflate borrowed or NULL). */
void cl_reader_init(struct cl_reader *r, uint64_t max_msg, struct ws_deflate *deflate);
/* Frees the message buffer; r may be initialised again. */
void cl_reader_free(struct cl_reader *r);

/* Decodes at most one frame from p[0..n) (server-to-client frames:
 * never masked). Returns the bytes consumed (0 when the frame is not
 * complete) and fills ev. A CL_EV_MESSAGE points into r->msg (valid
 * until the next call), control payloads into p. After CL_EV_ERROR the
 * reader must not be fed again. */
size_t cl_reader_next(struct cl_reader *r, const uint8_t *p, size_t n, struct cl_event *ev);

#endif
