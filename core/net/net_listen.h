/* net_listen — listening sockets.
 *
 * Each worker gets its own socket per configured address, all bound with
 * SO_REUSEPORT, so the kernel spreads new connections over the workers and
 * every connection is owned by the worker that accepted it, for life.
 * Sockets are created by the main thread before any worker starts, so a
 * bind error stops start-up with a clear message.
 */
#ifndef MBGW_NET_LISTEN_H
#define MBGW_NET_LISTEN_H

#include "conf/conf.h"

/* Creates, binds and listens. Returns the fd, or -1 with a message in
 * why (errno text). IPv6 sockets are IPV6_V6ONLY so [::]:P and
 * 0.0.0.0:P can be listed side by side. */
int net_listen_open(const struct conf_listen *l, int backlog, char *why, size_t whylen);

/* Writes "ip:port" (IPv6 in brackets) for a socket address. */
void net_addr_format(const struct sockaddr *sa, char *out, size_t cap);

#endif
