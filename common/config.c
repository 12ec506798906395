#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFIG_VALUE_MAX 4096
#define CONFIG_ERROR_MAX 4096

struct config {
    char *errors; /* newline-separated messages, or NULL when none */
    size_t errors_len;
    char **strings; /* copies handed out by config_str, freed with the config */
    size_t nstrings;
};

config_t *
config_new(void)
{
    return calloc(1, sizeof(config_t));
}

void
config_destroy(config_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        config_t *self = *self_p;
        for (size_t i = 0; i < self->nstrings; i++)
            free(self->strings[i]);
        free(self->strings);
        free(self->errors);
        free(self);
        *self_p = NULL;
    }
}

/* Appends one line to the error list; past CONFIG_ERROR_MAX, further errors are dropped
 * (the first ones are the ones that matter). */
static void s_error(config_t *self, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
s_error(config_t *self, const char *name, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);

    size_t len = strlen(line);
    if (self->errors_len + len + 2 > CONFIG_ERROR_MAX)
        return;
    char *grown = realloc(self->errors, self->errors_len + len + 2);
    if (!grown)
        return;
    self->errors = grown;
    if (self->errors_len)
        self->errors[self->errors_len++] = '\n';
    memcpy(self->errors + self->errors_len, line, len + 1);
    self->errors_len += len;
}

/* Quotes a bad value for an error message: at most 64 bytes, control bytes shown as '?',
 * so a message never grows or breaks lines because of what was in the environment. */
static const char *
s_quote(const char *v, char buf[80])
{
    size_t i = 0, j = 0;
    buf[j++] = '"';
    for (; v[i] && i < 64; i++)
        buf[j++] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i]) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j++] = '"';
    buf[j] = '\0';
    return buf;
}

/* The raw value, or NULL when unset or empty (empty means "use the default", as for
 * most Unix tools, so that `SX_X= cmd` resets a value). */
static const char *
s_raw(const char *name)
{
    assert(name && strncmp(name, "SX_", 3) == 0);
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

const char *
config_str(config_t *self, const char *name, const char *def)
{
    const char *v = s_raw(name);
    if (!v)
        return def;
    char q[80];
    size_t len = strnlen(v, CONFIG_VALUE_MAX + 1);
    if (len > CONFIG_VALUE_MAX) {
        s_error(self, name, "expected at most %d bytes, got a longer value", CONFIG_VALUE_MAX);
        return def;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
            s_error(self, name, "expected text without control characters, got %s", s_quote(v, q));
            return def;
        }
    }
    /* A copy, so later setenv calls cannot change what the caller holds. */
    char **grown = realloc(self->strings, (self->nstrings + 1) * sizeof *grown);
    char *copy = grown ? strdup(v) : NULL;
    if (grown)
        self->strings = grown;
    if (!copy) {
        s_error(self, name, "out of memory");
        return def;
    }
    self->strings[self->nstrings++] = copy;
    return copy;
}

/* Parses a whole string as a decimal int64; no spaces, signs only '-', no overflow. */
static int
s_parse_int(const char *v, int64_t *out)
{
    if (!(isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1]))))
        return -1;
    errno = 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = n;
    return 0;
}

int64_t
config_int(config_t *self, const char *name, int64_t def, int64_t min, int64_t max)
{
    const char *v = s_raw(name);
    if (!v)
        return def;
    int64_t n;
    char q[80];
    if (s_parse_int(v, &n) || n < min || n > max) {
        s_error(self, name, "expected an integer in %lld..%lld, got %s", (long long)min,
                (long long)max, s_quote(v, q));
        return def;
    }
    return n;
}

bool
config_bool(config_t *self, const char *name, bool def)
{
    const char *v = s_raw(name);
    if (!v)
        return def;
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return true;
        if (strcasecmp(v, no[i]) == 0)
            return false;
    }
    char q[80];
    s_error(self, name, "expected true or false (also yes/no, on/off, 1/0), got %s", s_quote(v, q));
    return def;
}

int64_t
config_duration_ms(config_t *self, const char *name, int64_t def_ms, int64_t min_ms, int64_t max_ms)
{
    const char *v = s_raw(name);
    if (!v)
        return def_ms;
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

    size_t digits = 0;
    while (isdigit((unsigned char)v[digits]))
        digits++;
    int64_t n = -1, ms = -1;
    if (digits > 0 && digits <= 12) {
        char num[16];
        memcpy(num, v, digits);
        num[digits] = '\0';
        n = strtoll(num, NULL, 10);
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(v + digits, units[i].unit) == 0)
                ms = n * units[i].ms;
    }
    char q[80];
    if (ms < 0) {
        s_error(self, name, "expected a duration such as 250ms, 2s, 5m or 1h, got %s",
                s_quote(v, q));
        return def_ms;
    }
    if (ms < min_ms || ms > max_ms) {
        s_error(self, name, "expected a duration from %lldms to %lldms, got %s", (long long)min_ms,
                (long long)max_ms, s_quote(v, q));
        return def_ms;
    }
    return ms;
}

int
config_enum(config_t *self, const char *name, int def_index, const char *const names[])
{
    const char *v = s_raw(name);
    if (!v)
        return def_index;
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    char allowed[256] = "";
    size_t len = 0;
    for (int i = 0; names[i] && len + 1 < sizeof allowed; i++)
        len +=
            (size_t)snprintf(allowed + len, sizeof allowed - len, "%s%s", i ? ", " : "", names[i]);
    char q[80];
    s_error(self, name, "expected one of %s, got %s", allowed, s_quote(v, q));
    return def_index;
}

void
config_fail(config_t *self, const char *name, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    s_error(self, name, "%s", why);
}

const char *
config_error(const config_t *self)
{
    return self->errors;
}
