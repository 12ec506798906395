/* bus: outbox, relay and subscriber against a real PostgreSQL and real ZeroMQ sockets
 * with CURVE (a SUB bound as the CURVE server, the relay's PUB connecting as a client;
 * the broker's own tests cover the proxy between them). */
#include <glob.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>
#include <zmq.h>

#include "bus.h"
#include "log.h"
#include "tsupport.h"

#define AG1 "11620200013926143G"
#define AG2 "91110000600037341L"
#define AG3 "12100000400000624D"

typedef struct {
    char *url;
    db_t *prod;   /* producer's transactions */
    db_t *relay1; /* relays' own connections */
    db_t *relay2;
    db_t *cons; /* consumer */
    void *ctx;
    void *sub; /* bound, CURVE server */
    void *pub; /* connected, CURVE client */
    char endpoint[64];
    char server_pub[41], server_sec[41];
} fx_t;

static int64_t
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static PGresult *
s_sql(db_t *db, const char *sql)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    return r;
}

static long long
s_count(db_t *db, const char *sql)
{
    PGresult *r = s_sql(db, sql);
    long long n = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void *
s_pub_new(fx_t *fx)
{
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    void *s = zmq_socket(fx->ctx, ZMQ_PUB);
    int linger = 0, hwm = 200000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, fx->server_pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    assert_int_equal(zmq_connect(s, fx->endpoint), 0);
    return s;
}

static void *
s_sub_new(fx_t *fx)
{
    void *s = zmq_socket(fx->ctx, ZMQ_SUB);
    int linger = 0, one = 1, hwm = 200000;
    int64_t max = EVMSG_MAX_BYTES + 1024;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, fx->server_sec, 40);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fx->endpoint;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, fx->endpoint, &len);
    return s;
}

static db_t *
s_db(const char *url, const char *name)
{
    db_t *db = db_new(url, name);
    assert_non_null(db);
    assert_int_equal(db_connect(db, 5000), 0);
    return db;
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->url = ts_fresh_db("bus");
    fx->prod = s_db(fx->url, "producer");
    fx->relay1 = s_db(fx->url, "relay1");
    fx->relay2 = s_db(fx->url, "relay2");
    fx->cons = s_db(fx->url, "consumer");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    if (bus_migrate(fx->prod, "prod", dir) < 0 || bus_migrate(fx->cons, "cons", dir) < 0)
        fail_msg("bus_migrate: %s", db_error(fx->prod));
    PQclear(s_sql(fx->cons, "CREATE TABLE cons.effects (seq bigint PRIMARY KEY, prev bigint,"
                            " topic text NOT NULL, n bigint NOT NULL)"));
    fx->ctx = zmq_ctx_new();
    assert_int_equal(zmq_curve_keypair(fx->server_pub, fx->server_sec), 0);
    fx->sub = s_sub_new(fx);
    fx->pub = s_pub_new(fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    zmq_close(fx->pub);
    zmq_close(fx->sub);
    zmq_ctx_term(fx->ctx);
    db_destroy(&fx->prod);
    db_destroy(&fx->relay1);
    db_destroy(&fx->relay2);
    db_destroy(&fx->cons);
    free(fx->url);
    free(fx);
    return 0;
}

/* Packs {n: n, pad: "..."} as an event's data. */
static void
s_pack(msgpack_sbuffer *sb, int64_t n)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_int64(&pk, n);
    msgpack_pack_str_with_body(&pk, "pad", 3);
    msgpack_pack_str_with_body(&pk, "案件", strlen("案件"));
}

/* Emits events n0..n0+count-1 in transactions of per_tx, cycling through 3 agencies. */
static void
s_emit(db_t *db, int64_t n0, int count, int per_tx)
{
    static const char *const ag[] = {AG1, AG2, AG3};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < count;) {
        assert_int_equal(db_begin(db), 0);
        for (int j = 0; j < per_tx && i < count; j++, i++) {
            char topic[64];
            snprintf(topic, sizeof topic, "case.opened.%s", ag[(n0 + i) % 3]);
            s_pack(&sb, n0 + i);
            evmsg_err_t err = {{0}, {0}};
            if (bus_emit(db, "prod", topic, 1, sb.data, sb.size, &err) < 0)
                fail_msg("bus_emit: %s %s %s", err.path, err.reason, db_error(db));
        }
        assert_int_equal(db_commit(db), 0);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The test consumer: records each event with the seq applied before it. */
static int
s_handler(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)arg;
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t d = evmsg_data(ev->msg, &err);
    int64_t n;
    if (evmsg_map_int(&d, "n", EVMSG_REQUIRED, 0, INT64_MAX, &n) < 0) {
        evmsg_err_str(&err, why, whylen);
        return BUS_REJECT;
    }
    if (n == 666666666) {
        snprintf(why, whylen, "n: the number of the beast");
        return BUS_REJECT;
    }
    char seq[24], nb[24];
    snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
    snprintf(nb, sizeof nb, "%" PRId64, n);
    const char *vals[3] = {seq, ev->topic, nb};
    PGresult *r = db_query(tx,
                           "INSERT INTO cons.effects (seq, prev, topic, n)"
                           " SELECT $1::bigint, max(seq), $2, $3::bigint FROM cons.effects",
                           3, vals);
    if (!r) {
        snprintf(why, whylen, "%s", db_error(tx));
        return -1;
    }
    PQclear(r);
    return 0;
}

/* Steps the relay and the subscriber until the consumer has applied want events or
 * timeout_ms passed. */
static void
s_pump(bus_relay_t *relay, bus_sub_t *sub, uint64_t want, int timeout_ms)
{
    int64_t end = s_now() + timeout_ms;
    while (s_now() < end) {
        if (relay)
            bus_relay_step(relay, s_now());
        if (sub) {
            zmq_pollitem_t it = {NULL, 0, ZMQ_POLLIN, 0};
            zmq_poll(&it, 0, 5);
            bus_sub_step(sub);
            bus_sub_stats_t st = bus_sub_stats(sub);
            if (st.applied + st.rejected >= want && st.cursor >= want)
                return;
        }
    }
}

static void
test_emit_refuses_bad_input_and_writes_nothing(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack(&sb, 1);
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(db_begin(fx->prod), 0);
    assert_int_equal(bus_emit(fx->prod, "prod", "case.opened.lowercase", 1, sb.data, sb.size, &err),
                     -1);
    assert_string_equal(err.path, "topic");
    memset(&err, 0, sizeof err);
    static const unsigned char not_a_map[] = {0x93, 1, 2, 3};
    assert_int_equal(
        bus_emit(fx->prod, "prod", "case.opened." AG1, 1, not_a_map, sizeof not_a_map, &err), -1);
    assert_true(err.reason[0] != '\0');
    memset(&err, 0, sizeof err);
    assert_int_equal(
        bus_emit(fx->prod, "Prod; DROP", "case.opened." AG1, 1, sb.data, sb.size, &err), -1);
    assert_string_equal(err.path, "schema");
    assert_int_equal(db_commit(fx->prod), 0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), 0);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_emit_batch_in_order_or_not_at_all(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb[3];
    bus_event_in_t ev[3];
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sb[i]);
        s_pack(&sb[i], 10 + i);
        ev[i] = (bus_event_in_t){"case.opened." AG2, 1, sb[i].data, sb[i].size};
    }
    /* One bad event refuses the whole batch, naming its index. */
    ev[1].topic = "case.opened.short";
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(db_begin(fx->prod), 0);
    assert_int_equal(bus_emit_batch(fx->prod, "prod", ev, 3, &err), -1);
    assert_string_equal(err.path, "[1].topic");
    assert_int_equal(db_commit(fx->prod), 0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), 0);

    ev[1].topic = "case.closed." AG3;
    assert_int_equal(db_begin(fx->prod), 0);
    assert_int_equal(bus_emit_batch(fx->prod, "prod", ev, 3, &err), 0);
    assert_int_equal(db_commit(fx->prod), 0);
    PGresult *r = s_sql(fx->prod, "SELECT topic, agency, v FROM prod.outbox ORDER BY id");
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 0), "case.opened." AG2);
    assert_string_equal(PQgetvalue(r, 1, 0), "case.closed." AG3);
    assert_string_equal(PQgetvalue(r, 1, 1), AG3);
    assert_string_equal(PQgetvalue(r, 2, 2), "1");
    PQclear(r);
    /* The data bytes arrive unchanged: the relay publishes what was emitted. */
    r = db_query(fx->prod, "SELECT data FROM prod.outbox ORDER BY id", 0, NULL);
    assert_non_null(r);
    size_t len;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 2, 0), &len);
    assert_int_equal(len, sb[2].size);
    assert_memory_equal(raw, sb[2].data, len);
    PQfreemem(raw);
    PQclear(r);
    for (int i = 0; i < 3; i++)
        msgpack_sbuffer_destroy(&sb[i]);
}

static void
test_relay_sequences_gapless_per_stream_and_agency(void **state)
{
    fx_t *fx = *state;
    s_emit(fx->prod, 0, 2500, 100);
    /* A rolled-back transaction's events never exist. */
    assert_int_equal(db_begin(fx->prod), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack(&sb, 999999);
    assert_int_equal(bus_emit(fx->prod, "prod", "case.opened." AG1, 1, sb.data, sb.size, NULL), 0);
    assert_int_equal(db_rollback(fx->prod), 0);
    msgpack_sbuffer_destroy(&sb);

    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    assert_non_null(relay);
    int64_t end = s_now() + 10000;
    while (bus_relay_stats(relay).last_seq < 2500 && s_now() < end)
        bus_relay_step(relay, s_now());
    bus_relay_stats_t st = bus_relay_stats(relay);
    assert_true(st.leader);
    assert_int_equal(st.sequenced, 2500);
    assert_int_equal(st.last_seq, 2500);
    /* seq 1..2500 with no gap, in insertion order; aseq 1..k per agency. */
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox WHERE seq IS NULL"), 0);
    assert_int_equal(s_count(fx->prod, "SELECT count(DISTINCT seq) FROM prod.outbox"), 2500);
    assert_int_equal(s_count(fx->prod, "SELECT max(seq) - min(seq) + 1 FROM prod.outbox"), 2500);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM (SELECT seq, row_number() OVER"
                                       " (ORDER BY id) AS r FROM prod.outbox) x WHERE seq <> r"),
                     0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM (SELECT aseq, row_number() OVER"
                                       " (PARTITION BY agency ORDER BY id) AS r FROM prod.outbox)"
                                       " x WHERE aseq <> r"),
                     0);
    assert_int_equal(s_count(fx->prod, "SELECT last_seq FROM prod.bus_head"), 2500);
    assert_int_equal(s_count(fx->prod, "SELECT sum(last_aseq) FROM prod.bus_agency"), 2500);
    bus_relay_destroy(&relay);
    assert_null(relay);
}

static void
test_live_delivery_applies_each_event_once_in_order(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_non_null(sub);
    assert_int_equal(bus_sub_start(sub), 0);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    /* Let the relay lead and the subscription reach the publisher before emitting, so
     * that this test sees the live path (catch-up has its own test). */
    s_pump(relay, sub, UINT64_MAX, 1500);
    s_emit(fx->prod, 0, 3000, 50);
    s_pump(relay, sub, 3000, 20000);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.applied, 3000);
    assert_int_equal(st.cursor, 3000);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 3000);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects WHERE prev <> seq - 1"),
                     0);
    assert_int_equal(s_count(fx->cons, "SELECT seq FROM cons.bus_cursor WHERE stream = 'prod'"),
                     3000);
    /* Most arrived live, not by catch-up (allowing for the slow joiner). */
    assert_true(st.caught_up < 3000);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static void
test_catch_up_from_cursor_after_restart(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_emit(fx->prod, 0, 1200, 200);
    s_pump(relay, NULL, 0, 1500); /* sequenced and published to nobody: lost in the air */
    assert_int_equal(bus_relay_stats(relay).last_seq, 1200);

    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0); /* catches up from Postgres */
    assert_int_equal(bus_sub_stats(sub).cursor, 1200);
    assert_int_equal(bus_sub_stats(sub).caught_up, 1200);
    bus_sub_destroy(&sub);

    /* A restarted subscriber starts from its committed cursor, not from 0. */
    s_emit(fx->prod, 1200, 300, 300);
    s_pump(relay, NULL, 0, 500);
    sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    assert_int_equal(bus_sub_stats(sub).caught_up, 300);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 1500);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects WHERE prev <> seq - 1"),
                     0);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static void
test_gap_repaired_from_postgres(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, sub, UINT64_MAX, 1500);
    s_emit(fx->prod, 0, 100, 100);
    s_pump(relay, sub, 100, 5000);
    assert_int_equal(bus_sub_stats(sub).cursor, 100);

    /* Events 101..400 are sequenced by a relay whose messages go nowhere (a publisher
     * killed between its commit and its publish looks the same to the subscriber). */
    bus_relay_destroy(&relay);
    void *nowhere = zmq_socket(fx->ctx, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(nowhere, ZMQ_LINGER, &linger, sizeof linger);
    bus_relay_t *lost = bus_relay_new(fx->relay2, "prod", nowhere);
    s_emit(fx->prod, 100, 300, 100);
    int64_t end = s_now() + 5000;
    while (bus_relay_stats(lost).last_seq < 400 && s_now() < end)
        bus_relay_step(lost, s_now());
    bus_relay_destroy(&lost);
    zmq_close(nowhere);

    /* The next live event, 401, shows a gap; the subscriber repairs it from Postgres. */
    relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_emit(fx->prod, 400, 1, 1);
    s_pump(relay, sub, 401, 10000);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.cursor, 401);
    assert_true(st.gaps + st.catchups >= 2); /* the start-up catch-up, then the repair */
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 401);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects WHERE prev <> seq - 1"),
                     0);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static void
test_heartbeat_exposes_silent_loss(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    char why0[160] = "";
    assert_false(bus_sub_check(sub, why0, sizeof why0));
    assert_string_equal(why0, "no heartbeat from stream prod through the broker yet");
    /* The last 50 events are lost in the air and nothing follows them: only the next
     * heartbeat (seq 50) tells the subscriber they exist. */
    void *nowhere = zmq_socket(fx->ctx, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(nowhere, ZMQ_LINGER, &linger, sizeof linger);
    bus_relay_t *lost = bus_relay_new(fx->relay2, "prod", nowhere);
    s_emit(fx->prod, 0, 50, 50);
    int64_t end = s_now() + 5000;
    while (bus_relay_stats(lost).last_seq < 50 && s_now() < end)
        bus_relay_step(lost, s_now());
    bus_relay_destroy(&lost);
    zmq_close(nowhere);
    assert_int_equal(bus_sub_stats(sub).cursor, 0);

    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, sub, 50, 5000);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.cursor, 50);
    assert_int_equal(st.head, 50);
    /* Heartbeats arriving: the health check passes. */
    char why[160] = "";
    assert_true(bus_sub_check(sub, why, sizeof why));
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 50);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static void
test_rejected_event_recorded_and_stream_moves_on(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    s_emit(fx->prod, 666666660, 10, 10); /* n = ...660..669: ...666 is refused */
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, NULL, 0, 500);
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.cursor, 10);
    assert_int_equal(st.applied, 9);
    assert_int_equal(st.rejected, 1);
    PGresult *r = s_sql(fx->cons, "SELECT seq, reason FROM cons.bus_rejected");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "7");
    assert_string_equal(PQgetvalue(r, 0, 1), "n: the number of the beast");
    PQclear(r);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static void
test_one_leader_and_takeover_without_reuse_or_skip(void **state)
{
    fx_t *fx = *state;
    bus_relay_t *a = bus_relay_new(fx->relay1, "prod", fx->pub);
    bus_relay_t *b = bus_relay_new(fx->relay2, "prod", fx->pub);
    s_emit(fx->prod, 0, 500, 100);
    int64_t end = s_now() + 3000;
    while (s_now() < end && bus_relay_stats(a).last_seq + bus_relay_stats(b).last_seq < 500) {
        bus_relay_step(a, s_now());
        bus_relay_step(b, s_now());
    }
    /* Exactly one leads. */
    assert_true(bus_relay_stats(a).leader != bus_relay_stats(b).leader);
    bus_relay_t *leader = bus_relay_stats(a).leader ? a : b;
    bus_relay_t *follower = leader == a ? b : a;

    /* The leader's session dies (as when its process is killed): its lock goes with it. */
    PGresult *r = db_query(fx->prod,
                           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name = $1",
                           1, (const char *[]){leader == a ? "relay1" : "relay2"});
    assert_non_null(r);
    PQclear(r);
    s_emit(fx->prod, 500, 500, 100);
    int64_t died = s_now();
    end = died + 5000;
    while (s_now() < end && bus_relay_stats(follower).last_seq < 1000)
        bus_relay_step(follower, s_now());
    int64_t took = s_now() - died;
    print_message("takeover after the leader's session died: %" PRId64 " ms\n", took);
    assert_true(bus_relay_stats(follower).leader);
    assert_true(took < 2000);
    assert_int_equal(bus_relay_stats(follower).last_seq, 1000);
    assert_int_equal(s_count(fx->prod, "SELECT count(DISTINCT seq) FROM prod.outbox"), 1000);
    assert_int_equal(s_count(fx->prod, "SELECT max(seq) FROM prod.outbox"), 1000);
    bus_relay_destroy(&a);
    bus_relay_destroy(&b);
}

static void
test_malformed_live_frames_dropped_counted_and_serving_goes_on(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, sub, UINT64_MAX, 1500); /* the subscription reaches the publisher */

    /* One frame; three frames; an envelope that is not msgpack; a valid envelope with a
     * bad field. All on a subscribed topic. */
    const char *t = "case.opened." AG1;
    zmq_send(fx->pub, t, strlen(t), 0);
    zmq_send(fx->pub, t, strlen(t), ZMQ_SNDMORE);
    zmq_send(fx->pub, "a", 1, ZMQ_SNDMORE);
    zmq_send(fx->pub, "b", 1, 0);
    zmq_send(fx->pub, t, strlen(t), ZMQ_SNDMORE);
    zmq_send(fx->pub, "\xc1\xc1", 2, 0);
    static const unsigned char bad_seq[] = {0x86, 0xa3, 's', 'e', 'q', 0xa1, 'x'};
    zmq_send(fx->pub, t, strlen(t), ZMQ_SNDMORE);
    zmq_send(fx->pub, bad_seq, sizeof bad_seq, 0);

    s_emit(fx->prod, 0, 20, 20);
    s_pump(relay, sub, 20, 5000);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.malformed, 4);
    assert_int_equal(st.cursor, 20);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 20);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

/* Emits events n0..n0+count-1 in one transaction through bus_emit_batch_seq (sequenced
 * as written), cycling through 3 agencies; commits unless rollback. */
static void
s_emit_seq(db_t *db, int64_t n0, int count, bool commit)
{
    static const char *const ag[] = {AG1, AG2, AG3};
    msgpack_sbuffer sb[64];
    bus_event_in_t ev[64];
    char topics[64][64];
    assert_true(count <= 64);
    for (int i = 0; i < count; i++) {
        msgpack_sbuffer_init(&sb[i]);
        s_pack(&sb[i], n0 + i);
        snprintf(topics[i], sizeof topics[i], "case.opened.%s", ag[(n0 + i) % 3]);
        ev[i] = (bus_event_in_t){topics[i], 1, sb[i].data, sb[i].size};
    }
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(db_begin(db), 0);
    if (bus_emit_batch_seq(db, "prod", ev, (size_t)count, &err) < 0)
        fail_msg("bus_emit_batch_seq: %s %s %s", err.path, err.reason, db_error(db));
    assert_int_equal(commit ? db_commit(db) : db_rollback(db), 0);
    for (int i = 0; i < count; i++)
        msgpack_sbuffer_destroy(&sb[i]);
}

static void
test_emit_batch_seq_and_relay_sequencing_share_one_gapless_stream(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
    assert_int_equal(bus_sub_start(sub), 0);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, sub, UINT64_MAX, 1500); /* leader, statement prepared, subscribed */

    /* Sequenced at insert and sequenced by the relay, interleaved; a rolled-back batch
     * gives its seqs back. */
    int64_t n = 0;
    for (int round = 0; round < 20; round++, n += 25) {
        if (round % 2)
            s_emit(fx->prod, n, 25, 25);
        else
            s_emit_seq(fx->prod, n, 25, true);
        if (round == 7)
            s_emit_seq(fx->prod, 999000, 10, false);
        if (round % 3 == 0)
            s_pump(relay, sub, (uint64_t)n + 25, 3000);
    }
    /* A batch sequenced at insert that commits while the relay's statement waits for the
     * head row: that statement's snapshot misses it, and the relay fills the gap. */
    s_emit_seq(fx->prod, n, 20, true);
    n += 20;
    assert_int_equal(db_begin(fx->prod), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack(&sb, n);
    bus_event_in_t one = {"case.closed." AG2, 1, sb.data, sb.size};
    assert_int_equal(bus_emit_batch_seq(fx->prod, "prod", &one, 1, NULL), 0);
    assert_int_equal(db_command(fx->prod, "SELECT 1"), 0); /* the queued emit runs now */
    n++;
    s_emit(fx->relay2, n, 5, 5); /* for the relay to sequence: it waits for the head */
    n += 5;
    for (int i = 0; i < 20; i++)
        bus_relay_step(relay, s_now());
    assert_int_equal(db_commit(fx->prod), 0);
    msgpack_sbuffer_destroy(&sb);

    s_pump(relay, sub, (uint64_t)n, 5000);
    bus_relay_stats_t rs = bus_relay_stats(relay);
    assert_int_equal(rs.sequenced, n);
    assert_int_equal(rs.last_seq, n);
    bus_sub_stats_t st = bus_sub_stats(sub);
    assert_int_equal(st.applied, n);
    assert_int_equal(st.cursor, n);
    assert_int_equal(st.gaps, 0);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects WHERE prev <> seq - 1"),
                     0);
    assert_int_equal(s_count(fx->cons, "SELECT count(DISTINCT n) FROM cons.effects"), n);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), n);
    assert_int_equal(s_count(fx->prod, "SELECT max(seq) - min(seq) + 1 FROM prod.outbox"), n);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM (SELECT aseq, row_number() OVER"
                                       " (PARTITION BY agency ORDER BY seq) AS r FROM"
                                       " prod.outbox) x WHERE aseq <> r"),
                     0);
    assert_int_equal(s_count(fx->prod, "SELECT last_seq FROM prod.bus_head"), n);
    assert_int_equal(s_count(fx->prod, "SELECT sum(last_aseq) FROM prod.bus_agency"), n);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

/* bus_emit_batch_seq's statement is queued for the transaction's next round trip, often
 * its COMMIT: it checks its own row count, so a batch that could not be written whole
 * fails the transaction instead of committing without its events. */
static void
test_emit_batch_seq_fails_the_commit_unless_written_whole(void **state)
{
    fx_t *fx = *state;
    s_emit_seq(fx->prod, 0, 5, true);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), 5);
    /* Without the head row the statement sequences nothing. */
    assert_int_equal(db_command(fx->prod, "DELETE FROM prod.bus_head"), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack(&sb, 5);
    bus_event_in_t one = {"case.closed." AG2, 1, sb.data, sb.size};
    assert_int_equal(db_begin(fx->prod), 0);
    assert_int_equal(db_command(fx->prod, "CREATE TABLE prod.effect (x int)"), 0);
    assert_int_equal(bus_emit_batch_seq(fx->prod, "prod", &one, 1, NULL), 0);
    assert_int_equal(db_commit(fx->prod), -1);
    if (!strstr(db_error(fx->prod), "events not all written"))
        fail_msg("db_error: %s", db_error(fx->prod));
    assert_int_equal(db_rollback(fx->prod), 0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM pg_tables WHERE tablename = 'effect'"),
                     0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), 5);
    assert_int_equal(s_count(fx->prod, "SELECT sum(last_aseq) FROM prod.bus_agency"), 5);
    /* The head back: the same batch goes through. */
    assert_int_equal(
        db_command(fx->prod, "INSERT INTO prod.bus_head (one, last_seq) VALUES (true, 5)"), 0);
    assert_int_equal(db_begin(fx->prod), 0);
    assert_int_equal(bus_emit_batch_seq(fx->prod, "prod", &one, 1, NULL), 0);
    assert_int_equal(db_commit(fx->prod), 0);
    assert_int_equal(s_count(fx->prod, "SELECT max(seq) FROM prod.outbox"), 6);
    msgpack_sbuffer_destroy(&sb);
}

/* bus_emit_batch_ordered leaves events to the relay while rows written before wait for
 * it (so the stream keeps commit order), then sequences them as written, for good. */
static void
test_emit_ordered_follows_rows_left_to_the_relay(void **state)
{
    fx_t *fx = *state;
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    int64_t end = s_now() + 1500;
    while (s_now() < end && !bus_relay_stats(relay).leader)
        bus_relay_step(relay, s_now());
    uint64_t base = bus_relay_stats(relay).last_seq;
    int64_t n0 = (int64_t)s_count(fx->prod, "SELECT count(*) FROM prod.outbox");
    s_emit(fx->prod, 5000000, 3, 3); /* an earlier version's rows: no seq yet */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bool relay_rows = true;
    for (int i = 0; i < 2; i++) {
        s_pack(&sb, 5000003 + i);
        bus_event_in_t ev = {"case.closed." AG1, 1, sb.data, sb.size};
        assert_int_equal(db_begin(fx->prod), 0);
        assert_int_equal(bus_emit_batch_ordered(fx->prod, "prod", &relay_rows, &ev, 1, NULL), 0);
        assert_int_equal(db_commit(fx->prod), 0);
        if (i == 0) { /* still left to the relay: it will number it after the three */
            assert_true(relay_rows);
            assert_int_equal(
                s_count(fx->prod, "SELECT count(*) FROM prod.outbox WHERE seq IS NULL"), 4);
            end = s_now() + 3000;
            while (s_now() < end && bus_relay_stats(relay).last_seq < base + 4)
                bus_relay_step(relay, s_now());
        }
    }
    /* The relay numbered the four; the fifth had its seq as written, right after them. */
    assert_false(relay_rows);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox WHERE seq IS NULL"), 0);
    char sql[200];
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.outbox"), n0 + 5);
    snprintf(sql, sizeof sql,
             "SELECT max(seq) - min(seq) FROM (SELECT seq FROM prod.outbox ORDER BY id DESC"
             " LIMIT 5) x");
    assert_int_equal(s_count(fx->prod, sql), 4);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM (SELECT seq, lag(seq) OVER"
                                       " (ORDER BY id) AS p FROM (SELECT * FROM prod.outbox"
                                       " ORDER BY id DESC LIMIT 5) y) x WHERE seq <> p + 1"),
                     0);
    assert_int_equal(s_count(fx->prod, "SELECT last_seq FROM prod.bus_head"), (int64_t)base + 5);
    msgpack_sbuffer_destroy(&sb);
    bus_relay_destroy(&relay);
}

static int
s_batch_handler(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    int *calls = arg;
    (*calls)++;
    for (int i = 0; i < n; i++) {
        char why[64];
        if (s_handler(tx, &events[i], NULL, why, sizeof why) != 0)
            return -1;
    }
    return 0;
}

static void
test_batch_handler_sees_whole_transactions(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    s_emit(fx->prod, 0, 2500, 500);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, NULL, 0, 800);
    int calls = 0;
    bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, &calls);
    bus_sub_set_batch_handler(sub, s_batch_handler);
    assert_int_equal(bus_sub_start(sub), 0);
    assert_int_equal(bus_sub_stats(sub).applied, 2500);
    /* A call per catch-up page of BUS_BATCH_MAX, not one per event. */
    assert_int_equal(calls, (2500 + BUS_BATCH_MAX - 1) / BUS_BATCH_MAX);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects WHERE prev <> seq - 1"),
                     0);
    bus_relay_destroy(&relay);
    bus_sub_destroy(&sub);
}

static int
s_key_n(const bus_event_t *ev, void *arg, char *key, size_t keylen)
{
    (void)arg;
    evmsg_map_t d = evmsg_data(ev->msg, NULL);
    int64_t n;
    if (evmsg_map_int(&d, "n", EVMSG_REQUIRED, 0, INT64_MAX, &n) < 0)
        return -1;
    snprintf(key, keylen, "case-%" PRId64, n);
    return 0;
}

static void
test_shards_split_the_stream(void **state)
{
    fx_t *fx = *state;
    const char *const prefixes[] = {"case.", NULL};
    s_emit(fx->prod, 0, 900, 300);
    bus_relay_t *relay = bus_relay_new(fx->relay1, "prod", fx->pub);
    s_pump(relay, NULL, 0, 500);
    uint64_t applied[3];
    for (int i = 0; i < 3; i++) {
        bus_sub_t *sub = bus_sub_new(fx->cons, "cons", "prod", prefixes, fx->sub, s_handler, NULL);
        assert_int_equal(bus_sub_set_shard(sub, i, 3, s_key_n, NULL), 0);
        assert_int_equal(bus_sub_start(sub), 0);
        bus_sub_stats_t st = bus_sub_stats(sub);
        assert_int_equal(st.cursor, 900);
        assert_int_equal(st.applied + st.skipped, 900);
        applied[i] = st.applied;
        bus_sub_destroy(&sub);
    }
    /* Every event handled by exactly one shard (effects' primary key would refuse a
     * second), and the split is not lopsided. */
    assert_int_equal(applied[0] + applied[1] + applied[2], 900);
    for (int i = 0; i < 3; i++)
        assert_true(applied[i] > 200 && applied[i] < 400);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.effects"), 900);
    assert_int_equal(s_count(fx->cons, "SELECT count(*) FROM cons.bus_cursor"), 3);
    bus_relay_destroy(&relay);
}

static void
test_migrations_coexist_with_service_set(void **state)
{
    fx_t *fx = *state;
    /* The bus set and a service's own set live in one schema without clashing. */
    char *dir = ts_mkdtemp("svcmig");
    char path[4200];
    snprintf(path, sizeof path, "%s/001_cases.sql", dir);
    FILE *f = fopen(path, "w");
    fputs("CREATE TABLE cases (id bigint PRIMARY KEY);\n", f);
    fclose(f);
    assert_int_equal(db_migrate(fx->prod, "prod", dir), 1);
    char busdir[4096];
    snprintf(busdir, sizeof busdir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    assert_int_equal(bus_migrate(fx->prod, "prod", busdir), 0);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.schema_migrations"), 1);
    glob_t files;
    snprintf(path, sizeof path, "%s/*.sql", busdir);
    assert_int_equal(glob(path, 0, NULL, &files), 0);
    assert_true(files.gl_pathc >= 2);
    assert_int_equal(s_count(fx->prod, "SELECT count(*) FROM prod.bus_migrations"),
                     (int)files.gl_pathc);
    globfree(&files);
    free(dir);
}

static void
test_hash_is_fnv1a(void **state)
{
    (void)state;
    /* Published FNV-1a 64 test vectors: other languages' shard code must agree. */
    assert_true(bus_hash("", 0) == 0xcbf29ce484222325ULL);
    assert_true(bus_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(bus_hash("foobar", 6) == 0x85944171f73967e8ULL);
}

int
main(void)
{
    log_init("test-bus", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_is_fnv1a),
        cmocka_unit_test_setup_teardown(test_emit_refuses_bad_input_and_writes_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_emit_batch_in_order_or_not_at_all, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_relay_sequences_gapless_per_stream_and_agency, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_live_delivery_applies_each_event_once_in_order,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_from_cursor_after_restart, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_gap_repaired_from_postgres, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_exposes_silent_loss, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rejected_event_recorded_and_stream_moves_on, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_one_leader_and_takeover_without_reuse_or_skip, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_shards_split_the_stream, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(
            test_malformed_live_frames_dropped_counted_and_serving_goes_on, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(
            test_emit_batch_seq_and_relay_sequencing_share_one_gapless_stream, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_emit_batch_seq_fails_the_commit_unless_written_whole,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_emit_ordered_follows_rows_left_to_the_relay, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_handler_sees_whole_transactions, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_migrations_coexist_with_service_set, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
