/* client_api_check — checks of the blocking API of libmbgw-client and its
 * error paths, run by tests/client/test_client_api.py against servers it
 * starts. One scenario per run:
 *
 *   client_api_check echo URL        open/send/recv/request/run/close on an echo route
 *   client_api_check deaf URL        request and close timeouts (server never answers)
 *   client_api_check late URL        open with reconnect retries until the server appears
 *   client_api_check refused URL     open fails with a clear error, no reconnect
 *   client_api_check resolve URL     a host name resolved off the caller's thread
 *   client_api_check flood URL       more than the recv queue holds, nothing lost
 *
 * Prints "ok <what>" per passed check and "FAIL <what>: <detail>" at the
 * first failure (exit 1). Every wait is bounded by an explicit timeout.
 */
#include <mbgw/client.h>

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failed;

static void check(int cond, const char *what, const char *fmt, ...)
{
	if (cond) {
		printf("ok %s\n", what);
		fflush(stdout);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL %s: ", what);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	failed = 1;
	exit(1);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static struct mbgw_client *make(const char *url, int reconnect, void (*on_open)(struct mbgw_client *, void *), void *ud)
{
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	o.url = url;
	o.reconnect = reconnect;
	o.backoff_initial_ms = 50;
	o.backoff_max_ms = 200;
	o.connect_timeout_ms = 2000;
	o.close_timeout_ms = 500;
	o.on_open = on_open;
	o.userdata = ud;
	struct mbgw_client *c;
	char err[256];
	int rc = mbgw_client_new(&o, &c, err, sizeof err);
	check(rc == 0, "new", "rc %d %s", rc, err);
	return c;
}

/* A callback that tries blocking calls: all must be refused. */
static int refused_in_cb = -1;

static void on_open_blocking(struct mbgw_client *c, void *ud)
{
	int type;
	void *d;
	size_t n;
	char *r;
	refused_in_cb = mbgw_client_run(c, 10) == MBGW_C_E_STATE && mbgw_client_open(c, 10) == MBGW_C_E_STATE &&
			mbgw_client_request(c, "x", NULL, 10, &r, &n) == MBGW_C_E_STATE &&
			mbgw_client_close(c, 1000, NULL, 10) == MBGW_C_E_STATE &&
			mbgw_client_recv(c, &type, &d, &n, 0) == MBGW_C_E_STATE;
}

static int echo(const char *url)
{
	struct mbgw_client *c = make(url, 0, on_open_blocking, NULL);
	check(mbgw_client_send(c, MBGW_CLIENT_TEXT, "x", 1) == MBGW_C_E_NOTCONN, "send before connect", "");
	int rc = mbgw_client_open(c, 3000);
	check(rc == 0, "open", "rc %d %s", rc, mbgw_client_last_error(c));
	check(refused_in_cb == 1, "blocking calls refused in callbacks", "%d", refused_in_cb);
	check(mbgw_client_state(c) == MBGW_CLIENT_OPEN && mbgw_client_http_status(c) == 101, "state open", "");
	check(mbgw_client_connections(c) == 1 && mbgw_client_attempts(c) == 1, "counters", "");
	check(mbgw_client_open(c, 10) == 0, "open when open", "");

	int type;
	void *d;
	size_t n;
	rc = mbgw_client_recv(c, &type, &d, &n, 0);
	check(rc == MBGW_C_E_AGAIN, "recv with nothing", "rc %d", rc);
	check(mbgw_client_send(c, MBGW_CLIENT_TEXT, "\xff", 1) == MBGW_C_E_INVAL, "text must be UTF-8", "");
	check(mbgw_client_send(c, 7, "x", 1) == MBGW_C_E_INVAL, "bad type", "");
	check(mbgw_client_ping(c, "x", 126) == MBGW_C_E_TOOBIG, "ping over 125", "");
	static const char bin[] = { 0, 1, 2, 3 };
	check(mbgw_client_send(c, MBGW_CLIENT_TEXT, "one", 3) == 0, "send text", "");
	check(mbgw_client_send(c, MBGW_CLIENT_BINARY, bin, 4) == 0, "send binary", "");
	check(mbgw_client_send(c, MBGW_CLIENT_TEXT, "", 0) == 0, "send empty", "");
	rc = mbgw_client_recv(c, &type, &d, &n, 3000);
	check(rc == 0 && type == MBGW_CLIENT_TEXT && n == 3 && !memcmp(d, "one", 4), "recv text", "rc %d", rc);
	free(d);
	rc = mbgw_client_recv(c, &type, &d, &n, 3000);
	check(rc == 0 && type == MBGW_CLIENT_BINARY && n == 4 && !memcmp(d, bin, 4), "recv binary", "rc %d", rc);
	free(d);
	rc = mbgw_client_recv(c, &type, &d, &n, 3000);
	check(rc == 0 && n == 0 && ((char *)d)[0] == 0, "recv empty", "rc %d", rc);
	free(d);

	/* On the echo route the reply to a request is its own echo, which
	 * carries the id: the request helper takes it, recv does not see it. */
	char *reply;
	size_t rl;
	rc = mbgw_client_request(c, "q.one", "{\"a\":1}", 3000, &reply, &rl);
	check(rc == 0 && !strcmp(reply, "q.one id=1\n{\"a\":1}"), "request", "rc %d %s", rc, rc == 0 ? reply : "");
	free(reply);
	rc = mbgw_client_request(c, "q.two", NULL, 3000, &reply, &rl);
	check(rc == 0 && !strcmp(reply, "q.two id=2\n{}"), "ids increase", "rc %d", rc);
	free(reply);
	check(mbgw_client_request(c, "bad type", NULL, 3000, &reply, &rl) == MBGW_C_E_INVAL, "request type checked", "");
	rc = mbgw_client_recv(c, &type, &d, &n, 200);
	check(rc == MBGW_C_E_AGAIN, "replies not in recv", "rc %d", rc);

	long long t0 = now_ms();
	rc = mbgw_client_run(c, 300);
	check(rc == 0 && now_ms() - t0 >= 290, "run for a time", "rc %d after %lld ms", rc, now_ms() - t0);
	check(mbgw_client_close(c, 999, NULL, 0) == MBGW_C_E_INVAL, "close code checked", "");
	char longr[200];
	memset(longr, 'r', sizeof longr - 1);
	longr[sizeof longr - 1] = 0;
	check(mbgw_client_close(c, 1000, longr, 0) == MBGW_C_E_INVAL, "close reason length checked", "");
	rc = mbgw_client_close(c, 1000, "done", 3000);
	check(rc == 0 && mbgw_client_state(c) == MBGW_CLIENT_CLOSED, "close", "rc %d", rc);
	const char *reason;
	check(mbgw_client_close_code(c, &reason) == 1000, "close code", "%d", mbgw_client_close_code(c, NULL));
	check(mbgw_client_send(c, MBGW_CLIENT_TEXT, "x", 1) == MBGW_C_E_NOTCONN, "send after close", "");
	rc = mbgw_client_recv(c, &type, &d, &n, 100);
	check(rc == MBGW_C_E_CLOSED, "recv after close", "rc %d", rc);
	/* The same client connects again. */
	rc = mbgw_client_open(c, 3000);
	check(rc == 0 && mbgw_client_connections(c) == 2, "reopen", "rc %d", rc);
	rc = mbgw_client_close(c, 1000, NULL, 3000);
	check(rc == 0, "close again", "rc %d", rc);
	mbgw_client_free(c);
	return 0;
}

struct reply_state {
	int calls, rc;
};

static void on_reply(struct mbgw_client *c, int rc, const void *data, size_t len, void *arg)
{
	struct reply_state *s = arg;
	s->calls++;
	s->rc = rc;
}

static int deaf(const char *url)
{
	struct mbgw_client *c = make(url, 0, NULL, NULL);
	int rc = mbgw_client_open(c, 3000);
	check(rc == 0, "open", "rc %d %s", rc, mbgw_client_last_error(c));
	char *reply;
	size_t rl;
	long long t0 = now_ms();
	rc = mbgw_client_request(c, "q", NULL, 300, &reply, &rl);
	check(rc == MBGW_C_E_TIMEOUT && now_ms() - t0 >= 290, "request timeout", "rc %d", rc);
	struct reply_state st = { 0, 1 };
	uint64_t id = 0;
	rc = mbgw_client_request_async(c, "q", NULL, 5000, on_reply, &st, &id);
	check(rc == 0 && id == 2, "async request", "rc %d id %llu", rc, (unsigned long long)id);
	/* The server never answers our close: the timeout ends it, and the
	 * pending request is told the client closed. */
	t0 = now_ms();
	rc = mbgw_client_close(c, 1000, NULL, 400);
	check(rc == MBGW_C_E_TIMEOUT && mbgw_client_state(c) == MBGW_CLIENT_CLOSED, "close timeout", "rc %d", rc);
	check(st.calls == 1 && st.rc == MBGW_C_E_CLOSED, "pending request closed", "calls %d rc %d", st.calls, st.rc);
	check(strstr(mbgw_client_last_error(c), "did not complete the close handshake") != NULL, "close timeout error",
	      "%s", mbgw_client_last_error(c));
	mbgw_client_free(c);
	return 0;
}

static int late(const char *url)
{
	struct mbgw_client *c = make(url, 1, NULL, NULL);
	long long t0 = now_ms();
	int rc = mbgw_client_open(c, 8000);
	check(rc == 0, "open retried until the server came", "rc %d %s", rc, mbgw_client_last_error(c));
	check(mbgw_client_attempts(c) > 1, "several attempts", "%u", mbgw_client_attempts(c));
	printf("opened after %lld ms, %u attempts\n", now_ms() - t0, mbgw_client_attempts(c));
	rc = mbgw_client_close(c, 1000, NULL, 3000);
	check(rc == 0, "close", "rc %d", rc);
	mbgw_client_free(c);
	return 0;
}

/* A host name is resolved on a thread: meanwhile the client hands out an
 * eventfd to poll. A client freed during the lookup leaves nothing behind
 * (LeakSanitizer checks at exit). url must name "localhost". */
static int resolve(const char *url)
{
	struct mbgw_client *c = make(url, 0, NULL, NULL);
	check(mbgw_client_connect(c) == 0, "connect", "%s", mbgw_client_last_error(c));
	check(mbgw_client_state(c) == MBGW_CLIENT_CONNECTING, "connecting", "");
	check(mbgw_client_fd(c) >= 0 && mbgw_client_events(c) == POLLIN, "an fd to poll while resolving", "fd %d ev %d",
	      mbgw_client_fd(c), mbgw_client_events(c));
	int rc = mbgw_client_open(c, 3000);
	check(rc == 0, "open by name", "rc %d %s", rc, mbgw_client_last_error(c));
	mbgw_client_close(c, 1000, NULL, 2000);
	mbgw_client_free(c);
	for (int i = 0; i < 20; i++) {
		c = make(url, 0, NULL, NULL);
		check(mbgw_client_connect(c) == 0, "connect again", "");
		mbgw_client_free(c); /* during the lookup */
	}
	printf("ok freed during lookups\n");
	struct timespec ts = { 0, 300 * 1000000L }; /* the lookups end alone */
	nanosleep(&ts, NULL);
	return 0;
}

/* More than the recv queue may hold (16 MiB) arrives while the
 * application takes nothing: the client stops reading (TCP backpressure)
 * and loses nothing; once messages are taken, reading resumes. */
static int flood(const char *url)
{
	struct mbgw_client *c = make(url, 0, NULL, NULL);
	int rc = mbgw_client_open(c, 3000);
	check(rc == 0, "open", "rc %d", rc);
	enum { N = 24, SIZE = 1000000 };
	char *m = malloc(SIZE);
	check(m != NULL, "memory", "");
	for (int i = 0; i < N; i++) {
		memset(m, 'a' + i, SIZE);
		check(mbgw_client_send(c, MBGW_CLIENT_BINARY, m, SIZE) == 0, "send", "%d", i);
	}
	free(m);
	rc = mbgw_client_run(c, 1500);
	check(rc == 0, "run while the queue fills", "rc %d", rc);
	check(mbgw_client_state(c) == MBGW_CLIENT_OPEN, "still open", "");
	for (int i = 0; i < N; i++) {
		int type;
		void *d;
		size_t n;
		rc = mbgw_client_recv(c, &type, &d, &n, 5000);
		check(rc == 0 && n == SIZE && ((char *)d)[0] == 'a' + i && ((char *)d)[SIZE - 1] == 'a' + i,
		      "message in order", "%d: rc %d n %zu", i, rc, n);
		free(d);
	}
	printf("ok %d messages of %d bytes, none lost\n", N, SIZE);
	mbgw_client_close(c, 1000, NULL, 2000);
	mbgw_client_free(c);
	return 0;
}

static int refused(const char *url)
{
	struct mbgw_client *c = make(url, 0, NULL, NULL);
	int rc = mbgw_client_open(c, 3000);
	check(rc == MBGW_C_E_CONNECT, "refused", "rc %d", rc);
	check(strstr(mbgw_client_last_error(c), "connection refused") != NULL, "refused error", "%s",
	      mbgw_client_last_error(c));
	check(mbgw_client_state(c) == MBGW_CLIENT_CLOSED && mbgw_client_attempts(c) == 1, "closed after one attempt", "");
	int type;
	void *d;
	size_t n;
	check(mbgw_client_recv(c, &type, &d, &n, 10) < 0, "recv on a closed client", "");
	mbgw_client_free(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: client_api_check echo|deaf|late|refused|resolve|flood URL\n");
		return 2;
	}
	if (!strcmp(argv[1], "echo"))
		return echo(argv[2]);
	if (!strcmp(argv[1], "deaf"))
		return deaf(argv[2]);
	if (!strcmp(argv[1], "late"))
		return late(argv[2]);
	if (!strcmp(argv[1], "refused"))
		return refused(argv[2]);
	if (!strcmp(argv[1], "resolve"))
		return resolve(argv[2]);
	if (!strcmp(argv[1], "flood"))
		return flood(argv[2]);
	fprintf(stderr, "unknown scenario %s\n", argv[1]);
	return 2;
}
