/* queue: the durable queue of pushes (creditpush.item, schemas/sql/creditpush/).
 *
 * Filled by the publication subscriber's batch handler in the transaction that moves the
 * cursor, so every publication.published / withdrawn event becomes exactly one item (or
 * one dead letter with its reason), whatever crashes. Each item keeps its idempotency
 * key "<record_id>-<version>" (1 publish, 2 withdraw) for every try. */
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
    char op[12];   /* publish | withdraw */
    char kind[12]; /* penalty | licence */
    char *data;    /* the CF_ or XK_ fields as JSON text, owned */
    int attempts;  /* tries so far */
} queue_item_t;

/* The subscriber's prefixes: {"publication.", NULL}. */
extern const char *const queue_prefixes[];

/* Registers the statements on db. Returns 0 or -1 (db_error). */
int queue_prepare(db_t *db);

/* bus_batch_fn over publication events, arg a queue_app_t *: published penalties and
 * licences become publish items (or dead letters naming the field at fault), withdrawals
 * of published ones become withdraw items; expired, other types and other events change
 * nothing (the platform stops showing a record at its CF_GSJZQ by itself). An event
 * that does not decode is logged and skipped. Returns 0, or -1 on a database error. */
int queue_handle(db_t *tx, const bus_event_t *events, int n, void *arg);

/* bus_handler_fn for one event (the same rules); for bus_sub_new. */
int queue_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

/* Picks at most max (<= 1000) queued items that are due: key domains first, then oldest;
 * a withdrawal only once the record it withdraws was sent. Fills out; returns the
 * count or -1. Free with queue_items_free. */
int queue_pick(db_t *db, int max, queue_item_t *out);
void queue_items_free(queue_item_t *items, int n);

/* Marks an item sent; dead with reason and the platform's answer (may be NULL); or to
 * be tried again after delay_ms with the cause. Each counts one attempt. 0 or -1. */
int queue_mark_sent(db_t *db, int64_t id);
int queue_mark_dead(db_t *db, int64_t id, const char *reason, const char *answer);
int queue_mark_retry(db_t *db, int64_t id, int64_t delay_ms, const char *reason,
                     const char *answer);

/* Holds every queued item back for at least delay_ms: the platform is down for all of
 * them, and when it is back they go together, key domains first. 0 or -1. */
int queue_hold_all(db_t *db, int64_t delay_ms);

/* The unix ms of the earliest queued item, 0 when none, -1 on error. */
int64_t queue_next_due(db_t *db);

#endif
