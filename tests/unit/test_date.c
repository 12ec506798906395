/* date: day numbers, YYYY-MM-DD parsing and formatting, weekdays, China Standard Time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"

static void
test_known_day_numbers(void **state)
{
    (void)state;
    assert_int_equal(date_from_ymd(1970, 1, 1), 0);
    assert_int_equal(date_from_ymd(1969, 12, 31), -1);
    assert_int_equal(date_from_ymd(2000, 3, 1), 11017);
    assert_int_equal(date_from_ymd(2019, 9, 27), 18166);
    assert_int_equal(date_from_ymd(1, 1, 1), -719162);
    assert_int_equal(date_from_ymd(9999, 12, 31), 2932896);
    /* 1900 is not a leap year, 2000 is. */
    assert_int_equal(date_from_ymd(1900, 3, 1) - date_from_ymd(1900, 2, 28), 1);
    assert_int_equal(date_from_ymd(2000, 3, 1) - date_from_ymd(2000, 2, 28), 2);
}

/* Every day of years 1..9999 converts there and back, one day after the other. */
static void
test_round_trip_every_day(void **state)
{
    (void)state;
    int py = 1, pm = 1, pd = 0;
    for (date_t day = date_from_ymd(1, 1, 1); day <= date_from_ymd(9999, 12, 31); day++) {
        int y, m, d;
        date_to_ymd(day, &y, &m, &d);
        assert_true(date_valid(y, m, d));
        assert_int_equal(date_from_ymd(y, m, d), day);
        /* The next calendar day: same month d+1, or the 1st of the next month/year. */
        if (d != pd + 1 || m != pm || y != py) {
            assert_int_equal(d, 1);
            assert_true((m == pm + 1 && y == py) || (m == 1 && pm == 12 && y == py + 1));
        }
        py = y, pm = m, pd = d;
    }
}

static void
test_valid(void **state)
{
    (void)state;
    assert_true(date_valid(2024, 2, 29));
    assert_false(date_valid(2023, 2, 29));
    assert_false(date_valid(1900, 2, 29));
    assert_true(date_valid(2000, 2, 29));
    assert_false(date_valid(2024, 4, 31));
    assert_true(date_valid(2024, 12, 31));
    assert_false(date_valid(2024, 13, 1));
    assert_false(date_valid(2024, 0, 1));
    assert_false(date_valid(2024, 1, 0));
    assert_false(date_valid(0, 1, 1));
    assert_false(date_valid(10000, 1, 1));
    assert_true(date_valid(1, 1, 1));
    assert_true(date_valid(9999, 12, 31));
    assert_false(date_valid(-1, 1, 1));
}

static void
test_parse(void **state)
{
    (void)state;
    date_t d = 42;
    const char *why = NULL;
    assert_int_equal(date_parse("2019-09-27", 10, &d, &why), 0);
    assert_int_equal(d, 18166);
    /* len bounds the text: no terminator needed. */
    assert_int_equal(date_parse("2019-09-27T00:00", 10, &d, NULL), 0);
    assert_int_equal(d, 18166);

    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"2019-02-29", "no such date"},           {"2024-02-30", "no such date"},
        {"0000-01-01", "no such date"},           {"2019-13-01", "no such date"},
        {"2019-00-10", "no such date"},           {"2019-9-27", "expected YYYY-MM-DD"},
        {"2019/09/27", "expected YYYY-MM-DD"},    {"20190927", "expected YYYY-MM-DD"},
        {"2019-09-27 ", "expected YYYY-MM-DD"},   {" 2019-09-2", "expected YYYY-MM-DD"},
        {"+019-09-27", "expected YYYY-MM-DD"},    {"2019--9-27", "expected YYYY-MM-DD"},
        {"2019-0a-27", "expected YYYY-MM-DD"},    {"", "expected YYYY-MM-DD"},
        {"2019-09-2\xff", "expected YYYY-MM-DD"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = 42;
        why = NULL;
        assert_int_equal(date_parse(bad[i].s, strlen(bad[i].s), &d, &why), -1);
        assert_int_equal(d, 42); /* unchanged */
        if (!why || strcmp(why, bad[i].why) != 0)
            fail_msg("\"%s\": want \"%s\", got \"%s\"", bad[i].s, bad[i].why, why ? why : "");
        assert_int_equal(date_parse(bad[i].s, strlen(bad[i].s), &d, NULL), -1);
    }
}

static void
test_format(void **state)
{
    (void)state;
    char buf[11];
    assert_string_equal(date_format(0, buf), "1970-01-01");
    assert_string_equal(date_format(18166, buf), "2019-09-27");
    assert_string_equal(date_format(date_from_ymd(1, 1, 1), buf), "0001-01-01");
    assert_string_equal(date_format(date_from_ymd(9999, 12, 31), buf), "9999-12-31");
    assert_ptr_equal(date_format(0, buf), buf);
    /* parse(format(x)) == x */
    for (date_t day = -800000; day < 3000000; day += 997) {
        int y, m, dd;
        date_to_ymd(day, &y, &m, &dd);
        if (y < 1 || y > 9999)
            continue;
        date_t back;
        assert_int_equal(date_parse(date_format(day, buf), 10, &back, NULL), 0);
        assert_int_equal(back, day);
    }
}

static void
test_weekday(void **state)
{
    (void)state;
    assert_int_equal(date_weekday(0), 4);  /* 1970-01-01 Thursday */
    assert_int_equal(date_weekday(-1), 3); /* Wednesday */
    assert_int_equal(date_weekday(-7), 4);
    assert_int_equal(date_weekday(date_from_ymd(2019, 9, 27)), 5); /* Friday */
    assert_int_equal(date_weekday(date_from_ymd(2019, 9, 29)), 7); /* Sunday */
    assert_int_equal(date_weekday(date_from_ymd(2024, 1, 1)), 1);  /* Monday */
    assert_int_equal(date_weekday(date_from_ymd(1, 1, 1)), 1);     /* proleptic Monday */
    for (date_t d = -1000; d < 1000; d++) {
        int w = date_weekday(d);
        assert_true(w >= 1 && w <= 7);
        assert_int_equal(date_weekday(d + 1), w % 7 + 1);
    }
    /* The extremes of the type do not overflow. */
    int w = date_weekday(INT32_MIN);
    assert_true(w >= 1 && w <= 7);
    w = date_weekday(INT32_MAX);
    assert_true(w >= 1 && w <= 7);
}

static void
test_unix_cst(void **state)
{
    (void)state;
    /* China Standard Time is UTC+8: the day turns at 16:00 UTC. */
    assert_int_equal(date_from_unix_cst(0), 0);
    assert_int_equal(date_from_unix_cst(16 * 3600 - 1), 0);
    assert_int_equal(date_from_unix_cst(16 * 3600), 1);
    assert_int_equal(date_from_unix_cst(-8 * 3600), 0);
    assert_int_equal(date_from_unix_cst(-8 * 3600 - 1), -1);
    assert_int_equal(date_from_unix_cst(-8 * 3600 - 86400), -1);
    assert_int_equal(date_from_unix_cst(-8 * 3600 - 86401), -2);
    /* 2019-09-26T16:00:00Z is 2019-09-27 00:00 in Beijing. */
    assert_int_equal(date_from_unix_cst(1569513600), date_from_ymd(2019, 9, 27));
    assert_int_equal(date_from_unix_cst(1569513599), date_from_ymd(2019, 9, 26));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_day_numbers),
        cmocka_unit_test(test_round_trip_every_day),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_weekday),
        cmocka_unit_test(test_unix_cst),
    };
    return cmocka_run_group_tests_name("date", tests, NULL, NULL);
}
