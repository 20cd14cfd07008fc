/* msg_decode — splits an application message "<header line>\n<payload>".
 *
 * Stage "decode" of the message path, after frame assembly and before
 * routing. The header line is printable ASCII (0x20..0x7E), at most
 * max_header bytes; its first token is the message type, the others are
 * key=value attributes separated by spaces:
 *
 *     chat.send id=42 room=lobby\n{"text":"hi"}
 *
 * For text messages the payload must be one JSON value (RFC 8259); it is
 * parsed with cJSON. An empty payload (or only whitespace) stands for JSON
 * null, so "chat.leave\n" needs no body. Binary payloads are not looked at.
 *
 * Pure (plus cJSON's allocations, freed by msg_decoded_free); any thread.
 */
#ifndef MBGW_MSG_DECODE_H
#define MBGW_MSG_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbgw/plugin.h>

#define MSG_MAX_ATTRS 32

/* The documented error codes of error replies (docs/protocol.md). */
#define MSG_ERR_BAD_HEADER "bad_header"
#define MSG_ERR_INVALID_JSON "invalid_json"
#define MSG_ERR_NO_ROUTE "no_route"
#define MSG_ERR_UNSUPPORTED_PAYLOAD "unsupported_payload"
#define MSG_ERR_PLUGIN_ERROR "plugin_error"

struct msg_decoded {
	const char *header;
	size_t header_len;
	const char *type;
	size_t type_len;
	struct mbgw_attr attrs[MSG_MAX_ATTRS];
	size_t nattrs;
	const char *id;             /* value of the id attribute, or NULL */
	size_t id_len;
	const uint8_t *payload;
	size_t payload_len;
	void *json;                 /* cJSON *, text messages only */
};

struct msg_error {
	const char *code;           /* MSG_ERR_* */
	char message[160];          /* human-readable, for the client */
};

/* Decodes data[0..len). text selects JSON parsing of the payload. On
 * success returns 0 and fills out (pointers into data; out->json owned by
 * out). On failure returns -1 and fills err; out->id is still set when
 * the header was readable, so the error reply can carry it. */
int msg_decode(const uint8_t *data, size_t len, bool text, size_t max_header,
	       struct msg_decoded *out, struct msg_error *err);

void msg_decoded_free(struct msg_decoded *m);

/* True if a message type matches a pattern: exact ("chat.send"), prefix
 * ("chat.*" matches "chat.send" and "chat.room.join"), or "*". */
bool msg_type_matches(const char *pattern, const char *type, size_t type_len);

/* Writes an error reply "error[ id=ID]\n{"code":"...","message":"..."}"
 * into out[cap] (message JSON-escaped). Returns its length, or 0 if it
 * does not fit. */
size_t msg_format_error(char *out, size_t cap, const char *id, size_t id_len,
			const char *code, const char *message);

/* True if s is a valid header line (printable ASCII, non-empty type). */
bool msg_header_valid(const char *s, size_t n);

#endif
