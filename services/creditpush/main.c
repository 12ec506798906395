/* sx-creditpush: 双公示 records pushed to the credit-information platform (信用中国).
 * Settings, sockets and the loop; the rules live in common/sgs_record.c (the record and
 * its checks, shared with tools/fake-credit), queue.c (publication events in, the durable
 * queue), push.c and deliver.c (the batches out, SX_CREDIT_INFLIGHT POSTs at a time,
 * run by this loop), opsrpc.c (the operators' ops, the export).
 *
 * Settings (environment):
 *   SX_PG_URL              PostgreSQL (libpq URL), required
 *   SX_REDIS_URL           Redis for the retry timer, required
 *   SX_CREDITPUSH_BIND     the request door (ROUTER, CURVE), default tcp://127.0.0.1:7751
 *   SX_KEY_FILE            this service's key pair, required
 *   SX_KEYS_FILE           public key -> identity, for ZAP; reloaded on SIGHUP, required
 *   SX_BROKER_PUB, SX_BROKER_SUB, SX_BROKER_PUBLIC_KEY   the broker, required
 *   SX_CREDIT_URL          the platform's push endpoint (https://...), required
 *   SX_CREDIT_TOKEN        bearer token, required
 *   SX_CREDIT_HMAC_KEY     key of the X-Signature HMAC-SHA256, required
 *   SX_CREDIT_CA           CA bundle for the platform's certificate (default: system store;
 *                          verification is never turned off)
 *   SX_CREDIT_BATCH        records per POST, 1..1000, default 100
 *   SX_CREDIT_INFLIGHT     POSTs in flight at once (one connection each), 1..8, default 2
 *   SX_CREDIT_TIMEOUT_MS   one POST, default 10000
 *   SX_CREDIT_BACKOFF_MS, SX_CREDIT_BACKOFF_MAX_MS  retry delays, default 1000 and 300000
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9106
 *   SX_SCHEMAS, SX_LOG_LEVEL  as for sx-intake
 *
 * Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads SX_KEYS_FILE.
 * Exit 78 on bad settings, naming every bad variable; 1 when start-up fails. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "creditpush.h"
#include "deliver.h"
#include "log.h"
#include "opsrpc.h"
#include "push.h"
#include "queue.h"
#include "service.h"
#include "timer.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000  /* a subscriber that could not start tries again */
#define S_TIMER_MS     500   /* how often the retry timer is looked at */
#define S_SAFETY_MS    30000 /* the queue is looked at even without a timer */
#define S_GAUGE_MS     1000  /* how often the queue-depth gauge is read */
#define S_CURL_FDS     16    /* sockets of the POSTs in flight polled beside ours */
#define S_GATHER_MS    20    /* a small batch beside another POST: the next waits this */

typedef struct {
    service_config_t s; /* the settings every service reads (service.h) */
    const char *credit_url, *credit_token, *credit_key, *credit_ca;
    push_config_t push;
    long timeout_ms;
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    service_config_read(cfg, &c->s, "SX_CREDITPUSH_BIND", "tcp://127.0.0.1:7751", 9106, true);
    c->credit_url = config_str(cfg, "SX_CREDIT_URL", NULL);
    c->credit_token = config_str(cfg, "SX_CREDIT_TOKEN", NULL);
    c->credit_key = config_str(cfg, "SX_CREDIT_HMAC_KEY", NULL);
    c->credit_ca = config_str(cfg, "SX_CREDIT_CA", NULL);
    c->push.batch = (int)config_int(cfg, "SX_CREDIT_BATCH", 100, 1, 1000);
    c->push.inflight = (int)config_int(cfg, "SX_CREDIT_INFLIGHT", 2, 1, PUSH_INFLIGHT_MAX);
    c->timeout_ms = (long)config_int(cfg, "SX_CREDIT_TIMEOUT_MS", 10000, 100, 600000);
    c->push.backoff_ms = config_int(cfg, "SX_CREDIT_BACKOFF_MS", 1000, 10, 3600000);
    c->push.backoff_max_ms = config_int(cfg, "SX_CREDIT_BACKOFF_MAX_MS", 300000, 10, 86400000);
    const char *required[][2] = {{"SX_CREDIT_URL", c->credit_url},
                                 {"SX_CREDIT_TOKEN", c->credit_token},
                                 {"SX_CREDIT_HMAC_KEY", c->credit_key}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i][1])
            config_fail(cfg, required[i][0], "%s", "required");
    if (c->credit_url && strncmp(c->credit_url, "https://", 8) != 0 &&
        strncmp(c->credit_url, "http://127.0.0.1", 16) != 0 &&
        strncmp(c->credit_url, "http://localhost", 16) != 0)
        config_fail(cfg, "SX_CREDIT_URL", "%s",
                    "https:// (plain http only on loopback, for tests)");
    service_config_check(cfg, &c->s);
    struct stat st;
    if (c->credit_ca && (stat(c->credit_ca, &st) != 0 || !S_ISREG(st.st_mode)))
        config_fail(cfg, "SX_CREDIT_CA", "%s", "not a file");
}

/* The retry timer's deadline from Postgres, for timer_rearm. */
static int
s_source(void *arg, timer_batch_t *batch)
{
    int64_t due = queue_next_due(arg);
    if (due < 0)
        return -1;
    return due > 0 ? timer_batch_add(batch, CP_TIMER_KIND, CP_TIMER_KEY, due) : 0;
}

/* Whether this instance holds the deliverer's lock (one deliverer at a time keeps a
 * withdrawal behind its record); taken again after a reconnect. */
static bool
s_leader(db_t *db, uint64_t *conn_id, bool *leader)
{
    if (*leader && db_connection_id(db) == *conn_id)
        return true;
    PGresult *r =
        db_query(db, "SELECT pg_try_advisory_lock(hashtext('creditpush.deliver'))", 0, NULL);
    *leader = r && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    if (r)
        PQclear(r);
    *conn_id = db_connection_id(db);
    return *leader;
}

/* Arms the retry timer at the next due item. */
static void
s_arm(db_t *db, timers_t *timers)
{
    int64_t due = queue_next_due(db);
    if (due > 0 && timer_arm(timers, CP_TIMER_KIND, CP_TIMER_KEY, due) < 0)
        log_warn("retry timer not armed", "error=%s", timer_error(timers));
}

/* What the deliverer needs from the loop. */
typedef struct {
    push_t *push;
    db_t *db; /* the deliverer's connection */
    timers_t *timers;
    ops_metric_t **m;
    queue_app_t *app;
    int batch;
    uint64_t conn_id; /* for s_leader */
    bool leader;
    int64_t gather_until; /* no new POST before (mono ms): see s_deliver */
} s_deliverer_t;

/* Collects the batches whose answer is in and starts new ones, one of each in turn, so
 * that a slot is refilled while the other POST is still at the platform. After a 200
 * more may be due; after anything else the platform is not taking: the retry timer
 * waits for the backoff. Bounded: 2 x PUSH_INFLIGHT_MAX steps a loop turn.
 *
 * A batch under a quarter full started beside another POST makes the next wait
 * S_GATHER_MS, so that records arriving one event batch at a time go out in fewer, fuller
 * POSTs: each pick walks past the items in flight, and each POST costs both ends. With
 * nothing in flight a record goes at once. */
static void
s_deliver(s_deliverer_t *d, bool stop)
{
    for (int i = 0; i < 2 * PUSH_INFLIGHT_MAX; i++) {
        bool moved = false;
        push_result_t res;
        int rc = push_turn(d->push, d->db, &res);
        if (rc < 0)
            log_warn("push outcome not written", "error=%s", db_error(d->db));
        if (rc != 0) {
            moved = true;
            ops_add(d->m[0], (uint64_t)res.sent);
            ops_add(d->m[1], (uint64_t)res.dead);
            ops_add(d->m[2], (uint64_t)res.retried);
            if (rc > 0 && res.status == 200)
                d->app->pending = true;
            else
                s_arm(d->db, d->timers);
        }
        if (d->app->pending && !stop && push_can_start(d->push) &&
            util_mono_ms() >= d->gather_until) {
            d->app->pending = false;
            if (s_leader(d->db, &d->conn_id, &d->leader)) {
                bool beside = push_busy(d->push);
                int n = push_start(d->push, d->db);
                d->gather_until =
                    beside && n > 0 && n < d->batch / 4 ? util_mono_ms() + S_GATHER_MS : 0;
                if (n < 0)
                    log_warn("push pass failed", "error=%s", db_error(d->db));
                if (n <= 0)
                    s_arm(d->db, d->timers);
                else if (n == d->batch)
                    d->app->pending = true; /* a full batch: more may be due */
                moved = moved || n > 0;
            }
        }
        if (!moved)
            return;
    }
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c = {0};
    char err[512] = "";
    if (!cfg) {
        fprintf(stderr, "sx-creditpush: out of memory\n");
        return 1;
    }
    s_read_config(cfg, &c);
    timers_t *timers =
        c.s.redis_url ? timers_new(c.s.redis_url, "creditpush", err, sizeof err) : NULL;
    if (c.s.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    push_t *push = NULL;
    if (!config_error(cfg)) {
        deliver_config_t dc = {c.credit_url, c.credit_token, c.credit_key, c.credit_ca,
                               c.timeout_ms};
        if (!(push = push_new(&dc, &c.push, err, sizeof err)))
            config_fail(cfg, "SX_CREDIT_URL", "%s", err);
    }
    if (config_error(cfg)) {
        fprintf(stderr, "sx-creditpush: bad settings:\n%s\n", config_error(cfg));
        timers_destroy(&timers);
        explicit_bzero(c.s.sec, sizeof c.s.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("creditpush", c.s.level);

    int rc = 1;
    service_t *svc = service_new("creditpush", c.s.keys_file, &c.s);
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_sub_t *bsub = NULL;
    void *sub = NULL;
    db_t *db_rpc = NULL, *db_sub = NULL, *db_push = NULL;
    queue_app_t app = {true, 0, 0};
    ops_metric_t *m[4] = {NULL, NULL, NULL, NULL};

    if (!svc)
        goto done;
    if (!(db_rpc = db_open(c.s.pg_url, "sx-creditpush", 30000)) ||
        !(db_sub = db_open(c.s.pg_url, "sx-creditpush-publication", 30000)) ||
        !(db_push = db_new(c.s.pg_url, "sx-creditpush-deliver")) ||
        db_set_options(db_push, QUEUE_PICK_PG_OPTIONS) < 0)
        goto done;
    if (db_connect(db_push, 30000) < 0) {
        log_error("postgres not reachable", "conn=%s error=%s", "sx-creditpush-deliver",
                  db_error(db_push));
        goto done;
    }
    if (service_migrate(db_rpc, CP_SCHEMA, c.s.schemas, "creditpush") < 0)
        goto done;
    if (queue_prepare(db_sub) < 0 || queue_prepare(db_push) < 0 || opsrpc_prepare(db_rpc) < 0) {
        log_error("statements not prepared", "error=%s", "see above");
        goto done;
    }
    if (!(ops = service_ops(c.s.ops_bind, c.s.ops_port, c.s.pg_url, c.s.redis_url)))
        goto done;
    m[0] = ops_counter(ops, "sx_creditpush_sent_total", NULL, "records the platform took");
    m[1] = ops_counter(ops, "sx_creditpush_dead_total", NULL, "records dead-lettered on push");
    m[2] = ops_counter(ops, "sx_creditpush_retried_total", NULL, "records to be tried again");
    m[3] = ops_gauge(ops, "sx_creditpush_queue_depth", NULL,
                     "items waiting for the platform (state queued)");

    if (service_zap(svc, (const char *const[]){"svc:", NULL}, NULL, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    rpc = rpc_server_new(svc->ctx, svc->zap, "creditpush", c.s.sec, c.s.bind, db_rpc, CP_SCHEMA,
                         err, sizeof err);
    if (!rpc || rpc_set_retention(rpc, c.s.rpc_keep_days) < 0 ||
        rpc_set_metrics(rpc, ops, "creditpush") < 0 || opsrpc_register(rpc, &app) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.s.bind, err);
        goto done;
    }
    sub = service_sub(svc, err, sizeof err);
    if (!sub || !(bsub = bus_sub_new(db_sub, CP_SCHEMA, CP_PUB_STREAM, queue_prefixes, sub,
                                     queue_handle_one, &app))) {
        log_error("publication subscriber not made", "broker=%s error=%s", c.s.broker_sub, err);
        goto done;
    }
    bus_sub_set_batch_handler(bsub, queue_handle);
    ops_check(ops, "broker", bus_sub_check, bsub);

    bool started = bus_sub_start(bsub) == 0;
    s_deliverer_t dv = {push, db_push, timers, m, &app, c.push.batch, 0, false, 0};
    int64_t retry = util_mono_ms() + S_SUB_RETRY_MS, timer_due = 0, safety = 0, gauge = 0;
    log_info("creditpush started", "bind=%s ops_port=%d url=%s batch=%d", c.s.bind, ops_port(ops),
             c.credit_url, c.push.batch);

    for (bool stop = false; !stop;) {
        /* The POSTs in flight are polled with the door and the bus: a platform that hangs
         * holds neither (libcurl multi, deliver.h). */
        zmq_pollitem_t items[3 + S_CURL_FDS] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                                {sub, 0, ZMQ_POLLIN, 0},
                                                {NULL, svc->sigfd, ZMQ_POLLIN, 0}};
        int nitems = 3 + push_pollitems(push, items + 3, S_CURL_FDS);
        int64_t now = util_mono_ms();
        int64_t due = timer_due;
        if (app.pending && push_can_start(push))
            due = dv.gather_until > now ? (dv.gather_until < due ? dv.gather_until : due) : now;
        long wait = service_poll_ms(svc, due, now);
        if (zmq_poll(items, nitems, push_wait_ms(push, wait)) < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        if (items[1].revents & ZMQ_POLLIN && started)
            bus_sub_step(bsub);
        now = util_mono_ms();
        if (!started && now >= retry) {
            started = bus_sub_start(bsub) == 0;
            retry = now + S_SUB_RETRY_MS;
        }
        if (now >= timer_due) {
            timer_due = now + S_TIMER_MS;
            if (timer_needs_rearm(timers) && timer_rearm(timers, s_source, db_push) < 0)
                log_warn("retry timer not rearmed", "error=%s", timer_error(timers));
            timer_fired_t fired[4];
            int n = timer_claim_due(timers, timer_now_ms(), fired, 4);
            for (int i = 0; i < n; i++) {
                app.pending = true;
                timer_done(timers, fired[i].kind, fired[i].key);
            }
            if (now >= safety) {
                app.pending = true;
                safety = now + S_SAFETY_MS;
            }
        }
        s_deliver(&dv, stop);
        if (now >= gauge) {
            int64_t depth = queue_depth(db_push);
            if (depth >= 0)
                ops_set(m[3], (double)depth);
            gauge = now + S_GAUGE_MS;
        }
    }
    log_info("creditpush stopping", "signal=%s", "term");
    rc = 0;
done:
    push_destroy(&push);
    ops_stop(ops); /* its checks read the subscriber(s) below */
    bus_sub_destroy(&bsub);
    rpc_server_destroy(&rpc);
    zsock_close(&sub);
    service_destroy(&svc);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_sub);
    db_destroy(&db_push);
    timers_destroy(&timers);
    explicit_bzero(c.s.sec, sizeof c.s.sec);
    config_destroy(&cfg);
    return rc;
}
