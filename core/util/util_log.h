/* util_log — the core's logger.
 *
 * One line per event on stderr (journald-friendly):
 *   2026-11-26T14:13:38.123Z info  [c3.17] handshake rejected: ...
 * Each line is formatted into a local buffer and written with a single
 * write(2), so lines from different worker threads never interleave.
 * Safe to call from any thread.
 */
#ifndef MBGW_UTIL_LOG_H
#define MBGW_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the most verbose level that is printed (default LOG_INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns false if unknown. */
bool log_level_parse(const char *s, enum log_level *out);
bool log_enabled(enum log_level level);

/* JSON lines ({"time","level","conn","msg"}) instead of text. Any thread. */
void log_set_json(bool json);

/* Copies n bytes of untrusted text (a user agent, a close reason) into
 * out[cap] for a quoted logfmt value: '"' and '\\' get a backslash,
 * control characters become \xNN, so a client can neither end the field
 * nor start a line. Returns out. */
char *log_quote(char *out, size_t cap, const char *s, size_t n);

/* conn_id 0 means "not about a connection". Repeated identical errors
 * and warnings are folded into a "repeated N more times" line. */
void log_msg(enum log_level level, uint64_t conn_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, uint64_t conn_id, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_ERROR, 0, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, 0, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, 0, __VA_ARGS__); } while (0)

#endif
