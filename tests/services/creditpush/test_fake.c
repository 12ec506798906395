/* tools/fake-credit spoken to by deliver.c: signature and token checked, every field
 * checked, duplicates counted by key, the admin modes (500, hang, refuse). Needs SX_BIN
 * and SX_TMP (tests/run under tests/harness/with-servers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../../../services/creditpush/deliver.h"
#include "sgs_record.h"
#include "fixtures.h"
#include "tproc.h"

#define S_TOKEN "t0ken-for-tests"
#define S_KEY   "hmac-key-for-tests"

typedef struct {
    pid_t pid;
    int port;
    char url[96];
} s_fx_t;

static int
s_setup(void **state)
{
    static s_fx_t fx;
    fx.port = tp_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", fx.port);
    snprintf(fx.url, sizeof fx.url, "http://127.0.0.1:%d/api/v1/sgs", fx.port);
    const char *args[] = {"--port", port, NULL};
    const char *env[] = {"SX_CREDIT_TOKEN=" S_TOKEN, "SX_CREDIT_HMAC_KEY=" S_KEY, NULL};
    fx.pid = tp_spawn("fake-credit", args, "fake-credit", env);
    tp_wait_log("fake-credit", "fake-credit listening", 5000);
    *state = &fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(tp_stop(fx->pid, SIGTERM, 5000), 0);
    return 0;
}

/* POSTs body with token and key; returns the status, the answer parsed into *out. */
static long
s_post(const s_fx_t *fx, const char *token, const char *key, const char *body, json_t **out)
{
    char err[256];
    deliver_config_t cfg = {fx->url, token, key, NULL, 3000};
    deliver_t *d = deliver_new(&cfg, err, sizeof err);
    assert_non_null(d);
    deliver_answer_t ans;
    deliver_post(d, body, strlen(body), &ans);
    if (out)
        *out = ans.body ? json_loads(ans.body, 0, NULL) : NULL;
    long status = ans.status;
    deliver_answer_free(&ans);
    deliver_destroy(&d);
    return status;
}

/* The batch body for records (consumed) as {key, kind, op, data}. */
static char *
s_batch(json_t *records)
{
    json_t *doc = json_pack("{s:o}", "records", records);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

static json_t *
s_rec(const char *key, json_t *record_in)
{
    char reason[SGS_REASON_MAX];
    const char *kind;
    json_t *data = sgs_record_build(record_in, &kind, reason);
    json_decref(record_in);
    assert_non_null(data);
    return json_pack("{s:s,s:s,s:s,s:o}", "key", key, "kind", kind, "op", "publish", "data", data);
}

static json_int_t
s_stat(const s_fx_t *fx, const char *name)
{
    char buf[65536];
    assert_int_equal(tp_http_get(fx->port, "/admin/stats", buf, sizeof buf), 200);
    json_t *o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    json_int_t v = json_integer_value(json_object_get(o, name));
    json_decref(o);
    return v;
}

static const char *
s_status_at(json_t *ans, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(ans, "results"), i), "status"));
}

static void
test_accepts_and_counts_duplicates(void **state)
{
    s_fx_t *fx = *state;
    char *body = s_batch(
        json_pack("[o,o]", s_rec("1-1", fx_penalty(1, "食品安全")), s_rec("2-1", fx_licence(2))));
    json_t *ans = NULL;
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, &ans), 200);
    assert_string_equal(s_status_at(ans, 0), "accepted");
    assert_string_equal(s_status_at(ans, 1), "accepted");
    json_decref(ans);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, &ans), 200);
    assert_string_equal(s_status_at(ans, 0), "duplicate");
    json_decref(ans);
    free(body);
    assert_int_equal(s_stat(fx, "accepted"), 2);
    assert_int_equal(s_stat(fx, "duplicates"), 2);
}

static void
test_refuses_bad_signature_and_token(void **state)
{
    s_fx_t *fx = *state;
    char *body = s_batch(json_pack("[o]", s_rec("3-1", fx_penalty(3, "x"))));
    json_t *ans = NULL;
    json_int_t before = s_stat(fx, "received");
    assert_int_equal(s_post(fx, S_TOKEN, "another-key", body, &ans), 401);
    assert_string_equal(json_string_value(json_object_get(ans, "error")), "bad_signature");
    json_decref(ans);
    assert_int_equal(s_post(fx, "wrong", S_KEY, body, &ans), 401);
    assert_string_equal(json_string_value(json_object_get(ans, "error")), "unauthorized");
    json_decref(ans);
    free(body);
    assert_int_equal(s_stat(fx, "received"), before); /* nothing was looked at */
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, "{\"records\":[]}", NULL), 400);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, "not json", NULL), 400);
}

static void
test_checks_every_field(void **state)
{
    s_fx_t *fx = *state;
    json_t *bad = s_rec("4-1", fx_penalty(4, "x"));
    json_object_set_new(json_object_get(bad, "data"), "CF_JDRQ", json_string("2026-05-06"));
    json_t *wd = json_pack("{s:s,s:s,s:s,s:o}", "key", "4-2", "kind", "penalty", "op", "withdraw",
                           "data", sgs_record_withdrawal("penalty", "nope", "x"));
    char *body = s_batch(json_pack("[o,o]", bad, wd));
    json_t *ans = NULL;
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, &ans), 200);
    assert_string_equal(s_status_at(ans, 0), "rejected");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(ans, "results"), 0), "reason")),
                        "CF_JDRQ: not a real date YYYY/MM/DD");
    assert_string_equal(s_status_at(ans, 1), "accepted");
    json_decref(ans);
    free(body);
    assert_int_equal(s_stat(fx, "early_withdrawals"), 1); /* withdrawn before it was sent */
}

/* POST /admin/mode?<query>; returns the status. */
static long
s_mode(const s_fx_t *fx, const char *query)
{
    char url[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/admin/mode?%s", fx->port, query);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    fclose(null);
    return status;
}

static void
test_admin_modes(void **state)
{
    s_fx_t *fx = *state;
    char buf[512];
    char *body = s_batch(json_pack("[o]", s_rec("5-1", fx_penalty(5, "x"))));
    assert_int_equal(tp_http_get(fx->port, "/admin/mode?mode=fail", buf, sizeof buf), 404);
    assert_int_equal(s_mode(fx, "mode=bogus"), 400);
    assert_int_equal(s_mode(fx, "mode=fail&ms=500"), 200);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, NULL), 500);
    tp_sleep_ms(600);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, NULL), 200); /* back by itself */
    assert_int_equal(s_mode(fx, "mode=refuse&ms=400"), 200);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, NULL), 0); /* no answer */
    tp_sleep_ms(500);
    assert_int_equal(s_mode(fx, "mode=hang"), 200);
    int64_t t0 = tp_now_ms();
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, NULL), 0); /* deliver's 3 s timeout */
    assert_true(tp_now_ms() - t0 >= 2900);
    assert_int_equal(s_mode(fx, "mode=ok"), 200);
    assert_int_equal(s_post(fx, S_TOKEN, S_KEY, body, NULL), 200);
    free(body);
    assert_int_equal(s_stat(fx, "accepted") >= 1, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_and_counts_duplicates),
        cmocka_unit_test(test_refuses_bad_signature_and_token),
        cmocka_unit_test(test_checks_every_field),
        cmocka_unit_test(test_admin_modes),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
