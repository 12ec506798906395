/* doc_types: the standard enforcement documents (执法文书格式文本), 嘉政办发〔2019〕56号
 * item 7. See doc_types.h. */
#include "doc_types.h"

#include <stdio.h>
#include <string.h>

const char *const doc_types[] = {
    /* 启动 */
    "立案审批表", "行政许可申请书", "行政许可受理通知书", "检查通知书",
    /* 调查取证 */
    "询问笔录", "现场检查笔录", "现场笔录", "勘验笔录", "抽样取证凭证", "证据先行登记保存通知书",
    "查封扣押决定书", "责令改正通知书", "陈述申辩笔录", "听证通知书", "听证笔录",
    /* 审核决定 */
    "行政处罚告知书", "法制审核意见书", "行政处罚决定书", "行政许可决定书", "不予行政许可决定书",
    "行政强制决定书", "检查结果通知书",
    /* 送达执行 */
    "送达回证", "催告书", "强制执行决定书", "结案审批表", NULL};

bool
doc_type_known(const char *s, size_t len)
{
    for (size_t k = 0; doc_types[k]; k++)
        if (strlen(doc_types[k]) == len && memcmp(doc_types[k], s, len) == 0)
            return true;
    return false;
}

void
doc_types_message(char *zh, char *en, size_t n)
{
    snprintf(zh, n, "文书类型应为标准执法文书之一：");
    snprintf(en, n, "not a standard enforcement document; one of: ");
    for (size_t k = 0; doc_types[k]; k++) {
        size_t z = strlen(zh), e = strlen(en);
        snprintf(zh + z, n - z, "%s%s", k ? "、" : "", doc_types[k]);
        snprintf(en + e, n - e, "%s%s", k ? ", " : "", doc_types[k]);
    }
}
