/* plugin_host — the host side of the plugin ABI.
 *
 * Owns the table of host functions handed to plugins (struct mbgw_host),
 * plugin instances' life cycle (init on the main thread, retirement when
 * no route table uses them any more, then shutdown and unload on the main
 * thread), plugin timers (run on worker 0) and plugin counters.
 *
 * Host functions that act on a connection find its worker from the id:
 * on that worker's own thread they act at once; from any other thread
 * they post a command to the worker's queue and wake it.
 */
#ifndef MBGW_PLUGIN_HOST_H
#define MBGW_PLUGIN_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <mbgw/plugin.h>

#include "conf/conf.h"
#include "util/util_buf.h"
#include "plugin/plugin_so.h"

struct server;

/* The host function table (static, valid for the process). */
const struct mbgw_host *plugin_host_table(void);

/* Lets host functions reach the workers (NULL before start / after stop). */
void plugin_host_set_server(struct server *srv);

/* Creates and initialises an instance of so for route r (takes its own
 * reference to so). Main thread. Returns NULL with err filled when the
 * plugin's init fails (its own message is included). */
struct mbgw_instance *plugin_host_instance_new(struct plugin_so *so, const struct conf_route *r,
					       char *err, size_t errcap);
void plugin_host_instance_ref(struct mbgw_instance *inst);
/* Drops a reference; at zero the instance is queued for retirement. Any
 * thread. */
void plugin_host_instance_unref(struct mbgw_instance *inst);
/* Main thread: shuts down and frees retired instances (cancelling their
 * timers, unloading their .so when unused). Returns how many. */
size_t plugin_host_reap_retired(void);

/* Worker 0: runs due timers; returns ms until the next one (or -1). */
int64_t plugin_host_run_timers(uint64_t now_ms);

/* Appends the plugins' counters in Prometheus text format. Any thread. */
void plugin_host_render_counters(struct buf *out);
/* Frees process-wide state at exit. */
void plugin_host_cleanup(void);

/* Called by the core around plugin callbacks, so host functions that
 * need "the calling route" (set_udata) know it. */
void plugin_host_enter(uint64_t conn_id, unsigned route_index);
void plugin_host_leave(void);

#endif
