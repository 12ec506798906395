/* db: one PostgreSQL connection (libpq) with reconnect and backoff, parameterised queries,
 * named prepared statements, transactions, and the migration runner.
 *
 *   db_t *db = db_new(config_str(cfg, "SX_PG_URL", NULL), "sx-intake");
 *   if (!db || db_connect(db, 30000) < 0) ...             // log and exit from main
 *   if (db_migrate(db, "intake", "schemas/sql/intake") < 0) ...  // refuses on drift
 *   db_prepare(db, "case_get", "SELECT state FROM intake.cases WHERE id = $1", 1);
 *   PGresult *r = db_exec_prepared(db, "case_get", 1, (const char *[]){id}, NULL, NULL, 0);
 *   ...
 *   PQclear(r);
 *   db_destroy(&db);
 *
 * SQL is never built from strings: values travel as parameters. The only text ever
 * spliced into SQL is the schema name in db_migrate, which is validated and quoted.
 *
 * Errors: functions return -1 or NULL and keep the reason in the handle (db_error,
 * db_sqlstate) until the next failure. A lost connection is one such failure: the call
 * that meets it fails (it is never retried silently, since the statement may or may not
 * have run), and the handle is marked. The next call reconnects first, with backoff for
 * at most the reconnect wait (db_set_reconnect_wait), and prepares again any named
 * statement it uses, so a caller only ever sees the one failed call. Exception: when the
 * connection was lost inside a transaction, every call but db_rollback and db_connect
 * fails until the caller calls db_rollback, so that the rest of a dead transaction
 * cannot run outside it, in autocommit, on a fresh connection.
 *
 * A db_t belongs to one thread at a time. Calls block (libpq's blocking API). No globals.
 * Server notices go to the log (warnings at warn, the rest at debug), not to stderr. */
#ifndef SX_DB_H
#define SX_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct db db_t;

/* db_commit and db_tx return this when the connection was lost after COMMIT was sent
 * and before its answer came: the transaction may or may not have committed. Callers
 * make their effects idempotent (an idempotency key, a cursor in the same transaction)
 * and find out by reading the state again after reconnecting. */
#define DB_UNKNOWN (-2)

/* Default for db_set_reconnect_wait. */
#define DB_RECONNECT_WAIT_MS 2000

/* A new handle for conninfo (a libpq URL or key=value string, e.g. SX_PG_URL) that
 * reports application_name (may be NULL) to the server. Does not connect: call
 * db_connect. Returns NULL when conninfo is malformed (logged at error, without its
 * text, which may hold a password) or when out of memory. */
db_t *db_new(const char *conninfo, const char *application_name);

/* db_new and db_connect(max_wait_ms) in one, for a service starting up: returns the
 * connected handle, or NULL (the reason logged at error, naming application_name) when
 * conninfo is malformed or the server did not answer in time. */
db_t *db_open(const char *conninfo, const char *application_name, int max_wait_ms);

/* Closes the connection and frees the handle; sets *self_p to NULL. Idempotent. An open
 * transaction is rolled back by the server. */
void db_destroy(db_t **self_p);

/* Connects, or reconnects when the connection was lost, trying again with exponential
 * backoff (50 ms doubling to 2 s, each delay jittered down to half) until connected or
 * max_wait_ms has passed (plus at most one last attempt of 250 ms). Each failed attempt
 * is logged at warn with the target (user@host:port/db) and libpq's reason, never the
 * password. Returns 0 when connected (at once if the connection is already good), or
 * -1 with the last reason in db_error. A new connection forgets a transaction that was
 * lost with the old one and prepares named statements again as they are used. */
int db_connect(db_t *self, int max_wait_ms);

/* How long a call that finds the connection lost waits to reconnect before failing
 * (default DB_RECONNECT_WAIT_MS; 0 = one attempt). */
void db_set_reconnect_wait(db_t *self, int max_wait_ms);

/* Server options ("-c name=value ...", at most 400 bytes) for every connection made from
 * now on, beside -c jit=off; for a connection whose statements need a planner setting
 * (e.g. creditpush's deliverer, queue.h). Not applied when the connection string has
 * options of its own (then logged at warn). Returns 0, or -1 when too long or out of
 * memory. */
int db_set_options(db_t *self, const char *pg_options);

/* Sets statement_timeout (ms, 0 = none) for this connection and every later one.
 * Not set unless asked. Returns 0, or -1 when it could not be applied now (it is still
 * remembered for the next connection). */
int db_set_statement_timeout(db_t *self, int ms);

/* True when the handle holds a connection that libpq still believes good. */
bool db_connected(const db_t *self);

/* Counts connections made: changes whenever a reconnect gives a new backend, so a caller
 * holding session state (LISTEN, advisory locks) knows to set it up again. 0 before the
 * first connect. */
uint64_t db_connection_id(const db_t *self);

/* The live PGconn for advanced use (PQsocket for LISTEN/NOTIFY), owned by the handle
 * and valid until the next db call that reconnects; NULL when not connected. */
PGconn *db_conn(db_t *self);

/* Registers a named prepared statement with nparams parameters ($1..$n, types inferred
 * by the server). It is prepared lazily on each connection at first use. name is at
 * most 63 bytes. Registering the same name again with the same sql and nparams is a
 * no-op; with a different one it is an error. Returns 0 or -1. */
int db_prepare(db_t *self, const char *name, const char *sql, int nparams);

/* As db_prepare, for a statement on a schema chosen at run time (a service's own, or the
 * producer's whose outbox a subscriber reads): every "{s}" in tmpl becomes the quoted
 * schema name, which must match [a-z_][a-z0-9_]{0,62} (identifiers cannot be
 * parameters; this is the one other place a name is spliced, after db_migrate). The
 * statement is named "<what>:<schema>" (written into name, DB_STMT_NAME_MAX bytes) so
 * one connection can hold it for several schemas. Returns 0, or -1 (bad schema, name or
 * SQL too long, or db_prepare's errors). */
#define DB_STMT_NAME_MAX 64
int db_prepare_in(db_t *self, const char *schema, const char *what, const char *tmpl, int nparams,
                  char name[DB_STMT_NAME_MAX]);

/* Executes the prepared statement name with nparams values (values[i] == NULL is SQL
 * NULL; lengths and formats as for PQexecPrepared, NULL = all text), asking for results
 * in result_format (0 text, 1 binary). Returns the result (command or rows; the caller
 * PQclears it), or NULL with the reason in db_error/db_sqlstate. nparams must match
 * db_prepare. */
PGresult *db_exec_prepared(db_t *self, const char *name, int nparams, const char *const *values,
                           const int *lengths, const int *formats, int result_format);

/* BEGIN and then db_exec_prepared, in one round trip (libpq pipeline mode). Returns
 * the statement's result, or NULL with the reason; a transaction it leaves open (BEGIN
 * went through, the statement failed) is in error: db_rollback it. */
PGresult *db_begin_exec_prepared(db_t *self, const char *name, int nparams,
                                 const char *const *values, const int *lengths, const int *formats,
                                 int result_format);

/* db_exec_prepared (its result discarded) and then COMMIT, in one round trip. Returns as
 * db_commit: 0 committed; -1 not committed (the statement or COMMIT failed, the reason in
 * db_error: db_rollback the transaction); DB_UNKNOWN when the connection was lost once
 * COMMIT may have reached the server. */
int db_exec_prepared_commit(db_t *self, const char *name, int nparams, const char *const *values,
                            const int *lengths, const int *formats);

/* One call of db_exec_prepared_all: the arguments of db_exec_prepared. */
typedef struct {
    const char *name;
    int nparams;
    const char *const *values;
    const int *lengths;
    const int *formats;
    int result_format;
} db_call_t;

#define DB_CALLS_MAX 8

/* The prepared statements calls[0..n) (n <= DB_CALLS_MAX), in order and in one round
 * trip (libpq pipeline mode): for independent statements, reads most often. out[i] gets
 * call i's result (the caller PQclears each). Returns 0; or -1 with the reason when one
 * failed, and every out[i] NULL (a transaction open is then in error: roll it back). */
int db_exec_prepared_all(db_t *self, const db_call_t *calls, size_t n, PGresult **out);

/* Queues the prepared statement name (inside a transaction) to run with the handle's
 * next round trip instead of now: it rides along with the next db_exec_prepared,
 * db_exec_prepared_commit or db_commit, in order before that call's own statement, or
 * goes alone before a db_query or db_command. For writes whose result the caller does not
 * read; the values are copied. Its failure is that next call's failure (db_error names
 * the statement), and a rollback or a lost connection drops it with the transaction.
 * Returns 0, or -1 when name is not registered, the connection is down or memory ran
 * out. */
int db_defer_prepared(db_t *self, const char *name, int nparams, const char *const *values,
                      const int *lengths, const int *formats);

/* One-off parameterised SQL (a single statement) with text values (NULL = SQL NULL)
 * and text results. Returns the result (caller PQclears) or NULL with the reason. */
PGresult *db_query(db_t *self, const char *sql, int nparams, const char *const *values);

/* A fixed, parameter-free single statement whose result is not needed: "BEGIN",
 * "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "LISTEN x". Returns 0 or -1. */
int db_command(db_t *self, const char *sql);

/* BEGIN. Returns 0 or -1. */
int db_begin(db_t *self);

/* COMMIT. Returns 0 when committed; -1 when it did not commit (the server refused it,
 * e.g. a serialization failure at commit, or the transaction had already failed and
 * COMMIT rolled it back, or the connection was gone before COMMIT could be sent);
 * DB_UNKNOWN when the connection was lost after COMMIT was sent. */
int db_commit(db_t *self);

/* ROLLBACK. Returns 0, also when the connection was lost (the server discards an
 * uncommitted transaction with its session; this clears the lost-in-transaction state),
 * or -1 when the server refused. */
int db_rollback(db_t *self);

/* Runs fn(self, arg) inside BEGIN ... COMMIT, at most max_tries (>= 1) times.
 * fn returns 0 to commit, anything else to roll back; it must not BEGIN, COMMIT or
 * ROLLBACK itself (SET TRANSACTION as its first statement is fine), and it must leave no
 * effect outside the database that a retry would repeat. The whole transaction is run
 * again, after a short jittered pause, when it failed with a serialization failure
 * (40001) or a deadlock (40P01), in fn or at COMMIT, or when the connection was lost
 * before COMMIT was sent. Returns 0 when committed; -1 when it did not commit (fn failed
 * for another reason, or the tries ran out; db_error says which and why); DB_UNKNOWN
 * when the connection was lost during COMMIT (never retried: see DB_UNKNOWN). */
int db_tx(db_t *self, int (*fn)(db_t *db, void *arg), void *arg, int max_tries);

/* The reason for the most recent failure ("" when none yet): a single line, never the
 * password. Owned by the handle, valid until the next call. */
const char *db_error(const db_t *self);

/* The SQLSTATE of the most recent failure ("" when it had none; "08006" when the
 * connection was lost and the server said nothing). Owned by the handle. */
const char *db_sqlstate(const db_t *self);

/* Applies the migrations in dir to schema and returns how many it applied (0 when all
 * are), or -1 with the reason in db_error, in which case nothing more is applied.
 *
 * schema must match [a-z_][a-z0-9_]{0,62}. Files are NNN_name.sql (NNN at least 3 and
 * at most 9 digits, the version; name [a-z0-9_]+); files not ending in .sql are
 * ignored; any other *.sql name, two files with one version, or a file holding a NUL
 * byte is an error naming the file. The schema and <schema>.schema_migrations (version,
 * name, checksum = SHA-256 hex of the file's bytes, applied_at) are created when missing
 * (the schema only when absent, so a role that owns a pre-made schema needs no CREATE
 * on the database). A session advisory lock for the schema (two-key form: 0x73786d67
 * "sxmg", hashtext(schema)) is held throughout, so instances starting together apply
 * each file once; the rest wait for it. Before applying anything, it refuses when an
 * applied version's file is gone, renamed or changed (naming the file and both
 * checksums), or when a pending file's version is lower than the highest applied one
 * (it would run out of order). Then each pending file, in numeric order, runs in its own
 * transaction with SET LOCAL search_path TO <schema>, public, as one multi-statement
 * text (files are trusted code), and its record is inserted in the same transaction.
 * A failing file is rolled back whole; the error names the file, the line and the
 * server's message; files before it stay applied, files after it are not tried.
 * Must be called outside a transaction. */
int db_migrate(db_t *self, const char *schema, const char *dir);

/* As db_migrate, for a second set of migrations kept in the same schema, recorded in
 * <schema>.<set>_migrations instead of schema_migrations (set: [a-z][a-z0-9_]{0,31}).
 * The bus's tables (schemas/sql/bus) are such a set, applied to every service's schema
 * beside the service's own files. db_migrate(db, s, dir) is db_migrate_set(db, s,
 * "schema", dir). dir NULL means the set's folder in the repository's migrations:
 * $SX_SCHEMAS/sql/<set>, or schemas/sql/<set> when SX_SCHEMAS is unset. */
int db_migrate_set(db_t *self, const char *schema, const char *set, const char *dir);

#endif
