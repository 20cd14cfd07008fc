/* probe — a test plugin that exercises every host function and callback and
 * reports what it saw in its replies (tests/integration/test_plugin_api.py).
 *
 * Route format header+json. Every request "<cmd>[ id=N] ...\n<json>" is
 * answered (unless noted, or the request says "quiet": true) with
 *
 *     r cmd=<cmd>[ id=N]\n{...}
 *
 * Commands:
 *   info            what the plugin received: type, header, attrs, id,
 *                   opcode, payload (text and hex), parsed json
 *   echo            text: "echo[ id=N]\n<payload>"; binary: the payload as is
 *   fail            returns a negative value (host answers plugin_error)
 *   nojson          "r cmd=nojson[ id=N]\n" (send_msg without json)
 *   whoami          {"conn": "<id>", "inst": name}
 *   attr            {"name", "cap"?} -> {"rc", "value"} (host->conn_attr)
 *   udata.set/get   {"v"} / -> {"v"} (host->set_udata / get_udata)
 *   timer           {"delay", "repeat", "count", "slow_ms"} -> {"timer": id};
 *                   then
 *                   "timer.fired {"n"}" per run and "timer.done
 *                   {"cancel_rc"}" after `count` runs (a repeating timer
 *                   cancels itself from its own callback), "timer.extra"
 *                   for any run after that
 *   timer.cancel    {"timer"} -> {"rc"}
 *   counter         {"name", "delta"} -> {"rc"}
 *   sendto          {"conn", "text"} -> {"rc"} (host->send to another id)
 *   closeconn       {"conn", "code", "reason"} -> {"rc"}
 *   flood           {"conn", "size", "max"} -> {"sent", "rc"}: sends until
 *                   a send fails (backpressure) or max sends
 *   badcalls        return codes of invalid host calls
 *   thread          {"n", "report_to"?, "pause_us"?}: a new thread sends "thread.msg
 *                   {"i"}" n times (n < 0: until shutdown), then
 *                   "thread.done {...}" with what it saw (to report_to
 *                   if given)
 *   join/leave      {"group"} -> {"rc"}
 *   publish         {"group", "text", "except_self"?} -> {"rc"}: the text
 *                   is published as a text message
 *   broadcast       {"text"} -> {"rc"}: host->broadcast to this route
 *   close           {"code", "reason"}: host->close of this connection
 *   verify.last     what the last verify callback of this instance saw
 *
 * Callbacks: verify refuses when the query has deny=<status> (reason
 * "denied by probe") or an X-Probe-Token header is not "secret" (401);
 * open and close publish "ev.open {...}" / "ev.close {...}" to the group
 * "probe.events" (settings "events": false turns that off).
 *
 * Settings: {"name": "A", "events": true, "fail": false, "greet": false};
 * greet: open sends "greet {"conn": "<id>"}" to the new connection.
 * Built also with PROBE_NO_MESSAGE (no message callback at all).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mbgw/plugin.h>

#define EVENTS_GROUP "probe.events"
/* Helpers only the message callback uses (absent with PROBE_NO_MESSAGE). */
#define MSG_ONLY __attribute__((unused))

static const struct mbgw_host *host;

struct probe;

struct targ {
	struct targ *next;
	struct probe *p;
	mbgw_conn_id conn;
	int64_t id;
	int count;
	int fired;
	int slow_ms;
	bool repeat;
};

struct targs {
	struct probe *p;
	mbgw_conn_id conn;
	mbgw_conn_id report_to;
	int n;
	long pause_ns;
};

struct probe {
	struct mbgw_instance *inst;
	char name[64];
	bool events;
	bool greet;
	pthread_mutex_t lock;
	atomic_bool stopping;
	struct targ *timers;
	pthread_t threads[64];
	size_t nthreads;
	char *last_verify;
};

/* ------------------------------------------------------------------ */

static int p_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		  void **state, char *err, size_t errcap)
{
	host = h;
	cJSON *s = cJSON_Parse(settings);
	if (!cJSON_IsObject(s)) {
		cJSON_Delete(s);
		snprintf(err, errcap, "probe: settings are not a JSON object");
		return MBGW_E_INVAL;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "fail"))) {
		cJSON_Delete(s);
		snprintf(err, errcap, "probe: told to fail by its settings");
		return MBGW_E_INVAL;
	}
	struct probe *p = calloc(1, sizeof *p);
	if (!p) {
		cJSON_Delete(s);
		return MBGW_E_NOMEM;
	}
	p->inst = inst;
	pthread_mutex_init(&p->lock, NULL);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
	snprintf(p->name, sizeof p->name, "%s", cJSON_IsString(name) ? name->valuestring : "probe");
	p->events = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(s, "events"));
	p->greet = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "greet"));
	cJSON_Delete(s);
	*state = p;
	return MBGW_OK;
}

static void p_shutdown(void *state)
{
	struct probe *p = state;
	atomic_store(&p->stopping, true);
	pthread_mutex_lock(&p->lock);
	size_t n = p->nthreads;
	p->nthreads = 0;
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
	for (struct targ *t = p->timers; t;) {
		struct targ *next = t->next;
		free(t);
		t = next;
	}
	free(p->last_verify);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Helpers */

static int send_json(mbgw_conn_id conn, const char *header, cJSON *body)
{
	char *text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (!text)
		return MBGW_E_NOMEM;
	int rc = host->send_msg(conn, header, text);
	free(text);
	return rc;
}

static int publish_json(const char *group, const char *type, cJSON *body)
{
	char *text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	if (!text)
		return MBGW_E_NOMEM;
	size_t tl = strlen(type), jl = strlen(text);
	char *msg = malloc(tl + 1 + jl);
	if (!msg) {
		free(text);
		return MBGW_E_NOMEM;
	}
	memcpy(msg, type, tl);
	msg[tl] = '\n';
	memcpy(msg + tl + 1, text, jl);
	int rc = host->group_publish(group, MBGW_TEXT, msg, tl + 1 + jl, 0);
	free(msg);
	free(text);
	return rc;
}

static void conn_str(mbgw_conn_id id, char out[24])
{
	snprintf(out, 24, "%" PRIu64, id);
}

MSG_ONLY static mbgw_conn_id parse_conn(const cJSON *v)
{
	if (cJSON_IsString(v))
		return strtoull(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (mbgw_conn_id)v->valuedouble;
	return 0;
}

MSG_ONLY static const char *jstr(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : def;
}

MSG_ONLY static double jnum(const cJSON *o, const char *key, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static void add_attr(cJSON *o, mbgw_conn_id conn, const char *key, const char *attr)
{
	char buf[512];
	int rc = host->conn_attr(conn, attr, buf, sizeof buf);
	if (rc >= 0)
		cJSON_AddStringToObject(o, key, buf);
	else
		cJSON_AddNumberToObject(o, key, rc);
}

/* ------------------------------------------------------------------ */
/* Callbacks */

static int p_verify(void *state, const struct mbgw_upgrade *req, struct mbgw_verdict *v)
{
	struct probe *p = state;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", req->path);
	cJSON_AddStringToObject(o, "query", req->query);
	cJSON_AddStringToObject(o, "remote_addr", req->remote_addr);
	if (req->subprotocol)
		cJSON_AddStringToObject(o, "subprotocol", req->subprotocol);
	else
		cJSON_AddNullToObject(o, "subprotocol");
	size_t ul = 0;
	const char *ua = req->header(req, "user-agent", &ul);
	if (ua) {
		char b[256];
		snprintf(b, sizeof b, "%.*s", (int)(ul < 255 ? ul : 255), ua);
		cJSON_AddStringToObject(o, "user_agent", b);
	} else {
		cJSON_AddNullToObject(o, "user_agent");
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	pthread_mutex_lock(&p->lock);
	free(p->last_verify);
	p->last_verify = text;
	pthread_mutex_unlock(&p->lock);

	const char *deny = strstr(req->query, "deny=");
	if (deny) {
		v->status = (uint32_t)strtoul(deny + 5, NULL, 10);
		v->reason = "denied by probe";
		return -1;
	}
	size_t tl = 0;
	const char *tok = req->header(req, "X-Probe-Token", &tl);
	if (tok && !(tl == 6 && memcmp(tok, "secret", 6) == 0)) {
		v->status = 401;
		v->reason = "bad token";
		return -1;
	}
	return MBGW_OK;
}

static void p_open(void *state, mbgw_conn_id conn)
{
	struct probe *p = state;
	char id[24];
	conn_str(conn, id);
	if (p->greet) {
		char body[64];
		snprintf(body, sizeof body, "{\"conn\":\"%s\"}", id);
		host->send_msg(conn, "greet", body);
	}
	if (!p->events)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "conn", id);
	cJSON_AddStringToObject(o, "inst", p->name);
	add_attr(o, conn, "path", "path");
	add_attr(o, conn, "query", "query");
	add_attr(o, conn, "subprotocol", "subprotocol");
	add_attr(o, conn, "remote_addr", "remote_addr");
	add_attr(o, conn, "route", "route");
	add_attr(o, conn, "user_agent", "header:User-Agent");
	publish_json(EVENTS_GROUP, "ev.open", o);
}

static void p_close(void *state, mbgw_conn_id conn, uint32_t code, const char *reason, size_t len)
{
	struct probe *p = state;
	char *u = host->get_udata(conn);
	free(u);
	if (!p->events)
		return;
	char id[24];
	conn_str(conn, id);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "conn", id);
	cJSON_AddStringToObject(o, "inst", p->name);
	cJSON_AddNumberToObject(o, "code", code);
	char r[128];
	snprintf(r, sizeof r, "%.*s", (int)(len < 127 ? len : 127), reason ? reason : "");
	cJSON_AddStringToObject(o, "reason", r);
	/* The connection is gone: a send must fail, not crash. */
	cJSON_AddNumberToObject(o, "send_rc", host->send(conn, MBGW_TEXT, "late", 4));
	publish_json(EVENTS_GROUP, "ev.close", o);
}

MSG_ONLY static void timer_cb(void *state, void *arg)
{
	struct probe *p = state;
	struct targ *t = arg;
	pthread_mutex_lock(&p->lock);
	t->fired++;
	int fired = t->fired;
	int64_t id = t->id;
	pthread_mutex_unlock(&p->lock);
	if (fired > t->count) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "n", fired);
		send_json(t->conn, "timer.extra", o);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "n", fired);
	cJSON_AddNumberToObject(o, "timer", (double)id);
	send_json(t->conn, "timer.fired", o);
	if (t->slow_ms) {
		/* a callback that takes its time (still on worker 0) */
		struct timespec ts = { t->slow_ms / 1000, (long)(t->slow_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (fired == t->count) {
		cJSON *d = cJSON_CreateObject();
		if (t->repeat)
			cJSON_AddNumberToObject(d, "cancel_rc", host->timer_cancel(p->inst, id));
		else
			cJSON_AddNullToObject(d, "cancel_rc");
		send_json(t->conn, "timer.done", d);
	}
}

MSG_ONLY static void *thread_main(void *arg)
{
	struct targs *a = arg;
	int ok = 0, first_err = 0;
	/* n < 0: send until the instance shuts down, pausing pause_ns */
	for (int i = 0; a->n < 0 ? !atomic_load(&a->p->stopping) : i < a->n; i++) {
		char body[64];
		snprintf(body, sizeof body, "{\"i\":%d}", i);
		int rc = host->send_msg(a->conn, "thread.msg", body);
		if (rc == MBGW_OK)
			ok++;
		else if (!first_err)
			first_err = rc;
		if (a->n < 0) {
			struct timespec ts = { 0, a->pause_ns };
			nanosleep(&ts, NULL);
		}
	}
	char buf[64];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "sends_ok", ok);
	cJSON_AddNumberToObject(o, "first_err", first_err);
	cJSON_AddNumberToObject(o, "set_udata", host->set_udata(a->conn, NULL));
	cJSON_AddBoolToObject(o, "get_udata_null", host->get_udata(a->conn) == NULL);
	cJSON_AddNumberToObject(o, "conn_attr", host->conn_attr(a->conn, "path", buf, sizeof buf));
	cJSON_AddNumberToObject(o, "counter", host->counter_add(a->p->inst, "thread", 1));
	send_json(a->report_to ? a->report_to : a->conn, "thread.done", o);
	free(a);
	return NULL;
}

/* What the plugin received, for "info" and any command it does not know. */
MSG_ONLY static void fill_info(cJSON *o, const struct probe *p, const struct mbgw_message *m)
{
	cJSON_AddStringToObject(o, "inst", p->name);
	if (m->type) {
		char *t = strndup(m->type, m->type_len);
		char *h = strndup(m->header, m->header_len);
		cJSON_AddStringToObject(o, "type", t);
		cJSON_AddStringToObject(o, "header", h);
		free(t);
		free(h);
	} else {
		cJSON_AddNullToObject(o, "type");
		cJSON_AddNullToObject(o, "header");
	}
	cJSON_AddNumberToObject(o, "nattrs", (double)m->nattrs);
	if (m->id) {
		char *id = strndup(m->id, m->id_len);
		cJSON_AddStringToObject(o, "id", id);
		free(id);
	} else {
		cJSON_AddNullToObject(o, "id");
	}
	cJSON_AddNumberToObject(o, "opcode", m->opcode);
	cJSON *attrs = cJSON_AddArrayToObject(o, "attrs");
	for (size_t i = 0; i < m->nattrs; i++) {
		cJSON *kv = cJSON_CreateArray();
		char *k = strndup(m->attrs[i].key, m->attrs[i].key_len);
		char *v = strndup(m->attrs[i].value, m->attrs[i].value_len);
		cJSON_AddItemToArray(kv, cJSON_CreateString(k));
		cJSON_AddItemToArray(kv, cJSON_CreateString(v));
		cJSON_AddItemToArray(attrs, kv);
		free(k);
		free(v);
	}
	char *hex = malloc(m->data_len * 2 + 1);
	for (size_t i = 0; hex && i < m->data_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", m->data[i]);
	if (hex) {
		hex[m->data_len * 2] = 0;
		cJSON_AddStringToObject(o, "hex", hex);
	}
	free(hex);
	if (m->json)
		cJSON_AddItemToObject(o, "json", cJSON_Duplicate(m->json, true));
	else
		cJSON_AddBoolToObject(o, "json", false);
}

#ifndef PROBE_NO_MESSAGE
static int p_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	struct probe *p = state;
	if (!m->type) {
		/* A raw route: say exactly what arrived. */
		cJSON *o = cJSON_CreateObject();
		fill_info(o, p, m);
		cJSON_AddBoolToObject(o, "raw", true);
		return send_json(conn, "raw", o);
	}
	const cJSON *j = m->json;
	char cmd[64];
	snprintf(cmd, sizeof cmd, "%.*s", (int)(m->type_len < 63 ? m->type_len : 63), m->type);
	char header[256];
	if (m->id)
		snprintf(header, sizeof header, "r cmd=%s id=%.*s", cmd, (int)(m->id_len > 100 ? 100 : m->id_len),
			 m->id);
	else
		snprintf(header, sizeof header, "r cmd=%s", cmd);
	bool quiet = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "quiet"));
	cJSON *o = cJSON_CreateObject();
	int rc = MBGW_OK;

#define IS(s) (strcmp(cmd, s) == 0)
	if (IS("info")) {
		fill_info(o, p, m);
	} else if (IS("echo")) {
		cJSON_Delete(o);
		if (m->opcode == MBGW_BINARY)
			return host->send(conn, MBGW_BINARY, m->data, m->data_len);
		char eh[160];
		if (m->id)
			snprintf(eh, sizeof eh, "echo id=%.*s", (int)(m->id_len > 100 ? 100 : m->id_len), m->id);
		else
			snprintf(eh, sizeof eh, "echo");
		char *payload = strndup((const char *)m->data, m->data_len);
		rc = payload ? host->send_msg(conn, eh, payload) : MBGW_E_NOMEM;
		free(payload);
		return rc;
	} else if (IS("nojson")) {
		/* send_msg without a payload: "<header>\n" */
		cJSON_Delete(o);
		return host->send_msg(conn, header, NULL);
	} else if (IS("fail")) {
		cJSON_Delete(o);
		return -42;
	} else if (IS("whoami")) {
		char id[24];
		conn_str(conn, id);
		cJSON_AddStringToObject(o, "conn", id);
		cJSON_AddStringToObject(o, "inst", p->name);
	} else if (IS("attr")) {
		char buf[512];
		size_t cap = (size_t)jnum(j, "cap", sizeof buf);
		if (cap > sizeof buf)
			cap = sizeof buf;
		int r = host->conn_attr(conn, jstr(j, "name", ""), buf, cap);
		cJSON_AddNumberToObject(o, "rc", r);
		if (r >= 0)
			cJSON_AddStringToObject(o, "value", buf);
		else
			cJSON_AddNullToObject(o, "value");
	} else if (IS("udata.set")) {
		char *old = host->get_udata(conn);
		char *v = strdup(jstr(j, "v", ""));
		int r = host->set_udata(conn, v);
		if (r == MBGW_OK)
			free(old);
		else
			free(v);
		cJSON_AddNumberToObject(o, "rc", r);
	} else if (IS("udata.get")) {
		const char *v = host->get_udata(conn);
		if (v)
			cJSON_AddStringToObject(o, "v", v);
		else
			cJSON_AddNullToObject(o, "v");
	} else if (IS("timer")) {
		struct targ *t = calloc(1, sizeof *t);
		if (!t) {
			cJSON_Delete(o);
			return MBGW_E_NOMEM;
		}
		t->p = p;
		t->conn = conn;
		t->count = (int)jnum(j, "count", 1);
		t->slow_ms = (int)jnum(j, "slow_ms", 0);
		uint64_t repeat = (uint64_t)jnum(j, "repeat", 0);
		t->repeat = repeat != 0;
		pthread_mutex_lock(&p->lock);
		t->next = p->timers;
		p->timers = t;
		int64_t id = host->timer_add(p->inst, (uint64_t)jnum(j, "delay", 0), repeat, timer_cb, t);
		t->id = id;
		pthread_mutex_unlock(&p->lock);
		cJSON_AddNumberToObject(o, "timer", (double)id);
	} else if (IS("timer.cancel")) {
		cJSON_AddNumberToObject(o, "rc", host->timer_cancel(p->inst, (int64_t)jnum(j, "timer", 0)));
	} else if (IS("counter")) {
		cJSON_AddNumberToObject(o, "rc",
					host->counter_add(p->inst, jstr(j, "name", ""), (int64_t)jnum(j, "delta", 1)));
	} else if (IS("sendto")) {
		const char *text = jstr(j, "text", "hello");
		cJSON_AddNumberToObject(o, "rc", host->send(parse_conn(cJSON_GetObjectItemCaseSensitive(j, "conn")),
							    MBGW_TEXT, text, strlen(text)));
	} else if (IS("flood")) {
		/* sends "size" bytes to conn up to "max" times, until a send fails */
		size_t size = (size_t)jnum(j, "size", 1000);
		int max = (int)jnum(j, "max", 1), sent = 0, r = MBGW_OK;
		mbgw_conn_id to = parse_conn(cJSON_GetObjectItemCaseSensitive(j, "conn"));
		char *buf = malloc(size ? size : 1);
		if (!buf) {
			cJSON_Delete(o);
			return MBGW_E_NOMEM;
		}
		memset(buf, 'f', size);
		while (sent < max && (r = host->send(to, MBGW_TEXT, buf, size)) == MBGW_OK)
			sent++;
		free(buf);
		cJSON_AddNumberToObject(o, "sent", sent);
		cJSON_AddNumberToObject(o, "rc", r);
	} else if (IS("closeconn")) {
		cJSON_AddNumberToObject(o, "rc", host->close(parse_conn(cJSON_GetObjectItemCaseSensitive(j, "conn")),
							     (uint32_t)jnum(j, "code", 1000), jstr(j, "reason", "")));
	} else if (IS("badcalls")) {
		char buf[8];
		cJSON_AddNumberToObject(o, "send_opcode", host->send(conn, 9, "x", 1));
		cJSON_AddNumberToObject(o, "send_utf8", host->send(conn, MBGW_TEXT, "\xc3\x28", 2));
		cJSON_AddNumberToObject(o, "send_null", host->send(conn, MBGW_TEXT, NULL, 5));
		cJSON_AddNumberToObject(o, "send_msg_newline", host->send_msg(conn, "a\nb", "{}"));
		cJSON_AddNumberToObject(o, "send_msg_empty", host->send_msg(conn, "", "{}"));
		cJSON_AddNumberToObject(o, "close_code", host->close(conn, 999, NULL));
		cJSON_AddNumberToObject(o, "close_1005", host->close(conn, 1005, NULL));
		char longr[200];
		memset(longr, 'r', sizeof longr - 1);
		longr[sizeof longr - 1] = 0;
		cJSON_AddNumberToObject(o, "close_long_reason", host->close(conn, 1000, longr));
		cJSON_AddNumberToObject(o, "join_empty", host->group_join(conn, ""));
		cJSON_AddNumberToObject(o, "leave_not_member", host->group_leave(conn, "probe.nobody"));
		cJSON_AddNumberToObject(o, "attr_unknown", host->conn_attr(conn, "no-such-attr", buf, sizeof buf));
		cJSON_AddNumberToObject(o, "attr_small", host->conn_attr(conn, "remote_addr", buf, 2));
		cJSON_AddNumberToObject(o, "attr_noconn", host->conn_attr(0, "path", buf, sizeof buf));
		cJSON_AddNumberToObject(o, "send_noconn", host->send(0, MBGW_TEXT, "x", 1));
		cJSON_AddNumberToObject(o, "counter_empty", host->counter_add(p->inst, "", 1));
		cJSON_AddNumberToObject(o, "timer_cancel_unknown", host->timer_cancel(p->inst, 987654321));
		cJSON_AddStringToObject(o, "strerror_noconn", host->strerror(MBGW_E_NOCONN));
		cJSON_AddStringToObject(o, "strerror_unknown", host->strerror(-12345));
		cJSON_AddNumberToObject(o, "host_size", host->size);
		cJSON_AddBoolToObject(o, "host_has_counter", MBGW_HOST_HAS(host, counter_add));
	} else if (IS("thread")) {
		struct targs *a = calloc(1, sizeof *a);
		pthread_mutex_lock(&p->lock);
		bool room = p->nthreads < sizeof p->threads / sizeof p->threads[0];
		if (a && room) {
			a->p = p;
			a->conn = conn;
			a->n = (int)jnum(j, "n", 10);
			a->pause_ns = (long)(jnum(j, "pause_us", 200) * 1000) % 1000000000L;
			a->report_to = parse_conn(cJSON_GetObjectItemCaseSensitive(j, "report_to"));
			if (pthread_create(&p->threads[p->nthreads], NULL, thread_main, a) == 0) {
				p->nthreads++;
				a = NULL;
				cJSON_AddBoolToObject(o, "started", true);
			}
		}
		pthread_mutex_unlock(&p->lock);
		if (a) {
			free(a);
			cJSON_AddBoolToObject(o, "started", false);
		}
	} else if (IS("join")) {
		rc = host->group_join(conn, jstr(j, "group", ""));
		cJSON_AddNumberToObject(o, "rc", rc);
	} else if (IS("leave")) {
		rc = host->group_leave(conn, jstr(j, "group", ""));
		cJSON_AddNumberToObject(o, "rc", rc);
	} else if (IS("publish")) {
		const char *text = jstr(j, "text", "");
		bool except = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "except_self"));
		rc = host->group_publish(jstr(j, "group", ""), MBGW_TEXT, text, strlen(text), except ? conn : 0);
		cJSON_AddNumberToObject(o, "rc", rc);
	} else if (IS("broadcast")) {
		const char *text = jstr(j, "text", "");
		rc = host->broadcast(p->inst, MBGW_TEXT, text, strlen(text));
		cJSON_AddNumberToObject(o, "rc", rc);
	} else if (IS("close")) {
		int r = host->close(conn, (uint32_t)jnum(j, "code", 1000), jstr(j, "reason", ""));
		if (r == MBGW_OK) {
			cJSON_Delete(o);
			return MBGW_OK;
		}
		cJSON_AddNumberToObject(o, "rc", r);
	} else if (IS("verify.last")) {
		pthread_mutex_lock(&p->lock);
		cJSON *v = p->last_verify ? cJSON_Parse(p->last_verify) : NULL;
		pthread_mutex_unlock(&p->lock);
		cJSON_AddItemToObject(o, "verify", v ? v : cJSON_CreateNull());
	} else {
		fill_info(o, p, m);
		cJSON_AddBoolToObject(o, "unknown", true);
	}
#undef IS
	if (quiet) {
		cJSON_Delete(o);
		return rc < 0 ? rc : MBGW_OK;
	}
	return send_json(conn, header, o);
}
#endif

MBGW_PLUGIN_DEFINE(
	.name = "probe",
	.version = "1.0",
	.init = p_init,
	.shutdown = p_shutdown,
	.verify = p_verify,
	.open = p_open,
#ifndef PROBE_NO_MESSAGE
	.message = p_message,
#endif
	.close = p_close,
)
