/* workflow: draft -> published / rejected (专人审查), and the publication deadlines. */
#include "workflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "events.h"
#include "jsonmp.h"
#include "log.h"
#include "pgarray.h"
#include "records.h"
#include "util.h"

int
workflow_due(const workday_t *cal, const char *type, date_t decided, date_t *due, date_t *warn,
             bool *uncovered)
{
    /* 嘉政办发〔2019〕56号 item 5: 行政许可、行政处罚 decisions are published within 7
     * working days of the decision (双公示), other decisions within 20 working days. */
    int n = strcmp(type, "licence") == 0 || strcmp(type, "penalty") == 0 ? WORKFLOW_SGS_DAYS
                                                                         : WORKFLOW_OTHER_DAYS;
    date_t d, w;
    bool u1 = false, u2 = false;
    if (workday_add(cal, decided, n, &d, &u1) < 0 ||
        workday_add(cal, d, -WORKFLOW_WARN_DAYS, &w, &u2) < 0)
        return -1;
    if (w < decided)
        w = decided;
    *due = d;
    *warn = w;
    if (uncovered)
        *uncovered = u1 || u2;
    return 0;
}

int64_t
workflow_day_ms(date_t day)
{
    /* date_t counts days from 1970-01-01; CST is UTC+8. */
    return ((int64_t)day * 86400 - 8 * 3600) * 1000;
}

#define S_STR_(x) #x
#define S_STR(x)  S_STR_(x) /* a macro's value as a string literal */

/* The CTE that queues the records an UPDATE ... RETURNING id (as upd) changed, where
 * cond holds, for workflow_arm_new (006_arming.sql). */
#define S_ARM_QUEUE(cond)                                                                          \
    "q AS (INSERT INTO publication.arming (id) SELECT id FROM upd WHERE " cond                     \
    " ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v) "

int
workflow_prepare(db_t *db)
{
    int rc = 0;
    /* The rows are found by a primary-key probe in a LATERAL subquery and updated by
     * ctid (a TID scan), whatever the statistics say: with "WHERE id = $1 AND agency = $2"
     * the generic plan cached while the table was young and unanalysed scanned every
     * record of the agency (record_agency_decided) on each approval. A row another
     * transaction changed meanwhile has a new ctid and is missed: the caller reads its
     * state and tries again (s_publish_retry). A published penalty with an expiry is
     * queued for its expiry timer (006_arming.sql).
     *
     * r's own test of the state is what a concurrent change is checked against (a TID
     * scan does not recheck its ctid when the row moved on), and it is written as
     * coalesce(state, '') = 'draft' (state is NOT NULL: the same test) so that the planner
     * cannot prove record_draft's predicate from it. Written plainly, it let the planner
     * read r through record_draft, every draft, joined to each probe: once an
     * autoanalyze had seen few drafts, that plan took 0.3-1.4 s per batch of approvals
     * with ~5,000 drafts waiting, and bench-pipeline's approval lag reached 14 s after
     * 3 minutes of load. */
    /* clang-format off */
    rc |= db_prepare(db, "pub_approve",
                     "WITH upd AS (UPDATE publication.record r SET state = 'published', "
                     "published_at = now(), decided_by = $3, version = r.version + 1 "
                     "FROM (SELECT y.ctid AS t FROM publication.record y WHERE y.id = $1 "
                     "LIMIT 1) k WHERE r.ctid = k.t AND r.agency = $2 "
                     "AND coalesce(r.state, '') = 'draft' "
                     "RETURNING r.id, r.expires_on, r.case_id, r.case_no, r.type, r.decision_no, "
                     "r.body::text AS body, (now() AT TIME ZONE 'Asia/Shanghai')::date > r.due_on "
                     "AS late), " S_ARM_QUEUE("expires_on IS NOT NULL")
                     "SELECT case_id, case_no, type, decision_no, body, late FROM upd",
                     3);
    /* publication.approve for a whole batch of requests: $1 ids, $2 agencies, $3
     * identities; a row per record published, with its request's position (k.i). */
    rc |= db_prepare(db, "pub_approve_many",
                     "WITH upd AS (UPDATE publication.record r SET state = 'published', "
                     "published_at = now(), decided_by = k.by, version = r.version + 1 "
                     "FROM (SELECT k.i, k.by, x.t FROM unnest($1::int8[], $2::text[], $3::text[]) "
                     "WITH ORDINALITY AS k(id, agency, by, i) CROSS JOIN LATERAL (SELECT y.ctid "
                     "AS t FROM publication.record y WHERE y.id = k.id AND y.agency = k.agency "
                     "AND y.state = 'draft' LIMIT 1) x) k "
                     "WHERE r.ctid = k.t AND coalesce(r.state, '') = 'draft' "
                     "RETURNING k.i, r.id, r.expires_on, r.case_id, r.case_no, r.type, "
                     "r.decision_no, r.body::text AS body, "
                     "(now() AT TIME ZONE 'Asia/Shanghai')::date > r.due_on AS late), "
                     S_ARM_QUEUE("expires_on IS NOT NULL")
                     "SELECT i, case_id, case_no, type, decision_no, body, late FROM upd",
                     3);
    /* clang-format on */
    rc |= db_prepare(db, "pub_reject",
                     "UPDATE publication.record SET state = 'rejected', rejected_reason = $3, "
                     "decided_by = $4, rejections = rejections + 1, version = version + 1 "
                     "WHERE id = $1 AND agency = $2 AND state = 'draft' "
                     "RETURNING case_id, case_no, type",
                     4);
    rc |= db_prepare(db, "pub_state",
                     "SELECT agency, state, coalesce(repair_from::text, '') FROM "
                     "publication.record WHERE id = $1",
                     1);
    rc |= db_prepare(db, "pub_repair",
                     "UPDATE publication.record SET state = 'repaired', repair_reason = $3, "
                     "decided_by = $4, repaired_at = now(), version = version + 1 "
                     "WHERE id = $1 AND agency = $2 AND state = 'published' "
                     "AND repair_from <= (now() AT TIME ZONE 'Asia/Shanghai')::date "
                     "RETURNING case_id, case_no, type",
                     4);
    /* Re-draft after a reject: the corrected body, back to draft, its timers armed again
     * (a record already warned or overdue is not warned or counted again). */
    rc |= db_prepare(db, "pub_resubmit_get",
                     "SELECT body::text FROM publication.record WHERE id = $1 AND agency = $2 "
                     "AND state = 'rejected' FOR UPDATE",
                     2);
    /* clang-format off */
    rc |= db_prepare(db, "pub_resubmit",
                     "WITH upd AS (UPDATE publication.record SET state = 'draft', "
                     "body = $3::jsonb, resubmissions = resubmissions + 1, "
                     "version = version + 1 WHERE id = $1 AND agency = $2 AND state = 'rejected' "
                     "RETURNING id, case_id, case_no, type, due_on::text AS due_on, "
                     "warn_on::text AS warn_on, resubmissions, rejected_reason), "
                     S_ARM_QUEUE("true")
                     "SELECT case_id, case_no, type, due_on, warn_on, resubmissions, "
                     "rejected_reason FROM upd",
                     3);
    /* clang-format on */
    rc |= db_prepare(db, "pub_setting_put",
                     "INSERT INTO publication.agency_setting (agency, publish_minor, updated_by) "
                     "VALUES ($1, $2, $3) ON CONFLICT (agency) DO UPDATE SET "
                     "publish_minor = EXCLUDED.publish_minor, updated_by = EXCLUDED.updated_by, "
                     "updated_at = now()",
                     3);
    /* Timers to arm: a draft's warning and deadline; a published penalty's expiry. */
    /* Each timer turn, a batch at a time (workflow_arm_queued): the queue's first entries
     * (006_arming.sql), each record found by a primary-key probe. */
    /* clang-format off */
    rc |= db_prepare(db, "pub_unarmed",
                     "SELECT a.id, a.v, r.state, r.warn_on, r.due_on, r.expires_on "
                     "FROM (SELECT id, v FROM publication.arming ORDER BY id "
                     "LIMIT " S_STR(WORKFLOW_ARM_BATCH) ") a "
                     "LEFT JOIN LATERAL (SELECT y.state, y.warn_on, y.due_on, y.expires_on "
                     "FROM publication.record y WHERE y.id = a.id LIMIT 1) r ON true",
                     0);
    /* clang-format on */
    /* Off the queue, unless queued again meanwhile (a new v): that entry is armed next. */
    rc |= db_prepare(db, "pub_mark_armed",
                     "DELETE FROM publication.arming q USING unnest($1::bigint[], $2::bigint[]) "
                     "AS k(id, v) WHERE q.id = k.id AND q.v = k.v",
                     2);
    rc |= db_prepare(db, "pub_drafts",
                     "SELECT id, state, warn_on, due_on, expires_on, warned FROM "
                     "publication.record WHERE (state = 'draft' AND NOT overdue) OR "
                     "(state = 'published' AND expires_on IS NOT NULL)",
                     0);
    rc |= db_prepare(db, "pub_expire",
                     "UPDATE publication.record SET state = 'expired', expired_at = now(), "
                     "version = version + 1 WHERE id = $1 AND state = 'published' "
                     "AND expires_on < (now() AT TIME ZONE 'Asia/Shanghai')::date "
                     "RETURNING agency, case_id, case_no, type, expires_on::text",
                     1);
    rc |= db_prepare(db, "pub_warn",
                     "UPDATE publication.record SET warned = true WHERE id = $1 "
                     "AND state = 'draft' AND NOT warned "
                     "RETURNING agency, case_id, case_no, type, due_on::text",
                     1);
    rc |= db_prepare(db, "pub_overdue",
                     "UPDATE publication.record SET overdue = true, warned = true WHERE id = $1 "
                     "AND state = 'draft' AND NOT overdue "
                     "RETURNING agency, case_id, case_no, type, due_on::text",
                     1);
    return rc ? -1 : 0;
}

/* Reads body.record_id. Returns 0, or -1 (err filled). */
static int
s_record_id(evmsg_map_t *b, char id[24])
{
    uint64_t rid = 0;
    if (evmsg_map_uint(b, "record_id", 0, INT64_MAX, &rid) != 1)
        return -1;
    snprintf(id, 24, "%" PRIu64, rid);
    return 0;
}

/* Why an update touched no row: WORKFLOW_NOT_FOUND (none, or another agency's: answered
 * as unknown, so drafts stay unseen) or WORKFLOW_WRONG_STATE (state written), or -1. */
static int
s_why_not(db_t *db, const char *id, const char *agency, bool want_repair, char state[16])
{
    PGresult *r = db_exec_prepared(db, "pub_state", 1, (const char *[]){id}, NULL, NULL, 0);
    if (!r)
        return -1;
    int rc = WORKFLOW_NOT_FOUND;
    if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), agency) == 0) {
        snprintf(state, 16, "%s", PQgetvalue(r, 0, 1));
        rc = WORKFLOW_WRONG_STATE;
        if (want_repair && strcmp(state, "published") == 0 && PQgetvalue(r, 0, 2)[0]) {
            snprintf(state, 16, "%s", PQgetvalue(r, 0, 2));
            rc = WORKFLOW_TOO_EARLY;
        }
    }
    PQclear(r);
    return rc;
}

/* How often an approval is tried again when its row moved under it (a concurrent
 * update gave it a new ctid) while it is still a draft of the agency. */
#define S_PUBLISH_TRIES 3

int
workflow_publish(db_t *db, const char *id, const char *agency, const char *identity, char state[16])
{
    const char *v[] = {id, agency, identity};
    PGresult *r = NULL;
    for (int attempt = 0;; attempt++) {
        if (!(r = db_exec_prepared(db, "pub_approve", 3, v, NULL, NULL, 0)))
            return -1;
        if (PQntuples(r) == 1)
            break;
        PQclear(r);
        int rc = s_why_not(db, id, agency, false, state);
        if (rc != WORKFLOW_WRONG_STATE || strcmp(state, "draft") != 0 ||
            attempt + 1 >= S_PUBLISH_TRIES)
            return rc;
    }
    /* The published event carries the public record (双公示 fields included), so
     * creditpush needs nothing else. */
    json_t *body = json_loads(PQgetvalue(r, 0, 4), 0, NULL);
    json_t *e = json_pack(
        "{s:I,s:I,s:s,s:s,s:s,s:b,s:o}", "record_id", (json_int_t)strtoll(id, NULL, 10), "case_id",
        (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_no", PQgetvalue(r, 0, 1), "type",
        PQgetvalue(r, 0, 2), "decision_no", PQgetvalue(r, 0, 3), "late",
        PQgetvalue(r, 0, 5)[0] == 't', "record", body ? body : json_null());
    PQclear(r);
    int rc = e ? events_emit(db, "published", agency, e) : -1;
    json_decref(e);
    snprintf(state, 16, "published");
    return rc;
}

int
workflow_reject(db_t *db, const char *id, const char *agency, const char *identity,
                const char *reason, char state[16])
{
    const char *v[] = {id, agency, reason, identity};
    PGresult *r = db_exec_prepared(db, "pub_reject", 4, v, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return s_why_not(db, id, agency, false, state);
    }
    json_t *e = json_pack("{s:I,s:I,s:s,s:s,s:s}", "record_id", (json_int_t)strtoll(id, NULL, 10),
                          "case_id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_no",
                          PQgetvalue(r, 0, 1), "type", PQgetvalue(r, 0, 2), "reason", reason);
    PQclear(r);
    int rc = e ? events_emit(db, "rejected", agency, e) : -1;
    json_decref(e);
    snprintf(state, 16, "rejected");
    return rc;
}

int
workflow_repair(db_t *db, const char *id, const char *agency, const char *identity,
                const char *reason, char state[16])
{
    const char *v[] = {id, agency, reason, identity};
    PGresult *r = db_exec_prepared(db, "pub_repair", 4, v, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return s_why_not(db, id, agency, true, state);
    }
    json_t *e = json_pack("{s:I,s:I,s:s,s:s,s:s}", "record_id", (json_int_t)strtoll(id, NULL, 10),
                          "case_id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_no",
                          PQgetvalue(r, 0, 1), "type", PQgetvalue(r, 0, 2), "reason", reason);
    PQclear(r);
    int rc = e ? events_emit(db, "repaired", agency, e) : -1;
    json_decref(e);
    snprintf(state, 16, "repaired");
    return rc;
}

int
workflow_resubmit(db_t *db, const char *id, const char *agency, const char *identity,
                  const workflow_fix_t *fix, char state[16])
{
    const char *v[] = {id, agency};
    PGresult *r = db_exec_prepared(db, "pub_resubmit_get", 2, v, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        int rc = s_why_not(db, id, agency, false, state);
        return rc == WORKFLOW_WRONG_STATE ? WORKFLOW_NOT_REJECTED : rc;
    }
    json_t *body = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    char *text = NULL;
    if (!body || records_correct(body, fix->conclusion, fix->legal_basis, fix->category) < 0 ||
        !(text = json_dumps(body, JSON_COMPACT))) {
        json_decref(body);
        return -1;
    }
    json_decref(body);
    const char *u[] = {id, agency, text};
    r = db_exec_prepared(db, "pub_resubmit", 3, u, NULL, NULL, 0);
    free(text);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) { /* cannot happen under FOR UPDATE; answered all the same */
        PQclear(r);
        int rc = s_why_not(db, id, agency, false, state);
        return rc == WORKFLOW_WRONG_STATE ? WORKFLOW_NOT_REJECTED : rc;
    }
    json_t *e = json_pack(
        "{s:I,s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "record_id", (json_int_t)strtoll(id, NULL, 10),
        "case_id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_no",
        PQgetvalue(r, 0, 1), "type", PQgetvalue(r, 0, 2), "due_on", PQgetvalue(r, 0, 3), "warn_on",
        PQgetvalue(r, 0, 4), "resubmissions", (json_int_t)strtoll(PQgetvalue(r, 0, 5), NULL, 10),
        "rejected_reason", PQgetvalue(r, 0, 6), "by", identity);
    PQclear(r);
    int rc = e ? events_emit(db, "resubmitted", agency, e) : -1;
    json_decref(e);
    snprintf(state, 16, "draft");
    return rc;
}

int
workflow_settings(db_t *db, const char *agency, const char *identity, bool publish_minor)
{
    const char *v[] = {agency, publish_minor ? "true" : "false", identity};
    PGresult *r = db_exec_prepared(db, "pub_setting_put", 3, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    json_t *e = json_pack("{s:b,s:s}", "publish_minor", publish_minor, "by", identity);
    int rc = e ? events_emit(db, "settings", agency, e) : -1;
    json_decref(e);
    return rc;
}

static int
s_reply(rpc_req_t *req, const char *id, const char *state)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "record_id", 9);
    msgpack_pack_uint64(&pk, strtoull(id, NULL, 10));
    msgpack_pack_str_with_body(&pk, "state", 5);
    msgpack_pack_str_with_body(&pk, state, strlen(state));
    int rc = rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Sets the request's outcome from a workflow_publish / workflow_reject result. */
static int
s_outcome(rpc_req_t *req, int rc, const char *id, const char *state)
{
    if (rc < 0)
        return -1;
    if (rc == WORKFLOW_NOT_FOUND) {
        rpc_fail(req, "not_found", "body.record_id", "公示记录不存在", "no such record");
        return 0;
    }
    if (rc == WORKFLOW_WRONG_STATE || rc == WORKFLOW_NOT_REJECTED) {
        const char *want = rc == WORKFLOW_WRONG_STATE ? "draft" : "rejected";
        char zh[128], en[128];
        snprintf(zh, sizeof zh, "公示记录当前状态为%s，须为%s(%s)", state,
                 rc == WORKFLOW_WRONG_STATE ? "待审查" : "审查退回", want);
        snprintf(en, sizeof en, "the record is %s, not %s", state, want);
        rpc_fail(req, "wrong_state", "body.record_id", zh, en);
        return 0;
    }
    if (rc == WORKFLOW_TOO_EARLY) {
        char zh[160], en[160];
        snprintf(zh, sizeof zh, "未满最短公示期限，%s起方可申请信用修复", state);
        snprintf(en, sizeof en, "the minimum publication period runs until %s", state);
        rpc_fail(req, "repair_too_early", "body.record_id", zh, en);
        return 0;
    }
    return s_reply(req, id, state);
}

/* Packs key and val as a msgpack string pair. */
static void
s_pack_kstr(msgpack_packer *pk, const char *key, const char *val)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_str_with_body(pk, val, strlen(val));
}

/* Adds publication.published for pub_approve_many's row t of r to out: {record_id,
 * case_id, case_no, type, decision_no, late, record}, the record (the public body, 双公示
 * fields included, so creditpush needs nothing else) converted from Postgres's JSON text
 * straight to msgpack. Returns 0 or -1 (logged). */
static int
s_published_event(events_out_t *out, const char *agency, int64_t record_id, const PGresult *r,
                  int t)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "record_id", 9);
    msgpack_pack_int64(&pk, record_id);
    msgpack_pack_str_with_body(&pk, "case_id", 7);
    msgpack_pack_int64(&pk, strtoll(PQgetvalue(r, t, 1), NULL, 10));
    s_pack_kstr(&pk, "case_no", PQgetvalue(r, t, 2));
    s_pack_kstr(&pk, "type", PQgetvalue(r, t, 3));
    s_pack_kstr(&pk, "decision_no", PQgetvalue(r, t, 4));
    msgpack_pack_str_with_body(&pk, "late", 4);
    if (PQgetvalue(r, t, 6)[0] == 't')
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_str_with_body(&pk, "record", 6);
    jsonmp_err_t jerr = {0};
    if (jsonmp_from_json(PQgetvalue(r, t, 5), (size_t)PQgetlength(r, t, 5), "record", 3, &sb,
                         &jerr) < 0) {
        log_error("event not emitted", "event=published record_id=%" PRId64 " error=%s", record_id,
                  jerr.reason);
        msgpack_sbuffer_destroy(&sb);
        out->bad = true;
        return -1;
    }
    return events_out_add_packed(out, "published", agency, &sb);
}

/* publication.approve for every request of the turn with one UPDATE (pub_approve_many)
 * and one outbox write; a request naming a record already named earlier in the turn is
 * answered after, one at a time (it then finds the record published), and so is one that
 * published nothing (unknown record, another agency's, not a draft, or a row that moved
 * under the statement: workflow_publish tells which). Returns 0, or -1 (the turn is
 * rolled back). */
static int
s_approve(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    static const char *const only[] = {"record_id", NULL};
    if (n == 0)
        return 0;
    int rc = -1;
    char(*ids)[24] = calloc(n, sizeof *ids);
    /* per request: 0 invalid (answered), 1 in the batch, 2 a repeat (one at a time) */
    unsigned char *how = calloc(n, 1);
    int *row = malloc(n * sizeof *row);
    pgarray_t a[3] = {{0}};
    PGresult *r = NULL;
    events_out_t out = {0};
    if (!ids || !how || !row)
        goto done;
    pgarray_begin(&a[0], PGARRAY_INT8);
    pgarray_begin(&a[1], PGARRAY_TEXT);
    pgarray_begin(&a[2], PGARRAY_TEXT);
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(reqs[i], &err);
        row[i] = -1;
        if (s_record_id(&b, ids[i]) < 0 || evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        how[i] = 1;
        for (size_t j = 0; j < i && how[i] == 1; j++)
            if (how[j] == 1 && strcmp(ids[j], ids[i]) == 0)
                how[i] = 2;
        if (how[i] == 1) {
            pgarray_int8(&a[0], strtoll(ids[i], NULL, 10));
            pgarray_str(&a[1], rpc_req_agency(reqs[i]));
            pgarray_str(&a[2], rpc_req_identity(reqs[i]));
        }
    }
    /* The k-th element of the arrays is the k-th request with how == 1. */
    size_t *pos = a[0].count ? malloc(a[0].count * sizeof *pos) : NULL;
    if (a[0].count && !pos)
        goto done;
    for (size_t i = 0, k = 0; i < n; i++)
        if (how[i] == 1)
            pos[k++] = i;
    if (a[0].count) {
        r = pgarray_exec(db, "pub_approve_many", a, 3, 0);
        if (!r) {
            free(pos);
            goto done;
        }
        for (int t = 0; t < PQntuples(r); t++) {
            long k = strtol(PQgetvalue(r, t, 0), NULL, 10) - 1;
            if (k >= 0 && (size_t)k < a[0].count)
                row[pos[k]] = t;
        }
    }
    free(pos);
    /* The published events in request order: each carries the public record (双公示
     * fields included), so creditpush needs nothing else. */
    for (size_t i = 0; i < n; i++) {
        if (row[i] < 0)
            continue;
        if (s_published_event(&out, rpc_req_agency(reqs[i]), strtoll(ids[i], NULL, 10), r, row[i]) <
            0)
            goto done;
    }
    if (events_out_flush(db, &out) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (how[i] == 0)
            continue;
        char state[16] = "published";
        int wrc = 0;
        if (how[i] == 2 || row[i] < 0)
            wrc = workflow_publish(db, ids[i], rpc_req_agency(reqs[i]), rpc_req_identity(reqs[i]),
                                   state);
        if (s_outcome(reqs[i], wrc, ids[i], state) < 0)
            goto done;
    }
    rc = 0;
done:
    PQclear(r);
    for (int f = 0; f < 3; f++)
        pgarray_free(&a[f]);
    events_out_free(&out);
    free(row);
    free(how);
    free(ids);
    return rc;
}

typedef int(s_reason_fn)(db_t *db, const char *id, const char *agency, const char *identity,
                         const char *reason, char state[16]);

/* reject and repair: {record_id, reason}. */
static int
s_reason_op(db_t *db, rpc_req_t *const *reqs, size_t n, s_reason_fn *fn)
{
    static const char *const only[] = {"record_id", "reason", NULL};
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *req = reqs[i];
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(req, &err);
        char id[24], reason[2001], state[16] = "";
        if (s_record_id(&b, id) < 0 ||
            evmsg_map_str(&b, "reason", EVMSG_NONEMPTY, 2000, reason) != 1 ||
            evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(req, &err);
            continue;
        }
        int rc = fn(db, id, rpc_req_agency(req), rpc_req_identity(req), reason, state);
        if (s_outcome(req, rc, id, state) < 0)
            return -1;
    }
    return 0;
}

static int
s_reject(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    return s_reason_op(db, reqs, n, workflow_reject);
}

static int
s_repair(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    return s_reason_op(db, reqs, n, workflow_repair);
}

/* publication.resubmit: {record_id, conclusion?, legal_basis?, category?}. */
static int
s_resubmit(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    static const char *const only[] = {"record_id", "conclusion", "legal_basis", "category", NULL};
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *req = reqs[i];
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(req, &err);
        char id[24], state[16] = "";
        char *conclusion = malloc(4001), *basis = malloc(2001), category[201];
        if (!conclusion || !basis) {
            free(conclusion);
            free(basis);
            return -1;
        }
        int hc = 0, hb = 0, hk = 0;
        if (s_record_id(&b, id) == 0) {
            hc = evmsg_map_str(&b, "conclusion", EVMSG_OPTIONAL | EVMSG_NONEMPTY, 4000, conclusion);
            hb = evmsg_map_str(&b, "legal_basis", EVMSG_OPTIONAL | EVMSG_NONEMPTY, 2000, basis);
            hk = evmsg_map_str(&b, "category", EVMSG_OPTIONAL | EVMSG_NONEMPTY, 200, category);
            evmsg_map_only(&b, only);
        }
        int rc = 0;
        if (err.reason[0])
            rpc_fail_evmsg(req, &err);
        else {
            workflow_fix_t fix = {hc == 1 ? conclusion : NULL, hb == 1 ? basis : NULL,
                                  hk == 1 ? category : NULL};
            rc = workflow_resubmit(db, id, rpc_req_agency(req), rpc_req_identity(req), &fix, state);
            rc = s_outcome(req, rc, id, state);
        }
        free(conclusion);
        free(basis);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* publication.settings: {publish_minor}. */
static int
s_settings(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    static const char *const only[] = {"publish_minor", NULL};
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *req = reqs[i];
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(req, &err);
        bool minor = false;
        evmsg_map_bool(&b, "publish_minor", 0, &minor);
        evmsg_map_only(&b, only);
        if (err.reason[0]) {
            rpc_fail_evmsg(req, &err);
            continue;
        }
        const char *agency = rpc_req_agency(req);
        if (workflow_settings(db, agency, rpc_req_identity(req), minor) < 0)
            return -1;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "agency", 6);
        msgpack_pack_str_with_body(&pk, agency, strlen(agency));
        msgpack_pack_str_with_body(&pk, "publish_minor", 13);
        if (minor)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        int rc = rpc_ok(req, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        if (rc < 0)
            return -1;
    }
    return 0;
}

int
workflow_register(rpc_server_t *rpc, publication_t *app)
{
    /* The agency's designated publisher (专人审查): identity dept:<code>:publisher. */
    if (rpc_register(rpc, &(rpc_op_t){"publication.approve", RPC_WRITE, "dept:*:publisher",
                                      s_approve, app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"publication.reject", RPC_WRITE, "dept:*:publisher", s_reject,
                                      app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"publication.repair", RPC_WRITE, "dept:*:publisher", s_repair,
                                      app}) < 0 ||
        /* The agency corrects a rejected draft: its case-handling system or an officer;
         * its publisher checks it again (so the checker is never the only hand). */
        rpc_register(rpc, &(rpc_op_t){"publication.resubmit", RPC_WRITE,
                                      "dept:*:system dept:*:officer dept:*:publisher", s_resubmit,
                                      app}) < 0 ||
        /* The agency's settings, as it sets its registry lists (dept:*:system). */
        rpc_register(rpc, &(rpc_op_t){"publication.settings", RPC_WRITE, "dept:*:system",
                                      s_settings, app}) < 0)
        return -1;
    return 0;
}

/* ---- Timers -------------------------------------------------------------------------- */

static date_t
s_date(const char *s)
{
    date_t d = 0;
    date_parse(s, strlen(s), &d, NULL);
    return d;
}

/* timer_source_fn over pub_unarmed's rows: a draft's warning and deadline, a published
 * record's expiry; a record in any other state (or gone) has nothing to arm. */
static int
s_unarmed_source(void *arg, timer_batch_t *batch)
{
    const PGresult *r = arg;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 0), *state = PQgetvalue(r, i, 2);
        if (strcmp(state, "draft") == 0) {
            rc = timer_batch_add(batch, WORKFLOW_TIMER_WARN, id,
                                 workflow_day_ms(s_date(PQgetvalue(r, i, 3))));
            if (rc == 0)
                rc = timer_batch_add(batch, WORKFLOW_TIMER_DUE, id,
                                     workflow_day_ms(s_date(PQgetvalue(r, i, 4)) + 1));
        } else if (strcmp(state, "published") == 0 && !PQgetisnull(r, i, 5)) {
            rc = timer_batch_add(batch, WORKFLOW_TIMER_EXPIRE, id,
                                 workflow_day_ms(s_date(PQgetvalue(r, i, 5)) + 1));
        }
    }
    return rc;
}

int
workflow_arm_new(db_t *db, timers_t *timers)
{
    PGresult *r = db_exec_prepared(db, "pub_unarmed", 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n == 0 || timer_arm_all(timers, s_unarmed_source, r) < 0) {
        PQclear(r);
        return n == 0 ? 0 : -1; /* Redis failed: the queue stays, the next turn tries again */
    }
    pgarray_t a[2] = {{0}};
    pgarray_begin(&a[0], PGARRAY_INT8);
    pgarray_begin(&a[1], PGARRAY_INT8);
    for (int i = 0; i < n; i++) {
        pgarray_int8(&a[0], strtoll(PQgetvalue(r, i, 0), NULL, 10));
        pgarray_int8(&a[1], strtoll(PQgetvalue(r, i, 1), NULL, 10));
    }
    PQclear(r);
    r = pgarray_exec(db, "pub_mark_armed", a, 2, 0);
    pgarray_free(&a[0]);
    pgarray_free(&a[1]);
    if (!r)
        return -1;
    PQclear(r);
    return n;
}

long
workflow_arm_queued(db_t *db, timers_t *timers, int budget_ms)
{
    int64_t end = util_mono_ms() + budget_ms;
    long total = 0;
    int n;
    do {
        if ((n = workflow_arm_new(db, timers)) < 0)
            return -1;
        total += n;
    } while (n == WORKFLOW_ARM_BATCH && util_mono_ms() < end);
    return total;
}

static int
s_source(void *arg, timer_batch_t *batch)
{
    db_t *db = arg;
    PGresult *r = db_exec_prepared(db, "pub_drafts", 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 0);
        bool draft = strcmp(PQgetvalue(r, i, 1), "draft") == 0;
        if (draft && PQgetvalue(r, i, 5)[0] != 't')
            rc = timer_batch_add(batch, WORKFLOW_TIMER_WARN, id,
                                 workflow_day_ms(s_date(PQgetvalue(r, i, 2))));
        if (draft && rc == 0)
            rc = timer_batch_add(batch, WORKFLOW_TIMER_DUE, id,
                                 workflow_day_ms(s_date(PQgetvalue(r, i, 3)) + 1));
        if (rc == 0 && !draft && !PQgetisnull(r, i, 4))
            rc = timer_batch_add(batch, WORKFLOW_TIMER_EXPIRE, id,
                                 workflow_day_ms(s_date(PQgetvalue(r, i, 4)) + 1));
    }
    PQclear(r);
    return rc;
}

long
workflow_rearm(db_t *db, timers_t *timers)
{
    return timer_rearm(timers, s_source, db);
}

typedef struct {
    const char *kind, *key;
} s_fire_t;

static int
s_fire_tx(db_t *db, void *arg)
{
    s_fire_t *f = arg;
    bool due = strcmp(f->kind, WORKFLOW_TIMER_DUE) == 0;
    bool expire = strcmp(f->kind, WORKFLOW_TIMER_EXPIRE) == 0;
    const char *stmt = expire ? "pub_expire" : due ? "pub_overdue" : "pub_warn";
    const char *event = expire ? "expired" : due ? "overdue" : "warning";
    PGresult *r = db_exec_prepared(db, stmt, 1, (const char *[]){f->key}, NULL, NULL, 0);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1) {
        json_t *e = json_pack(
            "{s:I,s:I,s:s,s:s,s:s}", "record_id", (json_int_t)strtoll(f->key, NULL, 10), "case_id",
            (json_int_t)strtoll(PQgetvalue(r, 0, 1), NULL, 10), "case_no", PQgetvalue(r, 0, 2),
            "type", PQgetvalue(r, 0, 3), expire ? "expires_on" : "due_on", PQgetvalue(r, 0, 4));
        rc = e ? events_emit(db, event, PQgetvalue(r, 0, 0), e) : -1;
        json_decref(e);
    }
    PQclear(r);
    return rc;
}

int
workflow_fire(db_t *db, const char *kind, const char *key)
{
    if (strcmp(kind, WORKFLOW_TIMER_DUE) != 0 && strcmp(kind, WORKFLOW_TIMER_WARN) != 0 &&
        strcmp(kind, WORKFLOW_TIMER_EXPIRE) != 0)
        return 0;
    char *end = NULL;
    long long id = strtoll(key, &end, 10);
    if (id <= 0 || *end)
        return 0;
    s_fire_t f = {kind, key};
    return db_tx(db, s_fire_tx, &f, 3) == 0 ? 0 : -1;
}
