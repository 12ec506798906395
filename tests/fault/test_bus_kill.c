/* The bus under kills: real sx-broker, relays, subscribers and a producer as separate
 * processes (build/bin/bustest), real PostgreSQL, real ZeroMQ with CURVE. Whatever is
 * killed, and whenever, each subscriber ends with every event applied exactly once, in
 * seq order, and the stream has no seq reused or skipped. */
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

#include "keys.h"
#include "tsupport.h"

typedef struct {
    char *url;
    char keydir[512];
    char broker_pub[41];
    char pub_ep[64], sub_ep[64];
    PGconn *pg;
    pid_t broker;
} fx_t;

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int
s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts argv with the fixture's environment plus SX_KEY_FILE=<keydir>/<key>.key,
 * output appended to <SX_TMP>/<log>.log. Returns the pid. */
static pid_t
s_spawn(fx_t *fx, const char *key, const char *log, const char *const argv[])
{
    char keyfile[600], logfile[600];
    snprintf(keyfile, sizeof keyfile, "%s/%s.key", fx->keydir, key);
    snprintf(logfile, sizeof logfile, "%s/%s.log", ts_env("SX_TMP"), log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("SX_PG_URL", fx->url, 1);
        setenv("SX_KEY_FILE", keyfile, 1);
        setenv("SX_BROKER_PUB", fx->pub_ep, 1);
        setenv("SX_BROKER_SUB", fx->sub_ep, 1);
        setenv("SX_BROKER_PUBLIC_KEY", fx->broker_pub, 1);
        setenv("SX_LOG_LEVEL", "info", 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int
s_stop(pid_t pid, int sig)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int status = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        s_sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

/* Waits (at most 20 s) until the log <SX_TMP>/<log>.log holds the line text. */
static void
s_wait_log(const char *log, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.log", ts_env("SX_TMP"), log);
    double t0 = s_now();
    while (s_now() - t0 < 20) {
        FILE *f = fopen(path, "r");
        char line[1024];
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f))
            found = strstr(line, text) != NULL;
        if (f)
            fclose(f);
        if (found)
            return;
        s_sleep_ms(50);
    }
    fail_msg("%s.log never said \"%s\"", log, text);
}

static pid_t
s_broker(fx_t *fx)
{
    char keys[600], keyfile[600];
    snprintf(keys, sizeof keys, "%s/keys", fx->keydir);
    snprintf(keyfile, sizeof keyfile, "%s/broker.key", fx->keydir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char logfile[600];
        snprintf(logfile, sizeof logfile, "%s/broker.log", ts_env("SX_TMP"));
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("SX_BROKER_PUB_BIND", fx->pub_ep, 1);
        setenv("SX_BROKER_SUB_BIND", fx->sub_ep, 1);
        setenv("SX_BROKER_KEY_FILE", keyfile, 1);
        setenv("SX_KEYS_FILE", keys, 1);
        setenv("SX_OPS_PORT", "0", 1);
        char bin[600];
        snprintf(bin, sizeof bin, "%s/sx-broker", ts_env("SX_BIN"));
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    return pid;
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
    char *dir = ts_mkdtemp("keys");
    snprintf(fx->keydir, sizeof fx->keydir, "%s", dir);
    free(dir);
    char err[256], pub[41];
    char keys[2048] = "# test keys\n";
    const char *names[] = {"relay", "cons"};
    assert_int_equal(keys_write_pair(fx->keydir, "broker", fx->broker_pub, err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(keys_write_pair(fx->keydir, names[i], pub, err, sizeof err), 0);
        size_t len = strlen(keys);
        snprintf(keys + len, sizeof keys - len, "%s svc:bustest-%s\n", pub, names[i]);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/keys", fx->keydir);
    FILE *f = fopen(path, "w");
    fputs(keys, f);
    fclose(f);
    snprintf(fx->pub_ep, sizeof fx->pub_ep, "tcp://127.0.0.1:%d", s_free_port());
    snprintf(fx->sub_ep, sizeof fx->sub_ep, "tcp://127.0.0.1:%d", s_free_port());
    fx->broker = s_broker(fx);

    char bin[600];
    snprintf(bin, sizeof bin, "%s/bustest", ts_env("SX_BIN"));
    const char *migrate[] = {bin, "migrate", "cons_a", "cons_b", NULL};
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
    char bin[600];
    snprintf(bin, sizeof bin, "%s/bustest", ts_env("SX_BIN"));
    const char *relay[] = {bin, "relay", NULL};
    const char *cons_a[] = {bin, "consume", "cons_a", NULL};
    const char *cons_b[] = {bin, "consume", "cons_b", "--batch", NULL};
    const char *produce[] = {bin, "produce", "100000", "200", NULL};

    pid_t r1 = s_spawn(fx, "relay", "relay1", relay);
    pid_t r2 = s_spawn(fx, "relay", "relay2", relay);
    pid_t a = s_spawn(fx, "cons", "cons_a", cons_a);
    pid_t b = s_spawn(fx, "cons", "cons_b", cons_b);
    s_wait_log("cons_a", "subscriber started");
    s_wait_log("cons_b", "subscriber started");
    double t0 = s_now();
    pid_t p = s_spawn(fx, "relay", "produce", produce);

    /* Kill points, by how far consumer b (the one never killed) has got. */
    const long long kill_a[] = {15000, 40000, 75000};
    int next_kill = 0, relay_kills = 0;
    bool broker_restarted = false;
    long long ca = 0, cb = 0;
    while (s_now() - t0 < 240 && (ca < total || cb < total)) {
        s_sleep_ms(100);
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
            fx->broker = s_broker(fx);
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
    char bin[600];
    snprintf(bin, sizeof bin, "%s/bustest", ts_env("SX_BIN"));
    const char *lost[] = {bin, "relay", "--nowhere", NULL};
    const char *relay[] = {bin, "relay", NULL};
    const char *cons[] = {bin, "consume", "cons_a", NULL};
    const char *produce[] = {bin, "produce", "1000", "100", NULL};

    pid_t a = s_spawn(fx, "cons", "lost_cons_a", cons);
    s_wait_log("lost_cons_a", "subscriber started");
    /* The only relay commits each batch's seqs and sends them nowhere; then it dies. */
    pid_t r = s_spawn(fx, "relay", "lost", lost);
    s_run(fx, produce);
    double t0 = s_now();
    while (s_count(fx, "SELECT last_seq FROM prod.bus_head") < 1000 && s_now() - t0 < 20)
        s_sleep_ms(50);
    s_stop(r, SIGKILL);
    s_sleep_ms(1500);
    assert_int_equal(s_count(fx, "SELECT count(*) FROM cons_a.effects"), 0);

    /* A new relay's first heartbeat carries seq 1000: the subscriber repairs from
     * Postgres. Nothing new needs to be produced for the lost events to arrive. */
    r = s_spawn(fx, "relay", "relay1", relay);
    t0 = s_now();
    while (s_count(fx, "SELECT count(*) FROM cons_a.effects") < 1000 && s_now() - t0 < 20)
        s_sleep_ms(50);
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
