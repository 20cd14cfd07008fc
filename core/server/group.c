/* group — named groups (topics) of connections, per worker.
 *
 * Each worker keeps the members it owns; a publication is fanned out to
 * every worker (plugin_host) and each delivers the one shared frame to its
 * local members. So membership changes and deliveries never cross threads
 * and need no locks. A later broker backend (Redis, NATS) plugs in at the
 * fan-out, not here.
 * Worker thread only.
 */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

#include <mbgw/plugin.h>

struct group {
	struct group *next;
	char *name;
	struct conn **m;
	size_t n, cap;
};

static size_t hash_name(const char *s)
{
	/* FNV-1a */
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

static struct group *find(struct worker *w, const char *name, struct group ***slot)
{
	if (!w->gbuckets_cap)
		return NULL;
	struct group **pp = &w->gbuckets[hash_name(name) & (w->gbuckets_cap - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			if (slot)
				*slot = pp;
			return *pp;
		}
	}
	return NULL;
}

static int rehash(struct worker *w)
{
	size_t ncap = w->gbuckets_cap ? w->gbuckets_cap * 2 : 64;
	struct group **nb = calloc(ncap, sizeof *nb);
	if (!nb)
		return -1;
	for (size_t i = 0; i < w->gbuckets_cap; i++) {
		for (struct group *g = w->gbuckets[i]; g;) {
			struct group *next = g->next;
			size_t b = hash_name(g->name) & (ncap - 1);
			g->next = nb[b];
			nb[b] = g;
			g = next;
		}
	}
	free(w->gbuckets);
	w->gbuckets = nb;
	w->gbuckets_cap = ncap;
	return 0;
}

int group_join(struct worker *w, struct conn *c, const char *name)
{
	if (c->state != CONN_OPEN)
		return MBGW_E_CLOSING;
	/* A connection's groups are in its conn_extra. */
	struct conn_extra *x = conn_extra(c);
	if (!x)
		return MBGW_E_NOMEM;
	struct group *g = find(w, name, NULL);
	if (g) {
		for (size_t i = 0; i < x->ngroups; i++)
			if (x->groups[i] == g)
				return MBGW_OK; /* already a member */
	} else {
		if (w->ngroups >= w->gbuckets_cap && rehash(w) < 0)
			return MBGW_E_NOMEM;
		g = calloc(1, sizeof *g);
		if (!g || !(g->name = strdup(name))) {
			free(g);
			return MBGW_E_NOMEM;
		}
		size_t b = hash_name(name) & (w->gbuckets_cap - 1);
		g->next = w->gbuckets[b];
		w->gbuckets[b] = g;
		w->ngroups++;
	}
	if (g->n == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 4;
		struct conn **nm = realloc(g->m, nc * sizeof *nm);
		if (!nm)
			return MBGW_E_NOMEM;
		g->m = nm;
		g->cap = nc;
	}
	if (x->ngroups == x->groups_cap) {
		size_t nc = x->groups_cap ? x->groups_cap * 2 : 2;
		struct group **ng = realloc(x->groups, nc * sizeof *ng);
		if (!ng)
			return MBGW_E_NOMEM;
		x->groups = ng;
		x->groups_cap = nc;
	}
	g->m[g->n++] = c;
	x->groups[x->ngroups++] = g;
	return MBGW_OK;
}

static void drop_group_if_empty(struct worker *w, struct group *g)
{
	if (g->n)
		return;
	struct group **slot;
	if (find(w, g->name, &slot) == g)
		*slot = g->next;
	w->ngroups--;
	free(g->m);
	free(g->name);
	free(g);
}

static void remove_member(struct group *g, struct conn *c)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->m[i] == c) {
			/* Keep join order so deliveries stay in a stable order. */
			memmove(&g->m[i], &g->m[i + 1], (g->n - i - 1) * sizeof *g->m);
			g->n--;
			return;
		}
	}
}

int group_leave(struct worker *w, struct conn *c, const char *name)
{
	struct group *g = find(w, name, NULL);
	struct conn_extra *x = c->x;
	if (!g || !x)
		return MBGW_E_NOTFOUND;
	for (size_t i = 0; i < x->ngroups; i++) {
		if (x->groups[i] == g) {
			x->groups[i] = x->groups[--x->ngroups];
			remove_member(g, c);
			drop_group_if_empty(w, g);
			return MBGW_OK;
		}
	}
	return MBGW_E_NOTFOUND;
}

void group_leave_all(struct worker *w, struct conn *c)
{
	struct conn_extra *x = c->x;
	if (!x)
		return;
	for (size_t i = 0; i < x->ngroups; i++) {
		remove_member(x->groups[i], c);
		drop_group_if_empty(w, x->groups[i]);
	}
	free(x->groups);
	x->groups = NULL;
	x->ngroups = x->groups_cap = 0;
}

void group_publish_local(struct worker *w, const char *name, struct smsg *m, uint64_t except)
{
	struct group *g = find(w, name, NULL);
	if (!g)
		return;
	/* A send may close a slow consumer (drop_client) but never frees it
	 * or changes membership here: closing connections leave their groups
	 * only when reaped. */
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i]->id != except)
			conn_send_shared(g->m[i], m);
}

void group_map_free(struct worker *w)
{
	for (size_t i = 0; i < w->gbuckets_cap; i++) {
		for (struct group *g = w->gbuckets[i]; g;) {
			struct group *next = g->next;
			free(g->m);
			free(g->name);
			free(g);
			g = next;
		}
	}
	free(w->gbuckets);
	w->gbuckets = NULL;
	w->gbuckets_cap = w->ngroups = 0;
}
