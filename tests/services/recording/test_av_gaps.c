/* AV compliance (音像记录): each rule produces its gap (record.gap) at a stage change or
 * at close, and a late AV record of that stage closes it (record.gap_closed). */
#include "rfx.h"

static void
s_av_matter(rfx_t *fx, const char *matter, int version, const char *stages, bool active)
{
    rfx_add(fx, "registry.av_matter", fx->code_a,
            "{\"action\":\"%s\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
            "\"matter_code\":\"%s\",\"stages\":[%s],\"active\":%s}}",
            active ? "put" : "retire", matter, version, fx->code_a, matter, stages,
            active ? "true" : "false");
}

static long long
s_gaps(rfx_t *fx, int id, const char *stage, const char *rule, bool open)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM recording.gap WHERE case_id = %d AND stage = '%s' AND"
             " rule = '%s' AND (closed_at IS NULL) = %s",
             id, stage, rule, open ? "true" : "false");
    return rfx_count(fx->chk, sql);
}

static long long
s_events(rfx_t *fx, const char *event)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM recording.outbox WHERE topic LIKE '%s.%%'",
             event);
    return rfx_count(fx->chk, sql);
}

static void
test_rules_pure(void **state)
{
    (void)state;
    const char *r[AV_RULES_MAX];
    assert_int_equal(av_rules_required(CHAIN_START, 0, 0, r), 0);
    assert_int_equal(av_rules_required(CHAIN_INVESTIGATION, 1u << CHAIN_INVESTIGATION, 0, r), 1);
    assert_string_equal(r[0], "av_matter");
    assert_int_equal(av_rules_required(CHAIN_REVIEW_DECISION, 0, AV_F_HEARING, r), 1);
    assert_string_equal(r[0], "hearing");
    assert_int_equal(av_rules_required(CHAIN_INVESTIGATION, 0, AV_F_HEARING, r), 0);
    assert_int_equal(
        av_rules_required(CHAIN_SERVICE_EXECUTION, 0, AV_F_LEFT_SERVICE | AV_F_ONSITE_COERCION, r),
        2);
    assert_true(av_rules_is_av("video"));
    assert_false(av_rules_is_av("photo"));
}

static void
test_av_matter_rule(void **state)
{
    rfx_t *fx = *state;
    s_av_matter(fx, "PEN-1", 1, "\"investigation\"", true);
    rfx_open(fx, fx->code_a, 1, "penalty", "PEN-1", false);
    rfx_record(fx, fx->code_a, 1, "penalty", "PEN-1", 1, "investigation", "text", "internal");
    rfx_flush(fx);
    assert_int_equal(s_events(fx, "record.gap"), 0); /* still in investigation */
    rfx_simple(fx, "case.proposed", fx->code_a, 1, "penalty", "PEN-1", "proposed",
               "\"hearing\":false");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 1, "investigation", "av_matter", true), 1);
    assert_int_equal(s_gaps(fx, 1, "start", "av_matter", true), 0); /* not listed */
    assert_int_equal(s_events(fx, "record.gap"), 1);
    /* A photo is no AV record; a late video is, and closes the gap. */
    rfx_record(fx, fx->code_a, 1, "penalty", "PEN-1", 2, "investigation", "photo", "internal");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 1, "investigation", "av_matter", true), 1);
    rfx_record(fx, fx->code_a, 1, "penalty", "PEN-1", 3, "investigation", "video", "internal");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 1, "investigation", "av_matter", false), 1);
    assert_int_equal(s_events(fx, "record.gap_closed"), 1);
    assert_int_equal(rfx_count(fx->chk, "SELECT closed_by FROM recording.gap WHERE case_id = 1"),
                     5);

    /* With the video on time there is no gap; a retired list entry requires nothing, and
     * an older version arriving late does not bring it back. */
    rfx_open(fx, fx->code_a, 2, "penalty", "PEN-1", false);
    rfx_record(fx, fx->code_a, 2, "penalty", "PEN-1", 1, "investigation", "audio", "internal");
    rfx_simple(fx, "case.proposed", fx->code_a, 2, "penalty", "PEN-1", "proposed", "");
    s_av_matter(fx, "PEN-1", 2, "\"investigation\"", false);
    s_av_matter(fx, "PEN-1", 1, "\"investigation\"", true);
    rfx_open(fx, fx->code_a, 3, "penalty", "PEN-1", false);
    rfx_simple(fx, "case.proposed", fx->code_a, 3, "penalty", "PEN-1", "proposed", "");
    rfx_flush(fx);
    assert_int_equal(
        rfx_count(fx->chk, "SELECT count(*) FROM recording.gap WHERE case_id IN (2, 3)"), 0);
}

static void
test_onsite_coercion_rule(void **state)
{
    rfx_t *fx = *state;
    rfx_open(fx, fx->code_a, 7, "coercion", "COE-1", true);
    rfx_record(fx, fx->code_a, 7, "coercion", "COE-1", 1, "start", "video", "internal");
    rfx_simple(fx, "case.decided", fx->code_a, 7, "coercion", "COE-1", "decided", "");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 7, "start", "onsite_coercion", true), 0);
    assert_int_equal(s_gaps(fx, 7, "investigation", "onsite_coercion", true), 1);
    rfx_simple(fx, "case.executed", fx->code_a, 7, "coercion", "COE-1", "executed", "");
    rfx_simple(fx, "case.closed", fx->code_a, 7, "coercion", "COE-1", "closed",
               "\"closed_on\":\"2024-02-01\",\"note\":null");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 7, "review_decision", "onsite_coercion", true), 1);
    assert_int_equal(s_gaps(fx, 7, "service_execution", "onsite_coercion", true), 1);
    /* Not on site: no such rule. */
    rfx_open(fx, fx->code_a, 8, "coercion", "COE-1", false);
    rfx_simple(fx, "case.closed", fx->code_a, 8, "coercion", "COE-1", "closed", "");
    rfx_flush(fx);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.gap WHERE case_id = 8"), 0);
    /* A late record closes the gap even after the close. */
    rfx_record(fx, fx->code_a, 7, "coercion", "COE-1", 2, "investigation", "video", "internal");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 7, "investigation", "onsite_coercion", false), 1);
}

static void
test_hearing_and_left_service_rules(void **state)
{
    rfx_t *fx = *state;
    rfx_open(fx, fx->code_a, 9, "penalty", "PEN-1", false);
    rfx_simple(fx, "case.proposed", fx->code_a, 9, "penalty", "PEN-1", "proposed",
               "\"hearing\":true");
    rfx_simple(fx, "case.decided", fx->code_a, 9, "penalty", "PEN-1", "decided", "");
    rfx_simple(fx, "case.served", fx->code_a, 9, "penalty", "PEN-1", "served",
               "\"served_on\":\"2024-01-09\",\"method\":\"left\"");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 9, "review_decision", "hearing", true), 1);
    assert_int_equal(s_gaps(fx, 9, "service_execution", "left_service", true), 0); /* not yet */
    rfx_simple(fx, "case.closed", fx->code_a, 9, "penalty", "PEN-1", "closed", "");
    rfx_flush(fx);
    assert_int_equal(s_gaps(fx, 9, "service_execution", "left_service", true), 1);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.gap WHERE case_id = 9"), 2);
    rfx_record(fx, fx->code_a, 9, "penalty", "PEN-1", 1, "review_decision", "audio", "internal");
    rfx_record(fx, fx->code_a, 9, "penalty", "PEN-1", 2, "service_execution", "video", "internal");
    rfx_flush(fx);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.gap WHERE case_id = 9"
                                        " AND closed_at IS NULL"),
                     0);
    assert_int_equal(s_events(fx, "record.gap"), 2);
    assert_int_equal(s_events(fx, "record.gap_closed"), 2);
    /* Served directly: no 留置送达 rule. */
    rfx_open(fx, fx->code_a, 10, "penalty", "PEN-1", false);
    rfx_simple(fx, "case.served", fx->code_a, 10, "penalty", "PEN-1", "served",
               "\"served_on\":\"2024-01-09\",\"method\":\"direct\"");
    rfx_simple(fx, "case.closed", fx->code_a, 10, "penalty", "PEN-1", "closed", "");
    rfx_flush(fx);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.gap WHERE case_id = 10"),
                     0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_pure),
        cmocka_unit_test_setup_teardown(test_av_matter_rule, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_onsite_coercion_rule, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_hearing_and_left_service_rules, rfx_setup,
                                        rfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
