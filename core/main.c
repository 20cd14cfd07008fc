/* main — the mbgw command line.
 *
 *   mbgw [run] [-c DIR]     serve with the configuration in DIR
 *   mbgw check [-c] DIR     validate a configuration directory and exit
 *   mbgw --version | --help
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf/conf.h"
#include "server/server.h"
#include "util/util_log.h"

#ifndef MBGW_DEFAULT_CONF_DIR
#define MBGW_DEFAULT_CONF_DIR "conf.d"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mbgw [run] [-c DIR]    run the gateway (default DIR: %s)\n"
		"       mbgw check [-c] DIR    validate a configuration directory\n"
		"       mbgw --version         print versions\n",
		MBGW_DEFAULT_CONF_DIR);
}

static int load(const char *dir, struct conf *c)
{
	struct buf errs = { 0 };
	int n = conf_load_dir(dir, c, &errs);
	if (n) {
		fwrite(errs.data, 1, errs.len, stderr);
		fprintf(stderr, "mbgw: %d error%s in configuration %s\n", n, n == 1 ? "" : "s", dir);
	}
	buf_free(&errs);
	return n;
}

int main(int argc, char **argv)
{
	const char *dir = MBGW_DEFAULT_CONF_DIR;
	bool check = false;
	int i = 1;
	if (i < argc && strcmp(argv[i], "run") == 0) {
		i++;
	} else if (i < argc && strcmp(argv[i], "check") == 0) {
		check = true;
		i++;
	}
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("mbgw %s (OpenSSL %s)\n", MBGW_VERSION, OpenSSL_version(OPENSSL_VERSION_STRING));
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (check && argv[i][0] != '-') {
			dir = argv[i];
		} else {
			fprintf(stderr, "mbgw: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	struct conf conf;
	if (load(dir, &conf)) {
		conf_free(&conf);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK (%zu route%s, %zu listener%s)\n", dir, conf.nroutes,
		       conf.nroutes == 1 ? "" : "s", conf.nlisten, conf.nlisten == 1 ? "" : "s");
		conf_free(&conf);
		return 0;
	}
	log_set_level(conf.log_level);
	int rc = server_run(&conf);
	conf_free(&conf);
	return rc;
}
