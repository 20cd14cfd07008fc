/* test_conf — the conf.d parser.
 *
 * In-memory text goes through conf_parse_text and conf_finish as
 * conf_load_dir sends each file: defaults, every key and unit, listen
 * forms, and every error message the parser produces, asserted by exact
 * text including its "file:line: " prefix. conf_load_dir is exercised on
 * temporary directories (name order, no *.conf, missing directory).
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

#define MINIMAL_ROUTE "[route echo]\npath = /ws\nplugin = echo\n"

struct parsed {
	struct conf c;
	struct buf errs;
	int nerr;
	char *text;        /* errs as a C string */
};

static void finish_text(struct parsed *p)
{
	buf_append(&p->errs, "", 1);
	p->text = (char *)p->errs.data;
}

/* Parses one file named test.conf; with `finish`, also conf_finish (as
 * conf_load_dir does, only when the file had no error). */
static struct parsed *parse(const char *text, bool finish)
{
	struct parsed *p = calloc(1, sizeof *p);
	cr_assert(p);
	conf_defaults(&p->c);
	p->nerr = conf_parse_text(&p->c, "test.conf", text, strlen(text), &p->errs);
	if (finish && p->nerr == 0)
		p->nerr += conf_finish(&p->c, "conf.d", &p->errs);
	finish_text(p);
	return p;
}

static void parsed_free(struct parsed *p)
{
	conf_free(&p->c);
	buf_free(&p->errs);
	free(p);
}

/* The text must give exactly one error whose line is `line` (without
 * the trailing newline). */
static void assert_one_error(const char *text, bool finish, const char *line)
{
	struct parsed *p = parse(text, finish);
	cr_assert_eq(p->nerr, 1, "expected 1 error, got %d:\n%s\nfor:\n%s", p->nerr, p->text, text);
	char want[2048];
	snprintf(want, sizeof want, "%s\n", line);
	cr_assert_str_eq(p->text, want, "for:\n%s", text);
	parsed_free(p);
}

/* The text must give at least one error containing `part`. */
static void assert_error_has(const char *text, bool finish, const char *part)
{
	struct parsed *p = parse(text, finish);
	cr_assert_geq(p->nerr, 1, "no error for:\n%s", text);
	cr_assert(strstr(p->text, part), "errors:\n%s\nlack: %s", p->text, part);
	parsed_free(p);
}

static struct parsed *parse_ok(const char *text)
{
	struct parsed *p = parse(text, true);
	cr_assert_eq(p->nerr, 0, "unexpected errors:\n%s\nfor:\n%s", p->text, text);
	return p;
}

/* ---- defaults and values ---------------------------------------------------- */

Test(conf, defaults)
{
	struct conf c;
	conf_defaults(&c);
	cr_assert_eq(c.nlisten, 0);
	cr_assert_eq(c.nroutes, 0);
	cr_assert_eq(c.workers, 0);
	cr_assert_eq(c.backlog, 1024);
	cr_assert_eq(c.max_payload, 1024 * 1024);
	cr_assert_eq(c.max_header_size, 8192);
	cr_assert_eq(c.max_headers, 64);
	cr_assert_eq(c.handshake_timeout_ms, 10000);
	cr_assert_eq(c.close_timeout_ms, 5000);
	cr_assert_eq(c.ping_interval_ms, 30000);
	cr_assert_eq(c.pong_timeout_ms, 10000);
	cr_assert_eq(c.send_queue_limit, 4 * 1024 * 1024);
	cr_assert_eq(c.fragment_size, 64 * 1024);
	cr_assert_eq(c.drain_timeout_ms, 10000);
	cr_assert_eq(c.log_level, LOG_INFO);
	cr_assert_eq(c.max_message_header, 1024);
	cr_assert_null(c.plugin_dir);
	cr_assert_null(c.pid_file);
	conf_free(&c);
}

Test(conf, minimal_route_gets_default_listener)
{
	struct parsed *p = parse_ok(MINIMAL_ROUTE);
	cr_assert_eq(p->c.nlisten, 1);
	const struct sockaddr_in *a = (const struct sockaddr_in *)&p->c.listen[0].addr;
	cr_assert_eq(a->sin_family, AF_INET);
	cr_assert_eq(ntohs(a->sin_port), 8080);
	cr_assert_eq(a->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(p->c.nroutes, 1);
	const struct conf_route *r = &p->c.routes[0];
	cr_assert_str_eq(r->name, "echo");
	cr_assert_str_eq(r->path, "/ws");
	cr_assert_str_eq(r->plugin, "echo");
	cr_assert_eq(r->nsubprotocols, 0);
	cr_assert_not(r->require_subprotocol);
	cr_assert_eq(r->format, CONF_FORMAT_JSON);
	cr_assert_str_eq(r->settings, "{}");
	cr_assert_str_eq(r->where, "test.conf:1");
	cr_assert_eq(conf_route_for_path(&p->c, "/ws", 3), r);
	cr_assert_null(conf_route_for_path(&p->c, "/ws/", 4));
	cr_assert_null(conf_route_for_path(&p->c, "/w", 2));
	cr_assert_eq(conf_route_for_path(&p->c, "/wsx", 3), r, "length-delimited lookup");
	parsed_free(p);
}

Test(conf, every_server_key_and_unit)
{
	struct parsed *p = parse_ok(
		"# the whole server section\n"
		"[server]\n"
		"listen = 127.0.0.1:9001\n"
		"listen = [::1]:9002\n"
		"workers = 4\n"
		"backlog = 512\n"
		"max_payload = 64KiB\n"
		"max_header_size = 16KiB\n"
		"max_headers = 100\n"
		"handshake_timeout = 500ms\n"
		"close_timeout = 2s\n"
		"ping_interval = 0\n"
		"pong_timeout = 1m\n"
		"send_queue_limit = 1MiB\n"
		"fragment_size = 0\n"
		"drain_timeout = 30s\n"
		"log_level = debug\n"
		"plugin_dir = /usr/lib/mbgw/plugins\n"
		"pid_file = \"/run/mbgw #1.pid\"\n"
		"watch = yes\n"
		"max_message_header = 2KiB\n"
		MINIMAL_ROUTE);
	struct conf *c = &p->c;
	cr_assert_eq(c->nlisten, 2);
	cr_assert_eq(c->workers, 4);
	cr_assert_eq(c->backlog, 512);
	cr_assert_eq(c->max_payload, 65536);
	cr_assert_eq(c->max_header_size, 16384);
	cr_assert_eq(c->max_headers, 100);
	cr_assert_eq(c->handshake_timeout_ms, 500);
	cr_assert_eq(c->close_timeout_ms, 2000);
	cr_assert_eq(c->ping_interval_ms, 0);
	cr_assert_eq(c->pong_timeout_ms, 60000);
	cr_assert_eq(c->send_queue_limit, 1 << 20);
	cr_assert_eq(c->fragment_size, 0);
	cr_assert_eq(c->drain_timeout_ms, 30000);
	cr_assert_eq(c->log_level, LOG_DEBUG);
	cr_assert_str_eq(c->plugin_dir, "/usr/lib/mbgw/plugins");
	cr_assert_str_eq(c->pid_file, "/run/mbgw #1.pid");
	cr_assert(c->watch);
	cr_assert_eq(c->max_message_header, 2048);
	cr_assert_str_eq(c->listen[0].text, "127.0.0.1:9001");
	cr_assert_str_eq(c->listen[0].where, "test.conf:3");
	cr_assert_str_eq(c->listen[1].where, "test.conf:4");
	parsed_free(p);
}

Test(conf, units_and_spellings)
{
	struct parsed *p = parse_ok("[server]\nmax_payload = 1MiB\nping_interval = 2m\n"
				    "close_timeout = 1h\nworkers = auto\nwatch = off\n"
				    "log_level = WARN\n" MINIMAL_ROUTE);
	cr_assert_eq(p->c.max_payload, 1 << 20);
	cr_assert_eq(p->c.ping_interval_ms, 120000);
	cr_assert_eq(p->c.close_timeout_ms, 3600000);
	cr_assert_eq(p->c.workers, 0);
	cr_assert_not(p->c.watch);
	cr_assert_eq(p->c.log_level, LOG_WARN);
	parsed_free(p);
	p = parse_ok("[server]\nmax_payload = 16 kB\nhandshake_timeout = 30\n" MINIMAL_ROUTE);
	cr_assert_eq(p->c.max_payload, 16000);
	cr_assert_eq(p->c.handshake_timeout_ms, 30000);
	parsed_free(p);
}

Test(conf, every_route_key)
{
	struct parsed *p = parse_ok(
		"[route chat]\n"
		"path = /chat\n"
		"plugin = chat\n"
		"subprotocols = chat.v2, chat.v1 ,chat.v0\n"
		"require_subprotocol = yes\n"
		"format = header+json\n"
		"types = chat.*, presence.set, *\n"
		"settings = { \"rooms\": 10,\n"
		"  \"motd\": \"hi {there}\" }\n"
		"reload = move\n"
		"slow_consumer = drop_client\n"
		"drain = 30s\n"
		"\n"
		"[route raw]\n"
		"path = /raw\n"
		"plugin = echo\n"
		"format = raw\n"
		"reload = keep\n"
		"slow_consumer = drop_message\n");
	cr_assert_eq(p->c.nroutes, 2);
	const struct conf_route *r = &p->c.routes[0];
	cr_assert_eq(r->nsubprotocols, 3);
	cr_assert_str_eq(r->subprotocols[0], "chat.v2");
	cr_assert_str_eq(r->subprotocols[1], "chat.v1");
	cr_assert_str_eq(r->subprotocols[2], "chat.v0");
	cr_assert(r->require_subprotocol);
	cr_assert_eq(r->format, CONF_FORMAT_JSON);
	cr_assert_eq(r->ntypes, 3);
	cr_assert_str_eq(r->types[0], "chat.*");
	cr_assert_str_eq(r->types[2], "*");
	cr_assert_str_eq(r->settings, "{ \"rooms\": 10,\n  \"motd\": \"hi {there}\" }");
	cr_assert(r->reload_move);
	cr_assert(r->drop_client);
	cr_assert_eq(r->drain_ms, 30000);
	const struct conf_route *raw = &p->c.routes[1];
	cr_assert_eq(raw->format, CONF_FORMAT_RAW);
	cr_assert_not(raw->reload_move);
	cr_assert_not(raw->drop_client);
	cr_assert_str_eq(raw->where, "test.conf:14");
	parsed_free(p);
}

Test(conf, comments_quotes_and_line_endings)
{
	struct parsed *p = parse_ok(
		"; a comment\r\n"
		"  # indented comment\r\n"
		"[server]   # trailing comment\r\n"
		"backlog = 77   # inline comment\r\n"
		"max_payload = 2KiB ;a comment\r\n"
		"pid_file = /tmp/a#b\r\n"
		"plugin_dir = \"/opt/x ; y\"  ; comment\r\n"
		"\r\n"
		"[route echo]\r\n"
		"path = /ws\r\n"
		"plugin = echo\r\n");
	cr_assert_eq(p->c.backlog, 77);
	cr_assert_eq(p->c.max_payload, 2048);
	cr_assert_str_eq(p->c.pid_file, "/tmp/a#b");
	cr_assert_str_eq(p->c.plugin_dir, "/opt/x ; y");
	cr_assert_str_eq(p->c.routes[0].path, "/ws");
	parsed_free(p);
	/* ';' directly after a value is part of it: a bad size here. */
	assert_one_error("[server]\nmax_payload = 2KiB;x\n", false,
			 "test.conf:2: max_payload: invalid size '2KiB;x' (expected a size such as 1MiB)");
}

Test(conf, settings_json_with_trailing_comment)
{
	struct parsed *p = parse_ok("[route echo]\npath = /ws\nplugin = echo\n"
				    "settings = { \"a\": 1 }   # plugin settings\n");
	cr_assert_str_eq(p->c.routes[0].settings, "{ \"a\": 1 }");
	parsed_free(p);
	/* A brace inside the comment does not swallow the following lines. */
	p = parse_ok("[route echo]\npath = /ws\nsettings = {\"a\": [1, 2]} # see {docs\nplugin = echo\n");
	cr_assert_str_eq(p->c.routes[0].settings, "{\"a\": [1, 2]}");
	cr_assert_str_eq(p->c.routes[0].plugin, "echo");
	parsed_free(p);
	/* Anything else after the object is an error, not passed to the plugin. */
	assert_error_has("[route echo]\npath = /ws\nplugin = echo\nsettings = {\"a\": 1} junk\n", false,
			 "test.conf:4: settings: unexpected text after the JSON object: 'junk'");
}

Test(conf, listen_forms)
{
	struct conf_listen l;
	const char *why = NULL;
	cr_assert(conf_parse_listen("8080", &l, &why));
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&l.addr;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&l.addr;
	cr_assert_eq(a4->sin_family, AF_INET);
	cr_assert_eq(ntohs(a4->sin_port), 8080);
	cr_assert_eq(a4->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(l.addrlen, sizeof(struct sockaddr_in));
	cr_assert_str_eq(l.text, "8080");

	cr_assert(conf_parse_listen("0.0.0.0:8080", &l, &why));
	cr_assert_eq(a4->sin_family, AF_INET);
	cr_assert_eq(ntohs(a4->sin_port), 8080);

	cr_assert(conf_parse_listen("127.0.0.1:1", &l, &why));
	cr_assert_eq(a4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	cr_assert_eq(ntohs(a4->sin_port), 1);

	cr_assert(conf_parse_listen("*:80", &l, &why));
	cr_assert_eq(a4->sin_family, AF_INET);
	cr_assert_eq(a4->sin_addr.s_addr, htonl(INADDR_ANY));
	cr_assert_eq(ntohs(a4->sin_port), 80);

	cr_assert(conf_parse_listen("[::1]:9000", &l, &why));
	cr_assert_eq(a6->sin6_family, AF_INET6);
	cr_assert_eq(ntohs(a6->sin6_port), 9000);
	cr_assert(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
	cr_assert_eq(l.addrlen, sizeof(struct sockaddr_in6));

	cr_assert(conf_parse_listen("[::]:65535", &l, &why));
	cr_assert(IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr));
	cr_assert_eq(ntohs(a6->sin6_port), 65535);
	cr_assert_not(l.tls);

	cr_assert(conf_parse_listen("[::1]:8443 tls", &l, &why));
	cr_assert(l.tls);
	cr_assert_eq(ntohs(a6->sin6_port), 8443);
	cr_assert(conf_parse_listen("443\ttls", &l, &why));
	cr_assert(l.tls);
	cr_assert_eq(ntohs(a4->sin_port), 443);
}

static void listen_bad(const char *s, const char *why_part)
{
	struct conf_listen l;
	const char *why = NULL;
	cr_assert_not(conf_parse_listen(s, &l, &why), "'%s' must be refused", s);
	cr_assert_not_null(why);
	cr_assert(strstr(why, why_part), "'%s': why '%s' lacks '%s'", s, why, why_part);
}

Test(conf, listen_errors)
{
	listen_bad("0", "port must be a number from 1 to 65535");
	listen_bad("65536", "port must be");
	listen_bad("http", "port must be");
	listen_bad("80x", "port must be");
	listen_bad("-1", "port must be");
	listen_bad("1.2.3.4:", "port must be");
	listen_bad("", "port must be");
	listen_bad("::1:80", "IPv6 addresses must be written in brackets");
	listen_bad("[::1]", "expected [IPv6]:port");
	listen_bad("[::1:80", "expected [IPv6]:port");
	listen_bad("[::1]:", "port must be");
	listen_bad("localhost:80", "host names are not resolved");
	listen_bad("1.2.3.256:80", "not a numeric");
	listen_bad("[zz]:80", "IPv6");
	/* Brackets hold an IPv6 address, nothing else. */
	listen_bad("[]:80", "IPv6");
	listen_bad("[1.2.3.4]:80", "IPv6");
	listen_bad("[*]:80", "IPv6");
	listen_bad("0123456789012345678901234567890123456789012345678901234567890123456789:80",
		   "address too long");
	listen_bad("8443 ssl", "unknown flag after the address (expected tls, metrics or proxy_protocol)");
	listen_bad("8443 tls tls", "unknown flag");
}

Test(conf, listen_in_the_parser)
{
	assert_one_error("[server]\nlisten = localhost:80\n", false,
			 "test.conf:2: listen: invalid address 'localhost:80': not a numeric IPv4 or IPv6 "
			 "address (host names are not resolved) (expected 0.0.0.0:8080, [::]:8080 or 8080)");
	assert_one_error("[server]\nlisten = 8080\nlisten = 0.0.0.0:8080\n", false,
			 "test.conf:3: listen: '0.0.0.0:8080' is already listed at test.conf:2");
	/* Too many listeners. */
	char text[4096];
	size_t n = (size_t)snprintf(text, sizeof text, "[server]\n");
	for (int i = 0; i <= CONF_MAX_LISTEN; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "listen = %d\n", 9000 + i);
	assert_one_error(text, false, "test.conf:18: listen: too many listeners (at most 16)");
}

/* ---- every error message ----------------------------------------------------------- */

Test(conf, unknown_key_with_hint)
{
	assert_one_error("[server]\nmax_paylod = 1MiB\n", false,
			 "test.conf:2: unknown key 'max_paylod' in [server] (did you mean 'max_payload'?)");
	assert_one_error("[server]\nmax_payload_size = 1MiB\n", false,
			 "test.conf:2: unknown key 'max_payload_size' in [server] (did you mean 'max_payload'?)");
	assert_one_error("[server]\nzzz = 1\n", false, "test.conf:2: unknown key 'zzz' in [server]");
	assert_one_error("[route a]\npath = /a\nplugn = echo\n", false,
			 "test.conf:3: unknown key 'plugn' in [route] (did you mean 'plugin'?)");
	assert_one_error("[route a]\nlisten = 80\n", false, "test.conf:2: unknown key 'listen' in [route]");
}

Test(conf, unknown_section_with_hint)
{
	assert_one_error("[sever]\nbacklog = 1\n", false,
			 "test.conf:1: unknown section [sever] (did you mean [server]?)");
	assert_one_error("[routes x]\npath = /x\n", false,
			 "test.conf:1: unknown section [routes] (did you mean [route]?)");
	assert_one_error("[global]\n", false,
			 "test.conf:1: unknown section [global] (expected [server], [route NAME], [tls] or [tls NAME])");
}

Test(conf, section_header_errors)
{
	assert_one_error("[server\nbacklog = 1\n", false,
			 "test.conf:1: section header is missing its closing ']'");
	assert_one_error("[server] extra\n", false,
			 "test.conf:1: unexpected text after section header: 'extra'");
	assert_one_error("[server x]\n", false, "test.conf:1: [server] takes no name (found 'x')");
	assert_one_error("[route]\npath = /x\n", false, "test.conf:1: [route] needs a name, e.g. [route echo]");
	assert_one_error("[route a/b]\npath = /x\n", false,
			 "test.conf:1: route name 'a/b' may contain only letters, digits, '-', '_' and '.'");
	assert_one_error("[route a]\npath = /a\nplugin = echo\n[route a]\npath = /b\n", false,
			 "test.conf:4: route 'a' is already defined at test.conf:1");
}

Test(conf, key_outside_section)
{
	assert_one_error("listen = 8080\n", false,
			 "test.conf:1: 'listen' is outside any section (put it under [server] or [route NAME])");
}

Test(conf, duplicate_keys)
{
	assert_one_error("[server]\nbacklog = 1\n\nbacklog = 2\n", false,
			 "test.conf:4: backlog is set twice (first at test.conf:2)");
	assert_one_error("[route a]\npath = /a\npath = /b\n", false,
			 "test.conf:3: path is set twice (first at test.conf:2)");
	/* The same key in two routes is fine, and [server] may be reopened
	 * but a key still counts once. */
	struct parsed *p = parse("[route a]\npath = /a\nplugin = echo\n[route b]\npath = /b\nplugin = echo\n"
				 "[server]\nbacklog = 1\n[server]\nbacklog = 2\n", false);
	cr_assert_eq(p->nerr, 1, "%s", p->text);
	cr_assert_str_eq(p->text, "test.conf:10: backlog is set twice (first at test.conf:8)\n");
	parsed_free(p);
}

Test(conf, bad_values)
{
	assert_one_error("[server]\nmax_payload = 1XB\n", false,
			 "test.conf:2: max_payload: invalid size '1XB' (expected a size such as 1MiB)");
	assert_one_error("[server]\nmax_payload = 99999999999999999999\n", false,
			 "test.conf:2: max_payload: invalid size '99999999999999999999' (expected a size such as 1MiB)");
	assert_one_error("[server]\nping_interval = 30x\n", false,
			 "test.conf:2: ping_interval: invalid duration '30x' (expected a duration such as 30s (0 disables))");
	assert_one_error("[server]\nwatch = maybe\n", false,
			 "test.conf:2: watch: invalid boolean 'maybe' (expected yes or no)");
	assert_one_error("[route a]\nrequire_subprotocol = sure\n", false,
			 "test.conf:2: require_subprotocol: invalid boolean 'sure' (expected yes or no)");
	assert_one_error("[server]\nbacklog = many\n", false,
			 "test.conf:2: backlog: invalid number 'many' (expected a number such as 1024)");
	assert_one_error("[server]\nworkers = 0\n", false,
			 "test.conf:2: workers: invalid value '0' (expected auto or a number of threads such as 4)");
	assert_one_error("[server]\nlog_level = loud\n", false,
			 "test.conf:2: log_level: unknown level 'loud' (expected error, warn, info or debug)");
	assert_one_error("[route a]\nformat = xml\n", false,
			 "test.conf:2: format: unknown format 'xml' (expected header+json or raw)");
	assert_one_error("[route a]\nreload = later\n", false,
			 "test.conf:2: reload: unknown policy 'later' (expected keep or move)");
	assert_one_error("[route a]\nslow_consumer = wait\n", false,
			 "test.conf:2: slow_consumer: unknown policy 'wait' (expected drop_message or drop_client)");
}

Test(conf, out_of_range)
{
	assert_one_error("[server]\nmax_headers = 200\n", false,
			 "test.conf:2: max_headers: value '200' is out of range (expected a number such as 64)");
	assert_one_error("[server]\nbacklog = 0\n", false,
			 "test.conf:2: backlog: value '0' is out of range (expected a number such as 1024)");
	assert_one_error("[server]\nmax_payload = 0\n", false,
			 "test.conf:2: max_payload: value '0' is out of range (expected a size such as 1MiB)");
	assert_one_error("[server]\nmax_payload = 2048GiB\n", false,
			 "test.conf:2: max_payload: value '2048GiB' is out of range (expected a size such as 1MiB)");
	assert_one_error("[server]\nworkers = 257\n", false,
			 "test.conf:2: workers: value '257' is out of range (expected auto or a number of threads such as 4)");
	assert_one_error("[server]\nhandshake_timeout = 0\n", false,
			 "test.conf:2: handshake_timeout: value '0' is out of range (expected a duration such as 10s)");
	assert_one_error("[server]\nmax_header_size = 255\n", false,
			 "test.conf:2: max_header_size: value '255' is out of range (expected a size such as 8KiB)");
	assert_one_error("[route a]\ndrain = 2d\n", false,
			 "test.conf:2: drain: value '2d' is out of range (expected a duration such as 30s)");
}

Test(conf, line_syntax_errors)
{
	assert_one_error("[server]\nbacklog 5\n", false,
			 "test.conf:2: expected 'key = value' or '[section]', found 'backlog 5'");
	assert_one_error("[server]\n = 5\n", false, "test.conf:2: missing key before '='");
	assert_one_error("[server]\nbacklog =\n", false, "test.conf:2: backlog: missing value after '='");
	assert_one_error("[server]\nbacklog =   # nothing\n", false,
			 "test.conf:2: backlog: missing value after '='");
	assert_one_error("[server]\npid_file = \"\"\n", false, "test.conf:2: pid_file: missing value after '='");
	assert_one_error("[server]\npid_file = \"/tmp/x\n", false,
			 "test.conf:2: pid_file: unterminated quoted value");
	assert_one_error("[server]\npid_file = \"/tmp/x\" y\n", false,
			 "test.conf:2: pid_file: unexpected text after quoted value: 'y'");
	char nul[] = "[server]\nbacklog = 1\0\n";
	struct parsed *p = calloc(1, sizeof *p);
	conf_defaults(&p->c);
	p->nerr = conf_parse_text(&p->c, "test.conf", nul, sizeof nul - 1, &p->errs);
	finish_text(p);
	cr_assert_eq(p->nerr, 1);
	cr_assert_str_eq(p->text, "test.conf:2: NUL byte in line\n");
	parsed_free(p);
	char *longl = malloc(5000);
	memcpy(longl, "[server]\n#", 10);
	memset(longl + 10, 'x', 4200);
	strcpy(longl + 4210, "\nbacklog = 3\n");
	p = parse(longl, false);
	cr_assert_eq(p->nerr, 1);
	cr_assert_str_eq(p->text, "test.conf:2: line longer than 4095 bytes\n");
	cr_assert_eq(p->c.backlog, 3, "parsing goes on after the long line");
	parsed_free(p);
	free(longl);
}

Test(conf, path_errors)
{
	assert_one_error("[route a]\npath = ws\n", false,
			 "test.conf:2: path: 'ws' must start with '/' (expected an absolute path such as /ws)");
	assert_one_error("[route a]\npath = /a?b\n", false,
			 "test.conf:2: path: '/a?b' contains a space, '?', '#' or a non-ASCII character");
	assert_one_error("[route a]\npath = \"/a b\"\n", false,
			 "test.conf:2: path: '/a b' contains a space, '?', '#' or a non-ASCII character");
	assert_one_error("[route a]\npath = /caf\xc3\xa9\n", false,
			 "test.conf:2: path: '/caf\xc3\xa9' contains a space, '?', '#' or a non-ASCII character");
}

Test(conf, subprotocol_and_type_errors)
{
	assert_one_error("[route a]\nsubprotocols = chat, bad/proto\n", false,
			 "test.conf:2: subprotocols: 'bad/proto' is not a valid subprotocol token");
	assert_one_error("[route a]\nsubprotocols = chat, , x\n", false,
			 "test.conf:2: subprotocols: '' is not a valid subprotocol token");
	char text[1024];
	size_t n = (size_t)snprintf(text, sizeof text, "[route a]\nsubprotocols = p0");
	for (int i = 1; i <= CONF_MAX_SUBPROTOCOLS; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, ", p%d", i);
	snprintf(text + n, sizeof text - n, "\n");
	assert_one_error(text, false, "test.conf:2: subprotocols: too many subprotocols (at most 16)");
	assert_one_error("[route a]\ntypes = chat.*, a*\n", false,
			 "test.conf:2: types: 'a*' is not a message-type pattern (exact type, 'prefix.*' or '*')");
	assert_one_error("[route a]\ntypes = *.x\n", false,
			 "test.conf:2: types: '*.x' is not a message-type pattern (exact type, 'prefix.*' or '*')");
	assert_one_error("[route a]\ntypes = a=b\n", false,
			 "test.conf:2: types: 'a=b' is not a message-type pattern (exact type, 'prefix.*' or '*')");
}

Test(conf, settings_errors)
{
	assert_one_error("[route a]\nsettings = {\n\"a\": 1\n\n", false,
			 "test.conf:2: settings: JSON object is not closed (missing '}' before line 5)");
	assert_one_error("[route a]\nsettings = [1, 2]\n", false,
			 "test.conf:2: settings: not a JSON object (expected a JSON object such as { \"rooms\": 10 })");
	assert_error_has("[route a]\nsettings = {\"a\": }\n", false,
			 "test.conf:2: settings: not a valid JSON object (error near '");
	/* Lines after a multi-line value are numbered correctly. */
	assert_one_error("[route a]\nsettings = {\n\"a\": 1\n}\nbogus = 1\n", false,
			 "test.conf:5: unknown key 'bogus' in [route]");
}

Test(conf, finish_errors)
{
	assert_one_error("[server]\nbacklog = 5\n", true,
			 "conf.d: no [route NAME] section: nothing would be served "
			 "(add e.g. [route echo] with path = /ws and plugin = echo)");
	assert_one_error("[route a]\nplugin = echo\n", true,
			 "test.conf:1: route 'a' has no path (add e.g. path = /ws)");
	assert_one_error("[route a]\npath = /a\n", true,
			 "test.conf:1: route 'a' has no plugin (add e.g. plugin = echo)");
	assert_one_error("[route a]\npath = /a\nplugin = echo\nrequire_subprotocol = yes\n", true,
			 "test.conf:1: route 'a' sets require_subprotocol but lists no subprotocols");
	assert_one_error("[route a]\npath = /a\nplugin = echo\nformat = raw\ntypes = x\n", true,
			 "test.conf:1: route 'a' is format = raw, so it cannot select messages by types");
}

Test(conf, routes_sharing_a_path)
{
	assert_one_error("[route a]\npath = /ws\nplugin = echo\n\n[route b]\npath = /ws\nplugin = echo\n", true,
			 "test.conf:5: route 'b' and route 'a' (test.conf:1) both serve path /ws and both take "
			 "every message type: narrow one with types = ...");
	assert_one_error("[route a]\npath = /ws\nplugin = echo\nformat = raw\n"
			 "[route b]\npath = /ws\nplugin = echo\ntypes = x\n", true,
			 "test.conf:5: route 'b' and route 'a' (test.conf:1) both serve path /ws and one is "
			 "format = raw, which takes every message: give them different paths or subprotocols");
	assert_one_error("[route a]\npath = /ws\nplugin = echo\ntypes = chat.*, x\n"
			 "[route b]\npath = /ws\nplugin = echo\ntypes = y, chat.*\n", true,
			 "test.conf:5: route 'b' and route 'a' (test.conf:1) both serve path /ws and both claim "
			 "the same message type pattern");
	/* Told apart by subprotocol or by type: fine. */
	struct parsed *p = parse_ok("[route a]\npath = /ws\nplugin = echo\nsubprotocols = a\n"
				    "[route b]\npath = /ws\nplugin = echo\nsubprotocols = b\n");
	parsed_free(p);
	p = parse_ok("[route a]\npath = /ws\nplugin = echo\ntypes = chat.*\n"
		     "[route b]\npath = /ws\nplugin = echo\ntypes = game.*\n");
	parsed_free(p);
	/* Overlapping subprotocol lists do overlap. */
	assert_error_has("[route a]\npath = /ws\nplugin = echo\nsubprotocols = a, c\n"
			 "[route b]\npath = /ws\nplugin = echo\nsubprotocols = b, c\n", true,
			 "test.conf:5: route 'b' and route 'a' (test.conf:1) both serve path /ws");
}

Test(conf, all_errors_are_collected)
{
	struct parsed *p = parse("[server]\nbacklog = x\nmax_paylod = 1\n[nope]\nlisten = 1\n[route r]\npath = y\n",
				 false);
	cr_assert_eq(p->nerr, 4, "%s", p->text);
	cr_assert_str_eq(p->text,
			 "test.conf:2: backlog: invalid number 'x' (expected a number such as 1024)\n"
			 "test.conf:3: unknown key 'max_paylod' in [server] (did you mean 'max_payload'?)\n"
			 "test.conf:4: unknown section [nope] (expected [server], [route NAME], [tls] or [tls NAME])\n"
			 "test.conf:7: path: 'y' must start with '/' (expected an absolute path such as /ws)\n");
	parsed_free(p);
}

Test(conf, edit_distance)
{
	cr_assert_eq(conf_edit_distance("", ""), 0);
	cr_assert_eq(conf_edit_distance("abc", ""), 3);
	cr_assert_eq(conf_edit_distance("", "abc"), 3);
	cr_assert_eq(conf_edit_distance("kitten", "sitting"), 3);
	cr_assert_eq(conf_edit_distance("max_paylod", "max_payload"), 1);
	cr_assert_eq(conf_edit_distance("backlog", "backlog"), 0);
	cr_assert_eq(conf_edit_distance("flaw", "lawn"), 2);
}

/* ---- conf_load_dir ------------------------------------------------------------- */

static char *make_dir(void)
{
	char tmpl[] = "/tmp/mbgw-conf-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	cr_assert_not_null(d);
	return strdup(d);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static void remove_dir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static int load(const char *dir, struct conf *c, char **text, struct buf *errs)
{
	memset(errs, 0, sizeof *errs);
	int n = conf_load_dir(dir, c, errs);
	buf_append(errs, "", 1);
	*text = (char *)errs->data;
	return n;
}

Test(conf, load_dir_reads_files_in_name_order)
{
	char *dir = make_dir();
	write_file(dir, "20-b.conf", "[server]\nbacklog = 2\n[route b]\npath = /b\nplugin = echo\n");
	write_file(dir, "10-a.conf", "[server]\nbacklog = 1\n[route a]\npath = /a\nplugin = echo\n");
	write_file(dir, "30-c.conf.disabled", "garbage\n");
	write_file(dir, "README", "garbage\n");
	write_file(dir, ".hidden.conf", "garbage\n");
	struct conf c;
	struct buf errs;
	char *text;
	int n = load(dir, &c, &text, &errs);
	char want[1024];
	snprintf(want, sizeof want, "%s/20-b.conf:2: backlog is set twice (first at %s/10-a.conf:2)\n", dir, dir);
	cr_assert_eq(n, 1, "%s", text);
	cr_assert_str_eq(text, want);
	cr_assert_eq(c.nroutes, 2);
	cr_assert_str_eq(c.routes[0].name, "a", "10-a.conf is read first");
	cr_assert_str_eq(c.routes[1].name, "b");
	conf_free(&c);
	buf_free(&errs);

	/* Without the conflict the directory loads cleanly. */
	write_file(dir, "20-b.conf", "[route b]\npath = /b\nplugin = echo\n");
	n = load(dir, &c, &text, &errs);
	cr_assert_eq(n, 0, "%s", text);
	cr_assert_eq(c.backlog, 1);
	cr_assert_eq(c.nroutes, 2);
	cr_assert_eq(c.nlisten, 1);
	snprintf(want, sizeof want, "%s/10-a.conf:3", dir);
	cr_assert_str_eq(c.routes[0].where, want);
	conf_free(&c);
	buf_free(&errs);
	remove_dir(dir);
	free(dir);
}

Test(conf, load_dir_cross_file_rules)
{
	char *dir = make_dir();
	write_file(dir, "a.conf", "[route x]\npath = /ws\nplugin = echo\n");
	write_file(dir, "b.conf", "[route x]\npath = /other\nplugin = echo\n");
	struct conf c;
	struct buf errs;
	char *text;
	int n = load(dir, &c, &text, &errs);
	char want[1024];
	snprintf(want, sizeof want, "%s/b.conf:1: route 'x' is already defined at %s/a.conf:1\n", dir, dir);
	cr_assert_eq(n, 1, "%s", text);
	cr_assert_str_eq(text, want);
	conf_free(&c);
	buf_free(&errs);

	write_file(dir, "b.conf", "[route y]\npath = /ws\nplugin = echo\n");
	n = load(dir, &c, &text, &errs);
	snprintf(want, sizeof want,
		 "%s/b.conf:1: route 'y' and route 'x' (%s/a.conf:1) both serve path /ws and both take "
		 "every message type: narrow one with types = ...\n", dir, dir);
	cr_assert_eq(n, 1, "%s", text);
	cr_assert_str_eq(text, want);
	conf_free(&c);
	buf_free(&errs);
	remove_dir(dir);
	free(dir);
}

Test(conf, load_dir_without_conf_files)
{
	char *dir = make_dir();
	write_file(dir, "notes.txt", "[server]\n");
	struct conf c;
	struct buf errs;
	char *text;
	int n = load(dir, &c, &text, &errs);
	char want[1024];
	snprintf(want, sizeof want, "%s: no *.conf files in the configuration directory\n", dir);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(text, want);
	conf_free(&c);
	buf_free(&errs);
	remove_dir(dir);
	free(dir);
}

Test(conf, load_dir_missing_directory)
{
	struct conf c;
	struct buf errs;
	char *text;
	int n = load("/nonexistent/mbgw-conf.d", &c, &text, &errs);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(text, "/nonexistent/mbgw-conf.d: cannot open configuration directory: "
			       "No such file or directory\n");
	conf_free(&c);
	buf_free(&errs);
}

Test(conf, load_dir_unreadable_entry)
{
	char *dir = make_dir();
	write_file(dir, "a.conf", MINIMAL_ROUTE);
	char sub[512];
	snprintf(sub, sizeof sub, "%s/b.conf", dir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	struct conf c;
	struct buf errs;
	char *text;
	int n = load(dir, &c, &text, &errs);
	char want[1024];
	snprintf(want, sizeof want, "%s/b.conf: cannot read: Is a directory\n", dir);
	cr_assert_eq(n, 1, "%s", text);
	cr_assert_str_eq(text, want);
	conf_free(&c);
	buf_free(&errs);
	remove_dir(dir);
	free(dir);
}

Test(conf, load_dir_errors_skip_finish)
{
	/* A file error is reported; cross-file checks would only add noise. */
	char *dir = make_dir();
	write_file(dir, "a.conf", "[route a]\nplugin = echo\nbogus = 1\n");
	struct conf c;
	struct buf errs;
	char *text;
	int n = load(dir, &c, &text, &errs);
	cr_assert_eq(n, 1, "%s", text);
	cr_assert(strstr(text, "a.conf:3: unknown key 'bogus' in [route]"), "%s", text);
	conf_free(&c);
	buf_free(&errs);
	remove_dir(dir);
	free(dir);
}

/* ---- keep_headers and TLS sections ------------------------------------------------ */

Test(conf, keep_headers)
{
	struct parsed *p = parse_ok(MINIMAL_ROUTE "keep_headers = User-Agent, X-Request-Id\n");
	cr_assert_eq(p->c.routes[0].nkeep_headers, 2);
	cr_assert_str_eq(p->c.routes[0].keep_headers[0], "User-Agent");
	cr_assert_str_eq(p->c.routes[0].keep_headers[1], "X-Request-Id");
	parsed_free(p);
	assert_one_error("[route a]\nkeep_headers = Good, Bad Name\n", false,
			 "test.conf:2: keep_headers: 'Bad Name' is not a header name");
}

Test(conf, tls_sections)
{
	struct parsed *p = parse_ok("[server]\nlisten = 8443 tls\n[tls]\ncertificate = /c.pem\nkey = /k.pem\n"
				    "min_version = 1.3\n[tls other]\ncertificate = /o.pem\nkey = /ok.pem\n"
				    "server_names = example.org, *.example.org\n" MINIMAL_ROUTE);
	cr_assert_eq(p->c.ntls, 2);
	cr_assert(p->c.listen[0].tls);
	parsed_free(p);
	assert_one_error("[server]\nlisten = 8443 tls\n" MINIMAL_ROUTE, true,
			 "test.conf:2: listen '8443 tls' is tls but there is no [tls] section with certificate and key");
	assert_one_error("[tls]\ncertificate = /c.pem\n" MINIMAL_ROUTE, true,
			 "test.conf:1: [tls] needs both certificate and key");
	assert_one_error("[tls]\ncertificate = /c.pem\nkey = /k.pem\n[tls]\n", false,
			 "test.conf:4: [tls] is already defined at test.conf:1");
	assert_one_error("[tls]\ncertificate = /c.pem\nkey = /k.pem\nmin_version = 1.1\n" MINIMAL_ROUTE, true,
			 "test.conf:1: min_version must be 1.2 or 1.3 (found '1.1')");
	assert_one_error("[tls x]\ncertificate = /c.pem\nkey = /k.pem\n" MINIMAL_ROUTE, true,
			 "test.conf:1: [tls x] needs server_names (the SNI names it serves)");
	assert_one_error("[tls x]\nserver_names = a_b.example\n", false,
			 "test.conf:2: server_names: 'a_b.example' is not a host name or *.suffix pattern");
	assert_one_error("[tls]\nclient_auth = required\ncertificate = /c.pem\nkey = /k.pem\n" MINIMAL_ROUTE, true,
			 "test.conf:1: client_auth = required needs client_ca (the CAs that sign client certificates)");
	assert_one_error("[tls]\ncertificate = /c.pem\nkey = /k.pem\nsever_names = x\n", false,
			 "test.conf:4: unknown key 'sever_names' in [tls] (did you mean 'server_names'?)");
}
