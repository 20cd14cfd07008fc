/* test_client_parse — the pure parts of libmbgw-client: URLs, proxy URLs
 * and no_proxy, HTTP response heads, the 101 checks (RFC 6455 §4.1), the
 * permessage-deflate answer (RFC 7692 §7.1), the frame reader (fed whole,
 * and split at every byte boundary), and the message helpers. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbgw/client.h>

#include "client_internal.h"

#define EXPECT(c, ...) do { if (!(c)) cr_assert(c, "" __VA_ARGS__); } while (0)
#define EXPECT_EQ(a, b, ...) do { if (!((a) == (b))) cr_assert_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_STR_EQ(a, b, ...) \
	do { if (strcmp(a, b) != 0) cr_assert_str_eq(a, b, "" __VA_ARGS__); } while (0)

/* ------------------------------------------------------------------ */
/* URLs */

Test(url, plain_and_defaults)
{
	struct cl_url u;
	char err[200];
	cr_assert_eq(cl_url_parse("ws://example.com/chat?x=1", &u, err, sizeof err), 0, "%s", err);
	cr_assert(!u.tls);
	cr_assert_str_eq(u.host, "example.com");
	cr_assert_eq(u.port, 80);
	cr_assert_str_eq(u.path, "/chat?x=1");
	cr_assert_str_eq(u.hostport, "example.com");
	cr_assert_eq(cl_url_parse("WSS://Example.com", &u, err, sizeof err), 0);
	cr_assert(u.tls);
	cr_assert_eq(u.port, 443);
	cr_assert_str_eq(u.path, "/");
	cr_assert_eq(cl_url_parse("wss://h:8443?q", &u, err, sizeof err), 0);
	cr_assert_str_eq(u.path, "/?q");
	cr_assert_str_eq(u.hostport, "h:8443");
	cr_assert_eq(cl_url_parse("ws://h:80/", &u, err, sizeof err), 0);
	cr_assert_str_eq(u.hostport, "h", "the default port is left out of Host");
}

Test(url, ip_literals)
{
	struct cl_url u;
	char err[200];
	cr_assert_eq(cl_url_parse("ws://127.0.0.1:9000/ws", &u, err, sizeof err), 0);
	cr_assert_str_eq(u.host, "127.0.0.1");
	cr_assert(!u.ipv6);
	cr_assert_eq(u.port, 9000);
	cr_assert_eq(cl_url_parse("ws://[::1]:9000/ws", &u, err, sizeof err), 0, "%s", err);
	cr_assert(u.ipv6);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_str_eq(u.hostport, "[::1]:9000");
	cr_assert_eq(cl_url_parse("wss://[2001:db8::1]/", &u, err, sizeof err), 0);
	cr_assert_str_eq(u.hostport, "[2001:db8::1]");
}

Test(url, refused)
{
	static const char *const bad[] = {
		"http://h/", "ws:/h", "ws://", "ws://:80/", "ws://h:/", "ws://h:0/", "ws://h:65536/",
		"ws://h:8x/", "ws://[::1/", "ws://::1/", "ws://h/#frag", "ws://u:p@h/", "ws://h/a b",
		"ws://[abc]/", "ws://h\"/", NULL,
	};
	struct cl_url u;
	char err[200];
	for (const char *const *s = bad; *s; s++) {
		err[0] = 0;
		cr_assert_eq(cl_url_parse(*s, &u, err, sizeof err), -1, "accepted %s", *s);
		cr_assert(err[0], "no reason for %s", *s);
	}
	cr_assert_eq(cl_url_parse(NULL, &u, err, sizeof err), -1);
}

Test(url, proxy)
{
	struct cl_proxy p;
	char err[200];
	cr_assert_eq(cl_proxy_parse("http://proxy.local:3128", &p, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(p.host, "proxy.local");
	cr_assert_eq(p.port, 3128);
	cr_assert(!p.has_auth);
	cr_assert_eq(cl_proxy_parse("http://us%40er:p%3Ass@127.0.0.1/", &p, err, sizeof err), 0, "%s", err);
	cr_assert(p.has_auth);
	cr_assert_str_eq(p.user, "us@er");
	cr_assert_str_eq(p.pass, "p:ss");
	cr_assert_eq(p.port, 1080);
	cr_assert_eq(cl_proxy_parse("[::1]:8888", &p, err, sizeof err), 0, "%s", err);
	cr_assert(p.ipv6);
	cr_assert_eq(p.port, 8888);
	cr_assert_eq(cl_proxy_parse("https://h:1", &p, err, sizeof err), -1);
	cr_assert_eq(cl_proxy_parse("socks5://h:1", &p, err, sizeof err), -1);
	cr_assert_eq(cl_proxy_parse("http://h:1/path", &p, err, sizeof err), -1);
	cr_assert_eq(cl_proxy_parse("http://u:%zz@h", &p, err, sizeof err), -1);
	cr_assert_eq(cl_proxy_parse("http://u:%4@h", &p, err, sizeof err), -1);
	cr_assert_eq(cl_proxy_parse("", &p, err, sizeof err), -1);
}

Test(url, no_proxy)
{
	cr_assert(cl_no_proxy_match("*", "anything"));
	cr_assert(cl_no_proxy_match("localhost,127.0.0.1", "127.0.0.1"));
	cr_assert(cl_no_proxy_match("example.com", "a.example.com"));
	cr_assert(cl_no_proxy_match(".example.com", "a.example.com"));
	cr_assert(cl_no_proxy_match("example.com", "EXAMPLE.com"));
	cr_assert(!cl_no_proxy_match("example.com", "badexample.com"));
	cr_assert(!cl_no_proxy_match("example.com", "example.org"));
	cr_assert(cl_no_proxy_match(" foo , example.com:8080", "example.com"));
	cr_assert(cl_no_proxy_match("::1", "::1"));
	cr_assert(cl_no_proxy_match("[::1]:80", "::1"));
	cr_assert(!cl_no_proxy_match("", "h"));
	cr_assert(!cl_no_proxy_match(",,", "h"));
}

/* ------------------------------------------------------------------ */
/* HTTP heads and the 101 answer */

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

Test(http, accept_key_rfc_example)
{
	char out[29];
	cl_accept_key(KEY, out); /* RFC 6455 §1.3 */
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(http, parse_every_split)
{
	static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n\r\nXX";
	size_t head = sizeof resp - 1 - 2;
	struct cl_http_resp r;
	char err[200];
	for (size_t n = 0; n < head; n++)
		EXPECT_EQ(cl_http_parse(resp, n, &r, err, sizeof err), 0, "prefix %zu: %s", n, err);
	cr_assert_eq(cl_http_parse(resp, sizeof resp - 1, &r, err, sizeof err), (int)head);
	cr_assert_eq(r.status, 101);
	cr_assert_eq(r.nh, 3);
	const char *v;
	size_t vl;
	cr_assert_eq(cl_http_header(&r, "sec-websocket-accept", &v, &vl), 1);
	cr_assert_eq(vl, 28, "value trimmed");
	cr_assert_eq(cl_http_header(&r, "X-None", &v, &vl), 0);
}

Test(http, parse_refused)
{
	static const char *const bad[] = {
		"SSH-2.0-OpenSSH\r\n", "HTTP/1.1 1O1 x\r\n\r\n", "HTTP/2 101\r\n\r\n",
		"HTTP/1.1 101 ok\r\n folded: x\r\n\r\n", "HTTP/1.1 101 ok\r\nNo colon\r\n\r\n",
		"HTTP/1.1 101 ok\r\nBad Name: x\r\n\r\n", "HTTP/1.1 101 ok\r\nA: x\x01y\r\n\r\n",
		"HTTP/1.1 099 x\r\n\r\n", "HTTP/1.1 101x\r\n\r\n", NULL,
	};
	struct cl_http_resp r;
	char err[200];
	for (const char *const *s = bad; *s; s++)
		cr_assert_eq(cl_http_parse(*s, strlen(*s), &r, err, sizeof err), -1, "accepted %s", *s);
	/* Too many headers, too long a head. */
	char big[CL_HTTP_MAX_HEAD + 100];
	int n = snprintf(big, sizeof big, "HTTP/1.1 101 ok\r\n");
	for (int i = 0; i <= CL_HTTP_MAX_HEADERS; i++)
		n += snprintf(big + n, sizeof big - (size_t)n, "X%d: y\r\n", i);
	n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
	cr_assert_eq(cl_http_parse(big, (size_t)n, &r, err, sizeof err), -1);
	memset(big, 'a', sizeof big);
	memcpy(big, "HTTP/1.1 200 ", 13);
	cr_assert_eq(cl_http_parse(big, sizeof big, &r, err, sizeof err), -1, "endless status line");
	/* A bare LF head is accepted. */
	static const char lf[] = "HTTP/1.0 200 Connection established\nProxy-agent: x\n\n";
	cr_assert_eq(cl_http_parse(lf, sizeof lf - 1, &r, err, sizeof err), (int)sizeof lf - 1, "%s", err);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.minor, 0);
}

/* Parses head and runs the 101 checks with the given offer. */
static int check(const char *head, const char *const *protos, size_t nprotos, bool deflate,
		 struct cl_hs_result *res, char *err, size_t cap)
{
	struct cl_http_resp r;
	int n = cl_http_parse(head, strlen(head), &r, err, cap);
	cr_assert_gt(n, 0, "head not complete: %s", err);
	struct cl_hs_offer o = { KEY, protos, nprotos, deflate };
	return cl_handshake_check(&r, &o, res, err, cap);
}

#define OK101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" \
	      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"

Test(handshake, accepted)
{
	struct cl_hs_result res;
	char err[300];
	cr_assert_eq(check(OK101 "\r\n", NULL, 0, false, &res, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(res.subprotocol, "");
	cr_assert(!res.deflate);
	const char *protos[] = { "chat.v2", "chat.v1" };
	cr_assert_eq(check(OK101 "Sec-WebSocket-Protocol: chat.v1\r\n\r\n", protos, 2, false, &res, err, sizeof err), 0);
	cr_assert_str_eq(res.subprotocol, "chat.v1");
	cr_assert_eq(check(OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
				 "client_max_window_bits=10\r\n\r\n", NULL, 0, true, &res, err, sizeof err), 0, "%s", err);
	cr_assert(res.deflate);
	cr_assert(res.dp.server_no_context_takeover);
	cr_assert(!res.dp.client_no_context_takeover);
	cr_assert_eq(res.dp.client_max_window_bits, 10);
	cr_assert_eq(res.dp.server_max_window_bits, 15);
	/* Compression offered, server declined: fine. */
	cr_assert_eq(check(OK101 "\r\n", NULL, 0, true, &res, err, sizeof err), 0);
	cr_assert(!res.deflate);
}

Test(handshake, failed)
{
	struct cl_hs_result res;
	char err[300];
	const char *protos[] = { "a" };
	struct {
		const char *head;
		bool deflate;
		const char *why;
	} cases[] = {
		{ "HTTP/1.1 404 Not Found\r\n\r\n", false, "server answered 404 Not Found" },
		{ "HTTP/1.1 200 OK\r\n\r\n", false, "server answered 200" },
		{ "HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false, "Upgrade" },
		{ "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false, "Connection" },
		{ "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, "no Sec-WebSocket-Accept" },
		{ "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAALMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false, "does not match" },
		{ OK101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false, "repeated" },
		{ OK101 "Sec-WebSocket-Protocol: b\r\n\r\n", false, "did not offer" },
		{ OK101 "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: a\r\n\r\n", false, "repeated" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", false, "did not offer" },
		{ OK101 "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n", true, "did not offer" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n\r\n", true, "twice" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; foo\r\n\r\n", true, "unknown parameter" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n\r\n", true, "8..15" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=09\r\n\r\n", true, "8..15" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits\r\n\r\n", true, "8..15" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1\r\n\r\n", true, "with a value" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_no_context_takeover\r\n\r\n", true, "duplicate" },
		{ OK101 "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"1\r\n\r\n", true, "invalid" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		err[0] = 0;
		cr_assert_eq(check(cases[i].head, protos, 1, cases[i].deflate, &res, err, sizeof err), -1,
			     "case %zu accepted", i);
		cr_assert(strstr(err, cases[i].why), "case %zu: '%s' lacks '%s'", i, err, cases[i].why);
	}
}

Test(handshake, deflate_answer_values)
{
	struct cl_deflate_agreed d;
	char err[200];
	static const char v[] = "permessage-deflate;server_max_window_bits=\"8\" ; client_no_context_takeover";
	cr_assert_eq(cl_deflate_response(v, sizeof v - 1, true, &d, err, sizeof err), 1, "%s", err);
	cr_assert_eq(d.server_max_window_bits, 8);
	cr_assert(d.client_no_context_takeover);
	static const char w[] = "permessage-deflate; client_max_window_bits=12";
	cr_assert_eq(cl_deflate_response(w, sizeof w - 1, false, &d, err, sizeof err), -1,
		     "client_max_window_bits without our offer");
	cr_assert_eq(cl_deflate_response(w, sizeof w - 1, true, &d, err, sizeof err), 1);
	cr_assert_eq(d.client_max_window_bits, 12);
}

/* ------------------------------------------------------------------ */
/* Frame reader */

static size_t frame(uint8_t *out, bool fin, uint8_t rsv, uint8_t op, const void *p, size_t n)
{
	size_t h = ws_frame_encode_header(out, fin, rsv, op, n, NULL);
	memcpy(out + h, p, n);
	return h + n;
}

/* Feeds buf[0..n) in pieces of at most `piece` bytes, as a socket would
 * deliver them, collecting events into a text log. */
static void feed(struct cl_reader *r, const uint8_t *buf, size_t n, size_t piece, char *log, size_t cap)
{
	uint8_t in[70000];
	size_t have = 0, off = 0, lo = 0;
	log[0] = 0;
	while (off < n || have) {
		size_t k = n - off < piece ? n - off : piece;
		memcpy(in + have, buf + off, k);
		have += k;
		off += k;
		for (;;) {
			struct cl_event ev;
			size_t used = cl_reader_next(r, in, have, &ev);
			if (ev.kind == CL_EV_ERROR) {
				lo += (size_t)snprintf(log + lo, cap - lo, "E%u;", ev.code);
				return;
			}
			if (used == 0)
				break;
			if (ev.kind == CL_EV_MESSAGE)
				lo += (size_t)snprintf(log + lo, cap - lo, "M%u:%.*s;", ev.opcode, (int)ev.len, ev.data);
			else if (ev.kind == CL_EV_PING)
				lo += (size_t)snprintf(log + lo, cap - lo, "P:%.*s;", (int)ev.len, ev.data);
			else if (ev.kind == CL_EV_PONG)
				lo += (size_t)snprintf(log + lo, cap - lo, "O;");
			else if (ev.kind == CL_EV_CLOSE)
				lo += (size_t)snprintf(log + lo, cap - lo, "C%u:%.*s;", ev.code, (int)ev.len, ev.data);
			memmove(in, in + used, have - used);
			have -= used;
		}
		if (off == n)
			break;
	}
}

Test(reader, fragments_and_control_every_split)
{
	uint8_t buf[512];
	size_t n = 0;
	n += frame(buf + n, false, 0, WS_OP_TEXT, "Hel", 3);
	n += frame(buf + n, true, 0, WS_OP_PING, "hb", 2);
	n += frame(buf + n, false, 0, WS_OP_CONT, "lo ", 3);
	n += frame(buf + n, true, 0, WS_OP_CONT, "w\xc3\xb6rld", 6);
	n += frame(buf + n, true, 0, WS_OP_BINARY, "\x01\x02", 2);
	n += frame(buf + n, true, 0, WS_OP_PONG, "", 0);
	n += frame(buf + n, true, 0, WS_OP_CLOSE, "\x03\xe8" "bye", 5);
	const char *want = "P:hb;M1:Hello w\xc3\xb6rld;M2:\x01\x02;O;C1000:bye;";
	for (size_t piece = 1; piece <= n; piece++) {
		struct cl_reader r;
		memset(&r, 0, sizeof r);
		cl_reader_init(&r, 1000, NULL);
		char log[512];
		feed(&r, buf, n, piece, log, sizeof log);
		EXPECT_STR_EQ(log, want, "piece %zu", piece);
		cl_reader_free(&r);
	}
}

static const char *one(const uint8_t *buf, size_t n, uint64_t max, struct ws_deflate *d)
{
	static char log[512];
	struct cl_reader r;
	memset(&r, 0, sizeof r);
	cl_reader_init(&r, max, d);
	feed(&r, buf, n, n, log, sizeof log);
	cl_reader_free(&r);
	return log;
}

Test(reader, violations)
{
	uint8_t b[300];
	size_t n;
	/* masked server frame */
	uint8_t mask[4] = { 1, 2, 3, 4 };
	n = ws_frame_encode_header(b, true, 0, WS_OP_TEXT, 1, mask);
	b[n++] = 'x';
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	/* continuation without a message */
	n = frame(b, true, 0, WS_OP_CONT, "x", 1);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	/* new message inside a fragmented one */
	n = frame(b, false, 0, WS_OP_TEXT, "x", 1);
	n += frame(b + n, true, 0, WS_OP_TEXT, "y", 1);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	/* RSV1 without compression */
	n = frame(b, true, WS_RSV1, WS_OP_TEXT, "x", 1);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	/* invalid UTF-8, failing fast in the first fragment */
	n = frame(b, false, 0, WS_OP_TEXT, "a\xff", 2);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1007;");
	/* text ending inside a character */
	n = frame(b, true, 0, WS_OP_TEXT, "a\xc3", 2);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1007;");
	/* too big: judged from the header, before the payload */
	n = ws_frame_encode_header(b, true, 0, WS_OP_BINARY, 101, NULL);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1009;");
	/* too big over fragments */
	n = frame(b, false, 0, WS_OP_BINARY, "0123456789", 10);
	n += frame(b + n, true, 0, WS_OP_CONT, "0123456789", 10);
	cr_assert_str_eq(one(b, n, 15, NULL), "E1009;");
	cr_assert_str_eq(one(b, n, 20, NULL), "M2:01234567890123456789;");
	/* close: 1-byte payload, invalid code, invalid UTF-8 reason */
	n = frame(b, true, 0, WS_OP_CLOSE, "\x03", 1);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	n = frame(b, true, 0, WS_OP_CLOSE, "\x03\xed", 2); /* 1005 */
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	n = frame(b, true, 0, WS_OP_CLOSE, "\x03\xe8\xff", 3);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1007;");
	n = frame(b, true, 0, WS_OP_CLOSE, "", 0);
	cr_assert_str_eq(one(b, n, 100, NULL), "C1005:;");
	/* reserved opcode, fragmented ping */
	n = frame(b, true, 0, 0x3, "", 0);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
	n = frame(b, false, 0, WS_OP_PING, "", 0);
	cr_assert_str_eq(one(b, n, 100, NULL), "E1002;");
}

/* A client-side codec: inflates what a server-side codec compressed. */
Test(reader, compressed_messages)
{
	struct ws_deflate_config cfg;
	ws_deflate_config_default(&cfg);
	cfg.threshold = 0;
	struct ws_deflate_params sp = { false, false, 15, 15 };
	struct ws_deflate server, client;
	cr_assert_eq(ws_deflate_init(&server, &cfg, &sp), 0);
	cr_assert_eq(ws_deflate_init(&client, &cfg, &sp), 0);
	char text[2000];
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = (char)('a' + i % 7);
	struct buf z = { 0 };
	cr_assert_eq(ws_deflate_compress(&server, (const uint8_t *)text, sizeof text, &z), 0);
	cr_assert_lt(z.len, sizeof text / 4);
	uint8_t b[4096];
	size_t half = z.len / 2;
	size_t n = frame(b, false, WS_RSV1, WS_OP_TEXT, z.data, half);
	n += frame(b + n, true, 0, WS_OP_PING, "x", 1);
	n += frame(b + n, true, 0, WS_OP_CONT, z.data + half, z.len - half);
	for (size_t piece = 1; piece <= n; piece += 7) {
		struct cl_reader r;
		memset(&r, 0, sizeof r);
		cl_reader_init(&r, 4000, &client);
		char log[4200];
		feed(&r, b, n, piece, log, sizeof log);
		cr_assert(!strncmp(log, "P:x;M1:abcdefgabc", 17), "piece %zu: %.40s", piece, log);
		cr_assert_eq(strlen(log), 4 + 3 + sizeof text + 1, "piece %zu", piece);
		cl_reader_free(&r);
	}
	/* The same message exceeds a 1000-byte limit once inflated: 1009. */
	ws_deflate_free(&client);
	cr_assert_eq(ws_deflate_init(&client, &cfg, &sp), 0);
	struct ws_deflate server2;
	cr_assert_eq(ws_deflate_init(&server2, &cfg, &sp), 0);
	z.len = 0;
	cr_assert_eq(ws_deflate_compress(&server2, (const uint8_t *)text, sizeof text, &z), 0);
	n = frame(b, true, WS_RSV1, WS_OP_TEXT, z.data, z.len);
	cr_assert_str_eq(one(b, n, 1000, &client), "E1009;");
	/* RSV1 on a continuation frame */
	n = frame(b, false, WS_RSV1, WS_OP_TEXT, z.data, 3);
	n += frame(b + n, true, WS_RSV1, WS_OP_CONT, z.data + 3, z.len - 3);
	ws_deflate_free(&client);
	cr_assert_eq(ws_deflate_init(&client, &cfg, &sp), 0);
	cr_assert_str_eq(one(b, n, 5000, &client), "E1002;");
	/* an empty compressed text message (fuzz regression: no NULL data
	 * reaches the UTF-8 check) */
	n = frame(b, true, WS_RSV1, WS_OP_TEXT, "", 0);
	ws_deflate_free(&client);
	cr_assert_eq(ws_deflate_init(&client, &cfg, &sp), 0);
	cr_assert_str_eq(one(b, n, 5000, &client), "M1:;");
	/* garbage */
	n = frame(b, true, WS_RSV1, WS_OP_BINARY, "\xff\xff\xff\xff", 4);
	ws_deflate_free(&client);
	cr_assert_eq(ws_deflate_init(&client, &cfg, &sp), 0);
	cr_assert_str_eq(one(b, n, 5000, &client), "E1007;");
	buf_free(&z);
	ws_deflate_free(&server);
	ws_deflate_free(&server2);
	ws_deflate_free(&client);
}

/* ------------------------------------------------------------------ */
/* Message helpers */

Test(msg, build_parse_attr)
{
	char *m;
	size_t n;
	cr_assert_eq(mbgw_client_msg_build("chat.send", "42", "{\"a\":1}", &m, &n), 0);
	cr_assert_str_eq(m, "chat.send id=42\n{\"a\":1}");
	cr_assert_eq(n, strlen(m));
	struct mbgw_client_msg pm;
	cr_assert_eq(mbgw_client_msg_parse(m, n, &pm), 0);
	cr_assert_eq(pm.type_len, 9);
	cr_assert_eq(strncmp(pm.type, "chat.send", 9), 0);
	cr_assert_eq(pm.payload_len, 7);
	char v[8];
	cr_assert_eq(mbgw_client_msg_attr(&pm, "id", v, sizeof v), 0);
	cr_assert_str_eq(v, "42");
	cr_assert_eq(mbgw_client_msg_attr(&pm, "i", v, sizeof v), MBGW_C_E_NOTFOUND);
	cr_assert_eq(mbgw_client_msg_attr(&pm, "id", v, 2), MBGW_C_E_RANGE);
	free(m);
	cr_assert_eq(mbgw_client_msg_build("t", NULL, NULL, &m, &n), 0);
	cr_assert_str_eq(m, "t\n{}");
	free(m);
	cr_assert_eq(mbgw_client_msg_build("a b", NULL, NULL, &m, &n), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_build("a", "1 2", NULL, &m, &n), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_build("a\n", NULL, NULL, &m, &n), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_parse("no newline", 10, &pm), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_parse("\n{}", 3, &pm), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_parse("a\x01\n{}", 5, &pm), MBGW_C_E_INVAL);
	cr_assert_eq(mbgw_client_msg_parse("error id=7 x=y\n{}", 17, &pm), 0);
	cr_assert_eq(mbgw_client_msg_attr(&pm, "x", v, sizeof v), 0);
	cr_assert_str_eq(v, "y");
}

Test(api, options_and_errors)
{
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	struct mbgw_client *c = NULL;
	char err[300];
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_URL, "no URL");
	o.url = "ws://127.0.0.1:1/";
	const char *bad_headers[] = { "Sec-WebSocket-Key: x" };
	o.headers = bad_headers;
	o.nheaders = 1;
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL);
	cr_assert(strstr(err, "set by the library"), "%s", err);
	const char *crlf[] = { "X-A: b\r\nX-Injected: 1" };
	o.headers = crlf;
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL);
	o.nheaders = 0;
	const char *protos[] = { "bad proto" };
	o.subprotocols = protos;
	o.nsubprotocols = 1;
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL);
	o.nsubprotocols = 0;
	o.proxy = "socks5://x";
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_URL);
	o.proxy = "";
	o.url = "wss://127.0.0.1:1/";
	o.ca_file = "/nonexistent/ca.pem";
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL);
	cr_assert(strstr(err, "cannot load CA"), "%s", err);
	o.ca_file = NULL;
	o.size = 8;
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL, "unknown options size");
	o.size = sizeof o + 8;
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), MBGW_C_E_INVAL);
	cr_assert(strstr(err, "newer libmbgw-client"), "%s", err);
	/* An older, smaller struct: the fields it lacks keep their defaults,
	 * whatever lies beyond its size. */
	struct mbgw_client_options big;
	memset(&big, 0xff, sizeof big);
	big.size = (uint32_t)offsetof(struct mbgw_client_options, headers);
	big.url = "ws://127.0.0.1:1/";
	cr_assert_eq(mbgw_client_new(&big, &c, err, sizeof err), 0, "%s", err);
	mbgw_client_free(c);
	o.size = sizeof o;
	o.url = "ws://127.0.0.1:1/";
	cr_assert_eq(mbgw_client_new(&o, &c, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mbgw_client_state(c), MBGW_CLIENT_IDLE);
	cr_assert_eq(mbgw_client_send(c, MBGW_CLIENT_TEXT, "x", 1), MBGW_C_E_NOTCONN);
	/* Refused on the loopback: a clear error, state CLOSED. */
	int rc = mbgw_client_open(c, 3000);
	cr_assert_eq(rc, MBGW_C_E_CONNECT, "%d %s", rc, mbgw_client_last_error(c));
	cr_assert(strstr(mbgw_client_last_error(c), "connection refused"), "%s", mbgw_client_last_error(c));
	cr_assert_eq(mbgw_client_state(c), MBGW_CLIENT_CLOSED);
	cr_assert_eq(mbgw_client_close(c, 999, NULL, 0), MBGW_C_E_INVAL);
	mbgw_client_free(c);
	for (int i = 0; i >= -21; i--)
		cr_assert_str_neq(mbgw_client_strerror(i), "unknown error", "code %d", i);
	cr_assert_str_eq(mbgw_client_strerror(-999), "unknown error");
}
