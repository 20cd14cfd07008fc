/* endpoints — the plain HTTP side of the listener: /healthz (alive),
 * /readyz (listening with routes loaded), /metrics (Prometheus text
 * format), with CORS for browsers' dashboards and a 405 for methods other
 * than GET, HEAD and OPTIONS. A listener flagged `metrics` serves only
 * these; when one exists, /metrics is served only there.
 * Worker thread of the requesting connection.
 */
#include "server/server.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_response.h"
#include "route/route_table.h"
#include "ws/ws_deflate.h"

static bool any_metrics_listener(const struct conf *k)
{
	for (size_t i = 0; i < k->nlisten; i++)
		if (k->listen[i].metrics)
			return true;
	return false;
}

/* CORS (Fetch standard): echo an allowed Origin and vary on it. */
static void cors_headers(const struct conf *k, const struct http_request *req, char *out, size_t cap)
{
	out[0] = 0;
	if (!k->cors_origins)
		return;
	const struct http_header *o = http_find_header(req, "Origin");
	if (!o || o->value.n == 0 || o->value.n > 200) {
		snprintf(out, cap, "Vary: Origin\r\n");
		return;
	}
	bool ok = false;
	const char *p = k->cors_origins;
	while (*p && !ok) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *te = e;
		while (te > p && te[-1] == ' ')
			te--;
		size_t n = (size_t)(te - p);
		ok = (n == 1 && *p == '*') || (n == o->value.n && strncasecmp(p, o->value.p, n) == 0);
		p = e;
	}
	/* Vary on Origin whatever the answer, so a cache never serves one
	 * origin's answer to another. */
	if (ok)
		snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)o->value.n,
			 o->value.p);
	else
		snprintf(out, cap, "Vary: Origin\r\n");
}

bool endpoint_handle(struct conn *c, const struct http_request *req)
{
	const struct conf *k = c->w->srv->conf;
	bool healthz = http_str_eq(req->path, "/healthz"), readyz = http_str_eq(req->path, "/readyz");
	bool metrics = http_str_eq(req->path, "/metrics");
	if (!healthz && !readyz && !metrics)
		return false;
	/* A route may claim one of these paths; then it is a WebSocket path. */
	if (!k->listen[c->listener].metrics && dispatch_path_exists(req->path.p, req->path.n))
		return false;
	if (metrics && any_metrics_listener(k) && !k->listen[c->listener].metrics)
		return false; /* served on the metrics listener only: 404 here */

	char extra[512];
	cors_headers(k, req, extra, sizeof extra);
	bool head = http_str_eq(req->method, "HEAD");
	if (http_str_eq(req->method, "OPTIONS")) {
		/* Preflight. */
		char pre[700];
		bool allowed = strstr(extra, "Access-Control-Allow-Origin") != NULL;
		snprintf(pre, sizeof pre, "%sAllow: GET, HEAD, OPTIONS\r\n%s", extra,
			 allowed ? "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n"
				   "Access-Control-Max-Age: 600\r\n" : "");
		conn_http_answer(c, 204, "text/plain; charset=utf-8", pre, "", 0, true);
		return true;
	}
	if (!http_str_eq(req->method, "GET") && !head) {
		char allow[600];
		snprintf(allow, sizeof allow, "%sAllow: GET, HEAD, OPTIONS\r\n", extra);
		conn_http_reject(c, 405, "Only GET, HEAD and OPTIONS are allowed here", req, allow);
		return true;
	}
	struct route_table *t = route_table_acquire();
	bool ready = t && !atomic_load(&c->w->srv->stop);
	route_table_unref(t);
	if (healthz) {
		conn_http_answer(c, 200, "text/plain; charset=utf-8", extra, "ok\n", 3, head);
	} else if (readyz) {
		if (ready)
			conn_http_answer(c, 200, "text/plain; charset=utf-8", extra, "ready\n", 6, head);
		else
			conn_http_answer(c, 503, "text/plain; charset=utf-8", extra, "not ready\n", 10, head);
	} else {
		struct buf body = { 0 };
		struct metrics_gauges g = {
			.connections_open = atomic_load(&c->w->srv->stats.connections_open),
			.deflate_memory = ws_deflate_memory_total(),
			.ready = ready,
		};
		metrics_render(&body, &g);
		conn_http_answer(c, 200, "text/plain; version=0.0.4; charset=utf-8", extra, body.data, body.len,
				 head);
		buf_free(&body);
	}
	return true;
}
