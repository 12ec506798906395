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
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "access.h"
#include "archive.h"
#include "bus.h"
#include "classified.h"
#include "config.h"
#include "events_since.h"
#include "events.h"
#include "log.h"
#include "recording.h"
#include "rpc.h"
#include "service.h"
#include "util.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000

typedef struct {
    service_config_t s;   /* the settings every service reads (service.h) */
    const char *sign_key; /* SX_RECORDING_SIGN_KEY */
} s_config_t;

static void
s_read_config(config_t *cfg, s_config_t *c)
{
    service_config_read(cfg, &c->s, "SX_RECORDING_BIND", "tcp://127.0.0.1:7721", 9103, false);
    c->sign_key = config_str(cfg, "SX_RECORDING_SIGN_KEY", NULL);
    if (!c->sign_key)
        config_fail(cfg, "SX_RECORDING_SIGN_KEY", "%s", "required");
    service_config_endpoints(cfg, &c->s, "SX_RECORDING_BIND");
    service_config_check(cfg, &c->s);
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
    bool created = false;
    if (c.sign_key && archive_key_load(c.sign_key, true, &app, &created, err, sizeof err) < 0)
        config_fail(cfg, "SX_RECORDING_SIGN_KEY", "%s", err);
    db_t *probe = c.s.pg_url ? db_new(c.s.pg_url, "sx-recording") : NULL;
    if (c.s.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-recording: bad settings:\n%s\n", config_error(cfg));
        explicit_bzero(c.s.sec, sizeof c.s.sec);
        sodium_memzero(app.sign_sk, sizeof app.sign_sk);
        config_destroy(&cfg);
        return 78;
    }
    log_init("recording", c.s.level);
    char pkhex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    sodium_bin2hex(pkhex, sizeof pkhex, app.sign_pk, sizeof app.sign_pk);
    if (created)
        log_warn("archive seal key created; back it up", "path=%s public_key=%s", c.sign_key,
                 pkhex);
    else
        log_info("archive seal key loaded", "path=%s public_key=%s", c.sign_key, pkhex);

    int rc = 1;
    service_t *svc = service_new("recording", c.s.keys_file, &c.s);
    ops_t *ops = NULL;
    rpc_server_t *rpc = NULL;
    bus_sub_t *sub = NULL;
    void *subsock = NULL;
    db_t *db_rpc = NULL, *db_relay = NULL, *db_sub = NULL;

    if (!svc)
        goto done;
    /* One connection per user: the door, the relay, the intake subscriber. */
    if (!(db_rpc = db_open(c.s.pg_url, "sx-recording", 30000)) ||
        !(db_relay = db_open(c.s.pg_url, "sx-recording-relay", 30000)) ||
        !(db_sub = db_open(c.s.pg_url, "sx-recording-events", 30000)))
        goto done;
    if (service_migrate(db_rpc, RECORDING_SCHEMA, c.s.schemas, "recording") < 0)
        goto done;
    if (!(ops = service_ops(c.s.ops_bind, c.s.ops_port, c.s.pg_url, c.s.redis_url)))
        goto done;
    app.ops = ops;
    if (service_zap(svc, (const char *const[]){"dept:", "svc:", NULL}, ops, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    rpc = rpc_server_new(svc->ctx, svc->zap, "recording", c.s.sec, c.s.bind, db_rpc,
                         RECORDING_SCHEMA, err, sizeof err);
    if (!rpc || rpc_set_retention(rpc, c.s.rpc_keep_days) < 0) {
        log_error("request door not opened", "bind=%s error=%s", c.s.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "recording") < 0 || access_register(rpc, db_rpc, &app) < 0 ||
        classified_register(rpc, db_rpc) < 0 ||
        events_since_register(rpc, RECORDING_SCHEMA, EVENTS_SINCE_ALLOW) < 0) {
        log_error("ops not registered", "bind=%s", c.s.bind);
        goto done;
    }

    if (service_relay(svc, db_relay, RECORDING_STREAM, err, sizeof err) < 0)
        goto done;
    subsock = service_sub(svc, err, sizeof err);
    if (!subsock || recording_events_prepare(db_sub) < 0 ||
        !(sub = bus_sub_new(db_sub, RECORDING_SCHEMA, RECORDING_SOURCE, recording_events_prefixes,
                            subsock, recording_events_handle_one, &app))) {
        log_error("intake subscriber not started", "broker=%s error=%s", c.s.broker_sub,
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
    log_info("recording started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s", c.s.bind,
             ops_port(ops), c.s.broker_pub, c.s.broker_sub);

    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {subsock, 0, ZMQ_POLLIN, 0},
                                   {NULL, svc->sigfd, ZMQ_POLLIN, 0}};
        int n = 3 + service_relay_pollitem(svc, &items[3]);
        int64_t now = util_mono_ms();
        if (zmq_poll(items, n, service_poll_ms(svc, started ? INT64_MAX : retry, now)) < 0 &&
            zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[0].revents & ZMQ_POLLIN)
            rpc_server_turn(rpc);
        now = util_mono_ms();
        service_relay_turn(svc, n == 4 && (items[3].revents & ZMQ_POLLIN), now);
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
    ops_stop(ops); /* its checks read the subscriber(s) below */
    bus_sub_destroy(&sub);
    rpc_server_destroy(&rpc);
    zsock_close(&subsock);
    service_destroy(&svc);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_sub);
    explicit_bzero(c.s.sec, sizeof c.s.sec);
    sodium_memzero(app.sign_sk, sizeof app.sign_sk);
    config_destroy(&cfg);
    return rc;
}
