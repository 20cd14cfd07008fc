/* ws_deflate — RFC 7692 permessage-deflate, server side, over zlib.
 *
 * Owns three things: the negotiation of the extension in the opening
 * handshake (parsing Sec-WebSocket-Extensions, choosing an offer, writing
 * the response value), the per-connection compression state (one inflate
 * stream for what the client sends, one deflate stream for what we send),
 * and a one-shot compressor for broadcasts. No I/O, no framing: frames,
 * RSV1 and close codes belong to the caller.
 *
 * Where it sits in the message path:
 *
 *   frame parser (ws_reader, RSV1 seen on the first frame)
 *     → ws_deflate_inflate[_feed/_end] → message → UTF-8 check, decode, route
 *   mbgw_send → [ws_deflate_wanted?] ws_deflate_compress → frame encoder (RSV1
 *     on the first fragment only) → write queue
 *
 * Memory: zlib streams are created on first use. Without context takeover
 * in a direction, that direction's stream is released at the end of each
 * message, so an idle connection holds no zlib memory for it; with context
 * takeover it is kept for the life of the connection (RFC 7692 §7.2.2: the
 * window must survive). ws_deflate_memory() tells what a connection holds.
 * docs/compression.md gives the measured cost of each setting.
 *
 * Threads: a struct ws_deflate belongs to one connection and is used by
 * that connection's worker thread only. Negotiation, configuration checks
 * and ws_deflate_compress_oneshot() are pure and may run on any thread.
 * Every allocation goes through the C allocator (zlib's own through
 * counting wrappers); nothing is cached between threads.
 */
#ifndef MBGW_WS_DEFLATE_H
#define MBGW_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util_buf.h"

/* Results. Functions that act return 0 or one of these; codes are never
 * renumbered, new ones are appended. */
#define WS_DEFLATE_E_NOMEM  (-1)  /* out of memory: close with 1011 */
#define WS_DEFLATE_E_TOOBIG (-2)  /* inflated message exceeds max_size: close with 1009 */
#define WS_DEFLATE_E_DATA   (-3)  /* not valid DEFLATE data, or not a complete message: close with 1007 */
#define WS_DEFLATE_E_SYNTAX (-4)  /* Sec-WebSocket-Extensions breaks RFC 6455 §9.1 grammar: answer 400 */
#define WS_DEFLATE_E_INVAL  (-5)  /* invalid configuration or argument (a bug or a config error) */

/* Longest response value ws_deflate_negotiate() can write, NUL included. */
#define WS_DEFLATE_RESPONSE_MAX 160

/* The extension token (RFC 7692 §7). */
#define WS_DEFLATE_NAME "permessage-deflate"

/* Server policy, from configuration. ws_deflate_config_default() fills the
 * defaults; ws_deflate_config_check() validates. */
struct ws_deflate_config {
	bool enabled;                     /* default true */
	unsigned server_max_window_bits;  /* 8..15: largest window we compress with (default 15) */
	unsigned client_max_window_bits;  /* 8..15: largest window we let the client use, when the
					   * client offers client_max_window_bits (15: no limit asked) */
	bool server_no_context_takeover;  /* answer with it even if the client does not ask (default false) */
	bool client_no_context_takeover;  /* ask the client for it (default false) */
	unsigned mem_level;               /* 1..9, zlib deflate memLevel (default 8) */
	int level;                        /* 0..9, zlib compression level (default 1, see docs/compression.md) */
	size_t threshold;                 /* compress only messages of at least this many bytes (default 1024) */
};

/* The parameters agreed for one connection (RFC 7692 §7.1). Window bits
 * are what the response says, 8..15 (15 when the response is silent). */
struct ws_deflate_params {
	bool server_no_context_takeover;
	bool client_no_context_takeover;
	unsigned server_max_window_bits;
	unsigned client_max_window_bits;
};

/* Per-connection state. The caller embeds it (zeroed or not) and calls
 * ws_deflate_init(); the fields are private to ws_deflate.c. */
struct ws_deflate_stream;
struct ws_deflate {
	struct ws_deflate_params p;
	int level;
	unsigned mem_level;
	size_t threshold;
	struct ws_deflate_stream *tx;  /* deflate, NULL while not held */
	struct ws_deflate_stream *rx;  /* inflate, NULL while not held */
	size_t tx_msg;                 /* bytes fed to the message being compressed */
	bool tx_in_msg;                /* a compressed message is in progress */
	int tx_err;                    /* sticky: first error of the deflate side */
	size_t rx_msg;                 /* bytes fed to the message being inflated */
	size_t rx_out;                 /* bytes inflated so far for that message */
	bool rx_in_msg;                /* a compressed message is in progress */
	bool rx_stream_end;            /* the last block seen had BFINAL set */
	int rx_err;                    /* sticky: first error of the inflate side */
};

/* Fills cfg with the defaults listed in struct ws_deflate_config. Any thread. */
void ws_deflate_config_default(struct ws_deflate_config *cfg);

/* Checks every field's range. Returns 0, or WS_DEFLATE_E_INVAL with *why
 * (if why is not NULL) set to a static sentence naming the field. Any
 * thread. */
int ws_deflate_config_check(const struct ws_deflate_config *cfg, const char **why);

/* Negotiation (RFC 7692 §5, §7.1) for one upgrade request.
 *
 * values[0..nvalues) are the values of every Sec-WebSocket-Extensions
 * header of the request, in order (lens[i] bytes each, not necessarily
 * NUL-terminated; borrowed). Together they form one extension list
 * (RFC 6455 §9.1): offers separated by ',', parameters after ';', values
 * as token or quoted-string, optional whitespace around separators, empty
 * list elements allowed. Extension and parameter names compare exactly.
 *
 * Offers of other extensions are ignored. permessage-deflate offers are
 * judged in order and the first acceptable one wins (RFC 7692 §5: the
 * order is the client's preference). An offer is declined — skipped, the
 * next one may still be accepted — when (RFC 7692 §7):
 *   - it has a parameter not defined for offers;
 *   - a parameter has an invalid value: server_no_context_takeover or
 *     client_no_context_takeover with a value, server_max_window_bits
 *     without a value, a window-bits value that is not 8..15 written in
 *     decimal without leading zeros (a quoted "10" is the value 10);
 *   - a parameter appears twice.
 * Every configuration the RFC allows is supported, so no offer is
 * declined for what it asks (window bits 8 included, see
 * docs/compression.md).
 *
 * On acceptance the response value is written to response (cap bytes, at
 * most WS_DEFLATE_RESPONSE_MAX needed, NUL-terminated) and *out holds the
 * agreed parameters:
 *   - server_no_context_takeover if offered or cfg forces it (§7.1.1.1);
 *   - client_no_context_takeover if offered or cfg asks for it (§7.1.1.2);
 *     echoing the client's own offer lets us drop its inflate state after
 *     every message;
 *   - server_max_window_bits=min(offer, cfg) when offered, or cfg's value
 *     when below 15 even if not offered (§7.1.2.1);
 *   - client_max_window_bits=min(offer or 15, cfg) only when the offer has
 *     client_max_window_bits and the result says something (a value was
 *     offered or cfg is below 15); never when the offer lacks it
 *     (§7.1.2.2).
 *
 * Returns 1 (accepted), 0 (no acceptable offer, or cfg->enabled is false:
 * continue without compression, write nothing), WS_DEFLATE_E_SYNTAX (the
 * header value breaks the RFC 6455 §9.1 grammar anywhere, even in another
 * extension's offer: the caller answers 400 Bad Request as RFC 6455
 * §4.2.1 allows for a malformed handshake), or WS_DEFLATE_E_INVAL (cap too
 * small). When why is not NULL it receives a static sentence saying why
 * the result is not 1 (e.g. "duplicate parameter in a permessage-deflate
 * offer") for the log; on 1 it is set to NULL. When compression is
 * disabled the header is not looked at. Any thread.
 */
int ws_deflate_negotiate(const struct ws_deflate_config *cfg, const char *const *values,
			 const size_t *lens, size_t nvalues, struct ws_deflate_params *out,
			 char *response, size_t cap, const char **why);

/* Prepares d for one connection with the agreed parameters p and the
 * level, memory level and threshold of cfg (both borrowed, copied). No
 * zlib memory is allocated yet. Returns 0 or WS_DEFLATE_E_INVAL. Any
 * thread, before the connection is shared. */
int ws_deflate_init(struct ws_deflate *d, const struct ws_deflate_config *cfg,
		    const struct ws_deflate_params *p);

/* Releases every zlib stream d holds (a message half inflated or half
 * compressed is dropped). d may be initialised again. The owner thread. */
void ws_deflate_free(struct ws_deflate *d);

/* Inflates one complete compressed message: in[0..len) is the payload of
 * all its frames concatenated (borrowed). Equivalent to
 * ws_deflate_inflate_feed() then ws_deflate_inflate_end(). */
int ws_deflate_inflate(struct ws_deflate *d, const uint8_t *in, size_t len, size_t max_size,
		       struct buf *out);

/* Streaming inflation, for a server that inflates frames as they arrive
 * and so stops reading a decompression bomb early. Feeds the next piece
 * of a compressed message (any split, possibly empty; in is borrowed) and
 * appends what it inflates to out. out may be consumed or be a different
 * buffer between calls: max_size bounds the whole message's inflated size
 * (RFC 7692 §7.2.2 output, counted over every feed and the end), never
 * out->len.
 *
 * Bomb-proof: out grows only as far as the bytes this call may still
 * produce, so a call never lets out->cap exceed its out->len on entry +
 * (max_size - inflated so far) + 1, and the call fails with
 * WS_DEFLATE_E_TOOBIG as soon as the message would exceed max_size.
 *
 * Returns 0, WS_DEFLATE_E_TOOBIG, WS_DEFLATE_E_DATA (corrupt data, or data
 * reaching further back than the agreed client_max_window_bits) or
 * WS_DEFLATE_E_NOMEM. After an error the inflate side is released and
 * every later inflate call returns the same error: the caller fails the
 * connection (1009 / 1007 / 1011; RFC 7692 does not name a code for bad
 * data, 1007 is RFC 6455 §7.4.1's "data not consistent with the type of
 * the message", the choice of npm ws as well). The owner thread. */
int ws_deflate_inflate_feed(struct ws_deflate *d, const uint8_t *in, size_t len,
			    size_t max_size, struct buf *out);

/* Ends the message fed so far: appends the 0x00 0x00 0xff 0xff that the
 * sender removed (RFC 7692 §7.2.2), inflates the rest, and checks that the
 * message ends on a block boundary (anything else is a truncated message:
 * WS_DEFLATE_E_DATA). A message with an empty payload is the empty message
 * and leaves the window untouched (what a zlib sender produces when it
 * flushes nothing). Then, with client_no_context_takeover, the inflate
 * stream is released; otherwise its window is kept for the next message.
 * Same returns and max_size rule as ws_deflate_inflate_feed(). The owner
 * thread. */
int ws_deflate_inflate_end(struct ws_deflate *d, size_t max_size, struct buf *out);

/* True if a message of len bytes should be compressed (len >= threshold).
 * Any thread that may read d. */
static inline bool ws_deflate_wanted(const struct ws_deflate *d, size_t len)
{
	return len >= d->threshold;
}

/* Compresses one whole message for sending and appends it to out
 * (RFC 7692 §7.2.1: DEFLATE, Z_SYNC_FLUSH, the trailing 0x00 0x00 0xff
 * 0xff removed; the empty message becomes the single byte 0x00). in is
 * borrowed. Equivalent to ws_deflate_compress_feed(..., true, out).
 *
 * With context takeover the output refers back to earlier messages: every
 * message compressed here MUST then be sent, in order, even if it came out
 * larger than the original. Returns 0, WS_DEFLATE_E_NOMEM or
 * WS_DEFLATE_E_INVAL (after an internal zlib error; sticky like the
 * inflate errors). The owner thread. */
int ws_deflate_compress(struct ws_deflate *d, const uint8_t *in, size_t len, struct buf *out);

/* Streaming compression: feeds the next piece of a message and appends
 * whatever compressed bytes are ready (possibly none until fin). With fin
 * the message ends and the output is complete as for
 * ws_deflate_compress(); the frames of one message carry the
 * concatenation of all pieces' outputs. Without
 * server_no_context_takeover the deflate stream is kept across messages,
 * otherwise it is released after fin. Same returns. The owner thread. */
int ws_deflate_compress_feed(struct ws_deflate *d, const uint8_t *in, size_t len, bool fin,
			     struct buf *out);

/* For broadcasts: returns the window bits with which a message compressed
 * once by ws_deflate_compress_oneshot() may be sent to this connection,
 * or 0 if this connection needs its own compression (it keeps a
 * server-side context, so a message compressed elsewhere would desync its
 * window). A oneshot output for bits w is valid for every connection for
 * which this returns w (and in fact any value >= w). Any thread that may
 * read d. */
static inline unsigned ws_deflate_shared_bits(const struct ws_deflate *d)
{
	return d->p.server_no_context_takeover ? d->p.server_max_window_bits : 0;
}

/* Compresses one whole message once for many recipients whose agreed
 * parameters have server_no_context_takeover and window_bits (8..15) as
 * server_max_window_bits, with cfg's level and mem_level (cfg borrowed).
 * Appends to out exactly what ws_deflate_compress() would for such a
 * connection. Allocates and frees a zlib stream per call. Returns 0,
 * WS_DEFLATE_E_NOMEM or WS_DEFLATE_E_INVAL. Any thread. */
int ws_deflate_compress_oneshot(const struct ws_deflate_config *cfg, unsigned window_bits,
				const uint8_t *in, size_t len, struct buf *out);

/* Bytes of zlib memory (streams, windows, hash tables) this connection
 * holds right now. The owner thread. */
size_t ws_deflate_memory(const struct ws_deflate *d);

/* Bytes of zlib memory held by all streams of the process right now, and
 * the highest value seen (for a metrics gauge). Any thread. */
size_t ws_deflate_memory_total(void);
size_t ws_deflate_memory_peak(void);

/* A static English sentence for a WS_DEFLATE_E_* code. Any thread. */
const char *ws_deflate_strerror(int rc);

/* Fault injection for tests: the nth zlib or stream allocation from now
 * fails (1 = the next one); 0 turns it off. Process-wide and not
 * thread-safe: tests only. */
void ws_deflate_fail_alloc_after(unsigned long nth);

#endif
