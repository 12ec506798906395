/* deadlines: review tasks' deadlines as Redis timers, against a real PostgreSQL and a
 * real Redis, on a clock the test sets (deadlines_step takes the time; the proposals'
 * envelopes carry the opening day). A task opened on Friday 2019-09-27 with 5 review
 * days is due Thursday 2019-10-10 across the National Day holiday (the official
 * calendar: 9-29 an adjusted working Sunday, 10-1..10-7 off): the warning fires at
 * 00:00 China time of 10-09, not a second before, and review.overdue at 00:00 of 10-11;
 * each once, whether the timer fires twice, the keeper restarts, or Redis loses the
 * timers; the statutory-limit flag on the working day before the case's deadline. */
#include "rvfx.h"

#include <hiredis/hiredis.h>

#include "../../../services/review/deadlines.h"

#define SVC "review_test" /* its own timers, apart from a running sx-review's */

typedef struct {
    rvfx_t rv;
    deadlines_t *dl;
    redisContext *redis;
} fx_t;

static int64_t
s_at(int y, int m, int d, int hour)
{
    return deadlines_midnight_ms(date_from_ymd(y, m, d)) + hour * 3600000LL;
}

static deadlines_t *
s_keeper(fx_t *fx)
{
    char err[256];
    timers_t *t = timers_new(ts_env("SX_REDIS_URL"), SVC, err, sizeof err);
    if (!t)
        fail_msg("timers_new: %s", err);
    db_t *db = db_new(fx->rv.url, "review-deadlines-test");
    assert_int_equal(db_connect(db, 5000), 0);
    deadlines_t *dl = deadlines_new(db, t, &fx->rv.app, 3600000);
    assert_non_null(dl);
    return dl;
}

static void
s_redis(fx_t *fx, const char *cmd, const char *arg)
{
    redisReply *r = redisCommand(fx->redis, cmd, arg);
    assert_non_null(r);
    freeReplyObject(r);
}

/* The timer's due time in Redis, or -1 when it is not armed. */
static int64_t
s_score(fx_t *fx, const char *kind, long long task)
{
    char member[64];
    snprintf(member, sizeof member, "%s:%lld", kind, task);
    redisReply *r = redisCommand(fx->redis, "ZSCORE sx:timer:{" SVC "}:due %s", member);
    assert_non_null(r);
    int64_t v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* Makes kind:task due at once again, as a second firing would. */
static void
s_refire(fx_t *fx, const char *kind, long long task)
{
    char member[64];
    snprintf(member, sizeof member, "%s:%lld", kind, task);
    s_redis(fx, "ZADD sx:timer:{" SVC "}:due 1 %s", member);
}

static long long
s_events(fx_t *fx, const char *event)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM review.outbox WHERE topic LIKE '%s.%%'", event);
    return rvfx_count(&fx->rv, sql);
}

static long long
s_task(fx_t *fx, int case_id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id FROM review.task WHERE case_id = %d", case_id);
    return rvfx_count(&fx->rv, sql);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    rvfx_init(&fx->rv, "revdl");
    rvfx_rule(&fx->rv, fx->rv.a, "R-ALL", NULL);
    rvfx_officer(&fx->rv, fx->rv.a, "A001", 1, false, false, true);
    rvfx_officer(&fx->rv, fx->rv.a, "A002", 1, true, true, true);
    const char *url = ts_env("SX_REDIS_URL");
    fx->redis = redisConnect("127.0.0.1", atoi(strrchr(url, ':') + 1));
    assert_true(fx->redis && !fx->redis->err);
    s_redis(fx, "DEL sx:timer:{" SVC "}:due sx:timer:{" SVC "}:claimed %s",
            "sx:timer:{" SVC "}:armed");
    /* opened on Friday 2019-09-27, 10:00 China time */
    fx->rv.at_ms = s_at(2019, 9, 27, 10);
    fx->dl = s_keeper(fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    deadlines_destroy(&fx->dl);
    redisFree(fx->redis);
    rvfx_fini(&fx->rv);
    free(fx);
    return 0;
}

static void
test_warning_and_overdue_on_time_once(void **state)
{
    fx_t *fx = *state;
    rvfx_opened(&fx->rv, 1, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 1, 1, "1", NULL);
    long long t = s_task(fx, 1);
    char b[128];
    assert_string_equal(rvfx_one(&fx->rv,
                                 "SELECT warn_on || ' ' || due_on FROM review.task"
                                 " WHERE case_id = 1",
                                 b, sizeof b),
                        "2019-10-09 2019-10-10");
    int64_t warn = s_at(2019, 10, 9, 0), over = s_at(2019, 10, 11, 0);

    deadlines_step(fx->dl, fx->rv.at_ms);
    assert_int_equal(s_score(fx, "warn", t), warn);
    assert_int_equal(s_score(fx, "overdue", t), over);
    assert_int_equal(s_score(fx, "limit", t), -1); /* no statutory deadline known */

    deadlines_step(fx->dl, warn - 1000);
    assert_int_equal(s_events(fx, "review.due_soon"), 0);
    deadlines_step(fx->dl, warn);
    assert_int_equal(s_events(fx, "review.due_soon"), 1);
    char topic[160];
    char *json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    char want[160];
    snprintf(want, sizeof want, "review.due_soon.%s", fx->rv.a);
    assert_string_equal(topic, want);
    snprintf(want, sizeof want,
             "{\"task_id\":%lld,\"case_id\":1,\"proposal_version\":1,\"due_on\":\"2019-10-10\","
             "\"reviewer\":\"A002\"}",
             t);
    assert_string_equal(json, want);
    free(json);
    assert_int_equal(s_score(fx, "warn", t), -1);

    /* fired twice: still one warning */
    s_refire(fx, "warn", t);
    deadlines_step(fx->dl, warn + 2000);
    assert_int_equal(s_events(fx, "review.due_soon"), 1);

    /* the due day itself is in time; overdue at 00:00 of the day after */
    deadlines_step(fx->dl, over - 1000);
    assert_int_equal(s_events(fx, "review.overdue"), 0);
    deadlines_step(fx->dl, over);
    assert_int_equal(s_events(fx, "review.overdue"), 1);
    json = rvfx_last_event(&fx->rv, topic, sizeof topic);
    assert_non_null(strstr(topic, "review.overdue."));
    assert_non_null(strstr(json, "\"due_on\":\"2019-10-10\""));
    free(json);
    snprintf(want, sizeof want, "SELECT count(*) FROM review.task WHERE id = %lld AND overdue", t);
    assert_int_equal(rvfx_count(&fx->rv, want), 1);
    s_refire(fx, "overdue", t);
    s_refire(fx, "warn", t);
    deadlines_step(fx->dl, over + 2000);
    assert_int_equal(s_events(fx, "review.overdue"), 1);
    assert_int_equal(s_events(fx, "review.due_soon"), 1);
    deadlines_stats_t st = deadlines_stats(fx->dl);
    assert_int_equal(st.due_soon, 1);
    assert_int_equal(st.overdue, 1);
}

static void
test_restart_and_lost_redis_still_fire_once(void **state)
{
    fx_t *fx = *state;
    rvfx_opened(&fx->rv, 2, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 2, 1, "1", NULL);
    long long t = s_task(fx, 2);
    int64_t warn = s_at(2019, 10, 9, 0), over = s_at(2019, 10, 11, 0);
    deadlines_step(fx->dl, fx->rv.at_ms);
    assert_int_equal(s_score(fx, "overdue", t), over);

    /* a restart between scheduling and firing: the new keeper arms from Postgres */
    deadlines_destroy(&fx->dl);
    fx->dl = s_keeper(fx);
    deadlines_step(fx->dl, warn + 3600000);
    assert_int_equal(s_events(fx, "review.due_soon"), 1);

    /* Redis loses everything (as FLUSHALL or a restart without persistence) */
    s_redis(fx, "DEL sx:timer:{" SVC "}:due sx:timer:{" SVC "}:claimed %s",
            "sx:timer:{" SVC "}:armed");
    assert_int_equal(s_score(fx, "overdue", t), -1);
    deadlines_step(fx->dl, warn + 7200000); /* the claim notices, the rearm rebuilds */
    assert_int_equal(s_score(fx, "overdue", t), over);
    assert_int_equal(s_score(fx, "warn", t), -1); /* warned: not armed again */
    deadlines_step(fx->dl, over);
    assert_int_equal(s_events(fx, "review.overdue"), 1);

    /* and a keeper restarted after the firing arms nothing and emits nothing again */
    deadlines_destroy(&fx->dl);
    fx->dl = s_keeper(fx);
    deadlines_step(fx->dl, over + 86400000);
    assert_int_equal(s_score(fx, "overdue", t), -1);
    assert_int_equal(s_events(fx, "review.overdue"), 1);
    assert_int_equal(s_events(fx, "review.due_soon"), 1);
}

static void
test_closed_or_moved_tasks(void **state)
{
    fx_t *fx = *state;
    char sql[256];
    /* case 3 approved before its warning: nothing fires; case 4 given two more days */
    rvfx_opened(&fx->rv, 3, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 3, 1, "1", NULL);
    rvfx_opened(&fx->rv, 4, "\"A001\"");
    rvfx_propose(&fx->rv, fx->rv.a, 4, 1, "1", NULL);
    long long t4 = s_task(fx, 4);
    deadlines_step(fx->dl, fx->rv.at_ms);
    rvfx_one(&fx->rv, "UPDATE review.task SET status = 'approved' WHERE case_id = 3 RETURNING 1",
             sql, sizeof sql);
    rvfx_one(&fx->rv,
             "UPDATE review.task SET warn_on = '2019-10-11', due_on = '2019-10-14'"
             " WHERE case_id = 4 RETURNING 1",
             sql, sizeof sql);
    deadlines_step(fx->dl, s_at(2019, 10, 9, 0));
    assert_int_equal(s_events(fx, "review.due_soon"), 0);
    assert_int_equal(s_score(fx, "warn", t4), s_at(2019, 10, 11, 0)); /* armed again */
    deadlines_step(fx->dl, s_at(2019, 10, 11, 0));
    assert_int_equal(s_events(fx, "review.due_soon"), 1);
    deadlines_step(fx->dl, s_at(2019, 10, 15, 0));
    assert_int_equal(s_events(fx, "review.overdue"), 1);
    assert_true(deadlines_stats(fx->dl).moved >= 1); /* the warning at least; a rearm
                                                        may have moved the other first */
}

static void
test_statutory_limit_flag(void **state)
{
    fx_t *fx = *state;
    char b[512];
    /* the case must be decided by Tuesday 10-15; review is due 10-10: in time when
     * opened, but still open on Monday 10-14, the working day before, it threatens it */
    rvfx_opened_until(&fx->rv, 5, "\"A001\"", "2019-10-15");
    rvfx_propose(&fx->rv, fx->rv.a, 5, 1, "1", NULL);
    long long t = s_task(fx, 5);
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flags FROM review.task WHERE case_id = 5", b, sizeof b), "{}");
    deadlines_step(fx->dl, fx->rv.at_ms);
    int64_t limit = s_at(2019, 10, 14, 0);
    assert_int_equal(s_score(fx, "limit", t), limit);
    deadlines_step(fx->dl, limit - 1000);
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flags FROM review.task WHERE case_id = 5", b, sizeof b), "{}");
    deadlines_step(fx->dl, limit);
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flags FROM review.task WHERE case_id = 5", b, sizeof b),
        "{statutory_limit}");
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flag_note FROM review.task WHERE case_id = 5", b, sizeof b),
        "review still open the working day before the statutory deadline 2019-10-15"
        " (法定办案期限)");
    s_refire(fx, "limit", t);
    deadlines_step(fx->dl, limit + 2000);
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flags FROM review.task WHERE case_id = 5", b, sizeof b),
        "{statutory_limit}");
    assert_int_equal(deadlines_stats(fx->dl).limit, 1);

    /* a review due after the deadline from the start: flagged at once, no limit timer */
    rvfx_opened_until(&fx->rv, 6, "\"A001\"", "2019-10-08");
    rvfx_propose(&fx->rv, fx->rv.a, 6, 1, "1", NULL);
    deadlines_step(fx->dl, limit + 4000);
    assert_string_equal(
        rvfx_one(&fx->rv, "SELECT flags FROM review.task WHERE case_id = 6", b, sizeof b),
        "{statutory_limit}");
    assert_int_equal(s_score(fx, "limit", s_task(fx, 6)), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_warning_and_overdue_on_time_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_and_lost_redis_still_fire_once, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_closed_or_moved_tasks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_statutory_limit_flag, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("review_deadlines", tests, NULL, NULL);
}
