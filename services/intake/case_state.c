#include "case_state.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const s_type_names[CASE_TYPE_COUNT] = {"licence", "penalty", "coercion",
                                                          "inspection", "levy"};
static const char *const s_type_zh[CASE_TYPE_COUNT] = {"许可", "处罚", "强制", "检查", "征收征用"};
static const char *const s_state_names[CS_COUNT] = {"open",     "proposed", "decided", "served",
                                                    "executed", "resulted", "closed",  "revoked"};
static const char *const s_state_zh[CS_COUNT] = {"已立案", "已拟决定",     "已决定", "已送达",
                                                 "已执行", "已出检查结果", "已结案", "已撤销"};
static const char *const s_op_names[CO_COUNT] = {"case.record", "case.propose",     "case.decide",
                                                 "case.serve",  "case.execute",     "case.close",
                                                 "case.revoke", "inspection.result"};
static const char *const s_op_zh[CO_COUNT] = {"记录", "拟作决定", "作出决定", "送达",
                                              "执行", "结案",     "撤销",     "检查结果"};

#define X (-1) /* not allowed */

/* next[type family][op][state]: the state after op, or X. Two families: decisions
 * (licence, penalty, coercion, levy) and inspections. */
enum { FAM_DECISION = 0, FAM_INSPECTION = 1 };

static const signed char s_next[2][CO_COUNT][CS_COUNT] =
    {
        [FAM_DECISION] =
            {
                /* columns: open, proposed, decided, served, executed, resulted, closed,
                 * revoked */
                [CO_RECORD] = {CS_OPEN, CS_PROPOSED, CS_DECIDED, CS_SERVED, CS_EXECUTED, X, X, X},
                [CO_PROPOSE] = {CS_PROPOSED, CS_PROPOSED, X, X, X, X, X, X},
                [CO_DECIDE] = {X, CS_DECIDED, X, X, X, X, X, X},
                [CO_SERVE] = {X, X, CS_SERVED, X, X, X, X, X},
                [CO_EXECUTE] = {X, X, X, CS_EXECUTED, X, X, X, X},
                [CO_CLOSE] = {X, X, X, X, CS_CLOSED, X, X, X},
                [CO_REVOKE] = {X, X, CS_REVOKED, CS_REVOKED, CS_REVOKED, X, CS_REVOKED, X},
                [CO_RESULT] = {X, X, X, X, X, X, X, X},
            },
        [FAM_INSPECTION] =
            {
                [CO_RECORD] = {CS_OPEN, X, X, X, X, CS_RESULTED, X, X},
                [CO_PROPOSE] = {X, X, X, X, X, X, X, X},
                [CO_DECIDE] = {X, X, X, X, X, X, X, X},
                [CO_SERVE] = {X, X, X, X, X, X, X, X},
                [CO_EXECUTE] = {X, X, X, X, X, X, X, X},
                [CO_CLOSE] = {X, X, X, X, X, CS_CLOSED, X, X},
                [CO_REVOKE] = {X, X, X, X, X, X, X, X},
                [CO_RESULT] = {CS_RESULTED, X, X, X, X, X, X, X},
            },
};

const char *
case_type_name(case_type_t t)
{
    return (unsigned)t < CASE_TYPE_COUNT ? s_type_names[t] : NULL;
}

const char *
case_state_name(case_state_t s)
{
    return (unsigned)s < CS_COUNT ? s_state_names[s] : NULL;
}

const char *
case_op_name(case_op_t op)
{
    return (unsigned)op < CO_COUNT ? s_op_names[op] : NULL;
}

static int
s_parse(const char *name, const char *const *names, int n)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int
case_type_parse(const char *name)
{
    return s_parse(name, s_type_names, CASE_TYPE_COUNT);
}

int
case_state_parse(const char *name)
{
    return s_parse(name, s_state_names, CS_COUNT);
}

int
case_state_next(case_type_t t, case_state_t s, case_op_t op, char *en, size_t en_size, char *zh,
                size_t zh_size)
{
    if ((unsigned)t >= CASE_TYPE_COUNT || (unsigned)s >= CS_COUNT || (unsigned)op >= CO_COUNT) {
        snprintf(en, en_size, "unknown case type, state or op");
        snprintf(zh, zh_size, "案件类型、状态或操作无效");
        return -1;
    }
    /* A licence decision may be closed once served: granting a licence needs no
     * enforcement step (执行) after it is delivered. */
    if (t == CASE_LICENCE && op == CO_CLOSE && s == CS_SERVED)
        return CS_CLOSED;
    int fam = t == CASE_INSPECTION ? FAM_INSPECTION : FAM_DECISION;
    int next = s_next[fam][op][s];
    if (next != X)
        return next;

    /* Name the states op would need, so the department sees what to do instead. */
    char need_en[160] = "", need_zh[200] = "";
    size_t le = 0, lz = 0;
    int count = 0;
    for (int st = 0; st < CS_COUNT; st++) {
        bool ok =
            s_next[fam][op][st] != X || (t == CASE_LICENCE && op == CO_CLOSE && st == CS_SERVED);
        if (!ok)
            continue;
        le += (size_t)snprintf(need_en + le, sizeof need_en - le, "%s%s", count ? " or " : "",
                               s_state_names[st]);
        lz += (size_t)snprintf(need_zh + lz, sizeof need_zh - lz, "%s%s", count ? "或" : "",
                               s_state_zh[st]);
        count++;
        if (le >= sizeof need_en || lz >= sizeof need_zh)
            break;
    }
    if (count == 0) {
        snprintf(en, en_size, "%s does not apply to %s cases", s_op_names[op], s_type_names[t]);
        snprintf(zh, zh_size, "%s案件不适用%s", s_type_zh[t], s_op_zh[op]);
    } else {
        snprintf(en, en_size, "case is %s; %s needs %s", s_state_names[s], s_op_names[op], need_en);
        snprintf(zh, zh_size, "案件当前状态为%s，%s须在%s状态", s_state_zh[s], s_op_zh[op],
                 need_zh);
    }
    return -1;
}
