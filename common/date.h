/* date: calendar dates as day numbers (days since 1970-01-01, proleptic Gregorian), the
 * form every deadline computation in sanxiang uses. Text form is ISO 8601 YYYY-MM-DD. */
#ifndef SX_DATE_H
#define SX_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int32_t date_t;

/* Day number of a calendar date; the date must be valid (see date_valid). */
date_t date_from_ymd(int y, int m, int d);

/* Calendar date of a day number. */
void date_to_ymd(date_t day, int *y, int *m, int *d);

/* True when y-m-d is a real date with 1 <= y <= 9999. */
bool date_valid(int y, int m, int d);

/* Parses exactly "YYYY-MM-DD" (len bytes, no terminator needed) into *out.
 * Returns 0, or -1 with a reason in why (may be NULL): "expected YYYY-MM-DD" or
 * "no such date". *out is unchanged on error. */
int date_parse(const char *s, size_t len, date_t *out, const char **why);

/* Writes "YYYY-MM-DD" and a NUL into buf, which must hold 11 bytes. Returns buf. */
char *date_format(date_t day, char buf[11]);

/* ISO weekday: 1 = Monday ... 7 = Sunday. */
int date_weekday(date_t day);

/* Today's date in China Standard Time (UTC+8, no daylight saving), from the given unix
 * time in seconds. Deadlines are counted in the agencies' local calendar. */
date_t date_from_unix_cst(int64_t unix_s);

#endif
