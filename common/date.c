#include "date.h"

/* Day-number conversions after Howard Hinnant's "chrono-compatible low-level date
 * algorithms": exact for the whole proleptic Gregorian calendar, no tables. */
date_t
date_from_ymd(int y, int m, int d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (unsigned)(m > 2 ? m - 3 : m + 9) + 2) / 5 + (unsigned)d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (date_t)(era * 146097 + (int)doe - 719468);
}

void
date_to_ymd(date_t day, int *y, int *m, int *d)
{
    const int z = day + 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned dd = doy - (153 * mp + 2) / 5 + 1;
    const unsigned mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)yoe + era * 400 + (mm <= 2);
    *m = (int)mm;
    *d = (int)dd;
}

bool
date_valid(int y, int m, int d)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    int max = days[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

static int
s_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int
date_parse(const char *s, size_t len, date_t *out, const char **why)
{
    const char *reason = "expected YYYY-MM-DD";
    if (len == 10 && s[4] == '-' && s[7] == '-') {
        int y = s_digits(s, 4), m = s_digits(s + 5, 2), d = s_digits(s + 8, 2);
        if (y >= 0 && m >= 0 && d >= 0) {
            if (date_valid(y, m, d)) {
                *out = date_from_ymd(y, m, d);
                return 0;
            }
            reason = "no such date";
        }
    }
    if (why)
        *why = reason;
    return -1;
}

char *
date_format(date_t day, char buf[11])
{
    int y, m, d;
    date_to_ymd(day, &y, &m, &d);
    unsigned uy = (unsigned)y % 10000u, um = (unsigned)m % 100u, ud = (unsigned)d % 100u;
    buf[0] = (char)('0' + uy / 1000);
    buf[1] = (char)('0' + uy / 100 % 10);
    buf[2] = (char)('0' + uy / 10 % 10);
    buf[3] = (char)('0' + uy % 10);
    buf[4] = '-';
    buf[5] = (char)('0' + um / 10);
    buf[6] = (char)('0' + um % 10);
    buf[7] = '-';
    buf[8] = (char)('0' + ud / 10);
    buf[9] = (char)('0' + ud % 10);
    buf[10] = '\0';
    return buf;
}

int
date_weekday(date_t day)
{
    /* 1970-01-01 was a Thursday (4). */
    int w = (int)((day % 7 + 7 + 3) % 7);
    return w + 1;
}

date_t
date_from_unix_cst(int64_t unix_s)
{
    int64_t local = unix_s + 8 * 3600;
    int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    return (date_t)day;
}
