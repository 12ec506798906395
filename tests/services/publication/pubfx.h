/* pubfx: the fixture publication's service tests share (included by each test_*.c that
 * needs the database; one binary each). A fresh database with publication's schema (bus
 * and publication migrations) and every prepared statement of the service, the workday
 * calendar, and the portal listening on a free loopback port; events are built as
 * envelopes from JSON and handed to the handler of their stream in a committed
 * transaction, as common/bus does; what publication writes is read back with SQL, what it
 * shows through real HTTP. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../../../services/publication/events.h"
#include "../../../services/publication/portal.h"
#include "../../../services/publication/stats.h"
#include "../../../services/publication/workflow.h"
#include "bus.h"
#include "jsonmp.h"
#include "tsupport.h"

#define AGENCY   "11620200013926143G"
#define AGENCY_B "11330400MB00000019"
#define ORG_USCC "91620200MA71234563"

/* 2026-03-15 12:00 China time, in unix ms. */
#define AT_MARCH 1773547200000LL

#define PUBFX_EVENTS_MAX 128

/* A party, as case events carry it. */
#define PUBFX_PERSON                                                                               \
    "{\"kind\":\"person\",\"name\":\"张三丰\",\"id_type\":\"idcard\","                          \
    "\"id_no\":\"62020019800101001X\"}"
#define PUBFX_ORG                                                                                  \
    "{\"kind\":\"org\",\"name\":\"嘉峪关某某商贸有限公司\",\"id_type\":\"uscc\","       \
    "\"id_no\":\"" ORG_USCC "\"}"

typedef struct {
    char topic[128];
    char json[2048];
    int64_t at;
} pubfx_ev_t;

typedef struct {
    char *url;
    db_t *db;
    workday_t *cal;
    publication_t app;
    portal_t *portal;
    int64_t at_ms; /* the envelopes' `at` of pubfx_event (unix ms) */
    bool keep;     /* pubfx_event keeps every event in fed, to deliver them all again */
    pubfx_ev_t fed[PUBFX_EVENTS_MAX];
    int nfed;
} pubfx_t;

/* A fresh database named after db_name, migrated and prepared; the portal started. */
static pubfx_t *
pubfx_new(const char *db_name, const char *app_name)
{
    pubfx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    char err[512], dir[4096];
    fx->url = ts_fresh_db(db_name);
    fx->db = db_new(fx->url, app_name);
    assert_int_equal(db_connect(fx->db, 5000), 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    assert_true(bus_migrate(fx->db, PUB_SCHEMA, dir) >= 0);
    snprintf(dir, sizeof dir, "%s/schemas/sql/publication", ts_env("SX_TOP"));
    if (db_migrate(fx->db, PUB_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(fx->db));
    assert_int_equal(events_prepare(fx->db), 0);
    assert_int_equal(events_prepare_stats(fx->db), 0);
    assert_int_equal(workflow_prepare(fx->db), 0);
    assert_int_equal(stats_prepare(fx->db), 0);
    fx->cal = workday_load_default(err, sizeof err);
    assert_non_null(fx->cal);
    fx->app.cal = fx->cal;
    fx->portal = portal_new(fx->url, "127.0.0.1", 0, err, sizeof err);
    if (!fx->portal)
        fail_msg("portal: %s", err);
    fx->at_ms = AT_MARCH;
    return fx;
}

static void
pubfx_free(pubfx_t *fx)
{
    portal_destroy(&fx->portal);
    db_destroy(&fx->db);
    workday_destroy(&fx->cal);
    free(fx->url);
    free(fx);
}

/* The group teardown of a test whose setup left a pubfx_new in *state. */
static int
pubfx_teardown(void **state)
{
    pubfx_free(*state);
    return 0;
}

/* Hands one event (data as JSON, envelope time at) to the handler of its stream in its own
 * transaction, as the bus subscriber does: review.* and record.* (from review) to the
 * statistics handler, the rest (from intake) to events_handle. */
static void
pubfx_deliver(pubfx_t *fx, const char *topic, const char *json, int64_t at)
{
    msgpack_sbuffer data, env;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&env);
    jsonmp_err_t jerr = {0};
    if (jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr) != 0)
        fail_msg("json: %s", jerr.reason);
    bool stats = strncmp(topic, "review.", 7) == 0 || strncmp(topic, "record.", 7) == 0;
    evmsg_header_t h = {1, 1, "intake", at, 1};
    if (stats)
        snprintf(h.src, sizeof h.src, "review");
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(env.data, env.size, &msg, &err), 0);
    bus_event_t ev = {1, 1, at, 1, topic, msg};
    assert_int_equal(db_begin(fx->db), 0);
    if (stats)
        assert_int_equal(events_handle_stats(fx->db, &ev, 1, &fx->app), 0);
    else
        assert_int_equal(events_handle(fx->db, &ev, 1, &fx->app), 0);
    assert_int_equal(db_commit(fx->db), 0);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&env);
}

/* pubfx_deliver at `at`, kept in fed when fx->keep. */
static void
pubfx_event_at(pubfx_t *fx, const char *topic, const char *json, int64_t at)
{
    if (fx->keep) {
        assert_true(fx->nfed < PUBFX_EVENTS_MAX);
        pubfx_ev_t *e = &fx->fed[fx->nfed++];
        snprintf(e->topic, sizeof e->topic, "%s", topic);
        snprintf(e->json, sizeof e->json, "%s", json);
        e->at = at;
    }
    pubfx_deliver(fx, topic, json, at);
}

static void
pubfx_event(pubfx_t *fx, const char *topic, const char *json)
{
    pubfx_event_at(fx, topic, json, fx->at_ms);
}

/* The record id of (agency, case). */
static char *
pubfx_record(pubfx_t *fx, const char *agency, int case_id, char buf[24])
{
    char cid[16];
    snprintf(cid, sizeof cid, "%d", case_id);
    PGresult *r =
        db_query(fx->db, "SELECT id FROM publication.record WHERE agency = $1 AND case_id = $2", 2,
                 (const char *[]){agency, cid});
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    snprintf(buf, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

/* One row of one column of a query with id as $1. */
static void
pubfx_value(pubfx_t *fx, const char *sql, const char *id, char *out, size_t len)
{
    PGresult *r = db_query(fx->db, sql, 1, (const char *[]){id});
    if (!r)
        fail_msg("%s: %s", sql, db_error(fx->db));
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void
pubfx_sql(pubfx_t *fx, const char *sql)
{
    PGresult *r = db_query(fx->db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(fx->db));
    PQclear(r);
}

static long
pubfx_count(pubfx_t *fx, const char *sql)
{
    PGresult *r = db_query(fx->db, sql, 0, NULL);
    assert_non_null(r);
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* The agency's publisher publishes the record of (agency, case), committed. */
static void
pubfx_publish(pubfx_t *fx, const char *agency, int case_id)
{
    char id[24], st[16];
    pubfx_record(fx, agency, case_id, id);
    char who[64];
    snprintf(who, sizeof who, "dept:%s:publisher", agency);
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_publish(fx->db, id, agency, who, st), 0);
    assert_int_equal(db_commit(fx->db), 0);
}

/* ---- HTTP to the portal ----------------------------------------------------------------- */

typedef struct {
    long status;
    char body[131072];
    size_t len;
    char etag[64];
    char cache[128]; /* Cache-Control */
    char type[128];  /* Content-Type */
    char csp[256];   /* Content-Security-Policy */
} pubfx_resp_t;

static size_t
pubfx_write(char *p, size_t size, size_t n, void *arg)
{
    pubfx_resp_t *r = arg;
    size_t len = size * n;
    if (r->len + len < sizeof r->body - 1) {
        memcpy(r->body + r->len, p, len);
        r->len += len;
        r->body[r->len] = '\0';
    }
    return len;
}

static size_t
pubfx_header(char *p, size_t size, size_t n, void *arg)
{
    pubfx_resp_t *r = arg;
    size_t len = size * n;
    if (len > 6 && strncasecmp(p, "ETag: ", 6) == 0)
        snprintf(r->etag, sizeof r->etag, "%.*s", (int)(len - 8), p + 6);
    if (len > 15 && strncasecmp(p, "Cache-Control: ", 15) == 0)
        snprintf(r->cache, sizeof r->cache, "%.*s", (int)(len - 17), p + 15);
    if (len > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
        snprintf(r->type, sizeof r->type, "%.*s", (int)(len - 16), p + 14);
    if (len > 25 && strncasecmp(p, "Content-Security-Policy: ", 25) == 0)
        snprintf(r->csp, sizeof r->csp, "%.*s", (int)(len - 27), p + 25);
    return len;
}

/* GET path from the portal, with If-None-Match: inm when inm is not NULL. */
static void
pubfx_get(pubfx_t *fx, const char *path, const char *inm, pubfx_resp_t *r)
{
    memset(r, 0, sizeof *r);
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", portal_port(fx->portal), path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (inm) {
        char line[128];
        snprintf(line, sizeof line, "If-None-Match: %s", inm);
        h = curl_slist_append(h, line);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pubfx_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, pubfx_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* GET path, which must answer 200 with JSON; the parsed body. */
static json_t *
pubfx_get_json(pubfx_t *fx, const char *path)
{
    pubfx_resp_t *r = malloc(sizeof *r);
    assert_non_null(r);
    pubfx_get(fx, path, NULL, r);
    if (r->status != 200)
        fail_msg("%s: %ld %s", path, r->status, r->body);
    json_t *o = json_loads(r->body, 0, NULL);
    assert_non_null(o);
    free(r);
    return o;
}
