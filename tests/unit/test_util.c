/* util: the error formatter and the clocks every module shares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util.h"

static void
test_errf_formats_truncates_and_tolerates_null(void **state)
{
    (void)state;
    char err[16];
    util_errf(err, sizeof err, "line %d: %s", 7, "duplicate key in the file");
    assert_string_equal(err, "line 7: duplica"); /* truncated, still terminated */
    util_errf(NULL, 10, "ignored %d", 1);        /* a caller that wants no reason */
    char one[1] = {'x'};
    util_errf(one, 0, "nothing written");
    assert_int_equal(one[0], 'x');
    util_errf(one, 1, "only the terminator");
    assert_int_equal(one[0], '\0');
}

static void
test_clocks(void **state)
{
    (void)state;
    int64_t m0 = util_mono_ms();
    util_sleep_ms(30);
    int64_t m1 = util_mono_ms();
    assert_true(m1 - m0 >= 30);
    assert_true(m1 - m0 < 2000);
    util_sleep_ms(0);
    util_sleep_ms(-5); /* nothing, at once */
    /* Unix time in ms agrees with time(2) to the second. */
    int64_t u = util_unix_ms();
    int64_t t = (int64_t)time(NULL);
    assert_true(u / 1000 >= t - 1 && u / 1000 <= t + 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errf_formats_truncates_and_tolerates_null),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
