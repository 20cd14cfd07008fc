/* fuzz_ref_utf8 — an independent UTF-8 reference for the fuzz targets.
 *
 * Written differently from core/ws/ws_utf8.c on purpose: instead of a table
 * of lead bytes and continuation ranges it tracks the interval of code
 * points the bytes seen so far can still become, and calls a byte invalid
 * as soon as that interval holds no scalar value of the sequence's length
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
 * That is exactly the "fail fast" point RFC 6455 §8.1 asks for.
 */
#ifndef MBGW_FUZZ_REF_UTF8_H
#define MBGW_FUZZ_REF_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Can some code point in [lo, hi], encoded in k bytes, be valid? */
static inline bool ref_utf8_possible(uint32_t lo, uint32_t hi, unsigned k)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t a = lo > min_cp[k] ? lo : min_cp[k];
	uint32_t z = hi < 0x10FFFF ? hi : 0x10FFFF;
	if (a > z)
		return false;
	return !(a >= 0xD800 && z <= 0xDFFF);
}

/* Returns the index of the first byte that can never be part of valid
 * UTF-8 whatever follows, or n if there is none; *boundary tells whether
 * p[0..n) ends between characters. */
static inline size_t ref_utf8_scan(const uint8_t *p, size_t n, bool *boundary)
{
	size_t i = 0;
	*boundary = true;
	while (i < n) {
		uint8_t b = p[i];
		unsigned k;
		if (b < 0x80) {
			i++;
			continue;
		}
		if ((b & 0xE0) == 0xC0)
			k = 2;
		else if ((b & 0xF0) == 0xE0)
			k = 3;
		else if ((b & 0xF8) == 0xF0)
			k = 4;
		else
			return i; /* continuation byte as a lead, or 0xF8..0xFF */
		unsigned rest = 6 * (k - 1);
		uint32_t lo = (uint32_t)(b & (0x7F >> k)) << rest;
		uint32_t hi = lo | ((1u << rest) - 1);
		if (!ref_utf8_possible(lo, hi, k))
			return i;
		for (unsigned j = 1; j < k; j++) {
			if (i + j >= n) {
				*boundary = false;
				return n;
			}
			uint8_t c = p[i + j];
			if ((c & 0xC0) != 0x80)
				return i + j;
			rest -= 6;
			lo |= (uint32_t)(c & 0x3F) << rest;
			hi = lo | ((1u << rest) - 1);
			if (!ref_utf8_possible(lo, hi, k))
				return i + j;
		}
		i += k;
	}
	return n;
}

static inline bool ref_utf8_valid(const uint8_t *p, size_t n)
{
	bool boundary;
	return ref_utf8_scan(p, n, &boundary) == n && boundary;
}

#endif
