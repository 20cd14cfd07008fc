/* util_units — parsing of human-friendly configuration values.
 *
 * Sizes:     "1048576", "64KiB", "1MiB", "2GiB", "16kB" (kB/MB/GB are powers
 *            of 1000, KiB/MiB/GiB powers of 1024; "K"/"M"/"G" alone mean
 *            KiB/MiB/GiB as in nginx).
 * Durations: "30s", "500ms", "2m", "1h", "1d"; a bare number is seconds.
 * Booleans:  yes/no, true/false, on/off, 1/0.
 * Pure functions, no allocation, any thread.
 */
#ifndef MBGW_UTIL_UNITS_H
#define MBGW_UTIL_UNITS_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns true on success; on failure leaves *out untouched. */
bool units_parse_size(const char *s, uint64_t *out);
bool units_parse_duration_ms(const char *s, uint64_t *out);
bool units_parse_bool(const char *s, bool *out);
bool units_parse_uint(const char *s, uint64_t *out);

#endif
