/* mbgw-bench — a WebSocket load generator for mbgw and its peers.
 *
 * One thread, one epoll loop (level-triggered), non-blocking sockets.
 * Depends on libc, OpenSSL (wss://, SHA-1 of the handshake) and zlib
 * (permessage-deflate) only.
 *
 * Modes (see usage()):
 *   echo       N connections, each keeping K messages in flight; every echo
 *              is checked, length and content, against what was sent
 *   latency    echo with 1 connection and 1 message in flight
 *   handshake  C concurrent loops of connect -> upgrade -> close handshake
 *   idle       open N connections and hold them; server RSS per connection
 *   broadcast  S subscribers and P publishers at a fixed rate; delivery
 *              rate, loss and publish-to-delivery latency
 *
 * The generator must cost less per message than the server it measures,
 * so the hot path allocates nothing: an outgoing payload is a window into
 * one shared pool chosen by the message's sequence number, it is masked
 * 8 bytes at a time while being copied into the write buffer, and its echo
 * is verified with one memcmp against the same window. Echoes of one
 * connection arrive in order (one TCP stream), so the sequence number of
 * the next expected echo is simply a counter.
 *
 * Safety: only 127.0.0.0/8 targets are accepted, every phase has a
 * deadline, and alarm() ends the process if something wedges anyway.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <zlib.h>

#define MAX_MSG (64u << 20)       /* largest message we accept from a server */
#define POOL_SPREAD 4096u         /* distinct payload windows in the pool */
#define CLOSE_WAIT_NS (2000000000ull)
#define SCAN_EVERY_NS (100000000ull)

/* ------------------------------------------------------------------ */
/* options                                                             */

enum mode { M_ECHO, M_LATENCY, M_HANDSHAKE, M_IDLE, M_BROADCAST };
static const char *const mode_names[] = { "echo", "latency", "handshake", "idle", "broadcast" };
static const char *const state_names[] = { "free", "connecting", "TLS handshake", "upgrade", "open", "closing",
					   "done" };

enum fmt { F_RAW, F_HJ };
enum verify { V_EXACT, V_BODY, V_LENGTH, V_NONE };

static struct opts {
	enum mode mode;
	char host[64];
	uint16_t port;
	char path[512];
	char pub_path[512];
	bool tls, tls_resume;
	bool deflate;
	int deflate_level;
	unsigned conns, size, inflight, loops, sources, subscribers, publishers;
	unsigned connect_concurrency;
	bool binary;
	enum fmt fmt;
	enum verify verify;
	double seconds, warmup, connect_timeout, rate, settle;
	int server_pid;
	const char *label;
	const char *subprotocol;
	char join[1024];
	char pub_template[1024];
	bool quiet;
} o = {
	.mode = M_ECHO,
	.host = "127.0.0.1",
	.port = 8080,
	.path = "/ws",
	.deflate_level = 1,
	.conns = 100,
	.size = 32,
	.inflight = 1,
	.loops = 50,
	.sources = 8,
	.subscribers = 1000,
	.publishers = 1,
	.connect_concurrency = 256,
	.seconds = 10,
	.warmup = 2,
	.connect_timeout = 0,
	.rate = 100,
	.settle = 120,
	.label = "-",
	.pub_template = "{\"t\":\"{T}\",\"x\":\"{PAD}\"}",
};

/* ------------------------------------------------------------------ */
/* clocks, CPU, memory                                                 */

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* utime+stime of every thread of PID, from /proc/PID/stat (fields 14, 15).
 * Returns -1 when the process is gone. */
static double proc_cpu_s(int pid)
{
	if (pid <= 0)
		return -1;
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* comm may hold spaces and parentheses: fields start after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 2; /* now at field 3 (state) */
	unsigned long long ut = 0, st = 0;
	for (int field = 3; field <= 15 && *p; field++) {
		char *end;
		if (field == 14)
			ut = strtoull(p, &end, 10);
		else if (field == 15)
			st = strtoull(p, &end, 10);
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of PID in KiB, or -1. */
static long proc_rss_kib(int pid)
{
	if (pid <= 0)
		return -1;
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kib = -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

/* ------------------------------------------------------------------ */
/* randomness: wyrand per connection, seeded from getrandom()          */

static uint64_t seed64(void)
{
	uint64_t s;
	if (getrandom(&s, sizeof s, 0) != sizeof s) {
		perror("getrandom");
		exit(2);
	}
	return s;
}

static inline uint64_t wyrand(uint64_t *s)
{
	*s += 0xa0761d6478bd642full;
	__uint128_t t = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* ------------------------------------------------------------------ */
/* latency histogram: log2 groups of 32 linear buckets (~3% precision) */

#define H_SUB 5
#define H_N ((64 - H_SUB + 1) << H_SUB)
struct hist {
	uint64_t n, max, b[H_N];
};

static inline unsigned h_idx(uint64_t v)
{
	if (v < (1u << H_SUB))
		return (unsigned)v;
	unsigned k = 63u - (unsigned)__builtin_clzll(v);
	return ((k - H_SUB + 1) << H_SUB) | (unsigned)((v >> (k - H_SUB)) & ((1u << H_SUB) - 1));
}

static uint64_t h_mid(unsigned i)
{
	unsigned g = i >> H_SUB, s = i & ((1u << H_SUB) - 1);
	if (g == 0)
		return s;
	unsigned k = g + H_SUB - 1;
	uint64_t lo = (1ull << k) | ((uint64_t)s << (k - H_SUB));
	return lo + ((1ull << (k - H_SUB)) >> 1);
}

static inline void h_add(struct hist *h, uint64_t v)
{
	h->b[h_idx(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static uint64_t h_pct(const struct hist *h, double q)
{
	if (!h->n)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->n);
	if (rank < 1)
		rank = 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < H_N; i++) {
		acc += h->b[i];
		if (acc >= rank) {
			uint64_t m = h_mid(i);
			return m > h->max ? h->max : m;
		}
	}
	return h->max;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

enum cstate { C_FREE, C_CONNECTING, C_TLS, C_UPGRADING, C_OPEN, C_CLOSING, C_DONE };
enum role { R_ECHO, R_IDLE, R_HS, R_SUB, R_PUB };

struct conn {
	int fd;
	uint8_t st, role;
	bool out_armed;  /* EPOLLOUT in the interest set */
	bool close_sent, close_rcvd, close_expected;
	bool in_msg, mcomp;
	uint8_t mop;
	unsigned idx;
	SSL *ssl;
	uint64_t rng;
	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	uint8_t *mbuf; /* fragments / inflated message */
	size_t mlen, mcap;
	uint8_t *sbuf; /* scratch: header+JSON payloads, deflate output */
	size_t scap;
	uint64_t sent, rcvd; /* sequence numbers */
	uint64_t *ts;        /* send time of in-flight messages, ring of tsmask+1 */
	uint64_t t_start, t_close, next_pub;
	char key[32];
	z_stream *zd, *zi;
	bool pmd, pmd_cnct;
	int pmd_cbits;
};

static struct {
	int ep;
	struct conn *c;
	unsigned nconn;
	unsigned tsmask;
	uint8_t *pool;
	size_t pool_len;
	SSL_CTX *ssl_ctx;
	SSL_SESSION *sess;
	struct sockaddr_in dst;
	unsigned src_rr;
	char request_tail[1024];
	uint64_t t0;
	bool sending;    /* echo/publish loops may send new messages */
	bool measuring;  /* counters below are live */
	bool restart_hs; /* handshake loops start a new cycle */
	/* figures of the measured window */
	uint64_t msgs, bytes, hs_done, deliveries, published, unexpected;
	uint64_t hs_ok; /* handshakes completed over the whole run */
	unsigned subs_open; /* subscribers open when measuring began */
	uint64_t pub_t_lo, pub_t_hi;
	struct hist lat;
	/* errors */
	uint64_t e_connect, e_handshake, e_verify, e_proto, e_closed, e_timeout, e_io;
	uint64_t slow_close, tls_resumed;
	unsigned err_printed;
	/* connection bookkeeping */
	unsigned pending;  /* connections between socket() and OPEN */
	unsigned open;     /* connections in C_OPEN */
	unsigned started;  /* connections started in the connect phase */
} g;

static uint64_t errors_total(void)
{
	return g.e_connect + g.e_handshake + g.e_verify + g.e_proto + g.e_closed + g.e_timeout + g.e_io;
}

static void note_err(uint64_t *counter, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_err(uint64_t *counter, struct conn *c, const char *fmt, ...)
{
	(*counter)++;
	if (g.err_printed >= 8 || o.quiet)
		return;
	g.err_printed++;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "mbgw-bench: conn %u: %s%s\n", c ? c->idx : 0, msg,
		g.err_printed == 8 ? " (further errors are only counted)" : "");
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "mbgw-bench: out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return q;
}

static void ep_mod(struct conn *c, bool out)
{
	if (c->out_armed == out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
	epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->out_armed = out;
}

static void conn_set_state(struct conn *c, enum cstate s)
{
	bool was_pending = c->st == C_CONNECTING || c->st == C_TLS || c->st == C_UPGRADING;
	bool is_pending = s == C_CONNECTING || s == C_TLS || s == C_UPGRADING;
	if (was_pending && !is_pending)
		g.pending--;
	else if (!was_pending && is_pending)
		g.pending++;
	if (c->st == C_OPEN && s != C_OPEN)
		g.open--;
	else if (c->st != C_OPEN && s == C_OPEN)
		g.open++;
	c->st = (uint8_t)s;
}

/* Closes the socket; buffers stay with the slot for its next life. */
static void conn_drop(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->zd)
		deflateReset(c->zd);
	if (c->zi)
		inflateReset(c->zi);
	conn_set_state(c, C_DONE);
}

static void conn_fail(struct conn *c, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(struct conn *c, uint64_t *counter, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	note_err(counter, c, "%s", msg);
	conn_drop(c);
}

/* ---------------- transport: TCP or TLS ---------------- */

/* > 0 bytes, 0 end of stream, -EAGAIN, or another negative errno. */
static ssize_t tr_recv(struct conn *c, void *b, size_t n)
{
	if (!c->ssl) {
		ssize_t r = recv(c->fd, b, n, 0);
		if (r < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		return r;
	}
	if (ERR_peek_error()) /* cheaper than clearing an empty queue */
		ERR_clear_error();
	int r = SSL_read(c->ssl, b, (int)(n > INT_MAX ? INT_MAX : n));
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		ep_mod(c, true);
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		return errno ? -errno : 0;
	default:
		return -EPROTO;
	}
}

static ssize_t tr_send(struct conn *c, const void *b, size_t n)
{
	if (!c->ssl) {
		ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
		if (r < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		return r;
	}
	if (ERR_peek_error()) /* cheaper than clearing an empty queue */
		ERR_clear_error();
	int r = SSL_write(c->ssl, b, (int)(n > INT_MAX ? INT_MAX : n));
	if (r > 0)
		return r;
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_SYSCALL:
		return errno ? -errno : -EPIPE;
	default:
		return -EPROTO;
	}
}

/* Sends what the write buffer holds; arms EPOLLOUT for the rest. */
static void conn_flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = tr_send(c, c->wbuf + c->woff, c->wlen - c->woff);
		if (n > 0) {
			c->woff += (size_t)n;
			continue;
		}
		if (n == -EAGAIN) {
			ep_mod(c, true);
			return;
		}
		if (c->st == C_CLOSING && c->close_rcvd)
			conn_drop(c); /* peer finished the close first: nothing lost */
		else
			conn_fail(c, &g.e_io, "send: %s", strerror((int)-n));
		return;
	}
	c->woff = c->wlen = 0;
	ep_mod(c, false);
}

static uint8_t *wreserve(struct conn *c, size_t need)
{
	if (c->wcap - c->wlen < need && c->woff) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	if (c->wcap - c->wlen < need) {
		size_t cap = c->wcap ? c->wcap : 1024;
		while (cap - c->wlen < need)
			cap *= 2;
		c->wbuf = xrealloc(c->wbuf, cap);
		c->wcap = cap;
	}
	return c->wbuf + c->wlen;
}

/* ---------------- frames ---------------- */

/* dst = src XOR key, 8 bytes at a time (RFC 6455 section 5.3). */
static void mask_copy(uint8_t *restrict dst, const uint8_t *restrict src, size_t n, const uint8_t key[4])
{
	uint64_t k8;
	memcpy(&k8, key, 4);
	memcpy((uint8_t *)&k8 + 4, key, 4);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, src + i, 8);
		w ^= k8;
		memcpy(dst + i, &w, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ key[i & 3];
}

/* Appends one masked frame. Every client frame gets a fresh mask key. */
static void send_frame(struct conn *c, unsigned op, bool rsv1, const uint8_t *pl, size_t len)
{
	uint8_t *p = wreserve(c, len + 14);
	size_t h = 0;
	p[h++] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | op);
	if (len < 126) {
		p[h++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		p[h++] = 0x80 | 126;
		p[h++] = (uint8_t)(len >> 8);
		p[h++] = (uint8_t)len;
	} else {
		p[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			p[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	uint32_t k = (uint32_t)wyrand(&c->rng);
	memcpy(p + h, &k, 4);
	mask_copy(p + h + 4, pl, len, p + h);
	c->wlen += h + 4 + len;
}

static void send_close(struct conn *c, uint16_t code)
{
	uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	send_frame(c, 0x8, false, b, code ? 2 : 0);
	c->close_sent = true;
	if (c->st != C_CLOSING) {
		conn_set_state(c, C_CLOSING);
		c->t_close = mono_ns();
	}
}

/* ---------------- payloads ---------------- */

static const char *const words[] = {
	"gateway", "socket", "frame", "message", "route", "plugin", "event", "loop", "buffer", "mask",
	"the", "a", "of", "to", "and", "in", "is", "on", "for", "with", "close", "ping", "pong", "text",
	"binary", "header", "json", "value", "worker", "thread", "queue", "timer", "client", "server",
};

static void pool_init(void)
{
	size_t sz = o.size ? o.size : 1;
	g.pool_len = sz + POOL_SPREAD + 64;
	g.pool = xrealloc(NULL, g.pool_len);
	uint64_t s = seed64();
	if (o.binary) {
		for (size_t i = 0; i < g.pool_len; i += 8) {
			uint64_t r = wyrand(&s);
			memcpy(g.pool + i, &r, g.pool_len - i < 8 ? g.pool_len - i : 8);
		}
	} else {
		/* Text that compresses like prose (JSON-safe: no quote, no backslash). */
		size_t i = 0;
		while (i < g.pool_len) {
			const char *w = words[wyrand(&s) % (sizeof words / sizeof *words)];
			for (; *w && i < g.pool_len; w++)
				g.pool[i++] = (uint8_t)*w;
			if (i < g.pool_len)
				g.pool[i++] = ' ';
		}
	}
}

/* The payload of message SEQ of connection C (borrowed; valid until the
 * next call for C). Raw messages are windows into the pool; header+JSON
 * messages are built in the connection's scratch buffer. */
static const uint8_t *payload(struct conn *c, uint64_t seq, size_t *len)
{
	size_t off = (size_t)(((seq + c->idx * 7919u) * 61u) & (POOL_SPREAD - 1));
	if (o.fmt == F_RAW) {
		*len = o.size;
		return g.pool + off;
	}
	if (c->scap < (size_t)o.size + 64) {
		c->scap = (size_t)o.size + 64;
		c->sbuf = xrealloc(c->sbuf, c->scap);
	}
	int h = snprintf((char *)c->sbuf, c->scap, "echo id=%" PRIu64 "\n{\"d\":\"", seq);
	size_t body = o.size > (unsigned)h + 2 ? o.size - (unsigned)h - 2 : 0;
	memcpy(c->sbuf + h, g.pool + off, body);
	memcpy(c->sbuf + h + body, "\"}", 2);
	*len = (size_t)h + body + 2;
	return c->sbuf;
}

/* Compresses one message (RFC 7692 section 7.2.1): deflate, sync flush,
 * drop the final 00 00 ff ff. Returns the output (the scratch buffer). */
static const uint8_t *pmd_compress(struct conn *c, const uint8_t *in, size_t n, size_t *out_len)
{
	size_t need = deflateBound(c->zd, n) + 16;
	uint8_t *out;
	if (in == c->sbuf) {
		/* header+JSON payload lives in sbuf: compress into mbuf instead */
		if (c->mcap < need) {
			c->mbuf = xrealloc(c->mbuf, need);
			c->mcap = need;
		}
		out = c->mbuf;
	} else {
		if (c->scap < need) {
			c->sbuf = xrealloc(c->sbuf, need);
			c->scap = need;
		}
		out = c->sbuf;
	}
	c->zd->next_in = (uint8_t *)in;
	c->zd->avail_in = (uInt)n;
	c->zd->next_out = out;
	c->zd->avail_out = (uInt)need;
	deflate(c->zd, Z_SYNC_FLUSH);
	size_t len = need - c->zd->avail_out;
	if (len >= 4 && memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0)
		len -= 4;
	if (c->pmd_cnct)
		deflateReset(c->zd);
	*out_len = len;
	return out;
}

static void send_msg(struct conn *c, uint64_t now)
{
	size_t len;
	const uint8_t *pl = payload(c, c->sent, &len);
	bool rsv1 = false;
	if (c->pmd) {
		pl = pmd_compress(c, pl, len, &len);
		rsv1 = true;
	}
	send_frame(c, o.binary ? 0x2 : 0x1, rsv1, pl, len);
	c->ts[c->sent & g.tsmask] = now;
	c->sent++;
}

/* A published message: the template with {T} replaced by a time stamp
 * marker "@t=<ns since start>@" (JSON-safe, found again by subscribers
 * whatever the route wraps around it) and {PAD} by text up to --size. */
static void send_pub(struct conn *c, uint64_t now)
{
	if (c->scap < (size_t)o.size + sizeof o.pub_template + 64) {
		c->scap = (size_t)o.size + sizeof o.pub_template + 64;
		c->sbuf = xrealloc(c->sbuf, c->scap);
	}
	char mark[40];
	int ml = snprintf(mark, sizeof mark, "@t=%" PRIu64 "@", now - g.t0);
	size_t tl = strlen(o.pub_template), len = 0;
	size_t fixed = tl + (size_t)ml + 10;
	size_t pad = o.size > fixed ? o.size - fixed : 0;
	for (size_t i = 0; i < tl;) {
		if (strncmp(o.pub_template + i, "{T}", 3) == 0) {
			memcpy(c->sbuf + len, mark, (size_t)ml);
			len += (size_t)ml;
			i += 3;
		} else if (strncmp(o.pub_template + i, "{I}", 3) == 0) {
			len += (size_t)snprintf((char *)c->sbuf + len, 16, "%u", c->idx);
			i += 3;
		} else if (strncmp(o.pub_template + i, "{PAD}", 5) == 0) {
			memcpy(c->sbuf + len, g.pool + (c->sent & (POOL_SPREAD - 1)), pad);
			len += pad;
			pad = 0; /* only the first {PAD} is filled */
			i += 5;
		} else {
			c->sbuf[len++] = (uint8_t)o.pub_template[i++];
		}
	}
	const uint8_t *pl = c->sbuf;
	if (c->pmd)
		pl = pmd_compress(c, pl, len, &len);
	send_frame(c, 0x1, c->pmd, pl, len);
	c->sent++;
	if (g.measuring) {
		g.published++;
		if (!g.pub_t_lo)
			g.pub_t_lo = now - g.t0;
		g.pub_t_hi = now - g.t0;
	}
}

/* ---------------- received messages ---------------- */

static void on_message(struct conn *c, unsigned op, const uint8_t *m, size_t len, uint64_t now)
{
	switch (c->role) {
	case R_ECHO: {
		if (c->st != C_OPEN)
			return; /* echoes still in flight when we started closing */
		if (c->rcvd == c->sent) {
			conn_fail(c, &g.e_verify, "message %" PRIu64 " arrived but none is in flight", c->rcvd);
			return;
		}
		if (o.verify != V_NONE) {
			size_t elen;
			const uint8_t *exp = payload(c, c->rcvd, &elen);
			if (o.verify == V_BODY) {
				/* a header+JSON route hands the plugin the body only */
				const uint8_t *nl = memchr(exp, '\n', elen);
				if (nl) {
					elen -= (size_t)(nl + 1 - exp);
					exp = nl + 1;
				}
			}
			unsigned eop = o.binary ? 0x2 : 0x1;
			if (op != eop) {
				conn_fail(c, &g.e_verify, "echo %" PRIu64 " has opcode %u, sent %u", c->rcvd, op, eop);
				return;
			}
			if (len != elen) {
				conn_fail(c, &g.e_verify, "echo %" PRIu64 " has %zu bytes, sent %zu", c->rcvd, len, elen);
				return;
			}
			if ((o.verify == V_EXACT || o.verify == V_BODY) && memcmp(m, exp, len) != 0) {
				size_t at = 0;
				while (at < len && m[at] == exp[at])
					at++;
				conn_fail(c, &g.e_verify, "echo %" PRIu64 " differs from what was sent at byte %zu of %zu",
					  c->rcvd, at, len);
				return;
			}
		}
		if (g.measuring) {
			h_add(&g.lat, now - c->ts[c->rcvd & g.tsmask]);
			g.msgs++;
			g.bytes += len;
		}
		c->rcvd++;
		if (g.sending)
			send_msg(c, now);
		return;
	}
	case R_SUB: {
		/* Publishers embed "@t=<ns since start>@"; the route may wrap
		 * the message (add a sender, a room), so look for the marker. */
		const uint8_t *p = memmem(m, len, "@t=", 3);
		if (!p) {
			g.unexpected++;
			return;
		}
		uint64_t t = 0;
		for (p += 3; p < m + len && *p >= '0' && *p <= '9'; p++)
			t = t * 10 + (uint64_t)(*p - '0');
		if (g.pub_t_lo && t >= g.pub_t_lo && t <= g.pub_t_hi) {
			g.deliveries++;
			uint64_t at = now - g.t0;
			h_add(&g.lat, at > t ? at - t : 0);
		}
		return;
	}
	case R_PUB:
		return; /* a broadcast route may send publishers their own messages */
	default:
		if (c->st == C_OPEN)
			g.unexpected++;
		return;
	}
}

/* Inflates the compressed message IN into mbuf (RFC 7692 section 7.2.2). */
static int pmd_inflate(struct conn *c, const uint8_t *in, size_t n, const uint8_t **out, size_t *out_len)
{
	static const uint8_t tail[4] = { 0x00, 0x00, 0xff, 0xff };
	size_t have = 0;
	for (int part = 0; part < 2; part++) {
		c->zi->next_in = (uint8_t *)(part ? tail : in);
		c->zi->avail_in = (uInt)(part ? 4 : n);
		while (c->zi->avail_in || c->zi->avail_out == 0) {
			if (c->mcap - have < 4096) {
				size_t cap = c->mcap ? c->mcap * 2 : 65536;
				if (cap > MAX_MSG + 65536)
					return -1;
				c->mbuf = xrealloc(c->mbuf, cap);
				c->mcap = cap;
			}
			c->zi->next_out = c->mbuf + have;
			c->zi->avail_out = (uInt)(c->mcap - have);
			int r = inflate(c->zi, Z_SYNC_FLUSH);
			have = c->mcap - c->zi->avail_out;
			if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END)
				return -1;
			if (r == Z_BUF_ERROR && c->zi->avail_out)
				break;
		}
	}
	*out = c->mbuf;
	*out_len = have;
	return 0;
}

static void deliver(struct conn *c, unsigned op, bool comp, const uint8_t *m, size_t len, uint64_t now)
{
	if (comp) {
		if (pmd_inflate(c, m, len, &m, &len) < 0) {
			conn_fail(c, &g.e_proto, "compressed message does not inflate");
			return;
		}
	}
	on_message(c, op, m, len, now);
}

static void on_frame(struct conn *c, bool fin, unsigned rsv, unsigned op, const uint8_t *pl, size_t len,
		     uint64_t now)
{
	if (op >= 0x8) {
		if (!fin || len > 125 || rsv) {
			conn_fail(c, &g.e_proto, "bad control frame (op %u, fin %d, len %zu)", op, fin, len);
			return;
		}
		if (op == 0x8) {
			unsigned code = len >= 2 ? (unsigned)(pl[0] << 8 | pl[1]) : 1005;
			c->close_rcvd = true;
			if (!c->close_sent) {
				if (!c->close_expected && c->role != R_HS)
					note_err(&g.e_closed, c, "server closed the connection: %u %.*s", code,
						 (int)(len > 2 ? len - 2 : 0), (const char *)pl + 2);
				send_close(c, code == 1005 ? 1000 : (uint16_t)code);
			}
			return; /* the server closes TCP next (RFC 6455 section 7.1.1) */
		}
		if (op == 0x9) {
			if (!c->close_sent)
				send_frame(c, 0xA, false, pl, len);
			return;
		}
		if (op == 0xA)
			return;
		conn_fail(c, &g.e_proto, "reserved control opcode %u", op);
		return;
	}
	if ((rsv & 0x3) || ((rsv & 0x4) && (!c->pmd || op == 0))) {
		conn_fail(c, &g.e_proto, "reserved bits 0x%x set on opcode %u", rsv, op);
		return;
	}
	if (op == 0x1 || op == 0x2) {
		if (c->in_msg) {
			conn_fail(c, &g.e_proto, "new message before the previous one finished");
			return;
		}
		if (fin) {
			deliver(c, op, rsv & 0x4, pl, len, now);
			return;
		}
		c->in_msg = true;
		c->mop = (uint8_t)op;
		c->mcomp = rsv & 0x4;
		c->mlen = 0;
	} else if (op == 0x0) {
		if (!c->in_msg) {
			conn_fail(c, &g.e_proto, "continuation frame without a message");
			return;
		}
	} else {
		conn_fail(c, &g.e_proto, "reserved opcode %u", op);
		return;
	}
	if (c->mlen + len > MAX_MSG) {
		conn_fail(c, &g.e_proto, "message larger than %u bytes", MAX_MSG);
		return;
	}
	if (c->mcap < c->mlen + len) {
		size_t cap = c->mcap ? c->mcap : 65536;
		while (cap < c->mlen + len)
			cap *= 2;
		c->mbuf = xrealloc(c->mbuf, cap);
		c->mcap = cap;
	}
	memcpy(c->mbuf + c->mlen, pl, len);
	c->mlen += len;
	if (!fin)
		return;
	c->in_msg = false;
	if (c->mcomp) {
		/* inflate reuses mbuf as output: move the compressed bytes aside */
		uint8_t *tmp = xrealloc(NULL, c->mlen);
		memcpy(tmp, c->mbuf, c->mlen);
		deliver(c, c->mop, true, tmp, c->mlen, now);
		free(tmp);
	} else {
		on_message(c, c->mop, c->mbuf, c->mlen, now);
	}
}

/* Decodes every complete frame in rbuf. Server frames are never masked
 * (RFC 6455 section 5.1). */
static void parse_frames(struct conn *c, uint64_t now)
{
	size_t off = 0;
	while (c->st == C_OPEN || c->st == C_CLOSING) {
		size_t avail = c->rlen - off;
		const uint8_t *p = c->rbuf + off;
		if (avail < 2)
			break;
		if (p[1] & 0x80) {
			conn_fail(c, &g.e_proto, "server sent a masked frame");
			return;
		}
		uint64_t len = p[1] & 0x7f;
		size_t hl = 2;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			hl = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | p[2 + i];
			hl = 10;
		}
		if (len > MAX_MSG) {
			conn_fail(c, &g.e_proto, "frame of %" PRIu64 " bytes", len);
			return;
		}
		if (avail < hl + len) {
			if (c->rcap < hl + len) {
				/* make room for the whole frame (after compaction below) */
				memmove(c->rbuf, p, avail);
				c->rlen = avail;
				off = 0;
				c->rbuf = xrealloc(c->rbuf, hl + len);
				c->rcap = hl + len;
			}
			break;
		}
		off += hl + (size_t)len;
		on_frame(c, p[0] & 0x80, (p[0] >> 4) & 0x7, p[0] & 0x0f, p + hl, (size_t)len, now);
		if (c->st == C_DONE)
			return;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

/* ---------------- opening handshake ---------------- */

static void b64(const uint8_t *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void send_upgrade(struct conn *c)
{
	uint8_t k[16];
	for (int i = 0; i < 16; i += 8) {
		uint64_t r = wyrand(&c->rng);
		memcpy(k + i, &r, 8);
	}
	b64(k, 16, c->key);
	const char *path = c->role == R_PUB && o.pub_path[0] ? o.pub_path : o.path;
	char req[2048];
	int n = snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
			 path, o.host, o.port, c->key, g.request_tail);
	memcpy(wreserve(c, (size_t)n), req, (size_t)n);
	c->wlen += (size_t)n;
	conn_set_state(c, C_UPGRADING);
	conn_flush(c);
}

/* Value of header NAME in the response head [h, end), or NULL. */
static const char *hdr_find(const char *h, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *line = memchr(h, '\n', (size_t)(end - h));
	while (line && line + 1 < end) {
		line++;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		if ((size_t)(eol - line) > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		line = eol;
	}
	return NULL;
}

static int pmd_setup(struct conn *c, const char *v, size_t vl)
{
	char ext[512];
	if (vl >= sizeof ext)
		return -1;
	memcpy(ext, v, vl);
	ext[vl] = 0;
	if (strncasecmp(ext, "permessage-deflate", 18) != 0)
		return -1;
	c->pmd_cnct = false;
	c->pmd_cbits = 15;
	for (char *save = NULL, *tok = strtok_r(ext + 18, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		while (*tok == ' ')
			tok++;
		if (strncasecmp(tok, "client_no_context_takeover", 26) == 0)
			c->pmd_cnct = true;
		else if (strncasecmp(tok, "client_max_window_bits", 22) == 0 && tok[22] == '=')
			c->pmd_cbits = (int)strtol(tok + 23, NULL, 10);
	}
	if (c->pmd_cbits < 8 || c->pmd_cbits > 15)
		return -1;
	/* zlib cannot produce a raw stream with an 8-bit window; 9 is what it
	 * uses instead, which a server honouring 8 could misread. */
	int bits = c->pmd_cbits < 9 ? 9 : c->pmd_cbits;
	if (!c->zd) {
		c->zd = xrealloc(NULL, sizeof *c->zd);
		c->zi = xrealloc(NULL, sizeof *c->zi);
		memset(c->zd, 0, sizeof *c->zd);
		memset(c->zi, 0, sizeof *c->zi);
		if (deflateInit2(c->zd, o.deflate_level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
		    inflateInit2(c->zi, -15) != Z_OK)
			return -1;
	} else {
		deflateReset(c->zd);
		inflateReset(c->zi);
	}
	c->pmd = true;
	return 0;
}

static void on_upgraded(struct conn *c, uint64_t now);

static void parse_upgrade(struct conn *c, uint64_t now)
{
	const char *h = (const char *)c->rbuf;
	const char *end = memmem(h, c->rlen, "\r\n\r\n", 4);
	if (!end) {
		if (c->rlen > 16384)
			conn_fail(c, &g.e_handshake, "response head larger than 16 KiB");
		return;
	}
	end += 4;
	if (c->rlen < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) {
		const char *eol = memchr(h, '\r', (size_t)(end - h));
		conn_fail(c, &g.e_handshake, "upgrade refused: %.*s", (int)(eol - h), h);
		return;
	}
	char src[64], want[32];
	uint8_t md[20];
	int kl = snprintf(src, sizeof src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
	EVP_Digest(src, (size_t)kl, md, NULL, EVP_sha1(), NULL);
	b64(md, 20, want);
	size_t vl;
	const char *v = hdr_find(h, end, "Sec-WebSocket-Accept", &vl);
	if (!v || vl != strlen(want) || memcmp(v, want, vl) != 0) {
		conn_fail(c, &g.e_handshake, "Sec-WebSocket-Accept is missing or wrong");
		return;
	}
	c->pmd = false;
	if (o.deflate) {
		v = hdr_find(h, end, "Sec-WebSocket-Extensions", &vl);
		if (v && pmd_setup(c, v, vl) < 0) {
			conn_fail(c, &g.e_handshake, "unusable extension answer: %.*s", (int)vl, v);
			return;
		}
		if (!v) {
			conn_fail(c, &g.e_handshake, "permessage-deflate offered but not accepted");
			return;
		}
	}
	size_t used = (size_t)(end - h);
	memmove(c->rbuf, c->rbuf + used, c->rlen - used);
	c->rlen -= used;
	if (c->ssl && o.tls_resume) {
		if (SSL_session_reused(c->ssl))
			g.tls_resumed++;
		else if (!g.sess)
			g.sess = SSL_get1_session(c->ssl);
	}
	conn_set_state(c, C_OPEN);
	on_upgraded(c, now);
	if (c->st == C_OPEN || c->st == C_CLOSING)
		parse_frames(c, now);
}

/* ---------------- connect ---------------- */

static void on_connected(struct conn *c);

static void conn_start(struct conn *c, enum role role)
{
	c->role = (uint8_t)role;
	c->close_sent = c->close_rcvd = c->close_expected = false;
	c->in_msg = false;
	c->pmd = false;
	c->rlen = c->wlen = c->woff = c->mlen = 0;
	c->sent = c->rcvd = 0;
	c->out_armed = true;
	c->t_start = mono_ns();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		c->fd = -1;
		conn_set_state(c, C_CONNECTING);
		conn_fail(c, &g.e_connect, "socket: %s", strerror(errno));
		return;
	}
	c->fd = fd;
	conn_set_state(c, C_CONNECTING);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (o.sources > 1) {
		/* Spread source addresses over 127.0.0.x so that more than one
		 * ephemeral-port range of connections can reach one server port;
		 * the port is picked at connect() time. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr.s_addr = htonl(0x7f000001u + g.src_rr++ % o.sources);
		if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
			conn_fail(c, &g.e_connect, "bind 127.0.0.x: %s", strerror(errno));
			return;
		}
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		conn_fail(c, &g.e_connect, "epoll_ctl: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&g.dst, sizeof g.dst) == 0) {
		on_connected(c); /* loopback often connects at once: skip the wake-up */
		return;
	}
	if (errno != EINPROGRESS)
		conn_fail(c, &g.e_connect, "connect: %s", strerror(errno));
}

static void tls_step(struct conn *c)
{
	ERR_clear_error();
	int r = SSL_connect(c->ssl);
	if (r == 1) {
		ep_mod(c, false);
		send_upgrade(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		ep_mod(c, false);
	} else if (e == SSL_ERROR_WANT_WRITE) {
		ep_mod(c, true);
	} else {
		char buf[256];
		ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
		conn_fail(c, &g.e_handshake, "TLS handshake: %s", buf);
	}
}

static void on_connected(struct conn *c)
{
	int err = 0;
	socklen_t el = sizeof err;
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		conn_fail(c, &g.e_connect, "connect: %s", strerror(err));
		return;
	}
	if (!o.tls) {
		ep_mod(c, false);
		send_upgrade(c);
		return;
	}
	c->ssl = SSL_new(g.ssl_ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	if (o.tls_resume && g.sess)
		SSL_set_session(c->ssl, g.sess);
	conn_set_state(c, C_TLS);
	tls_step(c);
}

/* ---------------- reading ---------------- */

static void on_readable(struct conn *c, uint64_t now)
{
	/* TLS hands out one record per SSL_read and may hold more records
	 * than the socket shows, so it is read until OpenSSL holds none. */
	for (int round = 0; round < 64; round++) {
		if (c->rcap - c->rlen < 2048) {
			size_t cap = c->rcap ? c->rcap * 2 : 4096;
			c->rbuf = xrealloc(c->rbuf, cap);
			c->rcap = cap;
		}
		size_t room = c->rcap - c->rlen;
		ssize_t n = tr_recv(c, c->rbuf + c->rlen, room);
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			if (c->st == C_CLOSING && (c->close_rcvd || c->close_expected)) {
				conn_drop(c); /* the server closed TCP after the close handshake */
			} else if (n == 0) {
				conn_fail(c, c->st == C_UPGRADING ? &g.e_handshake : &g.e_closed,
					  "server closed TCP without a close frame (during %s)", state_names[c->st]);
			} else {
				conn_fail(c, &g.e_io, "recv: %s", strerror((int)-n));
			}
			return;
		}
		c->rlen += (size_t)n;
		if (c->st == C_UPGRADING)
			parse_upgrade(c, now);
		else
			parse_frames(c, now);
		if (c->st == C_DONE)
			return;
		/* Less than asked for: the socket is empty. With TLS, OpenSSL
		 * may still hold whole records it read ahead. */
		if (c->ssl ? !SSL_has_pending(c->ssl) : (size_t)n < room)
			break;
	}
	conn_flush(c);
}

/* ---------------- per-mode behaviour ---------------- */

static void on_upgraded(struct conn *c, uint64_t now)
{
	switch (c->role) {
	case R_ECHO:
		if (g.sending) {
			for (unsigned i = 0; i < o.inflight; i++)
				send_msg(c, now);
		}
		break;
	case R_HS:
		g.hs_ok++;
		if (g.measuring) {
			g.hs_done++;
			h_add(&g.lat, now - c->t_start);
		}
		c->close_expected = true;
		send_close(c, 1000);
		break;
	case R_SUB:
	case R_PUB:
		if (o.join[0]) {
			/* {I} becomes the connection's index (e.g. a unique nick) */
			char jb[sizeof o.join + 16];
			size_t jl = 0;
			for (const char *p = o.join; *p && jl < sizeof jb - 12;) {
				if (strncmp(p, "{I}", 3) == 0) {
					jl += (size_t)snprintf(jb + jl, 12, "%u", c->idx);
					p += 3;
				} else {
					jb[jl++] = *p++;
				}
			}
			const uint8_t *pl = (const uint8_t *)jb;
			if (c->pmd)
				pl = pmd_compress(c, pl, jl, &jl);
			send_frame(c, 0x1, c->pmd, pl, jl);
		}
		break;
	default:
		break;
	}
	conn_flush(c);
}

static void on_event(struct conn *c, uint32_t ev)
{
	uint64_t now = mono_ns();
	if (c->st == C_CONNECTING) {
		on_connected(c);
		return;
	}
	if (c->st == C_TLS) {
		tls_step(c);
		return;
	}
	if (c->st != C_UPGRADING && c->st != C_OPEN && c->st != C_CLOSING)
		return;
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR) || (c->ssl && (ev & EPOLLOUT)))
		on_readable(c, now);
	if (c->st != C_DONE && (ev & EPOLLOUT))
		conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void loop_once(int timeout_ms)
{
	static struct epoll_event evs[1024];
	int n = epoll_wait(g.ep, evs, 1024, timeout_ms);
	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr, evs[i].events);
}

static uint64_t last_scan;

/* Handshake deadlines and close deadlines; every 100 ms at most, so the
 * scan of all connections costs nothing per message. */
static void scan_timeouts(uint64_t now)
{
	if (now - last_scan < SCAN_EVERY_NS)
		return;
	last_scan = now;
	uint64_t hs_to = (uint64_t)(o.connect_timeout * 1e9);
	for (unsigned i = 0; i < g.nconn; i++) {
		struct conn *c = &g.c[i];
		/* a slot restarted after NOW was taken has t_start > now */
		if ((c->st == C_CONNECTING || c->st == C_TLS || c->st == C_UPGRADING) && now > c->t_start &&
		    now - c->t_start > hs_to) {
			conn_fail(c, &g.e_timeout, "no upgrade within %.0f s (stuck in %s)", o.connect_timeout,
				  state_names[c->st]);
		} else if (c->st == C_CLOSING && now > c->t_close && now - c->t_close > CLOSE_WAIT_NS) {
			g.slow_close++;
			conn_drop(c);
		}
	}
}

/* Starts connections of ROLE on slots [from, to) with at most
 * connect_concurrency handshakes in progress, until all are open or have
 * failed or DEADLINE passes. */
static void open_all(unsigned from, unsigned to, enum role role, uint64_t deadline)
{
	unsigned next = from;
	for (;;) {
		uint64_t now = mono_ns();
		while (next < to && g.pending < o.connect_concurrency)
			conn_start(&g.c[next++], role);
		if (next == to && g.pending == 0)
			return;
		if (now > deadline) {
			fprintf(stderr, "mbgw-bench: connect phase deadline passed with %u of %u started\n", next - from,
				to - from);
			return;
		}
		loop_once(10);
		scan_timeouts(mono_ns());
	}
}

/* Runs the loop until DEADLINE (also restarting handshake loops and
 * publishing, which are time-driven). */
static void run_until(uint64_t deadline)
{
	double pub_gap = o.rate > 0 ? 1e9 / o.rate : 0;
	for (;;) {
		uint64_t now = mono_ns();
		if (now >= deadline)
			return;
		int tmo = (int)((deadline - now) / 1000000) + 1;
		if (tmo > 10)
			tmo = 10;
		if (o.mode == M_BROADCAST && g.sending)
			tmo = 1;
		loop_once(tmo);
		now = mono_ns();
		if (o.mode == M_HANDSHAKE && g.restart_hs && errors_total() > 1000 && g.hs_ok == 0) {
			fprintf(stderr, "mbgw-bench: over 1000 failures and no handshake completed: giving up\n");
			g.restart_hs = false;
			return;
		}
		if (o.mode == M_HANDSHAKE && g.restart_hs) {
			for (unsigned i = 0; i < g.nconn; i++)
				if (g.c[i].st == C_DONE)
					conn_start(&g.c[i], R_HS);
		}
		if (o.mode == M_BROADCAST && g.sending) {
			for (unsigned i = o.subscribers; i < g.nconn; i++) {
				struct conn *c = &g.c[i];
				if (c->st != C_OPEN)
					continue;
				if (!c->next_pub)
					c->next_pub = now;
				/* Bounded catch-up: a stalled loop does not burst. */
				for (int k = 0; k < 64 && c->next_pub <= now; k++) {
					send_pub(c, now);
					c->next_pub += (uint64_t)pub_gap;
				}
				if (c->next_pub + 100000000ull < now)
					c->next_pub = now;
				conn_flush(c);
			}
		}
		scan_timeouts(now);
	}
}

/* Sends a close to every open connection and waits (bounded) for the
 * servers to finish the close handshake. */
static void close_all(void)
{
	g.sending = false;
	g.restart_hs = false;
	for (unsigned i = 0; i < g.nconn; i++) {
		struct conn *c = &g.c[i];
		c->close_expected = true;
		if (c->st == C_OPEN) {
			send_close(c, 1000);
			conn_flush(c);
		}
	}
	uint64_t deadline = mono_ns() + CLOSE_WAIT_NS + SCAN_EVERY_NS * 2;
	while (mono_ns() < deadline) {
		bool busy = false;
		for (unsigned i = 0; i < g.nconn && !busy; i++)
			busy = g.c[i].st != C_DONE && g.c[i].st != C_FREE;
		if (!busy)
			break;
		loop_once(10);
		scan_timeouts(mono_ns());
	}
	for (unsigned i = 0; i < g.nconn; i++) {
		if (g.c[i].st != C_DONE && g.c[i].st != C_FREE) {
			/* pending handshakes cut by the end of the run are not errors */
			conn_drop(&g.c[i]);
		}
	}
}

struct snap {
	uint64_t t;
	double self, srv;
};

static struct snap snap_take(void)
{
	struct snap s = { mono_ns(), self_cpu_s(), proc_cpu_s(o.server_pid) };
	return s;
}

static void measure_begin(struct snap *s)
{
	g.msgs = g.bytes = g.hs_done = g.deliveries = g.published = g.unexpected = 0;
	g.pub_t_lo = g.pub_t_hi = 0;
	memset(&g.lat, 0, sizeof g.lat);
	g.subs_open = 0;
	for (unsigned i = 0; i < g.nconn; i++)
		g.subs_open += g.c[i].role == R_SUB && g.c[i].st == C_OPEN;
	g.measuring = true;
	*s = snap_take();
}

static void fmt_ns(char *out, size_t n, uint64_t ns)
{
	if (ns < 10000)
		snprintf(out, n, "%.2f us", ns / 1e3);
	else if (ns < 10000000)
		snprintf(out, n, "%.0f us", ns / 1e3);
	else
		snprintf(out, n, "%.1f ms", ns / 1e6);
}

/* ------------------------------------------------------------------ */
/* command line                                                        */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mbgw-bench MODE [options]\n"
		"modes:\n"
		"  echo        -c conns, -s size, -i in-flight per connection, --binary\n"
		"  latency     echo with 1 connection and 1 message in flight\n"
		"  handshake   --loops C concurrent connect -> upgrade -> close loops\n"
		"  idle        open -c conns and hold them --seconds; needs --server-pid\n"
		"  broadcast   --subscribers S --publishers P --rate R (msgs/s per publisher)\n"
		"options:\n"
		"  --url URL               ws:// or wss://127.x.x.x:PORT/PATH (default ws://127.0.0.1:8080/ws)\n"
		"  -c, --conns N           connections (echo, idle; default 100)\n"
		"  -s, --size BYTES        message size (default 32)\n"
		"  -i, --inflight K        messages in flight per connection (default 1)\n"
		"  --text | --binary       frame type (default text)\n"
		"  --format raw|hj         raw payload, or a header+JSON message 'echo id=N\\n{\"d\":\"...\"}'\n"
		"  --verify exact|body|length|none  how echoes are checked (default exact; body: the\n"
		"                          reply is what was sent after its first line, as a header+JSON\n"
		"                          route's echo plugin answers)\n"
		"  -d, --seconds S         measured duration (default 10)\n"
		"  -w, --warmup S          warm-up before measuring (default 2)\n"
		"  --server-pid PID        read the server's CPU and RSS from /proc/PID\n"
		"  --label NAME            name echoed in the RESULT line\n"
		"  --sources K             spread source addresses over 127.0.0.1..K (default 8)\n"
		"  --connect-concurrency N handshakes in progress at once (default 256)\n"
		"  --connect-timeout S     per-connection upgrade deadline (default 10 + conns/1000)\n"
		"  --deflate               offer permessage-deflate and compress every message\n"
		"  --deflate-level N       zlib level for what we send (default 1)\n"
		"  --tls-resume            resume TLS sessions in handshake mode\n"
		"  --subprotocol NAME      send Sec-WebSocket-Protocol\n"
		"  --pub-path PATH         publishers connect here (default: the URL's path)\n"
		"  --pub-template STR      a published message; {T} becomes a time stamp marker, {PAD} filler\n"
		"                          up to --size (default '{\"t\":\"{T}\",\"x\":\"{PAD}\"}'; \\n allowed)\n"
		"  --settle S              broadcast: wait at most S s for join traffic to stop (default 120)\n"
		"  --join STR              message subscribers and publishers send once open ({I}: the\n"
		"                          connection's index, e.g. for a unique nick; \\n allowed)\n"
		"  --quiet                 only the RESULT line\n"
		"The last line of output is 'RESULT key=value ...' for scripts.\n");
}

static void unescape(char *dst, size_t cap, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src[i] && j + 1 < cap; i++) {
		if (src[i] == '\\' && src[i + 1] == 'n') {
			dst[j++] = '\n';
			i++;
		} else {
			dst[j++] = src[i];
		}
	}
	dst[j] = 0;
}

static int parse_url(const char *url)
{
	const char *p;
	if (strncmp(url, "ws://", 5) == 0) {
		o.tls = false;
		p = url + 5;
	} else if (strncmp(url, "wss://", 6) == 0) {
		o.tls = true;
		p = url + 6;
	} else {
		return -1;
	}
	const char *colon = strchr(p, ':');
	const char *slash = strchr(p, '/');
	if (!colon || (slash && slash < colon) || (size_t)(colon - p) >= sizeof o.host)
		return -1;
	memcpy(o.host, p, (size_t)(colon - p));
	o.host[colon - p] = 0;
	long port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	o.port = (uint16_t)port;
	snprintf(o.path, sizeof o.path, "%s", slash ? slash : "/");
	if (strcmp(o.host, "localhost") == 0)
		snprintf(o.host, sizeof o.host, "127.0.0.1");
	return 0;
}

static double num_arg(const char *name, const char *v)
{
	char *end;
	double d = strtod(v ? v : "", &end);
	if (!v || *end || d < 0) {
		fprintf(stderr, "mbgw-bench: %s wants a non-negative number\n", name);
		exit(2);
	}
	return d;
}

static void parse_args(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		exit(argc < 2 ? 2 : 0);
	}
	bool found = false;
	for (unsigned m = 0; m < sizeof mode_names / sizeof *mode_names; m++) {
		if (strcmp(argv[1], mode_names[m]) == 0) {
			o.mode = (enum mode)m;
			found = true;
		}
	}
	if (!found) {
		fprintf(stderr, "mbgw-bench: unknown mode '%s'\n", argv[1]);
		usage(stderr);
		exit(2);
	}
	bool conns_set = false;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s) (strcmp(a, s) == 0)
#define TAKE() (i++, v)
		bool flag = IS("--binary") || IS("--text") || IS("--deflate") || IS("--tls-resume") || IS("--quiet") ||
			    IS("-h") || IS("--help");
		if (!flag && !v) {
			fprintf(stderr, "mbgw-bench: %s wants a value\n", a);
			exit(2);
		}
		if (IS("--url")) {
			if (!v || parse_url(TAKE()) < 0) {
				fprintf(stderr, "mbgw-bench: --url wants ws://HOST:PORT/PATH or wss://...\n");
				exit(2);
			}
		} else if (IS("-c") || IS("--conns")) {
			o.conns = (unsigned)num_arg(a, TAKE());
			conns_set = true;
		} else if (IS("-s") || IS("--size")) {
			o.size = (unsigned)num_arg(a, TAKE());
		} else if (IS("-i") || IS("--inflight")) {
			o.inflight = (unsigned)num_arg(a, TAKE());
		} else if (IS("--binary")) {
			o.binary = true;
		} else if (IS("--text")) {
			o.binary = false;
		} else if (IS("--format")) {
			const char *f = TAKE();
			if (f && strcmp(f, "raw") == 0)
				o.fmt = F_RAW;
			else if (f && strcmp(f, "hj") == 0)
				o.fmt = F_HJ;
			else {
				fprintf(stderr, "mbgw-bench: --format raw|hj\n");
				exit(2);
			}
		} else if (IS("--verify")) {
			const char *f = TAKE();
			if (f && strcmp(f, "exact") == 0)
				o.verify = V_EXACT;
			else if (f && strcmp(f, "body") == 0)
				o.verify = V_BODY;
			else if (f && strcmp(f, "length") == 0)
				o.verify = V_LENGTH;
			else if (f && strcmp(f, "none") == 0)
				o.verify = V_NONE;
			else {
				fprintf(stderr, "mbgw-bench: --verify exact|body|length|none\n");
				exit(2);
			}
		} else if (IS("-d") || IS("--seconds")) {
			o.seconds = num_arg(a, TAKE());
		} else if (IS("-w") || IS("--warmup")) {
			o.warmup = num_arg(a, TAKE());
		} else if (IS("--server-pid")) {
			o.server_pid = (int)num_arg(a, TAKE());
		} else if (IS("--label")) {
			o.label = TAKE();
		} else if (IS("--loops")) {
			o.loops = (unsigned)num_arg(a, TAKE());
		} else if (IS("--sources")) {
			o.sources = (unsigned)num_arg(a, TAKE());
		} else if (IS("--connect-concurrency")) {
			o.connect_concurrency = (unsigned)num_arg(a, TAKE());
		} else if (IS("--connect-timeout")) {
			o.connect_timeout = num_arg(a, TAKE());
		} else if (IS("--subscribers")) {
			o.subscribers = (unsigned)num_arg(a, TAKE());
		} else if (IS("--settle")) {
			o.settle = num_arg(a, TAKE());
		} else if (IS("--publishers")) {
			o.publishers = (unsigned)num_arg(a, TAKE());
		} else if (IS("--rate")) {
			o.rate = num_arg(a, TAKE());
		} else if (IS("--deflate")) {
			o.deflate = true;
		} else if (IS("--deflate-level")) {
			o.deflate_level = (int)num_arg(a, TAKE());
		} else if (IS("--tls-resume")) {
			o.tls_resume = true;
		} else if (IS("--subprotocol")) {
			o.subprotocol = TAKE();
		} else if (IS("--pub-path")) {
			snprintf(o.pub_path, sizeof o.pub_path, "%s", TAKE());
		} else if (IS("--pub-template")) {
			unescape(o.pub_template, sizeof o.pub_template, TAKE());
		} else if (IS("--join")) {
			unescape(o.join, sizeof o.join, TAKE());
		} else if (IS("--quiet")) {
			o.quiet = true;
		} else if (IS("-h") || IS("--help")) {
			usage(stdout);
			exit(0);
		} else {
			fprintf(stderr, "mbgw-bench: unknown option '%s'\n", a);
			exit(2);
		}
#undef IS
#undef TAKE
	}
	if (o.mode == M_LATENCY) {
		o.conns = 1;
		o.inflight = 1;
	}
	if (o.mode == M_IDLE && !conns_set)
		o.conns = 10000;
	if (o.inflight < 1 || o.inflight > 65536 || o.size > MAX_MSG || o.deflate_level > 9) {
		fprintf(stderr, "mbgw-bench: in-flight must be 1..65536, size at most %u, level 0..9\n", MAX_MSG);
		exit(2);
	}
	if (o.sources < 1 || o.sources > 250)
		o.sources = 1;
	if (o.connect_concurrency < 1)
		o.connect_concurrency = 1;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);

	struct in_addr ia;
	if (inet_pton(AF_INET, o.host, &ia) != 1 || (ntohl(ia.s_addr) >> 24) != 127) {
		fprintf(stderr, "mbgw-bench: only loopback targets (127.0.0.0/8) are allowed, not '%s'\n", o.host);
		return 2;
	}
	g.dst.sin_family = AF_INET;
	g.dst.sin_port = htons(o.port);
	g.dst.sin_addr = ia;

	switch (o.mode) {
	case M_ECHO:
	case M_LATENCY:
	case M_IDLE:
		g.nconn = o.conns;
		break;
	case M_HANDSHAKE:
		g.nconn = o.loops;
		break;
	case M_BROADCAST:
		g.nconn = o.subscribers + o.publishers;
		break;
	}
	if (g.nconn < 1) {
		fprintf(stderr, "mbgw-bench: nothing to do with 0 connections\n");
		return 2;
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rlim_t)g.nconn + 16 > rl.rlim_cur) {
		fprintf(stderr,
			"mbgw-bench: %u connections need %u file descriptors; this process may have %llu "
			"(the server needs as many too)\n",
			g.nconn, g.nconn + 16, (unsigned long long)rl.rlim_cur);
		return 2;
	}
	if (o.connect_timeout <= 0)
		o.connect_timeout = 10 + g.nconn / 1000.0;
	if (o.mode == M_IDLE && o.server_pid <= 0)
		fprintf(stderr, "mbgw-bench: idle mode without --server-pid reports no memory figure\n");

	/* Backstop: whatever happens, the process ends. */
	double budget = 2 * o.connect_timeout + o.warmup + o.seconds + 3 + 2 * CLOSE_WAIT_NS / 1e9 + 30 +
			(o.mode == M_BROADCAST ? 2 * o.settle + 3 : 0);
	alarm((unsigned)budget);

	g.ep = epoll_create1(EPOLL_CLOEXEC);
	g.c = calloc(g.nconn, sizeof *g.c);
	if (!g.c || g.ep < 0) {
		perror("mbgw-bench: setup");
		return 2;
	}
	unsigned cap = 1;
	while (cap < o.inflight)
		cap <<= 1;
	g.tsmask = cap - 1;
	for (unsigned i = 0; i < g.nconn; i++) {
		g.c[i].fd = -1;
		g.c[i].idx = i;
		g.c[i].rng = seed64();
		if (o.mode == M_ECHO || o.mode == M_LATENCY)
			g.c[i].ts = xrealloc(NULL, cap * sizeof(uint64_t));
	}
	pool_init();
	int tl = 0;
	if (o.subprotocol)
		tl += snprintf(g.request_tail + tl, sizeof g.request_tail - (size_t)tl, "Sec-WebSocket-Protocol: %s\r\n",
			       o.subprotocol);
	if (o.deflate)
		snprintf(g.request_tail + tl, sizeof g.request_tail - (size_t)tl,
			 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
	if (o.tls) {
		g.ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!g.ssl_ctx) {
			fprintf(stderr, "mbgw-bench: SSL_CTX_new failed\n");
			return 2;
		}
		/* Benchmark against a test certificate on loopback: no verification. */
		SSL_CTX_set_verify(g.ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(g.ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_read_ahead(g.ssl_ctx, 1); /* one read() per batch of records */
		SSL_CTX_set_session_cache_mode(g.ssl_ctx, SSL_SESS_CACHE_CLIENT);
	}

	const char *scheme = o.tls ? "wss" : "ws";
	if (!o.quiet) {
		printf("mbgw-bench %s %s://%s:%u%s  label=%s", mode_names[o.mode], scheme, o.host, o.port, o.path,
		       o.label);
		if (o.mode == M_ECHO || o.mode == M_LATENCY)
			printf("  conns=%u size=%u %s in-flight=%u%s%s", o.conns, o.size, o.binary ? "binary" : "text",
			       o.inflight, o.fmt == F_HJ ? " header+json" : "", o.deflate ? " deflate" : "");
		else if (o.mode == M_HANDSHAKE)
			printf("  loops=%u", o.loops);
		else if (o.mode == M_IDLE)
			printf("  conns=%u sources=%u", o.conns, o.sources);
		else
			printf("  subscribers=%u publishers=%u rate=%.0f/s size=%u", o.subscribers, o.publishers, o.rate,
			       o.size);
		printf("\n");
		fflush(stdout);
	}

	g.t0 = mono_ns();
	uint64_t t_connect = 0, t_settle = 0, settle_msgs = 0;
	long rss_base = -1, rss_open = -1, rss_end = -1;
	unsigned opened = 0;
	struct snap s0 = { 0 }, s1 = { 0 };
	uint64_t cto = (uint64_t)(o.connect_timeout * 1e9) + 5000000000ull;

	switch (o.mode) {
	case M_ECHO:
	case M_LATENCY:
		open_all(0, g.nconn, R_ECHO, mono_ns() + cto);
		opened = g.open;
		t_connect = mono_ns() - g.t0;
		g.sending = true;
		for (unsigned i = 0; i < g.nconn; i++) {
			if (g.c[i].st == C_OPEN) {
				on_upgraded(&g.c[i], mono_ns());
			}
		}
		run_until(mono_ns() + (uint64_t)(o.warmup * 1e9));
		measure_begin(&s0);
		run_until(s0.t + (uint64_t)(o.seconds * 1e9));
		s1 = snap_take();
		g.measuring = false;
		break;
	case M_HANDSHAKE:
		g.restart_hs = true;
		for (unsigned i = 0; i < g.nconn; i++)
			conn_start(&g.c[i], R_HS);
		run_until(mono_ns() + (uint64_t)(o.warmup * 1e9));
		measure_begin(&s0);
		run_until(s0.t + (uint64_t)(o.seconds * 1e9));
		s1 = snap_take();
		g.measuring = false;
		opened = o.loops;
		break;
	case M_IDLE:
		rss_base = proc_rss_kib(o.server_pid);
		open_all(0, g.nconn, R_IDLE, mono_ns() + cto);
		t_connect = mono_ns() - g.t0;
		opened = g.open;
		run_until(mono_ns() + 1000000000ull); /* let the server settle */
		rss_open = proc_rss_kib(o.server_pid);
		/* CPU is measured over the hold only: what idle connections cost */
		s0 = snap_take();
		g.measuring = true;
		run_until(mono_ns() + (uint64_t)(o.seconds * 1e9));
		rss_end = proc_rss_kib(o.server_pid);
		s1 = snap_take();
		if (g.open < opened && !o.quiet)
			fprintf(stderr, "mbgw-bench: %u of %u idle connections were lost while holding\n",
				opened - g.open, opened);
		g.measuring = false;
		break;
	case M_BROADCAST:
		/* joins may cost the server O(members) each: allow for it */
		open_all(0, o.subscribers, R_SUB, mono_ns() + cto + (uint64_t)(o.settle * 1e9));
		open_all(o.subscribers, g.nconn, R_PUB, mono_ns() + cto);
		opened = g.open;
		t_connect = mono_ns() - g.t0;
		/* Joins take effect; a route with presence may then send every
		 * member a notice per join, so wait until that traffic is over
		 * (quiet for 500 ms, at most --settle seconds). */
		{
			uint64_t settle_end = mono_ns() + (uint64_t)(o.settle * 1e9);
			uint64_t last = ~0ull, quiet_since = mono_ns();
			run_until(mono_ns() + 200000000ull);
			while (mono_ns() < settle_end) {
				run_until(mono_ns() + 100000000ull);
				if (g.unexpected != last) {
					last = g.unexpected;
					quiet_since = mono_ns();
				} else if (mono_ns() - quiet_since >= 500000000ull) {
					break;
				}
			}
			t_settle = mono_ns() - g.t0 - t_connect;
			settle_msgs = g.unexpected;
		}
		g.sending = true;
		run_until(mono_ns() + (uint64_t)(o.warmup * 1e9));
		measure_begin(&s0);
		run_until(s0.t + (uint64_t)(o.seconds * 1e9));
		g.sending = false;
		s1 = snap_take();
		run_until(mono_ns() + 2000000000ull); /* deliveries still on their way */
		g.measuring = false;
		break;
	}
	uint64_t still_open = g.open;
	close_all();

	double wall = (double)(s1.t - s0.t) / 1e9;
	double gen_cpu = s1.self - s0.self;
	double srv_cpu = (s0.srv >= 0 && s1.srv >= 0) ? s1.srv - s0.srv : -1;
	if (o.server_pid > 0 && s1.srv < 0)
		note_err(&g.e_closed, NULL, "server process %d is gone", o.server_pid);
	uint64_t units = o.mode == M_HANDSHAKE ? g.hs_done : o.mode == M_BROADCAST ? g.deliveries : g.msgs;
	double rate = wall > 0 ? (double)units / wall : 0;
	double mbs = wall > 0 ? (double)g.bytes / wall / 1e6 : 0;
	double srv_per_m = srv_cpu >= 0 && units ? srv_cpu / ((double)units / 1e6) : -1;
	double gen_per_m = units ? gen_cpu / ((double)units / 1e6) : -1;
	uint64_t p50 = h_pct(&g.lat, 0.50), p99 = h_pct(&g.lat, 0.99), p999 = h_pct(&g.lat, 0.999);
	double rss_per_conn = -1;
	if (rss_end >= 0 && rss_base >= 0 && opened)
		rss_per_conn = (double)(rss_end - rss_base) * 1024.0 / opened;

	if (!o.quiet) {
		char a[32], b[32], c[32], d[32];
		fmt_ns(a, sizeof a, p50);
		fmt_ns(b, sizeof b, p99);
		fmt_ns(c, sizeof c, p999);
		fmt_ns(d, sizeof d, g.lat.max);
		if (o.mode != M_HANDSHAKE)
			printf("  connected  %u/%u in %.2f s\n", opened, g.nconn, t_connect / 1e9);
		if (o.mode == M_BROADCAST)
			printf("  settled    in %.2f s after %" PRIu64 " messages that were not publications (joins, presence)\n",
			       t_settle / 1e9, settle_msgs);
		printf("  measured   %.2f s%s\n", wall, o.mode == M_IDLE ? " (holding)" : "");
		switch (o.mode) {
		case M_ECHO:
		case M_LATENCY:
			printf("  echoes     %" PRIu64 "  (%.0f msg/s, %.2f MB/s of payload each way)\n", g.msgs, rate, mbs);
			printf("  latency    p50 %s  p99 %s  p99.9 %s  max %s\n", a, b, c, d);
			break;
		case M_HANDSHAKE:
			printf("  handshakes %" PRIu64 "  (%.0f /s)  connect->101 p50 %s  p99 %s  p99.9 %s\n", g.hs_done,
			       rate, a, b, c);
			if (g.slow_close)
				printf("  close      %" PRIu64 " servers did not close TCP within 2 s of the close handshake\n",
				       g.slow_close);
			if (o.tls_resume)
				printf("  tls        %" PRIu64 " sessions resumed\n", g.tls_resumed);
			break;
		case M_IDLE:
			printf("  server RSS %ld KiB before, %ld KiB after connecting, %ld KiB after holding\n", rss_base,
			       rss_open, rss_end);
			if (rss_per_conn >= 0)
				printf("  per conn   %.0f bytes of server RSS per idle connection\n", rss_per_conn);
			break;
		case M_BROADCAST: {
			uint64_t exp = g.published * g.subs_open;
			printf("  published  %" PRIu64 "  delivered %" PRIu64 " of %" PRIu64 " (%.0f deliveries/s, %.3f%% lost)\n",
			       g.published, g.deliveries, exp, rate,
			       exp ? 100.0 * (double)(exp > g.deliveries ? exp - g.deliveries : 0) / (double)exp : 0.0);
			printf("  delivery   p50 %s  p99 %s  p99.9 %s  max %s\n", a, b, c, d);
			break;
		}
		}
		printf("  errors     %" PRIu64 " (connect %" PRIu64 ", handshake %" PRIu64 ", verify %" PRIu64
		       ", protocol %" PRIu64 ", closed %" PRIu64 ", timeout %" PRIu64 ", io %" PRIu64 ")",
		       errors_total(), g.e_connect, g.e_handshake, g.e_verify, g.e_proto, g.e_closed, g.e_timeout, g.e_io);
		if (g.unexpected)
			printf("; %" PRIu64 " unexpected messages", g.unexpected);
		printf("\n");
		printf("  cpu        generator %.2f s (%.0f%%)", gen_cpu, wall > 0 ? 100 * gen_cpu / wall : 0);
		if (srv_cpu >= 0)
			printf(", server %.2f s (%.0f%%)", srv_cpu, wall > 0 ? 100 * srv_cpu / wall : 0);
		if (units && o.mode != M_IDLE) {
			printf("; per million %s: generator %.2f s", o.mode == M_HANDSHAKE ? "handshakes" : "messages",
			       gen_per_m);
			if (srv_per_m >= 0)
				printf(", server %.2f s", srv_per_m);
		}
		printf("\n");
	}
	printf("RESULT mode=%s label=%s scheme=%s conns=%u size=%u inflight=%u binary=%d deflate=%d format=%s "
	       "loops=%u seconds=%.3f units=%" PRIu64 " rate=%.1f mb_s=%.3f p50_us=%.2f p99_us=%.2f p999_us=%.2f "
	       "max_us=%.2f errors=%" PRIu64 " gen_cpu_s=%.3f srv_cpu_s=%.3f gen_cpu_pct=%.1f srv_cpu_pct=%.1f "
	       "gen_cpu_s_per_M=%.3f srv_cpu_s_per_M=%.3f opened=%u still_open=%" PRIu64 " rss_base_kib=%ld "
	       "rss_end_kib=%ld rss_per_conn_b=%.1f published=%" PRIu64 " slow_close=%" PRIu64 " settle_s=%.2f "
	       "settle_msgs=%" PRIu64 " expected=%" PRIu64 "\n",
	       mode_names[o.mode], o.label, scheme, o.mode == M_HANDSHAKE ? o.loops : g.nconn, o.size, o.inflight,
	       o.binary, o.deflate, o.fmt == F_HJ ? "hj" : "raw", o.loops, wall, units, rate, mbs, p50 / 1e3,
	       p99 / 1e3, p999 / 1e3, g.lat.max / 1e3, errors_total(), gen_cpu, srv_cpu,
	       wall > 0 ? 100 * gen_cpu / wall : 0, srv_cpu >= 0 && wall > 0 ? 100 * srv_cpu / wall : -1, gen_per_m,
	       srv_per_m, opened, still_open, rss_base, rss_end, rss_per_conn, g.published, g.slow_close,
	       t_settle / 1e9, settle_msgs, g.published * g.subs_open);
	fflush(stdout);
	return errors_total() || (!units && o.mode != M_IDLE) || (o.mode == M_IDLE && opened < g.nconn) ? 1 : 0;
}
