/* client_embedded — libmbgw-client inside the application's own poll()
 * loop (docs/client.md).
 *
 *   client_embedded ws://127.0.0.1:8080/ws
 *
 * The application owns the loop: it polls the client's socket for the
 * events the client asks for, with at most the client's timeout, next to
 * its own file descriptors (here a timer made with the poll timeout: one
 * message per 200 ms), and calls mbgw_client_step(). Everything the
 * client has to say arrives through callbacks. Reconnection is on, so a
 * restarted server is reconnected to and on_open runs again (the place to
 * re-subscribe). Sends 5 messages, waits for their 5 echoes, closes.
 */
#include <mbgw/client.h>

#include <poll.h>
#include <stdio.h>
#include <time.h>

struct app {
	int sent, received;
};

static void on_open(struct mbgw_client *c, void *ud)
{
	printf("open (connection %u)\n", mbgw_client_connections(c));
}

static void on_message(struct mbgw_client *c, int type, const void *data, size_t len, void *ud)
{
	struct app *a = ud;
	a->received++;
	printf("message %d: %.*s\n", a->received, (int)len, (const char *)data);
}

static void on_disconnect(struct mbgw_client *c, int code, const char *reason, int will_reconnect, void *ud)
{
	printf("disconnected (%d %s)%s\n", code, reason, will_reconnect ? ", reconnecting" : "");
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s ws://host:port/path\n", argv[0]);
		return 2;
	}
	struct app a = { 0, 0 };
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	o.url = argv[1];
	o.reconnect = 1;
	o.max_attempts = 5;
	o.ping_interval_ms = 10000;
	o.on_open = on_open;
	o.on_message = on_message;
	o.on_disconnect = on_disconnect;
	o.userdata = &a;

	struct mbgw_client *c;
	char err[256];
	if (mbgw_client_new(&o, &c, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int rc = mbgw_client_connect(c);
	long long next_send = now_ms(), give_up = now_ms() + 10000;
	while (rc == 0 && a.received < 5 && now_ms() < give_up) {
		/* The application's own timer: one message every 200 ms. */
		long long now = now_ms();
		if (a.sent < 5 && now >= next_send && mbgw_client_state(c) == MBGW_CLIENT_OPEN) {
			char msg[32];
			int n = snprintf(msg, sizeof msg, "tick %d", ++a.sent);
			mbgw_client_send(c, MBGW_CLIENT_TEXT, msg, (size_t)n);
			next_send = now + 200;
		}
		int timeout = mbgw_client_timeout(c);
		int mine = a.sent < 5 ? (int)(next_send > now ? next_send - now : 0) : 1000;
		if (timeout < 0 || mine < timeout)
			timeout = mine;
		struct pollfd p = { mbgw_client_fd(c), mbgw_client_events(c), 0 };
		poll(&p, 1, timeout); /* fd -1 is ignored by poll(): only the timeout counts */
		rc = mbgw_client_step(c, p.revents);
	}
	if (rc < 0)
		fprintf(stderr, "client closed: %s\n", mbgw_client_last_error(c));
	mbgw_client_close(c, 1000, NULL, 2000);
	mbgw_client_free(c);
	return a.received == 5 ? 0 : 1;
}
