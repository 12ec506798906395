/* catalogue: which proposed decisions need legal review (法制审核目录清单).
 *
 * The triggers are those of 国办发〔2018〕118号 and 嘉政办发〔2019〕56号 item 14: the
 * kind of enforcement act, level, domain, amount involved (涉案金额), a hearing held
 * (需经听证), major public interest (重大公共利益), social risk (重大社会影响或社会风险),
 * complexity or several legal relations (疑难复杂、涉及多个法律关系). An agency's rule sets
 * some of them; it matches when every criterion it sets holds, and a proposal needs
 * review when any active rule matches. Pure: no I/O. */
#ifndef SX_REVIEW_CATALOGUE_H
#define SX_REVIEW_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATALOGUE_ID_MAX     64
#define CATALOGUE_REASON_MAX 1000

/* A tri-state criterion: CAT_ANY when the rule does not set it. */
typedef enum { CAT_ANY = -1, CAT_FALSE = 0, CAT_TRUE = 1 } cat_tri_t;

/* One rule of the catalogue. Strings NULL = any. Amounts in 万元 scaled by 10^6. */
typedef struct {
    const char *id;
    const char *case_type, *domain, *level;
    bool has_amount;
    int64_t amount_threshold;
    cat_tri_t hearing, major_public_interest, social_risk, complex;
} catalogue_rule_t;

/* What a proposal brings to the rules. */
typedef struct {
    const char *case_type;      /* licence, penalty, ... */
    const char *domain, *level; /* the agency's */
    int64_t amount;             /* fine + confiscation, 万元 scaled by 10^6 */
    bool hearing, major_public_interest, social_risk, complex;
} catalogue_case_t;

/* True when rule matches c. When it does not and why is not NULL, writes the first
 * criterion that failed ("amount 0.5 below threshold 1") into why. */
bool catalogue_rule_matches(const catalogue_rule_t *rule, const catalogue_case_t *c, char *why,
                            size_t whylen);

/* Evaluates the n rules against c. Writes the indexes of the matching rules into
 * matched (room for n) and their count into *n_matched; reason gets a line for the
 * outcome: the rules that matched, or, when none did, for each rule what let the
 * proposal through ("no rule of 3 matches: R-1: case type licence, not penalty; ...").
 * Returns true when review is required. */
bool catalogue_evaluate(const catalogue_rule_t *rules, size_t n, const catalogue_case_t *c,
                        size_t *matched, size_t *n_matched, char *reason, size_t reasonlen);

/* Writes a 万元 amount scaled by 10^6 as a decimal without trailing zeros ("1.5"). */
char *catalogue_amount_str(int64_t amount, char *buf, size_t size);

#endif
