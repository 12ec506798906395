/* Statistics (统计年报) through the real sx-publication beside a real sx-broker, PostgreSQL
 * and Redis, with real CURVE keys. The test plays intake, review and recording (their
 * outboxes and relays): their events reach publication over the bus and become the figures
 * of /api/v1/statistics, the HTML page and the legal office's rpc op; the period-end timer
 * makes the reports, and the legal office hears publication.report through the broker (its
 * ACL passes only topics ending in the office's own code); after a crash and a cursor reset
 * every event is delivered again and the figures do not move; a rejected draft is
 * corrected and resubmitted over rpc; the agency switches 轻微 publication on over rpc. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "bus.h"
#include "jsonmp.h"
#include "rpc.h"
#include "timer.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY "11620200013926143G"
#define LEGAL  "11620200013926135M"

#define S_STREAMS 3 /* intake, review, recording: the test plays all three */

typedef struct {
    tp_world_t w;
    char svc_pub[41];
    char rpc_ep[64];
    int portal_port;
    pid_t svc;
    tp_producer_t prod[S_STREAMS];
    void *legal_sub; /* the legal office's subscriber on the broker */
} fx_t;

static fx_t *s_fx;
static const char *const s_streams[S_STREAMS] = {"intake", "review", "recording"};

static int
s_stream(const char *topic)
{
    if (strncmp(topic, "review.", 7) == 0)
        return 1;
    if (strncmp(topic, "record.", 7) == 0)
        return 2;
    return 0;
}

/* Emits one event of the stream its topic belongs to (data as JSON) and commits. */
static void
s_emit(fx_t *fx, const char *topic, const char *json)
{
    tp_produce(&fx->prod[s_stream(topic)], topic, json);
}

/* Runs the three relays for ms. */
static void
s_pump(fx_t *fx, int ms)
{
    tp_pump(fx->prod, S_STREAMS, ms);
}

/* Pumps until sql (one count) reaches want, or 20 s. */
static void
s_wait_count(fx_t *fx, const char *sql, long want)
{
    tp_pg_wait_num(fx->w.pg, sql, want, 20000, fx->prod, S_STREAMS);
}

static rpc_reply_t
s_call(fx_t *fx, const char *who, const char *op, const char *json)
{
    return tp_world_call(&fx->w, fx->rpc_ep, fx->svc_pub, who, op, json, 5000, 3);
}

/* An rpc result as JSON (the caller json_decref's it); fails the test on an error reply. */
static json_t *
s_call_json(fx_t *fx, const char *who, const char *op, const char *json)
{
    rpc_reply_t r = s_call(fx, who, op, json);
    json_t *o = tp_reply_json(&r);
    rpc_reply_clear(&r);
    return o;
}

static json_int_t
s_num(const json_t *o, const char *section, const char *field)
{
    const json_t *s = section ? json_object_get(o, section) : o;
    const json_t *v = json_object_get(s, field);
    if (!json_is_integer(v))
        fail_msg("%s.%s: not an integer", section ? section : "", field);
    return json_integer_value(v);
}

/* ---- The events of a half-year -------------------------------------------------------- */

static void
s_case(fx_t *fx, int id, const char *type, const char *opened, const char *decided,
       const char *circumstance)
{
    char topic[128], json[2048];
    snprintf(topic, sizeof topic, "case.opened.%s", AGENCY);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":{\"kind\":\"org\",\"name\":\"嘉峪关某某商贸有限公司\","
             "\"id_type\":\"uscc\",\"id_no\":\"91620200MA71234563\"},\"summary\":null,"
             "\"opened_on\":\"%s\"}",
             id, id, type, opened);
    s_emit(fx, topic, json);
    if (!decided)
        return;
    snprintf(topic, sizeof topic, "case.decided.%s", AGENCY);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2026〕%d号\","
             "\"decision_date\":\"%s\",\"reviewed\":true,\"category\":\"罚款\","
             "\"content\":\"罚款5000元，当事人住址嘉峪关市某路1号\",\"fine\":\"0.5\","
             "\"confiscation\":\"0.1\",\"legal_basis\":\"《食品安全法》\","
             "\"violation_code\":null,\"circumstance\":\"%s\"}",
             id, id, type, id, decided, circumstance);
    s_emit(fx, topic, json);
}

static void
test_events_become_figures(void **state)
{
    fx_t *fx = *state;
    s_emit(fx, "registry.agency." AGENCY,
           "{\"action\":\"put\",\"key\":\"" AGENCY "\",\"version\":1,\"entry\":{"
           "\"agency\":\"" AGENCY "\",\"version\":1,\"name\":\"嘉峪关市市场监督管理局\","
           "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"李四\","
           "\"head_title\":\"局长\"}}");
    s_case(fx, 1, "penalty", "2026-02-02", "2026-03-02", "general");
    s_case(fx, 2, "licence", "2026-04-01", "2026-04-10", "general");
    s_case(fx, 3, "inspection", "2026-05-01", NULL, NULL);
    s_emit(fx, "case.proposed." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"proposed\",\"version\":1,\"requires_review\":true}");
    s_emit(fx, "case.proposed." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"proposed\",\"version\":2,\"requires_review\":true}");
    s_emit(fx, "review.returned." AGENCY,
           "{\"case_id\":1,\"proposal_version\":1,\"opinion\":\"证据不足\",\"reviewer\":\"甘R1\"}");
    s_emit(fx, "review.approved." AGENCY,
           "{\"case_id\":1,\"proposal_version\":2,\"opinion\":\"\",\"reviewer\":\"甘R1\"}");
    s_emit(fx, "review.due_soon." AGENCY,
           "{\"task_id\":9,\"case_id\":1,\"proposal_version\":2,\"due_on\":\"2026-03-01\","
           "\"reviewer\":null}");
    /* An AV gap found 2026-03-03 and closed 2026-03-05 (China time), one still open. */
    s_emit(fx, "record.gap." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"matter_code\":\"M1\",\"stage\":\"onsite\","
           "\"rule\":\"av_matter\",\"at\":1772510400000}");
    s_emit(fx, "record.gap_closed." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"matter_code\":\"M1\",\"stage\":\"onsite\","
           "\"rule\":\"av_matter\",\"at\":1772683200000,\"n\":12}");
    s_emit(fx, "record.gap." AGENCY,
           "{\"case_id\":2,\"case_no\":\"C-2\",\"matter_code\":\"M1\",\"stage\":\"decision\","
           "\"rule\":\"av_matter\",\"at\":1775016000000}");
    s_emit(fx, "record.appended." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"n\":1,\"event\":\"case.opened\","
           "\"stage\":null,\"seq\":1,\"head\":\"00\"}");

    s_wait_count(fx, "SELECT count(*) FROM publication.record", 2);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_review", 2);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_gap WHERE closed_on IS NOT NULL", 1);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_gap", 2);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_case", 3);

    /* The public API, for the closed half-year. */
    char buf[65536];
    assert_int_equal(tp_http_get(fx->portal_port,
                                 "/api/v1/statistics?agency=" AGENCY "&year=2026&half=1", buf,
                                 sizeof buf),
                     200);
    json_t *o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    assert_int_equal(s_num(o, "cases", "opened"), 3);
    assert_int_equal(s_num(o, "publication", "decisions"), 2);
    assert_int_equal(s_num(o, "publication", "pending"), 2);
    assert_string_equal(json_string_value(json_object_get(o, "fines")), "1.0");
    assert_int_equal(s_num(o, "av_gaps", "opened"), 2);
    assert_int_equal(s_num(o, "av_gaps", "closed"), 1);
    assert_int_equal(s_num(o, "av_gaps", "open_at_end"), 1);
    json_decref(o);
    assert_int_equal(tp_http_get(fx->portal_port, "/statistics?agency=" AGENCY "&year=2026&half=1",
                                 buf, sizeof buf),
                     200);
    assert_non_null(strstr(buf, "嘉峪关市市场监督管理局 行政执法统计年报"));
    assert_non_null(strstr(buf, "<svg"));

    /* The legal office's op: this year so far, where today's review verdicts fall. */
    o = s_call_json(fx, "legal", "publication.statistics",
                    "{\"period\":\"2026\",\"agency\":\"" AGENCY "\"}");
    assert_true(json_is_null(json_object_get(o, "generated_at")));
    const json_t *rep = json_object_get(o, "report");
    assert_int_equal(s_num(rep, "reviews", "required"), 2);
    assert_int_equal(s_num(rep, "reviews", "returned"), 1);
    assert_int_equal(s_num(rep, "reviews", "approved"), 1);
    assert_int_equal(s_num(rep, "reviews", "overdue"), 0);
    json_decref(o);
    /* A bad period is refused naming the field; an officer may not call it. */
    rpc_reply_t r = s_call(fx, "legal", "publication.statistics", "{\"period\":\"2026H3\"}");
    assert_false(r.ok);
    assert_string_equal(r.field, "body.period");
    rpc_reply_clear(&r);
    r = s_call(fx, "officer", "publication.statistics", "{\"period\":\"2026\"}");
    assert_false(r.ok);
    assert_string_equal(r.code, "forbidden");
    rpc_reply_clear(&r);
}

/* The service dies; its cursors are lost; it starts again and every event of the three
 * streams is delivered again: the figures stay as they were. */
static void
test_redelivery_after_crash(void **state)
{
    fx_t *fx = *state;
    char before[65536], after[65536];
    /* First let the two drafts' deadlines (long past) fire, so that only redelivery could
     * move the figures. */
    s_wait_count(fx, "SELECT count(*) FROM publication.record WHERE overdue", 2);
    assert_int_equal(tp_http_get(fx->portal_port,
                                 "/api/v1/statistics?agency=" AGENCY "&year=2026&half=1", before,
                                 sizeof before),
                     200);
    json_t *b = s_call_json(fx, "legal", "publication.statistics",
                            "{\"period\":\"2026\",\"agency\":\"" AGENCY "\"}");
    assert_true(tp_stop(fx->svc, SIGKILL, 10000) != -1);
    fx->svc = 0;
    long n = tp_pg_num(fx->w.pg, "SELECT count(*) FROM publication.bus_cursor");
    assert_true(n >= 3);
    PQclear(PQexec(fx->w.pg, "UPDATE publication.bus_cursor SET seq = 0"));
    char portal[32], redis[600];
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env[] = {portal, redis, "SX_LEGAL_OFFICE=" LEGAL, NULL};
    fx->svc = tp_world_service(&fx->w, "publication", fx->rpc_ep, 0, "publication-2", env);
    /* Caught up: every cursor back at its stream's head. */
    s_wait_count(fx,
                 "SELECT count(*) FROM publication.bus_cursor c WHERE c.seq = CASE c.stream "
                 "WHEN 'intake' THEN (SELECT last_seq FROM intake.bus_head) "
                 "WHEN 'review' THEN (SELECT last_seq FROM review.bus_head) "
                 "ELSE (SELECT last_seq FROM recording.bus_head) END AND c.seq > 0",
                 3);
    assert_int_equal(tp_http_get(fx->portal_port,
                                 "/api/v1/statistics?agency=" AGENCY "&year=2026&half=1", after,
                                 sizeof after),
                     200);
    assert_string_equal(after, before);
    json_t *a = s_call_json(fx, "legal", "publication.statistics",
                            "{\"period\":\"2026\",\"agency\":\"" AGENCY "\"}");
    if (!json_equal(json_object_get(a, "report"), json_object_get(b, "report"))) {
        char *ta = json_dumps(a, JSON_SORT_KEYS), *tb = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("before %s\nafter %s", tb, ta);
    }
    json_decref(a);
    json_decref(b);
    /* Nothing was drafted twice. */
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                         "'publication.drafted." AGENCY "'"),
                     2);
}

/* The period ends: its timer fires in the running service, the reports are made, and the
 * legal office hears the city's report through the broker. */
static void
test_period_end_report(void **state)
{
    fx_t *fx = *state;
    char err[256];
    /* The timer stats_arm set for 2026H1's end (Jul 1) is long gone; put it due now, as
     * Redis would hold it at 00:00 of Jul 1. */
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "publication", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(timer_arm(t, "pub_stats", "2026H1", timer_now_ms()), 0);
    timers_destroy(&t);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_run WHERE period = '2026H1'", 1);
    s_wait_count(fx, "SELECT count(*) FROM publication.stat_report WHERE period = '2026H1'", 1);

    /* Delivered: the legal office's own subscriber receives publication.report.<office>. */
    int64_t end = tp_now_ms() + 20000;
    char topic[160] = "";
    json_t *data = NULL;
    while (!data && tp_now_ms() < end) {
        s_pump(fx, 50);
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, fx->legal_sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        snprintf(topic, sizeof topic, "%.*s", (int)zmq_msg_size(&m), (char *)zmq_msg_data(&m));
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, fx->legal_sub, 0) >= 0);
        evmsg_t *msg = NULL;
        evmsg_err_t e = {0};
        if (strncmp(topic, "publication.report.", 19) == 0 &&
            evmsg_decode(zmq_msg_data(&m), zmq_msg_size(&m), &msg, &e) == 0) {
            size_t len = 0;
            const void *bytes = evmsg_data_bytes(msg, &len);
            char *text = jsonmp_to_json(bytes, len, "data", NULL, NULL);
            data = text ? json_loads(text, 0, NULL) : NULL;
            free(text);
            evmsg_destroy(&msg);
        }
        zmq_msg_close(&m);
    }
    assert_non_null(data);
    assert_string_equal(topic, "publication.report." LEGAL);
    assert_string_equal(json_string_value(json_object_get(data, "period")), "2026H1");
    assert_string_equal(json_string_value(json_object_get(data, "due_on")), "2026-07-10");
    const json_t *first = json_array_get(json_object_get(data, "agencies"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "agency")), AGENCY);
    assert_int_equal(json_integer_value(json_object_get(first, "av_gaps_open")), 1);
    json_decref(data);

    /* The office reads the stored report (and the city's list) over rpc. */
    json_t *o = s_call_json(fx, "legal", "publication.statistics",
                            "{\"period\":\"2026H1\",\"agency\":\"" AGENCY "\"}");
    assert_true(json_is_string(json_object_get(o, "generated_at")));
    assert_int_equal(s_num(json_object_get(o, "report"), "av_gaps", "open_at_end"), 1);
    json_decref(o);
    o = s_call_json(fx, "legal", "publication.statistics", "{\"period\":\"2026H1\"}");
    assert_true(json_is_true(json_object_get(o, "generated")));
    assert_int_equal(s_num(o, NULL, "total"), 1);
    json_decref(o);
    /* The agency's publisher reads its own figures only. */
    o = s_call_json(fx, "publisher", "publication.statistics", "{\"period\":\"2026H1\"}");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(o, "report"), "agency"), "code")),
                        AGENCY);
    json_decref(o);
    rpc_reply_t r = s_call(fx, "publisher", "publication.statistics",
                           "{\"period\":\"2026H1\",\"agency\":\"11330400MB00000019\"}");
    assert_false(r.ok);
    assert_string_equal(r.code, "forbidden");
    rpc_reply_clear(&r);
}

static void
test_resubmit_and_settings_over_rpc(void **state)
{
    fx_t *fx = *state;
    PGresult *res = PQexec(fx->w.pg, "SELECT id FROM publication.record WHERE case_id = 1");
    char id[24], body[512];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    snprintf(body, sizeof body, "{\"record_id\":%s,\"reason\":\"结论含当事人住址\"}", id);
    json_decref(s_call_json(fx, "publisher", "publication.reject", body));
    /* The agency's system corrects the conclusion and resubmits. */
    snprintf(body, sizeof body, "{\"record_id\":%s,\"conclusion\":\"罚款5000元\"}", id);
    json_t *o = s_call_json(fx, "system", "publication.resubmit", body);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "draft");
    json_decref(o);
    rpc_reply_t r = s_call(fx, "system", "publication.resubmit", body);
    assert_false(r.ok);
    assert_string_equal(r.code, "wrong_state");
    rpc_reply_clear(&r);
    snprintf(body, sizeof body, "{\"record_id\":%s,\"conclusion\":\"\"}", id);
    r = s_call(fx, "system", "publication.resubmit", body);
    assert_false(r.ok);
    assert_string_equal(r.field, "body.conclusion");
    rpc_reply_clear(&r);
    snprintf(body, sizeof body, "{\"record_id\":%s}", id);
    json_decref(s_call_json(fx, "publisher", "publication.approve", body));
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "\"conclusion\":\"罚款5000元\""));
    assert_null(strstr(buf, "某路1号"));

    /* The switch for 轻微 penalties, set by the agency's system; a publisher may not. */
    r = s_call(fx, "publisher", "publication.settings", "{\"publish_minor\":true}");
    assert_false(r.ok);
    assert_string_equal(r.code, "forbidden");
    rpc_reply_clear(&r);
    o = s_call_json(fx, "system", "publication.settings", "{\"publish_minor\":true}");
    assert_true(json_is_true(json_object_get(o, "publish_minor")));
    json_decref(o);
    s_case(fx, 20, "penalty", "2026-11-02", "2026-11-20", "minor");
    s_wait_count(fx,
                 "SELECT count(*) FROM publication.record WHERE case_id = 20 "
                 "AND state = 'draft'",
                 1);
}

static void
test_sigterm(void **state)
{
    fx_t *fx = *state;
    tp_stop_clean(&fx->svc, 10000);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    static const char *const ids[][2] = {{"publication", "svc:publication"},
                                         {"intake", "svc:intake"},
                                         {"review", "svc:review"},
                                         {"recording", "svc:recording"},
                                         {"publisher", "dept:" AGENCY ":publisher"},
                                         {"system", "dept:" AGENCY ":system"},
                                         {"officer", "dept:" AGENCY ":officer"},
                                         {"legal", "dept:" LEGAL ":legal_office"},
                                         {NULL, NULL}};
    tp_world_open(&fx->w, "pubstatsint", ids, "pubstats-broker");
    char sec[41], pub[41], err[256];
    tp_world_pair(&fx->w, "publication", fx->svc_pub, sec);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->portal_port = tp_free_port();

    for (int s = 0; s < S_STREAMS; s++)
        tp_producer_open(&fx->prod[s], &fx->w, s_streams[s]);
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    /* The legal office listens for its reports. */
    tp_world_pair(&fx->w, "legal", pub, sec);
    fx->legal_sub =
        zsock_client(fx->w.ctx, ZMQ_SUB, fx->w.broker_pub, pub, sec, &lim, err, sizeof err);
    assert_non_null(fx->legal_sub);
    /* The broker lets a department subscribe to full topics ending in its own code only. */
    assert_int_equal(zmq_setsockopt(fx->legal_sub, ZMQ_SUBSCRIBE, "publication.report." LEGAL,
                                    strlen("publication.report." LEGAL)),
                     0);
    assert_int_equal(zsock_connect(fx->legal_sub, fx->w.sub_ep, err, sizeof err), 0);

    char portal[32], redis[600];
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env[] = {portal, redis, "SX_LEGAL_OFFICE=" LEGAL, NULL};
    fx->svc = tp_world_service(&fx->w, "publication", fx->rpc_ep, 0, "publication", env);
    tp_wait_http(fx->portal_port, "/healthz", 20000);
    s_pump(fx, 300);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    if (fx->svc)
        tp_stop(fx->svc, SIGTERM, 10000);
    for (int s = 0; s < S_STREAMS; s++)
        tp_producer_close(&fx->prod[s]);
    zsock_close(&fx->legal_sub);
    tp_world_close(&fx->w);
    free(fx);
    s_fx = NULL;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_become_figures),
        cmocka_unit_test(test_redelivery_after_crash),
        cmocka_unit_test(test_period_end_report),
        cmocka_unit_test(test_resubmit_and_settings_over_rpc),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests_name("publication_stats", tests, s_setup, s_teardown);
}
