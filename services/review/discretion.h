/* discretion: the discretion check (自由裁量基准, 嘉政办发〔2019〕56号 item 16) that flags a
 * penalty's review task before the reviewer opens it: a fine outside the agency's band
 * for the violation and circumstance (过罚不相当), or far from the recent decisions on
 * the same violation and circumstance (同案不同罚). */
#ifndef SX_REVIEW_DISCRETION_H
#define SX_REVIEW_DISCRETION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define DISC_OUT_OF_BAND   0x1 /* flag "out_of_band" */
#define DISC_UNLIKE_RECENT 0x2 /* flag "unlike_recent" */
#define DISC_RECENT_N      10  /* recent decisions compared with */
#define DISC_RECENT_MIN    3   /* fewer than this: no comparison */
#define DISC_NOTE_MAX      600

/* Judges fine (万元 scaled by 10^6) against a band [min, max] (when has_band) and the
 * nrecent recent fines. "Far" means more than half the recent mean away from it (or
 * any fine when that mean is 0), with at least DISC_RECENT_MIN of them. Returns the
 * DISC_* flags and writes why into note ("" when none). Pure. */
int discretion_judge(int64_t fine, bool has_band, int64_t min, int64_t max, const int64_t *recent,
                     size_t nrecent, char *note, size_t notelen);

/* Prepares the statements discretion_check uses on db. Returns 0 or -1. */
int discretion_prepare(db_t *db);

/* discretion_judge with the agency's active band and its DISC_RECENT_N latest decided
 * fines (review.band, review.decided_fine) for violation/circumstance. Returns the
 * flags, or -1 when the database failed. */
int discretion_check(db_t *tx, const char *agency, const char *violation, const char *circumstance,
                     int64_t fine, char *note, size_t notelen);

#endif
