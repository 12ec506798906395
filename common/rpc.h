/* rpc: the request/reply door of every service (schemas/messages/rpc.md is the contract).
 *
 * Server: a ROUTER socket, CURVE server behind the ZAP handler. The caller's identity is
 * the ZAP User-Id of the connection (`svc:<name>`, `dept:<code>:<role>`), never anything
 * in the payload. A request is one msgpack map {op, rid, body}; the reply is
 * {rid, ok: true, result} or {rid, ok: false, error: {code, field, zh, en}}.
 *
 *   rpc_server_t *rpc = rpc_server_new(ctx, zap, "intake", sec, "tcp://0.0.0.0:7001",
 *                                      db, "intake", err, sizeof err);
 *   rpc_register(rpc, &(rpc_op_t){"case.open", RPC_WRITE, "dept:*:officer", s_open, st});
 *   while (!stop) rpc_server_poll(rpc, 100);        // or poll rpc_server_socket yourself
 *
 * Group commit (DESIGN.md, "Speed"): one turn drains every waiting request (at most
 * RPC_BATCH_MAX). Requests that fail to decode, name an unknown op or are not allowed are
 * answered at once, without database work. Write ops (RPC_WRITE) then run in ONE
 * transaction: stored replies for all (identity, rid) pairs are looked up in one query
 * and replayed; the rest go to their op's handler, as few calls as the order below
 * allows; every reply, ok or error, is stored in one statement; COMMIT; then all replies
 * are sent. Read ops (RPC_READ) run after that, outside any transaction, and nothing of
 * theirs is stored.
 *
 * Order: requests of one turn were all sent before any of their replies, so requests of
 * different identities are concurrent and may run in any order. Of one identity's, two
 * keep their arrival order unless both carry an order key (rpc_op_t.order_key, a string
 * field of the body named with rpc_order_key, e.g. intake's "case_no") and the keys differ: one
 * case's open, proposal and decision run in the order sent, while different cases' opens share one
 * handler call. A request without a key (its op has none, or the field is absent) passes
 * no earlier request of its identity and is passed by no later one.
 *
 * Exactly once: a repeated (identity, rid) returns the stored reply byte for byte and
 * runs nothing; the same rid with a different payload is refused (`rid_reused`). When
 * the transaction cannot commit, every write request of the turn is answered
 * `unavailable` and nothing is stored: the client resends the same rid. When a batch
 * fails while the connection is still good (one request's statement broke it), the batch
 * is split in halves and run again, so one poisoned request is answered `internal` and
 * the others commit (a request that fails alone is tried once more alone: one that lost
 * a race for its rid with another instance of the service then finds the stored reply).
 *
 * One thread: an rpc_server_t, its socket and its db_t belong to the loop that polls it. */
#ifndef SX_RPC_H
#define SX_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "db.h"
#include "evmsg.h"
#include "ops.h"
#include "zap.h"

#define RPC_OP_MAX      64    /* bytes in an op name, [a-z][a-z0-9_.]{0,63} */
#define RPC_RID_MAX     64    /* bytes in a rid, printable ASCII 0x21..0x7e */
#define RPC_ROUTING_MAX 256   /* bytes in a ROUTER routing id (libzmq's limit is 255) */
#define RPC_BATCH_MAX   512   /* requests drained per turn */
#define RPC_RESULT_MAX  60000 /* bytes in a packed result map */
#define RPC_CODE_MAX    32    /* bytes in an error code, [a-z][a-z0-9_]{0,31} */
#define RPC_FIELD_MAX   EVMSG_PATH_MAX
#define RPC_TEXT_MAX    1024            /* bytes in an error's zh or en text */
#define RPC_MAXMSGSIZE  EVMSG_MAX_BYTES /* ZMQ_MAXMSGSIZE of the server: larger, disconnect */
#define RPC_ALLOW_MAX   8               /* identity patterns per op */

/* Op flags: exactly one of RPC_WRITE, RPC_READ. */
#define RPC_WRITE 0x1 /* runs in the turn's transaction; replies stored by (identity, rid) */
#define RPC_READ  0x2 /* runs after the commit in autocommit; nothing stored */

typedef struct rpc_server rpc_server_t;
typedef struct rpc_req rpc_req_t;

/* An op's handler. reqs are n (>= 1) requests for the same op, in arrival order (not
 * always consecutive ones: see "Order" above); each
 * has a decoded body (rpc_req_body) and an identity allowed by the op. For RPC_WRITE, db
 * is inside the turn's transaction (SAVEPOINTs are fine; BEGIN/COMMIT/ROLLBACK are not);
 * for RPC_READ it is in autocommit. The handler sets each request's outcome with rpc_ok
 * or rpc_fail*; a request left without one is answered ok with an empty result {}.
 * Return 0; or -1 when the database failed (the transaction is then rolled back and the
 * requests are answered as the file header says; outcomes already set are discarded). */
typedef int(rpc_handler_fn)(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg);

/* An op to register. The strings are copied. */
typedef struct {
    const char *name;   /* [a-z][a-z0-9_.]{0,63}, unique per server */
    int flags;          /* RPC_WRITE or RPC_READ */
    const char *allow;  /* who may call: space-separated identity patterns, at most
                         * RPC_ALLOW_MAX: "svc:" or "dept:" (a trailing ':' is a prefix),
                         * "svc:sxctl" (exact), "dept:*:officer" ('*' = one segment) */
    rpc_handler_fn *fn; /* the handler */
    void *arg;          /* its argument (borrowed) */
} rpc_op_t;

/* Totals since rpc_server_new. */
typedef struct {
    uint64_t requests;     /* well-framed requests received */
    uint64_t dropped;      /* messages that could not be framed (no reply sent) */
    uint64_t errors;       /* error replies sent (stored replays excluded) */
    uint64_t replays;      /* stored replies sent again */
    uint64_t batches;      /* handler calls */
    uint64_t max_batch;    /* most requests in one handler call */
    uint64_t transactions; /* write transactions begun (splits included) */
    uint64_t commits;      /* of which committed */
    uint64_t splits;       /* batches split after a failure */
    uint64_t pruned;       /* stored replies deleted past their retention */
} rpc_stats_t;

/* ---- Server ------------------------------------------------------------------------ */

/* Applies the rpc's migrations (schemas/sql/rpc, or dir when not NULL; without dir,
 * $SX_SCHEMAS/sql/rpc when SX_SCHEMAS is set) to schema, as the set "rpc". Returns the
 * number applied, or -1 (reason in db_error). Call before rpc_server_new. */
int rpc_migrate(db_t *db, const char *schema, const char *dir);

/* A server: a CURVE ROUTER (zsock_server on ZAP domain `domain` with secret_z85, limits
 * ZSOCK_LIMITS_DEFAULT but ZMQ_MAXMSGSIZE = RPC_MAXMSGSIZE) bound to endpoint, storing
 * replies in <schema>.rpc_reply through db (borrowed: the caller keeps it open and
 * destroys it after the server; schema [a-z][a-z0-9_]{0,31}). Register the domain's
 * identity patterns with zap_allow. Returns NULL with the reason in err. */
rpc_server_t *rpc_server_new(void *ctx, const zap_t *zap, const char *domain,
                             const char *secret_z85, const char *endpoint, db_t *db,
                             const char *schema, char *err, size_t errlen);

/* Closes the socket and frees the server; sets *self_p to NULL. Idempotent. */
void rpc_server_destroy(rpc_server_t **self_p);

/* Registers an op before serving. Returns 0, or -1 (logged) when the name is malformed
 * or taken, flags are not exactly one of RPC_WRITE/RPC_READ, fn is NULL, allow has no
 * pattern, too many patterns, or a malformed one. */
int rpc_register(rpc_server_t *self, const rpc_op_t *op);

/* Gives the registered op an order key: key, a top-level string field of its body, names
 * what a request acts on, and requests of one identity with different keys may pass each
 * other (see "Order" above). A request whose body lacks the field, or has it empty, not a
 * string or over 1,024 bytes, orders as one without a key. Call before serving. Returns
 * 0, or -1 (logged) when op is not registered or key is empty or over RPC_OP_MAX bytes. */
int rpc_order_key(rpc_server_t *self, const char *op, const char *key);

/* Registers counters and histograms named sx_<svc>_rpc_* on ops: requests_total,
 * replays_total, dropped_total, errors_total{code=...}, batch_size, turn_seconds.
 * Call once before serving. Returns 0, or -1 when svc is malformed. */
int rpc_set_metrics(rpc_server_t *self, ops_t *ops, const char *svc);

/* Retention of stored replies (rpc.md promises at least RPC_KEEP_DAYS_MIN days). After a
 * turn, at most every RPC_PRUNE_EVERY_MS, the server prunes, outside any transaction: it
 * reads the next RPC_PRUNE_PAGES pages of <schema>.rpc_reply (a TID range scan, so the
 * cost is bounded whatever the table's size or statistics) and deletes the replies there
 * older than its retention, wrapping to the first page at the end: a sweep. A rid resent
 * after its reply was deleted runs again. */
#define RPC_KEEP_DAYS_MIN     7
#define RPC_KEEP_DAYS_MAX     3650
#define RPC_KEEP_DAYS_DEFAULT 30 /* until rpc_set_retention */
#define RPC_PRUNE_PAGES       256
#define RPC_PRUNE_EVERY_MS    10000

/* Sets the retention in days. Returns 0, or -1 (logged) outside RPC_KEEP_DAYS_MIN ..
 * RPC_KEEP_DAYS_MAX. */
int rpc_set_retention(rpc_server_t *self, int keep_days);

/* One prune now (also what the turns run): the sweep's next RPC_PRUNE_PAGES pages.
 * Returns the number of replies deleted, or -1 (logged; the next prune reads the same
 * pages). Not inside a transaction of the server's db. */
long rpc_server_prune(rpc_server_t *self);

/* The ROUTER socket, to put in the service's zmq_poll (ZMQ_POLLIN: call rpc_server_turn). */
void *rpc_server_socket(rpc_server_t *self);

/* The endpoint actually bound ("tcp://127.0.0.1:41234" for a "tcp://127.0.0.1:*"). */
const char *rpc_server_endpoint(const rpc_server_t *self);

/* One turn: drains up to RPC_BATCH_MAX waiting requests without blocking, handles and
 * answers them. Returns the number of requests answered (0 when none waited). Database
 * failures are answered to the clients and logged, not returned. */
int rpc_server_turn(rpc_server_t *self);

/* Waits up to timeout_ms for a request, then runs one turn. Returns as rpc_server_turn,
 * or -1 when zmq_poll fails (EINTR included: check the stop flag). */
int rpc_server_poll(rpc_server_t *self, int timeout_ms);

/* A copy of the totals. */
rpc_stats_t rpc_server_stats(const rpc_server_t *self);

/* ---- In a handler ------------------------------------------------------------------ */

/* The request's fields, valid during the handler call. The identity is the ZAP User-Id;
 * rpc_req_agency is the 18-character agency code of a dept identity (NUL-terminated),
 * NULL for any other. */
const char *rpc_req_op(const rpc_req_t *req);
const char *rpc_req_rid(const rpc_req_t *req);
const char *rpc_req_identity(const rpc_req_t *req);
const char *rpc_req_agency(const rpc_req_t *req);

/* A reader over the request's body map (path "body", so errors read "body.name: ..."),
 * errors going to err (may be NULL). The body is always present (rpc refuses a request
 * without one). */
evmsg_map_t rpc_req_body(const rpc_req_t *req, evmsg_err_t *err);

/* Success: map is the result, one msgpack map packed with msgpack_packer (len bytes,
 * copied; at most RPC_RESULT_MAX). Replaces an outcome set before. Returns 0; or -1 when
 * map is not one map of at most RPC_RESULT_MAX bytes or memory ran out, in which case
 * the request is answered `internal`. */
int rpc_ok(rpc_req_t *req, const void *map, size_t len);

/* Failure of this request only (the others in the batch go on): code
 * [a-z][a-z0-9_]{0,31} (see rpc.md for the generic ones; a service adds its own, e.g.
 * "review_required"), field the path at fault ("" for none), zh and en the messages
 * (truncated to RPC_TEXT_MAX bytes at a character boundary; NULL reads as ""). The error
 * reply is stored like a success: the same rid gets it again. A malformed code becomes
 * "internal". Replaces an outcome set before. */
void rpc_fail(rpc_req_t *req, const char *code, const char *field, const char *zh, const char *en);

/* rpc_fail from an evmsg error (err->reason non-empty): code `missing_field`,
 * `unknown_field`, `too_large` or `bad_field` by the reason, field = err->path, en =
 * the reason, zh = its Chinese rendering (rpc_zh_reason). */
void rpc_fail_evmsg(rpc_req_t *req, const evmsg_err_t *err);

/* True when an error outcome is set on req. */
bool rpc_failed(const rpc_req_t *req);

/* The code and Chinese text for an evmsg reason: writes zh (NUL-terminated, truncated
 * to zhlen) and returns the static code string ("missing_field", ...). A reason it does
 * not know reads 字段无效 ("bad_field"). */
const char *rpc_zh_reason(const char *reason, char *zh, size_t zhlen);

/* ---- Client ------------------------------------------------------------------------ */

typedef struct rpc_client rpc_client_t;

/* A decoded reply. Strings are NUL-terminated. */
typedef struct {
    bool ok;
    bool rid_nil; /* the server could not read the request's rid */
    char rid[RPC_RID_MAX + 1];
    void *result; /* ok: the packed result map (malloc'ed), else NULL */
    size_t result_len;
    char code[RPC_CODE_MAX + 1]; /* !ok: the error */
    char field[RPC_FIELD_MAX];
    char zh[RPC_TEXT_MAX + 1];
    char en[RPC_TEXT_MAX + 1];
} rpc_reply_t;

/* Packs a request {op, rid, body} into out (cleared first); body is one packed map of
 * body_len bytes (NULL/0 = {}). Returns 0, or -1 when op or rid is malformed or body is
 * not one map. */
int rpc_request_pack(msgpack_sbuffer *out, const char *op, const char *rid, const void *body,
                     size_t body_len);

/* Decodes a reply of len bytes (through evmsg) into *out, which the caller clears with
 * rpc_reply_clear. Returns 0, or -1 with err filled (out then cleared). */
int rpc_reply_decode(const void *buf, size_t len, rpc_reply_t *out, evmsg_err_t *err);

/* Frees out->result and zeroes *out. NULL-safe; idempotent. */
void rpc_reply_clear(rpc_reply_t *out);

/* A DEALER CURVE client connected to endpoint with the server's public key and its own
 * key pair (Z85). Returns NULL with the reason in err. */
rpc_client_t *rpc_client_new(void *ctx, const char *endpoint, const char *server_public_z85,
                             const char *public_z85, const char *secret_z85, char *err,
                             size_t errlen);

/* Closes the socket (linger 0) and frees the client; sets *self_p to NULL. Idempotent. */
void rpc_client_destroy(rpc_client_t **self_p);

/* The DEALER socket, for zmq_poll when many requests are in flight. */
void *rpc_client_socket(rpc_client_t *self);

/* Sends one packed request (rpc_request_pack) as a single frame, without waiting.
 * Returns 0, or -1 when it could not be queued (errno from libzmq, EAGAIN at the HWM). */
int rpc_client_send(rpc_client_t *self, const void *req, size_t len);

/* Waits up to timeout_ms (0: do not wait) for one reply and decodes it into *out.
 * Returns 1 with a reply, 0 on timeout, -1 when the reply would not decode (err) or
 * libzmq failed. Replies come in completion order, not sending order: match by rid. */
int rpc_client_recv(rpc_client_t *self, int timeout_ms, rpc_reply_t *out, evmsg_err_t *err);

/* One call: packs and sends {op, rid, body}, waits up to timeout_ms for the reply with
 * this rid (replies with other rids, left over from earlier calls, are dropped), and on
 * timeout sends the same request again, at most tries (>= 1) times in all; the rid
 * makes that safe. Returns 0 with the reply in *out (ok or an error reply), or -1 with
 * err filled: a malformed request, no reply after the last try ("timeout"), an
 * undecodable reply. An `unavailable` reply is returned as is (the caller decides when
 * to try again, with the same rid). */
int rpc_call(rpc_client_t *self, const char *op, const char *rid, const void *body, size_t body_len,
             int timeout_ms, int tries, rpc_reply_t *out, evmsg_err_t *err);

#endif
