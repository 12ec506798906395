/* sxctl workday: working days by the official calendar (common/workday). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "sxctl.h"
#include "workday.h"

#define S_VERB "workday"

static int s_run(int argc, char **argv);

const sxctl_verb_t sxctl_verb_workday = {
    .name = S_VERB,
    .summary = "working days by the official calendar (工作日历): add, is, between",
    .help = "usage: sxctl workday [--calendar PATH] add DATE N\n"
            "       sxctl workday [--calendar PATH] is DATE\n"
            "       sxctl workday [--calendar PATH] between A B\n"
            "\n"
            "Working days by the official calendar: Monday to Friday except the listed\n"
            "holidays (法定节假日), plus the listed adjusted workdays (调休上班).\n"
            "\n"
            "  add DATE N     prints the N-th working day after DATE. The start day is not\n"
            "                 counted (期间开始之日不计算在内): add 2019-09-27 7 is 2019-10-12.\n"
            "                 N = 0 prints DATE; N < 0 counts back.\n"
            "  is DATE        prints \"workday\" or \"rest day\".\n"
            "  between A B    prints the number of workdays after A up to and including B\n"
            "                 (negative when B is before A), so between A (add A N) is N.\n"
            "\n"
            "Dates are YYYY-MM-DD; spans are limited to 36525 days.\n"
            "\n"
            "The calendar: --calendar PATH, else $SX_CALENDAR, else\n"
            "schemas/calendar/cn-workdays.json in or above the binary's directory, else\n"
            "/usr/share/sanxiang/calendar/cn-workdays.json. Outside the years it lists only\n"
            "weekends are rest days: the answer is still printed, with a warning on stderr.\n"
            "\n"
            "exit status: 0 answer printed, 1 the calendar could not be loaded,\n"
            "2 usage error (unknown form, bad date or number, span too long).\n",
    .run = s_run,
};

static int
s_date(const char *what, const char *arg, date_t *out)
{
    const char *why;
    if (date_parse(arg, strlen(arg), out, &why) == 0)
        return 0;
    if (strcmp(why, "no such date") == 0)
        return sxctl_usage(S_VERB, "%s: no such date '%s'", what, arg);
    return sxctl_usage(S_VERB, "%s: expected a date YYYY-MM-DD, got '%s'", what, arg);
}

static int
s_count(const char *what, const char *arg, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == ' ' || arg[0] == '+' || v < -WORKDAY_MAX_SPAN ||
        v > WORKDAY_MAX_SPAN)
        return sxctl_usage(S_VERB, "%s: expected an integer from %d to %d, got '%s'", what,
                           -WORKDAY_MAX_SPAN, WORKDAY_MAX_SPAN, arg);
    *out = (int)v;
    return 0;
}

static void
s_warn_uncovered(const workday_t *cal)
{
    int first, last;
    workday_years(cal, &first, &last);
    sxctl_warn(S_VERB,
               "the calendar covers %d-%d; outside its years only weekends were counted as "
               "rest days",
               first, last);
}

static int
s_run(int argc, char **argv)
{
    const char *calendar = NULL;
    char *pos[4];
    int npos = 0;
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
        } else if (options && strcmp(a, "--calendar") == 0) {
            if (i + 1 == argc)
                return sxctl_usage(S_VERB, "--calendar needs a PATH");
            calendar = argv[++i];
        } else if (options && strncmp(a, "--calendar=", 11) == 0) {
            calendar = a + 11;
        } else if (options && strncmp(a, "--", 2) == 0) {
            return sxctl_usage(S_VERB, "unknown option '%s'", a);
        } else if (npos == 4) {
            return sxctl_usage(S_VERB, "too many arguments");
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos == 0)
        return sxctl_usage(S_VERB, "expected add, is or between");

    /* Arguments first, so a usage error never depends on the calendar file. */
    const char *form = pos[0];
    date_t a = 0, b = 0;
    int n = 0;
    if (strcmp(form, "add") == 0) {
        if (npos != 3)
            return sxctl_usage(S_VERB, "usage: add DATE N");
        if (s_date("DATE", pos[1], &a) || s_count("N", pos[2], &n))
            return SXCTL_USAGE;
    } else if (strcmp(form, "is") == 0) {
        if (npos != 2)
            return sxctl_usage(S_VERB, "usage: is DATE");
        if (s_date("DATE", pos[1], &a))
            return SXCTL_USAGE;
    } else if (strcmp(form, "between") == 0) {
        if (npos != 3)
            return sxctl_usage(S_VERB, "usage: between A B");
        if (s_date("A", pos[1], &a) || s_date("B", pos[2], &b))
            return SXCTL_USAGE;
        if (b - a > WORKDAY_MAX_SPAN || a - b > WORKDAY_MAX_SPAN)
            return sxctl_usage(S_VERB, "A and B are more than %d days apart", WORKDAY_MAX_SPAN);
    } else {
        return sxctl_usage(S_VERB, "unknown form '%s' (expected add, is or between)", form);
    }

    char err[512];
    workday_t *cal =
        calendar ? workday_load(calendar, err, sizeof err) : workday_load_default(err, sizeof err);
    if (!cal)
        return sxctl_fail(S_VERB, "%s", err);

    int rc = SXCTL_OK;
    bool uncovered = false;
    if (form[0] == 'a') {
        date_t due;
        if (workday_add(cal, a, n, &due, &uncovered) == 0) {
            char buf[11];
            printf("%s\n", date_format(due, buf));
        } else {
            rc =
                sxctl_usage(S_VERB, "%d working days from %s leave the supported range", n, pos[1]);
        }
    } else if (form[0] == 'i') {
        printf("%s\n", workday_is(cal, a, &uncovered) ? "workday" : "rest day");
    } else {
        int count;
        if (workday_between(cal, a, b, &count, &uncovered) == 0)
            printf("%d\n", count);
        else
            rc = sxctl_usage(S_VERB, "A and B are too far apart");
    }
    if (rc == SXCTL_OK && uncovered)
        s_warn_uncovered(cal);
    workday_destroy(&cal);
    return rc;
}
