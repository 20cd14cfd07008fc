/* limits — per client address admission: connections per IP, total
 * connections, and a token bucket for handshakes per IP.
 *
 * Only used when a limit is configured (all are off by default, so tests
 * and benchmarks that open tens of thousands of connections from one
 * loopback address are never throttled). One mutex guards the table: it
 * is taken at accept, upgrade and close, never per message. Any thread.
 */
#ifndef MBGW_LIMITS_H
#define MBGW_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"

/* Counts a new connection from addr. Returns NULL when it may proceed,
 * else a reason (static) for refusing it. */
const char *limits_connect(const struct conf *c, const struct sockaddr *addr);
/* Forgets a connection counted by limits_connect. */
void limits_disconnect(const struct conf *c, const struct sockaddr *addr);
/* Takes a handshake token for addr; false when over the rate. */
bool limits_handshake(const struct conf *c, const struct sockaddr *addr, uint64_t now_ms);
/* True when any per-IP or total limit is configured. */
bool limits_enabled(const struct conf *c);
/* Forgets addresses with no connection and a full bucket (worker 0,
 * every few seconds), so the table only holds recent clients. */
void limits_sweep(const struct conf *c, uint64_t now_ms);
void limits_cleanup(void);

#endif
