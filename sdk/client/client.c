/* client — the WebSocket client's connection: sockets, proxy tunnel, TLS,
 * the upgrade, the open connection, heartbeat, reconnection, queues and
 * requests. The public contract is in <mbgw/client.h>.
 *
 * One connection attempt goes through phases, each driven by
 * mbgw_client_step() whenever the socket is ready or a timer is due:
 *
 *   resolve (getaddrinfo) → PH_TCP (non-blocking connect, next address on
 *   failure) → PH_PROXY (CONNECT, only with a proxy) → PH_TLS (wss) →
 *   PH_UPGRADE (GET + 101 checks) → state OPEN
 *
 * A failure anywhere lands in attempt_failed() or conn_lost(), the only
 * places that decide between a reconnection (schedule()) and the end
 * (finish()). Callbacks run with c->in_cb raised, so that blocking calls
 * made from them are refused instead of re-entering the loop.
 */
#include "client_internal.h"

#include <mbgw/client.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum phase { PH_NONE, PH_RESOLVE, PH_TCP, PH_PROXY, PH_TLS, PH_UPGRADE };

/* Write-buffer size beyond which pings are no longer answered. */
#define PONG_BACKLOG (1u << 20)

struct resolve_job;
static void job_release(struct resolve_job *j);

struct qmsg {
	struct qmsg *next;
	int type;
	size_t len;
	uint8_t data[];
};

struct req {
	struct req *next;
	uint64_t id;
	uint64_t deadline;
	mbgw_client_reply_cb cb;
	void *arg;
};

struct mbgw_client {
	struct mbgw_client_options o;   /* strings below are our copies */
	char *s_url, *s_ca_file, *s_ca_path, *s_cert, *s_key, *s_sni;
	char **headers;
	size_t nheaders;
	char **protos;
	size_t nprotos;
	struct cl_url url;
	bool has_proxy;
	struct cl_proxy proxy;
	SSL_CTX *ssl_ctx;

	int state;
	enum phase phase;
	int fd;
	SSL *ssl;
	bool ssl_want_write;
	bool tls_verify_failed;
	int proxy_status;
	struct addrinfo *ai, *ai_cur;
	struct resolve_job *resolve;   /* a name being resolved (PH_RESOLVE) */
	char peer[300];
	char tcp_err[400];
	struct buf in, out;
	char key[25];
	struct ws_deflate deflate;
	bool deflate_on;
	struct cl_reader rd;
	struct cl_hs_result hs;
	uint64_t rng[4];

	uint64_t deadline;             /* connect attempt */
	uint64_t last_rx;
	bool ping_out;
	uint64_t pong_deadline;
	uint64_t close_deadline;
	bool close_sent, close_rcvd, app_close;
	bool more_input;               /* the last step stopped reading early */
	bool close_timed_out;          /* close_timeout_ms ended our close handshake */
	uint64_t reconnect_at;

	struct qmsg *qhead, **qtail;   /* sent while not open */
	size_t qcount, qbytes;
	struct qmsg *ihead, **itail;   /* received, for mbgw_client_recv */
	size_t ibytes;
	struct req *reqs;
	uint64_t next_id;

	char err[512];
	int http_status;
	int close_code;
	char close_reason[128];
	unsigned connections, attempts, streak;
	int in_cb;
	int final_rc;
	bool final_pending;
};

/* Bytes of received messages waiting for mbgw_client_recv() beyond which
 * the client stops reading the socket (TCP backpressure on the server)
 * until the application takes some. */
static size_t inbox_limit(const struct mbgw_client *c)
{
	size_t min = 16u << 20;
	return c->o.max_message_size > min ? (size_t)c->o.max_message_size : min;
}

static bool inbox_full(const struct mbgw_client *c)
{
	return !c->o.on_message && c->ibytes >= inbox_limit(c);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_err(struct mbgw_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

/* strerror() with a lower-case first letter: "connection refused". */
static const char *errstr(int e, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* xoshiro256**, seeded from getrandom(): mask keys need to be
 * unpredictable to the network (RFC 6455 §10.3), not secret forever. */
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct mbgw_client *c)
{
	uint64_t *s = c->rng;
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static int random_bytes(void *p, size_t n)
{
	uint8_t *q = p;
	while (n) {
		ssize_t r = getrandom(q, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		q += r;
		n -= (size_t)r;
	}
	return 0;
}

static int rng_seed(struct mbgw_client *c)
{
	if (random_bytes(c->rng, sizeof c->rng) < 0)
		return -1;
	if (!(c->rng[0] | c->rng[1] | c->rng[2] | c->rng[3]))
		c->rng[0] = 1;
	return 0;
}

#define CB(c, name, ...)                                                  \
	do {                                                              \
		if ((c)->o.name) {                                     \
			(c)->in_cb++;                                     \
			(c)->o.name((c), __VA_ARGS__, (c)->o.userdata); \
			(c)->in_cb--;                                     \
		}                                                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* A socket BIO that sends with MSG_NOSIGNAL: a library must not kill its
 * host process with SIGPIPE when a server goes away, and must not change
 * the process's signal dispositions either. */

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = send(fd, p, (size_t)n, MSG_NOSIGNAL);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)r;
}

static int bio_read(BIO *b, char *p, int n)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t r = recv(fd, p, (size_t)n, 0);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			BIO_set_retry_read(b);
		return -1;
	}
	return (int)r;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void bio_init_once(void)
{
	bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mbgw-client socket");
	if (bio_meth) {
		BIO_meth_set_write(bio_meth, bio_write);
		BIO_meth_set_read(bio_meth, bio_read);
		BIO_meth_set_ctrl(bio_meth, bio_ctrl);
		BIO_meth_set_create(bio_meth, bio_create);
	}
}

/* The most useful line OpenSSL has about the last failure. */
static void ssl_errstr(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_last_error();
	if (!e) {
		snprintf(buf, cap, "unknown TLS error");
		return;
	}
	const char *r = ERR_reason_error_string(e);
	snprintf(buf, cap, "%s", r ? r : "TLS error");
	ERR_clear_error();
}

/* ------------------------------------------------------------------ */
/* Options                                                              */

MBGW_CLIENT_API void mbgw_client_options_init(struct mbgw_client_options *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
		o->compress_threshold = 64;
	o->connect_timeout_ms = 10000;
	o->pong_timeout_ms = 10000;
	o->close_timeout_ms = 5000;
	o->max_message_size = 16u << 20;
	o->backoff_initial_ms = 500;
	o->backoff_max_ms = 30000;
	o->queue_max_messages = 1000;
	o->queue_max_bytes = 1u << 20;
}

static bool is_tchar(int ch)
{
	return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* "Name: value" with a token name and no CR/LF, and not one of the
 * headers the library writes itself. */
static int check_header(const char *h, char *err, size_t cap)
{
	static const char *const ours[] = { "Upgrade", "Connection", "Sec-WebSocket-Key",
					    "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
					    "Sec-WebSocket-Protocol", "Content-Length",
					    "Transfer-Encoding" };
	const char *colon = strchr(h, ':');
	if (!colon || colon == h) {
		snprintf(err, cap, "header '%.80s' is not 'Name: value'", h);
		return -1;
	}
	for (const char *p = h; p < colon; p++)
		if (!is_tchar((unsigned char)*p)) {
			snprintf(err, cap, "header '%.80s': invalid character in the name", h);
			return -1;
		}
	for (const char *p = colon + 1; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			snprintf(err, cap, "header '%.80s': control character in the value", h);
			return -1;
		}
	size_t nl = (size_t)(colon - h);
	for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
		if (strlen(ours[i]) == nl && strncasecmp(h, ours[i], nl) == 0) {
			snprintf(err, cap, "header %s is set by the library%s", ours[i],
				 i == 5 ? " (use the subprotocols option)" : i == 4 ? " (use the compress option)" : "");
			return -1;
		}
	return 0;
}

static int make_ssl_ctx(struct mbgw_client *c, char *err, size_t cap)
{
	char why[200];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, cap, "TLS: cannot create a context");
		return MBGW_C_E_NOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (c->o.insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (c->s_ca_file || c->s_ca_path) {
			if (SSL_CTX_load_verify_locations(ctx, c->s_ca_file, c->s_ca_path) != 1) {
				ssl_errstr(why, sizeof why);
				snprintf(err, cap, "TLS: cannot load CA %s: %s",
					 c->s_ca_file ? c->s_ca_file : c->s_ca_path, why);
				goto out_free_ctx;
			}
		} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			ssl_errstr(why, sizeof why);
			snprintf(err, cap, "TLS: cannot load the system CA store: %s", why);
			goto out_free_ctx;
		}
	}
	if (c->s_cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, c->s_cert) != 1) {
			ssl_errstr(why, sizeof why);
			snprintf(err, cap, "TLS: cannot load client certificate %s: %s", c->s_cert, why);
			goto out_free_ctx;
		}
		const char *key = c->s_key ? c->s_key : c->s_cert;
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			ssl_errstr(why, sizeof why);
			snprintf(err, cap, "TLS: cannot load client key %s: %s", key, why);
			goto out_free_ctx;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			snprintf(err, cap, "TLS: client key %s does not match certificate %s", key, c->s_cert);
			goto out_free_ctx;
		}
	} else if (c->s_key) {
		snprintf(err, cap, "TLS: a client key without a certificate");
		goto out_free_ctx;
	}
	c->ssl_ctx = ctx;
	return 0;
out_free_ctx:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return MBGW_C_E_INVAL;
}

/* Decides the proxy: explicit option, else the environment. */
static int pick_proxy(struct mbgw_client *c, const char *explicit, char *err, size_t cap)
{
	const char *p = explicit;
	const char *var = "proxy option";
	if (!p) {
		static const char *const tls_vars[] = { "https_proxy", "HTTPS_PROXY" };
		static const char *const tcp_vars[] = { "http_proxy", "HTTP_PROXY" };
		const char *const *vars = c->url.tls ? tls_vars : tcp_vars;
		for (int i = 0; i < 2 && !p; i++) {
			const char *v = getenv(vars[i]);
			if (v && *v) {
				p = v;
				var = vars[i];
			}
		}
		if (!p)
			return 0;
		const char *np = getenv("no_proxy");
		if (!np || !*np)
			np = getenv("NO_PROXY");
		if (np && cl_no_proxy_match(np, c->url.host))
			return 0;
	}
	if (!*p)
		return 0;
	char why[300];
	if (cl_proxy_parse(p, &c->proxy, why, sizeof why) < 0) {
		snprintf(err, cap, "%s: %s", var, why);
		return MBGW_C_E_URL;
	}
	c->has_proxy = true;
	return 0;
}

MBGW_CLIENT_API int mbgw_client_new(const struct mbgw_client_options *o, struct mbgw_client **out,
				    char *errbuf, size_t errcap)
{
	char scratch[8];
	if (!errbuf) {
		errbuf = scratch;
		errcap = sizeof scratch;
	}
	if (errcap)
		errbuf[0] = 0;
	/* A program built against an older header passes a smaller struct:
	 * what it does not know keeps the defaults. A larger one comes from a
	 * newer header whose fields we cannot honour. */
	size_t min = offsetof(struct mbgw_client_options, url) + sizeof o->url;
	if (!o || !out || o->size < min || o->size > sizeof *o) {
		if (o && o->size > sizeof *o)
			snprintf(errbuf, errcap, "options from a newer libmbgw-client (%u bytes, this one knows %zu)",
				 (unsigned)o->size, sizeof *o);
		else
			snprintf(errbuf, errcap, "invalid options (not initialised with mbgw_client_options_init?)");
		return MBGW_C_E_INVAL;
	}
	*out = NULL;
	struct mbgw_client *c = calloc(1, sizeof *c);
	if (!c)
		return MBGW_C_E_NOMEM;
	mbgw_client_options_init(&c->o);
	memcpy(&c->o, o, o->size);
	c->o.size = sizeof c->o;
	/* From here on, o is the caller's options completed with defaults;
	 * its pointers are the caller's (c->o gets our copies). */
	struct mbgw_client_options in = c->o;
	o = &in;
	c->fd = -1;
	c->qtail = &c->qhead;
	c->itail = &c->ihead;
	c->next_id = 1;
	bool oom = false;
	c->s_url = dup_or_null(o->url, &oom);
	c->s_ca_file = dup_or_null(o->ca_file, &oom);
	c->s_ca_path = dup_or_null(o->ca_path, &oom);
	c->s_cert = dup_or_null(o->cert_file, &oom);
	c->s_key = dup_or_null(o->key_file, &oom);
	c->s_sni = dup_or_null(o->server_name, &oom);
	int rc = MBGW_C_E_INVAL;
	if (oom)
		goto out_nomem;
	/* The copies replace the caller's pointers, which we must not keep. */
	c->o.url = c->s_url;
	c->o.ca_file = c->s_ca_file;
	c->o.ca_path = c->s_ca_path;
	c->o.cert_file = c->s_cert;
	c->o.key_file = c->s_key;
	c->o.server_name = c->s_sni;
	c->o.proxy = NULL;
	c->o.headers = NULL;
	c->o.subprotocols = NULL;
	if (o->connect_timeout_ms <= 0 || o->pong_timeout_ms <= 0 || o->close_timeout_ms < 0 ||
	    o->ping_interval_ms < 0 || o->max_message_size == 0 || o->backoff_initial_ms == 0 ||
	    o->backoff_max_ms < o->backoff_initial_ms) {
		snprintf(errbuf, errcap, "invalid options: timeouts must be positive, max_message_size > 0, "
			 "0 < backoff_initial_ms <= backoff_max_ms");
		goto out_free;
	}
	if (cl_url_parse(c->s_url, &c->url, errbuf, errcap) < 0) {
		rc = MBGW_C_E_URL;
		goto out_free;
	}
	if (o->nheaders) {
		if (!o->headers)
			goto out_free;
		c->headers = calloc(o->nheaders, sizeof *c->headers);
		if (!c->headers)
			goto out_nomem;
		for (size_t i = 0; i < o->nheaders; i++) {
			if (!o->headers[i] || check_header(o->headers[i], errbuf, errcap) < 0)
				goto out_free;
			if (!(c->headers[c->nheaders++] = strdup(o->headers[i])))
				goto out_nomem;
		}
	}
	if (o->nsubprotocols) {
		if (!o->subprotocols)
			goto out_free;
		c->protos = calloc(o->nsubprotocols, sizeof *c->protos);
		if (!c->protos)
			goto out_nomem;
		for (size_t i = 0; i < o->nsubprotocols; i++) {
			const char *s = o->subprotocols[i];
			bool ok = s && *s;
			for (const char *p = s; ok && *p; p++)
				ok = is_tchar((unsigned char)*p);
			if (!ok) {
				snprintf(errbuf, errcap, "subprotocol '%.80s' is not a token", s ? s : "(null)");
				goto out_free;
			}
			if (!(c->protos[c->nprotos++] = strdup(s)))
				goto out_nomem;
		}
	}
	rc = pick_proxy(c, o->proxy, errbuf, errcap);
	if (rc < 0)
		goto out_free;
	if (c->url.tls) {
		pthread_once(&bio_once, bio_init_once);
		if (!bio_meth)
			goto out_nomem;
		rc = make_ssl_ctx(c, errbuf, errcap);
		if (rc < 0)
			goto out_free;
	}
	if (rng_seed(c) < 0) {
		snprintf(errbuf, errcap, "getrandom: %s", strerror(errno));
		rc = MBGW_C_E_IO;
		goto out_free;
	}
	*out = c;
	return 0;
out_nomem:
	rc = MBGW_C_E_NOMEM;
	snprintf(errbuf, errcap, "out of memory");
out_free:
	mbgw_client_free(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Transport                                                            */

static void transport_close(struct mbgw_client *c)
{
	if (c->ssl) {
		/* close_notify, best effort: the socket is non-blocking. */
		if (c->phase == PH_NONE)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->phase = PH_NONE;
	c->ssl_want_write = false;
	c->in.len = 0;
	c->out.len = 0;
	if (c->ai)
		freeaddrinfo(c->ai);
	c->ai = c->ai_cur = NULL;
	if (c->resolve)
		job_release(c->resolve);
	c->resolve = NULL;
	if (c->deflate_on)
		ws_deflate_free(&c->deflate);
	c->deflate_on = false;
	c->rd.in_msg = false;
}

/* Reads into c->in. Returns bytes read, 0 at EOF, -1 when nothing is
 * there now, -2 on an error, -3 on a TLS protocol error (c->err set). */
static ssize_t transport_read(struct mbgw_client *c)
{
	if (buf_reserve(&c->in, 16384) < 0) {
		set_err(c, "out of memory");
		return -2;
	}
	uint8_t *p = c->in.data + c->in.len;
	size_t cap = c->in.cap - c->in.len;
	char e[80];
	if (!c->ssl) {
		ssize_t r = recv(c->fd, p, cap, 0);
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return -1;
			set_err(c, "read from %s: %s", c->peer, errstr(errno, e, sizeof e));
			return -2;
		}
		c->in.len += (size_t)r;
		return r;
	}
	errno = 0;
	int r = SSL_read(c->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0) {
		c->in.len += (size_t)r;
		return r;
	}
	int se = SSL_get_error(c->ssl, r);
	switch (se) {
	case SSL_ERROR_WANT_READ:
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->ssl_want_write = true;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0)
			return 0; /* EOF without close_notify: treated as EOF */
		set_err(c, "TLS read from %s: %s", c->peer, errstr(errno, e, sizeof e));
		return -2;
	default: {
		/* A TLS alert after the handshake, e.g. the server refusing our
		 * (missing) client certificate under TLS 1.3. */
		char why[160];
		ssl_errstr(why, sizeof why);
		set_err(c, "TLS: %s (from %s)", why, c->peer);
		return -3;
	}
	}
}

/* Writes what c->out holds. Returns 0 (all or some written), -2 on an
 * error (c->err set). */
static int transport_flush(struct mbgw_client *c)
{
	char e[80];
	size_t done = 0;
	while (done < c->out.len) {
		size_t n = c->out.len - done;
		if (!c->ssl) {
			ssize_t r = send(c->fd, c->out.data + done, n, MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					break;
				set_err(c, "write to %s: %s", c->peer, errstr(errno, e, sizeof e));
				return -2;
			}
			done += (size_t)r;
			continue;
		}
		errno = 0;
		int r = SSL_write(c->ssl, c->out.data + done, n > INT32_MAX ? INT32_MAX : (int)n);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		int se = SSL_get_error(c->ssl, r);
		if (se == SSL_ERROR_WANT_WRITE || se == SSL_ERROR_WANT_READ)
			break;
		if (se == SSL_ERROR_SYSCALL && errno) {
			set_err(c, "TLS write to %s: %s", c->peer, errstr(errno, e, sizeof e));
		} else {
			char why[160];
			ssl_errstr(why, sizeof why);
			set_err(c, "TLS write to %s: %s", c->peer, why);
		}
		ERR_clear_error();
		return -2;
	}
	buf_consume(&c->out, done);
	if (c->out.len == 0 && c->out.cap > CL_READER_KEEP)
		buf_free(&c->out);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Frames out                                                           */

static int put_frame(struct mbgw_client *c, bool fin, uint8_t rsv, uint8_t op, const uint8_t *p,
		     size_t n)
{
	uint8_t hdr[WS_MAX_HEADER], mask[4];
	uint64_t r = rng_next(c);
	memcpy(mask, &r, 4);
	size_t hl = ws_frame_encode_header(hdr, fin, rsv, op, n, mask);
	if (buf_reserve(&c->out, hl + n) < 0)
		return MBGW_C_E_NOMEM;
	memcpy(c->out.data + c->out.len, hdr, hl);
	c->out.len += hl;
	if (n) {
		memcpy(c->out.data + c->out.len, p, n);
		ws_mask(c->out.data + c->out.len, n, mask, 0);
		c->out.len += n;
	}
	return 0;
}

static int send_now(struct mbgw_client *c, int type, const uint8_t *p, size_t n)
{
	struct buf z = { 0 };
	uint8_t rsv = 0;
	if (c->deflate_on && ws_deflate_wanted(&c->deflate, n)) {
		int zr = ws_deflate_compress(&c->deflate, p, n, &z);
		if (zr < 0) {
			buf_free(&z);
			return zr == WS_DEFLATE_E_NOMEM ? MBGW_C_E_NOMEM : MBGW_C_E_IO;
		}
		p = z.data;
		n = z.len;
		rsv = WS_RSV1;
	}
	size_t frag = c->o.fragment_size;
	int rc = 0;
	if (!frag || n <= frag) {
		rc = put_frame(c, true, rsv, (uint8_t)type, p, n);
	} else {
		size_t off = 0;
		uint8_t op = (uint8_t)type;
		while (rc == 0 && off < n) {
			size_t k = n - off < frag ? n - off : frag;
			rc = put_frame(c, off + k == n, rsv, op, p + off, k);
			off += k;
			op = WS_OP_CONT;
			rsv = 0;
		}
	}
	buf_free(&z);
	return rc;
}

static int send_close_frame(struct mbgw_client *c, int code, const char *reason, size_t rlen)
{
	uint8_t p[WS_MAX_CONTROL];
	size_t n = 0;
	if (code != WS_CLOSE_NO_STATUS) {
		p[0] = (uint8_t)(code >> 8);
		p[1] = (uint8_t)code;
		if (rlen > WS_MAX_CONTROL - 2)
			rlen = WS_MAX_CONTROL - 2;
		if (rlen)
			memcpy(p + 2, reason, rlen);
		n = 2 + rlen;
	}
	c->close_sent = true;
	return put_frame(c, true, 0, WS_OP_CLOSE, p, n);
}

/* ------------------------------------------------------------------ */
/* Ending, reconnecting                                                 */

static void queue_drop(struct mbgw_client *c)
{
	while (c->qhead) {
		struct qmsg *m = c->qhead;
		c->qhead = m->next;
		free(m);
	}
	c->qtail = &c->qhead;
	c->qcount = c->qbytes = 0;
}

/* Closed for good: rc 0 for a clean close. */
static void finish(struct mbgw_client *c, int rc)
{
	transport_close(c);
	queue_drop(c);
	c->state = MBGW_CLIENT_CLOSED;
	c->final_rc = rc;
	c->final_pending = true;
	while (c->reqs) {
		struct req *r = c->reqs;
		c->reqs = r->next;
		if (r->cb) {
			c->in_cb++;
			r->cb(c, MBGW_C_E_CLOSED, NULL, 0, r->arg);
			c->in_cb--;
		}
		free(r);
	}
	CB(c, on_close, rc);
}

static uint64_t backoff(struct mbgw_client *c, unsigned n)
{
	uint64_t d = c->o.backoff_initial_ms;
	for (unsigned i = 1; i < n && d < c->o.backoff_max_ms; i++)
		d *= 2;
	if (d > c->o.backoff_max_ms)
		d = c->o.backoff_max_ms;
	/* Equal jitter: [d/2, d]. */
	uint64_t half = d / 2;
	return half + rng_next(c) % (d - half + 1);
}

static void schedule(struct mbgw_client *c, int rc)
{
	c->streak++;
	if (c->o.max_attempts && c->streak > c->o.max_attempts) {
		char last[sizeof c->err];
		snprintf(last, sizeof last, "%s", c->err);
		set_err(c, "gave up after %u reconnection attempt%s; last error: %s", c->o.max_attempts,
			c->o.max_attempts == 1 ? "" : "s", last);
		finish(c, MBGW_C_E_GAVE_UP);
		return;
	}
	uint64_t d = backoff(c, c->streak);
	c->state = MBGW_CLIENT_WAITING;
	c->reconnect_at = now_ms() + d;
	CB(c, on_reconnecting, c->streak, d, rc);
}

static bool retry_rc(const struct mbgw_client *c, int rc)
{
	if (!c->o.reconnect || c->app_close)
		return false;
	switch (rc) {
	case MBGW_C_E_RESOLVE: case MBGW_C_E_CONNECT: case MBGW_C_E_TIMEOUT: case MBGW_C_E_IO:
		return true;
	case MBGW_C_E_TLS:
		return !c->tls_verify_failed;
	case MBGW_C_E_PROXY:
		return c->proxy_status >= 500 || c->proxy_status == 0;
	case MBGW_C_E_HANDSHAKE:
		return c->http_status >= 500 || c->http_status == 408 || c->http_status == 429;
	default:
		return false;
	}
}

/* A connection attempt failed before the connection was open. */
static void attempt_failed(struct mbgw_client *c, int rc)
{
	transport_close(c);
	if (retry_rc(c, rc))
		schedule(c, rc);
	else
		finish(c, rc);
}

/* An open (or closing) connection ended. code: the server's close code,
 * or 1006 when no close frame came; rc: what to report when we stop. */
static void conn_ended(struct mbgw_client *c, int rc, int code, const char *reason)
{
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
	bool server_closed = c->close_rcvd && !c->app_close;
	bool retry = false;
	if (c->o.reconnect && !c->app_close) {
		if (code == WS_CLOSE_ABNORMAL)
			retry = rc != MBGW_C_E_PROTOCOL;
		else if (server_closed && c->o.reconnect_on_close)
			retry = true;
		else
			retry = code == 1001 || code == 1011 || code == 1012 || code == 1013 || code == 1014;
	}
	transport_close(c);
	int expect = retry ? MBGW_CLIENT_WAITING : MBGW_CLIENT_CLOSED;
	c->state = expect;
	CB(c, on_disconnect, code, c->close_reason, retry);
	if (c->state != expect || c->final_pending)
		return; /* the callback closed the client or connected again */
	if (retry) {
		c->streak = 0;
		schedule(c, rc);
	} else {
		finish(c, rc);
	}
}

/* ------------------------------------------------------------------ */
/* Connecting                                                           */

static void tls_start(struct mbgw_client *c);
static void upgrade_start(struct mbgw_client *c);
static void tcp_next(struct mbgw_client *c);

static void set_peer(struct mbgw_client *c, const struct addrinfo *a)
{
	char h[INET6_ADDRSTRLEN + 2] = "?", s[8] = "?";
	getnameinfo(a->ai_addr, a->ai_addrlen, h, sizeof h, s, sizeof s, NI_NUMERICHOST | NI_NUMERICSERV);
	if (a->ai_family == AF_INET6)
		snprintf(c->peer, sizeof c->peer, "[%s]:%s", h, s);
	else
		snprintf(c->peer, sizeof c->peer, "%s:%s", h, s);
}

static void tcp_connected(struct mbgw_client *c)
{
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	freeaddrinfo(c->ai);
	c->ai = c->ai_cur = NULL;
	if (c->has_proxy) {
		c->phase = PH_PROXY;
		char req[2048];
		int n = snprintf(req, sizeof req, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n",
				 c->url.ipv6 ? "[" : "", c->url.host, c->url.ipv6 ? "]" : "", c->url.port,
				 c->url.ipv6 ? "[" : "", c->url.host, c->url.ipv6 ? "]" : "", c->url.port);
		if (c->proxy.has_auth) {
			char cred[520], b64[704];
			int cl = snprintf(cred, sizeof cred, "%s:%s", c->proxy.user, c->proxy.pass);
			EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, cl);
			n += snprintf(req + n, sizeof req - (size_t)n, "Proxy-Authorization: Basic %s\r\n", b64);
		}
		n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
		if (buf_append(&c->out, req, (size_t)n) < 0) {
			set_err(c, "out of memory");
			attempt_failed(c, MBGW_C_E_NOMEM);
		}
		return;
	}
	if (c->url.tls)
		tls_start(c);
	else
		upgrade_start(c);
}

/* Tries the addresses from c->ai_cur on. */
static void tcp_next(struct mbgw_client *c)
{
	char e[80];
	for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
		struct addrinfo *a = c->ai_cur;
		set_peer(c, a);
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			snprintf(c->tcp_err, sizeof c->tcp_err, "cannot connect to %s: %s", c->peer,
				 errstr(errno, e, sizeof e));
			continue;
		}
		c->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			tcp_connected(c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->phase = PH_TCP;
			return;
		}
		snprintf(c->tcp_err, sizeof c->tcp_err, "cannot connect to %s: %s", c->peer,
			 errstr(errno, e, sizeof e));
		close(fd);
		c->fd = -1;
	}
	set_err(c, "%s%s", c->tcp_err, c->has_proxy ? " (the proxy)" : "");
	attempt_failed(c, MBGW_C_E_CONNECT);
}

/* Host names are resolved on a short-lived thread, so that an
 * application's loop never blocks in getaddrinfo(): the thread signals an
 * eventfd that mbgw_client_fd() hands out meanwhile. The job is shared by
 * the thread and the client and freed by whichever lets go last, so a
 * client freed (or timed out) during a slow lookup leaves nothing behind
 * but a thread that finishes alone. IP literals skip all this. */
struct resolve_job {
	atomic_int refs;
	atomic_int done;
	int efd;
	int gai;                /* getaddrinfo's result, valid once done */
	int gai_errno;
	struct addrinfo *res;
	char host[256];
	char port[8];
};

static void job_release(struct resolve_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	close(j->efd);
	free(j);
}

static void *resolve_thread(void *arg)
{
	struct resolve_job *j = arg;
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	j->gai = getaddrinfo(j->host, j->port, &hints, &j->res);
	j->gai_errno = errno;
	atomic_store(&j->done, 1);
	uint64_t one = 1;
	ssize_t w = write(j->efd, &one, sizeof one);
	(void)w; /* a full eventfd is already readable */
	job_release(j);
	return NULL;
}

/* Starts resolving host:port. Returns 0 (c->resolve set, or c->ai set at
 * once for an IP literal or when no thread can be started), or a
 * getaddrinfo error code. */
static int resolve_start(struct mbgw_client *c, const char *host, const char *port)
{
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
	int g = getaddrinfo(host, port, &hints, &c->ai);
	if (g != EAI_NONAME)
		return g;
	c->ai = NULL;
	struct resolve_job *j = calloc(1, sizeof *j);
	if (!j)
		goto out_sync;
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0)
		goto out_free_job;
	snprintf(j->host, sizeof j->host, "%s", host);
	snprintf(j->port, sizeof j->port, "%s", port);
	atomic_init(&j->refs, 2);
	atomic_init(&j->done, 0);
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0)
		goto out_close_efd;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, resolve_thread, j);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		goto out_close_efd;
	c->resolve = j;
	c->phase = PH_RESOLVE;
	return 0;
out_close_efd:
	close(j->efd);
out_free_job:
	free(j);
out_sync:
	/* No thread: resolve here, as a blocking client would. */
	hints.ai_flags = AI_NUMERICSERV;
	return getaddrinfo(host, port, &hints, &c->ai);
}

static void resolve_failed(struct mbgw_client *c, int g, int e)
{
	const char *host = c->has_proxy ? c->proxy.host : c->url.host;
	set_err(c, "cannot resolve %s%s: %s", host, c->has_proxy ? " (the proxy)" : "",
		g == EAI_SYSTEM ? strerror(e) : gai_strerror(g));
	attempt_failed(c, MBGW_C_E_RESOLVE);
}

static void resolve_progress(struct mbgw_client *c)
{
	struct resolve_job *j = c->resolve;
	if (!atomic_load(&j->done))
		return;
	int g = j->gai, e = j->gai_errno;
	c->ai = j->res;
	j->res = NULL;
	c->resolve = NULL;
	job_release(j);
	c->phase = PH_NONE;
	if (g != 0) {
		c->ai = NULL;
		resolve_failed(c, g, e);
		return;
	}
	c->ai_cur = c->ai;
	tcp_next(c);
}

static void attempt_start(struct mbgw_client *c)
{
	c->attempts++;
	c->state = MBGW_CLIENT_CONNECTING;
	c->deadline = now_ms() + (uint64_t)c->o.connect_timeout_ms;
	c->http_status = 0;
	c->proxy_status = 0;
	c->tls_verify_failed = false;
	c->close_sent = c->close_rcvd = false;
	c->ping_out = false;
	c->tcp_err[0] = 0;
	memset(&c->hs, 0, sizeof c->hs);
	const char *host = c->has_proxy ? c->proxy.host : c->url.host;
	unsigned port = c->has_proxy ? c->proxy.port : c->url.port;
	char ps[8];
	snprintf(ps, sizeof ps, "%u", port);
	snprintf(c->peer, sizeof c->peer, "%s", host);
	int g = resolve_start(c, host, ps);
	if (g != 0) {
		c->ai = NULL;
		resolve_failed(c, g, errno);
		return;
	}
	if (c->resolve)
		return;
	c->ai_cur = c->ai;
	tcp_next(c);
}

static void tcp_progress(struct mbgw_client *c)
{
	struct pollfd p = { c->fd, POLLOUT, 0 };
	if (poll(&p, 1, 0) <= 0)
		return;
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (!err) {
		tcp_connected(c);
		return;
	}
	char e[80];
	snprintf(c->tcp_err, sizeof c->tcp_err, "cannot connect to %s: %s", c->peer, errstr(err, e, sizeof e));
	close(c->fd);
	c->fd = -1;
	c->ai_cur = c->ai_cur->ai_next;
	tcp_next(c);
}

static void proxy_progress(struct mbgw_client *c)
{
	if (c->out.len) {
		if (transport_flush(c) < 0) {
			attempt_failed(c, MBGW_C_E_PROXY);
			return;
		}
		if (c->out.len)
			return;
	}
	/* The answer is read into c->in (not peeked: a proxy that sends half
	 * an answer and stalls must not make us spin). Nothing may follow
	 * it: after CONNECT the client speaks first, in TLS and in HTTP. */
	struct cl_http_resp r;
	char why[200];
	int hl = 0;
	for (;;) {
		ssize_t n = transport_read(c);
		if (n == -1)
			return;
		if (n <= -2) {
			attempt_failed(c, MBGW_C_E_PROXY);
			return;
		}
		if (n == 0) {
			set_err(c, "proxy %s closed the connection without answering CONNECT", c->peer);
			attempt_failed(c, MBGW_C_E_PROXY);
			return;
		}
		hl = cl_http_parse((const char *)c->in.data, c->in.len, &r, why, sizeof why);
		if (hl < 0) {
			set_err(c, "proxy %s: %s", c->peer, why);
			attempt_failed(c, MBGW_C_E_PROXY);
			return;
		}
		if (hl > 0)
			break;
	}
	c->proxy_status = r.status;
	/* 407 is the standard answer; some proxies (tinyproxy) answer a
	 * wrong password with 401. */
	if (r.status == 407 || (r.status == 401 && c->proxy.has_auth)) {
		set_err(c, "proxy %s requires authentication: %d %.*s%s", c->peer, r.status,
			(int)(r.reason_len < 100 ? r.reason_len : 100), r.reason,
			c->proxy.has_auth ? " (the credentials given were refused)" : " (give user:pass@ in the proxy URL)");
		attempt_failed(c, MBGW_C_E_PROXY_AUTH);
		return;
	}
	if (r.status < 200 || r.status > 299) {
		set_err(c, "proxy %s refused the tunnel to %s: %d %.*s", c->peer, c->url.hostport, r.status,
			(int)(r.reason_len < 100 ? r.reason_len : 100), r.reason);
		attempt_failed(c, MBGW_C_E_PROXY);
		return;
	}
	if (c->in.len != (size_t)hl) {
		set_err(c, "proxy %s sent data after its answer to CONNECT", c->peer);
		attempt_failed(c, MBGW_C_E_PROXY);
		return;
	}
	c->in.len = 0;
	if (c->url.tls)
		tls_start(c);
	else
		upgrade_start(c);
}

static void tls_progress(struct mbgw_client *c);

static void tls_start(struct mbgw_client *c)
{
	c->phase = PH_TLS;
	c->ssl = SSL_new(c->ssl_ctx);
	BIO *b = c->ssl ? BIO_new(bio_meth) : NULL;
	if (!b) {
		set_err(c, "TLS: out of memory");
		attempt_failed(c, MBGW_C_E_NOMEM);
		return;
	}
	BIO_set_data(b, (void *)(intptr_t)c->fd);
	SSL_set_bio(c->ssl, b, b);
	const char *name = c->s_sni ? c->s_sni : c->url.host;
	unsigned char tmp[16];
	bool is_ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	/* RFC 6066 §3: no IP literals in SNI. */
	if (!is_ip)
		SSL_set_tlsext_host_name(c->ssl, name);
	if (!c->o.insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : SSL_set1_host(c->ssl, name);
		if (ok != 1) {
			set_err(c, "TLS: cannot set the name to verify (%s)", name);
			attempt_failed(c, MBGW_C_E_TLS);
			return;
		}
	}
	SSL_set_connect_state(c->ssl);
	tls_progress(c);
}

static void tls_progress(struct mbgw_client *c)
{
	c->ssl_want_write = false;
	errno = 0;
	int r = SSL_connect(c->ssl);
	if (r == 1) {
		upgrade_start(c);
		return;
	}
	int se = SSL_get_error(c->ssl, r);
	if (se == SSL_ERROR_WANT_READ)
		return;
	if (se == SSL_ERROR_WANT_WRITE) {
		c->ssl_want_write = true;
		return;
	}
	long vr = SSL_get_verify_result(c->ssl);
	char why[200], e[80];
	if (vr != X509_V_OK) {
		c->tls_verify_failed = true;
		set_err(c, "TLS: certificate verify failed: %s (server %s)", X509_verify_cert_error_string(vr),
			c->url.hostport);
		ERR_clear_error();
	} else if (se == SSL_ERROR_SYSCALL && errno) {
		set_err(c, "TLS handshake with %s: %s", c->peer, errstr(errno, e, sizeof e));
		ERR_clear_error();
	} else if (se == SSL_ERROR_SYSCALL || (se == SSL_ERROR_SSL && ERR_peek_last_error() == 0)) {
		set_err(c, "TLS handshake with %s: the server closed the connection (not a TLS server?)", c->peer);
	} else {
		ssl_errstr(why, sizeof why);
		set_err(c, "TLS handshake with %s: %s", c->peer, why);
	}
	attempt_failed(c, MBGW_C_E_TLS);
}

static void upgrade_start(struct mbgw_client *c)
{
	c->phase = PH_UPGRADE;
	uint8_t raw[16];
	if (random_bytes(raw, sizeof raw) < 0) {
		set_err(c, "getrandom: %s", strerror(errno));
		attempt_failed(c, MBGW_C_E_IO);
		return;
	}
	EVP_EncodeBlock((unsigned char *)c->key, raw, sizeof raw);
	struct buf *b = &c->out;
	bool host_given = false, ua_given = false;
	for (size_t i = 0; i < c->nheaders; i++) {
		if (strncasecmp(c->headers[i], "Host:", 5) == 0)
			host_given = true;
		if (strncasecmp(c->headers[i], "User-Agent:", 11) == 0)
			ua_given = true;
	}
	char line[2600];
	int n = snprintf(line, sizeof line, "GET %s HTTP/1.1\r\n", c->url.path);
	int rc = buf_append(b, line, (size_t)n);
	if (!host_given) {
		n = snprintf(line, sizeof line, "Host: %s\r\n", c->url.hostport);
		rc |= buf_append(b, line, (size_t)n);
	}
	n = snprintf(line, sizeof line,
		     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n", c->key);
	rc |= buf_append(b, line, (size_t)n);
	if (c->nprotos) {
		rc |= buf_append(b, "Sec-WebSocket-Protocol: ", 24);
		for (size_t i = 0; i < c->nprotos; i++) {
			if (i)
				rc |= buf_append(b, ", ", 2);
			rc |= buf_append(b, c->protos[i], strlen(c->protos[i]));
		}
		rc |= buf_append(b, "\r\n", 2);
	}
	if (c->o.compress) {
		/* Offer client_max_window_bits: the server may then limit the
		 * window we compress with (RFC 7692 §7.1.2.2). */
		static const char ext[] = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
		rc |= buf_append(b, ext, sizeof ext - 1);
	}
	if (!ua_given) {
		static const char ua[] = "User-Agent: libmbgw-client/1.0\r\n";
		rc |= buf_append(b, ua, sizeof ua - 1);
	}
	for (size_t i = 0; i < c->nheaders; i++) {
		rc |= buf_append(b, c->headers[i], strlen(c->headers[i]));
		rc |= buf_append(b, "\r\n", 2);
	}
	rc |= buf_append(b, "\r\n", 2);
	if (rc) {
		set_err(c, "out of memory");
		attempt_failed(c, MBGW_C_E_NOMEM);
	}
}

static int deliver(struct mbgw_client *c, int op, const uint8_t *d, size_t n);
static void process_frames(struct mbgw_client *c);
static int queue_flush(struct mbgw_client *c);

static void opened(struct mbgw_client *c)
{
	struct ws_deflate *d = NULL;
	if (c->hs.deflate) {
		/* The codec is written for the server: its "server" side is the
		 * one that compresses (tx) and its "client" side the one that
		 * inflates (rx). For us the roles swap. */
		struct ws_deflate_config cfg;
		ws_deflate_config_default(&cfg);
		cfg.threshold = c->o.compress_threshold;
		struct ws_deflate_params p = {
			.server_no_context_takeover = c->hs.dp.client_no_context_takeover,
			.client_no_context_takeover = c->hs.dp.server_no_context_takeover,
			.server_max_window_bits = c->hs.dp.client_max_window_bits,
			.client_max_window_bits = c->hs.dp.server_max_window_bits,
		};
		if (ws_deflate_init(&c->deflate, &cfg, &p) < 0) {
			set_err(c, "permessage-deflate: cannot use the agreed parameters");
			attempt_failed(c, MBGW_C_E_PROTOCOL);
			return;
		}
		c->deflate_on = true;
		d = &c->deflate;
	}
	cl_reader_init(&c->rd, c->o.max_message_size, d);
	c->state = MBGW_CLIENT_OPEN;
	c->phase = PH_NONE;
	c->connections++;
	c->streak = 0;
	c->last_rx = now_ms();
	c->ping_out = false;
	c->close_code = 0;
	c->close_reason[0] = 0;
	c->err[0] = 0;
	if (c->o.on_open) {
		c->in_cb++;
		c->o.on_open(c, c->o.userdata);
		c->in_cb--;
	}
	if (c->state != MBGW_CLIENT_OPEN)
		return;
	if (queue_flush(c) < 0)
		return;
	process_frames(c);
}

static void upgrade_progress(struct mbgw_client *c)
{
	if (c->out.len && transport_flush(c) < 0) {
		attempt_failed(c, MBGW_C_E_IO);
		return;
	}
	for (;;) {
		ssize_t r = transport_read(c);
		if (r == -1)
			break;
		if (r <= -2) {
			attempt_failed(c, r == -3 ? MBGW_C_E_TLS : MBGW_C_E_IO);
			return;
		}
		if (r == 0) {
			/* A transport failure (a server restarting, overloaded, or
			 * not speaking HTTP), so retried like a refused connection. */
			set_err(c, "%s closed the connection without answering the upgrade request", c->peer);
			attempt_failed(c, MBGW_C_E_CONNECT);
			return;
		}
		struct cl_http_resp resp;
		char why[300];
		int hl = cl_http_parse((const char *)c->in.data, c->in.len, &resp, why, sizeof why);
		if (hl < 0) {
			set_err(c, "invalid answer to the upgrade request: %s", why);
			attempt_failed(c, MBGW_C_E_HANDSHAKE);
			return;
		}
		if (hl == 0)
			continue;
		c->http_status = resp.status;
		struct cl_hs_offer off = { c->key, (const char *const *)c->protos, c->nprotos, c->o.compress != 0 };
		if (cl_handshake_check(&resp, &off, &c->hs, why, sizeof why) < 0) {
			set_err(c, "%s", why);
			attempt_failed(c, MBGW_C_E_HANDSHAKE);
			return;
		}
		buf_consume(&c->in, (size_t)hl);
		opened(c);
		return;
	}
}

/* ------------------------------------------------------------------ */
/* The open connection                                                  */

/* Hands a message to its request, on_message, or the recv queue.
 * Returns 0, or -1 when it could not be kept (out of memory). */
static int deliver(struct mbgw_client *c, int op, const uint8_t *d, size_t n)
{
	if (c->reqs && op == WS_OP_TEXT) {
		struct mbgw_client_msg m;
		char idb[24];
		if (mbgw_client_msg_parse(d, n, &m) == 0 && mbgw_client_msg_attr(&m, "id", idb, sizeof idb) == 0) {
			char *end;
			errno = 0;
			unsigned long long id = strtoull(idb, &end, 10);
			if (!errno && *end == 0) {
				for (struct req **pp = &c->reqs; *pp; pp = &(*pp)->next) {
					struct req *r = *pp;
					if (r->id != id)
						continue;
					*pp = r->next;
					c->in_cb++;
					r->cb(c, 0, d, n, r->arg);
					c->in_cb--;
					free(r);
					return 0;
				}
			}
		}
	}
	if (c->o.on_message) {
		CB(c, on_message, op, d, n);
		return 0;
	}
	struct qmsg *m = malloc(sizeof *m + n + 1);
	if (!m)
		return -1;
	m->next = NULL;
	m->type = op;
	m->len = n;
	memcpy(m->data, d, n);
	m->data[n] = 0;
	*c->itail = m;
	c->itail = &m->next;
	c->ibytes += n;
	return 0;
}

/* Fails the connection from our side (RFC 6455 §7.1.7): close frame with
 * code, then the socket. */
static void fail_conn(struct mbgw_client *c, int code, const char *reason)
{
	bool ours = code == WS_CLOSE_INTERNAL; /* our trouble (memory), not the server's */
	set_err(c, "%s%s (closing with %d)", ours ? "" : "protocol error from the server: ", reason, code);
	if (!c->close_sent) {
		send_close_frame(c, code, reason, strlen(reason));
		transport_flush(c);
	}
	conn_ended(c, ours ? MBGW_C_E_NOMEM : MBGW_C_E_PROTOCOL, WS_CLOSE_ABNORMAL, reason);
}

static void process_frames(struct mbgw_client *c)
{
	size_t off = 0;
	while (c->state == MBGW_CLIENT_OPEN || c->state == MBGW_CLIENT_CLOSING) {
		struct cl_event ev;
		size_t used = cl_reader_next(&c->rd, c->in.data + off, c->in.len - off, &ev);
		if (ev.kind == CL_EV_ERROR) {
			fail_conn(c, ev.code, ev.reason);
			return;
		}
		if (used == 0)
			break;
		off += used;
		switch (ev.kind) {
		case CL_EV_MESSAGE:
			/* A message we cannot keep fails the connection (1011)
			 * rather than vanish. */
			if (!c->close_rcvd && deliver(c, ev.opcode, ev.data, ev.len) < 0) {
				fail_conn(c, WS_CLOSE_INTERNAL, "Out of memory keeping a message");
				return;
			}
			break;
		case CL_EV_PING:
			/* A server that pings without reading our pongs must not
			 * grow the write buffer without bound: when it is behind,
			 * pings go unanswered (RFC 6455 §5.5.3 allows answering
			 * only the latest). */
			if (!c->close_sent && c->out.len < PONG_BACKLOG)
				put_frame(c, true, 0, WS_OP_PONG, ev.data, ev.len);
			break;
		case CL_EV_PONG:
			CB(c, on_pong, ev.data, ev.len);
			break;
		case CL_EV_CLOSE: {
			if (c->close_rcvd)
				break;
			c->close_rcvd = true;
			c->close_code = ev.code;
			size_t rl = ev.len < sizeof c->close_reason - 1 ? ev.len : sizeof c->close_reason - 1;
			memcpy(c->close_reason, ev.data, rl);
			c->close_reason[rl] = 0;
			if (!c->close_sent) {
				/* §5.5.1: echo the code. */
				send_close_frame(c, ev.code, NULL, 0);
			}
			c->state = MBGW_CLIENT_CLOSING;
			c->close_deadline = now_ms() + (uint64_t)c->o.close_timeout_ms;
			break;
		}
		default:
			break;
		}
	}
	if (c->fd >= 0 && off)
		buf_consume(&c->in, off);
	/* Drained after a large frame: give the memory back. */
	if (c->in.len == 0 && c->in.cap > CL_READER_KEEP)
		buf_free(&c->in);
}

static void open_io(struct mbgw_client *c)
{
	/* Bounded, so that one busy connection cannot hold the caller's loop;
	 * when the bound is hit, more_input makes the next timeout 0 (TLS may
	 * hold decrypted bytes that poll() cannot see). */
	c->more_input = false;
	for (int rounds = 0;; rounds++) {
		if (rounds == 64 || inbox_full(c)) {
			c->more_input = true;
			break;
		}
		ssize_t r = transport_read(c);
		if (r == -1)
			break;
		if (r <= -2) {
			char why[sizeof c->err];
			snprintf(why, sizeof why, "%s", c->err);
			conn_ended(c, MBGW_C_E_IO, WS_CLOSE_ABNORMAL, why);
			return;
		}
		if (r == 0) {
			if (c->close_rcvd) {
				char reason[sizeof c->close_reason];
				snprintf(reason, sizeof reason, "%s", c->close_reason);
				/* The close handshake completed: a clean end, whoever began it. */
				conn_ended(c, 0, c->close_code, reason);
			} else {
				set_err(c, "%s closed the connection without a close frame", c->peer);
				conn_ended(c, MBGW_C_E_CLOSED, WS_CLOSE_ABNORMAL, "connection closed without a close frame");
			}
			return;
		}
		c->last_rx = now_ms();
		c->ping_out = false;
		process_frames(c);
		if (c->state != MBGW_CLIENT_OPEN && c->state != MBGW_CLIENT_CLOSING)
			return;
	}
	if (c->out.len && transport_flush(c) < 0) {
		char why[sizeof c->err];
		snprintf(why, sizeof why, "%s", c->err);
		conn_ended(c, MBGW_C_E_IO, WS_CLOSE_ABNORMAL, why);
	}
}

static int queue_flush(struct mbgw_client *c)
{
	while (c->qhead && c->state == MBGW_CLIENT_OPEN) {
		struct qmsg *m = c->qhead;
		c->qhead = m->next;
		if (!c->qhead)
			c->qtail = &c->qhead;
		c->qcount--;
		c->qbytes -= m->len;
		int rc = send_now(c, m->type, m->data, m->len);
		free(m);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void timers(struct mbgw_client *c, uint64_t now)
{
	for (struct req **pp = &c->reqs; *pp;) {
		struct req *r = *pp;
		if (now < r->deadline) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		c->in_cb++;
		r->cb(c, MBGW_C_E_TIMEOUT, NULL, 0, r->arg);
		c->in_cb--;
		free(r);
		pp = &c->reqs; /* the callback may have changed the list */
	}
	switch (c->state) {
	case MBGW_CLIENT_CONNECTING:
		if (now >= c->deadline) {
			int ms = c->o.connect_timeout_ms;
			switch (c->phase) {
			case PH_RESOLVE:
				set_err(c, "resolving %s timed out after %d ms", c->peer, ms);
				break;
			case PH_TCP:
				set_err(c, "connect to %s timed out after %d ms", c->peer, ms);
				break;
			case PH_PROXY:
				set_err(c, "proxy %s did not answer CONNECT within %d ms", c->peer, ms);
				break;
			case PH_TLS:
				set_err(c, "TLS handshake with %s timed out after %d ms", c->peer, ms);
				break;
			default:
				set_err(c, "handshake timeout: %s did not answer the upgrade request within %d ms",
					c->peer, ms);
			}
			attempt_failed(c, MBGW_C_E_TIMEOUT);
		}
		break;
	case MBGW_CLIENT_OPEN:
		if (c->o.ping_interval_ms <= 0)
			break;
		if (c->ping_out && now >= c->pong_deadline) {
			set_err(c, "heartbeat timeout: no pong from %s within %d ms", c->peer, c->o.pong_timeout_ms);
			conn_ended(c, MBGW_C_E_TIMEOUT, WS_CLOSE_ABNORMAL, "heartbeat timeout");
		} else if (!c->ping_out && now >= c->last_rx + (uint64_t)c->o.ping_interval_ms) {
			uint8_t p[8];
			for (int i = 0; i < 8; i++)
				p[i] = (uint8_t)(now >> (56 - 8 * i));
			put_frame(c, true, 0, WS_OP_PING, p, sizeof p);
			c->ping_out = true;
			c->pong_deadline = now + (uint64_t)c->o.pong_timeout_ms;
		}
		break;
	case MBGW_CLIENT_CLOSING:
		if (now >= c->close_deadline) {
			if (c->app_close) {
				set_err(c, "the server did not complete the close handshake within %d ms",
					c->o.close_timeout_ms);
				c->close_timed_out = true;
				transport_close(c);
				finish(c, 0);
			} else {
				char reason[sizeof c->close_reason];
				snprintf(reason, sizeof reason, "%s", c->close_reason);
				conn_ended(c, MBGW_C_E_CLOSED, c->close_rcvd ? c->close_code : WS_CLOSE_ABNORMAL, reason);
			}
		}
		break;
	case MBGW_CLIENT_WAITING:
		if (now >= c->reconnect_at)
			attempt_start(c);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Public: life cycle and loop                                          */

MBGW_CLIENT_API int mbgw_client_connect(struct mbgw_client *c)
{
	if (!c)
		return MBGW_C_E_INVAL;
	if (c->state != MBGW_CLIENT_IDLE && c->state != MBGW_CLIENT_CLOSED)
		return MBGW_C_E_STATE;
	c->streak = 0;
	c->app_close = false;
	c->final_pending = false;
	c->final_rc = 0;
	c->err[0] = 0;
	attempt_start(c);
	if (c->state == MBGW_CLIENT_CLOSED) {
		c->final_pending = false;
		return c->final_rc;
	}
	return 0;
}

MBGW_CLIENT_API void mbgw_client_free(struct mbgw_client *c)
{
	if (!c)
		return;
	transport_close(c);
	queue_drop(c);
	while (c->ihead) {
		struct qmsg *m = c->ihead;
		c->ihead = m->next;
		free(m);
	}
	while (c->reqs) {
		struct req *r = c->reqs;
		c->reqs = r->next;
		free(r);
	}
	cl_reader_free(&c->rd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->ssl_ctx)
		SSL_CTX_free(c->ssl_ctx);
	for (size_t i = 0; i < c->nheaders; i++)
		free(c->headers[i]);
	free(c->headers);
	for (size_t i = 0; i < c->nprotos; i++)
		free(c->protos[i]);
	free(c->protos);
	free(c->s_url);
	free(c->s_ca_file);
	free(c->s_ca_path);
	free(c->s_cert);
	free(c->s_key);
	free(c->s_sni);
	free(c);
}

MBGW_CLIENT_API int mbgw_client_state(const struct mbgw_client *c)
{
	return c ? c->state : MBGW_CLIENT_CLOSED;
}

MBGW_CLIENT_API int mbgw_client_fd(const struct mbgw_client *c)
{
	if (c && c->resolve)
		return c->resolve->efd;
	return c ? c->fd : -1;
}

MBGW_CLIENT_API short mbgw_client_events(const struct mbgw_client *c)
{
	if (c && c->resolve)
		return POLLIN;
	if (!c || c->fd < 0)
		return 0;
	switch (c->phase) {
	case PH_TCP:
		return POLLOUT;
	case PH_TLS:
		return (short)(POLLIN | (c->ssl_want_write ? POLLOUT : 0));
	default:
		return (short)((inbox_full(c) ? 0 : POLLIN) | (c->out.len || c->ssl_want_write ? POLLOUT : 0));
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

MBGW_CLIENT_API int mbgw_client_timeout(const struct mbgw_client *c)
{
	if (!c)
		return -1;
	uint64_t t = UINT64_MAX;
	for (const struct req *r = c->reqs; r; r = r->next)
		t = min_u64(t, r->deadline);
	switch (c->state) {
	case MBGW_CLIENT_CONNECTING:
		t = min_u64(t, c->deadline);
		break;
	case MBGW_CLIENT_OPEN:
		if (c->more_input && !inbox_full(c))
			return 0;
		if (c->o.ping_interval_ms > 0)
			t = min_u64(t, c->ping_out ? c->pong_deadline
						   : c->last_rx + (uint64_t)c->o.ping_interval_ms);
		break;
	case MBGW_CLIENT_CLOSING:
		if (c->more_input && !inbox_full(c))
			return 0;
		t = min_u64(t, c->close_deadline);
		break;
	case MBGW_CLIENT_WAITING:
		t = min_u64(t, c->reconnect_at);
		break;
	default:
		break;
	}
	if (t == UINT64_MAX)
		return -1;
	uint64_t now = now_ms();
	if (t <= now)
		return 0;
	return t - now > INT32_MAX ? INT32_MAX : (int)(t - now);
}

MBGW_CLIENT_API int mbgw_client_step(struct mbgw_client *c, short revents)
{
	if (!c)
		return MBGW_C_E_INVAL;
	switch (c->state) {
	case MBGW_CLIENT_CONNECTING:
		switch (c->phase) {
		case PH_RESOLVE:
			resolve_progress(c);
			break;
		case PH_TCP:
			tcp_progress(c);
			break;
		case PH_PROXY:
			proxy_progress(c);
			break;
		case PH_TLS:
			tls_progress(c);
			break;
		case PH_UPGRADE:
			upgrade_progress(c);
			break;
		default:
			break;
		}
		/* A phase that completed may have left work for the next one. */
		if (c->state == MBGW_CLIENT_CONNECTING && c->phase == PH_UPGRADE && c->out.len)
			upgrade_progress(c);
		else if (c->state == MBGW_CLIENT_CONNECTING && c->phase == PH_PROXY && c->out.len)
			proxy_progress(c);
		break;
	case MBGW_CLIENT_OPEN:
	case MBGW_CLIENT_CLOSING:
		open_io(c);
		break;
	default:
		break;
	}
	timers(c, now_ms());
	/* Whatever the timers or callbacks wrote goes out now. */
	if ((c->state == MBGW_CLIENT_OPEN || c->state == MBGW_CLIENT_CLOSING) && c->out.len &&
	    transport_flush(c) < 0) {
		char why[sizeof c->err];
		snprintf(why, sizeof why, "%s", c->err);
		conn_ended(c, MBGW_C_E_IO, WS_CLOSE_ABNORMAL, why);
	}
	if (c->final_pending) {
		c->final_pending = false;
		return c->final_rc ? c->final_rc : MBGW_C_E_CLOSED;
	}
	return c->state == MBGW_CLIENT_CLOSED ? MBGW_C_E_CLOSED : 0;
}

/* One round of the blocking loop: waits at most max_ms (negative: the
 * client's own timeout only). */
static int loop_once(struct mbgw_client *c, int max_ms)
{
	int t = mbgw_client_timeout(c);
	int wait = t < 0 ? max_ms : (max_ms < 0 ? t : (t < max_ms ? t : max_ms));
	if (wait < 0)
		wait = 1000; /* nothing to wait for but the socket: look again each second */
	struct pollfd p = { mbgw_client_fd(c), mbgw_client_events(c), 0 };
	if (p.fd >= 0)
		poll(&p, 1, wait);
	else if (wait > 0)
		poll(NULL, 0, wait);
	return mbgw_client_step(c, p.revents);
}

static int remaining(uint64_t end, int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	uint64_t now = now_ms();
	return now >= end ? 0 : (int)(end - now);
}

MBGW_CLIENT_API int mbgw_client_open(struct mbgw_client *c, int timeout_ms)
{
	if (!c)
		return MBGW_C_E_INVAL;
	if (c->in_cb)
		return MBGW_C_E_STATE;
	if (c->state == MBGW_CLIENT_IDLE || c->state == MBGW_CLIENT_CLOSED) {
		int rc = mbgw_client_connect(c);
		if (rc < 0)
			return rc;
	}
	uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		if (c->state == MBGW_CLIENT_OPEN)
			return 0;
		if (c->state == MBGW_CLIENT_CLOSED)
			return c->final_rc ? c->final_rc : MBGW_C_E_CLOSED;
		int left = remaining(end, timeout_ms);
		if (left == 0)
			return MBGW_C_E_TIMEOUT;
		loop_once(c, left);
	}
}

MBGW_CLIENT_API int mbgw_client_run(struct mbgw_client *c, int timeout_ms)
{
	if (!c)
		return MBGW_C_E_INVAL;
	if (c->in_cb)
		return MBGW_C_E_STATE;
	uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		if (c->state == MBGW_CLIENT_CLOSED || c->state == MBGW_CLIENT_IDLE)
			return c->final_rc ? c->final_rc : MBGW_C_E_CLOSED;
		int left = remaining(end, timeout_ms);
		if (left == 0)
			return 0;
		loop_once(c, left);
	}
}

MBGW_CLIENT_API int mbgw_client_recv(struct mbgw_client *c, int *type, void **data, size_t *len,
				     int timeout_ms)
{
	if (!c || !type || !data || !len)
		return MBGW_C_E_INVAL;
	if (c->in_cb || c->o.on_message)
		return MBGW_C_E_STATE;
	uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		if (c->ihead) {
			struct qmsg *m = c->ihead;
			c->ihead = m->next;
			if (!c->ihead)
				c->itail = &c->ihead;
			c->ibytes -= m->len;
			void *d = malloc(m->len + 1);
			if (!d) {
				free(m);
				return MBGW_C_E_NOMEM;
			}
			memcpy(d, m->data, m->len + 1);
			*type = m->type;
			*data = d;
			*len = m->len;
			free(m);
			return 0;
		}
		if (c->state == MBGW_CLIENT_CLOSED || c->state == MBGW_CLIENT_IDLE)
			return c->final_rc ? c->final_rc : MBGW_C_E_CLOSED;
		int left = remaining(end, timeout_ms);
		if (left == 0)
			return MBGW_C_E_AGAIN;
		loop_once(c, left);
	}
}

/* ------------------------------------------------------------------ */
/* Public: sending and closing                                          */

MBGW_CLIENT_API int mbgw_client_send(struct mbgw_client *c, int type, const void *data, size_t len)
{
	if (!c || (type != MBGW_CLIENT_TEXT && type != MBGW_CLIENT_BINARY) || (!data && len))
		return MBGW_C_E_INVAL;
	if (type == MBGW_CLIENT_TEXT && len && !ws_utf8_valid(data, len))
		return MBGW_C_E_INVAL;
	switch (c->state) {
	case MBGW_CLIENT_OPEN:
		return send_now(c, type, data, len);
	case MBGW_CLIENT_CONNECTING:
	case MBGW_CLIENT_WAITING:
		if (c->qcount + 1 > c->o.queue_max_messages || c->qbytes + len > c->o.queue_max_bytes)
			return MBGW_C_E_QUEUE_FULL;
		struct qmsg *m = malloc(sizeof *m + len + 1);
		if (!m)
			return MBGW_C_E_NOMEM;
		m->next = NULL;
		m->type = type;
		m->len = len;
		if (len)
			memcpy(m->data, data, len);
		*c->qtail = m;
		c->qtail = &m->next;
		c->qcount++;
		c->qbytes += len;
		return 0;
	case MBGW_CLIENT_CLOSING:
		return MBGW_C_E_CLOSED;
	default:
		return MBGW_C_E_NOTCONN;
	}
}

MBGW_CLIENT_API int mbgw_client_ping(struct mbgw_client *c, const void *data, size_t len)
{
	if (!c || (!data && len))
		return MBGW_C_E_INVAL;
	if (len > WS_MAX_CONTROL)
		return MBGW_C_E_TOOBIG;
	if (c->state != MBGW_CLIENT_OPEN)
		return MBGW_C_E_NOTCONN;
	return put_frame(c, true, 0, WS_OP_PING, data, len);
}

MBGW_CLIENT_API size_t mbgw_client_pending(const struct mbgw_client *c)
{
	return c ? c->out.len : 0;
}

MBGW_CLIENT_API int mbgw_client_close(struct mbgw_client *c, int code, const char *reason, int timeout_ms)
{
	if (!c)
		return MBGW_C_E_INVAL;
	size_t rl = reason ? strlen(reason) : 0;
	if (code < 0 || code > 0xFFFF || !ws_close_code_valid((uint16_t)code) || rl > 123 ||
	    (rl && !ws_utf8_valid((const uint8_t *)reason, rl)))
		return MBGW_C_E_INVAL;
	if (timeout_ms != 0 && c->in_cb)
		return MBGW_C_E_STATE;
	c->app_close = true;
	c->close_timed_out = false;
	queue_drop(c);
	switch (c->state) {
	case MBGW_CLIENT_OPEN: {
		int rc = send_close_frame(c, code, reason, rl);
		if (rc < 0)
			return rc;
		c->state = MBGW_CLIENT_CLOSING;
		c->close_deadline = now_ms() + (uint64_t)c->o.close_timeout_ms;
		if (transport_flush(c) < 0) {
			finish(c, 0);
			return 0;
		}
		break;
	}
	case MBGW_CLIENT_CLOSING:
		break;
	case MBGW_CLIENT_CONNECTING:
	case MBGW_CLIENT_WAITING:
	case MBGW_CLIENT_IDLE:
		finish(c, 0);
		return 0;
	default:
		return 0;
	}
	if (timeout_ms == 0)
		return 0;
	uint64_t end = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	while (c->state != MBGW_CLIENT_CLOSED) {
		int left = remaining(end, timeout_ms);
		if (left == 0) {
			set_err(c, "the server did not complete the close handshake within %d ms", timeout_ms);
			finish(c, 0);
			c->final_pending = false;
			return MBGW_C_E_TIMEOUT;
		}
		loop_once(c, left);
	}
	c->final_pending = false;
	return c->close_timed_out ? MBGW_C_E_TIMEOUT : 0;
}

/* ------------------------------------------------------------------ */
/* Public: requests                                                     */

MBGW_CLIENT_API int mbgw_client_request_async(struct mbgw_client *c, const char *type, const char *json,
					      int timeout_ms, mbgw_client_reply_cb cb, void *arg,
					      uint64_t *id_out)
{
	if (!c || !type || !cb || timeout_ms <= 0)
		return MBGW_C_E_INVAL;
	struct req *r = calloc(1, sizeof *r);
	if (!r)
		return MBGW_C_E_NOMEM;
	char idb[24];
	uint64_t id = c->next_id;
	snprintf(idb, sizeof idb, "%llu", (unsigned long long)id);
	char *m;
	size_t ml;
	int rc = mbgw_client_msg_build(type, idb, json, &m, &ml);
	if (rc < 0) {
		free(r);
		return rc;
	}
	rc = mbgw_client_send(c, MBGW_CLIENT_TEXT, m, ml);
	free(m);
	if (rc < 0) {
		free(r);
		return rc;
	}
	c->next_id++;
	r->id = id;
	r->deadline = now_ms() + (uint64_t)timeout_ms;
	r->cb = cb;
	r->arg = arg;
	r->next = c->reqs;
	c->reqs = r;
	if (id_out)
		*id_out = id;
	return 0;
}

struct req_wait {
	bool done;
	int rc;
	char *data;
	size_t len;
};

static void on_reply(struct mbgw_client *c, int rc, const void *data, size_t len, void *arg)
{
	struct req_wait *w = arg;
	w->done = true;
	w->rc = rc;
	if (rc == 0) {
		w->data = malloc(len + 1);
		if (!w->data) {
			w->rc = MBGW_C_E_NOMEM;
			return;
		}
		memcpy(w->data, data, len);
		w->data[len] = 0;
		w->len = len;
	}
}

MBGW_CLIENT_API int mbgw_client_request(struct mbgw_client *c, const char *type, const char *json,
					int timeout_ms, char **reply, size_t *reply_len)
{
	if (!c || !reply)
		return MBGW_C_E_INVAL;
	if (c->in_cb)
		return MBGW_C_E_STATE;
	struct req_wait w = { 0 };
	int rc = mbgw_client_request_async(c, type, json, timeout_ms, on_reply, &w, NULL);
	if (rc < 0)
		return rc;
	/* The request's own deadline bounds this loop. */
	while (!w.done)
		loop_once(c, -1);
	if (w.rc < 0)
		return w.rc;
	*reply = w.data;
	if (reply_len)
		*reply_len = w.len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Public: what happened                                                */

MBGW_CLIENT_API const char *mbgw_client_last_error(const struct mbgw_client *c)
{
	return c ? c->err : "";
}

MBGW_CLIENT_API int mbgw_client_http_status(const struct mbgw_client *c)
{
	return c ? c->http_status : 0;
}

MBGW_CLIENT_API const char *mbgw_client_subprotocol(const struct mbgw_client *c)
{
	return c && c->hs.subprotocol[0] ? c->hs.subprotocol : NULL;
}

MBGW_CLIENT_API const char *mbgw_client_extensions(const struct mbgw_client *c)
{
	return c && c->hs.extensions[0] ? c->hs.extensions : NULL;
}

MBGW_CLIENT_API int mbgw_client_close_code(const struct mbgw_client *c, const char **reason)
{
	if (!c)
		return 0;
	if (reason)
		*reason = c->close_reason;
	return c->close_code;
}

MBGW_CLIENT_API unsigned mbgw_client_connections(const struct mbgw_client *c)
{
	return c ? c->connections : 0;
}

MBGW_CLIENT_API unsigned mbgw_client_attempts(const struct mbgw_client *c)
{
	return c ? c->attempts : 0;
}

MBGW_CLIENT_API const char *mbgw_client_strerror(int rc)
{
	switch (rc) {
	case MBGW_CLIENT_OK: return "success";
	case MBGW_C_E_INVAL: return "invalid argument";
	case MBGW_C_E_NOMEM: return "out of memory";
	case MBGW_C_E_URL: return "invalid URL";
	case MBGW_C_E_RESOLVE: return "host name could not be resolved";
	case MBGW_C_E_CONNECT: return "connection failed";
	case MBGW_C_E_TIMEOUT: return "timed out";
	case MBGW_C_E_TLS: return "TLS failure";
	case MBGW_C_E_PROXY: return "proxy refused the tunnel";
	case MBGW_C_E_PROXY_AUTH: return "proxy authentication required";
	case MBGW_C_E_HANDSHAKE: return "WebSocket handshake rejected";
	case MBGW_C_E_PROTOCOL: return "WebSocket protocol error";
	case MBGW_C_E_CLOSED: return "connection closed";
	case MBGW_C_E_NOTCONN: return "not connected";
	case MBGW_C_E_QUEUE_FULL: return "send queue full";
	case MBGW_C_E_TOOBIG: return "message too big";
	case MBGW_C_E_IO: return "I/O error";
	case MBGW_C_E_AGAIN: return "nothing available yet";
	case MBGW_C_E_STATE: return "not allowed in this state";
	case MBGW_C_E_GAVE_UP: return "gave up reconnecting";
	case MBGW_C_E_NOTFOUND: return "not found";
	case MBGW_C_E_RANGE: return "buffer too small";
	default: return "unknown error";
	}
}
