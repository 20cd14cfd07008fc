/* fuzz_msg — the application message decoder "<header line>\n<payload>"
 * and the error reply writer (core/msg/msg_decode.c).
 *
 * Input layout:
 *   byte 0   bit 0 text (JSON payload) or binary, bits 1-3 max_header
 *            (1, 8, 16, 64, 256, 1024, 4096, 65536)
 *   rest     the message as a client sends it
 *
 * Checks:
 *  - on success every slice lies in the input: the header is what comes
 *    before the first '\n' and fits max_header; its tokens (separated by
 *    spaces) are exactly the type followed by key=value attributes, with
 *    keys from [A-Za-z0-9_.-]; id is the value of an "id" attribute; the
 *    payload is the rest; a text payload has been parsed to JSON and a
 *    binary one has not;
 *  - on failure the code is a documented one, with a message, and id is
 *    still set when the header was readable (invalid JSON);
 *  - the error reply built from it, and one built from a code and message
 *    taken from the input, is "error[ id=ID]\n" and a JSON object whose
 *    code and message are exactly the ones given, whatever they hold, or
 *    0 when it does not fit;
 *  - msg_type_matches agrees with a plain reading of "exact, prefix.* or *".
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_ref_utf8.h"
#include "msg/msg_decode.h"

static bool key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-' || c == '.';
}

static bool is_code(const char *c)
{
	return c && (strcmp(c, MSG_ERR_BAD_HEADER) == 0 || strcmp(c, MSG_ERR_INVALID_JSON) == 0 ||
		     strcmp(c, MSG_ERR_NO_ROUTE) == 0 || strcmp(c, MSG_ERR_UNSUPPORTED_PAYLOAD) == 0 ||
		     strcmp(c, MSG_ERR_PLUGIN_ERROR) == 0);
}

/* The header's tokens must be the type then the attributes, in order. */
static void check_header(const struct msg_decoded *m)
{
	const char *h = m->header, *end = h + m->header_len;
	size_t tok = 0;
	for (const char *p = h; p < end;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		const char *s = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - s);
		if (tok == 0) {
			CHECK(m->type == s && m->type_len == n, "type is not the first header token");
			CHECK(!memchr(s, '=', n), "type '%.*s' holds '='", (int)n, s);
		} else {
			CHECK(tok - 1 < m->nattrs, "header token %zu is not an attribute", tok);
			const struct mbgw_attr *a = &m->attrs[tok - 1];
			CHECK(a->key == s && a->key_len + 1 + a->value_len == n && s[a->key_len] == '=' &&
			      a->value == s + a->key_len + 1, "attribute %zu is not token '%.*s'", tok - 1, (int)n, s);
			CHECK(a->key_len > 0, "empty attribute key");
			for (size_t i = 0; i < a->key_len; i++)
				CHECK(key_char(a->key[i]), "key byte 0x%02x", (unsigned char)a->key[i]);
		}
		tok++;
	}
	CHECK(tok >= 1 && tok - 1 == m->nattrs, "%zu header tokens for %zu attributes", tok, m->nattrs);
	CHECK(m->nattrs <= MSG_MAX_ATTRS, "%zu attributes", m->nattrs);
}

static void check_id(const struct msg_decoded *m)
{
	bool found = false;
	for (size_t i = 0; i < m->nattrs; i++) {
		const struct mbgw_attr *a = &m->attrs[i];
		if (a->key_len == 2 && memcmp(a->key, "id", 2) == 0) {
			found = true;
			if (m->id == a->value && m->id_len == a->value_len)
				return;
		}
	}
	CHECK(!found && !m->id, found ? "id is not the value of an id attribute" : "id set without an id attribute");
}

/* An error reply must read back as exactly what was put in. */
static void check_reply(size_t cap, const char *id, size_t id_len, const char *code, const char *message)
{
	char *out = malloc(cap ? cap : 1);
	if (!out)
		abort();
	size_t n = msg_format_error(out, cap, id, id_len, code, message);
	if (n == 0) {
		free(out);
		return;
	}
	CHECK(n < cap, "reply of %zu bytes in a buffer of %zu", n, cap);
	size_t pre = 5;
	CHECK(memcmp(out, "error", 5) == 0, "reply does not start with 'error'");
	if (id) {
		CHECK(memcmp(out + 5, " id=", 4) == 0 && memcmp(out + 9, id, id_len) == 0, "reply does not carry the id");
		pre += 4 + id_len;
	}
	CHECK(out[pre] == '\n', "reply header not followed by a newline");
	const char *json = out + pre + 1;
	size_t jn = n - pre - 1;
	cJSON *j = cJSON_ParseWithLength(json, jn);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	bool code_ok = cJSON_IsString(c) && strcmp(c->valuestring, code) == 0;
	CHECK(j && cJSON_IsObject(j), "reply body is not a JSON object: '%.*s'", (int)jn, json);
	CHECK(code_ok, "reply code reads back as '%s', was '%s'", cJSON_IsString(c) ? c->valuestring : "?", code);
	CHECK(cJSON_IsString(msg) && strcmp(msg->valuestring, message) == 0,
	      "reply message reads back as '%s', was '%s'", cJSON_IsString(msg) ? msg->valuestring : "?", message);
	/* Sent as a text frame: valid UTF-8 in, valid UTF-8 out. */
	if (ref_utf8_valid((const uint8_t *)code, strlen(code)) &&
	    ref_utf8_valid((const uint8_t *)message, strlen(message)))
		CHECK(ref_utf8_valid((const uint8_t *)out, n), "reply is not valid UTF-8");
	cJSON_Delete(j);
	free(out);
}

static bool ref_matches(const char *pat, const char *type, size_t tn)
{
	size_t pn = strlen(pat);
	if (strcmp(pat, "*") == 0)
		return true;
	if (pn >= 2 && pat[pn - 2] == '.' && pat[pn - 1] == '*')
		return tn >= pn - 1 && memcmp(type, pat, pn - 1) == 0;
	return tn == pn && memcmp(type, pat, pn) == 0;
}

static char *cstr(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_headers[8] = { 1, 8, 16, 64, 256, 1024, 4096, 65536 };
	if (size < 1)
		return 0;
	bool text = data[0] & 1;
	size_t max_header = max_headers[(data[0] >> 1) & 7];
	size_t n = size - 1;
	uint8_t *p = malloc(n ? n : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, n);

	struct msg_decoded m;
	struct msg_error err;
	memset(&err, 0, sizeof err);
	int rc = msg_decode(p, n, text, max_header, &m, &err);
	CHECK(rc == 0 || rc == -1, "returned %d", rc);
	const uint8_t *nl = memchr(p, '\n', n);
	if (rc == 0) {
		CHECK(nl && (const uint8_t *)m.header == p && m.header_len == (size_t)(nl - p),
		      "header is not what precedes the first newline");
		CHECK(m.header_len <= max_header, "header of %zu bytes, max %zu", m.header_len, max_header);
		for (size_t i = 0; i < m.header_len; i++)
			CHECK(m.header[i] >= 0x20 && m.header[i] <= 0x7e, "header byte 0x%02x",
			      (unsigned char)m.header[i]);
		CHECK(m.payload == nl + 1 && m.payload_len == n - m.header_len - 1, "payload is not the rest");
		check_header(&m);
		check_id(&m);
		CHECK(text ? m.json != NULL : m.json == NULL, "json %p for a %s message", m.json,
		      text ? "text" : "binary");
		/* Routing by type, with a pattern taken from the input. */
		char *type = cstr(m.type, m.type_len);
		static const char *const pats[] = { "*", "chat.*", "chat.send", ".*", "*.*" };
		for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
			CHECK(msg_type_matches(pats[i], m.type, m.type_len) == ref_matches(pats[i], m.type, m.type_len),
			      "pattern '%s', type '%s'", pats[i], type);
		if (m.nattrs) {
			char *pat = cstr(m.attrs[0].value, m.attrs[0].value_len);
			CHECK(msg_type_matches(pat, m.type, m.type_len) == ref_matches(pat, m.type, m.type_len),
			      "pattern '%s', type '%s'", pat, type);
			free(pat);
		}
		/* A reply about it, with code and message from the input. */
		char *msg = cstr(m.payload, m.payload_len);
		check_reply(1024, m.id, m.id_len, MSG_ERR_PLUGIN_ERROR, msg);
		check_reply(2048, m.id, m.id_len, type, msg);
		check_reply(1 + (m.payload_len * 7) % 200, m.id, m.id_len, type, msg);
		free(msg);
		free(type);
		msg_decoded_free(&m);
		CHECK(m.json == NULL, "msg_decoded_free left json behind");
	} else {
		CHECK(is_code(err.code) && err.message[0] && memchr(err.message, 0, sizeof err.message),
		      "error '%s' '%s'", err.code ? err.code : "(null)", err.message);
		CHECK(strcmp(err.code, MSG_ERR_BAD_HEADER) == 0 || (text && strcmp(err.code, MSG_ERR_INVALID_JSON) == 0),
		      "error code %s for a %s message", err.code, text ? "text" : "binary");
		CHECK(m.json == NULL, "json left after an error");
		if (!nl || (size_t)(nl - p) > max_header)
			CHECK(strcmp(err.code, MSG_ERR_BAD_HEADER) == 0, "no usable header but %s", err.code);
		if (strcmp(err.code, MSG_ERR_INVALID_JSON) == 0) {
			/* The header was read: the error reply can carry its id. */
			check_header(&m);
			check_id(&m);
		}
		check_reply(1024, m.id, m.id_len, err.code, err.message);
		check_reply(1 + n % 300, m.id, m.id_len, err.code, err.message);
	}
	free(p);
	return 0;
}
