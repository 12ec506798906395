/* portal: libmicrohttpd handlers for the public API and the Chinese HTML pages. */
#include "portal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bus.h"
#include "date.h"
#include "db.h"
#include "html.h"
#include "log.h"
#include "page_portal.h"
#include "query.h"
#include "stats.h"
#include "util.h"

#define S_CONN_LIMIT   512
#define S_CONN_MEMORY  (64 * 1024) /* per connection: URLs beyond it are refused by MHD */
#define S_CONN_TIMEOUT 15

#define S_CACHE_SLOTS    2048               /* direct-mapped by the key's hash */
#define S_COUNT_SLOTS    128                /* of them, for search totals (s_slot) */
#define S_CACHE_BODY_MAX (256 * 1024)       /* larger bodies are not kept */
#define S_CACHE_BYTES    (64 * 1024 * 1024) /* all bodies together */
#define S_VERSION_MAX    160                /* a longer snapshot text: not cached */
#define S_KEY_MAX        (QUERY_VALUE_MAX + 200)

static const char s_json[] = "application/json; charset=utf-8";
static const char s_html[] = "text/html; charset=utf-8";

/* One answer, before it is sent (and perhaps kept in the cache). */
typedef struct {
    unsigned int status;
    char *body; /* owned (malloc) */
    size_t len;
    const char *type;  /* s_json or s_html */
    const char *cache; /* Cache-Control, a literal */
    char tag[24];      /* strong ETag, "" for none */
} s_out_t;

/* A rendered answer kept until the data it was made from changes. */
typedef struct {
    uint64_t hash;
    char *key;                   /* NULL: the slot is empty */
    char version[S_VERSION_MAX]; /* the snapshot it was rendered under */
    s_out_t out;
} s_slot_t;

struct portal {
    struct MHD_Daemon *daemon; /* the listener and its pool of threads */
    int port;
    int nconn;                  /* connections in pool (one per MHD thread) */
    db_t **pool;                /* PostgreSQL connections, each used by one thread at a time */
    bool *busy;                 /* pool[i] checked out */
    pthread_mutex_t pool_lock;  /* guards busy */
    pthread_cond_t pool_free;   /* signalled when one is checked in */
    pthread_mutex_t cache_lock; /* guards cache and cache_bytes */
    s_slot_t *cache;            /* S_CACHE_SLOTS */
    size_t cache_bytes;
    /* The data version (s_version): one thread reads it for all requests waiting. */
    db_t *ver_db; /* used by ver_thread only */
    pthread_t ver_thread;
    bool ver_running;         /* ver_thread was started */
    pthread_mutex_t ver_lock; /* guards the fields below */
    pthread_cond_t ver_wake;  /* to ver_thread: a request waits */
    pthread_cond_t ver_ready; /* to the requests: a read finished */
    uint64_t ver_started;     /* reads started (the sequence number of the last) */
    uint64_t ver_done;        /* the sequence number of the last read finished */
    int ver_waiters;
    bool ver_ok;         /* that read succeeded; ver holds its result */
    int64_t ver_read_ms; /* when that read started (util_mono_ms) */
    int max_stale_ms;    /* portal_opts_t.max_stale_ms */
    bool stop;
    char ver[S_VERSION_MAX];
};

/* Parameters gathered from the URL, with byte lengths (MHD_get_connection_values_n). */
typedef struct {
    query_kv_t kv[QUERY_PARAMS_MAX + 1];
    size_t n;
} s_params_t;

static enum MHD_Result
s_param(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
        size_t value_size)
{
    (void)kind;
    s_params_t *p = cls;
    if (p->n < QUERY_PARAMS_MAX + 1)
        p->kv[p->n++] = (query_kv_t){key, key_size, value, value ? value_size : 0};
    else
        p->n++;
    return MHD_YES;
}

static void
s_params(struct MHD_Connection *conn, s_params_t *p)
{
    memset(p, 0, sizeof *p);
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, s_param, p);
}

/* ---- Answers ------------------------------------------------------------------------ */

/* Fills out with a copy of body (len bytes); etag computes its strong ETag. Returns 0,
 * or -1 when out of memory. */
static int
s_out_set(s_out_t *out, unsigned int status, const char *body, size_t len, const char *type,
          const char *cache, bool etag)
{
    out->status = status;
    out->body = malloc(len + 1);
    if (!out->body)
        return -1;
    memcpy(out->body, body, len);
    out->body[len] = '\0';
    out->len = len;
    out->type = type;
    out->cache = cache;
    out->tag[0] = '\0';
    if (etag)
        snprintf(out->tag, sizeof out->tag, "\"%016" PRIx64 "\"", bus_hash(body, len));
    return 0;
}

/* Takes ownership of body (malloc'ed, NUL-terminated; NULL: out of memory -> -1). */
static int
s_out_take(s_out_t *out, unsigned int status, char *body, const char *type, const char *cache,
           bool etag)
{
    if (!body)
        return -1;
    out->status = status;
    out->body = body;
    out->len = strlen(body);
    out->type = type;
    out->cache = cache;
    out->tag[0] = '\0';
    if (etag)
        snprintf(out->tag, sizeof out->tag, "\"%016" PRIx64 "\"", bus_hash(body, out->len));
    return 0;
}

/* A JSON answer from o (stolen). Returns 0 or -1. */
static int
s_out_json(s_out_t *out, unsigned int status, json_t *o, const char *cache, bool etag)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s_out_take(out, status, text, s_json, cache, etag);
}

static void
s_out_clear(s_out_t *out)
{
    free(out->body);
    memset(out, 0, sizeof *out);
}

/* Queues out on conn (a 304 when If-None-Match holds its ETag). */
static enum MHD_Result
s_send_out(struct MHD_Connection *conn, const s_out_t *out)
{
    unsigned int status = out->status;
    const char *body = out->body;
    size_t len = out->len;
    if (out->tag[0]) {
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
        if (inm && strstr(inm, out->tag)) {
            status = MHD_HTTP_NOT_MODIFIED;
            body = "";
            len = 0;
        }
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, out->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, out->cache);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (out->type == s_html)
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'");
    if (out->tag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, out->tag);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A literal body, not kept anywhere. */
static enum MHD_Result
s_send(struct MHD_Connection *conn, unsigned int status, const char *body, const char *type,
       const char *cache)
{
    s_out_t out = {status, (char *)body, strlen(body), type, cache, ""};
    return s_send_out(conn, &out);
}

/* Sends out and frees its body. */
static enum MHD_Result
s_send_free(struct MHD_Connection *conn, s_out_t *out)
{
    enum MHD_Result rc = s_send_out(conn, out);
    s_out_clear(out);
    return rc;
}

static enum MHD_Result
s_internal(struct MHD_Connection *conn, bool html)
{
    return html ? s_send(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                         "<!DOCTYPE html><html lang=\"zh-CN\"><meta charset=\"utf-8\">"
                         "<title>服务暂不可用</title><h1>服务暂不可用，请稍后再试。</h1></html>",
                         s_html, "no-store")
                : s_send(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"internal\"}", s_json,
                         "no-store");
}

/* 400 naming the bad parameter: JSON {error, parameter, reason, zh}; HTML the message
 * page (search and officer pages render their own form instead). */
static enum MHD_Result
s_bad(struct MHD_Connection *conn, const query_err_t *err, bool html)
{
    s_out_t out = {0};
    int rc;
    if (html)
        rc = s_out_take(&out, MHD_HTTP_BAD_REQUEST,
                        html_message_page("查询参数有误", "查询参数有误", err->zh, "/"), s_html,
                        "no-store", false);
    else
        rc = s_out_json(&out, MHD_HTTP_BAD_REQUEST,
                        json_pack("{s:s,s:s,s:s,s:s}", "error", "bad_parameter", "parameter",
                                  err->param, "reason", err->reason, "zh", err->zh),
                        "no-store", false);
    if (rc < 0)
        return s_internal(conn, html);
    return s_send_free(conn, &out);
}

static int
s_not_found(s_out_t *out, bool html)
{
    if (html)
        return s_out_take(
            out, MHD_HTTP_NOT_FOUND,
            html_message_page("未找到", "未找到",
                              "您访问的页面不存在，或该信息未公示、已撤回、已过公示期。", "/"),
            s_html, "no-cache", false);
    return s_out_set(out, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}", 21, s_json, "no-cache",
                     false);
}

/* ---- The connection pool and the cache ---------------------------------------------- */

static db_t *
s_checkout(portal_t *self)
{
    pthread_mutex_lock(&self->pool_lock);
    for (;;) {
        for (int i = 0; i < self->nconn; i++)
            if (!self->busy[i]) {
                self->busy[i] = true;
                pthread_mutex_unlock(&self->pool_lock);
                return self->pool[i];
            }
        pthread_cond_wait(&self->pool_free, &self->pool_lock);
    }
}

static void
s_checkin(portal_t *self, db_t *db)
{
    pthread_mutex_lock(&self->pool_lock);
    for (int i = 0; i < self->nconn; i++)
        if (self->pool[i] == db)
            self->busy[i] = false;
    pthread_cond_signal(&self->pool_free);
    pthread_mutex_unlock(&self->pool_lock);
}

/* The data version: the database's snapshot (xmin:xmax:in-progress). It changes whenever
 * any transaction commits, so a page rendered under one snapshot text is what a fresh
 * query would return for as long as the text stays the same.
 *
 * A request needs a snapshot read that started after the request arrived (then every
 * commit it could have seen is in it). Requests do not each query: ver_thread reads the
 * snapshot while anyone waits and hands each read to every request that arrived before
 * it started, so under load one short query serves many requests, and at rest none run.
 * With max_stale_ms > 0, a read that started at most that long before the request will
 * do (no wait, no query): answers may then lag a commit by up to max_stale_ms.
 * Returns 0 with ver, or -1 (the read failed or took over 2 s: not cacheable now). */
static int
s_version(portal_t *self, char ver[S_VERSION_MAX])
{
    int64_t now = util_mono_ms();
    pthread_mutex_lock(&self->ver_lock);
    if (self->max_stale_ms > 0 && self->ver_done > 0 && self->ver_ok &&
        self->ver_read_ms >= now - self->max_stale_ms) {
        memcpy(ver, self->ver, S_VERSION_MAX);
        pthread_mutex_unlock(&self->ver_lock);
        return 0;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    uint64_t need = self->ver_started + 1; /* the next read to start, or a later one */
    self->ver_waiters++;
    pthread_cond_signal(&self->ver_wake);
    while (self->ver_done < need && !self->stop)
        if (pthread_cond_timedwait(&self->ver_ready, &self->ver_lock, &deadline) != 0)
            break;
    int rc = self->ver_done >= need && self->ver_ok ? 0 : -1;
    if (rc == 0)
        memcpy(ver, self->ver, S_VERSION_MAX);
    self->ver_waiters--;
    pthread_mutex_unlock(&self->ver_lock);
    return rc;
}

static void *
s_version_thread(void *arg)
{
    portal_t *self = arg;
    pthread_mutex_lock(&self->ver_lock);
    while (!self->stop) {
        if (self->ver_waiters == 0) {
            pthread_cond_wait(&self->ver_wake, &self->ver_lock);
            continue;
        }
        uint64_t seq = ++self->ver_started;
        pthread_mutex_unlock(&self->ver_lock);
        int64_t started_ms = util_mono_ms();
        char text[S_VERSION_MAX] = "";
        bool ok = false;
        PGresult *r = db_exec_prepared(self->ver_db, "pub_version", 0, NULL, NULL, NULL, 0);
        if (r && PQntuples(r) == 1 && (size_t)PQgetlength(r, 0, 0) < S_VERSION_MAX) {
            memcpy(text, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0) + 1);
            ok = true;
        }
        PQclear(r);
        pthread_mutex_lock(&self->ver_lock);
        self->ver_done = seq;
        self->ver_ok = ok;
        self->ver_read_ms = started_ms;
        memcpy(self->ver, text, S_VERSION_MAX);
        pthread_cond_broadcast(&self->ver_ready);
    }
    pthread_mutex_unlock(&self->ver_lock);
    return NULL;
}

/* The slot of key: the first S_COUNT_SLOTS hold search totals ("count" keys), shared by
 * every page of a search, so that the many pages do not push them out. */
static s_slot_t *
s_slot(portal_t *self, const char *key, uint64_t hash)
{
    if (strncmp(key, "count\x1f", 6) == 0)
        return &self->cache[hash % S_COUNT_SLOTS];
    return &self->cache[S_COUNT_SLOTS + hash % (S_CACHE_SLOTS - S_COUNT_SLOTS)];
}

static void
s_slot_clear(portal_t *self, s_slot_t *s)
{
    if (s->key) {
        self->cache_bytes -= s->out.len;
        free(s->key);
        s_out_clear(&s->out);
        s->key = NULL;
    }
}

/* Sends the kept answer for key under version, if there is one. Returns true when sent
 * (*rc then holds MHD's result). */
static bool
s_cache_send(portal_t *self, struct MHD_Connection *conn, const char *key, uint64_t hash,
             const char *ver, enum MHD_Result *rc)
{
    bool hit = false;
    pthread_mutex_lock(&self->cache_lock);
    s_slot_t *s = s_slot(self, key, hash);
    if (s->key && s->hash == hash && strcmp(s->key, key) == 0 && strcmp(s->version, ver) == 0) {
        *rc = s_send_out(conn, &s->out); /* copies the body */
        hit = true;
    }
    pthread_mutex_unlock(&self->cache_lock);
    return hit;
}

/* Copies the kept body for key under version into buf (len bytes, NUL-terminated).
 * Returns true when there was one that fits. */
static bool
s_cache_text(portal_t *self, const char *key, uint64_t hash, const char *ver, char *buf, size_t len)
{
    bool hit = false;
    pthread_mutex_lock(&self->cache_lock);
    s_slot_t *s = s_slot(self, key, hash);
    if (s->key && s->hash == hash && strcmp(s->key, key) == 0 && strcmp(s->version, ver) == 0 &&
        s->out.len < len) {
        memcpy(buf, s->out.body, s->out.len + 1);
        hit = true;
    }
    pthread_mutex_unlock(&self->cache_lock);
    return hit;
}

/* Keeps a copy of out for key under version (nothing when it does not fit). */
static void
s_cache_put(portal_t *self, const char *key, uint64_t hash, const char *ver, const s_out_t *out)
{
    if (out->len > S_CACHE_BODY_MAX)
        return;
    s_out_t copy = *out;
    char *k = strdup(key);
    if (!k ||
        s_out_set(&copy, out->status, out->body, out->len, out->type, out->cache, false) < 0) {
        free(k);
        return;
    }
    memcpy(copy.tag, out->tag, sizeof copy.tag);
    pthread_mutex_lock(&self->cache_lock);
    s_slot_t *s = s_slot(self, key, hash);
    s_slot_clear(self, s);
    if (self->cache_bytes + copy.len > S_CACHE_BYTES)
        /* Over budget: start again rather than track ages; pages are cheap to remake. */
        for (size_t i = 0; i < S_CACHE_SLOTS; i++)
            s_slot_clear(self, &self->cache[i]);
    s->key = k;
    s->hash = hash;
    snprintf(s->version, sizeof s->version, "%s", ver);
    s->out = copy;
    self->cache_bytes += copy.len;
    pthread_mutex_unlock(&self->cache_lock);
}

/* Renders an answer into out from db; returns 0, or -1 on a database failure (503). */
typedef int(s_render_fn)(portal_t *self, db_t *db, const void *arg, const char *ver, s_out_t *out);

/* Answers with fn's page for key: from the cache when the data has not changed since it
 * was rendered, else rendered now (and kept when the status is final: 200, 404, 410). */
static enum MHD_Result
s_serve(struct MHD_Connection *conn, portal_t *self, const char *key, bool html, s_render_fn *fn,
        const void *arg)
{
    char ver[S_VERSION_MAX];
    uint64_t hash = bus_hash(key, strlen(key));
    bool versioned = s_version(self, ver) == 0;
    enum MHD_Result rc;
    if (versioned && s_cache_send(self, conn, key, hash, ver, &rc))
        return rc;
    db_t *db = s_checkout(self);
    s_out_t out = {0};
    if (fn(self, db, arg, versioned ? ver : NULL, &out) < 0) {
        log_error("portal query failed", "error=%s", db_error(db));
        s_checkin(self, db);
        s_out_clear(&out);
        return html
                   ? s_send(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "<!DOCTYPE html><html lang=\"zh-CN\"><meta charset=\"utf-8\">"
                            "<title>服务暂不可用</title><h1>服务暂不可用，请稍后再试。</h1></html>",
                            s_html, "no-store")
                   : s_send(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"unavailable\"}",
                            s_json, "no-store");
    }
    s_checkin(self, db);
    if (!out.body)
        return s_internal(conn, html);
    if (versioned && (out.status == MHD_HTTP_OK || out.status == MHD_HTTP_NOT_FOUND ||
                      out.status == MHD_HTTP_GONE))
        s_cache_put(self, key, hash, ver, &out);
    return s_send_free(conn, &out);
}

/* ---- Search (GET /api/v1/decisions, GET /) ----------------------------------------- */

typedef struct {
    query_search_t q;
    bool html;
} s_search_arg_t;

/* The record as the public sees it: its body plus id and published_at. */
static json_t *
s_item(const char *id, const char *body, const char *published_at)
{
    json_t *o = json_loads(body, 0, NULL);
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_integer(strtoll(id, NULL, 10)));
    json_object_set_new(o, "published_at", json_string(published_at));
    return o;
}

/* [{code, name}] of every agency publication knows, by name; NULL on a database failure. */
static json_t *
s_agencies(db_t *db)
{
    PGresult *r = db_exec_prepared(db, "pub_agencies", 0, NULL, NULL, NULL, 0);
    if (!r)
        return NULL;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s}", "code", PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1)));
    PQclear(r);
    return a;
}

/* The number of published records matching q's filters: from the cache when counted
 * under the same data version (every page of a search shares it), else counted now.
 * Returns it, or -1 on a database failure. */
static long long
s_search_total(portal_t *self, db_t *db, const query_search_t *q, const char *const v[6],
               const char *ver)
{
    char key[S_KEY_MAX], text[32];
    snprintf(key, sizeof key, "count\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", q->party, q->uscc,
             q->agency, q->type, q->from, q->to);
    uint64_t hash = bus_hash(key, strlen(key));
    if (ver && s_cache_text(self, key, hash, ver, text, sizeof text))
        return strtoll(text, NULL, 10);
    PGresult *c = db_exec_prepared(db, "pub_count", 6, v, NULL, NULL, 0);
    if (!c)
        return -1;
    long long total = strtoll(PQgetvalue(c, 0, 0), NULL, 10);
    PQclear(c);
    s_out_t out = {0};
    snprintf(text, sizeof text, "%lld", total);
    if (ver && s_out_set(&out, MHD_HTTP_OK, text, strlen(text), s_json, "no-store", false) == 0)
        s_cache_put(self, key, hash, ver, &out);
    s_out_clear(&out);
    return total;
}

static int
s_render_search(portal_t *self, db_t *db, const void *argp, const char *ver, s_out_t *out)
{
    const s_search_arg_t *arg = argp;
    const query_search_t *q = &arg->q;
    char limit[8], offset[16];
    snprintf(limit, sizeof limit, "%d", q->size);
    snprintf(offset, sizeof offset, "%d", (q->page - 1) * q->size);
    const char *v[] = {q->party[0] ? q->party : NULL,
                       q->uscc[0] ? q->uscc : NULL,
                       q->agency[0] ? q->agency : NULL,
                       q->type[0] ? q->type : NULL,
                       q->from[0] ? q->from : NULL,
                       q->to[0] ? q->to : NULL,
                       limit,
                       offset};
    PGresult *r = db_exec_prepared(db, "pub_search", 8, v, NULL, NULL, 0);
    if (!r)
        return -1;
    json_t *items = json_array();
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++)
        json_array_append_new(
            items, s_item(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)));
    PQclear(r);
    /* A first page that is not full holds them all; else count (once per version). */
    long long total = q->page == 1 && rows < q->size ? rows : s_search_total(self, db, q, v, ver);
    if (total < 0) {
        json_decref(items);
        return -1;
    }
    json_t *result = json_pack("{s:i,s:i,s:I,s:o}", "page", q->page, "size", q->size, "total",
                               (json_int_t)total, "items", items);
    if (!arg->html)
        return s_out_json(out, MHD_HTTP_OK, result, "public, max-age=60", true), 0;
    json_t *agencies = s_agencies(db);
    if (!agencies) {
        json_decref(result);
        return -1;
    }
    s_out_take(out, MHD_HTTP_OK, page_search(q, agencies, result, NULL), s_html,
               "public, max-age=60", true);
    json_decref(agencies);
    json_decref(result);
    return 0;
}

/* The search form with a bad parameter's message: 400 (the agency list is the one thing
 * read from the database). */
static int
s_render_search_bad(portal_t *self, db_t *db, const void *argp, const char *ver, s_out_t *out)
{
    (void)self;
    (void)ver;
    const query_err_t *err = argp;
    json_t *agencies = s_agencies(db);
    if (!agencies)
        return -1;
    s_out_take(out, MHD_HTTP_BAD_REQUEST, page_search(NULL, agencies, NULL, err->zh), s_html,
               "no-store", false);
    json_decref(agencies);
    return 0;
}

static enum MHD_Result
s_search(struct MHD_Connection *conn, portal_t *self, bool html)
{
    s_params_t p;
    s_params(conn, &p);
    s_search_arg_t arg = {.html = html};
    query_err_t err;
    int rc =
        html ? query_search_form(p.kv, p.n, &arg.q, &err) : query_search(p.kv, p.n, &arg.q, &err);
    if (rc < 0) {
        if (!html)
            return s_bad(conn, &err, false);
        db_t *db = s_checkout(self);
        s_out_t out = {0};
        int r = s_render_search_bad(self, db, &err, NULL, &out);
        s_checkin(self, db);
        if (r < 0 || !out.body) {
            s_out_clear(&out);
            return s_bad(conn, &err, true);
        }
        return s_send_free(conn, &out);
    }
    /* The key: the validated search, so equal searches share a page whatever their
     * parameter order or spelling. */
    char key[S_KEY_MAX];
    const query_search_t *q = &arg.q;
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%d",
             html ? "search.html" : "search.json", q->party, q->uscc, q->agency, q->type, q->from,
             q->to, q->page, q->size);
    return s_serve(conn, self, key, html, s_render_search, &arg);
}

/* Query string parameters where none are expected: refused rather than ignored.
 * Returns 0, or -1 with err naming the first. */
static int
s_no_params(struct MHD_Connection *conn, query_err_t *err)
{
    s_params_t p;
    s_params(conn, &p);
    if (p.n == 0)
        return 0;
    memset(err, 0, sizeof *err);
    size_t n = p.kv[0].key_len < sizeof err->param - 1 ? p.kv[0].key_len : sizeof err->param - 1;
    for (size_t i = 0; i < n; i++)
        err->param[i] = p.kv[0].key[i] >= 0x20 && p.kv[0].key[i] < 0x7f ? p.kv[0].key[i] : '?';
    err->param[n] = '\0';
    snprintf(err->reason, sizeof err->reason, "unknown parameter");
    snprintf(err->zh, sizeof err->zh, "参数“%s”：不支持该参数", err->param);
    return -1;
}

/* ---- One decision (GET /api/v1/decisions/<id>, GET /decisions/<id>) ---------------- */

typedef struct {
    char id[24];
    bool html;
} s_detail_arg_t;

static int
s_render_detail(portal_t *self, db_t *db, const void *argp, const char *ver, s_out_t *out)
{
    (void)self;
    (void)ver;
    const s_detail_arg_t *arg = argp;
    PGresult *r = db_exec_prepared(db, "pub_detail", 1, (const char *[]){arg->id}, NULL, NULL, 0);
    if (!r)
        return -1;
    const char *state = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
    if (strcmp(state, "published") == 0) {
        json_t *rec = s_item(arg->id, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        if (arg->html) {
            s_out_take(out, MHD_HTTP_OK, page_decision(rec), s_html, "public, max-age=300", true);
            json_decref(rec);
        } else
            s_out_json(out, MHD_HTTP_OK, rec, "public, max-age=300", true);
    } else if (strcmp(state, "withdrawn") == 0 && !PQgetisnull(r, 0, 2)) {
        /* 行政处罚法 2021 art. 48: withdrawn, with the reason shown: 410 Gone, the page
         * giving the reason and nothing of the decision, the API the same as JSON. */
        if (arg->html)
            s_out_take(out, MHD_HTTP_GONE,
                       page_withdrawn(arg->id, PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4),
                                      PQgetvalue(r, 0, 5)),
                       s_html, "public, max-age=300", false);
        else
            s_out_json(out, MHD_HTTP_GONE,
                       json_pack("{s:s,s:I,s:s,s:s,s:s}", "error", "withdrawn", "id",
                                 (json_int_t)strtoll(arg->id, NULL, 10), "kind",
                                 PQgetvalue(r, 0, 3), "reason", PQgetvalue(r, 0, 4), "withdrawn_on",
                                 PQgetvalue(r, 0, 5)),
                       "public, max-age=300", true);
    } else
        s_not_found(out, arg->html);
    PQclear(r);
    return 0;
}

static enum MHD_Result
s_detail(struct MHD_Connection *conn, portal_t *self, const char *idtext, bool html)
{
    int64_t id;
    query_err_t err;
    if (query_id(idtext, strlen(idtext), &id, &err) < 0 || s_no_params(conn, &err) < 0)
        return s_bad(conn, &err, html);
    s_detail_arg_t arg = {.html = html};
    snprintf(arg.id, sizeof arg.id, "%" PRId64, id);
    char key[64];
    snprintf(key, sizeof key, "%s\x1f%s", html ? "detail.html" : "detail.json", arg.id);
    return s_serve(conn, self, key, html, s_render_detail, &arg);
}

/* ---- An agency (事前公开: GET /api/v1/agencies/<code>, GET /agencies/<code>) -------- */

typedef struct {
    char code[19];
    char today[11];
    bool html;
} s_agency_arg_t;

/* An agency and its lists, active entries only, each list ordered by key. */
static int
s_render_agency(portal_t *self, db_t *db, const void *argp, const char *ver, s_out_t *out)
{
    (void)self;
    (void)ver;
    const s_agency_arg_t *arg = argp;
    PGresult *r =
        db_exec_prepared(db, "pub_agency_page", 1, (const char *[]){arg->code}, NULL, NULL, 0);
    if (!r)
        return -1;
    json_t *agency = NULL, *lists = json_object();
    for (int i = 0; i < PQntuples(r); i++) {
        const char *list = PQgetvalue(r, i, 0);
        json_t *e = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        if (!e)
            continue;
        if (strcmp(list, "agency") == 0) {
            json_decref(agency);
            agency = e;
            continue;
        }
        json_t *a = json_object_get(lists, list);
        if (!a) {
            a = json_array();
            json_object_set_new(lists, list, a);
        }
        json_array_append_new(a, e);
    }
    PQclear(r);
    if (!agency) {
        json_decref(lists);
        return s_not_found(out, arg->html), 0;
    }
    json_t *doc = json_pack("{s:s,s:o,s:o}", "code", arg->code, "agency", agency, "lists", lists);
    if (arg->html) {
        s_out_take(out, MHD_HTTP_OK, page_agency(doc, arg->today), s_html, "public, max-age=300",
                   true);
        json_decref(doc);
    } else
        s_out_json(out, MHD_HTTP_OK, doc, "public, max-age=300", true);
    return 0;
}

static void
s_today(char buf[11])
{
    date_format(date_from_unix_cst((int64_t)time(NULL)), buf);
}

static enum MHD_Result
s_agency(struct MHD_Connection *conn, portal_t *self, const char *codetext, bool html)
{
    s_agency_arg_t arg = {.html = html};
    query_err_t err;
    if (query_agency(codetext, strlen(codetext), arg.code, &err) < 0 || s_no_params(conn, &err) < 0)
        return s_bad(conn, &err, html);
    s_today(arg.today);
    char key[64];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", html ? "agency.html" : "agency.json", arg.code,
             arg.today);
    return s_serve(conn, self, key, html, s_render_agency, &arg);
}

/* ---- Officer check (事中公示: GET /api/v1/officers?cert_no=, GET /officers) -------- */

typedef struct {
    char cert[QUERY_CERT_MAX + 1];
    bool html;
} s_officer_arg_t;

static int
s_render_officer(portal_t *self, db_t *db, const void *argp, const char *ver, s_out_t *out)
{
    (void)self;
    (void)ver;
    const s_officer_arg_t *arg = argp;
    PGresult *r =
        db_exec_prepared(db, "pub_officer", 1, (const char *[]){arg->cert}, NULL, NULL, 0);
    if (!r)
        return -1;
    json_t *o;
    if (PQntuples(r) == 0)
        o = json_pack("{s:s,s:s}", "cert_no", arg->cert, "status", "unknown");
    else
        o = json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s,s:s}", "cert_no", arg->cert, "status",
                      PQgetvalue(r, 0, 0), "name", PQgetvalue(r, 0, 1), "agency", "code",
                      PQgetvalue(r, 0, 2), "name", PQgetvalue(r, 0, 3), "area", PQgetvalue(r, 0, 4),
                      "valid_from", PQgetvalue(r, 0, 5), "valid_to", PQgetvalue(r, 0, 6));
    PQclear(r);
    if (arg->html) {
        s_out_take(out, MHD_HTTP_OK, page_officer(arg->cert, o, NULL), s_html, "public, max-age=60",
                   true);
        json_decref(o);
    } else
        s_out_json(out, MHD_HTTP_OK, o, "public, max-age=60", true);
    return 0;
}

/* 统计年报 (stats.h), sent as every other answer: a 200 cacheable with a strong ETag. */
static enum MHD_Result
s_statistics(struct MHD_Connection *conn, portal_t *self, const char *url)
{
    s_params_t p;
    s_params(conn, &p);
    stats_answer_t a;
    db_t *db = s_checkout(self);
    stats_answer(db, url, p.kv, p.n, &a);
    s_checkin(self, db);
    bool ok = a.status == MHD_HTTP_OK;
    s_out_t out = {0};
    if (s_out_take(&out, a.status, a.body, a.html ? s_html : s_json,
                   ok ? "public, max-age=300" : "no-store", ok) < 0)
        return s_internal(conn, a.html);
    return s_send_free(conn, &out);
}

static enum MHD_Result
s_officer(struct MHD_Connection *conn, portal_t *self, bool html)
{
    s_params_t p;
    s_params(conn, &p);
    s_officer_arg_t arg = {.html = html};
    query_err_t err;
    s_out_t out = {0};
    if (html && p.n == 0) /* the form alone */
        return s_out_take(&out, MHD_HTTP_OK, page_officer(NULL, NULL, NULL), s_html,
                          "public, max-age=300", true) < 0
                   ? s_internal(conn, true)
                   : s_send_free(conn, &out);
    if (query_officer(p.kv, p.n, arg.cert, &err) < 0) {
        if (!html)
            return s_bad(conn, &err, false);
        return s_out_take(&out, MHD_HTTP_BAD_REQUEST, page_officer(NULL, NULL, err.zh), s_html,
                          "no-store", false) < 0
                   ? s_internal(conn, true)
                   : s_send_free(conn, &out);
    }
    char today[11], key[QUERY_CERT_MAX + 64];
    s_today(today); /* valid or expired changes with the day */
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", html ? "officer.html" : "officer.json", arg.cert,
             today);
    return s_serve(conn, self, key, html, s_render_officer, &arg);
}

/* ---- Routing ------------------------------------------------------------------------ */

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    portal_t *self = cls;
    if (!*con_cls) { /* first call: headers only */
        *con_cls = self;
        return MHD_YES;
    }
    if (*upload_size) /* a GET with a body: ignore it */
        *upload_size = 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return rc;
    }
    static const char prefix[] = "/api/v1/decisions";
    size_t plen = sizeof prefix - 1;
    if (strcmp(url, prefix) == 0)
        return s_search(conn, self, false);
    if (strncmp(url, prefix, plen) == 0 && url[plen] == '/')
        return s_detail(conn, self, url + plen + 1, false);
    static const char agencies[] = "/api/v1/agencies/";
    if (strncmp(url, agencies, sizeof agencies - 1) == 0)
        return s_agency(conn, self, url + sizeof agencies - 1, false);
    if (stats_route(url)) /* 统计年报: /api/v1/statistics and /statistics (stats.h) */
        return s_statistics(conn, self, url);
    if (strcmp(url, "/api/v1/officers") == 0)
        return s_officer(conn, self, false);
    if (strcmp(url, "/healthz") == 0)
        return s_send(conn, MHD_HTTP_OK, "{\"ok\":true}", s_json, "no-store");
    if (strncmp(url, "/api/", 5) == 0)
        return s_send(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}", s_json, "no-cache");
    /* The HTML pages (portal.h). */
    if (strcmp(url, "/") == 0)
        return s_search(conn, self, true);
    if (strncmp(url, "/decisions/", 11) == 0)
        return s_detail(conn, self, url + 11, true);
    if (strncmp(url, "/agencies/", 10) == 0)
        return s_agency(conn, self, url + 10, true);
    if (strcmp(url, "/officers") == 0)
        return s_officer(conn, self, true);
    s_out_t out = {0};
    if (s_not_found(&out, true) < 0)
        return s_internal(conn, true);
    return s_send_free(conn, &out);
}

static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[256];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    log_warn("portal http", "detail=%s", buf);
}

static int
s_prepare(db_t *db)
{
    /* Only published records: the one condition every public read starts from. */
#define S_FILTER                                                                                   \
    "state = 'published' AND ($1::text IS NULL OR strpos(party_name, $1) > 0) "                    \
    "AND ($2::text IS NULL OR party_uscc = $2) AND ($3::text IS NULL OR agency = $3) "             \
    "AND ($4::text IS NULL OR type = $4) AND ($5::date IS NULL OR decision_date >= $5) "           \
    "AND ($6::date IS NULL OR decision_date <= $6)"
    int rc = 0;
    /* The page, and the total apart (s_search_total): a count(*) OVER () here made every
     * matching row be read in the index's order, ~40 ms for 10,000 penalties. */
    rc |= db_prepare(db, "pub_search",
                     "SELECT id, body::text, to_char(published_at AT TIME ZONE 'Asia/Shanghai', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS+08:00') FROM publication.record WHERE " S_FILTER
                     " ORDER BY decision_date DESC, id DESC LIMIT $7 OFFSET $8",
                     8);
    rc |= db_prepare(db, "pub_count", "SELECT count(*) FROM publication.record WHERE " S_FILTER, 6);
    rc |= db_prepare(db, "pub_detail",
                     "SELECT state, body::text, to_char(published_at AT TIME ZONE "
                     "'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS+08:00'), withdrawn_kind, "
                     "withdrawn_reason, withdrawn_on::text FROM publication.record WHERE id = $1",
                     1);
    rc |= stats_prepare(db); /* 统计年报 (stats.h) */
    rc |= db_prepare(db, "pub_agency_page",
                     "SELECT list, entry::text FROM publication.registry_entry "
                     "WHERE agency = $1 AND active ORDER BY list, key",
                     1);
    rc |= db_prepare(db, "pub_agencies",
                     "SELECT code, name FROM publication.agency ORDER BY name, code", 0);
    /* The data version of the cache: see s_version. */
    rc |= db_prepare(db, "pub_version", "SELECT pg_current_snapshot()::text", 0);
    /* valid: active and today (CST) within its validity; expired: known but not valid. */
    rc |= db_prepare(db, "pub_officer",
                     "SELECT CASE WHEN o.active AND (now() AT TIME ZONE 'Asia/Shanghai')::date "
                     "BETWEEN o.valid_from AND o.valid_to THEN 'valid' ELSE 'expired' END, "
                     "o.name, o.agency, coalesce(a.name, ''), o.area, o.valid_from::text, "
                     "o.valid_to::text FROM publication.officer o LEFT JOIN publication.agency a "
                     "ON a.code = o.agency WHERE o.cert_no = $1 ORDER BY 1 DESC, o.valid_to DESC "
                     "LIMIT 1",
                     1);
#undef S_FILTER
    return rc ? -1 : 0;
}

portal_t *
portal_new(const char *pg_url, const char *bind_addr, int port, char *err, size_t errlen)
{
    return portal_new_opts(pg_url, bind_addr, port, NULL, err, errlen);
}

portal_t *
portal_new_opts(const char *pg_url, const char *bind_addr, int port, const portal_opts_t *opts,
                char *err, size_t errlen)
{
    int threads = opts ? opts->threads : PORTAL_THREADS_DEFAULT;
    portal_t *self = calloc(1, sizeof *self);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (threads < 1 || threads > PORTAL_THREADS_MAX)
        threads = PORTAL_THREADS_DEFAULT;
    if (opts && opts->max_stale_ms > 0)
        self->max_stale_ms =
            opts->max_stale_ms < PORTAL_MAX_STALE_MS ? opts->max_stale_ms : PORTAL_MAX_STALE_MS;
    pthread_mutex_init(&self->pool_lock, NULL);
    pthread_cond_init(&self->pool_free, NULL);
    pthread_mutex_init(&self->cache_lock, NULL);
    pthread_mutex_init(&self->ver_lock, NULL);
    pthread_cond_init(&self->ver_wake, NULL);
    pthread_cond_init(&self->ver_ready, NULL);
    self->pool = calloc((size_t)threads, sizeof *self->pool);
    self->busy = calloc((size_t)threads, sizeof *self->busy);
    self->cache = calloc(S_CACHE_SLOTS, sizeof *self->cache);
    if (!self->pool || !self->busy || !self->cache) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "bind address %s is not an IPv4 address", bind_addr);
        goto fail;
    }
    if (!(self->ver_db = db_new(pg_url, "sx-publication-portal-version")) ||
        db_connect(self->ver_db, 30000) < 0 ||
        db_prepare(self->ver_db, "pub_version", "SELECT pg_current_snapshot()::text", 0) < 0) {
        snprintf(err, errlen, "postgres: %s", self->ver_db ? db_error(self->ver_db) : "bad URL");
        goto fail;
    }
    db_set_statement_timeout(self->ver_db, 2000);
    if (pthread_create(&self->ver_thread, NULL, s_version_thread, self) != 0) {
        snprintf(err, errlen, "cannot start a thread");
        goto fail;
    }
    self->ver_running = true;
    /* One connection per thread of MHD's pool: a handler never waits for another's. */
    for (int i = 0; i < threads; i++) {
        db_t *db = db_new(pg_url, "sx-publication-portal");
        self->pool[self->nconn++] = db;
        if (!db || db_connect(db, 30000) < 0 || s_prepare(db) < 0) {
            snprintf(err, errlen, "postgres: %s", db ? db_error(db) : "bad URL");
            goto fail;
        }
        db_set_statement_timeout(db, 5000);
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        flags |= MHD_USE_EPOLL;
    self->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, s_handle, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log,
        self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)S_CONN_LIMIT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)S_CONN_TIMEOUT, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, errlen, "cannot listen on %s:%d", bind_addr, port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : port;
    return self;
fail:
    portal_destroy(&self);
    return NULL;
}

int
portal_port(const portal_t *self)
{
    return self->port;
}

void
portal_destroy(portal_t **self_p)
{
    if (self_p && *self_p) {
        portal_t *self = *self_p;
        if (self->daemon)
            MHD_stop_daemon(self->daemon);
        if (self->ver_running) {
            pthread_mutex_lock(&self->ver_lock);
            self->stop = true;
            pthread_cond_broadcast(&self->ver_wake);
            pthread_cond_broadcast(&self->ver_ready);
            pthread_mutex_unlock(&self->ver_lock);
            pthread_join(self->ver_thread, NULL);
        }
        db_destroy(&self->ver_db);
        for (int i = 0; i < self->nconn; i++)
            db_destroy(&self->pool[i]);
        if (self->cache)
            for (size_t i = 0; i < S_CACHE_SLOTS; i++)
                s_slot_clear(self, &self->cache[i]);
        free(self->cache);
        free(self->pool);
        free(self->busy);
        pthread_mutex_destroy(&self->pool_lock);
        pthread_cond_destroy(&self->pool_free);
        pthread_mutex_destroy(&self->cache_lock);
        pthread_mutex_destroy(&self->ver_lock);
        pthread_cond_destroy(&self->ver_wake);
        pthread_cond_destroy(&self->ver_ready);
        free(self);
        *self_p = NULL;
    }
}
