/* access: record.get, record.verify, record.access_log and the access log (access.h). */
#include "access.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "chain.h"
#include "log.h"

#define S_REASON_MAX  500
#define S_LIMIT_MAX   1000
#define S_RESULT_ROOM (RPC_RESULT_MAX - 1024) /* stop adding entries past this many bytes */

static char s_case[DB_STMT_NAME_MAX], s_role[DB_STMT_NAME_MAX], s_log[DB_STMT_NAME_MAX],
    s_page[DB_STMT_NAME_MAX], s_all[DB_STMT_NAME_MAX], s_list[DB_STMT_NAME_MAX];

static int
s_prepare(db_t *db)
{
    if (db_prepare_in(
            db, RECORDING_SCHEMA, "ac_case",
            "SELECT agency::text, case_no, n, head FROM {s}.rcase WHERE case_id = $1::int8", 1,
            s_case) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ac_role",
                      "SELECT 1 FROM {s}.classified_role WHERE agency = $1 AND role = $2", 2,
                      s_role) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ac_log",
                      "INSERT INTO {s}.access_log (identity, op, rid, case_id, agency, reason,"
                      " allowed, outcome) VALUES ($1, $2, $3, $4::int8, $5, $6, $7::bool, $8)",
                      8, s_log) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ac_page",
                      "SELECT n, event, stage, classification, body, hash FROM {s}.entry"
                      " WHERE case_id = $1::int8 AND n > $2::int4 ORDER BY n LIMIT $3::int4",
                      3, s_page) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ac_all",
                      "SELECT n, event, stage, classification, body, hash FROM {s}.entry"
                      " WHERE case_id = $1::int8 ORDER BY n",
                      1, s_all) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ac_list",
                      "SELECT id, (extract(epoch FROM at) * 1000)::int8, identity, op, rid,"
                      " case_id, agency::text, reason, allowed, outcome FROM {s}.access_log"
                      " WHERE ($1::int8 IS NULL OR case_id = $1::int8)"
                      " AND ($2::text IS NULL OR identity = $2::text)"
                      " AND ($3::int8 IS NULL OR at >= to_timestamp($3::int8 / 1000.0))"
                      " AND ($4::int8 IS NULL OR at < to_timestamp($4::int8 / 1000.0))"
                      " AND id > $5::int8 ORDER BY id LIMIT $6::int4",
                      6, s_list) < 0 ||
        archive_prepare(db) < 0)
        return -1;
    return 0;
}

/* ---- Helpers ---------------------------------------------------------------------- */

static void
s_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

static void
s_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    s_key(pk, k);
    if (!v) {
        msgpack_pack_nil(pk);
        return;
    }
    size_t n = strlen(v);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v, n);
}

static uint32_t
s_be32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

/* The role of a dept identity ("dept:<code>:<role>"), or NULL. */
static const char *
s_role_of(const char *identity)
{
    if (strncmp(identity, "dept:", 5) != 0)
        return NULL;
    const char *p = strchr(identity + 5, ':');
    return p ? p + 1 : NULL;
}

/* A case as rcase has it. */
typedef struct {
    bool found;
    char agency[EVMSG_AGENCY_LEN + 1];
    char case_no[CHAIN_STR_MAX + 1];
    int n;
    uint8_t head[CHAIN_HASH_LEN];
} s_case_t;

static int
s_case_load(db_t *db, uint64_t case_id, s_case_t *c)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *v[] = {id};
    memset(c, 0, sizeof *c);
    PGresult *r = db_exec_prepared(db, s_case, 1, v, NULL, NULL, 1);
    if (!r)
        return -1;
    if (PQntuples(r) == 1) {
        c->found = true;
        snprintf(c->agency, sizeof c->agency, "%.*s", PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
        snprintf(c->case_no, sizeof c->case_no, "%.*s", PQgetlength(r, 0, 1), PQgetvalue(r, 0, 1));
        c->n = (int)s_be32(PQgetvalue(r, 0, 2));
        if (PQgetlength(r, 0, 3) == CHAIN_HASH_LEN)
            memcpy(c->head, PQgetvalue(r, 0, 3), CHAIN_HASH_LEN);
    }
    PQclear(r);
    return 0;
}

/* Writes one access-log row. case_id 0 = none; agency/reason NULL = none. */
static int
s_log_access(db_t *db, const rpc_req_t *req, uint64_t case_id, const char *agency,
             const char *reason, bool allowed, const char *outcome)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *v[] = {rpc_req_identity(req),      rpc_req_op(req), rpc_req_rid(req),
                       case_id ? id : NULL,        agency,          reason,
                       allowed ? "true" : "false", outcome};
    PGresult *r = db_exec_prepared(db, s_log, 8, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Who may read the case: 0 allowed, else the refusal has been set on req. *full is set
 * when the caller may see classified records in full. svc_ok: svc: identities allowed. */
static int
s_decide(db_t *db, rpc_req_t *req, const s_case_t *c, bool svc_ok, bool *full)
{
    const char *identity = rpc_req_identity(req), *role = s_role_of(identity);
    const char *agency = rpc_req_agency(req);
    *full = false;
    if (!c->found) {
        rpc_fail(req, "not_found", "body.case_id", "案件不存在（记录服务未收到该案件的记录）",
                 "no such case in the record");
        return 1;
    }
    if (!role) {
        if (svc_ok)
            return 0;
        rpc_fail(req, "forbidden", "op", "调阅限于本机关执法人员和法制机构",
                 "retrieval is for the agency's own staff and the legal office");
        return 1;
    }
    if (strcmp(role, "legal_office") == 0) {
        *full = true;
        return 0;
    }
    if (!agency || strcmp(agency, c->agency) != 0) {
        log_warn("retrieval of another agency's records refused",
                 "identity=%s case_agency=%s rid=%s", identity, c->agency, rpc_req_rid(req));
        rpc_fail(req, "forbidden", "body.case_id", "无权调阅其他机关的执法记录",
                 "the case belongs to another agency");
        return 1;
    }
    const char *v[] = {c->agency, role};
    PGresult *r = db_exec_prepared(db, s_role, 2, v, NULL, NULL, 0);
    if (!r)
        return -1;
    *full = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

/* ---- record.get --------------------------------------------------------------------- */

static int
s_get_one(db_t *db, rpc_req_t *req)
{
    static const char *const keys[] = {"case_id", "reason", "after", "limit", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    uint64_t case_id = 0, after = 0, limit = S_LIMIT_MAX;
    char reason[S_REASON_MAX + 1] = "";
    evmsg_map_only(&b, keys);
    evmsg_map_uint(&b, "case_id", EVMSG_REQUIRED, INT64_MAX, &case_id);
    evmsg_map_str(&b, "reason", EVMSG_NONEMPTY, S_REASON_MAX, reason);
    evmsg_map_uint(&b, "after", EVMSG_OPTIONAL, INT32_MAX, &after);
    int64_t want = (int64_t)limit;
    evmsg_map_int(&b, "limit", EVMSG_OPTIONAL, 1, S_LIMIT_MAX, &want);
    limit = (uint64_t)want;
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return s_log_access(db, req, case_id, NULL, reason[0] ? reason : NULL, false,
                            "bad_request");
    }
    s_case_t c;
    bool full = false;
    if (s_case_load(db, case_id, &c) < 0)
        return -1;
    int d = s_decide(db, req, &c, false, &full);
    if (d < 0)
        return -1;
    if (d > 0) /* refused: logged with the code answered */
        return s_log_access(db, req, case_id, c.found ? c.agency : NULL, reason, false,
                            c.found ? "forbidden" : "not_found");
    if (s_log_access(db, req, case_id, c.agency, reason, true, "ok") < 0)
        return -1;

    char id[24], af[16], lim[16];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    snprintf(af, sizeof af, "%" PRIu64, after);
    snprintf(lim, sizeof lim, "%" PRIu64, limit);
    const char *v[] = {id, af, lim};
    PGresult *r = db_exec_prepared(db, s_page, 3, v, NULL, NULL, 1);
    if (!r)
        return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char hex[2 * CHAIN_HASH_LEN + 1];
    int rows = PQntuples(r), fit = 0;
    /* Count what fits first: the array header needs its length up front. */
    size_t room = S_RESULT_ROOM;
    for (; fit < rows; fit++) {
        size_t need = (size_t)PQgetlength(r, fit, 4) + 160;
        if (need > room)
            break;
        room -= need;
    }
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str(&pk, 7), msgpack_pack_str_body(&pk, "case_id", 7);
    msgpack_pack_uint64(&pk, case_id);
    s_kstr(&pk, "case_no", c.case_no);
    s_kstr(&pk, "agency", c.agency);
    s_key(&pk, "count");
    msgpack_pack_uint64(&pk, (uint64_t)c.n);
    s_kstr(&pk, "head", chain_hex(c.head, hex));
    s_key(&pk, "entries");
    msgpack_pack_array(&pk, (size_t)fit);
    uint32_t last = (uint32_t)after;
    for (int i = 0; i < fit; i++) {
        const char *cls = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
        bool redact = cls && strncmp(cls, "sensitive", (size_t)PQgetlength(r, i, 3)) == 0 &&
                      PQgetlength(r, i, 3) == 9 && !full;
        last = s_be32(PQgetvalue(r, i, 0));
        msgpack_pack_map(&pk, 4);
        s_key(&pk, "n");
        msgpack_pack_uint64(&pk, last);
        s_kstr(&pk, "hash", chain_hex((const uint8_t *)PQgetvalue(r, i, 5), hex));
        s_key(&pk, "redacted");
        if (redact)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        s_key(&pk, "entry");
        if (redact)
            msgpack_pack_nil(&pk);
        else
            msgpack_sbuffer_write(&sb, PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4));
    }
    s_key(&pk, "next");
    if (fit < rows || (fit == (int)limit && last < (uint32_t)c.n))
        msgpack_pack_uint64(&pk, last);
    else
        msgpack_pack_nil(&pk);
    PQclear(r);
    rpc_ok(req, sb.data, sb.size);
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

/* ---- record.verify ------------------------------------------------------------------ */

/* Names entry n as the first that does not match (the first call wins). */
static void __attribute__((format(printf, 5, 6)))
s_bad(uint64_t *first, char *problem, size_t len, uint64_t n, const char *fmt, ...)
{
    if (*first)
        return;
    *first = n;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, len, fmt, ap);
    va_end(ap);
}

static int
s_verify_one(db_t *db, rpc_req_t *req, const recording_t *app)
{
    static const char *const keys[] = {"case_id", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    uint64_t case_id = 0;
    evmsg_map_only(&b, keys);
    evmsg_map_uint(&b, "case_id", EVMSG_REQUIRED, INT64_MAX, &case_id);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return s_log_access(db, req, case_id, NULL, NULL, false, "bad_request");
    }
    s_case_t c;
    bool full;
    if (s_case_load(db, case_id, &c) < 0)
        return -1;
    int d = s_decide(db, req, &c, true, &full);
    if (d < 0)
        return -1;
    if (d > 0)
        return s_log_access(db, req, case_id, c.found ? c.agency : NULL, NULL, false,
                            c.found ? "forbidden" : "not_found");
    if (s_log_access(db, req, case_id, c.agency, NULL, true, "ok") < 0)
        return -1;

    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *v[] = {id};
    PGresult *r = db_exec_prepared(db, s_all, 1, v, NULL, NULL, 1);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    uint8_t(*hashes)[CHAIN_HASH_LEN] = malloc(((size_t)rows + 1) * CHAIN_HASH_LEN);
    if (!hashes) {
        PQclear(r);
        return -1;
    }
    uint64_t first = 0;
    char problem[200] = "";
    const uint8_t *prev = NULL;
    size_t good = 0; /* entries in place, recomputed */
    /* Past the first fault the hashes are still recomputed from the stored bytes (only a
     * missing entry stops it), so the seal check names the entry the manifest disagrees
     * with rather than the end of what could be recomputed. */
    for (int i = 0; i < rows; i++) {
        uint64_t n = (uint64_t)i + 1;
        if (s_be32(PQgetvalue(r, i, 0)) != n) {
            s_bad(&first, problem, sizeof problem, n, "entry %" PRIu64 " is missing", n);
            break;
        }
        const char *body = PQgetvalue(r, i, 4);
        size_t len = (size_t)PQgetlength(r, i, 4);
        if (!first) {
            chain_entry_t e;
            evmsg_err_t derr = {0};
            char why[200];
            if (chain_decode(body, len, &e, &derr) < 0) {
                s_bad(&first, problem, sizeof problem, n, "entry %" PRIu64 " does not decode: %s",
                      n, evmsg_err_str(&derr, why, sizeof why));
            } else {
                const char *stage = chain_stage_name(e.stage);
                const char *cls = e.has_record ? e.record.classification : NULL;
                if (e.case_id != case_id || e.n != n || strcmp(e.agency, c.agency) != 0 ||
                    strcmp(e.event, PQgetvalue(r, i, 1)) != 0 ||
                    (PQgetisnull(r, i, 2) ? stage != NULL
                                          : !stage || strcmp(stage, PQgetvalue(r, i, 2))) ||
                    (PQgetisnull(r, i, 3) ? cls != NULL : !cls || strcmp(cls, PQgetvalue(r, i, 3))))
                    s_bad(&first, problem, sizeof problem, n,
                          "entry %" PRIu64 ": its columns do not match its body", n);
            }
        }
        chain_hash(prev, body, len, hashes[i]);
        if (PQgetlength(r, i, 5) != CHAIN_HASH_LEN ||
            sodium_memcmp(hashes[i], PQgetvalue(r, i, 5), CHAIN_HASH_LEN) != 0)
            s_bad(&first, problem, sizeof problem, n,
                  "entry %" PRIu64 ": stored hash differs from the recomputed one", n);
        prev = hashes[i];
        good = n;
    }
    PQclear(r);
    if (!first && good < (size_t)c.n)
        s_bad(&first, problem, sizeof problem, good + 1, "entry %zu is missing", good + 1);
    if (!first && good > (size_t)c.n)
        s_bad(&first, problem, sizeof problem, (uint64_t)c.n + 1,
              "entry %d is beyond the case's recorded length", c.n + 1);
    if (!first && good && sodium_memcmp(hashes[good - 1], c.head, CHAIN_HASH_LEN) != 0)
        s_bad(&first, problem, sizeof problem, good,
              "entry %zu: the case's head differs from the chain's", good);

    archive_check_t seal;
    if (archive_check(db, app, case_id, (const uint8_t(*)[CHAIN_HASH_LEN])hashes, good, &seal) <
        0) {
        free(hashes);
        return -1;
    }
    free(hashes);
    if (seal.sealed && !seal.ok && seal.first_bad && (!first || seal.first_bad < first)) {
        first = seal.first_bad;
        snprintf(problem, sizeof problem, "%s", seal.problem);
    }

    char hex[2 * CHAIN_HASH_LEN + 1];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    s_key(&pk, "case_id");
    msgpack_pack_uint64(&pk, case_id);
    s_key(&pk, "ok");
    if (!first && (!seal.sealed || seal.ok))
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    s_key(&pk, "count");
    msgpack_pack_uint64(&pk, (uint64_t)c.n);
    s_kstr(&pk, "head", chain_hex(c.head, hex));
    s_key(&pk, "first_bad");
    if (first)
        msgpack_pack_uint64(&pk, first);
    else
        msgpack_pack_nil(&pk);
    s_kstr(&pk, "problem", problem[0] ? problem : NULL);
    s_key(&pk, "sealed");
    if (seal.sealed)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    s_key(&pk, "seal_ok");
    if (!seal.sealed)
        msgpack_pack_nil(&pk);
    else if (seal.ok)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    s_kstr(&pk, "seal_problem", seal.sealed && !seal.ok ? seal.problem : NULL);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_verify(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    for (size_t i = 0; i < n; i++)
        if (s_verify_one(db, reqs[i], arg) < 0)
            return -1;
    return 0;
}

/* ---- record.access_log -------------------------------------------------------------- */

static int
s_list_one(db_t *db, rpc_req_t *req)
{
    static const char *const keys[] = {"case_id", "identity", "from", "to", "after", "limit", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    uint64_t case_id = 0, after = 0, limit = 200;
    int64_t from = 0, to = 0;
    char identity[201] = "";
    evmsg_map_only(&b, keys);
    int has_case = evmsg_map_uint(&b, "case_id", EVMSG_OPTIONAL, INT64_MAX, &case_id);
    int has_id = evmsg_map_str(&b, "identity", EVMSG_OPTIONAL | EVMSG_NONEMPTY, 200, identity);
    int has_from = evmsg_map_int(&b, "from", EVMSG_OPTIONAL, 0, 253402300799999LL, &from);
    int has_to = evmsg_map_int(&b, "to", EVMSG_OPTIONAL, 0, 253402300799999LL, &to);
    evmsg_map_uint(&b, "after", EVMSG_OPTIONAL, INT64_MAX, &after);
    int64_t want = (int64_t)limit;
    evmsg_map_int(&b, "limit", EVMSG_OPTIONAL, 1, S_LIMIT_MAX, &want);
    limit = (uint64_t)want;
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    char cs[24], fs[24], ts[24], as[24], ls[16];
    snprintf(cs, sizeof cs, "%" PRIu64, case_id);
    snprintf(fs, sizeof fs, "%" PRId64, from);
    snprintf(ts, sizeof ts, "%" PRId64, to);
    snprintf(as, sizeof as, "%" PRIu64, after);
    snprintf(ls, sizeof ls, "%" PRIu64, limit);
    const char *v[] = {has_case == 1 ? cs : NULL,
                       has_id == 1 ? identity : NULL,
                       has_from == 1 ? fs : NULL,
                       has_to == 1 ? ts : NULL,
                       as,
                       ls};
    PGresult *r = db_exec_prepared(db, s_list, 6, v, NULL, NULL, 0);
    if (!r)
        return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rows = PQntuples(r), fit = 0;
    size_t room = S_RESULT_ROOM;
    for (; fit < rows; fit++) {
        size_t need = 200;
        for (int k = 0; k < 10; k++)
            need += (size_t)PQgetlength(r, fit, k);
        if (need > room)
            break;
        room -= need;
    }
    msgpack_pack_map(&pk, 2);
    s_key(&pk, "entries");
    msgpack_pack_array(&pk, (size_t)fit);
    for (int i = 0; i < fit; i++) {
        msgpack_pack_map(&pk, 10);
        s_key(&pk, "id");
        msgpack_pack_int64(&pk, strtoll(PQgetvalue(r, i, 0), NULL, 10));
        s_key(&pk, "at");
        msgpack_pack_int64(&pk, strtoll(PQgetvalue(r, i, 1), NULL, 10));
        s_kstr(&pk, "identity", PQgetvalue(r, i, 2));
        s_kstr(&pk, "op", PQgetvalue(r, i, 3));
        s_kstr(&pk, "rid", PQgetvalue(r, i, 4));
        s_key(&pk, "case_id");
        if (PQgetisnull(r, i, 5))
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_int64(&pk, strtoll(PQgetvalue(r, i, 5), NULL, 10));
        s_kstr(&pk, "agency", PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6));
        s_kstr(&pk, "reason", PQgetisnull(r, i, 7) ? NULL : PQgetvalue(r, i, 7));
        s_key(&pk, "allowed");
        if (PQgetvalue(r, i, 8)[0] == 't')
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        s_kstr(&pk, "outcome", PQgetvalue(r, i, 9));
    }
    s_key(&pk, "next");
    if (fit > 0 && (fit < rows || fit == (int)limit))
        msgpack_pack_int64(&pk, strtoll(PQgetvalue(r, fit - 1, 0), NULL, 10));
    else
        msgpack_pack_nil(&pk);
    PQclear(r);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int
s_list_log(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (s_list_one(db, reqs[i]) < 0)
            return -1;
    return 0;
}

int
access_register(rpc_server_t *rpc, db_t *db, recording_t *app)
{
    if (s_prepare(db) < 0) {
        log_error("recording statements not prepared", "error=%s", db_error(db));
        return -1;
    }
    if (rpc_register(rpc, &(rpc_op_t){"record.get", RPC_WRITE, "dept: svc:", s_get, app}) < 0 ||
        rpc_register(rpc, &(rpc_op_t){"record.verify", RPC_READ, "dept: svc:", s_verify, app}) <
            0 ||
        rpc_register(rpc, &(rpc_op_t){"record.access_log", RPC_READ, "dept:*:legal_office",
                                      s_list_log, app}) < 0)
        return -1;
    return 0;
}
