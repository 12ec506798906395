/* redis: URL parsing, and a connection to the harness's real Redis that survives being
 * killed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "redis.h"
#include "tsupport.h"

static void
test_url_parse(void **state)
{
    (void)state;
    redis_url_t u;
    char err[256];
    assert_int_equal(redis_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "");
    assert_int_equal(redis_url_parse("redis://cache", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("REDIS://h/", &u, err, sizeof err), 0);
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("redis://:s%40cret@h:1/15", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s@cret");
    assert_int_equal(u.db, 15);
    assert_int_equal(redis_url_parse("redis://app:pw@[::1]:7000", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);

    struct {
        const char *url, *why;
    } bad[] = {
        {"", "empty"},
        {"http://h", "redis://"},
        {"rediss://h", "TLS"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:12x", "port"},
        {"redis://h:", "port"},
        {"redis://h/x", "database"},
        {"redis://h/65536", "database"},
        {"redis://h/1/2", "database"},
        {"redis://h?db=1", "query"},
        {"redis://pw@h", "credentials"},
        {"redis://:p%zz@h", "password"},
        {"redis://[::1", "unclosed"},
        {"redis://h o", "space"},
        {"redis://h\n", "control"},
        {"redis://h$x", "host"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (redis_url_parse(bad[i].url, &u, err, sizeof err) != -1)
            fail_msg("accepted %s", bad[i].url);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: reason \"%s\" does not say %s", bad[i].url, err, bad[i].why);
    }
    /* the reason never holds the password */
    assert_int_equal(redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
}

static redis_t *
s_redis(const char *url, const char *name)
{
    char err[256] = "";
    redis_t *r = redis_new(url, 1000, name, err, sizeof err);
    if (!r)
        fail_msg("redis_new: %s", err);
    return r;
}

static void
test_commands_and_db(void **state)
{
    (void)state;
    /* the harness URL is .../0; the same server's db 3 must be a different keyspace */
    const char *url = ts_env("SX_REDIS_URL");
    char url3[256];
    snprintf(url3, sizeof url3, "%.*s/3", (int)(strrchr(url, '/') - url), url);
    redis_t *r0 = s_redis(url, "t-db0");
    redis_t *r3 = s_redis(url3, NULL);
    assert_false(redis_connected(r0));
    assert_int_equal(redis_generation(r0), 0);
    redisReply *rep = redis_command(r3, 3, (const char *[]){"SET", "sx:test:db", "three"}, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = redis_command(r0, 2, (const char *[]){"GET", "sx:test:db"}, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    assert_true(redis_connected(r0));
    assert_int_equal(redis_generation(r0), 1);
    /* binary-safe arguments */
    rep = redis_command(r3, 3, (const char *[]){"SET", "sx:test:bin", "a\0b"},
                        (const size_t[]){3, 11, 3});
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = redis_command(r3, 2, (const char *[]){"GET", "sx:test:bin"}, NULL);
    assert_int_equal(rep->len, 3);
    assert_memory_equal(rep->str, "a\0b", 3);
    freeReplyObject(rep);
    /* an error reply is a reply; the connection stays */
    rep = redis_command(r3, 2, (const char *[]){"LPUSH", "sx:test:db"}, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    assert_true(redis_connected(r3));
    /* pipelining */
    for (int i = 0; i < 100; i++)
        assert_int_equal(redis_append(r3, 2, (const char *[]){"INCR", "sx:test:n"}, NULL), 0);
    for (int i = 1; i <= 100; i++) {
        rep = redis_reply(r3);
        assert_non_null(rep);
        assert_int_equal(rep->integer, i);
        freeReplyObject(rep);
    }
    rep = redis_command(r3, 1, (const char *[]){"FLUSHDB"}, NULL);
    freeReplyObject(rep);
    redis_destroy(&r0);
    redis_destroy(&r3);
    redis_destroy(&r3);
    assert_null(r3);
}

static void
test_reconnect_after_kill(void **state)
{
    (void)state;
    const char *url = ts_env("SX_REDIS_URL");
    redis_t *victim = s_redis(url, "t-victim");
    redis_t *admin = s_redis(url, NULL);
    redisReply *rep = redis_command(victim, 2, (const char *[]){"CLIENT", "ID"}, NULL);
    assert_non_null(rep);
    char id[32];
    snprintf(id, sizeof id, "%lld", rep->integer);
    freeReplyObject(rep);
    rep = redis_command(admin, 4, (const char *[]){"CLIENT", "KILL", "ID", id}, NULL);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);

    /* the call that meets the dead connection fails, and says so */
    assert_null(redis_command(victim, 1, (const char *[]){"PING"}, NULL));
    assert_false(redis_connected(victim));
    assert_true(strlen(redis_error(victim)) > 0);
    /* the next one reconnects */
    rep = redis_command(victim, 1, (const char *[]){"PING"}, NULL);
    assert_non_null(rep);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    assert_int_equal(redis_generation(victim), 2);
    /* with the name set again */
    rep = redis_command(victim, 2, (const char *[]){"CLIENT", "GETNAME"}, NULL);
    assert_string_equal(rep->str, "t-victim");
    freeReplyObject(rep);
    /* a server that stops answering: the command times out, a later one reconnects */
    rep = redis_command(admin, 3, (const char *[]){"CLIENT", "PAUSE", "1500"}, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_null(redis_command(victim, 1, (const char *[]){"PING"}, NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 900 && ms < 1400);
    assert_non_null(strstr(redis_error(victim), "timed out"));
    redis_set_reconnect_wait(victim, 3000);
    rep = redis_command(victim, 1, (const char *[]){"PING"}, NULL);
    assert_non_null(rep);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    assert_int_equal(redis_generation(victim), 3);
    redis_destroy(&victim);
    redis_destroy(&admin);
}

static void
test_unreachable(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(redis_new("redis://h", 1000, "bad name", err, sizeof err));
    assert_non_null(strstr(err, "client name"));
    redis_t *r = s_redis("redis://127.0.0.1:1", NULL);
    redis_set_reconnect_wait(r, 300);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_null(redis_command(r, 1, (const char *[]){"PING"}, NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 150 && ms < 2000);
    assert_non_null(strstr(redis_error(r), "127.0.0.1:1"));
    assert_non_null(strstr(redis_error(r), "refused"));
    assert_int_equal(redis_connect(r, 0), -1);
    assert_int_equal(redis_generation(r), 0);
    redis_destroy(&r);

    char why[256] = "";
    assert_true(redis_ping_url(ts_env("SX_REDIS_URL"), 500, why, sizeof why));
    assert_false(redis_ping_url("redis://127.0.0.1:1/0", 500, why, sizeof why));
    assert_non_null(strstr(why, "refused"));
    assert_false(redis_ping_url("nope", 500, why, sizeof why));
    assert_non_null(strstr(why, "redis://"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_commands_and_db),
        cmocka_unit_test(test_reconnect_after_kill),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
