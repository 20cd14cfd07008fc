/* fuzz_conf — the conf.d parser (core/conf/conf.c with util_units).
 *
 * Input: the text of one or more configuration files, separated by a
 * form-feed line ("\n\f\n"), parsed in order with conf_parse_text as
 * conf_load_dir does, then conf_finish and conf_free. Corpus files are
 * plain conf.d text.
 *
 * Checks: nothing leaks (LeakSanitizer); each call reports exactly as many
 * errors as it appends lines to errs; every line reads "<file>:<line>: ..."
 * with a line number that exists in that file (or, from conf_finish,
 * "<dir>: ..." or the file:line of a route's section) and ends in '\n';
 * what was accepted respects each key's documented range and form; a
 * directory that conf_finish accepts is servable (listeners, routes with
 * unique paths and a known plugin, found by conf_route_for_path).
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "conf/conf.h"
#include "fuzz_common.h"

#define DIR_NAME "fuzz.d"
#define MAX_FILES 8

struct file {
	char name[64];
	const char *text;
	size_t len;
	int lines;
};

static int count_lines(const char *t, size_t n)
{
	int lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += t[i] == '\n';
	return lines + (n && t[n - 1] != '\n');
}

/* Does `s` start with "<name>:<line>: " where 1 <= line <= lines? */
static bool at_file_line(const char *s, size_t n, const struct file *f)
{
	size_t fl = strlen(f->name);
	if (n < fl + 4 || memcmp(s, f->name, fl) != 0 || s[fl] != ':')
		return false;
	size_t i = fl + 1;
	long line = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9' && line < 1000000)
		line = line * 10 + (s[i++] - '0');
	return i + 1 < n && s[i] == ':' && s[i + 1] == ' ' && line >= 1 && line <= f->lines;
}

/* Checks the error lines in errs[from..) and returns how many there are. */
static int check_errors(const struct buf *errs, size_t from, const struct file *files, size_t nfiles,
			bool finish)
{
	int n = 0;
	if (errs->len == from)
		return 0;
	const char *s = (const char *)errs->data + from, *end = (const char *)errs->data + errs->len;
	const char *prev = NULL;
	size_t prev_len = 0;
	CHECK(end[-1] == '\n', "error text does not end in a newline");
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = (size_t)(nl - s);
		bool ok = false;
		/* parse errors name the file being parsed, finish errors the
		 * directory or the place of a route */
		for (size_t i = 0; i < nfiles && !ok; i++)
			ok = at_file_line(s, len, &files[i]);
		if (finish && !ok)
			ok = len > sizeof DIR_NAME + 1 && memcmp(s, DIR_NAME ": ", sizeof DIR_NAME + 1) == 0;
		if (!ok && prev) {
			/* Reported: a multi-line value (any key may take a '{'
			 * value over several lines) quoted in a message. */
			CHECK_KNOWN("conf-multiline", false, "error message spans lines: '%.*s' goes on with '%.*s'",
				    (int)prev_len, prev, (int)len, s);
			s = nl + 1;
			continue;
		}
		CHECK(ok, "error line does not start with its place: '%.*s'", (int)len, s);
		CHECK(!memchr(s, 0, len), "NUL in an error line");
		n++;
		prev = s;
		prev_len = len;
		s = nl + 1;
	}
	return n;
}

static bool token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
			return false;
	}
	return true;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A message-type pattern: an exact type, "prefix.*" or "*". */
static bool type_pattern(const char *s)
{
	size_t n = strlen(s);
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c > 0x7e || c == '=' || (c == '*' && i != n - 1))
			return false;
	}
	return s[n - 1] != '*' || n == 1 || s[n - 2] == '.';
}

static bool share_one(char *const *a, size_t na, char *const *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t k = 0; k < nb; k++)
			if (strcmp(a[i], b[k]) == 0)
				return true;
	return false;
}

static void check_conf(const struct conf *c)
{
	CHECK(c->nlisten <= CONF_MAX_LISTEN, "%zu listeners", c->nlisten);
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct conf_listen *l = &c->listen[i];
		CHECK((l->addr.ss_family == AF_INET && l->addrlen == sizeof(struct sockaddr_in)) ||
		      (l->addr.ss_family == AF_INET6 && l->addrlen == sizeof(struct sockaddr_in6)),
		      "listener %zu: family %d, addrlen %u", i, l->addr.ss_family, (unsigned)l->addrlen);
		CHECK(((const struct sockaddr_in *)&l->addr)->sin_port != 0, "listener %zu on port 0", i);
		CHECK(memchr(l->text, 0, sizeof l->text) && memchr(l->where, 0, sizeof l->where),
		      "listener text not terminated");
		for (size_t j = 0; j < i; j++)
			CHECK(l->addrlen != c->listen[j].addrlen || memcmp(&l->addr, &c->listen[j].addr, l->addrlen),
			      "listeners %zu and %zu are the same address", j, i);
	}
	CHECK(c->workers <= 256, "workers %llu", (unsigned long long)c->workers);
	CHECK(c->backlog >= 1 && c->backlog <= 1u << 20, "backlog %llu", (unsigned long long)c->backlog);
	CHECK(c->max_payload >= 1 && c->max_payload <= 1ULL << 40, "max_payload");
	CHECK(c->max_header_size >= 256 && c->max_header_size <= 1 << 20, "max_header_size");
	CHECK(c->max_headers >= 4 && c->max_headers <= 128, "max_headers %llu",
	      (unsigned long long)c->max_headers);
	CHECK(c->handshake_timeout_ms >= 1 && c->close_timeout_ms >= 1 && c->pong_timeout_ms >= 1,
	      "zero timeout accepted");
	CHECK(c->send_queue_limit >= 1024, "send_queue_limit");
	CHECK(c->log_level >= LOG_ERROR && c->log_level <= LOG_DEBUG, "log level %d", (int)c->log_level);
	CHECK(c->max_message_header >= 16 && c->max_message_header <= 65536, "max_message_header %llu",
	      (unsigned long long)c->max_message_header);
	CHECK(!c->plugin_dir || *c->plugin_dir, "empty plugin_dir");
	CHECK(!c->pid_file || *c->pid_file, "empty pid_file");
	CHECK_KNOWN("conf-multiline", !c->plugin_dir || !has_ctl(c->plugin_dir), "plugin_dir with a control character");
	CHECK_KNOWN("conf-multiline", !c->pid_file || !has_ctl(c->pid_file), "pid_file with a control character");
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		CHECK(r->name && *r->name, "route %zu without a name", i);
		for (const char *p = r->name; *p; p++)
			CHECK(strchr("-_.", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= 'A' && *p <= 'Z'), "route name '%s'", r->name);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(r->name, c->routes[j].name) != 0, "route '%s' defined twice", r->name);
		if (r->path) {
			CHECK(r->path[0] == '/', "path '%s'", r->path);
			for (const char *p = r->path; *p; p++)
				CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '?' && *p != '#',
				      "path '%s'", r->path);
		}
		CHECK(!r->plugin || *r->plugin, "empty plugin name");
		CHECK_KNOWN("conf-multiline", !r->plugin || !has_ctl(r->plugin), "plugin name with a control character: '%s'",
			    r->plugin);
		CHECK(r->format == CONF_FORMAT_JSON || r->format == CONF_FORMAT_RAW, "format %u", r->format);
		CHECK(r->drain_ms <= 86400000, "drain %llu ms", (unsigned long long)r->drain_ms);
		CHECK(r->ntypes <= CONF_MAX_TYPES, "%zu types", r->ntypes);
		for (size_t j = 0; j < r->ntypes; j++)
			CHECK(r->types[j] && type_pattern(r->types[j]), "type pattern '%s'",
			      r->types[j] ? r->types[j] : "(null)");
		if (r->settings) {
			cJSON *js = cJSON_Parse(r->settings);
			CHECK(js && cJSON_IsObject(js), "settings are not a JSON object: '%s'", r->settings);
			cJSON_Delete(js);
		}
		CHECK(r->nsubprotocols <= CONF_MAX_SUBPROTOCOLS, "%zu subprotocols", r->nsubprotocols);
		for (size_t j = 0; j < r->nsubprotocols; j++)
			CHECK(r->subprotocols[j] && token(r->subprotocols[j]), "subprotocol '%s'",
			      r->subprotocols[j] ? r->subprotocols[j] : "(null)");
		CHECK(memchr(r->where, 0, sizeof r->where), "route place not terminated");
	}
}

/* A directory conf_finish accepts can be served: every route is complete,
 * and two routes on one path are told apart by subprotocol or, failing
 * that, by disjoint message types. */
static void check_servable(const struct conf *c)
{
	CHECK(c->nlisten >= 1, "accepted without a listener");
	CHECK(c->nroutes >= 1, "accepted without a route");
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct conf_route *r = &c->routes[i];
		CHECK(r->path && r->plugin && r->settings, "route '%s' accepted incomplete", r->name);
		CHECK(!r->require_subprotocol || r->nsubprotocols, "route %s requires a subprotocol but lists none",
		      r->name);
		CHECK(r->format != CONF_FORMAT_RAW || r->ntypes == 0, "raw route '%s' selects types", r->name);
		const struct conf_route *f = conf_route_for_path(c, r->path, strlen(r->path));
		CHECK(f && strcmp(f->path, r->path) == 0 && f <= r, "path %s finds no route or a later one", r->path);
		for (size_t j = 0; j < i; j++) {
			const struct conf_route *o = &c->routes[j];
			if (strcmp(o->path, r->path) != 0)
				continue;
			bool overlap = (o->nsubprotocols == 0 && r->nsubprotocols == 0) ||
				       share_one(o->subprotocols, o->nsubprotocols, r->subprotocols, r->nsubprotocols);
			if (!overlap)
				continue;
			CHECK(o->format != CONF_FORMAT_RAW && r->format != CONF_FORMAT_RAW && (o->ntypes || r->ntypes) &&
			      !share_one(o->types, o->ntypes, r->types, r->ntypes),
			      "routes '%s' and '%s' both serve %s and cannot be told apart", o->name, r->name, r->path);
		}
	}
	CHECK(!conf_route_for_path(c, "/", 0), "a route for the empty path");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sep[] = "\n\f\n";
	struct file files[MAX_FILES];
	size_t nfiles = 0;
	const char *text = (const char *)data;
	size_t left = size;
	while (nfiles < MAX_FILES) {
		struct file *f = &files[nfiles];
		snprintf(f->name, sizeof f->name, DIR_NAME "/%02zu-fuzz.conf", nfiles * 10);
		const char *s = nfiles + 1 < MAX_FILES ? memmem(text, left, sep, 3) : NULL;
		size_t len = s ? (size_t)(s - text) + 1 : left; /* the file keeps its last '\n' */
		/* A private copy per file: ASan sees reads past its end. */
		char *copy = malloc(len ? len : 1);
		if (!copy)
			abort();
		memcpy(copy, text, len);
		f->text = copy;
		f->len = len;
		f->lines = count_lines(copy, len);
		nfiles++;
		if (!s)
			break;
		text = s + 3;
		left = size - (size_t)(text - (const char *)data);
	}

	struct conf c;
	struct buf errs = { 0 };
	conf_defaults(&c);
	int total = 0;
	for (size_t i = 0; i < nfiles; i++) {
		size_t from = errs.len;
		int n = conf_parse_text(&c, files[i].name, files[i].text, files[i].len, &errs);
		int lines = check_errors(&errs, from, &files[i], 1, false);
		CHECK(n == lines, "%s: %d errors returned, %d reported", files[i].name, n, lines);
		total += n;
		check_conf(&c);
	}
	size_t from = errs.len;
	int n = conf_finish(&c, DIR_NAME, &errs);
	int lines = check_errors(&errs, from, files, nfiles, true);
	CHECK(n == lines, "conf_finish: %d errors returned, %d reported", n, lines);
	check_conf(&c);
	if (total == 0 && n == 0)
		check_servable(&c);

	conf_free(&c);
	CHECK(c.nroutes == 0 && c.routes == NULL, "conf_free left routes behind");
	buf_free(&errs);
	for (size_t i = 0; i < nfiles; i++)
		free((void *)files[i].text);
	return 0;
}
