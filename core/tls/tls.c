/* tls — see tls.h. */
#include "tls/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/proverr.h>
#include <openssl/x509v3.h>

#include "util/util_log.h"

/* Mozilla "intermediate" (TLS 1.2 part; TLS 1.3 suites are OpenSSL's
 * defaults, which match it). */
#define DEFAULT_CIPHERS                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

struct tls_named {
	SSL_CTX *ctx;
	char **names;
	size_t nnames;
};

struct tls_ctx {
	atomic_int refs;           /* 1 while installed + 1 per live session */
	SSL_CTX *def;
	struct tls_named *named;
	size_t nnamed;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ctx *g_current;

const char *tls_error_text(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();
	unsigned long next;
	/* The last queued error is usually the most specific. */
	while ((next = ERR_get_error()))
		e = next;
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof buf);
	return buf;
}

/* Takes the OpenSSL error queue (oldest first). The last error is often
 * a generic wrapper ("PEM lib"); the cause sits earlier in the queue. */
static size_t take_errors(unsigned long *out, size_t cap)
{
	size_t n = 0;
	unsigned long e;
	while ((e = ERR_get_error()))
		if (n < cap)
			out[n++] = e;
	return n;
}

/* Reason codes are per library, so errors are matched on both. */
struct lib_reason {
	int lib;
	int reason;
};

static bool has_reason(const unsigned long *errs, size_t n, const struct lib_reason *want, size_t nw)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < nw; k++)
			if (ERR_GET_LIB(errs[i]) == want[k].lib && ERR_GET_REASON(errs[i]) == want[k].reason)
				return true;
	return false;
}

/* The first (most specific) OpenSSL error of the queue, as text. */
static const char *first_error_text(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();
	ERR_clear_error();
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof buf);
	return buf;
}

static void add_err(struct buf *errs, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add_err(struct buf *errs, const char *where, const char *fmt, ...)
{
	char msg[1200];
	int n = snprintf(msg, sizeof msg, "%s: ", where);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
	if (len > sizeof msg - 2)
		len = sizeof msg - 2;
	msg[len++] = '\n';
	buf_append(errs, msg, len);
}

static bool readable_file(const char *path, const char *where, const char *what, struct buf *errs)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		add_err(errs, where, "%s %s: %s", what, path, strerror(errno));
		return false;
	}
	if (S_ISDIR(st.st_mode)) {
		add_err(errs, where, "%s %s cannot be read: Is a directory", what, path);
		return false;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		add_err(errs, where, "%s %s cannot be read: %s", what, path, strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

static SSL_CTX *load_ctx_resolved(const struct conf_tls *def, const struct conf_tls *ct, struct buf *errs);

static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	out[0] = 0;
	if (!b)
		return;
	ASN1_TIME_print(b, t);
	int n = BIO_read(b, out, (int)cap - 1);
	out[n > 0 ? n : 0] = 0;
	BIO_free(b);
}

static int passphrase_cb(char *buf, int size, int rwflag, void *userdata)
{
	(void)rwflag;
	const char *p = userdata;
	if (!p)
		return 0;
	int n = (int)strlen(p);
	if (n >= size)
		return 0;
	memcpy(buf, p, (size_t)n);
	return n;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		   unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	/* WebSocket over TLS is HTTP/1.1 (RFC 6455 §4.1); a client that only
	 * offers other protocols gets no ALPN answer rather than a failure. */
	for (unsigned i = 0; i < inlen;) {
		unsigned l = in[i];
		if (i + 1 + l > inlen)
			break;
		if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)l;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static bool name_matches(const char *pattern, const char *host)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(host, '.');
		return dot && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	(void)alert;
	struct tls_ctx *t = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (!host)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < t->nnamed; i++)
		for (size_t k = 0; k < t->named[i].nnames; k++)
			if (name_matches(t->named[i].names[k], host)) {
				SSL_set_SSL_CTX(ssl, t->named[i].ctx);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

static char *read_passphrase_file(const char *path, const char *where, struct buf *errs)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		add_err(errs, where, "key_passphrase_file %s: %s", path, strerror(errno));
		return NULL;
	}
	char line[1024];
	char *r = fgets(line, sizeof line, f);
	fclose(f);
	if (!r) {
		add_err(errs, where, "key_passphrase_file %s is empty", path);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = 0;
	return strdup(line);
}

/* Relative file names are relative to the configuration directory (as
 * plugin paths are), not to wherever mbgw was started from. */
static const char *resolve(const char *conf_dir, const char *path, char *out, size_t cap)
{
	if (!path || path[0] == '/' || !conf_dir)
		return path;
	snprintf(out, cap, "%s/%s", conf_dir, path);
	return out;
}

/* Loads one certificate + key (paths already resolved) into a new context
 * with the policy of def. */
static SSL_CTX *load_ctx_resolved(const struct conf_tls *def, const struct conf_tls *ct, struct buf *errs)
{
	const char *where = ct->where;
	if (!readable_file(ct->certificate, where, "certificate", errs) ||
	    !readable_file(ct->key, where, "key", errs))
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		add_err(errs, where, "cannot create a TLS context: %s", tls_error_text());
		return NULL;
	}
	int minv = def->min_version && strcmp(def->min_version, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE |
				 (def->session_tickets ? 0 : SSL_OP_NO_TICKET));
	/* Partial writes and moving buffers suit a write queue; releasing
	 * buffers keeps idle TLS connections small (busy connections keep
	 * theirs for a while, see transport_trim). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	/* Read ahead: one read() takes every record the socket holds instead
	 * of two per record (header, then body) — half the syscalls for
	 * small messages. transport_pending() accounts for what it buffers. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mbgw", 4);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	if (!SSL_CTX_set_cipher_list(ctx, def->ciphers ? def->ciphers : DEFAULT_CIPHERS)) {
		add_err(errs, def->where, "ciphers: no usable cipher in '%s'", def->ciphers ? def->ciphers : DEFAULT_CIPHERS);
		goto out_free;
	}
	if (def->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, def->ciphersuites)) {
		add_err(errs, def->where, "ciphersuites: no usable TLS 1.3 suite in '%s'", def->ciphersuites);
		goto out_free;
	}

	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, ct->certificate) != 1) {
		add_err(errs, where, "certificate %s is not a PEM certificate chain: %s", ct->certificate,
			first_error_text());
		goto out_free;
	}
	char *pass = ct->key_passphrase ? strdup(ct->key_passphrase)
		     : ct->key_passphrase_file ? read_passphrase_file(ct->key_passphrase_file, where, errs)
					       : NULL;
	if (ct->key_passphrase_file && !pass)
		goto out_free;
	SSL_CTX_set_default_passwd_cb(ctx, passphrase_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, pass);
	ERR_clear_error();
	int ok = SSL_CTX_use_PrivateKey_file(ctx, ct->key, SSL_FILETYPE_PEM);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	if (pass) {
		OPENSSL_cleanse(pass, strlen(pass));
		free(pass);
	}
	if (ok != 1) {
		static const struct lib_reason decrypt[] = {
			{ ERR_LIB_PROV, PROV_R_BAD_DECRYPT }, { ERR_LIB_EVP, EVP_R_BAD_DECRYPT },
			{ ERR_LIB_PEM, PEM_R_BAD_DECRYPT }, { ERR_LIB_PEM, PEM_R_BAD_PASSWORD_READ },
			{ ERR_LIB_PEM, PEM_R_PROBLEMS_GETTING_PASSWORD },
		};
		static const struct lib_reason mismatch[] = {
			{ ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH }, { ERR_LIB_X509, X509_R_KEY_TYPE_MISMATCH },
		};
		unsigned long q[32];
		size_t nq = take_errors(q, 32);
		if (has_reason(q, nq, mismatch, 2)) {
			add_err(errs, where, "key %s does not match certificate %s", ct->key, ct->certificate);
		} else if (has_reason(q, nq, decrypt, 5)) {
			add_err(errs, where, "key %s cannot be loaded: %s", ct->key,
				ct->key_passphrase || ct->key_passphrase_file
					? "wrong passphrase"
					: "the key is encrypted: set key_passphrase or key_passphrase_file");
		} else {
			char text[256] = "unknown TLS error";
			if (nq)
				ERR_error_string_n(q[0], text, sizeof text);
			add_err(errs, where, "key %s cannot be loaded: %s", ct->key, text);
		}
		goto out_free;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		add_err(errs, where, "key %s does not match certificate %s", ct->key, ct->certificate);
		goto out_free;
	}
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	if (cert) {
		char nb[64], na[64];
		time_text(X509_get0_notBefore(cert), nb, sizeof nb);
		time_text(X509_get0_notAfter(cert), na, sizeof na);
		if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
			add_err(errs, where, "certificate %s has expired (valid from %s until %s)", ct->certificate, nb, na);
			goto out_free;
		}
		if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
			add_err(errs, where, "certificate %s is not valid yet (valid from %s until %s)", ct->certificate,
				nb, na);
			goto out_free;
		}
	}

	const char *auth = def->client_auth ? def->client_auth : "off";
	if (strcmp(auth, "off") != 0) {
		struct stat st;
		bool dir = stat(def->client_ca, &st) == 0 && S_ISDIR(st.st_mode);
		if (!dir && !readable_file(def->client_ca, def->where, "client_ca", errs))
			goto out_free;
		ERR_clear_error();
		if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : def->client_ca, dir ? def->client_ca : NULL) != 1) {
			add_err(errs, def->where, "client_ca %s holds no usable CA certificate: %s", def->client_ca,
				first_error_text());
			goto out_free;
		}
		if (!dir) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(def->client_ca);
			if (!names || sk_X509_NAME_num(names) == 0) {
				add_err(errs, def->where, "client_ca %s holds no CA certificate", def->client_ca);
				sk_X509_NAME_pop_free(names, X509_NAME_free);
				goto out_free;
			}
			SSL_CTX_set_client_CA_list(ctx, names);
		}
		int mode = SSL_VERIFY_PEER;
		if (strcmp(auth, "required") == 0)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	return ctx;
out_free:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Loads one certificate + key into a new context with the policy of def. */
static SSL_CTX *load_ctx(const struct conf_tls *def_in, const struct conf_tls *ct_in, const char *conf_dir,
			 struct buf *errs)
{
	char p_cert[4096], p_key[4096], p_pass[4096], p_ca[4096];
	struct conf_tls ct = *ct_in, def = *def_in;
	ct.certificate = (char *)resolve(conf_dir, ct.certificate, p_cert, sizeof p_cert);
	ct.key = (char *)resolve(conf_dir, ct.key, p_key, sizeof p_key);
	ct.key_passphrase_file = (char *)resolve(conf_dir, ct.key_passphrase_file, p_pass, sizeof p_pass);
	def.client_ca = (char *)resolve(conf_dir, def.client_ca, p_ca, sizeof p_ca);
	return load_ctx_resolved(&def, &ct, errs);
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nnamed; i++) {
		SSL_CTX_free(t->named[i].ctx);
		for (size_t k = 0; k < t->named[i].nnames; k++)
			free(t->named[i].names[k]);
		free(t->named[i].names);
	}
	free(t->named);
	SSL_CTX_free(t->def);
	free(t);
}

struct tls_ctx *tls_ctx_build(const struct conf *c, const char *conf_dir, struct buf *errs)
{
	const struct conf_tls *def = NULL;
	for (size_t i = 0; i < c->ntls; i++)
		if (!c->tls[i].name)
			def = &c->tls[i];
	if (!def || !def->certificate)
		return NULL;
	struct tls_ctx *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	atomic_init(&t->refs, 1);
	size_t before = errs->len;
	t->def = load_ctx(def, def, conf_dir, errs);
	t->named = calloc(c->ntls, sizeof *t->named);
	for (size_t i = 0; t->named && i < c->ntls; i++) {
		const struct conf_tls *ct = &c->tls[i];
		if (!ct->name)
			continue;
		SSL_CTX *ctx = load_ctx(def, ct, conf_dir, errs);
		if (!ctx)
			continue;
		struct tls_named *n = &t->named[t->nnamed++];
		n->ctx = ctx;
		/* Copies: the configuration may be freed before the context. */
		n->names = calloc(ct->nserver_names, sizeof *n->names);
		for (size_t k = 0; n->names && k < ct->nserver_names; k++)
			if ((n->names[k] = strdup(ct->server_names[k])))
				n->nnames++;
	}
	if (!t->def || !t->named || errs->len != before) {
		if (!t->named)
			add_err(errs, def->where, "out of memory");
		tls_ctx_free(t);
		return NULL;
	}
	if (t->nnamed)
		SSL_CTX_set_tlsext_servername_callback(t->def, sni_cb),
		SSL_CTX_set_tlsext_servername_arg(t->def, t);
	return t;
}

static void tls_ctx_unref(struct tls_ctx *t)
{
	if (t && atomic_fetch_sub(&t->refs, 1) == 1)
		tls_ctx_free(t);
}

void tls_ctx_install(struct tls_ctx *t)
{
	pthread_mutex_lock(&g_lock);
	struct tls_ctx *old = g_current;
	g_current = t;
	pthread_mutex_unlock(&g_lock);
	/* Sessions still handshaking with the old contexts hold references
	 * (their SNI callback reads its table), so it goes with the last. */
	tls_ctx_unref(old);
}

SSL *tls_session_new(int fd)
{
	pthread_mutex_lock(&g_lock);
	struct tls_ctx *t = g_current;
	SSL *ssl = t ? SSL_new(t->def) : NULL;
	if (ssl)
		atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&g_lock);
	if (!ssl)
		return NULL;
	SSL_set_app_data(ssl, t);
	if (SSL_set_fd(ssl, fd) != 1) {
		tls_session_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

void tls_session_free(SSL *ssl)
{
	if (!ssl)
		return;
	struct tls_ctx *t = SSL_get_app_data(ssl);
	SSL_free(ssl);
	tls_ctx_unref(t);
}

int tls_peer_subject(SSL *ssl, char *out, size_t cap)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (!peer || SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -1;
	X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
	int n = BIO_read(b, out, (int)cap - 1);
	BIO_free(b);
	if (n < 0)
		n = 0;
	out[n] = 0;
	return n;
}
