/* sxctl record verify, the real binary, against the real sx-recording beside a real
 * sx-broker and PostgreSQL, with real CURVE keys (issue 5, "Archive"): the test plays
 * intake (its outbox and relay, in this process) and sends a closed case and an open
 * one; sxctl says both verify (exit 0); after one stored entry is altered directly in
 * Postgres it names that entry (exit 1); another agency is refused, an unknown case is
 * not found (exit 1); bad arguments exit 2; every verification is in the access log. */
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
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY "91110000600037341L"
#define OTHER  "11620200013926143G"

typedef struct {
    tp_world_t w;
    char rec_ep[64], sign_key[600], server_pub[600];
    pid_t rec;
    tp_producer_t intake; /* the test plays intake: its outbox and its relay (a thread) */
    int events;
} fx_t;

/* One intake event on the outbox (its own transaction): event, agency, data as JSON. */
static void
s_emit(fx_t *fx, const char *event, const char *agency, const char *json)
{
    char topic[128];
    snprintf(topic, sizeof topic, "%s.%s", event, agency);
    tp_produce(&fx->intake, topic, json);
    fx->events++;
}

#define S_HEAD(id, state)                                                                          \
    "\"case_id\":" #id ",\"case_no\":\"V-" #id "\",\"type\":\"penalty\",\"matter_code\":"          \
    "\"CF-0001\",\"state\":\"" state "\""

#define S_RECORDED(id, no)                                                                           \
    "{" S_HEAD(id, "open") ",\"record_no\":" #no ",\"stage\":\"investigation\",\"kind\":\"text\","   \
                           "\"doc_type\":\"询问笔录\",\"officers\":[\"ZF001\"],\"device\":null," \
                           "\"started_at\":1,\"ended_at\":2,\"media\":{\"sha256\":\"" S_SHA          \
                           "\",\"uri\":\"s3://k/" #id "/" #no "\",\"size\":10},"                     \
                           "\"classification\":\"internal\"}"
#define S_SHA "0000000000000000000000000000000000000000000000000000000000000007"

/* Case 1: opened, three records, closed (5 entries, sealed). Case 2: opened, one record
 * (2 entries, open). Case 3 of the other agency. */
static void
s_cases(fx_t *fx)
{
    s_emit(fx, "case.opened", AGENCY,
           "{" S_HEAD(1, "open") ",\"on_site\":false,\"officers\":[\"ZF001\"]}");
    s_emit(fx, "case.recorded", AGENCY, S_RECORDED(1, 1));
    s_emit(fx, "case.recorded", AGENCY, S_RECORDED(1, 2));
    s_emit(fx, "case.recorded", AGENCY, S_RECORDED(1, 3));
    s_emit(fx, "case.closed", AGENCY, "{" S_HEAD(1, "closed") "}");
    s_emit(fx, "case.opened", AGENCY,
           "{" S_HEAD(2, "open") ",\"on_site\":false,\"officers\":[\"ZF001\"]}");
    s_emit(fx, "case.recorded", AGENCY, S_RECORDED(2, 1));
    s_emit(fx, "case.opened", OTHER,
           "{" S_HEAD(3, "open") ",\"on_site\":false,\"officers\":[\"ZF009\"]}");
}

static int
s_setup(void **state)
{
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"recording", "svc:recording"},
                                         {"ops", "svc:sxctl"},
                                         {"dept", "dept:" AGENCY ":system"},
                                         {"other", "dept:" OTHER ":system"},
                                         {NULL, NULL}};
    fx_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    tp_world_open(&fx->w, "sxctl_record", ids, "sxrec-broker");
    snprintf(fx->rec_ep, sizeof fx->rec_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(fx->server_pub, sizeof fx->server_pub, "%s/recording.pub", fx->w.keydir);
    char *dir = ts_mkdtemp("sxrec-seal");
    snprintf(fx->sign_key, sizeof fx->sign_key, "%s/seal.key", dir);
    free(dir);

    tp_producer_open(&fx->intake, &fx->w, "intake");
    tp_producer_thread(&fx->intake);

    char key[640];
    snprintf(key, sizeof key, "SX_RECORDING_SIGN_KEY=%s", fx->sign_key);
    const char *env[] = {key, NULL};
    static int runs;
    char log[32];
    snprintf(log, sizeof log, "sxrec-recording-%d", ++runs);
    fx->rec = tp_world_service(&fx->w, "recording", fx->rec_ep, 0, log, env);
    tp_wait_log(log, "recording started", 20000);

    s_cases(fx);
    long long cur = -1;
    for (int64_t end = tp_now_ms() + 20000; tp_now_ms() < end; tp_sleep_ms(50))
        if ((cur = tp_pg_num(fx->w.pg, "SELECT coalesce(max(seq), 0) FROM recording.bus_cursor"
                                       " WHERE stream = 'intake'")) == fx->events)
            break;
    if (cur != fx->events)
        fail_msg("recording applied %lld of %d events", cur, fx->events);
    assert_int_equal(
        tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.archive WHERE case_id = 1"), 1);
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        return 0;
    tp_stop(fx->rec, SIGTERM, 10000);
    tp_producer_close(&fx->intake);
    tp_world_close(&fx->w);
    free(fx);
    return 0;
}

static char s_out[8192], s_err[8192];

/* Runs `sxctl record verify CASE --endpoint .. --key <keydir>/<who>.key --server-key ..`
 * plus one extra argument (or NULL); returns the exit status, output in s_out / s_err. */
static int
s_verify(fx_t *fx, const char *who, const char *case_arg, const char *extra)
{
    char bin[600], keyfile[600];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    snprintf(keyfile, sizeof keyfile, "%s/%s.key", fx->w.keydir, who);
    const char *argv[] = {
        bin,     "record",       "verify",       case_arg,    "--endpoint", fx->rec_ep, "--key",
        keyfile, "--server-key", fx->server_pub, "--timeout", "5000",       extra,      NULL};
    int rc = ts_run(argv, NULL, s_out, sizeof s_out, s_err, sizeof s_err);
    print_message("sxctl record verify %s (%s): exit %d\n%s%s", case_arg, who, rc, s_out, s_err);
    return rc;
}

static void
test_verify_ok_then_names_altered_entry(void **state)
{
    fx_t *fx = *state;
    /* An operator (svc:) on the closed, sealed case. */
    assert_int_equal(s_verify(fx, "ops", "1", NULL), 0);
    assert_non_null(strstr(s_out, "case 1: ok, 5 entries, head "));
    assert_non_null(strstr(s_out, "seal: ok"));
    /* The agency itself on its open case. */
    assert_int_equal(s_verify(fx, "dept", "2", NULL), 0);
    assert_non_null(strstr(s_out, "case 2: ok, 2 entries"));
    assert_non_null(strstr(s_out, "seal: none"));
    /* --json: the service's answer as it is. */
    assert_int_equal(s_verify(fx, "dept", "1", "--json"), 0);
    assert_non_null(strstr(s_out, "\"ok\":true"));
    assert_non_null(strstr(s_out, "\"seal_ok\":true"));

    /* Someone with the database's owner rights rewrites entry 3 of case 1 (a record's
     * media uri), hash left as it was. */
    tp_pg_exec(fx->w.pg, "ALTER TABLE recording.entry DISABLE TRIGGER entry_append_only");
    tp_pg_exec(fx->w.pg, "UPDATE recording.entry SET body = decode(replace(encode(body, 'hex'),"
                         " encode('s3://k/1/2', 'hex'), encode('s3://x/1/2', 'hex')), 'hex')"
                         " WHERE case_id = 1 AND n = 3");
    tp_pg_exec(fx->w.pg, "ALTER TABLE recording.entry ENABLE TRIGGER entry_append_only");
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.entry WHERE case_id = 1 AND n = 3"
                               " AND position('s3://x/1/2'::bytea IN body) > 0"),
                     1);
    assert_int_equal(s_verify(fx, "ops", "1", NULL), 1);
    assert_non_null(strstr(s_out, "case 1: FAILED: entry 3 does not match"));
    assert_non_null(strstr(s_out, "entry 3: stored hash differs from the recomputed one"));
    assert_non_null(strstr(s_out, "seal: entry 3 differs from the sealed manifest"));
    /* Entries before it still verify on the other case: the damage is named, not spread. */
    assert_int_equal(s_verify(fx, "dept", "2", NULL), 0);

    /* Every verification is in the access log (调阅监督), under the caller's identity. */
    assert_int_equal(tp_pg_num(fx->w.pg,
                               "SELECT count(*) FROM recording.access_log WHERE"
                               " op = 'record.verify' AND identity = 'svc:sxctl' AND allowed"),
                     2);
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.access_log WHERE"
                                         " op = 'record.verify'"),
                     5);
}

static void
test_refusals_and_usage(void **state)
{
    fx_t *fx = *state;
    /* Another agency's case: refused, and logged. */
    assert_int_equal(s_verify(fx, "other", "1", NULL), 1);
    assert_non_null(strstr(s_err, "forbidden"));
    assert_int_equal(tp_pg_num(fx->w.pg, "SELECT count(*) FROM recording.access_log WHERE"
                                         " identity = 'dept:" OTHER ":system' AND NOT allowed"
                                         " AND outcome = 'forbidden' AND case_id = 1"),
                     1);
    /* A case recording never saw. */
    assert_int_equal(s_verify(fx, "ops", "999", NULL), 1);
    assert_non_null(strstr(s_err, "not_found"));
    /* Usage errors: no case, a case that is no number, an unknown option, no key. */
    assert_int_equal(s_verify(fx, "ops", "abc", NULL), 2);
    assert_non_null(strstr(s_err, "CASE"));
    assert_int_equal(s_verify(fx, "ops", "1", "--nope"), 2);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    const char *argv[] = {"env", "-u", "SX_KEY_FILE", bin, "record", "verify", "1", NULL};
    assert_int_equal(ts_run(argv, NULL, s_out, sizeof s_out, s_err, sizeof s_err), 2);
    assert_non_null(strstr(s_err, "no key pair"));
    const char *argv2[] = {bin, "record", "check", "1", NULL};
    assert_int_equal(ts_run(argv2, NULL, s_out, sizeof s_out, s_err, sizeof s_err), 2);
    const char *argv3[] = {bin, "record", "verify", "--help", NULL};
    assert_int_equal(ts_run(argv3, NULL, s_out, sizeof s_out, s_err, sizeof s_err), 0);
    assert_non_null(strstr(s_out, "usage: sxctl record verify CASE"));
    /* A key the service does not know: no answer, exit 1 (the reason on stderr). */
    char *dir = ts_mkdtemp("sxrec-stranger");
    char keygen_out[256], stranger[700];
    const char *kg[] = {bin, "keygen", "--dir", dir, "stranger", NULL};
    assert_int_equal(ts_run(kg, NULL, keygen_out, sizeof keygen_out, s_err, sizeof s_err), 0);
    snprintf(stranger, sizeof stranger, "%s/stranger.key", dir);
    free(dir);
    const char *argv4[] = {
        bin,      "record",       "verify",       "1",         "--endpoint", fx->rec_ep, "--key",
        stranger, "--server-key", fx->server_pub, "--timeout", "500",        "--tries",  "1",
        NULL};
    assert_int_equal(ts_run(argv4, NULL, s_out, sizeof s_out, s_err, sizeof s_err), 1);
    assert_true(s_err[0] != '\0');
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_ok_then_names_altered_entry, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals_and_usage, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("sxctl_record", tests, NULL, NULL);
}
