/* outq — see outq.h. */
#include "server/outq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The usual blob size; blobs of exactly this size are cached per thread. */
#define BLOB_STD (16 * 1024)
#define BLOB_CACHE_MAX 256

static __thread struct blob *cache[BLOB_CACHE_MAX];
static __thread unsigned ncache;
/* Only worker threads cache (they free the cache when they end); a plugin
 * thread that sends would otherwise keep blobs nobody frees. */
static __thread bool cache_on;

void outq_thread_init(void)
{
	cache_on = true;
}

struct blob *blob_new(size_t cap)
{
	struct blob *b;
	if (cap <= BLOB_STD) {
		cap = BLOB_STD;
		if (ncache) {
			b = cache[--ncache];
			atomic_init(&b->refs, 1);
			b->len = 0;
			return b;
		}
	}
	b = malloc(sizeof *b + cap);
	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->cap = cap;
	b->len = 0;
	return b;
}

void blob_ref(struct blob *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void blob_unref(struct blob *b)
{
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (cache_on && b->cap == BLOB_STD && ncache < BLOB_CACHE_MAX) {
		cache[ncache++] = b;
		return;
	}
	free(b);
}

void outq_thread_cleanup(void)
{
	cache_on = false;
	while (ncache)
		free(cache[--ncache]);
}

static int grow(struct outq *q)
{
	uint32_t ncap = q->cap ? q->cap * 2 : 4;
	struct oseg *ns = malloc(ncap * sizeof *ns);
	if (!ns)
		return -1;
	for (uint32_t i = 0; i < q->count; i++)
		ns[i] = q->segs[(q->head + i) % q->cap];
	free(q->segs);
	q->segs = ns;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

static struct oseg *tail(struct outq *q)
{
	return q->count ? &q->segs[(q->head + q->count - 1) % q->cap] : NULL;
}

static int push(struct outq *q, struct blob *b, size_t off, size_t len)
{
	if (q->count == q->cap && grow(q) < 0)
		return -1;
	q->segs[(q->head + q->count) % q->cap] = (struct oseg){ b, off, len };
	q->count++;
	return 0;
}

uint8_t *outq_reserve(struct outq *q, size_t n)
{
	struct oseg *t = tail(q);
	/* Extend the tail segment when we alone own its blob and the segment
	 * ends where the blob's data ends. */
	if (t && atomic_load_explicit(&t->b->refs, memory_order_relaxed) == 1 &&
	    t->off + t->len == t->b->len && t->b->cap - t->b->len >= n)
		return t->b->data + t->b->len;
	struct blob *b = blob_new(n);
	if (!b)
		return NULL;
	if (push(q, b, 0, 0) < 0) {
		blob_unref(b);
		return NULL;
	}
	return b->data;
}

void outq_commit(struct outq *q, size_t n)
{
	struct oseg *t = tail(q);
	t->b->len += n;
	t->len += n;
	q->bytes += n;
}

int outq_append(struct outq *q, const void *p, size_t n)
{
	uint8_t *dst = outq_reserve(q, n);
	if (!dst)
		return -1;
	memcpy(dst, p, n);
	outq_commit(q, n);
	return 0;
}

int outq_append_shared(struct outq *q, struct blob *b, size_t off, size_t len)
{
	if (push(q, b, off, len) < 0)
		return -1;
	blob_ref(b);
	q->bytes += len;
	return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
	int n = 0;
	for (uint32_t i = 0; i < q->count && n < max; i++) {
		const struct oseg *s = &q->segs[(q->head + i) % q->cap];
		if (!s->len)
			continue;
		iov[n].iov_base = s->b->data + s->off;
		iov[n].iov_len = s->len;
		n++;
	}
	return n;
}

void outq_consume(struct outq *q, size_t n)
{
	q->bytes -= n;
	while (q->count) {
		struct oseg *s = &q->segs[q->head];
		if (n < s->len) {
			s->off += n;
			s->len -= n;
			return;
		}
		n -= s->len;
		blob_unref(s->b);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
}

void outq_trim(struct outq *q)
{
	if (q->count == 0 && q->segs) {
		free(q->segs);
		q->segs = NULL;
		q->cap = q->head = 0;
	}
}

void outq_free(struct outq *q)
{
	while (q->count) {
		blob_unref(q->segs[q->head].b);
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	free(q->segs);
	memset(q, 0, sizeof *q);
}
