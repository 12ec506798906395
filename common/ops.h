/* ops: every service's health and metrics endpoint.
 *
 * A small libmicrohttpd listener (its own thread) on SX_OPS_BIND:SX_OPS_PORT (default
 * 127.0.0.1) serving:
 *   GET /metrics  Prometheus text format 0.0.4: every registered counter, gauge and
 *                 histogram (with _bucket{le=...}, _sum, _count), HELP and TYPE lines.
 *   GET /healthz  200 "ok\n" when every registered check passes; otherwise 503 with one
 *                 line per failing check, "postgres: connection refused".
 * Anything else is 404; methods other than GET/HEAD are 405.
 *
 * Metric updates are lock-free atomics, safe from any thread; registration happens at
 * start-up, before the hot loop. Names follow Prometheus: sx_<svc>_<what>_<unit>. */
#ifndef SX_OPS_H
#define SX_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ops ops_t;
typedef struct ops_metric ops_metric_t;

/* Starts the listener on bind_addr:port (a numeric IPv4 or IPv6 address, NULL for
 * 127.0.0.1; port 0 picks a free port, see ops_port). It serves at most 16 connections
 * at once, each request's headers within 16 KiB, and drops connections idle for 10 s.
 * Returns NULL on failure (address in use, bad address) with the reason in err. */
ops_t *ops_new(const char *bind_addr, int port, char *err, size_t errlen);

/* Stops the listener and frees every metric; sets *self_p to NULL. Idempotent. */
void ops_destroy(ops_t **self_p);

/* Stops serving HTTP (the listener and its thread end; no check or page runs after this
 * returns) while metrics stay writable: a service calls it before destroying what its
 * checks read, then ops_destroy last. NULL is a no-op; ops_destroy stops it too. */
void ops_stop(ops_t *self);

/* The port actually listened on. */
int ops_port(const ops_t *self);

/* Registers a series and returns it (owned by ops; valid until ops_destroy). labels is
 * NULL or a Prometheus label set without braces, e.g. "stream=\"intake\"": series of one
 * name with different labels share HELP and TYPE. Registering the same name and labels
 * twice returns the same series. NULL (logged) when out of memory, the name or labels are
 * malformed, or the name is already registered with another type. */
ops_metric_t *ops_counter(ops_t *self, const char *name, const char *labels, const char *help);
ops_metric_t *ops_gauge(ops_t *self, const char *name, const char *labels, const char *help);
/* bounds: strictly ascending finite upper bounds (the +Inf bucket is implicit), 1..32;
 * NULL otherwise. Registering the same name and labels again returns the first series
 * (its bounds). The le label is reserved. */
ops_metric_t *ops_histogram(ops_t *self, const char *name, const char *labels, const char *help,
                            const double *bounds, size_t nbounds);

/* Appends name="value" (value escaped for the text format; comma-separated from what buf
 * already holds) to the NUL-terminated label set in buf, for label values that come from
 * data. Returns 0, or -1 (buf unchanged) when name is not a label name or it does not
 * fit. */
int ops_label(char *buf, size_t size, const char *name, const char *value);

/* Updates. m may be NULL (a registration that failed), which does nothing. Calling one
 * on a series of another type is a programmer error (assert). ops_observe ignores NaN. */
void ops_inc(ops_metric_t *m);                     /* counter += 1 */
void ops_add(ops_metric_t *m, uint64_t n);         /* counter += n */
void ops_set(ops_metric_t *m, double v);           /* gauge = v */
void ops_observe(ops_metric_t *m, double v);       /* histogram sample */
uint64_t ops_counter_value(const ops_metric_t *m); /* for tests and logs */

/* A health check: returns true when healthy; otherwise writes a short reason into why.
 * Called from the listener's thread on each /healthz, so it must be thread-safe and
 * quick (open its own short-lived connection with a timeout, or read state the main
 * loop keeps in atomics). */
typedef bool(ops_check_fn)(void *arg, char *why, size_t whylen);

/* Registers a named check ("postgres", "redis", "broker"; [a-z0-9_-]{1,31}); arg must
 * stay valid until ops_destroy. Checks run in the order registered. Returns 0, or -1
 * when full (16 checks) or the name is malformed. */
int ops_check(ops_t *self, const char *name, ops_check_fn *fn, void *arg);

/* Ready-made checks. ops_check_postgres: arg is a libpq conninfo (const char *); opens
 * and closes a connection within 1 s. ops_check_redis: arg is a redis:// URL
 * (const char *); connects within 500 ms and expects PONG to PING. */
bool ops_check_postgres(void *arg, char *why, size_t whylen);
bool ops_check_redis(void *arg, char *why, size_t whylen);

#endif
