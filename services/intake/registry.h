/* registry: the five lists (五个清单) and what they rest on, per agency (嘉政办发〔2019〕56号
 * 四(二); items 3, 8, 14, 16).
 *
 * The ops (registry_register, declared in intake.h) are the contract of
 * schemas/messages/intake/registry.md; the tables are schemas/sql/intake/001_registry.sql.
 * This header adds small read helpers for the other parts of intake (case ops, the
 * decision gate). Each runs one parameterised query on db, inside or outside a
 * transaction, and changes nothing. They read the tables as committed (or as the
 * caller's transaction sees them). A part that handles a batch of hundreds of requests
 * may rather join these tables in its own batch statement: the helpers cost one round
 * trip each. */
#ifndef SX_INTAKE_REGISTRY_H
#define SX_INTAKE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "date.h"
#include "db.h"

#define REGISTRY_KEY_MAX 64 /* bytes in an entry's key (cert_no, matter code, ...) */

/* The stages of whole-process recording (执法全过程记录), as bits. */
#define REGISTRY_STAGE_START             0x1 /* 启动 */
#define REGISTRY_STAGE_INVESTIGATION     0x2 /* 调查取证 */
#define REGISTRY_STAGE_REVIEW_DECISION   0x4 /* 审核决定 */
#define REGISTRY_STAGE_SERVICE_EXECUTION 0x8 /* 送达执行 */

/* A matter (行政执法事项) of an agency's list, as case.open needs it. */
typedef struct {
    char type[16];  /* licence, penalty, coercion, inspection, levy */
    int time_limit; /* 法定办理时限, >= 1 */
    bool workdays;  /* the limit counts working days (else calendar days) */
    int av_stages;  /* REGISTRY_STAGE_* bits that need audio/video (音像记录); 0 none */
} registry_matter_t;

/* Looks up matter code in agency's matter list. Returns 1 when it is there and active
 * (*out filled, av_stages from the active AV list entry), 0 when it is not there or has
 * been retired (*out unchanged), -1 when the database failed (db_error). */
int registry_matter_get(db_t *db, const char *agency, const char *code, registry_matter_t *out);

/* Which of n officers (certificate numbers, n <= 64) may act for agency on day `on`:
 * listed in its officer list, active, and valid_from <= on <= valid_to. valid[i] gets
 * the answer for cert_nos[i]. Returns the number valid (0..n), or -1 when the database
 * failed or n > 64 (valid unchanged). */
int registry_officers_valid(db_t *db, const char *agency, const char *const cert_nos[], size_t n,
                            date_t on, bool valid[]);

/* A proposed decision, as the legal review catalogue (重大执法决定法制审核目录清单) sees
 * it. The agency's domain and level come from its registry entry. */
typedef struct {
    const char *case_type;      /* licence, penalty, ... */
    int64_t amount;             /* fine + confiscation, 万元 scaled by 10^6 */
    bool hearing;               /* a hearing (听证) was held */
    bool major_public_interest; /* 涉及重大公共利益 */
    bool social_risk;           /* 可能造成重大社会影响或引发社会风险 */
    bool complex;               /* 案件情况疑难复杂、涉及多个法律关系 */
} registry_decision_t;

/* Whether decision d of agency falls in its legal review catalogue: a rule matches when
 * it is active and every criterion it sets holds (amount >= amount_threshold; the rest
 * equal). Returns 1 when a rule matches (the id of the first, in key order, copied into
 * rule_id, REGISTRY_KEY_MAX + 1 bytes, when not NULL), 0 when none does, -1 when the
 * database failed. */
int registry_review_match(db_t *db, const char *agency, const registry_decision_t *d,
                          char *rule_id);

/* The discretion band (自由裁量基准) for violation_code and circumstance (minor,
 * general, serious): *min and *max in 万元 scaled by 10^6. Returns 1 when an active band
 * exists, 0 when none, -1 when the database failed. */
int registry_discretion_get(db_t *db, const char *agency, const char *violation_code,
                            const char *circumstance, int64_t *min, int64_t *max);

#endif
