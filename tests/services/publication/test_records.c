/* records, sgs and the deadlines: masking, the 双公示 fields, 7/20 working days across the
 * 2019 National Day holiday. Pure: no servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/publication/records.h"
#include "../../../services/publication/sgs.h"
#include "../../../services/publication/workflow.h"

static pub_case_t
s_case(const char *type, const char *kind)
{
    pub_case_t c = {0};
    snprintf(c.agency, sizeof c.agency, "11620200013926143G");
    snprintf(c.agency_name, sizeof c.agency_name, "嘉峪关市市场监督管理局");
    c.case_id = 7;
    snprintf(c.case_no, sizeof c.case_no, "JSJ-2019-001");
    snprintf(c.type, sizeof c.type, "%s", type);
    snprintf(c.party_kind, sizeof c.party_kind, "%s", kind);
    if (strcmp(kind, "person") == 0) {
        snprintf(c.party_name, sizeof c.party_name, "张三丰");
        snprintf(c.party_id_type, sizeof c.party_id_type, "idcard");
        snprintf(c.party_id_no, sizeof c.party_id_no, "62020019800101001X");
    } else {
        snprintf(c.party_name, sizeof c.party_name, "嘉峪关某某商贸有限公司");
        snprintf(c.party_id_type, sizeof c.party_id_type, "uscc");
        snprintf(c.party_id_no, sizeof c.party_id_no, "91620200MA71234563");
    }
    snprintf(c.decision_no, sizeof c.decision_no, "嘉市监罚〔2019〕12号");
    c.decision_date = date_from_ymd(2019, 9, 27);
    snprintf(c.category, sizeof c.category, "警告;罚款");
    snprintf(c.content, sizeof c.content, "警告，罚款2000元");
    snprintf(c.legal_basis, sizeof c.legal_basis, "《食品安全法》第一百二十六条");
    snprintf(c.fine, sizeof c.fine, "0.2");
    snprintf(c.confiscation, sizeof c.confiscation, "0");
    return c;
}

static const char *
s_str(json_t *o, const char *path)
{
    /* "a.b" */
    char buf[64];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot = strchr(buf, '.');
    if (dot) {
        *dot = '\0';
        o = json_object_get(o, buf);
        path = path + (dot - buf) + 1;
    }
    json_t *v = json_object_get(o, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
test_person_is_masked(void **state)
{
    (void)state;
    pub_case_t c = s_case("penalty", "person");
    json_t *o = records_public(&c);
    assert_non_null(o);
    assert_string_equal(s_str(o, "party.name"), "张**");
    assert_string_equal(s_str(o, "party.id_no"), "620200************");
    assert_string_equal(s_str(o, "sgs.CF_XDR_MC"), "张**");
    assert_string_equal(s_str(o, "sgs.CF_XDR_ZJHM"), "620200************");
    assert_string_equal(s_str(o, "sgs.CF_XDR_ZJLX"), "01");
    assert_string_equal(s_str(o, "sgs.CF_XDR_LB"), "自然人");
    /* The full name and number appear nowhere in the public record. */
    char *text = json_dumps(o, 0);
    assert_null(strstr(text, "张三丰"));
    assert_null(strstr(text, "62020019800101001X"));
    assert_null(strstr(text, "19800101"));
    free(text);
    json_decref(o);
}

static void
test_org_in_full(void **state)
{
    (void)state;
    pub_case_t c = s_case("penalty", "org");
    json_t *o = records_public(&c);
    assert_string_equal(s_str(o, "party.name"), "嘉峪关某某商贸有限公司");
    assert_string_equal(s_str(o, "sgs.CF_XDR_SHXYM"), "91620200MA71234563");
    assert_string_equal(s_str(o, "sgs.CF_XDR_LB"), "法人及非法人组织");
    pub_party_t p;
    records_mask_party(&c, &p);
    assert_string_equal(p.uscc, "91620200MA71234563");
    json_decref(o);
}

static void
test_public_fields(void **state)
{
    (void)state;
    pub_case_t c = s_case("penalty", "org");
    json_t *o = records_public(&c);
    assert_string_equal(s_str(o, "agency.name"), "嘉峪关市市场监督管理局"); /* 执法机关 */
    assert_string_equal(s_str(o, "type_zh"), "行政处罚");                   /* 执法类别 */
    assert_string_equal(s_str(o, "conclusion"), "警告，罚款2000元");        /* 执法结论 */
    assert_string_equal(s_str(o, "decision_date"), "2019-09-27");
    json_decref(o);
}

static void
test_penalty_sgs(void **state)
{
    (void)state;
    pub_case_t c = s_case("penalty", "org");
    snprintf(c.circumstance, sizeof c.circumstance, "serious");
    json_t *o = records_public(&c);
    assert_string_equal(s_str(o, "sgs.CF_WSH"), "嘉市监罚〔2019〕12号");
    assert_string_equal(s_str(o, "sgs.CF_CFLB"), "警告;罚款");
    assert_string_equal(s_str(o, "sgs.CF_NR_FK"), "0.2"); /* 万元: 2000 yuan */
    assert_string_equal(s_str(o, "sgs.CF_JDRQ"), "2019/09/27");
    assert_string_equal(s_str(o, "sgs.CF_YXQ"), "2099/12/31");
    assert_string_equal(s_str(o, "sgs.CF_GSJZQ"), "2022/09/27"); /* 严重: 3 years */
    assert_string_equal(s_str(o, "sgs.CF_CFJGDM"), "11620200013926143G");
    assert_string_equal(s_str(o, "sgs.CF_CFJG"), "嘉峪关市市场监督管理局");
    assert_null(s_str(o, "sgs.XK_WSH"));
    json_decref(o);
}

static void
test_licence_sgs(void **state)
{
    (void)state;
    pub_case_t c = s_case("licence", "org");
    snprintf(c.category, sizeof c.category, "登记");
    json_t *o = records_public(&c);
    assert_string_equal(s_str(o, "sgs.XK_XKLB"), "05");
    assert_string_equal(s_str(o, "sgs.XK_JDRQ"), "2019/09/27");
    assert_string_equal(s_str(o, "sgs.XK_YXQZI"), "2099/12/31");
    assert_string_equal(s_str(o, "sgs.XK_XDR_MC"), "嘉峪关某某商贸有限公司");
    assert_null(s_str(o, "sgs.CF_WSH"));
    json_decref(o);
}

static void
test_other_types_no_sgs(void **state)
{
    (void)state;
    pub_case_t c = s_case("coercion", "person");
    json_t *o = records_public(&c);
    assert_true(json_is_null(json_object_get(o, "sgs")));
    assert_string_equal(s_str(o, "party.name"), "张**");
    json_decref(o);
}

static void
test_publish_until(void **state)
{
    (void)state;
    char b[11];
    date_t d = date_from_ymd(2024, 2, 29);
    assert_string_equal(sgs_date(sgs_publish_until(d, "minor"), b), "2024/05/29");
    assert_string_equal(sgs_date(sgs_publish_until(d, "general"), b), "2025/02/28");
    assert_string_equal(sgs_date(sgs_publish_until(d, ""), b), "2025/02/28");
    assert_string_equal(sgs_date(sgs_publish_until(d, "serious"), b), "2027/02/28");
    assert_string_equal(sgs_date(sgs_repair_from(d, "general"), b), "2024/05/29");
    assert_string_equal(sgs_date(sgs_repair_from(d, "serious"), b), "2025/02/28");
    assert_string_equal(sgs_xklb("特许经营"), "02");
    assert_string_equal(sgs_xklb("xyz"), "06");
}

static void
test_utf8_cut(void **state)
{
    (void)state;
    char b[8];
    records_utf8_cut(b, sizeof b, "张三丰", 9); /* 7 bytes fit: two characters */
    assert_string_equal(b, "张三");
    records_utf8_cut(b, sizeof b, "abc", 3);
    assert_string_equal(b, "abc");
    records_utf8_cut(b, 3, "张", 3);
    assert_string_equal(b, "");
}

static workday_t *s_cal;

static void
s_due(const char *type, const char *want_due, const char *want_warn)
{
    date_t due, warn;
    char a[11], b[11];
    assert_int_equal(workflow_due(s_cal, type, date_from_ymd(2019, 9, 27), &due, &warn, NULL), 0);
    assert_string_equal(date_format(due, a), want_due);
    assert_string_equal(date_format(warn, b), want_warn);
}

/* 2019 National Day: Oct 1-7 off, Sun Sep 29 and Sat Oct 12 adjusted workdays. */
static void
test_deadlines_national_day_2019(void **state)
{
    (void)state;
    s_due("penalty", "2019-10-12", "2019-10-10");
    s_due("licence", "2019-10-12", "2019-10-10");
    s_due("coercion", "2019-10-30", "2019-10-28");
    s_due("inspection", "2019-10-30", "2019-10-28");
    /* The timers fire at 00:00 CST. */
    assert_int_equal(workflow_day_ms(date_from_ymd(2019, 10, 12)), INT64_C(1570809600000));
}

static int
s_setup(void **state)
{
    (void)state;
    char err[256];
    s_cal = workday_load_default(err, sizeof err);
    if (!s_cal)
        fprintf(stderr, "calendar: %s\n", err);
    return s_cal ? 0 : -1;
}

static int
s_teardown(void **state)
{
    (void)state;
    workday_destroy(&s_cal);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_person_is_masked), cmocka_unit_test(test_org_in_full),
        cmocka_unit_test(test_public_fields),    cmocka_unit_test(test_penalty_sgs),
        cmocka_unit_test(test_licence_sgs),      cmocka_unit_test(test_other_types_no_sgs),
        cmocka_unit_test(test_publish_until),    cmocka_unit_test(test_deadlines_national_day_2019),
        cmocka_unit_test(test_utf8_cut),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
