/* sgs_record: the 双公示 (double publicity) record pushed to the credit-information
 * platform (信用中国), built from publication's public record and checked field by field
 * against the national layout (../shared/data/sgs-fields.md: CF_* penalties, XK_*
 * licences; amounts in 万元, dates YYYY/MM/DD, 2099/12/31 for no expiry).
 *
 * The same checks run in creditpush before anything is queued and in tools/fake-credit
 * on what arrives, so a record that cannot be valid is dead-lettered here, never sent
 * half-right. */
#ifndef SX_SGS_RECORD_H
#define SX_SGS_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define SGS_REASON_MAX 256

/* Checks data, the CF_* (kind "penalty") or XK_* (kind "licence") fields of one record:
 * every required field present and non-empty, no unknown field, every value a string of
 * at most 2000 bytes; 行政相对人类别 one of 法人及非法人组织 / 自然人 / 个体工商户; codes
 * (统一社会信用代码 GB 32100 check character, 组织机构代码 GB 11714, 证件类型 01..05,
 * 许可类别 01..06, 处罚类别 from 行政处罚法 2021 art. 9 joined by ;); dates real
 * YYYY/MM/DD; amounts non-negative 万元 with at most 6 decimals; 公示截止期 not before the
 * decision date. Returns 0, or -1 with reason (SGS_REASON_MAX bytes) naming the field. */
int sgs_record_check(const json_t *data, const char *kind, char *reason);

/* Builds the data of one record from record, publication's public record (the `record`
 * of publication.published): kind from record.type ("penalty" or "licence"), the fields
 * from record.sgs. Returns a new object (caller json_decref's it) with *kind_out set to
 * a static string, or NULL with reason set when the record is not one creditpush sends
 * or cannot be valid (the caller dead-letters it with reason). */
json_t *sgs_record_build(const json_t *record, const char **kind_out, char *reason);

/* True when the record belongs to a key domain (重点领域: 食品药品, 环境保护, 金融投资,
 * 安全生产, 公共卫生), judged from its 违法行为类型 / 处罚类别 / 许可内容 / 备注 text;
 * such records are sent first. */
bool sgs_record_key_domain(const json_t *data);

/* True for a penalty published for the maximum 严重 period (3 years: 信用修复管理办法),
 * i.e. a serious violator (严重违法失信) to flag for the blacklist. */
bool sgs_record_serious(const json_t *data);

/* The withdrawal (撤销) of a record already sent: {CF_ZT or XK_ZT "1"/"撤销", wsh, the
 * reason as BZ, cut to 2000 bytes on a character boundary}. New object or NULL when out
 * of memory or a string is not UTF-8. */
json_t *sgs_record_withdrawal(const char *kind, const char *decision_no, const char *reason);

/* Checks a withdrawal built by sgs_record_withdrawal: exactly WSH, ZT and BZ of kind,
 * non-empty. Returns 0, or -1 with reason naming the field. */
int sgs_record_check_withdrawal(const json_t *data, const char *kind, char *reason);

/* The credit repair (信用修复, 信用修复管理办法) of a penalty already sent: publication
 * ends early on day `until` (YYYY/MM/DD, the day of the repair) while the decision stands,
 * so it is not a 撤销: {CF_WSH, CF_ZT "3" (其他: 信用修复, 停止公示), CF_GSJZQ until,
 * BZ "信用修复: <reason>", cut to 2000 bytes on a character boundary}. Penalties only
 * (licences are not repaired). New object or NULL when out of memory or a string is not
 * UTF-8. */
json_t *sgs_record_repair(const char *decision_no, const char *until, const char *reason);

/* Checks a repair built by sgs_record_repair: kind penalty, exactly CF_WSH, CF_ZT "3",
 * CF_GSJZQ (a real date) and BZ, non-empty. Returns 0, or -1 with reason naming the field. */
int sgs_record_check_repair(const json_t *data, const char *kind, char *reason);

/* The columns of the standard's layout for kind ("penalty": the CF_* party fields, the
 * penalty fields, BZ; "licence": the XK_* ones), in the order of sgs-fields.md, or NULL
 * for another kind. A static NULL-terminated array. The party's FRDB / FR_ZJLX / FR_ZJHM
 * are named without prefix, as the standard writes them. */
const char *const *sgs_record_columns(const char *kind);

/* The value of column col in data (a record as built), looking under the prefixed name
 * too for FRDB / FR_ZJLX / FR_ZJHM; NULL when absent. Borrowed from data. */
const char *sgs_record_value(const json_t *data, const char *kind, const char *col);

#endif
