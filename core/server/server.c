/* server — process-wide start-up and shutdown.
 *
 * The main thread opens every listener (so bind errors stop start-up with
 * a clear message), starts one worker per configured thread, then waits
 * for signals with sigwait(): SIGINT/SIGTERM start a graceful shutdown
 * (stop accepting, close every connection with 1001, wait up to
 * drain_timeout), a second one exits at once. Workers never see signals.
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "edge/edge_forwarded.h"
#include "net/net_listen.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "plugin/plugin_host.h"
#include "route/route_table.h"
#include "tls/tls.h"
#include "util/util_log.h"

#define TAG_WAKE 1u
#define TAG_LISTEN_BASE 16u

uint64_t server_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static int worker_setup(struct server *srv, struct worker *w, unsigned index)
{
	const struct conf *conf = srv->conf;
	memset(w, 0, sizeof *w);
	w->index = index;
	w->srv = srv;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&w->q_lock, NULL);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd < 0 || w->evfd < 0) {
		log_error("worker %u: cannot create epoll/eventfd: %s", index, strerror(errno));
		return -1;
	}
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = TAG_WAKE };
	epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &e);

	w->listen_fds = calloc(conf->nlisten, sizeof *w->listen_fds);
	if (!w->listen_fds)
		return -1;
	for (size_t i = 0; i < conf->nlisten; i++) {
		char why[256];
		int fd = net_listen_open(&conf->listen[i], (int)conf->backlog, why, sizeof why);
		if (fd < 0) {
			log_error("%s: cannot listen on %s: %s", conf->listen[i].where,
				  conf->listen[i].text, why);
			return -1;
		}
		w->listen_fds[i] = fd;
		w->nlisten++;
		struct epoll_event le = { .events = EPOLLIN, .data.u64 = TAG_LISTEN_BASE + i };
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &le);
	}
	return 0;
}

static void worker_teardown(struct worker *w)
{
	for (size_t i = 0; i < w->nlisten; i++)
		if (w->listen_fds[i] >= 0)
			close(w->listen_fds[i]);
	free(w->listen_fds);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	pthread_mutex_destroy(&w->q_lock);
}

int server_reload(const struct server_paths *paths)
{
	log_info("reloading configuration from %s", paths->conf_dir);
	struct conf *conf = calloc(1, sizeof *conf);
	if (!conf) {
		log_error("reload failed: out of memory; the running configuration stays in force");
		return -1;
	}
	struct buf errs = { 0 };
	int nerr = conf_load_dir(paths->conf_dir, conf, &errs);
	struct route_table *t = NULL;
	struct tls_ctx *tls = NULL;
	bool want_tls = false;
	for (size_t i = 0; nerr == 0 && i < conf->nlisten; i++)
		want_tls |= conf->listen[i].tls;
	if (nerr == 0 && want_tls) {
		/* Certificates first: a bad one keeps the old ones (and the old
		 * routes) in force. */
		tls = tls_ctx_build(conf, paths->conf_dir, &errs);
		if (!tls)
			nerr++;
	}
	if (nerr == 0) {
		struct route_table *cur = route_table_acquire();
		t = route_table_build(conf, paths->conf_dir, paths->plugin_dir, cur, &errs);
		route_table_unref(cur);
		if (!t) {
			tls_ctx_free(tls);
			tls = NULL;
		}
	} else {
		conf_free(conf);
		free(conf);
	}
	if (!t) {
		/* Log each problem as its own line, then the verdict. */
		char *line = (char *)errs.data;
		for (size_t i = 0; i < errs.len; i++) {
			if (errs.data[i] == '\n') {
				errs.data[i] = 0;
				log_error("%s", line);
				line = (char *)errs.data + i + 1;
			}
		}
		log_error("reload failed: the running configuration stays in force");
		buf_free(&errs);
		metrics_reload(false);
		return -1;
	}
	buf_free(&errs);
	if (tls) {
		tls_ctx_install(tls);
		log_info("TLS certificates reloaded: new handshakes use them");
	}
	/* Logging follows the new configuration at once. */
	log_set_level(t->conf->log_level);
	log_set_json(t->conf->log_json);
	struct route_table *old = route_table_swap(t, server_now_ms());
	log_info("reload done: %zu routes (generation %llu)", t->nroutes, (unsigned long long)t->generation);
	metrics_reload(true);
	route_table_unref(old);
	return 0;
}

static int watch_open(const char *conf_dir, const char *plugin_dir)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		log_warn("watch: inotify unavailable (%s); reload with SIGHUP", strerror(errno));
		return -1;
	}
	uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
	const char *dirs[2] = { conf_dir, plugin_dir };
	for (int i = 0; i < 2; i++) {
		if (inotify_add_watch(fd, dirs[i], mask) < 0)
			log_warn("watch: cannot watch %s: %s", dirs[i], strerror(errno));
		else
			log_info("watching %s for changes", dirs[i]);
	}
	return fd;
}

/* Drains inotify events; returns true once changes have been quiet for a
 * moment (a deploy copies and renames several files: reload once, after
 * the last of them). */
static bool watch_due(int fd, uint64_t *changed_ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool seen = false;
	while (read(fd, buf, sizeof buf) > 0)
		seen = true;
	uint64_t now = server_now_ms();
	if (seen) {
		*changed_ms = now;
		return false;
	}
	if (*changed_ms && now - *changed_ms >= 300) {
		*changed_ms = 0;
		return true;
	}
	return false;
}

static void write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		log_warn("cannot write pid file %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

int server_run(const struct conf *conf, const struct server_paths *paths)
{
	struct server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		log_error("out of memory at start-up");
		return 1;
	}
	srv->conf = conf;
	if (conf->trusted_proxies) {
		/* Already validated by conf_finish. */
		srv->trusted = malloc(sizeof *srv->trusted);
		if (!srv->trusted || edge_trusted_parse(conf->trusted_proxies, srv->trusted, NULL, 0) != 0) {
			log_error("cannot set up trusted_proxies");
			free(srv->trusted);
			free(srv);
			return 1;
		}
	}
	srv->nworkers = conf->workers ? (unsigned)conf->workers : ncpus();
	srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
	if (!srv->workers || metrics_init(srv->nworkers) < 0) {
		log_error("out of memory at start-up");
		free(srv);
		return 1;
	}

	/* Block the signals we handle (and SIGPIPE) in every thread: workers
	 * inherit this mask, and the main thread takes them with sigwait. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int status = 0;
	unsigned started = 0;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		if (worker_setup(srv, &srv->workers[i], i) < 0) {
			status = 1;
			srv->nworkers = i + 1;
			goto out_teardown;
		}
	}
	for (size_t i = 0; i < conf->nlisten; i++)
		log_info("listening on %s", conf->listen[i].text);
	plugin_host_set_server(srv);
	if (conf->pid_file)
		write_pid_file(conf->pid_file);
	log_info("mbgw %s started: %u workers, max_payload %llu bytes", MBGW_VERSION,
		 srv->nworkers, (unsigned long long)conf->max_payload);

	for (; started < srv->nworkers; started++) {
		int rc = pthread_create(&srv->workers[started].thread, NULL, worker_main,
					&srv->workers[started]);
		if (rc) {
			log_error("cannot start worker thread: %s", strerror(rc));
			status = 1;
			break;
		}
	}

	/* watch = yes: reload when conf.d or the plugin directory changes. */
	const char *plugin_dir = conf->plugin_dir ? conf->plugin_dir : paths->plugin_dir;
	int watch_fd = conf->watch ? watch_open(paths->conf_dir, plugin_dir) : -1;
	uint64_t watch_changed_ms = 0;

	bool stopping = status != 0;
	while (!stopping) {
		/* Wake up regularly to shut down plugin instances that their last
		 * connection has left (init and shutdown run on this thread). */
		struct timespec tick = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(&set, NULL, &tick);
		plugin_host_reap_retired();
		if (watch_fd >= 0 && watch_due(watch_fd, &watch_changed_ms)) {
			log_info("change in %s or %s: reloading (watch = yes)", paths->conf_dir, plugin_dir);
			server_reload(paths);
		}
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			server_reload(paths);
			continue;
		}
		log_info("%s received: closing %llu connections (drain timeout %llu ms)",
			 sig == SIGINT ? "SIGINT" : "SIGTERM",
			 (unsigned long long)atomic_load(&srv->stats.connections_open),
			 (unsigned long long)conf->drain_timeout_ms);
		stopping = true;
	}
	atomic_store(&srv->stop, true);
	for (unsigned i = 0; i < started; i++)
		worker_wake(&srv->workers[i]);

	/* A second SIGINT/SIGTERM during the drain exits at once. */
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	for (unsigned i = 0; i < started; i++)
		pthread_join(srv->workers[i].thread, NULL);
	plugin_host_set_server(NULL);
	if (watch_fd >= 0)
		close(watch_fd);
	log_info("stopped: %llu connections served",
		 (unsigned long long)atomic_load(&srv->stats.connections_accepted));
	if (conf->pid_file)
		unlink(conf->pid_file);

out_teardown:
	for (unsigned i = 0; i < srv->nworkers; i++)
		worker_teardown(&srv->workers[i]);
	free(srv->workers);
	free(srv->trusted);
	free(srv);
	metrics_cleanup();
	limits_cleanup();
	return status;
}
