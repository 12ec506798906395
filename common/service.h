/* service: the wiring every service's main repeats — the signal descriptor, the ZeroMQ
 * context, the ZAP handler and its key file (reloaded on SIGHUP), the migrations, the
 * relay's PUB socket to the broker and the subscribers' SUB sockets, and the relay's turn
 * in the poll loop. Each main keeps its settings, its own handlers and its own loop; it
 * reads the fields below and calls these functions where it used to write them out.
 *
 * Lifetime: service_new blocks SIGTERM, SIGINT and SIGHUP and opens the descriptor they
 * arrive on; service_destroy closes what the service_t made (relay, PUB, ZAP, context,
 * descriptor). Every other socket on ctx must be closed before service_destroy, which
 * terminates the context. */
#ifndef SX_SERVICE_H
#define SX_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "date.h"
#include "db.h"
#include "keys.h"
#include "log.h"
#include "ops.h"
#include "workday.h"
#include "zap.h"

/* The settings every service with a door and a broker reads alike. The strings are
 * owned by the config_t they were read from. */
typedef struct {
    const char *pg_url;    /* SX_PG_URL, required */
    const char *redis_url; /* SX_REDIS_URL, required when asked for, else NULL */
    const char *bind;      /* the door's endpoint (SX_<NAME>_BIND) */
    const char *key_file;  /* SX_KEY_FILE: this service's CURVE pair, required */
    const char *keys_file; /* SX_KEYS_FILE: public key -> identity, for ZAP, required */
    const char *broker_pub, *broker_sub, *broker_key; /* SX_BROKER_*, required */
    const char *ops_bind;                             /* SX_OPS_BIND, default 127.0.0.1 */
    int ops_port;                                     /* SX_OPS_PORT */
    const char *schemas;                              /* SX_SCHEMAS, default ./schemas */
    log_level_t level;                                /* SX_LOG_LEVEL, default info */
    int rpc_keep_days; /* SX_RPC_KEEP_DAYS: days the door keeps stored replies (rpc.h) */
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1]; /* key_file's pair */
} service_config_t;

/* Reads the settings above into *c (the door's from bind_var, default bind_default; the
 * ops port's default ops_port; SX_REDIS_URL only when with_redis) and adds a "required"
 * line to cfg's errors for each required one missing. */
void service_config_read(config_t *cfg, service_config_t *c, const char *bind_var,
                         const char *bind_default, int ops_port, bool with_redis);

/* Adds a line to cfg's errors for each of the door (named bind_var), SX_BROKER_PUB and
 * SX_BROKER_SUB that is set but not a tcp:// or ipc:// endpoint. */
void service_config_endpoints(config_t *cfg, const service_config_t *c, const char *bind_var);

/* Checks what service_config_read read, adding a line to cfg's errors for each that is
 * wrong: SX_BROKER_PUBLIC_KEY not 40 Z85 characters, SX_KEY_FILE not a readable pair
 * (else c->pub and c->sec are filled; the caller wipes c->sec), SX_SCHEMAS not a
 * directory, SX_KEYS_FILE not loadable. */
void service_config_check(config_t *cfg, service_config_t *c);

/* The ops endpoint (/metrics, /healthz) on bind:port, with a "postgres" check on pg_url
 * and a "redis" check on redis_url, each when not NULL (the strings must outlive it).
 * Returns it (the caller destroys it), or NULL after logging "ops endpoint not started". */
ops_t *service_ops(const char *bind, int port, const char *pg_url, const char *redis_url);

/* The working-day calendar of a service that counts deadlines: the file at path
 * (SX_CALENDAR), or the default one when path is NULL (workday_load_default). NULL with
 * the reason in err. */
workday_t *service_calendar_load(const char *path, char *err, size_t errlen);

/* Says when the calendar runs out, so that ops install next year's before deadlines are
 * counted on weekends only: the gauge sx_<svc>_calendar_covered_until_seconds on ops
 * (unix time at the end of the last covered day, China Standard Time; alert on it minus
 * time()), and a warning in the log when fewer than SERVICE_CALENDAR_WARN_DAYS days are
 * left after today. ops may be NULL. Returns the days left (negative once past). */
#define SERVICE_CALENDAR_WARN_DAYS 60
int service_calendar_watch(ops_t *ops, const char *svc, const workday_t *cal, date_t today);

typedef struct {
    const char *name;               /* "recording": the ZAP domain of the door */
    const char *keys_file;          /* SX_KEYS_FILE, loaded by service_zap and on each SIGHUP */
    const service_config_t *config; /* the broker and the keys to reach it with; NULL
                                       for a service without a broker (sx-broker) */
    void *ctx;                      /* the ZeroMQ context; terminated by service_destroy */
    int sigfd;                      /* SIGTERM, SIGINT, SIGHUP arrive here; poll it */
    zap_t *zap;                     /* NULL until service_zap (or set by main, which then owns
                                       nothing: service_destroy destroys it) */
    void *pub;                      /* PUB socket to the broker; NULL until service_relay */
    bus_relay_t *relay;             /* the outbox relay on pub; NULL until service_relay */
    int64_t relay_due;              /* util_mono_ms when the relay steps even without a wake-up */
    /* Counted on each key-file load when set (sx-broker): loads ok, loads refused, and
     * the keys in the table. */
    ops_metric_t *m_load_ok, *m_load_bad, *m_keys;
} service_t;

/* Blocks SIGTERM, SIGINT and SIGHUP, opens their signal descriptor and a ZeroMQ context.
 * `name`, `keys_file` and `config` (NULL: no broker) are kept, not copied: they must
 * outlive the service_t. Returns NULL (and logs why) when the descriptor or the context
 * cannot be made. */
service_t *service_new(const char *name, const char *keys_file, const service_config_t *config);

/* Destroys the relay, closes the PUB socket, the ZAP handler, terminates the context
 * (every other socket must be closed by now) and closes the signal descriptor.
 * Idempotent; sets *self_p to NULL. */
void service_destroy(service_t **self_p);

/* Runs schemas/sql/bus, schemas/sql/rpc and schemas/sql/<own> under `schemas` into
 * `schema`. Returns 0, or -1 after logging "migrations failed" with the database's error. */
int service_migrate(db_t *db, const char *schema, const char *schemas, const char *own);

/* Starts the ZAP handler, lets in on the door's domain (self->name) the identities whose
 * names start with each of `allow` (NULL-terminated, e.g. {"dept:", "svc:", NULL}) and
 * loads keys_file. With `ops`, counts connections admitted and refused as
 * sx_<name>_connections_{admitted,refused}_total. Returns 0, or -1 with the reason in
 * err (the caller logs it). */
int service_zap(service_t *self, const char *const *allow, ops_t *ops, char *err, size_t errlen);

/* Loads keys_file into the ZAP handler, logging "key file loaded" with the count. On
 * error returns -1 with the reason in err and leaves the handler's table as it was. */
int service_load_keys(service_t *self, char *err, size_t errlen);

/* Connects a PUB socket to the broker and starts the relay of `stream`'s outbox in `db`
 * on it. Returns 0, or -1 after logging "relay not started". */
int service_relay(service_t *self, db_t *db, const char *stream, char *err, size_t errlen);

/* A PUB socket connected to the broker's publisher side, with the limits service_relay
 * gives its own, for a relay the caller runs itself (sx-intake's, in a thread of its own).
 * It is not self's: the caller closes it before service_destroy. Returns it, or NULL with
 * the reason in err. */
void *service_pub(service_t *self, char *err, size_t errlen);

/* A SUB socket connected to the broker's subscriber side (no subscription yet: bus_sub
 * subscribes), receiving at most SERVICE_SUB_RCVHWM messages ahead of its reader. Returns
 * it (the caller closes it before service_destroy), or NULL with the reason in err. */
#define SERVICE_SUB_RCVHWM 10000
void *service_sub(service_t *self, char *err, size_t errlen);

/* Reads every signal waiting on sigfd: SIGHUP reloads the key file (a bad file is logged
 * and the previous keys kept); SIGTERM or SIGINT returns true: stop. */
bool service_signals(service_t *self);

/* Fills *item with the relay's wake-up descriptor and returns 1, or returns 0 when the
 * relay has none (it then steps on relay_due alone) or there is no relay. */
int service_relay_pollitem(const service_t *self, zmq_pollitem_t *item);

/* Steps the relay when `woken` (its descriptor was readable) or relay_due has come, and
 * sets the next relay_due. `now` is util_mono_ms. */
void service_relay_turn(service_t *self, bool woken, int64_t now);

/* The zmq_poll timeout in ms: until the earlier of relay_due (with a relay) and `due`,
 * both util_mono_ms, kept within 0..1000 so the loop looks round at least each second. */
long service_poll_ms(const service_t *self, int64_t due, int64_t now);

#endif
