/* conf — see conf.h. */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "edge/edge_forwarded.h"
#include "util/util_units.h"

enum key_type { K_SIZE, K_DURATION, K_UINT, K_BOOL, K_LISTEN, K_LOGLEVEL, K_WORKERS,
		K_STRING, K_PATH, K_LIST, K_TYPES, K_FORMAT, K_RELOAD, K_SLOW, K_JSON, K_NAMES, K_HEADERS, K_LOGFORMAT };

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;        /* into struct conf or struct conf_route */
	uint64_t min, max;
	const char *hint;     /* example of a valid value */
};

#define S(field) offsetof(struct conf, field)
#define R(field) offsetof(struct conf_route, field)

static const struct key_def server_keys[] = {
	{ "listen", K_LISTEN, 0, 0, 0, "0.0.0.0:8080, [::]:8080 or 8080" },
	{ "workers", K_WORKERS, S(workers), 0, 256, "auto or a number of threads such as 4" },
	{ "backlog", K_UINT, S(backlog), 1, 1u << 20, "a number such as 1024" },
	{ "max_payload", K_SIZE, S(max_payload), 1, 1ULL << 40, "a size such as 1MiB" },
	{ "max_header_size", K_SIZE, S(max_header_size), 256, 1 << 20, "a size such as 8KiB" },
	{ "max_headers", K_UINT, S(max_headers), 4, 128, "a number such as 64" },
	{ "handshake_timeout", K_DURATION, S(handshake_timeout_ms), 1, 86400000, "a duration such as 10s" },
	{ "close_timeout", K_DURATION, S(close_timeout_ms), 1, 3600000, "a duration such as 5s" },
	{ "ping_interval", K_DURATION, S(ping_interval_ms), 0, 86400000, "a duration such as 30s (0 disables)" },
	{ "pong_timeout", K_DURATION, S(pong_timeout_ms), 1, 86400000, "a duration such as 10s" },
	{ "send_queue_limit", K_SIZE, S(send_queue_limit), 1024, 1ULL << 40, "a size such as 4MiB" },
	{ "fragment_size", K_SIZE, S(fragment_size), 0, 1ULL << 40, "a size such as 64KiB (0 disables)" },
	{ "drain_timeout", K_DURATION, S(drain_timeout_ms), 0, 3600000, "a duration such as 10s" },
	{ "log_level", K_LOGLEVEL, S(log_level), 0, 0, "error, warn, info or debug" },
	{ "plugin_dir", K_STRING, S(plugin_dir), 0, 0, "a directory such as /usr/lib/mbgw/plugins" },
	{ "pid_file", K_STRING, S(pid_file), 0, 0, "a file such as /run/mbgw.pid" },
	{ "watch", K_BOOL, S(watch), 0, 0, "yes or no" },
	{ "max_message_header", K_SIZE, S(max_message_header), 16, 65536, "a size such as 1KiB" },
	{ "access_log", K_BOOL, S(access_log), 0, 0, "yes or no" },
	{ "log_format", K_LOGFORMAT, S(log_json), 0, 0, "text or json" },
	{ "cors_origins", K_STRING, S(cors_origins), 0, 0, "origins allowed to read /metrics, /healthz and /readyz, such as https://ops.example.com or *" },
	{ "max_connections", K_UINT, S(max_connections), 0, 100000000, "a number (0: no limit)" },
	{ "max_connections_per_ip", K_UINT, S(max_connections_per_ip), 0, 100000000, "a number (0: no limit)" },
	{ "handshake_rate_per_ip", K_UINT, S(handshake_rate_per_ip), 0, 1000000, "upgrades per second per client address (0: no limit)" },
	{ "handshake_burst_per_ip", K_UINT, S(handshake_burst_per_ip), 1, 1000000, "a number such as 20" },
	{ "message_rate", K_UINT, S(message_rate), 0, 100000000, "messages per second per connection (0: no limit)" },
	{ "message_burst", K_UINT, S(message_burst), 1, 100000000, "a number such as 100" },
	{ "trusted_proxies", K_STRING, S(trusted_proxies), 0, 0, "addresses or CIDRs such as 127.0.0.1, 10.0.0.0/8" },
	{ "compression", K_BOOL, S(compression), 0, 0, "yes or no" },
	{ "compression_threshold", K_SIZE, S(compression_threshold), 0, 1ULL << 30, "a size such as 1KiB" },
	{ "compression_level", K_UINT, S(compression_level), 0, 9, "a zlib level from 0 to 9" },
	{ "compression_mem_level", K_UINT, S(compression_mem_level), 1, 9, "a zlib memLevel from 1 to 9" },
	{ "compression_window_bits", K_UINT, S(compression_window_bits), 8, 15, "8 to 15" },
	{ "compression_client_window_bits", K_UINT, S(compression_client_window_bits), 8, 15, "8 to 15" },
	{ "compression_no_context_takeover", K_BOOL, S(compression_no_context_takeover), 0, 0, "yes or no" },
	{ "compression_client_no_context_takeover", K_BOOL, S(compression_client_no_context_takeover), 0, 0, "yes or no" },
};

static const struct key_def route_keys[] = {
	{ "path", K_PATH, R(path), 0, 0, "an absolute path such as /ws" },
	{ "plugin", K_STRING, R(plugin), 0, 0, "a plugin name such as echo" },
	{ "subprotocols", K_LIST, R(subprotocols), 0, 0, "a comma-separated list such as chat.v1, chat.v0" },
	{ "require_subprotocol", K_BOOL, R(require_subprotocol), 0, 0, "yes or no" },
	{ "format", K_FORMAT, R(format), 0, 0, "header+json or raw" },
	{ "types", K_TYPES, R(types), 0, 0, "message-type patterns such as chat.send, chat.*" },
	{ "settings", K_JSON, R(settings), 0, 0, "a JSON object such as { \"rooms\": 10 }" },
	{ "reload", K_RELOAD, R(reload_move), 0, 0, "keep or move" },
	{ "slow_consumer", K_SLOW, R(drop_client), 0, 0, "drop_message or drop_client" },
	{ "drain", K_DURATION, R(drain_ms), 0, 86400000, "a duration such as 30s" },
	{ "keep_headers", K_HEADERS, R(keep_headers), 0, 0, "request header names such as User-Agent, X-Request-Id" },
	{ "origins", K_STRING, R(origins), 0, 0, "allowed Origin values such as https://example.com, https://*.example.com" },
	{ "allow_missing_origin", K_BOOL, R(allow_missing_origin), 0, 0, "yes or no" },
	{ "auth", K_STRING, R(auth), 0, 0, "basic, bearer and/or jwt, e.g. jwt" },
	{ "auth_realm", K_STRING, R(auth_realm), 0, 0, "a realm such as mbgw" },
	{ "auth_basic_file", K_STRING, R(auth_basic_file), 0, 0, "a file of user:crypt-hash lines" },
	{ "auth_bearer_file", K_STRING, R(auth_bearer_file), 0, 0, "a file of tokens, one per line" },
	{ "jwt_algorithms", K_STRING, R(jwt_algorithms), 0, 0, "e.g. RS256 or HS256, ES256" },
	{ "jwt_secret_file", K_STRING, R(jwt_secret_file), 0, 0, "a file holding the HS* secret" },
	{ "jwt_public_key", K_STRING, R(jwt_public_key), 0, 0, "a PEM public key or certificate" },
	{ "jwt_issuer", K_STRING, R(jwt_issuer), 0, 0, "the required iss" },
	{ "jwt_audience", K_STRING, R(jwt_audience), 0, 0, "the required aud" },
	{ "jwt_leeway", K_DURATION, R(jwt_leeway_ms), 0, 86400000, "a duration such as 60s" },
	{ "jwt_exp_optional", K_BOOL, R(jwt_exp_optional), 0, 0, "yes or no" },
	{ "auth_query_param", K_STRING, R(auth_query_param), 0, 0, "a query parameter such as access_token" },
	{ "auth_cookie", K_STRING, R(auth_cookie), 0, 0, "a cookie name such as mbgw_token" },
	{ "compression", K_BOOL, R(compression), 0, 0, "yes or no" },
	{ "compression_mem_level", K_UINT, R(compression_mem_level), 1, 9, "a zlib memLevel from 1 to 9" },
	{ "compression_window_bits", K_UINT, R(compression_window_bits), 8, 15, "8 to 15" },
	{ "compression_no_context_takeover", K_BOOL, R(compression_no_context_takeover), 0, 0, "yes or no" },
};

#define T(field) offsetof(struct conf_tls, field)
static const struct key_def tls_keys[] = {
	{ "certificate", K_STRING, T(certificate), 0, 0, "a PEM file with the certificate chain" },
	{ "key", K_STRING, T(key), 0, 0, "a PEM file with the private key" },
	{ "key_passphrase", K_STRING, T(key_passphrase), 0, 0, "the passphrase of an encrypted key" },
	{ "key_passphrase_file", K_STRING, T(key_passphrase_file), 0, 0, "a file holding the key's passphrase" },
	{ "server_names", K_NAMES, T(server_names), 0, 0, "host names such as example.com, *.example.org" },
	{ "min_version", K_STRING, T(min_version), 0, 0, "1.2 or 1.3" },
	{ "ciphers", K_STRING, T(ciphers), 0, 0, "an OpenSSL cipher list for TLS 1.2" },
	{ "ciphersuites", K_STRING, T(ciphersuites), 0, 0, "TLS 1.3 suites such as TLS_AES_128_GCM_SHA256" },
	{ "session_tickets", K_BOOL, T(session_tickets), 0, 0, "yes or no" },
	{ "client_auth", K_STRING, T(client_auth), 0, 0, "off, optional or required" },
	{ "client_ca", K_STRING, T(client_ca), 0, 0, "a PEM file or a directory of CA certificates" },
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NKEYS(tls_keys) <= 16, "tls_seen is too small");
_Static_assert(NKEYS(server_keys) == CONF_SERVER_KEYS, "CONF_SERVER_KEYS must match server_keys");


struct parser {
	struct conf *c;
	const char *file;
	int line;
	struct buf *errs;
	int nerr;
	enum { SEC_NONE, SEC_SERVER, SEC_ROUTE, SEC_TLS, SEC_BAD } section;
	struct conf_route *route;       /* current route section */
	struct conf_tls *tls;           /* current tls section */
	char tls_seen[16][300];
	char route_seen[NKEYS(route_keys)][300];
};

static void err_at(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_at(struct parser *ps, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char line[1400];
	int n = snprintf(line, sizeof line, "%s:%d: %s\n", ps->file, ps->line, msg);
	if (n > 0)
		buf_append(ps->errs, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	ps->nerr++;
}

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	c->workers = 0;
	c->backlog = 1024;
	c->max_payload = 1024 * 1024;
	c->max_header_size = 8 * 1024;
	c->max_headers = 64;
	c->handshake_timeout_ms = 10000;
	c->close_timeout_ms = 5000;
	c->ping_interval_ms = 30000;
	c->pong_timeout_ms = 10000;
	c->send_queue_limit = 4 * 1024 * 1024;
	c->fragment_size = 64 * 1024;
	c->drain_timeout_ms = 10000;
	c->log_level = LOG_INFO;
	c->max_message_header = 1024;
	c->access_log = true;
	c->handshake_burst_per_ip = 20;
	c->message_burst = 100;
	c->compression = true;
	c->compression_threshold = 1024;
	c->compression_level = 1;
	c->compression_mem_level = 8;
	c->compression_window_bits = 15;
	c->compression_client_window_bits = 15;
}

static void route_free(struct conf_route *r)
{
	free(r->name);
	free(r->path);
	free(r->plugin);
	free(r->settings);
	free(r->origins);
	char **auth_strs[] = { &r->auth, &r->auth_realm, &r->auth_basic_file, &r->auth_bearer_file,
			       &r->jwt_algorithms, &r->jwt_secret_file, &r->jwt_public_key, &r->jwt_issuer,
			       &r->jwt_audience, &r->auth_query_param, &r->auth_cookie };
	for (size_t i = 0; i < sizeof auth_strs / sizeof auth_strs[0]; i++)
		free(*auth_strs[i]);
	for (size_t i = 0; i < r->nsubprotocols; i++)
		free(r->subprotocols[i]);
	for (size_t i = 0; i < r->ntypes; i++)
		free(r->types[i]);
	for (size_t i = 0; i < r->nkeep_headers; i++)
		free(r->keep_headers[i]);
}

void conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->nroutes; i++)
		route_free(&c->routes[i]);
	free(c->routes);
	c->routes = NULL;
	c->nroutes = 0;
	free(c->plugin_dir);
	free(c->pid_file);
	free(c->cors_origins);
	free(c->trusted_proxies);
	c->plugin_dir = c->pid_file = c->cors_origins = c->trusted_proxies = NULL;
	for (size_t i = 0; i < c->ntls; i++) {
		struct conf_tls *t = &c->tls[i];
		char **strs[] = { &t->name, &t->certificate, &t->key, &t->key_passphrase,
				  &t->key_passphrase_file, &t->min_version, &t->ciphers,
				  &t->ciphersuites, &t->client_auth, &t->client_ca };
		for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
			free(*strs[k]);
		for (size_t k = 0; k < t->nserver_names; k++)
			free(t->server_names[k]);
	}
	free(c->tls);
	c->tls = NULL;
	c->ntls = 0;
}

size_t conf_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static const char *suggest(const char *word, const struct key_def *keys, size_t n)
{
	const char *best = NULL;
	size_t bestd = 99;
	for (size_t i = 0; i < n; i++) {
		size_t d = conf_edit_distance(word, keys[i].name);
		if (d < bestd) {
			bestd = d;
			best = keys[i].name;
		}
		/* A key that is a prefix or suffix of the word is a good guess too
		 * ("max_payload_size" -> "max_payload"). */
		size_t kl = strlen(keys[i].name);
		if (strlen(word) > kl && (strncmp(word, keys[i].name, kl) == 0) && bestd > 2) {
			bestd = 2;
			best = keys[i].name;
		}
	}
	size_t len = strlen(word);
	return bestd <= (len < 5 ? 1 : len / 3 + 1) ? best : NULL;
}

bool conf_parse_listen(const char *spec, struct conf_listen *l, const char **why)
{
	memset(l, 0, sizeof *l);
	snprintf(l->text, sizeof l->text, "%s", spec);
	/* "ADDR [tls] [metrics] [proxy_protocol]": split off the flags. */
	char s[96];
	snprintf(s, sizeof s, "%s", spec);
	char *sp = strpbrk(s, " \t");
	if (sp) {
		*sp++ = 0;
		char *save = NULL;
		for (char *f = strtok_r(sp, " \t", &save); f; f = strtok_r(NULL, " \t", &save)) {
			bool *flag = strcmp(f, "tls") == 0		? &l->tls
				     : strcmp(f, "metrics") == 0	? &l->metrics
				     : strcmp(f, "proxy_protocol") == 0 ? &l->proxy_protocol
									  : NULL;
			if (flag && *flag) {
				*why = "unknown flag after the address: a flag is given twice";
				return false;
			}
			if (flag)
				*flag = true;
			else {
				*why = "unknown flag after the address (expected tls, metrics or proxy_protocol)";
				return false;
			}
		}
	}
	char host[64] = "";
	const char *port_s;
	bool bracketed = s[0] == '[';
	if (bracketed) {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			*why = "expected [IPv6]:port";
			return false;
		}
		size_t hn = (size_t)(close - s - 1);
		if (hn >= sizeof host) {
			*why = "address too long";
			return false;
		}
		memcpy(host, s + 1, hn);
		host[hn] = 0;
		port_s = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon) {
			size_t hn = (size_t)(colon - s);
			if (hn >= sizeof host) {
				*why = "address too long";
				return false;
			}
			memcpy(host, s, hn);
			host[hn] = 0;
			if (strchr(host, ':')) {
				*why = "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
				return false;
			}
			port_s = colon + 1;
		} else {
			port_s = s;
		}
	}
	uint64_t port;
	if (!units_parse_uint(port_s, &port) || port == 0 || port > 65535) {
		*why = "port must be a number from 1 to 65535";
		return false;
	}
	/* Brackets hold an IPv6 literal and nothing else: "[]:80" must not
	 * quietly mean every IPv4 address, nor "[1.2.3.4]:80" an IPv4 one. */
	struct in6_addr probe;
	if (bracketed && inet_pton(AF_INET6, host, &probe) != 1) {
		*why = "expected an IPv6 address in brackets, e.g. [::1]:8080";
		return false;
	}
	if (host[0] == 0 || strcmp(host, "*") == 0)
		memcpy(host, "0.0.0.0", sizeof "0.0.0.0");
	struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		l->addrlen = sizeof *a4;
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		l->addrlen = sizeof *a6;
	} else {
		*why = "not a numeric IPv4 or IPv6 address (host names are not resolved)";
		return false;
	}
	return true;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		fprintf(stderr, "mbgw: out of memory reading configuration\n");
		exit(1);
	}
	return d;
}

static bool valid_subprotocol(const char *s)
{
	/* RFC 6455 §4.1: a token (RFC 2616 token characters). */
	if (!*s)
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
			return false;
	}
	return true;
}

static bool valid_host_pattern(const char *s)
{
	if (!*s || strlen(s) >= 254)
		return false;
	for (const char *q = s; *q; q++)
		if (!(isalnum((unsigned char)*q) || *q == '-' || *q == '.' || (*q == '*' && q == s && q[1] == '.')))
			return false;
	return true;
}

/* An exact message type, "prefix.*" or "*". */
static bool valid_type_pattern(const char *s)
{
	if (!*s)
		return false;
	for (const char *q = s; *q; q++) {
		unsigned char ch = (unsigned char)*q;
		if (ch <= 0x20 || ch > 0x7e || ch == '=' || (ch == '*' && q[1] != 0))
			return false;
	}
	size_t n = strlen(s);
	return s[n - 1] != '*' || n == 1 || s[n - 2] == '.';
}

/* Adds the comma-separated items of val to arr[*n..max), each trimmed
 * and checked by valid; one error per bad item ("is not <what>"), and one
 * when there are more than max ("too many <plural>"). */
static void add_list(struct parser *ps, const struct key_def *k, char *val, char **arr, size_t *n, size_t max,
		     bool (*valid)(const char *), const char *what, const char *plural)
{
	char *save = NULL;
	for (char *tok = strtok_r(val, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		char *e = tok + strlen(tok);
		while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		if (!valid(tok)) {
			err_at(ps, "%s: '%s' is not %s", k->name, tok, what);
			continue;
		}
		if (*n >= max) {
			err_at(ps, "%s: too many %s (at most %zu)", k->name, plural, max);
			return;
		}
		arr[(*n)++] = xstrdup(tok);
	}
}

static void set_value(struct parser *ps, const struct key_def *k, void *base, char *val)
{
	uint64_t v;
	switch (k->type) {
	case K_SIZE:
		if (!units_parse_size(val, &v)) {
			err_at(ps, "%s: invalid size '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		goto range;
	case K_DURATION:
		if (!units_parse_duration_ms(val, &v)) {
			err_at(ps, "%s: invalid duration '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		goto range;
	case K_UINT:
		if (!units_parse_uint(val, &v)) {
			err_at(ps, "%s: invalid number '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		goto range;
	case K_WORKERS:
		if (strcasecmp(val, "auto") == 0) {
			*(uint64_t *)((char *)base + k->offset) = 0;
			return;
		}
		if (!units_parse_uint(val, &v) || v == 0) {
			err_at(ps, "%s: invalid value '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		goto range;
	case K_BOOL: {
		bool b;
		if (!units_parse_bool(val, &b)) {
			err_at(ps, "%s: invalid boolean '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		*(bool *)((char *)base + k->offset) = b;
		return;
	}
	case K_LOGLEVEL: {
		enum log_level lv;
		if (!log_level_parse(val, &lv)) {
			err_at(ps, "%s: unknown level '%s' (expected %s)", k->name, val, k->hint);
			return;
		}
		*(enum log_level *)((char *)base + k->offset) = lv;
		return;
	}
	case K_LISTEN: {
		struct conf *c = ps->c;
		if (c->nlisten >= CONF_MAX_LISTEN) {
			err_at(ps, "listen: too many listeners (at most %d)", CONF_MAX_LISTEN);
			return;
		}
		const char *why;
		struct conf_listen *l = &c->listen[c->nlisten];
		if (!conf_parse_listen(val, l, &why)) {
			err_at(ps, "listen: invalid address '%s': %s (expected %s)", val, why, k->hint);
			return;
		}
		snprintf(l->where, sizeof l->where, "%s:%d", ps->file, ps->line);
		for (size_t i = 0; i < c->nlisten; i++) {
			if (c->listen[i].addrlen == l->addrlen && memcmp(&c->listen[i].addr, &l->addr, l->addrlen) == 0) {
				err_at(ps, "listen: '%s' is already listed at %s", val, c->listen[i].where);
				return;
			}
		}
		c->nlisten++;
		return;
	}
	case K_PATH: {
		if (val[0] != '/') {
			err_at(ps, "%s: '%s' must start with '/' (expected %s)", k->name, val, k->hint);
			return;
		}
		for (const char *p = val; *p; p++) {
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#') {
				err_at(ps, "%s: '%s' contains a space, '?', '#' or a non-ASCII character", k->name, val);
				return;
			}
		}
		char **dst = (char **)((char *)base + k->offset);
		free(*dst);
		*dst = xstrdup(val);
		return;
	}
	case K_STRING: {
		if (!*val) {
			err_at(ps, "%s: empty value (expected %s)", k->name, k->hint);
			return;
		}
		char **dst = (char **)((char *)base + k->offset);
		free(*dst);
		*dst = xstrdup(val);
		return;
	}
	case K_LOGFORMAT:
		if (strcmp(val, "text") == 0 || strcmp(val, "json") == 0)
			*(bool *)((char *)base + k->offset) = strcmp(val, "json") == 0;
		else
			err_at(ps, "%s: unknown format '%s' (expected %s)", k->name, val, k->hint);
		return;
	case K_FORMAT:
		if (strcmp(val, "header+json") == 0 || strcmp(val, "json") == 0)
			ps->route->format = CONF_FORMAT_JSON;
		else if (strcmp(val, "raw") == 0)
			ps->route->format = CONF_FORMAT_RAW;
		else
			err_at(ps, "%s: unknown format '%s' (expected %s)", k->name, val, k->hint);
		return;
	case K_RELOAD:
		if (strcmp(val, "keep") == 0)
			ps->route->reload_move = false;
		else if (strcmp(val, "move") == 0)
			ps->route->reload_move = true;
		else
			err_at(ps, "%s: unknown policy '%s' (expected %s)", k->name, val, k->hint);
		return;
	case K_SLOW:
		if (strcmp(val, "drop_message") == 0)
			ps->route->drop_client = false;
		else if (strcmp(val, "drop_client") == 0)
			ps->route->drop_client = true;
		else
			err_at(ps, "%s: unknown policy '%s' (expected %s)", k->name, val, k->hint);
		return;
	case K_JSON: {
		/* cJSON_Parse ignores what follows the value; we must not, or
		 * "{...} junk" (or a trailing comment) would reach the plugin. */
		const char *end = NULL;
		cJSON *j = cJSON_ParseWithOpts(val, &end, false);
		if (!j || !cJSON_IsObject(j)) {
			const char *at = j ? NULL : cJSON_GetErrorPtr();
			if (at && at >= val && at <= val + strlen(val)) {
				/* One line per error: show the excerpt up to a newline. */
				int len = 0;
				while (len < 20 && at[len] && at[len] != '\n' && at[len] != '\r')
					len++;
				err_at(ps, "%s: not a valid JSON object (error near '%.*s')", k->name, len, at);
			}
			else
				err_at(ps, "%s: not a JSON object (expected %s)", k->name, k->hint);
			cJSON_Delete(j);
			return;
		}
		cJSON_Delete(j);
		const char *rest = end;
		while (*rest == ' ' || *rest == '\t' || *rest == '\r' || *rest == '\n')
			rest++;
		if (*rest && *rest != '#' && *rest != ';') {
			err_at(ps, "%s: unexpected text after the JSON object: '%.20s'", k->name, rest);
			return;
		}
		free(ps->route->settings);
		ps->route->settings = strndup(val, (size_t)(end - val));
		if (!ps->route->settings) {
			fprintf(stderr, "mbgw: out of memory reading configuration\n");
			exit(1);
		}
		return;
	}
	case K_NAMES:
		add_list(ps, k, val, ps->tls->server_names, &ps->tls->nserver_names, CONF_MAX_SERVER_NAMES,
			 valid_host_pattern, "a host name or *.suffix pattern", "names");
		return;
	case K_HEADERS: /* header names are tokens too */
		add_list(ps, k, val, ps->route->keep_headers, &ps->route->nkeep_headers, CONF_MAX_TYPES,
			 valid_subprotocol, "a header name", "headers");
		return;
	case K_TYPES:
		add_list(ps, k, val, ps->route->types, &ps->route->ntypes, CONF_MAX_TYPES, valid_type_pattern,
			 "a message-type pattern (exact type, 'prefix.*' or '*')", "patterns");
		return;
	case K_LIST:
		add_list(ps, k, val, ps->route->subprotocols, &ps->route->nsubprotocols, CONF_MAX_SUBPROTOCOLS,
			 valid_subprotocol, "a valid subprotocol token", "subprotocols");
		return;
	}
	return;
range:
	if (v < k->min || v > k->max) {
		err_at(ps, "%s: value '%s' is out of range (expected %s)", k->name, val, k->hint);
		return;
	}
	*(uint64_t *)((char *)base + k->offset) = v;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

static void open_section(struct parser *ps, char *name)
{
	ps->route = NULL;
	ps->tls = NULL;
	char *arg = name;
	while (*arg && *arg != ' ' && *arg != '\t')
		arg++;
	if (*arg)
		*arg++ = 0;
	arg = trim(arg);
	if (strcmp(name, "server") == 0) {
		if (*arg)
			err_at(ps, "[server] takes no name (found '%s')", arg);
		ps->section = SEC_SERVER;
		return;
	}
	if (strcmp(name, "tls") == 0) {
		struct conf *c = ps->c;
		for (size_t i = 0; i < c->ntls; i++) {
			bool same = (!*arg && !c->tls[i].name) || (*arg && c->tls[i].name && strcmp(c->tls[i].name, arg) == 0);
			if (same) {
				err_at(ps, "[tls%s%s] is already defined at %s", *arg ? " " : "", arg, c->tls[i].where);
				ps->section = SEC_BAD;
				return;
			}
		}
		struct conf_tls *nt = realloc(c->tls, (c->ntls + 1) * sizeof *nt);
		if (!nt) {
			fprintf(stderr, "mbgw: out of memory reading configuration\n");
			exit(1);
		}
		c->tls = nt;
		ps->tls = &c->tls[c->ntls++];
		memset(ps->tls, 0, sizeof *ps->tls);
		ps->tls->session_tickets = true;
		ps->tls->name = *arg ? xstrdup(arg) : NULL;
		snprintf(ps->tls->where, sizeof ps->tls->where, "%s:%d", ps->file, ps->line);
		memset(ps->tls_seen, 0, sizeof ps->tls_seen);
		ps->section = SEC_TLS;
		return;
	}
	if (strcmp(name, "route") == 0) {
		if (!*arg) {
			err_at(ps, "[route] needs a name, e.g. [route echo]");
			ps->section = SEC_BAD;
			return;
		}
		for (const char *p = arg; *p; p++) {
			if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
			      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
				err_at(ps, "route name '%s' may contain only letters, digits, '-', '_' and '.'", arg);
				ps->section = SEC_BAD;
				return;
			}
		}
		struct conf *c = ps->c;
		for (size_t i = 0; i < c->nroutes; i++) {
			if (strcmp(c->routes[i].name, arg) == 0) {
				err_at(ps, "route '%s' is already defined at %s", arg, c->routes[i].where);
				ps->section = SEC_BAD;
				return;
			}
		}
		struct conf_route *nr = realloc(c->routes, (c->nroutes + 1) * sizeof *nr);
		if (!nr) {
			fprintf(stderr, "mbgw: out of memory reading configuration\n");
			exit(1);
		}
		c->routes = nr;
		ps->route = &c->routes[c->nroutes++];
		memset(ps->route, 0, sizeof *ps->route);
		ps->route->name = xstrdup(arg);
		ps->route->allow_missing_origin = true;
		ps->route->jwt_leeway_ms = 60000;
		snprintf(ps->route->where, sizeof ps->route->where, "%s:%d", ps->file, ps->line);
		memset(ps->route_seen, 0, sizeof ps->route_seen);
		ps->section = SEC_ROUTE;
		return;
	}
	static const struct key_def sections[] = { { "server", 0, 0, 0, 0, 0 }, { "route", 0, 0, 0, 0, 0 },
						   { "tls", 0, 0, 0, 0, 0 } };
	const char *hint = suggest(name, sections, 3);
	if (hint)
		err_at(ps, "unknown section [%s] (did you mean [%s]?)", name, hint);
	else
		err_at(ps, "unknown section [%s] (expected [server], [route NAME], [tls] or [tls NAME])", name);
	ps->section = SEC_BAD;
}

static void set_key(struct parser *ps, char *key, char *val)
{
	const struct key_def *keys;
	size_t nkeys;
	void *base;
	char (*seen)[300];
	const char *secname;
	switch (ps->section) {
	case SEC_NONE:
		err_at(ps, "'%s' is outside any section (put it under [server] or [route NAME])", key);
		return;
	case SEC_BAD:
		return; /* already reported at the section header */
	case SEC_SERVER:
		keys = server_keys; nkeys = NKEYS(server_keys); base = ps->c;
		seen = ps->c->server_seen_; secname = "[server]";
		break;
	case SEC_TLS:
		keys = tls_keys; nkeys = NKEYS(tls_keys); base = ps->tls;
		seen = ps->tls_seen; secname = "[tls]";
		break;
	case SEC_ROUTE:
	default:
		keys = route_keys; nkeys = NKEYS(route_keys); base = ps->route;
		seen = ps->route_seen; secname = "[route]";
		break;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (strcmp(keys[i].name, key) != 0)
			continue;
		if (keys[i].type != K_LISTEN && seen[i][0]) {
			err_at(ps, "%s is set twice (first at %s)", key, seen[i]);
			return;
		}
		snprintf(seen[i], sizeof seen[i], "%s:%d", ps->file, ps->line);
		set_value(ps, &keys[i], base, val);
		if (ps->section == SEC_ROUTE && strncmp(key, "compression", 11) == 0) {
			static const struct { const char *k; uint32_t bit; } bits[] = {
				{ "compression", CONF_RC_ENABLED },
				{ "compression_mem_level", CONF_RC_MEM_LEVEL },
				{ "compression_window_bits", CONF_RC_WINDOW_BITS },
				{ "compression_no_context_takeover", CONF_RC_NO_CONTEXT_TAKEOVER },
			};
			for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++)
				if (strcmp(bits[b].k, key) == 0)
					ps->route->compression_set |= bits[b].bit;
		}
		return;
	}
	const char *hint = suggest(key, keys, nkeys);
	if (hint)
		err_at(ps, "unknown key '%s' in %s (did you mean '%s'?)", key, secname, hint);
	else
		err_at(ps, "unknown key '%s' in %s", key, secname);
}

/* Scans JSON text for brace depth, skipping strings. Returns the depth
 * after p, or 0 as soon as the outermost bracket closes: what follows on
 * that line (say, a comment mentioning '{') must not make the value run on
 * over the next lines. */
static int json_depth(const char *p, int depth, bool *in_str)
{
	for (; *p; p++) {
		if (*in_str) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				*in_str = false;
		} else if (*p == '"') {
			*in_str = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth <= 0)
				return 0;
		}
	}
	return depth;
}

/* Collects a JSON value that starts with `first` (the rest of the current
 * line) and may continue on the following lines of text, until its
 * brackets balance. Advances *pos and ps->line past the lines used.
 * Returns a new string, or NULL if the text ends first. */
static char *gather_json(struct parser *ps, const char *first, const char *text, size_t len, size_t *pos)
{
	struct buf b = { 0 };
	bool in_str = false;
	int depth = json_depth(first, 0, &in_str);
	buf_append(&b, first, strlen(first));
	while (depth > 0 && *pos < len) {
		size_t e = *pos;
		while (e < len && text[e] != '\n')
			e++;
		char *line = strndup(text + *pos, e - *pos);
		*pos = e < len ? e + 1 : e;
		ps->line++;
		if (!line)
			break;
		/* The same rule as for single lines: no control characters
		 * (JSON strings must escape them anyway). */
		for (char *q = line; *q; q++) {
			unsigned char ch = (unsigned char)*q;
			if ((ch < 0x20 && ch != '\t' && !(ch == '\r' && q[1] == 0)) || ch == 0x7f) {
				free(line);
				buf_free(&b);
				return NULL;
			}
		}
		depth = json_depth(line, depth, &in_str);
		buf_append(&b, "\n", 1);
		buf_append(&b, line, strlen(line));
		free(line);
	}
	if (depth > 0) {
		buf_free(&b);
		return NULL;
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

int conf_parse_text(struct conf *c, const char *file, const char *text, size_t len, struct buf *errs)
{
	struct parser *ps = calloc(1, sizeof *ps);
	if (!ps) {
		fprintf(stderr, "mbgw: out of memory reading configuration\n");
		exit(1);
	}
	ps->c = c;
	ps->file = file;
	ps->errs = errs;
	ps->section = SEC_NONE;

	size_t pos = 0;
	char line[4096];
	while (pos < len) {
		ps->line++;
		size_t e = pos;
		while (e < len && text[e] != '\n')
			e++;
		size_t n = e - pos;
		bool too_long = n >= sizeof line;
		if (!too_long) {
			memcpy(line, text + pos, n);
			line[n] = 0;
		}
		pos = e < len ? e + 1 : e;
		if (too_long) {
			err_at(ps, "line longer than %zu bytes", sizeof line - 1);
			continue;
		}
		if (memchr(line, 0, n)) {
			err_at(ps, "NUL byte in line");
			continue;
		}
		/* Control characters (other than tab and a CR ending the line)
		 * have no place in a value and would end up in file names,
		 * paths or log lines. */
		size_t bad = 0;
		while (bad < n && !(((unsigned char)line[bad] < 0x20 && line[bad] != '\t' &&
				     !(line[bad] == '\r' && bad == n - 1)) || line[bad] == 0x7f))
			bad++;
		if (bad < n) {
			err_at(ps, "control character 0x%02x in line (column %zu)", (unsigned char)line[bad], bad + 1);
			continue;
		}
		char *s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (!close) {
				err_at(ps, "section header is missing its closing ']'");
				ps->section = SEC_BAD;
				continue;
			}
			*close = 0;
			char *rest = trim(close + 1);
			if (*rest && *rest != '#' && *rest != ';') {
				err_at(ps, "unexpected text after section header: '%s'", rest);
			}
			open_section(ps, trim(s + 1));
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			err_at(ps, "expected 'key = value' or '[section]', found '%s'", s);
			continue;
		}
		*eq = 0;
		char *key = trim(s);
		char *val = trim(eq + 1);
		if (!*key) {
			err_at(ps, "missing key before '='");
			continue;
		}
		/* A JSON value may continue over several lines until its braces
		 * balance. */
		if (*val == '{' && strcmp(key, "settings") == 0) {
			int first_line = ps->line;
			char *json = gather_json(ps, val, text, len, &pos);
			if (!json) {
				int cur = ps->line;
				ps->line = first_line;
				err_at(ps, "%s: JSON object is not closed (missing '}' before line %d)", key, cur + 1);
				ps->line = cur;
				continue;
			}
			int cur = ps->line;
			ps->line = first_line;
			set_key(ps, key, json);
			ps->line = cur;
			free(json);
			continue;
		}
		/* Quoted value: everything between the quotes, '#' included. */
		if (*val == '"') {
			char *endq = strchr(val + 1, '"');
			if (!endq) {
				err_at(ps, "%s: unterminated quoted value", key);
				continue;
			}
			*endq = 0;
			char *rest = trim(endq + 1);
			if (*rest && *rest != '#' && *rest != ';') {
				err_at(ps, "%s: unexpected text after quoted value: '%s'", key, rest);
				continue;
			}
			val++;
		} else {
			/* A comment starts at '#' preceded by whitespace, also right
			 * at the start of the value ("key = # note": val[-1] is the
			 * blank trim() skipped, or the '=' turned into NUL). */
			for (char *h = val; *h; h++) {
				if ((*h == '#' || *h == ';') && (h[-1] == ' ' || h[-1] == '\t')) {
					*h = 0;
					val = trim(val);
					break;
				}
			}
		}
		if (!*val) {
			err_at(ps, "%s: missing value after '='", key);
			continue;
		}
		if (strchr(val, '\t')) {
			/* Tabs separate, they never belong inside a value. */
			err_at(ps, "%s: tab character inside the value", key);
			continue;
		}
		set_key(ps, key, val);
	}
	int n = ps->nerr;
	free(ps);
	return n;
}

static void add_err(struct buf *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(struct buf *errs, const char *fmt, ...)
{
	char msg[1400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof msg - 2)
		n = sizeof msg - 2;
	msg[n++] = '\n';
	buf_append(errs, msg, (size_t)n);
}

/* Two routes on one path overlap when a client could be matched to both:
 * both list no subprotocol, or they share one. */
static bool routes_overlap(const struct conf_route *a, const struct conf_route *b)
{
	if (a->nsubprotocols == 0 && b->nsubprotocols == 0)
		return true;
	for (size_t i = 0; i < a->nsubprotocols; i++)
		for (size_t k = 0; k < b->nsubprotocols; k++)
			if (strcmp(a->subprotocols[i], b->subprotocols[k]) == 0)
				return true;
	return false;
}

/* Overlapping routes may share a connection only when message types tell
 * them apart. Returns why they conflict, or NULL. */
static const char *routes_conflict(const struct conf_route *a, const struct conf_route *b)
{
	if (a->format == CONF_FORMAT_RAW || b->format == CONF_FORMAT_RAW)
		return "and one is format = raw, which takes every message: give them different "
		       "paths or subprotocols";
	if (a->ntypes == 0 && b->ntypes == 0)
		return "and both take every message type: narrow one with types = ...";
	for (size_t i = 0; i < a->ntypes; i++)
		for (size_t k = 0; k < b->ntypes; k++)
			if (strcmp(a->types[i], b->types[k]) == 0)
				return "and both claim the same message type pattern";
	return NULL;
}

static int check_tls(struct conf *c, struct buf *errs)
{
	int nerr = 0;
	const struct conf_tls *def = NULL;
	for (size_t i = 0; i < c->ntls; i++)
		if (!c->tls[i].name)
			def = &c->tls[i];
	for (size_t i = 0; i < c->nlisten; i++) {
		if (c->listen[i].tls && (!def || !def->certificate || !def->key)) {
			add_err(errs, "%s: listen '%s' is tls but there is no [tls] section with certificate "
				"and key", c->listen[i].where, c->listen[i].text);
			nerr++;
			break;
		}
	}
	for (size_t i = 0; i < c->ntls; i++) {
		const struct conf_tls *t = &c->tls[i];
		const char *sec = t->name ? "[tls NAME]" : "[tls]";
		if ((t->certificate == NULL) != (t->key == NULL) || (t->name && !t->certificate)) {
			add_err(errs, "%s: %s needs both certificate and key", t->where, sec);
			nerr++;
		}
		if (t->key_passphrase && t->key_passphrase_file) {
			add_err(errs, "%s: set key_passphrase or key_passphrase_file, not both", t->where);
			nerr++;
		}
		if (t->name) {
			if (!t->nserver_names) {
				add_err(errs, "%s: [tls %s] needs server_names (the SNI names it serves)", t->where, t->name);
				nerr++;
			}
			if (t->min_version || t->ciphers || t->ciphersuites || t->client_auth || t->client_ca ||
			    !t->session_tickets) {
				add_err(errs, "%s: [tls %s]: min_version, ciphers, ciphersuites, session_tickets, "
					"client_auth and client_ca belong in [tls] (they apply to every certificate)",
					t->where, t->name);
				nerr++;
			}
			continue;
		}
		if (t->nserver_names) {
			add_err(errs, "%s: server_names belongs in a [tls NAME] section; [tls] is the default "
				"certificate", t->where);
			nerr++;
		}
		if (t->min_version && strcmp(t->min_version, "1.2") && strcmp(t->min_version, "1.3")) {
			add_err(errs, "%s: min_version must be 1.2 or 1.3 (found '%s')", t->where, t->min_version);
			nerr++;
		}
		if (t->client_auth && strcmp(t->client_auth, "off") && strcmp(t->client_auth, "optional") &&
		    strcmp(t->client_auth, "required")) {
			add_err(errs, "%s: client_auth must be off, optional or required (found '%s')", t->where,
				t->client_auth);
			nerr++;
		} else if (t->client_auth && strcmp(t->client_auth, "off") && !t->client_ca) {
			add_err(errs, "%s: client_auth = %s needs client_ca (the CAs that sign client certificates)",
				t->where, t->client_auth);
			nerr++;
		}
	}
	return nerr;
}

/* Where a [server] key was set ("file:line"), or the directory. */
static const char *server_key_where(const struct conf *c, const char *key, const char *dir)
{
	for (size_t i = 0; i < NKEYS(server_keys); i++)
		if (strcmp(server_keys[i].name, key) == 0 && c->server_seen_[i][0])
			return c->server_seen_[i];
	return dir;
}

int conf_finish(struct conf *c, const char *dir, struct buf *errs)
{
	int nerr = 0;
	if (c->trusted_proxies) {
		struct edge_trusted *t = malloc(sizeof *t);
		char why[256] = "out of memory";
		if (!t || edge_trusted_parse(c->trusted_proxies, t, why, sizeof why) != 0) {
			add_err(errs, "%s: trusted_proxies: %s", server_key_where(c, "trusted_proxies", dir), why);
			nerr++;
		}
		free(t);
	}
	if (c->nlisten == 0) {
		const char *why;
		conf_parse_listen("0.0.0.0:8080", &c->listen[0], &why);
		snprintf(c->listen[0].where, sizeof c->listen[0].where, "built-in default");
		c->nlisten = 1;
	}
	nerr += check_tls(c, errs);
	if (c->nroutes == 0) {
		add_err(errs, "%s: no [route NAME] section: nothing would be served "
			"(add e.g. [route echo] with path = /ws and plugin = echo)", dir);
		nerr++;
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		struct conf_route *r = &c->routes[i];
		if (!r->path) {
			add_err(errs, "%s: route '%s' has no path (add e.g. path = /ws)", r->where, r->name);
			nerr++;
		}
		if (!r->plugin) {
			add_err(errs, "%s: route '%s' has no plugin (add e.g. plugin = echo)", r->where, r->name);
			nerr++;
		}
		if (!r->settings)
			r->settings = xstrdup("{}");
		if (r->format == CONF_FORMAT_RAW && r->ntypes) {
			add_err(errs, "%s: route '%s' is format = raw, so it cannot select messages by types",
				r->where, r->name);
			nerr++;
		}
		if (r->require_subprotocol && r->nsubprotocols == 0) {
			add_err(errs, "%s: route '%s' sets require_subprotocol but lists no subprotocols",
				r->where, r->name);
			nerr++;
		}
		size_t same_path = 0;
		for (size_t j = 0; j < i && r->path; j++)
			same_path += c->routes[j].path && strcmp(c->routes[j].path, r->path) == 0;
		if (same_path == CONF_MAX_ROUTES_PER_PATH) {
			add_err(errs, "%s: route '%s': at most %d routes may share path %s", r->where, r->name,
				CONF_MAX_ROUTES_PER_PATH, r->path);
			nerr++;
		}
		for (size_t j = 0; j < i && r->path; j++) {
			const struct conf_route *o = &c->routes[j];
			if (!o->path || strcmp(o->path, r->path) != 0 || !routes_overlap(o, r))
				continue;
			const char *why = routes_conflict(o, r);
			if (why) {
				add_err(errs, "%s: route '%s' and route '%s' (%s) both serve path %s %s",
					r->where, r->name, o->name, o->where, r->path, why);
				nerr++;
			}
		}
	}
	return nerr;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int conf_load_dir(const char *dir, struct conf *c, struct buf *errs)
{
	conf_defaults(c);
	DIR *d = opendir(dir);
	if (!d) {
		add_err(errs, "%s: cannot open configuration directory: %s", dir, strerror(errno));
		return 1;
	}
	char **names = NULL;
	size_t nnames = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		char **nn = realloc(names, (nnames + 1) * sizeof *nn);
		if (!nn)
			break;
		names = nn;
		names[nnames++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (nnames > 1) /* names is NULL when there are none: not for qsort */
		qsort(names, nnames, sizeof *names, name_cmp);

	int nerr = 0;
	if (nnames == 0) {
		add_err(errs, "%s: no *.conf files in the configuration directory", dir);
		nerr++;
	}
	for (size_t i = 0; i < nnames; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		if (!f) {
			add_err(errs, "%s: cannot read: %s", path, strerror(errno));
			nerr++;
			continue;
		}
		struct buf text = { 0 };
		char chunk[8192];
		size_t r;
		bool oom = false;
		while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
			oom |= buf_append(&text, chunk, r) < 0;
		/* A read error (EISDIR for a directory named x.conf, EIO) must
		 * not pass for an empty file. */
		int rerr = ferror(f) ? errno : oom ? ENOMEM : 0;
		fclose(f);
		if (rerr) {
			add_err(errs, "%s: cannot read: %s", path, strerror(rerr));
			nerr++;
			buf_free(&text);
			continue;
		}
		nerr += conf_parse_text(c, path, (const char *)text.data, text.len, errs);
		buf_free(&text);
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (nerr == 0)
		nerr += conf_finish(c, dir, errs);
	return nerr;
}

const struct conf_route *conf_route_for_path(const struct conf *c, const char *path, size_t n)
{
	for (size_t i = 0; i < c->nroutes; i++) {
		const char *rp = c->routes[i].path;
		if (rp && strlen(rp) == n && memcmp(rp, path, n) == 0)
			return &c->routes[i];
	}
	return NULL;
}
