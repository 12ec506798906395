/* Publication's set-based event handling: many intake events in one events_handle call,
 * as the bus subscriber hands them over when it catches up (up to BUS_BATCH_MAX a
 * transaction). What must hold is what one event at a time gives: a draft per decided
 * case with the party of its case.opened and the agency's name, publication.drafted in
 * stream order, a 轻微 penalty kept exempt, a decision without its case.opened skipped, a
 * revocation later in the same batch withdrawing the draft made before it, the
 * statistics facts counted once; and the same batch delivered again changes nothing.
 * And an approval whose row another transaction changed meanwhile (a warning timer
 * firing) still publishes it. */
#include <pthread.h>
#include <time.h>

#include "pubfx.h"

#define NCASE 60

typedef struct {
    char topic[128];
    char *json;
} s_in_t;

typedef struct {
    s_in_t in[4 * NCASE + 16];
    int n;
} s_list_t;

static void
s_add(s_list_t *l, const char *topic, const char *json)
{
    assert_true(l->n < (int)(sizeof l->in / sizeof l->in[0]));
    snprintf(l->in[l->n].topic, sizeof l->in[l->n].topic, "%s", topic);
    l->in[l->n].json = strdup(json);
    assert_non_null(l->in[l->n].json);
    l->n++;
}

/* Delivers the whole list to handler (events_handle or events_handle_stats) in one call
 * and one transaction, as bus_sub does with a batch. */
static void
s_deliver(pubfx_t *fx, const s_list_t *l, bus_batch_fn *handler, const char *src)
{
    bus_event_t *ev = calloc((size_t)l->n, sizeof *ev);
    evmsg_t **msg = calloc((size_t)l->n, sizeof *msg);
    assert_non_null(ev);
    assert_non_null(msg);
    for (int i = 0; i < l->n; i++) {
        msgpack_sbuffer data, env;
        msgpack_sbuffer_init(&data);
        msgpack_sbuffer_init(&env);
        jsonmp_err_t jerr = {0};
        if (jsonmp_from_json(l->in[i].json, strlen(l->in[i].json), "data", 2, &data, &jerr) != 0)
            fail_msg("json: %s", jerr.reason);
        evmsg_header_t h = {(uint64_t)i + 1, (uint64_t)i + 1, "", fx->at_ms, 1};
        snprintf(h.src, sizeof h.src, "%s", src);
        evmsg_err_t err = {0};
        assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
        assert_int_equal(evmsg_decode(env.data, env.size, &msg[i], &err), 0);
        ev[i] =
            (bus_event_t){(uint64_t)i + 1, (uint64_t)i + 1, fx->at_ms, 1, l->in[i].topic, msg[i]};
        msgpack_sbuffer_destroy(&data);
        msgpack_sbuffer_destroy(&env);
    }
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(handler(fx->db, ev, l->n, &fx->app), 0);
    assert_int_equal(db_commit(fx->db), 0);
    for (int i = 0; i < l->n; i++)
        evmsg_destroy(&msg[i]);
    free(msg);
    free(ev);
}

static void
s_free(s_list_t *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->in[i].json);
    l->n = 0;
}

static void
s_opened(s_list_t *l, int id, const char *type)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"B-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":%s,\"summary\":\"无证经营\","
             "\"opened_on\":\"2026-03-02\"}",
             id, id, type, id % 2 ? PUBFX_PERSON : PUBFX_ORG);
    s_add(l, "case.opened." AGENCY, json);
}

static void
s_proposed(s_list_t *l, int id)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"B-%d\",\"type\":\"licence\",\"version\":1,"
             "\"requires_review\":false}",
             id, id);
    s_add(l, "case.proposed." AGENCY, json);
}

static void
s_decided(s_list_t *l, int id, const char *type, const char *circumstance)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"B-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉许〔2026〕%d号\","
             "\"decision_date\":\"2026-03-10\",\"reviewed\":false,\"category\":\"普通\","
             "\"content\":\"准予许可\",\"fine\":\"0\",\"confiscation\":\"0\","
             "\"legal_basis\":\"《行政许可法》第三十八条\",\"violation_code\":null,"
             "\"circumstance\":\"%s\"}",
             id, id, type, id, circumstance);
    s_add(l, "case.decided." AGENCY, json);
}

static int
s_setup(void **state)
{
    *state = pubfx_new("pub_batch", "test_publication_batch");
    return 0;
}

static void
test_batch_is_as_one_at_a_time(void **state)
{
    pubfx_t *fx = *state;
    s_list_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    s_add(l, "registry.agency." AGENCY,
          "{\"action\":\"put\",\"key\":\"" AGENCY "\",\"version\":1,\"entry\":{"
          "\"agency\":\"" AGENCY "\",\"version\":1,\"name\":\"嘉峪关市市场监督管理局\","
          "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"李四\","
          "\"head_title\":\"局长\"}}");
    /* Interleaved as intake emits them: a case's events in order, cases overlapping. */
    for (int id = 1; id <= NCASE; id++) {
        const char *type = id == NCASE ? "penalty" : "licence";
        s_opened(l, id, type);
        s_proposed(l, id);
        if (id > 2)
            s_decided(l, id - 2, "licence", "general");
    }
    s_decided(l, NCASE - 1, "licence", "general");
    s_decided(l, NCASE, "penalty", "minor"); /* 轻微: kept exempt, never drafted */
    s_decided(l, 5, "licence", "general");   /* decided again: nothing new */
    s_decided(l, 999, "licence", "general"); /* no case.opened: skipped, the stream goes on */
    s_add(l, "case.revoked." AGENCY,
          "{\"case_id\":7,\"case_no\":\"B-7\",\"type\":\"licence\",\"kind\":\"revoke\","
          "\"reason\":\"以欺骗手段取得许可\",\"revoked_on\":\"2026-03-12\"}");
    s_decided(l, 1000, "licence", "general"); /* after the revocation: still skipped */
    s_deliver(fx, l, events_handle, "intake");

    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record"), NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record "
                                     "WHERE state = 'exempt'"),
                     1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record "
                                     "WHERE case_id = 7 AND state = 'withdrawn'"),
                     1);
    /* Every draft has its own case's party (masked) and the agency's name. */
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record WHERE "
                                     "body->'agency'->>'name' = '嘉峪关市市场监督管理局' AND "
                                     "party_name = CASE WHEN case_id % 2 = 1 THEN '张**' "
                                     "ELSE '嘉峪关某某商贸有限公司' END AND "
                                     "case_no = 'B-' || case_id"),
                     NCASE);
    /* publication.drafted: one per draft; the ids follow the stream's order. */
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.drafted." AGENCY "'"),
                     NCASE - 1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM (SELECT "
                                     "row_number() OVER (ORDER BY case_id) AS n, "
                                     "row_number() OVER (ORDER BY id) AS m "
                                     "FROM publication.record) x WHERE n = m"),
                     NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.withdrawn." AGENCY "'"),
                     1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_case"), NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_proposal"), NCASE);

    /* The same batch again (the bus redelivers after a crash): nothing changes. */
    s_deliver(fx, l, events_handle, "intake");
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record"), NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox"), NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_case"), NCASE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record "
                                     "WHERE case_id = 7 AND state = 'withdrawn'"),
                     1);
    s_free(l);

    /* The statistics stream in one batch too, a fact repeated within it counted once. */
    for (int id = 1; id <= 20; id++) {
        char json[256];
        snprintf(json, sizeof json, "{\"case_id\":%d,\"proposal_version\":1}", id);
        s_add(l, "review.not_required." AGENCY, json);
        if (id % 5 == 0)
            s_add(l, "review.not_required." AGENCY, json);
        if (id % 4 == 0)
            s_add(l, "review.due_soon." AGENCY, json); /* not counted */
    }
    s_deliver(fx, l, events_handle_stats, "review");
    s_deliver(fx, l, events_handle_stats, "review");
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_review "
                                     "WHERE outcome = 'not_required'"),
                     20);
    s_free(l);
    free(l);
}

typedef struct {
    const char *url;
    db_t *holder; /* holds the row lock; committed once the approval waits on it */
    bool saw_wait;
} s_race_t;

static void *
s_release(void *arg)
{
    s_race_t *r = arg;
    db_t *watch = db_new(r->url, "test_publication_batch_watch");
    if (watch && db_connect(watch, 5000) == 0) {
        /* Until the approval's backend waits on the lock (at most 10 s). */
        for (int i = 0; i < 1000 && !r->saw_wait; i++) {
            PGresult *q = db_query(watch,
                                   "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                   "= 'test_publication_batch' AND wait_event_type = 'Lock'",
                                   0, NULL);
            r->saw_wait = q && PQntuples(q) == 1 && strcmp(PQgetvalue(q, 0, 0), "1") == 0;
            PQclear(q);
            if (!r->saw_wait)
                nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        }
    }
    db_destroy(&watch);
    db_commit(r->holder);
    return NULL;
}

static void
test_approve_row_changed_meanwhile(void **state)
{
    pubfx_t *fx = *state;
    s_list_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    s_opened(l, 500, "licence");
    s_decided(l, 500, "licence", "general");
    s_deliver(fx, l, events_handle, "intake");
    s_free(l);
    free(l);
    char id[24], st[16] = "";
    pubfx_record(fx, AGENCY, 500, id);

    s_race_t race = {fx->url, db_new(fx->url, "test_publication_batch_holder"), false};
    assert_non_null(race.holder);
    assert_int_equal(db_connect(race.holder, 5000), 0);
    assert_int_equal(db_begin(race.holder), 0);
    PGresult *r =
        db_query(race.holder, "UPDATE publication.record SET warned = true WHERE id = $1::bigint",
                 1, (const char *[]){id});
    assert_non_null(r);
    PQclear(r);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_release, &race), 0);
    assert_int_equal(db_begin(fx->db), 0);
    int rc = workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st);
    assert_int_equal(db_commit(fx->db), 0);
    pthread_join(t, NULL);
    db_destroy(&race.holder);
    assert_true(race.saw_wait);
    assert_int_equal(rc, 0);
    assert_string_equal(st, "published");
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM publication.record WHERE id = %s AND state = 'published' "
             "AND warned",
             id);
    assert_int_equal(pubfx_count(fx, sql), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_is_as_one_at_a_time),
        cmocka_unit_test(test_approve_row_changed_meanwhile),
    };
    return cmocka_run_group_tests(tests, s_setup, pubfx_teardown);
}
