#include "pgarray.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static void
s_put(pgarray_t *a, const void *p, size_t n)
{
    if (a->bad)
        return;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + n)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b) {
            a->bad = true;
            return;
        }
        a->buf = b;
        a->cap = cap;
    }
    if (n)
        memcpy(a->buf + a->len, p, n);
    a->len += n;
}

static void
s_u32(pgarray_t *a, uint32_t v)
{
    uint32_t be = htonl(v);
    s_put(a, &be, 4);
}

void
pgarray_begin(pgarray_t *a, uint32_t elem_oid)
{
    a->len = a->count = 0;
    a->bad = false;
    s_u32(a, 1); /* ndim */
    s_u32(a, 1); /* may hold NULLs: the server accepts the flag either way */
    s_u32(a, elem_oid);
    s_u32(a, 0); /* length, written by pgarray_finish */
    s_u32(a, 1); /* lower bound */
}

void
pgarray_elem(pgarray_t *a, const void *p, size_t n)
{
    s_u32(a, p ? (uint32_t)n : UINT32_MAX);
    if (p)
        s_put(a, p, n);
    a->count++;
}

void
pgarray_str(pgarray_t *a, const char *s)
{
    pgarray_elem(a, s, s ? strlen(s) : 0);
}

void
pgarray_text(pgarray_t *a, const char *s, size_t len)
{
    pgarray_elem(a, s, len);
}

void
pgarray_null(pgarray_t *a)
{
    pgarray_elem(a, NULL, 0);
}

void
pgarray_date(pgarray_t *a, int32_t day)
{
    /* PostgreSQL's binary date counts days from 2000-01-01, day 10957 from 1970. */
    pgarray_int4(a, day - 10957);
}

void
pgarray_int4(pgarray_t *a, int32_t v)
{
    uint32_t be = htonl((uint32_t)v);
    pgarray_elem(a, &be, 4);
}

void
pgarray_int8(pgarray_t *a, int64_t v)
{
    uint32_t be[2] = {htonl((uint32_t)((uint64_t)v >> 32)), htonl((uint32_t)v)};
    pgarray_elem(a, be, 8);
}

void
pgarray_bool(pgarray_t *a, bool v)
{
    unsigned char b = v ? 1 : 0;
    pgarray_elem(a, &b, 1);
}

int
pgarray_finish(pgarray_t *a)
{
    if (a->bad || a->len < 20)
        return -1;
    uint32_t be = htonl((uint32_t)a->count);
    memcpy(a->buf + 12, &be, 4);
    return 0;
}

PGresult *
pgarray_exec(db_t *db, const char *name, pgarray_t *arrays, int n, int result_format)
{
    enum { MAX = 32 };
    const char *values[MAX];
    int lengths[MAX], formats[MAX];
    if (n < 0 || n > MAX)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (pgarray_finish(&arrays[i]) < 0)
            return NULL;
        values[i] = arrays[i].buf;
        lengths[i] = (int)arrays[i].len;
        formats[i] = 1;
    }
    return db_exec_prepared(db, name, n, values, lengths, formats, result_format);
}

void
pgarray_free(pgarray_t *a)
{
    free(a->buf);
    *a = (pgarray_t){0};
}
