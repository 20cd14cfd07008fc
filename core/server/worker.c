/* worker — one event loop per thread.
 *
 * loop_run() phases, in order, each iteration:
 *   1. wait     epoll_wait, until the next timer that can fire (at most
 *               HOUSEKEEPING_MS)
 *   2. dispatch accept on listeners; read/write on connections
 *   3. queue    commands posted by other threads (plugin sends, groups)
 *   4. flush    one writev per connection that queued output this round
 *   5. timers   the connection timers that are due (handshake, heartbeat,
 *               pong, close timeouts) and routes removed by a reload; on
 *               worker 0 also the plugins' timers and the limits table;
 *               once a second, spare blobs the last second did not use
 *   6. stop     on shutdown: stop accepting, close everyone with 1001
 *   7. reap     close callbacks, then free connections marked dead
 * Connections are only ever freed in phase 7, so no handler runs on a
 * connection that has been freed under it.
 */
#include "server/server.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <unistd.h>

#include "http/http_response.h"
#include "net/net_listen.h"
#include "plugin/plugin_host.h"
#include "server/limits.h"
#include "util/util_log.h"

/* Resolution of the connection timers. Each connection has one timer in
 * the worker's wheel, moved only when its state changes or it fires (a
 * read just notes the time), so idle connections cost nothing per tick. */
#define TICK_MS 100
/* The longest the loop sleeps: it notices reloads (removed routes) and
 * runs the limits sweep at least this often. */
#define HOUSEKEEPING_MS 1000
#define MAX_EVENTS 256
#define ACCEPT_BATCH 64

/* epoll user data: listeners and the eventfd are tagged small integers,
 * connections are pointers (always > TAG_MAX). */
#define TAG_WAKE 1u
#define TAG_LISTEN_BASE 16u
#define TAG_MAX 4096u

static __thread struct worker *tls_worker;

struct worker *worker_current(void)
{
	return tls_worker;
}

/* The id map holds every connection of the worker and is its registry
 * too: open addressing with linear probing, at most 3/4 full, so it costs
 * 8 bytes per slot (10.7 to 21.3 per connection) and struct conn carries
 * no links for it. Only accept (idmap_add) and reap (idmap_remove) change
 * it, never while it is being walked. */
static size_t id_slot(const struct worker *w, uint64_t id)
{
	uint64_t seq = id & 0xffffffffffffULL;
	return (size_t)((seq * 0x9E3779B97F4A7C15ULL) >> 20) & (w->idmap_cap - 1);
}

static void idmap_put(struct worker *w, struct conn *c)
{
	size_t i = id_slot(w, c->id);
	while (w->idmap[i])
		i = (i + 1) & (w->idmap_cap - 1);
	w->idmap[i] = c;
}

static int idmap_grow(struct worker *w)
{
	size_t ncap = w->idmap_cap ? w->idmap_cap * 2 : 1024;
	struct conn **n = calloc(ncap, sizeof *n);
	if (!n)
		return -1;
	struct conn **old = w->idmap;
	size_t ocap = w->idmap_cap;
	w->idmap = n;
	w->idmap_cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i])
			idmap_put(w, old[i]);
	free(old);
	return 0;
}

static int idmap_add(struct worker *w, struct conn *c)
{
	if ((w->nconns + 1) * 4 > w->idmap_cap * 3 && idmap_grow(w) < 0)
		return -1;
	idmap_put(w, c);
	return 0;
}

static void idmap_remove(struct worker *w, struct conn *c)
{
	size_t mask = w->idmap_cap - 1, i = id_slot(w, c->id);
	while (w->idmap[i] != c) {
		if (!w->idmap[i])
			return;
		i = (i + 1) & mask;
	}
	/* Backward-shift deletion: pull later entries of the probe run into
	 * the hole unless their home slot lies (cyclically) after it, so
	 * lookups never meet a gap inside a run. */
	for (size_t j = i;;) {
		j = (j + 1) & mask;
		struct conn *o = w->idmap[j];
		if (!o)
			break;
		size_t home = id_slot(w, o->id);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			w->idmap[i] = o;
			i = j;
		}
	}
	w->idmap[i] = NULL;
}

struct conn *worker_find_conn(struct worker *w, uint64_t id)
{
	if (!w->idmap_cap)
		return NULL;
	for (size_t i = id_slot(w, id);; i = (i + 1) & (w->idmap_cap - 1)) {
		struct conn *c = w->idmap[i];
		if (!c || c->id == id)
			return c;
	}
}

/* The worker's connection after slot *i (start with *i = 0), or NULL at
 * the end: for walks over all connections. */
static struct conn *conn_next(struct worker *w, size_t *i)
{
	while (*i < w->idmap_cap) {
		struct conn *c = w->idmap[(*i)++];
		if (c)
			return c;
	}
	return NULL;
}

void worker_post(struct worker *w, struct wcmd *cmd)
{
	cmd->next = NULL;
	pthread_mutex_lock(&w->q_lock);
	if (w->q_closed) {
		/* The loop has ended (shutdown): nobody is left to deliver to. */
		pthread_mutex_unlock(&w->q_lock);
		if (cmd->msg)
			smsg_unref(cmd->msg);
		free(cmd);
		return;
	}
	bool was_empty = !w->q_head;
	if (w->q_tail)
		w->q_tail->next = cmd;
	else
		w->q_head = cmd;
	w->q_tail = cmd;
	pthread_mutex_unlock(&w->q_lock);
	/* One wake-up per batch: the loop drains the whole queue. */
	if (was_empty)
		worker_wake(w);
}

void worker_broadcast_local(struct worker *w, struct mbgw_instance *inst, struct smsg *m)
{
	struct conn *c;
	for (size_t it = 0; (c = conn_next(w, &it));) {
		if (c->state != CONN_OPEN)
			continue;
		for (size_t i = 0; i < c->nroutes; i++) {
			if (conn_routes(c)[i]->inst == inst) {
				conn_send_shared(c, m);
				break;
			}
		}
	}
}

static void run_queue(struct worker *w)
{
	pthread_mutex_lock(&w->q_lock);
	struct wcmd *list = w->q_head;
	w->q_head = w->q_tail = NULL;
	pthread_mutex_unlock(&w->q_lock);
	while (list) {
		struct wcmd *cmd = list;
		list = cmd->next;
		struct conn *c = NULL;
		switch (cmd->kind) {
		case WCMD_SEND:
			if ((c = worker_find_conn(w, cmd->conn)))
				conn_send_shared(c, cmd->msg);
			break;
		case WCMD_CLOSE:
			if ((c = worker_find_conn(w, cmd->conn)))
				conn_close(c, (uint16_t)cmd->code, cmd->text);
			break;
		case WCMD_JOIN:
			if ((c = worker_find_conn(w, cmd->conn)))
				group_join(w, c, cmd->text);
			break;
		case WCMD_LEAVE:
			if ((c = worker_find_conn(w, cmd->conn)))
				group_leave(w, c, cmd->text);
			break;
		case WCMD_PUBLISH:
			group_publish_local(w, cmd->text, cmd->msg, cmd->conn);
			break;
		case WCMD_BROADCAST:
			worker_broadcast_local(w, cmd->inst, cmd->msg);
			break;
		}
		if (cmd->msg)
			smsg_unref(cmd->msg);
		free(cmd);
	}
}

/* The flush list and the reap list share one link (next_dirty), and
 * `dirty` says the connection is on one of them: a dead connection needs
 * no flush, so it is never on both. One still on the flush list when it
 * dies moves to the reap list when the flush list is walked (flush_dirty,
 * reap). */
void worker_mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty || c->state == CONN_DEAD)
		return;
	c->dirty = true;
	c->next_dirty = w->dirty;
	w->dirty = c;
}

static void push_dead(struct worker *w, struct conn *c)
{
	c->dirty = true;
	c->next_dirty = w->dead;
	w->dead = c;
}

void worker_mark_dead(struct worker *w, struct conn *c)
{
	if (!c->dirty)
		push_dead(w, c);
}

void worker_update_events(struct worker *w, struct conn *c)
{
	if (c->state == CONN_DEAD)
		return;
	uint32_t ev = 0;
	if (!c->read_paused)
		ev |= EPOLLIN;
	if (c->want_write || c->tls_want_write)
		ev |= EPOLLOUT;
	if (ev == c->epoll_events)
		return;
	struct epoll_event e = { .events = ev, .data.ptr = c };
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->epoll_events = (uint8_t)ev;
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;
	ssize_t r = write(w->evfd, &one, sizeof one);
	(void)r;
}

/* The registry is the id map (idmap_add, idmap_remove); these count. */
static void registry_add(struct worker *w)
{
	w->nconns++;
	atomic_fetch_add_explicit(&w->srv->stats.connections_open, 1, memory_order_relaxed);
}

static void registry_remove(struct worker *w)
{
	w->nconns--;
	atomic_fetch_sub_explicit(&w->srv->stats.connections_open, 1, memory_order_relaxed);
}

static void on_accept(struct worker *w, int lfd, unsigned listener)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			if ((errno == EMFILE || errno == ENFILE) && w->spare_fd >= 0) {
				/* Out of descriptors: the pending connection would keep
				 * the listener readable forever (a busy loop). Free the
				 * spare, accept it, close it, and take the spare back. */
				log_msg(LOG_WARN, 0, "out of file descriptors (%s): refusing a connection",
					strerror(errno));
				close(w->spare_fd);
				int tmp = accept(lfd, NULL, NULL);
				if (tmp >= 0)
					close(tmp);
				w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				return;
			}
			log_msg(LOG_WARN, 0, "accept: %s", strerror(errno));
			return;
		}
		if (w->stopping) {
			close(fd);
			continue;
		}
		/* Behind PROXY protocol the peer is the proxy: the limits apply
		 * to the client named in the header (conn.c proxy_step). */
		bool proxied = w->srv->conf->listen[listener].proxy_protocol;
		/* The metrics listener is for operators: never full. */
		bool exempt = proxied || w->srv->conf->listen[listener].metrics;
		const char *why = exempt ? NULL : limits_connect(w->srv->conf, (struct sockaddr *)&ss);
		if (why) {
			/* Refused before reading anything: a short 503 (best
			 * effort, the socket buffer is empty) and close. */
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
						   "Content-Length: 0\r\n" HTTP_SECURITY_HEADERS "\r\n";
			char addr[64];
			net_addr_format((struct sockaddr *)&ss, addr, sizeof addr);
			log_msg(LOG_INFO, 0, "connection from %s refused: %s", addr, why);
			METRIC_INC(w->m->rejected[REJ_LIMIT]);
			if (!w->srv->conf->listen[listener].tls) {
				ssize_t r = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				(void)r;
			}
			close(fd);
			continue;
		}
		struct conn *c = conn_new(w, fd, (struct sockaddr *)&ss, listener, !exempt);
		if (!c) {
			if (!exempt)
				limits_disconnect(w->srv->conf, (struct sockaddr *)&ss);
			log_msg(LOG_ERROR, 0, "out of memory accepting a connection");
			continue;
		}
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			log_msg(LOG_ERROR, c->id, "epoll_ctl: %s", strerror(errno));
			conn_free(c);
			continue;
		}
		c->epoll_events = EPOLLIN;
		if (idmap_add(w, c) < 0) {
			log_msg(LOG_ERROR, c->id, "out of memory accepting a connection");
			conn_free(c);
			continue;
		}
		registry_add(w);
		atomic_fetch_add_explicit(&w->srv->stats.connections_accepted, 1, memory_order_relaxed);
		METRIC_INC(w->m->accepted);
	}
}

static void flush_dirty(struct worker *w)
{
	/* conn_flush may resume a paused reader, which can queue more output
	 * and re-mark the connection: loop until the list stays empty. */
	while (w->dirty) {
		struct conn *list = w->dirty;
		w->dirty = NULL;
		while (list) {
			struct conn *c = list;
			list = c->next_dirty;
			if (c->state == CONN_DEAD) {
				push_dead(w, c); /* died while on the flush list */
				continue;
			}
			c->dirty = false;
			conn_flush(c);
		}
	}
}

static void reap(struct worker *w)
{
	/* Connections that died while on the flush list join the others. */
	for (struct conn **pp = &w->dirty; *pp;) {
		struct conn *c = *pp;
		if (c->state == CONN_DEAD) {
			*pp = c->next_dirty;
			push_dead(w, c);
		} else {
			pp = &c->next_dirty;
		}
	}
	while (w->dead) {
		struct conn *c = w->dead;
		w->dead = c->next_dirty;
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		/* Close callbacks run here, outside any callback of the
		 * connection; host functions see it as gone (state DEAD). */
		dispatch_close(c);
		idmap_remove(w, c);
		registry_remove(w);
		conn_free(c);
	}
}

/* A route removed by a reload closes its connections once its drain time
 * has passed. The worker looks when the table generation changes and when
 * the earliest pending deadline comes: O(connections) per reload, nothing
 * per tick. */
static void removed_routes_check(struct worker *w)
{
	uint64_t next = UINT64_MAX;
	struct conn *c;
	for (size_t it = 0; (c = conn_next(w, &it));) {
		if (c->state != CONN_OPEN)
			continue;
		for (size_t i = 0; i < c->nroutes; i++) {
			uint64_t d = atomic_load_explicit(&conn_routes(c)[i]->removed_deadline_ms,
							  memory_order_relaxed);
			if (!d)
				continue;
			if (w->now_ms >= d) {
				conn_close(c, WS_CLOSE_GOING_AWAY, "Route removed");
				break;
			}
			if (d < next)
				next = d;
		}
	}
	if (next != UINT64_MAX)
		wheel_arm(&w->wheel, &w->removed_timer, next);
	else
		wheel_cancel(&w->wheel, &w->removed_timer);
}

static void routes_changed_check(struct worker *w)
{
	uint64_t gen = route_table_generation();
	if (gen == w->routes_gen)
		return;
	w->routes_gen = gen;
	/* route_table_swap publishes the generation before it marks the
	 * removed routes, under the table lock: taking the lock once orders
	 * us after it. */
	route_table_unref(route_table_acquire());
	removed_routes_check(w);
}

static void on_timer(struct wheel_timer *t, void *arg)
{
	struct worker *w = arg;
	if (t == &w->removed_timer) {
		removed_routes_check(w);
		return;
	}
	conn_on_timer((struct conn *)((char *)t - offsetof(struct conn, timer)));
}

static void begin_stop(struct worker *w)
{
	w->stopping = true;
	w->stop_deadline_ms = w->now_ms + w->srv->conf->drain_timeout_ms;
	for (size_t i = 0; i < w->nlisten; i++) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fds[i], NULL);
		close(w->listen_fds[i]);
		w->listen_fds[i] = -1;
	}
	struct conn *c;
	for (size_t it = 0; (c = conn_next(w, &it));) {
		if (c->state == CONN_OPEN)
			conn_close(c, WS_CLOSE_GOING_AWAY, "Server shutting down");
		else if (c->state == CONN_HTTP || c->state == CONN_TLS || c->state == CONN_PROXY)
			conn_terminate(c, "server shutting down");
	}
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[MAX_EVENTS];
	tls_worker = w;
	outq_thread_init();
	w->m = metrics_worker(w->index);
	w->now_ms = server_now_ms();
	int64_t next_timer = -1;
	wheel_init(&w->wheel, TICK_MS, w->now_ms);
	w->routes_gen = route_table_generation();

	for (;;) {
		/* 1. wait */
		int64_t timeout = HOUSEKEEPING_MS;
		int64_t due = wheel_timeout_ms(&w->wheel, w->now_ms);
		if (due >= 0 && due < timeout)
			timeout = due;
		if (next_timer >= 0 && next_timer < timeout)
			timeout = next_timer;
		if (w->ntls_busy) {
			int64_t trim = w->next_tls_trim_ms > w->now_ms ? (int64_t)(w->next_tls_trim_ms - w->now_ms) : 0;
			if (trim < timeout)
				timeout = trim;
		}
		if (w->stopping) {
			int64_t left = w->now_ms < w->stop_deadline_ms ? (int64_t)(w->stop_deadline_ms - w->now_ms) : 0;
			if (left < timeout)
				timeout = left;
		}
		int n = epoll_wait(w->epfd, evs, MAX_EVENTS, (int)timeout);
		if (n < 0 && errno != EINTR) {
			log_msg(LOG_ERROR, 0, "worker %u: epoll_wait: %s", w->index, strerror(errno));
			break;
		}
		w->now_ms = server_now_ms();

		/* 2. dispatch */
		for (int i = 0; i < n; i++) {
			uintptr_t tag = (uintptr_t)evs[i].data.u64;
			uint32_t ev = evs[i].events;
			if (tag == TAG_WAKE) {
				uint64_t v;
				ssize_t r = read(w->evfd, &v, sizeof v);
				(void)r;
				continue;
			}
			if (tag >= TAG_LISTEN_BASE && tag < TAG_MAX) {
				on_accept(w, w->listen_fds[tag - TAG_LISTEN_BASE], (unsigned)(tag - TAG_LISTEN_BASE));
				continue;
			}
			struct conn *c = evs[i].data.ptr;
			if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) {
				conn_terminate(c, "socket error or hang-up");
				continue;
			}
			if (ev & EPOLLOUT)
				conn_on_writable(c);
			if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_on_readable(c);
		}

		/* 3. queue */
		run_queue(w);

		/* 4. flush */
		flush_dirty(w);

		/* 5. timers */
		if (w->index == 0) {
			next_timer = plugin_host_run_timers(w->now_ms);
			run_queue(w);
			if (w->now_ms >= w->next_limits_sweep_ms) {
				limits_sweep(w->srv->conf, w->now_ms);
				w->next_limits_sweep_ms = w->now_ms + 5000;
			}
		}
		routes_changed_check(w);
		wheel_advance(&w->wheel, w->now_ms, on_timer, w);
		outq_thread_trim(w->now_ms);
		if (w->ntls_busy && w->now_ms >= w->next_tls_trim_ms)
			transport_trim(w);
		flush_dirty(w);

		/* 6. stop */
		if (!w->stopping && atomic_load(&w->srv->stop))
			begin_stop(w), flush_dirty(w);
		if (w->stopping && w->now_ms >= w->stop_deadline_ms) {
			struct conn *c;
			for (size_t it = 0; (c = conn_next(w, &it));)
				conn_terminate(c, "drain timeout");
		}

		/* 7. reap */
		reap(w);
		if (w->stopping && w->nconns == 0)
			break;
	}
	if (w->nconns)
		log_msg(LOG_WARN, 0, "worker %u: %zu connections dropped at exit", w->index, w->nconns);
	/* Close callbacks for all first, so a host call made from one still
	 * finds the others; then free them. */
	struct conn *c;
	for (size_t it = 0; (c = conn_next(w, &it));)
		dispatch_close(c);
	for (size_t i = 0; i < w->idmap_cap; i++) {
		if ((c = w->idmap[i])) {
			w->idmap[i] = NULL;
			conn_free(c);
		}
	}
	/* From now on posts to this worker are dropped; what is queued is
	 * delivered to nobody and freed. */
	pthread_mutex_lock(&w->q_lock);
	w->q_closed = true;
	pthread_mutex_unlock(&w->q_lock);
	run_queue(w);
	group_map_free(w);
	transport_worker_cleanup(w);
	free(w->idmap);
	w->idmap = NULL;
	buf_free(&w->zin);
	buf_free(&w->zout);
	w->idmap_cap = 0;
	tls_worker = NULL;
	outq_thread_cleanup();
	conn_thread_cleanup();
	return NULL;
}
