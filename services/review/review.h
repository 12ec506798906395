/* review: the legal review service (sx-review, 重大执法决定法制审核). What its parts share.
 *
 * main.c reads the settings, wires the sockets and runs the loop; the rules live in:
 *   catalogue.c   which proposals need review (审核目录清单), pure
 *   reviewers.c   the city-wide reviewer database (法制审核人员数据库) and assignment
 *   discretion.c  the discretion check (自由裁量基准) that flags a task
 *   opinion.c     the seven points, the verdict, the opinion (法制审核意见书) and the ops
 *   settings.c    per-agency review days, set by the legal office (review.days.set)
 *   events.c      the subscriber of stream "intake" (registry.*, case.*)
 *   deadlines.c   the tasks' deadlines as Redis timers (review.due_soon, review.overdue,
 *                 the statutory_limit flag), armed again from PostgreSQL
 *
 * Identities (ZAP User-Id, deploy/keys): `dept:<code>:reviewer` is an agency's legal
 * review office (法制审核机构, item 12); it names the reviewer acting (a cert_no of the
 * reviewer database) in each opinion, and must be the one the task is assigned to.
 * `dept:<pool>:reviewer` is the city pool (法律顾问 / 公职律师) when <pool> is the pool
 * agency (SX_REVIEW_POOL_AGENCY, the legal office's own code). `dept:<pool>:legal_office`
 * is the legal office (司法局), which answers escalations. `dept:<code>:system` (the
 * department) reads its own tasks and escalates. See schemas/messages/review.md. */
#ifndef SX_REVIEW_H
#define SX_REVIEW_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "bus.h"
#include "db.h"
#include "ops.h"
#include "rpc.h"
#include "workday.h"

#define REVIEW_SCHEMA       "review"
#define REVIEW_STREAM       "review"
#define REVIEW_EVENT_V      1
#define REVIEW_OPINION_MAX  4000 /* bytes in the opinion of review.approved/returned */
#define REVIEW_REVIEWER_MAX 64
#define REVIEW_DAYS_DEFAULT 5 /* working days a review may take, per agency */

/* The service's shared state: built by main.c, borrowed by the parts. */
typedef struct {
    const workday_t *calendar; /* the official working-day calendar */
    const char *pool_agency;   /* the legal office's code: its reviewers are the pool */
    ops_t *ops;                /* metrics; may be NULL in tests */
    /* Gauges deadlines.c sets at each full rearm (NULL: not kept): open and overdue
     * tasks, agencies below 5% reviewers (item 19). */
    ops_metric_t *m_open, *m_overdue, *m_understaffed;
} review_t;

/* Events gathered during one transaction, written with one bus_emit_batch. */
#define REVIEW_OUT_MAX BUS_BATCH_MAX
typedef struct {
    size_t n;
    char topic[REVIEW_OUT_MAX][EVMSG_TOPIC_MAX + 1];
    msgpack_sbuffer data[REVIEW_OUT_MAX];
} review_out_t;

/* Allocates an empty gathering (NULL when out of memory); review_out_destroy frees it. */
review_out_t *review_out_new(void);
void review_out_destroy(review_out_t **self_p);

/* Starts event `<event>.<agency>` with a map of nkeys entries; returns the packer to
 * fill it (valid until the next call), or NULL when the gathering is full. */
msgpack_packer *review_out_add(review_out_t *self, msgpack_packer *pk, const char *event,
                               const char *agency, uint32_t nkeys);

/* Writes what was gathered into review's outbox in tx and empties it. Returns 0, or -1
 * (logged; the transaction is to be rolled back). */
int review_out_flush(review_out_t *self, db_t *tx);

/* Packing shorthands: a key and its value. */
void review_pack_str(msgpack_packer *pk, const char *key, const char *val);
void review_pack_int(msgpack_packer *pk, const char *key, int64_t val);
void review_pack_bool(msgpack_packer *pk, const char *key, bool val);

/* The parts' ops. Return 0, or -1 (logged) when an op could not be registered. */
int opinion_register(rpc_server_t *rpc, review_t *app);
int reviewers_register(rpc_server_t *rpc, review_t *app);

#endif
