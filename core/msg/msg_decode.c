/* msg_decode — see msg_decode.h. */
#include "msg/msg_decode.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(struct msg_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct msg_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err->code = code;
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

bool msg_header_valid(const char *s, size_t n)
{
	if (n == 0 || s[0] == ' ')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
			return false;
	return true;
}

int msg_decode(const uint8_t *data, size_t len, bool text, size_t max_header,
	       struct msg_decoded *out, struct msg_error *err)
{
	memset(out, 0, sizeof *out);
	size_t scan = len < max_header + 1 ? len : max_header + 1;
	const uint8_t *nl = memchr(data, '\n', scan);
	if (!nl) {
		if (len > max_header)
			return fail(err, MSG_ERR_BAD_HEADER,
				    "Header line longer than %zu bytes (or no newline after it)", max_header);
		return fail(err, MSG_ERR_BAD_HEADER,
			    "Message has no header line: expected \"<type> [key=value ...]\\n<payload>\"");
	}
	const char *h = (const char *)data;
	size_t hn = (size_t)(nl - data);
	out->header = h;
	out->header_len = hn;
	out->payload = nl + 1;
	out->payload_len = len - hn - 1;

	for (size_t i = 0; i < hn; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c < 0x20 || c > 0x7E)
			return fail(err, MSG_ERR_BAD_HEADER,
				    "Header line has a non-printable or non-ASCII byte at offset %zu", i);
	}
	/* Tokens separated by one or more spaces. */
	size_t i = 0;
	while (i < hn && h[i] == ' ')
		i++;
	size_t ts = i;
	while (i < hn && h[i] != ' ')
		i++;
	if (i == ts)
		return fail(err, MSG_ERR_BAD_HEADER, "Header line has no message type");
	out->type = h + ts;
	out->type_len = i - ts;
	if (memchr(out->type, '=', out->type_len))
		return fail(err, MSG_ERR_BAD_HEADER,
			    "The first header token is the message type and may not contain '='");
	while (i < hn) {
		while (i < hn && h[i] == ' ')
			i++;
		if (i == hn)
			break;
		size_t ks = i;
		while (i < hn && is_key_char(h[i]))
			i++;
		if (i == ks || i == hn || h[i] != '=')
			return fail(err, MSG_ERR_BAD_HEADER,
				    "Header attribute at offset %zu is not key=value (key: letters, digits, '_', '-', '.')", ks);
		size_t ke = i++;
		size_t vs = i;
		while (i < hn && h[i] != ' ')
			i++;
		if (out->nattrs == MSG_MAX_ATTRS)
			return fail(err, MSG_ERR_BAD_HEADER, "More than %zu header attributes", (size_t)MSG_MAX_ATTRS);
		struct mbgw_attr *a = &out->attrs[out->nattrs++];
		a->key = h + ks;
		a->key_len = ke - ks;
		a->value = h + vs;
		a->value_len = i - vs;
		if (a->key_len == 2 && memcmp(a->key, "id", 2) == 0) {
			out->id = a->value;
			out->id_len = a->value_len;
		}
	}
	if (!text)
		return 0;

	/* Empty or blank payload means null; anything else must be exactly
	 * one JSON value (trailing whitespace allowed). */
	const char *p = (const char *)out->payload;
	size_t pn = out->payload_len;
	size_t k = 0;
	while (k < pn && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n'))
		k++;
	if (k == pn) {
		out->json = cJSON_CreateNull();
		return 0;
	}
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(p, pn, &end, false);
	if (!j) {
		const char *at = cJSON_GetErrorPtr();
		size_t off = at && at >= p && at <= p + pn ? (size_t)(at - p) : 0;
		return fail(err, MSG_ERR_INVALID_JSON, "Payload is not valid JSON (error near byte %zu)", off);
	}
	for (const char *q = end; q < p + pn; q++) {
		if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
			cJSON_Delete(j);
			return fail(err, MSG_ERR_INVALID_JSON,
				    "Payload has text after its JSON value (at byte %zu)", (size_t)(q - p));
		}
	}
	out->json = j;
	return 0;
}

void msg_decoded_free(struct msg_decoded *m)
{
	if (m->json)
		cJSON_Delete(m->json);
	m->json = NULL;
}

bool msg_type_matches(const char *pattern, const char *type, size_t type_len)
{
	size_t pl = strlen(pattern);
	if (pl == 1 && pattern[0] == '*')
		return true;
	if (pl >= 2 && pattern[pl - 1] == '*' && pattern[pl - 2] == '.')
		return type_len >= pl - 1 && memcmp(type, pattern, pl - 1) == 0;
	return pl == type_len && memcmp(pattern, type, pl) == 0;
}

size_t msg_format_error(char *out, size_t cap, const char *id, size_t id_len,
			const char *code, const char *message)
{
	size_t n = 0;
#define PUT(s, l) do { if (n + (l) >= cap) return 0; memcpy(out + n, (s), (l)); n += (l); } while (0)
	PUT("error", 5);
	if (id) {
		PUT(" id=", 4);
		PUT(id, id_len);
	}
	PUT("\n{\"code\":\"", 10);
	/* Both strings are JSON-escaped: a plugin's code may hold anything. */
	for (int field = 0; field < 2; field++) {
		if (field)
			PUT("\",\"message\":\"", 13);
	for (const char *m = field ? message : code; *m; m++) {
		unsigned char c = (unsigned char)*m;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			PUT(e, 2);
		} else if (c < 0x20) {
			char e[8];
			int l = snprintf(e, sizeof e, "\\u%04x", c);
			PUT(e, (size_t)l);
		} else {
			PUT(m, 1);
		}
	}
	}
	PUT("\"}", 2);
#undef PUT
	return n;
}
