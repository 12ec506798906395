/* reviewers: see reviewers.h. */
#include "reviewers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evmsg.h"
#include "log.h"
#include "review.h"

int
reviewers_prepare(db_t *db)
{
    if (db_prepare(db, "rv_assign",
                   "SELECT o.agency, o.cert_no, o.agency <> $1 FROM review.officer o"
                   " WHERE o.active AND o.reviewer AND (o.agency = $1 OR o.agency = $3)"
                   " AND NOT EXISTS (SELECT 1 FROM review.case_officer c"
                   "  WHERE c.case_id = $2 AND c.cert_no = o.cert_no)"
                   " ORDER BY o.agency <> $1,"
                   "  (SELECT count(*) FROM review.task t WHERE t.status = 'open'"
                   "   AND t.reviewer_agency = o.agency AND t.reviewer = o.cert_no),"
                   "  o.legal_qualified DESC, o.cert_no LIMIT 1",
                   3) < 0 ||
        db_prepare(db, "rv_handled",
                   "SELECT 1 FROM review.case_officer WHERE case_id = $1 AND cert_no = $2", 2) < 0)
        return -1;
    return db_prepare(db, "rv_is_reviewer",
                      "SELECT 1 FROM review.officer WHERE agency = $1 AND cert_no = $2"
                      " AND active AND reviewer",
                      2);
}

int
reviewers_assign(db_t *tx, const char *agency, int64_t case_id, const char *pool,
                 char rev_agency[65], char cert_no[65], bool *pool_out)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, case_id);
    const char *p[3] = {agency, id, pool ? pool : agency};
    PGresult *r = db_exec_prepared(tx, "rv_assign", 3, p, NULL, NULL, 0);
    if (!r)
        return -1;
    rev_agency[0] = cert_no[0] = '\0';
    *pool_out = false;
    int found = PQntuples(r) == 1;
    if (found) {
        snprintf(rev_agency, 65, "%s", PQgetvalue(r, 0, 0));
        snprintf(cert_no, 65, "%s", PQgetvalue(r, 0, 1));
        *pool_out = PQgetvalue(r, 0, 2)[0] == 't';
    }
    PQclear(r);
    return found;
}

bool
reviewers_understaffed(int64_t reviewers, int64_t officers)
{
    return officers > 0 && reviewers * 100 < (int64_t)REVIEWERS_MIN_PERCENT * officers;
}

static int
s_exists(db_t *tx, const char *stmt, const char *a, const char *b)
{
    const char *p[2] = {a, b};
    PGresult *r = db_exec_prepared(tx, stmt, 2, p, NULL, NULL, 0);
    if (!r)
        return -1;
    int found = PQntuples(r) > 0;
    PQclear(r);
    return found;
}

int
reviewers_handled(db_t *tx, int64_t case_id, const char *cert_no)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, case_id);
    return s_exists(tx, "rv_handled", id, cert_no);
}

int
reviewers_is_reviewer(db_t *tx, const char *agency, const char *cert_no)
{
    return s_exists(tx, "rv_is_reviewer", agency, cert_no);
}

/* review.staffing (read): per agency, officers, reviewers, and the item-19 flag. */
static int
s_staffing(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(reqs[i], &err);
        static const char *const keys[] = {NULL};
        evmsg_map_only(&body, keys);
        if (err.reason[0]) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        PGresult *r = db_query(db,
                               "SELECT agency, count(*) FILTER (WHERE NOT reviewer),"
                               " count(*) FILTER (WHERE reviewer), bool_or(legal_qualified"
                               " AND reviewer) FROM review.officer WHERE active"
                               " GROUP BY agency ORDER BY agency LIMIT 500",
                               0, NULL);
        if (!r)
            return -1;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "agencies", 8);
        msgpack_pack_array(&pk, (size_t)PQntuples(r));
        for (int row = 0; row < PQntuples(r); row++) {
            int64_t off = strtoll(PQgetvalue(r, row, 1), NULL, 10);
            int64_t rev = strtoll(PQgetvalue(r, row, 2), NULL, 10);
            msgpack_pack_map(&pk, 5);
            review_pack_str(&pk, "agency", PQgetvalue(r, row, 0));
            review_pack_int(&pk, "officers", off);
            review_pack_int(&pk, "reviewers", rev);
            review_pack_bool(&pk, "legal_qualified", PQgetvalue(r, row, 3)[0] == 't');
            review_pack_bool(&pk, "understaffed", reviewers_understaffed(rev, off));
        }
        PQclear(r);
        rpc_ok(reqs[i], sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    return 0;
}

int
reviewers_register(rpc_server_t *rpc, review_t *app)
{
    return rpc_register(
        rpc, &(rpc_op_t){"review.staffing", RPC_READ, "dept:*:legal_office svc:", s_staffing, app});
}
