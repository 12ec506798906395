/* fault_chaos: the faults of the system fault suite (make test-fault, issue 9) — SIGKILL
 * and restart of every service, the broker and Redis at random moments from a seeded
 * PRNG, one PostgreSQL restart, and a supervisor that restarts a process that ended by
 * itself (as systemd's Restart=always would). Everything it does goes on a timeline,
 * printed at the end.
 *
 * Redis and PostgreSQL are the ones tests/fault-system/run started for the suite (never
 * the harness's, whose pids the harness stops at the end). Redis is found by its INFO
 * process_id and started again with the same arguments on the same port; PostgreSQL is
 * stopped with SIGINT (fast shutdown) through the pid in postmaster.pid and started again
 * from its postmaster.opts, as the data directory's owner. A restarted server is this
 * process's child: fault_chaos_stop_servers stops it; when this process died first, run
 * stops it (by postmaster.pid and INFO process_id). */
#ifndef SX_FAULT_CHAOS_H
#define SX_FAULT_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "story.h"

typedef struct fault_chaos fault_chaos_t;

/* splitmix64: the one PRNG of the suite, so a seed replays the same schedule. */
uint64_t fault_rand(uint64_t *state);

/* A chaos monkey on world w (which must be started) with run's servers: tmp is SX_TMP
 * (holding pg/ and redis.log), redis_url the server's SX_REDIS_URL, pg_url a database on
 * the PostgreSQL (to see when it answers again). Returns NULL with err filled. */
fault_chaos_t *fault_chaos_new(story_world_t *w, uint64_t seed, const char *tmp,
                               const char *redis_url, const char *pg_url, char *err, size_t errlen);

/* Starts the thread: a kill every min_gap_ms..max_gap_ms (each target at least once,
 * in a seeded order, before any target twice), the killed process down for
 * 0..max_down_ms, then started again; PostgreSQL restarted once when
 * fault_chaos_pg_now is called. Returns 0, or -1 (err). */
int fault_chaos_start(fault_chaos_t *self, int min_gap_ms, int max_gap_ms, int max_down_ms,
                      char *err, size_t errlen);

/* Asks the thread to restart PostgreSQL at its next step (once; later calls do nothing). */
void fault_chaos_pg_now(fault_chaos_t *self);

/* Stops the thread (waits for it) and makes sure every process of the world and Redis
 * runs (restarting what is down). Returns how many could not be started. */
int fault_chaos_halt(fault_chaos_t *self);

/* Restarts processes of the world that ended by themselves; for the quiet period.
 * Returns how many were restarted. Not while the thread runs. */
int fault_chaos_supervise(fault_chaos_t *self);

/* How many kills of target ("broker", a service, "redis", "postgres") were done. */
int fault_chaos_kills(const fault_chaos_t *self, const char *target);

/* Whether every target was killed at least once and PostgreSQL restarted (when asked). */
bool fault_chaos_all_hit(const fault_chaos_t *self);

/* Prints the timeline (t in s since fault_chaos_new, what, pid) to f. */
void fault_chaos_print(const fault_chaos_t *self, FILE *f);

/* Stops the Redis and PostgreSQL this process started (Redis SIGTERM, PostgreSQL SIGINT,
 * waiting for each, bounded). Call after story_world_stop. */
void fault_chaos_stop_servers(fault_chaos_t *self);

/* Frees the monkey (halting it first). Idempotent. */
void fault_chaos_destroy(fault_chaos_t **self_p);

#endif
