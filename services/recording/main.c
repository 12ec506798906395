/* sx-recording: the whole-process record (执法全过程记录). Settings, sockets and the loop;
 * the rules live in chain.c, events.c, av_rules.c, archive.c and access.c (recording.h).
 *
 * Settings (environment):
 *   SX_PG_URL              PostgreSQL (libpq URL), required
 *   SX_RECORDING_BIND      the request door (ROUTER, CURVE), default tcp://127.0.0.1:7721
 *   SX_KEY_FILE            recording's key pair (sxctl keygen; mode 0600): the door's CURVE
 *                          secret and recording's client key at the broker, required
 *   SX_KEYS_FILE           public key -> identity, for ZAP; reloaded on SIGHUP, required
 *   SX_RECORDING_SIGN_KEY  the archive seal's Ed25519 seed file (archive.h); created
 *                          (0600) when absent, required
 *   SX_BROKER_PUB          the broker's publisher endpoint (recording's events go there)
 *   SX_BROKER_SUB          the broker's subscriber endpoint (intake's events come from it)
 *   SX_BROKER_PUBLIC_KEY   the broker's public key, Z85; all three required
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9103
 *   SX_SCHEMAS             the schemas directory (sql/recording, sql/bus, sql/rpc),
 *                          default ./schemas
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

#include "access.h"
#include "archive.h"
#include "bus.h"
#include "classified.h"
#include "config.h"
#include "events.h"
#include "keys.h"
#include "log.h"
#include "recording.h"
#include "rpc.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000

typedef struct {
    const char *pg_url, *bind, *key_file, *keys_file, *sign_key, *ops_bind, *schemas;
    const char *broker_pub, *broker_sub, *broker_key;
    int ops_port;
    log_level_t level;
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pg_url = config_str(cfg, "SX_PG_URL", NULL);
    c->bind = config_str(cfg, "SX_RECORDING_BIND", "tcp://127.0.0.1:7721");
    c->key_file = config_str(cfg, "SX_KEY_FILE", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->sign_key = config_str(cfg, "SX_RECORDING_SIGN_KEY", NULL);
    c->broker_pub = config_str(cfg, "SX_BROKER_PUB", NULL);
    c->broker_sub = config_str(cfg, "SX_BROKER_SUB", NULL);
    c->broker_key = config_str(cfg, "SX_BROKER_PUBLIC_KEY", NULL);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", 9103, 0, 65535);
    c->schemas = config_str(cfg, "SX_SCHEMAS", "schemas");
    c->level = (log_level_t)config_enum(cfg, "SX_LOG_LEVEL", 1, levels);
    const char *required[][2] = {{"SX_PG_URL", c->pg_url},
                                 {"SX_KEY_FILE", c->key_file},
                                 {"SX_KEYS_FILE", c->keys_file},
                                 {"SX_RECORDING_SIGN_KEY", c->sign_key},
                                 {"SX_BROKER_PUB", c->broker_pub},
                                 {"SX_BROKER_SUB", c->broker_sub},
                                 {"SX_BROKER_PUBLIC_KEY", c->broker_key}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i][1])
            config_fail(cfg, required[i][0], "%s", "required");
    const char *eps[][2] = {{"SX_RECORDING_BIND", c->bind},
                            {"SX_BROKER_PUB", c->broker_pub},
                            {"SX_BROKER_SUB", c->broker_sub}};
    for (size_t i = 0; i < 3; i++)
        if (eps[i][1] && strncmp(eps[i][1], "tcp://", 6) != 0 &&
            strncmp(eps[i][1], "ipc://", 6) != 0)
            config_fail(cfg, eps[i][0], "%s", "expected a tcp:// or ipc:// endpoint");
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
    size_t count = keys_count(keys);
    zap_set_keys(zap, &keys);
    log_info("key file loaded", "path=%s keys=%zu", path, count);
    return 0;
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c = {0};
    recording_t app = {0};
    char err[512] = "";
    if (!cfg) {
        fprintf(stderr, "sx-recording: out of memory\n");
        return 1;
    }
    s_read_config(cfg, &c);
    keys_t *keys = c.keys_file ? keys_load(c.keys_file, err, sizeof err) : NULL;
    if (c.keys_file && !keys)
        config_fail(cfg, "SX_KEYS_FILE", "%s", err);
    keys_destroy(&keys);
    bool created = false;
    if (c.sign_key && archive_key_load(c.sign_key, true, &app, &created, err, sizeof err) < 0)
        config_fail(cfg, "SX_RECORDING_SIGN_KEY", "%s", err);
    db_t *probe = c.pg_url ? db_new(c.pg_url, "sx-recording") : NULL;
    if (c.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-recording: bad settings:\n%s\n", config_error(cfg));
        explicit_bzero(c.sec, sizeof c.sec);
        sodium_memzero(app.sign_sk, sizeof app.sign_sk);
        config_destroy(&cfg);
        return 78;
    }
    log_init("recording", c.level);
    char pkhex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    sodium_bin2hex(pkhex, sizeof pkhex, app.sign_pk, sizeof app.sign_pk);
    if (created)
        log_warn("archive seal key created; back it up", "path=%s public_key=%s", c.sign_key,
                 pkhex);
    else
        log_info("archive seal key loaded", "path=%s public_key=%s", c.sign_key, pkhex);

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
    bus_sub_t *sub = NULL;
    void *pub = NULL, *subsock = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL;
    char dir[3][4200];

    if (sigfd < 0) {
        log_error("signalfd failed", "error=%s", strerror(errno));
        goto done;
    }
    /* One connection per user: the door, the relay, the intake subscriber. */
    if (!(db_rpc = db_open(c.pg_url, "sx-recording", 30000)) ||
        !(db_relay = db_open(c.pg_url, "sx-recording-relay", 30000)) ||
        !(db_sub = db_open(c.pg_url, "sx-recording-events", 30000)))
        goto done;
    snprintf(dir[0], sizeof dir[0], "%s/sql/bus", c.schemas);
    snprintf(dir[1], sizeof dir[1], "%s/sql/rpc", c.schemas);
    snprintf(dir[2], sizeof dir[2], "%s/sql/recording", c.schemas);
    if (bus_migrate(db_rpc, RECORDING_SCHEMA, dir[0]) < 0 ||
        rpc_migrate(db_rpc, RECORDING_SCHEMA, dir[1]) < 0 ||
        db_migrate(db_rpc, RECORDING_SCHEMA, dir[2]) < 0) {
        log_error("migrations failed", "error=%s", db_error(db_rpc));
        goto done;
    }
    if (!(ops = ops_new(c.ops_bind, c.ops_port, err, sizeof err))) {
        log_error("ops endpoint not started", "error=%s", err);
        goto done;
    }
    app.ops = ops;
    ops_metric_t *m_admit = ops_counter(ops, "sx_recording_connections_admitted_total", NULL,
                                        "Connections admitted by ZAP");
    ops_metric_t *m_refuse = ops_counter(ops, "sx_recording_connections_refused_total", NULL,
                                         "Connections refused by ZAP (unknown key, not CURVE)");
    ops_check(ops, "postgres", ops_check_postgres, (void *)c.pg_url);

    if (!(zap = zap_new(ctx, err, sizeof err)) || zap_allow(zap, "recording", "dept:") < 0 ||
        zap_allow(zap, "recording", "svc:") < 0 ||
        s_load_keys(zap, c.keys_file, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    zap_set_metrics(zap, m_admit, m_refuse);
    rpc = rpc_server_new(ctx, zap, "recording", c.sec, c.bind, db_rpc, RECORDING_SCHEMA, err,
                         sizeof err);
    if (!rpc) {
        log_error("request door not opened", "bind=%s error=%s", c.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "recording") < 0 || access_register(rpc, db_rpc, &app) < 0 ||
        classified_register(rpc, db_rpc) < 0) {
        log_error("ops not registered", "bind=%s", c.bind);
        goto done;
    }

    zsock_limits_t out = {1000, 100000, 1000, ZSOCK_MAXMSGSIZE};
    zsock_limits_t in = {0, 10000, 100000, ZSOCK_MAXMSGSIZE};
    pub = zsock_client(ctx, ZMQ_PUB, c.broker_key, c.pub, c.sec, &out, err, sizeof err);
    if (!pub || zsock_connect(pub, c.broker_pub, err, sizeof err) < 0 ||
        !(relay = bus_relay_new(db_relay, RECORDING_STREAM, pub))) {
        log_error("relay not started", "broker=%s error=%s", c.broker_pub, err);
        goto done;
    }
    subsock = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
    if (!subsock || zsock_connect(subsock, c.broker_sub, err, sizeof err) < 0 ||
        recording_events_prepare(db_sub) < 0 ||
        !(sub = bus_sub_new(db_sub, RECORDING_SCHEMA, RECORDING_SOURCE, recording_events_prefixes,
                            subsock, recording_events_handle_one, &app))) {
        log_error("intake subscriber not started", "broker=%s error=%s", c.broker_sub,
                  err[0] ? err : db_error(db_sub));
        goto done;
    }
    bus_sub_set_batch_handler(sub, recording_events_handle);
    /* From the subscriber's own counters, which count only committed work. */
    ops_metric_t *m_applied = ops_gauge(ops, "sx_recording_events_applied", NULL,
                                        "Intake events applied (entries appended) since start");
    ops_metric_t *m_rejected = ops_gauge(ops, "sx_recording_events_rejected", NULL,
                                         "Intake events refused as malformed since start");
    ops_metric_t *m_cursor =
        ops_gauge(ops, "sx_recording_intake_cursor", NULL, "The last intake seq applied");
    ops_metric_t *m_head =
        ops_gauge(ops, "sx_recording_intake_head", NULL, "The highest intake seq known to exist");
    ops_check(ops, "broker", bus_sub_check, sub);
    bool started = bus_sub_start(sub) == 0;
    int64_t retry = util_mono_ms() + S_SUB_RETRY_MS;
    log_info("recording started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s", c.bind,
             ops_port(ops), c.broker_pub, c.broker_sub);

    int64_t relay_due = util_mono_ms();
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {subsock, 0, ZMQ_POLLIN, 0},
                                   {NULL, sigfd, ZMQ_POLLIN, 0},
                                   {NULL, bus_relay_fd(relay), ZMQ_POLLIN, 0}};
        int n = items[3].fd >= 0 ? 4 : 3;
        int64_t now = util_mono_ms();
        int64_t wait = relay_due - now;
        if (!started && retry - now < wait)
            wait = retry - now;
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
            int w = bus_relay_step(relay, now);
            relay_due = now + (w < 0 ? 200 : w);
        }
        if ((items[1].revents & ZMQ_POLLIN) && started) {
            bus_sub_step(sub);
            bus_sub_stats_t st = bus_sub_stats(sub);
            ops_set(m_applied, (double)st.applied);
            ops_set(m_rejected, (double)st.rejected);
            ops_set(m_cursor, (double)st.cursor);
            ops_set(m_head, (double)st.head);
        }
        if (!started && now >= retry) {
            started = bus_sub_start(sub) == 0;
            retry = now + S_SUB_RETRY_MS;
        }
    }
    log_info("recording stopping", "signal=%s", "term");
    rc = 0;
done:
    bus_sub_destroy(&sub);
    bus_relay_destroy(&relay);
    rpc_server_destroy(&rpc);
    zsock_close(&pub);
    zsock_close(&subsock);
    zap_destroy(&zap);
    zmq_ctx_term(ctx);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    explicit_bzero(c.sec, sizeof c.sec);
    sodium_memzero(app.sign_sk, sizeof app.sign_sk);
    if (sigfd >= 0)
        close(sigfd);
    config_destroy(&cfg);
    return rc;
}
