/* ws_handshake — see ws_handshake.h. */
#include "ws/ws_handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA_CTX ctx;
	/* The low-level SHA1 API is deprecated in OpenSSL 3 but is the
	 * cheapest way to hash 60 bytes; EVP would allocate a context per
	 * handshake. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	SHA1_Init(&ctx);
	SHA1_Update(&ctx, key, key_len);
	SHA1_Update(&ctx, WS_GUID, sizeof WS_GUID - 1);
	SHA1_Final(md, &ctx);
#pragma GCC diagnostic pop
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
	out[WS_ACCEPT_LEN] = 0;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

bool ws_key_valid(const char *key, size_t len)
{
	/* 16 bytes encode to 22 characters and "==". The last data character
	 * carries 2 significant bits, so its low 4 bits must be zero. */
	if (len != 24 || key[22] != '=' || key[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (b64val(key[i]) < 0)
			return false;
	return (b64val(key[21]) & 0x0F) == 0;
}

/* True if any header named `name` lists `token`. */
static bool any_header_has_token(const struct http_request *req, const char *name, const char *token)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (http_str_ieq(req->headers[i].name, name) &&
		    http_list_has_token(req->headers[i].value, token))
			return true;
	return false;
}

/* True if any Sec-WebSocket-Protocol header lists `proto`, compared
 * case-sensitively: a client checks that the answer is one of the exact
 * strings it offered (RFC 6455 §4.1, and browsers compare exactly), so
 * matching "CHAT" to our "chat" would make us answer a protocol the client
 * never offered. Elements are separated by commas with optional blanks. */
static bool offers_subprotocol(const struct http_request *req, const char *proto)
{
	size_t pn = strlen(proto);
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!http_str_ieq(req->headers[i].name, "Sec-WebSocket-Protocol"))
			continue;
		const char *p = req->headers[i].value.p, *end = p + req->headers[i].value.n;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			const char *s = p;
			while (p < end && *p != ',')
				p++;
			const char *e = p;
			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if ((size_t)(e - s) == pn && memcmp(s, proto, pn) == 0)
				return true;
		}
	}
	return false;
}

bool ws_handshake_is_upgrade(const struct http_request *req)
{
	return any_header_has_token(req, "Upgrade", "websocket");
}

static bool refuse(struct ws_handshake_result *res, int status, const char *reason)
{
	res->status = status;
	res->reason = reason;
	return false;
}

bool ws_handshake_check(const struct http_request *req, const char *const *protocols,
			size_t nprotocols, bool require_subprotocol,
			struct ws_handshake_result *res)
{
	memset(res, 0, sizeof *res);
	if (!http_str_eq(req->method, "GET"))
		return refuse(res, 405, "WebSocket upgrade requires GET");
	if (req->minor_version != 1)
		return refuse(res, 400, "WebSocket upgrade requires HTTP/1.1");
	if (!http_find_header(req, "Host"))
		return refuse(res, 400, "Missing Host header");
	if (!ws_handshake_is_upgrade(req))
		return refuse(res, 426, "Upgrade to websocket required");
	if (!any_header_has_token(req, "Connection", "upgrade"))
		return refuse(res, 400, "Connection header must contain 'Upgrade'");

	const struct http_header *ver = http_find_header(req, "Sec-WebSocket-Version");
	if (!ver || http_count_headers(req, "Sec-WebSocket-Version") != 1 || !http_str_eq(ver->value, "13"))
		return refuse(res, 426, "Unsupported Sec-WebSocket-Version (13 required)");

	const struct http_header *key = http_find_header(req, "Sec-WebSocket-Key");
	if (!key)
		return refuse(res, 400, "Missing Sec-WebSocket-Key");
	if (http_count_headers(req, "Sec-WebSocket-Key") != 1)
		return refuse(res, 400, "Duplicate Sec-WebSocket-Key");
	if (!ws_key_valid(key->value.p, key->value.n))
		return refuse(res, 400, "Sec-WebSocket-Key is not base64 of 16 bytes");

	/* §4.2.2: our own order of preference decides; never answer with a
	 * protocol the client did not offer (compared exactly, see above). */
	for (size_t i = 0; i < nprotocols && !res->subprotocol; i++)
		if (offers_subprotocol(req, protocols[i]))
			res->subprotocol = protocols[i];
	if (require_subprotocol && !res->subprotocol)
		return refuse(res, 400, "No supported subprotocol offered");

	ws_accept_key(key->value.p, key->value.n, res->accept);
	res->status = 101;
	return true;
}

bool ws_handshake_offers(const struct http_request *req, const char *proto)
{
	return offers_subprotocol(req, proto);
}
