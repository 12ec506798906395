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
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "deadlines.h"
#include "events.h"
#include "ident.h"
#include "keys.h"
#include "log.h"
#include "opinion.h"
#include "review.h"
#include "settings.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000

typedef struct {
    const char *pg_url, *redis_url, *bind, *key_file, *keys_file, *ops_bind, *schemas, *pool;
    const char *broker_pub, *broker_sub, *broker_key, *calendar;
    int ops_port;
    long sweep_ms;
    log_level_t level;
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pg_url = config_str(cfg, "SX_PG_URL", NULL);
    c->redis_url = config_str(cfg, "SX_REDIS_URL", NULL);
    c->bind = config_str(cfg, "SX_REVIEW_BIND", "tcp://127.0.0.1:7731");
    c->key_file = config_str(cfg, "SX_KEY_FILE", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->broker_pub = config_str(cfg, "SX_BROKER_PUB", NULL);
    c->broker_sub = config_str(cfg, "SX_BROKER_SUB", NULL);
    c->broker_key = config_str(cfg, "SX_BROKER_PUBLIC_KEY", NULL);
    c->pool = config_str(cfg, "SX_REVIEW_POOL_AGENCY", NULL);
    c->sweep_ms = (long)config_int(cfg, "SX_REVIEW_SWEEP_MS", 60000, 100, 3600000);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", 9104, 0, 65535);
    c->calendar = config_str(cfg, "SX_CALENDAR", NULL);
    c->schemas = config_str(cfg, "SX_SCHEMAS", "schemas");
    c->level = (log_level_t)config_enum(cfg, "SX_LOG_LEVEL", 1, levels);
    const char *required[][2] = {{"SX_PG_URL", c->pg_url},
                                 {"SX_REDIS_URL", c->redis_url},
                                 {"SX_KEY_FILE", c->key_file},
                                 {"SX_KEYS_FILE", c->keys_file},
                                 {"SX_BROKER_PUB", c->broker_pub},
                                 {"SX_BROKER_SUB", c->broker_sub},
                                 {"SX_BROKER_PUBLIC_KEY", c->broker_key}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i][1])
            config_fail(cfg, required[i][0], "%s", "required");
    const char *eps[][2] = {{"SX_REVIEW_BIND", c->bind},
                            {"SX_BROKER_PUB", c->broker_pub},
                            {"SX_BROKER_SUB", c->broker_sub}};
    for (size_t i = 0; i < 3; i++)
        if (eps[i][1] && strncmp(eps[i][1], "tcp://", 6) != 0 &&
            strncmp(eps[i][1], "ipc://", 6) != 0)
            config_fail(cfg, eps[i][0], "%s", "expected a tcp:// or ipc:// endpoint");
    if (c->broker_key && !keys_z85_valid(c->broker_key))
        config_fail(cfg, "SX_BROKER_PUBLIC_KEY", "%s", "expected 40 Z85 characters");
    if (c->pool && (strlen(c->pool) != 18 || ident_uscc_check_char(c->pool) != c->pool[17]))
        config_fail(cfg, "SX_REVIEW_POOL_AGENCY", "%s", "expected an 18-character agency code");
    char err[512];
    if (c->key_file && keys_read_pair(c->key_file, c->pub, c->sec, err, sizeof err) != 0)
        config_fail(cfg, "SX_KEY_FILE", "%s", err);
    struct stat st;
    if (stat(c->schemas, &st) != 0 || !S_ISDIR(st.st_mode))
        config_fail(cfg, "SX_SCHEMAS", "%s", "not a directory");
}

static int
s_load_keys(zap_t *zap, const char *path, char *err, size_t errlen)
{
    keys_t *keys = keys_load(path, err, errlen);
    if (!keys)
        return -1;
    size_t count = keys_count(keys);
    zap_set_keys(zap, &keys);
    log_info("key file loaded", "path=%s keys=%zu", path, count);
    return 0;
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
    keys_t *keys = c.keys_file ? keys_load(c.keys_file, err, sizeof err) : NULL;
    if (c.keys_file && !keys)
        config_fail(cfg, "SX_KEYS_FILE", "%s", err);
    keys_destroy(&keys);
    workday_t *cal = c.calendar ? workday_load(c.calendar, err, sizeof err)
                                : workday_load_default(err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers = c.redis_url ? timers_new(c.redis_url, "review", err, sizeof err) : NULL;
    if (c.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    db_t *probe = c.pg_url ? db_new(c.pg_url, "sx-review") : NULL;
    if (c.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-review: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.sec, sizeof c.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("review", c.level);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    int rc = 1;
    void *ctx = zmq_ctx_new();
    zap_t *zap = NULL;
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_relay_t *relay = NULL;
    bus_sub_t *intake = NULL;
    deadlines_t *deadlines = NULL;
    void *pub = NULL, *sub = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL, *db_dl = NULL;
    char dir[3][4200];

    if (sigfd < 0) {
        log_error("signalfd failed", "error=%s", strerror(errno));
        goto done;
    }
    /* One connection per user: the door, the relay, the intake subscriber, deadlines. */
    if (!(db_rpc = db_open(c.pg_url, "sx-review", 30000)) ||
        !(db_relay = db_open(c.pg_url, "sx-review-relay", 30000)) ||
        !(db_sub = db_open(c.pg_url, "sx-review-intake", 30000)) ||
        !(db_dl = db_open(c.pg_url, "sx-review-deadlines", 30000)))
        goto done;
    snprintf(dir[0], sizeof dir[0], "%s/sql/bus", c.schemas);
    snprintf(dir[1], sizeof dir[1], "%s/sql/rpc", c.schemas);
    snprintf(dir[2], sizeof dir[2], "%s/sql/review", c.schemas);
    if (bus_migrate(db_rpc, REVIEW_SCHEMA, dir[0]) < 0 ||
        rpc_migrate(db_rpc, REVIEW_SCHEMA, dir[1]) < 0 ||
        db_migrate(db_rpc, REVIEW_SCHEMA, dir[2]) < 0) {
        log_error("migrations failed", "error=%s", db_error(db_rpc));
        goto done;
    }

    if (!(ops = ops_new(c.ops_bind, c.ops_port, err, sizeof err))) {
        log_error("ops endpoint not started", "error=%s", err);
        goto done;
    }
    ops_metric_t *m_admit = ops_counter(ops, "sx_review_connections_admitted_total", NULL,
                                        "Connections admitted by ZAP");
    ops_metric_t *m_refuse = ops_counter(ops, "sx_review_connections_refused_total", NULL,
                                         "Connections refused by ZAP (unknown key, not CURVE)");
    ops_check(ops, "postgres", ops_check_postgres, (void *)c.pg_url);
    ops_check(ops, "redis", ops_check_redis, (void *)c.redis_url);

    if (!(zap = zap_new(ctx, err, sizeof err)) || zap_allow(zap, "review", "dept:") < 0 ||
        zap_allow(zap, "review", "svc:") < 0 ||
        s_load_keys(zap, c.keys_file, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    zap_set_metrics(zap, m_admit, m_refuse);

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
        log_error("deadline timers not started", "redis=%s", c.redis_url);
        goto done;
    }
    rpc = rpc_server_new(ctx, zap, "review", c.sec, c.bind, db_rpc, REVIEW_SCHEMA, err, sizeof err);
    if (!rpc) {
        log_error("request door not opened", "bind=%s error=%s", c.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "review") < 0 || opinion_prepare(db_rpc) < 0 ||
        opinion_register(rpc, &app) < 0 || reviewers_register(rpc, &app) < 0 ||
        settings_prepare(db_rpc) < 0 || settings_register(rpc, &app) < 0) {
        log_error("ops not registered", "bind=%s error=%s", c.bind, db_error(db_rpc));
        goto done;
    }

    zsock_limits_t out = {1000, 100000, 1000, ZSOCK_MAXMSGSIZE};
    zsock_limits_t in = {0, 10000, 100000, ZSOCK_MAXMSGSIZE};
    pub = zsock_client(ctx, ZMQ_PUB, c.broker_key, c.pub, c.sec, &out, err, sizeof err);
    if (!pub || zsock_connect(pub, c.broker_pub, err, sizeof err) < 0 ||
        !(relay = bus_relay_new(db_relay, REVIEW_STREAM, pub))) {
        log_error("relay not started", "broker=%s error=%s", c.broker_pub, err);
        goto done;
    }
    /* Events in: intake's registry and case events (the review requests). */
    sub = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
    if (!sub || zsock_connect(sub, c.broker_sub, err, sizeof err) < 0 ||
        events_prepare(db_sub) < 0 ||
        !(intake = bus_sub_new(db_sub, REVIEW_SCHEMA, "intake", events_prefixes, sub, s_per_event,
                               &app))) {
        log_error("intake subscriber not started", "broker=%s error=%s", c.broker_sub,
                  err[0] ? err : db_error(db_sub));
        goto done;
    }
    bus_sub_set_batch_handler(intake, events_handle);
    ops_check(ops, "broker", bus_sub_check, intake);
    bool started = bus_sub_start(intake) == 0;
    int64_t sub_retry = util_mono_ms() + S_SUB_RETRY_MS, deadlines_due = util_mono_ms();
    log_info("review started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s pool=%s", c.bind,
             ops_port(ops), c.broker_pub, c.broker_sub, c.pool ? c.pool : "-");

    int64_t relay_due = util_mono_ms();
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, sigfd, ZMQ_POLLIN, 0},
                                   {NULL, bus_relay_fd(relay), ZMQ_POLLIN, 0}};
        int n = items[3].fd >= 0 ? 4 : 3;
        int64_t now = util_mono_ms();
        int64_t wait = relay_due - now;
        if (!started && sub_retry - now < wait)
            wait = sub_retry - now;
        if (deadlines_due - now < wait)
            wait = deadlines_due - now;
        if (zmq_poll(items, n,
                     wait < 0      ? 0
                     : wait > 1000 ? 1000
                                   : (long)wait) < 0 &&
            zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo != SIGHUP)
                    stop = true;
                else if (s_load_keys(zap, c.keys_file, err, sizeof err) < 0)
                    log_error("key file not loaded; keeping the previous keys", "error=%s", err);
            }
        }
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        now = util_mono_ms();
        if ((n == 4 && (items[3].revents & ZMQ_POLLIN)) || now >= relay_due) {
            int relay_wait = bus_relay_step(relay, now);
            relay_due = now + (relay_wait < 0 ? 200 : relay_wait);
        }
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
    bus_sub_destroy(&intake);
    bus_relay_destroy(&relay);
    deadlines_destroy(&deadlines);
    timers_destroy(&timers);
    rpc_server_destroy(&rpc);
    zsock_close(&pub);
    zsock_close(&sub);
    zap_destroy(&zap);
    zmq_ctx_term(ctx);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    db_destroy(&db_dl);
    workday_destroy(&cal);
    explicit_bzero(c.sec, sizeof c.sec);
    if (sigfd >= 0)
        close(sigfd);
    config_destroy(&cfg);
    return rc;
}
