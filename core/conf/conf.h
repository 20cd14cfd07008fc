/* conf — the configuration directory (conf.d/) and its parser.
 *
 * Files named *.conf are read in name order. The format is INI-like:
 *
 *   # comment
 *   [server]
 *   listen      = 0.0.0.0:8080      # may repeat
 *   max_payload = 1MiB
 *   ping_interval = 30s
 *
 *   [route echo]
 *   path   = /ws
 *   plugin = echo
 *
 * Every mistake is reported as "file:line: what is wrong" (an unknown key
 * gets a "did you mean"), and all mistakes are collected, not just the
 * first. The result is a plain struct owned by the caller (conf_free).
 * Not thread-safe; called at start-up and reload by the main thread.
 */
#ifndef MBGW_CONF_H
#define MBGW_CONF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/util_buf.h"
#include "util/util_log.h"

#define CONF_MAX_LISTEN 16
#define CONF_MAX_SUBPROTOCOLS 16
#define CONF_MAX_TYPES 16
#define CONF_MAX_ROUTES_PER_PATH 4   /* routes one connection can belong to */
#define CONF_SERVER_KEYS 36

/* Which compression overrides a route sets. */
#define CONF_RC_ENABLED 0x1u
#define CONF_RC_MEM_LEVEL 0x2u
#define CONF_RC_WINDOW_BITS 0x4u
#define CONF_RC_NO_CONTEXT_TAKEOVER 0x8u

/* Route message formats. */
#define CONF_FORMAT_JSON 0   /* "header+json": decoded and validated */
#define CONF_FORMAT_RAW 1    /* "raw": handed over exactly as received */

struct conf_listen {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls;            /* "listen = ADDR tls" */
	bool metrics;        /* "... metrics": serves /metrics and health only */
	bool proxy_protocol; /* "... proxy_protocol": PROXY v1/v2 header first */
	char text[80];       /* as written, for logs */
	char where[300];     /* file:line, for bind errors */
};

struct conf_route {
	char *name;
	char *path;
	char *plugin;
	char *subprotocols[CONF_MAX_SUBPROTOCOLS];
	size_t nsubprotocols;
	bool require_subprotocol;
	uint32_t format;                 /* CONF_FORMAT_* */
	char *types[CONF_MAX_TYPES];     /* message-type patterns; none = all */
	size_t ntypes;
	char *settings;                  /* JSON object text, "{}" if unset */
	bool reload_move;                /* reload = move (stateless plugins) */
	bool drop_client;                /* slow_consumer = drop_client */
	uint64_t drain_ms;               /* close delay when the route is removed */
	char *keep_headers[CONF_MAX_TYPES];  /* request headers kept for plugins */
	size_t nkeep_headers;
	char *origins;                   /* allowed Origin values; NULL: any */
	/* authentication at upgrade (core/edge/edge_auth.h) */
	char *auth;                      /* "basic, bearer, jwt" (any subset); NULL: none */
	char *auth_realm;
	char *auth_basic_file;
	char *auth_bearer_file;
	char *jwt_algorithms;
	char *jwt_secret_file;
	char *jwt_public_key;
	char *jwt_issuer;
	char *jwt_audience;
	uint64_t jwt_leeway_ms;
	bool jwt_exp_optional;
	char *auth_query_param;
	char *auth_cookie;
	bool allow_missing_origin;
	/* compression overrides; a bit of `compression_set` says which */
	bool compression;
	uint64_t compression_mem_level;
	uint64_t compression_window_bits;
	bool compression_no_context_takeover;
	uint32_t compression_set;        /* CONF_RC_* bits */
	char where[300];     /* file:line of the section header */
};

#define CONF_MAX_SERVER_NAMES 16

/* [tls] (the default certificate and the TLS policy) and [tls NAME]
 * (further certificates chosen by SNI). */
struct conf_tls {
	char *name;                      /* NULL for [tls] */
	char *certificate;               /* PEM chain */
	char *key;                       /* PEM private key */
	char *key_passphrase;
	char *key_passphrase_file;
	char *server_names[CONF_MAX_SERVER_NAMES];   /* [tls NAME]: exact or *.suffix */
	size_t nserver_names;
	/* policy: [tls] only */
	char *min_version;               /* "1.2" (default) or "1.3" */
	char *ciphers;                   /* TLS 1.2 cipher list */
	char *ciphersuites;              /* TLS 1.3 suites */
	bool session_tickets;            /* default yes */
	char *client_auth;               /* off (default), optional, required */
	char *client_ca;                 /* file or directory */
	char where[300];
};

struct conf {
	struct conf_listen listen[CONF_MAX_LISTEN];
	size_t nlisten;
	uint64_t workers;            /* 0 = one per core */
	uint64_t backlog;
	uint64_t max_payload;
	uint64_t max_header_size;
	uint64_t max_headers;
	uint64_t handshake_timeout_ms;
	uint64_t close_timeout_ms;
	uint64_t ping_interval_ms;   /* 0 = no heartbeat */
	uint64_t pong_timeout_ms;
	uint64_t send_queue_limit;
	uint64_t fragment_size;      /* 0 = never fragment outgoing messages */
	uint64_t drain_timeout_ms;
	enum log_level log_level;
	char *plugin_dir;            /* NULL: the build's default */
	char *pid_file;              /* NULL: none */
	bool watch;                  /* reload when conf.d or plugins change */
	uint64_t max_message_header; /* longest header line of a message */
	char *cors_origins;          /* for the HTTP endpoints */
	bool access_log;             /* an info line per open and per close */
	bool log_json;               /* log_format = json */
	uint64_t max_connections;            /* 0: no limit */
	uint64_t max_connections_per_ip;
	uint64_t handshake_rate_per_ip;      /* token bucket, per second */
	uint64_t handshake_burst_per_ip;
	uint64_t message_rate;               /* per connection, per second */
	uint64_t message_burst;
	char *trusted_proxies;
	/* permessage-deflate (RFC 7692) defaults; routes may override */
	bool compression;
	uint64_t compression_threshold;
	uint64_t compression_level;
	uint64_t compression_mem_level;
	uint64_t compression_window_bits;         /* server_max_window_bits */
	uint64_t compression_client_window_bits;  /* client_max_window_bits asked */
	bool compression_no_context_takeover;     /* server_no_context_takeover */
	bool compression_client_no_context_takeover;

	struct conf_route *routes;
	size_t nroutes;
	struct conf_tls *tls;            /* [tls] first, then [tls NAME] sections */
	size_t ntls;

	/* parser bookkeeping: where each [server] key was first set, so a key
	 * set twice (in any file) is reported with both places */
	char server_seen_[CONF_SERVER_KEYS][300];
};

/* Fills c with the built-in defaults (no routes, no listeners). */
void conf_defaults(struct conf *c);

/* Reads every *.conf file of dir into c (which it first sets to the
 * defaults). Each error is appended to errs as one "file:line: message\n"
 * line. Returns the number of errors (0 on success). On error c is still
 * safe to conf_free. */
int conf_load_dir(const char *dir, struct conf *c, struct buf *errs);

/* Parses one file's text, as conf_load_dir does for each file (exposed for
 * tests and fuzzing). Call conf_finish after the last file. */
int conf_parse_text(struct conf *c, const char *file, const char *text, size_t len, struct buf *errs);
/* Applies defaults that depend on the whole directory and checks
 * cross-file rules (at least one route, unique paths). Returns errors. */
int conf_finish(struct conf *c, const char *dir, struct buf *errs);

void conf_free(struct conf *c);

/* Finds the route serving `path` (exact match), or NULL. */
const struct conf_route *conf_route_for_path(const struct conf *c, const char *path, size_t n);

/* Parses "host:port", "[v6]:port", "*:port" or "port", optionally followed
 * by " tls", into l. Returns false with a reason in why. */
bool conf_parse_listen(const char *s, struct conf_listen *l, const char **why);

/* Levenshtein distance, for "did you mean" hints. */
size_t conf_edit_distance(const char *a, const char *b);

#endif
