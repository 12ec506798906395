/* case_ops: the ops of a case's life on intake's rpc door (schemas/messages/intake/case.md
 * is the contract): case.open, case.record, case.propose, case.decide, case.serve,
 * case.execute, case.close, case.revoke, inspection.result (writes) and case.get,
 * events.since (reads). case_ops_register (intake.h) registers them.
 *
 * Who: only `dept:<code>:system`, and only on cases of agency <code>. A case_id of another
 * agency is refused `forbidden` (logged, nothing written); a case_no is looked up among
 * the caller's own cases only, so it can never reach another agency's case.
 *
 * Group commit: each handler takes the n requests of one op that rpc gathered in a turn
 * and writes them with one statement per table (binary arrays through unnest), inside
 * rpc's transaction. Requests on the same case in one batch apply in arrival order: the
 * handler locks the batch's cases (FOR UPDATE), applies each request to an in-memory
 * copy of its case (state, latest proposal version, record count) and writes the final
 * values once.
 *
 * Tables: schemas/sql/intake/002_cases.sql. Transitions: case_state.h. The legal-review
 * gate and discretion bands: decision_gate.h. */
#ifndef SX_INTAKE_CASE_OPS_H
#define SX_INTAKE_CASE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "date.h"
#include "intake.h"

/* Who may call the case ops. */
#define CASE_OPS_ALLOW "dept:*:system"

/* Limits (bytes unless said otherwise); case.md lists them per field. */
#define CASE_NO_MAX        64
#define CASE_CODE_MAX      64  /* matter, violation, certificate, document codes */
#define CASE_NAME_MAX      200 /* party and subject names */
#define CASE_IDNO_MAX      32
#define CASE_TEXT_MAX      4000 /* content, problems */
#define CASE_NOTE_MAX      2000 /* legal basis, reasons, notes, summary */
#define CASE_URI_MAX       1024
#define CASE_OFFICERS_MAX  10
#define CASE_ON_SITE_MIN   2    /* 行政处罚法 art. 42, 行政强制法 art. 18(二) */
#define CASE_WARN_WORKDAYS 3    /* deadline warning, working days before due */
#define CASE_EVENTS_MAX    1000 /* events.since: events per reply */
#define CASE_GET_PROPOSALS 5    /* case.get: latest proposals shown in full */
#define CASE_AMOUNT_MAX    INT64_C(999999999999999) /* 万元 scaled 10^6: 999,999,999.999999 */

/* The statutory deadline (法定办理时限) of a matter's time limit, counted from the day a
 * case is opened (立案/受理), the start day not counted (期间开始之日不计算在内):
 *   workday: the n-th working day after opened (行政许可法 art. 42, 82: limits in working
 *            days exclude statutory holidays; the official calendar, common/workday);
 *   day:     opened + n calendar days (e.g. 行政处罚法 art. 60, 90 days from filing).
 * The warning day is CASE_WARN_WORKDAYS working days before due. Writes *due, *warn_on and
 * *uncovered (the calendar did not cover every day counted). Returns 0, or -1 when unit
 * is unknown or the count leaves the calendar's range. */
int case_deadline(const workday_t *cal, date_t opened, int n, const char *unit, date_t *due,
                  date_t *warn_on, bool *uncovered);

#endif
