/* tproc: sanxiang processes in tests — start a binary from SX_BIN with its settings and
 * its log in SX_TMP, wait for what it logs, ask its ops port, stop it by PID. */
#ifndef SX_TPROC_H
#define SX_TPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Whether $SX_TMP/<log>.log holds a line containing text (and, when text2 is not NULL,
 * that line also holds text2). */
bool tp_log_has(const char *log, const char *text, const char *text2);

/* Waits up to timeout_ms until tp_log_has(log, text, NULL); fails the test otherwise. */
void tp_wait_log(const char *log, const char *text, int timeout_ms);

/* One HTTP GET to 127.0.0.1:port: returns the status (0 when it could not connect), the
 * body (NUL-terminated, truncated) into buf. */
int tp_http_get(int port, const char *path, char *buf, size_t size);

int64_t tp_now_ms(void);
void tp_sleep_ms(int ms);

/* ---- A bus world: keys, a broker, services ------------------------------------------ */

/* What the processes of one test share. */
typedef struct {
    char keydir[512]; /* key pairs: <keydir>/<name>.key and .pub */
    char keys[600];   /* the key file (public key -> identity) */
    char broker_pub[41];
    char pub_ep[64];  /* the broker's publisher endpoint (tcp://127.0.0.1:port) */
    char sub_ep[64];  /* its subscriber endpoint */
    char pg_url[512]; /* SX_PG_URL for services */
} tp_world_t;

/* Makes a fresh key dir with the broker's pair and one pair per name in ids (pairs of
 * {name, identity}, ended by {NULL, NULL}), writes the key file, picks the broker's
 * endpoints, and keeps pg_url. */
void tp_world_init(tp_world_t *w, const char *pg_url, const char *const ids[][2]);

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

#endif
