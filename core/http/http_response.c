/* http_response — see http_response.h. */
#include "http/http_response.h"

#include <stdio.h>
#include <string.h>

static size_t strlen_safe(const char *s) { return s ? strlen(s) : 0; }

const char *http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 204: return "No Content";
	case 401: return "Unauthorized";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static size_t fit(int n, size_t cap)
{
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t http_response_head(char *out, size_t cap, int status, const char *content_type,
			  const char *extra_headers, size_t content_length)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Server: mbgw\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n"
			 HTTP_SECURITY_HEADERS
			 "%s\r\n",
			 status, http_status_text(status), content_type, content_length,
			 extra_headers ? extra_headers : "");
	return fit(n, cap);
}

size_t http_response_simple(char *out, size_t cap, int status, const char *extra_headers,
			    const char *body)
{
	size_t bl = strlen_safe(body);
	size_t n = http_response_head(out, cap, status, "text/plain; charset=utf-8", extra_headers, bl + 1);
	if (!n || n + bl + 2 > cap)
		return 0;
	memcpy(out + n, body ? body : "", bl);
	out[n + bl] = '\n';
	out[n + bl + 1] = 0;
	return n + bl + 1;
}

size_t http_response_upgrade(char *out, size_t cap, const char *accept, const char *subprotocol,
			     const char *extensions)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "%s%s%s"
			 "%s%s%s"
			 "\r\n",
			 accept,
			 subprotocol ? "Sec-WebSocket-Protocol: " : "",
			 subprotocol ? subprotocol : "",
			 subprotocol ? "\r\n" : "",
			 extensions ? "Sec-WebSocket-Extensions: " : "",
			 extensions ? extensions : "",
			 extensions ? "\r\n" : "");
	return fit(n, cap);
}
