/* opinion: the reviewers' ops of sx-review (review.tasks, review.get, review.opinion,
 * review.staffing) against a real PostgreSQL and a real CURVE ROUTER behind ZAP, with
 * DEALER clients for each role. Tasks are opened by handing intake's events to the
 * subscriber's handler, as in test_events.c; the events review emits are read from its
 * outbox. */
#include "rvfx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <zmq.h>

#include "../../../services/review/opinion.h"
#include "../../../services/review/settings.h"
#include "keys.h"

typedef struct {
    char pub[41], sec[41];
} s_pair_t;

enum { K_REV_A, K_REV_B, K_SYS_A, K_LEGAL, K_POOL_REV, K_N };

typedef struct {
    rvfx_t rv;
    db_t *srv_db;
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
    return rvfx_count(&fx->rv, sql);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[512];
    rvfx_init(&fx->rv, "revop");
    fx->srv_db = db_new(fx->rv.url, "review-srv");
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);

    rvfx_rule(&fx->rv, fx->rv.a, "R-ALL", NULL);
    rvfx_officer(&fx->rv, fx->rv.a, "A001", 1, false, false, true);
    rvfx_officer(&fx->rv, fx->rv.a, "A002", 1, true, true, true);
    rvfx_officer(&fx->rv, fx->rv.a, "A003", 1, true, false, true);
    rvfx_officer(&fx->rv, fx->rv.b, "B001", 1, true, true, true);
    rvfx_officer(&fx->rv, fx->rv.b, "B002", 1, false, false, true);
    rvfx_officer(&fx->rv, fx->rv.pool, "P001", 1, true, true, true);

    static const char *const roles[K_N][2] = {{"a", "reviewer"},
                                              {"b", "reviewer"},
                                              {"a", "system"},
                                              {"p", "legal_office"},
                                              {"p", "reviewer"}};
    assert_int_equal(keys_keypair(fx->server.pub, fx->server.sec), 0);
    char text[2048] = "";
    for (int i = 0; i < K_N; i++) {
        assert_int_equal(keys_keypair(fx->k[i].pub, fx->k[i].sec), 0);
        const char *code = roles[i][0][0] == 'a'   ? fx->rv.a
                           : roles[i][0][0] == 'b' ? fx->rv.b
                                                   : fx->rv.pool;
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
    assert_int_equal(opinion_register(fx->srv, &fx->rv.app), 0);
    assert_int_equal(reviewers_register(fx->srv, &fx->rv.app), 0);
    assert_int_equal(settings_prepare(fx->srv_db), 0);
    assert_int_equal(settings_register(fx->srv, &fx->rv.app), 0);
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
    db_destroy(&fx->srv_db);
    rvfx_fini(&fx->rv);
    free(fx);
    return 0;
}

static void
test_tasks_and_get(void **state)
{
    fx_t *fx = *state;
    rvfx_opened(&fx->rv, 1, "\"A001\",\"A002\"");
    rvfx_ev(
        &fx->rv, "case.recorded", fx->rv.a,
        "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
        "\"state\":\"open\",\"record_no\":1,\"stage\":\"investigation\",\"officers\":[\"A001\"]}");
    rvfx_propose(&fx->rv, fx->rv.a, 1, 1, "1.5", NULL);
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
    rvfx_opened(&fx->rv, 1, "\"A001\",\"A002\"");
    rvfx_propose(&fx->rv, fx->rv.a, 1, 1, "1.5", NULL);
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
    /* a failed point without a comment */
    snprintf(
        s_b, sizeof s_b,
        "{\"task_id\":%lld,\"reviewer\":\"A003\",\"verdict\":\"problems\",\"points\":{" P("subject", "true") ",\"facts\":{\"pass\":false,\"comment\":\"\"}," P(
            "basis", "true") "," P("discretion",
                                   "true") "," P("procedure",
                                                 "true") "," P("documents",
                                                               "true") "," P("referral",
                                                                             "true") "}}",
        t);
    r = s_call(fx, K_REV_A, "review.opinion", s_b, NULL);
    assert_false(r.ok);
    assert_string_equal(r.code, "missing_field");
    assert_string_equal(r.field, "body.points.facts.comment");
    assert_string_equal(r.zh, "审核要点不通过须说明理由：事实是否清楚");
    rpc_reply_clear(&r);
    /* a verdict against its points */
    s_expect_error(fx, K_REV_A, "review.opinion",
                   s_opinion(t, "A003", "approve", POINTS("false", "true")), "bad_field",
                   "body.verdict");
    assert_int_equal(rvfx_count(&fx->rv, "SELECT count(*) FROM review.opinion"), 0);
    assert_int_equal(rvfx_count(&fx->rv, "SELECT count(*) FROM review.outbox"), 0);

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
    assert_int_equal(rvfx_count(&fx->rv, "SELECT count(*) FROM review.outbox"), 1);
}

static void
test_return_and_resubmit(void **state)
{
    fx_t *fx = *state;
    char topic[160], want[160], *json;
    rvfx_opened(&fx->rv, 1, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 1, 1, "1.5", NULL);
    long long t1 = s_task(fx, 1, 1);
    char reviewer[65];
    rvfx_one(&fx->rv, "SELECT reviewer FROM review.task WHERE case_id = 1", reviewer,
             sizeof reviewer);
    rpc_reply_t r = s_call(fx, K_REV_A, "review.opinion",
                           s_opinion(t1, reviewer, "problems", POINTS("false", "true")), &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"status\":\"returned\""));
    free(json);
    rpc_reply_clear(&r);
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    snprintf(want, sizeof want, "review.returned.%s", fx->rv.a);
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
    /* the document is kept, as text and HTML, and review.get shows both */
    assert_int_equal(
        rvfx_count(&fx->rv,
                   "SELECT count(*) FROM review.opinion WHERE verdict = 'problems'"
                   " AND html LIKE '<!DOCTYPE html>%存在问题%' AND text LIKE '法制审核意见书%'"),
        1);
    char body[64];
    snprintf(body, sizeof body, "{\"task_id\":%lld}", t1);
    r = s_call(fx, K_SYS_A, "review.get", body, &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"verdict\":\"problems\",\"opinion\":\"法制审核意见书"));
    assert_non_null(strstr(json, "\"opinion_html\":\"<!DOCTYPE html>"));
    assert_non_null(strstr(json, "<li class=\\\"fail\\\">主体是否合法：否。subject</li>"));
    free(json);
    rpc_reply_clear(&r);

    /* the department proposes again: a new version, reviewed again */
    rvfx_propose(&fx->rv, fx->rv.a, 1, 2, "1.2", NULL);
    long long t2 = s_task(fx, 1, 2);
    assert_true(t2 > t1);
    rvfx_one(&fx->rv, "SELECT reviewer FROM review.task WHERE case_id = 1 AND version = 2",
             reviewer, sizeof reviewer);
    r = s_call(fx, K_REV_A, "review.opinion",
               s_opinion(t2, reviewer, "approve", POINTS("true", "true")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    snprintf(want, sizeof want, "review.approved.%s", fx->rv.a);
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
    rvfx_opened(&fx->rv, 2, "\"A002\",\"A003\"");
    rvfx_propose(&fx->rv, fx->rv.a, 2, 1, "50", NULL);
    long long t = s_task(fx, 2, 1);
    s_expect_error(fx, K_REV_A, "review.opinion",
                   s_opinion(t, "A003", "refer", POINTS("true", "false")), "forbidden",
                   "body.task_id");
    rpc_reply_t r = s_call(fx, K_POOL_REV, "review.opinion",
                           s_opinion(t, "P001", "refer", POINTS("true", "false")), NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.referred."));
    assert_non_null(strstr(topic, fx->rv.a));
    assert_non_null(strstr(json, "审核意见：移送司法机关"));
    assert_non_null(strstr(json, "七、是否涉嫌犯罪需移送：是"));
    free(json);
}

static void
test_escalation_to_the_legal_office(void **state)
{
    fx_t *fx = *state;
    char topic[160], *json, body[256];
    rvfx_opened(&fx->rv, 3, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 3, 1, "2", NULL);
    long long t = s_task(fx, 3, 1);
    char reviewer[65];
    rvfx_one(&fx->rv, "SELECT reviewer FROM review.task WHERE case_id = 3", reviewer,
             sizeof reviewer);
    snprintf(body, sizeof body, "{\"task_id\":%lld,\"reason\":\"承办机构不同意\"}", t);
    /* not yet returned */
    s_expect_error(fx, K_SYS_A, "review.escalate", body, "wrong_state", "body.task_id");
    rpc_reply_t r = s_call(fx, K_REV_A, "review.opinion",
                           s_opinion(t, reviewer, "problems", POINTS("true", "true")), NULL);
    assert_false(r.ok); /* problems needs a failed point */
    rpc_reply_clear(&r);
    /* clang-format off */
    snprintf(s_b, sizeof s_b,
             "{\"task_id\":%lld,\"reviewer\":\"%s\",\"verdict\":\"problems\",\"points\":{"
             P("subject", "true") "," P("facts", "false") "," P("basis", "true") ","
             P("discretion", "true") "," P("procedure", "true") "," P("documents", "true") ","
             P("referral", "true") "}}",
             t, reviewer);
    /* clang-format on */
    r = s_call(fx, K_REV_A, "review.opinion", s_b, NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_REV_A, "review.escalate", body, "forbidden", "op");
    /* The legal office gave itself 3 working days (its own 审核时限) for what it reviews. */
    char pj[1024], days[128];
    snprintf(pj, sizeof pj,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":1,\"entry\":{\"agency\":"
             "\"%s\",\"name\":\"市司法局\",\"level\":\"city\",\"domain\":\"司法行政\","
             "\"head_name\":\"王\",\"head_title\":\"局长\"}}",
             fx->rv.pool, fx->rv.pool);
    rvfx_ev(&fx->rv, "registry.agency", fx->rv.pool, pj);
    snprintf(days, sizeof days, "{\"agency\":\"%s\",\"review_days\":3}", fx->rv.pool);
    r = s_call(fx, K_LEGAL, "review.days.set", days, NULL);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    r = s_call(fx, K_SYS_A, "review.escalate", body, &json);
    assert_true(r.ok);
    assert_non_null(strstr(json, "\"status\":\"open\""));
    free(json);
    rpc_reply_clear(&r);
    date_t today = date_from_unix_cst(util_unix_ms() / 1000), due, warn;
    assert_int_equal(workday_add(fx->rv.cal, today, 3, &due, NULL), 0);
    assert_int_equal(workday_add(fx->rv.cal, today, 2, &warn, NULL), 0);
    char want[32], got[32], d[11], w[11];
    snprintf(want, sizeof want, "%s %s", date_format(warn, w), date_format(due, d));
    assert_string_equal(rvfx_one(&fx->rv,
                                 "SELECT warn_on || ' ' || due_on FROM review.task"
                                 " WHERE case_id = 3 AND kind = 'escalated'",
                                 got, sizeof got),
                        want);
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.escalated."));
    free(json);
    s_expect_error(fx, K_SYS_A, "review.escalate", body, "already_escalated", "body.task_id");
    long long e =
        rvfx_count(&fx->rv, "SELECT id FROM review.task WHERE case_id = 3 AND kind = 'escalated'");
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
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
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
        rvfx_officer(&fx->rv, fx->rv.b, cert, 1, false, false, true);
    }
    char *json = NULL;
    rpc_reply_t r = s_call(fx, K_LEGAL, "review.staffing", "{}", &json);
    assert_true(r.ok);
    char want[200];
    /* A: 2 reviewers, 1 officer; B: 1 reviewer, 20 officers = 5%: not flagged */
    snprintf(want, sizeof want,
             "{\"agency\":\"%s\",\"officers\":20,\"reviewers\":1,\"legal_qualified\":true,"
             "\"understaffed\":false}",
             fx->rv.b);
    assert_non_null(strstr(json, want));
    free(json);
    rpc_reply_clear(&r);
    rvfx_officer(&fx->rv, fx->rv.b, "B200", 1, false, false, true); /* 21 officers: below 5% */
    r = s_call(fx, K_LEGAL, "review.staffing", "{}", &json);
    snprintf(want, sizeof want,
             "\"agency\":\"%s\",\"officers\":21,\"reviewers\":1,"
             "\"legal_qualified\":true,\"understaffed\":true}",
             fx->rv.b);
    assert_non_null(strstr(json, want));
    free(json);
    rpc_reply_clear(&r);
    s_expect_error(fx, K_REV_A, "review.staffing", "{}", "forbidden", "op");
}

/* A registry.agency put of agency a, as intake publishes it. */
static void
s_agency(fx_t *fx, int version)
{
    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":"
             "\"%s\",\"name\":\"市场监管局\",\"level\":\"city\",\"domain\":\"市场监管\","
             "\"head_name\":\"张\",\"head_title\":\"局长\"}}",
             fx->rv.a, version, fx->rv.a);
    rvfx_ev(&fx->rv, "registry.agency", fx->rv.a, j);
}

static void
test_review_days_per_agency(void **state)
{
    fx_t *fx = *state;
    char body[128], *json;
    snprintf(body, sizeof body, "{\"agency\":\"%s\",\"review_days\":2}", fx->rv.a);
    /* review has no registry.agency of a yet */
    s_expect_error(fx, K_LEGAL, "review.days.set", body, "not_found", "body.agency");
    s_agency(fx, 1);
    s_expect_error(fx, K_REV_A, "review.days.set", body, "forbidden", "op");
    s_expect_error(fx, K_SYS_A, "review.days.set", body, "forbidden", "op");
    char bad[128];
    snprintf(bad, sizeof bad, "{\"agency\":\"%s\",\"review_days\":61}", fx->rv.a);
    s_expect_error(fx, K_LEGAL, "review.days.set", bad, "bad_field", "body.review_days");
    rpc_reply_t r = s_call(fx, K_LEGAL, "review.days.set", body, &json);
    assert_true(r.ok);
    char want[128];
    snprintf(want, sizeof want, "{\"agency\":\"%s\",\"review_days\":2}", fx->rv.a);
    assert_string_equal(json, want);
    free(json);
    rpc_reply_clear(&r);

    /* a task opened now is due 2 working days from today, warned 1 before; a later
     * registry.agency version keeps the days */
    s_agency(fx, 2);
    date_t today = date_from_unix_cst(util_unix_ms() / 1000), due, warn;
    assert_int_equal(workday_add(fx->rv.cal, today, 2, &due, NULL), 0);
    assert_int_equal(workday_add(fx->rv.cal, today, 1, &warn, NULL), 0);
    char d[11], w[11], got[64];
    snprintf(want, sizeof want, "%s %s", date_format(warn, w), date_format(due, d));
    rvfx_opened(&fx->rv, 1, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 1, 1, "1.5", NULL);
    assert_string_equal(rvfx_one(&fx->rv,
                                 "SELECT warn_on || ' ' || due_on FROM review.task"
                                 " WHERE case_id = 1",
                                 got, sizeof got),
                        want);
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
        cmocka_unit_test_setup_teardown(test_review_days_per_agency, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("review_opinion", tests, NULL, NULL);
}
