/* client_msg — the "header\nJSON" message format of mbgw
 * (docs/protocol.md): building and splitting messages, reading header
 * attributes. Pure, any thread. */
#include <mbgw/client.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

MBGW_CLIENT_API int mbgw_client_msg_build(const char *type, const char *id, const char *json,
					  char **out, size_t *out_len)
{
	if (!type || !out || !*type)
		return MBGW_C_E_INVAL;
	size_t tl = strlen(type), il = id ? strlen(id) : 0;
	if (!printable(type, tl) || strchr(type, ' '))
		return MBGW_C_E_INVAL;
	if (id && (!il || !printable(id, il) || strchr(id, ' ')))
		return MBGW_C_E_INVAL;
	if (!json)
		json = "{}";
	size_t jl = strlen(json);
	size_t n = tl + (id ? 4 + il : 0) + 1 + jl;
	char *m = malloc(n + 1);
	if (!m)
		return MBGW_C_E_NOMEM;
	size_t o = 0;
	memcpy(m, type, tl);
	o = tl;
	if (id) {
		memcpy(m + o, " id=", 4);
		o += 4;
		memcpy(m + o, id, il);
		o += il;
	}
	m[o++] = '\n';
	memcpy(m + o, json, jl);
	o += jl;
	m[o] = 0;
	*out = m;
	if (out_len)
		*out_len = o;
	return 0;
}

MBGW_CLIENT_API int mbgw_client_msg_parse(const void *data, size_t len, struct mbgw_client_msg *m)
{
	if (!m || (!data && len))
		return MBGW_C_E_INVAL;
	memset(m, 0, sizeof *m);
	const char *p = data;
	const char *nl = len ? memchr(p, '\n', len) : NULL;
	if (!nl || nl == p)
		return MBGW_C_E_INVAL;
	size_t hl = (size_t)(nl - p);
	if (!printable(p, hl) || p[0] == ' ')
		return MBGW_C_E_INVAL;
	m->header = p;
	m->header_len = hl;
	m->type = p;
	const char *sp = memchr(p, ' ', hl);
	m->type_len = sp ? (size_t)(sp - p) : hl;
	m->payload = nl + 1;
	m->payload_len = len - hl - 1;
	return 0;
}

MBGW_CLIENT_API int mbgw_client_msg_attr(const struct mbgw_client_msg *m, const char *key, char *buf,
					 size_t cap)
{
	if (!m || !key || !buf || !m->header)
		return MBGW_C_E_INVAL;
	size_t kl = strlen(key);
	const char *p = m->header + m->type_len, *e = m->header + m->header_len;
	while (p < e) {
		while (p < e && *p == ' ')
			p++;
		const char *s = p;
		while (p < e && *p != ' ')
			p++;
		/* token s..p: key=value */
		if ((size_t)(p - s) > kl && memcmp(s, key, kl) == 0 && s[kl] == '=') {
			size_t vl = (size_t)(p - s) - kl - 1;
			if (vl + 1 > cap)
				return MBGW_C_E_RANGE;
			memcpy(buf, s + kl + 1, vl);
			buf[vl] = 0;
			return 0;
		}
	}
	return MBGW_C_E_NOTFOUND;
}
