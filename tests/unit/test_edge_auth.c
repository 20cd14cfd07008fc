/* test_edge_auth — authentication at the upgrade (core/edge/edge_auth).
 *
 * Everything secret is made at test time in a private temporary
 * directory: htpasswd lines hashed with crypt_rn (yescrypt, bcrypt,
 * sha512crypt, sha256crypt), RSA and EC keys and a certificate made with
 * OpenSSL, JWTs signed by libjwt (or put together by hand when the test
 * needs a header libjwt would not write). No key is committed.
 *
 * Requests are parsed by http_parser exactly as the server parses them.
 * Every refusal is checked for its status, its log reason and, where it
 * matters, the WWW-Authenticate value; every success for the identity,
 * the method and (JWT) the claims handed to plugins.
 */
#include <criterion/criterion.h>
#include <crypt.h>
#include <dirent.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "edge/edge_auth.h"
#include "mbgw/plugin.h"

/* 2026-11-26T14:00:00Z */
#define T0 ((time_t)1795701600)
#define SECRET "0123456789abcdef0123456789abcdef-hs256-test-secret"
#define TOKEN_A "tok-AAAAAAAAAAAAAAAAAAAA.aaaa~bbbb+cccc/dd=="
#define TOKEN_B "tok-BBBBBBBBBBBBBBBBBBBB"

/* ------------------------------------------------------------------ */
/* Files in a private directory. */

static char g_dir[64];

static void dir_setup(void)
{
	snprintf(g_dir, sizeof g_dir, "/tmp/mbgw-auth-XXXXXX");
	cr_assert(mkdtemp(g_dir), "mkdtemp");
}

static void dir_teardown(void)
{
	DIR *d = opendir(g_dir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(g_dir);
}

TestSuite(auth, .init = dir_setup, .fini = dir_teardown);

/* Writes a file in the test directory; returns its path (static slot). */
static const char *put(const char *name, const char *content)
{
	static char paths[8][512];
	static int slot;
	char *p = paths[slot++ % 8];
	snprintf(p, 512, "%s/%s", g_dir, name);
	FILE *f = fopen(p, "w");
	cr_assert(f, "cannot write %s", p);
	fputs(content, f);
	fclose(f);
	return p;
}

/* A crypt(3) hash of `password` made with `prefix` ("$y$", "$2b$" ...)
 * at the library's default cost. */
static char *hash(const char *prefix, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	cr_assert(crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt), "gensalt %s", prefix);
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h = crypt_rn(password, salt, cd, sizeof *cd);
	cr_assert(h, "crypt_rn %s", prefix);
	char *out = strdup(h);
	free(cd);
	return out;
}

/* ------------------------------------------------------------------ */
/* Keys. */

static EVP_PKEY *keygen(const char *type, const char *param, size_t bits)
{
	EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits)
					       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
	cr_assert(k, "keygen %s", type);
	return k;
}

static char *bio_string(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = 0;
	BIO_free(b);
	return s;
}

static char *pem_private(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	cr_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
	return bio_string(b);
}

static char *pem_public(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	cr_assert(PEM_write_bio_PUBKEY(b, k));
	return bio_string(b);
}

static char *pem_cert(EVP_PKEY *k)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"issuer", -1, -1, 0);
	X509_set_issuer_name(x, n);
	cr_assert(X509_sign(x, k, EVP_sha256()));
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	X509_free(x);
	return bio_string(b);
}

/* ------------------------------------------------------------------ */
/* Tokens. */

/* A JWT signed by libjwt: alg with key (secret or private PEM), claims
 * given as JSON. */
static char *jwt_sign(jwt_alg_t alg, const char *key, size_t keylen, const char *claims)
{
	jwt_t *j;
	cr_assert_eq(jwt_new(&j), 0);
	cr_assert_eq(jwt_add_grants_json(j, claims), 0, "claims: %s", claims);
	cr_assert_eq(jwt_set_alg(j, alg, (const unsigned char *)key, (int)keylen), 0);
	char *t = jwt_encode_str(j);
	cr_assert(t, "jwt_encode_str");
	jwt_free(j);
	return t;
}

static char *hs256(const char *claims)
{
	return jwt_sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims);
}

static void b64url(const unsigned char *p, size_t n, char *out)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = A[v >> 18];
		out[o++] = A[v >> 12 & 63];
		out[o++] = A[v >> 6 & 63];
		out[o++] = A[v & 63];
	}
	if (n - i == 1) {
		out[o++] = A[p[i] >> 2];
		out[o++] = A[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
		out[o++] = A[v >> 10];
		out[o++] = A[v >> 4 & 63];
		out[o++] = A[(v & 15) << 2];
	}
	out[o] = 0;
}

/* A JWT put together by hand, for headers libjwt would not write:
 * HMAC-SHA256 with `key` when key is not NULL, else no signature. */
static char *craft(const char *header, const char *claims, const void *key, size_t keylen)
{
	char *t = malloc(16384);
	b64url((const unsigned char *)header, strlen(header), t);
	strcat(t, ".");
	b64url((const unsigned char *)claims, strlen(claims), t + strlen(t));
	size_t signed_len = strlen(t);
	strcat(t, ".");
	if (key) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int ml;
		HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)t, signed_len, mac, &ml);
		b64url(mac, ml, t + strlen(t));
	}
	return t;
}

/* ------------------------------------------------------------------ */
/* Requests and checks. */

struct req {
	char text[32768];
	struct http_request r;
};

/* Parses "GET <target> HTTP/1.1" with the given header lines (NULL-ended). */
static struct req *vmake_req(const char *target, va_list ap)
{
	struct req *q = calloc(1, sizeof *q);
	size_t n = (size_t)snprintf(q->text, sizeof q->text, "GET %s HTTP/1.1\r\nHost: x\r\n", target);
	const char *h;
	while ((h = va_arg(ap, const char *)))
		n += (size_t)snprintf(q->text + n, sizeof q->text - n, "%s\r\n", h);
	n += (size_t)snprintf(q->text + n, sizeof q->text - n, "\r\n");
	cr_assert_lt(n, sizeof q->text);
	struct http_limits lim = { sizeof q->text, 64 };
	struct http_error err = { 0 };
	ssize_t r = http_parse_request(q->text, n, &lim, &q->r, &err);
	cr_assert_eq(r, (ssize_t)n, "test request does not parse: %d %s", err.status, err.reason);
	return q;
}

/* Checks a request at T0 (or `now`); the result is static. */
static struct edge_auth_result g_res;

static int vcheck_at(const struct edge_auth *a, time_t now, const char *target, va_list ap)
{
	struct req *q = vmake_req(target, ap);
	free(g_res.claims_json);
	memset(&g_res, 0x5A, sizeof g_res);
	int rc = edge_auth_check(a, &q->r, now, &g_res);
	free(q);
	cr_assert_eq(rc, g_res.status);
	cr_assert(memchr(g_res.reason, 0, sizeof g_res.reason));
	cr_assert(memchr(g_res.identity, 0, sizeof g_res.identity));
	cr_assert(memchr(g_res.www_authenticate, 0, sizeof g_res.www_authenticate));
	if (rc == 0) {
		cr_assert(g_res.method);
		cr_assert_str_empty(g_res.www_authenticate);
	} else {
		cr_assert_str_not_empty(g_res.reason);
		cr_assert_str_empty(g_res.identity);
		cr_assert_null(g_res.claims_json);
	}
	return rc;
}

static int check_at(const struct edge_auth *a, time_t now, const char *target, ...)
{
	va_list ap;
	va_start(ap, target);
	int rc = vcheck_at(a, now, target, ap);
	va_end(ap);
	return rc;
}

/* check(a, target, header..., NULL) at T0 */
static int check(const struct edge_auth *a, const char *target, ...)
{
	va_list ap;
	va_start(ap, target);
	int rc = vcheck_at(a, T0, target, ap);
	va_end(ap);
	return rc;
}

#define assert_ok(rc, id)                                                                    \
	do {                                                                                 \
		cr_assert_eq((rc), 0, "refused (%d): %s", g_res.status, g_res.reason);       \
		cr_assert_str_eq(g_res.identity, (id));                                      \
	} while (0)

#define assert_refused(rc, st, why)                                                          \
	do {                                                                                 \
		cr_assert_eq((rc), (st), "status %d, expected %d (%s)", g_res.status, (st),  \
			     g_res.reason);                                                  \
		cr_assert_str_eq(g_res.reason, (why));                                       \
	} while (0)

static char g_err[512];

static struct edge_auth *load(const struct edge_auth_config *cfg)
{
	struct edge_auth *a = NULL;
	int rc = edge_auth_load(cfg, &a, g_err, sizeof g_err);
	cr_assert_eq(rc, 0, "load failed: %s", g_err);
	cr_assert(a);
	return a;
}

static void load_fails(const struct edge_auth_config *cfg, int code, const char *want)
{
	struct edge_auth *a = (struct edge_auth *)1;
	int rc = edge_auth_load(cfg, &a, g_err, sizeof g_err);
	cr_assert_eq(rc, code, "rc %d, expected %d (%s)", rc, code, g_err);
	cr_assert_null(a);
	cr_assert_str_eq(g_err, want);
}

/* Same, when the message holds the temporary path: compares from `from`. */
static void load_fails_end(const struct edge_auth_config *cfg, int code, const char *want_tail)
{
	struct edge_auth *a = (struct edge_auth *)1;
	int rc = edge_auth_load(cfg, &a, g_err, sizeof g_err);
	cr_assert_eq(rc, code, "rc %d, expected %d (%s)", rc, code, g_err);
	cr_assert_null(a);
	size_t n = strlen(g_err), m = strlen(want_tail);
	cr_assert(n >= m && strcmp(g_err + n - m, want_tail) == 0, "message '%s'\n does not end with '%s'",
		  g_err, want_tail);
	cr_assert(strstr(g_err, g_dir), "message '%s' does not name the file", g_err);
}

static char *basic_header(const char *user_colon_password)
{
	static char h[1024];
	unsigned char b[800];
	EVP_EncodeBlock(b, (const unsigned char *)user_colon_password, (int)strlen(user_colon_password));
	snprintf(h, sizeof h, "Authorization: Basic %s", b);
	return h;
}

static char *bearer_header(const char *tok)
{
	static char h[16384];
	snprintf(h, sizeof h, "Authorization: Bearer %s", tok);
	return h;
}

/* ------------------------------------------------------------------ */
/* Basic. */

static struct edge_auth *basic_setup(void)
{
	char text[4096];
	char *y = hash("$y$", "yes-pass"), *b = hash("$2b$", "bc:pass"), *s6 = hash("$6$", "sha512 pass"),
	     *s5 = hash("$5$", "sha256");
	snprintf(text, sizeof text,
		 "# users\n"
		 "\n"
		 "alice:%s\n"
		 "  bob:%s  \r\n"
		 "carol:%s\n"
		 "dave:%s\n"
		 "\xc3\xa9milie:%s\n",
		 y, b, s6, s5, s6);
	free(y), free(b), free(s6), free(s5);
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_BASIC, .realm = "test", .basic_file = put("users", text)
	};
	return load(&cfg);
}

Test(auth, basic_each_hash_accepted)
{
	struct edge_auth *a = basic_setup();
	assert_ok(check(a, "/ws", basic_header("alice:yes-pass"), NULL), "alice");
	cr_assert_str_eq(g_res.method, "basic");
	cr_assert_null(g_res.claims_json);
	cr_assert_str_eq(g_res.reason, "basic user 'alice'");
	/* a ':' in the password is part of it (only the first one splits) */
	assert_ok(check(a, "/ws", basic_header("bob:bc:pass"), NULL), "bob");
	assert_ok(check(a, "/ws", basic_header("carol:sha512 pass"), NULL), "carol");
	assert_ok(check(a, "/ws", basic_header("dave:sha256"), NULL), "dave");
	assert_ok(check(a, "/ws", basic_header("\xc3\xa9milie:sha512 pass"), NULL), "\xc3\xa9milie");
	/* the scheme is case-insensitive (RFC 7235 §2.1), blanks after it may repeat */
	char h[1100];
	snprintf(h, sizeof h, "Authorization: bASIC   %s", basic_header("alice:yes-pass") + 21);
	assert_ok(check(a, "/ws", h, NULL), "alice");
	edge_auth_free(a);
}

Test(auth, basic_refusals)
{
	struct edge_auth *a = basic_setup();
	assert_refused(check(a, "/ws", basic_header("alice:wrong"), NULL), 401, "bad password for 'alice'");
	cr_assert_str_eq(g_res.www_authenticate, "Basic realm=\"test\", charset=\"UTF-8\"");
	cr_assert_str_eq(g_res.method, "basic");
	assert_refused(check(a, "/ws", basic_header("alice:"), NULL), 401, "bad password for 'alice'");
	assert_refused(check(a, "/ws", basic_header("alice:yes-pass "), NULL), 401,
		       "bad password for 'alice'");
	assert_refused(check(a, "/ws", basic_header("bob:bc"), NULL), 401, "bad password for 'bob'");
	assert_refused(check(a, "/ws", basic_header("carol:wrong"), NULL), 401, "bad password for 'carol'");
	assert_refused(check(a, "/ws", basic_header("Alice:yes-pass"), NULL), 401, "unknown user 'Alice'");
	assert_refused(check(a, "/ws", basic_header("bob\n:x"), NULL), 401, "unknown user 'bob\\x0a'");
	assert_refused(check(a, "/ws", basic_header(":yes-pass"), NULL), 401, "unknown user ''");
	assert_refused(check(a, "/ws", NULL), 401, "no credentials (looked in: Authorization header)");
	cr_assert_null(g_res.method);
	cr_assert_str_eq(g_res.www_authenticate, "Basic realm=\"test\", charset=\"UTF-8\"");
	/* only Basic is on */
	assert_refused(check(a, "/ws", bearer_header(TOKEN_A), NULL), 401,
		       "Bearer token, but neither bearer nor jwt is enabled");
	assert_refused(check(a, "/ws", "Authorization: Digest username=\"alice\"", NULL), 401,
		       "unsupported authorization scheme 'Digest'");
	/* a user whose name reaches past what a user can be */
	char up[400];
	memset(up, 'u', 300);
	strcpy(up + 300, ":x");
	cr_assert_eq(check(a, "/ws", basic_header(up), NULL), 401);
	cr_assert(strstr(g_res.reason, "longer than 255 bytes"), "%s", g_res.reason);
	edge_auth_free(a);
}

Test(auth, basic_malformed_is_400)
{
	struct edge_auth *a = basic_setup();
	assert_refused(check(a, "/ws", "Authorization: Basic", NULL), 400, "empty Basic credentials");
	assert_refused(check(a, "/ws", "Authorization: Basic ", NULL), 400, "empty Basic credentials");
	/* "alice" alone: no ':' */
	assert_refused(check(a, "/ws", basic_header("alice"), NULL), 400,
		       "Basic credentials have no ':' between user and password");
	const char *bad[] = {
		"Authorization: Basic YWxpY2U6eWVzLXBhc3M",     /* padding missing */
		"Authorization: Basic YWxpY2U6eWVzLXBhc3M=x",   /* data after padding */
		"Authorization: Basic YWxpY2U6eWVz!XBhc3M=",    /* not in the alphabet */
		"Authorization: Basic YWxpY2U6eWVzLXBhc3N=",    /* non-zero unused bits (§3.5) */
		"Authorization: Basic YWxp Y2U6eWVzLXBhc3M=",   /* blank inside */
		"Authorization: Basic YWxpY2U6eWVzLXBhc3M=\t",  /* (trimmed by the parser: valid) */
		"Authorization: Basic YWxpY2U6eWVzLXBhc3M-",    /* base64url is not base64 */
		"Authorization: Basic ====",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = check(a, "/ws", bad[i], NULL);
		if (i == 5) {
			assert_ok(rc, "alice");
			continue;
		}
		assert_refused(rc, 400, "Basic credentials are not valid base64");
	}
	/* NUL inside the decoded credentials */
	assert_refused(check(a, "/ws", "Authorization: Basic YWxpY2UAOnllcy1wYXNz", NULL), 400,
		       "Basic credentials contain a NUL byte");
	char longh[3000] = "Authorization: Basic ";
	memset(longh + strlen(longh), 'A', 2000);
	assert_refused(check(a, "/ws", longh, NULL), 400, "Basic credentials of 2000 bytes are too long");
	assert_refused(check(a, "/ws", basic_header("alice:yes-pass"), basic_header("alice:yes-pass"), NULL),
		       400, "2 Authorization headers");
	edge_auth_free(a);
}

Test(auth, basic_load_errors)
{
	struct edge_auth_config cfg = { .methods = EDGE_AUTH_BASIC };
	load_fails(&cfg, MBGW_E_INVAL, "auth: basic needs basic_file");
	cfg.basic_file = "/nonexistent/users";
	load_fails(&cfg, MBGW_E_NOTFOUND,
		   "basic_file /nonexistent/users: cannot open: No such file or directory");
	char *y = hash("$y$", "x");
	char text[1024];

	snprintf(text, sizeof text, "alice:%s\n# bob\nbob:hunter2\n", y);
	cfg.basic_file = put("u1", text);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":3: plain-text password, not a crypt(3) hash: refused; use a yescrypt ($y$) or"
		       " bcrypt ($2b$) hash (mkpasswd -m yescrypt, htpasswd -nB) for 'bob'");
	cfg.basic_file = put("u2", "carol:$apr1$abc$0123456789012345678901\n");
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":1: Apache MD5 ($apr1$) hash, which crypt(3) does not support; make a bcrypt"
		       " one with htpasswd -B for 'carol'");
	char *m5 = hash("$1$", "x");
	snprintf(text, sizeof text, "\n\ndan:%s\n", m5);
	cfg.basic_file = put("u3", text);
	load_fails_end(&cfg, MBGW_E_INVAL, ":3: MD5-crypt ($1$) hash, too weak: refused for 'dan'");
	cfg.basic_file = put("u4", "erin:abJnggxhB/yWI\n");
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":1: plain-text password or DES hash (too weak either way): refused; use a"
		       " yescrypt ($y$) or bcrypt ($2b$) hash for 'erin'");
	cfg.basic_file = put("u5", "frank:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: unsalted SHA-1 ({SHA}) hash, refused for 'frank'");
	cfg.basic_file = put("u6", "gina:$9$nothing\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: unknown or malformed crypt(3) hash for 'gina'");
	cfg.basic_file = put("u7", "hal\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: no ':' between user and hash");
	snprintf(text, sizeof text, ":%s\n", y);
	cfg.basic_file = put("u8", text);
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: empty user name");
	cfg.basic_file = put("u9", "ivy:\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: empty password hash for 'ivy'");
	snprintf(text, sizeof text, "jo:%s\nkim:%s\n\njo:%s\n", y, y, y);
	cfg.basic_file = put("u10", text);
	load_fails_end(&cfg, MBGW_E_INVAL, ":4: duplicate user 'jo' (first on line 1)");
	cfg.basic_file = put("u11", "# nobody\n\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ": no user in the file");
	snprintf(text, sizeof text, "lee:%s trailing\n", y);
	cfg.basic_file = put("u12", text);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":1: malformed hash (blank, control character or ':' in it) for 'lee'");
	/* a hash cut short (or grown) by a bad copy-paste */
	char *b = hash("$2b$", "x"), *s6 = hash("$6$", "x");
	const char *cut[] = { y, b, s6 };
	for (size_t i = 0; i < 3; i++) {
		snprintf(text, sizeof text, "mo:%s\n", cut[i]);
		text[strlen(text) - 2] = '\n';
		text[strlen(text) - 1] = 0;
		cfg.basic_file = put("u13", text);
		load_fails_end(&cfg, MBGW_E_INVAL,
			       ":1: truncated or malformed hash (the part after the last '$' has the wrong"
			       " length) for 'mo'");
	}
	snprintf(text, sizeof text, "mo:%sA\n", s6);
	cfg.basic_file = put("u13", text);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":1: truncated or malformed hash (the part after the last '$' has the wrong"
		       " length) for 'mo'");
	free(b);
	free(s6);
	cfg.basic_file = g_dir;
	struct edge_auth *a = NULL;
	cr_assert_eq(edge_auth_load(&cfg, &a, g_err, sizeof g_err), MBGW_E_NOTFOUND, "%s", g_err);
	cr_assert(strstr(g_err, "Is a directory"), "%s", g_err);
	free(y);
	free(m5);
}

/* ------------------------------------------------------------------ */
/* Bearer. */

static struct edge_auth *bearer_setup(uint32_t extra, const char *query, const char *cookie)
{
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_BEARER | extra,
		.realm = "r",
		.bearer_file = put("tokens", "# service tokens\n" TOKEN_A "   svc-a  (ci)\n\n" TOKEN_B "\n"),
		.token_query_param = query,
		.token_cookie = cookie,
	};
	if (extra & EDGE_AUTH_JWT) {
		cfg.jwt_algorithms = "HS256";
		cfg.jwt_secret_file = put("secret", SECRET "\n");
		cfg.jwt_leeway_s = 60;
	}
	return load(&cfg);
}

Test(auth, bearer_ok_and_refused)
{
	struct edge_auth *a = bearer_setup(0, NULL, NULL);
	assert_ok(check(a, "/ws", bearer_header(TOKEN_A), NULL), "svc-a  (ci)");
	cr_assert_str_eq(g_res.method, "bearer");
	cr_assert_str_eq(g_res.reason,
			 "bearer token of line 2 (subject 'svc-a  (ci)') from Authorization header");
	assert_ok(check(a, "/ws", bearer_header(TOKEN_B), NULL), "");
	assert_ok(check(a, "/ws", "Authorization: bearer " TOKEN_B, NULL), "");

	assert_refused(check(a, "/ws", bearer_header(TOKEN_B "x"), NULL), 401,
		       "token not in bearer file (from Authorization header)");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\", error=\"invalid_token\"");
	cr_assert_str_eq(g_res.method, "bearer");
	/* a prefix of a real token is not it */
	assert_refused(check(a, "/ws", bearer_header("tok-BBBBBBBBBBBBBBBBBBB"), NULL), 401,
		       "token not in bearer file (from Authorization header)");
	assert_refused(check(a, "/ws", "Authorization: Bearer", NULL), 400,
		       "empty token in Authorization header");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\", error=\"invalid_request\"");
	assert_refused(check(a, "/ws", "Authorization: Bearer a,b", NULL), 400,
		       "malformed token in Authorization header: byte 2 (0x2c) is not a token character");
	assert_refused(check(a, "/ws", "Authorization: Bearer " TOKEN_B " x", NULL), 400,
		       "malformed token in Authorization header: byte 25 (0x20) is not a token character");
	assert_refused(check(a, "/ws", "Authorization: Bearer =abc", NULL), 400,
		       "malformed token in Authorization header: byte 1 (0x3d) is not a token character");
	assert_refused(check(a, "/ws", NULL), 401, "no credentials (looked in: Authorization header)");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\"");
	assert_refused(check(a, "/ws", basic_header("a:b"), NULL), 401,
		       "Basic credentials, but basic is not enabled");
	/* a JWT is just an unknown token when jwt is off */
	char *t = hs256("{\"sub\":\"x\",\"exp\":1900000000}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "token not in bearer file (from Authorization header)");
	free(t);
	char big[EDGE_AUTH_TOKEN_MAX + 100];
	memset(big, 'A', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_refused(check(a, "/ws", bearer_header(big), NULL), 401,
		       "token of 8291 bytes is longer than 8192");
	edge_auth_free(a);
}

Test(auth, bearer_load_errors)
{
	struct edge_auth_config cfg = { .methods = EDGE_AUTH_BEARER };
	load_fails(&cfg, MBGW_E_INVAL, "auth: bearer needs bearer_file");
	cfg.bearer_file = put("t1", "short subj\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":1: token of 5 characters (must be 16 to 8192)");
	cfg.bearer_file = put("t2", TOKEN_B "\n\nabc\"defghijklmnopqrs\n");
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":3: character 4 of the token (0x22) is not allowed in a bearer token"
		       " (RFC 6750: A-Z a-z 0-9 - . _ ~ + / and trailing =)");
	cfg.bearer_file = put("t3", TOKEN_B " one\n" TOKEN_A "\n" TOKEN_B " two\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ":3: duplicate token (first on line 1)");
	cfg.bearer_file = put("t4", "\n# none\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ": no token in the file");
	cfg.bearer_file = put("t5", TOKEN_B " a\x01 b\n");
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ":1: subject longer than 255 bytes or with control characters");
}

/* ------------------------------------------------------------------ */
/* JWT. */

struct keys {
	EVP_PKEY *rsa, *ec256, *ec384;
	char *rsa_priv, *rsa_pub, *ec256_priv, *ec256_pub, *ec384_priv, *ec384_pub;
};

static struct keys g_k;

static void keys_make(void)
{
	g_k.rsa = keygen("RSA", NULL, 2048);
	g_k.ec256 = keygen("EC", "P-256", 0);
	g_k.ec384 = keygen("EC", "P-384", 0);
	g_k.rsa_priv = pem_private(g_k.rsa);
	g_k.rsa_pub = pem_public(g_k.rsa);
	g_k.ec256_priv = pem_private(g_k.ec256);
	g_k.ec256_pub = pem_public(g_k.ec256);
	g_k.ec384_priv = pem_private(g_k.ec384);
	g_k.ec384_pub = pem_public(g_k.ec384);
}

static struct edge_auth *jwt_setup(const char *algs, const char *pub_pem, const char *iss,
				   const char *aud, uint32_t leeway)
{
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_JWT,
		.realm = "r",
		.jwt_algorithms = algs,
		.jwt_issuer = iss,
		.jwt_audience = aud,
		.jwt_leeway_s = leeway,
	};
	if (strstr(algs, "HS"))
		cfg.jwt_secret_file = put("secret", SECRET "\n");
	if (pub_pem)
		cfg.jwt_public_key = put("pub.pem", pub_pem);
	return load(&cfg);
}

Test(auth, jwt_hs256_ok)
{
	struct edge_auth *a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	char *t = hs256("{\"sub\":\"alice\",\"exp\":1795702000,\"roles\":[\"admin\"],\"n\":1.5}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "alice");
	cr_assert_str_eq(g_res.method, "jwt");
	cr_assert_str_eq(g_res.reason, "jwt HS256 sub 'alice' from Authorization header");
	cr_assert_not_null(g_res.claims_json);
	cJSON *c = cJSON_Parse(g_res.claims_json);
	cr_assert(c, "claims_json is not JSON: %s", g_res.claims_json);
	cr_assert_str_eq(cJSON_GetObjectItem(c, "sub")->valuestring, "alice");
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "roles"), 0)->valuestring, "admin");
	cr_assert_eq(cJSON_GetObjectItem(c, "exp")->valuedouble, 1795702000.0);
	cr_assert_eq(cJSON_GetObjectItem(c, "n")->valuedouble, 1.5);
	cJSON_Delete(c);
	free(t);
	/* no sub: accepted with an empty identity */
	t = hs256("{\"exp\":1795702000}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "");
	free(t);
	/* typ "JWT" in any case is fine, and a header without typ too */
	t = craft("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{\"sub\":\"t\",\"exp\":1795702000}", SECRET,
		  strlen(SECRET));
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "t");
	free(t);
	t = craft("{\"alg\":\"HS256\"}", "{\"sub\":\"t2\",\"exp\":1795702000}", SECRET, strlen(SECRET));
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "t2");
	free(t);
	edge_auth_free(a);
}

Test(auth, jwt_rs256_es256_ok)
{
	keys_make();
	const char *claims = "{\"sub\":\"svc\",\"exp\":1795702000,\"iss\":\"https://idp\",\"aud\":\"mbgw\"}";
	struct edge_auth *a = jwt_setup("RS256", g_k.rsa_pub, "https://idp", "mbgw", 60);
	char *t = jwt_sign(JWT_ALG_RS256, g_k.rsa_priv, strlen(g_k.rsa_priv), claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "svc");
	cr_assert_str_eq(g_res.reason, "jwt RS256 sub 'svc' from Authorization header");
	/* signed by another RSA key */
	EVP_PKEY *other = keygen("RSA", NULL, 2048);
	char *other_priv = pem_private(other);
	char *t2 = jwt_sign(JWT_ALG_RS256, other_priv, strlen(other_priv), claims);
	assert_refused(check(a, "/ws", bearer_header(t2), NULL), 401, "JWT signature does not verify (RS256)");
	/* one bit of the payload changed */
	char *dot = strchr(t, '.');
	dot[3] ^= 1;
	cr_assert_eq(check(a, "/ws", bearer_header(t), NULL), 401);
	free(t), free(t2), free(other_priv);
	EVP_PKEY_free(other);
	edge_auth_free(a);

	a = jwt_setup("ES256", g_k.ec256_pub, NULL, NULL, 0);
	t = jwt_sign(JWT_ALG_ES256, g_k.ec256_priv, strlen(g_k.ec256_priv), claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "svc");
	cr_assert_str_eq(g_res.method, "jwt");
	/* the last byte of s changed */
	size_t n = strlen(t);
	t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT signature does not verify (ES256)");
	free(t);
	/* signed with the P-384 key under ES384: not accepted */
	t = jwt_sign(JWT_ALG_ES384, g_k.ec384_priv, strlen(g_k.ec384_priv), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm ES384 not accepted (allowed: ES256)");
	free(t);
	edge_auth_free(a);

	/* both families configured: each token is checked with its own key */
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_JWT,
		.jwt_algorithms = "hs256 ES384",
		.jwt_secret_file = put("secret", SECRET),
		.jwt_public_key = put("p384.pem", g_k.ec384_pub),
	};
	a = load(&cfg);
	t = jwt_sign(JWT_ALG_ES384, g_k.ec384_priv, strlen(g_k.ec384_priv), claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "svc");
	free(t);
	t = hs256(claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "svc");
	free(t);
	t = jwt_sign(JWT_ALG_RS256, g_k.rsa_priv, strlen(g_k.rsa_priv), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm RS256 not accepted (allowed: HS256, ES384)");
	free(t);
	edge_auth_free(a);
}

Test(auth, jwt_public_key_from_certificate)
{
	keys_make();
	char *crt = pem_cert(g_k.rsa);
	struct edge_auth *a = jwt_setup("RS256", crt, NULL, NULL, 60);
	char *t = jwt_sign(JWT_ALG_RS256, g_k.rsa_priv, strlen(g_k.rsa_priv), "{\"sub\":\"c\",\"exp\":1795702000}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "c");
	free(t), free(crt);
	edge_auth_free(a);
}

Test(auth, jwt_alg_confusion)
{
	keys_make();
	const char *claims = "{\"sub\":\"mallory\",\"exp\":1795702000}";
	struct edge_auth *a = jwt_setup("RS256", g_k.rsa_pub, NULL, NULL, 60);
	/* The classic attack: the public key's bytes as an HMAC secret. */
	char *t = jwt_sign(JWT_ALG_HS256, g_k.rsa_pub, strlen(g_k.rsa_pub), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm HS256 not accepted (allowed: RS256)");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\", error=\"invalid_token\"");
	free(t);
	/* the same with the exact bytes of the file, trailing newline and all */
	t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, g_k.rsa_pub, strlen(g_k.rsa_pub) - 1);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm HS256 not accepted (allowed: RS256)");
	free(t);
	/* spelled differently: libjwt would read "rs256" as RS256, we do not */
	t = craft("{\"alg\":\"rs256\"}", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm rs256 not accepted (allowed: RS256)");
	free(t);
	/* two "alg" members: each JSON parser would pick another one */
	t = craft("{\"alg\":\"RS256\",\"alg\":\"HS256\"}", claims, g_k.rsa_pub, strlen(g_k.rsa_pub));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: header has a duplicate member");
	free(t);
	edge_auth_free(a);

	/* HS256 and RS256 both on: an HMAC is keyed with the secret only, so a
	 * token "signed" with the public key does not verify. */
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_JWT,
		.jwt_algorithms = "RS256,HS256",
		.jwt_secret_file = put("secret", SECRET),
		.jwt_public_key = put("pub.pem", g_k.rsa_pub),
	};
	a = load(&cfg);
	t = jwt_sign(JWT_ALG_HS256, g_k.rsa_pub, strlen(g_k.rsa_pub), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT signature does not verify (HS256)");
	free(t);
	t = hs256(claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "mallory");
	free(t);
	edge_auth_free(a);

	/* and the other way round: HS256 configured, RS256 token */
	a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	t = jwt_sign(JWT_ALG_RS256, g_k.rsa_priv, strlen(g_k.rsa_priv), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT algorithm RS256 not accepted (allowed: HS256)");
	free(t);
	edge_auth_free(a);
}

Test(auth, jwt_none_refused)
{
	struct edge_auth *a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	const char *claims = "{\"sub\":\"root\",\"exp\":1795702000}";
	const char *algs[] = { "none", "None", "NONE", "nOnE" };
	for (size_t i = 0; i < 4; i++) {
		char hdr[64], want[128];
		snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[i]);
		snprintf(want, sizeof want, "JWT algorithm %s not accepted (allowed: HS256)", algs[i]);
		char *t = craft(hdr, claims, NULL, 0);
		assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, want);
		free(t);
		/* with a signature that would match, were the alg believed */
		t = craft(hdr, claims, SECRET, strlen(SECRET));
		assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, want);
		free(t);
	}
	/* HS256 claimed, signature left out */
	char *t = craft("{\"alg\":\"HS256\"}", claims, NULL, 0);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "malformed JWT: no signature");
	free(t);
	/* no alg at all */
	t = craft("{\"typ\":\"JWT\"}", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: header has no \"alg\" string");
	free(t);
	t = craft("{\"alg\":256}", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: header has no \"alg\" string");
	free(t);
	edge_auth_free(a);
}

Test(auth, jwt_time_edges)
{
	struct edge_auth *a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	char claims[128];
	char *t;
	/* exp: valid while now < exp + leeway (RFC 7519 §4.1.4) */
	snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"exp\":%lld}", (long long)T0 - 59);
	t = hs256(claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "s");
	free(t);
	snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"exp\":%lld}", (long long)T0 - 60);
	t = hs256(claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT expired at 2026-11-26T13:59:00Z (now 2026-11-26T14:00:00Z, leeway 60s)");
	/* the same token an hour earlier is fine */
	assert_ok(check_at(a, T0 - 3600, "/ws", bearer_header(t), NULL), "s");
	free(t);
	/* nbf: valid from nbf - leeway on (§4.1.5) */
	snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"exp\":%lld,\"nbf\":%lld}", (long long)T0 + 999,
		 (long long)T0 + 60);
	t = hs256(claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "s");
	free(t);
	snprintf(claims, sizeof claims, "{\"sub\":\"s\",\"exp\":%lld,\"nbf\":%lld}", (long long)T0 + 999,
		 (long long)T0 + 61);
	t = hs256(claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT not valid before 2026-11-26T14:01:01Z (now 2026-11-26T14:00:00Z, leeway 60s)");
	assert_ok(check_at(a, T0 + 1, "/ws", bearer_header(t), NULL), "s");
	free(t);
	/* fractional NumericDate */
	t = hs256("{\"sub\":\"s\",\"exp\":1795701540.5}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "s");
	free(t);
	/* no exp: refused unless configured optional */
	t = hs256("{\"sub\":\"s\"}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT has no exp claim (required)");
	free(t);
	t = hs256("{\"sub\":\"s\",\"exp\":\"1795702000\"}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT exp is not a number");
	free(t);
	t = hs256("{\"sub\":\"s\",\"exp\":1795702000,\"nbf\":null}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT nbf is not a number");
	free(t);
	t = hs256("{\"sub\":\"s\",\"exp\":1e300}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "s");
	free(t);
	t = hs256("{\"sub\":\"s\",\"exp\":-1e300}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT expired at -1.0000000000000001e+300 (now 2026-11-26T14:00:00Z, leeway 60s)");
	free(t);
	edge_auth_free(a);

	/* leeway 0 */
	a = jwt_setup("HS256", NULL, NULL, NULL, 0);
	snprintf(claims, sizeof claims, "{\"exp\":%lld}", (long long)T0 + 1);
	t = hs256(claims);
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "");
	assert_refused(check_at(a, T0 + 1, "/ws", bearer_header(t), NULL), 401,
		       "JWT expired at 2026-11-26T14:00:01Z (now 2026-11-26T14:00:01Z, leeway 0s)");
	free(t);
	edge_auth_free(a);

	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_JWT,
		.jwt_algorithms = "HS256",
		.jwt_secret_file = put("secret", SECRET),
		.jwt_exp_optional = true,
	};
	a = load(&cfg);
	t = hs256("{\"sub\":\"forever\"}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "forever");
	free(t);
	edge_auth_free(a);
}

Test(auth, jwt_issuer_audience_subject)
{
	struct edge_auth *a = jwt_setup("HS256", NULL, "https://idp.example", "mbgw", 60);
	char *t;
#define CLAIMS(x) "{\"sub\":\"u\",\"exp\":1795702000" x "}"
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\",\"aud\":\"mbgw\""));
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "u");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\",\"aud\":[\"other\",\"mbgw\"]"));
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "u");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://evil.example\",\"aud\":\"mbgw\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT issuer 'https://evil.example' is not 'https://idp.example'");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example/\",\"aud\":\"mbgw\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT issuer 'https://idp.example/' is not 'https://idp.example'");
	free(t);
	t = hs256(CLAIMS(",\"iss\":[\"https://idp.example\"],\"aud\":\"mbgw\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT issuer '(not a string)' is not 'https://idp.example'");
	free(t);
	t = hs256(CLAIMS(",\"aud\":\"mbgw\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT has no iss claim (expected 'https://idp.example')");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\",\"aud\":\"mbgw2\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT audience \"mbgw2\" does not include 'mbgw'");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\",\"aud\":[\"a\",\"b\"]"));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT audience [\"a\",\"b\"] does not include 'mbgw'");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\",\"aud\":[]"));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT audience [] does not include 'mbgw'");
	free(t);
	t = hs256(CLAIMS(",\"iss\":\"https://idp.example\""));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT has no aud claim (expected 'mbgw')");
	free(t);
	edge_auth_free(a);

	a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	t = hs256("{\"sub\":42,\"exp\":1795702000}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT sub is not a string");
	free(t);
	char claims[600] = "{\"exp\":1795702000,\"sub\":\"";
	memset(claims + strlen(claims), 'x', 256);
	strcat(claims, "\"}");
	t = hs256(claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT sub is longer than 255 bytes");
	free(t);
	claims[strlen(claims) - 3] = 0;
	strcat(claims, "\"}");
	t = hs256(claims);
	cr_assert_eq(check(a, "/ws", bearer_header(t), NULL), 0, "%s", g_res.reason);
	cr_assert_eq(strlen(g_res.identity), 255);
	free(t);
	edge_auth_free(a);
#undef CLAIMS
}

Test(auth, jwt_malformed)
{
	struct edge_auth *a = jwt_setup("HS256", NULL, NULL, NULL, 60);
	const char *claims = "{\"sub\":\"s\",\"exp\":1795702000}";
	char *good = hs256(claims);
	char buf[4096];
	assert_refused(check(a, "/ws", bearer_header("abc.def"), NULL), 401,
		       "malformed JWT: not three dot-separated parts");
	snprintf(buf, sizeof buf, "%s.xyz", good);
	assert_refused(check(a, "/ws", bearer_header(buf), NULL), 401,
		       "malformed JWT: not three dot-separated parts");
	assert_refused(check(a, "/ws", bearer_header("abcdefghijklmnopq"), NULL), 401,
		       "malformed JWT: not three dot-separated parts");
	snprintf(buf, sizeof buf, ".%s", strchr(good, '.') + 1);
	assert_refused(check(a, "/ws", bearer_header(buf), NULL), 401,
		       "malformed JWT: an empty part or a character outside base64url");
	/* standard base64 characters are not base64url */
	snprintf(buf, sizeof buf, "%s", good);
	buf[2] = '+';
	assert_refused(check(a, "/ws", bearer_header(buf), NULL), 401,
		       "malformed JWT: an empty part or a character outside base64url");
	/* padding is not allowed in JWS */
	snprintf(buf, sizeof buf, "%s=", good);
	cr_assert_eq(check(a, "/ws", bearer_header(buf), NULL), 401);
	/* a header of one base64url character cannot decode */
	snprintf(buf, sizeof buf, "e%s", strchr(good, '.'));
	assert_refused(check(a, "/ws", bearer_header(buf), NULL), 401,
		       "malformed JWT: header not valid base64url");
	char *t = craft("{\"alg\":\"HS256\"", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "malformed JWT: header not valid JSON");
	free(t);
	t = craft("[\"HS256\"]", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: header not a JSON object");
	free(t);
	t = craft("{\"alg\":\"HS256\"} x", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "malformed JWT: header not valid JSON");
	free(t);
	t = craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT header has \"crit\" extensions (unsupported)");
	free(t);
	t = craft("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", claims, SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT typ 'at+jwt' not supported (only JWT)");
	free(t);
	t = craft("{\"alg\":\"HS256\"}", "[1,2]", SECRET, strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: payload not a JSON object");
	free(t);
	/* duplicates that do not follow each other, among several members */
	const char *dups[] = {
		"{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"1\",\"typ\":\"JWT\"}",
		"{\"a\":1,\"b\":2,\"c\":3,\"alg\":\"HS256\",\"d\":4,\"b\":5}",
		"{\"alg\":\"HS256\",\"z\":1,\"y\":2,\"x\":3,\"w\":4,\"z\":5}",
	};
	for (size_t i = 0; i < 3; i++) {
		t = craft(dups[i], claims, SECRET, strlen(SECRET));
		assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
			       "malformed JWT: header has a duplicate member");
		free(t);
	}
	t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k\",\"x5t\":\"t\"}", claims, SECRET,
		  strlen(SECRET));
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "s");
	free(t);
	t = craft("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1795702000}", SECRET,
		  strlen(SECRET));
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "malformed JWT: payload has a duplicate member");
	free(t);
	/* signed with another secret */
	const char *other = "another-secret-of-at-least-32-bytes!!";
	t = jwt_sign(JWT_ALG_HS256, other, strlen(other), claims);
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401, "JWT signature does not verify (HS256)");
	free(t);
	/* a valid token with its signature cut short */
	snprintf(buf, sizeof buf, "%s", good);
	buf[strlen(buf) - 4] = 0;
	assert_refused(check(a, "/ws", bearer_header(buf), NULL), 401, "JWT signature does not verify (HS256)");
	/* jwt only: a token that is not a JWT at all */
	assert_refused(check(a, "/ws", bearer_header(TOKEN_B), NULL), 401,
		       "malformed JWT: not three dot-separated parts");
	cr_assert_str_eq(g_res.method, "jwt");
	free(good);
	edge_auth_free(a);
}

Test(auth, bearer_and_jwt_together)
{
	struct edge_auth *a = bearer_setup(EDGE_AUTH_JWT, NULL, NULL);
	assert_ok(check(a, "/ws", bearer_header(TOKEN_A), NULL), "svc-a  (ci)");
	cr_assert_str_eq(g_res.method, "bearer");
	char *t = hs256("{\"sub\":\"j\",\"exp\":1795702000}");
	assert_ok(check(a, "/ws", bearer_header(t), NULL), "j");
	cr_assert_str_eq(g_res.method, "jwt");
	free(t);
	t = hs256("{\"sub\":\"j\",\"exp\":1795700000}");
	assert_refused(check(a, "/ws", bearer_header(t), NULL), 401,
		       "JWT expired at 2026-11-26T13:33:20Z (now 2026-11-26T14:00:00Z, leeway 60s)");
	cr_assert_str_eq(g_res.method, "jwt");
	free(t);
	assert_refused(check(a, "/ws", bearer_header("not-in-the-file-at-all"), NULL), 401,
		       "token not in bearer file (from Authorization header)");
	cr_assert_str_eq(g_res.method, "bearer");
	edge_auth_free(a);
}

/* ------------------------------------------------------------------ */
/* Where tokens come from. */

Test(auth, token_from_query)
{
	struct edge_auth *a = bearer_setup(EDGE_AUTH_JWT, "access_token", NULL);
	/* TOKEN_A = tok-AAAAAAAAAAAAAAAAAAAA.aaaa~bbbb+cccc/dd== */
	assert_ok(check(a, "/ws?x=1&access_token=tok-AAAAAAAAAAAAAAAAAAAA.aaaa%7Ebbbb%2Bcccc%2Fdd%3D%3d&y",
			NULL),
		  "svc-a  (ci)");
	cr_assert_str_eq(g_res.reason,
			 "bearer token of line 2 (subject 'svc-a  (ci)') from query parameter 'access_token'");
	assert_ok(check(a, "/ws?access%5Ftoken=" TOKEN_B, NULL), "");
	char *t = hs256("{\"sub\":\"q\",\"exp\":1795702000}");
	char target[2048];
	snprintf(target, sizeof target, "/ws?access_token=%s", t);
	assert_ok(check(a, target, NULL), "q");
	cr_assert_str_eq(g_res.reason, "jwt HS256 sub 'q' from query parameter 'access_token'");
	free(t);
	/* '+' means a space in a query (RFC 6750 §2.3 uses form encoding) */
	assert_refused(check(a, "/ws?access_token=tok-AAAAAAAAAAAAAAAAAAAA.aaaa~bbbb+cccc/dd==", NULL), 400,
		       "malformed token in query parameter 'access_token': byte 35 (0x20) is not a"
		       " token character");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\", error=\"invalid_request\"");
	assert_refused(check(a, "/ws?access_token=abc%G1", NULL), 400,
		       "bad percent-encoding in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token=abc%4", NULL), 400,
		       "bad percent-encoding in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token=abc%", NULL), 400,
		       "bad percent-encoding in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token=abc%00def", NULL), 400,
		       "bad percent-encoding in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token=" TOKEN_B "&access_token=" TOKEN_B, NULL), 400,
		       "query parameter 'access_token' given more than once");
	assert_refused(check(a, "/ws?access_token=", NULL), 400,
		       "empty token in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token", NULL), 400,
		       "empty token in query parameter 'access_token'");
	assert_refused(check(a, "/ws?access_token=wrong-token-wrong-token", NULL), 401,
		       "token not in bearer file (from query parameter 'access_token')");
	/* other parameters, even broken ones, are not ours */
	assert_refused(check(a, "/ws?access_tokens=" TOKEN_B "&%zz=1&=&&", NULL), 401,
		       "no credentials (looked in: Authorization header, query parameter 'access_token')");
	/* the Authorization header, when present, wins */
	assert_refused(check(a, "/ws?access_token=" TOKEN_B, bearer_header("wrong-token-wrong-token"), NULL),
		       401, "token not in bearer file (from Authorization header)");
	edge_auth_free(a);

	/* without token_query_param the query is never looked at */
	a = bearer_setup(0, NULL, NULL);
	assert_refused(check(a, "/ws?access_token=" TOKEN_B, NULL), 401,
		       "no credentials (looked in: Authorization header)");
	edge_auth_free(a);
}

Test(auth, token_from_cookie)
{
	struct edge_auth *a = bearer_setup(EDGE_AUTH_JWT, "access_token", "mbgw_token");
	assert_ok(check(a, "/ws", "Cookie: theme=dark; mbgw_token=" TOKEN_B "; lang=en", NULL), "");
	cr_assert_str_eq(g_res.reason, "bearer token of line 4 (subject '') from cookie 'mbgw_token'");
	assert_ok(check(a, "/ws", "Cookie: a=1", "Cookie: xmbgw_token=zz; mbgw_token=\"" TOKEN_A "\"", NULL),
		  "svc-a  (ci)");
	char *t = hs256("{\"sub\":\"c\",\"exp\":1795702000}");
	char h[2048];
	snprintf(h, sizeof h, "Cookie: mbgw_token=%s;other=1", t);
	assert_ok(check(a, "/ws", h, NULL), "c");
	cr_assert_str_eq(g_res.method, "jwt");
	cr_assert_str_eq(g_res.reason, "jwt HS256 sub 'c' from cookie 'mbgw_token'");
	free(t);
	/* the first of two cookies of that name (the most specific path) */
	assert_ok(check(a, "/ws", "Cookie: mbgw_token=" TOKEN_B "; mbgw_token=stale-stale-stale-stale", NULL), "");
	assert_refused(check(a, "/ws", "Cookie: mbgw_token=stale-stale-stale-stale; mbgw_token=" TOKEN_B, NULL),
		       401, "token not in bearer file (from cookie 'mbgw_token')");
	/* cookie values are not percent-decoded */
	assert_refused(check(a, "/ws", "Cookie: mbgw_token=tok-BBBBBBBBBBBBBBBBBBB%42", NULL), 400,
		       "malformed token in cookie 'mbgw_token': byte 24 (0x25) is not a token character");
	assert_refused(check(a, "/ws", "Cookie: mbgw_token=", NULL), 400, "empty token in cookie 'mbgw_token'");
	/* names are case-sensitive */
	assert_refused(check(a, "/ws", "Cookie: MBGW_TOKEN=" TOKEN_B, NULL), 401,
		       "no credentials (looked in: Authorization header, query parameter 'access_token',"
		       " cookie 'mbgw_token')");
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"r\"");
	/* query before cookie */
	assert_refused(check(a, "/ws?access_token=wrong-wrong-wrong-wrong", "Cookie: mbgw_token=" TOKEN_B, NULL),
		       401, "token not in bearer file (from query parameter 'access_token')");
	edge_auth_free(a);
}

/* ------------------------------------------------------------------ */
/* Configuration errors. */

Test(auth, config_errors)
{
	struct edge_auth_config cfg = { 0 };
	load_fails(&cfg, MBGW_E_INVAL, "auth: no method enabled (basic, bearer, jwt)");
	cfg.methods = 0x10;
	load_fails(&cfg, MBGW_E_INVAL, "auth: unknown method bits 0x10");
	const char *tokens = put("tokens", TOKEN_A "\n");
	struct edge_auth_config c2 = { .methods = EDGE_AUTH_BEARER, .bearer_file = tokens, .realm = "a\"b" };
	load_fails(&c2, MBGW_E_INVAL,
		   "auth: realm must be at most 64 printable ASCII characters without '\"' or '\\'");
	c2.realm = "x\ty";
	load_fails(&c2, MBGW_E_INVAL,
		   "auth: realm must be at most 64 printable ASCII characters without '\"' or '\\'");
	c2.realm = NULL;
	c2.basic_file = "users";
	load_fails(&c2, MBGW_E_INVAL, "auth: basic_file is set but basic is not enabled");
	c2.basic_file = NULL;
	c2.jwt_audience = "x";
	load_fails(&c2, MBGW_E_INVAL, "auth: jwt_* keys are set but jwt is not enabled");
	c2.jwt_audience = NULL;
	c2.token_cookie = "a b";
	load_fails(&c2, MBGW_E_INVAL,
		   "auth: token_cookie must be a cookie name (RFC 6265 token, at most 64 characters)");
	c2.token_cookie = NULL;
	c2.token_query_param = "a&b";
	load_fails(&c2, MBGW_E_INVAL,
		   "auth: token_query_param must be at most 64 characters without & = # % + or blanks");
	struct edge_auth_config c3 = { .methods = EDGE_AUTH_BASIC, .token_cookie = "t" };
	load_fails(&c3, MBGW_E_INVAL,
		   "auth: token_query_param/token_cookie carry bearer tokens or JWTs, but neither bearer"
		   " nor jwt is enabled");
	struct edge_auth_config c4 = { .methods = EDGE_AUTH_BASIC, .bearer_file = tokens };
	load_fails(&c4, MBGW_E_INVAL, "auth: bearer_file is set but bearer is not enabled");
	/* realm shows in the challenge; default "mbgw" */
	c2 = (struct edge_auth_config){ .methods = EDGE_AUTH_BEARER, .bearer_file = tokens };
	struct edge_auth *a = load(&c2);
	cr_assert_eq(edge_auth_methods(a), EDGE_AUTH_BEARER);
	check(a, "/", NULL);
	cr_assert_str_eq(g_res.www_authenticate, "Bearer realm=\"mbgw\"");
	edge_auth_free(a);
	edge_auth_free(NULL);
}

Test(auth, jwt_config_errors)
{
	keys_make();
	struct edge_auth_config cfg = { .methods = EDGE_AUTH_JWT };
	load_fails(&cfg, MBGW_E_INVAL,
		   "jwt: jwt_algorithms is not set (the accepted algorithms come from the configuration,"
		   " never from the token)");
	cfg.jwt_algorithms = " , ";
	load_fails(&cfg, MBGW_E_INVAL, "jwt_algorithms: no algorithm listed");
	cfg.jwt_algorithms = "HS256, HS257";
	load_fails(&cfg, MBGW_E_INVAL,
		   "jwt_algorithms: unknown JWT algorithm 'HS257' (known: HS256 HS384 HS512 RS256 RS384"
		   " RS512 ES256 ES384 ES512)");
	cfg.jwt_algorithms = "RS256 none";
	load_fails(&cfg, MBGW_E_INVAL,
		   "jwt_algorithms: \"none\" is refused (it would accept unsigned tokens)");
	cfg.jwt_algorithms = "HS384";
	load_fails(&cfg, MBGW_E_INVAL, "jwt: HS384 needs jwt_secret_file");
	cfg.jwt_algorithms = "ES256";
	load_fails(&cfg, MBGW_E_INVAL, "jwt: ES256 needs jwt_public_key");
	cfg.jwt_secret_file = "s";
	load_fails(&cfg, MBGW_E_INVAL,
		   "jwt: jwt_secret_file is set but jwt_algorithms (ES256) has no HS algorithm");
	cfg = (struct edge_auth_config){ .methods = EDGE_AUTH_JWT, .jwt_algorithms = "HS256",
					 .jwt_public_key = "p" };
	cfg.jwt_secret_file = put("s", SECRET);
	load_fails(&cfg, MBGW_E_INVAL,
		   "jwt: jwt_public_key is set but jwt_algorithms (HS256) has no RS or ES algorithm");
	cfg.jwt_public_key = NULL;
	cfg.jwt_leeway_s = 86401;
	load_fails(&cfg, MBGW_E_INVAL, "jwt: leeway of 86401s is more than 86400s");
	cfg.jwt_leeway_s = 0;

	/* secrets */
	cfg.jwt_secret_file = put("short", "0123456789abcdef0123456789abcde\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ": secret of 31 bytes is too short for HS256 (at least 32)");
	cfg.jwt_algorithms = "HS256 HS512";
	cfg.jwt_secret_file = put("s48", SECRET);
	load_fails_end(&cfg, MBGW_E_INVAL, ": secret of 50 bytes is too short for HS512 (at least 64)");
	cfg.jwt_algorithms = "HS256";
	cfg.jwt_secret_file = put("pem-as-secret", g_k.rsa_pub);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ": holds a PEM key, not a shared secret (PEM keys go in jwt_public_key)");
	cfg.jwt_secret_file = "/nonexistent/secret";
	load_fails(&cfg, MBGW_E_NOTFOUND,
		   "jwt_secret_file /nonexistent/secret: cannot open: No such file or directory");

	/* public keys */
	cfg = (struct edge_auth_config){ .methods = EDGE_AUTH_JWT, .jwt_algorithms = "RS256" };
	cfg.jwt_public_key = put("garbage.pem", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
	load_fails_end(&cfg, MBGW_E_INVAL, ": no PEM public key or certificate in it (bad PEM)");
	cfg.jwt_public_key = put("empty.pem", "");
	load_fails_end(&cfg, MBGW_E_INVAL, ": no PEM public key or certificate in it (bad PEM)");
	cfg.jwt_public_key = put("priv.pem", g_k.rsa_priv);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ": holds a private key; give the public key only (openssl pkey -in KEY -pubout)");
	cfg.jwt_public_key = put("ec.pem", g_k.ec256_pub);
	load_fails_end(&cfg, MBGW_E_INVAL, ": an EC key, but RS256 needs an RSA key");
	cfg.jwt_algorithms = "ES256";
	cfg.jwt_public_key = put("rsa.pem", g_k.rsa_pub);
	load_fails_end(&cfg, MBGW_E_INVAL, ": an RSA key, but ES256 needs an EC key");
	cfg.jwt_public_key = put("p384.pem", g_k.ec384_pub);
	load_fails_end(&cfg, MBGW_E_INVAL, ": EC key on curve secp384r1, but ES256 needs prime256v1");
	cfg.jwt_algorithms = "RS256 ES256";
	cfg.jwt_public_key = put("rsa.pem", g_k.rsa_pub);
	load_fails_end(&cfg, MBGW_E_INVAL, ": an RSA key, but ES256 needs an EC key");
	cfg.jwt_algorithms = "RS256";
	EVP_PKEY *small = keygen("RSA", NULL, 1024);
	char *small_pub = pem_public(small);
	cfg.jwt_public_key = put("small.pem", small_pub);
	load_fails_end(&cfg, MBGW_E_INVAL, ": RSA key of 1024 bits is too short (at least 2048)");
	free(small_pub);
	EVP_PKEY_free(small);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *ed_pub = pem_public(ed);
	cfg.jwt_public_key = put("ed.pem", ed_pub);
	load_fails_end(&cfg, MBGW_E_INVAL,
		       ": ED25519 key; only RSA (RS*) and EC (ES*) keys are supported");
	free(ed_pub);
	EVP_PKEY_free(ed);
	cfg.jwt_public_key = "/nonexistent/pub.pem";
	load_fails(&cfg, MBGW_E_NOTFOUND,
		   "jwt_public_key /nonexistent/pub.pem: cannot open: No such file or directory");
}

/* ------------------------------------------------------------------ */
/* Threads: the loaded state is shared without locks. */

struct worker_arg {
	const struct edge_auth *a;
	const char *hs, *es, *rs;
	int failures;
};

static void *worker(void *p)
{
	struct worker_arg *w = p;
	char hs[4096], es[4096], rs[4096], basic_ok[256], basic_bad[256];
	snprintf(hs, sizeof hs, "Authorization: Bearer %s", w->hs);
	snprintf(es, sizeof es, "Authorization: Bearer %s", w->es);
	snprintf(rs, sizeof rs, "Authorization: Bearer %s", w->rs);
	unsigned char b[128];
	EVP_EncodeBlock(b, (const unsigned char *)"carol:pw", 8);
	snprintf(basic_ok, sizeof basic_ok, "Authorization: Basic %s", b);
	EVP_EncodeBlock(b, (const unsigned char *)"carol:px", 8);
	snprintf(basic_bad, sizeof basic_bad, "Authorization: Basic %s", b);
	const struct {
		const char *h;
		int status;
		const char *id;
	} all[] = {
		{ hs, 0, "hs" },
		{ es, 0, "es" },
		{ rs, 401, "" },
		{ "Authorization: Bearer " TOKEN_A, 0, "svc-a" },
		{ "Authorization: Bearer " TOKEN_B "x", 401, "" },
		{ basic_ok, 0, "carol" },
		{ basic_bad, 401, "" },
	};
	for (int round = 0; round < 30; round++)
		for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
			char text[8192];
			int n = snprintf(text, sizeof text, "GET /ws HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", all[i].h);
			struct http_request *r = calloc(1, sizeof *r);
			struct http_limits lim = { sizeof text, 64 };
			struct http_error err;
			struct edge_auth_result res;
			if (http_parse_request(text, (size_t)n, &lim, r, &err) != n ||
			    edge_auth_check(w->a, r, T0, &res) != all[i].status ||
			    (all[i].status == 0 && strcmp(res.identity, all[i].id) != 0))
				w->failures++;
			free(res.claims_json);
			free(r);
		}
	return NULL;
}

Test(auth, concurrent_checks, .timeout = 60)
{
	keys_make();
	char users[512];
	char *h = hash("$6$rounds=1000$", "pw");
	snprintf(users, sizeof users, "carol:%s\n", h);
	free(h);
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_BASIC | EDGE_AUTH_BEARER | EDGE_AUTH_JWT,
		.basic_file = put("users", users),
		.bearer_file = put("tokens", TOKEN_A " svc-a\n"),
		.jwt_algorithms = "HS256 ES256",
		.jwt_secret_file = put("secret", SECRET),
		.jwt_public_key = put("pub.pem", g_k.ec256_pub),
	};
	struct edge_auth *a = load(&cfg);
	char *hs = hs256("{\"sub\":\"hs\",\"exp\":1795702000}");
	char *es = jwt_sign(JWT_ALG_ES256, g_k.ec256_priv, strlen(g_k.ec256_priv),
			    "{\"sub\":\"es\",\"exp\":1795702000}");
	char *rs = jwt_sign(JWT_ALG_RS256, g_k.rsa_priv, strlen(g_k.rsa_priv), "{\"sub\":\"rs\",\"exp\":1795702000}");
	pthread_t th[8];
	struct worker_arg args[8];
	for (int i = 0; i < 8; i++) {
		args[i] = (struct worker_arg){ a, hs, es, rs, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].failures, 0, "thread %d: %d wrong answers", i, args[i].failures);
	}
	free(hs), free(es), free(rs);
	edge_auth_free(a);
}
