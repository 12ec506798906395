/* sxctl call and sxctl tail through the built binary, against real CURVE sockets: a tiny
 * rpc server in this process (common/rpc, ZAP, one echo op and one that always fails)
 * for call, and the real sx-broker with a publisher in this process for tail. What is
 * checked is what an operator sees: stdout, stderr and the exit status. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <zmq.h>

#include "evmsg.h"
#include "ident.h"
#include "keys.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"
#include "zsock.h"

typedef struct {
    int rc;
    int64_t ms; /* how long it ran */
    char out[16384];
    char err[8192];
} s_result_t;

/* A key pair written by keys_write_pair: NAME.key and NAME.pub in the fixture's dir. */
typedef struct {
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
    char key_path[600], pub_path[600];
} s_pair_t;

typedef struct {
    /* rpc side */
    char *url;
    db_t *db;
    void *ctx;
    zap_t *zap;
    rpc_server_t *srv;
    pthread_t thread;
    atomic_bool stop;
    char endpoint[128];
    /* broker side */
    pid_t broker_pid;
    char pub_ep[64], sub_ep[64], broker_log[600];
    int ops_port;
    /* keys */
    char *dir;
    s_pair_t server, client, stranger, broker, relay;
    char code[19];
} fx_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_pair(fx_t *fx, const char *name, s_pair_t *p)
{
    char err[256];
    if (keys_write_pair(fx->dir, name, p->pub, err, sizeof err) != 0)
        fail_msg("keys_write_pair: %s", err);
    snprintf(p->key_path, sizeof p->key_path, "%s/%s.key", fx->dir, name);
    snprintf(p->pub_path, sizeof p->pub_path, "%s/%s.pub", fx->dir, name);
    char pub2[KEYS_Z85_LEN + 1];
    assert_int_equal(keys_read_pair(p->key_path, pub2, p->sec, err, sizeof err), 0);
}

/* Runs $SX_BIN/sxctl with the arguments (NULL-terminated) and stdin text (may be NULL). */
static void
s_sxctl_v(s_result_t *r, const char *input, const char *arg, va_list ap)
{
    char bin[4096];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    const char *argv[24] = {bin};
    int n = 1;
    for (const char *a = arg; a && n < 23; a = va_arg(ap, const char *))
        argv[n++] = a;
    argv[n] = NULL;
    int64_t t0 = s_now_ms();
    r->rc = ts_run(argv, input, r->out, sizeof r->out, r->err, sizeof r->err);
    r->ms = s_now_ms() - t0;
}

static s_result_t *
s_sxctl(const char *input, const char *arg, ...)
{
    static s_result_t r;
    va_list ap;
    va_start(ap, arg);
    s_sxctl_v(&r, input, arg, ap);
    va_end(ap);
    return &r;
}

static void
s_expect(const s_result_t *r, int rc, const char *out, const char *err_has)
{
    if (r->rc != rc || (out && strcmp(r->out, out) != 0) || (err_has && !strstr(r->err, err_has)))
        fail_msg("want rc=%d out=\"%s\" err~\"%s\"; got rc=%d out=\"%s\" err=\"%s\"", rc,
                 out ? out : "*", err_has ? err_has : "", r->rc, r->out, r->err);
}

/* ---- The tiny service --------------------------------------------------------------- */

/* echo {name: str <= 64, n?: int, tags?: [str <= 16] <= 8}: answers
 * {identity, name, n?, tags?}. A malformed body is refused as evmsg says. */
static int
s_echo(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)db, (void)arg;
    for (size_t i = 0; i < n; i++) {
        evmsg_err_t err = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(reqs[i], &err);
        static const char *const keys[] = {"name", "n", "tags", NULL};
        char name[65], tags[8][17];
        int64_t num = 0;
        evmsg_array_t arr;
        evmsg_map_only(&body, keys);
        evmsg_map_str(&body, "name", EVMSG_REQUIRED, 64, name);
        int has_n = evmsg_map_int(&body, "n", EVMSG_OPTIONAL, INT64_MIN, INT64_MAX, &num);
        int has_tags = evmsg_map_array(&body, "tags", EVMSG_OPTIONAL, 8, &arr);
        size_t ntags = evmsg_array_count(&arr);
        for (size_t k = 0; k < ntags; k++)
            evmsg_array_str_at(&arr, k, 0, 16, tags[k]);
        if (err.reason[0]) {
            rpc_fail_evmsg(reqs[i], &err);
            continue;
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2 + (has_n == 1) + (has_tags == 1));
        const char *id = rpc_req_identity(reqs[i]);
        msgpack_pack_str_with_body(&pk, "identity", 8);
        msgpack_pack_str_with_body(&pk, id, strlen(id));
        msgpack_pack_str_with_body(&pk, "name", 4);
        msgpack_pack_str_with_body(&pk, name, strlen(name));
        if (has_n == 1) {
            msgpack_pack_str_with_body(&pk, "n", 1);
            msgpack_pack_int64(&pk, num);
        }
        if (has_tags == 1) {
            msgpack_pack_str_with_body(&pk, "tags", 4);
            msgpack_pack_array(&pk, ntags);
            for (size_t k = 0; k < ntags; k++)
                msgpack_pack_str_with_body(&pk, tags[k], strlen(tags[k]));
        }
        rpc_ok(reqs[i], sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    return 0;
}

/* refuse {}: always an error reply. */
static int
s_refuse(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)db, (void)arg;
    for (size_t i = 0; i < n; i++)
        rpc_fail(reqs[i], "bad_field", "body.name", "名称无效", "name is \"not\" valid");
    return 0;
}

static void *
s_server_thread(void *arg)
{
    fx_t *fx = arg;
    while (!atomic_load(&fx->stop))
        rpc_server_poll(fx->srv, 20);
    return NULL;
}

/* ---- The broker -------------------------------------------------------------------- */

static bool
s_healthy(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
        char buf[256] = "";
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
            read(fd, buf, sizeof buf - 1) > 0)
            ok = strstr(buf, " 200 ") != NULL;
    }
    close(fd);
    return ok;
}

static void
s_broker_start(fx_t *fx)
{
    char keys_path[600];
    snprintf(keys_path, sizeof keys_path, "%s/broker-keys", fx->dir);
    FILE *f = fopen(keys_path, "w");
    assert_non_null(f);
    fprintf(f, "%s svc:relay\n%s svc:sxctl\n", fx->relay.pub, fx->client.pub);
    fclose(f);
    snprintf(fx->broker_log, sizeof fx->broker_log, "%s/broker.log", fx->dir);
    snprintf(fx->pub_ep, sizeof fx->pub_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(fx->sub_ep, sizeof fx->sub_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();
    char bin[600], ops_port[16];
    snprintf(bin, sizeof bin, "%s/sx-broker", ts_env("SX_BIN"));
    snprintf(ops_port, sizeof ops_port, "%d", fx->ops_port);
    fx->broker_pid = fork();
    assert_true(fx->broker_pid >= 0);
    if (fx->broker_pid == 0) {
        if (!freopen(fx->broker_log, "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(126);
        setenv("SX_BROKER_PUB_BIND", fx->pub_ep, 1);
        setenv("SX_BROKER_SUB_BIND", fx->sub_ep, 1);
        setenv("SX_BROKER_KEY_FILE", fx->broker.key_path, 1);
        unsetenv("SX_BROKER_SECRET_KEY");
        setenv("SX_KEYS_FILE", keys_path, 1);
        setenv("SX_OPS_PORT", ops_port, 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    for (int64_t end = s_now_ms() + 5000; s_now_ms() < end; usleep(20000)) {
        int status;
        if (waitpid(fx->broker_pid, &status, WNOHANG) == fx->broker_pid) {
            fx->broker_pid = 0;
            fail_msg("sx-broker exited during start; log in %s", fx->broker_log);
        }
        if (s_healthy(fx->ops_port))
            return;
    }
    fail_msg("sx-broker did not answer /healthz within 5 s; log in %s", fx->broker_log);
}

static void
s_broker_stop(fx_t *fx)
{
    if (fx->broker_pid <= 0)
        return;
    kill(fx->broker_pid, SIGTERM);
    int status;
    for (int i = 0; i < 500 && waitpid(fx->broker_pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    if (kill(fx->broker_pid, 0) == 0) {
        kill(fx->broker_pid, SIGKILL);
        waitpid(fx->broker_pid, &status, 0);
    }
    fx->broker_pid = 0;
}

/* ---- Fixture ----------------------------------------------------------------------- */

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dir = ts_mkdtemp("sxctl-call");
    s_pair(fx, "server", &fx->server);
    s_pair(fx, "client", &fx->client);
    s_pair(fx, "stranger", &fx->stranger);
    s_pair(fx, "broker", &fx->broker);
    s_pair(fx, "relay", &fx->relay);
    memcpy(fx->code, "91110000100000000", 17);
    fx->code[17] = ident_uscc_check_char(fx->code);

    fx->url = ts_fresh_db("sxctl_call");
    fx->db = db_new(fx->url, "sxctl-call-server");
    assert_int_equal(db_connect(fx->db, 5000), 0);
    char dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s/schemas/sql/rpc", ts_env("SX_TOP"));
    if (rpc_migrate(fx->db, "echo", dir) < 0)
        fail_msg("rpc_migrate: %s", db_error(fx->db));
    char text[256];
    snprintf(text, sizeof text, "%s svc:sxctl\n", fx->client.pub);
    keys_t *keys = keys_parse(text, strlen(text), err, sizeof err);
    assert_non_null(keys);
    fx->ctx = zmq_ctx_new();
    fx->zap = zap_new(fx->ctx, err, sizeof err);
    assert_non_null(fx->zap);
    zap_set_keys(fx->zap, &keys);
    assert_int_equal(zap_allow(fx->zap, "echo", "svc:"), 0);
    fx->srv = rpc_server_new(fx->ctx, fx->zap, "echo", fx->server.sec, "tcp://127.0.0.1:*", fx->db,
                             "echo", err, sizeof err);
    if (!fx->srv)
        fail_msg("rpc_server_new: %s", err);
    snprintf(fx->endpoint, sizeof fx->endpoint, "%s", rpc_server_endpoint(fx->srv));
    assert_int_equal(rpc_register(fx->srv, &(rpc_op_t){"echo", RPC_WRITE, "svc:", s_echo, fx}), 0);
    assert_int_equal(
        rpc_register(fx->srv, &(rpc_op_t){"echo.refuse", RPC_WRITE, "svc:", s_refuse, fx}), 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, s_server_thread, fx), 0);

    s_broker_start(fx);
    unsetenv("SX_KEY_FILE");
    unsetenv("SX_SERVER_PUBLIC_KEY");
    unsetenv("SX_BROKER_SUB");
    unsetenv("SX_BROKER_PUBLIC_KEY");
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    s_broker_stop(fx);
    atomic_store(&fx->stop, true);
    pthread_join(fx->thread, NULL);
    rpc_server_destroy(&fx->srv);
    zap_destroy(&fx->zap);
    zmq_ctx_term(fx->ctx);
    db_destroy(&fx->db);
    free(fx->url);
    free(fx->dir);
    free(fx);
    return 0;
}

/* ---- call -------------------------------------------------------------------------- */

static char *
s_json_file(const char *name, const char *text)
{
    return ts_write_tmp(name, text);
}

static void
test_call_ok_reply_as_json(void **state)
{
    fx_t *fx = *state;
    char *body = s_json_file("echo-ok.json", "{\n  \"name\": \"张三 \\\"Z\\\"\",\n  \"n\": -5,\n"
                                             "  \"tags\": [\"a\", \"嘉兴\"]\n}\n");
    const char *want = "{\"rid\":\"r-1\",\"ok\":true,\"result\":{\"identity\":\"svc:sxctl\","
                       "\"name\":\"张三 \\\"Z\\\"\",\"n\":-5,\"tags\":[\"a\",\"嘉兴\"]}}\n";
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--rid", "r-1", "--key",
                     fx->client.key_path, "--server-key", fx->server.pub, NULL),
             0, want, "sxctl call: rid r-1");
    /* The same rid again: the stored reply, byte for byte (the server key as a file). */
    s_expect(s_sxctl(NULL, "call", "--server-key", fx->server.pub_path, "--key",
                     fx->client.key_path, fx->endpoint, "echo", body, "--rid", "r-1", NULL),
             0, want, NULL);
    free(body);
}

static void
test_call_fresh_rid_and_stdin_and_env(void **state)
{
    fx_t *fx = *state;
    setenv("SX_KEY_FILE", fx->client.key_path, 1);
    setenv("SX_SERVER_PUBLIC_KEY", fx->server.pub_path, 1);
    s_result_t *r = s_sxctl("{\"name\":\"x\"}", "call", fx->endpoint, "echo", "-", NULL);
    unsetenv("SX_KEY_FILE");
    unsetenv("SX_SERVER_PUBLIC_KEY");
    s_expect(r, 0, NULL, "sxctl call: rid sxctl-");
    char rid[64] = "";
    assert_int_equal(sscanf(strstr(r->err, "rid "), "rid %63s", rid), 1);
    assert_int_equal(strlen(rid), 6 + 24);
    char want[256];
    snprintf(
        want, sizeof want,
        "{\"rid\":\"%s\",\"ok\":true,\"result\":{\"identity\":\"svc:sxctl\",\"name\":\"x\"}}\n",
        rid);
    assert_string_equal(r->out, want);
    /* two fresh rids differ */
    setenv("SX_KEY_FILE", fx->client.key_path, 1);
    setenv("SX_SERVER_PUBLIC_KEY", fx->server.pub, 1);
    r = s_sxctl("{\"name\":\"x\"}", "call", fx->endpoint, "echo", "-", NULL);
    unsetenv("SX_KEY_FILE");
    unsetenv("SX_SERVER_PUBLIC_KEY");
    s_expect(r, 0, NULL, "sxctl call: rid sxctl-");
    assert_null(strstr(r->err, rid));
}

static void
test_call_error_reply_exit_1(void **state)
{
    fx_t *fx = *state;
    char *body = s_json_file("echo-refuse.json", "{}");
    s_expect(
        s_sxctl(NULL, "call", fx->endpoint, "echo.refuse", body, "--rid", "r-2", "--key",
                fx->client.key_path, "--server-key", fx->server.pub, NULL),
        1,
        "{\"rid\":\"r-2\",\"ok\":false,\"error\":{\"code\":\"bad_field\",\"field\":\"body.name\","
        "\"zh\":\"名称无效\",\"en\":\"name is \\\"not\\\" valid\"}}\n",
        NULL);
    free(body);
    /* The service's own refusal of the body: also an error reply. */
    body = s_json_file("echo-bad.json", "{\"name\": 12}");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--rid", "r-3", "--key",
                     fx->client.key_path, "--server-key", fx->server.pub, NULL),
             1, NULL, NULL);
    assert_non_null(strstr(fx->endpoint, "tcp://"));
    s_result_t *r = s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--rid", "r-3", "--key",
                            fx->client.key_path, "--server-key", fx->server.pub, NULL);
    assert_non_null(strstr(r->out, "\"ok\":false"));
    assert_non_null(strstr(r->out, "\"field\":\"body.name\""));
    free(body);
    /* An op the server does not have. */
    body = s_json_file("echo-none.json", "{}");
    r = s_sxctl(NULL, "call", fx->endpoint, "no.such", body, "--key", fx->client.key_path,
                "--server-key", fx->server.pub, NULL);
    s_expect(r, 1, NULL, NULL);
    assert_non_null(strstr(r->out, "\"ok\":false,\"error\":{\"code\":\""));
    free(body);
}

static void
test_call_bad_json_exit_2(void **state)
{
    fx_t *fx = *state;
    char *body = s_json_file("bad.json", "{\n  \"name\": \"x\",\n  \"n\": 01\n}\n");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", fx->client.key_path,
                     "--server-key", fx->server.pub, NULL),
             2, "", "bad.json: line 3, column 8: body.n: malformed number (leading zero)");
    free(body);
    body = s_json_file("deep.json", "{\"a\":[[[[[[[1]]]]]]]}");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", fx->client.key_path,
                     "--server-key", fx->server.pub, NULL),
             2, "", "body.a[0][0][0][0][0][0]: nesting deeper than 8");
    free(body);
    body = s_json_file("array.json", "[1, 2]");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", fx->client.key_path,
                     "--server-key", fx->server.pub, NULL),
             2, "", "line 1, column 1: body: expected a JSON object");
    free(body);
    s_expect(s_sxctl("{\"a\":1,}", "call", fx->endpoint, "echo", "-", "--key", fx->client.key_path,
                     "--server-key", fx->server.pub, NULL),
             2, "", "stdin: line 1, column 8: body: expected a key string");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", "/nonexistent.json", "--key",
                     fx->client.key_path, "--server-key", fx->server.pub, NULL),
             2, "", "/nonexistent.json: cannot open");
}

static void
test_call_usage_errors(void **state)
{
    fx_t *fx = *state;
    char *body = s_json_file("u.json", "{}");
    const char *k = fx->client.key_path, *s = fx->server.pub;
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", NULL), 2, "",
             "expected ENDPOINT OP FILE.json");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, NULL), 2, "",
             "no key pair: give --key KEYFILE or set SX_KEY_FILE");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", k, NULL), 2, "",
             "no server key");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "Echo", body, "--key", k, "--server-key", s, NULL),
             2, "", "OP: expected");
    s_expect(s_sxctl(NULL, "call", "localhost", "echo", body, "--key", k, "--server-key", s, NULL),
             2, "", "ENDPOINT: expected");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", k, "--server-key", s,
                     "--rid", "has space", NULL),
             2, "", "--rid: expected");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", k, "--server-key", s,
                     "--timeout", "0", NULL),
             2, "", "--timeout: expected a whole number");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", "/nonexistent.key",
                     "--server-key", s, NULL),
             2, "", "key pair: ");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--key", k, "--server-key",
                     "not-a-key", NULL),
             2, "", "server key: ");
    s_expect(s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--bogus", NULL), 2, "",
             "unknown option '--bogus'");
    s_result_t *r = s_sxctl(NULL, "call", "--help", NULL);
    s_expect(r, 0, NULL, NULL);
    for (const char *opt = "--rid\0--key\0--server-key\0--timeout\0--tries\0SX_KEY_FILE\0"
                           "SX_SERVER_PUBLIC_KEY\0";
         *opt; opt += strlen(opt) + 1)
        if (!strstr(r->out, opt))
            fail_msg("call --help does not explain %s", opt);
    free(body);
}

/* A key the server does not know: ZAP refuses, no reply ever comes; after --tries sends
 * of --timeout each, exit 1. */
static void
test_call_unknown_key_times_out(void **state)
{
    fx_t *fx = *state;
    char *body = s_json_file("t.json", "{\"name\":\"x\"}");
    s_result_t *r = s_sxctl(NULL, "call", fx->endpoint, "echo", body, "--rid", "r-t", "--key",
                            fx->stranger.key_path, "--server-key", fx->server.pub, "--timeout",
                            "300", "--tries", "2", NULL);
    s_expect(r, 1, "", "timeout: no reply after 2 tries of 300 ms");
    assert_non_null(strstr(r->err, "--rid r-t"));
    assert_true(r->ms >= 550);
    assert_true(r->ms < 5000);
    free(body);
}

/* ---- tail -------------------------------------------------------------------------- */

typedef struct {
    const char *argv[24];
    s_result_t r;
    atomic_bool done;
} s_bg_t;

static void *
s_bg_run(void *arg)
{
    s_bg_t *bg = arg;
    int64_t t0 = s_now_ms();
    bg->r.rc = ts_run(bg->argv, NULL, bg->r.out, sizeof bg->r.out, bg->r.err, sizeof bg->r.err);
    bg->r.ms = s_now_ms() - t0;
    atomic_store(&bg->done, true);
    return NULL;
}

/* Starts sxctl with the arguments in the background. */
static void
s_bg_start(s_bg_t *bg, pthread_t *t, const char *arg, ...)
{
    static char bin[4096];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    memset(bg, 0, sizeof *bg);
    bg->argv[0] = bin;
    int n = 1;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 23; a = va_arg(ap, const char *))
        bg->argv[n++] = a;
    va_end(ap);
    assert_int_equal(pthread_create(t, NULL, s_bg_run, bg), 0);
}

static void *
s_publisher(fx_t *fx, void *ctx)
{
    zsock_limits_t lim = {0, 10000, 10000, ZSOCK_MAXMSGSIZE};
    char err[256];
    void *pub = zsock_client(ctx, ZMQ_PUB, fx->broker.pub, fx->relay.pub, fx->relay.sec, &lim, err,
                             sizeof err);
    if (!pub)
        fail_msg("zsock_client: %s", err);
    assert_int_equal(zsock_connect(pub, fx->pub_ep, err, sizeof err), 0);
    return pub;
}

static void
s_send(void *pub, const char *topic, const void *env, size_t len)
{
    zmq_send(pub, topic, strlen(topic), ZMQ_SNDMORE);
    zmq_send(pub, env, len, 0);
}

/* An event envelope for seq: data {case_no, amount, party: {name}, flags: [true, nil]}. */
static void
s_send_event(void *pub, const char *topic, uint64_t seq)
{
    msgpack_sbuffer data, env;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&env);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    char no[64];
    snprintf(no, sizeof no, "嘉市监罚〔2024〕%" PRIu64 "号", seq);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "case_no", 7);
    msgpack_pack_str_with_body(&pk, no, strlen(no));
    msgpack_pack_str_with_body(&pk, "amount", 6);
    msgpack_pack_str_with_body(&pk, "12.5", 4);
    msgpack_pack_str_with_body(&pk, "party", 5);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "张三", strlen("张三"));
    msgpack_pack_str_with_body(&pk, "flags", 5);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_true(&pk);
    msgpack_pack_nil(&pk);
    evmsg_header_t hdr = {
        .seq = seq, .aseq = seq, .src = "relay", .at = 1700000000000 + (int64_t)seq, .v = 1};
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_encode(&env, &hdr, data.data, data.size, &err), 0);
    s_send(pub, topic, env.data, env.size);
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&env);
}

static void
s_want_event_line(const char *topic, uint64_t seq, char *out, size_t size)
{
    snprintf(out, size,
             "{\"topic\":\"%s\",\"seq\":%" PRIu64 ",\"aseq\":%" PRIu64 ",\"src\":\"relay\","
             "\"at\":%" PRIu64 ",\"v\":1,\"data\":{\"case_no\":\"嘉市监罚〔2024〕%" PRIu64 "号\","
             "\"amount\":\"12.5\",\"party\":{\"name\":\"张三\"},\"flags\":[true,null]}}",
             topic, seq, seq, (uint64_t)1700000000000 + seq, seq);
}

static void
test_tail_prints_events_as_json_lines(void **state)
{
    fx_t *fx = *state;
    char topic[64];
    snprintf(topic, sizeof topic, "case.decided.%s", fx->code);
    s_bg_t bg;
    pthread_t t;
    s_bg_start(&bg, &t, "tail", "case.", "--endpoint", fx->sub_ep, "--key", fx->client.key_path,
               "--server-key", fx->broker.pub_path, "--count", "3", "--timeout", "15000", NULL);
    void *ctx = zmq_ctx_new();
    void *pub = s_publisher(fx, ctx);
    /* Slow joiner: publish until tail has its three. Every round also sends a malformed
     * envelope and a heartbeat, which tail must skip (the heartbeat is outside its prefix
     * anyway; the malformed one is reported). */
    uint64_t seq = 0;
    for (int64_t end = s_now_ms() + 15000; !atomic_load(&bg.done) && s_now_ms() < end;) {
        s_send(pub, topic, "\xc1", 1);
        s_send_event(pub, topic, ++seq);
        s_send(pub, "_hb.relay", "\x80", 1);
        usleep(20000);
    }
    pthread_join(t, NULL);
    zsock_close(&pub);
    zmq_ctx_term(ctx);
    if (bg.r.rc != 0)
        fail_msg("tail: rc=%d out=\"%s\" err=\"%s\"", bg.r.rc, bg.r.out, bg.r.err);
    /* Three lines, consecutive seqs, every field right. */
    char *line = bg.r.out, want[1024];
    uint64_t first = 0;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (i == 0)
            assert_int_equal(sscanf(line, "{\"topic\":\"%*[^\"]\",\"seq\":%" SCNu64, &first), 1);
        s_want_event_line(topic, first + (uint64_t)i, want, sizeof want);
        assert_string_equal(line, want);
        line = nl + 1;
    }
    assert_string_equal(line, "");
    assert_non_null(strstr(bg.r.err, "sxctl tail: warning: skipped a message on case.decided."));
    assert_non_null(strstr(bg.r.err, "not msgpack"));
}

/* Heartbeats: skipped by default, printed with --heartbeats. */
static void
test_tail_heartbeats(void **state)
{
    fx_t *fx = *state;
    char topic[64];
    snprintf(topic, sizeof topic, "case.closed.%s", fx->code);
    setenv("SX_BROKER_SUB", fx->sub_ep, 1);
    setenv("SX_KEY_FILE", fx->client.key_path, 1);
    setenv("SX_BROKER_PUBLIC_KEY", fx->broker.pub, 1);
    s_bg_t plain, hb;
    pthread_t t1, t2;
    /* The event is sent only once the heartbeat tail is done, so the plain tail's wait
     * covers both tails' start-up. */
    s_bg_start(&plain, &t1, "tail", "", "--count", "1", "--timeout", "25000", NULL);
    s_bg_start(&hb, &t2, "tail", "_hb.", "--heartbeats", "--count", "1", "--timeout", "20000",
               NULL);
    void *ctx = zmq_ctx_new();
    void *pub = s_publisher(fx, ctx);
    msgpack_sbuffer env;
    msgpack_sbuffer_init(&env);
    evmsg_header_t hdr = {.seq = 41, .aseq = 0, .src = "relay", .at = 5, .v = 1};
    evmsg_err_t err = {{0}, {0}};
    assert_int_equal(evmsg_encode(&env, &hdr, "\x80", 1, &err), 0);
    /* Heartbeats all along (the plain tail hears and skips them); once the heartbeat tail
     * has its one, the event too, until the plain tail has it. */
    for (int64_t end = s_now_ms() + 25000;
         !(atomic_load(&plain.done) && atomic_load(&hb.done)) && s_now_ms() < end;) {
        s_send(pub, "_hb.relay", env.data, env.size);
        if (atomic_load(&hb.done))
            s_send_event(pub, topic, 7);
        usleep(20000);
    }
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    unsetenv("SX_BROKER_SUB");
    unsetenv("SX_KEY_FILE");
    unsetenv("SX_BROKER_PUBLIC_KEY");
    msgpack_sbuffer_destroy(&env);
    zsock_close(&pub);
    zmq_ctx_term(ctx);
    s_expect(&hb.r, 0,
             "{\"topic\":\"_hb.relay\",\"seq\":41,\"aseq\":0,\"src\":\"relay\",\"at\":5,\"v\":1,"
             "\"data\":{}}\n",
             NULL);
    char want[1024];
    s_want_event_line(topic, 7, want, sizeof want);
    strcat(want, "\n");
    s_expect(&plain.r, 0, want, NULL);
}

static void
test_tail_timeout_and_usage(void **state)
{
    fx_t *fx = *state;
    s_result_t *r = s_sxctl(NULL, "tail", "case.nothing.", "--endpoint", fx->sub_ep, "--key",
                            fx->client.key_path, "--server-key", fx->broker.pub, "--count", "2",
                            "--timeout", "400", NULL);
    s_expect(r, 1, "", "timeout: 0 of 2 events in 400 ms");
    assert_true(r->ms >= 400);
    /* Without --count, the timeout is a normal end. */
    r = s_sxctl(NULL, "tail", "case.nothing.", "--endpoint", fx->sub_ep, "--key",
                fx->client.key_path, "--server-key", fx->broker.pub, "--timeout", "300", NULL);
    s_expect(r, 0, "", NULL);
    s_expect(s_sxctl(NULL, "tail", NULL), 2, "", "expected TOPIC-PREFIX");
    s_expect(s_sxctl(NULL, "tail", "case.", "--key", fx->client.key_path, NULL), 2, "",
             "no broker key: give --server-key or set SX_BROKER_PUBLIC_KEY");
    s_expect(s_sxctl(NULL, "tail", "case.", "--count", "x", NULL), 2, "",
             "--count: expected a whole number");
    s_expect(s_sxctl(NULL, "tail", "a", "b", NULL), 2, "", "expected one TOPIC-PREFIX");
    r = s_sxctl(NULL, "tail", "--help", NULL);
    s_expect(r, 0, NULL, NULL);
    for (const char *opt = "--endpoint\0--key\0--server-key\0--count\0--timeout\0--heartbeats\0"
                           "SX_BROKER_SUB\0SX_KEY_FILE\0SX_BROKER_PUBLIC_KEY\0";
         *opt; opt += strlen(opt) + 1)
        if (!strstr(r->out, opt))
            fail_msg("tail --help does not explain %s", opt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_ok_reply_as_json),
        cmocka_unit_test(test_call_fresh_rid_and_stdin_and_env),
        cmocka_unit_test(test_call_error_reply_exit_1),
        cmocka_unit_test(test_call_bad_json_exit_2),
        cmocka_unit_test(test_call_usage_errors),
        cmocka_unit_test(test_call_unknown_key_times_out),
        cmocka_unit_test(test_tail_prints_events_as_json_lines),
        cmocka_unit_test(test_tail_heartbeats),
        cmocka_unit_test(test_tail_timeout_and_usage),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
