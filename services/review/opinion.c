/* opinion: see opinion.h; and the reviewers' ops review.tasks, review.get, review.opinion
 * (schemas/messages/review.md). */
#include "opinion.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "date.h"
#include "log.h"
#include "review.h"
#include "reviewers.h"
#include "util.h"

const char *const opinion_point_keys[OPINION_POINTS + 1] = {
    "subject", "facts", "basis", "discretion", "procedure", "documents", "referral", NULL};
const char *const opinion_point_names[OPINION_POINTS] = {
    "主体是否合法", "事实是否清楚", "依据是否准确",      "裁量是否合理",
    "程序是否合法", "文书是否完备", "是否涉嫌犯罪需移送"};
const char *const opinion_verdict_keys[4] = {"approve", "problems", "refer", NULL};
const char *const opinion_verdict_names[3] = {"同意", "存在问题", "移送司法机关"};

int
opinion_decode(const evmsg_map_t *body, opinion_t *op, int *missing, evmsg_err_t *err, char *why,
               size_t whylen)
{
    static const char *const keys[] = {"task_id", "reviewer", "points", "verdict", "summary", NULL};
    static const char *const pkeys[] = {"pass", "comment", NULL};
    memset(op, 0, sizeof *op);
    *missing = -1;
    evmsg_map_only(body, keys);
    evmsg_map_t points;
    evmsg_map_map(body, "points", EVMSG_REQUIRED, &points);
    evmsg_map_only(&points, opinion_point_keys);
    for (int i = 0; i < OPINION_POINTS && !err->reason[0]; i++) {
        evmsg_map_t p;
        if (evmsg_map_map(&points, opinion_point_keys[i], EVMSG_REQUIRED, &p) < 0) {
            *missing = i;
            break;
        }
        evmsg_map_only(&p, pkeys);
        evmsg_map_bool(&p, "pass", EVMSG_REQUIRED, &op->pass[i]);
        evmsg_map_str(&p, "comment", EVMSG_OPTIONAL, OPINION_COMMENT_MAX, op->comment[i]);
    }
    int v = 0;
    evmsg_map_enum(body, "verdict", EVMSG_REQUIRED, opinion_verdict_keys, &v);
    evmsg_map_str(body, "summary", EVMSG_OPTIONAL, OPINION_SUMMARY_MAX, op->summary);
    if (err->reason[0])
        return -1;
    op->verdict = (opinion_verdict_t)v;
    for (int i = 0; i < OPINION_POINTS; i++)
        if (!op->pass[i] && !op->comment[i][0]) {
            *missing = i; /* a failed point is what the department must act on: say why */
            return -3;
        }
    int failed = 0;
    for (int i = 0; i < OPINION_POINTS; i++)
        failed += !op->pass[i];
    bool refer = !op->pass[OPINION_POINTS - 1];
    if (op->verdict == OPINION_APPROVE && failed) {
        snprintf(why, whylen, "同意 (approve) needs every point passed; %d failed", failed);
        return -2;
    }
    if (op->verdict == OPINION_PROBLEMS && (!failed || refer)) {
        snprintf(why, whylen, "%s",
                 refer ? "a suspected crime (是否涉嫌犯罪需移送 failed) is refer"
                       : "存在问题 (problems) needs a failed point");
        return -2;
    }
    if (op->verdict == OPINION_REFER && !refer) {
        snprintf(why, whylen, "移送司法机关 (refer) needs point referral failed");
        return -2;
    }
    return 0;
}

/* Appends printf output to buf at *len; false once it does not fit. */
static bool
s_put(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    if (*len >= size)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len) {
        *len = size;
        return false;
    }
    *len += (size_t)n;
    return true;
}

static const char *const s_numerals[OPINION_POINTS] = {"一", "二", "三", "四", "五", "六", "七"};

int
opinion_render_text(const opinion_t *op, const opinion_head_t *h, char *buf, size_t size)
{
    size_t len = 0;
    s_put(buf, size, &len,
          "法制审核意见书\n案件编号：%s（%lld），拟作决定第 %d 版\n执法机关：%s\n审核人员：%s\n"
          "审核日期：%s\n\n审核要点：\n",
          h->case_no, h->case_id, h->version, h->agency, h->reviewer, h->date);
    for (int i = 0; i < OPINION_POINTS; i++)
        s_put(buf, size, &len, "%s、%s：%s。%s\n", s_numerals[i], opinion_point_names[i],
              i == OPINION_POINTS - 1 ? (op->pass[i] ? "否" : "是") : (op->pass[i] ? "是" : "否"),
              op->comment[i]);
    if (!s_put(buf, size, &len, "\n审核意见：%s。%s\n", opinion_verdict_names[op->verdict],
               op->summary))
        return -1;
    return (int)len;
}

/* Appends s with &<>"' escaped. */
static bool
s_put_html(char *buf, size_t size, size_t *len, const char *s)
{
    for (; *s; s++) {
        bool ok;
        switch (*s) {
        case '&':
            ok = s_put(buf, size, len, "&amp;");
            break;
        case '<':
            ok = s_put(buf, size, len, "&lt;");
            break;
        case '>':
            ok = s_put(buf, size, len, "&gt;");
            break;
        case '"':
            ok = s_put(buf, size, len, "&quot;");
            break;
        case '\'':
            ok = s_put(buf, size, len, "&#39;");
            break;
        case '\n':
            ok = s_put(buf, size, len, "<br>");
            break;
        default:
            ok = s_put(buf, size, len, "%c", *s);
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

int
opinion_render_html(const opinion_t *op, const opinion_head_t *h, char *buf, size_t size)
{
    size_t len = 0;
    char ver[16], id[24];
    snprintf(ver, sizeof ver, "%d", h->version);
    snprintf(id, sizeof id, "%lld", h->case_id);
    s_put(buf, size, &len,
          "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
          "<title>法制审核意见书</title></head><body>\n<h1>法制审核意见书</h1>\n"
          "<table>\n<tr><th>案件编号</th><td>");
    s_put_html(buf, size, &len, h->case_no);
    s_put(buf, size, &len, "（%s），拟作决定第 %s 版</td></tr>\n<tr><th>执法机关</th><td>", id,
          ver);
    s_put_html(buf, size, &len, h->agency);
    s_put(buf, size, &len, "</td></tr>\n<tr><th>审核人员</th><td>");
    s_put_html(buf, size, &len, h->reviewer);
    s_put(buf, size, &len,
          "</td></tr>\n<tr><th>审核日期</th><td>%s</td></tr>\n</table>\n"
          "<h2>审核要点</h2>\n<ol>\n",
          h->date);
    for (int i = 0; i < OPINION_POINTS; i++) {
        bool yes = i == OPINION_POINTS - 1 ? !op->pass[i] : op->pass[i];
        s_put(buf, size, &len, "<li class=\"%s\">%s：%s。", op->pass[i] ? "pass" : "fail",
              opinion_point_names[i], yes ? "是" : "否");
        s_put_html(buf, size, &len, op->comment[i]);
        s_put(buf, size, &len, "</li>\n");
    }
    s_put(buf, size, &len, "</ol>\n<h2>审核意见</h2>\n<p class=\"verdict\">%s</p>\n<p>",
          opinion_verdict_names[op->verdict]);
    s_put_html(buf, size, &len, op->summary);
    if (!s_put(buf, size, &len, "</p>\n</body></html>\n"))
        return -1;
    return (int)len;
}

/* ---- Ops --------------------------------------------------------------------------------- */

int
opinion_prepare(db_t *db)
{
    if (db_prepare(db, "rv_tasks",
                   "SELECT id, case_id, version, kind, agency, case_no, case_type,"
                   " array_to_json(rules), reviewer, pool, array_to_json(flags), due_on, overdue "
                   "FROM review.task WHERE status = 'open'"
                   " AND reviewer_agency = $1 AND ($2::text IS NULL OR reviewer = $2"
                   " OR reviewer IS NULL) ORDER BY due_on, id LIMIT 200",
                   2) < 0 ||
        db_prepare(
            db, "rv_task_get",
            "SELECT t.id, t.case_id, t.version, t.kind, t.agency, t.case_no, t.case_type,"
            " array_to_json(t.rules), t.reviewer_agency, t.reviewer, t.pool,"
            " array_to_json(t.flags), t.flag_note,"
            " t.status, t.due_on, t.overdue, t.proposal, o.verdict, o.text, o.reviewer,"
            " (SELECT array_to_json(array_agg(cert_no ORDER BY cert_no)) FROM review.case_officer c"
            "  WHERE c.case_id = t.case_id),"
            " (SELECT count(*) FILTER (WHERE stage = 'start') || ',' ||"
            "  count(*) FILTER (WHERE stage = 'investigation') || ',' ||"
            "  count(*) FILTER (WHERE stage = 'review_decision') || ',' ||"
            "  count(*) FILTER (WHERE stage = 'service_execution')"
            "  FROM review.case_record r WHERE r.case_id = t.case_id), o.html"
            " FROM review.task t LEFT JOIN review.opinion o ON o.task_id = t.id"
            " WHERE t.id = $1",
            1) < 0 ||
        db_prepare(db, "rv_task_lock",
                   "SELECT agency, case_no, case_id, version, kind, reviewer_agency, reviewer,"
                   " status FROM review.task WHERE id = $1 FOR UPDATE",
                   1) < 0 ||
        db_prepare(db, "rv_opinion_add",
                   "INSERT INTO review.opinion (task_id, identity, reviewer, verdict, points, text,"
                   " html) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                   7) < 0 ||
        db_prepare(db, "rv_escalate",
                   "INSERT INTO review.task (case_id, version, kind, agency, case_no, case_type,"
                   " proposal, rules, reviewer_agency, reviewer, pool, flags, flag_note, due_on,"
                   " warn_on) SELECT case_id, version, 'escalated', agency, case_no, case_type,"
                   " proposal, rules, $2, NULL, false, flags,"
                   " left('escalated: ' || $5 || '; ' || flag_note, 4000), $3, $4"
                   " FROM review.task WHERE id = $1"
                   " ON CONFLICT (case_id, version, kind) DO NOTHING RETURNING id",
                   5) < 0 ||
        db_prepare(db, "rv_days_of", "SELECT review_days FROM review.agency WHERE code = $1", 1) ||
        db_prepare(db, "rv_task_close",
                   "UPDATE review.task SET status = $2, closed_at = now(),"
                   " reviewer = coalesce(reviewer, $3) WHERE id = $1",
                   3) < 0)
        return -1;
    return reviewers_prepare(db);
}

/* The role part of a dept identity ("reviewer"), or "" for any other. */
static const char *
s_role(const rpc_req_t *req)
{
    const char *id = rpc_req_identity(req);
    if (strncmp(id, "dept:", 5) != 0)
        return "";
    const char *last = strrchr(id, ':');
    return last ? last + 1 : "";
}

static void
s_forbidden_task(rpc_req_t *req, int64_t id)
{
    log_warn("review task refused", "identity=%s op=%s task_id=%" PRId64, rpc_req_identity(req),
             rpc_req_op(req), id);
    rpc_fail(req, "forbidden", "body.task_id", "无权处理该审核任务",
             "the task is not yours: it is assigned to another agency's reviewers");
}

/* Reads body.task_id; 0 or -1 (refused). */
static int
s_task_id(rpc_req_t *req, const evmsg_map_t *body, evmsg_err_t *err, int64_t *id)
{
    evmsg_map_int(body, "task_id", EVMSG_REQUIRED, 1, INT64_MAX, id);
    if (err->reason[0]) {
        rpc_fail_evmsg(req, err);
        return -1;
    }
    return 0;
}

/* Packs key and the text array of row/col, selected as array_to_json(...) (NULL: []). */
static void
s_pack_text_array(msgpack_packer *pk, const char *key, PGresult *r, int row, int col)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    json_t *a = PQgetisnull(r, row, col) ? NULL : json_loads(PQgetvalue(r, row, col), 0, NULL);
    size_t n = json_is_array(a) ? json_array_size(a) : 0, i;
    msgpack_pack_array(pk, n);
    json_t *v;
    if (n)
        json_array_foreach(a, i, v)
        {
            const char *str = json_is_string(v) ? json_string_value(v) : "";
            msgpack_pack_str_with_body(pk, str, strlen(str));
        }
    json_decref(a);
}

/* review.tasks (read): the open tasks of the caller's agency's reviewers (a reviewer
 * named in body.reviewer: theirs and the unassigned ones). */
static int
s_tasks(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *req = reqs[i];
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(req, &err);
        static const char *const keys[] = {"reviewer", NULL};
        char reviewer[REVIEW_REVIEWER_MAX + 1] = "";
        evmsg_map_only(&body, keys);
        int has = evmsg_map_str(&body, "reviewer", EVMSG_OPTIONAL | EVMSG_NONEMPTY,
                                REVIEW_REVIEWER_MAX, reviewer);
        if (err.reason[0]) {
            rpc_fail_evmsg(req, &err);
            continue;
        }
        const char *p[2] = {rpc_req_agency(req), has == 1 ? reviewer : NULL};
        PGresult *r = db_exec_prepared(db, "rv_tasks", 2, p, NULL, NULL, 0);
        if (!r)
            return -1;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "tasks", 5);
        msgpack_pack_array(&pk, (size_t)PQntuples(r));
        for (int row = 0; row < PQntuples(r); row++) {
            msgpack_pack_map(&pk, 13);
            review_pack_int(&pk, "task_id", strtoll(PQgetvalue(r, row, 0), NULL, 10));
            review_pack_int(&pk, "case_id", strtoll(PQgetvalue(r, row, 1), NULL, 10));
            review_pack_int(&pk, "proposal_version", strtoll(PQgetvalue(r, row, 2), NULL, 10));
            review_pack_str(&pk, "kind", PQgetvalue(r, row, 3));
            review_pack_str(&pk, "agency", PQgetvalue(r, row, 4));
            review_pack_str(&pk, "case_no", PQgetvalue(r, row, 5));
            review_pack_str(&pk, "type", PQgetvalue(r, row, 6));
            s_pack_text_array(&pk, "rules", r, row, 7);
            review_pack_str(&pk, "reviewer", PQgetisnull(r, row, 8) ? NULL : PQgetvalue(r, row, 8));
            review_pack_bool(&pk, "pool", PQgetvalue(r, row, 9)[0] == 't');
            s_pack_text_array(&pk, "flags", r, row, 10);
            review_pack_str(&pk, "due_on", PQgetvalue(r, row, 11));
            review_pack_bool(&pk, "overdue", PQgetvalue(r, row, 12)[0] == 't');
        }
        PQclear(r);
        rpc_ok(req, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    return 0;
}

/* May the caller see task row r? Its reviewers (the reviewer agency) and the agency's
 * own system (the department whose case it is). */
static bool
s_may_see(const rpc_req_t *req, PGresult *r)
{
    const char *agency = rpc_req_agency(req), *role = s_role(req);
    if (!agency)
        return true; /* svc: operators */
    if (strcmp(role, "system") == 0)
        return strcmp(agency, PQgetvalue(r, 0, 4)) == 0;
    return strcmp(agency, PQgetvalue(r, 0, 8)) == 0;
}

/* review.get (read): one task with the proposal as received, the discretion check, the
 * officers who handled the case, and the opinion when there is one. */
static int
s_get(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *req = reqs[i];
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(req, &err);
        static const char *const keys[] = {"task_id", NULL};
        int64_t tid = 0;
        evmsg_map_only(&body, keys);
        if (s_task_id(req, &body, &err, &tid) < 0)
            continue;
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, tid);
        PGresult *r = db_exec_prepared(db, "rv_task_get", 1, (const char *[]){id}, NULL, NULL, 0);
        if (!r)
            return -1;
        if (PQntuples(r) != 1) {
            PQclear(r);
            rpc_fail(req, "not_found", "body.task_id", "审核任务不存在", "no such task");
            continue;
        }
        if (PQntuples(r) != 1 || !s_may_see(req, r)) {
            PQclear(r);
            s_forbidden_task(req, tid);
            continue;
        }
        size_t plen = 0;
        unsigned char *proposal =
            PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 16), &plen);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 20);
        review_pack_int(&pk, "task_id", tid);
        review_pack_int(&pk, "case_id", strtoll(PQgetvalue(r, 0, 1), NULL, 10));
        review_pack_int(&pk, "proposal_version", strtoll(PQgetvalue(r, 0, 2), NULL, 10));
        review_pack_str(&pk, "kind", PQgetvalue(r, 0, 3));
        review_pack_str(&pk, "agency", PQgetvalue(r, 0, 4));
        review_pack_str(&pk, "case_no", PQgetvalue(r, 0, 5));
        review_pack_str(&pk, "type", PQgetvalue(r, 0, 6));
        s_pack_text_array(&pk, "rules", r, 0, 7);
        review_pack_str(&pk, "reviewer", PQgetisnull(r, 0, 9) ? NULL : PQgetvalue(r, 0, 9));
        review_pack_bool(&pk, "pool", PQgetvalue(r, 0, 10)[0] == 't');
        msgpack_pack_str_with_body(&pk, "discretion", 10);
        msgpack_pack_map(&pk, 2);
        s_pack_text_array(&pk, "flags", r, 0, 11);
        review_pack_str(&pk, "note", PQgetvalue(r, 0, 12));
        review_pack_str(&pk, "status", PQgetvalue(r, 0, 13));
        review_pack_str(&pk, "due_on", PQgetvalue(r, 0, 14));
        review_pack_bool(&pk, "overdue", PQgetvalue(r, 0, 15)[0] == 't');
        msgpack_pack_str_with_body(&pk, "proposal", 8);
        if (proposal && plen)
            msgpack_sbuffer_write(&sb, (const char *)proposal, plen); /* a packed map */
        else
            msgpack_pack_nil(&pk);
        s_pack_text_array(&pk, "handlers", r, 0, 20);
        /* the case's whole-process records (执法全过程记录) per stage */
        static const char *const stages[4] = {"start", "investigation", "review_decision",
                                              "service_execution"};
        long long counts[4] = {0, 0, 0, 0};
        sscanf(PQgetvalue(r, 0, 21), "%lld,%lld,%lld,%lld", &counts[0], &counts[1], &counts[2],
               &counts[3]);
        msgpack_pack_str_with_body(&pk, "records_by_stage", 16);
        msgpack_pack_map(&pk, 4);
        for (int k = 0; k < 4; k++)
            review_pack_int(&pk, stages[k], counts[k]);
        review_pack_str(&pk, "verdict", PQgetisnull(r, 0, 17) ? NULL : PQgetvalue(r, 0, 17));
        review_pack_str(&pk, "opinion", PQgetisnull(r, 0, 18) ? NULL : PQgetvalue(r, 0, 18));
        review_pack_str(&pk, "opinion_html", PQgetisnull(r, 0, 22) ? NULL : PQgetvalue(r, 0, 22));
        PQfreemem(proposal);
        PQclear(r);
        rpc_ok(req, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    return 0;
}

/* Packs the seven points as stored in review.opinion.points. */
static void
s_pack_points(msgpack_sbuffer *sb, const opinion_t *op)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, OPINION_POINTS);
    for (int i = 0; i < OPINION_POINTS; i++) {
        msgpack_pack_str_with_body(&pk, opinion_point_keys[i], strlen(opinion_point_keys[i]));
        msgpack_pack_map(&pk, 2);
        review_pack_bool(&pk, "pass", op->pass[i]);
        review_pack_str(&pk, "comment", op->comment[i]);
    }
}

/* One review.opinion. Returns 0 (outcome set on req), or -1 (database). */
static int
s_opinion_one(db_t *db, rpc_req_t *req, review_out_t *out, int64_t now_ms)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err);
    int64_t tid = 0;
    char reviewer[REVIEW_REVIEWER_MAX + 1] = "", why[256] = "";
    opinion_t op;
    int missing = -1;
    evmsg_map_int(&body, "task_id", EVMSG_REQUIRED, 1, INT64_MAX, &tid);
    evmsg_map_str(&body, "reviewer", EVMSG_REQUIRED | EVMSG_NONEMPTY, REVIEW_REVIEWER_MAX,
                  reviewer);
    int rc = err.reason[0] ? -1 : opinion_decode(&body, &op, &missing, &err, why, sizeof why);
    if (rc == -1 && missing >= 0) {
        char field[64], zh[128], en[128];
        snprintf(field, sizeof field, "body.points.%s", opinion_point_keys[missing]);
        snprintf(zh, sizeof zh, "缺少审核要点：%s", opinion_point_names[missing]);
        snprintf(en, sizeof en, "point %s (%s) missing", opinion_point_keys[missing],
                 opinion_point_names[missing]);
        rpc_fail(req, "missing_field", field, zh, en);
        return 0;
    }
    if (rc == -1) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    if (rc == -3) {
        char field[64], zh[128], en[160];
        snprintf(field, sizeof field, "body.points.%s.comment", opinion_point_keys[missing]);
        snprintf(zh, sizeof zh, "审核要点不通过须说明理由：%s", opinion_point_names[missing]);
        snprintf(en, sizeof en, "point %s (%s) fails: its comment must say why",
                 opinion_point_keys[missing], opinion_point_names[missing]);
        rpc_fail(req, "missing_field", field, zh, en);
        return 0;
    }
    if (rc == -2) {
        rpc_fail(req, "bad_field", "body.verdict", "审核结论与审核要点不一致", why);
        return 0;
    }

    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tid);
    PGresult *r = db_exec_prepared(db, "rv_task_lock", 1, (const char *[]){id}, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        rpc_fail(req, "not_found", "body.task_id", "审核任务不存在", "no such task");
        return 0;
    }
    char agency[EVMSG_AGENCY_LEN + 1], case_no[65], kind[16], rev_agency[65], assigned[65],
        status[16];
    snprintf(agency, sizeof agency, "%s", PQgetvalue(r, 0, 0));
    snprintf(case_no, sizeof case_no, "%s", PQgetvalue(r, 0, 1));
    int64_t case_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    int version = atoi(PQgetvalue(r, 0, 3));
    snprintf(kind, sizeof kind, "%s", PQgetvalue(r, 0, 4));
    snprintf(rev_agency, sizeof rev_agency, "%s", PQgetvalue(r, 0, 5));
    snprintf(assigned, sizeof assigned, "%s", PQgetisnull(r, 0, 6) ? "" : PQgetvalue(r, 0, 6));
    snprintf(status, sizeof status, "%s", PQgetvalue(r, 0, 7));
    PQclear(r);

    /* The escalated task is the legal office's (its opinion stands); the others belong
     * to the reviewers of the agency the task is assigned to. */
    const char *role = s_role(req), *caller = rpc_req_agency(req);
    bool escalated = strcmp(kind, "escalated") == 0;
    if (!caller || strcmp(caller, rev_agency) != 0 ||
        strcmp(role, escalated ? "legal_office" : "reviewer") != 0) {
        s_forbidden_task(req, tid);
        return 0;
    }
    if (strcmp(status, "open") != 0) {
        char zh[128], en[128];
        snprintf(zh, sizeof zh, "该审核任务已结束（%s），不能再次出具意见", status);
        snprintf(en, sizeof en, "the task is closed (%s): its opinion was given", status);
        rpc_fail(req, "task_closed", "body.task_id", zh, en);
        return 0;
    }
    if (!escalated) {
        if (assigned[0] && strcmp(assigned, reviewer) != 0) {
            rpc_fail(req, "forbidden", "body.reviewer", "该审核任务已分配给其他审核人员",
                     "the task is assigned to another reviewer");
            return 0;
        }
        int is = assigned[0] ? 1 : reviewers_is_reviewer(db, caller, reviewer);
        int handled = is == 1 ? reviewers_handled(db, case_id, reviewer) : 0;
        if (is < 0 || handled < 0)
            return -1;
        if (!is || handled) {
            rpc_fail(req, "forbidden", "body.reviewer",
                     handled ? "承办人员不得审核本案" : "不是本机关的法制审核人员",
                     handled ? "an officer who handled the case may not review it"
                             : "not a reviewer of this agency");
            return 0;
        }
    }

    /* The document, rendered and kept. */
    char date[11], text[OPINION_TEXT_MAX + 1], *html = malloc(OPINION_HTML_MAX);
    if (!html)
        return -1;
    date_format(date_from_unix_cst(now_ms / 1000), date);
    opinion_head_t h = {case_no, agency, reviewer, date, case_id, version};
    if (opinion_render_text(&op, &h, text, sizeof text) < 0 ||
        opinion_render_html(&op, &h, html, OPINION_HTML_MAX) < 0) {
        free(html);
        rpc_fail(req, "too_large", "body", "审核意见过长", "the opinion does not fit");
        return 0;
    }
    static const char *const statuses[] = {"approved", "returned", "referred"};
    static const char *const events[] = {"review.approved", "review.returned", "review.referred"};
    msgpack_sbuffer pts;
    msgpack_sbuffer_init(&pts);
    s_pack_points(&pts, &op);
    const char *ov[7] = {
        id,  rpc_req_identity(req), reviewer, opinion_verdict_keys[op.verdict], pts.data, text,
        html};
    int ol[7] = {0, 0, 0, 0, (int)pts.size, 0, 0}, of[7] = {0, 0, 0, 0, 1, 0, 0};
    r = db_exec_prepared(db, "rv_opinion_add", 7, ov, ol, of, 0);
    msgpack_sbuffer_destroy(&pts);
    free(html);
    if (!r)
        return -1;
    PQclear(r);
    const char *cv[3] = {id, statuses[op.verdict], reviewer};
    if (!(r = db_exec_prepared(db, "rv_task_close", 3, cv, NULL, NULL, 0)))
        return -1;
    PQclear(r);

    /* review.approved / review.returned exactly as review.md's contract (4 keys). */
    msgpack_packer pk;
    bool refer = op.verdict == OPINION_REFER;
    if (!review_out_add(out, &pk, events[op.verdict], agency, refer ? 5 : 4))
        return -1;
    review_pack_int(&pk, "case_id", case_id);
    review_pack_int(&pk, "proposal_version", version);
    review_pack_str(&pk, "opinion", text);
    review_pack_str(&pk, "reviewer", reviewer);
    if (refer)
        review_pack_int(&pk, "task_id", tid);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    review_pack_int(&pk, "task_id", tid);
    review_pack_str(&pk, "status", statuses[op.verdict]);
    review_pack_str(&pk, "verdict", opinion_verdict_keys[op.verdict]);
    review_pack_str(&pk, "opinion", text);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* review.opinion (write). */
static int
s_opinion(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    review_out_t *out = review_out_new();
    if (!out)
        return -1;
    int64_t now = util_unix_ms();
    for (size_t i = 0; i < n; i++) {
        if ((out->n >= REVIEW_OUT_MAX - 1 && review_out_flush(out, db) < 0) ||
            s_opinion_one(db, reqs[i], out, now) < 0) {
            review_out_destroy(&out);
            return -1;
        }
    }
    int rc = review_out_flush(out, db);
    review_out_destroy(&out);
    return rc;
}

/* One review.escalate. Returns 0 (outcome set on req), or -1 (database). */
static int
s_escalate_one(db_t *db, const review_t *app, rpc_req_t *req, review_out_t *out, int64_t now_ms)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err);
    static const char *const keys[] = {"task_id", "reason", NULL};
    int64_t tid = 0;
    char reason[2001];
    evmsg_map_only(&body, keys);
    evmsg_map_int(&body, "task_id", EVMSG_REQUIRED, 1, INT64_MAX, &tid);
    evmsg_map_str(&body, "reason", EVMSG_REQUIRED | EVMSG_NONEMPTY, 2000, reason);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    if (!app || !app->pool_agency) {
        rpc_fail(req, "no_legal_office", "", "未配置市司法局（法制审核协调机构）",
                 "no legal office is configured (SX_REVIEW_POOL_AGENCY)");
        return 0;
    }
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tid);
    PGresult *r = db_exec_prepared(db, "rv_task_lock", 1, (const char *[]){id}, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        rpc_fail(req, "not_found", "body.task_id", "审核任务不存在", "no such task");
        return 0;
    }
    bool mine = strcmp(PQgetvalue(r, 0, 0), rpc_req_agency(req)) == 0;
    bool returned =
        strcmp(PQgetvalue(r, 0, 7), "returned") == 0 && strcmp(PQgetvalue(r, 0, 4), "review") == 0;
    int64_t case_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    int version = atoi(PQgetvalue(r, 0, 3));
    char agency[EVMSG_AGENCY_LEN + 1];
    snprintf(agency, sizeof agency, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!mine) {
        s_forbidden_task(req, tid);
        return 0;
    }
    if (!returned) {
        rpc_fail(req, "wrong_state", "body.task_id", "只有被退回的审核任务可以提请市司法局协调",
                 "only a returned review task can be escalated");
        return 0;
    }
    /* The legal office reviews it within its own 审核时限 (review.days.set on its own
     * code; REVIEW_DAYS_DEFAULT until it sets one), counted from today. */
    int days = REVIEW_DAYS_DEFAULT;
    const char *pool[1] = {app->pool_agency};
    if (!(r = db_exec_prepared(db, "rv_days_of", 1, pool, NULL, NULL, 0)))
        return -1;
    if (PQntuples(r) == 1)
        days = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    date_t today = date_from_unix_cst(now_ms / 1000), due = today, warn = today;
    bool unc = false;
    if (app->calendar) {
        workday_add(app->calendar, today, days, &due, &unc);
        workday_add(app->calendar, today, days - 1, &warn, &unc);
    }
    char dd[11], wd[11];
    date_format(due, dd);
    date_format(warn, wd);
    const char *p[5] = {id, app->pool_agency, dd, wd, reason};
    if (!(r = db_exec_prepared(db, "rv_escalate", 5, p, NULL, NULL, 0)))
        return -1;
    int64_t eid = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (!eid) {
        rpc_fail(req, "already_escalated", "body.task_id", "已提请市司法局协调",
                 "this proposal was escalated before");
        return 0;
    }
    msgpack_packer pk;
    if (!review_out_add(out, &pk, "review.escalated", agency, 5))
        return -1;
    review_pack_int(&pk, "task_id", eid);
    review_pack_int(&pk, "returned_task_id", tid);
    review_pack_int(&pk, "case_id", case_id);
    review_pack_int(&pk, "proposal_version", version);
    review_pack_str(&pk, "reason", reason);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    review_pack_int(&pk, "task_id", eid);
    review_pack_str(&pk, "status", "open");
    review_pack_str(&pk, "due_on", dd);
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* review.escalate (write): the department disagrees with a returned opinion and asks
 * the legal office (司法局, item 15's coordination), whose opinion stands. */
static int
s_escalate(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    const review_t *app = arg;
    review_out_t *out = review_out_new();
    if (!out)
        return -1;
    int64_t now = util_unix_ms();
    for (size_t i = 0; i < n; i++) {
        if ((out->n >= REVIEW_OUT_MAX - 1 && review_out_flush(out, db) < 0) ||
            s_escalate_one(db, app, reqs[i], out, now) < 0) {
            review_out_destroy(&out);
            return -1;
        }
    }
    int rc = review_out_flush(out, db);
    review_out_destroy(&out);
    return rc;
}

int
opinion_register(rpc_server_t *rpc, review_t *app)
{
    const rpc_op_t ops[] = {
        {"review.tasks", RPC_READ, "dept:*:reviewer dept:*:legal_office", s_tasks, app},
        {"review.get", RPC_READ, "dept:*:reviewer dept:*:legal_office dept:*:system svc:", s_get,
         app},
        {"review.opinion", RPC_WRITE, "dept:*:reviewer dept:*:legal_office", s_opinion, app},
        {"review.escalate", RPC_WRITE, "dept:*:system", s_escalate, app},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (rpc_register(rpc, &ops[i]) < 0)
            return -1;
    return 0;
}
