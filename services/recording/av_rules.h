/* av_rules: when an audio/video record (音像记录) is required — 嘉政办发〔2019〕56号 items
 * 8–9: the agency's AV record matter list (音像记录事项清单) names the matters and stages
 * recorded on audio/video; on-site acts touching personal liberty, life and health or
 * major property are recorded in full (全程音像记录); hearings and 留置送达 are recorded.
 * Pure: the caller supplies the list's stages and the case's flags. */
#ifndef SX_AV_RULES_H
#define SX_AV_RULES_H

#include <stdbool.h>

#define AV_RULES_MAX 4

/* Case flags (rcase.flags), learnt from the case's events. */
#define AV_F_ONSITE_COERCION 0x1 /* case.opened: type coercion and on_site */
#define AV_F_HEARING         0x2 /* case.proposed: hearing true (听证) */
#define AV_F_LEFT_SERVICE    0x4 /* case.served: method left (留置送达) */

/* The rules that require an AV record at stage (chain.h CHAIN_START..), given the stages
 * the agency's AV matter list requires for the case's matter (list_mask: bit s for stage
 * s; 0 when the matter is not listed or retired) and the case's flags. Writes the rule
 * names (static strings: "av_matter", "onsite_coercion", "hearing", "left_service") into
 * rules and returns how many (0..AV_RULES_MAX). */
int av_rules_required(int stage, unsigned list_mask, unsigned flags,
                      const char *rules[AV_RULES_MAX]);

/* True when a record of this kind counts as an AV record (audio, video). */
bool av_rules_is_av(const char *kind);

#endif
