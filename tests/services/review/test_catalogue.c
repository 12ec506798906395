/* catalogue, discretion_judge, reviewers_understaffed and the opinion's decoding and
 * rendering: the pure rules of sx-review, each criterion on both sides of its threshold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/review/catalogue.h"
#include "../../../services/review/discretion.h"
#include "../../../services/review/opinion.h"
#include "../../../services/review/reviewers.h"
#include "evmsg.h"
#include "jsonmp.h"

#define M(x) ((int64_t)((x)*1000000.0 + 0.5)) /* 万元 -> scaled */

static const catalogue_rule_t s_any = {"R", NULL,    NULL,    NULL,    false,
                                       0,   CAT_ANY, CAT_ANY, CAT_ANY, CAT_ANY};

static catalogue_case_t
s_case(void)
{
    return (catalogue_case_t){"penalty", "市场监管", "city", M(0.5), false, false, false, false};
}

static bool
s_match(catalogue_rule_t r, catalogue_case_t c, char *why)
{
    return catalogue_rule_matches(&r, &c, why, 200);
}

static void
test_no_criterion_matches_all(void **state)
{
    (void)state;
    char why[200] = "";
    assert_true(s_match(s_any, s_case(), why));
}

static void
test_case_type(void **state)
{
    (void)state;
    char why[200];
    catalogue_rule_t r = s_any;
    r.case_type = "penalty";
    assert_true(s_match(r, s_case(), why));
    r.case_type = "licence";
    assert_false(s_match(r, s_case(), why));
    assert_string_equal(why, "case type penalty, not licence");
}

static void
test_domain_and_level(void **state)
{
    (void)state;
    char why[200];
    catalogue_rule_t r = s_any;
    r.domain = "市场监管";
    assert_true(s_match(r, s_case(), why));
    r.domain = "生态环境";
    assert_false(s_match(r, s_case(), why));
    assert_string_equal(why, "domain 市场监管, not 生态环境");
    r = s_any;
    r.level = "city";
    assert_true(s_match(r, s_case(), why));
    r.level = "county";
    assert_false(s_match(r, s_case(), why));
    catalogue_case_t unknown = s_case();
    unknown.level = NULL; /* an agency review never heard of */
    r.level = "city";
    assert_false(s_match(r, unknown, why));
}

static void
test_amount_threshold_both_sides(void **state)
{
    (void)state;
    char why[200];
    catalogue_rule_t r = s_any;
    r.has_amount = true;
    r.amount_threshold = M(1);
    catalogue_case_t c = s_case();
    c.amount = M(1) - 1; /* 0.999999 */
    assert_false(s_match(r, c, why));
    assert_string_equal(why, "amount 0.999999 below threshold 1");
    c.amount = M(1); /* equal: fine + confiscation >= threshold */
    assert_true(s_match(r, c, why));
    c.amount = M(1.5);
    assert_true(s_match(r, c, why));
    r.amount_threshold = 0;
    c.amount = 0;
    assert_true(s_match(r, c, why));
}

static void
test_flags_both_sides(void **state)
{
    (void)state;
    static const char *const names[4] = {"hearing", "major_public_interest", "social_risk",
                                         "complex"};
    for (int k = 0; k < 4; k++) {
        catalogue_rule_t r = s_any;
        cat_tri_t *rt[4] = {&r.hearing, &r.major_public_interest, &r.social_risk, &r.complex};
        *rt[k] = CAT_TRUE;
        catalogue_case_t c = s_case();
        bool *cv[4] = {&c.hearing, &c.major_public_interest, &c.social_risk, &c.complex};
        char why[200], want[64];
        assert_false(s_match(r, c, why));
        snprintf(want, sizeof want, "%s not set", names[k]);
        assert_string_equal(why, want);
        *cv[k] = true;
        assert_true(s_match(r, c, why));
        *rt[k] = CAT_FALSE; /* a rule for decisions without it */
        assert_false(s_match(r, c, why));
        *cv[k] = false;
        assert_true(s_match(r, c, why));
    }
}

static void
test_evaluate_reason(void **state)
{
    (void)state;
    catalogue_rule_t rules[3] = {s_any, s_any, s_any};
    rules[0].id = "R-AMOUNT";
    rules[0].has_amount = true;
    rules[0].amount_threshold = M(1);
    rules[1].id = "R-HEARING";
    rules[1].hearing = CAT_TRUE;
    rules[2].id = "R-LIC";
    rules[2].case_type = "licence";
    size_t matched[3], n = 9;
    char reason[1000];
    catalogue_case_t c = s_case();
    assert_false(catalogue_evaluate(rules, 3, &c, matched, &n, reason, sizeof reason));
    assert_int_equal(n, 0);
    assert_string_equal(reason,
                        "no rule of 3 matches: R-AMOUNT: amount 0.5 below threshold 1; "
                        "R-HEARING: hearing not set; R-LIC: case type penalty, not licence");
    c.hearing = true;
    c.amount = M(2);
    assert_true(catalogue_evaluate(rules, 3, &c, matched, &n, reason, sizeof reason));
    assert_int_equal(n, 2);
    assert_string_equal(reason, "matched: R-AMOUNT, R-HEARING");
    assert_false(catalogue_evaluate(rules, 0, &c, matched, &n, reason, sizeof reason));
    assert_string_equal(reason, "the agency's review catalogue is empty");
}

static void
test_discretion_band_and_recent(void **state)
{
    (void)state;
    char note[DISC_NOTE_MAX];
    assert_int_equal(discretion_judge(M(0.5), true, M(0.5), M(2), NULL, 0, note, sizeof note), 0);
    assert_int_equal(discretion_judge(M(2), true, M(0.5), M(2), NULL, 0, note, sizeof note), 0);
    assert_int_equal(discretion_judge(M(2) + 1, true, M(0.5), M(2), NULL, 0, note, sizeof note),
                     DISC_OUT_OF_BAND);
    assert_non_null(strstr(note, "above the band 0.5 to 2"));
    assert_int_equal(discretion_judge(M(0.4), true, M(0.5), M(2), NULL, 0, note, sizeof note),
                     DISC_OUT_OF_BAND);
    assert_int_equal(discretion_judge(M(5), false, 0, 0, NULL, 0, note, sizeof note), 0);
    int64_t recent[3] = {M(1), M(1), M(1)};
    /* within half the mean on both sides, then beyond */
    assert_int_equal(discretion_judge(M(1.5), true, M(0.5), M(2), recent, 3, note, sizeof note), 0);
    assert_int_equal(discretion_judge(M(0.5), true, M(0.5), M(2), recent, 3, note, sizeof note), 0);
    assert_int_equal(discretion_judge(M(1.6), true, M(0.5), M(2), recent, 3, note, sizeof note),
                     DISC_UNLIKE_RECENT);
    assert_non_null(strstr(note, "同案不同罚"));
    assert_int_equal(discretion_judge(M(3), true, M(0.5), M(2), recent, 3, note, sizeof note),
                     DISC_OUT_OF_BAND | DISC_UNLIKE_RECENT);
    /* too few recent decisions to compare */
    assert_int_equal(discretion_judge(M(1.9), true, M(0.5), M(2), recent, 2, note, sizeof note), 0);
}

static void
test_staffing_threshold(void **state)
{
    (void)state;
    assert_false(reviewers_understaffed(1, 20)); /* exactly 5% */
    assert_true(reviewers_understaffed(1, 21));
    assert_true(reviewers_understaffed(0, 1));
    assert_false(reviewers_understaffed(0, 0));
}

/* Decodes the JSON body with opinion_decode. */
static int
s_decode(const char *json, opinion_t *op, int *missing, char *errbuf, char *why)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr;
    char wrapped[4096];
    snprintf(wrapped, sizeof wrapped, "{\"body\":%s}", json);
    assert_int_equal(jsonmp_from_json(wrapped, strlen(wrapped), "", 1, &sb, &jerr), 0);
    evmsg_t *msg = NULL;
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_decode_map(sb.data, sb.size, &msg, &err), 0);
    evmsg_map_t root = evmsg_data(msg, &err), body;
    evmsg_map_map(&root, "body", EVMSG_REQUIRED, &body);
    int rc = opinion_decode(&body, op, missing, &err, why, 256);
    evmsg_err_str(&err, errbuf, 256);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

#define P(k, v) "\"" k "\":{\"pass\":" v ",\"comment\":\"" k " ok\"}"
#define ALL_PASS                                                                                   \
    P("subject", "true")                                                                           \
    "," P("facts", "true") "," P("basis", "true") "," P("discretion", "true") "," P(               \
        "procedure", "true") "," P("documents", "true") "," P("referral", "true")

static void
test_opinion_points(void **state)
{
    (void)state;
    opinion_t op;
    int missing;
    char err[256], why[256];
    assert_int_equal(s_decode("{\"task_id\":1,\"reviewer\":\"R1\",\"verdict\":\"approve\","
                              "\"summary\":\"<同意>\",\"points\":{" ALL_PASS "}}",
                              &op, &missing, err, why),
                     0);
    assert_int_equal(op.verdict, OPINION_APPROVE);
    assert_string_equal(op.comment[1], "facts ok");

    /* a missing point is named */
    assert_int_equal(s_decode("{\"verdict\":\"approve\",\"points\":{" P("subject", "true") "," P(
                                  "basis", "true") "}}",
                              &op, &missing, err, why),
                     -1);
    assert_int_equal(missing, 1);
    assert_string_equal(err, "body.points.facts: missing");
    assert_string_equal(opinion_point_names[missing], "事实是否清楚");

    /* the verdict must agree with the points */
    const char *one_fails =
        "{\"verdict\":\"approve\",\"points\":{" P("subject", "false") "," P("facts", "true") "," P(
            "basis", "true") "," P("discretion",
                                   "true") "," P("procedure",
                                                 "true") "," P("documents",
                                                               "true") "," P("referral",
                                                                             "true") "}}";
    assert_int_equal(s_decode(one_fails, &op, &missing, err, why), -2);
    assert_non_null(strstr(why, "1 failed"));
    assert_int_equal(
        s_decode("{\"verdict\":\"problems\",\"points\":{" ALL_PASS "}}", &op, &missing, err, why),
        -2);
    assert_int_equal(
        s_decode("{\"verdict\":\"refer\",\"points\":{" ALL_PASS "}}", &op, &missing, err, why), -2);
    assert_int_equal(
        s_decode("{\"verdict\":\"maybe\",\"points\":{" ALL_PASS "}}", &op, &missing, err, why), -1);
    assert_int_equal(missing, -1);
    /* a failed point says why */
    assert_int_equal(
        s_decode("{\"verdict\":\"problems\",\"points\":{" P(
                     "subject", "true") ","
                                        "\"facts\":{\"pass\":false}," P("basis", "true") "," P(
                                            "discretion",
                                            "true") "," P("procedure",
                                                          "true") "," P("documents",
                                                                        "true") "," P("referral",
                                                                                      "true") "}}",
                 &op, &missing, err, why),
        -3);
    assert_int_equal(missing, 1);

    /* rendering: the seven points in order, the verdict, HTML escaped */
    assert_int_equal(
        s_decode("{\"verdict\":\"approve\",\"summary\":\"<同意>\",\"points\":{" ALL_PASS "}}", &op,
                 &missing, err, why),
        0);
    opinion_head_t h = {"A-2019-01", "11330400MB0000001A", "R1", "2019-10-12", 42, 2};
    char text[OPINION_TEXT_MAX + 1], html[OPINION_HTML_MAX];
    assert_true(opinion_render_text(&op, &h, text, sizeof text) > 0);
    assert_non_null(strstr(text, "法制审核意见书"));
    assert_non_null(strstr(text, "案件编号：A-2019-01（42），拟作决定第 2 版"));
    assert_non_null(strstr(text, "一、主体是否合法：是。subject ok"));
    assert_non_null(strstr(text, "七、是否涉嫌犯罪需移送：否。referral ok"));
    assert_non_null(strstr(text, "审核意见：同意。<同意>"));
    assert_true(opinion_render_html(&op, &h, html, sizeof html) > 0);
    assert_non_null(strstr(html, "&lt;同意&gt;"));
    assert_null(strstr(html, "<同意>"));

    /* the longest opinion still fits review.approved's 4000 bytes */
    for (int i = 0; i < OPINION_POINTS; i++)
        memset(op.comment[i], 'x', OPINION_COMMENT_MAX), op.comment[i][OPINION_COMMENT_MAX] = 0;
    memset(op.summary, 'y', OPINION_SUMMARY_MAX);
    op.summary[OPINION_SUMMARY_MAX] = 0;
    char cno[65];
    memset(cno, 'c', 64);
    cno[64] = 0;
    h.case_no = cno;
    h.reviewer = cno;
    assert_true(opinion_render_text(&op, &h, text, sizeof text) > 0);
    /* and its HTML, every byte escaped to the longest entity (&quot;, six bytes) */
    for (int i = 0; i < OPINION_POINTS; i++)
        memset(op.comment[i], '"', OPINION_COMMENT_MAX);
    memset(op.summary, '"', OPINION_SUMMARY_MAX);
    memset(cno, '"', 64);
    assert_true(opinion_render_text(&op, &h, text, sizeof text) > 0);
    assert_true(opinion_render_html(&op, &h, html, sizeof html) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_criterion_matches_all),
        cmocka_unit_test(test_case_type),
        cmocka_unit_test(test_domain_and_level),
        cmocka_unit_test(test_amount_threshold_both_sides),
        cmocka_unit_test(test_flags_both_sides),
        cmocka_unit_test(test_evaluate_reason),
        cmocka_unit_test(test_discretion_band_and_recent),
        cmocka_unit_test(test_staffing_threshold),
        cmocka_unit_test(test_opinion_points),
    };
    return cmocka_run_group_tests_name("review_catalogue", tests, NULL, NULL);
}
