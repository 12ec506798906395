/* events_since: the rpc op `events.since` over a service's own outbox (events_since.h). */
#include "events_since.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>
#include <msgpack.h>

#include "log.h"

/* Bytes an event costs in a reply beside its topic and data: its keys and integers. */
#define S_EVENT_OVERHEAD 80
/* Bytes the result map costs beside its events: events, last_aseq, more. */
#define S_RESULT_OVERHEAD 256

static const char *const s_tmpl =
    "SELECT topic, seq, aseq, at, v, data FROM {s}.outbox"
    " WHERE agency = $1 AND aseq IS NOT NULL AND aseq > $2::int8 ORDER BY aseq LIMIT $3::int8";

static uint64_t
s_be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v = v << 8 | u[k];
    return v;
}

static void
s_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* The body, validated here and nowhere else: `from` (required, 0..INT64_MAX) and `limit`
 * (optional, 1..EVENTS_SINCE_MAX). Returns 0, or -1 with the request answered (the error
 * names the field). */
static int
s_parse(rpc_req_t *req, uint64_t *from, uint64_t *limit)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err);
    static const char *const keys[] = {"from", "limit", NULL};
    int64_t lim = EVENTS_SINCE_MAX;
    *from = 0;
    evmsg_map_only(&body, keys);
    evmsg_map_uint(&body, "from", EVMSG_REQUIRED, INT64_MAX, from);
    evmsg_map_int(&body, "limit", EVMSG_OPTIONAL, 1, EVENTS_SINCE_MAX, &lim);
    *limit = (uint64_t)lim;
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return -1;
    }
    return 0;
}

/* One request: the caller's own sequenced events after `from`. Returns 0 (the request is
 * answered), or -1 when the database failed. */
static int
s_one(db_t *db, const char *schema, rpc_req_t *req)
{
    uint64_t from, limit;
    if (s_parse(req, &from, &limit) < 0)
        return 0;
    char name[DB_STMT_NAME_MAX];
    if (db_prepare_in(db, schema, "events_since", s_tmpl, 3, name) < 0)
        return -1;
    char f[24], l[24];
    snprintf(f, sizeof f, "%" PRIu64, from);
    snprintf(l, sizeof l, "%" PRIu64, limit + 1); /* one more: is there more? */
    const char *values[3] = {rpc_req_agency(req), f, l};
    PGresult *r = db_exec_prepared(db, name, 3, values, NULL, NULL, 1);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r), k = 0, used = 0;
    const size_t budget = RPC_RESULT_MAX - S_RESULT_OVERHEAD;
    bool more = rows > limit;
    if (rows > limit)
        rows = (size_t)limit;
    for (; k < rows; k++) {
        size_t cost = (size_t)PQgetlength(r, (int)k, 0) + (size_t)PQgetlength(r, (int)k, 5) +
                      S_EVENT_OVERHEAD;
        if (used + cost > budget)
            break;
        used += cost;
    }
    more = more || k < rows;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    s_key(&pk, "events");
    msgpack_pack_array(&pk, k);
    uint64_t last = from;
    for (size_t j = 0; j < k; j++) {
        int row = (int)j;
        last = s_be64(PQgetvalue(r, row, 2));
        msgpack_pack_map(&pk, 6);
        s_key(&pk, "topic");
        msgpack_pack_str_with_body(&pk, PQgetvalue(r, row, 0), (size_t)PQgetlength(r, row, 0));
        s_key(&pk, "seq");
        msgpack_pack_uint64(&pk, s_be64(PQgetvalue(r, row, 1)));
        s_key(&pk, "aseq");
        msgpack_pack_uint64(&pk, last);
        s_key(&pk, "at");
        msgpack_pack_int64(&pk, (int64_t)s_be64(PQgetvalue(r, row, 3)));
        const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, 4);
        s_key(&pk, "v");
        msgpack_pack_int64(&pk, (int64_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 |
                                          (uint32_t)v[2] << 8 | v[3]));
        /* data: the event's map exactly as stored (bus_emit checked it). */
        s_key(&pk, "data");
        msgpack_sbuffer_write(&sb, PQgetvalue(r, row, 5), (size_t)PQgetlength(r, row, 5));
    }
    s_key(&pk, "last_aseq");
    msgpack_pack_uint64(&pk, last);
    s_key(&pk, "more");
    if (more)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    PQclear(r);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_handle(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    const char *schema = arg;
    for (size_t i = 0; i < n; i++) {
        if (!rpc_req_agency(reqs[i])) {
            rpc_fail(reqs[i], "forbidden", "op", "无权执行此操作",
                     "only an agency may call this op");
            continue;
        }
        if (s_one(db, schema, reqs[i]) < 0)
            return -1;
    }
    return 0;
}

int
events_since_register(rpc_server_t *rpc, const char *schema, const char *allow)
{
    size_t len = schema ? strlen(schema) : 0;
    bool good =
        len >= 1 && len <= 63 && (schema[0] == '_' || (schema[0] >= 'a' && schema[0] <= 'z'));
    for (size_t i = 1; good && i < len; i++)
        good = schema[i] == '_' || (schema[i] >= 'a' && schema[i] <= 'z') ||
               (schema[i] >= '0' && schema[i] <= '9');
    if (!rpc || !good || !allow) {
        log_error("events.since not registered: bad arguments", "schema=%s",
                  schema ? schema : "(null)");
        return -1;
    }
    return rpc_register(
        rpc, &(rpc_op_t){EVENTS_SINCE_OP, RPC_READ, allow, s_handle, (void *)(uintptr_t)schema});
}
