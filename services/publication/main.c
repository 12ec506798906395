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
 *   SX_PORTAL_THREADS, SX_PORTAL_MAX_STALE_MS  its threads (8) and staleness (0: none; portal.h)
 *   SX_LEGAL_OFFICE        the city legal office's (司法局) agency code: the statistics of
 *                          each period are reported to it (publication.report.<code>);
 *                          unset, the reports are only stored and read over rpc
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9105
 *   SX_CALENDAR, SX_SCHEMAS, SX_LOG_LEVEL  as for sx-intake
 *
 * Signals: SIGTERM/SIGINT stop cleanly (exit 0); SIGHUP reloads SX_KEYS_FILE.
 * Exit 78 on bad settings, naming every bad variable; 1 when start-up fails. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "events.h"
#include "ident.h"
#include "keys.h"
#include "log.h"
#include "portal.h"
#include "publication.h"
#include "stats.h"
#include "util.h"
#include "workflow.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000 /* a subscriber that could not start tries again */
#define S_TIMER_MS     1000 /* how often due timers are claimed and new drafts armed */

typedef struct {
    const char *pg_url, *redis_url, *bind, *key_file, *keys_file, *ops_bind, *schemas;
    const char *broker_pub, *broker_sub, *broker_key, *calendar, *portal_bind, *legal_office;
    int ops_port, portal_port, shard_index, shard_count;
    portal_opts_t portal;
    log_level_t level;
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pg_url = config_str(cfg, "SX_PG_URL", NULL);
    c->redis_url = config_str(cfg, "SX_REDIS_URL", NULL);
    c->bind = config_str(cfg, "SX_PUBLICATION_BIND", "tcp://127.0.0.1:7741");
    c->key_file = config_str(cfg, "SX_KEY_FILE", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->broker_pub = config_str(cfg, "SX_BROKER_PUB", NULL);
    c->broker_sub = config_str(cfg, "SX_BROKER_SUB", NULL);
    c->broker_key = config_str(cfg, "SX_BROKER_PUBLIC_KEY", NULL);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", 9105, 0, 65535);
    c->portal_bind = config_str(cfg, "SX_PORTAL_BIND", "127.0.0.1");
    c->portal_port = (int)config_int(cfg, "SX_PORTAL_PORT", 8088, 0, 65535);
    c->portal.threads = (int)config_int(cfg, "SX_PORTAL_THREADS", PORTAL_THREADS_DEFAULT, 1,
                                        PORTAL_THREADS_MAX);
    c->portal.max_stale_ms =
        (int)config_int(cfg, "SX_PORTAL_MAX_STALE_MS", 0, 0, PORTAL_MAX_STALE_MS);
    c->shard_index = (int)config_int(cfg, "SX_SHARD_INDEX", 0, 0, 255);
    c->shard_count = (int)config_int(cfg, "SX_SHARD_COUNT", 1, 1, 256);
    c->calendar = config_str(cfg, "SX_CALENDAR", NULL);
    c->legal_office = config_str(cfg, "SX_LEGAL_OFFICE", NULL);
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
    if (c->shard_index >= c->shard_count)
        config_fail(cfg, "SX_SHARD_INDEX", "%s", "must be below SX_SHARD_COUNT");
    ident_err_t ie;
    if (c->legal_office && ident_uscc_check(c->legal_office, &ie) != 0)
        config_fail(cfg, "SX_LEGAL_OFFICE", "%s", "expected an 18-character agency code");
    if (c->broker_key && !keys_z85_valid(c->broker_key))
        config_fail(cfg, "SX_BROKER_PUBLIC_KEY", "%s", "expected 40 Z85 characters");
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
    zap_set_keys(zap, &keys);
    log_info("key file loaded", "path=%s", path);
    return 0;
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
    if (workflow_arm_new(db, timers) < 0)
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
    keys_t *keys = c.keys_file ? keys_load(c.keys_file, err, sizeof err) : NULL;
    if (c.keys_file && !keys)
        config_fail(cfg, "SX_KEYS_FILE", "%s", err);
    keys_destroy(&keys);
    workday_t *cal = c.calendar ? workday_load(c.calendar, err, sizeof err)
                                : workday_load_default(err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers = c.redis_url ? timers_new(c.redis_url, "publication", err, sizeof err) : NULL;
    if (c.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-publication: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.sec, sizeof c.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("publication", c.level);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    int rc = 1;
    void *ctx = zmq_ctx_new();
    ops_t *ops = NULL;
    zap_t *zap = NULL;
    rpc_server_t *rpc = NULL;
    bus_relay_t *relay = NULL;
    bus_sub_t *intake = NULL, *review = NULL, *recording = NULL;
    portal_t *portal = NULL;
    void *pub = NULL, *sub = NULL, *sub_rv = NULL, *sub_rec = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL, *db_dl = NULL;
    db_t *db_rv = NULL, *db_rec = NULL;
    char dir[3][4200];
    publication_t app = {cal, NULL};

    if (sigfd < 0) {
        log_error("signalfd failed", "error=%s", strerror(errno));
        goto done;
    }
    if (!(db_rpc = db_open(c.pg_url, "sx-publication", 30000)) ||
        !(db_relay = db_open(c.pg_url, "sx-publication-relay", 30000)) ||
        !(db_sub = db_open(c.pg_url, "sx-publication-intake", 30000)) ||
        !(db_dl = db_open(c.pg_url, "sx-publication-deadlines", 30000)) ||
        !(db_rv = db_open(c.pg_url, "sx-publication-review", 30000)) ||
        !(db_rec = db_open(c.pg_url, "sx-publication-recording", 30000)))
        goto done;
    snprintf(dir[0], sizeof dir[0], "%s/sql/bus", c.schemas);
    snprintf(dir[1], sizeof dir[1], "%s/sql/rpc", c.schemas);
    snprintf(dir[2], sizeof dir[2], "%s/sql/publication", c.schemas);
    if (bus_migrate(db_rpc, PUB_SCHEMA, dir[0]) < 0 ||
        rpc_migrate(db_rpc, PUB_SCHEMA, dir[1]) < 0 || db_migrate(db_rpc, PUB_SCHEMA, dir[2]) < 0) {
        log_error("migrations failed", "error=%s", db_error(db_rpc));
        goto done;
    }
    if (workflow_prepare(db_rpc) < 0 || workflow_prepare(db_dl) < 0 || events_prepare(db_sub) < 0 ||
        stats_prepare(db_rpc) < 0 || stats_prepare(db_dl) < 0 || events_prepare_stats(db_rv) < 0 ||
        events_prepare_stats(db_rec) < 0) {
        log_error("statements not prepared", "error=%s", "see above");
        goto done;
    }
    if (!(ops = ops_new(c.ops_bind, c.ops_port, err, sizeof err))) {
        log_error("ops endpoint not started", "error=%s", err);
        goto done;
    }
    app.ops = ops;
    ops_check(ops, "postgres", ops_check_postgres, (void *)c.pg_url);
    ops_check(ops, "redis", ops_check_redis, (void *)c.redis_url);

    if (!(zap = zap_new(ctx, err, sizeof err)) || zap_allow(zap, "publication", "dept:") < 0 ||
        zap_allow(zap, "publication", "svc:") < 0 ||
        s_load_keys(zap, c.keys_file, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    rpc =
        rpc_server_new(ctx, zap, "publication", c.sec, c.bind, db_rpc, PUB_SCHEMA, err, sizeof err);
    if (!rpc || rpc_set_metrics(rpc, ops, "publication") < 0 || workflow_register(rpc, &app) < 0 ||
        stats_register(rpc, &app) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.bind, err);
        goto done;
    }

    zsock_limits_t out = {1000, 100000, 1000, ZSOCK_MAXMSGSIZE};
    zsock_limits_t in = {0, 10000, 100000, ZSOCK_MAXMSGSIZE};
    pub = zsock_client(ctx, ZMQ_PUB, c.broker_key, c.pub, c.sec, &out, err, sizeof err);
    if (!pub || zsock_connect(pub, c.broker_pub, err, sizeof err) < 0 ||
        !(relay = bus_relay_new(db_relay, PUB_STREAM, pub))) {
        log_error("relay not started", "broker=%s error=%s", c.broker_pub, err);
        goto done;
    }
    sub = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
    if (!sub || zsock_connect(sub, c.broker_sub, err, sizeof err) < 0 ||
        !(intake = bus_sub_new(db_sub, PUB_SCHEMA, INTAKE_STREAM, events_prefixes, sub,
                               events_handle_one, &app))) {
        log_error("intake subscriber not made", "broker=%s error=%s", c.broker_sub, err);
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
        *socks[i] = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
        if (!*socks[i] || zsock_connect(*socks[i], c.broker_sub, err, sizeof err) < 0 ||
            !(*subs[i] = bus_sub_new(dbs[i], PUB_SCHEMA, streams[i], prefixes[i], *socks[i],
                                     events_handle_stats_one, &app))) {
            log_error("subscriber not made", "stream=%s broker=%s error=%s", streams[i],
                      c.broker_sub, err);
            goto done;
        }
        bus_sub_set_batch_handler(*subs[i], events_handle_stats);
        if (bus_sub_set_shard(*subs[i], c.shard_index, c.shard_count, NULL, NULL) < 0)
            goto done;
    }

    if (!(portal = portal_new_opts(c.pg_url, c.portal_bind, c.portal_port, &c.portal, err,
                                   sizeof err))) {
        log_error("portal not started", "error=%s", err);
        goto done;
    }
    bool started = bus_sub_start(intake) == 0;
    /* review and recording may start later than publication: each retries on its own. */
    bool rv_started = bus_sub_start(review) == 0, rec_started = bus_sub_start(recording) == 0;
    int64_t retry = util_mono_ms() + S_SUB_RETRY_MS, timer_due = 0;
    log_info("publication started", "bind=%s portal_port=%d ops_port=%d shard=%d/%d", c.bind,
             portal_port(portal), ops_port(ops), c.shard_index, c.shard_count);

    int64_t relay_due = util_mono_ms();
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[6] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, sigfd, ZMQ_POLLIN, 0},
                                   {sub_rv, 0, ZMQ_POLLIN, 0},
                                   {sub_rec, 0, ZMQ_POLLIN, 0},
                                   {NULL, bus_relay_fd(relay), ZMQ_POLLIN, 0}};
        int n = items[5].fd >= 0 ? 6 : 5;
        int64_t now = util_mono_ms();
        int64_t wait = relay_due - now;
        if (timer_due - now < wait)
            wait = timer_due - now;
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
        if ((n == 6 && (items[5].revents & ZMQ_POLLIN)) || now >= relay_due) {
            int w = bus_relay_step(relay, now);
            relay_due = now + (w < 0 ? 200 : w);
        }
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
    bus_sub_destroy(&intake);
    bus_sub_destroy(&review);
    bus_sub_destroy(&recording);
    bus_relay_destroy(&relay);
    rpc_server_destroy(&rpc);
    zsock_close(&pub);
    zsock_close(&sub);
    zsock_close(&sub_rv);
    zsock_close(&sub_rec);
    zap_destroy(&zap);
    zmq_ctx_term(ctx);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    db_destroy(&db_dl);
    db_destroy(&db_rv);
    db_destroy(&db_rec);
    timers_destroy(&timers);
    workday_destroy(&cal);
    explicit_bzero(c.sec, sizeof c.sec);
    if (sigfd >= 0)
        close(sigfd);
    config_destroy(&cfg);
    return rc;
}
