/* sgs: 双公示 field mapping (sgs-fields.md). */
#include "sgs.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

char *
sgs_date(date_t day, char buf[11])
{
    date_format(day, buf);
    buf[4] = buf[7] = '/'; /* sgs-fields.md: dates are YYYY/MM/DD */
    return buf;
}

const char *
sgs_xklb(const char *category)
{
    static const char *const codes[][2] = {
        {"普通", "01"}, {"特许", "02"}, {"认可", "03"}, {"核准", "04"}, {"登记", "05"}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strstr(category, codes[i][0]))
            return codes[i][1];
    return "06";
}

/* Adds months to a date, the day clamped to the month's end (2024-02-29 + 12 months is
 * 2025-02-28). */
static date_t
s_add_months(date_t day, int months)
{
    int y, m, d;
    date_to_ymd(day, &y, &m, &d);
    int total = y * 12 + (m - 1) + months;
    y = total / 12;
    m = total % 12 + 1;
    while (d > 28 && !date_valid(y, m, d))
        d--;
    return date_from_ymd(y, m, d);
}

date_t
sgs_publish_until(date_t day, const char *circumstance)
{
    /* 信用修复管理办法: 轻微 at most 3 months, 一般 at most 1 year, 严重 at most 3 years. */
    if (strcmp(circumstance, "minor") == 0)
        return s_add_months(day, 3);
    if (strcmp(circumstance, "serious") == 0)
        return s_add_months(day, 36);
    return s_add_months(day, 12);
}

date_t
sgs_repair_from(date_t day, const char *circumstance)
{
    /* 信用修复管理办法: 一般 at least 3 months, 严重 at least 1 year. */
    if (strcmp(circumstance, "minor") == 0)
        return day;
    if (strcmp(circumstance, "serious") == 0)
        return s_add_months(day, 12);
    return s_add_months(day, 3);
}

/* The party fields shared by both kinds, prefixed CF_ or XK_ (sgs-fields.md, "Party"). */
static int
s_party(json_t *o, const char *px, const pub_case_t *c, const pub_party_t *p)
{
    /* XDR_ZJLX codes: 01 身份证, 02 护照, 03 港澳通行证, 04 台湾通行证, 05 外国人永久居留证. */
    static const char *const zjlx[][2] = {{"idcard", "01"},
                                          {"passport", "02"},
                                          {"hkmo_permit", "03"},
                                          {"tw_permit", "04"},
                                          {"foreign_pr", "05"}};
    char k[32];
    int rc = 0;
    snprintf(k, sizeof k, "%sXDR_MC", px);
    rc |= json_object_set_new(o, k, json_string(p->name));
    snprintf(k, sizeof k, "%sXDR_LB", px);
    bool org = strcmp(c->party_kind, "org") == 0;
    rc |= json_object_set_new(o, k, json_string(org ? "法人及非法人组织" : "自然人"));
    if (org) {
        snprintf(k, sizeof k, "%sXDR_SHXYM", px);
        rc |= json_object_set_new(o, k, json_string(p->uscc));
        if (strcmp(c->party_id_type, "org_code") == 0) {
            snprintf(k, sizeof k, "%sXDR_ZZJG", px);
            rc |= json_object_set_new(o, k, json_string(p->id_no));
        }
        return rc;
    }
    const char *code = "";
    for (size_t i = 0; i < sizeof zjlx / sizeof zjlx[0]; i++)
        if (strcmp(c->party_id_type, zjlx[i][0]) == 0)
            code = zjlx[i][1];
    snprintf(k, sizeof k, "%sXDR_ZJLX", px);
    rc |= json_object_set_new(o, k, json_string(code));
    snprintf(k, sizeof k, "%sXDR_ZJHM", px);
    rc |= json_object_set_new(o, k, json_string(p->id_no)); /* masked: 620200************ */
    return rc;
}

json_t *
sgs_fields(const pub_case_t *c, const pub_party_t *p)
{
    bool penalty = strcmp(c->type, "penalty") == 0;
    if (!penalty && strcmp(c->type, "licence") != 0)
        return NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    char day[11], until[11];
    sgs_date(c->decision_date, day);
    const char *agency = c->agency_name[0] ? c->agency_name : c->agency;
    int rc = s_party(o, penalty ? "CF_" : "XK_", c, p);
    json_t *f;
    if (penalty) {
        sgs_date(sgs_publish_until(c->decision_date, c->circumstance), until);
        f = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "CF_WSH",
            c->decision_no, "CF_WFXW", c->violation_code[0] ? c->violation_code : c->category,
            "CF_SY", c->summary[0] ? c->summary : c->content, "CF_YJ", c->legal_basis, "CF_CFLB",
            c->category, "CF_NR", c->content, "CF_NR_FK", c->fine, "CF_NR_WFFF", c->confiscation,
            "CF_JDRQ", day, "CF_YXQ", "2099/12/31", "CF_GSJZQ", until, "CF_CFJG", agency,
            "CF_CFJGDM", c->agency, "CF_SJLY", agency, "CF_SJLYDM", c->agency);
    } else {
        f = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "XK_XKWS",
                      "行政许可决定书", "XK_WSH", c->decision_no, "XK_XKLB", sgs_xklb(c->category),
                      "XK_NR", c->content, "XK_JDRQ", day, "XK_YXQZ", day, "XK_YXQZI", "2099/12/31",
                      "XK_XKJG", agency, "XK_XKJGDM", c->agency, "XK_ZT", "有效", "XK_LYDW", agency,
                      "XK_LYDWDM", c->agency, "XK_XKBH", c->decision_no);
    }
    if (!f || rc != 0 || json_object_update(o, f) != 0) {
        json_decref(f);
        json_decref(o);
        return NULL;
    }
    json_decref(f);
    return o;
}
