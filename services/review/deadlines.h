/* deadlines: the deadlines of open review tasks as Redis timers, and the events that say
 * one is near or past (DESIGN.md, "Deadlines": Postgres is the truth, Redis the timers).
 *
 * A task is due the agency's review days (working days, official calendar) after it was
 * opened: review.task.due_on, and warn_on one working day earlier (events.c writes both
 * at case.proposed; opinion.c at review.escalate). Per open task, three timers (kinds,
 * key the task id):
 *
 *   warn     00:00 China time (UTC+8) of warn_on: review.due_soon.<agency>; not sent once
 *            the task is overdue
 *   overdue  00:00 China time of the day after due_on (the due day itself is still in
 *            time): review.overdue.<agency>
 *   limit    00:00 China time of the working day before the case's statutory deadline
 *            (review.case_deadline, from case.opened): a review still open then threatens
 *            the statutory limit (法定办案期限, 办案与审核总时间不超过法定办案期限,
 *            嘉政办发〔2019〕56号 item 17), so the task is flagged `statutory_limit` with
 *            a note (a task whose due day is already after the deadline is flagged when
 *            opened, events.c, and gets no limit timer)
 *
 * A firing locks the task's row (FOR UPDATE) in one transaction: only when the task is
 * still open, its flag (warned, overdue, statutory_limit) not yet set, and the moment
 * computed from the dates Postgres holds now has come, it sets the flag and emits the
 * event in that transaction. So each event is emitted once per task however often a
 * timer fires (twice, after a restart, after a rearm); a timer that fires early (the
 * dates moved) is armed again for the new moment; timer_done follows the commit.
 *
 * Arming: at start and whenever timer_needs_rearm (Redis restarted empty, FLUSHALL),
 * every open task's pending timers are armed from Postgres; every DEADLINES_SCAN_MS the
 * tasks opened since the last scan (id above the highest seen); every sweep_ms a full
 * rearm repairs anything missed (an arm lost to a Redis error).
 *
 * Runs in the service's loop (deadlines_step) over its own database handle and timers. */
#ifndef SX_REVIEW_DEADLINES_H
#define SX_REVIEW_DEADLINES_H

#include <stdbool.h>
#include <stdint.h>

#include "date.h"
#include "db.h"
#include "review.h"
#include "timer.h"

#define DEADLINES_SCAN_MS  1000  /* new tasks armed at most this long after commit */
#define DEADLINES_CLAIM_MS 1000  /* due timers claimed this often */
#define DEADLINES_SWEEP_MS 60000 /* default full rearm (and gauges) interval */

#define DEADLINES_KIND_WARN    "warn"
#define DEADLINES_KIND_OVERDUE "overdue"
#define DEADLINES_KIND_LIMIT   "limit"

typedef struct deadlines deadlines_t;

/* Counters since deadlines_new. */
typedef struct {
    uint64_t armed;    /* timers handed to Redis (rearms and scans) */
    uint64_t fired;    /* timers claimed */
    uint64_t due_soon; /* review.due_soon emitted */
    uint64_t overdue;  /* review.overdue emitted */
    uint64_t limit;    /* tasks flagged statutory_limit by the limit timer */
    uint64_t moved;    /* firings that found the moment later and armed it again */
    uint64_t errors;   /* database or Redis failures (logged, retried) */
} deadlines_stats_t;

/* 00:00 China time (UTC+8) of day, in unix ms. Pure. */
int64_t deadlines_midnight_ms(date_t day);

/* A new deadline keeper over db and timers (both owned from here on: destroyed with it,
 * also when this fails). app (borrowed, must outlive it) gives the calendar and the
 * gauges m_open, m_overdue, m_understaffed, and its ops (may be NULL) gets counters
 * sx_review_deadline_*. sweep_ms (> 0) is the full rearm interval. Prepares its
 * statements. Returns NULL on bad arguments, a failed prepare or out of memory. */
deadlines_t *deadlines_new(db_t *db, timers_t *timers, const review_t *app, int64_t sweep_ms);

/* Frees everything it owns; sets *self_p to NULL. Idempotent. */
void deadlines_destroy(deadlines_t **self_p);

/* Does what is due at now_ms (wall clock, unix ms; tests pass their own): claims and
 * handles due timers, a full rearm when needed or when the sweep is due (and then the
 * gauges), otherwise the scan for new tasks. Returns the ms until it next needs to run
 * (10..1000). Failures are logged and counted, and tried again later. */
int deadlines_step(deadlines_t *self, int64_t now_ms);

/* A copy of the counters. */
deadlines_stats_t deadlines_stats(const deadlines_t *self);

#endif
