/* The whole story end to end (issue 9): every service binary, the broker and the fake
 * credit platform, real PostgreSQL, Redis, ZeroMQ with CURVE and HTTP, driven through
 * the doors and topics as the departments drive them (tests/support/story.h):
 *
 *   - the legal office registers 嘉峪关市市场监督管理局 and the bureau puts its lists
 *     (deploy/examples/02..10, and a reviewer);
 *   - a licence granted, published by the bureau's publisher within 7 working days, its
 *     record on the portal (the person masked) and pushed to the credit platform;
 *   - a penalty that needs legal review: returned once (decide refused), proposed again,
 *     approved, decided, served, executed, closed; its whole-process record archived and
 *     verified; published and pushed;
 *   - the same penalty revoked: 410 on the portal with the reason, the withdrawal pushed
 *     after the record;
 *   - a 双随机 inspection's result published (and not pushed);
 *   - the 2026 first half-year statistics on the portal.
 *
 * Each step asserts what its user sees: the department's replies and the events it
 * hears, the portal's answers, fake-credit's /admin/stats. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "date.h"
#include "story.h"
#include "tsupport.h"
#include "workday.h"

#define AGENCY "11620200013926143G" /* 嘉峪关市市场监督管理局 (deploy/examples) */
#define LEGAL  "116202000139261871" /* 嘉峪关市司法局 */
#define M_CF   "620200-SJ-CF-0126"  /* penalty matter, AV at start/investigation/service */
#define M_XK   "620200-SJ-XK-0001"  /* licence matter */
#define M_JC   "620200-SJ-JC-0003"  /* inspection matter */
#define WAIT   30000                /* ms for anything that crosses the bus */

typedef struct {
    story_world_t w;
    char *pg_url;
    char redis[600];
    story_sub_t *dept; /* what the bureau's system hears */
    char today[11];
    json_int_t pen_case, pen_record; /* the reviewed penalty, for the revocation */
} fx_t;

static fx_t *s_fx;

/* The ok result of a call, or the test fails with what went wrong. */
static json_t *
s_must(json_t *r)
{
    if (!r)
        fail_msg("%s", s_fx->w.err);
    return r;
}

#define DO(door, who, op, ...) s_must(story_do(&s_fx->w, door, who, op, __VA_ARGS__))

/* A call expected to fail with code; returns nothing, asserts the code. */
static void
s_refused(story_svc_t door, const char *who, const char *op, const char *body, const char *code)
{
    story_reply_t r;
    if (story_call(&s_fx->w, door, who, op, NULL, body, &r) != 0)
        fail_msg("%s", s_fx->w.err);
    if (r.ok)
        fail_msg("%s succeeded; expected %s", op, code);
    if (strcmp(r.code, code) != 0)
        fail_msg("%s: %s at %s (%s); expected %s", op, r.code, r.field, r.en, code);
    story_reply_clear(&r);
}

/* The event data the department heard: topic <event>.AGENCY with data[key] == val. */
static json_t *
s_heard(const char *event, const char *key, json_int_t val)
{
    char topic[128];
    snprintf(topic, sizeof topic, "%s." AGENCY, event);
    json_t *d = story_sub_wait(s_fx->dept, topic, key, val, WAIT);
    if (!d)
        fail_msg("%s", s_fx->w.err);
    return d;
}

static const char *
s_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("no string %s in %s", key, json_dumps(o, JSON_COMPACT));
    return json_string_value(v);
}

static json_int_t
s_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("no integer %s in %s", key, json_dumps(o, JSON_COMPACT));
    return json_integer_value(v);
}

/* GET on the portal; asserts the status; returns the body (caller json_decref's). */
static json_t *
s_portal(int want, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    json_t *body = NULL;
    int status = story_http_get(s_fx->w.portal_port, path, &body);
    if (status != want)
        fail_msg("GET %s: %d, expected %d", path, status, want);
    assert_non_null(body);
    return body;
}

/* An HTML page of the portal: asserts the status and that the page holds each of the
 * NULL-terminated texts in has[] and none in hasnt[]. */
static void
s_page(int want, const char *path, const char *const has[], const char *const hasnt[])
{
    char *page = NULL;
    int status = story_http_get_text(s_fx->w.portal_port, path, &page);
    if (status != want)
        fail_msg("GET %s: %d, expected %d", path, status, want);
    assert_non_null(page);
    for (size_t i = 0; has && has[i]; i++)
        if (!strstr(page, has[i]))
            fail_msg("GET %s: the page does not show \"%s\"", path, has[i]);
    for (size_t i = 0; hasnt && hasnt[i]; i++)
        if (strstr(page, hasnt[i]))
            fail_msg("GET %s: the page shows \"%s\"", path, hasnt[i]);
    free(page);
}

/* How many times the platform saw idempotency key <record>-<n>, and its counters. */
static json_int_t
s_platform_key(json_int_t record, int n)
{
    json_t *st = story_credit_stats(&s_fx->w);
    assert_non_null(st);
    char key[48];
    snprintf(key, sizeof key, "%lld-%d", (long long)record, n);
    json_int_t v = json_integer_value(json_object_get(json_object_get(st, "keys"), key));
    json_decref(st);
    return v;
}

static json_int_t
s_platform_stat(const char *name)
{
    json_t *st = story_credit_stats(&s_fx->w);
    assert_non_null(st);
    json_int_t v = json_integer_value(json_object_get(st, name));
    json_decref(st);
    return v;
}

typedef struct {
    json_int_t record;
    int n;
} s_key_t;

static bool
s_key_arrived(void *arg)
{
    s_key_t *k = arg;
    return s_platform_key(k->record, k->n) >= 1;
}

/* Waits until the platform has record-n; then asserts it was applied exactly once. */
static void
s_wait_pushed(json_int_t record, int n)
{
    s_key_t k = {record, n};
    if (story_wait(s_key_arrived, &k, WAIT, 100) != 0)
        fail_msg("the credit platform never received %lld-%d", (long long)record, n);
    assert_int_equal(s_platform_key(record, n), 1);
}

/* The 7 seven points of review.opinion, all passing but `failing` (NULL: none). */
static void
s_points(char *buf, size_t size, const char *failing)
{
    static const char *const keys[] = {"subject",   "facts",     "basis",   "discretion",
                                       "procedure", "documents", "referral"};
    size_t n = (size_t)snprintf(buf, size, "{");
    for (int i = 0; i < 7; i++) {
        bool pass = !failing || strcmp(failing, keys[i]) != 0;
        n += (size_t)snprintf(buf + n, size - n, "%s\"%s\":{\"pass\":%s,\"comment\":\"%s\"}",
                              i ? "," : "", keys[i], pass ? "true" : "false",
                              pass ? "无异议" : "违法所得计算依据不足，请补充进货凭证");
    }
    snprintf(buf + n, size - n, "}");
}

/* The reviewer's open task for the case, or fails. */
static json_int_t
s_task_of(json_int_t case_id, json_int_t version)
{
    for (int64_t end = story_now_ms() + WAIT; story_now_ms() < end; story_sleep_ms(100)) {
        json_t *r = DO(STORY_REVIEW, "reviewer", "review.tasks", "{\"reviewer\":\"甘JYG003\"}");
        size_t i;
        json_t *t;
        json_int_t id = 0;
        json_array_foreach(json_object_get(r, "tasks"), i, t)
        {
            if (s_int(t, "case_id") == case_id && s_int(t, "proposal_version") == version)
                id = s_int(t, "task_id");
        }
        json_decref(r);
        if (id)
            return id;
    }
    fail_msg("no review task for case %lld version %lld", (long long)case_id, (long long)version);
    return 0;
}

/* case.decide, sent again (a new rid each time) while intake waits for the verdict to
 * arrive on the review stream (review_pending). */
static json_t *
s_decide_when_approved(const char *case_no, const char *decision_no, const char *date)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"case_no\":\"%s\",\"decision_no\":\"%s\",\"decision_date\":\"%s\"}", case_no,
             decision_no, date);
    for (int64_t end = story_now_ms() + WAIT; story_now_ms() < end; story_sleep_ms(100)) {
        story_reply_t r;
        if (story_call(&s_fx->w, STORY_INTAKE, "scjg", "case.decide", NULL, body, &r) != 0)
            fail_msg("%s", s_fx->w.err);
        if (r.ok)
            return r.result;
        if (strcmp(r.code, "review_pending") != 0)
            fail_msg("case.decide: %s at %s: %s", r.code, r.field, r.en);
        story_reply_clear(&r);
    }
    fail_msg("case.decide stayed review_pending for %d ms", WAIT);
    return NULL;
}

/* One AV record of the penalty case at stage, now. */
static void
s_video(const char *case_no, const char *stage, int k)
{
    int64_t now = (int64_t)time(NULL) * 1000;
    json_decref(DO(STORY_INTAKE, "scjg", "case.record",
                   "{\"case_no\":\"%s\",\"stage\":\"%s\",\"kind\":\"video\",\"doc_type\":"
                   "\"执法记录仪视频\",\"officers\":[\"甘JYG001\",\"甘JYG002\"],\"device\":"
                   "\"DSJ-620200-0178\",\"started_at\":%lld,\"ended_at\":%lld,\"media\":{"
                   "\"sha256\":\"%064x\",\"uri\":\"s3://jyg-scjg-av/story/%d.mp4\",\"size\":"
                   "1048576},\"classification\":\"internal\"}",
                   case_no, stage, (long long)(now - 600000), (long long)(now - 60000), k, k));
}

/* Publisher approval of the draft the department heard about for case_id; returns the
 * record id after asserting the published event (late as given). */
static json_int_t
s_publish(json_int_t case_id, bool late)
{
    json_t *d = s_heard("publication.drafted", "case_id", case_id);
    json_int_t rec = s_int(d, "record_id");
    json_t *r = DO(STORY_PUBLICATION, "publisher", "publication.approve", "{\"record_id\":%lld}",
                   (long long)rec);
    assert_string_equal(s_str(r, "state"), "published");
    json_decref(r);
    d = s_heard("publication.published", "record_id", rec);
    assert_int_equal(s_int(d, "case_id"), case_id);
    assert_true(json_is_boolean(json_object_get(d, "late")));
    if (json_is_true(json_object_get(d, "late")) != late)
        fail_msg("record %lld published late=%d, expected %d", (long long)rec, !late, late);
    return rec;
}

/* ---- The tests, in story order ----------------------------------------------------------- */

static void
test_registry(void **state)
{
    (void)state;
    json_decref(s_must(story_example(&s_fx->w, "legal", "01-registry.agency.put.json")));
    /* The department hears its own registry event: its subscription is live. */
    json_t *d = s_heard("registry.agency", NULL, 0);
    assert_string_equal(s_str(json_object_get(d, "entry"), "name"), "嘉峪关市市场监督管理局");
    static const char *const files[] = {
        "02-registry.officer.put.json",   "03-registry.officer.put.json",
        "04-registry.matter.put.json",    "05-registry.matter.put.json",
        "06-registry.matter.put.json",    "07-registry.inspection_item.put.json",
        "08-registry.av_matter.put.json", "09-registry.review_rule.put.json",
        "10-registry.discretion.put.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        json_decref(s_must(story_example(&s_fx->w, "scjg", files[i])));
    /* The bureau's legal review office: a qualified reviewer who handles no case. */
    json_decref(DO(STORY_INTAKE, "scjg", "registry.officer.put",
                   "{\"agency\":\"" AGENCY "\",\"version\":0,\"cert_no\":\"甘JYG003\",\"name\":"
                   "\"周明\",\"valid_from\":\"2024-01-01\",\"valid_to\":\"2030-12-31\",\"area\":"
                   "\"嘉峪关市\",\"legal_qualified\":true,\"reviewer\":true}"));
    /* 事前公开: the portal lists the agency's matters and officers once publication has
     * them; and anyone can check an officer's certificate. */
    json_t *a = NULL;
    for (int64_t end = story_now_ms() + WAIT; story_now_ms() < end; story_sleep_ms(100)) {
        json_decref(a);
        a = NULL;
        if (story_http_get(s_fx->w.portal_port, "/api/v1/agencies/" AGENCY, &a) == 200 &&
            json_array_size(json_object_get(json_object_get(a, "lists"), "officer")) == 3 &&
            json_array_size(json_object_get(json_object_get(a, "lists"), "matter")) == 3)
            break;
    }
    assert_non_null(a);
    assert_int_equal(json_array_size(json_object_get(json_object_get(a, "lists"), "matter")), 3);
    assert_int_equal(json_array_size(json_object_get(json_object_get(a, "lists"), "officer")), 3);
    json_decref(a);
    s_page(200, "/agencies/" AGENCY,
           (const char *const[]){"嘉峪关市市场监督管理局", "食品经营许可", NULL}, NULL);
    a = s_portal(200, "/api/v1/officers?cert_no=%s", "%E7%94%98JYG001");
    assert_string_equal(s_str(a, "status"), "valid");
    assert_string_equal(s_str(a, "name"), "王志刚");
    json_decref(a);
}

static void
test_licence_published_within_7_workdays_and_pushed(void **state)
{
    (void)state;
    const char *t = s_fx->today;
    json_t *r = DO(STORY_INTAKE, "scjg", "case.open",
                   "{\"case_no\":\"嘉市监食许受〔2026〕E2E1号\",\"matter_code\":\"" M_XK
                   "\",\"party\":{\"kind\":\"person\",\"name\":\"马文博\",\"id_type\":\"idcard\","
                   "\"id_no\":\"620201199207081818\"},\"summary\":\"申请食品经营许可\","
                   "\"opened_on\":\"%s\"}",
                   t);
    json_int_t cid = s_int(r, "case_id");
    assert_string_equal(s_str(r, "state"), "open");
    assert_string_equal(s_str(r, "type"), "licence");
    json_decref(r);
    s_heard("case.opened", "case_id", cid);
    r = DO(STORY_INTAKE, "scjg", "case.propose",
           "{\"case_no\":\"嘉市监食许受〔2026〕E2E1号\",\"category\":\"准予行政许可\","
           "\"content\":\"准予食品经营许可\",\"legal_basis\":\"《中华人民共和国行政许可法》"
           "第三十八条第一款\"}");
    assert_false(json_is_true(json_object_get(r, "requires_review")));
    json_decref(r);
    r = DO(STORY_INTAKE, "scjg", "case.decide",
           "{\"case_no\":\"嘉市监食许受〔2026〕E2E1号\",\"decision_no\":"
           "\"嘉市监食许准〔2026〕E2E1号\",\"decision_date\":\"%s\"}",
           t);
    assert_string_equal(s_str(r, "state"), "decided");
    json_decref(r);
    s_heard("case.decided", "case_id", cid);

    /* The draft is due 7 working days after the decision (双公示), on the calendar. */
    json_t *d = s_heard("publication.drafted", "case_id", cid);
    char err[256], due[11];
    char path[1024];
    snprintf(path, sizeof path, "%s/schemas/calendar/cn-workdays.json", ts_env("SX_TOP"));
    workday_t *cal = workday_load(path, err, sizeof err);
    if (!cal)
        fail_msg("%s", err);
    date_t today, due_d;
    bool uncovered;
    assert_int_equal(date_parse(t, 10, &today, NULL), 0);
    assert_int_equal(workday_add(cal, today, 7, &due_d, &uncovered), 0);
    workday_destroy(&cal);
    assert_string_equal(s_str(d, "due_on"), date_format(due_d, due));

    /* Before approval the public sees nothing. */
    json_int_t rec = s_int(d, "record_id");
    json_decref(s_portal(404, "/api/v1/decisions/%lld", (long long)rec));
    assert_int_equal(s_publish(cid, false), rec);

    json_t *p = s_portal(200, "/api/v1/decisions/%lld", (long long)rec);
    assert_string_equal(s_str(p, "type"), "licence");
    assert_string_equal(s_str(p, "decision_no"), "嘉市监食许准〔2026〕E2E1号");
    assert_string_equal(s_str(p, "decision_date"), t);
    json_t *party = json_object_get(p, "party");
    assert_string_equal(s_str(party, "name"), "马**"); /* a natural person, masked */
    assert_string_equal(s_str(party, "id_no"), "620201************");
    assert_string_equal(s_str(json_object_get(p, "agency"), "name"), "嘉峪关市市场监督管理局");
    assert_true(json_is_object(json_object_get(p, "sgs")));
    json_decref(p);
    /* The page the public reads (执法公示平台): the person masked there too. */
    char page[64];
    snprintf(page, sizeof page, "/decisions/%lld", (long long)rec);
    s_page(200, page, (const char *const[]){"嘉市监食许准〔2026〕E2E1号", "马**", NULL},
           (const char *const[]){"马文博", "620201199207081818", NULL});
    p = s_portal(200, "/api/v1/decisions?agency=" AGENCY "&type=licence");
    assert_int_equal(s_int(p, "total"), 1);
    json_decref(p);

    /* The platform received it once. */
    s_wait_pushed(rec, 1);

    /* The department closes the case after service. */
    json_decref(DO(STORY_INTAKE, "scjg", "case.serve",
                   "{\"case_no\":\"嘉市监食许受〔2026〕E2E1号\",\"served_on\":\"%s\","
                   "\"method\":\"electronic\"}",
                   t));
    r = DO(STORY_INTAKE, "scjg", "case.close",
           "{\"case_no\":\"嘉市监食许受〔2026〕E2E1号\",\"closed_on\":\"%s\"}", t);
    assert_string_equal(s_str(r, "state"), "closed");
    json_decref(r);
}

static void
test_penalty_reviewed_returned_approved_decided_closed_archived_published(void **state)
{
    (void)state;
    const char *t = s_fx->today;
    const char *no = "嘉市监立字〔2026〕E2E2号";
    json_t *r = DO(STORY_INTAKE, "scjg", "case.open",
                   "{\"case_no\":\"%s\",\"matter_code\":\"" M_CF "\",\"party\":{\"kind\":\"org\","
                   "\"name\":\"嘉峪关市雄关食品商贸有限公司\",\"id_type\":\"uscc\",\"id_no\":"
                   "\"91620200MA73A2B880\"},\"summary\":\"销售未经进货查验的食品\",\"opened_on\":"
                   "\"%s\",\"on_site\":true,\"act_date\":\"%s\",\"officers\":[\"甘JYG001\","
                   "\"甘JYG002\"]}",
                   no, t, t);
    json_int_t cid = s_int(r, "case_id");
    json_decref(r);
    s_fx->pen_case = cid;
    s_video(no, "start", 1);
    s_video(no, "investigation", 2);

    /* 6 万元: rule FZSH-01 (5 万元 or more) needs legal review. */
    r = DO(STORY_INTAKE, "scjg", "case.propose",
           "{\"case_no\":\"%s\",\"category\":\"罚款;没收违法所得\",\"content\":\"罚款伍万元，"
           "没收违法所得壹万元\",\"fine\":\"5\",\"confiscation\":\"1\",\"legal_basis\":"
           "\"《中华人民共和国食品安全法》第一百二十六条第一款第（三）项\"}",
           no);
    assert_true(json_is_true(json_object_get(r, "requires_review")));
    assert_int_equal(s_int(r, "version"), 1);
    json_decref(r);
    char body[256];
    snprintf(body, sizeof body,
             "{\"case_no\":\"%s\",\"decision_no\":\"嘉市监处罚〔2026〕E2E2号\","
             "\"decision_date\":\"%s\"}",
             no, t);
    s_refused(STORY_INTAKE, "scjg", "case.decide", body, "review_pending");

    /* The reviewer returns it: facts not clear. */
    json_int_t task = s_task_of(cid, 1);
    char points[2048];
    s_points(points, sizeof points, "facts");
    r = DO(STORY_REVIEW, "reviewer", "review.opinion",
           "{\"task_id\":%lld,\"reviewer\":\"甘JYG003\",\"points\":%s,\"verdict\":\"problems\","
           "\"summary\":\"退回补充调查\"}",
           (long long)task, points);
    assert_string_equal(s_str(r, "status"), "returned");
    json_decref(r);
    json_t *d = s_heard("review.returned", "case_id", cid);
    assert_int_equal(s_int(d, "proposal_version"), 1);
    assert_string_equal(s_str(d, "reviewer"), "甘JYG003");
    assert_non_null(strstr(s_str(d, "opinion"), "违法所得计算依据不足"));
    /* Version 1 can never be decided now (once intake has the verdict). */
    for (int64_t end = story_now_ms() + WAIT;; story_sleep_ms(100)) {
        story_reply_t rr;
        assert_int_equal(story_call(&s_fx->w, STORY_INTAKE, "scjg", "case.decide", NULL, body, &rr),
                         0);
        assert_false(rr.ok);
        bool done = strcmp(rr.code, "review_required") == 0;
        if (!done && strcmp(rr.code, "review_pending") != 0)
            fail_msg("case.decide: %s (%s)", rr.code, rr.en);
        story_reply_clear(&rr);
        if (done)
            break;
        if (story_now_ms() >= end)
            fail_msg("case.decide never answered review_required");
    }

    /* Proposed again with the evidence; approved. */
    r = DO(STORY_INTAKE, "scjg", "case.propose",
           "{\"case_no\":\"%s\",\"category\":\"罚款;没收违法所得\",\"content\":\"罚款伍万元，"
           "没收违法所得壹万元（附进货凭证）\",\"fine\":\"5\",\"confiscation\":\"1\","
           "\"legal_basis\":\"《中华人民共和国食品安全法》第一百二十六条第一款第（三）项\"}",
           no);
    assert_int_equal(s_int(r, "version"), 2);
    json_decref(r);
    task = s_task_of(cid, 2);
    s_points(points, sizeof points, NULL);
    r = DO(STORY_REVIEW, "reviewer", "review.opinion",
           "{\"task_id\":%lld,\"reviewer\":\"甘JYG003\",\"points\":%s,\"verdict\":\"approve\"}",
           (long long)task, points);
    assert_string_equal(s_str(r, "status"), "approved");
    json_decref(r);
    d = s_heard("review.approved", "case_id", cid);
    assert_int_equal(s_int(d, "proposal_version"), 2);

    r = s_decide_when_approved(no, "嘉市监处罚〔2026〕E2E2号", t);
    assert_int_equal(s_int(r, "version"), 2);
    json_decref(r);
    json_decref(DO(STORY_INTAKE, "scjg", "case.serve",
                   "{\"case_no\":\"%s\",\"served_on\":\"%s\",\"method\":\"direct\"}", no, t));
    s_video(no, "service_execution", 3);
    json_decref(DO(STORY_INTAKE, "scjg", "case.execute",
                   "{\"case_no\":\"%s\",\"executed_on\":\"%s\",\"method\":\"voluntary\"}", no, t));
    r = DO(STORY_INTAKE, "scjg", "case.close",
           "{\"case_no\":\"%s\",\"closed_on\":\"%s\",\"note\":\"罚没款已缴清\"}", no, t);
    assert_string_equal(s_str(r, "state"), "closed");
    json_decref(r);

    /* 归档: the record is sealed at close and verifies; no AV stage was missed. */
    d = s_heard("record.archived", "case_id", cid);
    json_int_t count = s_int(d, "count");
    assert_true(count >= 10); /* opened, 3 records, 2 proposals, decided, served, ... */
    r = DO(STORY_RECORDING, "scjg", "record.verify", "{\"case_id\":%lld}", (long long)cid);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_true(json_object_get(r, "sealed")));
    assert_true(json_is_true(json_object_get(r, "seal_ok")));
    assert_string_equal(s_str(r, "head"), s_str(d, "head"));
    json_decref(r);
    assert_int_equal(story_sub_count(s_fx->dept, "record.gap." AGENCY, "case_id", cid), 0);

    /* Published within the week, on the portal in full (an organisation), pushed. */
    json_int_t rec = s_publish(cid, false);
    s_fx->pen_record = rec;
    json_t *p = s_portal(200, "/api/v1/decisions/%lld", (long long)rec);
    assert_string_equal(s_str(p, "type"), "penalty");
    assert_string_equal(s_str(p, "decision_no"), "嘉市监处罚〔2026〕E2E2号");
    assert_string_equal(s_str(json_object_get(p, "party"), "name"), "嘉峪关市雄关食品商贸有限公司");
    assert_string_equal(s_str(json_object_get(p, "sgs"), "CF_WSH"), "嘉市监处罚〔2026〕E2E2号");
    json_decref(p);
    p = s_portal(200, "/api/v1/decisions?uscc=91620200MA73A2B880");
    assert_int_equal(s_int(p, "total"), 1);
    json_decref(p);
    s_wait_pushed(rec, 1);
}

static void
test_penalty_revoked_withdrawn_from_portal_and_platform(void **state)
{
    (void)state;
    if (!s_fx->pen_record)
        skip();
    json_int_t early = s_platform_stat("early_withdrawals");
    json_t *r = DO(STORY_INTAKE, "scjg", "case.revoke",
                   "{\"case_no\":\"嘉市监立字〔2026〕E2E2号\",\"kind\":\"revoke\",\"reason\":"
                   "\"行政复议决定撤销\",\"revoked_on\":\"%s\"}",
                   s_fx->today);
    assert_string_equal(s_str(r, "state"), "revoked");
    json_decref(r);
    json_t *d = s_heard("publication.withdrawn", "record_id", s_fx->pen_record);
    assert_true(json_is_true(json_object_get(d, "was_published")));
    assert_string_equal(s_str(d, "kind"), "revoke");
    json_t *p = s_portal(410, "/api/v1/decisions/%lld", (long long)s_fx->pen_record);
    assert_string_equal(s_str(p, "error"), "withdrawn");
    assert_string_equal(s_str(p, "kind"), "revoke");
    assert_string_equal(s_str(p, "reason"), "行政复议决定撤销");
    json_decref(p);
    p = s_portal(200, "/api/v1/decisions?uscc=91620200MA73A2B880");
    assert_int_equal(s_int(p, "total"), 0);
    json_decref(p);
    /* The page (410, as the API): no content any more, the kind and the reason. */
    char path[64];
    snprintf(path, sizeof path, "/decisions/%lld", (long long)s_fx->pen_record);
    s_page(410, path, (const char *const[]){"撤销", "行政复议决定撤销", NULL},
           (const char *const[]){"罚款伍万元", NULL});
    s_wait_pushed(s_fx->pen_record, 2);
    assert_int_equal(s_platform_stat("early_withdrawals"), early);
    /* The revocation extends the sealed chain, which still verifies. */
    r = DO(STORY_RECORDING, "scjg", "record.verify", "{\"case_id\":%lld}",
           (long long)s_fx->pen_case);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
}

static void
test_inspection_result_published(void **state)
{
    (void)state;
    const char *t = s_fx->today;
    const char *no = "嘉市监随检〔2026〕E2E3号";
    json_t *r = DO(STORY_INTAKE, "scjg", "case.open",
                   "{\"case_no\":\"%s\",\"matter_code\":\"" M_JC "\",\"party\":{\"kind\":\"org\","
                   "\"name\":\"嘉峪关市镜铁区王记家常菜馆\",\"id_type\":\"uscc\",\"id_no\":"
                   "\"92620200MA74C5D214\"},\"summary\":\"双随机抽查\",\"opened_on\":\"%s\","
                   "\"on_site\":true,\"act_date\":\"%s\",\"officers\":[\"甘JYG001\",\"甘JYG002\"]}",
                   no, t, t);
    json_int_t cid = s_int(r, "case_id");
    assert_string_equal(s_str(r, "type"), "inspection");
    json_decref(r);
    r = DO(STORY_INTAKE, "scjg", "inspection.result",
           "{\"case_no\":\"%s\",\"result_date\":\"%s\",\"subject\":\"嘉峪关市镜铁区王记家常菜馆\","
           "\"result\":\"problems_found\",\"problems\":\"冷冻肉制品未张贴标签\",\"handled\":"
           "\"当场责令改正\"}",
           no, t);
    assert_string_equal(s_str(r, "state"), "resulted");
    json_decref(r);
    s_heard("inspection.resulted", "case_id", cid);
    json_int_t rec = s_publish(cid, false);
    json_t *p = s_portal(200, "/api/v1/decisions/%lld", (long long)rec);
    assert_string_equal(s_str(p, "type"), "inspection");
    assert_non_null(strstr(s_str(p, "conclusion"), "冷冻肉制品未张贴标签"));
    json_decref(p);
    p = s_portal(200, "/api/v1/decisions?agency=" AGENCY "&type=inspection");
    assert_int_equal(s_int(p, "total"), 1);
    json_decref(p);
    r = DO(STORY_INTAKE, "scjg", "case.close", "{\"case_no\":\"%s\",\"closed_on\":\"%s\"}", no, t);
    assert_string_equal(s_str(r, "state"), "closed");
    json_decref(r);
    /* Inspections are not 双公示: nothing goes to the platform. */
    assert_int_equal(s_platform_key(rec, 1), 0);
}

static void
test_half_year_statistics(void **state)
{
    (void)state;
    /* Two decisions of 2026's first half: a licence published late (today), and a penalty
     * left unpublished, overdue since April. */
    int64_t lic, pen;
    story_case_t c = {.who = "scjg",
                      .matter_code = M_XK,
                      .case_no = "嘉市监食许受〔2026〕H101号",
                      .decision_no = "嘉市监食许准〔2026〕H101号",
                      .date = "2026-03-05",
                      .party_json = "{\"kind\":\"org\",\"name\":\"嘉峪关市雄关食品商贸有限公司\","
                                    "\"id_type\":\"uscc\",\"id_no\":\"91620200MA73A2B880\"}",
                      .fine = "0",
                      .penalty = false};
    if (story_case_life(&s_fx->w, &c, &lic) != 0)
        fail_msg("%s", s_fx->w.err);
    c = (story_case_t){.who = "scjg",
                       .matter_code = M_CF,
                       .case_no = "嘉市监立字〔2026〕H102号",
                       .decision_no = "嘉市监处罚〔2026〕H102号",
                       .date = "2026-04-15",
                       .party_json = "{\"kind\":\"org\",\"name\":\"嘉峪关市镜铁区王记家常菜馆\","
                                     "\"id_type\":\"uscc\",\"id_no\":\"92620200MA74C5D214\"}",
                       .fine = "0.8",
                       .penalty = true};
    if (story_case_life(&s_fx->w, &c, &pen) != 0)
        fail_msg("%s", s_fx->w.err);
    s_publish(lic, true);
    json_t *d = s_heard("publication.overdue", "case_id", pen);
    assert_string_equal(s_str(d, "type"), "penalty");

    json_t *s = s_portal(200, "/api/v1/statistics?agency=" AGENCY "&year=2026&half=1");
    assert_string_equal(s_str(json_object_get(s, "period"), "from"), "2026-01-01");
    assert_string_equal(s_str(json_object_get(s, "period"), "to"), "2026-06-30");
    json_t *by = json_object_get(s, "by_type");
    json_t *l = json_object_get(by, "licence"), *p = json_object_get(by, "penalty");
    assert_int_equal(s_int(l, "decisions"), 1);
    assert_int_equal(s_int(l, "published"), 1);
    assert_int_equal(s_int(l, "late"), 1);
    assert_int_equal(s_int(l, "on_time"), 0);
    assert_int_equal(s_int(p, "decisions"), 1);
    assert_int_equal(s_int(p, "published"), 0);
    assert_int_equal(s_int(p, "overdue"), 1);
    assert_string_equal(s_str(p, "fines"), "0.8");
    /* Today's decisions are not in the first half. */
    assert_null(json_object_get(by, "inspection"));
    json_decref(s);
    /* The current half-year has not ended: refused, naming the parameter. */
    s = s_portal(400, "/api/v1/statistics?agency=" AGENCY "&year=%.4s&half=%d", s_fx->today,
                 atoi(s_fx->today + 5) <= 6 ? 1 : 2);
    assert_string_equal(s_str(s, "error"), "bad_parameter");
    json_decref(s);
}

/* ---- The world ------------------------------------------------------------------------- */

static int
s_setup(void **state)
{
    (void)state;
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    fx->pg_url = ts_fresh_db("story");
    /* A Redis database of its own: no timer of another test's run fires here. */
    snprintf(fx->redis, sizeof fx->redis, "%s", ts_env("SX_REDIS_URL"));
    char *slash = strrchr(fx->redis, '/');
    if (slash && slash > fx->redis + 8)
        snprintf(slash, sizeof fx->redis - (size_t)(slash - fx->redis), "/9");
    else
        snprintf(fx->redis + strlen(fx->redis), sizeof fx->redis - strlen(fx->redis), "/9");
    story_today(fx->today);
    static const char *const clients[][2] = {{"legal", "dept:" LEGAL ":legal_office"},
                                             {"scjg", "dept:" AGENCY ":system"},
                                             {"publisher", "dept:" AGENCY ":publisher"},
                                             {"reviewer", "dept:" AGENCY ":reviewer"},
                                             {"sxctl", "svc:sxctl"},
                                             {NULL, NULL}};
    story_opts_t o = {.bin_dir = ts_env("SX_BIN"),
                      .log_dir = ts_env("SX_TMP"),
                      .top = ts_env("SX_TOP"),
                      .pg_url = fx->pg_url,
                      .redis_url = fx->redis,
                      .clients = clients,
                      .pool_agency = LEGAL,
                      .credit_batch = 10};
    if (story_world_start(&fx->w, &o) != 0)
        fail_msg("%s", fx->w.err);
    static const char *const topics[] = {"registry.agency." AGENCY,
                                         "case.opened." AGENCY,
                                         "case.decided." AGENCY,
                                         "inspection.resulted." AGENCY,
                                         "review.returned." AGENCY,
                                         "review.approved." AGENCY,
                                         "record.archived." AGENCY,
                                         "record.gap." AGENCY,
                                         "publication.drafted." AGENCY,
                                         "publication.published." AGENCY,
                                         "publication.withdrawn." AGENCY,
                                         "publication.overdue." AGENCY,
                                         NULL};
    fx->dept = story_sub_new(&fx->w, "scjg", topics);
    if (!fx->dept)
        fail_msg("%s", fx->w.err);
    return 0;
}

static int
s_teardown(void **state)
{
    (void)state;
    fx_t *fx = s_fx;
    if (!fx)
        return 0;
    story_sub_destroy(&fx->dept);
    int bad = story_world_stop(&fx->w);
    free(fx->pg_url);
    free(fx);
    s_fx = NULL;
    /* Every process stopped cleanly on SIGTERM. */
    return bad == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_licence_published_within_7_workdays_and_pushed),
        cmocka_unit_test(test_penalty_reviewed_returned_approved_decided_closed_archived_published),
        cmocka_unit_test(test_penalty_revoked_withdrawn_from_portal_and_platform),
        cmocka_unit_test(test_inspection_result_published),
        cmocka_unit_test(test_half_year_statistics),
    };
    return cmocka_run_group_tests_name("e2e_story", tests, s_setup, s_teardown);
}
