/* redis: one Redis connection from a redis:// URL, with timeouts and reconnect. */
#include "redis.h"
#include "util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define S_NAME_MAX 64

struct redis {
    redis_url_t url;           /* where to connect, parsed once */
    char name[S_NAME_MAX + 1]; /* CLIENT SETNAME value, "" = none */
    int timeout_ms;            /* bounds each connect and each command */
    int reconnect_wait_ms;     /* how long a command waits for a lost connection */
    redisContext *ctx;         /* NULL when not connected or known broken */
    uint64_t generation;       /* connections made so far */
    uint64_t rng;              /* xorshift state for backoff jitter */
    char err[512];             /* the last failure, without the password */
};

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t
s_rand(redis_t *self)
{
    uint64_t x = self->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ms jittered into [ms/2, ms], so clients that lost the server together do not come
 * back in lockstep. */
static int64_t
s_jitter(redis_t *self, int64_t ms)
{
    if (ms < 2)
        return ms;
    return ms / 2 + (int64_t)(s_rand(self) % (uint64_t)(ms / 2 + 1));
}

static int
s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Copies [s, s+n) into out (size outsize) decoding %XX. Returns 0, or -1 when too long,
 * a bad escape or a NUL byte. */
static int
s_pct_decode(const char *s, size_t n, char *out, size_t outsize)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = s_hexval((unsigned char)s[i + 1]), lo = s_hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || w + 1 >= outsize)
            return -1;
        out[w++] = (char)c;
    }
    out[w] = '\0';
    return 0;
}

/* Parses the decimal [s, s+n) into *out within [min, max]. */
static int
s_parse_uint(const char *s, size_t n, long min, long max, long *out)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int
redis_url_parse(const char *url, redis_url_t *out, char *err, size_t errlen)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (!url || !*url) {
        util_errf(err, errlen, "redis URL is empty");
        return -1;
    }
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            util_errf(err, errlen, "redis URL holds a space or control character");
            return -1;
        }
    static const char scheme[] = "redis://";
    if (strncasecmp(url, "rediss://", 9) == 0) {
        util_errf(err, errlen, "redis URL: TLS (rediss://) is not supported");
        return -1;
    }
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0) {
        util_errf(err, errlen, "redis URL must start with redis://");
        return -1;
    }
    const char *auth = url + sizeof scheme - 1;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;

    /* userinfo: the part before the last '@' of the authority */
    const char *hostport = auth;
    const char *at = NULL;
    for (const char *p = auth; p < rest; p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon) {
            util_errf(err, errlen, "redis URL: credentials must be [user]:password@");
            return -1;
        }
        if (s_pct_decode(auth, (size_t)(colon - auth), out->user, sizeof out->user) < 0) {
            util_errf(err, errlen, "redis URL: bad user name");
            return -1;
        }
        if (s_pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) <
            0) {
            util_errf(err, errlen, "redis URL: bad password (too long or a bad %%-escape)");
            return -1;
        }
        hostport = at + 1;
    }

    /* host, [v6] or name, then :port */
    const char *hend, *portp = NULL;
    const char *hstart = hostport;
    if (*hostport == '[') {
        const char *close = memchr(hostport, ']', (size_t)(rest - hostport));
        if (!close) {
            util_errf(err, errlen, "redis URL: unclosed [ in host");
            return -1;
        }
        hstart = hostport + 1;
        hend = close;
        if (close + 1 < rest) {
            if (close[1] != ':') {
                util_errf(err, errlen, "redis URL: junk after ]");
                return -1;
            }
            portp = close + 2;
        }
    } else {
        const char *colon = memchr(hostport, ':', (size_t)(rest - hostport));
        hend = colon ? colon : rest;
        if (colon)
            portp = colon + 1;
    }
    size_t hlen = (size_t)(hend - hstart);
    if (hlen == 0) {
        util_errf(err, errlen, "redis URL: missing host");
        return -1;
    }
    if (hlen > REDIS_HOST_MAX) {
        util_errf(err, errlen, "redis URL: host longer than %d bytes", REDIS_HOST_MAX);
        return -1;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)hstart[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || (c == ':' && hstart != hostport) ||
              c == '%')) {
            util_errf(err, errlen, "redis URL: bad character in host");
            return -1;
        }
    }
    memcpy(out->host, hstart, hlen);
    out->host[hlen] = '\0';

    long v = 6379;
    if (portp && s_parse_uint(portp, (size_t)(rest - portp), 1, 65535, &v) < 0) {
        util_errf(err, errlen, "redis URL: port must be a number in 1..65535");
        return -1;
    }
    out->port = (int)v;

    v = 0;
    if (*rest == '?' || *rest == '#') {
        util_errf(err, errlen, "redis URL: query and fragment are not supported");
        return -1;
    }
    if (*rest == '/' && rest[1]) {
        if (s_parse_uint(rest + 1, strlen(rest + 1), 0, 65535, &v) < 0) {
            util_errf(err, errlen, "redis URL: database must be /N with N in 0..65535");
            return -1;
        }
    }
    out->db = (int)v;
    return 0;
}

/* Runs one command on a fresh context during the handshake; returns 0 or -1 with the
 * reason (prefixed by what) in err. */
static int
s_handshake_cmd(redisContext *c, const char *what, int argc, const char **argv, char *err,
                size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        util_errf(err, errlen, "%s: %s", what, c->err ? c->errstr : "no reply");
        return -1;
    }
    int rc = r->type == REDIS_REPLY_ERROR ? -1 : 0;
    if (rc < 0)
        util_errf(err, errlen, "%s: %.*s", what, (int)(r->len > 200 ? 200 : r->len), r->str);
    freeReplyObject(r);
    return rc;
}

static const char *
s_io_reason(const redisContext *c)
{
    /* hiredis reports a read or write past SO_RCVTIMEO/SO_SNDTIMEO as EAGAIN's text */
    if (c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable"))
        return "timed out";
    if (c->err == REDIS_ERR_EOF)
        return "connection closed by server";
    return c->errstr[0] ? c->errstr : "I/O error";
}

/* Connects once and runs AUTH, SELECT and CLIENT SETNAME. Returns the context, or NULL
 * with the reason in err. */
static redisContext *
s_open(const redis_url_t *u, int timeout_ms, const char *name, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!c) {
        util_errf(err, errlen, "redis %s:%d: out of memory", u->host, u->port);
        return NULL;
    }
    if (c->err) {
        const char *why = c->errstr;
        if (c->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable"))
            why = "connect timed out";
        util_errf(err, errlen, "redis %s:%d: %s", u->host, u->port, why);
        redisFree(c);
        return NULL;
    }
    char what[REDIS_HOST_MAX + 32];
    snprintf(what, sizeof what, "redis %s:%d", u->host, u->port);
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        util_errf(err, errlen, "%s: cannot set timeout", what);
        redisFree(c);
        return NULL;
    }
    redisEnableKeepAlive(c);
    int rc = 0;
    if (u->password[0]) {
        if (u->user[0])
            rc = s_handshake_cmd(c, what, 3, (const char *[]){"AUTH", u->user, u->password}, err,
                                 errlen);
        else
            rc = s_handshake_cmd(c, what, 2, (const char *[]){"AUTH", u->password}, err, errlen);
    }
    if (rc == 0 && u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        rc = s_handshake_cmd(c, what, 2, (const char *[]){"SELECT", db}, err, errlen);
    }
    if (rc == 0 && name && *name)
        rc = s_handshake_cmd(c, what, 3, (const char *[]){"CLIENT", "SETNAME", name}, err, errlen);
    if (rc < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

redis_t *
redis_new(const char *url, int timeout_ms, const char *client_name, char *err, size_t errlen)
{
    assert(timeout_ms > 0);
    redis_url_t u;
    if (redis_url_parse(url, &u, err, errlen) < 0)
        return NULL;
    if (client_name) {
        size_t n = strlen(client_name);
        bool ok = n >= 1 && n <= S_NAME_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char c = (unsigned char)client_name[i];
            ok = isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-';
        }
        if (!ok) {
            util_errf(err, errlen, "redis client name must be [A-Za-z0-9_.:-]{1,%d}", S_NAME_MAX);
            return NULL;
        }
    }
    redis_t *self = calloc(1, sizeof *self);
    if (!self) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->url = u;
    if (client_name)
        snprintf(self->name, sizeof self->name, "%s", client_name);
    self->timeout_ms = timeout_ms;
    self->reconnect_wait_ms = REDIS_RECONNECT_WAIT_MS;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    self->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
                (uint64_t)(uintptr_t)self;
    if (!self->rng)
        self->rng = 0x9E3779B97F4A7C15ULL;
    return self;
}

void
redis_destroy(redis_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        redis_t *self = *self_p;
        if (self->ctx)
            redisFree(self->ctx);
        /* The password must not linger in freed memory. */
        memset(&self->url, 0, sizeof self->url);
        free(self);
        *self_p = NULL;
    }
}

/* Drops a connection known to be broken; the next call reconnects. */
static void
s_lost(redis_t *self, const char *what)
{
    util_errf(self->err, sizeof self->err, "redis %s:%d: %s: %s", self->url.host, self->url.port,
              what, self->ctx ? s_io_reason(self->ctx) : "not connected");
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
}

int
redis_connect(redis_t *self, int max_wait_ms)
{
    assert(self);
    if (self->ctx)
        return 0;
    int64_t deadline = s_now_ms() + (max_wait_ms > 0 ? max_wait_ms : 0);
    int64_t delay = 50;
    for (int attempt = 1;; attempt++) {
        self->ctx = s_open(&self->url, self->timeout_ms, self->name, self->err, sizeof self->err);
        if (self->ctx) {
            self->generation++;
            if (self->generation > 1 || attempt > 1)
                log_info("redis connected", "target=%s:%d db=%d attempt=%d", self->url.host,
                         self->url.port, self->url.db, attempt);
            return 0;
        }
        log_warn("redis connect failed", "attempt=%d err=%s", attempt, self->err);
        int64_t left = deadline - s_now_ms();
        if (left <= 0)
            return -1;
        int64_t d = s_jitter(self, delay);
        s_sleep_ms(d < left ? d : left);
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

void
redis_set_reconnect_wait(redis_t *self, int max_wait_ms)
{
    assert(self);
    self->reconnect_wait_ms = max_wait_ms > 0 ? max_wait_ms : 0;
}

int
redis_append(redis_t *self, int argc, const char **argv, const size_t *lens)
{
    assert(self && argc > 0 && argv);
    if (!self->ctx && redis_connect(self, self->reconnect_wait_ms) < 0)
        return -1;
    if (redisAppendCommandArgv(self->ctx, argc, argv, lens) != REDIS_OK) {
        s_lost(self, "append");
        return -1;
    }
    return 0;
}

redisReply *
redis_reply(redis_t *self)
{
    assert(self);
    if (!self->ctx) {
        util_errf(self->err, sizeof self->err, "redis %s:%d: not connected", self->url.host,
                  self->url.port);
        return NULL;
    }
    void *r = NULL;
    if (redisGetReply(self->ctx, &r) != REDIS_OK || !r) {
        s_lost(self, "command failed");
        return NULL;
    }
    return r;
}

redisReply *
redis_command(redis_t *self, int argc, const char **argv, const size_t *lens)
{
    if (redis_append(self, argc, argv, lens) < 0)
        return NULL;
    return redis_reply(self);
}

bool
redis_connected(const redis_t *self)
{
    assert(self);
    return self->ctx != NULL && self->ctx->err == 0;
}

uint64_t
redis_generation(const redis_t *self)
{
    assert(self);
    return self->generation;
}

const char *
redis_error(const redis_t *self)
{
    assert(self);
    return self->err;
}

bool
redis_ping_url(const char *url, int timeout_ms, char *why, size_t whylen)
{
    redis_url_t u;
    if (redis_url_parse(url, &u, why, whylen) < 0)
        return false;
    redisContext *c = s_open(&u, timeout_ms > 0 ? timeout_ms : 500, NULL, why, whylen);
    memset(u.password, 0, sizeof u.password);
    if (!c)
        return false;
    bool ok = false;
    redisReply *r = redisCommand(c, "PING");
    if (!r)
        util_errf(why, whylen, "redis %s:%d: PING: %s", u.host, u.port, s_io_reason(c));
    else if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
        ok = true;
    else
        util_errf(why, whylen, "redis %s:%d: PING: unexpected reply %.*s", u.host, u.port,
                  (int)(r->len > 100 ? 100 : r->len), r->str ? r->str : "");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}
