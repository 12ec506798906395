#include "db.h"
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#define DB_BACKOFF_FIRST_MS 50
#define DB_BACKOFF_MAX_MS   2000
#define DB_LAST_ATTEMPT_MS  250
#define DB_MIGRATION_MAX    (16 * 1024 * 1024)
#define DB_MIGRATE_LOCK_KEY 0x73786d67 /* "sxmg": the migration runner's advisory lock class */

/* A registered named prepared statement. */
typedef struct {
    char *name;
    char *sql;
    int nparams;
    uint64_t prepared_on; /* connection id it was last prepared on; 0 = never */
} s_stmt_t;

/* A statement db_defer_prepared queued for the next round trip, its values copied. */
typedef struct {
    size_t stmt;   /* index in stmts */
    char *buf;     /* the values, one block */
    char **values; /* into buf (NULL = SQL NULL) */
    int *lengths;  /* each value's length */
    int *formats;  /* each value's format */
} s_deferred_t;

#define DB_DEFER_MAX 8 /* statements queued before a round trip is forced */

struct db {
    char *conninfo;           /* as given; may hold the password, so never logged */
    char *appname;            /* application_name, or NULL */
    char *options;            /* db_set_options: the server options beyond jit=off, or NULL */
    char target[256];         /* user@host:port/db, for logs and errors */
    PGconn *conn;             /* NULL until the first successful connect */
    uint64_t conn_id;         /* connections made so far */
    bool lost;                /* the connection broke: reconnect before the next statement */
    bool lost_in_tx;          /* ... and it took an open transaction with it */
    int reconnect_wait_ms;    /* how long a call waits to reconnect */
    int statement_timeout_ms; /* 0 = not set */
    s_stmt_t *stmts;          /* registered prepared statements */
    size_t nstmts, stmts_cap;
    s_deferred_t deferred[DB_DEFER_MAX]; /* db_defer_prepared's queue */
    size_t ndeferred;
    uint64_t rng;     /* xorshift state for jitter */
    char err[2048];   /* reason for the last failure */
    char sqlstate[6]; /* its SQLSTATE, or "" */
};

/* --- small helpers --------------------------------------------------------------------- */

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t
s_rand(db_t *self)
{
    uint64_t x = self->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A delay jittered into [ms/2, ms], so instances that lost the server together do not
 * come back in lockstep. */
static int64_t
s_jitter(db_t *self, int64_t ms)
{
    if (ms < 2)
        return ms;
    return ms / 2 + (int64_t)(s_rand(self) % (uint64_t)(ms / 2 + 1));
}

/* Turns runs of newlines, tabs and spaces into one space and trims the ends, so that
 * errors are one line. */
static void
s_flatten(char *s)
{
    char *w = s;
    bool space = true; /* drops leading space */
    for (const char *p = s; *p; p++) {
        bool ws = *p == '\n' || *p == '\r' || *p == '\t' || *p == ' ';
        if (ws && space)
            continue;
        *w++ = ws ? ' ' : *p;
        space = ws;
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

static void s_errf(db_t *self, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_errf(db_t *self, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
    s_flatten(self->err);
    snprintf(self->sqlstate, sizeof self->sqlstate, "%s", sqlstate ? sqlstate : "");
}

/* The server's message for a failed result ("primary; detail: ..."), or libpq's when
 * there is no result or it carries none. */
static void
s_pg_message(PGconn *conn, const PGresult *res, char *buf, size_t size)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary) {
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        snprintf(buf, size, "%s%s%s", primary, detail ? "; detail: " : "", detail ? detail : "");
    } else {
        const char *m = res ? PQresultErrorMessage(res) : "";
        if (!*m && conn)
            m = PQerrorMessage(conn);
        snprintf(buf, size, "%s", *m ? m : "unknown libpq error");
    }
    s_flatten(buf);
}

/* Records the failure of a statement: the server's message prefixed by what, and its
 * SQLSTATE ("08006" when the connection is gone and the server said nothing). */
static void
s_err_result(db_t *self, const PGresult *res, const char *what)
{
    char msg[1536];
    s_pg_message(self->conn, res, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    bool bad = !self->conn || PQstatus(self->conn) != CONNECTION_OK;
    if (!state)
        state = bad ? "08006" : "";
    s_errf(self, state, "%s%s%s%s", what ? what : "", what ? ": " : "", msg,
           bad ? " (connection lost)" : "");
}

/* After a failed call: when the connection is gone, mark it, and remember whether a
 * transaction was open (pre is the transaction status before the call). */
static void
s_after_failure(db_t *self, PGTransactionStatusType pre)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return;
    if (!self->lost) {
        bool in_tx = pre == PQTRANS_INTRANS || pre == PQTRANS_INERROR || pre == PQTRANS_ACTIVE;
        log_warn("db connection lost", "target=%s in_transaction=%s reason=%s", self->target,
                 in_tx ? "yes" : "no", self->err);
        self->lost = true;
        self->lost_in_tx = in_tx;
    }
}

/* Keeps server notices out of stderr: warnings go to the log at warn, the rest at debug. */
static void
s_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (sev && strcmp(sev, "WARNING") == 0)
        log_warn("db server warning", "text=%s", msg ? msg : "");
    else
        log_debug("db server notice", "severity=%s text=%s", sev ? sev : "", msg ? msg : "");
}

/* --- construction ---------------------------------------------------------------------- */

static void
s_describe_target(db_t *self, PQconninfoOption *opts)
{
    const char *host = NULL, *hostaddr = NULL, *port = NULL, *user = NULL, *dbname = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
    }
    snprintf(self->target, sizeof self->target, "%s%s%s:%s/%s", user ? user : "", user ? "@" : "",
             host       ? host
             : hostaddr ? hostaddr
                        : "(default)",
             port ? port : "(default)", dbname ? dbname : "(default)");
}

db_t *
db_new(const char *conninfo, const char *application_name)
{
    assert(conninfo);
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        /* libpq's reason can quote a piece of the string, and the string can hold the
         * password: say only that it is malformed. */
        log_error("db connection string is malformed", "hint=%s",
                  "check SX_PG_URL, e.g. with psql");
        PQfreemem(perr);
        return NULL;
    }
    db_t *self = calloc(1, sizeof *self);
    if (!self) {
        PQconninfoFree(opts);
        return NULL;
    }
    s_describe_target(self, opts);
    PQconninfoFree(opts);
    self->conninfo = strdup(conninfo);
    self->appname = application_name ? strdup(application_name) : NULL;
    if (!self->conninfo || (application_name && !self->appname)) {
        db_destroy(&self);
        return NULL;
    }
    self->reconnect_wait_ms = DB_RECONNECT_WAIT_MS;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    self->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
                (uint64_t)(uintptr_t)self;
    if (!self->rng)
        self->rng = 0x9E3779B97F4A7C15ULL;
    return self;
}

/* Drops the queued statements (run, failed, or rolled back with their transaction). */
static void
s_deferred_clear(db_t *self)
{
    for (size_t i = 0; i < self->ndeferred; i++) {
        free(self->deferred[i].buf);
        free(self->deferred[i].values);
    }
    self->ndeferred = 0;
}

void
db_destroy(db_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        db_t *self = *self_p;
        s_deferred_clear(self);
        if (self->conn)
            PQfinish(self->conn);
        for (size_t i = 0; i < self->nstmts; i++) {
            free(self->stmts[i].name);
            free(self->stmts[i].sql);
        }
        free(self->stmts);
        free(self->conninfo);
        free(self->appname);
        free(self->options);
        free(self);
        *self_p = NULL;
    }
}

/* --- connecting ------------------------------------------------------------------------ */

/* One connection attempt, abandoned at deadline (monotonic ms). Returns the connection,
 * or NULL with the reason in reason. */
static PGconn *
s_try_connect(db_t *self, int64_t deadline, char *reason, size_t size)
{
    const char *kw[5], *val[5];
    char options[512];
    int n = 0;
    kw[n] = "dbname", val[n++] = self->conninfo;
    kw[n] = "client_encoding", val[n++] = "UTF8";
    /* No JIT: the services' statements are short, and a first plan costed from missing
     * statistics (a young bus_head, say) crossed jit_above_cost and spent ~0.3 s
     * compiling a statement that runs in a millisecond. An "options" of the caller's
     * own is kept as it is. */
    if (!strstr(self->conninfo, "options")) {
        snprintf(options, sizeof options, "-c jit=off%s%s", self->options ? " " : "",
                 self->options ? self->options : "");
        kw[n] = "options", val[n++] = options;
    }
    if (self->appname)
        kw[n] = "application_name", val[n++] = self->appname;
    kw[n] = NULL, val[n] = NULL;

    PGconn *c = PQconnectStartParams(kw, val, 1);
    if (!c) {
        snprintf(reason, size, "out of memory");
        return NULL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            snprintf(reason, size, "timed out");
            PQfinish(c);
            return NULL;
        }
        struct pollfd p = {PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r < 0 && errno != EINTR) {
            snprintf(reason, size, "poll: %s", strerror(errno));
            PQfinish(c);
            return NULL;
        }
        if (r > 0)
            st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(reason, size, "%s", PQerrorMessage(c));
        s_flatten(reason);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, s_notice, NULL);
    if (self->statement_timeout_ms > 0) {
        char v[24];
        snprintf(v, sizeof v, "%d", self->statement_timeout_ms);
        const char *vals[1] = {v};
        PGresult *r = PQexecParams(c, "SELECT set_config('statement_timeout', $1, false)", 1, NULL,
                                   vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            char m[512];
            s_pg_message(c, r, m, sizeof m);
            snprintf(reason, size, "setting statement_timeout: %s", m);
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
    }
    return c;
}

static int
s_connect(db_t *self, int max_wait_ms)
{
    if (self->conn && !self->lost && PQstatus(self->conn) == CONNECTION_OK)
        return 0;
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
    self->lost = true;
    self->lost_in_tx = false; /* the server discards it with the old session */

    int64_t start = s_now_ms();
    int64_t deadline = start + (max_wait_ms > 0 ? max_wait_ms : 0);
    int64_t delay = DB_BACKOFF_FIRST_MS;
    char reason[1024];
    for (int attempt = 1;; attempt++) {
        int64_t now = s_now_ms();
        int64_t until = deadline > now + DB_LAST_ATTEMPT_MS ? deadline : now + DB_LAST_ATTEMPT_MS;
        PGconn *c = s_try_connect(self, until, reason, sizeof reason);
        if (c) {
            self->conn = c;
            self->conn_id++;
            self->lost = false;
            if (attempt > 1 || self->conn_id > 1)
                log_info("db connected", "target=%s attempts=%d connection=%" PRIu64, self->target,
                         attempt, self->conn_id);
            return 0;
        }
        int64_t left = deadline - s_now_ms();
        int64_t pause = left > 0 ? s_jitter(self, delay) : 0;
        if (pause > left)
            pause = left;
        log_warn("db connect failed", "target=%s attempt=%d reason=%s retry_in_ms=%" PRId64,
                 self->target, attempt, reason, left > 0 ? pause : (int64_t)-1);
        if (left <= 0) {
            s_errf(self, "08001", "cannot connect to %s after %d attempt%s in %" PRId64 " ms: %s",
                   self->target, attempt, attempt == 1 ? "" : "s", s_now_ms() - start, reason);
            return -1;
        }
        s_sleep_ms(pause);
        delay = delay * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : delay * 2;
    }
}

db_t *
db_open(const char *conninfo, const char *application_name, int max_wait_ms)
{
    db_t *db = db_new(conninfo, application_name);
    if (db && db_connect(db, max_wait_ms) < 0) {
        log_error("postgres not reachable", "conn=%s error=%s",
                  application_name ? application_name : "-", db_error(db));
        db_destroy(&db);
    }
    return db;
}

int
db_connect(db_t *self, int max_wait_ms)
{
    assert(self);
    return s_connect(self, max_wait_ms);
}

void
db_set_reconnect_wait(db_t *self, int max_wait_ms)
{
    assert(self);
    self->reconnect_wait_ms = max_wait_ms > 0 ? max_wait_ms : 0;
}

bool
db_connected(const db_t *self)
{
    assert(self);
    return self->conn && !self->lost && PQstatus(self->conn) == CONNECTION_OK;
}

uint64_t
db_connection_id(const db_t *self)
{
    assert(self);
    return self->conn_id;
}

PGconn *
db_conn(db_t *self)
{
    assert(self);
    return db_connected(self) ? self->conn : NULL;
}

const char *
db_error(const db_t *self)
{
    assert(self);
    return self->err;
}

const char *
db_sqlstate(const db_t *self)
{
    assert(self);
    return self->sqlstate;
}

/* Makes the handle ready for a statement: refuses while a lost transaction has not been
 * rolled back, and reconnects (with backoff, for the reconnect wait) when needed. */
static int
s_ready(db_t *self)
{
    if (self->lost || self->lost_in_tx)
        s_deferred_clear(self); /* their session is gone */
    if (self->lost_in_tx) {
        s_errf(self, "08006",
               "the connection was lost inside a transaction: call db_rollback before "
               "anything else");
        return -1;
    }
    if (self->conn && !self->lost && PQstatus(self->conn) == CONNECTION_OK)
        return 0;
    return s_connect(self, self->reconnect_wait_ms);
}

int
db_set_options(db_t *self, const char *pg_options)
{
    assert(self && pg_options);
    if (strlen(pg_options) > 400)
        return -1;
    if (strstr(self->conninfo, "options"))
        log_warn("db connection string has its own options: these are not added",
                 "conn=%s options=%s", self->appname ? self->appname : "-", pg_options);
    char *o = strdup(pg_options);
    if (!o)
        return -1;
    free(self->options);
    self->options = o;
    return 0;
}

int
db_set_statement_timeout(db_t *self, int ms)
{
    assert(self);
    self->statement_timeout_ms = ms > 0 ? ms : 0;
    if (!db_connected(self) || self->lost_in_tx)
        return 0;
    char v[24];
    snprintf(v, sizeof v, "%d", self->statement_timeout_ms);
    const char *vals[1] = {v};
    PGresult *r = db_query(self, "SELECT set_config('statement_timeout', $1, false)", 1, vals);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* --- statements ------------------------------------------------------------------------ */

/* Keeps a result that succeeded; otherwise records why, marks a lost connection, frees
 * it and returns NULL. */
static PGresult *
s_check(db_t *self, PGresult *res, PGTransactionStatusType pre, const char *what)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    if (res && st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR)
        s_errf(self, "", "%s%sunexpected result %s", what ? what : "", what ? ": " : "",
               PQresStatus(st));
    else
        s_err_result(self, res, what);
    PQclear(res);
    s_after_failure(self, pre);
    return NULL;
}

static s_stmt_t *
s_find(db_t *self, const char *name)
{
    for (size_t i = 0; i < self->nstmts; i++)
        if (strcmp(self->stmts[i].name, name) == 0)
            return &self->stmts[i];
    return NULL;
}

int
db_prepare(db_t *self, const char *name, const char *sql, int nparams)
{
    assert(self && name && sql);
    if (!*name || strlen(name) > 63 || nparams < 0 || nparams > 65535) {
        s_errf(self, "", "db_prepare: bad name \"%.80s\" or parameter count %d", name, nparams);
        return -1;
    }
    s_stmt_t *s = s_find(self, name);
    if (s) {
        if (strcmp(s->sql, sql) == 0 && s->nparams == nparams)
            return 0;
        s_errf(self, "", "db_prepare: %s is already registered with other SQL", name);
        return -1;
    }
    if (self->nstmts == self->stmts_cap) {
        size_t cap = self->stmts_cap ? self->stmts_cap * 2 : 16;
        s_stmt_t *n = realloc(self->stmts, cap * sizeof *n);
        if (!n) {
            s_errf(self, "", "db_prepare: out of memory");
            return -1;
        }
        self->stmts = n;
        self->stmts_cap = cap;
    }
    s_stmt_t st = {strdup(name), strdup(sql), nparams, 0};
    if (!st.name || !st.sql) {
        free(st.name);
        free(st.sql);
        s_errf(self, "", "db_prepare: out of memory");
        return -1;
    }
    self->stmts[self->nstmts++] = st;
    return 0;
}

static int s_pipe(db_t *self, bool begin, const s_stmt_t *s, const char *const *values,
                  const int *lengths, const int *formats, int result_format, PGresult **out,
                  int *crc);

static s_stmt_t *s_stmt_ready(db_t *self, const char *name, int nparams);

PGresult *
db_exec_prepared(db_t *self, const char *name, int nparams, const char *const *values,
                 const int *lengths, const int *formats, int result_format)
{
    assert(self && name);
    s_stmt_t *s = s_stmt_ready(self, name, nparams);
    if (!s)
        return NULL;
    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    if (self->ndeferred > 0) { /* the queued statements ride along */
        PGresult *out;
        s_pipe(self, false, s, values, lengths, formats, result_format, &out, NULL);
        return out;
    }
    return s_check(
        self, PQexecPrepared(self->conn, name, nparams, values, lengths, formats, result_format),
        pre, name);
}

/* The main result of one query of a pipeline (its first, or its error), the rest of its
 * results read and freed; NULL when the connection gave nothing. */
static PGresult *
s_pipe_result(PGconn *c)
{
    PGresult *keep = NULL, *r;
    while ((r = PQgetResult(c)) != NULL) {
        if (!keep || PQresultStatus(r) == PGRES_FATAL_ERROR) {
            PQclear(keep);
            keep = r;
        } else {
            PQclear(r);
        }
    }
    return keep;
}

/* One round trip in libpq's pipeline mode: the queued statements (db_defer_prepared),
 * BEGIN when begin, the prepared statements calls[0..n) (registered as stmts[i]; their
 * results in out[i]), and COMMIT when crc. Returns 0 when every statement (COMMIT aside)
 * succeeded; or -1 with the reason, every out[i] NULL (a transaction left open has
 * failed: roll it back). *crc gets COMMIT's outcome as db_commit returns it (-1 whenever
 * a statement before it failed). The queue is emptied either way. */
static int
s_pipe_n(db_t *self, bool begin, const s_stmt_t *const *stmts, const db_call_t *calls, size_t n,
         PGresult **out, int *crc)
{
    PGconn *c = self->conn;
    PGTransactionStatusType pre = PQtransactionStatus(c);
    bool in_tx = begin || pre != PQTRANS_IDLE;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (crc)
        *crc = -1;
    if (PQenterPipelineMode(c) != 1) {
        s_err_result(self, NULL, "pipeline mode");
        s_deferred_clear(self);
        return -1;
    }
    bool sent = true;
    for (size_t i = 0; i < self->ndeferred && sent; i++) {
        const s_deferred_t *d = &self->deferred[i];
        const s_stmt_t *ds = &self->stmts[d->stmt];
        sent = PQsendQueryPrepared(c, ds->name, ds->nparams, (const char *const *)d->values,
                                   d->lengths, d->formats, 0);
    }
    sent = sent && (!begin || PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0));
    for (size_t i = 0; i < n && sent; i++)
        sent = PQsendQueryPrepared(c, stmts[i]->name, stmts[i]->nparams, calls[i].values,
                                   calls[i].lengths, calls[i].formats, calls[i].result_format);
    sent = sent && (!crc || PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) &&
           PQpipelineSync(c);
    if (!sent) {
        /* A part may have reached the server: the session is given up either way. */
        s_err_result(self, NULL, crc ? "COMMIT not sent whole" : "pipeline not sent");
        self->lost = true;
        self->lost_in_tx = !crc && in_tx;
        if (crc) {
            *crc = DB_UNKNOWN;
            log_warn("db connection lost during COMMIT", "target=%s outcome=unknown reason=%s",
                     self->target, self->err);
        }
        s_deferred_clear(self);
        return -1;
    }
    bool failed = false, refused = false; /* refused: by the server, which then skips COMMIT */
    for (size_t i = 0; i < self->ndeferred; i++) {
        const s_deferred_t *d = &self->deferred[i];
        PGresult *r = s_pipe_result(c);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (!failed) {
            const char *name = self->stmts[d->stmt].name;
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
                s_err_result(self, r, name);
                refused = r && PQstatus(c) == CONNECTION_OK;
                failed = true;
            }
        }
        PQclear(r);
    }
    if (begin) {
        PGresult *b = s_pipe_result(c);
        if (!failed && (!b || PQresultStatus(b) != PGRES_COMMAND_OK)) {
            s_err_result(self, b, "BEGIN");
            refused = b && PQstatus(c) == CONNECTION_OK;
            failed = true;
        }
        PQclear(b);
    }
    for (size_t i = 0; i < n; i++) {
        PGresult *r = s_pipe_result(c);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (!failed && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
            out[i] = r;
            r = NULL;
        } else if (!failed) {
            s_err_result(self, r, stmts[i]->name);
            refused = r && PQstatus(c) == CONNECTION_OK;
            failed = true;
        }
        PQclear(r);
    }
    PGresult *cr = crc ? s_pipe_result(c) : NULL;
    /* The Sync's result (by then a broken connection shows), then back to ordinary calls. */
    PQclear(PQgetResult(c));
    if (PQexitPipelineMode(c) != 1) {
        PQclear(s_pipe_result(c));
        PQexitPipelineMode(c);
    }
    s_deferred_clear(self);
    bool committed = crc && !failed && cr && PQresultStatus(cr) == PGRES_COMMAND_OK &&
                     strcmp(PQcmdStatus(cr), "COMMIT") == 0;
    if (committed) {
        *crc = 0;
        if (PQstatus(c) != CONNECTION_OK)
            self->lost = true; /* after the answer: the next call reconnects */
    } else if (crc && PQstatus(c) != CONNECTION_OK && !refused) {
        /* Everything was sent, and no statement was refused (which would have made the
         * server skip COMMIT): the server may have run them all, COMMIT too, before the
         * connection broke with their answers still unsent. */
        char m[1024];
        s_pg_message(c, cr, m, sizeof m);
        s_errf(self, "08007",
               "COMMIT: the connection was lost before the answer came, so the transaction "
               "may or may not have committed: %s",
               m);
        log_warn("db connection lost during COMMIT", "target=%s outcome=unknown reason=%s",
                 self->target, m);
        self->lost = true;
        *crc = DB_UNKNOWN;
    } else if (crc && !failed) {
        if (cr && PQresultStatus(cr) == PGRES_COMMAND_OK)
            s_errf(self, "25P02", "COMMIT: the transaction had failed and was rolled back");
        else
            s_err_result(self, cr, "COMMIT");
    }
    PQclear(cr);
    if (failed || (crc && *crc != 0)) {
        if (crc && *crc == DB_UNKNOWN)
            self->lost_in_tx = false;
        else
            s_after_failure(self, in_tx ? PQTRANS_INTRANS : pre);
    }
    for (size_t i = 0; i < n && failed; i++) {
        PQclear(out[i]);
        out[i] = NULL;
    }
    return failed ? -1 : 0;
}

/* s_pipe_n with at most one statement, s (NULL: none), its result in *out when not NULL. */
static int
s_pipe(db_t *self, bool begin, const s_stmt_t *s, const char *const *values, const int *lengths,
       const int *formats, int result_format, PGresult **out, int *crc)
{
    db_call_t call = {s ? s->name : NULL, s ? s->nparams : 0, values, lengths, formats,
                      result_format};
    PGresult *r = NULL;
    int rc = s_pipe_n(self, begin, &s, &call, s ? 1 : 0, &r, crc);
    if (out)
        *out = r;
    else
        PQclear(r);
    return rc;
}

/* Runs the queued statements now, in one round trip. Returns 0 or -1 (the reason in
 * db_error). */
static int
s_flush(db_t *self)
{
    if (self->ndeferred == 0)
        return 0;
    if (s_ready(self) < 0)
        return -1;
    return s_pipe(self, false, NULL, NULL, NULL, NULL, 0, NULL, NULL);
}

/* The registered statement name, prepared on the current connection, ready to run:
 * NULL with the reason otherwise. */
static s_stmt_t *
s_stmt_ready(db_t *self, const char *name, int nparams)
{
    s_stmt_t *s = s_find(self, name);
    if (!s) {
        s_errf(self, "26000", "%s: no such prepared statement (db_prepare it first)", name);
        return NULL;
    }
    if (nparams != s->nparams) {
        s_errf(self, "", "%s: takes %d parameters, given %d", name, s->nparams, nparams);
        return NULL;
    }
    if (s_ready(self) < 0)
        return NULL;
    if (s->prepared_on != self->conn_id) {
        PGTransactionStatusType pre = PQtransactionStatus(self->conn);
        PGresult *r =
            s_check(self, PQprepare(self->conn, name, s->sql, s->nparams, NULL), pre, name);
        if (!r)
            return NULL;
        PQclear(r);
        s->prepared_on = self->conn_id;
    }
    return s;
}

PGresult *
db_begin_exec_prepared(db_t *self, const char *name, int nparams, const char *const *values,
                       const int *lengths, const int *formats, int result_format)
{
    assert(self && name);
    const s_stmt_t *s = s_stmt_ready(self, name, nparams);
    PGresult *out = NULL;
    if (s)
        s_pipe(self, true, s, values, lengths, formats, result_format, &out, NULL);
    return out;
}

int
db_exec_prepared_commit(db_t *self, const char *name, int nparams, const char *const *values,
                        const int *lengths, const int *formats)
{
    assert(self && name);
    if (self->lost_in_tx || !db_connected(self))
        return db_commit(self); /* refused as db_commit refuses it */
    const s_stmt_t *s = s_stmt_ready(self, name, nparams);
    if (!s)
        return -1;
    PGresult *out;
    int crc;
    s_pipe(self, false, s, values, lengths, formats, 0, &out, &crc);
    PQclear(out);
    return crc;
}

int
db_exec_prepared_all(db_t *self, const db_call_t *calls, size_t n, PGresult **out)
{
    assert(self && calls && out && n <= DB_CALLS_MAX);
    const s_stmt_t *stmts[DB_CALLS_MAX];
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!(stmts[i] = s_stmt_ready(self, calls[i].name, calls[i].nparams)))
            return -1;
    return s_pipe_n(self, false, stmts, calls, n, out, NULL);
}

int
db_defer_prepared(db_t *self, const char *name, int nparams, const char *const *values,
                  const int *lengths, const int *formats)
{
    assert(self && name && nparams >= 0);
    if (self->ndeferred == DB_DEFER_MAX && s_flush(self) < 0)
        return -1;
    const s_stmt_t *s = s_stmt_ready(self, name, nparams);
    if (!s)
        return -1;
    size_t total = 0;
    for (int i = 0; i < nparams; i++)
        if (values[i])
            total += (formats && formats[i]) ? (size_t)lengths[i] : strlen(values[i]) + 1;
    s_deferred_t d = {(size_t)(s - self->stmts), malloc(total ? total : 1),
                      calloc((size_t)nparams + 1, sizeof(char *) + 2 * sizeof(int)), NULL, NULL};
    if (!d.buf || !d.values) {
        free(d.buf);
        free(d.values);
        s_errf(self, "", "%s: out of memory", name);
        return -1;
    }
    d.lengths = (int *)(d.values + nparams + 1);
    d.formats = d.lengths + nparams + 1;
    size_t off = 0;
    for (int i = 0; i < nparams; i++) {
        d.formats[i] = formats ? formats[i] : 0;
        if (!values[i])
            continue;
        size_t len = d.formats[i] ? (size_t)lengths[i] : strlen(values[i]) + 1;
        memcpy(d.buf + off, values[i], len);
        d.values[i] = d.buf + off;
        d.lengths[i] = d.formats[i] ? lengths[i] : (int)len - 1;
        off += len;
    }
    self->deferred[self->ndeferred++] = d;
    return 0;
}

PGresult *
db_query(db_t *self, const char *sql, int nparams, const char *const *values)
{
    assert(self && sql);
    if (s_flush(self) < 0 || s_ready(self) < 0)
        return NULL;
    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    return s_check(self, PQexecParams(self->conn, sql, nparams, NULL, values, NULL, NULL, 0), pre,
                   NULL);
}

int
db_command(db_t *self, const char *sql)
{
    assert(self && sql);
    if (s_flush(self) < 0 || s_ready(self) < 0)
        return -1;
    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    char what[84];
    snprintf(what, sizeof what, "%.80s", sql);
    PGresult *r =
        s_check(self, PQexecParams(self->conn, sql, 0, NULL, NULL, NULL, NULL, 0), pre, what);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* --- transactions ---------------------------------------------------------------------- */

int
db_begin(db_t *self)
{
    return db_command(self, "BEGIN");
}

int
db_commit(db_t *self)
{
    assert(self);
    if (self->lost_in_tx || !db_connected(self)) {
        bool in_tx = self->lost_in_tx;
        self->lost_in_tx = false;
        s_deferred_clear(self);
        s_errf(self, "08006", "COMMIT: %s: not committed",
               in_tx ? "the connection was lost inside the transaction" : "not connected");
        return -1;
    }
    if (self->ndeferred > 0) { /* the queued statements, then COMMIT, in one round trip */
        int crc;
        s_pipe(self, false, NULL, NULL, NULL, NULL, 0, NULL, &crc);
        return crc;
    }
    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    if (!PQsendQueryParams(self->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) {
        /* Nothing complete reached the server, so it cannot have committed. */
        s_err_result(self, NULL, "COMMIT not sent");
        s_after_failure(self, pre);
        self->lost_in_tx = false;
        return -1;
    }
    PGresult *res = NULL, *r;
    while ((r = PQgetResult(self->conn)) != NULL) {
        if (!res || PQresultStatus(r) == PGRES_FATAL_ERROR) {
            PQclear(res);
            res = r;
        } else {
            PQclear(r);
        }
    }
    if (PQstatus(self->conn) != CONNECTION_OK) {
        char m[1024];
        s_pg_message(self->conn, res, m, sizeof m);
        s_errf(self, "08007",
               "COMMIT: the connection was lost before the answer came, so the transaction "
               "may or may not have committed: %s",
               m);
        PQclear(res);
        log_warn("db connection lost during COMMIT", "target=%s outcome=unknown reason=%s",
                 self->target, m);
        self->lost = true;
        self->lost_in_tx = false;
        return DB_UNKNOWN;
    }
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        s_err_result(self, res, "COMMIT");
        PQclear(res);
        return -1;
    }
    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) {
        s_errf(self, "25P02",
               "COMMIT: the transaction had already failed and was rolled back instead");
        return -1;
    }
    return 0;
}

/* ROLLBACK; keep_error leaves the reason of an earlier failure in place. */
static int
s_rollback(db_t *self, bool keep_error)
{
    s_deferred_clear(self); /* they go with the transaction */
    if (self->lost_in_tx || !db_connected(self)) {
        self->lost_in_tx = false;
        return 0;
    }
    if (keep_error && PQtransactionStatus(self->conn) == PQTRANS_IDLE)
        return 0; /* nothing open (e.g. a migration file ended it), nothing to say */
    char saved[sizeof self->err], saved_state[sizeof self->sqlstate];
    memcpy(saved, self->err, sizeof saved);
    memcpy(saved_state, self->sqlstate, sizeof saved_state);
    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    PGresult *r = s_check(self, PQexecParams(self->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0),
                          pre, "ROLLBACK");
    int rc = 0;
    if (r)
        PQclear(r);
    else if (db_connected(self))
        rc = -1;
    self->lost_in_tx = false; /* a lost connection takes its transaction with it */
    if (keep_error || rc == 0) {
        memcpy(self->err, saved, sizeof saved);
        memcpy(self->sqlstate, saved_state, sizeof saved_state);
    }
    return rc;
}

int
db_rollback(db_t *self)
{
    assert(self);
    return s_rollback(self, false);
}

static bool
s_retryable(const db_t *self)
{
    return strcmp(self->sqlstate, "40001") == 0 || strcmp(self->sqlstate, "40P01") == 0 ||
           self->lost;
}

int
db_tx(db_t *self, int (*fn)(db_t *db, void *arg), void *arg, int max_tries)
{
    assert(self && fn && max_tries >= 1);
    for (int attempt = 1;; attempt++) {
        self->err[0] = '\0';
        self->sqlstate[0] = '\0';
        if (db_begin(self) == 0) {
            if (fn(self, arg) == 0) {
                int rc = db_commit(self);
                if (rc == 0 || rc == DB_UNKNOWN)
                    return rc;
            } else {
                if (!self->err[0])
                    s_errf(self, "", "the transaction function failed without a db error");
                s_rollback(self, true);
            }
        }
        if (!s_retryable(self))
            return -1;
        if (attempt >= max_tries) {
            char last[sizeof self->err];
            memcpy(last, self->err, sizeof last);
            char state[sizeof self->sqlstate];
            memcpy(state, self->sqlstate, sizeof state);
            s_errf(self, state, "gave up after %d tr%s: %s", attempt, attempt == 1 ? "y" : "ies",
                   last);
            return -1;
        }
        log_debug("db transaction retried", "attempt=%d sqlstate=%s reason=%s", attempt,
                  self->sqlstate, self->err);
        int64_t cap = 10LL << (attempt < 6 ? attempt : 6);
        s_sleep_ms(s_jitter(self, cap > 500 ? 500 : cap));
    }
}

/* --- migrations ------------------------------------------------------------------------ */

typedef struct {
    int version;
    char file[256]; /* e.g. 001_init.sql, also the name recorded */
    char *text;     /* the file's bytes, NUL-terminated */
    size_t len;
    char sum[65]; /* SHA-256 hex of the bytes */
    bool applied;
} s_mig_t;

static bool
s_schema_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Parses NNN_name.sql; returns the version, or -1 when the name does not match. */
static int
s_parse_name(const char *f)
{
    size_t n = strlen(f), d = 0;
    while (f[d] >= '0' && f[d] <= '9')
        d++;
    if (d < 3 || d > 9 || f[d] != '_' || n < d + 6 || strcmp(f + n - 4, ".sql") != 0)
        return -1;
    for (size_t i = d + 1; i < n - 4; i++)
        if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '_'))
            return -1;
    return (int)strtol(f, NULL, 10);
}

static int
s_mig_cmp(const void *a, const void *b)
{
    const s_mig_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static void
s_migs_free(s_mig_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].text);
    free(m);
}

static int
s_read_file(db_t *self, const char *dir, s_mig_t *m)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, m->file);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        s_errf(self, "", "migration %s: cannot read %s: %s", m->file, path,
               f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    if (st.st_size > DB_MIGRATION_MAX) {
        s_errf(self, "", "migration %s: larger than %d bytes", m->file, DB_MIGRATION_MAX);
        fclose(f);
        return -1;
    }
    m->text = malloc((size_t)st.st_size + 1);
    if (!m->text) {
        s_errf(self, "", "migration %s: out of memory", m->file);
        fclose(f);
        return -1;
    }
    m->len = fread(m->text, 1, (size_t)st.st_size, f);
    int bad = ferror(f) || m->len != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        s_errf(self, "", "migration %s: short read of %s", m->file, path);
        return -1;
    }
    m->text[m->len] = '\0';
    if (memchr(m->text, '\0', m->len)) {
        s_errf(self, "", "migration %s: holds a NUL byte", m->file);
        return -1;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)m->text, m->len);
    sodium_bin2hex(m->sum, sizeof m->sum, h, sizeof h);
    return 0;
}

/* Lists, reads and checks the migration files of dir, sorted by version. Returns the
 * count, or -1 with the reason. */
static int
s_load_dir(db_t *self, const char *dir, s_mig_t **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        s_errf(self, "", "migrations: cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    s_mig_t *m = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        int version = s_parse_name(e->d_name);
        if (version < 0 || len >= sizeof m->file) {
            s_errf(self, "",
                   "migration %s: bad file name (expected NNN_name.sql: 3 to 9 digits, then "
                   "[a-z0-9_]+)",
                   e->d_name);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            s_mig_t *g = realloc(m, cap * sizeof *g);
            if (!g) {
                s_errf(self, "", "migrations: out of memory");
                rc = -1;
                break;
            }
            m = g;
        }
        memset(&m[n], 0, sizeof m[n]);
        m[n].version = version;
        snprintf(m[n].file, sizeof m[n].file, "%s", e->d_name);
        n++;
        rc = s_read_file(self, dir, &m[n - 1]);
    }
    closedir(d);
    if (rc == 0 && n > 0) {
        qsort(m, n, sizeof *m, s_mig_cmp);
        for (size_t i = 1; i < n; i++) {
            if (m[i].version == m[i - 1].version) {
                s_errf(self, "", "migrations %s and %s have the same version %d", m[i - 1].file,
                       m[i].file, m[i].version);
                rc = -1;
                break;
            }
        }
    }
    if (rc < 0) {
        s_migs_free(m, n);
        return -1;
    }
    *out = m;
    return (int)n;
}

/* The 1-based line of a 1-based character position (as the server counts: characters,
 * not bytes) in text, or 0 when unknown. */
static int
s_line_of(const char *text, const char *pos)
{
    long want = pos ? strtol(pos, NULL, 10) : 0;
    if (want <= 0)
        return 0;
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++chars >= want)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* Applies one file and records it, in one transaction. */
static int
s_apply(db_t *self, const char *ident, const char *table, const s_mig_t *m)
{
    char sql[256];
    if (db_begin(self) < 0)
        return -1;
    snprintf(sql, sizeof sql, "SET LOCAL search_path TO %s, public", ident);
    if (db_command(self, sql) < 0)
        goto fail;

    PGTransactionStatusType pre = PQtransactionStatus(self->conn);
    PGresult *r = PQexec(self->conn, m->text);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
        /* The file left the session in COPY mode: end it, then report the file. */
        if (st == PGRES_COPY_IN) {
            PQputCopyEnd(self->conn, "COPY with STDIN is not supported in migrations");
        } else {
            char *buf;
            while (PQgetCopyData(self->conn, &buf, 0) > 0)
                PQfreemem(buf);
        }
        PQclear(r);
        PGresult *x;
        while ((x = PQgetResult(self->conn)) != NULL)
            PQclear(x);
        s_errf(self, "0A000",
               "migration %s: COPY with STDIN or STDOUT is not supported in "
               "migrations",
               m->file);
        goto fail;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        char msg[1536];
        s_pg_message(self->conn, r, msg, sizeof msg);
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        int line = r ? s_line_of(m->text, PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION)) : 0;
        char where[32] = "";
        if (line > 0)
            snprintf(where, sizeof where, " at line %d", line);
        s_errf(self, state ? state : "", "migration %s failed%s: %s", m->file, where, msg);
        PQclear(r);
        s_after_failure(self, pre);
        goto fail;
    }
    PQclear(r);
    if (PQtransactionStatus(self->conn) != PQTRANS_INTRANS) {
        s_errf(self, "",
               "migration %s ended the transaction itself (COMMIT or ROLLBACK in the file?); "
               "check the schema by hand",
               m->file);
        goto fail;
    }
    snprintf(sql, sizeof sql, "INSERT INTO %s.%s (version, name, checksum) VALUES ($1, $2, $3)",
             ident, table);
    char v[16];
    snprintf(v, sizeof v, "%d", m->version);
    const char *vals[3] = {v, m->file, m->sum};
    r = db_query(self, sql, 3, vals);
    if (!r)
        goto fail;
    PQclear(r);
    int rc = db_commit(self);
    if (rc < 0) {
        char e[sizeof self->err];
        memcpy(e, self->err, sizeof e);
        s_errf(self, self->sqlstate, "migration %s: %s", m->file, e);
        return -1;
    }
    log_info("db migration applied", "file=%s checksum=%s", m->file, m->sum);
    return 0;
fail:
    s_rollback(self, true);
    return -1;
}

/* Checks what the schema has applied against the files; marks the applied ones. */
static int
s_check_applied(db_t *self, const char *ident, const char *table, const char *dir, s_mig_t *m,
                int n, int *max_out)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT version, name, checksum FROM %s.%s ORDER BY version", ident,
             table);
    PGresult *r = db_query(self, sql, 0, NULL);
    if (!r)
        return -1;
    int max = -1, rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int version = atoi(PQgetvalue(r, i, 0));
        const char *name = PQgetvalue(r, i, 1), *sum = PQgetvalue(r, i, 2);
        max = version > max ? version : max;
        s_mig_t *f = NULL;
        for (int j = 0; j < n; j++)
            if (m[j].version == version)
                f = &m[j];
        if (!f) {
            s_errf(self, "",
                   "migration %s (version %d) is applied but its file is missing from %s: "
                   "refusing to run against a schema this code does not describe",
                   name, version, dir);
            rc = -1;
        } else if (strcmp(f->file, name) != 0) {
            s_errf(self, "", "migration version %d was applied as %s but the file is now %s",
                   version, name, f->file);
            rc = -1;
        } else if (strcmp(f->sum, sum) != 0) {
            s_errf(self, "",
                   "migration %s has changed since it was applied (applied checksum %s, file "
                   "checksum %s): an applied migration must never change; add a new file",
                   f->file, sum, f->sum);
            rc = -1;
        } else {
            f->applied = true;
        }
    }
    PQclear(r);
    for (int j = 0; j < n && rc == 0; j++) {
        if (!m[j].applied && m[j].version < max) {
            s_errf(self, "",
                   "migration %s is not applied but version %d is: it would run out of order; "
                   "give it a number above %d",
                   m[j].file, max, max);
            rc = -1;
        }
    }
    *max_out = max;
    return rc;
}

int
db_migrate(db_t *self, const char *schema, const char *dir)
{
    return db_migrate_set(self, schema, "schema", dir);
}

int
db_prepare_in(db_t *self, const char *schema, const char *what, const char *tmpl, int nparams,
              char name[DB_STMT_NAME_MAX])
{
    assert(self && schema && what && tmpl && name);
    if (!s_schema_ok(schema)) {
        s_errf(self, "", "bad schema name \"%.80s\" (expected [a-z_][a-z0-9_]{0,62})", schema);
        return -1;
    }
    int nlen = snprintf(name, DB_STMT_NAME_MAX, "%s:%s", what, schema);
    char sql[4096];
    size_t o = 0;
    bool fits = nlen > 0 && nlen < DB_STMT_NAME_MAX;
    for (const char *p = tmpl; *p && fits;) {
        if (p[0] == '{' && p[1] == 's' && p[2] == '}') {
            int w = snprintf(sql + o, sizeof sql - o, "\"%s\"", schema);
            fits = w > 0 && o + (size_t)w < sizeof sql;
            o += fits ? (size_t)w : 0;
            p += 3;
        } else {
            fits = o + 1 < sizeof sql;
            if (fits)
                sql[o++] = *p++;
        }
    }
    if (!fits) {
        s_errf(self, "", "statement %.40s for schema %.64s is too long", what, schema);
        return -1;
    }
    sql[o] = '\0';
    return db_prepare(self, name, sql, nparams);
}

int
db_migrate_set(db_t *self, const char *schema, const char *set, const char *dir)
{
    assert(self && schema && set);
    char default_dir[1024];
    if (!dir) {
        const char *top = getenv("SX_SCHEMAS");
        snprintf(default_dir, sizeof default_dir, "%s/sql/%s", top && *top ? top : "schemas", set);
        dir = default_dir;
    }
    /* The record table's name is spliced into SQL: hold it to a short identifier. */
    char table[64];
    bool set_ok = set[0] >= 'a' && set[0] <= 'z' && strlen(set) <= 32;
    for (const char *p = set; *p && set_ok; p++)
        set_ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (!set_ok) {
        s_errf(self, "", "migrations: bad set name \"%.40s\" (expected [a-z][a-z0-9_]{0,31})", set);
        return -1;
    }
    snprintf(table, sizeof table, "%s_migrations", set);
    if (!s_schema_ok(schema)) {
        s_errf(self, "", "migrations: bad schema name \"%.80s\" (expected [a-z_][a-z0-9_]{0,62})",
               schema);
        return -1;
    }
    if (sodium_init() < 0) {
        s_errf(self, "", "migrations: libsodium failed to initialise");
        return -1;
    }
    s_mig_t *m = NULL;
    int n = s_load_dir(self, dir, &m);
    if (n < 0)
        return -1;
    if (s_ready(self) < 0) {
        s_migs_free(m, (size_t)n);
        return -1;
    }
    if (PQtransactionStatus(self->conn) != PQTRANS_IDLE) {
        s_errf(self, "25001", "migrations: db_migrate called inside a transaction");
        s_migs_free(m, (size_t)n);
        return -1;
    }

    char key[16];
    snprintf(key, sizeof key, "%d", DB_MIGRATE_LOCK_KEY);
    /* One lock per schema, whatever the set: sets in one schema migrate one at a time. */
    const char *lock_vals[2] = {key, schema};
    PGresult *r = db_query(self, "SELECT pg_advisory_lock($1::int, hashtext($2))", 2, lock_vals);
    if (!r) {
        s_migs_free(m, (size_t)n);
        return -1;
    }
    PQclear(r);
    uint64_t locked_on = self->conn_id;

    int applied = 0, rc = 0, max = -1;
    char *ident = PQescapeIdentifier(self->conn, schema, strlen(schema));
    if (!ident) {
        s_errf(self, "", "migrations: cannot quote the schema name");
        rc = -1;
    }
    if (rc == 0) {
        /* CREATE SCHEMA IF NOT EXISTS would still need CREATE on the database. */
        const char *vals[1] = {schema};
        r = db_query(self, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, vals);
        if (!r)
            rc = -1;
        else {
            bool exists = PQntuples(r) > 0;
            PQclear(r);
            char sql[128];
            snprintf(sql, sizeof sql, "CREATE SCHEMA %s", ident);
            if (!exists && db_command(self, sql) < 0)
                rc = -1;
        }
    }
    if (rc == 0) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE IF NOT EXISTS %s.%s ("
                 "version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now())",
                 ident, table);
        if (db_command(self, sql) < 0)
            rc = -1;
    }
    if (rc == 0)
        rc = s_check_applied(self, ident, table, dir, m, n, &max);
    for (int i = 0; i < n && rc == 0; i++) {
        if (m[i].applied)
            continue;
        if (s_apply(self, ident, table, &m[i]) < 0)
            rc = -1;
        else
            applied++;
    }
    PQfreemem(ident);
    s_migs_free(m, (size_t)n);

    /* The lock belongs to the session: a lost connection has already released it. */
    if (db_connected(self) && self->conn_id == locked_on) {
        char saved[sizeof self->err], state[sizeof self->sqlstate];
        memcpy(saved, self->err, sizeof saved);
        memcpy(state, self->sqlstate, sizeof state);
        r = db_query(self, "SELECT pg_advisory_unlock($1::int, hashtext($2))", 2, lock_vals);
        PQclear(r);
        memcpy(self->err, saved, sizeof saved);
        memcpy(self->sqlstate, state, sizeof state);
    }
    if (rc < 0)
        return -1;
    if (applied > 0)
        log_info("db migrations done", "schema=%s set=%s applied=%d", schema, set, applied);
    return applied;
}
