/* story: the whole sanxiang system started as one world and driven as the departments
 * would drive it — for the end-to-end story test (tests/e2e), the pipeline bench
 * (tools/pipeload) and the fault suite.
 *
 * A world is: CURVE keys (the broker's pair, one per service, the clients' pairs named
 * by the caller), sx-broker, the five services (intake, recording, review, publication,
 * creditpush) and tools/fake-credit, each on free loopback ports, each logging to
 * <log_dir>/<name>.log, all sharing one PostgreSQL database and one Redis database.
 *
 * Unlike tproc, nothing here calls cmocka: every function returns -1 / NULL with the
 * reason in the world's err (or the caller's buffer), so a tool can link it too. */
#ifndef SX_STORY_H
#define SX_STORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "rpc.h"

typedef enum {
    STORY_INTAKE,
    STORY_RECORDING,
    STORY_REVIEW,
    STORY_PUBLICATION,
    STORY_CREDITPUSH,
    STORY_NSVC
} story_svc_t;

#define STORY_CREDIT_TOKEN "story-token"
#define STORY_CREDIT_KEY   "story-hmac-key"

typedef struct {
    const char *bin_dir;   /* the binaries (SX_BIN) */
    const char *log_dir;   /* <name>.log and the key dir go here (SX_TMP) */
    const char *top;       /* the repository: schemas/, schemas/calendar/ */
    const char *pg_url;    /* SX_PG_URL for every service */
    const char *redis_url; /* SX_REDIS_URL for every service */
    /* client key pairs to make: {name, identity} pairs ended by {NULL, NULL}; the
     * identity is what the key file maps the key to (dept:<code>:<role>, svc:<name>) */
    const char *const (*clients)[2];
    const char *log_level;   /* SX_LOG_LEVEL for the services; NULL: info */
    const char *pool_agency; /* SX_REVIEW_POOL_AGENCY; NULL: none */
    int credit_batch;        /* SX_CREDIT_BATCH; 0: the service's default */
    int broker_sndhwm;       /* SX_BROKER_SNDHWM; 0: the broker's default */
} story_opts_t;

/* One world. Fields are readable by callers; change them only through the functions. */
typedef struct {
    story_opts_t o;
    char keydir[512];             /* <name>.key / .pub for the broker, services and clients */
    char keys[600];               /* the key file */
    char broker_pub[41];          /* the broker's public key */
    char pub_ep[64];              /* the broker's publisher endpoint */
    char sub_ep[64];              /* its subscriber endpoint */
    char door[STORY_NSVC][64];    /* each service's rpc endpoint */
    char svc_pub[STORY_NSVC][41]; /* each service's public key */
    int portal_port;              /* publication's public HTTP API */
    int fake_port;                /* fake-credit: /api/v1/sgs and /admin/stats */
    pid_t broker, fake, svc[STORY_NSVC]; /* 0 when not running */
    void *ctx;                           /* the ZeroMQ context of the clients */
    unsigned rid;                        /* makes rids unique in this process */
    void *pg;                            /* PGconn on pg_url, opened on first use */
    char run[24];   /* this run's tag (pid and time), for rids and case numbers */
    char err[1024]; /* why the last call failed */
} story_world_t;

/* A free loopback port below the kernel's ephemeral range, or -1 (errno set). */
int story_free_port(void);

/* The service's name as in its binary (sx-<name>) and log: "intake", ... */
const char *story_svc_name(story_svc_t svc);

/* Makes the keys and starts the broker, fake-credit and the five services, waiting
 * for each to log that it started (30 s each). Returns 0, or -1 with w->err set and
 * whatever had started stopped again. */
int story_world_start(story_world_t *w, const story_opts_t *o);

/* Starts (or restarts) one process of the world by name: "broker", "fake-credit" or a
 * service name, and waits up to timeout_ms for its "started"/"listening" line after
 * the ones it logged before. Returns its pid, or -1 with w->err set. */
pid_t story_start(story_world_t *w, const char *name, int timeout_ms);

/* The pid slot of a process by name (NULL for an unknown name). */
pid_t *story_pid(story_world_t *w, const char *name);

/* Sends sig to the named process and waits up to timeout_ms for it to end (SIGKILL
 * after that). Returns its wait status, or -1 when it was not running. */
int story_stop(story_world_t *w, const char *name, int sig, int timeout_ms);

/* The peak resident set (VmHWM) of pid in KiB, or -1. */
long story_vmhwm_kb(pid_t pid);

/* Stops every process (SIGTERM, 10 s, then SIGKILL), services first, and frees the
 * context. Returns how many did not exit with status 0. Idempotent. */
int story_world_stop(story_world_t *w);

/* ---- Calls ---------------------------------------------------------------------------- */

/* A reply: ok with its result as JSON, or the error. */
typedef struct {
    bool ok;
    json_t *result; /* ok: the result map (owned: story_reply_clear) */
    char code[64], field[128], en[RPC_TEXT_MAX + 1];
} story_reply_t;

void story_reply_clear(story_reply_t *r);

/* One rpc call to a service's door as the client `who` (a name from opts.clients, or a
 * service's own key name): op with body (JSON text, NULL = {}), a fresh rid unless rid
 * is given; timeout 5 s, 3 tries with the same rid. Returns 0 with *out filled (ok or an
 * error reply), or -1 with w->err set (no reply, a body that is not JSON). */
int story_call(story_world_t *w, story_svc_t door, const char *who, const char *op, const char *rid,
               const char *body, story_reply_t *out);

/* story_call with the body made by printf; returns the ok result (the caller
 * json_decref's it), or NULL with w->err naming the op and the error code, field and
 * message (an error reply) or why no reply came. */
json_t *story_do(story_world_t *w, story_svc_t door, const char *who, const char *op,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Sends the file <top>/deploy/examples/<file> as its op (the file name without NN- and
 * .json) to intake as who. Returns the result (caller json_decref's), or NULL with
 * w->err set. */
json_t *story_example(story_world_t *w, const char *who, const char *file);

/* ---- What a department hears ---------------------------------------------------------- */

typedef struct story_sub story_sub_t;

/* A subscriber on the broker as client who, subscribed to each full topic in topics
 * (NULL-terminated; a department may only name "<event>.<own code>"). Every event that
 * arrives is kept (topic, data as JSON) until the subscriber is destroyed. Returns NULL
 * with w->err set. */
story_sub_t *story_sub_new(story_world_t *w, const char *who, const char *const topics[]);

/* Receives for up to timeout_ms until an event with this topic has data[key] equal to
 * the integer val (key NULL: any event of the topic), counting the ones kept already.
 * Returns that event's data (borrowed: valid until story_sub_destroy), or NULL with
 * w->err set on timeout. */
json_t *story_sub_wait(story_sub_t *s, const char *topic, const char *key, json_int_t val,
                       int timeout_ms);

/* How many events of topic (NULL: all) with data[key] == val (key NULL: any) have come. */
int story_sub_count(story_sub_t *s, const char *topic, const char *key, json_int_t val);

/* Receives whatever is waiting for up to timeout_ms (0: do not wait). Returns the
 * number of events kept so far. */
int story_sub_pump(story_sub_t *s, int timeout_ms);

/* For load: receives one event for up to timeout_ms without keeping it, and gives its
 * topic (NUL-terminated, truncated to 128 bytes) and the data's `case_id` and
 * `record_id` (0 when absent). Returns 1 with an event, 0 on timeout, -1 when a message
 * would not decode (skipped). */
int story_sub_next_ids(story_sub_t *s, int timeout_ms, char topic[129], int64_t *case_id,
                       int64_t *record_id);

/* The subscriber's socket, for zmq_poll. */
void *story_sub_socket(story_sub_t *s);

void story_sub_destroy(story_sub_t **self_p);

/* ---- HTTP ----------------------------------------------------------------------------- */

/* One GET to 127.0.0.1:port/path; returns the status (0: no connection) and, when body is
 * not NULL, the body parsed as JSON (NULL when it is not JSON; caller json_decref's). */
int story_http_get(int port, const char *path, json_t **body);

/* As story_http_get, the body as text (NUL-terminated, malloc'ed: the caller frees it;
 * NULL without a connection). For the portal's HTML pages. */
int story_http_get_text(int port, const char *path, char **body);

/* fake-credit's /admin/stats (caller json_decref's), or NULL. */
json_t *story_credit_stats(story_world_t *w);

/* ---- Waiting -------------------------------------------------------------------------- */

typedef bool(story_cond_fn)(void *arg);

/* Calls cond every step_ms until it holds or timeout_ms has passed. Returns 0 when it
 * held, -1 on timeout. */
int story_wait(story_cond_fn *cond, void *arg, int timeout_ms, int step_ms);

/* PostgreSQL helpers on the world's database: one integer value of sql (-1 on error). */
long long story_pg_count(story_world_t *w, const char *sql);

/* Waits (20 ms steps) until story_pg_count(sql) >= want. Returns 0, or -1 (w->err). */
int story_pg_wait(story_world_t *w, const char *sql, long long want, int timeout_ms);

/* ---- A case's life -------------------------------------------------------------------- */

/* What story_case_life drives: open, propose, decide, (approve publication if
 * approve_as is set), serve, execute (penalties), close. Review is not part of it: the
 * proposal must not need review. */
typedef struct {
    const char *who;         /* the department's system client */
    const char *matter_code; /* a licence or penalty matter of the agency */
    const char *case_no;
    const char *decision_no;
    const char *date;       /* every date of the case, YYYY-MM-DD */
    const char *party_json; /* the party map as JSON */
    const char *fine;       /* "0" for a licence */
    bool penalty;
    const char *officers_json; /* NULL or a JSON array of two cert numbers (on site) */
} story_case_t;

/* Drives the case and fills case_id. Returns 0, or -1 with w->err naming the step. */
int story_case_life(story_world_t *w, const story_case_t *c, int64_t *case_id);

/* Today in China Standard Time, YYYY-MM-DD. */
void story_today(char buf[11]);

/* Monotonic milliseconds. */
int64_t story_now_ms(void);
void story_sleep_ms(int ms);

#endif
