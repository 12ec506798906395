/* The case state machine: every (type, state, op) cell, and refusals that name the state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/intake/case_state.h"

static int
s_next(case_type_t t, case_state_t s, case_op_t op)
{
    char en[200], zh[300];
    return case_state_next(t, s, op, en, sizeof en, zh, sizeof zh);
}

/* Walks a path of ops from open and returns the final state (or -1 at a refusal). */
static int
s_walk(case_type_t t, const case_op_t *ops, size_t n)
{
    int s = CS_OPEN;
    for (size_t i = 0; i < n && s >= 0; i++)
        s = s_next(t, (case_state_t)s, ops[i]);
    return s;
}

static void
test_penalty_full_life(void **state)
{
    (void)state;
    const case_op_t ops[] = {CO_RECORD, CO_PROPOSE, CO_PROPOSE, CO_DECIDE, CO_RECORD,
                             CO_SERVE,  CO_EXECUTE, CO_CLOSE,   CO_REVOKE};
    assert_int_equal(s_walk(CASE_PENALTY, ops, 8), CS_CLOSED);
    assert_int_equal(s_walk(CASE_PENALTY, ops, 9), CS_REVOKED);
    assert_int_equal(s_walk(CASE_COERCION, ops, 8), CS_CLOSED);
    assert_int_equal(s_walk(CASE_LEVY, ops, 8), CS_CLOSED);
}

static void
test_licence_may_close_once_served(void **state)
{
    (void)state;
    const case_op_t ops[] = {CO_PROPOSE, CO_DECIDE, CO_SERVE, CO_CLOSE};
    assert_int_equal(s_walk(CASE_LICENCE, ops, 4), CS_CLOSED);
    /* A penalty may not: it must be executed first. */
    assert_int_equal(s_walk(CASE_PENALTY, ops, 4), -1);
}

static void
test_inspection_path(void **state)
{
    (void)state;
    const case_op_t ops[] = {CO_RECORD, CO_RESULT, CO_RECORD, CO_CLOSE};
    assert_int_equal(s_walk(CASE_INSPECTION, ops, 4), CS_CLOSED);
    assert_int_equal(s_next(CASE_INSPECTION, CS_OPEN, CO_PROPOSE), -1);
    assert_int_equal(s_next(CASE_PENALTY, CS_OPEN, CO_RESULT), -1);
}

static void
test_refusal_names_the_state_and_what_is_needed(void **state)
{
    (void)state;
    char en[200], zh[300];
    assert_int_equal(
        case_state_next(CASE_PENALTY, CS_DECIDED, CO_PROPOSE, en, sizeof en, zh, sizeof zh), -1);
    assert_string_equal(en, "case is decided; case.propose needs open or proposed");
    assert_string_equal(zh, "案件当前状态为已决定，拟作决定须在已立案或已拟决定状态");
    assert_int_equal(
        case_state_next(CASE_INSPECTION, CS_OPEN, CO_DECIDE, en, sizeof en, zh, sizeof zh), -1);
    assert_string_equal(en, "case.decide does not apply to inspection cases");
    assert_string_equal(zh, "检查案件不适用作出决定");
}

static void
test_closed_and_revoked_take_no_records(void **state)
{
    (void)state;
    for (int t = 0; t < CASE_TYPE_COUNT; t++) {
        assert_int_equal(s_next((case_type_t)t, CS_CLOSED, CO_RECORD), -1);
        assert_int_equal(s_next((case_type_t)t, CS_REVOKED, CO_RECORD), -1);
        /* Revoked is final: no op at all. */
        for (int op = 0; op < CO_COUNT; op++)
            assert_int_equal(s_next((case_type_t)t, CS_REVOKED, (case_op_t)op), -1);
    }
}

static void
test_every_cell_is_defined_and_names_round_trip(void **state)
{
    (void)state;
    for (int t = 0; t < CASE_TYPE_COUNT; t++) {
        assert_int_equal(case_type_parse(case_type_name((case_type_t)t)), t);
        for (int s = 0; s < CS_COUNT; s++) {
            assert_int_equal(case_state_parse(case_state_name((case_state_t)s)), s);
            for (int op = 0; op < CO_COUNT; op++) {
                int n = s_next((case_type_t)t, (case_state_t)s, (case_op_t)op);
                assert_true(n == -1 || (n >= 0 && n < CS_COUNT));
            }
        }
    }
    assert_int_equal(case_type_parse("fine"), -1);
    assert_null(case_state_name(CS_COUNT));
    assert_int_equal(s_next(CASE_TYPE_COUNT, CS_OPEN, CO_RECORD), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_penalty_full_life),
        cmocka_unit_test(test_licence_may_close_once_served),
        cmocka_unit_test(test_inspection_path),
        cmocka_unit_test(test_refusal_names_the_state_and_what_is_needed),
        cmocka_unit_test(test_closed_and_revoked_take_no_records),
        cmocka_unit_test(test_every_cell_is_defined_and_names_round_trip),
    };
    return cmocka_run_group_tests_name("intake_case_state", tests, NULL, NULL);
}
