/* rvfx: the fixture the review tests share (included by each test_*.c; one binary each).
 * A fresh database with review's schema (bus, rpc and review migrations) and the
 * subscriber's statements; intake's events are built as envelopes from JSON and handed
 * to events_handle in a committed transaction, as common/bus does; what review writes
 * (its tables, its outbox) is read back with SQL. Agencies a and b, and the pool (the
 * legal office). */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/review/events.h"
#include "ident.h"
#include "jsonmp.h"
#include "rpc.h"
#include "tsupport.h"
#include "util.h"
#include "workday.h"

typedef struct {
    char *url;
    db_t *db; /* the test's connection: events are handled on it */
    workday_t *cal;
    review_t app;  /* calendar and pool set */
    uint64_t seq;  /* of the last event handed over */
    int64_t at_ms; /* the envelopes' `at` (unix ms); 0: now */
    char a[19], b[19], pool[19];
} rvfx_t;

/* An agency code: body17 and its check character. */
static void
rvfx_code(char out[19], const char *body17)
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
}

/* A fresh database named after db_name with review's migrations, the calendar, codes. */
static void
rvfx_init(rvfx_t *fx, const char *db_name)
{
    char err[512], dir[4096];
    memset(fx, 0, sizeof *fx);
    fx->url = ts_fresh_db(db_name);
    fx->db = db_new(fx->url, "review-test");
    assert_int_equal(db_connect(fx->db, 5000), 0);
    static const char *const sets[] = {"bus", "rpc", "review"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/schemas/sql/%s", ts_env("SX_TOP"), sets[i]);
        int rc = i == 0   ? bus_migrate(fx->db, REVIEW_SCHEMA, dir)
                 : i == 1 ? rpc_migrate(fx->db, REVIEW_SCHEMA, dir)
                          : db_migrate(fx->db, REVIEW_SCHEMA, dir);
        if (rc < 0)
            fail_msg("migrate %s: %s", sets[i], db_error(fx->db));
    }
    assert_int_equal(events_prepare(fx->db), 0);
    fx->cal = workday_load_default(err, sizeof err);
    assert_non_null(fx->cal);
    rvfx_code(fx->a, "11330400MB0000001");
    rvfx_code(fx->b, "11330400MB0000002");
    rvfx_code(fx->pool, "11330400MB0000009");
    fx->app = (review_t){.calendar = fx->cal, .pool_agency = fx->pool};
}

static void
rvfx_fini(rvfx_t *fx)
{
    workday_destroy(&fx->cal);
    db_destroy(&fx->db);
    free(fx->url);
}

/* Hands one event (topic "<event>.<agency>", data as JSON) to the handler, committed. */
static void
rvfx_ev(rvfx_t *fx, const char *event, const char *agency, const char *json)
{
    msgpack_sbuffer data, env;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&env);
    jsonmp_err_t jerr;
    if (jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr) < 0) {
        char b[256];
        fail_msg("json: %s: %s", jsonmp_err_str(&jerr, b, sizeof b), json);
    }
    evmsg_header_t h = {++fx->seq, fx->seq, "intake", fx->at_ms ? fx->at_ms : util_unix_ms(), 1};
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(env.data, env.size, &msg, &err), 0);
    char topic[160];
    snprintf(topic, sizeof topic, "%s.%s", event, agency);
    bus_event_t ev = {h.seq, h.aseq, h.at, 1, topic, msg};
    assert_int_equal(db_begin(fx->db), 0);
    if (events_handle(fx->db, &ev, 1, &fx->app) != 0)
        fail_msg("events_handle: %s", db_error(fx->db));
    assert_int_equal(db_commit(fx->db), 0);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&env);
}

/* The first value of sql's first row into out ("<none>" without a row). */
static char *
rvfx_one(rvfx_t *fx, const char *sql, char *out, size_t size)
{
    PGresult *r = db_query(fx->db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(fx->db));
    snprintf(out, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "<none>");
    PQclear(r);
    return out;
}

static long long
rvfx_count(rvfx_t *fx, const char *sql)
{
    char b[64];
    return atoll(rvfx_one(fx, sql, b, sizeof b));
}

/* The data of the last outbox event as JSON (malloc'ed), its topic in topic. */
static char *
rvfx_last_event(rvfx_t *fx, char *topic, size_t size)
{
    PGresult *r =
        db_query(fx->db, "SELECT topic, data FROM review.outbox ORDER BY id DESC LIMIT 1", 0, NULL);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    snprintf(topic, size, "%s", PQgetvalue(r, 0, 0));
    size_t len = 0;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
    char *json = jsonmp_to_json(bytes, len, "data", NULL, NULL);
    PQfreemem(bytes);
    PQclear(r);
    assert_non_null(json);
    return json;
}

static void
rvfx_officer(rvfx_t *fx, const char *agency, const char *cert, int version, bool reviewer, bool lq,
             bool active)
{
    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
             "\"cert_no\":\"%s\",\"name\":\"n-%s\",\"valid_from\":\"2015-01-01\","
             "\"valid_to\":\"2030-12-31\",\"area\":\"全市\",\"legal_qualified\":%s,"
             "\"reviewer\":%s,\"active\":%s}}",
             cert, version, agency, cert, cert, lq ? "true" : "false", reviewer ? "true" : "false",
             active ? "true" : "false");
    rvfx_ev(fx, "registry.officer", agency, j);
}

/* A registry.review_rule of agency: penalties at or above threshold (NULL: every one). */
static void
rvfx_rule(rvfx_t *fx, const char *agency, const char *id, const char *threshold)
{
    char j[1024], amount[64] = "null";
    if (threshold)
        snprintf(amount, sizeof amount, "\"%s\"", threshold);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"id\":\"%s\",\"description\":\"规则 %s\",\"case_type\":\"penalty\","
             "\"amount_threshold\":%s,\"active\":true}}",
             id, agency, id, id, amount);
    rvfx_ev(fx, "registry.review_rule", agency, j);
}

/* case.opened of agency a by officers (a JSON list's inside); deadline NULL: none. */
static void
rvfx_opened_until(rvfx_t *fx, int case_id, const char *officers, const char *deadline)
{
    char j[1024], dl[64] = "";
    if (deadline)
        snprintf(dl, sizeof dl, ",\"deadline\":\"%s\"", deadline);
    snprintf(j, sizeof j,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
             "\"state\":\"open\",\"officers\":[%s]%s}",
             case_id, case_id, officers, dl);
    rvfx_ev(fx, "case.opened", fx->a, j);
}

static void
rvfx_opened(rvfx_t *fx, int case_id, const char *officers)
{
    rvfx_opened_until(fx, case_id, officers, NULL);
}

/* case.proposed of a penalty (V-01, general); extra: the requires_review and
 * review_rules members (NULL: false, []). */
static void
rvfx_propose(rvfx_t *fx, const char *agency, int case_id, int version, const char *fine,
             const char *extra)
{
    char j[2048];
    snprintf(j, sizeof j,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
             "\"state\":\"proposed\",\"version\":%d,\"category\":\"罚款\",\"content\":\"罚款\","
             "\"fine\":\"%s\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
             "\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"hearing\":false,"
             "\"major_public_interest\":false,\"social_risk\":false,\"complex\":false,"
             "%s,\"discretion\":null,\"deviation_reason\":null}",
             case_id, case_id, version, fine,
             extra ? extra : "\"requires_review\":false,\"review_rules\":[]");
    rvfx_ev(fx, "case.proposed", agency, j);
}
