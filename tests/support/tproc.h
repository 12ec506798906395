/* tproc: sanxiang processes in tests — start a binary from SX_BIN with its settings and
 * its log in SX_TMP, wait for what it logs, ask its ops port, stop it by PID; a whole
 * world (database, keys, broker, services), the test playing a publishing service (its
 * outbox and relay), rpc requests as any key pair, SQL on the test's own connection. */
#ifndef SX_TPROC_H
#define SX_TPROC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "bus.h"
#include "rpc.h"

/* A free loopback TCP port (the kernel's pick; another process could still take it
 * before the caller binds it: wait for the process's own log line, not only the port). */
int tp_free_port(void);

/* Starts $SX_BIN/<bin> with the arguments args (NULL-terminated; NULL for none) and the
 * current environment plus env ("NAME=value" strings, NULL-terminated; may be NULL),
 * stdout and stderr appended to $SX_TMP/<log>.log. Returns the pid. */
pid_t tp_spawn(const char *bin, const char *const args[], const char *log, const char *const env[]);

/* Sends sig, waits up to timeout_ms for the process to end, then SIGKILL. Returns the
 * wait status (0 for a clean exit 0), or -1 when pid <= 0. */
int tp_stop(pid_t pid, int sig, int timeout_ms);

/* Sends SIGTERM to *pid and asserts that it exits with 0 within timeout_ms (a clean stop);
 * *pid becomes 0. */
void tp_stop_clean(pid_t *pid, int timeout_ms);

/* Whether $SX_TMP/<log>.log holds a line containing text (and, when text2 is not NULL,
 * that line also holds text2). */
bool tp_log_has(const char *log, const char *text, const char *text2);

/* Waits up to timeout_ms until tp_log_has(log, text, NULL); fails the test otherwise. */
void tp_wait_log(const char *log, const char *text, int timeout_ms);

/* One HTTP GET to 127.0.0.1:port: returns the status (0 when it could not connect), the
 * body (NUL-terminated, truncated) into buf. */
int tp_http_get(int port, const char *path, char *buf, size_t size);

/* Waits up to timeout_ms until 127.0.0.1:port answers GET path (any status); fails the
 * test otherwise. */
void tp_wait_http(int port, const char *path, int timeout_ms);

int64_t tp_now_ms(void);
void tp_sleep_ms(int ms);

/* ---- SQL on the test's own connection --------------------------------------------------- */

/* The first value of sql's first row as a number: -1 without a row or when NULL; fails
 * the test when the query fails. */
long long tp_pg_num(PGconn *pg, const char *sql);

/* Runs sql; fails the test when it fails. */
void tp_pg_exec(PGconn *pg, const char *sql);

/* ---- A bus world: keys, a broker, services ------------------------------------------ */

/* What the processes of one test share. */
typedef struct {
    char keydir[512]; /* key pairs: <keydir>/<name>.key and .pub */
    char keys[600];   /* the key file (public key -> identity) */
    char broker_pub[41];
    char pub_ep[64];  /* the broker's publisher endpoint (tcp://127.0.0.1:port) */
    char sub_ep[64];  /* its subscriber endpoint */
    char pg_url[512]; /* SX_PG_URL for services */
    /* Set by tp_world_open only: */
    PGconn *pg;   /* the test's own connection to pg_url */
    void *ctx;    /* the ZeroMQ context of the test's sockets */
    pid_t broker; /* sx-broker */
} tp_world_t;

/* Makes a fresh key dir with the broker's pair and one pair per name in ids (pairs of
 * {name, identity}, ended by {NULL, NULL}), writes the key file, picks the broker's
 * endpoints, and keeps pg_url. */
void tp_world_init(tp_world_t *w, const char *pg_url, const char *const ids[][2]);

/* A whole world for a process-level test: a fresh database named after db_name (pg_url),
 * the test's connection to it (pg), tp_world_init with ids, a ZeroMQ context (ctx) and
 * sx-broker started (broker, its log in $SX_TMP/<broker_log>.log). */
void tp_world_open(tp_world_t *w, const char *db_name, const char *const ids[][2],
                   const char *broker_log);

/* Ends what tp_world_open started: stops the broker, ends the context (every socket on it
 * must be closed by then), closes the connection. Safe on a world never opened. */
void tp_world_close(tp_world_t *w);

/* Reads the pair <keydir>/<name>.key into pub and sec (41 bytes each). */
void tp_world_pair(const tp_world_t *w, const char *name, char *pub, char *sec);

/* Starts sx-broker for the world, its log in $SX_TMP/<log>.log. */
pid_t tp_world_broker(const tp_world_t *w, const char *log);

/* Starts $SX_BIN/<bin> (a service, or a tool such as bustest, with args) with the world's
 * settings — SX_PG_URL, SX_KEY_FILE=<keydir>/<key>.key, SX_KEYS_FILE, SX_BROKER_PUB,
 * SX_BROKER_SUB, SX_BROKER_PUBLIC_KEY, SX_SCHEMAS, SX_OPS_PORT=0 — plus env (may be
 * NULL; its entries win), its log in $SX_TMP/<log>.log. */
pid_t tp_world_spawn(const tp_world_t *w, const char *bin, const char *const args[],
                     const char *key, const char *log, const char *const env[]);

/* Starts the service sx-<svc> of world w as the key pair <svc> (tp_world_spawn), its rpc
 * door bound at ep (SX_<SVC>_BIND), its ops endpoint on ops_port (SX_OPS_PORT; 0: any free
 * one), plus env (may be NULL; its entries win), its log in $SX_TMP/<log>.log. */
pid_t tp_world_service(const tp_world_t *w, const char *svc, const char *ep, int ops_port,
                       const char *log, const char *const env[]);

/* ---- Playing a service that publishes: its outbox and its relay ----------------------- */

typedef struct {
    char stream[32];
    db_t *db;           /* the outbox: tp_produce writes on it */
    db_t *relay_db;     /* the relay's own connection */
    void *sock;         /* PUB to the world's broker, as the stream's key pair */
    bus_relay_t *relay; /* stepped by tp_pump, or run by tp_producer_thread */
    pthread_t thread;
    volatile int stop;
    bool threaded;
} tp_producer_t;

/* Plays the service <stream> of world w (opened; its key pair is <stream>): migrates the
 * stream's bus tables in w's database, connects a PUB socket (linger 0) on w's context to
 * the broker and makes the relay; nothing is relayed until tp_pump or tp_producer_thread. */
void tp_producer_open(tp_producer_t *p, const tp_world_t *w, const char *stream);

/* Emits one event (data as JSON) on p's outbox in its own transaction. */
void tp_produce(tp_producer_t *p, const char *topic, const char *json);

/* Runs p's relay (bus_relay_run) in its own thread until tp_producer_close. */
void tp_producer_thread(tp_producer_t *p);

/* Steps the relays of p[0..n) every 20 ms for ms. */
void tp_pump(tp_producer_t *p, int n, int ms);

/* Stops the relay's thread if it runs, closes the socket and the connections. */
void tp_producer_close(tp_producer_t *p);

/* Waits up to timeout_ms until the first value of sql reads want (as text, "" without a
 * row or on an error), pumping p[0..n) for 100 ms between reads (n may be 0: sleeps);
 * fails the test naming the last value. */
void tp_pg_wait_value(PGconn *pg, const char *sql, const char *want, int timeout_ms,
                      tp_producer_t *p, int n);

/* The same for a number: until tp_pg_num reads want (a failing query reads -1). */
void tp_pg_wait_num(PGconn *pg, const char *sql, long long want, int timeout_ms, tp_producer_t *p,
                    int n);

/* ---- Asking a service over rpc ------------------------------------------------------------ */

/* An rpc client, on w's context, of the service at ep (its public key server_pub) with
 * w's key pair who. */
rpc_client_t *tp_world_client(const tp_world_t *w, const char *ep, const char *server_pub,
                              const char *who);

/* One request on c with a fresh rid, the body as JSON; fails the test when no reply comes
 * within tries x timeout_ms. The caller rpc_reply_clear's the reply. */
rpc_reply_t tp_call(rpc_client_t *c, const char *op, const char *json, int timeout_ms, int tries);

/* tp_call from a client of its own for who, closed after the reply. */
rpc_reply_t tp_world_call(const tp_world_t *w, const char *ep, const char *server_pub,
                          const char *who, const char *op, const char *json, int timeout_ms,
                          int tries);

/* An ok reply's result as JSON (the caller json_decref's it); fails the test, naming the
 * code, field and message, on an error reply. */
json_t *tp_reply_json(const rpc_reply_t *r);

#endif
