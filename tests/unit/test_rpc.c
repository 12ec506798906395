/* rpc: the request/reply door against a real PostgreSQL and a real CURVE ROUTER behind
 * the ZAP handler, with DEALER and REQ clients. The test service has two write ops
 * (note.add, which inserts a row; note.admin, for services only) and one read op
 * (note.count). The server runs in its own thread, as it would in a service's loop. */
#include <errno.h>
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
#include <msgpack.h>
#include <zmq.h>

#include "ident.h"
#include "keys.h"
#include "log.h"
#include "rpc.h"
#include "tsupport.h"
#include "zsock.h"

typedef struct {
    char pub[41], sec[41];
} s_pair_t;

typedef struct {
    char *url;
    db_t *srv_db; /* the server's connection (used only by the server thread) */
    db_t *chk;    /* the test's own */
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    pthread_t thread;
    atomic_bool stop, paused;
    atomic_int max_batch_seen; /* largest note.add batch the handler saw */
    pthread_mutex_t trail_mu;  /* seq.a / seq.b calls: which call handled which rid */
    int calls;
    int ntrail;
    struct {
        char rid[RPC_RID_MAX + 1];
        int call, pos;
    } trail[256];
    s_pair_t server, dept, svc, stranger;
    char code[19];
    char dept_id[64];
} fx_t;

/* ---- The test service ------------------------------------------------------------ */

static void
s_pack_id(rpc_req_t *req, int64_t id)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_int64(&pk, id);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* note.add {text: str+ <= 100}: "invalid" is refused by the handler (bad_text), "boom"
 * breaks the INSERT (a CHECK constraint): the batch must survive both. */
static int
s_note_add(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    fx_t *fx = arg;
    if ((int)n > atomic_load(&fx->max_batch_seen))
        atomic_store(&fx->max_batch_seen, (int)n);
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(reqs[i], &err);
        static const char *const keys[] = {"text", NULL};
        char text[101];
        evmsg_map_only(&body, keys);
        evmsg_map_str(&body, "text", EVMSG_REQUIRED | EVMSG_NONEMPTY, 100, text);
        if (err.reason[0]) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        if (strcmp(text, "invalid") == 0) {
            rpc_fail(reqs[i], "bad_text", "body.text", "内容无效", "text is invalid");
            continue;
        }
        const char *v[3] = {rpc_req_identity(reqs[i]), rpc_req_rid(reqs[i]), text};
        PGresult *r = db_exec_prepared(db, "note_ins", 3, v, NULL, NULL, 0);
        if (!r)
            return -1;
        s_pack_id(reqs[i], atoll(PQgetvalue(r, 0, 0)));
        PQclear(r);
    }
    return 0;
}

/* note.admin {}: services only; answers ok {} (no outcome set). */
static int
s_note_admin(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)db, (void)reqs, (void)n, (void)arg;
    return 0;
}

/* note.count {}: a read. */
static int
s_note_count(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    PGresult *r = db_query(db, "SELECT count(*) FROM svc1.notes", 0, NULL);
    if (!r)
        return -1;
    int64_t c = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (size_t i = 0; i < n; i++)
        s_pack_id(reqs[i], c);
    return 0;
}

/* seq.a, seq.b {k?: str}: ordered by k (rpc_order_key); each call and the rids it got
 * are written down in the trail. */
static int
s_seq(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)db;
    fx_t *fx = arg;
    pthread_mutex_lock(&fx->trail_mu);
    int call = ++fx->calls;
    for (size_t i = 0; i < n && fx->ntrail < 256; i++) {
        snprintf(fx->trail[fx->ntrail].rid, sizeof fx->trail[0].rid, "%s", rpc_req_rid(reqs[i]));
        fx->trail[fx->ntrail].call = call;
        fx->trail[fx->ntrail++].pos = (int)i;
    }
    pthread_mutex_unlock(&fx->trail_mu);
    return 0;
}

static void *
s_server_thread(void *arg)
{
    fx_t *fx = arg;
    while (!atomic_load(&fx->stop)) {
        if (atomic_load(&fx->paused)) {
            usleep(2000);
            continue;
        }
        rpc_server_poll(fx->srv, 20);
    }
    return NULL;
}

/* ---- Fixture ----------------------------------------------------------------------- */

static long long
s_count(db_t *db, const char *sql)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->url = ts_fresh_db("rpc");
    fx->srv_db = db_new(fx->url, "rpc-server");
    fx->chk = db_new(fx->url, "rpc-check");
    assert_int_equal(db_connect(fx->srv_db, 5000), 0);
    assert_int_equal(db_connect(fx->chk, 5000), 0);
    db_set_reconnect_wait(fx->srv_db, 1000);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", ts_env("SX_TOP"));
    if (rpc_migrate(fx->srv_db, "svc1", dir) != 1)
        fail_msg("rpc_migrate: %s", db_error(fx->srv_db));
    assert_int_equal(rpc_migrate(fx->srv_db, "svc1", dir), 0);
    PGresult *r =
        db_query(fx->chk,
                 "CREATE TABLE svc1.notes (id bigserial PRIMARY KEY, identity text NOT NULL,"
                 " rid text NOT NULL, text text NOT NULL CHECK (text <> 'boom'))",
                 0, NULL);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(db_prepare(fx->srv_db, "note_ins",
                                "INSERT INTO svc1.notes (identity, rid, text) VALUES ($1, $2, $3)"
                                " RETURNING id",
                                3),
                     0);

    assert_int_equal(keys_keypair(fx->server.pub, fx->server.sec), 0);
    assert_int_equal(keys_keypair(fx->dept.pub, fx->dept.sec), 0);
    assert_int_equal(keys_keypair(fx->svc.pub, fx->svc.sec), 0);
    assert_int_equal(keys_keypair(fx->stranger.pub, fx->stranger.sec), 0);
    memcpy(fx->code, "91110000100000000", 17);
    fx->code[17] = ident_uscc_check_char(fx->code);
    snprintf(fx->dept_id, sizeof fx->dept_id, "dept:%s:officer", fx->code);
    char text[512], err[256];
    snprintf(text, sizeof text, "# rpc test keys\n%s %s\n%s svc:tester\n", fx->dept.pub,
             fx->dept_id, fx->svc.pub);
    char *path = ts_write_tmp("rpc-keys", text);
    keys_t *keys = keys_load(path, err, sizeof err);
    free(path);
    if (!keys)
        fail_msg("keys_load: %s", err);

    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    assert_non_null(fx->zap);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "svc1", "svc:"), 0);
    assert_int_equal(zap_allow(fx->zap, "svc1", "dept:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "svc1", fx->server.sec, "tcp://127.0.0.1:*",
                             fx->srv_db, "svc1", err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"note.add", RPC_WRITE, "dept:*:officer svc:tester",
                                          s_note_add, fx}),
        0);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"note.admin", RPC_WRITE, "svc:tester", s_note_admin, fx}),
        0);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"note.count", RPC_READ, "svc: dept:", s_note_count, fx}),
        0);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"seq.a", RPC_WRITE, "svc: dept:", s_seq, fx}), 0);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"seq.b", RPC_WRITE, "svc: dept:", s_seq, fx}), 0);
    assert_int_equal(rpc_order_key(fx->srv, "seq.a", "k"), 0);
    assert_int_equal(rpc_order_key(fx->srv, "seq.b", "k"), 0);
    assert_int_equal(rpc_order_key(fx->srv, "seq.none", "k"), -1);
    assert_int_equal(rpc_order_key(fx->srv, "seq.a", ""), -1);
    pthread_mutex_init(&fx->trail_mu, NULL);
    /* Malformed registrations are refused. */
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"note.add", RPC_WRITE, "svc:", s_note_add, fx}), -1);
    assert_int_equal(rpc_register(fx->srv, &(rpc_op_t){"Bad", RPC_WRITE, "svc:", s_note_add, fx}),
                     -1);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"x.y", RPC_WRITE | RPC_READ, "svc:", s_note_add, fx}),
        -1);
    assert_int_equal(rpc_register(fx->srv, &(rpc_op_t){"x.y", RPC_WRITE, "", s_note_add, fx}), -1);
    assert_int_equal(rpc_register(fx->srv, &(rpc_op_t){"x.y", RPC_WRITE, "anyone", s_note_add, fx}),
                     -1);
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
    rpc_server_destroy(&fx->srv); /* idempotent */
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    db_destroy(&fx->srv_db);
    db_destroy(&fx->chk);
    free(fx->url);
    free(fx);
    return 0;
}

/* ---- Client helpers ---------------------------------------------------------------- */

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

/* A raw socket (DEALER or REQ) for hand-made frames. */
static void *
s_raw(fx_t *fx, int type, const s_pair_t *me)
{
    char err[256];
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    void *s = zsock_client(fx->ctx, type, fx->server.pub, me->pub, me->sec, &lim, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(zsock_connect(s, rpc_server_endpoint(fx->srv), err, sizeof err), 0);
    return s;
}

/* Receives one multipart message within timeout_ms: the frames' count into *nframes,
 * the last frame into buf. Returns its length, or -1 on timeout. */
static int
s_raw_recv(void *s, int timeout_ms, char *buf, size_t size, int *nframes)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return -1;
    int n = 0, len = -1, more = 1;
    while (more) {
        len = zmq_recv(s, buf, size, 0);
        assert_true(len >= 0 && (size_t)len <= size);
        n++;
        size_t ms = sizeof more;
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ms);
    }
    if (nframes)
        *nframes = n;
    return len;
}

/* Packs {text: text} (or {} when text is NULL) into sb. */
static void
s_body(msgpack_sbuffer *sb, const char *text)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (!text) {
        msgpack_pack_map(&pk, 0);
        return;
    }
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "text", 4);
    msgpack_pack_str_with_body(&pk, text, strlen(text));
}

/* One call; fails the test when there is no reply. */
static void
s_call(rpc_client_t *c, const char *op, const char *rid, const char *text, rpc_reply_t *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_body(&sb, text);
    evmsg_err_t err = {{0}, {0}};
    int rc = rpc_call(c, op, rid, sb.data, sb.size, 3000, 2, out, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
        fail_msg("rpc_call %s %s: %s", op, rid, err.reason);
}

/* The id in a result {id: n}. */
static int64_t
s_result_id(const rpc_reply_t *r)
{
    assert_true(r->ok);
    evmsg_t *m = NULL;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_decode_map(r->result, r->result_len, &m, &err), 0);
    evmsg_map_t root = evmsg_data(m, &err);
    int64_t id = -1;
    assert_int_equal(evmsg_map_int(&root, "id", EVMSG_REQUIRED, 0, INT64_MAX, &id), 1);
    evmsg_destroy(&m);
    return id;
}

static long long
s_notes(fx_t *fx, const char *rid)
{
    const char *v[1] = {rid};
    PGresult *r = db_query(fx->chk, "SELECT count(*) FROM svc1.notes WHERE rid = $1", 1, v);
    assert_non_null(r);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static long long
s_stored(fx_t *fx, const char *rid)
{
    const char *v[1] = {rid};
    PGresult *r = db_query(fx->chk, "SELECT count(*) FROM svc1.rpc_reply WHERE rid = $1", 1, v);
    assert_non_null(r);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void
s_expect_error(const rpc_reply_t *r, const char *code, const char *field)
{
    if (r->ok || strcmp(r->code, code) != 0 || strcmp(r->field, field) != 0)
        fail_msg("expected %s at '%s', got ok=%d %s at '%s' (%s)", code, field, r->ok, r->code,
                 r->field, r->en);
    assert_true(r->zh[0] != '\0');
    assert_true(r->en[0] != '\0');
}

/* ---- Tests ------------------------------------------------------------------------- */

static void
test_happy_path_dealer_and_req(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->dept);
    rpc_reply_t rep;
    s_call(c, "note.add", "happy-1", "第一条", &rep);
    assert_string_equal(rep.rid, "happy-1");
    int64_t id = s_result_id(&rep);
    assert_true(id > 0);
    rpc_reply_clear(&rep);
    rpc_reply_clear(&rep); /* idempotent */
    assert_int_equal(s_notes(fx, "happy-1"), 1);
    /* The identity is the key's, from ZAP. */
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM svc1.notes WHERE rid = 'happy-1'"
                                      " AND identity LIKE 'dept:%:officer'"),
                     1);

    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    s_body(&body, "via REQ");
    assert_int_equal(rpc_request_pack(&req, "note.add", "happy-req", body.data, body.size), 0);
    char buf[4096];
    int nf = 0;

    /* REQ: [][payload] on the wire; the reply comes back through REQ's envelope. */
    void *rq = s_raw(fx, ZMQ_REQ, &fx->dept);
    assert_int_equal(zmq_send(rq, req.data, req.size, 0), (int)req.size);
    int len = s_raw_recv(rq, 3000, buf, sizeof buf, &nf);
    assert_true(len > 0);
    assert_int_equal(nf, 1);
    rpc_reply_t r2;
    assert_int_equal(rpc_reply_decode(buf, (size_t)len, &r2, NULL), 0);
    assert_string_equal(r2.rid, "happy-req");
    assert_true(s_result_id(&r2) > id);
    rpc_reply_clear(&r2);
    zsock_close(&rq);

    /* DEALER with a delimiter: the reply has one too. */
    void *dl = s_raw(fx, ZMQ_DEALER, &fx->dept);
    assert_int_equal(rpc_request_pack(&req, "note.add", "happy-delim", body.data, body.size), 0);
    zmq_send(dl, "", 0, ZMQ_SNDMORE);
    zmq_send(dl, req.data, req.size, 0);
    len = s_raw_recv(dl, 3000, buf, sizeof buf, &nf);
    assert_true(len > 0);
    assert_int_equal(nf, 2);
    assert_int_equal(rpc_reply_decode(buf, (size_t)len, &r2, NULL), 0);
    assert_true(r2.ok);
    rpc_reply_clear(&r2);
    /* A bare DEALER: one frame back. */
    assert_int_equal(rpc_request_pack(&req, "note.count", "happy-count", NULL, 0), 0);
    zmq_send(dl, req.data, req.size, 0);
    len = s_raw_recv(dl, 3000, buf, sizeof buf, &nf);
    assert_int_equal(nf, 1);
    assert_int_equal(rpc_reply_decode(buf, (size_t)len, &r2, NULL), 0);
    assert_int_equal(s_result_id(&r2), 3);
    rpc_reply_clear(&r2);
    zsock_close(&dl);

    /* Request packing refuses what the server would. */
    assert_int_equal(rpc_request_pack(&req, "Note", "r", NULL, 0), -1);
    assert_int_equal(rpc_request_pack(&req, "note.add", "has space", NULL, 0), -1);
    assert_int_equal(rpc_request_pack(&req, "note.add", "r", "\x01", 1), -1);
    msgpack_sbuffer_destroy(&req);
    msgpack_sbuffer_destroy(&body);
    rpc_client_destroy(&c);
    rpc_client_destroy(&c);
}

static void
test_identity_and_permissions(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *dept = s_client(fx, &fx->dept);
    rpc_client_t *svc = s_client(fx, &fx->svc);
    rpc_reply_t rep;
    s_call(dept, "note.admin", "perm-1", NULL, &rep);
    s_expect_error(&rep, "forbidden", "op");
    assert_string_equal(rep.rid, "perm-1");
    rpc_reply_clear(&rep);
    assert_int_equal(s_stored(fx, "perm-1"), 0);
    s_call(svc, "note.admin", "perm-1", NULL, &rep);
    assert_true(rep.ok);
    assert_int_equal(rep.result_len, 1); /* {} */
    rpc_reply_clear(&rep);
    s_call(svc, "note.count", "perm-2", NULL, &rep);
    assert_true(rep.ok);
    rpc_reply_clear(&rep);
    s_call(svc, "note.add", "perm-3", "from a service", &rep);
    assert_true(rep.ok);
    rpc_reply_clear(&rep);
    assert_int_equal(
        s_count(fx->chk, "SELECT count(*) FROM svc1.notes WHERE identity = 'svc:tester'"), 1);

    /* A key that is not in the key file: no connection, so no reply. */
    rpc_client_t *stranger = s_client(fx, &fx->stranger);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_body(&sb, "intruder");
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(rpc_call(stranger, "note.add", "perm-4", sb.data, sb.size, 300, 2, &rep, &err),
                     -1);
    assert_non_null(strstr(err.reason, "timeout"));
    assert_int_equal(s_notes(fx, "perm-4"), 0);
    msgpack_sbuffer_destroy(&sb);
    rpc_client_destroy(&stranger);
    rpc_client_destroy(&dept);
    rpc_client_destroy(&svc);
}

/* Sends a hand-packed payload from a DEALER and decodes the reply. */
static void
s_raw_call(void *s, const void *payload, size_t len, rpc_reply_t *out)
{
    assert_int_equal(zmq_send(s, payload, len, 0), (int)len);
    char buf[8192];
    int n = s_raw_recv(s, 3000, buf, sizeof buf, NULL);
    assert_true(n > 0);
    evmsg_err_t err = {{0}, {0}};
    if (rpc_reply_decode(buf, (size_t)n, out, &err) < 0)
        fail_msg("reply: %s %s", err.path, err.reason);
}

/* Packs a request map from (key, kind, value) triples: kind 's' string, 'i' int,
 * 'm' empty map, 'n' nil. */
static void
s_pack_req(msgpack_sbuffer *sb, int nkeys, ...)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)nkeys);
    va_list ap;
    va_start(ap, nkeys);
    for (int i = 0; i < nkeys; i++) {
        const char *k = va_arg(ap, const char *);
        int kind = va_arg(ap, int);
        const char *v = va_arg(ap, const char *);
        msgpack_pack_str_with_body(&pk, k, strlen(k));
        if (kind == 's')
            msgpack_pack_str_with_body(&pk, v, strlen(v));
        else if (kind == 'i')
            msgpack_pack_int(&pk, 5);
        else if (kind == 'm')
            msgpack_pack_map(&pk, 0);
        else
            msgpack_pack_nil(&pk);
    }
    va_end(ap);
}

static void
test_bad_requests(void **state)
{
    fx_t *fx = *state;
    void *s = s_raw(fx, ZMQ_DEALER, &fx->dept);
    rpc_reply_t r;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);

    s_raw_call(s, "\xc1", 1, &r);
    s_expect_error(&r, "bad_request", "");
    assert_true(r.rid_nil);
    rpc_reply_clear(&r);
    s_raw_call(s, "\x93\x01\x02\x03", 4, &r); /* an array, not a map */
    s_expect_error(&r, "bad_request", "");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 2, "rid", 's', "bad-1", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "missing_field", "op");
    assert_string_equal(r.rid, "bad-1");
    assert_string_equal(r.zh, "缺少必填字段");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 2, "op", 's', "note.add", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "missing_field", "rid");
    assert_true(r.rid_nil);
    rpc_reply_clear(&r);

    s_pack_req(&sb, 3, "op", 's', "note.add", "rid", 's', "bad-2", "body", 'i', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "bad_field", "body");
    assert_string_equal(r.en, "expected map");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 2, "op", 's', "note.add", "rid", 's', "bad-2b");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "missing_field", "body");
    rpc_reply_clear(&r);

    char long_rid[80];
    memset(long_rid, 'r', 65);
    long_rid[65] = '\0';
    s_pack_req(&sb, 3, "op", 's', "note.add", "rid", 's', long_rid, "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "too_large", "rid");
    assert_string_equal(r.zh, "长度超过 64 字节");
    assert_true(r.rid_nil);
    rpc_reply_clear(&r);

    s_pack_req(&sb, 3, "op", 's', "note.add", "rid", 's', "has space", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "bad_field", "rid");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 3, "op", 's', "note.nope", "rid", 's', "bad-3", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "unknown_op", "op");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 3, "op", 's', "Note!", "rid", 's', "bad-3b", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "bad_field", "op");
    rpc_reply_clear(&r);

    s_pack_req(&sb, 4, "op", 's', "note.add", "rid", 's', "bad-4", "body", 'm', "", "extra", 'n',
               "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "unknown_field", "extra");
    rpc_reply_clear(&r);

    /* The handler's own refusals: through evmsg, and its own code; both stored. */
    s_pack_req(&sb, 3, "op", 's', "note.add", "rid", 's', "bad-5", "body", 'm', "");
    s_raw_call(s, sb.data, sb.size, &r);
    s_expect_error(&r, "missing_field", "body.text");
    rpc_reply_clear(&r);
    assert_int_equal(s_stored(fx, "bad-5"), 1);
    rpc_client_t *c = s_client(fx, &fx->dept);
    s_call(c, "note.add", "bad-6", "invalid", &r);
    s_expect_error(&r, "bad_text", "body.text");
    assert_string_equal(r.zh, "内容无效");
    rpc_reply_clear(&r);
    s_call(c, "note.add", "bad-6", "invalid", &r); /* the stored error again */
    s_expect_error(&r, "bad_text", "body.text");
    rpc_reply_clear(&r);
    assert_int_equal(s_notes(fx, "bad-6"), 0);
    /* Nothing above that failed before the handler was stored. */
    assert_int_equal(s_stored(fx, "bad-1") + s_stored(fx, "bad-2") + s_stored(fx, "bad-3") +
                         s_stored(fx, "bad-4"),
                     0);

    /* zh renderings. */
    char zh[64];
    assert_string_equal(rpc_zh_reason("expected string", zh, sizeof zh), "bad_field");
    assert_string_equal(zh, "类型错误：应为字符串");
    assert_string_equal(rpc_zh_reason("more than 20 elements", zh, sizeof zh), "too_large");
    assert_string_equal(zh, "元素个数超过 20");
    assert_string_equal(rpc_zh_reason("something new", zh, sizeof zh), "bad_field");
    assert_string_equal(zh, "字段无效");
    msgpack_sbuffer_destroy(&sb);
    rpc_client_destroy(&c);
    zsock_close(&s);
}

static void
test_repeated_rid(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *dept = s_client(fx, &fx->dept);
    rpc_client_t *svc = s_client(fx, &fx->svc);
    rpc_reply_t a, b;
    s_call(dept, "note.add", "rep-1", "once", &a);
    s_call(dept, "note.add", "rep-1", "once", &b);
    assert_int_equal(a.result_len, b.result_len);
    assert_memory_equal(a.result, b.result, a.result_len);
    assert_int_equal(s_notes(fx, "rep-1"), 1);
    int64_t id = s_result_id(&a);
    rpc_reply_clear(&a);
    rpc_reply_clear(&b);
    rpc_stats_t st = rpc_server_stats(fx->srv);
    assert_true(st.replays >= 1);

    /* Same rid, another payload: refused, the stored reply stays. */
    s_call(dept, "note.add", "rep-1", "twice?", &a);
    s_expect_error(&a, "rid_reused", "rid");
    rpc_reply_clear(&a);
    assert_int_equal(s_notes(fx, "rep-1"), 1);
    s_call(dept, "note.add", "rep-1", "once", &a);
    assert_int_equal(s_result_id(&a), id);
    rpc_reply_clear(&a);

    /* Same rid, another identity: another request. */
    s_call(svc, "note.add", "rep-1", "once", &a);
    assert_true(s_result_id(&a) != id);
    rpc_reply_clear(&a);
    assert_int_equal(s_notes(fx, "rep-1"), 2);
    rpc_client_destroy(&dept);
    rpc_client_destroy(&svc);
}

/* Stored replies older than the retention are deleted, by rpc_server_prune and by the
 * turns themselves; a rid resent after that runs again, a younger one is still replayed. */
static void
test_stored_replies_pruned_after_retention(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *dept = s_client(fx, &fx->dept);
    rpc_reply_t a;
    atomic_store(&fx->paused, true);
    usleep(30000); /* the server thread leaves the server alone */
    assert_int_equal(rpc_set_retention(fx->srv, RPC_KEEP_DAYS_MIN - 1), -1);
    assert_int_equal(rpc_set_retention(fx->srv, RPC_KEEP_DAYS_MAX + 1), -1);
    assert_int_equal(rpc_set_retention(fx->srv, RPC_KEEP_DAYS_MIN), 0);
    atomic_store(&fx->paused, false);
    const char *rids[] = {"keep-old-1", "keep-old-2", "keep-young"};
    int64_t ids[3];
    for (int i = 0; i < 3; i++) {
        s_call(dept, "note.add", rids[i], "kept?", &a);
        ids[i] = s_result_id(&a);
        rpc_reply_clear(&a);
    }
    ts_sql(fx->chk, "UPDATE svc1.rpc_reply SET created_at = now() - interval '8 days' "
                    "WHERE rid IN ('keep-old-1', 'keep-old-2')");
    ts_sql(fx->chk, "UPDATE svc1.rpc_reply SET created_at = now() - interval '6 days' "
                    "WHERE rid = 'keep-young'");

    atomic_store(&fx->paused, true);
    usleep(30000);
    uint64_t before = rpc_server_stats(fx->srv).pruned;
    assert_int_equal(rpc_server_prune(fx->srv), 2);
    assert_int_equal(rpc_server_prune(fx->srv), 0);
    assert_int_equal(rpc_server_stats(fx->srv).pruned, before + 2);
    atomic_store(&fx->paused, false);
    assert_int_equal(s_stored(fx, "keep-old-1"), 0);
    assert_int_equal(s_stored(fx, "keep-young"), 1);

    /* Pruned: the same bytes run again. Young: replayed. */
    s_call(dept, "note.add", "keep-old-1", "kept?", &a);
    assert_true(s_result_id(&a) != ids[0]);
    rpc_reply_clear(&a);
    assert_int_equal(s_notes(fx, "keep-old-1"), 2);
    s_call(dept, "note.add", "keep-young", "kept?", &a);
    assert_int_equal(s_result_id(&a), ids[2]);
    rpc_reply_clear(&a);
    assert_int_equal(s_notes(fx, "keep-young"), 1);

    /* The turns prune by themselves, every RPC_PRUNE_EVERY_MS. */
    ts_sql(fx->chk, "UPDATE svc1.rpc_reply SET created_at = now() - interval '9 days' "
                    "WHERE rid = 'keep-old-1'");
    char rid[32];
    for (int i = 0; i < 2 * RPC_PRUNE_EVERY_MS / 250 && s_stored(fx, "keep-old-1"); i++) {
        snprintf(rid, sizeof rid, "keep-tick-%d", i);
        s_call(dept, "note.add", rid, "tick", &a);
        rpc_reply_clear(&a);
        usleep(250000);
    }
    assert_int_equal(s_stored(fx, "keep-old-1"), 0);
    assert_int_equal(s_stored(fx, "keep-young"), 1);
    rpc_client_destroy(&dept);
}

/* Sends count requests at once from one DEALER while the server is paused, then lets it
 * run and collects every reply (by rid) within 10 s. texts[i] is request i's text. */
static void
s_burst(fx_t *fx, rpc_client_t *c, int count, const char *prefix,
        const char *(*text_of)(int i, char *buf), rpc_reply_t *replies, double *ms)
{
    msgpack_sbuffer body, req;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&req);
    atomic_store(&fx->paused, true);
    usleep(30000); /* let a turn in progress finish */
    for (int i = 0; i < count; i++) {
        char rid[64], tb[64];
        snprintf(rid, sizeof rid, "%s-%d", prefix, i);
        s_body(&body, text_of(i, tb));
        assert_int_equal(rpc_request_pack(&req, "note.add", rid, body.data, body.size), 0);
        assert_int_equal(rpc_client_send(c, req.data, req.size), 0);
    }
    usleep(200000); /* all of them into the server's queue */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&fx->paused, false);
    int got = 0;
    for (int spins = 0; got < count && spins < 2 * count + 100; spins++) {
        rpc_reply_t r;
        evmsg_err_t err = {{0}, {0}};
        int rc = rpc_client_recv(c, 10000, &r, &err);
        if (rc <= 0)
            fail_msg("burst: %d of %d replies (%s)", got, count, err.reason);
        int i = atoi(r.rid + strlen(prefix) + 1);
        assert_true(i >= 0 && i < count);
        if (replies[i].rid[0] == '\0')
            got++;
        rpc_reply_clear(&replies[i]);
        replies[i] = r;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_int_equal(got, count);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&req);
}

static const char *
s_text_batch(int i, char *buf)
{
    if (i % 100 == 7)
        return "invalid";
    snprintf(buf, 64, "note %d", i);
    return buf;
}

static void
test_batch_of_300(void **state)
{
    fx_t *fx = *state;
    enum { N = 300 };
    rpc_client_t *c = s_client(fx, &fx->dept);
    rpc_reply_t *rep = calloc(N, sizeof *rep);
    rpc_stats_t before = rpc_server_stats(fx->srv);
    double ms = 0;
    s_burst(fx, c, N, "batch", s_text_batch, rep, &ms);
    rpc_stats_t after = rpc_server_stats(fx->srv);
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        if (i % 100 == 7) {
            s_expect_error(&rep[i], "bad_text", "body.text");
            refused++;
        } else {
            assert_true(rep[i].ok);
            ok++;
        }
        rpc_reply_clear(&rep[i]);
    }
    assert_int_equal(refused, 3);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM svc1.notes WHERE rid LIKE 'batch-%'"),
                     ok);
    assert_int_equal(
        s_count(fx->chk, "SELECT count(*) FROM svc1.rpc_reply WHERE rid LIKE 'batch-%'"), N);
    uint64_t tx = after.transactions - before.transactions;
    print_message("rpc: %d requests in %" PRIu64 " transactions, largest handler batch %d,"
                  " all replies in %.1f ms\n",
                  N, tx, atomic_load(&fx->max_batch_seen), ms);
    assert_true(atomic_load(&fx->max_batch_seen) > 1);
    assert_true(tx <= 10);

    /* The same burst again: every reply replayed, nothing new. */
    s_burst(fx, c, N, "batch", s_text_batch, rep, &ms);
    for (int i = 0; i < N; i++)
        rpc_reply_clear(&rep[i]);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM svc1.notes WHERE rid LIKE 'batch-%'"),
                     ok);
    assert_true(rpc_server_stats(fx->srv).replays - after.replays >= N);
    free(rep);
    rpc_client_destroy(&c);
}

/* One request of an ordering burst: sent by client c, op seq.a or seq.b, body {k: key}
 * or {} when key is NULL. */
typedef struct {
    int c;
    char op;
    const char *key;
} s_seq_req_t;

/* Sends reqs[0..n) (rids "<prefix>-<i>") while the server is paused, so that one turn
 * takes them all, and waits for every reply (each must be ok). Fills call[i] and pos[i]:
 * which handler call (counted from 1 in this burst) took request i, and where in it. */
static void
s_seq_burst(fx_t *fx, rpc_client_t **c, int nc, const s_seq_req_t *reqs, int n, const char *prefix,
            int *call, int *pos)
{
    pthread_mutex_lock(&fx->trail_mu);
    int calls0 = fx->calls;
    fx->ntrail = 0;
    pthread_mutex_unlock(&fx->trail_mu);
    atomic_store(&fx->paused, true);
    usleep(30000);
    msgpack_sbuffer body, req;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&req);
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer_clear(&body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, reqs[i].key ? 1 : 0);
        if (reqs[i].key) {
            msgpack_pack_str_with_body(&pk, "k", 1);
            msgpack_pack_str_with_body(&pk, reqs[i].key, strlen(reqs[i].key));
        }
        char rid[64];
        snprintf(rid, sizeof rid, "%s-%d", prefix, i);
        assert_int_equal(rpc_request_pack(&req, reqs[i].op == 'a' ? "seq.a" : "seq.b", rid,
                                          body.data, body.size),
                         0);
        assert_int_equal(rpc_client_send(c[reqs[i].c], req.data, req.size), 0);
    }
    usleep(200000); /* all of them into the server's queue */
    atomic_store(&fx->paused, false);
    for (int k = 0; k < nc; k++)
        for (int i = 0; i < n; i++) {
            if (reqs[i].c != k)
                continue;
            rpc_reply_t r;
            assert_int_equal(rpc_client_recv(c[k], 5000, &r, NULL), 1);
            assert_true(r.ok);
            rpc_reply_clear(&r);
        }
    pthread_mutex_lock(&fx->trail_mu);
    assert_int_equal(fx->ntrail, n);
    for (int i = 0; i < n; i++) {
        char rid[64];
        snprintf(rid, sizeof rid, "%s-%d", prefix, i);
        call[i] = 0;
        for (int t = 0; t < fx->ntrail; t++)
            if (strcmp(fx->trail[t].rid, rid) == 0) {
                call[i] = fx->trail[t].call - calls0;
                pos[i] = fx->trail[t].pos;
            }
        assert_true(call[i] > 0);
    }
    pthread_mutex_unlock(&fx->trail_mu);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&req);
}

/* Requests with different order keys share handler calls; one key's requests, and a
 * request without a key, keep their identity's arrival order; identities are
 * independent. */
static void
test_order_keys(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c[2] = {s_client(fx, &fx->dept), s_client(fx, &fx->svc)};
    int call[100], pos[100];

    /* 50 cases, each a then b, back to back on one connection: two calls, not 100. */
    s_seq_req_t many[100];
    static char keys[50][8];
    for (int k = 0; k < 50; k++) {
        snprintf(keys[k], sizeof keys[k], "K%d", k);
        many[2 * k] = (s_seq_req_t){0, 'a', keys[k]};
        many[2 * k + 1] = (s_seq_req_t){0, 'b', keys[k]};
    }
    rpc_stats_t before = rpc_server_stats(fx->srv);
    s_seq_burst(fx, c, 1, many, 100, "ok1", call, pos);
    assert_int_equal(rpc_server_stats(fx->srv).batches - before.batches, 2);
    for (int k = 0; k < 50; k++) {
        assert_int_equal(call[2 * k], 1);
        assert_int_equal(call[2 * k + 1], 2);
        assert_int_equal(pos[2 * k], k); /* arrival order within a call */
    }

    /* A request without a key is a barrier for its identity, not for another one. */
    const s_seq_req_t bar[] = {
        {0, 'a', "X"},  /* 0 */
        {0, 'b', "X"},  /* 1: after 0 */
        {0, 'a', NULL}, /* 2: after 1 (no key: passes nothing) */
        {0, 'a', "Y"},  /* 3: not before 2 (passes no keyless request) */
        {0, 'b', "Y"},  /* 4: after 3 */
        {1, 'a', "X"},  /* 5: the other identity: free of all the above */
    };
    s_seq_burst(fx, c, 2, bar, 6, "ok2", call, pos);
    assert_true(call[0] < call[1]);
    assert_true(call[1] < call[2]);
    assert_true(call[2] < call[3] || (call[2] == call[3] && pos[2] < pos[3]));
    assert_true(call[3] < call[4]);
    assert_int_equal(call[5], 1);       /* joined the first call of seq.a */
    assert_int_equal(call[2], call[3]); /* and the keyed a after the barrier joined it */
    rpc_client_destroy(&c[0]);
    rpc_client_destroy(&c[1]);
}

static const char *
s_text_poison(int i, char *buf)
{
    if (i == 5)
        return "boom";
    snprintf(buf, 64, "poison %d", i);
    return buf;
}

static void
test_poisoned_request_and_duplicates_in_a_batch(void **state)
{
    fx_t *fx = *state;
    enum { N = 16 };
    rpc_client_t *c = s_client(fx, &fx->dept);
    rpc_reply_t rep[N];
    memset(rep, 0, sizeof rep);
    rpc_stats_t before = rpc_server_stats(fx->srv);
    double ms;
    s_burst(fx, c, N, "poison", s_text_poison, rep, &ms);
    for (int i = 0; i < N; i++) {
        if (i == 5)
            s_expect_error(&rep[i], "internal", "");
        else
            assert_true(rep[i].ok);
        rpc_reply_clear(&rep[i]);
    }
    assert_int_equal(s_notes(fx, "poison-5"), 0);
    assert_int_equal(s_stored(fx, "poison-5"), 0);
    assert_int_equal(s_count(fx->chk, "SELECT count(*) FROM svc1.notes WHERE rid LIKE 'poison-%'"),
                     N - 1);
    assert_true(rpc_server_stats(fx->srv).splits > before.splits);

    /* Two requests with one rid in the same turn: one run, the same reply twice; a third
     * with that rid and another body: rid_reused. */
    msgpack_sbuffer body, req;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&req);
    atomic_store(&fx->paused, true);
    usleep(30000);
    for (int k = 0; k < 3; k++) {
        s_body(&body, k < 2 ? "same" : "other");
        assert_int_equal(rpc_request_pack(&req, "note.add", "dup-1", body.data, body.size), 0);
        assert_int_equal(rpc_client_send(c, req.data, req.size), 0);
    }
    usleep(200000);
    atomic_store(&fx->paused, false);
    rpc_reply_t r[3];
    for (int k = 0; k < 3; k++)
        assert_int_equal(rpc_client_recv(c, 5000, &r[k], NULL), 1);
    assert_true(r[0].ok && r[1].ok);
    assert_int_equal(s_result_id(&r[0]), s_result_id(&r[1]));
    s_expect_error(&r[2], "rid_reused", "rid");
    for (int k = 0; k < 3; k++)
        rpc_reply_clear(&r[k]);
    assert_int_equal(s_notes(fx, "dup-1"), 1);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&req);
    rpc_client_destroy(&c);
}

static void
test_database_down(void **state)
{
    fx_t *fx = *state;
    rpc_client_t *c = s_client(fx, &fx->dept);
    rpc_reply_t r;
    s_call(c, "note.add", "down-0", "warm", &r); /* the server's connection is up */
    rpc_reply_clear(&r);
    PGresult *res = db_query(fx->chk,
                             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE application_name = 'rpc-server'",
                             0, NULL);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);
    usleep(100000);
    s_call(c, "note.add", "down-1", "while down", &r);
    s_expect_error(&r, "unavailable", "");
    assert_string_equal(r.rid, "down-1");
    rpc_reply_clear(&r);
    assert_int_equal(s_notes(fx, "down-1"), 0);
    assert_int_equal(s_stored(fx, "down-1"), 0);
    /* The client resends the same rid: it runs once, and then only replays. */
    s_call(c, "note.add", "down-1", "while down", &r);
    int64_t id = s_result_id(&r);
    rpc_reply_clear(&r);
    s_call(c, "note.add", "down-1", "while down", &r);
    assert_int_equal(s_result_id(&r), id);
    rpc_reply_clear(&r);
    assert_int_equal(s_notes(fx, "down-1"), 1);
    rpc_client_destroy(&c);
}

static void
test_unframeable_messages_dropped(void **state)
{
    fx_t *fx = *state;
    uint64_t dropped = rpc_server_stats(fx->srv).dropped;
    void *s = s_raw(fx, ZMQ_DEALER, &fx->dept);
    /* three payload frames; two frames with a non-empty first */
    zmq_send(s, "a", 1, ZMQ_SNDMORE);
    zmq_send(s, "b", 1, ZMQ_SNDMORE);
    zmq_send(s, "c", 1, 0);
    zmq_send(s, "x", 1, ZMQ_SNDMORE);
    zmq_send(s, "\x80", 1, 0);
    char buf[256];
    assert_int_equal(s_raw_recv(s, 300, buf, sizeof buf, NULL), -1);
    for (int i = 0; i < 100 && rpc_server_stats(fx->srv).dropped < dropped + 2; i++)
        usleep(10000);
    assert_int_equal(rpc_server_stats(fx->srv).dropped, dropped + 2);
    /* An empty payload frame is a request that cannot be read: answered. */
    zmq_send(s, "", 0, 0);
    int len = s_raw_recv(s, 3000, buf, sizeof buf, NULL);
    assert_true(len > 0);
    rpc_reply_t r;
    assert_int_equal(rpc_reply_decode(buf, (size_t)len, &r, NULL), 0);
    s_expect_error(&r, "bad_request", "");
    rpc_reply_clear(&r);
    /* Still serving. */
    rpc_client_t *c = s_client(fx, &fx->dept);
    s_call(c, "note.add", "after-drop", "still here", &r);
    assert_true(r.ok);
    rpc_reply_clear(&r);
    rpc_client_destroy(&c);
    zsock_close(&s);
}

/* Not a benchmark (make bench-intake is): a one-second look at what the door itself
 * costs, with 256 write requests in flight that do nothing but store their replies. */
static void
test_throughput_glimpse(void **state)
{
    fx_t *fx = *state;
    enum { CLIENTS = 16, DEPTH = 16 };
    rpc_client_t *c[CLIENTS];
    for (int k = 0; k < CLIENTS; k++)
        c[k] = s_client(fx, &fx->svc);
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t sent = 0, acked = 0;
    double elapsed = 0;
    for (int k = 0; k < CLIENTS; k++)
        for (int d = 0; d < DEPTH; d++) {
            char rid[32];
            snprintf(rid, sizeof rid, "tp-%" PRIu64, sent++);
            assert_int_equal(rpc_request_pack(&req, "note.admin", rid, NULL, 0), 0);
            assert_int_equal(rpc_client_send(c[k], req.data, req.size), 0);
        }
    zmq_pollitem_t items[CLIENTS];
    for (int k = 0; k < CLIENTS; k++)
        items[k] = (zmq_pollitem_t){rpc_client_socket(c[k]), 0, ZMQ_POLLIN, 0};
    while (acked < sent) {
        assert_true(zmq_poll(items, CLIENTS, 5000) > 0);
        clock_gettime(CLOCK_MONOTONIC, &t);
        elapsed = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
        for (int k = 0; k < CLIENTS; k++) {
            rpc_reply_t r;
            while (rpc_client_recv(c[k], 0, &r, NULL) == 1) {
                assert_true(r.ok);
                rpc_reply_clear(&r);
                acked++;
                if (elapsed < 1.0) { /* keep DEPTH in flight for one second */
                    char rid[32];
                    snprintf(rid, sizeof rid, "tp-%" PRIu64, sent++);
                    rpc_request_pack(&req, "note.admin", rid, NULL, 0);
                    assert_int_equal(rpc_client_send(c[k], req.data, req.size), 0);
                }
            }
        }
        assert_true(elapsed < 30);
    }
    print_message("rpc: %" PRIu64 " stored write requests acknowledged in %.2f s: %.0f/s"
                  " (%d in flight)\n",
                  acked, elapsed, (double)acked / elapsed, CLIENTS * DEPTH);
    msgpack_sbuffer_destroy(&req);
    for (int k = 0; k < CLIENTS; k++)
        rpc_client_destroy(&c[k]);
}

int
main(void)
{
    log_init("test_rpc", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path_dealer_and_req),
        cmocka_unit_test(test_identity_and_permissions),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_repeated_rid),
        cmocka_unit_test(test_stored_replies_pruned_after_retention),
        cmocka_unit_test(test_batch_of_300),
        cmocka_unit_test(test_order_keys),
        cmocka_unit_test(test_poisoned_request_and_duplicates_in_a_batch),
        cmocka_unit_test(test_database_down),
        cmocka_unit_test(test_unframeable_messages_dropped),
        cmocka_unit_test(test_throughput_glimpse),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
