/* queue: publication events in, items out (creditpush.item). */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "date.h"
#include "jsonmp.h"
#include "log.h"
#include "pgarray.h"
#include "sgs_record.h"

const char *const queue_prefixes[] = {"publication.", NULL};

/* The ids of a batch, for a join on the primary key: as id = ANY($1) AND state =
 * 'queued' the plan walked all of item_queued (its second column is id), 5 ms for 100
 * rows with a few thousand queued. */
#define S_IDS "(SELECT DISTINCT unnest($1::bigint[]) AS id) k"

static const struct {
    const char *name, *sql;
    int n;
} s_stmts[] = {
    {"cp_insert",
     "INSERT INTO creditpush.item (record_id, op, version, idem_key, kind, agency, decision_no, "
     "priority, serious, data, state, reason) SELECT r, o, v, r || '-' || v, k, a, d, "
     "p::smallint, s, j::jsonb, st, re FROM unnest($1::bigint[], $2::text[], $3::int[], "
     "$4::text[], $5::text[], $6::text[], $7::int[], $8::boolean[], $9::text[], $10::text[], "
     "$11::text[]) AS u(r, o, v, k, a, d, p, s, j, st, re) ON CONFLICT DO NOTHING",
     11},
    {"cp_publish_of",
     "SELECT priority, state, decision_no FROM creditpush.item WHERE record_id = $1 AND "
     "op = 'publish'",
     1},
    {"cp_pick",
     "SELECT id, idem_key, op, kind, data::text, attempts, serious FROM creditpush.item i "
     "WHERE state = 'queued' AND next_at <= now() AND data IS NOT NULL AND (op = 'publish' OR "
     "EXISTS (SELECT 1 FROM creditpush.item p WHERE p.record_id = i.record_id AND "
     "p.op = 'publish' AND p.state = 'sent')) "
     /* Not one in flight: a hashed subplan, not a walk of the array for every row. */
     "AND i.id NOT IN (SELECT unnest($2::bigint[])) "
     "ORDER BY priority, id LIMIT $1",
     2},
    {"cp_sent_many",
     "UPDATE creditpush.item i SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
     "reason = NULL FROM " S_IDS " WHERE i.id = k.id AND i.state = 'queued'",
     1},
    {"cp_dead_many",
     "UPDATE creditpush.item i SET state = 'dead', attempts = attempts + 1, reason = $2, "
     "answer = $3 FROM " S_IDS " WHERE i.id = k.id AND i.state = 'queued'",
     3},
    {"cp_retry_many",
     "UPDATE creditpush.item i SET attempts = attempts + 1, reason = $3, answer = $4, "
     "next_at = now() + make_interval(secs => $2::bigint / 1000.0) FROM " S_IDS
     " WHERE i.id = k.id AND i.state = 'queued'",
     4},
    {"cp_depth_gauge", "SELECT count(*) FROM creditpush.item WHERE state = 'queued'", 0},
    {"cp_dead",
     "UPDATE creditpush.item SET state = 'dead', attempts = attempts + 1, reason = $2, "
     "answer = $3 WHERE id = $1 AND state = 'queued'",
     3},
    {"cp_retry",
     "UPDATE creditpush.item SET attempts = attempts + 1, reason = $3, answer = $4, "
     "next_at = now() + make_interval(secs => $2::bigint / 1000.0) WHERE id = $1 AND "
     "state = 'queued'",
     4},
    {"cp_hold_all",
     "UPDATE creditpush.item SET next_at = greatest(next_at, now() + make_interval(secs => "
     "$1::bigint / 1000.0)) WHERE state = 'queued'",
     1},
    {"cp_next_due",
     "SELECT coalesce((extract(epoch FROM min(next_at)) * 1000)::bigint, 0) FROM "
     "creditpush.item i WHERE state = 'queued' AND data IS NOT NULL AND (op = 'publish' OR "
     "EXISTS (SELECT 1 FROM creditpush.item p WHERE p.record_id = i.record_id AND "
     "p.op = 'publish' AND p.state = 'sent'))",
     0},
};

int
queue_prepare(db_t *db)
{
    for (size_t i = 0; i < sizeof s_stmts / sizeof s_stmts[0]; i++)
        if (db_prepare(db, s_stmts[i].name, s_stmts[i].sql, s_stmts[i].n) < 0)
            return -1;
    return 0;
}

/* Runs a command statement; 0 or -1. */
static int
s_exec(db_t *db, const char *name, int n, const char *const *v)
{
    PGresult *r = db_exec_prepared(db, name, n, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* The items of one batch of events, as the 11 columns of cp_insert. */
enum {
    S_RID,
    S_OP,
    S_VER,
    S_KIND,
    S_AGENCY,
    S_NO,
    S_PRIO,
    S_SERIOUS,
    S_DATA,
    S_STATE,
    S_REASON,
    S_NCOLS
};

typedef struct {
    queue_app_t *app;
    pgarray_t col[S_NCOLS];
    int rows; /* items waiting to be inserted */
} s_batch_t;

static void
s_batch_begin(s_batch_t *b)
{
    static const uint32_t oids[S_NCOLS] = {PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_INT4, PGARRAY_TEXT,
                                           PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT4, PGARRAY_BOOL,
                                           PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT};
    for (int i = 0; i < S_NCOLS; i++)
        pgarray_begin(&b->col[i], oids[i]);
    b->rows = 0;
}

/* Inserts the rows gathered so far (one statement) and begins again. 0 or -1. */
static int
s_flush(db_t *tx, s_batch_t *b)
{
    if (b->rows == 0)
        return 0;
    PGresult *r = pgarray_exec(tx, "cp_insert", b->col, S_NCOLS, 0);
    s_batch_begin(b);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Adds one item. data may be NULL (a dead letter that could not be built). */
static void
s_add(s_batch_t *b, int64_t record_id, const char *op, const char *kind, const char *agency,
      const char *decision_no, int priority, bool serious, const char *data, const char *state,
      const char *reason)
{
    pgarray_int8(&b->col[S_RID], record_id);
    pgarray_str(&b->col[S_OP], op);
    pgarray_int4(&b->col[S_VER], strcmp(op, "publish") == 0    ? 1
                                 : strcmp(op, "withdraw") == 0 ? 2
                                                               : 3);
    pgarray_str(&b->col[S_KIND], kind);
    pgarray_str(&b->col[S_AGENCY], agency);
    pgarray_str(&b->col[S_NO], decision_no);
    pgarray_int4(&b->col[S_PRIO], priority);
    pgarray_bool(&b->col[S_SERIOUS], serious);
    pgarray_str(&b->col[S_DATA], data);
    pgarray_str(&b->col[S_STATE], state);
    pgarray_str(&b->col[S_REASON], reason);
    b->rows++;
}

/* The event's data as JSON, or NULL (logged). */
static json_t *
s_data(const bus_event_t *ev)
{
    size_t len = 0;
    const void *bytes = evmsg_data_bytes(ev->msg, &len);
    jsonmp_err_t err;
    char *text = bytes ? jsonmp_to_json(bytes, len, "data", NULL, &err) : NULL;
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return o;
}

static bool
s_sgs_type(const char *type)
{
    return type && (strcmp(type, "penalty") == 0 || strcmp(type, "licence") == 0);
}

static int
s_published(s_batch_t *b, int64_t rid, const char *agency, const json_t *d)
{
    const json_t *record = json_object_get(d, "record");
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!s_sgs_type(type))
        return 0; /* not 双公示 */
    const char *no = json_string_value(json_object_get(d, "decision_no"));
    char reason[SGS_REASON_MAX];
    const char *kind = type;
    json_t *data = sgs_record_build(record, &kind, reason);
    if (!data) {
        log_warn("record dead-lettered", "record_id=%lld reason=%s", (long long)rid, reason);
        b->app->dead++;
        s_add(b, rid, "publish", type, agency, no ? no : "", 1, false, NULL, "dead", reason);
        return 0;
    }
    char *text = json_dumps(data, JSON_COMPACT);
    if (text)
        s_add(b, rid, "publish", kind, agency, no ? no : "", sgs_record_key_domain(data) ? 0 : 1,
              sgs_record_serious(data), text, "queued", NULL);
    free(text);
    json_decref(data);
    b->app->queued++;
    b->app->pending = true;
    return text ? 0 : -1;
}

/* The publish item of record rid: its priority and decision number; false when there is
 * none. -1 on a database error. The batch is flushed first: the record may be in it. */
static int
s_publish_of(db_t *tx, s_batch_t *b, int64_t rid, int *priority, char *no, size_t nolen)
{
    if (s_flush(tx, b) < 0)
        return -1;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)rid);
    const char *v[1] = {id};
    PGresult *r = db_exec_prepared(tx, "cp_publish_of", 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int have = PQntuples(r) == 1;
    *priority = have ? atoi(PQgetvalue(r, 0, 0)) : 1;
    snprintf(no, nolen, "%s", have ? PQgetvalue(r, 0, 2) : "");
    PQclear(r);
    return have;
}

/* A withdrawal (撤销) or credit repair (信用修复) of a record: a status change queued
 * behind its record, or a dead letter when there is no record to change. */
static int
s_change(db_t *tx, s_batch_t *b, int64_t rid, const char *agency, const char *op, const char *type,
         const char *event_no, json_t *(*build)(const char *no, void *arg), void *arg)
{
    int priority;
    char stored_no[256];
    int have = s_publish_of(tx, b, rid, &priority, stored_no, sizeof stored_no);
    if (have < 0)
        return -1;
    const char *no = event_no && event_no[0] ? event_no : stored_no;
    json_t *data = have && no[0] ? build(no, arg) : NULL;
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text) {
        const char *why = !have ? "record: never queued for the platform, nothing to change"
                                : "decision_no: required";
        log_warn("status change dead-lettered", "record_id=%lld op=%s reason=%s", (long long)rid,
                 op, why);
        b->app->dead++;
        s_add(b, rid, op, type, agency, no, priority, false, NULL, "dead", why);
        return 0;
    }
    b->app->queued++;
    b->app->pending = true;
    s_add(b, rid, op, type, agency, no, priority, false, text, "queued", NULL);
    free(text);
    return 0;
}

typedef struct {
    const char *type;
    char bz[2300];
} s_wd_t;

static json_t *
s_build_withdrawal(const char *no, void *arg)
{
    s_wd_t *w = arg;
    return sgs_record_withdrawal(w->type, no, w->bz);
}

static int
s_withdrawn(db_t *tx, s_batch_t *b, int64_t rid, const char *agency, const json_t *d)
{
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!s_sgs_type(type) || !json_is_true(json_object_get(d, "was_published")))
        return 0; /* never pushed: nothing to withdraw */
    const char *why = json_string_value(json_object_get(d, "reason"));
    const char *wkind = json_string_value(json_object_get(d, "kind"));
    s_wd_t w = {type, ""};
    /* 行政处罚法 2021 art. 48: withdrawn within 3 days, with the reason. */
    snprintf(w.bz, sizeof w.bz, "%s: %s", wkind ? wkind : "revoke", why ? why : "");
    return s_change(tx, b, rid, agency, "withdraw", type,
                    json_string_value(json_object_get(d, "decision_no")), s_build_withdrawal, &w);
}

typedef struct {
    const char *reason;
    char until[11];
} s_rep_t;

static json_t *
s_build_repair(const char *no, void *arg)
{
    s_rep_t *r = arg;
    return sgs_record_repair(no, r->until, r->reason);
}

static int
s_repaired(db_t *tx, s_batch_t *b, int64_t rid, const char *agency, const json_t *d, int64_t at_ms)
{
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type || strcmp(type, "penalty") != 0)
        return 0; /* 信用修复 concerns penalties only */
    const char *why = json_string_value(json_object_get(d, "reason"));
    s_rep_t r = {why && why[0] ? why : "-", ""};
    /* Publication ends on the day of the repair (China time), the day of the event. */
    date_format(date_from_unix_cst(at_ms / 1000), r.until);
    r.until[4] = r.until[7] = '/';
    return s_change(tx, b, rid, agency, "repair", type, NULL, s_build_repair, &r);
}

static int
s_one(db_t *tx, s_batch_t *b, const bus_event_t *ev)
{
    const char *t = ev->topic;
    bool pub = strncmp(t, "publication.published.", 22) == 0;
    bool wd = strncmp(t, "publication.withdrawn.", 22) == 0;
    bool rep = strncmp(t, "publication.repaired.", 21) == 0;
    if (!pub && !wd && !rep)
        return 0;
    const char *agency = t + (rep ? 21 : 22);
    json_t *d = s_data(ev);
    json_int_t id = json_integer_value(json_object_get(d, "record_id"));
    if (!d || id <= 0 || strlen(agency) != 18) {
        log_error("event not understood; skipped", "topic=%s seq=%llu", t,
                  (unsigned long long)ev->seq);
        json_decref(d);
        return 0;
    }
    int rc = pub  ? s_published(b, (int64_t)id, agency, d)
             : wd ? s_withdrawn(tx, b, (int64_t)id, agency, d)
                  : s_repaired(tx, b, (int64_t)id, agency, d, ev->at);
    json_decref(d);
    return rc;
}

int
queue_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    s_batch_t b = {arg, {{0}}, 0};
    s_batch_begin(&b);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = s_one(tx, &b, &events[i]);
    if (rc == 0)
        rc = s_flush(tx, &b);
    for (int i = 0; i < S_NCOLS; i++)
        pgarray_free(&b.col[i]);
    return rc < 0 ? -1 : 0;
}

int
queue_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)why, (void)whylen;
    return queue_handle(tx, ev, 1, arg);
}

int
queue_pick(db_t *db, int max, const int64_t *skip, int nskip, queue_item_t *out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", max < 1 ? 1 : max > 1000 ? 1000 : max);
    pgarray_t arr = {0};
    pgarray_begin(&arr, PGARRAY_INT8);
    for (int i = 0; i < nskip; i++)
        pgarray_int8(&arr, skip[i]);
    PGresult *r = NULL;
    if (pgarray_finish(&arr) == 0) {
        const char *v[2] = {lim, arr.buf};
        int lens[2] = {0, (int)arr.len}, fmts[2] = {0, 1};
        r = db_exec_prepared(db, "cp_pick", 2, v, lens, fmts, 0);
    }
    pgarray_free(&arr);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        queue_item_t *it = &out[i];
        it->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(it->key, sizeof it->key, "%s", PQgetvalue(r, i, 1));
        snprintf(it->op, sizeof it->op, "%s", PQgetvalue(r, i, 2));
        snprintf(it->kind, sizeof it->kind, "%s", PQgetvalue(r, i, 3));
        it->data = strdup(PQgetvalue(r, i, 4));
        it->attempts = atoi(PQgetvalue(r, i, 5));
        it->serious = PQgetvalue(r, i, 6)[0] == 't';
        if (!it->data) {
            queue_items_free(out, i);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    return n;
}

void
queue_items_free(queue_item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        free(items[i].data);
        items[i].data = NULL;
    }
}

int
queue_mark_dead(db_t *db, int64_t id, const char *reason, const char *answer)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)id);
    const char *v[3] = {s, reason, answer};
    return s_exec(db, "cp_dead", 3, v);
}

int
queue_mark_retry(db_t *db, int64_t id, int64_t delay_ms, const char *reason, const char *answer)
{
    char s[24], d[24];
    snprintf(s, sizeof s, "%lld", (long long)id);
    snprintf(d, sizeof d, "%lld", (long long)delay_ms);
    const char *v[4] = {s, d, reason, answer};
    return s_exec(db, "cp_retry", 4, v);
}

int
queue_hold_all(db_t *db, int64_t delay_ms)
{
    char d[24];
    snprintf(d, sizeof d, "%lld", (long long)delay_ms);
    const char *v[1] = {d};
    return s_exec(db, "cp_hold_all", 1, v);
}

int64_t
queue_next_due(db_t *db)
{
    PGresult *r = db_exec_prepared(db, "cp_next_due", 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    int64_t due = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return due;
}

/* Runs statement name with ids as $1 (binary int8[]) and the texts v[0..nv) as $2..
 * (NULL for SQL NULL). 0 or -1. */
static int
s_exec_many(db_t *db, const char *name, const int64_t *ids, int n, const char *const *v, int nv)
{
    if (n <= 0)
        return 0;
    pgarray_t arr = {0};
    pgarray_begin(&arr, PGARRAY_INT8);
    for (int i = 0; i < n; i++)
        pgarray_int8(&arr, ids[i]);
    PGresult *r = NULL;
    if (pgarray_finish(&arr) == 0 && nv <= 3) {
        const char *vals[4] = {arr.buf, NULL, NULL, NULL};
        int lens[4] = {(int)arr.len, 0, 0, 0}, fmts[4] = {1, 0, 0, 0};
        for (int i = 0; i < nv; i++)
            vals[i + 1] = v[i];
        r = db_exec_prepared(db, name, 1 + nv, vals, lens, fmts, 0);
    }
    pgarray_free(&arr);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int
queue_mark_sent_many(db_t *db, const int64_t *ids, int n)
{
    return s_exec_many(db, "cp_sent_many", ids, n, NULL, 0);
}

int
queue_mark_dead_many(db_t *db, const int64_t *ids, int n, const char *reason, const char *answer)
{
    const char *v[2] = {reason, answer};
    return s_exec_many(db, "cp_dead_many", ids, n, v, 2);
}

int
queue_mark_retry_many(db_t *db, const int64_t *ids, int n, int64_t delay_ms, const char *reason,
                      const char *answer)
{
    char d[24];
    snprintf(d, sizeof d, "%lld", (long long)delay_ms);
    const char *v[3] = {d, reason, answer};
    return s_exec_many(db, "cp_retry_many", ids, n, v, 3);
}

int64_t
queue_depth(db_t *db)
{
    PGresult *r = db_exec_prepared(db, "cp_depth_gauge", 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    int64_t n = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return n;
}
