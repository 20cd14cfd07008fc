/* route_table — see route_table.h. */
#include "route/route_table.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge_auth.h"
#include "msg/msg_decode.h"
#include "plugin/plugin_host.h"
#include "util/util_log.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_table *g_current;
static struct route_table *g_live;       /* every table not yet freed */
static _Atomic uint64_t g_generation;

static void add_err(struct buf *errs, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_err(struct buf *errs, const char *where, const char *fmt, ...)
{
	char msg[1500];
	int n = snprintf(msg, sizeof msg, "%s: ", where);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
	if (len > sizeof msg - 2)
		len = sizeof msg - 2;
	msg[len++] = '\n';
	buf_append(errs, msg, len);
}

/* Resolves a route's plugin to a file: a value with '/' or ending in
 * ".so" is a path (relative to the configuration directory), otherwise a
 * name: <plugin_dir>/<name>.so. */
static void plugin_file(const struct conf_route *r, const char *conf_dir, const char *plugin_dir,
			char *out, size_t cap)
{
	size_t pl = strlen(r->plugin);
	if (strchr(r->plugin, '/') || (pl > 3 && strcmp(r->plugin + pl - 3, ".so") == 0)) {
		if (r->plugin[0] == '/')
			snprintf(out, cap, "%s", r->plugin);
		else
			snprintf(out, cap, "%s/%s", conf_dir, r->plugin);
	} else {
		snprintf(out, cap, "%s/%s.so", plugin_dir, r->plugin);
	}
}

static struct mbgw_instance *find_reusable(const struct route_table *prev, const struct conf_route *r,
					   const char *file)
{
	if (!prev)
		return NULL;
	for (size_t i = 0; i < prev->nroutes; i++) {
		struct mbgw_instance *in = prev->routes[i].inst;
		const struct conf_route *pr = prev->routes[i].conf;
		if (strcmp(pr->name, r->name) == 0 && strcmp(in->settings, r->settings) == 0 &&
		    in->format == r->format && strcmp(in->so->path, file) == 0 &&
		    plugin_so_same_file(in->so, file))
			return in;
	}
	return NULL;
}

static void release_insts(struct route_table *t)
{
	if (!t->holds_insts)
		return;
	t->holds_insts = false;
	for (size_t i = 0; i < t->nroutes; i++)
		if (t->routes[i].inst)
			plugin_host_instance_unref(t->routes[i].inst);
}

static void free_auth(struct route_table *t)
{
	for (size_t i = 0; i < t->nroutes; i++)
		if (t->routes[i].auth)
			edge_auth_free(t->routes[i].auth);
}

/* edge_auth speaks of its own field names; say the configuration's. */
static const char *conf_names(char *msg)
{
	static const struct { const char *from, *to; } names[] = {
		{ "basic_file", "auth_basic_file" }, { "bearer_file", "auth_bearer_file" },
		{ "token_query_param", "auth_query_param" }, { "token_cookie", "auth_cookie" },
		{ "realm", "auth_realm" }, { "jwt_leeway_s", "jwt_leeway" },
	};
	static __thread char out[1200];
	size_t o = 0;
	for (const char *p = msg; *p && o + 40 < sizeof out;) {
		bool done = false;
		for (size_t i = 0; i < sizeof names / sizeof names[0] && !done; i++) {
			size_t fl = strlen(names[i].from);
			bool word_start = p == msg || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'));
			if (word_start && strncmp(p, names[i].from, fl) == 0 &&
			    !(p[fl] == '_' || (p[fl] >= 'a' && p[fl] <= 'z'))) {
				o += (size_t)snprintf(out + o, sizeof out - o, "%s", names[i].to);
				p += fl;
				done = true;
			}
		}
		if (!done)
			out[o++] = *p++;
	}
	out[o] = 0;
	return out;
}

/* Loads a route's credentials (files are read now, so a reload picks up
 * new users, tokens and keys). Returns 0, or -1 with an error appended. */
static int load_auth(struct route *rt, const char *conf_dir, struct buf *errs)
{
	const struct conf_route *r = rt->conf;
	if (!r->auth)
		return 0;
	struct edge_auth_config ac = { 0 };
	char list[256];
	snprintf(list, sizeof list, "%s", r->auth);
	for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (strcmp(tok, "basic") == 0)
			ac.methods |= EDGE_AUTH_BASIC;
		else if (strcmp(tok, "bearer") == 0)
			ac.methods |= EDGE_AUTH_BEARER;
		else if (strcmp(tok, "jwt") == 0)
			ac.methods |= EDGE_AUTH_JWT;
		else {
			add_err(errs, r->where, "route '%s': auth: unknown method '%s' (expected basic, bearer or jwt)",
				r->name, tok);
			return -1;
		}
	}
	/* Relative files are relative to the configuration directory. */
	char p[6][4096];
	const char *files[6] = { r->auth_basic_file, r->auth_bearer_file, r->jwt_secret_file, r->jwt_public_key,
				 NULL, NULL };
	for (int i = 0; i < 4; i++)
		if (files[i] && files[i][0] != '/') {
			snprintf(p[i], sizeof p[i], "%s/%s", conf_dir, files[i]);
			files[i] = p[i];
		}
	ac.realm = r->auth_realm;
	ac.basic_file = files[0];
	ac.bearer_file = files[1];
	ac.jwt_secret_file = files[2];
	ac.jwt_public_key = files[3];
	ac.jwt_algorithms = r->jwt_algorithms;
	ac.jwt_issuer = r->jwt_issuer;
	ac.jwt_audience = r->jwt_audience;
	ac.jwt_leeway_s = (uint32_t)(r->jwt_leeway_ms / 1000);
	ac.jwt_exp_optional = r->jwt_exp_optional;
	ac.token_query_param = r->auth_query_param;
	ac.token_cookie = r->auth_cookie;
	char err[600];
	if (edge_auth_load(&ac, &rt->auth, err, sizeof err) != 0) {
		add_err(errs, r->where, "route '%s': %s", r->name, conf_names(err));
		rt->auth = NULL;
		return -1;
	}
	return 0;
}

static void table_free(struct route_table *t)
{
	free_auth(t);
	pthread_mutex_lock(&g_lock);
	for (struct route_table **pp = &g_live; *pp; pp = &(*pp)->next_live) {
		if (*pp == t) {
			*pp = t->next_live;
			break;
		}
	}
	pthread_mutex_unlock(&g_lock);
	release_insts(t);
	free(t->routes);
	if (t->conf) {
		conf_free(t->conf);
		free(t->conf);
	}
	free(t->plugin_dir);
	free(t);
}

struct route_table *route_table_build(struct conf *conf, const char *conf_dir,
				      const char *default_plugin_dir,
				      const struct route_table *prev, struct buf *errs)
{
	struct route_table *t = calloc(1, sizeof *t);
	if (!t) {
		add_err(errs, conf_dir, "out of memory building the route table");
		conf_free(conf);
		free(conf);
		return NULL;
	}
	atomic_init(&t->refs, 1);
	t->holds_insts = true;
	t->conf = conf;
	t->plugin_dir = strdup(conf->plugin_dir ? conf->plugin_dir : default_plugin_dir);
	t->routes = calloc(conf->nroutes ? conf->nroutes : 1, sizeof *t->routes);
	if (!t->routes || !t->plugin_dir) {
		add_err(errs, conf_dir, "out of memory building the route table");
		table_free(t);
		return NULL;
	}
	t->nroutes = conf->nroutes;
	int failures = 0;

	/* Load each plugin file once per build even when several routes use
	 * it; instances (init) are per route. */
	struct plugin_so **loaded = calloc(conf->nroutes ? conf->nroutes : 1, sizeof *loaded);
	if (!loaded) {
		add_err(errs, conf_dir, "out of memory building the route table");
		table_free(t);
		return NULL;
	}
	for (size_t i = 0; i < conf->nroutes; i++) {
		const struct conf_route *r = &conf->routes[i];
		struct route *rt = &t->routes[i];
		rt->conf = r;
		char file[PATH_MAX];
		plugin_file(r, conf_dir, t->plugin_dir, file, sizeof file);

		if (load_auth(rt, conf_dir, errs) < 0) {
			failures++;
			continue;
		}
		struct mbgw_instance *reuse = find_reusable(prev, r, file);
		if (reuse) {
			plugin_host_instance_ref(reuse);
			rt->inst = reuse;
			continue;
		}
		struct plugin_so *so = NULL;
		for (size_t k = 0; k < i; k++)
			if (loaded[k] && strcmp(loaded[k]->path, file) == 0)
				so = loaded[k];
		char err[1024];
		if (so) {
			plugin_so_ref(so);
		} else {
			so = plugin_so_open(file, err, sizeof err);
			if (!so) {
				add_err(errs, r->where, "route '%s': %s", r->name, err);
				failures++;
				continue;
			}
			loaded[i] = so;
		}
		if (r->reload_move && !(so->desc.flags & MBGW_PLUGIN_STATELESS)) {
			add_err(errs, r->where, "route '%s': reload = move needs a stateless plugin, and %s "
				"does not declare MBGW_PLUGIN_STATELESS", r->name, so->desc.name);
			plugin_so_unref(so);
			failures++;
			continue;
		}
		rt->inst = plugin_host_instance_new(so, r, err, sizeof err);
		plugin_so_unref(so); /* the instance holds its own reference */
		if (!rt->inst) {
			add_err(errs, r->where, "route '%s': %s", r->name, err);
			failures++;
		}
	}
	free(loaded);
	if (failures) {
		table_free(t);
		return NULL;
	}
	return t;
}

uint64_t route_table_generation(void)
{
	return atomic_load_explicit(&g_generation, memory_order_acquire);
}

struct route_table *route_table_acquire(void)
{
	pthread_mutex_lock(&g_lock);
	struct route_table *t = g_current;
	if (t)
		atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&g_lock);
	return t;
}

void route_table_ref(struct route_table *t)
{
	atomic_fetch_add(&t->refs, 1);
}

void route_table_unref(struct route_table *t)
{
	if (t && atomic_fetch_sub(&t->refs, 1) == 1)
		table_free(t);
}

struct route *route_table_find(const struct route_table *t, const char *name)
{
	for (size_t i = 0; i < t->nroutes; i++)
		if (strcmp(t->routes[i].conf->name, name) == 0)
			return &t->routes[i];
	return NULL;
}

struct route_table *route_table_swap(struct route_table *t, uint64_t now_ms)
{
	pthread_mutex_lock(&g_lock);
	struct route_table *old = g_current;
	t->generation = atomic_load(&g_generation) + 1;
	atomic_store(&g_generation, t->generation);
	g_current = t;
	t->next_live = g_live;
	g_live = t;
	/* A route gone from the new table closes its connections after its
	 * drain time, whichever older table they were accepted with. */
	for (struct route_table *o = t->next_live; o; o = o->next_live) {
		for (size_t i = 0; i < o->nroutes; i++) {
			struct route *r = &o->routes[i];
			if (route_table_find(t, r->conf->name) || atomic_load(&r->removed_deadline_ms))
				continue;
			uint64_t d = now_ms + r->conf->drain_ms;
			atomic_store(&r->removed_deadline_ms, d ? d : 1);
			if (o == old)
				log_info("route %s removed: its connections close with 1001 in %llu ms",
					 r->conf->name, (unsigned long long)r->conf->drain_ms);
		}
	}
	pthread_mutex_unlock(&g_lock);
	/* Connections hold their own instance references; the replaced table
	 * lets go of its, so an unused instance retires now. */
	if (old)
		release_insts(old);
	return old;
}

void route_table_clear(void)
{
	pthread_mutex_lock(&g_lock);
	struct route_table *old = g_current;
	g_current = NULL;
	pthread_mutex_unlock(&g_lock);
	if (old)
		release_insts(old);
	route_table_unref(old);
}

/* Matching proper, on a table the caller keeps alive. */
static size_t match(const struct route_table *t, const char *path, size_t path_len,
		    bool (*offered)(void *ctx, const char *proto), void *ctx,
		    struct route **out, const char **subprotocol, const char **refused)
{
	*subprotocol = NULL;
	*refused = NULL;
	bool any = false, any_plain = false;
	/* Server preference: subprotocols in configuration order. */
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct conf_route *r = t->routes[i].conf;
		if (strlen(r->path) != path_len || memcmp(r->path, path, path_len) != 0)
			continue;
		any = true;
		any_plain |= r->nsubprotocols == 0;
		for (size_t k = 0; k < r->nsubprotocols && !*subprotocol; k++)
			if (offered(ctx, r->subprotocols[k]))
				*subprotocol = r->subprotocols[k];
	}
	if (!any)
		return 0;
	size_t n = 0;
	bool required = false;
	for (size_t i = 0; i < t->nroutes; i++) {
		const struct conf_route *r = t->routes[i].conf;
		if (strlen(r->path) != path_len || memcmp(r->path, path, path_len) != 0)
			continue;
		required |= r->require_subprotocol;
		bool serves = false;
		if (*subprotocol) {
			for (size_t k = 0; k < r->nsubprotocols; k++)
				serves |= strcmp(r->subprotocols[k], *subprotocol) == 0;
		} else if (any_plain) {
			/* No subprotocol agreed: the routes that list none serve. */
			serves = r->nsubprotocols == 0;
		} else {
			serves = !r->require_subprotocol;
		}
		if (serves && n < ROUTE_MAX_PER_CONN)
			out[n++] = &t->routes[i];
	}
	if (n == 0)
		*refused = required ? "No supported subprotocol offered"
				    : "No route serves the offered subprotocols";
	return n;
}

size_t route_table_match(const char *path, size_t path_len,
			 bool (*offered)(void *ctx, const char *proto), void *ctx,
			 struct route **out, const char **subprotocol, const char **refused,
			 struct route_table **table)
{
	pthread_mutex_lock(&g_lock);
	struct route_table *t = g_current;
	size_t n = t ? match(t, path, path_len, offered, ctx, out, subprotocol, refused) : 0;
	if (n) {
		atomic_fetch_add(&t->refs, 1);
		for (size_t i = 0; i < n; i++)
			plugin_host_instance_ref(out[i]->inst);
	}
	pthread_mutex_unlock(&g_lock);
	*table = n ? t : NULL;
	return n;
}

void route_release(struct route **routes, size_t n, struct route_table *t)
{
	for (size_t i = 0; i < n; i++)
		plugin_host_instance_unref(routes[i]->inst);
	route_table_unref(t);
}

bool route_table_rebind(struct route **routes, size_t n, struct route_table **t)
{
	struct route *moved[ROUTE_MAX_PER_CONN];
	pthread_mutex_lock(&g_lock);
	struct route_table *cur = g_current;
	bool ok = cur && cur != *t && n <= ROUTE_MAX_PER_CONN;
	for (size_t i = 0; ok && i < n; i++) {
		moved[i] = route_table_find(cur, routes[i]->conf->name);
		ok = moved[i] && moved[i]->conf->reload_move && moved[i]->inst->stateless;
	}
	if (ok) {
		atomic_fetch_add(&cur->refs, 1);
		for (size_t i = 0; i < n; i++)
			plugin_host_instance_ref(moved[i]->inst);
	}
	pthread_mutex_unlock(&g_lock);
	if (!ok)
		return false;
	struct route *old_routes[ROUTE_MAX_PER_CONN];
	memcpy(old_routes, routes, n * sizeof *routes);
	struct route_table *old = *t;
	memcpy(routes, moved, n * sizeof *moved);
	*t = cur;
	route_release(old_routes, n, old);
	return true;
}

int route_pick(struct route *const *routes, size_t n, const char *type, size_t type_len)
{
	int best = -1;
	size_t best_score = 0;
	for (size_t i = 0; i < n; i++) {
		const struct conf_route *r = routes[i]->conf;
		if (r->ntypes == 0) {
			if (best_score < 1) {
				best = (int)i;
				best_score = 1;
			}
			continue;
		}
		for (size_t k = 0; k < r->ntypes; k++) {
			const char *p = r->types[k];
			if (!msg_type_matches(p, type, type_len))
				continue;
			size_t pl = strlen(p);
			/* exact beats any prefix; longer prefix beats shorter */
			size_t score = p[pl - 1] == '*' ? 2 + pl : SIZE_MAX;
			if (score > best_score) {
				best = (int)i;
				best_score = score;
			}
		}
	}
	return best;
}
