/* events: sx-review's subscriber handler against a real PostgreSQL. Events are built as
 * intake would publish them (JSON in the tests, msgpack envelopes decoded by evmsg) and
 * handed to events_handle in a transaction, as common/bus does; what review writes
 * (its tables and its outbox) is read back with SQL. */
#include "rvfx.h"

typedef rvfx_t fx_t;

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    rvfx_init(fx, "revev");

    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"name\":\"市场监管局\",\"level\":\"city\",\"domain\":\"市场监管\","
             "\"head_name\":\"张\",\"head_title\":\"局长\"}}",
             fx->a, fx->a);
    rvfx_ev(fx, "registry.agency", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"R-AMOUNT\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"id\":\"R-AMOUNT\",\"description\":\"较大数额罚款\",\"case_type\":\"penalty\","
             "\"domain\":null,\"level\":null,\"amount_threshold\":\"1\",\"hearing\":null,"
             "\"major_public_interest\":null,\"social_risk\":null,\"complex\":null,"
             "\"active\":true}}",
             fx->a);
    rvfx_ev(fx, "registry.review_rule", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"V-01/general\",\"version\":1,\"entry\":{\"agency\":"
             "\"%s\",\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"fine_min\":\"0.5\","
             "\"fine_max\":\"2\",\"basis\":\"第3条\",\"active\":true}}",
             fx->a);
    rvfx_ev(fx, "registry.discretion", fx->a, j);
    rvfx_officer(fx, fx->a, "A001", 1, false, false, true);
    rvfx_officer(fx, fx->a, "A002", 1, true, true, true);
    rvfx_officer(fx, fx->a, "A003", 1, true, false, true);
    rvfx_officer(fx, fx->pool, "P001", 1, true, true, true);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    rvfx_fini(fx);
    free(fx);
    return 0;
}

static void
test_not_required_names_the_rule(void **state)
{
    fx_t *fx = *state;
    rvfx_opened(fx, 1, "\"A001\"");
    rvfx_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    char topic[160];
    char *json = rvfx_last_event(fx, topic, sizeof topic);
    char want[160];
    snprintf(want, sizeof want, "review.not_required.%s", fx->a);
    assert_string_equal(topic, want);
    assert_non_null(strstr(json, "\"case_id\":1,\"proposal_version\":1"));
    assert_non_null(strstr(json, "R-AMOUNT: amount 0.999999 below threshold 1"));
    free(json);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task"), 0);

    /* the same proposal again (a replay): nothing new */
    rvfx_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.outbox"), 1);

    /* version 2 at the threshold: judged afresh, a task */
    rvfx_propose(fx, fx->a, 1, 2, "1", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 1 AND"
                                    " version = 2 AND status = 'open' AND rules = '{R-AMOUNT}'"),
                     1);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.outbox"), 1);
}

static void
test_handler_never_assigned_least_loaded_first(void **state)
{
    fx_t *fx = *state;
    char b[64];
    /* A002 handled case 1: A003 gets it */
    rvfx_opened(fx, 1, "\"A001\",\"A002\"");
    rvfx_propose(fx, fx->a, 1, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 1", b, sizeof b), "A003");
    /* case 2 handled by nobody of them: A002 has no open task, A003 has one */
    rvfx_opened(fx, 2, "\"A001\"");
    rvfx_propose(fx, fx->a, 2, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 2", b, sizeof b), "A002");
    /* case 3: both at one task each; the legally qualified first */
    rvfx_opened(fx, 3, "\"A001\"");
    rvfx_propose(fx, fx->a, 3, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 3", b, sizeof b), "A002");
    /* A recorded officer counts as a handler too */
    rvfx_ev(fx, "case.recorded", fx->a,
            "{\"case_id\":4,\"case_no\":\"C-4\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
            "\"state\":\"open\",\"record_no\":1,\"officers\":[\"A003\"]}");
    rvfx_propose(fx, fx->a, 4, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 4", b, sizeof b), "A002");
}

static void
test_pool_when_no_reviewer_of_the_agency(void **state)
{
    fx_t *fx = *state;
    char b[64];
    rvfx_opened(fx, 5, "\"A002\",\"A003\"");
    rvfx_propose(fx, fx->a, 5, 1, "1.5", NULL);
    char want[64];
    snprintf(want, sizeof want, "%s/P001/true", fx->pool);
    assert_string_equal(
        rvfx_one(fx,
                 "SELECT reviewer_agency || '/' || reviewer || '/' || pool FROM review.task"
                 " WHERE case_id = 5",
                 b, sizeof b),
        want);
    /* and nobody at all: the task waits for any reviewer of the agency */
    rvfx_officer(fx, fx->pool, "P001", 2, true, true, false);
    rvfx_opened(fx, 12, "\"A002\",\"A003\"");
    rvfx_propose(fx, fx->a, 12, 1, "1.5", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 12 AND"
                                    " reviewer IS NULL AND NOT pool"),
                     1);
}

static void
test_out_of_band_fine_flagged(void **state)
{
    fx_t *fx = *state;
    char b[512];
    rvfx_opened(fx, 6, "\"A001\"");
    rvfx_propose(fx, fx->a, 6, 1, "3", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 6", b, sizeof b),
        "{out_of_band}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 6", b, sizeof b),
               "above the band 0.5 to 2"));
    /* within the band, no flag; far from three recent decisions of 1: flagged */
    for (int i = 0; i < 3; i++) {
        char j[512];
        snprintf(j, sizeof j,
                 "{\"case_id\":%d,\"case_no\":\"D-%d\",\"type\":\"penalty\",\"matter_code\":"
                 "\"PEN-1\",\"state\":\"decided\",\"version\":1,\"decision_no\":\"N%d\","
                 "\"decision_date\":\"2019-10-10\",\"reviewed\":true,\"category\":\"罚款\","
                 "\"content\":\"x\",\"fine\":\"1\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
                 "\"violation_code\":\"V-01\",\"circumstance\":\"general\"}",
                 100 + i, i, i);
        rvfx_ev(fx, "case.decided", fx->a, j);
    }
    rvfx_propose(fx, fx->a, 7, 1, "1.2", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 7", b, sizeof b), "{}");
    rvfx_propose(fx, fx->a, 8, 1, "1.9", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 8", b, sizeof b),
        "{unlike_recent}");
}

static void
test_new_version_supersedes_and_intake_rules_count(void **state)
{
    fx_t *fx = *state;
    char b[256];
    rvfx_propose(fx, fx->a, 9, 1, "1.5", NULL);
    rvfx_propose(fx, fx->a, 9, 2, "1.6", NULL);
    assert_string_equal(rvfx_one(fx,
                                 "SELECT string_agg(version || ':' || status, ',' ORDER BY version)"
                                 " FROM review.task WHERE case_id = 9",
                                 b, sizeof b),
                        "1:superseded,2:open");
    /* intake found review required (a discretion deviation) where the catalogue did not */
    rvfx_propose(fx, fx->a, 10, 1, "0.1",
                 "\"requires_review\":true,\"review_rules\":[\"discretion_deviation\"]");
    assert_string_equal(
        rvfx_one(fx, "SELECT rules FROM review.task WHERE case_id = 10", b, sizeof b),
        "{discretion_deviation}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT reason FROM review.judgement WHERE case_id = 10", b, sizeof b),
               "required by intake's judgement"));
    /* and one the catalogue alone requires, without intake's rule */
    rvfx_propose(fx, fx->a, 13, 1, "1", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 13"), 1);
}

static void
test_retired_reviewer_and_due_dates(void **state)
{
    fx_t *fx = *state;
    char b[256];
    rvfx_officer(fx, fx->a, "A002", 2, true, true, false); /* retired */
    rvfx_officer(fx, fx->a, "A002", 1, true, true, true);  /* an older version: ignored */
    rvfx_propose(fx, fx->a, 11, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 11", b, sizeof b), "A003");
    /* due after 5 working days, the warning one before */
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 11 AND"
                                    " due_on > current_date AND warn_on < due_on"),
                     1);
    /* their timers: test_deadlines.c */
}

static void
test_review_past_the_statutory_deadline_flagged(void **state)
{
    fx_t *fx = *state;
    char b[600];
    /* opened with a deadline 2 days away: a 5-working-day review would end after it */
    rvfx_ev(fx, "case.opened", fx->a,
            "{\"case_id\":20,\"case_no\":\"C-20\",\"type\":\"penalty\",\"matter_code\":"
            "\"PEN-1\",\"state\":\"open\",\"officers\":[\"A001\"],\"deadline\":\"2000-01-03\"}");
    rvfx_one(fx,
             "UPDATE review.case_deadline SET deadline = current_date + 2 WHERE case_id = 20"
             " RETURNING 1",
             b, sizeof b);
    rvfx_propose(fx, fx->a, 20, 1, "1.2", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 20", b, sizeof b),
        "{statutory_limit}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 20", b, sizeof b),
               "after the statutory deadline"));
    /* a deadline 90 days away: no flag */
    rvfx_one(fx,
             "UPDATE review.case_deadline SET deadline = current_date + 90 WHERE case_id = 20"
             " RETURNING 1",
             b, sizeof b);
    rvfx_propose(fx, fx->a, 20, 2, "1.2", NULL);
    assert_string_equal(rvfx_one(fx,
                                 "SELECT flags FROM review.task WHERE case_id = 20 AND"
                                 " version = 2",
                                 b, sizeof b),
                        "{}");
}

static void
test_malformed_event_rejected(void **state)
{
    fx_t *fx = *state;
    rvfx_ev(fx, "case.proposed", fx->a, "{\"case_id\":\"twelve\"}");
    char b[256];
    assert_string_equal(rvfx_one(fx, "SELECT reason FROM review.bus_rejected", b, sizeof b),
                        "data.case_id: expected integer");
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.judgement"), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_required_names_the_rule, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handler_never_assigned_least_loaded_first, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pool_when_no_reviewer_of_the_agency, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_band_fine_flagged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_version_supersedes_and_intake_rules_count, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_retired_reviewer_and_due_dates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_review_past_the_statutory_deadline_flagged, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_event_rejected, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("review_events", tests, NULL, NULL);
}
