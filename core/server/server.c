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
#include <time.h>
#include <unistd.h>

#include "net/net_listen.h"
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
}

int server_run(const struct conf *conf)
{
	struct server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		log_error("out of memory at start-up");
		return 1;
	}
	srv->conf = conf;
	srv->nworkers = conf->workers ? (unsigned)conf->workers : ncpus();
	srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
	if (!srv->workers) {
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
	for (size_t i = 0; i < conf->nroutes; i++)
		log_info("route %s: path %s, plugin %s", conf->routes[i].name,
			 conf->routes[i].path, conf->routes[i].plugin);
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

	bool stopping = status != 0;
	while (!stopping) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP received: nothing to reload in this build (configuration reload comes with the plugin host)");
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
	log_info("stopped: %llu connections served",
		 (unsigned long long)atomic_load(&srv->stats.connections_accepted));

out_teardown:
	for (unsigned i = 0; i < srv->nworkers; i++)
		worker_teardown(&srv->workers[i]);
	free(srv->workers);
	free(srv);
	return status;
}
