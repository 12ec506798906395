/* Upgrading a running deployment's intake schema: a database migrated up to 006, holding
 * cases with their deadlines in case_deadline (pending, met, warned and overdue), takes
 * 007 (the deadline into the case's row) and 008 and keeps every deadline as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../services/intake/intake.h"
#include "bus.h"
#include "db.h"
#include "rpc.h"
#include "tsupport.h"

/* Every row of sql as "a|b|c" lines. */
static char *
s_rows(db_t *db, const char *sql)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    for (int i = 0; i < PQntuples(r); i++)
        for (int j = 0; j < PQnfields(r); j++) {
            len += (size_t)snprintf(out + len, cap - len, "%s%s", PQgetvalue(r, i, j),
                                    j + 1 < PQnfields(r) ? "|" : "\n");
            assert_true(len < cap); /* before the next write, not after the overflow */
        }
    PQclear(r);
    return out;
}

static void
test_deadlines_move_into_their_cases(void **state)
{
    (void)state;
    char *url = ts_fresh_db("upgrade");
    db_t *db = db_new(url, "intake-upgrade-test");
    assert_int_equal(db_connect(db, 5000), 0);
    const char *top = ts_env("SX_TOP");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/schemas/sql/bus", top);
    if (bus_migrate(db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("bus_migrate: %s", db_error(db));
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", top);
    if (rpc_migrate(db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("rpc_migrate: %s", db_error(db));

    /* The schema as the previous release left it: 001 to 006. */
    char *old = ts_mkdtemp("intake-sql-006");
    static const char *const files[] = {"001_registry.sql",
                                        "002_cases.sql",
                                        "003_deadlines.sql",
                                        "004_case_deadline_no_fk.sql",
                                        "005_autoanalyze_young_tables.sql",
                                        "006_cases_fillfactor.sql"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/schemas/sql/intake/%s", top, files[i]);
        snprintf(to, sizeof to, "%s/%s", old, files[i]);
        assert_int_equal(symlink(from, to), 0);
    }
    if (db_migrate(db, INTAKE_SCHEMA, old) < 0)
        fail_msg("db_migrate (006): %s", db_error(db));
    ts_sql(db, "INSERT INTO intake.cases (id, agency, case_no, type, matter_code, matter_version,"
               " state, party_kind, party_name, party_id_type, party_id_no, on_site, officers,"
               " opened_on, opened_by)"
               " SELECT i, '11620200013926143G', 'UP-' || i, 'licence', 'LIC-1', 1,"
               " CASE WHEN i = 2 THEN 'decided' ELSE 'open' END, 'org', '某公司', 'uscc',"
               " '91110000600037341L', false, '{A001}', date '2026-11-02', 'test'"
               " FROM generate_series(1, 4) AS i");
    ts_sql(db, "INSERT INTO intake.case_deadline (case_id, agency, due, warn_on, uncovered,"
               " met_on, warned_at, overdue_at) VALUES"
               " (1, '11620200013926143G', '2026-11-30', '2026-11-25', false, NULL, NULL, NULL),"
               " (2, '11620200013926143G', '2026-11-30', '2026-11-25', false, '2026-11-20',"
               "  NULL, NULL),"
               " (3, '11620200013926143G', '2026-12-31', '2026-12-28', true, NULL,"
               "  '2026-12-28 00:00:01+08', NULL),"
               " (4, '11620200013926143G', '2026-11-20', '2026-11-17', false, NULL,"
               "  '2026-11-17 00:00:01+08', '2026-11-21 00:00:01+08')");

    /* The upgrade: 007 and 008 only. */
    snprintf(dir, sizeof dir, "%s/schemas/sql/intake", top);
    if (db_migrate(db, INTAKE_SCHEMA, dir) < 0)
        fail_msg("db_migrate: %s", db_error(db));
    char *got = s_rows(db, "SELECT id, due, warn_on, due_uncovered, coalesce(met_on::text, '-'),"
                           " coalesce(to_char(warned_at AT TIME ZONE 'Asia/Shanghai',"
                           " 'MM-DD HH24:MI:SS'), '-'),"
                           " coalesce(to_char(overdue_at AT TIME ZONE 'Asia/Shanghai',"
                           " 'MM-DD HH24:MI:SS'), '-')"
                           " FROM intake.cases ORDER BY id");
    assert_string_equal(got, "1|2026-11-30|2026-11-25|f|-|-|-\n"
                             "2|2026-11-30|2026-11-25|f|2026-11-20|-|-\n"
                             "3|2026-12-31|2026-12-28|t|-|12-28 00:00:01|-\n"
                             "4|2026-11-20|2026-11-17|f|-|11-17 00:00:01|11-21 00:00:01\n");
    free(got);
    /* What deadlines.c arms from: the pending ones, through the partial index. */
    got = s_rows(db, "SELECT id FROM intake.cases WHERE met_on IS NULL ORDER BY id");
    assert_string_equal(got, "1\n3\n4\n");
    free(got);
    got = s_rows(db, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'intake'"
                     " AND indexname = 'cases_deadline_pending'");
    assert_string_equal(got, "1\n");
    free(got);
    got = s_rows(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'intake'"
                     " AND tablename = 'case_deadline'");
    assert_string_equal(got, "0\n");
    free(got);
    /* A case can no longer be written without its deadline. */
    PGresult *r = db_query(db,
                           "INSERT INTO intake.cases (agency, case_no, type, matter_code,"
                           " matter_version, state, party_kind, party_name, party_id_type,"
                           " party_id_no, on_site, officers, opened_on, opened_by)"
                           " VALUES ('11620200013926143G', 'UP-9', 'licence', 'LIC-1', 1, 'open',"
                           " 'org', '某公司', 'uscc', '91110000600037341L', false, '{A001}',"
                           " date '2026-11-02', 'test')",
                           0, NULL);
    assert_null(r);
    assert_string_equal(db_sqlstate(db), "23502"); /* not_null_violation */
    db_destroy(&db);
    free(old);
    free(url);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlines_move_into_their_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
