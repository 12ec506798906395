/* redis: one Redis connection (hiredis) from a redis:// URL, with timeouts, reconnect
 * and backoff.
 *
 *   redis_t *r = redis_new(config_str(cfg, "SX_REDIS_URL", NULL), "sx-intake", err, sizeof err);
 *   redisReply *rep = redis_command(r, 2, (const char *[]){"GET", "k"}, NULL);
 *   if (!rep) log_warn("redis", "err=%s", redis_error(r));
 *   freeReplyObject(rep);
 *   redis_destroy(&r);
 *
 * URL: redis://[[user]:password@]host[:port][/db]  (port 6379 and db 0 by default; host
 * a name, an IPv4 address or a bracketed IPv6 address). Anything else is refused with a
 * reason naming the part that is wrong; the reason never holds the password.
 *
 * Errors: calls return -1 or NULL and keep the reason in the handle (redis_error) until
 * the next failure. A lost connection (I/O error, EOF, timeout) fails the call that
 * meets it (never retried here: the caller knows whether its command is safe to repeat)
 * and marks the handle; the next call reconnects first, with backoff, for at most the
 * reconnect wait. An error reply from the server (e.g. "WRONGTYPE ...") is a reply, not
 * a failure: it is returned as a REDIS_REPLY_ERROR for the caller to judge, and the
 * connection stays good.
 *
 * A redis_t belongs to one thread at a time. Calls block, each bounded by the timeout
 * given to redis_new. No globals. */
#ifndef SX_REDIS_H
#define SX_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define REDIS_HOST_MAX   255
#define REDIS_SECRET_MAX 255

/* Default for redis_set_reconnect_wait. */
#define REDIS_RECONNECT_WAIT_MS 2000

/* A parsed redis:// URL. */
typedef struct {
    char host[REDIS_HOST_MAX + 1];       /* without brackets for IPv6 */
    int port;                            /* 1..65535 */
    int db;                              /* 0..65535 (SELECT db) */
    char user[REDIS_SECRET_MAX + 1];     /* "" = none (AUTH password) */
    char password[REDIS_SECRET_MAX + 1]; /* "" = no AUTH */
} redis_url_t;

/* Parses url into *out. Returns 0, or -1 with the reason in err (out is then left in an
 * unspecified state). Percent-escapes are decoded in user and password only. */
int redis_url_parse(const char *url, redis_url_t *out, char *err, size_t errlen);

typedef struct redis redis_t;

/* A new handle for url, with timeout_ms (> 0) bounding each connect and each command,
 * and client_name (NULL, or [A-Za-z0-9_.:-]{1,64}) set with CLIENT SETNAME on every
 * connection so an operator can tell clients apart. Does not connect: the first command
 * (or redis_connect) does. Returns NULL with the reason in err when the URL or the name
 * is malformed, or out of memory. */
redis_t *redis_new(const char *url, int timeout_ms, const char *client_name, char *err,
                   size_t errlen);

/* Closes the connection and frees the handle; sets *self_p to NULL. Idempotent. */
void redis_destroy(redis_t **self_p);

/* Connects (AUTH, SELECT, CLIENT SETNAME as the URL and name ask), or reconnects when
 * the connection was lost, trying again with exponential backoff (50 ms doubling to 2 s,
 * each delay jittered down to half) until connected or max_wait_ms has passed (0 = one
 * attempt). Returns 0 when connected (at once if already connected), or -1 with the last
 * reason in redis_error. Each failed attempt is logged at warn. */
int redis_connect(redis_t *self, int max_wait_ms);

/* How long a command that finds the connection lost waits to reconnect before failing
 * (default REDIS_RECONNECT_WAIT_MS; 0 = one attempt). */
void redis_set_reconnect_wait(redis_t *self, int max_wait_ms);

/* Runs one command (argv as binary-safe strings; lens may be NULL for NUL-terminated
 * ones). Returns the reply (the caller frees it with freeReplyObject), or NULL when the
 * command could not be run or its reply not read: not connected and the reconnect failed,
 * the connection was lost (the command may or may not have run), or out of memory. */
redisReply *redis_command(redis_t *self, int argc, const char **argv, const size_t *lens);

/* Pipelining: redis_append queues a command (connecting first if need be), redis_reply
 * sends whatever is queued and reads the next reply, in order. Returns 0 / a reply as
 * above; after a failure the rest of the queue is dropped with the connection, so a
 * caller stops reading replies at the first NULL. */
int redis_append(redis_t *self, int argc, const char **argv, const size_t *lens);
redisReply *redis_reply(redis_t *self);

/* True when the handle holds a connection not known to be broken. */
bool redis_connected(const redis_t *self);

/* Counts connections made: it changes whenever a reconnect gives a new connection, so a
 * caller that must redo work after one (e.g. rearm timers the server may have lost) can
 * tell. 0 before the first connect. */
uint64_t redis_generation(const redis_t *self);

/* The reason for the last failure (never holds the password); "" when none. */
const char *redis_error(const redis_t *self);

/* One-shot probe for health checks: connects to url within timeout_ms, sends PING and
 * expects PONG. Returns true when healthy; otherwise false with a short reason in why.
 * Thread-safe (uses nothing shared). */
bool redis_ping_url(const char *url, int timeout_ms, char *why, size_t whylen);

#endif
