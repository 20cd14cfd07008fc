/* mbgw/client.h — libmbgw-client, a WebSocket client (RFC 6455, RFC 7692)
 * for mbgw and any other WebSocket server.
 *
 * What it does: connects to ws:// and wss:// URLs (IPv4, IPv6, DNS),
 * optionally through an HTTP proxy (CONNECT), with TLS certificate
 * validation on by default; offers subprotocols and permessage-deflate;
 * frames, masks, fragments, reassembles and validates messages; answers
 * pings, sends heartbeats and detects dead connections; reconnects with
 * backoff and jitter; and has helpers for mbgw's "header\nJSON" messages
 * with request/response correlation by `id`.
 *
 * Two ways to use it (docs/client.md has both as complete programs):
 *
 *   Blocking, for simple programs: the library runs its own poll() loop.
 *
 *       struct mbgw_client_options o;
 *       mbgw_client_options_init(&o);
 *       o.url = "ws://127.0.0.1:8080/ws";
 *       struct mbgw_client *c;
 *       char err[256];
 *       if (mbgw_client_new(&o, &c, err, sizeof err) < 0) ...
 *       if (mbgw_client_open(c, 5000) < 0)
 *               fprintf(stderr, "%s\n", mbgw_client_last_error(c));
 *       mbgw_client_send(c, MBGW_CLIENT_TEXT, "hello", 5);
 *       int type; void *data; size_t len;
 *       if (mbgw_client_recv(c, &type, &data, &len, 5000) == 0) { ...; free(data); }
 *       mbgw_client_close(c, 1000, "bye", 2000);
 *       mbgw_client_free(c);
 *
 *   Embedded in the application's own loop: the application polls
 *   mbgw_client_fd() for mbgw_client_events() with at most
 *   mbgw_client_timeout() milliseconds, then calls mbgw_client_step(),
 *   which does whatever I/O and timers are due and runs the callbacks.
 *
 * ---------------------------------------------------------------------
 * Rules that hold for every function below
 *
 *  Errors. Functions that act return 0 (MBGW_CLIENT_OK) on success or a
 *  negative MBGW_C_E_* code; the list is at the end of this comment and
 *  codes are never renumbered (new ones are appended).
 *  mbgw_client_strerror() names a code; mbgw_client_last_error() gives the
 *  detailed reason of the last failure of one client ("connection
 *  refused", "certificate has expired", "server answered 404 Not Found").
 *
 *  Ownership. Every pointer passed IN is borrowed for the duration of the
 *  call (the library copies what it keeps, including every string of
 *  struct mbgw_client_options). Pointers passed to callbacks are borrowed
 *  for the duration of the callback. Buffers returned through `void **`
 *  out-parameters are new, allocated with malloc(), followed by a NUL byte
 *  not counted in their length, and released by the caller with free().
 *
 *  Threads. A client is not thread-safe: all calls about one client must
 *  come from one thread at a time (typically the thread running its
 *  loop). Different clients may be used on different threads at the same
 *  time. mbgw_client_strerror() and the message helpers
 *  (mbgw_client_msg_*) are pure and may be called from any thread.
 *
 *  Callbacks. Callbacks run only inside mbgw_client_step() (and the
 *  blocking functions, which call it), on the calling thread. A callback
 *  may call any function of this header for its client except
 *  mbgw_client_free() and the blocking functions (mbgw_client_open,
 *  mbgw_client_run, mbgw_client_recv, mbgw_client_request,
 *  mbgw_client_close with a timeout), which return MBGW_C_E_STATE there.
 *
 *  Time. Timeouts are in milliseconds; a negative timeout means "no
 *  limit" where a function says so.
 *
 * ---------------------------------------------------------------------
 * Reconnection policy (options.reconnect = 1)
 *
 *  Triggers: a failed connection attempt (DNS, TCP, proxy, TLS, a 5xx,
 *  408 or 429 answer to the upgrade, a handshake timeout), a connection
 *  lost without a close handshake (1006: reset, EOF), a heartbeat timeout,
 *  and a close by the server with 1001 (going away), 1011, 1012, 1013 or
 *  1014. Not triggers: a close the application asked for, and a close by
 *  the server with 1000 or a code that says retrying cannot help (1002,
 *  1003, 1007, 1008, 1009, 1010, 3000-4999) — unless
 *  options.reconnect_on_close is set, which reconnects after any close
 *  the server starts. A 4xx answer other than 408 and 429 (e.g. 401,
 *  404) or an invalid 101 answer is never retried; nor is a TLS
 *  certificate failure (it will not fix itself).
 *
 *  Delay before attempt n (n = 1, 2, ... counted since the last
 *  successful open): d = min(backoff_max_ms, backoff_initial_ms * 2^(n-1)),
 *  then a uniformly random delay in [d/2, d] ("equal jitter", so that
 *  clients dropped together do not come back together). After
 *  max_attempts failed attempts in a row (0 = unlimited) the client gives
 *  up: state MBGW_CLIENT_CLOSED, on_close reports MBGW_C_E_GAVE_UP.
 *
 *  Callbacks: on_disconnect when an open connection is lost,
 *  on_reconnecting before each delay, on_open after each successful
 *  handshake (the first and every later one: re-subscribe there).
 *
 *  Queue: mbgw_client_send() while the client is not open (connecting,
 *  or waiting to reconnect) queues the message, up to queue_max_messages
 *  messages and queue_max_bytes bytes; beyond that send returns
 *  MBGW_C_E_QUEUE_FULL and the new message is dropped (the oldest are
 *  kept, order is preserved). After a successful handshake on_open runs
 *  FIRST (what it sends goes out first: authenticate, re-subscribe), then
 *  the queue is sent in order. When the client gives up or is closed by
 *  the application, queued messages are discarded. Messages already
 *  written to a connection that then fails are not resent: delivery is
 *  at most once, as WebSocket itself has no acknowledgements.
 *
 * ---------------------------------------------------------------------
 * Heartbeat
 *
 *  With ping_interval_ms > 0, a ping is sent when nothing has arrived
 *  for ping_interval_ms; if then nothing at all (pong or data) arrives
 *  within pong_timeout_ms, the connection is dead: it is dropped as 1006
 *  with the reason "heartbeat timeout" (and reconnected if enabled).
 *  Pings from the server are always answered with a pong.
 *
 * ---------------------------------------------------------------------
 * Versions: every function and field here appeared in 1.0 unless noted.
 */
#ifndef MBGW_CLIENT_H
#define MBGW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MBGW_CLIENT_API __attribute__((visibility("default")))
#else
#define MBGW_CLIENT_API
#endif

#define MBGW_CLIENT_VERSION_MAJOR 1
#define MBGW_CLIENT_VERSION_MINOR 0

/* ------------------------------------------------------------------ */
/* Return codes. 0 is success; errors are negative and never renumbered. */

#define MBGW_CLIENT_OK 0
#define MBGW_C_E_INVAL -1        /* an argument is invalid (NULL, bad option, bad UTF-8 text) */
#define MBGW_C_E_NOMEM -2        /* out of memory */
#define MBGW_C_E_URL -3          /* the URL (or proxy URL) cannot be parsed or has a scheme we do not speak */
#define MBGW_C_E_RESOLVE -4      /* the host name could not be resolved */
#define MBGW_C_E_CONNECT -5      /* TCP connection failed (refused, unreachable, reset) */
#define MBGW_C_E_TIMEOUT -6      /* a deadline passed (connect, handshake, recv, request) */
#define MBGW_C_E_TLS -7          /* TLS failed: certificate not trusted/expired/wrong name, handshake error */
#define MBGW_C_E_PROXY -8        /* the HTTP proxy refused the tunnel or answered nonsense */
#define MBGW_C_E_PROXY_AUTH -9   /* the proxy wants (other) credentials: 407 */
#define MBGW_C_E_HANDSHAKE -10   /* the server did not accept the upgrade (status in mbgw_client_http_status) or answered an invalid 101 */
#define MBGW_C_E_PROTOCOL -11    /* the server broke RFC 6455/7692 (the connection was failed) */
#define MBGW_C_E_CLOSED -12      /* the connection is closed (or closing) */
#define MBGW_C_E_NOTCONN -13     /* not connected and nothing can be queued (never opened, or closed for good) */
#define MBGW_C_E_QUEUE_FULL -14  /* the queue for messages sent while disconnected is full: message dropped */
#define MBGW_C_E_TOOBIG -15      /* a ping payload exceeds 125 bytes */
#define MBGW_C_E_IO -16          /* a system call failed (details in mbgw_client_last_error) */
#define MBGW_C_E_AGAIN -17       /* nothing yet: try again later (no message within the timeout) */
#define MBGW_C_E_STATE -18       /* not allowed in this state (e.g. a blocking call inside a callback) */
#define MBGW_C_E_GAVE_UP -19     /* automatic reconnection made max_attempts attempts and gave up */
#define MBGW_C_E_NOTFOUND -20    /* no such attribute / header (message helpers) */
#define MBGW_C_E_RANGE -21       /* the caller's buffer is too small; nothing was written */

/* A static English sentence for a code (any thread). Unknown codes give
 * "unknown error". */
MBGW_CLIENT_API const char *mbgw_client_strerror(int rc);

/* ------------------------------------------------------------------ */
/* Types */

/* Message types (the WebSocket opcodes of data frames). */
#define MBGW_CLIENT_TEXT 1
#define MBGW_CLIENT_BINARY 2

/* Client states, as mbgw_client_state() reports them. */
#define MBGW_CLIENT_IDLE 0          /* created, mbgw_client_connect() not called yet */
#define MBGW_CLIENT_CONNECTING 1    /* DNS, TCP, proxy, TLS or WebSocket handshake in progress */
#define MBGW_CLIENT_OPEN 2          /* messages flow */
#define MBGW_CLIENT_CLOSING 3       /* a close frame was sent; waiting for the server's */
#define MBGW_CLIENT_WAITING 4       /* disconnected, waiting for the next reconnection attempt */
#define MBGW_CLIENT_CLOSED 5        /* closed for good (by the application, the server, or giving up) */

struct mbgw_client;

/* Options. Initialise with mbgw_client_options_init() (it sets `size` and
 * the defaults), then set what you need. Every string is copied by
 * mbgw_client_new(). Fields are only ever appended: a program built
 * against an older header passes a smaller `size`, and the fields it does
 * not know keep their defaults. */
struct mbgw_client_options {
	uint32_t size;                  /* sizeof(struct mbgw_client_options) */
	const char *url;                /* ws://host[:port][/path][?query] or wss://...; required */
	const char *const *headers;     /* extra request headers, "Name: value" each (e.g. Authorization) */
	size_t nheaders;
	const char *const *subprotocols; /* offered, in order of preference */
	size_t nsubprotocols;
	int32_t compress;               /* offer permessage-deflate (default 0) */
	uint32_t compress_threshold;    /* compress outgoing messages of at least this size (default 64) */
	const char *proxy;              /* http://[user:pass@]host[:port]; NULL: from the environment
					 * (https_proxy for wss, http_proxy for ws, no_proxy honoured;
					 * upper-case names too); "" : never use a proxy */
	const char *ca_file;            /* PEM CA bundle; NULL: the system store */
	const char *ca_path;            /* hashed CA directory (optional) */
	const char *cert_file;          /* client certificate chain (PEM) for mutual TLS */
	const char *key_file;           /* its key (PEM); NULL: in cert_file */
	int32_t insecure;               /* 1: accept any certificate and host name (testing only!) */
	const char *server_name;        /* SNI and name to verify; NULL: the URL's host */
	int32_t connect_timeout_ms;     /* DNS+TCP+proxy+TLS+upgrade, per attempt (default 10000) */
	int32_t ping_interval_ms;       /* heartbeat; 0 = off (default 0) */
	int32_t pong_timeout_ms;        /* default 10000 */
	int32_t close_timeout_ms;       /* wait for the server's close frame (default 5000) */
	uint64_t max_message_size;      /* largest message accepted, after inflation (default 16 MiB);
					 * larger: the connection is failed with 1009 */
	uint32_t fragment_size;         /* outgoing messages larger than this go in several frames
					 * (default 0 = never fragment) */
	int32_t reconnect;              /* automatic reconnection (default 0), see the policy above */
	int32_t reconnect_on_close;     /* also after any close the server starts (default 0) */
	uint32_t backoff_initial_ms;    /* default 500 */
	uint32_t backoff_max_ms;        /* default 30000 */
	uint32_t max_attempts;          /* failed attempts in a row before giving up; 0 = unlimited (default 0) */
	uint32_t queue_max_messages;    /* messages queued while not open (default 1000; 0 = no queue) */
	uint64_t queue_max_bytes;       /* default 1 MiB */

	/* Callbacks, all optional (NULL); `ud` is userdata below. They run
	 * only inside mbgw_client_step() and the blocking calls (see the
	 * rules at the top). */
	/* The handshake succeeded (first connection and every reconnection). */
	void (*on_open)(struct mbgw_client *c, void *ud);
	/* A complete message (reassembled, inflated, UTF-8 checked for text).
	 * data is borrowed, followed by a NUL byte not counted in len. When
	 * on_message is NULL, messages are kept for mbgw_client_recv(). */
	void (*on_message)(struct mbgw_client *c, int type, const void *data, size_t len, void *ud);
	/* An open connection was lost or closed. code is the close code the
	 * server sent (1005 if none), or 1006 when the close handshake did
	 * not happen (reset, EOF, heartbeat timeout, or we failed the
	 * connection for a protocol error: mbgw_client_last_error() says
	 * which); reason is a NUL-terminated string (the server's close
	 * reason, or ours). will_reconnect is 1 if a reconnection follows. */
	void (*on_disconnect)(struct mbgw_client *c, int code, const char *reason, int will_reconnect,
			      void *ud);
	/* A reconnection attempt (1, 2, ...) will start in delay_ms.
	 * last_error is why the previous attempt or connection failed (0
	 * after a close by the server, e.g. 1001 going away). */
	void (*on_reconnecting)(struct mbgw_client *c, unsigned attempt, uint64_t delay_ms,
				int last_error, void *ud);
	/* The client is closed for good (state MBGW_CLIENT_CLOSED): rc is 0
	 * after a clean close (a completed close handshake, whoever began
	 * it, or mbgw_client_close() while not open), else why (e.g.
	 * MBGW_C_E_GAVE_UP, MBGW_C_E_TLS, MBGW_C_E_PROTOCOL). Called once
	 * each time the client becomes CLOSED. */
	void (*on_close)(struct mbgw_client *c, int rc, void *ud);
	/* A pong arrived (optional, for latency measurements). */
	void (*on_pong)(struct mbgw_client *c, const void *data, size_t len, void *ud);
	void *userdata;                 /* passed to every callback as `ud` */
	/* New fields are appended here, never inserted above. */
};

/* Fills o with the defaults above (url NULL, no callbacks). Any thread. */
MBGW_CLIENT_API void mbgw_client_options_init(struct mbgw_client_options *o);

/* ------------------------------------------------------------------ */
/* Life cycle */

/* Creates a client from options (borrowed: copied). Does no I/O; the URL
 * and proxy are parsed here so that mistakes show at once.
 * *out receives the new client, to be released with mbgw_client_free().
 * Returns 0, MBGW_C_E_INVAL (NULL argument, unknown options size,
 * out-of-range timeouts, malformed header or subprotocol, TLS files that
 * cannot be loaded — see errbuf), MBGW_C_E_URL (the URL, the proxy
 * option or a proxy environment variable), MBGW_C_E_IO (no random
 * source) or MBGW_C_E_NOMEM. When errbuf is not NULL it receives the
 * reason of a failure (NUL-terminated, at most errcap bytes). */
MBGW_CLIENT_API int mbgw_client_new(const struct mbgw_client_options *o, struct mbgw_client **out,
				    char *errbuf, size_t errcap);

/* Closes the socket at once (no close handshake: call mbgw_client_close()
 * first for a clean close), discards queued messages and pending
 * requests (their callbacks are NOT called) and frees everything. c may
 * be NULL. Never from inside a callback of c. */
MBGW_CLIENT_API void mbgw_client_free(struct mbgw_client *c);

/* Starts connecting (embedded style) and returns at once: an IP literal
 * gets a non-blocking TCP connection right away; a host name is first
 * resolved with getaddrinfo() on a short-lived helper thread (the only
 * thread the library ever starts; it touches nothing but its own job),
 * so that the caller's loop never blocks on DNS. Progress is made by
 * mbgw_client_step(). Allowed in IDLE and
 * CLOSED (a new session: the attempt counter is reset).
 * Returns 0 (connecting, or with reconnect on, waiting to retry after a
 * failed resolution), MBGW_C_E_STATE, or the error of an immediate
 * failure (MBGW_C_E_RESOLVE, MBGW_C_E_CONNECT ...) when reconnect is
 * off — then the client is CLOSED and on_close was called. */
MBGW_CLIENT_API int mbgw_client_connect(struct mbgw_client *c);

/* Current state, one of MBGW_CLIENT_IDLE ... MBGW_CLIENT_CLOSED. */
MBGW_CLIENT_API int mbgw_client_state(const struct mbgw_client *c);

/* ------------------------------------------------------------------ */
/* Embedded use: the application's loop */

/* The file descriptor to poll: the socket, or, while a host name is
 * being resolved, an eventfd that becomes readable when the lookup is
 * done; -1 when there is none (idle, waiting to reconnect, closed): then
 * only the timeout matters. Changes across phases and reconnections: ask
 * again after every step. */
MBGW_CLIENT_API int mbgw_client_fd(const struct mbgw_client *c);

/* poll(2) events to wait for on that socket (POLLIN and/or POLLOUT). */
MBGW_CLIENT_API short mbgw_client_events(const struct mbgw_client *c);

/* Milliseconds until the client has a timer due (heartbeat, connect or
 * close deadline, reconnection, request timeout): the longest the
 * application may wait before calling mbgw_client_step(). -1: no timer. */
MBGW_CLIENT_API int mbgw_client_timeout(const struct mbgw_client *c);

/* Does everything that is due: reads and writes what the socket allows
 * (revents are the poll(2) results for mbgw_client_fd(); 0 is fine, the
 * socket is non-blocking), advances the handshake, delivers messages,
 * runs timers and callbacks. Call it when the socket is ready or the
 * timeout expired; extra calls are harmless.
 * Returns 0 while the client lives (even if a connection just failed and
 * a reconnection is scheduled), or, once, the code with which it closed
 * for good (MBGW_C_E_CLOSED after a clean close; MBGW_C_E_CONNECT,
 * MBGW_C_E_TLS, MBGW_C_E_GAVE_UP ...); later calls in state CLOSED return
 * MBGW_C_E_CLOSED. */
MBGW_CLIENT_API int mbgw_client_step(struct mbgw_client *c, short revents);

/* ------------------------------------------------------------------ */
/* Blocking use: the library's own poll() loop. Not from callbacks. */

/* Connects (if IDLE or CLOSED) and runs the loop until the client is
 * OPEN, closed for good, or timeout_ms passes (negative: no limit).
 * Returns 0 when open; MBGW_C_E_TIMEOUT (the attempt goes on: call again
 * or mbgw_client_free()); or why it closed (MBGW_C_E_CONNECT,
 * MBGW_C_E_TLS, MBGW_C_E_HANDSHAKE, MBGW_C_E_GAVE_UP ...; details in
 * mbgw_client_last_error()). With reconnect on, failed attempts are
 * retried inside this call until the timeout. */
MBGW_CLIENT_API int mbgw_client_open(struct mbgw_client *c, int timeout_ms);

/* Runs the loop for timeout_ms (negative: until closed for good),
 * delivering messages to the callbacks. Returns 0 when the time is up,
 * or the code with which the client closed for good (MBGW_C_E_CLOSED
 * after a clean close). */
MBGW_CLIENT_API int mbgw_client_run(struct mbgw_client *c, int timeout_ms);

/* Takes the next received message (only when on_message is NULL: messages
 * are then kept in arrival order), running the loop up to timeout_ms
 * (0: only what is already there; negative: no limit). *type gets
 * MBGW_CLIENT_TEXT or MBGW_CLIENT_BINARY; *data a new buffer (free() it)
 * of *len bytes plus a NUL. Returns 0, MBGW_C_E_AGAIN (nothing within
 * the timeout), MBGW_C_E_STATE (on_message is set, or inside a
 * callback), or the code with which the client closed for good once no
 * message is left. While more than max(16 MiB, max_message_size) bytes of
 * messages wait to be taken, the client stops reading its socket (the
 * server then sees TCP backpressure) — and receives no pongs meanwhile. */
MBGW_CLIENT_API int mbgw_client_recv(struct mbgw_client *c, int *type, void **data, size_t *len,
				     int timeout_ms);

/* ------------------------------------------------------------------ */
/* Sending (any state but IDLE and CLOSED; never blocks) */

/* Sends one message (type MBGW_CLIENT_TEXT: data must be valid UTF-8, or
 * MBGW_CLIENT_BINARY). data is borrowed (copied). When OPEN, the frames
 * go to the write buffer at once and leave as the socket allows
 * (mbgw_client_step() flushes); otherwise the message is queued (see the
 * reconnection policy). The size is not limited here (max_message_size
 * is about what we accept; the server has its own limit and closes with
 * 1009 beyond it). Returns 0, MBGW_C_E_INVAL (bad type, text not
 * UTF-8), MBGW_C_E_QUEUE_FULL, MBGW_C_E_CLOSED (closing), MBGW_C_E_NOTCONN
 * (idle or closed for good), MBGW_C_E_NOMEM, MBGW_C_E_IO (the compressor
 * failed). */
MBGW_CLIENT_API int mbgw_client_send(struct mbgw_client *c, int type, const void *data, size_t len);

/* Sends a ping with up to 125 bytes of data (only when OPEN). Returns 0,
 * MBGW_C_E_TOOBIG, MBGW_C_E_NOTCONN, MBGW_C_E_NOMEM. */
MBGW_CLIENT_API int mbgw_client_ping(struct mbgw_client *c, const void *data, size_t len);

/* Bytes written to the client's buffers but not yet to the socket
 * (backpressure: stop producing while this grows). */
MBGW_CLIENT_API size_t mbgw_client_pending(const struct mbgw_client *c);

/* Starts the close handshake with code (1000 normally; any code a peer
 * may send is accepted: 1000-1003, 1007-1014, 3000-4999) and a reason
 * of at most 123 bytes of UTF-8 (NULL: none). Automatic reconnection
 * stops. With timeout_ms != 0 (blocking style, not from a callback) the
 * loop runs until the server's close frame and TCP close arrive or the
 * time is up (then the socket is closed anyway); with 0 the handshake
 * completes in later steps (close_timeout_ms bounds it). When the client
 * is not open it just becomes CLOSED. Returns 0, MBGW_C_E_INVAL (bad
 * code, reason too long or not UTF-8), MBGW_C_E_STATE (a timeout given
 * inside a callback; nothing done), MBGW_C_E_TIMEOUT (the server did
 * not complete the close handshake within timeout_ms or
 * close_timeout_ms, whichever came first; closed anyway),
 * MBGW_C_E_NOMEM. */
MBGW_CLIENT_API int mbgw_client_close(struct mbgw_client *c, int code, const char *reason,
				      int timeout_ms);

/* ------------------------------------------------------------------ */
/* What happened */

/* The detailed reason of the last failure (connection attempt, protocol
 * error, close), e.g. "connect to 127.0.0.1:9: connection refused",
 * "TLS: certificate verify failed: certificate has expired",
 * "server answered 404 Not Found". Empty when none. Valid until the next
 * call on c. */
MBGW_CLIENT_API const char *mbgw_client_last_error(const struct mbgw_client *c);

/* The HTTP status of the last upgrade answer (101 when open; e.g. 404
 * when refused), or 0 before any answer. */
MBGW_CLIENT_API int mbgw_client_http_status(const struct mbgw_client *c);

/* The subprotocol the server chose, or NULL (none). Valid while open. */
MBGW_CLIENT_API const char *mbgw_client_subprotocol(const struct mbgw_client *c);

/* The agreed Sec-WebSocket-Extensions value (e.g. "permessage-deflate;
 * server_no_context_takeover"), or NULL (none). Valid while open. */
MBGW_CLIENT_API const char *mbgw_client_extensions(const struct mbgw_client *c);

/* The close code and reason of the last connection that ended (1005: no
 * code; 1006: no close frame), 0 before any. reason may be NULL. */
MBGW_CLIENT_API int mbgw_client_close_code(const struct mbgw_client *c, const char **reason);

/* Successful handshakes since mbgw_client_new() (1 after the first open;
 * 2 after the first reconnection ...) and connection attempts started. */
MBGW_CLIENT_API unsigned mbgw_client_connections(const struct mbgw_client *c);
MBGW_CLIENT_API unsigned mbgw_client_attempts(const struct mbgw_client *c);

/* ------------------------------------------------------------------ */
/* mbgw messages: "<type> [key=value ...]\n<payload>" (docs/protocol.md) */

/* Builds "type[ id=<id>]\n<json>" into a new buffer (free() it).
 * type: printable ASCII without spaces; id may be NULL; json is put as is
 * (NULL: "{}"). Returns 0, MBGW_C_E_INVAL or MBGW_C_E_NOMEM. Any thread. */
MBGW_CLIENT_API int mbgw_client_msg_build(const char *type, const char *id, const char *json,
					  char **out, size_t *out_len);

/* A parsed message: pointers into the caller's buffer (borrowed). */
struct mbgw_client_msg {
	const char *header;     /* the header line, header_len bytes (no '\n') */
	size_t header_len;
	const char *type;       /* the first token of the header */
	size_t type_len;
	const char *payload;    /* what follows the '\n' */
	size_t payload_len;
};

/* Splits data into header and payload (no copy, no allocation). Returns
 * 0, or MBGW_C_E_INVAL when there is no '\n' or the header is empty or
 * not printable ASCII. Any thread. */
MBGW_CLIENT_API int mbgw_client_msg_parse(const void *data, size_t len, struct mbgw_client_msg *m);

/* Copies the value of attribute `key` of m's header (e.g. "id") into
 * buf (cap bytes, NUL-terminated). Returns 0, MBGW_C_E_NOTFOUND or
 * MBGW_C_E_RANGE. Any thread. */
MBGW_CLIENT_API int mbgw_client_msg_attr(const struct mbgw_client_msg *m, const char *key, char *buf,
					 size_t cap);

/* Called once per request: rc 0 with the reply (data borrowed, NUL after
 * len), or rc MBGW_C_E_TIMEOUT (no reply in time), MBGW_C_E_CLOSED (the
 * client was closed for good) with data NULL. */
typedef void (*mbgw_client_reply_cb)(struct mbgw_client *c, int rc, const void *data, size_t len,
				     void *arg);

/* Sends "type id=<n>\n<json>" as a text message with a fresh id
 * (1, 2, ... per client) and calls cb with the first text message whose
 * header carries that id (an `error id=<n>` answer included: look at the
 * type), or with MBGW_C_E_TIMEOUT after timeout_ms (must be > 0). The
 * reply is given to cb only, not to on_message / recv. A request sent
 * while disconnected is queued like any message and its timeout runs
 * meanwhile. *id_out (if not NULL) receives the id. If the send fails,
 * cb is never called. Returns 0 or the error of mbgw_client_send(). */
MBGW_CLIENT_API int mbgw_client_request_async(struct mbgw_client *c, const char *type, const char *json,
					      int timeout_ms, mbgw_client_reply_cb cb, void *arg,
					      uint64_t *id_out);

/* Blocking request: like mbgw_client_request_async, then runs the loop
 * until the reply (0: *reply is a new buffer, free() it; *reply_len its
 * size) or MBGW_C_E_TIMEOUT, or the client closes for good. Other
 * messages meanwhile go to on_message or the recv queue as usual. Not
 * from callbacks. */
MBGW_CLIENT_API int mbgw_client_request(struct mbgw_client *c, const char *type, const char *json,
					int timeout_ms, char **reply, size_t *reply_len);

#ifdef __cplusplus
}
#endif

#endif
