/* timer: a service's deadline timers in Redis.
 *
 * Postgres holds every deadline; Redis holds the timers, so that the instances of a
 * service find what is due without scanning their tables. Per service:
 *
 *   sx:timer:{<svc>}:due      sorted set, member "<kind>:<key>", score = due (unix ms)
 *   sx:timer:{<svc>}:claimed  sorted set, member as above, score = lease end (unix ms)
 *   sx:timer:{<svc>}:armed    set by timer_rearm when it completes; its absence tells
 *                             the instances that Redis lost the timers (FLUSHALL, a
 *                             restart without persistence), so they arm them again
 *
 * (the braces keep the three keys in one Redis Cluster slot, for the claim script.)
 *
 * Firing is at-least-once: timer_claim_due moves due members (and members whose lease
 * ran out, because whoever claimed them died before timer_done) into the claimed set
 * with a lease, atomically in one Lua script, so two instances never receive the same
 * member from one claim. A handler reads the deadline's state in Postgres, acts only if
 * it is still pending (idempotently: the same firing may come twice), then calls
 * timer_done.
 *
 * The service's loop:
 *
 *   timers_t *t = timers_new(redis_url, "intake", err, sizeof err);
 *   for (;;) {
 *       if (timer_needs_rearm(t))            // at start, after a reconnect, after a flush
 *           timer_rearm(t, s_deadlines, db); // s_deadlines: SELECT kind, key, due ... FROM
 *                                            // the service's own tables
 *       timer_fired_t f[64];
 *       int n = timer_claim_due(t, timer_now_ms(), f, 64);
 *       for (int i = 0; i < n; i++) {
 *           handle(f[i].kind, f[i].key);       // checks Postgres, idempotent
 *           timer_done(t, f[i].kind, f[i].key);
 *       }
 *       ...
 *   }
 *
 * When a service writes a deadline into Postgres it commits first and then calls
 * timer_arm; should the process die between the two, the next rearm arms it.
 *
 * Names: svc and kind are [a-z0-9_-], 1..32 bytes; key is 1..TIMER_KEY_MAX bytes of
 * printable non-space ASCII or UTF-8 (no control bytes, no spaces); a member is kind ':'
 * key, split at the first ':', so a key may itself hold ':'.
 *
 * Errors: calls return -1 with the reason in timer_error. Every call retries once, on a
 * fresh connection, when the connection was lost (each operation is safe to repeat: arm,
 * cancel and done are idempotent, and a claim whose answer was lost leaves its members
 * leased, to come back when the lease ends). A timers_t belongs to one thread at a time.
 * No globals. */
#ifndef SX_TIMER_H
#define SX_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMER_KIND_MAX         32
#define TIMER_KEY_MAX          200
#define TIMER_CLAIM_MAX        1000  /* the most one timer_claim_due returns */
#define TIMER_LEASE_MS_DEFAULT 30000 /* see timer_set_lease */

/* The POSIX <time.h> owns timer_t, hence timers_t: one service's timers. */
typedef struct timers timers_t;

/* A claimed timer. */
typedef struct {
    char kind[TIMER_KIND_MAX + 1];
    char key[TIMER_KEY_MAX + 1];
    int64_t due_ms;   /* when it was due (for a redelivery: when the lease ran out) */
    bool redelivered; /* claimed before, and the claimer never called timer_done */
} timer_fired_t;

/* The wall clock in unix ms, the scale every due time uses. */
int64_t timer_now_ms(void);

/* A new handle on the timers of service svc in the Redis at redis_url
 * (redis://host[:port][/db]). Does not connect: the first call does, and
 * timer_needs_rearm is true until a timer_rearm succeeds. Returns NULL with the reason in
 * err when the URL or svc is malformed, or out of memory. */
timers_t *timers_new(const char *redis_url, const char *svc, char *err, size_t errlen);

/* Closes the connection and frees the handle; sets *self_p to NULL. Idempotent. The
 * timers stay in Redis. */
void timers_destroy(timers_t **self_p);

/* How long a claim leases its members (ms, > 0; default TIMER_LEASE_MS_DEFAULT): longer
 * than a handler ever takes, since an expired lease fires the timer again elsewhere. */
void timer_set_lease(timers_t *self, int64_t lease_ms);

/* Arms (or moves) the timer kind/key to fire at due_ms. Returns 0, or -1 (bad kind or
 * key, Redis unreachable) with the reason in timer_error; nothing is changed then. */
int timer_arm(timers_t *self, const char *kind, const char *key, int64_t due_ms);

/* Disarms kind/key, also dropping a claim on it. Returns 0 (also when it was not armed),
 * or -1 with the reason in timer_error. */
int timer_cancel(timers_t *self, const char *kind, const char *key);

/* Claims at most max (1..TIMER_CLAIM_MAX) timers that are due at now_ms: armed ones with
 * due <= now_ms and claimed ones whose lease ended at or before now_ms, earliest first,
 * and leases them until now_ms + lease. One atomic script, so concurrent claimers (this
 * service's other instances) never receive the same member from one claim. Writes them
 * into out and returns how many (0..max), or -1 with the reason in timer_error. Also
 * notices when Redis lost the timers (see timer_needs_rearm). Instances' clocks are
 * assumed to agree to well within the lease. */
int timer_claim_due(timers_t *self, int64_t now_ms, timer_fired_t *out, int max);

/* Ends the claim on kind/key after its handler ran. Returns 0 (also when there was no
 * claim), or -1 with the reason in timer_error; the timer then fires again once its
 * lease ends, which an idempotent handler tolerates. A timer armed again while claimed
 * (a new due time) stays armed. */
int timer_done(timers_t *self, const char *kind, const char *key);

/* Used by a timer_source_fn to hand over its deadlines. */
typedef struct timer_batch timer_batch_t;

/* Adds one deadline to a rearm. Returns 0, also when kind or key is malformed (that
 * deadline is skipped and logged at warn, and the rest goes on), or -1 when Redis failed:
 * the rearm fails then, so the source may as well stop and return -1. */
int timer_batch_add(timer_batch_t *batch, const char *kind, const char *key, int64_t due_ms);

/* Supplies the service's pending deadlines from its own tables (the timer module knows
 * no schema): calls timer_batch_add for each and returns 0, or -1 on failure (e.g. its
 * query failed). */
typedef int(timer_source_fn)(void *arg, timer_batch_t *batch);

/* Arms every deadline fn supplies (pipelined, in batches) and then marks the set as
 * armed. Run it at start and whenever timer_needs_rearm says so. Arming overwrites due
 * times with Postgres's, and leaves timers Postgres no longer holds to fire once (the
 * handler finds nothing pending). Returns the number armed, or -1 with the reason in
 * timer_error (fn failed, or Redis did): timer_needs_rearm then stays true. */
long timer_rearm(timers_t *self, timer_source_fn *fn, void *arg);

/* Arms every deadline fn supplies, pipelined in batches as timer_rearm does, without
 * marking the set armed: for deadlines that are new since. Returns the number armed, or
 * -1 with the reason in timer_error (fn failed, or Redis did; some may be armed). */
long timer_arm_all(timers_t *self, timer_source_fn *fn, void *arg);

/* What a timer_fire_fn did with one claimed timer. */
typedef enum {
    TIMER_FIRE_DONE,  /* handled, or nothing is due any more: timer_done follows */
    TIMER_FIRE_RETRY, /* failed: it stays leased and fires again when the lease ends */
    TIMER_FIRE_MOVED  /* its moment moved: armed again at *due_ms, then timer_done */
} timer_fire_t;

/* Handles one claimed timer (idempotently: the same firing may come twice). */
typedef timer_fire_t(timer_fire_fn)(void *arg, const timer_fired_t *f, int64_t now_ms,
                                    int64_t *due_ms);

/* Told of each Redis failure in timer_claim_each: what is "claim", "arm moved deadline"
 * or "done" (timer_error has the reason). */
typedef void(timer_fail_fn)(void *arg, const char *what);

/* A claim run: the handlers, and what the run counted (added to, never reset). */
typedef struct {
    timer_fire_fn *fire; /* required */
    timer_fail_fn *fail; /* may be NULL */
    void *arg;           /* passed to both */
    uint64_t fired;      /* timers handed to fire */
    uint64_t retried;    /* ... that answered TIMER_FIRE_RETRY */
    uint64_t moved;      /* ... that answered TIMER_FIRE_MOVED */
} timer_claim_t;

/* The claim loop every deadline keeper runs: claims the timers due at now_ms, batch
 * (1..TIMER_CLAIM_MAX) at a time into buf, for at most rounds rounds (fewer when a claim
 * returns less than batch), hands each to c->fire and ends it as fire answered. A failed
 * claim ends the run; a failed arm or done is reported and the run goes on (the timer
 * fires again when its lease ends). Returns 0, or -1 when a claim failed. */
int timer_claim_each(timers_t *self, int64_t now_ms, timer_fired_t *buf, int batch, int rounds,
                     timer_claim_t *c);

/* True until a timer_rearm succeeds, and again after any reconnect to Redis (the server
 * may have restarted empty) or when a claim finds the armed mark gone (a FLUSHALL). */
bool timer_needs_rearm(const timers_t *self);

/* Counts connections made to Redis (see redis_generation): it changes on reconnect. */
uint64_t timer_generation(const timers_t *self);

/* The reason for the last failure; "" when none. */
const char *timer_error(const timers_t *self);

#endif
