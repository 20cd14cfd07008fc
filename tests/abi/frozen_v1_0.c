/* A plugin built against a frozen copy of the SDK 1.0 header
 * (tests/abi/v1.0/mbgw/plugin.h, never edited). Every later 1.x host must
 * keep loading it and calling it correctly: test_abi_frozen.py checks that
 * it echoes with a prefix and that its open/close callbacks run. */
#include <stdio.h>
#include <string.h>

#include <mbgw/plugin.h>

static const struct mbgw_host *host;

static int frozen_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		       void **state, char *err, size_t errcap)
{
	(void)settings;
	(void)err;
	(void)errcap;
	host = h;
	*state = inst;
	/* Host functions of 1.0 must all be present. */
	if (!MBGW_HOST_HAS(h, counter_add)) {
		snprintf(err, errcap, "host lacks 1.0 functions");
		return MBGW_E_INVAL;
	}
	return MBGW_OK;
}

static void frozen_open(void *state, mbgw_conn_id conn)
{
	(void)state;
	host->send_msg(conn, "frozen.open", "{\"abi\":\"1.0\"}");
}

static int frozen_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	(void)state;
	char out[512];
	int n = snprintf(out, sizeof out, "frozen:%.*s", (int)(m->data_len > 400 ? 400 : m->data_len),
			 (const char *)m->data);
	return host->send(conn, MBGW_TEXT, out, (size_t)n);
}

MBGW_PLUGIN_DEFINE(
	.name = "frozen-1.0",
	.version = "1.0.0",
	.init = frozen_init,
	.open = frozen_open,
	.message = frozen_message,
)
