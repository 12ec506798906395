/* reviewers: the city-wide reviewer database (全市法制审核人员数据库, 嘉政办发〔2019〕56号
 * item 13) and the assignment of review tasks.
 *
 * The database is review.officer, kept from registry.officer events of every agency
 * (events.c). A qualified reviewer is an active officer registered with `reviewer`
 * true (法制审核人员); `legal_qualified` (法律职业资格) ranks first among equals. The city
 * pool of legal advisers and public lawyers (法律顾问 / 公职律师, item 19) is the
 * reviewers registered by the pool agency (the legal office, SX_REVIEW_POOL_AGENCY).
 *
 * Assignment: a qualified reviewer of the case's agency, else one of the pool; never an
 * officer who handled the case (case.opened / case.recorded officers); the least loaded
 * (fewest open tasks) first, then legally qualified first, then by cert_no.
 *
 * Staffing (item 19): per agency, reviewers against active officers; below 5% flagged. */
#ifndef SX_REVIEW_REVIEWERS_H
#define SX_REVIEW_REVIEWERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define REVIEWERS_MIN_PERCENT 5

/* Prepares the statements used here on db. Returns 0 or -1. */
int reviewers_prepare(db_t *db);

/* Picks the reviewer for a task on case_id of agency (pool: the pool agency's code, may
 * be NULL). On success writes the reviewer's agency and cert_no (each at most 64 bytes
 * + NUL) and *pool, and returns 1; returns 0 when nobody can take it (outputs ""), -1
 * when the database failed. */
int reviewers_assign(db_t *tx, const char *agency, int64_t case_id, const char *pool,
                     char rev_agency[65], char cert_no[65], bool *pool_out);

/* True when reviewers is below REVIEWERS_MIN_PERCENT of officers. Pure. */
bool reviewers_understaffed(int64_t reviewers, int64_t officers);

/* True when cert_no handled case_id. Returns 1, 0, or -1 (database). */
int reviewers_handled(db_t *tx, int64_t case_id, const char *cert_no);

/* True when cert_no is an active reviewer of agency. Returns 1, 0, or -1. */
int reviewers_is_reviewer(db_t *tx, const char *agency, const char *cert_no);

#endif
