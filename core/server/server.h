/* server — internal types shared by the connection, worker and server
 * modules: the connection object, the worker (one event loop per thread)
 * and the process-wide server. Not part of the SDK.
 *
 * Threading contract: a connection belongs to exactly one worker for its
 * whole life and is touched only by that worker's thread. Workers share
 * only the read-only configuration and the atomic counters in
 * struct server; cross-thread requests go through eventfd wake-ups.
 */
#ifndef MBGW_SERVER_H
#define MBGW_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conf/conf.h"
#include "http/http_parser.h"
#include "route/route_table.h"
#include "server/metrics.h"
#include "server/outq.h"
#include "util/util_buf.h"
#include "util/util_wheel.h"
#include "ws/ws_deflate.h"
#include "ws/ws_reader.h"

enum conn_state {
	CONN_PROXY,      /* waiting for the PROXY protocol header */
	CONN_TLS,        /* TLS handshake in progress */
	CONN_HTTP,       /* reading the upgrade request */
	CONN_OPEN,       /* WebSocket open */
	CONN_CLOSING,    /* we sent a close frame; waiting for the peer's */
	CONN_LINGER,     /* last bytes queued; once written, shut down writing */
	CONN_DRAIN,      /* write side shut down; reading until EOF or timeout */
	CONN_DEAD,       /* fd to be closed and memory freed by the loop */
};

struct worker;
struct group;

/* A request posted to a worker by another thread (plugin host functions
 * called off the connection's worker). */
enum wcmd_kind {
	WCMD_SEND = 1,     /* frame to conn */
	WCMD_CLOSE,        /* close conn with code, text = reason */
	WCMD_JOIN,         /* conn joins group text */
	WCMD_LEAVE,        /* conn leaves group text */
	WCMD_PUBLISH,      /* frame to local members of group text, except conn */
	WCMD_BROADCAST,    /* frame to local connections of instance inst */
};

/* A message sent to many connections (or across threads): the payload
 * and its frames encoded once, plus compressed frames made once per
 * window size for recipients without server context takeover. */
struct smsg {
	atomic_uint refs;
	uint8_t opcode;
	struct blob *plain;            /* frames, uncompressed */
	pthread_mutex_t lock;          /* guards deflated[] */
	struct blob *deflated[16];     /* by server_max_window_bits */
	size_t frag;                   /* fragment_size the frames use */
	size_t len;
	uint8_t payload[];
};

struct wcmd {
	struct wcmd *next;
	uint32_t kind;
	uint32_t code;
	uint64_t conn;
	struct smsg *msg;              /* one reference, dropped after use */
	struct mbgw_instance *inst;    /* compared, never dereferenced */
	char text[256];
};

/* What a connection needs only while bytes are arriving: the read buffer
 * and the frame reader. Taken with the first byte read and given back
 * when the buffer is empty and no frame or message is half received, so
 * idle connections carry neither (conn.c input_take/input_give_back). */
struct conn_input {
	struct buf rbuf;                /* data taken from a per-thread cache too */
	struct ws_reader rd;
};

/* What few connections use, in one allocation made the first time one of
 * them is needed (conn_extra) and freed with the connection: request
 * attributes kept for plugins, more than one route, groups, the message
 * rate bucket, the close reason, a compressed message arriving in pieces.
 * Keeping them out of struct conn is what makes an idle connection small
 * (docs/operations.md, "Memory per connection"). */
struct conn_extra {
	char *query;                    /* NULL when the request had none */
	char *head;                     /* kept request headers, "Name: value\n"... */
	char *identity;                 /* accepted by the route's auth, NULL if none */
	char *auth_claims;              /* JWT claims (JSON), NULL if none */
	const char *auth_method;        /* static, NULL if none */
	struct route *routes[ROUTE_MAX_PER_CONN]; /* when the connection has more than one */
	void *udata[ROUTE_MAX_PER_CONN]; /* plugins' data for routes 1.. (0: conn.udata) */
	struct group **groups;          /* groups joined (on this worker) */
	size_t ngroups, groups_cap;
	uint64_t msg_tokens_ms;         /* message rate limit: bucket time */
	double msg_tokens;
	uint64_t rebind_gen;            /* table generation last tried for reload = move */
	char *close_reason;             /* taken when a close frame is seen */
	uint8_t close_reason_len;
	bool limits_addr_set;           /* limits_addr differs from the peer */
	struct ws_utf8 zutf8;           /* UTF-8 state of zmsg (text) */
	struct buf *zmsg;               /* a compressed message inflating piece by piece */
	struct sockaddr_in6 limits_addr; /* the address limits_connect counted, once a
					  * trusted proxy has named another client */
};

/* One client connection. Its size is the server's memory per idle
 * connection, so it holds only what every connection needs all the time;
 * the rest is taken while used (in, out) or lives in conn_extra. */
struct conn {
	uint64_t id;
	struct worker *w;
	int fd;
	uint32_t last_rx_ms;            /* last byte received: low 32 bits of now_ms */
	enum conn_state state;
	uint8_t listener;               /* index into conf->listen */
	uint8_t nroutes;
	uint8_t reject_as;              /* metric_reject + 1 for the next rejection, 0: by status */
	uint8_t epoll_events;           /* what is registered (EPOLLIN, EPOLLOUT) */
	bool dirty : 1;                 /* on the worker's flush (or reap) list */
	bool read_paused : 1;           /* backpressure: EPOLLIN off */
	bool want_write : 1;            /* EPOLLOUT on */
	bool ping_outstanding : 1;
	bool close_sent : 1;
	bool opened : 1;                /* open callbacks ran: close ones are due */
	bool in_callback : 1;           /* a plugin callback for it is running */
	bool limits_counted : 1;        /* limits_connect took this connection */
	bool wss : 1;                   /* scheme wss (TLS, or what a trusted proxy said) */
	bool tls_want_write : 1;        /* OpenSSL needs the socket writable */
	bool tls_want_read : 1;         /* a TLS write waits for readability */
	bool tls_starved : 1;           /* the last TLS read needed more from the socket */
	bool tls_used : 1;              /* TLS I/O since the last transport_trim */
	uint8_t tls_heat : 2;           /* 0 unlisted, 1-2 warming, 3 keeps its buffers */
	uint16_t close_code;            /* sent or received; 0 = none (1006) */
	uint16_t peer_port;             /* the client (see conn_peer_sockaddr) */
	uint8_t peer_family;            /* AF_INET or AF_INET6 */
	uint64_t accepted_ms;
	uint64_t bytes_in, bytes_out;   /* on the socket, for the access log */
	struct conn *next_dirty;        /* worker's flush list, then its reap list */
	struct wheel_timer timer;       /* the deadline of the current state */
	struct conn_input *in;          /* NULL while idle */
	struct outq out;                /* empty (a NULL pointer) while idle */
	struct route *route;            /* the only route, or NULL (see conn_routes) */
	void *udata;                    /* the plugin's data for routes[0] */
	struct route_table *rt;         /* table accepted with (a reference) */
	struct route_slot *rslot;       /* this worker's counters of the first route */
	SSL *ssl;                       /* TLS session, NULL for plain TCP */
	struct ws_deflate *pmd;         /* permessage-deflate, NULL if not agreed */
	const char *subprotocol;        /* borrowed from the route table */
	struct conn_extra *x;           /* NULL until needed (conn_extra) */
	uint8_t peer_addr[16];          /* the client's address, IPv4 as ::ffff:a.b.c.d */
};

/* The connection's routes: one inline, more in its conn_extra. */
static inline struct route **conn_routes(struct conn *c)
{
	return c->nroutes > 1 ? c->x->routes : &c->route;
}

struct worker {
	unsigned index;
	struct server *srv;
	pthread_t thread;
	int epfd;
	int evfd;                       /* wake-up from other threads */
	int *listen_fds;
	size_t nlisten;
	int spare_fd;                   /* closed to accept+drop at EMFILE */

	size_t nconns;
	struct conn *dirty;             /* flush list (conn.next_dirty) */
	struct conn *dead;              /* reap list (the same link) */
	uint64_t next_conn_seq;
	uint64_t now_ms;
	struct wheel wheel;             /* connection timeouts (conn_on_timer) */
	struct wheel_timer removed_timer; /* next drain deadline of a removed route */
	uint64_t routes_gen;            /* route table generation last looked at */
	bool stopping;
	uint64_t stop_deadline_ms;

	/* every connection, by id (sequence part): open addressing, so
	 * the registry costs 8 bytes per slot and nothing in struct conn */
	struct conn **idmap;
	size_t idmap_cap;               /* power of two */
	/* requests from other threads */
	pthread_mutex_t q_lock;
	struct wcmd *q_head, *q_tail;
	bool q_closed;                  /* the loop has ended */
	struct worker_metrics *m;       /* this worker's counters */
	uint32_t cb_sample;             /* 1 in 16 plugin callbacks is timed */
	uint64_t next_limits_sweep_ms;
	/* TLS connections with recent I/O (ids), see transport_trim */
	uint64_t *tls_busy;
	size_t ntls_busy, tls_busy_cap;
	uint64_t next_tls_trim_ms;
	/* scratch for inflating and deflating one message at a time */
	struct buf zin, zout;
	/* groups with members on this worker */
	struct group **gbuckets;
	size_t gbuckets_cap;
	size_t ngroups;
};

struct server_stats {
	atomic_ullong connections_accepted;
	atomic_ullong connections_open;
	atomic_ullong handshakes_rejected;
	atomic_ullong ping_timeouts;
	atomic_ullong protocol_errors;
	atomic_ullong messages_in;
	atomic_ullong messages_out;
};

struct edge_trusted;

struct server {
	const struct conf *conf;        /* start-up configuration (listeners, limits) */
	struct edge_trusted *trusted;   /* trusted_proxies, NULL if none */
	struct worker *workers;
	unsigned nworkers;
	atomic_bool stop;
	struct server_stats stats;
};

/* --- conn.c: one connection's protocol logic (runs on its worker) --- */

/* Takes ownership of an accepted socket (tls: start a TLS handshake).
 * Returns NULL (socket closed) if memory runs out. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer, unsigned listener,
		      bool limits_counted);
/* Queues a whole HTTP answer (then the connection closes). */
void conn_http_answer(struct conn *c, int status, const char *content_type, const char *extra,
		      const void *body, size_t len, bool head_only);
/* Refuses an upgrade: counts, logs the reason with the request line, answers. */
void conn_http_reject(struct conn *c, int status, const char *reason, const struct http_request *req,
		      const char *extra);
/* Called when the socket is readable. */
void conn_on_readable(struct conn *c);
/* Called when the socket is writable (EPOLLOUT). */
void conn_on_writable(struct conn *c);
/* Writes what is queued (one writev); updates EPOLLOUT and backpressure. */
void conn_flush(struct conn *c);
/* The connection's timer fired (worker's wheel): handshake timeout,
 * heartbeat ping, pong timeout or close timeout, by state. */
void conn_on_timer(struct conn *c);
/* Starts a close handshake with code and reason (no-op if closing). */
void conn_close(struct conn *c, uint16_t code, const char *reason);
/* Drops the connection at once (no close handshake); freed by the loop. */
void conn_terminate(struct conn *c, const char *why);
/* Frees a DEAD connection (closes its fd). */
void conn_free(struct conn *c);
/* Frees this worker thread's cache of spare input states (at thread exit). */
void conn_thread_cleanup(void);
/* Queues a message (fragmented per fragment_size). Returns 0 or -1. */
int conn_send_message(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len);
/* Plugin send to a connection on its own worker, applying the slow
 * consumer policy (except for replies to the connection whose callback is
 * running). Returns an MBGW_* code. */
int conn_plugin_send(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len);
/* Queues a shared message, with the same policy. */
int conn_send_shared(struct conn *c, struct smsg *m);
/* A new shared message (one reference), or NULL when memory runs out. */
struct smsg *smsg_new(const struct conf *conf, uint8_t opcode, const void *data, size_t len);
void smsg_ref(struct smsg *m);
void smsg_unref(struct smsg *m);
/* Connection attribute for plugins (see mbgw_host.conn_attr). */
int conn_attr(struct conn *c, const char *name, char *out, size_t cap);
/* The connection's side structure, allocated on first use; NULL when
 * memory runs out. */
struct conn_extra *conn_extra(struct conn *c);
/* The client's address as a socket address; returns its length. */
socklen_t conn_peer_sockaddr(const struct conn *c, struct sockaddr_storage *ss);
/* Sets the client's address (accept, PROXY header, trusted proxy). */
void conn_set_peer(struct conn *c, const struct sockaddr *sa);
/* The client's address as text ("192.0.2.1:5000", "[2001:db8::1]:443"),
 * formatted now from the binary address. conn_peer returns one of two
 * per-thread buffers (so two may appear in one log line), overwritten by
 * later calls: for logs; conn_peer_format writes into the caller's. */
const char *conn_peer(const struct conn *c);
void conn_peer_format(const struct conn *c, char *out, size_t cap);

/* --- transport.c: TCP or TLS under one interface --- */

/* Like recv: bytes read, 0 at EOF, -1 with errno (EAGAIN: try later). */
ssize_t transport_read(struct conn *c, void *buf, size_t n);
/* Like writev: bytes written or -1 with errno (EAGAIN: try later). */
ssize_t transport_writev(struct conn *c, struct iovec *iov, int n);
/* True when the transport holds decrypted bytes not yet read. */
bool transport_pending(const struct conn *c);
/* TLS handshake step: 1 done, 0 in progress, -1 failed (logged), -2 the
 * peer closed before sending anything. */
int transport_handshake(struct conn *c);
/* Ends our direction: close_notify (TLS) and a TCP FIN. */
void transport_shutdown(struct conn *c);
void transport_free(struct conn *c);
/* How often the worker calls transport_trim. */
#define TRANSPORT_TRIM_MS 1000
/* Lets TLS connections busy for two periods keep their record buffers
 * and takes them back from those quiet since the previous call. Worker
 * thread, every TRANSPORT_TRIM_MS while w->ntls_busy > 0. */
void transport_trim(struct worker *w);
/* Frees the worker's list (at thread exit). */
void transport_worker_cleanup(struct worker *w);

/* --- dispatch.c: routes and plugin callbacks for one connection --- */

/* True if some route of the current table serves this path. */
bool dispatch_path_exists(const char *path, size_t len);
/* Chooses the routes for an upgrade request and runs verify callbacks.
 * Returns 101 (and fills *subprotocol) or an HTTP status with *reason. */
int dispatch_upgrade(struct conn *c, const struct http_request *req, const char **subprotocol,
		     const char **reason, char *extra, size_t extra_cap);
/* Runs open callbacks (after the 101 answer is queued). */
void dispatch_open(struct conn *c);
/* Handles one complete data message. */
void dispatch_message(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len, bool fragmented);

/* --- endpoints.c: /healthz, /readyz, /metrics, CORS --- */

/* Answers requests for the HTTP endpoints; returns false for anything
 * else (a WebSocket path or an unknown one). */
bool endpoint_handle(struct conn *c, const struct http_request *req);
/* Runs close callbacks (once), leaves groups, drops the route table. */
void dispatch_close(struct conn *c);

/* --- group.c: group membership of this worker's connections --- */

int group_join(struct worker *w, struct conn *c, const char *name);
int group_leave(struct worker *w, struct conn *c, const char *name);
void group_leave_all(struct worker *w, struct conn *c);
void group_publish_local(struct worker *w, const char *name, struct smsg *m, uint64_t except);
void group_map_free(struct worker *w);

/* --- worker.c: the event loop --- */

void worker_mark_dirty(struct worker *w, struct conn *c);
void worker_mark_dead(struct worker *w, struct conn *c);
/* Updates the epoll interest set of a connection. */
void worker_update_events(struct worker *w, struct conn *c);
void *worker_main(void *arg);
/* Wakes a worker's loop from another thread. */
void worker_wake(struct worker *w);
/* The worker whose loop runs on this thread, or NULL. */
struct worker *worker_current(void);
/* This worker's connection with this id, or NULL (own thread only). */
struct conn *worker_find_conn(struct worker *w, uint64_t id);
/* Queues a command for w (takes ownership) and wakes it. Any thread. */
void worker_post(struct worker *w, struct wcmd *cmd);
/* Sends a shared frame to this worker's connections of an instance. */
void worker_broadcast_local(struct worker *w, struct mbgw_instance *inst, struct smsg *m);

/* --- server.c: process-wide start and stop --- */

/* Where the server finds its configuration again on reload. */
struct server_paths {
	const char *conf_dir;
	const char *plugin_dir;     /* default when the configuration sets none */
};

/* Creates listeners and workers and runs until SIGINT/SIGTERM, reloading
 * routes and plugins on SIGHUP; returns the process exit status. The
 * current route table must already be installed (route_table_swap). */
int server_run(const struct conf *conf, const struct server_paths *paths);

/* Reads the configuration again and swaps in a new route table; on any
 * error the old one stays in force and the errors are logged. Main
 * thread. Returns 0 on success. */
int server_reload(const struct server_paths *paths);

uint64_t server_now_ms(void);

#endif
