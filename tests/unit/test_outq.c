/* test_outq — a connection's write queue (core/server/outq).
 *
 * Appends and reserve/commit extend the connection's own tail blob, shared
 * (broadcast) blobs are referenced, never written into, and released when
 * the last queue is done with them; outq_iov gathers the queue in order
 * and outq_consume drops written bytes from the head, also mid-segment and
 * across a wrapped ring.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "server/outq.h"

/* Criterion records every assertion when run with --full-stats (as CTest
 * does), which makes millions of passing checks in loops very slow. These
 * wrappers only reach the real assertion, with its full diagnostics, when
 * the condition fails. */
#define EXPECT(c, ...) do { if (!(c)) cr_assert(c, "" __VA_ARGS__); } while (0)
#define EXPECT_NOT(c, ...) do { if (c) cr_assert_not(c, "" __VA_ARGS__); } while (0)
#define EXPECT_EQ(a, b, ...) do { if (!((a) == (b))) cr_assert_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_NEQ(a, b, ...) do { if ((a) == (b)) cr_assert_neq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LT(a, b, ...) do { if (!((a) < (b))) cr_assert_lt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_LEQ(a, b, ...) do { if (!((a) <= (b))) cr_assert_leq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_GT(a, b, ...) do { if (!((a) > (b))) cr_assert_gt(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_GEQ(a, b, ...) do { if (!((a) >= (b))) cr_assert_geq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_ARR_EQ(a, b, n, ...) \
	do { if (memcmp(a, b, n) != 0) cr_assert_arr_eq(a, b, n, "" __VA_ARGS__); } while (0)
#define EXPECT_STR_EQ(a, b, ...) \
	do { if (strcmp(a, b) != 0) cr_assert_str_eq(a, b, "" __VA_ARGS__); } while (0)
#define EXPECT_NOT_NULL(p, ...) do { if (!(p)) cr_assert_not_null(p, "" __VA_ARGS__); } while (0)

static void cleanup(void)
{
	outq_thread_cleanup();
}

TestSuite(outq, .fini = cleanup);

static unsigned refs(struct blob *b)
{
	return atomic_load(&b->refs);
}

/* Gathers the whole queue and compares it with `want`; also checks that
 * q->bytes is the sum of the iovecs. Returns the number of iovecs. */
static int assert_queue(const struct outq *q, const void *want, size_t n)
{
	struct iovec iov[1024];
	int k = outq_iov(q, iov, 1024);
	EXPECT_GEQ(k, 0);
	size_t total = 0;
	for (int i = 0; i < k; i++) {
		EXPECT_GT(iov[i].iov_len, 0, "iovec %d is empty", i);
		EXPECT_LEQ(total + iov[i].iov_len, n, "queue longer than expected");
		EXPECT_EQ(memcmp((const uint8_t *)want + total, iov[i].iov_base, iov[i].iov_len), 0,
			     "iovec %d differs", i);
		total += iov[i].iov_len;
	}
	EXPECT_EQ(total, n, "queue holds %zu bytes, expected %zu", total, n);
	EXPECT_EQ(outq_bytes(q), n, "q->bytes %zu, expected %zu", outq_bytes(q), n);
	return k;
}

static struct blob *shared_blob(const char *text)
{
	size_t n = strlen(text);
	struct blob *b = blob_new(n);
	EXPECT_NOT_NULL(b);
	EXPECT_GEQ(b->cap, n);
	EXPECT_EQ(refs(b), 1);
	EXPECT_EQ(b->len, 0);
	memcpy(b->data, text, n);
	b->len = n;
	return b;
}

Test(outq, empty_queue)
{
	struct outq q = { 0 };
	struct iovec iov[4];
	EXPECT_EQ(outq_iov(&q, iov, 4), 0);
	EXPECT_EQ(outq_bytes(&q), 0);
	outq_consume(&q, 0);
	outq_free(&q);
	outq_free(&q);
}

Test(outq, append_extends_the_tail_blob)
{
	struct outq q = { 0 };
	EXPECT_EQ(outq_append(&q, "hello", 5), 0);
	EXPECT_EQ(outq_append(&q, " ", 1), 0);
	EXPECT_EQ(outq_append(&q, "world", 5), 0);
	EXPECT_EQ(assert_queue(&q, "hello world", 11), 1, "small appends share one blob");
	EXPECT_EQ(outq_segments(&q), 1);
	outq_free(&q);
	EXPECT_EQ(outq_segments(&q), 0);
	EXPECT_EQ(outq_bytes(&q), 0);
	cr_assert_null(q.r);
}

Test(outq, reserve_and_commit)
{
	struct outq q = { 0 };
	uint8_t *p = outq_reserve(&q, 100);
	EXPECT_NOT_NULL(p);
	memcpy(p, "abcd", 4);
	outq_commit(&q, 4);
	assert_queue(&q, "abcd", 4);
	/* A reservation that is not used (commit 0) adds nothing. */
	p = outq_reserve(&q, 50);
	EXPECT_NOT_NULL(p);
	outq_commit(&q, 0);
	assert_queue(&q, "abcd", 4);
	/* The next reservation continues right after the committed bytes. */
	p = outq_reserve(&q, 10);
	memcpy(p, "efgh", 4);
	outq_commit(&q, 4);
	EXPECT_EQ(assert_queue(&q, "abcdefgh", 8), 1);
	outq_free(&q);
}

Test(outq, reserve_on_empty_then_commit_zero)
{
	struct outq q = { 0 };
	EXPECT_NOT_NULL(outq_reserve(&q, 8));
	outq_commit(&q, 0);
	assert_queue(&q, "", 0);
	outq_consume(&q, 0);
	EXPECT_EQ(outq_append(&q, "x", 1), 0);
	assert_queue(&q, "x", 1);
	outq_free(&q);
}

Test(outq, large_appends)
{
	enum { N = 100000 };
	uint8_t *big = malloc(N);
	for (size_t i = 0; i < N; i++)
		big[i] = (uint8_t)(i * 13);
	struct outq q = { 0 };
	EXPECT_EQ(outq_append(&q, "head", 4), 0);
	EXPECT_EQ(outq_append(&q, big, N), 0);
	EXPECT_EQ(outq_append(&q, "tail", 4), 0);
	uint8_t *want = malloc(N + 8);
	memcpy(want, "head", 4);
	memcpy(want + 4, big, N);
	memcpy(want + 4 + N, "tail", 4);
	assert_queue(&q, want, N + 8);
	/* Many appends that cross blob boundaries. */
	struct outq r = { 0 };
	for (size_t off = 0; off < N; off += 999)
		EXPECT_EQ(outq_append(&r, big + off, off + 999 <= N ? 999 : N - off), 0);
	assert_queue(&r, big, N);
	outq_free(&q);
	outq_free(&r);
	free(big);
	free(want);
}

Test(outq, shared_blob_refcounts)
{
	struct blob *b = shared_blob("broadcast!");
	struct outq q1 = { 0 }, q2 = { 0 };
	EXPECT_EQ(outq_append_shared(&q1, b, 0, b->len), 0);
	EXPECT_EQ(refs(b), 2);
	EXPECT_EQ(outq_append_shared(&q2, b, 5, 5), 0);
	EXPECT_EQ(refs(b), 3);
	assert_queue(&q1, "broadcast!", 10);
	assert_queue(&q2, "cast!", 5);
	blob_unref(b); /* the broadcaster is done with it */
	EXPECT_EQ(refs(b), 2);
	outq_consume(&q1, 10);
	EXPECT_EQ(refs(b), 1, "a fully written segment drops its reference");
	assert_queue(&q1, "", 0);
	outq_consume(&q2, 2);
	EXPECT_EQ(refs(b), 1, "a partly written segment keeps it");
	assert_queue(&q2, "st!", 3);
	outq_free(&q2); /* last reference: freed (ASan checks) */
	outq_free(&q1);
}

Test(outq, own_data_never_written_into_a_shared_blob)
{
	struct blob *b = shared_blob("shared");
	size_t len_before = b->len;
	struct outq q = { 0 };
	EXPECT_EQ(outq_append_shared(&q, b, 0, b->len), 0);
	EXPECT_EQ(outq_append(&q, "+own", 4), 0);
	uint8_t *p = outq_reserve(&q, 3);
	memcpy(p, "+rs", 3);
	outq_commit(&q, 3);
	EXPECT_EQ(b->len, len_before, "shared blob grew");
	EXPECT_EQ(memcmp(b->data, "shared", 6), 0);
	EXPECT_EQ(assert_queue(&q, "shared+own+rs", 13), 2);
	/* Another queue sharing the same blob still sees only its bytes. */
	struct outq q2 = { 0 };
	EXPECT_EQ(outq_append_shared(&q2, b, 0, b->len), 0);
	assert_queue(&q2, "shared", 6);
	blob_unref(b);
	outq_free(&q);
	outq_free(&q2);
}

Test(outq, same_blob_twice_in_one_queue)
{
	struct blob *b = shared_blob("ab");
	struct outq q = { 0 };
	EXPECT_EQ(outq_append_shared(&q, b, 0, 2), 0);
	EXPECT_EQ(outq_append_shared(&q, b, 0, 2), 0);
	blob_unref(b);
	EXPECT_EQ(refs(b), 2);
	EXPECT_EQ(outq_append(&q, "c", 1), 0);
	assert_queue(&q, "ababc", 5);
	outq_consume(&q, 2);
	EXPECT_EQ(refs(b), 1);
	assert_queue(&q, "abc", 3);
	outq_free(&q);
}

Test(outq, iov_order_and_limit)
{
	struct blob *s1 = shared_blob("S1"), *s2 = shared_blob("S2");
	struct outq q = { 0 };
	outq_append(&q, "a", 1);
	outq_append_shared(&q, s1, 0, 2);
	outq_append(&q, "b", 1);
	outq_append_shared(&q, s2, 0, 2);
	outq_append(&q, "c", 1);
	EXPECT_EQ(assert_queue(&q, "aS1bS2c", 7), 5);
	struct iovec iov[5];
	EXPECT_EQ(outq_iov(&q, iov, 2), 2);
	EXPECT_EQ(iov[0].iov_len, 1);
	EXPECT_EQ(memcmp(iov[1].iov_base, "S1", 2), 0);
	EXPECT_EQ(outq_iov(&q, iov, 0), 0);
	blob_unref(s1);
	blob_unref(s2);
	outq_free(&q);
}

Test(outq, partial_consume)
{
	struct blob *s = shared_blob("SHARED");
	struct outq q = { 0 };
	outq_append(&q, "0123", 4);
	outq_append_shared(&q, s, 0, 6);
	outq_append(&q, "tail", 4);
	blob_unref(s);
	const char *all = "0123SHAREDtail";
	/* Consume in pieces of every size from 1 to 5, checking the rest. */
	size_t done = 0;
	for (size_t step = 1; done < 14; step = step % 5 + 1) {
		size_t k = step < 14 - done ? step : 14 - done;
		outq_consume(&q, k);
		done += k;
		assert_queue(&q, all + done, 14 - done);
	}
	EXPECT_EQ(outq_segments(&q), 0);
	/* The queue is usable again. */
	outq_append(&q, "again", 5);
	assert_queue(&q, "again", 5);
	outq_free(&q);
}

Test(outq, ring_wraps_and_grows)
{
	/* Alternate own and shared segments so that every append makes a new
	 * segment; consume some to move the head, then grow past the ring. */
	struct blob *s = shared_blob("|");
	struct outq q = { 0 };
	char want[4096];
	size_t wlen = 0, start = 0;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 7; i++) {
			char c = (char)('a' + (round + i) % 26);
			EXPECT_EQ(outq_append(&q, &c, 1), 0);
			EXPECT_EQ(outq_append_shared(&q, s, 0, 1), 0);
			want[wlen++] = c;
			want[wlen++] = '|';
		}
		/* Write out a varying amount, sometimes mid-segment. */
		size_t k = (size_t)(round * 5 % 11);
		if (k > wlen - start)
			k = wlen - start;
		outq_consume(&q, k);
		start += k;
		assert_queue(&q, want + start, wlen - start);
	}
	unsigned queued = 0;
	for (size_t i = start; i < wlen; i++)
		queued += want[i] == '|';
	EXPECT_EQ(refs(s), 1 + queued, "one reference per queued '|' plus ours");
	outq_free(&q);
	EXPECT_EQ(refs(s), 1);
	blob_unref(s);
}

Test(outq, free_releases_every_reference)
{
	struct blob *s = shared_blob("x");
	struct outq q = { 0 };
	for (int i = 0; i < 20; i++)
		outq_append_shared(&q, s, 0, 1);
	EXPECT_EQ(refs(s), 21);
	outq_free(&q);
	EXPECT_EQ(refs(s), 1);
	blob_unref(s);
}

Test(outq, blob_sizes_and_recycling)
{
	struct blob *a = blob_new(0);
	EXPECT_NOT_NULL(a);
	EXPECT_EQ(a->len, 0);
	struct blob *b = blob_new(1 << 20);
	EXPECT_NOT_NULL(b);
	EXPECT_GEQ(b->cap, 1 << 20);
	memset(b->data, 0xAB, 1 << 20);
	blob_ref(b);
	EXPECT_EQ(refs(b), 2);
	blob_unref(b);
	blob_unref(b);
	/* A recycled small blob comes back clean: one reference, no bytes. */
	a->len = 7;
	blob_unref(a);
	struct blob *c = blob_new(10);
	EXPECT_EQ(refs(c), 1);
	EXPECT_EQ(c->len, 0);
	EXPECT_GEQ(c->cap, 10);
	blob_unref(c);
}

Test(outq, a_drained_queue_holds_no_memory)
{
	struct outq q = { 0 };
	EXPECT_EQ(outq_append(&q, "abc", 3), 0);
	EXPECT_NOT_NULL(q.r);
	outq_consume(&q, 2);
	EXPECT_NOT_NULL(q.r, "bytes still queued keep the ring");
	outq_consume(&q, 1);
	cr_assert_null(q.r, "an empty queue gives its ring back at once");
	EXPECT_EQ(outq_bytes(&q), 0);
	/* ... and takes one again for the next bytes. */
	EXPECT_EQ(outq_append(&q, "de", 2), 0);
	assert_queue(&q, "de", 2);
	outq_free(&q);
	cr_assert_null(q.r);
}

Test(outq, frame_sized_blobs_are_recycled)
{
	outq_thread_init();
	/* A 16 KiB payload plus its frame header, and a 64 KiB read buffer:
	 * both come back from the cache instead of malloc (the echo path
	 * allocates nothing per message). */
	size_t sizes[] = { 100, 16 * 1024 + 14, 64 * 1024, 200 * 1024 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct blob *a = blob_new(sizes[i]);
		EXPECT_NOT_NULL(a);
		EXPECT_GEQ(a->cap, sizes[i]);
		a->len = 3;
		blob_unref(a);
		struct blob *b = blob_new(sizes[i]);
		EXPECT_EQ((void *)b, (void *)a, "size %zu: the cached blob is reused", sizes[i]);
		EXPECT_EQ(b->len, 0);
		EXPECT_EQ(refs(b), 1);
		blob_unref(b);
	}
	/* Beyond the largest class: exact size, never cached. */
	struct blob *h = blob_new(4u << 20);
	EXPECT_NOT_NULL(h);
	EXPECT_EQ(h->cap, 4u << 20);
	blob_unref(h);
}

Test(outq, trim_frees_what_was_not_needed)
{
	outq_thread_init();
	uint64_t t = 5000;
	outq_thread_trim(t); /* starts the first interval */
	struct blob *x[8];
	for (int i = 0; i < 8; i++)
		x[i] = blob_new(20000);
	for (int i = 0; i < 8; i++)
		blob_unref(x[i]);
	EXPECT_EQ(outq_thread_cached(), 8);
	outq_thread_trim(t += 1000); /* all were in use during this interval */
	EXPECT_EQ(outq_thread_cached(), 8);
	/* The next interval needs 3 at once: the other 5 are given back. */
	for (int i = 0; i < 3; i++)
		x[i] = blob_new(20000);
	for (int i = 0; i < 3; i++)
		blob_unref(x[i]);
	outq_thread_trim(t + 10); /* too soon: nothing happens */
	EXPECT_EQ(outq_thread_cached(), 8);
	outq_thread_trim(t += 1000);
	EXPECT_EQ(outq_thread_cached(), 3);
	/* A quiet interval gives back the rest. */
	outq_thread_trim(t += 1000);
	EXPECT_EQ(outq_thread_cached(), 0);
	/* Without outq_thread_init (a plugin's thread) nothing is kept. */
	outq_thread_cleanup();
	blob_unref(blob_new(100));
	EXPECT_EQ(outq_thread_cached(), 0);
}

/* --- read buffers (blob_buf_*) --- */

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

Test(outq, blob_buf_take_and_release)
{
	struct buf b = { 0 };
	EXPECT_EQ(blob_buf_take(&b, 1000), 0);
	EXPECT_NOT_NULL(b.data);
	EXPECT_GEQ(b.cap, 1000);
	EXPECT_EQ(b.len, 0);
	uint8_t *was = b.data;
	EXPECT_EQ(blob_buf_take(&b, 5000), 0, "a buffer that has a blob keeps it");
	EXPECT_EQ((void *)b.data, (void *)was);
	EXPECT_EQ(refs(blob_of_buf(&b)), 1);
	EXPECT_EQ((void *)blob_of_buf(&b)->data, (void *)b.data);
	blob_buf_release(&b);
	cr_assert_null(b.data);
	EXPECT_EQ(b.len, 0);
	EXPECT_EQ(b.cap, 0);
	blob_buf_release(&b); /* twice: nothing to do */
	EXPECT_EQ(blob_buf_consume(&b, 3), 0, "consuming from an empty buffer");
}

/* Every consumed length, with and without a queue referencing part of the
 * processed bytes: the rest is always what follows n, and referenced
 * bytes never change. */
Test(outq, blob_buf_consume_every_length)
{
	enum { L = 200 };
	uint8_t want[L];
	fill_pattern(want, L, 7);
	for (int shared = 0; shared <= 1; shared++) {
		for (size_t n = 0; n <= L + 1; n++) {
			struct buf b = { 0 };
			EXPECT_EQ(blob_buf_take(&b, L), 0);
			memcpy(b.data, want, L);
			b.len = L;
			struct blob *old = blob_of_buf(&b);
			struct outq q = { 0 };
			/* A reply referencing processed bytes [n/3, n). */
			size_t s0 = n / 3, s1 = n < L ? n : L;
			if (shared && s1 > s0)
				EXPECT_EQ(outq_append_shared(&q, old, s0, s1 - s0), 0);
			bool referenced = shared && s1 > s0;
			EXPECT_EQ(blob_buf_consume(&b, n), 0);
			size_t rest = n < L ? L - n : 0;
			EXPECT_EQ(b.len, rest, "n=%zu shared=%d", n, shared);
			if (rest == 0) {
				cr_assert_null(b.data, "an emptied buffer gives its blob back");
			} else {
				EXPECT_ARR_EQ(b.data, want + n, rest, "n=%zu shared=%d: the rest", n, shared);
				if (referenced)
					EXPECT_NEQ((void *)blob_of_buf(&b), (void *)old,
						   "n=%zu: the rest moved to a fresh blob", n);
				else
					EXPECT_EQ((void *)blob_of_buf(&b), (void *)old,
						  "n=%zu: unshared buffers move in place", n);
			}
			if (referenced) {
				assert_queue(&q, want + s0, s1 - s0);
				EXPECT_EQ(refs(old), 1, "only the queue holds the old blob");
			}
			outq_free(&q);
			blob_buf_release(&b);
		}
	}
}

/* A stream cut into two reads at every byte boundary: the bytes processed
 * after the first read are referenced by a queue (as replies are), the
 * first k are consumed, the second read is appended; the buffer must then
 * hold exactly the stream from k on, and the queue what it referenced. */
Test(outq, blob_buf_stream_split_everywhere)
{
	enum { L = 300 };
	uint8_t stream[L];
	fill_pattern(stream, L, 3);
	for (size_t cut = 0; cut <= L; cut++) {
		for (size_t k = 0; k <= cut; k += (cut > 40 ? 7 : 1)) {
			struct buf b = { 0 };
			EXPECT_EQ(blob_buf_take(&b, L), 0);
			memcpy(b.data, stream, cut);
			b.len = cut;
			struct outq q = { 0 };
			if (k)
				EXPECT_EQ(outq_append_shared(&q, blob_of_buf(&b), 0, k), 0);
			EXPECT_EQ(blob_buf_consume(&b, k), 0);
			EXPECT_EQ(blob_buf_take(&b, L), 0); /* as the next read does */
			EXPECT_GEQ(b.cap - b.len, L - cut, "room for the second read");
			memcpy(b.data + b.len, stream + cut, L - cut);
			b.len += L - cut;
			EXPECT_EQ(b.len, L - k);
			EXPECT_ARR_EQ(b.data, stream + k, L - k, "cut=%zu k=%zu", cut, k);
			assert_queue(&q, stream, k);
			outq_free(&q);
			blob_buf_release(&b);
		}
	}
}
