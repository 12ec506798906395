/* case_ops: the case ops of sx-intake against a real PostgreSQL and a real CURVE ROUTER
 * (common/rpc behind the ZAP handler) with DEALER clients. Registry rows are inserted
 * directly with SQL; review verdicts are inserted as the review-event subscriber would.
 * The server runs in its own thread, as in the service's loop. Bodies are written as
 * JSON in the tests and sent as msgpack; results are read back as JSON. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>
#include <zmq.h>

#include "../../../services/intake/case_ops.h"
#include "../../../services/intake/decision_gate.h"
#include "bus.h"
#include "ident.h"
#include "keys.h"
#include "log.h"
#include "rpc.h"
#include "tsupport.h"
#include "workday.h"
#include "zsock.h"

typedef struct {
    char pub[41], sec[41];
} s_pair_t;

typedef struct {
    char *url;
    db_t *srv_db, *chk;
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    workday_t *cal;
    intake_t app;
    pthread_t thread;
    atomic_bool stop, paused, idle;
    s_pair_t server, a, b, a_officer;
    char code_a[19], code_b[19];
    rpc_client_t *ca, *cb;
} fx_t;

/* ---- Server thread ------------------------------------------------------------------ */

static void *
s_server_thread(void *arg)
{
    fx_t *fx = arg;
    while (!atomic_load(&fx->stop)) {
        if (atomic_load(&fx->paused)) {
            atomic_store(&fx->idle, true);
            usleep(1000);
            continue;
        }
        atomic_store(&fx->idle, false);
        rpc_server_poll(fx->srv, 10);
    }
    return NULL;
}

/* Stops the server loop between turns (so its stats can be read). */
static void
s_pause(fx_t *fx)
{
    atomic_store(&fx->paused, true);
    for (int i = 0; i < 2000 && !atomic_load(&fx->idle); i++)
        usleep(1000);
}

static void
s_resume(fx_t *fx)
{
    atomic_store(&fx->idle, false);
    atomic_store(&fx->paused, false);
}

/* ---- SQL helpers -------------------------------------------------------------------- */

/* The first column of the first row as text (static buffer per call site is avoided:
 * the caller's). */
static char *
s_one(db_t *db, const char *sql, char *out, size_t size)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "<none>");
    PQclear(r);
    return out;
}

static long long
s_count(db_t *db, const char *sql)
{
    char b[64];
    return atoll(s_one(db, sql, b, sizeof b));
}

/* ---- Fixture ------------------------------------------------------------------------ */

static void
s_code(char out[19], const char *body17)
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
}

static void
s_registry(fx_t *fx)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.agency (code, name, level, domain, head_name, head_title,"
             " version, updated_by) VALUES"
             " ('%s', '市场监管局', 'city', '市场监管', '张局长', '局长', 1, 'test'),"
             " ('%s', '生态环境局', 'city', '生态环境', '李局长', '局长', 1, 'test')",
             fx->code_a, fx->code_b);
    ts_sql(fx->chk, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.officer (agency, cert_no, name, valid_from, valid_to, area,"
             " active, version, updated_by) VALUES"
             " ('%1$s', 'A001', '王一', '2015-01-01', '2030-12-31', '全市', true, 1, 't'),"
             " ('%1$s', 'A002', '王二', '2015-01-01', '2030-12-31', '全市', true, 1, 't'),"
             " ('%1$s', 'A003', '王三', '2015-01-01', '2018-12-31', '全市', true, 1, 't'),"
             " ('%1$s', 'A004', '王四', '2015-01-01', '2030-12-31', '全市', false, 1, 't'),"
             " ('%2$s', 'B001', '赵一', '2015-01-01', '2030-12-31', '全市', true, 1, 't')",
             fx->code_a, fx->code_b);
    ts_sql(fx->chk, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.matter (agency, code, name, type, legal_basis, accepting_body,"
             " approving_body, conditions, time_limit, time_limit_unit, guide, active, version,"
             " updated_by) VALUES"
             " ('%1$s', 'LIC-1', '食品经营许可', 'licence', '食品安全法', '窗口', '局', '-', 7,"
             "  'workday', '-', true, 1, 't'),"
             " ('%1$s', 'PEN-1', '无照经营处罚', 'penalty', '无证无照经营查处办法', '科', '局',"
             "  '-', 90, 'day', '-', true, 3, 't'),"
             " ('%1$s', 'INS-1', '双随机抽查', 'inspection', '条例', '科', '局', '-', 15,"
             "  'workday', '-', true, 1, 't'),"
             " ('%1$s', 'OLD-1', '已取消事项', 'penalty', '-', '-', '-', '-', 30, 'day', '-',"
             "  false, 2, 't'),"
             " ('%2$s', 'PEN-B', '环境处罚', 'penalty', '环境保护法', '科', '局', '-', 90,"
             "  'day', '-', true, 1, 't')",
             fx->code_a, fx->code_b);
    ts_sql(fx->chk, sql);
    /* Review catalogue: penalties of 1 万元 or more (fine + confiscation). */
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.review_rule (agency, id, description, case_type,"
             " amount_threshold, version, updated_by) VALUES"
             " ('%1$s', 'R-AMOUNT', '较大数额罚款', 'penalty', 1.0, 1, 't');"
             "INSERT INTO intake.discretion (agency, violation_code, circumstance, fine_min,"
             " fine_max, basis, version, updated_by) VALUES"
             " ('%1$s', 'V-01', 'general', 0.5, 2.0, '裁量基准第3条', 1, 't')",
             fx->code_a);
    PGresult *r = PQexec(db_conn(fx->chk), sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("registry: %s", PQerrorMessage(db_conn(fx->chk)));
    PQclear(r);
}

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

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[512];
    fx->url = ts_fresh_db("caseops");
    fx->srv_db = db_new(fx->url, "intake-test");
    fx->chk = db_new(fx->url, "intake-check");
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);
    assert_int_equal(db_connect(fx->chk, 5000), 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    if (bus_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("bus_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", ts_env("SX_TOP"));
    if (rpc_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("rpc_migrate: %s", db_error(fx->srv_db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/intake", ts_env("SX_TOP"));
    if (db_migrate(fx->srv_db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(fx->srv_db));

    s_code(fx->code_a, "11330400MB0000001");
    s_code(fx->code_b, "11330400MB0000002");
    s_registry(fx);

    assert_int_equal(keys_keypair(fx->server.pub, fx->server.sec), 0);
    assert_int_equal(keys_keypair(fx->a.pub, fx->a.sec), 0);
    assert_int_equal(keys_keypair(fx->b.pub, fx->b.sec), 0);
    assert_int_equal(keys_keypair(fx->a_officer.pub, fx->a_officer.sec), 0);
    char text[1024];
    snprintf(text, sizeof text, "%s dept:%s:system\n%s dept:%s:system\n%s dept:%s:officer\n",
             fx->a.pub, fx->code_a, fx->b.pub, fx->code_b, fx->a_officer.pub, fx->code_a);
    char *path = ts_write_tmp("case-keys", text);
    keys_t *keys = keys_load(path, err, sizeof err);
    free(path);
    if (!keys)
        fail_msg("keys_load: %s", err);

    fx->cal = workday_load_default(err, sizeof err);
    if (!fx->cal)
        fail_msg("calendar: %s", err);
    fx->app.calendar = fx->cal;

    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    assert_non_null(fx->zap);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "intake", "dept:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "intake", fx->server.sec, "tcp://127.0.0.1:*",
                             fx->srv_db, INTAKE_SCHEMA, err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    assert_int_equal(case_ops_register(fx->srv, &fx->app), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_server_thread, fx), 0);
    fx->ca = s_client(fx, &fx->a);
    fx->cb = s_client(fx, &fx->b);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    rpc_client_destroy(&fx->ca);
    rpc_client_destroy(&fx->cb);
    atomic_store(&fx->stop, true);
    pthread_join(fx->thread, NULL);
    rpc_server_destroy(&fx->srv);
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    workday_destroy(&fx->cal);
    db_destroy(&fx->srv_db);
    db_destroy(&fx->chk);
    free(fx->url);
    free(fx);
    return 0;
}

/* ---- JSON <-> msgpack ---------------------------------------------------------------- */

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

static json_t *
s_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
            json_object_set_new(m, key, s_to_json(&kv->val));
        }
        return m;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(a, s_to_json(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_NIL:
        return json_null();
    default:
        return json_string("<other>");
    }
}

static json_t *
s_mp_json(const void *buf, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, buf, len, NULL), MSGPACK_UNPACK_SUCCESS);
    json_t *j = s_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

/* Packs a JSON text (printf format) into sb as msgpack. */
static void
s_body(msgpack_sbuffer *sb, const char *fmt, va_list ap)
{
    char text[16384];
    vsnprintf(text, sizeof text, fmt, ap);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    s_pack_json(&pk, j);
    json_decref(j);
}

/* One call; out must be cleared by the caller. */
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

/* A call that must succeed: returns the result as JSON (caller decrefs). */
static json_t *
s_ok(rpc_client_t *c, const char *op, const char *rid, const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    va_list ap;
    va_start(ap, fmt);
    s_body(&sb, fmt, ap);
    va_end(ap);
    evmsg_err_t err = {{0}, {0}};
    rpc_reply_t r;
    int rc = rpc_call(c, op, rid, sb.data, sb.size, 5000, 2, &r, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        fail_msg("rpc_call %s %s: %s", op, rid, err.reason);
    if (!r.ok)
        fail_msg("%s %s: %s at '%s': %s / %s", op, rid, r.code, r.field, r.en, r.zh);
    json_t *j = s_mp_json(r.result, r.result_len);
    rpc_reply_clear(&r);
    return j;
}

/* A call that must fail with code at field; returns the English message (static per
 * test: copied into buf). */
static void
s_err(rpc_client_t *c, const char *op, const char *rid, const char *code, const char *field,
      char *en, size_t en_size, const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    va_list ap;
    va_start(ap, fmt);
    s_body(&sb, fmt, ap);
    va_end(ap);
    evmsg_err_t err = {{0}, {0}};
    rpc_reply_t r;
    int rc = rpc_call(c, op, rid, sb.data, sb.size, 5000, 2, &r, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        fail_msg("rpc_call %s %s: %s", op, rid, err.reason);
    if (r.ok || strcmp(r.code, code) != 0 || strcmp(r.field, field) != 0)
        fail_msg("%s %s: expected %s at '%s', got ok=%d %s at '%s' (%s)", op, rid, code, field,
                 r.ok, r.code, r.field, r.en);
    assert_true(r.zh[0] != '\0');
    assert_true(r.en[0] != '\0');
    if (en)
        snprintf(en, en_size, "%s", r.en);
    rpc_reply_clear(&r);
}

static int64_t
s_jint(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("no integer %s", key);
    return (int64_t)json_integer_value(v);
}

static const char *
s_jstr(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        fail_msg("no string %s", key);
    return json_string_value(v);
}

/* A valid party (an organisation with a good USCC). */
#define PARTY_ORG                                                                                    \
    "{\"kind\": \"org\", \"name\": \"某某商贸有限公司\", \"id_type\": \"uscc\", \"id_no\": " \
    "\"%s\"}"

static char s_party_uscc[19];

static const char *
s_uscc(void)
{
    s_code(s_party_uscc, "91330400MA2B00001");
    return s_party_uscc;
}

/* Opens a case of agency A and returns its case_id. */
static int64_t
s_open(fx_t *fx, const char *case_no, const char *matter, const char *opened)
{
    char rid[80];
    snprintf(rid, sizeof rid, "open-%s", case_no);
    json_t *j = s_ok(fx->ca, "case.open", rid,
                     "{\"case_no\": \"%s\", \"matter_code\": \"%s\", \"party\": " PARTY_ORG
                     ", \"opened_on\": \"%s\", \"on_site\": true, \"officers\": [\"A001\", "
                     "\"A002\"]}",
                     case_no, matter, s_uscc(), opened);
    int64_t id = s_jint(j, "case_id");
    json_decref(j);
    return id;
}

/* ---- Tests: case.open ----------------------------------------------------------------- */

static void
test_open_computes_deadline_and_emits(void **state)
{
    fx_t *fx = *state;
    /* 7 working days from 2019-09-27 (National Day week, adjusted workday 10-12). */
    json_t *j =
        s_ok(fx->ca, "case.open", "o-1",
             "{\"case_no\": \"许字〔2019〕1号\", \"matter_code\": \"LIC-1\", \"party\": " PARTY_ORG
             ", \"opened_on\": \"2019-09-27\", \"summary\": \"申请食品经营许可\"}",
             s_uscc());
    int64_t id = s_jint(j, "case_id");
    assert_true(id > 0);
    assert_string_equal(s_jstr(j, "state"), "open");
    assert_string_equal(s_jstr(j, "type"), "licence");
    assert_string_equal(s_jstr(j, "case_no"), "许字〔2019〕1号");
    assert_string_equal(s_jstr(j, "deadline"), "2019-10-12");
    assert_string_equal(s_jstr(j, "deadline_warn_on"), "2019-10-09");
    json_decref(j);

    char b[128], sql[256];
    snprintf(sql, sizeof sql,
             "SELECT due || '/' || warn_on || '/' || due_uncovered FROM intake.cases"
             " WHERE id = %" PRId64,
             id);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "2019-10-12/2019-10-09/false");
    /* A penalty counted in calendar days: 90 days from 2019-09-27. */
    int64_t pid = s_open(fx, "PEN-2019-1", "PEN-1", "2019-09-27");
    snprintf(sql, sizeof sql, "SELECT due FROM intake.cases WHERE id = %" PRId64, pid);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "2019-12-26");
    snprintf(sql, sizeof sql,
             "SELECT type || '/' || state || '/' || matter_version || '/' || array_to_string("
             "officers, ',') FROM intake.cases WHERE id = %" PRId64,
             pid);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "penalty/open/3/A001,A002");

    /* The events: case.opened.<agency A>, with the deadline. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM intake.outbox WHERE topic = 'case.opened.%s'",
             fx->code_a);
    assert_int_equal(s_count(fx->chk, sql), 2);
    PGresult *r = db_query(fx->chk, "SELECT data FROM intake.outbox ORDER BY id LIMIT 1", 0, NULL);
    assert_non_null(r);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    json_t *ev = s_mp_json(raw, len);
    PQfreemem(raw);
    PQclear(r);
    assert_int_equal(s_jint(ev, "case_id"), id);
    assert_string_equal(s_jstr(ev, "deadline"), "2019-10-12");
    assert_string_equal(s_jstr(ev, "matter_code"), "LIC-1");
    assert_string_equal(s_jstr(json_object_get(ev, "party"), "id_no"), s_uscc());
    json_decref(ev);
}

static void
test_open_refusals(void **state)
{
    fx_t *fx = *state;
    char en[300], bad_uscc[19], idno[19], bad_idno[19];
    snprintf(bad_uscc, sizeof bad_uscc, "%s", s_uscc());
    bad_uscc[17] = bad_uscc[17] == '0' ? '1' : '0';
    /* A valid ID number (1990-01-01, Beijing) and one with a wrong check digit. */
    memcpy(idno, "11010519900101123", 17);
    idno[17] = ident_idcard_check_char(idno);
    idno[18] = '\0';
    snprintf(bad_idno, sizeof bad_idno, "%s", idno);
    bad_idno[17] = idno[17] == '1' ? '2' : '1';
    const char *base = "{\"case_no\": \"%s\", \"matter_code\": \"PEN-1\", \"opened_on\": "
                       "\"2019-09-27\", \"party\": {\"kind\": \"%s\", \"name\": \"某\", "
                       "\"id_type\": \"%s\", \"id_no\": \"%s\"}}";

    /* Malformed msgpack: not a map at all. */
    rpc_client_send(fx->ca, "\xc1\x01\x02", 3);
    rpc_reply_t rep;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(rpc_client_recv(fx->ca, 5000, &rep, &err), 1);
    assert_false(rep.ok);
    assert_true(rep.rid_nil);
    assert_string_equal(rep.code, "bad_request");
    rpc_reply_clear(&rep);

    /* Missing, mistyped, oversized, unknown fields. */
    s_err(fx->ca, "case.open", "r-missing", "missing_field", "body.party", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"PEN-1\", \"opened_on\": \"2019-09-27\"}");
    s_err(fx->ca, "case.open", "r-type", "bad_field", "body.opened_on", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"PEN-1\", \"opened_on\": 20190927, "
          "\"party\": " PARTY_ORG "}",
          s_uscc());
    char long_no[80];
    memset(long_no, 'N', 65);
    long_no[65] = '\0';
    s_err(fx->ca, "case.open", "r-long", "too_large", "body.case_no", NULL, 0, base, long_no, "org",
          "uscc", s_uscc());
    s_err(fx->ca, "case.open", "r-unknown", "unknown_field", "body.colour", NULL, 0,
          "{\"case_no\": \"X1\", \"colour\": \"red\"}");
    s_err(fx->ca, "case.open", "r-kind", "bad_field", "body.party.kind", NULL, 0, base, "X1",
          "robot", "uscc", s_uscc());
    /* Check digits: USCC of an organisation, ID number of a person. */
    s_err(fx->ca, "case.open", "r-uscc", "bad_id", "body.party.id_no", en, sizeof en, base, "X1",
          "org", "uscc", bad_uscc);
    assert_non_null(strstr(en, "GB 32100"));
    assert_non_null(strstr(en, "check"));
    s_err(fx->ca, "case.open", "r-idno", "bad_id", "body.party.id_no", en, sizeof en, base, "X1",
          "person", "idcard", bad_idno);
    assert_non_null(strstr(en, "GB 11643"));
    s_err(fx->ca, "case.open", "r-orgcode", "bad_id", "body.party.id_no", NULL, 0, base, "X1",
          "org", "org_code", "12345678-0");
    s_err(fx->ca, "case.open", "r-mix", "bad_field", "body.party.id_type", NULL, 0, base, "X1",
          "person", "uscc", s_uscc());
    /* Matters: unknown, retired, another agency's. */
    s_err(fx->ca, "case.open", "r-matter", "unknown_matter", "body.matter_code", en, sizeof en,
          "{\"case_no\": \"X1\", \"matter_code\": \"NOPE\", \"opened_on\": \"2019-09-27\", "
          "\"party\": " PARTY_ORG "}",
          s_uscc());
    assert_non_null(strstr(en, "NOPE"));
    s_err(fx->ca, "case.open", "r-retired", "unknown_matter", "body.matter_code", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"OLD-1\", \"opened_on\": \"2019-09-27\", "
          "\"party\": " PARTY_ORG "}",
          s_uscc());
    s_err(fx->ca, "case.open", "r-matter-b", "unknown_matter", "body.matter_code", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"PEN-B\", \"opened_on\": \"2019-09-27\", "
          "\"party\": " PARTY_ORG "}",
          s_uscc());
    /* Officers: expired, retired, another agency's, unknown, one only, twice. */
    const char *onsite = "{\"case_no\": \"X1\", \"matter_code\": \"PEN-1\", \"opened_on\": "
                         "\"2019-09-27\", \"party\": " PARTY_ORG ", \"on_site\": true, "
                         "\"officers\": %s}";
    s_err(fx->ca, "case.open", "r-off-exp", "officer_invalid", "body.officers[1]", en, sizeof en,
          onsite, s_uscc(), "[\"A001\", \"A003\"]");
    assert_non_null(strstr(en, "2018-12-31"));
    s_err(fx->ca, "case.open", "r-off-ret", "officer_invalid", "body.officers[0]", NULL, 0, onsite,
          s_uscc(), "[\"A004\", \"A001\"]");
    s_err(fx->ca, "case.open", "r-off-b", "officer_invalid", "body.officers[1]", NULL, 0, onsite,
          s_uscc(), "[\"A001\", \"B001\"]");
    s_err(fx->ca, "case.open", "r-off-unk", "officer_invalid", "body.officers[1]", NULL, 0, onsite,
          s_uscc(), "[\"A001\", \"Z999\"]");
    s_err(fx->ca, "case.open", "r-off-one", "officers_required", "body.officers", NULL, 0, onsite,
          s_uscc(), "[\"A001\"]");
    s_err(fx->ca, "case.open", "r-off-dup", "bad_field", "body.officers[1]", NULL, 0, onsite,
          s_uscc(), "[\"A001\", \"A001\"]");
    /* Valid on the act date, not on the open date: the act date counts. */
    s_err(fx->ca, "case.open", "r-off-act", "officer_invalid", "body.officers[1]", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"PEN-1\", \"opened_on\": \"2019-09-27\", "
          "\"act_date\": \"2019-01-05\", \"party\": " PARTY_ORG ", \"on_site\": true, "
          "\"officers\": [\"A001\", \"A003\"]}",
          s_uscc());
    json_decref(s_ok(fx->ca, "case.open", "r-off-act-ok",
                     "{\"case_no\": \"X0\", \"matter_code\": \"PEN-1\", \"opened_on\": "
                     "\"2019-09-27\", \"act_date\": \"2018-12-30\", \"party\": " PARTY_ORG
                     ", \"on_site\": true, \"officers\": [\"A001\", \"A003\"]}",
                     s_uscc()));
    /* Dates: the future. */
    s_err(fx->ca, "case.open", "r-future", "bad_field", "body.opened_on", NULL, 0,
          "{\"case_no\": \"X1\", \"matter_code\": \"PEN-1\", \"opened_on\": \"2999-01-01\", "
          "\"party\": " PARTY_ORG "}",
          s_uscc());
    /* A person with a good ID number is fine; the same case_no again is not. */
    json_decref(s_ok(fx->ca, "case.open", "r-person", base, "P1", "person", "idcard", idno));
    s_err(fx->ca, "case.open", "r-dup", "case_exists", "body.case_no", NULL, 0, base, "P1",
          "person", "idcard", idno);
    /* Agency B may use the same case_no: it is per agency. */
    json_t *jb = s_ok(fx->cb, "case.open", "b-p1",
                      "{\"case_no\": \"P1\", \"matter_code\": \"PEN-B\", \"opened_on\": "
                      "\"2019-09-27\", \"party\": " PARTY_ORG "}",
                      s_uscc());
    json_decref(jb);
    /* Nothing but the three good cases was written. */
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases"), 3);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases WHERE met_on IS NULL"), 3);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.outbox"), 3);
}

static void
test_repeated_rid_same_reply(void **state)
{
    fx_t *fx = *state;
    rpc_reply_t r1, r2;
    const char *body = "{\"case_no\": \"RID-1\", \"matter_code\": \"PEN-1\", \"party\": " PARTY_ORG
                       ", \"opened_on\": \"2019-09-27\"}";
    s_call(fx->ca, "case.open", "same-rid", &r1, body, s_uscc());
    s_call(fx->ca, "case.open", "same-rid", &r2, body, s_uscc());
    assert_true(r1.ok && r2.ok);
    assert_int_equal(r1.result_len, r2.result_len);
    assert_memory_equal(r1.result, r2.result, r1.result_len);
    rpc_reply_clear(&r1);
    rpc_reply_clear(&r2);
    /* An error reply is replayed as well. */
    s_call(fx->ca, "case.open", "same-rid-err", &r1, body, s_uscc());
    s_call(fx->ca, "case.open", "same-rid-err", &r2, body, s_uscc());
    assert_false(r1.ok);
    assert_string_equal(r1.code, "case_exists");
    assert_string_equal(r2.code, "case_exists");
    rpc_reply_clear(&r1);
    rpc_reply_clear(&r2);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases"), 1);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.outbox"), 1);
}

/* ---- Tests: the life of a case ------------------------------------------------------ */

static void
test_penalty_life_and_wrong_state(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "LIFE-1", "PEN-1", "2019-09-27");
    char en[300];
    json_t *j;
    /* Record: the whole-process record, numbered per case. */
    const char *rec = "{\"case_id\": %" PRId64 ", \"stage\": \"investigation\", \"kind\": "
                      "\"video\", \"doc_type\": \"现场检查音像记录\", \"officers\": [\"A001\", "
                      "\"A002\"], \"device\": \"DSJ-01\", \"started_at\": 1569571200000, "
                      "\"ended_at\": 1569571800000, \"media\": {\"sha256\": \"%s\", \"uri\": "
                      "\"s3://av/1.mp4\", \"size\": 1048576}, \"classification\": \"internal\"}";
    const char *sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    j = s_ok(fx->ca, "case.record", "rec-1", rec, id, sha);
    assert_int_equal(s_jint(j, "record_no"), 1);
    assert_string_equal(s_jstr(j, "state"), "open");
    json_decref(j);
    j = s_ok(fx->ca, "case.record", "rec-2", rec, id, sha);
    assert_int_equal(s_jint(j, "record_no"), 2);
    json_decref(j);
    s_err(fx->ca, "case.record", "rec-bad-sha", "bad_field", "body.media.sha256", NULL, 0, rec, id,
          "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
    /* A wrong transition names the state. */
    s_err(fx->ca, "case.decide", "dec-early", "wrong_state", "", en, sizeof en,
          "{\"case_id\": %" PRId64 ", \"decision_no\": \"罚决〔2019〕1号\", \"decision_date\": "
          "\"2019-10-20\"}",
          id);
    assert_non_null(strstr(en, "case is open"));
    /* Propose (0.5 万元: under the review threshold), decide, serve, execute, close. */
    j = s_ok(fx->ca, "case.propose", "prop-1",
             "{\"case_no\": \"LIFE-1\", \"category\": \"罚款\", \"content\": \"罚款五千元\", "
             "\"fine\": \"0.5\", \"legal_basis\": \"无证无照经营查处办法第十三条\"}");
    assert_int_equal(s_jint(j, "version"), 1);
    assert_false(json_is_true(json_object_get(j, "requires_review")));
    assert_string_equal(s_jstr(j, "state"), "proposed");
    json_decref(j);
    j = s_ok(fx->ca, "case.decide", "dec-1",
             "{\"case_id\": %" PRId64 ", \"decision_no\": \"罚决〔2019〕1号\", "
             "\"decision_date\": \"2019-10-20\"}",
             id);
    assert_string_equal(s_jstr(j, "state"), "decided");
    assert_int_equal(s_jint(j, "version"), 1);
    json_decref(j);
    s_err(fx->ca, "case.decide", "dec-2", "wrong_state", "", en, sizeof en,
          "{\"case_id\": %" PRId64 ", \"decision_no\": \"罚决〔2019〕2号\", \"decision_date\": "
          "\"2019-10-20\"}",
          id);
    assert_non_null(strstr(en, "case is decided"));
    s_err(fx->ca, "case.serve", "srv-early", "bad_field", "body.served_on", NULL, 0,
          "{\"case_id\": %" PRId64 ", \"served_on\": \"2019-01-01\", \"method\": \"direct\"}", id);
    json_decref(s_ok(fx->ca, "case.serve", "srv-1",
                     "{\"case_id\": %" PRId64 ", \"served_on\": \"2019-10-21\", \"method\": "
                     "\"post\"}",
                     id));
    s_err(fx->ca, "case.close", "close-early", "wrong_state", "", en, sizeof en,
          "{\"case_id\": %" PRId64 ", \"closed_on\": \"2019-10-22\"}", id);
    assert_non_null(strstr(en, "case is served"));
    json_decref(s_ok(fx->ca, "case.execute", "exe-1",
                     "{\"case_id\": %" PRId64 ", \"executed_on\": \"2019-10-25\", \"method\": "
                     "\"voluntary\"}",
                     id));
    json_decref(
        s_ok(fx->ca, "case.close", "close-1",
             "{\"case_id\": %" PRId64 ", \"closed_on\": \"2019-10-28\", \"note\": \"结案\"}", id));
    s_err(fx->ca, "case.record", "rec-closed", "wrong_state", "", NULL, 0, rec, id, sha);
    j = s_ok(fx->ca, "case.revoke", "rev-1",
             "{\"case_id\": %" PRId64 ", \"kind\": \"confirm_illegal\", \"reason\": "
             "\"复议决定确认违法\", \"revoked_on\": \"2019-12-01\"}",
             id);
    assert_string_equal(s_jstr(j, "state"), "revoked");
    json_decref(j);
    s_err(fx->ca, "case.revoke", "rev-2", "wrong_state", "", en, sizeof en,
          "{\"case_id\": %" PRId64 ", \"kind\": \"revoke\", \"reason\": \"x\", \"revoked_on\": "
          "\"2019-12-01\"}",
          id);
    assert_non_null(strstr(en, "revoked"));

    /* case.get shows it all. */
    j = s_ok(fx->ca, "case.get", "get-1", "{\"case_id\": %" PRId64 "}", id);
    assert_string_equal(s_jstr(j, "state"), "revoked");
    assert_int_equal(s_jint(j, "record_count"), 2);
    assert_int_equal(s_jint(json_object_get(j, "records_by_stage"), "investigation"), 2);
    assert_string_equal(s_jstr(json_object_get(j, "decision"), "decision_no"), "罚决〔2019〕1号");
    assert_string_equal(s_jstr(json_object_get(j, "deadline"), "met_on"), "2019-10-20");
    assert_string_equal(s_jstr(json_object_get(j, "revoked"), "kind"), "confirm_illegal");
    assert_string_equal(s_jstr(json_object_get(j, "served"), "method"), "post");
    json_t *props = json_object_get(j, "proposals");
    assert_int_equal(json_array_size(props), 1);
    assert_string_equal(s_jstr(json_array_get(props, 0), "fine"), "0.5");
    assert_string_equal(s_jstr(json_array_get(props, 0), "review"), "not_required");
    json_decref(j);

    /* The events, in order, with the agency's topics. */
    char sql[512], b[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(split_part(topic, '.', 1) || '.' || split_part(topic, '.', 2),"
             " ',' ORDER BY id) FROM intake.outbox WHERE topic LIKE '%%.%s'",
             fx->code_a);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b),
                        "case.opened,case.recorded,case.recorded,case.proposed,case.decided,"
                        "case.served,case.executed,case.closed,case.revoked");
    snprintf(sql, sizeof sql,
             "SELECT revoke_kind || '/' || decision_no || '/' || execute_method || '/' ||"
             " decided_version FROM intake.cases WHERE id = %" PRId64,
             id);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b),
                        "confirm_illegal/罚决〔2019〕1号/voluntary/1");
}

static void
test_decision_gate(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "GATE-1", "PEN-1", "2019-09-27");
    char en[300], sql[512];
    const char *prop = "{\"case_id\": %" PRId64 ", \"category\": \"罚款;没收违法所得\", "
                       "\"content\": \"罚款并没收\", \"fine\": \"%s\", \"confiscation\": "
                       "\"0.6\", \"legal_basis\": \"办法第十三条\"}";
    const char *dec = "{\"case_id\": %" PRId64 ", \"decision_no\": \"罚决〔2019〕%d号\", "
                      "\"decision_date\": \"2019-10-20\"}";
    /* v1: 0.5 + 0.6 >= 1 万元: the catalogue's rule R-AMOUNT requires review. */
    json_t *j = s_ok(fx->ca, "case.propose", "g-p1", prop, id, "0.5");
    assert_int_equal(s_jint(j, "version"), 1);
    assert_true(json_is_true(json_object_get(j, "requires_review")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "review_rules"), 0)),
                        "R-AMOUNT");
    json_decref(j);
    s_err(fx->ca, "case.decide", "g-d1", "review_pending", "", en, sizeof en, dec, id, 1);
    assert_non_null(strstr(en, "version 1"));
    /* A verdict from another agency's topic is ignored. */
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.review_verdict (case_id, proposal_version, agency, verdict, at)"
             " VALUES (%" PRId64 ", 1, '%s', 'approved', now())",
             id, fx->code_b);
    ts_sql(fx->chk, sql);
    s_err(fx->ca, "case.decide", "g-d1b", "review_pending", "", NULL, 0, dec, id, 1);
    ts_sql(fx->chk, "DELETE FROM intake.review_verdict");
    /* Approved v1; then a new version v2 before deciding: v2 needs its own approval. */
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.review_verdict (case_id, proposal_version, agency, verdict,"
             " opinion, at) VALUES (%" PRId64 ", 1, '%s', 'approved', '同意', now())",
             id, fx->code_a);
    ts_sql(fx->chk, sql);
    j = s_ok(fx->ca, "case.propose", "g-p2", prop, id, "0.8");
    assert_int_equal(s_jint(j, "version"), 2);
    json_decref(j);
    s_err(fx->ca, "case.decide", "g-d2", "review_pending", "", en, sizeof en, dec, id, 2);
    assert_non_null(strstr(en, "version 2"));
    /* v2 returned: review_required until a new version is approved. */
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.review_verdict (case_id, proposal_version, agency, verdict,"
             " opinion, at) VALUES (%" PRId64 ", 2, '%s', 'returned', '裁量过重', now())",
             id, fx->code_a);
    ts_sql(fx->chk, sql);
    s_err(fx->ca, "case.decide", "g-d3", "review_required", "", en, sizeof en, dec, id, 3);
    assert_non_null(strstr(en, "returned"));
    j = s_ok(fx->ca, "case.get", "g-get", "{\"case_id\": %" PRId64 "}", id);
    json_t *props = json_object_get(j, "proposals");
    assert_string_equal(s_jstr(json_array_get(props, 0), "review"), "returned");
    assert_string_equal(s_jstr(json_array_get(props, 0), "opinion"), "裁量过重");
    assert_string_equal(s_jstr(json_array_get(props, 1), "review"), "approved");
    json_decref(j);
    j = s_ok(fx->ca, "case.propose", "g-p3", prop, id, "0.4");
    assert_int_equal(s_jint(j, "version"), 3);
    json_decref(j);
    s_err(fx->ca, "case.decide", "g-d4", "review_pending", "", NULL, 0, dec, id, 4);
    snprintf(sql, sizeof sql,
             "INSERT INTO intake.review_verdict (case_id, proposal_version, agency, verdict, at)"
             " VALUES (%" PRId64 ", 3, '%s', 'approved', now())",
             id, fx->code_a);
    ts_sql(fx->chk, sql);
    j = s_ok(fx->ca, "case.decide", "g-d5", dec, id, 5);
    assert_int_equal(s_jint(j, "version"), 3);
    json_decref(j);
    /* case.decided carries the decided version's amounts and that it was reviewed. */
    PGresult *r = db_query(
        fx->chk, "SELECT data FROM intake.outbox WHERE topic LIKE 'case.decided.%'", 0, NULL);
    assert_int_equal(PQntuples(r), 1);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
    json_t *ev = s_mp_json(raw, len);
    PQfreemem(raw);
    PQclear(r);
    assert_int_equal(s_jint(ev, "version"), 3);
    assert_string_equal(s_jstr(ev, "fine"), "0.4");
    assert_string_equal(s_jstr(ev, "confiscation"), "0.6");
    assert_true(json_is_true(json_object_get(ev, "reviewed")));
    json_decref(ev);
    /* A decision number is used once per agency. */
    int64_t id2 = s_open(fx, "GATE-2", "PEN-1", "2019-09-27");
    json_decref(s_ok(fx->ca, "case.propose", "g2-p1",
                     "{\"case_id\": %" PRId64 ", \"category\": \"警告\", \"content\": \"警告\", "
                     "\"legal_basis\": \"第十三条\"}",
                     id2));
    s_err(fx->ca, "case.decide", "g2-d1", "decision_no_taken", "body.decision_no", NULL, 0, dec,
          id2, 5);
}

static void
test_discretion_band(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "DISC-1", "PEN-1", "2019-09-27");
    char en[RPC_TEXT_MAX + 1];
    const char *prop = "{\"case_id\": %" PRId64 ", \"category\": \"罚款\", \"content\": \"罚款\", "
                       "\"fine\": \"%s\", \"legal_basis\": \"第十三条\", \"violation_code\": "
                       "\"V-01\", \"circumstance\": \"general\"%s}";
    s_err(fx->ca, "case.propose", "d-1", "discretion_out_of_band", "body.fine", en, sizeof en, prop,
          id, "5", "");
    assert_non_null(strstr(en, "0.5 to 2"));
    assert_non_null(strstr(en, "above"));
    s_err(fx->ca, "case.propose", "d-2", "discretion_out_of_band", "body.fine", en, sizeof en, prop,
          id, "0.1", "");
    assert_non_null(strstr(en, "below"));
    s_err(fx->ca, "case.propose", "d-3", "missing_field", "body.circumstance", NULL, 0,
          "{\"case_id\": %" PRId64 ", \"category\": \"罚款\", \"content\": \"罚款\", "
          "\"fine\": \"1\", \"legal_basis\": \"x\", \"violation_code\": \"V-01\"}",
          id);
    s_err(fx->ca, "case.propose", "d-4", "bad_field", "body.fine", NULL, 0, prop, id, "1.1234567",
          "");
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.case_proposal"), 0);
    /* Inside the band: fine (0.8 < 1 万元: no review). */
    json_t *j = s_ok(fx->ca, "case.propose", "d-5", prop, id, "0.8", "");
    assert_false(json_is_true(json_object_get(j, "requires_review")));
    json_decref(j);
    /* Outside with a stated reason: accepted, flagged, sent to review. */
    j = s_ok(fx->ca, "case.propose", "d-6", prop, id, "0.1",
             ", \"deviation_reason\": \"主动消除危害后果，依法减轻\"");
    assert_int_equal(s_jint(j, "version"), 2);
    assert_true(json_is_true(json_object_get(j, "requires_review")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "review_rules"), 0)),
                        GATE_RULE_DEVIATION);
    json_decref(j);
    char b[128];
    assert_string_equal(s_one(fx->chk,
                              "SELECT band_min || '/' || band_max || '/' || requires_review FROM"
                              " intake.case_proposal WHERE version = 2",
                              b, sizeof b),
                        "0.500000/2.000000/true");
}

static void
test_inspection(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "INS-2019-1", "INS-1", "2019-09-27");
    char en[300];
    s_err(fx->ca, "case.propose", "i-prop", "wrong_state", "", en, sizeof en,
          "{\"case_id\": %" PRId64 ", \"category\": \"x\", \"content\": \"x\", \"legal_basis\": "
          "\"x\"}",
          id);
    assert_non_null(strstr(en, "does not apply to inspection"));
    s_err(fx->ca, "inspection.result", "i-r0", "missing_field", "body.problems", NULL, 0,
          "{\"case_id\": %" PRId64 ", \"result_date\": \"2019-10-10\", \"subject\": \"某公司\", "
          "\"result\": \"problems_found\"}",
          id);
    json_t *j = s_ok(fx->ca, "inspection.result", "i-r1",
                     "{\"case_id\": %" PRId64 ", \"result_date\": \"2019-10-10\", \"subject\": "
                     "\"某公司\", \"result\": \"problems_found\", \"problems\": \"台账不全\", "
                     "\"handled\": \"责令改正\"}",
                     id);
    assert_string_equal(s_jstr(j, "state"), "resulted");
    json_decref(j);
    json_decref(s_ok(fx->ca, "case.close", "i-c",
                     "{\"case_id\": %" PRId64 ", \"closed_on\": \"2019-10-11\"}", id));
    j = s_ok(fx->ca, "case.get", "i-get", "{\"case_no\": \"INS-2019-1\"}");
    assert_string_equal(s_jstr(j, "state"), "closed");
    assert_string_equal(s_jstr(json_object_get(j, "inspection"), "result"), "problems_found");
    assert_string_equal(s_jstr(json_object_get(j, "deadline"), "met_on"), "2019-10-10");
    json_decref(j);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM intake.outbox WHERE topic = "
             "'inspection.resulted.%s'",
             fx->code_a);
    assert_int_equal(s_count(fx->chk, sql), 1);
}

static void
test_other_agency_forbidden(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "MINE-1", "PEN-1", "2019-09-27");
    long long before = s_count(fx->chk, "SELECT count(*) FROM intake.outbox");
    s_err(fx->cb, "case.get", "b-get", "forbidden", "body.case_id", NULL, 0,
          "{\"case_id\": %" PRId64 "}", id);
    s_err(fx->cb, "case.propose", "b-prop", "forbidden", "body.case_id", NULL, 0,
          "{\"case_id\": %" PRId64 ", \"category\": \"罚款\", \"content\": \"x\", "
          "\"legal_basis\": \"x\"}",
          id);
    s_err(fx->cb, "case.record", "b-rec", "forbidden", "body.case_id", NULL, 0,
          "{\"case_id\": %" PRId64 ", \"stage\": \"start\", \"kind\": \"text\", \"doc_type\": "
          "\"x\", \"officers\": [\"B001\"], \"started_at\": 1, \"ended_at\": 2, \"media\": "
          "{\"sha256\": \"%064d\", \"uri\": \"u\", \"size\": 1}, \"classification\": \"public\"}",
          id, 0);
    /* By case_no, B only ever sees its own cases. */
    s_err(fx->cb, "case.get", "b-get-no", "not_found", "body.case_no", NULL, 0,
          "{\"case_no\": \"MINE-1\"}");
    s_err(fx->ca, "case.get", "a-get-none", "not_found", "body.case_id", NULL, 0,
          "{\"case_id\": 999999}");
    /* Nothing was written. */
    char b[64], sql[256];
    snprintf(sql, sizeof sql,
             "SELECT state || proposal_version || record_count FROM intake.cases WHERE id = "
             "%" PRId64,
             id);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "open00");
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.outbox"), before);
    /* An identity of agency A other than its system is refused by the door. */
    rpc_client_t *off = s_client(fx, &fx->a_officer);
    s_err(off, "case.get", "off-get", "forbidden", "op", NULL, 0, "{\"case_id\": %" PRId64 "}", id);
    rpc_client_destroy(&off);
}

/* case.open requests that land in one turn: a case_no already taken, or taken by an
 * earlier request of the same turn, is refused `case_exists`; the others open. */
static void
test_case_no_repeated_in_one_batch(void **state)
{
    fx_t *fx = *state;
    s_open(fx, "REP-0", "PEN-1", "2019-09-27");
    s_pause(fx);
    static const char *const nos[5] = {"REP-1", "REP-1", "REP-0", "REP-2", "REP-1"};
    for (int i = 0; i < 5; i++) {
        char body[512], rid[16];
        snprintf(rid, sizeof rid, "rep-%d", i);
        snprintf(body, sizeof body,
                 "{\"case_no\": \"%s\", \"matter_code\": \"PEN-1\", \"party\": " PARTY_ORG
                 ", \"opened_on\": \"2019-09-27\"}",
                 nos[i], s_uscc());
        json_t *j = json_loads(body, 0, NULL);
        assert_non_null(j);
        msgpack_sbuffer sb, req;
        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_init(&req);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_pack_json(&pk, j);
        json_decref(j);
        assert_int_equal(rpc_request_pack(&req, "case.open", rid, sb.data, sb.size), 0);
        assert_int_equal(rpc_client_send(fx->ca, req.data, req.size), 0);
        msgpack_sbuffer_destroy(&sb);
        msgpack_sbuffer_destroy(&req);
    }
    usleep(100000); /* all five wait at the server */
    s_resume(fx);
    char got[5][64] = {{0}};
    for (int k = 0; k < 5; k++) {
        rpc_reply_t r;
        evmsg_err_t err = {{0}, {0}};
        assert_int_equal(rpc_client_recv(fx->ca, 5000, &r, &err), 1);
        int i = atoi(r.rid + 4);
        assert_true(i >= 0 && i < 5);
        snprintf(got[i], sizeof got[i], "%s", r.ok ? "ok" : r.code);
        if (!r.ok)
            assert_string_equal(r.field, "body.case_no");
        rpc_reply_clear(&r);
    }
    assert_string_equal(got[0], "ok");
    assert_string_equal(got[1], "case_exists");
    assert_string_equal(got[2], "case_exists");
    assert_string_equal(got[3], "ok");
    assert_string_equal(got[4], "case_exists");
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases"), 3);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases WHERE met_on IS NULL"), 3);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.outbox"), 3);
}

/* Several requests on one case sent without waiting land in one turn (or a few) and apply
 * in arrival order. */
static void
test_same_case_in_one_batch(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "BATCH-1", "PEN-1", "2019-09-27");
    s_pause(fx);
    const char *ops[6] = {"case.propose", "case.propose", "case.propose",
                          "case.decide",  "case.serve",   "case.propose"};
    for (int i = 0; i < 6; i++) {
        char body[512], rid[16];
        snprintf(rid, sizeof rid, "sb-%d", i);
        if (i < 3 || i == 5)
            snprintf(body, sizeof body,
                     "{\"case_id\": %" PRId64 ", \"category\": \"警告\", \"content\": \"v%d\", "
                     "\"legal_basis\": \"x\"}",
                     id, i);
        else if (i == 3)
            snprintf(body, sizeof body,
                     "{\"case_id\": %" PRId64 ", \"decision_no\": \"D-1\", \"decision_date\": "
                     "\"2019-10-01\"}",
                     id);
        else
            snprintf(body, sizeof body,
                     "{\"case_id\": %" PRId64 ", \"served_on\": \"2019-10-02\", \"method\": "
                     "\"direct\"}",
                     id);
        json_t *j = json_loads(body, 0, NULL);
        msgpack_sbuffer sb, req;
        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_init(&req);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_pack_json(&pk, j);
        json_decref(j);
        assert_int_equal(rpc_request_pack(&req, ops[i], rid, sb.data, sb.size), 0);
        assert_int_equal(rpc_client_send(fx->ca, req.data, req.size), 0);
        msgpack_sbuffer_destroy(&sb);
        msgpack_sbuffer_destroy(&req);
    }
    usleep(100000); /* all six wait at the server */
    s_resume(fx);
    char got[6][64] = {{0}};
    for (int k = 0; k < 6; k++) {
        rpc_reply_t r;
        evmsg_err_t err = {{0}, {0}};
        assert_int_equal(rpc_client_recv(fx->ca, 5000, &r, &err), 1);
        int i = atoi(r.rid + 3);
        assert_true(i >= 0 && i < 6);
        if (r.ok) {
            json_t *j = s_mp_json(r.result, r.result_len);
            snprintf(got[i], sizeof got[i], "%s/%lld", s_jstr(j, "state"),
                     (long long)(json_object_get(j, "version")
                                     ? json_integer_value(json_object_get(j, "version"))
                                     : 0));
            json_decref(j);
        } else {
            snprintf(got[i], sizeof got[i], "%s", r.code);
        }
        rpc_reply_clear(&r);
    }
    assert_string_equal(got[0], "proposed/1");
    assert_string_equal(got[1], "proposed/2");
    assert_string_equal(got[2], "proposed/3");
    assert_string_equal(got[3], "decided/3");
    assert_string_equal(got[4], "served/0");
    assert_string_equal(got[5], "wrong_state");
    char b[64], sql[256];
    snprintf(sql, sizeof sql,
             "SELECT state || '/' || proposal_version || '/' || decided_version FROM intake.cases"
             " WHERE id = %" PRId64,
             id);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "served/3/3");
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.case_proposal"), 3);
}

/* ---- events.since ---------------------------------------------------------------------- */

static void
test_events_since(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i < 5; i++) {
        char no[16];
        snprintf(no, sizeof no, "EV-%d", i);
        s_open(fx, no, "PEN-1", "2019-09-27");
    }
    json_decref(s_ok(fx->cb, "case.open", "ev-b",
                     "{\"case_no\": \"EV-B\", \"matter_code\": \"PEN-B\", \"opened_on\": "
                     "\"2019-09-27\", \"party\": " PARTY_ORG "}",
                     s_uscc()));
    /* Sequence the outbox as the relay does. */
    db_t *rdb = db_new(fx->url, "relay");
    assert_int_equal(db_connect(rdb, 5000), 0);
    void *pub = zmq_socket(fx->ctx, ZMQ_PUB);
    int zero = 0;
    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(pub, "inproc://case-ops-relay"), 0);
    bus_relay_t *relay = bus_relay_new(rdb, INTAKE_STREAM, pub);
    for (int i = 0; i < 200 && bus_relay_stats(relay).last_seq < 6; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        bus_relay_step(relay, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        usleep(5000);
    }
    assert_int_equal(bus_relay_stats(relay).last_seq, 6);
    bus_relay_destroy(&relay);
    zmq_close(pub);
    db_destroy(&rdb);

    json_t *j = s_ok(fx->ca, "events.since", "es-1", "{\"from\": 0}");
    json_t *evs = json_object_get(j, "events");
    assert_int_equal(json_array_size(evs), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(evs, i);
        assert_int_equal(s_jint(e, "aseq"), (int64_t)i + 1);
        char topic[64];
        snprintf(topic, sizeof topic, "case.opened.%s", fx->code_a);
        assert_string_equal(s_jstr(e, "topic"), topic);
        assert_true(json_is_object(json_object_get(e, "data")));
        assert_int_equal(s_jint(e, "v"), 1);
    }
    assert_string_equal(s_jstr(json_object_get(json_array_get(evs, 4), "data"), "case_no"), "EV-4");
    assert_int_equal(s_jint(j, "last_aseq"), 5);
    assert_false(json_is_true(json_object_get(j, "more")));
    json_decref(j);
    j = s_ok(fx->ca, "events.since", "es-2", "{\"from\": 2, \"limit\": 2}");
    assert_int_equal(json_array_size(json_object_get(j, "events")), 2);
    assert_int_equal(s_jint(j, "last_aseq"), 4);
    assert_true(json_is_true(json_object_get(j, "more")));
    json_decref(j);
    /* B sees only its own. */
    j = s_ok(fx->cb, "events.since", "es-b", "{\"from\": 0}");
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);
    s_err(fx->ca, "events.since", "es-bad", "bad_field", "body.limit", NULL, 0,
          "{\"from\": 0, \"limit\": 1001}");
    s_err(fx->ca, "events.since", "es-miss", "missing_field", "body.from", NULL, 0, "{}");
}

/* ---- Group commit ------------------------------------------------------------------- */

/* n case.open from nclients DEALERs, all in flight at once; returns elapsed ms. */
static double
s_burst(fx_t *fx, int nclients, int per, const char *prefix)
{
    rpc_client_t *cl[8];
    assert_true(nclients <= 8);
    for (int c = 0; c < nclients; c++)
        cl[c] = c == 0 ? fx->ca : s_client(fx, &fx->a);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int window = 256 / nclients, sent[8] = {0}, got[8] = {0}, total = nclients * per, done = 0;
    msgpack_sbuffer sb, req;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&req);
    for (int round = 0; done < total && round < 1000000; round++) {
        for (int c = 0; c < nclients; c++) {
            while (sent[c] < per && sent[c] - got[c] < window) {
                char rid[64];
                snprintf(rid, sizeof rid, "%s-%d-%d", prefix, c, sent[c]);
                msgpack_sbuffer_clear(&sb);
                msgpack_packer pk;
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                char body[512];
                snprintf(body, sizeof body,
                         "{\"case_no\": \"%s\", \"matter_code\": \"PEN-1\", \"opened_on\": "
                         "\"2019-09-27\", \"on_site\": true, \"officers\": [\"A001\", "
                         "\"A002\"], \"party\": " PARTY_ORG "}",
                         rid, s_uscc());
                json_t *j = json_loads(body, 0, NULL);
                s_pack_json(&pk, j);
                json_decref(j);
                assert_int_equal(rpc_request_pack(&req, "case.open", rid, sb.data, sb.size), 0);
                if (rpc_client_send(cl[c], req.data, req.size) < 0)
                    break;
                sent[c]++;
            }
            rpc_reply_t r;
            evmsg_err_t err = {{0}, {0}};
            while (rpc_client_recv(cl[c], 0, &r, &err) == 1) {
                if (!r.ok)
                    fail_msg("burst %s: %s %s", r.rid, r.code, r.en);
                got[c]++;
                done++;
                rpc_reply_clear(&r);
            }
        }
        zmq_pollitem_t items[8];
        for (int c = 0; c < nclients; c++)
            items[c] = (zmq_pollitem_t){rpc_client_socket(cl[c]), 0, ZMQ_POLLIN, 0};
        if (done < total)
            zmq_poll(items, nclients, 50);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&req);
    assert_int_equal(done, total);
    for (int c = 1; c < nclients; c++)
        rpc_client_destroy(&cl[c]);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static void
test_batch_of_300_opens(void **state)
{
    fx_t *fx = *state;
    s_pause(fx);
    rpc_stats_t before = rpc_server_stats(fx->srv);
    s_resume(fx);
    s_burst(fx, 4, 75, "bt");
    s_pause(fx);
    rpc_stats_t after = rpc_server_stats(fx->srv);
    s_resume(fx);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases"), 300);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.cases WHERE met_on IS NULL"),
                     300);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM intake.outbox WHERE topic LIKE "
                                      "'case.opened.%'"),
                     300);
    assert_int_equal(s_count(fx->chk, "SELECT count(DISTINCT id) FROM intake.cases"), 300);
    uint64_t tx = after.transactions - before.transactions;
    printf("  300 case.open: %" PRIu64 " transactions, largest batch %" PRIu64 "\n", tx,
           after.max_batch);
    assert_true(tx <= 60);
    assert_true(after.max_batch >= 10);
    /* Optional throughput figure: CASE_OPS_BENCH=N opens N more. */
    const char *bench = getenv("CASE_OPS_BENCH");
    if (bench && atoi(bench) > 0) {
        int per = atoi(bench) / 4;
        double ms = s_burst(fx, 4, per, "bench");
        printf("  bench: %d case.open in %.0f ms = %.0f acks/s\n", per * 4, ms,
               per * 4 / (ms / 1000.0));
    }
}

/* ---- Pure parts ----------------------------------------------------------------------- */

static void
test_deadline_rules(void **state)
{
    fx_t *fx = *state;
    date_t due, warn;
    bool unc;
    assert_int_equal(
        case_deadline(fx->cal, date_from_ymd(2019, 9, 27), 7, "workday", &due, &warn, &unc), 0);
    assert_int_equal(due, date_from_ymd(2019, 10, 12));
    assert_int_equal(warn, date_from_ymd(2019, 10, 9));
    assert_false(unc);
    assert_int_equal(
        case_deadline(fx->cal, date_from_ymd(2021, 7, 15), 90, "day", &due, &warn, &unc), 0);
    assert_int_equal(due, date_from_ymd(2021, 10, 13));
    /* A 1-day limit warns from the start. */
    assert_int_equal(
        case_deadline(fx->cal, date_from_ymd(2021, 7, 15), 1, "workday", &due, &warn, &unc), 0);
    assert_int_equal(warn, date_from_ymd(2021, 7, 15));
    assert_int_equal(
        case_deadline(fx->cal, date_from_ymd(2021, 7, 15), 1, "hour", &due, &warn, &unc), -1);
    char en[200], zh[200];
    assert_null(decision_gate_refusal(GATE_APPROVED, 1, en, sizeof en, zh, sizeof zh));
    assert_string_equal(en, "");
    assert_string_equal(decision_gate_refusal(GATE_PENDING, 2, en, sizeof en, zh, sizeof zh),
                        "review_pending");
    assert_string_equal(decision_gate_refusal(GATE_RETURNED, 2, en, sizeof en, zh, sizeof zh),
                        "review_required");
    assert_true(decision_gate_allows(GATE_NOT_REQUIRED));
    assert_false(decision_gate_allows(GATE_PENDING));
}

/* case.decide meets the deadline in the case's own update. When the deadline timers
 * (deadlines.c) hold the case's row (a warning being emitted: warned_at) as case.decide
 * comes, case.decide waits for them, then sets met_on and keeps warned_at. */
typedef struct {
    db_t *chk, *blocker;
    char pid[16];
    bool waited;
} s_blocker_t;

static void *
s_commit_when_waited_on(void *arg)
{
    s_blocker_t *bl = arg;
    char sql[200], b[64];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
             bl->pid);
    for (int i = 0; i < 1000 && !bl->waited; i++) { /* at most 10 s */
        PGresult *r = db_query(bl->chk, sql, 0, NULL);
        snprintf(b, sizeof b, "%s", r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "0");
        PQclear(r);
        bl->waited = atoi(b) > 0;
        if (!bl->waited)
            usleep(10000);
    }
    PGresult *r = db_query(bl->blocker, "COMMIT", 0, NULL);
    PQclear(r);
    return NULL;
}

static void
test_deadline_met_after_warning(void **state)
{
    fx_t *fx = *state;
    int64_t id = s_open(fx, "MOVED-1", "PEN-1", "2019-09-27");
    json_t *j = s_ok(fx->ca, "case.propose", "mv-prop",
                     "{\"case_no\": \"MOVED-1\", \"category\": \"罚款\", \"content\": "
                     "\"罚款五千元\", \"fine\": \"0.5\", \"legal_basis\": \"第十三条\"}");
    json_decref(j);
    s_blocker_t bl = {.chk = fx->chk, .blocker = db_new(fx->url, "intake-blocker")};
    assert_int_equal(db_connect(bl.blocker, 5000), 0);
    s_one(bl.blocker, "SELECT pg_backend_pid()", bl.pid, sizeof bl.pid);
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE intake.cases SET warned_at = now() WHERE id = %" PRId64, id);
    ts_sql(bl.blocker, "BEGIN");
    ts_sql(bl.blocker, sql);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_commit_when_waited_on, &bl), 0);
    j = s_ok(fx->ca, "case.decide", "mv-dec",
             "{\"case_id\": %" PRId64 ", \"decision_no\": \"罚决〔2019〕9号\", "
             "\"decision_date\": \"2019-10-20\"}",
             id);
    pthread_join(t, NULL);
    assert_true(bl.waited); /* case.decide did wait for the deadline's transaction */
    assert_string_equal(s_jstr(j, "state"), "decided");
    json_decref(j);
    char b[64];
    snprintf(sql, sizeof sql,
             "SELECT met_on || '/' || (warned_at IS NOT NULL) FROM intake.cases"
             " WHERE id = %" PRId64,
             id);
    assert_string_equal(s_one(fx->chk, sql, b, sizeof b), "2019-10-20/true");
    db_destroy(&bl.blocker);
}

int
main(void)
{
    log_init("test-case-ops", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deadline_rules, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_computes_deadline_and_emits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repeated_rid_same_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_penalty_life_and_wrong_state, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_decision_gate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_discretion_band, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_inspection, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_other_agency_forbidden, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_case_no_repeated_in_one_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_same_case_in_one_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_events_since, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_of_300_opens, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_deadline_met_after_warning, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
