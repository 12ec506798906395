/* classified: the roles an agency allows to read its classified records (classified.h). */
#include "classified.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "log.h"
#include "recording.h"

/* The roles joined with ',' (each [a-z_]{1,32}, so the separator cannot occur in one). */
#define S_LIST_MAX (CLASSIFIED_ROLES_MAX * (CLASSIFIED_ROLE_MAX + 1) + 1)

static char s_cur[DB_STMT_NAME_MAX], s_ins[DB_STMT_NAME_MAX], s_del[DB_STMT_NAME_MAX],
    s_add[DB_STMT_NAME_MAX], s_now[DB_STMT_NAME_MAX];

static int
s_prepare(db_t *db)
{
    if (db_prepare_in(db, RECORDING_SCHEMA, "cr_cur",
                      "SELECT version, identity, (extract(epoch FROM at) * 1000)::int8"
                      " FROM {s}.classified_role_change WHERE agency = $1"
                      " ORDER BY version DESC LIMIT 1",
                      1, s_cur) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "cr_ins",
                      "INSERT INTO {s}.classified_role_change (agency, version, roles, identity,"
                      " rid) VALUES ($1, $2::int4, string_to_array($3, ','), $4, $5)"
                      " ON CONFLICT (agency, version) DO NOTHING",
                      5, s_ins) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "cr_del",
                      "DELETE FROM {s}.classified_role WHERE agency = $1", 1, s_del) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "cr_add",
                      "INSERT INTO {s}.classified_role (agency, role)"
                      " SELECT $1, unnest(string_to_array($2, ','))",
                      2, s_add) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "cr_now",
                      "SELECT role FROM {s}.classified_role WHERE agency = $1 ORDER BY role", 1,
                      s_now) < 0)
        return -1;
    return 0;
}

static void
s_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    if (v)
        msgpack_pack_str_with_body(pk, v, strlen(v));
    else
        msgpack_pack_nil(pk);
}

/* True when role is [a-z_]{1,32}, the role segment of dept:<code>:<role> (common/keys). */
static bool
s_role_ok(const char *role)
{
    size_t n = strlen(role);
    if (n < 1 || n > CLASSIFIED_ROLE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((role[i] >= 'a' && role[i] <= 'z') || role[i] == '_'))
            return false;
    return true;
}

/* Reads and checks body.agency, then whether the caller may act for it: a dept's own
 * agency, or any agency for the legal office (and svc: when svc_ok). Returns 0, or 1
 * with the refusal set on req. */
static int
s_agency(rpc_req_t *req, const evmsg_map_t *b, evmsg_err_t *err, bool svc_ok,
         char agency[EVMSG_AGENCY_LEN + 1])
{
    evmsg_map_str(b, "agency", EVMSG_NONEMPTY, EVMSG_AGENCY_LEN, agency);
    if (err->reason[0]) {
        rpc_fail_evmsg(req, err);
        return 1;
    }
    ident_err_t ie;
    if (ident_uscc_check(agency, &ie) < 0) {
        char zh[192];
        snprintf(zh, sizeof zh, "统一社会信用代码无效：%s", ie.zh);
        rpc_fail(req, "bad_field", "body.agency", zh, ie.en);
        return 1;
    }
    const char *identity = rpc_req_identity(req), *own = rpc_req_agency(req);
    size_t len = strlen(identity);
    bool legal = len > 13 && strcmp(identity + len - 13, ":legal_office") == 0 &&
                 strncmp(identity, "dept:", 5) == 0;
    bool svc = strncmp(identity, "svc:", 4) == 0;
    if (legal || (svc && svc_ok) || (own && strcmp(own, agency) == 0))
        return 0;
    log_warn("classified roles of another agency refused", "identity=%s agency=%s op=%s rid=%s",
             identity, agency, rpc_req_op(req), rpc_req_rid(req));
    rpc_fail(req, "forbidden", "body.agency", "无权设置或查看其他机关的涉密记录调阅角色",
             "the agency is not the caller's own");
    return 1;
}

/* The latest change of the agency's list: *version (0 when none), and who set it when
 * and at (unix ms) are not NULL. Returns 0 or -1. */
static int
s_current(db_t *db, const char *agency, int64_t *version, char *who, size_t wholen, int64_t *at)
{
    const char *v[] = {agency};
    PGresult *r = db_exec_prepared(db, s_cur, 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    *version = 0;
    if (PQntuples(r) == 1) {
        *version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (who)
            snprintf(who, wholen, "%s", PQgetvalue(r, 0, 1));
        if (at)
            *at = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    }
    PQclear(r);
    return 0;
}

/* ---- record.classified_roles.put -------------------------------------------------- */

static int
s_put_one(db_t *db, rpc_req_t *req)
{
    static const char *const keys[] = {"agency", "version", "roles", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    char agency[EVMSG_AGENCY_LEN + 1] = "";
    evmsg_map_only(&b, keys);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    if (s_agency(req, &b, &err, false, agency) != 0)
        return 0;
    int64_t want = 0;
    evmsg_array_t a;
    evmsg_map_int(&b, "version", EVMSG_REQUIRED, 0, INT32_MAX - 1, &want);
    evmsg_map_array(&b, "roles", EVMSG_REQUIRED, CLASSIFIED_ROLES_MAX, &a);
    char roles[CLASSIFIED_ROLES_MAX][CLASSIFIED_ROLE_MAX + 1], list[S_LIST_MAX] = "";
    size_t n = evmsg_array_count(&a);
    for (size_t i = 0; i < n && !err.reason[0]; i++) {
        if (evmsg_array_str_at(&a, i, EVMSG_NONEMPTY, CLASSIFIED_ROLE_MAX, roles[i]) < 0)
            break;
        const char *why = NULL, *zh = NULL;
        if (!s_role_ok(roles[i]))
            why = "expected a role: 1-32 of a-z and _",
            zh = "角色无效：应为1至32个小写字母或下划线";
        for (size_t k = 0; !why && k < i; k++)
            if (strcmp(roles[k], roles[i]) == 0)
                why = "repeated", zh = "角色重复";
        if (why) {
            char field[48];
            snprintf(field, sizeof field, "body.roles[%zu]", i);
            rpc_fail(req, "bad_field", field, zh, why);
            return 0;
        }
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", roles[i]);
    }
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    int64_t cur;
    if (s_current(db, agency, &cur, NULL, 0, NULL) < 0)
        return -1;
    char zh[128], en[128], ver[24];
    if (want != cur) {
        snprintf(zh, sizeof zh, "版本冲突：当前版本为 %" PRId64, cur);
        snprintf(en, sizeof en, "version conflict: the current version is %" PRId64, cur);
        rpc_fail(req, "version_conflict", "body.version", zh, en);
        return 0;
    }
    snprintf(ver, sizeof ver, "%" PRId64, cur + 1);
    const char *v[] = {agency, ver, list, rpc_req_identity(req), rpc_req_rid(req)};
    PGresult *r = db_exec_prepared(db, s_ins, 5, v, NULL, NULL, 0);
    if (!r)
        return -1;
    bool won = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    if (!won) { /* another instance of the service wrote this version first */
        rpc_fail(req, "version_conflict", "body.version", "版本冲突：该列表已被同时修改",
                 "the list was changed concurrently");
        return 0;
    }
    const char *d[] = {agency};
    if (!(r = db_exec_prepared(db, s_del, 1, d, NULL, NULL, 0)))
        return -1;
    PQclear(r);
    if (n > 0) {
        const char *add[] = {agency, list};
        if (!(r = db_exec_prepared(db, s_add, 2, add, NULL, NULL, 0)))
            return -1;
        PQclear(r);
    }
    log_info("classified roles set", "agency=%s version=%" PRId64 " roles=%s identity=%s rid=%s",
             agency, cur + 1, list, rpc_req_identity(req), rpc_req_rid(req));

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    s_kstr(&pk, "agency", agency);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_int64(&pk, cur + 1);
    msgpack_pack_str_with_body(&pk, "roles", 5);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_str_with_body(&pk, roles[i], strlen(roles[i]));
    rpc_ok(req, sb.data, sb.size); /* small: it fits */
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_put(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (s_put_one(db, reqs[i]) < 0)
            return -1;
    return 0;
}

/* ---- record.classified_roles.get -------------------------------------------------- */

static int
s_get_one(db_t *db, rpc_req_t *req)
{
    static const char *const keys[] = {"agency", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    char agency[EVMSG_AGENCY_LEN + 1] = "", who[256] = "";
    evmsg_map_only(&b, keys);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    if (s_agency(req, &b, &err, true, agency) != 0)
        return 0;
    int64_t version, at = 0;
    if (s_current(db, agency, &version, who, sizeof who, &at) < 0)
        return -1;
    const char *v[] = {agency};
    PGresult *r = db_exec_prepared(db, s_now, 1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    s_kstr(&pk, "agency", agency);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_int64(&pk, version);
    msgpack_pack_str_with_body(&pk, "roles", 5);
    msgpack_pack_array(&pk, (size_t)rows);
    for (int i = 0; i < rows; i++)
        msgpack_pack_str_with_body(&pk, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
    PQclear(r);
    s_kstr(&pk, "updated_by", version ? who : NULL);
    msgpack_pack_str_with_body(&pk, "updated_at", 10);
    if (version)
        msgpack_pack_int64(&pk, at);
    else
        msgpack_pack_nil(&pk);
    rpc_ok(req, sb.data, sb.size); /* small: it fits */
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_get(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (s_get_one(db, reqs[i]) < 0)
            return -1;
    return 0;
}

int
classified_register(rpc_server_t *rpc, db_t *db)
{
    if (s_prepare(db) < 0) {
        log_error("classified-role statements not prepared", "error=%s", db_error(db));
        return -1;
    }
    if (rpc_register(rpc, &(rpc_op_t){"record.classified_roles.put", RPC_WRITE,
                                      "dept:*:system dept:*:legal_office", s_put, NULL}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"record.classified_roles.get", RPC_READ, "dept: svc:", s_get,
                                      NULL}) < 0)
        return -1;
    return 0;
}
