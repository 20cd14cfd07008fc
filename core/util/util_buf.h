/* util_buf — a growable byte buffer with an explicit capacity.
 *
 * Used for read buffers and message assembly. Owns its memory; a zeroed
 * struct is a valid empty buffer. Not thread-safe (one owner).
 */
#ifndef MBGW_UTIL_BUF_H
#define MBGW_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Makes room for at least `extra` more bytes. Returns 0 or -1 (ENOMEM). */
int buf_reserve(struct buf *b, size_t extra);
/* Appends n bytes. Returns 0 or -1 (ENOMEM). */
int buf_append(struct buf *b, const void *p, size_t n);
/* Drops the first n bytes, moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

#endif
