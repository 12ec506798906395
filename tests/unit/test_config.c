/* config: typed SX_* settings, and errors that name the variable and what was expected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static int
s_setup(void **state)
{
    *state = config_new();
    return *state ? 0 : -1;
}

static int
s_teardown(void **state)
{
    config_t *cfg = *state;
    config_destroy(&cfg);
    assert_null(cfg);
    config_destroy(&cfg); /* idempotent */
    unsetenv("SX_T_A");
    unsetenv("SX_T_B");
    return 0;
}

static void
test_defaults_when_unset_or_empty(void **state)
{
    config_t *cfg = *state;
    unsetenv("SX_T_A");
    assert_string_equal(config_str(cfg, "SX_T_A", "dflt"), "dflt");
    assert_int_equal(config_int(cfg, "SX_T_A", 42, 0, 100), 42);
    setenv("SX_T_A", "", 1);
    assert_true(config_bool(cfg, "SX_T_A", true));
    assert_int_equal(config_duration_ms(cfg, "SX_T_A", 1500, 0, 10000), 1500);
    assert_null(config_error(cfg));
}

static void
test_well_formed_values(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "9100", 1);
    assert_int_equal(config_int(cfg, "SX_T_A", 1, 1, 65535), 9100);
    setenv("SX_T_A", "-7", 1);
    assert_int_equal(config_int(cfg, "SX_T_A", 1, -10, 10), -7);
    setenv("SX_T_A", "Yes", 1);
    assert_true(config_bool(cfg, "SX_T_A", false));
    setenv("SX_T_A", "off", 1);
    assert_false(config_bool(cfg, "SX_T_A", true));
    setenv("SX_T_A", "250ms", 1);
    assert_int_equal(config_duration_ms(cfg, "SX_T_A", 0, 0, 3600000), 250);
    setenv("SX_T_A", "2s", 1);
    assert_int_equal(config_duration_ms(cfg, "SX_T_A", 0, 0, 3600000), 2000);
    setenv("SX_T_A", "5m", 1);
    assert_int_equal(config_duration_ms(cfg, "SX_T_A", 0, 0, 3600000), 300000);
    setenv("SX_T_A", "postgresql://sx@127.0.0.1:5432/sx", 1);
    const char *s = config_str(cfg, "SX_T_A", NULL);
    assert_string_equal(s, "postgresql://sx@127.0.0.1:5432/sx");
    /* The returned string is a copy: changing the environment does not change it. */
    setenv("SX_T_A", "other", 1);
    assert_string_equal(s, "postgresql://sx@127.0.0.1:5432/sx");
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    setenv("SX_T_A", "warn", 1);
    assert_int_equal(config_enum(cfg, "SX_T_A", 1, levels), 2);
    assert_null(config_error(cfg));
}

static void
test_malformed_int_names_variable_and_range(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "http", 1);
    assert_int_equal(config_int(cfg, "SX_T_A", 9100, 1, 65535), 9100);
    assert_non_null(config_error(cfg));
    assert_string_equal(config_error(cfg), "SX_T_A: expected an integer in 1..65535, got \"http\"");
}

static void
test_int_edge_forms_refused(void **state)
{
    static const char *const bad[] = {" 5",  "5 ", "+5",    "5x", "0x10", "99999999999999999999",
                                      "1e3", "-",  "65536", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        config_t *cfg = config_new();
        setenv("SX_T_A", bad[i], 1);
        assert_int_equal(config_int(cfg, "SX_T_A", 7, 1, 65535), 7);
        if (!config_error(cfg))
            fail_msg("value \"%s\" was accepted", bad[i]);
        config_destroy(&cfg);
    }
    (void)state;
}

static void
test_every_error_reported_at_once(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "maybe", 1);
    setenv("SX_T_B", "10", 1); /* a duration without a unit is a guess: refused */
    config_bool(cfg, "SX_T_A", false);
    config_duration_ms(cfg, "SX_T_B", 1000, 0, 60000);
    const char *err = config_error(cfg);
    assert_non_null(err);
    assert_non_null(strstr(err, "SX_T_A: expected true or false"));
    assert_non_null(strstr(err, "\nSX_T_B: expected a duration such as 250ms"));
}

static void
test_duration_out_of_range(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "2h", 1);
    assert_int_equal(config_duration_ms(cfg, "SX_T_A", 1000, 0, 60000), 1000);
    assert_string_equal(config_error(cfg),
                        "SX_T_A: expected a duration from 0ms to 60000ms, got \"2h\"");
}

static void
test_enum_lists_allowed_values(void **state)
{
    config_t *cfg = *state;
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    setenv("SX_T_A", "verbose", 1);
    assert_int_equal(config_enum(cfg, "SX_T_A", 1, levels), 1);
    assert_string_equal(config_error(cfg),
                        "SX_T_A: expected one of debug, info, warn, error, got \"verbose\"");
}

static void
test_control_characters_refused_and_not_echoed(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "ok\nSX_FAKE: forged", 1);
    assert_string_equal(config_str(cfg, "SX_T_A", "d"), "d");
    const char *err = config_error(cfg);
    assert_non_null(err);
    /* The message stays one line: the newline in the value is not echoed. */
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "SX_T_A: expected text without control characters"));
}

static void
test_later_checks_join_the_same_list(void **state)
{
    config_t *cfg = *state;
    setenv("SX_T_A", "x", 1);
    config_int(cfg, "SX_T_A", 1, 0, 9);
    config_fail(cfg, "SX_T_B", "%s: %s", "/etc/keys", "no such file");
    assert_string_equal(config_error(cfg), "SX_T_A: expected an integer in 0..9, got \"x\"\n"
                                           "SX_T_B: /etc/keys: no such file");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_when_unset_or_empty, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_well_formed_values, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_int_names_variable_and_range, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_int_edge_forms_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_every_error_reported_at_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_duration_out_of_range, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_enum_lists_allowed_values, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_refused_and_not_echoed, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_later_checks_join_the_same_list, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
