/* sx-broker: the event bus's XSUB/XPUB proxy with CURVE, ZAP and the subscription ACL.
 *
 * Settings (environment):
 *   SX_BROKER_PUB_BIND     where publishers connect (XSUB), default tcp://127.0.0.1:7701
 *   SX_BROKER_SUB_BIND     where subscribers connect (XPUB), default tcp://127.0.0.1:7702
 *   SX_BROKER_KEY_FILE     the broker's key pair file (sxctl keygen; mode 0600), or
 *   SX_BROKER_SECRET_KEY   its secret key in Z85 (one of the two is required)
 *   SX_KEYS_FILE           the key file mapping public keys to identities (required)
 *   SX_BROKER_SNDHWM       per-subscriber queue on XPUB, messages, default 10000
 *   SX_OPS_BIND, SX_OPS_PORT  /metrics and /healthz, default 127.0.0.1:9101
 *   SX_LOG_LEVEL           debug|info|warn|error, default info
 *
 * Signals: SIGTERM/SIGINT stop (exit 0); SIGHUP reloads SX_KEYS_FILE (a bad file keeps
 * the old keys). Exit 78 on bad settings, 1 when start-up fails. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "ops.h"
#include "proxy.h"
#include "service.h"
#include "zap.h"
#include "zsock.h"

typedef struct {
    const char *pub_bind, *sub_bind, *key_file, *secret_key, *keys_file, *ops_bind;
    int sndhwm, ops_port;
    log_level_t level;
} s_config_t;

static int
s_read_config(config_t *cfg, s_config_t *c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pub_bind = config_str(cfg, "SX_BROKER_PUB_BIND", "tcp://127.0.0.1:7701");
    c->sub_bind = config_str(cfg, "SX_BROKER_SUB_BIND", "tcp://127.0.0.1:7702");
    c->key_file = config_str(cfg, "SX_BROKER_KEY_FILE", NULL);
    c->secret_key = config_str(cfg, "SX_BROKER_SECRET_KEY", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->sndhwm = (int)config_int(cfg, "SX_BROKER_SNDHWM", 10000, 1, 10000000);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", 9101, 0, 65535);
    c->level = (log_level_t)config_enum(cfg, "SX_LOG_LEVEL", 1, levels);
    const char *e = config_error(cfg);
    if (e) {
        fprintf(stderr, "sx-broker: %s\n", e);
        return -1;
    }
    if (!c->keys_file || (!c->key_file == !c->secret_key)) {
        fprintf(stderr, "sx-broker: SX_KEYS_FILE and one of SX_BROKER_KEY_FILE or "
                        "SX_BROKER_SECRET_KEY are required\n");
        return -1;
    }
    if (c->secret_key && !keys_z85_valid(c->secret_key)) {
        fprintf(stderr, "sx-broker: SX_BROKER_SECRET_KEY: expected 40 Z85 characters\n");
        return -1;
    }
    return 0;
}

int
main(void)
{
    config_t *cfg = config_new();
    s_config_t c;
    if (!cfg || s_read_config(cfg, &c) != 0) {
        config_destroy(&cfg);
        return 78;
    }
    log_init("broker", c.level);

    char err[512] = "";
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
    int rc = 1;
    service_t *svc = service_new("broker", c.keys_file, NULL);
    ops_t *ops = NULL;
    proxy_t *proxy = NULL;
    void *xsub = NULL, *xpub = NULL;

    if (!svc)
        goto done;
    if (c.key_file) {
        if (keys_read_pair(c.key_file, pub, sec, err, sizeof err) != 0) {
            log_error("broker key not read", "error=%s", err);
            goto done;
        }
    } else
        snprintf(sec, sizeof sec, "%s", c.secret_key);

    if (!(ops = ops_new(c.ops_bind, c.ops_port, err, sizeof err))) {
        log_error("ops endpoint not started", "error=%s", err);
        goto done;
    }
    const char *rl = "sx_broker_key_reloads_total", *rlh = "Key file loads, by result";
    svc->m_load_ok = ops_counter(ops, rl, "result=\"ok\"", rlh);
    svc->m_load_bad = ops_counter(ops, rl, "result=\"error\"", rlh);
    svc->m_keys = ops_gauge(ops, "sx_broker_keys", NULL, "Keys in the key table");
    ops_metric_t *m_admit = ops_counter(ops, "sx_broker_connections_admitted_total", NULL,
                                        "Connections admitted by ZAP");
    ops_metric_t *m_refuse = ops_counter(ops, "sx_broker_connections_refused_total", NULL,
                                         "Connections refused by ZAP (unknown key, not CURVE, "
                                         "identity not allowed on that side)");

    /* The ZAP handler first: no server socket exists without it. */
    zap_t *zap = svc->zap = zap_new(svc->ctx, err, sizeof err);
    if (!zap) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    zap_set_metrics(zap, m_admit, m_refuse);
    zap_allow(zap, "pub", "svc:");
    zap_allow(zap, "sub", "svc:");
    zap_allow(zap, "sub", "dept:");
    if (service_load_keys(svc, err, sizeof err) != 0) {
        log_error("key file not loaded; keeping the previous keys", "error=%s", err);
        goto done;
    }

    /* XSUB reads frames up to 4x the system limit so an oversized one is counted and
     * dropped here; past that libzmq drops the connection. XPUB reads only subscriptions,
     * but MAXMSGSIZE also bounds the CURVE handshake's commands (INITIATE carries the
     * metadata, a few hundred bytes): 4 KiB leaves room for both. */
    zsock_limits_t sub_side = {200, c.sndhwm, 10000, 4096};
    zsock_limits_t pub_side = {200, 10000, 10000, 4 * (int64_t)ZSOCK_MAXMSGSIZE};
    int one = 1;
    xsub = zsock_server(svc->ctx, ZMQ_XSUB, zap, "pub", sec, &pub_side, err, sizeof err);
    if (xsub)
        xpub = zsock_server(svc->ctx, ZMQ_XPUB, zap, "sub", sec, &sub_side, err, sizeof err);
    if (!xsub || !xpub || zmq_setsockopt(xpub, ZMQ_XPUB_MANUAL, &one, sizeof one) != 0) {
        log_error("sockets not made", "error=%s", err[0] ? err : zmq_strerror(zmq_errno()));
        goto done;
    }
    if (!(proxy = proxy_new(xsub, xpub, ops, err, sizeof err)) ||
        ops_check(ops, "broker", proxy_health, proxy) != 0) {
        log_error("proxy not started", "error=%s", err);
        goto done;
    }
    if (zsock_bind(xsub, c.pub_bind, err, sizeof err) != 0 ||
        zsock_bind(xpub, c.sub_bind, err, sizeof err) != 0) {
        log_error("bind failed", "error=%s", err);
        goto done;
    }
    proxy_set_ready(proxy, true);
    log_info("broker started", "pub=%s sub=%s ops_port=%d", c.pub_bind, c.sub_bind, ops_port(ops));

    zmq_pollitem_t items[3] = {
        {xsub, 0, ZMQ_POLLIN, 0}, {xpub, 0, ZMQ_POLLIN, 0}, {NULL, svc->sigfd, ZMQ_POLLIN, 0}};
    for (bool stop = false; !stop;) {
        if (zmq_poll(items, 3, -1) < 0 && zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            stop = service_signals(svc);
        if (items[1].revents & ZMQ_POLLIN)
            proxy_on_subscribe(proxy, 1000);
        if (items[0].revents & ZMQ_POLLIN)
            proxy_on_publish(proxy, 1000);
    }
    log_info("broker stopping", "signal=%s", "term");
    rc = 0;
done:
    if (proxy)
        proxy_set_ready(proxy, false);
    zsock_close(&xsub);
    zsock_close(&xpub);
    service_destroy(&svc);
    ops_destroy(&ops);
    proxy_destroy(&proxy);
    explicit_bzero(sec, sizeof sec);
    config_destroy(&cfg);
    return rc;
}
