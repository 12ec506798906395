/* query: the portal's parameters, good and hostile. Pure: no servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/publication/query.h"

/* Parses "k=v&k=v" (no unescaping; "\x" escapes in C strings give raw bytes). */
static int
s_parse(const char *qs, size_t len, query_search_t *out, query_err_t *err)
{
    query_kv_t kv[QUERY_PARAMS_MAX + 4];
    size_t n = 0;
    for (size_t i = 0; i < len && n < sizeof kv / sizeof kv[0];) {
        size_t j = i;
        while (j < len && qs[j] != '&')
            j++;
        const char *eq = memchr(qs + i, '=', j - i);
        kv[n++] =
            eq ? (query_kv_t){qs + i, (size_t)(eq - qs - i), eq + 1, (size_t)(qs + j - eq - 1)}
               : (query_kv_t){qs + i, j - i, NULL, 0};
        i = j + 1;
    }
    return query_search(kv, n, out, err);
}

static void
s_bad(const char *qs, const char *param)
{
    query_search_t q;
    query_err_t e;
    if (s_parse(qs, strlen(qs), &q, &e) == 0)
        fail_msg("accepted: %s", qs);
    assert_string_equal(e.param, param);
    assert_true(e.reason[0] != '\0');
}

static void
test_good(void **state)
{
    (void)state;
    query_search_t q;
    query_err_t e;
    const char *qs = "party=嘉峪关某某 (分公司)&agency=11620200013926143G&type=penalty"
                     "&from=2019-01-01&to=2019-12-31&page=3&size=50";
    assert_int_equal(s_parse(qs, strlen(qs), &q, &e), 0);
    assert_string_equal(q.party, "嘉峪关某某 (分公司)");
    assert_string_equal(q.agency, "11620200013926143G");
    assert_string_equal(q.type, "penalty");
    assert_string_equal(q.from, "2019-01-01");
    assert_int_equal(q.page, 3);
    assert_int_equal(q.size, 50);
    assert_int_equal(s_parse("", 0, &q, &e), 0);
    assert_int_equal(q.page, 1);
    assert_int_equal(q.size, QUERY_SIZE_DEFAULT);
}

static void
test_injection_looking(void **state)
{
    (void)state;
    s_bad("party=x' OR '1'='1", "party");
    s_bad("party=a; DROP TABLE record", "party");
    s_bad("party=a--", "party");
    s_bad("party=<script>alert(1)</script>", "party");
    s_bad("party=100%", "party");
    s_bad("party=a\\b", "party");
    s_bad("party=\xef\xbc\x87x", "party"); /* fullwidth apostrophe */
    s_bad("party=   ", "party");
}

static void
test_limits(void **state)
{
    (void)state;
    s_bad("page=0", "page");
    s_bad("page=1001", "page");
    s_bad("page=99999999999999999999", "page");
    s_bad("page=-1", "page");
    s_bad("page=1e3", "page");
    s_bad("size=51", "size");
    s_bad("size=", "size");
    char big[600] = "party=";
    for (int i = 0; i < 101; i++)
        strcat(big, "a");
    s_bad(big, "party");
    s_bad("nosuch=1", "nosuch");
    s_bad("page=1&page=2", "page");
    s_bad("type=fine", "type");
    s_bad("uscc=91620200MA71234560", "uscc"); /* wrong check character */
    s_bad("agency=short", "agency");
}

static void
test_dates(void **state)
{
    (void)state;
    s_bad("from=2019-02-30", "from");
    s_bad("from=2019/01/01", "from");
    s_bad("to=20190101", "to");
    s_bad("from=1800-01-01", "from");
    s_bad("from=2019-05-01&to=2019-04-30", "to");
}

static void
test_bad_utf8_and_nul(void **state)
{
    (void)state;
    s_bad("party=\xff\xfe", "party");
    s_bad("party=\xc0\xaf", "party");     /* overlong '/' */
    s_bad("party=\xed\xa0\x80", "party"); /* surrogate */
    s_bad("type=\xe5\x98", "type");       /* truncated */
    query_search_t q;
    query_err_t e;
    assert_int_equal(s_parse("party=a\0b", 9, &q, &e), -1);
    assert_string_equal(e.param, "party");
    assert_int_equal(query_utf8_chars("张三", 6), 2);
}

static void
test_id(void **state)
{
    (void)state;
    int64_t id;
    query_err_t e;
    assert_int_equal(query_id("42", 2, &id, &e), 0);
    assert_int_equal(id, 42);
    assert_int_equal(query_id("042", 3, &id, &e), -1);
    assert_int_equal(query_id("1;", 2, &id, &e), -1);
    assert_int_equal(query_id("99999999999999999", 17, &id, &e), -1);
    assert_int_equal(query_id("", 0, &id, &e), -1);
    assert_string_equal(e.param, "id");
}

static void
test_officer(void **state)
{
    (void)state;
    char cert[QUERY_CERT_MAX + 1];
    query_err_t e;
    query_kv_t ok[] = {{"cert_no", 7, "甘JYG001", strlen("甘JYG001")}};
    assert_int_equal(query_officer(ok, 1, cert, &e), 0);
    assert_string_equal(cert, "甘JYG001");
    query_kv_t inj[] = {{"cert_no", 7, "A' OR 1=1", 9}};
    assert_int_equal(query_officer(inj, 1, cert, &e), -1);
    assert_string_equal(e.param, "cert_no");
    query_kv_t bad[] = {{"cert_no", 7, "\xff", 1}};
    assert_int_equal(query_officer(bad, 1, cert, &e), -1);
    query_kv_t two[] = {{"cert_no", 7, "A1", 2}, {"x", 1, "1", 1}};
    assert_int_equal(query_officer(two, 2, cert, &e), -1);
    assert_string_equal(e.param, "x");
    assert_int_equal(query_officer(NULL, 0, cert, &e), -1);
    assert_string_equal(e.param, "cert_no");
}

static void
test_stats(void **state)
{
    (void)state;
    query_stats_t q;
    query_err_t e;
    int32_t today = 20000; /* 2024-10-04 */
    query_kv_t h2[] = {
        {"agency", 6, "11620200013926143G", 18}, {"year", 4, "2019", 4}, {"half", 4, "2", 1}};
    assert_int_equal(query_stats(h2, 3, today, &q, &e), 0);
    assert_string_equal(q.from, "2019-07-01");
    assert_string_equal(q.to, "2019-12-31");
    assert_int_equal(query_stats(h2, 2, today, &q, &e), 0);
    assert_string_equal(q.from, "2019-01-01");
    query_kv_t open[] = {{"agency", 6, "11620200013926143G", 18}, {"year", 4, "2024", 4}};
    assert_int_equal(query_stats(open, 2, today, &q, &e), -1);
    assert_string_equal(e.param, "year");
    query_kv_t bad[] = {
        {"agency", 6, "11620200013926143G", 18}, {"year", 4, "2019", 4}, {"half", 4, "3", 1}};
    assert_int_equal(query_stats(bad, 3, today, &q, &e), -1);
    assert_string_equal(e.param, "half");
    assert_int_equal(query_stats(h2 + 1, 1, today, &q, &e), -1);
    assert_string_equal(e.param, "agency");
}

/* The HTML form sends every field; an empty one is not a filter. Anything else is the
 * same validation as the API's. */
static void
test_form(void **state)
{
    (void)state;
    query_search_t q;
    query_err_t e;
    const char form[] = "party=&uscc=&agency=11620200013926143G&type=penalty&from=&to=2019-12-31";
    query_kv_t kv[8];
    size_t n = 0;
    for (const char *p = form; *p && n < 8;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        kv[n++] = (query_kv_t){p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1)};
        p = amp ? amp + 1 : end;
    }
    assert_int_equal(n, 6);
    assert_int_equal(query_search_form(kv, n, &q, &e), 0);
    assert_string_equal(q.party, "");
    assert_string_equal(q.agency, "11620200013926143G");
    assert_string_equal(q.type, "penalty");
    assert_string_equal(q.to, "2019-12-31");
    /* The API refuses the same empty fields. */
    assert_int_equal(query_search(kv, n, &q, &e), -1);
    assert_string_equal(e.param, "party");
    /* An unknown name stays refused even when empty; a bad value still names its field. */
    kv[0] = (query_kv_t){"bogus", 5, "", 0};
    assert_int_equal(query_search_form(kv, n, &q, &e), -1);
    assert_string_equal(e.param, "bogus");
    kv[0] = (query_kv_t){"type", 4, "x", 1};
    kv[3] = (query_kv_t){"party", 5, "", 0};
    assert_int_equal(query_search_form(kv, n, &q, &e), -1);
    assert_string_equal(e.param, "type");
}

/* Every error has a Chinese message naming the field. */
static void
test_zh(void **state)
{
    (void)state;
    query_search_t q;
    query_err_t e;
    assert_int_equal(s_parse("type=x", 6, &q, &e), -1);
    assert_non_null(strstr(e.zh, "执法类别（type）"));
    assert_int_equal(s_parse("from=2019-02-30", 15, &q, &e), -1);
    assert_non_null(strstr(e.zh, "起始日期（from）"));
    assert_non_null(strstr(e.zh, "日期"));
    assert_int_equal(s_parse("page=0", 6, &q, &e), -1);
    assert_non_null(strstr(e.zh, "页码（page）"));
    assert_int_equal(s_parse("from=2019-02-02&to=2019-01-01", 29, &q, &e), -1);
    assert_non_null(strstr(e.zh, "截止日期早于起始日期"));
    assert_int_equal(s_parse("x\x01y=1", 6, &q, &e), -1);
    assert_non_null(strstr(e.zh, "不支持该参数"));
    assert_null(strchr(e.zh, '\x01'));
    char cert[QUERY_CERT_MAX + 1];
    query_kv_t kv = {"cert_no", 7, "a b", 3};
    assert_int_equal(query_officer(&kv, 1, cert, &e), -1);
    assert_non_null(strstr(e.zh, "执法证号（cert_no）"));
    int64_t id;
    assert_int_equal(query_id("01", 2, &id, &e), -1);
    assert_non_null(strstr(e.zh, "决定编号"));
    assert_string_equal(query_param_zh("agency"), "执法机关");
    assert_null(query_param_zh("nope"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_injection_looking),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_bad_utf8_and_nul),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_officer),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_zh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
