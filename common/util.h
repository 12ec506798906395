/* util: the few small helpers every module would otherwise write again. */
#ifndef SX_UTIL_H
#define SX_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Formats an error message into the caller's buffer err (errlen bytes, NUL-terminated,
 * truncated). Does nothing when err is NULL or errlen is 0, so a caller that does not
 * want the reason may pass NULL. */
void util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Milliseconds on CLOCK_MONOTONIC: for timeouts and intervals, never for dates. */
int64_t util_mono_ms(void);

/* Unix time in milliseconds (CLOCK_REALTIME): for timestamps that leave the process. */
int64_t util_unix_ms(void);

/* Sleeps ms milliseconds (nothing when ms <= 0), resuming after signals. */
void util_sleep_ms(int64_t ms);

#endif
