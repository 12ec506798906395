#include "tproc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "jsonmp.h"
#include "keys.h"
#include "story.h"
#include "tsupport.h"
#include "zsock.h"

int64_t
tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int
tp_free_port(void)
{
    int port = story_free_port();
    if (port < 0)
        fail_msg("no free loopback port: %s", strerror(errno));
    return port;
}

pid_t
tp_spawn(const char *bin, const char *const args[], const char *log, const char *const env[])
{
    char path[1024], logfile[1024];
    snprintf(path, sizeof path, "%s/%s", ts_env("SX_BIN"), bin);
    snprintf(logfile, sizeof logfile, "%s/%s.log", ts_env("SX_TMP"), log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        const char *argv[32] = {path};
        for (size_t i = 0; args && args[i] && i + 2 < 32; i++)
            argv[i + 1] = args[i];
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int
tp_stop(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int status = 0;
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_sleep_ms(20))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

void
tp_stop_clean(pid_t *pid, int timeout_ms)
{
    assert_int_equal(tp_stop(*pid, SIGTERM, timeout_ms), 0);
    *pid = 0;
}

bool
tp_log_has(const char *log, const char *text, const char *text2)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.log", ts_env("SX_TMP"), log);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) && (!text2 || strstr(line, text2));
    fclose(f);
    return found;
}

void
tp_wait_log(const char *log, const char *text, int timeout_ms)
{
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_sleep_ms(50))
        if (tp_log_has(log, text, NULL))
            return;
    fail_msg("%s.log never said \"%s\" (in %s)", log, text, ts_env("SX_TMP"));
}

int
tp_http_get(int port, const char *path, char *buf, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    char resp[65536];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof resp && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/%*s %d", &status) != 1)
        return 0;
    const char *body = strstr(resp, "\r\n\r\n");
    if (buf && size) {
        snprintf(buf, size, "%s", body ? body + 4 : "");
    }
    return status;
}

void
tp_world_init(tp_world_t *w, const char *pg_url, const char *const ids[][2])
{
    memset(w, 0, sizeof *w);
    char *dir = ts_mkdtemp("keys");
    snprintf(w->keydir, sizeof w->keydir, "%s", dir);
    free(dir);
    snprintf(w->pg_url, sizeof w->pg_url, "%s", pg_url ? pg_url : "");
    char err[256], pub[41];
    if (keys_write_pair(w->keydir, "broker", w->broker_pub, err, sizeof err) != 0)
        fail_msg("broker key pair: %s", err);
    snprintf(w->keys, sizeof w->keys, "%s/keys", w->keydir);
    FILE *f = fopen(w->keys, "w");
    assert_non_null(f);
    fputs("# test keys\n", f);
    for (size_t i = 0; ids && ids[i][0]; i++) {
        if (keys_write_pair(w->keydir, ids[i][0], pub, err, sizeof err) != 0)
            fail_msg("key pair %s: %s", ids[i][0], err);
        fprintf(f, "%s %s\n", pub, ids[i][1]);
    }
    fclose(f);
    snprintf(w->pub_ep, sizeof w->pub_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(w->sub_ep, sizeof w->sub_ep, "tcp://127.0.0.1:%d", tp_free_port());
}

void
tp_world_open(tp_world_t *w, const char *db_name, const char *const ids[][2],
              const char *broker_log)
{
    char *url = ts_fresh_db(db_name);
    tp_world_init(w, url, ids);
    free(url);
    w->pg = PQconnectdb(w->pg_url);
    if (PQstatus(w->pg) != CONNECTION_OK)
        fail_msg("%s: %s", db_name, PQerrorMessage(w->pg));
    w->ctx = zmq_ctx_new();
    assert_non_null(w->ctx);
    w->broker = tp_world_broker(w, broker_log);
}

void
tp_world_close(tp_world_t *w)
{
    tp_stop(w->broker, SIGTERM, 10000);
    w->broker = 0;
    if (w->ctx)
        zmq_ctx_term(w->ctx);
    w->ctx = NULL;
    PQfinish(w->pg);
    w->pg = NULL;
}

void
tp_world_pair(const tp_world_t *w, const char *name, char *pub, char *sec)
{
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/%s.key", w->keydir, name);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

pid_t
tp_world_broker(const tp_world_t *w, const char *log)
{
    char pub[96], sub[96], keyfile[700], keys[700];
    snprintf(pub, sizeof pub, "SX_BROKER_PUB_BIND=%s", w->pub_ep);
    snprintf(sub, sizeof sub, "SX_BROKER_SUB_BIND=%s", w->sub_ep);
    snprintf(keyfile, sizeof keyfile, "SX_BROKER_KEY_FILE=%s/broker.key", w->keydir);
    snprintf(keys, sizeof keys, "SX_KEYS_FILE=%s", w->keys);
    const char *env[] = {pub, sub, keyfile, keys, "SX_OPS_PORT=0", NULL};
    return tp_spawn("sx-broker", NULL, log, env);
}

pid_t
tp_world_spawn(const tp_world_t *w, const char *bin, const char *const args[], const char *key,
               const char *log, const char *const env[])
{
    char pg[700], keyfile[700], keys[700], pub[96], sub[96], server[96], schemas[700];
    snprintf(pg, sizeof pg, "SX_PG_URL=%s", w->pg_url);
    snprintf(keyfile, sizeof keyfile, "SX_KEY_FILE=%s/%s.key", w->keydir, key);
    snprintf(keys, sizeof keys, "SX_KEYS_FILE=%s", w->keys);
    snprintf(pub, sizeof pub, "SX_BROKER_PUB=%s", w->pub_ep);
    snprintf(sub, sizeof sub, "SX_BROKER_SUB=%s", w->sub_ep);
    snprintf(server, sizeof server, "SX_BROKER_PUBLIC_KEY=%s", w->broker_pub);
    snprintf(schemas, sizeof schemas, "SX_SCHEMAS=%s/schemas", ts_env("SX_TOP"));
    const char *all[48] = {pg, keyfile, keys, pub, sub, server, schemas, "SX_OPS_PORT=0"};
    size_t n = 8;
    for (size_t i = 0; env && env[i] && n + 1 < 48; i++)
        all[n++] = env[i];
    all[n] = NULL;
    return tp_spawn(bin, args, log, all);
}

void
tp_wait_http(int port, const char *path, int timeout_ms)
{
    char buf[4096];
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_sleep_ms(100))
        if (tp_http_get(port, path, buf, sizeof buf) != 0)
            return;
    fail_msg("127.0.0.1:%d%s did not answer in %d ms", port, path, timeout_ms);
}

pid_t
tp_world_service(const tp_world_t *w, const char *svc, const char *ep, int ops_port,
                 const char *log, const char *const env[])
{
    char bin[64], bind[160], ops[32];
    snprintf(bin, sizeof bin, "sx-%s", svc);
    int n = snprintf(bind, sizeof bind, "SX_");
    for (const char *c = svc; *c && n + 1 < (int)sizeof bind; c++)
        bind[n++] = (char)toupper((unsigned char)*c);
    snprintf(bind + n, sizeof bind - (size_t)n, "_BIND=%s", ep);
    snprintf(ops, sizeof ops, "SX_OPS_PORT=%d", ops_port);
    const char *all[48] = {bind, ops};
    size_t k = 2;
    /* Tests read the portal right after a change: every answer as of the request (the
     * service's default lets answers lag up to 1 s). Set first: an entry of env wins. */
    if (strcmp(svc, "publication") == 0)
        all[k++] = "SX_PORTAL_MAX_STALE_MS=0";
    for (size_t i = 0; env && env[i] && k + 1 < 48; i++)
        all[k++] = env[i];
    all[k] = NULL;
    return tp_world_spawn(w, bin, NULL, svc, log, all);
}

/* ---- SQL ------------------------------------------------------------------------------- */

long long
tp_pg_num(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    long long n = PQntuples(r) == 0 || PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

void
tp_pg_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

/* The first value of sql into out: "" without a row, when NULL or on an error. */
static void
tp_pg_text(PGconn *pg, const char *sql, char *out, size_t size)
{
    PGresult *r = PQexec(pg, sql);
    snprintf(out, size, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) && !PQgetisnull(r, 0, 0)
                 ? PQgetvalue(r, 0, 0)
                 : "");
    PQclear(r);
}

static void
tp_wait_step(tp_producer_t *p, int n)
{
    if (n > 0)
        tp_pump(p, n, 100);
    else
        tp_sleep_ms(100);
}

void
tp_pg_wait_value(PGconn *pg, const char *sql, const char *want, int timeout_ms, tp_producer_t *p,
                 int n)
{
    char got[256] = "";
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_wait_step(p, n)) {
        tp_pg_text(pg, sql, got, sizeof got);
        if (strcmp(got, want) == 0)
            return;
    }
    fail_msg("%s: '%s', wanted '%s'", sql, got, want);
}

void
tp_pg_wait_num(PGconn *pg, const char *sql, long long want, int timeout_ms, tp_producer_t *p, int n)
{
    char got[256] = "";
    long long v = -1;
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_wait_step(p, n)) {
        tp_pg_text(pg, sql, got, sizeof got);
        v = got[0] ? atoll(got) : -1;
        if (v == want)
            return;
    }
    fail_msg("%s: %lld, wanted %lld", sql, v, want);
}

/* ---- A producer ------------------------------------------------------------------------ */

void
tp_producer_open(tp_producer_t *p, const tp_world_t *w, const char *stream)
{
    memset(p, 0, sizeof *p);
    snprintf(p->stream, sizeof p->stream, "%s", stream);
    char app[64], busdir[600], pub[41], sec[41], err[256];
    snprintf(app, sizeof app, "test-%s", stream);
    p->db = db_new(w->pg_url, app);
    snprintf(app, sizeof app, "test-%s-relay", stream);
    p->relay_db = db_new(w->pg_url, app);
    assert_int_equal(db_connect(p->db, 5000), 0);
    assert_int_equal(db_connect(p->relay_db, 5000), 0);
    snprintf(busdir, sizeof busdir, "%s/schemas/sql/bus", ts_env("SX_TOP"));
    if (bus_migrate(p->db, stream, busdir) < 0)
        fail_msg("bus_migrate %s: %s", stream, db_error(p->db));
    tp_world_pair(w, stream, pub, sec);
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    p->sock = zsock_client(w->ctx, ZMQ_PUB, w->broker_pub, pub, sec, &lim, err, sizeof err);
    if (!p->sock)
        fail_msg("%s: PUB socket: %s", stream, err);
    if (zsock_connect(p->sock, w->pub_ep, err, sizeof err) != 0)
        fail_msg("%s: connect %s: %s", stream, w->pub_ep, err);
    p->relay = bus_relay_new(p->relay_db, stream, p->sock);
    assert_non_null(p->relay);
}

void
tp_produce(tp_producer_t *p, const char *topic, const char *json)
{
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    jsonmp_err_t jerr = {0};
    if (jsonmp_from_json(json, strlen(json), "data", 2, &data, &jerr) < 0) {
        char why[300];
        fail_msg("bad test event %s: %s", topic, jsonmp_err_str(&jerr, why, sizeof why));
    }
    evmsg_err_t err = {0};
    assert_int_equal(db_begin(p->db), 0);
    if (bus_emit(p->db, p->stream, topic, 1, data.data, data.size, &err) != 0)
        fail_msg("emit %s: %s %s", topic, err.reason, db_error(p->db));
    assert_int_equal(db_commit(p->db), 0);
    msgpack_sbuffer_destroy(&data);
}

static void *
tp_relay_main(void *arg)
{
    tp_producer_t *p = arg;
    bus_relay_run(p->relay, &p->stop);
    return NULL;
}

void
tp_producer_thread(tp_producer_t *p)
{
    assert_false(p->threaded);
    assert_int_equal(pthread_create(&p->thread, NULL, tp_relay_main, p), 0);
    p->threaded = true;
}

void
tp_pump(tp_producer_t *p, int n, int ms)
{
    for (int64_t end = tp_now_ms() + ms; tp_now_ms() < end; tp_sleep_ms(20))
        for (int i = 0; i < n; i++)
            bus_relay_step(p[i].relay, tp_now_ms());
}

void
tp_producer_close(tp_producer_t *p)
{
    if (p->threaded) {
        p->stop = 1;
        pthread_join(p->thread, NULL);
        p->threaded = false;
    }
    bus_relay_destroy(&p->relay);
    zsock_close(&p->sock);
    db_destroy(&p->db);
    db_destroy(&p->relay_db);
}

/* ---- rpc --------------------------------------------------------------------------------- */

rpc_client_t *
tp_world_client(const tp_world_t *w, const char *ep, const char *server_pub, const char *who)
{
    char pub[41], sec[41], err[256];
    tp_world_pair(w, who, pub, sec);
    rpc_client_t *c = rpc_client_new(w->ctx, ep, server_pub, pub, sec, err, sizeof err);
    if (!c)
        fail_msg("rpc client %s -> %s: %s", who, ep, err);
    return c;
}

rpc_reply_t
tp_call(rpc_client_t *c, const char *op, const char *json, int timeout_ms, int tries)
{
    static int rids;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    jsonmp_err_t jerr = {0};
    if (jsonmp_from_json(json, strlen(json), "body", 2, &body, &jerr) < 0) {
        char why[300];
        fail_msg("bad test JSON for %s: %s", op, jsonmp_err_str(&jerr, why, sizeof why));
    }
    char rid[32];
    snprintf(rid, sizeof rid, "t-%d-%d", (int)getpid(), ++rids);
    rpc_reply_t r = {0};
    evmsg_err_t err = {0};
    int rc = rpc_call(c, op, rid, body.data, body.size, timeout_ms, tries, &r, &err);
    msgpack_sbuffer_destroy(&body);
    if (rc != 0)
        fail_msg("%s: no reply: %s %s", op, err.path, err.reason);
    return r;
}

rpc_reply_t
tp_world_call(const tp_world_t *w, const char *ep, const char *server_pub, const char *who,
              const char *op, const char *json, int timeout_ms, int tries)
{
    rpc_client_t *c = tp_world_client(w, ep, server_pub, who);
    rpc_reply_t r = tp_call(c, op, json, timeout_ms, tries);
    rpc_client_destroy(&c);
    return r;
}

json_t *
tp_reply_json(const rpc_reply_t *r)
{
    if (!r->ok)
        fail_msg("rpc failed: %s %s %s", r->code, r->field, r->en);
    char *text = jsonmp_to_json(r->result, r->result_len, "result", NULL, NULL);
    assert_non_null(text);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(o);
    return o;
}
