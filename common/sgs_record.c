/* sgs_record: the 双公示 record (sgs-fields.md) and its checks; shared by creditpush,
 * tools/fake-credit and the fuzz target, so it depends on common/ only. */
#include "sgs_record.h"

#include <stdio.h>
#include <string.h>

#include "date.h"
#include "ident.h"

#define S_VALUE_MAX 2000 /* bytes of one field's value */

/* How a field is checked. */
typedef enum { S_TEXT, S_DATE, S_AMOUNT, S_USCC, S_ORGCODE, S_LB, S_ZJLX, S_XKLB, S_CFLB } s_rule_t;

typedef struct {
    const char *name; /* without the CF_ / XK_ prefix for party fields */
    s_rule_t rule;
    bool required;
} s_field_t;

/* Party (行政相对人) fields, both kinds; prefixed CF_ or XK_. */
static const s_field_t s_party[] = {
    {"XDR_MC", S_TEXT, true},    {"XDR_LB", S_LB, true},         {"XDR_SHXYM", S_TEXT, false},
    {"XDR_GSZC", S_TEXT, false}, {"XDR_ZZJG", S_ORGCODE, false}, {"XDR_SWDJ", S_TEXT, false},
    {"XDR_SYDW", S_TEXT, false}, {"XDR_SHZZ", S_TEXT, false},    {"FRDB", S_TEXT, false},
    {"FR_ZJLX", S_ZJLX, false},  {"FR_ZJHM", S_TEXT, false},     {"XDR_ZJLX", S_ZJLX, false},
    {"XDR_ZJHM", S_TEXT, false}, {NULL, S_TEXT, false}};

/* 行政处罚 fields (sgs-fields.md, "Penalty"). */
static const s_field_t s_penalty[] = {
    {"CF_WSH", S_TEXT, true},      {"CF_WFXW", S_TEXT, true},       {"CF_SY", S_TEXT, true},
    {"CF_YJ", S_TEXT, true},       {"CF_CFLB", S_CFLB, true},       {"CF_NR", S_TEXT, true},
    {"CF_NR_FK", S_AMOUNT, false}, {"CF_NR_WFFF", S_AMOUNT, false}, {"CF_NR_ZKDX", S_TEXT, false},
    {"CF_JDRQ", S_DATE, true},     {"CF_YXQ", S_DATE, true},        {"CF_GSJZQ", S_DATE, true},
    {"CF_CFJG", S_TEXT, true},     {"CF_CFJGDM", S_USCC, true},     {"CF_SJLY", S_TEXT, true},
    {"CF_SJLYDM", S_USCC, true},   {"BZ", S_TEXT, false},           {NULL, S_TEXT, false}};

/* 行政许可 fields (sgs-fields.md, "Licence"). */
static const s_field_t s_licence[] = {
    {"XK_XKWS", S_TEXT, true},  {"XK_WSH", S_TEXT, true},    {"XK_XKLB", S_XKLB, true},
    {"XK_XKZS", S_TEXT, false}, {"XK_XKBH", S_TEXT, false},  {"XK_NR", S_TEXT, true},
    {"XK_JDRQ", S_DATE, true},  {"XK_YXQZ", S_DATE, true},   {"XK_YXQZI", S_DATE, true},
    {"XK_XKJG", S_TEXT, true},  {"XK_XKJGDM", S_USCC, true}, {"XK_ZT", S_TEXT, false},
    {"XK_LYDW", S_TEXT, true},  {"XK_LYDWDM", S_USCC, true}, {"BZ", S_TEXT, false},
    {NULL, S_TEXT, false}};

#define S_NAME_SHOWN 64 /* bytes of a field's name kept in a reason */

/* "FIELD: why". The name may come from outside (an unknown key): at most S_NAME_SHOWN
 * bytes of it are kept, cut before a UTF-8 sequence, so that the reason always fits and
 * is valid text wherever it is stored (a dead letter, the platform's answer). */
static int
s_fail(char *reason, const char *field, const char *why)
{
    size_t n = strlen(field);
    if (n > S_NAME_SHOWN) {
        n = S_NAME_SHOWN;
        while (n > 0 && ((unsigned char)field[n] & 0xc0) == 0x80)
            n--;
    }
    snprintf(reason, SGS_REASON_MAX, "%.*s%s: %s", (int)n, field, n < strlen(field) ? "..." : "",
             why);
    return -1;
}

/* YYYY/MM/DD, a real day. */
static bool
s_date(const char *v, date_t *out)
{
    int y, m, d;
    char tail;
    if (!v || strlen(v) != 10 || v[4] != '/' || v[7] != '/' ||
        sscanf(v, "%4d/%2d/%2d%c", &y, &m, &d, &tail) != 3 || !date_valid(y, m, d))
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (v[i] < '0' || v[i] > '9'))
            return false;
    *out = date_from_ymd(y, m, d);
    return true;
}

/* A non-negative decimal in 万元: digits, optionally '.' and 1..6 digits. */
static bool
s_amount(const char *v)
{
    size_t i = 0, n = strlen(v);
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++;
    if (i == 0 || i > 12)
        return false;
    if (i == n)
        return true;
    if (v[i] != '.' || n - i - 1 < 1 || n - i - 1 > 6)
        return false;
    for (i++; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

/* 行政处罚法 2021 art. 9 kinds, several joined by ';'. */
static bool
s_cflb(const char *v)
{
    static const char *const kinds[] = {"警告",         "通报批评",     "罚款",
                                        "没收违法所得", "没收非法财物", "暂扣许可证件",
                                        "降低资质等级", "吊销许可证件", "限制开展生产经营活动",
                                        "责令停产停业", "责令关闭",     "限制从业",
                                        "行政拘留",     "其他",         NULL};
    for (const char *p = v;;) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool ok = false;
        for (int i = 0; kinds[i] && !ok; i++)
            ok = strlen(kinds[i]) == len && memcmp(kinds[i], p, len) == 0;
        if (!ok)
            return false;
        if (!e)
            return true;
        p = e + 1;
    }
}

static bool
s_in(const char *v, const char *const set[])
{
    for (int i = 0; set[i]; i++)
        if (strcmp(v, set[i]) == 0)
            return true;
    return false;
}

static int
s_value(const char *field, const char *v, s_rule_t rule, char *reason)
{
    static const char *const lb[] = {"法人及非法人组织", "自然人", "个体工商户", NULL};
    static const char *const zjlx[] = {"01", "02", "03", "04", "05", NULL};
    static const char *const xklb[] = {"01", "02", "03", "04", "05", "06", NULL};
    date_t d;
    ident_err_t ie;
    switch (rule) {
    case S_TEXT:
        return 0;
    case S_DATE:
        return s_date(v, &d) ? 0 : s_fail(reason, field, "not a real date YYYY/MM/DD");
    case S_AMOUNT:
        return s_amount(v) ? 0 : s_fail(reason, field, "not an amount in 万元 (up to 6 decimals)");
    case S_USCC:
        return ident_uscc_check(v, &ie) == 0 ? 0 : s_fail(reason, field, ie.en);
    case S_ORGCODE:
        return ident_orgcode_check(v, &ie) == 0 ? 0 : s_fail(reason, field, ie.en);
    case S_LB:
        return s_in(v, lb) ? 0 : s_fail(reason, field, "not 法人及非法人组织/自然人/个体工商户");
    case S_ZJLX:
        return s_in(v, zjlx) ? 0 : s_fail(reason, field, "not a 证件类型 code 01..05");
    case S_XKLB:
        return s_in(v, xklb) ? 0 : s_fail(reason, field, "not a 许可类别 code 01..06");
    case S_CFLB:
        return s_cflb(v) ? 0 : s_fail(reason, field, "not 行政处罚法 art. 9 kinds joined by ;");
    }
    return 0;
}

/* Finds name's rule in the party (with prefix px) and the kind's tables. */
static const s_field_t *
s_lookup(const char *name, const char *px, const s_field_t *own)
{
    for (int i = 0; own[i].name; i++)
        if (strcmp(own[i].name, name) == 0)
            return &own[i];
    size_t pl = strlen(px);
    if (strncmp(name, px, pl) == 0)
        for (int i = 0; s_party[i].name; i++)
            if (strcmp(s_party[i].name, name + pl) == 0)
                return &s_party[i];
    if (strncmp(name, "FR", 2) == 0) /* FRDB, FR_ZJLX, FR_ZJHM carry no prefix too */
        for (int i = 0; s_party[i].name; i++)
            if (strcmp(s_party[i].name, name) == 0)
                return &s_party[i];
    return NULL;
}

static const char *
s_get(const json_t *data, const char *name)
{
    const char *v = json_string_value(json_object_get(data, name));
    return v && v[0] ? v : NULL;
}

int
sgs_record_check(const json_t *data, const char *kind, char *reason)
{
    bool penalty = kind && strcmp(kind, "penalty") == 0;
    if (!penalty && !(kind && strcmp(kind, "licence") == 0))
        return s_fail(reason, "kind", "neither penalty nor licence");
    if (!json_is_object(data))
        return s_fail(reason, "data", "not an object");
    const char *px = penalty ? "CF_" : "XK_";
    const s_field_t *own = penalty ? s_penalty : s_licence;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)data, key, val)
    {
        const s_field_t *f = s_lookup(key, px, own);
        if (!f)
            return s_fail(reason, key, "unknown field");
        if (!json_is_string(val))
            return s_fail(reason, key, "not a string");
        if (json_string_length(val) > S_VALUE_MAX)
            return s_fail(reason, key, "longer than 2000 bytes");
        if (json_string_length(val) > 0 &&
            s_value(key, json_string_value(val), f->rule, reason) < 0)
            return -1;
    }
    char name[32];
    for (int i = 0; own[i].name; i++)
        if (own[i].required && !s_get(data, own[i].name))
            return s_fail(reason, own[i].name, "required");
    for (int i = 0; s_party[i].name; i++) {
        snprintf(name, sizeof name, "%s%s", px, s_party[i].name);
        if (s_party[i].required && !s_get(data, name))
            return s_fail(reason, name, "required");
    }
    /* sgs-fields.md, Party: organisations carry a 统一社会信用代码 (a 个体工商户 without one
     * writes 17 zeros + X and then its 工商注册号); natural persons a 证件类型 and 号码. */
    snprintf(name, sizeof name, "%sXDR_LB", px);
    const char *lb = s_get(data, name);
    char shxym[32], zjlx[32], zjhm[32], gszc[32];
    snprintf(shxym, sizeof shxym, "%sXDR_SHXYM", px);
    snprintf(zjlx, sizeof zjlx, "%sXDR_ZJLX", px);
    snprintf(zjhm, sizeof zjhm, "%sXDR_ZJHM", px);
    snprintf(gszc, sizeof gszc, "%sXDR_GSZC", px);
    if (strcmp(lb, "自然人") == 0) {
        if (!s_get(data, zjlx))
            return s_fail(reason, zjlx, "required for 自然人");
        if (!s_get(data, zjhm))
            return s_fail(reason, zjhm, "required for 自然人");
    } else {
        const char *code = s_get(data, shxym);
        ident_err_t ie;
        if (!code)
            return s_fail(reason, shxym, "required for organisations");
        if (strcmp(lb, "个体工商户") == 0 && strcmp(code, "00000000000000000X") == 0) {
            if (!s_get(data, gszc))
                return s_fail(reason, gszc, "required when XDR_SHXYM is 00000000000000000X");
        } else if (ident_uscc_check(code, &ie) < 0)
            return s_fail(reason, shxym, ie.en);
    }
    /* The publication period ends after the decision (信用修复管理办法). */
    date_t from, until;
    const char *jd = penalty ? "CF_JDRQ" : "XK_YXQZ", *to = penalty ? "CF_GSJZQ" : "XK_YXQZI";
    if (s_date(s_get(data, jd), &from) && s_date(s_get(data, to), &until) && until < from)
        return s_fail(reason, to, penalty ? "before CF_JDRQ" : "before XK_YXQZ");
    reason[0] = '\0';
    return 0;
}

json_t *
sgs_record_build(const json_t *record, const char **kind_out, char *reason)
{
    const char *type = json_string_value(json_object_get(record, "type"));
    if (!type || (strcmp(type, "penalty") != 0 && strcmp(type, "licence") != 0)) {
        s_fail(reason, "record.type", "not a penalty or licence (not 双公示)");
        return NULL;
    }
    *kind_out = strcmp(type, "penalty") == 0 ? "penalty" : "licence";
    const json_t *sgs = json_object_get(record, "sgs");
    if (!json_is_object(sgs)) {
        s_fail(reason, "record.sgs", "missing");
        return NULL;
    }
    json_t *data = json_object();
    if (!data) {
        s_fail(reason, "record", "out of memory");
        return NULL;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)sgs, key, val)
    {
        /* Empty optional fields are left out: the platform reads "" as a value. */
        if (json_is_string(val) && json_string_length(val) == 0)
            continue;
        json_object_set(data, key, val);
    }
    /* A fine of 0 万元 says nothing the platform needs; it is kept only when positive. */
    static const char *const amounts[] = {"CF_NR_FK", "CF_NR_WFFF", NULL};
    for (int i = 0; amounts[i]; i++) {
        const char *v = json_string_value(json_object_get(data, amounts[i]));
        if (v && strspn(v, "0.") == strlen(v))
            json_object_del(data, amounts[i]);
    }
    if (sgs_record_check(data, *kind_out, reason) < 0) {
        json_decref(data);
        return NULL;
    }
    return data;
}

bool
sgs_record_key_domain(const json_t *data)
{
    static const char *const words[] = {"食品",       "药品", "药械", "环境", "环保",
                                        "污染",       "金融", "投资", "证券", "安全生产",
                                        "危险化学品", "卫生", "疫苗", "医疗", NULL};
    static const char *const fields[] = {"CF_WFXW", "CF_CFLB", "CF_SY", "CF_YJ",
                                         "XK_NR",   "XK_XKWS", "BZ",    NULL};
    for (int f = 0; fields[f]; f++) {
        const char *v = json_string_value(json_object_get(data, fields[f]));
        for (int w = 0; v && words[w]; w++)
            if (strstr(v, words[w]))
                return true;
    }
    return false;
}

bool
sgs_record_serious(const json_t *data)
{
    date_t from, until;
    if (!s_date(json_string_value(json_object_get(data, "CF_JDRQ")), &from) ||
        !s_date(json_string_value(json_object_get(data, "CF_GSJZQ")), &until))
        return false;
    return until - from > 366 * 2; /* 严重: 3 years; 一般 1 year, 轻微 3 months */
}

/* BZ: prefix and text, cut to S_VALUE_MAX bytes before a UTF-8 sequence (a reason of
 * up to 2000 bytes behind a prefix must not make the record invalid). */
static void
s_bz(char out[S_VALUE_MAX + 1], const char *prefix, const char *text)
{
    size_t n = (size_t)snprintf(out, S_VALUE_MAX + 1, "%s%s", prefix, text);
    if (n > S_VALUE_MAX) {
        n = S_VALUE_MAX;
        while (n > 0 && ((unsigned char)out[n] & 0xc0) == 0x80)
            n--;
        out[n] = '\0';
    }
}

json_t *
sgs_record_withdrawal(const char *kind, const char *decision_no, const char *reason)
{
    bool penalty = strcmp(kind, "penalty") == 0;
    char bz[S_VALUE_MAX + 1];
    s_bz(bz, "", reason);
    /* CF_ZT 1 撤销 (older layout codes); licences carry XK_ZT as text. */
    return json_pack("{s:s,s:s,s:s}", penalty ? "CF_WSH" : "XK_WSH", decision_no,
                     penalty ? "CF_ZT" : "XK_ZT", penalty ? "1" : "撤销", "BZ", bz);
}

int
sgs_record_check_withdrawal(const json_t *data, const char *kind, char *reason)
{
    bool penalty = kind && strcmp(kind, "penalty") == 0;
    if (!penalty && !(kind && strcmp(kind, "licence") == 0))
        return s_fail(reason, "kind", "neither penalty nor licence");
    const char *names[] = {penalty ? "CF_WSH" : "XK_WSH", penalty ? "CF_ZT" : "XK_ZT", "BZ"};
    if (!json_is_object(data) || json_object_size(data) != 3)
        return s_fail(reason, "data", "a withdrawal has exactly WSH, ZT and BZ");
    for (int i = 0; i < 3; i++)
        if (!s_get(data, names[i]))
            return s_fail(reason, names[i], "required");
    if (strcmp(s_get(data, names[1]), penalty ? "1" : "撤销") != 0)
        return s_fail(reason, names[1], penalty ? "must be 1 (撤销)" : "must be 撤销");
    reason[0] = '\0';
    return 0;
}

json_t *
sgs_record_repair(const char *decision_no, const char *until, const char *reason)
{
    char bz[S_VALUE_MAX + 1];
    s_bz(bz, "信用修复: ", reason);
    return json_pack("{s:s,s:s,s:s,s:s}", "CF_WSH", decision_no, "CF_ZT", "3", "CF_GSJZQ", until,
                     "BZ", bz);
}

int
sgs_record_check_repair(const json_t *data, const char *kind, char *reason)
{
    static const char *const names[] = {"CF_WSH", "CF_ZT", "CF_GSJZQ", "BZ"};
    date_t d;
    if (!kind || strcmp(kind, "penalty") != 0)
        return s_fail(reason, "kind", "a repair (信用修复) is for penalties only");
    if (!json_is_object(data) || json_object_size(data) != 4)
        return s_fail(reason, "data", "a repair has exactly CF_WSH, CF_ZT, CF_GSJZQ and BZ");
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(data, names[i]);
        if (!s_get(data, names[i]))
            return s_fail(reason, names[i], "required");
        if (json_string_length(v) > S_VALUE_MAX)
            return s_fail(reason, names[i], "longer than 2000 bytes");
    }
    if (strcmp(s_get(data, "CF_ZT"), "3") != 0)
        return s_fail(reason, "CF_ZT", "must be 3 (信用修复)");
    if (!s_date(s_get(data, "CF_GSJZQ"), &d))
        return s_fail(reason, "CF_GSJZQ", "not a real date YYYY/MM/DD");
    reason[0] = '\0';
    return 0;
}

/* The column lists, built once from the field tables (party first, as sgs-fields.md). */
static const char *const s_cf_cols[] = {
    "CF_XDR_MC",   "CF_XDR_LB",   "CF_XDR_SHXYM", "CF_XDR_GSZC", "CF_XDR_ZZJG", "CF_XDR_SWDJ",
    "CF_XDR_SYDW", "CF_XDR_SHZZ", "FRDB",         "FR_ZJLX",     "FR_ZJHM",     "CF_XDR_ZJLX",
    "CF_XDR_ZJHM", "CF_WSH",      "CF_WFXW",      "CF_SY",       "CF_YJ",       "CF_CFLB",
    "CF_NR",       "CF_NR_FK",    "CF_NR_WFFF",   "CF_NR_ZKDX",  "CF_JDRQ",     "CF_YXQ",
    "CF_GSJZQ",    "CF_CFJG",     "CF_CFJGDM",    "CF_SJLY",     "CF_SJLYDM",   "BZ",
    NULL};
static const char *const s_xk_cols[] = {
    "XK_XDR_MC",   "XK_XDR_LB",   "XK_XDR_SHXYM", "XK_XDR_GSZC", "XK_XDR_ZZJG", "XK_XDR_SWDJ",
    "XK_XDR_SYDW", "XK_XDR_SHZZ", "FRDB",         "FR_ZJLX",     "FR_ZJHM",     "XK_XDR_ZJLX",
    "XK_XDR_ZJHM", "XK_XKWS",     "XK_WSH",       "XK_XKLB",     "XK_XKZS",     "XK_XKBH",
    "XK_NR",       "XK_JDRQ",     "XK_YXQZ",      "XK_YXQZI",    "XK_XKJG",     "XK_XKJGDM",
    "XK_ZT",       "XK_LYDW",     "XK_LYDWDM",    "BZ",          NULL};

const char *const *
sgs_record_columns(const char *kind)
{
    if (kind && strcmp(kind, "penalty") == 0)
        return s_cf_cols;
    if (kind && strcmp(kind, "licence") == 0)
        return s_xk_cols;
    return NULL;
}

const char *
sgs_record_value(const json_t *data, const char *kind, const char *col)
{
    const char *v = json_string_value(json_object_get(data, col));
    if (v || strncmp(col, "FR", 2) != 0 || !kind)
        return v;
    char name[32];
    snprintf(name, sizeof name, "%s%s", strcmp(kind, "penalty") == 0 ? "CF_" : "XK_", col);
    return json_string_value(json_object_get(data, name));
}
