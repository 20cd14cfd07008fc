/* dispatch — connects a connection to its routes' plugin instances.
 *
 * Stages "decode" and "route" of the message path, for one connection:
 *   upgrade: route_table_match (path, subprotocol) → verify callbacks
 *   open:    open callbacks of every route of the connection
 *   message: raw route → plugin as is; header+json route → msg_decode →
 *            route_pick by type → plugin; problems → an error reply
 *   close:   close callbacks once, then groups left and table released
 * Runs on the connection's worker thread.
 */
#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msg/msg_decode.h"
#include "edge/edge_auth.h"
#include "plugin/plugin_host.h"
#include "server/limits.h"
#include "util/util_log.h"
#include "ws/ws_handshake.h"

static bool offered(void *ctx, const char *proto)
{
	return ws_handshake_offers(ctx, proto);
}

/* struct mbgw_upgrade's header lookup over the parsed request. */
struct upgrade_ctx {
	struct mbgw_upgrade up;
	const struct http_request *req;
};

static const char *upgrade_header(const struct mbgw_upgrade *up, const char *name, size_t *len)
{
	const struct upgrade_ctx *u = (const struct upgrade_ctx *)up;
	const struct http_header *h = http_find_header(u->req, name);
	if (!h)
		return NULL;
	if (len)
		*len = h->value.n;
	return h->value.p;
}

/* Copies the request headers that the connection's routes keep for their
 * plugins (keep_headers) as "Name: value\n" lines; none by default, so an
 * idle connection carries no copy of its request. */
static int keep_headers(struct conn *c, const struct http_request *req)
{
	struct buf b = { 0 };
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = conn_routes(c)[i]->conf;
		for (size_t k = 0; k < r->nkeep_headers; k++) {
			const struct http_header *h = http_find_header(req, r->keep_headers[k]);
			if (!h)
				continue;
			if (buf_append(&b, h->name.p, h->name.n) < 0 || buf_append(&b, ": ", 2) < 0 ||
			    buf_append(&b, h->value.p, h->value.n) < 0 || buf_append(&b, "\n", 1) < 0) {
				buf_free(&b);
				return -1;
			}
		}
	}
	if (!b.len)
		return 0;
	struct conn_extra *x = conn_extra(c);
	if (!x || buf_append(&b, "", 1) < 0) {
		buf_free(&b);
		return -1;
	}
	x->head = (char *)b.data;
	return 0;
}

/* True if origin matches one of the comma-separated patterns: exact
 * ("https://example.com"), a wildcard host (https, then "://", then a
 * star and ".example.com": subdomains, not example.com itself), or a
 * lone star. Compared without
 * regard to case (RFC 6454 serialises scheme and host in lower case). */
static bool origin_allowed(const char *patterns, struct http_str origin)
{
	const char *p = patterns;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && te[-1] == ' ')
			te--;
		size_t pl = (size_t)(te - p);
		if (pl == 1 && *p == '*')
			return true;
		const char *star = memchr(p, '*', pl);
		if (!star) {
			if (pl == origin.n && strncasecmp(p, origin.p, pl) == 0)
				return true;
		} else if (star + 1 < te && star[1] == '.') {
			/* Wildcard: same text before the star, a non-empty label
			 * where the star is (no '/' or ':'), same suffix after. */
			size_t pre = (size_t)(star - p), suf = (size_t)(te - star - 1);
			if (origin.n > pre + suf && strncasecmp(origin.p, p, pre) == 0 &&
			    strncasecmp(origin.p + origin.n - suf, star + 1, suf) == 0) {
				bool ok = true;
				for (size_t k = pre; k < origin.n - suf; k++)
					ok &= origin.p[k] != '/' && origin.p[k] != ':';
				if (ok)
					return true;
			}
		}
		p = e;
	}
	return false;
}

int dispatch_upgrade(struct conn *c, const struct http_request *req, const char **subprotocol,
		     const char **reason, char *extra, size_t extra_cap)
{
	extra[0] = 0;
	const char *refused = NULL;
	struct route_table *t = NULL;
	struct route *found[ROUTE_MAX_PER_CONN];
	size_t n = route_table_match(req->path.p, req->path.n, offered, (void *)req, found, subprotocol,
				     &refused, &t);
	if (n == 0) {
		*reason = refused ? refused : "No WebSocket route at this path";
		return refused ? 400 : 404;
	}
	/* One route sits in the connection; more go to its conn_extra. */
	if (n > 1 && !conn_extra(c)) {
		route_release(found, n, t);
		*reason = "Out of memory";
		return 503;
	}
	memcpy(n > 1 ? c->x->routes : &c->route, found, n * sizeof found[0]);
	c->nroutes = (uint8_t)n;
	c->rt = t;
	if (req->query.n) {
		struct conn_extra *x = conn_extra(c);
		if (!x || !(x->query = strndup(req->query.p, req->query.n))) {
			*reason = "Out of memory";
			return 503;
		}
	}
	if (keep_headers(c, req) < 0) {
		*reason = "Out of memory";
		return 503;
	}

	/* Origin allow-list (browsers send Origin; other clients may not). */
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = conn_routes(c)[i]->conf;
		const struct http_header *o = http_find_header(req, "Origin");
		if (!o ? !r->allow_missing_origin : (r->origins && !origin_allowed(r->origins, o->value))) {
			static __thread char why[200];
			snprintf(why, sizeof why, "Origin %.*s not allowed on route %s",
				 o ? (int)(o->value.n > 100 ? 100 : o->value.n) : 6, o ? o->value.p : "(none)", r->name);
			*reason = why;
			c->reject_as = REJ_ORIGIN + 1;
			return 403;
		}
	}
	struct sockaddr_storage peer;
	conn_peer_sockaddr(c, &peer);
	if (!limits_handshake(c->w->srv->conf, (const struct sockaddr *)&peer, c->w->now_ms)) {
		*reason = "Too many handshakes from this address (handshake_rate_per_ip)";
		c->reject_as = REJ_LIMIT + 1;
		return 429;
	}

	/* Authentication: every route of the connection that asks for it
	 * must accept. The reason goes to the log, never to the client. */
	for (size_t i = 0; i < c->nroutes; i++) {
		if (!conn_routes(c)[i]->auth)
			continue;
		struct edge_auth_result ar;
		int st = edge_auth_check(conn_routes(c)[i]->auth, req, time(NULL), &ar);
		if (st != 0) {
			log_msg(LOG_INFO, c->id, "authentication failed for %s on route %s: %s", conn_peer(c),
				conn_routes(c)[i]->conf->name, ar.reason);
			free(ar.claims_json);
			if (ar.www_authenticate[0])
				snprintf(extra, extra_cap, "WWW-Authenticate: %s\r\n", ar.www_authenticate);
			c->reject_as = REJ_AUTH + 1;
			*reason = st == 400 ? "Malformed credentials" : st == 401 ? "Authentication required"
								       : "Authentication failed";
			return st == 400 || st == 401 ? st : 500;
		}
		struct conn_extra *x = conn_extra(c);
		if (!x) {
			free(ar.claims_json);
			*reason = "Out of memory";
			return 503;
		}
		if (!x->identity) {
			x->identity = strdup(ar.identity);
			x->auth_method = ar.method;
			x->auth_claims = ar.claims_json;
		} else {
			free(ar.claims_json);
		}
	}

	struct upgrade_ctx u = { .req = req };
	const struct conn_extra *x = c->x;
	char remote[64];
	conn_peer_format(c, remote, sizeof remote);
	u.up.size = sizeof u.up;
	u.up.path = conn_routes(c)[0]->conf->path; /* routes match the path exactly */
	u.up.query = x && x->query ? x->query : "";
	u.up.remote_addr = remote;
	u.up.subprotocol = *subprotocol;
	u.up.header = upgrade_header;
	u.up.identity = x ? x->identity : NULL;
	u.up.auth_method = x ? x->auth_method : NULL;
	u.up.auth_claims = x ? x->auth_claims : NULL;
	for (size_t i = 0; i < c->nroutes; i++) {
		struct mbgw_instance *in = conn_routes(c)[i]->inst;
		if (!in->desc->verify)
			continue;
		struct mbgw_verdict v = { .size = sizeof v, .status = 403, .reason = NULL };
		plugin_host_enter(0, (unsigned)i);
		int rc = in->desc->verify(in->state, &u.up, &v);
		plugin_host_leave();
		if (rc != MBGW_OK) {
			static __thread char why[160];
			snprintf(why, sizeof why, "Refused by route %s: %s", conn_routes(c)[i]->conf->name,
				 v.reason ? v.reason : "verification failed");
			*reason = why;
			c->reject_as = REJ_PLUGIN + 1;
			return v.status >= 400 && v.status <= 599 ? (int)v.status : 403;
		}
	}
	return 101;
}

static void enter(struct conn *c, unsigned i)
{
	c->in_callback = true;
	plugin_host_enter(c->id, i);
}

static void leave(struct conn *c)
{
	plugin_host_leave();
	c->in_callback = false;
}

/* Calls the plugin's message callback, timing 1 call in 16 for the
 * callback-latency histogram (the clock costs more than the counter). */
static int timed_message(struct conn *c, struct mbgw_instance *in, const struct mbgw_message *m)
{
	if (!c->rslot || (c->w->cb_sample++ & 15))
		return in->desc->message(in->state, c->id, m);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = in->desc->message(in->state, c->id, m);
	clock_gettime(CLOCK_MONOTONIC, &b);
	metrics_observe_callback(c->rslot, (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ULL +
						   (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec);
	return rc;
}

void dispatch_open(struct conn *c)
{
	c->opened = true;
	struct route_metrics *rm = metrics_route(conn_routes(c)[0]->conf->name);
	if (rm) {
		c->rslot = &rm->slots[c->w->index];
		METRIC_INC(c->rslot->conns_total);
		METRIC_INC(c->rslot->conns_open);
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		struct mbgw_instance *in = conn_routes(c)[i]->inst;
		if (!in->desc->open)
			continue;
		enter(c, (unsigned)i);
		in->desc->open(in->state, c->id);
		leave(c);
	}
}

static void send_error(struct conn *c, const char *id, size_t id_len, const char *code, const char *message)
{
	char out[1024];
	size_t n = msg_format_error(out, sizeof out, id, id_len, code, message);
	if (n)
		conn_send_message(c, WS_OP_TEXT, (const uint8_t *)out, n);
	log_msg(LOG_DEBUG, c->id, "error reply %s: %s", code, message);
}

/* Reload policy "move": a stateless route whose table has been replaced
 * follows the current table at the next message. */
static void maybe_move(struct conn *c, size_t i)
{
	struct route *r = conn_routes(c)[i];
	if (!r->conf->reload_move || !r->inst->stateless)
		return;
	/* One lock-free look per message; the table lock only once per
	 * reload and connection. */
	uint64_t gen = route_table_generation();
	if (c->rt->generation == gen || (c->x && c->x->rebind_gen == gen))
		return;
	struct conn_extra *x = conn_extra(c);
	if (!x)
		return; /* stays on its table: allowed, only less fresh */
	x->rebind_gen = gen;
	route_table_rebind(conn_routes(c), c->nroutes, &c->rt);
}

/* message_rate: a token bucket per connection. Over it, the client gets
 * an error reply; once it is at twice the burst, it is closed with 1008
 * (docs/security.md). */
static bool rate_ok(struct conn *c)
{
	const struct conf *k = c->w->srv->conf;
	if (!k->message_rate)
		return true;
	struct conn_extra *x = conn_extra(c);
	if (!x) {
		conn_close(c, WS_CLOSE_INTERNAL, "Out of memory");
		return false;
	}
	uint64_t now = c->w->now_ms;
	double burst = (double)k->message_burst;
	if (!x->msg_tokens_ms)
		x->msg_tokens = burst;
	else
		x->msg_tokens += (double)(now - x->msg_tokens_ms) * (double)k->message_rate / 1000.0;
	if (x->msg_tokens > burst)
		x->msg_tokens = burst;
	x->msg_tokens_ms = now;
	x->msg_tokens -= 1.0;
	if (x->msg_tokens >= 0)
		return true;
	if (x->msg_tokens < -burst) {
		log_msg(LOG_INFO, c->id, "closing %s with 1008: message rate over %llu/s", conn_peer(c),
			(unsigned long long)k->message_rate);
		conn_close(c, WS_CLOSE_POLICY, "Message rate exceeded");
	} else {
		send_error(c, NULL, 0, "rate_limited", "Too many messages: slow down");
	}
	return false;
}

void dispatch_message(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len, bool fragmented)
{
	if (c->nroutes == 0)
		return;
	if (c->rslot) {
		int t = opcode == WS_OP_BINARY;
		METRIC_INC(c->rslot->msgs_in[t]);
		METRIC_ADD(c->rslot->bytes_in[t], len);
		metrics_observe_size(c->rslot, len);
		if (fragmented)
			METRIC_INC(c->rslot->fragmented_in);
	}
	if (!rate_ok(c))
		return;
	maybe_move(c, 0);
	struct mbgw_message m = { .size = sizeof m, .opcode = opcode };
	/* Raw: the (single) route gets the message exactly as received. */
	if (conn_routes(c)[0]->conf->format == CONF_FORMAT_RAW) {
		struct mbgw_instance *in = conn_routes(c)[0]->inst;
		if (!in->desc->message)
			return;
		m.data = data;
		m.data_len = len;
		enter(c, 0);
		int rc = timed_message(c, in, &m);
		leave(c);
		if (rc != MBGW_OK)
			send_error(c, NULL, 0, MSG_ERR_PLUGIN_ERROR, "The handler could not process the message");
		return;
	}

	struct msg_decoded d;
	struct msg_error err;
	size_t max_header = (size_t)c->w->srv->conf->max_message_header;
	if (msg_decode(data, len, opcode == WS_OP_TEXT, max_header, &d, &err) < 0) {
		send_error(c, d.id, d.id_len, err.code, err.message);
		msg_decoded_free(&d);
		return;
	}
	int ri = route_pick(conn_routes(c), c->nroutes, d.type, d.type_len);
	if (ri < 0) {
		char why[200];
		snprintf(why, sizeof why, "No handler for message type '%.*s' on this connection",
			 (int)(d.type_len > 100 ? 100 : d.type_len), d.type);
		send_error(c, d.id, d.id_len, MSG_ERR_NO_ROUTE, why);
		msg_decoded_free(&d);
		return;
	}
	struct mbgw_instance *in = conn_routes(c)[ri]->inst;
	if (!in->desc->message) {
		send_error(c, d.id, d.id_len, MSG_ERR_UNSUPPORTED_PAYLOAD, "This route accepts no messages");
		msg_decoded_free(&d);
		return;
	}
	m.type = d.type;
	m.type_len = d.type_len;
	m.header = d.header;
	m.header_len = d.header_len;
	m.attrs = d.attrs;
	m.nattrs = d.nattrs;
	m.id = d.id;
	m.id_len = d.id_len;
	m.data = d.payload;
	m.data_len = d.payload_len;
	m.json = d.json;
	enter(c, (unsigned)ri);
	int rc = timed_message(c, in, &m);
	leave(c);
	if (rc != MBGW_OK)
		send_error(c, d.id, d.id_len, MSG_ERR_PLUGIN_ERROR, "The handler refused the message");
	msg_decoded_free(&d);
}

void dispatch_close(struct conn *c)
{
	if (c->opened) {
		c->opened = false;
		uint32_t code = c->close_code ? c->close_code : WS_CLOSE_ABNORMAL;
		const char *reason = c->x && c->x->close_reason ? c->x->close_reason : "";
		size_t reason_len = c->x && c->x->close_reason ? c->x->close_reason_len : 0;
		METRIC_INC(c->w->m->close_codes[metrics_close_slot(code)]);
		/* Access line for the end of the connection. */
		char rq[600];
		if (c->w->srv->conf->access_log)
			log_msg(LOG_INFO, c->id, "close remote=%s route=%s code=%u reason=\"%s\" bytes_in=%llu "
			"bytes_out=%llu duration_ms=%llu", conn_peer(c), conn_routes(c)[0]->conf->name, code,
			log_quote(rq, sizeof rq, reason, reason_len),
			(unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
			(unsigned long long)(c->w->now_ms - c->accepted_ms));
		if (c->rslot)
			METRIC_ADD(c->rslot->conns_open, (uint64_t)-1);
		for (size_t i = 0; i < c->nroutes; i++) {
			struct mbgw_instance *in = conn_routes(c)[i]->inst;
			if (!in->desc->close)
				continue;
			enter(c, (unsigned)i);
			in->desc->close(in->state, c->id, code, reason, reason_len);
			leave(c);
		}
	}
	group_leave_all(c->w, c);
	if (c->rt)
		route_release(conn_routes(c), c->nroutes, c->rt);
	c->nroutes = 0;
	c->rt = NULL;
}

bool dispatch_path_exists(const char *path, size_t len)
{
	struct route_table *t = route_table_acquire();
	if (!t)
		return false;
	bool found = false;
	for (size_t i = 0; i < t->nroutes && !found; i++) {
		const char *p = t->routes[i].conf->path;
		found = strlen(p) == len && memcmp(p, path, len) == 0;
	}
	route_table_unref(t);
	return found;
}
