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
    tp_world_t w;
    char svc_pub[41];
    char rpc_ep[64];
    int ops_port, portal_port;
    pid_t svc;
    tp_producer_t intake; /* the test plays intake: its outbox and its relay */
} fx_t;

static fx_t *s_fx;

/* Emits one intake event (data as JSON) and commits. */
static void
s_emit(fx_t *fx, const char *topic, const char *json)
{
    tp_produce(&fx->intake, topic, json);
}

/* Pumps until sql (one count) reaches want, or 15 s. */
static void
s_wait_count(fx_t *fx, const char *sql, long want)
{
    tp_pg_wait_num(fx->w.pg, sql, want, 15000, &fx->intake, 1);
}

static rpc_reply_t
s_call(fx_t *fx, const char *who, const char *op, const char *json)
{
    return tp_world_call(&fx->w, fx->rpc_ep, fx->svc_pub, who, op, json, 3000, 3);
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
    PGresult *r = PQexec(fx->w.pg, "SELECT id FROM publication.record");
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
    tp_stop_clean(&fx->svc, 10000);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    static const char *const ids[][2] = {
        {"publication", "svc:publication"},         {"intake", "svc:intake"},
        {"publisher", "dept:" AGENCY ":publisher"}, {"officer", "dept:" AGENCY ":officer"},
        {"other", "dept:" OTHER ":publisher"},      {NULL, NULL}};
    tp_world_open(&fx->w, "pubint", ids, "pub-broker");
    char sec[41];
    tp_world_pair(&fx->w, "publication", fx->svc_pub, sec);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();
    fx->portal_port = tp_free_port();

    tp_producer_open(&fx->intake, &fx->w, "intake");

    char portal[32], redis[600];
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env[] = {portal, redis, NULL};
    fx->svc = tp_world_service(&fx->w, "publication", fx->rpc_ep, fx->ops_port, "publication", env);
    tp_wait_http(fx->portal_port, "/healthz", 20000);
    tp_pump(&fx->intake, 1, 300);
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
    tp_producer_close(&fx->intake);
    tp_world_close(&fx->w);
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
