/* The test harness itself: servers answer while the command runs, and are stopped by PID
 * however it ends (success, failure, SIGTERM, Ctrl-C), leaving no temp dir behind. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tsupport.h"

static char s_harness[1024];

static bool
s_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool open = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return open;
}

/* What the inner command reports: "ready PGPORT REDISURL TMP". */
typedef struct {
    int pg_port, redis_port;
    char tmp[256];
} s_inner_t;

static void
s_parse_ready(const char *line, s_inner_t *in)
{
    char redis[128];
    if (sscanf(line, "ready %d %127s %255s", &in->pg_port, redis, in->tmp) != 3)
        fail_msg("inner command said: %s", line);
    const char *colon = strrchr(redis, ':');
    assert_non_null(colon);
    in->redis_port = atoi(colon + 1);
}

static const char s_script[] =
    "echo ready $SX_PG_PORT $SX_REDIS_URL $SX_TMP; "
    "psql -qtA -h 127.0.0.1 -p $SX_PG_PORT -U sx -d sx -c 'select 40+2' || exit 9; "
    "redis-cli -u $SX_REDIS_URL ping || exit 9; ";

static void
test_servers_answer_and_stop_after_failure(void **state)
{
    (void)state;
    char script[1024];
    snprintf(script, sizeof script, "%s exit 3", s_script);
    const char *argv[] = {s_harness, "sh", "-c", script, NULL};
    char out[4096], err[8192];
    int rc = ts_run(argv, NULL, out, sizeof out, err, sizeof err);
    /* The command's own status comes back: a failing test fails the run. */
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "\n42\nPONG\n"));
    s_inner_t in;
    s_parse_ready(out, &in);
    assert_false(s_port_open(in.pg_port));
    assert_false(s_port_open(in.redis_port));
    struct stat st;
    assert_int_equal(stat(in.tmp, &st), -1);
}

static void
test_success_status(void **state)
{
    (void)state;
    const char *argv[] = {s_harness, "sh", "-c", "test -n \"$SX_PG_URL\" && exit 0", NULL};
    char out[1024], err[8192];
    assert_int_equal(ts_run(argv, NULL, out, sizeof out, err, sizeof err), 0);
}

/* Starts the harness around a long sleep, waits for "ready", sends sig to the harness
 * (or to its whole process group, as Ctrl-C does), and checks both servers are gone. */
static void
s_interrupt(int sig, bool whole_group)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        /* A shell's background job starts with SIGINT ignored, and this test may be
         * one: restore it, as a terminal's foreground job has it. */
        signal(SIGINT, SIG_DFL);
        dup2(p[1], 1);
        close(p[0]);
        char script[1024];
        snprintf(script, sizeof script, "%s sleep 60", s_script);
        execl(s_harness, s_harness, "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    s_inner_t in;
    s_parse_ready(line, &in);
    char rest[64];
    assert_non_null(fgets(rest, sizeof rest, f)); /* 42 */
    assert_non_null(fgets(rest, sizeof rest, f)); /* PONG */
    assert_true(s_port_open(in.pg_port));
    assert_true(s_port_open(in.redis_port));

    assert_int_equal(kill(whole_group ? -pid : pid, sig), 0);
    int status = 0;
    for (int i = 0; i < 300; i++) { /* 30 s at most */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    fclose(f);
    assert_true(WIFEXITED(status) || WIFSIGNALED(status));
    assert_false(s_port_open(in.pg_port));
    assert_false(s_port_open(in.redis_port));
    struct stat st;
    assert_int_equal(stat(in.tmp, &st), -1);
}

static void
test_sigterm_stops_servers(void **state)
{
    (void)state;
    s_interrupt(SIGTERM, false);
}

static void
test_ctrl_c_stops_servers(void **state)
{
    (void)state;
    s_interrupt(SIGINT, true);
}

int
main(void)
{
    snprintf(s_harness, sizeof s_harness, "%s/tests/harness/with-servers", ts_env("SX_TOP"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers_answer_and_stop_after_failure),
        cmocka_unit_test(test_success_status),
        cmocka_unit_test(test_sigterm_stops_servers),
        cmocka_unit_test(test_ctrl_c_stops_servers),
    };
    return cmocka_run_group_tests_name("harness", tests, NULL, NULL);
}
