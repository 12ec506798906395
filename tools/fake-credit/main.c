/* fake-credit: a stand-in for the credit-information platform (信用中国) that creditpush
 * pushes 双公示 records to, for tests, `make run` and benchmarks. A real HTTP server
 * (libmicrohttpd, a thread per connection) speaking the push format of
 * schemas/messages/creditpush.md:
 *
 *   POST /api/v1/sgs      Authorization: Bearer <token>, X-Signature: hex HMAC-SHA256 of the
 *                         body (libsodium crypto_auth_hmacsha256, key from the settings);
 *                         every record checked (sgs_record_check), counted by its key
 *   GET  /admin/stats     {received, accepted, duplicates, rejected, bad_auth, bad_body,
 *                          withdrawn, repaired, early_withdrawals (status changes of a
 *                          record never received), hanging (pushes held unanswered now),
 *                          serious (records accepted with "serious": true),
 *                          keys: {key: times seen}}
 *   POST /admin/mode?mode=ok|fail|hang|refuse|lose|reject|garbage&ms=N
 *                         for N ms (0: until told otherwise): answer 500 / hang (then
 *                         500) / drop the connection unanswered / apply the batch but
 *                         hold the answer back (a crash or timeout loses it) / answer 422
 *                         / answer 422 with bytes that are not text (NUL, broken UTF-8)
 *
 * Usage: fake-credit --port N [--bind ADDR]; SX_CREDIT_TOKEN and SX_CREDIT_HMAC_KEY
 * (required, the same strings creditpush is given). Prints "fake-credit listening
 * port=N" on stderr when ready; SIGTERM/SIGINT stop it. */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "sgs_record.h"
#include "util.h"

#define S_BODY_MAX    (8 * 1024 * 1024) /* one batch */
#define S_RECORDS_MAX 5000              /* records in one batch */

typedef enum { S_OK, S_FAIL, S_HANG, S_REFUSE, S_LOSE, S_REJECT, S_GARBAGE } s_mode_t;

typedef struct {
    pthread_mutex_t lock;
    const char *token, *key; /* bearer token and HMAC key */
    s_mode_t mode;           /* how to answer pushes */
    int64_t mode_until;      /* monotonic ms when mode falls back to S_OK; 0 never */
    json_t *keys;            /* idempotency key -> times seen */
    json_t *sent;            /* "kind:WSH" of every accepted record, for withdrawals */
    long received, accepted, duplicates, rejected, bad_auth, bad_body, withdrawn, repaired, early;
    long serious; /* records accepted with the blacklist flag (严重违法失信) */
    long hanging; /* pushes held unanswered right now (hang, lose) */
} s_state_t;

typedef struct {
    char *p;
    size_t len;
    bool too_big;
} s_body_t;

static volatile sig_atomic_t s_stop; /* the stop flag */

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static s_mode_t
s_mode(s_state_t *st)
{
    pthread_mutex_lock(&st->lock);
    if (st->mode != S_OK && st->mode_until && util_mono_ms() >= st->mode_until)
        st->mode = S_OK;
    s_mode_t m = st->mode;
    pthread_mutex_unlock(&st->lock);
    return m;
}

static enum MHD_Result
s_reply(struct MHD_Connection *conn, unsigned int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
s_error(struct MHD_Connection *conn, unsigned int status, const char *error, const char *detail)
{
    return s_reply(conn, status, json_pack("{s:s,s:s}", "error", error, "detail", detail));
}

/* Constant-time check of the hex HMAC-SHA256 of body in sig. */
static bool
s_signed(const s_state_t *st, const char *body, size_t len, const char *sig)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES], got[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state h;
    size_t n = 0;
    if (!sig || strlen(sig) != 2 * sizeof got ||
        sodium_hex2bin(got, sizeof got, sig, strlen(sig), NULL, &n, NULL) != 0 || n != sizeof got)
        return false;
    crypto_auth_hmacsha256_init(&h, (const unsigned char *)st->key, strlen(st->key));
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&h, mac);
    return sodium_memcmp(mac, got, sizeof mac) == 0;
}

/* One record of a batch; returns its result object. Called with st->lock held. */
static json_t *
s_record(s_state_t *st, const json_t *rec)
{
    const char *key = json_string_value(json_object_get(rec, "key"));
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    const char *op = json_string_value(json_object_get(rec, "op"));
    const json_t *data = json_object_get(rec, "data");
    const json_t *serious = json_object_get(rec, "serious");
    char reason[SGS_REASON_MAX] = "";
    st->received++;
    if (!key || !key[0] || strlen(key) > 64)
        snprintf(reason, sizeof reason, "key: required, at most 64 bytes");
    else if (serious && !json_is_boolean(serious))
        snprintf(reason, sizeof reason, "serious: not a boolean");
    else if (!op || (strcmp(op, "publish") != 0 && strcmp(op, "withdraw") != 0 &&
                     strcmp(op, "repair") != 0))
        snprintf(reason, sizeof reason, "op: publish, withdraw or repair");
    else if (strcmp(op, "publish") == 0)
        sgs_record_check(data, kind, reason);
    else if (strcmp(op, "withdraw") == 0)
        sgs_record_check_withdrawal(data, kind, reason);
    else
        sgs_record_check_repair(data, kind, reason);
    if (reason[0]) {
        st->rejected++;
        return json_pack("{s:s?,s:s,s:s}", "key", key, "status", "rejected", "reason", reason);
    }
    json_t *seen = json_object_get(st->keys, key);
    json_int_t times = seen ? json_integer_value(seen) : 0;
    json_object_set_new(st->keys, key, json_integer(times + 1));
    if (times > 0) {
        st->duplicates++;
        return json_pack("{s:s,s:s}", "key", key, "status", "duplicate");
    }
    char sent[300];
    bool penalty = strcmp(kind, "penalty") == 0;
    snprintf(sent, sizeof sent, "%s:%s", kind,
             json_string_value(json_object_get(data, penalty ? "CF_WSH" : "XK_WSH")));
    if (strcmp(op, "publish") != 0) {
        if (strcmp(op, "withdraw") == 0)
            st->withdrawn++;
        else
            st->repaired++;
        if (!json_object_get(st->sent, sent))
            st->early++; /* a status change of a record never received: counted, kept */
    } else {
        st->accepted++;
        st->serious += json_is_true(serious);
        json_object_set_new(st->sent, sent, json_true());
    }
    return json_pack("{s:s,s:s}", "key", key, "status", "accepted");
}

static enum MHD_Result
s_push(s_state_t *st, struct MHD_Connection *conn, const s_body_t *b)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Signature");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, st->token) != 0) {
        pthread_mutex_lock(&st->lock);
        st->bad_auth++;
        pthread_mutex_unlock(&st->lock);
        return s_error(conn, 401, "unauthorized", "bearer token missing or wrong");
    }
    if (!s_signed(st, b->p ? b->p : "", b->len, sig)) {
        pthread_mutex_lock(&st->lock);
        st->bad_auth++;
        pthread_mutex_unlock(&st->lock);
        return s_error(conn, 401, "bad_signature",
                       "X-Signature is not the HMAC-SHA256 of the body");
    }
    json_error_t je;
    json_t *doc = b->p ? json_loadb(b->p, b->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    json_t *recs = json_object_get(doc, "records");
    if (!json_is_array(recs) || json_array_size(recs) == 0 ||
        json_array_size(recs) > S_RECORDS_MAX) {
        json_decref(doc);
        pthread_mutex_lock(&st->lock);
        st->bad_body++;
        pthread_mutex_unlock(&st->lock);
        return s_error(conn, 400, "bad_body", "expected {\"records\":[1..5000 records]}");
    }
    json_t *results = json_array();
    size_t i;
    json_t *rec;
    pthread_mutex_lock(&st->lock);
    json_array_foreach(recs, i, rec) json_array_append_new(results, s_record(st, rec));
    pthread_mutex_unlock(&st->lock);
    json_decref(doc);
    return s_reply(conn, 200, json_pack("{s:o}", "results", results));
}

static enum MHD_Result
s_admin(s_state_t *st, struct MHD_Connection *conn, const char *url, const char *method)
{
    if (strcmp(url, "/admin/stats") == 0 && strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&st->lock);
        json_t *o = json_pack(
            "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:O}", "received",
            (json_int_t)st->received, "accepted", (json_int_t)st->accepted, "duplicates",
            (json_int_t)st->duplicates, "rejected", (json_int_t)st->rejected, "bad_auth",
            (json_int_t)st->bad_auth, "bad_body", (json_int_t)st->bad_body, "withdrawn",
            (json_int_t)st->withdrawn, "repaired", (json_int_t)st->repaired, "early_withdrawals",
            (json_int_t)st->early, "hanging", (json_int_t)st->hanging, "serious",
            (json_int_t)st->serious, "keys", st->keys);
        pthread_mutex_unlock(&st->lock);
        return s_reply(conn, 200, o);
    }
    if (strcmp(url, "/admin/mode") == 0 && strcmp(method, "POST") == 0) {
        static const char *const names[] = {"ok",   "fail",   "hang",   "refuse",
                                            "lose", "reject", "garbage"};
        const char *m = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "mode");
        const char *ms = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ms");
        long dur = ms ? strtol(ms, NULL, 10) : 0;
        for (int i = 0; m && i < (int)(sizeof names / sizeof names[0]); i++)
            if (strcmp(m, names[i]) == 0) {
                pthread_mutex_lock(&st->lock);
                st->mode = (s_mode_t)i;
                st->mode_until = dur > 0 ? util_mono_ms() + dur : 0;
                pthread_mutex_unlock(&st->lock);
                return s_reply(conn, 200, json_pack("{s:s,s:i}", "mode", m, "ms", (int)dur));
            }
        return s_error(conn, 400, "bad_mode",
                       "mode: ok, fail, hang, refuse, lose, reject or garbage");
    }
    return s_error(conn, 404, "not_found", url);
}

/* Holds the connection's thread while the mode is m, counted in `hanging`. */
static void
s_hold(s_state_t *st, s_mode_t m)
{
    pthread_mutex_lock(&st->lock);
    st->hanging++;
    pthread_mutex_unlock(&st->lock);
    while (!s_stop && s_mode(st) == m)
        util_sleep_ms(20);
    pthread_mutex_lock(&st->lock);
    st->hanging--;
    pthread_mutex_unlock(&st->lock);
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    s_state_t *st = cls;
    if (strncmp(url, "/admin/", 7) == 0)
        return s_admin(st, conn, url, method);
    if (strcmp(url, "/api/v1/sgs") != 0)
        return s_error(conn, 404, "not_found", url);
    if (strcmp(method, "POST") != 0)
        return s_error(conn, 405, "method", "POST only");
    s_body_t *b = *con_cls;
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*data_size) {
        if (b->len + *data_size > S_BODY_MAX)
            b->too_big = true;
        else {
            char *p = realloc(b->p, b->len + *data_size + 1);
            if (!p)
                return MHD_NO;
            memcpy(p + b->len, data, *data_size);
            b->p = p;
            b->len += *data_size;
            b->p[b->len] = '\0';
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (b->too_big)
        return s_error(conn, 413, "too_big", "a batch is at most 8 MiB");
    switch (s_mode(st)) {
    case S_OK:
        return s_push(st, conn, b);
    case S_FAIL:
        return s_error(conn, 500, "unavailable", "told to fail");
    case S_REFUSE:
        return MHD_NO; /* the connection is dropped without an answer */
    case S_REJECT:
        return s_error(conn, 422, "told_to_reject", "the platform refuses this batch");
    case S_GARBAGE: {
        static const char junk[] = "\xff\xfe garbage\x00"
                                   "after-nul \xc0\xaf \xed\xa0\x80 end";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof junk - 1, (void *)junk, MHD_RESPMEM_PERSISTENT);
        int rc = MHD_queue_response(conn, 422, r);
        MHD_destroy_response(r);
        return rc;
    }
    case S_LOSE:
        s_push(st, conn, b); /* applied and queued; held back until the mode changes */
        s_hold(st, S_LOSE);
        return MHD_YES;
    case S_HANG:
        s_hold(st, S_HANG);
        return s_error(conn, 500, "unavailable", "hung");
    }
    return MHD_NO;
}

static void
s_done(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t)
{
    (void)cls, (void)conn, (void)t;
    s_body_t *b = *con_cls;
    if (b) {
        free(b->p);
        free(b);
        *con_cls = NULL;
    }
}

int
main(int argc, char **argv)
{
    const char *bind = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--bind") == 0)
            bind = argv[i + 1];
    }
    s_state_t st = {.token = getenv("SX_CREDIT_TOKEN"), .key = getenv("SX_CREDIT_HMAC_KEY")};
    if (port <= 0 || port > 65535 || !st.token || !st.token[0] || !st.key || !st.key[0]) {
        fprintf(stderr, "usage: SX_CREDIT_TOKEN=.. SX_CREDIT_HMAC_KEY=.. fake-credit --port N "
                        "[--bind ADDR]\n");
        return 78;
    }
    if (sodium_init() < 0)
        return 1;
    pthread_mutex_init(&st.lock, NULL);
    st.keys = json_object();
    st.sent = json_object();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
        fprintf(stderr, "fake-credit: bad --bind %s\n", bind);
        return 78;
    }
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, (uint16_t)port, NULL, NULL,
        s_handle, &st, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        s_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake-credit: cannot listen on %s:%d\n", bind, port);
        return 1;
    }
    fprintf(stderr, "fake-credit listening port=%d\n", port);
    while (!s_stop)
        util_sleep_ms(100);
    MHD_stop_daemon(d);
    json_decref(st.keys);
    json_decref(st.sent);
    pthread_mutex_destroy(&st.lock);
    return 0;
}
