/* events: sx-review's subscriber of stream "intake" (registry.* and case.*,
 * schemas/messages/intake/). The deadlines it writes on a task are followed by
 * deadlines.c.
 *
 * Registry events keep review's own copies (agency, officer, rule, band: the highest
 * version wins). case.opened / case.recorded record who handled a case; case.decided
 * the fines decided (discretion.c). case.proposed is the review request: each version
 * is judged afresh against the catalogue (catalogue.c); review is required when a rule
 * matches or when intake found it required (intake's gate waits for a verdict then, and
 * e.g. a discretion deviation is only intake's to see); it emits review.not_required
 * with the reason, or opens a task (reviewers.c assigns, discretion.c flags) due after
 * the agency's review days, and supersedes the open task of an earlier version. All in
 * the transaction that moves the cursor: exactly once. A malformed event is logged and
 * kept in review.bus_rejected; the stream moves on.
 *
 * A batch costs a few statements, not a few per event: each agency's row and rules are
 * read once per batch (read again after a registry event of that agency), and the case
 * facts, the judgements (whose RETURNING says which are new, and so have effects) and the
 * supersedes are written with one unnest statement each. The effects are those of the
 * events handled one by one, in order: whatever a waiting review task would read is
 * written first (see s_batch_t in events.c). */
#ifndef SX_REVIEW_EVENTS_H
#define SX_REVIEW_EVENTS_H

#include "bus.h"
#include "db.h"
#include "review.h"

/* {"case.", "registry.", NULL} */
extern const char *const events_prefixes[];

/* Prepares every statement the handler uses on db. Returns 0, or -1 (db_error). */
int events_prepare(db_t *db);

/* The batch handler (bus_batch_fn; arg is the review_t). Returns 0, or -1 when the
 * database failed (the batch is retried). */
int events_handle(db_t *tx, const bus_event_t *events, int n, void *arg);

#endif
