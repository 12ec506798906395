/* pgarray: binary array parameters, read back by a real PostgreSQL through unnest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "date.h"
#include "db.h"
#include "pgarray.h"
#include "tsupport.h"

static void
test_every_type_and_null_round_trips(void **state)
{
    (void)state;
    char *url = ts_fresh_db("pgarray");
    db_t *db = db_new(url, "test-pgarray");
    assert_non_null(db);
    assert_int_equal(db_connect(db, 5000), 0);
    assert_int_equal(db_prepare(db, "rt",
                                "SELECT i, t, n4, n8, b, d, x FROM unnest($1::text[], $2::int[],"
                                " $3::int8[], $4::bool[], $5::date[], $6::bytea[])"
                                " WITH ORDINALITY AS u(t, n4, n8, b, d, x, i) ORDER BY i",
                                6),
                     0);
    pgarray_t a[6] = {{0}};
    pgarray_begin(&a[0], PGARRAY_TEXT);
    pgarray_begin(&a[1], PGARRAY_INT4);
    pgarray_begin(&a[2], PGARRAY_INT8);
    pgarray_begin(&a[3], PGARRAY_BOOL);
    pgarray_begin(&a[4], PGARRAY_DATE);
    pgarray_begin(&a[5], PGARRAY_BYTEA);
    /* Row 1: values, including a name with quotes and commas (no text-literal escaping). */
    pgarray_str(&a[0], "张三, \"李四\" {x}");
    pgarray_int4(&a[1], -7);
    pgarray_int8(&a[2], INT64_C(9007199254740993));
    pgarray_bool(&a[3], true);
    pgarray_date(&a[4], date_from_ymd(2019, 10, 12));
    pgarray_elem(&a[5], "\x00\x01\xff", 3);
    /* Row 2: NULLs everywhere, and a counted text. */
    pgarray_text(&a[0], "abcdef", 3);
    pgarray_null(&a[1]);
    pgarray_null(&a[2]);
    pgarray_null(&a[3]);
    pgarray_null(&a[4]);
    pgarray_str(&a[5], NULL);
    PGresult *r = pgarray_exec(db, "rt", a, 6, 0);
    if (!r)
        fail_msg("%s", db_error(db));
    assert_int_equal(PQntuples(r), 2);
    assert_string_equal(PQgetvalue(r, 0, 1), "张三, \"李四\" {x}");
    assert_string_equal(PQgetvalue(r, 0, 2), "-7");
    assert_string_equal(PQgetvalue(r, 0, 3), "9007199254740993");
    assert_string_equal(PQgetvalue(r, 0, 4), "t");
    assert_string_equal(PQgetvalue(r, 0, 5), "2019-10-12");
    assert_string_equal(PQgetvalue(r, 0, 6), "\\x0001ff");
    assert_string_equal(PQgetvalue(r, 1, 1), "abc");
    for (int c = 2; c <= 6; c++)
        assert_true(PQgetisnull(r, 1, c));
    PQclear(r);

    /* Restarted arrays keep their buffers and start empty. */
    for (int i = 0; i < 6; i++)
        pgarray_begin(&a[i], i == 0 ? PGARRAY_TEXT : PGARRAY_INT4);
    assert_int_equal(pgarray_finish(&a[0]), 0);
    assert_int_equal(a[0].count, 0);
    for (int i = 0; i < 6; i++)
        pgarray_free(&a[i]);
    assert_null(a[0].buf);
    /* An array never begun cannot be sent. */
    pgarray_t none = {0};
    assert_int_equal(pgarray_finish(&none), -1);
    db_destroy(&db);
    free(url);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_and_null_round_trips),
    };
    return cmocka_run_group_tests_name("pgarray", tests, NULL, NULL);
}
