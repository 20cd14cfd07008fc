/* mbgw/plugin.h — the mbgw plugin ABI, version 1.
 *
 * A plugin is a shared object (.so) that exports exactly one symbol,
 * MBGW_PLUGIN_ENTRY (mbgw_plugin_v1). The host calls it once after loading
 * the file; the plugin returns a description of itself and its callbacks.
 * Everything the plugin may ask of the host comes through the table of
 * host functions passed to its init callback: a plugin never links against
 * the daemon.
 *
 *     #include <mbgw/plugin.h>
 *
 *     static void on_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
 *     {
 *             host->send(conn, m->opcode, m->data, m->data_len);
 *     }
 *     MBGW_PLUGIN_DEFINE(.name = "echo", .version = "1.0", .init = on_init,
 *                        .message = on_message);
 *
 * ---------------------------------------------------------------------
 * Compatibility rules (how this header evolves)
 *  - Structures start with their size and only ever grow at the end; a
 *    field, once published, never moves or changes type. A retired field
 *    becomes `reserved`.
 *  - The host reads only the part of struct mbgw_plugin that the plugin
 *    was built with (its `size`); a plugin reads only the part of
 *    struct mbgw_host that the host offers (its `size`, see
 *    MBGW_HOST_HAS()). So a plugin built against SDK 1.0 keeps loading in
 *    every 1.x host, and a newer plugin can detect older hosts.
 *  - A new major version gets a new entry symbol (mbgw_plugin_v2); a host
 *    refuses, with a log line, a plugin whose major version it lacks.
 *  - Only fixed-width integers, pointer + length pairs and function
 *    pointers cross the boundary: no enums as fields, no bitfields, no
 *    structs by value.
 *
 * Memory and ownership
 *  - Every pointer the host passes into a callback is BORROWED for that
 *    callback only. Copy what you want to keep.
 *  - Every buffer a plugin passes to a host function is BORROWED for that
 *    call only: the host copies what it needs before returning.
 *  - Connections are named by ids (mbgw_conn_id), never pointers. An id is
 *    never reused; using the id of a connection that has gone returns
 *    MBGW_E_NOCONN instead of crashing.
 *
 * Threads
 *  - The host runs several worker threads. All callbacks about one
 *    connection (verify is the exception, see below; open, message, close)
 *    run on that connection's worker, one at a time and in order.
 *    Callbacks about DIFFERENT connections may run at the same time on
 *    different threads: state shared across connections must be protected
 *    by the plugin (or kept per connection with set_udata).
 *  - Host functions that take a connection id may be called from any
 *    thread, including threads the plugin creates. Called from the
 *    connection's own worker, they act at once and report the outcome;
 *    from another thread the request is queued to that worker and the
 *    return value only says it was queued.
 *  - Timer callbacks run on a worker thread, never concurrently with each
 *    other for the same plugin instance.
 *  - init and shutdown run on the main thread while no other callback of
 *    this instance is running.
 */
#ifndef MBGW_PLUGIN_H
#define MBGW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version this header describes. */
#define MBGW_ABI_MAJOR 1
#define MBGW_ABI_MINOR 1

/* The entry symbol, with the major version in its name. */
#define MBGW_PLUGIN_ENTRY mbgw_plugin_v1
#define MBGW_PLUGIN_ENTRY_NAME "mbgw_plugin_v1"

#if defined(__GNUC__)
#define MBGW_EXPORT __attribute__((visibility("default")))
#else
#define MBGW_EXPORT
#endif

/* ------------------------------------------------------------------ */
/* Return codes. 0 is success; errors are negative and never renumbered. */

#define MBGW_OK 0
#define MBGW_E_INVAL -1    /* an argument is invalid (NULL, bad opcode, bad UTF-8 ...) */
#define MBGW_E_NOCONN -2   /* no such connection: it has closed, or never existed */
#define MBGW_E_CLOSING -3  /* the connection is closing and accepts no more messages */
#define MBGW_E_AGAIN -4    /* backpressure: the client's send queue is full; the message was not queued */
#define MBGW_E_NOMEM -5    /* out of memory */
#define MBGW_E_TOOBIG -6   /* larger than the host accepts (e.g. control payload > 125) */
#define MBGW_E_NOTFOUND -7 /* no such header, attribute, timer or group membership */
#define MBGW_E_RANGE -8    /* the caller's buffer is too small; nothing was written */
#define MBGW_E_THREAD -9   /* may only be called on the connection's worker thread */

/* ------------------------------------------------------------------ */
/* Basic types. */

/* A connection id: unique for the life of the process, never 0. */
typedef uint64_t mbgw_conn_id;

/* Message opcodes (the RFC 6455 values). */
#define MBGW_TEXT 1
#define MBGW_BINARY 2

/* Log levels for host->log. */
#define MBGW_LOG_ERROR 0
#define MBGW_LOG_WARN 1
#define MBGW_LOG_INFO 2
#define MBGW_LOG_DEBUG 3

/* One `key=value` attribute of a message header. */
struct mbgw_attr {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/* A message as a plugin receives it (all pointers borrowed).
 *
 * On a route with format "header+json" (the default) the host has split
 * the message "<header line>\n<payload>": `type` is the header's first
 * token, `attrs` its key=value tokens, `id` the value of the `id`
 * attribute (NULL if absent). For a text message `data` is the payload,
 * which is one valid JSON value (RFC 8259), and `json` the same value
 * parsed by the host's cJSON (a `const cJSON *`, for plugins that use
 * cJSON themselves; NULL for binary messages). For a binary message
 * `data` is the opaque payload after the newline.
 *
 * On a route with format "raw", the message is exactly what the client
 * sent: `data` is the whole message, and type/attrs/id/json are NULL/0. */
struct mbgw_message {
	uint32_t size;             /* sizeof(struct mbgw_message) of the host */
	uint32_t opcode;           /* MBGW_TEXT or MBGW_BINARY */
	const char *type;          /* not NUL-terminated; see type_len */
	size_t type_len;
	const char *header;        /* the whole header line, without '\n' */
	size_t header_len;
	const struct mbgw_attr *attrs;
	size_t nattrs;
	const char *id;
	size_t id_len;
	const uint8_t *data;
	size_t data_len;
	const void *json;          /* const cJSON *, or NULL */
};

/* The upgrade request, for the optional verify callback. */
struct mbgw_upgrade {
	uint32_t size;             /* sizeof(struct mbgw_upgrade) of the host */
	uint32_t reserved;
	const char *path;          /* NUL-terminated, without the query */
	const char *query;         /* NUL-terminated, "" if none */
	const char *remote_addr;   /* "ip:port" */
	const char *subprotocol;   /* the one selected, or NULL */
	/* Looks up a request header (case-insensitive name); returns the
	 * value (borrowed, not NUL-terminated) and its length in *len, or
	 * NULL if absent. */
	const char *(*header)(const struct mbgw_upgrade *req, const char *name, size_t *len);
	const void *host_private;
	/* Since 1.1 (check size): who the route's authentication (conf.d
	 * `auth`) accepted, NUL-terminated, or NULL when the route has none:
	 * the user name, token subject or JWT "sub"; the method ("basic",
	 * "bearer", "jwt"); and for a JWT its claims as a JSON object. */
	const char *identity;
	const char *auth_method;
	const char *auth_claims;
};

/* What verify answers: MBGW_OK to accept, or fill status (e.g. 401, 403)
 * and reason (a short static or plugin-owned string, copied by the host)
 * and return any negative value to refuse. */
struct mbgw_verdict {
	uint32_t size;
	uint32_t status;
	const char *reason;
};

/* An instance of a plugin: one per route that names it. Opaque. */
struct mbgw_instance;

/* ------------------------------------------------------------------ */
/* The host function table (passed to init; valid until shutdown returns). */

struct mbgw_host {
	uint32_t size;            /* sizeof(struct mbgw_host) as built into the host */
	uint32_t abi_minor;       /* MBGW_ABI_MINOR of the host */

	/* Text for a return code ("no such connection"). Never NULL. Since 1.0. */
	const char *(*strerror)(int err);

	/* Logs one line through the host's logger, tagged with the route and
	 * (if conn is not 0) the connection. Any thread. Since 1.0. */
	void (*log)(struct mbgw_instance *inst, int level, mbgw_conn_id conn, const char *fmt, ...)
		__attribute__((format(printf, 4, 5)));

	/* Sends a message (opcode MBGW_TEXT, which must be valid UTF-8, or
	 * MBGW_BINARY). Any thread. Returns MBGW_OK, MBGW_E_NOCONN,
	 * MBGW_E_CLOSING, MBGW_E_AGAIN (queue over send_queue_limit and the
	 * route's slow_consumer policy is drop_message; with drop_client the
	 * client is closed with 1008 and MBGW_E_CLOSING returned),
	 * MBGW_E_INVAL, MBGW_E_NOMEM. Since 1.0. */
	int (*send)(mbgw_conn_id conn, uint32_t opcode, const void *data, size_t len);

	/* Sends "<header>\n<json>" as a text message: header is a header line
	 * such as "chat.msg id=7" (printable ASCII, no newline); json one JSON
	 * value (or NULL for none). Same returns as send. Since 1.0. */
	int (*send_msg)(mbgw_conn_id conn, const char *header, const char *json);

	/* Answers a message with `error id=<its id>\n{"code":..,"message":..}`
	 * (the id attribute is copied when `about` has one). code is a short
	 * machine-readable token, message human-readable text; both are JSON
	 * escaped by the host. Same returns as send. Since 1.0. */
	int (*reply_error)(mbgw_conn_id conn, const struct mbgw_message *about,
			   const char *code, const char *message);

	/* Starts the close handshake with a code (1000, 1001, 1008, 1011,
	 * 3000-4999) and a reason (<= 123 bytes of UTF-8, may be NULL).
	 * Any thread. Returns MBGW_OK, MBGW_E_NOCONN, MBGW_E_INVAL. Since 1.0. */
	int (*close)(mbgw_conn_id conn, uint32_t code, const char *reason);

	/* Sends a message to every open connection of this instance's route,
	 * on every worker; encoded once and shared. Any thread. Returns the
	 * MBGW_OK or MBGW_E_NOMEM/MBGW_E_INVAL. Since 1.0. */
	int (*broadcast)(struct mbgw_instance *inst, uint32_t opcode, const void *data, size_t len);

	/* Named groups (topics) for publish/subscribe. Group names are
	 * 1..255 bytes, shared by every route of this server. A connection
	 * leaves all its groups when it closes. join/leave: any thread.
	 * Returns MBGW_OK, MBGW_E_NOCONN, MBGW_E_INVAL (bad name),
	 * MBGW_E_NOTFOUND (leave: not a member). Since 1.0. */
	int (*group_join)(mbgw_conn_id conn, const char *group);
	int (*group_leave)(mbgw_conn_id conn, const char *group);
	/* Sends a message to every member of a group, except `except` (0 for
	 * nobody), on every worker, encoded once. Each member receives each
	 * publication once, and publications from one thread arrive in the
	 * order they were made. Any thread. Since 1.0. */
	int (*group_publish)(const char *group, uint32_t opcode, const void *data, size_t len,
			     mbgw_conn_id except);

	/* Per-connection plugin data, e.g. a pointer to a session struct.
	 * Only on the connection's worker thread (else MBGW_E_THREAD): set in
	 * open or message, free it yourself in close. get returns NULL if
	 * unset or the connection is unknown. set returns MBGW_OK,
	 * MBGW_E_NOCONN, MBGW_E_THREAD, or MBGW_E_NOMEM (a route other than
	 * the connection's first: its slot is allocated on first use). Since
	 * 1.0. */
	int (*set_udata)(mbgw_conn_id conn, void *udata);
	void *(*get_udata)(mbgw_conn_id conn);

	/* Connection attributes, copied NUL-terminated into out[cap]:
	 * "path", "query", "subprotocol", "remote_addr", "route", "scheme"
	 * ("ws" or "wss"), "tls_client_subject" (a verified client
	 * certificate's subject), "identity", "auth_method" and "auth_claims"
	 * (what the route's authentication accepted; since 1.1), and
	 * "header:<Name>" for a request header the route keeps (route key
	 * keep_headers). Only on the
	 * connection's worker thread. Returns the length (>= 0),
	 * MBGW_E_NOTFOUND, MBGW_E_RANGE (out too small), MBGW_E_NOCONN,
	 * MBGW_E_THREAD. Since 1.0. */
	int (*conn_attr)(mbgw_conn_id conn, const char *name, char *out, size_t cap);

	/* Timers: cb(state, arg) runs after delay_ms and then every
	 * repeat_ms (0: once). Returns a timer id > 0, or a negative error.
	 * Any thread. Timers end at shutdown. Since 1.0. */
	int64_t (*timer_add)(struct mbgw_instance *inst, uint64_t delay_ms, uint64_t repeat_ms,
			     void (*cb)(void *state, void *arg), void *arg);
	int (*timer_cancel)(struct mbgw_instance *inst, int64_t timer_id);

	/* Adds delta to a named counter of this instance (shown in metrics
	 * as mbgw_plugin_counter{route="...",name="..."}). Any thread.
	 * Since 1.0. */
	int (*counter_add)(struct mbgw_instance *inst, const char *name, int64_t delta);

	/* New host functions are appended here. */
};

/* True if the host offers `field` (a member of struct mbgw_host). */
#define MBGW_HOST_HAS(host, field) \
	((host)->size >= offsetof(struct mbgw_host, field) + sizeof((host)->field) && (host)->field)

/* ------------------------------------------------------------------ */
/* The plugin's description, returned by the entry symbol. */

/* Flags. */
#define MBGW_PLUGIN_STATELESS 0x1u  /* open connections may move to a newly
                                       loaded instance at their next message
                                       on reload (see docs/plugins.md) */

struct mbgw_plugin {
	uint32_t size;          /* sizeof(struct mbgw_plugin): set by MBGW_PLUGIN_DEFINE */
	uint32_t abi_major;     /* MBGW_ABI_MAJOR */
	uint32_t abi_minor;     /* MBGW_ABI_MINOR the plugin was built against */
	uint32_t flags;         /* MBGW_PLUGIN_* */
	const char *name;       /* short name, e.g. "chat" */
	const char *version;    /* the plugin's own version, e.g. "1.2.0" */

	/* Every callback may be NULL. `state` is what init stored in *state. */

	/* Called once per route that uses the plugin, on the main thread.
	 * settings_json is the route's [route] settings as a JSON object text
	 * ("{}" if none). Store your instance state in *state. Return MBGW_OK,
	 * or a negative value and write a reason into err[errcap] (shown in
	 * the log and by `mbgw check`): the route, and a reload, then fail. */
	int (*init)(const struct mbgw_host *host, struct mbgw_instance *inst,
		    const char *settings_json, void **state, char *err, size_t errcap);

	/* Called once when the instance is retired (after its last connection
	 * has gone) or at exit, on the main thread. */
	void (*shutdown)(void *state);

	/* Optional upgrade verification, after the host's own checks and
	 * before the 101 answer, on the worker that accepted the connection.
	 * Return MBGW_OK to accept, or fill v->status/v->reason and return a
	 * negative value to refuse. The connection has no id yet. */
	int (*verify)(void *state, const struct mbgw_upgrade *req, struct mbgw_verdict *v);

	/* The connection is open (101 sent). */
	void (*open)(void *state, mbgw_conn_id conn);

	/* A message arrived (see struct mbgw_message). Return MBGW_OK; a
	 * negative value makes the host answer the client with an error reply
	 * of code "plugin_error" (the connection stays open). */
	int (*message)(void *state, mbgw_conn_id conn, const struct mbgw_message *msg);

	/* The connection has closed: code is the close code received or sent
	 * (1006 if the TCP connection broke without one), reason its UTF-8
	 * reason (may be empty). The id is invalid after this returns. */
	void (*close)(void *state, mbgw_conn_id conn, uint32_t code, const char *reason, size_t reason_len);

	/* New callbacks are appended here. */
};

/* The entry point every plugin exports. Returns the plugin's description
 * (static storage; the host never writes to it). host_abi_minor lets a
 * plugin built against a newer SDK adapt to an older host. */
typedef const struct mbgw_plugin *(*mbgw_plugin_entry_fn)(uint32_t host_abi_major, uint32_t host_abi_minor);

/* Defines the entry point from designated initialisers of struct
 * mbgw_plugin; size and ABI fields are filled in for you. */
#define MBGW_PLUGIN_DEFINE(...)                                                        \
	static const struct mbgw_plugin mbgw_plugin_desc_ = {                          \
		.size = sizeof(struct mbgw_plugin),                                    \
		.abi_major = MBGW_ABI_MAJOR,                                           \
		.abi_minor = MBGW_ABI_MINOR,                                           \
		__VA_ARGS__                                                            \
	};                                                                             \
	MBGW_EXPORT const struct mbgw_plugin *MBGW_PLUGIN_ENTRY(uint32_t host_abi_major, \
								uint32_t host_abi_minor); \
	MBGW_EXPORT const struct mbgw_plugin *MBGW_PLUGIN_ENTRY(uint32_t host_abi_major, \
								uint32_t host_abi_minor) \
	{                                                                              \
		(void)host_abi_major;                                                  \
		(void)host_abi_minor;                                                  \
		return &mbgw_plugin_desc_;                                             \
	}

#ifdef __cplusplus
}
#endif

#endif /* MBGW_PLUGIN_H */
