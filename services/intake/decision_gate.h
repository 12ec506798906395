/* decision_gate: the legal-review gate on decisions (重大执法决定法制审核).
 *
 * 国办发〔2018〕118号 (三项制度), 三(三) and 嘉政办发〔2019〕56号: a decision that falls in the
 * agency's legal review catalogue (重大执法决定法制审核目录清单, registry table review_rule)
 * may not be made until the legal review has approved it. The discretion standards
 * (自由裁量基准, registry table discretion) bound the fine for a violation and its
 * circumstance (国办发〔2022〕27号, 规范行政裁量权基准).
 *
 * Two moments:
 *   case.propose  decision_gate_assess: does this proposal version need review (which
 *                 catalogue rules match), and is its fine inside the discretion band?
 *   case.decide   decision_gate_check: has that exact version been approved?
 *
 * A catalogue rule matches a proposal when every criterion it sets holds (a NULL
 * criterion is "any"; a rule that sets none matches every proposal of its agency):
 * case_type equal; domain and level equal to the agency's; amount_threshold <=
 * fine + confiscation; hearing, major_public_interest, social_risk, complex equal to the
 * proposal's flags. Only active rules count.
 *
 * Discretion: when the proposal names a violation code and circumstance that the
 * agency's active discretion list has, the fine must lie in [fine_min, fine_max]. A fine
 * outside it is refused (`discretion_out_of_band`) unless the department states why it
 * departs from the standard (deviation_reason): then it is accepted, flagged, and always
 * sent to legal review (rule id "discretion_deviation"), since 国办发〔2022〕27号 lets an
 * agency depart from a standard only with stated reasons and collective approval; the
 * legal review (裁量 is one of its seven points) is where that is checked. A violation code
 * without a band in the list is accepted (band_found false): the list may be incomplete,
 * and the reviewer sees that no band applied.
 *
 * Verdicts come from the review service's events, stored by intake's subscriber in
 * intake.review_verdict (schemas/sql/intake/002_cases.sql). */
#ifndef SX_INTAKE_DECISION_GATE_H
#define SX_INTAKE_DECISION_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "case_state.h"
#include "db.h"

/* The rule id added when a fine departs from its discretion band with a reason. */
#define GATE_RULE_DEVIATION "discretion_deviation"

/* Circumstances (情节): 轻微, 一般, 严重. */
typedef enum { GATE_MINOR = 0, GATE_GENERAL, GATE_SERIOUS, GATE_CIRC_COUNT } gate_circ_t;

/* Wire and database names of the circumstances ("minor", ...), NULL-terminated. */
extern const char *const gate_circ_names[GATE_CIRC_COUNT + 1];

/* One proposal to assess. The caller fills the inputs; decision_gate_assess the outputs. */
typedef struct {
    /* in */
    const char *agency; /* 18-character code, NUL-terminated */
    case_type_t type;
    int64_t fine;         /* 万元 scaled by 10^6, >= 0 */
    int64_t confiscation; /* 万元 scaled by 10^6, >= 0 */
    bool hearing, major_public_interest, social_risk, complex;
    const char *violation_code; /* NULL when none */
    size_t violation_code_len;
    int circumstance; /* gate_circ_t, or -1 when none */
    bool deviation;   /* a deviation reason was given */
    /* out */
    bool requires_review;
    char *rules; /* matched rule ids joined by '\x1f' (malloc'ed, "" when none): free
                  * with decision_gate_clear */
    size_t nrules;
    bool band_found;  /* a discretion band exists for (violation_code, circumstance) */
    int64_t band_min; /* scaled 10^6, when band_found */
    int64_t band_max;
    int band; /* -1 fine below the band, 1 above, 0 inside or no band */
} gate_proposal_t;

/* Assesses n proposals (n >= 1) in one query on db (inside the caller's transaction or
 * not): fills requires_review, rules, nrules, band_found, band_min, band_max, band. A
 * fine outside its band with deviation set requires review and lists
 * GATE_RULE_DEVIATION; without deviation, band is non-zero and the caller refuses.
 * Returns 0, or -1 when the database failed (db_error; outputs then cleared). */
int decision_gate_assess(db_t *db, gate_proposal_t *p, size_t n);

/* Frees the outputs of p[0..n) (rules); idempotent. */
void decision_gate_clear(gate_proposal_t *p, size_t n);

/* What the gate says about deciding on a proposal version. */
typedef enum {
    GATE_NO_PROPOSAL = 0, /* no such proposal version */
    GATE_NOT_REQUIRED,    /* the version does not require review: decide */
    GATE_APPROVED,        /* required and that exact version approved: decide */
    GATE_PENDING,         /* required, no verdict for that version yet: wait */
    GATE_RETURNED,        /* required and returned: propose a new version */
} gate_verdict_t;

/* One decision to check: the case, its agency and its latest proposal version. */
typedef struct {
    int64_t case_id;
    const char *agency;     /* 18 characters, NUL-terminated: verdicts of other agencies are
                             * ignored */
    int version;            /* >= 1 */
    gate_verdict_t verdict; /* out */
} gate_check_t;

/* Reads, in one query, the gate's verdict on each of c[0..n) (n >= 1) from
 * intake.case_proposal and intake.review_verdict. Returns 0, or -1 when the database
 * failed (db_error). */
int decision_gate_check(db_t *db, gate_check_t *c, size_t n);

/* True when a decision may be made under verdict v. */
bool decision_gate_allows(gate_verdict_t v);

/* The refusal for a verdict that does not allow a decision: returns the error code
 * ("review_pending", "review_required", "no_proposal") and writes the messages (naming
 * version) into en and zh, NUL-terminated and truncated. Returns NULL (and writes "")
 * when v allows a decision. */
const char *decision_gate_refusal(gate_verdict_t v, int version, char *en, size_t en_size, char *zh,
                                  size_t zh_size);

#endif
