/* zap: the ZAP handler (ZeroMQ RFC 27) that decides who may connect to a CURVE server.
 *
 * zap_new binds inproc://zeromq.zap.01 on the given context before it returns, so a
 * caller that creates its server sockets afterwards (zsock_server takes the zap_t to
 * make that order hard to get wrong) never has a socket that accepts before the
 * handler exists. It answers in its own thread.
 *
 * Fails closed: a request is admitted (200, User-Id = the key's identity) only when the
 * mechanism is CURVE, the client's public key is in the current key table, and the
 * identity matches a pattern registered for the socket's ZAP domain. Everything else
 * (NULL or PLAIN mechanism, unknown key, no table yet, unknown or empty domain, a
 * malformed request) is answered 400, counted and logged (at most 10 lines a second;
 * the rest are counted and summarised). Server sockets made by common/zsock also set
 * ZMQ_ZAP_ENFORCE_DOMAIN, so libzmq itself refuses when no handler is bound.
 *
 * Thread safety: every function except zap_destroy may be called from any thread at any
 * time (a mutex guards the table and the policies); the key table can be swapped while
 * connections arrive (SIGHUP reload): a request sees either the old or the new table.
 * One handler per ZeroMQ context (libzmq's endpoint name is fixed). */
#ifndef SX_ZAP_H
#define SX_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "ops.h"

#define ZAP_ENDPOINT     "inproc://zeromq.zap.01"
#define ZAP_MAX_DOMAINS  16
#define ZAP_MAX_PATTERNS 8 /* per domain */

typedef struct zap zap_t;

/* Binds the ZAP endpoint on ctx and starts the handler thread. It admits nobody until a
 * key table is set and domains are allowed. Returns NULL with the reason in err (the
 * endpoint already bound in this context, out of memory, thread creation failed). */
zap_t *zap_new(void *ctx, char *err, size_t errlen);

/* Stops the thread, closes its sockets (before the context is terminated), frees the
 * key table; sets *self_p to NULL. Idempotent. Call after closing the server sockets. */
void zap_destroy(zap_t **self_p);

/* Admits, on the ZAP domain `domain` (non-empty, at most 63 bytes), identities matching
 * pattern: a pattern ending in ':' is a prefix ("svc:" admits every service, "dept:"
 * every department), any other pattern must equal the identity ("svc:relay"). Returns
 * 0, or -1 when domain or pattern is empty or too long, or the tables are full. */
int zap_allow(zap_t *self, const char *domain, const char *pattern);

/* Replaces the key table with *keys_p, taking ownership (sets *keys_p to NULL) and
 * freeing the previous table. Connections already admitted keep their User-Id. */
void zap_set_keys(zap_t *self, keys_t **keys_p);

/* Counts every admission and every refusal into these counters as well (either may be
 * NULL). The metrics must outlive the zap_t. */
void zap_set_metrics(zap_t *self, ops_metric_t *admitted, ops_metric_t *refused);

/* Totals since zap_new. */
uint64_t zap_admitted(zap_t *self);
uint64_t zap_refused(zap_t *self);

#endif
