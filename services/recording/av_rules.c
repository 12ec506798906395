/* av_rules: the AV record rules (av_rules.h). 嘉政办发〔2019〕56号 item 8: the AV record
 * matter list; item 9: full AV recording of on-site acts touching personal liberty, life
 * and health or major property, and AV recording of hearings and 留置送达. */
#include "av_rules.h"

#include <string.h>

#include "chain.h"

int
av_rules_required(int stage, unsigned list_mask, unsigned flags, const char *rules[AV_RULES_MAX])
{
    int n = 0;
    if (stage < 0 || stage >= CHAIN_STAGES)
        return 0;
    if (list_mask & (1u << stage))
        rules[n++] = "av_matter";
    /* 行政强制 on site (查封、扣押, 限制人身自由): every stage, 全程. */
    if (flags & AV_F_ONSITE_COERCION)
        rules[n++] = "onsite_coercion";
    if ((flags & AV_F_HEARING) && stage == CHAIN_REVIEW_DECISION)
        rules[n++] = "hearing";
    if ((flags & AV_F_LEFT_SERVICE) && stage == CHAIN_SERVICE_EXECUTION)
        rules[n++] = "left_service";
    return n;
}

bool
av_rules_is_av(const char *kind)
{
    return strcmp(kind, "audio") == 0 || strcmp(kind, "video") == 0;
}
