/* The bus under kills: real sx-broker, relays, subscribers and a producer as separate
 * processes (build/bin/bustest), real PostgreSQL, real ZeroMQ with CURVE. Whatever is
 * killed, and whenever, each subscriber ends with every event applied exactly once, in
 * seq order, and the stream has no seq reused or skipped. */
#include <errno.h>
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
#include <libpq-fe.h>

#include "keys.h"
#include "tproc.h"
#include "tsupport.h"

typedef struct {
    char *url;
    tp_world_t w; /* keys, the broker's endpoints */
    PGconn *pg;
    pid_t broker;
} fx_t;

static double
s_now(void)
{
    return (double)tp_now_ms() / 1000.0;
}

/* Starts bustest with args as <key>'s identity, its output in <SX_TMP>/<log>.log. */
static pid_t
s_spawn(fx_t *fx, const char *key, const char *log, const char *const args[])
{
    static const char *const env[] = {"SX_LOG_LEVEL=info", NULL};
    return tp_world_spawn(&fx->w, "bustest", args, key, log, env);
}

static int
s_stop(pid_t pid, int sig)
{
    return tp_stop(pid, sig, 5000);
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
s_run(fx_t *fx, const char *const argv[])
{
    pid_t pid = s_spawn(fx, "relay", "setup", argv);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->url = ts_fresh_db("buskill");
    fx->pg = PQconnectdb(fx->url);
    assert_int_equal(PQstatus(fx->pg), CONNECTION_OK);
    static const char *const ids[][2] = {
        {"relay", "svc:bustest-relay"}, {"cons", "svc:bustest-cons"}, {NULL, NULL}};
    tp_world_init(&fx->w, fx->url, ids);
    fx->broker = tp_world_broker(&fx->w, "broker");

    const char *migrate[] = {"migrate", "cons_a", "cons_b", NULL};
    s_run(fx, migrate);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    s_stop(fx->broker, SIGTERM);
    PQfinish(fx->pg);
    free(fx->url);
    free(fx);
    return 0;
}

/* Every consumer has each of 0..n-1 once, in seq order, and its cursor at n. */
static void
s_assert_exactly_once(fx_t *fx, const char *cons, long long n)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.effects", cons);
    assert_int_equal(s_count(fx, sql), n);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.effects WHERE coalesce(prev, 0) <> seq - 1",
             cons);
    assert_int_equal(s_count(fx, sql), 0);
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT n) FROM %s.effects", cons);
    assert_int_equal(s_count(fx, sql), n);
    snprintf(sql, sizeof sql, "SELECT sum(n) FROM %s.effects", cons);
    assert_int_equal(s_count(fx, sql), n * (n - 1) / 2);
    snprintf(sql, sizeof sql, "SELECT seq FROM %s.bus_cursor WHERE stream = 'prod'", cons);
    assert_int_equal(s_count(fx, sql), n);
}

static void
s_assert_stream(fx_t *fx, long long n)
{
    assert_int_equal(s_count(fx, "SELECT count(*) FROM prod.outbox"), n);
    assert_int_equal(s_count(fx, "SELECT count(DISTINCT seq) FROM prod.outbox"), n);
    assert_int_equal(s_count(fx, "SELECT min(seq) FROM prod.outbox"), 1);
    assert_int_equal(s_count(fx, "SELECT max(seq) FROM prod.outbox"), n);
    assert_int_equal(s_count(fx, "SELECT last_seq FROM prod.bus_head"), n);
}

static void
test_kills_lose_nothing_and_apply_nothing_twice(void **state)
{
    fx_t *fx = *state;
    const long long total = 100000;
    const char *relay[] = {"relay", NULL};
    const char *cons_a[] = {"consume", "cons_a", NULL};
    const char *cons_b[] = {"consume", "cons_b", "--batch", NULL};
    const char *produce[] = {"produce", "100000", "200", NULL};

    pid_t r1 = s_spawn(fx, "relay", "relay1", relay);
    pid_t r2 = s_spawn(fx, "relay", "relay2", relay);
    pid_t a = s_spawn(fx, "cons", "cons_a", cons_a);
    pid_t b = s_spawn(fx, "cons", "cons_b", cons_b);
    tp_wait_log("cons_a", "subscriber started", 20000);
    tp_wait_log("cons_b", "subscriber started", 20000);
    double t0 = s_now();
    pid_t p = s_spawn(fx, "relay", "produce", produce);

    /* Kill points, by how far consumer b (the one never killed) has got. */
    const long long kill_a[] = {15000, 40000, 75000};
    int next_kill = 0, relay_kills = 0;
    bool broker_restarted = false;
    long long ca = 0, cb = 0;
    while (s_now() - t0 < 240 && (ca < total || cb < total)) {
        tp_sleep_ms(100);
        ca = s_count(fx, "SELECT count(*) FROM cons_a.effects");
        cb = s_count(fx, "SELECT count(*) FROM cons_b.effects");
        if (next_kill < 3 && cb >= kill_a[next_kill]) {
            s_stop(a, SIGKILL);
            print_message("SIGKILL subscriber a at %lld applied\n", ca);
            a = s_spawn(fx, "cons", "cons_a", cons_a);
            next_kill++;
        }
        if (relay_kills == 0 && cb >= 25000) {
            s_stop(r1, SIGKILL);
            print_message("SIGKILL relay 1 at %lld\n", cb);
            r1 = s_spawn(fx, "relay", "relay1", relay);
            relay_kills++;
        }
        if (relay_kills == 1 && cb >= 60000) {
            s_stop(r2, SIGKILL);
            print_message("SIGKILL relay 2 at %lld\n", cb);
            r2 = s_spawn(fx, "relay", "relay2", relay);
            relay_kills++;
        }
        if (!broker_restarted && cb >= 50000) {
            s_stop(fx->broker, SIGTERM);
            print_message("broker restarted at %lld\n", cb);
            fx->broker = tp_world_broker(&fx->w, "broker");
            broker_restarted = true;
        }
    }
    double secs = s_now() - t0;
    print_message("a: %lld, b: %lld applied in %.1f s\n", ca, cb, secs);
    int pst = s_stop(p, SIGTERM);
    assert_true(WIFEXITED(pst) && WEXITSTATUS(pst) == 0);
    assert_int_equal(s_stop(a, SIGTERM), 0);
    assert_int_equal(s_stop(b, SIGTERM), 0);
    s_stop(r1, SIGTERM);
    s_stop(r2, SIGTERM);
    assert_int_equal(next_kill, 3);
    assert_int_equal(relay_kills, 2);
    assert_true(broker_restarted);
    s_assert_stream(fx, total);
    s_assert_exactly_once(fx, "cons_a", total);
    s_assert_exactly_once(fx, "cons_b", total);
}

static void
test_publisher_killed_between_commit_and_publish(void **state)
{
    fx_t *fx = *state;
    const char *lost[] = {"relay", "--nowhere", NULL};
    const char *relay[] = {"relay", NULL};
    const char *cons[] = {"consume", "cons_a", NULL};
    const char *produce[] = {"produce", "1000", "100", NULL};

    pid_t a = s_spawn(fx, "cons", "lost_cons_a", cons);
    tp_wait_log("lost_cons_a", "subscriber started", 20000);
    /* The only relay commits each batch's seqs and sends them nowhere; then it dies. */
    pid_t r = s_spawn(fx, "relay", "lost", lost);
    s_run(fx, produce);
    double t0 = s_now();
    while (s_count(fx, "SELECT last_seq FROM prod.bus_head") < 1000 && s_now() - t0 < 20)
        tp_sleep_ms(50);
    s_stop(r, SIGKILL);
    tp_sleep_ms(1500);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM cons_a.effects"), 0);

    /* A new relay's first heartbeat carries seq 1000: the subscriber repairs from
     * Postgres. Nothing new needs to be produced for the lost events to arrive. */
    r = s_spawn(fx, "relay", "relay1", relay);
    t0 = s_now();
    while (s_count(fx, "SELECT count(*) FROM cons_a.effects") < 1000 && s_now() - t0 < 20)
        tp_sleep_ms(50);
    print_message("the 1000 committed, never-published events arrived %.2f s after a relay "
                  "came back\n",
                  s_now() - t0);
    assert_int_equal(s_stop(a, SIGTERM), 0);
    s_stop(r, SIGTERM);
    s_assert_stream(fx, 1000);
    s_assert_exactly_once(fx, "cons_a", 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publisher_killed_between_commit_and_publish, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_kills_lose_nothing_and_apply_nothing_twice, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("bus_kill", tests, NULL, NULL);
}
