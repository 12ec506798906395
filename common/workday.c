#include "workday.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

/* One byte a day over the covered range, from Jan 1 of the first covered year to Dec 31
 * of the last: the answer is a table look-up, and the table is never written after load. */
enum {
    S_COVERED = 1,  /* the day's year is in the file */
    S_WORK = 2,     /* the day is a workday */
    S_HOLIDAY = 4,  /* listed in "holidays" (only used while loading) */
    S_ADJUSTED = 8, /* listed in "workdays" (only used while loading) */
};

#define S_MAX_YEARS 1000

struct workday {
    int first_year; /* the smallest year key */
    int last_year;  /* the largest year key */
    date_t first;   /* day number of first_year-01-01, the first byte of days */
    date_t last;    /* day number of last_year-12-31, the last byte of days */
    uint8_t *days;  /* last - first + 1 bytes of S_* flags */
};

static void s_err(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
s_err(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    int n = snprintf(err, errlen, "%s: ", name ? name : "calendar");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Copies s into buf as a quoted, printable string (at most 40 bytes of it; bytes outside
 * printable ASCII as \xNN), so an entry can be named in a message without letting hostile
 * bytes through. */
static const char *
s_quote(const char *s, char *buf, size_t size)
{
    size_t o = 0, i = 0;
    buf[o++] = '"';
    for (; s[i] && i < 40 && o + 6 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    }
    if (s[i] && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static bool
s_year_key(const char *key, int *year)
{
    if (strlen(key) != 4)
        return false;
    int y = 0;
    for (int i = 0; i < 4; i++) {
        if (key[i] < '0' || key[i] > '9')
            return false;
        y = y * 10 + (key[i] - '0');
    }
    if (y < 1)
        return false;
    *year = y;
    return true;
}

static bool
s_weekend(date_t day)
{
    return date_weekday(day) >= 6;
}

/* Checks one year's value: an object with exactly the arrays "holidays" and "workdays"
 * whose entries are real dates in that year (adjusted workdays on a weekend). */
static int
s_check_year(const char *name, const char *key, int year, json_t *value, char *err, size_t errlen)
{
    static const char *const lists[] = {"holidays", "workdays"};
    if (!json_is_object(value)) {
        s_err(err, errlen, name, "%s: expected an object with \"holidays\" and \"workdays\"", key);
        return -1;
    }
    const char *k;
    json_t *v;
    char q[64];
    json_object_foreach(value, k, v)
    {
        if (strcmp(k, "holidays") != 0 && strcmp(k, "workdays") != 0) {
            s_err(err, errlen, name,
                  "%s: unknown key %s (a year holds only \"holidays\" and \"workdays\")", key,
                  s_quote(k, q, sizeof q));
            return -1;
        }
    }
    for (int l = 0; l < 2; l++) {
        json_t *arr = json_object_get(value, lists[l]);
        if (!arr) {
            s_err(err, errlen, name, "%s.%s: missing (use [] when there are none)", key, lists[l]);
            return -1;
        }
        if (!json_is_array(arr)) {
            s_err(err, errlen, name, "%s.%s: expected an array of \"YYYY-MM-DD\" strings", key,
                  lists[l]);
            return -1;
        }
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            if (!json_is_string(e)) {
                s_err(err, errlen, name, "%s.%s[%zu]: expected a \"YYYY-MM-DD\" string", key,
                      lists[l], i);
                return -1;
            }
            const char *s = json_string_value(e);
            date_t day;
            const char *why;
            if (date_parse(s, json_string_length(e), &day, &why) != 0) {
                if (strcmp(why, "no such date") == 0)
                    s_err(err, errlen, name, "%s.%s[%zu]: no such date %s", key, lists[l], i,
                          s_quote(s, q, sizeof q));
                else
                    s_err(err, errlen, name, "%s.%s[%zu]: expected YYYY-MM-DD, got %s", key,
                          lists[l], i, s_quote(s, q, sizeof q));
                return -1;
            }
            int y, m, d;
            date_to_ymd(day, &y, &m, &d);
            if (y != year) {
                s_err(err, errlen, name, "%s.%s[%zu]: %s is not in %s", key, lists[l], i,
                      s_quote(s, q, sizeof q), key);
                return -1;
            }
            if (l == 1 && !s_weekend(day)) {
                s_err(err, errlen, name,
                      "%s.%s[%zu]: %s is a weekday; an adjusted workday (调休上班) is a "
                      "Saturday or Sunday",
                      key, lists[l], i, s_quote(s, q, sizeof q));
                return -1;
            }
        }
    }
    return 0;
}

/* Marks one year's days in self->days; refuses a date listed twice or in both lists. */
static int
s_fill_year(workday_t *self, const char *name, const char *key, int year, json_t *value, char *err,
            size_t errlen)
{
    date_t jan1 = date_from_ymd(year, 1, 1), dec31 = date_from_ymd(year, 12, 31);
    for (date_t d = jan1; d <= dec31; d++)
        self->days[d - self->first] = (uint8_t)(S_COVERED | (s_weekend(d) ? 0 : S_WORK));

    static const char *const lists[] = {"holidays", "workdays"};
    char q[64];
    for (int l = 0; l < 2; l++) {
        json_t *arr = json_object_get(value, lists[l]);
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            date_t day;
            date_parse(json_string_value(e), json_string_length(e), &day, NULL);
            uint8_t *b = &self->days[day - self->first];
            const char *s = json_string_value(e);
            if (*b & (l == 0 ? S_HOLIDAY : S_ADJUSTED)) {
                s_err(err, errlen, name, "%s.%s[%zu]: %s is listed twice", key, lists[l], i,
                      s_quote(s, q, sizeof q));
                return -1;
            }
            if (l == 1 && (*b & S_HOLIDAY)) {
                s_err(err, errlen, name,
                      "%s.%s[%zu]: %s is also in %s.holidays; a day is either a holiday or a "
                      "workday",
                      key, lists[l], i, s_quote(s, q, sizeof q), key);
                return -1;
            }
            if (l == 0)
                *b = (uint8_t)((*b & ~S_WORK) | S_HOLIDAY);
            else
                *b = (uint8_t)(*b | S_WORK | S_ADJUSTED);
        }
    }
    return 0;
}

workday_t *
workday_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s_err(err, errlen, name, "line %d column %d: invalid JSON: %s", jerr.line, jerr.column,
              jerr.text);
        return NULL;
    }
    workday_t *self = NULL;
    if (!json_is_object(root) || json_object_size(root) == 0) {
        s_err(err, errlen, name,
              "expected an object of years: {\"2019\": {\"holidays\": [...], \"workdays\": "
              "[...]}, ...}");
        goto fail;
    }

    int first = INT_MAX, last = INT_MIN;
    const char *key;
    json_t *value;
    char q[64];
    json_object_foreach(root, key, value)
    {
        int year;
        if (!s_year_key(key, &year)) {
            s_err(err, errlen, name, "year key %s: expected 4 digits, e.g. \"2019\"",
                  s_quote(key, q, sizeof q));
            goto fail;
        }
        if (s_check_year(name, key, year, value, err, errlen) != 0)
            goto fail;
        first = year < first ? year : first;
        last = year > last ? year : last;
    }
    if (last - first >= S_MAX_YEARS) {
        s_err(err, errlen, name, "years %d and %d are more than %d years apart", first, last,
              S_MAX_YEARS);
        goto fail;
    }

    self = calloc(1, sizeof *self);
    if (!self) {
        s_err(err, errlen, name, "out of memory");
        goto fail;
    }
    self->first_year = first;
    self->last_year = last;
    self->first = date_from_ymd(first, 1, 1);
    self->last = date_from_ymd(last, 12, 31);
    /* calloc: days of years missing between first and last stay 0, i.e. uncovered. */
    self->days = calloc((size_t)(self->last - self->first + 1), 1);
    if (!self->days) {
        s_err(err, errlen, name, "out of memory");
        goto fail;
    }
    json_object_foreach(root, key, value)
    {
        int year = 0;
        s_year_key(key, &year); /* checked above */
        if (s_fill_year(self, name, key, year, value, err, errlen) != 0)
            goto fail;
    }
    json_decref(root);
    return self;

fail:
    workday_destroy(&self);
    json_decref(root);
    return NULL;
}

workday_t *
workday_load(const char *path, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_err(err, errlen, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc((size_t)WORKDAY_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        s_err(err, errlen, path, "out of memory");
        return NULL;
    }
    size_t len = fread(buf, 1, (size_t)WORKDAY_MAX_FILE + 1, f);
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    workday_t *self = NULL;
    if (failed)
        s_err(err, errlen, path, "cannot read: %s", strerror(saved));
    else if (len > (size_t)WORKDAY_MAX_FILE)
        s_err(err, errlen, path, "larger than %d bytes", WORKDAY_MAX_FILE);
    else
        self = workday_parse(buf, len, path, err, errlen);
    free(buf);
    return self;
}

#define S_CALENDAR_REL "schemas/calendar/cn-workdays.json"
#define S_CALENDAR_SYS "/usr/share/sanxiang/calendar/cn-workdays.json"

workday_t *
workday_load_default(char *err, size_t errlen)
{
    const char *env = getenv("SX_CALENDAR");
    if (env && *env)
        return workday_load(env, err, errlen);

    char dir[4096];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n > 0) {
        dir[n] = '\0';
        char *slash = strrchr(dir, '/');
        /* The binary's own directory, then up to four parents: build/bin/, build/h/bin/. */
        for (int up = 0; slash && up <= 4; up++) {
            *slash = '\0';
            char path[4096 + sizeof S_CALENDAR_REL + 1];
            snprintf(path, sizeof path, "%s/%s", dir, S_CALENDAR_REL);
            if (access(path, R_OK) == 0)
                return workday_load(path, err, errlen);
            slash = strrchr(dir, '/');
        }
    }
    if (access(S_CALENDAR_SYS, R_OK) == 0)
        return workday_load(S_CALENDAR_SYS, err, errlen);
    s_err(err, errlen, "calendar",
          "not found: SX_CALENDAR is not set, no " S_CALENDAR_REL
          " above the binary's directory, no " S_CALENDAR_SYS);
    return NULL;
}

void
workday_destroy(workday_t **self_p)
{
    if (self_p && *self_p) {
        workday_t *self = *self_p;
        free(self->days);
        free(self);
        *self_p = NULL;
    }
}

bool
workday_covers_year(const workday_t *self, int year)
{
    if (year < self->first_year || year > self->last_year)
        return false;
    return self->days[date_from_ymd(year, 1, 1) - self->first] & S_COVERED;
}

void
workday_years(const workday_t *self, int *first, int *last)
{
    *first = self->first_year;
    *last = self->last_year;
}

/* The day's flags: the table inside the covered range, the weekend rule outside. */
static uint8_t
s_flags(const workday_t *self, date_t day)
{
    if (day >= self->first && day <= self->last && (self->days[day - self->first] & S_COVERED))
        return self->days[day - self->first];
    return s_weekend(day) ? 0 : S_WORK;
}

bool
workday_is(const workday_t *self, date_t day, bool *uncovered)
{
    uint8_t f = s_flags(self, day);
    if (uncovered)
        *uncovered = !(f & S_COVERED);
    return f & S_WORK;
}

/* Days a walk may reach: years 1..9999, where date.h's conversions are exact. */
#define S_DAY_MIN (-719162) /* 0001-01-01 */
#define S_DAY_MAX 2932896   /* 9999-12-31 */

int
workday_add(const workday_t *self, date_t start, int n, date_t *out, bool *uncovered)
{
    bool unc = false;
    if (uncovered)
        *uncovered = false;
    if (start < S_DAY_MIN || start > S_DAY_MAX || n > WORKDAY_MAX_SPAN || n < -WORKDAY_MAX_SPAN)
        return -1;
    int step = n < 0 ? -1 : 1, left = n < 0 ? -n : n;
    date_t day = start;
    for (int walked = 0; left > 0; walked++) {
        if (walked == WORKDAY_MAX_SPAN)
            return -1;
        day += step;
        if (day < S_DAY_MIN || day > S_DAY_MAX)
            return -1;
        uint8_t f = s_flags(self, day);
        unc |= !(f & S_COVERED);
        if (f & S_WORK)
            left--;
    }
    *out = day;
    if (uncovered)
        *uncovered = unc;
    return 0;
}

int
workday_between(const workday_t *self, date_t a, date_t b, int *out, bool *uncovered)
{
    if (uncovered)
        *uncovered = false;
    if (a < S_DAY_MIN || a > S_DAY_MAX || b < S_DAY_MIN || b > S_DAY_MAX)
        return -1;
    if ((int64_t)b - a > WORKDAY_MAX_SPAN || (int64_t)a - b > WORKDAY_MAX_SPAN)
        return -1;
    /* Forward: the days a+1..b; backward: b..a-1, counted negative. */
    date_t lo = a < b ? a + 1 : b, hi = a < b ? b : a - 1;
    int count = 0;
    bool unc = false;
    for (date_t d = lo; d <= hi; d++) {
        uint8_t f = s_flags(self, d);
        unc |= !(f & S_COVERED);
        count += (f & S_WORK) != 0;
    }
    *out = a <= b ? count : -count;
    if (uncovered)
        *uncovered = unc;
    return 0;
}
