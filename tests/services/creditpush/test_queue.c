/* creditpush's queue (services/creditpush/queue.c) on a real Postgres: the deliverer's
 * pick walks the queue in order and stops at its limit, however the queue has grown
 * since the statistics were taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../services/creditpush/creditpush.h"
#include "../../../services/creditpush/queue.h"
#include "db.h"
#include "tsupport.h"

static const char *
s_one(db_t *db, const char *sql, char *buf, size_t size)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, db_error(db));
    snprintf(buf, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

/* The plan text of the prepared pick, as the connection would run it now. */
static char *
s_pick_plan(db_t *db)
{
    PGresult *r = db_query(db, "EXPLAIN EXECUTE cp_pick(100, '{}')", 0, NULL);
    if (!r)
        fail_msg("explain: %s", db_error(db));
    size_t len = 1;
    for (int i = 0; i < PQntuples(r); i++)
        len += strlen(PQgetvalue(r, i, 0)) + 1;
    char *plan = calloc(1, len);
    assert_non_null(plan);
    for (int i = 0; i < PQntuples(r); i++) {
        strcat(plan, PQgetvalue(r, i, 0));
        strcat(plan, "\n");
    }
    PQclear(r);
    return plan;
}

/* Adds n items in state st, ids from the sequence. */
static void
s_items(db_t *db, int n, const char *st)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO creditpush.item (record_id, op, version, idem_key, kind, agency, data,"
             " state) SELECT r, 'publish', 1, r || '-1', 'licence', '11620200013926143G',"
             " '{\"XK_XDR\": \"x\"}', '%s'"
             " FROM generate_series((SELECT coalesce(max(record_id), 0) + 1 FROM"
             " creditpush.item), (SELECT coalesce(max(record_id), 0) + %d FROM creditpush.item))"
             " AS r",
             st, n);
    ts_sql(db, sql);
}

/* Statistics taken while nearly every item was sent, then a backlog of 30,000 queued:
 * the deliverer's connection (QUEUE_PICK_PG_OPTIONS) walks item_queued in order and
 * stops at the limit, and keeps the setting across a reconnect. The plan of a connection
 * without the options is printed beside it: in this setup it is the same walk, while
 * bench-pipeline once met the bitmap scan and sort of every queued item (queue.h); what
 * the options forbid is that plan. */
static void
test_pick_walks_the_queue_in_order(void **state)
{
    (void)state;
    char *url = ts_fresh_db("cpqueue");
    db_t *plain = db_new(url, "cp-test-plain");
    db_t *deliver = db_new(url, "cp-test-deliver");
    assert_non_null(plain);
    assert_non_null(deliver);
    assert_int_equal(db_set_options(deliver, QUEUE_PICK_PG_OPTIONS), 0);
    assert_int_equal(db_connect(plain, 5000), 0);
    assert_int_equal(db_connect(deliver, 5000), 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas/sql/creditpush", ts_env("SX_TOP"));
    if (db_migrate(plain, CP_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(plain));

    s_items(plain, 20000, "sent");
    s_items(plain, 5, "queued");
    ts_sql(plain, "ANALYZE creditpush.item");
    s_items(plain, 30000, "queued");
    assert_int_equal(queue_prepare(deliver), 0);
    assert_int_equal(queue_prepare(plain), 0);

    /* Enough picks for the plan cache to settle on its generic plan. */
    queue_item_t items[100];
    int64_t first = 0;
    for (int i = 0; i < 8; i++) {
        int n = queue_pick(deliver, 100, NULL, 0, items);
        assert_int_equal(n, 100);
        if (i == 0)
            first = items[0].id;
        assert_int_equal(items[0].id, first); /* oldest first, the same each time */
        queue_items_free(items, n);
        n = queue_pick(plain, 100, NULL, 0, items);
        assert_int_equal(n, 100);
        queue_items_free(items, n);
    }
    char *plan = s_pick_plan(deliver);
    char *other = s_pick_plan(plain);
    print_message("deliverer's pick plan:\n%swithout %s:\n%s", plan, QUEUE_PICK_PG_OPTIONS, other);
    assert_non_null(strstr(plan, "Index Scan using item_queued"));
    assert_null(strstr(plan, "Bitmap"));
    assert_null(strstr(plan, "Sort"));
    free(plan);
    free(other);

    /* The setting is the connection's, and a new connection has it too. */
    char b[16];
    assert_string_equal(s_one(deliver, "SHOW enable_bitmapscan", b, sizeof b), "off");
    assert_string_equal(s_one(plain, "SHOW enable_bitmapscan", b, sizeof b), "on");
    ts_sql(plain, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE application_name = 'cp-test-deliver'");
    PGresult *r = db_query(deliver, "SELECT 1", 0, NULL); /* finds the connection gone */
    PQclear(r);
    assert_int_equal(db_connect(deliver, 5000), 0);
    assert_string_equal(s_one(deliver, "SHOW enable_bitmapscan", b, sizeof b), "off");
    db_destroy(&plain);
    db_destroy(&deliver);
    free(url);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_walks_the_queue_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
