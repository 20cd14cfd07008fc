/* outq — see outq.h. */
#include "server/outq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Blob capacities come in classes: a small one for HTTP answers (the
 * 101), control frames and short messages, then BLOB_STD, 2x, 4x... up to
 * BLOB_STD << (BLOB_CLASSES - 2), each plus BLOB_SLACK so that a frame
 * whose payload is one of those sizes (16 KiB, 64 KiB: common chunk
 * sizes, and the read buffers) fits its class with its header. Freed
 * blobs of a class wait in a per-thread cache for the next blob_new: a
 * busy connection then never allocates per message, and glibc never gets
 * to trim and re-fault its heap top (madvise + page faults per message
 * cost more than the whole echo otherwise). outq_thread_trim gives back
 * what a quiet period did not use, so a burst does not leave its pages
 * with the process. Larger blobs are malloc'd as asked and freed at once.
 * Without the small class every upgrade answered in one batch of events
 * would hold a 16 KiB blob until the flush. */
#define BLOB_SMALL 512
#define BLOB_STD (16 * 1024)
#define BLOB_SLACK 64
#define BLOB_CLASSES 6
#define BLOB_CACHE_SLOTS 256
#define BLOB_SMALL_CACHE_MAX 64
/* A class caches at most this many bytes (and BLOB_CACHE_SLOTS blobs). */
#define BLOB_CACHE_BYTES (8u << 20)
/* How often outq_thread_trim looks at the caches. */
#define BLOB_TRIM_MS 1000

struct blob_cache {
	struct blob *slot[BLOB_CACHE_SLOTS];
	unsigned n;
	unsigned low;        /* fewest cached since the last trim */
};

static __thread struct blob_cache cache[BLOB_CLASSES];
static __thread uint64_t next_trim_ms;
/* Rings of RING_STD segments are recycled per thread like blobs: a busy
 * connection takes one when it queues and gives it back when its queue
 * drains, without calling malloc each time. */
#define RING_STD 4
#define RING_CACHE_MAX 256

static __thread struct outq_ring *ring_cache[RING_CACHE_MAX];
static __thread unsigned nring_cache;

/* Only worker threads cache (they free the cache when they end); a plugin
 * thread that sends would otherwise keep blobs nobody frees. */
static __thread bool cache_on;

void outq_thread_init(void)
{
	cache_on = true;
}

static size_t class_cap(int k)
{
	return k == 0 ? BLOB_SMALL : ((size_t)BLOB_STD << (k - 1)) + BLOB_SLACK;
}

/* The smallest class that holds cap bytes, or -1 if none does. */
static int class_for(size_t cap)
{
	for (int k = 0; k < BLOB_CLASSES; k++)
		if (cap <= class_cap(k))
			return k;
	return -1;
}

static unsigned class_slots(int k)
{
	if (k == 0)
		return BLOB_SMALL_CACHE_MAX;
	size_t n = BLOB_CACHE_BYTES / class_cap(k);
	return n < BLOB_CACHE_SLOTS ? (unsigned)n : BLOB_CACHE_SLOTS;
}

struct blob *blob_new(size_t cap)
{
	struct blob *b;
	int k = class_for(cap);
	if (k >= 0) {
		cap = class_cap(k);
		struct blob_cache *bc = &cache[k];
		if (bc->n) {
			b = bc->slot[--bc->n];
			if (bc->n < bc->low)
				bc->low = bc->n;
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
	int k = cache_on ? class_for(b->cap) : -1;
	if (k >= 0 && b->cap == class_cap(k) && cache[k].n < class_slots(k)) {
		cache[k].slot[cache[k].n++] = b;
		return;
	}
	free(b);
}

void outq_thread_trim(uint64_t now_ms)
{
	if (now_ms < next_trim_ms)
		return;
	next_trim_ms = now_ms + BLOB_TRIM_MS;
	/* Blobs that stayed in the cache through the whole interval were not
	 * needed: give that many back, keep what the recent peak used. */
	for (int k = 0; k < BLOB_CLASSES; k++) {
		struct blob_cache *bc = &cache[k];
		for (unsigned i = 0; i < bc->low; i++)
			free(bc->slot[--bc->n]);
		bc->low = bc->n;
	}
}

size_t outq_thread_cached(void)
{
	size_t n = 0;
	for (int k = 0; k < BLOB_CLASSES; k++)
		n += cache[k].n;
	return n;
}

void outq_thread_cleanup(void)
{
	cache_on = false;
	for (int k = 0; k < BLOB_CLASSES; k++) {
		struct blob_cache *bc = &cache[k];
		while (bc->n)
			free(bc->slot[--bc->n]);
		bc->low = 0;
	}
	next_trim_ms = 0;
	while (nring_cache)
		free(ring_cache[--nring_cache]);
}

static struct outq_ring *ring_new(uint32_t cap)
{
	if (cap == RING_STD && nring_cache)
		return ring_cache[--nring_cache];
	struct outq_ring *r = malloc(sizeof *r + cap * sizeof r->segs[0]);
	if (r)
		r->cap = cap;
	return r;
}

static void ring_free(struct outq_ring *r)
{
	if (cache_on && r->cap == RING_STD && nring_cache < RING_CACHE_MAX)
		ring_cache[nring_cache++] = r;
	else
		free(r);
}

/* Gives the ring of an empty queue back. */
static void release_if_empty(struct outq *q)
{
	if (q->r && q->r->count == 0) {
		ring_free(q->r);
		q->r = NULL;
	}
}

int blob_buf_take(struct buf *b, size_t cap)
{
	if (b->data)
		return 0;
	struct blob *bl = blob_new(cap);
	if (!bl)
		return -1;
	b->data = bl->data;
	b->cap = bl->cap;
	b->len = 0;
	return 0;
}

struct blob *blob_of_buf(const struct buf *b)
{
	return (struct blob *)(void *)(b->data - offsetof(struct blob, data));
}

void blob_buf_release(struct buf *b)
{
	if (!b->data)
		return;
	blob_unref(blob_of_buf(b));
	b->data = NULL;
	b->len = b->cap = 0;
}

int blob_buf_consume(struct buf *b, size_t n)
{
	if (!b->data)
		return 0;
	struct blob *bl = blob_of_buf(b);
	size_t rest = n < b->len ? b->len - n : 0;
	if (rest && atomic_load_explicit(&bl->refs, memory_order_acquire) > 1) {
		struct blob *nb = blob_new(b->cap);
		if (!nb)
			return -1;
		memcpy(nb->data, b->data + n, rest);
		blob_unref(bl);
		b->data = nb->data;
		b->cap = nb->cap;
		b->len = rest;
		return 0;
	}
	buf_consume(b, n);
	if (b->len == 0)
		blob_buf_release(b);
	return 0;
}

static int grow(struct outq *q)
{
	struct outq_ring *o = q->r;
	struct outq_ring *n = ring_new(o ? o->cap * 2 : RING_STD);
	if (!n)
		return -1;
	n->head = 0;
	n->count = 0;
	n->bytes = 0;
	if (o) {
		for (uint32_t i = 0; i < o->count; i++)
			n->segs[i] = o->segs[(o->head + i) % o->cap];
		n->count = o->count;
		n->bytes = o->bytes;
		ring_free(o);
	}
	q->r = n;
	return 0;
}

static struct oseg *tail(struct outq *q)
{
	struct outq_ring *r = q->r;
	return r && r->count ? &r->segs[(r->head + r->count - 1) % r->cap] : NULL;
}

static int push(struct outq *q, struct blob *b, size_t off, size_t len)
{
	if ((!q->r || q->r->count == q->r->cap) && grow(q) < 0)
		return -1;
	struct outq_ring *r = q->r;
	r->segs[(r->head + r->count) % r->cap] = (struct oseg){ b, off, len };
	r->count++;
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
	q->r->bytes += n;
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
	q->r->bytes += len;
	return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
	const struct outq_ring *r = q->r;
	int n = 0;
	for (uint32_t i = 0; r && i < r->count && n < max; i++) {
		const struct oseg *s = &r->segs[(r->head + i) % r->cap];
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
	struct outq_ring *r = q->r;
	if (!r)
		return;
	r->bytes -= n;
	while (r->count) {
		struct oseg *s = &r->segs[r->head];
		if (n < s->len) {
			s->off += n;
			s->len -= n;
			return;
		}
		n -= s->len;
		blob_unref(s->b);
		r->head = (r->head + 1) % r->cap;
		r->count--;
	}
	release_if_empty(q);
}

void outq_free(struct outq *q)
{
	struct outq_ring *r = q->r;
	if (!r)
		return;
	while (r->count) {
		blob_unref(r->segs[r->head].b);
		r->head = (r->head + 1) % r->cap;
		r->count--;
	}
	release_if_empty(q);
}
