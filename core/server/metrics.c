/* metrics — see metrics.h. */
#include "server/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/plugin_host.h"

static unsigned g_nworkers;
static struct worker_metrics *g_workers;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_metrics *g_routes;
static atomic_ullong g_reloads, g_reload_failures;

int metrics_init(unsigned nworkers)
{
	g_nworkers = nworkers;
	g_workers = aligned_alloc(64, sizeof *g_workers * nworkers);
	if (!g_workers)
		return -1;
	memset(g_workers, 0, sizeof *g_workers * nworkers);
	return 0;
}

void metrics_cleanup(void)
{
	pthread_mutex_lock(&g_lock);
	while (g_routes) {
		struct route_metrics *r = g_routes;
		g_routes = r->next;
		free(r->name);
		free(r->slots);
		free(r);
	}
	pthread_mutex_unlock(&g_lock);
	free(g_workers);
	g_workers = NULL;
}

struct worker_metrics *metrics_worker(unsigned index)
{
	return &g_workers[index];
}

struct route_metrics *metrics_route(const char *name)
{
	pthread_mutex_lock(&g_lock);
	struct route_metrics *r;
	for (r = g_routes; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			break;
	if (!r && g_nworkers) {
		r = calloc(1, sizeof *r);
		if (r) {
			r->name = strdup(name);
			r->slots = aligned_alloc(64, sizeof *r->slots * g_nworkers);
			if (!r->name || !r->slots) {
				free(r->name);
				free(r->slots);
				free(r);
				r = NULL;
			} else {
				memset(r->slots, 0, sizeof *r->slots * g_nworkers);
				r->next = g_routes;
				g_routes = r;
			}
		}
	}
	pthread_mutex_unlock(&g_lock);
	return r;
}

unsigned metrics_close_slot(unsigned code)
{
	if (code >= 1000 && code <= 1015)
		return code - 1000;
	if (code >= 3000 && code <= 3999)
		return 16;
	if (code >= 4000 && code <= 4999)
		return 17;
	return 18;
}

static unsigned bucket(uint64_t v, unsigned shift0, unsigned step)
{
	/* bucket i holds values <= 2^(shift0 + step*i) */
	for (unsigned i = 0; i < METRIC_HIST_BUCKETS - 1; i++)
		if (v <= (1ULL << (shift0 + step * i)))
			return i;
	return METRIC_HIST_BUCKETS - 1;
}

void metrics_observe_size(struct route_slot *s, uint64_t bytes)
{
	METRIC_INC(s->size_hist[bucket(bytes, 4, 2)]);
	METRIC_ADD(s->size_sum, bytes);
}

void metrics_observe_callback(struct route_slot *s, uint64_t ns)
{
	METRIC_INC(s->cb_hist[bucket(ns, 10, 1)]);
	METRIC_ADD(s->cb_ns_sum, ns);
}

void metrics_reload(bool ok)
{
	atomic_fetch_add(ok ? &g_reloads : &g_reload_failures, 1);
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static const char *const reject_names[REJ__N] = {
	"bad_request", "not_found", "method_not_allowed", "upgrade_required", "too_large",
	"timeout", "tls", "origin", "auth", "limit", "plugin", "other",
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define SUM_W(field) ({ uint64_t s_ = 0; for (unsigned w_ = 0; w_ < g_nworkers; w_++) s_ += LOAD(g_workers[w_].field); s_; })
#define SUM_R(r, field) ({ uint64_t s_ = 0; for (unsigned w_ = 0; w_ < g_nworkers; w_++) s_ += (uint64_t)LOAD((r)->slots[w_].field); s_; })

static void close_label(unsigned slot, char *out, size_t cap)
{
	if (slot < 16)
		snprintf(out, cap, "%u", 1000 + slot);
	else
		snprintf(out, cap, "%s", slot == 16 ? "3xxx" : slot == 17 ? "4xxx" : "other");
}

static void hist(struct buf *b, const char *name, const char *route, struct route_metrics *r, bool size)
{
	uint64_t cum = 0;
	for (unsigned i = 0; i < METRIC_HIST_BUCKETS; i++) {
		cum += size ? SUM_R(r, size_hist[i]) : SUM_R(r, cb_hist[i]);
		if (i == METRIC_HIST_BUCKETS - 1)
			put(b, "%s_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, route, cum);
		else if (size)
			put(b, "%s_bucket{route=\"%s\",le=\"%llu\"} %" PRIu64 "\n", name, route,
			    1ULL << (4 + 2 * i), cum);
		else
			put(b, "%s_bucket{route=\"%s\",le=\"%.9f\"} %" PRIu64 "\n", name, route,
			    (double)(1ULL << (10 + i)) / 1e9, cum);
	}
	if (size)
		put(b, "%s_sum{route=\"%s\"} %" PRIu64 "\n%s_count{route=\"%s\"} %" PRIu64 "\n", name, route,
		    SUM_R(r, size_sum), name, route, cum);
	else
		put(b, "%s_sum{route=\"%s\"} %.9f\n%s_count{route=\"%s\"} %" PRIu64 "\n", name, route,
		    (double)SUM_R(r, cb_ns_sum) / 1e9, name, route, cum);
}

int metrics_render(struct buf *b, const struct metrics_gauges *g)
{
	static const char *const types[2] = { "text", "binary" };
	head(b, "mbgw_up", "gauge", "1 when the server is ready (listening, routes loaded).");
	put(b, "mbgw_up %d\n", g->ready ? 1 : 0);
	head(b, "mbgw_connections_accepted_total", "counter", "TCP connections accepted.");
	put(b, "mbgw_connections_accepted_total %" PRIu64 "\n", SUM_W(accepted));
	head(b, "mbgw_connections_open", "gauge", "Open connections (any state).");
	put(b, "mbgw_connections_open %" PRIu64 "\n", g->connections_open);
	head(b, "mbgw_handshakes_rejected_total", "counter", "Upgrade requests refused, by reason.");
	for (unsigned i = 0; i < REJ__N; i++)
		put(b, "mbgw_handshakes_rejected_total{reason=\"%s\"} %" PRIu64 "\n", reject_names[i],
		    SUM_W(rejected[i]));
	head(b, "mbgw_close_codes_total", "counter", "WebSocket connections closed, by close code.");
	for (unsigned i = 0; i < METRIC_CLOSE_SLOTS; i++) {
		uint64_t v = SUM_W(close_codes[i]);
		char l[16];
		close_label(i, l, sizeof l);
		if (v || i == 0)
			put(b, "mbgw_close_codes_total{code=\"%s\"} %" PRIu64 "\n", l, v);
	}
	head(b, "mbgw_protocol_errors_total", "counter", "Connections failed for a protocol error, by close code sent.");
	for (unsigned i = 0; i < METRIC_CLOSE_SLOTS; i++) {
		uint64_t v = SUM_W(protocol_errors[i]);
		char l[16];
		close_label(i, l, sizeof l);
		if (v || i == 2)
			put(b, "mbgw_protocol_errors_total{code=\"%s\"} %" PRIu64 "\n", l, v);
	}
	head(b, "mbgw_heartbeat_timeouts_total", "counter", "Connections dropped for not answering a ping.");
	put(b, "mbgw_heartbeat_timeouts_total %" PRIu64 "\n", SUM_W(ping_timeouts));
	head(b, "mbgw_send_queue_overflows_total", "counter", "Sends refused or clients dropped by the slow-consumer policy.");
	put(b, "mbgw_send_queue_overflows_total %" PRIu64 "\n", SUM_W(queue_overflows));
	head(b, "mbgw_tls_handshakes_total", "counter", "TLS handshakes completed.");
	put(b, "mbgw_tls_handshakes_total %" PRIu64 "\n", SUM_W(tls_handshakes));
	head(b, "mbgw_tls_handshake_failures_total", "counter", "TLS handshakes failed or timed out.");
	put(b, "mbgw_tls_handshake_failures_total %" PRIu64 "\n", SUM_W(tls_failures));
	head(b, "mbgw_compression_bytes_total", "counter", "permessage-deflate bytes, by direction and stage.");
	put(b, "mbgw_compression_bytes_total{direction=\"in\",stage=\"wire\"} %" PRIu64 "\n", SUM_W(deflate_in_wire));
	put(b, "mbgw_compression_bytes_total{direction=\"in\",stage=\"raw\"} %" PRIu64 "\n", SUM_W(deflate_in_raw));
	put(b, "mbgw_compression_bytes_total{direction=\"out\",stage=\"raw\"} %" PRIu64 "\n", SUM_W(deflate_out_raw));
	put(b, "mbgw_compression_bytes_total{direction=\"out\",stage=\"wire\"} %" PRIu64 "\n", SUM_W(deflate_out_wire));
	head(b, "mbgw_compression_memory_bytes", "gauge", "zlib memory held by all connections.");
	put(b, "mbgw_compression_memory_bytes %" PRIu64 "\n", g->deflate_memory);
	head(b, "mbgw_reloads_total", "counter", "Configuration reloads, by result.");
	put(b, "mbgw_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)atomic_load(&g_reloads));
	put(b, "mbgw_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)atomic_load(&g_reload_failures));

	pthread_mutex_lock(&g_lock);
	struct route_metrics *routes = g_routes;
	pthread_mutex_unlock(&g_lock);
	/* Entries are only prepended and never freed while running, so the
	 * list can be walked without the lock. */
	head(b, "mbgw_route_connections_open", "gauge", "Open WebSocket connections, by route.");
	for (struct route_metrics *r = routes; r; r = r->next)
		put(b, "mbgw_route_connections_open{route=\"%s\"} %" PRId64 "\n", r->name,
		    (int64_t)SUM_R(r, conns_open));
	head(b, "mbgw_route_connections_total", "counter", "WebSocket connections opened, by route.");
	for (struct route_metrics *r = routes; r; r = r->next)
		put(b, "mbgw_route_connections_total{route=\"%s\"} %" PRIu64 "\n", r->name, SUM_R(r, conns_total));
	head(b, "mbgw_messages_total", "counter", "Messages, by route, direction and frame type.");
	for (struct route_metrics *r = routes; r; r = r->next)
		for (int t = 0; t < 2; t++) {
			put(b, "mbgw_messages_total{route=\"%s\",direction=\"in\",type=\"%s\"} %" PRIu64 "\n",
			    r->name, types[t], SUM_R(r, msgs_in[t]));
			put(b, "mbgw_messages_total{route=\"%s\",direction=\"out\",type=\"%s\"} %" PRIu64 "\n",
			    r->name, types[t], SUM_R(r, msgs_out[t]));
		}
	head(b, "mbgw_message_bytes_total", "counter", "Message payload bytes, by route, direction and frame type.");
	for (struct route_metrics *r = routes; r; r = r->next)
		for (int t = 0; t < 2; t++) {
			put(b, "mbgw_message_bytes_total{route=\"%s\",direction=\"in\",type=\"%s\"} %" PRIu64 "\n",
			    r->name, types[t], SUM_R(r, bytes_in[t]));
			put(b, "mbgw_message_bytes_total{route=\"%s\",direction=\"out\",type=\"%s\"} %" PRIu64 "\n",
			    r->name, types[t], SUM_R(r, bytes_out[t]));
		}
	head(b, "mbgw_fragmented_messages_total", "counter", "Messages received in more than one frame, by route.");
	for (struct route_metrics *r = routes; r; r = r->next)
		put(b, "mbgw_fragmented_messages_total{route=\"%s\"} %" PRIu64 "\n", r->name, SUM_R(r, fragmented_in));
	head(b, "mbgw_message_size_bytes", "histogram", "Sizes of messages received, by route.");
	for (struct route_metrics *r = routes; r; r = r->next)
		hist(b, "mbgw_message_size_bytes", r->name, r, true);
	head(b, "mbgw_plugin_callback_seconds", "histogram", "Time in plugin message callbacks (1 in 16 sampled), by route.");
	for (struct route_metrics *r = routes; r; r = r->next)
		hist(b, "mbgw_plugin_callback_seconds", r->name, r, false);
	head(b, "mbgw_plugin_counter_total", "counter", "Counters of plugins (counter_add), by route and name.");
	plugin_host_render_counters(b);
	return 0;
}
