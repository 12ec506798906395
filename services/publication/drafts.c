/* drafts: the publisher's work list, `publication.drafts` (drafts.h). */
#include "drafts.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <msgpack.h>

#include "log.h"

/* Bytes an item costs in a reply beside its strings: eleven keys and their scalars. */
#define S_ITEM_OVERHEAD 160
/* Bytes the result map costs beside its items. */
#define S_RESULT_OVERHEAD 128

/* Drafts and rejected records of one agency after an id, by id; late as
 * publication.approve counts it (today in China is past due_on). */
static const char *const s_sql =
    "SELECT id, case_id, case_no, type, decision_no, to_char(decision_date, 'YYYY-MM-DD'), "
    "to_char(due_on, 'YYYY-MM-DD'), (now() AT TIME ZONE 'Asia/Shanghai')::date > due_on, "
    "state, rejected_reason, rejections FROM publication.record "
    "WHERE agency = $1 AND state IN ('draft', 'rejected') AND id > $2::int8 "
    "ORDER BY id LIMIT $3::int8";

static void
s_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void
s_kstr(msgpack_packer *pk, const char *k, const PGresult *r, int row, int col)
{
    s_key(pk, k);
    if (PQgetisnull(r, row, col))
        msgpack_pack_nil(pk);
    else
        msgpack_pack_str_with_body(pk, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

static void
s_kuint(msgpack_packer *pk, const char *k, const PGresult *r, int row, int col)
{
    s_key(pk, k);
    msgpack_pack_uint64(pk, strtoull(PQgetvalue(r, row, col), NULL, 10));
}

/* The body, validated here and nowhere else: `after_id` (optional, 0..INT64_MAX,
 * default 0) and `limit` (optional, 1..DRAFTS_LIMIT_MAX). Returns 0, or -1 with the
 * request answered (the error names the field). */
static int
s_parse(rpc_req_t *req, uint64_t *after, uint64_t *limit)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err);
    static const char *const keys[] = {"after_id", "limit", NULL};
    int64_t lim = DRAFTS_LIMIT_DEF;
    *after = 0;
    evmsg_map_only(&body, keys);
    evmsg_map_uint(&body, "after_id", EVMSG_OPTIONAL, INT64_MAX, after);
    evmsg_map_int(&body, "limit", EVMSG_OPTIONAL, 1, DRAFTS_LIMIT_MAX, &lim);
    *limit = (uint64_t)lim;
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return -1;
    }
    return 0;
}

/* One request. Returns 0 (answered), or -1 when the database failed. */
static int
s_one(db_t *db, rpc_req_t *req)
{
    uint64_t after, limit;
    if (s_parse(req, &after, &limit) < 0)
        return 0;
    char a[24], l[24];
    snprintf(a, sizeof a, "%" PRIu64, after);
    snprintf(l, sizeof l, "%" PRIu64, limit + 1); /* one more: is there a next page? */
    const char *values[3] = {rpc_req_agency(req), a, l};
    PGresult *r = db_exec_prepared(db, "pub_drafts_list", 3, values, NULL, NULL, 0);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r), k = 0, used = 0;
    const size_t budget = RPC_RESULT_MAX - S_RESULT_OVERHEAD;
    bool more = rows > limit;
    if (rows > limit)
        rows = (size_t)limit;
    /* A page stops early to stay under the reply limit (a rejection reason is up to
     * 2000 bytes). */
    for (; k < rows; k++) {
        size_t cost = S_ITEM_OVERHEAD;
        for (int c = 0; c < PQnfields(r); c++)
            cost += (size_t)PQgetlength(r, (int)k, c);
        if (used + cost > budget)
            break;
        used += cost;
    }
    more = more || k < rows;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_key(&pk, "items");
    msgpack_pack_array(&pk, k);
    for (size_t j = 0; j < k; j++) {
        int row = (int)j;
        msgpack_pack_map(&pk, 11);
        s_kuint(&pk, "id", r, row, 0);
        s_kuint(&pk, "case_id", r, row, 1);
        s_kstr(&pk, "case_no", r, row, 2);
        s_kstr(&pk, "type", r, row, 3);
        s_kstr(&pk, "decision_no", r, row, 4);
        s_kstr(&pk, "decision_date", r, row, 5);
        s_kstr(&pk, "due_on", r, row, 6);
        s_key(&pk, "late");
        if (PQgetvalue(r, row, 7)[0] == 't')
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        s_kstr(&pk, "state", r, row, 8);
        s_kstr(&pk, "rejected_reason", r, row, 9);
        s_kuint(&pk, "rejections", r, row, 10);
    }
    /* The after_id of the next page: the last id returned; 0 after the last page. */
    s_key(&pk, "next_after_id");
    msgpack_pack_uint64(&pk, more && k ? strtoull(PQgetvalue(r, (int)k - 1, 0), NULL, 10) : 0);
    PQclear(r);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_drafts(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    if (db_prepare(db, "pub_drafts_list", s_sql, 3) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!rpc_req_agency(reqs[i])) {
            rpc_fail(reqs[i], "forbidden", "op", "无权执行此操作",
                     "only an agency may call this op");
            continue;
        }
        if (s_one(db, reqs[i]) < 0)
            return -1;
    }
    return 0;
}

int
drafts_register(rpc_server_t *rpc, publication_t *app)
{
    if (rpc_register(
            rpc, &(rpc_op_t){"publication.drafts", RPC_READ, DRAFTS_ALLOW, s_drafts, app}) < 0) {
        log_error("publication.drafts not registered", "allow=%s", DRAFTS_ALLOW);
        return -1;
    }
    return 0;
}
