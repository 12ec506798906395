/* log: logfmt lines that a hostile value cannot split or forge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static size_t
s_fmt(char *buf, size_t size, log_level_t level, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_format(buf, size, level, msg, fmt, ap);
    va_end(ap);
    return n;
}

/* The line without its "ts=... " prefix, which changes every call. */
static const char *
s_after_ts(const char *line)
{
    const char *p = strstr(line, " level=");
    assert_non_null(p);
    return p + 1;
}

static void
test_line_shape(void **state)
{
    (void)state;
    log_init("broker", LOG_INFO);
    char line[512];
    s_fmt(line, sizeof line, LOG_INFO, "relay started", "stream=%s seq=%" PRIu64 " n=%d", "intake",
          (uint64_t)42, -3);
    assert_memory_equal(line, "ts=", 3);
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(line[3 + 23], 'Z');
    assert_string_equal(s_after_ts(line),
                        "level=info svc=broker msg=\"relay started\" stream=intake seq=42 n=-3\n");
}

static void
test_hostile_values_escaped(void **state)
{
    (void)state;
    log_init("intake", LOG_DEBUG);
    char line[512];
    s_fmt(line, sizeof line, LOG_WARN, "bad request", "rid=%s who=%s",
          "x\nts=2020 level=error msg=forged", "a=b \"q\" \\ \x01");
    assert_string_equal(s_after_ts(line), "level=warn svc=intake msg=\"bad request\" "
                                          "rid=\"x\\nts=2020 level=error msg=forged\" "
                                          "who=\"a=b \\\"q\\\" \\\\ \\x01\"\n");
    /* Exactly one newline, at the end. */
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

static void
test_empty_null_and_utf8_values(void **state)
{
    (void)state;
    log_init("publication", LOG_DEBUG);
    char line[512];
    s_fmt(line, sizeof line, LOG_INFO, "published", "name=%s empty=%s none=%s", "张三", "",
          (const char *)NULL);
    assert_string_equal(s_after_ts(line), "level=info svc=publication msg=published "
                                          "name=张三 empty=\"\" none=(null)\n");
}

static void
test_counted_string_and_numbers(void **state)
{
    (void)state;
    log_init("x", LOG_DEBUG);
    char line[512];
    s_fmt(line, sizeof line, LOG_ERROR, "m", "topic=%.*s size=%zu hex=%x ratio=%g pct=%%", 5,
          "case.decided", (size_t)70000, 255u, 0.5);
    assert_string_equal(s_after_ts(line),
                        "level=error svc=x msg=m topic=case. size=70000 hex=ff ratio=0.5 pct=%\n");
}

static void
test_truncated_line_still_ends_with_newline(void **state)
{
    (void)state;
    char line[64];
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    size_t n = s_fmt(line, sizeof line, LOG_INFO, "m", "v=%s", big);
    assert_int_equal(n, strlen(line));
    assert_true(n < sizeof line);
    assert_int_equal(line[n - 1], '\n');
}

static void
test_level_parse(void **state)
{
    (void)state;
    log_level_t l = LOG_INFO;
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("WARNING", &l), -1);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse(NULL, &l), -1);
}

/* What actually reaches stderr: the level filter and one line per call. */
static void
test_stderr_filtering(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    log_init("review", LOG_WARN);
    log_info("hidden", "k=%d", 1);
    log_warn("shown", "k=%d", 2);
    log_error("also shown", NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "hidden"));
    const char *first = strstr(buf, "level=warn svc=review msg=shown k=2\n");
    assert_non_null(first);
    assert_non_null(strstr(first, "level=error svc=review msg=\"also shown\"\n"));
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_shape),
        cmocka_unit_test(test_hostile_values_escaped),
        cmocka_unit_test(test_empty_null_and_utf8_values),
        cmocka_unit_test(test_counted_string_and_numbers),
        cmocka_unit_test(test_truncated_line_still_ends_with_newline),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_stderr_filtering),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
