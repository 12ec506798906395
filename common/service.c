/* service: the wiring the service mains share (service.h). */
#include "service.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rpc.h"
#include "util.h"
#include "zsock.h"

#define S_RELAY_RETRY_MS 200  /* the relay failed a step: try again this soon */
#define S_POLL_MAX_MS    1000 /* the loop looks round at least this often */

void
service_config_read(config_t *cfg, service_config_t *c, const char *bind_var,
                    const char *bind_default, int ops_port, bool with_redis)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pg_url = config_str(cfg, "SX_PG_URL", NULL);
    c->redis_url = with_redis ? config_str(cfg, "SX_REDIS_URL", NULL) : NULL;
    c->bind = config_str(cfg, bind_var, bind_default);
    c->key_file = config_str(cfg, "SX_KEY_FILE", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->broker_pub = config_str(cfg, "SX_BROKER_PUB", NULL);
    c->broker_sub = config_str(cfg, "SX_BROKER_SUB", NULL);
    c->broker_key = config_str(cfg, "SX_BROKER_PUBLIC_KEY", NULL);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", ops_port, 0, 65535);
    c->schemas = config_str(cfg, "SX_SCHEMAS", "schemas");
    c->level = (log_level_t)config_enum(cfg, "SX_LOG_LEVEL", 1, levels);
    c->rpc_keep_days = (int)config_int(cfg, "SX_RPC_KEEP_DAYS", RPC_KEEP_DAYS_DEFAULT,
                                       RPC_KEEP_DAYS_MIN, RPC_KEEP_DAYS_MAX);
    const char *required[][2] = {{"SX_PG_URL", c->pg_url},
                                 {"SX_REDIS_URL", with_redis ? c->redis_url : ""},
                                 {"SX_KEY_FILE", c->key_file},
                                 {"SX_KEYS_FILE", c->keys_file},
                                 {"SX_BROKER_PUB", c->broker_pub},
                                 {"SX_BROKER_SUB", c->broker_sub},
                                 {"SX_BROKER_PUBLIC_KEY", c->broker_key}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i][1])
            config_fail(cfg, required[i][0], "%s", "required");
}

void
service_config_endpoints(config_t *cfg, const service_config_t *c, const char *bind_var)
{
    const char *eps[][2] = {
        {bind_var, c->bind}, {"SX_BROKER_PUB", c->broker_pub}, {"SX_BROKER_SUB", c->broker_sub}};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
        if (eps[i][1] && strncmp(eps[i][1], "tcp://", 6) != 0 &&
            strncmp(eps[i][1], "ipc://", 6) != 0)
            config_fail(cfg, eps[i][0], "%s", "expected a tcp:// or ipc:// endpoint");
}

void
service_config_check(config_t *cfg, service_config_t *c)
{
    char err[512];
    if (c->broker_key && !keys_z85_valid(c->broker_key))
        config_fail(cfg, "SX_BROKER_PUBLIC_KEY", "%s", "expected 40 Z85 characters");
    if (c->key_file && keys_read_pair(c->key_file, c->pub, c->sec, err, sizeof err) != 0)
        config_fail(cfg, "SX_KEY_FILE", "%s", err);
    struct stat st;
    if (stat(c->schemas, &st) != 0 || !S_ISDIR(st.st_mode))
        config_fail(cfg, "SX_SCHEMAS", "%s", "not a directory");
    /* A key file that only proves good once loaded. */
    keys_t *keys = c->keys_file ? keys_load(c->keys_file, err, sizeof err) : NULL;
    if (c->keys_file && !keys)
        config_fail(cfg, "SX_KEYS_FILE", "%s", err);
    keys_destroy(&keys);
}

ops_t *
service_ops(const char *bind, int port, const char *pg_url, const char *redis_url)
{
    char err[512];
    ops_t *ops = ops_new(bind, port, err, sizeof err);
    if (!ops) {
        log_error("ops endpoint not started", "error=%s", err);
        return NULL;
    }
    if (pg_url)
        ops_check(ops, "postgres", ops_check_postgres, (void *)pg_url);
    if (redis_url)
        ops_check(ops, "redis", ops_check_redis, (void *)redis_url);
    return ops;
}

workday_t *
service_calendar_load(const char *path, char *err, size_t errlen)
{
    return path ? workday_load(path, err, errlen) : workday_load_default(err, errlen);
}

int
service_calendar_watch(ops_t *ops, const char *svc, const workday_t *cal, date_t today)
{
    int first, last;
    workday_years(cal, &first, &last);
    date_t end = date_from_ymd(last, 12, 31);
    int left = (int)(end - today);
    /* The end of the last covered day: 00:00 CST of the next, 16:00 UTC of this one. */
    double until_s = ((double)end + 1) * 86400 - 8 * 3600;
    char name[96], help[160];
    snprintf(name, sizeof name, "sx_%s_calendar_covered_until_seconds", svc);
    snprintf(help, sizeof help,
             "End of the last day the working-day calendar covers (%d-%d), unix seconds", first,
             last);
    ops_metric_t *g = ops ? ops_gauge(ops, name, NULL, help) : NULL;
    if (g)
        ops_set(g, until_s);
    if (left < SERVICE_CALENDAR_WARN_DAYS) {
        char day[11];
        log_warn("working-day calendar runs out: install next year's (SX_CALENDAR) once the "
                 "State Council publishes it; beyond it deadlines count weekends only",
                 "covers=%d-%d last_day=%s days_left=%d", first, last, date_format(end, day), left);
    }
    return left;
}

service_t *
service_new(const char *name, const char *keys_file, const service_config_t *config)
{
    assert(name);
    service_t *self = calloc(1, sizeof *self);
    if (!self) {
        log_error("service not made", "error=%s", strerror(errno));
        return NULL;
    }
    self->name = name;
    self->keys_file = keys_file;
    self->config = config;
    self->relay_due = util_mono_ms();
    /* Signals arrive on a descriptor polled with the sockets: no handler, no globals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    self->sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (self->sigfd < 0) {
        log_error("signalfd failed", "error=%s", strerror(errno));
        service_destroy(&self);
        return NULL;
    }
    if (!(self->ctx = zmq_ctx_new())) {
        log_error("zmq context not made", "error=%s", zmq_strerror(zmq_errno()));
        service_destroy(&self);
        return NULL;
    }
    return self;
}

void
service_destroy(service_t **self_p)
{
    assert(self_p);
    service_t *self = *self_p;
    if (!self)
        return;
    bus_relay_destroy(&self->relay);
    zsock_close(&self->pub);
    zap_destroy(&self->zap);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->sigfd >= 0)
        close(self->sigfd);
    free(self);
    *self_p = NULL;
}

int
service_migrate(db_t *db, const char *schema, const char *schemas, const char *own)
{
    char dir[3][4200];
    snprintf(dir[0], sizeof dir[0], "%s/sql/bus", schemas);
    snprintf(dir[1], sizeof dir[1], "%s/sql/rpc", schemas);
    snprintf(dir[2], sizeof dir[2], "%s/sql/%s", schemas, own);
    if (bus_migrate(db, schema, dir[0]) < 0 || rpc_migrate(db, schema, dir[1]) < 0 ||
        db_migrate(db, schema, dir[2]) < 0) {
        log_error("migrations failed", "error=%s", db_error(db));
        return -1;
    }
    return 0;
}

int
service_load_keys(service_t *self, char *err, size_t errlen)
{
    assert(self && self->zap);
    keys_t *keys = keys_load(self->keys_file, err, errlen);
    if (!keys) {
        ops_inc(self->m_load_bad);
        return -1;
    }
    size_t count = keys_count(keys);
    zap_set_keys(self->zap, &keys);
    log_info("key file loaded", "path=%s keys=%zu", self->keys_file, count);
    ops_inc(self->m_load_ok);
    ops_set(self->m_keys, (double)count);
    return 0;
}

int
service_zap(service_t *self, const char *const *allow, ops_t *ops, char *err, size_t errlen)
{
    assert(self && allow && !self->zap);
    if (!(self->zap = zap_new(self->ctx, err, errlen)))
        return -1;
    for (size_t i = 0; allow[i]; i++)
        if (zap_allow(self->zap, self->name, allow[i]) < 0) {
            snprintf(err, errlen, "zap_allow %s %s failed", self->name, allow[i]);
            return -1;
        }
    if (service_load_keys(self, err, errlen) < 0)
        return -1;
    if (ops) {
        char admitted[128], refused[128];
        snprintf(admitted, sizeof admitted, "sx_%s_connections_admitted_total", self->name);
        snprintf(refused, sizeof refused, "sx_%s_connections_refused_total", self->name);
        zap_set_metrics(
            self->zap, ops_counter(ops, admitted, NULL, "Connections admitted by ZAP"),
            ops_counter(ops, refused, NULL, "Connections refused by ZAP (unknown key, not CURVE)"));
    }
    return 0;
}

int
service_relay(service_t *self, db_t *db, const char *stream, char *err, size_t errlen)
{
    assert(self && !self->pub && !self->relay);
    const service_config_t *c = self->config;
    assert(c);
    if (!(self->pub = service_pub(self, err, errlen)) ||
        !(self->relay = bus_relay_new(db, stream, self->pub))) {
        log_error("relay not started", "broker=%s error=%s", c->broker_pub, err);
        return -1;
    }
    self->relay_due = util_mono_ms();
    return 0;
}

/* A CURVE client of the broker (its key, ours) of `type`, connected to endpoint. */
static void *
s_broker_client(service_t *self, int type, const zsock_limits_t *limits, const char *endpoint,
                char *err, size_t errlen)
{
    const service_config_t *c = self->config;
    void *sock = zsock_client(self->ctx, type, c->broker_key, c->pub, c->sec, limits, err, errlen);
    if (sock && zsock_connect(sock, endpoint, err, errlen) < 0)
        zsock_close(&sock);
    return sock;
}

void *
service_pub(service_t *self, char *err, size_t errlen)
{
    assert(self && self->config);
    zsock_limits_t out = {1000, 100000, 1000, ZSOCK_MAXMSGSIZE};
    return s_broker_client(self, ZMQ_PUB, &out, self->config->broker_pub, err, errlen);
}

void *
service_sub(service_t *self, char *err, size_t errlen)
{
    assert(self && self->config);
    /* A subscriber that falls this far behind loses what comes after and catches up from
     * the producer's outbox (bus.h): its memory stays bounded however long it lags (at
     * 100,000 a lagging publication would have held ~50 MiB of queued events). */
    zsock_limits_t in = {0, 10000, SERVICE_SUB_RCVHWM, ZSOCK_MAXMSGSIZE};
    return s_broker_client(self, ZMQ_SUB, &in, self->config->broker_sub, err, errlen);
}

bool
service_signals(service_t *self)
{
    assert(self);
    bool stop = false;
    struct signalfd_siginfo si;
    while (read(self->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        char err[512] = "";
        if (si.ssi_signo != SIGHUP)
            stop = true;
        else if (self->zap && service_load_keys(self, err, sizeof err) < 0)
            log_error("key file not loaded; keeping the previous keys", "error=%s", err);
    }
    return stop;
}

int
service_relay_pollitem(const service_t *self, zmq_pollitem_t *item)
{
    int fd = self->relay ? bus_relay_fd(self->relay) : -1;
    if (fd < 0)
        return 0;
    *item = (zmq_pollitem_t){NULL, fd, ZMQ_POLLIN, 0};
    return 1;
}

void
service_relay_turn(service_t *self, bool woken, int64_t now)
{
    if (!self->relay || (!woken && now < self->relay_due))
        return;
    int wait = bus_relay_step(self->relay, now);
    self->relay_due = now + (wait < 0 ? S_RELAY_RETRY_MS : wait);
}

long
service_poll_ms(const service_t *self, int64_t due, int64_t now)
{
    int64_t wait = due - now;
    if (self->relay && self->relay_due - now < wait)
        wait = self->relay_due - now;
    return wait < 0 ? 0 : wait > S_POLL_MAX_MS ? S_POLL_MAX_MS : (long)wait;
}
