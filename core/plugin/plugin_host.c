/* plugin_host — see plugin_host.h. */
#include "plugin/plugin_host.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/msg_decode.h"
#include "route/route_table.h"
#include "server/server.h"
#include "util/util_log.h"
#include "ws/ws_utf8.h"

static struct server *_Atomic g_srv;
/* Threads that are not workers (plugin threads, the main thread) hold
 * this for reading while they touch the workers, so that the server is
 * never freed under them; worker threads need not: the server outlives
 * every worker loop. */
static pthread_rwlock_t g_srv_lock = PTHREAD_RWLOCK_INITIALIZER;

void plugin_host_set_server(struct server *srv)
{
	pthread_rwlock_wrlock(&g_srv_lock);
	atomic_store(&g_srv, srv);
	pthread_rwlock_unlock(&g_srv_lock);
}

/* Returns the server (NULL when there is none: then nothing is held);
 * pair every non-NULL result with srv_leave(). */
static struct server *srv_enter(void)
{
	if (worker_current())
		return atomic_load(&g_srv);
	pthread_rwlock_rdlock(&g_srv_lock);
	struct server *srv = atomic_load(&g_srv);
	if (!srv)
		pthread_rwlock_unlock(&g_srv_lock);
	return srv;
}

static void srv_leave(void)
{
	if (!worker_current())
		pthread_rwlock_unlock(&g_srv_lock);
}

/* The connection and route whose callback is running on this thread. */
static __thread uint64_t tls_conn;
static __thread unsigned tls_route;

void plugin_host_enter(uint64_t conn_id, unsigned route_index)
{
	tls_conn = conn_id;
	tls_route = route_index;
}

void plugin_host_leave(void)
{
	tls_conn = 0;
	tls_route = 0;
}

/* ------------------------------------------------------------------ */
/* Errors and logging */

static const char *h_strerror(int err)
{
	switch (err) {
	case MBGW_OK: return "success";
	case MBGW_E_INVAL: return "invalid argument";
	case MBGW_E_NOCONN: return "no such connection";
	case MBGW_E_CLOSING: return "connection is closing";
	case MBGW_E_AGAIN: return "send queue full (backpressure)";
	case MBGW_E_NOMEM: return "out of memory";
	case MBGW_E_TOOBIG: return "too large";
	case MBGW_E_NOTFOUND: return "not found";
	case MBGW_E_RANGE: return "buffer too small";
	case MBGW_E_THREAD: return "not on the connection's worker thread";
	default: return "unknown error";
	}
}

static void h_log(struct mbgw_instance *inst, int level, mbgw_conn_id conn, const char *fmt, ...)
{
	if (level < MBGW_LOG_ERROR)
		level = MBGW_LOG_ERROR;
	if (level > MBGW_LOG_DEBUG)
		level = MBGW_LOG_DEBUG;
	if (!log_enabled((enum log_level)level))
		return;
	char msg[1500];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg((enum log_level)level, conn, "[%s] %s", inst ? inst->route_name : "plugin", msg);
}

/* ------------------------------------------------------------------ */
/* Connection operations */

static struct worker *worker_of(struct server *srv, uint64_t id)
{
	unsigned wi = (unsigned)(id >> 48);
	if (!srv || wi == 0 || wi > srv->nworkers)
		return NULL;
	return &srv->workers[wi - 1];
}

static bool valid_opcode(uint32_t op)
{
	return op == MBGW_TEXT || op == MBGW_BINARY;
}

static int post(struct worker *w, struct wcmd *cmd)
{
	worker_post(w, cmd);
	return MBGW_OK;
}

static int send_locked(struct server *srv, mbgw_conn_id id, uint32_t opcode, const void *data, size_t len);

static int h_send(mbgw_conn_id id, uint32_t opcode, const void *data, size_t len)
{
	if (!valid_opcode(opcode) || (len && !data))
		return MBGW_E_INVAL;
	if (opcode == MBGW_TEXT && !ws_utf8_valid(data, len))
		return MBGW_E_INVAL;
	struct server *srv = srv_enter();
	if (!srv)
		return MBGW_E_NOCONN;
	int rc = send_locked(srv, id, opcode, data, len);
	srv_leave();
	return rc;
}

static int send_locked(struct server *srv, mbgw_conn_id id, uint32_t opcode, const void *data, size_t len)
{
	struct worker *w = worker_of(srv, id);
	if (!w)
		return MBGW_E_NOCONN;
	if (worker_current() == w) {
		struct conn *c = worker_find_conn(w, id);
		if (!c)
			return MBGW_E_NOCONN;
		return conn_plugin_send(c, (uint8_t)opcode, data, len);
	}
	struct smsg *m = smsg_new(srv->conf, (uint8_t)opcode, data, len);
	if (!m)
		return MBGW_E_NOMEM;
	struct wcmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd) {
		smsg_unref(m);
		return MBGW_E_NOMEM;
	}
	cmd->kind = WCMD_SEND;
	cmd->conn = id;
	cmd->msg = m;
	return post(w, cmd);
}

static int h_send_msg(mbgw_conn_id id, const char *header, const char *json)
{
	if (!header)
		return MBGW_E_INVAL;
	size_t hl = strlen(header);
	if (!msg_header_valid(header, hl))
		return MBGW_E_INVAL;
	size_t jl = json ? strlen(json) : 0;
	char stackbuf[4096];
	char *b = hl + 1 + jl <= sizeof stackbuf ? stackbuf : malloc(hl + 1 + jl);
	if (!b)
		return MBGW_E_NOMEM;
	memcpy(b, header, hl);
	b[hl] = '\n';
	if (jl)
		memcpy(b + hl + 1, json, jl);
	int rc = h_send(id, MBGW_TEXT, b, hl + 1 + jl);
	if (b != stackbuf)
		free(b);
	return rc;
}

static int h_reply_error(mbgw_conn_id id, const struct mbgw_message *about, const char *code,
			 const char *message)
{
	if (!code || !message)
		return MBGW_E_INVAL;
	char out[2048];
	size_t n = msg_format_error(out, sizeof out, about ? about->id : NULL, about ? about->id_len : 0,
				    code, message);
	if (!n)
		return MBGW_E_TOOBIG;
	return h_send(id, MBGW_TEXT, out, n);
}

static int close_locked(struct server *srv, mbgw_conn_id id, uint32_t code, const char *reason);

static int h_close(mbgw_conn_id id, uint32_t code, const char *reason)
{
	bool ok_code = code == 1000 || code == 1001 || code == 1008 || code == 1011 ||
		       (code >= 3000 && code <= 4999);
	size_t rl = reason ? strlen(reason) : 0;
	if (!ok_code || rl > 123 || (reason && !ws_utf8_valid((const uint8_t *)reason, rl)))
		return MBGW_E_INVAL;
	struct server *srv = srv_enter();
	if (!srv)
		return MBGW_E_NOCONN;
	int rc = close_locked(srv, id, code, reason);
	srv_leave();
	return rc;
}

static int close_locked(struct server *srv, mbgw_conn_id id, uint32_t code, const char *reason)
{
	struct worker *w = worker_of(srv, id);
	if (!w)
		return MBGW_E_NOCONN;
	if (worker_current() == w) {
		struct conn *c = worker_find_conn(w, id);
		if (!c)
			return MBGW_E_NOCONN;
		conn_close(c, (uint16_t)code, reason ? reason : "");
		return MBGW_OK;
	}
	struct wcmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd)
		return MBGW_E_NOMEM;
	cmd->kind = WCMD_CLOSE;
	cmd->conn = id;
	cmd->code = code;
	snprintf(cmd->text, sizeof cmd->text, "%s", reason ? reason : "");
	return post(w, cmd);
}

/* Sends one shared frame to every worker: delivered at once on the
 * calling worker, queued for the others (so per-thread order holds). */
static int fan_out(struct server *srv, uint32_t kind, struct smsg *m, struct mbgw_instance *inst,
		   const char *group, uint64_t except)
{
	struct worker *self = worker_current();
	int rc = MBGW_OK;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (w == self) {
			if (kind == WCMD_PUBLISH)
				group_publish_local(w, group, m, except);
			else
				worker_broadcast_local(w, inst, m);
			continue;
		}
		struct wcmd *cmd = calloc(1, sizeof *cmd);
		if (!cmd) {
			rc = MBGW_E_NOMEM;
			continue;
		}
		cmd->kind = kind;
		cmd->msg = m;
		smsg_ref(m);
		cmd->inst = inst;
		cmd->conn = except;
		if (group)
			snprintf(cmd->text, sizeof cmd->text, "%s", group);
		worker_post(w, cmd);
	}
	smsg_unref(m);
	return rc;
}

static int h_broadcast(struct mbgw_instance *inst, uint32_t opcode, const void *data, size_t len)
{
	if (!inst || !valid_opcode(opcode) || (len && !data))
		return MBGW_E_INVAL;
	if (opcode == MBGW_TEXT && !ws_utf8_valid(data, len))
		return MBGW_E_INVAL;
	struct server *srv = srv_enter();
	if (!srv)
		return MBGW_OK;
	int rc = MBGW_E_NOMEM;
	struct smsg *m = smsg_new(srv->conf, (uint8_t)opcode, data, len);
	if (m)
		rc = fan_out(srv, WCMD_BROADCAST, m, inst, NULL, 0);
	srv_leave();
	return rc;
}

static bool valid_group(const char *g)
{
	size_t n = g ? strlen(g) : 0;
	return n >= 1 && n <= 255;
}

static int group_op_locked(struct server *srv, mbgw_conn_id id, const char *group, uint32_t kind);

static int group_op(mbgw_conn_id id, const char *group, uint32_t kind)
{
	if (!valid_group(group))
		return MBGW_E_INVAL;
	struct server *srv = srv_enter();
	if (!srv)
		return MBGW_E_NOCONN;
	int rc = group_op_locked(srv, id, group, kind);
	srv_leave();
	return rc;
}

static int group_op_locked(struct server *srv, mbgw_conn_id id, const char *group, uint32_t kind)
{
	struct worker *w = worker_of(srv, id);
	if (!w)
		return MBGW_E_NOCONN;
	if (worker_current() == w) {
		struct conn *c = worker_find_conn(w, id);
		if (!c)
			return MBGW_E_NOCONN;
		return kind == WCMD_JOIN ? group_join(w, c, group) : group_leave(w, c, group);
	}
	struct wcmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd)
		return MBGW_E_NOMEM;
	cmd->kind = kind;
	cmd->conn = id;
	snprintf(cmd->text, sizeof cmd->text, "%s", group);
	return post(w, cmd);
}

static int h_group_join(mbgw_conn_id id, const char *group)
{
	return group_op(id, group, WCMD_JOIN);
}

static int h_group_leave(mbgw_conn_id id, const char *group)
{
	return group_op(id, group, WCMD_LEAVE);
}

static int h_group_publish(const char *group, uint32_t opcode, const void *data, size_t len,
			   mbgw_conn_id except)
{
	if (!valid_group(group) || !valid_opcode(opcode) || (len && !data))
		return MBGW_E_INVAL;
	if (opcode == MBGW_TEXT && !ws_utf8_valid(data, len))
		return MBGW_E_INVAL;
	struct server *srv = srv_enter();
	if (!srv)
		return MBGW_OK;
	int rc = MBGW_E_NOMEM;
	struct smsg *m = smsg_new(srv->conf, (uint8_t)opcode, data, len);
	if (m)
		rc = fan_out(srv, WCMD_PUBLISH, m, NULL, group, except);
	srv_leave();
	return rc;
}

static struct conn *own_conn(mbgw_conn_id id, int *err)
{
	/* Only ever succeeds on a worker thread, which needs no lock. */
	if (!worker_current()) {
		*err = MBGW_E_THREAD;
		return NULL;
	}
	struct server *srv = atomic_load(&g_srv);
	struct worker *w = worker_of(srv, id);
	if (!w) {
		*err = MBGW_E_NOCONN;
		return NULL;
	}
	if (worker_current() != w) {
		*err = MBGW_E_THREAD;
		return NULL;
	}
	struct conn *c = worker_find_conn(w, id);
	if (!c)
		*err = MBGW_E_NOCONN;
	return c;
}

static unsigned udata_slot(mbgw_conn_id id)
{
	return tls_conn == id ? tls_route : 0;
}

/* Where the calling route's user data lives: in the connection for its
 * first route, in its conn_extra for the others (NULL: none yet, and
 * `create` is false or memory ran out). */
static void **udata_ref(struct conn *c, mbgw_conn_id id, bool create)
{
	unsigned i = udata_slot(id);
	if (i == 0)
		return &c->udata;
	struct conn_extra *x = create ? conn_extra(c) : c->x;
	return x ? &x->udata[i] : NULL;
}

static int h_set_udata(mbgw_conn_id id, void *udata)
{
	int err;
	struct conn *c = own_conn(id, &err);
	if (!c)
		return err;
	void **ref = udata_ref(c, id, udata != NULL);
	if (ref)
		*ref = udata;
	else if (udata)
		return MBGW_E_NOMEM;
	return MBGW_OK;
}

static void *h_get_udata(mbgw_conn_id id)
{
	int err;
	struct conn *c = own_conn(id, &err);
	void **ref = c ? udata_ref(c, id, false) : NULL;
	return ref ? *ref : NULL;
}

static int h_conn_attr(mbgw_conn_id id, const char *name, char *out, size_t cap)
{
	if (!name || (!out && cap))
		return MBGW_E_INVAL;
	int err;
	struct conn *c = own_conn(id, &err);
	if (!c)
		return err;
	return conn_attr(c, name, out, cap);
}

/* ------------------------------------------------------------------ */
/* Timers: one list for the process, run by worker 0. */

struct timer_rec {
	struct timer_rec *next;
	int64_t id;
	struct mbgw_instance *inst;
	uint64_t due_ms;
	uint64_t repeat_ms;
	void (*cb)(void *state, void *arg);
	void *arg;
};

static pthread_mutex_t g_timer_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held while a timer callback runs, so retirement never races one. */
static pthread_mutex_t g_timer_run = PTHREAD_MUTEX_INITIALIZER;
static struct timer_rec *g_timers;
static int64_t g_timer_seq;
/* The timer whose callback is running (off the list meanwhile), so that
 * cancelling it — from its own callback or another thread — still works. */
static struct timer_rec *g_running;
static bool g_running_cancelled;

static int64_t h_timer_add(struct mbgw_instance *inst, uint64_t delay_ms, uint64_t repeat_ms,
			   void (*cb)(void *state, void *arg), void *arg)
{
	if (!inst || !cb)
		return MBGW_E_INVAL;
	struct timer_rec *t = calloc(1, sizeof *t);
	if (!t)
		return MBGW_E_NOMEM;
	t->inst = inst;
	t->due_ms = server_now_ms() + delay_ms;
	t->repeat_ms = repeat_ms;
	t->cb = cb;
	t->arg = arg;
	pthread_mutex_lock(&g_timer_lock);
	t->id = ++g_timer_seq;
	t->next = g_timers;
	g_timers = t;
	int64_t id = t->id;
	pthread_mutex_unlock(&g_timer_lock);
	struct server *srv = srv_enter();
	if (srv) {
		if (srv->nworkers)
			worker_wake(&srv->workers[0]);
		srv_leave();
	}
	return id;
}

static int h_timer_cancel(struct mbgw_instance *inst, int64_t timer_id)
{
	int rc = MBGW_E_NOTFOUND;
	pthread_mutex_lock(&g_timer_lock);
	if (g_running && g_running->id == timer_id && g_running->inst == inst && !g_running_cancelled) {
		g_running_cancelled = true;
		rc = MBGW_OK;
	}
	for (struct timer_rec **pp = &g_timers; rc != MBGW_OK && *pp; pp = &(*pp)->next) {
		if ((*pp)->id == timer_id && (*pp)->inst == inst) {
			struct timer_rec *t = *pp;
			*pp = t->next;
			free(t);
			rc = MBGW_OK;
			break;
		}
	}
	pthread_mutex_unlock(&g_timer_lock);
	return rc;
}

/* Removes every timer of an instance (its callbacks will not run again;
 * the caller holds g_timer_run when one might be running). */
static void drop_timers(struct mbgw_instance *in)
{
	pthread_mutex_lock(&g_timer_lock);
	for (struct timer_rec **pp = &g_timers; *pp;) {
		if ((*pp)->inst == in) {
			struct timer_rec *t = *pp;
			*pp = t->next;
			free(t);
		} else {
			pp = &(*pp)->next;
		}
	}
	pthread_mutex_unlock(&g_timer_lock);
}

int64_t plugin_host_run_timers(uint64_t now_ms)
{
	pthread_mutex_lock(&g_timer_run);
	for (int guard = 0; guard < 1000; guard++) {
		pthread_mutex_lock(&g_timer_lock);
		struct timer_rec **pp, *due = NULL;
		for (pp = &g_timers; *pp; pp = &(*pp)->next) {
			if ((*pp)->due_ms <= now_ms) {
				due = *pp;
				*pp = due->next;
				break;
			}
		}
		g_running = due;
		g_running_cancelled = false;
		pthread_mutex_unlock(&g_timer_lock);
		if (!due)
			break;
		due->cb(due->inst->state, due->arg);
		pthread_mutex_lock(&g_timer_lock);
		bool again = due->repeat_ms && !g_running_cancelled;
		g_running = NULL;
		if (again) {
			due->due_ms = now_ms + due->repeat_ms;
			due->next = g_timers;
			g_timers = due;
		}
		pthread_mutex_unlock(&g_timer_lock);
		if (!again)
			free(due);
	}
	pthread_mutex_unlock(&g_timer_run);
	int64_t next = -1;
	pthread_mutex_lock(&g_timer_lock);
	for (struct timer_rec *t = g_timers; t; t = t->next) {
		int64_t d = t->due_ms > now_ms ? (int64_t)(t->due_ms - now_ms) : 0;
		if (next < 0 || d < next)
			next = d;
	}
	pthread_mutex_unlock(&g_timer_lock);
	return next;
}

/* ------------------------------------------------------------------ */
/* Counters */

/* Plugin counters live in one registry keyed by route and name, so they
 * survive reloads (a new instance of a route continues its counters) and
 * never appear twice in /metrics. */
struct plugin_counter {
	struct plugin_counter *next;
	char *route;
	char *name;
	_Atomic int64_t value;
};

static pthread_mutex_t g_counter_lock = PTHREAD_MUTEX_INITIALIZER;
static struct plugin_counter *g_counters;

static bool valid_counter_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 100)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '.' || *s == '-' || *s == ':'))
			return false;
	return true;
}

static int h_counter_add(struct mbgw_instance *inst, const char *name, int64_t delta)
{
	if (!inst || !name || !valid_counter_name(name))
		return MBGW_E_INVAL;
	pthread_mutex_lock(&g_counter_lock);
	struct plugin_counter *c;
	for (c = g_counters; c; c = c->next)
		if (strcmp(c->name, name) == 0 && strcmp(c->route, inst->route_name) == 0)
			break;
	if (!c) {
		c = calloc(1, sizeof *c);
		if (c) {
			c->name = strdup(name);
			c->route = strdup(inst->route_name);
		}
		if (!c || !c->name || !c->route) {
			if (c) {
				free(c->name);
				free(c->route);
			}
			free(c);
			pthread_mutex_unlock(&g_counter_lock);
			return MBGW_E_NOMEM;
		}
		c->next = g_counters;
		g_counters = c;
	}
	c->value += delta;
	pthread_mutex_unlock(&g_counter_lock);
	return MBGW_OK;
}

void plugin_host_render_counters(struct buf *out)
{
	pthread_mutex_lock(&g_counter_lock);
	for (struct plugin_counter *c = g_counters; c; c = c->next) {
		char line[400];
		int n = snprintf(line, sizeof line, "mbgw_plugin_counter_total{route=\"%s\",name=\"%s\"} %lld\n",
				 c->route, c->name, (long long)c->value);
		if (n > 0 && (size_t)n < sizeof line)
			buf_append(out, line, (size_t)n);
	}
	pthread_mutex_unlock(&g_counter_lock);
}

void plugin_host_cleanup(void)
{
	pthread_mutex_lock(&g_counter_lock);
	while (g_counters) {
		struct plugin_counter *c = g_counters;
		g_counters = c->next;
		free(c->name);
		free(c->route);
		free(c);
	}
	pthread_mutex_unlock(&g_counter_lock);
}

/* ------------------------------------------------------------------ */

static const struct mbgw_host g_host = {
	.size = sizeof(struct mbgw_host),
	.abi_minor = MBGW_ABI_MINOR,
	.strerror = h_strerror,
	.log = h_log,
	.send = h_send,
	.send_msg = h_send_msg,
	.reply_error = h_reply_error,
	.close = h_close,
	.broadcast = h_broadcast,
	.group_join = h_group_join,
	.group_leave = h_group_leave,
	.group_publish = h_group_publish,
	.set_udata = h_set_udata,
	.get_udata = h_get_udata,
	.conn_attr = h_conn_attr,
	.timer_add = h_timer_add,
	.timer_cancel = h_timer_cancel,
	.counter_add = h_counter_add,
};

const struct mbgw_host *plugin_host_table(void)
{
	return &g_host;
}

/* ------------------------------------------------------------------ */
/* Instances */

static pthread_mutex_t g_retire_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mbgw_instance **g_retired;
static size_t g_nretired, g_retired_cap;

struct mbgw_instance *plugin_host_instance_new(struct plugin_so *so, const struct conf_route *r,
					       char *err, size_t errcap)
{
	struct mbgw_instance *in = calloc(1, sizeof *in);
	if (!in) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	atomic_init(&in->refs, 1);
	pthread_mutex_init(&in->lock, NULL);
	in->so = so;
	in->desc = &so->desc;
	in->format = r->format;
	in->stateless = so->desc.flags & MBGW_PLUGIN_STATELESS;
	in->route_name = strdup(r->name);
	in->settings = strdup(r->settings ? r->settings : "{}");
	if (!in->route_name || !in->settings) {
		snprintf(err, errcap, "out of memory");
		goto out_free;
	}
	plugin_so_ref(so);
	if (so->desc.init) {
		char perr[512] = "";
		int rc = so->desc.init(&g_host, in, in->settings, &in->state, perr, sizeof perr);
		if (rc != MBGW_OK) {
			perr[sizeof perr - 1] = 0;
			snprintf(err, errcap, "plugin %s %s failed to initialise: %s", so->desc.name,
				 so->desc.version, perr[0] ? perr : h_strerror(rc));
			/* Timers it may have added before failing go with it. */
			drop_timers(in);
			plugin_so_unref(so);
			goto out_free;
		}
	}
	log_info("route %s: plugin %s %s loaded from %s", r->name, so->desc.name, so->desc.version, so->path);
	return in;
out_free:
	free(in->route_name);
	free(in->settings);
	pthread_mutex_destroy(&in->lock);
	free(in);
	return NULL;
}

void plugin_host_instance_ref(struct mbgw_instance *inst)
{
	atomic_fetch_add(&inst->refs, 1);
}

void plugin_host_instance_unref(struct mbgw_instance *inst)
{
	if (atomic_fetch_sub(&inst->refs, 1) != 1)
		return;
	atomic_store(&inst->retired, true);
	pthread_mutex_lock(&g_retire_lock);
	if (g_nretired == g_retired_cap) {
		size_t nc = g_retired_cap ? g_retired_cap * 2 : 8;
		struct mbgw_instance **n = realloc(g_retired, nc * sizeof *n);
		if (n) {
			g_retired = n;
			g_retired_cap = nc;
		}
	}
	if (g_nretired < g_retired_cap)
		g_retired[g_nretired++] = inst;
	else
		log_error("out of memory retiring plugin instance %s: it stays loaded", inst->route_name);
	pthread_mutex_unlock(&g_retire_lock);
}

size_t plugin_host_reap_retired(void)
{
	pthread_mutex_lock(&g_retire_lock);
	struct mbgw_instance **list = g_retired;
	size_t n = g_nretired;
	g_retired = NULL;
	g_nretired = g_retired_cap = 0;
	pthread_mutex_unlock(&g_retire_lock);

	for (size_t i = 0; i < n; i++) {
		struct mbgw_instance *in = list[i];
		/* No timer callback of this instance may run from here on. */
		pthread_mutex_lock(&g_timer_run);
		drop_timers(in);
		pthread_mutex_unlock(&g_timer_run);
		if (in->desc->shutdown)
			in->desc->shutdown(in->state);
		log_info("route %s: plugin instance %s %s retired", in->route_name, in->desc->name,
			 in->desc->version);
		plugin_so_unref(in->so);
		free(in->route_name);
		free(in->settings);
		pthread_mutex_destroy(&in->lock);
		free(in);
	}
	free(list);
	return n;
}
