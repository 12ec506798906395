/* Statistics (统计年报) against real PostgreSQL and Redis: a half-year of one agency's case,
 * review and recording events, fed through the real handlers, gives exactly the figures
 * the issue names on /api/v1/statistics and on the Chinese HTML page with its SVG charts;
 * the same events delivered again count once; the report of a period is generated once,
 * stored and announced to the legal office, weak agencies first; the period-end timers. */
#include <time.h>

#include "pubfx.h"

#define LEGAL "11620200013926135M"

static void
s_opened(pubfx_t *fx, const char *agency, int id, const char *type, const char *party,
         const char *opened_on)
{
    char topic[128], json[2048];
    snprintf(topic, sizeof topic, "case.opened.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":%s,\"summary\":\"销售过期食品\","
             "\"opened_on\":\"%s\"}",
             id, id, type, party, opened_on);
    pubfx_event(fx, topic, json);
}

static void
s_decided(pubfx_t *fx, const char *agency, int id, const char *type, const char *day,
          const char *fine, const char *confiscation, const char *circumstance)
{
    char topic[128], json[2048];
    snprintf(topic, sizeof topic, "case.decided.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2026〕%d号\","
             "\"decision_date\":\"%s\",\"reviewed\":false,\"category\":\"罚款\","
             "\"content\":\"罚款\",\"fine\":\"%s\",\"confiscation\":\"%s\","
             "\"legal_basis\":\"《食品安全法》第一百二十四条\",\"violation_code\":null,"
             "\"circumstance\":%s%s%s}",
             id, id, type, id, day, fine, confiscation, circumstance[0] ? "\"" : "",
             circumstance[0] ? circumstance : "null", circumstance[0] ? "\"" : "");
    pubfx_event(fx, topic, json);
}

static void
s_proposed(pubfx_t *fx, int id, int version, bool requires)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"M1\","
             "\"state\":\"proposed\",\"version\":%d,\"requires_review\":%s}",
             id, id, version, requires ? "true" : "false");
    pubfx_event(fx, "case.proposed." AGENCY, json);
}

static void
s_review(pubfx_t *fx, const char *outcome, int id, int version)
{
    char topic[128], json[512];
    snprintf(topic, sizeof topic, "review.%s.%s", outcome, AGENCY);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"proposal_version\":%d,\"opinion\":\"\",\"reviewer\":\"甘R001\"}",
             id, version);
    pubfx_event(fx, topic, json);
}

static void
s_gap(pubfx_t *fx, const char *event, int id, const char *stage, int64_t at)
{
    char topic[128], json[512];
    snprintf(topic, sizeof topic, "record.%s.%s", event, AGENCY);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"matter_code\":\"M1\",\"stage\":\"%s\","
             "\"rule\":\"av_matter\",\"at\":%lld%s}",
             id, id, stage, (long long)at, strcmp(event, "gap_closed") == 0 ? ",\"n\":7" : "");
    pubfx_event(fx, topic, json);
}

/* ---- HTTP ----------------------------------------------------------------------------- */

static json_int_t
s_num(const json_t *o, const char *section, const char *field)
{
    const json_t *s = section ? json_object_get(o, section) : o;
    const json_t *v = json_object_get(s, field);
    if (!json_is_integer(v))
        fail_msg("%s.%s: not an integer", section ? section : "", field);
    return json_integer_value(v);
}

/* ---- Tests ---------------------------------------------------------------------------- */

#define H1 "/api/v1/statistics?agency=" AGENCY "&year=2026&half=1"

/* The half-year fed in; test_half_year checks it, later tests reuse it. */
static void
s_feed_half_year(pubfx_t *fx)
{
    pubfx_event(fx, "registry.agency." AGENCY,
                "{\"action\":\"put\",\"key\":\"" AGENCY "\",\"version\":1,\"entry\":{"
                "\"agency\":\"" AGENCY "\",\"version\":1,\"name\":\"嘉峪关市市场监督管理局\","
                "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"李四\","
                "\"head_title\":\"局长\"}}");
    /* Another agency whose name would break the page if it were not escaped. */
    pubfx_event(fx, "registry.agency." AGENCY_B,
                "{\"action\":\"put\",\"key\":\"" AGENCY_B "\",\"version\":1,\"entry\":{"
                "\"agency\":\"" AGENCY_B
                "\",\"version\":1,\"name\":\"<script>alert(1)</script>局\","
                "\"level\":\"city\",\"domain\":\"交通\",\"head_name\":\"王五\","
                "\"head_title\":\"局长\"}}");
    /* 1: a penalty published on time; 2: a penalty published late; 3: a licence never
     * published (overdue); 4: a coercion rejected; 5: a 轻微 penalty (exempt); 6: a
     * penalty published, then revoked (withdrawn); 7: an inspection opened, undecided;
     * 8: opened after the half-year. */
    s_opened(fx, AGENCY, 1, "penalty", PUBFX_ORG, "2026-02-02");
    s_decided(fx, AGENCY, 1, "penalty", "2026-02-10", "0.2", "0", "general");
    s_opened(fx, AGENCY, 2, "penalty", PUBFX_PERSON, "2026-02-20");
    s_decided(fx, AGENCY, 2, "penalty", "2026-03-02", "1.5", "0.3", "serious");
    s_opened(fx, AGENCY, 3, "licence", PUBFX_ORG, "2026-03-20");
    s_decided(fx, AGENCY, 3, "licence", "2026-04-01", "0", "0", "");
    s_opened(fx, AGENCY, 4, "coercion", PUBFX_ORG, "2026-04-10");
    s_decided(fx, AGENCY, 4, "coercion", "2026-05-05", "0", "0", "");
    s_opened(fx, AGENCY, 5, "penalty", PUBFX_PERSON, "2026-04-20");
    s_decided(fx, AGENCY, 5, "penalty", "2026-05-06", "0.05", "0", "minor");
    s_opened(fx, AGENCY, 6, "penalty", PUBFX_ORG, "2026-05-10");
    s_decided(fx, AGENCY, 6, "penalty", "2026-06-01", "2", "0", "general");
    s_opened(fx, AGENCY, 7, "inspection", PUBFX_ORG, "2026-06-25");
    s_opened(fx, AGENCY, 8, "penalty", PUBFX_ORG, "2026-07-02");
    s_opened(fx, AGENCY_B, 1, "penalty", PUBFX_ORG, "2026-02-02");
    s_decided(fx, AGENCY_B, 1, "penalty", "2026-02-03", "9", "0", "general");

    pubfx_publish(fx, AGENCY, 1);
    pubfx_publish(fx, AGENCY, 2);
    pubfx_publish(fx, AGENCY, 6);
    /* Time cannot be rewound for the publisher: the on-time one was approved the day after
     * its decision, as if the approval had come then. */
    pubfx_sql(fx, "UPDATE publication.record SET published_at = '2026-02-11 10:00+08' "
                  "WHERE agency = '" AGENCY "' AND case_id = 1");
    char id[24], st[16];
    assert_int_equal(workflow_fire(fx->db, WORKFLOW_TIMER_DUE, pubfx_record(fx, AGENCY, 3, id)), 0);
    assert_int_equal(workflow_reject(fx->db, pubfx_record(fx, AGENCY, 4, id), AGENCY,
                                     "dept:" AGENCY ":publisher", "当事人信息未脱敏", st),
                     0);
    pubfx_event(fx, "case.revoked." AGENCY,
                "{\"case_id\":6,\"case_no\":\"C-6\",\"type\":\"penalty\",\"matter_code\":\"M1\","
                "\"state\":\"revoked\",\"kind\":\"change\",\"reason\":\"复议变更\","
                "\"revoked_on\":\"2026-06-20\",\"decision_no\":\"嘉罚〔2026〕6号\",\"version\":1}");
    pubfx_event(fx, "case.deadline.overdue." AGENCY,
                "{\"case_id\":3,\"case_no\":\"C-3\",\"type\":\"licence\",\"matter_code\":\"M1\","
                "\"deadline\":\"2026-03-31\"}");

    /* Reviews: case 1 v1 not required; case 2 v1 returned, v2 approved; case 6 v1 went
     * overdue, was escalated, then referred. */
    s_proposed(fx, 1, 1, false);
    s_review(fx, "not_required", 1, 1);
    s_proposed(fx, 2, 1, true);
    s_review(fx, "returned", 2, 1);
    s_proposed(fx, 2, 2, true);
    s_review(fx, "approved", 2, 2);
    s_review(fx, "due_soon", 2, 2); /* not counted */
    s_proposed(fx, 6, 1, false);
    s_review(fx, "overdue", 6, 1);
    s_review(fx, "escalated", 6, 1);
    s_review(fx, "referred", 6, 1);

    /* AV gaps: case 1's closed within the half-year; case 2's still open at its end;
     * case 3's closed only in July (open at the end of June); case 7's found in July. */
    s_gap(fx, "gap", 1, "investigation", 1770350400000LL);        /* 2026-02-06 */
    s_gap(fx, "gap_closed", 1, "investigation", 1772337600000LL); /* 2026-03-01 */
    s_gap(fx, "gap", 2, "onsite", 1772510400000LL);               /* 2026-03-03 */
    s_gap(fx, "gap", 3, "onsite", 1775016000000LL);               /* 2026-04-01 */
    s_gap(fx, "gap_closed", 3, "onsite", 1783310400000LL);        /* 2026-07-06 */
    s_gap(fx, "gap", 7, "onsite", 1783310400000LL);               /* 2026-07-06 */
}

static void
test_half_year(void **state)
{
    pubfx_t *fx = *state;
    s_feed_half_year(fx);
    json_t *o = pubfx_get_json(fx, H1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "agency"), "name")),
                        "嘉峪关市市场监督管理局");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "period"), "from")),
                        "2026-01-01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "period"), "to")),
                        "2026-06-30");
    /* Cases opened by type (case 8 opened in July is not counted). */
    assert_int_equal(s_num(o, "cases", "opened"), 7);
    const json_t *opened = json_object_get(json_object_get(o, "cases"), "by_type");
    assert_int_equal(s_num(opened, NULL, "penalty"), 4);
    assert_int_equal(s_num(opened, NULL, "licence"), 1);
    assert_int_equal(s_num(opened, NULL, "coercion"), 1);
    assert_int_equal(s_num(opened, NULL, "inspection"), 1);
    assert_int_equal(s_num(opened, NULL, "levy"), 0);
    /* Decisions by type, fines and confiscations (万元). */
    const json_t *pen = json_object_get(json_object_get(o, "by_type"), "penalty");
    assert_int_equal(s_num(pen, NULL, "decisions"), 4);
    assert_string_equal(json_string_value(json_object_get(pen, "fines")), "3.75");
    assert_string_equal(json_string_value(json_object_get(o, "fines")), "3.75");
    assert_string_equal(json_string_value(json_object_get(o, "confiscations")), "0.3");
    /* Publication. */
    assert_int_equal(s_num(o, "publication", "decisions"), 6);
    assert_int_equal(s_num(o, "publication", "published"), 3);
    assert_int_equal(s_num(o, "publication", "on_time"), 1);
    assert_int_equal(s_num(o, "publication", "late"), 2);
    assert_int_equal(s_num(o, "publication", "overdue"), 1);
    assert_int_equal(s_num(o, "publication", "pending"), 1);
    assert_int_equal(s_num(o, "publication", "rejected"), 1);
    assert_int_equal(s_num(o, "publication", "exempt"), 1);
    assert_int_equal(s_num(o, "publication", "withdrawn"), 1);
    /* Reviews. */
    assert_int_equal(s_num(o, "reviews", "required"), 3);
    assert_int_equal(s_num(o, "reviews", "not_required"), 1);
    assert_int_equal(s_num(o, "reviews", "approved"), 1);
    assert_int_equal(s_num(o, "reviews", "returned"), 1);
    assert_int_equal(s_num(o, "reviews", "referred"), 1);
    assert_int_equal(s_num(o, "reviews", "escalated"), 1);
    assert_int_equal(s_num(o, "reviews", "overdue"), 1);
    /* AV gaps: 3 found in the half-year, 1 closed in it, 2 open at its end. */
    assert_int_equal(s_num(o, "av_gaps", "opened"), 3);
    assert_int_equal(s_num(o, "av_gaps", "closed"), 1);
    assert_int_equal(s_num(o, "av_gaps", "open_at_end"), 2);
    /* Withdrawals, deadlines. */
    assert_int_equal(s_num(o, "withdrawals", "total"), 1);
    assert_int_equal(s_num(o, "withdrawals", "change"), 1);
    assert_int_equal(s_num(o, NULL, "deadlines_missed"), 1);
    /* The weak links, largest first: 3 AV gaps, then 2 late publications and 2 gaps still
     * open, then the ones. */
    const json_t *weak = json_object_get(o, "weak_links");
    assert_int_equal(json_array_size(weak), 9);
    static const char *const order[] = {"av_gaps", "publication_late", "av_gaps_open"};
    static const int counts[] = {3, 2, 2, 1};
    for (int i = 0; i < 4; i++) {
        if (i < 3)
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(weak, (size_t)i), "item")),
                order[i]);
        assert_int_equal(s_num(json_array_get(weak, (size_t)i), NULL, "count"), counts[i]);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(weak, 1), "zh")),
                        "超期公示");
    json_decref(o);

    /* The other agency's figures are its own. */
    o = pubfx_get_json(fx, "/api/v1/statistics?agency=" AGENCY_B "&year=2026&half=1");
    assert_int_equal(s_num(o, "publication", "decisions"), 1);
    assert_string_equal(json_string_value(json_object_get(o, "fines")), "9");
    assert_int_equal(s_num(o, "reviews", "approved"), 0);
    json_decref(o);

    /* The second half-year has not ended: the public API refuses it; the figures so far
     * (what the legal office's rpc reads) hold what happened in July only. */
    pubfx_resp_t *r = malloc(sizeof *r);
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2026&half=2", NULL, r);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "not ended"));
    free(r);
    o = stats_compute(fx->db, AGENCY, "2026-07-01", "2026-12-31");
    assert_non_null(o);
    assert_int_equal(s_num(o, "cases", "opened"), 1);
    assert_int_equal(s_num(o, "av_gaps", "opened"), 1);
    assert_int_equal(s_num(o, "av_gaps", "closed"), 1);
    assert_int_equal(s_num(o, "publication", "decisions"), 0);
    json_decref(o);
}

static void
test_redelivery_counts_once(void **state)
{
    pubfx_t *fx = *state;
    pubfx_resp_t *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    pubfx_get(fx, H1, NULL, before);
    assert_int_equal(before->status, 200);
    /* Every event again, as after a crash or a cursor reset. */
    int n = fx->nfed;
    for (int i = 0; i < n; i++)
        pubfx_deliver(fx, fx->fed[i].topic, fx->fed[i].json, fx->fed[i].at);
    pubfx_get(fx, H1, NULL, after);
    assert_int_equal(after->status, 200);
    assert_string_equal(after->body, before->body);
    /* ... even when a replayed event arrives on another day (the first day stays). */
    pubfx_deliver(fx, "review.approved." AGENCY,
                  "{\"case_id\":2,\"proposal_version\":2,\"opinion\":\"\",\"reviewer\":\"甘R001\"}",
                  1783310400000LL);
    pubfx_get(fx, H1, NULL, after);
    assert_string_equal(after->body, before->body);
    free(before);
    free(after);
}

static void
test_html_page(void **state)
{
    pubfx_t *fx = *state;
    pubfx_resp_t *r = malloc(sizeof *r), *r2 = malloc(sizeof *r2);
    pubfx_get(fx, "/statistics?agency=" AGENCY "&year=2026&half=1", NULL, r);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->type, "text/html; charset=utf-8");
    assert_non_null(strstr(r->body, "<html lang=\"zh-CN\">"));
    assert_non_null(strstr(r->body, "嘉峪关市市场监督管理局 行政执法统计年报"));
    assert_non_null(strstr(r->body, "2026年上半年"));
    /* The weak links stand at the top, before the cases. */
    char *weak = strstr(r->body, "薄弱环节"), *cases = strstr(r->body, "案件情况");
    assert_non_null(weak);
    assert_non_null(cases);
    assert_true(weak < cases);
    assert_non_null(strstr(r->body, "超期公示"));
    /* Server-rendered SVG charts, no script. */
    assert_non_null(strstr(r->body, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_true(strstr(r->body, "<rect") != NULL);
    assert_null(strstr(r->body, "<script"));
    assert_non_null(strstr(r->body, "法制审核"));
    assert_non_null(strstr(r->body, "音像记录"));
    /* ETag and 304. */
    assert_true(r->etag[0] == '"');
    pubfx_get(fx, "/statistics?agency=" AGENCY "&year=2026&half=1", r->etag, r2);
    assert_int_equal(r2->status, 304);

    /* A hostile agency name is shown as text. */
    pubfx_get(fx, "/statistics?agency=" AGENCY_B "&year=2026&half=1", NULL, r);
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->body, "<script"));
    assert_non_null(strstr(r->body, "&lt;script&gt;alert(1)&lt;/script&gt;局"));

    /* Bad parameters: 400 naming them, as HTML here and as JSON on the API. */
    pubfx_get(fx, "/statistics?agency=" AGENCY "&year=2026&half=3", NULL, r);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "半年度（half）"));
    pubfx_get(fx, "/statistics?agency=%3Cscript%3E&year=2026", NULL, r);
    assert_int_equal(r->status, 400);
    assert_null(strstr(r->body, "<script"));
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2099", NULL, r);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "\"parameter\":\"year\""));
    pubfx_get(fx, "/api/v1/statistics?year=2026", NULL, r);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "\"parameter\":\"agency\""));
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2026&x=1", NULL, r);
    assert_int_equal(r->status, 400);

    /* /statistics alone: every agency with its closed periods (today is after June). */
    pubfx_get(fx, "/statistics", NULL, r);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "嘉峪关市市场监督管理局"));
    assert_non_null(strstr(r->body, "&lt;script&gt;"));
    assert_null(strstr(r->body, "<script"));
    char link[160];
    int y, m, d;
    date_to_ymd(date_from_unix_cst(time(NULL)), &y, &m, &d);
    snprintf(link, sizeof link, "/statistics?agency=%s&amp;year=%d&amp;half=2", AGENCY, y - 1);
    assert_non_null(strstr(r->body, link));
    free(r);
    free(r2);
}

static void
test_generation(void **state)
{
    pubfx_t *fx = *state;
    assert_int_equal(stats_generate(fx->db, "2026H1", LEGAL), 0);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_report "
                                     "WHERE period = '2026H1'"),
                     2);
    assert_int_equal(pubfx_count(fx, "SELECT agencies FROM publication.stat_run "
                                     "WHERE period = '2026H1'"),
                     2);
    /* The stored report is the figures the API shows; due Jul 10. */
    PGresult *r = db_query(fx->db,
                           "SELECT (body->'publication'->>'late'), due_on::text, "
                           "(body->'av_gaps'->>'open_at_end') FROM publication.stat_report "
                           "WHERE agency = '" AGENCY "' AND period = '2026H1'",
                           0, NULL);
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    assert_string_equal(PQgetvalue(r, 0, 1), "2026-07-10");
    assert_string_equal(PQgetvalue(r, 0, 2), "2");
    PQclear(r);
    /* Announced: one event per agency, and the city's report to the legal office with the
     * weakest agency first. */
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                     "'publication.statistics." AGENCY "'"),
                     1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                     "'publication.statistics." AGENCY_B "'"),
                     1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox WHERE topic = "
                                     "'publication.report." LEGAL "'"),
                     1);
    /* Once: a second firing (another instance, a redelivered timer) changes nothing. */
    assert_int_equal(stats_generate(fx->db, "2026H1", LEGAL), 0);
    assert_int_equal(pubfx_count(fx,
                                 "SELECT count(*) FROM publication.outbox WHERE topic LIKE "
                                 "'publication.statistics.%' OR topic LIKE 'publication.report.%'"),
                     3);
    /* A malformed key is ignored. */
    assert_int_equal(stats_generate(fx->db, "2026H3", LEGAL), 0);
    assert_int_equal(stats_generate(fx->db, "x", LEGAL), 0);
}

/* The data of the latest outbox event on topic, as JSON text (the caller frees it). */
static char *
s_outbox_json(pubfx_t *fx, const char *topic)
{
    PGresult *r = db_query(fx->db,
                           "SELECT encode(data, 'hex') FROM publication.outbox "
                           "WHERE topic = $1 ORDER BY id DESC LIMIT 1",
                           1, (const char *[]){topic});
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    const char *hex = PQgetvalue(r, 0, 0);
    size_t len = strlen(hex) / 2;
    unsigned char *bytes = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        bytes[i] = (unsigned char)v;
    }
    PQclear(r);
    jsonmp_err_t err = {0};
    char *text = jsonmp_to_json(bytes, len, "data", NULL, &err);
    free(bytes);
    if (!text)
        fail_msg("%s: %s", topic, err.reason);
    return text;
}

static void
test_city_report_order(void **state)
{
    pubfx_t *fx = *state;
    /* The city event's data (msgpack in the outbox), decoded as the legal office would. */
    char *text = s_outbox_json(fx, "publication.report." LEGAL);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "period")), "2026H1");
    assert_string_equal(json_string_value(json_object_get(o, "due_on")), "2026-07-10");
    assert_int_equal(json_integer_value(json_object_get(o, "total")), 2);
    const json_t *a = json_object_get(o, "agencies");
    assert_int_equal(json_array_size(a), 2);
    /* AGENCY: 1 overdue + 2 late + 2 gaps open + 1 review overdue + 1 deadline = 7. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "agency")), AGENCY);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "weak_score")), 7);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "agency")),
                        AGENCY_B);
    json_decref(o);
}

static void
test_period_timers(void **state)
{
    pubfx_t *fx = *state;
    (void)fx;
    char err[256];
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "pubstatstest", err, sizeof err);
    assert_non_null(t);
    /* 2026-11-27: the year ends next (Jan 1 2027 00:00 China time), then 2027H1; 2026H1
     * ended too long ago to be made up, and was generated anyway. */
    assert_int_equal(stats_arm(fx->db, t, date_from_ymd(2026, 11, 27)), 0);
    timer_fired_t f[8];
    assert_int_equal(timer_claim_due(t, timer_now_ms(), f, 8), 0);
    int64_t jan1 = workflow_day_ms(date_from_ymd(2027, 1, 1));
    assert_int_equal(timer_claim_due(t, jan1 - 1, f, 8), 0);
    int n = timer_claim_due(t, jan1, f, 8);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].kind, STATS_TIMER);
    assert_string_equal(f[0].key, "2026");
    assert_int_equal(timer_done(t, f[0].kind, f[0].key), 0);
    n = timer_claim_due(t, workflow_day_ms(date_from_ymd(2027, 7, 1)), f, 8);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].key, "2027H1");
    assert_int_equal(timer_done(t, f[0].kind, f[0].key), 0);

    /* 2025-07-20, with 2025H1 never generated (the service was down on Jul 1): made up at
     * once; 2024 ended more than STATS_LATE_GRACE days before. */
    assert_int_equal(stats_arm(fx->db, t, date_from_ymd(2025, 7, 20)), 0);
    n = timer_claim_due(t, workflow_day_ms(date_from_ymd(2025, 7, 20)), f, 8);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].key, "2025H1");
    assert_int_equal(timer_done(t, f[0].kind, f[0].key), 0);
    /* Jan 20: last year's report is made up. */
    assert_int_equal(stats_arm(fx->db, t, date_from_ymd(2026, 1, 20)), 0);
    n = timer_claim_due(t, workflow_day_ms(date_from_ymd(2026, 1, 20)), f, 8);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].key, "2025");
    assert_int_equal(timer_done(t, f[0].kind, f[0].key), 0);
    /* 2026H1 was generated (test_generation): on Jul 2 it is not armed again. */
    assert_int_equal(stats_arm(fx->db, t, date_from_ymd(2026, 7, 2)), 0);
    assert_int_equal(timer_claim_due(t, workflow_day_ms(date_from_ymd(2026, 7, 2)), f, 8), 0);
    /* Clean up what is left (2026 and 2027H1 again). */
    n = timer_claim_due(t, workflow_day_ms(date_from_ymd(2030, 1, 1)), f, 8);
    for (int i = 0; i < n; i++)
        timer_done(t, f[i].kind, f[i].key);
    timers_destroy(&t);
}

/* A city of many agencies with long names: the city's report still fits in one event
 * (64 KiB), cut after the weakest, and every agency still gets its own report. */
static void
test_city_report_bounded(void **state)
{
    pubfx_t *fx = *state;
    pubfx_sql(fx, "INSERT INTO publication.agency (code, name, version) "
                  "SELECT '916202000000' || lpad(i::text, 6, '0'), repeat('某', 200), 1 "
                  "FROM generate_series(1, 300) AS i");
    assert_int_equal(stats_generate(fx->db, "2025", LEGAL), 0);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.stat_report "
                                     "WHERE period = '2025'"),
                     302);
    char *text = s_outbox_json(fx, "publication.report." LEGAL);
    assert_true(strlen(text) < 65536);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "period")), "2025");
    assert_int_equal(json_integer_value(json_object_get(o, "total")), 302);
    size_t n = json_array_size(json_object_get(o, "agencies"));
    assert_true(n >= 20 && n < 302);
    json_decref(o);
}

static void
test_periods(void **state)
{
    (void)state;
    stats_period_t p;
    assert_int_equal(stats_period_parse("2026H1", &p), 0);
    char b[11];
    assert_string_equal(date_format(p.from, b), "2026-01-01");
    assert_string_equal(date_format(p.to, b), "2026-06-30");
    assert_string_equal(date_format(p.due, b), "2026-07-10");
    assert_int_equal(stats_period_parse("2026", &p), 0);
    assert_string_equal(date_format(p.to, b), "2026-12-31");
    assert_string_equal(date_format(p.due, b), "2027-01-10");
    assert_int_equal(stats_period_parse("2026H2", &p), 0);
    assert_string_equal(date_format(p.from, b), "2026-07-01");
    static const char *const bad[] = {"",     "2026H",  "2026H3",  "2018",  "2101",
                                      "20x6", "2026h1", "2026H1 ", "02026", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(stats_period_parse(bad[i], &p), -1);
}

static int
s_setup(void **state)
{
    pubfx_t *fx = pubfx_new("pubstats", "pub-stats-test");
    fx->keep = true; /* test_redelivery_counts_once delivers them all again */
    *state = fx;
    return 0;
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periods),
        cmocka_unit_test(test_half_year),
        cmocka_unit_test(test_redelivery_counts_once),
        cmocka_unit_test(test_html_page),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_city_report_order),
        cmocka_unit_test(test_period_timers),
        cmocka_unit_test(test_city_report_bounded),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, pubfx_teardown);
    curl_global_cleanup();
    return rc;
}
