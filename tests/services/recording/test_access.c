/* access: supervised retrieval (调阅监督). record.get for the agency's own identities and
 * the legal office, with a reason; another agency and svc: identities refused; every
 * retrieval, allowed or refused, in the access log before the answer; sensitive records
 * redacted for roles the agency does not allow, a list the agency sets itself
 * (record.classified_roles.put); record.access_log for the legal office. */
#include "rfx.h"

static json_t *
s_get(rpc_client_t *c, int id, const char *reason, char *code)
{
    char body[256];
    if (reason)
        snprintf(body, sizeof body, "{\"case_id\":%d,\"reason\":\"%s\"}", id, reason);
    else
        snprintf(body, sizeof body, "{\"case_id\":%d}", id);
    return rfx_call(c, "record.get", body, code, 40);
}

static void
s_fixture_case(rfx_t *fx)
{
    rfx_open(fx, fx->code_a, 11, "penalty", "PEN-1", false);
    rfx_record(fx, fx->code_a, 11, "penalty", "PEN-1", 1, "investigation", "video", "sensitive");
    rfx_record(fx, fx->code_a, 11, "penalty", "PEN-1", 2, "investigation", "text", "internal");
    rfx_open(fx, fx->code_b, 12, "penalty", "PEN-B", false);
    rfx_flush(fx);
}

static void
test_own_agency_reads_with_reason(void **state)
{
    rfx_t *fx = *state;
    s_fixture_case(fx);
    char code[40];
    json_t *r = s_get(fx->ca, 11, "复查执法过程", code);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "count")), 3);
    json_t *es = json_object_get(r, "entries");
    assert_int_equal(json_array_size(es), 3);
    json_t *e1 = json_array_get(es, 0), *e2 = json_array_get(es, 1), *e3 = json_array_get(es, 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e1, "entry"), "event")),
                        "case.opened");
    /* The sensitive video: its place and hash only, for a role the agency did not allow. */
    assert_true(json_is_true(json_object_get(e2, "redacted")));
    assert_true(json_is_null(json_object_get(e2, "entry")));
    assert_int_equal(strlen(json_string_value(json_object_get(e2, "hash"))), 64);
    assert_true(json_is_false(json_object_get(e3, "redacted")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(e3, "entry"), "record"), "doc_type")),
                        "现场检查笔录");
    assert_string_equal(json_string_value(json_object_get(r, "head")),
                        json_string_value(json_object_get(e3, "hash")));
    assert_true(json_is_null(json_object_get(r, "next")));
    json_decref(r);

    /* The legal office sees it in full; so does a role the agency allows. */
    r = s_get(fx->cl, 11, "执法监督检查", code);
    assert_non_null(r);
    e2 = json_array_get(json_object_get(r, "entries"), 1);
    assert_true(json_is_false(json_object_get(e2, "redacted")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(e2, "entry"), "record"), "kind")),
                        "video");
    json_decref(r);
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO recording.classified_role VALUES ('%s', 'officer')",
             fx->code_a);
    rfx_sql(fx->chk, sql);
    r = s_get(fx->co, 11, "办案需要", code);
    assert_non_null(r);
    assert_true(json_is_false(
        json_object_get(json_array_get(json_object_get(r, "entries"), 1), "redacted")));
    json_decref(r);

    /* Paging: after and limit. */
    r = rfx_call(fx->ca, "record.get",
                 "{\"case_id\":11,\"reason\":\"分页\",\"after\":1,\"limit\":1}", code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "entries")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "next")), 2);
    json_decref(r);

    /* Each allowed retrieval is logged with who, why and the case. */
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.access_log WHERE"
                                        " allowed AND op = 'record.get' AND case_id = 11"),
                     4);
    assert_int_equal(rfx_count(fx->chk,
                               "SELECT count(*) FROM recording.access_log WHERE"
                               " reason = '执法监督检查' AND identity LIKE '%:legal_office'"),
                     1);
}

static void
test_refusals_are_logged(void **state)
{
    rfx_t *fx = *state;
    s_fixture_case(fx);
    char code[40];
    /* Another agency. */
    assert_null(s_get(fx->cb, 11, "想看看", code));
    assert_string_equal(code, "forbidden");
    /* A service identity is not the agency's staff. */
    assert_null(s_get(fx->cs, 11, "运维", code));
    assert_string_equal(code, "forbidden");
    /* No reason stated. */
    assert_null(s_get(fx->ca, 11, NULL, code));
    assert_string_equal(code, "missing_field");
    /* No such case. */
    assert_null(s_get(fx->ca, 999, "查", code));
    assert_string_equal(code, "not_found");
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM recording.access_log WHERE NOT allowed AND identity ="
             " 'dept:%s:system' AND case_id = 11 AND agency = '%s' AND reason = '想看看'"
             " AND outcome = 'forbidden'",
             fx->code_b, fx->code_a);
    assert_int_equal(rfx_count(fx->chk, sql), 1);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.access_log"
                                        " WHERE NOT allowed"),
                     4);
    /* B's system cannot verify A's case either (logged too). */
    assert_null(rfx_call(fx->cb, "record.verify", "{\"case_id\":11}", code, sizeof code));
    assert_string_equal(code, "forbidden");
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.access_log"
                                        " WHERE NOT allowed"),
                     5);
    /* The log is append-only. */
    PGresult *r = PQexec(db_conn(fx->chk), "DELETE FROM recording.access_log");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
}

static void
test_access_log_for_legal_office_only(void **state)
{
    rfx_t *fx = *state;
    s_fixture_case(fx);
    char code[40];
    json_decref(s_get(fx->ca, 11, "一", code));
    assert_null(s_get(fx->cb, 11, "二", code));
    json_decref(s_get(fx->cl, 12, "三", code));

    assert_null(rfx_call(fx->ca, "record.access_log", "{}", code, sizeof code));
    assert_string_equal(code, "forbidden");
    json_t *r = rfx_call(fx->cl, "record.access_log", "{\"case_id\":11}", code, sizeof code);
    assert_non_null(r);
    json_t *es = json_object_get(r, "entries");
    assert_int_equal(json_array_size(es), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(es, 0), "reason")), "一");
    assert_true(json_is_false(json_object_get(json_array_get(es, 1), "allowed")));
    json_decref(r);
    char body[128];
    snprintf(body, sizeof body, "{\"identity\":\"dept:%s:legal_office\",\"limit\":10}", fx->code_l);
    r = rfx_call(fx->cl, "record.access_log", body, code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "entries")), 1);
    json_decref(r);
    r = rfx_call(fx->cl, "record.access_log", "{\"from\":0,\"to\":1}", code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "entries")), 0);
    json_decref(r);
    /* limit is 1..1000 on both paged ops. */
    static const char *const bad[] = {"{\"limit\":0}", "{\"limit\":1001}", "{\"limit\":-1}"};
    for (size_t i = 0; i < 3; i++) {
        assert_null(rfx_call(fx->cl, "record.access_log", bad[i], code, sizeof code));
        assert_string_equal(code, "bad_field");
    }
    r = rfx_call(fx->cl, "record.access_log", "{\"case_id\":11,\"limit\":1}", code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_array_size(json_object_get(r, "entries")), 1);
    json_decref(r);
    assert_null(rfx_call(fx->ca, "record.get", "{\"case_id\":11,\"reason\":\"x\",\"limit\":0}",
                         code, sizeof code));
    assert_string_equal(code, "bad_field");
}

/* The agency sets which of its roles read classified records in full
 * (record.classified_roles.put); the legal office may too; nobody else. */
static void
test_classified_roles_set_by_agency(void **state)
{
    rfx_t *fx = *state;
    s_fixture_case(fx);
    char code[40], body[256];
    json_t *r = s_get(fx->co, 11, "办案需要", code);
    assert_true(json_is_true(
        json_object_get(json_array_get(json_object_get(r, "entries"), 1), "redacted")));
    json_decref(r);

    /* A's system allows its officers. */
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"version\":0,\"roles\":[\"officer\"]}",
             fx->code_a);
    r = rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "roles"), 0)),
                        "officer");
    json_decref(r);
    r = s_get(fx->co, 11, "办案需要", code);
    assert_true(json_is_false(
        json_object_get(json_array_get(json_object_get(r, "entries"), 1), "redacted")));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(
                json_object_get(json_array_get(json_object_get(r, "entries"), 1), "entry"),
                "record"),
            "classification")),
        "sensitive");
    json_decref(r);

    /* The same version again: someone else changed it meanwhile. */
    assert_null(rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "version_conflict");
    /* Another agency's system, and an officer, may not set A's list. */
    assert_null(rfx_call(fx->cb, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "forbidden");
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"version\":1,\"roles\":[\"officer\"]}",
             fx->code_a);
    assert_null(rfx_call(fx->co, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "forbidden");
    assert_null(rfx_call(fx->cs, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "forbidden");
    /* Bad input names its field. */
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"version\":1,\"roles\":[\"Officer!\"]}",
             fx->code_a);
    assert_null(rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "bad_field");
    snprintf(body, sizeof body,
             "{\"agency\":\"%s\",\"version\":1,\"roles\":[\"officer\",\"officer\"]}", fx->code_a);
    assert_null(rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "bad_field");
    assert_null(rfx_call(fx->ca, "record.classified_roles.put",
                         "{\"agency\":\"11330400MB0000000\",\"version\":1,\"roles\":[]}", code,
                         sizeof code));
    assert_string_equal(code, "bad_field");
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"version\":1}", fx->code_a);
    assert_null(rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code));
    assert_string_equal(code, "missing_field");

    /* Withdrawn again: the officer sees the place and hash only. */
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"version\":1,\"roles\":[]}", fx->code_a);
    r = rfx_call(fx->ca, "record.classified_roles.put", body, code, sizeof code);
    assert_non_null(r);
    json_decref(r);
    r = s_get(fx->co, 11, "办案需要", code);
    assert_true(json_is_true(
        json_object_get(json_array_get(json_object_get(r, "entries"), 1), "redacted")));
    json_decref(r);
    /* The legal office may set any agency's list. */
    snprintf(body, sizeof body,
             "{\"agency\":\"%s\",\"version\":2,\"roles\":[\"officer\",\"archivist\"]}", fx->code_a);
    r = rfx_call(fx->cl, "record.classified_roles.put", body, code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    json_decref(r);

    /* get: the list in force and who set it; not another agency's. */
    snprintf(body, sizeof body, "{\"agency\":\"%s\"}", fx->code_a);
    r = rfx_call(fx->co, "record.classified_roles.get", body, code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 3);
    assert_int_equal(json_array_size(json_object_get(r, "roles")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "roles"), 0)),
                        "archivist");
    char who[80];
    snprintf(who, sizeof who, "dept:%s:legal_office", fx->code_l);
    assert_string_equal(json_string_value(json_object_get(r, "updated_by")), who);
    json_decref(r);
    assert_null(rfx_call(fx->cb, "record.classified_roles.get", body, code, sizeof code));
    assert_string_equal(code, "forbidden");
    snprintf(body, sizeof body, "{\"agency\":\"%s\"}", fx->code_b);
    r = rfx_call(fx->cb, "record.classified_roles.get", body, code, sizeof code);
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "version")), 0);
    assert_true(json_is_null(json_object_get(r, "updated_by")));
    json_decref(r);

    /* Every change kept, with who made it; the history cannot be rewritten. */
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.classified_role_change"),
                     3);
    PGresult *pr = PQexec(db_conn(fx->chk), "DELETE FROM recording.classified_role_change");
    assert_int_equal(PQresultStatus(pr), PGRES_FATAL_ERROR);
    PQclear(pr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_own_agency_reads_with_reason, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_refusals_are_logged, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_access_log_for_legal_office_only, rfx_setup,
                                        rfx_teardown),
        cmocka_unit_test_setup_teardown(test_classified_roles_set_by_agency, rfx_setup,
                                        rfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
