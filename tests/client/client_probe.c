/* client_probe — libmbgw-client driven line by line, for the Python tests
 * (tests/client/test_client_reconnect.py and others).
 *
 *   client_probe [options] URL
 *     --reconnect --reconnect-on-close --backoff-initial MS --backoff-max MS
 *     --max-attempts N --queue-max N --ping MS --pong MS --connect-timeout MS
 *     --compress --ca FILE --insecure --proto NAME --on-open MSG (sent by
 *     on_open at every (re)connection: the re-subscription) --lifetime MS
 *     --request-timeout MS --fragment BYTES --max-size BYTES
 *
 * Commands on stdin, one per line:
 *   send TEXT          mbgw_client_send (prints "sent rc=N"); \\n is a newline
 *   request TYPE JSON  mbgw_client_request_async (prints "reply rc=N ...")
 *   sendbig N          one text message of N bytes a..z repeated
 *   pending            mbgw_client_pending
 *   ping               mbgw_client_ping
 *   close              mbgw_client_close(1000) (the loop goes on until closed)
 *   quit               exit now
 *
 * Every event is one line on stdout: "<ms since start> <event> ...":
 *   open n=N proto=P ext=E | message TEXT | disconnect code=C reconnect=R reason=...
 *   reconnecting attempt=N delay=MS err=RC | closed rc=RC attempts=N error=...
 *   pong | sent rc=RC | reply rc=RC TEXT
 * The process exits when the client is closed for good, on quit, at EOF
 * of stdin after a close, or after --lifetime (default 60 s) — never
 * later.
 */
#include <mbgw/client.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long t0;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void ev(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ev(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%lld ", now_ms() - t0);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
}

/* A whole non-negative decimal number, or exit(2): a test typo must not
 * turn into a silent 0. */
static long long num(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "client_probe: not a number: '%s'\n", s);
		exit(2);
	}
	return v;
}

static const char **on_open_msgs;
static int n_on_open;

static void on_open(struct mbgw_client *c, void *ud)
{
	const char *p = mbgw_client_subprotocol(c), *e = mbgw_client_extensions(c);
	ev("open n=%u proto=%s ext=%s", mbgw_client_connections(c), p ? p : "-", e ? e : "-");
	for (int i = 0; i < n_on_open; i++) {
		int rc = mbgw_client_send(c, MBGW_CLIENT_TEXT, on_open_msgs[i], strlen(on_open_msgs[i]));
		ev("sent rc=%d (on_open)", rc);
	}
}

static void on_message(struct mbgw_client *c, int type, const void *data, size_t len, void *ud)
{
	const char *s = data;
	/* One line per message: newlines shown as \n. */
	printf("%lld message %s ", now_ms() - t0, type == MBGW_CLIENT_TEXT ? "text" : "binary");
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			fputs("\\n", stdout);
		else
			putchar(s[i]);
	}
	putchar('\n');
	fflush(stdout);
}

static void on_disconnect(struct mbgw_client *c, int code, const char *reason, int will_reconnect, void *ud)
{
	ev("disconnect code=%d reconnect=%d reason=%s", code, will_reconnect, reason);
}

static void on_reconnecting(struct mbgw_client *c, unsigned attempt, uint64_t delay_ms, int last_error, void *ud)
{
	ev("reconnecting attempt=%u delay=%llu err=%d error=%s", attempt, (unsigned long long)delay_ms, last_error,
	   mbgw_client_last_error(c));
}

static void on_close(struct mbgw_client *c, int rc, void *ud)
{
	ev("closed rc=%d attempts=%u error=%s", rc, mbgw_client_attempts(c), mbgw_client_last_error(c));
}

static void on_pong(struct mbgw_client *c, const void *data, size_t len, void *ud)
{
	ev("pong");
}

static void on_reply(struct mbgw_client *c, int rc, const void *data, size_t len, void *arg)
{
	const char *s = data ? data : "";
	printf("%lld reply rc=%d ", now_ms() - t0, rc);
	for (size_t i = 0; i < len; i++)
		fputs(s[i] == '\n' ? "\\n" : (char[2]){ s[i], 0 }, stdout);
	putchar('\n');
	fflush(stdout);
}

/* "\\n" in a command line stands for a newline (messages are one line). */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*o++ = '\n';
			s++;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

static void command(struct mbgw_client *c, char *line, int req_timeout, int *quit)
{
	unescape(line);
	if (!strncmp(line, "send ", 5)) {
		ev("sent rc=%d", mbgw_client_send(c, MBGW_CLIENT_TEXT, line + 5, strlen(line + 5)));
	} else if (!strncmp(line, "request ", 8)) {
		char *type = line + 8, *sp = strchr(type, ' ');
		if (sp)
			*sp++ = 0;
		uint64_t id = 0;
		int rc = mbgw_client_request_async(c, type, sp, req_timeout, on_reply, NULL, &id);
		ev("requested rc=%d id=%llu", rc, (unsigned long long)id);
	} else if (!strncmp(line, "sendbig ", 8)) {
		/* sendbig N: one text message of N bytes ('a'..'z' repeated) */
		size_t n = (size_t)num(line + 8);
		char *m = malloc(n + 1);
		for (size_t i = 0; m && i < n; i++)
			m[i] = (char)('a' + i % 26);
		ev("sent rc=%d", m ? mbgw_client_send(c, MBGW_CLIENT_TEXT, m, n) : -2);
		free(m);
	} else if (!strcmp(line, "pending")) {
		ev("pending %zu", mbgw_client_pending(c));
	} else if (!strcmp(line, "ping")) {
		ev("pinged rc=%d", mbgw_client_ping(c, "p", 1));
	} else if (!strcmp(line, "close")) {
		ev("closing rc=%d", mbgw_client_close(c, 1000, "probe done", 0));
	} else if (!strcmp(line, "quit")) {
		*quit = 1;
	} else {
		ev("unknown command %s", line);
	}
}

int main(int argc, char **argv)
{
	t0 = now_ms();
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	o.on_open = on_open;
	o.on_message = on_message;
	o.on_disconnect = on_disconnect;
	o.on_reconnecting = on_reconnecting;
	o.on_close = on_close;
	o.on_pong = on_pong;
	const char *protos[8];
	on_open_msgs = calloc((size_t)argc, sizeof *on_open_msgs);
	long long lifetime = 60000;
	int req_timeout = 2000;
	int i;
	for (i = 1; i < argc - 1; i++) {
		const char *a = argv[i];
#define ARG() (i + 1 < argc - 1 ? argv[++i] : (fprintf(stderr, "%s needs a value\n", a), exit(2), ""))
		if (!strcmp(a, "--reconnect"))
			o.reconnect = 1;
		else if (!strcmp(a, "--reconnect-on-close"))
			o.reconnect_on_close = 1;
		else if (!strcmp(a, "--backoff-initial"))
			o.backoff_initial_ms = (uint32_t)num(ARG());
		else if (!strcmp(a, "--backoff-max"))
			o.backoff_max_ms = (uint32_t)num(ARG());
		else if (!strcmp(a, "--max-attempts"))
			o.max_attempts = (uint32_t)num(ARG());
		else if (!strcmp(a, "--queue-max"))
			o.queue_max_messages = (uint32_t)num(ARG());
		else if (!strcmp(a, "--ping"))
			o.ping_interval_ms = (int32_t)num(ARG());
		else if (!strcmp(a, "--pong"))
			o.pong_timeout_ms = (int32_t)num(ARG());
		else if (!strcmp(a, "--connect-timeout"))
			o.connect_timeout_ms = (int32_t)num(ARG());
		else if (!strcmp(a, "--compress"))
			o.compress = 1;
		else if (!strcmp(a, "--fragment"))
			o.fragment_size = (uint32_t)num(ARG());
		else if (!strcmp(a, "--max-size"))
			o.max_message_size = (uint64_t)num(ARG());
		else if (!strcmp(a, "--ca"))
			o.ca_file = ARG();
		else if (!strcmp(a, "--insecure"))
			o.insecure = 1;
		else if (!strcmp(a, "--proto") && o.nsubprotocols < 8)
			protos[o.nsubprotocols++] = ARG();
		else if (!strcmp(a, "--on-open"))
			on_open_msgs[n_on_open++] = ARG();
		else if (!strcmp(a, "--lifetime"))
			lifetime = num(ARG());
		else if (!strcmp(a, "--request-timeout"))
			req_timeout = (int)num(ARG());
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: client_probe [options] URL\n");
		return 2;
	}
	o.url = argv[argc - 1];
	o.subprotocols = protos;
	struct mbgw_client *c;
	char err[512];
	int rc = mbgw_client_new(&o, &c, err, sizeof err);
	if (rc < 0) {
		ev("new rc=%d error=%s", rc, err);
		return 1;
	}
	rc = mbgw_client_connect(c);
	ev("connect rc=%d", rc);
	char line[65536];
	size_t ll = 0;
	int quit = 0, in_eof = 0;
	while (!quit && mbgw_client_state(c) != MBGW_CLIENT_CLOSED && now_ms() - t0 < lifetime) {
		struct pollfd p[2] = { { mbgw_client_fd(c), mbgw_client_events(c), 0 }, { in_eof ? -1 : 0, POLLIN, 0 } };
		int t = mbgw_client_timeout(c);
		if (t < 0 || t > 100)
			t = 100;
		int n = poll(p, 2, t);
		if (n > 0 && p[1].revents) {
			ssize_t r = read(0, line + ll, sizeof line - 1 - ll);
			if (r <= 0) {
				in_eof = 1;
			} else {
				ll += (size_t)r;
				char *nl;
				while (!quit && (nl = memchr(line, '\n', ll))) {
					*nl = 0;
					command(c, line, req_timeout, &quit);
					size_t used = (size_t)(nl + 1 - line);
					memmove(line, nl + 1, ll - used);
					ll -= used;
				}
			}
		}
		mbgw_client_step(c, n > 0 ? p[0].revents : 0);
	}
	if (mbgw_client_state(c) != MBGW_CLIENT_CLOSED)
		ev("exit state=%d", mbgw_client_state(c));
	mbgw_client_free(c);
	free(on_open_msgs);
	return 0;
}
