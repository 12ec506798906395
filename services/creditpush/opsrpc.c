/* opsrpc: dead letters, retry, queue depth, export. */
#include "opsrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "date.h"
#include "jsonmp.h"

#define S_ALLOW "svc:sxctl svc:ops"

/* Answers req with the JSON object o (consumed). 0, or -1 when out of memory. */
static int
s_ok_json(rpc_req_t *req, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = jsonmp_from_json(text, strlen(text), "result", 2, &sb, NULL);
    free(text);
    if (rc == 0)
        rc = rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Rows of r as an array of objects, columns by name; NULL values as null. */
static json_t *
s_rows(PGresult *r)
{
    json_t *a = json_array();
    for (int i = 0; a && i < PQntuples(r); i++) {
        json_t *o = json_object();
        for (int c = 0; o && c < PQnfields(r); c++)
            json_object_set_new(o, PQfname(r, c),
                                PQgetisnull(r, i, c) ? json_null()
                                                     : json_string(PQgetvalue(r, i, c)));
        json_array_append_new(a, o);
    }
    return a;
}

static int
s_dead_letters(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    static const char *const only[] = {"after_id", "limit", NULL};
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(reqs[i], &err);
        uint64_t after = 0, limit = 100;
        if (evmsg_map_uint(&b, "after_id", EVMSG_OPTIONAL, INT64_MAX, &after) < 0 ||
            evmsg_map_uint(&b, "limit", EVMSG_OPTIONAL, 1000, &limit) < 0 ||
            evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        char a[24], l[24];
        snprintf(a, sizeof a, "%llu", (unsigned long long)after);
        snprintf(l, sizeof l, "%llu", (unsigned long long)(limit ? limit : 1));
        const char *v[2] = {a, l};
        PGresult *r = db_exec_prepared(db, "cp_dead_list", 2, v, NULL, NULL, 0);
        if (!r)
            return -1;
        int rc = s_ok_json(reqs[i], json_pack("{s:o}", "items", s_rows(r)));
        PQclear(r);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int
s_retry(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    queue_app_t *app = arg;
    static const char *const only[] = {"id", NULL};
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(reqs[i], &err);
        uint64_t id = 0;
        if (evmsg_map_uint(&b, "id", EVMSG_REQUIRED, INT64_MAX, &id) != 1 ||
            evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        char s[24];
        snprintf(s, sizeof s, "%llu", (unsigned long long)id);
        const char *v[1] = {s};
        PGresult *r = db_exec_prepared(db, "cp_retry_one", 1, v, NULL, NULL, 0);
        if (!r)
            return -1;
        const char *state = PQntuples(r) ? PQgetvalue(r, 0, 0) : NULL;
        bool has_data = PQntuples(r) && PQgetvalue(r, 0, 1)[0] == 't';
        int rc = 0;
        if (!state)
            rpc_fail(reqs[i], "not_found", "body.id", "没有这条推送", "no such item");
        else if (strcmp(state, "dead") != 0)
            rpc_fail(reqs[i], "wrong_state", "body.id", "该推送不是死信", "the item is not dead");
        else if (!has_data)
            rpc_fail(reqs[i], "cannot_retry", "body.id", "该记录无法生成合规的双公示数据",
                     "the record could not be built: see its reason");
        else {
            PQclear(r);
            if (!(r = db_exec_prepared(db, "cp_requeue", 1, v, NULL, NULL, 0)))
                return -1;
            app->pending = true;
            rc =
                s_ok_json(reqs[i], json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "queued"));
        }
        PQclear(r);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int
s_depth(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(reqs[i], &err);
        static const char *const only[] = {NULL};
        if (evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        PGresult *r = db_exec_prepared(db, "cp_depth", 0, NULL, NULL, NULL, 0);
        if (!r)
            return -1;
        json_t *o = json_object();
        for (int c = 0; o && c < PQnfields(r); c++)
            json_object_set_new(o, PQfname(r, c),
                                json_integer(strtoll(PQgetvalue(r, 0, c), NULL, 10)));
        PQclear(r);
        if (s_ok_json(reqs[i], o) < 0)
            return -1;
    }
    return 0;
}

#define S_EXPORT_LIMIT 200 /* records read for one page at most */
#define S_EXPORT_BYTES                                                                             \
    45000 /* JSON bytes of one page's records: the packed result stays under                       \
           * RPC_RESULT_MAX (msgpack is no longer than the JSON) */

/* creditpush.export: the records as pushed (data), by decision date, a page at a time. */
static int
s_export(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    static const char *const only[] = {"from", "to", "kind", "after_id", "limit", NULL};
    static const char *const kinds[] = {"penalty", "licence", NULL};
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {0};
        evmsg_map_t b = rpc_req_body(reqs[i], &err);
        date_t from = 0, to = 0;
        int kind = -1;
        uint64_t after = 0, limit = 100;
        if (evmsg_map_date(&b, "from", EVMSG_REQUIRED, &from) != 1 ||
            evmsg_map_date(&b, "to", EVMSG_REQUIRED, &to) != 1 ||
            evmsg_map_enum(&b, "kind", EVMSG_OPTIONAL, kinds, &kind) < 0 ||
            evmsg_map_uint(&b, "after_id", EVMSG_OPTIONAL, INT64_MAX, &after) < 0 ||
            evmsg_map_uint(&b, "limit", EVMSG_OPTIONAL, S_EXPORT_LIMIT, &limit) < 0 ||
            evmsg_map_only(&b, only) < 0) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        if (to < from) {
            rpc_fail(reqs[i], "bad_field", "body.to", "结束日期早于开始日期",
                     "must not be before from");
            continue;
        }
        char f[11], t[11], a[24], l[24];
        date_format(from, f);
        date_format(to, t);
        f[4] = f[7] = t[4] = t[7] = '/'; /* the records' dates are YYYY/MM/DD */
        snprintf(a, sizeof a, "%llu", (unsigned long long)after);
        snprintf(l, sizeof l, "%llu", (unsigned long long)(limit ? limit : 1));
        const char *v[5] = {f, t, kind >= 0 ? kinds[kind] : "", a, l};
        PGresult *r = db_exec_prepared(db, "cp_export", 5, v, NULL, NULL, 0);
        if (!r)
            return -1;
        json_t *items = json_array();
        size_t bytes = 0;
        int rows = PQntuples(r), taken = 0;
        const char *last = "0";
        for (; items && taken < rows; taken++) {
            const char *data = PQgetvalue(r, taken, 2);
            size_t len = strlen(data) + 64;
            if (taken > 0 && bytes + len > S_EXPORT_BYTES)
                break;
            if (len > S_EXPORT_BYTES) {
                /* One record of fields near their 2000-byte limit can outgrow a reply:
                 * said, not skipped, so that an export is never silently short. */
                char en[RPC_TEXT_MAX], zh[RPC_TEXT_MAX];
                snprintf(en, sizeof en, "record item %s is larger than a reply can carry",
                         PQgetvalue(r, taken, 0));
                snprintf(zh, sizeof zh, "记录 %s 超出单次应答的大小上限", PQgetvalue(r, taken, 0));
                rpc_fail(reqs[i], "too_large", "body.after_id", zh, en);
                json_decref(items);
                items = NULL;
                break;
            }
            json_t *d = json_loads(data, 0, NULL);
            json_array_append_new(items, json_pack("{s:s,s:s,s:o*}", "id", PQgetvalue(r, taken, 0),
                                                   "kind", PQgetvalue(r, taken, 1), "data", d));
            bytes += len;
            last = PQgetvalue(r, taken, 0);
        }
        if (!items) {
            PQclear(r);
            continue;
        }
        /* More may follow when the page was cut for size or read as many as it asked. */
        bool more = taken < rows || (uint64_t)rows == (limit ? limit : 1);
        json_t *o = json_pack("{s:o*,s:I}", "items", items, "next_after_id",
                              (json_int_t)(more ? strtoll(last, NULL, 10) : 0));
        PQclear(r);
        if (s_ok_json(reqs[i], o) < 0)
            return -1;
    }
    return 0;
}

/* Statements, registered on the rpc door's connection by opsrpc_prepare. */
int
opsrpc_prepare(db_t *db)
{
    if (db_prepare(db, "cp_dead_list",
                   "SELECT id, idem_key AS key, op, kind, record_id, agency, decision_no, "
                   "attempts, reason, answer, created_at FROM creditpush.item WHERE "
                   "state = 'dead' AND id > $1 ORDER BY id LIMIT $2",
                   2) < 0 ||
        db_prepare(db, "cp_retry_one",
                   "SELECT state, data IS NOT NULL FROM creditpush.item WHERE id = $1 FOR UPDATE",
                   1) < 0 ||
        db_prepare(db, "cp_requeue",
                   "UPDATE creditpush.item SET state = 'queued', next_at = now(), attempts = 0 "
                   "WHERE id = $1 AND state = 'dead'",
                   1) < 0 ||
        db_prepare(db, "cp_depth",
                   "SELECT count(*) FILTER (WHERE state = 'queued') AS queued, "
                   "count(*) FILTER (WHERE state = 'queued' AND next_at <= now()) AS due, "
                   "count(*) FILTER (WHERE state = 'queued' AND priority = 0) AS key_domain, "
                   "count(*) FILTER (WHERE state = 'dead') AS dead, "
                   "count(*) FILTER (WHERE state = 'sent') AS sent, "
                   "coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE "
                   "state = 'queued'))::bigint, 0) AS oldest_queued_s FROM creditpush.item",
                   0) < 0 ||
        /* Records as pushed whose decision date (CF_JDRQ / XK_JDRQ, YYYY/MM/DD) is in
         * [$1, $2]: not dead, and not since withdrawn (撤销) or repaired (信用修复). */
        db_prepare(db, "cp_export",
                   "SELECT id, kind, data::text FROM creditpush.item i WHERE op = 'publish' "
                   "AND data IS NOT NULL AND state <> 'dead' AND "
                   "coalesce(data ->> 'CF_JDRQ', data ->> 'XK_JDRQ') BETWEEN $1 AND $2 AND "
                   "($3 = '' OR kind = $3) AND id > $4::bigint AND NOT EXISTS (SELECT 1 FROM "
                   "creditpush.item c WHERE c.record_id = i.record_id AND c.op <> 'publish' AND "
                   "c.state <> 'dead') ORDER BY id LIMIT $5",
                   5) < 0)
        return -1;
    return 0;
}

int
opsrpc_register(rpc_server_t *rpc, queue_app_t *app)
{
    if (rpc_register(rpc, &(rpc_op_t){"creditpush.dead_letters", RPC_READ, S_ALLOW, s_dead_letters,
                                      app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"creditpush.retry", RPC_WRITE, S_ALLOW, s_retry, app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"creditpush.depth", RPC_READ, S_ALLOW, s_depth, app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"creditpush.export", RPC_READ, S_ALLOW, s_export, app}) < 0)
        return -1;
    return 0;
}
