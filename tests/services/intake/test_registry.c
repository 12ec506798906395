/* intake registry: the five lists through the real rpc door (CURVE ROUTER behind ZAP,
 * DEALER clients) against a real PostgreSQL with the intake, bus and rpc migrations.
 * Identities: agencies A and B (dept:<code>:system), the legal office L
 * (dept:<code>:legal_office), an officer key of A (not allowed on the registry) and an
 * operator (svc:tester). The server runs in its own thread, as in a service's loop.
 * Request bodies are written as JSON here for reading ease and sent as msgpack. */
#include <inttypes.h>
#include <jansson.h>
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
#include <msgpack.h>
#include <zmq.h>

#include "bus.h"
#include "ident.h"
#include "../../../services/intake/intake.h"
#include "keys.h"
#include "log.h"
#include "../../../services/intake/registry.h"
#include "rpc.h"
#include "tsupport.h"

typedef struct {
    char pub[41], sec[41];
} s_pair_t;

typedef struct {
    char *url;
    db_t *srv_db, *chk;
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    pthread_t thread;
    atomic_bool stop, paused, idle;
    s_pair_t server, a, b, legal, officer, svc;
    char A[19], B[19], L[19], C[19];
} fx_t;

static void *
s_server_thread(void *arg)
{
    fx_t *fx = arg;
    while (!atomic_load(&fx->stop)) {
        if (atomic_load(&fx->paused)) {
            atomic_store(&fx->idle, true);
            usleep(2000);
            continue;
        }
        atomic_store(&fx->idle, false);
        rpc_server_poll(fx->srv, 20);
    }
    return NULL;
}

static void
s_code(char out[19], const char *body17)
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(out);
    out[18] = '\0';
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->url = ts_fresh_db("registry");
    fx->srv_db = db_new(fx->url, "intake");
    fx->chk = db_new(fx->url, "check");
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);
    assert_int_equal(db_connect(fx->chk, 5000), 0);
    char dir[4096];
    const char *top = ts_env("SX_TOP");
    /* The bus and rpc tables first: intake's own migrations refer to the outbox. */
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", top);
    if (bus_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("bus_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", top);
    if (rpc_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("rpc_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/intake", top);
    if (db_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 1)
        fail_msg("db_migrate: %s", db_error(fx->srv_db));

    s_code(fx->A, "11620200013926143");
    s_code(fx->B, "11620200013926144");
    s_code(fx->L, "11620200013926150");
    s_code(fx->C, "11620200013926160");
    s_pair_t *pairs[] = {&fx->server, &fx->a, &fx->b, &fx->legal, &fx->officer, &fx->svc};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        assert_int_equal(keys_keypair(pairs[i]->pub, pairs[i]->sec), 0);
    char text[1024], err[256];
    snprintf(text, sizeof text,
             "%s dept:%s:system\n%s dept:%s:system\n%s dept:%s:legal_office\n"
             "%s dept:%s:officer\n%s svc:tester\n",
             fx->a.pub, fx->A, fx->b.pub, fx->B, fx->legal.pub, fx->L, fx->officer.pub, fx->A,
             fx->svc.pub);
    char *path = ts_write_tmp("registry-keys", text);
    keys_t *keys = keys_load(path, err, sizeof err);
    free(path);
    if (!keys)
        fail_msg("keys_load: %s", err);
    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    assert_non_null(fx->zap);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "intake", "svc:"), 0);
    assert_int_equal(zap_allow(fx->zap, "intake", "dept:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "intake", fx->server.sec, "tcp://127.0.0.1:*",
                             fx->srv_db, INTAKE_SCHEMA, err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    intake_t app = {0};
    assert_int_equal(registry_register(fx->srv, &app), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_server_thread, fx), 0);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    atomic_store(&fx->stop, true);
    pthread_join(fx->thread, NULL);
    rpc_server_destroy(&fx->srv);
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    db_destroy(&fx->srv_db);
    db_destroy(&fx->chk);
    free(fx->url);
    free(fx);
    return 0;
}

/* ---- Helpers ----------------------------------------------------------------------- */

static rpc_client_t *
s_client(fx_t *fx, const s_pair_t *me)
{
    char err[256];
    rpc_client_t *c = rpc_client_new(fx->ctx, rpc_server_endpoint(fx->srv), fx->server.pub, me->pub,
                                     me->sec, err, sizeof err);
    if (!c)
        fail_msg("rpc_client_new: %s", err);
    return c;
}

static void
s_pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            s_pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        msgpack_pack_array(pk, json_array_size(j));
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) s_pack_json(pk, v);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

/* Packs the printf-formatted JSON object into sb (cleared first). */
static void
s_body(msgpack_sbuffer *sb, const char *fmt, va_list ap)
{
    char text[40000];
    vsnprintf(text, sizeof text, fmt, ap);
    json_error_t je;
    json_t *j = json_loads(text, JSON_PRESERVE_ORDER, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    s_pack_json(&pk, j);
    json_decref(j);
}

/* One call with a JSON body; fails the test when no reply comes. */
static void
s_call(rpc_client_t *c, const char *op, const char *rid, rpc_reply_t *out, const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    va_list ap;
    va_start(ap, fmt);
    s_body(&sb, fmt, ap);
    va_end(ap);
    evmsg_err_t err = {{0}, {0}};
    int rc = rpc_call(c, op, rid, sb.data, sb.size, 5000, 2, out, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        fail_msg("rpc_call %s %s: %s", op, rid, err.reason);
}

/* Sends without waiting (for batches). */
static void
s_send(rpc_client_t *c, const char *op, const char *rid, const char *fmt, ...)
{
    msgpack_sbuffer sb, req;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&req);
    va_list ap;
    va_start(ap, fmt);
    s_body(&sb, fmt, ap);
    va_end(ap);
    assert_int_equal(rpc_request_pack(&req, op, rid, sb.data, sb.size), 0);
    assert_int_equal(rpc_client_send(c, req.data, req.size), 0);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&req);
}

static void
s_expect_error(rpc_reply_t *r, const char *code, const char *field)
{
    if (r->ok || strcmp(r->code, code) != 0 || strcmp(r->field, field) != 0)
        fail_msg("rid %s: expected %s at '%s', got ok=%d %s at '%s' (%s)", r->rid, code, field,
                 r->ok, r->code, r->field, r->en);
    assert_true(r->zh[0] != '\0');
    assert_true(r->en[0] != '\0');
    rpc_reply_clear(r);
}

/* Expects ok with {list, key, version, action}; returns the version. */
static int64_t
s_expect_ok(rpc_reply_t *r, const char *key, const char *action)
{
    if (!r->ok)
        fail_msg("rid %s: expected ok, got %s at '%s' (%s)", r->rid, r->code, r->field, r->en);
    evmsg_t *m = NULL;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_decode_map(r->result, r->result_len, &m, &err), 0);
    evmsg_map_t root = evmsg_data(m, &err);
    char k[200], a[16];
    int64_t v = -1;
    evmsg_map_str(&root, "key", EVMSG_REQUIRED, 199, k);
    evmsg_map_int(&root, "version", EVMSG_REQUIRED, 1, INT32_MAX, &v);
    evmsg_map_str(&root, "action", EVMSG_REQUIRED, 15, a);
    if (err.reason[0])
        fail_msg("result: %s %s", err.path, err.reason);
    if (key)
        assert_string_equal(k, key);
    if (action)
        assert_string_equal(a, action);
    evmsg_destroy(&m);
    rpc_reply_clear(r);
    return v;
}

static long long
s_count(fx_t *fx, const char *sql, const char *p1)
{
    const char *v[1] = {p1};
    PGresult *r = db_query(fx->chk, sql, p1 ? 1 : 0, p1 ? v : NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(fx->chk));
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* A number that changes whenever anything is written to the registry or the outbox. */
static long long
s_total_rows(fx_t *fx)
{
    return s_count(fx,
                   "SELECT (SELECT count(*) FROM intake.agency) + (SELECT count(*) FROM "
                   "intake.officer) + (SELECT count(*) FROM intake.matter) + (SELECT count(*) "
                   "FROM intake.registry_change) + (SELECT count(*) FROM intake.outbox) + "
                   "(SELECT coalesce(sum(version), 0) FROM intake.officer)",
                   NULL);
}

static void
s_put_agency(fx_t *fx, rpc_client_t *c, const char *code, const char *rid)
{
    rpc_reply_t r;
    s_call(c, "registry.agency.put", rid, &r,
           "{\"agency\":\"%s\",\"version\":0,\"name\":\"嘉峪关市市场监督管理局\","
           "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"王五\","
           "\"head_title\":\"局长\"}",
           code);
    assert_int_equal(s_expect_ok(&r, code, "put"), 1);
    (void)fx;
}

#define OFFICER_JSON                                                                               \
    "{\"agency\":\"%s\",\"version\":%d,\"cert_no\":\"%s\",\"name\":\"张三\","                    \
    "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2024-12-31\",\"area\":\"嘉峪关市\","         \
    "\"legal_qualified\":true,\"reviewer\":false}"

#define MATTER_JSON                                                                                       \
    "{\"agency\":\"%s\",\"version\":%d,\"code\":\"%s\",\"name\":\"食品经营许可\","                  \
    "\"type\":\"licence\",\"legal_basis\":\"《中华人民共和国食品安全法》第三十五条\"," \
    "\"accepting_body\":\"行政审批科\",\"approving_body\":\"市市场监督管理局\","             \
    "\"conditions\":\"具有与经营的食品品种、数量相适应的场所\",\"time_limit\":20,"     \
    "\"time_limit_unit\":\"workday\",\"guide\":\"见服务指南\"}"

/* ---- Tests ------------------------------------------------------------------------- */

/* The agency list: create, event, change record, update, version conflict, replay. */
static void
test_agency_put(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->a);
    s_put_agency(fx, c, fx->A, "ag-1");

    /* The event: topic registry.agency.<code>, v = INTAKE_EVENT_V, {action, key, version,
     * entry}. */
    const char *p[1] = {fx->A};
    PGresult *r = db_query(fx->chk,
                           "SELECT topic, v, data FROM intake.outbox WHERE agency = $1 ORDER BY "
                           "id",
                           1, p);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    char topic[64];
    snprintf(topic, sizeof topic, "registry.agency.%s", fx->A);
    assert_string_equal(PQgetvalue(r, 0, 0), topic);
    assert_int_equal(atoi(PQgetvalue(r, 0, 1)), INTAKE_EVENT_V);
    PQclear(r);
    r = db_query(fx->chk, "SELECT data FROM intake.outbox WHERE agency = $1", 1, p);
    assert_non_null(r);
    size_t blen = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &blen);
    PQclear(r);
    evmsg_t *m = NULL;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_decode_map(bytes, blen, &m, &err), 0);
    PQfreemem(bytes);
    evmsg_map_t d = evmsg_data(m, &err), entry;
    static const char *const keys[] = {"action", "key", "version", "entry", NULL};
    assert_int_equal(evmsg_map_only(&d, keys), 0);
    char action[16], key[32], name[200], agency[19];
    int64_t v = 0;
    evmsg_map_str(&d, "action", EVMSG_REQUIRED, 15, action);
    evmsg_map_str(&d, "key", EVMSG_REQUIRED, 31, key);
    evmsg_map_int(&d, "version", EVMSG_REQUIRED, 0, 100, &v);
    evmsg_map_map(&d, "entry", EVMSG_REQUIRED, &entry);
    evmsg_map_str(&entry, "name", EVMSG_REQUIRED, 199, name);
    evmsg_map_str(&entry, "agency", EVMSG_REQUIRED, 18, agency);
    assert_string_equal(err.reason, "");
    assert_string_equal(action, "put");
    assert_string_equal(key, fx->A);
    assert_string_equal(agency, fx->A);
    assert_string_equal(name, "嘉峪关市市场监督管理局");
    assert_int_equal(v, 1);
    evmsg_destroy(&m);

    /* registry_change holds the body as submitted. */
    assert_int_equal(s_count(fx,
                             "SELECT count(*) FROM intake.registry_change WHERE agency = $1 AND "
                             "list = 'agency' AND version = 1 AND action = 'put' AND by LIKE "
                             "'dept:%:system' AND octet_length(body) > 50",
                             fx->A),
                     1);

    /* Update: version 1 -> 2; the old version again is a conflict naming 2. */
    rpc_reply_t rep;
    const char *upd = "{\"agency\":\"%s\",\"version\":%d,\"name\":\"嘉峪关市市场监管局\","
                      "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"赵六\","
                      "\"head_title\":\"局长\"}";
    s_call(c, "registry.agency.put", "ag-2", &rep, upd, fx->A, 1);
    assert_int_equal(s_expect_ok(&rep, fx->A, "put"), 2);
    s_call(c, "registry.agency.put", "ag-3", &rep, upd, fx->A, 1);
    assert_non_null(strstr(rep.en, "current version is 2"));
    assert_non_null(strstr(rep.zh, "2"));
    s_expect_error(&rep, "version_conflict", "body.version");
    s_call(c, "registry.agency.put", "ag-3b", &rep, upd, fx->A, 0);
    s_expect_error(&rep, "version_conflict", "body.version");

    /* A repeated rid: the same reply, no third version. */
    s_call(c, "registry.agency.put", "ag-2", &rep, upd, fx->A, 1);
    assert_int_equal(s_expect_ok(&rep, fx->A, "put"), 2);
    assert_int_equal(
        s_count(fx, "SELECT max(version) FROM intake.registry_change WHERE agency = $1", fx->A), 2);
    assert_int_equal(s_count(fx, "SELECT version FROM intake.agency WHERE code = $1", fx->A), 2);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.outbox WHERE agency = $1", fx->A), 2);
    rpc_client_destroy(&c);
}

/* Field refusals: the right code and path, nothing written. */
static void
test_refusals(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->a);
    s_put_agency(fx, c, fx->A, "rf-ag");
    long long before = s_total_rows(fx);
    rpc_reply_t r;
    const char *A = fx->A;

    /* Missing, mistyped, oversized, unknown. */
    s_call(c, "registry.officer.put", "rf-1", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"valid_from\":\"2019-01-01\","
           "\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "missing_field", "body.name");
    s_call(c, "registry.officer.put", "rf-2", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":20190101,\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "bad_field", "body.valid_from");
    s_call(c, "registry.officer.put", "rf-3", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-02-29\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "bad_field", "body.valid_from");
    char big[400];
    memset(big, 'x', 101);
    big[101] = '\0';
    s_call(c, "registry.officer.put", "rf-4", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"%s\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A, big);
    s_expect_error(&r, "too_large", "body.name");
    s_call(c, "registry.officer.put", "rf-5", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\","
           "\"rank\":1}",
           A);
    s_expect_error(&r, "unknown_field", "body.rank");
    s_call(c, "registry.officer.put", "rf-6", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2020-01-02\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "bad_field", "body.valid_to");
    s_call(c, "registry.officer.put", "rf-7", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J 1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "bad_field", "body.cert_no");
    s_call(c, "registry.officer.put", "rf-8", &r,
           "{\"agency\":\"%s\",\"version\":-1,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "bad_field", "body.version");
    s_call(c, "registry.officer.put", "rf-9", &r,
           "{\"agency\":\"%s\",\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\"}",
           A);
    s_expect_error(&r, "missing_field", "body.version");
    s_call(c, "registry.officer.put", "rf-10", &r,
           "{\"agency\":\"%s\",\"version\":0,\"cert_no\":\"J1\",\"name\":\"张三\","
           "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2020-01-01\",\"area\":\"x\","
           "\"active\":\"yes\"}",
           A);
    s_expect_error(&r, "bad_field", "body.active");

    /* A bad check digit, a lower-case code, a short one. */
    char bad[19];
    memcpy(bad, A, 19);
    bad[17] = bad[17] == '0' ? '1' : '0';
    s_call(c, "registry.officer.put", "rf-11", &r, OFFICER_JSON, bad, 0, "J1");
    assert_non_null(strstr(r.en, "check"));
    s_expect_error(&r, "bad_field", "body.agency");
    s_call(c, "registry.officer.put", "rf-12", &r, OFFICER_JSON, "1162020001392614", 0, "J1");
    s_expect_error(&r, "bad_field", "body.agency");
    s_call(c, "registry.agency.put", "rf-13", &r,
           "{\"agency\":\"%s\",\"version\":0,\"name\":\"x\",\"level\":\"village\","
           "\"domain\":\"d\",\"head_name\":\"h\",\"head_title\":\"t\"}",
           fx->C);
    /* C is not A's code: forbidden comes first, before the field is read. */
    s_expect_error(&r, "forbidden", "body.agency");

    /* Matter: enum, range, decimal scale, stages. */
    s_call(c, "registry.matter.put", "rf-20", &r,
           "{\"agency\":\"%s\",\"version\":0,\"code\":\"M1\",\"name\":\"n\",\"type\":\"fine\","
           "\"legal_basis\":\"b\",\"accepting_body\":\"a\",\"approving_body\":\"a\","
           "\"conditions\":\"\",\"time_limit\":20,\"time_limit_unit\":\"workday\","
           "\"guide\":\"\"}",
           A);
    s_expect_error(&r, "bad_field", "body.type");
    s_call(c, "registry.matter.put", "rf-21", &r,
           "{\"agency\":\"%s\",\"version\":0,\"code\":\"M1\",\"name\":\"n\",\"type\":\"licence\","
           "\"legal_basis\":\"b\",\"accepting_body\":\"a\",\"approving_body\":\"a\","
           "\"conditions\":\"\",\"time_limit\":0,\"time_limit_unit\":\"workday\","
           "\"guide\":\"\"}",
           A);
    s_expect_error(&r, "bad_field", "body.time_limit");
    s_call(c, "registry.discretion.put", "rf-22", &r,
           "{\"agency\":\"%s\",\"version\":0,\"violation_code\":\"V1\","
           "\"circumstance\":\"minor\",\"fine_min\":\"0.1234567\",\"fine_max\":\"1\","
           "\"basis\":\"b\"}",
           A);
    s_expect_error(&r, "bad_field", "body.fine_min");
    s_call(c, "registry.discretion.put", "rf-23", &r,
           "{\"agency\":\"%s\",\"version\":0,\"violation_code\":\"V1\","
           "\"circumstance\":\"minor\",\"fine_min\":0.5,\"fine_max\":\"1\",\"basis\":\"b\"}",
           A);
    s_expect_error(&r, "bad_field", "body.fine_min");
    s_call(c, "registry.discretion.put", "rf-24", &r,
           "{\"agency\":\"%s\",\"version\":0,\"violation_code\":\"V1\","
           "\"circumstance\":\"minor\",\"fine_min\":\"2\",\"fine_max\":\"1.5\",\"basis\":\"b\"}",
           A);
    s_expect_error(&r, "bad_field", "body.fine_max");
    s_call(c, "registry.av_matter.put", "rf-25", &r,
           "{\"agency\":\"%s\",\"version\":0,\"matter_code\":\"M1\","
           "\"stages\":[\"start\",\"start\"]}",
           A);
    s_expect_error(&r, "bad_field", "body.stages[1]");
    s_call(c, "registry.av_matter.put", "rf-26", &r,
           "{\"agency\":\"%s\",\"version\":0,\"matter_code\":\"M1\",\"stages\":[]}", A);
    s_expect_error(&r, "bad_field", "body.stages");
    s_call(c, "registry.av_matter.put", "rf-27", &r,
           "{\"agency\":\"%s\",\"version\":0,\"matter_code\":\"M1\","
           "\"stages\":[\"start\",\"hearing\"]}",
           A);
    s_expect_error(&r, "bad_field", "body.stages[1]");
    s_call(c, "registry.review_rule.put", "rf-28", &r,
           "{\"agency\":\"%s\",\"version\":0,\"id\":\"R1\",\"description\":\"d\","
           "\"amount_threshold\":\"-1\"}",
           A);
    s_expect_error(&r, "bad_field", "body.amount_threshold");

    /* The matter must be in the agency's list before its AV entry. */
    s_call(c, "registry.av_matter.put", "rf-29", &r,
           "{\"agency\":\"%s\",\"version\":0,\"matter_code\":\"NOPE\",\"stages\":[\"start\"]}", A);
    s_expect_error(&r, "unknown_matter", "body.matter_code");

    /* An unknown agency: its lists are refused until it is registered. */
    rpc_client_t *lc = s_client(fx, &fx->legal);
    s_call(lc, "registry.officer.put", "rf-30", &r, OFFICER_JSON, fx->C, 0, "J1");
    s_expect_error(&r, "unknown_agency", "body.agency");
    /* The officer role may not use the registry at all (rpc's allow list). */
    rpc_client_t *oc = s_client(fx, &fx->officer);
    s_call(oc, "registry.officer.put", "rf-31", &r, OFFICER_JSON, A, 0, "J1");
    s_expect_error(&r, "forbidden", "op");
    /* Operators may read, not write. */
    rpc_client_t *sc = s_client(fx, &fx->svc);
    s_call(sc, "registry.officer.put", "rf-32", &r, OFFICER_JSON, A, 0, "J1");
    s_expect_error(&r, "forbidden", "op");

    assert_int_equal(s_total_rows(fx), before);
    rpc_client_destroy(&c);
    rpc_client_destroy(&lc);
    rpc_client_destroy(&oc);
    rpc_client_destroy(&sc);
}

/* Another agency's key writes nothing; the legal office writes any agency's lists. */
static void
test_authorization(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *a = s_client(fx, &fx->a), *b = s_client(fx, &fx->b),
                 *l = s_client(fx, &fx->legal), *s = s_client(fx, &fx->svc);
    s_put_agency(fx, a, fx->A, "au-a");
    s_put_agency(fx, b, fx->B, "au-b");
    long long before = s_total_rows(fx);
    rpc_reply_t r;
    s_call(b, "registry.officer.put", "au-1", &r, OFFICER_JSON, fx->A, 0, "J9");
    s_expect_error(&r, "forbidden", "body.agency");
    s_call(b, "registry.matter.put", "au-2", &r, MATTER_JSON, fx->A, 0, "M9");
    s_expect_error(&r, "forbidden", "body.agency");
    s_call(b, "registry.get", "au-3", &r, "{\"agency\":\"%s\"}", fx->A);
    s_expect_error(&r, "forbidden", "body.agency");
    assert_int_equal(s_total_rows(fx), before);

    /* The legal office: A's officer, and a new agency C with its matter. */
    s_call(l, "registry.officer.put", "au-4", &r, OFFICER_JSON, fx->A, 0, "J9");
    assert_int_equal(s_expect_ok(&r, "J9", "put"), 1);
    s_put_agency(fx, l, fx->C, "au-5");
    s_call(l, "registry.matter.put", "au-6", &r, MATTER_JSON, fx->C, 0, "M9");
    assert_int_equal(s_expect_ok(&r, "M9", "put"), 1);
    assert_int_equal(s_count(fx,
                             "SELECT count(*) FROM intake.officer WHERE cert_no = 'J9' AND "
                             "updated_by LIKE '%:legal_office'",
                             NULL),
                     1);
    /* Reads: the agency itself, the legal office, operators. */
    s_call(a, "registry.get", "au-7", &r, "{\"agency\":\"%s\",\"list\":\"officer\"}", fx->A);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    s_call(l, "registry.get", "au-8", &r, "{\"agency\":\"%s\"}", fx->A);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    s_call(s, "registry.get", "au-9", &r, "{\"agency\":\"%s\"}", fx->B);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    char unknown[19];
    s_code(unknown, "11620200013926199");
    s_call(s, "registry.get", "au-10", &r, "{\"agency\":\"%s\"}", unknown);
    s_expect_error(&r, "unknown_agency", "body.agency");
    rpc_client_destroy(&a);
    rpc_client_destroy(&b);
    rpc_client_destroy(&l);
    rpc_client_destroy(&s);
}

/* Every list's happy path, retirement, and registry.get returning it all. */
static void
test_lists_and_get(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->a);
    const char *A = fx->A;
    s_put_agency(fx, c, A, "ls-ag");
    rpc_reply_t r;
    s_call(c, "registry.officer.put", "ls-1", &r, OFFICER_JSON, A, 0, "甘JYG001");
    assert_int_equal(s_expect_ok(&r, "甘JYG001", "put"), 1);
    s_call(c, "registry.officer.put", "ls-2", &r, OFFICER_JSON, A, 0, "甘JYG002");
    assert_int_equal(s_expect_ok(&r, "甘JYG002", "put"), 1);
    s_call(c, "registry.matter.put", "ls-3", &r, MATTER_JSON, A, 0, "330217001000");
    assert_int_equal(s_expect_ok(&r, "330217001000", "put"), 1);
    s_call(c, "registry.inspection_item.put", "ls-4", &r,
           "{\"agency\":\"%s\",\"version\":0,\"code\":\"CC-01\",\"name\":\"食品经营抽查\","
           "\"basis\":\"《食品安全法》\",\"subjects\":\"食品经营者\",\"method\":\"双随机\"}",
           A);
    assert_int_equal(s_expect_ok(&r, "CC-01", "put"), 1);
    s_call(c, "registry.av_matter.put", "ls-5", &r,
           "{\"agency\":\"%s\",\"version\":0,\"matter_code\":\"330217001000\","
           "\"stages\":[\"service_execution\",\"investigation\"]}",
           A);
    assert_int_equal(s_expect_ok(&r, "330217001000", "put"), 1);
    s_call(c, "registry.review_rule.put", "ls-6", &r,
           "{\"agency\":\"%s\",\"version\":0,\"id\":\"R-amount\",\"description\":\"大额罚款\","
           "\"case_type\":\"penalty\",\"amount_threshold\":\"5\",\"hearing\":null}",
           A);
    assert_int_equal(s_expect_ok(&r, "R-amount", "put"), 1);
    s_call(c, "registry.review_rule.put", "ls-7", &r,
           "{\"agency\":\"%s\",\"version\":0,\"id\":\"R-hearing\",\"description\":\"经听证\","
           "\"hearing\":true}",
           A);
    assert_int_equal(s_expect_ok(&r, "R-hearing", "put"), 1);
    s_call(c, "registry.discretion.put", "ls-8", &r,
           "{\"agency\":\"%s\",\"version\":0,\"violation_code\":\"SP-12\","
           "\"circumstance\":\"serious\",\"fine_min\":\"1.5\",\"fine_max\":\"10\","
           "\"basis\":\"《食品安全法》第一百二十二条\"}",
           A);
    assert_int_equal(s_expect_ok(&r, "SP-12/serious", "put"), 1);

    /* Retiring: active=false through put. */
    char retire[1024];
    snprintf(retire, sizeof retire,
             "{\"agency\":\"%s\",\"version\":1,\"cert_no\":\"甘JYG002\",\"name\":\"李四\","
             "\"valid_from\":\"2019-01-01\",\"valid_to\":\"2024-12-31\",\"area\":\"嘉峪关市\","
             "\"active\":false}",
             A);
    s_call(c, "registry.officer.put", "ls-9", &r, "%s", retire);
    assert_int_equal(s_expect_ok(&r, "甘JYG002", "retire"), 2);
    assert_int_equal(s_count(fx,
                             "SELECT count(*) FROM intake.registry_change WHERE action = 'retire'"
                             " AND key = $1",
                             "甘JYG002"),
                     1);
    char topic[64];
    snprintf(topic, sizeof topic, "registry.discretion.%s", A);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.outbox WHERE topic = $1", topic), 1);
    snprintf(topic, sizeof topic, "registry.officer.%s", A);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.outbox WHERE topic = $1", topic), 3);

    /* registry.get, all lists: 1 agency + 2 officers + 1 matter + 1 item + 1 av + 2 rules +
     * 1 band, in list order. */
    s_call(c, "registry.get", "ls-get", &r, "{\"agency\":\"%s\"}", A);
    assert_true(r.ok);
    evmsg_t *m = NULL;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_decode_map(r.result, r.result_len, &m, &err), 0);
    evmsg_map_t root = evmsg_data(m, &err);
    evmsg_array_t es;
    assert_int_equal(evmsg_map_array(&root, "entries", EVMSG_REQUIRED, 5000, &es), 1);
    assert_int_equal(evmsg_array_count(&es), 9);
    static const char *const lists[] = {"agency",      "officer",         "officer",
                                        "matter",      "inspection_item", "av_matter",
                                        "review_rule", "review_rule",     "discretion"};
    for (size_t i = 0; i < 9; i++) {
        evmsg_map_t e, entry;
        char list[32];
        evmsg_array_map_at(&es, i, &e);
        evmsg_map_str(&e, "list", EVMSG_REQUIRED, 31, list);
        assert_string_equal(list, lists[i]);
        evmsg_map_map(&e, "entry", EVMSG_REQUIRED, &entry);
        if (i == 2) { /* the retired officer */
            bool active = true;
            int64_t v = 0;
            evmsg_map_bool(&entry, "active", EVMSG_REQUIRED, &active);
            evmsg_map_int(&e, "version", EVMSG_REQUIRED, 0, 10, &v);
            assert_false(active);
            assert_int_equal(v, 2);
        }
        if (i == 5) { /* stages in the statute's order */
            evmsg_array_t st;
            char s0[32], s1[32];
            evmsg_map_array(&entry, "stages", EVMSG_REQUIRED, 4, &st);
            assert_int_equal(evmsg_array_count(&st), 2);
            evmsg_array_str_at(&st, 0, 0, 31, s0);
            evmsg_array_str_at(&st, 1, 0, 31, s1);
            assert_string_equal(s0, "investigation");
            assert_string_equal(s1, "service_execution");
        }
        if (i == 6) { /* a rule: amount as a decimal string, unset criteria nil = any */
            char amount[32];
            int64_t th = 0;
            evmsg_map_str(&entry, "amount_threshold", EVMSG_REQUIRED, 31, amount);
            assert_string_equal(amount, "5");
            evmsg_map_decimal(&entry, "amount_threshold", EVMSG_REQUIRED, 6, 0, INT64_MAX, &th);
            assert_int_equal(th, 5000000);
            bool h = false;
            assert_int_equal(evmsg_map_bool(&entry, "hearing", EVMSG_OPTIONAL, &h), 0);
        }
        if (i == 8) {
            char key[64], fmin[32];
            evmsg_map_str(&e, "key", EVMSG_REQUIRED, 63, key);
            evmsg_map_str(&entry, "fine_min", EVMSG_REQUIRED, 31, fmin);
            assert_string_equal(key, "SP-12/serious");
            assert_string_equal(fmin, "1.5");
        }
    }
    assert_string_equal(err.reason, "");
    assert_int_equal(evmsg_map_map(&root, "next", EVMSG_OPTIONAL, &(evmsg_map_t){0}), 0);
    evmsg_destroy(&m);
    rpc_reply_clear(&r);

    /* Paging: limit 2, following `next` until nil, visits all 9 once. */
    int seen = 0, pages = 0;
    char after[512] = "";
    for (; pages < 20; pages++) {
        char rid[32];
        snprintf(rid, sizeof rid, "ls-page-%d", pages);
        s_call(c, "registry.get", rid, &r, "{\"agency\":\"%s\",\"limit\":2%s}", A, after);
        assert_true(r.ok);
        assert_int_equal(evmsg_decode_map(r.result, r.result_len, &m, &err), 0);
        root = evmsg_data(m, &err);
        evmsg_map_array(&root, "entries", EVMSG_REQUIRED, 5000, &es);
        seen += (int)evmsg_array_count(&es);
        evmsg_map_t next;
        int has = evmsg_map_map(&root, "next", EVMSG_OPTIONAL, &next);
        if (has == 1) {
            char list[32], key[200];
            evmsg_map_str(&next, "list", EVMSG_REQUIRED, 31, list);
            evmsg_map_str(&next, "key", EVMSG_REQUIRED, 199, key);
            snprintf(after, sizeof after, ",\"after\":{\"list\":\"%s\",\"key\":\"%s\"}", list, key);
        }
        assert_string_equal(err.reason, "");
        evmsg_destroy(&m);
        rpc_reply_clear(&r);
        if (has != 1)
            break;
    }
    assert_int_equal(seen, 9);
    assert_true(pages >= 4 && pages < 20);

    /* One list only. */
    s_call(c, "registry.get", "ls-one", &r, "{\"agency\":\"%s\",\"list\":\"review_rule\"}", A);
    assert_true(r.ok);
    assert_int_equal(evmsg_decode_map(r.result, r.result_len, &m, &err), 0);
    root = evmsg_data(m, &err);
    evmsg_map_array(&root, "entries", EVMSG_REQUIRED, 5000, &es);
    assert_int_equal(evmsg_array_count(&es), 2);
    evmsg_destroy(&m);
    rpc_reply_clear(&r);
    s_call(c, "registry.get", "ls-bad", &r, "{\"agency\":\"%s\",\"list\":\"cases\"}", A);
    s_expect_error(&r, "bad_field", "body.list");

    /* The read helpers. */
    registry_matter_t mt = {0};
    assert_int_equal(registry_matter_get(fx->chk, A, "330217001000", &mt), 1);
    assert_string_equal(mt.type, "licence");
    assert_int_equal(mt.time_limit, 20);
    assert_true(mt.workdays);
    assert_int_equal(mt.av_stages, REGISTRY_STAGE_INVESTIGATION | REGISTRY_STAGE_SERVICE_EXECUTION);
    assert_int_equal(registry_matter_get(fx->chk, A, "nope", &mt), 0);
    const char *certs[3] = {"甘JYG001", "甘JYG002", "nobody"};
    bool valid[3];
    assert_int_equal(
        registry_officers_valid(fx->chk, A, certs, 3, date_from_ymd(2020, 5, 1), valid), 1);
    assert_true(valid[0]);
    assert_false(valid[1]); /* retired */
    assert_false(valid[2]);
    assert_int_equal(
        registry_officers_valid(fx->chk, A, certs, 1, date_from_ymd(2025, 1, 1), valid), 0);
    char rule[REGISTRY_KEY_MAX + 1];
    registry_decision_t d = {"penalty", 5000000, false, false, false, false};
    assert_int_equal(registry_review_match(fx->chk, A, &d, rule), 1);
    assert_string_equal(rule, "R-amount");
    d.amount = 4999999;
    assert_int_equal(registry_review_match(fx->chk, A, &d, rule), 0);
    d.hearing = true;
    assert_int_equal(registry_review_match(fx->chk, A, &d, rule), 1);
    assert_string_equal(rule, "R-hearing");
    int64_t lo = 0, hi = 0;
    assert_int_equal(registry_discretion_get(fx->chk, A, "SP-12", "serious", &lo, &hi), 1);
    assert_int_equal(lo, 1500000);
    assert_int_equal(hi, 10000000);
    assert_int_equal(registry_discretion_get(fx->chk, A, "SP-12", "minor", &lo, &hi), 0);
    rpc_client_destroy(&c);
}

/* Puts of one key in one turn apply in arrival order; two creates of one key: one wins. */
static void
test_same_key_in_one_batch(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->a);
    s_put_agency(fx, c, fx->A, "dup-ag");
    atomic_store(&fx->paused, true);
    while (!atomic_load(&fx->idle))
        usleep(1000);
    s_send(c, "registry.officer.put", "dup-1", OFFICER_JSON, fx->A, 0, "D1");
    s_send(c, "registry.officer.put", "dup-2", OFFICER_JSON, fx->A, 1, "D1");
    s_send(c, "registry.officer.put", "dup-3", OFFICER_JSON, fx->A, 2, "D1");
    s_send(c, "registry.officer.put", "dup-4", OFFICER_JSON, fx->A, 0, "D2");
    s_send(c, "registry.officer.put", "dup-5", OFFICER_JSON, fx->A, 0, "D2");
    usleep(200000);
    rpc_stats_t before = rpc_server_stats(fx->srv);
    atomic_store(&fx->paused, false);
    int ok = 0, conflict = 0;
    for (int i = 0; i < 5; i++) {
        rpc_reply_t r;
        evmsg_err_t err = {{0}, {0}};
        if (rpc_client_recv(c, 5000, &r, &err) != 1)
            fail_msg("no reply %d", i);
        if (r.ok) {
            ok++;
            int64_t v = s_expect_ok(&r, NULL, "put");
            if (strcmp(r.rid, "dup-3") == 0)
                assert_int_equal(v, 3);
        } else {
            assert_string_equal(r.code, "version_conflict");
            assert_string_equal(r.rid, "dup-5");
            conflict++;
            rpc_reply_clear(&r);
        }
    }
    assert_int_equal(ok, 4);
    assert_int_equal(conflict, 1);
    atomic_store(&fx->paused, true);
    while (!atomic_load(&fx->idle))
        usleep(1000);
    rpc_stats_t after = rpc_server_stats(fx->srv);
    atomic_store(&fx->paused, false);
    assert_true(after.max_batch >= 5);
    assert_int_equal(after.commits - before.commits, 1);
    assert_int_equal(s_count(fx, "SELECT version FROM intake.officer WHERE cert_no = $1", "D1"), 3);
    assert_int_equal(
        s_count(fx, "SELECT count(*) FROM intake.registry_change WHERE key = $1", "D1"), 3);
    assert_int_equal(
        s_count(fx, "SELECT count(*) FROM intake.registry_change WHERE key = $1", "D2"), 1);
    /* Events in order: versions 1, 2, 3. */
    char topic[64];
    snprintf(topic, sizeof topic, "registry.officer.%s", fx->A);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.outbox WHERE topic = $1", topic), 4);
    rpc_client_destroy(&c);
}

/* 200 puts from four clients (two agencies and the legal office) in one turn. */
static void
test_batch_of_200(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *cl[4] = {s_client(fx, &fx->a), s_client(fx, &fx->b), s_client(fx, &fx->legal),
                           s_client(fx, &fx->a)};
    s_put_agency(fx, cl[0], fx->A, "b-ag-a");
    s_put_agency(fx, cl[1], fx->B, "b-ag-b");
    atomic_store(&fx->paused, true);
    while (!atomic_load(&fx->idle))
        usleep(1000);
    for (int i = 0; i < 200; i++) {
        int k = i % 4;
        const char *agency = k == 1 ? fx->B : fx->A;
        char rid[32], cert[32];
        snprintf(rid, sizeof rid, "b-%d", i);
        snprintf(cert, sizeof cert, "B%03d", i);
        s_send(cl[k], "registry.officer.put", rid, OFFICER_JSON, agency, 0, cert);
    }
    usleep(300000);
    atomic_store(&fx->paused, false);
    int ok = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 50; i++) {
            rpc_reply_t r;
            evmsg_err_t err = {{0}, {0}};
            if (rpc_client_recv(cl[k], 5000, &r, &err) != 1)
                fail_msg("client %d: no reply %d", k, i);
            assert_int_equal(s_expect_ok(&r, NULL, "put"), 1);
            ok++;
        }
    assert_int_equal(ok, 200);
    atomic_store(&fx->paused, true);
    while (!atomic_load(&fx->idle))
        usleep(1000);
    rpc_stats_t st = rpc_server_stats(fx->srv);
    atomic_store(&fx->paused, false);
    assert_true(st.max_batch >= 100);
    assert_int_equal(
        s_count(fx, "SELECT count(*) FROM intake.officer WHERE cert_no LIKE 'B%'", NULL), 200);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.officer WHERE agency = $1", fx->B),
                     50);
    assert_int_equal(s_count(fx,
                             "SELECT count(*) FROM intake.registry_change WHERE list = 'officer' "
                             "AND key LIKE 'B%'",
                             NULL),
                     200);
    assert_int_equal(s_count(fx,
                             "SELECT count(*) FROM intake.outbox WHERE topic LIKE "
                             "'registry.officer.%'",
                             NULL),
                     200);
    for (int k = 0; k < 4; k++)
        rpc_client_destroy(&cl[k]);
}

int
main(void)
{
    log_init("test-registry", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agency_put, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_authorization, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lists_and_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_same_key_in_one_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_of_200, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
