/* tsupport: what the tests share. Tests run under tests/harness/with-servers, which
 * exports SX_PG_URL, SX_REDIS_URL, SX_TOP (the repository), SX_BIN (the binaries) and
 * SX_TMP (a temp dir removed after the run). */
#ifndef SX_TSUPPORT_H
#define SX_TSUPPORT_H

#include <stddef.h>

#include "db.h"

/* The value of an environment variable the harness must have set; fails the test
 * (cmocka's fail_msg) when it is missing, so a test never silently runs without servers. */
const char *ts_env(const char *name);

/* Creates a fresh, empty database on the harness's PostgreSQL, named after prefix and a
 * counter, and returns a libpq connection string for it (malloc'ed: the caller frees it). */
char *ts_fresh_db(const char *prefix);

/* Runs one SQL statement without parameters on db and discards its result; fails the
 * test with the statement and the database's reason when it fails. */
void ts_sql(db_t *db, const char *sql);

/* Runs a command line (argv, NULL-terminated) with optional stdin text and captures
 * stdout and stderr into the caller's buffers (NUL-terminated, truncated to size).
 * Returns the exit status, or 128+signal if it was killed, or -1 if it could not start. */
int ts_run(const char *const argv[], const char *input, char *out, size_t out_size, char *err,
           size_t err_size);

/* Writes text into a new file under SX_TMP and returns its path (malloc'ed). */
char *ts_write_tmp(const char *name, const char *text);

/* Makes a fresh directory under SX_TMP and returns its path (malloc'ed). */
char *ts_mkdtemp(const char *prefix);

#endif
