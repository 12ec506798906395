/* rpc: the request/reply door (see rpc.h and schemas/messages/rpc.md). */
#include "rpc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>
#include <zmq.h>

#include "keys.h"
#include "log.h"
#include "util.h"
#include "zsock.h"

#define RPC_OPS_MAX     128 /* ops per server */
#define RPC_STMT_MAX    DB_STMT_NAME_MAX
#define RPC_SCHEMA_MAX  32
#define RPC_DEDUP_SLOTS 1024 /* > 2 * RPC_BATCH_MAX, a power of two */
#define RPC_ID_SLOTS    64   /* identities whose check is remembered, a power of two */
#define RPC_MARK_SLOTS  4096 /* > 3 * RPC_BATCH_MAX, a power of two: s_run_handlers' marks */
#define RPC_KEY_MAX     1024 /* bytes of an order key read; a longer one orders as absent */

/* ---- Types ------------------------------------------------------------------------- */

typedef struct {
    char name[RPC_OP_MAX + 1];
    int flags;
    char allow[RPC_ALLOW_MAX][KEYS_IDENTITY_MAX + 1]; /* identity patterns */
    size_t nallow;
    rpc_handler_fn *fn;
    void *arg;
    char order_key[RPC_OP_MAX + 1]; /* "" for none */
} s_op_t;

/* Where a request stands in a turn. */
typedef enum {
    RQ_PENDING = 0, /* valid, waiting for its handler */
    RQ_OK,          /* handler: success (result set) */
    RQ_FAIL,        /* an error outcome (code ... set) */
    RQ_REPLAY,      /* a stored reply: reply holds it */
    RQ_DUP          /* a repeat of an earlier request of this turn (dup_of) */
} s_state_t;

typedef struct {
    char *buf;
    size_t len, cap;
} s_buf_t;

struct rpc_req {
    rpc_server_t *srv;
    uint8_t routing[RPC_ROUTING_MAX]; /* the ROUTER's routing id of the peer */
    size_t routing_len;
    bool delim;                           /* the request had an empty delimiter frame */
    char identity[KEYS_IDENTITY_MAX + 1]; /* ZAP User-Id */
    char agency[EVMSG_AGENCY_LEN + 1];    /* dept identities; "" otherwise */
    evmsg_t *msg;                         /* the decoded request (NULL when it failed) */
    char op[RPC_OP_MAX + 1];
    char rid[RPC_RID_MAX + 1];
    bool has_rid;      /* rid read: replies carry it, else nil */
    const s_op_t *def; /* the op, once known and allowed */
    uint8_t hash[32];  /* SHA-256 of the payload (write ops) */
    uint64_t who;      /* hash of the identity: the requests it orders (s_run_handlers) */
    uint64_t key;      /* hash of (identity, order key), 0 when the request has none */
    s_state_t state;
    bool store; /* the reply goes into rpc_reply */
    int dup_of; /* RQ_DUP: index of the first request with this key */
    char code[RPC_CODE_MAX + 1];
    char field[RPC_FIELD_MAX];
    char zh[RPC_TEXT_MAX + 1];
    char en[RPC_TEXT_MAX + 1];
    s_buf_t result; /* RQ_OK: the packed result map (empty = {}) */
    s_buf_t reply;  /* the packed reply, sent (and stored) */
};

struct rpc_server {
    void *sock; /* ROUTER, CURVE server */
    db_t *db;   /* borrowed */
    char schema[RPC_SCHEMA_MAX + 1];
    char endpoint[256];
    char st_lookup[RPC_STMT_MAX]; /* prepared statement names */
    char st_store[RPC_STMT_MAX];
    s_op_t *ops; /* registered ops */
    size_t nops;
    rpc_req_t *reqs;    /* RPC_BATCH_MAX slots, reused every turn */
    rpc_req_t **ptrs;   /* scratch: handler argument */
    rpc_req_t **rest;   /* scratch: requests held for a later handler call */
    uint64_t *mark;     /* scratch: s_run_handlers' marks, RPC_MARK_SLOTS ... */
    uint32_t *mark_gen; /* ... valid when equal to gen */
    uint32_t gen;
    int *widx;      /* scratch: write requests of the turn */
    int *slots;     /* scratch: dedup table, RPC_DEDUP_SLOTS */
    s_buf_t arr[6]; /* scratch: binary arrays for the statements */
    EVP_MD *sha256; /* OpenSSL's SHA-256, fetched once (SHA-NI or AVX2 where the CPU has them) */
    /* The outcome of keys_identity_check for User-Ids seen lately (a pure function of
     * the string; what an identity may do is decided per request, not here). */
    struct {
        uint64_t hash; /* 0: empty */
        int kind;      /* KEYS_ID_* */
        char id[KEYS_IDENTITY_MAX + 1];
    } ids[RPC_ID_SLOTS];
    rpc_stats_t stats;
    int keep_days;      /* retention of stored replies */
    int64_t prune_due;  /* util_mono_ms of the next prune */
    int64_t prune_page; /* where the sweep goes on in rpc_reply */
    /* Optional metrics (NULL when not set). */
    ops_metric_t *m_requests, *m_replays, *m_dropped, *m_batch, *m_turn;
    ops_metric_t *m_err[16];
};

/* The generic error codes and their texts (rpc.md lists them). */
typedef struct {
    const char *code;
    const char *zh;
    const char *en;
} s_code_t;

static const s_code_t s_codes[] = {
    {"bad_request", "请求格式错误", "malformed request"},
    {"too_large", "超出长度或数量限制", "too large"},
    {"missing_field", "缺少必填字段", "missing"},
    {"bad_field", "字段无效", "invalid field"},
    {"unknown_field", "未知字段", "unknown key"},
    {"unknown_op", "未知的操作", "unknown op"},
    {"forbidden", "无权执行此操作", "this identity may not call this op"},
    {"rid_reused", "请求标识已用于另一不同的请求", "rid already used for a different request"},
    {"unavailable", "服务暂不可用，请用同一请求标识重试",
     "service unavailable, retry with the same rid"},
    {"internal", "内部错误", "internal error"},
    {NULL, NULL, NULL}};

/* ---- Helpers ----------------------------------------------------------------------- */

static double
s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const s_code_t *
s_code(const char *code)
{
    for (const s_code_t *c = s_codes; c->code; c++)
        if (strcmp(c->code, code) == 0)
            return c;
    return NULL;
}

static int
s_buf_put(s_buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->buf, cap);
        if (!grown)
            return -1;
        b->buf = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

/* msgpack_packer's write callback into an s_buf_t. */
static int
s_buf_write(void *data, const char *p, size_t n)
{
    return s_buf_put(data, p, n);
}

static int
s_buf_u32(s_buf_t *b, uint32_t v)
{
    uint32_t be = htonl(v);
    return s_buf_put(b, &be, 4);
}

/* A one-dimensional PostgreSQL array in binary form (array_recv): header, then each
 * element as a 4-byte length and its bytes. */
static int
s_array_begin(s_buf_t *a, uint32_t elem_oid, size_t n)
{
    a->len = 0;
    return s_buf_u32(a, 1) | s_buf_u32(a, 0) | s_buf_u32(a, elem_oid) | s_buf_u32(a, (uint32_t)n) |
           s_buf_u32(a, 1);
}

static int
s_array_elem(s_buf_t *a, const void *p, size_t n)
{
    return s_buf_u32(a, (uint32_t)n) | s_buf_put(a, p, n);
}

/* FNV-1a over n bytes of p, continuing from h (S_FNV_BASIS to start). */
#define S_FNV_BASIS 0xcbf29ce484222325ULL

static uint64_t
s_fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ULL;
    return h;
}

/* Schema names are spliced into SQL text, so they are held to [a-z][a-z0-9_]{0,31}. */
static bool
s_schema_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    size_t i = 1;
    for (; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return i <= RPC_SCHEMA_MAX;
}

/* [a-z][a-z0-9_.]{0,63} */
static bool
s_op_name_ok(const char *s, size_t len)
{
    if (len < 1 || len > RPC_OP_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '.'))
            return false;
    return true;
}

/* [a-z][a-z0-9_]{0,31} */
static bool
s_code_ok(const char *s)
{
    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    size_t i = 1;
    for (; s[i]; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return i <= RPC_CODE_MAX;
}

/* Copies src into dst (size bytes) as valid UTF-8 without control characters: invalid
 * sequences become '?', C0 controls and DEL a space; cut at a character boundary. */
static void
s_copy_text(char *dst, size_t size, const char *src)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    while (*p && o + 1 < size) {
        unsigned c = *p;
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool ok = n > 0;
        uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; ok && k < n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (p[k] & 0x3f);
        }
        if (ok && n > 1 &&
            ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
             cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = false;
        if (!ok) {
            dst[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= size)
            break;
        if (n == 1 && (c < 0x20 || c == 0x7f))
            dst[o++] = ' ';
        else
            memcpy(dst + o, p, n), o += n;
        p += n;
    }
    dst[o] = '\0';
}

/* Copies a field path keeping printable ASCII only. */
static void
s_copy_field(char *dst, size_t size, const char *src)
{
    size_t o = 0;
    for (const char *p = src ? src : ""; *p && o + 1 < size; p++)
        dst[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    dst[o] = '\0';
}

/* Matches an identity against a pattern: a trailing ':' admits any rest, '*' matches one
 * segment (a run of characters without ':', possibly empty). */
static bool
s_match(const char *p, const char *s)
{
    for (;;) {
        if (*p == '\0')
            return *s == '\0';
        if (*p == ':' && p[1] == '\0')
            return *s == ':';
        if (*p == '*') {
            for (size_t k = 0;; k++) {
                if (s_match(p + 1, s + k))
                    return true;
                if (s[k] == '\0' || s[k] == ':')
                    return false;
            }
        }
        if (*p != *s)
            return false;
        p++, s++;
    }
}

/* ---- Server: set-up ---------------------------------------------------------------- */

int
rpc_migrate(db_t *db, const char *schema, const char *dir)
{
    return db_migrate_set(db, schema, "rpc", dir);
}

/* Prepares a statement named "<what>:<schema>" from tmpl ("{s}" = the quoted schema). */
static int
s_prepare(rpc_server_t *self, char name[RPC_STMT_MAX], const char *what, const char *tmpl,
          int nparams)
{
    return db_prepare_in(self->db, self->schema, what, tmpl, nparams, name);
}

rpc_server_t *
rpc_server_new(void *ctx, const zap_t *zap, const char *domain, const char *secret_z85,
               const char *endpoint, db_t *db, const char *schema, char *err, size_t errlen)
{
    if (!ctx || !zap || !domain || !secret_z85 || !endpoint || !db) {
        snprintf(err, errlen, "rpc_server_new: missing argument");
        return NULL;
    }
    if (!s_schema_ok(schema)) {
        snprintf(err, errlen, "rpc_server_new: schema must match [a-z][a-z0-9_]{0,31}");
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "rpc_server_new: libsodium failed to initialise");
        return NULL;
    }
    rpc_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->db = db;
    self->keep_days = RPC_KEEP_DAYS_DEFAULT;
    snprintf(self->schema, sizeof self->schema, "%s", schema);
    self->ops = calloc(RPC_OPS_MAX, sizeof *self->ops);
    self->reqs = calloc(RPC_BATCH_MAX, sizeof *self->reqs);
    self->ptrs = calloc(RPC_BATCH_MAX, sizeof *self->ptrs);
    self->rest = calloc(RPC_BATCH_MAX, sizeof *self->rest);
    self->mark = calloc(RPC_MARK_SLOTS, sizeof *self->mark);
    self->mark_gen = calloc(RPC_MARK_SLOTS, sizeof *self->mark_gen);
    self->widx = calloc(RPC_BATCH_MAX, sizeof *self->widx);
    self->slots = calloc(RPC_DEDUP_SLOTS, sizeof *self->slots);
    self->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    if (!self->ops || !self->reqs || !self->ptrs || !self->rest || !self->mark || !self->mark_gen ||
        !self->widx || !self->slots || !self->sha256) {
        snprintf(err, errlen, "out of memory (or OpenSSL without SHA2-256)");
        goto fail;
    }
    for (size_t i = 0; i < RPC_BATCH_MAX; i++)
        self->reqs[i].srv = self;
    if (s_prepare(self, self->st_lookup, "rpc_lookup",
                  /* One primary-key probe per key, whatever the statistics say: as a
                   * plain join the cached generic plan, made while rpc_reply was small,
                   * went on hashing a sequential scan of the whole table every turn. */
                  "SELECT k.i, r.req_hash, r.reply"
                  " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(identity, rid, i)"
                  " CROSS JOIN LATERAL (SELECT x.req_hash, x.reply FROM {s}.rpc_reply x"
                  "  WHERE x.identity = k.identity AND x.rid = k.rid LIMIT 1) r",
                  2) < 0 ||
        s_prepare(self, self->st_store, "rpc_store",
                  "INSERT INTO {s}.rpc_reply (identity, rid, req_hash, op, ok, reply)"
                  " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[],"
                  " $5::bool[], $6::bytea[])",
                  6) < 0) {
        snprintf(err, errlen, "rpc_server_new: %s", db_error(db));
        goto fail;
    }
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.maxmsgsize = RPC_MAXMSGSIZE;
    self->sock = zsock_server(ctx, ZMQ_ROUTER, zap, domain, secret_z85, &lim, err, errlen);
    if (!self->sock)
        goto fail;
    if (zsock_bind(self->sock, endpoint, err, errlen) < 0 ||
        zsock_endpoint(self->sock, self->endpoint, sizeof self->endpoint) < 0)
        goto fail;
    return self;
fail:
    rpc_server_destroy(&self);
    return NULL;
}

void
rpc_server_destroy(rpc_server_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        rpc_server_t *self = *self_p;
        zsock_close(&self->sock);
        if (self->reqs)
            for (size_t i = 0; i < RPC_BATCH_MAX; i++) {
                evmsg_destroy(&self->reqs[i].msg);
                free(self->reqs[i].result.buf);
                free(self->reqs[i].reply.buf);
            }
        for (size_t i = 0; i < sizeof self->arr / sizeof self->arr[0]; i++)
            free(self->arr[i].buf);
        free(self->ops);
        free(self->reqs);
        free(self->ptrs);
        free(self->rest);
        free(self->mark);
        free(self->mark_gen);
        free(self->widx);
        free(self->slots);
        EVP_MD_free(self->sha256);
        free(self);
        *self_p = NULL;
    }
}

int
rpc_register(rpc_server_t *self, const rpc_op_t *op)
{
    assert(self && op);
    const char *name = op->name ? op->name : "";
    if (!s_op_name_ok(name, strlen(name))) {
        log_error("rpc: malformed op name", "op=%s", name);
        return -1;
    }
    for (size_t i = 0; i < self->nops; i++)
        if (strcmp(self->ops[i].name, name) == 0) {
            log_error("rpc: op registered twice", "op=%s", name);
            return -1;
        }
    if (self->nops == RPC_OPS_MAX || !op->fn || (op->flags != RPC_WRITE && op->flags != RPC_READ)) {
        log_error("rpc: bad op registration", "op=%s flags=%d", name, op->flags);
        return -1;
    }
    s_op_t *d = &self->ops[self->nops];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->flags = op->flags;
    d->fn = op->fn;
    d->arg = op->arg;
    const char *p = op->allow ? op->allow : "";
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        bool ok = d->nallow < RPC_ALLOW_MAX && n <= KEYS_IDENTITY_MAX &&
                  (strncmp(p, "svc:", 4) == 0 || strncmp(p, "dept:", 5) == 0);
        for (size_t k = 0; ok && k < n; k++)
            ok = p[k] > 0x20 && p[k] < 0x7f;
        if (!ok) {
            log_error("rpc: bad allow pattern", "op=%s allow=%s", name, op->allow);
            return -1;
        }
        memcpy(d->allow[d->nallow], p, n);
        d->allow[d->nallow++][n] = '\0';
        p += n;
    }
    if (d->nallow == 0) {
        log_error("rpc: op allows nobody", "op=%s", name);
        return -1;
    }
    self->nops++;
    return 0;
}

int
rpc_order_key(rpc_server_t *self, const char *op, const char *key)
{
    assert(self && op && key);
    size_t kn = strlen(key);
    for (size_t i = 0; i < self->nops; i++)
        if (strcmp(self->ops[i].name, op) == 0 && kn > 0 && kn <= RPC_OP_MAX) {
            memcpy(self->ops[i].order_key, key, kn + 1);
            return 0;
        }
    log_error("rpc: bad order key", "op=%s key=%s", op, key);
    return -1;
}

int
rpc_set_metrics(rpc_server_t *self, ops_t *ops, const char *svc)
{
    assert(self && ops);
    if (!s_schema_ok(svc))
        return -1;
    char name[128];
#define S_METRIC(field, kind, what, help)                                                          \
    snprintf(name, sizeof name, "sx_%s_rpc_%s", svc, what);                                        \
    self->field = kind(ops, name, NULL, help)
    S_METRIC(m_requests, ops_counter, "requests_total", "Requests received, well framed.");
    S_METRIC(m_replays, ops_counter, "replays_total", "Stored replies sent again.");
    S_METRIC(m_dropped, ops_counter, "dropped_total", "Messages that could not be framed.");
#undef S_METRIC
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    static const double secs[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1};
    snprintf(name, sizeof name, "sx_%s_rpc_batch_size", svc);
    self->m_batch = ops_histogram(ops, name, NULL, "Requests per handler call.", sizes,
                                  sizeof sizes / sizeof sizes[0]);
    snprintf(name, sizeof name, "sx_%s_rpc_turn_seconds", svc);
    self->m_turn = ops_histogram(ops, name, NULL, "Time to answer one turn's requests.", secs,
                                 sizeof secs / sizeof secs[0]);
    snprintf(name, sizeof name, "sx_%s_rpc_errors_total", svc);
    size_t i = 0;
    for (; s_codes[i].code; i++) {
        char labels[64] = "";
        ops_label(labels, sizeof labels, "code", s_codes[i].code);
        self->m_err[i] = ops_counter(ops, name, labels, "Error replies sent, by code.");
    }
    self->m_err[i] = ops_counter(ops, name, "code=\"other\"", "Error replies sent, by code.");
    return 0;
}

void *
rpc_server_socket(rpc_server_t *self)
{
    assert(self);
    return self->sock;
}

const char *
rpc_server_endpoint(const rpc_server_t *self)
{
    assert(self);
    return self->endpoint;
}

rpc_stats_t
rpc_server_stats(const rpc_server_t *self)
{
    assert(self);
    return self->stats;
}

/* ---- Outcomes ---------------------------------------------------------------------- */

static void
s_reset(rpc_req_t *req)
{
    req->state = RQ_PENDING;
    req->store = false;
    req->code[0] = req->field[0] = req->zh[0] = req->en[0] = '\0';
    req->result.len = 0;
    req->reply.len = 0;
}

/* Sets an error outcome with the generic texts of code, en detailed when en is given. */
static void
s_fail_generic(rpc_req_t *req, const char *code, const char *field, const char *en)
{
    const s_code_t *c = s_code(code);
    assert(c);
    req->state = RQ_FAIL;
    req->store = false;
    snprintf(req->code, sizeof req->code, "%s", code);
    s_copy_field(req->field, sizeof req->field, field);
    s_copy_text(req->zh, sizeof req->zh, c->zh);
    s_copy_text(req->en, sizeof req->en, en ? en : c->en);
}

void
rpc_fail(rpc_req_t *req, const char *code, const char *field, const char *zh, const char *en)
{
    assert(req);
    if (!s_code_ok(code)) {
        log_error("rpc: handler gave a malformed error code", "op=%s", req->op);
        s_fail_generic(req, "internal", "", NULL);
        req->store = req->def && req->def->flags == RPC_WRITE;
        return;
    }
    req->state = RQ_FAIL;
    req->store = req->def && req->def->flags == RPC_WRITE;
    snprintf(req->code, sizeof req->code, "%s", code);
    s_copy_field(req->field, sizeof req->field, field);
    s_copy_text(req->zh, sizeof req->zh, zh);
    s_copy_text(req->en, sizeof req->en, en);
}

/* Copies the first number in s (digits) into num, or "" when none. */
static void
s_first_number(const char *s, char *num, size_t size)
{
    size_t o = 0;
    const char *p = s + strcspn(s, "0123456789");
    if (p > s && p[-1] == '-' && o + 1 < size)
        num[o++] = '-';
    while (*p >= '0' && *p <= '9' && o + 1 < size)
        num[o++] = *p++;
    num[o] = '\0';
}

const char *
rpc_zh_reason(const char *reason, char *zh, size_t zhlen)
{
    static const struct {
        const char *prefix, *code, *zh;
    } map[] = {
        {"missing", "missing_field", "缺少必填字段"},
        {"unknown key", "unknown_field", "未知字段"},
        {"duplicate key", "bad_request", "重复的键"},
        {"longer than", "too_large", "长度超过 %s 字节"},
        {"more than", "too_large", "元素个数超过 %s"},
        {"message larger than", "too_large", "消息超过 %s 字节"},
        {"nesting deeper than", "bad_request", "嵌套层数超过 %s"},
        {"empty", "bad_field", "不能为空"},
        {"expected string", "bad_field", "类型错误：应为字符串"},
        {"expected integer", "bad_field", "类型错误：应为整数"},
        {"expected unsigned integer", "bad_field", "类型错误：应为非负整数"},
        {"expected boolean", "bad_field", "类型错误：应为布尔值"},
        {"expected map", "bad_field", "类型错误：应为映射"},
        {"expected array", "bad_field", "类型错误：应为数组"},
        {"expected one of", "bad_field", "取值不在允许范围内"},
        {"expected decimal", "bad_field", "数值格式错误"},
        {"expected YYYY-MM-DD", "bad_field", "日期格式应为 YYYY-MM-DD"},
        {"no such date", "bad_field", "日期不存在"},
        {"must be", "bad_field", "超出取值范围"},
        {"negative zero", "bad_field", "数值格式错误"},
        {"not valid UTF-8", "bad_field", "不是有效的 UTF-8 编码"},
        {"control character", "bad_field", "含有控制字符"},
        {"expected printable ASCII", "bad_field", "只能包含可打印 ASCII 字符"},
        {"expected an op name", "bad_field", "操作名格式错误"},
        {"truncated", "bad_request", "消息不完整"},
        {"not msgpack", "bad_request", "不是有效的 msgpack"},
        {"trailing bytes", "bad_request", "消息末尾有多余字节"},
        {"empty message", "bad_request", "空消息"},
        {"map key is not a string", "bad_request", "映射的键必须是字符串"},
    };
    reason = reason ? reason : "";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i].prefix);
        if (strncmp(reason, map[i].prefix, n) != 0)
            continue;
        /* "empty" must not catch "empty message" and the like, "more than" nothing else */
        if (strcmp(map[i].prefix, "empty") == 0 && reason[n] != '\0')
            continue;
        if (strchr(map[i].zh, '%')) {
            char num[32];
            s_first_number(reason, num, sizeof num);
            /* the one %s in the template is the limit */
            const char *at = strstr(map[i].zh, "%s");
            snprintf(zh, zhlen, "%.*s%s%s", (int)(at - map[i].zh), map[i].zh, num, at + 2);
        } else {
            snprintf(zh, zhlen, "%s", map[i].zh);
        }
        return map[i].code;
    }
    snprintf(zh, zhlen, "字段无效");
    return "bad_field";
}

void
rpc_fail_evmsg(rpc_req_t *req, const evmsg_err_t *err)
{
    assert(req && err);
    char zh[RPC_TEXT_MAX + 1];
    const char *code = rpc_zh_reason(err->reason, zh, sizeof zh);
    rpc_fail(req, code, err->path, zh, err->reason[0] ? err->reason : "invalid");
}

bool
rpc_failed(const rpc_req_t *req)
{
    assert(req);
    return req->state == RQ_FAIL;
}

int
rpc_ok(rpc_req_t *req, const void *map, size_t len)
{
    assert(req);
    const unsigned char *p = map;
    bool is_map = p && len > 0 && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf);
    req->result.len = 0;
    if (!is_map || len > RPC_RESULT_MAX || s_buf_put(&req->result, map, len) < 0) {
        log_error("rpc: handler result refused", "op=%s len=%zu", req->op, len);
        s_fail_generic(req, "internal", "", NULL);
        return -1;
    }
    req->state = RQ_OK;
    req->store = req->def && req->def->flags == RPC_WRITE;
    return 0;
}

const char *
rpc_req_op(const rpc_req_t *req)
{
    return req->op;
}

const char *
rpc_req_rid(const rpc_req_t *req)
{
    return req->rid;
}

const char *
rpc_req_identity(const rpc_req_t *req)
{
    return req->identity;
}

const char *
rpc_req_agency(const rpc_req_t *req)
{
    return req->agency[0] ? req->agency : NULL;
}

evmsg_map_t
rpc_req_body(const rpc_req_t *req, evmsg_err_t *err)
{
    assert(req && req->msg);
    evmsg_map_t root = evmsg_data(req->msg, err), body;
    evmsg_map_map(&root, "body", EVMSG_REQUIRED, &body);
    return body;
}

/* ---- Server: a turn ---------------------------------------------------------------- */

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str_with_body(pk, s, n);
}

/* Packs req's reply from its outcome into req->reply. */
static int
s_pack_reply(rpc_req_t *req)
{
    req->reply.len = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &req->reply, s_buf_write);
    int rc = msgpack_pack_map(&pk, 3);
    rc |= msgpack_pack_str_with_body(&pk, "rid", 3);
    rc |= req->has_rid ? msgpack_pack_str_with_body(&pk, req->rid, strlen(req->rid))
                       : msgpack_pack_nil(&pk);
    rc |= msgpack_pack_str_with_body(&pk, "ok", 2);
    if (req->state == RQ_OK) {
        rc |= msgpack_pack_true(&pk);
        rc |= msgpack_pack_str_with_body(&pk, "result", 6);
        if (req->result.len)
            rc |= s_buf_put(&req->reply, req->result.buf, req->result.len);
        else
            rc |= msgpack_pack_map(&pk, 0);
    } else {
        assert(req->state == RQ_FAIL);
        rc |= msgpack_pack_false(&pk);
        rc |= msgpack_pack_str_with_body(&pk, "error", 5);
        rc |= msgpack_pack_map(&pk, 4);
        rc |= msgpack_pack_str_with_body(&pk, "code", 4);
        s_pack_str(&pk, req->code);
        rc |= msgpack_pack_str_with_body(&pk, "field", 5);
        s_pack_str(&pk, req->field);
        rc |= msgpack_pack_str_with_body(&pk, "zh", 2);
        s_pack_str(&pk, req->zh);
        rc |= msgpack_pack_str_with_body(&pk, "en", 2);
        s_pack_str(&pk, req->en);
    }
    return rc ? -1 : 0;
}

/* keys_identity_check(uid) (uid at most KEYS_IDENTITY_MAX bytes), remembered per string:
 * the agency code's check digit cost as much as the rest of reading a request. */
static int
s_identity_kind(rpc_server_t *self, const char *uid)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = uid; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    h |= 1; /* never 0, the empty slot */
    size_t slot = (size_t)(h >> 32) & (RPC_ID_SLOTS - 1);
    if (self->ids[slot].hash == h && strcmp(self->ids[slot].id, uid) == 0)
        return self->ids[slot].kind;
    int kind = keys_identity_check(uid, NULL, 0);
    self->ids[slot].hash = h;
    self->ids[slot].kind = kind;
    snprintf(self->ids[slot].id, sizeof self->ids[slot].id, "%s", uid);
    return kind;
}

/* Receives one multipart message into req. Returns 1 (a framed request, possibly one
 * that failed to decode: then req->state is RQ_FAIL), 0 when none waits, 2 when the
 * message was dropped. */
static int
s_recv(rpc_server_t *self, rpc_req_t *req)
{
    zmq_msg_t part[3];
    size_t nparts = 0, total = 0;
    bool more = true;
    int rc = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (total == 0) {
                rc = 0;
                goto done;
            }
            rc = 2; /* cannot happen: the rest of a multipart message is always there */
            goto done;
        }
        more = zmq_msg_more(&m);
        if (nparts < 3)
            part[nparts++] = m;
        else
            zmq_msg_close(&m);
        total++;
    }
    /* [routing][payload] (DEALER) or [routing][][payload] (REQ, or a DEALER that adds
     * the delimiter); anything else is not ours to guess at. */
    bool delim = total == 3 && zmq_msg_size(&part[1]) == 0;
    if ((total != 2 && !delim) || zmq_msg_size(&part[0]) > RPC_ROUTING_MAX) {
        rc = 2;
        goto done;
    }
    zmq_msg_t *payload = &part[total - 1];
    const char *uid = zmq_msg_gets(payload, "User-Id");
    int kind = uid && strlen(uid) <= KEYS_IDENTITY_MAX ? s_identity_kind(self, uid) : KEYS_ID_NONE;
    if (kind == KEYS_ID_NONE) {
        rc = 2; /* fail closed: only ZAP-admitted identities get an answer */
        goto done;
    }
    s_reset(req);
    req->has_rid = false;
    req->def = NULL;
    req->op[0] = req->rid[0] = '\0';
    req->routing_len = zmq_msg_size(&part[0]);
    memcpy(req->routing, zmq_msg_data(&part[0]), req->routing_len);
    req->delim = delim;
    snprintf(req->identity, sizeof req->identity, "%s", uid);
    /* dept:<code>:<role>, checked: the code is the 18 bytes after "dept:" (keys_dept_code) */
    req->agency[0] = '\0';
    if (kind == KEYS_ID_DEPT) {
        memcpy(req->agency, req->identity + 5, EVMSG_AGENCY_LEN);
        req->agency[EVMSG_AGENCY_LEN] = '\0';
    }

    evmsg_err_t err = {{0}, {0}};
    if (evmsg_decode_map(zmq_msg_data(payload), zmq_msg_size(payload), &req->msg, &err) < 0) {
        char zh[RPC_TEXT_MAX + 1];
        const char *c = rpc_zh_reason(err.reason, zh, sizeof zh);
        rpc_fail(req, strcmp(c, "too_large") == 0 ? "too_large" : "bad_request", err.path, zh,
                 err.reason);
        req->store = false;
    }
done:
    for (size_t i = 0; i < nparts; i++)
        zmq_msg_close(&part[i]);
    if (rc == 2) {
        self->stats.dropped++;
        ops_inc(self->m_dropped);
    }
    return rc;
}

/* Reads op, rid and body of a decoded request and finds its op; sets an error outcome
 * (not stored) when any is wrong. */
static void
s_check(rpc_server_t *self, rpc_req_t *req)
{
    evmsg_err_t err = {{0}, {0}}, erid = {{0}, {0}};
    evmsg_map_t root = evmsg_data(req->msg, &err);
    evmsg_map_t rroot = evmsg_data(req->msg, &erid);
    if (evmsg_map_str(&rroot, "rid", EVMSG_REQUIRED | EVMSG_NONEMPTY, RPC_RID_MAX, req->rid) == 1) {
        for (const char *p = req->rid; *p; p++)
            if (*p < 0x21 || *p > 0x7e) {
                snprintf(erid.path, sizeof erid.path, "rid");
                snprintf(erid.reason, sizeof erid.reason,
                         "expected printable ASCII without spaces (0x21..0x7e)");
                break;
            }
    }
    req->has_rid = erid.reason[0] == '\0';
    if (!req->has_rid)
        req->rid[0] = '\0';
    static const char *const keys[] = {"op", "rid", "body", NULL};
    evmsg_map_only(&root, keys);
    if (evmsg_map_str(&root, "op", EVMSG_REQUIRED | EVMSG_NONEMPTY, RPC_OP_MAX, req->op) == 1 &&
        !s_op_name_ok(req->op, strlen(req->op))) {
        snprintf(err.path, sizeof err.path, "op");
        snprintf(err.reason, sizeof err.reason, "expected an op name [a-z][a-z0-9_.]{0,63}");
    }
    if (!err.reason[0] && erid.reason[0])
        err = erid;
    evmsg_map_t body;
    evmsg_map_map(&root, "body", EVMSG_REQUIRED, &body);
    if (err.reason[0]) {
        if (strcmp(err.path, "op") == 0)
            req->op[0] = '\0';
        rpc_fail_evmsg(req, &err);
        req->store = false;
        return;
    }
    const s_op_t *def = NULL;
    for (size_t i = 0; i < self->nops && !def; i++)
        if (strcmp(self->ops[i].name, req->op) == 0)
            def = &self->ops[i];
    char en[RPC_TEXT_MAX];
    if (!def) {
        snprintf(en, sizeof en, "unknown op %s", req->op);
        s_fail_generic(req, "unknown_op", "op", en);
        return;
    }
    bool allowed = false;
    for (size_t i = 0; i < def->nallow && !allowed; i++)
        allowed = s_match(def->allow[i], req->identity);
    if (!allowed) {
        snprintf(en, sizeof en, "%s may not call %s", req->identity, req->op);
        s_fail_generic(req, "forbidden", "op", en);
        log_warn("rpc: forbidden", "identity=%s op=%s", req->identity, req->op);
        return;
    }
    req->def = def;
    req->who = s_fnv(S_FNV_BASIS, req->identity, strlen(req->identity));
    req->key = 0;
    if (def->order_key[0]) {
        evmsg_err_t kerr = {{0}, {0}};
        evmsg_map_t kroot = evmsg_data(req->msg, &kerr), kbody;
        const char *k;
        size_t kn;
        if (evmsg_map_map(&kroot, "body", EVMSG_REQUIRED, &kbody) == 1 &&
            evmsg_map_strp(&kbody, def->order_key, EVMSG_OPTIONAL | EVMSG_NONEMPTY, RPC_KEY_MAX, &k,
                           &kn) == 1)
            req->key = s_fnv(s_fnv(req->who, "\xff", 1), k, kn) | 1;
    }
    if (def->flags == RPC_WRITE) {
        size_t len;
        const void *bytes = evmsg_data_bytes(req->msg, &len);
        if (!EVP_Digest(bytes, len, req->hash, NULL, self->sha256, NULL)) {
            s_fail_generic(req, "internal", "", NULL);
            return;
        }
    }
}

/* Marks for s_run_handlers: a set of 64-bit hashes, emptied by a new generation. A
 * collision only holds a request back that could have gone: order is never lost. */
static void
s_mark_clear(rpc_server_t *self)
{
    if (++self->gen == 0) {
        memset(self->mark_gen, 0, RPC_MARK_SLOTS * sizeof *self->mark_gen);
        self->gen = 1;
    }
}

static void
s_mark(rpc_server_t *self, uint64_t h)
{
    size_t s = (size_t)(h ^ h >> 29) & (RPC_MARK_SLOTS - 1);
    while (self->mark_gen[s] == self->gen) {
        if (self->mark[s] == h)
            return;
        s = (s + 1) & (RPC_MARK_SLOTS - 1);
    }
    self->mark_gen[s] = self->gen;
    self->mark[s] = h;
}

static bool
s_marked(const rpc_server_t *self, uint64_t h)
{
    size_t s = (size_t)(h ^ h >> 29) & (RPC_MARK_SLOTS - 1);
    while (self->mark_gen[s] == self->gen) {
        if (self->mark[s] == h)
            return true;
        s = (s + 1) & (RPC_MARK_SLOTS - 1);
    }
    return false;
}

/* What a held-back request marks, and what holds a request back (rpc.h, "Order"). */
#define S_MARK_ANY(r) ((r)->who ^ 0x5bd1e9955bd1e995ULL) /* any request of this identity */
#define S_MARK_BAR(r) ((r)->who ^ 0xc2b2ae3d27d4eb4fULL) /* a keyless one */

static bool
s_held(const rpc_server_t *self, const rpc_req_t *r)
{
    if (r->key)
        return s_marked(self, S_MARK_BAR(r)) || s_marked(self, r->key);
    return s_marked(self, S_MARK_ANY(r));
}

static void
s_hold(rpc_server_t *self, const rpc_req_t *r)
{
    s_mark(self, S_MARK_ANY(r));
    s_mark(self, r->key ? r->key : S_MARK_BAR(r));
}

/* Calls the handlers on the pending requests among idx[0..n) (in arrival order). Each
 * call takes the op of the first request not yet handled and every later request of that
 * op that nothing orders after a request still waiting (rpc.h, "Order"); the rest wait
 * for the next call. In a transaction (in_tx) the first failing handler stops the lot
 * and -1 is returned; outside one, a failing call is answered `unavailable` and the
 * next calls go on (returns 0). */
static int
s_run_handlers(rpc_server_t *self, const int *idx, size_t n, bool in_tx)
{
    rpc_req_t **left = self->ptrs, **rest = self->rest;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++)
        if (self->reqs[idx[i]].state == RQ_PENDING)
            left[nl++] = &self->reqs[idx[i]];
    while (nl > 0) {
        const s_op_t *def = left[0]->def;
        size_t ng = 0, nr = 0;
        s_mark_clear(self);
        for (size_t i = 0; i < nl; i++) {
            rpc_req_t *r = left[i];
            if (r->def == def && !s_held(self, r)) {
                left[ng++] = r; /* ng <= i: left[i] was read */
            } else {
                rest[nr++] = r;
                s_hold(self, r);
            }
        }
        self->stats.batches++;
        if (ng > self->stats.max_batch)
            self->stats.max_batch = ng;
        ops_observe(self->m_batch, (double)ng);
        if (def->fn(self->db, left, ng, def->arg) < 0) {
            if (in_tx)
                return -1;
            log_warn("rpc: read failed", "schema=%s op=%s requests=%zu reason=%s", self->schema,
                     def->name, ng, db_error(self->db));
            for (size_t i = 0; i < ng; i++)
                s_fail_generic(left[i], "unavailable", "", NULL);
        }
        for (size_t i = 0; i < ng; i++)
            if (left[i]->state == RQ_PENDING) { /* no outcome: ok {} */
                left[i]->state = RQ_OK;
                left[i]->store = def->flags == RPC_WRITE;
            }
        rpc_req_t **t = left;
        left = rest;
        rest = t;
        nl = nr;
    }
    return 0;
}

/* One write transaction over the (non-duplicate) write requests idx[0..n). Returns 0
 * when committed (every request has its reply packed), -1 when it did not commit
 * (rolled back), DB_UNKNOWN when the commit's fate is unknown. */
static int
s_write_tx(rpc_server_t *self, const int *idx, size_t n)
{
    enum { OID_BOOL = 16, OID_BYTEA = 17, OID_TEXT = 25 };
    for (size_t i = 0; i < n; i++)
        s_reset(&self->reqs[idx[i]]);
    self->stats.transactions++;
    /* (1) BEGIN and the stored replies for all keys at once, in one round trip. */
    s_buf_t *a = self->arr;
    int bad = s_array_begin(&a[0], OID_TEXT, n) | s_array_begin(&a[1], OID_TEXT, n);
    for (size_t i = 0; i < n; i++) {
        const rpc_req_t *r = &self->reqs[idx[i]];
        bad |= s_array_elem(&a[0], r->identity, strlen(r->identity)) |
               s_array_elem(&a[1], r->rid, strlen(r->rid));
    }
    if (bad)
        goto fail;
    const char *lv[2] = {a[0].buf, a[1].buf};
    const int ll[2] = {(int)a[0].len, (int)a[1].len}, lf[2] = {1, 1};
    PGresult *res = db_begin_exec_prepared(self->db, self->st_lookup, 2, lv, ll, lf, 1);
    if (!res)
        goto fail;
    for (int row = 0; row < PQntuples(res); row++) {
        if (PQgetlength(res, row, 0) != 8 || PQgetlength(res, row, 1) != 32) {
            PQclear(res);
            goto fail;
        }
        uint32_t hi, lo;
        memcpy(&hi, PQgetvalue(res, row, 0), 4);
        memcpy(&lo, PQgetvalue(res, row, 0) + 4, 4);
        uint64_t k = ((uint64_t)ntohl(hi) << 32 | ntohl(lo)) - 1;
        if (k >= n)
            continue;
        rpc_req_t *r = &self->reqs[idx[k]];
        if (memcmp(PQgetvalue(res, row, 1), r->hash, 32) == 0) {
            r->state = RQ_REPLAY;
            r->reply.len = 0;
            if (s_buf_put(&r->reply, PQgetvalue(res, row, 2), (size_t)PQgetlength(res, row, 2)) <
                0) {
                PQclear(res);
                goto fail;
            }
        } else {
            s_fail_generic(r, "rid_reused", "rid", NULL);
        }
    }
    PQclear(res);
    /* (2) The handlers. */
    if (s_run_handlers(self, idx, n, true) < 0)
        goto fail;
    /* (3) Every new reply, in one statement, and (4) COMMIT, in one round trip. */
    int rc;
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *r = &self->reqs[idx[i]];
        if (r->state == RQ_OK || r->state == RQ_FAIL) {
            if (s_pack_reply(r) < 0)
                goto fail;
            ns += r->store;
        }
    }
    if (ns > 0) {
        bad = 0;
        bad |= s_array_begin(&a[0], OID_TEXT, ns) | s_array_begin(&a[1], OID_TEXT, ns) |
               s_array_begin(&a[2], OID_BYTEA, ns) | s_array_begin(&a[3], OID_TEXT, ns) |
               s_array_begin(&a[4], OID_BOOL, ns) | s_array_begin(&a[5], OID_BYTEA, ns);
        for (size_t i = 0; i < n; i++) {
            const rpc_req_t *r = &self->reqs[idx[i]];
            if (!((r->state == RQ_OK || r->state == RQ_FAIL) && r->store))
                continue;
            char okb = r->state == RQ_OK;
            bad |= s_array_elem(&a[0], r->identity, strlen(r->identity)) |
                   s_array_elem(&a[1], r->rid, strlen(r->rid)) | s_array_elem(&a[2], r->hash, 32) |
                   s_array_elem(&a[3], r->op, strlen(r->op)) | s_array_elem(&a[4], &okb, 1) |
                   s_array_elem(&a[5], r->reply.buf, r->reply.len);
        }
        if (bad)
            goto fail;
        const char *sv[6];
        int sl[6], sf[6];
        for (int k = 0; k < 6; k++)
            sv[k] = a[k].buf, sl[k] = (int)a[k].len, sf[k] = 1;
        rc = db_exec_prepared_commit(self->db, self->st_store, 6, sv, sl, sf);
    } else {
        rc = db_commit(self->db);
    }
    if (rc == 0)
        self->stats.commits++;
    else if (rc != DB_UNKNOWN)
        db_rollback(self->db);
    return rc;
fail:
    db_rollback(self->db);
    return -1;
}

/* Answers every request of idx[0..n) with a generic error (not stored). */
static void
s_fail_all(rpc_server_t *self, const int *idx, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        s_fail_generic(&self->reqs[idx[i]], code, "", NULL);
}

/* Runs the write requests idx[0..n), splitting the batch when one of them breaks the
 * transaction while the connection stays good. Every request leaves with an outcome. */
static void
s_write_group(rpc_server_t *self, const int *idx, size_t n)
{
    if (n == 0)
        return;
    int rc = s_write_tx(self, idx, n);
    if (rc == 0)
        return;
    char state[6];
    snprintf(state, sizeof state, "%s", db_sqlstate(self->db));
    /* Connection trouble, a timeout or lack of resources would fail every half again. */
    bool infra = rc == DB_UNKNOWN || !db_connected(self->db) || strncmp(state, "08", 2) == 0 ||
                 strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0;
    /* Alone, once more: a request that lost a race for its rid with another instance
     * of the service (23505 on rpc_reply) finds the stored reply now. */
    if (!infra && n == 1) {
        rc = s_write_tx(self, idx, n);
        if (rc == 0)
            return;
        infra = rc == DB_UNKNOWN || !db_connected(self->db);
    }
    if (infra || n == 1) {
        log_warn(infra ? "rpc: write batch not committed" : "rpc: request failed alone",
                 "schema=%s requests=%zu op=%s sqlstate=%s reason=%s", self->schema, n,
                 self->reqs[idx[0]].op, state, db_error(self->db));
        s_fail_all(self, idx, n, infra ? "unavailable" : "internal");
        return;
    }
    self->stats.splits++;
    s_write_group(self, idx, n / 2);
    s_write_group(self, idx + n / 2, n - n / 2);
}

static uint64_t
s_key_hash(const rpc_req_t *r)
{
    uint64_t h = s_fnv(S_FNV_BASIS, r->identity, strlen(r->identity));
    return s_fnv(s_fnv(h, "\xff", 1), r->rid, strlen(r->rid));
}

/* Marks later requests of the turn that repeat an earlier (identity, rid) as RQ_DUP and
 * leaves the first ones in idx; returns their number. */
static size_t
s_dedup(rpc_server_t *self, int *idx, size_t n)
{
    for (size_t i = 0; i < RPC_DEDUP_SLOTS; i++)
        self->slots[i] = -1;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *r = &self->reqs[idx[i]];
        size_t s = (size_t)s_key_hash(r) & (RPC_DEDUP_SLOTS - 1);
        bool dup = false;
        while (self->slots[s] >= 0) {
            const rpc_req_t *f = &self->reqs[self->slots[s]];
            if (strcmp(f->identity, r->identity) == 0 && strcmp(f->rid, r->rid) == 0) {
                r->state = RQ_DUP;
                r->dup_of = self->slots[s];
                dup = true;
                break;
            }
            s = (s + 1) & (RPC_DEDUP_SLOTS - 1);
        }
        if (!dup) {
            self->slots[s] = idx[i];
            idx[out++] = idx[i];
        }
    }
    return out;
}

static void
s_send(rpc_server_t *self, rpc_req_t *req)
{
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    if (zmq_send(self->sock, req->routing, req->routing_len, more) < 0)
        return; /* the peer is gone or full: it will resend the rid */
    if (req->delim)
        zmq_send(self->sock, "", 0, more);
    zmq_send(self->sock, req->reply.buf, req->reply.len, ZMQ_DONTWAIT);
}

/* Counts and sends req's reply. */
static void
s_answer(rpc_server_t *self, rpc_req_t *req)
{
    if (req->state == RQ_REPLAY) {
        self->stats.replays++;
        ops_inc(self->m_replays);
    } else if (req->state == RQ_FAIL) {
        self->stats.errors++;
        size_t i = 0;
        while (s_codes[i].code && strcmp(s_codes[i].code, req->code) != 0)
            i++;
        ops_inc(self->m_err[i]);
    }
    s_send(self, req);
}

int
rpc_server_turn(rpc_server_t *self)
{
    assert(self);
    double t0 = s_now_s();
    size_t n = 0;
    int drained = 0;
    while (n < RPC_BATCH_MAX && drained < 4 * RPC_BATCH_MAX) {
        int rc = s_recv(self, &self->reqs[n]);
        drained++;
        if (rc == 0)
            break;
        if (rc == 1)
            n++;
    }
    if (n == 0)
        return 0;
    self->stats.requests += n;
    ops_add(self->m_requests, n);
    /* Refusals first; collect the write requests. */
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *r = &self->reqs[i];
        if (r->state == RQ_PENDING)
            s_check(self, r);
        if (r->state == RQ_PENDING && r->def->flags == RPC_WRITE)
            self->widx[nw++] = (int)i;
    }
    /* Writes: one transaction (or a few, when split). */
    size_t nu = s_dedup(self, self->widx, nw);
    s_write_group(self, self->widx, nu);
    /* Reads, after the writes committed, outside any transaction. */
    size_t nr = 0;
    for (size_t i = 0; i < n; i++)
        if (self->reqs[i].state == RQ_PENDING && self->reqs[i].def->flags == RPC_READ)
            self->widx[nr++] = (int)i;
    s_run_handlers(self, self->widx, nr, false);
    /* Replies: packed from each outcome (a replay has its stored bytes already); a
     * repeat within the turn gets its first's reply when the payloads agree. */
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *r = &self->reqs[i];
        if ((r->state == RQ_OK || r->state == RQ_FAIL) && s_pack_reply(r) < 0) {
            s_fail_generic(r, "internal", "", NULL);
            s_pack_reply(r);
        }
    }
    for (size_t i = 0; i < n; i++) {
        rpc_req_t *r = &self->reqs[i];
        if (r->state != RQ_DUP)
            continue;
        const rpc_req_t *f = &self->reqs[r->dup_of];
        if (memcmp(f->hash, r->hash, 32) != 0) {
            s_fail_generic(r, "rid_reused", "rid", NULL);
            s_pack_reply(r);
            continue;
        }
        r->reply.len = 0;
        s_buf_put(&r->reply, f->reply.buf, f->reply.len);
        r->state = (f->state == RQ_REPLAY || f->store) ? RQ_REPLAY : f->state;
        memcpy(r->code, f->code, sizeof r->code);
    }
    for (size_t i = 0; i < n; i++)
        s_answer(self, &self->reqs[i]);
    for (size_t i = 0; i < n; i++)
        evmsg_destroy(&self->reqs[i].msg);
    ops_observe(self->m_turn, s_now_s() - t0);
    if (util_mono_ms() >= self->prune_due) {
        self->prune_due = util_mono_ms() + RPC_PRUNE_EVERY_MS;
        rpc_server_prune(self);
    }
    return (int)n;
}

int
rpc_set_retention(rpc_server_t *self, int keep_days)
{
    assert(self);
    if (keep_days < RPC_KEEP_DAYS_MIN || keep_days > RPC_KEEP_DAYS_MAX) {
        log_error("rpc retention refused", "keep_days=%d min=%d max=%d", keep_days,
                  RPC_KEEP_DAYS_MIN, RPC_KEEP_DAYS_MAX);
        return -1;
    }
    self->keep_days = keep_days;
    return 0;
}

long
rpc_server_prune(rpc_server_t *self)
{
    assert(self);
    char sql[640], days[16], from[32], to[32];
    snprintf(sql, sizeof sql,
             "WITH d AS (DELETE FROM \"%s\".rpc_reply WHERE ctid >= $2::tid AND ctid < $3::tid"
             " AND created_at < now() - make_interval(days => $1::int) RETURNING 1)"
             " SELECT (SELECT count(*) FROM d),"
             " pg_relation_size('\"%s\".rpc_reply') / current_setting('block_size')::int8",
             self->schema, self->schema);
    snprintf(days, sizeof days, "%d", self->keep_days);
    snprintf(from, sizeof from, "(%" PRId64 ",0)", self->prune_page);
    snprintf(to, sizeof to, "(%" PRId64 ",0)", self->prune_page + RPC_PRUNE_PAGES);
    PGresult *r = db_query(self->db, sql, 3, (const char *const[]){days, from, to});
    if (!r) {
        log_warn("stored replies not pruned", "schema=%s error=%s", self->schema,
                 db_error(self->db));
        return -1;
    }
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    int64_t pages = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    self->prune_page += RPC_PRUNE_PAGES;
    if (self->prune_page >= pages)
        self->prune_page = 0;
    self->stats.pruned += (uint64_t)n;
    return n;
}

int
rpc_server_poll(rpc_server_t *self, int timeout_ms)
{
    assert(self);
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) < 0)
        return -1;
    return rpc_server_turn(self);
}

/* ---- Client ------------------------------------------------------------------------ */

struct rpc_client {
    void *sock; /* DEALER, CURVE client */
    msgpack_sbuffer out;
};

int
rpc_request_pack(msgpack_sbuffer *out, const char *op, const char *rid, const void *body,
                 size_t body_len)
{
    assert(out);
    const unsigned char *b = body;
    if (!op || !s_op_name_ok(op, strlen(op)) || !rid || !*rid || strlen(rid) > RPC_RID_MAX)
        return -1;
    for (const char *p = rid; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return -1;
    if (body_len > 0 && !(b && ((b[0] & 0xf0) == 0x80 || b[0] == 0xde || b[0] == 0xdf)))
        return -1;
    msgpack_sbuffer_clear(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 3);
    rc |= msgpack_pack_str_with_body(&pk, "op", 2);
    rc |= msgpack_pack_str_with_body(&pk, op, strlen(op));
    rc |= msgpack_pack_str_with_body(&pk, "rid", 3);
    rc |= msgpack_pack_str_with_body(&pk, rid, strlen(rid));
    rc |= msgpack_pack_str_with_body(&pk, "body", 4);
    rc |= body_len ? msgpack_sbuffer_write(out, body, body_len) : msgpack_pack_map(&pk, 0);
    return rc ? -1 : 0;
}

void
rpc_reply_clear(rpc_reply_t *out)
{
    if (out) {
        free(out->result);
        memset(out, 0, sizeof *out);
    }
}

/* The result value's bytes, re-packed from the (already validated) reply. */
static int
s_result_bytes(const void *buf, size_t len, rpc_reply_t *out)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = -1;
    if (msgpack_unpack_next(&up, buf, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    const msgpack_object_map *m = &up.data.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 6 &&
            memcmp(k->via.str.ptr, "result", 6) == 0) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            if (msgpack_pack_object(&pk, m->ptr[i].val) == 0 && sb.size > 0) {
                out->result = sb.data; /* ownership moves to out */
                out->result_len = sb.size;
                rc = 0;
            } else {
                msgpack_sbuffer_destroy(&sb);
            }
            break;
        }
    }
done:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int
rpc_reply_decode(const void *buf, size_t len, rpc_reply_t *out, evmsg_err_t *err)
{
    assert(out);
    evmsg_err_t local = {{0}, {0}};
    if (!err)
        err = &local;
    memset(out, 0, sizeof *out);
    evmsg_t *msg = NULL;
    if (evmsg_decode_map(buf, len, &msg, err) < 0)
        return -1;
    evmsg_map_t root = evmsg_data(msg, err), e;
    static const char *const keys[] = {"rid", "ok", "result", "error", NULL};
    evmsg_map_only(&root, keys);
    out->rid_nil = evmsg_map_str(&root, "rid", EVMSG_OPTIONAL, RPC_RID_MAX, out->rid) == 0;
    evmsg_map_bool(&root, "ok", EVMSG_REQUIRED, &out->ok);
    if (!err->reason[0]) {
        if (out->ok) {
            evmsg_map_map(&root, "result", EVMSG_REQUIRED, &e);
        } else {
            evmsg_map_map(&root, "error", EVMSG_REQUIRED, &e);
            evmsg_map_str(&e, "code", EVMSG_REQUIRED | EVMSG_NONEMPTY, RPC_CODE_MAX, out->code);
            evmsg_map_str(&e, "field", EVMSG_REQUIRED, RPC_FIELD_MAX - 1, out->field);
            evmsg_map_str(&e, "zh", EVMSG_REQUIRED, RPC_TEXT_MAX, out->zh);
            evmsg_map_str(&e, "en", EVMSG_REQUIRED, RPC_TEXT_MAX, out->en);
        }
    }
    if (!err->reason[0] && out->ok && s_result_bytes(buf, len, out) < 0)
        snprintf(err->reason, sizeof err->reason, "out of memory");
    evmsg_destroy(&msg);
    if (err->reason[0]) {
        rpc_reply_clear(out);
        return -1;
    }
    return 0;
}

rpc_client_t *
rpc_client_new(void *ctx, const char *endpoint, const char *server_public_z85,
               const char *public_z85, const char *secret_z85, char *err, size_t errlen)
{
    rpc_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    msgpack_sbuffer_init(&self->out);
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    lim.maxmsgsize = EVMSG_MAX_BYTES;
    self->sock =
        zsock_client(ctx, ZMQ_DEALER, server_public_z85, public_z85, secret_z85, &lim, err, errlen);
    if (!self->sock || zsock_connect(self->sock, endpoint, err, errlen) < 0) {
        rpc_client_destroy(&self);
        return NULL;
    }
    return self;
}

void
rpc_client_destroy(rpc_client_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        rpc_client_t *self = *self_p;
        zsock_close(&self->sock);
        msgpack_sbuffer_destroy(&self->out);
        free(self);
        *self_p = NULL;
    }
}

void *
rpc_client_socket(rpc_client_t *self)
{
    assert(self);
    return self->sock;
}

int
rpc_client_send(rpc_client_t *self, const void *req, size_t len)
{
    assert(self);
    return zmq_send(self->sock, req, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

int
rpc_client_recv(rpc_client_t *self, int timeout_ms, rpc_reply_t *out, evmsg_err_t *err)
{
    assert(self && out);
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0) {
        if (err)
            snprintf(err->reason, sizeof err->reason, "zmq_poll: %s", zmq_strerror(errno));
        return -1;
    }
    if (rc == 0)
        return 0;
    /* [reply], or [][reply] should a peer add the delimiter: the last frame counts. */
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (errno == EAGAIN)
                return 0;
            if (err)
                snprintf(err->reason, sizeof err->reason, "zmq_msg_recv: %s", zmq_strerror(errno));
            return -1;
        }
        if (!zmq_msg_more(&m))
            break;
    }
    rc = rpc_reply_decode(zmq_msg_data(&m), zmq_msg_size(&m), out, err) < 0 ? -1 : 1;
    zmq_msg_close(&m);
    return rc;
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
rpc_call(rpc_client_t *self, const char *op, const char *rid, const void *body, size_t body_len,
         int timeout_ms, int tries, rpc_reply_t *out, evmsg_err_t *err)
{
    assert(self && out && tries >= 1);
    evmsg_err_t local = {{0}, {0}};
    if (!err)
        err = &local;
    memset(out, 0, sizeof *out);
    if (rpc_request_pack(&self->out, op, rid, body, body_len) < 0) {
        snprintf(err->reason, sizeof err->reason, "malformed op, rid or body");
        return -1;
    }
    for (int t = 0; t < tries; t++) {
        if (rpc_client_send(self, self->out.data, self->out.size) < 0 && errno != EAGAIN) {
            snprintf(err->reason, sizeof err->reason, "zmq_send: %s", zmq_strerror(errno));
            return -1;
        }
        int64_t deadline = s_now_ms() + timeout_ms;
        for (int64_t left = timeout_ms; left >= 0; left = deadline - s_now_ms()) {
            int rc = rpc_client_recv(self, (int)left, out, err);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            if (out->rid_nil || strcmp(out->rid, rid) == 0)
                return 0;
            rpc_reply_clear(out); /* a late reply to an earlier call */
        }
    }
    snprintf(err->reason, sizeof err->reason, "timeout: no reply after %d tries of %d ms", tries,
             timeout_ms);
    return -1;
}
