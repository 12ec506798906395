/* sx-publication, the real binary, beside a real sx-broker, PostgreSQL and Redis, with real
 * CURVE keys. The test plays intake (its outbox and relay): a decided case becomes a
 * draft; the agency's publisher approves it over rpc (others cannot); the portal serves
 * it (JSON and the HTML page); case.revoked makes the API and the page answer 410,
 * both with the reason; SIGTERM stops it with 0. */
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
#include <libpq-fe.h>
#include <zmq.h>

#include "bus.h"
#include "jsonmp.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY "11620200013926143G"
#define OTHER  "11330400MB00000019"

typedef struct {
    char *url;
    tp_world_t w;
    char svc_pub[41];
    char rpc_ep[64];
    int ops_port, portal_port;
    PGconn *pg;
    pid_t broker, svc;
    void *ctx;
    db_t *intake_db, *relay_db; /* the test plays intake: its outbox and its relay */
    void *intake_pub;
    bus_relay_t *relay;
    int rid;
} fx_t;

static fx_t *s_fx;

/* Emits one intake event (data as JSON) and commits. */
static void
s_emit(fx_t *fx, const char *topic, const char *json)
{
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    jsonmp_err_t jerr = {0};
    assert_int_equal(jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr), 0);
    evmsg_err_t err = {0};
    assert_int_equal(db_begin(fx->intake_db), 0);
    assert_int_equal(bus_emit(fx->intake_db, "intake", topic, 1, data.data, data.size, &err), 0);
    assert_int_equal(db_commit(fx->intake_db), 0);
    msgpack_sbuffer_destroy(&data);
}

/* Runs the intake relay for ms. */
static void
s_pump(fx_t *fx, int ms)
{
    int64_t end = tp_now_ms() + ms;
    while (tp_now_ms() < end) {
        bus_relay_step(fx->relay, tp_now_ms());
        tp_sleep_ms(20);
    }
}

/* Pumps until sql (one count) reaches want, or 15 s. */
static void
s_wait_count(fx_t *fx, const char *sql, long want)
{
    int64_t end = tp_now_ms() + 15000;
    long n = -1;
    while (tp_now_ms() < end) {
        PGresult *r = PQexec(fx->pg, sql);
        n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
        PQclear(r);
        if (n == want)
            return;
        s_pump(fx, 100);
    }
    fail_msg("%s: %ld, wanted %ld", sql, n, want);
}

static rpc_client_t *
s_client(fx_t *fx, const char *name)
{
    char pub[41], sec[41], err[256];
    tp_world_pair(&fx->w, name, pub, sec);
    rpc_client_t *c = rpc_client_new(fx->ctx, fx->rpc_ep, fx->svc_pub, pub, sec, err, sizeof err);
    assert_non_null(c);
    return c;
}

static rpc_reply_t
s_call(fx_t *fx, const char *who, const char *op, const char *json)
{
    rpc_client_t *c = s_client(fx, who);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    jsonmp_err_t jerr = {0};
    assert_int_equal(jsonmp_from_json(json, strlen(json), "body", 2, &body, &jerr), 0);
    char rid[32];
    snprintf(rid, sizeof rid, "p-%d-%d", (int)getpid(), ++fx->rid);
    rpc_reply_t r = {0};
    evmsg_err_t err = {0};
    if (rpc_call(c, op, rid, body.data, body.size, 3000, 3, &r, &err) != 0)
        fail_msg("%s: no reply: %s", op, err.reason);
    msgpack_sbuffer_destroy(&body);
    rpc_client_destroy(&c);
    return r;
}

static void
test_decided_approved_served_revoked(void **state)
{
    fx_t *fx = *state;
    s_emit(fx, "case.opened." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"open\",\"party\":{\"kind\":\"person\",\"name\":\"王小明\","
           "\"id_type\":\"idcard\",\"id_no\":\"62020019800101001X\"},\"summary\":null,"
           "\"opened_on\":\"2026-11-02\"}");
    s_emit(fx, "case.decided." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2026〕1号\","
           "\"decision_date\":\"2026-11-20\",\"reviewed\":false,\"category\":\"罚款\","
           "\"content\":\"罚款2000元\",\"fine\":\"0.2\",\"confiscation\":\"0\","
           "\"legal_basis\":\"《食品安全法》\",\"violation_code\":null,\"circumstance\":null}");
    s_wait_count(fx, "SELECT count(*) FROM publication.record WHERE state = 'draft'", 1);
    PGresult *r = PQexec(fx->pg, "SELECT id FROM publication.record");
    char id[24], body[128], path[64], buf[8192];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    snprintf(body, sizeof body, "{\"record_id\":%s}", id);
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 404);

    /* Only the agency's designated publisher: an officer is refused, another agency's
     * publisher does not find it. */
    rpc_reply_t rep = s_call(fx, "officer", "publication.approve", body);
    assert_false(rep.ok);
    rpc_reply_clear(&rep);
    rep = s_call(fx, "other", "publication.approve", body);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "not_found");
    rpc_reply_clear(&rep);
    rep = s_call(fx, "publisher", "publication.approve", "{\"record_id\":\"x\"}");
    assert_false(rep.ok);
    assert_string_equal(rep.field, "body.record_id");
    rpc_reply_clear(&rep);
    rep = s_call(fx, "publisher", "publication.approve", body);
    if (!rep.ok)
        fail_msg("approve: %s %s", rep.code, rep.en);
    rpc_reply_clear(&rep);

    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "王**"));
    assert_null(strstr(buf, "王小明"));
    assert_non_null(strstr(buf, "620200************"));
    assert_int_equal(
        tp_http_get(fx->portal_port, "/api/v1/decisions?party=%E7%8E%8B", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "\"total\":1"));
    assert_int_equal(tp_http_get(fx->portal_port, "/api/v1/decisions?page=0", buf, sizeof buf),
                     400);
    /* The same record as the public's HTML page (the portal's cache is keyed on the data
     * version: the 404 seen before approval is not served again). */
    static char page[65536];
    char hpath[64];
    snprintf(hpath, sizeof hpath, "/decisions/%s", id);
    assert_int_equal(tp_http_get(fx->portal_port, hpath, page, sizeof page), 200);
    assert_non_null(strstr(page, "<html lang=\"zh-CN\">"));
    assert_non_null(strstr(page, "王**"));
    assert_null(strstr(page, "王小明"));
    assert_non_null(strstr(page, "620200************"));
    assert_int_equal(tp_http_get(fx->portal_port, "/?party=%E7%8E%8B&type=", page, sizeof page),
                     200);
    assert_non_null(strstr(page, "共 1 条记录"));
    assert_int_equal(tp_http_get(fx->portal_port, "/?page=0", page, sizeof page), 400);
    assert_non_null(strstr(page, "页码（page）"));

    /* Credit repair before the minimum period (一般: 3 months) is refused over rpc. */
    snprintf(body, sizeof body, "{\"record_id\":%s,\"reason\":\"已整改\"}", id);
    rep = s_call(fx, "publisher", "publication.repair", body);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "repair_too_early");
    rpc_reply_clear(&rep);

    s_emit(fx, "case.revoked." AGENCY,
           "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"revoked\",\"kind\":\"confirm_illegal\",\"reason\":\"法院判决确认违法\","
           "\"revoked_on\":\"2026-11-26\",\"decision_no\":\"嘉罚〔2026〕1号\",\"version\":1}");
    s_wait_count(fx, "SELECT count(*) FROM publication.record WHERE state = 'withdrawn'", 1);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 410);
    assert_non_null(strstr(buf, "法院判决确认违法"));
    /* The page is gone (410) and says why (行政处罚法 2021 art. 48), nothing more. */
    assert_int_equal(tp_http_get(fx->portal_port, hpath, page, sizeof page), 410);
    assert_non_null(strstr(page, "法院判决确认违法"));
    assert_null(strstr(page, "罚款2000元"));
    assert_int_equal(tp_http_get(fx->portal_port, "/?party=%E7%8E%8B", page, sizeof page), 200);
    assert_non_null(strstr(page, "共 0 条记录"));
    assert_int_equal(tp_http_get(fx->portal_port, "/api/v1/decisions", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "\"total\":0"));
    /* The service's own relay sequenced its events. */
    s_wait_count(fx,
                 "SELECT count(*) FROM publication.outbox WHERE seq IS NOT NULL AND topic IN "
                 "('publication.drafted." AGENCY "', 'publication.published." AGENCY
                 "', 'publication.withdrawn." AGENCY "')",
                 3);
}

static void
test_sigterm(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(tp_stop(fx->svc, SIGTERM, 10000), 0);
    fx->svc = 0;
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    fx->url = ts_fresh_db("pubint");
    fx->pg = PQconnectdb(fx->url);
    assert_int_equal(PQstatus(fx->pg), CONNECTION_OK);
    static const char *const ids[][2] = {
        {"publication", "svc:publication"},         {"intake", "svc:intake"},
        {"publisher", "dept:" AGENCY ":publisher"}, {"officer", "dept:" AGENCY ":officer"},
        {"other", "dept:" OTHER ":publisher"},      {NULL, NULL}};
    tp_world_init(&fx->w, fx->url, ids);
    char sec[41], pub[41], err[256];
    tp_world_pair(&fx->w, "publication", fx->svc_pub, sec);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();
    fx->portal_port = tp_free_port();
    fx->broker = tp_world_broker(&fx->w, "pub-broker");
    fx->ctx = zmq_ctx_new();

    char busdir[600];
    snprintf(busdir, sizeof busdir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    fx->intake_db = db_new(fx->url, "test-intake");
    fx->relay_db = db_new(fx->url, "test-intake-relay");
    assert_int_equal(db_connect(fx->intake_db, 5000), 0);
    assert_int_equal(db_connect(fx->relay_db, 5000), 0);
    assert_true(bus_migrate(fx->intake_db, "intake", busdir) >= 0);
    tp_world_pair(&fx->w, "intake", pub, sec);
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    fx->intake_pub =
        zsock_client(fx->ctx, ZMQ_PUB, fx->w.broker_pub, pub, sec, &lim, err, sizeof err);
    assert_non_null(fx->intake_pub);
    assert_int_equal(zsock_connect(fx->intake_pub, fx->w.pub_ep, err, sizeof err), 0);
    fx->relay = bus_relay_new(fx->relay_db, "intake", fx->intake_pub);
    assert_non_null(fx->relay);

    char bind[96], ops[32], portal[32], redis[600];
    snprintf(bind, sizeof bind, "SX_PUBLICATION_BIND=%s", fx->rpc_ep);
    snprintf(ops, sizeof ops, "SX_OPS_PORT=%d", fx->ops_port);
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env[] = {bind, ops, portal, redis, NULL};
    fx->svc = tp_world_spawn(&fx->w, "sx-publication", NULL, "publication", "publication", env);
    char buf[1024];
    int64_t end = tp_now_ms() + 20000;
    while (tp_http_get(fx->portal_port, "/healthz", buf, sizeof buf) == 0 && tp_now_ms() < end)
        tp_sleep_ms(100);
    assert_true(tp_now_ms() < end);
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
    tp_stop(fx->broker, SIGTERM, 10000);
    bus_relay_destroy(&fx->relay);
    zsock_close(&fx->intake_pub);
    zmq_ctx_term(fx->ctx);
    db_destroy(&fx->intake_db);
    db_destroy(&fx->relay_db);
    PQfinish(fx->pg);
    free(fx->url);
    free(fx);
    s_fx = NULL;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decided_approved_served_revoked),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests_name("publication", tests, s_setup, s_teardown);
}
