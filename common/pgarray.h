/* pgarray: one-dimensional PostgreSQL arrays in binary form (array_recv), the parameters
 * that let a whole batch go to the server in one round trip:
 *
 *   INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::int8[])
 *
 * (DESIGN.md, "Speed": binary unnest beat per-row inserts and text array literals.)
 *
 *   pgarray_t a[2] = {{0}};
 *   pgarray_begin(&a[0], PGARRAY_TEXT);
 *   pgarray_begin(&a[1], PGARRAY_INT8);
 *   for (...) { pgarray_str(&a[0], name); pgarray_int8(&a[1], n); }
 *   PGresult *r = pgarray_exec(db, "stmt", a, 2, 0);
 *   pgarray_free(&a[0]); pgarray_free(&a[1]);
 *
 * Out of memory is sticky: appends after it do nothing and pgarray_exec fails. */
#ifndef SX_PGARRAY_H
#define SX_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* Element type OIDs (pg_type). */
enum {
    PGARRAY_BOOL = 16,
    PGARRAY_BYTEA = 17,
    PGARRAY_INT8 = 20,
    PGARRAY_INT4 = 23,
    PGARRAY_TEXT = 25,
    PGARRAY_DATE = 1082,
};

typedef struct {
    char *buf;    /* the parameter's bytes (malloc'ed; pgarray_free) */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    size_t count; /* elements so far */
    bool bad;     /* out of memory: unusable until the next pgarray_begin */
} pgarray_t;

/* Starts (or restarts, keeping the buffer) an array of elem_oid elements. */
void pgarray_begin(pgarray_t *a, uint32_t elem_oid);

/* Appends an element of n bytes in the element type's binary form, or SQL NULL when p
 * is NULL. */
void pgarray_elem(pgarray_t *a, const void *p, size_t n);

/* Appends a text (or bytea) element from a C string; NULL appends SQL NULL. */
void pgarray_str(pgarray_t *a, const char *s);

/* Appends a text element of len bytes (not NUL-terminated); NULL appends SQL NULL. */
void pgarray_text(pgarray_t *a, const char *s, size_t len);

/* Appends SQL NULL. */
void pgarray_null(pgarray_t *a);

/* Appends an int4 / int8 / bool element. */
void pgarray_int4(pgarray_t *a, int32_t v);
void pgarray_int8(pgarray_t *a, int64_t v);
void pgarray_bool(pgarray_t *a, bool v);

/* Appends a date element (common/date.h day number). */
void pgarray_date(pgarray_t *a, int32_t day);

/* Completes the header (the element count). Returns 0, or -1 when memory ran out. */
int pgarray_finish(pgarray_t *a);

/* Executes the prepared statement name with arrays[0..n) as its binary parameters $1..$n
 * (finishing each), results in result_format. Returns the result (caller PQclears) or
 * NULL (out of memory, or the statement's failure in db_error). n <= 32. */
PGresult *pgarray_exec(db_t *db, const char *name, pgarray_t *arrays, int n, int result_format);

/* Frees the buffer; the array may be begun again. */
void pgarray_free(pgarray_t *a);

#endif
