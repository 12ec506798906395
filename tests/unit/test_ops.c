/* ops: /metrics and /healthz over real HTTP, checks against the harness's real servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "ops.h"
#include "tsupport.h"

typedef struct {
    long status;
    char body[65536];
    size_t len;
    char type[128];
    char allow[64];
} s_resp_t;

static size_t
s_write(char *p, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t take = size * n;
    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t
s_header(char *p, size_t size, size_t n, void *arg)
{
    s_resp_t *r = arg;
    size_t len = size * n;
    if (len > 6 && strncasecmp(p, "Allow:", 6) == 0) {
        size_t n = len - 6;
        const char *v = p + 6;
        while (n > 0 && *v == ' ')
            v++, n--;
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n'))
            n--;
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)n, v);
    }
    return len;
}

/* One request; returns the response (status 0 when the transfer failed). */
static s_resp_t *
s_http(int port, const char *method, const char *path)
{
    s_resp_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
            snprintf(r->type, sizeof r->type, "%s", ct);
    }
    curl_easy_cleanup(c);
    return r;
}

static ops_t *
s_ops(void)
{
    char err[256] = "";
    ops_t *o = ops_new("127.0.0.1", 0, err, sizeof err);
    if (!o)
        fail_msg("ops_new: %s", err);
    assert_true(ops_port(o) > 0);
    return o;
}

static int
s_setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

static void
test_metrics_text(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    ops_metric_t *in = ops_counter(o, "sx_broker_messages_total", "dir=\"in\"",
                                   "Messages through the broker.\nSecond \\ line.");
    ops_metric_t *out = ops_counter(o, "sx_broker_messages_total", "dir=\"out\"", "ignored");
    assert_non_null(in);
    assert_non_null(out);
    assert_ptr_equal(ops_counter(o, "sx_broker_messages_total", "dir=\"in\"", NULL), in);
    char labels[128] = "";
    assert_int_equal(ops_label(labels, sizeof labels, "stream", "in\"ta\\ke\n"), 0);
    assert_int_equal(ops_label(labels, sizeof labels, "shard", "1"), 0);
    assert_string_equal(labels, "stream=\"in\\\"ta\\\\ke\\n\",shard=\"1\"");
    ops_metric_t *lag = ops_gauge(o, "sx_relay_lag_seconds", labels, "Relay lag.");
    ops_metric_t *plain = ops_gauge(o, "sx_up", NULL, NULL);
    const double bounds[] = {0.005, 0.1, 1, 2.5};
    ops_metric_t *h =
        ops_histogram(o, "sx_handler_seconds", "svc=\"intake\"", "Handler time.", bounds, 4);
    ops_metric_t *h0 = ops_histogram(o, "sx_handler_seconds", NULL, NULL, bounds, 2);
    assert_non_null(lag);
    assert_non_null(h);
    assert_non_null(h0);
    ops_add(in, 41);
    ops_inc(in);
    ops_inc(out);
    assert_int_equal(ops_counter_value(in), 42);
    ops_set(lag, 0.25);
    ops_set(plain, 1);
    ops_observe(h, 0.001); /* le 0.005 */
    ops_observe(h, 0.1);   /* le 0.1: bounds are inclusive */
    ops_observe(h, 0.5);
    ops_observe(h, 0.5);
    ops_observe(h, 3);   /* +Inf only */
    ops_observe(h, NAN); /* ignored */
    ops_inc(NULL);       /* a failed registration is harmless */

    s_resp_t *r = s_http(ops_port(o), "GET", "/metrics");
    assert_int_equal(r->status, 200);
    assert_string_equal(r->type, "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(
        r->body,
        "# HELP sx_broker_messages_total Messages through the broker.\\nSecond \\\\ line.\n"
        "# TYPE sx_broker_messages_total counter\n"
        "sx_broker_messages_total{dir=\"in\"} 42\n"
        "sx_broker_messages_total{dir=\"out\"} 1\n"
        "# HELP sx_relay_lag_seconds Relay lag.\n"
        "# TYPE sx_relay_lag_seconds gauge\n"
        "sx_relay_lag_seconds{stream=\"in\\\"ta\\\\ke\\n\",shard=\"1\"} 0.25\n"
        "# TYPE sx_up gauge\n"
        "sx_up 1\n"
        "# HELP sx_handler_seconds Handler time.\n"
        "# TYPE sx_handler_seconds histogram\n"
        "sx_handler_seconds_bucket{svc=\"intake\",le=\"0.005\"} 1\n"
        "sx_handler_seconds_bucket{svc=\"intake\",le=\"0.1\"} 2\n"
        "sx_handler_seconds_bucket{svc=\"intake\",le=\"1\"} 4\n"
        "sx_handler_seconds_bucket{svc=\"intake\",le=\"2.5\"} 4\n"
        "sx_handler_seconds_bucket{svc=\"intake\",le=\"+Inf\"} 5\n"
        "sx_handler_seconds_sum{svc=\"intake\"} 4.101\n"
        "sx_handler_seconds_count{svc=\"intake\"} 5\n"
        "sx_handler_seconds_bucket{le=\"0.005\"} 0\n"
        "sx_handler_seconds_bucket{le=\"0.1\"} 0\n"
        "sx_handler_seconds_bucket{le=\"+Inf\"} 0\n"
        "sx_handler_seconds_sum 0\n"
        "sx_handler_seconds_count 0\n");
    free(r);

    /* gauges take any double */
    ops_set(plain, -1e300);
    ops_set(lag, INFINITY);
    r = s_http(ops_port(o), "GET", "/metrics");
    assert_non_null(strstr(r->body, "\nsx_up -1e+300\n"));
    assert_non_null(strstr(r->body, "shard=\"1\"} +Inf\n"));
    free(r);
    ops_destroy(&o);
    ops_destroy(&o);
    assert_null(o);
}

static void
test_registration_refuses_bad_input(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    assert_null(ops_counter(o, "", NULL, NULL));
    assert_null(ops_counter(o, "9lives", NULL, NULL));
    assert_null(ops_counter(o, "a-b", NULL, NULL));
    assert_null(ops_counter(o, "a b", NULL, NULL));
    assert_null(ops_counter(o, "ok", "x=1", NULL));             /* unquoted */
    assert_null(ops_counter(o, "ok", "x=\"1\",", NULL));        /* trailing comma */
    assert_null(ops_counter(o, "ok", "x=\"a\nb\"", NULL));      /* raw newline */
    assert_null(ops_counter(o, "ok", "x=\"a\\tb\"", NULL));     /* unknown escape */
    assert_null(ops_counter(o, "ok", "x=\"1\",x=\"2\"", NULL)); /* twice */
    assert_null(ops_counter(o, "ok", "x=\"1\"} evil 1\n#", NULL));
    assert_null(ops_counter(o, "ok", "1x=\"1\"", NULL));
    const double b[] = {1, 2};
    const double unsorted[] = {2, 1};
    const double nan[] = {NAN};
    assert_null(ops_histogram(o, "h", "le=\"1\"", NULL, b, 2));
    assert_null(ops_histogram(o, "h", NULL, NULL, unsorted, 2));
    assert_null(ops_histogram(o, "h", NULL, NULL, nan, 1));
    assert_null(ops_histogram(o, "h", NULL, NULL, b, 0));
    assert_non_null(ops_counter(o, "ok", "x=\"\\\\ \\\" \\n\"", NULL));
    assert_non_null(ops_counter(o, "sx_a:b_total", NULL, NULL));
    /* one name, one type */
    assert_null(ops_gauge(o, "ok", "x=\"2\"", NULL));
    char small[8] = "";
    assert_int_equal(ops_label(small, sizeof small, "name", "value"), -1);
    assert_string_equal(small, "");
    assert_int_equal(ops_label(small, sizeof small, "bad-name", "v"), -1);
    ops_check_fn *fn = ops_check_redis;
    assert_int_equal(ops_check(o, "Bad Name", fn, NULL), -1);
    for (int i = 0; i < 16; i++)
        assert_int_equal(ops_check(o, "redis", fn, (void *)ts_env("SX_REDIS_URL")), 0);
    assert_int_equal(ops_check(o, "redis", fn, (void *)ts_env("SX_REDIS_URL")), -1);
    ops_destroy(&o);

    char err[256] = "";
    assert_null(ops_new("localhost", 0, err, sizeof err));
    assert_non_null(strstr(err, "bind address"));
    assert_null(ops_new("127.0.0.1", 70000, err, sizeof err));
    assert_non_null(strstr(err, "range"));
}

typedef struct {
    ops_metric_t *c, *h;
} s_hot_t;

static void *
s_hammer(void *arg)
{
    s_hot_t *hot = arg;
    for (int i = 0; i < 100000; i++) {
        ops_inc(hot->c);
        ops_observe(hot->h, (i % 4) * 0.5); /* 0, 0.5, 1, 1.5: sum 75000 per thread */
    }
    return NULL;
}

static void
test_concurrent_updates_sum_exactly(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    const double bounds[] = {0.5, 1};
    s_hot_t hot = {ops_counter(o, "sx_hot_total", NULL, "Hot counter."),
                   ops_histogram(o, "sx_hot_seconds", NULL, NULL, bounds, 2)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, s_hammer, &hot), 0);
    /* scraping while they run is safe */
    for (int i = 0; i < 5; i++)
        free(s_http(ops_port(o), "GET", "/metrics"));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(ops_counter_value(hot.c), 400000);
    s_resp_t *r = s_http(ops_port(o), "GET", "/metrics");
    assert_non_null(strstr(r->body, "\nsx_hot_total 400000\n"));
    assert_non_null(strstr(r->body, "\nsx_hot_seconds_bucket{le=\"0.5\"} 200000\n"));
    assert_non_null(strstr(r->body, "\nsx_hot_seconds_bucket{le=\"1\"} 300000\n"));
    assert_non_null(strstr(r->body, "\nsx_hot_seconds_bucket{le=\"+Inf\"} 400000\n"));
    assert_non_null(strstr(r->body, "\nsx_hot_seconds_sum 300000\n"));
    assert_non_null(strstr(r->body, "\nsx_hot_seconds_count 400000\n"));
    free(r);
    ops_destroy(&o);
}

/* A loopback port with nothing listening on it. */
static int
s_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void
test_healthz(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    assert_int_equal(ops_check(o, "postgres", ops_check_postgres, (void *)ts_env("SX_PG_URL")), 0);
    assert_int_equal(ops_check(o, "redis", ops_check_redis, (void *)ts_env("SX_REDIS_URL")), 0);
    s_resp_t *r = s_http(ops_port(o), "GET", "/healthz");
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "ok\n");
    free(r);
    ops_destroy(&o);

    /* Redis on a closed port: 503 naming redis only */
    char bad_redis[64], bad_pg[128];
    snprintf(bad_redis, sizeof bad_redis, "redis://127.0.0.1:%d/0", s_closed_port());
    o = s_ops();
    ops_check(o, "postgres", ops_check_postgres, (void *)ts_env("SX_PG_URL"));
    ops_check(o, "redis", ops_check_redis, bad_redis);
    r = s_http(ops_port(o), "GET", "/healthz");
    assert_int_equal(r->status, 503);
    print_message("healthz with Redis down: %s", r->body);
    assert_memory_equal(r->body, "redis: ", 7);
    assert_non_null(strstr(r->body, "refused"));
    assert_null(strstr(r->body, "postgres"));
    assert_int_equal(strchr(r->body, '\n') - r->body, (long)r->len - 1); /* one line */
    free(r);
    ops_destroy(&o);

    /* both down: one line each, in order */
    snprintf(bad_pg, sizeof bad_pg, "postgresql://sx@127.0.0.1:%d/sx", s_closed_port());
    o = s_ops();
    ops_check(o, "postgres", ops_check_postgres, bad_pg);
    ops_check(o, "redis", ops_check_redis, bad_redis);
    r = s_http(ops_port(o), "GET", "/healthz");
    assert_int_equal(r->status, 503);
    print_message("healthz with both down: %s", r->body);
    assert_memory_equal(r->body, "postgres: ", 10);
    char *second = strchr(r->body, '\n');
    assert_non_null(second);
    assert_memory_equal(second + 1, "redis: ", 7);
    free(r);
    /* a database that does not exist fails too (a real connect, not only a ping) */
    ops_destroy(&o);
    const char *pg = ts_env("SX_PG_URL");
    snprintf(bad_pg, sizeof bad_pg, "%.*s/no_such_db", (int)(strrchr(pg, '/') - pg), pg);
    char why[256] = "";
    assert_false(ops_check_postgres(bad_pg, why, sizeof why));
    assert_non_null(strstr(why, "no_such_db"));
    assert_true(ops_check_postgres((void *)pg, why, sizeof why));
}

static void
test_not_found_and_method(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    s_resp_t *r = s_http(ops_port(o), "GET", "/nope");
    assert_int_equal(r->status, 404);
    free(r);
    r = s_http(ops_port(o), "GET", "/metrics/extra");
    assert_int_equal(r->status, 404);
    free(r);
    r = s_http(ops_port(o), "POST", "/metrics");
    assert_int_equal(r->status, 405);
    assert_string_equal(r->allow, "GET, HEAD");
    free(r);
    r = s_http(ops_port(o), "DELETE", "/healthz");
    assert_int_equal(r->status, 405);
    free(r);
    r = s_http(ops_port(o), "HEAD", "/metrics");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->len, 0);
    free(r);
    /* a query string does not change the path */
    r = s_http(ops_port(o), "GET", "/healthz?verbose=1");
    assert_int_equal(r->status, 200);
    free(r);
    ops_destroy(&o);
}

static void
test_oversized_request_refused(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    CURL *c = curl_easy_init();
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", ops_port(o));
    static char big[40000];
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'a', sizeof big - 8);
    big[sizeof big - 1] = '\0';
    struct curl_slist *h = curl_slist_append(NULL, big);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    s_resp_t *r = calloc(1, sizeof *r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    /* refused with 413/431, or the connection closed: never served */
    assert_true(rc != CURLE_OK || status >= 400);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(r);
    /* and the listener still serves */
    r = s_http(ops_port(o), "GET", "/metrics");
    assert_int_equal(r->status, 200);
    free(r);
    ops_destroy(&o);
}

static void
test_port_in_use(void **state)
{
    (void)state;
    ops_t *o = s_ops();
    char err[256] = "";
    assert_null(ops_new("127.0.0.1", ops_port(o), err, sizeof err));
    print_message("port in use: %s\n", err);
    assert_non_null(strstr(err, "in use"));
    ops_destroy(&o);

    /* a port some other program holds */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    assert_null(ops_new("127.0.0.1", ntohs(a.sin_port), err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    close(fd);
    /* IPv6 loopback works where the host has it */
    o = ops_new("::1", 0, err, sizeof err);
    if (o) {
        assert_true(ops_port(o) > 0);
        ops_destroy(&o);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_registration_refuses_bad_input),
        cmocka_unit_test(test_concurrent_updates_sum_exactly),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_oversized_request_refused),
        cmocka_unit_test(test_port_in_use),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
