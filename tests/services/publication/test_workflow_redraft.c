/* The workflow's second chances and the agency's switch, against real PostgreSQL and the
 * portal: a rejected draft is corrected and resubmitted, checked again and published with
 * the correction (its 双公示 fields too), on its original deadline; only a rejected record
 * of one's own agency can be resubmitted; an agency that sets publish_minor has its 轻微
 * penalties drafted and published, the others' stay exempt. */
#include "pubfx.h"
#include "tproc.h"

#define PUBLISHER "dept:" AGENCY ":publisher"

static void
s_case(pubfx_t *fx, const char *agency, int id, const char *type, const char *circumstance)
{
    char topic[128], json[2048];
    snprintf(topic, sizeof topic, "case.opened.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":{\"kind\":\"org\",\"name\":\"嘉峪关某某商贸有限公司\","
             "\"id_type\":\"uscc\",\"id_no\":\"" ORG_USCC "\"},\"summary\":null,"
             "\"opened_on\":\"2026-11-02\"}",
             id, id, type);
    pubfx_event(fx, topic, json);
    snprintf(topic, sizeof topic, "case.decided.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2026〕%d号\","
             "\"decision_date\":\"2026-11-20\",\"reviewed\":false,\"category\":\"罚款\","
             "\"content\":\"罚款2000元。当事人住址：嘉峪关市某路1号\",\"fine\":\"0.2\","
             "\"confiscation\":\"0\",\"legal_basis\":\"《食品安全法》第一百二十四条\","
             "\"violation_code\":null,\"circumstance\":\"%s\"}",
             id, id, type, id, circumstance);
    pubfx_event(fx, topic, json);
}

static void
test_redraft_after_reject(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 1, "penalty", "general");
    char id[24], st[16], v[256], path[64], buf[16384];
    pubfx_record(fx, AGENCY, 1, id);
    pubfx_value(fx, "SELECT due_on::text FROM publication.record WHERE id = $1", id, v, sizeof v);
    assert_string_equal(v, "2026-12-01"); /* 7 working days after 2026-11-20 */

    /* A draft cannot be resubmitted: it is not rejected. */
    workflow_fix_t fix = {"罚款2000元", NULL, NULL};
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_resubmit(fx->db, id, AGENCY, "dept:" AGENCY ":system", &fix, st),
                     WORKFLOW_NOT_REJECTED);
    assert_int_equal(db_rollback(fx->db), 0);
    assert_string_equal(st, "draft");

    /* The publisher rejects it: the conclusion shows the party's address. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_reject(fx->db, id, AGENCY, PUBLISHER, "执法结论含当事人住址", st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    /* Another agency does not find it. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_resubmit(fx->db, id, AGENCY_B, "dept:" AGENCY_B ":system", &fix, st),
                     WORKFLOW_NOT_FOUND);
    assert_int_equal(db_rollback(fx->db), 0);

    /* Corrected and resubmitted: a draft again, on its original deadline, to be armed. */
    workflow_fix_t fix2 = {"罚款2000元", "《中华人民共和国食品安全法》第一百二十四条第一款", NULL};
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_resubmit(fx->db, id, AGENCY, "dept:" AGENCY ":system", &fix2, st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    assert_string_equal(st, "draft");
    pubfx_value(fx,
                "SELECT state || ' ' || due_on || ' ' || resubmissions || ' ' || rejections || ' ' "
                "|| EXISTS (SELECT 1 FROM publication.arming a WHERE a.id = r.id) "
                "FROM publication.record r WHERE id = $1",
                id, v, sizeof v);
    assert_string_equal(v, "draft 2026-12-01 1 1 true"); /* queued for its timers */
    pubfx_value(fx,
                "SELECT body->>'conclusion' || '|' || (body->'sgs'->>'CF_NR') || '|' || "
                "(body->'sgs'->>'CF_YJ') || '|' || (body->>'legal_basis') FROM publication.record "
                "WHERE id = $1",
                id, v, sizeof v);
    assert_string_equal(v, "罚款2000元|罚款2000元|《中华人民共和国食品安全法》第一百二十四条第一款|"
                           "《中华人民共和国食品安全法》第一百二十四条第一款");
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                     "'publication.resubmitted." AGENCY "'"),
                     1);
    /* A resubmitted record is not resubmitted twice. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_resubmit(fx->db, id, AGENCY, "dept:" AGENCY ":system", &fix2, st),
                     WORKFLOW_NOT_REJECTED);
    assert_int_equal(db_rollback(fx->db), 0);

    /* Checked again and published: the public sees the correction, not the address. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, PUBLISHER, st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    assert_int_equal(tp_http_get(portal_port(fx->portal), path, buf, sizeof buf), 200);
    assert_null(strstr(buf, "某路1号"));
    assert_non_null(strstr(buf, "\"CF_NR\":\"罚款2000元\""));

    /* The statistics count the reject and the resubmission. */
    json_t *o = stats_compute(fx->db, AGENCY, "2026-11-01", "2026-11-30");
    assert_non_null(o);
    const json_t *p = json_object_get(o, "publication");
    assert_int_equal(json_integer_value(json_object_get(p, "resubmitted")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "published")), 1);
    assert_int_equal(json_integer_value(json_object_get(p, "rejected")), 0);
    json_decref(o);
}

static void
test_redraft_rearms_timers(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 2, "licence", "general");
    char id[24], st[16], err[256];
    pubfx_record(fx, AGENCY, 2, id);
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "pubredrafttest", err, sizeof err);
    assert_non_null(t);
    assert_true(workflow_arm_new(fx->db, t) >= 1);
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_reject(fx->db, id, AGENCY, PUBLISHER, "类别有误", st), 0);
    workflow_fix_t fix = {NULL, NULL, "特许"};
    assert_int_equal(workflow_resubmit(fx->db, id, AGENCY, "dept:" AGENCY ":officer", &fix, st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    char v[256];
    pubfx_value(fx,
                "SELECT body->>'category' || '|' || (body->'sgs'->>'XK_XKLB') || '|' || "
                "EXISTS (SELECT 1 FROM publication.arming a WHERE a.id = r.id) "
                "FROM publication.record r WHERE id = $1",
                id, v, sizeof v);
    assert_string_equal(v, "特许|02|true"); /* queued for its timers again */
    /* The resubmitted draft's timers are armed again; the deadline fires as for any draft. */
    assert_true(workflow_arm_new(fx->db, t) >= 1);
    pubfx_value(fx, "SELECT count(*)::text FROM publication.arming WHERE id = $1", id, v, sizeof v);
    assert_string_equal(v, "0");
    assert_int_equal(workflow_fire(fx->db, WORKFLOW_TIMER_DUE, id), 0);
    pubfx_value(fx, "SELECT overdue::text FROM publication.record WHERE id = $1", id, v, sizeof v);
    assert_string_equal(v, "true");
    timer_fired_t f[16];
    int n = timer_claim_due(t, workflow_day_ms(date_from_ymd(2030, 1, 1)), f, 16);
    for (int i = 0; i < n; i++)
        timer_done(t, f[i].kind, f[i].key);
    timers_destroy(&t);
}

static void
test_publish_minor_switch(void **state)
{
    pubfx_t *fx = *state;
    char id[24], st[16], v[256];
    /* By default a 轻微 penalty is kept exempt (信用修复管理办法). */
    s_case(fx, AGENCY, 10, "penalty", "minor");
    pubfx_value(fx, "SELECT state FROM publication.record WHERE id = $1",
                pubfx_record(fx, AGENCY, 10, id), v, sizeof v);
    assert_string_equal(v, "exempt");
    /* The agency sets otherwise. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_settings(fx->db, AGENCY, "dept:" AGENCY ":system", true), 0);
    assert_int_equal(db_commit(fx->db), 0);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                     "'publication.settings." AGENCY "'"),
                     1);
    s_case(fx, AGENCY, 11, "penalty", "minor");
    s_case(fx, AGENCY_B, 11, "penalty", "minor"); /* another agency: still exempt */
    pubfx_value(fx, "SELECT state FROM publication.record WHERE id = $1",
                pubfx_record(fx, AGENCY, 11, id), v, sizeof v);
    assert_string_equal(v, "draft");
    pubfx_value(fx,
                "SELECT (body->'sgs'->>'CF_GSJZQ') || ' ' || expires_on FROM publication.record "
                "WHERE id = $1",
                id, v, sizeof v);
    assert_string_equal(v, "2027/02/20 2027-02-20"); /* 轻微: at most 3 months */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, PUBLISHER, st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    assert_int_equal(tp_http_get(portal_port(fx->portal), path, buf, sizeof buf), 200);
    pubfx_value(fx, "SELECT state FROM publication.record WHERE id = $1",
                pubfx_record(fx, AGENCY_B, 11, id), v, sizeof v);
    assert_string_equal(v, "exempt");
    /* The earlier one stays exempt; switched off, the next one is exempt again. */
    pubfx_value(fx, "SELECT state FROM publication.record WHERE id = $1",
                pubfx_record(fx, AGENCY, 10, id), v, sizeof v);
    assert_string_equal(v, "exempt");
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_settings(fx->db, AGENCY, "dept:" AGENCY ":system", false), 0);
    assert_int_equal(db_commit(fx->db), 0);
    s_case(fx, AGENCY, 12, "penalty", "minor");
    pubfx_value(fx, "SELECT state FROM publication.record WHERE id = $1",
                pubfx_record(fx, AGENCY, 12, id), v, sizeof v);
    assert_string_equal(v, "exempt");
}

static int
s_setup(void **state)
{
    *state = pubfx_new("pubredraft", "pub-redraft-test");
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redraft_after_reject),
        cmocka_unit_test(test_redraft_rearms_timers),
        cmocka_unit_test(test_publish_minor_switch),
    };
    return cmocka_run_group_tests(tests, s_setup, pubfx_teardown);
}
