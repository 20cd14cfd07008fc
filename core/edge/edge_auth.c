/* edge_auth — see edge_auth.h; design notes in docs/auth.md.
 *
 * Layout of this file, in the order a request meets it:
 *   small helpers (log-safe quoting, constant-time compare, strict base64)
 *   loading: the Basic file, the bearer file, the JWT keys, the config
 *   checking: where the credentials are (Authorization, query, cookie),
 *             then Basic, bearer and JWT verification.
 */
#include "edge/edge_auth.h"

#include <cjson/cJSON.h>
#include <crypt.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbgw/plugin.h>

#define REALM_MAX 64
#define USER_MAX (EDGE_AUTH_IDENTITY_MAX - 1)
#define PASSWORD_MAX 512                 /* libxcrypt's CRYPT_MAX_PASSPHRASE_SIZE */
#define BASIC_DECODED_MAX (USER_MAX + 1 + PASSWORD_MAX)
#define BEARER_MIN 16                    /* shorter tokens cannot be secrets */
#define JWT_HEADER_MAX 2048              /* decoded JOSE header */
#define LIST_FILE_MAX (64u << 20)        /* password and token files */
#define KEY_FILE_MAX (1u << 20)          /* PEM files and secrets */
#define DIGEST_LEN 32                    /* SHA-256 */

/* ------------------------------------------------------------------ */
/* Loaded state. */

struct basic_user {
	char *user;
	char *hash;
	unsigned line;
};

struct bearer_token {
	unsigned char digest[DIGEST_LEN];   /* SHA-256 of the token: the token itself is not kept */
	char *subject;                      /* never NULL, may be empty */
	unsigned line;
};

enum key_kind { KEY_HMAC, KEY_RSA, KEY_EC };

struct alg_info {
	const char *name;
	jwt_alg_t alg;
	enum key_kind kind;
	size_t min_secret;      /* HS*: RFC 7518 §3.2, a key at least as long as the hash */
	const char *curve;      /* ES*: RFC 7518 §3.4 fixes the curve per algorithm */
};

static const struct alg_info ALGS[] = {
	{ "HS256", JWT_ALG_HS256, KEY_HMAC, 32, NULL },
	{ "HS384", JWT_ALG_HS384, KEY_HMAC, 48, NULL },
	{ "HS512", JWT_ALG_HS512, KEY_HMAC, 64, NULL },
	{ "RS256", JWT_ALG_RS256, KEY_RSA, 0, NULL },
	{ "RS384", JWT_ALG_RS384, KEY_RSA, 0, NULL },
	{ "RS512", JWT_ALG_RS512, KEY_RSA, 0, NULL },
	{ "ES256", JWT_ALG_ES256, KEY_EC, 0, "prime256v1" },
	{ "ES384", JWT_ALG_ES384, KEY_EC, 0, "secp384r1" },
	{ "ES512", JWT_ALG_ES512, KEY_EC, 0, "secp521r1" },
};
#define NALGS (sizeof ALGS / sizeof ALGS[0])
#define RSA_MIN_BITS 2048       /* RFC 7518 §3.3 */

struct edge_auth {
	uint32_t methods;
	char realm[REALM_MAX + 1];

	struct basic_user *users;       /* sorted by name */
	size_t nusers;
	const char *dummy_hash;         /* hashed against for unknown users (borrowed from users) */

	struct bearer_token *tokens;
	size_t ntokens;

	uint32_t jwt_algs;              /* bit i: ALGS[i] accepted */
	char jwt_allowed[NALGS * 7];    /* "HS256, RS256" for reasons */
	unsigned char *secret;
	size_t secret_len;
	char *pubkey_pem;               /* canonical "PUBLIC KEY" PEM, as libjwt wants it */
	size_t pubkey_len;
	enum key_kind pubkey_kind;
	char *issuer;
	char *audience;
	uint32_t leeway;
	bool exp_optional;

	char *query_param;
	char *cookie;
};

/* ------------------------------------------------------------------ */
/* Small helpers. */

static bool set(const char *s)
{
	return s && *s;
}

/* Copies s[0..n) into buf for a log line: printable ASCII as is, anything
 * else as \xNN, cut with "..." so a hostile value cannot flood the log or
 * forge a line. Returns buf. */
static const char *quote(char *buf, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (o + 8 >= cap) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
	}
	buf[o] = 0;
	return buf;
}

/* Constant-time equality: time depends only on the lengths. */
static bool ct_equal(const void *a, size_t an, const void *b, size_t bn)
{
	if (an != bn)
		return false;
	return CRYPTO_memcmp(a, b, an) == 0;
}

static int b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == (url ? '-' : '+')) return 62;
	if (c == (url ? '_' : '/')) return 63;
	return -1;
}

/* Strict base64 (RFC 4648 §4, padded, as Basic uses it) or base64url
 * (§5, unpadded, as JWS uses it): no other characters, no whitespace, and
 * the unused bits of the last character must be zero (§3.5), so that every
 * input has exactly one meaning. Returns the decoded length or -1. */
static ssize_t b64_decode(const char *in, size_t n, bool url, unsigned char *out, size_t cap)
{
	size_t pad = 0;
	if (!url) {
		if (n % 4)
			return -1;
		while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
			pad++;
		n -= pad;
	} else if (n % 4 == 1) {
		return -1;
	}
	size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (olen > cap)
		return -1;
	uint32_t acc = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)in[i], url);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	switch (n % 4) {
	case 2:
		if (acc & 0xF)
			return -1;
		out[o++] = (unsigned char)(acc >> 4);
		break;
	case 3:
		if (acc & 0x3)
			return -1;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
		break;
	}
	return (ssize_t)o;
}

/* RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
 * Returns the index of the first byte that breaks it, or n. */
static size_t b64token_bad_at(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] && (b64_value((unsigned char)s[i], false) >= 0 || strchr("-._~", s[i])))
		i++;
	if (i == 0)
		return 0;
	while (i < n && s[i] == '=')
		i++;
	return i;
}

static void sha256(const void *p, size_t n, unsigned char out[DIGEST_LEN])
{
	unsigned int len = DIGEST_LEN;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
		memset(out, 0, DIGEST_LEN);   /* never matches a real digest by chance */
}

/* "2026-11-26T14:00:00Z", or the plain number when out of range. */
static const char *iso_time(char *buf, size_t cap, double t)
{
	struct tm tm;
	if (t > -1e15 && t < 1e15) {
		time_t tt = (time_t)t;
		if (gmtime_r(&tt, &tm) && strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
			return buf;
	}
	snprintf(buf, cap, "%.17g", t);
	return buf;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* True if the object has two members of the same name. Both JSON parsers
 * involved (cJSON here, jansson inside libjwt) would keep a different one
 * of the two ("alg": "RS256", "alg": "HS256"), so such input is refused
 * before either's view matters. */
static bool has_duplicate_member(const cJSON *obj)
{
	size_t n = 0;
	for (const cJSON *c = obj->child; c; c = c->next)
		n++;
	if (n < 2)
		return false;
	const char **names = malloc(n * sizeof *names);
	if (!names)
		return true;  /* refuse what cannot be checked */
	size_t i = 0;
	for (const cJSON *c = obj->child; c; c = c->next)
		names[i++] = c->string ? c->string : "";
	qsort(names, n, sizeof *names, name_cmp);
	bool dup = false;
	for (i = 1; i < n && !dup; i++)
		dup = strcmp(names[i - 1], names[i]) == 0;
	free(names);
	return dup;
}

/* ------------------------------------------------------------------ */
/* Loading. */

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t cap, int code, const char *fmt, ...)
{
	if (cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
static int read_file(const char *what, const char *path, size_t max, char **buf, size_t *len,
		     char *err, size_t cap)
{
	*buf = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(err, cap, MBGW_E_NOTFOUND, "%s %s: cannot open: %s", what, path,
			    strerror(errno));
	size_t n = 0, sz = 4096;
	char *b = malloc(sz);
	int rc = 0;
	while (b) {
		if (n + 1 >= sz) {
			if (sz > max) {
				rc = fail(err, cap, MBGW_E_INVAL, "%s %s: larger than %zu bytes", what,
					  path, max);
				break;
			}
			char *nb = realloc(b, sz * 2);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			sz *= 2;
		}
		size_t r = fread(b + n, 1, sz - n - 1, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				rc = fail(err, cap, MBGW_E_NOTFOUND, "%s %s: cannot read: %s", what,
					  path, strerror(errno));
			break;
		}
	}
	fclose(f);
	if (!b)
		return fail(err, cap, MBGW_E_NOMEM, "%s %s: out of memory", what, path);
	if (rc || n > max) {
		if (!rc)
			rc = fail(err, cap, MBGW_E_INVAL, "%s %s: larger than %zu bytes", what, path,
				  max);
		OPENSSL_cleanse(b, sz);
		free(b);
		return rc;
	}
	b[n] = 0;
	*buf = b;
	*len = n;
	return 0;
}

/* Walks the lines of a text file: *line gets the next line with its end
 * (LF or CRLF) and surrounding blanks removed, NUL-terminated in place.
 * Returns false at the end. */
struct lines {
	char *p, *end;
	unsigned no;
};

static bool next_line(struct lines *ls, char **line, size_t *len)
{
	if (ls->p >= ls->end)
		return false;
	char *s = ls->p, *e = memchr(s, '\n', (size_t)(ls->end - s));
	if (!e)
		e = ls->end;
	ls->p = e + 1;
	ls->no++;
	while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	*e = 0;
	*line = s;
	*len = (size_t)(e - s);
	return true;
}

static bool has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static bool all_in(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

#define CRYPT_SALT_CHARS "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/* Judges one stored hash. Returns NULL if it is acceptable, else what is
 * wrong with it (for "file:line: <what> for 'user'"). */
static const char *judge_hash(const char *h, size_t n)
{
	static const struct {
		const char *prefix, *why;
	} weak[] = {
		{ "$apr1$", "Apache MD5 ($apr1$) hash, which crypt(3) does not support;"
			    " make a bcrypt one with htpasswd -B" },
		{ "{SHA}", "unsalted SHA-1 ({SHA}) hash, refused" },
		{ "$1$", "MD5-crypt ($1$) hash, too weak: refused" },
		{ "$md5", "Sun MD5 hash, too weak: refused" },
		{ "$sha1$", "NetBSD SHA-1 hash, too weak: refused" },
		{ "$3$", "NT hash, unsalted: refused" },
		{ "_", "BSDi DES hash, too weak: refused" },
	};
	if (n == 0)
		return "empty password hash";
	for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
		if (strncmp(h, weak[i].prefix, strlen(weak[i].prefix)) == 0)
			return weak[i].why;
	if (h[0] != '$') {
		if (n == 13 && all_in(h, n, CRYPT_SALT_CHARS))
			return "plain-text password or DES hash (too weak either way): refused; use a"
			       " yescrypt ($y$) or bcrypt ($2b$) hash";
		return "plain-text password, not a crypt(3) hash: refused; use a yescrypt ($y$)"
		       " or bcrypt ($2b$) hash (mkpasswd -m yescrypt, htpasswd -nB)";
	}
	for (size_t i = 0; i < n; i++)
		if (h[i] == ' ' || h[i] == '\t' || h[i] == ':' || (unsigned char)h[i] < 0x20)
			return "malformed hash (blank, control character or ':' in it)";
	/* crypt_checksalt() judges the setting only; for the usual methods
	 * the length of the hash proper tells a truncated copy-paste too. */
	static const struct {
		const char *prefix;
		size_t len;
	} sizes[] = {
		{ "$y$", 43 }, { "$gy$", 43 }, { "$7$", 43 }, { "$2b$", 53 }, { "$2y$", 53 },
		{ "$2a$", 53 }, { "$6$", 86 }, { "$5$", 43 },
	};
	const char *last = strrchr(h, '$');
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		if (strncmp(h, sizes[i].prefix, strlen(sizes[i].prefix)) != 0)
			continue;
		/* bcrypt has no '$' between salt and hash: "$2b$05$" + 22 + 31 */
		size_t got = strlen(last + 1);
		if (got != sizes[i].len)
			return "truncated or malformed hash (the part after the last '$' has the wrong"
			       " length)";
	}
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_TOO_CHEAP:
		return NULL;
	case CRYPT_SALT_METHOD_LEGACY:
		/* sha256crypt is "legacy" to libxcrypt only because sha512crypt
		 * exists; it is salted and iterated like it. */
		if (strncmp(h, "$5$", 3) == 0)
			return NULL;
		return "legacy hash method, too weak: refused";
	default:
		return "unknown or malformed crypt(3) hash";
	}
}

/* A user or token list: read_file, and no NUL bytes (a line would end
 * early and silently lose what follows). */
static int read_list_file(const char *what, const char *path, char **buf, size_t *len, char *err,
			  size_t cap)
{
	int rc = read_file(what, path, LIST_FILE_MAX, buf, len, err, cap);
	if (rc == 0 && memchr(*buf, 0, *len)) {
		rc = fail(err, cap, MBGW_E_INVAL, "%s: NUL byte in the file", path);
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

static int user_cmp(const void *x, const void *y)
{
	const struct basic_user *a = x, *b = y;
	return strcmp(a->user, b->user);
}

static int load_basic(struct edge_auth *a, const char *path, char *err, size_t cap)
{
	char *buf;
	size_t len;
	int rc = read_list_file("basic_file", path, &buf, &len, err, cap);
	if (rc)
		return rc;
	size_t capn = 0;
	struct lines ls = { buf, buf + len, 0 };
	char *line;
	size_t n;
	char q[80];
	while (next_line(&ls, &line, &n)) {
		if (n == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (!colon) {
			rc = fail(err, cap, MBGW_E_INVAL, "%s:%u: no ':' between user and hash", path,
				  ls.no);
			goto out_free_buf;
		}
		size_t un = (size_t)(colon - line);
		const char *hash = colon + 1;
		if (un == 0) {
			rc = fail(err, cap, MBGW_E_INVAL, "%s:%u: empty user name", path, ls.no);
			goto out_free_buf;
		}
		if (un > USER_MAX || has_control(line, un)) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "%s:%u: user name '%s' is longer than %d bytes or has control characters",
				  path, ls.no, quote(q, sizeof q, line, un), USER_MAX);
			goto out_free_buf;
		}
		const char *why = judge_hash(hash, strlen(hash));
		if (why) {
			rc = fail(err, cap, MBGW_E_INVAL, "%s:%u: %s for '%s'", path, ls.no, why,
				  quote(q, sizeof q, line, un));
			goto out_free_buf;
		}
		if (a->nusers == capn) {
			size_t nc = capn ? capn * 2 : 16;
			struct basic_user *nu = realloc(a->users, nc * sizeof *nu);
			if (!nu)
				goto out_nomem;
			a->users = nu;
			capn = nc;
		}
		struct basic_user *u = &a->users[a->nusers];
		u->user = strndup(line, un);
		u->hash = strdup(hash);
		u->line = ls.no;
		if (!u->user || !u->hash) {
			free(u->user);
			free(u->hash);
			goto out_nomem;
		}
		a->nusers++;
	}
	if (a->nusers == 0) {
		rc = fail(err, cap, MBGW_E_INVAL, "%s: no user in the file", path);
		goto out_free_buf;
	}
	/* Unknown users are hashed against the first user's hash, so that
	 * "no such user" costs what "wrong password" costs. */
	a->dummy_hash = a->users[0].hash;
	qsort(a->users, a->nusers, sizeof *a->users, user_cmp);
	for (size_t i = 1; i < a->nusers; i++)
		if (strcmp(a->users[i - 1].user, a->users[i].user) == 0) {
			unsigned l1 = a->users[i - 1].line, l2 = a->users[i].line;
			rc = fail(err, cap, MBGW_E_INVAL, "%s:%u: duplicate user '%s' (first on line %u)",
				  path, l1 > l2 ? l1 : l2,
				  quote(q, sizeof q, a->users[i].user, strlen(a->users[i].user)),
				  l1 < l2 ? l1 : l2);
			goto out_free_buf;
		}
	goto out_free_buf;
out_nomem:
	rc = fail(err, cap, MBGW_E_NOMEM, "%s: out of memory", path);
out_free_buf:
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

static int digest_cmp(const void *x, const void *y)
{
	const struct bearer_token *a = x, *b = y;
	int c = memcmp(a->digest, b->digest, DIGEST_LEN);
	return c ? c : (a->line > b->line) - (a->line < b->line);
}

static int load_bearer(struct edge_auth *a, const char *path, char *err, size_t cap)
{
	char *buf;
	size_t len;
	int rc = read_list_file("bearer_file", path, &buf, &len, err, cap);
	if (rc)
		return rc;
	size_t capn = 0;
	struct lines ls = { buf, buf + len, 0 };
	char *line;
	size_t n;
	while (next_line(&ls, &line, &n)) {
		if (n == 0 || line[0] == '#')
			continue;
		size_t tn = strcspn(line, " \t");
		const char *subj = line + tn;
		subj += strspn(subj, " \t");
		size_t sn = strlen(subj);
		size_t bad = b64token_bad_at(line, tn);
		if (bad < tn) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "%s:%u: character %zu of the token (0x%02x) is not allowed in a bearer"
				  " token (RFC 6750: A-Z a-z 0-9 - . _ ~ + / and trailing =)",
				  path, ls.no, bad + 1, (unsigned char)line[bad]);
			goto out_free_buf;
		}
		if (tn < BEARER_MIN || tn > EDGE_AUTH_TOKEN_MAX) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "%s:%u: token of %zu characters (must be %d to %d)", path, ls.no, tn,
				  BEARER_MIN, EDGE_AUTH_TOKEN_MAX);
			goto out_free_buf;
		}
		if (sn > USER_MAX || has_control(subj, sn)) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "%s:%u: subject longer than %d bytes or with control characters", path,
				  ls.no, USER_MAX);
			goto out_free_buf;
		}
		if (a->ntokens == capn) {
			size_t nc = capn ? capn * 2 : 16;
			struct bearer_token *nt = realloc(a->tokens, nc * sizeof *nt);
			if (!nt)
				goto out_nomem;
			a->tokens = nt;
			capn = nc;
		}
		struct bearer_token *t = &a->tokens[a->ntokens];
		sha256(line, tn, t->digest);
		t->line = ls.no;
		t->subject = strdup(subj);
		if (!t->subject)
			goto out_nomem;
		a->ntokens++;
	}
	if (a->ntokens == 0) {
		rc = fail(err, cap, MBGW_E_INVAL, "%s: no token in the file", path);
		goto out_free_buf;
	}
	qsort(a->tokens, a->ntokens, sizeof *a->tokens, digest_cmp);
	for (size_t i = 1; i < a->ntokens; i++)
		if (memcmp(a->tokens[i - 1].digest, a->tokens[i].digest, DIGEST_LEN) == 0) {
			rc = fail(err, cap, MBGW_E_INVAL, "%s:%u: duplicate token (first on line %u)",
				  path, a->tokens[i].line, a->tokens[i - 1].line);
			goto out_free_buf;
		}
	goto out_free_buf;
out_nomem:
	rc = fail(err, cap, MBGW_E_NOMEM, "%s: out of memory", path);
out_free_buf:
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

static const struct alg_info *alg_by_name(const char *s, size_t n, bool exact)
{
	for (size_t i = 0; i < NALGS; i++)
		if (strlen(ALGS[i].name) == n &&
		    (exact ? strncmp(s, ALGS[i].name, n) : strncasecmp(s, ALGS[i].name, n)) == 0)
			return &ALGS[i];
	return NULL;
}

static int parse_algorithms(struct edge_auth *a, const char *list, char *err, size_t cap)
{
	char q[80];
	const char *p = list;
	for (;;) {
		p += strspn(p, " \t,");
		if (!*p)
			break;
		size_t n = strcspn(p, " \t,");
		if (n == 4 && strncasecmp(p, "none", 4) == 0)
			return fail(err, cap, MBGW_E_INVAL,
				    "jwt_algorithms: \"none\" is refused (it would accept unsigned tokens)");
		const struct alg_info *ai = alg_by_name(p, n, false);
		if (!ai)
			return fail(err, cap, MBGW_E_INVAL,
				    "jwt_algorithms: unknown JWT algorithm '%s' (known: HS256 HS384 HS512"
				    " RS256 RS384 RS512 ES256 ES384 ES512)",
				    quote(q, sizeof q, p, n));
		a->jwt_algs |= 1u << (ai - ALGS);
		p += n;
	}
	if (!a->jwt_algs)
		return fail(err, cap, MBGW_E_INVAL, "jwt_algorithms: no algorithm listed");
	size_t o = 0;
	for (size_t i = 0; i < NALGS; i++)
		if (a->jwt_algs & (1u << i))
			o += (size_t)snprintf(a->jwt_allowed + o, sizeof a->jwt_allowed - o, "%s%s",
					      o ? ", " : "", ALGS[i].name);
	return 0;
}

static int load_secret(struct edge_auth *a, const char *path, char *err, size_t cap)
{
	char *buf;
	size_t len;
	int rc = read_file("jwt_secret_file", path, KEY_FILE_MAX, &buf, &len, err, cap);
	if (rc)
		return rc;
	/* Editors end files with a newline; a secret never ends with one. */
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len >= 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
		/* The classic confusion: an RSA public key used as an HMAC
		 * secret lets anyone who has the public key sign tokens. */
		rc = fail(err, cap, MBGW_E_INVAL,
			  "jwt_secret_file %s: holds a PEM key, not a shared secret (PEM keys go in"
			  " jwt_public_key)", path);
		goto out_free_buf;
	}
	for (size_t i = 0; i < NALGS; i++)
		if ((a->jwt_algs & (1u << i)) && ALGS[i].kind == KEY_HMAC && len < ALGS[i].min_secret) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_secret_file %s: secret of %zu bytes is too short for %s (at least"
				  " %zu)", path, len, ALGS[i].name, ALGS[i].min_secret);
			goto out_free_buf;
		}
	a->secret = malloc(len);
	if (!a->secret) {
		rc = fail(err, cap, MBGW_E_NOMEM, "jwt_secret_file %s: out of memory", path);
		goto out_free_buf;
	}
	memcpy(a->secret, buf, len);
	a->secret_len = len;
out_free_buf:
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

static int load_public_key(struct edge_auth *a, const char *path, char *err, size_t cap)
{
	char *buf;
	size_t len;
	int rc = read_file("jwt_public_key", path, KEY_FILE_MAX, &buf, &len, err, cap);
	if (rc)
		return rc;
	EVP_PKEY *pkey = NULL;
	BIO *in = BIO_new_mem_buf(buf, (int)len), *out = NULL;
	if (!in)
		goto out_nomem;
	pkey = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL);
	if (!pkey) {
		/* A certificate will do as well: its public key is used. */
		BIO_free(in);
		in = BIO_new_mem_buf(buf, (int)len);
		if (!in)
			goto out_nomem;
		X509 *crt = PEM_read_bio_X509(in, NULL, NULL, NULL);
		if (crt) {
			pkey = X509_get_pubkey(crt);
			X509_free(crt);
		}
	}
	ERR_clear_error();
	if (!pkey) {
		if (strstr(buf, "PRIVATE KEY-----"))
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: holds a private key; give the public key only"
				  " (openssl pkey -in KEY -pubout)", path);
		else if (strstr(buf, "-----BEGIN RSA PUBLIC KEY-----"))
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: PKCS#1 RSA key; convert it to a SubjectPublicKeyInfo"
				  " \"PUBLIC KEY\" (openssl rsa -RSAPublicKey_in -pubout)", path);
		else
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: no PEM public key or certificate in it (bad PEM)",
				  path);
		goto out_free;
	}
	int id = EVP_PKEY_get_base_id(pkey);
	if (id == EVP_PKEY_RSA) {
		a->pubkey_kind = KEY_RSA;
		if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: RSA key of %d bits is too short (at least %d)", path,
				  EVP_PKEY_get_bits(pkey), RSA_MIN_BITS);
			goto out_free;
		}
	} else if (id == EVP_PKEY_EC) {
		a->pubkey_kind = KEY_EC;
	} else {
		rc = fail(err, cap, MBGW_E_INVAL,
			  "jwt_public_key %s: %s key; only RSA (RS*) and EC (ES*) keys are supported",
			  path, OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "unknown");
		goto out_free;
	}
	char curve[64] = "";
	if (id == EVP_PKEY_EC)
		EVP_PKEY_get_group_name(pkey, curve, sizeof curve, NULL);
	for (size_t i = 0; i < NALGS; i++) {
		const struct alg_info *ai = &ALGS[i];
		if (!(a->jwt_algs & (1u << i)) || ai->kind == KEY_HMAC)
			continue;
		if (ai->kind != a->pubkey_kind) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: %s key, but %s needs an %s key", path,
				  id == EVP_PKEY_RSA ? "an RSA" : "an EC", ai->name,
				  ai->kind == KEY_RSA ? "RSA" : "EC");
			goto out_free;
		}
		if (ai->curve && strcmp(curve, ai->curve) != 0) {
			rc = fail(err, cap, MBGW_E_INVAL,
				  "jwt_public_key %s: EC key on curve %s, but %s needs %s", path,
				  curve[0] ? curve : "(unknown)", ai->name, ai->curve);
			goto out_free;
		}
	}
	/* libjwt parses the key again for every token; hand it the one form
	 * it reads (SubjectPublicKeyInfo PEM), whatever the file held. */
	out = BIO_new(BIO_s_mem());
	if (!out || !PEM_write_bio_PUBKEY(out, pkey))
		goto out_nomem;
	char *pem;
	long pn = BIO_get_mem_data(out, &pem);
	a->pubkey_pem = malloc((size_t)pn + 1);
	if (!a->pubkey_pem)
		goto out_nomem;
	memcpy(a->pubkey_pem, pem, (size_t)pn);
	a->pubkey_pem[pn] = 0;
	a->pubkey_len = (size_t)pn;
	goto out_free;
out_nomem:
	rc = fail(err, cap, MBGW_E_NOMEM, "jwt_public_key %s: out of memory", path);
out_free:
	ERR_clear_error();
	BIO_free(in);
	BIO_free(out);
	EVP_PKEY_free(pkey);
	free(buf);
	return rc;
}

static int load_jwt(struct edge_auth *a, const struct edge_auth_config *cfg, char *err, size_t cap)
{
	if (!set(cfg->jwt_algorithms))
		return fail(err, cap, MBGW_E_INVAL,
			    "jwt: jwt_algorithms is not set (the accepted algorithms come from the"
			    " configuration, never from the token)");
	int rc = parse_algorithms(a, cfg->jwt_algorithms, err, cap);
	if (rc)
		return rc;
	bool need_secret = false, need_pub = false;
	for (size_t i = 0; i < NALGS; i++)
		if (a->jwt_algs & (1u << i)) {
			if (ALGS[i].kind == KEY_HMAC)
				need_secret = true;
			else
				need_pub = true;
		}
	const char *first_hs = NULL, *first_pk = NULL;
	for (size_t i = NALGS; i-- > 0;)
		if (a->jwt_algs & (1u << i))
			*(ALGS[i].kind == KEY_HMAC ? &first_hs : &first_pk) = ALGS[i].name;
	if (need_secret && !set(cfg->jwt_secret_file))
		return fail(err, cap, MBGW_E_INVAL, "jwt: %s needs jwt_secret_file", first_hs);
	if (!need_secret && set(cfg->jwt_secret_file))
		return fail(err, cap, MBGW_E_INVAL,
			    "jwt: jwt_secret_file is set but jwt_algorithms (%s) has no HS algorithm",
			    a->jwt_allowed);
	if (need_pub && !set(cfg->jwt_public_key))
		return fail(err, cap, MBGW_E_INVAL, "jwt: %s needs jwt_public_key", first_pk);
	if (!need_pub && set(cfg->jwt_public_key))
		return fail(err, cap, MBGW_E_INVAL,
			    "jwt: jwt_public_key is set but jwt_algorithms (%s) has no RS or ES"
			    " algorithm", a->jwt_allowed);
	if (cfg->jwt_leeway_s > EDGE_AUTH_MAX_LEEWAY)
		return fail(err, cap, MBGW_E_INVAL, "jwt: leeway of %us is more than %us",
			    (unsigned)cfg->jwt_leeway_s, (unsigned)EDGE_AUTH_MAX_LEEWAY);
	if (need_secret && (rc = load_secret(a, cfg->jwt_secret_file, err, cap)))
		return rc;
	if (need_pub && (rc = load_public_key(a, cfg->jwt_public_key, err, cap)))
		return rc;
	a->leeway = cfg->jwt_leeway_s;
	a->exp_optional = cfg->jwt_exp_optional;
	if (set(cfg->jwt_issuer) && !(a->issuer = strdup(cfg->jwt_issuer)))
		return fail(err, cap, MBGW_E_NOMEM, "jwt: out of memory");
	if (set(cfg->jwt_audience) && !(a->audience = strdup(cfg->jwt_audience)))
		return fail(err, cap, MBGW_E_NOMEM, "jwt: out of memory");
	return 0;
}

/* RFC 6265 cookie-name is an RFC 7230 token. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

int edge_auth_load(const struct edge_auth_config *cfg, struct edge_auth **out, char *err,
		   size_t errcap)
{
	*out = NULL;
	if (errcap)
		err[0] = 0;
	uint32_t m = cfg->methods;
	if (m & ~(EDGE_AUTH_BASIC | EDGE_AUTH_BEARER | EDGE_AUTH_JWT))
		return fail(err, errcap, MBGW_E_INVAL, "auth: unknown method bits 0x%x", (unsigned)m);
	if (!m)
		return fail(err, errcap, MBGW_E_INVAL, "auth: no method enabled (basic, bearer, jwt)");
	const char *realm = set(cfg->realm) ? cfg->realm : "mbgw";
	size_t rn = strlen(realm);
	if (rn > REALM_MAX || has_control(realm, rn) || strpbrk(realm, "\"\\") ||
	    !all_in(realm, rn, " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`"
			       "abcdefghijklmnopqrstuvwxyz{|}~"))
		return fail(err, errcap, MBGW_E_INVAL,
			    "auth: realm must be at most %d printable ASCII characters without '\"'"
			    " or '\\'", REALM_MAX);
	if (!(m & EDGE_AUTH_BASIC) && set(cfg->basic_file))
		return fail(err, errcap, MBGW_E_INVAL, "auth: basic_file is set but basic is not enabled");
	if (!(m & EDGE_AUTH_BEARER) && set(cfg->bearer_file))
		return fail(err, errcap, MBGW_E_INVAL,
			    "auth: bearer_file is set but bearer is not enabled");
	if (!(m & EDGE_AUTH_JWT) &&
	    (set(cfg->jwt_algorithms) || set(cfg->jwt_secret_file) || set(cfg->jwt_public_key) ||
	     set(cfg->jwt_issuer) || set(cfg->jwt_audience)))
		return fail(err, errcap, MBGW_E_INVAL, "auth: jwt_* keys are set but jwt is not enabled");
	if (!(m & (EDGE_AUTH_BEARER | EDGE_AUTH_JWT)) &&
	    (set(cfg->token_query_param) || set(cfg->token_cookie)))
		return fail(err, errcap, MBGW_E_INVAL,
			    "auth: token_query_param/token_cookie carry bearer tokens or JWTs, but"
			    " neither bearer nor jwt is enabled");
	if ((m & EDGE_AUTH_BASIC) && !set(cfg->basic_file))
		return fail(err, errcap, MBGW_E_INVAL, "auth: basic needs basic_file");
	if ((m & EDGE_AUTH_BEARER) && !set(cfg->bearer_file))
		return fail(err, errcap, MBGW_E_INVAL, "auth: bearer needs bearer_file");
	if (set(cfg->token_query_param) &&
	    (strlen(cfg->token_query_param) > 64 || strpbrk(cfg->token_query_param, "&=#%+ ") ||
	     has_control(cfg->token_query_param, strlen(cfg->token_query_param))))
		return fail(err, errcap, MBGW_E_INVAL,
			    "auth: token_query_param must be at most 64 characters without & = # %% +"
			    " or blanks");
	if (set(cfg->token_cookie) && (!is_token(cfg->token_cookie) || strlen(cfg->token_cookie) > 64))
		return fail(err, errcap, MBGW_E_INVAL,
			    "auth: token_cookie must be a cookie name (RFC 6265 token, at most 64"
			    " characters)");

	struct edge_auth *a = calloc(1, sizeof *a);
	if (!a)
		return fail(err, errcap, MBGW_E_NOMEM, "auth: out of memory");
	a->methods = m;
	memcpy(a->realm, realm, rn + 1);
	int rc = 0;
	if ((m & EDGE_AUTH_BASIC) && (rc = load_basic(a, cfg->basic_file, err, errcap)))
		goto out_free;
	if ((m & EDGE_AUTH_BEARER) && (rc = load_bearer(a, cfg->bearer_file, err, errcap)))
		goto out_free;
	if ((m & EDGE_AUTH_JWT) && (rc = load_jwt(a, cfg, err, errcap)))
		goto out_free;
	if ((set(cfg->token_query_param) && !(a->query_param = strdup(cfg->token_query_param))) ||
	    (set(cfg->token_cookie) && !(a->cookie = strdup(cfg->token_cookie)))) {
		rc = fail(err, errcap, MBGW_E_NOMEM, "auth: out of memory");
		goto out_free;
	}
	*out = a;
	return 0;
out_free:
	edge_auth_free(a);
	return rc;
}

void edge_auth_free(struct edge_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nusers; i++) {
		OPENSSL_cleanse(a->users[i].hash, strlen(a->users[i].hash));
		free(a->users[i].user);
		free(a->users[i].hash);
	}
	free(a->users);
	for (size_t i = 0; i < a->ntokens; i++)
		free(a->tokens[i].subject);
	if (a->tokens)
		OPENSSL_cleanse(a->tokens, a->ntokens * sizeof *a->tokens);
	free(a->tokens);
	if (a->secret)
		OPENSSL_cleanse(a->secret, a->secret_len);
	free(a->secret);
	free(a->pubkey_pem);
	free(a->issuer);
	free(a->audience);
	free(a->query_param);
	free(a->cookie);
	free(a);
}

uint32_t edge_auth_methods(const struct edge_auth *a)
{
	return a->methods;
}

/* ------------------------------------------------------------------ */
/* Checking. */

/* Fills the WWW-Authenticate challenge: one per scheme the route accepts
 * (RFC 7235 §4.1), and for a refused bearer token the RFC 6750 §3.1 error
 * code, which says "invalid" without saying why. */
static void challenge(const struct edge_auth *a, struct edge_auth_result *res, const char *bearer_error)
{
	size_t o = 0, cap = sizeof res->www_authenticate;
	char *w = res->www_authenticate;
	if (a->methods & EDGE_AUTH_BASIC)
		o += (size_t)snprintf(w + o, cap - o, "Basic realm=\"%s\", charset=\"UTF-8\"", a->realm);
	if (a->methods & (EDGE_AUTH_BEARER | EDGE_AUTH_JWT)) {
		o += (size_t)snprintf(w + o, cap - o, "%sBearer realm=\"%s\"", o ? ", " : "", a->realm);
		if (bearer_error)
			snprintf(w + o, cap - o, ", error=\"%s\"", bearer_error);
	}
}

__attribute__((format(printf, 5, 6)))
static int refuse(const struct edge_auth *a, struct edge_auth_result *res, int status,
		  const char *bearer_error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof res->reason, fmt, ap);
	va_end(ap);
	res->status = status;
	challenge(a, res, bearer_error);
	return status;
}

__attribute__((format(printf, 3, 4)))
static int admit(struct edge_auth_result *res, const char *identity, const char *fmt, ...)
{
	snprintf(res->identity, sizeof res->identity, "%s", identity);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof res->reason, fmt, ap);
	va_end(ap);
	res->status = 0;
	return 0;
}

static int check_basic(const struct edge_auth *a, struct http_str cred, struct edge_auth_result *res)
{
	char q[80];
	res->method = "basic";
	if (cred.n == 0)
		return refuse(a, res, 400, NULL, "empty Basic credentials");
	if (cred.n > (BASIC_DECODED_MAX + 2) / 3 * 4)
		return refuse(a, res, 400, NULL, "Basic credentials of %zu bytes are too long", cred.n);
	unsigned char dec[BASIC_DECODED_MAX + 3];
	ssize_t dn = b64_decode(cred.p, cred.n, false, dec, sizeof dec - 1);
	if (dn < 0)
		return refuse(a, res, 400, NULL, "Basic credentials are not valid base64");
	dec[dn] = 0;
	int rc;
	char *colon = memchr(dec, ':', (size_t)dn);
	if (memchr(dec, 0, (size_t)dn)) {
		rc = refuse(a, res, 400, NULL, "Basic credentials contain a NUL byte");
		goto out_wipe;
	}
	if (!colon) {
		rc = refuse(a, res, 400, NULL, "Basic credentials have no ':' between user and password");
		goto out_wipe;
	}
	*colon = 0;
	const char *user = (const char *)dec, *password = colon + 1;
	size_t un = (size_t)(colon - (char *)dec), pn = strlen(password);
	if (un > USER_MAX) {
		rc = refuse(a, res, 401, NULL, "unknown user '%s' (longer than %d bytes)",
			    quote(q, sizeof q, user, un), USER_MAX);
		goto out_wipe;
	}
	if (pn > PASSWORD_MAX) {
		rc = refuse(a, res, 401, NULL, "password for '%s' is longer than %d bytes",
			    quote(q, sizeof q, user, un), PASSWORD_MAX);
		goto out_wipe;
	}
	struct basic_user key = { .user = (char *)user };
	const struct basic_user *u = bsearch(&key, a->users, a->nusers, sizeof *a->users, user_cmp);
	/* crypt_rn with our own crypt_data: crypt(3) keeps its state in a
	 * static buffer and is not thread-safe. 32 KiB: heap, not stack. */
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (!cd) {
		rc = refuse(a, res, 500, NULL, "out of memory for crypt_data");
		goto out_wipe;
	}
	const char *hash = u ? u->hash : a->dummy_hash;
	const char *h = crypt_rn(password, hash, cd, sizeof *cd);
	bool ok = h && ct_equal(h, strlen(h), hash, strlen(hash));
	int crypt_errno = errno;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	if (!u)
		rc = refuse(a, res, 401, NULL, "unknown user '%s'", quote(q, sizeof q, user, un));
	else if (!h) {
		char eb[64];
		rc = refuse(a, res, 401, NULL, "crypt(3) failed for '%s': %s",
			    quote(q, sizeof q, user, un), strerror_r(crypt_errno, eb, sizeof eb));
	}
	else if (!ok)
		rc = refuse(a, res, 401, NULL, "bad password for '%s'", quote(q, sizeof q, user, un));
	else
		rc = admit(res, u->user, "basic user '%s'", quote(q, sizeof q, user, un));
out_wipe:
	OPENSSL_cleanse(dec, sizeof dec);
	return rc;
}

/* Decodes one base64url JWS segment and parses it as a JSON object.
 * Returns the object, or NULL with *why set. */
static cJSON *jwt_segment(const char *s, size_t n, size_t max, const char **why)
{
	size_t cap = n / 4 * 3 + 3;
	if (cap > max + 3) {
		*why = "too long";
		return NULL;
	}
	unsigned char *buf = malloc(cap + 1);
	if (!buf) {
		*why = "out of memory";
		return NULL;
	}
	ssize_t dn = b64_decode(s, n, true, buf, cap);
	cJSON *js = NULL;
	if (dn < 0)
		*why = "not valid base64url";
	else if (memchr(buf, 0, (size_t)dn))
		*why = "has a NUL byte";
	/* cJSON wants the terminating NUL inside the length it is given to
	 * tell "the whole buffer is one value" from "a value, then more". */
	else if ((buf[dn] = 0, !(js = cJSON_ParseWithLengthOpts((const char *)buf, (size_t)dn + 1, NULL, true))))
		*why = "not valid JSON";
	else if (!cJSON_IsObject(js))
		*why = "not a JSON object";
	else if (has_duplicate_member(js))
		*why = "has a duplicate member";
	else
		goto out;
	cJSON_Delete(js);
	js = NULL;
out:
	free(buf);
	return js;
}

static bool b64url_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b64_value((unsigned char)s[i], true) < 0)
			return false;
	return true;
}

/* The claim checks of RFC 7519 §4.1, after the signature has verified. */
static int check_claims(const struct edge_auth *a, const cJSON *claims, time_t now,
			struct edge_auth_result *res)
{
	char t1[48], t2[48], q[80], q2[80];
	double dnow = (double)now;
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
	if (!exp && !a->exp_optional)
		return refuse(a, res, 401, "invalid_token", "JWT has no exp claim (required)");
	if (exp) {
		if (!cJSON_IsNumber(exp))
			return refuse(a, res, 401, "invalid_token", "JWT exp is not a number");
		/* §4.1.4: valid only while now < exp. */
		if (dnow >= exp->valuedouble + a->leeway)
			return refuse(a, res, 401, "invalid_token",
				      "JWT expired at %s (now %s, leeway %us)",
				      iso_time(t1, sizeof t1, exp->valuedouble),
				      iso_time(t2, sizeof t2, dnow), (unsigned)a->leeway);
	}
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
	if (nbf) {
		if (!cJSON_IsNumber(nbf))
			return refuse(a, res, 401, "invalid_token", "JWT nbf is not a number");
		/* §4.1.5: valid from nbf on. */
		if (dnow + a->leeway < nbf->valuedouble)
			return refuse(a, res, 401, "invalid_token",
				      "JWT not valid before %s (now %s, leeway %us)",
				      iso_time(t1, sizeof t1, nbf->valuedouble),
				      iso_time(t2, sizeof t2, dnow), (unsigned)a->leeway);
	}
	if (a->issuer) {
		const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
		if (!iss)
			return refuse(a, res, 401, "invalid_token", "JWT has no iss claim (expected '%s')",
				      quote(q, sizeof q, a->issuer, strlen(a->issuer)));
		if (!cJSON_IsString(iss) || strcmp(iss->valuestring, a->issuer) != 0) {
			const char *v = cJSON_IsString(iss) ? iss->valuestring : "(not a string)";
			return refuse(a, res, 401, "invalid_token", "JWT issuer '%s' is not '%s'",
				      quote(q2, sizeof q2, v, strlen(v)),
				      quote(q, sizeof q, a->issuer, strlen(a->issuer)));
		}
	}
	if (a->audience) {
		const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
		if (!aud)
			return refuse(a, res, 401, "invalid_token",
				      "JWT has no aud claim (expected '%s')",
				      quote(q, sizeof q, a->audience, strlen(a->audience)));
		/* §4.1.3: a single string or an array of strings. */
		bool found = false;
		if (cJSON_IsString(aud)) {
			found = strcmp(aud->valuestring, a->audience) == 0;
		} else if (cJSON_IsArray(aud)) {
			const cJSON *e;
			cJSON_ArrayForEach(e, aud)
				if (cJSON_IsString(e) && strcmp(e->valuestring, a->audience) == 0)
					found = true;
		}
		if (!found) {
			char *s = cJSON_PrintUnformatted(aud);
			refuse(a, res, 401, "invalid_token", "JWT audience %s does not include '%s'",
			       s ? quote(q2, sizeof q2, s, strlen(s)) : "?",
			       quote(q, sizeof q, a->audience, strlen(a->audience)));
			free(s);
			return res->status;
		}
	}
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
	if (sub) {
		if (!cJSON_IsString(sub))
			return refuse(a, res, 401, "invalid_token", "JWT sub is not a string");
		/* Cutting it would hand plugins a different identity. */
		if (strlen(sub->valuestring) > USER_MAX)
			return refuse(a, res, 401, "invalid_token", "JWT sub is longer than %d bytes",
				      USER_MAX);
	}
	return 0;
}

static int check_jwt(const struct edge_auth *a, const char *tok, size_t n, time_t now,
		     const char *src, struct edge_auth_result *res)
{
	char q[80];
	res->method = "jwt";
	const char *d1 = memchr(tok, '.', n);
	const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(tok + n - d1 - 1)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(tok + n - d2 - 1)))
		return refuse(a, res, 401, "invalid_token", "malformed JWT: not three dot-separated parts");
	size_t hn = (size_t)(d1 - tok), pn = (size_t)(d2 - d1 - 1), sn = (size_t)(tok + n - d2 - 1);
	if (!hn || !pn || !b64url_chars(tok, hn) || !b64url_chars(d1 + 1, pn) ||
	    !b64url_chars(d2 + 1, sn))
		return refuse(a, res, 401, "invalid_token",
			      "malformed JWT: an empty part or a character outside base64url");

	const char *why;
	cJSON *hdr = jwt_segment(tok, hn, JWT_HEADER_MAX, &why), *claims = NULL;
	if (!hdr)
		return refuse(a, res, 401, "invalid_token", "malformed JWT: header %s", why);
	int rc;
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	if (!cJSON_IsString(alg)) {
		rc = refuse(a, res, 401, "invalid_token", "malformed JWT: header has no \"alg\" string");
		goto out;
	}
	/* The token names its algorithm; we only take it if the configuration
	 * lists it, spelled exactly (libjwt itself would accept "hs256"). */
	const struct alg_info *ai = alg_by_name(alg->valuestring, strlen(alg->valuestring), true);
	if (!ai || !(a->jwt_algs & (1u << (ai - ALGS)))) {
		rc = refuse(a, res, 401, "invalid_token", "JWT algorithm %s not accepted (allowed: %s)",
			    quote(q, sizeof q, alg->valuestring, strlen(alg->valuestring)),
			    a->jwt_allowed);
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(hdr, "crit")) {
		/* RFC 7515 §4.1.11: extensions we do not understand must fail. */
		rc = refuse(a, res, 401, "invalid_token", "JWT header has \"crit\" extensions (unsupported)");
		goto out;
	}
	const cJSON *typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");
	if (typ && !(cJSON_IsString(typ) && strcasecmp(typ->valuestring, "JWT") == 0)) {
		const char *v = cJSON_IsString(typ) ? typ->valuestring : "(not a string)";
		rc = refuse(a, res, 401, "invalid_token", "JWT typ '%s' not supported (only JWT)",
			    quote(q, sizeof q, v, strlen(v)));
		goto out;
	}
	if (sn == 0) {
		rc = refuse(a, res, 401, "invalid_token", "malformed JWT: no signature");
		goto out;
	}
	claims = jwt_segment(d1 + 1, pn, EDGE_AUTH_TOKEN_MAX, &why);
	if (!claims) {
		rc = refuse(a, res, 401, "invalid_token", "malformed JWT: payload %s", why);
		goto out;
	}

	/* The key is chosen by the configured algorithm family, so an HMAC
	 * is only ever keyed with the shared secret and a signature only ever
	 * checked against the public key (of the type checked at load). */
	const unsigned char *key;
	size_t keylen;
	if (ai->kind == KEY_HMAC) {
		key = a->secret;
		keylen = a->secret_len;
	} else {
		key = (const unsigned char *)a->pubkey_pem;
		keylen = a->pubkey_len;
	}
	jwt_t *j = NULL;
	int jr = jwt_decode(&j, tok, key, (int)keylen);
	if (jr == ENOMEM) {
		rc = refuse(a, res, 500, NULL, "out of memory in jwt_decode");
		goto out;
	}
	if (jr || !j) {
		rc = refuse(a, res, 401, "invalid_token", "JWT signature does not verify (%s)", ai->name);
		goto out;
	}
	if (jwt_get_alg(j) != ai->alg) {
		/* Cannot happen after the checks above; kept as the last word. */
		rc = refuse(a, res, 401, "invalid_token", "JWT algorithm seen by libjwt differs from %s",
			    ai->name);
		jwt_free(j);
		goto out;
	}
	char *json = jwt_get_grants_json(j, NULL);
	jwt_free(j);
	if (!json) {
		rc = refuse(a, res, 500, NULL, "out of memory in jwt_get_grants_json");
		goto out;
	}
	if ((rc = check_claims(a, claims, now, res))) {
		free(json);
		goto out;
	}
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
	const char *id = cJSON_IsString(sub) ? sub->valuestring : "";
	res->claims_json = json;
	rc = admit(res, id, "jwt %s sub '%s' from %s", ai->name, quote(q, sizeof q, id, strlen(id)),
		     src);
out:
	cJSON_Delete(hdr);
	cJSON_Delete(claims);
	return rc;
}

/* A bearer token or a JWT, from wherever it came (src names it for the
 * log). tok is NUL-terminated at tok[n]. */
static int check_token(const struct edge_auth *a, const char *tok, size_t n, time_t now,
		       const char *src, struct edge_auth_result *res)
{
	bool jwt = a->methods & EDGE_AUTH_JWT, bearer = a->methods & EDGE_AUTH_BEARER;
	res->method = bearer ? "bearer" : "jwt";
	if (n == 0)
		return refuse(a, res, 400, "invalid_request", "empty token in %s", src);
	size_t bad = b64token_bad_at(tok, n);
	if (bad < n)
		return refuse(a, res, 400, "invalid_request",
			      "malformed token in %s: byte %zu (0x%02x) is not a token character", src,
			      bad + 1, (unsigned char)tok[bad]);
	if (bearer) {
		/* Every entry is compared, with no early exit, and on digests: the
		 * time taken says nothing about how close a guess came. */
		unsigned char d[DIGEST_LEN];
		sha256(tok, n, d);
		const struct bearer_token *hit = NULL;
		for (size_t i = 0; i < a->ntokens; i++) {
			bool eq = ct_equal(d, DIGEST_LEN, a->tokens[i].digest, DIGEST_LEN);
			hit = eq ? &a->tokens[i] : hit;
		}
		if (hit) {
			char q[80];
			res->method = "bearer";
			return admit(res, hit->subject, "bearer token of line %u (subject '%s') from %s",
				       hit->line, quote(q, sizeof q, hit->subject, strlen(hit->subject)),
				       src);
		}
	}
	size_t dots = 0;
	for (size_t i = 0; i < n; i++)
		dots += tok[i] == '.';
	if (jwt && (dots == 2 || !bearer))
		return check_jwt(a, tok, n, now, src, res);
	return refuse(a, res, 401, "invalid_token", "token not in bearer file (from %s)", src);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) (application/x-www-form-urlencoded, as RFC 6750
 * §2.3 says: '+' is a space) into out (cap bytes, NUL added). Returns the
 * length, -1 on a bad escape or a NUL, -2 if it does not fit. */
static ssize_t percent_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			if (c == 0)
				return -1;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= cap)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return (ssize_t)o;
}

int edge_auth_check(const struct edge_auth *a, const struct http_request *req, time_t now,
		    struct edge_auth_result *res)
{
	memset(res, 0, sizeof *res);
	char src[96];
	char *tok = malloc(EDGE_AUTH_TOKEN_MAX + 1);
	if (!tok)
		return refuse(a, res, 500, NULL, "out of memory");
	int rc;

	size_t nauth = http_count_headers(req, "Authorization");
	if (nauth > 1) {
		rc = refuse(a, res, 400, NULL, "%zu Authorization headers", nauth);
		goto out;
	}
	if (nauth == 1) {
		struct http_str v = http_find_header(req, "Authorization")->value;
		/* RFC 7235 §2.1: auth-scheme [ 1*SP token68 ], scheme case-insensitive. */
		size_t sn = 0;
		while (sn < v.n && v.p[sn] != ' ')
			sn++;
		struct http_str scheme = { v.p, sn }, cred = { v.p + sn, v.n - sn };
		while (cred.n && cred.p[0] == ' ')
			cred.p++, cred.n--;
		if (http_str_ieq(scheme, "Basic")) {
			if (!(a->methods & EDGE_AUTH_BASIC)) {
				res->method = "basic";
				rc = refuse(a, res, 401, NULL, "Basic credentials, but basic is not enabled");
			} else {
				rc = check_basic(a, cred, res);
			}
		} else if (http_str_ieq(scheme, "Bearer")) {
			if (!(a->methods & (EDGE_AUTH_BEARER | EDGE_AUTH_JWT))) {
				res->method = "bearer";
				rc = refuse(a, res, 401, NULL,
					    "Bearer token, but neither bearer nor jwt is enabled");
			} else if (cred.n > EDGE_AUTH_TOKEN_MAX) {
				res->method = a->methods & EDGE_AUTH_BEARER ? "bearer" : "jwt";
				rc = refuse(a, res, 401, "invalid_token",
					    "token of %zu bytes is longer than %d", cred.n,
					    EDGE_AUTH_TOKEN_MAX);
			} else {
				memcpy(tok, cred.p, cred.n);
				tok[cred.n] = 0;
				rc = check_token(a, tok, cred.n, now, "Authorization header", res);
			}
		} else {
			char q[80];
			rc = refuse(a, res, 401, NULL, "unsupported authorization scheme '%s'",
				    quote(q, sizeof q, scheme.p, scheme.n));
		}
		goto out;
	}

	if (a->query_param) {
		size_t found = 0;
		ssize_t tn = 0;
		const char *p = req->query.p, *end = req->query.p + req->query.n;
		while (p && p < end) {
			const char *amp = memchr(p, '&', (size_t)(end - p));
			const char *pe = amp ? amp : end;
			const char *eq = memchr(p, '=', (size_t)(pe - p));
			const char *ne = eq ? eq : pe;
			char name[80];
			ssize_t nn = percent_decode(p, (size_t)(ne - p), name, sizeof name);
			if (nn >= 0 && strcmp(name, a->query_param) == 0) {
				if (++found > 1)
					break;
				const char *vs = eq ? eq + 1 : pe;
				tn = percent_decode(vs, (size_t)(pe - vs), tok, EDGE_AUTH_TOKEN_MAX + 1);
			}
			p = amp ? amp + 1 : NULL;
		}
		if (found) {
			char q[80];
			snprintf(src, sizeof src, "query parameter '%s'",
				 quote(q, sizeof q, a->query_param, strlen(a->query_param)));
			if (found > 1)
				rc = refuse(a, res, 400, "invalid_request", "%s given more than once", src);
			else if (tn == -1)
				rc = refuse(a, res, 400, "invalid_request", "bad percent-encoding in %s", src);
			else if (tn == -2)
				rc = refuse(a, res, 401, "invalid_token", "token in %s is longer than %d",
					    src, EDGE_AUTH_TOKEN_MAX);
			else
				rc = check_token(a, tok, (size_t)tn, now, src, res);
			if (!res->method)
				res->method = a->methods & EDGE_AUTH_BEARER ? "bearer" : "jwt";
			goto out;
		}
	}

	if (a->cookie) {
		/* RFC 6265 §5.4: the first cookie of a name is the one with the
		 * longest path, i.e. the most specific; that one is used. */
		size_t cn = strlen(a->cookie);
		for (size_t i = 0; i < req->nheaders; i++) {
			if (!http_str_ieq(req->headers[i].name, "Cookie"))
				continue;
			const char *p = req->headers[i].value.p, *end = p + req->headers[i].value.n;
			while (p < end) {
				const char *semi = memchr(p, ';', (size_t)(end - p));
				const char *pe = semi ? semi : end;
				while (p < pe && (*p == ' ' || *p == '\t'))
					p++;
				const char *eq = memchr(p, '=', (size_t)(pe - p));
				if (eq && (size_t)(eq - p) == cn && memcmp(p, a->cookie, cn) == 0) {
					const char *vs = eq + 1, *ve = pe;
					while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
						ve--;
					if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"')
						vs++, ve--;
					char q[80];
					snprintf(src, sizeof src, "cookie '%s'", quote(q, sizeof q, a->cookie, cn));
					size_t vn = (size_t)(ve - vs);
					if (vn > EDGE_AUTH_TOKEN_MAX) {
						res->method = a->methods & EDGE_AUTH_BEARER ? "bearer" : "jwt";
						rc = refuse(a, res, 401, "invalid_token",
							    "token in %s is longer than %d", src,
							    EDGE_AUTH_TOKEN_MAX);
					} else {
						memcpy(tok, vs, vn);
						tok[vn] = 0;
						rc = check_token(a, tok, vn, now, src, res);
					}
					goto out;
				}
				p = semi ? semi + 1 : end;
			}
		}
	}

	{
		char where[200];
		size_t o = (size_t)snprintf(where, sizeof where, "Authorization header");
		if (a->query_param)
			o += (size_t)snprintf(where + o, sizeof where - o, ", query parameter '%.64s'",
					      a->query_param);
		if (a->cookie)
			snprintf(where + o, sizeof where - o, ", cookie '%.64s'", a->cookie);
		rc = refuse(a, res, 401, NULL, "no credentials (looked in: %s)", where);
	}
out:
	OPENSSL_cleanse(tok, EDGE_AUTH_TOKEN_MAX + 1);
	free(tok);
	return rc;
}
