/* chain: canonical entry bytes, the SHA-256 chain built from intake's case events, and
 * record.verify naming the first entry that was altered directly in PostgreSQL. */
#include "rfx.h"

/* ---- Pure ------------------------------------------------------------------------- */

static void
s_entry_from_json(const char *topic, const char *json, chain_entry_t *e, chain_facts_t *f,
                  evmsg_err_t *err, int *rc)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    assert_int_equal(jsonmp_from_json(json, strlen(json), "data", 1, &b, NULL), 0);
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode_map(b.data, b.size, &msg, err), 0);
    evmsg_map_t d = evmsg_data(msg, err);
    *rc = chain_entry_from_event(topic, 7, 1700000000123, &d, b.data, b.size, e, f, err);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&b);
}

static void
test_canonical_roundtrip(void **state)
{
    (void)state;
    char topic[64];
    char code[19];
    rfx_code(code, "11330400MB0000001");
    snprintf(topic, sizeof topic, "case.recorded.%s", code);
    chain_entry_t e, d;
    chain_facts_t f;
    evmsg_err_t err = {0};
    int rc;
    s_entry_from_json(topic,
                      "{\"case_id\":12,\"case_no\":\"C-12\",\"type\":\"penalty\",\"matter_code\":"
                      "\"PEN-1\",\"state\":\"open\",\"record_no\":3,\"stage\":\"investigation\","
                      "\"kind\":\"video\",\"doc_type\":\"现场检查笔录\",\"officers\":[\"A001\","
                      "\"A002\"],\"device\":\"DV-9\",\"started_at\":1,\"ended_at\":2,\"media\":"
                      "{\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
                      "abcdef\",\"uri\":\"s3://x\",\"size\":99},\"classification\":\"sensitive\"}",
                      &e, &f, &err, &rc);
    assert_int_equal(rc, 1);
    assert_int_equal(e.case_id, 12);
    assert_int_equal(e.stage, CHAIN_INVESTIGATION);
    assert_string_equal(e.record.classification, "sensitive");
    assert_string_equal(f.matter_code, "PEN-1");
    e.n = 4;
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    assert_int_equal(chain_encode(&e, &a), 0);
    assert_int_equal(chain_decode(a.data, a.size, &d, &err), 0);
    assert_int_equal(chain_encode(&d, &b), 0);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.data, b.data, a.size);
    assert_string_equal(d.officers[1], "A002");
    assert_string_equal(d.record.device, "DV-9");
    assert_int_equal(d.seq, 7);
    assert_int_equal(d.at, 1700000000123);

    /* The same entry with "n" as uint16 (0xcd 00 04) instead of fixint: not canonical. */
    msgpack_sbuffer c;
    msgpack_sbuffer_init(&c);
    const char *p = memmem(a.data, a.size, "\xa1n\x04", 3);
    assert_non_null(p);
    size_t off = (size_t)(p - a.data) + 2;
    msgpack_sbuffer_write(&c, a.data, off);
    msgpack_sbuffer_write(&c, "\xcd\x00\x04", 3);
    msgpack_sbuffer_write(&c, a.data + off + 1, a.size - off - 1);
    evmsg_err_t err2 = {0};
    assert_int_equal(chain_decode(c.data, c.size, &d, &err2), -1);
    assert_string_equal(err2.reason, "not canonical");

    /* hash_0 is 32 zero bytes: SHA-256 of them alone is the well-known value. */
    uint8_t h[CHAIN_HASH_LEN];
    char hex[65];
    chain_hash(NULL, "", 0, h);
    assert_string_equal(chain_hex(h, hex),
                        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    msgpack_sbuffer_destroy(&c);

    /* Not a case event; a case event that breaks its contract. */
    snprintf(topic, sizeof topic, "registry.officer.%s", code);
    s_entry_from_json(topic, "{\"key\":\"x\"}", &e, &f, &err, &rc);
    assert_int_equal(rc, 0);
    snprintf(topic, sizeof topic, "case.recorded.%s", code);
    evmsg_err_t err3 = {0};
    s_entry_from_json(topic,
                      "{\"case_id\":12,\"case_no\":\"C-12\",\"type\":\"penalty\",\"matter_code\":"
                      "\"PEN-1\",\"state\":\"open\",\"record_no\":3,\"stage\":\"later\"}",
                      &e, &f, &err3, &rc);
    assert_int_equal(rc, -1);
    assert_string_equal(err3.path, "data.stage");
}

/* ---- From events ------------------------------------------------------------------ */

/* A case with n entries: opened, records, proposed, decided. */
static void
s_case(rfx_t *fx, const char *agency, int id, int records)
{
    rfx_open(fx, agency, id, "penalty", "PEN-1", false);
    for (int i = 1; i <= records; i++)
        rfx_record(fx, agency, id, "penalty", "PEN-1", i, "investigation", "text", "internal");
    rfx_simple(fx, "case.proposed", agency, id, "penalty", "PEN-1", "proposed",
               "\"version\":1,\"hearing\":false");
}

static json_t *
s_verify(rfx_t *fx, rpc_client_t *c, int id)
{
    char body[64], code[40];
    snprintf(body, sizeof body, "{\"case_id\":%d}", id);
    json_t *r = rfx_call(c, "record.verify", body, code, sizeof code);
    if (!r)
        fail_msg("record.verify %d: %s", id, code);
    (void)fx;
    return r;
}

static void
test_chain_from_events(void **state)
{
    rfx_t *fx = *state;
    s_case(fx, fx->code_a, 101, 3);
    rfx_flush(fx);
    s_case(fx, fx->code_a, 102, 1); /* the next batch continues 101's chain too */
    rfx_record(fx, fx->code_a, 101, "penalty", "PEN-1", 4, "review_decision", "text", "public");
    rfx_flush(fx);

    assert_int_equal(rfx_count(fx->chk, "SELECT n FROM recording.rcase WHERE case_id = 101"), 6);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.entry WHERE case_id = 101"),
                     6);
    assert_int_equal(rfx_count(fx->chk, "SELECT n FROM recording.rcase WHERE case_id = 102"), 3);
    /* The head is the last entry's hash, and every entry's hash chains from the one before. */
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.rcase c JOIN"
                                        " recording.entry e ON e.case_id = c.case_id AND"
                                        " e.n = c.n AND e.hash = c.head"),
                     2);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.entry e JOIN"
                                        " recording.entry p ON p.case_id = e.case_id AND"
                                        " p.n = e.n - 1 WHERE e.hash <> sha256(p.hash || e.body)"),
                     0);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.entry WHERE n = 1 AND"
                                        " hash <> sha256(decode(repeat('00', 32), 'hex') || body)"),
                     0);
    /* One record.appended per entry, carrying the head. */
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.outbox WHERE topic LIKE"
                                        " 'record.appended.%'"),
                     9);
    json_t *v = s_verify(fx, fx->ca, 101);
    assert_true(json_is_true(json_object_get(v, "ok")));
    assert_int_equal(json_integer_value(json_object_get(v, "count")), 6);
    assert_true(json_is_null(json_object_get(v, "first_bad")));
    json_decref(v);
}

static void
test_verify_names_altered_entry(void **state)
{
    rfx_t *fx = *state;
    for (int id = 201; id <= 204; id++)
        s_case(fx, fx->code_a, id, 4);
    rfx_flush(fx);

    /* The table refuses changes... */
    PGresult *r = PQexec(db_conn(fx->chk), "UPDATE recording.entry SET stage = 'start'"
                                           " WHERE case_id = 201 AND n = 3");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    /* ... but whoever owns it can switch that off: verify still finds each change. */
    rfx_sql(fx->chk, "ALTER TABLE recording.entry DISABLE TRIGGER entry_append_only");
    /* 201: one byte of entry 3's body changed (the media uri's last digit). */
    rfx_sql(fx->chk, "UPDATE recording.entry SET body = overlay(body placing '\\x39'::bytea"
                     " from position('s3://media'::bytea in body) + 12 for 1)"
                     " WHERE case_id = 201 AND n = 3");
    /* 202: entry 2's stored hash replaced. */
    rfx_sql(fx->chk, "UPDATE recording.entry SET hash = sha256('x'::bytea)"
                     " WHERE case_id = 202 AND n = 2");
    /* 203: entry 4 deleted. */
    rfx_sql(fx->chk, "DELETE FROM recording.entry WHERE case_id = 203 AND n = 4");
    /* 204: entry 5's stage column changed, its body left alone. */
    rfx_sql(fx->chk, "UPDATE recording.entry SET stage = 'start' WHERE case_id = 204 AND n = 5");
    rfx_sql(fx->chk, "ALTER TABLE recording.entry ENABLE TRIGGER entry_append_only");

    int want[][2] = {{201, 3}, {202, 2}, {203, 4}, {204, 5}};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = s_verify(fx, fx->cl, want[i][0]);
        assert_true(json_is_false(json_object_get(v, "ok")));
        if (json_integer_value(json_object_get(v, "first_bad")) != want[i][1])
            fail_msg("case %d: first_bad %lld, want %d (%s)", want[i][0],
                     json_integer_value(json_object_get(v, "first_bad")), want[i][1],
                     json_string_value(json_object_get(v, "problem")));
        json_decref(v);
    }
    /* Untouched cases still verify. */
    s_case(fx, fx->code_a, 205, 1);
    rfx_flush(fx);
    json_t *v = s_verify(fx, fx->cs, 205);
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);
}

static void
test_bad_event_rejected_rest_applied(void **state)
{
    rfx_t *fx = *state;
    rfx_open(fx, fx->code_a, 301, "penalty", "PEN-1", false);
    rfx_simple(fx, "case.recorded", fx->code_a, 301, "penalty", "PEN-1", "open",
               "\"record_no\":1,\"stage\":\"start\",\"kind\":\"text\"");
    rfx_simple(fx, "case.deadline.warning", fx->code_a, 301, "penalty", "PEN-1", "open", "");
    rfx_flush(fx);
    assert_int_equal(rfx_count(fx->chk, "SELECT n FROM recording.rcase WHERE case_id = 301"), 2);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.bus_rejected"
                                        " WHERE topic LIKE 'case.recorded.%'"),
                     1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_roundtrip),
        cmocka_unit_test_setup_teardown(test_chain_from_events, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_verify_names_altered_entry, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_event_rejected_rest_applied, rfx_setup,
                                        rfx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
