/* events: sx-publication's subscribers of streams "intake", "review" and "recording", and
 * its own events.
 *
 * In (stream intake): registry.agency.* (the agency's name), registry.officer.* (for
 * certificate checks), case.opened (the party, kept unmasked; the case counted),
 * case.proposed (a review request, counted), case.deadline.overdue (counted), case.decided
 * and inspection.resulted (a draft public record, masked, with its deadlines; a 轻微
 * penalty is kept exempt unless the agency set publish_minor), case.revoked (the record
 * withdrawn, 行政处罚法 2021 art. 48). In (streams review, recording): the facts the
 * statistics count (events_handle_stats). Out (stream publication,
 * schemas/messages/publication.md): publication.drafted, .published, .rejected, .withdrawn,
 * .warning, .overdue, .expired, .repaired, .resubmitted, .settings, .statistics, .report. */
#ifndef SX_PUB_EVENTS_H
#define SX_PUB_EVENTS_H

#include <stdbool.h>

#include <jansson.h>

#include "bus.h"
#include "publication.h"

/* The prefixes to subscribe to on stream intake (NULL-terminated). */
extern const char *const events_prefixes[];

/* For the statistics (统计年报): stream review (review.not_required, .approved, .returned,
 * .referred, .escalated, .overdue counted per proposal version; .due_soon ignored) and
 * stream recording (record.gap, record.gap_closed: audio/video gaps; the rest ignored). */
extern const char *const events_review_prefixes[];
extern const char *const events_recording_prefixes[];

/* Prepares the handler's statements on db (the subscriber's connection). Returns 0/-1. */
int events_prepare(db_t *db);

/* Prepares events_handle_stats's statements on db. Returns 0 or -1. */
int events_prepare_stats(db_t *db);

/* bus_batch_fn for streams review and recording: inserts each event's fact (003_stats.sql)
 * once, whatever the redelivery (the day counted is the event's, China time); the
 * reviews of a batch in one statement. A malformed
 * event is logged at error and skipped. Returns 0, or -1 on a database failure. */
int events_handle_stats(db_t *tx, const bus_event_t *events, int n, void *arg);

/* bus_handler_fn over events_handle_stats, for bus_sub_new. */
int events_handle_stats_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

/* bus_batch_fn: handles n events of stream intake in tx; arg is a publication_t *.
 * Set-based: one statement per table for the whole batch (parties, statistics facts,
 * drafts, their publication.drafted events), with the effects an event depends on
 * written before it (registry and case.revoked events split the batch and are applied one
 * at a time); the outcome is what handling the events one by one would give, and a
 * redelivered batch changes nothing. An event that cannot be used (malformed, a decision
 * without its case.opened) is logged at error and skipped: the stream goes on. Returns 0,
 * or -1 on a database failure. */
int events_handle(db_t *tx, const bus_event_t *events, int n, void *arg);

/* bus_handler_fn over events_handle, for bus_sub_new (which wants one; the batch handler
 * set with bus_sub_set_batch_handler replaces it). */
int events_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

/* bus_key_fn: shards by case (agency and case_id), so a case's events meet in one
 * writer; registry events go to their agency's shard (returns -1). */
int events_shard_key(const bus_event_t *ev, void *arg, char *key, size_t keylen);

/* Emits publication.<event>.<agency> with data (a JSON object of the event's fields, not
 * stolen) into the publication outbox in tx. Returns 0 or -1 (logged). */
int events_emit(db_t *tx, const char *event, const char *agency, const json_t *data);

/* Publication events gathered to be written with one statement per BUS_BATCH_MAX
 * (bus_emit_batch), in the order added. Zero-initialise; events_out_free when done. */
typedef struct {
    bus_event_in_t *ev; /* topic and data of each owned (malloc'ed) */
    size_t n, cap;
    bool bad; /* out of memory or an event that could not be encoded: flush fails */
} events_out_t;

/* Adds publication.<event>.<agency> with data (not stolen) to o. Returns 0, or -1 (o is
 * then bad; logged). */
int events_out_add(events_out_t *o, const char *event, const char *agency, const json_t *data);

/* As events_out_add with the data already packed: *sb holds one msgpack map, which o
 * takes (sb is left empty). Returns 0, or -1 (o is then bad; logged). */
int events_out_add_packed(events_out_t *o, const char *event, const char *agency,
                          msgpack_sbuffer *sb);

/* Writes o's events into the publication outbox in tx, in order, and empties o.
 * Returns 0, or -1 (o bad, or a database failure; logged). */
int events_out_flush(db_t *tx, events_out_t *o);

/* Frees what o holds; o may be used again. */
void events_out_free(events_out_t *o);

#endif
