/* sgs_record (common/): the 双公示 mapping and its checks (sgs-fields.md), the status
 * changes (撤销, 信用修复) and the export's columns. Pure: no servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sgs_record.h"
#include "../services/creditpush/fixtures.h"

/* Builds from rec (consumed); asserts success. */
static json_t *
s_build_ok(json_t *rec, const char *want_kind)
{
    char reason[SGS_REASON_MAX] = "";
    const char *kind = NULL;
    json_t *d = sgs_record_build(rec, &kind, reason);
    if (!d)
        print_error("reason: %s\n", reason);
    assert_non_null(d);
    assert_string_equal(kind, want_kind);
    json_decref(rec);
    return d;
}

/* Sets field to value in rec.sgs (NULL deletes it), builds, expects reason to start with want. */
static void
s_build_bad(json_t *rec, const char *field, const char *value, const char *want)
{
    json_t *sgs = json_object_get(rec, "sgs");
    if (value)
        json_object_set_new(sgs, field, json_string(value));
    else
        json_object_del(sgs, field);
    char reason[SGS_REASON_MAX] = "";
    const char *kind = NULL;
    json_t *d = sgs_record_build(rec, &kind, reason);
    assert_null(d);
    if (strncmp(reason, want, strlen(want)) != 0)
        print_error("reason: %s, want %s\n", reason, want);
    assert_int_equal(strncmp(reason, want, strlen(want)), 0);
    json_decref(rec);
}

static void
test_penalty_valid(void **state)
{
    (void)state;
    json_t *d = s_build_ok(fx_penalty(1, "食品安全"), "penalty");
    assert_string_equal(json_string_value(json_object_get(d, "CF_NR_FK")), "0.2");
    assert_null(json_object_get(d, "CF_NR_WFFF")); /* 0 万元 left out */
    assert_true(sgs_record_key_domain(d));
    assert_false(sgs_record_serious(d));
    json_object_set_new(d, "CF_GSJZQ", json_string("2029/05/06"));
    assert_true(sgs_record_serious(d));
    json_decref(d);
    d = s_build_ok(fx_penalty(2, "城市管理"), "penalty");
    json_object_set_new(d, "CF_WFXW", json_string("占道经营"));
    json_object_set_new(d, "CF_SY", json_string("占道经营"));
    json_object_set_new(d, "CF_YJ", json_string("《城市市容和环境卫生管理条例》"));
    assert_true(sgs_record_key_domain(d)); /* 环境卫生 */
    json_object_set_new(d, "CF_YJ", json_string("《城市道路管理条例》"));
    assert_false(sgs_record_key_domain(d));
    json_decref(d);
}

static void
test_licence_valid(void **state)
{
    (void)state;
    json_t *d = s_build_ok(fx_licence(1), "licence");
    char reason[SGS_REASON_MAX];
    assert_int_equal(sgs_record_check(d, "licence", reason), 0);
    assert_int_equal(sgs_record_check(d, "penalty", reason), -1); /* XK_ fields unknown */
    json_decref(d);
}

static void
test_penalty_invalid(void **state)
{
    (void)state;
    s_build_bad(fx_penalty(1, "x"), "CF_WSH", NULL, "CF_WSH: required");
    s_build_bad(fx_penalty(1, "x"), "CF_WSH", "", "CF_WSH: required");
    s_build_bad(fx_penalty(1, "x"), "CF_JDRQ", "2026-05-06", "CF_JDRQ: not a real date");
    s_build_bad(fx_penalty(1, "x"), "CF_JDRQ", "2026/02/30", "CF_JDRQ: not a real date");
    s_build_bad(fx_penalty(1, "x"), "CF_GSJZQ", "2026/05/05", "CF_GSJZQ: before CF_JDRQ");
    s_build_bad(fx_penalty(1, "x"), "CF_NR_FK", "2000元", "CF_NR_FK: not an amount");
    s_build_bad(fx_penalty(1, "x"), "CF_NR_FK", "-1", "CF_NR_FK: not an amount");
    s_build_bad(fx_penalty(1, "x"), "CF_NR_FK", "0.1234567", "CF_NR_FK: not an amount");
    s_build_bad(fx_penalty(1, "x"), "CF_CFLB", "罚款;拘役", "CF_CFLB: not");
    s_build_bad(fx_penalty(1, "x"), "CF_CFJGDM", "11620200013926143Y", "CF_CFJGDM: ");
    s_build_bad(fx_penalty(1, "x"), "CF_XDR_SHXYM", NULL, "CF_XDR_SHXYM: required");
    s_build_bad(fx_penalty(1, "x"), "CF_XDR_LB", "公司", "CF_XDR_LB: not");
    s_build_bad(fx_penalty(1, "x"), "CF_XKWS", "x", "CF_XKWS: unknown field");
    s_build_bad(fx_penalty(1, "x"), "CF_XDR_ZZJG", "12345678-1", "CF_XDR_ZZJG: ");
    json_t *r = fx_penalty(1, "x");
    json_object_set_new(json_object_get(r, "sgs"), "CF_NR", json_integer(3));
    s_build_bad(r, "CF_SY", "x", "CF_NR: not a string");
    /* 个体工商户 without a USCC: 17 zeros + X, then its 工商注册号 is required. */
    r = fx_penalty(1, "x");
    json_object_set_new(json_object_get(r, "sgs"), "CF_XDR_LB", json_string("个体工商户"));
    s_build_bad(r, "CF_XDR_SHXYM", "00000000000000000X", "CF_XDR_GSZC: required");
}

static void
test_licence_invalid(void **state)
{
    (void)state;
    s_build_bad(fx_licence(1), "XK_XDR_ZJLX", "06", "XK_XDR_ZJLX: not a 证件类型");
    s_build_bad(fx_licence(1), "XK_XDR_ZJHM", NULL, "XK_XDR_ZJHM: required for 自然人");
    s_build_bad(fx_licence(1), "XK_XKLB", "普通", "XK_XKLB: not a 许可类别");
    s_build_bad(fx_licence(1), "XK_YXQZI", "2026/01/01", "XK_YXQZI: before XK_YXQZ");
    json_t *r = fx_licence(1);
    json_object_set_new(r, "type", json_string("coercion"));
    s_build_bad(r, "XK_NR", "x", "record.type: not a penalty or licence");
    r = fx_licence(1);
    json_object_del(r, "sgs");
    char reason[SGS_REASON_MAX];
    const char *kind;
    assert_null(sgs_record_build(r, &kind, reason));
    assert_string_equal(reason, "record.sgs: missing");
    json_decref(r);
}

static void
test_withdrawal(void **state)
{
    (void)state;
    char reason[SGS_REASON_MAX];
    json_t *w = sgs_record_withdrawal("penalty", "嘉市监罚〔2026〕1号", "行政复议撤销");
    assert_int_equal(sgs_record_check_withdrawal(w, "penalty", reason), 0);
    assert_string_equal(json_string_value(json_object_get(w, "CF_ZT")), "1");
    assert_int_equal(sgs_record_check_withdrawal(w, "licence", reason), -1);
    json_object_set_new(w, "CF_ZT", json_string("0"));
    assert_int_equal(sgs_record_check_withdrawal(w, "penalty", reason), -1);
    assert_string_equal(reason, "CF_ZT: must be 1 (撤销)");
    json_decref(w);
    w = sgs_record_withdrawal("licence", "嘉许〔2026〕1号", "撤回");
    assert_int_equal(sgs_record_check_withdrawal(w, "licence", reason), 0);
    json_decref(w);
}

static void
test_repair(void **state)
{
    (void)state;
    char reason[SGS_REASON_MAX];
    json_t *r = sgs_record_repair("嘉市监罚〔2026〕1号", "2026/11/27", "已履行并整改");
    assert_int_equal(sgs_record_check_repair(r, "penalty", reason), 0);
    assert_string_equal(json_string_value(json_object_get(r, "CF_ZT")), "3");
    assert_string_equal(json_string_value(json_object_get(r, "BZ")), "信用修复: 已履行并整改");
    assert_int_equal(sgs_record_check_repair(r, "licence", reason), -1);
    assert_string_equal(reason, "kind: a repair (信用修复) is for penalties only");
    /* A repair is not a withdrawal, nor the other way round. */
    assert_int_equal(sgs_record_check_withdrawal(r, "penalty", reason), -1);
    json_object_set_new(r, "CF_GSJZQ", json_string("2026-11-27"));
    assert_int_equal(sgs_record_check_repair(r, "penalty", reason), -1);
    assert_string_equal(reason, "CF_GSJZQ: not a real date YYYY/MM/DD");
    json_object_set_new(r, "CF_GSJZQ", json_string("2026/11/27"));
    json_object_set_new(r, "CF_ZT", json_string("1"));
    assert_int_equal(sgs_record_check_repair(r, "penalty", reason), -1);
    assert_string_equal(reason, "CF_ZT: must be 3 (信用修复)");
    json_decref(r);
    json_t *w = sgs_record_withdrawal("penalty", "嘉市监罚〔2026〕1号", "x");
    assert_int_equal(sgs_record_check_repair(w, "penalty", reason), -1);
    json_decref(w);
    /* A reason of 2000 bytes (publication's limit) behind the prefix: BZ is cut to 2000
     * bytes on a character boundary, and the repair stays valid. */
    char long_reason[2001] = "";
    for (int i = 0; i < 666; i++)
        strcat(long_reason, "修");
    r = sgs_record_repair("嘉市监罚〔2026〕1号", "2026/11/27", long_reason);
    assert_non_null(r);
    assert_int_equal(sgs_record_check_repair(r, "penalty", reason), 0);
    size_t bz = json_string_length(json_object_get(r, "BZ"));
    assert_true(bz <= 2000 && bz > 1990);
    json_decref(r);
}

/* A key from outside in a reason: cut to 64 bytes on a character boundary, so the reason
 * is always valid text and keeps its "FIELD: why" shape. */
static void
test_reason_of_a_long_key(void **state)
{
    (void)state;
    char key[400] = "";
    for (int i = 0; i < 100; i++)
        strcat(key, "键"); /* 3 bytes each */
    json_t *d = s_build_ok(fx_penalty(1, "x"), "penalty");
    json_object_set_new(d, key, json_string("v"));
    char reason[SGS_REASON_MAX];
    assert_int_equal(sgs_record_check(d, "penalty", reason), -1);
    assert_int_equal(strncmp(reason, key, 63), 0);
    assert_string_equal(reason + 63, "...: unknown field");
    json_t *text = json_string(reason);
    assert_non_null(text); /* valid UTF-8 */
    json_decref(text);
    json_decref(d);
}

/* The export's columns cover every field a record may carry, in the standard's names. */
static void
test_columns(void **state)
{
    (void)state;
    const char *const *cf = sgs_record_columns("penalty");
    const char *const *xk = sgs_record_columns("licence");
    assert_non_null(cf);
    assert_non_null(xk);
    assert_null(sgs_record_columns("coercion"));
    assert_string_equal(cf[0], "CF_XDR_MC");
    assert_string_equal(xk[0], "XK_XDR_MC");
    json_t *d = s_build_ok(fx_penalty(1, "x"), "penalty");
    json_object_set_new(d, "CF_FRDB", json_string("李四")); /* the prefixed form is read too */
    char reason[SGS_REASON_MAX];
    assert_int_equal(sgs_record_check(d, "penalty", reason), 0);
    assert_string_equal(sgs_record_value(d, "penalty", "FRDB"), "李四");
    const char *key;
    json_t *val;
    json_object_foreach(d, key, val)
    {
        bool found = false;
        for (const char *const *c = cf; *c && !found; c++)
            found = sgs_record_value(d, "penalty", *c) == json_string_value(val);
        if (!found)
            fail_msg("%s has no column", key);
    }
    json_decref(d);
    d = s_build_ok(fx_licence(1), "licence");
    json_object_foreach(d, key, val)
    {
        bool found = false;
        for (const char *const *c = xk; *c && !found; c++)
            found = sgs_record_value(d, "licence", *c) == json_string_value(val);
        if (!found)
            fail_msg("%s has no column", key);
    }
    json_decref(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_penalty_valid),        cmocka_unit_test(test_licence_valid),
        cmocka_unit_test(test_penalty_invalid),      cmocka_unit_test(test_licence_invalid),
        cmocka_unit_test(test_withdrawal),           cmocka_unit_test(test_repair),
        cmocka_unit_test(test_reason_of_a_long_key), cmocka_unit_test(test_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
