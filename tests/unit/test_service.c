/* service: the settings every service reads alike, the key file reloaded on SIGHUP, a
 * stop on SIGTERM, the poll timeout the loops share, and a PUB socket to the broker. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include "service.h"
#include "tsupport.h"
#include "util.h"
#include "zsock.h"

static const char *const s_vars[] = {"SX_PG_URL",     "SX_REDIS_URL",         "SX_T_BIND",
                                     "SX_KEY_FILE",   "SX_KEYS_FILE",         "SX_BROKER_PUB",
                                     "SX_BROKER_SUB", "SX_BROKER_PUBLIC_KEY", "SX_OPS_PORT",
                                     "SX_SCHEMAS",    "SX_LOG_LEVEL",         NULL};

/* The harness's own SX_PG_URL and SX_REDIS_URL are put back after each test. */
static char s_pg[4096], s_redis[4096];

static int
s_setup(void **state)
{
    (void)state;
    snprintf(s_pg, sizeof s_pg, "%s", getenv("SX_PG_URL") ? getenv("SX_PG_URL") : "");
    snprintf(s_redis, sizeof s_redis, "%s", getenv("SX_REDIS_URL") ? getenv("SX_REDIS_URL") : "");
    for (int i = 0; s_vars[i]; i++)
        unsetenv(s_vars[i]);
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    for (int i = 0; s_vars[i]; i++)
        unsetenv(s_vars[i]);
    if (s_pg[0])
        setenv("SX_PG_URL", s_pg, 1);
    if (s_redis[0])
        setenv("SX_REDIS_URL", s_redis, 1);
    return 0;
}

/* A key pair in a fresh directory, and a key file naming it svc:test. */
static void
s_keys(char *dir, size_t dirlen, char pub[KEYS_Z85_LEN + 1], char *keys_path, size_t pathlen)
{
    char err[512];
    char *d = ts_mkdtemp("service");
    snprintf(dir, dirlen, "%s", d);
    free(d);
    assert_int_equal(keys_write_pair(dir, "test", pub, err, sizeof err), 0);
    snprintf(keys_path, pathlen, "%s/keys", dir);
    FILE *f = fopen(keys_path, "w");
    assert_non_null(f);
    fprintf(f, "%s svc:test\n", pub);
    fclose(f);
}

static void
test_missing_settings_each_named(void **state)
{
    (void)state;
    config_t *cfg = config_new();
    service_config_t c = {0};
    service_config_read(cfg, &c, "SX_T_BIND", "tcp://127.0.0.1:1", 9999, true);
    const char *e = config_error(cfg);
    assert_non_null(e);
    const char *want[] = {"SX_PG_URL: required",           "SX_REDIS_URL: required",
                          "SX_KEY_FILE: required",         "SX_KEYS_FILE: required",
                          "SX_BROKER_PUB: required",       "SX_BROKER_SUB: required",
                          "SX_BROKER_PUBLIC_KEY: required"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_non_null(strstr(e, want[i]));
    assert_string_equal(c.bind, "tcp://127.0.0.1:1");
    assert_int_equal(c.ops_port, 9999);
    assert_string_equal(c.ops_bind, "127.0.0.1");
    config_destroy(&cfg);

    /* Without Redis, SX_REDIS_URL is neither read nor required. */
    setenv("SX_REDIS_URL", "redis://127.0.0.1:1", 1);
    cfg = config_new();
    service_config_read(cfg, &c, "SX_T_BIND", "tcp://127.0.0.1:1", 9999, false);
    assert_null(c.redis_url);
    assert_null(strstr(config_error(cfg), "SX_REDIS_URL"));
    config_destroy(&cfg);
}

static void
test_endpoints_and_keys_checked(void **state)
{
    (void)state;
    char dir[4096], keys_path[4200], key_path[4200], pub[KEYS_Z85_LEN + 1];
    s_keys(dir, sizeof dir, pub, keys_path, sizeof keys_path);
    snprintf(key_path, sizeof key_path, "%s/test.key", dir);
    setenv("SX_PG_URL", "postgresql://127.0.0.1/x", 1);
    setenv("SX_T_BIND", "inproc://door", 1);
    setenv("SX_KEY_FILE", key_path, 1);
    setenv("SX_KEYS_FILE", keys_path, 1);
    setenv("SX_BROKER_PUB", "tcp://127.0.0.1:1", 1);
    setenv("SX_BROKER_SUB", "udp://127.0.0.1:2", 1);
    setenv("SX_BROKER_PUBLIC_KEY", "short", 1);
    setenv("SX_SCHEMAS", dir, 1);

    config_t *cfg = config_new();
    service_config_t c = {0};
    service_config_read(cfg, &c, "SX_T_BIND", "tcp://127.0.0.1:1", 9999, false);
    assert_null(config_error(cfg));
    service_config_endpoints(cfg, &c, "SX_T_BIND");
    service_config_check(cfg, &c);
    const char *e = config_error(cfg);
    assert_non_null(strstr(e, "SX_T_BIND: expected a tcp:// or ipc:// endpoint"));
    assert_non_null(strstr(e, "SX_BROKER_SUB: expected a tcp:// or ipc:// endpoint"));
    assert_null(strstr(e, "SX_BROKER_PUB:"));
    assert_non_null(strstr(e, "SX_BROKER_PUBLIC_KEY: expected 40 Z85 characters"));
    assert_null(strstr(e, "SX_KEY_FILE"));
    assert_null(strstr(e, "SX_KEYS_FILE"));
    assert_null(strstr(e, "SX_SCHEMAS"));
    assert_string_equal(c.pub, pub);
    config_destroy(&cfg);

    /* A key file that does not load and a schemas path that is not a directory. */
    setenv("SX_KEYS_FILE", key_path, 1); /* a pair file is not a key table */
    setenv("SX_SCHEMAS", keys_path, 1);
    cfg = config_new();
    service_config_read(cfg, &c, "SX_T_BIND", "tcp://127.0.0.1:1", 9999, false);
    service_config_check(cfg, &c);
    e = config_error(cfg);
    assert_non_null(strstr(e, "SX_KEYS_FILE: "));
    assert_non_null(strstr(e, "SX_SCHEMAS: not a directory"));
    explicit_bzero(c.sec, sizeof c.sec);
    config_destroy(&cfg);
}

static void
test_sighup_reloads_keys_sigterm_stops(void **state)
{
    (void)state;
    char dir[4096], keys_path[4200], pub[KEYS_Z85_LEN + 1], err[512] = "";
    s_keys(dir, sizeof dir, pub, keys_path, sizeof keys_path);
    service_t *svc = service_new("test", keys_path, NULL);
    assert_non_null(svc);
    assert_true(svc->sigfd >= 0);
    ops_t *ops = ops_new("127.0.0.1", 0, err, sizeof err);
    assert_non_null(ops);
    svc->m_load_ok = ops_counter(ops, "sx_test_loads_total", "result=\"ok\"", "loads");
    svc->m_load_bad = ops_counter(ops, "sx_test_loads_total", "result=\"error\"", "loads");
    assert_int_equal(service_zap(svc, (const char *const[]){"svc:", NULL}, ops, err, sizeof err),
                     0);
    assert_int_equal(ops_counter_value(svc->m_load_ok), 1);

    /* SIGHUP: loaded again; a file gone bad keeps the old keys and counts an error. */
    raise(SIGHUP);
    assert_false(service_signals(svc));
    assert_int_equal(ops_counter_value(svc->m_load_ok), 2);
    FILE *f = fopen(keys_path, "w");
    assert_non_null(f);
    fputs("not a key line\n", f);
    fclose(f);
    raise(SIGHUP);
    assert_false(service_signals(svc));
    assert_int_equal(ops_counter_value(svc->m_load_ok), 2);
    assert_int_equal(ops_counter_value(svc->m_load_bad), 1);

    /* Nothing waiting: no stop. SIGTERM: stop. */
    assert_false(service_signals(svc));
    raise(SIGTERM);
    assert_true(service_signals(svc));

    service_destroy(&svc);
    assert_null(svc);
    service_destroy(&svc); /* idempotent */
    ops_destroy(&ops);
}

static void
test_poll_timeout(void **state)
{
    (void)state;
    service_t *svc = service_new("test", NULL, NULL);
    assert_non_null(svc);
    int64_t now = util_mono_ms();
    /* No relay: only the caller's moment counts, kept within 0..1000 ms. */
    assert_int_equal(service_poll_ms(svc, now + 250, now), 250);
    assert_int_equal(service_poll_ms(svc, now - 5, now), 0);
    assert_int_equal(service_poll_ms(svc, INT64_MAX, now), 1000);
    zmq_pollitem_t item;
    assert_int_equal(service_relay_pollitem(svc, &item), 0);
    service_relay_turn(svc, true, now); /* without a relay: nothing */
    service_destroy(&svc);
}

/* service_pub: a PUB socket that reaches the broker's publisher side over CURVE (here a
 * SUB server standing in for the broker, admitting the key through svc's ZAP handler),
 * owned by the caller, not by svc; a bad endpoint gives NULL and the reason. */
static void
test_pub_reaches_broker(void **state)
{
    (void)state;
    char dir[4096], keys_path[4200], key_path[4200], pub[KEYS_Z85_LEN + 1], err[512] = "";
    s_keys(dir, sizeof dir, pub, keys_path, sizeof keys_path);
    snprintf(key_path, sizeof key_path, "%s/test.key", dir);
    service_config_t c = {0};
    assert_int_equal(keys_read_pair(key_path, c.pub, c.sec, err, sizeof err), 0);
    c.broker_key = c.pub; /* the stand-in broker serves with the same pair */
    service_t *svc = service_new("test", keys_path, &c);
    assert_non_null(svc);
    assert_int_equal(service_zap(svc, (const char *const[]){"svc:", NULL}, NULL, err, sizeof err),
                     0);
    void *broker = zsock_server(svc->ctx, ZMQ_SUB, svc->zap, "test", c.sec, &ZSOCK_LIMITS_DEFAULT,
                                err, sizeof err);
    assert_non_null(broker);
    assert_int_equal(zmq_setsockopt(broker, ZMQ_SUBSCRIBE, "", 0), 0);
    char endpoint[256];
    assert_int_equal(zsock_bind(broker, "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(zsock_endpoint(broker, endpoint, sizeof endpoint), 0);
    c.broker_pub = endpoint;

    void *out = service_pub(svc, err, sizeof err);
    assert_non_null(out);
    assert_null(svc->pub); /* the caller's, not svc's */
    assert_null(svc->relay);
    /* A PUB drops what it sends before the handshake ends: send until one arrives. */
    char got[16] = "";
    for (int i = 0; i < 100 && !got[0]; i++) {
        assert_int_equal(zmq_send(out, "hello", 5, 0), 5);
        zmq_pollitem_t item = {broker, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) == 1) {
            int n = zmq_recv(broker, got, sizeof got - 1, 0);
            assert_int_equal(n, 5);
            got[n] = '\0';
        }
    }
    assert_string_equal(got, "hello");
    zsock_close(&out);

    /* An endpoint libzmq refuses: NULL, the reason in err, nothing left open. */
    c.broker_pub = "bogus://127.0.0.1:1";
    err[0] = '\0';
    assert_null(service_pub(svc, err, sizeof err));
    assert_true(err[0] != '\0');

    zsock_close(&broker);
    service_destroy(&svc);
    explicit_bzero(c.sec, sizeof c.sec);
}

/* What `GET /metrics` on port answers (malloc'ed), through libcurl. */
static size_t
s_collect(char *p, size_t size, size_t n, void *arg)
{
    char **buf = arg;
    size_t have = *buf ? strlen(*buf) : 0;
    char *b = realloc(*buf, have + size * n + 1);
    assert_non_null(b);
    memcpy(b + have, p, size * n);
    b[have + size * n] = '\0';
    *buf = b;
    return size * n;
}

static char *
s_metrics(int port)
{
    char url[64], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    assert_non_null(body);
    return body;
}

/* What service_calendar_watch writes to stderr (the log), and its days left. */
static int
s_watch(ops_t *ops, const workday_t *cal, date_t today, char *log, size_t loglen)
{
    char *dir = ts_mkdtemp("calwatch"), path[512];
    snprintf(path, sizeof path, "%s/stderr", dir);
    free(dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    int left = service_calendar_watch(ops, "t", cal, today);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, log, loglen - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    return left;
}

/* The calendar's end is published as a gauge ops can alert on, and within 60 days of it
 * the log says to install next year's. */
static void
test_calendar_end_is_announced(void **state)
{
    (void)state;
    char *path = ts_write_tmp("cal.json", "{\"2025\": {\"holidays\": [\"2025-10-01\"], "
                                          "\"workdays\": [\"2025-09-28\"]}, \"2026\": "
                                          "{\"holidays\": [\"2026-10-01\"], \"workdays\": []}}");
    char err[256], log[4096];
    workday_t *cal = service_calendar_load(path, err, sizeof err);
    assert_non_null(cal);
    assert_null(service_calendar_load("/nonexistent/cal.json", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/cal.json"));
    ops_t *ops = ops_new("127.0.0.1", 0, err, sizeof err);
    assert_non_null(ops);

    /* Months ahead: the gauge only. */
    assert_int_equal(s_watch(ops, cal, date_from_ymd(2026, 9, 1), log, sizeof log), 121);
    assert_null(strstr(log, "calendar"));
    char *m = s_metrics(ops_port(ops));
    /* 2026-12-31 24:00 in China Standard Time. */
    assert_non_null(strstr(m, "\nsx_t_calendar_covered_until_seconds 1798732800\n"));
    free(m);

    /* Today, 34 days before the end: a warning naming the last day and what to do. */
    assert_int_equal(s_watch(NULL, cal, date_from_ymd(2026, 11, 27), log, sizeof log), 34);
    assert_non_null(strstr(log, "level=warn"));
    assert_non_null(strstr(log, "SX_CALENDAR"));
    assert_non_null(strstr(log, "last_day=2026-12-31"));
    assert_non_null(strstr(log, "days_left=34"));
    assert_int_equal(s_watch(NULL, cal, date_from_ymd(2027, 1, 2), log, sizeof log), -2);
    assert_non_null(strstr(log, "days_left=-2"));

    ops_destroy(&ops);
    workday_destroy(&cal);
    free(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_settings_each_named, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_and_keys_checked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reloads_keys_sigterm_stops, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_poll_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_pub_reaches_broker, s_setup, s_teardown),
        cmocka_unit_test(test_calendar_end_is_announced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
