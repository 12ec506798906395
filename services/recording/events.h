/* events: the subscriber of intake's stream (common/bus batch handler). Each case event
 * (case.*, inspection.*) becomes the next entry of its case's chain (chain.h), in the
 * transaction that advances the bus cursor, so each event is appended exactly once.
 * Around the append: registry.av_matter.<code> events keep recording's copy of the AV
 * matter list; a stage change or case.closed runs the AV checks (av_rules.h) and opens
 * gaps; a late AV record closes them; case.closed seals the archive (archive.h).
 * Events out (stream "recording"): record.appended, record.gap, record.gap_closed,
 * record.archived (schemas/messages/recording.md). */
#ifndef SX_RECORDING_EVENTS_H
#define SX_RECORDING_EVENTS_H

#include "bus.h"
#include "db.h"
#include "recording.h"

/* The prefixes to subscribe to on stream "intake": everything it publishes (so seq has
 * no gaps to repair); the handler picks what it needs. */
extern const char *const recording_events_prefixes[];

/* Prepares the statements on db (the subscriber's connection). Returns 0 or -1. */
int recording_events_prepare(db_t *db);

/* The batch handler (bus_batch_fn); arg is the recording_t. Returns 0, or -1 after a
 * database failure (the batch is rolled back and tried again). A case event that does
 * not decode as its contract says is recorded in recording.bus_rejected and skipped. */
int recording_events_handle(db_t *tx, const bus_event_t *events, int n, void *arg);

/* The same for one event (bus_handler_fn, for bus_sub_new, which wants one; the batch
 * handler replaces it). */
int recording_events_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why,
                                size_t whylen);

#endif
