/* versioned — a raw echo that tags every reply with its build's version.
 *
 * Built several times from this one source (tests/plugins/CMakeLists.txt):
 * VERSION=1 or 2, and STATELESS=1 for builds that declare
 * MBGW_PLUGIN_STATELESS (reload = move). A message "abc" is answered with
 * "v<VERSION> abc", so a client can tell which build served each message.
 *
 * Settings: {"fail": true} makes init fail with a message of its own
 * (the loader and reload tests check that it reaches the log and
 * `mbgw check`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbgw/plugin.h>

#ifndef VERSION
#error "build with -DVERSION=N"
#endif
#define STR_(x) #x
#define STR(x) STR_(x)

#ifdef STATELESS
#define FLAGS MBGW_PLUGIN_STATELESS
#define NAME "versioned-stateless"
#else
#define FLAGS 0u
#define NAME "versioned"
#endif

static const struct mbgw_host *host;

struct state {
	struct mbgw_instance *inst;
};

static int v_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		  void **state, char *err, size_t errcap)
{
	host = h;
	if (strstr(settings, "\"fail\": true") || strstr(settings, "\"fail\":true")) {
		snprintf(err, errcap, "versioned v%d refuses to start: settings ask it to fail", VERSION);
		return MBGW_E_INVAL;
	}
	struct state *s = calloc(1, sizeof *s);
	if (!s)
		return MBGW_E_NOMEM;
	s->inst = inst;
	*state = s;
	host->log(inst, MBGW_LOG_INFO, 0, "versioned v%d initialised", VERSION);
	return MBGW_OK;
}

static void v_shutdown(void *state)
{
	free(state);
}

static int v_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	(void)state;
	char out[4096];
	static const char tag[] = "v" STR(VERSION) " ";
	size_t tl = sizeof tag - 1;
	if (m->data_len > sizeof out - tl)
		return MBGW_E_TOOBIG;
	memcpy(out, tag, tl);
	memcpy(out + tl, m->data, m->data_len);
	int rc = host->send(conn, m->opcode, out, tl + m->data_len);
	return rc == MBGW_OK ? MBGW_OK : rc;
}

MBGW_PLUGIN_DEFINE(
	.name = NAME,
	.version = STR(VERSION),
	.flags = FLAGS,
	.init = v_init,
	.shutdown = v_shutdown,
	.message = v_message,
)
