/* workday: the official working-day calendar, counted as procedural law counts periods,
 * with weekends only (and a flag) beyond the covered years, and a replaceable data file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "date.h"
#include "tsupport.h"
#include "workday.h"

static date_t
D(const char *s)
{
    date_t d;
    if (date_parse(s, strlen(s), &d, NULL) != 0)
        fail_msg("bad date in test: %s", s);
    return d;
}

static void
assert_date(date_t got, const char *want)
{
    char buf[11];
    assert_string_equal(date_format(got, buf), want);
}

static int
s_setup(void **state)
{
    char err[512];
    workday_t *cal = workday_load(ts_env("SX_CALENDAR"), err, sizeof err);
    if (!cal)
        fail_msg("%s", err);
    *state = cal;
    return 0;
}

static int
s_teardown(void **state)
{
    workday_t *cal = *state;
    workday_destroy(&cal);
    assert_null(cal);
    workday_destroy(&cal); /* idempotent */
    workday_destroy(NULL);
    return 0;
}

/* The answer of workday_add, asserting it succeeded and what the flag said. */
static date_t
s_add(const workday_t *cal, const char *start, int n, bool want_uncovered)
{
    date_t out = -1;
    bool unc = !want_uncovered;
    assert_int_equal(workday_add(cal, D(start), n, &out, &unc), 0);
    assert_int_equal(unc, want_uncovered);
    return out;
}

static void
test_covered_years_are_the_keys(void **state)
{
    workday_t *cal = *state;
    int first, last;
    workday_years(cal, &first, &last);
    assert_int_equal(first, 2019);
    assert_int_equal(last, 2026);
    for (int y = 2019; y <= 2026; y++)
        assert_true(workday_covers_year(cal, y));
    assert_false(workday_covers_year(cal, 2018));
    assert_false(workday_covers_year(cal, 2027));
}

/* DESIGN.md's check: the National Day week of 2019, with the Sunday before (09-29) and the
 * Saturday after (10-12) worked. */
static void
test_design_example_2019_09_27_plus_7(void **state)
{
    workday_t *cal = *state;
    assert_date(s_add(cal, "2019-09-27", 7, false), "2019-10-12");
    int n = -1;
    bool unc = true;
    assert_int_equal(workday_between(cal, D("2019-09-27"), D("2019-10-12"), &n, &unc), 0);
    assert_int_equal(n, 7);
    assert_false(unc);
    /* The start day is not counted (期间开始之日不计算在内): from a Thursday, +1 is Friday. */
    assert_date(s_add(cal, "2019-09-26", 1, false), "2019-09-27");
}

static void
test_adjusted_weekend_workdays_count(void **state)
{
    workday_t *cal = *state;
    bool unc = true;
    assert_int_equal(date_weekday(D("2019-09-29")), 7);
    assert_true(workday_is(cal, D("2019-09-29"), &unc)); /* Sunday, 调休上班 */
    assert_false(unc);
    assert_true(workday_is(cal, D("2019-10-12"), NULL));  /* Saturday, 调休上班 */
    assert_false(workday_is(cal, D("2019-09-28"), NULL)); /* an ordinary Saturday */
    /* From Friday 09-27, the first working day is that Sunday. */
    assert_date(s_add(cal, "2019-09-27", 1, false), "2019-09-29");
}

static void
test_weekday_holidays_do_not_count(void **state)
{
    workday_t *cal = *state;
    assert_int_equal(date_weekday(D("2019-10-01")), 2);
    assert_false(workday_is(cal, D("2019-10-01"), NULL)); /* Tuesday, National Day */
    assert_false(workday_is(cal, D("2019-10-07"), NULL));
    assert_date(s_add(cal, "2019-09-30", 1, false), "2019-10-08");
    /* Spring Festival 2024: 02-10..02-17 off, Sunday 02-04 and 02-18 worked. */
    assert_date(s_add(cal, "2024-02-08", 1, false), "2024-02-09");
    assert_date(s_add(cal, "2024-02-09", 1, false), "2024-02-18");
}

static void
test_period_spanning_new_year(void **state)
{
    workday_t *cal = *state;
    /* 2019-12-31 Tue (1), 2020-01-01 holiday, 01-02 (2), 01-03 (3). */
    assert_date(s_add(cal, "2019-12-30", 3, false), "2020-01-03");
    /* 2022-12-31 .. 2023-01-02 off (New Year 2023 taken across the year boundary). */
    assert_date(s_add(cal, "2022-12-30", 1, false), "2023-01-03");
    int n;
    assert_int_equal(workday_between(cal, D("2022-12-29"), D("2023-01-04"), &n, NULL), 0);
    assert_int_equal(n, 3); /* 12-30, 01-03, 01-04 */
}

/* One hand-checked case a year (State Council notices), and the year's total, counted
 * independently from the data file with a Python script. */
static void
test_each_year_spot_checked(void **state)
{
    workday_t *cal = *state;
    static const struct {
        int year, workdays;
        const char *start;
        int n;
        const char *due;
    } cases[] = {
        /* 2019-02-02/03 worked; 02-04..02-10 off. */
        {2019, 250, "2019-02-01", 3, "2019-02-11"},
        /* 2020: Spring Festival extended to 02-02 (国办发明电〔2020〕1号); 01-19 worked. */
        {2020, 249, "2020-01-17", 2, "2020-01-20"},
        /* 2021: 02-07 (Sun) worked, 02-11..02-17 off, 02-20 (Sat) worked. */
        {2021, 250, "2021-02-10", 2, "2021-02-19"},
        /* 2022: Labour Day 04-30..05-04, 04-24 (Sun) and 05-07 (Sat) worked. */
        {2022, 249, "2022-04-29", 2, "2022-05-06"},
        /* 2023: Mid-Autumn + National Day 09-29..10-06, 10-07/08 worked. */
        {2023, 249, "2023-09-28", 2, "2023-10-08"},
        /* 2024: 09-14 (Sat) worked, 09-15..09-17 off. */
        {2024, 251, "2024-09-13", 2, "2024-09-18"},
        /* 2025: Spring Festival 01-28..02-04, 01-26 (Sun) and 02-08 (Sat) worked. */
        {2025, 248, "2025-01-24", 3, "2025-02-05"},
        /* 2026: New Year 01-01..01-03, 01-04 (Sun) worked. */
        {2026, 248, "2025-12-31", 1, "2026-01-04"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_date(s_add(cal, cases[i].start, cases[i].n, false), cases[i].due);
        int n;
        date_t jan1 = date_from_ymd(cases[i].year, 1, 1);
        assert_int_equal(
            workday_between(cal, jan1 - 1, date_from_ymd(cases[i].year, 12, 31), &n, NULL), 0);
        assert_int_equal(n, cases[i].workdays);
    }
}

/* Every date listed in the data file is answered as listed. */
static void
test_every_listed_date_answered_as_listed(void **state)
{
    workday_t *cal = *state;
    json_error_t jerr;
    json_t *root = json_load_file(ts_env("SX_CALENDAR"), 0, &jerr);
    assert_non_null(root);
    const char *year;
    json_t *v;
    int seen = 0;
    json_object_foreach(root, year, v)
    {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(v, "holidays"), i, e)
        {
            assert_false(workday_is(cal, D(json_string_value(e)), NULL));
            seen++;
        }
        json_array_foreach(json_object_get(v, "workdays"), i, e)
        {
            assert_true(workday_is(cal, D(json_string_value(e)), NULL));
            seen++;
        }
    }
    assert_true(seen > 200);
    json_decref(root);
}

static void
test_outside_covered_years_weekends_only_and_flagged(void **state)
{
    workday_t *cal = *state;
    bool unc = false;
    /* 2027-01-01 is a Friday: New Year's Day in fact, but the calendar doesn't know. */
    assert_true(workday_is(cal, D("2027-01-01"), &unc));
    assert_true(unc);
    unc = false;
    assert_false(workday_is(cal, D("2027-01-02"), &unc)); /* Saturday */
    assert_true(unc);
    /* 2018-12-29 was a Saturday worked (调休), 2018-12-31 a Monday off: unknown here. */
    assert_false(workday_is(cal, D("2018-12-29"), &unc));
    assert_true(unc);
    assert_true(workday_is(cal, D("2018-12-31"), &unc));
    assert_true(unc);
    /* Inside: not set. */
    unc = true;
    workday_is(cal, D("2026-12-31"), &unc);
    assert_false(unc);

    /* A walk that reaches 2027 is flagged; one that merely starts next to it is not. */
    assert_date(s_add(cal, "2026-12-30", 2, true), "2027-01-01");
    assert_date(s_add(cal, "2026-12-30", 1, false), "2026-12-31");
    /* Starting in 2018 but looking only at 2019 days: the answer is sound, no flag. */
    assert_date(s_add(cal, "2018-12-31", 1, false), "2019-01-02");
    assert_date(s_add(cal, "2019-01-02", -1, true), "2018-12-31");
    /* Entirely outside: Monday to Friday. */
    assert_date(s_add(cal, "2030-05-03", 1, true), "2030-05-06");
    int n;
    assert_int_equal(workday_between(cal, D("2026-12-25"), D("2027-01-08"), &n, &unc), 0);
    assert_true(unc);
    assert_int_equal(n, 10);
    assert_int_equal(workday_between(cal, D("2026-12-25"), D("2026-12-31"), &n, &unc), 0);
    assert_false(unc);
}

static void
test_zero_negative_and_round_trip(void **state)
{
    workday_t *cal = *state;
    /* n = 0 is the start itself, even on a rest day. */
    assert_date(s_add(cal, "2019-10-01", 0, false), "2019-10-01");
    /* Counting back from 2019-10-12: 10-11, 10-10, 10-09, 10-08, 09-30, 09-29, 09-27. */
    assert_date(s_add(cal, "2019-10-12", -7, false), "2019-09-27");
    assert_date(s_add(cal, "2019-10-08", -1, false), "2019-09-30");
    int n;
    assert_int_equal(workday_between(cal, D("2019-10-12"), D("2019-09-27"), &n, NULL), 0);
    assert_int_equal(n, -7);
    assert_int_equal(workday_between(cal, D("2019-10-03"), D("2019-10-03"), &n, NULL), 0);
    assert_int_equal(n, 0);

    /* between(a, add(a, n)) == n, for every start across the data and beyond it. */
    for (date_t a = D("2018-12-01"); a <= D("2027-01-31"); a += 3) {
        for (int k = -25; k <= 25; k += 4) {
            date_t b;
            assert_int_equal(workday_add(cal, a, k, &b, NULL), 0);
            assert_int_equal(workday_between(cal, a, b, &n, NULL), 0);
            assert_int_equal(n, k);
            assert_true(k == 0 || workday_is(cal, b, NULL));
        }
    }
}

static void
test_limits_refused_output_untouched(void **state)
{
    workday_t *cal = *state;
    date_t out = 12345;
    int n = 777;
    bool unc = true;
    assert_int_equal(workday_add(cal, D("2019-01-01"), WORKDAY_MAX_SPAN + 1, &out, &unc), -1);
    assert_int_equal(out, 12345);
    assert_false(unc);
    assert_int_equal(workday_add(cal, D("2019-01-01"), -2147483647 - 1, &out, NULL), -1);
    /* 36525 working days need ~51000 calendar days: more than the span allowed. */
    assert_int_equal(workday_add(cal, D("2019-01-01"), WORKDAY_MAX_SPAN, &out, NULL), -1);
    assert_int_equal(out, 12345);
    /* ~100 years of working days fit. */
    assert_int_equal(workday_add(cal, D("2019-01-01"), 25000, &out, NULL), 0);
    /* Beyond year 9999 or before year 1. */
    assert_int_equal(workday_add(cal, D("9999-12-31"), 1, &out, NULL), -1);
    assert_int_equal(workday_add(cal, D("0001-01-01"), -1, &out, NULL), -1);
    assert_int_equal(workday_add(cal, 2147483647, 1, &out, NULL), -1);
    assert_int_equal(
        workday_between(cal, D("1900-01-01"), D("1900-01-01") + WORKDAY_MAX_SPAN + 1, &n, NULL),
        -1);
    assert_int_equal(
        workday_between(cal, D("2019-01-01") + WORKDAY_MAX_SPAN + 1, D("2019-01-01"), &n, NULL),
        -1);
    assert_int_equal(workday_between(cal, -2147483647 - 1, 2147483647, &n, NULL), -1);
    assert_int_equal(n, 777);
    assert_int_equal(
        workday_between(cal, D("2000-01-01"), D("2000-01-01") + WORKDAY_MAX_SPAN, &n, NULL), 0);
    /* Far-off days are answered by the weekday rule, without overflow. */
    unc = false;
    assert_int_equal(workday_is(cal, 2147483647, &unc), date_weekday(2147483647) <= 5);
    assert_true(unc);
    assert_int_equal(workday_is(cal, -2147483647 - 1, NULL), date_weekday(-2147483647 - 1) <= 5);
}

/* Each malformed file is refused, the message naming the entry. */
static void
test_malformed_files_refused_naming_the_entry(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"2019\": {\"holidays\": [", "line 1 column 23: invalid JSON: ']' expected"},
        {"", "invalid JSON"},
        {"[]", "expected an object of years"},
        {"{}", "expected an object of years"},
        {"{\"19x9\": {\"holidays\": [], \"workdays\": []}}",
         "year key \"19x9\": expected 4 digits"},
        {"{\"20190\": {\"holidays\": [], \"workdays\": []}}", "year key \"20190\""},
        {"{\"0000\": {\"holidays\": [], \"workdays\": []}}", "year key \"0000\""},
        {"{\"2019\": []}", "2019: expected an object with \"holidays\" and \"workdays\""},
        {"{\"2019\": {\"holidays\": [], \"workdays\": [], \"notes\": []}}",
         "2019: unknown key \"notes\""},
        {"{\"2019\": {\"holidays\": []}}", "2019.workdays: missing"},
        {"{\"2019\": {\"holidays\": {}, \"workdays\": []}}", "2019.holidays: expected an array"},
        {"{\"2019\": {\"holidays\": [\"2019-01-01\", 20190204], \"workdays\": []}}",
         "2019.holidays[1]: expected a \"YYYY-MM-DD\" string"},
        {"{\"2024\": {\"holidays\": [\"2024-01-01\", \"2024-02-10\", \"2024-02-11\", "
         "\"2024-02-30\"], \"workdays\": []}}",
         "2024.holidays[3]: no such date \"2024-02-30\""},
        {"{\"2024\": {\"holidays\": [\"2024-2-10\"], \"workdays\": []}}",
         "2024.holidays[0]: expected YYYY-MM-DD, got \"2024-2-10\""},
        {"{\"2024\": {\"holidays\": [\"2024-01-01\\n\"], \"workdays\": []}}",
         "2024.holidays[0]: expected YYYY-MM-DD, got \"2024-01-01\\x0a\""},
        {"{\"2024\": {\"holidays\": [], \"workdays\": [\"2023-10-07\"]}}",
         "2024.workdays[0]: \"2023-10-07\" is not in 2024"},
        {"{\"2019\": {\"holidays\": [\"2019-10-05\"], \"workdays\": [\"2019-10-05\"]}}",
         "2019.workdays[0]: \"2019-10-05\" is also in 2019.holidays"},
        {"{\"2019\": {\"holidays\": [\"2019-10-01\", \"2019-10-01\"], \"workdays\": []}}",
         "2019.holidays[1]: \"2019-10-01\" is listed twice"},
        {"{\"2019\": {\"holidays\": [], \"workdays\": [\"2019-09-30\"]}}",
         "2019.workdays[0]: \"2019-09-30\" is a weekday"},
        {"{\"2019\": {\"holidays\": [], \"workdays\": []}, \"2019\": {\"holidays\": [], "
         "\"workdays\": []}}",
         "duplicate object key"},
        {"{\"1019\": {\"holidays\": [], \"workdays\": []}, \"2019\": {\"holidays\": [], "
         "\"workdays\": []}}",
         "years 1019 and 2019 are more than 1000 years apart"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], err[512];
        snprintf(name, sizeof name, "bad%zu.json", i);
        char *path = ts_write_tmp(name, cases[i].json);
        workday_t *cal = workday_load(path, err, sizeof err);
        if (cal || !strstr(err, cases[i].want) || strncmp(err, path, strlen(path)) != 0)
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, cal ? "(loaded)" : err);
        free(path);
    }
}

static void
test_unreadable_and_oversized_files_refused(void **state)
{
    (void)state;
    char err[512];
    assert_null(workday_load("/nonexistent/cal.json", err, sizeof err));
    assert_string_equal(err, "/nonexistent/cal.json: cannot open: No such file or directory");
    /* A directory opens but cannot be read. */
    assert_null(workday_load(ts_env("SX_TMP"), err, sizeof err));
    assert_non_null(strstr(err, "cannot read"));

    size_t big = WORKDAY_MAX_FILE + 1;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, ' ', big);
    text[big] = '\0';
    char *path = ts_write_tmp("big.json", text);
    assert_null(workday_load(path, err, sizeof err));
    assert_non_null(strstr(err, "larger than"));
    free(path);
    free(text);

    /* A tiny error buffer is filled and terminated, never overrun; none at all is fine. */
    char small[8];
    assert_null(workday_parse("[]", 2, "x.json", small, sizeof small));
    assert_string_equal(small, "x.json:");
    assert_null(workday_parse("[]", 2, "x.json", NULL, 0));
}

static const char *const s_custom =
    "{\"2019\": {\"holidays\": [\"2019-09-30\"], \"workdays\": []},\n"
    " \"2027\": {\"holidays\": [\"2027-01-01\"], \"workdays\": [\"2027-01-02\"]}}\n";

/* A new file is read at load: no rebuild. Missing years between keys are uncovered. */
static void
test_replaced_file_changes_results(void **state)
{
    workday_t *cal = *state;
    char err[512];
    char *path = ts_write_tmp("calendar.json", s_custom);
    workday_t *mine = workday_load(path, err, sizeof err);
    if (!mine)
        fail_msg("%s", err);
    /* Same question, different calendar: 09-29 not worked here, 09-30 off. */
    date_t due;
    assert_int_equal(workday_add(mine, D("2019-09-27"), 7, &due, NULL), 0);
    assert_date(due, "2019-10-09");
    assert_date(s_add(cal, "2019-09-27", 7, false), "2019-10-12");
    /* 2027 is covered here: New Year's Day off, the Saturday after worked. */
    bool unc = true;
    assert_false(workday_is(mine, D("2027-01-01"), &unc));
    assert_false(unc);
    assert_true(workday_is(mine, D("2027-01-02"), NULL));
    /* 2020..2026 lie between the keys but are not in the file. */
    assert_false(workday_covers_year(mine, 2023));
    assert_true(workday_is(mine, D("2023-01-02"), &unc));
    assert_true(unc);
    workday_destroy(&mine);

    /* The file replaced in place: the next load sees the new content. */
    free(ts_write_tmp("calendar.json",
                      "{\"2019\": {\"holidays\": [], \"workdays\": [\"2019-09-28\"]}}"));
    mine = workday_load(path, err, sizeof err);
    assert_non_null(mine);
    assert_int_equal(workday_add(mine, D("2019-09-27"), 1, &due, NULL), 0);
    assert_date(due, "2019-09-28");
    workday_destroy(&mine);
    free(path);
}

static void
test_load_default_env_then_repository(void **state)
{
    (void)state;
    char err[512];
    const char *saved = getenv("SX_CALENDAR");
    char *keep = saved ? strdup(saved) : NULL;

    char *path = ts_write_tmp("env-calendar.json", s_custom);
    setenv("SX_CALENDAR", path, 1);
    workday_t *cal = workday_load_default(err, sizeof err);
    assert_non_null(cal);
    assert_true(workday_covers_year(cal, 2027));
    workday_destroy(&cal);

    setenv("SX_CALENDAR", "/nonexistent/x.json", 1);
    assert_null(workday_load_default(err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/x.json: cannot open"));

    /* Unset: found above the test binary (build/.../tests/) in the repository. */
    unsetenv("SX_CALENDAR");
    cal = workday_load_default(err, sizeof err);
    if (!cal)
        fail_msg("%s", err);
    assert_true(workday_covers_year(cal, 2019));
    workday_destroy(&cal);

    if (keep)
        setenv("SX_CALENDAR", keep, 1);
    free(keep);
    free(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_covered_years_are_the_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_design_example_2019_09_27_plus_7, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_adjusted_weekend_workdays_count, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_weekday_holidays_do_not_count, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_period_spanning_new_year, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_each_year_spot_checked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_every_listed_date_answered_as_listed, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_outside_covered_years_weekends_only_and_flagged,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_zero_negative_and_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limits_refused_output_untouched, s_setup, s_teardown),
        cmocka_unit_test(test_malformed_files_refused_naming_the_entry),
        cmocka_unit_test(test_unreadable_and_oversized_files_refused),
        cmocka_unit_test_setup_teardown(test_replaced_file_changes_results, s_setup, s_teardown),
        cmocka_unit_test(test_load_default_env_then_repository),
    };
    return cmocka_run_group_tests_name("workday", tests, NULL, NULL);
}
