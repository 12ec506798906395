#include "ident.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* GB 32100-2015 charset: digits and capitals without I, O, S, V, Z (31 characters). */
static const char s_uscc_chars[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const int s_uscc_weights[17] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                       29, 25, 13, 8,  24, 10, 30, 28};
/* GB 11714-1997 weights. */
static const int s_org_weights[8] = {3, 7, 9, 10, 5, 8, 4, 2};
/* GB 11643-1999 (ISO 7064 MOD 11-2) weights and check characters. */
static const int s_id_weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
static const char s_id_checks[] = "10X98765432";

const char *
ident_kind_name(ident_kind_t kind)
{
    switch (kind) {
    case IDENT_OK:
        return "ok";
    case IDENT_ELENGTH:
        return "length";
    case IDENT_ECHAR:
        return "character";
    case IDENT_ECHECK:
        return "check digit";
    case IDENT_EDATE:
        return "date";
    case IDENT_EREGION:
        return "region";
    }
    return "unknown";
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when p does not start one
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). Stops at the
 * first byte that is not a continuation byte, so never reads past a NUL. */
static int
s_utf8_seq(const unsigned char *p, uint32_t *cp)
{
    unsigned char c = p[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Bytes of the character at p: a valid UTF-8 sequence, or 1 for a stray byte. */
static int
s_char_len(const char *p)
{
    uint32_t cp;
    int n = s_utf8_seq((const unsigned char *)p, &cp);
    return n ? n : 1;
}

/* Characters in s (UTF-8 sequences; a stray byte counts as one). */
static size_t
s_count(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p += s_char_len(p))
        n++;
    return n;
}

/* Fills err (may be NULL) with a fault; en and zh are the finished messages. Returns -1. */
static int
s_fault(ident_err_t *err, ident_kind_t kind, int pos, const char *en, const char *zh)
{
    if (err) {
        err->kind = kind;
        err->pos = pos;
        snprintf(err->en, sizeof err->en, "%s", en);
        snprintf(err->zh, sizeof err->zh, "%s", zh);
    }
    return -1;
}

static int
s_ok(ident_err_t *err)
{
    if (err) {
        err->kind = IDENT_OK;
        err->pos = 0;
        err->en[0] = '\0';
        err->zh[0] = '\0';
    }
    return 0;
}

/* Length fault: "length is 17, expected 18" / "长度应为18位，实为17位". */
static int
s_length(ident_err_t *err, const char *s, const char *expected)
{
    char en[128], zh[128];
    size_t n = s_count(s);
    if (n == 0) {
        snprintf(en, sizeof en, "is empty, expected %s characters", expected);
        snprintf(zh, sizeof zh, "为空，应为%s位", expected);
    } else {
        snprintf(en, sizeof en, "length is %zu, expected %s", n, expected);
        snprintf(zh, sizeof zh, "长度应为%s位，实为%zu位", expected, n);
    }
    return s_fault(err, IDENT_ELENGTH, 0, en, zh);
}

/* Character fault at 1-based pos, naming the character safely: printable ASCII quoted,
 * a valid UTF-8 character by code point, a stray byte in hex. hint_en/hint_zh say what
 * was expected there (may be NULL). */
static int
s_bad_char(ident_err_t *err, int pos, const char *p, const char *hint_en, const char *hint_zh)
{
    char what_en[32], what_zh[32], en[128], zh[128];
    unsigned char c = (unsigned char)*p;
    uint32_t cp;
    int n = s_utf8_seq((const unsigned char *)p, &cp);
    if (c >= 0x21 && c < 0x7f) {
        snprintf(what_en, sizeof what_en, " '%c'", c);
        snprintf(what_zh, sizeof what_zh, "'%c'", c);
    } else if (n > 0) {
        snprintf(what_en, sizeof what_en, " U+%04X", (unsigned)cp);
        snprintf(what_zh, sizeof what_zh, "U+%04X", (unsigned)cp);
    } else {
        snprintf(what_en, sizeof what_en, " (byte 0x%02X)", c);
        snprintf(what_zh, sizeof what_zh, "（字节0x%02X）", c);
    }
    snprintf(en, sizeof en, "character %d%s is not allowed%s%s%s", pos, what_en,
             hint_en ? " (" : "", hint_en ? hint_en : "", hint_en ? ")" : "");
    snprintf(zh, sizeof zh, "第%d位字符%s不合法%s%s%s", pos, what_zh, hint_zh ? "（" : "",
             hint_zh ? hint_zh : "", hint_zh ? "）" : "");
    return s_fault(err, IDENT_ECHAR, pos, en, zh);
}

static int
s_bad_check(ident_err_t *err, int pos, char got, char want)
{
    char en[128], zh[128];
    snprintf(en, sizeof en, "check digit is '%c', expected '%c'", got, want);
    snprintf(zh, sizeof zh, "校验码应为'%c'，实为'%c'", want, got);
    return s_fault(err, IDENT_ECHECK, pos, en, zh);
}

static int
s_uscc_value(char c)
{
    if (c == '\0')
        return -1;
    const char *hit = strchr(s_uscc_chars, c);
    return hit ? (int)(hit - s_uscc_chars) : -1;
}

char
ident_uscc_check_char(const char *body)
{
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        int v = s_uscc_value(body[i]);
        if (v < 0)
            return '\0';
        sum += v * s_uscc_weights[i];
    }
    return s_uscc_chars[(31 - sum % 31) % 31];
}

int
ident_uscc_check(const char *code, ident_err_t *err)
{
    if (s_count(code) != 18)
        return s_length(err, code, "18");
    const char *p = code;
    for (int pos = 1; pos <= 18; pos++, p += s_char_len(p)) {
        if (s_uscc_value(*p) >= 0 && s_char_len(p) == 1)
            continue;
        if (*p >= 'a' && *p <= 'z' && s_uscc_value((char)(*p - 'a' + 'A')) >= 0)
            return s_bad_char(err, pos, p, "use upper case", "应为大写");
        return s_bad_char(err, pos, p, NULL, NULL);
    }
    char want = ident_uscc_check_char(code);
    if (code[17] != want)
        return s_bad_check(err, 18, code[17], want);
    return s_ok(err);
}

static int
s_org_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return -1;
}

char
ident_orgcode_check_char(const char *body)
{
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        int v = s_org_value(body[i]);
        if (v < 0)
            return '\0';
        sum += v * s_org_weights[i];
    }
    int c = 11 - sum % 11;
    return c == 10 ? 'X' : c == 11 ? '0' : (char)('0' + c);
}

int
ident_orgcode_check(const char *code, ident_err_t *err)
{
    size_t n = s_count(code);
    if (n != 9 && n != 10)
        return s_length(err, code, "9 (or 10 as XXXXXXXX-X)");
    char body[9];
    const char *p = code;
    for (int pos = 1; pos <= 8; pos++, p += s_char_len(p)) {
        if (s_org_value(*p) < 0) {
            if (*p >= 'a' && *p <= 'z')
                return s_bad_char(err, pos, p, "use upper case", "应为大写");
            return s_bad_char(err, pos, p, "expected 0-9 or A-Z", "应为数字或大写字母");
        }
        body[pos - 1] = *p;
    }
    body[8] = '\0';
    int pos = 9;
    if (n == 10) {
        if (*p != '-')
            return s_bad_char(err, 9, p, "expected '-' before the check digit", "校验码前应为'-'");
        p++;
        pos = 10;
    }
    if (!((*p >= '0' && *p <= '9') || *p == 'X')) {
        if (*p == 'x')
            return s_bad_char(err, pos, p, "use upper case", "应为大写");
        return s_bad_char(err, pos, p, "expected 0-9 or X", "应为数字或X");
    }
    char want = ident_orgcode_check_char(body);
    if (*p != want)
        return s_bad_check(err, pos, *p, want);
    return s_ok(err);
}

char
ident_idcard_check_char(const char *body)
{
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (body[i] < '0' || body[i] > '9')
            return '\0';
        sum += (body[i] - '0') * s_id_weights[i];
    }
    return s_id_checks[sum % 11];
}

/* GB/T 2260 province-level codes (省级行政区划代码), the first two digits of every
 * region code: 11-15 North, 21-23 North-East, 31-37 East, 41-46 Central-South,
 * 50-54 South-West, 61-65 North-West, 71 Taiwan, 81 Hong Kong, 82 Macao. */
static bool
s_province(int code)
{
    return (code >= 11 && code <= 15) || (code >= 21 && code <= 23) || (code >= 31 && code <= 37) ||
           (code >= 41 && code <= 46) || (code >= 50 && code <= 54) || (code >= 61 && code <= 65) ||
           code == 71 || code == 81 || code == 82;
}

static int
s_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int
ident_idcard_check(const char *id, date_t today, ident_err_t *err)
{
    if (s_count(id) != 18)
        return s_length(err, id, "18");
    const char *p = id;
    for (int pos = 1; pos <= 18; pos++, p += s_char_len(p)) {
        if (*p >= '0' && *p <= '9')
            continue;
        if (pos == 18 && (*p == 'X' || *p == 'x'))
            continue;
        return s_bad_char(err, pos, p, pos == 18 ? "expected a digit or X" : "expected a digit",
                          pos == 18 ? "应为数字或X" : "应为数字");
    }
    /* From here on every character is one ASCII byte. */
    char en[128], zh[128];
    if (!s_province(s_num(id, 2))) {
        snprintf(en, sizeof en, "region code '%.2s' is not a province-level code", id);
        snprintf(zh, sizeof zh, "行政区划代码'%.2s'不是省级代码", id);
        return s_fault(err, IDENT_EREGION, 1, en, zh);
    }
    int y = s_num(id + 6, 4), m = s_num(id + 10, 2), d = s_num(id + 12, 2);
    const char *why_en = NULL, *why_zh = NULL;
    if (!date_valid(y, m, d))
        why_en = "is not a real date", why_zh = "不是有效日期";
    else if (y < 1900)
        why_en = "is before 1900", why_zh = "早于1900年";
    else if (date_from_ymd(y, m, d) > today)
        why_en = "is in the future", why_zh = "晚于当前日期";
    if (why_en) {
        snprintf(en, sizeof en, "birth date '%.8s' %s", id + 6, why_en);
        snprintf(zh, sizeof zh, "出生日期'%.8s'%s", id + 6, why_zh);
        return s_fault(err, IDENT_EDATE, 7, en, zh);
    }
    char want = ident_idcard_check_char(id);
    char got = id[17] == 'x' ? 'X' : id[17];
    if (got != want)
        return s_bad_check(err, 18, id[17], want);
    return s_ok(err);
}

/* Copies in to out keeping the first `keep` characters and writing '*' for the rest;
 * stray bytes and control characters become '*' wherever they are. */
static int
s_mask(const char *in, size_t keep, char *out, size_t outsize)
{
    if (outsize < strlen(in) + 1) {
        if (outsize > 0)
            out[0] = '\0';
        return -1;
    }
    size_t o = 0, i = 0;
    for (const char *p = in; *p; i++) {
        uint32_t cp;
        int n = s_utf8_seq((const unsigned char *)p, &cp);
        bool printable = n > 0 && cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0);
        if (i < keep && printable) {
            memcpy(out + o, p, (size_t)n);
            o += (size_t)n;
        } else {
            out[o++] = '*';
        }
        p += n > 0 ? n : 1;
    }
    out[o] = '\0';
    return 0;
}

int
ident_mask_idno(const char *id, char *out, size_t outsize)
{
    /* Six characters or fewer is not an ID number: keeping 6 would publish it whole. */
    return s_mask(id, s_count(id) > 6 ? 6 : 0, out, outsize);
}

int
ident_mask_name(const char *name, char *out, size_t outsize)
{
    return s_mask(name, 1, out, outsize);
}
