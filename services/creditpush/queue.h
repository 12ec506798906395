/* queue: the durable queue of pushes (creditpush.item, schemas/sql/creditpush/).
 *
 * Filled by the publication subscriber's batch handler in the transaction that moves the
 * cursor, so every publication.published / withdrawn / repaired event becomes exactly
 * one item (or one dead letter with its reason), whatever crashes; the items of a batch
 * of events go in one INSERT (binary unnest arrays, common/pgarray). Each item keeps its
 * idempotency key "<record_id>-<version>" (1 publish, 2 withdraw, 3 repair) for every
 * try. */
#ifndef SX_CP_QUEUE_H
#define SX_CP_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "db.h"

/* What the handler tells the loop. */
typedef struct {
    bool pending;    /* new items were queued: deliver soon */
    uint64_t queued; /* items queued since start */
    uint64_t dead;   /* items dead-lettered at mapping since start */
} queue_app_t;

/* One item picked for delivery. */
typedef struct {
    int64_t id;
    char key[48];  /* idempotency key */
    char op[12];   /* publish | withdraw | repair */
    char kind[12]; /* penalty | licence */
    char *data;    /* the CF_ or XK_ fields as JSON text, owned */
    int attempts;  /* tries so far */
    bool serious;  /* 严重违法失信: flagged for the blacklist in the push */
} queue_item_t;

/* The subscriber's prefixes: {"publication.", NULL}. */
extern const char *const queue_prefixes[];

/* Registers the statements on db. Returns 0 or -1 (db_error). */
int queue_prepare(db_t *db);

/* bus_batch_fn over publication events, arg a queue_app_t *: published penalties and
 * licences become publish items (or dead letters naming the field at fault), withdrawals
 * of published ones withdraw items, credit repairs (publication.repaired) of penalties
 * repair items (CF_ZT 3 and CF_GSJZQ the repair day: sgs_record_repair); expired, other
 * types and other events change nothing (the platform stops showing a record at its
 * CF_GSJZQ by itself). An event that does not decode is logged and skipped. The batch's
 * items are inserted together. Returns 0, or -1 on a database error. */
int queue_handle(db_t *tx, const bus_event_t *events, int n, void *arg);

/* bus_handler_fn for one event (the same rules); for bus_sub_new. */
int queue_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

/* The server options the connection that picks needs (db_set_options, before it
 * connects). The pick must walk item_queued in (priority, id) order and stop after max
 * items. A bitmap scan reads every queued item and sorts them all instead, and the
 * generic plan, costed while few items were queued, keeps doing so when a backlog
 * builds: each pick then costs the whole queue, the deliverer falls further behind, and
 * the backlog grows (bench-pipeline: creditpush's lag climbed to 22 s in a 60 s run).
 * Without bitmap scans the planner's choice is the ordered walk. */
#define QUEUE_PICK_PG_OPTIONS "-c enable_bitmapscan=off"

/* Picks at most max (<= 1000) queued items that are due, other than the nskip ids in
 * skip (the batches in flight): key domains first, then oldest; a withdrawal or repair
 * only once the record it changes was sent. Fills out; returns the count or -1. Free
 * with queue_items_free. */
int queue_pick(db_t *db, int max, const int64_t *skip, int nskip, queue_item_t *out);
void queue_items_free(queue_item_t *items, int n);

/* Marks an item dead with reason and the platform's answer (may be NULL), or to be
 * tried again after delay_ms with the cause. Each counts one attempt. 0 or -1. */
int queue_mark_dead(db_t *db, int64_t id, const char *reason, const char *answer);
int queue_mark_retry(db_t *db, int64_t id, int64_t delay_ms, const char *reason,
                     const char *answer);

/* Marks n items (ids) sent, dead or to be tried again, one statement each; each counts
 * one attempt. 0 or -1. */
int queue_mark_sent_many(db_t *db, const int64_t *ids, int n);
int queue_mark_dead_many(db_t *db, const int64_t *ids, int n, const char *reason,
                         const char *answer);
int queue_mark_retry_many(db_t *db, const int64_t *ids, int n, int64_t delay_ms, const char *reason,
                          const char *answer);

/* Items waiting (state queued), for the queue-depth gauge; -1 on error. */
int64_t queue_depth(db_t *db);

/* Holds every queued item back for at least delay_ms: the platform is down for all of
 * them, and when it is back they go together, key domains first. 0 or -1. */
int queue_hold_all(db_t *db, int64_t delay_ms);

/* The unix ms of the earliest queued item that may be sent (a withdrawal or repair only
 * once its record was sent), 0 when none, -1 on error. */
int64_t queue_next_due(db_t *db);

#endif
