/* bustest: drives the event bus from separate processes, for the kill tests
 * (tests/fault/test_bus_kill.c) and the benchmark (make bench-bus).
 *
 *   bustest migrate CONSUMER...     bus tables for stream "prod" and each consumer schema,
 *                                   plus CONSUMER.effects (what the test handler writes)
 *   bustest produce N [BATCH [START]]  emit events n = START..START+N-1 in transactions of
 *                                   BATCH (default 500) on stream "prod"; prints the time
 *   bustest relay [--nowhere]       run a relay for "prod" until SIGTERM; --nowhere
 *                                   publishes to no one (sequenced, committed, never sent:
 *                                   as a producer killed between commit and publish)
 *   bustest consume CONSUMER [--batch]  subscribe to "prod" and apply every event into
 *                                   CONSUMER.effects until SIGTERM (--batch: one INSERT
 *                                   per transaction, through bus_sub_set_batch_handler)
 *
 * Settings: SX_PG_URL; SX_BROKER_PUB (the broker's publisher endpoint), SX_BROKER_SUB
 * (its subscriber endpoint), SX_BROKER_PUBLIC_KEY (Z85), SX_KEY_FILE (this process's key
 * pair file, from sxctl keygen). The effects table records each event with the seq of
 * the row applied before it, so a test can prove order and exactly-once from SQL alone. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "util.h"
#include "zsock.h"

#define STREAM "prod"

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

static bool
s_schema_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 32)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
            return false;
    return true;
}

static db_t *
s_db(const char *name)
{
    const char *url = getenv("SX_PG_URL");
    db_t *db = url ? db_new(url, name) : NULL;
    if (!db || db_connect(db, 10000) < 0) {
        fprintf(stderr, "bustest: cannot connect to SX_PG_URL%s%s\n", db ? ": " : "",
                db ? db_error(db) : "");
        db_destroy(&db);
        return NULL;
    }
    return db;
}

static int
s_migrate(int argc, char **argv)
{
    db_t *db = s_db("bustest-migrate");
    if (!db)
        return 1;
    int rc = bus_migrate(db, STREAM, NULL) < 0 ? 1 : 0;
    for (int i = 0; rc == 0 && i < argc; i++) {
        if (!s_schema_ok(argv[i])) {
            fprintf(stderr, "bustest: bad consumer name %s\n", argv[i]);
            rc = 2;
            break;
        }
        if (bus_migrate(db, argv[i], NULL) < 0) {
            rc = 1;
            break;
        }
        char sql[256];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS \"%s\".effects (seq bigint PRIMARY KEY,"
                 " prev bigint, n bigint NOT NULL)",
                 argv[i]);
        if (db_command(db, sql) < 0)
            rc = 1;
    }
    if (rc == 1)
        fprintf(stderr, "bustest: migrate: %s\n", db_error(db));
    db_destroy(&db);
    return rc;
}

static int
s_produce(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    long long n = atoll(argv[0]);
    int batch = argc > 1 ? atoi(argv[1]) : 500;
    long long start = argc > 2 ? atoll(argv[2]) : 0;
    if (n < 0 || batch < 1 || batch > BUS_BATCH_MAX)
        return 2;
    static const char *const agencies[] = {"11620200013926143G", "91110000600037341L",
                                           "12100000400000624D", "91330000MA27U00A8R"};
    db_t *db = s_db("bustest-produce");
    if (!db)
        return 1;
    /* One buffer per event of a batch, packed, then written with one statement. */
    msgpack_sbuffer *sb = calloc((size_t)batch, sizeof *sb);
    bus_event_in_t *ev = calloc((size_t)batch, sizeof *ev);
    char(*topics)[64] = calloc((size_t)batch, sizeof *topics);
    for (int i = 0; i < batch; i++)
        msgpack_sbuffer_init(&sb[i]);
    double t0 = s_seconds();
    long long done = 0;
    while (done < n && !s_stop) {
        long long end = done + batch < n ? done + batch : n;
        for (long long i = done; i < end; i++) {
            long long v = start + i;
            int k = (int)(i - done);
            snprintf(topics[k], sizeof topics[k], "case.opened.%s", agencies[v % 4]);
            msgpack_sbuffer_clear(&sb[k]);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb[k], msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "n", 1);
            msgpack_pack_int64(&pk, v);
            msgpack_pack_str_with_body(&pk, "case_no", 7);
            char caseno[48];
            int len = snprintf(caseno, sizeof caseno, "嘉执罚〔2026〕%lld号", v);
            msgpack_pack_str_with_body(&pk, caseno, (size_t)len);
            ev[k] = (bus_event_in_t){topics[k], 1, sb[k].data, sb[k].size};
        }
        evmsg_err_t err = {{0}, {0}};
        if (db_begin(db) < 0 || bus_emit_batch(db, STREAM, ev, (size_t)(end - done), &err) < 0 ||
            db_commit(db) != 0) {
            /* Refused, failed, or an unknown outcome: a test driver stops, not guesses. */
            db_rollback(db);
            goto fail;
        }
        done = end;
    }
    double secs = s_seconds() - t0;
    printf("produced %lld events in %.3f s (%.0f/s)\n", done, secs, secs > 0 ? done / secs : 0);
    int rc = 0;
    if (0) {
    fail:
        fprintf(stderr, "bustest: produce: %s\n", db_error(db));
        rc = 1;
    }
    for (int i = 0; i < batch; i++)
        msgpack_sbuffer_destroy(&sb[i]);
    free(sb);
    free(ev);
    free(topics);
    db_destroy(&db);
    return rc;
}

/* A CURVE client socket to the broker, from SX_BROKER_PUBLIC_KEY and SX_KEY_FILE. */
static void *
s_socket(void *ctx, int type, const char *endpoint_var)
{
    const char *endpoint = getenv(endpoint_var);
    const char *server = getenv("SX_BROKER_PUBLIC_KEY");
    const char *keyfile = getenv("SX_KEY_FILE");
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1], err[512];
    if (!endpoint || !server || !keyfile) {
        fprintf(stderr, "bustest: %s, SX_BROKER_PUBLIC_KEY and SX_KEY_FILE are required\n",
                endpoint_var);
        return NULL;
    }
    if (keys_read_pair(keyfile, pub, sec, err, sizeof err) < 0) {
        fprintf(stderr, "bustest: %s\n", err);
        return NULL;
    }
    zsock_limits_t limits = ZSOCK_LIMITS_DEFAULT;
    limits.sndhwm = 200000;
    limits.rcvhwm = 200000;
    limits.linger_ms = 0;
    void *s = zsock_client(ctx, type, server, pub, sec, &limits, err, sizeof err);
    if (!s || zsock_connect(s, endpoint, err, sizeof err) < 0) {
        fprintf(stderr, "bustest: %s\n", err);
        zsock_close(&s);
        return NULL;
    }
    return s;
}

static int
s_relay(int argc, char **argv)
{
    bool nowhere = argc > 0 && strcmp(argv[0], "--nowhere") == 0;
    db_t *db = s_db("bustest-relay");
    if (!db)
        return 1;
    void *ctx = zmq_ctx_new();
    void *pub = NULL;
    if (nowhere) {
        char err[256];
        pub = zsock_plain(ctx, ZMQ_PUB, &ZSOCK_LIMITS_DEFAULT, err, sizeof err);
    } else {
        pub = s_socket(ctx, ZMQ_PUB, "SX_BROKER_PUB");
    }
    bus_relay_t *relay = pub ? bus_relay_new(db, STREAM, pub) : NULL;
    int rc = 1;
    if (relay) {
        bus_relay_run(relay, &s_stop);
        bus_relay_stats_t st = bus_relay_stats(relay);
        log_info("relay stopped",
                 "sequenced=%" PRIu64 " published=%" PRIu64 " dropped=%" PRIu64
                 " takeovers=%" PRIu64,
                 st.sequenced, st.published, st.dropped, st.takeovers);
        rc = 0;
    }
    bus_relay_destroy(&relay);
    zsock_close(&pub);
    zmq_ctx_term(ctx);
    db_destroy(&db);
    return rc;
}

typedef struct {
    char insert[256];
    char insert_many[256];
    char *a_seq, *a_prev, *a_n; /* array literals for the batch handler */
} s_consumer_t;

static int
s_apply(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    s_consumer_t *c = arg;
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t d = evmsg_data(ev->msg, &err);
    int64_t n;
    if (evmsg_map_int(&d, "n", EVMSG_REQUIRED, 0, INT64_MAX, &n) < 0) {
        evmsg_err_str(&err, why, whylen);
        return BUS_REJECT;
    }
    char seq[24], nb[24];
    snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
    snprintf(nb, sizeof nb, "%" PRId64, n);
    const char *vals[2] = {seq, nb};
    PGresult *r = db_exec_prepared(tx, c->insert, 2, vals, NULL, NULL, 0);
    if (!r) {
        snprintf(why, whylen, "%s", db_error(tx));
        return -1;
    }
    PQclear(r);
    return 0;
}

/* The batch handler: all of a transaction's effects in one INSERT, as a consumer that
 * must keep up with a fast stream would write them. */
static int
s_apply_many(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    s_consumer_t *c = arg;
    size_t ls = 1, lp = 1, ln = 1;
    c->a_seq[0] = c->a_prev[0] = c->a_n[0] = '{';
    for (int i = 0; i < n; i++) {
        evmsg_map_t d = evmsg_data(events[i].msg, NULL);
        int64_t v;
        if (evmsg_map_int(&d, "n", EVMSG_REQUIRED, 0, INT64_MAX, &v) < 0)
            return -1;
        const char *sep = i ? "," : "";
        ls += (size_t)sprintf(c->a_seq + ls, "%s%" PRIu64, sep, events[i].seq);
        if (i == 0)
            lp += (size_t)sprintf(c->a_prev + lp, "NULL");
        else
            lp += (size_t)sprintf(c->a_prev + lp, ",%" PRIu64, events[i - 1].seq);
        ln += (size_t)sprintf(c->a_n + ln, "%s%" PRId64, sep, v);
    }
    strcpy(c->a_seq + ls, "}");
    strcpy(c->a_prev + lp, "}");
    strcpy(c->a_n + ln, "}");
    const char *vals[3] = {c->a_seq, c->a_prev, c->a_n};
    PGresult *r = db_exec_prepared(tx, c->insert_many, 3, vals, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static int
s_consume(int argc, char **argv)
{
    bool batch = argc > 1 && strcmp(argv[1], "--batch") == 0;
    if (argc < 1 || !s_schema_ok(argv[0]))
        return 2;
    db_t *db = s_db("bustest-consume");
    if (!db)
        return 1;
    s_consumer_t c;
    snprintf(c.insert, sizeof c.insert, "effects:%s", argv[0]);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".effects (seq, prev, n)"
             " SELECT $1::bigint, max(seq), $2::bigint FROM \"%s\".effects",
             argv[0], argv[0]);
    snprintf(c.insert_many, sizeof c.insert_many, "effects_many:%s", argv[0]);
    char sql_many[512];
    snprintf(sql_many, sizeof sql_many,
             "INSERT INTO \"%s\".effects (seq, prev, n) SELECT s,"
             " coalesce(p, (SELECT max(seq) FROM \"%s\".effects)), n"
             " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(s, p, n)",
             argv[0], argv[0]);
    c.a_seq = malloc(BUS_BATCH_MAX * 24 + 4);
    c.a_prev = malloc(BUS_BATCH_MAX * 24 + 8);
    c.a_n = malloc(BUS_BATCH_MAX * 24 + 4);
    if (!c.a_seq || !c.a_prev || !c.a_n || db_prepare(db, c.insert, sql, 2) < 0 ||
        db_prepare(db, c.insert_many, sql_many, 3) < 0) {
        db_destroy(&db);
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *sub = s_socket(ctx, ZMQ_SUB, "SX_BROKER_SUB");
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *bs = sub ? bus_sub_new(db, argv[0], STREAM, prefixes, sub, s_apply, &c) : NULL;
    if (bs && batch)
        bus_sub_set_batch_handler(bs, s_apply_many);
    int rc = 1;
    if (bs) {
        /* Started (subscribed and caught up) before anything else: tests wait for this
         * line before they produce. */
        while (!s_stop && bus_sub_start(bs) < 0)
            util_sleep_ms(200);
        log_info("subscriber started", "cursor=%" PRIu64, bus_sub_stats(bs).cursor);
        bus_sub_run(bs, &s_stop);
        bus_sub_stats_t st = bus_sub_stats(bs);
        log_info("subscriber stopped",
                 "applied=%" PRIu64 " cursor=%" PRIu64 " gaps=%" PRIu64 " catchups=%" PRIu64
                 " caught_up=%" PRIu64 " duplicates=%" PRIu64,
                 st.applied, st.cursor, st.gaps, st.catchups, st.caught_up, st.duplicates);
        rc = 0;
    }
    bus_sub_destroy(&bs);
    zsock_close(&sub);
    zmq_ctx_term(ctx);
    db_destroy(&db);
    free(c.a_seq);
    free(c.a_prev);
    free(c.a_n);
    return rc;
}

int
main(int argc, char **argv)
{
    log_level_t level = LOG_INFO;
    const char *lv = getenv("SX_LOG_LEVEL");
    if (lv)
        log_level_parse(lv, &level);
    log_init("bustest", level);
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc < 2) {
        fprintf(stderr, "usage: bustest migrate|produce|relay|consume ...\n");
        return 2;
    }
    const char *verb = argv[1];
    int rc = 2;
    if (strcmp(verb, "migrate") == 0)
        rc = s_migrate(argc - 2, argv + 2);
    else if (strcmp(verb, "produce") == 0)
        rc = s_produce(argc - 2, argv + 2);
    else if (strcmp(verb, "relay") == 0)
        rc = s_relay(argc - 2, argv + 2);
    else if (strcmp(verb, "consume") == 0)
        rc = s_consume(argc - 2, argv + 2);
    if (rc == 2)
        fprintf(stderr, "usage: bustest migrate|produce|relay|consume ... (see tools/bustest)\n");
    return rc;
}
