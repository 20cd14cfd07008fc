/* transport — how a connection's bytes cross the socket: plain TCP, or
 * TLS through OpenSSL. The rest of the connection code sees one interface
 * (read, writev, handshake, shutdown) and never asks which one it has.
 *
 * TLS specifics handled here: a read may need the socket writable (and a
 * write readable) while OpenSSL exchanges handshake or key-update records;
 * we record that in c->tls_want_write / c->tls_want_read and the worker
 * waits for that event. Records are decrypted a whole record at a time,
 * so a read can leave plaintext buffered inside OpenSSL where epoll cannot
 * see it (read-ahead makes that common): transport_pending() tells the
 * caller to read again.
 * Worker thread only.
 */
#include "server/server.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tls/tls.h"
#include "util/util_log.h"

/* A TLS connection needs two record buffers (about 34 KB) while it
 * reads or writes. SSL_MODE_RELEASE_BUFFERS frees them whenever they
 * empty, which keeps idle connections small but costs a malloc and a
 * free per record each way: about a tenth of the TLS work for small
 * messages. So a connection that stays busy keeps its buffers: every
 * connection with TLS I/O is listed (by id, so a freed connection needs
 * no unlinking), its heat rises each TRANSPORT_TRIM_MS it stays busy,
 * and at heat 3 (busy through two whole periods, so a fresh connection
 * that only did its handshake never gets there) the release mode is
 * switched off until it has been quiet for a period. */
enum { HEAT_NONE, HEAT_LISTED, HEAT_WARM, HEAT_KEEPS };

static void note_busy(struct conn *c)
{
	c->tls_used = true;
	if (c->tls_heat != HEAT_NONE)
		return;
	struct worker *w = c->w;
	if (w->ntls_busy == w->tls_busy_cap) {
		size_t cap = w->tls_busy_cap ? w->tls_busy_cap * 2 : 64;
		uint64_t *p = realloc(w->tls_busy, cap * sizeof *p);
		if (!p)
			return; /* stays in release mode: only slower */
		w->tls_busy = p;
		w->tls_busy_cap = cap;
	}
	if (w->ntls_busy == 0)
		w->next_tls_trim_ms = w->now_ms + TRANSPORT_TRIM_MS;
	w->tls_busy[w->ntls_busy++] = c->id;
	c->tls_heat = HEAT_LISTED;
}

/* Back to release mode; false while a partial record or a write is
 * still buffered (tried again next period). */
static bool cool_down(struct conn *c)
{
	if (c->tls_heat == HEAT_KEEPS) {
		if (SSL_free_buffers(c->ssl) != 1)
			return false;
		SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	}
	c->tls_heat = HEAT_NONE;
	return true;
}

void transport_trim(struct worker *w)
{
	size_t keep = 0, released = 0;
	for (size_t i = 0; i < w->ntls_busy; i++) {
		struct conn *c = worker_find_conn(w, w->tls_busy[i]);
		if (!c || !c->ssl)
			continue; /* gone */
		if (c->tls_used) {
			c->tls_used = false;
			if (c->tls_heat < HEAT_KEEPS && ++c->tls_heat == HEAT_KEEPS)
				SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
		} else {
			bool kept = c->tls_heat == HEAT_KEEPS;
			if (cool_down(c)) {
				released += kept;
				continue;
			}
		}
		w->tls_busy[keep++] = c->id;
	}
	w->ntls_busy = keep;
	w->next_tls_trim_ms = w->now_ms + TRANSPORT_TRIM_MS;
#ifdef __GLIBC__
	/* Freed record buffers sit between live connections' memory, where
	 * glibc keeps them resident; hand their pages back once many went
	 * quiet together (a burst of busy connections turning idle). */
	if (released >= 32)
		malloc_trim(0);
#endif
}

void transport_worker_cleanup(struct worker *w)
{
	free(w->tls_busy);
	w->tls_busy = NULL;
	w->ntls_busy = w->tls_busy_cap = 0;
}

/* SSL_get_error() is only right if the thread's error queue was empty
 * before the call. Peeking is much cheaper than ERR_clear_error(), which
 * sweeps every slot of the queue, and the queue is almost always empty. */
static inline void ssl_errors_clear(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

/* Maps an SSL_get_error result to errno-style results. */
static ssize_t ssl_result(struct conn *c, int ret, bool reading)
{
	int e = SSL_get_error(c->ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		if (!reading)
			c->tls_want_read = true;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		if (reading) {
			c->tls_want_write = true;
			worker_update_events(c->w, c);
		}
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0; /* close_notify: a clean EOF */
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = ECONNRESET;
		ERR_clear_error();
		return -1;
	default:
		log_msg(LOG_DEBUG, c->id, "TLS error from %s: %s", conn_peer(c), tls_error_text());
		errno = EPROTO;
		return -1;
	}
}

ssize_t transport_read(struct conn *c, void *buf, size_t n)
{
	if (!c->ssl)
		return recv(c->fd, buf, n, 0);
	ssl_errors_clear();
	size_t got = 0;
	int r = SSL_read_ex(c->ssl, buf, n, &got);
	note_busy(c);
	c->tls_starved = r != 1 && SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_READ;
	if (r == 1)
		return (ssize_t)got;
	return ssl_result(c, 0, true);
}

bool transport_pending(const struct conn *c)
{
	/* With read-ahead OpenSSL may hold whole records the socket no longer
	 * shows, so epoll would never report them. SSL_has_pending() also
	 * counts a partial record, which cannot progress until more bytes
	 * arrive: once a read has said so, wait for epoll instead of
	 * spinning on it. */
	return c->ssl && !c->tls_starved && SSL_has_pending(c->ssl);
}

ssize_t transport_writev(struct conn *c, struct iovec *iov, int n)
{
	if (!c->ssl) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		/* MSG_NOSIGNAL: a peer that went away must not kill us (SIGPIPE).
		 * In LINGER these are the last bytes before our FIN (conn_flush
		 * shuts down once they are written): MSG_MORE holds the last
		 * partial segment back so that the FIN rides in it, one packet
		 * instead of two (the shutdown pushes it out at once). */
		int flags = MSG_NOSIGNAL | (c->state == CONN_LINGER ? MSG_MORE : 0);
		return sendmsg(c->fd, &mh, flags);
	}
	/* TLS has no writev: coalesce small segments into one record-sized
	 * write so many small frames do not become many small records. The
	 * same leading bytes are gathered again on a retry, as OpenSSL
	 * requires (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets them move). */
	uint8_t chunk[16384];
	const void *src = iov[0].iov_base;
	size_t len = iov[0].iov_len;
	if (len < sizeof chunk && n > 1) {
		len = 0;
		for (int i = 0; i < n && len < sizeof chunk; i++) {
			size_t take = iov[i].iov_len;
			if (take > sizeof chunk - len)
				take = sizeof chunk - len;
			memcpy(chunk + len, iov[i].iov_base, take);
			len += take;
		}
		src = chunk;
	}
	ssl_errors_clear();
	size_t written = 0;
	c->tls_want_read = false;
	note_busy(c);
	int r = SSL_write_ex(c->ssl, src, len, &written);
	if (r == 1)
		return (ssize_t)written;
	ssize_t rc = ssl_result(c, 0, false);
	return rc == 0 ? (errno = EPIPE, -1) : rc;
}

int transport_handshake(struct conn *c)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_want_write = false;
		return 1;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		c->tls_want_write = false;
		worker_update_events(c->w, c);
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = true;
		worker_update_events(c->w, c);
		return 0;
	}
	if (e == SSL_ERROR_SYSCALL && errno == 0 && SSL_in_before(c->ssl)) {
		/* Closed before sending anything (a port probe, a TCP health
		 * check): not a failed handshake. */
		ERR_clear_error();
		return -2;
	}
	const char *why = e == SSL_ERROR_SYSCALL ? (errno ? strerror(errno) : "connection closed")
						 : tls_error_text();
	log_msg(LOG_INFO, c->id, "TLS handshake with %s failed: %s", conn_peer(c), why);
	ERR_clear_error();
	return -1;
}

void transport_shutdown(struct conn *c)
{
	if (c->ssl) {
		/* close_notify (RFC 8446 §6.1), best effort: we do not wait for
		 * the peer's, the TCP FIN that follows ends the stream. */
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
	}
	shutdown(c->fd, SHUT_WR);
}

void transport_free(struct conn *c)
{
	if (c->ssl) {
		tls_session_free(c->ssl);
		c->ssl = NULL;
	}
}
