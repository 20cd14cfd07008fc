/* fuzz_edge_jwt — authentication at the upgrade (core/edge/edge_auth.c):
 * the Authorization header (Basic and Bearer: strict base64, bearer file,
 * JWT split/base64url/JSON/alg/claims), the token query parameter
 * (percent-decoding) and the token cookie, against one fixed loaded
 * configuration with every method on.
 *
 * Input: 1 settings byte, then three fields separated by '\n':
 *   Authorization value \n query string \n Cookie value
 * Settings: bit 0 send Authorization, bit 1 send it twice, bit 2 send
 * Cookie, bit 3 send a second Cookie header (empty-ish), bits 4-7 move
 * "now" in 40 s steps around T0 (so exp/nbf/leeway edges are reached by
 * the seeds). The request is built directly, not parsed, so header values
 * may hold any byte (a superset of what http_parser lets through).
 *
 * The configuration, made once in a temporary directory: user "alice"
 * (password "pw", sha512crypt at 1000 rounds to keep executions fast),
 * two bearer tokens, JWT "HS256 ES256" with the secret FUZZ_SECRET and the
 * public key below, iss "iss", aud "aud", leeway 60 s. The seed JWTs were
 * signed with libjwt by a throwaway program; the ES256 private key was
 * never written down.
 *
 * Beyond "no crash, no leak" it checks:
 *  - the return value is res.status and one of 0, 400, 401;
 *  - every text field is NUL-terminated; the log reason holds printable
 *    ASCII only (no input byte can forge or break a log line);
 *  - a refusal has no identity, no claims, a reason and a challenge naming
 *    both schemes; a success has no challenge and a method;
 *  - a Basic success is exactly alice:pw; a bearer success has one of the
 *    file's subjects; a JWT success has claims that are valid JSON whose
 *    sub is the identity and whose exp, nbf, iss and aud pass when checked
 *    again here, independently;
 *  - the same request judged twice gets the same verdict and reason.
 */
#include <crypt.h>
#include <stdbool.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "edge/edge_auth.h"
#include "fuzz_common.h"

#define T0 1795701600  /* 2026-11-26T14:00:00Z */
#define FUZZ_SECRET "fuzz-secret-0123456789abcdef-0123456789abcdef"
#define TOKEN_1 "fuzz-token-0000000000000001"
#define TOKEN_2 "fuzz.token_2~+/=="

static const char FUZZ_PUBKEY[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtsIyxtRzYOpgHWsujmHO9iMA9B47\n"
	"OPbf2jTcAWGeIVeTiJtJuxQsbxlMpa4abzWrpIm8jKCckp3WmaaZHMXXmw==\n"
	"-----END PUBLIC KEY-----\n";

static struct edge_auth *g_auth;

static void put(const char *dir, const char *name, const char *content, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f, "cannot write %s", path);
	fputs(content, f);
	fclose(f);
}

static void setup(void)
{
	char dir[] = "/tmp/mbgw-fuzz-auth-XXXXXX";
	CHECK(mkdtemp(dir), "mkdtemp");
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], users[512];
	CHECK(crypt_gensalt_rn("$6$", 1000, NULL, 0, salt, sizeof salt), "gensalt");
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h = crypt_rn("pw", salt, cd, sizeof *cd);
	CHECK(h, "crypt_rn");
	snprintf(users, sizeof users, "alice:%s\n", h);
	free(cd);
	char pu[300], pt[300], ps[300], pk[300];
	put(dir, "users", users, pu, sizeof pu);
	put(dir, "tokens", TOKEN_1 " svc one\n" TOKEN_2 "\n", pt, sizeof pt);
	put(dir, "secret", FUZZ_SECRET, ps, sizeof ps);
	put(dir, "pub.pem", FUZZ_PUBKEY, pk, sizeof pk);
	struct edge_auth_config cfg = {
		.methods = EDGE_AUTH_BASIC | EDGE_AUTH_BEARER | EDGE_AUTH_JWT,
		.realm = "fz",
		.basic_file = pu,
		.bearer_file = pt,
		.jwt_algorithms = "HS256 ES256",
		.jwt_secret_file = ps,
		.jwt_public_key = pk,
		.jwt_issuer = "iss",
		.jwt_audience = "aud",
		.jwt_leeway_s = 60,
		.token_query_param = "access_token",
		.token_cookie = "tok",
	};
	char err[512];
	int rc = edge_auth_load(&cfg, &g_auth, err, sizeof err);
	CHECK(rc == 0, "load: %s", err);
	unlink(pu), unlink(pt), unlink(ps), unlink(pk);
	rmdir(dir);
}

static void add(struct http_request *r, const char *name, const char *p, size_t n)
{
	struct http_header *h = &r->headers[r->nheaders++];
	h->name = (struct http_str){ name, strlen(name) };
	h->value = (struct http_str){ p, n };
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

/* Checks a JWT success again from the claims handed to plugins. */
static void recheck_claims(const struct edge_auth_result *res, time_t now)
{
	CHECK(res->claims_json, "jwt success without claims");
	cJSON *c = cJSON_Parse(res->claims_json);
	CHECK(c && cJSON_IsObject(c), "claims are not a JSON object: %s", res->claims_json);
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
	CHECK(sub ? cJSON_IsString(sub) && strcmp(sub->valuestring, res->identity) == 0
		  : res->identity[0] == 0,
	      "identity '%s' is not the sub of %s", res->identity, res->claims_json);
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
	CHECK(cJSON_IsNumber(exp) && (double)now < exp->valuedouble + 60, "exp: %s", res->claims_json);
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(c, "nbf");
	CHECK(!nbf || (cJSON_IsNumber(nbf) && (double)now + 60 >= nbf->valuedouble), "nbf: %s",
	      res->claims_json);
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
	CHECK(cJSON_IsString(iss) && strcmp(iss->valuestring, "iss") == 0, "iss: %s", res->claims_json);
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(c, "aud"), *e;
	bool found = cJSON_IsString(aud) && strcmp(aud->valuestring, "aud") == 0;
	if (cJSON_IsArray(aud))
		cJSON_ArrayForEach(e, aud)
			found |= cJSON_IsString(e) && strcmp(e->valuestring, "aud") == 0;
	CHECK(found, "aud: %s", res->claims_json);
	cJSON_Delete(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_auth)
		setup();
	if (size < 1)
		return 0;
	uint8_t set = data[0];
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	struct http_str f[3] = { { "", 0 }, { "", 0 }, { "", 0 } };
	for (int i = 0; i < 3 && p <= end; i++) {
		const char *nl = i < 2 ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		const char *fe = nl ? nl : end;
		f[i] = (struct http_str){ p, (size_t)(fe - p) };
		p = fe + 1;
	}
	struct http_request *r = calloc(1, sizeof *r);
	r->method = (struct http_str){ "GET", 3 };
	r->path = (struct http_str){ "/ws", 3 };
	r->query = f[1];
	r->minor_version = 1;
	add(r, "Host", "x", 1);
	if (set & 1)
		add(r, "Authorization", f[0].p, f[0].n);
	if (set & 2)
		add(r, "authorization", f[0].p, f[0].n);
	if (set & 4)
		add(r, "Cookie", f[2].p, f[2].n);
	if (set & 8)
		add(r, "COOKIE", "a=b; tok", 8);
	time_t now = T0 + ((int)(set >> 4) - 8) * 40;

	struct edge_auth_result res, again;
	int rc = edge_auth_check(g_auth, r, now, &res);
	CHECK(rc == res.status, "returned %d, status %d", rc, res.status);
	CHECK(rc == 0 || rc == 400 || rc == 401, "status %d (%s)", rc, res.reason);
	CHECK(terminated(res.reason, sizeof res.reason) && terminated(res.identity, sizeof res.identity) &&
		      terminated(res.www_authenticate, sizeof res.www_authenticate),
	      "unterminated field");
	CHECK(printable(res.reason), "reason is not printable ASCII: %s", res.reason);
	if (rc) {
		CHECK(res.identity[0] == 0 && !res.claims_json, "refusal with identity or claims");
		CHECK(res.reason[0], "refusal without reason");
		CHECK(strncmp(res.www_authenticate, "Basic realm=\"fz\", charset=\"UTF-8\", Bearer realm=\"fz\"",
			      52) == 0,
		      "challenge: %s", res.www_authenticate);
	} else {
		CHECK(res.method && res.www_authenticate[0] == 0, "success without method or with a challenge");
		if (strcmp(res.method, "basic") == 0) {
			CHECK(strcmp(res.identity, "alice") == 0, "basic identity %s", res.identity);
			CHECK(f[0].n >= 6 && strncasecmp(f[0].p, "basic ", 6) == 0, "basic success without Basic");
			size_t i = 6;
			while (i < f[0].n && f[0].p[i] == ' ')
				i++;
			CHECK(f[0].n - i == 12 && memcmp(f[0].p + i, "YWxpY2U6cHc=", 12) == 0,
			      "basic success for other credentials than alice:pw");
		} else if (strcmp(res.method, "bearer") == 0) {
			CHECK(strcmp(res.identity, "svc one") == 0 || res.identity[0] == 0,
			      "bearer identity %s", res.identity);
			CHECK(!res.claims_json, "bearer with claims");
		} else {
			CHECK(strcmp(res.method, "jwt") == 0, "method %s", res.method);
			recheck_claims(&res, now);
		}
	}
	int rc2 = edge_auth_check(g_auth, r, now, &again);
	CHECK(rc2 == rc && strcmp(again.reason, res.reason) == 0 && strcmp(again.identity, res.identity) == 0,
	      "not deterministic: %d/%d '%s' / '%s'", rc, rc2, res.reason, again.reason);
	CHECK((res.claims_json == NULL) == (again.claims_json == NULL) &&
		      (!res.claims_json || strcmp(res.claims_json, again.claims_json) == 0),
	      "claims differ");
	free(res.claims_json);
	free(again.claims_json);
	free(r);
	return 0;
}
