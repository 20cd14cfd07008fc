/* ws_handshake — the server side of the RFC 6455 §4.2 opening handshake.
 *
 * Stage "HTTP upgrade" of the message path: given a parsed request
 * (http_parser) and the route that serves its path, decides between
 * "101 Switching Protocols" (with the accept key and the chosen
 * subprotocol) and a refusal (status, reason, and for 426 the
 * Sec-WebSocket-Version header). Pure apart from SHA-1 from OpenSSL; no
 * I/O, any thread.
 */
#ifndef MBGW_WS_HANDSHAKE_H
#define MBGW_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http_parser.h"

#define WS_ACCEPT_LEN 28  /* base64 of a 20-byte SHA-1 */

/* Computes Sec-WebSocket-Accept for a key (§4.2.2 step 5.4): base64 of
 * SHA-1(key + GUID). out receives WS_ACCEPT_LEN chars and a NUL. */
void ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* True if the key is base64 that decodes to exactly 16 bytes (§4.2.1). */
bool ws_key_valid(const char *key, size_t len);

struct ws_handshake_result {
	int status;               /* 101 on success */
	const char *reason;       /* why it was refused (static) */
	char accept[WS_ACCEPT_LEN + 1];
	const char *subprotocol;  /* borrowed from `protocols`, NULL if none */
};

/* Validates an upgrade request for a route offering `protocols` (in the
 * server's order of preference). The server picks the first of its own
 * protocols that the client offers (names compared case-sensitively, as
 * clients compare the answer); with require_subprotocol a client that
 * offers none of them is refused (400). Returns true for 101. */
bool ws_handshake_check(const struct http_request *req, const char *const *protocols,
			size_t nprotocols, bool require_subprotocol,
			struct ws_handshake_result *res);

/* True if the client offers subprotocol `proto` (exact comparison, over
 * every Sec-WebSocket-Protocol header). */
bool ws_handshake_offers(const struct http_request *req, const char *proto);

/* True if the request asks for a WebSocket upgrade at all (an Upgrade
 * header naming websocket), used to tell 426 from a plain GET. */
bool ws_handshake_is_upgrade(const struct http_request *req);

#endif
