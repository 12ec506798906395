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
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "deadlines.h"
#include "intake.h"
#include "keys.h"
#include "log.h"
#include "review_events.h"
#include "zsock.h"

#define S_SUB_RETRY_MS 2000 /* a review subscriber that could not start tries again */

typedef struct {
    const char *pg_url, *redis_url, *bind, *key_file, *keys_file, *ops_bind, *schemas;
    const char *broker_pub, *broker_sub, *broker_key, *calendar;
    int ops_port;
    log_level_t level;
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1]; /* intake's key pair */
} s_config_t;

/* When intake last heard its own relay's heartbeat through the broker (monotonic ms),
 * for the "broker" health check: it proves the broker and the relay alive end to end. */
typedef struct {
    atomic_llong heard_ms;
} s_heard_t;

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
        int wait = bus_relay_step(t->relay, s_mono_ms());
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
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    c->pg_url = config_str(cfg, "SX_PG_URL", NULL);
    c->redis_url = config_str(cfg, "SX_REDIS_URL", NULL);
    c->bind = config_str(cfg, "SX_INTAKE_BIND", "tcp://127.0.0.1:7711");
    c->key_file = config_str(cfg, "SX_KEY_FILE", NULL);
    c->keys_file = config_str(cfg, "SX_KEYS_FILE", NULL);
    c->broker_pub = config_str(cfg, "SX_BROKER_PUB", NULL);
    c->broker_sub = config_str(cfg, "SX_BROKER_SUB", NULL);
    c->broker_key = config_str(cfg, "SX_BROKER_PUBLIC_KEY", NULL);
    c->ops_bind = config_str(cfg, "SX_OPS_BIND", "127.0.0.1");
    c->ops_port = (int)config_int(cfg, "SX_OPS_PORT", 9102, 0, 65535);
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
    const char *eps[][2] = {{"SX_INTAKE_BIND", c->bind},
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

/* Loads SX_KEYS_FILE into zap; a bad file leaves zap's table as it was. */
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

/* ops_check_fn for "broker": the relay's own heartbeat came back through the broker. */
static bool
s_broker_check(void *arg, char *why, size_t whylen)
{
    s_heard_t *h = arg;
    long long heard = atomic_load(&h->heard_ms);
    if (heard > 0 && s_mono_ms() - heard <= BUS_HEARD_MS)
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
        atomic_store(&h->heard_ms, s_mono_ms());
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
    /* Settings that only prove good once used: the key file, the calendar, the URLs. */
    zap_t *zap = NULL;
    keys_t *keys = c.keys_file ? keys_load(c.keys_file, err, sizeof err) : NULL;
    if (c.keys_file && !keys)
        config_fail(cfg, "SX_KEYS_FILE", "%s", err);
    keys_destroy(&keys);
    workday_t *cal = c.calendar ? workday_load(c.calendar, err, sizeof err)
                                : workday_load_default(err, sizeof err);
    if (!cal)
        config_fail(cfg, "SX_CALENDAR", "%s", err);
    timers_t *timers = c.redis_url ? timers_new(c.redis_url, "intake", err, sizeof err) : NULL;
    if (c.redis_url && !timers)
        config_fail(cfg, "SX_REDIS_URL", "%s", err);
    db_t *probe = c.pg_url ? db_new(c.pg_url, "sx-intake") : NULL;
    if (c.pg_url && !probe)
        config_fail(cfg, "SX_PG_URL", "%s", "not a libpq connection string");
    db_destroy(&probe);
    if (config_error(cfg)) {
        fprintf(stderr, "sx-intake: bad settings:\n%s\n", config_error(cfg));
        workday_destroy(&cal);
        timers_destroy(&timers);
        explicit_bzero(c.sec, sizeof c.sec);
        config_destroy(&cfg);
        return 78;
    }
    log_init("intake", c.level);

    /* Signals arrive on a descriptor polled with the sockets. Blocked before any thread
     * starts, so every thread inherits the mask. */
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
    rpc_server_t *rpc = NULL;
    bus_relay_t *relay = NULL;
    bus_sub_t *review = NULL;
    deadlines_t *dl = NULL;
    void *pub = NULL, *sub = NULL, *hb = NULL;
    s_heard_t heard = {0};
    s_relay_thread_t rt = {0};
    db_t *db_rpc = NULL, *db_relay = NULL, *db_review = NULL, *db_dl = NULL;
    char dir[3][4200];

    if (sigfd < 0) {
        log_error("signalfd failed", "error=%s", strerror(errno));
        goto done;
    }
    /* One connection per user: the door, the relay, the review subscriber, deadlines. */
    if (!(db_rpc = db_open(c.pg_url, "sx-intake", 30000)) ||
        !(db_relay = db_open(c.pg_url, "sx-intake-relay", 30000)) ||
        !(db_review = db_open(c.pg_url, "sx-intake-review", 30000)) ||
        !(db_dl = db_open(c.pg_url, "sx-intake-deadlines", 30000)))
        goto done;
    snprintf(dir[0], sizeof dir[0], "%s/sql/bus", c.schemas);
    snprintf(dir[1], sizeof dir[1], "%s/sql/rpc", c.schemas);
    snprintf(dir[2], sizeof dir[2], "%s/sql/intake", c.schemas);
    if (bus_migrate(db_rpc, INTAKE_SCHEMA, dir[0]) < 0 ||
        rpc_migrate(db_rpc, INTAKE_SCHEMA, dir[1]) < 0 ||
        db_migrate(db_rpc, INTAKE_SCHEMA, dir[2]) < 0) {
        log_error("migrations failed", "error=%s", db_error(db_rpc));
        goto done;
    }

    if (!(ops = ops_new(c.ops_bind, c.ops_port, err, sizeof err))) {
        log_error("ops endpoint not started", "error=%s", err);
        goto done;
    }
    ops_metric_t *m_admit = ops_counter(ops, "sx_intake_connections_admitted_total", NULL,
                                        "Connections admitted by ZAP");
    ops_metric_t *m_refuse = ops_counter(ops, "sx_intake_connections_refused_total", NULL,
                                         "Connections refused by ZAP (unknown key, not CURVE)");
    ops_check(ops, "postgres", ops_check_postgres, (void *)c.pg_url);
    ops_check(ops, "redis", ops_check_redis, (void *)c.redis_url);
    ops_check(ops, "broker", s_broker_check, &heard);

    /* The ZAP handler before any server socket. */
    if (!(zap = zap_new(ctx, err, sizeof err)) || zap_allow(zap, "intake", "dept:") < 0 ||
        zap_allow(zap, "intake", "svc:") < 0 ||
        s_load_keys(zap, c.keys_file, err, sizeof err) < 0) {
        log_error("zap handler not started", "error=%s", err);
        goto done;
    }
    zap_set_metrics(zap, m_admit, m_refuse);

    /* The parts share the calendar and the metrics. Timers belong to the deadlines
     * thread: a case's timers are armed from its committed row (deadlines.h). */
    intake_t app = {cal, NULL, ops};
    rpc = rpc_server_new(ctx, zap, "intake", c.sec, c.bind, db_rpc, INTAKE_SCHEMA, err, sizeof err);
    if (!rpc) {
        log_error("request door not opened", "bind=%s error=%s", c.bind, err);
        goto done;
    }
    if (rpc_set_metrics(rpc, ops, "intake") < 0 || registry_register(rpc, &app) < 0 ||
        case_ops_register(rpc, &app) < 0) {
        log_error("ops not registered", "bind=%s", c.bind);
        goto done;
    }

    /* Events out: the relay publishes the committed outbox to the broker. */
    zsock_limits_t out = {1000, 100000, 1000, ZSOCK_MAXMSGSIZE};
    zsock_limits_t in = {0, 10000, 100000, ZSOCK_MAXMSGSIZE};
    pub = zsock_client(ctx, ZMQ_PUB, c.broker_key, c.pub, c.sec, &out, err, sizeof err);
    if (!pub || zsock_connect(pub, c.broker_pub, err, sizeof err) < 0 ||
        !(relay = bus_relay_new(db_relay, INTAKE_STREAM, pub))) {
        log_error("relay not started", "broker=%s error=%s", c.broker_pub, err);
        goto done;
    }
    /* Events in: the review service's verdicts, for the decision gate. */
    sub = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
    if (!sub || zsock_connect(sub, c.broker_sub, err, sizeof err) < 0 ||
        review_events_prepare(db_review) < 0 ||
        !(review = bus_sub_new(db_review, INTAKE_SCHEMA, REVIEW_STREAM, review_events_prefixes, sub,
                               review_events_handle, NULL))) {
        log_error("review subscriber not started", "broker=%s error=%s", c.broker_sub,
                  err[0] ? err : db_error(db_review));
        goto done;
    }
    hb = zsock_client(ctx, ZMQ_SUB, c.broker_key, c.pub, c.sec, &in, err, sizeof err);
    if (!hb || zmq_setsockopt(hb, ZMQ_SUBSCRIBE, "_hb." INTAKE_STREAM, 4 + strlen(INTAKE_STREAM)) ||
        zsock_connect(hb, c.broker_sub, err, sizeof err) < 0) {
        log_error("heartbeat socket not made", "error=%s", err);
        goto done;
    }
    bool review_started = bus_sub_start(review) == 0;
    int64_t review_retry = s_mono_ms() + S_SUB_RETRY_MS;

    /* Deadlines run in their own thread with their own connection and timers. */
    dl = deadlines_new(db_dl, timers, ops);
    db_dl = NULL;
    timers = NULL;
    if (!dl || deadlines_start(dl) < 0) {
        log_error("deadlines not started", "thread=%s", "deadlines");
        goto done;
    }
    log_info("intake started", "bind=%s ops_port=%d broker_pub=%s broker_sub=%s", c.bind,
             ops_port(ops), c.broker_pub, c.broker_sub);

    rt.relay = relay;
    rt.m_seq = ops_gauge(ops, "sx_intake_relay_published_seq", NULL,
                         "The last seq of the intake stream the relay published.");
    atomic_init(&rt.stop, false);
    if (pthread_create(&rt.thread, NULL, s_relay_main, &rt) != 0) {
        log_error("relay thread not started", "error=%s", strerror(errno));
        goto done;
    }
    rt.running = true;
    for (bool stop = false; !stop;) {
        zmq_pollitem_t items[4] = {{rpc_server_socket(rpc), 0, ZMQ_POLLIN, 0},
                                   {sub, 0, ZMQ_POLLIN, 0},
                                   {hb, 0, ZMQ_POLLIN, 0},
                                   {NULL, sigfd, ZMQ_POLLIN, 0}};
        int64_t now = s_mono_ms();
        int64_t wait = 1000;
        if (!review_started && review_retry - now < wait)
            wait = review_retry - now;
        if (zmq_poll(items, 4,
                     wait < 0      ? 0
                     : wait > 1000 ? 1000
                                   : (long)wait) < 0 &&
            zmq_errno() != EINTR) {
            log_error("zmq_poll failed", "error=%s", zmq_strerror(zmq_errno()));
            break;
        }
        if (items[3].revents & ZMQ_POLLIN) {
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
        now = s_mono_ms();
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
    zap_destroy(&zap);
    zmq_ctx_term(ctx);
    ops_destroy(&ops);
    db_destroy(&db_rpc);
    db_destroy(&db_relay);
    db_destroy(&db_review);
    db_destroy(&db_dl);
    timers_destroy(&timers);
    workday_destroy(&cal);
    explicit_bzero(c.sec, sizeof c.sec);
    if (sigfd >= 0)
        close(sigfd);
    config_destroy(&cfg);
    return rc;
}
