/* sx-recording, the real binary, beside a real sx-broker, sx-intake, PostgreSQL and
 * Redis, with real CURVE keys: a department's case, from case.open to case.close through
 * intake's door, becomes a hash chain in recording (one entry per case event, through the
 * bus); the AV matter list put through intake's registry opens a gap; the case is
 * sealed at close; record.verify and record.get answer through recording's door; a
 * restart neither loses nor repeats an entry; bad settings exit 78; SIGTERM exits 0. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "date.h"
#include "evmsg.h"
#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"

#define AGENCY "91110000600037341L"
#define OTHER  "11620200013926143G"

typedef struct {
    tp_world_t w;
    char intake_pub[41], rec_pub[41];
    char intake_ep[64], rec_ep[64];
    char sign_key[600];
    int intake_ops, rec_ops;
    pid_t intake, rec;
    rpc_client_t *dept, *rdept, *rother, *rlegal;
} fx_t;

static fx_t *s_fx;

/* Waits until the query's number equals want; fails after 15 s naming the last value. */
static void
s_wait_count(fx_t *fx, const char *sql, long long want)
{
    tp_pg_wait_num(fx->w.pg, sql, want, 15000, NULL, 0);
}

/* An rpc call with a fresh rid; the body as JSON; the result as JSON or NULL with code. */
static json_t *
s_call(rpc_client_t *c, const char *op, const char *json, char *code)
{
    rpc_reply_t r = tp_call(c, op, json, 3000, 3);
    json_t *out = NULL;
    snprintf(code, 40, "%s", r.ok ? "" : r.code);
    if (r.ok) {
        char *text = jsonmp_to_json(r.result, r.result_len, "result", NULL, NULL);
        out = json_loads(text, 0, NULL);
        free(text);
    } else if (strcmp(op, "record.get") != 0 && strcmp(op, "record.verify") != 0) {
        fail_msg("%s refused: %s %s %s", op, r.code, r.field, r.en);
    }
    rpc_reply_clear(&r);
    return out;
}

static void
s_ok(fx_t *fx, const char *op, const char *json)
{
    char code[40];
    json_decref(s_call(fx->dept, op, json, code));
}

static pid_t
s_start_recording(fx_t *fx)
{
    char key[640];
    snprintf(key, sizeof key, "SX_RECORDING_SIGN_KEY=%s", fx->sign_key);
    const char *env[] = {key, NULL};
    pid_t p = tp_world_service(&fx->w, "recording", fx->rec_ep, fx->rec_ops, "recording", env);
    tp_wait_http(fx->rec_ops, "/healthz", 20000);
    return p;
}

static rpc_client_t *
s_client(fx_t *fx, const char *name, const char *ep, const char *server_pub)
{
    return tp_world_client(&fx->w, ep, server_pub, name);
}

static int
s_setup(void **state)
{
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"recording", "svc:recording"},
                                         {"dept", "dept:" AGENCY ":system"},
                                         {"other", "dept:" OTHER ":system"},
                                         {"legal", "dept:" OTHER ":legal_office"},
                                         {NULL, NULL}};
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    tp_world_open(&fx->w, "recording_it", ids, "rec-broker");
    char sec[41];
    tp_world_pair(&fx->w, "intake", fx->intake_pub, sec);
    tp_world_pair(&fx->w, "recording", fx->rec_pub, sec);
    snprintf(fx->intake_ep, sizeof fx->intake_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(fx->rec_ep, sizeof fx->rec_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->intake_ops = tp_free_port();
    fx->rec_ops = tp_free_port();
    char *dir = ts_mkdtemp("rec-seal");
    snprintf(fx->sign_key, sizeof fx->sign_key, "%s/seal.key", dir);
    free(dir);
    fx->intake =
        tp_world_service(&fx->w, "intake", fx->intake_ep, fx->intake_ops, "rec-intake", NULL);
    tp_wait_http(fx->intake_ops, "/healthz", 20000);
    fx->rec = s_start_recording(fx);

    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.agency (code, name, level, domain, head_name, head_title,"
               " version, updated_by) VALUES ('" AGENCY "', '某市市场监督管理局', 'city',"
               " '市场监管', '张三', '局长', 1, 'test')");
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.officer (agency, cert_no, name, valid_from, valid_to, area,"
               " version, updated_by) VALUES"
               " ('" AGENCY "', 'ZF001', '王五', '2020-01-01', '2099-12-31', '全市', 1, 'test'),"
               " ('" AGENCY "', 'ZF002', '赵六', '2020-01-01', '2099-12-31', '全市', 1, 'test')");
    tp_pg_exec(fx->w.pg,
               "INSERT INTO intake.matter (agency, code, name, type, legal_basis, accepting_body,"
               " approving_body, conditions, time_limit, time_limit_unit, guide, version,"
               " updated_by) VALUES ('" AGENCY "', 'CF-0001', '对无照经营的处罚', 'penalty',"
               " '《无证无照经营查处办法》第十三条', '执法大队', '局', '-', 90, 'day', '-', 1,"
               " 'test')");
    fx->dept = s_client(fx, "dept", fx->intake_ep, fx->intake_pub);
    fx->rdept = s_client(fx, "dept", fx->rec_ep, fx->rec_pub);
    fx->rother = s_client(fx, "other", fx->rec_ep, fx->rec_pub);
    fx->rlegal = s_client(fx, "legal", fx->rec_ep, fx->rec_pub);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    tp_stop(fx->rec, SIGTERM, 10000);
    tp_stop(fx->intake, SIGTERM, 10000);
    rpc_client_destroy(&fx->dept);
    rpc_client_destroy(&fx->rdept);
    rpc_client_destroy(&fx->rother);
    rpc_client_destroy(&fx->rlegal);
    tp_world_close(&fx->w);
    free(fx);
    s_fx = NULL;
    return 0;
}

static char s_body[4096];

static int64_t
s_open(fx_t *fx, int no)
{
    char today[11], code[40];
    date_format(date_from_unix_cst(time(NULL)), today);
    snprintf(
        s_body, sizeof s_body,
        "{\"case_no\": \"京市监罚〔2026〕%d号\", \"matter_code\": \"CF-0001\","
        " \"opened_on\": \"%s\", \"party\": {\"kind\": \"org\", \"name\": \"某某商贸有限公司\","
        " \"id_type\": \"uscc\", \"id_no\": \"" OTHER "\"}, \"summary\": \"无照经营\","
        " \"on_site\": false, \"officers\": [\"ZF001\", \"ZF002\"]}",
        no, today);
    json_t *r = s_call(fx->dept, "case.open", s_body, code);
    int64_t id = json_integer_value(json_object_get(r, "case_id"));
    json_decref(r);
    assert_true(id > 0);
    return id;
}

static void
s_record(fx_t *fx, int64_t id, const char *stage, const char *kind)
{
    int64_t now = (int64_t)time(NULL) * 1000;
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"stage\": \"%s\", \"kind\": \"%s\","
             " \"doc_type\": \"现场检查笔录\", \"officers\": [\"ZF001\"], \"started_at\": %" PRId64
             ", \"ended_at\": %" PRId64 ", \"media\": {\"sha256\": \"%064d\", \"uri\":"
             " \"s3://m/1\", \"size\": 10}, \"classification\": \"internal\"}",
             id, stage, kind, now - 60000, now, 7);
    s_ok(fx, "case.record", s_body);
}

/* Takes case id from open to closed (7 events: opened, recorded, proposed, decided,
 * served, executed, closed; 8 with late, a video of the investigation recorded after the
 * proposal, once the gap it closes is open). */
static void
s_life(fx_t *fx, int64_t id, int n, bool late)
{
    char today[11];
    date_format(date_from_unix_cst(time(NULL)), today);
    s_record(fx, id, "investigation", "text");
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"category\": \"罚款\", \"content\": \"罚款五千元\","
             " \"fine\": \"0.5\", \"legal_basis\": \"《无证无照经营查处办法》第十三条\"}",
             id);
    s_ok(fx, "case.propose", s_body);
    if (late) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM recording.gap WHERE case_id = %" PRId64
                 " AND stage = 'investigation' AND rule = 'av_matter' AND closed_at IS NULL",
                 id);
        s_wait_count(fx, sql, 1);
        s_record(fx, id, "investigation", "video");
    }
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"decision_no\": \"京市监罚决〔2026〕%d号\","
             " \"decision_date\": \"%s\"}",
             id, n, today);
    s_ok(fx, "case.decide", s_body);
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"served_on\": \"%s\", \"method\": \"direct\"}", id,
             today);
    s_ok(fx, "case.serve", s_body);
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"executed_on\": \"%s\", \"method\": \"voluntary\"}", id,
             today);
    s_ok(fx, "case.execute", s_body);
    snprintf(s_body, sizeof s_body, "{\"case_id\": %" PRId64 ", \"closed_on\": \"%s\"}", id, today);
    s_ok(fx, "case.close", s_body);
}

static void
test_case_life_becomes_sealed_chain(void **state)
{
    fx_t *fx = *state;
    char code[40], sql[256], body[128];
    /* The AV list through intake's registry: investigation needs audio/video. */
    s_ok(fx, "registry.av_matter.put",
         "{\"agency\": \"" AGENCY "\", \"version\": 0, \"matter_code\": \"CF-0001\","
         " \"stages\": [\"investigation\"]}");
    s_wait_count(fx, "SELECT count(*) FROM recording.av_matter", 1);
    int64_t id = s_open(fx, 1);
    s_life(fx, id, 1, true);
    snprintf(sql, sizeof sql, "SELECT n FROM recording.archive WHERE case_id = %" PRId64, id);
    s_wait_count(fx, sql, 8);
    /* The gap opened when the case left investigation, closed by the late video. */
    snprintf(sql, sizeof sql,
             "SELECT closed_by FROM recording.gap WHERE case_id = %" PRId64
             " AND stage = 'investigation' AND rule = 'av_matter'",
             id);
    assert_int_equal(tp_pg_num(fx->w.pg, sql), 4);

    snprintf(body, sizeof body, "{\"case_id\": %" PRId64 "}", id);
    json_t *v = s_call(fx->rlegal, "record.verify", body, code);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "ok")));
    assert_true(json_is_true(json_object_get(v, "seal_ok")));
    assert_int_equal(json_integer_value(json_object_get(v, "count")), 8);
    json_decref(v);
    snprintf(body, sizeof body, "{\"case_id\": %" PRId64 ", \"reason\": \"案卷评查\"}", id);
    json_t *g = s_call(fx->rdept, "record.get", body, code);
    assert_non_null(g);
    json_t *es = json_object_get(g, "entries");
    assert_int_equal(json_array_size(es), 8);
    const char *events[] = {"case.opened",  "case.recorded", "case.proposed", "case.recorded",
                            "case.decided", "case.served",   "case.executed", "case.closed"};
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_array_get(es, i), "entry"), "event")),
                            events[i]);
    json_decref(g);
    assert_null(s_call(fx->rother, "record.get", body, code));
    assert_string_equal(code, "forbidden");
    assert_int_equal(
        tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.access_log WHERE NOT allowed"), 1);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.outbox WHERE topic LIKE"
                                         " 'record.gap_closed.%'"),
                     1);
    char buf[16384];
    assert_int_equal(tp_http_get(fx->rec_ops, "/metrics", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "sx_recording_intake_cursor"));
    assert_non_null(strstr(buf, "sx_recording_rpc_requests_total"));
}

static void
test_restart_loses_and_repeats_nothing(void **state)
{
    fx_t *fx = *state;
    int64_t a = s_open(fx, 11);
    s_record(fx, a, "start", "text");
    /* Recording down while intake goes on: it catches up from intake's outbox. */
    assert_int_equal(tp_stop(fx->rec, SIGTERM, 10000), 0);
    s_record(fx, a, "investigation", "text");
    int64_t b = s_open(fx, 12);
    s_life(fx, b, 12, false);
    fx->rec = s_start_recording(fx);
    s_record(fx, a, "investigation", "video");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT n FROM recording.rcase WHERE case_id = %" PRId64, a);
    s_wait_count(fx, sql, 4);
    snprintf(sql, sizeof sql, "SELECT n FROM recording.rcase WHERE case_id = %" PRId64, b);
    s_wait_count(fx, sql, 7);
    /* One entry per intake case event, none twice. */
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM intake.outbox WHERE topic LIKE 'case.%'"
                               " AND topic NOT LIKE 'case.deadline.%'"),
                     tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.entry"));
    assert_int_equal(
        tp_pg_num(fx->w.pg, "SELECT count(*) - count(DISTINCT seq) FROM recording.entry"), 0);
    char code[40], body[64];
    snprintf(body, sizeof body, "{\"case_id\": %" PRId64 "}", a);
    json_t *v = s_call(fx->rlegal, "record.verify", body, code);
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);
}

/* Text records are standard documents: another document type is refused at intake's
 * door, the reply listing the allowed ones, and nothing reaches the record. An AV
 * record's doc_type is free (a video is no 文书). */
static void
test_unknown_doc_type_refused_at_intake(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, 21);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT n FROM recording.rcase WHERE case_id = %" PRId64, id);
    s_wait_count(fx, sql, 1);
    int64_t now = (int64_t)time(NULL) * 1000;
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"stage\": \"investigation\", \"kind\": \"text\","
             " \"doc_type\": \"随手记\", \"officers\": [\"ZF001\"], \"started_at\": %" PRId64
             ", \"ended_at\": %" PRId64 ", \"media\": {\"sha256\": \"%064d\", \"uri\":"
             " \"s3://m/2\", \"size\": 10}, \"classification\": \"internal\"}",
             id, now - 60000, now, 7);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    assert_int_equal(jsonmp_from_json(s_body, strlen(s_body), "body", 2, &body, NULL), 0);
    rpc_reply_t r = {0};
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(
        rpc_call(fx->dept, "case.record", "t-doc-1", body.data, body.size, 3000, 3, &r, &err), 0);
    msgpack_sbuffer_destroy(&body);
    assert_false(r.ok);
    assert_string_equal(r.code, "bad_field");
    assert_string_equal(r.field, "body.doc_type");
    const char *listed[] = {"立案审批表",     "询问笔录",       "现场检查笔录", "听证笔录",
                            "法制审核意见书", "行政处罚决定书", "送达回证"};
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
        if (!strstr(r.en, listed[i]) || !strstr(r.zh, listed[i]))
            fail_msg("%s not listed in: %s / %s", listed[i], r.en, r.zh);
    rpc_reply_clear(&r);
    /* A standard one passes, and so does a video's own description. */
    s_record(fx, id, "investigation", "text");
    snprintf(s_body, sizeof s_body,
             "{\"case_id\": %" PRId64 ", \"stage\": \"investigation\", \"kind\": \"video\","
             " \"doc_type\": \"现场检查执法记录仪视频\", \"officers\": [\"ZF001\"],"
             " \"started_at\": %" PRId64 ", \"ended_at\": %" PRId64 ", \"media\": {\"sha256\":"
             " \"%064d\", \"uri\": \"s3://m/3\", \"size\": 10}, \"classification\": \"internal\"}",
             id, now - 60000, now, 8);
    s_ok(fx, "case.record", s_body);
    s_wait_count(fx, sql, 3);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.entry e JOIN recording.rcase c"
                               " USING (case_id) WHERE c.case_no LIKE '%21号'"
                               " AND e.event = 'case.recorded'"),
                     2);
}

static void
test_bad_settings_exit_78(void **state)
{
    (void)state;
    char bin[600], out[4096], err[4096];
    snprintf(bin, sizeof bin, "%s/sx-recording", ts_env("SX_BIN"));
    const char *argv[] = {"env", "-i", "SX_OPS_PORT=http", "SX_RECORDING_BIND=udp://x", bin, NULL};
    assert_int_equal(ts_run(argv, NULL, out, sizeof out, err, sizeof err), 78);
    const char *want[] = {"SX_OPS_PORT",  "SX_RECORDING_BIND",     "SX_PG_URL",    "SX_KEY_FILE",
                          "SX_KEYS_FILE", "SX_RECORDING_SIGN_KEY", "SX_BROKER_PUB"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(err, want[i]))
            fail_msg("%s not named in: %s", want[i], err);
}

static void
test_sigterm_exits_0(void **state)
{
    fx_t *fx = *state;
    tp_stop_clean(&fx->rec, 10000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings_exit_78),
        cmocka_unit_test_setup_teardown(test_case_life_becomes_sealed_chain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_loses_and_repeats_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_doc_type_refused_at_intake, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_exits_0, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
