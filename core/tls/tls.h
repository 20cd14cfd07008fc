/* tls — OpenSSL server contexts for TLS listeners (wss).
 *
 * Stage "[TLS decrypt]" of the message path, set-up half: builds the
 * SSL_CTX objects from [tls] (default certificate and policy) and
 * [tls NAME] (certificates chosen by SNI), checking everything an operator
 * can get wrong — missing files, unreadable or encrypted keys, a key that
 * does not match its certificate, a certificate outside its validity
 * dates, a bad CA file — and reporting it as "file:line: what".
 *
 * The contexts in force are swapped whole on reload; sessions already
 * established keep the context they started with (OpenSSL counts its
 * references), new handshakes use the new certificates.
 *
 * Thread safety: build/install on the main thread; tls_session_new on any
 * worker (takes a short lock to read the current context).
 */
#ifndef MBGW_TLS_H
#define MBGW_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "util/util_buf.h"

struct tls_ctx;

/* Builds contexts for c; relative file names are taken from conf_dir.
 * Returns NULL (errors appended, one line each) when c has no [tls]
 * section or something is wrong. */
struct tls_ctx *tls_ctx_build(const struct conf *c, const char *conf_dir, struct buf *errs);
/* Frees a context that was never installed. */
void tls_ctx_free(struct tls_ctx *t);

/* Makes t the context for new handshakes (taking ownership); the previous
 * one is freed once its sessions are gone. NULL clears. */
void tls_ctx_install(struct tls_ctx *t);

/* A new server session on fd with the current context, or NULL. */
SSL *tls_session_new(int fd);
/* Frees a session from tls_session_new. */
void tls_session_free(SSL *ssl);

/* Writes the verified client certificate's subject (RFC 2253) into out;
 * returns its length, or -1 if the client sent none. */
int tls_peer_subject(SSL *ssl, char *out, size_t cap);

/* The most recent OpenSSL error as text (for logs). */
const char *tls_error_text(void);

#endif
