/* sx-publication: 执法公示. Settings, sockets and the loop; the rules live in events.c
 * (case, review and recording events in), records.c and sgs.c (the public record),
 * workflow.c (approval and deadlines), stats.c (统计年报), query.c and portal.c (the public
 * API).
 *
 * Settings (environment):
 *   SX_PG_URL              PostgreSQL (libpq URL), required
 *   SX_REDIS_URL           Redis for the deadline timers, required
 *   SX_PUBLICATION_BIND    the request door (ROUTER, CURVE), default tcp://127.0.0.1:7741
 *   SX_KEY_FILE            this service's key pair, required
 *   SX_KEYS_FILE           public key -> identity, for ZAP; reloaded on SIGHUP, required
 *   SX_BROKER_PUB, SX_BROKER_SUB, SX_BROKER_PUBLIC_KEY   the broker, required
 *   SX_SHARD_INDEX, SX_SHARD_COUNT  this writer's shard of the case events (default 0 of 1)
 *   SX_PORTAL_BIND, SX_PORTAL_PORT  the public API, default 127.0.0.1:8088
 *   SX_PORTAL_THREADS, SX_PORTAL_MAX_STALE_MS  its threads (8) and staleness (1000 ms; portal.h)
 *   SX_LEGAL_OFFICE        the city legal office's (司法局) agency code: the statistics of
 *                          each period are reported to it (publication.report.<code>);
 *                          unset, the reports are only stored and read over rpc
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9105
 *   SX_CALENDAR, SX_SCHEMAS, SX_LOG_LEVEL  as for sx-intake
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
#include "drafts.h"
#include "events_since.h"
#include "events.h"
#include "ident.h"
#include "log.h"
#include "portal.h"
#include "publication.h"
#include "service.h"
#include "stats.h"
#include "util.h"
#include "workflow.h"
#include "zsock.h"

#define S_SUB_RETRY_MS  2000 /* a subscriber that could not start tries again */
#define S_TIMER_MS      1000 /* how often due timers are claimed and new drafts armed */
#define S_ARM_BUDGET_MS 200  /* of each S_TIMER_MS at most, arming new drafts */

typedef struct {
    service_config_t s; /* the settings every service reads (service.h) */
    const char *calendar, *portal_bind, *legal_office;
    int portal_port, shard_index, shard_count;
    portal_opts_t portal;
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    service_config_read(cfg, &c->s, "SX_PUBLICATION_BIND", "tcp://127.0.0.1:7741", 9105, true);
    c->portal_bind = config_str(cfg, "SX_PORTAL_BIND", "127.0.0.1");
    c->portal_port = (int)config_int(cfg, "SX_PORTAL_PORT", 8088, 0, 65535);
    c->portal.threads =
        (int)config_int(cfg, "SX_PORTAL_THREADS", PORTAL_THREADS_DEFAULT, 1, PORTAL_THREADS_MAX);
    c->portal.max_stale_ms = (int)config_int(cfg, "SX_PORTAL_MAX_STALE_MS", PORTAL_STALE_DEFAULT_MS,
                                             0, PORTAL_MAX_STALE_MS);
    c->shard_index = (int)config_int(cfg, "SX_SHARD_INDEX", 0, 0, 255);
    c->shard_count = (int)config_int(cfg, "SX_SHARD_COUNT", 1, 1, 256);
    c->calendar = config_str(cfg, "SX_CALENDAR", NULL);
    c->legal_office = config_str(cfg, "SX_LEGAL_OFFICE", NULL);
    if (c->shard_index >= c->shard_count)
        config_fail(cfg, "SX_SHARD_INDEX", "%s", "must be below SX_SHARD_COUNT");
    ident_err_t ie;
    if (c->legal_office && ident_uscc_check(c->legal_office, &ie) != 0)
        config_fail(cfg, "SX_LEGAL_OFFICE", "%s", "expected an 18-character agency code");
    service_config_check(cfg, &c->s);
}

/* Claims due timers, fires them, arms new drafts; rearms everything when Redis lost them.
 * The statistics' period timers are armed with the rest, and again after one fired. */
static void
s_timers(db_t *db, timers_t *timers, const char *legal_office)
{
    if (timer_needs_rearm(timers)) {
        if (workflow_rearm(db, timers) < 0) {
            log_warn("timers not rearmed", "error=%s", timer_error(timers));
            return;
        }
        stats_arm(db, timers, date_from_unix_cst(time(NULL)));
    }
    if (workflow_arm_queued(db, timers, S_ARM_BUDGET_MS) < 0)
        log_warn("new drafts not armed", "error=%s", db_error(db));
    timer_fired_t fired[64];
    int n = timer_claim_due(timers, timer_now_ms(), fired, 64);
    for (int i = 0; i < n; i++) {
        bool stats = strcmp(fired[i].kind, STATS_TIMER) == 0;
        int rc = stats ? stats_generate(db, fired[i].key, legal_office)
                       : workflow_fire(db, fired[i].kind, fired[i].key);
        if (rc == 0)
            timer_done(timers, fired[i].kind, fired[i].key);
        if (rc == 0 && stats)
            stats_arm(db, timers, date_from_unix_cst(time(NULL)));
    }
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c = {0};
    char err[512] = "";
    if (!cfg) {
        fprintf(stderr, "sx-publication: out of memory\n");
        return 1;
    }
    s_read_config(cfg, &c);
    workday_t *cal = service_calendar_load(c.calendar, err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers =
        c.s.redis_url ? timers_new(c.s.redis_url, "publication", err, sizeof err) : NULL;
    if (c.s.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-publication: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.s.sec, sizeof c.s.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("publication", c.s.level);

    int rc = 1;
    service_t *svc = service_new("publication", c.s.keys_file, &c.s);
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_sub_t *intake = NULL, *review = NULL, *recording = NULL;
    portal_t *portal = NULL;
    void *sub = NULL, *sub_rv = NULL, *sub_rec = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL, *db_dl = NULL;
    db_t *db_rv = NULL, *db_rec = NULL;
    publication_t app = {cal, NULL};

    if (!svc)
        goto done;
    if (!(db_rpc = db_open(c.s.pg_url, "sx-publication", 30000)) ||
        !(db_relay = db_open(c.s.pg_url, "sx-publication-relay", 30000)) ||
        !(db_sub = db_open(c.s.pg_url, "sx-publication-intake", 30000)) ||
        !(db_dl = db_open(c.s.pg_url, "sx-publication-deadlines", 30000)) ||
        !(db_rv = db_open(c.s.pg_url, "sx-publication-review", 30000)) ||
        !(db_rec = db_open(c.s.pg_url, "sx-publication-recording", 30000)))
        goto done;
    if (service_migrate(db_rpc, PUB_SCHEMA, c.s.schemas, "publication") < 0)
        goto done;
    if (workflow_prepare(db_rpc) < 0 || workflow_prepare(db_dl) < 0 || events_prepare(db_sub) < 0 ||
        stats_prepare(db_rpc) < 0 || stats_prepare(db_dl) < 0 || events_prepare_stats(db_rv) < 0 ||
        events_prepare_stats(db_rec) < 0) {
        log_error("statements not prepared", "error=%s", "see above");
        goto done;
    }
    if (!(ops = service_ops(c.s.ops_bind, c.s.ops_port, c.s.pg_url, c.s.redis_url)))
        goto done;
    service_calendar_watch(ops, "publication", cal, date_from_unix_cst(time(NULL)));
    app.ops = ops;

    if (service_zap(svc, (const char *const[]){"dept:", "svc:", NULL}, NULL, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    rpc = rpc_server_new(svc->ctx, svc->zap, "publication", c.s.sec, c.s.bind, db_rpc, PUB_SCHEMA,
                         err, sizeof err);
    if (!rpc || rpc_set_retention(rpc, c.s.rpc_keep_days) < 0 ||
        rpc_set_metrics(rpc, ops, "publication") < 0 || workflow_register(rpc, &app) < 0 ||
        stats_register(rpc, &app) < 0 || drafts_register(rpc, &app) < 0 ||
        events_since_register(rpc, PUB_SCHEMA, EVENTS_SINCE_ALLOW) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.s.bind, err);
        goto done;
    }

    if (service_relay(svc, db_relay, PUB_STREAM, err, sizeof err) < 0)
        goto done;
    sub = service_sub(svc, err, sizeof err);
    if (!sub || !(intake = bus_sub_new(db_sub, PUB_SCHEMA, INTAKE_STREAM, events_prefixes, sub,
                                       events_handle_one, &app))) {
        log_error("intake subscriber not made", "broker=%s error=%s", c.s.broker_sub, err);
        goto done;
    }
    bus_sub_set_batch_handler(intake, events_handle);
    if (bus_sub_set_shard(intake, c.shard_index, c.shard_count, events_shard_key, NULL) < 0)
        goto done;
    ops_check(ops, "broker", bus_sub_check, intake);
    /* The statistics' other streams: review's verdicts, recording's AV gaps. Each has its
     * own socket, connection and cursor, and the same shard as the case events' writer. */
    void **socks[2] = {&sub_rv, &sub_rec};
    bus_sub_t **subs[2] = {&review, &recording};
    db_t *dbs[2] = {db_rv, db_rec};
    const char *streams[2] = {"review", "recording"};
    const char *const *prefixes[2] = {events_review_prefixes, events_recording_prefixes};
    for (int i = 0; i < 2; i++) {
        *socks[i] = service_sub(svc, err, sizeof err);
        if (!*socks[i] || !(*subs[i] = bus_sub_new(dbs[i], PUB_SCHEMA, streams[i], prefixes[i],
                                                   *socks[i], events_handle_stats_one, &app))) {
            log_error("subscriber not made", "stream=%s broker=%s error=%s", streams[i],
                      c.s.broker_sub, err);
            goto done;
        }
        bus_sub_set_batch_handler(*subs[i], events_handle_stats);
        if (bus_sub_set_shard(*subs[i], c.shard_index, c.shard_count, NULL, NULL) < 0)
            goto done;
    }

    if (!(portal = portal_new_opts(c.s.pg_url, c.portal_bind, c.portal_port, &c.portal, err,
                                   sizeof err))) {
        log_error("portal not started", "error=%s", err);
        goto done;
    }
    bool started = bus_sub_start(intake) == 0;
    /* review and recording may start later than publication: each retries on its own. */
    bool rv_started = bus_sub_start(review) == 0, rec_started = bus_sub_start(recording) == 0;
    int64_t retry = util_mono_ms() + S_SUB_RETRY_MS, timer_due = 0;
    log_info("publication started", "bind=%s portal_port=%d ops_port=%d shard=%d/%d", c.s.bind,
             portal_port(portal), ops_port(ops), c.shard_index, c.shard_count);

    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[6] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, svc->sigfd, ZMQ_POLLIN, 0},
                                   {sub_rv, 0, ZMQ_POLLIN, 0},
                                   {sub_rec, 0, ZMQ_POLLIN, 0}};
        int n = 5 + service_relay_pollitem(svc, &items[5]);
        int64_t now = util_mono_ms();
        if (zmq_poll(items, n, service_poll_ms(svc, timer_due, now)) < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        now = util_mono_ms();
        service_relay_turn(svc, n == 6 && (items[5].revents & ZMQ_POLLIN), now);
        if (items[1].revents & ZMQ_POLLIN && started)
            bus_sub_step(intake);
        if (items[3].revents & ZMQ_POLLIN && rv_started)
            bus_sub_step(review);
        if (items[4].revents & ZMQ_POLLIN && rec_started)
            bus_sub_step(recording);
        if ((!started || !rv_started || !rec_started) && now >= retry) {
            started = started || bus_sub_start(intake) == 0;
            rv_started = rv_started || bus_sub_start(review) == 0;
            rec_started = rec_started || bus_sub_start(recording) == 0;
            retry = now + S_SUB_RETRY_MS;
        }
        if (now >= timer_due) {
            s_timers(db_dl, timers, c.legal_office);
            timer_due = now + S_TIMER_MS;
        }
    }
    log_info("publication stopping", "signal=%s", "term");
    rc = 0;
done:
    portal_destroy(&portal);
    ops_stop(ops); /* its checks read the subscriber(s) below */
    bus_sub_destroy(&intake);
    bus_sub_destroy(&review);
    bus_sub_destroy(&recording);
    rpc_server_destroy(&rpc);
    zsock_close(&sub);
    zsock_close(&sub_rv);
    zsock_close(&sub_rec);
    service_destroy(&svc);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    db_destroy(&db_dl);
    db_destroy(&db_rv);
    db_destroy(&db_rec);
    timers_destroy(&timers);
    workday_destroy(&cal);
    explicit_bzero(c.s.sec, sizeof c.s.sec);
    config_destroy(&cfg);
    return rc;
}
