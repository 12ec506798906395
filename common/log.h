/* log: logfmt lines on stderr.
 *
 *   ts=2026-11-27T03:38:21.123Z level=info svc=broker msg="relay started" stream=intake seq=42
 *
 * One line per call, written with a single write(2) so lines from threads or processes
 * sharing stderr never interleave. The format string's literal text is the programmer's;
 * every %s value is escaped (quoted when it holds a space, '=', '"' or is empty; '"', '\'
 * and control bytes escaped), so a hostile string cannot forge a key or a second line.
 * Supported conversions: %s %.*s %d %i %u %ld %lu %lld %llu %zu %zd %x %lx %g %f %c %%,
 * plus PRId64/PRIu64. Anything else is written as "?" (never read from the va_list
 * past what the format names, so it is safe; gcc's format check catches it first). */
#ifndef SX_LOG_H
#define SX_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level_t;

/* Sets the service name written as svc= and the lowest level written. Call once from
 * main before anything logs. Until then: svc=- and level info. */
void log_init(const char *svc, log_level_t level);

/* Parses "debug", "info", "warn" or "error" into *out. Returns 0, or -1 and leaves *out
 * unchanged when the name is none of those. */
int log_level_parse(const char *name, log_level_t *out);

/* Writes one line: msg is the human message (escaped like any value), fmt holds the
 * key=value pairs, e.g. log_info("relay started", "stream=%s seq=%" PRIu64, s, seq).
 * fmt may be NULL or "". */
void log_write(log_level_t level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(log_level_t level, const char *msg, const char *fmt, va_list ap);

#define log_debug(msg, ...) log_write(LOG_DEBUG, (msg), __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, (msg), __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, (msg), __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, (msg), __VA_ARGS__)

/* Formats one line as log_write would, into buf (NUL-terminated, truncated to size with
 * the line still ending in '\n'). Returns the length written. For tests and for
 * components that forward lines elsewhere. */
size_t log_format(char *buf, size_t size, log_level_t level, const char *msg, const char *fmt,
                  va_list ap);

#endif
