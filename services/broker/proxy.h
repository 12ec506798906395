/* proxy: the broker's XSUB/XPUB forwarding with frame checks and the subscription ACL.
 *
 * Publishers connect to the XSUB side and send [topic][envelope]: exactly two frames, the
 * topic passing acl_topic_check, the envelope 1..65536 bytes. Anything else is dropped,
 * counted by reason and logged (at most 10 lines a second), and the broker goes on.
 *
 * Subscribers connect to the XPUB side, which runs in ZMQ_XPUB_MANUAL mode: each
 * subscription is checked with acl_subscribe against the subscriber's User-Id and only
 * an accepted one is applied, so a refused subscriber receives nothing for it.
 *
 * Upstream (publisher-side filtering): the first accepted subscription to a prefix is
 * forwarded to the publishers through XSUB. The prefix is unsubscribed upstream once
 * every connection that asked for it has gone. libzmq reports a closed connection's
 * subscriptions without saying whose they were or whether they had been accepted, so
 * the broker counts every request for a prefix (accepted or refused) and unsubscribes
 * upstream only when that count is back to zero: upstream may keep a prefix longer than
 * needed (publishers then send what the broker drops), never drop one still needed. A
 * live unsubscribe is applied to the subscriber at once but does not lower the count
 * (libzmq does not say whether it matched a subscription). Past 65,536 distinct
 * prefixes the broker stops unsubscribing upstream altogether (logged once).
 *
 * One thread: the caller's loop polls both sockets and calls the proxy_on_* functions. */
#ifndef SX_BROKER_PROXY_H
#define SX_BROKER_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "ops.h"

typedef struct proxy proxy_t;

/* Makes a proxy over the two sockets (not owned; XPUB must already have ZMQ_XPUB_MANUAL
 * set) and registers its metrics on ops (sx_broker_*). Returns NULL with the reason in
 * err (out of memory, a metric could not be registered). */
proxy_t *proxy_new(void *xsub, void *xpub, ops_t *ops, char *err, size_t errlen);

/* Frees the proxy (not the sockets); sets *self_p to NULL. Idempotent. */
void proxy_destroy(proxy_t **self_p);

/* Handles what is waiting on the XSUB side (publishers' messages), at most max
 * messages, without blocking. Returns how many were read. */
int proxy_on_publish(proxy_t *self, int max);

/* Handles what is waiting on the XPUB side (subscriptions), at most max, without
 * blocking. Returns how many were read. */
int proxy_on_subscribe(proxy_t *self, int max);

/* Marks the sockets bound (or not); /healthz reports it. Thread-safe. */
void proxy_set_ready(proxy_t *self, bool ready);

/* An ops_check_fn: healthy once proxy_set_ready(true). arg is the proxy_t. */
bool proxy_health(void *arg, char *why, size_t whylen);

#endif
