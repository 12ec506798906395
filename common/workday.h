/* workday: the official working-day calendar (工作日历), the basis of every deadline
 * that is counted in working days (e.g. 双公示: licensing and penalty decisions
 * published within 7 working days).
 *
 * A day is a workday when it is Monday to Friday and not a listed holiday (法定节假日),
 * or when it is a listed adjusted workday (调休上班, a Saturday or Sunday worked in
 * exchange for a bridged holiday). The lists are data, not code: a JSON file
 * (schemas/calendar/cn-workdays.json, see schemas/calendar/README.md) transcribed
 * from the State Council's yearly notice, so a new year is added by replacing the file,
 * without a rebuild:
 *
 *   {"2019": {"holidays": ["2019-01-01", ...], "workdays": ["2019-02-02", ...]}, ...}
 *
 * The covered years are the year keys present. Outside them only weekends are rest
 * days; every query reports that through its `uncovered` out flag so the caller can
 * warn and log that the answer may be wrong.
 *
 * A loaded calendar is immutable: any number of threads may query it at once.
 *
 *   char err[256];
 *   workday_t *cal = workday_load_default(err, sizeof err);
 *   if (!cal) { log_error("calendar", "err=%s", err); return -1; }
 *   bool uncovered;
 *   date_t due;
 *   if (workday_add(cal, decided, 7, &due, &uncovered) == 0 && uncovered)
 *       log_warn("deadline counted beyond the calendar's years", "due=%s", ...);
 *   workday_destroy(&cal);
 */
#ifndef SX_WORKDAY_H
#define SX_WORKDAY_H

#include <stdbool.h>
#include <stddef.h>

#include "date.h"

typedef struct workday workday_t;

/* The longest span, in calendar days, that workday_add may walk and workday_between may
 * count (about 100 years). Longer requests are refused rather than looped over. */
#define WORKDAY_MAX_SPAN 36525

/* The largest calendar file workday_load reads, in bytes. */
#define WORKDAY_MAX_FILE (4 * 1024 * 1024)

/* Reads and validates the calendar file at path. Returns a new calendar (the caller
 * owns it: workday_destroy), or NULL with the reason written into err (NUL-terminated,
 * truncated to errlen; err may be NULL when errlen is 0). The reason starts with the
 * path and names the entry at fault, e.g.
 *   "cal.json: 2024.holidays[3]: no such date \"2024-02-30\""
 * Refused: unreadable or oversized files, malformed JSON (with line and column), a top
 * level that is not a non-empty object, a year key that is not 4 digits, a year that is
 * not an object with exactly the arrays "holidays" and "workdays", an entry that is not
 * a "YYYY-MM-DD" string of a real date inside its year, a date listed twice, a date in
 * both lists, an adjusted workday that is not a Saturday or Sunday, covered years more
 * than 1000 years apart. */
workday_t *workday_load(const char *path, char *err, size_t errlen);

/* As workday_load, from text in memory (len bytes; NUL not needed). name stands for
 * the path at the start of error messages. */
workday_t *workday_parse(const char *text, size_t len, const char *name, char *err, size_t errlen);

/* Loads the calendar a service or tool should use: the file named by the environment
 * variable SX_CALENDAR when it is set and non-empty; otherwise the first of
 * schemas/calendar/cn-workdays.json found in the directory of the running binary or up
 * to four directories above it (a build tree inside the repository), then
 * /usr/share/sanxiang/calendar/cn-workdays.json. Errors as workday_load; when no file is
 * found, err lists where it looked. */
workday_t *workday_load_default(char *err, size_t errlen);

/* Frees the calendar and sets *self_p to NULL. Idempotent; *self_p may be NULL. */
void workday_destroy(workday_t **self_p);

/* True when the calendar lists the year (a year key was present in the file). */
bool workday_covers_year(const workday_t *self, int year);

/* The first and last covered years, for messages ("covers 2019-2026"). Years between
 * them may be missing from the file: use workday_covers_year to ask about one. */
void workday_years(const workday_t *self, int *first, int *last);

/* True when day is a workday. When uncovered is not NULL it is set to whether day lies
 * outside the covered years (the answer then only knows weekends). */
bool workday_is(const workday_t *self, date_t day, bool *uncovered);

/* The n-th working day after start (n > 0), counting from the day after start, as
 * Chinese procedural law counts periods (期间开始之日不计算在内). n = 0 gives start
 * itself, workday or not. n < 0 counts back: the |n|-th working day before start.
 * On success writes *out and returns 0. Returns -1 and leaves *out unchanged when the
 * walk would exceed WORKDAY_MAX_SPAN days or leave years 1..9999.
 * uncovered (may be NULL) is always written: true when any day the walk looked at
 * (start excluded, the result included) lies outside the covered years. */
int workday_add(const workday_t *self, date_t start, int n, date_t *out, bool *uncovered);

/* The signed number of workdays passed when stepping day by day from a to b: for
 * a <= b the workdays in (a, b]; for b < a, minus the workdays in [b, a). So
 * workday_between(a, workday_add(a, n)) == n for every n. On success writes *out and
 * returns 0; returns -1 and leaves *out unchanged when |b - a| > WORKDAY_MAX_SPAN.
 * uncovered (may be NULL) is always written: true when any counted day lies outside the
 * covered years. */
int workday_between(const workday_t *self, date_t a, date_t b, int *out, bool *uncovered);

#endif
