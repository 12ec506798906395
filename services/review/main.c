/* sx-review: legal review of major enforcement decisions (重大执法决定法制审核). Settings,
 * sockets and the loop; the rules live in catalogue.c, reviewers.c, discretion.c,
 * opinion.c, settings.c, events.c and deadlines.c (review.h).
 *
 * Settings (environment):
 *   SX_PG_URL              PostgreSQL (libpq URL), required
 *   SX_REDIS_URL           Redis for the deadline timers (redis://host[:port][/db]), required
 *   SX_REVIEW_BIND         the reviewers' door (ROUTER, CURVE), default tcp://127.0.0.1:7731
 *   SX_KEY_FILE            review's key pair (sxctl keygen; mode 0600), required
 *   SX_KEYS_FILE           public key -> identity, for ZAP; reloaded on SIGHUP, required
 *   SX_BROKER_PUB          the broker's publisher endpoint (review.* go there)
 *   SX_BROKER_SUB          the broker's subscriber endpoint (intake's case.*, registry.*)
 *   SX_BROKER_PUBLIC_KEY   the broker's public key, Z85; all three required
 *   SX_REVIEW_POOL_AGENCY  the legal office's agency code: its reviewers are the city pool
 *                          (法律顾问 / 公职律师) and it answers escalations; optional
 *   SX_REVIEW_SWEEP_MS     how often every open task's deadline timers are armed again
 *                          from PostgreSQL (a repair: new tasks are armed within a second)
 *                          and the task gauges refreshed, default 60000
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9104
 *   SX_CALENDAR            the working-day calendar file (default: see workday.h)
 *   SX_SCHEMAS             the schemas directory (sql/review, sql/bus, sql/rpc), default
 *                          ./schemas
 *   SX_LOG_LEVEL           debug|info|warn|error, default info
 *
 * Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads SX_KEYS_FILE.
 * Exit 78 on bad settings, naming every bad variable; 1 when start-up fails. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "deadlines.h"
#include "events.h"
#include "events_since.h"
#include "ident.h"
#include "log.h"
#include "opinion.h"
#include "review.h"
#include "service.h"
#include "settings.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000

typedef struct {
    service_config_t s;   /* the settings every service reads (service.h) */
    const char *pool;     /* SX_REVIEW_POOL_AGENCY */
    const char *calendar; /* SX_CALENDAR */
    long sweep_ms;        /* SX_REVIEW_SWEEP_MS */
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    service_config_read(cfg, &c->s, "SX_REVIEW_BIND", "tcp://127.0.0.1:7731", 9104, true);
    c->pool = config_str(cfg, "SX_REVIEW_POOL_AGENCY", NULL);
    c->sweep_ms = (long)config_int(cfg, "SX_REVIEW_SWEEP_MS", 60000, 100, 3600000);
    c->calendar = config_str(cfg, "SX_CALENDAR", NULL);
    service_config_endpoints(cfg, &c->s, "SX_REVIEW_BIND");
    if (c->pool && (strlen(c->pool) != 18 || ident_uscc_check_char(c->pool) != c->pool[17]))
        config_fail(cfg, "SX_REVIEW_POOL_AGENCY", "%s", "expected an 18-character agency code");
    service_config_check(cfg, &c->s);
}

/* bus_sub_new wants a per-event handler; the batch handler replaces it before start. */
static int
s_per_event(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)ev;
    (void)why;
    (void)whylen;
    return events_handle(tx, ev, 1, arg);
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c = {0};
    char err[512] = "";
    if (!cfg) {
        fprintf(stderr, "sx-review: out of memory\n");
        return 1;
    }
    s_read_config(cfg, &c);
    workday_t *cal = service_calendar_load(c.calendar, err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers = c.s.redis_url ? timers_new(c.s.redis_url, "review", err, sizeof err) : NULL;
    if (c.s.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    db_t *probe = c.s.pg_url ? db_new(c.s.pg_url, "sx-review") : NULL;
    if (c.s.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-review: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.s.sec, sizeof c.s.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("review", c.s.level);

    int rc = 1;
    service_t *svc = service_new("review", c.s.keys_file, &c.s);
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_sub_t *intake = NULL;
    deadlines_t *deadlines = NULL;
    void *sub = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL, *db_dl = NULL;

    if (!svc)
        goto done;
    /* One connection per user: the door, the relay, the intake subscriber, deadlines. */
    if (!(db_rpc = db_open(c.s.pg_url, "sx-review", 30000)) ||
        !(db_relay = db_open(c.s.pg_url, "sx-review-relay", 30000)) ||
        !(db_sub = db_open(c.s.pg_url, "sx-review-intake", 30000)) ||
        !(db_dl = db_open(c.s.pg_url, "sx-review-deadlines", 30000)))
        goto done;
    if (service_migrate(db_rpc, REVIEW_SCHEMA, c.s.schemas, "review") < 0)
        goto done;

    if (!(ops = service_ops(c.s.ops_bind, c.s.ops_port, c.s.pg_url, c.s.redis_url)))
        goto done;
    service_calendar_watch(ops, "review", cal, date_from_unix_cst(time(NULL)));
    if (service_zap(svc, (const char *const[]){"dept:", "svc:", NULL}, ops, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }

    review_t app = {cal, c.pool, ops, NULL, NULL, NULL};
    app.m_open = ops_gauge(ops, "sx_review_tasks_open", NULL, "Review tasks open");
    app.m_overdue = ops_gauge(ops, "sx_review_tasks_overdue", NULL, "Review tasks open past due");
    app.m_understaffed = ops_gauge(ops, "sx_review_agencies_understaffed", NULL,
                                   "Agencies with reviewers below 5% of officers (item 19)");
    /* The keeper owns db_dl and the timers from here on, also when it fails. */
    deadlines = deadlines_new(db_dl, timers, &app, c.sweep_ms);
    db_dl = NULL;
    timers = NULL;
    if (!deadlines) {
        log_error("deadline timers not started", "redis=%s", c.s.redis_url);
        goto done;
    }
    rpc = rpc_server_new(svc->ctx, svc->zap, "review", c.s.sec, c.s.bind, db_rpc, REVIEW_SCHEMA,
                         err, sizeof err);
    if (!rpc || rpc_set_retention(rpc, c.s.rpc_keep_days) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.s.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "review") < 0 || opinion_prepare(db_rpc) < 0 ||
        opinion_register(rpc, &app) < 0 || reviewers_register(rpc, &app) < 0 ||
        settings_prepare(db_rpc) < 0 || settings_register(rpc, &app) < 0 ||
        events_since_register(rpc, REVIEW_SCHEMA, EVENTS_SINCE_ALLOW) < 0) {
        log_error("ops not registered", "bind=%s error=%s", c.s.bind, db_error(db_rpc));
        goto done;
    }

    if (service_relay(svc, db_relay, REVIEW_STREAM, err, sizeof err) < 0)
        goto done;
    /* Events in: intake's registry and case events (the review requests). */
    sub = service_sub(svc, err, sizeof err);
    if (!sub || events_prepare(db_sub) < 0 ||
        !(intake = bus_sub_new(db_sub, REVIEW_SCHEMA, "intake", events_prefixes, sub, s_per_event,
                               &app))) {
        log_error("intake subscriber not started", "broker=%s error=%s", c.s.broker_sub,
                  err[0] ? err : db_error(db_sub));
        goto done;
    }
    bus_sub_set_batch_handler(intake, events_handle);
    ops_check(ops, "broker", bus_sub_check, intake);
    bool started = bus_sub_start(intake) == 0;
    int64_t sub_retry = util_mono_ms() + S_SUB_RETRY_MS, deadlines_due = util_mono_ms();
    log_info("review started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s pool=%s", c.s.bind,
             ops_port(ops), c.s.broker_pub, c.s.broker_sub, c.pool ? c.pool : "-");

    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, svc->sigfd, ZMQ_POLLIN, 0}};
        int n = 3 + service_relay_pollitem(svc, &items[3]);
        int64_t now = util_mono_ms();
        int64_t due = !started && sub_retry < deadlines_due ? sub_retry : deadlines_due;
        if (zmq_poll(items, n, service_poll_ms(svc, due, now)) < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        now = util_mono_ms();
        service_relay_turn(svc, n == 4 && (items[3].revents & ZMQ_POLLIN), now);
        if (items[1].revents & ZMQ_POLLIN && started)
            bus_sub_step(intake);
        if (!started && now >= sub_retry) {
            started = bus_sub_start(intake) == 0;
            sub_retry = now + S_SUB_RETRY_MS;
        }
        if (now >= deadlines_due)
            deadlines_due = now + deadlines_step(deadlines, timer_now_ms());
    }
    log_info("review stopping", "signal=%s", "term");
    rc = 0;
done:
    ops_stop(ops); /* its checks read the subscriber(s) below */
    bus_sub_destroy(&intake);
    deadlines_destroy(&deadlines);
    timers_destroy(&timers);
    rpc_server_destroy(&rpc);
    zsock_close(&sub);
    service_destroy(&svc);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    db_destroy(&db_dl);
    workday_destroy(&cal);
    explicit_bzero(c.s.sec, sizeof c.s.sec);
    config_destroy(&cfg);
    return rc;
}
