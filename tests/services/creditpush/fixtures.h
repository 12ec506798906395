/* fixtures: valid 双公示 records for the creditpush tests. */
#ifndef SX_TEST_CP_FIXTURES_H
#define SX_TEST_CP_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ident.h"

/* A valid USCC made from a 17-character body (check character appended). */
static inline void
fx_uscc(const char *body, char out[19])
{
    memcpy(out, body, 17);
    out[17] = ident_uscc_check_char(body);
    out[18] = '\0';
}

/* publication's public record of a penalty (type, sgs) for an organisation, decision n. */
static inline json_t *
fx_penalty(int n, const char *category)
{
    char party[19], agency[19], wsh[64];
    fx_uscc("91620200MA71XXXXX", party);
    fx_uscc("11620200013926143", agency);
    snprintf(wsh, sizeof wsh, "嘉市监罚〔2026〕%d号", n);
    return json_pack(
        "{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}}",
        "type", "penalty", "decision_no", wsh, "sgs", "CF_XDR_MC", "嘉峪关某某食品有限公司",
        "CF_XDR_LB", "法人及非法人组织", "CF_XDR_SHXYM", party, "CF_WSH", wsh, "CF_WFXW", category,
        "CF_SY", "销售过期食品", "CF_YJ", "《食品安全法》第一百二十四条", "CF_CFLB", "警告;罚款",
        "CF_NR", "警告，罚款2000元", "CF_NR_FK", "0.2", "CF_NR_WFFF", "0", "CF_JDRQ", "2026/05/06",
        "CF_YXQ", "2099/12/31", "CF_GSJZQ", "2027/05/06", "CF_CFJG", "嘉峪关市市场监督管理局",
        "CF_CFJGDM", agency, "CF_SJLY", "嘉峪关市市场监督管理局", "CF_SJLYDM", agency);
}

/* publication's public record of a licence to a natural person (masked). */
static inline json_t *
fx_licence(int n)
{
    char agency[19], wsh[64];
    fx_uscc("11620200013926143", agency);
    snprintf(wsh, sizeof wsh, "嘉许〔2026〕%d号", n);
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
                     "s:s,s:s}}",
                     "type", "licence", "decision_no", wsh, "sgs", "XK_XDR_MC", "张**", "XK_XDR_LB",
                     "自然人", "XK_XDR_ZJLX", "01", "XK_XDR_ZJHM", "620200************", "XK_XKWS",
                     "行政许可决定书", "XK_WSH", wsh, "XK_XKLB", "01", "XK_NR", "准予个体诊所执业",
                     "XK_JDRQ", "2026/05/06", "XK_YXQZ", "2026/05/06", "XK_YXQZI", "2099/12/31",
                     "XK_XKJG", "嘉峪关市卫生健康委员会", "XK_XKJGDM", agency, "XK_ZT", "有效",
                     "XK_LYDW", "嘉峪关市卫生健康委员会", "XK_LYDWDM", agency, "XK_XKBH", wsh);
}

#endif
