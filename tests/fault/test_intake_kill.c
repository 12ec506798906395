/* sx-intake under kill -9 (issue 4, Tests): a burst of 10,000 case.open submissions from
 * four department clients, the real binary killed mid-burst. Then:
 *   - every acknowledged submission is in Postgres with its case.opened event;
 *   - nothing unacknowledged is half-written: every case has its event and its stored
 *     reply, every stored reply its case;
 *   - after a restart, a resend of every unacknowledged rid succeeds, exactly once: the
 *     ones whose transaction had committed get the stored reply (the same case), the
 *     others open their case now; a second resend changes nothing. */
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
#include <libpq-fe.h>
#include <zmq.h>

#include "date.h"
#include "evmsg.h"
#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"

#define AGENCY   "91110000600037341L"
#define CLIENTS  4
#define TOTAL    10000
#define INFLIGHT 64
#define KILL_AT  3000 /* acknowledgements before the kill */

typedef struct {
    char *url;
    tp_world_t w; /* keys, the key file, the broker's endpoints */
    char intake_pub[41];
    char rpc_ep[64];
    PGconn *pg;
    pid_t broker, intake;
    void *ctx;
    char run[16];           /* makes this run's rids and case numbers unique */
    char today[11];         /* opened_on: a deadline 90 days away, no timer fires */
    int64_t case_id[TOTAL]; /* the case each acknowledged submission got; 0 = no ack */
    int acks[TOTAL];        /* ok replies received per submission */
} fx_t;

static pid_t
s_spawn(fx_t *fx, const char *what)
{
    char log[32];
    snprintf(log, sizeof log, "kill-%s", what);
    if (strcmp(what, "broker") == 0)
        return tp_world_broker(&fx->w, log);
    char bind[96];
    snprintf(bind, sizeof bind, "SX_INTAKE_BIND=%s", fx->rpc_ep);
    const char *env[] = {bind, "SX_LOG_LEVEL=warn", NULL};
    return tp_world_spawn(&fx->w, "sx-intake", NULL, "intake", log, env);
}

static long long
s_count(fx_t *fx, const char *sql)
{
    PGresult *r = PQexec(fx->pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(fx->pg));
    long long n = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void
s_sql(fx_t *fx, const char *sql)
{
    PGresult *r = PQexec(fx->pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(fx->pg));
    PQclear(r);
}

/* The request of submission n: always the same bytes for the same n, so a resend is
 * the same request. */
static void
s_request(fx_t *fx, int n, msgpack_sbuffer *req)
{
    char json[1024], rid[64];
    snprintf(
        json, sizeof json,
        "{\"case_no\": \"K-%s-%d\", \"matter_code\": \"CF-0001\","
        " \"opened_on\": \"%s\","
        " \"party\": {\"kind\": \"org\", \"name\": \"某某商贸有限公司\","
        " \"id_type\": \"uscc\", \"id_no\": \"11620200013926143G\"},"
        " \"summary\": \"无照经营\", \"on_site\": false, \"officers\": [\"ZF001\", \"ZF002\"]}",
        fx->run, n, fx->today);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    assert_int_equal(jsonmp_from_json(json, strlen(json), "body", 2, &body, NULL), 0);
    snprintf(rid, sizeof rid, "k-%s-%d", fx->run, n);
    assert_int_equal(rpc_request_pack(req, "case.open", rid, body.data, body.size), 0);
    msgpack_sbuffer_destroy(&body);
}

static int64_t
s_case_id(const rpc_reply_t *r)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int64_t v = -1;
    if (r->result &&
        msgpack_unpack_next(&u, r->result, r->result_len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 &&
                memcmp(kv->key.via.str.ptr, "case_id", 7) == 0 &&
                kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = (int64_t)kv->val.via.u64;
        }
    msgpack_unpacked_destroy(&u);
    return v;
}

/* Sends the submissions todo[0..n) from CLIENTS clients, INFLIGHT each, recording every
 * ok reply. When kill_at > 0, kills intake (SIGKILL) once that many ok replies came and
 * stops sending. Gives up on replies after idle_ms without one. Returns the ok count. */
static int
s_burst(fx_t *fx, const int *todo, int n, int kill_at, int idle_ms)
{
    rpc_client_t *c[CLIENTS];
    char pub[41], sec[41], err[256], path[700];
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(path, sizeof path, "%s/dept%d.key", fx->w.keydir, i);
        assert_int_equal(keys_read_pair(path, pub, sec, err, sizeof err), 0);
        c[i] = rpc_client_new(fx->ctx, fx->rpc_ep, fx->intake_pub, pub, sec, err, sizeof err);
        assert_non_null(c[i]);
    }
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    int next = 0, inflight[CLIENTS] = {0}, oks = 0, errors = 0;
    bool killed = false;
    int64_t last = tp_now_ms(), start = last;
    while (tp_now_ms() - last < idle_ms && tp_now_ms() - start < 120000) {
        for (int i = 0; i < CLIENTS && !killed; i++)
            while (inflight[i] < INFLIGHT && next < n) {
                s_request(fx, todo[next], &req);
                if (rpc_client_send(c[i], req.data, req.size) < 0)
                    break;
                next++;
                inflight[i]++;
            }
        /* The kill lands while requests are in flight: right after the window was
         * refilled, a few ms into the turn that is writing them. */
        if (kill_at > 0 && !killed && oks >= kill_at) {
            tp_sleep_ms(1 + rand() % 8);
            kill(fx->intake, SIGKILL);
            int status;
            waitpid(fx->intake, &status, 0);
            fx->intake = 0;
            killed = true;
            print_message("SIGKILL intake after %d acknowledgements, %d sent\n", oks, next);
            idle_ms = 1000; /* nothing more will come */
        }
        int open = 0;
        for (int i = 0; i < CLIENTS; i++)
            open += inflight[i];
        if (open == 0 && (next == n || killed))
            break;
        zmq_pollitem_t items[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
            items[i] = (zmq_pollitem_t){rpc_client_socket(c[i]), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(items, CLIENTS, 100) <= 0)
            continue;
        for (int i = 0; i < CLIENTS; i++) {
            rpc_reply_t r = {0};
            evmsg_err_t e = {{0}, {0}};
            while ((items[i].revents & ZMQ_POLLIN) && rpc_client_recv(c[i], 0, &r, &e) == 1) {
                last = tp_now_ms();
                inflight[i]--;
                const char *dash = strrchr(r.rid, '-');
                int k = dash ? atoi(dash + 1) : -1;
                assert_true(k >= 0 && k < TOTAL);
                if (r.ok) {
                    int64_t id = s_case_id(&r);
                    assert_true(id > 0);
                    /* The same rid never names two cases. */
                    assert_true(fx->case_id[k] == 0 || fx->case_id[k] == id);
                    fx->case_id[k] = id;
                    fx->acks[k]++;
                    oks++;
                } else if (errors++ < 5)
                    print_message("error reply %s: %s %s %s\n", r.rid, r.code, r.field, r.en);
                rpc_reply_clear(&r);
            }
        }
    }
    msgpack_sbuffer_destroy(&req);
    for (int i = 0; i < CLIENTS; i++)
        rpc_client_destroy(&c[i]);
    assert_int_equal(errors, 0);
    return oks;
}

/* Waits until intake answers a request (any reply). */
static void
s_wait_up(fx_t *fx)
{
    char pub[41], sec[41], err[256], path[700];
    snprintf(path, sizeof path, "%s/dept0.key", fx->w.keydir);
    assert_int_equal(keys_read_pair(path, pub, sec, err, sizeof err), 0);
    rpc_client_t *c =
        rpc_client_new(fx->ctx, fx->rpc_ep, fx->intake_pub, pub, sec, err, sizeof err);
    assert_non_null(c);
    rpc_reply_t r = {0};
    evmsg_err_t e = {{0}, {0}};
    int rc = rpc_call(c, "case.get", "probe",
                      "\x81\xa7"
                      "case_id"
                      "\x01",
                      10, 1000, 20, &r, &e);
    rpc_reply_clear(&r);
    rpc_client_destroy(&c);
    assert_int_equal(rc, 0);
}

/* The ids of the case.opened events in the outbox, each decoded from its data. */
static void
s_assert_events_match_cases(fx_t *fx)
{
    PGresult *r = PQexec(fx->pg, "SELECT data FROM intake.outbox WHERE topic LIKE"
                                 " 'case.opened.%' ORDER BY id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int n = PQntuples(r);
    char *seen = calloc(4 * TOTAL + 1, 1);
    long long base = s_count(fx, "SELECT coalesce(min(id), 1) FROM intake.cases");
    for (int i = 0; i < n; i++) {
        size_t len;
        unsigned char *data = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 0), &len);
        evmsg_t *m = NULL;
        assert_int_equal(evmsg_decode_map(data, len, &m, NULL), 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, (const char *)data, len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        int64_t id = -1;
        for (uint32_t k = 0; k < u.data.via.map.size; k++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[k];
            if (kv->key.via.str.size == 7 && memcmp(kv->key.via.str.ptr, "case_id", 7) == 0)
                id = (int64_t)kv->val.via.u64;
        }
        msgpack_unpacked_destroy(&u);
        evmsg_destroy(&m);
        PQfreemem(data);
        assert_true(id >= base && id - base < 4 * TOTAL);
        assert_int_equal(seen[id - base], 0); /* one event per case */
        seen[id - base] = 1;
    }
    PQclear(r);
    /* ... and every case has one. */
    r = PQexec(fx->pg, "SELECT id FROM intake.cases");
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < PQntuples(r); i++)
        assert_int_equal(seen[atoll(PQgetvalue(r, i, 0)) - base], 1);
    PQclear(r);
    free(seen);
}

/* Nothing half-written: cases, their events and their stored replies match one to one. */
static void
s_assert_whole(fx_t *fx)
{
    long long cases = s_count(fx, "SELECT count(*) FROM intake.cases");
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.outbox WHERE topic LIKE"
                                 " 'case.opened.%'"),
                     cases);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.rpc_reply WHERE op = 'case.open'"
                                 " AND ok"),
                     cases);
    s_assert_events_match_cases(fx);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->url = ts_fresh_db("intakekill");
    fx->pg = PQconnectdb(fx->url);
    assert_int_equal(PQstatus(fx->pg), CONNECTION_OK);
    snprintf(fx->run, sizeof fx->run, "%x", (unsigned)getpid());
    date_format(date_from_unix_cst(time(NULL)), fx->today);
    srand((unsigned)getpid());
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"dept0", "dept:" AGENCY ":system"},
                                         {"dept1", "dept:" AGENCY ":system"},
                                         {"dept2", "dept:" AGENCY ":system"},
                                         {"dept3", "dept:" AGENCY ":system"},
                                         {NULL, NULL}};
    assert_int_equal(CLIENTS, 4);
    tp_world_init(&fx->w, fx->url, ids);
    char sec[41];
    tp_world_pair(&fx->w, "intake", fx->intake_pub, sec);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ctx = zmq_ctx_new();
    fx->broker = s_spawn(fx, "broker");
    fx->intake = s_spawn(fx, "intake");
    s_wait_up(fx);
    s_sql(fx, "INSERT INTO intake.agency (code, name, level, domain, head_name, head_title,"
              " version, updated_by) VALUES ('" AGENCY "', '某市市场监督管理局', 'city',"
              " '市场监管', '张三', '局长', 1, 'test')");
    s_sql(fx, "INSERT INTO intake.officer (agency, cert_no, name, valid_from, valid_to, area,"
              " version, updated_by) VALUES"
              " ('" AGENCY "', 'ZF001', '王五', '2020-01-01', '2099-12-31', '全市', 1, 'test'),"
              " ('" AGENCY "', 'ZF002', '赵六', '2020-01-01', '2099-12-31', '全市', 1, 'test')");
    s_sql(fx, "INSERT INTO intake.matter (agency, code, name, type, legal_basis, accepting_body,"
              " approving_body, conditions, time_limit, time_limit_unit, guide, version,"
              " updated_by) VALUES ('" AGENCY "', 'CF-0001', '对无照经营的处罚', 'penalty',"
              " '《无证无照经营查处办法》第十三条', '执法大队', '局', '-', 90, 'day', '-', 1,"
              " 'test')");
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        return 0;
    tp_stop(fx->intake, SIGTERM, 10000);
    tp_stop(fx->broker, SIGTERM, 10000);
    zmq_ctx_term(fx->ctx);
    PQfinish(fx->pg);
    free(fx->url);
    free(fx);
    return 0;
}

static void
test_kill_mid_burst_loses_nothing_acknowledged(void **state)
{
    fx_t *fx = *state;
    int *todo = malloc(TOTAL * sizeof *todo);
    for (int i = 0; i < TOTAL; i++)
        todo[i] = i;
    int64_t t0 = tp_now_ms();
    int acked = s_burst(fx, todo, TOTAL, KILL_AT, 10000);
    assert_true(acked >= KILL_AT && acked < TOTAL);
    assert_int_equal(fx->intake, 0);

    /* With intake dead: every acknowledged case is there, with its event. */
    long long cases = s_count(fx, "SELECT count(*) FROM intake.cases");
    char sql[256];
    int n_acked = 0;
    for (int k = 0; k < TOTAL; k++) {
        if (!fx->case_id[k])
            continue;
        n_acked++;
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM intake.cases WHERE id = %" PRId64 " AND case_no = 'K-%s-%d'",
                 fx->case_id[k], fx->run, k);
        assert_int_equal(s_count(fx, sql), 1);
    }
    assert_int_equal(n_acked, acked);
    s_assert_whole(fx);
    print_message("after the kill (%.1f s into the burst): %d acknowledged, %lld cases"
                  " committed (%lld committed but unacknowledged)\n",
                  (tp_now_ms() - t0) / 1000.0, n_acked, cases, cases - n_acked);

    /* Restart; resend every unacknowledged rid: each succeeds. */
    fx->intake = s_spawn(fx, "intake");
    s_wait_up(fx);
    int m = 0;
    for (int k = 0; k < TOTAL; k++)
        if (!fx->case_id[k])
            todo[m++] = k;
    int resent_ok = s_burst(fx, todo, m, 0, 10000);
    assert_int_equal(resent_ok, m);
    for (int k = 0; k < TOTAL; k++) {
        assert_true(fx->case_id[k] > 0);
        assert_int_equal(fx->acks[k], 1);
    }
    /* Each rid's reply names its own case (a committed-but-unacknowledged one included). */
    PGresult *r = PQexec(fx->pg, "SELECT id, case_no FROM intake.cases");
    assert_int_equal(PQntuples(r), TOTAL);
    for (int i = 0; i < TOTAL; i++) {
        const char *no = PQgetvalue(r, i, 1);
        int k = atoi(strrchr(no, '-') + 1);
        assert_int_equal(fx->case_id[k], atoll(PQgetvalue(r, i, 0)));
    }
    PQclear(r);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.cases"), TOTAL);
    assert_int_equal(s_count(fx, "SELECT count(DISTINCT case_no) FROM intake.cases"), TOTAL);
    s_assert_whole(fx);

    /* Again, all of them: stored replies, the same cases, nothing new. */
    for (int k = 0; k < TOTAL; k++)
        todo[k] = k;
    assert_int_equal(s_burst(fx, todo, TOTAL, 0, 10000), TOTAL);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM intake.cases"), TOTAL);
    s_assert_whole(fx);
    print_message("resent %d unacknowledged rids after restart: all ok; %lld of them had "
                  "committed before the kill and got their stored reply\n",
                  m, cases - n_acked);
    free(todo);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_mid_burst_loses_nothing_acknowledged, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("intake_kill", tests, NULL, NULL);
}
