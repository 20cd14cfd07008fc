/* hello — a minimal mbgw plugin: answers every message of type "hello"
 * with a greeting, and says how many clients it has seen.
 *
 * Client sends:   hello id=1\n{"name":"Ada"}
 * Plugin answers: hello.reply id=1\n{"greeting":"Hello, Ada!","seen":3}
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <mbgw/plugin.h>

static const struct mbgw_host *host;

struct hello {
	struct mbgw_instance *inst;
	char greeting[64];
	atomic_long seen;
};

static struct hello the_hello;

/* settings_json is the route's `settings` object, e.g. {"greeting":"Hi"}.
 * This template reads one string field by hand to stay dependency-free;
 * real plugins usually link cJSON. */
static int hello_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		      void **state, char *err, size_t errcap)
{
	host = h;
	the_hello.inst = inst;
	snprintf(the_hello.greeting, sizeof the_hello.greeting, "Hello");
	const char *g = strstr(settings, "\"greeting\"");
	if (g && (g = strchr(g + 10, '"'))) {
		const char *end = strchr(g + 1, '"');
		if (!end || end - g - 1 >= (long)sizeof the_hello.greeting) {
			snprintf(err, errcap, "settings.greeting must be a string of at most 63 bytes");
			return MBGW_E_INVAL;
		}
		snprintf(the_hello.greeting, sizeof the_hello.greeting, "%.*s", (int)(end - g - 1), g + 1);
	}
	*state = &the_hello;
	host->log(inst, MBGW_LOG_INFO, 0, "hello plugin ready, greeting \"%s\"", the_hello.greeting);
	return MBGW_OK;
}

static void hello_open(void *state, mbgw_conn_id conn)
{
	struct hello *hp = state;
	atomic_fetch_add(&hp->seen, 1);
	(void)conn;
}

/* Finds needle in data[0..len) (memmem is a GNU extension). */
static const char *find(const uint8_t *data, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (memcmp(data + i, needle, n) == 0)
			return (const char *)data + i;
	return NULL;
}

static int hello_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	struct hello *hp = state;
	if (m->type_len != 5 || memcmp(m->type, "hello", 5) != 0)
		return host->reply_error(conn, m, "unknown_type", "this plugin only answers 'hello'");
	/* The payload is valid JSON (the host checked); pick "name" if present. */
	char name[64] = "stranger";
	const char *n = find(m->data, m->data_len, "\"name\"");
	if (n) {
		const char *q = memchr(n + 6, '"', m->data_len - (size_t)(n + 6 - (const char *)m->data));
		const char *e = q ? memchr(q + 1, '"', m->data_len - (size_t)(q + 1 - (const char *)m->data)) : NULL;
		if (q && e && e - q - 1 < (long)sizeof name && !memchr(q + 1, '\\', (size_t)(e - q - 1)))
			snprintf(name, sizeof name, "%.*s", (int)(e - q - 1), q + 1);
	}
	char header[80], json[256];
	snprintf(header, sizeof header, "hello.reply%s%.*s", m->id ? " id=" : "", (int)m->id_len,
		 m->id ? m->id : "");
	snprintf(json, sizeof json, "{\"greeting\":\"%s, %s!\",\"seen\":%ld}", hp->greeting, name,
		 atomic_load(&hp->seen));
	return host->send_msg(conn, header, json) == MBGW_OK ? MBGW_OK : MBGW_E_AGAIN;
}

MBGW_PLUGIN_DEFINE(
	.name = "hello",
	.version = "1.0.0",
	.init = hello_init,
	.open = hello_open,
	.message = hello_message,
)
