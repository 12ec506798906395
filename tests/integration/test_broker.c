/* sx-broker, the real binary, with real CURVE sockets: who gets in, who hears what,
 * what is dropped, reload on SIGHUP, stop on SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "ident.h"
#include "keys.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

typedef struct {
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
} s_pair_t;

typedef struct {
    pid_t pid;
    int pub_port, sub_port, ops_port;
    char pub_ep[64], sub_ep[64];
    char keys_path[512], log_path[512];
    s_pair_t broker;
    void *ctx;
} s_broker_t;

/* The broker a failed test left running, stopped by s_teardown. */
static pid_t s_live_pid;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An agency code (统一社会信用代码) with a valid check character. */
static void
s_code(const char *body17, char out[19])
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
    assert_true(out[17] != '\0');
}

static void
s_pair(s_pair_t *p)
{
    assert_int_equal(keys_keypair(p->pub, p->sec), 0);
}

/* GET path on the ops port; returns the HTTP status, body in buf. */
static int
s_http_get(int port, const char *path, char *buf, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < size && (r = read(fd, buf + len, size - len - 1)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

/* The value of one series ("name" or "name{labels}") in /metrics; -1 when absent. */
static double
s_metric(const s_broker_t *b, const char *series)
{
    static char body[65536];
    if (s_http_get(b->ops_port, "/metrics", body, sizeof body) != 200)
        return -1;
    size_t n = strlen(series);
    for (char *line = body; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    return -1;
}

/* Waits (at most ms) until the series reaches at least want. */
static double
s_wait_metric(const s_broker_t *b, const char *series, double want, int ms)
{
    double v = -1;
    for (int64_t end = s_now_ms() + ms; s_now_ms() < end; usleep(50000))
        if ((v = s_metric(b, series)) >= want)
            break;
    return v;
}

static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static const size_t max = 1 << 20;
    char *buf = malloc(max + 1);
    size_t n = fread(buf, 1, max, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool
s_log_has(const s_broker_t *b, const char *a, const char *c)
{
    char *log = s_read_file(b->log_path);
    bool has = false;
    for (char *line = log; line && *line && !has;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        has = strstr(line, a) && (!c || strstr(line, c));
        line = nl ? nl + 1 : NULL;
    }
    free(log);
    return has;
}

static void
s_write_keys(s_broker_t *b, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", b->keys_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, b->keys_path), 0);
}

/* Starts sx-broker with its own key pair file and the given key file text; waits for
 * /healthz. Returns the exit status instead when it exits during start (-1 if running). */
static int
s_start(s_broker_t *b, const char *keys_text)
{
    static int counter;
    memset(b, 0, sizeof *b);
    char *dir = ts_mkdtemp("broker");
    char name[32], err[256];
    snprintf(name, sizeof name, "broker%d", ++counter);
    assert_int_equal(keys_write_pair(dir, name, b->broker.pub, err, sizeof err), 0);
    char key_file[600];
    snprintf(key_file, sizeof key_file, "%s/%s.key", dir, name);
    snprintf(b->keys_path, sizeof b->keys_path, "%s/keys", dir);
    snprintf(b->log_path, sizeof b->log_path, "%s/broker.log", dir);
    free(dir);
    s_write_keys(b, keys_text);
    b->pub_port = tp_free_port();
    b->sub_port = tp_free_port();
    b->ops_port = tp_free_port();
    snprintf(b->pub_ep, sizeof b->pub_ep, "tcp://127.0.0.1:%d", b->pub_port);
    snprintf(b->sub_ep, sizeof b->sub_ep, "tcp://127.0.0.1:%d", b->sub_port);
    char bin[600], ops_port[16];
    snprintf(bin, sizeof bin, "%s/sx-broker", ts_env("SX_BIN"));
    snprintf(ops_port, sizeof ops_port, "%d", b->ops_port);

    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        /* Not the test's stdout: tests/run reads it through a pipe until EOF. */
        if (!freopen(b->log_path, "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(126);
        setenv("SX_BROKER_PUB_BIND", b->pub_ep, 1);
        setenv("SX_BROKER_SUB_BIND", b->sub_ep, 1);
        setenv("SX_BROKER_KEY_FILE", key_file, 1);
        unsetenv("SX_BROKER_SECRET_KEY");
        setenv("SX_KEYS_FILE", b->keys_path, 1);
        setenv("SX_OPS_PORT", ops_port, 1);
        setenv("SX_LOG_LEVEL", "debug", 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    s_live_pid = b->pid;
    char body[256];
    for (int64_t end = s_now_ms() + 5000; s_now_ms() < end; usleep(20000)) {
        int status;
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            s_live_pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        /* Its own log says it started: a 200 from the port alone could come from another
         * process that took the port between tp_free_port and the broker's bind. */
        if (s_http_get(b->ops_port, "/healthz", body, sizeof body) == 200 &&
            s_log_has(b, "broker started", NULL)) {
            b->ctx = zmq_ctx_new();
            return -1;
        }
    }
    fail_msg("sx-broker did not answer /healthz within 5 s; log in %s", b->log_path);
    return -2;
}

/* SIGTERM; returns the exit status and how long it took in *ms. */
static int
s_stop(s_broker_t *b, int64_t *ms)
{
    if (b->ctx) {
        zmq_ctx_term(b->ctx);
        b->ctx = NULL;
    }
    if (b->pid <= 0)
        return -1;
    int64_t t0 = s_now_ms();
    kill(b->pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    while ((got = waitpid(b->pid, &status, WNOHANG)) == 0 && s_now_ms() - t0 < 5000)
        usleep(10000);
    if (got != b->pid) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &status, 0);
        b->pid = 0;
        fail_msg("sx-broker ignored SIGTERM for 5 s");
    }
    b->pid = 0;
    s_live_pid = 0;
    if (ms)
        *ms = s_now_ms() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void *
s_client(s_broker_t *b, int type, const s_pair_t *me, bool pub_side)
{
    zsock_limits_t lim = {0, 10000, 10000, ZSOCK_MAXMSGSIZE * 2};
    char err[256];
    void *s = zsock_client(b->ctx, type, b->broker.pub, me->pub, me->sec, &lim, err, sizeof err);
    if (!s)
        fail_msg("zsock_client: %s", err);
    assert_int_equal(zsock_connect(s, pub_side ? b->pub_ep : b->sub_ep, err, sizeof err), 0);
    return s;
}

static void *
s_sub(s_broker_t *b, const s_pair_t *me, const char *prefix)
{
    void *s = s_client(b, ZMQ_SUB, me, false);
    assert_int_equal(zmq_setsockopt(s, ZMQ_SUBSCRIBE, prefix, strlen(prefix)), 0);
    return s;
}

static void
s_send2(void *pub, const char *topic, const char *body)
{
    zmq_send(pub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(pub, body, strlen(body), 0);
}

/* Receives one [topic][body] within ms; returns false on timeout. */
static bool
s_recv2(void *sub, int ms, char *topic, char *body)
{
    zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return false;
    char t[256] = "", d[256] = "";
    int n = zmq_recv(sub, t, sizeof t - 1, 0);
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml);
    int m = more ? zmq_recv(sub, d, sizeof d - 1, 0) : 0;
    t[n < 0 ? 0 : n > 255 ? 255 : n] = '\0';
    d[m < 0 ? 0 : m > 255 ? 255 : m] = '\0';
    if (topic)
        strcpy(topic, t);
    if (body)
        strcpy(body, d);
    return true;
}

/* Slow joiner: publishes `topic` until sub hears it (bounded by ms). */
static bool
s_pump(void *pub, void *sub, const char *topic, int ms)
{
    char t[256];
    for (int64_t end = s_now_ms() + ms; s_now_ms() < end;) {
        s_send2(pub, topic, "ping");
        while (s_recv2(sub, 50, t, NULL))
            if (strcmp(t, topic) == 0)
                return true;
    }
    return false;
}

/* Everything sub hears within ms; counts messages whose topic starts with prefix. */
static int
s_count(void *sub, const char *prefix, int ms)
{
    int n = 0;
    char t[256];
    for (int64_t end = s_now_ms() + ms; s_now_ms() < end;)
        if (s_recv2(sub, 50, t, NULL) && strncmp(t, prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

/* The cast: two services, two departments (agencies A and B), their codes. */
typedef struct {
    s_pair_t svc_pub, svc_sub, dept_a, dept_b;
    char code_a[19], code_b[19];
    char keys[2048];
} s_cast_t;

static void
s_cast(s_cast_t *c)
{
    s_pair(&c->svc_pub);
    s_pair(&c->svc_sub);
    s_pair(&c->dept_a);
    s_pair(&c->dept_b);
    s_code("91110000100000000", c->code_a);
    s_code("91310000200000000", c->code_b);
    snprintf(c->keys, sizeof c->keys,
             "# test keys\n\n%s svc:relay\n%s svc:review\n%s dept:%s:officer\n"
             "%s\tdept:%s:officer\n",
             c->svc_pub.pub, c->svc_sub.pub, c->dept_a.pub, c->code_a, c->dept_b.pub, c->code_b);
}

static void
test_unknown_key_and_null_mechanism_refused(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);

    void *pub = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    void *ok = s_sub(&b, &c.svc_sub, "");
    s_pair_t stranger;
    s_pair(&stranger);
    void *unknown = s_sub(&b, &stranger, "");
    /* No CURVE at all: a plain SUB. */
    void *plain = zmq_socket(b.ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(plain, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(plain, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect(plain, b.sub_ep);

    assert_true(s_pump(pub, ok, "case.decided.x", 5000));
    for (int i = 0; i < 20; i++)
        s_send2(pub, "case.decided.x", "secret");
    assert_int_equal(s_count(unknown, "", 1000), 0);
    assert_int_equal(s_count(plain, "", 200), 0);

    assert_true(s_wait_metric(&b, "sx_broker_connections_refused_total", 1, 3000) >= 1);
    assert_true(s_log_has(&b, "connection refused", "reason=\"unknown key\""));
    zmq_close(pub);
    zmq_close(ok);
    zmq_close(unknown);
    zmq_close(plain);
    assert_int_equal(s_stop(&b, NULL), 0);
}

static void
test_dept_hears_only_its_own_agency(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);

    char own[64], other[64];
    snprintf(own, sizeof own, "case.decided.%s", c.code_a);
    snprintf(other, sizeof other, "case.decided.%s", c.code_b);
    void *pub = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    void *a = s_sub(&b, &c.dept_a, own);
    zmq_setsockopt(a, ZMQ_SUBSCRIBE, other, strlen(other)); /* refused */
    zmq_setsockopt(a, ZMQ_SUBSCRIBE, "case.", 5);           /* refused: not a full topic */
    zmq_setsockopt(a, ZMQ_SUBSCRIBE, "_hb", 3);             /* refused: system topic */
    void *everything = s_sub(&b, &c.dept_b, "");            /* refused: empty prefix */
    void *bsub = s_sub(&b, &c.dept_b, other);               /* B's own: accepted */

    assert_true(s_pump(pub, a, own, 5000));
    assert_true(s_pump(pub, bsub, other, 5000));
    /* Only now is every subscription surely processed. */
    for (int i = 0; i < 20; i++) {
        s_send2(pub, other, "for B");
        s_send2(pub, "case.x", "short");
        s_send2(pub, "_hb.intake", "1");
        s_send2(pub, own, "for A");
    }
    char t[256], body[256];
    int own_n = 0, leaked = 0;
    for (int64_t end = s_now_ms() + 1000; s_now_ms() < end;)
        if (s_recv2(a, 50, t, body)) {
            if (strcmp(t, own) == 0)
                own_n++;
            else
                leaked++;
        }
    assert_int_equal(leaked, 0);
    assert_true(own_n >= 20);
    assert_int_equal(s_count(everything, "", 300), 0);

    assert_true(s_wait_metric(&b, "sx_broker_subscriptions_refused_total", 4, 3000) >= 4);
    char ident[64];
    snprintf(ident, sizeof ident, "identity=dept:%s:officer", c.code_a);
    assert_true(s_log_has(&b, "subscription refused", ident));
    assert_true(s_log_has(&b, other, "reason=\"another agency's code\""));
    snprintf(ident, sizeof ident, "identity=dept:%s:officer", c.code_b);
    assert_true(s_log_has(&b, ident, "reason=\"empty prefix\""));
    zmq_close(pub);
    zmq_close(a);
    zmq_close(everything);
    zmq_close(bsub);
    assert_int_equal(s_stop(&b, NULL), 0);
}

static void
test_dept_cannot_publish(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);

    char own[64];
    snprintf(own, sizeof own, "case.decided.%s", c.code_a);
    void *svc = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    void *dept = s_client(&b, ZMQ_PUB, &c.dept_a, true);
    void *sub = s_sub(&b, &c.svc_sub, "");
    assert_true(s_pump(svc, sub, "case.proposed.svc", 5000));
    for (int i = 0; i < 50; i++) {
        s_send2(dept, own, "forged");
        usleep(10000);
    }
    char t[256], body[256];
    int forged = 0;
    for (int64_t end = s_now_ms() + 500; s_now_ms() < end;)
        if (s_recv2(sub, 50, t, body) && strcmp(body, "forged") == 0)
            forged++;
    assert_int_equal(forged, 0);
    assert_true(s_wait_metric(&b, "sx_broker_connections_refused_total", 1, 3000) >= 1);
    assert_true(s_log_has(&b, "connection refused", "domain=pub"));
    zmq_close(svc);
    zmq_close(dept);
    zmq_close(sub);
    assert_int_equal(s_stop(&b, NULL), 0);
}

static void
test_malformed_and_oversized_dropped(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);

    void *pub = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    void *sub = s_sub(&b, &c.svc_sub, "");
    assert_true(s_pump(pub, sub, "case.before", 5000));

    zmq_send(pub, "one.frame", 9, 0);
    zmq_send(pub, "three", 5, ZMQ_SNDMORE);
    zmq_send(pub, "b", 1, ZMQ_SNDMORE);
    zmq_send(pub, "c", 1, 0);
    zmq_send(pub, "", 0, ZMQ_SNDMORE); /* empty topic */
    zmq_send(pub, "x", 1, 0);
    static char big[70000];
    memset(big, 'x', sizeof big);
    zmq_send(pub, "case.big", 8, ZMQ_SNDMORE);
    zmq_send(pub, big, sizeof big, 0);
    char leaky[64];
    snprintf(leaky, sizeof leaky, "case.decided.%s.x", c.code_a);
    s_send2(pub, leaky, "agency code not last");

    /* Still serving: a valid message sent after them arrives, and nothing bad did. */
    char t[256];
    bool after = false;
    int bad = 0;
    for (int64_t end = s_now_ms() + 5000; s_now_ms() < end && !after;) {
        s_send2(pub, "case.after", "ok");
        while (s_recv2(sub, 50, t, NULL)) {
            if (strcmp(t, "case.after") == 0)
                after = true;
            else if (strcmp(t, "case.before") != 0)
                bad++;
        }
    }
    assert_true(after);
    assert_int_equal(bad, 0);
    assert_int_equal(s_metric(&b, "sx_broker_messages_dropped_total{reason=\"frames\"}"), 2);
    assert_int_equal(s_metric(&b, "sx_broker_messages_dropped_total{reason=\"topic\"}"), 2);
    assert_int_equal(s_metric(&b, "sx_broker_messages_dropped_total{reason=\"oversized\"}"), 1);
    assert_true(s_metric(&b, "sx_broker_messages_out_total") >= 2);
    assert_true(s_log_has(&b, "message dropped", "reason=oversized"));
    assert_true(s_log_has(&b, "message dropped", "reason=\"one frame\""));
    zmq_close(pub);
    zmq_close(sub);
    assert_int_equal(s_stop(&b, NULL), 0);
}

static void
test_sighup_reloads_keys(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);

    void *pub = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    s_pair_t late;
    s_pair(&late);
    void *early = s_sub(&b, &late, "");
    for (int i = 0; i < 10; i++)
        s_send2(pub, "case.x", "before");
    assert_int_equal(s_count(early, "", 500), 0);
    zmq_close(early);

    char text[4096];
    snprintf(text, sizeof text, "%s%s svc:late\n", c.keys, late.pub);
    s_write_keys(&b, text);
    kill(b.pid, SIGHUP);
    assert_true(s_wait_metric(&b, "sx_broker_key_reloads_total{result=\"ok\"}", 2, 3000) >= 2);
    void *now = s_sub(&b, &late, "");
    assert_true(s_pump(pub, now, "case.x", 5000));
    zmq_close(now);

    /* A broken file keeps the keys in force. */
    s_write_keys(&b, "this is not a key file\n");
    kill(b.pid, SIGHUP);
    assert_true(s_wait_metric(&b, "sx_broker_key_reloads_total{result=\"error\"}", 1, 3000) >= 1);
    assert_true(s_log_has(&b, "key file not loaded", "line 1"));
    void *still = s_sub(&b, &late, "");
    assert_true(s_pump(pub, still, "case.y", 5000));
    zmq_close(still);
    zmq_close(pub);
    assert_int_equal(s_stop(&b, NULL), 0);
}

static void
test_sigterm_stops_quickly(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    s_broker_t b;
    assert_int_equal(s_start(&b, c.keys), -1);
    void *sub = s_sub(&b, &c.svc_sub, ""); /* a live connection at stop time */
    void *pub = s_client(&b, ZMQ_PUB, &c.svc_pub, true);
    assert_true(s_pump(pub, sub, "case.x", 5000));
    zmq_close(sub);
    zmq_close(pub);
    int64_t ms = 0;
    assert_int_equal(s_stop(&b, &ms), 0);
    assert_true(ms < 2000);
    assert_true(s_log_has(&b, "broker stopping", NULL));
}

static void
test_bad_key_file_refuses_to_start(void **state)
{
    (void)state;
    s_cast_t c;
    s_cast(&c);
    char text[4096];
    snprintf(text, sizeof text, "%s%s svc:relay\n", c.keys, c.svc_pub.pub); /* duplicate */
    s_broker_t b;
    assert_int_equal(s_start(&b, text), 1);
    assert_true(s_log_has(&b, "key file not loaded", "line 7: duplicate key"));
}

static int
s_teardown(void **state)
{
    (void)state;
    if (s_live_pid > 0) {
        kill(s_live_pid, SIGKILL);
        waitpid(s_live_pid, NULL, 0);
        s_live_pid = 0;
    }
    return 0;
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_unknown_key_and_null_mechanism_refused, s_teardown),
        cmocka_unit_test_teardown(test_dept_hears_only_its_own_agency, s_teardown),
        cmocka_unit_test_teardown(test_dept_cannot_publish, s_teardown),
        cmocka_unit_test_teardown(test_malformed_and_oversized_dropped, s_teardown),
        cmocka_unit_test_teardown(test_sighup_reloads_keys, s_teardown),
        cmocka_unit_test_teardown(test_sigterm_stops_quickly, s_teardown),
        cmocka_unit_test_teardown(test_bad_key_file_refuses_to_start, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
