/* proxy: the broker's XSUB/XPUB forwarding with frame checks and the ACL (see proxy.h). */
#include "proxy.h"
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "acl.h"
#include "log.h"
#include "zsock.h"

#define S_BUCKETS      4096
#define S_PREFIXES_MAX 65536
#define S_ENVELOPE_MAX 65536
#define S_LOG_PER_SEC  10

/* One subscribed prefix, as counted for upstream forwarding. */
typedef struct s_prefix {
    struct s_prefix *next; /* bucket chain */
    uint64_t requests;     /* subscribe requests not yet matched by a close */
    bool upstream;         /* forwarded to the publishers */
    size_t len;            /* prefix bytes */
    uint8_t data[];        /* the prefix */
} s_prefix_t;

typedef struct {
    time_t second;  /* the second being counted */
    int lines;      /* lines logged in it */
    uint64_t quiet; /* events not logged since the last summary */
} s_rate_t;

struct proxy {
    void *xsub;                     /* publishers' side, not owned */
    void *xpub;                     /* subscribers' side, not owned */
    s_prefix_t *buckets[S_BUCKETS]; /* prefix -> request count */
    size_t nprefixes;               /* entries in buckets */
    bool table_full;                /* past S_PREFIXES_MAX: never unsubscribe upstream */
    atomic_bool ready;              /* sockets bound, for /healthz */
    s_rate_t drop_log, sub_log;     /* log rate limits */
    ops_metric_t *in, *out, *bytes_in, *bytes_out;
    ops_metric_t *sub_ok, *sub_refused, *unsub;
    ops_metric_t *drop_frames, *drop_topic, *drop_oversized, *drop_subside;
    ops_metric_t *upstream;
};

/* True when this event may be logged; summarises the suppressed ones once a second. */
static bool
s_rate_ok(s_rate_t *r, const char *what)
{
    time_t now = time(NULL);
    if (now != r->second) {
        if (r->quiet)
            log_warn("log lines suppressed", "what=%s n=%llu", what, (unsigned long long)r->quiet);
        r->second = now;
        r->lines = 0;
        r->quiet = 0;
    }
    if (r->lines++ < S_LOG_PER_SEC)
        return true;
    r->quiet++;
    return false;
}

/* Writes bytes as printable ASCII with \xNN escapes, truncated to fit. */
static void
s_escape(const uint8_t *p, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) { /* truncated to fit */
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            out[o++] = (char)p[i];
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
    }
    out[o] = '\0';
}

static uint32_t
s_hash(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % S_BUCKETS;
}

static s_prefix_t **
s_find(proxy_t *self, const uint8_t *p, size_t len)
{
    s_prefix_t **pp = &self->buckets[s_hash(p, len)];
    while (*pp && !((*pp)->len == len && memcmp((*pp)->data, p, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void
s_send_upstream(proxy_t *self, bool subscribe, const uint8_t *p, size_t len)
{
    uint8_t buf[1 + 4096];
    if (len > 4096)
        return; /* cannot happen: XPUB's MAXMSGSIZE bounds subscriptions */
    buf[0] = subscribe ? 1 : 0;
    memcpy(buf + 1, p, len);
    if (zmq_send(self->xsub, buf, len + 1, ZMQ_DONTWAIT) < 0)
        log_error("upstream subscription not sent", "error=%s", zmq_strerror(zmq_errno()));
}

static void
s_subscribe(proxy_t *self, const char *who, const uint8_t *p, size_t len)
{
    s_prefix_t **pp = s_find(self, p, len);
    s_prefix_t *e = *pp;
    if (!e && !self->table_full) {
        if (self->nprefixes >= S_PREFIXES_MAX || !(e = calloc(1, sizeof *e + len))) {
            self->table_full = true;
            log_error("subscription table full: upstream unsubscriptions stop", "prefixes=%zu",
                      self->nprefixes);
        } else {
            e->len = len;
            memcpy(e->data, p, len);
            *pp = e;
            self->nprefixes++;
            ops_set(self->upstream, (double)self->nprefixes);
        }
    }
    if (e)
        e->requests++;

    acl_verdict_t v = acl_subscribe(who, p, len);
    if (v != ACL_OK) {
        ops_inc(self->sub_refused);
        if (s_rate_ok(&self->sub_log, "subscription refused")) {
            char esc[4 * 300 + 1];
            s_escape(p, len, esc, sizeof esc);
            log_warn("subscription refused", "identity=%s prefix=%s reason=%s", who ? who : "-",
                     esc, acl_reason(v));
        }
        return;
    }
    /* XPUB_MANUAL: applies to the pipe the last message came from. */
    zmq_setsockopt(self->xpub, ZMQ_SUBSCRIBE, p, len);
    ops_inc(self->sub_ok);
    char esc[4 * 300 + 1];
    s_escape(p, len, esc, sizeof esc);
    log_debug("subscription accepted", "identity=%s prefix=%s", who, esc);
    if (!e || !e->upstream) {
        s_send_upstream(self, true, p, len);
        if (e)
            e->upstream = true;
    }
}

static void
s_unsubscribe(proxy_t *self, const char *who, const uint8_t *p, size_t len)
{
    ops_inc(self->unsub);
    if (who) {
        /* A live unsubscribe: only what the ACL would have admitted can be applied. */
        if (acl_subscribe(who, p, len) == ACL_OK)
            zmq_setsockopt(self->xpub, ZMQ_UNSUBSCRIBE, p, len);
        return;
    }
    /* A closed connection's subscription (accepted or refused: libzmq does not say). */
    s_prefix_t **pp = s_find(self, p, len);
    s_prefix_t *e = *pp;
    if (!e || e->requests == 0)
        return;
    if (--e->requests > 0)
        return;
    if (e->upstream && !self->table_full)
        s_send_upstream(self, false, p, len);
    if (!self->table_full) {
        *pp = e->next;
        free(e);
        self->nprefixes--;
        ops_set(self->upstream, (double)self->nprefixes);
    }
}

int
proxy_on_subscribe(proxy_t *self, int max)
{
    int n = 0;
    while (n < max) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->xpub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        n++;
        const uint8_t *d = zmq_msg_data(&msg);
        size_t len = zmq_msg_size(&msg);
        if (zmq_msg_more(&msg) || len == 0 || d[0] > 1) {
            /* Data sent by a subscriber: nothing is forwarded that way. */
            ops_inc(self->drop_subside);
            if (s_rate_ok(&self->drop_log, "message dropped"))
                log_warn("message dropped", "side=sub reason=%s", "not a subscription");
            while (zmq_msg_more(&msg)) {
                zmq_msg_close(&msg);
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, self->xpub, ZMQ_DONTWAIT) < 0)
                    break;
            }
            zmq_msg_close(&msg);
            continue;
        }
        const char *who = zmq_msg_gets(&msg, "User-Id");
        if (d[0] == 1)
            s_subscribe(self, who, d + 1, len - 1);
        else
            s_unsubscribe(self, who, d + 1, len - 1);
        zmq_msg_close(&msg);
    }
    return n;
}

static void
s_drop(proxy_t *self, ops_metric_t *m, const char *why, const zmq_msg_t *topic)
{
    ops_inc(m);
    if (s_rate_ok(&self->drop_log, "message dropped")) {
        char esc[4 * 64 + 1] = "";
        if (topic)
            s_escape(zmq_msg_data((zmq_msg_t *)topic),
                     zmq_msg_size((zmq_msg_t *)topic) > 64 ? 64 : zmq_msg_size((zmq_msg_t *)topic),
                     esc, sizeof esc);
        log_warn("message dropped", "side=pub reason=%s topic=%s", why, esc);
    }
}

int
proxy_on_publish(proxy_t *self, int max)
{
    int n = 0;
    while (n < max) {
        zmq_msg_t topic, env;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, self->xsub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            break;
        }
        n++;
        ops_inc(self->in);
        ops_add(self->bytes_in, zmq_msg_size(&topic));
        if (!zmq_msg_more(&topic)) {
            s_drop(self, self->drop_frames, "one frame", &topic);
            zmq_msg_close(&topic);
            continue;
        }
        zmq_msg_init(&env);
        /* The rest of a multipart message is already queued (delivered atomically). */
        if (zmq_msg_recv(&env, self->xsub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&env);
            zmq_msg_close(&topic);
            continue;
        }
        ops_add(self->bytes_in, zmq_msg_size(&env));
        if (zmq_msg_more(&env)) {
            s_drop(self, self->drop_frames, "more than two frames", &topic);
            int guard = 0;
            while (zmq_msg_more(&env) && guard++ < 1000000) {
                zmq_msg_close(&env);
                zmq_msg_init(&env);
                if (zmq_msg_recv(&env, self->xsub, ZMQ_DONTWAIT) < 0)
                    break;
                ops_add(self->bytes_in, zmq_msg_size(&env));
            }
            zmq_msg_close(&env);
            zmq_msg_close(&topic);
            continue;
        }
        const char *why;
        if (zmq_msg_size(&env) > S_ENVELOPE_MAX || zmq_msg_size(&topic) > ZSOCK_TOPIC_MAX)
            s_drop(self, self->drop_oversized, "oversized", &topic);
        else if (zmq_msg_size(&env) == 0)
            s_drop(self, self->drop_frames, "empty envelope", &topic);
        else if (acl_topic_check(zmq_msg_data(&topic), zmq_msg_size(&topic), &why) != 0)
            s_drop(self, self->drop_topic, why, &topic);
        else {
            size_t bytes = zmq_msg_size(&topic) + zmq_msg_size(&env);
            /* XPUB never blocks: a subscriber whose pipe is full loses the message. */
            if (zmq_msg_send(&topic, self->xpub, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                zmq_msg_send(&env, self->xpub, ZMQ_DONTWAIT) >= 0) {
                ops_inc(self->out);
                ops_add(self->bytes_out, bytes);
            }
        }
        zmq_msg_close(&env);
        zmq_msg_close(&topic);
    }
    return n;
}

proxy_t *
proxy_new(void *xsub, void *xpub, ops_t *ops, char *err, size_t errlen)
{
    proxy_t *self = calloc(1, sizeof *self);
    if (!self) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->xsub = xsub;
    self->xpub = xpub;
    atomic_init(&self->ready, false);
    const char *drop = "sx_broker_messages_dropped_total";
    const char *drop_help = "Messages dropped at the broker, by reason";
    self->in = ops_counter(ops, "sx_broker_messages_in_total", NULL,
                           "Messages read from publishers (well-formed or not)");
    self->out = ops_counter(ops, "sx_broker_messages_out_total", NULL,
                            "Messages passed to the subscriber side (before per-subscriber "
                            "HWM drops)");
    self->bytes_in =
        ops_counter(ops, "sx_broker_bytes_in_total", NULL, "Bytes read from publishers");
    self->bytes_out =
        ops_counter(ops, "sx_broker_bytes_out_total", NULL, "Bytes passed to the subscriber side");
    self->sub_ok = ops_counter(ops, "sx_broker_subscriptions_accepted_total", NULL,
                               "Subscriptions admitted by the ACL");
    self->sub_refused = ops_counter(ops, "sx_broker_subscriptions_refused_total", NULL,
                                    "Subscriptions refused by the ACL");
    self->unsub = ops_counter(ops, "sx_broker_unsubscriptions_total", NULL,
                              "Unsubscriptions, including those of closed connections");
    self->drop_frames = ops_counter(ops, drop, "reason=\"frames\"", drop_help);
    self->drop_topic = ops_counter(ops, drop, "reason=\"topic\"", drop_help);
    self->drop_oversized = ops_counter(ops, drop, "reason=\"oversized\"", drop_help);
    self->drop_subside = ops_counter(ops, drop, "reason=\"from_subscriber\"", drop_help);
    self->upstream = ops_gauge(ops, "sx_broker_subscription_prefixes", NULL,
                               "Distinct prefixes requested by connected subscribers");
    if (!self->in || !self->out || !self->bytes_in || !self->bytes_out || !self->sub_ok ||
        !self->sub_refused || !self->unsub || !self->drop_frames || !self->drop_topic ||
        !self->drop_oversized || !self->drop_subside || !self->upstream) {
        util_errf(err, errlen, "cannot register metrics");
        proxy_destroy(&self);
        return NULL;
    }
    return self;
}

void
proxy_destroy(proxy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    proxy_t *self = *self_p;
    for (size_t b = 0; b < S_BUCKETS; b++) {
        s_prefix_t *e = self->buckets[b];
        while (e) {
            s_prefix_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(self);
    *self_p = NULL;
}

void
proxy_set_ready(proxy_t *self, bool ready)
{
    atomic_store(&self->ready, ready);
}

bool
proxy_health(void *arg, char *why, size_t whylen)
{
    proxy_t *self = arg;
    if (atomic_load(&self->ready))
        return true;
    snprintf(why, whylen, "sockets not bound");
    return false;
}
