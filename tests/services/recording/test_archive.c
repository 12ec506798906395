/* archive: at case.closed the manifest is sealed with the service's Ed25519 key;
 * record.verify checks the seal and names the first entry that differs from it, even
 * when the chain was rewritten consistently (every later hash and the head recomputed). */
#include <sys/stat.h>

#include "rfx.h"

static void
s_closed_case(rfx_t *fx, int id)
{
    rfx_open(fx, fx->code_a, id, "penalty", "PEN-1", false);
    for (int i = 1; i <= 3; i++)
        rfx_record(fx, fx->code_a, id, "penalty", "PEN-1", i, "investigation", "text", "internal");
    rfx_simple(fx, "case.decided", fx->code_a, id, "penalty", "PEN-1", "decided", "");
    rfx_flush(fx); /* the close in a later batch than most entries */
    rfx_simple(fx, "case.executed", fx->code_a, id, "penalty", "PEN-1", "executed", "");
    rfx_simple(fx, "case.closed", fx->code_a, id, "penalty", "PEN-1", "closed",
               "\"closed_on\":\"2024-03-01\",\"note\":null");
    rfx_flush(fx);
}

static json_t *
s_verify(rfx_t *fx, int id)
{
    char body[64], code[40];
    snprintf(body, sizeof body, "{\"case_id\":%d}", id);
    json_t *r = rfx_call(fx->cl, "record.verify", body, code, sizeof code);
    if (!r)
        fail_msg("verify: %s", code);
    return r;
}

static void
test_sealed_at_close(void **state)
{
    rfx_t *fx = *state;
    s_closed_case(fx, 41);
    assert_int_equal(rfx_count(fx->chk, "SELECT n FROM recording.archive WHERE case_id = 41"), 7);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.archive a JOIN"
                                        " recording.rcase c USING (case_id) WHERE a.head = c.head"
                                        " AND c.closed_at IS NOT NULL"),
                     1);
    assert_int_equal(rfx_count(fx->chk, "SELECT count(*) FROM recording.outbox WHERE topic LIKE"
                                        " 'record.archived.%'"),
                     1);
    json_t *v = s_verify(fx, 41);
    assert_true(json_is_true(json_object_get(v, "ok")));
    assert_true(json_is_true(json_object_get(v, "sealed")));
    assert_true(json_is_true(json_object_get(v, "seal_ok")));
    json_decref(v);
    /* The signature is an Ed25519 signature of the manifest by the service's key. */
    PGresult *r = db_query(fx->chk, "SELECT manifest, signature FROM recording.archive", 0, NULL);
    assert_non_null(r);
    size_t ml, sl;
    unsigned char *m = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &ml);
    unsigned char *s = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &sl);
    assert_int_equal(sl, crypto_sign_BYTES);
    assert_int_equal(crypto_sign_verify_detached(s, m, ml, fx->app.sign_pk), 0);
    PQfreemem(m);
    PQfreemem(s);
    PQclear(r);
    /* Not open cases. */
    rfx_open(fx, fx->code_a, 42, "penalty", "PEN-1", false);
    rfx_flush(fx);
    v = s_verify(fx, 42);
    assert_true(json_is_false(json_object_get(v, "sealed")));
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);
}

static void
test_seal_names_rewritten_entry(void **state)
{
    rfx_t *fx = *state;
    s_closed_case(fx, 51);
    s_closed_case(fx, 52);
    /* 51: entry 3 changed and the chain rewritten after it, head included: the chain
     * itself is consistent again, the seal is not. */
    rfx_sql(fx->chk, "ALTER TABLE recording.entry DISABLE TRIGGER entry_append_only");
    rfx_sql(fx->chk,
            "DO $$ DECLARE prev bytea; r record; BEGIN"
            " UPDATE recording.entry SET body = overlay(body placing '\\x39'::bytea from"
            "  position('s3://media'::bytea in body) + 12 for 1) WHERE case_id = 51 AND n = 3;"
            " SELECT hash INTO prev FROM recording.entry WHERE case_id = 51 AND n = 2;"
            " FOR r IN SELECT n, body FROM recording.entry WHERE case_id = 51 AND n >= 3"
            "  ORDER BY n LOOP prev := sha256(prev || r.body);"
            "  UPDATE recording.entry SET hash = prev WHERE case_id = 51 AND n = r.n; END LOOP;"
            " UPDATE recording.rcase SET head = prev WHERE case_id = 51; END $$");
    rfx_sql(fx->chk, "ALTER TABLE recording.entry ENABLE TRIGGER entry_append_only");
    json_t *v = s_verify(fx, 51);
    assert_true(json_is_false(json_object_get(v, "ok")));
    assert_int_equal(json_integer_value(json_object_get(v, "first_bad")), 3);
    assert_true(json_is_false(json_object_get(v, "seal_ok")));
    json_decref(v);

    /* 52: the manifest itself altered: the seal no longer matches it. */
    rfx_sql(fx->chk, "ALTER TABLE recording.archive DISABLE TRIGGER archive_append_only");
    rfx_sql(fx->chk, "UPDATE recording.archive SET manifest = overlay(manifest placing"
                     " '\\x30'::bytea from octet_length(manifest) for 1) WHERE case_id = 52");
    rfx_sql(fx->chk, "ALTER TABLE recording.archive ENABLE TRIGGER archive_append_only");
    v = s_verify(fx, 52);
    assert_true(json_is_false(json_object_get(v, "ok")));
    assert_string_equal(json_string_value(json_object_get(v, "seal_problem")),
                        "the seal does not match the manifest");
    json_decref(v);
}

static void
test_key_file(void **state)
{
    (void)state;
    char *dir = ts_mkdtemp("rec-key");
    char path[4200], err[512];
    recording_t a = {0}, b = {0};
    bool created = false;
    snprintf(path, sizeof path, "%s/k", dir);
    assert_int_equal(archive_key_load(path, false, &a, &created, err, sizeof err), -1);
    assert_int_equal(archive_key_load(path, true, &a, &created, err, sizeof err), 0);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(archive_key_load(path, true, &b, &created, err, sizeof err), 0);
    assert_false(created);
    assert_memory_equal(a.sign_pk, b.sign_pk, sizeof a.sign_pk);
    chmod(path, 0644);
    assert_int_equal(archive_key_load(path, true, &b, &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    char *bad = ts_write_tmp("rec-badkey", "not hex\n");
    chmod(bad, 0600);
    assert_int_equal(archive_key_load(bad, true, &b, &created, err, sizeof err), -1);
    assert_non_null(strstr(err, "64 hex digits"));
    free(bad);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sealed_at_close, rfx_setup, rfx_teardown),
        cmocka_unit_test_setup_teardown(test_seal_names_rewritten_entry, rfx_setup, rfx_teardown),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
