/* deadlines: the statutory time limit of each open case (法定办理时限) as two timers, and
 * the events that say it is near or past.
 *
 * The limit itself is the matter's (行政执法事项清单: time_limit and its unit), turned by
 * case_ops at case.open into the deadline columns of the case's row in intake.cases (due,
 * and warn_on = due minus 3 working days, CASE_WARN_WORKDAYS; e.g. licence: 20 working days from
 * acceptance, 行政许可法 art. 42, extendable; penalty: 90 days from filing, 行政处罚法
 * art. 60); met_on is set when the decision is made. This module follows those rows:
 *
 *   warning   due at 00:00 China time (UTC+8) of warn_on: case.deadline.warning.<agency>
 *             (not sent once the deadline has passed)
 *   overdue   due at 00:00 China time of the day after due, when the last day has fully
 *             passed: case.deadline.overdue.<agency>
 *
 * Timers live in Redis (common/timer, kinds "warning" and "overdue", key the case id);
 * Postgres is the truth. A firing reads the case's row FOR SHARE in a transaction (so a
 * decision being committed waits or is seen): when it is still pending (met_on NULL,
 * the case open or proposed) and the timer's moment has come for the dates the row holds
 * now (an extension moves them: the timer is armed again for the new moment instead), it
 * records (case_id, kind, due) in intake.deadline_event, sets warned_at / overdue_at and
 * emits the event in the same transaction, so each is emitted once per deadline however
 * often the timer fires; timer_done follows the commit.
 *
 * Arming: at start and whenever timer_needs_rearm, every pending deadline is armed from
 * Postgres; every DEADLINES_SCAN_MS the cases opened since the last scan (id above the
 * highest seen) are armed, which is how a new case gets its timers shortly after its
 * commit; every DEADLINES_SWEEP_MS a full rearm repairs anything missed (an arm lost to
 * a Redis error, cases committed out of id order by another instance).
 *
 * Runs in its own thread (deadlines_start) over its own database handle and timers, so
 * a long rearm never delays the request loop. */
#ifndef SX_INTAKE_DEADLINES_H
#define SX_INTAKE_DEADLINES_H

#include <stdbool.h>
#include <stdint.h>

#include "date.h"
#include "db.h"
#include "ops.h"
#include "timer.h"

#define DEADLINES_SCAN_MS  1000   /* new cases armed at most this long after commit */
#define DEADLINES_SWEEP_MS 300000 /* full rearm from Postgres every 5 minutes */
#define DEADLINES_CLAIM_MS 1000   /* due timers claimed this often */

typedef struct deadlines deadlines_t;

/* Counters since deadlines_new. */
typedef struct {
    uint64_t armed;    /* timers armed (rearms and scans) */
    uint64_t fired;    /* timers claimed */
    uint64_t warnings; /* case.deadline.warning events emitted */
    uint64_t overdue;  /* case.deadline.overdue events emitted */
    uint64_t moved;    /* firings that found the deadline moved and armed it again */
    uint64_t errors;   /* database or Redis failures (logged) */
} deadlines_stats_t;

/* The moment (unix ms) a timer is due for a case whose deadline row says due (the last
 * day of the limit) and warn_on (the warning day): 00:00 UTC+8 of warn_on for the
 * warning, of the day after due for overdue. Pure. */
int64_t deadlines_due_ms(bool warning, date_t due, date_t warn_on);

/* A new deadline keeper over db and timers (both owned from here on: destroyed with it,
 * also when this fails). ops may be NULL; when
 * set, counters sx_intake_deadline_* are registered on it. Prepares its statements;
 * does not connect. Returns NULL on bad arguments or out of memory. */
deadlines_t *deadlines_new(db_t *db, timers_t *timers, ops_t *ops);

/* Stops the thread when running (waits for the step in progress), frees everything it
 * owns; sets *self_p to NULL. Idempotent. */
void deadlines_destroy(deadlines_t **self_p);

/* Does what is due at now_ms (wall clock, unix ms): a full rearm when needed or when the
 * sweep is due, the scan for new cases, claiming and handling due timers. Returns the ms
 * until it next needs to run. Failures are logged and counted, and tried again later. */
int deadlines_step(deadlines_t *self, int64_t now_ms);

/* Runs deadlines_step in a new thread until deadlines_destroy. Returns 0, or -1 when
 * the thread could not be made (or already runs). */
int deadlines_start(deadlines_t *self);

/* A copy of the counters; safe from any thread. */
deadlines_stats_t deadlines_stats(const deadlines_t *self);

#endif
