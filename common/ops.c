/* ops: health and metrics endpoint (see ops.h). */
#include "ops.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libpq-fe.h>
#include <microhttpd.h>

#include "log.h"
#include "redis.h"

#define S_NAME_MAX       200
#define S_LABELS_MAX     1024
#define S_HELP_MAX       1024
#define S_BOUNDS_MAX     32
#define S_CHECKS_MAX     16
#define S_CHECK_NAME_MAX 31
#define S_WHY_MAX        256
#define S_CONN_LIMIT     16
#define S_CONN_MEMORY    (16 * 1024)
#define S_CONN_TIMEOUT_S 10

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_type_t;

static const char *const s_type_names[] = {"counter", "gauge", "histogram"};

typedef struct s_family s_family_t;

struct ops_metric {
    ops_metric_t *next;          /* the family's next series, in registration order */
    s_family_t *family;          /* name, help and type */
    char *labels;                /* validated label set without braces, "" for none */
    _Atomic uint64_t value;      /* counter value, or a gauge's double as bits */
    size_t nbounds;              /* histogram: number of finite bounds */
    double bounds[S_BOUNDS_MAX]; /* histogram: ascending upper bounds */
    /* histogram: samples per bucket, not cumulative (the last is +Inf); the count is
     * their total, so _count always equals the +Inf bucket */
    _Atomic uint64_t buckets[S_BOUNDS_MAX + 1];
    _Atomic uint64_t sum_bits; /* histogram: the sum of samples, a double as bits */
};

struct s_family {
    s_family_t *next;     /* next family, in registration order */
    char *name;           /* metric name */
    char *help;           /* HELP text, unescaped ("" for none) */
    s_type_t type;        /* every series of a name has one type */
    ops_metric_t *series; /* the series, in registration order */
    ops_metric_t **tail;  /* where the next series goes */
};

typedef struct {
    char name[S_CHECK_NAME_MAX + 1]; /* "postgres", "redis", ... */
    ops_check_fn *fn;                /* the check */
    void *arg;                       /* its argument, owned by the caller */
} s_check_t;

struct ops {
    struct MHD_Daemon *daemon;      /* the listener and its thread */
    int port;                       /* the port bound */
    pthread_mutex_t lock;           /* guards families and checks (not metric values) */
    s_family_t *families;           /* registered metrics */
    s_family_t **families_tail;     /* where the next family goes */
    s_check_t checks[S_CHECKS_MAX]; /* registered health checks */
    int nchecks;                    /* how many */
    char start_err[256];            /* what MHD logged while starting */
    atomic_bool started;            /* MHD_start_daemon returned: log, do not keep */
};

/* A growing string; on allocation failure it stops growing and remembers. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} s_buf_t;

static void
s_buf_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
s_buf_str(s_buf_t *b, const char *s)
{
    s_buf_put(b, s, strlen(s));
}

static void s_buf_fmt(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_buf_fmt(s_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* --- names, labels and numbers in the text format --- */

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, [a-zA-Z_][a-zA-Z0-9_]* for labels */
static bool
s_valid_name(const char *s, size_t n, bool colon)
{
    if (n == 0 || n > S_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Checks a label set as the text format writes it: name="value" pairs joined by commas,
 * values with only \\, \" and \n escapes and no raw newline, no name twice, and "le"
 * refused for histograms. */
static bool
s_valid_labels(const char *s, bool histogram)
{
    const char *names[64];
    size_t lens[64];
    int count = 0;
    const char *p = s;
    if (strlen(s) > S_LABELS_MAX)
        return false;
    while (*p) {
        const char *n0 = p;
        while (*p && *p != '=')
            p++;
        size_t nlen = (size_t)(p - n0);
        if (*p != '=' || p[1] != '"' || !s_valid_name(n0, nlen, false))
            return false;
        if (histogram && nlen == 2 && memcmp(n0, "le", 2) == 0)
            return false;
        for (int i = 0; i < count; i++)
            if (lens[i] == nlen && memcmp(names[i], n0, nlen) == 0)
                return false;
        if (count == 64)
            return false;
        names[count] = n0;
        lens[count++] = nlen;
        p += 2;
        for (;; p++) {
            if (*p == '\0' || *p == '\n')
                return false;
            if (*p == '"')
                break;
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n')
                    return false;
            }
        }
        p++; /* the closing quote */
        if (*p == ',') {
            p++;
            if (!*p)
                return false;
        } else if (*p) {
            return false;
        }
    }
    return true;
}

int
ops_label(char *buf, size_t size, const char *name, const char *value)
{
    assert(buf && size > 0 && name && value);
    if (!s_valid_name(name, strlen(name), false))
        return -1;
    size_t len = strnlen(buf, size);
    if (len == size)
        return -1;
    size_t w = len;
#define S_PUT(c)                                                                                   \
    do {                                                                                           \
        if (w + 1 >= size) {                                                                       \
            buf[len] = '\0';                                                                       \
            return -1;                                                                             \
        }                                                                                          \
        buf[w++] = (c);                                                                            \
    } while (0)
    if (len > 0)
        S_PUT(',');
    for (const char *p = name; *p; p++)
        S_PUT(*p);
    S_PUT('=');
    S_PUT('"');
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            S_PUT('\\');
            S_PUT(*p);
        } else if (*p == '\n') {
            S_PUT('\\');
            S_PUT('n');
        } else {
            S_PUT(*p);
        }
    }
    S_PUT('"');
#undef S_PUT
    buf[w] = '\0';
    return 0;
}

/* HELP text: backslash and newline escaped. */
static void
s_put_help(s_buf_t *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            s_buf_put(b, "\\\\", 2);
        else if (*p == '\n')
            s_buf_put(b, "\\n", 2);
        else
            s_buf_put(b, p, 1);
    }
}

/* A float as the text format reads it: the shortest of %.15g/%.17g that reads back the
 * same, or NaN, +Inf, -Inf. */
static void
s_fmt_double(char *out, size_t size, double v)
{
    if (isnan(v))
        snprintf(out, size, "NaN");
    else if (isinf(v))
        snprintf(out, size, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(out, size, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, size, "%.17g", v);
    }
}

static double
s_bits_to_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static uint64_t
s_double_to_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

/* --- registration and updates --- */

static void
s_family_free(s_family_t *f)
{
    ops_metric_t *m = f->series;
    while (m) {
        ops_metric_t *next = m->next;
        free(m->labels);
        free(m);
        m = next;
    }
    free(f->name);
    free(f->help);
    free(f);
}

static ops_metric_t *
s_register(ops_t *self, s_type_t type, const char *name, const char *labels, const char *help,
           const double *bounds, size_t nbounds)
{
    assert(self);
    if (!name || !s_valid_name(name, strlen(name), true)) {
        log_error("ops: malformed metric name", "name=%s", name ? name : "(null)");
        return NULL;
    }
    if (!labels)
        labels = "";
    if (!s_valid_labels(labels, type == S_HISTOGRAM)) {
        log_error("ops: malformed labels", "name=%s labels=%s", name, labels);
        return NULL;
    }
    if (type == S_HISTOGRAM) {
        bool ok = bounds && nbounds >= 1 && nbounds <= S_BOUNDS_MAX;
        for (size_t i = 0; ok && i < nbounds; i++)
            ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
        if (!ok) {
            log_error("ops: histogram bounds must be 1..32 finite ascending values", "name=%s",
                      name);
            return NULL;
        }
    }
    ops_metric_t *m = NULL;
    pthread_mutex_lock(&self->lock);
    s_family_t *f = self->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f && f->type != type) {
        log_error("ops: metric registered with another type", "name=%s", name);
        goto done;
    }
    if (f)
        for (m = f->series; m; m = m->next)
            if (strcmp(m->labels, labels) == 0)
                goto done;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            goto done;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        if (!f->name || !f->help) {
            s_family_free(f);
            f = NULL;
            goto done;
        }
        if (strlen(f->help) > S_HELP_MAX)
            f->help[S_HELP_MAX] = '\0';
        f->type = type;
        f->tail = &f->series;
        *self->families_tail = f;
        self->families_tail = &f->next;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        goto done;
    m->labels = strdup(labels);
    if (!m->labels) {
        free(m);
        m = NULL;
        goto done;
    }
    m->family = f;
    if (type == S_HISTOGRAM) {
        m->nbounds = nbounds;
        memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
    }
    if (type == S_GAUGE)
        atomic_init(&m->value, s_double_to_bits(0.0));
    *f->tail = m;
    f->tail = &m->next;
done:
    pthread_mutex_unlock(&self->lock);
    return m;
}

ops_metric_t *
ops_counter(ops_t *self, const char *name, const char *labels, const char *help)
{
    return s_register(self, S_COUNTER, name, labels, help, NULL, 0);
}

ops_metric_t *
ops_gauge(ops_t *self, const char *name, const char *labels, const char *help)
{
    return s_register(self, S_GAUGE, name, labels, help, NULL, 0);
}

ops_metric_t *
ops_histogram(ops_t *self, const char *name, const char *labels, const char *help,
              const double *bounds, size_t nbounds)
{
    return s_register(self, S_HISTOGRAM, name, labels, help, bounds, nbounds);
}

void
ops_inc(ops_metric_t *m)
{
    ops_add(m, 1);
}

void
ops_add(ops_metric_t *m, uint64_t n)
{
    if (!m)
        return;
    assert(m->family->type == S_COUNTER);
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void
ops_set(ops_metric_t *m, double v)
{
    if (!m)
        return;
    assert(m->family->type == S_GAUGE);
    atomic_store_explicit(&m->value, s_double_to_bits(v), memory_order_relaxed);
}

void
ops_observe(ops_metric_t *m, double v)
{
    if (!m || isnan(v))
        return;
    assert(m->family->type == S_HISTOGRAM);
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old,
                                                  s_double_to_bits(s_bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

uint64_t
ops_counter_value(const ops_metric_t *m)
{
    if (!m)
        return 0;
    assert(m->family->type == S_COUNTER);
    return atomic_load_explicit(&((ops_metric_t *)m)->value, memory_order_relaxed);
}

/* --- rendering --- */

/* name{labels[,extra]} value */
static void
s_put_sample(s_buf_t *b, const char *name, const char *suffix, const char *labels,
             const char *extra, const char *value)
{
    s_buf_str(b, name);
    s_buf_str(b, suffix);
    if (*labels || extra) {
        s_buf_put(b, "{", 1);
        s_buf_str(b, labels);
        if (extra) {
            if (*labels)
                s_buf_put(b, ",", 1);
            s_buf_str(b, extra);
        }
        s_buf_put(b, "}", 1);
    }
    s_buf_put(b, " ", 1);
    s_buf_str(b, value);
    s_buf_put(b, "\n", 1);
}

static void
s_render_metrics(ops_t *self, s_buf_t *b)
{
    pthread_mutex_lock(&self->lock);
    for (s_family_t *f = self->families; f; f = f->next) {
        if (f->help[0]) {
            s_buf_fmt(b, "# HELP %s ", f->name);
            s_put_help(b, f->help);
            s_buf_put(b, "\n", 1);
        }
        s_buf_fmt(b, "# TYPE %s %s\n", f->name, s_type_names[f->type]);
        for (ops_metric_t *m = f->series; m; m = m->next) {
            char v[64];
            if (f->type == S_COUNTER) {
                snprintf(v, sizeof v, "%llu",
                         (unsigned long long)atomic_load_explicit(&m->value, memory_order_relaxed));
                s_put_sample(b, f->name, "", m->labels, NULL, v);
            } else if (f->type == S_GAUGE) {
                s_fmt_double(
                    v, sizeof v,
                    s_bits_to_double(atomic_load_explicit(&m->value, memory_order_relaxed)));
                s_put_sample(b, f->name, "", m->labels, NULL, v);
            } else {
                uint64_t cum = 0;
                for (size_t i = 0; i <= m->nbounds; i++) {
                    cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
                    char le[80], bound[64];
                    if (i < m->nbounds)
                        s_fmt_double(bound, sizeof bound, m->bounds[i]);
                    else
                        snprintf(bound, sizeof bound, "+Inf");
                    snprintf(le, sizeof le, "le=\"%s\"", bound);
                    snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
                    s_put_sample(b, f->name, "_bucket", m->labels, le, v);
                }
                s_fmt_double(
                    v, sizeof v,
                    s_bits_to_double(atomic_load_explicit(&m->sum_bits, memory_order_relaxed)));
                s_put_sample(b, f->name, "_sum", m->labels, NULL, v);
                snprintf(v, sizeof v, "%llu", (unsigned long long)cum);
                s_put_sample(b, f->name, "_count", m->labels, NULL, v);
            }
        }
    }
    pthread_mutex_unlock(&self->lock);
}

/* Makes why one short line: control characters become spaces, runs of spaces one. */
static void
s_one_line(char *s)
{
    char *w = s;
    bool space = true;
    for (const char *p = s; *p; p++) {
        bool ws = (unsigned char)*p < 0x20 || *p == ' ' || *p == 0x7f;
        if (ws && space)
            continue;
        *w++ = ws ? ' ' : *p;
        space = ws;
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

/* Runs every check (outside the lock: they are slow). Returns true when all pass; the
 * failing ones are written into b, one line each. */
static bool
s_render_health(ops_t *self, s_buf_t *b)
{
    s_check_t checks[S_CHECKS_MAX];
    pthread_mutex_lock(&self->lock);
    int n = self->nchecks;
    memcpy(checks, self->checks, (size_t)n * sizeof checks[0]);
    pthread_mutex_unlock(&self->lock);
    bool healthy = true;
    for (int i = 0; i < n; i++) {
        char why[S_WHY_MAX] = "";
        if (checks[i].fn(checks[i].arg, why, sizeof why))
            continue;
        healthy = false;
        why[sizeof why - 1] = '\0';
        s_one_line(why);
        s_buf_fmt(b, "%s: %s\n", checks[i].name, why[0] ? why : "failing");
    }
    if (healthy)
        s_buf_str(b, "ok\n");
    return healthy;
}

/* --- HTTP --- */

static enum MHD_Result
s_respond(struct MHD_Connection *conn, unsigned int status, const char *type, s_buf_t *b,
          const char *allow)
{
    struct MHD_Response *resp;
    if (b->oom) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        free(b->p);
        resp =
            MHD_create_response_from_buffer(14, (void *)"out of memory\n", MHD_RESPMEM_PERSISTENT);
        type = "text/plain; charset=utf-8";
    } else {
        resp =
            MHD_create_response_from_buffer(b->len, b->p ? b->p : (void *)"",
                                            b->p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp)
            free(b->p);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    ops_t *self = cls;
    static const char text[] = "text/plain; charset=utf-8";
    s_buf_t b = {0};
    /* Answered at the first call, on the headers alone: no request here has a body, and
     * MHD closes the connection rather than read one it was not asked to. */
    *upload_data_size = 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        s_buf_str(&b, "method not allowed\n");
        return s_respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, &b, "GET, HEAD");
    }
    if (strcmp(url, "/metrics") == 0) {
        s_render_metrics(self, &b);
        return s_respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b, NULL);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool ok = s_render_health(self, &b);
        return s_respond(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, &b, NULL);
    }
    s_buf_str(&b, "not found\n");
    return s_respond(conn, MHD_HTTP_NOT_FOUND, text, &b, NULL);
}

/* MHD's own messages: kept while starting (for ops_new's reason), logged afterwards. */
static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    ops_t *self = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    s_one_line(line);
    if (!atomic_load(&self->started))
        snprintf(self->start_err, sizeof self->start_err, "%s", line);
    else
        log_warn("ops: http", "err=%s", line);
}

ops_t *
ops_new(const char *bind_addr, int port, char *err, size_t errlen)
{
    if (!bind_addr)
        bind_addr = "127.0.0.1";
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "ops: port %d out of range 0..65535", port);
        return NULL;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char sport[8];
    snprintf(sport, sizeof sport, "%d", port);
    int gai = getaddrinfo(bind_addr, sport, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "ops: bad bind address \"%.64s\" (a numeric IPv4 or IPv6 address)",
                 bind_addr);
        if (ai)
            freeaddrinfo(ai);
        return NULL;
    }
    ops_t *self = calloc(1, sizeof *self);
    if (!self) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "ops: out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->families_tail = &self->families;
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    self->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)S_CONN_LIMIT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_CONN_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)S_CONN_TIMEOUT_S, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!self->daemon) {
        snprintf(err, errlen, "ops: cannot listen on %s:%d: %s", bind_addr, port,
                 self->start_err[0] ? self->start_err : "libmicrohttpd failed to start");
        ops_destroy(&self);
        return NULL;
    }
    atomic_store(&self->started, true);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info && info->port ? info->port : port;
    return self;
}

void
ops_stop(ops_t *self)
{
    if (self && self->daemon) {
        MHD_stop_daemon(self->daemon);
        self->daemon = NULL;
    }
}

void
ops_destroy(ops_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        ops_t *self = *self_p;
        ops_stop(self);
        s_family_t *f = self->families;
        while (f) {
            s_family_t *next = f->next;
            s_family_free(f);
            f = next;
        }
        pthread_mutex_destroy(&self->lock);
        free(self);
        *self_p = NULL;
    }
}

int
ops_port(const ops_t *self)
{
    assert(self);
    return self->port;
}

int
ops_check(ops_t *self, const char *name, ops_check_fn *fn, void *arg)
{
    assert(self && fn);
    size_t n = name ? strlen(name) : 0;
    bool ok = n >= 1 && n <= S_CHECK_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             name[i] == '_' || name[i] == '-';
    if (!ok)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&self->lock);
    if (self->nchecks < S_CHECKS_MAX) {
        s_check_t *c = &self->checks[self->nchecks++];
        memcpy(c->name, name, n + 1);
        c->fn = fn;
        c->arg = arg;
        rc = 0;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* --- ready-made checks --- */

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
ops_check_postgres(void *arg, char *why, size_t whylen)
{
    const char *conninfo = arg;
    /* A non-blocking connect under our own deadline: libpq's connect_timeout has a
     * 2 s floor and counts per address. */
    const char *const keys[] = {"dbname", "application_name", NULL};
    const char *const vals[] = {conninfo, "sx-healthz", NULL};
    int64_t deadline = s_mono_ms() + 1000;
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    bool ok = false;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(c) == CONNECTION_BAD)
        st = PGRES_POLLING_FAILED;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int64_t left = deadline - s_mono_ms();
        struct pollfd p = {.fd = PQsocket(c),
                           .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "connect timed out (1 s)");
            PQfinish(c);
            return false;
        }
        st = PQconnectPoll(c);
    }
    if (st == PGRES_POLLING_OK && PQstatus(c) == CONNECTION_OK)
        ok = true;
    else {
        snprintf(why, whylen, "%s", PQerrorMessage(c));
        s_one_line(why);
        if (!why[0])
            snprintf(why, whylen, "cannot connect");
    }
    PQfinish(c);
    return ok;
}

bool
ops_check_redis(void *arg, char *why, size_t whylen)
{
    if (redis_ping_url(arg, 500, why, whylen))
        return true;
    /* The line is already "redis: ...": drop the module's own "redis " prefix. */
    if (strncmp(why, "redis ", 6) == 0)
        memmove(why, why + 6, strlen(why + 6) + 1);
    return false;
}
