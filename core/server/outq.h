/* outq — a connection's queue of bytes waiting to be written.
 *
 * Stage "write queue" of the message path. Bytes live in reference-counted
 * blobs so that one encoded frame can sit in many connections' queues at
 * once (broadcast encodes once); a connection's own frames are appended to
 * the tail blob it alone holds. A flush gathers the queue into an iovec
 * array for a single writev(2). Blobs come in size classes recycled
 * through a per-thread cache, so the steady-state echo path does not
 * allocate; read buffers are blobs too (a reply may point into one).
 *
 * An empty queue is one NULL pointer: the ring of segments (with the
 * queue's counters) is taken when the first byte is queued and given
 * back, to the same per-thread cache, the moment the last byte is
 * written. So an idle connection holds no output memory at all.
 *
 * Thread: an outq belongs to its connection's worker thread; blobs may be
 * shared across threads (their counts are atomic).
 */
#ifndef MBGW_OUTQ_H
#define MBGW_OUTQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/util_buf.h"

struct blob {
	atomic_uint refs;
	size_t cap;
	size_t len;
	uint8_t data[];
};

/* Returns a new blob with room for at least cap bytes and one reference,
 * or NULL when memory runs out. */
struct blob *blob_new(size_t cap);
void blob_ref(struct blob *b);
/* Drops one reference; frees (or caches) the blob at zero. */
void blob_unref(struct blob *b);

/* A read buffer: a struct buf (util_buf.h) whose memory is a blob's
 * data, so that a queue can hold a reference to bytes of it instead of a
 * copy (outq_append_shared with blob_of_buf). A zeroed struct buf holds
 * no blob. */

/* Gives b a blob of at least cap bytes if it has none (len 0). Returns 0
 * or -1 (ENOMEM). */
int blob_buf_take(struct buf *b, size_t cap);
/* The blob that holds b's bytes (b must hold one). */
struct blob *blob_of_buf(const struct buf *b);
/* Drops the first n bytes (all of them if n >= len). While a queue
 * references the blob its bytes must not move, so the rest is then copied
 * to a fresh blob instead of to the front; an emptied buffer gives its
 * blob back. Returns 0, or -1 (ENOMEM: b is unchanged). */
int blob_buf_consume(struct buf *b, size_t n);
/* Gives the blob back (drops this reference); b is then empty. */
void blob_buf_release(struct buf *b);

struct oseg {
	struct blob *b;
	size_t off;
	size_t len;
};

/* The segments of a non-empty queue: a ring, allocated with its header. */
struct outq_ring {
	uint32_t head;
	uint32_t count;
	uint32_t cap;
	size_t bytes;        /* total queued */
	struct oseg segs[];
};

struct outq {
	struct outq_ring *r; /* NULL while the queue is empty */
};

/* Bytes queued (0 for an empty queue). */
static inline size_t outq_bytes(const struct outq *q)
{
	return q->r ? q->r->bytes : 0;
}

/* Segments queued (0 for an empty queue). */
static inline uint32_t outq_segments(const struct outq *q)
{
	return q->r ? q->r->count : 0;
}

/* Returns a pointer where n bytes can be written contiguously at the end
 * of the queue, or NULL when memory runs out; call outq_commit with the
 * number actually written. */
uint8_t *outq_reserve(struct outq *q, size_t n);
void outq_commit(struct outq *q, size_t n);
/* Copies n bytes to the end of the queue. Returns 0 or -1 (ENOMEM). */
int outq_append(struct outq *q, const void *p, size_t n);
/* Queues a reference to b[off..off+len) (takes a new reference). */
int outq_append_shared(struct outq *q, struct blob *b, size_t off, size_t len);
/* Fills at most max iovecs from the head. Returns how many. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);
/* Drops n written bytes from the head; an emptied queue gives its ring
 * back at once. */
void outq_consume(struct outq *q, size_t n);
/* Drops everything and gives the ring back. */
void outq_free(struct outq *q);

/* Lets this thread (a worker) keep a cache of spare blobs and rings. */
void outq_thread_init(void);
/* Every BLOB_TRIM_MS (a second; cheap to call more often): frees the
 * cached blobs this thread did not need since the last time, so memory
 * goes back after a burst while steady traffic keeps what it uses.
 * Worker thread. */
void outq_thread_trim(uint64_t now_ms);
/* How many spare blobs this thread's cache holds. */
size_t outq_thread_cached(void);
/* Releases this thread's cache of spare blobs and rings (at thread exit). */
void outq_thread_cleanup(void);

#endif
