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

#include "conf/conf.h"
#include "server/outq.h"
#include "util/util_buf.h"
#include "ws/ws_reader.h"

enum conn_state {
	CONN_HTTP,       /* reading the upgrade request */
	CONN_OPEN,       /* WebSocket open */
	CONN_CLOSING,    /* we sent a close frame; waiting for the peer's */
	CONN_LINGER,     /* last bytes queued; once written, shut down writing */
	CONN_DRAIN,      /* write side shut down; reading until EOF or timeout */
	CONN_DEAD,       /* fd to be closed and memory freed by the loop */
};

struct worker;

struct conn {
	uint64_t id;
	int fd;
	enum conn_state state;
	struct worker *w;
	struct conn *prev, *next;       /* worker's registry of live connections */
	struct conn *next_dirty;        /* worker's flush list */
	struct conn *next_dead;         /* worker's reap list */
	bool dirty;
	bool read_paused;               /* backpressure: EPOLLIN off */
	bool want_write;                /* EPOLLOUT on */
	bool ping_outstanding;
	bool close_sent;
	uint32_t epoll_events;          /* what is registered */

	uint64_t created_ms;
	uint64_t last_rx_ms;            /* last byte received */
	uint64_t state_since_ms;        /* entered CLOSING/LINGER/DRAIN */
	uint64_t ping_sent_ms;

	struct buf rbuf;                /* taken when reading, returned when empty */
	struct ws_reader rd;
	struct outq out;

	const struct conf_route *route;
	const char *subprotocol;        /* borrowed from the route */
	char peer[64];
};

struct worker {
	unsigned index;
	struct server *srv;
	pthread_t thread;
	int epfd;
	int evfd;                       /* wake-up from other threads */
	int *listen_fds;
	size_t nlisten;
	int spare_fd;                   /* closed to accept+drop at EMFILE */

	struct conn *conns;             /* registry */
	size_t nconns;
	struct conn *dirty;
	struct conn *dead;
	uint64_t next_conn_seq;
	uint64_t now_ms;
	uint64_t next_sweep_ms;
	bool stopping;
	uint64_t stop_deadline_ms;
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

struct server {
	const struct conf *conf;
	struct worker *workers;
	unsigned nworkers;
	atomic_bool stop;
	struct server_stats stats;
};

/* --- conn.c: one connection's protocol logic (runs on its worker) --- */

/* Takes ownership of an accepted socket. Returns NULL (socket closed) if
 * memory runs out. */
struct conn *conn_new(struct worker *w, int fd, const struct sockaddr *peer);
/* Called when the socket is readable. */
void conn_on_readable(struct conn *c);
/* Called when the socket is writable (EPOLLOUT). */
void conn_on_writable(struct conn *c);
/* Writes what is queued (one writev); updates EPOLLOUT and backpressure. */
void conn_flush(struct conn *c);
/* Timer check: handshake, heartbeat and closing timeouts. */
void conn_check_timers(struct conn *c, uint64_t now_ms);
/* Starts a close handshake with code and reason (no-op if closing). */
void conn_close(struct conn *c, uint16_t code, const char *reason);
/* Drops the connection at once (no close handshake); freed by the loop. */
void conn_terminate(struct conn *c, const char *why);
/* Frees a DEAD connection (closes its fd). */
void conn_free(struct conn *c);
/* Queues a message (fragmented per fragment_size). Returns 0 or -1. */
int conn_send_message(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len);

/* --- worker.c: the event loop --- */

void worker_mark_dirty(struct worker *w, struct conn *c);
void worker_mark_dead(struct worker *w, struct conn *c);
/* Updates the epoll interest set of a connection. */
void worker_update_events(struct worker *w, struct conn *c);
void *worker_main(void *arg);
/* Wakes a worker's loop from another thread. */
void worker_wake(struct worker *w);

/* --- server.c: process-wide start and stop --- */

/* Creates listeners and workers and runs until SIGINT/SIGTERM; returns the
 * process exit status. */
int server_run(const struct conf *conf);

uint64_t server_now_ms(void);

#endif
