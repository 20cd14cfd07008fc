/* client_blocking — libmbgw-client in blocking style (docs/client.md).
 *
 *   client_blocking ws://127.0.0.1:8080/ws
 *
 * Connects, sends a text message and prints the reply, then makes one
 * request with an id (mbgw's "header\nJSON" format) and prints its reply,
 * then closes cleanly. The library runs its own poll() loop inside
 * mbgw_client_open(), mbgw_client_recv(), mbgw_client_request() and
 * mbgw_client_close(). Exit status 0 on success.
 */
#include <mbgw/client.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s ws://host:port/path\n", argv[0]);
		return 2;
	}
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	o.url = argv[1];

	struct mbgw_client *c;
	char err[256];
	int rc = mbgw_client_new(&o, &c, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rc = mbgw_client_open(c, 5000);
	if (rc < 0) {
		fprintf(stderr, "connect: %s (%s)\n", mbgw_client_last_error(c), mbgw_client_strerror(rc));
		mbgw_client_free(c);
		return 1;
	}

	/* A plain message and the next message that arrives. */
	rc = mbgw_client_send(c, MBGW_CLIENT_TEXT, "hello", 5);
	int type;
	void *data;
	size_t len;
	if (rc == 0)
		rc = mbgw_client_recv(c, &type, &data, &len, 5000);
	if (rc < 0) {
		fprintf(stderr, "echo: %s\n", mbgw_client_strerror(rc));
		goto out_close;
	}
	printf("received %s message: %s\n", type == MBGW_CLIENT_TEXT ? "text" : "binary", (char *)data);
	free(data);

	/* A request: "ping id=1\n{...}" and the message that carries id=1
	 * (on the echo route, the echo itself). */
	char *reply;
	size_t reply_len;
	rc = mbgw_client_request(c, "ping", "{\"n\":1}", 5000, &reply, &reply_len);
	if (rc < 0) {
		fprintf(stderr, "request: %s\n", mbgw_client_strerror(rc));
		goto out_close;
	}
	struct mbgw_client_msg m;
	if (mbgw_client_msg_parse(reply, reply_len, &m) == 0)
		printf("reply type %.*s, payload %.*s\n", (int)m.type_len, m.type, (int)m.payload_len, m.payload);
	free(reply);

out_close:
	mbgw_client_close(c, 1000, "bye", 2000);
	mbgw_client_free(c);
	return rc < 0 ? 1 : 0;
}
