/* workflow: a public record's way from draft to published (专人审查: the agency's
 * designated publisher approves or rejects it) and its deadlines.
 *
 * Deadlines (嘉政办发〔2019〕56号 item 5): licence and penalty decisions (双公示) are
 * published within 7 working days of the decision, the others within 20; a warning is due
 * 2 working days before; `publication.overdue` at the deadline, counted against the
 * agency. Postgres holds them (publication.record due_on / warn_on); Redis the timers. */
#ifndef SX_PUB_WORKFLOW_H
#define SX_PUB_WORKFLOW_H

#include <stdbool.h>

#include "db.h"
#include "date.h"
#include "publication.h"
#include "rpc.h"
#include "timer.h"

#define WORKFLOW_SGS_DAYS   7  /* licence, penalty */
#define WORKFLOW_OTHER_DAYS 20 /* every other decision */
#define WORKFLOW_WARN_DAYS  2  /* the warning, working days before the deadline */

/* The deadline of a record of type decided on decided, and its warning day, on cal.
 * uncovered (may be NULL) says the count ran beyond the calendar's years. Returns 0, or
 * -1 when the walk failed (outputs unchanged). */
int workflow_due(const workday_t *cal, const char *type, date_t decided, date_t *due, date_t *warn,
                 bool *uncovered);

/* Registers publication.approve, publication.reject and publication.repair (RPC_WRITE, allowed to
 * dept:*:publisher; a publisher acts only on its own agency's records), publication.resubmit
 * (dept:*:system, dept:*:officer, dept:*:publisher; own agency's records) and
 * publication.settings (dept:*:system, its own agency). Returns 0 or -1. */
int workflow_register(rpc_server_t *rpc, publication_t *app);

/* The publisher's verdicts on draft id of agency, by identity, in the caller's
 * transaction (the rpc ops call them; so do tests). Returns 0 (state "published" /
 * "rejected", the event publication.published / .rejected emitted), WORKFLOW_NOT_FOUND
 * (no such record, or another agency's), WORKFLOW_WRONG_STATE (state gets the record's),
 * or -1 on a database failure. */
#define WORKFLOW_NOT_FOUND   1
#define WORKFLOW_WRONG_STATE 2
int workflow_publish(db_t *db, const char *id, const char *agency, const char *identity,
                     char state[16]);
int workflow_reject(db_t *db, const char *id, const char *agency, const char *identity,
                    const char *reason, char state[16]);

/* Credit repair (信用修复, 信用修复管理办法): takes a published penalty of agency down once
 * its minimum period has passed (repair_from <= today, CST), with the reason; event
 * publication.repaired. Returns as workflow_publish, or WORKFLOW_TOO_EARLY (state gets
 * the first day repair is possible, YYYY-MM-DD). */
#define WORKFLOW_TOO_EARLY 3
int workflow_repair(db_t *db, const char *id, const char *agency, const char *identity,
                    const char *reason, char state[16]);

/* Re-draft after a reject (退回后更正重新提交): the agency corrects rejected record id and
 * resubmits it: the corrections (NULL: unchanged) are applied to the public body
 * (records_correct), the record is a draft again on its original deadline, its timers are
 * armed again by workflow_arm_new, and publication.resubmitted is emitted. In the caller's
 * transaction. Returns 0 (state "draft"), WORKFLOW_NOT_FOUND, WORKFLOW_NOT_REJECTED (state
 * gets the record's), or -1 on a database failure. */
#define WORKFLOW_NOT_REJECTED 4
typedef struct {
    const char *conclusion;  /* 执法结论, at most 4000 bytes, or NULL */
    const char *legal_basis; /* at most 2000 bytes, or NULL */
    const char *category;    /* at most 200 bytes, or NULL */
} workflow_fix_t;
int workflow_resubmit(db_t *db, const char *id, const char *agency, const char *identity,
                      const workflow_fix_t *fix, char state[16]);

/* The agency's switch for 轻微 (minor) penalties (信用修复管理办法: not published unless the
 * agency sets otherwise): publish_minor true drafts the agency's minor penalties decided
 * from now on like any other (earlier ones stay exempt); false (the default) keeps them
 * exempt. Event publication.settings. In the caller's transaction. Returns 0 or -1. */
int workflow_settings(db_t *db, const char *agency, const char *identity, bool publish_minor);

/* The timer kinds. */
#define WORKFLOW_TIMER_WARN   "pub_warn"
#define WORKFLOW_TIMER_DUE    "pub_due"
#define WORKFLOW_TIMER_EXPIRE "pub_expire" /* a published penalty's expires_on has passed */

/* When a timer for day fires: 00:00 China Standard Time of day, in unix ms. */
int64_t workflow_day_ms(date_t day);

/* Arms the timers of the records queued for them (006_arming.sql: new drafts and
 * resubmissions, their warning and deadline; penalties published with an expiry, that
 * expiry), at most WORKFLOW_ARM_BATCH a call, pipelined to Redis, and takes them off the
 * queue. Returns how many queued records were handled, or -1 (logged by the caller; the
 * queue stays). */
#define WORKFLOW_ARM_BATCH 500
int workflow_arm_new(db_t *db, timers_t *timers);

/* workflow_arm_new again while it handles full batches, for at most budget_ms (at least
 * one batch), so that the queue keeps up with any rate of drafting and the service's loop
 * still has the rest of its time. Returns how many queued records were handled, or -1
 * when a batch failed (those before it stay armed; the rest stay queued). */
long workflow_arm_queued(db_t *db, timers_t *timers, int budget_ms);

/* Arms the timers of every draft (timer_rearm: at start and whenever Redis lost them).
 * Returns the number armed, or -1. */
long workflow_rearm(db_t *db, timers_t *timers);

/* Handles a fired timer in its own transaction: a draft not yet warned gets
 * publication.warning, one not yet overdue publication.overdue; a published record past
 * its expires_on becomes expired (publication.expired: taken down, 信用修复管理办法);
 * anything else (already done, withdrawn, ...) nothing. Returns 0, or -1 (the timer fires again).
 */
int workflow_fire(db_t *db, const char *kind, const char *key);

/* Prepares the statements the functions above use on db. Returns 0 or -1. */
int workflow_prepare(db_t *db);

#endif
