/* opinion: the reviewers' ops of sx-review (review.tasks, review.get, review.opinion,
 * review.staffing) against a real PostgreSQL and a real CURVE ROUTER behind ZAP, with
 * DEALER clients for each role. Tasks are opened by handing intake's events to the
 * subscriber's handler, as in test_events.c; the events review emits are read from its
 * outbox. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "../../../services/review/events.h"
#include "../../../services/review/opinion.h"
#include "ident.h"
#include "jsonmp.h"
#include "keys.h"
#include "tsupport.h"
#include "util.h"
#include "workday.h"

typedef struct {
    char pub[41], sec[41];
} s_pair_t;

enum { K_REV_A, K_REV_B, K_SYS_A, K_LEGAL, K_POOL_REV, K_N };

typedef struct {
    char *url;
    db_t *db, *srv_db;
    workday_t *cal;
    review_t app;
    uint64_t seq;
    char a[19], b[19], pool[19];
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    pthread_t thread;
    atomic_bool stop;
    s_pair_t server, k[K_N];
    rpc_client_t *c[K_N];
    int rid;
} fx_t;

static void *
s_server_thread(void *arg)
{
    fx_t *fx = arg;
    while (!atomic_load(&fx->stop))
        rpc_server_poll(fx->srv, 10);
    return NULL;
}

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

/* An rpc call; body JSON. The reply's result (if ok) as JSON in *json (malloc'ed). */
static rpc_reply_t
s_call(fx_t *fx, int who, const char *op, const char *body, char **json)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr;
    if (jsonmp_from_json(body, strlen(body), "body", 2, &sb, &jerr) < 0) {
        char b[256];
        fail_msg("json: %s", jsonmp_err_str(&jerr, b, sizeof b));
    }
    char rid[32];
    snprintf(rid, sizeof rid, "r%d", ++fx->rid);
    rpc_reply_t r = {0};
    evmsg_err_t err = {{0}, {0}};
    if (rpc_call(fx->c[who], op, rid, sb.data, sb.size, 3000, 2, &r, &err) != 0)
        fail_msg("%s: %s %s", op, err.path, err.reason);
    msgpack_sbuffer_destroy(&sb);
    if (json)
        *json = r.ok ? jsonmp_to_json(r.result, r.result_len, "result", NULL, NULL) : NULL;
    return r;
}

static void
s_expect_error(fx_t *fx, int who, const char *op, const char *body, const char *code,
               const char *field)
{
    rpc_reply_t r = s_call(fx, who, op, body, NULL);
    if (r.ok)
        fail_msg("%s: expected %s, got ok", op, code);
    if (strcmp(r.code, code) != 0 || strcmp(r.field, field) != 0)
        fail_msg("%s: expected %s at %s, got %s at %s (%s)", op, code, field, r.code, r.field,
                 r.en);
    rpc_reply_clear(&r);
}

#define P(k, v) "\"" k "\":{\"pass\":" v ",\"comment\":\"" k "\"}"
#define POINTS(subject, referral)                                                                  \
    "{" P("subject", subject) "," P("facts", "true") "," P("basis", "true") "," P(                 \
        "discretion", "true") "," P("procedure", "true") "," P("documents",                        \
                                                               "true") "," P("referral",           \
                                                                             referral) "}"

static char s_b[4096];

static const char *
s_opinion(long long task, const char *reviewer, const char *verdict, const char *points)
{
    snprintf(s_b, sizeof s_b,
             "{\"task_id\":%lld,\"reviewer\":\"%s\",\"verdict\":\"%s\",\"summary\":\"意见\","
             "\"points\":%s}",
             task, reviewer, verdict, points);
    return s_b;
}

static long long
s_task(fx_t *fx, int case_id, int version)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM review.task WHERE case_id = %d AND version = %d",
             case_id, version);
    return s_count(fx, sql);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[512], dir[4096];
    fx->url = ts_fresh_db("revop");
    fx->db = db_new(fx->url, "review-test");
    fx->srv_db = db_new(fx->url, "review-srv");
    assert_int_equal(db_connect(fx->db, 5000), 0);
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    assert_true(bus_migrate(fx->db, REVIEW_SCHEMA, dir) >= 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", ts_env("SX_TOP"));
    assert_true(rpc_migrate(fx->db, REVIEW_SCHEMA, dir) >= 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/review", ts_env("SX_TOP"));
    assert_true(db_migrate(fx->db, REVIEW_SCHEMA, dir) >= 0);
    assert_int_equal(events_prepare(fx->db), 0);
    fx->cal = workday_load_default(err, sizeof err);
    s_code(fx->a, "11330400MB0000001");
    s_code(fx->b, "11330400MB0000002");
    s_code(fx->pool, "11330400MB0000009");
    fx->app = (review_t){.calendar = fx->cal, .pool_agency = fx->pool};

    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"R-ALL\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"id\":\"R-ALL\",\"description\":\"所有处罚\",\"case_type\":\"penalty\","
             "\"active\":true}}",
             fx->a);
    s_ev(fx, "registry.review_rule", fx->a, j);
    s_officer(fx, fx->a, "A001", 1, false, false, true);
    s_officer(fx, fx->a, "A002", 1, true, true, true);
    s_officer(fx, fx->a, "A003", 1, true, false, true);
    s_officer(fx, fx->b, "B001", 1, true, true, true);
    s_officer(fx, fx->b, "B002", 1, false, false, true);
    s_officer(fx, fx->pool, "P001", 1, true, true, true);

    static const char *const roles[K_N][2] = {{"a", "reviewer"},
                                              {"b", "reviewer"},
                                              {"a", "system"},
                                              {"p", "legal_office"},
                                              {"p", "reviewer"}};
    assert_int_equal(keys_keypair(fx->server.pub, fx->server.sec), 0);
    char text[2048] = "";
    for (int i = 0; i < K_N; i++) {
        assert_int_equal(keys_keypair(fx->k[i].pub, fx->k[i].sec), 0);
        const char *code = roles[i][0][0] == 'a' ? fx->a : roles[i][0][0] == 'b' ? fx->b : fx->pool;
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "%s dept:%s:%s\n", fx->k[i].pub, code, roles[i][1]);
    }
    char *path = ts_write_tmp("review-keys", text);
    keys_t *keys = keys_load(path, err, sizeof err);
    free(path);
    assert_non_null(keys);
    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "review", "dept:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "review", fx->server.sec, "tcp://127.0.0.1:*",
                             fx->srv_db, REVIEW_SCHEMA, err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    assert_int_equal(opinion_prepare(fx->srv_db), 0);
    assert_int_equal(opinion_register(fx->srv, &fx->app), 0);
    assert_int_equal(reviewers_register(fx->srv, &fx->app), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_server_thread, fx), 0);
    for (int i = 0; i < K_N; i++) {
        fx->c[i] = rpc_client_new(fx->ctx, rpc_server_endpoint(fx->srv), fx->server.pub,
                                  fx->k[i].pub, fx->k[i].sec, err, sizeof err);
        assert_non_null(fx->c[i]);
    }
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < K_N; i++)
        rpc_client_destroy(&fx->c[i]);
    atomic_store(&fx->stop, true);
    pthread_join(fx->thread, NULL);
    rpc_server_destroy(&fx->srv);
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    workday_destroy(&fx->cal);
    db_destroy(&fx->db);
    db_destroy(&fx->srv_db);
    free(fx->url);
    free(fx);
    return 0;
}

static void
test_tasks_and_get(void **state)
{
    fx_t *fx = *state;
    s_opened(fx, 1, "\"A001\",\"A002\"");
    s_ev(fx, "case.recorded", fx->a,
         "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
         "\"state\":\"open\",\"record_no\":1,\"stage\":\"investigation\",\"officers\":[\"A001\"]}");
    s_propose(fx, fx->a, 1, 1, "1.5", NULL);
    char *json = NULL;
    rpc_reply_t r = s_call(fx, K_REV_A, "review.tasks", "{\"reviewer\":\"A003\"}", &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"case_id\":1,\"proposal_version\":1"));
    assert_non_null(strstr(json, "\"reviewer\":\"A003\""));
    assert_non_null(strstr(json, "\"rules\":[\"R-ALL\"]"));
    free(json);
    rpc_reply_clear(&r);
    /* another agency's reviewers see nothing of it */
    r = s_call(fx, K_REV_B, "review.tasks", "{}", &json);
    assert_true(r.ok);
    assert_string_equal(json, "{\"tasks\":[]}");
    free(json);
    rpc_reply_clear(&r);

    char body[64];
    snprintf(body, sizeof body, "{\"task_id\":%lld}", s_task(fx, 1, 1));
    r = s_call(fx, K_REV_A, "review.get", body, &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"handlers\":[\"A001\",\"A002\"]"));
    assert_non_null(strstr(json, "\"discretion\":{\"flags\":[],\"note\":\"\"}"));
    assert_non_null(strstr(json, "\"proposal\":{\"case_id\":1,"));
    assert_non_null(strstr(json, "\"fine\":\"1.5\""));
    assert_non_null(strstr(json, "\"records_by_stage\":{\"start\":0,\"investigation\":1,"
                                 "\"review_decision\":0,\"service_execution\":0}"));
    free(json);
    rpc_reply_clear(&r);
    r = s_call(fx, K_SYS_A, "review.get", body, &json); /* the department: its own case */
    assert_true(r.ok);
    free(json);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_REV_B, "review.get", body, "forbidden", "body.task_id");
    s_expect_error(fx, K_REV_A, "review.get", "{\"task_id\":999}", "not_found", "body.task_id");
}

static void
test_refusals(void **state)
{
    fx_t *fx = *state;
    s_opened(fx, 1, "\"A001\",\"A002\"");
    s_propose(fx, fx->a, 1, 1, "1.5", NULL);
    long long t = s_task(fx, 1, 1);
    /* wrong role: the department may not give an opinion */
    s_expect_error(fx, K_SYS_A, "review.opinion",
                   s_opinion(t, "A003", "approve", POINTS("true", "true")), "forbidden", "op");
    /* another agency's reviewers */
    s_expect_error(fx, K_REV_B, "review.opinion",
                   s_opinion(t, "B001", "approve", POINTS("true", "true")), "forbidden",
                   "body.task_id");
    /* the task is another reviewer's; a handler never reviews */
    s_expect_error(fx, K_REV_A, "review.opinion",
                   s_opinion(t, "A002", "approve", POINTS("true", "true")), "forbidden",
                   "body.reviewer");
    /* a missing point, named */
    snprintf(s_b, sizeof s_b,
             "{\"task_id\":%lld,\"reviewer\":\"A003\",\"verdict\":\"approve\",\"points\":{" P(
                 "subject", "true") "," P("basis", "true") "}}",
             t);
    rpc_reply_t r = s_call(fx, K_REV_A, "review.opinion", s_b, NULL);
    assert_false(r.ok);
    assert_string_equal(r.code, "missing_field");
    assert_string_equal(r.field, "body.points.facts");
    assert_string_equal(r.zh, "缺少审核要点：事实是否清楚");
    rpc_reply_clear(&r);
    /* a verdict against its points */
    s_expect_error(fx, K_REV_A, "review.opinion",
                   s_opinion(t, "A003", "approve", POINTS("false", "true")), "bad_field",
                   "body.verdict");
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.opinion"), 0);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.outbox"), 0);

    /* the opinion, then a second one on the closed task */
    r = s_call(fx, K_REV_A, "review.opinion",
               s_opinion(t, "A003", "approve", POINTS("true", "true")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    r = s_call(fx, K_REV_A, "review.opinion",
               s_opinion(t, "A003", "problems", POINTS("false", "true")), NULL);
    assert_false(r.ok);
    assert_string_equal(r.code, "task_closed");
    assert_string_equal(r.field, "body.task_id");
    rpc_reply_clear(&r);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM review.outbox"), 1);
}

static void
test_return_and_resubmit(void **state)
{
    fx_t *fx = *state;
    char topic[160], want[160], *json;
    s_opened(fx, 1, "\"A001\"");
    s_propose(fx, fx->a, 1, 1, "1.5", NULL);
    long long t1 = s_task(fx, 1, 1);
    char reviewer[65];
    s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 1", reviewer, sizeof reviewer);
    rpc_reply_t r = s_call(fx, K_REV_A, "review.opinion",
                           s_opinion(t1, reviewer, "problems", POINTS("false", "true")), &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"status\":\"returned\""));
    free(json);
    rpc_reply_clear(&r);
    json = s_last_event(fx, topic, sizeof topic);
    snprintf(want, sizeof want, "review.returned.%s", fx->a);
    assert_string_equal(topic, want);
    /* exactly review.md's contract: four keys, in its order */
    static const char head[] = "{\"case_id\":1,\"proposal_version\":1,\"opinion\":\"法制审核意见书";
    assert_true(strncmp(json, head, strlen(head)) == 0);
    assert_non_null(strstr(json, "一、主体是否合法：否。subject"));
    assert_non_null(strstr(json, "审核意见：存在问题。意见"));
    char tail[128];
    snprintf(tail, sizeof tail, "\",\"reviewer\":\"%s\"}", reviewer);
    assert_non_null(strstr(json, tail));
    free(json);
    /* the document is kept, as text and HTML */
    assert_int_equal(
        s_count(fx, "SELECT count(*) FROM review.opinion WHERE verdict = 'problems'"
                    " AND html LIKE '<!DOCTYPE html>%存在问题%' AND text LIKE '法制审核意见书%'"),
        1);

    /* the department proposes again: a new version, reviewed again */
    s_propose(fx, fx->a, 1, 2, "1.2", NULL);
    long long t2 = s_task(fx, 1, 2);
    assert_true(t2 > t1);
    s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 1 AND version = 2", reviewer,
          sizeof reviewer);
    r = s_call(fx, K_REV_A, "review.opinion",
               s_opinion(t2, reviewer, "approve", POINTS("true", "true")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    json = s_last_event(fx, topic, sizeof topic);
    snprintf(want, sizeof want, "review.approved.%s", fx->a);
    assert_string_equal(topic, want);
    assert_true(strncmp(json, "{\"case_id\":1,\"proposal_version\":2,", 34) == 0);
    free(json);
}

static void
test_referral_and_pool(void **state)
{
    fx_t *fx = *state;
    char topic[160], *json;
    /* every reviewer of A handled the case: the pool reviews it */
    s_opened(fx, 2, "\"A002\",\"A003\"");
    s_propose(fx, fx->a, 2, 1, "50", NULL);
    long long t = s_task(fx, 2, 1);
    s_expect_error(fx, K_REV_A, "review.opinion",
                   s_opinion(t, "A003", "refer", POINTS("true", "false")), "forbidden",
                   "body.task_id");
    rpc_reply_t r = s_call(fx, K_POOL_REV, "review.opinion",
                           s_opinion(t, "P001", "refer", POINTS("true", "false")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    json = s_last_event(fx, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.referred."));
    assert_non_null(strstr(topic, fx->a));
    assert_non_null(strstr(json, "审核意见：移送司法机关"));
    assert_non_null(strstr(json, "七、是否涉嫌犯罪需移送：是"));
    free(json);
}

static void
test_escalation_to_the_legal_office(void **state)
{
    fx_t *fx = *state;
    char topic[160], *json, body[256];
    s_opened(fx, 3, "\"A001\"");
    s_propose(fx, fx->a, 3, 1, "2", NULL);
    long long t = s_task(fx, 3, 1);
    char reviewer[65];
    s_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 3", reviewer, sizeof reviewer);
    snprintf(body, sizeof body, "{\"task_id\":%lld,\"reason\":\"承办机构不同意\"}", t);
    /* not yet returned */
    s_expect_error(fx, K_SYS_A, "review.escalate", body, "wrong_state", "body.task_id");
    rpc_reply_t r = s_call(fx, K_REV_A, "review.opinion",
                           s_opinion(t, reviewer, "problems", POINTS("true", "true")), NULL);
    assert_false(r.ok); /* problems needs a failed point */
    rpc_reply_clear(&r);
    snprintf(
        s_b, sizeof s_b,
        "{\"task_id\":%lld,\"reviewer\":\"%s\",\"verdict\":\"problems\",\"points\":{" P(
            "subject",
            "true") "," P("facts",
                          "false") "," P("basis",
                                         "true") "," P("discretion",
                                                       "true") "," P("procedure",
                                                                     "true") "," P("documents",
                                                                                   "true") "," P("r"
                                                                                                 "e"
                                                                                                 "f"
                                                                                                 "e"
                                                                                                 "r"
                                                                                                 "r"
                                                                                                 "a"
                                                                                                 "l",
                                                                                                 "t"
                                                                                                 "r"
                                                                                                 "u"
                                                                                                 "e") "}}",
        t, reviewer);
    r = s_call(fx, K_REV_A, "review.opinion", s_b, NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_REV_A, "review.escalate", body, "forbidden", "op");
    r = s_call(fx, K_SYS_A, "review.escalate", body, &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"status\":\"open\""));
    free(json);
    rpc_reply_clear(&r);
    json = s_last_event(fx, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.escalated."));
    free(json);
    s_expect_error(fx, K_SYS_A, "review.escalate", body, "already_escalated", "body.task_id");
    long long e =
        s_count(fx, "SELECT id FROM review.task WHERE case_id = 3 AND kind = 'escalated'");
    /* the legal office answers it; the pool's reviewers may not */
    r = s_call(fx, K_LEGAL, "review.tasks", "{}", &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"kind\":\"escalated\""));
    free(json);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_POOL_REV, "review.opinion",
                   s_opinion(e, "P001", "approve", POINTS("true", "true")), "forbidden",
                   "body.task_id");
    r = s_call(fx, K_LEGAL, "review.opinion",
               s_opinion(e, "市司法局", "approve", POINTS("true", "true")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    json = s_last_event(fx, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.approved."));
    assert_true(strncmp(json, "{\"case_id\":3,\"proposal_version\":1,", 34) == 0);
    free(json);
}

static void
test_staffing(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 19; i++) {
        char cert[16];
        snprintf(cert, sizeof cert, "B1%02d", i);
        s_officer(fx, fx->b, cert, 1, false, false, true);
    }
    char *json = NULL;
    rpc_reply_t r = s_call(fx, K_LEGAL, "review.staffing", "{}", &json);
    assert_true(r.ok);
    char want[200];
    /* A: 2 reviewers, 1 officer; B: 1 reviewer, 20 officers = 5%: not flagged */
    snprintf(want, sizeof want,
             "{\"agency\":\"%s\",\"officers\":20,\"reviewers\":1,\"legal_qualified\":true,"
             "\"understaffed\":false}",
             fx->b);
    assert_non_null(strstr(json, want));
    free(json);
    rpc_reply_clear(&r);
    s_officer(fx, fx->b, "B200", 1, false, false, true); /* 21 officers: below 5% */
    r = s_call(fx, K_LEGAL, "review.staffing", "{}", &json);
    snprintf(want, sizeof want,
             "\"agency\":\"%s\",\"officers\":21,\"reviewers\":1,"
             "\"legal_qualified\":true,\"understaffed\":true}",
             fx->b);
    assert_non_null(strstr(json, want));
    free(json);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_REV_A, "review.staffing", "{}", "forbidden", "op");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tasks_and_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_return_and_resubmit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_referral_and_pool, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_escalation_to_the_legal_office, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_staffing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("review_opinion", tests, NULL, NULL);
}
