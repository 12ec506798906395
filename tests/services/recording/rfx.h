/* rfx: the fixture the recording tests share (included by each test_*.c; one binary
 * each). A fresh database with recording's schema; intake events are built as envelopes
 * and handed to recording_events_handle in a transaction, as the bus subscriber would;
 * recording's rpc door runs in a thread behind ZAP with clients for agency A's system,
 * agency B's system, A's officer role, the legal office and an svc operator. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>
#include <zmq.h>

#include "../../../services/recording/access.h"
#include "../../../services/recording/archive.h"
#include "../../../services/recording/av_rules.h"
#include "../../../services/recording/chain.h"
#include "../../../services/recording/classified.h"
#include "../../../services/recording/events.h"
#include "../../../services/recording/recording.h"
#include "bus.h"
#include "ident.h"
#include "jsonmp.h"
#include "keys.h"
#include "log.h"
#include "rpc.h"
#include "tsupport.h"

typedef struct {
    char pub[41], sec[41];
} rfx_pair_t;

#define RFX_PENDING_MAX 1000

typedef struct {
    char *url;
    db_t *srv_db, *ev_db, *chk;
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    recording_t app;
    pthread_t thread;
    atomic_bool stop;
    rfx_pair_t server, a, b, a_officer, legal, svc;
    char code_a[19], code_b[19], code_l[19];
    rpc_client_t *ca, *cb, *co, *cl, *cs;
    uint64_t seq;
    int64_t at;
    evmsg_t *pending[RFX_PENDING_MAX];
    char topics[RFX_PENDING_MAX][EVMSG_TOPIC_MAX + 1];
    int npending;
} rfx_t;

static void *
rfx_thread(void *arg)
{
    rfx_t *fx = arg;
    while (!atomic_load(&fx->stop))
        rpc_server_poll(fx->srv, 10);
    return NULL;
}

static void
rfx_sql(db_t *db, const char *sql)
{
    PGresult *r = PQexec(db_conn(db), sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(db_conn(db)));
    PQclear(r);
}

static long long
rfx_count(db_t *db, const char *sql)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    long long v = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

static void
rfx_code(char out[19], const char *body17)
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
}

static rpc_client_t *
rfx_client(rfx_t *fx, const rfx_pair_t *me)
{
    char err[256];
    rpc_client_t *c = rpc_client_new(fx->ctx, rpc_server_endpoint(fx->srv), fx->server.pub, me->pub,
                                     me->sec, err, sizeof err);
    if (!c)
        fail_msg("rpc_client_new: %s", err);
    return c;
}

static int
rfx_setup(void **state)
{
    rfx_t *fx = calloc(1, sizeof *fx);
    char err[512], dir[4096];
    log_init("test", LOG_WARN);
    fx->url = ts_fresh_db("recording");
    fx->srv_db = db_new(fx->url, "rec-srv");
    fx->ev_db = db_new(fx->url, "rec-events");
    fx->chk = db_new(fx->url, "rec-check");
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);
    assert_int_equal(db_connect(fx->ev_db, 5000), 0);
    assert_int_equal(db_connect(fx->chk, 5000), 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    if (bus_migrate(fx->srv_db, RECORDING_SCHEMA, dir) < 0)
        fail_msg("bus_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", ts_env("SX_TOP"));
    if (rpc_migrate(fx->srv_db, RECORDING_SCHEMA, dir) < 0)
        fail_msg("rpc_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/recording", ts_env("SX_TOP"));
    if (db_migrate(fx->srv_db, RECORDING_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(fx->srv_db));
    if (recording_events_prepare(fx->ev_db) < 0 || archive_prepare(fx->chk) < 0)
        fail_msg("prepare: %s", db_error(fx->ev_db));

    char *kdir = ts_mkdtemp("rec-sign");
    char kpath[4200];
    snprintf(kpath, sizeof kpath, "%s/seal.key", kdir);
    free(kdir);
    bool created = false;
    if (archive_key_load(kpath, true, &fx->app, &created, err, sizeof err) < 0)
        fail_msg("archive_key_load: %s", err);
    assert_true(created);

    rfx_code(fx->code_a, "11330400MB0000001");
    rfx_code(fx->code_b, "11330400MB0000002");
    rfx_code(fx->code_l, "11330400MB0000009");
    rfx_pair_t *pairs[] = {&fx->server, &fx->a, &fx->b, &fx->a_officer, &fx->legal, &fx->svc};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        assert_int_equal(keys_keypair(pairs[i]->pub, pairs[i]->sec), 0);
    char text[2048];
    snprintf(text, sizeof text,
             "%s dept:%s:system\n%s dept:%s:system\n%s dept:%s:officer\n"
             "%s dept:%s:legal_office\n%s svc:sxctl\n",
             fx->a.pub, fx->code_a, fx->b.pub, fx->code_b, fx->a_officer.pub, fx->code_a,
             fx->legal.pub, fx->code_l, fx->svc.pub);
    char *path = ts_write_tmp("rec-keys", text);
    keys_t *keys = keys_load(path, err, sizeof err);
    free(path);
    if (!keys)
        fail_msg("keys_load: %s", err);
    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    assert_non_null(fx->zap);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "recording", "dept:"), 0);
    assert_int_equal(zap_allow(fx->zap, "recording", "svc:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "recording", fx->server.sec, "tcp://127.0.0.1:*",
                             fx->srv_db, RECORDING_SCHEMA, err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    assert_int_equal(access_register(fx->srv, fx->srv_db, &fx->app), 0);
    assert_int_equal(classified_register(fx->srv, fx->srv_db), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, rfx_thread, fx), 0);
    fx->ca = rfx_client(fx, &fx->a);
    fx->cb = rfx_client(fx, &fx->b);
    fx->co = rfx_client(fx, &fx->a_officer);
    fx->cl = rfx_client(fx, &fx->legal);
    fx->cs = rfx_client(fx, &fx->svc);
    fx->at = 1700000000000;
    *state = fx;
    return 0;
}

static int
rfx_teardown(void **state)
{
    rfx_t *fx = *state;
    rpc_client_t **cs[] = {&fx->ca, &fx->cb, &fx->co, &fx->cl, &fx->cs};
    for (size_t i = 0; i < 5; i++)
        rpc_client_destroy(cs[i]);
    atomic_store(&fx->stop, true);
    pthread_join(fx->thread, NULL);
    rpc_server_destroy(&fx->srv);
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    for (int i = 0; i < fx->npending; i++)
        evmsg_destroy(&fx->pending[i]);
    db_destroy(&fx->srv_db);
    db_destroy(&fx->ev_db);
    db_destroy(&fx->chk);
    free(fx->url);
    free(fx);
    return 0;
}

/* Queues one intake event: event name, agency, data as JSON (printf format). */
static void
rfx_add(rfx_t *fx, const char *event, const char *agency, const char *fmt, ...)
{
    char json[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(json, sizeof json, fmt, ap);
    va_end(ap);
    msgpack_sbuffer data, env;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&env);
    jsonmp_err_t jerr = {0};
    if (jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr) < 0) {
        char b[300];
        fail_msg("json %s: %s", json, jsonmp_err_str(&jerr, b, sizeof b));
    }
    evmsg_header_t h = {.seq = ++fx->seq, .aseq = fx->seq, .at = fx->at += 1000, .v = 1};
    snprintf(h.src, sizeof h.src, "intake");
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
    assert_true(fx->npending < RFX_PENDING_MAX);
    assert_int_equal(evmsg_decode(env.data, env.size, &fx->pending[fx->npending], &err), 0);
    snprintf(fx->topics[fx->npending], sizeof fx->topics[0], "%s.%s", event, agency);
    fx->npending++;
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&env);
}

/* Applies the queued events in one transaction, as the subscriber does. */
static void
rfx_flush(rfx_t *fx)
{
    bus_event_t evs[RFX_PENDING_MAX];
    for (int i = 0; i < fx->npending; i++) {
        const evmsg_header_t *h = evmsg_header(fx->pending[i]);
        evs[i] = (bus_event_t){h->seq, h->aseq, h->at, h->v, fx->topics[i], fx->pending[i]};
    }
    assert_int_equal(db_begin(fx->ev_db), 0);
    if (recording_events_handle(fx->ev_db, evs, fx->npending, &fx->app) != 0)
        fail_msg("handler failed: %s", db_error(fx->ev_db));
    assert_int_equal(db_commit(fx->ev_db), 0);
    for (int i = 0; i < fx->npending; i++)
        evmsg_destroy(&fx->pending[i]);
    fx->npending = 0;
}

static void
rfx_open(rfx_t *fx, const char *agency, int id, const char *type, const char *matter, bool on_site)
{
    char head[256];
    snprintf(head, sizeof head,
             "\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"%s\","
             "\"state\":\"open\"",
             id, id, type, matter);
    rfx_add(fx, "case.opened", agency,
            "{%s,\"matter_version\":1,\"party\":{\"kind\":\"person\",\"name\":\"张三\","
            "\"id_type\":\"idcard\",\"id_no\":\"x\"},\"summary\":null,\"opened_on\":"
            "\"2024-01-02\",\"on_site\":%s,\"act_date\":\"2024-01-02\",\"officers\":[\"A001\","
            "\"A002\"],\"deadline\":\"2024-04-01\",\"deadline_warn_on\":\"2024-03-27\","
            "\"deadline_uncovered\":false}",
            head, on_site ? "true" : "false");
}

/* A case.recorded event: stage, kind, classification. */
static void
rfx_record(rfx_t *fx, const char *agency, int id, const char *type, const char *matter,
           int record_no, const char *stage, const char *kind, const char *cls)
{
    char head[256];
    snprintf(head, sizeof head,
             "\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"%s\","
             "\"state\":\"open\"",
             id, id, type, matter);
    rfx_add(fx, "case.recorded", agency,
            "{%s,\"record_no\":%d,\"stage\":\"%s\",\"kind\":\"%s\",\"doc_type\":\"现场检查笔录\","
            "\"officers\":[\"A001\",\"A002\"],\"device\":null,\"started_at\":1700000000000,"
            "\"ended_at\":1700000060000,\"media\":{\"sha256\":"
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"uri\":"
            "\"s3://media/%d/%d\",\"size\":1234},\"classification\":\"%s\"}",
            head, record_no, stage, kind, id, record_no, cls);
}

/* A case event with only the common head and extra JSON members (may be ""). */
static void
rfx_simple(rfx_t *fx, const char *event, const char *agency, int id, const char *type,
           const char *matter, const char *state, const char *extra)
{
    rfx_add(fx, event, agency,
            "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"%s\","
            "\"state\":\"%s\"%s%s}",
            id, id, type, matter, state, extra[0] ? "," : "", extra);
}

/* Calls op with a JSON body; returns the result as JSON (caller json_decref's) or NULL
 * with the error code in code (when not NULL). */
static json_t *
rfx_call(rpc_client_t *c, const char *op, const char *body, char *code, size_t codelen)
{
    static int rid;
    char ridbuf[32];
    snprintf(ridbuf, sizeof ridbuf, "r%d", ++rid);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    jsonmp_err_t jerr = {0};
    assert_int_equal(jsonmp_from_json(body, strlen(body), "body", 2, &b, &jerr), 0);
    rpc_reply_t rep = {0};
    evmsg_err_t err = {0};
    if (rpc_call(c, op, ridbuf, b.data, b.size, 5000, 1, &rep, &err) < 0)
        fail_msg("rpc_call %s: %s", op, err.reason);
    msgpack_sbuffer_destroy(&b);
    json_t *out = NULL;
    if (code)
        snprintf(code, codelen, "%s", rep.ok ? "" : rep.code);
    if (rep.ok) {
        char *text = jsonmp_to_json(rep.result, rep.result_len, "result", NULL, NULL);
        assert_non_null(text);
        out = json_loads(text, 0, NULL);
        free(text);
    }
    rpc_reply_clear(&rep);
    return out;
}
