/* push: one delivery pass — pick due items from the queue, POST them as one batch
 * (deliver), and write the platform's answer back:
 *   200 with per-record results: accepted / duplicate -> sent; rejected -> dead letter
 *       keeping the platform's result; a record missing from the results -> retry;
 *   other 4xx (401 bad signature, 400, 413, ...) -> every record dead, keeping the answer
 *       (an operator retries them once the cause is fixed);
 *   5xx, 429, no answer (refused, timeout) -> retry after an exponential backoff with
 *       jitter, the same idempotency keys on every try. */
#ifndef SX_CP_PUSH_H
#define SX_CP_PUSH_H

#include <stdint.h>

#include "db.h"
#include "deliver.h"

typedef struct {
    int batch;              /* records per POST, 1..1000 */
    int64_t backoff_ms;     /* the first retry's delay */
    int64_t backoff_max_ms; /* the longest */
} push_config_t;

typedef struct {
    int picked, sent, dead, retried;
    long status; /* the platform's HTTP status; 0 when it did not answer */
} push_result_t;

/* One pass. Returns the number of items picked (0: nothing due), or -1 on a database
 * error (nothing was marked; the items will be picked again). */
int push_step(db_t *db, deliver_t *d, const push_config_t *cfg, push_result_t *res);

/* The delay before try attempts + 1: min(max, base * 2^(attempts-1)), of which a random
 * half is taken off (jitter, so that many records retried together spread out). */
int64_t push_backoff(const push_config_t *cfg, int attempts);

#endif
