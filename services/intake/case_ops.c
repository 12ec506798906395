#include "case_ops.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "bus.h"
#include "case_state.h"
#include "doc_types.h"
#include "decision_gate.h"
#include "events_since.h"
#include "ident.h"
#include "log.h"
#include "pgarray.h"

/* ==== Binary arrays (common/pgarray) ==================================================== */

/* A set of array parameters for one statement. */
#define S_PARAMS_MAX 24
typedef struct {
    pgarray_t a[S_PARAMS_MAX];
    int n;
    const char *values[S_PARAMS_MAX];
    int lengths[S_PARAMS_MAX];
    int formats[S_PARAMS_MAX];
} s_params_t;

static void
s_params_begin(s_params_t *p, const uint32_t *oids, int n)
{
    p->n = n;
    for (int k = 0; k < n; k++)
        pgarray_begin(&p->a[k], oids[k]);
}

/* Finishes the arrays and prepares the statement: its call in *call. Returns 0 or -1. */
static int
s_params_call(db_t *db, s_params_t *p, const char *name, const char *sql, int result_format,
              db_call_t *call)
{
    int bad = 0;
    for (int k = 0; k < p->n; k++) {
        bad |= pgarray_finish(&p->a[k]);
        p->values[k] = p->a[k].buf;
        p->lengths[k] = (int)p->a[k].len;
        p->formats[k] = 1;
    }
    if (bad) {
        log_error("case_ops: out of memory building parameters", "stmt=%s", name);
        return -1;
    }
    if (db_prepare(db, name, sql, p->n) < 0)
        return -1;
    *call = (db_call_t){name,       p->n,       (const char *const *)p->values,
                        p->lengths, p->formats, result_format};
    return 0;
}

/* Finishes the arrays and runs the prepared statement; NULL on failure. */
static PGresult *
s_params_exec(db_t *db, s_params_t *p, const char *name, const char *sql, int result_format)
{
    db_call_t c;
    if (s_params_call(db, p, name, sql, result_format, &c) < 0)
        return NULL;
    return db_exec_prepared(db, c.name, c.nparams, c.values, c.lengths, c.formats, result_format);
}

static void
s_params_free(s_params_t *p)
{
    for (int k = 0; k < S_PARAMS_MAX; k++)
        pgarray_free(&p->a[k]);
}

/* ==== Statutory deadlines =============================================================== */

int
case_deadline(const workday_t *cal, date_t opened, int n, const char *unit, date_t *due,
              date_t *warn_on, bool *uncovered)
{
    bool u1 = false, u2 = false;
    date_t d;
    if (!unit || n < 1)
        return -1;
    if (strcmp(unit, "workday") == 0) {
        if (workday_add(cal, opened, n, &d, &u1) < 0)
            return -1;
    } else if (strcmp(unit, "day") == 0) {
        if (n > WORKDAY_MAX_SPAN)
            return -1;
        d = opened + n;
        /* Whether the calendar knows the days counted: only the end matters here. */
        workday_is(cal, d, &u1);
    } else {
        return -1;
    }
    date_t w;
    if (workday_add(cal, d, -CASE_WARN_WORKDAYS, &w, &u2) < 0)
        return -1;
    if (w < opened)
        w = opened; /* a limit shorter than the warning: warn from the start */
    *due = d;
    *warn_on = w;
    *uncovered = u1 || u2;
    return 0;
}

/* ==== Small helpers ===================================================================== */

/* A string borrowed from the request (not NUL-terminated); p == NULL when absent. */
typedef struct {
    const char *p;
    size_t n;
} s_str_t;

static date_t
s_today(void)
{
    return date_from_unix_cst((int64_t)time(NULL));
}

/* Formats a 万元 amount scaled 10^6 as the shortest decimal string ("12.5", "0"). */
static char *
s_dec_format(int64_t v, char buf[32])
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t ip = u / 1000000, fp = u % 1000000;
    int k = snprintf(buf, 32, "%s%" PRIu64, v < 0 ? "-" : "", ip);
    if (fp) {
        char f[8];
        snprintf(f, sizeof f, "%06" PRIu64, fp);
        size_t l = 6;
        while (l > 0 && f[l - 1] == '0')
            l--;
        f[l] = '\0';
        snprintf(buf + k, (size_t)(32 - k), ".%s", f);
    }
    return buf;
}

/* Reading a date_t from a text result column "days since 1970-01-01". */
static date_t
s_getdate(const PGresult *r, int row, int col)
{
    return (date_t)strtol(PQgetvalue(r, row, col), NULL, 10);
}

static bool
s_getbool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* ---- msgpack: key/value helpers (the caller counts the keys of each map) ---------- */

static void
s_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void
s_kstr(msgpack_packer *pk, const char *k, const char *s, size_t n)
{
    s_key(pk, k);
    if (s)
        msgpack_pack_str_with_body(pk, s, n);
    else
        msgpack_pack_nil(pk);
}

static void
s_kcstr(msgpack_packer *pk, const char *k, const char *s)
{
    s_kstr(pk, k, s, s ? strlen(s) : 0);
}

static void
s_ks(msgpack_packer *pk, const char *k, s_str_t s)
{
    s_kstr(pk, k, s.p, s.n);
}

static void
s_kint(msgpack_packer *pk, const char *k, int64_t v)
{
    s_key(pk, k);
    msgpack_pack_int64(pk, v);
}

static void
s_kbool(msgpack_packer *pk, const char *k, bool v)
{
    s_key(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void
s_kdate(msgpack_packer *pk, const char *k, date_t d)
{
    char b[11];
    s_kcstr(pk, k, date_format(d, b));
}

static void
s_kdec(msgpack_packer *pk, const char *k, int64_t v)
{
    char b[32];
    s_kcstr(pk, k, s_dec_format(v, b));
}

/* A text column of a result as a value (nil when NULL). */
static void
s_kcol(msgpack_packer *pk, const char *k, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        s_kstr(pk, k, NULL, 0);
    else
        s_kstr(pk, k, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* Packs strings joined by '\x1f' as an array. */
static void
s_pack_joined(msgpack_packer *pk, const char *s)
{
    size_t count = 0;
    if (s && *s) {
        count = 1;
        for (const char *c = s; *c; c++)
            count += *c == '\x1f';
    }
    msgpack_pack_array(pk, count);
    if (!count)
        return;
    const char *start = s;
    for (const char *c = s;; c++) {
        if (*c == '\x1f' || *c == '\0') {
            msgpack_pack_str_with_body(pk, start, (size_t)(c - start));
            if (!*c)
                break;
            start = c + 1;
        }
    }
}

/* ==== Requests ========================================================================== */

static const char *const s_party_kinds[] = {"person", "org", NULL};
enum { PARTY_PERSON = 0, PARTY_ORG };
/* 证件类型: 01 身份证, 02 护照, 03 港澳居民来往内地通行证, 04 台湾居民来往大陆通行证,
 * 05 外国人永久居留身份证 (persons); 统一社会信用代码, 组织机构代码 (organisations). */
static const char *const s_id_types[] = {"idcard",     "passport", "hkmo_permit", "tw_permit",
                                         "foreign_pr", "uscc",     "org_code",    NULL};
enum { ID_IDCARD = 0, ID_PASSPORT, ID_HKMO, ID_TW, ID_FOREIGN_PR, ID_USCC, ID_ORGCODE };
static const char *const s_stages[] = {"start", "investigation", "review_decision",
                                       "service_execution", NULL};
static const char *const s_record_kinds[] = {"text", "audio", "video", "photo", NULL};
static const char *const s_classifications[] = {"public", "internal", "sensitive", NULL};
/* 送达方式 (行政处罚法 art. 61; 民事诉讼法 送达): 直接, 邮寄, 委托, 留置, 公告, 电子 */
static const char *const s_serve_methods[] = {"direct", "post",       "agent", "left",
                                              "notice", "electronic", NULL};
/* 履行方式: 自动履行, 行政机关强制执行, 申请人民法院强制执行 */
static const char *const s_execute_methods[] = {"voluntary", "enforced", "court", NULL};
/* 撤销, 确认违法, 变更, 确认无效 (行政处罚法 2021 art. 48, 行政复议法, 行政诉讼法) */
static const char *const s_revoke_kinds[] = {"revoke", "confirm_illegal", "change", "invalid",
                                             NULL};
static const char *const s_results[] = {"compliant", "problems_found", "not_located", "refused",
                                        NULL};
enum { RESULT_PROBLEMS = 1 };

/* One request of a batch, whatever its op: what was read and what it came to. */
typedef struct {
    rpc_req_t *req;
    bool failed; /* an outcome was set: skip it */
    /* the case it names */
    int64_t case_id; /* 0 when named by case_no */
    char case_no[CASE_NO_MAX + 1];
    int ci;             /* index into the batch's cases, -1 */
    const char *agency; /* the caller's, NUL-terminated */
    /* case.open */
    char matter_code[CASE_CODE_MAX + 1];
    int party_kind, id_type;
    s_str_t party_name, summary;
    char id_no[CASE_IDNO_MAX + 1];
    date_t opened_on, act_date;
    bool on_site;
    char officers[CASE_OFFICERS_MAX][CASE_CODE_MAX + 1];
    size_t nofficers;
    int mi; /* matter index */
    date_t due, warn_on;
    bool uncovered;
    /* case.record */
    int stage, kind, classification;
    s_str_t doc_type, device, uri;
    int64_t started_at, ended_at;
    char sha256[65];
    uint64_t size;
    int record_no;
    /* case.propose */
    s_str_t category, content, legal_basis, violation_code, deviation_reason;
    int64_t fine, confiscation;
    int circumstance;
    bool hearing, mpi, risk, complex;
    int gi; /* index into the gate's proposals */
    int version;
    /* case.decide and the others */
    char decision_no[CASE_CODE_MAX + 1];
    date_t date;
    int method;
    s_str_t note; /* close note, revoke reason */
    /* inspection.result */
    s_str_t subject, problems, handled;
    int result;
    int state_after; /* the case's state after this request */
    /* the event */
    char topic[EVMSG_TOPIC_MAX + 1];
    msgpack_sbuffer ev;
} s_item_t;

/* A case of the batch, as loaded (locked) and as the batch's requests change it. */
typedef struct {
    int64_t id;
    char agency[EVMSG_AGENCY_LEN + 1];
    char case_no[CASE_NO_MAX + 1];
    char matter_code[CASE_CODE_MAX + 1];
    char decision_no[CASE_CODE_MAX + 1];
    case_type_t type;
    case_state_t state;
    int proposal_version, record_count, decided_version;
    date_t opened_on;
    bool dirty;
    /* new values for the update (set = changed by the batch) */
    bool set_decision, set_served, set_executed, set_closed, set_revoked;
    bool set_met; /* the statutory deadline is met on the item's date */
    int item;     /* the item that set the op's columns (index into the items) */
} s_case_t;

typedef struct {
    intake_t *app;
    rpc_req_t *const *reqs;
    size_t n;
    s_item_t *items;
    s_case_t *cases;
    size_t ncases;
    date_t today;
    case_op_t op;
    gate_proposal_t *gates; /* case.propose: the gate's assessments */
    size_t ngates;
    PGresult *aux; /* case.decide: the decided proposals */
} s_batch_t;

static int
s_batch_init(s_batch_t *b, intake_t *app, rpc_req_t *const *reqs, size_t n, case_op_t op)
{
    memset(b, 0, sizeof *b);
    b->app = app;
    b->reqs = reqs;
    b->n = n;
    b->op = op;
    b->today = s_today();
    b->items = calloc(n, sizeof *b->items);
    if (!b->items)
        return -1;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b->items[i];
        it->req = reqs[i];
        it->ci = -1;
        it->mi = -1;
        it->gi = -1;
        it->circumstance = -1;
        it->agency = rpc_req_agency(reqs[i]);
        msgpack_sbuffer_init(&it->ev);
        if (!it->agency) {
            /* The op is registered for dept identities only; defence in depth. */
            rpc_fail(reqs[i], "forbidden", "op", "无权执行此操作",
                     "only an agency may call this op");
            it->failed = true;
        }
    }
    return 0;
}

static void
s_batch_free(s_batch_t *b)
{
    for (size_t i = 0; b->items && i < b->n; i++)
        msgpack_sbuffer_destroy(&b->items[i].ev);
    free(b->items);
    free(b->cases);
    if (b->gates)
        decision_gate_clear(b->gates, b->ngates);
    free(b->gates);
    PQclear(b->aux);
    memset(b, 0, sizeof *b);
}

static void
s_fail(s_item_t *it, const char *code, const char *field, const char *zh, const char *en)
{
    rpc_fail(it->req, code, field, zh, en);
    it->failed = true;
}

static void
s_fail_evmsg(s_item_t *it, const evmsg_err_t *err)
{
    rpc_fail_evmsg(it->req, err);
    it->failed = true;
}

/* Reads a borrowed string; returns as evmsg_map_strp. */
static int
s_read_str(const evmsg_map_t *m, const char *key, int flags, size_t max, s_str_t *out)
{
    const char *p = NULL;
    size_t n = 0;
    int rc = evmsg_map_strp(m, key, flags, max, &p, &n);
    if (rc == 1) {
        out->p = p;
        out->n = n;
    }
    return rc;
}

/* Reads the case reference: exactly one of case_id (uint >= 1) or case_no. */
static void
s_read_ref(s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    uint64_t id = 0;
    int a = evmsg_map_uint(body, "case_id", EVMSG_OPTIONAL, INT64_MAX, &id);
    int b =
        evmsg_map_str(body, "case_no", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_NO_MAX, it->case_no);
    if (err->reason[0])
        return;
    if (a == 1 && b == 1) {
        snprintf(err->path, sizeof err->path, "body.case_no");
        snprintf(err->reason, sizeof err->reason, "give case_id or case_no, not both");
    } else if (a != 1 && b != 1) {
        snprintf(err->path, sizeof err->path, "body.case_id");
        snprintf(err->reason, sizeof err->reason, "missing");
    } else if (a == 1 && id == 0) {
        snprintf(err->path, sizeof err->path, "body.case_id");
        snprintf(err->reason, sizeof err->reason, "must be between 1 and %" PRId64, INT64_MAX);
    }
    it->case_id = (int64_t)id;
}

/* Reads officers: an array of 1..CASE_OFFICERS_MAX distinct certificate numbers. */
static void
s_read_officers(s_item_t *it, const evmsg_map_t *body, int flags, evmsg_err_t *err)
{
    evmsg_array_t arr;
    if (evmsg_map_array(body, "officers", flags, CASE_OFFICERS_MAX, &arr) != 1)
        return;
    size_t n = evmsg_array_count(&arr);
    for (size_t i = 0; i < n; i++) {
        if (evmsg_array_str_at(&arr, i, EVMSG_NONEMPTY, CASE_CODE_MAX, it->officers[i]) != 1)
            return;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(it->officers[j], it->officers[i]) == 0) {
                snprintf(err->path, sizeof err->path, "body.officers[%zu]", i);
                snprintf(err->reason, sizeof err->reason, "listed twice");
                return;
            }
        }
    }
    it->nofficers = n;
}

/* A date must lie between the case's opening and today (CST). */
static bool
s_date_ok(s_item_t *it, const char *field, date_t d, date_t not_before, date_t today)
{
    char b1[11], b2[11], en[160], zh[200];
    if (d > today) {
        snprintf(en, sizeof en, "%s is in the future (today is %s)", date_format(d, b1),
                 date_format(today, b2));
        snprintf(zh, sizeof zh, "日期%s晚于今天（%s）", b1, b2);
        s_fail(it, "bad_field", field, zh, en);
        return false;
    }
    if (d < not_before) {
        snprintf(en, sizeof en, "%s is before the case was opened (%s)", date_format(d, b1),
                 date_format(not_before, b2));
        snprintf(zh, sizeof zh, "日期%s早于立案日期（%s）", b1, b2);
        s_fail(it, "bad_field", field, zh, en);
        return false;
    }
    return true;
}

/* ==== Officers: this agency's, certificate valid on the day (执法证) ==================== */

typedef struct {
    char agency[EVMSG_AGENCY_LEN + 1];
    char *cert_no;
    bool active;
    date_t from, to;
} s_officer_t;

static const char s_officers_sql[] =
    "SELECT o.agency, o.cert_no, o.active, o.valid_from - date '1970-01-01',"
    " o.valid_to - date '1970-01-01'"
    " FROM intake.officer o"
    " WHERE (o.agency, o.cert_no) IN (SELECT k.a::char(18), k.c FROM unnest($1::text[], $2::text[])"
    "                                 AS k(a, c))";

/* The officers query's parameters: every named officer of the unfailed items. Returns
 * their number (0: nothing to ask). */
static size_t
s_officers_params(const s_batch_t *b, s_params_t *p)
{
    static const uint32_t oids[2] = {PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_begin(p, oids, 2);
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++) {
        const s_item_t *it = &b->items[i];
        for (size_t k = 0; !it->failed && k < it->nofficers; k++) {
            pgarray_str(&p->a[0], it->agency);
            pgarray_str(&p->a[1], it->officers[k]);
            count++;
        }
    }
    return count;
}

/* Fails the unfailed items with an officer that r (the officers query's rows; NULL when
 * none were asked for) does not show of the caller's agency, active, with a certificate
 * valid on day_of(item). Takes r. */
static void
s_officers_apply(s_batch_t *b, PGresult *r, date_t (*day_of)(const s_item_t *))
{
    int rows = r ? PQntuples(r) : 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        date_t day = day_of(it);
        for (size_t k = 0; !it->failed && k < it->nofficers; k++) {
            int row = -1;
            for (int j = 0; j < rows && row < 0; j++)
                if (memcmp(PQgetvalue(r, j, 0), it->agency, EVMSG_AGENCY_LEN) == 0 &&
                    strcmp(PQgetvalue(r, j, 1), it->officers[k]) == 0)
                    row = j;
            if (row >= 0 && s_getbool(r, row, 2) && day >= s_getdate(r, row, 3) &&
                day <= s_getdate(r, row, 4))
                continue; /* the usual case: nothing to format */
            char field[40], en[240], zh[240], b1[11], b2[11], b3[11];
            snprintf(field, sizeof field, "body.officers[%zu]", k);
            int cn = (int)strlen(it->officers[k]);
            const char *cp = it->officers[k];
            if (row < 0) {
                snprintf(en, sizeof en, "no officer with certificate %.*s in this agency's list",
                         cn, cp);
                snprintf(zh, sizeof zh, "本机关执法人员名单中没有执法证号为%.*s的人员", cn, cp);
            } else if (!s_getbool(r, row, 2)) {
                snprintf(en, sizeof en, "officer %.*s is no longer active", cn, cp);
                snprintf(zh, sizeof zh, "执法人员%.*s已不在岗", cn, cp);
                row = -2;
            } else {
                date_t from = s_getdate(r, row, 3), to = s_getdate(r, row, 4);
                if (day >= from && day <= to)
                    continue;
                snprintf(en, sizeof en, "certificate %.*s is not valid on %s (valid %s to %s)", cn,
                         cp, date_format(day, b1), date_format(from, b2), date_format(to, b3));
                snprintf(zh, sizeof zh, "执法证%.*s在%s不在有效期内（%s至%s）", cn, cp, b1, b2, b3);
            }
            s_fail(it, "officer_invalid", field, zh, en);
        }
    }
    PQclear(r);
}

/* Checks every named officer of the unfailed items in one query (s_officers_apply). */
static int
s_check_officers(db_t *db, s_batch_t *b, date_t (*day_of)(const s_item_t *))
{
    s_params_t p = {0};
    PGresult *r = NULL;
    if (s_officers_params(b, &p) > 0 &&
        !(r = s_params_exec(db, &p, "case_officers", s_officers_sql, 0))) {
        s_params_free(&p);
        return -1;
    }
    s_params_free(&p);
    s_officers_apply(b, r, day_of);
    return 0;
}

/* ==== Cases of a batch ================================================================= */

#define S_LOAD_SQL                                                                                 \
    "SELECT c.id, c.agency, c.case_no, c.type, c.state, c.proposal_version, c.record_count,"       \
    " c.opened_on - date '1970-01-01', c.matter_code, c.decision_no,"                              \
    " coalesce(c.decided_version, 0)"                                                              \
    " FROM (SELECT u.id FROM (SELECT unnest($1::int8[]) AS id"                                     \
    "    UNION SELECT x.id FROM unnest($2::text[], $3::text[]) AS k(a, n)"                         \
    "    CROSS JOIN LATERAL (SELECT c2.id FROM intake.cases c2"                                    \
    "      WHERE c2.agency = k.a::char(18) AND c2.case_no = k.n LIMIT 1) x) u"                     \
    "  ORDER BY u.id) s"                                                                           \
    " CROSS JOIN LATERAL (SELECT * FROM intake.cases c0 WHERE c0.id = s.id LIMIT 1) c"             \
    " ORDER BY c.id"

/* S_LOAD_SQL probes the indexes once per key (LATERAL ... LIMIT 1), whatever the
 * statistics say: written as IN/JOIN, the generic plan cached while intake.cases was
 * small hashed two sequential scans of the whole table (61 ms a call at 200,000 cases).
 * The rows are locked in id order (s is ordered), as before.
 *
 * Loads (and, when lock, locks FOR UPDATE) the cases the unfailed items name, resolves
 * each item's ci, and fails the items whose case is unknown (`not_found`) or of another
 * agency (`forbidden`, logged). Returns 0, or -1 when the database failed. */
static int
s_load_cases(db_t *db, s_batch_t *b, bool lock)
{
    s_params_t p = {0};
    static const uint32_t oids[3] = {PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_begin(&p, oids, 3);
    size_t refs = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        refs++;
        if (it->case_id > 0) {
            pgarray_int8(&p.a[0], it->case_id);
        } else {
            pgarray_str(&p.a[1], it->agency);
            pgarray_str(&p.a[2], it->case_no);
        }
    }
    if (refs == 0) {
        s_params_free(&p);
        return 0;
    }
    PGresult *r = s_params_exec(db, &p, lock ? "case_load_lock" : "case_load",
                                lock ? S_LOAD_SQL " FOR UPDATE OF c" : S_LOAD_SQL, 0);
    s_params_free(&p);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    free(b->cases);
    b->cases = calloc(rows > 0 ? (size_t)rows : 1, sizeof *b->cases);
    if (!b->cases) {
        PQclear(r);
        return -1;
    }
    b->ncases = (size_t)rows;
    for (int j = 0; j < rows; j++) {
        s_case_t *c = &b->cases[j];
        c->id = strtoll(PQgetvalue(r, j, 0), NULL, 10);
        snprintf(c->agency, sizeof c->agency, "%s", PQgetvalue(r, j, 1));
        snprintf(c->case_no, sizeof c->case_no, "%s", PQgetvalue(r, j, 2));
        c->type = (case_type_t)case_type_parse(PQgetvalue(r, j, 3));
        c->state = (case_state_t)case_state_parse(PQgetvalue(r, j, 4));
        c->proposal_version = atoi(PQgetvalue(r, j, 5));
        c->record_count = atoi(PQgetvalue(r, j, 6));
        c->opened_on = s_getdate(r, j, 7);
        snprintf(c->matter_code, sizeof c->matter_code, "%s", PQgetvalue(r, j, 8));
        snprintf(c->decision_no, sizeof c->decision_no, "%s", PQgetvalue(r, j, 9));
        c->decided_version = atoi(PQgetvalue(r, j, 10));
        c->item = -1;
    }
    PQclear(r);

    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        for (size_t j = 0; j < b->ncases && it->ci < 0; j++) {
            s_case_t *c = &b->cases[j];
            if (it->case_id > 0
                    ? c->id == it->case_id
                    : strcmp(c->agency, it->agency) == 0 && strcmp(c->case_no, it->case_no) == 0)
                it->ci = (int)j;
        }
        const char *field = it->case_id > 0 ? "body.case_id" : "body.case_no";
        if (it->ci < 0) {
            s_fail(it, "not_found", field, "案件不存在", "no such case");
        } else if (strcmp(b->cases[it->ci].agency, it->agency) != 0) {
            /* Another agency's case: refused, logged, nothing written. The reply is the
             * same whatever the case's state, and names neither its agency nor its state. */
            log_warn("case of another agency refused", "identity=%s op=%s case_id=%" PRId64,
                     rpc_req_identity(it->req), rpc_req_op(it->req), it->case_id);
            s_fail(it, "forbidden", field, "无权访问其他机关的案件",
                   "the case belongs to another agency");
            it->ci = -1;
        }
    }
    return 0;
}

/* The one UPDATE of the batch's changed cases: their final state and, per op, the
 * columns the op sets (NULL keeps the column). Each row is found by an index probe and
 * updated by ctid (a TID scan), whatever the statistics say: written "WHERE c.id = u.id",
 * the generic plan cached while intake.cases was young hashed a sequential scan of the
 * whole table (2.8 ms, 800 buffers a call as it grew). The ctid is safe: every dirty case
 * was locked FOR UPDATE by s_load_cases(lock) in this transaction, so no other
 * transaction can move it; s_update_cases checks that every row was updated. */
static const char s_update_sql[] =
    "UPDATE intake.cases c SET state = u.state, updated_at = now(),"
    " proposal_version = u.pv, record_count = u.rc,"
    " decided_version = coalesce(u.dv, c.decided_version),"
    " decision_no = coalesce(u.dno, c.decision_no),"
    " decision_date = coalesce(u.ddate, c.decision_date),"
    " served_on = coalesce(u.son, c.served_on), serve_method = coalesce(u.sm, c.serve_method),"
    " executed_on = coalesce(u.eon, c.executed_on),"
    " execute_method = coalesce(u.em, c.execute_method),"
    " closed_on = coalesce(u.con, c.closed_on), close_note = coalesce(u.cn, c.close_note),"
    " revoke_kind = coalesce(u.rk, c.revoke_kind), revoke_reason = coalesce(u.rr, c.revoke_reason),"
    " revoked_on = coalesce(u.ron, c.revoked_on), met_on = coalesce(c.met_on, u.met)"
    " FROM unnest($1::int8[], $2::text[], $3::int4[], $4::int4[], $5::int4[], $6::text[],"
    "             $7::date[], $8::date[], $9::text[], $10::date[], $11::text[], $12::date[],"
    "             $13::text[], $14::text[], $15::text[], $16::date[], $17::date[])"
    "      AS u(id, state, pv, rc, dv, dno, ddate, son, sm, eon, em, con, cn, rk, rr, ron, met)"
    " CROSS JOIN LATERAL (SELECT c0.ctid AS t FROM intake.cases c0 WHERE c0.id = u.id LIMIT 1) k"
    " WHERE c.ctid = k.t";

static int
s_update_cases(db_t *db, s_batch_t *b)
{
    static const uint32_t oids[17] = {
        PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_INT4, PGARRAY_INT4, PGARRAY_INT4, PGARRAY_TEXT,
        PGARRAY_DATE, PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_DATE,
        PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_DATE};
    s_params_t p = {0};
    s_params_begin(&p, oids, 17);
    size_t count = 0;
    for (size_t j = 0; j < b->ncases; j++) {
        s_case_t *c = &b->cases[j];
        if (!c->dirty)
            continue;
        count++;
        const s_item_t *it = c->item >= 0 ? &b->items[c->item] : NULL;
        pgarray_int8(&p.a[0], c->id);
        pgarray_str(&p.a[1], case_state_name(c->state));
        pgarray_int4(&p.a[2], c->proposal_version);
        pgarray_int4(&p.a[3], c->record_count);
        if (c->set_decision) {
            pgarray_int4(&p.a[4], c->decided_version);
            pgarray_str(&p.a[5], it->decision_no);
            pgarray_date(&p.a[6], it->date);
        } else {
            pgarray_null(&p.a[4]);
            pgarray_null(&p.a[5]);
            pgarray_null(&p.a[6]);
        }
        if (c->set_served) {
            pgarray_date(&p.a[7], it->date);
            pgarray_str(&p.a[8], s_serve_methods[it->method]);
        } else {
            pgarray_null(&p.a[7]);
            pgarray_null(&p.a[8]);
        }
        if (c->set_executed) {
            pgarray_date(&p.a[9], it->date);
            pgarray_str(&p.a[10], s_execute_methods[it->method]);
        } else {
            pgarray_null(&p.a[9]);
            pgarray_null(&p.a[10]);
        }
        if (c->set_closed) {
            pgarray_date(&p.a[11], it->date);
            if (it->note.p)
                pgarray_text(&p.a[12], it->note.p, it->note.n);
            else
                pgarray_null(&p.a[12]);
        } else {
            pgarray_null(&p.a[11]);
            pgarray_null(&p.a[12]);
        }
        if (c->set_revoked) {
            pgarray_str(&p.a[13], s_revoke_kinds[it->kind]);
            pgarray_text(&p.a[14], it->note.p, it->note.n);
            pgarray_date(&p.a[15], it->date);
        } else {
            pgarray_null(&p.a[13]);
            pgarray_null(&p.a[14]);
            pgarray_null(&p.a[15]);
        }
        if (c->set_met)
            pgarray_date(&p.a[16], it->date);
        else
            pgarray_null(&p.a[16]);
    }
    if (count == 0) {
        s_params_free(&p);
        return 0;
    }
    PGresult *r = s_params_exec(db, &p, "case_update", s_update_sql, 0);
    s_params_free(&p);
    if (!r)
        return -1;
    long updated = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (updated != (long)count) {
        log_error("case_ops: locked cases not all updated", "expected=%zu updated=%ld", count,
                  updated);
        return -1;
    }
    return 0;
}

/* Emits the events of the successful items (their ev buffers) in one statement. */
static int
s_emit(db_t *db, s_batch_t *b)
{
    bus_event_in_t *ev = calloc(b->n ? b->n : 1, sizeof *ev);
    if (!ev)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed || it->ev.size == 0)
            continue;
        ev[k++] = (bus_event_in_t){it->topic, INTAKE_EVENT_V, it->ev.data, it->ev.size};
    }
    int rc = 0;
    for (size_t off = 0; off < k && rc == 0; off += BUS_BATCH_MAX) {
        size_t m = k - off < BUS_BATCH_MAX ? k - off : BUS_BATCH_MAX;
        evmsg_err_t err = {{0}, {0}};
        rc = bus_emit_batch_seq(db, INTAKE_SCHEMA, ev + off, m, &err);
        if (rc < 0)
            log_error("case_ops: events not written", "reason=%s path=%s db=%s", err.reason,
                      err.path, db_error(db));
    }
    free(ev);
    return rc;
}

/* Starts the event of item it: topic <event>.<agency>, and a packer on it->ev. */
static void
s_event_begin(s_item_t *it, const char *event, msgpack_packer *pk)
{
    snprintf(it->topic, sizeof it->topic, "%s.%s", event, it->agency);
    msgpack_sbuffer_clear(&it->ev);
    msgpack_packer_init(pk, &it->ev, msgpack_sbuffer_write);
}

/* Replies ok with {case_id, case_no, state} plus extra keys packed by fn. */
static void
s_reply(s_batch_t *b, s_item_t *it, size_t extra,
        void (*fn)(msgpack_packer *, s_batch_t *, s_item_t *))
{
    const s_case_t *c = &b->cases[it->ci];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + extra);
    s_kint(&pk, "case_id", c->id);
    s_kcstr(&pk, "case_no", c->case_no);
    /* The state after this request (a later request of the batch may move it on). */
    s_kcstr(&pk, "state", case_state_name((case_state_t)it->state_after));
    if (fn)
        fn(&pk, b, it);
    rpc_ok(it->req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The common head of every case event: case_id, case_no, type, matter_code, state. */
static void
s_event_head(msgpack_packer *pk, const s_case_t *c, case_state_t state)
{
    s_kint(pk, "case_id", c->id);
    s_kcstr(pk, "case_no", c->case_no);
    s_kcstr(pk, "type", case_type_name(c->type));
    s_kcstr(pk, "matter_code", c->matter_code);
    s_kcstr(pk, "state", case_state_name(state));
}
#define S_HEAD_KEYS 5

/* ==== case.open ========================================================================= */

static void
s_read_open(s_batch_t *b, s_item_t *it)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(it->req, &err), party;
    static const char *const keys[] = {"case_no", "matter_code", "party",    "summary", "opened_on",
                                       "on_site", "act_date",    "officers", NULL};
    static const char *const pkeys[] = {"kind", "name", "id_type", "id_no", NULL};
    evmsg_map_only(&body, keys);
    evmsg_map_str(&body, "case_no", EVMSG_NONEMPTY, CASE_NO_MAX, it->case_no);
    evmsg_map_str(&body, "matter_code", EVMSG_NONEMPTY, CASE_CODE_MAX, it->matter_code);
    evmsg_map_map(&body, "party", EVMSG_REQUIRED, &party);
    evmsg_map_only(&party, pkeys);
    evmsg_map_enum(&party, "kind", EVMSG_REQUIRED, s_party_kinds, &it->party_kind);
    s_read_str(&party, "name", EVMSG_NONEMPTY, CASE_NAME_MAX, &it->party_name);
    evmsg_map_enum(&party, "id_type", EVMSG_REQUIRED, s_id_types, &it->id_type);
    evmsg_map_str(&party, "id_no", EVMSG_NONEMPTY, CASE_IDNO_MAX, it->id_no);
    s_read_str(&body, "summary", EVMSG_OPTIONAL, CASE_NOTE_MAX, &it->summary);
    evmsg_map_date(&body, "opened_on", EVMSG_REQUIRED, &it->opened_on);
    evmsg_map_bool(&body, "on_site", EVMSG_OPTIONAL, &it->on_site);
    it->act_date = INT32_MIN;
    evmsg_map_date(&body, "act_date", EVMSG_OPTIONAL, &it->act_date);
    s_read_officers(it, &body, EVMSG_OPTIONAL, &err);
    if (err.reason[0]) {
        s_fail_evmsg(it, &err);
        return;
    }
    if (it->act_date == INT32_MIN)
        it->act_date = it->opened_on;

    /* The party's identifier, by its kind: a person's ID types, or an organisation's
     * 统一社会信用代码 (GB 32100) / 组织机构代码 (GB 11714). */
    bool person_type = it->id_type < ID_USCC;
    if ((it->party_kind == PARTY_PERSON) != person_type) {
        s_fail(it, "bad_field", "body.party.id_type",
               it->party_kind == PARTY_PERSON
                   ? "自然人的证件类型须为 idcard, passport, hkmo_permit, tw_permit, foreign_pr"
                   : "组织的证件类型须为 uscc 或 org_code",
               it->party_kind == PARTY_PERSON
                   ? "a person's id_type is one of idcard, passport, hkmo_permit, tw_permit, "
                     "foreign_pr"
                   : "an organisation's id_type is uscc or org_code");
        return;
    }
    ident_err_t ie;
    const char *std_en = NULL, *std_zh = NULL;
    int bad = 0;
    if (it->id_type == ID_IDCARD) {
        bad = ident_idcard_check(it->id_no, b->today, &ie);
        std_en = "citizen ID number (GB 11643)";
        std_zh = "居民身份证号码（GB 11643）";
    } else if (it->id_type == ID_USCC) {
        bad = ident_uscc_check(it->id_no, &ie);
        std_en = "unified social credit code (GB 32100)";
        std_zh = "统一社会信用代码（GB 32100）";
    } else if (it->id_type == ID_ORGCODE) {
        bad = ident_orgcode_check(it->id_no, &ie);
        std_en = "organisation code (GB 11714)";
        std_zh = "组织机构代码（GB 11714）";
    }
    if (bad) {
        char en[RPC_TEXT_MAX], zh[RPC_TEXT_MAX];
        snprintf(en, sizeof en, "%s: %s", std_en, ie.en);
        snprintf(zh, sizeof zh, "%s：%s", std_zh, ie.zh);
        s_fail(it, "bad_id", "body.party.id_no", zh, en);
        return;
    }
    if (!s_date_ok(it, "body.opened_on", it->opened_on, INT32_MIN, b->today) ||
        !s_date_ok(it, "body.act_date", it->act_date, INT32_MIN, b->today))
        return;
    /* 行政处罚法 (2021) art. 42: 执法人员不得少于两人; 行政强制法 art. 18(二): 由两名以上
     * 行政执法人员实施. */
    if (it->on_site && it->nofficers < CASE_ON_SITE_MIN) {
        char en[160], zh[200];
        snprintf(en, sizeof en,
                 "an on-site act needs at least %d officers of this agency (%zu given)",
                 CASE_ON_SITE_MIN, it->nofficers);
        snprintf(zh, sizeof zh, "现场执法须有至少%d名本机关执法人员（提供了%zu名）",
                 CASE_ON_SITE_MIN, it->nofficers);
        s_fail(it, "officers_required", "body.officers", zh, en);
    }
}

static date_t
s_act_day(const s_item_t *it)
{
    return it->act_date;
}

static const char s_matters_sql[] =
    "SELECT m.agency, m.code, m.type, m.time_limit, m.time_limit_unit, m.version"
    " FROM intake.matter m"
    " WHERE m.active AND (m.agency, m.code) IN (SELECT k.a::char(18), k.c"
    "                                           FROM unnest($1::text[], $2::text[]) AS k(a, c))";

/* Inserts the cases whose number is free, with their statutory deadlines, ids from the
 * table's sequence in batch order; returns (id, agency, case_no) of the inserted ones. */
static const char s_open_sql[] =
    "INSERT INTO intake.cases (agency, case_no, type, matter_code, matter_version, state,"
    "   party_kind, party_name, party_id_type, party_id_no, summary, on_site, act_date,"
    "   officers, opened_on, opened_by, due, warn_on, due_uncovered)"
    " SELECT u.agency::char(18), u.case_no, u.type, u.matter_code, u.mv, 'open', u.pk,"
    "   u.pn, u.pt, u.pi, u.summary, u.on_site, u.act_date, string_to_array(u.officers, E'\\x1f'),"
    "   u.opened_on, u.opener, u.due, u.warn, u.unc"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],"
    "   $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::date[],"
    "   $13::text[], $14::date[], $15::text[], $16::date[], $17::date[], $18::bool[])"
    "   WITH ORDINALITY AS u(agency, case_no, type, matter_code, mv, pk, pn, pt, pi, summary,"
    "                        on_site, act_date, officers, opened_on, opener, due, warn, unc, i)"
    " LEFT JOIN LATERAL (SELECT 1 AS taken FROM intake.cases c"
    "   WHERE c.agency = u.agency::char(18) AND c.case_no = u.case_no LIMIT 1) x ON true"
    " WHERE x.taken IS NULL"
    " ORDER BY u.i"
    " RETURNING id, agency, case_no";

/* An item's (agency, case_no), for finding repeats within a batch. */
typedef struct {
    const char *agency, *case_no;
    size_t i;
} s_case_key_t;

static int
s_cmp_case_key(const void *a, const void *b)
{
    const s_case_key_t *x = a, *y = b;
    int c = memcmp(x->agency, y->agency, EVMSG_AGENCY_LEN);
    if (c == 0)
        c = strcmp(x->case_no, y->case_no);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static void
s_fail_case_exists(s_item_t *it)
{
    char en[200], zh[200];
    snprintf(en, sizeof en, "case_no %s is already used by a case of this agency", it->case_no);
    snprintf(zh, sizeof zh, "本机关已有案件编号为%s的案件", it->case_no);
    s_fail(it, "case_exists", "body.case_no", zh, en);
}

/* Fails every unfailed item whose (agency, case_no) an earlier item of the batch uses:
 * the insert skips only the numbers already in the table, the first of a batch wins.
 * Leaves the keys of the items still unfailed, sorted, in *keys (*nkeys of them; the
 * caller frees). */
static int
s_fail_repeats(s_batch_t *b, s_case_key_t **keys, size_t *nkeys)
{
    s_case_key_t *k = calloc(b->n ? b->n : 1, sizeof *k);
    if (!k)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < b->n; i++)
        if (!b->items[i].failed)
            k[m++] = (s_case_key_t){b->items[i].agency, b->items[i].case_no, i};
    qsort(k, m, sizeof *k, s_cmp_case_key);
    size_t out = 0;
    for (size_t j = 0; j < m; j++) {
        if (out > 0 && memcmp(k[j].agency, k[out - 1].agency, EVMSG_AGENCY_LEN) == 0 &&
            strcmp(k[j].case_no, k[out - 1].case_no) == 0)
            s_fail_case_exists(&b->items[k[j].i]);
        else
            k[out++] = k[j];
    }
    *keys = k;
    *nkeys = out;
    return 0;
}

/* The item of an inserted row (agency, case_no) among keys, or -1. */
static long
s_find_case_key(const s_case_key_t *keys, size_t n, const char *agency, const char *case_no)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(keys[mid].agency, agency, EVMSG_AGENCY_LEN);
        if (c == 0)
            c = strcmp(keys[mid].case_no, case_no);
        if (c == 0)
            return (long)keys[mid].i;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The event case.opened and the reply, for an inserted case. */
static void
s_open_done(s_batch_t *b, s_item_t *it, int64_t id, const char *type)
{
    (void)b;
    msgpack_packer pk;
    s_event_begin(it, "case.opened", &pk);
    msgpack_pack_map(&pk, 15);
    s_kint(&pk, "case_id", id);
    s_kcstr(&pk, "case_no", it->case_no);
    s_kcstr(&pk, "type", type);
    s_kcstr(&pk, "matter_code", it->matter_code);
    s_kcstr(&pk, "state", "open");
    s_kint(&pk, "matter_version", it->version);
    s_key(&pk, "party");
    msgpack_pack_map(&pk, 4);
    s_kcstr(&pk, "kind", s_party_kinds[it->party_kind]);
    s_ks(&pk, "name", it->party_name);
    s_kcstr(&pk, "id_type", s_id_types[it->id_type]);
    s_kcstr(&pk, "id_no", it->id_no);
    s_ks(&pk, "summary", it->summary);
    s_kdate(&pk, "opened_on", it->opened_on);
    s_kbool(&pk, "on_site", it->on_site);
    s_kdate(&pk, "act_date", it->act_date);
    s_key(&pk, "officers");
    msgpack_pack_array(&pk, it->nofficers);
    for (size_t k = 0; k < it->nofficers; k++)
        msgpack_pack_str_with_body(&pk, it->officers[k], strlen(it->officers[k]));
    s_kdate(&pk, "deadline", it->due);
    s_kdate(&pk, "deadline_warn_on", it->warn_on);
    s_kbool(&pk, "deadline_uncovered", it->uncovered);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    s_kint(&pk, "case_id", id);
    s_kcstr(&pk, "case_no", it->case_no);
    s_kcstr(&pk, "state", "open");
    s_kcstr(&pk, "type", type);
    s_kdate(&pk, "deadline", it->due);
    s_kdate(&pk, "deadline_warn_on", it->warn_on);
    rpc_ok(it->req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static int
s_open(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    s_batch_t b;
    if (s_batch_init(&b, arg, reqs, n, CO_RECORD) < 0)
        return -1;
    int rc = -1;
    PGresult *mr = NULL, *r = NULL;
    int64_t *ids = NULL;
    s_case_key_t *keys = NULL;
    size_t nkeys = 0;
    for (size_t i = 0; i < n; i++)
        if (!b.items[i].failed)
            s_read_open(&b, &b.items[i]);

    /* The matters (in the caller's ACTIVE matter list) and the officers, each in one
     * query, both in one round trip. */
    s_params_t p = {0}, po = {0};
    static const uint32_t oids2[2] = {PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_begin(&p, oids2, 2);
    for (size_t i = 0; i < n; i++) {
        if (b.items[i].failed)
            continue;
        pgarray_str(&p.a[0], b.items[i].agency);
        pgarray_str(&p.a[1], b.items[i].matter_code);
    }
    db_call_t calls[2];
    PGresult *res[2] = {NULL, NULL};
    size_t ncalls = s_officers_params(&b, &po) > 0 ? 2 : 1;
    int qrc =
        s_params_call(db, &p, "case_matters", s_matters_sql, 0, &calls[0]) |
        (ncalls == 2 ? s_params_call(db, &po, "case_officers", s_officers_sql, 0, &calls[1]) : 0);
    if (qrc == 0)
        qrc = db_exec_prepared_all(db, calls, ncalls, res);
    s_params_free(&p);
    s_params_free(&po);
    mr = res[0];
    if (qrc < 0)
        goto done;
    int mrows = PQntuples(mr);
    size_t nuncovered = 0;
    const s_item_t *first_uncovered = NULL;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        for (int j = 0; j < mrows && it->mi < 0; j++)
            if (memcmp(PQgetvalue(mr, j, 0), it->agency, EVMSG_AGENCY_LEN) == 0 &&
                strcmp(PQgetvalue(mr, j, 1), it->matter_code) == 0)
                it->mi = j;
        if (it->mi < 0) {
            char en[200], zh[200];
            snprintf(en, sizeof en, "matter %s is not in this agency's active matter list",
                     it->matter_code);
            snprintf(zh, sizeof zh, "事项%s不在本机关现行行政执法事项清单中", it->matter_code);
            s_fail(it, "unknown_matter", "body.matter_code", zh, en);
            continue;
        }
        it->version = atoi(PQgetvalue(mr, it->mi, 5));
        if (case_deadline(b.app->calendar, it->opened_on, atoi(PQgetvalue(mr, it->mi, 3)),
                          PQgetvalue(mr, it->mi, 4), &it->due, &it->warn_on, &it->uncovered) < 0) {
            s_fail(it, "bad_field", "body.opened_on", "无法计算法定办理时限",
                   "the statutory deadline cannot be counted from this date");
            continue;
        }
        if (it->uncovered && nuncovered++ == 0)
            first_uncovered = it;
    }
    /* Once per batch, not per case: under load a line per case.open cost the write path
     * more than the rest of its logging and flooded the log. The case's flag is in its
     * case.opened event and in cases.due_uncovered. */
    if (nuncovered > 0) {
        char d[11];
        log_warn("deadline counted beyond the working-day calendar", "cases=%zu case_no=%s due=%s",
                 nuncovered, first_uncovered->case_no, date_format(first_uncovered->due, d));
    }
    /* The officers after the matters: an item fails for its first fault. */
    s_officers_apply(&b, res[1], s_act_day);
    if (s_fail_repeats(&b, &keys, &nkeys) < 0)
        goto done;

    /* One INSERT (with the deadlines) for the survivors. */
    if (nkeys == 0) {
        rc = 0;
        goto done;
    }
    ids = calloc(n, sizeof *ids);
    if (!ids)
        goto done;

    static const uint32_t oids[18] = {
        PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT4, PGARRAY_TEXT,
        PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_BOOL, PGARRAY_DATE,
        PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_DATE, PGARRAY_BOOL};
    s_params_begin(&p, oids, 18);
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        char officers[CASE_OFFICERS_MAX * (CASE_CODE_MAX + 1) + 1];
        size_t ol = 0;
        for (size_t k = 0; k < it->nofficers; k++) {
            size_t len = strlen(it->officers[k]);
            if (k)
                officers[ol++] = '\x1f';
            memcpy(officers + ol, it->officers[k], len);
            ol += len;
        }
        pgarray_str(&p.a[0], it->agency);
        pgarray_str(&p.a[1], it->case_no);
        pgarray_str(&p.a[2], PQgetvalue(mr, it->mi, 2));
        pgarray_str(&p.a[3], it->matter_code);
        pgarray_int4(&p.a[4], it->version);
        pgarray_str(&p.a[5], s_party_kinds[it->party_kind]);
        pgarray_text(&p.a[6], it->party_name.p, it->party_name.n);
        pgarray_str(&p.a[7], s_id_types[it->id_type]);
        pgarray_str(&p.a[8], it->id_no);
        if (it->summary.p)
            pgarray_text(&p.a[9], it->summary.p, it->summary.n);
        else
            pgarray_null(&p.a[9]);
        pgarray_bool(&p.a[10], it->on_site);
        pgarray_date(&p.a[11], it->act_date);
        pgarray_text(&p.a[12], officers, ol);
        pgarray_date(&p.a[13], it->opened_on);
        pgarray_str(&p.a[14], rpc_req_identity(it->req));
        pgarray_date(&p.a[15], it->due);
        pgarray_date(&p.a[16], it->warn_on);
        pgarray_bool(&p.a[17], it->uncovered);
    }
    r = s_params_exec(db, &p, "case_open", s_open_sql, 0);
    s_params_free(&p);
    if (!r)
        goto done;
    for (int row = 0; row < PQntuples(r); row++) {
        long i = PQgetlength(r, row, 1) == EVMSG_AGENCY_LEN
                     ? s_find_case_key(keys, nkeys, PQgetvalue(r, row, 1), PQgetvalue(r, row, 2))
                     : -1;
        if (i < 0) {
            log_error("case_ops: an inserted case matches no request", "case_no=%s",
                      PQgetvalue(r, row, 2));
            goto done;
        }
        ids[i] = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    }
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        if (ids[i] == 0) {
            s_fail_case_exists(it);
            continue;
        }
        s_open_done(&b, it, ids[i], PQgetvalue(mr, it->mi, 2));
    }
    rc = s_emit(db, &b);
done:
    PQclear(r);
    PQclear(mr);
    free(ids);
    free(keys);
    s_batch_free(&b);
    return rc;
}

/* ==== The ops on an existing case ======================================================= */

/* What one op adds to the common flow (s_run): read the body, look up what the batch
 * needs, check each request, apply it to the case and describe it, write its rows. */
typedef struct {
    case_op_t op;
    const char *event;       /* event name, e.g. "case.served" */
    const char *const *keys; /* the body's keys */
    const char *date_key;    /* the op's date field (checked against the case) */
    void (*read)(s_batch_t *, s_item_t *, const evmsg_map_t *, evmsg_err_t *);
    int (*before)(db_t *, s_batch_t *);                 /* batched look-ups, may fail items */
    bool (*check)(s_batch_t *, s_item_t *, s_case_t *); /* may fail the item */
    size_t ev_keys;                                     /* keys effect packs into the event */
    void (*effect)(s_batch_t *, s_item_t *, s_case_t *, msgpack_packer *);
    size_t reply_keys; /* keys reply packs into the result beyond case_id, case_no, state */
    void (*reply)(msgpack_packer *, s_batch_t *, s_item_t *);
    int (*write)(db_t *, s_batch_t *); /* the op's own rows */
} s_opdef_t;

static int
s_run(db_t *db, const s_opdef_t *d, rpc_req_t *const *reqs, size_t n, void *arg)
{
    s_batch_t b;
    if (s_batch_init(&b, arg, reqs, n, d->op) < 0)
        return -1;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(it->req, &err);
        evmsg_map_only(&body, d->keys);
        s_read_ref(it, &body, &err);
        if (d->date_key)
            evmsg_map_date(&body, d->date_key, EVMSG_REQUIRED, &it->date);
        d->read(&b, it, &body, &err);
        if (err.reason[0])
            s_fail_evmsg(it, &err);
    }
    if (s_load_cases(db, &b, true) < 0)
        goto done;
    if (d->before && d->before(db, &b) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        s_case_t *c = &b.cases[it->ci];
        char en[200], zh[300];
        int next = case_state_next(c->type, c->state, d->op, en, sizeof en, zh, sizeof zh);
        if (next < 0) {
            s_fail(it, "wrong_state", "", zh, en);
            continue;
        }
        if (d->date_key) {
            char field[48];
            snprintf(field, sizeof field, "body.%s", d->date_key);
            if (!s_date_ok(it, field, it->date, c->opened_on, b.today))
                continue;
        }
        if (d->check && !d->check(&b, it, c))
            continue;
        c->state = (case_state_t)next;
        c->dirty = true;
        it->state_after = next;
        msgpack_packer pk;
        s_event_begin(it, d->event, &pk);
        msgpack_pack_map(&pk, S_HEAD_KEYS + d->ev_keys);
        s_event_head(&pk, c, c->state);
        d->effect(&b, it, c, &pk);
        s_reply(&b, it, d->reply_keys, d->reply);
    }
    if (s_update_cases(db, &b) < 0 || (d->write && d->write(db, &b) < 0) || s_emit(db, &b) < 0)
        goto done;
    rc = 0;
done:
    s_batch_free(&b);
    return rc;
}

/* ---- case.record: the whole-process record (执法全过程记录) -------------------------- */

#define S_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

static void
s_record_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b;
    evmsg_map_t media;
    static const char *const mkeys[] = {"sha256", "uri", "size", NULL};
    uint64_t started = 0, ended = 0;
    evmsg_map_enum(body, "stage", EVMSG_REQUIRED, s_stages, &it->stage);
    evmsg_map_enum(body, "kind", EVMSG_REQUIRED, s_record_kinds, &it->kind);
    s_read_str(body, "doc_type", EVMSG_NONEMPTY, CASE_CODE_MAX, &it->doc_type);
    s_read_officers(it, body, EVMSG_REQUIRED, err);
    s_read_str(body, "device", EVMSG_OPTIONAL | EVMSG_NONEMPTY, 128, &it->device);
    evmsg_map_uint(body, "started_at", EVMSG_REQUIRED, S_MS_MAX, &started);
    evmsg_map_uint(body, "ended_at", EVMSG_REQUIRED, S_MS_MAX, &ended);
    evmsg_map_map(body, "media", EVMSG_REQUIRED, &media);
    evmsg_map_only(&media, mkeys);
    evmsg_map_str(&media, "sha256", EVMSG_REQUIRED, 64, it->sha256);
    s_read_str(&media, "uri", EVMSG_NONEMPTY, CASE_URI_MAX, &it->uri);
    evmsg_map_uint(&media, "size", EVMSG_REQUIRED, (UINT64_C(1) << 53) - 1, &it->size);
    evmsg_map_enum(body, "classification", EVMSG_REQUIRED, s_classifications, &it->classification);
    if (err->reason[0])
        return;
    it->started_at = (int64_t)started;
    it->ended_at = (int64_t)ended;
    bool hex = strlen(it->sha256) == 64;
    for (size_t k = 0; hex && k < 64; k++)
        hex = (it->sha256[k] >= '0' && it->sha256[k] <= '9') ||
              (it->sha256[k] >= 'a' && it->sha256[k] <= 'f');
    if (!hex) {
        snprintf(err->path, sizeof err->path, "body.media.sha256");
        snprintf(err->reason, sizeof err->reason, "expected 64 lowercase hex digits");
    } else if (it->nofficers == 0) {
        snprintf(err->path, sizeof err->path, "body.officers");
        snprintf(err->reason, sizeof err->reason, "at least one officer");
    } else if (it->ended_at < it->started_at) {
        snprintf(err->path, sizeof err->path, "body.ended_at");
        snprintf(err->reason, sizeof err->reason, "before started_at");
    }
}

static date_t
s_record_day(const s_item_t *it)
{
    return date_from_unix_cst(it->started_at / 1000);
}

static int
s_record_before(db_t *db, s_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed || strcmp(s_record_kinds[it->kind], "text") != 0)
            continue;
        if (doc_type_known(it->doc_type.p, it->doc_type.n))
            continue;
        char zh[RPC_TEXT_MAX + 1], en[RPC_TEXT_MAX + 1];
        doc_types_message(zh, en, sizeof zh);
        s_fail(it, "bad_field", "body.doc_type", zh, en);
    }
    return s_check_officers(db, b, s_record_day);
}

static void
s_record_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    (void)b;
    it->record_no = ++c->record_count;
    s_kint(pk, "record_no", it->record_no);
    s_kcstr(pk, "stage", s_stages[it->stage]);
    s_kcstr(pk, "kind", s_record_kinds[it->kind]);
    s_ks(pk, "doc_type", it->doc_type);
    s_key(pk, "officers");
    msgpack_pack_array(pk, it->nofficers);
    for (size_t k = 0; k < it->nofficers; k++)
        msgpack_pack_str_with_body(pk, it->officers[k], strlen(it->officers[k]));
    s_ks(pk, "device", it->device);
    s_kint(pk, "started_at", it->started_at);
    s_kint(pk, "ended_at", it->ended_at);
    s_key(pk, "media");
    msgpack_pack_map(pk, 3);
    s_kcstr(pk, "sha256", it->sha256);
    s_ks(pk, "uri", it->uri);
    s_kint(pk, "size", (int64_t)it->size);
    s_kcstr(pk, "classification", s_classifications[it->classification]);
}

static void
s_record_reply(msgpack_packer *pk, s_batch_t *b, s_item_t *it)
{
    (void)b;
    s_kint(pk, "record_no", it->record_no);
}

static const char s_record_sql[] =
    "INSERT INTO intake.case_record (case_id, record_no, stage, kind, doc_type, officers, device,"
    " started_at, ended_at, media_sha256, media_uri, media_size, classification, recorded_by)"
    " SELECT u.case_id, u.no, u.stage, u.kind, u.doc_type, string_to_array(u.officers, E'\\x1f'),"
    " u.device, 'epoch'::timestamptz + u.st * interval '1 millisecond',"
    " 'epoch'::timestamptz + u.et * interval '1 millisecond', u.sha, u.uri, u.size, u.cls, u.opener"
    " FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[],"
    "             $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::int8[],"
    "             $13::text[], $14::text[])"
    "      AS u(case_id, no, stage, kind, doc_type, officers, device, st, et, sha, uri, size, cls,"
    "           opener)";

static int
s_record_write(db_t *db, s_batch_t *b)
{
    static const uint32_t oids[14] = {PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_TEXT,
                                      PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT8,
                                      PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT8,
                                      PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_t p = {0};
    s_params_begin(&p, oids, 14);
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        count++;
        char officers[CASE_OFFICERS_MAX * (CASE_CODE_MAX + 1) + 1];
        size_t ol = 0;
        for (size_t k = 0; k < it->nofficers; k++)
            ol += (size_t)snprintf(officers + ol, sizeof officers - ol, "%s%s", k ? "\x1f" : "",
                                   it->officers[k]);
        pgarray_int8(&p.a[0], b->cases[it->ci].id);
        pgarray_int4(&p.a[1], it->record_no);
        pgarray_str(&p.a[2], s_stages[it->stage]);
        pgarray_str(&p.a[3], s_record_kinds[it->kind]);
        pgarray_text(&p.a[4], it->doc_type.p, it->doc_type.n);
        pgarray_text(&p.a[5], officers, ol);
        if (it->device.p)
            pgarray_text(&p.a[6], it->device.p, it->device.n);
        else
            pgarray_null(&p.a[6]);
        pgarray_int8(&p.a[7], it->started_at);
        pgarray_int8(&p.a[8], it->ended_at);
        pgarray_str(&p.a[9], it->sha256);
        pgarray_text(&p.a[10], it->uri.p, it->uri.n);
        pgarray_int8(&p.a[11], (int64_t)it->size);
        pgarray_str(&p.a[12], s_classifications[it->classification]);
        pgarray_str(&p.a[13], rpc_req_identity(it->req));
    }
    PGresult *r = count ? s_params_exec(db, &p, "case_record_ins", s_record_sql, 0) : NULL;
    s_params_free(&p);
    if (count && !r)
        return -1;
    PQclear(r);
    return 0;
}

static const char *const s_record_keys[] = {"case_id",  "case_no",  "stage",          "kind",
                                            "doc_type", "officers", "device",         "started_at",
                                            "ended_at", "media",    "classification", NULL};
static const s_opdef_t s_record_def = {CO_RECORD,
                                       "case.recorded",
                                       s_record_keys,
                                       NULL,
                                       s_record_read,
                                       s_record_before,
                                       NULL,
                                       10,
                                       s_record_effect,
                                       1,
                                       s_record_reply,
                                       s_record_write};

/* ---- case.propose: a proposed decision, a new version each time ---------------------- */

static void
s_propose_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b;
    s_read_str(body, "category", EVMSG_NONEMPTY, CASE_NAME_MAX, &it->category);
    s_read_str(body, "content", EVMSG_NONEMPTY, CASE_TEXT_MAX, &it->content);
    evmsg_map_decimal(body, "fine", EVMSG_OPTIONAL, 6, 0, CASE_AMOUNT_MAX, &it->fine);
    evmsg_map_decimal(body, "confiscation", EVMSG_OPTIONAL, 6, 0, CASE_AMOUNT_MAX,
                      &it->confiscation);
    s_read_str(body, "legal_basis", EVMSG_NONEMPTY, CASE_NOTE_MAX, &it->legal_basis);
    s_read_str(body, "violation_code", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_CODE_MAX,
               &it->violation_code);
    evmsg_map_enum(body, "circumstance", EVMSG_OPTIONAL, gate_circ_names, &it->circumstance);
    evmsg_map_bool(body, "hearing", EVMSG_OPTIONAL, &it->hearing);
    evmsg_map_bool(body, "major_public_interest", EVMSG_OPTIONAL, &it->mpi);
    evmsg_map_bool(body, "social_risk", EVMSG_OPTIONAL, &it->risk);
    evmsg_map_bool(body, "complex", EVMSG_OPTIONAL, &it->complex);
    s_read_str(body, "deviation_reason", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_NOTE_MAX,
               &it->deviation_reason);
    if (err->reason[0])
        return;
    if (it->violation_code.p && it->circumstance < 0) {
        snprintf(err->path, sizeof err->path, "body.circumstance");
        snprintf(err->reason, sizeof err->reason, "missing");
    } else if (!it->violation_code.p && it->circumstance >= 0) {
        snprintf(err->path, sizeof err->path, "body.violation_code");
        snprintf(err->reason, sizeof err->reason, "missing");
    }
}

static int
s_propose_before(db_t *db, s_batch_t *b)
{
    b->gates = calloc(b->n, sizeof *b->gates);
    if (!b->gates)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        it->gi = (int)k;
        b->gates[k++] = (gate_proposal_t){
            .agency = it->agency,
            .type = b->cases[it->ci].type,
            .fine = it->fine,
            .confiscation = it->confiscation,
            .hearing = it->hearing,
            .major_public_interest = it->mpi,
            .social_risk = it->risk,
            .complex = it->complex,
            .violation_code = it->violation_code.p,
            .violation_code_len = it->violation_code.n,
            .circumstance = it->circumstance,
            .deviation = it->deviation_reason.p != NULL,
        };
    }
    if (k == 0)
        return 0;
    if (decision_gate_assess(db, b->gates, k) < 0)
        return -1;
    b->ngates = k;
    return 0;
}

static bool
s_propose_check(s_batch_t *b, s_item_t *it, s_case_t *c)
{
    (void)c;
    const gate_proposal_t *g = &b->gates[it->gi];
    if (g->band == 0 || it->deviation_reason.p)
        return true;
    char f[32], lo[32], hi[32], en[1024], zh[1024], vcode[CASE_CODE_MAX + 1];
    snprintf(vcode, sizeof vcode, "%.*s", (int)it->violation_code.n, it->violation_code.p);
    snprintf(en, sizeof en,
             "fine %s (10k CNY) is %s the discretion band %s to %s for violation %s (%s); "
             "give deviation_reason to depart from it, which then needs legal review",
             s_dec_format(it->fine, f), g->band < 0 ? "below" : "above",
             s_dec_format(g->band_min, lo), s_dec_format(g->band_max, hi), vcode,
             gate_circ_names[it->circumstance]);
    snprintf(zh, sizeof zh,
             "罚款%s万元%s自由裁量基准（%s至%s万元，违法行为%s，情节%s）；如确需变通适用，"
             "须说明理由（deviation_reason）并经法制审核",
             f, g->band < 0 ? "低于" : "高于", lo, hi, vcode,
             it->circumstance == GATE_MINOR     ? "轻微"
             : it->circumstance == GATE_GENERAL ? "一般"
                                                : "严重");
    s_fail(it, "discretion_out_of_band", "body.fine", zh, en);
    return false;
}

static void
s_propose_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    const gate_proposal_t *g = &b->gates[it->gi];
    it->version = ++c->proposal_version;
    s_kint(pk, "version", it->version);
    s_ks(pk, "category", it->category);
    s_ks(pk, "content", it->content);
    s_kdec(pk, "fine", it->fine);
    s_kdec(pk, "confiscation", it->confiscation);
    s_ks(pk, "legal_basis", it->legal_basis);
    s_ks(pk, "violation_code", it->violation_code);
    s_kcstr(pk, "circumstance", it->circumstance >= 0 ? gate_circ_names[it->circumstance] : NULL);
    s_kbool(pk, "hearing", it->hearing);
    s_kbool(pk, "major_public_interest", it->mpi);
    s_kbool(pk, "social_risk", it->risk);
    s_kbool(pk, "complex", it->complex);
    s_kbool(pk, "requires_review", g->requires_review);
    s_key(pk, "review_rules");
    s_pack_joined(pk, g->rules);
    s_key(pk, "discretion");
    if (g->band_found) {
        msgpack_pack_map(pk, 3);
        s_kdec(pk, "min", g->band_min);
        s_kdec(pk, "max", g->band_max);
        s_kbool(pk, "in_band", g->band == 0);
    } else {
        msgpack_pack_nil(pk);
    }
    s_ks(pk, "deviation_reason", it->deviation_reason);
}

static void
s_propose_reply(msgpack_packer *pk, s_batch_t *b, s_item_t *it)
{
    const gate_proposal_t *g = &b->gates[it->gi];
    s_kint(pk, "version", it->version);
    s_kbool(pk, "requires_review", g->requires_review);
    s_key(pk, "review_rules");
    s_pack_joined(pk, g->rules);
}

static const char s_propose_sql[] =
    "INSERT INTO intake.case_proposal (case_id, version, category, content, fine, confiscation,"
    " legal_basis, violation_code, circumstance, hearing, major_public_interest, social_risk,"
    " complex, band_min, band_max, deviation_reason, requires_review, review_rules, proposed_by)"
    " SELECT u.case_id, u.version, u.category, u.content, u.fine::numeric / 1000000,"
    " u.conf::numeric / 1000000, u.basis, u.vcode, u.circ, u.hearing, u.mpi, u.risk, u.complex,"
    " u.bmin::numeric / 1000000, u.bmax::numeric / 1000000, u.dev, u.rr,"
    " string_to_array(u.rules, E'\\x1f'), u.opener"
    " FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[], $5::int8[], $6::int8[],"
    "             $7::text[], $8::text[], $9::text[], $10::bool[], $11::bool[], $12::bool[],"
    "             $13::bool[], $14::int8[], $15::int8[], $16::text[], $17::bool[], $18::text[],"
    "             $19::text[])"
    "      AS u(case_id, version, category, content, fine, conf, basis, vcode, circ, hearing,"
    "           mpi, risk, complex, bmin, bmax, dev, rr, rules, opener)";

static void
s_arr_s(pgarray_t *a, s_str_t s)
{
    if (s.p)
        pgarray_text(a, s.p, s.n);
    else
        pgarray_null(a);
}

static int
s_propose_write(db_t *db, s_batch_t *b)
{
    static const uint32_t oids[19] = {PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_TEXT,
                                      PGARRAY_INT8, PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT,
                                      PGARRAY_TEXT, PGARRAY_BOOL, PGARRAY_BOOL, PGARRAY_BOOL,
                                      PGARRAY_BOOL, PGARRAY_INT8, PGARRAY_INT8, PGARRAY_TEXT,
                                      PGARRAY_BOOL, PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_t p = {0};
    s_params_begin(&p, oids, 19);
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        const gate_proposal_t *g = &b->gates[it->gi];
        count++;
        pgarray_int8(&p.a[0], b->cases[it->ci].id);
        pgarray_int4(&p.a[1], it->version);
        s_arr_s(&p.a[2], it->category);
        s_arr_s(&p.a[3], it->content);
        pgarray_int8(&p.a[4], it->fine);
        pgarray_int8(&p.a[5], it->confiscation);
        s_arr_s(&p.a[6], it->legal_basis);
        s_arr_s(&p.a[7], it->violation_code);
        pgarray_str(&p.a[8], it->circumstance >= 0 ? gate_circ_names[it->circumstance] : NULL);
        pgarray_bool(&p.a[9], it->hearing);
        pgarray_bool(&p.a[10], it->mpi);
        pgarray_bool(&p.a[11], it->risk);
        pgarray_bool(&p.a[12], it->complex);
        if (g->band_found) {
            pgarray_int8(&p.a[13], g->band_min);
            pgarray_int8(&p.a[14], g->band_max);
        } else {
            pgarray_null(&p.a[13]);
            pgarray_null(&p.a[14]);
        }
        s_arr_s(&p.a[15], it->deviation_reason);
        pgarray_bool(&p.a[16], g->requires_review);
        pgarray_str(&p.a[17], g->rules);
        pgarray_str(&p.a[18], rpc_req_identity(it->req));
    }
    PGresult *r = count ? s_params_exec(db, &p, "case_propose_ins", s_propose_sql, 0) : NULL;
    s_params_free(&p);
    if (count && !r)
        return -1;
    PQclear(r);
    return 0;
}

static const char *const s_propose_keys[] = {"case_id",
                                             "case_no",
                                             "category",
                                             "content",
                                             "fine",
                                             "confiscation",
                                             "legal_basis",
                                             "violation_code",
                                             "circumstance",
                                             "hearing",
                                             "major_public_interest",
                                             "social_risk",
                                             "complex",
                                             "deviation_reason",
                                             NULL};
static const s_opdef_t s_propose_def = {CO_PROPOSE,       "case.proposed",
                                        s_propose_keys,   NULL,
                                        s_propose_read,   s_propose_before,
                                        s_propose_check,  16,
                                        s_propose_effect, 3,
                                        s_propose_reply,  s_propose_write};

/* ---- case.decide: through the legal-review gate --------------------------------------- */

static void
s_decide_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b, (void)err;
    evmsg_map_str(body, "decision_no", EVMSG_NONEMPTY, CASE_CODE_MAX, it->decision_no);
}

/* The proposal by an index probe (LATERAL ... LIMIT 1), whatever the statistics say. */
static const char s_decided_sql[] =
    "SELECT k.i, p.category, p.content, (p.fine * 1000000)::bigint,"
    " (p.confiscation * 1000000)::bigint, p.legal_basis, p.violation_code, p.circumstance,"
    " (SELECT true FROM intake.cases c WHERE c.agency = k.a::char(18) AND c.decision_no = k.no)"
    " FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[]) WITH ORDINALITY"
    "      AS k(case_id, version, a, no, i)"
    " LEFT JOIN LATERAL (SELECT p0.* FROM intake.case_proposal p0"
    "                    WHERE p0.case_id = k.case_id AND p0.version = k.version LIMIT 1) p ON true"
    " ORDER BY k.i";

/* The gate's verdicts (it->method holds the gate_verdict_t), the proposals to decide on
 * and whether each decision number is taken (b->aux, row it->gi). */
static int
s_decide_before(db_t *db, s_batch_t *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        k += !b->items[i].failed;
    if (k == 0)
        return 0;
    gate_check_t *gc = calloc(k, sizeof *gc);
    if (!gc)
        return -1;
    s_params_t p = {0};
    static const uint32_t oids[4] = {PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_begin(&p, oids, 4);
    k = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        const s_case_t *c = &b->cases[it->ci];
        it->gi = (int)k;
        gc[k++] = (gate_check_t){c->id, it->agency, c->proposal_version, GATE_NO_PROPOSAL};
        pgarray_int8(&p.a[0], c->id);
        pgarray_int4(&p.a[1], c->proposal_version);
        pgarray_str(&p.a[2], it->agency);
        pgarray_str(&p.a[3], it->decision_no);
    }
    int rc = -1;
    if (decision_gate_check(db, gc, k) < 0)
        goto done;
    for (size_t i = 0; i < b->n; i++)
        if (!b->items[i].failed)
            b->items[i].method = (int)gc[b->items[i].gi].verdict;
    b->aux = s_params_exec(db, &p, "case_decided", s_decided_sql, 0);
    if (!b->aux || (size_t)PQntuples(b->aux) != k)
        goto done;
    rc = 0;
done:
    s_params_free(&p);
    free(gc);
    return rc;
}

static bool
s_decide_check(s_batch_t *b, s_item_t *it, s_case_t *c)
{
    char en[RPC_TEXT_MAX], zh[RPC_TEXT_MAX];
    const char *code = decision_gate_refusal((gate_verdict_t)it->method, c->proposal_version, en,
                                             sizeof en, zh, sizeof zh);
    if (code) {
        s_fail(it, code, "", zh, en);
        return false;
    }
    /* A decision number names one decision of the agency: taken before, or earlier in
     * this batch. */
    bool taken = !PQgetisnull(b->aux, it->gi, 8);
    for (s_item_t *o = b->items; !taken && o < it; o++)
        taken = !o->failed && strcmp(o->decision_no, it->decision_no) == 0 &&
                strcmp(o->agency, it->agency) == 0;
    if (taken) {
        snprintf(en, sizeof en, "decision number %s is already used by this agency",
                 it->decision_no);
        snprintf(zh, sizeof zh, "本机关已使用决定书文号%s", it->decision_no);
        s_fail(it, "decision_no_taken", "body.decision_no", zh, en);
        return false;
    }
    return true;
}

static void
s_decide_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    const PGresult *r = b->aux;
    int row = it->gi;
    c->decided_version = c->proposal_version;
    c->set_decision = true;
    c->set_met = true; /* the statutory deadline is met by the decision */
    c->item = (int)(it - b->items);
    snprintf(c->decision_no, sizeof c->decision_no, "%s", it->decision_no);
    it->version = c->decided_version;
    s_kint(pk, "version", it->version);
    s_kcstr(pk, "decision_no", it->decision_no);
    s_kdate(pk, "decision_date", it->date);
    s_kbool(pk, "reviewed", it->method == GATE_APPROVED);
    s_kcol(pk, "category", r, row, 1);
    s_kcol(pk, "content", r, row, 2);
    s_kdec(pk, "fine", strtoll(PQgetvalue(r, row, 3), NULL, 10));
    s_kdec(pk, "confiscation", strtoll(PQgetvalue(r, row, 4), NULL, 10));
    s_kcol(pk, "legal_basis", r, row, 5);
    s_kcol(pk, "violation_code", r, row, 6);
    s_kcol(pk, "circumstance", r, row, 7);
}

static void
s_decide_reply(msgpack_packer *pk, s_batch_t *b, s_item_t *it)
{
    (void)b;
    s_kint(pk, "version", it->version);
    s_kcstr(pk, "decision_no", it->decision_no);
}

static const char *const s_decide_keys[] = {"case_id", "case_no", "decision_no", "decision_date",
                                            NULL};
static const s_opdef_t s_decide_def = {CO_DECIDE,       "case.decided",
                                       s_decide_keys,   "decision_date",
                                       s_decide_read,   s_decide_before,
                                       s_decide_check,  11,
                                       s_decide_effect, 2,
                                       s_decide_reply,  NULL};

/* ---- case.serve, case.execute, case.close, case.revoke ------------------------------- */

static void
s_serve_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b, (void)err;
    evmsg_map_enum(body, "method", EVMSG_REQUIRED, s_serve_methods, &it->method);
}

static void
s_serve_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    c->set_served = true;
    c->item = (int)(it - b->items);
    s_kdate(pk, "served_on", it->date);
    s_kcstr(pk, "method", s_serve_methods[it->method]);
}

static const char *const s_serve_keys[] = {"case_id", "case_no", "served_on", "method", NULL};
static const s_opdef_t s_serve_def = {
    CO_SERVE, "case.served", s_serve_keys, "served_on", s_serve_read, NULL, NULL, 2, s_serve_effect,
    0,        NULL,          NULL};

static void
s_execute_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b, (void)err;
    evmsg_map_enum(body, "method", EVMSG_REQUIRED, s_execute_methods, &it->method);
}

static void
s_execute_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    c->set_executed = true;
    c->item = (int)(it - b->items);
    s_kdate(pk, "executed_on", it->date);
    s_kcstr(pk, "method", s_execute_methods[it->method]);
}

static const char *const s_execute_keys[] = {"case_id", "case_no", "executed_on", "method", NULL};
static const s_opdef_t s_execute_def = {CO_EXECUTE,
                                        "case.executed",
                                        s_execute_keys,
                                        "executed_on",
                                        s_execute_read,
                                        NULL,
                                        NULL,
                                        2,
                                        s_execute_effect,
                                        0,
                                        NULL,
                                        NULL};

static void
s_close_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b, (void)err;
    s_read_str(body, "note", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_NOTE_MAX, &it->note);
}

static void
s_close_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    c->set_closed = true;
    c->item = (int)(it - b->items);
    s_kdate(pk, "closed_on", it->date);
    s_ks(pk, "note", it->note);
}

static const char *const s_close_keys[] = {"case_id", "case_no", "closed_on", "note", NULL};
static const s_opdef_t s_close_def = {
    CO_CLOSE, "case.closed", s_close_keys, "closed_on", s_close_read, NULL, NULL, 2, s_close_effect,
    0,        NULL,          NULL};

static void
s_revoke_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b, (void)err;
    evmsg_map_enum(body, "kind", EVMSG_REQUIRED, s_revoke_kinds, &it->kind);
    s_read_str(body, "reason", EVMSG_NONEMPTY, CASE_NOTE_MAX, &it->note);
}

static void
s_revoke_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    c->set_revoked = true;
    c->item = (int)(it - b->items);
    s_kcstr(pk, "kind", s_revoke_kinds[it->kind]);
    s_ks(pk, "reason", it->note);
    s_kdate(pk, "revoked_on", it->date);
    s_kcstr(pk, "decision_no", c->decision_no);
    s_kint(pk, "version", c->decided_version);
}

static const char *const s_revoke_keys[] = {"case_id", "case_no",    "kind",
                                            "reason",  "revoked_on", NULL};
static const s_opdef_t s_revoke_def = {CO_REVOKE,
                                       "case.revoked",
                                       s_revoke_keys,
                                       "revoked_on",
                                       s_revoke_read,
                                       NULL,
                                       NULL,
                                       5,
                                       s_revoke_effect,
                                       0,
                                       NULL,
                                       NULL};

/* ---- inspection.result: 双随机一公开 ------------------------------------------------- */

static void
s_result_read(s_batch_t *b, s_item_t *it, const evmsg_map_t *body, evmsg_err_t *err)
{
    (void)b;
    s_read_str(body, "subject", EVMSG_NONEMPTY, CASE_NAME_MAX, &it->subject);
    evmsg_map_enum(body, "result", EVMSG_REQUIRED, s_results, &it->result);
    s_read_str(body, "problems", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_TEXT_MAX, &it->problems);
    s_read_str(body, "handled", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CASE_NOTE_MAX, &it->handled);
    if (!err->reason[0] && it->result == RESULT_PROBLEMS && !it->problems.p) {
        snprintf(err->path, sizeof err->path, "body.problems");
        snprintf(err->reason, sizeof err->reason, "missing");
    }
}

static void
s_result_effect(s_batch_t *b, s_item_t *it, s_case_t *c, msgpack_packer *pk)
{
    c->set_met = true; /* an inspection's deadline is met by its result */
    c->item = (int)(it - b->items);
    s_kdate(pk, "result_date", it->date);
    s_ks(pk, "subject", it->subject);
    s_kcstr(pk, "result", s_results[it->result]);
    s_ks(pk, "problems", it->problems);
    s_ks(pk, "handled", it->handled);
}

static int
s_result_write(db_t *db, s_batch_t *b)
{
    static const uint32_t oids[7] = {PGARRAY_INT8, PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_TEXT,
                                     PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT};
    s_params_t p = {0};
    s_params_begin(&p, oids, 7);
    size_t count = 0;
    for (size_t i = 0; i < b->n; i++) {
        s_item_t *it = &b->items[i];
        if (it->failed)
            continue;
        count++;
        pgarray_int8(&p.a[0], b->cases[it->ci].id);
        pgarray_date(&p.a[1], it->date);
        s_arr_s(&p.a[2], it->subject);
        pgarray_str(&p.a[3], s_results[it->result]);
        s_arr_s(&p.a[4], it->problems);
        s_arr_s(&p.a[5], it->handled);
        pgarray_str(&p.a[6], rpc_req_identity(it->req));
    }
    PGresult *r = count ? s_params_exec(db, &p, "case_result_ins",
                                        "INSERT INTO intake.inspection_result (case_id,"
                                        " result_date, subject, result, problems, handled,"
                                        " recorded_by)"
                                        " SELECT * FROM unnest($1::int8[], $2::date[],"
                                        " $3::text[], $4::text[], $5::text[], $6::text[],"
                                        " $7::text[])",
                                        0)
                        : NULL;
    s_params_free(&p);
    if (count && !r)
        return -1;
    PQclear(r);
    return 0;
}

static const char *const s_result_keys[] = {"case_id", "case_no",  "result_date", "subject",
                                            "result",  "problems", "handled",     NULL};
static const s_opdef_t s_result_def = {CO_RESULT,
                                       "inspection.resulted",
                                       s_result_keys,
                                       "result_date",
                                       s_result_read,
                                       NULL,
                                       NULL,
                                       5,
                                       s_result_effect,
                                       0,
                                       NULL,
                                       s_result_write};

/* The handlers rpc calls. */
static int
s_record(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_record_def, reqs, n, arg);
}
static int
s_propose(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_propose_def, reqs, n, arg);
}
static int
s_decide(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_decide_def, reqs, n, arg);
}
static int
s_serve(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_serve_def, reqs, n, arg);
}
static int
s_execute(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_execute_def, reqs, n, arg);
}
static int
s_close(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_close_def, reqs, n, arg);
}
static int
s_revoke(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_revoke_def, reqs, n, arg);
}
static int
s_result(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    return s_run(db, &s_result_def, reqs, n, arg);
}

/* ==== case.get ========================================================================== */

#define S_D(x) "(" x " - date '1970-01-01')"

/* Each case (with its deadline) and inspection result is an index probe (LATERAL ... LIMIT 1),
 * whatever the statistics say. */
/* clang-format off */
static const char s_get_sql[] =
    "SELECT c.id, c.matter_version, c.party_kind, c.party_name, c.party_id_type, c.party_id_no,"
    " c.summary, c.on_site, " S_D("c.act_date") ", array_to_string(c.officers, E'\\x1f'),"
    " " S_D("c.opened_on") ", c.decided_version, c.decision_no, " S_D("c.decision_date") ","
    " " S_D("c.served_on") ", c.serve_method, " S_D("c.executed_on") ", c.execute_method,"
    " " S_D("c.closed_on") ", c.close_note, c.revoke_kind, c.revoke_reason,"
    " " S_D("c.revoked_on") ","
    " " S_D("c.due") ", " S_D("c.warn_on") ", " S_D("c.met_on") ", c.due_uncovered,"
    " " S_D("ir.result_date") ", ir.subject, ir.result, ir.problems, ir.handled,"
    " (SELECT count(*) FILTER (WHERE r.stage = 'start') || ',' ||"
    "         count(*) FILTER (WHERE r.stage = 'investigation') || ',' ||"
    "         count(*) FILTER (WHERE r.stage = 'review_decision') || ',' ||"
    "         count(*) FILTER (WHERE r.stage = 'service_execution')"
    "    FROM intake.case_record r WHERE r.case_id = c.id)"
    " FROM unnest($1::int8[]) AS k(id)"
    " CROSS JOIN LATERAL (SELECT c0.* FROM intake.cases c0 WHERE c0.id = k.id LIMIT 1) c"
    " LEFT JOIN LATERAL (SELECT ir0.* FROM intake.inspection_result ir0"
    "                    WHERE ir0.case_id = c.id LIMIT 1) ir ON true";
/* clang-format on */

/* Per case, the latest proposals (at most $2: versions are numbered 1, 2, ... per case)
 * and their verdicts, each an index probe (LATERAL, LIMIT) whatever the statistics say:
 * as plain joins the generic plan cached while the tables were young hashed a sequential
 * scan of case_proposal. */
static const char s_get_proposals_sql[] =
    "SELECT p.case_id, p.version, p.category, p.content, (p.fine * 1000000)::bigint,"
    " (p.confiscation * 1000000)::bigint, p.legal_basis, p.violation_code, p.circumstance,"
    " p.requires_review, array_to_string(p.review_rules, E'\\x1f'), p.deviation_reason,"
    " v.verdict, v.opinion"
    " FROM unnest($1::int8[]) AS k(id)"
    " CROSS JOIN LATERAL (SELECT c0.agency, c0.proposal_version FROM intake.cases c0"
    "                     WHERE c0.id = k.id LIMIT 1) c"
    " CROSS JOIN LATERAL (SELECT p0.* FROM intake.case_proposal p0 WHERE p0.case_id = k.id"
    "                     AND p0.version > c.proposal_version - $2::int"
    "                     ORDER BY p0.version DESC LIMIT $2::int) p"
    " LEFT JOIN LATERAL (SELECT v0.verdict, v0.opinion FROM intake.review_verdict v0"
    "                    WHERE v0.case_id = p.case_id AND v0.proposal_version = p.version"
    "                    AND v0.agency = c.agency LIMIT 1) v ON true"
    " ORDER BY p.case_id, p.version DESC";

static void
s_kdatecol(msgpack_packer *pk, const char *k, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        s_kstr(pk, k, NULL, 0);
    else
        s_kdate(pk, k, s_getdate(r, row, col));
}

static void
s_get_proposals(msgpack_packer *pk, const PGresult *pr, int64_t id)
{
    int rows = PQntuples(pr), first = -1, count = 0;
    for (int j = 0; j < rows; j++) {
        if (strtoll(PQgetvalue(pr, j, 0), NULL, 10) != id)
            continue;
        if (first < 0)
            first = j;
        count++;
    }
    msgpack_pack_array(pk, (size_t)count);
    for (int j = first; count > 0 && j < first + count; j++) {
        msgpack_pack_map(pk, 13);
        s_kint(pk, "version", atoi(PQgetvalue(pr, j, 1)));
        s_kcol(pk, "category", pr, j, 2);
        s_kcol(pk, "content", pr, j, 3);
        s_kdec(pk, "fine", strtoll(PQgetvalue(pr, j, 4), NULL, 10));
        s_kdec(pk, "confiscation", strtoll(PQgetvalue(pr, j, 5), NULL, 10));
        s_kcol(pk, "legal_basis", pr, j, 6);
        s_kcol(pk, "violation_code", pr, j, 7);
        s_kcol(pk, "circumstance", pr, j, 8);
        bool req = s_getbool(pr, j, 9);
        s_kbool(pk, "requires_review", req);
        s_key(pk, "review_rules");
        s_pack_joined(pk, PQgetvalue(pr, j, 10));
        s_kcol(pk, "deviation_reason", pr, j, 11);
        s_kcstr(pk, "review",
                !req                     ? "not_required"
                : PQgetisnull(pr, j, 12) ? "pending"
                                         : PQgetvalue(pr, j, 12));
        s_kcol(pk, "opinion", pr, j, 13);
    }
}

static void
s_get_one(msgpack_packer *pk, const s_case_t *c, const PGresult *r, int row, const PGresult *pr)
{
    msgpack_pack_map(pk, 23);
    s_kint(pk, "case_id", c->id);
    s_kcstr(pk, "case_no", c->case_no);
    s_kcstr(pk, "type", case_type_name(c->type));
    s_kcstr(pk, "state", case_state_name(c->state));
    s_kcstr(pk, "matter_code", c->matter_code);
    s_kint(pk, "matter_version", atoi(PQgetvalue(r, row, 1)));
    s_key(pk, "party");
    msgpack_pack_map(pk, 4);
    s_kcol(pk, "kind", r, row, 2);
    s_kcol(pk, "name", r, row, 3);
    s_kcol(pk, "id_type", r, row, 4);
    s_kcol(pk, "id_no", r, row, 5);
    s_kcol(pk, "summary", r, row, 6);
    s_kbool(pk, "on_site", s_getbool(r, row, 7));
    s_kdatecol(pk, "act_date", r, row, 8);
    s_key(pk, "officers");
    s_pack_joined(pk, PQgetvalue(r, row, 9));
    s_kdate(pk, "opened_on", c->opened_on);
    s_key(pk, "deadline");
    if (PQgetisnull(r, row, 23)) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_map(pk, 4);
        s_kdatecol(pk, "due", r, row, 23);
        s_kdatecol(pk, "warn_on", r, row, 24);
        s_kdatecol(pk, "met_on", r, row, 25);
        s_kbool(pk, "uncovered", s_getbool(r, row, 26));
    }
    s_kint(pk, "record_count", c->record_count);
    long st[4] = {0, 0, 0, 0};
    if (!PQgetisnull(r, row, 32))
        sscanf(PQgetvalue(r, row, 32), "%ld,%ld,%ld,%ld", &st[0], &st[1], &st[2], &st[3]);
    s_key(pk, "records_by_stage");
    msgpack_pack_map(pk, 4);
    for (int k = 0; k < 4; k++)
        s_kint(pk, s_stages[k], st[k]);
    s_kint(pk, "proposal_version", c->proposal_version);
    s_key(pk, "proposals");
    s_get_proposals(pk, pr, c->id);
    s_key(pk, "decision");
    if (PQgetisnull(r, row, 11)) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_map(pk, 3);
        s_kint(pk, "version", atoi(PQgetvalue(r, row, 11)));
        s_kcol(pk, "decision_no", r, row, 12);
        s_kdatecol(pk, "decision_date", r, row, 13);
    }
    /* served, executed, closed: {on, method|note} or nil */
    static const char *const names[3] = {"served", "executed", "closed"};
    static const char *const second[3] = {"method", "method", "note"};
    for (int k = 0; k < 3; k++) {
        s_key(pk, names[k]);
        if (PQgetisnull(r, row, 14 + 2 * k)) {
            msgpack_pack_nil(pk);
            continue;
        }
        msgpack_pack_map(pk, 2);
        s_kdatecol(pk, "on", r, row, 14 + 2 * k);
        s_kcol(pk, second[k], r, row, 15 + 2 * k);
    }
    s_key(pk, "revoked");
    if (PQgetisnull(r, row, 20)) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_map(pk, 3);
        s_kcol(pk, "kind", r, row, 20);
        s_kcol(pk, "reason", r, row, 21);
        s_kdatecol(pk, "on", r, row, 22);
    }
    s_key(pk, "inspection");
    if (PQgetisnull(r, row, 27)) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_map(pk, 5);
        s_kdatecol(pk, "result_date", r, row, 27);
        s_kcol(pk, "subject", r, row, 28);
        s_kcol(pk, "result", r, row, 29);
        s_kcol(pk, "problems", r, row, 30);
        s_kcol(pk, "handled", r, row, 31);
    }
}

static int
s_get(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    s_batch_t b;
    if (s_batch_init(&b, arg, reqs, n, CO_RECORD) < 0)
        return -1;
    static const char *const keys[] = {"case_id", "case_no", NULL};
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(it->req, &err);
        evmsg_map_only(&body, keys);
        s_read_ref(it, &body, &err);
        if (err.reason[0])
            s_fail_evmsg(it, &err);
    }
    int rc = -1;
    PGresult *r = NULL, *pr = NULL;
    if (s_load_cases(db, &b, false) < 0)
        goto done;
    if (b.ncases == 0) {
        rc = 0;
        goto done;
    }
    s_params_t p = {0};
    static const uint32_t oid1[1] = {PGARRAY_INT8};
    s_params_begin(&p, oid1, 1);
    for (size_t j = 0; j < b.ncases; j++)
        pgarray_int8(&p.a[0], b.cases[j].id);
    r = s_params_exec(db, &p, "case_get", s_get_sql, 0);
    if (r) {
        /* The same array, and the number of latest proposals shown. */
        char lim[8];
        snprintf(lim, sizeof lim, "%d", CASE_GET_PROPOSALS);
        const char *values[2] = {p.values[0], lim};
        const int lengths[2] = {p.lengths[0], 0}, formats[2] = {1, 0};
        if (db_prepare(db, "case_get_proposals", s_get_proposals_sql, 2) == 0)
            pr = db_exec_prepared(db, "case_get_proposals", 2, values, lengths, formats, 0);
    }
    s_params_free(&p);
    if (!r || !pr)
        goto done;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b.items[i];
        if (it->failed)
            continue;
        const s_case_t *c = &b.cases[it->ci];
        int row = -1;
        for (int j = 0; j < PQntuples(r) && row < 0; j++)
            if (strtoll(PQgetvalue(r, j, 0), NULL, 10) == c->id)
                row = j;
        if (row < 0) {
            s_fail(it, "not_found", it->case_id > 0 ? "body.case_id" : "body.case_no", "案件不存在",
                   "no such case");
            continue;
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_get_one(&pk, c, r, row, pr);
        rpc_ok(it->req, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    rc = 0;
done:
    PQclear(r);
    PQclear(pr);
    s_batch_free(&b);
    return rc;
}

/* ==== Registration ====================================================================== */

int
case_ops_register(rpc_server_t *rpc, intake_t *app)
{
    if (!rpc || !app || !app->calendar) {
        log_error("case_ops_register: no rpc server or calendar", "%s", "");
        return -1;
    }
    static const struct {
        const char *name;
        int flags;
        rpc_handler_fn *fn;
    } ops[] = {
        {"case.open", RPC_WRITE, s_open},           {"case.record", RPC_WRITE, s_record},
        {"case.propose", RPC_WRITE, s_propose},     {"case.decide", RPC_WRITE, s_decide},
        {"case.serve", RPC_WRITE, s_serve},         {"case.execute", RPC_WRITE, s_execute},
        {"case.close", RPC_WRITE, s_close},         {"case.revoke", RPC_WRITE, s_revoke},
        {"inspection.result", RPC_WRITE, s_result}, {"case.get", RPC_READ, s_get},
    };
    /* One case's requests keep their order; different cases' may share a handler call
     * (rpc.h, "Order"). */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (rpc_register(
                rpc, &(rpc_op_t){ops[i].name, ops[i].flags, CASE_OPS_ALLOW, ops[i].fn, app}) < 0 ||
            (ops[i].flags == RPC_WRITE && rpc_order_key(rpc, ops[i].name, "case_no") < 0))
            return -1;
    /* events.since: the common op over intake's outbox (common/events_since). */
    return events_since_register(rpc, INTAKE_SCHEMA, CASE_OPS_ALLOW);
}
