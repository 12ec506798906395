/* sx-intake: the department gateway. Settings, sockets and the loop; the rules live in
 * registry.c, case_ops.c, decision_gate.c, deadlines.c and review_events.c (intake.h).
 *
 * Settings (environment):
 *   SX_PG_URL              PostgreSQL (libpq URL), required
 *   SX_REDIS_URL           Redis for the deadline timers (redis://host[:port][/db]), required
 *   SX_INTAKE_BIND         the request door (ROUTER, CURVE), default tcp://127.0.0.1:7711
 *   SX_KEY_FILE            intake's key pair (sxctl keygen; mode 0600): the door's CURVE
 *                          secret and intake's client key at the broker, required
 *   SX_KEYS_FILE           public key -> identity (dept:<code>:<role>, svc:<name>), for
 *                          ZAP; reloaded on SIGHUP (a bad file keeps the old keys), required
 *   SX_BROKER_PUB          the broker's publisher endpoint (intake's events go there)
 *   SX_BROKER_SUB          the broker's subscriber endpoint (review.* events come from it)
 *   SX_BROKER_PUBLIC_KEY   the broker's public key, Z85; all three required
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9102
 *   SX_CALENDAR            the working-day calendar file (default: see workday.h)
 *   SX_SCHEMAS             the schemas directory (sql/intake, sql/bus, sql/rpc), default
 *                          ./schemas
 *   SX_LOG_LEVEL           debug|info|warn|error, default info
 *
 * Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads SX_KEYS_FILE.
 * Exit 78 on bad settings, naming every bad variable; 1 when start-up fails. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "deadlines.h"
#include "intake.h"
#include "log.h"
#include "review_events.h"
#include "service.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000 /* a review subscriber that could not start tries again */

typedef struct {
    service_config_t s;   /* the settings every service reads (service.h) */
    const char *calendar; /* SX_CALENDAR */
} s_config_t;

/* When intake last heard its own relay's heartbeat through the broker (monotonic ms),
 * for the "broker" health check: it proves the broker and the relay alive end to end. */
typedef struct {
    atomic_llong heard_ms;
} s_heard_t;

/* The relay runs in its own thread with its own connection and PUB socket (used by no
 * other thread), so that reading and publishing the committed events overlaps with the
 * request loop's next turn instead of lengthening it. */
typedef struct {
    bus_relay_t *relay;
    ops_metric_t *m_seq; /* the last seq published (a gauge) */
    atomic_bool stop;
    pthread_t thread;
    bool running;
} s_relay_thread_t;

#define S_RELAY_WAIT_MAX_MS 200 /* the thread notices stop at least this often */

static void *
s_relay_main(void *arg)
{
    s_relay_thread_t *t = arg;
    while (!atomic_load(&t->stop)) {
        int wait = bus_relay_step(t->relay, util_mono_ms());
        ops_set(t->m_seq, (double)bus_relay_stats(t->relay).last_seq);
        if (wait < 0 || wait > S_RELAY_WAIT_MAX_MS)
            wait = S_RELAY_WAIT_MAX_MS;
        int fd = bus_relay_fd(t->relay);
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (fd >= 0 && bus_relay_stats(t->relay).leader)
            zmq_poll(&item, 1, wait);
        else
            zmq_poll(NULL, 0, wait);
    }
    return NULL;
}

/* Reads every setting; each bad or missing one adds a line to config_error. */
static void
s_read_config(config_t *cfg, s_config_t *c)
{
    service_config_read(cfg, &c->s, "SX_INTAKE_BIND", "tcp://127.0.0.1:7711", 9102, true);
    c->calendar = config_str(cfg, "SX_CALENDAR", NULL);
    service_config_endpoints(cfg, &c->s, "SX_INTAKE_BIND");
    service_config_check(cfg, &c->s);
}

/* ops_check_fn for "broker": the relay's own heartbeat came back through the broker. */
static bool
s_broker_check(void *arg, char *why, size_t whylen)
{
    s_heard_t *h = arg;
    long long heard = atomic_load(&h->heard_ms);
    if (heard > 0 && util_mono_ms() - heard <= BUS_HEARD_MS)
        return true;
    snprintf(why, whylen, "%s",
             heard ? "intake's heartbeat not heard back from the broker lately"
                   : "intake's heartbeat never heard back from the broker");
    return false;
}

/* Reads every heartbeat frame waiting on the heartbeat SUB socket. */
static void
s_drain_heard(void *sock, s_heard_t *h)
{
    for (int i = 0; i < 100; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        zmq_msg_close(&m);
        atomic_store(&h->heard_ms, util_mono_ms());
    }
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c = {0};
    char err[512] = "";
    if (!cfg) {
        fprintf(stderr, "sx-intake: out of memory\n");
        return 1;
    }
    s_read_config(cfg, &c);
    /* Settings that only prove good once used: the calendar, the URLs. */
    workday_t *cal = service_calendar_load(c.calendar, err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers = c.s.redis_url ? timers_new(c.s.redis_url, "intake", err, sizeof err) : NULL;
    if (c.s.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    db_t *probe = c.s.pg_url ? db_new(c.s.pg_url, "sx-intake") : NULL;
    if (c.s.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-intake: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.s.sec, sizeof c.s.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("intake", c.s.level);

    /* service_new blocks the signals before any thread starts, so every thread (ops, ZAP,
     * deadlines, relay) inherits the mask and they all arrive on svc->sigfd. */
    int rc = 1;
    service_t *svc = service_new("intake", c.s.keys_file, &c.s);
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_relay_t *relay = NULL;
    bus_sub_t *review = NULL;
    deadlines_t *dl = NULL;
    void *pub = NULL, *sub = NULL, *hb = NULL;
    s_heard_t heard = {0};
    s_relay_thread_t rt = {0};
    db_t *db_rpc = NULL, *db_relay = NULL, *db_review = NULL, *db_dl = NULL;

    if (!svc)
        goto done;
    /* One connection per user: the door, the relay, the review subscriber, deadlines. */
    if (!(db_rpc = db_open(c.s.pg_url, "sx-intake", 30000)) ||
        !(db_relay = db_open(c.s.pg_url, "sx-intake-relay", 30000)) ||
        !(db_review = db_open(c.s.pg_url, "sx-intake-review", 30000)) ||
        !(db_dl = db_open(c.s.pg_url, "sx-intake-deadlines", 30000)))
        goto done;
    if (service_migrate(db_rpc, INTAKE_SCHEMA, c.s.schemas, "intake") < 0)
        goto done;

    if (!(ops = service_ops(c.s.ops_bind, c.s.ops_port, c.s.pg_url, c.s.redis_url)))
        goto done;
    service_calendar_watch(ops, "intake", cal, date_from_unix_cst(time(NULL)));
    ops_check(ops, "broker", s_broker_check, &heard);
    /* The ZAP handler before any server socket. */
    if (service_zap(svc, (const char *const[]){"dept:", "svc:", NULL}, ops, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }

    /* The parts share the calendar and the metrics. Timers belong to the deadlines
     * thread: a case's timers are armed from its committed row (deadlines.h). */
    intake_t app = {cal, NULL, ops};
    rpc = rpc_server_new(svc->ctx, svc->zap, "intake", c.s.sec, c.s.bind, db_rpc, INTAKE_SCHEMA,
                         err, sizeof err);
    if (!rpc || rpc_set_retention(rpc, c.s.rpc_keep_days) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.s.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "intake") < 0 || registry_register(rpc, &app) < 0 ||
        case_ops_register(rpc, &app) < 0) {
        log_error("ops not registered", "bind=%s", c.s.bind);
        goto done;
    }

    /* Events out: the relay publishes the committed outbox to the broker, from its own
     * thread on its own PUB socket (not svc's: the loop below never steps it). */
    if (!(pub = service_pub(svc, err, sizeof err)) ||
        !(relay = bus_relay_new(db_relay, INTAKE_STREAM, pub))) {
        log_error("relay not started", "broker=%s error=%s", c.s.broker_pub, err);
        goto done;
    }
    /* Events in: the review service's verdicts, for the decision gate. */
    sub = service_sub(svc, err, sizeof err);
    if (!sub || review_events_prepare(db_review) < 0 ||
        !(review = bus_sub_new(db_review, INTAKE_SCHEMA, REVIEW_STREAM, review_events_prefixes, sub,
                               review_events_handle, NULL))) {
        log_error("review subscriber not started", "broker=%s error=%s", c.s.broker_sub,
                  err[0] ? err : db_error(db_review));
        goto done;
    }
    hb = service_sub(svc, err, sizeof err);
    if (!hb || zmq_setsockopt(hb, ZMQ_SUBSCRIBE, "_hb." INTAKE_STREAM, 4 + strlen(INTAKE_STREAM))) {
        log_error("heartbeat socket not made", "error=%s",
                  err[0] ? err : zmq_strerror(zmq_errno()));
        goto done;
    }
    bool review_started = bus_sub_start(review) == 0;
    int64_t review_retry = util_mono_ms() + S_SUB_RETRY_MS;

    /* Deadlines run in their own thread with their own connection and timers. */
    dl = deadlines_new(db_dl, timers, ops);
    db_dl = NULL;
    timers = NULL;
    if (!dl || deadlines_start(dl) < 0) {
        log_error("deadlines not started", "thread=%s", "deadlines");
        goto done;
    }
    log_info("intake started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s", c.s.bind,
             ops_port(ops), c.s.broker_pub, c.s.broker_sub);

    rt.relay = relay;
    rt.m_seq = ops_gauge(ops, "sx_intake_relay_published_seq", NULL,
                         "The last seq of the intake stream the relay published.");
    atomic_init(&rt.stop, false);
    int perr = pthread_create(&rt.thread, NULL, s_relay_main, &rt);
    if (perr != 0) {
        log_error("relay thread not started", "error=%s", strerror(perr));
        goto done;
    }
    rt.running = true;
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {hb, 0, ZMQ_POLLIN, 0},
                                   {NULL, svc->sigfd, ZMQ_POLLIN, 0}};
        int64_t now = util_mono_ms();
        /* svc has no relay (it is the thread's): only the review retry sets the timeout. */
        int64_t due = review_started ? INT64_MAX : review_retry;
        if (zmq_poll(items, 4, service_poll_ms(svc, due, now)) < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[3].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        now = util_mono_ms();
        if (items[1].revents & ZMQ_POLLIN && review_started)
            bus_sub_step(review);
        if (!review_started && now >= review_retry) {
            review_started = bus_sub_start(review) == 0;
            review_retry = now + S_SUB_RETRY_MS;
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_drain_heard(hb, &heard);
    }
    log_info("intake stopping", "signal=%s", "term");
    rc = 0;
done:
    ops_stop(ops); /* no check runs past here (they read heard and the settings) */
    if (rt.running) {
        atomic_store(&rt.stop, true);
        pthread_join(rt.thread, NULL);
    }
    deadlines_destroy(&dl);
    bus_sub_destroy(&review);
    bus_relay_destroy(&relay);
    rpc_server_destroy(&rpc);
    zsock_close(&pub);
    zsock_close(&sub);
    zsock_close(&hb);
    service_destroy(&svc);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_review);
    db_destroy(&db_dl);
    timers_destroy(&timers);
    workday_destroy(&cal);
    explicit_bzero(c.s.sec, sizeof c.s.sec);
    config_destroy(&cfg);
    return rc;
}
