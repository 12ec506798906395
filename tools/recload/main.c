/* recload: load for sx-recording (make bench-recording, tools/bench/recording.sh). It
 * plays intake's side of the bus — intake's outbox and its relay — so that the real
 * sx-recording appends from real events, and it times record.verify through the door.
 *
 *   recload produce N CASES [FIRST [BATCH]]
 *                        N case events on stream "intake" (schema intake; its bus tables
 *                        made when missing), round robin over cases FIRST..FIRST+CASES-1
 *                        (FIRST default 1): each case's first event is case.opened, the
 *                        rest case.recorded (a text or, one in ten, a video record of the
 *                        investigation). Transactions of BATCH events (default 1000, at
 *                        most 1000), sequenced as written (bus_emit_batch_seq), as
 *                        intake's case ops are; JIT off for the session, whose first
 *                        plans of that statement would otherwise be compiled (0.3 s
 *                        each). Prints "produced=N seconds=S per_s=R".
 *   recload relay        intake's relay: sequences the outbox and publishes to the broker
 *                        until SIGTERM/SIGINT
 *   recload verify ENDPOINT SERVER_KEY CASE [TIMES]
 *                        record.verify of CASE through sx-recording's door TIMES times
 *                        (default 5); prints "verify_ms=MEDIAN verify_min_ms=MIN
 *                        count=ENTRIES ok=true|false". Exit 1 when a call fails or the
 *                        chain does not verify.
 *
 * Settings: SX_PG_URL (produce, relay); SX_BROKER_PUB, SX_BROKER_PUBLIC_KEY (relay);
 * SX_KEY_FILE (relay: intake's key at the broker; verify: the caller's key, which
 * sx-recording must know). SERVER_KEY is sx-recording's public key, Z85 or a .pub file.
 * Exit 0 done, 1 failed, 2 usage. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zmq.h>

#include "bus.h"
#include "keys.h"
#include "log.h"
#include "rpc.h"
#include "zsock.h"

#define S_STREAM "intake"
#define S_AGENCY "91110000600037341L"

static volatile int s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static double
s_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
s_usage(void)
{
    fprintf(stderr, "usage: recload produce N CASES [FIRST [BATCH]]\n"
                    "       recload relay\n"
                    "       recload verify ENDPOINT SERVER_KEY CASE [TIMES]\n");
    return 2;
}

/* A whole number in [min, max] from text, or -1. */
static long long
s_num(const char *s, long long min, long long max)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return (end == s || *end || v < min || v > max) ? -1 : v;
}

static db_t *
s_db(const char *name)
{
    const char *url = getenv("SX_PG_URL");
    db_t *db = url ? db_new(url, name) : NULL;
    if (!db || db_connect(db, 10000) < 0) {
        fprintf(stderr, "recload: cannot connect to SX_PG_URL%s%s\n", db ? ": " : "",
                db ? db_error(db) : "");
        db_destroy(&db);
        return NULL;
    }
    return db;
}

static void
s_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void
s_kuint(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

/* The data of the k-th event of case id (schemas/messages/intake/case.md, the fields
 * recording reads), into sb; its topic into topic. */
static void
s_event(long long id, long long k, msgpack_sbuffer *sb, char *topic, size_t tlen)
{
    char case_no[64], uri[96];
    snprintf(case_no, sizeof case_no, "京市监罚〔2026〕%lld号", id);
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, k == 0 ? 7 : 15);
    s_kuint(&pk, "case_id", (uint64_t)id);
    s_kstr(&pk, "case_no", case_no);
    s_kstr(&pk, "type", "penalty");
    s_kstr(&pk, "matter_code", "CF-0001");
    s_kstr(&pk, "state", "open");
    if (k == 0) {
        snprintf(topic, tlen, "case.opened.%s", S_AGENCY);
        msgpack_pack_str_with_body(&pk, "on_site", 7);
        msgpack_pack_false(&pk);
    } else {
        snprintf(topic, tlen, "case.recorded.%s", S_AGENCY);
        s_kuint(&pk, "record_no", (uint64_t)k);
        s_kstr(&pk, "stage", "investigation");
        s_kstr(&pk, "kind", k % 10 == 0 ? "video" : "text");
        s_kstr(&pk, "doc_type", k % 10 == 0 ? "现场录像" : "询问笔录");
        msgpack_pack_str_with_body(&pk, "device", 6);
        if (k % 10 == 0)
            msgpack_pack_str_with_body(&pk, "DSJ-0042", 8);
        else
            msgpack_pack_nil(&pk);
        s_kuint(&pk, "started_at", 1764200000000ULL + (uint64_t)k * 60000);
        s_kuint(&pk, "ended_at", 1764200000000ULL + (uint64_t)k * 60000 + 45000);
        msgpack_pack_str_with_body(&pk, "media", 5);
        msgpack_pack_map(&pk, 3);
        char sha[65];
        snprintf(sha, sizeof sha, "%064llx", (unsigned long long)(id * 1000003 + k));
        s_kstr(&pk, "sha256", sha);
        snprintf(uri, sizeof uri, "s3://records/%lld/%lld", id, k);
        s_kstr(&pk, "uri", uri);
        s_kuint(&pk, "size", 10000 + (uint64_t)k);
        s_kstr(&pk, "classification", k % 7 == 0 ? "sensitive" : "internal");
    }
    msgpack_pack_str_with_body(&pk, "officers", 8);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "ZF001", 5);
    msgpack_pack_str_with_body(&pk, "ZF002", 5);
}

static int
s_produce(int argc, char **argv)
{
    long long n = argc > 0 ? s_num(argv[0], 1, 100000000) : -1;
    long long cases = argc > 1 ? s_num(argv[1], 1, 10000000) : -1;
    long long first = argc > 2 ? s_num(argv[2], 1, INT64_MAX / 2) : 1;
    long long batch = argc > 3 ? s_num(argv[3], 1, BUS_BATCH_MAX) : 1000;
    if (n < 0 || cases < 0 || first < 0 || batch < 0)
        return s_usage();
    db_t *db = s_db("recload-produce");
    if (!db)
        return 1;
    if (bus_migrate(db, S_STREAM, NULL) < 0 || db_command(db, "SET jit = off") < 0) {
        fprintf(stderr, "recload: bus tables: %s\n", db_error(db));
        db_destroy(&db);
        return 1;
    }
    msgpack_sbuffer *sb = calloc((size_t)batch, sizeof *sb);
    bus_event_in_t *ev = calloc((size_t)batch, sizeof *ev);
    char(*topics)[64] = calloc((size_t)batch, sizeof *topics);
    int rc = 1;
    if (!sb || !ev || !topics)
        goto done;
    for (long long i = 0; i < batch; i++)
        msgpack_sbuffer_init(&sb[i]);
    double t0 = s_seconds();
    long long done = 0;
    while (done < n && !s_stop) {
        long long end = done + batch < n ? done + batch : n;
        for (long long i = done; i < end; i++) {
            size_t j = (size_t)(i - done);
            s_event(first + i % cases, i / cases, &sb[j], topics[j], sizeof topics[j]);
            ev[j] = (bus_event_in_t){topics[j], 1, sb[j].data, sb[j].size};
        }
        evmsg_err_t err = {{0}, {0}};
        if (db_begin(db) < 0 ||
            bus_emit_batch_seq(db, S_STREAM, ev, (size_t)(end - done), &err) < 0 ||
            db_commit(db) != 0) {
            char why[300];
            fprintf(stderr, "recload: produce: %s %s\n", evmsg_err_str(&err, why, sizeof why),
                    db_error(db));
            db_rollback(db);
            goto done;
        }
        done = end;
    }
    double secs = s_seconds() - t0;
    printf("produced=%lld seconds=%.3f per_s=%.0f\n", done, secs, secs > 0 ? done / secs : 0);
    rc = done == n ? 0 : 1;
done:
    for (long long i = 0; sb && i < batch; i++)
        msgpack_sbuffer_destroy(&sb[i]);
    free(sb);
    free(ev);
    free(topics);
    db_destroy(&db);
    return rc;
}

static int
s_relay(void)
{
    const char *endpoint = getenv("SX_BROKER_PUB"), *server = getenv("SX_BROKER_PUBLIC_KEY");
    const char *keyfile = getenv("SX_KEY_FILE");
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1], err[512];
    if (!endpoint || !server || !keyfile) {
        fprintf(stderr, "recload: SX_BROKER_PUB, SX_BROKER_PUBLIC_KEY, SX_KEY_FILE required\n");
        return 2;
    }
    if (keys_read_pair(keyfile, pub, sec, err, sizeof err) < 0) {
        fprintf(stderr, "recload: %s\n", err);
        return 2;
    }
    db_t *db = s_db("recload-relay");
    if (!db)
        return 1;
    void *ctx = zmq_ctx_new();
    zsock_limits_t limits = ZSOCK_LIMITS_DEFAULT;
    limits.sndhwm = 200000;
    limits.linger_ms = 0;
    void *sock = zsock_client(ctx, ZMQ_PUB, server, pub, sec, &limits, err, sizeof err);
    bus_relay_t *relay = NULL;
    int rc = 1;
    if (!sock || zsock_connect(sock, endpoint, err, sizeof err) < 0)
        fprintf(stderr, "recload: %s: %s\n", endpoint, err);
    else if (bus_migrate(db, S_STREAM, NULL) < 0 || !(relay = bus_relay_new(db, S_STREAM, sock)))
        fprintf(stderr, "recload: relay: %s\n", db_error(db));
    if (relay) {
        bus_relay_run(relay, &s_stop);
        bus_relay_stats_t st = bus_relay_stats(relay);
        log_info("relay stopped", "sequenced=%" PRIu64 " published=%" PRIu64 " dropped=%" PRIu64,
                 st.sequenced, st.published, st.dropped);
        rc = 0;
    }
    bus_relay_destroy(&relay);
    zsock_close(&sock);
    zmq_ctx_term(ctx);
    db_destroy(&db);
    return rc;
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int
s_verify(int argc, char **argv)
{
    if (argc < 3)
        return s_usage();
    long long id = s_num(argv[2], 1, INT64_MAX);
    long long times = argc > 3 ? s_num(argv[3], 1, 100) : 5;
    const char *keyfile = getenv("SX_KEY_FILE");
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1], srv[KEYS_Z85_LEN + 1], err[512];
    if (id < 0 || times < 0 || !keyfile)
        return s_usage();
    if (keys_read_pair(keyfile, pub, sec, err, sizeof err) < 0 ||
        (!keys_z85_valid(argv[1]) && keys_read_public(argv[1], srv, err, sizeof err) < 0)) {
        fprintf(stderr, "recload: %s\n", err);
        return 2;
    }
    if (keys_z85_valid(argv[1]))
        snprintf(srv, sizeof srv, "%s", argv[1]);
    void *ctx = zmq_ctx_new();
    rpc_client_t *c = rpc_client_new(ctx, argv[0], srv, pub, sec, err, sizeof err);
    if (!c) {
        fprintf(stderr, "recload: %s: %s\n", argv[0], err);
        zmq_ctx_term(ctx);
        return 1;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    s_kuint(&pk, "case_id", (uint64_t)id);
    double ms[100];
    uint64_t count = 0;
    bool ok = true;
    int rc = 0;
    for (long long i = 0; i < times && rc == 0; i++) {
        char rid[48];
        snprintf(rid, sizeof rid, "recload-verify-%lld-%lld", id, i);
        rpc_reply_t rep;
        evmsg_err_t e = {{0}, {0}};
        double t0 = s_seconds();
        if (rpc_call(c, "record.verify", rid, body.data, body.size, 120000, 1, &rep, &e) < 0) {
            fprintf(stderr, "recload: record.verify: %s\n", e.reason);
            rc = 1;
            break;
        }
        ms[i] = (s_seconds() - t0) * 1000;
        if (!rep.ok) {
            fprintf(stderr, "recload: record.verify refused: %s %s\n", rep.code, rep.en);
            rc = 1;
        } else {
            evmsg_t *m = NULL;
            if (evmsg_decode_map(rep.result, rep.result_len, &m, &e) == 0) {
                evmsg_map_t d = evmsg_data(m, &e);
                bool v = false;
                evmsg_map_bool(&d, "ok", EVMSG_REQUIRED, &v);
                evmsg_map_uint(&d, "count", EVMSG_REQUIRED, UINT64_MAX, &count);
                ok = ok && v;
            }
            evmsg_destroy(&m);
            if (e.reason[0]) {
                fprintf(stderr, "recload: record.verify's result: %s\n", e.reason);
                rc = 1;
            }
        }
        rpc_reply_clear(&rep);
    }
    msgpack_sbuffer_destroy(&body);
    rpc_client_destroy(&c);
    zmq_ctx_term(ctx);
    if (rc)
        return rc;
    qsort(ms, (size_t)times, sizeof ms[0], s_cmp_double);
    printf("verify_ms=%.1f verify_min_ms=%.1f count=%" PRIu64 " ok=%s\n", ms[times / 2], ms[0],
           count, ok ? "true" : "false");
    return ok ? 0 : 1;
}

int
main(int argc, char **argv)
{
    log_init("recload", LOG_WARN);
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    if (argc < 2)
        return s_usage();
    if (strcmp(argv[1], "produce") == 0)
        return s_produce(argc - 2, argv + 2);
    if (strcmp(argv[1], "relay") == 0)
        return s_relay();
    if (strcmp(argv[1], "verify") == 0)
        return s_verify(argc - 2, argv + 2);
    return s_usage();
}
