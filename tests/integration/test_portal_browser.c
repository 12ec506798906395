/* The public portal in a real browser: Debian's chromium, headless, reads the pages of a
 * real sx-publication (beside a real sx-broker, PostgreSQL and Redis) whose records got
 * there the way they do in production — the test plays intake (registry and case events
 * through its outbox and relay), the agency's publisher approves each draft over rpc.
 * It asserts what a member of the public sees: Chinese text, masked persons (name: first
 * character, ID: first 6), escaped names, the search form filled back in and its result
 * leading to the decision page, the agency page (事前公开), the certificate check, a
 * withdrawn decision's page answering 410 with the reason, and a bad parameter's 400. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "bus.h"
#include "jsonmp.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

#define AGENCY   "11620200013926143G"
#define CHROMIUM "/usr/bin/chromium"
#define DOM_MAX  (512 * 1024)

typedef struct {
    tp_world_t w;
    char svc_pub[41];
    char rpc_ep[64];
    int ops_port, portal_port;
    pid_t svc;
    tp_producer_t intake; /* the test plays intake: its outbox and its relay */
    char id_person[24], id_org[24], id_withdrawn[24]; /* published record ids */
    char *dom;                                        /* the last page chromium rendered */
} fx_t;

static fx_t *s_fx;

/* ---- Playing intake ------------------------------------------------------------------ */

static void
s_emit(fx_t *fx, const char *topic, const char *json)
{
    tp_produce(&fx->intake, topic, json);
}

/* Pumps until sql (one value) reads want, or 15 s. */
static void
s_wait_value(fx_t *fx, const char *sql, const char *want)
{
    tp_pg_wait_value(fx->w.pg, sql, want, 15000, &fx->intake, 1);
}

static rpc_reply_t
s_call(fx_t *fx, const char *who, const char *op, const char *json)
{
    return tp_world_call(&fx->w, fx->rpc_ep, fx->svc_pub, who, op, json, 3000, 3);
}

/* case.opened + case.decided for case_id, waits for its draft, approves it as the agency's
 * publisher, and leaves the record's id in id. */
static void
s_publish_case(fx_t *fx, int case_id, const char *type, const char *party, const char *decision,
               char id[24])
{
    char ev[4096], sql[256], body[64];
    snprintf(ev, sizeof ev,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":%s,\"summary\":null,\"opened_on\":\"2026-11-02\"}",
             case_id, case_id, type, party);
    s_emit(fx, "case.opened." AGENCY, ev);
    snprintf(ev, sizeof ev,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"%s\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,%s,\"reviewed\":false,"
             "\"violation_code\":null,\"circumstance\":null}",
             case_id, case_id, type, decision);
    s_emit(fx, "case.decided." AGENCY, ev);
    snprintf(sql, sizeof sql,
             "SELECT state FROM publication.record WHERE agency = '" AGENCY "' AND case_id = %d",
             case_id);
    s_wait_value(fx, sql, "draft");
    snprintf(sql, sizeof sql,
             "SELECT id FROM publication.record WHERE agency = '" AGENCY "' AND case_id = %d",
             case_id);
    PGresult *r = PQexec(fx->w.pg, sql);
    assert_int_equal(PQntuples(r), 1);
    snprintf(id, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    snprintf(body, sizeof body, "{\"record_id\":%s}", id);
    rpc_reply_t rep = s_call(fx, "publisher", "publication.approve", body);
    if (!rep.ok)
        fail_msg("approve %s: %s %s", id, rep.code, rep.en);
    rpc_reply_clear(&rep);
}

/* ---- The browser ---------------------------------------------------------------------- */

/* Renders path of the portal in headless chromium (a fresh profile, at most 45 s) and
 * keeps the serialized DOM in fx->dom. */
static const char *
s_browse(fx_t *fx, const char *path)
{
    char url[1024], profile_arg[700];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fx->portal_port, path);
    char *profile = ts_mkdtemp("chromium");
    snprintf(profile_arg, sizeof profile_arg, "--user-data-dir=%s", profile);
    const char *argv[] = {"timeout",
                          "-k",
                          "5",
                          "45",
                          CHROMIUM,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--disable-quic",
                          "--no-first-run",
                          "--disable-background-networking",
                          "--disable-component-update",
                          "--disable-sync",
                          "--disable-extensions",
                          "--lang=zh-CN",
                          profile_arg,
                          "--dump-dom",
                          url,
                          NULL};
    static char err[16384];
    int64_t t0 = tp_now_ms();
    int rc = ts_run(argv, NULL, fx->dom, DOM_MAX, err, sizeof err);
    if (rc != 0)
        fail_msg("chromium %s: exit %d after %lld ms: %.2000s", url, rc,
                 (long long)(tp_now_ms() - t0), err);
    if (!strstr(fx->dom, "</html>"))
        fail_msg("chromium %s: no document: %.2000s", url, err);
    const char *rm[] = {"rm", "-rf", profile, NULL};
    char o[64], e[64];
    ts_run(rm, NULL, o, sizeof o, e, sizeof e);
    free(profile);
    return fx->dom;
}

static void
s_sees(const fx_t *fx, const char *text)
{
    if (!strstr(fx->dom, text))
        fail_msg("the page does not show \"%s\":\n%.6000s", text, fx->dom);
}

static void
s_not_sees(const fx_t *fx, const char *text)
{
    if (strstr(fx->dom, text))
        fail_msg("the page shows \"%s\":\n%.6000s", text, fx->dom);
}

/* ---- Tests ---------------------------------------------------------------------------- */

/* The search form, filled in the way a browser submits it (every field, empty ones too),
 * comes back filled in, lists the matching decision only, and its link opens the
 * decision page, where the person is masked. */
static void
test_search_round_trip_and_decision(void **state)
{
    fx_t *fx = *state;
    /* 王 = %E7%8E%8B; the empty fields are what a browser sends for untouched inputs. */
    s_browse(fx, "/?party=%E7%8E%8B&uscc=&agency=" AGENCY
                 "&type=penalty&from=2026-11-01&to=2026-11-30");
    s_sees(fx, "<html lang=\"zh-CN\">");
    s_sees(fx, "执法公示查询");
    s_sees(fx, "name=\"party\" maxlength=\"100\" value=\"王\"");
    s_sees(fx, "<option value=\"penalty\" selected=\"\">行政处罚</option>");
    s_sees(fx, "<option value=\"" AGENCY "\" selected=\"\">嘉峪关市市场监督管理局</option>");
    s_sees(fx, "value=\"2026-11-01\"");
    s_sees(fx, "共 1 条记录");
    s_sees(fx, "王**");
    s_sees(fx, "嘉罚〔2026〕1号");
    s_not_sees(fx, "王小明");
    s_not_sees(fx, "嘉许〔2026〕2号"); /* the licence: another type */

    /* Follow the result's link as the user would. */
    char want[64];
    snprintf(want, sizeof want, "href=\"/decisions/%s\"", fx->id_person);
    s_sees(fx, want);
    char path[64];
    snprintf(path, sizeof path, "/decisions/%s", fx->id_person);
    s_browse(fx, path);
    s_sees(fx, "行政处罚决定公示");
    s_sees(fx, "执法机关");
    s_sees(fx, "嘉峪关市市场监督管理局");
    s_sees(fx, "执法对象");
    s_sees(fx, "王**（自然人）");
    s_sees(fx, "620200************");
    s_not_sees(fx, "王小明");
    s_not_sees(fx, "62020019800101001X");
    s_sees(fx, "执法类别");
    s_sees(fx, "执法结论");
    s_sees(fx, "罚款2000元");
    s_sees(fx, "双公示信息");
    s_sees(fx, "行政处罚决定书文号");
    s_sees(fx, "公示截止期");
    s_sees(fx, "<th>证件类型</th><td>身份证</td>"); /* CF_XDR_ZJLX 01, by name */
    s_sees(fx, "2027/11/20");                       /* CF_GSJZQ: 一般 (none given), one year */

    /* The whole list, no filter: the organisation in full, its markup shown as text. */
    s_browse(fx, "/");
    s_sees(fx, "共 2 条记录"); /* the withdrawn one is gone */
    s_sees(fx, "嘉峪关&lt;b&gt;某某&lt;/b&gt;餐饮有限公司");
    s_not_sees(fx, "<b>某某</b>");
}

/* A licence to an organisation: shown in full with its 双公示 licence fields. */
static void
test_licence_page(void **state)
{
    fx_t *fx = *state;
    char path[64];
    snprintf(path, sizeof path, "/decisions/%s", fx->id_org);
    s_browse(fx, path);
    s_sees(fx, "行政许可决定公示");
    s_sees(fx, "嘉峪关&lt;b&gt;某某&lt;/b&gt;餐饮有限公司（法人或其他组织）");
    s_sees(fx, "<th>许可类别</th><td>普通</td>"); /* XK_XKLB 01, by name */
    s_sees(fx, "准予食品经营许可");
}

/* A decision withdrawn after publication: its page is a 410 that gives the reason and
 * nothing of the decision; search no longer finds it. The API says 410 too. */
static void
test_withdrawn_is_410(void **state)
{
    fx_t *fx = *state;
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/decisions/%s", fx->id_withdrawn);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 410);
    s_browse(fx, path);
    s_sees(fx, "该执法决定的公示已撤回");
    s_sees(fx, "确认违法");
    s_sees(fx, "法院判决确认违法");
    s_not_sees(fx, "赵**");
    s_not_sees(fx, "嘉罚〔2026〕3号");
    snprintf(path, sizeof path, "/api/v1/decisions/%s", fx->id_withdrawn);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 410);
    s_browse(fx, "/?party=%E8%B5%B5"); /* 赵 */
    s_sees(fx, "共 0 条记录");
    s_sees(fx, "没有符合条件的公示记录");
    /* Never published, never found: a draft id one past the last. */
    snprintf(path, sizeof path, "/decisions/%lld", strtoll(fx->id_withdrawn, NULL, 10) + 100);
    assert_int_equal(tp_http_get(fx->portal_port, path, buf, sizeof buf), 404);
}

/* 事前公开: the agency, its head, officers with certificate and validity, the matter and
 * its service guide, the random-inspection list, supervision and remedies. */
static void
test_agency_page(void **state)
{
    fx_t *fx = *state;
    s_browse(fx, "/agencies/" AGENCY);
    s_sees(fx, "<h1>嘉峪关市市场监督管理局</h1>");
    s_sees(fx, "李四（局长）");
    s_sees(fx, "市场监管");
    s_sees(fx, "甘JYG001");
    s_sees(fx, "张三");
    s_sees(fx, "嘉峪关市全域");
    s_sees(fx, "2024-01-01 至 2099-12-31");
    s_sees(fx, "有效");
    s_sees(fx, "已过期"); /* 甘JYG002, valid to 2020 */
    s_sees(fx, "食品经营许可（M1）");
    s_sees(fx, "服务指南");
    s_sees(fx, "携带营业执照到政务大厅窗口办理");
    s_sees(fx, "20 个工作日");
    s_sees(fx, "随机抽查事项清单");
    s_sees(fx, "食品经营者监督抽查");
    s_sees(fx, "监督方式");
    s_sees(fx, "救济渠道");
    s_sees(fx, "行政复议");
}

/* 事中公示: the certificate check form and its three answers. */
static void
test_officer_check(void **state)
{
    fx_t *fx = *state;
    s_browse(fx, "/officers");
    s_sees(fx, "执法证件查询");
    s_sees(fx, "name=\"cert_no\"");
    s_browse(fx, "/officers?cert_no=%E7%94%98JYG001"); /* 甘JYG001 */
    s_sees(fx, "<p class=\"ok\" id=\"status\">有效</p>");
    s_sees(fx, "张三");
    s_browse(fx, "/officers?cert_no=%E7%94%98JYG002");
    s_sees(fx, "<p class=\"bad\" id=\"status\">已过期</p>");
    s_browse(fx, "/officers?cert_no=NOSUCH1");
    s_sees(fx, "未查到");
}

/* A bad parameter: 400, the form again, a Chinese message naming the field. */
static void
test_bad_parameter(void **state)
{
    fx_t *fx = *state;
    char buf[65536];
    assert_int_equal(tp_http_get(fx->portal_port, "/?from=2026-02-30", buf, sizeof buf), 400);
    s_browse(fx, "/?from=2026-02-30");
    s_sees(fx, "查询参数有误");
    s_sees(fx, "起始日期（from）");
    s_sees(fx, "<form");
    assert_int_equal(tp_http_get(fx->portal_port, "/?party=%27%20OR%201%3D1--", buf, sizeof buf),
                     400);
    assert_non_null(strstr(buf, "当事人名称（party）"));
    assert_int_equal(tp_http_get(fx->portal_port, "/?page=99999", buf, sizeof buf), 400);
    assert_non_null(strstr(buf, "页码（page）"));
    assert_int_equal(tp_http_get(fx->portal_port, "/?bogus=1", buf, sizeof buf), 400);
    assert_int_equal(tp_http_get(fx->portal_port, "/decisions/01", buf, sizeof buf), 400);
    assert_int_equal(tp_http_get(fx->portal_port, "/agencies/123", buf, sizeof buf), 400);
    assert_int_equal(tp_http_get(fx->portal_port, "/nowhere", buf, sizeof buf), 404);
    assert_non_null(strstr(buf, "未找到"));
    /* The JSON API names the parameter in both languages. */
    assert_int_equal(tp_http_get(fx->portal_port, "/api/v1/decisions?type=x", buf, sizeof buf),
                     400);
    assert_non_null(strstr(buf, "\"parameter\":\"type\""));
    assert_non_null(strstr(buf, "执法类别"));
}

static void
test_sigterm(void **state)
{
    fx_t *fx = *state;
    tp_stop_clean(&fx->svc, 10000);
}

/* ---- Fixture -------------------------------------------------------------------------- */

static void
s_registry(fx_t *fx)
{
    s_emit(fx, "registry.agency." AGENCY,
           "{\"action\":\"put\",\"key\":\"" AGENCY
           "\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
           "\",\"version\":1,\"name\":\"嘉峪关市市场监督管理局\",\"level\":\"city\","
           "\"domain\":\"市场监管\",\"head_name\":\"李四\",\"head_title\":\"局长\"}}");
    s_emit(fx, "registry.officer." AGENCY,
           "{\"action\":\"put\",\"key\":\"甘JYG001\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
           "\",\"version\":1,\"cert_no\":\"甘JYG001\",\"name\":\"张三\",\"valid_from\":"
           "\"2024-01-01\",\"valid_to\":\"2099-12-31\",\"area\":\"嘉峪关市全域\","
           "\"legal_qualified\":false,\"reviewer\":false,\"active\":true}}");
    s_emit(fx, "registry.officer." AGENCY,
           "{\"action\":\"put\",\"key\":\"甘JYG002\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
           "\",\"version\":1,\"cert_no\":\"甘JYG002\",\"name\":\"钱五\",\"valid_from\":"
           "\"2018-01-01\",\"valid_to\":\"2020-12-31\",\"area\":\"雄关区\",\"active\":true}}");
    s_emit(fx, "registry.matter." AGENCY,
           "{\"action\":\"put\",\"key\":\"M1\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
           "\",\"version\":1,\"code\":\"M1\",\"name\":\"食品经营许可\",\"type\":\"licence\","
           "\"legal_basis\":\"《中华人民共和国食品安全法》第三十五条\",\"accepting_body\":"
           "\"政务服务中心市场监管窗口\",\"approving_body\":\"嘉峪关市市场监督管理局\","
           "\"conditions\":\"具有与经营的食品品种、数量相适应的经营场所\",\"time_limit\":20,"
           "\"time_limit_unit\":\"workday\",\"guide\":\"携带营业执照到政务大厅窗口办理\","
           "\"active\":true}}");
    s_emit(fx, "registry.inspection_item." AGENCY,
           "{\"action\":\"put\",\"key\":\"R1\",\"version\":1,\"entry\":{\"agency\":\"" AGENCY
           "\",\"version\":1,\"code\":\"R1\",\"name\":\"食品经营者监督抽查\",\"basis\":"
           "\"《食品安全抽样检验管理办法》\",\"subjects\":\"辖区食品经营者\",\"method\":"
           "\"双随机抽取\",\"active\":true}}");
    s_wait_value(fx, "SELECT count(*) FROM publication.registry_entry WHERE agency = '" AGENCY "'",
                 "5");
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    fx->dom = malloc(DOM_MAX);
    static const char *const ids[][2] = {{"publication", "svc:publication"},
                                         {"intake", "svc:intake"},
                                         {"publisher", "dept:" AGENCY ":publisher"},
                                         {NULL, NULL}};
    tp_world_open(&fx->w, "portalbr", ids, "portalbr-broker");
    char sec[41];
    tp_world_pair(&fx->w, "publication", fx->svc_pub, sec);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();
    fx->portal_port = tp_free_port();

    tp_producer_open(&fx->intake, &fx->w, "intake");

    char portal[32], redis[600];
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env[] = {portal, redis, NULL};
    fx->svc = tp_world_service(&fx->w, "publication", fx->rpc_ep, fx->ops_port, "portalbr", env);
    tp_wait_http(fx->portal_port, "/healthz", 20000);
    tp_pump(&fx->intake, 1, 300);

    s_registry(fx);
    s_publish_case(fx, 1, "penalty",
                   "{\"kind\":\"person\",\"name\":\"王小明\",\"id_type\":\"idcard\","
                   "\"id_no\":\"62020019800101001X\"}",
                   "\"decision_no\":\"嘉罚〔2026〕1号\",\"decision_date\":\"2026-11-20\","
                   "\"category\":\"罚款\",\"content\":\"罚款2000元\",\"fine\":\"0.2\","
                   "\"confiscation\":\"0\",\"legal_basis\":\"《食品安全法》第一百二十六条\"",
                   fx->id_person);
    s_publish_case(fx, 2, "licence",
                   "{\"kind\":\"org\",\"name\":\"嘉峪关<b>某某</b>餐饮有限公司\",\"id_type\":"
                   "\"uscc\",\"id_no\":\"91620200MA71234567\"}",
                   "\"decision_no\":\"嘉许〔2026〕2号\",\"decision_date\":\"2026-11-19\","
                   "\"category\":\"普通\",\"content\":\"准予食品经营许可\",\"fine\":\"0\","
                   "\"confiscation\":\"0\",\"legal_basis\":\"《食品安全法》第三十五条\"",
                   fx->id_org);
    s_publish_case(fx, 3, "penalty",
                   "{\"kind\":\"person\",\"name\":\"赵六\",\"id_type\":\"idcard\","
                   "\"id_no\":\"620201199001010011\"}",
                   "\"decision_no\":\"嘉罚〔2026〕3号\",\"decision_date\":\"2026-11-18\","
                   "\"category\":\"警告\",\"content\":\"警告\",\"fine\":\"0\","
                   "\"confiscation\":\"0\",\"legal_basis\":\"《食品安全法》\"",
                   fx->id_withdrawn);
    s_emit(fx, "case.revoked." AGENCY,
           "{\"case_id\":3,\"case_no\":\"C-3\",\"type\":\"penalty\",\"matter_code\":\"M1\","
           "\"state\":\"revoked\",\"kind\":\"confirm_illegal\",\"reason\":\"法院判决确认违法\","
           "\"revoked_on\":\"2026-11-26\",\"decision_no\":\"嘉罚〔2026〕3号\",\"version\":1}");
    s_wait_value(fx, "SELECT count(*) FROM publication.record WHERE state = 'withdrawn'", "1");
    s_wait_value(fx, "SELECT count(*) FROM publication.record WHERE state = 'published'", "2");
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    if (fx->svc)
        tp_stop(fx->svc, SIGTERM, 10000);
    tp_producer_close(&fx->intake);
    tp_world_close(&fx->w);
    free(fx->dom);
    free(fx);
    s_fx = NULL;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_round_trip_and_decision),
        cmocka_unit_test(test_licence_page),
        cmocka_unit_test(test_withdrawn_is_410),
        cmocka_unit_test(test_agency_page),
        cmocka_unit_test(test_officer_check),
        cmocka_unit_test(test_bad_parameter),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests_name("portal_browser", tests, s_setup, s_teardown);
}
