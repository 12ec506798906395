/* query: validation of the portal's HTTP parameters, with limits. */
#include "query.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "date.h"
#include "ident.h"

const char *
query_param_zh(const char *param)
{
    static const char *const zh[][2] = {{"party", "当事人名称"}, {"uscc", "统一社会信用代码"},
                                        {"agency", "执法机关"},  {"type", "执法类别"},
                                        {"from", "起始日期"},    {"to", "截止日期"},
                                        {"page", "页码"},        {"size", "每页条数"},
                                        {"cert_no", "执法证号"}, {"code", "机关代码"},
                                        {"id", "决定编号"},      {"year", "年度"},
                                        {"half", "半年度"},      {NULL, NULL}};
    for (int i = 0; zh[i][0]; i++)
        if (strcmp(zh[i][0], param) == 0)
            return zh[i][1];
    return NULL;
}

/* The Chinese of an English reason from this file (matched by its start). */
static const char *
s_reason_zh(const char *reason)
{
    static const char *const zh[][2] = {
        {"unknown parameter", "不支持该参数"},
        {"given more than once", "重复提交"},
        {"empty", "不能为空"},
        {"missing", "缺少该参数"},
        {"longer than 400 bytes", "过长"},
        {"longer than 100 characters", "超过100个字"},
        {"longer than 32 characters", "超过32个字"},
        {"longer than 64 bytes", "过长或含有空字符"},
        {"contains a NUL byte", "含有空字符"},
        {"not valid UTF-8", "不是有效的UTF-8文字"},
        {"character", "含有不允许的字符"},
        {"too many parameters", "参数过多"},
        {"expected an 18-character", "应为18位统一社会信用代码"},
        {"unified social credit code", "不是有效的统一社会信用代码（校验位不符或含非法字符）"},
        {"must be between", "日期须在1990-01-01至2100-12-31之间"},
        {"expected a whole number", "应为有效范围内的正整数"},
        {"before from", "截止日期早于起始日期"},
        {"expected one of", "应为行政许可、行政处罚、行政强制、行政检查或行政征收之一"},
        {"expected a decision id", "不是有效的决定编号"},
        {"only letters", "只能包含字母、数字、“-”和汉字"},
        {"expected 1 or 2", "应为1（上半年）或2（下半年）"},
        {"expected a year", "年度应在2019至2100之间"},
        {"the period has not ended", "统计期间尚未结束"},
        {NULL, NULL}};
    for (int i = 0; zh[i][0]; i++)
        if (strncmp(reason, zh[i][0], strlen(zh[i][0])) == 0)
            return zh[i][1];
    return "日期格式应为YYYY-MM-DD且为有效日期"; /* date_parse's reasons */
}

static int
s_fail(query_err_t *err, const char *param, size_t plen, const char *reason)
{
    /* Only printable ASCII of the name is echoed back. */
    size_t j = 0;
    for (size_t i = 0; i < plen && j + 1 < sizeof err->param; i++)
        err->param[j++] = param[i] >= 0x20 && param[i] < 0x7f ? param[i] : '?';
    err->param[j] = '\0';
    snprintf(err->reason, sizeof err->reason, "%s", reason);
    const char *label = query_param_zh(err->param);
    if (label)
        snprintf(err->zh, sizeof err->zh, "%s（%s）：%s", label, err->param, s_reason_zh(reason));
    else if (err->param[0])
        snprintf(err->zh, sizeof err->zh, "参数“%s”：%s", err->param, s_reason_zh(reason));
    else
        snprintf(err->zh, sizeof err->zh, "%s", s_reason_zh(reason));
    return -1;
}

long
query_utf8_chars(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    long chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned c = p[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return -1;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += n + 1;
    }
    return chars;
}

/* The code point at s (valid UTF-8 assumed), its length in *n. */
static unsigned
s_cp(const unsigned char *s, size_t *n)
{
    if (s[0] < 0x80)
        return *n = 1, s[0];
    if (s[0] < 0xe0)
        return *n = 2, (unsigned)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    if (s[0] < 0xf0)
        return *n = 3, (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    return *n = 4, (unsigned)(s[0] & 0x07) << 18 | (unsigned)(s[1] & 0x3f) << 12 |
                       (unsigned)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

/* A party name: letters, digits, CJK, spaces and a few marks that occur in names. What
 * looks like markup, quoting or SQL (even though every value travels as a parameter) is
 * refused, so a probe gets a clear 400 instead of an empty result. */
static int
s_party(const char *v, size_t len, char *out, query_err_t *err)
{
    long chars = query_utf8_chars(v, len);
    if (chars < 0)
        return s_fail(err, "party", 5, "not valid UTF-8");
    if (chars > QUERY_PARTY_MAX)
        return s_fail(err, "party", 5, "longer than 100 characters");
    const unsigned char *p = (const unsigned char *)v;
    bool text = false;
    for (size_t i = 0; i < len;) {
        size_t n;
        unsigned cp = s_cp(p + i, &n);
        bool ok;
        if (cp < 0x80)
            ok = (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') ||
                 strchr(" ().&-", (int)cp) != NULL;
        else
            /* No C1 controls, invisible separators or fullwidth quotes and brackets. */
            ok = cp >= 0xa0 && !(cp >= 0x2000 && cp <= 0x206f && cp != 0x00b7) && cp != 0xfeff &&
                 cp != 0xff02 && cp != 0xff07 && cp != 0xff1b && cp != 0xff1c && cp != 0xff1e &&
                 cp != 0xff05 && cp != 0xff3c;
        if (cp == '-' && i + 1 < len && p[i + 1] == '-')
            ok = false;
        if (!ok) {
            char why[80];
            if (cp >= 0x21 && cp < 0x7f)
                snprintf(why, sizeof why, "character '%c' is not allowed", (char)cp);
            else
                snprintf(why, sizeof why, "character U+%04X is not allowed", cp);
            return s_fail(err, "party", 5, why);
        }
        if (cp != ' ')
            text = true;
        i += n;
    }
    if (!text)
        return s_fail(err, "party", 5, "empty");
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

static int
s_code(const char *name, const char *v, size_t len, char out[19], query_err_t *err)
{
    char buf[19];
    if (len != 18)
        return s_fail(err, name, strlen(name),
                      "expected an 18-character unified social credit code");
    memcpy(buf, v, 18);
    buf[18] = '\0';
    ident_err_t ie;
    if (ident_uscc_check(buf, &ie) != 0) {
        char why[160];
        snprintf(why, sizeof why, "unified social credit code (GB 32100): %.100s", ie.en);
        return s_fail(err, name, strlen(name), why);
    }
    memcpy(out, buf, 19);
    return 0;
}

static int
s_date(const char *name, const char *v, size_t len, char out[11], date_t *day, query_err_t *err)
{
    const char *why = NULL;
    if (date_parse(v, len, day, &why) != 0)
        return s_fail(err, name, strlen(name), why ? why : "expected YYYY-MM-DD");
    if (*day < date_from_ymd(1990, 1, 1) || *day > date_from_ymd(2100, 12, 31))
        return s_fail(err, name, strlen(name), "must be between 1990-01-01 and 2100-12-31");
    date_format(*day, out);
    return 0;
}

static int
s_int(const char *name, const char *v, size_t len, int max, int *out, query_err_t *err)
{
    char why[80];
    snprintf(why, sizeof why, "expected a whole number from 1 to %d", max);
    if (len == 0 || len > 4 || v[0] == '0')
        return s_fail(err, name, strlen(name), why);
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return s_fail(err, name, strlen(name), why);
        n = n * 10 + (v[i] - '0');
    }
    if (n < 1 || n > max)
        return s_fail(err, name, strlen(name), why);
    *out = n;
    return 0;
}

static const char *const s_search_names[] = {"party", "uscc", "agency", "type", "from",
                                             "to",    "page", "size",   NULL};

int
query_search(const query_kv_t *kv, size_t n, query_search_t *out, query_err_t *err)
{
    const char *const *names = s_search_names;
    static const char *const types[] = {"licence",    "penalty", "coercion",
                                        "inspection", "levy",    NULL};
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    out->page = 1;
    out->size = QUERY_SIZE_DEFAULT;
    if (n > QUERY_PARAMS_MAX)
        return s_fail(err, "", 0, "too many parameters");
    unsigned seen = 0;
    date_t from = 0, to = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        size_t klen = kv[i].key_len, vlen = kv[i].value_len;
        int which = -1;
        for (int j = 0; names[j]; j++)
            if (strlen(names[j]) == klen && memcmp(names[j], k, klen) == 0)
                which = j;
        if (which < 0)
            return s_fail(err, k, klen, "unknown parameter");
        const char *name = names[which];
        if (seen & 1u << which)
            return s_fail(err, name, klen, "given more than once");
        seen |= 1u << which;
        if (!v || vlen == 0)
            return s_fail(err, name, klen, "empty");
        if (vlen > QUERY_VALUE_MAX)
            return s_fail(err, name, klen, "longer than 400 bytes");
        if (memchr(v, '\0', vlen))
            return s_fail(err, name, klen, "contains a NUL byte");
        if (query_utf8_chars(v, vlen) < 0)
            return s_fail(err, name, klen, "not valid UTF-8");
        int rc = 0;
        switch (which) {
        case 0:
            rc = s_party(v, vlen, out->party, err);
            break;
        case 1:
            rc = s_code("uscc", v, vlen, out->uscc, err);
            break;
        case 2:
            rc = s_code("agency", v, vlen, out->agency, err);
            break;
        case 3:
            rc = s_fail(err, "type", 4,
                        "expected one of: licence, penalty, coercion, inspection, levy");
            for (int j = 0; types[j]; j++)
                if (strlen(types[j]) == vlen && memcmp(types[j], v, vlen) == 0) {
                    snprintf(out->type, sizeof out->type, "%s", types[j]);
                    memset(err, 0, sizeof *err);
                    rc = 0;
                }
            break;
        case 4:
            rc = s_date("from", v, vlen, out->from, &from, err);
            break;
        case 5:
            rc = s_date("to", v, vlen, out->to, &to, err);
            break;
        case 6:
            rc = s_int("page", v, vlen, QUERY_PAGE_MAX, &out->page, err);
            break;
        default:
            rc = s_int("size", v, vlen, QUERY_SIZE_MAX, &out->size, err);
            break;
        }
        if (rc < 0)
            return -1;
    }
    if (out->from[0] && out->to[0] && from > to)
        return s_fail(err, "to", 2, "before from");
    return 0;
}

int
query_search_form(const query_kv_t *kv, size_t n, query_search_t *out, query_err_t *err)
{
    query_kv_t given[QUERY_PARAMS_MAX + 1];
    size_t m = 0;
    if (n > QUERY_PARAMS_MAX) {
        memset(out, 0, sizeof *out);
        memset(err, 0, sizeof *err);
        return s_fail(err, "", 0, "too many parameters");
    }
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (int j = 0; s_search_names[j]; j++)
            if (strlen(s_search_names[j]) == kv[i].key_len &&
                memcmp(s_search_names[j], kv[i].key, kv[i].key_len) == 0)
                known = true;
        /* An empty field of the form is not a filter; an unknown name is still refused. */
        if (!known || (kv[i].value && kv[i].value_len > 0))
            given[m++] = kv[i];
    }
    return query_search(given, m, out, err);
}

int
query_id(const char *s, size_t len, int64_t *out, query_err_t *err)
{
    memset(err, 0, sizeof *err);
    if (len == 0 || len > 16 || s[0] == '0')
        return s_fail(err, "id", 2, "expected a decision id (a whole number)");
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return s_fail(err, "id", 2, "expected a decision id (a whole number)");
        v = v * 10 + (s[i] - '0');
    }
    if (v > (INT64_C(1) << 53) - 1)
        return s_fail(err, "id", 2, "expected a decision id (a whole number)");
    *out = v;
    return 0;
}

int
query_officer(const query_kv_t *kv, size_t n, char cert[QUERY_CERT_MAX + 1], query_err_t *err)
{
    memset(err, 0, sizeof *err);
    if (n == 0)
        return s_fail(err, "cert_no", 7, "missing");
    if (n > 1 || kv[0].key_len != 7 || memcmp(kv[0].key, "cert_no", 7) != 0) {
        size_t i = kv[0].key_len == 7 && memcmp(kv[0].key, "cert_no", 7) == 0 ? 1 : 0;
        return s_fail(err, kv[i].key, kv[i].key_len,
                      i ? "unknown parameter (or cert_no given twice)" : "unknown parameter");
    }
    const char *v = kv[0].value;
    size_t len = kv[0].value_len;
    if (!v || len == 0)
        return s_fail(err, "cert_no", 7, "empty");
    if (len > QUERY_CERT_MAX || memchr(v, '\0', len))
        return s_fail(err, "cert_no", 7, "longer than 64 bytes or holds a NUL byte");
    long chars = query_utf8_chars(v, len);
    if (chars < 0)
        return s_fail(err, "cert_no", 7, "not valid UTF-8");
    if (chars > 32)
        return s_fail(err, "cert_no", 7, "longer than 32 characters");
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < len;) {
        size_t k;
        unsigned cp = s_cp(p + i, &k);
        /* Letters, digits, '-' and CJK ideographs (a province's abbreviation). */
        bool ok = (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') ||
                  (cp >= 'a' && cp <= 'z') || cp == '-' || (cp >= 0x3400 && cp <= 0x9fff);
        if (!ok)
            return s_fail(err, "cert_no", 7, "only letters, digits, '-' and CJK are allowed");
        i += k;
    }
    memcpy(cert, v, len);
    cert[len] = '\0';
    return 0;
}

int
query_agency(const char *s, size_t len, char code[19], query_err_t *err)
{
    memset(err, 0, sizeof *err);
    if (query_utf8_chars(s, len) < 0)
        return s_fail(err, "code", 4, "not valid UTF-8");
    return s_code("code", s, len, code, err);
}

int
query_stats(const query_kv_t *kv, size_t n, int32_t today, query_stats_t *out, query_err_t *err)
{
    static const char *const names[] = {"agency", "year", "half", NULL};
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (n > QUERY_PARAMS_MAX)
        return s_fail(err, "", 0, "too many parameters");
    int year = 0, half = 0;
    unsigned seen = 0;
    for (size_t i = 0; i < n; i++) {
        int which = -1;
        for (int j = 0; names[j]; j++)
            if (strlen(names[j]) == kv[i].key_len &&
                memcmp(names[j], kv[i].key, kv[i].key_len) == 0)
                which = j;
        if (which < 0)
            return s_fail(err, kv[i].key, kv[i].key_len, "unknown parameter");
        if (seen & 1u << which)
            return s_fail(err, names[which], strlen(names[which]), "given more than once");
        seen |= 1u << which;
        const char *v = kv[i].value ? kv[i].value : "";
        size_t len = kv[i].value ? kv[i].value_len : 0;
        if (which == 0) {
            if (s_code("agency", v, len, out->agency, err) < 0)
                return -1;
        } else if (which == 1) {
            if (s_int("year", v, len, 2100, &year, err) < 0)
                return -1;
            if (year < 2019)
                return s_fail(err, "year", 4, "expected a year from 2019 to 2100");
        } else if (len != 1 || (v[0] != '1' && v[0] != '2'))
            return s_fail(err, "half", 4, "expected 1 or 2");
        else
            half = v[0] - '0';
    }
    if (!(seen & 1u))
        return s_fail(err, "agency", 6, "missing");
    if (!(seen & 2u))
        return s_fail(err, "year", 4, "missing");
    date_t from = date_from_ymd(year, half == 2 ? 7 : 1, 1);
    date_t to = date_from_ymd(year, half == 1 ? 6 : 12, half == 1 ? 30 : 31);
    if (to >= today)
        return s_fail(err, half ? "half" : "year", half ? 4 : 4, "the period has not ended yet");
    date_format(from, out->from);
    date_format(to, out->to);
    return 0;
}
