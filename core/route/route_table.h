/* route_table — which plugin instance serves which connection and message.
 *
 * Stage "route" of the message path. A table is built from a whole
 * configuration (struct conf, which it then owns) beside the one in force;
 * only when every plugin has loaded and initialised does it replace the
 * current table (route_table_swap). Tables are reference-counted: each open
 * connection holds the table it was accepted with (for its routes'
 * configuration) and a reference to each of its routes' instances. The
 * current table also holds its instances; once replaced it lets go of
 * them, so an instance (and its .so) is retired as soon as its own last
 * connection has gone, whatever other routes' connections still hold.
 *
 * Precedence, documented in docs/plugins.md:
 *  - at upgrade: the routes whose path equals the request path form an
 *    endpoint; the server's subprotocol preference is the routes'
 *    `subprotocols` lists in configuration order; the first the client
 *    offers is selected, and the connection gets every route of the path
 *    that lists it (or, if none is selected, every route listing none).
 *  - per message: among the connection's routes, an exact `types` match
 *    wins, then the longest `prefix.*` match, then a route without `types`.
 *
 * Thread safety: building and swapping run on the main thread; acquiring
 * the current table and matching run on workers (a mutex guards only the
 * current-table pointer, taken once per handshake, never per message).
 */
#ifndef MBGW_ROUTE_TABLE_H
#define MBGW_ROUTE_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <mbgw/plugin.h>

#include "conf/conf.h"
#include "plugin/plugin_so.h"
#include "util/util_buf.h"

#define ROUTE_MAX_PER_CONN CONF_MAX_ROUTES_PER_PATH

struct timer_rec;

/* A plugin instance: one per route (shared by successive tables while the
 * route's plugin file and settings are unchanged). Opaque to plugins. */
struct mbgw_instance {
	atomic_long refs;              /* one per table that holds it */
	struct plugin_so *so;
	const struct mbgw_plugin *desc;  /* = &so->desc */
	void *state;                   /* what the plugin's init stored */
	char *route_name;
	char *settings;
	uint32_t format;
	bool stateless;                /* plugin flag */
	atomic_bool retired;
	pthread_mutex_t lock;
};

struct edge_auth;

struct route {
	const struct conf_route *conf;  /* inside the table's conf */
	struct mbgw_instance *inst;
	struct edge_auth *auth;         /* credentials checked at upgrade, NULL if none */
	/* set when a reload removed this route: connections still using it
	 * are closed with 1001 once the monotonic clock passes this (ms) */
	atomic_ullong removed_deadline_ms;
};

struct route_table {
	atomic_long refs;
	struct route_table *next_live;  /* every table still referenced */
	bool holds_insts;               /* references its instances (until replaced) */
	uint64_t generation;
	struct conf *conf;              /* owned */
	struct route *routes;
	size_t nroutes;
	char *plugin_dir;
};

/* Builds a table for conf (taking ownership of it) and initialises every
 * plugin instance, sharing instances of `prev` (may be NULL) whose route
 * name, plugin file and settings are unchanged. On failure returns NULL
 * with one "where: what" line per problem appended to errs; nothing of
 * prev is changed. Main thread. */
struct route_table *route_table_build(struct conf *conf, const char *conf_dir,
				      const char *default_plugin_dir,
				      const struct route_table *prev, struct buf *errs);

/* Current table with a new reference (NULL before the first swap). Any
 * thread. */
struct route_table *route_table_acquire(void);
void route_table_ref(struct route_table *t);
/* Generation of the current table (cheap, lock-free): lets a connection
 * notice a reload without taking the lock. */
uint64_t route_table_generation(void);
/* Drops a reference; at zero, drops the table's references to its
 * instances (retiring the unused ones through plugin_host). Any thread. */
void route_table_unref(struct route_table *t);
/* Makes t current (taking the caller's reference) and marks routes of the
 * previous table that t no longer has as removed, with their drain time.
 * Returns the previous table's reference for the caller to drop. */
struct route_table *route_table_swap(struct route_table *t, uint64_t now_ms);

/* Drops the current table (at exit). */
void route_table_clear(void);

/* Upgrade matching against the current table. Returns the number of
 * routes and fills out[], *subprotocol (borrowed from the table, NULL if
 * none was selected) and *table; the caller then holds a reference to the
 * table and to each route's instance (release with route_release).
 * When it returns 0 nothing is held, and *refused is NULL if no route has
 * this path (404), or a reason if the path exists but the client's offer
 * cannot be served (400). Any thread; the match runs under the table lock
 * so that a concurrent reload cannot retire the instances in between. */
size_t route_table_match(const char *path, size_t path_len,
			 bool (*offered)(void *ctx, const char *proto), void *ctx,
			 struct route **out, const char **subprotocol, const char **refused,
			 struct route_table **table);

/* Drops what route_table_match gave a connection. Any thread. */
void route_release(struct route **routes, size_t n, struct route_table *t);

/* Reload policy "move": if the current table is newer than *t and has
 * every route (by name) as a stateless reload = move route, re-points
 * routes[] at it, moving the references. Returns true if moved. */
bool route_table_rebind(struct route **routes, size_t n, struct route_table **t);

/* Picks the route of a connection for a message type. Returns its index in
 * routes[], or -1 (no_route). */
int route_pick(struct route *const *routes, size_t n, const char *type, size_t type_len);

/* Finds a route by name in t, or NULL. */
struct route *route_table_find(const struct route_table *t, const char *name);

#endif
