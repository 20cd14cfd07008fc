/* ws_utf8 — incremental UTF-8 validation (RFC 3629, as RFC 6455 §8.1 needs).
 *
 * Text messages arrive in fragments and fragments arrive in pieces, so the
 * validator carries its state across calls and reports the first invalid
 * byte as soon as it is seen ("fail fast"), not at the end of the message.
 * Rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points
 * above U+10FFFF. Pure, no allocation, any thread.
 */
#ifndef MBGW_WS_UTF8_H
#define MBGW_WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws_utf8 {
	uint8_t need; /* continuation bytes still expected */
	uint8_t lo;   /* allowed range of the next continuation byte */
	uint8_t hi;
};

static inline void ws_utf8_init(struct ws_utf8 *u) { u->need = 0; u->lo = 0x80; u->hi = 0xBF; }

/* Feeds n bytes. Returns false at the first byte that can never be part of
 * valid UTF-8, whatever follows. */
bool ws_utf8_feed(struct ws_utf8 *u, const uint8_t *p, size_t n);

/* True when the bytes fed so far end on a character boundary. */
static inline bool ws_utf8_complete(const struct ws_utf8 *u) { return u->need == 0; }

/* One-shot check of a whole buffer. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

#endif
