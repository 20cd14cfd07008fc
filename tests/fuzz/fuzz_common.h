/* fuzz_common — what every fuzz target shares.
 *
 * CHECK(cond, ...) is the fuzz targets' assert: it stays on whatever
 * NDEBUG says, prints what was violated and aborts, which libFuzzer
 * reports as a crash and saves the input for.
 */
#ifndef MBGW_FUZZ_COMMON_H
#define MBGW_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_EXPORT __attribute__((visibility("default")))

FUZZ_EXPORT int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: invariant violated: %s\n  ",    \
				__FILE__, __LINE__, #cond);                     \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

/* CHECK_KNOWN(tag, cond, ...) is CHECK for an invariant a known, reported
 * and not yet fixed core bug breaks: MBGW_FUZZ_SKIP=tag1,tag2 in the
 * environment turns it off, so that fuzzing can go on looking for other
 * bugs meanwhile. Tags are listed in tests/fuzz/README.md. */
static inline int fuzz_skipped(const char *tag)
{
	const char *s = getenv("MBGW_FUZZ_SKIP");
	size_t n = strlen(tag);
	while (s && *s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == n && strncmp(s, tag, n) == 0)
			return 1;
		s = e ? e + 1 : NULL;
	}
	return 0;
}

#define CHECK_KNOWN(tag, cond, ...)                                             \
	do {                                                                    \
		if (!(cond) && !fuzz_skipped(tag)) {                            \
			fprintf(stderr, "[%s] ", tag);                          \
			CHECK(cond, __VA_ARGS__);                               \
		}                                                               \
	} while (0)

/* FNV-1a, to compare delivered payloads without keeping them. */
static inline uint64_t fuzz_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* True if [p, p+n) lies inside [base, base+len). */
static inline int fuzz_inside(const void *p, size_t n, const void *base, size_t len)
{
	uintptr_t x = (uintptr_t)p, b = (uintptr_t)base;
	return x >= b && x - b <= len && n <= len - (x - b);
}

#endif
