/* `make run` (deploy/dev-stack) as a user meets it: started with a temp var dir
 * (SX_VAR) and its ports moved to a free range (SX_DEV_PORT_BASE), it must print the
 * portal URL and the commands to try; the portal answers; one printed sxctl command, run
 * as printed from the repository, gets an ok reply holding the example registry's
 * matter; SIGINT (Ctrl-C) stops it with status 0 and leaves none of the processes it
 * printed. Started again on the same var dir it must resume with the data kept: every
 * registry request is answered from its stored reply (intake's replay counter), nothing
 * is created twice (the entries are still at version 1), and Ctrl-C again stops it all.
 *
 * Runs its own PostgreSQL and Redis (dev-stack starts them), not the harness's. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tproc.h"
#include "tsupport.h"

#define OUT_SIZE   (256 * 1024)
#define MAX_PIDS   32
#define START_MS   180000 /* first start: initdb, migrations, the registry */
#define STOP_MS    90000  /* each process gets 10 s after SIGTERM in dev-stack */
#define AGENCY     "11620200013926143G"
#define N_REGISTRY 39 /* lines of deploy/lib/registry/MANIFEST */

typedef struct {
    char *var;     /* SX_VAR */
    char log[700]; /* dev-stack's stdout and stderr */
    int base;      /* SX_DEV_PORT_BASE */
    pid_t pid;     /* dev-stack, while it runs */
    char out[OUT_SIZE];
} fx_t;

/* Whether 127.0.0.1:port can be bound now. */
static bool
s_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A base whose offsets 1..106 (deploy/dev-stack's table) are all free. */
static int
s_pick_base(void)
{
    static const int offs[] = {1,  2,  11,  21,  31,  41,  51,  60, 61,
                               88, 89, 101, 102, 103, 104, 105, 106};
    srand((unsigned)getpid());
    for (int tries = 0; tries < 200; tries++) {
        int base = 20000 + (rand() % 400) * 100;
        bool ok = true;
        for (size_t i = 0; ok && i < sizeof offs / sizeof offs[0]; i++)
            ok = s_port_free(base + offs[i]);
        if (ok)
            return base;
    }
    fail_msg("no free port range for dev-stack");
    return 0;
}

/* Reads dev-stack's output so far into fx->out. */
static void
s_read_out(fx_t *fx)
{
    fx->out[0] = '\0';
    FILE *f = fopen(fx->log, "r");
    if (!f)
        return;
    size_t n = fread(fx->out, 1, OUT_SIZE - 1, f);
    fclose(f);
    fx->out[n] = '\0';
}

/* Starts deploy/dev-stack with SIGINT at its default (as from a terminal: a shell
 * started with SIGINT ignored could not trap it), output appended to fx->log. */
static void
s_start(fx_t *fx)
{
    char script[700], var[700], base[32];
    snprintf(script, sizeof script, "%s/deploy/dev-stack", ts_env("SX_TOP"));
    snprintf(var, sizeof var, "SX_VAR=%s", fx->var);
    snprintf(base, sizeof base, "SX_DEV_PORT_BASE=%d", fx->base);
    (void)ts_env("SX_BIN"); /* dev-stack runs the binaries of $SX_BIN, set by the harness */
    int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        putenv(var);
        putenv(base);
        execl("/bin/bash", "bash", script, (char *)NULL);
        _exit(127);
    }
    close(fd);
    fx->pid = pid;
}

/* Waits until dev-stack prints that it runs; fails with its output if it exits first. */
static void
s_wait_running(fx_t *fx)
{
    int64_t end = tp_now_ms() + START_MS;
    for (;;) {
        s_read_out(fx);
        if (strstr(fx->out, "dev-stack: running; Ctrl-C stops everything"))
            return;
        int status;
        if (waitpid(fx->pid, &status, WNOHANG) == fx->pid) {
            fx->pid = 0;
            fail_msg("dev-stack exited (status %d) before running:\n%s", status, fx->out);
        }
        if (tp_now_ms() > end)
            fail_msg("dev-stack not running after %d ms:\n%s", START_MS, fx->out);
        tp_sleep_ms(200);
    }
}

/* The pids dev-stack printed ("... pid N ..."). */
static int
s_pids(const char *out, pid_t *pids, int max)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, " pid ")) && n < max; p += 5) {
        long v = strtol(p + 5, NULL, 10);
        if (v > 1)
            pids[n++] = (pid_t)v;
    }
    return n;
}

/* Whether pid is gone (no such process, or a zombie left for init to reap). */
static bool
s_gone(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] == 'Z';
}

/* Ctrl-C: SIGINT to dev-stack; it must exit 0 and leave none of the pids it printed. */
static void
s_interrupt(fx_t *fx)
{
    s_read_out(fx);
    pid_t pids[MAX_PIDS];
    int n = s_pids(fx->out, pids, MAX_PIDS);
    assert_true(n >= 9); /* PostgreSQL, Redis, fake-credit, the broker, five services */
    int status = tp_stop(fx->pid, SIGINT, STOP_MS);
    fx->pid = 0;
    s_read_out(fx);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("dev-stack after SIGINT: status %d\n%s", status, fx->out);
    assert_non_null(strstr(fx->out, "dev-stack: stopped"));
    for (int i = 0; i < n; i++) {
        int64_t end = tp_now_ms() + 5000; /* an orphan's exit may still be on its way */
        while (!s_gone(pids[i]) && tp_now_ms() < end)
            tp_sleep_ms(50);
        if (!s_gone(pids[i]))
            fail_msg("pid %d still runs after dev-stack stopped:\n%s", (int)pids[i], fx->out);
    }
}

/* The printed command line ("  $ ...") that contains what. */
static void
s_printed_command(const fx_t *fx, const char *what, char *cmd, size_t size)
{
    for (const char *p = fx->out; (p = strstr(p, "\n  $ ")); p++) {
        const char *start = p + 5, *eol = strchr(start, '\n');
        size_t len = eol ? (size_t)(eol - start) : strlen(start);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)len, start);
        if (strstr(line, what)) {
            snprintf(cmd, size, "%s", line);
            return;
        }
    }
    fail_msg("dev-stack printed no command with %s:\n%s", what, fx->out);
}

/* Runs a printed command from the repository's top, as the README says. */
static int
s_run_printed(const fx_t *fx, const char *what, char *out, size_t size)
{
    char cmd[2048];
    s_printed_command(fx, what, cmd, sizeof cmd);
    static char err[8192];
    char top_cmd[2600];
    snprintf(top_cmd, sizeof top_cmd, "cd '%s' && %s", ts_env("SX_TOP"), cmd);
    const char *argv[] = {"/bin/bash", "-c", top_cmd, NULL};
    int rc = ts_run(argv, NULL, out, size, err, sizeof err);
    if (rc != 0)
        print_message("%s\nexit %d\n%s\n%s\n", cmd, rc, out, err);
    return rc;
}

/* The port in "dev-stack: portal http://127.0.0.1:PORT/...". */
static int
s_portal_port(const fx_t *fx)
{
    const char *p = strstr(fx->out, "dev-stack: portal http://127.0.0.1:");
    assert_non_null(p);
    return atoi(p + strlen("dev-stack: portal http://127.0.0.1:"));
}

/* A Prometheus counter's value from intake's ops port (BASE+102), or -1. */
static long
s_intake_counter(const fx_t *fx, const char *name)
{
    static char body[256 * 1024];
    if (tp_http_get(fx->base + 102, "/metrics", body, sizeof body) != 200)
        return -1;
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(body, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->var = ts_mkdtemp("devstack-var");
    snprintf(fx->log, sizeof fx->log, "%s/dev-stack.out", ts_env("SX_TMP"));
    fx->base = s_pick_base();
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    if (fx->pid > 0)
        tp_stop(fx->pid, SIGTERM, STOP_MS);
    free(fx->var);
    free(fx);
    return 0;
}

static void
test_first_start_serves_and_stops_cleanly(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_wait_running(fx);
    char want[96];
    snprintf(want, sizeof want, "example registry loaded: %d requests ok", N_REGISTRY);
    if (!strstr(fx->out, want))
        fail_msg("expected \"%s\":\n%s", want, fx->out);

    /* The portal, at the printed URL, and its JSON API. */
    static char body[65536];
    int port = s_portal_port(fx);
    assert_int_equal(port, fx->base + 88);
    assert_int_equal(tp_http_get(port, "/", body, sizeof body), 200);
    assert_int_equal(tp_http_get(port, "/api/v1/decisions", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"items\""));
    /* The registry reaches the portal through the bus (publication's own copy). */
    int status = 0;
    for (int64_t end = tp_now_ms() + 30000; tp_now_ms() < end; tp_sleep_ms(200)) {
        status = tp_http_get(port, "/api/v1/agencies/" AGENCY, body, sizeof body);
        if (status == 200 && strstr(body, "620200-SJ-CF-0126"))
            break;
    }
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "嘉峪关市市场监督管理局"));

    /* One printed sxctl command, as printed. */
    static char out[65536];
    assert_int_equal(s_run_printed(fx, "registry.get", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    assert_non_null(strstr(out, "620200-SJ-CF-0126"));

    s_interrupt(fx);
}

static void
test_second_start_keeps_the_data(void **state)
{
    fx_t *fx = *state;
    s_start(fx);
    s_wait_running(fx);
    char want[96];
    snprintf(want, sizeof want, "example registry loaded: %d requests ok", N_REGISTRY);
    if (!strstr(fx->out, want))
        fail_msg("expected \"%s\":\n%s", want, fx->out);
    /* Every registry request was answered from the reply stored at the first start: the
     * database was kept and nothing ran twice. */
    assert_int_equal(s_intake_counter(fx, "sx_intake_rpc_replays_total"), N_REGISTRY);
    static char out[65536];
    assert_int_equal(s_run_printed(fx, "registry.get", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    assert_non_null(strstr(out, "\"key\":\"620200-SJ-CF-0126\",\"version\":1"));
    assert_null(strstr(out, "\"version\":2"));
    /* The heartbeats command (the broker's subscriber side with sxctl's own key). */
    assert_int_equal(s_run_printed(fx, "tail _hb.", out, sizeof out), 0);
    assert_non_null(strstr(out, "\"topic\":\"_hb."));
    s_interrupt(fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_start_serves_and_stops_cleanly),
        cmocka_unit_test(test_second_start_keeps_the_data),
    };
    return cmocka_run_group_tests_name("dev_stack", tests, s_setup, s_teardown);
}
