/* portal: libmicrohttpd handlers for the public API. */
#include "portal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "bus.h"
#include "date.h"
#include "db.h"
#include "log.h"
#include "query.h"

#define S_CONN_LIMIT   512
#define S_CONN_MEMORY  (64 * 1024) /* per connection: URLs beyond it are refused by MHD */
#define S_CONN_TIMEOUT 15

struct portal {
    struct MHD_Daemon *daemon; /* the listener; its one thread runs every handler */
    db_t *db;                  /* used by that thread only */
    int port;
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

/* Sends a response; body is copied. etag non-NULL adds ETag and answers If-None-Match. */
static enum MHD_Result
s_send(struct MHD_Connection *conn, unsigned int status, const char *body, const char *cache,
       bool etag)
{
    char tag[24] = "";
    if (etag) {
        snprintf(tag, sizeof tag, "\"%016" PRIx64 "\"", bus_hash(body, strlen(body)));
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
        if (inm && strstr(inm, tag)) {
            status = MHD_HTTP_NOT_MODIFIED;
            body = "";
        }
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (tag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, tag);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_send_json(struct MHD_Connection *conn, unsigned int status, json_t *o, const char *cache,
            bool etag)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return s_send(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"internal\"}", "no-store",
                      false);
    enum MHD_Result rc = s_send(conn, status, text, cache, etag);
    free(text);
    return rc;
}

static enum MHD_Result
s_bad(struct MHD_Connection *conn, const query_err_t *err)
{
    return s_send_json(conn, MHD_HTTP_BAD_REQUEST,
                       json_pack("{s:s,s:s,s:s}", "error", "bad_parameter", "parameter", err->param,
                                 "reason", err->reason),
                       "no-store", false);
}

static enum MHD_Result
s_unavailable(struct MHD_Connection *conn, portal_t *self)
{
    log_error("portal query failed", "error=%s", db_error(self->db));
    return s_send(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"error\":\"unavailable\"}", "no-store",
                  false);
}

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

static enum MHD_Result
s_search(struct MHD_Connection *conn, portal_t *self)
{
    s_params_t p = {0};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, s_param, &p);
    query_search_t q;
    query_err_t err;
    if (query_search(p.kv, p.n, &q, &err) < 0)
        return s_bad(conn, &err);
    char limit[8], offset[16];
    snprintf(limit, sizeof limit, "%d", q.size);
    snprintf(offset, sizeof offset, "%d", (q.page - 1) * q.size);
    const char *v[] = {q.party[0] ? q.party : NULL,
                       q.uscc[0] ? q.uscc : NULL,
                       q.agency[0] ? q.agency : NULL,
                       q.type[0] ? q.type : NULL,
                       q.from[0] ? q.from : NULL,
                       q.to[0] ? q.to : NULL,
                       limit,
                       offset};
    PGresult *r = db_exec_prepared(self->db, "pub_search", 8, v, NULL, NULL, 0);
    if (!r)
        return s_unavailable(conn, self);
    json_t *items = json_array();
    long long total = 0;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        json_array_append_new(
            items, s_item(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)));
        total = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    }
    PQclear(r);
    if (rows == 0 && q.page > 1) {
        /* Past the last page: the total is still worth telling. */
        PGresult *c = db_exec_prepared(self->db, "pub_count", 6, v, NULL, NULL, 0);
        if (!c) {
            json_decref(items);
            return s_unavailable(conn, self);
        }
        total = strtoll(PQgetvalue(c, 0, 0), NULL, 10);
        PQclear(c);
    }
    return s_send_json(conn, MHD_HTTP_OK,
                       json_pack("{s:i,s:i,s:I,s:o}", "page", q.page, "size", q.size, "total",
                                 (json_int_t)total, "items", items),
                       "public, max-age=60", true);
}

/* Query string parameters where none are expected: refused rather than ignored.
 * Returns 0, or -1 with err naming the first. */
static int
s_no_params(struct MHD_Connection *conn, query_err_t *err)
{
    s_params_t p = {0};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, s_param, &p);
    if (p.n == 0)
        return 0;
    size_t n = p.kv[0].key_len < sizeof err->param - 1 ? p.kv[0].key_len : sizeof err->param - 1;
    for (size_t i = 0; i < n; i++)
        err->param[i] = p.kv[0].key[i] >= 0x20 && p.kv[0].key[i] < 0x7f ? p.kv[0].key[i] : '?';
    err->param[n] = '\0';
    snprintf(err->reason, sizeof err->reason, "unknown parameter");
    return -1;
}

static enum MHD_Result
s_detail(struct MHD_Connection *conn, portal_t *self, const char *idtext)
{
    int64_t id;
    query_err_t err;
    if (query_id(idtext, strlen(idtext), &id, &err) < 0)
        return s_bad(conn, &err);
    if (s_no_params(conn, &err) < 0)
        return s_bad(conn, &err);
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    PGresult *r = db_exec_prepared(self->db, "pub_detail", 1, (const char *[]){ids}, NULL, NULL, 0);
    if (!r)
        return s_unavailable(conn, self);
    enum MHD_Result rc;
    const char *state = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
    if (strcmp(state, "published") == 0)
        rc = s_send_json(conn, MHD_HTTP_OK, s_item(ids, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)),
                         "public, max-age=300", true);
    else if (strcmp(state, "withdrawn") == 0 && !PQgetisnull(r, 0, 2))
        /* 行政处罚法 2021 art. 48: withdrawn, with the reason shown. */
        rc = s_send_json(conn, MHD_HTTP_GONE,
                         json_pack("{s:s,s:I,s:s,s:s,s:s}", "error", "withdrawn", "id",
                                   (json_int_t)id, "kind", PQgetvalue(r, 0, 3), "reason",
                                   PQgetvalue(r, 0, 4), "withdrawn_on", PQgetvalue(r, 0, 5)),
                         "public, max-age=300", true);
    else
        rc = s_send(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}", "no-cache", false);
    PQclear(r);
    return rc;
}

/* 事前公开: an agency and its lists, active entries only, each list ordered by key. */
static enum MHD_Result
s_agency(struct MHD_Connection *conn, portal_t *self, const char *codetext)
{
    char code[19];
    query_err_t err;
    if (query_agency(codetext, strlen(codetext), code, &err) < 0 || s_no_params(conn, &err) < 0)
        return s_bad(conn, &err);
    PGresult *r =
        db_exec_prepared(self->db, "pub_agency_page", 1, (const char *[]){code}, NULL, NULL, 0);
    if (!r)
        return s_unavailable(conn, self);
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
        return s_send(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}", "no-cache", false);
    }
    return s_send_json(conn, MHD_HTTP_OK,
                       json_pack("{s:s,s:o,s:o}", "code", code, "agency", agency, "lists", lists),
                       "public, max-age=300", true);
}

/* 统计年报: an agency's figures for a closed half-year or year, from its records. */
static enum MHD_Result
s_stats(struct MHD_Connection *conn, portal_t *self)
{
    s_params_t p = {0};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, s_param, &p);
    query_stats_t q;
    query_err_t err;
    if (query_stats(p.kv, p.n, date_from_unix_cst(time(NULL)), &q, &err) < 0)
        return s_bad(conn, &err);
    PGresult *r = db_exec_prepared(self->db, "pub_stats", 3,
                                   (const char *[]){q.agency, q.from, q.to}, NULL, NULL, 0);
    if (!r)
        return s_unavailable(conn, self);
    json_t *by = json_object();
    static const char *const cols[] = {"decisions", "published", "on_time", "late",
                                       "overdue",   "withdrawn", "pending"};
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = json_object();
        for (int c = 0; c < 7; c++)
            json_object_set_new(o, cols[c],
                                json_integer(strtoll(PQgetvalue(r, i, c + 1), NULL, 10)));
        json_object_set_new(o, "fines", json_string(PQgetvalue(r, i, 8)));
        json_object_set_new(o, "confiscations", json_string(PQgetvalue(r, i, 9)));
        json_object_set_new(by, PQgetvalue(r, i, 0), o);
    }
    PQclear(r);
    return s_send_json(conn, MHD_HTTP_OK,
                       json_pack("{s:s,s:{s:s,s:s},s:o}", "agency", q.agency, "period", "from",
                                 q.from, "to", q.to, "by_type", by),
                       "public, max-age=3600", true);
}

/* 事中公示: anyone can check an officer's certificate number. */
static enum MHD_Result
s_officer(struct MHD_Connection *conn, portal_t *self)
{
    s_params_t p = {0};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, s_param, &p);
    char cert[QUERY_CERT_MAX + 1];
    query_err_t err;
    if (query_officer(p.kv, p.n, cert, &err) < 0)
        return s_bad(conn, &err);
    PGresult *r =
        db_exec_prepared(self->db, "pub_officer", 1, (const char *[]){cert}, NULL, NULL, 0);
    if (!r)
        return s_unavailable(conn, self);
    json_t *o;
    if (PQntuples(r) == 0)
        o = json_pack("{s:s,s:s}", "cert_no", cert, "status", "unknown");
    else
        o = json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s,s:s}", "cert_no", cert, "status",
                      PQgetvalue(r, 0, 0), "name", PQgetvalue(r, 0, 1), "agency", "code",
                      PQgetvalue(r, 0, 2), "name", PQgetvalue(r, 0, 3), "area", PQgetvalue(r, 0, 4),
                      "valid_from", PQgetvalue(r, 0, 5), "valid_to", PQgetvalue(r, 0, 6));
    PQclear(r);
    return s_send_json(conn, MHD_HTTP_OK, o, "public, max-age=60", true);
}

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
        return s_search(conn, self);
    if (strncmp(url, prefix, plen) == 0 && url[plen] == '/')
        return s_detail(conn, self, url + plen + 1);
    static const char agencies[] = "/api/v1/agencies/";
    if (strncmp(url, agencies, sizeof agencies - 1) == 0)
        return s_agency(conn, self, url + sizeof agencies - 1);
    if (strcmp(url, "/api/v1/statistics") == 0)
        return s_stats(conn, self);
    if (strcmp(url, "/api/v1/officers") == 0)
        return s_officer(conn, self);
    if (strcmp(url, "/healthz") == 0)
        return s_send(conn, MHD_HTTP_OK, "{\"ok\":true}", "no-store", false);
    return s_send(conn, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}", "no-cache", false);
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
    rc |= db_prepare(db, "pub_search",
                     "SELECT id, body::text, to_char(published_at AT TIME ZONE 'Asia/Shanghai', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS+08:00'), count(*) OVER () "
                     "FROM publication.record WHERE " S_FILTER
                     " ORDER BY decision_date DESC, id DESC LIMIT $7 OFFSET $8",
                     8);
    rc |= db_prepare(db, "pub_count", "SELECT count(*) FROM publication.record WHERE " S_FILTER, 6);
    rc |= db_prepare(db, "pub_detail",
                     "SELECT state, body::text, to_char(published_at AT TIME ZONE "
                     "'Asia/Shanghai', 'YYYY-MM-DD\"T\"HH24:MI:SS+08:00'), withdrawn_kind, "
                     "withdrawn_reason, withdrawn_on::text FROM publication.record WHERE id = $1",
                     1);
    /* Publication on time: published (CST day) on or before due_on. Amounts in 万元. */
    rc |= db_prepare(
        db, "pub_stats",
        "SELECT type, count(*), "
        "count(*) FILTER (WHERE published_at IS NOT NULL), "
        "count(*) FILTER (WHERE (published_at AT TIME ZONE 'Asia/Shanghai')::date <= due_on), "
        "count(*) FILTER (WHERE (published_at AT TIME ZONE 'Asia/Shanghai')::date > due_on), "
        "count(*) FILTER (WHERE overdue), count(*) FILTER (WHERE state = 'withdrawn'), "
        "count(*) FILTER (WHERE state = 'draft'), "
        "coalesce(sum((body->>'fine')::numeric), 0)::text, "
        "coalesce(sum((body->>'confiscation')::numeric), 0)::text "
        "FROM publication.record WHERE agency = $1 AND decision_date BETWEEN $2::date AND "
        "$3::date GROUP BY type ORDER BY type",
        3);
    rc |= db_prepare(db, "pub_agency_page",
                     "SELECT list, entry::text FROM publication.registry_entry "
                     "WHERE agency = $1 AND active ORDER BY list, key",
                     1);
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
    portal_t *self = calloc(1, sizeof *self);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "bind address %s is not an IPv4 address", bind_addr);
        goto fail;
    }
    if (!(self->db = db_new(pg_url, "sx-publication-portal")) || db_connect(self->db, 30000) < 0 ||
        s_prepare(self->db) < 0) {
        snprintf(err, errlen, "postgres: %s", self->db ? db_error(self->db) : "bad URL");
        goto fail;
    }
    db_set_statement_timeout(self->db, 5000);
    self->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, s_handle,
        self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)S_CONN_LIMIT,
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
        db_destroy(&self->db);
        free(self);
        *self_p = NULL;
    }
}
