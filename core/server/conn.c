/* conn — one client connection, from the first request byte to close.
 *
 * A byte's path through this file:
 *   conn_on_readable → read into rbuf → process_input
 *     CONN_HTTP: http_parse_request → handle_request → 101 (or an answer
 *                and close) → the rest of rbuf is frames (kept, not lost)
 *     CONN_OPEN: ws_reader_feed → on_message (echo) / on_control
 *   conn_send_message → outq → conn_flush (one writev per loop iteration)
 *
 * State changes happen only in set_state(). A connection is never freed
 * here: conn_terminate marks it DEAD and the worker's loop frees it after
 * the current batch of events (so no callback runs on freed memory).
 * Runs only on the connection's worker thread.
 */
#include "server/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_parser.h"
#include "http/http_response.h"
#include "net/net_listen.h"
#include "util/util_log.h"
#include "edge/edge_forwarded.h"
#include "edge/edge_proxy.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "tls/tls.h"
#include "ws/ws_handshake.h"

#define RBUF_SIZE (64 * 1024)
/* Payloads from this size on are queued by reference to the read buffer
 * they arrived in (queue_frame_rsv): a buffer is then pinned by at most
 * RBUF_SIZE / SHARE_MIN times the bytes that reference it. */
#define SHARE_MIN (8 * 1024)
#define INPUT_CACHE_MAX 64
/* A ping that could not be queued (no memory) is tried again this soon. */
#define PING_RETRY_MS 200

/* The input state (read buffer and frame reader) is taken with the first
 * byte and returned between messages. The reader comes back idle, so a
 * cached one only needs this connection's settings. */
static __thread struct conn_input *input_cache[INPUT_CACHE_MAX];
static __thread unsigned input_ncache;

static const struct conf *cf(const struct conn *c) { return c->w->srv->conf; }

/* Read buffers are blobs (outq.h), taken when a connection has bytes to
 * process and returned when it has none, so idle connections cost no
 * buffer; the blob cache recycles them. Being blobs, a reply can queue a
 * reference to the message it answers instead of a copy. */
static size_t rbuf_size(const struct conn *c)
{
	size_t need = (size_t)c->w->srv->conf->max_header_size + 1;
	return need > RBUF_SIZE ? need : RBUF_SIZE;
}

static int rbuf_take(struct conn *c)
{
	return blob_buf_take(&c->in->rbuf, rbuf_size(c));
}

static void rbuf_give_back(struct conn *c)
{
	blob_buf_release(&c->in->rbuf);
}

/* Drops the first n bytes of the read buffer, leaving the bytes a queued
 * reply points to where they are (blob_buf_consume). An emptied buffer
 * goes back at once. */
static void rbuf_consume(struct conn *c, size_t n)
{
	if (blob_buf_consume(&c->in->rbuf, n) < 0)
		conn_terminate(c, "out of memory for a read buffer");
}

/* Makes sure the connection has its input state and a read buffer. */
static int input_take(struct conn *c)
{
	if (!c->in) {
		struct conn_input *in;
		if (input_ncache) {
			in = input_cache[--input_ncache];
		} else {
			in = malloc(sizeof *in);
			if (!in)
				return -1;
			in->rbuf = (struct buf){ 0 };
			ws_reader_init(&in->rd, 0, 0, true);
		}
		/* What differs between connections. */
		in->rd.max_payload = cf(c)->max_payload;
		in->rd.rsv_allowed = c->pmd ? WS_RSV1 : 0;
		c->in = in;
	}
	return rbuf_take(c);
}

static void input_cache_put(struct conn_input *in)
{
	if (input_ncache < INPUT_CACHE_MAX) {
		input_cache[input_ncache++] = in;
		return;
	}
	ws_reader_free(&in->rd);
	free(in);
}

/* Gives the read buffer back when it is empty, and the whole input state
 * when, besides, no frame or fragmented message is half received: so an
 * idle connection holds neither. */
static void input_give_back(struct conn *c)
{
	struct conn_input *in = c->in;
	if (!in)
		return;
	if (in->rbuf.len == 0)
		rbuf_give_back(c);
	if (in->rbuf.data || ws_reader_mid_message(&in->rd))
		return;
	c->in = NULL;
	input_cache_put(in);
}

/* At close: whatever is buffered or half received is dropped. */
static void input_free(struct conn *c)
{
	struct conn_input *in = c->in;
	if (!in)
		return;
	in->rbuf.len = 0;
	rbuf_give_back(c);
	c->in = NULL;
	if (ws_reader_mid_message(&in->rd)) {
		ws_reader_free(&in->rd);
		free(in);
	} else {
		input_cache_put(in);
	}
}

void conn_thread_cleanup(void)
{
	while (input_ncache) {
		struct conn_input *in = input_cache[--input_ncache];
		ws_reader_free(&in->rd);
		free(in);
	}
}


/* --- the parts of a connection that are not always there --- */

struct conn_extra *conn_extra(struct conn *c)
{
	if (!c->x)
		c->x = calloc(1, sizeof *c->x);
	return c->x;
}

static void extra_free(struct conn *c)
{
	struct conn_extra *x = c->x;
	if (!x)
		return;
	free(x->query);
	free(x->head);
	free(x->identity);
	free(x->auth_claims);
	free(x->close_reason);
	free(x->groups); /* normally gone already (group_leave_all) */
	if (x->zmsg) {
		buf_free(x->zmsg);
		free(x->zmsg);
	}
	free(x);
	c->x = NULL;
}

/* The client's address is kept as 16 bytes, a port and a family (IPv4
 * as an IPv4-mapped IPv6 address) instead of a 28-byte sockaddr_in6 plus
 * its 64-byte text: the text is made when a log line or plugin asks. */
void conn_set_peer(struct conn *c, const struct sockaddr *sa)
{
	memset(c->peer_addr, 0, sizeof c->peer_addr);
	c->peer_port = 0;
	c->peer_family = (uint8_t)sa->sa_family;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		memcpy(c->peer_addr, &a->sin6_addr, 16);
		c->peer_port = ntohs(a->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		c->peer_addr[10] = c->peer_addr[11] = 0xff;
		memcpy(c->peer_addr + 12, &a->sin_addr, 4);
		c->peer_port = ntohs(a->sin_port);
	}
}

socklen_t conn_peer_sockaddr(const struct conn *c, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (c->peer_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(c->peer_port);
		memcpy(&a->sin6_addr, c->peer_addr, 16);
		return sizeof *a;
	}
	if (c->peer_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(c->peer_port);
		memcpy(&a->sin_addr, c->peer_addr + 12, 4);
		return sizeof *a;
	}
	ss->ss_family = c->peer_family;
	return sizeof ss->ss_family;
}

void conn_peer_format(const struct conn *c, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	conn_peer_sockaddr(c, &ss);
	net_addr_format((const struct sockaddr *)&ss, out, cap);
}

const char *conn_peer(const struct conn *c)
{
	static __thread char text[2][64];
	static __thread unsigned next;
	char *out = text[next++ & 1];
	conn_peer_format(c, out, sizeof text[0]);
	return out;
}

/* The connection's one timer fires in `ms` (conn_on_timer). */
static void timer_in(struct conn *c, uint64_t ms)
{
	wheel_arm(&c->w->wheel, &c->timer, c->w->now_ms + ms);
}

/* Every state has at most one deadline, counted from entering it: the
 * handshake timeout before OPEN, the heartbeat while OPEN, the close
 * timeout while closing. So one timer per connection does, re-armed on
 * each state change. */
static void arm_state_timer(struct conn *c)
{
	const struct conf *k = cf(c);
	switch (c->state) {
	case CONN_PROXY:
	case CONN_TLS:
	case CONN_HTTP:
		timer_in(c, k->handshake_timeout_ms);
		break;
	case CONN_OPEN:
		if (k->ping_interval_ms)
			timer_in(c, k->ping_interval_ms);
		else
			wheel_cancel(&c->w->wheel, &c->timer);
		break;
	case CONN_CLOSING:
	case CONN_LINGER:
	case CONN_DRAIN:
		timer_in(c, k->close_timeout_ms);
		break;
	case CONN_DEAD:
		wheel_cancel(&c->w->wheel, &c->timer);
		break;
	}
}

static void set_state(struct conn *c, enum conn_state s)
{
	c->state = s;
	arm_state_timer(c);
	/* LINGER acts in conn_flush (shut down once the queue is written),
	 * so make sure a flush happens even if nothing new was queued. */
	if (s == CONN_LINGER)
		worker_mark_dirty(c->w, c);
}

struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer, unsigned listener,
		      bool limits_counted)
{
	bool tls = w->srv->conf->listen[listener].tls;
	bool proxy = w->srv->conf->listen[listener].proxy_protocol;
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->w = w;
	c->id = ((uint64_t)(w->index + 1) << 48) | ++w->next_conn_seq;
	c->accepted_ms = w->now_ms;
	c->last_rx_ms = (uint32_t)w->now_ms;
	c->listener = (uint8_t)listener;
	conn_set_peer(c, peer);
	set_state(c, CONN_HTTP);
	/* TCP_NODELAY comes from the listener (net_listen_open). */
	c->limits_counted = limits_counted;
	c->wss = tls;
	if (proxy) {
		/* The PROXY header comes first, before any TLS record. */
		set_state(c, CONN_PROXY);
		return c;
	}
	if (tls) {
		c->ssl = tls_session_new(fd);
		if (!c->ssl) {
			log_msg(LOG_ERROR, c->id, "cannot start a TLS session for %s: %s", conn_peer(c), tls_error_text());
			wheel_cancel(&w->wheel, &c->timer);
			close(fd);
			free(c);
			return NULL;
		}
		set_state(c, CONN_TLS);
	}
	return c;
}

void conn_free(struct conn *c)
{
	wheel_cancel(&c->w->wheel, &c->timer);
	if (c->limits_counted) {
		/* The address the limits counted: the peer's, unless a trusted
		 * proxy named another client after the count. */
		struct sockaddr_storage ss;
		if (c->x && c->x->limits_addr_set)
			memcpy(&ss, &c->x->limits_addr, sizeof c->x->limits_addr);
		else
			conn_peer_sockaddr(c, &ss);
		limits_disconnect(c->w->srv->conf, (const struct sockaddr *)&ss);
	}
	transport_free(c);
	if (c->pmd) {
		ws_deflate_free(c->pmd);
		free(c->pmd);
	}
	if (c->fd >= 0)
		close(c->fd);
	input_free(c);
	outq_free(&c->out);
	extra_free(c);
	free(c);
}

void conn_terminate(struct conn *c, const char *why)
{
	if (c->state == CONN_DEAD)
		return;
	if (why)
		log_msg(LOG_DEBUG, c->id, "connection dropped: %s", why);
	set_state(c, CONN_DEAD);
	worker_mark_dead(c->w, c);
}

/* --- output --- */

/* True when [p, p+n) lies in this connection's read buffer: the message
 * being delivered, unmasked in place. (Compared as integers: the pointer
 * may belong to any other object.) */
static bool in_rbuf(const struct conn *c, const uint8_t *p, size_t n)
{
	if (!c->in || !c->in->rbuf.data)
		return false;
	const struct buf *b = &c->in->rbuf;
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)b->data;
	return a >= lo && a - lo <= b->len && n <= b->len - (a - lo);
}

static int queue_frame_rsv(struct conn *c, bool fin, uint8_t rsv, uint8_t opcode, const uint8_t *data,
			   size_t len)
{
	/* A large payload that sits in our read buffer (a reply that echoes
	 * or forwards what it answers) is queued by reference, not copied:
	 * the buffer stays as it is while queued (rbuf_consume). Small ones
	 * are copied, so that a few bytes never pin a whole read buffer. */
	bool share = len >= SHARE_MIN && in_rbuf(c, data, len);
	uint8_t *dst = outq_reserve(&c->out, WS_MAX_HEADER + (share ? 0 : len));
	if (!dst)
		return -1;
	size_t hl = ws_frame_encode_header(dst, fin, rsv, opcode, len, NULL);
	if (share) {
		const struct buf *rb = &c->in->rbuf;
		outq_commit(&c->out, hl);
		if (outq_append_shared(&c->out, blob_of_buf(rb), (size_t)(data - rb->data), len) < 0) {
			/* The header is queued already: without its payload the
			 * stream is broken, so the connection ends here. */
			conn_terminate(c, "out of memory queueing a frame");
			return -1;
		}
	} else {
		if (len)
			memcpy(dst + hl, data, len);
		outq_commit(&c->out, hl + len);
	}
	worker_mark_dirty(c->w, c);
	return 0;
}

static int queue_frame(struct conn *c, bool fin, uint8_t opcode, const uint8_t *data, size_t len)
{
	return queue_frame_rsv(c, fin, 0, opcode, data, len);
}

/* Queues a message as frames of at most fragment_size; rsv (RSV1 for a
 * compressed message) goes on the first frame only (RFC 7692 §6.1). */
static int queue_frames(struct conn *c, uint8_t opcode, uint8_t rsv, const uint8_t *data, size_t len)
{
	size_t frag = (size_t)cf(c)->fragment_size;
	if (!frag || len <= frag)
		return queue_frame_rsv(c, true, rsv, opcode, data, len);
	uint8_t op = opcode;
	while (len > frag) {
		if (queue_frame_rsv(c, false, rsv, op, data, frag) < 0)
			return -1;
		data += frag;
		len -= frag;
		op = WS_OP_CONT;
		rsv = 0;
	}
	return queue_frame_rsv(c, true, 0, op, data, len);
}

/* Messages out, by route and type. */
static void count_out(struct conn *c, uint8_t opcode, size_t len)
{
	if (!c->rslot)
		return;
	int t = opcode == WS_OP_BINARY;
	METRIC_INC(c->rslot->msgs_out[t]);
	METRIC_ADD(c->rslot->bytes_out[t], len);
}

int conn_send_message(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
	if (c->state != CONN_OPEN)
		return -1;
	if (c->pmd && ws_deflate_wanted(c->pmd, len)) {
		struct buf *z = &c->w->zout;
		z->len = 0;
		if (ws_deflate_compress(c->pmd, data, len, z) < 0)
			return -1;
		METRIC_ADD(c->w->m->deflate_out_raw, len);
		METRIC_ADD(c->w->m->deflate_out_wire, z->len);
		count_out(c, opcode, len);
		return queue_frames(c, opcode, WS_RSV1, z->data, z->len);
	}
	count_out(c, opcode, len);
	return queue_frames(c, opcode, 0, data, len);
}

/* Remembers the reason of the first close for the plugins' close callback;
 * the memory is taken only then, so open connections carry none. */
static void conn_set_close_reason(struct conn *c, const uint8_t *p, size_t n)
{
	if (!n || (c->x && c->x->close_reason))
		return;
	struct conn_extra *x = conn_extra(c);
	if (!x || !(x->close_reason = malloc(n + 1)))
		return; /* the plugins are told the code without the reason */
	memcpy(x->close_reason, p, n);
	x->close_reason[n] = 0;
	x->close_reason_len = (uint8_t)n;
}

static void queue_close_frame(struct conn *c, uint16_t code, const char *reason)
{
	uint8_t pl[WS_MAX_CONTROL] = { 0 };
	size_t n = 0;
	if (code) {
		pl[0] = (uint8_t)(code >> 8);
		pl[1] = (uint8_t)code;
		n = 2;
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > WS_MAX_CONTROL - 2)
			rl = WS_MAX_CONTROL - 2;
		/* Our reasons are ASCII, so truncation cannot split a character.
		 * (No memcpy from a NULL reason, even of 0 bytes: that is UB.) */
		if (rl)
			memcpy(pl + 2, reason, rl);
		n += rl;
	}
	if (queue_frame(c, true, WS_OP_CLOSE, pl, n) < 0)
		conn_terminate(c, "out of memory queueing a close frame");
	c->close_sent = true;
	if (!c->close_code && code) {
		/* The first close (ours or the peer's) is what plugins are told. */
		c->close_code = code;
		conn_set_close_reason(c, pl + 2, n - 2);
	}
}

/* §7.1.7 Fail the WebSocket Connection: log, send our close, read
 * nothing more, close TCP once it is written. */
static void conn_fail(struct conn *c, uint16_t code, const char *reason)
{
	METRIC_INC(c->w->m->protocol_errors[metrics_close_slot(code)]);
	log_msg(LOG_INFO, c->id, "closing %s with %u: %s", conn_peer(c), code, reason);
	if (c->state == CONN_OPEN)
		queue_close_frame(c, code, reason);
	set_state(c, CONN_LINGER);
}

void conn_close(struct conn *c, uint16_t code, const char *reason)
{
	if (c->state != CONN_OPEN)
		return;
	queue_close_frame(c, code, reason);
	set_state(c, CONN_CLOSING);
}

/* Queues an HTTP answer and closes after it has been written. An answer
 * to HEAD keeps its headers (Content-Length included) but carries no body
 * (RFC 9110 §9.3.2). */
void conn_http_answer(struct conn *c, int status, const char *content_type, const char *extra,
		      const void *body, size_t len, bool head_only)
{
	char hdr[2048];
	size_t n = http_response_head(hdr, sizeof hdr, status, content_type, extra, len);
	if (n == 0 || outq_append(&c->out, hdr, n) < 0 ||
	    (!head_only && len && outq_append(&c->out, body, len) < 0)) {
		conn_terminate(c, "cannot queue HTTP answer");
		return;
	}
	worker_mark_dirty(c->w, c);
	set_state(c, CONN_LINGER);
}

/* Queues a plain-text HTTP answer and closes after it has been written. An
 * answer to HEAD keeps its headers (Content-Length included) but carries
 * no body (RFC 9110 §9.3.2). */
static void http_answer(struct conn *c, int status, const char *extra, const char *body, bool head)
{
	char text[512];
	int n = snprintf(text, sizeof text, "%s\n", body ? body : "");
	conn_http_answer(c, status, "text/plain; charset=utf-8", extra, text,
			 n > 0 ? ((size_t)n < sizeof text ? (size_t)n : sizeof text - 1) : 0, head);
}

static enum metric_reject reject_kind(int status)
{
	switch (status) {
	case 400: case 505: return REJ_BAD_REQUEST;
	case 401: return REJ_AUTH;
	case 403: return REJ_ORIGIN;
	case 404: return REJ_NOT_FOUND;
	case 405: case 501: return REJ_METHOD;
	case 408: return REJ_TIMEOUT;
	case 413: case 431: return REJ_TOO_LARGE;
	case 426: return REJ_UPGRADE_REQUIRED;
	case 429: case 503: return REJ_LIMIT;
	default: return REJ_OTHER;
	}
}

void conn_http_reject(struct conn *c, int status, const char *reason, const struct http_request *req,
		      const char *extra)
{
	METRIC_INC(c->w->m->rejected[c->reject_as ? (unsigned)c->reject_as - 1 : (unsigned)reject_kind(status)]);
	if (req && req->target.n)
		/* The path only: a query may carry a token (auth_query_param)
		 * that must never reach the log. */
		log_msg(LOG_INFO, c->id, "handshake rejected from %s: %d %s (%.*s %.*s%s)", conn_peer(c),
			status, reason, (int)req->method.n, req->method.p,
			(int)(req->path.n > 200 ? 200 : req->path.n), req->path.p,
			req->query.n ? "?..." : "");
	else
		log_msg(LOG_INFO, c->id, "handshake rejected from %s: %d %s", conn_peer(c), status, reason);
	if (!extra && status == 426)
		extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
	else if (!extra && status == 405)
		extra = "Allow: GET\r\n";
	http_answer(c, status, extra, reason, req && http_str_eq(req->method, "HEAD"));
}

static void http_reject(struct conn *c, int status, const char *reason, const struct http_request *req)
{
	conn_http_reject(c, status, reason, req, NULL);
}

/* --- input: HTTP --- */

/* The compression policy for this connection: the server's defaults with
 * its first route's overrides. */
static void deflate_config(const struct conn *c, struct ws_deflate_config *d)
{
	const struct conf *k = cf(c);
	const struct conf_route *r = conn_routes((struct conn *)c)[0]->conf;
	ws_deflate_config_default(d);
	d->enabled = r->compression_set & CONF_RC_ENABLED ? r->compression : k->compression;
	d->threshold = (size_t)k->compression_threshold;
	d->level = (int)k->compression_level;
	d->mem_level = (unsigned)(r->compression_set & CONF_RC_MEM_LEVEL ? r->compression_mem_level
									 : k->compression_mem_level);
	d->server_max_window_bits = (unsigned)(r->compression_set & CONF_RC_WINDOW_BITS
						       ? r->compression_window_bits
						       : k->compression_window_bits);
	d->client_max_window_bits = (unsigned)k->compression_client_window_bits;
	d->server_no_context_takeover = r->compression_set & CONF_RC_NO_CONTEXT_TAKEOVER
						? r->compression_no_context_takeover
						: k->compression_no_context_takeover;
	d->client_no_context_takeover = k->compression_client_no_context_takeover;
}

/* RFC 7692 negotiation. Returns 0 (ext holds the response value, or "" if
 * compression is off for this connection) or -1 for a malformed header. */
static int negotiate_deflate(struct conn *c, const struct http_request *req, char *ext, size_t cap)
{
	const char *values[16];
	size_t lens[16], n = 0;
	for (size_t i = 0; i < req->nheaders && n < 16; i++) {
		if (http_str_ieq(req->headers[i].name, "Sec-WebSocket-Extensions")) {
			values[n] = req->headers[i].value.p;
			lens[n++] = req->headers[i].value.n;
		}
	}
	if (n == 0)
		return 0;
	struct ws_deflate_config cfg;
	deflate_config(c, &cfg);
	struct ws_deflate_params p;
	const char *why = NULL;
	int rc = ws_deflate_negotiate(&cfg, values, lens, n, &p, ext, cap, &why);
	if (rc == WS_DEFLATE_E_SYNTAX) {
		log_msg(LOG_INFO, c->id, "bad Sec-WebSocket-Extensions from %s: %s", conn_peer(c), why ? why : "syntax");
		return -1;
	}
	if (rc != 1) {
		if (why)
			log_msg(LOG_DEBUG, c->id, "compression declined: %s", why);
		ext[0] = 0;
		return 0;
	}
	c->pmd = calloc(1, sizeof *c->pmd);
	if (!c->pmd || ws_deflate_init(c->pmd, &cfg, &p) < 0) {
		free(c->pmd);
		c->pmd = NULL;
		ext[0] = 0; /* carry on uncompressed */
		return 0;
	}
	if (c->in)
		c->in->rd.rsv_allowed = WS_RSV1; /* the rest of rbuf may be compressed frames */
	return 0;
}

/* Returns the number of bytes of rbuf consumed by the request head. */
static size_t handle_http(struct conn *c)
{
	struct http_request req;
	struct http_error herr;
	struct http_limits lim = { (size_t)cf(c)->max_header_size, (size_t)cf(c)->max_headers };
	struct buf *rb = &c->in->rbuf;
	ssize_t n = http_parse_request((const char *)rb->data, rb->len, &lim, &req, &herr);
	if (n == 0)
		return 0;
	if (n < 0) {
		http_reject(c, herr.status, herr.reason, NULL);
		return rb->len;
	}

	/* Behind a trusted proxy the real client is in its forwarding
	 * headers; from anyone else they are ignored. */
	if (c->w->srv->trusted) {
		struct sockaddr_storage client;
		socklen_t cl = 0;
		char scheme[8] = "";
		const char *why = NULL;
		struct sockaddr_storage peer;
		socklen_t pl = conn_peer_sockaddr(c, &peer);
		int fr = edge_forwarded_resolve(c->w->srv->trusted, (const struct sockaddr *)&peer, &req,
						&client, &cl, scheme, sizeof scheme, &why);
		if (fr == 1 && c->limits_counted && !(c->x && c->x->limits_addr_set)) {
			/* The limits counted the proxy: remember it for the release. */
			struct conn_extra *x = conn_extra(c);
			if (!x) {
				http_reject(c, 503, "Out of memory", &req);
				return (size_t)n;
			}
			memcpy(&x->limits_addr, &peer, pl);
			x->limits_addr_set = true;
		}
		if (fr == 1) {
			char via[64];
			conn_peer_format(c, via, sizeof via);
			conn_set_peer(c, (const struct sockaddr *)&client);
			log_msg(LOG_DEBUG, c->id, "client %s via trusted proxy %s", conn_peer(c), via);
		} else if (why) {
			log_msg(LOG_DEBUG, c->id, "forwarding headers from %s ignored: %s", conn_peer(c), why);
		}
		if (fr >= 0 && (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0))
			c->wss = true;
		else if (fr >= 0 && (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0))
			c->wss = false;
	}

	/* The HTTP endpoints (/healthz, /readyz, /metrics), and the
	 * metrics-only listeners, which serve nothing else. */
	if (endpoint_handle(c, &req))
		return (size_t)n;
	if (cf(c)->listen[c->listener].metrics || !dispatch_path_exists(req.path.p, req.path.n)) {
		http_reject(c, 404, "No WebSocket route at this path", &req);
		return (size_t)n;
	}
	if (!ws_handshake_is_upgrade(&req) && http_str_eq(req.method, "GET")) {
		http_reject(c, 426, "This path serves WebSocket only: send an Upgrade request", &req);
		return (size_t)n;
	}
	struct ws_handshake_result hs;
	if (!ws_handshake_check(&req, NULL, 0, false, &hs)) {
		http_reject(c, hs.status, hs.reason, &req);
		return (size_t)n;
	}
	const char *subprotocol = NULL, *reason = NULL;
	char extra[400];
	int status = dispatch_upgrade(c, &req, &subprotocol, &reason, extra, sizeof extra);
	if (status != 101) {
		conn_http_reject(c, status, reason, &req, extra[0] ? extra : NULL);
		return (size_t)n;
	}
	char ext[WS_DEFLATE_RESPONSE_MAX] = "";
	if (negotiate_deflate(c, &req, ext, sizeof ext) < 0) {
		http_reject(c, 400, "Malformed Sec-WebSocket-Extensions header", &req);
		return (size_t)n;
	}
	char resp[512];
	size_t rl = http_response_upgrade(resp, sizeof resp, hs.accept, subprotocol, ext[0] ? ext : NULL);
	if (rl == 0 || outq_append(&c->out, resp, rl) < 0) {
		conn_terminate(c, "cannot queue 101 answer");
		return rb->len;
	}
	worker_mark_dirty(c->w, c);
	c->subprotocol = subprotocol;
	set_state(c, CONN_OPEN);
	/* Access line (logfmt fields; client text quoted and escaped). */
	const struct http_header *ua = http_find_header(&req, "User-Agent");
	char uaq[1024], idq[1100];
	const char *identity = c->x ? c->x->identity : NULL;
	if (cf(c)->access_log)
		log_msg(LOG_INFO, c->id, "open remote=%s path=%.*s route=%s subprotocol=%s tls=%d deflate=%d "
		"identity=\"%s\" status=101 duration_ms=%llu user_agent=\"%s\"",
		conn_peer(c), (int)(req.path.n > 200 ? 200 : req.path.n), req.path.p, conn_routes(c)[0]->conf->name,
		subprotocol ? subprotocol : "-", c->ssl != NULL, c->pmd != NULL,
		log_quote(idq, sizeof idq, identity ? identity : "-", identity ? strlen(identity) : 1),
		(unsigned long long)(c->w->now_ms - c->accepted_ms),
		log_quote(uaq, sizeof uaq, ua ? ua->value.p : "", ua ? (ua->value.n > 200 ? 200 : ua->value.n) : 0));
	dispatch_open(c);
	return (size_t)n;
}

/* --- input: WebSocket --- */

static int on_message(void *ud, uint8_t opcode, bool compressed, uint8_t *data, size_t len)
{
	struct conn *c = ud;
	if (c->state != CONN_OPEN)
		return WS_READER_CONTINUE; /* closing: data is discarded (§7.1.1) */
	if (compressed) {
		/* RFC 7692 §7.2.2; max_payload applies to the inflated size, and
		 * inflation stops as soon as it is crossed (decompression bomb). */
		struct buf *z = &c->w->zin;
		z->len = 0;
		int rc = ws_deflate_inflate(c->pmd, data, len, (size_t)cf(c)->max_payload, z);
		if (rc < 0) {
			char why[120];
			uint16_t code = rc == WS_DEFLATE_E_TOOBIG ? WS_CLOSE_TOO_BIG
					: rc == WS_DEFLATE_E_DATA  ? WS_CLOSE_INVALID_DATA
								   : WS_CLOSE_INTERNAL;
			if (rc == WS_DEFLATE_E_TOOBIG)
				snprintf(why, sizeof why, "Inflated message exceeds maximum of %llu",
					 (unsigned long long)cf(c)->max_payload);
			else
				snprintf(why, sizeof why, "%s", ws_deflate_strerror(rc));
			conn_fail(c, code, why);
			return WS_READER_STOP;
		}
		if (opcode == WS_OP_TEXT && !ws_utf8_valid(z->data, z->len)) {
			conn_fail(c, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
			return WS_READER_STOP;
		}
		METRIC_ADD(c->w->m->deflate_in_wire, len);
		METRIC_ADD(c->w->m->deflate_in_raw, z->len);
		data = z->data ? z->data : (uint8_t *)"";
		len = z->len;
	}
	dispatch_message(c, opcode, data, len, c->in->rd.last_fragmented);
	/* Backpressure: stop taking input while the peer is not reading. */
	if (outq_bytes(&c->out) > cf(c)->send_queue_limit)
		return WS_READER_STOP;
	return WS_READER_CONTINUE;
}

static int on_control(void *ud, uint8_t opcode, uint8_t *data, size_t len)
{
	struct conn *c = ud;
	switch (opcode) {
	case WS_OP_PING:
		if (c->state == CONN_OPEN && queue_frame(c, true, WS_OP_PONG, data, len) < 0) {
			conn_close(c, WS_CLOSE_INTERNAL, "Out of memory");
			return WS_READER_STOP;
		}
		return outq_bytes(&c->out) > cf(c)->send_queue_limit ? WS_READER_STOP : WS_READER_CONTINUE;
	case WS_OP_PONG:
		return WS_READER_CONTINUE; /* last_rx_ms already updated */
	case WS_OP_CLOSE:
	default:
		if (c->state == CONN_OPEN) {
			/* §5.5.1: answer with a close frame echoing the status code. */
			uint16_t code = len >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
			if (!c->close_code) {
				c->close_code = code ? code : WS_CLOSE_NO_STATUS;
				conn_set_close_reason(c, data + 2, len > 2 ? len - 2 : 0);
			}
			log_msg(LOG_DEBUG, c->id, "peer closed with %u", code ? code : 1005);
			queue_close_frame(c, code, NULL);
		}
		/* Both close frames exchanged: the server closes TCP first
		 * (§7.1.1) once the queue is written. */
		set_state(c, CONN_LINGER);
		return WS_READER_STOP;
	}
}

/* A piece of a compressed message that arrives in several pieces:
 * inflate it now (RFC 7692 §7.2.2), so max_payload and UTF-8 are judged
 * as the data comes, not after the last fragment. */
static int on_piece(void *ud, uint8_t opcode, const uint8_t *data, size_t len, bool fin)
{
	struct conn *c = ud;
	if (c->state != CONN_OPEN)
		return WS_READER_CONTINUE;
	struct conn_extra *x = conn_extra(c);
	if (x && !x->zmsg) {
		x->zmsg = calloc(1, sizeof *x->zmsg);
		if (x->zmsg)
			ws_utf8_init(&x->zutf8);
	}
	if (!x || !x->zmsg) {
		conn_fail(c, WS_CLOSE_INTERNAL, "Out of memory inflating a message");
		return WS_READER_STOP;
	}
	size_t before = x->zmsg->len, max = (size_t)cf(c)->max_payload;
	int rc = ws_deflate_inflate_feed(c->pmd, data, len, max, x->zmsg);
	if (rc == 0 && fin)
		rc = ws_deflate_inflate_end(c->pmd, max, x->zmsg);
	METRIC_ADD(c->w->m->deflate_in_wire, len);
	if (rc < 0) {
		char why[120];
		if (rc == WS_DEFLATE_E_TOOBIG)
			snprintf(why, sizeof why, "Inflated message exceeds maximum of %llu",
				 (unsigned long long)cf(c)->max_payload);
		else
			snprintf(why, sizeof why, "%s", ws_deflate_strerror(rc));
		conn_fail(c, rc == WS_DEFLATE_E_TOOBIG ? WS_CLOSE_TOO_BIG
			     : rc == WS_DEFLATE_E_DATA ? WS_CLOSE_INVALID_DATA : WS_CLOSE_INTERNAL, why);
		buf_free(x->zmsg);
		free(x->zmsg);
		x->zmsg = NULL;
		return WS_READER_STOP;
	}
	if (opcode == WS_OP_TEXT &&
	    (!ws_utf8_feed(&x->zutf8, x->zmsg->data + before, x->zmsg->len - before) ||
	     (fin && !ws_utf8_complete(&x->zutf8)))) {
		conn_fail(c, WS_CLOSE_INVALID_DATA, "Invalid UTF-8 in text message");
		buf_free(x->zmsg);
		free(x->zmsg);
		x->zmsg = NULL;
		return WS_READER_STOP;
	}
	if (!fin)
		return WS_READER_CONTINUE;
	struct buf *m = x->zmsg;
	x->zmsg = NULL;
	METRIC_ADD(c->w->m->deflate_in_raw, m->len);
	dispatch_message(c, opcode, m->data ? m->data : (const uint8_t *)"", m->len, c->in->rd.last_fragmented);
	buf_free(m);
	free(m);
	return outq_bytes(&c->out) > cf(c)->send_queue_limit ? WS_READER_STOP : WS_READER_CONTINUE;
}

static const struct ws_reader_ops reader_ops = { on_message, on_control, on_piece };

/* Feeds rbuf to the HTTP parser or frame reader until it is used up, the
 * connection stops reading (backpressure, closing) or an error occurs. */
static void process_input(struct conn *c)
{
	size_t off = 0;
	if (c->state == CONN_HTTP) {
		off = handle_http(c);
		if (c->state != CONN_OPEN)
			goto out;
	}
	if (c->state == CONN_OPEN || c->state == CONN_CLOSING) {
		struct ws_err err;
		ssize_t n = ws_reader_feed(&c->in->rd, c->in->rbuf.data + off, c->in->rbuf.len - off,
					   &reader_ops, c, &err);
		if (n < 0) {
			METRIC_INC(c->w->m->protocol_errors[metrics_close_slot(err.code)]);
			log_msg(LOG_INFO, c->id, "closing %s with %u: %s", conn_peer(c), err.code, err.reason);
			/* §7.1.7 Fail the WebSocket Connection: send our close (unless
			 * one is out already), process nothing more, close TCP. */
			if (c->state == CONN_OPEN)
				queue_close_frame(c, err.code, err.reason);
			set_state(c, CONN_LINGER);
			goto out;
		}
		off += (size_t)n;
		/* A reader stopped by backpressure resumes from conn_flush. */
		if (c->state == CONN_OPEN && !c->read_paused && outq_bytes(&c->out) > cf(c)->send_queue_limit) {
			c->read_paused = true;
			worker_update_events(c->w, c);
		}
	}
out:
	if (c->state == CONN_LINGER || c->state == CONN_DRAIN)
		off = c->in->rbuf.len; /* nothing more will be processed */
	rbuf_consume(c, off);
	input_give_back(c);
}

/* TLS handshake step; on completion the connection reads its request. */
static void tls_step(struct conn *c)
{
	int r = transport_handshake(c);
	if (r == -2) {
		conn_terminate(c, "closed before the TLS handshake");
		return;
	}
	if (r < 0) {
		METRIC_INC(c->w->m->tls_failures);
		/* Lingering close: OpenSSL has written its alert; closing now
		 * with the client's last records unread would send a reset that
		 * can overtake the alert (TLS 1.3 clients send data right after
		 * their Finished). Shut down our side and drain. */
		shutdown(c->fd, SHUT_WR);
		set_state(c, CONN_DRAIN);
		worker_update_events(c->w, c);
		return;
	}
	if (r == 0)
		return;
	METRIC_INC(c->w->m->tls_handshakes);
	set_state(c, CONN_HTTP);
	/* (set_state started the HTTP timeout anew) */
	conn_on_readable(c);          /* the request may already be buffered */
}

/* PROXY protocol (v1/v2) header on a listener that expects one. It is
 * peeked, parsed and then consumed to the byte, so that whatever follows
 * (a TLS ClientHello, an HTTP request) stays in the socket for the next
 * stage. The real client address replaces the proxy's for limits, logs
 * and plugins. */
static void proxy_step(struct conn *c)
{
	uint8_t hdr[4096];
	ssize_t n = recv(c->fd, hdr, sizeof hdr, MSG_PEEK);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_terminate(c, n == 0 ? "closed before its PROXY header" : strerror(errno));
		return;
	}
	if (n < 0)
		return;
	struct edge_proxy_result pr;
	const char *why = NULL;
	ssize_t used = edge_proxy_parse(hdr, (size_t)n, &pr, &why);
	if (used == 0 && (size_t)n == sizeof hdr)
		why = "PROXY header longer than 4096 bytes", used = -1;
	if (used == 0)
		return; /* wait for the rest */
	if (used < 0) {
		log_msg(LOG_INFO, c->id, "connection from %s refused: bad PROXY protocol header: %s", conn_peer(c),
			why ? why : "malformed");
		METRIC_INC(c->w->m->rejected[REJ_BAD_REQUEST]);
		conn_terminate(c, "bad PROXY header");
		return;
	}
	ssize_t got = recv(c->fd, hdr, (size_t)used, 0);
	if (got != used) {
		conn_terminate(c, "PROXY header vanished");
		return;
	}
	if (!pr.local && (pr.src.ss_family == AF_INET || pr.src.ss_family == AF_INET6)) {
		char was[64];
		conn_peer_format(c, was, sizeof was);
		conn_set_peer(c, (const struct sockaddr *)&pr.src);
		log_msg(LOG_DEBUG, c->id, "PROXY v%d: client %s via %s", pr.version, conn_peer(c), was);
	}
	struct sockaddr_storage peer;
	conn_peer_sockaddr(c, &peer);
	const char *refused = limits_connect(cf(c), (const struct sockaddr *)&peer);
	if (refused) {
		log_msg(LOG_INFO, c->id, "connection from %s refused: %s", conn_peer(c), refused);
		METRIC_INC(c->w->m->rejected[REJ_LIMIT]);
		conn_terminate(c, refused);
		return;
	}
	c->limits_counted = true; /* for the address just set (limits_addr_set is false) */
	if (cf(c)->listen[c->listener].tls) {
		c->ssl = tls_session_new(c->fd);
		if (!c->ssl) {
			log_msg(LOG_ERROR, c->id, "cannot start a TLS session for %s: %s", conn_peer(c), tls_error_text());
			conn_terminate(c, "no TLS session");
			return;
		}
		set_state(c, CONN_TLS);
	} else {
		set_state(c, CONN_HTTP);
	}
	conn_on_readable(c);
}

void conn_on_readable(struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_PROXY) {
		proxy_step(c);
		return;
	}
	if (c->state == CONN_TLS) {
		tls_step(c);
		return;
	}
	if (c->state == CONN_DRAIN || c->state == CONN_LINGER) {
		/* Discard until EOF so the peer sees our FIN, not a reset. */
		uint8_t sink[4096];
		ssize_t r = recv(c->fd, sink, sizeof sink, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			conn_terminate(c, r == 0 ? "closed" : strerror(errno));
		return;
	}
	if (c->tls_want_read && outq_bytes(&c->out))
		conn_flush(c); /* a TLS write was waiting for this */
	/* TLS decrypts whole records: plaintext left inside OpenSSL is not
	 * seen by epoll, so read until the transport is empty (bounded). */
	for (int round = 0; round < 16 && !c->read_paused && c->state != CONN_DEAD; round++) {
		if (input_take(c) < 0) {
			conn_terminate(c, "out of memory for a read buffer");
			return;
		}
		struct buf *rb = &c->in->rbuf;
		size_t room = rb->cap - rb->len;
		if (room == 0) {
			/* Only possible in CONN_HTTP: the head outgrew max_header_size. */
			process_input(c);
			return;
		}
		ssize_t r = transport_read(c, rb->data + rb->len, room);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				input_give_back(c);
				return;
			}
			log_msg(LOG_DEBUG, c->id, "read error from %s: %s", conn_peer(c), strerror(errno));
			conn_terminate(c, strerror(errno));
			return;
		}
		if (r == 0) {
			/* EOF without a close handshake: abnormal closure (1006) — or a
			 * half-close; either way nothing more will arrive. */
			if (c->state == CONN_OPEN && ws_reader_mid_message(&c->in->rd))
				log_msg(LOG_DEBUG, c->id, "peer %s vanished mid-message", conn_peer(c));
			conn_terminate(c, "peer closed the connection");
			return;
		}
		rb->len += (size_t)r;
		c->bytes_in += (uint64_t)r;
		c->last_rx_ms = (uint32_t)c->w->now_ms;
		c->ping_outstanding = false;
		process_input(c);
		if (!transport_pending(c))
			return;
		if (c->state != CONN_HTTP && c->state != CONN_OPEN && c->state != CONN_CLOSING)
			return;
	}
	/* Still more inside OpenSSL after 16 rounds: come back next
	 * iteration through the flush list rather than starve others. */
	if (transport_pending(c))
		worker_mark_dirty(c->w, c);
}

void conn_on_writable(struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	if (c->tls_want_write) {
		c->tls_want_write = false;
		worker_update_events(c->w, c);
		if (c->state == CONN_TLS) {
			tls_step(c);
			return;
		}
		conn_on_readable(c); /* a TLS read was waiting for this */
	}
	conn_flush(c);
}

static void resume_reading(struct conn *c)
{
	c->read_paused = false;
	worker_update_events(c->w, c);
	/* Bytes already read but not yet processed come first. */
	if (c->in && c->in->rbuf.len)
		process_input(c);
	/* conn_flush then reads what OpenSSL still holds. */
}

void conn_flush(struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_TLS)
		return; /* nothing of ours goes out before the handshake is done */
	/* TLS writes at most a record-sized chunk per call, so it loops (up
	 * to about 1 MiB per round); TCP writes everything in one writev. */
	for (int round = 0; outq_bytes(&c->out) && round < 64; round++) {
		struct iovec iov[64];
		int n = outq_iov(&c->out, iov, 64);
		ssize_t w = transport_writev(c, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_terminate(c, strerror(errno));
			return;
		}
		outq_consume(&c->out, (size_t)w);
		c->bytes_out += (uint64_t)w;
		if (c->ssl || (n == 64 && outq_bytes(&c->out)))
			continue;
		break; /* TCP short write: the socket buffer is full */
	}
	bool pending = outq_bytes(&c->out) > 0;
	if (pending != c->want_write) {
		c->want_write = pending;
		worker_update_events(c->w, c);
	}
	uint64_t limit = cf(c)->send_queue_limit;
	if (!c->read_paused && outq_bytes(&c->out) > limit && c->state == CONN_OPEN) {
		c->read_paused = true;
		worker_update_events(c->w, c);
	} else if (c->read_paused && outq_bytes(&c->out) <= limit / 2) {
		resume_reading(c);
	}
	if (!pending && c->state == CONN_LINGER) {
		/* Everything written: send FIN and wait for the peer's EOF. */
		transport_shutdown(c);
		set_state(c, CONN_DRAIN);
		c->read_paused = false;
		worker_update_events(c->w, c);
	}
	/* Plaintext waiting inside OpenSSL (see conn_on_readable). */
	if (transport_pending(c) && !c->read_paused &&
	    (c->state == CONN_HTTP || c->state == CONN_OPEN || c->state == CONN_CLOSING))
		conn_on_readable(c);
}

/* The heartbeat of an open connection (RFC 6455 §5.5.2): ping it once it
 * has been quiet for ping_interval, drop it if nothing at all (pong or
 * data) arrives within pong_timeout. Reads only note the time; the timer
 * catches up when it fires, so busy connections never touch the wheel. */
static void heartbeat(struct conn *c)
{
	const struct conf *k = cf(c);
	if (c->ping_outstanding) {
		/* The pong deadline passed and no byte came in (a read clears
		 * ping_outstanding). */
		METRIC_INC(c->w->m->ping_timeouts);
		log_msg(LOG_INFO, c->id, "no pong or data from %s within %llu ms: dropping", conn_peer(c),
			(unsigned long long)k->pong_timeout_ms);
		conn_terminate(c, "pong timeout");
		return;
	}
	if (!k->ping_interval_ms)
		return;
	/* 32-bit clocks: the difference is right for any quiet time under
	 * 49 days, and this runs at least every ping_interval (at most a day). */
	uint32_t quiet = (uint32_t)c->w->now_ms - c->last_rx_ms;
	if (quiet < k->ping_interval_ms) {
		timer_in(c, k->ping_interval_ms - quiet);
		return;
	}
	/* Only idle connections are pinged: any traffic proves life. */
	if (queue_frame(c, true, WS_OP_PING, NULL, 0) == 0) {
		c->ping_outstanding = true;
		timer_in(c, k->pong_timeout_ms);
		/* Written now, not at the end of the loop iteration: connections
		 * opened together are pinged together, and thousands of queued
		 * pings would each hold a blob and a ring until the flush —
		 * memory the heap keeps afterwards. */
		conn_flush(c);
	} else {
		timer_in(c, PING_RETRY_MS);
	}
}

void conn_on_timer(struct conn *c)
{
	const struct conf *k = cf(c);
	switch (c->state) {
	case CONN_PROXY:
	case CONN_TLS:
		log_msg(LOG_INFO, c->id, "TLS handshake timeout: %s did not finish within %llu ms", conn_peer(c),
			(unsigned long long)k->handshake_timeout_ms);
		METRIC_INC(c->w->m->tls_failures);
		conn_terminate(c, "TLS handshake timeout");
		break;
	case CONN_HTTP:
		log_msg(LOG_INFO, c->id, "handshake timeout: %s sent no complete request within %llu ms", conn_peer(c),
			(unsigned long long)k->handshake_timeout_ms);
		METRIC_INC(c->w->m->rejected[REJ_TIMEOUT]);
		http_answer(c, 408, NULL, "Request timeout", false);
		break;
	case CONN_OPEN:
		heartbeat(c);
		break;
	case CONN_CLOSING:
	case CONN_LINGER:
	case CONN_DRAIN:
		conn_terminate(c, "close timeout");
		break;
	case CONN_DEAD:
		break;
	}
}

/* --- plugin-facing sends --- */

/* Encodes a message as frames (fragment_size, rsv on the first) into a
 * new blob. */
static struct blob *encode_frames(size_t frag, uint8_t opcode, uint8_t rsv, const void *data, size_t len)
{
	size_t nframes = frag && len > frag ? (len + frag - 1) / frag : 1;
	struct blob *b = blob_new(len + nframes * WS_MAX_HEADER);
	if (!b)
		return NULL;
	const uint8_t *p = data;
	uint8_t op = opcode;
	do {
		size_t take = frag && len > frag ? frag : len;
		b->len += ws_frame_encode_header(b->data + b->len, take == len, rsv, op, take, NULL);
		if (take)
			memcpy(b->data + b->len, p, take);
		b->len += take;
		p += take;
		len -= take;
		op = WS_OP_CONT;
		rsv = 0;
	} while (len);
	return b;
}

struct smsg *smsg_new(const struct conf *conf, uint8_t opcode, const void *data, size_t len)
{
	struct smsg *m = malloc(sizeof *m + len);
	if (!m)
		return NULL;
	m->frag = (size_t)conf->fragment_size;
	m->plain = encode_frames(m->frag, opcode, 0, data, len);
	if (!m->plain) {
		free(m);
		return NULL;
	}
	atomic_init(&m->refs, 1);
	m->opcode = opcode;
	m->len = len;
	if (len)
		memcpy(m->payload, data, len);
	pthread_mutex_init(&m->lock, NULL);
	memset(m->deflated, 0, sizeof m->deflated);
	return m;
}

void smsg_ref(struct smsg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void smsg_unref(struct smsg *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	blob_unref(m->plain);
	for (int i = 0; i < 16; i++)
		if (m->deflated[i])
			blob_unref(m->deflated[i]);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The message compressed once for every recipient that uses `bits`
 * without server context takeover (RFC 7692 §7.1.1.1): any of them can
 * inflate it, so it is shared like the plain frames. */
static struct blob *smsg_deflated(struct smsg *m, const struct ws_deflate *pmd, unsigned bits)
{
	pthread_mutex_lock(&m->lock);
	struct blob *b = m->deflated[bits & 15];
	if (!b) {
		struct ws_deflate_config cfg;
		ws_deflate_config_default(&cfg);
		cfg.level = pmd->level;
		cfg.mem_level = pmd->mem_level;
		struct buf z = { 0 };
		if (ws_deflate_compress_oneshot(&cfg, bits, m->payload, m->len, &z) == 0)
			b = m->deflated[bits & 15] = encode_frames(m->frag, m->opcode, WS_RSV1, z.data, z.len);
		buf_free(&z);
	}
	if (b)
		blob_ref(b);
	pthread_mutex_unlock(&m->lock);
	return b;
}

/* The slow-consumer policy for a send that is not a reply to the
 * connection's own message: over send_queue_limit, drop the message
 * (MBGW_E_AGAIN) or the client (close 1008), as the route says. A reply
 * from the connection's own callback is always queued: the reader pauses
 * instead (see on_message), so request/response traffic loses nothing. */
static int over_limit(struct conn *c)
{
	if (c->in_callback || outq_bytes(&c->out) <= cf(c)->send_queue_limit)
		return MBGW_OK;
	METRIC_INC(c->w->m->queue_overflows);
	bool drop_client = c->nroutes && conn_routes(c)[0]->conf->drop_client;
	if (drop_client) {
		log_msg(LOG_INFO, c->id, "slow consumer %s: %zu bytes queued, closing (slow_consumer = drop_client)",
			conn_peer(c), outq_bytes(&c->out));
		conn_close(c, WS_CLOSE_POLICY, "Slow consumer");
		return MBGW_E_CLOSING;
	}
	return MBGW_E_AGAIN;
}

int conn_plugin_send(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
	if (c->state != CONN_OPEN)
		return c->state == CONN_DEAD ? MBGW_E_NOCONN : MBGW_E_CLOSING;
	int rc = over_limit(c);
	if (rc != MBGW_OK)
		return rc;
	return conn_send_message(c, opcode, data, len) < 0 ? MBGW_E_NOMEM : MBGW_OK;
}

int conn_send_shared(struct conn *c, struct smsg *m)
{
	if (c->state != CONN_OPEN)
		return c->state == CONN_DEAD ? MBGW_E_NOCONN : MBGW_E_CLOSING;
	int rc = over_limit(c);
	if (rc != MBGW_OK)
		return rc;
	struct blob *frames = m->plain;
	if (c->pmd && ws_deflate_wanted(c->pmd, m->len)) {
		unsigned bits = ws_deflate_shared_bits(c->pmd);
		if (!bits) /* our own compression context: compress for this one */
			return conn_send_message(c, m->opcode, m->payload, m->len) < 0 ? MBGW_E_NOMEM : MBGW_OK;
		frames = smsg_deflated(m, c->pmd, bits);
		if (!frames)
			return MBGW_E_NOMEM;
		count_out(c, m->opcode, m->len);
		rc = outq_append_shared(&c->out, frames, 0, frames->len);
		blob_unref(frames);
	} else {
		count_out(c, m->opcode, m->len);
		rc = outq_append_shared(&c->out, frames, 0, frames->len);
	}
	if (rc < 0)
		return MBGW_E_NOMEM;
	worker_mark_dirty(c->w, c);
	return MBGW_OK;
}

static int copy_attr(const char *v, size_t n, char *out, size_t cap)
{
	if (n + 1 > cap)
		return MBGW_E_RANGE;
	memcpy(out, v, n);
	out[n] = 0;
	return (int)n;
}

int conn_attr(struct conn *c, const char *name, char *out, size_t cap)
{
	struct route *r0 = c->nroutes ? conn_routes(c)[0] : NULL;
	const struct conn_extra *x = c->x;
	const char *query = x ? x->query : NULL, *identity = x ? x->identity : NULL;
	const char *auth_method = x ? x->auth_method : NULL, *auth_claims = x ? x->auth_claims : NULL;
	const char *head = x ? x->head : NULL;
	if (strcmp(name, "path") == 0)
		return r0 ? copy_attr(r0->conf->path, strlen(r0->conf->path), out, cap) : MBGW_E_NOTFOUND;
	if (strcmp(name, "query") == 0)
		return copy_attr(query ? query : "", query ? strlen(query) : 0, out, cap);
	if (strcmp(name, "subprotocol") == 0)
		return c->subprotocol ? copy_attr(c->subprotocol, strlen(c->subprotocol), out, cap)
				      : MBGW_E_NOTFOUND;
	if (strcmp(name, "remote_addr") == 0) {
		char addr[64];
		conn_peer_format(c, addr, sizeof addr);
		return copy_attr(addr, strlen(addr), out, cap);
	}
	if (strcmp(name, "identity") == 0)
		return identity ? copy_attr(identity, strlen(identity), out, cap) : MBGW_E_NOTFOUND;
	if (strcmp(name, "auth_method") == 0)
		return auth_method ? copy_attr(auth_method, strlen(auth_method), out, cap) : MBGW_E_NOTFOUND;
	if (strcmp(name, "auth_claims") == 0)
		return auth_claims ? copy_attr(auth_claims, strlen(auth_claims), out, cap) : MBGW_E_NOTFOUND;
	if (strcmp(name, "scheme") == 0)
		return copy_attr(c->wss ? "wss" : "ws", c->wss ? 3 : 2, out, cap);
	if (strcmp(name, "tls_client_subject") == 0) {
		char subj[1024];
		int n = c->ssl ? tls_peer_subject(c->ssl, subj, sizeof subj) : -1;
		return n < 0 ? MBGW_E_NOTFOUND : copy_attr(subj, (size_t)n, out, cap);
	}
	if (strcmp(name, "route") == 0 && r0)
		return copy_attr(r0->conf->name, strlen(r0->conf->name), out, cap);
	if (strncmp(name, "header:", 7) == 0 && head) {
		/* Only the headers the route keeps (keep_headers) are here. */
		const char *want = name + 7;
		size_t wl = strlen(want);
		for (const char *l = head; *l;) {
			const char *nl = strchr(l, '\n');
			const char *colon = memchr(l, ':', (size_t)(nl - l));
			if (colon && (size_t)(colon - l) == wl && strncasecmp(l, want, wl) == 0)
				return copy_attr(colon + 2, (size_t)(nl - colon - 2), out, cap);
			l = nl + 1;
		}
	}
	return MBGW_E_NOTFOUND;
}
