/* timer: deadline timers in the harness's real Redis, rearmed from its real Postgres. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "redis.h"
#include "timer.h"
#include "tsupport.h"

#define N_DEADLINES 10000
#define SPREAD_MS   2000

static void
s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A service name no other test uses, so each test starts from empty sets. */
static const char *
s_svc(char *buf, size_t size)
{
    static int counter;
    snprintf(buf, size, "t%d-%d", (int)getpid(), ++counter);
    return buf;
}

static timers_t *
s_timers(const char *svc)
{
    char err[256] = "";
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), svc, err, sizeof err);
    if (!t)
        fail_msg("timers_new: %s", err);
    return t;
}

/* A second, plain connection to the same Redis, for what the test does behind the
 * timer's back (FLUSHALL, CLIENT KILL, ZCARD). */
static redis_t *
s_admin(void)
{
    char err[256] = "";
    redis_t *r = redis_new(ts_env("SX_REDIS_URL"), 2000, "sx-test-admin", err, sizeof err);
    if (!r)
        fail_msg("redis_new: %s", err);
    return r;
}

static long long
s_admin_int(redis_t *r, int argc, const char **argv)
{
    redisReply *rep = redis_command(r, argc, argv, NULL);
    if (!rep)
        fail_msg("%s: %s", argv[0], redis_error(r));
    if (rep->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: not an integer reply: %s", argv[0], rep->str ? rep->str : "");
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static void
s_admin_ok(redis_t *r, int argc, const char **argv)
{
    redisReply *rep = redis_command(r, argc, argv, NULL);
    if (!rep)
        fail_msg("%s: %s", argv[0], redis_error(r));
    if (rep->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", argv[0], rep->str);
    freeReplyObject(rep);
}

static long long
s_zcard(redis_t *r, const char *svc, const char *which)
{
    char key[128];
    snprintf(key, sizeof key, "sx:timer:{%s}:%s", svc, which);
    return s_admin_int(r, 2, (const char *[]){"ZCARD", key});
}

static int
s_empty_source(void *arg, timer_batch_t *b)
{
    (void)arg;
    (void)b;
    return 0;
}

static void
test_names_validated(void **state)
{
    (void)state;
    char err[256] = "";
    const char *url = ts_env("SX_REDIS_URL");
    assert_null(timers_new(url, "", err, sizeof err));
    assert_non_null(strstr(err, "service name"));
    assert_null(timers_new(url, "Intake", err, sizeof err));
    assert_null(timers_new(url, "a{b}", err, sizeof err));
    assert_null(timers_new("http://x", "intake", err, sizeof err));
    assert_non_null(strstr(err, "redis://"));

    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    assert_int_equal(timer_arm(t, "", "k", 1), -1);
    assert_non_null(strstr(timer_error(t), "kind"));
    assert_int_equal(timer_arm(t, "Reply", "k", 1), -1);
    assert_int_equal(timer_arm(t, "a:b", "k", 1), -1);
    assert_int_equal(timer_arm(t, "reply", "", 1), -1);
    assert_non_null(strstr(timer_error(t), "key"));
    assert_int_equal(timer_arm(t, "reply", "a b", 1), -1);
    assert_int_equal(timer_arm(t, "reply", "a\nb", 1), -1);
    char long_key[TIMER_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(timer_arm(t, "reply", long_key, 1), -1);
    long_key[TIMER_KEY_MAX] = '\0';
    assert_int_equal(timer_arm(t, "reply", long_key, 1), 0);
    /* a key may hold ':' and UTF-8: the member splits at the first ':' */
    assert_int_equal(timer_arm(t, "reply", "京:2024:7", 1), 0);
    timer_fired_t f[4];
    assert_int_equal(timer_claim_due(t, 1, f, 0), -1);
    assert_int_equal(timer_claim_due(t, 1, f, TIMER_CLAIM_MAX + 1), -1);
    int n = timer_claim_due(t, 1, f, 4);
    assert_int_equal(n, 2);
    assert_string_equal(f[0].kind, "reply");
    assert_true(strcmp(f[0].key, "京:2024:7") == 0 || strcmp(f[1].key, "京:2024:7") == 0);
    timers_destroy(&t);
    timers_destroy(&t);
    assert_null(t);
}

static void
test_arm_cancel_claim(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    const int64_t base = 1700000000000LL;
    const int offs[] = {50, 10, 30, 20, 40};
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "c%d", offs[i]);
        assert_int_equal(timer_arm(t, "reply", key, base + offs[i]), 0);
    }
    timer_fired_t f[8];
    /* nothing is due before its time */
    assert_int_equal(timer_claim_due(t, base + 9, f, 8), 0);
    /* due ones only, earliest first */
    assert_int_equal(timer_claim_due(t, base + 25, f, 8), 2);
    assert_string_equal(f[0].key, "c10");
    assert_int_equal(f[0].due_ms, base + 10);
    assert_false(f[0].redelivered);
    assert_string_equal(f[1].key, "c20");
    /* at most max */
    assert_int_equal(timer_claim_due(t, base + 1000, f, 2), 2);
    assert_string_equal(f[0].key, "c30");
    assert_string_equal(f[1].key, "c40");
    /* cancel */
    assert_int_equal(timer_cancel(t, "reply", "c50"), 0);
    assert_int_equal(timer_cancel(t, "reply", "never-armed"), 0);
    assert_int_equal(timer_claim_due(t, base + 1000, f, 8), 0);
    /* arming again moves the due time */
    assert_int_equal(timer_arm(t, "remind", "x", base + 500), 0);
    assert_int_equal(timer_arm(t, "remind", "x", base + 100), 0);
    assert_int_equal(timer_claim_due(t, base + 100, f, 8), 1);
    assert_string_equal(f[0].kind, "remind");
    assert_string_equal(f[0].key, "x");
    assert_int_equal(f[0].due_ms, base + 100);
    /* a claimed timer that is cancelled is not redelivered either */
    assert_int_equal(timer_cancel(t, "remind", "x"), 0);
    for (const char *k = "c10"; k; k = strcmp(k, "c10") == 0 ? "c20" : NULL)
        assert_int_equal(timer_done(t, "reply", k), 0);
    assert_int_equal(timer_done(t, "reply", "c30"), 0);
    assert_int_equal(timer_done(t, "reply", "c40"), 0);
    redis_t *admin = s_admin();
    assert_int_equal(s_zcard(admin, svc, "due"), 0);
    assert_int_equal(s_zcard(admin, svc, "claimed"), 0);
    assert_int_equal(timer_claim_due(t, base + 10 * 60 * 1000, f, 8), 0);
    redis_destroy(&admin);
    timers_destroy(&t);
}

/* A source of n timers "new"/k<i> due at base + i, with one malformed key in the middle. */
typedef struct {
    int n;
    int64_t base;
} s_many_t;

static int
s_many_source(void *arg, timer_batch_t *b)
{
    const s_many_t *m = arg;
    for (int i = 0; i < m->n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        if (timer_batch_add(b, "new", i == m->n / 2 ? "bad key" : key, m->base + i) < 0)
            return -1;
    }
    return 0;
}

static int
s_failing_source(void *arg, timer_batch_t *b)
{
    (void)arg;
    timer_batch_add(b, "new", "k", 1);
    return -1; /* e.g. its query failed */
}

/* timer_arm_all: many timers pipelined, each fired once at its time, without counting as
 * a rearm (timer_needs_rearm is unchanged); a failing source is reported. */
static void
test_arm_all_pipelined(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    assert_true(timer_needs_rearm(t));
    s_many_t m = {2001, 1700000000000LL};
    assert_int_equal(timer_arm_all(t, s_many_source, &m), 2000); /* the bad key skipped */
    assert_true(timer_needs_rearm(t));
    redis_t *admin = s_admin();
    assert_int_equal(s_zcard(admin, svc, "due"), 2000);
    timer_fired_t f[TIMER_CLAIM_MAX];
    assert_int_equal(timer_claim_due(t, m.base + 9, f, TIMER_CLAIM_MAX), 10);
    assert_string_equal(f[0].key, "k0");
    assert_int_equal(f[9].due_ms, m.base + 9);
    assert_int_equal(timer_arm_all(t, s_failing_source, NULL), -1);
    assert_non_null(strstr(timer_error(t), "source"));
    redis_destroy(&admin);
    timers_destroy(&t);
}

static void
test_expired_lease_redelivered(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    timer_set_lease(t, 1000);
    const int64_t base = 1700000000000LL;
    assert_int_equal(timer_arm(t, "reply", "dies", base), 0);
    assert_int_equal(timer_arm(t, "reply", "lives", base + 1), 0);
    timer_fired_t f[4];
    assert_int_equal(timer_claim_due(t, base + 1, f, 4), 2);
    assert_false(f[0].redelivered);
    /* "lives" is handled; the claimer of "dies" dies before timer_done */
    assert_int_equal(timer_done(t, "reply", "lives"), 0);
    assert_int_equal(timer_claim_due(t, base + 1000, f, 4), 0); /* lease ends at base+1001 */
    assert_int_equal(timer_claim_due(t, base + 1001, f, 4), 1);
    assert_string_equal(f[0].key, "dies");
    assert_true(f[0].redelivered);
    assert_int_equal(f[0].due_ms, base + 1001);
    /* leased again: not delivered twice within the new lease */
    assert_int_equal(timer_claim_due(t, base + 1500, f, 4), 0);
    assert_int_equal(timer_done(t, "reply", "dies"), 0);
    assert_int_equal(timer_claim_due(t, base + 100000, f, 4), 0);

    /* a timer armed again while claimed keeps its new due time after timer_done */
    assert_int_equal(timer_arm(t, "remind", "r", base), 0);
    assert_int_equal(timer_claim_due(t, base, f, 4), 1);
    assert_int_equal(timer_arm(t, "remind", "r", base + 5000), 0);
    assert_int_equal(timer_done(t, "remind", "r"), 0);
    assert_int_equal(timer_claim_due(t, base + 4999, f, 4), 0);
    assert_int_equal(timer_claim_due(t, base + 5000, f, 4), 1);
    assert_false(f[0].redelivered);
    timers_destroy(&t);
}

typedef struct {
    const char *svc;
    int64_t now;
    _Atomic int *hits; /* claims per member index */
    int claimed;       /* by this thread */
    int rounds;
} s_claimer_t;

static void *
s_claimer(void *arg)
{
    s_claimer_t *c = arg;
    char err[256];
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), c->svc, err, sizeof err);
    if (!t)
        return NULL;
    timer_fired_t f[37];
    int empty = 0;
    for (int round = 0; round < 10000 && empty < 3; round++) {
        int n = timer_claim_due(t, c->now, f, 37);
        if (n < 0)
            break;
        c->rounds++;
        empty = n == 0 ? empty + 1 : 0;
        for (int i = 0; i < n; i++) {
            int idx = atoi(f[i].key);
            if (idx >= 0 && idx < 2000)
                atomic_fetch_add(&c->hits[idx], 1);
            c->claimed++;
        }
    }
    timers_destroy(&t);
    return NULL;
}

static void
test_concurrent_claimers_never_share(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    const int64_t base = 1700000000000LL;
    static _Atomic int hits[2000];
    for (int i = 0; i < 2000; i++)
        atomic_init(&hits[i], 0);
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        assert_int_equal(timer_arm(t, "reply", key, base + i % 97), 0);
    }
    s_claimer_t c[2] = {{svc, base + 100, hits, 0, 0}, {svc, base + 100, hits, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, s_claimer, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    print_message("two claimers: %d and %d members in %d and %d rounds\n", c[0].claimed,
                  c[1].claimed, c[0].rounds, c[1].rounds);
    assert_int_equal(c[0].claimed + c[1].claimed, 2000);
    assert_true(c[0].claimed > 0 && c[1].claimed > 0);
    for (int i = 0; i < 2000; i++)
        if (atomic_load(&hits[i]) != 1)
            fail_msg("member %d claimed %d times", i, atomic_load(&hits[i]));
    timers_destroy(&t);
}

/* The CLIENT ID of the connection named name, or -1. */
static long long
s_client_id(redis_t *admin, const char *name)
{
    redisReply *r = redis_command(admin, 2, (const char *[]){"CLIENT", "LIST"}, NULL);
    assert_non_null(r);
    long long id = -1;
    char pat[96];
    snprintf(pat, sizeof pat, " name=%s ", name);
    for (char *line = r->str; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strstr(line, pat) && strncmp(line, "id=", 3) == 0)
            id = atoll(line + 3);
        line = nl ? nl + 1 : NULL;
    }
    freeReplyObject(r);
    return id;
}

static void
test_reconnect_after_client_kill(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    assert_true(timer_needs_rearm(t));
    assert_int_equal(timer_generation(t), 0);
    assert_int_equal(timer_rearm(t, s_empty_source, NULL), 0);
    assert_false(timer_needs_rearm(t));
    assert_int_equal(timer_generation(t), 1);

    redis_t *admin = s_admin();
    char name[64];
    snprintf(name, sizeof name, "sx-timer-%s", svc);
    long long id = s_client_id(admin, name);
    assert_true(id > 0);
    char sid[32];
    snprintf(sid, sizeof sid, "%lld", id);
    assert_int_equal(s_admin_int(admin, 4, (const char *[]){"CLIENT", "KILL", "ID", sid}), 1);

    /* The next call meets the dead connection, reconnects and succeeds. */
    assert_int_equal(timer_arm(t, "reply", "after-kill", 1), 0);
    assert_int_equal(timer_generation(t), 2);
    assert_true(timer_needs_rearm(t));
    long long id2 = s_client_id(admin, name);
    assert_true(id2 > 0 && id2 != id);
    assert_int_equal(timer_rearm(t, s_empty_source, NULL), 0);
    assert_false(timer_needs_rearm(t));
    timer_fired_t f[2];
    assert_int_equal(timer_claim_due(t, 1, f, 2), 1);
    assert_string_equal(f[0].key, "after-kill");
    redis_destroy(&admin);
    timers_destroy(&t);
}

static void
test_unreachable_redis_fails_quickly(void **state)
{
    (void)state;
    /* port 1 on loopback: nothing listens there */
    char err[256] = "";
    timers_t *t = timers_new("redis://127.0.0.1:1/0", "intake", err, sizeof err);
    assert_non_null(t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(timer_arm(t, "reply", "k", 1), -1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_non_null(strstr(timer_error(t), "refused"));
    assert_true(ms < 5000); /* one reconnect wait (2 s), not two */
    assert_int_equal(timer_rearm(t, s_empty_source, NULL), -1);
    assert_true(timer_needs_rearm(t));
    timers_destroy(&t);
}

static void
test_flushall_noticed_by_claim(void **state)
{
    (void)state;
    char svc[32];
    timers_t *t = s_timers(s_svc(svc, sizeof svc));
    assert_int_equal(timer_rearm(t, s_empty_source, NULL), 0);
    timer_fired_t f[2];
    assert_int_equal(timer_claim_due(t, 1, f, 2), 0);
    assert_false(timer_needs_rearm(t));
    redis_t *admin = s_admin();
    s_admin_ok(admin, 1, (const char *[]){"FLUSHALL"});
    /* same connection, so only the missing mark can tell */
    assert_int_equal(timer_claim_due(t, 1, f, 2), 0);
    assert_true(timer_needs_rearm(t));
    assert_int_equal(timer_rearm(t, s_empty_source, NULL), 0);
    assert_false(timer_needs_rearm(t));
    redis_destroy(&admin);
    timers_destroy(&t);
}

/* --- the test: 10,000 deadlines survive FLUSHALL and a restart --- */

static void
s_pg_ok(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* What a service's source does: read its pending deadlines, hand each to the batch. */
static int
s_pg_source(void *arg, timer_batch_t *b)
{
    PGconn *c = arg;
    PGresult *r = PQexec(c, "SELECT kind, key, due_ms FROM deadline WHERE done_at IS NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = timer_batch_add(b, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                             strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    return rc;
}

static uint64_t
s_fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void
test_flushall_and_restart_lose_no_deadline(void **state)
{
    (void)state;
    char *url = ts_fresh_db("timer");
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(pg));
    s_pg_ok(pg,
            "CREATE TABLE deadline (kind text NOT NULL, key text NOT NULL, due_ms bigint NOT "
            "NULL, done_at timestamptz, PRIMARY KEY (kind, key))",
            0, NULL);
    /* Due over [base, base + 2 s]; base leaves time to arm, flush and rearm first. */
    const int64_t base = timer_now_ms() + 1500;
    char sbase[24], sn[16], sspread[16];
    snprintf(sbase, sizeof sbase, "%" PRId64, base);
    snprintf(sn, sizeof sn, "%d", N_DEADLINES);
    snprintf(sspread, sizeof sspread, "%d", SPREAD_MS);
    s_pg_ok(pg,
            "INSERT INTO deadline (kind, key, due_ms) SELECT 'reply', 'case-' || i, "
            "$1::bigint + i::bigint * $3::bigint / ($2::bigint - 1) "
            "FROM generate_series(0, $2::int - 1) AS i",
            3, (const char *const[]){sbase, sn, sspread});
    /* and one that is already done: never armed */
    s_pg_ok(pg, "INSERT INTO deadline VALUES ('reply', 'finished', 0, now())", 0, NULL);

    char svc[32];
    s_svc(svc, sizeof svc);
    timers_t *t = s_timers(svc);
    assert_int_equal(timer_rearm(t, s_pg_source, pg), N_DEADLINES);
    redis_t *admin = s_admin();
    assert_int_equal(s_zcard(admin, svc, "due"), N_DEADLINES);

    /* Redis loses everything, and the owner restarts. */
    s_admin_ok(admin, 1, (const char *[]){"FLUSHALL"});
    assert_int_equal(s_zcard(admin, svc, "due"), 0);
    timers_destroy(&t);
    t = s_timers(svc);
    assert_true(timer_needs_rearm(t));
    assert_int_equal(timer_rearm(t, s_pg_source, pg), N_DEADLINES);
    assert_false(timer_needs_rearm(t));
    int64_t rearmed_at = timer_now_ms();

    static unsigned char seen[N_DEADLINES];
    memset(seen, 0, sizeof seen);
    static int64_t late[N_DEADLINES];
    int got = 0, early = 0, dup = 0, claims = 0;
    uint64_t sum = 0, xhash = 0;
    timer_fired_t f[500];
    const int64_t give_up = base + SPREAD_MS + 10000;
    while (got < N_DEADLINES && timer_now_ms() < give_up && claims < 1000000) {
        int64_t now = timer_now_ms();
        int n = timer_claim_due(t, now, f, 500);
        if (n < 0)
            fail_msg("claim: %s", timer_error(t));
        claims++;
        int64_t at = timer_now_ms();
        for (int i = 0; i < n; i++) {
            int idx = atoi(f[i].key + 5);
            assert_true(strncmp(f[i].key, "case-", 5) == 0 && idx >= 0 && idx < N_DEADLINES);
            int64_t due = base + (int64_t)idx * SPREAD_MS / (N_DEADLINES - 1);
            assert_int_equal(f[i].due_ms, due);
            if (due > now)
                early++;
            if (seen[idx]++) {
                dup++;
                continue;
            }
            late[got++] = at - due;
            sum += (uint64_t)idx;
            xhash ^= s_fnv(f[i].key);
            assert_int_equal(timer_done(t, f[i].kind, f[i].key), 0);
        }
        if (n == 0)
            s_sleep_ms(1);
    }
    /* the expected checksum */
    uint64_t want_sum = 0, want_x = 0;
    for (int i = 0; i < N_DEADLINES; i++) {
        char key[32];
        snprintf(key, sizeof key, "case-%d", i);
        want_sum += (uint64_t)i;
        want_x ^= s_fnv(key);
    }
    assert_int_equal(early, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(got, N_DEADLINES);
    assert_int_equal(sum, want_sum);
    assert_int_equal(xhash, want_x);
    /* nothing more, even much later (every claim was done) */
    assert_int_equal(timer_claim_due(t, timer_now_ms() + 3600 * 1000, f, 500), 0);
    assert_int_equal(s_zcard(admin, svc, "due"), 0);
    assert_int_equal(s_zcard(admin, svc, "claimed"), 0);

    qsort(late, (size_t)got, sizeof late[0], s_cmp_i64);
    print_message("timer: %d deadlines, FLUSHALL + restart + rearm (rearm done %" PRId64
                  " ms before the first was due), each fired exactly once in %d claims; "
                  "lateness ms: median %" PRId64 ", p99 %" PRId64 ", latest %" PRId64 "\n",
                  got, base - rearmed_at, claims, late[got / 2], late[got * 99 / 100],
                  late[got - 1]);
    redis_destroy(&admin);
    timers_destroy(&t);
    PQfinish(pg);
    free(url);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_validated),
        cmocka_unit_test(test_arm_cancel_claim),
        cmocka_unit_test(test_arm_all_pipelined),
        cmocka_unit_test(test_expired_lease_redelivered),
        cmocka_unit_test(test_concurrent_claimers_never_share),
        cmocka_unit_test(test_reconnect_after_client_kill),
        cmocka_unit_test(test_unreachable_redis_fails_quickly),
        cmocka_unit_test(test_flushall_noticed_by_claim),
        cmocka_unit_test(test_flushall_and_restart_lose_no_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
