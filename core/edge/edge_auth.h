/* edge_auth — who may connect: HTTP authentication at the upgrade.
 *
 * Stage "HTTP upgrade" of the message path, between the parsed request
 * (http_parser) and the WebSocket handshake answer: decides whether the
 * client's credentials let it in, and who it is. Three methods, any of
 * which a route may allow:
 *
 *   basic   Authorization: Basic, checked against an htpasswd-style file of
 *           crypt(3) hashes (yescrypt, bcrypt, sha512crypt ...; plain text
 *           and weak legacy hashes are refused when the file is loaded).
 *   bearer  Authorization: Bearer, checked against a file of opaque tokens
 *           (constant-time comparison of SHA-256 digests).
 *   jwt     Authorization: Bearer carrying a JWT (RFC 7519), verified by
 *           libjwt with the configured key only; the accepted algorithms
 *           come from the configuration, never from the token ("none" and
 *           HS/RS key confusion are impossible), and exp, nbf (with a
 *           leeway), iss and aud are checked.
 *
 * Browsers cannot set headers on a WebSocket, so a bearer token or JWT may
 * also come from a query parameter (percent-decoded) or a cookie, when
 * configured. The Authorization header, when present, always wins.
 *
 * Two phases, as everywhere in the core: edge_auth_load() reads and checks
 * every file once (start-up or reload, main thread) and builds an
 * immutable `struct edge_auth`; edge_auth_check() is then a pure function
 * of (loaded state, request, time), safe to call from any number of worker
 * threads at once on the same state. No I/O happens after load.
 *
 * Refusals carry two texts: `reason`, precise and meant for the log only
 * (it may name users and times, never secrets), and `www_authenticate`, the
 * header value for the client, which says nothing about why.
 *
 * Design notes and measured costs: docs/auth.md.
 */
#ifndef MBGW_EDGE_AUTH_H
#define MBGW_EDGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http/http_parser.h"

/* Methods, or-ed together in edge_auth_config.methods. */
#define EDGE_AUTH_BASIC  0x1u
#define EDGE_AUTH_BEARER 0x2u
#define EDGE_AUTH_JWT    0x4u

#define EDGE_AUTH_DEFAULT_LEEWAY 60     /* seconds; what conf should default to */
#define EDGE_AUTH_MAX_LEEWAY 86400
#define EDGE_AUTH_IDENTITY_MAX 256      /* identity[] size, NUL included */
#define EDGE_AUTH_TOKEN_MAX 8192        /* longest bearer token or JWT accepted */

/* What the configuration says, as plain strings. Every pointer is borrowed
 * for the duration of edge_auth_load() only (the loaded state keeps its own
 * copies). A NULL or empty string means "not set". Setting something that
 * no enabled method uses (a basic_file without EDGE_AUTH_BASIC, a cookie
 * without bearer or jwt ...) is a load error, so mistakes do not pass
 * silently. */
struct edge_auth_config {
	uint32_t methods;            /* EDGE_AUTH_* or-ed; at least one */
	const char *realm;           /* WWW-Authenticate realm; "mbgw" if unset; at most 64
	                              * printable characters, no '"' or '\' */

	/* basic: "user:hash" lines, '#' comments and blank lines allowed. */
	const char *basic_file;

	/* bearer: one token per line, optionally followed by blanks and a
	 * subject (the identity); '#' comments and blank lines allowed.
	 * Tokens are 16..EDGE_AUTH_TOKEN_MAX characters of RFC 6750's
	 * b64token alphabet (A-Z a-z 0-9 - . _ ~ + / and trailing =). */
	const char *bearer_file;

	/* jwt */
	const char *jwt_algorithms;  /* e.g. "RS256" or "HS256, ES256": the only algorithms
	                              * accepted; "none" is refused */
	const char *jwt_secret_file; /* HS*: the shared secret, the whole file (one trailing
	                              * newline dropped), at least as long as the hash (32
	                              * bytes for HS256) */
	const char *jwt_public_key;  /* RS*, ES*: PEM public key or certificate */
	const char *jwt_issuer;      /* when set, "iss" must equal it */
	const char *jwt_audience;    /* when set, "aud" (string or array) must contain it */
	uint32_t jwt_leeway_s;       /* clock skew allowed for exp and nbf, at most
	                              * EDGE_AUTH_MAX_LEEWAY; conf defaults it to
	                              * EDGE_AUTH_DEFAULT_LEEWAY */
	bool jwt_exp_optional;       /* false (default): a JWT without "exp" is refused */

	/* Where a bearer token or JWT may come from besides Authorization. */
	const char *token_query_param; /* e.g. "access_token" */
	const char *token_cookie;      /* e.g. "mbgw_token" */
};

/* Loaded state: parsed files, digests, keys. Immutable after load;
 * shared by all worker threads without locks. */
struct edge_auth;

/* Reads and checks every file the configuration names and builds the
 * loaded state. Returns 0 and *out (returned new; edge_auth_free) on
 * success; on failure *out is NULL, err receives one line saying what is
 * wrong and where ("/etc/mbgw/users:3: plain-text password for 'bob' ...")
 * and the result is MBGW_E_INVAL (configuration or file content),
 * MBGW_E_NOTFOUND (a file cannot be read) or MBGW_E_NOMEM.
 * Main thread (start-up, reload); reads files, nothing else. */
int edge_auth_load(const struct edge_auth_config *cfg, struct edge_auth **out, char *err,
		   size_t errcap);

/* Frees the loaded state (NULL is fine). Secrets are wiped first. Only
 * once no thread is inside edge_auth_check() with it. */
void edge_auth_free(struct edge_auth *a);

struct edge_auth_result {
	int status;                 /* 0 accepted; 401 refused; 400 malformed credentials;
	                             * 500 internal failure (out of memory) */
	char identity[EDGE_AUTH_IDENTITY_MAX]; /* on success: the user name, the bearer
	                             * token's subject, or the JWT's "sub"; may be empty
	                             * (a token without subject, a JWT without sub) */
	char *claims_json;          /* on JWT success: the claims as compact JSON, returned
	                             * new (caller frees with free()); NULL otherwise */
	const char *method;         /* "basic", "bearer", "jwt" (static), or NULL when no
	                             * credentials were found */
	char reason[200];           /* for the LOG only, never for the client: why it was
	                             * refused; on success, where the credentials came from */
	char www_authenticate[256]; /* for a 400/401: the WWW-Authenticate header value */
};

/* Judges the credentials of a parsed request at time `now` (seconds since
 * the epoch; exp/nbf are compared against it). Fills every field of *res
 * and returns res->status: 0 when the client is let in, 401 (missing or
 * wrong credentials), 400 (credentials that are not even well-formed:
 * bad base64, no ':', empty token, bad percent-encoding, two
 * Authorization headers ...) or 500 (allocation failure). `a` and `req`
 * are borrowed. Any thread, concurrently on the same `a`. Cost: see
 * docs/auth.md — a Basic check costs what its hash costs (milliseconds). */
int edge_auth_check(const struct edge_auth *a, const struct http_request *req, time_t now,
		    struct edge_auth_result *res);

/* The methods the loaded state accepts (EDGE_AUTH_* bits). Any thread. */
uint32_t edge_auth_methods(const struct edge_auth *a);

#endif
