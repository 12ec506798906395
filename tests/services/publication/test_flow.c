/* The publication flow against real PostgreSQL and Redis: case events in, a masked draft,
 * the publisher's approve / reject, the public API (only published reachable, ETag, 304,
 * 400 for bad parameters), withdrawal (410 with the reason), and the deadline timers. */
#include "pubfx.h"

static void
s_case_c(pubfx_t *fx, const char *agency, int id, const char *type, const char *party,
         const char *circumstance)
{
    char topic[128], json[2048];
    snprintf(topic, sizeof topic, "case.opened.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":%s,\"summary\":\"销售过期食品\","
             "\"opened_on\":\"2019-09-02\"}",
             id, id, type, party);
    pubfx_event(fx, topic, json);
    snprintf(topic, sizeof topic, "case.decided.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2019〕%d号\","
             "\"decision_date\":\"2019-09-27\",\"reviewed\":false,\"category\":\"罚款\","
             "\"content\":\"罚款2000元\",\"fine\":\"0.2\",\"confiscation\":\"0\","
             "\"legal_basis\":\"《食品安全法》第一百二十四条\",\"violation_code\":null,"
             "\"circumstance\":\"%s\"}",
             id, id, type, id, circumstance);
    pubfx_event(fx, topic, json);
}

static void
s_case(pubfx_t *fx, const char *agency, int id, const char *type, const char *party)
{
    s_case_c(fx, agency, id, type, party, "general");
}

/* ---- HTTP ----------------------------------------------------------------------------- */

static long
s_total(pubfx_t *fx, const char *path)
{
    pubfx_resp_t r;
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    long t = (long)json_integer_value(json_object_get(o, "total"));
    json_decref(o);
    return t;
}

/* ---- Tests ---------------------------------------------------------------------------- */

static void
test_draft_is_masked_and_unreachable(void **state)
{
    pubfx_t *fx = *state;
    pubfx_event(fx, "registry.agency." AGENCY,
                "{\"action\":\"put\",\"key\":\"" AGENCY "\",\"version\":1,\"entry\":{"
                "\"agency\":\"" AGENCY "\",\"version\":1,\"name\":\"嘉峪关市市场监督管理局\","
                "\"level\":\"city\",\"domain\":\"市场监管\",\"head_name\":\"李四\","
                "\"head_title\":\"局长\"}}");
    s_case(fx, AGENCY, 1, "penalty", PUBFX_PERSON);
    char id[24], path[128];
    pubfx_record(fx, AGENCY, 1, id);
    PGresult *r = db_query(fx->db,
                           "SELECT state, body->'party'->>'name', body->'sgs'->>'CF_XDR_ZJHM', "
                           "due_on::text, warn_on::text, body->'agency'->>'name', "
                           "body::text LIKE '%张三丰%' FROM publication.record WHERE id = $1",
                           1, (const char *[]){id});
    assert_string_equal(PQgetvalue(r, 0, 0), "draft");
    assert_string_equal(PQgetvalue(r, 0, 1), "张**");
    assert_string_equal(PQgetvalue(r, 0, 2), "620200************");
    assert_string_equal(PQgetvalue(r, 0, 3), "2019-10-12"); /* 7 working days */
    assert_string_equal(PQgetvalue(r, 0, 4), "2019-10-10");
    assert_string_equal(PQgetvalue(r, 0, 5), "嘉峪关市市场监督管理局");
    assert_string_equal(PQgetvalue(r, 0, 6), "f");
    PQclear(r);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.drafted." AGENCY "'"),
                     1);
    /* The same decision again (a replay) changes nothing. */
    s_case(fx, AGENCY, 1, "penalty", PUBFX_PERSON);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.record"), 1);

    pubfx_resp_t resp;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_get(fx, path, NULL, &resp);
    assert_int_equal(resp.status, 404);
    assert_int_equal(s_total(fx, "/api/v1/decisions"), 0);
}

static void
test_approve_publishes(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 2, "penalty", PUBFX_ORG);
    char id[24], st[16], path[128];
    pubfx_record(fx, AGENCY, 2, id);
    /* Another agency's publisher cannot see it. */
    assert_int_equal(workflow_publish(fx->db, id, AGENCY_B, "dept:" AGENCY_B ":publisher", st),
                     WORKFLOW_NOT_FOUND);
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    assert_string_equal(st, "published");
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st),
                     WORKFLOW_WRONG_STATE);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.published." AGENCY "'"),
                     1);

    pubfx_resp_t r, r2;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "嘉峪关某某商贸有限公司"));
    assert_non_null(strstr(r.body, "\"CF_XDR_SHXYM\":\"" ORG_USCC "\""));
    assert_true(r.etag[0] == '"');
    assert_string_equal(r.cache, "public, max-age=300");
    pubfx_get(fx, path, r.etag, &r2);
    assert_int_equal(r2.status, 304);
    assert_int_equal(r2.len, 0);

    assert_int_equal(s_total(fx, "/api/v1/decisions"), 1);
    assert_int_equal(s_total(fx, "/api/v1/decisions?uscc=" ORG_USCC), 1);
    assert_int_equal(s_total(fx, "/api/v1/decisions?party=%E5%95%86%E8%B4%B8"), 1); /* 商贸 */
    assert_int_equal(s_total(fx, "/api/v1/decisions?agency=" AGENCY "&type=penalty"
                                 "&from=2019-09-27&to=2019-09-27"),
                     1);
    assert_int_equal(s_total(fx, "/api/v1/decisions?type=licence"), 0);
    assert_int_equal(s_total(fx, "/api/v1/decisions?from=2019-09-28"), 0);
    assert_int_equal(s_total(fx, "/api/v1/decisions?page=2&size=1"), 1);
}

static void
test_reject(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 3, "licence", PUBFX_ORG);
    char id[24], st[16];
    pubfx_record(fx, AGENCY, 3, id);
    assert_int_equal(
        workflow_reject(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", "文号有误", st), 0);
    assert_string_equal(st, "rejected");
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st),
                     WORKFLOW_WRONG_STATE);
    assert_string_equal(st, "rejected");
    assert_int_equal(s_total(fx, "/api/v1/decisions?type=licence"), 0);
}

static void
test_withdrawal_410(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 4, "penalty", PUBFX_ORG);
    char id[24], st[16], path[128];
    pubfx_record(fx, AGENCY, 4, id);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    long before = s_total(fx, "/api/v1/decisions");
    pubfx_event(fx, "case.revoked." AGENCY,
                "{\"case_id\":4,\"case_no\":\"C-4\",\"type\":\"penalty\",\"matter_code\":\"M1\","
                "\"state\":\"revoked\",\"kind\":\"revoke\",\"reason\":\"复议决定撤销\","
                "\"revoked_on\":\"2019-11-01\",\"decision_no\":\"嘉罚〔2019〕4号\",\"version\":1}");
    assert_int_equal(s_total(fx, "/api/v1/decisions"), before - 1);
    pubfx_resp_t r;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 410);
    assert_non_null(strstr(r.body, "复议决定撤销"));
    assert_non_null(strstr(r.body, "\"withdrawn_on\":\"2019-11-01\""));
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.withdrawn." AGENCY "'"),
                     1);
    /* A draft withdrawn before it was ever published stays unknown (404). */
    s_case(fx, AGENCY, 5, "penalty", PUBFX_ORG);
    pubfx_event(fx, "case.revoked." AGENCY,
                "{\"case_id\":5,\"case_no\":\"C-5\",\"type\":\"penalty\",\"matter_code\":\"M1\","
                "\"state\":\"revoked\",\"kind\":\"invalid\",\"reason\":\"无效\","
                "\"revoked_on\":\"2019-11-01\",\"decision_no\":\"嘉罚〔2019〕5号\",\"version\":1}");
    snprintf(path, sizeof path, "/api/v1/decisions/%s", pubfx_record(fx, AGENCY, 5, id));
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 404);
}

static void
test_bad_parameters_400(void **state)
{
    pubfx_t *fx = *state;
    static const char *const bad[][2] = {
        {"/api/v1/decisions?party=x%27%20OR%20%271%27%3D%271", "party"},
        {"/api/v1/decisions?party=%FF%FE", "party"},
        {"/api/v1/decisions?party=a%00b", "party"},
        {"/api/v1/decisions?page=100000", "page"},
        {"/api/v1/decisions?size=1000", "size"},
        {"/api/v1/decisions?from=2019-13-01", "from"},
        {"/api/v1/decisions?uscc=abc", "uscc"},
        {"/api/v1/decisions?sort=id", "sort"},
        {"/api/v1/decisions/1%3B%20DROP", "id"},
        {"/api/v1/decisions/0", "id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pubfx_resp_t r;
        pubfx_get(fx, bad[i][0], NULL, &r);
        if (r.status != 400)
            fail_msg("%s: status %ld", bad[i][0], r.status);
        json_t *o = json_loads(r.body, 0, NULL);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "parameter")), bad[i][1]);
        json_decref(o);
    }
}

static void
s_officer(pubfx_t *fx, const char *cert, int version, const char *to, bool active)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"action\":\"%s\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"" AGENCY
             "\",\"version\":%d,\"cert_no\":\"%s\",\"name\":\"赵六\",\"valid_from\":"
             "\"2019-01-01\",\"valid_to\":\"%s\",\"area\":\"嘉峪关市\","
             "\"legal_qualified\":false,\"reviewer\":false,\"active\":%s}}",
             active ? "put" : "retire", cert, version, version, cert, to,
             active ? "true" : "false");
    pubfx_event(fx, "registry.officer." AGENCY, json);
}

static const char *
s_status(pubfx_t *fx, const char *path, pubfx_resp_t *r)
{
    pubfx_get(fx, path, NULL, r);
    assert_int_equal(r->status, 200);
    static char st[32];
    json_t *o = json_loads(r->body, 0, NULL);
    snprintf(st, sizeof st, "%s", json_string_value(json_object_get(o, "status")));
    json_decref(o);
    return st;
}

/* 事中公示: valid, expired (out of validity or retired), unknown. */
static void
test_officer_verification(void **state)
{
    pubfx_t *fx = *state;
    pubfx_resp_t r;
    s_officer(fx, "JYG001", 1, "2099-12-31", true);
    s_officer(fx, "JYG002", 1, "2020-12-31", true);
    s_officer(fx, "JYG003", 1, "2099-12-31", true);
    s_officer(fx, "JYG003", 2, "2099-12-31", false);
    s_officer(fx, "JYG003", 1, "2099-12-31", true); /* a replay of the old version */
    assert_string_equal(s_status(fx, "/api/v1/officers?cert_no=JYG001", &r), "valid");
    assert_non_null(strstr(r.body, "赵六"));
    assert_non_null(strstr(r.body, "嘉峪关市市场监督管理局"));
    assert_string_equal(s_status(fx, "/api/v1/officers?cert_no=JYG002", &r), "expired");
    assert_string_equal(s_status(fx, "/api/v1/officers?cert_no=JYG003", &r), "expired");
    assert_string_equal(s_status(fx, "/api/v1/officers?cert_no=NOPE9", &r), "unknown");
    pubfx_get(fx, "/api/v1/officers?cert_no=%27%3B--", NULL, &r);
    assert_int_equal(r.status, 400);
    pubfx_get(fx, "/api/v1/officers", NULL, &r);
    assert_int_equal(r.status, 400);
}

/* 双随机、一公开: an inspection's result becomes a record too, on the 20-day clock. */
static void
test_inspection_result(void **state)
{
    pubfx_t *fx = *state;
    pubfx_event(fx, "case.opened." AGENCY,
                "{\"case_id\":9,\"case_no\":\"JC-9\",\"type\":\"inspection\",\"matter_code\":"
                "\"M2\",\"state\":\"open\",\"party\":{\"kind\":\"org\",\"name\":\"某某餐饮店\","
                "\"id_type\":\"uscc\",\"id_no\":\"" ORG_USCC "\"},\"summary\":null,"
                "\"opened_on\":\"2019-09-20\"}");
    pubfx_event(fx, "inspection.resulted." AGENCY,
                "{\"case_id\":9,\"case_no\":\"JC-9\",\"type\":\"inspection\",\"matter_code\":"
                "\"M2\",\"state\":\"resulted\",\"result_date\":\"2019-09-27\",\"subject\":"
                "\"某某餐饮店\",\"result\":\"problems_found\",\"problems\":\"从业人员无健康证\","
                "\"handled\":\"责令改正\"}");
    char id[24], st[16], path[128];
    pubfx_record(fx, AGENCY, 9, id);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    pubfx_resp_t r;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"conclusion\":\"发现问题；发现的问题：从业人员无健康证；"
                                   "处理情况：责令改正\""));
    assert_non_null(strstr(r.body, "\"type_zh\":\"行政检查\""));
    assert_non_null(strstr(r.body, "\"sgs\":null"));
    PGresult *q = db_query(fx->db, "SELECT due_on::text FROM publication.record WHERE id = $1", 1,
                           (const char *[]){id});
    assert_string_equal(PQgetvalue(q, 0, 0), "2019-10-30");
    PQclear(q);
    assert_int_equal(s_total(fx, "/api/v1/decisions?type=inspection"), 1);
}

/* 事前公开: the agency page shows its lists; a retired entry leaves it; a new version
 * replaces the old one and the history keeps both. */
static void
test_agency_page(void **state)
{
    pubfx_t *fx = *state;
    pubfx_event(
        fx, "registry.matter." AGENCY,
        "{\"action\":\"put\",\"key\":\"M1\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
        "\",\"version\":1,\"code\":\"M1\",\"name\":\"食品经营许可\",\"type\":\"licence\"}}");
    pubfx_event(fx, "registry.matter." AGENCY,
                "{\"action\":\"put\",\"key\":\"M1\",\"version\":2,\"entry\":{\"agency\":\"" AGENCY
                "\",\"version\":2,\"code\":\"M1\",\"name\":\"食品经营许可（新）\",\"type\":"
                "\"licence\"}}");
    pubfx_resp_t r;
    pubfx_get(fx, "/api/v1/agencies/" AGENCY, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "嘉峪关市市场监督管理局"));
    assert_non_null(strstr(r.body, "食品经营许可（新）"));
    assert_null(strstr(r.body, "食品经营许可\""));
    assert_non_null(strstr(r.body, "JYG001"));
    assert_null(strstr(r.body, "JYG003")); /* retired */
    assert_null(strstr(r.body, "legal_qualified"));
    assert_true(r.etag[0] == '"');
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.registry_history "
                                     "WHERE list = 'matter' AND key = 'M1'"),
                     2);
    pubfx_get(fx, "/api/v1/agencies/" AGENCY_B, NULL, &r);
    assert_int_equal(r.status, 404);
    pubfx_get(fx, "/api/v1/agencies/abc", NULL, &r);
    assert_int_equal(r.status, 400);
    pubfx_get(fx, "/api/v1/agencies/" AGENCY "?x=1", NULL, &r);
    assert_int_equal(r.status, 400);
}

/* 信用修复: a published penalty comes down on request once its minimum period passed. */
static void
test_credit_repair(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 10, "penalty", PUBFX_ORG); /* 一般, 2019-09-27: repairable from 2019-12-27 */
    s_case_c(fx, AGENCY, 11, "penalty", PUBFX_ORG, "serious");
    char id10[24], id11[24], st[16], path[128];
    pubfx_record(fx, AGENCY, 10, id10);
    pubfx_record(fx, AGENCY, 11, id11);
    /* Not yet published: nothing to repair. */
    assert_int_equal(
        workflow_repair(fx->db, id10, AGENCY, "dept:" AGENCY ":publisher", "已整改", st),
        WORKFLOW_WRONG_STATE);
    assert_int_equal(workflow_publish(fx->db, id10, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    assert_int_equal(workflow_publish(fx->db, id11, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    PGresult *q = db_query(fx->db, "SELECT repair_from::text FROM publication.record WHERE id = $1",
                           1, (const char *[]){id11});
    assert_string_equal(PQgetvalue(q, 0, 0), "2020-09-27"); /* 严重: 1 year */
    PQclear(q);
    /* Pretend the serious one was decided recently: too early. */
    q = db_query(fx->db, "UPDATE publication.record SET repair_from = '2099-01-01' WHERE id = $1",
                 1, (const char *[]){id11});
    PQclear(q);
    assert_int_equal(
        workflow_repair(fx->db, id11, AGENCY, "dept:" AGENCY ":publisher", "已整改", st),
        WORKFLOW_TOO_EARLY);
    assert_string_equal(st, "2099-01-01");
    assert_int_equal(
        workflow_repair(fx->db, id10, AGENCY_B, "dept:" AGENCY_B ":publisher", "x", st),
        WORKFLOW_NOT_FOUND);
    assert_int_equal(
        workflow_repair(fx->db, id10, AGENCY, "dept:" AGENCY ":publisher", "已整改", st), 0);
    assert_string_equal(st, "repaired");
    pubfx_resp_t r;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id10);
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.outbox "
                                     "WHERE topic = 'publication.repaired." AGENCY "'"),
                     1);
}

/* A 轻微 penalty is not published (信用修复管理办法): no draft, no deadline, no URL. */
static void
test_minor_penalty_exempt(void **state)
{
    pubfx_t *fx = *state;
    s_case_c(fx, AGENCY, 7, "penalty", PUBFX_ORG, "minor");
    char id[24], path[128];
    pubfx_record(fx, AGENCY, 7, id);
    char st[16];
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st),
                     WORKFLOW_WRONG_STATE);
    assert_string_equal(st, "exempt");
    pubfx_resp_t r;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 404);
}

static long
s_events(pubfx_t *fx, const char *event)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM publication.outbox WHERE topic = 'publication.%s.%s'", event,
             AGENCY);
    return pubfx_count(fx, sql);
}

/* Warnings and deadlines of drafts, expiry of published penalties: armed from Postgres,
 * fired once each. The cases are of 2019, so every timer is due now. */
static void
test_timers(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 6, "coercion", PUBFX_PERSON);
    char id6[24], id8[24], err[256], st[16], path[128];
    pubfx_record(fx, AGENCY, 6, id6);
    s_case(fx, AGENCY, 8, "penalty", PUBFX_ORG); /* 一般: published until 2020-09-27 */
    pubfx_record(fx, AGENCY, 8, id8);
    assert_int_equal(workflow_publish(fx->db, id8, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    long drafts = pubfx_count(fx, "SELECT count(*) FROM publication.record WHERE state = 'draft'");
    long expiring = pubfx_count(fx, "SELECT count(*) FROM publication.record "
                                    "WHERE state = 'published' AND expires_on IS NOT NULL");
    assert_true(drafts >= 2);
    assert_true(expiring >= 1);

    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "pubtest", err, sizeof err);
    assert_non_null(t);
    assert_true(workflow_rearm(fx->db, t) >= 0);
    assert_true(workflow_arm_new(fx->db, t) >= 1);
    assert_int_equal(workflow_arm_new(fx->db, t), 0); /* marked armed */
    timer_fired_t f[64];
    int n = timer_claim_due(t, timer_now_ms(), f, 64);
    assert_int_equal(n, drafts * 2 + expiring);
    for (int i = 0; i < n; i++) {
        assert_int_equal(workflow_fire(fx->db, f[i].kind, f[i].key), 0);
        assert_int_equal(workflow_fire(fx->db, f[i].kind, f[i].key), 0); /* idempotent */
        timer_done(t, f[i].kind, f[i].key);
    }
    PGresult *r = db_query(fx->db,
                           "SELECT warned, overdue, due_on::text FROM publication.record "
                           "WHERE id = $1",
                           1, (const char *[]){id6});
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    assert_string_equal(PQgetvalue(r, 0, 2), "2019-10-30"); /* 20 working days */
    PQclear(r);
    assert_int_equal(s_events(fx, "warning"), drafts);
    assert_int_equal(s_events(fx, "overdue"), drafts);
    assert_int_equal(s_events(fx, "expired"), expiring);

    /* Expired: taken down everywhere. */
    pubfx_resp_t resp;
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id8);
    pubfx_get(fx, path, NULL, &resp);
    assert_int_equal(resp.status, 404);
    assert_int_equal(s_total(fx, "/api/v1/decisions?type=penalty"), 0);

    assert_int_equal(workflow_fire(fx->db, WORKFLOW_TIMER_DUE, "999999"), 0);
    assert_int_equal(workflow_fire(fx->db, "other", "x"), 0);
    timers_destroy(&t);
}

/* A record queued again while its earlier entry was being armed (a penalty approved
 * while its draft timers went to Redis) stays queued, and its expiry is armed next. */
static void
test_arming_queue_keeps_a_record_queued_again(void **state)
{
    pubfx_t *fx = *state;
    s_case(fx, AGENCY, 12, "penalty", PUBFX_ORG);
    char id[24], v1[24], v2[24], err[256], st[16], ids[40], vs[40];
    pubfx_record(fx, AGENCY, 12, id);
    pubfx_value(fx, "SELECT v::text FROM publication.arming WHERE id = $1", id, v1, sizeof v1);
    /* Approved meanwhile: queued again, for its expiry. */
    assert_int_equal(db_begin(fx->db), 0);
    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    assert_int_equal(db_commit(fx->db), 0);
    pubfx_value(fx, "SELECT v::text FROM publication.arming WHERE id = $1", id, v2, sizeof v2);
    assert_string_not_equal(v1, v2);
    /* The arming that read the draft's entry takes off only that entry. */
    snprintf(ids, sizeof ids, "{%s}", id);
    snprintf(vs, sizeof vs, "{%s}", v1);
    PGresult *r =
        db_exec_prepared(fx->db, "pub_mark_armed", 2, (const char *[]){ids, vs}, NULL, NULL, 0);
    assert_non_null(r);
    assert_string_equal(PQcmdTuples(r), "0");
    PQclear(r);
    /* The next round arms its expiry and empties the queue. */
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "pubarmtest", err, sizeof err);
    assert_non_null(t);
    assert_true(workflow_arm_new(fx->db, t) >= 1);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.arming"), 0);
    assert_int_equal(workflow_arm_new(fx->db, t), 0);
    timer_fired_t f[64];
    int n = timer_claim_due(t, timer_now_ms(), f, 64), expiries = 0;
    for (int i = 0; i < n; i++) {
        expiries += strcmp(f[i].kind, WORKFLOW_TIMER_EXPIRE) == 0 && strcmp(f[i].key, id) == 0;
        timer_done(t, f[i].kind, f[i].key);
    }
    assert_int_equal(expiries, 1);
    timers_destroy(&t);
}

/* A burst of drafts (more than one batch) is armed in one timer turn: the queue keeps up
 * with any rate of drafting instead of WORKFLOW_ARM_BATCH a second, and with no time
 * budget left the turn still arms one batch. */
static void
test_arming_keeps_up_with_a_burst(void **state)
{
    pubfx_t *fx = *state;
    char err[256];
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), "pubburst", err, sizeof err);
    assert_non_null(t);
    assert_true(workflow_arm_queued(fx->db, t, 10000) >= 0); /* what earlier tests left */
    timer_fired_t f[64];
    int n;
    while ((n = timer_claim_due(t, timer_now_ms(), f, 64)) > 0)
        for (int i = 0; i < n; i++)
            timer_done(t, f[i].kind, f[i].key);
    /* 2.5 batches of drafts of 2019, so every timer is due now. */
    pubfx_sql(fx, "WITH ins AS (INSERT INTO publication.record (agency, case_id, case_no, "
                  "type, decision_no, decision_date, party_name, body, due_on, warn_on) "
                  "SELECT '" AGENCY "', 900000 + g, 'B-' || g, 'licence', '许〔2019〕' || g, "
                  "'2019-09-27', '某公司', '{}', '2019-10-12', '2019-10-10' "
                  "FROM generate_series(1, 1250) g RETURNING id) "
                  "INSERT INTO publication.arming (id) SELECT id FROM ins");
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.arming"), 1250);

    assert_int_equal(workflow_arm_queued(fx->db, t, 0), WORKFLOW_ARM_BATCH);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.arming"),
                     1250 - WORKFLOW_ARM_BATCH);
    assert_int_equal(workflow_arm_queued(fx->db, t, 10000), 1250 - WORKFLOW_ARM_BATCH);
    assert_int_equal(pubfx_count(fx, "SELECT count(*) FROM publication.arming"), 0);
    assert_int_equal(workflow_arm_queued(fx->db, t, 10000), 0);

    /* Every draft's warning and deadline are in Redis, once each. */
    long warns = 0, dues = 0;
    while ((n = timer_claim_due(t, timer_now_ms(), f, 64)) > 0)
        for (int i = 0; i < n; i++) {
            warns += strcmp(f[i].kind, WORKFLOW_TIMER_WARN) == 0;
            dues += strcmp(f[i].kind, WORKFLOW_TIMER_DUE) == 0;
            timer_done(t, f[i].kind, f[i].key);
        }
    assert_int_equal(warns, 1250);
    assert_int_equal(dues, 1250);
    pubfx_sql(fx, "DELETE FROM publication.record WHERE case_no LIKE 'B-%'");
    timers_destroy(&t);
}

static long
s_stat(json_t *o, const char *type, const char *key)
{
    return (long)json_integer_value(
        json_object_get(json_object_get(json_object_get(o, "by_type"), type), key));
}

/* 统计年报 for 2019 H2 matches the cases fed in above. */
static void
test_statistics(void **state)
{
    pubfx_t *fx = *state;
    pubfx_resp_t r;
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2019&half=2", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "period"), "from")),
                        "2019-07-01");
    assert_int_equal(s_stat(o, "licence", "decisions"), 1); /* rejected */
    assert_int_equal(s_stat(o, "licence", "published"), 0);
    assert_int_equal(s_stat(o, "inspection", "published"), 1);
    assert_int_equal(s_stat(o, "inspection", "late"), 1); /* published in 2026, due 2019 */
    assert_int_equal(s_stat(o, "coercion", "overdue"), 1);
    assert_int_equal(s_stat(o, "coercion", "pending"), 1);
    assert_int_equal(s_stat(o, "penalty", "withdrawn"), 2);
    /* Cases 1, 2, 4, 5, 7, 8, 10, 11: eight penalties of 0.2 万元 each. */
    json_t *pen = json_object_get(json_object_get(o, "by_type"), "penalty");
    assert_string_equal(json_string_value(json_object_get(pen, "fines")), "1.6");
    assert_int_equal(s_stat(o, "penalty", "decisions"), 8);
    json_decref(o);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", r.etag);
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2019&half=2", etag, &r);
    assert_int_equal(r.status, 304);
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2099", NULL, &r);
    assert_int_equal(r.status, 400); /* not ended */
    pubfx_get(fx, "/api/v1/statistics?year=2019", NULL, &r);
    assert_int_equal(r.status, 400);
    pubfx_get(fx, "/api/v1/statistics?agency=" AGENCY "&year=2019&half=3", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.cache, "no-store");
    /* The HTML page goes out as every portal page does: the same policy as the search. */
    char csp[256];
    pubfx_get(fx, "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.csp, "frame-ancestors 'none'"));
    snprintf(csp, sizeof csp, "%s", r.csp);
    pubfx_get(fx, "/statistics?agency=" AGENCY "&year=2019&half=2", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.type, "text/html"));
    assert_string_equal(r.csp, csp);
    assert_string_equal(r.cache, "public, max-age=300");
    assert_true(r.etag[0] != '\0');
}

static int
s_setup(void **state)
{
    pubfx_t *fx = pubfx_new("publication", "pub-test");
    fx->at_ms = 1570000000000LL;
    *state = fx;
    return 0;
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft_is_masked_and_unreachable),
        cmocka_unit_test(test_approve_publishes),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_withdrawal_410),
        cmocka_unit_test(test_bad_parameters_400),
        cmocka_unit_test(test_officer_verification),
        cmocka_unit_test(test_agency_page),
        cmocka_unit_test(test_minor_penalty_exempt),
        cmocka_unit_test(test_credit_repair),
        cmocka_unit_test(test_inspection_result),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_arming_queue_keeps_a_record_queued_again), /* after the stats */
        cmocka_unit_test(test_arming_keeps_up_with_a_burst),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, pubfx_teardown);
    curl_global_cleanup();
    return rc;
}
