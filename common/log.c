#include "log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

/* The logger's settings: written once by log_init in main, before threads start, and
 * read-only afterwards (the process's one piece of logging state). */
static struct {
    char svc[32];
    log_level_t level;
} s_log = {"-", LOG_INFO};

static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *svc, log_level_t level)
{
    snprintf(s_log.svc, sizeof s_log.svc, "%s", svc && *svc ? svc : "-");
    s_log.level = level;
}

int
log_level_parse(const char *name, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, s_level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* A bounded writer: appends never overflow, and the last byte is kept for '\n'. */
typedef struct {
    char *buf;
    size_t size; /* capacity, including room for "\n\0" */
    size_t len;
} s_out_t;

static void
s_putc(s_out_t *o, char c)
{
    if (o->len + 2 < o->size)
        o->buf[o->len++] = c;
}

static void
s_puts(s_out_t *o, const char *s)
{
    while (*s)
        s_putc(o, *s++);
}

static void s_printf(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
s_printf(s_out_t *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    s_puts(o, tmp);
}

/* Writes a value so that it reads back as exactly one logfmt value: bare when it is
 * non-empty and holds only printable bytes other than space, '=', '"' and '\';
 * otherwise quoted, with '"' and '\' escaped and control bytes as \n, \t, \r or \xNN.
 * Bytes >= 0x80 (UTF-8 text, Chinese names) pass through unchanged. */
static void
s_put_value(s_out_t *o, const char *v)
{
    if (!v)
        v = "(null)";
    bool bare = *v != '\0';
    for (const unsigned char *p = (const unsigned char *)v; *p && bare; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p == 0x7f)
            bare = false;
    if (bare) {
        s_puts(o, v);
        return;
    }
    s_putc(o, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '"':
            s_puts(o, "\\\"");
            break;
        case '\\':
            s_puts(o, "\\\\");
            break;
        case '\n':
            s_puts(o, "\\n");
            break;
        case '\r':
            s_puts(o, "\\r");
            break;
        case '\t':
            s_puts(o, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                s_printf(o, "\\x%02x", *p);
            else
                s_putc(o, (char)*p);
        }
    }
    s_putc(o, '"');
}

/* Reads one conversion at *fmtp (just past the '%'), consumes its argument from ap and
 * writes it. Values of %s are escaped; numbers cannot hold anything to escape. */
static bool
s_put_conversion(s_out_t *o, const char **fmtp, va_list *ap)
{
    const char *f = *fmtp;
    if (f[0] == '.' && f[1] == '*' && f[2] == 's') {
        /* %.*s: a counted string, such as one taken straight from a message. */
        int n = va_arg(*ap, int);
        const char *s = va_arg(*ap, const char *);
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%.*s", n < 0 ? 0 : n, s ? s : "(null)");
        s_put_value(o, tmp);
        *fmtp = f + 3;
        return true;
    }
    int longs = 0;
    bool size_t_arg = false;
    while (*f == 'l') {
        longs++;
        f++;
    }
    if (*f == 'z') {
        size_t_arg = true;
        f++;
    }
    char conv = *f;
    if (conv)
        f++;
    *fmtp = f;

    switch (conv) {
    case 's':
        s_put_value(o, va_arg(*ap, const char *));
        break;
    case 'c':
        s_put_value(o, (char[]){(char)va_arg(*ap, int), '\0'});
        break;
    case 'd':
    case 'i':
        if (size_t_arg)
            s_printf(o, "%zd", va_arg(*ap, ssize_t));
        else if (longs >= 2)
            s_printf(o, "%lld", va_arg(*ap, long long));
        else if (longs == 1)
            s_printf(o, "%ld", va_arg(*ap, long));
        else
            s_printf(o, "%d", va_arg(*ap, int));
        break;
    case 'u':
    case 'x':
        if (size_t_arg)
            s_printf(o, conv == 'u' ? "%zu" : "%zx", va_arg(*ap, size_t));
        else if (longs >= 2)
            s_printf(o, conv == 'u' ? "%llu" : "%llx", va_arg(*ap, unsigned long long));
        else if (longs == 1)
            s_printf(o, conv == 'u' ? "%lu" : "%lx", va_arg(*ap, unsigned long));
        else
            s_printf(o, conv == 'u' ? "%u" : "%x", va_arg(*ap, unsigned));
        break;
    case 'g':
    case 'f':
        s_printf(o, conv == 'g' ? "%g" : "%f", va_arg(*ap, double));
        break;
    case '%':
        s_putc(o, '%');
        break;
    default:
        /* Unknown conversion: its argument type is unknown too, so nothing more can be
         * read safely from ap. Mark it and stop consuming arguments. */
        s_putc(o, '?');
        return false;
    }
    return true;
}

size_t
log_format(char *buf, size_t size, log_level_t level, const char *msg, const char *fmt, va_list ap)
{
    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return 0;
    }
    s_out_t o = {buf, size, 0};

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    s_printf(&o, "ts=%s.%03ldZ level=%s svc=", when, ts.tv_nsec / 1000000,
             s_level_names[level >= LOG_DEBUG && level <= LOG_ERROR ? level : LOG_ERROR]);
    s_put_value(&o, s_log.svc);
    s_puts(&o, " msg=");
    s_put_value(&o, msg);

    if (fmt && *fmt) {
        va_list aq;
        va_copy(aq, ap);
        s_putc(&o, ' ');
        for (const char *f = fmt; *f;) {
            if (*f == '%') {
                f++;
                if (!s_put_conversion(&o, &f, &aq))
                    break;
            } else {
                /* Literal text is the programmer's, but a newline in it would still
                 * split the line: keep the one-line promise regardless. */
                s_putc(&o, *f == '\n' || *f == '\r' ? ' ' : *f);
                f++;
            }
        }
        va_end(aq);
    }
    o.buf[o.len++] = '\n';
    o.buf[o.len] = '\0';
    return o.len;
}

void
log_vwrite(log_level_t level, const char *msg, const char *fmt, va_list ap)
{
    if (level < s_log.level)
        return;
    char line[LOG_LINE_MAX];
    size_t n = log_format(line, sizeof line, level, msg, fmt, ap);
    /* One write: lines from several threads or processes sharing stderr stay whole. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void
log_write(log_level_t level, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, msg, fmt, ap);
    va_end(ap);
}
