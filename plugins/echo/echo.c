/* echo — sends every message back to its sender, unchanged.
 *
 * Serve it on a route with `format = raw` (as conf.d does) and any
 * WebSocket client sees a pure echo: text stays text, binary stays binary,
 * byte for byte. On a header+json route it echoes the payload after the
 * header line instead. Stateless: on reload, connections may move to the
 * new build at their next message.
 */
#include <mbgw/plugin.h>

static const struct mbgw_host *host;

static int echo_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		     void **state, char *err, size_t errcap)
{
	(void)settings;
	(void)err;
	(void)errcap;
	host = h;
	*state = inst;
	return MBGW_OK;
}

static int echo_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	(void)state;
	int rc = host->send(conn, m->opcode, m->data, m->data_len);
	/* A reply to the sender's own message is always queued (the server
	 * stops reading from a client that does not read); anything else is
	 * the connection going away, which is not the client's error. */
	return rc == MBGW_E_NOMEM ? rc : MBGW_OK;
}

MBGW_PLUGIN_DEFINE(
	.name = "echo",
	.version = "1.0.0",
	.flags = MBGW_PLUGIN_STATELESS,
	.init = echo_init,
	.message = echo_message,
)
