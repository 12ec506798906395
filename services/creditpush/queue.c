/* queue: publication events in, items out (creditpush.item). */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonmp.h"
#include "log.h"
#include "sgs_record.h"

const char *const queue_prefixes[] = {"publication.", NULL};

static const struct {
    const char *name, *sql;
    int n;
} s_stmts[] = {
    {"cp_insert",
     "INSERT INTO creditpush.item (record_id, op, version, idem_key, kind, agency, decision_no, "
     "priority, serious, data, state, reason) VALUES ($1::bigint, $2::text, $3::int, "
     "$1::bigint || '-' || $3::int, $4::text, $5::text, $6::text, $7::smallint, $8::boolean, "
     "$9::jsonb, $10::text, $11::text) ON CONFLICT DO NOTHING",
     11},
    {"cp_publish_of",
     "SELECT priority, state FROM creditpush.item WHERE record_id = $1 AND op = 'publish'", 1},
    {"cp_pick",
     "SELECT id, idem_key, op, kind, data::text, attempts FROM creditpush.item i "
     "WHERE state = 'queued' AND next_at <= now() AND data IS NOT NULL AND (op = 'publish' OR "
     "EXISTS (SELECT 1 FROM creditpush.item p WHERE p.record_id = i.record_id AND "
     "p.op = 'publish' AND p.state = 'sent')) ORDER BY priority, id LIMIT $1",
     1},
    {"cp_sent",
     "UPDATE creditpush.item SET state = 'sent', sent_at = now(), attempts = attempts + 1, "
     "reason = NULL WHERE id = $1 AND state = 'queued'",
     1},
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
     "creditpush.item WHERE state = 'queued' AND data IS NOT NULL",
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

/* Inserts one item. data may be NULL (a dead letter that could not be built). */
static int
s_insert(db_t *tx, const char *record_id, const char *op, const char *kind, const char *agency,
         const char *decision_no, int priority, bool serious, const char *data, const char *state,
         const char *reason)
{
    const char *v[11] = {record_id,
                         op,
                         strcmp(op, "publish") == 0 ? "1" : "2",
                         kind,
                         agency,
                         decision_no,
                         priority ? "1" : "0",
                         serious ? "true" : "false",
                         data,
                         state,
                         reason};
    return s_exec(tx, "cp_insert", 11, v);
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

static int
s_published(db_t *tx, const char *rid, const char *agency, const json_t *d, queue_app_t *app)
{
    const json_t *record = json_object_get(d, "record");
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type || (strcmp(type, "penalty") != 0 && strcmp(type, "licence") != 0))
        return 0; /* not 双公示 */
    const char *no = json_string_value(json_object_get(d, "decision_no"));
    char reason[SGS_REASON_MAX];
    const char *kind = type;
    json_t *data = sgs_record_build(record, &kind, reason);
    if (!data) {
        log_warn("record dead-lettered", "record_id=%s reason=%s", rid, reason);
        app->dead++;
        return s_insert(tx, rid, "publish", type, agency, no ? no : "", 1, false, NULL, "dead",
                        reason);
    }
    char *text = json_dumps(data, JSON_COMPACT);
    int rc = text ? s_insert(tx, rid, "publish", kind, agency, no ? no : "",
                             sgs_record_key_domain(data) ? 0 : 1, sgs_record_serious(data), text,
                             "queued", NULL)
                  : -1;
    free(text);
    json_decref(data);
    app->queued++;
    app->pending = true;
    return rc;
}

static int
s_withdrawn(db_t *tx, const char *rid, const char *agency, const json_t *d, queue_app_t *app)
{
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type || (strcmp(type, "penalty") != 0 && strcmp(type, "licence") != 0) ||
        !json_is_true(json_object_get(d, "was_published")))
        return 0; /* never pushed: nothing to withdraw */
    const char *no = json_string_value(json_object_get(d, "decision_no"));
    const char *why = json_string_value(json_object_get(d, "reason"));
    const char *wkind = json_string_value(json_object_get(d, "kind"));
    const char *v[1] = {rid};
    PGresult *r = db_exec_prepared(tx, "cp_publish_of", 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    bool have = PQntuples(r) == 1;
    int priority = have ? atoi(PQgetvalue(r, 0, 0)) : 1;
    PQclear(r);
    char reason[2200];
    /* 行政处罚法 2021 art. 48: withdrawn within 3 days, with the reason. */
    snprintf(reason, sizeof reason, "%s: %s", wkind ? wkind : "revoke", why ? why : "");
    json_t *data = no && no[0] ? sgs_record_withdrawal(type, no, reason) : NULL;
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    int rc;
    if (!have || !text) {
        app->dead++;
        rc =
            s_insert(tx, rid, "withdraw", type, agency, no ? no : "", priority, false, NULL, "dead",
                     !have ? "record: never queued for the platform, nothing to withdraw"
                           : "decision_no: required");
    } else {
        app->queued++;
        app->pending = true;
        rc = s_insert(tx, rid, "withdraw", type, agency, no, priority, false, text, "queued", NULL);
    }
    free(text);
    return rc;
}

int
queue_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)why, (void)whylen;
    queue_app_t *app = arg;
    const char *t = ev->topic;
    bool pub = strncmp(t, "publication.published.", 22) == 0;
    bool wd = strncmp(t, "publication.withdrawn.", 22) == 0;
    if (!pub && !wd)
        return 0;
    const char *agency = t + 22;
    json_t *d = s_data(ev);
    json_int_t id = json_integer_value(json_object_get(d, "record_id"));
    if (!d || id <= 0 || strlen(agency) != 18) {
        log_error("event not understood; skipped", "topic=%s seq=%llu", t,
                  (unsigned long long)ev->seq);
        json_decref(d);
        return 0;
    }
    char rid[24];
    snprintf(rid, sizeof rid, "%lld", (long long)id);
    int rc = pub ? s_published(tx, rid, agency, d, app) : s_withdrawn(tx, rid, agency, d, app);
    json_decref(d);
    return rc < 0 ? -1 : 0;
}

int
queue_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    for (int i = 0; i < n; i++)
        if (queue_handle_one(tx, &events[i], arg, NULL, 0) < 0)
            return -1;
    return 0;
}

int
queue_pick(db_t *db, int max, queue_item_t *out)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", max < 1 ? 1 : max > 1000 ? 1000 : max);
    const char *v[1] = {lim};
    PGresult *r = db_exec_prepared(db, "cp_pick", 1, v, NULL, NULL, 0);
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
queue_mark_sent(db_t *db, int64_t id)
{
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)id);
    const char *v[1] = {s};
    return s_exec(db, "cp_sent", 1, v);
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
