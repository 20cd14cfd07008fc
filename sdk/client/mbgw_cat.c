/* mbgw-cat — a command-line WebSocket client on libmbgw-client.
 *
 * Interactive when stdin is a terminal (prompts, "< " before what
 * arrives), clean when piped (one message per line on stdout, status on
 * stderr). It is also the reference for the embedded use of the library:
 * one poll() over stdin and the client's socket, with the client's own
 * timeout, then mbgw_client_step(). docs/mbgw-cat.1 is its manual.
 */
#include <mbgw/client.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit codes (docs/mbgw-cat.1). */
#define EXIT_OK 0
#define EXIT_USAGE 1
#define EXIT_CONNECT 2
#define EXIT_TLS 3
#define EXIT_REJECTED 4
#define EXIT_ABNORMAL 5
#define EXIT_CLOSED_ERROR 6
#define EXIT_NO_REPLY 7

struct cat {
	const char *url;
	struct mbgw_client *c;
	bool tty_in, tty_out;
	bool quiet, json, base64, binary;
	const char **execute;
	size_t nexecute;
	long count;                 /* messages to wait for after the input; -1: not set */
	double wait_s;              /* after the input ends */
	bool wait_set;
	long received;
	long sent;
	bool input_done;
	double input_done_at;
	bool executed;
	bool reconnect;
	bool was_open;              /* the last thing that ended was an open connection */
	int last_close_code;
	char *line;
	size_t line_len, line_cap;
	uint64_t max_size;
	bool prompt_shown;
	bool closing;               /* we started the close */
	bool output_gone;           /* stdout is a closed pipe */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void status(struct cat *k, const char *fmt, ...)
{
	if (k->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (k->tty_in && k->prompt_shown)
		fputs("\r", stderr);
	fputs("mbgw-cat: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	k->prompt_shown = false;
}

static void error_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mbgw-cat: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void prompt(struct cat *k)
{
	if (k->tty_in && !k->prompt_shown && mbgw_client_state(k->c) == MBGW_CLIENT_OPEN && !k->input_done) {
		fputs("> ", stderr);
		fflush(stderr);
		k->prompt_shown = true;
	}
}

static void print_hex(const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		putchar(hx[p[i] >> 4]);
		putchar(hx[p[i] & 15]);
	}
}

static void print_base64(const unsigned char *p, size_t n)
{
	static const char b[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		putchar(b[v >> 18 & 63]);
		putchar(b[v >> 12 & 63]);
		putchar(i + 1 < n ? b[v >> 6 & 63] : '=');
		putchar(i + 2 < n ? b[v & 63] : '=');
	}
}

/* cJSON's require_null_terminated refuses a text that ends exactly at
 * the given length, so check the end by hand. */
static cJSON *parse_exact(const char *s, size_t n)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	if (!j)
		return NULL;
	while (end && end < s + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != s + n) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* Pretty-prints a JSON text, or "header\nJSON"; false if it is neither. */
static bool print_json(const char *s, size_t n)
{
	struct mbgw_client_msg m;
	const char *json = s;
	size_t jl = n;
	bool has_header = false;
	cJSON *j = parse_exact(s, n);
	if (!j && mbgw_client_msg_parse(s, n, &m) == 0) {
		json = m.payload;
		jl = m.payload_len;
		has_header = true;
		j = parse_exact(json, jl);
	}
	if (!j)
		return false;
	char *out = cJSON_Print(j);
	cJSON_Delete(j);
	if (!out)
		return false;
	if (has_header)
		printf("%.*s\n", (int)m.header_len, m.header);
	fputs(out, stdout);
	free(out);
	return true;
}

static void on_message(struct mbgw_client *c, int type, const void *data, size_t len, void *ud)
{
	struct cat *k = ud;
	k->received++;
	if (k->tty_in && k->prompt_shown) {
		fputs("\r", stderr);
		k->prompt_shown = false;
	}
	if (k->tty_out)
		fputs("< ", stdout);
	if (type == MBGW_CLIENT_BINARY) {
		if (k->base64)
			print_base64(data, len);
		else
			print_hex(data, len);
	} else if (!k->json || !print_json(data, len)) {
		fwrite(data, 1, len, stdout);
	}
	putchar('\n');
	/* Whoever read our output has gone (mbgw-cat URL | head -1): stop. */
	if (fflush(stdout) != 0 || ferror(stdout))
		k->output_gone = true;
}

static void on_open(struct mbgw_client *c, void *ud)
{
	struct cat *k = ud;
	k->was_open = false;
	const char *sp = mbgw_client_subprotocol(c), *ex = mbgw_client_extensions(c);
	unsigned n = mbgw_client_connections(c);
	status(k, "%s to %s%s%s%s%s%s%s", n > 1 ? "reconnected" : "connected", k->url,
	       sp ? " (subprotocol: " : "", sp ? sp : "", sp ? ")" : "",
	       ex ? " (extensions: " : "", ex ? ex : "", ex ? ")" : "");
	if (k->tty_in && n == 1 && !k->nexecute)
		status(k, "type a message and press Enter; Ctrl-D quits");
	if (!k->executed && k->nexecute) {
		k->executed = true;
		for (size_t i = 0; i < k->nexecute; i++) {
			int rc = mbgw_client_send(c, k->binary ? MBGW_CLIENT_BINARY : MBGW_CLIENT_TEXT,
						  k->execute[i], strlen(k->execute[i]));
			if (rc < 0)
				error_msg("cannot send -x message %zu: %s", i + 1, mbgw_client_strerror(rc));
			else
				k->sent++;
		}
		k->input_done = true;
		k->input_done_at = now_s();
	}
}

static void on_disconnect(struct mbgw_client *c, int code, const char *reason, int will_reconnect, void *ud)
{
	struct cat *k = ud;
	k->was_open = true;
	k->last_close_code = code;
	if (k->closing)
		status(k, "closed (%d)", code);
	else if (code == 1006)
		status(k, "connection lost: %s", *mbgw_client_last_error(c) ? mbgw_client_last_error(c) : reason);
	else
		status(k, "closed by the server: %d%s%s", code, *reason ? " " : "", reason);
}

static void on_reconnecting(struct mbgw_client *c, unsigned attempt, uint64_t delay_ms, int last_error, void *ud)
{
	struct cat *k = ud;
	k->was_open = false;
	status(k, "%s; reconnecting in %llu ms (attempt %u)",
	       *mbgw_client_last_error(c) ? mbgw_client_last_error(c) : mbgw_client_strerror(last_error),
	       (unsigned long long)delay_ms, attempt);
}

static int exit_code_for(struct cat *k, int rc)
{
	switch (rc) {
	case 0:
	case MBGW_C_E_CLOSED:
		break;
	case MBGW_C_E_TLS:
		return EXIT_TLS;
	case MBGW_C_E_HANDSHAKE:
		return EXIT_REJECTED;
	case MBGW_C_E_URL:
	case MBGW_C_E_INVAL:
	case MBGW_C_E_NOMEM:
		return EXIT_USAGE;
	case MBGW_C_E_PROTOCOL:
		return EXIT_ABNORMAL;
	default:
		if (k->was_open)
			break;
		return EXIT_CONNECT;
	}
	if (!k->was_open)
		return EXIT_OK;
	if (k->last_close_code == 1006 || rc == MBGW_C_E_PROTOCOL)
		return EXIT_ABNORMAL;
	if (k->last_close_code == 1000 || k->last_close_code == 1001 || k->last_close_code == 1005)
		return EXIT_OK;
	return EXIT_CLOSED_ERROR;
}

static void send_line(struct cat *k, const char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	int rc = mbgw_client_send(k->c, k->binary ? MBGW_CLIENT_BINARY : MBGW_CLIENT_TEXT, s, n);
	if (rc < 0)
		error_msg("not sent: %s", mbgw_client_strerror(rc));
	else
		k->sent++;
}

/* Reads what stdin has; sends complete lines. */
static void read_input(struct cat *k)
{
	char buf[65536];
	ssize_t n = read(0, buf, sizeof buf);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		error_msg("reading stdin: %s", strerror(errno));
		n = 0;
	}
	if (n == 0) {
		if (k->line_len)
			send_line(k, k->line, k->line_len);
		k->line_len = 0;
		k->input_done = true;
		k->input_done_at = now_s();
		if (k->prompt_shown)
			fputc('\n', stderr);
		k->prompt_shown = false;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			send_line(k, k->line ? k->line : "", k->line_len);
			k->line_len = 0;
			k->prompt_shown = false;
			continue;
		}
		if (k->line_len + 1 > k->line_cap) {
			size_t cap = k->line_cap ? k->line_cap * 2 : 4096;
			char *p = realloc(k->line, cap);
			if (!p) {
				error_msg("out of memory");
				exit(EXIT_USAGE);
			}
			k->line = p;
			k->line_cap = cap;
		}
		k->line[k->line_len++] = buf[i];
	}
}

static bool parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 86400.0 * 365)
		return false;
	*out = v;
	return true;
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return false;
	uint64_t mul = 1;
	if (!strcasecmp(end, "k") || !strcasecmp(end, "kib"))
		mul = 1024;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib"))
		mul = 1024 * 1024;
	else if (!strcasecmp(end, "g") || !strcasecmp(end, "gib"))
		mul = 1024ull * 1024 * 1024;
	else if (!strcasecmp(end, "kb"))
		mul = 1000;
	else if (!strcasecmp(end, "mb"))
		mul = 1000 * 1000;
	else if (*end)
		return false;
	if (v == 0 || v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static void usage(FILE *f)
{
	fputs("Usage: mbgw-cat [OPTIONS] URL\n"
	      "Connects to a WebSocket URL (ws:// or wss://): each line of input is sent as a\n"
	      "message, each message received is printed on its own line.\n"
	      "\n"
	      "Connection:\n"
	      "  -H, --header 'NAME: VALUE'  extra request header (repeatable)\n"
	      "  -s, --subprotocol NAME      offer a subprotocol (repeatable, in preference order)\n"
	      "      --proxy URL             HTTP proxy http://[user:pass@]host[:port] (default: from\n"
	      "                              https_proxy/http_proxy, honouring no_proxy)\n"
	      "      --no-proxy              ignore the proxy environment variables\n"
	      "      --ca FILE               trust the CAs in FILE (default: the system store)\n"
	      "      --cert FILE, --key FILE client certificate and key (mutual TLS)\n"
	      "  -k, --insecure              do not verify the server certificate (testing only)\n"
	      "      --compress              offer permessage-deflate\n"
	      "      --connect-timeout SEC   per connection attempt (default 10)\n"
	      "      --max-size SIZE         largest message accepted (default 16MiB; k, M, G suffixes)\n"
	      "      --ping-interval SEC     send a ping after SEC idle seconds (default: off)\n"
	      "      --pong-timeout SEC      drop the connection if no pong within SEC (default 10)\n"
	      "      --reconnect             reconnect automatically (backoff with jitter)\n"
	      "      --backoff-initial SEC   first reconnection delay (default 0.5)\n"
	      "      --backoff-max SEC       largest reconnection delay (default 30)\n"
	      "      --max-attempts N        give up after N failed reconnections (default: never)\n"
	      "\n"
	      "Messages:\n"
	      "  -x, --execute MSG           send MSG (repeatable) instead of reading stdin, then exit\n"
	      "                              once one message per MSG has arrived or --wait expires\n"
	      "  -w, --wait SEC              after the input ends, wait up to SEC for messages\n"
	      "                              (default 5 with -x, else 1; 0 with a terminal)\n"
	      "  -n, --count N               exit once N messages have arrived after the input ended\n"
	      "  -b, --binary                send binary messages instead of text\n"
	      "      --hex, --base64         how received binary messages are printed (default hex)\n"
	      "      --json                  pretty-print JSON payloads (also after a header line)\n"
	      "  -q, --quiet                 no status lines on stderr (errors are still printed)\n"
	      "  -h, --help                  this text\n"
	      "  -V, --version               the version\n"
	      "\n"
	      "Exit status: 0 ok; 1 usage or local error; 2 cannot connect (DNS, TCP, proxy,\n"
	      "timeout); 3 TLS failure; 4 handshake rejected (the HTTP status is printed);\n"
	      "5 connection lost abnormally (1006, heartbeat timeout, protocol error); 6 closed\n"
	      "by the server with an error code; 7 -x/--count: not all replies arrived in time.\n",
	      f);
}

enum {
	OPT_PROXY = 256, OPT_NO_PROXY, OPT_CA, OPT_CERT, OPT_KEY, OPT_COMPRESS, OPT_RECONNECT,
	OPT_BACKOFF_INITIAL, OPT_BACKOFF_MAX, OPT_MAX_ATTEMPTS, OPT_PING, OPT_PONG, OPT_HEX,
	OPT_BASE64, OPT_JSON, OPT_MAX_SIZE, OPT_CONNECT_TIMEOUT,
};

static const struct option longopts[] = {
	{ "header", required_argument, NULL, 'H' },
	{ "subprotocol", required_argument, NULL, 's' },
	{ "proxy", required_argument, NULL, OPT_PROXY },
	{ "no-proxy", no_argument, NULL, OPT_NO_PROXY },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "insecure", no_argument, NULL, 'k' },
	{ "compress", no_argument, NULL, OPT_COMPRESS },
	{ "reconnect", no_argument, NULL, OPT_RECONNECT },
	{ "backoff-initial", required_argument, NULL, OPT_BACKOFF_INITIAL },
	{ "backoff-max", required_argument, NULL, OPT_BACKOFF_MAX },
	{ "max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS },
	{ "ping-interval", required_argument, NULL, OPT_PING },
	{ "pong-timeout", required_argument, NULL, OPT_PONG },
	{ "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
	{ "execute", required_argument, NULL, 'x' },
	{ "wait", required_argument, NULL, 'w' },
	{ "count", required_argument, NULL, 'n' },
	{ "binary", no_argument, NULL, 'b' },
	{ "hex", no_argument, NULL, OPT_HEX },
	{ "base64", no_argument, NULL, OPT_BASE64 },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "max-size", required_argument, NULL, OPT_MAX_SIZE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int bad_value(const char *opt, const char *v)
{
	error_msg("invalid value for %s: '%s'", opt, v);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static struct cat k;
	struct mbgw_client_options o;
	mbgw_client_options_init(&o);
	k.count = -1;
	const char **headers = calloc((size_t)argc, sizeof *headers);
	const char **protos = calloc((size_t)argc, sizeof *protos);
	k.execute = calloc((size_t)argc, sizeof *k.execute);
	int exit_code = EXIT_OK;
	if (!headers || !protos || !k.execute) {
		error_msg("out of memory");
		exit_code = EXIT_USAGE;
		goto out_free;
	}
	int opt;
	double d;
	unsigned long ul;
	while ((opt = getopt_long(argc, argv, "H:s:kx:w:n:bqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			headers[o.nheaders++] = optarg;
			break;
		case 's':
			protos[o.nsubprotocols++] = optarg;
			break;
		case OPT_PROXY:
			o.proxy = optarg;
			break;
		case OPT_NO_PROXY:
			o.proxy = "";
			break;
		case OPT_CA:
			o.ca_file = optarg;
			break;
		case OPT_CERT:
			o.cert_file = optarg;
			break;
		case OPT_KEY:
			o.key_file = optarg;
			break;
		case 'k':
			o.insecure = 1;
			break;
		case OPT_COMPRESS:
			o.compress = 1;
			break;
		case OPT_RECONNECT:
			o.reconnect = 1;
			k.reconnect = true;
			break;
		case OPT_BACKOFF_INITIAL:
			if (!parse_seconds(optarg, &d) || d < 0.001)
				{ exit_code = bad_value("--backoff-initial", optarg); goto out_free; }
			o.backoff_initial_ms = (uint32_t)(d * 1000);
			break;
		case OPT_BACKOFF_MAX:
			if (!parse_seconds(optarg, &d) || d < 0.001 || d > 86400)
				{ exit_code = bad_value("--backoff-max", optarg); goto out_free; }
			o.backoff_max_ms = (uint32_t)(d * 1000);
			break;
		case OPT_MAX_ATTEMPTS:
			if (!parse_ulong(optarg, UINT32_MAX, &ul))
				{ exit_code = bad_value("--max-attempts", optarg); goto out_free; }
			o.max_attempts = (uint32_t)ul;
			break;
		case OPT_PING:
			if (!parse_seconds(optarg, &d) || d > 86400)
				{ exit_code = bad_value("--ping-interval", optarg); goto out_free; }
			o.ping_interval_ms = (int32_t)(d * 1000);
			break;
		case OPT_PONG:
			if (!parse_seconds(optarg, &d) || d < 0.001 || d > 86400)
				{ exit_code = bad_value("--pong-timeout", optarg); goto out_free; }
			o.pong_timeout_ms = (int32_t)(d * 1000);
			break;
		case OPT_CONNECT_TIMEOUT:
			if (!parse_seconds(optarg, &d) || d < 0.001 || d > 86400)
				{ exit_code = bad_value("--connect-timeout", optarg); goto out_free; }
			o.connect_timeout_ms = (int32_t)(d * 1000);
			break;
		case 'x':
			k.execute[k.nexecute++] = optarg;
			break;
		case 'w':
			if (!parse_seconds(optarg, &k.wait_s))
				{ exit_code = bad_value("--wait", optarg); goto out_free; }
			k.wait_set = true;
			break;
		case 'n':
			if (!parse_ulong(optarg, 1000000000, &ul))
				{ exit_code = bad_value("--count", optarg); goto out_free; }
			k.count = (long)ul;
			break;
		case 'b':
			k.binary = true;
			break;
		case OPT_HEX:
			k.base64 = false;
			break;
		case OPT_BASE64:
			k.base64 = true;
			break;
		case OPT_JSON:
			k.json = true;
			break;
		case 'q':
			k.quiet = true;
			break;
		case OPT_MAX_SIZE:
			if (!parse_size(optarg, &o.max_message_size))
				{ exit_code = bad_value("--max-size", optarg); goto out_free; }
			break;
		case 'h':
			usage(stdout);
			exit_code = EXIT_OK;
			goto out_free;
		case 'V':
			printf("mbgw-cat (libmbgw-client %d.%d)\n", MBGW_CLIENT_VERSION_MAJOR, MBGW_CLIENT_VERSION_MINOR);
			exit_code = EXIT_OK;
			goto out_free;
		default:
			usage(stderr);
			exit_code = EXIT_USAGE;
			goto out_free;
		}
	}
	if (optind != argc - 1) {
		error_msg(optind >= argc ? "no URL given" : "one URL only");
		usage(stderr);
		exit_code = EXIT_USAGE;
		goto out_free;
	}
	if (o.backoff_max_ms < o.backoff_initial_ms)
		o.backoff_max_ms = o.backoff_initial_ms;
	o.url = argv[optind];
	k.url = o.url;
	o.headers = headers;
	o.subprotocols = protos;
	o.on_open = on_open;
	o.on_message = on_message;
	o.on_disconnect = on_disconnect;
	o.on_reconnecting = on_reconnecting;
	o.userdata = &k;
	k.tty_in = isatty(0) && !k.nexecute;
	k.tty_out = isatty(1) && k.tty_in;
	if (!k.wait_set)
		k.wait_s = k.nexecute ? 5.0 : k.tty_in ? 0.0 : 1.0;
	if (k.count < 0 && k.nexecute)
		k.count = (long)k.nexecute;

	char err[512];
	int rc = mbgw_client_new(&o, &k.c, err, sizeof err);
	if (rc < 0) {
		error_msg("%s", *err ? err : mbgw_client_strerror(rc));
		exit_code = EXIT_USAGE;
		goto out_free;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct stat st_out;
	bool out_is_pipe = fstat(1, &st_out) == 0 && S_ISFIFO(st_out.st_mode);
	rc = mbgw_client_connect(k.c);
	bool stop = false;
	while (!stop && rc == 0) {
		if (got_signal) {
			status(&k, "interrupted; closing");
			break;
		}
		if (k.output_gone)
			break;
		prompt(&k);
		int st = mbgw_client_state(k.c);
		/* Read input only while it can go somewhere: when open, or, with
		 * --reconnect after a first connection, into the queue. */
		bool want_input = !k.nexecute && !k.input_done &&
				  (st == MBGW_CLIENT_OPEN ||
				   (k.reconnect && mbgw_client_connections(k.c) > 0 &&
				    (st == MBGW_CLIENT_WAITING || st == MBGW_CLIENT_CONNECTING)));
		/* Backpressure: stop reading while the socket is behind. */
		if (mbgw_client_pending(k.c) > (4u << 20))
			want_input = false;
		/* p[2]: a pipe on stdout reports POLLERR once its reader has
		 * gone, even before we write to it again. */
		struct pollfd p[3] = { { mbgw_client_fd(k.c), mbgw_client_events(k.c), 0 }, { -1, POLLIN, 0 },
				       { out_is_pipe ? 1 : -1, 0, 0 } };
		if (want_input)
			p[1].fd = 0;
		int t = mbgw_client_timeout(k.c);
		if (k.input_done && st != MBGW_CLIENT_CLOSING) {
			double left = k.input_done_at + k.wait_s - now_s();
			int ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
			if (t < 0 || ms < t)
				t = ms;
		}
		int n = poll(p, 3, t);
		if (n < 0 && errno != EINTR) {
			error_msg("poll: %s", strerror(errno));
			exit_code = EXIT_USAGE;
			break;
		}
		if (n > 0 && (p[2].revents & (POLLERR | POLLHUP)))
			k.output_gone = true;
		if (n > 0 && p[1].revents)
			read_input(&k);
		rc = mbgw_client_step(k.c, n > 0 ? p[0].revents : 0);
		if (rc < 0)
			break;
		st = mbgw_client_state(k.c);
		if (k.input_done && st == MBGW_CLIENT_OPEN) {
			bool enough = k.count > 0 && k.received >= k.count;
			bool expired = now_s() >= k.input_done_at + k.wait_s;
			if (enough || expired) {
				if (!enough && k.count > 0) {
					error_msg("%ld of %ld expected message%s arrived within %.3g s", k.received, k.count,
						  k.count == 1 ? "" : "s", k.wait_s);
					exit_code = EXIT_NO_REPLY;
				}
				stop = true;
			}
		}
	}
	if (rc == 0) {
		/* We end the session: a clean close. */
		k.closing = true;
		int crc = mbgw_client_close(k.c, 1000, NULL, 3000);
		if (crc == MBGW_C_E_TIMEOUT)
			status(&k, "%s", mbgw_client_last_error(k.c));
	} else {
		int code = exit_code_for(&k, rc);
		if (code != EXIT_OK || (rc != MBGW_C_E_CLOSED && rc != 0)) {
			const char *e = mbgw_client_last_error(k.c);
			if (!*e)
				e = mbgw_client_strerror(rc);
			if (code == EXIT_REJECTED)
				error_msg("handshake rejected: HTTP %d: %s", mbgw_client_http_status(k.c), e);
			else if (!k.was_open || code != EXIT_CLOSED_ERROR)
				error_msg("%s", e);
		}
		if (code != EXIT_OK)
			exit_code = code;
		else if (k.count > 0 && k.received < k.count && exit_code == EXIT_OK) {
			error_msg("%ld of %ld expected message%s arrived before the connection closed", k.received,
				  k.count, k.count == 1 ? "" : "s");
			exit_code = EXIT_NO_REPLY;
		}
	}
	mbgw_client_free(k.c);
out_free:
	free(k.line);
	free(headers);
	free(protos);
	free(k.execute);
	return exit_code;
}
