/* util_log — see util_log.h. */
#include "util/util_log.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = LOG_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level) { atomic_store(&g_level, (int)level); }
enum log_level log_get_level(void) { return (enum log_level)atomic_load(&g_level); }
bool log_enabled(enum log_level level) { return (int)level <= atomic_load(&g_level); }

bool log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

static _Atomic int g_json;

void log_set_json(bool json)
{
	atomic_store(&g_json, json ? 1 : 0);
}

/* Appends s JSON-escaped to out[*n..cap). */
static void json_escape(char *out, size_t cap, size_t *n, const char *s)
{
	for (; *s && *n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[(*n)++] = '\\';
			out[(*n)++] = (char)c;
		} else if (c < 0x20) {
			*n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
		} else {
			out[(*n)++] = (char)c;
		}
	}
}

char *log_quote(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o < cap ? o : cap - 1] = 0;
	return out;
}

static void emit(enum log_level level, uint64_t conn_id, const char *msg)
{
	char line[4096];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t wn = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + wn, sizeof when - wn, ".%03ldZ", ts.tv_nsec / 1000000L);
	char conn[40] = "";
	if (conn_id)
		snprintf(conn, sizeof conn, "c%u.%llu", (unsigned)(conn_id >> 48),
			 (unsigned long long)(conn_id & 0xffffffffffffULL));
	size_t n;
	if (atomic_load(&g_json)) {
		int w = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\"%s%s%s,\"msg\":\"", when,
				 level_names[level], conn_id ? ",\"conn\":\"" : "", conn, conn_id ? "\"" : "");
		n = w > 0 ? (size_t)w : 0;
		json_escape(line, sizeof line - 3, &n, msg);
		line[n++] = '"';
		line[n++] = '}';
	} else {
		int w = snprintf(line, sizeof line - 1, "%s %-5s %s%s%s%s", when, level_names[level],
				 conn_id ? "[" : "", conn, conn_id ? "] " : "", msg);
		n = w > 0 ? ((size_t)w < sizeof line - 1 ? (size_t)w : sizeof line - 2) : 0;
	}
	line[n++] = '\n';
	/* One write per line: atomic for pipes and regular files up to PIPE_BUF. */
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}

/* Repeated identical errors and warnings (a flood from one broken client
 * or a full disk) are folded: the first is printed, the repeats within
 * REPEAT_WINDOW_MS only counted, and the count is printed with the next
 * different line. Per thread, so no lock. */
#define REPEAT_WINDOW_MS 10000
static __thread uint64_t t_last_hash;
static __thread uint64_t t_last_ms;
static __thread unsigned t_repeats;
static __thread enum log_level t_last_level;

static uint64_t hash_text(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void log_vmsg(enum log_level level, uint64_t conn_id, const char *fmt, va_list ap)
{
	if (!log_enabled(level))
		return;
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (level <= LOG_WARN) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		uint64_t h = hash_text(msg) ^ conn_id;
		if (h == t_last_hash && now - t_last_ms < REPEAT_WINDOW_MS) {
			t_repeats++;
			return;
		}
		if (t_repeats) {
			char note[80];
			snprintf(note, sizeof note, "(previous message repeated %u more times)", t_repeats);
			emit(t_last_level, 0, note);
		}
		t_last_hash = h;
		t_last_ms = now;
		t_repeats = 0;
		t_last_level = level;
	}
	emit(level, conn_id, msg);
}

void log_msg(enum log_level level, uint64_t conn_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, conn_id, fmt, ap);
	va_end(ap);
}
