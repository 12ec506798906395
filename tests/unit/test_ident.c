/* ident: check digits of the USCC (GB 32100), organisation code (GB 11714) and citizen ID
 * number (GB 11643), with reasons naming the position; masking for publication.
 *
 * The valid codes below were checked by hand with a separate script, not with this
 * module: 91350100M000100Y43 (GB 32100's own example), 914403001922038216,
 * 91110000802100433B; D2143569-X (GB 11714's example); 11010519491231002X (GB 11643's
 * example). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"
#include "ident.h"

static const char *const s_uscc_valid[] = {
    "91350100M000100Y43",
    "914403001922038216",
    "91110000802100433B",
    "121000004000003980",
    /* DESIGN.md's example agency, 11620200013926143X, with its correct check character. */
    "11620200013926143G",
};

static const char *const s_org_valid[] = {"D2143569-X", "D2143569X", "19220382-1", "802100433",
                                          "00013926-4"};

static const char *const s_id_valid[] = {
    "11010519491231002X", "11010519491231002x",
    "620202198001011234", "810000200002294565", /* Hong Kong code, born on a leap day */
    "54010219850515003X", "650102190001011238", /* born 1900-01-01, the earliest accepted */
};

static date_t s_today; /* 2025-06-30, fixed so the tests do not age */

static int
s_setup(void **state)
{
    (void)state;
    s_today = date_from_ymd(2025, 6, 30);
    return 0;
}

/* Asserts a failure of the given kind and position, and that both messages contain the
 * expected text. */
static void
s_assert_fault(int rc, const ident_err_t *e, ident_kind_t kind, int pos, const char *en,
               const char *zh)
{
    assert_int_equal(rc, -1);
    if (e->kind != kind || e->pos != pos || !strstr(e->en, en) || !strstr(e->zh, zh))
        fail_msg("want %s@%d \"%s\" / \"%s\", got %s@%d \"%s\" / \"%s\"", ident_kind_name(kind),
                 pos, en, zh, ident_kind_name(e->kind), e->pos, e->en, e->zh);
}

static void
test_uscc_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_uscc_valid / sizeof s_uscc_valid[0]; i++) {
        ident_err_t e = {.kind = IDENT_ECHECK, .en = "x", .zh = "x"};
        if (ident_uscc_check(s_uscc_valid[i], &e) != 0)
            fail_msg("%s: %s", s_uscc_valid[i], e.en);
        assert_int_equal(e.kind, IDENT_OK);
        assert_string_equal(e.en, "");
        assert_string_equal(e.zh, "");
        assert_int_equal(ident_uscc_check_char(s_uscc_valid[i]), s_uscc_valid[i][17]);
        assert_int_equal(ident_uscc_check(s_uscc_valid[i], NULL), 0);
    }
}

/* Changing any one character to any other of the charset is caught by the check. */
static void
test_uscc_every_single_substitution_fails(void **state)
{
    (void)state;
    static const char cs[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    for (size_t i = 0; i < sizeof s_uscc_valid / sizeof s_uscc_valid[0]; i++) {
        for (int pos = 0; pos < 18; pos++) {
            for (const char *c = cs; *c; c++) {
                char code[19];
                memcpy(code, s_uscc_valid[i], 19);
                if (code[pos] == *c)
                    continue;
                code[pos] = *c;
                ident_err_t e;
                assert_int_equal(ident_uscc_check(code, &e), -1);
                assert_int_equal(e.kind, IDENT_ECHECK);
                assert_int_equal(e.pos, 18);
            }
        }
    }
}

static void
test_uscc_faults(void **state)
{
    (void)state;
    ident_err_t e;
    s_assert_fault(ident_uscc_check("11620200013926143X", &e), &e, IDENT_ECHECK, 18,
                   "check digit is 'X', expected 'G'", "校验码应为'G'，实为'X'");
    s_assert_fault(ident_uscc_check("1162I200013926143G", &e), &e, IDENT_ECHAR, 5,
                   "character 5 'I' is not allowed", "第5位字符'I'不合法");
    assert_string_equal(e.en, "character 5 'I' is not allowed");
    assert_string_equal(e.zh, "第5位字符'I'不合法");
    for (const char *bad = "IOSVZ"; *bad; bad++) {
        char code[] = "91350100M000100Y43";
        code[2] = *bad;
        s_assert_fault(ident_uscc_check(code, &e), &e, IDENT_ECHAR, 3, "is not allowed", "");
    }
    s_assert_fault(ident_uscc_check("91350100m000100Y43", &e), &e, IDENT_ECHAR, 9,
                   "character 9 'm' is not allowed (use upper case)", "应为大写");
    s_assert_fault(ident_uscc_check("91110000802100433b", &e), &e, IDENT_ECHAR, 18,
                   "character 18 'b'", "第18位字符'b'不合法（应为大写）");
    s_assert_fault(ident_uscc_check("9135-100M000100Y43", &e), &e, IDENT_ECHAR, 5, "'-'", "");
    s_assert_fault(ident_uscc_check("", &e), &e, IDENT_ELENGTH, 0,
                   "is empty, expected 18 characters", "为空，应为18位");
    s_assert_fault(ident_uscc_check("91350100M000100Y4", &e), &e, IDENT_ELENGTH, 0,
                   "length is 17, expected 18", "长度应为18位，实为17位");
    s_assert_fault(ident_uscc_check("91350100M000100Y433", &e), &e, IDENT_ELENGTH, 0,
                   "length is 19", "实为19位");
    /* Non-ASCII: counted and placed by character, named by code point or byte. */
    s_assert_fault(ident_uscc_check("9135０100M000100Y43", &e), &e, IDENT_ECHAR, 5,
                   "character 5 U+FF10 is not allowed", "第5位字符U+FF10不合法");
    s_assert_fault(ident_uscc_check("913\xff"
                                    "0100M000100Y43",
                                    &e),
                   &e, IDENT_ECHAR, 4, "character 4 (byte 0xFF) is not allowed", "（字节0xFF）");
    s_assert_fault(ident_uscc_check("91350100M000100Y4 ", &e), &e, IDENT_ECHAR, 18,
                   "character 18 U+0020", "");
}

static void
test_orgcode_valid_and_substitutions(void **state)
{
    (void)state;
    ident_err_t e;
    for (size_t i = 0; i < sizeof s_org_valid / sizeof s_org_valid[0]; i++) {
        if (ident_orgcode_check(s_org_valid[i], &e) != 0)
            fail_msg("%s: %s", s_org_valid[i], e.en);
        assert_int_equal(e.kind, IDENT_OK);
        /* Any digit changed to another digit is caught (the weights are prime to 11). */
        size_t len = strlen(s_org_valid[i]);
        for (size_t pos = 0; pos < len; pos++) {
            if (s_org_valid[i][pos] < '0' || s_org_valid[i][pos] > '9')
                continue;
            for (char c = '0'; c <= '9'; c++) {
                char code[11];
                memcpy(code, s_org_valid[i], len + 1);
                if (code[pos] == c)
                    continue;
                code[pos] = c;
                assert_int_equal(ident_orgcode_check(code, &e), -1);
                assert_int_equal(e.kind, IDENT_ECHECK);
                assert_int_equal(e.pos, (int)len);
            }
        }
    }
    assert_int_equal(ident_orgcode_check_char("D2143569"), 'X');
    assert_int_equal(ident_orgcode_check_char("D214356"), '\0');
}

static void
test_orgcode_faults(void **state)
{
    (void)state;
    ident_err_t e;
    s_assert_fault(ident_orgcode_check("D2143569-1", &e), &e, IDENT_ECHECK, 10,
                   "check digit is '1', expected 'X'", "校验码应为'X'，实为'1'");
    s_assert_fault(ident_orgcode_check("D21435691", &e), &e, IDENT_ECHECK, 9,
                   "check digit is '1', expected 'X'", "");
    s_assert_fault(ident_orgcode_check("D2143569-Y", &e), &e, IDENT_ECHAR, 10,
                   "character 10 'Y' is not allowed (expected 0-9 or X)", "应为数字或X");
    s_assert_fault(ident_orgcode_check("D2143569-x", &e), &e, IDENT_ECHAR, 10, "use upper case",
                   "应为大写");
    s_assert_fault(ident_orgcode_check("D2143569_X", &e), &e, IDENT_ECHAR, 9,
                   "character 9 '_' is not allowed (expected '-' before the check digit)",
                   "校验码前应为'-'");
    s_assert_fault(ident_orgcode_check("d2143569-X", &e), &e, IDENT_ECHAR, 1, "'d'", "应为大写");
    s_assert_fault(ident_orgcode_check("D21#3569-X", &e), &e, IDENT_ECHAR, 4,
                   "character 4 '#' is not allowed (expected 0-9 or A-Z)", "应为数字或大写字母");
    s_assert_fault(ident_orgcode_check("D2143569", &e), &e, IDENT_ELENGTH, 0,
                   "length is 8, expected 9 (or 10 as XXXXXXXX-X)", "实为8位");
    s_assert_fault(ident_orgcode_check("D2143569--X", &e), &e, IDENT_ELENGTH, 0, "length is 11",
                   "");
}

static void
test_idcard_valid_and_substitutions(void **state)
{
    (void)state;
    ident_err_t e;
    for (size_t i = 0; i < sizeof s_id_valid / sizeof s_id_valid[0]; i++) {
        if (ident_idcard_check(s_id_valid[i], s_today, &e) != 0)
            fail_msg("%s: %s", s_id_valid[i], e.en);
        assert_int_equal(e.kind, IDENT_OK);
        /* Any digit changed is caught, by the check or, earlier, by region or date. */
        for (int pos = 0; pos < 17; pos++) {
            for (char c = '0'; c <= '9'; c++) {
                char id[19];
                memcpy(id, s_id_valid[i], 19);
                if (id[pos] == c)
                    continue;
                id[pos] = c;
                assert_int_equal(ident_idcard_check(id, s_today, &e), -1);
                assert_true(e.kind == IDENT_ECHECK || e.kind == IDENT_EREGION ||
                            e.kind == IDENT_EDATE);
            }
        }
    }
    assert_int_equal(ident_idcard_check_char("11010519491231002"), 'X');
    assert_int_equal(ident_idcard_check_char("1101051949123100A"), '\0');
}

static void
test_idcard_faults(void **state)
{
    (void)state;
    ident_err_t e;
    s_assert_fault(ident_idcard_check("110105194912310021", s_today, &e), &e, IDENT_ECHECK, 18,
                   "check digit is '1', expected 'X'", "校验码应为'X'，实为'1'");
    s_assert_fault(ident_idcard_check("990105194912310023", s_today, &e), &e, IDENT_EREGION, 1,
                   "region code '99' is not a province-level code", "行政区划代码'99'");
    s_assert_fault(ident_idcard_check("160105194912310023", s_today, &e), &e, IDENT_EREGION, 1,
                   "'16'", "");
    /* GB 11643's second example has a good check digit but a birth year of 1880. */
    s_assert_fault(ident_idcard_check("440524188001010014", s_today, &e), &e, IDENT_EDATE, 7,
                   "birth date '18800101' is before 1900", "出生日期'18800101'早于1900年");
    s_assert_fault(ident_idcard_check("350203199902300012", s_today, &e), &e, IDENT_EDATE, 7,
                   "birth date '19990230' is not a real date", "出生日期'19990230'不是有效日期");
    s_assert_fault(ident_idcard_check("310104209912310011", s_today, &e), &e, IDENT_EDATE, 7,
                   "birth date '20991231' is in the future", "晚于当前日期");
    /* The same number is fine once that day has come; born today is fine. */
    assert_int_equal(ident_idcard_check("310104209912310011", date_from_ymd(2099, 12, 31), &e), 0);
    s_assert_fault(ident_idcard_check("310104209912310011", date_from_ymd(2099, 12, 30), &e), &e,
                   IDENT_EDATE, 7, "future", "");
    s_assert_fault(ident_idcard_check("11010519491231002A", s_today, &e), &e, IDENT_ECHAR, 18,
                   "character 18 'A' is not allowed (expected a digit or X)", "应为数字或X");
    s_assert_fault(ident_idcard_check("1101051949I231002X", s_today, &e), &e, IDENT_ECHAR, 11,
                   "character 11 'I' is not allowed (expected a digit)", "第11位字符'I'不合法");
    s_assert_fault(ident_idcard_check("X1010519491231002X", s_today, &e), &e, IDENT_ECHAR, 1,
                   "character 1 'X'", "");
    /* First-generation 15-digit numbers are refused. */
    s_assert_fault(ident_idcard_check("110105491231002", s_today, &e), &e, IDENT_ELENGTH, 0,
                   "length is 15, expected 18", "长度应为18位，实为15位");
    s_assert_fault(ident_idcard_check("１１０１０５１９４９１２３１００２Ｘ", s_today, &e), &e,
                   IDENT_ECHAR, 1, "character 1 U+FF11", "");
}

static void
test_mask_idno(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(ident_mask_idno("11010519491231002X", out, sizeof out), 0);
    assert_string_equal(out, "110105************");
    assert_int_equal(ident_mask_idno("D2143569-X", out, sizeof out), 0);
    assert_string_equal(out, "D21435****");
    assert_int_equal(ident_mask_idno("1234567", out, sizeof out), 0);
    assert_string_equal(out, "123456*");
    /* Six characters or fewer: not an ID number, masked entirely. */
    assert_int_equal(ident_mask_idno("123456", out, sizeof out), 0);
    assert_string_equal(out, "******");
    assert_int_equal(ident_mask_idno("12", out, sizeof out), 0);
    assert_string_equal(out, "**");
    assert_int_equal(ident_mask_idno("", out, sizeof out), 0);
    assert_string_equal(out, "");
    /* Characters, not bytes; stray bytes and control characters never pass. */
    assert_int_equal(ident_mask_idno("１１０１０５１９", out, sizeof out), 0);
    assert_string_equal(out, "１１０１０５**");
    assert_int_equal(ident_mask_idno("11\xff"
                                     "0\n0519",
                                     out, sizeof out),
                     0);
    assert_string_equal(out, "11*0*0***");
    /* Too small a buffer: refused, out emptied. */
    assert_int_equal(ident_mask_idno("11010519491231002X", out, 18), -1);
    assert_string_equal(out, "");
    assert_int_equal(ident_mask_idno("11010519491231002X", out, 19), 0);
    assert_int_equal(ident_mask_idno("x", NULL, 0), -1);
}

static void
test_mask_name(void **state)
{
    (void)state;
    char out[64];
    static const char *const cases[][2] = {
        {"张三丰", "张**"},         {"张三", "张*"},    {"欧阳娜娜", "欧***"},
        {"买买提·艾力", "买*****"}, {"张", "张"},       {"", ""},
        {"Li Lei", "L*****"},       {"😀三", "😀*"},      {"\xe5\xbc", "**"}, /* truncated 张 */
        {"\x01张三", "***"},        {"\xc0\xaf", "**"},                     /* overlong '/' */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(ident_mask_name(cases[i][0], out, sizeof out), 0);
        if (strcmp(out, cases[i][1]) != 0)
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i][1], out);
    }
    assert_int_equal(ident_mask_name("张三丰", out, 5), -1);
    assert_string_equal(out, "");
}

/* A valid UTF-8, NUL-terminated message that fits its buffer. */
static void
s_assert_clean(const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    assert_true(n < size);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80                 ? 1
                  : c >= 0xc2 && c <= 0xdf ? 2
                  : c >= 0xe0 && c <= 0xef ? 3
                  : c >= 0xf0 && c <= 0xf4 ? 4
                                           : 0;
        assert_true(len > 0 && (len > 1 || c >= 0x20));
        for (int k = 1; k < len; k++)
            assert_int_equal((unsigned char)s[i + (size_t)k] & 0xc0, 0x80);
        i += (size_t)len;
    }
}

/* Any bytes, any length: no crash, a verdict, clean messages, positions in range. */
static void
test_garbage_never_crashes(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    char in[64], out[64];
    for (int round = 0; round < 200000; round++) {
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        size_t want = (seed >> 16) % 24;
        /* Biased towards the characters the codes use, with high bytes mixed in. */
        static const char pool[] = "0123456789ABCDEFGHJKLMNPQRTUWXYXxIO-\xe5\xbc\xa0\xff\x80 ";
        while (len < want) {
            seed = seed * 1103515245u + 12345u;
            in[len++] = pool[(seed >> 16) % (sizeof pool - 1)];
        }
        in[len] = '\0';
        ident_err_t e;
        int rc = ident_uscc_check(in, &e);
        assert_true(rc == 0 || (rc == -1 && e.kind != IDENT_OK && e.pos >= 0 && e.pos <= 18));
        s_assert_clean(e.en, sizeof e.en);
        s_assert_clean(e.zh, sizeof e.zh);
        rc = ident_orgcode_check(in, &e);
        assert_true(rc == 0 || (rc == -1 && e.pos >= 0 && e.pos <= 10));
        s_assert_clean(e.en, sizeof e.en);
        s_assert_clean(e.zh, sizeof e.zh);
        rc = ident_idcard_check(in, s_today, &e);
        assert_true(rc == 0 || (rc == -1 && e.pos >= 0 && e.pos <= 18));
        s_assert_clean(e.en, sizeof e.en);
        s_assert_clean(e.zh, sizeof e.zh);
        assert_int_equal(ident_mask_idno(in, out, sizeof out), 0);
        assert_true(strlen(out) <= len);
        s_assert_clean(out, sizeof out);
        assert_int_equal(ident_mask_name(in, out, sizeof out), 0);
        assert_true(strlen(out) <= len);
        s_assert_clean(out, sizeof out);
    }
    /* A megabyte of input is a length fault, not a crash. */
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, '9', big);
    huge[big] = '\0';
    ident_err_t e;
    s_assert_fault(ident_uscc_check(huge, &e), &e, IDENT_ELENGTH, 0, "length is 1048576", "");
    free(huge);
    assert_string_equal(ident_kind_name(IDENT_ECHECK), "check digit");
    assert_string_equal(ident_kind_name((ident_kind_t)99), "unknown");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uscc_valid),
        cmocka_unit_test(test_uscc_every_single_substitution_fails),
        cmocka_unit_test(test_uscc_faults),
        cmocka_unit_test(test_orgcode_valid_and_substitutions),
        cmocka_unit_test(test_orgcode_faults),
        cmocka_unit_test(test_idcard_valid_and_substitutions),
        cmocka_unit_test(test_idcard_faults),
        cmocka_unit_test(test_mask_idno),
        cmocka_unit_test(test_mask_name),
        cmocka_unit_test(test_garbage_never_crashes),
    };
    return cmocka_run_group_tests_name("ident", tests, s_setup, NULL);
}
