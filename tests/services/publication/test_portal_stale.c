/* The portal as sx-publication runs it by default (SX_PORTAL_MAX_STALE_MS 1000): an
 * answer may lag a commit, but never by much more than that — a publication and a
 * withdrawal each show within the bound, seen through real HTTP. */
#include <unistd.h>

#include "pubfx.h"

#define S_STALE_MS 1000
/* The bound: max_stale_ms, plus one data-version read and a render on a loaded machine. */
#define S_BOUND_MS (S_STALE_MS + 1500)

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls path on fx's portal until it answers want; returns the milliseconds it took, or
 * fails the test at twice the bound. */
static int64_t
s_until(pubfx_t *fx, const char *path, long want)
{
    int64_t start = s_now_ms();
    pubfx_resp_t r;
    for (;;) {
        pubfx_get(fx, path, NULL, &r);
        int64_t took = s_now_ms() - start;
        if (r.status == want)
            return took;
        if (took > 2 * S_BOUND_MS)
            fail_msg("%s: still %ld after %lld ms, want %ld", path, r.status, (long long)took,
                     want);
        usleep(20 * 1000);
    }
}

static void
s_decided(pubfx_t *fx, int id)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":" PUBFX_ORG ",\"summary\":\"销售过期食品\","
             "\"opened_on\":\"2019-09-02\"}",
             id, id);
    pubfx_event(fx, "case.opened." AGENCY, json);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2019〕%d号\","
             "\"decision_date\":\"2019-09-27\",\"reviewed\":false,\"category\":\"罚款\","
             "\"content\":\"罚款2000元\",\"fine\":\"0.2\",\"confiscation\":\"0\","
             "\"legal_basis\":\"《食品安全法》第一百二十四条\",\"violation_code\":null,"
             "\"circumstance\":\"general\"}",
             id, id, id);
    pubfx_event(fx, "case.decided." AGENCY, json);
}

static void
test_changes_show_within_the_bound(void **state)
{
    pubfx_t *fx = *state;
    char err[256];
    portal_t *strict = fx->portal;
    fx->portal = portal_new_opts(fx->url, "127.0.0.1", 0,
                                 &(portal_opts_t){.threads = 2, .max_stale_ms = S_STALE_MS}, err,
                                 sizeof err);
    if (!fx->portal)
        fail_msg("portal: %s", err);

    char id[24], st[16], path[96];
    s_decided(fx, 1);
    pubfx_record(fx, AGENCY, 1, id);
    snprintf(path, sizeof path, "/api/v1/decisions/%s", id);
    pubfx_resp_t r;
    pubfx_get(fx, path, NULL, &r);
    assert_int_equal(r.status, 404); /* a draft: never public */

    assert_int_equal(workflow_publish(fx->db, id, AGENCY, "dept:" AGENCY ":publisher", st), 0);
    int64_t shown = s_until(fx, path, 200);
    assert_true(shown <= S_BOUND_MS);

    pubfx_event(fx, "case.revoked." AGENCY,
                "{\"case_id\":1,\"case_no\":\"C-1\",\"type\":\"penalty\",\"matter_code\":\"M1\","
                "\"state\":\"revoked\",\"kind\":\"revoke\",\"reason\":\"复议决定撤销\","
                "\"revoked_on\":\"2019-11-01\",\"decision_no\":\"嘉罚〔2019〕1号\",\"version\":1}");
    int64_t gone = s_until(fx, path, 410);
    assert_true(gone <= S_BOUND_MS);
    /* And it stays gone: no older answer comes back from the cache. */
    for (int i = 0; i < 20; i++) {
        pubfx_get(fx, path, NULL, &r);
        assert_int_equal(r.status, 410);
    }

    portal_destroy(&fx->portal);
    fx->portal = strict;
}

static int
s_setup(void **state)
{
    *state = pubfx_new("pub_stale", "test-portal-stale");
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_changes_show_within_the_bound),
    };
    return cmocka_run_group_tests(tests, s_setup, pubfx_teardown);
}
