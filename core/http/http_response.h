/* http_response — formats the few HTTP responses the server writes:
 * 101 for an upgrade, and short plain-text answers (200, 4xx, 5xx) that
 * end the connection. Pure, any thread.
 */
#ifndef MBGW_HTTP_RESPONSE_H
#define MBGW_HTTP_RESPONSE_H

#include <stddef.h>

/* Phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

/* Writes a complete response with a text body and "Connection: close".
 * extra_headers is NULL or CRLF-terminated header lines. Returns the
 * length written, or 0 if it does not fit. */
size_t http_response_simple(char *out, size_t cap, int status, const char *extra_headers,
			    const char *body);

/* Headers every plain HTTP answer carries (not the 101): the endpoints
 * serve no HTML, so nothing may be sniffed, framed, cached or referred. */
#define HTTP_SECURITY_HEADERS                                                  \
	"X-Content-Type-Options: nosniff\r\n"                                  \
	"X-Frame-Options: DENY\r\n"                                            \
	"Referrer-Policy: no-referrer\r\n"                                     \
	"Content-Security-Policy: default-src 'none'\r\n"                      \
	"Cache-Control: no-store\r\n"

/* Writes the status line and headers of an answer with a body of
 * content_length bytes (Connection: close, security headers). Returns the
 * length or 0 if it does not fit. */
size_t http_response_head(char *out, size_t cap, int status, const char *content_type,
			  const char *extra_headers, size_t content_length);

/* Writes the 101 answer; subprotocol and extensions (the
 * Sec-WebSocket-Extensions value) may be NULL. Returns length or 0. */
size_t http_response_upgrade(char *out, size_t cap, const char *accept, const char *subprotocol,
			     const char *extensions);

#endif
