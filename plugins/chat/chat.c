/* chat — rooms with presence, on mbgw groups.
 *
 * Protocol (every request may carry id=N, copied into the answer):
 *   chat.join  {"room":"lobby","nick":"ada"}  -> chat.joined {"room","nick","members":[...]}
 *                                                + chat.presence {"room","nick","event":"join"} to the others
 *   chat.send  {"room":"lobby","text":"hi"}   -> chat.message {"room","from","text"} to every member
 *   chat.leave {"room":"lobby"}               -> chat.left {"room"} + presence "leave" to the others
 *   chat.who   {"room":"lobby"}               -> chat.members {"room","members":[...]}
 *   errors:    error id=N {"code": bad_request | bad_room | bad_nick | nick_taken |
 *                          not_member | too_many_rooms | too_long, "message": ...}
 * A connection that closes leaves its rooms (presence "leave").
 *
 * Delivery uses host groups ("chat:<room>"), so a message reaches members
 * on every worker, encoded once. The presence lists are this instance's
 * state, shared by all workers, so they live under one mutex.
 * Settings: {"max_rooms_per_connection": 16, "max_nick": 32, "max_text": 4096}
 */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mbgw/plugin.h>

static const struct mbgw_host *host;

struct member {
	mbgw_conn_id conn;
	char nick[65];
};

struct room {
	struct room *next;
	char name[65];
	struct member *m;
	size_t n, cap;
};

struct chat {
	struct mbgw_instance *inst;
	pthread_mutex_t lock;
	struct room *rooms;
	int max_rooms;
	int max_nick;
	int max_text;
};

/* What one connection has joined (udata, touched only on its worker). */
struct session {
	size_t nrooms;
	char rooms[64][65];
};

static int setting_int(const cJSON *s, const char *key, int def, int lo, int hi, char *err, size_t errcap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
	if (!v)
		return def;
	if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) {
		snprintf(err, errcap, "settings.%s must be a number from %d to %d", key, lo, hi);
		return -1;
	}
	return v->valueint;
}

static int chat_init(const struct mbgw_host *h, struct mbgw_instance *inst, const char *settings,
		     void **state, char *err, size_t errcap)
{
	host = h;
	cJSON *s = cJSON_Parse(settings);
	if (!s) {
		snprintf(err, errcap, "settings are not JSON");
		return MBGW_E_INVAL;
	}
	struct chat *c = calloc(1, sizeof *c);
	if (!c) {
		cJSON_Delete(s);
		return MBGW_E_NOMEM;
	}
	c->inst = inst;
	pthread_mutex_init(&c->lock, NULL);
	c->max_rooms = setting_int(s, "max_rooms_per_connection", 16, 1, 64, err, errcap);
	c->max_nick = setting_int(s, "max_nick", 32, 1, 64, err, errcap);
	c->max_text = setting_int(s, "max_text", 4096, 1, 1 << 20, err, errcap);
	for (const cJSON *k = s->child; k; k = k->next) {
		if (strcmp(k->string, "max_rooms_per_connection") && strcmp(k->string, "max_nick") &&
		    strcmp(k->string, "max_text")) {
			snprintf(err, errcap, "unknown setting '%s' (known: max_rooms_per_connection, max_nick, max_text)",
				 k->string);
			c->max_rooms = -1;
		}
	}
	cJSON_Delete(s);
	if (c->max_rooms < 0 || c->max_nick < 0 || c->max_text < 0) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return MBGW_E_INVAL;
	}
	*state = c;
	return MBGW_OK;
}

static void chat_shutdown(void *state)
{
	struct chat *c = state;
	for (struct room *r = c->rooms; r;) {
		struct room *next = r->next;
		free(r->m);
		free(r);
		r = next;
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static bool valid_name(const char *s, int max)
{
	size_t n = strlen(s);
	if (n == 0 || n > (size_t)max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static struct room *find_room(struct chat *c, const char *name)
{
	for (struct room *r = c->rooms; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

/* Builds "<type>[ id=..]" for an answer to m. */
static void answer_header(char *out, size_t cap, const char *type, const struct mbgw_message *m)
{
	if (m && m->id)
		snprintf(out, cap, "%s id=%.*s", type, (int)m->id_len, m->id);
	else
		snprintf(out, cap, "%s", type);
}

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

static int publish_json(const char *room, const char *type, cJSON *body, mbgw_conn_id except)
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
	char group[80];
	snprintf(group, sizeof group, "chat:%s", room);
	int rc = host->group_publish(group, MBGW_TEXT, msg, tl + 1 + jl, except);
	free(msg);
	free(text);
	return rc;
}

static cJSON *members_array(const struct room *r)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; r && i < r->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(r->m[i].nick));
	return a;
}

static void presence(const char *room, const char *nick, const char *event, mbgw_conn_id except)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "room", room);
	cJSON_AddStringToObject(b, "nick", nick);
	cJSON_AddStringToObject(b, "event", event);
	publish_json(room, "chat.presence", b, except);
}

/* Removes conn from room; returns its nick (copied) or false. Locked. */
static bool remove_member(struct chat *c, const char *room, mbgw_conn_id conn, char nick[65])
{
	struct room **pp = &c->rooms;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, room) == 0)
			break;
	struct room *r = *pp;
	if (!r)
		return false;
	for (size_t i = 0; i < r->n; i++) {
		if (r->m[i].conn == conn) {
			snprintf(nick, 65, "%s", r->m[i].nick);
			memmove(&r->m[i], &r->m[i + 1], (r->n - i - 1) * sizeof *r->m);
			r->n--;
			if (r->n == 0) {
				*pp = r->next;
				free(r->m);
				free(r);
			}
			return true;
		}
	}
	return false;
}

static int do_join(struct chat *c, mbgw_conn_id conn, const struct mbgw_message *m, const char *room,
		   const cJSON *body)
{
	const cJSON *nickj = cJSON_GetObjectItemCaseSensitive(body, "nick");
	const char *nick = cJSON_IsString(nickj) ? nickj->valuestring : NULL;
	if (!nick || !valid_name(nick, c->max_nick)) {
		char why[160];
		snprintf(why, sizeof why, "nick must be 1-%d letters, digits, '_', '-' or '.'", c->max_nick);
		return host->reply_error(conn, m, "bad_nick", why);
	}
	struct session *s = host->get_udata(conn);
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			return MBGW_E_NOMEM;
		host->set_udata(conn, s);
	}
	for (size_t i = 0; i < s->nrooms; i++)
		if (strcmp(s->rooms[i], room) == 0)
			return host->reply_error(conn, m, "bad_request", "already in this room");
	if (s->nrooms >= (size_t)c->max_rooms)
		return host->reply_error(conn, m, "too_many_rooms", "leave a room before joining another");

	pthread_mutex_lock(&c->lock);
	struct room *r = find_room(c, room);
	for (size_t i = 0; r && i < r->n; i++) {
		if (strcmp(r->m[i].nick, nick) == 0) {
			pthread_mutex_unlock(&c->lock);
			return host->reply_error(conn, m, "nick_taken", "someone in this room already uses that nick");
		}
	}
	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r) {
			pthread_mutex_unlock(&c->lock);
			return MBGW_E_NOMEM;
		}
		snprintf(r->name, sizeof r->name, "%s", room);
		r->next = c->rooms;
		c->rooms = r;
	}
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 8;
		struct member *nm = realloc(r->m, nc * sizeof *nm);
		if (!nm) {
			pthread_mutex_unlock(&c->lock);
			return MBGW_E_NOMEM;
		}
		r->m = nm;
		r->cap = nc;
	}
	r->m[r->n].conn = conn;
	snprintf(r->m[r->n].nick, sizeof r->m[r->n].nick, "%s", nick);
	r->n++;
	cJSON *members = members_array(r);
	pthread_mutex_unlock(&c->lock);

	char group[80];
	snprintf(group, sizeof group, "chat:%s", room);
	host->group_join(conn, group);
	snprintf(s->rooms[s->nrooms++], sizeof s->rooms[0], "%s", room);

	char header[128];
	answer_header(header, sizeof header, "chat.joined", m);
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "room", room);
	cJSON_AddStringToObject(b, "nick", nick);
	cJSON_AddItemToObject(b, "members", members);
	send_json(conn, header, b);
	presence(room, nick, "join", conn);
	host->counter_add(c->inst, "joins", 1);
	return MBGW_OK;
}

static bool in_room(const struct session *s, const char *room, size_t *idx)
{
	for (size_t i = 0; s && i < s->nrooms; i++) {
		if (strcmp(s->rooms[i], room) == 0) {
			if (idx)
				*idx = i;
			return true;
		}
	}
	return false;
}

static void leave_room(struct chat *c, mbgw_conn_id conn, struct session *s, size_t idx, bool tell)
{
	char room[65], nick[65];
	snprintf(room, sizeof room, "%s", s->rooms[idx]);
	s->rooms[idx][0] = 0;
	memmove(s->rooms[idx], s->rooms[idx + 1], (s->nrooms - idx - 1) * sizeof s->rooms[0]);
	s->nrooms--;
	pthread_mutex_lock(&c->lock);
	bool had = remove_member(c, room, conn, nick);
	pthread_mutex_unlock(&c->lock);
	if (tell) {
		char group[80];
		snprintf(group, sizeof group, "chat:%s", room);
		host->group_leave(conn, group);
	}
	if (had)
		presence(room, nick, "leave", conn);
}

static int chat_message(void *state, mbgw_conn_id conn, const struct mbgw_message *m)
{
	struct chat *c = state;
	const cJSON *body = m->json;
	if (m->opcode != MBGW_TEXT || !cJSON_IsObject(body))
		return host->reply_error(conn, m, "bad_request", "expected a JSON object payload");
	const cJSON *roomj = cJSON_GetObjectItemCaseSensitive(body, "room");
	const char *room = cJSON_IsString(roomj) ? roomj->valuestring : NULL;
	if (!room || !valid_name(room, 64))
		return host->reply_error(conn, m, "bad_room", "room must be 1-64 letters, digits, '_', '-' or '.'");

#define IS(t) (m->type_len == sizeof(t) - 1 && memcmp(m->type, t, sizeof(t) - 1) == 0)
	struct session *s = host->get_udata(conn);
	if (IS("chat.join"))
		return do_join(c, conn, m, room, body);
	size_t idx;
	if (IS("chat.send")) {
		if (!in_room(s, room, &idx))
			return host->reply_error(conn, m, "not_member", "join the room first");
		const cJSON *textj = cJSON_GetObjectItemCaseSensitive(body, "text");
		if (!cJSON_IsString(textj))
			return host->reply_error(conn, m, "bad_request", "text must be a string");
		if (strlen(textj->valuestring) > (size_t)c->max_text)
			return host->reply_error(conn, m, "too_long", "text is longer than max_text");
		char nick[65] = "";
		pthread_mutex_lock(&c->lock);
		struct room *r = find_room(c, room);
		for (size_t i = 0; r && i < r->n; i++)
			if (r->m[i].conn == conn)
				snprintf(nick, sizeof nick, "%s", r->m[i].nick);
		pthread_mutex_unlock(&c->lock);
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "room", room);
		cJSON_AddStringToObject(b, "from", nick);
		cJSON_AddStringToObject(b, "text", textj->valuestring);
		host->counter_add(c->inst, "messages", 1);
		return publish_json(room, "chat.message", b, 0);
	}
	if (IS("chat.leave")) {
		if (!in_room(s, room, &idx))
			return host->reply_error(conn, m, "not_member", "not in this room");
		leave_room(c, conn, s, idx, true);
		char header[128];
		answer_header(header, sizeof header, "chat.left", m);
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "room", room);
		return send_json(conn, header, b);
	}
	if (IS("chat.who")) {
		pthread_mutex_lock(&c->lock);
		cJSON *members = members_array(find_room(c, room));
		pthread_mutex_unlock(&c->lock);
		char header[128];
		answer_header(header, sizeof header, "chat.members", m);
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "room", room);
		cJSON_AddItemToObject(b, "members", members);
		return send_json(conn, header, b);
	}
#undef IS
	char why[120];
	snprintf(why, sizeof why, "unknown message type '%.*s' (chat.join, chat.send, chat.leave, chat.who)",
		 (int)(m->type_len > 40 ? 40 : m->type_len), m->type);
	return host->reply_error(conn, m, "bad_request", why);
}

static void chat_close(void *state, mbgw_conn_id conn, uint32_t code, const char *reason, size_t len)
{
	(void)code;
	(void)reason;
	(void)len;
	struct chat *c = state;
	struct session *s = host->get_udata(conn);
	if (!s)
		return;
	/* The host drops the group memberships itself; tell the others. */
	while (s->nrooms)
		leave_room(c, conn, s, s->nrooms - 1, false);
	free(s);
	host->set_udata(conn, NULL);
}

MBGW_PLUGIN_DEFINE(
	.name = "chat",
	.version = "1.0.0",
	.init = chat_init,
	.shutdown = chat_shutdown,
	.message = chat_message,
	.close = chat_close,
)
