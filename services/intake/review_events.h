/* review_events: the review service's verdicts (法制审核意见), as intake's decision gate
 * needs them.
 *
 * A bus subscriber of stream "review" (common/bus) handles review.approved.<agency> and
 * review.returned.<agency> (schemas/messages/review.md): each becomes one row of
 * intake.review_verdict (case_id, proposal_version, verdict, opinion, at) in the
 * transaction that moves intake's cursor on that stream, so each verdict is recorded
 * exactly once; the decision gate (decision_gate.c) reads that table at case.decide.
 * A malformed event, or one about a case that is not the topic's agency's, is rejected
 * for good (BUS_REJECT, kept in intake.bus_rejected with the field at fault); the
 * stream moves on. */
#ifndef SX_INTAKE_REVIEW_EVENTS_H
#define SX_INTAKE_REVIEW_EVENTS_H

#include <stddef.h>

#include "bus.h"
#include "db.h"

#define REVIEW_STREAM       "review"
#define REVIEW_OPINION_MAX  4000 /* bytes in an opinion (法制审核意见) */
#define REVIEW_REVIEWER_MAX 64   /* bytes in a reviewer's name or certificate number */

/* The topic prefixes to subscribe to: {"review.approved.", "review.returned.", NULL}. */
extern const char *const review_events_prefixes[];

/* Prepares the statements the handler uses on db (the subscriber's handle). Returns 0,
 * or -1 (db_error). */
int review_events_prepare(db_t *db);

/* The subscriber's handler (bus_handler_fn; arg unused): 0 when the verdict was recorded
 * (or was already), BUS_REJECT with the reason in why when the event is malformed or
 * names a case of another agency or none, -1 when the database failed. */
int review_events_handle(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

#endif
