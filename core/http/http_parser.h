/* http_parser — an HTTP/1.1 request-head parser with no I/O.
 *
 * Stage "HTTP upgrade" of the message path. Given the bytes read so far it
 * answers "complete (n bytes of head)", "need more" or "error (status and
 * reason)". The result points into the caller's buffer and allocates
 * nothing. Deliberately strict, so that no proxy in front of us can read
 * the same bytes differently (request smuggling): no obsolete line folding,
 * no whitespace before a header's colon, CRLF line ends only (a bare LF or
 * CR is refused), no control characters in values, and a request that
 * carries a body (Transfer-Encoding, or a non-zero Content-Length) is
 * refused since nothing we serve accepts one.
 *
 * Pure function, any thread.
 */
#ifndef MBGW_HTTP_PARSER_H
#define MBGW_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct http_str {
	const char *p;
	size_t n;
};

struct http_header {
	struct http_str name;
	struct http_str value; /* leading/trailing blanks removed */
};

#define HTTP_MAX_HEADERS_CAP 128

struct http_request {
	struct http_str method;
	struct http_str target;  /* request-target as sent */
	struct http_str path;    /* target without the query */
	struct http_str query;   /* after '?', may be empty */
	int minor_version;       /* HTTP/1.x */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS_CAP];
};

struct http_limits {
	size_t max_head;      /* bytes of request line + headers */
	size_t max_headers;   /* header count, at most HTTP_MAX_HEADERS_CAP */
};

struct http_error {
	int status;           /* 400, 431, 501, 505 ... */
	const char *reason;   /* static string */
};

/* Parses a request head from buf[0..len).
 * Returns the head's length (>0) including the final CRLFCRLF when it is
 * complete, 0 when more bytes are needed (and the limit is not reached
 * yet), or -1 with err filled. Bytes after the head (e.g. WebSocket frames
 * sent right behind the request) are not touched. */
ssize_t http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
			   struct http_request *req, struct http_error *err);

/* Returns the first header with this name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);
/* Counts headers with this name. */
size_t http_count_headers(const struct http_request *req, const char *name);

/* True if the comma-separated token list `list` contains `token`
 * (case-insensitive, optional whitespace around elements). */
bool http_list_has_token(struct http_str list, const char *token);

/* Case-insensitive comparison of a string slice with a C string. */
bool http_str_ieq(struct http_str s, const char *c);
bool http_str_eq(struct http_str s, const char *c);

#endif
