/* sx-intake, the real binary, beside a real sx-broker, PostgreSQL and Redis, with real
 * CURVE keys: a department opens a case and its event reaches a subscriber; a legal
 * review verdict published on the bus lets case.decide through; malformed verdicts are
 * rejected naming the field; deadline timers fire once and are re-armed after a Redis
 * flush; /healthz and /metrics answer; bad settings exit 78 naming every variable;
 * SIGTERM stops it with 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "bus.h"
#include "date.h"
#include "evmsg.h"
#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY "91110000600037341L"
#define OTHER  "11620200013926143G"

typedef struct {
    tp_world_t w; /* keys, the key file, the broker's endpoints */
    char intake_pub[41];
    char rpc_ep[64];
    int ops_port;
    pid_t intake;
    rpc_client_t *dept;   /* dept:AGENCY:system */
    rpc_client_t *other;  /* dept:OTHER:system */
    void *events;         /* SUB at the broker, as the department */
    tp_producer_t review; /* the test plays the review service: its outbox and relay */
} fx_t;

static fx_t *s_fx;

static pid_t
s_start_intake(fx_t *fx)
{
    return tp_world_service(&fx->w, "intake", fx->rpc_ep, fx->ops_port, "intake", NULL);
}

/* Steps the test's review relay for ms (it publishes and sends heartbeats). */
static void
s_pump(fx_t *fx, int ms)
{
    tp_pump(&fx->review, 1, ms);
}

/* An rpc call with a fresh rid; the body as JSON. Returns the reply (caller clears). */
static rpc_reply_t
s_call(rpc_client_t *c, const char *op, const char *json)
{
    return tp_call(c, op, json, 3000, 3);
}

/* The integer at key in a reply's result map; -1 when absent. */
static int64_t
s_result_int(const rpc_reply_t *r, const char *key)
{
    if (!r->result)
        return -1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int64_t v = -1;
    if (msgpack_unpack_next(&u, r->result, r->result_len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
                memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 &&
                kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = (int64_t)kv->val.via.u64;
        }
    }
    msgpack_unpacked_destroy(&u);
    return v;
}

/* Waits up to ms for an event on the department's SUB whose topic starts with prefix;
 * returns its decoded envelope (caller destroys) or NULL. */
static evmsg_t *
s_event(fx_t *fx, const char *prefix, int ms)
{
    int64_t end = tp_now_ms() + ms;
    while (tp_now_ms() < end) {
        zmq_pollitem_t it = {fx->events, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        char topic[200];
        int n = zmq_recv(fx->events, topic, sizeof topic - 1, 0);
        if (n < 0)
            continue;
        topic[n < (int)sizeof topic - 1 ? n : (int)sizeof topic - 1] = '\0';
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, fx->events, 0);
        evmsg_t *ev = NULL;
        evmsg_err_t err = {{0}, {0}};
        int rc = evmsg_decode(zmq_msg_data(&m), zmq_msg_size(&m), &ev, &err);
        zmq_msg_close(&m);
        if (rc == 0 && strncmp(topic, prefix, strlen(prefix)) == 0)
            return ev;
        evmsg_destroy(&ev);
    }
    return NULL;
}

static void
s_subscribe(fx_t *fx, const char *event)
{
    char topic[128];
    snprintf(topic, sizeof topic, "%s.%s", event, AGENCY);
    assert_int_equal(zmq_setsockopt(fx->events, ZMQ_SUBSCRIBE, topic, strlen(topic)), 0);
}

static int64_t
s_data_int(const evmsg_t *ev, const char *key)
{
    evmsg_map_t d = evmsg_data(ev, NULL);
    int64_t v = -1;
    evmsg_map_int(&d, key, EVMSG_OPTIONAL, INT64_MIN, INT64_MAX, &v);
    return v;
}

/* ---- The department's data -------------------------------------------------------- */

/* The registry through SQL: the agency, three officers (one expired), a penalty matter
 * (90 days, 行政处罚法 art. 60) and a review rule that catches every penalty. */
static void
s_register(fx_t *fx)
{
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.agency (code, name, level, domain, head_name, head_title,"
               " version, updated_by) VALUES ('" AGENCY "', '某市市场监督管理局', 'city',"
               " '市场监管', '张三', '局长', 1, 'test'), ('" OTHER "', '某区城管局', 'district',"
               " '城管', '李四', '局长', 1, 'test')");
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.officer (agency, cert_no, name, valid_from, valid_to, area,"
               " legal_qualified, reviewer, version, updated_by) VALUES"
               " ('" AGENCY "', 'ZF001', '王五', '2020-01-01', '2099-12-31', '全市', true, false,"
               " 1, 'test'),"
               " ('" AGENCY "', 'ZF002', '赵六', '2020-01-01', '2099-12-31', '全市', false, false,"
               " 1, 'test')");
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.matter (agency, code, name, type, legal_basis, accepting_body,"
               " approving_body, conditions, time_limit, time_limit_unit, guide, version,"
               " updated_by) VALUES ('" AGENCY "', 'CF-0001', '对无照经营的处罚', 'penalty',"
               " '《无证无照经营查处办法》第十三条', '执法大队', '局', '-', 90, 'day', '-', 1,"
               " 'test')");
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.review_rule (agency, id, description, case_type, version,"
               " updated_by) VALUES ('" AGENCY "', 'R1', '所有处罚决定', 'penalty', 1, 'test')");
}

static char s_body[4096];

/* A case.open body for case number no, opened today (China time): its deadline is 90
 * days away, so no timer of its fires during the test unless the test moves it. */
static const char *
s_open_body(int no)
{
    char today[11];
    date_format(date_from_unix_cst(time(NULL)), today);
    snprintf(
        s_body, sizeof s_body,
        "{\"case_no\": \"京市监罚〔2026〕%d号\", \"matter_code\": \"CF-0001\","
        " \"opened_on\": \"%s\","
        " \"party\": {\"kind\": \"org\", \"name\": \"某某商贸有限公司\","
        " \"id_type\": \"uscc\", \"id_no\": \"" OTHER "\"},"
        " \"summary\": \"无照经营\", \"on_site\": false, \"officers\": [\"ZF001\", \"ZF002\"]}",
        no, today);
    return s_body;
}

static const char *
s_propose_body(int64_t case_id)
{
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"category\": \"罚款\", \"content\": \"罚款五千元\","
             " \"fine\": \"0.5\", \"confiscation\": \"0\","
             " \"legal_basis\": \"《无证无照经营查处办法》第十三条\"}",
             case_id);
    return s_body;
}

static const char *
s_decide_body(int64_t case_id, int n)
{
    char today[11];
    date_format(date_from_unix_cst(time(NULL)), today);
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"decision_no\": \"京市监罚决〔2026〕%d号\","
             " \"decision_date\": \"%s\"}",
             case_id, n, today);
    return s_body;
}

/* Opens case number no; returns its case_id. */
static int64_t
s_open(fx_t *fx, int no)
{
    rpc_reply_t r = s_call(fx->dept, "case.open", s_open_body(no));
    if (!r.ok)
        fail_msg("case.open refused: %s %s %s", r.code, r.field, r.en);
    int64_t id = s_result_int(&r, "case_id");
    rpc_reply_clear(&r);
    assert_true(id > 0);
    return id;
}

/* The review service's verdict, through its outbox and its relay. */
static void
s_review(fx_t *fx, const char *verdict, const char *agency, const char *json)
{
    char topic[128];
    snprintf(topic, sizeof topic, "review.%s.%s", verdict, agency);
    tp_produce(&fx->review, topic, json);
}

/* ---- Fixture ---------------------------------------------------------------------- */

static void
s_write_keys(fx_t *fx)
{
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"review", "svc:review"},
                                         {"dept", "dept:" AGENCY ":system"},
                                         {"other", "dept:" OTHER ":system"},
                                         {"legal", "dept:" OTHER ":legal_office"},
                                         {NULL, NULL}};
    tp_world_open(&fx->w, "intake", ids, "intake-broker");
    char sec[41];
    tp_world_pair(&fx->w, "intake", fx->intake_pub, sec);
}

static rpc_client_t *
s_client(fx_t *fx, const char *name)
{
    return tp_world_client(&fx->w, fx->rpc_ep, fx->intake_pub, name);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    s_write_keys(fx);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();

    /* The review service's stream, before intake subscribes to it. */
    tp_producer_open(&fx->review, &fx->w, "review");
    char pub[41], sec[41], err[256];
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;

    fx->intake = s_start_intake(fx);
    /* Up when /healthz answers at all (its checks may still be settling). */
    tp_wait_http(fx->ops_port, "/healthz", 20000);
    s_register(fx);

    fx->dept = s_client(fx, "dept");
    fx->other = s_client(fx, "other");
    tp_world_pair(&fx->w, "dept", pub, sec);
    fx->events =
        zsock_client(fx->w.ctx, ZMQ_SUB, fx->w.broker_pub, pub, sec, &lim, err, sizeof err);
    assert_non_null(fx->events);
    s_subscribe(fx, "case.opened");
    s_subscribe(fx, "case.deadline.warning");
    s_subscribe(fx, "case.deadline.overdue");
    assert_int_equal(zsock_connect(fx->events, fx->w.sub_ep, err, sizeof err), 0);
    s_pump(fx, 500);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    tp_stop(fx->intake, SIGTERM, 10000);
    rpc_client_destroy(&fx->dept);
    rpc_client_destroy(&fx->other);
    tp_producer_close(&fx->review);
    zsock_close(&fx->events);
    tp_world_close(&fx->w);
    free(fx);
    s_fx = NULL;
    return 0;
}

/* ---- Tests ------------------------------------------------------------------------ */

static void
test_bad_settings_exit_78_naming_each(void **state)
{
    (void)state;
    char bin[600], out[4096], err[4096];
    snprintf(bin, sizeof bin, "%s/sx-intake", ts_env("SX_BIN"));
    const char *argv[] = {"env",
                          "-i",
                          "SX_OPS_PORT=http",
                          "SX_BROKER_PUBLIC_KEY=short",
                          "SX_INTAKE_BIND=udp://x",
                          "SX_REDIS_URL=http://nope",
                          bin,
                          NULL};
    int rc = ts_run(argv, NULL, out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 78);
    const char *want[] = {
        "SX_OPS_PORT", "SX_BROKER_PUBLIC_KEY", "SX_INTAKE_BIND", "SX_REDIS_URL", "SX_PG_URL",
        "SX_KEY_FILE", "SX_KEYS_FILE",         "SX_BROKER_PUB:", "SX_BROKER_SUB"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err, want[i]))
            fail_msg("%s not named in: %s", want[i], err);
}

static void
test_open_case_event_and_timers(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 1);
    evmsg_t *ev = s_event(fx, "case.opened." AGENCY, 5000);
    assert_non_null(ev);
    assert_int_equal(s_data_int(ev, "case_id"), id);
    evmsg_destroy(&ev);

    /* Both timers armed shortly after the commit (deadlines scan every second). */
    redisContext *rc = redisConnect("127.0.0.1", atoi(strrchr(ts_env("SX_REDIS_URL"), ':') + 1));
    assert_true(rc && !rc->err);
    char member[64];
    snprintf(member, sizeof member, "overdue:%" PRId64, id);
    bool armed = false;
    for (int64_t end = tp_now_ms() + 5000; !armed && tp_now_ms() < end; tp_sleep_ms(100)) {
        redisReply *r = redisCommand(rc, "ZSCORE sx:timer:{intake}:due %s", member);
        armed = r && r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
    }
    assert_true(armed);
    redisFree(rc);

    /* Another agency cannot read it. */
    char body[64];
    snprintf(body, sizeof body, "{\"case_id\": %" PRId64 "}", id);
    rpc_reply_t r = s_call(fx->other, "case.get", body);
    assert_false(r.ok);
    assert_string_equal(r.code, "forbidden");
    rpc_reply_clear(&r);
}

static void
test_review_approval_lets_decide_through(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 2);
    rpc_reply_t r = s_call(fx->dept, "case.propose", s_propose_body(id));
    if (!r.ok)
        fail_msg("case.propose refused: %s %s %s", r.code, r.field, r.en);
    rpc_reply_clear(&r);
    r = s_call(fx->dept, "case.decide", s_decide_body(id, 2));
    assert_false(r.ok);
    assert_string_equal(r.code, "review_pending");
    rpc_reply_clear(&r);

    char json[512];
    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1, \"opinion\": \"同意。\","
             " \"reviewer\": \"FZ001\"}",
             id);
    s_review(fx, "approved", AGENCY, json);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND verdict = 'approved'",
             id);
    for (int64_t end = tp_now_ms() + 10000; tp_pg_num(fx->w.pg, sql) < 1 && tp_now_ms() < end;)
        s_pump(fx, 100);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);
    r = s_call(fx->dept, "case.decide", s_decide_body(id, 2));
    if (!r.ok)
        fail_msg("case.decide refused after approval: %s %s %s", r.code, r.field, r.en);
    rpc_reply_clear(&r);
}

/* A version the reviewer returned, approved on escalation by the legal office: the
 * approval replaces the return and the decision goes through; a later "returned" for the
 * same version changes nothing. */
static void
test_escalated_approval_replaces_a_return(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 6);
    rpc_reply_t r = s_call(fx->dept, "case.propose", s_propose_body(id));
    if (!r.ok)
        fail_msg("case.propose refused: %s %s %s", r.code, r.field, r.en);
    rpc_reply_clear(&r);
    char json[512], sql[256];
    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1, \"opinion\": \"存在问题。\","
             " \"reviewer\": \"FZ001\"}",
             id);
    s_review(fx, "returned", AGENCY, json);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND verdict = 'returned'",
             id);
    for (int64_t end = tp_now_ms() + 10000; tp_pg_num(fx->w.pg, sql) < 1 && tp_now_ms() < end;)
        s_pump(fx, 100);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);
    r = s_call(fx->dept, "case.decide", s_decide_body(id, 6));
    assert_false(r.ok);
    assert_string_equal(r.code, "review_required");
    rpc_reply_clear(&r);

    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1, \"opinion\": \"同意。\","
             " \"reviewer\": \"SFJ001\"}",
             id);
    s_review(fx, "approved", AGENCY, json);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64
             " AND verdict = 'approved' AND reviewer = 'SFJ001'",
             id);
    for (int64_t end = tp_now_ms() + 10000; tp_pg_num(fx->w.pg, sql) < 1 && tp_now_ms() < end;)
        s_pump(fx, 100);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);
    r = s_call(fx->dept, "case.decide", s_decide_body(id, 6));
    if (!r.ok)
        fail_msg("case.decide refused after the escalated approval: %s %s %s", r.code, r.field,
                 r.en);
    rpc_reply_clear(&r);
}

static void
test_malformed_verdicts_rejected_naming_the_field(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 3);
    char json[5200], big[4100];
    memset(big, 'x', 4001);
    big[4001] = '\0';
    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1, \"opinion\": \"%s\","
             " \"reviewer\": \"FZ001\"}",
             id, big);
    s_review(fx, "returned", AGENCY, json);
    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1,"
             " \"opinion\": \"\"}",
             id);
    s_review(fx, "approved", AGENCY, json);
    /* A case of AGENCY named under another agency's topic. */
    snprintf(json, sizeof json,
             "{\"case_id\": %" PRId64 ", \"proposal_version\": 1,"
             " \"opinion\": \"\", \"reviewer\": \"FZ001\"}",
             id);
    s_review(fx, "approved", OTHER, json);
    const char *sql = "SELECT count(*) FROM intake.bus_rejected WHERE stream = 'review'";
    for (int64_t end = tp_now_ms() + 10000; tp_pg_num(fx->w.pg, sql) < 3 && tp_now_ms() < end;)
        s_pump(fx, 100);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 3);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM intake.bus_rejected WHERE reason LIKE"
                               " 'data.opinion: longer than 4000 bytes%'"),
                     1);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM intake.bus_rejected WHERE reason LIKE"
                               " 'data.reviewer: missing%'"),
                     1);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM intake.bus_rejected WHERE reason LIKE"
                               " 'data.case_id: no case%'"),
                     1);
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM intake.review_verdict WHERE case_id = %" PRId64,
             id);
    assert_int_equal(tp_pg_num(fx->w.pg, q), 0);
}

static void
test_deadline_fires_once_and_rearms_after_flush(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 4);
    /* The limit ran out yesterday: make the overdue timer due now, twice over. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE intake.cases SET due = current_date - 1, warn_on = current_date - 5"
             " WHERE id = %" PRId64,
             id);
    tp_pg_exec(fx->w.pg, sql);
    redisContext *rc = redisConnect("127.0.0.1", atoi(strrchr(ts_env("SX_REDIS_URL"), ':') + 1));
    assert_true(rc && !rc->err);
    char member[64];
    snprintf(member, sizeof member, "overdue:%" PRId64, id);
    for (int i = 0; i < 2; i++) {
        freeReplyObject(redisCommand(rc, "ZADD sx:timer:{intake}:due 1 %s", member));
        tp_sleep_ms(1500);
    }
    evmsg_t *ev = s_event(fx, "case.deadline.overdue." AGENCY, 5000);
    assert_non_null(ev);
    assert_int_equal(s_data_int(ev, "case_id"), id);
    evmsg_destroy(&ev);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM intake.deadline_event WHERE kind ="
                                         " 'overdue'"),
                     1);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.cases WHERE overdue_at IS NOT NULL AND"
             " id = %" PRId64,
             id);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 1);
    /* No warning after the deadline has passed. */
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM intake.deadline_event WHERE kind ="
                                         " 'warning'"),
                     0);

    /* Redis loses everything: the timers come back from Postgres. */
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    int64_t open_id = s_open(fx, 5);
    snprintf(member, sizeof member, "overdue:%" PRId64, open_id);
    bool armed = false;
    for (int64_t end = tp_now_ms() + 8000; !armed && tp_now_ms() < end; tp_sleep_ms(100)) {
        redisReply *r = redisCommand(rc, "ZSCORE sx:timer:{intake}:due %s", member);
        armed = r && r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
    }
    assert_true(armed);
    redisReply *r = redisCommand(rc, "EXISTS sx:timer:{intake}:armed");
    assert_true(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    redisFree(rc);
}

static void
test_healthz_and_metrics(void **state)
{
    fx_t *fx = *state;
    char buf[65536];
    int status = -1;
    for (int64_t end = tp_now_ms() + 8000; status != 200 && tp_now_ms() < end; s_pump(fx, 200))
        status = tp_http_get(fx->ops_port, "/healthz", buf, sizeof buf);
    if (status != 200)
        fail_msg("/healthz: %d %s", status, buf);
    assert_int_equal(tp_http_get(fx->ops_port, "/metrics", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "sx_intake_rpc_requests_total"));
    assert_non_null(strstr(buf, "sx_intake_deadline_events_total{kind=\"overdue\"} 1"));
}

static void
test_sigterm_exits_0(void **state)
{
    fx_t *fx = *state;
    int status = tp_stop(fx->intake, SIGTERM, 10000);
    fx->intake = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings_exit_78_naming_each),
        cmocka_unit_test(test_open_case_event_and_timers),
        cmocka_unit_test(test_review_approval_lets_decide_through),
        cmocka_unit_test(test_escalated_approval_replaces_a_return),
        cmocka_unit_test(test_malformed_verdicts_rejected_naming_the_field),
        cmocka_unit_test(test_deadline_fires_once_and_rearms_after_flush),
        cmocka_unit_test(test_healthz_and_metrics),
        cmocka_unit_test(test_sigterm_exits_0),
    };
    return cmocka_run_group_tests_name("intake", tests, s_setup, s_teardown);
}
