/* lws-echo — the libwebsockets comparison peer for mbgw-bench.
 *
 *   lws-echo PORT [--path /ws] [--tls CERT KEY] [--deflate]
 *
 * A plain echo at ws://127.0.0.1:PORT/ws against Debian's libwebsockets-dev:
 * every text or binary message is sent back whole, in order, as one frame.
 * Written the way the library's own minimal echo examples are (a queue of
 * whole messages per connection, sent from the WRITEABLE callback), with
 * UTF-8 validation on, as mbgw, ws and websockets validate text too.
 * Default lws event loop (poll), one service thread. SIGTERM/SIGINT stop it.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QMAX 256    /* queued messages per connection before rx is paused */
#define QRESUME 32

struct qmsg {
	struct qmsg *next;
	size_t len;
	int binary;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct pss {
	struct qmsg *head, *tail;
	unsigned qlen;
	int paused;
	unsigned char *frag; /* message being assembled, with LWS_PRE headroom */
	size_t flen, fcap;
};

static const char *path = "/ws";
static volatile sig_atomic_t stop;
static struct lws_context *ctx;

static void drop_all(struct pss *p)
{
	while (p->head) {
		struct qmsg *m = p->head;
		p->head = m->next;
		free(m);
	}
	p->tail = NULL;
	p->qlen = 0;
	free(p->frag);
	p->frag = NULL;
	p->flen = p->fcap = 0;
}

static int on_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *p = user;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		char uri[256];
		if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, path) != 0)
			return 1; /* refuse other paths */
		break;
	}
	case LWS_CALLBACK_ESTABLISHED:
		memset(p, 0, sizeof *p);
		break;
	case LWS_CALLBACK_RECEIVE: {
		if (lws_is_first_fragment(wsi))
			p->flen = 0;
		if (LWS_PRE + p->flen + len > p->fcap) {
			size_t cap = p->fcap ? p->fcap : 4096;
			while (cap < LWS_PRE + p->flen + len)
				cap *= 2;
			unsigned char *n = realloc(p->frag, cap);
			if (!n)
				return -1;
			p->frag = n;
			p->fcap = cap;
		}
		memcpy(p->frag + LWS_PRE + p->flen, in, len);
		p->flen += len;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			break;
		struct qmsg *m = malloc(sizeof *m + LWS_PRE + p->flen);
		if (!m)
			return -1;
		m->next = NULL;
		m->len = p->flen;
		m->binary = lws_frame_is_binary(wsi);
		memcpy(m->buf + LWS_PRE, p->frag + LWS_PRE, p->flen);
		if (p->tail)
			p->tail->next = m;
		else
			p->head = m;
		p->tail = m;
		p->flen = 0;
		if (++p->qlen >= QMAX && !p->paused) {
			lws_rx_flow_control(wsi, 0);
			p->paused = 1;
		}
		lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		struct qmsg *m = p->head;
		if (!m)
			break;
		int n = lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
		if (n < (int)m->len)
			return -1;
		p->head = m->next;
		if (!p->head)
			p->tail = NULL;
		free(m);
		p->qlen--;
		if (p->paused && p->qlen <= QRESUME) {
			lws_rx_flow_control(wsi, 1);
			p->paused = 0;
		}
		if (p->head)
			lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_CLOSED:
		drop_all(p);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "echo", on_event, sizeof(struct pss), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_extension exts[] = {
	{ "permessage-deflate", lws_extension_callback_pm_deflate, "permessage-deflate; client_max_window_bits" },
	{ NULL, NULL, NULL },
};

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
	if (ctx)
		lws_cancel_service(ctx);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: lws-echo PORT [--path /ws] [--tls CERT KEY] [--deflate]\n");
		return 2;
	}
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = atoi(argv[1]);
	info.iface = "127.0.0.1";
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.count_threads = 1;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--tls") == 0 && i + 2 < argc) {
			info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
			info.ssl_cert_filepath = argv[++i];
			info.ssl_private_key_filepath = argv[++i];
		} else if (strcmp(argv[i], "--deflate") == 0) {
			info.extensions = exts;
		} else {
			fprintf(stderr, "lws-echo: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ctx = lws_create_context(&info);
	if (!ctx) {
		fprintf(stderr, "lws-echo: lws_create_context failed\n");
		return 1;
	}
	fprintf(stderr, "lws-echo: libwebsockets %s on 127.0.0.1:%d%s\n", lws_get_library_version(), info.port, path);
	while (!stop && lws_service(ctx, 0) >= 0)
		;
	lws_context_destroy(ctx);
	return 0;
}
