/* events: sx-review's subscriber handler against a real PostgreSQL. Events are built as
 * intake would publish them (JSON in the tests, msgpack envelopes decoded by evmsg) and
 * handed to events_handle in a transaction, as common/bus does; what review writes
 * (its tables and its outbox) is read back with SQL. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/review/events.h"
#include "ident.h"
#include "jsonmp.h"
#include "tsupport.h"
#include "util.h"
#include "workday.h"

typedef struct {
    char *url;
    db_t *db;
    workday_t *cal;
    review_t app;
    uint64_t seq;
    char a[19], b[19], pool[19];
} fx_t;

static void
s_code(char out[19], const char *body17)
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
}

/* Hands one event (topic "<event>.<agency>", data as JSON) to the handler, committed. */
static void
s_ev(fx_t *fx, const char *event, const char *agency, const char *json)
{
    msgpack_sbuffer data, env;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&env);
    jsonmp_err_t jerr;
    if (jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr) < 0) {
        char b[256];
        fail_msg("json: %s: %s", jsonmp_err_str(&jerr, b, sizeof b), json);
    }
    evmsg_header_t h = {++fx->seq, fx->seq, "intake", util_unix_ms(), 1};
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(env.data, env.size, &msg, &err), 0);
    char topic[160];
    snprintf(topic, sizeof topic, "%s.%s", event, agency);
    bus_event_t ev = {h.seq, h.aseq, h.at, 1, topic, msg};
    assert_int_equal(db_begin(fx->db), 0);
    if (events_handle(fx->db, &ev, 1, &fx->app) != 0)
        fail_msg("events_handle: %s", db_error(fx->db));
    assert_int_equal(db_commit(fx->db), 0);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&env);
}

static char *
s_one(fx_t *fx, const char *sql, char *out, size_t size)
{
    PGresult *r = db_query(fx->db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(fx->db));
    snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "<none>");
    PQclear(r);
    return out;
}

static long long
s_count(fx_t *fx, const char *sql)
{
    char b[64];
    return atoll(s_one(fx, sql, b, sizeof b));
}

/* The data of the last outbox event as JSON (malloc'ed), its topic in topic. */
static char *
s_last_event(fx_t *fx, char *topic, size_t size)
{
    PGresult *r =
        db_query(fx->db, "SELECT topic, data FROM review.outbox ORDER BY id DESC LIMIT 1", 0, NULL);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    snprintf(topic, size, "%s", PQgetvalue(r, 0, 0));
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
    char *json = jsonmp_to_json(bytes, len, "data", NULL, NULL);
    PQfreemem(bytes);
    PQclear(r);
    assert_non_null(json);
    return json;
}

static void
s_officer(fx_t *fx, const char *agency, const char *cert, int version, bool reviewer, bool lq,
          bool active)
{
    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
             "\"cert_no\":\"%s\",\"name\":\"n-%s\",\"valid_from\":\"2015-01-01\","
             "\"valid_to\":\"2030-12-31\",\"area\":\"全市\",\"legal_qualified\":%s,"
             "\"reviewer\":%s,\"active\":%s}}",
             cert, version, agency, cert, cert, lq ? "true" : "false", reviewer ? "true" : "false",
             active ? "true" : "false");
    s_ev(fx, "registry.officer", agency, j);
}

static void
s_opened(fx_t *fx, int case_id, const char *officers)
{
    char j[1024];
    snprintf(j, sizeof j,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
             "\"state\":\"open\",\"officers\":[%s]}",
             case_id, case_id, officers);
    s_ev(fx, "case.opened", fx->a, j);
}

static void
s_propose(fx_t *fx, const char *agency, int case_id, int version, const char *fine,
          const char *extra)
{
    char j[2048];
    snprintf(j, sizeof j,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
             "\"state\":\"proposed\",\"version\":%d,\"category\":\"罚款\",\"content\":\"罚款\","
             "\"fine\":\"%s\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
             "\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"hearing\":false,"
             "\"major_public_interest\":false,\"social_risk\":false,\"complex\":false,"
             "%s,\"discretion\":null,\"deviation_reason\":null}",
             case_id, case_id, version, fine,
             extra ? extra : "\"requires_review\":false,\"review_rules\":[]");
    s_ev(fx, "case.proposed", agency, j);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[256], dir[4096];
    fx->url = ts_fresh_db("revev");
    fx->db = db_new(fx->url, "review-test");
    assert_int_equal(db_connect(fx->db, 5000), 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    if (bus_migrate(fx->db, REVIEW_SCHEMA, dir) < 0)
        fail_msg("bus_migrate: %s", db_error(fx->db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/review", ts_env("SX_TOP"));
    if (db_migrate(fx->db, REVIEW_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(fx->db));
    assert_int_equal(events_prepare(fx->db), 0);
    fx->cal = workday_load_default(err, sizeof err);
    assert_non_null(fx->cal);
    s_code(fx->a, "11330400MB0000001");
    s_code(fx->b, "11330400MB0000002");
    s_code(fx->pool, "11330400MB0000009");
    fx->app = (review_t){.calendar = fx->cal, .pool_agency = fx->pool};

    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"name\":\"市场监管局\",\"level\":\"city\",\"domain\":\"市场监管\","
             "\"head_name\":\"张\",\"head_title\":\"局长\"}}",
             fx->a, fx->a);
    s_ev(fx, "registry.agency", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"R-AMOUNT\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"id\":\"R-AMOUNT\",\"description\":\"较大数额罚款\",\"case_type\":\"penalty\","
             "\"domain\":null,\"level\":null,\"amount_threshold\":\"1\",\"hearing\":null,"
             "\"major_public_interest\":null,\"social_risk\":null,\"complex\":null,"
             "\"active\":true}}",
             fx->a);
    s_ev(fx, "registry.review_rule", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"V-01/general\",\"version\":1,\"entry\":{\"agency\":"
             "\"%s\",\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"fine_min\":\"0.5\","
             "\"fine_max\":\"2\",\"basis\":\"第3条\",\"active\":true}}",
             fx->a);
    s_ev(fx, "registry.discretion", fx->a, j);
    s_officer(fx, fx->a, "A001", 1, false, false, true);
    s_officer(fx, fx->a, "A002", 1, true, true, true);
    s_officer(fx, fx->a, "A003", 1, true, false, true);
    s_officer(fx, fx->pool, "P001", 1, true, true, true);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    workday_destroy(&fx->cal);
    db_destroy(&fx->db);
    free(fx->url);
    free(fx);
    return 0;
}

static void
test_not_required_names_the_rule(void **state)
{
    fx_t *fx = *state;
    s_opened(fx, 1, "\"A001\"");
    s_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    char topic[160];
    char *json = s_last_event(fx, topic, sizeof topic);
    char want[160];
    snprintf(want, sizeof want, "review.not_required.%s", fx->a);
    assert_string_equal(topic, want);
    assert_non_null(strstr(json, "\"case_id\":1,\"proposal_version\":1"));
    assert_non_null(strstr(json, "R-AMOUNT: amount 0.999999 below threshold 1"));
    free(json);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.task"), 0);

    /* the same proposal again (a replay): nothing new */
    s_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.outbox"), 1);

    /* version 2 at the threshold: judged afresh, a task */
    s_propose(fx, fx->a, 1, 2, "1", NULL);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 1 AND"
                                 " version = 2 AND status = 'open' AND rules = '{R-AMOUNT}'"),
                     1);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.outbox"), 1);
}

static void
test_handler_never_assigned_least_loaded_first(void **state)
{
    fx_t *fx = *state;
    char b[64];
    /* A002 handled case 1: A003 gets it */
    s_opened(fx, 1, "\"A001\",\"A002\"");
    s_propose(fx, fx->a, 1, 1, "1.5", NULL);
    assert_string_equal(
        s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 1", b, sizeof b), "A003");
    /* case 2 handled by nobody of them: A002 has no open task, A003 has one */
    s_opened(fx, 2, "\"A001\"");
    s_propose(fx, fx->a, 2, 1, "1.5", NULL);
    assert_string_equal(
        s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 2", b, sizeof b), "A002");
    /* case 3: both at one task each; the legally qualified first */
    s_opened(fx, 3, "\"A001\"");
    s_propose(fx, fx->a, 3, 1, "1.5", NULL);
    assert_string_equal(
        s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 3", b, sizeof b), "A002");
    /* A recorded officer counts as a handler too */
    s_ev(fx, "case.recorded", fx->a,
         "{\"case_id\":4,\"case_no\":\"C-4\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
         "\"state\":\"open\",\"record_no\":1,\"officers\":[\"A003\"]}");
    s_propose(fx, fx->a, 4, 1, "1.5", NULL);
    assert_string_equal(
        s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 4", b, sizeof b), "A002");
}

static void
test_pool_when_no_reviewer_of_the_agency(void **state)
{
    fx_t *fx = *state;
    char b[64];
    s_opened(fx, 5, "\"A002\",\"A003\"");
    s_propose(fx, fx->a, 5, 1, "1.5", NULL);
    char want[64];
    snprintf(want, sizeof want, "%s/P001/true", fx->pool);
    assert_string_equal(
        s_one(fx,
              "SELECT reviewer_agency || '/' || reviewer || '/' || pool FROM review.task"
              " WHERE case_id = 5",
              b, sizeof b),
        want);
    /* and nobody at all: the task waits for any reviewer of the agency */
    s_officer(fx, fx->pool, "P001", 2, true, true, false);
    s_opened(fx, 12, "\"A002\",\"A003\"");
    s_propose(fx, fx->a, 12, 1, "1.5", NULL);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 12 AND"
                                 " reviewer IS NULL AND NOT pool"),
                     1);
}

static void
test_out_of_band_fine_flagged(void **state)
{
    fx_t *fx = *state;
    char b[512];
    s_opened(fx, 6, "\"A001\"");
    s_propose(fx, fx->a, 6, 1, "3", NULL);
    assert_string_equal(s_one(fx, "SELECT flags FROM review.task WHERE case_id = 6", b, sizeof b),
                        "{out_of_band}");
    assert_non_null(
        strstr(s_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 6", b, sizeof b),
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
        s_ev(fx, "case.decided", fx->a, j);
    }
    s_propose(fx, fx->a, 7, 1, "1.2", NULL);
    assert_string_equal(s_one(fx, "SELECT flags FROM review.task WHERE case_id = 7", b, sizeof b),
                        "{}");
    s_propose(fx, fx->a, 8, 1, "1.9", NULL);
    assert_string_equal(s_one(fx, "SELECT flags FROM review.task WHERE case_id = 8", b, sizeof b),
                        "{unlike_recent}");
}

static void
test_new_version_supersedes_and_intake_rules_count(void **state)
{
    fx_t *fx = *state;
    char b[256];
    s_propose(fx, fx->a, 9, 1, "1.5", NULL);
    s_propose(fx, fx->a, 9, 2, "1.6", NULL);
    assert_string_equal(s_one(fx,
                              "SELECT string_agg(version || ':' || status, ',' ORDER BY version)"
                              " FROM review.task WHERE case_id = 9",
                              b, sizeof b),
                        "1:superseded,2:open");
    /* intake found review required (a discretion deviation) where the catalogue did not */
    s_propose(fx, fx->a, 10, 1, "0.1",
              "\"requires_review\":true,\"review_rules\":[\"discretion_deviation\"]");
    assert_string_equal(s_one(fx, "SELECT rules FROM review.task WHERE case_id = 10", b, sizeof b),
                        "{discretion_deviation}");
    assert_non_null(
        strstr(s_one(fx, "SELECT reason FROM review.judgement WHERE case_id = 10", b, sizeof b),
               "required by intake's judgement"));
    /* and one the catalogue alone requires, without intake's rule */
    s_propose(fx, fx->a, 13, 1, "1", NULL);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 13"), 1);
}

static void
test_retired_reviewer_and_deadlines(void **state)
{
    fx_t *fx = *state;
    char b[256];
    s_officer(fx, fx->a, "A002", 2, true, true, false); /* retired */
    s_officer(fx, fx->a, "A002", 1, true, true, true);  /* an older version: ignored */
    s_propose(fx, fx->a, 11, 1, "1.5", NULL);
    assert_string_equal(
        s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 11", b, sizeof b), "A003");
    /* due after 5 working days, the warning one before */
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 11 AND"
                                 " due_on > current_date AND warn_on < due_on"),
                     1);
    assert_int_equal(events_sweep_deadlines(fx->db, &fx->app, util_unix_ms()), 0);
    s_one(fx,
          "UPDATE review.task SET warn_on = current_date - 1 WHERE case_id = 11"
          " RETURNING 1",
          b, sizeof b);
    assert_int_equal(events_sweep_deadlines(fx->db, &fx->app, util_unix_ms()), 1);
    char topic[160];
    char *json = s_last_event(fx, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.due_soon."));
    free(json);
    assert_int_equal(events_sweep_deadlines(fx->db, &fx->app, util_unix_ms()), 0);
    s_one(fx, "UPDATE review.task SET due_on = current_date - 1 WHERE case_id = 11 RETURNING 1", b,
          sizeof b);
    assert_int_equal(events_sweep_deadlines(fx->db, &fx->app, util_unix_ms()), 1);
    json = s_last_event(fx, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.overdue."));
    assert_non_null(strstr(json, "\"reviewer\":\"A003\""));
    free(json);
    assert_int_equal(events_sweep_deadlines(fx->db, &fx->app, util_unix_ms()), 0);
}

static void
test_review_past_the_statutory_deadline_flagged(void **state)
{
    fx_t *fx = *state;
    char b[600];
    /* opened with a deadline 2 days away: a 5-working-day review would end after it */
    s_ev(fx, "case.opened", fx->a,
         "{\"case_id\":20,\"case_no\":\"C-20\",\"type\":\"penalty\",\"matter_code\":"
         "\"PEN-1\",\"state\":\"open\",\"officers\":[\"A001\"],\"deadline\":\"2000-01-03\"}");
    s_one(fx,
          "UPDATE review.case_deadline SET deadline = current_date + 2 WHERE case_id = 20"
          " RETURNING 1",
          b, sizeof b);
    s_propose(fx, fx->a, 20, 1, "1.2", NULL);
    assert_string_equal(s_one(fx, "SELECT flags FROM review.task WHERE case_id = 20", b, sizeof b),
                        "{statutory_limit}");
    assert_non_null(
        strstr(s_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 20", b, sizeof b),
               "after the statutory deadline"));
    /* a deadline 90 days away: no flag */
    s_one(fx,
          "UPDATE review.case_deadline SET deadline = current_date + 90 WHERE case_id = 20"
          " RETURNING 1",
          b, sizeof b);
    s_propose(fx, fx->a, 20, 2, "1.2", NULL);
    assert_string_equal(s_one(fx,
                              "SELECT flags FROM review.task WHERE case_id = 20 AND"
                              " version = 2",
                              b, sizeof b),
                        "{}");
}

static void
test_malformed_event_rejected(void **state)
{
    fx_t *fx = *state;
    s_ev(fx, "case.proposed", fx->a, "{\"case_id\":\"twelve\"}");
    char b[256];
    assert_string_equal(s_one(fx, "SELECT reason FROM review.bus_rejected", b, sizeof b),
                        "data.case_id: expected integer");
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.judgement"), 0);
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
        cmocka_unit_test_setup_teardown(test_retired_reviewer_and_deadlines, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_review_past_the_statutory_deadline_flagged, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_event_rejected, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("review_events", tests, NULL, NULL);
}
