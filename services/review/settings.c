/* settings: see settings.h. */
#include "settings.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int
settings_prepare(db_t *db)
{
    return db_prepare(db, "rv_days_set",
                      "UPDATE review.agency SET review_days = $2 WHERE code = $1 RETURNING code",
                      2);
}

/* One review.days.set. Returns 0 (outcome set on req), or -1 (database). */
static int
s_days_one(db_t *db, const review_t *app, rpc_req_t *req)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err);
    static const char *const keys[] = {"agency", "review_days", NULL};
    char agency[EVMSG_AGENCY_LEN + 1] = "";
    int64_t days = 0;
    evmsg_map_only(&body, keys);
    evmsg_map_str(&body, "agency", EVMSG_REQUIRED | EVMSG_NONEMPTY, EVMSG_AGENCY_LEN, agency);
    evmsg_map_int(&body, "review_days", EVMSG_REQUIRED, SETTINGS_DAYS_MIN, SETTINGS_DAYS_MAX,
                  &days);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    /* A legal office is the city's (the pool agency's), not an agency's own. */
    const char *caller = rpc_req_agency(req);
    if (caller && (!app || !app->pool_agency || strcmp(caller, app->pool_agency) != 0)) {
        rpc_fail(req, "forbidden", "op", "只有市司法局可以设置审核期限",
                 "only the city's legal office sets review days");
        return 0;
    }
    char d[16];
    snprintf(d, sizeof d, "%" PRId64, days);
    PGresult *r =
        db_exec_prepared(db, "rv_days_set", 2, (const char *[]){agency, d}, NULL, NULL, 0);
    if (!r)
        return -1;
    bool found = PQntuples(r) == 1;
    PQclear(r);
    if (!found) {
        rpc_fail(req, "not_found", "body.agency", "审核服务尚未收到该执法机关的登记",
                 "no such agency (review knows the agencies registry.agency put)");
        return 0;
    }
    log_info("review days set", "agency=%s review_days=%s identity=%s", agency, d,
             rpc_req_identity(req));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    review_pack_str(&pk, "agency", agency);
    review_pack_int(&pk, "review_days", days);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* review.days.set (write). */
static int
s_days(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    for (size_t i = 0; i < n; i++)
        if (s_days_one(db, arg, reqs[i]) < 0)
            return -1;
    return 0;
}

int
settings_register(rpc_server_t *rpc, review_t *app)
{
    return rpc_register(
        rpc, &(rpc_op_t){"review.days.set", RPC_WRITE, "dept:*:legal_office svc:", s_days, app});
}
