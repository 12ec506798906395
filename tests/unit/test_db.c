/* db: a libpq connection with reconnect, prepared statements, transactions with retry,
 * and the migration runner, against the harness's real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "tsupport.h"

/* --- helpers ---------------------------------------------------------------------------- */

static int64_t
s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A second, plain libpq connection: the view of "another session". */
static PGconn *
s_other(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("other connection: %s", PQerrorMessage(c));
    return c;
}

/* The first value of a one-row query on c, as a malloc'ed string ("<null>" for NULL,
 * "<error: ...>" when it failed). */
static char *
s_val(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *out;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        out = strdup(PQresultErrorMessage(r));
    else if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0))
        out = strdup("<null>");
    else
        out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static void
s_assert_val(PGconn *c, const char *sql, const char *want)
{
    char *got = s_val(c, sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", sql, got, want);
    free(got);
}

static void
s_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* A db handle on a fresh database, connected. */
static db_t *
s_db(const char *url)
{
    db_t *db = db_new(url, "sx-test-db");
    assert_non_null(db);
    if (db_connect(db, 5000) != 0)
        fail_msg("db_connect: %s", db_error(db));
    return db;
}

static int
s_backend_pid(db_t *db)
{
    PGresult *r = db_query(db, "SELECT pg_backend_pid()", 0, NULL);
    assert_non_null(r);
    int pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return pid;
}

/* Terminates backend pid from another session and waits until it is gone. */
static void
s_kill_backend(const char *url, int pid)
{
    PGconn *o = s_other(url);
    char pidtext[16];
    snprintf(pidtext, sizeof pidtext, "%d", pid);
    const char *vals[1] = {pidtext};
    PGresult *r =
        PQexecParams(o, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    PQfinish(o);
}

static void
s_assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void
s_write(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
s_unlink(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

/* sha256sum of a file, from the coreutils tool rather than our own code. */
static void
s_sha256sum(const char *dir, const char *name, char out[65])
{
    char path[1024], o[256], e[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const char *argv[] = {"sha256sum", path, NULL};
    assert_int_equal(ts_run(argv, NULL, o, sizeof o, e, sizeof e), 0);
    memcpy(out, o, 64);
    out[64] = '\0';
}

/* Redirects stderr (where the log goes) into a file until s_capture_end. */
typedef struct {
    int saved;
    char *path;
} s_capture_t;

static s_capture_t
s_capture_begin(void)
{
    s_capture_t c;
    fflush(stderr);
    c.path = ts_write_tmp("db-capture.log", "");
    c.saved = dup(2);
    int fd = open(c.path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    return c;
}

/* Restores stderr and returns what was written (malloc'ed). */
static char *
s_capture_end(s_capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    static const size_t cap = 65536;
    char *buf = calloc(1, cap);
    assert_non_null(buf);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    free(c->path);
    return buf;
}

static int
s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* --- connection and queries ------------------------------------------------------------ */

static void
test_query_parameters_stay_data(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    assert_true(db_connected(db));
    assert_non_null(db_conn(db));
    assert_int_equal(db_command(db, "CREATE TABLE t (id int PRIMARY KEY, v text)"), 0);

    const char *hostile = "x'); DROP TABLE t; --\"; SELECT 1";
    const char *v1[2] = {"1", hostile};
    PGresult *r = db_query(db, "INSERT INTO t VALUES ($1, $2)", 2, v1);
    assert_non_null(r);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
    const char *v2[2] = {"2", NULL};
    r = db_query(db, "INSERT INTO t VALUES ($1, $2)", 2, v2);
    assert_non_null(r);
    PQclear(r);

    r = db_query(db, "SELECT id, v FROM t ORDER BY id", 0, NULL);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 2);
    assert_string_equal(PQgetvalue(r, 0, 1), hostile);
    assert_true(PQgetisnull(r, 1, 1));
    PQclear(r);

    const char *app[1] = {"application_name"};
    r = db_query(db, "SELECT current_setting($1)", 1, app);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "sx-test-db");
    PQclear(r);

    /* Service connections run without JIT (db.c, s_try_connect). */
    r = db_query(db, "SELECT current_setting('jit')", 0, NULL);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "off");
    PQclear(r);

    /* One statement per call: a second statement cannot ride along. */
    assert_null(db_query(db, "SELECT 1; DROP TABLE t", 0, NULL));
    s_assert_contains(db_error(db), "multiple commands");
    assert_int_equal(db_command(db, "SELECT 1; DROP TABLE t"), -1);

    /* A server error leaves the connection usable and says what went wrong. */
    assert_null(db_query(db, "SELEC 1", 0, NULL));
    assert_string_equal(db_sqlstate(db), "42601");
    s_assert_contains(db_error(db), "syntax error");
    assert_true(db_connected(db));
    PGconn *o = s_other(url);
    s_assert_val(o, "SELECT count(*) FROM t", "2");
    PQfinish(o);

    /* statement_timeout only when asked, and then on this and later connections. */
    assert_int_equal(db_set_statement_timeout(db, 100), 0);
    assert_null(db_query(db, "SELECT pg_sleep(2)", 0, NULL));
    assert_string_equal(db_sqlstate(db), "57014");
    s_kill_backend(url, s_backend_pid(db));
    assert_int_equal(db_command(db, "SELECT 1"), -1); /* meets the dead connection */
    assert_null(db_query(db, "SELECT pg_sleep(2)", 0, NULL));
    assert_string_equal(db_sqlstate(db), "57014");

    db_destroy(&db);
    assert_null(db);
    db_destroy(&db);
    free(url);
}

static void
test_prepared_statement_survives_reconnect(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int PRIMARY KEY, v text)"), 0);
    assert_int_equal(db_command(db, "INSERT INTO t VALUES (7, 'seven')"), 0);
    assert_int_equal(db_prepare(db, "t_get", "SELECT v FROM t WHERE id = $1", 1), 0);
    assert_int_equal(db_prepare(db, "t_get", "SELECT v FROM t WHERE id = $1", 1), 0);
    assert_int_equal(db_prepare(db, "t_get", "SELECT id FROM t WHERE v = $1", 1), -1);
    s_assert_contains(db_error(db), "already registered");

    const char *id[1] = {"7"};
    PGresult *r = db_exec_prepared(db, "t_get", 1, id, NULL, NULL, 0);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "seven");
    PQclear(r);
    assert_null(db_exec_prepared(db, "t_get", 0, NULL, NULL, NULL, 0));
    s_assert_contains(db_error(db), "takes 1 parameters");
    assert_null(db_exec_prepared(db, "nope", 0, NULL, NULL, NULL, 0));
    s_assert_contains(db_error(db), "no such prepared statement");
    uint64_t first = db_connection_id(db);
    assert_int_equal(first, 1);

    /* The backend dies: the call that meets it fails, and says so ... */
    int pid1 = s_backend_pid(db);
    s_kill_backend(url, pid1);
    assert_null(db_exec_prepared(db, "t_get", 1, id, NULL, NULL, 0));
    assert_false(db_connected(db));
    assert_null(db_conn(db));
    assert_true(strlen(db_sqlstate(db)) == 5);
    assert_true(strlen(db_error(db)) > 0);

    /* ... and the next one reconnects and prepares again, unnoticed. */
    r = db_exec_prepared(db, "t_get", 1, id, NULL, NULL, 0);
    if (!r)
        fail_msg("after reconnect: %s", db_error(db));
    assert_string_equal(PQgetvalue(r, 0, 0), "seven");
    PQclear(r);
    assert_int_equal(db_connection_id(db), 2);
    int pid2 = s_backend_pid(db);
    assert_int_not_equal(pid1, pid2);

    /* The same through an explicit db_connect. */
    s_kill_backend(url, pid2);
    assert_int_equal(db_command(db, "SELECT 1"), -1);
    assert_int_equal(db_connect(db, 3000), 0);
    assert_true(db_connected(db));
    r = db_exec_prepared(db, "t_get", 1, id, NULL, NULL, 0);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "seven");
    PQclear(r);
    assert_int_equal(db_connection_id(db), 3);
    assert_int_equal(db_connect(db, 0), 0); /* already connected: no new connection */
    assert_int_equal(db_connection_id(db), 3);

    db_destroy(&db);
    free(url);
}

static int
s_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* bound, never listened: closed */
    return ntohs(a.sin_port);
}

static void
test_connect_to_closed_port_gives_up(void **state)
{
    (void)state;
    int port = s_closed_port();
    char url[128], target[64];
    snprintf(url, sizeof url, "postgresql://sx:s3cretpw@127.0.0.1:%d/sx", port);
    snprintf(target, sizeof target, "sx@127.0.0.1:%d/sx", port);
    db_t *db = db_new(url, "sx-test-db");
    assert_non_null(db);

    s_capture_t cap = s_capture_begin();
    int64_t t0 = s_ms();
    int rc = db_connect(db, 700);
    int64_t took = s_ms() - t0;
    char *log = s_capture_end(&cap);

    assert_int_equal(rc, -1);
    assert_false(db_connected(db));
    if (took < 650 || took > 1500)
        fail_msg("db_connect(700 ms) took %lld ms", (long long)took);
    s_assert_contains(db_error(db), "cannot connect to");
    s_assert_contains(db_error(db), target);
    s_assert_contains(db_error(db), "refused");
    assert_null(strstr(db_error(db), "s3cretpw"));
    /* 50, 100, 200, 400 ms of backoff (jittered down to half) fit 3 to 6 attempts. */
    int attempts = s_count(log, "db connect failed");
    if (attempts < 3 || attempts > 7)
        fail_msg("%d attempts logged:\n%s", attempts, log);
    s_assert_contains(log, "level=warn");
    s_assert_contains(log, target);
    assert_null(strstr(log, "s3cretpw"));
    free(log);

    /* A statement without a connection fails after the (short) reconnect wait. */
    db_set_reconnect_wait(db, 0);
    cap = s_capture_begin();
    t0 = s_ms();
    assert_null(db_query(db, "SELECT 1", 0, NULL));
    took = s_ms() - t0;
    free(s_capture_end(&cap));
    assert_true(took < 600);
    s_assert_contains(db_error(db), "cannot connect");
    db_destroy(&db);

    /* A malformed connection string is refused at once, without echoing it. */
    cap = s_capture_begin();
    assert_null(db_new("host=localhost password=s3cretpw bogus_option=1", "x"));
    log = s_capture_end(&cap);
    s_assert_contains(log, "malformed");
    assert_null(strstr(log, "s3cretpw"));
    free(log);
}

/* --- transactions ---------------------------------------------------------------------- */

static void
test_commit_and_rollback_seen_from_another_session(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int PRIMARY KEY)"), 0);
    assert_int_equal(db_prepare(db, "t_add", "INSERT INTO t VALUES ($1)", 1), 0);

    assert_int_equal(db_begin(db), 0);
    const char *one[1] = {"1"};
    PGresult *r = db_exec_prepared(db, "t_add", 1, one, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    s_assert_val(o, "SELECT count(*) FROM t", "0");
    assert_int_equal(db_commit(db), 0);
    s_assert_val(o, "SELECT count(*) FROM t", "1");

    /* Rolled back: never seen; the statement prepared in it still works afterwards. */
    assert_int_equal(db_prepare(db, "t_add2", "INSERT INTO t VALUES ($1 + 100)", 1), 0);
    assert_int_equal(db_begin(db), 0);
    const char *two[1] = {"2"};
    r = db_exec_prepared(db, "t_add2", 1, two, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(db_rollback(db), 0);
    s_assert_val(o, "SELECT count(*) FROM t", "1");
    r = db_exec_prepared(db, "t_add2", 1, two, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,102");

    /* COMMIT of a transaction that already failed does not report success. */
    assert_int_equal(db_begin(db), 0);
    const char *three[1] = {"3"};
    r = db_exec_prepared(db, "t_add", 1, three, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    assert_null(db_exec_prepared(db, "t_add", 1, one, NULL, NULL, 0)); /* duplicate key */
    assert_string_equal(db_sqlstate(db), "23505");
    assert_int_equal(db_commit(db), -1);
    assert_string_equal(db_sqlstate(db), "25P02");
    s_assert_contains(db_error(db), "rolled back");
    s_assert_val(o, "SELECT count(*) FROM t", "2");

    /* A connection lost inside a transaction: the rest of it cannot run in autocommit. */
    assert_int_equal(db_begin(db), 0);
    r = db_exec_prepared(db, "t_add", 1, three, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    s_kill_backend(url, s_backend_pid(db));
    const char *four[1] = {"4"};
    assert_null(db_exec_prepared(db, "t_add", 1, four, NULL, NULL, 0));
    assert_null(db_exec_prepared(db, "t_add", 1, four, NULL, NULL, 0));
    s_assert_contains(db_error(db), "db_rollback");
    assert_int_equal(db_rollback(db), 0);
    r = db_exec_prepared(db, "t_add", 1, four, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,4,102");

    PQfinish(o);
    db_destroy(&db);
    free(url);
}

typedef struct {
    int calls;
    int fail_first;  /* raise 40001 on this many calls */
    const char *url; /* for the functions that act from another session */
    int last_pid;
    pthread_t killer;
    bool killer_started;
} s_txarg_t;

static int
s_tx_forced(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    const char *v[1] = {"1"};
    PGresult *r = db_query(db, "INSERT INTO t VALUES ($1)", 1, v);
    if (!r)
        return -1;
    PQclear(r);
    if (a->calls <= a->fail_first)
        return db_command(db, "DO $$BEGIN RAISE EXCEPTION 'forced conflict' "
                              "USING ERRCODE = '40001'; END$$");
    return 0;
}

static int
s_tx_unique(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    return db_command(db, "INSERT INTO t VALUES (42)");
}

static int
s_tx_refuse(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    if (db_command(db, "INSERT INTO t VALUES (43)") < 0)
        return -1;
    return 1; /* a business rule says no */
}

static void
test_tx_retries_serialization_failure_then_gives_up(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int)"), 0);

    s_txarg_t a = {.fail_first = 2};
    assert_int_equal(db_tx(db, s_tx_forced, &a, 5), 0);
    assert_int_equal(a.calls, 3);
    s_assert_val(o, "SELECT count(*) FROM t", "1"); /* the failed tries left nothing */

    s_txarg_t b = {.fail_first = 1000};
    assert_int_equal(db_tx(db, s_tx_forced, &b, 3), -1);
    assert_int_equal(b.calls, 3);
    assert_string_equal(db_sqlstate(db), "40001");
    s_assert_contains(db_error(db), "gave up after 3 tries");
    s_assert_contains(db_error(db), "forced conflict");
    s_assert_val(o, "SELECT count(*) FROM t", "1");

    /* Other errors are not retried. */
    assert_int_equal(db_command(db, "CREATE UNIQUE INDEX ON t (id)"), 0);
    assert_int_equal(db_command(db, "INSERT INTO t VALUES (42)"), 0);
    s_txarg_t c = {0};
    assert_int_equal(db_tx(db, s_tx_unique, &c, 5), -1);
    assert_int_equal(c.calls, 1);
    assert_string_equal(db_sqlstate(db), "23505");
    s_txarg_t d = {0};
    assert_int_equal(db_tx(db, s_tx_refuse, &d, 5), -1);
    assert_int_equal(d.calls, 1);
    s_assert_val(o, "SELECT count(*) FROM t WHERE id = 43", "0");

    PQfinish(o);
    db_destroy(&db);
    free(url);
}

/* A real conflict: between our snapshot and our update, another session commits an
 * update of the same row, so REPEATABLE READ fails with 40001 and the retry wins. */
static int
s_tx_conflict(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    if (db_command(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ") < 0)
        return -1;
    PGresult *r = db_query(db, "SELECT n FROM acct WHERE id = 1", 0, NULL);
    if (!r)
        return -1;
    PQclear(r);
    if (a->calls == 1) {
        PGconn *o = s_other(a->url);
        s_exec(o, "UPDATE acct SET n = n + 100 WHERE id = 1");
        PQfinish(o);
    }
    return db_command(db, "UPDATE acct SET n = n + 1 WHERE id = 1");
}

static void
test_tx_retries_real_conflict(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    assert_int_equal(db_command(db, "CREATE TABLE acct (id int PRIMARY KEY, n int)"), 0);
    assert_int_equal(db_command(db, "INSERT INTO acct VALUES (1, 0)"), 0);
    s_txarg_t a = {.url = url};
    assert_int_equal(db_tx(db, s_tx_conflict, &a, 3), 0);
    assert_int_equal(a.calls, 2);
    PGconn *o = s_other(url);
    s_assert_val(o, "SELECT n FROM acct", "101");
    PQfinish(o);
    db_destroy(&db);
    free(url);
}

/* The connection dies mid-transaction, before COMMIT: retried on a new connection. */
static int
s_tx_lose_connection(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    if (db_command(db, "INSERT INTO t VALUES (1)") < 0)
        return -1;
    if (a->calls == 1)
        s_kill_backend(a->url, s_backend_pid(db));
    return db_command(db, "INSERT INTO t VALUES (2)");
}

static void
test_tx_retries_connection_lost_before_commit(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int)"), 0);
    s_txarg_t a = {.url = url};
    assert_int_equal(db_tx(db, s_tx_lose_connection, &a, 3), 0);
    assert_int_equal(a.calls, 2);
    assert_int_equal(db_connection_id(db), 2);
    PGconn *o = s_other(url);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2");
    PQfinish(o);
    db_destroy(&db);
    free(url);
}

static void *
s_killer(void *argp)
{
    s_txarg_t *a = argp;
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    PGconn *o = PQconnectdb(a->url);
    char pidtext[16];
    snprintf(pidtext, sizeof pidtext, "%d", a->last_pid);
    const char *vals[1] = {pidtext};
    PQclear(PQexecParams(o, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, vals, NULL, NULL,
                         0));
    PQfinish(o);
    return NULL;
}

/* BEGIN with the first statement, and the last statement with COMMIT, each in one round
 * trip (pipeline mode): the same outcomes as the separate calls. */
static void
test_pipelined_begin_and_commit(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int PRIMARY KEY)"), 0);
    assert_int_equal(db_prepare(db, "t_add", "INSERT INTO t VALUES ($1) RETURNING id * 10", 1), 0);
    const char *one[1] = {"1"}, *two[1] = {"2"}, *three[1] = {"3"};

    /* BEGIN + a statement: its rows, and the transaction stays open until COMMIT. */
    PGresult *r = db_begin_exec_prepared(db, "t_add", 1, one, NULL, NULL, 0);
    if (!r)
        fail_msg("db_begin_exec_prepared: %s", db_error(db));
    assert_string_equal(PQgetvalue(r, 0, 0), "10");
    PQclear(r);
    assert_int_equal(PQtransactionStatus(db_conn(db)), PQTRANS_INTRANS);
    s_assert_val(o, "SELECT count(*) FROM t", "0");
    /* ... a statement + COMMIT: both rows at once. */
    assert_int_equal(db_exec_prepared_commit(db, "t_add", 1, two, NULL, NULL), 0);
    assert_int_equal(PQtransactionStatus(db_conn(db)), PQTRANS_IDLE);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2");

    /* The statement after BEGIN fails: NULL with its SQLSTATE, in a failed transaction
     * that rolls back cleanly. */
    assert_null(db_begin_exec_prepared(db, "t_add", 1, one, NULL, NULL, 0));
    assert_string_equal(db_sqlstate(db), "23505");
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(PQtransactionStatus(db_conn(db)), PQTRANS_IDLE);

    /* The statement before COMMIT fails: nothing of the transaction commits. */
    r = db_begin_exec_prepared(db, "t_add", 1, three, NULL, NULL, 0);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(db_exec_prepared_commit(db, "t_add", 1, one, NULL, NULL), -1);
    assert_string_equal(db_sqlstate(db), "23505");
    assert_int_equal(db_rollback(db), 0);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2");

    /* An unregistered statement is refused before anything is sent. */
    assert_null(db_begin_exec_prepared(db, "nope", 0, NULL, NULL, NULL, 0));
    assert_string_equal(db_sqlstate(db), "26000");
    assert_int_equal(PQtransactionStatus(db_conn(db)), PQTRANS_IDLE);

    /* The backend dies between calls: the pipeline fails as lost, and the handle comes
     * back (prepared statements too) after the rollback. */
    s_kill_backend(url, s_backend_pid(db));
    assert_null(db_begin_exec_prepared(db, "t_add", 1, three, NULL, NULL, 0));
    assert_int_equal(db_rollback(db), 0);
    r = db_begin_exec_prepared(db, "t_add", 1, three, NULL, NULL, 0);
    if (!r)
        fail_msg("after reconnect: %s", db_error(db));
    PQclear(r);
    assert_int_equal(db_commit(db), 0);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t", "1,2,3");

    /* Killed while COMMIT runs (a deferred trigger sleeps in it): the outcome is unknown,
     * and said so. */
    assert_int_equal(db_command(db, "CREATE TABLE slow (id int)"), 0);
    assert_int_equal(db_command(db, "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE "
                                    "plpgsql AS $$BEGIN PERFORM pg_sleep(5); RETURN NULL; END$$"),
                     0);
    assert_int_equal(db_command(db, "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow "
                                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "
                                    "slow_commit()"),
                     0);
    assert_int_equal(db_prepare(db, "slow_add", "INSERT INTO slow VALUES ($1)", 1), 0);
    assert_int_equal(db_begin(db), 0);
    s_txarg_t a = {.url = url, .last_pid = s_backend_pid(db)};
    assert_int_equal(pthread_create(&a.killer, NULL, s_killer, &a), 0);
    int rc = db_exec_prepared_commit(db, "slow_add", 1, one, NULL, NULL);
    pthread_join(a.killer, NULL);
    assert_int_equal(rc, DB_UNKNOWN);
    s_assert_contains(db_error(db), "may or may not have committed");
    assert_false(db_connected(db));
    assert_int_equal(db_command(db, "SELECT 1"), 0);

    PQfinish(o);
    db_destroy(&db);
    free(url);
}

/* db_defer_prepared: the statement runs with the handle's next round trip, before that
 * call's own statement; its failure is that call's; a rollback drops it. */
static void
test_deferred_statements_ride_along(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    assert_int_equal(db_command(db, "CREATE TABLE t (id int PRIMARY KEY)"), 0);
    assert_int_equal(db_prepare(db, "t_add", "INSERT INTO t VALUES ($1)", 1), 0);
    assert_int_equal(db_prepare(db, "t_count", "SELECT count(*) FROM t WHERE id < $1", 1), 0);
    const char *v1[1] = {"1"}, *v2[1] = {"2"}, *big[1] = {"1000"};

    /* Queued: not run yet (the raw connection sees nothing); the next statement sees it. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v1, NULL, NULL), 0);
    s_assert_val(db_conn(db), "SELECT count(*) FROM t", "0");
    PGresult *r = db_exec_prepared(db, "t_count", 1, big, NULL, NULL, 0);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    /* Queued, then COMMIT: both go, in order (more than the queue holds at once). */
    for (int i = 10; i < 30; i++) {
        char text[8];
        snprintf(text, sizeof text, "%d", i);
        const char *vi[1] = {text};
        assert_int_equal(db_defer_prepared(db, "t_add", 1, vi, NULL, NULL), 0);
    }
    assert_int_equal(db_commit(db), 0);
    s_assert_val(o, "SELECT count(*) FROM t", "21");

    /* A queued statement that fails fails the COMMIT it rode with: nothing commits. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v2, NULL, NULL), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v1, NULL, NULL), 0); /* duplicate */
    assert_int_equal(db_commit(db), -1);
    assert_string_equal(db_sqlstate(db), "23505");
    s_assert_contains(db_error(db), "t_add");
    assert_int_equal(db_rollback(db), 0);
    s_assert_val(o, "SELECT count(*) FROM t WHERE id = 2", "0");

    /* ... and the statement it rode with, likewise. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v1, NULL, NULL), 0);
    assert_null(db_exec_prepared(db, "t_count", 1, big, NULL, NULL, 0));
    assert_string_equal(db_sqlstate(db), "23505");
    assert_int_equal(db_rollback(db), 0);

    /* A rollback drops what is queued: the next transaction does not run it. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v2, NULL, NULL), 0);
    assert_int_equal(db_rollback(db), 0);
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_commit(db), 0);
    s_assert_val(o, "SELECT count(*) FROM t WHERE id = 2", "0");

    /* Before db_command, alone; with the last statement and COMMIT, in one go. */
    assert_int_equal(db_begin(db), 0);
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v2, NULL, NULL), 0);
    assert_int_equal(db_command(db, "SELECT 1"), 0);
    s_assert_val(db_conn(db), "SELECT count(*) FROM t WHERE id = 2", "1");
    const char *v3[1] = {"3"}, *v4[1] = {"4"};
    assert_int_equal(db_defer_prepared(db, "t_add", 1, v3, NULL, NULL), 0);
    assert_int_equal(db_exec_prepared_commit(db, "t_add", 1, v4, NULL, NULL), 0);
    s_assert_val(o, "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE id < 10", "1,2,3,4");

    /* Several statements, one round trip: each its own result, in order; one failing
     * fails all (no result leaks). */
    assert_int_equal(db_prepare(db, "t_div", "SELECT 10 / $1::int", 1), 0);
    const char *zero[1] = {"0"}, *five[1] = {"5"};
    db_call_t calls[3] = {{"t_count", 1, big, NULL, NULL, 0},
                          {"t_div", 1, five, NULL, NULL, 0},
                          {"t_count", 1, v3, NULL, NULL, 0}};
    PGresult *res[3];
    assert_int_equal(db_exec_prepared_all(db, calls, 3, res), 0);
    assert_string_equal(PQgetvalue(res[0], 0, 0), "24");
    assert_string_equal(PQgetvalue(res[1], 0, 0), "2");
    assert_string_equal(PQgetvalue(res[2], 0, 0), "2");
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    calls[1].values = zero;
    assert_int_equal(db_exec_prepared_all(db, calls, 3, res), -1);
    assert_string_equal(db_sqlstate(db), "22012");
    assert_true(!res[0] && !res[1] && !res[2]);
    assert_int_equal(db_command(db, "SELECT 1"), 0); /* the handle goes on */

    /* An unregistered statement is refused at once. */
    assert_int_equal(db_defer_prepared(db, "nope", 0, NULL, NULL, NULL), -1);
    assert_string_equal(db_sqlstate(db), "26000");

    PQfinish(o);
    db_destroy(&db);
    free(url);
}

/* Inserts a row whose deferred trigger sleeps during COMMIT, and has a thread kill the
 * backend while COMMIT is in flight. */
static int
s_tx_die_in_commit(db_t *db, void *argp)
{
    s_txarg_t *a = argp;
    a->calls++;
    if (db_command(db, "INSERT INTO slow VALUES (1)") < 0)
        return -1;
    a->last_pid = s_backend_pid(db);
    if (!a->killer_started) {
        assert_int_equal(pthread_create(&a->killer, NULL, s_killer, a), 0);
        a->killer_started = true;
    }
    return 0;
}

static void
test_tx_connection_lost_during_commit_is_unknown(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    assert_int_equal(db_command(db, "CREATE TABLE slow (id int)"), 0);
    assert_int_equal(db_command(db, "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE "
                                    "plpgsql AS $$BEGIN PERFORM pg_sleep(5); RETURN NULL; END$$"),
                     0);
    assert_int_equal(db_command(db, "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow "
                                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "
                                    "slow_commit()"),
                     0);
    s_txarg_t a = {.url = url};
    int rc = db_tx(db, s_tx_die_in_commit, &a, 5);
    if (a.killer_started)
        pthread_join(a.killer, NULL);
    assert_int_equal(rc, DB_UNKNOWN);
    assert_int_equal(a.calls, 1); /* never retried blindly */
    s_assert_contains(db_error(db), "may or may not have committed");
    assert_false(db_connected(db));
    /* The handle comes back on the next call. */
    assert_int_equal(db_command(db, "SELECT 1"), 0);
    db_destroy(&db);
    free(url);
}

/* --- migrations ------------------------------------------------------------------------- */

static void
test_migrate_applies_in_numeric_order_once(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    char *dir = ts_mkdtemp("mig");
    s_write(dir, "001_create.sql", "CREATE TABLE steps (n int);\nINSERT INTO steps VALUES (1);\n");
    s_write(dir, "002_second.sql", "INSERT INTO steps VALUES (2);");
    s_write(dir, "010_tenth.sql", "INSERT INTO steps VALUES (10);\n-- comment\n");
    s_write(dir, "README.md", "not a migration");

    assert_int_equal(db_migrate(db, "svc", dir), 3);
    /* Unqualified names land in the schema (SET LOCAL search_path). */
    s_assert_val(o, "SELECT string_agg(n::text, ',' ORDER BY ctid) FROM svc.steps", "1,2,10");
    s_assert_val(o,
                 "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
                 "FROM svc.schema_migrations",
                 "1:001_create.sql,2:002_second.sql,10:010_tenth.sql");
    char sum[65];
    s_sha256sum(dir, "002_second.sql", sum);
    s_assert_val(o, "SELECT checksum FROM svc.schema_migrations WHERE version = 2", sum);
    s_assert_val(o, "SELECT current_setting('search_path')", "\"$user\", public");

    assert_int_equal(db_migrate(db, "svc", dir), 0);
    s_write(dir, "011_more.sql", "INSERT INTO steps VALUES (11);");
    assert_int_equal(db_migrate(db, "svc", dir), 1);
    assert_int_equal(db_migrate(db, "svc", dir), 0);
    s_assert_val(o, "SELECT string_agg(n::text, ',' ORDER BY ctid) FROM svc.steps", "1,2,10,11");

    /* Numeric, not lexical: 999 before 1000. */
    char *dir2 = ts_mkdtemp("mig");
    s_write(dir2, "1000_b.sql", "INSERT INTO o VALUES (1000);");
    s_write(dir2, "999_a.sql", "CREATE TABLE o (n int); INSERT INTO o VALUES (999);");
    assert_int_equal(db_migrate(db, "other_svc", dir2), 2);
    s_assert_val(o, "SELECT string_agg(n::text, ',' ORDER BY ctid) FROM other_svc.o", "999,1000");

    /* The runner's lock is released. */
    s_assert_val(o, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", "0");

    PQfinish(o);
    db_destroy(&db);
    free(dir);
    free(dir2);
    free(url);
}

static void
test_migrate_refuses_changed_or_missing_file(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    char *dir = ts_mkdtemp("mig");
    s_write(dir, "001_a.sql", "CREATE TABLE a (n int);");
    s_write(dir, "002_b.sql", "INSERT INTO a VALUES (2);");
    assert_int_equal(db_migrate(db, "svc", dir), 2);
    char old_sum[65], new_sum[65];
    s_sha256sum(dir, "002_b.sql", old_sum);

    /* Changed after it was applied (one byte), with a new file waiting behind it. */
    s_write(dir, "002_b.sql", "INSERT INTO a VALUES (3);");
    s_sha256sum(dir, "002_b.sql", new_sum);
    s_write(dir, "003_c.sql", "CREATE TABLE c (n int);");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "002_b.sql");
    s_assert_contains(db_error(db), "changed");
    s_assert_contains(db_error(db), old_sum);
    s_assert_contains(db_error(db), new_sum);
    s_assert_val(o, "SELECT to_regclass('svc.c') IS NULL", "t");
    s_assert_val(o, "SELECT count(*) FROM svc.schema_migrations", "2");

    /* Gone. */
    s_unlink(dir, "002_b.sql");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "002_b.sql");
    s_assert_contains(db_error(db), "missing");
    s_assert_val(o, "SELECT to_regclass('svc.c') IS NULL", "t");

    /* Renamed (same version, same bytes). */
    s_write(dir, "002_bee.sql", "INSERT INTO a VALUES (2);");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "002_bee.sql");

    /* Restored: the pending file goes in. Then one slipped in below the last applied. */
    s_unlink(dir, "002_bee.sql");
    s_write(dir, "002_b.sql", "INSERT INTO a VALUES (2);");
    assert_int_equal(db_migrate(db, "svc", dir), 1);
    s_write(dir, "000_early.sql", "CREATE TABLE late (n int);");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "000_early.sql");
    s_assert_contains(db_error(db), "out of order");
    s_assert_val(o, "SELECT to_regclass('svc.late') IS NULL", "t");
    s_assert_val(o, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", "0");

    PQfinish(o);
    db_destroy(&db);
    free(dir);
    free(url);
}

static void
test_migrate_refuses_bad_names_and_schema(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    static const char *const bad[] = {
        "01_short.sql", "001-dash.sql",       "001_Upper.sql", "abc.sql",
        "001_.sql",     "0000000001_ten.sql", "001_a b.sql",   NULL};
    for (int i = 0; bad[i]; i++) {
        char *dir = ts_mkdtemp("mig");
        s_write(dir, "001_ok.sql", "CREATE TABLE ok (n int);");
        s_write(dir, bad[i], "CREATE TABLE bad (n int);");
        if (db_migrate(db, "svc", dir) != -1)
            fail_msg("%s accepted", bad[i]);
        s_assert_contains(db_error(db), bad[i]);
        free(dir);
    }
    /* Nothing was touched: the files are checked before the database is. */
    s_assert_val(o, "SELECT count(*) FROM pg_namespace WHERE nspname = 'svc'", "0");

    char *dir = ts_mkdtemp("mig");
    s_write(dir, "001_a.sql", "CREATE TABLE a (n int);");
    s_write(dir, "0001_b.sql", "CREATE TABLE b (n int);");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "001_a.sql");
    s_assert_contains(db_error(db), "0001_b.sql");
    s_assert_contains(db_error(db), "same version");
    s_unlink(dir, "0001_b.sql");

    assert_int_equal(db_migrate(db, "svc", "/nonexistent/dir"), -1);
    s_assert_contains(db_error(db), "/nonexistent/dir");

    static const char *const bad_schema[] = {
        "",
        "Svc",
        "1svc",
        "svc-x",
        "svc; DROP TABLE x",
        "svc\"",
        "s\xc3\xa9",
        "a123456789012345678901234567890123456789012345678901234567890123",
        NULL};
    for (int i = 0; bad_schema[i]; i++) {
        if (db_migrate(db, bad_schema[i], dir) != -1)
            fail_msg("schema \"%s\" accepted", bad_schema[i]);
        s_assert_contains(db_error(db), "bad schema name");
    }
    s_assert_val(o,
                 "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND "
                 "nspname NOT IN ('public', 'information_schema')",
                 "0");
    /* 63 characters, leading underscore: fine. */
    assert_int_equal(
        db_migrate(db, "_23456789012345678901234567890123456789012345678901234567890123", dir), 1);

    PQfinish(o);
    db_destroy(&db);
    free(dir);
    free(url);
}

static void
test_migrate_failing_file_rolls_back_whole(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    db_t *db = s_db(url);
    PGconn *o = s_other(url);
    char *dir = ts_mkdtemp("mig");
    s_write(dir, "001_a.sql", "CREATE TABLE a (n int);");
    s_write(dir, "002_half.sql",
            "CREATE TABLE half (n int);\n"
            "INSERT INTO half VALUES (1);\n"
            "INSERT INTO nope VALUES (1);\n"
            "CREATE TABLE after_error (n int);\n");
    s_write(dir, "003_later.sql", "CREATE TABLE later (n int);");

    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "002_half.sql");
    s_assert_contains(db_error(db), "line 3");
    s_assert_contains(db_error(db), "relation \"nope\" does not exist");
    assert_string_equal(db_sqlstate(db), "42P01");
    s_assert_val(o, "SELECT to_regclass('svc.a') IS NOT NULL", "t");
    s_assert_val(o, "SELECT to_regclass('svc.half') IS NULL", "t");
    s_assert_val(o, "SELECT to_regclass('svc.later') IS NULL", "t");
    s_assert_val(o, "SELECT string_agg(version::text, ',') FROM svc.schema_migrations", "1");
    s_assert_val(o, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", "0");
    assert_true(db_connected(db));

    /* A file that never applied may be fixed; then the rest follows. */
    s_write(dir, "002_half.sql", "CREATE TABLE half (n int);\nINSERT INTO half VALUES (1);\n");
    assert_int_equal(db_migrate(db, "svc", dir), 2);
    s_assert_val(o, "SELECT count(*) FROM svc.half", "1");
    s_assert_val(o, "SELECT to_regclass('svc.later') IS NOT NULL", "t");

    /* A file that commits by itself is reported, not silently recorded. */
    s_write(dir, "004_commits.sql", "CREATE TABLE x4 (n int); COMMIT;");
    assert_int_equal(db_migrate(db, "svc", dir), -1);
    s_assert_contains(db_error(db), "004_commits.sql");
    s_assert_contains(db_error(db), "ended the transaction");
    s_assert_val(o, "SELECT count(*) FROM svc.schema_migrations", "3");

    /* COPY with STDIN/STDOUT cannot be fed from a file: refused, the session still usable. */
    static const char *const copies[] = {"CREATE TABLE cp (n int); COPY cp FROM STDIN;",
                                         "CREATE TABLE cp (n int); COPY cp TO STDOUT;", NULL};
    for (int i = 0; copies[i]; i++) {
        char *d = ts_mkdtemp("mig");
        s_write(d, "001_copy.sql", copies[i]);
        assert_int_equal(db_migrate(db, "copy_svc", d), -1);
        s_assert_contains(db_error(db), "001_copy.sql");
        s_assert_contains(db_error(db), "COPY");
        s_assert_contains(db_error(db), "not supported");
        assert_true(db_connected(db));
        s_assert_val(o, "SELECT to_regclass('copy_svc.cp') IS NULL", "t");
        assert_int_equal(db_command(db, "SELECT 1"), 0);
        free(d);
    }

    PQfinish(o);
    db_destroy(&db);
    free(dir);
    free(url);
}

typedef struct {
    const char *url;
    const char *dir;
    int applied;
    char err[512];
} s_migarg_t;

static void *
s_migrate_thread(void *argp)
{
    s_migarg_t *a = argp;
    db_t *db = db_new(a->url, "sx-test-migrate");
    if (!db || db_connect(db, 5000) != 0) {
        a->applied = -2;
    } else {
        a->applied = db_migrate(db, "svc", a->dir);
        snprintf(a->err, sizeof a->err, "%s", db_error(db));
    }
    db_destroy(&db);
    return NULL;
}

static void
test_migrate_concurrent_instances_apply_once(void **state)
{
    (void)state;
    char *url = ts_fresh_db("db");
    char *dir = ts_mkdtemp("mig");
    /* Slow enough that the second instance arrives while the first is working. */
    s_write(dir, "001_a.sql", "CREATE TABLE runs (file text); SELECT pg_sleep(0.3);");
    s_write(dir, "002_b.sql", "INSERT INTO runs VALUES ('002'); SELECT pg_sleep(0.1);");
    s_write(dir, "003_c.sql", "INSERT INTO runs VALUES ('003');");
    for (int round = 0; round < 3; round++) {
        s_migarg_t a = {url, dir, 0, ""}, b = {url, dir, 0, ""};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, s_migrate_thread, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, s_migrate_thread, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        if (a.applied < 0 || b.applied < 0)
            fail_msg("round %d: %d (%s) / %d (%s)", round, a.applied, a.err, b.applied, b.err);
        assert_int_equal(a.applied + b.applied, round == 0 ? 3 : 0);
    }
    PGconn *o = s_other(url);
    s_assert_val(o, "SELECT string_agg(file, ',' ORDER BY file) FROM svc.runs", "002,003");
    s_assert_val(o, "SELECT count(*) FROM svc.schema_migrations", "3");
    PQfinish(o);
    free(dir);
    free(url);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_parameters_stay_data),
        cmocka_unit_test(test_prepared_statement_survives_reconnect),
        cmocka_unit_test(test_connect_to_closed_port_gives_up),
        cmocka_unit_test(test_commit_and_rollback_seen_from_another_session),
        cmocka_unit_test(test_tx_retries_serialization_failure_then_gives_up),
        cmocka_unit_test(test_tx_retries_real_conflict),
        cmocka_unit_test(test_tx_retries_connection_lost_before_commit),
        cmocka_unit_test(test_tx_connection_lost_during_commit_is_unknown),
        cmocka_unit_test(test_pipelined_begin_and_commit),
        cmocka_unit_test(test_deferred_statements_ride_along),
        cmocka_unit_test(test_migrate_applies_in_numeric_order_once),
        cmocka_unit_test(test_migrate_refuses_changed_or_missing_file),
        cmocka_unit_test(test_migrate_refuses_bad_names_and_schema),
        cmocka_unit_test(test_migrate_failing_file_rolls_back_whole),
        cmocka_unit_test(test_migrate_concurrent_instances_apply_once),
    };
    return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
