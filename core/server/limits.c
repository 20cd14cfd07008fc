/* limits — see limits.h. */
#include "server/limits.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ip_entry {
	struct ip_entry *next;
	uint8_t key[16];
	uint64_t conns;
	double tokens;
	uint64_t last_ms;
};

#define NBUCKETS 4096

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_entry *g_table[NBUCKETS];
static uint64_t g_total;

bool limits_enabled(const struct conf *c)
{
	return c->max_connections || c->max_connections_per_ip || c->handshake_rate_per_ip;
}

static void key_of(const struct sockaddr *a, uint8_t key[16])
{
	memset(key, 0, 16);
	if (a->sa_family == AF_INET) {
		/* IPv4 as an IPv4-mapped IPv6 address, so both share a table. */
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
	} else if (a->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
	}
}

static struct ip_entry **slot(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return &g_table[h & (NBUCKETS - 1)];
}

static struct ip_entry *find(const uint8_t key[16], bool create)
{
	struct ip_entry **pp = slot(key);
	for (struct ip_entry *e = *pp; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	if (!create)
		return NULL;
	struct ip_entry *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	memcpy(e->key, key, 16);
	e->tokens = -1; /* full bucket on first use */
	e->next = *pp;
	*pp = e;
	return e;
}

static void drop_if_idle(const uint8_t key[16], uint64_t now_ms, const struct conf *c)
{
	struct ip_entry **pp = slot(key);
	for (; *pp; pp = &(*pp)->next) {
		struct ip_entry *e = *pp;
		if (memcmp(e->key, key, 16) != 0)
			continue;
		/* Keep the entry while its bucket is still refilling. */
		bool full = !c->handshake_rate_per_ip || e->tokens < 0 ||
			    now_ms - e->last_ms > 1000 * c->handshake_burst_per_ip / c->handshake_rate_per_ip + 1000;
		if (e->conns == 0 && full) {
			*pp = e->next;
			free(e);
		}
		return;
	}
}

const char *limits_connect(const struct conf *c, const struct sockaddr *addr)
{
	if (!limits_enabled(c))
		return NULL;
	uint8_t key[16];
	key_of(addr, key);
	const char *why = NULL;
	pthread_mutex_lock(&g_lock);
	if (c->max_connections && g_total >= c->max_connections) {
		why = "max_connections reached";
	} else {
		struct ip_entry *e = find(key, true);
		if (!e)
			why = "out of memory";
		else if (c->max_connections_per_ip && e->conns >= c->max_connections_per_ip)
			why = "max_connections_per_ip reached";
		else {
			e->conns++;
			g_total++;
		}
	}
	pthread_mutex_unlock(&g_lock);
	return why;
}

void limits_disconnect(const struct conf *c, const struct sockaddr *addr)
{
	if (!limits_enabled(c))
		return;
	uint8_t key[16];
	key_of(addr, key);
	pthread_mutex_lock(&g_lock);
	struct ip_entry *e = find(key, false);
	if (e && e->conns) {
		e->conns--;
		g_total--;
		drop_if_idle(key, e->last_ms, c);
	}
	pthread_mutex_unlock(&g_lock);
}

bool limits_handshake(const struct conf *c, const struct sockaddr *addr, uint64_t now_ms)
{
	if (!c->handshake_rate_per_ip)
		return true;
	uint8_t key[16];
	key_of(addr, key);
	bool ok = true;
	pthread_mutex_lock(&g_lock);
	struct ip_entry *e = find(key, true);
	if (e) {
		double burst = (double)c->handshake_burst_per_ip;
		if (e->tokens < 0)
			e->tokens = burst;
		else
			e->tokens += (double)(now_ms - e->last_ms) * (double)c->handshake_rate_per_ip / 1000.0;
		if (e->tokens > burst)
			e->tokens = burst;
		e->last_ms = now_ms;
		if (e->tokens >= 1.0)
			e->tokens -= 1.0;
		else
			ok = false;
	}
	pthread_mutex_unlock(&g_lock);
	return ok;
}

void limits_sweep(const struct conf *c, uint64_t now_ms)
{
	if (!limits_enabled(c))
		return;
	pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < NBUCKETS; i++) {
		for (struct ip_entry **pp = &g_table[i]; *pp;) {
			struct ip_entry *e = *pp;
			bool full = !c->handshake_rate_per_ip || e->tokens < 0 ||
				    now_ms - e->last_ms > 1000 * c->handshake_burst_per_ip / c->handshake_rate_per_ip + 1000;
			if (e->conns == 0 && full) {
				*pp = e->next;
				free(e);
			} else {
				pp = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&g_lock);
}

void limits_cleanup(void)
{
	pthread_mutex_lock(&g_lock);
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (g_table[i]) {
			struct ip_entry *e = g_table[i];
			g_table[i] = e->next;
			free(e);
		}
	}
	g_total = 0;
	pthread_mutex_unlock(&g_lock);
}
