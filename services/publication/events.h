/* events: sx-publication's subscriber of stream "intake" and its own events.
 *
 * In (stream intake): registry.agency.* (the agency's name), registry.officer.* (for
 * certificate checks), case.opened (the party, kept unmasked), case.decided and
 * inspection.resulted (a draft public record, masked, with its deadlines; a 轻微 penalty
 * is kept exempt), case.revoked (the record withdrawn, 行政处罚法 2021 art. 48). Out
 * (stream publication, schemas/messages/publication.md): publication.drafted,
 * .published, .rejected, .withdrawn, .warning, .overdue, .expired. */
#ifndef SX_PUB_EVENTS_H
#define SX_PUB_EVENTS_H

#include <jansson.h>

#include "bus.h"
#include "publication.h"

/* The prefixes to subscribe to on stream intake (NULL-terminated). */
extern const char *const events_prefixes[];

/* Prepares the handler's statements on db (the subscriber's connection). Returns 0/-1. */
int events_prepare(db_t *db);

/* bus_batch_fn: handles n events of stream intake in tx; arg is a publication_t *.
 * An event that cannot be used (malformed, a decision without its case.opened) is logged
 * at error and skipped: the stream goes on. Returns 0, or -1 on a database failure. */
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

#endif
