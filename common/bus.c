#include "bus.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "log.h"
#include "pgarray.h"
#include "util.h"

#define BUS_RELAY_LOCK_KEY   0x7378726c /* "sxrl": the relays' advisory lock class */
#define BUS_POLL_FALLBACK_MS 200        /* the relay looks at the outbox at least this often */
#define BUS_RELAY_ASYNC_MAX  256        /* rows per asynchronous sequencing statement */
#define BUS_RELAY_SYNC_MAX   (BUS_BATCH_MAX / 2) /* rows per synchronous one (each part) */
#define BUS_RETRY_MS         500                 /* a subscriber's pause after a failure */
#define BUS_STMT_MAX         DB_STMT_NAME_MAX

/* ---- Helpers ----------------------------------------------------------------------- */

/* Stream and schema names are spliced into SQL text (identifiers cannot be parameters),
 * so they are held to [a-z][a-z0-9_]{0,31}: safe inside double quotes, and a valid
 * envelope src. */
static bool
s_name_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    size_t i = 1;
    for (; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return i <= EVMSG_SRC_MAX;
}

/* Prepares a statement on schema (see db_prepare_in); its name goes to name. */
static int
s_prepare(db_t *db, char name[BUS_STMT_MAX], const char *what, const char *schema, const char *tmpl,
          int nparams)
{
    return db_prepare_in(db, schema, what, tmpl, nparams, name);
}

/* Binary-format integer columns (network byte order). */
static uint64_t
s_be64(const char *p)
{
    uint32_t hi, lo;
    memcpy(&hi, p, 4);
    memcpy(&lo, p + 4, 4);
    return ((uint64_t)ntohl(hi) << 32) | ntohl(lo);
}

static uint32_t
s_be32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

uint64_t
bus_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int
bus_migrate(db_t *db, const char *schema, const char *dir)
{
    return db_migrate_set(db, schema, "bus", dir);
}

/* ---- Producer ---------------------------------------------------------------------- */

/* Checks one event as the relay will encode it, so a bad event is refused here, in the
 * producer's transaction, and never blocks the stream later. Fills agency. */
static int
s_check_event(const char *schema, const char *topic, uint32_t v, const void *data, size_t data_len,
              char agency[EVMSG_AGENCY_LEN + 1], evmsg_err_t *err)
{
    if (!s_name_ok(schema)) {
        snprintf(err->path, sizeof err->path, "schema");
        snprintf(err->reason, sizeof err->reason, "not a stream name");
        return -1;
    }
    if (!topic || evmsg_topic_check(topic, strlen(topic), agency, err) < 0)
        return -1;
    evmsg_header_t hdr = {.seq = 1, .aseq = 1, .at = 0, .v = v};
    snprintf(hdr.src, sizeof hdr.src, "%s", schema);
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    int rc = evmsg_encode(&scratch, &hdr, data, data_len, err);
    msgpack_sbuffer_destroy(&scratch);
    return rc;
}

int
bus_emit(db_t *tx, const char *schema, const char *topic, uint32_t v, const void *data,
         size_t data_len, evmsg_err_t *err)
{
    evmsg_err_t local = {{0}, {0}};
    if (!err)
        err = &local;
    char agency[EVMSG_AGENCY_LEN + 1];
    if (s_check_event(schema, topic, v, data, data_len, agency, err) < 0)
        return -1;
    char name[BUS_STMT_MAX];
    if (s_prepare(tx, name, "bus_emit", schema,
                  "INSERT INTO {s}.outbox (topic, agency, v, data) VALUES ($1, $2, $3::int, $4)",
                  4) < 0)
        return -1;
    char vbuf[16];
    snprintf(vbuf, sizeof vbuf, "%" PRIu32, v);
    const char *values[4] = {topic, agency, vbuf, data};
    const int lengths[4] = {0, 0, 0, (int)data_len};
    const int formats[4] = {0, 0, 0, 1};
    PGresult *r = db_exec_prepared(tx, name, 4, values, lengths, formats, 0);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Checks events[0..n) and fills the four arrays (topic, agency, v, data) of a batch
 * insert; -1 with err (path prefixed by the event's index) on a bad event. */
static int
s_emit_arrays(const char *schema, const bus_event_in_t *events, size_t n, pgarray_t arr[4],
              evmsg_err_t *err)
{
    pgarray_begin(&arr[0], PGARRAY_TEXT);
    pgarray_begin(&arr[1], PGARRAY_TEXT);
    pgarray_begin(&arr[2], PGARRAY_INT4);
    pgarray_begin(&arr[3], PGARRAY_BYTEA);
    for (size_t i = 0; i < n; i++) {
        const bus_event_in_t *e = &events[i];
        char agency[EVMSG_AGENCY_LEN + 1];
        if (s_check_event(schema, e->topic, e->v, e->data, e->data_len, agency, err) < 0) {
            char path[EVMSG_PATH_MAX];
            snprintf(path, sizeof path, "[%zu]%s%.100s", i, err->path[0] ? "." : "", err->path);
            memcpy(err->path, path, sizeof path);
            return -1;
        }
        pgarray_str(&arr[0], e->topic);
        pgarray_elem(&arr[1], agency, EVMSG_AGENCY_LEN);
        pgarray_int4(&arr[2], (int32_t)e->v);
        pgarray_elem(&arr[3], e->data, e->data_len);
    }
    return 0;
}

int
bus_emit_batch(db_t *tx, const char *schema, const bus_event_in_t *events, size_t n,
               evmsg_err_t *err)
{
    evmsg_err_t local = {{0}, {0}};
    if (!err)
        err = &local;
    if (n == 0)
        return 0;
    if (n > BUS_BATCH_MAX) {
        snprintf(err->reason, sizeof err->reason, "more than %d events in one batch",
                 BUS_BATCH_MAX);
        return -1;
    }
    pgarray_t arr[4] = {{0}};
    int rc = -1;
    if (s_emit_arrays(schema, events, n, arr, err) < 0)
        goto done;
    char name[BUS_STMT_MAX];
    if (s_prepare(tx, name, "bus_emit_batch", schema,
                  "INSERT INTO {s}.outbox (topic, agency, v, data)"
                  " SELECT topic, agency, v, data FROM unnest($1::text[], $2::text[], $3::int[],"
                  " $4::bytea[]) WITH ORDINALITY AS e(topic, agency, v, data, i) ORDER BY i",
                  4) < 0)
        goto done;
    PGresult *r = pgarray_exec(tx, name, arr, 4, 0);
    if (r) {
        PQclear(r);
        rc = 0;
    } else if (arr[0].bad || arr[1].bad || arr[2].bad || arr[3].bad) {
        snprintf(err->reason, sizeof err->reason, "out of memory");
    }
done:
    for (int i = 0; i < 4; i++)
        pgarray_free(&arr[i]);
    return rc;
}

/* Gives the events their place in the stream as they are written: one statement takes
 * the stream's head row (UPDATE bus_head: a row lock held to the end of the caller's
 * transaction), then the agencies' counters (in agency order, after the head, so two
 * producers cannot deadlock on them), and inserts the rows with seq, aseq and at set.
 * Seqs are therefore given in commit order, with no gap (a rollback gives them back),
 * and the relay only reads and publishes these rows: it does not rewrite them. The
 * statement is queued for the transaction's next round trip (db_defer_prepared): it
 * counts its rows itself and fails unless all $5 were written (003_emit_check.sql). */
static const char s_emit_seq_tmpl[] =
    "WITH e AS ("
    "  SELECT topic, agency, v, data, i FROM unnest($1::text[], $2::text[], $3::int[],"
    "   $4::bytea[]) WITH ORDINALITY AS e(topic, agency, v, data, i)"
    "), head AS ("
    "  UPDATE {s}.bus_head SET last_seq = last_seq + $5::bigint"
    "  RETURNING last_seq - $5::bigint AS base"
    "), per_agency AS ("
    "  SELECT agency, count(*) AS c FROM e GROUP BY agency"
    "), agencies AS ("
    "  INSERT INTO {s}.bus_agency AS a (agency, last_aseq)"
    "  SELECT p.agency, p.c FROM per_agency p, head ORDER BY p.agency"
    "  ON CONFLICT (agency) DO UPDATE SET last_aseq = a.last_aseq + excluded.last_aseq"
    "  RETURNING a.agency, a.last_aseq"
    "), ins AS ("
    "  INSERT INTO {s}.outbox (topic, agency, v, data, seq, aseq, at)"
    "  SELECT e.topic, e.agency, e.v, e.data, head.base + e.i,"
    "   agencies.last_aseq - per_agency.c"
    "    + row_number() OVER (PARTITION BY e.agency ORDER BY e.i), $6::bigint"
    "  FROM e, head, agencies, per_agency"
    "  WHERE agencies.agency = e.agency AND per_agency.agency = e.agency ORDER BY e.i"
    "  RETURNING 1"
    ") "
    "SELECT {s}.bus_check(count(*) = $5::bigint, 'events not all written') FROM ins";

int
bus_emit_batch_seq(db_t *tx, const char *schema, const bus_event_in_t *events, size_t n,
                   evmsg_err_t *err)
{
    evmsg_err_t local = {{0}, {0}};
    if (!err)
        err = &local;
    if (n == 0)
        return 0;
    if (n > BUS_BATCH_MAX) {
        snprintf(err->reason, sizeof err->reason, "more than %d events in one batch",
                 BUS_BATCH_MAX);
        return -1;
    }
    pgarray_t arr[4] = {{0}};
    int rc = -1;
    if (s_emit_arrays(schema, events, n, arr, err) < 0)
        goto done;
    char name[BUS_STMT_MAX];
    if (s_prepare(tx, name, "bus_emit_seq", schema, s_emit_seq_tmpl, 6) < 0)
        goto done;
    /* The arrays in binary, then the count and the time as text. */
    int ok = 1;
    for (int k = 0; k < 4; k++)
        ok &= pgarray_finish(&arr[k]) == 0;
    if (!ok) {
        snprintf(err->reason, sizeof err->reason, "out of memory");
        goto done;
    }
    char count[24], at[24];
    snprintf(count, sizeof count, "%zu", n);
    snprintf(at, sizeof at, "%" PRId64, util_unix_ms());
    const char *vals[6] = {arr[0].buf, arr[1].buf, arr[2].buf, arr[3].buf, count, at};
    const int lens[6] = {(int)arr[0].len, (int)arr[1].len, (int)arr[2].len, (int)arr[3].len, 0, 0};
    const int fmts[6] = {1, 1, 1, 1, 0, 0};
    rc = db_defer_prepared(tx, name, 6, vals, lens, fmts);
done:
    for (int i = 0; i < 4; i++)
        pgarray_free(&arr[i]);
    return rc;
}

int
bus_emit_batch_ordered(db_t *tx, const char *schema, bool *relay_rows, const bus_event_in_t *events,
                       size_t n, evmsg_err_t *err)
{
    if (n == 0)
        return 0;
    if (*relay_rows) {
        char name[BUS_STMT_MAX];
        if (s_prepare(tx, name, "bus_unsequenced", schema,
                      "SELECT EXISTS (SELECT 1 FROM {s}.outbox WHERE seq IS NULL)", 0) < 0)
            return -1;
        PGresult *r = db_exec_prepared(tx, name, 0, NULL, NULL, NULL, 0);
        if (!r)
            return -1;
        *relay_rows = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (*relay_rows)
            log_info("bus: outbox rows wait for the relay; events left to it until none does",
                     "stream=%s events=%zu", schema, n);
    }
    return *relay_rows ? bus_emit_batch(tx, schema, events, n, err)
                       : bus_emit_batch_seq(tx, schema, events, n, err);
}

/* ---- Relay ------------------------------------------------------------------------- */

struct bus_relay {
    db_t *db;                       /* the relay's own connection: lock and LISTEN */
    void *pub;                      /* PUB socket to the broker */
    char stream[EVMSG_SRC_MAX + 1]; /* = the producer's schema */
    char hb_topic[EVMSG_SRC_MAX + 8];
    char st_seq[BUS_STMT_MAX]; /* the sequencing statement */
    char st_head[BUS_STMT_MAX];
    char st_fill[BUS_STMT_MAX]; /* the rows of a gap (s_fill_tmpl) */
    uint64_t lock_conn;         /* db_connection_id the lock was taken on */
    int64_t next_try_ms;        /* follower: next pg_try_advisory_lock */
    int64_t next_hb_ms;         /* leader: next heartbeat */
    int64_t next_scan_ms;       /* leader: next look at the outbox without a notify */
    char *buf;                  /* envelope scratch, EVMSG_MAX_BYTES */
    /* The sequencing statement runs asynchronously once prepared on the connection, so
     * that its commit (and fsync) overlaps with the caller's own work, e.g. the next
     * rpc turn of the same loop: sent by one step, its result read by a later one. */
    uint64_t seq_conn; /* connection the statement is known prepared on (0: none) */
    bool inflight;     /* a sequencing statement was sent, its result not yet read */
    bool again;        /* sequence once more as soon as the one in flight is done */
    bool behind;       /* the last batch was full (BUS_RELAY_ASYNC_MAX): a backlog */
    bus_relay_stats_t stats;
};

static void s_relay_drain(bus_relay_t *self);

bus_relay_t *
bus_relay_new(db_t *db, const char *stream, void *pub)
{
    if (!db || !pub || !s_name_ok(stream))
        return NULL;
    bus_relay_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->buf = malloc(EVMSG_MAX_BYTES);
    if (!self->buf) {
        free(self);
        return NULL;
    }
    self->db = db;
    self->pub = pub;
    snprintf(self->stream, sizeof self->stream, "%s", stream);
    snprintf(self->hb_topic, sizeof self->hb_topic, "_hb.%s", stream);
    /* A full queue to the broker returns EAGAIN instead of dropping silently, so the
     * drop is counted (the subscribers repair it from Postgres either way). */
    int one = 1;
    zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof one);
    return self;
}

void
bus_relay_destroy(bus_relay_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        bus_relay_t *self = *self_p;
        if (self->inflight)
            s_relay_drain(self);
        if (self->stats.leader && db_connected(self->db) &&
            db_connection_id(self->db) == self->lock_conn) {
            char key[16];
            snprintf(key, sizeof key, "%d", BUS_RELAY_LOCK_KEY);
            const char *vals[2] = {key, self->stream};
            PQclear(
                db_query(self->db, "SELECT pg_advisory_unlock($1::int, hashtext($2))", 2, vals));
        }
        free(self->buf);
        free(self);
        *self_p = NULL;
    }
}

int
bus_relay_fd(const bus_relay_t *self)
{
    PGconn *c = db_conn(self->db);
    return c ? PQsocket(c) : -1;
}

bus_relay_stats_t
bus_relay_stats(const bus_relay_t *self)
{
    return self->stats;
}

static void
s_relay_lose(bus_relay_t *self, const char *why)
{
    if (self->inflight) {
        if (db_connected(self->db) && db_connection_id(self->db) == self->lock_conn)
            s_relay_drain(self);
        self->inflight = false;
    }
    if (self->stats.leader)
        log_warn("relay is no longer leader", "stream=%s reason=%s", self->stream, why);
    self->stats.leader = false;
}

/* The rows between two seqs, for a gap in a sequencing result: rows a producer
 * sequenced and committed while the statement waited for the head row, which its
 * snapshot did not show. */
static const char s_fill_tmpl[] = "SELECT seq, aseq, topic, v, data, at FROM {s}.outbox"
                                  " WHERE seq > $1::bigint AND seq < $2::bigint ORDER BY seq";

/* Tries to take the stream's advisory lock; on success sets up LISTEN and the head. */
static int
s_relay_try_lead(bus_relay_t *self)
{
    if (db_connect(self->db, 0) < 0)
        return -1;
    char key[16];
    snprintf(key, sizeof key, "%d", BUS_RELAY_LOCK_KEY);
    const char *vals[2] = {key, self->stream};
    PGresult *r = db_query(self->db, "SELECT pg_try_advisory_lock($1::int, hashtext($2))", 2, vals);
    if (!r)
        return -1;
    bool got = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got)
        return 0;

    self->lock_conn = db_connection_id(self->db);
    char sql[160];
    snprintf(sql, sizeof sql, "LISTEN \"sx_outbox_%s\"", self->stream);
    if (db_command(self->db, sql) < 0)
        return -1;
    if (s_prepare(self->db, self->st_head, "bus_head", self->stream,
                  "SELECT last_seq FROM {s}.bus_head", 0) < 0 ||
        s_prepare(self->db, self->st_fill, "bus_fill", self->stream, s_fill_tmpl, 2) < 0)
        return -1;
    r = db_exec_prepared(self->db, self->st_head, 0, NULL, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        log_error("relay: bus_head is empty", "stream=%s", self->stream);
        return -1;
    }
    self->stats.last_seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    self->stats.leader = true;
    self->stats.takeovers++;
    self->next_hb_ms = 0;
    self->next_scan_ms = 0;
    log_info("relay is leader", "stream=%s last_seq=%" PRIu64, self->stream, self->stats.last_seq);
    return 1;
}

static void
s_relay_send(bus_relay_t *self, const char *topic, size_t topic_len, const void *env,
             size_t env_len)
{
    if (zmq_send(self->pub, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        self->stats.dropped++;
        return;
    }
    /* Once the first frame is queued the rest of the message is too. */
    zmq_send(self->pub, env, env_len, ZMQ_DONTWAIT);
    self->stats.published++;
}

static void
s_relay_heartbeat(bus_relay_t *self)
{
    static const unsigned char empty_map = 0x80;
    evmsg_header_t hdr = {.seq = self->stats.last_seq, .aseq = 0, .at = util_unix_ms(), .v = 1};
    snprintf(hdr.src, sizeof hdr.src, "%s", self->stream);
    size_t len;
    evmsg_err_t err = {{0}, {0}};
    if (evmsg_encode_buf(self->buf, EVMSG_MAX_BYTES, &hdr, &empty_map, 1, &len, &err) == 0) {
        s_relay_send(self, self->hb_topic, strlen(self->hb_topic), self->buf, len);
        self->stats.heartbeats++;
    }
}

typedef struct {
    uint64_t seq, aseq;
    int row;
} s_order_t;

static int
s_order_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_order_t *)a)->seq, y = ((const s_order_t *)b)->seq;
    return x < y ? -1 : x > y;
}

/* The sequencing statement (its own transaction): gives up to $1 committed, unsequenced
 * rows (bus_emit, bus_emit_batch) their seq and aseq, and returns them together with up
 * to $1 rows that already had a seq above $3, the last one published (bus_emit_batch_seq
 * sequences at insert). Columns: seq, aseq, topic, v, data, at. */
static const char s_seq_tmpl[] =
    "WITH pending AS ("
    "  SELECT ctid AS t, id, agency FROM {s}.outbox WHERE seq IS NULL ORDER BY id LIMIT $1"
    "  FOR UPDATE"
    "), numbered AS ("
    "  SELECT t, id, agency, row_number() OVER (ORDER BY id) AS n,"
    "         row_number() OVER (PARTITION BY agency ORDER BY id) AS an FROM pending"
    "), per_agency AS ("
    "  SELECT agency, count(*) AS c FROM numbered GROUP BY agency"
    "), head AS ("
    "  UPDATE {s}.bus_head SET last_seq = last_seq + (SELECT count(*) FROM numbered)"
    "  WHERE EXISTS (SELECT 1 FROM numbered)"
    "  RETURNING last_seq - (SELECT count(*) FROM numbered) AS base"
    "), agencies AS ("
    "  INSERT INTO {s}.bus_agency AS a (agency, last_aseq) SELECT agency, c FROM per_agency"
    "  ON CONFLICT (agency) DO UPDATE SET last_aseq = a.last_aseq + excluded.last_aseq"
    "  RETURNING a.agency, a.last_aseq"
    "), done AS ("
    "  UPDATE {s}.outbox o SET seq = head.base + numbered.n,"
    "   aseq = agencies.last_aseq - per_agency.c + numbered.an, at = $2::bigint"
    "  FROM numbered, head, agencies, per_agency"
    "  WHERE o.ctid = numbered.t AND agencies.agency = numbered.agency"
    "   AND per_agency.agency = numbered.agency"
    "  RETURNING o.seq, o.aseq, o.topic, o.v, o.data, o.at"
    ") "
    "SELECT seq, aseq, topic, v, data, at FROM done "
    "UNION ALL "
    "(SELECT seq, aseq, topic, v, data, at FROM {s}.outbox"
    "  WHERE seq > $3::bigint ORDER BY seq LIMIT $1)";

static void
s_relay_send_row(bus_relay_t *self, PGresult *r, int row, uint64_t seq, uint64_t aseq)
{
    evmsg_header_t hdr = {.seq = seq,
                          .aseq = aseq,
                          .at = (int64_t)s_be64(PQgetvalue(r, row, 5)),
                          .v = s_be32(PQgetvalue(r, row, 3))};
    snprintf(hdr.src, sizeof hdr.src, "%s", self->stream);
    size_t len;
    evmsg_err_t err = {{0}, {0}};
    if (evmsg_encode_buf(self->buf, EVMSG_MAX_BYTES, &hdr, PQgetvalue(r, row, 4),
                         (size_t)PQgetlength(r, row, 4), &len, &err) < 0) {
        /* bus_emit checked it on the way in; only a hand-written row gets here. The
         * subscribers meet it in catch-up and record it. */
        char why[300];
        log_error("relay cannot encode an outbox row", "stream=%s seq=%" PRIu64 " err=%s",
                  self->stream, hdr.seq, evmsg_err_str(&err, why, sizeof why));
    } else {
        s_relay_send(self, PQgetvalue(r, row, 2), (size_t)PQgetlength(r, row, 2), self->buf, len);
    }
    self->stats.sequenced++;
    self->stats.last_seq = seq;
}

/* Publishes the rows of a sequencing result in seq order, after the last one published;
 * fills a gap before a row from Postgres first. Returns the number of rows. */
static int
s_relay_publish(bus_relay_t *self, PGresult *r)
{
    int n = PQntuples(r);
    if (n == 0)
        return 0;
    s_order_t *order = malloc((size_t)n * sizeof *order);
    if (!order)
        return -1;
    for (int i = 0; i < n; i++) {
        order[i].seq = s_be64(PQgetvalue(r, i, 0));
        order[i].aseq = s_be64(PQgetvalue(r, i, 1));
        order[i].row = i;
    }
    qsort(order, (size_t)n, sizeof order[0], s_order_cmp);
    for (int i = 0; i < n; i++) {
        if (order[i].seq <= self->stats.last_seq)
            continue; /* published already */
        if (order[i].seq > self->stats.last_seq + 1) {
            char after[24], before[24];
            snprintf(after, sizeof after, "%" PRIu64, self->stats.last_seq);
            snprintf(before, sizeof before, "%" PRIu64, order[i].seq);
            const char *vals[2] = {after, before};
            PGresult *f = db_exec_prepared(self->db, self->st_fill, 2, vals, NULL, NULL, 1);
            if (!f) {
                free(order);
                return -1;
            }
            for (int k = 0; k < PQntuples(f); k++)
                s_relay_send_row(self, f, k, s_be64(PQgetvalue(f, k, 0)),
                                 s_be64(PQgetvalue(f, k, 1)));
            PQclear(f);
            if (self->stats.last_seq + 1 != order[i].seq)
                log_error("outbox has a gap", "stream=%s expected=%" PRIu64 " found=%" PRIu64,
                          self->stream, self->stats.last_seq + 1, order[i].seq);
        }
        s_relay_send_row(self, r, order[i].row, order[i].seq, order[i].aseq);
    }
    free(order);
    return n;
}

/* Gives up to BUS_BATCH_MAX / 2 committed, unsequenced rows their seq and aseq in one
 * statement (its own transaction), then publishes them, and up to as many rows
 * sequenced at insert, in seq order. Synchronous: used
 * until the statement is prepared on the connection. Returns the number of rows, or -1
 * on a database failure. */
static int
s_relay_sequence(bus_relay_t *self, int64_t unix_ms)
{
    if (!self->st_seq[0] &&
        s_prepare(self->db, self->st_seq, "bus_sequence", self->stream, s_seq_tmpl, 3) < 0)
        return -1;
    char limit[16], at[24], after[24];
    snprintf(limit, sizeof limit, "%d", BUS_RELAY_SYNC_MAX);
    snprintf(at, sizeof at, "%" PRId64, unix_ms);
    snprintf(after, sizeof after, "%" PRIu64, self->stats.last_seq);
    const char *vals[3] = {limit, at, after};
    /* Autocommit: the statement is its own transaction, committed when it returns. */
    PGresult *r = db_exec_prepared(self->db, self->st_seq, 3, vals, NULL, NULL, 1);
    if (!r)
        return -1;
    self->seq_conn = db_connection_id(self->db);
    int n = s_relay_publish(self, r);
    PQclear(r);
    return n;
}

/* Sends the sequencing statement without waiting for it; 0 when sent, -1 when not. */
static int
s_relay_send_seq(bus_relay_t *self, int64_t unix_ms)
{
    PGconn *c = db_conn(self->db);
    if (!c || PQtransactionStatus(c) != PQTRANS_IDLE)
        return -1;
    char limit[16], at[24], after[24];
    snprintf(limit, sizeof limit, "%d", BUS_RELAY_ASYNC_MAX);
    snprintf(at, sizeof at, "%" PRId64, unix_ms);
    snprintf(after, sizeof after, "%" PRIu64, self->stats.last_seq);
    const char *vals[3] = {limit, at, after};
    if (!PQsendQueryPrepared(c, self->st_seq, 3, vals, NULL, NULL, 1)) {
        log_warn("relay: sequencing statement not sent", "stream=%s reason=%s", self->stream,
                 PQerrorMessage(c));
        return -1;
    }
    self->inflight = true;
    return 0;
}

/* Reads the result of the statement in flight, and publishes its rows, once it is
 * complete (wait: block until it is). Returns the number of rows, -2 while it is not
 * complete, or -1 on failure (the statement did not commit, or its fate is unknown:
 * either way the rows it would have numbered are numbered again, or not, by the next
 * leader, from Postgres). */
static int
s_relay_collect(bus_relay_t *self, bool wait)
{
    PGconn *c = db_conn(self->db);
    if (!c) {
        self->inflight = false;
        return -1;
    }
    if (!wait) {
        if (!PQconsumeInput(c)) {
            self->inflight = false;
            return -1;
        }
        if (PQisBusy(c))
            return -2;
    }
    PGresult *res = NULL, *r;
    int n = 0;
    bool failed = false;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && !res && !failed) {
            res = r;
            continue;
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK && !failed) {
            failed = true;
            log_warn("relay: sequencing statement failed", "stream=%s reason=%s", self->stream,
                     PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    self->inflight = false;
    if (failed || !res || PQstatus(c) != CONNECTION_OK) {
        PQclear(res);
        return -1;
    }
    n = s_relay_publish(self, res);
    PQclear(res);
    return n;
}

/* Waits for the statement in flight and publishes its rows (bus_relay_destroy). */
static void
s_relay_drain(bus_relay_t *self)
{
    (void)s_relay_collect(self, true);
}

/* Reads pending notifications; returns how many, or -1 when the connection is gone. */
static int
s_relay_notifies(bus_relay_t *self)
{
    PGconn *c = db_conn(self->db);
    if (!c || !PQconsumeInput(c))
        return -1;
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(c))) {
        n++;
        PQfreemem(note);
    }
    return n;
}

int
bus_relay_step(bus_relay_t *self, int64_t now_ms)
{
    if (self->stats.leader &&
        (!db_connected(self->db) || db_connection_id(self->db) != self->lock_conn))
        s_relay_lose(self, "database connection lost");

    if (!self->stats.leader) {
        if (now_ms < self->next_try_ms)
            return (int)(self->next_try_ms - now_ms);
        self->next_try_ms = now_ms + BUS_LEADER_RETRY_MS;
        int rc = s_relay_try_lead(self);
        if (rc < 0) {
            s_relay_lose(self, db_error(self->db));
            return -1;
        }
        if (rc == 0)
            return BUS_LEADER_RETRY_MS;
    }

    bool busy = false;
    if (self->inflight) {
        /* Behind (the last batch was full), the caller waits for the statement: the loop
         * that feeds the outbox must not outrun the stream for long, or events reach the
         * subscribers ever later. Keeping up, it does not wait. */
        int n = s_relay_collect(self, self->behind);
        busy = n == -2; /* not complete: the connection's socket wakes the caller */
        if (n == -1) {
            s_relay_lose(self, "sequencing statement failed");
            return -1;
        }
        if (n >= 0) {
            self->behind = n >= BUS_RELAY_ASYNC_MAX;
            self->again = self->behind;
        }
    }
    int woken = busy ? 0 : s_relay_notifies(self);
    if (woken < 0) {
        s_relay_lose(self, "database connection lost");
        return -1;
    }
    if (busy) {
        /* the result comes on the connection's socket */
    } else if (self->seq_conn != 0 && self->seq_conn == db_connection_id(self->db)) {
        /* Prepared on this connection: send it and come back for the result. */
        if (woken > 0 || self->again || now_ms >= self->next_scan_ms) {
            self->again = false;
            if (s_relay_send_seq(self, util_unix_ms()) < 0) {
                s_relay_lose(self, "sequencing statement not sent");
                return -1;
            }
            self->next_scan_ms = now_ms + BUS_POLL_FALLBACK_MS;
        }
    } else if (woken > 0 || now_ms >= self->next_scan_ms) {
        /* Until the outbox is empty; a notification read while sequencing means more. */
        for (int rounds = 0; rounds < 1000; rounds++) {
            int n = s_relay_sequence(self, util_unix_ms());
            if (n < 0) {
                s_relay_lose(self, db_error(self->db));
                return -1;
            }
            int more = s_relay_notifies(self);
            if (n < BUS_RELAY_SYNC_MAX && more <= 0)
                break;
        }
        self->next_scan_ms = now_ms + BUS_POLL_FALLBACK_MS;
    }
    if (now_ms >= self->next_hb_ms) {
        s_relay_heartbeat(self);
        self->next_hb_ms = now_ms + BUS_HEARTBEAT_MS;
    }
    /* Behind, with a statement in flight: come back at once (to wait for it). */
    if (self->inflight && self->behind)
        return 0;
    int64_t wait = self->next_hb_ms - now_ms;
    if (busy) {
        if (wait > BUS_POLL_FALLBACK_MS)
            wait = BUS_POLL_FALLBACK_MS;
    } else if (self->next_scan_ms - now_ms < wait) {
        wait = self->next_scan_ms - now_ms;
    }
    return wait < 0 ? 0 : (int)wait;
}

void
bus_relay_run(bus_relay_t *self, volatile int *stop)
{
    while (!*stop) {
        int wait = bus_relay_step(self, util_mono_ms());
        if (wait < 0)
            wait = BUS_LEADER_RETRY_MS;
        int fd = bus_relay_fd(self);
        zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
        if (fd >= 0 && self->stats.leader)
            zmq_poll(&item, 1, wait);
        else
            zmq_poll(NULL, 0, wait);
    }
}

/* ---- Subscriber -------------------------------------------------------------------- */

struct bus_sub {
    db_t *db;
    void *sub;
    char schema[EVMSG_SRC_MAX + 1]; /* the consumer's schema: cursor, rejects */
    char stream[EVMSG_SRC_MAX + 1]; /* the producer's schema: outbox */
    char hb_topic[EVMSG_SRC_MAX + 8];
    char **prefixes;
    size_t nprefixes;
    bus_handler_fn *fn;
    bus_batch_fn *batch_fn; /* when set, instead of fn */
    void *arg;
    bus_event_t *wanted; /* the batch handler's events, BUS_BATCH_MAX */
    int shard, nshards;
    bus_key_fn *key_fn;
    void *key_arg;
    bool subscribed;
    bool started; /* cursor loaded */
    bool need_catchup;
    char st_cursor_get[BUS_STMT_MAX], st_cursor_set[BUS_STMT_MAX];
    char st_reject[BUS_STMT_MAX], st_fetch[BUS_STMT_MAX];
    evmsg_t **live; /* messages drained from the socket, BUS_BATCH_MAX */
    bus_event_t *events;
    char (*topics)[EVMSG_TOPIC_MAX + 1];
    char *buf; /* envelope scratch for catch-up */
    bus_sub_stats_t stats;
    _Atomic int64_t heard_ms; /* CLOCK_MONOTONIC of the last heartbeat; read by /healthz */
};

bus_sub_t *
bus_sub_new(db_t *db, const char *schema, const char *stream, const char *const prefixes[],
            void *sub, bus_handler_fn *fn, void *arg)
{
    if (!db || !sub || !fn || !prefixes || !s_name_ok(schema) || !s_name_ok(stream))
        return NULL;
    bus_sub_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->db = db;
    self->sub = sub;
    self->fn = fn;
    self->arg = arg;
    self->nshards = 1;
    snprintf(self->schema, sizeof self->schema, "%s", schema);
    snprintf(self->stream, sizeof self->stream, "%s", stream);
    snprintf(self->hb_topic, sizeof self->hb_topic, "_hb.%s", stream);
    while (prefixes[self->nprefixes])
        self->nprefixes++;
    self->prefixes = calloc(self->nprefixes + 1, sizeof(char *));
    self->live = calloc(BUS_BATCH_MAX, sizeof(evmsg_t *));
    self->events = calloc(BUS_BATCH_MAX, sizeof(bus_event_t));
    self->topics = calloc(BUS_BATCH_MAX, sizeof *self->topics);
    self->wanted = calloc(BUS_BATCH_MAX, sizeof(bus_event_t));
    self->buf = malloc(EVMSG_MAX_BYTES);
    bool ok =
        self->prefixes && self->live && self->events && self->topics && self->wanted && self->buf;
    for (size_t i = 0; ok && i < self->nprefixes; i++)
        ok = (self->prefixes[i] = strdup(prefixes[i])) != NULL;
    if (!ok)
        bus_sub_destroy(&self);
    return self;
}

void
bus_sub_destroy(bus_sub_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        bus_sub_t *self = *self_p;
        for (size_t i = 0; self->prefixes && i < self->nprefixes; i++)
            free(self->prefixes[i]);
        free(self->prefixes);
        if (self->live)
            for (int i = 0; i < BUS_BATCH_MAX; i++)
                evmsg_destroy(&self->live[i]);
        free(self->live);
        free(self->events);
        free(self->wanted);
        free(self->topics);
        free(self->buf);
        free(self);
        *self_p = NULL;
    }
}

void
bus_sub_set_batch_handler(bus_sub_t *self, bus_batch_fn *fn)
{
    self->batch_fn = fn;
}

int
bus_sub_set_shard(bus_sub_t *self, int index, int count, bus_key_fn *key_fn, void *arg)
{
    if (count < 1 || index < 0 || index >= count || self->started)
        return -1;
    self->shard = index;
    self->nshards = count;
    self->key_fn = key_fn;
    self->key_arg = arg;
    return 0;
}

bus_sub_stats_t
bus_sub_stats(const bus_sub_t *self)
{
    return self->stats;
}

static int
s_sub_prepare(bus_sub_t *self)
{
    if (s_prepare(self->db, self->st_cursor_get, "bus_cursor_get", self->schema,
                  "SELECT seq FROM {s}.bus_cursor WHERE stream = $1 AND shard = $2::int"
                  " AND nshards = $3::int",
                  3) < 0 ||
        s_prepare(self->db, self->st_cursor_set, "bus_cursor_set", self->schema,
                  "INSERT INTO {s}.bus_cursor (stream, shard, nshards, seq)"
                  " VALUES ($1, $2::int, $3::int, $4::bigint)"
                  " ON CONFLICT (stream, shard, nshards)"
                  " DO UPDATE SET seq = excluded.seq, updated_at = now()",
                  4) < 0 ||
        s_prepare(self->db, self->st_reject, "bus_reject", self->schema,
                  "INSERT INTO {s}.bus_rejected (stream, seq, topic, reason)"
                  " VALUES ($1, $2::bigint, $3, $4) ON CONFLICT DO NOTHING",
                  4) < 0)
        return -1;
    /* The fetch reads the producer's schema: the stream's name is part of the statement
     * name so that one consumer reading two streams keeps both. */
    char what[64];
    snprintf(what, sizeof what, "bus_fetch_%s", self->schema);
    return s_prepare(self->db, self->st_fetch, what, self->stream,
                     "SELECT seq, aseq, topic, at, v, data FROM {s}.outbox"
                     " WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int",
                     2);
}

static int
s_sub_load_cursor(bus_sub_t *self)
{
    char shard[16], nshards[16];
    snprintf(shard, sizeof shard, "%d", self->shard);
    snprintf(nshards, sizeof nshards, "%d", self->nshards);
    const char *vals[3] = {self->stream, shard, nshards};
    PGresult *r = db_exec_prepared(self->db, self->st_cursor_get, 3, vals, NULL, NULL, 0);
    if (!r)
        return -1;
    self->stats.cursor = PQntuples(r) == 1 ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (self->stats.head < self->stats.cursor)
        self->stats.head = self->stats.cursor;
    return 0;
}

/* Whether this subscriber's handler should see ev: one of its prefixes, and its shard. */
static bool
s_sub_wanted(bus_sub_t *self, const bus_event_t *ev)
{
    bool match = false;
    for (size_t i = 0; i < self->nprefixes && !match; i++)
        match = strncmp(ev->topic, self->prefixes[i], strlen(self->prefixes[i])) == 0;
    if (!match)
        return false;
    if (self->nshards == 1)
        return true;
    char key[256];
    size_t len;
    if (self->key_fn && self->key_fn(ev, self->key_arg, key, sizeof key) == 0) {
        len = strnlen(key, sizeof key);
    } else {
        size_t tl = strlen(ev->topic);
        len = tl >= EVMSG_AGENCY_LEN ? EVMSG_AGENCY_LEN : tl;
        memcpy(key, ev->topic + tl - len, len);
    }
    return bus_hash(key, len) % (uint64_t)self->nshards == (uint64_t)self->shard;
}

/* Applies events[0..n) (seqs cursor+1 .. cursor+n) and moves the cursor, in one
 * transaction. Returns 0, or -1 (rolled back; nothing applied). */
static int
s_sub_apply(bus_sub_t *self, bus_event_t *events, int n)
{
    if (n == 0)
        return 0;
    assert(events[0].seq == self->stats.cursor + 1);
    if (db_begin(self->db) < 0)
        return -1;
    uint64_t applied = 0, skipped = 0, rejected = 0;
    int nwanted = 0;
    for (int i = 0; i < n; i++) {
        bus_event_t *ev = &events[i];
        if (!s_sub_wanted(self, ev)) {
            skipped++;
            continue;
        }
        if (self->batch_fn) {
            self->wanted[nwanted++] = *ev;
            continue;
        }
        char why[256] = "";
        int rc = self->fn(self->db, ev, self->arg, why, sizeof why);
        if (rc == 0) {
            applied++;
        } else if (rc == BUS_REJECT) {
            char seq[24];
            snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
            const char *vals[4] = {self->stream, seq, ev->topic, why[0] ? why : "rejected"};
            PGresult *r = db_exec_prepared(self->db, self->st_reject, 4, vals, NULL, NULL, 0);
            if (!r)
                goto fail;
            PQclear(r);
            log_warn("event rejected", "stream=%s seq=%" PRIu64 " topic=%s reason=%s", self->stream,
                     ev->seq, ev->topic, why);
            rejected++;
        } else {
            log_warn("handler failed; will retry", "stream=%s seq=%" PRIu64 " topic=%s reason=%s",
                     self->stream, ev->seq, ev->topic, why);
            goto fail;
        }
    }
    if (nwanted > 0) {
        if (self->batch_fn(self->db, self->wanted, nwanted, self->arg) != 0) {
            log_warn("batch handler failed; will retry", "stream=%s from=%" PRIu64 " n=%d",
                     self->stream, self->wanted[0].seq, nwanted);
            goto fail;
        }
        applied += (uint64_t)nwanted;
    }
    char shard[16], nshards[16], seq[24];
    snprintf(shard, sizeof shard, "%d", self->shard);
    snprintf(nshards, sizeof nshards, "%d", self->nshards);
    snprintf(seq, sizeof seq, "%" PRIu64, events[n - 1].seq);
    const char *vals[4] = {self->stream, shard, nshards, seq};
    PGresult *r = db_exec_prepared(self->db, self->st_cursor_set, 4, vals, NULL, NULL, 0);
    if (!r)
        goto fail;
    PQclear(r);
    int rc = db_commit(self->db);
    if (rc == DB_UNKNOWN) {
        /* It may have committed: read the cursor again before going on. */
        self->started = false;
        return -1;
    }
    if (rc < 0)
        goto fail;
    self->stats.cursor = events[n - 1].seq;
    if (self->stats.head < self->stats.cursor)
        self->stats.head = self->stats.cursor;
    self->stats.applied += applied;
    self->stats.skipped += skipped;
    self->stats.rejected += rejected;
    return 0;
fail:
    log_warn("events not applied", "stream=%s from=%" PRIu64 " n=%d reason=%s", self->stream,
             events[0].seq, n, db_error(self->db));
    db_rollback(self->db);
    return -1;
}

/* Reads the outbox from the cursor to the stream's head and applies it, a batch per
 * transaction. Returns 0, or -1. */
static int
s_sub_catch_up(bus_sub_t *self)
{
    self->stats.catchups++;
    evmsg_t **msgs = self->live; /* the live buffer is empty here: reuse it */
    for (int rounds = 0; rounds < 1000000; rounds++) {
        char after[24], limit[16];
        snprintf(after, sizeof after, "%" PRIu64, self->stats.cursor);
        snprintf(limit, sizeof limit, "%d", BUS_BATCH_MAX);
        const char *vals[2] = {after, limit};
        PGresult *r = db_exec_prepared(self->db, self->st_fetch, 2, vals, NULL, NULL, 1);
        if (!r)
            return -1;
        int n = PQntuples(r), good = 0;
        for (int i = 0; i < n; i++) {
            uint64_t seq = s_be64(PQgetvalue(r, i, 0));
            if (seq != self->stats.cursor + 1 + (uint64_t)i) {
                /* Cannot happen while one relay sequences in whole committed batches. */
                log_error("outbox has a gap", "stream=%s expected=%" PRIu64 " found=%" PRIu64,
                          self->stream, self->stats.cursor + 1 + (uint64_t)i, seq);
                break;
            }
            evmsg_header_t hdr = {.seq = seq,
                                  .aseq = s_be64(PQgetvalue(r, i, 1)),
                                  .at = (int64_t)s_be64(PQgetvalue(r, i, 3)),
                                  .v = s_be32(PQgetvalue(r, i, 4))};
            snprintf(hdr.src, sizeof hdr.src, "%s", self->stream);
            size_t len;
            evmsg_err_t err = {{0}, {0}};
            bus_event_t *ev = &self->events[i];
            snprintf(self->topics[i], sizeof self->topics[i], "%.*s", PQgetlength(r, i, 2),
                     PQgetvalue(r, i, 2));
            *ev = (bus_event_t){.seq = hdr.seq,
                                .aseq = hdr.aseq,
                                .at = hdr.at,
                                .v = hdr.v,
                                .topic = self->topics[i]};
            if (evmsg_encode_buf(self->buf, EVMSG_MAX_BYTES, &hdr, PQgetvalue(r, i, 5),
                                 (size_t)PQgetlength(r, i, 5), &len, &err) < 0 ||
                evmsg_decode(self->buf, len, &msgs[i], &err) < 0) {
                /* A row no producer could have written through bus_emit: the handler
                 * cannot read it, so it is skipped as unwanted (logged). */
                char why[300];
                log_error("outbox row does not decode", "stream=%s seq=%" PRIu64 " err=%s",
                          self->stream, seq, evmsg_err_str(&err, why, sizeof why));
                snprintf(self->topics[i], sizeof self->topics[i], "_undecodable");
                msgs[i] = NULL;
            }
            ev->msg = msgs[i];
            good++;
        }
        PQclear(r);
        self->stats.caught_up += (uint64_t)good;
        int rc = s_sub_apply(self, self->events, good);
        for (int i = 0; i < good; i++)
            evmsg_destroy(&msgs[i]);
        if (rc < 0)
            return -1;
        if (n < BUS_BATCH_MAX || good < n)
            break;
    }
    if (self->stats.head < self->stats.cursor)
        self->stats.head = self->stats.cursor;
    self->need_catchup = false;
    return 0;
}

int
bus_sub_start(bus_sub_t *self)
{
    if (!self->subscribed) {
        for (size_t i = 0; i < self->nprefixes; i++)
            zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, self->prefixes[i], strlen(self->prefixes[i]));
        zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, self->hb_topic, strlen(self->hb_topic));
        self->subscribed = true;
    }
    if (s_sub_prepare(self) < 0 || s_sub_load_cursor(self) < 0) {
        log_warn("subscriber cannot start", "stream=%s reason=%s", self->stream,
                 db_error(self->db));
        return -1;
    }
    self->started = true;
    return s_sub_catch_up(self);
}

/* Receives one whole message; returns its frame count (0 when none waiting). Only the
 * first two frames are kept; a longer message is drained and reported as such. */
static int
s_recv(void *sock, zmq_msg_t *topic, zmq_msg_t *body)
{
    if (zmq_msg_recv(topic, sock, ZMQ_DONTWAIT) < 0)
        return 0;
    int frames = 1;
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    while (more) {
        zmq_msg_t *into = frames == 1 ? body : NULL;
        zmq_msg_t junk;
        if (!into) {
            zmq_msg_init(&junk);
            into = &junk;
        }
        zmq_msg_recv(into, sock, 0);
        if (into == &junk)
            zmq_msg_close(&junk);
        frames++;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    }
    return frames;
}

int
bus_sub_step(bus_sub_t *self)
{
    if (!self->started && bus_sub_start(self) < 0)
        return -1;

    /* Drain what has arrived, up to a batch. */
    int nlive = 0;
    while (nlive < BUS_BATCH_MAX) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        int frames = s_recv(self->sub, &topic, &body);
        if (frames == 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            break;
        }
        const char *t = zmq_msg_data(&topic);
        size_t tlen = zmq_msg_size(&topic);
        evmsg_t *msg = NULL;
        evmsg_err_t err = {{0}, {0}};
        if (frames != 2 || tlen > EVMSG_TOPIC_MAX ||
            evmsg_decode(zmq_msg_data(&body), zmq_msg_size(&body), &msg, &err) < 0) {
            self->stats.malformed++;
            char why[300];
            log_warn("malformed message dropped", "stream=%s frames=%d err=%s", self->stream,
                     frames, evmsg_err_str(&err, why, sizeof why));
        } else if (strcmp(evmsg_header(msg)->src, self->stream) != 0) {
            evmsg_destroy(&msg); /* another stream's topic under one of our prefixes */
        } else if (tlen == strlen(self->hb_topic) && memcmp(t, self->hb_topic, tlen) == 0) {
            atomic_store(&self->heard_ms, util_mono_ms());
            if (evmsg_header(msg)->seq > self->stats.head)
                self->stats.head = evmsg_header(msg)->seq;
            evmsg_destroy(&msg);
        } else {
            snprintf(self->topics[nlive], sizeof self->topics[nlive], "%.*s", (int)tlen, t);
            self->live[nlive++] = msg;
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }

    /* Take the contiguous run that follows the cursor; drop what is already applied; a
     * jump ahead means something was lost on the way: repair from Postgres. */
    int n = 0;
    uint64_t next = self->stats.cursor + 1;
    for (int i = 0; i < nlive; i++) {
        const evmsg_header_t *h = evmsg_header(self->live[i]);
        if (h->seq > self->stats.head)
            self->stats.head = h->seq;
        if (self->need_catchup)
            continue;
        if (h->seq < next) {
            self->stats.duplicates++;
        } else if (h->seq == next) {
            self->events[n++] = (bus_event_t){.seq = h->seq,
                                              .aseq = h->aseq,
                                              .at = h->at,
                                              .v = h->v,
                                              .topic = self->topics[i],
                                              .msg = self->live[i]};
            next++;
        } else {
            self->stats.gaps++;
            self->need_catchup = true;
        }
    }
    int rc = s_sub_apply(self, self->events, n);
    for (int i = 0; i < nlive; i++)
        evmsg_destroy(&self->live[i]);
    if (rc < 0)
        return -1;
    if (self->need_catchup || self->stats.head > self->stats.cursor)
        return s_sub_catch_up(self);
    return 0;
}

bool
bus_sub_check(void *arg, char *why, size_t whylen)
{
    bus_sub_t *self = arg;
    int64_t heard = atomic_load(&self->heard_ms);
    if (heard == 0) {
        snprintf(why, whylen, "no heartbeat from stream %s through the broker yet", self->stream);
        return false;
    }
    int64_t ago = util_mono_ms() - heard;
    if (ago > BUS_HEARD_MS) {
        snprintf(why, whylen, "no heartbeat from stream %s through the broker for %" PRId64 " ms",
                 self->stream, ago);
        return false;
    }
    return true;
}

void
bus_sub_run(bus_sub_t *self, volatile int *stop)
{
    while (!*stop) {
        if (bus_sub_step(self) < 0) {
            zmq_poll(NULL, 0, BUS_RETRY_MS);
            continue;
        }
        zmq_pollitem_t item = {self->sub, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, BUS_HEARTBEAT_MS);
    }
}
