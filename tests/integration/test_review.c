/* sx-review, the real binary, beside real sx-intake and sx-broker, PostgreSQL and
 * Redis, with real CURVE keys: the registry is put through intake's door and reaches
 * review as events; a proposal that needs review cannot be decided until review's
 * reviewer approves it (returned first, proposed again, approved); one that needs none
 * is let through with the reason; kill -9 of review mid-stream loses and duplicates no
 * task; deadline timers fire once across a restart and a Redis flush; bad settings exit
 * 78. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "date.h"
#include "evmsg.h"
#include "jsonmp.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"

#define AGENCY "91110000600037341L"
#define POOL   "11620200013926143G"

typedef struct {
    tp_world_t w;
    char intake_pub[41], review_pub[41];
    char intake_ep[64], review_ep[64];
    int intake_ops, review_ops;
    pid_t intake, review;
    rpc_client_t *dept, *legal_i, *rev;
} fx_t;

static fx_t *s_fx;

/* Waits up to ms for the query's first value to be >= want. */
static bool
s_wait_count(fx_t *fx, const char *sql, long long want, int ms)
{
    int64_t end = tp_now_ms() + ms;
    do {
        PGresult *r = PQexec(fx->w.pg, sql);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) && !PQgetisnull(r, 0, 0) &&
                  atoll(PQgetvalue(r, 0, 0)) >= want;
        PQclear(r);
        if (ok)
            return true;
        tp_sleep_ms(50);
    } while (tp_now_ms() < end);
    return false;
}

static rpc_reply_t
s_call(rpc_client_t *c, const char *op, const char *json)
{
    return tp_call(c, op, json, 3000, 3);
}

static void
s_ok(rpc_client_t *c, const char *op, const char *json)
{
    rpc_reply_t r = s_call(c, op, json);
    if (!r.ok)
        fail_msg("%s refused: %s %s %s", op, r.code, r.field, r.en);
    rpc_reply_clear(&r);
}

static int64_t
s_result_int(const rpc_reply_t *r, const char *key)
{
    int64_t v = -1;
    evmsg_t *m = NULL;
    if (r->result && evmsg_decode_map(r->result, r->result_len, &m, NULL) == 0) {
        evmsg_map_t d = evmsg_data(m, NULL);
        evmsg_map_int(&d, key, EVMSG_OPTIONAL, INT64_MIN, INT64_MAX, &v);
    }
    evmsg_destroy(&m);
    return v;
}

static rpc_client_t *
s_client(fx_t *fx, const char *name, const char *ep, const char *server_pub)
{
    return tp_world_client(&fx->w, ep, server_pub, name);
}

/* sx-review, fully rearming its timers from Postgres every sweep_ms. */
static pid_t
s_start_review_sweep(fx_t *fx, int sweep_ms)
{
    char sweep[48];
    snprintf(sweep, sizeof sweep, "SX_REVIEW_SWEEP_MS=%d", sweep_ms);
    const char *env[] = {"SX_REVIEW_POOL_AGENCY=" POOL, sweep, NULL};
    pid_t pid = tp_world_service(&fx->w, "review", fx->review_ep, fx->review_ops, "review", env);
    tp_wait_http(fx->review_ops, "/healthz", 20000);
    return pid;
}

static pid_t
s_start_review(fx_t *fx)
{
    return s_start_review_sweep(fx, 500);
}

static redisContext *
s_redis(void)
{
    redisContext *rc = redisConnect("127.0.0.1", atoi(strrchr(ts_env("SX_REDIS_URL"), ':') + 1));
    assert_true(rc && !rc->err);
    return rc;
}

/* Whether review's timer kind:task is armed (in the due set). */
static bool
s_armed(redisContext *rc, const char *kind, int64_t task)
{
    char member[64];
    snprintf(member, sizeof member, "%s:%" PRId64, kind, task);
    redisReply *r = redisCommand(rc, "ZSCORE sx:timer:{review}:due %s", member);
    bool armed = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return armed;
}

/* Waits up to ms for kind:task to be armed (want) or gone from the due set (!want). */
static bool
s_wait_armed(redisContext *rc, const char *kind, int64_t task, bool want, int ms)
{
    for (int64_t end = tp_now_ms() + ms; tp_now_ms() < end; tp_sleep_ms(50))
        if (s_armed(rc, kind, task) == want)
            return true;
    return false;
}

/* The registry through intake's door, as the legal office (it may put every agency's). */
static void
s_register(fx_t *fx)
{
    static const char *const puts[][2] = {
        {"registry.agency.put",
         "{\"agency\":\"" AGENCY
         "\",\"version\":0,\"name\":\"某市市场监督管理局\",\"level\":\"city\","
         "\"domain\":\"市场监管\",\"head_name\":\"张三\",\"head_title\":\"局长\"}"},
        {"registry.agency.put",
         "{\"agency\":\"" POOL "\",\"version\":0,\"name\":\"某市司法局\",\"level\":\"city\","
         "\"domain\":\"司法行政\",\"head_name\":\"李四\",\"head_title\":\"局长\"}"},
        {"registry.officer.put",
         "{\"agency\":\"" AGENCY "\",\"version\":0,\"cert_no\":\"ZF001\",\"name\":\"王五\","
         "\"valid_from\":\"2020-01-01\",\"valid_to\":\"2099-12-31\",\"area\":\"全市\"}"},
        {"registry.officer.put",
         "{\"agency\":\"" AGENCY "\",\"version\":0,\"cert_no\":\"ZF002\",\"name\":\"赵六\","
         "\"valid_from\":\"2020-01-01\",\"valid_to\":\"2099-12-31\",\"area\":\"全市\","
         "\"legal_qualified\":true,\"reviewer\":true}"},
        {"registry.officer.put",
         "{\"agency\":\"" AGENCY "\",\"version\":0,\"cert_no\":\"SH001\",\"name\":\"钱七\","
         "\"valid_from\":\"2020-01-01\",\"valid_to\":\"2099-12-31\",\"area\":\"全市\","
         "\"legal_qualified\":true,\"reviewer\":true}"},
        {"registry.matter.put",
         "{\"agency\":\"" AGENCY
         "\",\"version\":0,\"code\":\"CF-0001\",\"name\":\"对无照经营的处罚\","
         "\"type\":\"penalty\",\"legal_basis\":\"《无证无照经营查处办法》第十三条\","
         "\"accepting_body\":\"执法大队\",\"approving_body\":\"局\",\"conditions\":\"-\","
         "\"time_limit\":90,\"time_limit_unit\":\"day\",\"guide\":\"-\"}"},
        {"registry.review_rule.put",
         "{\"agency\":\"" AGENCY "\",\"version\":0,\"id\":\"R-AMOUNT\",\"description\":"
         "\"较大数额罚款\",\"case_type\":\"penalty\",\"amount_threshold\":\"1\"}"},
    };
    for (size_t i = 0; i < sizeof puts / sizeof puts[0]; i++)
        s_ok(fx->legal_i, puts[i][0], puts[i][1]);
    /* review has its copies once the rule (the last put) has arrived */
    assert_true(s_wait_count(fx, "SELECT count(*) FROM review.rule", 1, 10000));
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"review", "svc:review"},
                                         {"dept", "dept:" AGENCY ":system"},
                                         {"rev", "dept:" AGENCY ":reviewer"},
                                         {"legal", "dept:" POOL ":legal_office"},
                                         {NULL, NULL}};
    tp_world_open(&fx->w, "review", ids, "review-broker");
    char sec[41];
    tp_world_pair(&fx->w, "intake", fx->intake_pub, sec);
    tp_world_pair(&fx->w, "review", fx->review_pub, sec);
    snprintf(fx->intake_ep, sizeof fx->intake_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(fx->review_ep, sizeof fx->review_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->intake_ops = tp_free_port();
    fx->review_ops = tp_free_port();

    fx->review = s_start_review(fx);
    fx->intake =
        tp_world_service(&fx->w, "intake", fx->intake_ep, fx->intake_ops, "review-intake", NULL);
    tp_wait_http(fx->intake_ops, "/healthz", 20000);

    fx->dept = s_client(fx, "dept", fx->intake_ep, fx->intake_pub);
    fx->legal_i = s_client(fx, "legal", fx->intake_ep, fx->intake_pub);
    fx->rev = s_client(fx, "rev", fx->review_ep, fx->review_pub);
    s_register(fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    tp_stop(fx->review, SIGTERM, 10000);
    tp_stop(fx->intake, SIGTERM, 10000);
    rpc_client_destroy(&fx->dept);
    rpc_client_destroy(&fx->legal_i);
    rpc_client_destroy(&fx->rev);
    tp_world_close(&fx->w);
    free(fx);
    s_fx = NULL;
    return 0;
}

static char s_body[4096];

static int64_t
s_open(fx_t *fx, int no)
{
    char today[11];
    date_format(date_from_unix_cst(time(NULL)), today);
    snprintf(
        s_body, sizeof s_body,
        "{\"case_no\":\"京市监罚〔2026〕%d号\",\"matter_code\":\"CF-0001\",\"opened_on\":\"%s\","
        "\"party\":{\"kind\":\"org\",\"name\":\"某某商贸有限公司\",\"id_type\":\"uscc\","
        "\"id_no\":\"" POOL "\"},\"summary\":\"无照经营\",\"officers\":[\"ZF001\",\"ZF002\"]}",
        no, today);
    rpc_reply_t r = s_call(fx->dept, "case.open", s_body);
    if (!r.ok)
        fail_msg("case.open refused: %s %s %s", r.code, r.field, r.en);
    int64_t id = s_result_int(&r, "case_id");
    rpc_reply_clear(&r);
    return id;
}

static void
s_propose(fx_t *fx, int64_t id, const char *fine)
{
    snprintf(s_body, sizeof s_body,
             "{\"case_id\":%" PRId64 ",\"category\":\"罚款\",\"content\":\"罚款\",\"fine\":\"%s\","
             "\"confiscation\":\"0\",\"legal_basis\":\"《无证无照经营查处办法》第十三条\"}",
             id, fine);
    s_ok(fx->dept, "case.propose", s_body);
}

static rpc_reply_t
s_decide(fx_t *fx, int64_t id, int n)
{
    char today[11];
    date_format(date_from_unix_cst(time(NULL)), today);
    snprintf(s_body, sizeof s_body,
             "{\"case_id\":%" PRId64 ",\"decision_no\":\"京市监罚决〔2026〕%d号\","
             "\"decision_date\":\"%s\"}",
             id, n, today);
    return s_call(fx->dept, "case.decide", s_body);
}

/* Waits for review's task on (case, version); returns its id. */
static int64_t
s_task(fx_t *fx, int64_t case_id, int version)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT id FROM review.task WHERE case_id = %" PRId64 " AND version = %d", case_id,
             version);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    return tp_pg_num(fx->w.pg, sql);
}

#define P(k, v) "\"" k "\":{\"pass\":" v ",\"comment\":\"" k "\"}"

static void
test_gate_end_to_end(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 1);
    s_propose(fx, id, "2");
    rpc_reply_t r = s_decide(fx, id, 1);
    assert_false(r.ok);
    assert_string_equal(r.code, "review_pending");
    rpc_reply_clear(&r);

    /* review's task, assigned to the one reviewer who did not handle the case */
    int64_t t1 = s_task(fx, id, 1);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM review.task WHERE id = %" PRId64 " AND reviewer = 'SH001'", t1);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);

    /* returned: the version can never be decided */
    snprintf(
        s_body, sizeof s_body,
        "{\"task_id\":%" PRId64 ",\"reviewer\":\"SH001\",\"verdict\":\"problems\","
        "\"summary\":\"罚款依据不足\",\"points\":{" P("subject", "true") "," P(
            "facts",
            "true") "," P("basis",
                          "false") "," P("discretion",
                                         "true") "," P("procedure",
                                                       "true") "," P("documents",
                                                                     "true") "," P("referral",
                                                                                   "true") "}}",
        t1);
    s_ok(fx->rev, "review.opinion", s_body);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND proposal_version = 1 AND verdict = 'returned'",
             id);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    r = s_decide(fx, id, 1);
    assert_false(r.ok);
    assert_string_equal(r.code, "review_required");
    rpc_reply_clear(&r);

    /* proposed again, reviewed again, approved: decided */
    s_propose(fx, id, "1.5");
    int64_t t2 = s_task(fx, id, 2);
    snprintf(
        s_body, sizeof s_body,
        "{\"task_id\":%" PRId64 ",\"reviewer\":\"SH001\",\"verdict\":\"approve\","
        "\"points\":{" P("subject", "true") "," P("facts", "true") "," P("basis", "true") "," P(
            "discretion", "true") "," P("procedure", "true") "," P("documents",
                                                                   "true") "," P("referral",
                                                                                 "true") "}}",
        t2);
    s_ok(fx->rev, "review.opinion", s_body);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND proposal_version = 2 AND verdict = 'approved'",
             id);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    r = s_decide(fx, id, 1);
    if (!r.ok)
        fail_msg("case.decide refused after approval: %s %s", r.code, r.en);
    rpc_reply_clear(&r);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM intake.bus_rejected"), 0);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.bus_rejected"), 0);

    /* /metrics: the sweep's gauges (every 500 ms here) */
    char buf[16384];
    int64_t end = tp_now_ms() + 5000;
    do {
        tp_sleep_ms(200);
        tp_http_get(fx->review_ops, "/metrics", buf, sizeof buf);
    } while (!strstr(buf, "sx_review_tasks_open 0") && tp_now_ms() < end);
    assert_non_null(strstr(buf, "sx_review_tasks_open 0"));
    assert_non_null(strstr(buf, "sx_review_agencies_understaffed 0"));
}

#define ALL_POINTS(basis)                                                                          \
    "{" P("subject", "true") "," P("facts", "true") "," P("basis", basis) "," P(                   \
        "discretion", "true") "," P("procedure", "true") "," P("documents",                        \
                                                               "true") "," P("referral",           \
                                                                             "true") "}"

/* The department disagrees with a return and escalates through review's door; the legal
 * office's approval stands, and intake's gate opens on it. */
static void
test_escalation_opens_the_gate(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *sys = s_client(fx, "dept", fx->review_ep, fx->review_pub);
    rpc_client_t *legal = s_client(fx, "legal", fx->review_ep, fx->review_pub);
    int64_t id = s_open(fx, 30);
    s_propose(fx, id, "2");
    int64_t t1 = s_task(fx, id, 1);
    snprintf(s_body, sizeof s_body,
             "{\"task_id\":%" PRId64 ",\"reviewer\":\"SH001\",\"verdict\":\"problems\","
             "\"points\":" ALL_POINTS("false") "}",
             t1);
    s_ok(fx->rev, "review.opinion", s_body);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND proposal_version = 1 AND verdict = 'returned'",
             id);
    assert_true(s_wait_count(fx, sql, 1, 10000));

    snprintf(s_body, sizeof s_body,
             "{\"task_id\":%" PRId64 ",\"reason\":\"处罚依据充分，请求市司法局协调\"}", t1);
    rpc_reply_t r = s_call(sys, "review.escalate", s_body);
    if (!r.ok)
        fail_msg("review.escalate refused: %s %s %s", r.code, r.field, r.en);
    int64_t e = s_result_int(&r, "task_id");
    rpc_reply_clear(&r);
    assert_true(e > t1);
    /* the agency's reviewer may not answer it; the legal office does */
    snprintf(s_body, sizeof s_body,
             "{\"task_id\":%" PRId64 ",\"reviewer\":\"SH001\",\"verdict\":\"approve\","
             "\"points\":" ALL_POINTS("true") "}",
             e);
    r = s_call(fx->rev, "review.opinion", s_body);
    assert_false(r.ok);
    assert_string_equal(r.code, "forbidden");
    rpc_reply_clear(&r);
    snprintf(s_body, sizeof s_body,
             "{\"task_id\":%" PRId64 ",\"reviewer\":\"LO-01\",\"verdict\":\"approve\","
             "\"summary\":\"经协调，同意\",\"points\":" ALL_POINTS("true") "}",
             e);
    s_ok(legal, "review.opinion", s_body);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND proposal_version = 1 AND verdict = 'approved' AND reviewer = 'LO-01'",
             id);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    r = s_decide(fx, id, 30);
    if (!r.ok)
        fail_msg("case.decide refused after the legal office's approval: %s %s", r.code, r.en);
    rpc_reply_clear(&r);
    rpc_client_destroy(&sys);
    rpc_client_destroy(&legal);
}

static void
test_not_required_let_through(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 2);
    s_propose(fx, id, "0.5");
    assert_true(
        s_wait_count(fx, "SELECT count(*) FROM review.judgement WHERE NOT required", 1, 10000));
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM review.outbox WHERE topic = "
                               "'review.not_required." AGENCY "' AND position(convert_to('R-AMOUNT:"
                               " amount 0.5 below threshold 1', 'UTF8') in data) > 0"),
                     1);
    rpc_reply_t r = s_decide(fx, id, 2);
    assert_true(r.ok);
    rpc_reply_clear(&r);
}

/* kill -9 of review while intake's proposals stream in (the kill comes once review has
 * opened some tasks, the proposals go on), then a restart: every proposal judged once,
 * one task per required one and one review.not_required per other, none twice; and
 * every task's deadline armed. */
static void
test_kill_mid_stream_loses_nothing(void **state)
{
    fx_t *fx = *state;
    enum { N = 60, KILL_AT = 10 };
    int64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = s_open(fx, 100 + i);
    long long at_kill = -1;
    for (int i = 0; i < N; i++) {
        s_propose(fx, ids[i], i % 5 == 4 ? "0.5" : "3"); /* every fifth needs no review */
        if (at_kill < 0 &&
            tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.judgement") >= KILL_AT) {
            at_kill = tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.judgement");
            tp_stop(fx->review, SIGKILL, 5000);
            print_message("SIGKILL review after %lld of %d proposals judged, %d sent\n", at_kill, N,
                          i + 1);
        }
    }
    assert_true(at_kill >= KILL_AT && at_kill < N);
    fx->review = s_start_review(fx);
    assert_true(s_wait_count(fx, "SELECT count(*) FROM review.judgement", N, 20000));
    tp_sleep_ms(500); /* anything duplicated would show by now */
    enum { NOT_REQUIRED = N / 5 };
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.judgement"), N);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.task"), N - NOT_REQUIRED);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(DISTINCT case_id) FROM review.task"),
                     N - NOT_REQUIRED);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM review.outbox WHERE topic ="
                                         " 'review.not_required." AGENCY "'"),
                     NOT_REQUIRED);
    /* and no deadline lost: each task's timers are in Redis */
    redisContext *rc = s_redis();
    PGresult *r = PQexec(fx->w.pg, "SELECT id FROM review.task ORDER BY id");
    assert_int_equal(PQntuples(r), N - NOT_REQUIRED);
    for (int i = 0; i < PQntuples(r); i++)
        if (!s_wait_armed(rc, "overdue", strtoll(PQgetvalue(r, i, 0), NULL, 10), true, 5000))
            fail_msg("task %s: overdue timer not armed", PQgetvalue(r, i, 0));
    PQclear(r);
    redisFree(rc);
}

#define TODAY_CST "(now() AT TIME ZONE 'Asia/Shanghai')::date"

/* review's deadline events of one kind so far */
static long long
s_deadline_events(fx_t *fx, const char *event)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM review.outbox WHERE topic = '%s.%s'", event,
             AGENCY);
    return tp_pg_num(fx->w.pg, sql);
}

/* Deadlines are timers in Redis, Postgres the truth: a task's timers are armed shortly
 * after it opens; sx-review killed before they fire, while (as the clock would) the
 * tasks' dates in Postgres come due, fires each once after its restart; firing the same
 * timers again emits nothing; Redis losing everything loses no deadline. The full rearm
 * is set to an hour here, so only the start and the flush can have re-armed. */
static void
test_deadline_timers_survive_restart_and_flush(void **state)
{
    fx_t *fx = *state;
    tp_stop(fx->review, SIGTERM, 10000);
    fx->review = s_start_review_sweep(fx, 3600000);
    redisContext *rc = s_redis();
    int64_t task[3];
    for (int i = 0; i < 3; i++) {
        int64_t id = s_open(fx, 20 + i);
        s_propose(fx, id, "2");
        task[i] = s_task(fx, id, 1);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(s_wait_armed(rc, "overdue", task[i], true, 8000));
        assert_true(s_armed(rc, "warn", task[i]));
    }

    /* killed between scheduling and firing; meanwhile task 0 became overdue (its due day
     * was yesterday) and task 1's warning day came (today) */
    tp_stop(fx->review, SIGKILL, 5000);
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE review.task SET warn_on = " TODAY_CST " - 2, due_on = " TODAY_CST " - 1"
             " WHERE id = %" PRId64,
             task[0]);
    tp_pg_exec(fx->w.pg, sql);
    snprintf(sql, sizeof sql,
             "UPDATE review.task SET warn_on = " TODAY_CST ", due_on = " TODAY_CST " + 3"
             " WHERE id = %" PRId64,
             task[1]);
    tp_pg_exec(fx->w.pg, sql);
    fx->review = s_start_review_sweep(fx, 3600000);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM review.outbox WHERE topic = 'review.overdue.%s'", AGENCY);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM review.outbox WHERE topic = 'review.due_soon.%s'", AGENCY);
    assert_true(s_wait_count(fx, sql, 1, 10000));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM review.task WHERE id = %" PRId64 " AND overdue AND warned",
             task[0]);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);

    /* the same timers fire again (a lost timer_done, another instance): nothing new */
    char member[3][64];
    snprintf(member[0], sizeof member[0], "overdue:%" PRId64, task[0]);
    snprintf(member[1], sizeof member[1], "warn:%" PRId64, task[0]);
    snprintf(member[2], sizeof member[2], "warn:%" PRId64, task[1]);
    for (int i = 0; i < 3; i++)
        freeReplyObject(redisCommand(rc, "ZADD sx:timer:{review}:due 1 %s", member[i]));
    assert_true(s_wait_armed(rc, "overdue", task[0], false, 8000));
    assert_true(s_wait_armed(rc, "warn", task[0], false, 8000));
    assert_true(s_wait_armed(rc, "warn", task[1], false, 8000));
    assert_int_equal(s_deadline_events(fx, "review.overdue"), 1);
    assert_int_equal(s_deadline_events(fx, "review.due_soon"), 1);

    /* task 2 comes due in Postgres: its timer in Redis still says days from now */
    snprintf(sql, sizeof sql,
             "UPDATE review.task SET warn_on = " TODAY_CST " - 3, due_on = " TODAY_CST " - 1"
             " WHERE id = %" PRId64,
             task[2]);
    tp_pg_exec(fx->w.pg, sql);
    tp_sleep_ms(1500); /* a claim or two: nothing is due in Redis */
    assert_int_equal(s_deadline_events(fx, "review.overdue"), 1);
    /* Redis loses everything: review notices, rearms from Postgres, and task 2 fires */
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM review.outbox WHERE topic = 'review.overdue.%s'", AGENCY);
    assert_true(s_wait_count(fx, sql, 2, 10000));
    redisReply *r = redisCommand(rc, "EXISTS sx:timer:{review}:armed");
    assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    assert_true(s_wait_armed(rc, "overdue", task[1], true, 5000)); /* still pending: armed */
    assert_false(s_armed(rc, "overdue", task[0]));                 /* done: not again */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM review.task WHERE id = %" PRId64 " AND overdue",
             task[2]);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);
    assert_int_equal(s_deadline_events(fx, "review.overdue"), 2);
    assert_int_equal(s_deadline_events(fx, "review.due_soon"), 1);
    redisFree(rc);

    /* what the restarted review says it did */
    char buf[16384];
    assert_int_equal(tp_http_get(fx->review_ops, "/metrics", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "sx_review_deadline_events_total{kind=\"overdue\"} 2"));
    assert_non_null(strstr(buf, "sx_review_deadline_events_total{kind=\"due_soon\"} 1"));
}

static void
test_bad_settings_exit_78(void **state)
{
    (void)state;
    char bin[600], out[4096], err[4096];
    snprintf(bin, sizeof bin, "%s/sx-review", ts_env("SX_BIN"));
    const char *argv[] = {"env", "-i", "SX_REVIEW_BIND=udp://x", "SX_REVIEW_POOL_AGENCY=nope",
                          bin,   NULL};
    assert_int_equal(ts_run(argv, NULL, out, sizeof out, err, sizeof err), 78);
    const char *want[] = {"SX_PG_URL",      "SX_REDIS_URL",          "SX_KEY_FILE",
                          "SX_REVIEW_BIND", "SX_REVIEW_POOL_AGENCY", "SX_BROKER_PUBLIC_KEY"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err, want[i]))
            fail_msg("%s not named in: %s", want[i], err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings_exit_78),
        cmocka_unit_test_setup_teardown(test_gate_end_to_end, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_not_required_let_through, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_escalation_opens_the_gate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kill_mid_stream_loses_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_deadline_timers_survive_restart_and_flush, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("review", tests, NULL, NULL);
}
