/* test_units — parsing of sizes, durations, booleans and plain numbers
 * (util_units), as used by every configuration value.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "util/util_units.h"

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;
	cr_assert(units_parse_size(s, &v), "'%s' must parse", s);
	cr_assert_eq(v, want, "'%s' = %llu, expected %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void size_bad(const char *s)
{
	uint64_t v = 777;
	cr_assert_not(units_parse_size(s, &v), "'%s' must be refused", s);
	cr_assert_eq(v, 777, "'%s': *out must stay untouched", s);
}

Test(units, sizes)
{
	size_ok("0", 0);
	size_ok("1", 1);
	size_ok("1048576", 1048576);
	size_ok("10B", 10);
	size_ok("1K", 1024);
	size_ok("64KiB", 65536);
	size_ok("16kB", 16000);
	size_ok("16KB", 16000);
	size_ok("1M", 1 << 20);
	size_ok("1MiB", 1 << 20);
	size_ok("3MB", 3000000);
	size_ok("2G", 2ULL << 30);
	size_ok("2GiB", 2ULL << 30);
	size_ok("5GB", 5000000000ULL);
	size_ok("1 MiB", 1 << 20);
	size_ok("18446744073709551615", UINT64_MAX);
	size_ok("17179869183GiB", 17179869183ULL << 30);
}

Test(units, size_errors)
{
	size_bad("");
	size_bad("MiB");
	size_bad("1XB");
	size_bad("1mib");
	size_bad("1 mb");
	size_bad("1TiB");
	size_bad("-1");
	size_bad("+1");
	size_bad(" 1");
	size_bad("1MiB ");
	size_bad("1.5MiB");
	size_bad("0x10");
	size_bad("18446744073709551616");
	size_bad("99999999999999999999");
	size_bad("17179869184GiB"); /* 2^64: overflows after the multiplication */
	size_bad("18446744073709551615K");
}

static void dur_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;
	cr_assert(units_parse_duration_ms(s, &v), "'%s' must parse", s);
	cr_assert_eq(v, want, "'%s' = %llu ms, expected %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void dur_bad(const char *s)
{
	uint64_t v = 777;
	cr_assert_not(units_parse_duration_ms(s, &v), "'%s' must be refused", s);
	cr_assert_eq(v, 777);
}

Test(units, durations)
{
	dur_ok("0", 0);
	dur_ok("30", 30000);
	dur_ok("30s", 30000);
	dur_ok("500ms", 500);
	dur_ok("0ms", 0);
	dur_ok("2m", 120000);
	dur_ok("1h", 3600000);
	dur_ok("1d", 86400000);
	dur_ok("10 s", 10000);
	dur_ok("18446744073709551615ms", UINT64_MAX);
	dur_bad("");
	dur_bad("s");
	dur_bad("30x");
	dur_bad("30S");
	dur_bad("1.5s");
	dur_bad("-1s");
	dur_bad("1w");
	dur_bad("1min");
	dur_bad("30s ");
	dur_bad("18446744073709551615s");
	dur_bad("18446744073709551616ms");
}

Test(units, booleans)
{
	const char *yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
	const char *no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		bool b = false;
		cr_assert(units_parse_bool(yes[i], &b), "%s", yes[i]);
		cr_assert(b, "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		bool b = true;
		cr_assert(units_parse_bool(no[i], &b), "%s", no[i]);
		cr_assert_not(b, "%s", no[i]);
	}
	const char *bad[] = { "", "y", "n", "2", "yes ", " no", "enabled", "01", "nope" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bool b = true;
		cr_assert_not(units_parse_bool(bad[i], &b), "'%s'", bad[i]);
		cr_assert(b, "'%s': *out untouched", bad[i]);
	}
}

Test(units, plain_numbers)
{
	uint64_t v = 0;
	cr_assert(units_parse_uint("0", &v));
	cr_assert_eq(v, 0);
	cr_assert(units_parse_uint("42", &v));
	cr_assert_eq(v, 42);
	cr_assert(units_parse_uint("007", &v));
	cr_assert_eq(v, 7);
	cr_assert(units_parse_uint("18446744073709551615", &v));
	cr_assert_eq(v, UINT64_MAX);
	v = 99;
	const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1k", "1s", "18446744073709551616", "0x1", "1e3" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_not(units_parse_uint(bad[i], &v), "'%s'", bad[i]);
		cr_assert_eq(v, 99);
	}
}
