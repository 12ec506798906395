/* sxctl through the built binary: what an operator sees on stdout, stderr and in the exit
 * status for the workday and ident verbs, help and usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tsupport.h"

typedef struct {
    int rc;
    char out[8192];
    char err[8192];
} s_result_t;

/* Runs $SX_BIN/sxctl with up to 7 arguments (NULL-terminated list). */
static s_result_t *
s_sxctl(const char *arg, ...)
{
    static s_result_t r;
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    const char *argv[10] = {bin};
    int n = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 9; a = va_arg(ap, const char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    r.rc = ts_run(argv, NULL, r.out, sizeof r.out, r.err, sizeof r.err);
    return &r;
}

static void
s_expect(const s_result_t *r, int rc, const char *out, const char *err_has)
{
    if (r->rc != rc || (out && strcmp(r->out, out) != 0) || (err_has && !strstr(r->err, err_has)) ||
        (!err_has && r->err[0]))
        fail_msg("want rc=%d out=\"%s\" err~\"%s\"; got rc=%d out=\"%s\" err=\"%s\"", rc,
                 out ? out : "*", err_has ? err_has : "", r->rc, r->out, r->err);
}

static void
test_workday_add_design_example(void **state)
{
    (void)state;
    s_expect(s_sxctl("workday", "add", "2019-09-27", "7", NULL), 0, "2019-10-12\n", NULL);
    s_expect(s_sxctl("workday", "add", "2019-10-12", "-7", NULL), 0, "2019-09-27\n", NULL);
    s_expect(s_sxctl("workday", "add", "2019-10-01", "0", NULL), 0, "2019-10-01\n", NULL);
    s_expect(s_sxctl("workday", "between", "2019-09-27", "2019-10-12", NULL), 0, "7\n", NULL);
    s_expect(s_sxctl("workday", "between", "2019-10-12", "2019-09-27", NULL), 0, "-7\n", NULL);
}

static void
test_workday_is(void **state)
{
    (void)state;
    s_expect(s_sxctl("workday", "is", "2019-09-29", NULL), 0, "workday\n", NULL); /* 调休 */
    s_expect(s_sxctl("workday", "is", "2019-10-01", NULL), 0, "rest day\n", NULL);
    s_expect(s_sxctl("workday", "is", "2019-09-28", NULL), 0, "rest day\n", NULL);
    s_expect(s_sxctl("workday", "is", "2019-09-27", NULL), 0, "workday\n", NULL);
}

/* Beyond the calendar: the answer on stdout, a warning on stderr, still exit 0. */
static void
test_workday_uncovered_warns(void **state)
{
    (void)state;
    s_expect(s_sxctl("workday", "is", "2027-01-01", NULL), 0, "workday\n",
             "sxctl workday: warning: the calendar covers 2019-2026");
    s_expect(s_sxctl("workday", "add", "2026-12-30", "2", NULL), 0, "2027-01-01\n", "warning");
    s_expect(s_sxctl("workday", "between", "2018-12-28", "2019-01-04", NULL), 0, "4\n", "warning");
    /* Inside: nothing on stderr. */
    s_expect(s_sxctl("workday", "add", "2026-12-30", "1", NULL), 0, "2026-12-31\n", NULL);
}

static void
test_workday_calendar_option_and_env(void **state)
{
    (void)state;
    char *path = ts_write_tmp("sxctl-cal.json",
                              "{\"2019\": {\"holidays\": [\"2019-09-30\"], \"workdays\": []}}");
    char opt[4200];
    snprintf(opt, sizeof opt, "--calendar=%s", path);
    s_expect(s_sxctl("workday", "--calendar", path, "add", "2019-09-27", "7", NULL), 0,
             "2019-10-09\n", NULL);
    s_expect(s_sxctl("workday", "add", "2019-09-27", "7", opt, NULL), 0, "2019-10-09\n", NULL);
    s_expect(s_sxctl("workday", "is", "2020-01-01", "--calendar", path, NULL), 0, "workday\n",
             "the calendar covers 2019-2019");

    /* SX_CALENDAR, as a service would use it; --calendar wins over it. */
    const char *saved = getenv("SX_CALENDAR");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("SX_CALENDAR", path, 1);
    s_expect(s_sxctl("workday", "add", "2019-09-27", "7", NULL), 0, "2019-10-09\n", NULL);
    if (keep) {
        char opt2[4200];
        snprintf(opt2, sizeof opt2, "--calendar=%s", keep);
        s_expect(s_sxctl("workday", opt2, "add", "2019-09-27", "7", NULL), 0, "2019-10-12\n", NULL);
        setenv("SX_CALENDAR", keep, 1);
    } else {
        unsetenv("SX_CALENDAR");
    }
    free(keep);

    /* A broken calendar: exit 1, naming the file and entry. */
    char *bad = ts_write_tmp("sxctl-bad.json",
                             "{\"2024\": {\"holidays\": [\"2024-02-30\"], \"workdays\": []}}");
    s_expect(s_sxctl("workday", "--calendar", bad, "is", "2024-01-02", NULL), 1, "",
             "2024.holidays[0]: no such date \"2024-02-30\"");
    s_expect(s_sxctl("workday", "--calendar", "/nonexistent.json", "is", "2024-01-02", NULL), 1, "",
             "/nonexistent.json: cannot open");
    free(bad);
    free(path);
}

static void
test_workday_usage_errors(void **state)
{
    (void)state;
    s_expect(s_sxctl("workday", "add", "2019-02-30", "7", NULL), 2, "",
             "sxctl workday: DATE: no such date '2019-02-30'");
    s_expect(s_sxctl("workday", "add", "2019/09/27", "7", NULL), 2, "",
             "DATE: expected a date YYYY-MM-DD, got '2019/09/27'");
    s_expect(s_sxctl("workday", "add", "2019-09-27", "seven", NULL), 2, "",
             "N: expected an integer from -36525 to 36525, got 'seven'");
    s_expect(s_sxctl("workday", "add", "2019-09-27", "99999999999", NULL), 2, "", "N: ");
    s_expect(s_sxctl("workday", "add", "2019-09-27", "7x", NULL), 2, "", "N: ");
    s_expect(s_sxctl("workday", "add", "2019-09-27", "30000", NULL), 2, "",
             "leave the supported range");
    s_expect(s_sxctl("workday", "is", "tomorrow", NULL), 2, "", "DATE: expected a date");
    s_expect(s_sxctl("workday", "between", "2019-01-01", "2019-13-01", NULL), 2, "",
             "B: no such date '2019-13-01'");
    s_expect(s_sxctl("workday", "between", "x", "2019-01-01", NULL), 2, "", "A: expected");
    s_expect(s_sxctl("workday", "between", "1900-01-01", "2019-01-01", NULL), 2, "",
             "more than 36525 days apart");
    s_expect(s_sxctl("workday", "add", "2019-09-27", NULL), 2, "", "usage: add DATE N");
    s_expect(s_sxctl("workday", "is", NULL), 2, "", "usage: is DATE");
    s_expect(s_sxctl("workday", NULL), 2, "", "expected add, is or between");
    s_expect(s_sxctl("workday", "sub", "2019-09-27", "1", NULL), 2, "", "unknown form 'sub'");
    s_expect(s_sxctl("workday", "--verbose", "is", "2019-09-27", NULL), 2, "",
             "unknown option '--verbose'");
    s_expect(s_sxctl("workday", "is", "2019-09-27", "--calendar", NULL), 2, "",
             "--calendar needs a PATH");
    s_expect(s_sxctl("workday", "is", "2019-09-27", NULL), 0, "workday\n", NULL);
    /* Usage errors point at the help. */
    s_expect(s_sxctl("workday", "is", NULL), 2, "", "try 'sxctl workday --help'");
}

static void
test_ident_valid_and_invalid(void **state)
{
    (void)state;
    s_expect(s_sxctl("ident", "uscc", "91350100M000100Y43", NULL), 0, "valid\n", NULL);
    s_expect(s_sxctl("ident", "orgcode", "D2143569-X", NULL), 0, "valid\n", NULL);
    s_expect(s_sxctl("ident", "orgcode", "D2143569X", NULL), 0, "valid\n", NULL);
    s_expect(s_sxctl("ident", "idcard", "11010519491231002X", NULL), 0, "valid\n", NULL);
    s_expect(s_sxctl("ident", "idcard", "11010519491231002x", NULL), 0, "valid\n", NULL);

    s_expect(s_sxctl("ident", "uscc", "11620200013926143X", NULL), 1, "",
             "sxctl ident uscc: invalid: check digit is 'X', expected 'G' "
             "(校验码应为'G'，实为'X')\n");
    s_expect(s_sxctl("ident", "uscc", "1162I200013926143G", NULL), 1, "",
             "invalid: character 5 'I' is not allowed (第5位字符'I'不合法)");
    s_expect(s_sxctl("ident", "uscc", "123", NULL), 1, "", "length is 3, expected 18");
    s_expect(s_sxctl("ident", "orgcode", "D2143569-1", NULL), 1, "",
             "sxctl ident orgcode: invalid: check digit is '1', expected 'X'");
    s_expect(s_sxctl("ident", "idcard", "110105194902301234", NULL), 1, "",
             "birth date '19490230' is not a real date");
    s_expect(s_sxctl("ident", "idcard", "310104209912310011", NULL), 1, "", "in the future");
    s_expect(s_sxctl("ident", "idcard", "990105194912310023", NULL), 1, "", "region code '99'");
    s_expect(s_sxctl("ident", "idcard", "\xff\xfe", NULL), 1, "", "length is 2");
    /* A code that starts with '-' after "--". */
    s_expect(s_sxctl("ident", "uscc", "--", "-1350100M000100Y43", NULL), 1, "", "character 1 '-'");
}

static void
test_ident_mask(void **state)
{
    (void)state;
    s_expect(s_sxctl("ident", "mask-idno", "11010519491231002X", NULL), 0, "110105************\n",
             NULL);
    s_expect(s_sxctl("ident", "mask-name", "张三丰", NULL), 0, "张**\n", NULL);
}

static void
test_ident_usage_errors(void **state)
{
    (void)state;
    s_expect(s_sxctl("ident", NULL), 2, "", "expected uscc, orgcode, idcard");
    s_expect(s_sxctl("ident", "passport", "E12345678", NULL), 2, "", "unknown form 'passport'");
    s_expect(s_sxctl("ident", "uscc", NULL), 2, "", "uscc takes exactly one CODE");
    s_expect(s_sxctl("ident", "uscc", "a", "b", NULL), 2, "", "uscc takes exactly one CODE");
    s_expect(s_sxctl("ident", "uscc", NULL), 2, "", "try 'sxctl ident --help'");
}

static void
test_help(void **state)
{
    (void)state;
    s_result_t *r = s_sxctl("--help", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "usage: sxctl VERB"));
    assert_non_null(strstr(r->out, "  workday "));
    assert_non_null(strstr(r->out, "  ident "));
    r = s_sxctl("help", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "  workday "));

    r = s_sxctl("workday", "--help", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "usage: sxctl workday [--calendar PATH] add DATE N"));
    assert_non_null(strstr(r->out, "between A B"));
    assert_non_null(strstr(r->out, "期间开始之日不计算在内"));
    assert_non_null(strstr(r->out, "exit status"));
    r = s_sxctl("workday", "add", "-h", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "usage: sxctl workday"));
    r = s_sxctl("help", "ident", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "sxctl ident uscc CODE"));
    assert_non_null(strstr(r->out, "sxctl ident idcard NUMBER"));
    assert_non_null(strstr(r->out, "sxctl ident orgcode CODE"));
    r = s_sxctl("ident", "--help", NULL);
    s_expect(r, 0, NULL, NULL);
    assert_non_null(strstr(r->out, "统一社会信用代码"));

    /* No verb, unknown verb: usage errors. */
    r = s_sxctl(NULL);
    s_expect(r, 2, "", "usage: sxctl VERB");
    s_expect(s_sxctl("frobnicate", NULL), 2, "", "sxctl: no verb 'frobnicate'; try 'sxctl --help'");
    s_expect(s_sxctl("help", "frobnicate", NULL), 2, "", "no verb 'frobnicate'");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workday_add_design_example),
        cmocka_unit_test(test_workday_is),
        cmocka_unit_test(test_workday_uncovered_warns),
        cmocka_unit_test(test_workday_calendar_option_and_env),
        cmocka_unit_test(test_workday_usage_errors),
        cmocka_unit_test(test_ident_valid_and_invalid),
        cmocka_unit_test(test_ident_mask),
        cmocka_unit_test(test_ident_usage_errors),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests_name("sxctl", tests, NULL, NULL);
}
