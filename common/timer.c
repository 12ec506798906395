/* timer: a service's deadline timers in Redis (see timer.h). */
#include "timer.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "redis.h"

#define S_SVC_MAX        32
#define S_KEY_PREFIX_MAX (S_SVC_MAX + 32)
#define S_MEMBER_MAX     (TIMER_KIND_MAX + 1 + TIMER_KEY_MAX)
#define S_TIMEOUT_MS     2000
#define S_BATCH_PAIRS    256 /* members per ZADD in a rearm */
#define S_BATCH_INFLIGHT 16  /* ZADDs sent before their replies are read */

/* KEYS: due, claimed, armed mark. ARGV: now (ms), max, lease (ms).
 * Takes the earliest of the expired claims and the due members, up to max, leases each
 * in the claimed set and removes it from the due set. Returns the armed mark's EXISTS,
 * then member, score, redelivered (0/1) for each. A member both expired in the claimed
 * set and due in the due set is delivered once. */
static const char s_claim_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local max = tonumber(ARGV[2])\n"
    "local lease_end = now + tonumber(ARGV[3])\n"
    "local exp = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, "
    "max)\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, "
    "max)\n"
    "local out = {redis.call('EXISTS', KEYS[3])}\n"
    "local i, j, n, seen = 1, 1, 0, {}\n"
    "while n < max and (i <= #exp or j <= #due) do\n"
    "  local m, s, re\n"
    "  if j > #due or (i <= #exp and tonumber(exp[i + 1]) <= tonumber(due[j + 1])) then\n"
    "    m, s, re = exp[i], exp[i + 1], 1\n"
    "    i = i + 2\n"
    "  else\n"
    "    m, s, re = due[j], due[j + 1], 0\n"
    "    j = j + 2\n"
    "    redis.call('ZREM', KEYS[1], m)\n"
    "  end\n"
    "  if not seen[m] then\n"
    "    seen[m] = true\n"
    "    redis.call('ZADD', KEYS[2], lease_end, m)\n"
    "    out[#out + 1] = m\n"
    "    out[#out + 1] = s\n"
    "    out[#out + 1] = re\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return out\n";

struct timers {
    redis_t *redis;                   /* the connection, reconnecting on loss */
    char svc[S_SVC_MAX + 1];          /* service name, validated */
    char k_due[S_KEY_PREFIX_MAX];     /* sx:timer:{svc}:due */
    char k_claimed[S_KEY_PREFIX_MAX]; /* sx:timer:{svc}:claimed */
    char k_armed[S_KEY_PREFIX_MAX];   /* sx:timer:{svc}:armed */
    int64_t lease_ms;                 /* claim lease */
    char sha[41];                     /* the claim script's SHA1, "" until loaded */
    bool rearmed;                     /* a timer_rearm succeeded ... */
    uint64_t rearm_generation;        /* ... on this connection */
    bool mark_missing;                /* a claim found the armed mark gone */
    char err[512];                    /* the last failure */
};

struct timer_batch {
    timers_t *t;                                  /* whose timers */
    int npairs;                                   /* pairs queued in the current ZADD */
    int inflight;                                 /* ZADDs sent, replies not yet read */
    long added;                                   /* deadlines armed so far */
    long skipped;                                 /* malformed deadlines skipped */
    bool failed;                                  /* Redis failed: the rearm fails */
    char score[S_BATCH_PAIRS][24];                /* the current ZADD's scores */
    char member[S_BATCH_PAIRS][S_MEMBER_MAX + 1]; /* ... and members */
};

static void s_errf(timers_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_errf(timers_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
}

int64_t
timer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* [a-z0-9_-]{1,max} */
static bool
s_valid_name(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= max || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

/* 1..TIMER_KEY_MAX bytes, no control bytes, no space, no DEL. */
static bool
s_valid_key(const char *s)
{
    if (!s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= TIMER_KEY_MAX || c <= 0x20 || c == 0x7f)
            return false;
    }
    return n > 0;
}

/* Writes "kind:key" into member (S_MEMBER_MAX + 1 bytes). Returns its length, or -1 with
 * the reason in self->err. */
static int
s_member(timers_t *self, const char *kind, const char *key, char *member)
{
    if (!s_valid_name(kind, TIMER_KIND_MAX)) {
        s_errf(self, "timer kind must be [a-z0-9_-]{1,%d}", TIMER_KIND_MAX);
        return -1;
    }
    if (!s_valid_key(key)) {
        s_errf(self, "timer key must be 1..%d bytes without spaces or control bytes",
               TIMER_KEY_MAX);
        return -1;
    }
    return snprintf(member, S_MEMBER_MAX + 1, "%s:%s", kind, key);
}

timers_t *
timers_new(const char *redis_url, const char *svc, char *err, size_t errlen)
{
    if (!s_valid_name(svc, S_SVC_MAX)) {
        if (err && errlen)
            snprintf(err, errlen, "timer service name must be [a-z0-9_-]{1,%d}", S_SVC_MAX);
        return NULL;
    }
    timers_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char name[S_SVC_MAX + 16];
    snprintf(name, sizeof name, "sx-timer-%s", svc);
    self->redis = redis_new(redis_url, S_TIMEOUT_MS, name, err, errlen);
    if (!self->redis) {
        timers_destroy(&self);
        return NULL;
    }
    snprintf(self->svc, sizeof self->svc, "%s", svc);
    snprintf(self->k_due, sizeof self->k_due, "sx:timer:{%s}:due", svc);
    snprintf(self->k_claimed, sizeof self->k_claimed, "sx:timer:{%s}:claimed", svc);
    snprintf(self->k_armed, sizeof self->k_armed, "sx:timer:{%s}:armed", svc);
    self->lease_ms = TIMER_LEASE_MS_DEFAULT;
    return self;
}

void
timers_destroy(timers_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        timers_t *self = *self_p;
        redis_destroy(&self->redis);
        free(self);
        *self_p = NULL;
    }
}

void
timer_set_lease(timers_t *self, int64_t lease_ms)
{
    assert(self && lease_ms > 0);
    self->lease_ms = lease_ms;
}

/* Runs one command, once more on a fresh connection if the one it had broke under it
 * (every timer command is safe to repeat; see timer.h). Returns the reply, or NULL with
 * the reason in self->err. An error reply is turned into NULL too. */
static redisReply *
s_call(timers_t *self, int argc, const char **argv, const size_t *lens)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool was_connected = redis_connected(self->redis);
        redisReply *r = redis_command(self->redis, argc, argv, lens);
        if (r && r->type == REDIS_REPLY_ERROR) {
            s_errf(self, "redis %s: %.*s", argv[0], (int)(r->len > 300 ? 300 : r->len), r->str);
            freeReplyObject(r);
            return NULL;
        }
        if (r)
            return r;
        s_errf(self, "%s", redis_error(self->redis));
        if (!was_connected)
            break; /* the reconnect already waited; do not wait twice */
    }
    return NULL;
}

int
timer_arm(timers_t *self, const char *kind, const char *key, int64_t due_ms)
{
    assert(self);
    char member[S_MEMBER_MAX + 1], score[24];
    if (s_member(self, kind, key, member) < 0)
        return -1;
    snprintf(score, sizeof score, "%lld", (long long)due_ms);
    redisReply *r = s_call(self, 4, (const char *[]){"ZADD", self->k_due, score, member}, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int
timer_cancel(timers_t *self, const char *kind, const char *key)
{
    assert(self);
    char member[S_MEMBER_MAX + 1];
    if (s_member(self, kind, key, member) < 0)
        return -1;
    /* Due first: a claim running between the two ZREMs then finds nothing to take. */
    redisReply *r = s_call(self, 3, (const char *[]){"ZREM", self->k_due, member}, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    r = s_call(self, 3, (const char *[]){"ZREM", self->k_claimed, member}, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int
timer_done(timers_t *self, const char *kind, const char *key)
{
    assert(self);
    char member[S_MEMBER_MAX + 1];
    if (s_member(self, kind, key, member) < 0)
        return -1;
    redisReply *r = s_call(self, 3, (const char *[]){"ZREM", self->k_claimed, member}, NULL);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* Runs the claim script by its SHA, loading it when the server does not know it (first
 * use, or a server restarted since). */
static redisReply *
s_eval_claim(timers_t *self, const char *now, const char *max, const char *lease)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!self->sha[0]) {
            redisReply *r = s_call(self, 3, (const char *[]){"SCRIPT", "LOAD", s_claim_lua}, NULL);
            if (!r)
                return NULL;
            if (r->type != REDIS_REPLY_STRING || r->len != 40) {
                s_errf(self, "redis SCRIPT LOAD: unexpected reply");
                freeReplyObject(r);
                return NULL;
            }
            memcpy(self->sha, r->str, 40);
            self->sha[40] = '\0';
            freeReplyObject(r);
        }
        const char *argv[] = {"EVALSHA",     self->sha, "3", self->k_due, self->k_claimed,
                              self->k_armed, now,       max, lease};
        redisReply *r = s_call(self, 9, argv, NULL);
        if (r || strstr(self->err, "NOSCRIPT") == NULL)
            return r;
        self->sha[0] = '\0';
    }
    return NULL;
}

int
timer_claim_due(timers_t *self, int64_t now_ms, timer_fired_t *out, int max)
{
    assert(self && out);
    if (max < 1 || max > TIMER_CLAIM_MAX) {
        s_errf(self, "timer_claim_due: max must be in 1..%d", TIMER_CLAIM_MAX);
        return -1;
    }
    char now[24], smax[16], lease[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(smax, sizeof smax, "%d", max);
    snprintf(lease, sizeof lease, "%lld", (long long)self->lease_ms);
    redisReply *r = s_eval_claim(self, now, smax, lease);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0 ||
        (r->elements - 1) / 3 > (size_t)max || r->element[0]->type != REDIS_REPLY_INTEGER) {
        s_errf(self, "redis claim script: unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    if (r->element[0]->integer == 0)
        self->mark_missing = true;
    int n = 0;
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        redisReply *m = r->element[i], *s = r->element[i + 1], *re = r->element[i + 2];
        if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING ||
            re->type != REDIS_REPLY_INTEGER)
            continue;
        const char *colon = memchr(m->str, ':', m->len);
        size_t klen = colon ? (size_t)(colon - m->str) : 0;
        size_t keylen = colon ? m->len - klen - 1 : 0;
        timer_fired_t *f = &out[n];
        bool ok = colon && klen >= 1 && klen <= TIMER_KIND_MAX && keylen >= 1 &&
                  keylen <= TIMER_KEY_MAX && memchr(m->str, '\0', m->len) == NULL;
        if (ok) {
            memcpy(f->kind, m->str, klen);
            f->kind[klen] = '\0';
            memcpy(f->key, colon + 1, keylen);
            f->key[keylen] = '\0';
            ok = s_valid_name(f->kind, TIMER_KIND_MAX) && s_valid_key(f->key);
        }
        if (!ok) {
            /* Not ours (written by hand?): drop its claim so it does not come back. */
            log_warn("timer: malformed member dropped", "svc=%s member=%.*s", self->svc,
                     (int)(m->len > 300 ? 300 : m->len), m->str);
            redisReply *z = s_call(self, 3, (const char *[]){"ZREM", self->k_claimed, m->str},
                                   (const size_t[]){4, strlen(self->k_claimed), m->len});
            if (z)
                freeReplyObject(z);
            continue;
        }
        f->due_ms = (int64_t)llround(strtod(s->str, NULL));
        f->redelivered = re->integer != 0;
        n++;
    }
    freeReplyObject(r);
    return n;
}

/* Reads the replies of the ZADDs in flight. */
static int
s_batch_drain(timer_batch_t *b)
{
    timers_t *self = b->t;
    for (; b->inflight > 0; b->inflight--) {
        redisReply *r = redis_reply(self->redis);
        if (!r) {
            s_errf(self, "%s", redis_error(self->redis));
            b->failed = true;
            return -1;
        }
        bool bad = r->type == REDIS_REPLY_ERROR;
        if (bad)
            s_errf(self, "redis ZADD: %.*s", (int)(r->len > 300 ? 300 : r->len), r->str);
        freeReplyObject(r);
        if (bad) {
            b->failed = true; /* the other replies are still read, to keep the stream */
        }
    }
    return b->failed ? -1 : 0;
}

/* Sends the ZADD being built. */
static int
s_batch_flush(timer_batch_t *b)
{
    if (b->failed)
        return -1;
    if (b->npairs == 0)
        return 0;
    timers_t *self = b->t;
    const char *argv[2 + 2 * S_BATCH_PAIRS];
    argv[0] = "ZADD";
    argv[1] = self->k_due;
    for (int i = 0; i < b->npairs; i++) {
        argv[2 + 2 * i] = b->score[i];
        argv[3 + 2 * i] = b->member[i];
    }
    if (redis_append(self->redis, 2 + 2 * b->npairs, argv, NULL) < 0) {
        s_errf(self, "%s", redis_error(self->redis));
        b->failed = true;
        return -1;
    }
    b->added += b->npairs;
    b->npairs = 0;
    if (++b->inflight >= S_BATCH_INFLIGHT)
        return s_batch_drain(b);
    return 0;
}

int
timer_batch_add(timer_batch_t *b, const char *kind, const char *key, int64_t due_ms)
{
    assert(b);
    if (b->failed)
        return -1;
    if (s_member(b->t, kind, key, b->member[b->npairs]) < 0) {
        b->skipped++;
        log_warn("timer: deadline skipped", "svc=%s kind=%s key=%s err=%s", b->t->svc,
                 kind ? kind : "(null)", key ? key : "(null)", b->t->err);
        b->t->err[0] = '\0';
        return 0;
    }
    snprintf(b->score[b->npairs], sizeof b->score[0], "%lld", (long long)due_ms);
    if (++b->npairs == S_BATCH_PAIRS)
        return s_batch_flush(b);
    return 0;
}

/* Clears the last error and connects (or keeps the connection): 0, or -1 (self->err). */
static int
s_connect(timers_t *self)
{
    self->err[0] = '\0';
    if (redis_connect(self->redis, S_TIMEOUT_MS) < 0) {
        s_errf(self, "%s", redis_error(self->redis));
        return -1;
    }
    return 0;
}

/* Arms every deadline fn supplies, pipelined, on the connection s_connect made (or kept):
 * 0 with the counts, or -1 (self->err). */
static int
s_arm_from(timers_t *self, timer_source_fn *fn, void *arg, long *added, long *skipped)
{
    timer_batch_t *b = calloc(1, sizeof *b);
    if (!b) {
        s_errf(self, "out of memory");
        return -1;
    }
    b->t = self;
    int rc = fn(arg, b);
    if (rc == 0 && s_batch_flush(b) == 0)
        rc = s_batch_drain(b);
    else {
        s_batch_drain(b); /* keeps the connection's replies in step */
        if (!self->err[0])
            s_errf(self, "timer arming: the deadline source failed");
        rc = -1;
    }
    *added = b->added;
    *skipped = b->skipped;
    free(b);
    return rc;
}

long
timer_arm_all(timers_t *self, timer_source_fn *fn, void *arg)
{
    assert(self && fn);
    if (s_connect(self) < 0)
        return -1;
    long added, skipped;
    return s_arm_from(self, fn, arg, &added, &skipped) < 0 ? -1 : added;
}

long
timer_rearm(timers_t *self, timer_source_fn *fn, void *arg)
{
    assert(self && fn);
    if (s_connect(self) < 0)
        return -1;
    uint64_t generation = redis_generation(self->redis);
    long added = 0, skipped = 0;
    int rc = s_arm_from(self, fn, arg, &added, &skipped);
    if (rc == 0 && redis_generation(self->redis) == generation) {
        char now[24];
        snprintf(now, sizeof now, "%lld", (long long)timer_now_ms());
        redisReply *r = s_call(self, 3, (const char *[]){"SET", self->k_armed, now}, NULL);
        if (r) {
            freeReplyObject(r);
            if (redis_generation(self->redis) == generation) {
                self->rearmed = true;
                self->rearm_generation = generation;
                self->mark_missing = false;
                log_info("timers rearmed", "svc=%s armed=%ld skipped=%ld", self->svc, added,
                         skipped);
                return added;
            }
        }
    }
    if (!self->err[0])
        s_errf(self, "timer rearm: the Redis connection changed during the rearm");
    log_warn("timer rearm failed", "svc=%s err=%s", self->svc, self->err);
    return -1;
}

bool
timer_needs_rearm(const timers_t *self)
{
    assert(self);
    return !self->rearmed || self->mark_missing ||
           self->rearm_generation != redis_generation(self->redis);
}

uint64_t
timer_generation(const timers_t *self)
{
    assert(self);
    return redis_generation(self->redis);
}

const char *
timer_error(const timers_t *self)
{
    assert(self);
    return self->err;
}

int
timer_claim_each(timers_t *self, int64_t now_ms, timer_fired_t *buf, int batch, int rounds,
                 timer_claim_t *c)
{
    assert(self && buf && c && c->fire && batch > 0 && batch <= TIMER_CLAIM_MAX);
    for (int round = 0; round < rounds; round++) {
        int n = timer_claim_due(self, now_ms, buf, batch);
        if (n < 0) {
            if (c->fail)
                c->fail(c->arg, "claim");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            c->fired++;
            int64_t due = 0;
            timer_fire_t o = c->fire(c->arg, &buf[i], now_ms, &due);
            if (o == TIMER_FIRE_RETRY) {
                c->retried++;
                continue; /* the lease runs out and it fires again */
            }
            if (o == TIMER_FIRE_MOVED) {
                c->moved++;
                if (timer_arm(self, buf[i].kind, buf[i].key, due) < 0) {
                    if (c->fail)
                        c->fail(c->arg, "arm moved deadline");
                    continue;
                }
            }
            if (timer_done(self, buf[i].kind, buf[i].key) < 0 && c->fail)
                c->fail(c->arg, "done");
        }
        if (n < batch)
            break;
    }
    return 0;
}
