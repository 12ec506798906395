/* opsrpc: dead letters, retry, queue depth. */
#include "opsrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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
                   0) < 0)
        return -1;
    return 0;
}

int
opsrpc_register(rpc_server_t *rpc, queue_app_t *app)
{
    if (rpc_register(rpc, &(rpc_op_t){"creditpush.dead_letters", RPC_READ, S_ALLOW, s_dead_letters,
                                      app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"creditpush.retry", RPC_WRITE, S_ALLOW, s_retry, app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"creditpush.depth", RPC_READ, S_ALLOW, s_depth, app}) < 0)
        return -1;
    return 0;
}
