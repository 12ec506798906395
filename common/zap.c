/* zap: the ZAP handler (RFC 27), in its own thread (see zap.h). */
#include "zap.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "log.h"

#define S_FRAMES_MAX  8 /* a CURVE request has 7 frames; more is malformed */
#define S_LOG_PER_SEC 10

typedef struct {
    char name[64];                                      /* the ZAP domain */
    char patterns[ZAP_MAX_PATTERNS][KEYS_IDENTITY_MAX]; /* see zap_allow */
    int npatterns;                                      /* patterns in use */
} s_domain_t;

struct zap {
    void *rep;                           /* REP bound to ZAP_ENDPOINT; used only by the thread */
    void *ctl_main;                      /* PAIR: zap_destroy sends the stop word here */
    void *ctl_thread;                    /* PAIR: the thread's end */
    pthread_t thread;                    /* the handler thread */
    pthread_mutex_t mu;                  /* guards everything below */
    keys_t *keys;                        /* the current key table; NULL admits nobody */
    s_domain_t domains[ZAP_MAX_DOMAINS]; /* per-domain policies */
    int ndomains;                        /* domains in use */
    ops_metric_t *m_admitted;            /* optional, see zap_set_metrics */
    ops_metric_t *m_refused;             /* optional */
    uint64_t admitted;                   /* totals */
    uint64_t refused;
    /* Log rate limit; touched only by the thread. */
    time_t log_second;  /* the second being counted */
    int log_lines;      /* lines written in log_second */
    uint64_t log_quiet; /* refusals not logged since the last summary */
};

/* Decides under the lock; copies the identity into id on admission. */
static bool
s_decide(zap_t *self, const char *domain, const char *mech, const zmq_msg_t *cred, int ncred,
         char id[KEYS_IDENTITY_MAX], const char **why)
{
    if (strcmp(mech, "CURVE") != 0) {
        *why = "mechanism not CURVE";
        return false;
    }
    if (ncred != 1 || zmq_msg_size((zmq_msg_t *)cred) != 32) {
        *why = "malformed CURVE credentials";
        return false;
    }
    bool ok = false;
    pthread_mutex_lock(&self->mu);
    const char *identity = keys_lookup(self->keys, zmq_msg_data((zmq_msg_t *)cred));
    const s_domain_t *d = NULL;
    for (int i = 0; i < self->ndomains; i++)
        if (strcmp(self->domains[i].name, domain) == 0)
            d = &self->domains[i];
    if (!identity)
        *why = "unknown key";
    else if (!d)
        *why = "unknown domain";
    else {
        *why = "identity not allowed on this domain";
        for (int i = 0; i < d->npatterns && !ok; i++) {
            const char *p = d->patterns[i];
            size_t n = strlen(p);
            ok = p[n - 1] == ':' ? strncmp(identity, p, n) == 0 : strcmp(identity, p) == 0;
        }
        if (ok)
            snprintf(id, KEYS_IDENTITY_MAX, "%s", identity);
    }
    if (ok)
        self->admitted++;
    else
        self->refused++;
    ops_metric_t *m = ok ? self->m_admitted : self->m_refused;
    pthread_mutex_unlock(&self->mu);
    if (m)
        ops_inc(m);
    return ok;
}

/* A frame as a printable, bounded C string for logs and comparisons. */
static void
s_frame_str(zmq_msg_t *msg, char *out, size_t size)
{
    size_t n = zmq_msg_size(msg);
    if (n >= size)
        n = size - 1;
    memcpy(out, zmq_msg_data(msg), n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f)
            out[i] = '?';
}

static void
s_log_refusal(zap_t *self, const char *domain, const char *address, const char *mech,
              const char *key, const char *why)
{
    time_t now = time(NULL);
    if (now != self->log_second) {
        if (self->log_quiet)
            log_warn("zap refusals not logged", "n=%llu", (unsigned long long)self->log_quiet);
        self->log_second = now;
        self->log_lines = 0;
        self->log_quiet = 0;
    }
    if (self->log_lines++ < S_LOG_PER_SEC)
        log_warn("connection refused", "domain=%s address=%s mechanism=%s key=%s reason=%s", domain,
                 address, mech, key, why);
    else
        self->log_quiet++;
}

static void
s_send(void *sock, const void *data, size_t len, bool more)
{
    /* inproc to libzmq's own session: a failure here means the context is ending. */
    (void)zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0);
}

/* Reads one request (all its frames), answers it. */
static void
s_handle(zap_t *self)
{
    zmq_msg_t f[S_FRAMES_MAX];
    int n = 0;
    bool too_many = false;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->rep, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        int more = zmq_msg_more(&part);
        if (n < S_FRAMES_MAX)
            f[n++] = part;
        else {
            too_many = true;
            zmq_msg_close(&part);
        }
        if (!more)
            break;
    }
    if (n == 0)
        return;

    char domain[64] = "", address[64] = "", mech[16] = "", key[KEYS_Z85_LEN + 1] = "-";
    char id[KEYS_IDENTITY_MAX] = "";
    const char *why = "malformed request";
    bool ok = false;
    bool v1 = zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0;
    if (v1 && n >= 6 && !too_many) {
        s_frame_str(&f[2], domain, sizeof domain);
        s_frame_str(&f[3], address, sizeof address);
        s_frame_str(&f[5], mech, sizeof mech);
        if (n == 7 && zmq_msg_size(&f[6]) == 32)
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        ok = s_decide(self, domain, mech, n > 6 ? &f[6] : NULL, n - 6, id, &why);
    } else {
        pthread_mutex_lock(&self->mu);
        self->refused++;
        ops_metric_t *m = self->m_refused;
        pthread_mutex_unlock(&self->mu);
        if (m)
            ops_inc(m);
    }
    if (!ok)
        s_log_refusal(self, domain, address, mech[0] ? mech : "-", key, why);

    /* Reply: version, request id, status code, status text, user id, metadata. */
    s_send(self->rep, "1.0", 3, true);
    if (n >= 2)
        s_send(self->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), true);
    else
        s_send(self->rep, "", 0, true);
    s_send(self->rep, ok ? "200" : "400", 3, true);
    s_send(self->rep, ok ? "OK" : why, strlen(ok ? "OK" : why), true);
    s_send(self->rep, id, ok ? strlen(id) : 0, true);
    s_send(self->rep, "", 0, false);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *
s_thread(void *arg)
{
    zap_t *self = arg;
    zmq_pollitem_t items[2] = {{self->rep, 0, ZMQ_POLLIN, 0}, {self->ctl_thread, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM: the context is going away */
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_handle(self);
    }
    return NULL;
}

static void *
s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    if (s) {
        int linger = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    }
    return s;
}

zap_t *
zap_new(void *ctx, char *err, size_t errlen)
{
    zap_t *self = calloc(1, sizeof *self);
    if (!self) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    char ctl[64];
    snprintf(ctl, sizeof ctl, "inproc://sx-zap-ctl-%p", (void *)self);
    self->rep = s_socket(ctx, ZMQ_REP);
    self->ctl_thread = s_socket(ctx, ZMQ_PAIR);
    self->ctl_main = s_socket(ctx, ZMQ_PAIR);
    if (!self->rep || !self->ctl_thread || !self->ctl_main) {
        util_errf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_bind(self->rep, ZAP_ENDPOINT) != 0) {
        util_errf(err, errlen, "bind %s: %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_bind(self->ctl_thread, ctl) != 0 || zmq_connect(self->ctl_main, ctl) != 0) {
        util_errf(err, errlen, "control pipe: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* pthread_create is a full barrier, so handing the sockets to the thread is safe. */
    if (pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        util_errf(err, errlen, "pthread_create failed");
        goto fail;
    }
    return self;
fail:
    zmq_close(self->rep);
    zmq_close(self->ctl_thread);
    zmq_close(self->ctl_main);
    pthread_mutex_destroy(&self->mu);
    free(self);
    return NULL;
}

void
zap_destroy(zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zap_t *self = *self_p;
    s_send(self->ctl_main, "STOP", 4, false);
    pthread_join(self->thread, NULL);
    zmq_close(self->rep);
    zmq_close(self->ctl_thread);
    zmq_close(self->ctl_main);
    keys_destroy(&self->keys);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

int
zap_allow(zap_t *self, const char *domain, const char *pattern)
{
    size_t dl = strlen(domain), pl = strlen(pattern);
    if (dl == 0 || dl >= sizeof self->domains[0].name || pl == 0 || pl >= KEYS_IDENTITY_MAX)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&self->mu);
    s_domain_t *d = NULL;
    for (int i = 0; i < self->ndomains; i++)
        if (strcmp(self->domains[i].name, domain) == 0)
            d = &self->domains[i];
    if (!d && self->ndomains < ZAP_MAX_DOMAINS) {
        d = &self->domains[self->ndomains++];
        memcpy(d->name, domain, dl + 1);
    }
    if (d && d->npatterns < ZAP_MAX_PATTERNS) {
        memcpy(d->patterns[d->npatterns++], pattern, pl + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

void
zap_set_keys(zap_t *self, keys_t **keys_p)
{
    pthread_mutex_lock(&self->mu);
    keys_t *old = self->keys;
    self->keys = *keys_p;
    *keys_p = NULL;
    pthread_mutex_unlock(&self->mu);
    keys_destroy(&old);
}

void
zap_set_metrics(zap_t *self, ops_metric_t *admitted, ops_metric_t *refused)
{
    pthread_mutex_lock(&self->mu);
    self->m_admitted = admitted;
    self->m_refused = refused;
    pthread_mutex_unlock(&self->mu);
}

uint64_t
zap_admitted(zap_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t n = self->admitted;
    pthread_mutex_unlock(&self->mu);
    return n;
}

uint64_t
zap_refused(zap_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t n = self->refused;
    pthread_mutex_unlock(&self->mu);
    return n;
}
