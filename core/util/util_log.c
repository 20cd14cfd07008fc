/* util_log — see util_log.h. */
#include "util/util_log.h"

#include <stdatomic.h>
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

void log_vmsg(enum log_level level, uint64_t conn_id, const char *fmt, va_list ap)
{
	if (!log_enabled(level))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	int w;
	if (conn_id)
		w = snprintf(line + n, sizeof line - n, ".%03ldZ %-5s [c%u.%llu] ",
			     ts.tv_nsec / 1000000L, level_names[level],
			     (unsigned)(conn_id >> 48),
			     (unsigned long long)(conn_id & 0xffffffffffffULL));
	else
		w = snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ",
			     ts.tv_nsec / 1000000L, level_names[level]);
	if (w > 0)
		n += (size_t)w;
	w = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	if (w > 0)
		n += (size_t)w < sizeof line - n - 1 ? (size_t)w : sizeof line - n - 2;
	line[n++] = '\n';
	/* One write per line: atomic for pipes and regular files up to PIPE_BUF. */
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}

void log_msg(enum log_level level, uint64_t conn_id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, conn_id, fmt, ap);
	va_end(ap);
}
