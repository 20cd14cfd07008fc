/* metrics — counters for /metrics (Prometheus text exposition format).
 *
 * Every worker writes only its own counters (no locks, no shared cache
 * lines on the per-message path); a scrape sums the workers' values with
 * relaxed loads. Per-route counters live in a registry keyed by route name
 * that survives reloads, so a reload does not reset them; a connection
 * keeps a pointer to its route's entry.
 */
#ifndef MBGW_METRICS_H
#define MBGW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util_buf.h"

/* Why a handshake was refused (label reason="..."). */
enum metric_reject {
	REJ_BAD_REQUEST, REJ_NOT_FOUND, REJ_METHOD, REJ_UPGRADE_REQUIRED, REJ_TOO_LARGE,
	REJ_TIMEOUT, REJ_TLS, REJ_ORIGIN, REJ_AUTH, REJ_LIMIT, REJ_PLUGIN, REJ_OTHER,
	REJ__N
};

#define METRIC_CLOSE_SLOTS 19   /* 1000..1015, 3xxx, 4xxx, other */
#define METRIC_HIST_BUCKETS 16

/* Increments a counter written by one thread only and read by others. */
#define METRIC_ADD(var, n) __atomic_store_n(&(var), (var) + (n), __ATOMIC_RELAXED)
#define METRIC_INC(var) METRIC_ADD(var, 1)

struct worker_metrics {
	uint64_t accepted;
	uint64_t rejected[REJ__N];
	uint64_t close_codes[METRIC_CLOSE_SLOTS];     /* closes by code (sent or received first) */
	uint64_t protocol_errors[METRIC_CLOSE_SLOTS]; /* connections failed, by close code */
	uint64_t ping_timeouts;
	uint64_t queue_overflows;
	uint64_t tls_handshakes;
	uint64_t tls_failures;
	uint64_t deflate_in_wire, deflate_in_raw;     /* compressed bytes received / inflated */
	uint64_t deflate_out_raw, deflate_out_wire;   /* bytes before / after compression */
} __attribute__((aligned(64)));

struct route_slot {
	uint64_t conns_total;
	int64_t conns_open;
	uint64_t msgs_in[2], msgs_out[2];      /* [0] text, [1] binary */
	uint64_t bytes_in[2], bytes_out[2];
	uint64_t fragmented_in;
	uint64_t size_hist[METRIC_HIST_BUCKETS]; /* message sizes in, le 2^(4+2i) */
	uint64_t size_sum;
	uint64_t cb_hist[METRIC_HIST_BUCKETS];   /* plugin message callback, sampled */
	uint64_t cb_ns_sum;
} __attribute__((aligned(64)));

struct route_metrics {
	struct route_metrics *next;
	char *name;
	struct route_slot *slots;   /* one per worker */
};

/* Sets up for n workers (before they start). */
int metrics_init(unsigned nworkers);
void metrics_cleanup(void);
/* The worker's own counters. */
struct worker_metrics *metrics_worker(unsigned index);
/* The entry for a route name, created on first use (never freed until
 * exit). Any thread; takes a lock, so look it up once per connection. */
struct route_metrics *metrics_route(const char *name);

/* Index into close_codes / protocol_errors for a close code. */
unsigned metrics_close_slot(unsigned code);
/* Records a message size into a slot's histogram. */
void metrics_observe_size(struct route_slot *s, uint64_t bytes);
void metrics_observe_callback(struct route_slot *s, uint64_t ns);

/* Process-wide events (any thread). */
void metrics_reload(bool ok);

/* Gauges supplied by the server at scrape time. */
struct metrics_gauges {
	uint64_t connections_open;
	uint64_t deflate_memory;
	bool ready;
};

/* Appends the exposition text to out. Any thread. */
int metrics_render(struct buf *out, const struct metrics_gauges *g);

#endif
