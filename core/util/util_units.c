/* util_units — see util_units.h. */
#include "util/util_units.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Parses leading decimal digits; returns the rest of the string or NULL on
 * overflow / no digits. */
static const char *parse_digits(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return NULL;
		x = x * 10 + d;
		p++;
	}
	if (p == s)
		return NULL;
	*v = x;
	return p;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b && a > UINT64_MAX / b)
		return false;
	*out = a * b;
	return true;
}

bool units_parse_uint(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *rest = parse_digits(s, &v);
	if (!rest || *rest)
		return false;
	*out = v;
	return true;
}

bool units_parse_size(const char *s, uint64_t *out)
{
	static const struct { const char *suffix; uint64_t mult; } units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1024ULL }, { "KiB", 1024ULL }, { "kB", 1000ULL }, { "KB", 1000ULL },
		{ "M", 1024ULL * 1024 }, { "MiB", 1024ULL * 1024 }, { "MB", 1000ULL * 1000 },
		{ "G", 1024ULL * 1024 * 1024 }, { "GiB", 1024ULL * 1024 * 1024 },
		{ "GB", 1000ULL * 1000 * 1000 },
	};
	uint64_t v;
	const char *rest = parse_digits(s, &v);
	if (!rest)
		return false;
	while (*rest == ' ')
		rest++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(rest, units[i].suffix) == 0)
			return mul_ok(v, units[i].mult, out);
	}
	return false;
}

bool units_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct { const char *suffix; uint64_t mult; } units[] = {
		{ "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 },
		{ "h", 3600000ULL }, { "d", 86400000ULL },
	};
	uint64_t v;
	const char *rest = parse_digits(s, &v);
	if (!rest)
		return false;
	while (*rest == ' ')
		rest++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(rest, units[i].suffix) == 0)
			return mul_ok(v, units[i].mult, out);
	}
	return false;
}

bool units_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) { *out = true; return true; }
		if (strcasecmp(s, no[i]) == 0) { *out = false; return true; }
	}
	return false;
}
