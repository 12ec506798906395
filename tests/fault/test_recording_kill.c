/* sx-recording under kill -9 (issue 5, Tests): a stream of 20,000 case events on stream
 * "intake" (the test plays intake: its outbox and its relay, in this process), the real
 * sx-recording binary beside a real sx-broker, killed with SIGKILL three times while it
 * appends. Then: every event is exactly one entry (none lost, none twice), every case's
 * chain recomputes from its bytes to its head, record.appended was emitted once per
 * entry, and record.verify answers ok. */
#include <inttypes.h>
#include <pthread.h>
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
#include <msgpack.h>
#include <zmq.h>

#include "bus.h"
#include "jsonmp.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY "91110000600037341L"
#define TOTAL  20000
#define CASES  400 /* 50 events each: case.opened, then 49 case.recorded */
#define CHUNK  500 /* events per producer transaction */

typedef struct {
    tp_world_t w;
    char rec_pub[41], rec_ep[64], sign_key[600];
    int rec_ops;
    pid_t rec;
    tp_producer_t intake; /* the test plays intake: its outbox and its relay (a thread) */
} fx_t;

static pid_t
s_start_recording(fx_t *fx)
{
    char key[640];
    snprintf(key, sizeof key, "SX_RECORDING_SIGN_KEY=%s", fx->sign_key);
    const char *env[] = {key, NULL};
    return tp_world_service(&fx->w, "recording", fx->rec_ep, fx->rec_ops, "recording-kill", env);
}

/* Packs the data of event i: case (i % CASES) + 1, its (i / CASES)-th event. */
static void
s_event(int i, msgpack_sbuffer *sb, char *topic, size_t tlen)
{
    int id = i % CASES + 1, k = i / CASES;
    char json[1024];
    if (k == 0) {
        snprintf(topic, tlen, "case.opened.%s", AGENCY);
        snprintf(json, sizeof json,
                 "{\"case_id\":%d,\"case_no\":\"K-%d\",\"type\":\"penalty\",\"matter_code\":"
                 "\"CF-0001\",\"state\":\"open\",\"on_site\":false,\"officers\":[\"ZF001\"]}",
                 id, id);
    } else {
        snprintf(topic, tlen, "case.recorded.%s", AGENCY);
        snprintf(json, sizeof json,
                 "{\"case_id\":%d,\"case_no\":\"K-%d\",\"type\":\"penalty\",\"matter_code\":"
                 "\"CF-0001\",\"state\":\"open\",\"record_no\":%d,\"stage\":\"investigation\","
                 "\"kind\":\"text\",\"doc_type\":\"询问笔录\",\"officers\":[\"ZF001\"],"
                 "\"device\":null,\"started_at\":1,\"ended_at\":2,\"media\":{\"sha256\":"
                 "\"%064d\",\"uri\":\"s3://k/%d\",\"size\":%d},\"classification\":\"internal\"}",
                 id, id, k, 0, i, i);
    }
    msgpack_sbuffer_clear(sb);
    assert_int_equal(jsonmp_from_json(json, strlen(json), "data", 2, sb, NULL), 0);
}

/* Emits events [from, from + n) in one transaction. */
static void
s_produce(fx_t *fx, int from, int n)
{
    static msgpack_sbuffer sb[CHUNK];
    static char topics[CHUNK][128];
    bus_event_in_t in[CHUNK];
    for (int j = 0; j < n; j++) {
        msgpack_sbuffer_init(&sb[j]);
        s_event(from + j, &sb[j], topics[j], sizeof topics[j]);
        in[j] = (bus_event_in_t){topics[j], 1, sb[j].data, sb[j].size};
    }
    evmsg_err_t err = {0};
    assert_int_equal(db_begin(fx->intake.db), 0);
    if (bus_emit_batch(fx->intake.db, "intake", in, (size_t)n, &err) < 0)
        fail_msg("emit: %s %s", err.reason, db_error(fx->intake.db));
    assert_int_equal(db_commit(fx->intake.db), 0);
    for (int j = 0; j < n; j++)
        msgpack_sbuffer_destroy(&sb[j]);
}

static long long
s_cursor(fx_t *fx)
{
    return tp_pg_num(fx->w.pg, "SELECT coalesce(max(seq), 0) FROM recording.bus_cursor"
                               " WHERE stream = 'intake'");
}

static int
s_setup(void **state)
{
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"recording", "svc:recording"},
                                         {"ops", "svc:sxctl"},
                                         {NULL, NULL}};
    fx_t *fx = calloc(1, sizeof *fx);
    tp_world_open(&fx->w, "reckill", ids, "reckill-broker");
    char sec[41];
    tp_world_pair(&fx->w, "recording", fx->rec_pub, sec);
    snprintf(fx->rec_ep, sizeof fx->rec_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->rec_ops = tp_free_port();
    char *dir = ts_mkdtemp("reckill-seal");
    snprintf(fx->sign_key, sizeof fx->sign_key, "%s/seal.key", dir);
    free(dir);

    /* Intake's stream: its bus tables and a relay publishing to the broker. */
    tp_producer_open(&fx->intake, &fx->w, "intake");
    tp_producer_thread(&fx->intake);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    tp_stop(fx->rec, SIGTERM, 10000);
    tp_producer_close(&fx->intake);
    tp_world_close(&fx->w);
    free(fx);
    return 0;
}

static void
test_kill9_loses_and_repeats_no_entry(void **state)
{
    fx_t *fx = *state;
    fx->rec = s_start_recording(fx);
    tp_wait_log("recording-kill", "recording started", 20000);
    /* Kills at these cursor positions, while the stream is still being produced. */
    const long long kills[] = {2000, 8000, 14000};
    int nk = 0, produced = 0;
    int64_t end = tp_now_ms() + 120000;
    while (tp_now_ms() < end) {
        /* Faster than recording appends, so the kills land while it is busy. */
        for (int j = 0; j < 4 && produced < TOTAL; j++) {
            s_produce(fx, produced, CHUNK);
            produced += CHUNK;
        }
        long long cur = s_cursor(fx);
        if (nk < 3 && cur >= kills[nk]) {
            kill(fx->rec, SIGKILL);
            tp_stop(fx->rec, SIGKILL, 5000);
            print_message("SIGKILL sx-recording at cursor %lld (%d events produced)\n", cur,
                          produced);
            nk++;
            fx->rec = s_start_recording(fx);
        }
        if (produced >= TOTAL && cur >= TOTAL && nk == 3)
            break;
        tp_sleep_ms(produced < TOTAL ? 30 : 5);
    }
    assert_int_equal(nk, 3);
    assert_int_equal(s_cursor(fx), TOTAL);

    /* Exactly once: one entry per event, one record.appended per entry. */
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.entry"), TOTAL);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(DISTINCT seq) FROM recording.entry"), TOTAL);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT min(seq) FROM recording.entry"), 1);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT max(seq) FROM recording.entry"), TOTAL);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.rcase WHERE n = 50"),
                     CASES);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.outbox"
                                         " WHERE topic LIKE 'record.appended.%'"),
                     TOTAL);
    /* Recording's own stream stays gapless through the kills: seqs 1..n, each agency's
     * aseqs 1..its count, the head at n, nothing left unsequenced. */
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.outbox WHERE seq IS NULL"),
                     0);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.bus_head h"
                               " WHERE h.last_seq <> (SELECT max(seq) FROM recording.outbox)"
                               " OR h.last_seq <> (SELECT count(DISTINCT seq)"
                               " FROM recording.outbox)"),
                     0);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM (SELECT agency, max(aseq) m, count(*) c,"
                               " count(DISTINCT aseq) d FROM recording.outbox GROUP BY agency) a"
                               " WHERE m <> c OR d <> c"),
                     0);
    /* In each case, entries follow the stream's order, and every chain recomputes. */
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.entry e JOIN recording.entry p"
                               " ON p.case_id = e.case_id AND p.n = e.n - 1"
                               " WHERE p.seq >= e.seq OR e.hash <> sha256(p.hash || e.body)"),
                     0);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.entry WHERE n = 1 AND hash <>"
                               " sha256(decode(repeat('00', 32), 'hex') || body)"),
                     0);
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.rcase c JOIN recording.entry e"
                               " ON e.case_id = c.case_id AND e.n = c.n WHERE e.hash = c.head"),
                     CASES);
    /* And record.verify agrees, through the door, for a few of them. */
    char pub[41], sec[41], err[256];
    tp_world_pair(&fx->w, "ops", pub, sec);
    rpc_client_t *c = rpc_client_new(fx->w.ctx, fx->rec_ep, fx->rec_pub, pub, sec, err, sizeof err);
    assert_non_null(c);
    for (int id = 1; id <= CASES; id += 133) {
        char body[64], rid[32];
        snprintf(body, sizeof body, "{\"case_id\": %d}", id);
        snprintf(rid, sizeof rid, "v%d", id);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        assert_int_equal(jsonmp_from_json(body, strlen(body), "body", 2, &b, NULL), 0);
        rpc_reply_t rep = {0};
        evmsg_err_t e = {0};
        assert_int_equal(rpc_call(c, "record.verify", rid, b.data, b.size, 5000, 3, &rep, &e), 0);
        assert_true(rep.ok);
        char *text = jsonmp_to_json(rep.result, rep.result_len, "result", NULL, NULL);
        if (!strstr(text, "\"ok\":true") && !strstr(text, "\"ok\": true"))
            fail_msg("case %d: %s", id, text);
        free(text);
        rpc_reply_clear(&rep);
        msgpack_sbuffer_destroy(&b);
    }
    rpc_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_loses_and_repeats_no_entry, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("recording_kill", tests, NULL, NULL);
}
