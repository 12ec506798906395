/* push: the batches — pick due items from the queue, POST them as one batch (deliver,
 * in the background of the service's loop), and write the platform's answer back:
 *   200 with per-record results: accepted / duplicate -> sent; rejected -> dead letter
 *       keeping the platform's result; a record missing from the results -> retry;
 *   other 4xx (401 bad signature, 400, 413, ...) -> every record dead, keeping the answer
 *       (an operator retries them once the cause is fixed);
 *   5xx, 429, no answer (refused, timeout) -> retry after an exponential backoff with
 *       jitter, the same idempotency keys on every try. */
#ifndef SX_CP_PUSH_H
#define SX_CP_PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "deliver.h"

#define PUSH_INFLIGHT_MAX 8

typedef struct {
    int batch;              /* records per POST, 1..1000 */
    int inflight;           /* POSTs in flight at once, 1..PUSH_INFLIGHT_MAX */
    int64_t backoff_ms;     /* the first retry's delay */
    int64_t backoff_max_ms; /* the longest */
} push_config_t;

typedef struct {
    int picked, sent, dead, retried;
    long status; /* the platform's HTTP status; 0 when it did not answer */
} push_result_t;

typedef struct push_s push_t;

/* The deliverer: cfg->inflight slots, each with its own connection to the platform
 * (deliver_new with dc). cfg is borrowed and outlives it. NULL with err filled when a
 * deliverer could not be made (bad settings, out of memory). */
push_t *push_new(const deliver_config_t *dc, const push_config_t *cfg, char *err, size_t errlen);

/* Idempotent; NULLs *self_p. Batches in flight are dropped: their items stay queued and
 * go again with the same keys. */
void push_destroy(push_t **self_p);

/* True when a slot is free for push_start. */
bool push_can_start(const push_t *self);

/* True while a batch is in flight. */
bool push_busy(const push_t *self);

/* On db (the deliverer's own connection): picks the due items not already in flight
 * (queue_pick: key domains first, then oldest; a withdrawal or repair only after its
 * record was sent, so never beside it) and starts their POST in a free slot, in the
 * background (deliver_start). Returns the number picked (0: nothing due or no free
 * slot), or -1 on a database error or when memory ran out (nothing was marked; the
 * items will be picked again). */
int push_start(push_t *self, db_t *db);

/* The sockets of the POSTs in flight, for the caller's poll (deliver_pollitems), at most
 * max; and how long the poll may wait at most (deliver_wait_ms, capped at cap). */
int push_pollitems(push_t *self, zmq_pollitem_t *items, int max);
long push_wait_ms(push_t *self, long cap);

/* Moves the batches in flight on and, for the first whose answer is in, writes it back
 * on db in one transaction. Returns 1 when a batch ended (res filled; call again, more
 * may have), 0 when none did, -1 when an outcome could not be written (its items stay
 * queued). */
int push_turn(push_t *self, db_t *db, push_result_t *res);

/* The delay before try attempts + 1: min(max, base * 2^(attempts-1)), of which a random
 * half is taken off (jitter, so that many records retried together spread out). */
int64_t push_backoff(const push_config_t *cfg, int attempts);

#endif
