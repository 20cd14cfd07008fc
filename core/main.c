/* main — the mbgw command line.
 *
 *   mbgw [run] [-c DIR]     serve with the configuration in DIR
 *   mbgw check [-c] DIR     validate a configuration directory (loading and
 *                           initialising every plugin) and exit
 *   mbgw reload [-c DIR]    ask the running server (pid_file) to reload
 *   mbgw --version | --help
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include "conf/conf.h"
#include "plugin/plugin_host.h"
#include "plugin/plugin_so.h"
#include "route/route_table.h"
#include "server/server.h"
#include "tls/tls.h"
#include "util/util_log.h"

#ifndef MBGW_DEFAULT_CONF_DIR
#define MBGW_DEFAULT_CONF_DIR "conf.d"
#endif
#ifndef MBGW_DEFAULT_PLUGIN_DIR
#define MBGW_DEFAULT_PLUGIN_DIR "plugins"
#endif

/* Default directories (packaging). The build-tree mbgw uses the compiled-in
 * ones above. The installed mbgw (packaging/install.cmake) is also given
 * MBGW_EXE_CONF_DIR and MBGW_EXE_PLUGIN_DIR, the same directories relative
 * to the folder of its executable (e.g. "../lib/mbgw/plugins" from
 * <prefix>/sbin), and resolves them through /proc/self/exe: an install
 * prefix, a DESTDIR staging tree or an unpacked .deb each find their own
 * plugins and configuration without flags. The compiled-in absolute ones
 * stay the fallback. */
static const char *g_default_conf_dir = MBGW_DEFAULT_CONF_DIR;
static const char *g_default_plugin_dir = MBGW_DEFAULT_PLUGIN_DIR;

#if defined(MBGW_EXE_CONF_DIR) && defined(MBGW_EXE_PLUGIN_DIR)
static char g_exe_conf_dir[PATH_MAX];
static char g_exe_plugin_dir[PATH_MAX];

/* "<exe_dir>/<rel>" into out, each leading "../" of rel taken off exe_dir;
 * fallback when it does not fit. */
static const char *dir_from_exe(const char *exe_dir, const char *rel, char *out, size_t cap,
				const char *fallback)
{
	char base[PATH_MAX];
	snprintf(base, sizeof base, "%s", exe_dir);
	while (strncmp(rel, "../", 3) == 0) {
		char *slash = strrchr(base, '/');
		if (!slash)
			return fallback;
		*slash = '\0';
		rel += 3;
	}
	int n = snprintf(out, cap, "%s/%s", base, rel);
	return n > 0 && (size_t)n < cap ? out : fallback;
}

static void init_default_dirs(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	g_default_conf_dir = dir_from_exe(exe, MBGW_EXE_CONF_DIR, g_exe_conf_dir, sizeof g_exe_conf_dir,
					  g_default_conf_dir);
	g_default_plugin_dir = dir_from_exe(exe, MBGW_EXE_PLUGIN_DIR, g_exe_plugin_dir,
					    sizeof g_exe_plugin_dir, g_default_plugin_dir);
}
#else
static void init_default_dirs(void)
{
}
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mbgw [run] [-c DIR]      run the gateway (default DIR: %s)\n"
		"       mbgw check [-c] DIR      validate a configuration directory, plugins included\n"
		"       mbgw reload [-c DIR]     make the running gateway reload (needs pid_file)\n"
		"       mbgw --version           print versions\n",
		g_default_conf_dir);
}

static void print_errors(const struct buf *errs)
{
	if (errs->len)
		fwrite(errs->data, 1, errs->len, stderr);
}

static struct conf *load(const char *dir)
{
	struct conf *c = calloc(1, sizeof *c);
	if (!c) {
		fprintf(stderr, "mbgw: out of memory\n");
		exit(1);
	}
	struct buf errs = { 0 };
	int n = conf_load_dir(dir, c, &errs);
	if (n) {
		print_errors(&errs);
		fprintf(stderr, "mbgw: %d error%s in configuration %s\n", n, n == 1 ? "" : "s", dir);
		conf_free(c);
		free(c);
		c = NULL;
	}
	buf_free(&errs);
	return c;
}

/* Builds and installs the first route table (plugins loaded and
 * initialised). Returns 0 or prints the errors and returns -1. */
static int install_routes(const char *dir, const char *plugin_dir)
{
	struct conf *c = load(dir);
	if (!c)
		return -1;
	struct buf errs = { 0 };
	struct route_table *t = route_table_build(c, dir, plugin_dir, NULL, &errs);
	if (!t) {
		print_errors(&errs);
		fprintf(stderr, "mbgw: cannot load the routes of %s\n", dir);
		buf_free(&errs);
		return -1;
	}
	buf_free(&errs);
	route_table_unref(route_table_swap(t, 0));
	return 0;
}

/* Builds and installs the TLS contexts when a listener needs them. */
static int install_tls(const struct conf *c, const char *dir)
{
	bool want = false;
	for (size_t i = 0; i < c->nlisten; i++)
		want |= c->listen[i].tls;
	if (!want)
		return 0;
	struct buf errs = { 0 };
	struct tls_ctx *t = tls_ctx_build(c, dir, &errs);
	if (!t) {
		print_errors(&errs);
		fprintf(stderr, "mbgw: cannot set up TLS\n");
		buf_free(&errs);
		return -1;
	}
	buf_free(&errs);
	tls_ctx_install(t);
	return 0;
}

static char g_private_dir[256];

static int init_plugin_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(g_private_dir, sizeof g_private_dir, "%s/mbgw-plugins.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(g_private_dir) || plugin_so_init(g_private_dir) < 0) {
		fprintf(stderr, "mbgw: cannot create a private directory for plugin copies (%s): %s\n",
			g_private_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void release_routes(void)
{
	route_table_clear();
	plugin_host_reap_retired();
	plugin_so_cleanup();
	tls_ctx_install(NULL);
}

static int cmd_reload(const char *dir)
{
	struct conf *c = load(dir);
	if (!c)
		return 1;
	if (!c->pid_file) {
		fprintf(stderr, "mbgw: %s sets no pid_file in [server]: cannot find the running server "
			"(send it SIGHUP yourself, e.g. kill -HUP <pid>)\n", dir);
		conf_free(c);
		free(c);
		return 1;
	}
	FILE *f = fopen(c->pid_file, "r");
	long pid = 0;
	if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
		fprintf(stderr, "mbgw: cannot read a pid from %s: %s\n", c->pid_file,
			f ? "no number in it" : strerror(errno));
		if (f)
			fclose(f);
		conf_free(c);
		free(c);
		return 1;
	}
	fclose(f);
	int rc = 0;
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "mbgw: cannot signal process %ld (from %s): %s\n", pid, c->pid_file, strerror(errno));
		rc = 1;
	} else {
		printf("mbgw: asked process %ld to reload; its log tells the outcome\n", pid);
	}
	conf_free(c);
	free(c);
	return rc;
}

int main(int argc, char **argv)
{
	init_default_dirs();
	const char *dir = g_default_conf_dir;
	enum { RUN, CHECK, RELOAD } cmd = RUN;
	int i = 1;
	if (i < argc && strcmp(argv[i], "run") == 0) {
		i++;
	} else if (i < argc && strcmp(argv[i], "check") == 0) {
		cmd = CHECK;
		i++;
	} else if (i < argc && strcmp(argv[i], "reload") == 0) {
		cmd = RELOAD;
		i++;
	}
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("mbgw %s (plugin ABI %d.%d; OpenSSL %s, zlib %s, cJSON %s)\n", MBGW_VERSION,
			       MBGW_ABI_MAJOR, MBGW_ABI_MINOR, OpenSSL_version(OPENSSL_VERSION_STRING),
			       zlibVersion(), cJSON_Version());
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (cmd == CHECK && argv[i][0] != '-') {
			dir = argv[i];
		} else {
			fprintf(stderr, "mbgw: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (cmd == RELOAD)
		return cmd_reload(dir);

	struct conf *conf = load(dir);
	if (!conf)
		return 1;
	if (init_plugin_dir() < 0)
		return 1;
	const char *plugin_dir = conf->plugin_dir ? conf->plugin_dir : g_default_plugin_dir;
	if (cmd == CHECK) {
		/* Plugins log their own lines; keep check's output to the verdict. */
		log_set_level(LOG_WARN);
		int rc = install_tls(conf, dir) == 0 ? install_routes(dir, g_default_plugin_dir) : -1;
		if (rc == 0)
			printf("%s: configuration OK (%zu route%s, %zu listener%s, plugins from %s)\n", dir,
			       conf->nroutes, conf->nroutes == 1 ? "" : "s", conf->nlisten,
			       conf->nlisten == 1 ? "" : "s", plugin_dir);
		release_routes();
		conf_free(conf);
		free(conf);
		return rc ? 1 : 0;
	}
	log_set_level(conf->log_level);
	log_set_json(conf->log_json);
	int rc = 1;
	if (install_tls(conf, dir) == 0 && install_routes(dir, g_default_plugin_dir) == 0) {
		struct server_paths paths = { dir, g_default_plugin_dir };
		rc = server_run(conf, &paths);
	}
	release_routes();
	conf_free(conf);
	free(conf);
	return rc;
}
