/* config: a service's settings from SX_* environment variables.
 *
 * Each getter reads one variable, returns its value or the default when it is unset or
 * empty, and, when the value is malformed, records an error naming the variable and what
 * was expected (and returns the default). main reads every setting, then asks
 * config_error(): if there is one it prints it and exits (status 78, EX_CONFIG), so
 * an operator sees every bad variable at once instead of one per restart.
 *
 *   config_t *cfg = config_new();
 *   int port = (int)config_int(cfg, "SX_OPS_PORT", 9100, 1, 65535);
 *   if (config_error(cfg)) { fprintf(stderr, "%s\n", config_error(cfg)); return 78; }
 */
#ifndef SX_CONFIG_H
#define SX_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct config config_t;

/* Returns a new config reading the process environment, or NULL when out of memory. */
config_t *config_new(void);

/* Frees the config and the strings it returned; sets *self_p to NULL. Idempotent. */
void config_destroy(config_t **self_p);

/* The value as a string (owned by the config), or def. Errors when the value is longer
 * than 4096 bytes or holds control characters. */
const char *config_str(config_t *self, const char *name, const char *def);

/* A decimal integer within [min, max] (leading/trailing space refused). */
int64_t config_int(config_t *self, const char *name, int64_t def, int64_t min, int64_t max);

/* true/false, yes/no, on/off, 1/0 (any case). */
bool config_bool(config_t *self, const char *name, bool def);

/* A duration with a unit: "250ms", "2s", "5m", "1h"; returned in milliseconds within
 * [min_ms, max_ms]. A bare number is refused, since its unit would be a guess. */
int64_t config_duration_ms(config_t *self, const char *name, int64_t def_ms, int64_t min_ms,
                           int64_t max_ms);

/* One of the names in the NULL-terminated list; returns its index, or def_index. */
int config_enum(config_t *self, const char *name, int def_index, const char *const names[]);

/* Records that the setting name is wrong for a reason found after reading it (a key
 * file that does not load, a directory that is not there, two settings that disagree):
 * one more line "NAME: <fmt...>" in config_error, so main reports it with the rest. */
void config_fail(config_t *self, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The errors so far, one per line ("SX_OPS_PORT: expected an integer in 1..65535, got
 * \"http\""), or NULL when every value was well-formed. Owned by the config. */
const char *config_error(const config_t *self);

#endif
