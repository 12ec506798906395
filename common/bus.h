/* bus: reliable events. PostgreSQL is the truth, ZeroMQ the carrier (DESIGN.md,
 * "Reliable events").
 *
 *   producer   bus_emit(db, "intake", topic, v, data, len) inside the transaction that
 *              changes the state the event reports: both commit, or neither.
 *   relay      one leader per stream (pg_try_advisory_lock) gives committed outbox rows
 *              gapless `seq` (per stream) and `aseq` (per stream and agency) in batches,
 *              commits, then publishes [topic][envelope] to the broker, and sends a
 *              heartbeat `_hb.<stream>` every second carrying the last seq. Rows written
 *              by bus_emit_batch_seq have their seq already: the relay publishes them.
 *   subscriber subscribes first, then catches up from the producer's outbox (a
 *              read-only grant) from its cursor; drops seq <= cursor; on a gap, or a
 *              heartbeat ahead of its cursor, catches up again. The handler runs in the
 *              transaction that advances the cursor, so each event's effects happen
 *              exactly once; many events are handled per transaction when they wait.
 *
 * A stream is named after the producing service and its Postgres schema ("intake").
 * The bus's tables (outbox, bus_head, bus_agency; bus_cursor, bus_rejected) live in
 * each service's own schema and come from schemas/sql/bus/ (bus_migrate).
 *
 * Topics: `<event>.<agency-code>` (evmsg_topic_check). A subscriber should subscribe to
 * every event prefix its stream publishes and filter in the handler (bus_event_t.topic):
 * seq is gapless per stream, so a subscriber that sees only part of a stream sees gaps
 * and repairs each from Postgres, which is correct but slower. */
#ifndef SX_BUS_H
#define SX_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "evmsg.h"

#define BUS_BATCH_MAX       1000 /* rows sequenced, or events handled, per transaction */
#define BUS_HEARTBEAT_MS    1000
#define BUS_LEADER_RETRY_MS 500 /* how often a follower relay tries to become leader */

/* ---- Tables ------------------------------------------------------------------------ */

/* Applies the bus's migrations (schemas/sql/bus in the repository, or the directory in
 * dir when not NULL) to schema. Returns the number applied, or -1 (reason in
 * db_error). Every service that produces or consumes events calls it at start. */
int bus_migrate(db_t *db, const char *schema, const char *dir);

/* ---- Producer ---------------------------------------------------------------------- */

/* Writes one event into <schema>.outbox as part of the caller's open transaction (it
 * commits or rolls back with it). topic must pass evmsg_topic_check; data is the event's
 * map packed with msgpack_packer (data_len bytes), checked as evmsg_encode checks it,
 * so nothing the relay could not publish ever enters the outbox; v is the schema
 * version of data (>= 1). Returns 0, or -1 with the reason in err (bad input: nothing
 * written) or in db_error (database failure: the caller's transaction is failed). */
int bus_emit(db_t *tx, const char *schema, const char *topic, uint32_t v, const void *data,
             size_t data_len, evmsg_err_t *err);

/* One event for bus_emit_batch. */
typedef struct {
    const char *topic;
    uint32_t v;
    const void *data;
    size_t data_len;
} bus_event_in_t;

/* Writes n events (n <= BUS_BATCH_MAX) into <schema>.outbox in one statement (binary
 * arrays through unnest: one round trip), in the caller's open transaction, in order.
 * Each is checked as bus_emit checks it, before anything is written: on bad input
 * returns -1 with err->path prefixed by the event's index ("[3].topic") and writes
 * nothing. Returns 0, or -1 (err, or db_error on a database failure). The group-commit
 * path: a service gathering many requests in one loop turn emits their events at once. */
int bus_emit_batch(db_t *tx, const char *schema, const bus_event_in_t *events, size_t n,
                   evmsg_err_t *err);

/* As bus_emit_batch, but the events get their seq, aseq and at as they are written, so
 * that the relay publishes them without rewriting them (the group-commit path). The
 * statement takes the stream's head row (bus_head) and holds it until the caller's
 * transaction ends: other producers of the stream, and the relay's sequencing of rows
 * written by bus_emit, wait for that commit or rollback. Seqs are thus given in commit
 * order, gapless (a rollback gives them back). For a transaction that commits soon
 * after, and that takes no other lock another producer of the stream may hold while it
 * waits for the head. The statement is queued with db_defer_prepared: it runs with tx's
 * next statement or its COMMIT, in one round trip, and a failure of it (events not all
 * written among them) is that call's failure; 0 here means queued. */
int bus_emit_batch_seq(db_t *tx, const char *schema, const bus_event_in_t *events, size_t n,
                       evmsg_err_t *err);

/* The group-commit path of a stream's producer: bus_emit_batch_seq, unless rows written
 * by bus_emit or bus_emit_batch (an earlier version of the producer) may still wait for
 * the relay: then bus_emit_batch, so that the new events follow those rows in the stream
 * as they follow them in commit order. *relay_rows belongs to the producer and starts
 * true; while it is, each call first asks whether the outbox holds a row without seq,
 * and once none does it stays false, and every later batch is sequenced as written (for
 * a stream whose producers all emit through here). Returns as those two. */
int bus_emit_batch_ordered(db_t *tx, const char *schema, bool *relay_rows,
                           const bus_event_in_t *events, size_t n, evmsg_err_t *err);

/* ---- Relay ------------------------------------------------------------------------- */

typedef struct bus_relay bus_relay_t;

typedef struct {
    uint64_t sequenced; /* rows relayed in seq order (given their seq here or at insert) */
    uint64_t published; /* messages handed to ZeroMQ */
    uint64_t dropped;   /* messages ZeroMQ refused (high-water mark): subscribers repair */
    uint64_t heartbeats;
    uint64_t takeovers; /* times this relay became leader */
    uint64_t last_seq;  /* the stream's head as this relay last saw it */
    bool leader;
} bus_relay_stats_t;

/* A relay for stream (a schema name) over its own database handle db (the relay keeps
 * session state on it: the advisory lock, LISTEN) and a PUB socket pub, already
 * connected to the broker (CURVE, linger, high-water mark set by the caller; the relay
 * sets ZMQ_XPUB_NODROP so a full queue is counted, not silent). Neither is owned by the
 * relay. Returns NULL on bad arguments or out of memory. */
bus_relay_t *bus_relay_new(db_t *db, const char *stream, void *pub);

/* Frees the relay (not the db or the socket); sets *self_p to NULL. Idempotent. A
 * leader's advisory lock is released, so another instance takes over at once. */
void bus_relay_destroy(bus_relay_t **self_p);

/* The file descriptor to poll for readability (the database socket, on which
 * notifications arrive), or -1 when not connected. Changes after a reconnect. */
int bus_relay_fd(const bus_relay_t *self);

/* Does what is due at now_ms (CLOCK_MONOTONIC, ms): tries to become leader when a
 * follower; when leader, reads notifications, sequences and publishes every pending
 * row, and sends the heartbeat when one is due. Returns the ms until it next needs to
 * run (to use as a poll timeout), or -1 after a database failure (logged; the next
 * step reconnects and starts again as a follower). */
int bus_relay_step(bus_relay_t *self, int64_t now_ms);

/* Runs steps, polling the database socket, until *stop becomes true. For a relay in its
 * own thread or process; a service with other sockets calls bus_relay_step from its own
 * zmq_poll loop instead. */
void bus_relay_run(bus_relay_t *self, volatile int *stop);

/* Counters, for /metrics and tests. */
bus_relay_stats_t bus_relay_stats(const bus_relay_t *self);

/* ---- Subscriber -------------------------------------------------------------------- */

/* One event as a handler sees it. msg is the decoded envelope: evmsg_data(msg, &err)
 * reads its data. Valid during the handler call only. */
typedef struct {
    uint64_t seq, aseq;
    int64_t at;
    uint32_t v;
    const char *topic; /* NUL-terminated */
    const evmsg_t *msg;
} bus_event_t;

/* A handler's verdict: apply (0), reject the event for good (BUS_REJECT: it is recorded
 * in <schema>.bus_rejected with the reason, and the stream moves on), or fail for now
 * (-1: the transaction rolls back and the same events are tried again after a pause). */
#define BUS_REJECT 1
typedef int(bus_handler_fn)(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen);

/* The key an event is sharded by (e.g. its case number), written into key (NUL-
 * terminated, at most keylen bytes). Return -1 to use the topic's agency code. */
typedef int(bus_key_fn)(const bus_event_t *ev, void *arg, char *key, size_t keylen);

typedef struct bus_sub bus_sub_t;

typedef struct {
    uint64_t applied;    /* events handed to the handler and committed */
    uint64_t skipped;    /* events outside the prefixes or another shard's */
    uint64_t rejected;   /* BUS_REJECT */
    uint64_t duplicates; /* live messages with seq <= cursor, dropped */
    uint64_t gaps;       /* gaps seen in the live stream */
    uint64_t catchups;   /* catch-up runs from Postgres */
    uint64_t caught_up;  /* events read from Postgres during catch-ups */
    uint64_t malformed;  /* live frames that did not decode, dropped */
    uint64_t cursor;
    uint64_t head; /* the highest seq known to exist (heartbeats, messages) */
} bus_sub_stats_t;

/* A subscriber of stream for the consuming service whose schema is schema (its cursor
 * and rejects live there), over db (not owned) and a SUB socket sub already connected to
 * the broker (not owned; CURVE, linger, ZMQ_MAXMSGSIZE set by the caller). prefixes is
 * a NULL-terminated list of topic prefixes to subscribe to and handle (copied); events
 * of the stream outside them advance the cursor without reaching the handler.
 * Returns NULL on bad arguments or out of memory. Call bus_sub_start next. */
bus_sub_t *bus_sub_new(db_t *db, const char *schema, const char *stream,
                       const char *const prefixes[], void *sub, bus_handler_fn *fn, void *arg);

/* Handles the wanted events of each transaction together instead (one INSERT for many
 * effects is what lets a consumer keep up with a fast stream): fn gets them in seq order
 * and returns 0 to apply all, or -1 to roll back and retry them all after a pause. It
 * replaces the per-event handler given to bus_sub_new; there is no per-event reject.
 * Call before bus_sub_start. */
typedef int(bus_batch_fn)(db_t *tx, const bus_event_t *events, int n, void *arg);
void bus_sub_set_batch_handler(bus_sub_t *self, bus_batch_fn *fn);

/* Makes this subscriber shard index of count (0 <= index < count): it handles only the
 * events whose key (key_fn, or the agency code when key_fn is NULL or returns -1)
 * hashes (FNV-1a 64) to index modulo count. Each shard keeps its own cursor. Call
 * before bus_sub_start. Returns 0 or -1 on bad arguments. */
int bus_sub_set_shard(bus_sub_t *self, int index, int count, bus_key_fn *key_fn, void *arg);

/* Subscribes (the prefixes and the stream's heartbeat), loads the cursor and catches up
 * from Postgres to the stream's head. Returns 0, or -1 (logged; call again later). */
int bus_sub_start(bus_sub_t *self);

/* Handles what has arrived on the socket (call when it is readable; it never blocks)
 * and runs a catch-up when a gap or a heartbeat showed one is needed. Returns 0, or -1
 * after a database or handler failure (logged; the events will be handled again). */
int bus_sub_step(bus_sub_t *self);

/* Runs bus_sub_start, then steps, polling the socket, until *stop becomes true. */
void bus_sub_run(bus_sub_t *self, volatile int *stop);

/* Frees the subscriber (not the db or the socket); sets *self_p to NULL. Idempotent. */
void bus_sub_destroy(bus_sub_t **self_p);

bus_sub_stats_t bus_sub_stats(const bus_sub_t *self);

/* A health check for /healthz (ops_check_fn; arg is a bus_sub_t *): healthy while a
 * heartbeat of the stream has arrived through the broker within BUS_HEARD_MS, so it
 * proves the broker reachable and the stream's relay alive end to end; otherwise why
 * says which. Safe to call from the ops thread. */
#define BUS_HEARD_MS 3500
bool bus_sub_check(void *arg, char *why, size_t whylen);

/* FNV-1a 64 of len bytes: the shard hash, fixed so every instance and language agrees. */
uint64_t bus_hash(const void *data, size_t len);

#endif
