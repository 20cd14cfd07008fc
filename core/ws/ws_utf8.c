/* ws_utf8 — see ws_utf8.h.
 *
 * A small range machine: each lead byte fixes how many continuation bytes
 * follow and the allowed range of the first one (this is what excludes
 * overlong forms, surrogates and values above U+10FFFF); later
 * continuation bytes are always 0x80..0xBF. Runs of ASCII are skipped a
 * machine word at a time, which is the common case for JSON traffic.
 */
#include "ws/ws_utf8.h"

#include <string.h>

#define HIGH_BITS 0x8080808080808080ULL

bool ws_utf8_feed(struct ws_utf8 *u, const uint8_t *p, size_t n)
{
	if (n == 0)
		return true; /* also for p == NULL: no pointer arithmetic on NULL */
	const uint8_t *end = p + n;
	uint8_t need = u->need, lo = u->lo, hi = u->hi;

	while (p < end) {
		if (need == 0) {
			/* ASCII fast path, 8 bytes per step. */
			while (end - p >= 8) {
				uint64_t w;
				memcpy(&w, p, 8);
				if (w & HIGH_BITS)
					break;
				p += 8;
			}
			if (p == end)
				break;
			uint8_t b = *p++;
			if (b < 0x80)
				continue;
			if (b >= 0xC2 && b <= 0xDF) {
				need = 1; lo = 0x80; hi = 0xBF;
			} else if (b == 0xE0) {
				need = 2; lo = 0xA0; hi = 0xBF; /* no overlong 3-byte */
			} else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
				need = 2; lo = 0x80; hi = 0xBF;
			} else if (b == 0xED) {
				need = 2; lo = 0x80; hi = 0x9F; /* no surrogates */
			} else if (b == 0xF0) {
				need = 3; lo = 0x90; hi = 0xBF; /* no overlong 4-byte */
			} else if (b >= 0xF1 && b <= 0xF3) {
				need = 3; lo = 0x80; hi = 0xBF;
			} else if (b == 0xF4) {
				need = 3; lo = 0x80; hi = 0x8F; /* max U+10FFFF */
			} else {
				goto invalid; /* 0x80..0xC1 (stray/overlong), 0xF5..0xFF */
			}
		} else {
			uint8_t b = *p++;
			if (b < lo || b > hi)
				goto invalid;
			need--;
			lo = 0x80;
			hi = 0xBF;
		}
	}
	u->need = need; u->lo = lo; u->hi = hi;
	return true;
invalid:
	u->need = need; u->lo = lo; u->hi = hi;
	return false;
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
	struct ws_utf8 u;
	ws_utf8_init(&u);
	return ws_utf8_feed(&u, p, n) && ws_utf8_complete(&u);
}
