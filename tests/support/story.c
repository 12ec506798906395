#include "story.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <zmq.h>

#include "date.h"
#include "evmsg.h"
#include "jsonmp.h"
#include "keys.h"
#include "zsock.h"

#define S_START_MS 30000

static const char *const s_names[STORY_NSVC] = {"intake", "recording", "review", "publication",
                                                "creditpush"};
static const char *const s_bind_var[STORY_NSVC] = {"SX_INTAKE_BIND", "SX_RECORDING_BIND",
                                                   "SX_REVIEW_BIND", "SX_PUBLICATION_BIND",
                                                   "SX_CREDITPUSH_BIND"};

const char *
story_svc_name(story_svc_t svc)
{
    return svc < STORY_NSVC ? s_names[svc] : "?";
}

int64_t
story_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
story_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void
story_today(char buf[11])
{
    date_format(date_from_unix_cst(time(NULL)), buf);
}

static void
s_err(story_world_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

/* A free loopback port, or -1 (errno set). Below Linux's ephemeral range (32768-60999),
 * walked from a per-process start: a port the kernel handed out for bind(0) could be
 * taken, before the service binds it, as the source port of any outgoing connection
 * (Redis, ZeroMQ, HTTP), and the service would then fail to start. */
int
story_free_port(void)
{
    enum { LO = 20000, SPAN = 12768 };
    static unsigned next;
    static bool started;
    if (!started) {
        next = (unsigned)getpid() * 2654435761u % SPAN;
        started = true;
    }
    for (int tries = 0; tries < SPAN; tries++) {
        int port = LO + (int)(next++ % SPAN);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return port;
    }
    errno = EADDRINUSE;
    return -1;
}

static void
s_log_path(const story_world_t *w, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s.log", w->o.log_dir, name);
}

static long
s_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Whether the log holds a line with text (and text2, when not NULL) after byte offset
 * from. */
static bool
s_log_has_after2(const char *path, long from, const char *text, const char *text2)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    fseek(f, from, SEEK_SET);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) && (!text2 || strstr(line, text2));
    fclose(f);
    return found;
}

static bool
s_log_has_after(const char *path, long from, const char *text)
{
    return s_log_has_after2(path, from, text, NULL);
}

/* fork + exec bin with env added to ours, output appended to the log. */
static pid_t
s_spawn(story_world_t *w, const char *bin, const char *const args[], const char *log,
        char *const env[])
{
    char path[1024], logfile[1024];
    snprintf(path, sizeof path, "%s/%s", w->o.bin_dir, bin);
    s_log_path(w, log, logfile, sizeof logfile);
    pid_t pid = fork();
    if (pid < 0) {
        s_err(w, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        const char *argv[16] = {path};
        for (size_t i = 0; args && args[i] && i + 2 < 16; i++)
            argv[i + 1] = args[i];
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

pid_t *
story_pid(story_world_t *w, const char *name)
{
    if (strcmp(name, "broker") == 0)
        return &w->broker;
    if (strcmp(name, "fake-credit") == 0)
        return &w->fake;
    for (int i = 0; i < STORY_NSVC; i++)
        if (strcmp(name, s_names[i]) == 0)
            return &w->svc[i];
    return NULL;
}

/* The environment of a process of the world: strings owned by env[] (free each). */
static int
s_env(story_world_t *w, const char *name, char *env[], int max)
{
    int n = 0;
#define S_ADD(...)                                                                                 \
    do {                                                                                           \
        if (n + 1 < max && asprintf(&env[n], __VA_ARGS__) >= 0)                                    \
            n++;                                                                                   \
    } while (0)
    S_ADD("SX_OPS_PORT=0");
    S_ADD("SX_KEYS_FILE=%s", w->keys);
    /* The broker logs each accepted subscription at debug: story_sub_new waits for it. */
    S_ADD("SX_LOG_LEVEL=%s", strcmp(name, "broker") == 0 ? "debug"
                             : w->o.log_level            ? w->o.log_level
                                                         : "info");
    if (strcmp(name, "broker") == 0) {
        S_ADD("SX_BROKER_PUB_BIND=%s", w->pub_ep);
        S_ADD("SX_BROKER_SUB_BIND=%s", w->sub_ep);
        S_ADD("SX_BROKER_KEY_FILE=%s/broker.key", w->keydir);
        if (w->o.broker_sndhwm > 0)
            S_ADD("SX_BROKER_SNDHWM=%d", w->o.broker_sndhwm);
    } else if (strcmp(name, "fake-credit") == 0) {
        S_ADD("SX_CREDIT_TOKEN=" STORY_CREDIT_TOKEN);
        S_ADD("SX_CREDIT_HMAC_KEY=" STORY_CREDIT_KEY);
    } else {
        int i = 0;
        while (i < STORY_NSVC && strcmp(name, s_names[i]) != 0)
            i++;
        S_ADD("SX_PG_URL=%s", w->o.pg_url);
        S_ADD("SX_REDIS_URL=%s", w->o.redis_url);
        S_ADD("SX_KEY_FILE=%s/%s.key", w->keydir, name);
        S_ADD("SX_BROKER_PUB=%s", w->pub_ep);
        S_ADD("SX_BROKER_SUB=%s", w->sub_ep);
        S_ADD("SX_BROKER_PUBLIC_KEY=%s", w->broker_pub);
        S_ADD("SX_SCHEMAS=%s/schemas", w->o.top);
        S_ADD("SX_CALENDAR=%s/schemas/calendar/cn-workdays.json", w->o.top);
        S_ADD("%s=%s", s_bind_var[i], w->door[i]);
        if (i == STORY_PUBLICATION) {
            S_ADD("SX_PORTAL_BIND=127.0.0.1");
            S_ADD("SX_PORTAL_PORT=%d", w->portal_port);
            S_ADD("SX_PORTAL_MAX_STALE_MS=0"); /* the story reads right after each change */
        } else if (i == STORY_RECORDING) {
            S_ADD("SX_RECORDING_SIGN_KEY=%s/recording-seal.key", w->keydir);
        } else if (i == STORY_REVIEW && w->o.pool_agency) {
            S_ADD("SX_REVIEW_POOL_AGENCY=%s", w->o.pool_agency);
        } else if (i == STORY_CREDITPUSH) {
            S_ADD("SX_CREDIT_URL=http://127.0.0.1:%d/api/v1/sgs", w->fake_port);
            S_ADD("SX_CREDIT_TOKEN=" STORY_CREDIT_TOKEN);
            S_ADD("SX_CREDIT_HMAC_KEY=" STORY_CREDIT_KEY);
            S_ADD("SX_CREDIT_BACKOFF_MS=200");
            S_ADD("SX_CREDIT_BACKOFF_MAX_MS=1000");
            if (w->o.credit_batch > 0)
                S_ADD("SX_CREDIT_BATCH=%d", w->o.credit_batch);
        }
    }
#undef S_ADD
    env[n] = NULL;
    return n;
}

/* Whether the service's door answers a request from the service's own key within
 * 200 ms (an error reply counts). */
static bool
s_door_answers(story_world_t *w, story_svc_t svc)
{
    char path[700], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "%s/%s.key", w->keydir, s_names[svc]);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0)
        return false;
    rpc_client_t *c =
        rpc_client_new(w->ctx, w->door[svc], w->svc_pub[svc], pub, sec, err, sizeof err);
    if (!c)
        return false;
    rpc_reply_t r = {0};
    evmsg_err_t e = {{0}, {0}};
    bool up = rpc_call(c, "story.ping", "story-ping", NULL, 0, 200, 1, &r, &e) == 0;
    rpc_reply_clear(&r);
    rpc_client_destroy(&c);
    return up;
}

pid_t
story_start(story_world_t *w, const char *name, int timeout_ms)
{
    pid_t *slot = story_pid(w, name);
    if (!slot) {
        s_err(w, "%s: not a process of the world", name);
        return -1;
    }
    char log[1024], bin[64], port[16];
    s_log_path(w, name, log, sizeof log);
    long from = s_file_size(log);
    char *env[40];
    s_env(w, name, env, 40);
    const char *args[4] = {NULL};
    const char *ready;
    if (strcmp(name, "fake-credit") == 0) {
        snprintf(bin, sizeof bin, "fake-credit");
        snprintf(port, sizeof port, "%d", w->fake_port);
        args[0] = "--port";
        args[1] = port;
        ready = "fake-credit listening";
    } else {
        snprintf(bin, sizeof bin, "sx-%s", name);
        ready = " started";
    }
    /* Below info a service does not log that it started: then its door answering (any
     * reply to its own key) says it is up. */
    int door = -1;
    const char *lvl = w->o.log_level ? w->o.log_level : "info";
    if ((strcmp(lvl, "warn") == 0 || strcmp(lvl, "error") == 0) && strcmp(name, "broker") != 0 &&
        strcmp(name, "fake-credit") != 0)
        for (int i = 0; i < STORY_NSVC; i++)
            if (strcmp(name, s_names[i]) == 0)
                door = i;
    pid_t pid = s_spawn(w, bin, args, name, env);
    for (int i = 0; env[i]; i++)
        free(env[i]);
    if (pid < 0)
        return -1;
    *slot = pid;
    for (int64_t end = story_now_ms() + timeout_ms; story_now_ms() < end; story_sleep_ms(20)) {
        if (door < 0 && s_log_has_after(log, from, ready))
            return pid;
        if (door >= 0 && s_door_answers(w, (story_svc_t)door))
            return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            *slot = 0;
            s_err(w, "%s exited (status %d) before it started: see %s", name, status, log);
            return -1;
        }
    }
    s_err(w, "%s did not log \"%s\" in %d ms: see %s", name, ready, timeout_ms, log);
    return -1;
}

int
story_stop(story_world_t *w, const char *name, int sig, int timeout_ms)
{
    pid_t *slot = story_pid(w, name);
    if (!slot || *slot <= 0)
        return -1;
    pid_t pid = *slot;
    *slot = 0;
    kill(pid, sig);
    int status = 0;
    for (int64_t end = story_now_ms() + timeout_ms; story_now_ms() < end; story_sleep_ms(10))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

long
story_vmhwm_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

int
story_world_start(story_world_t *w, const story_opts_t *o)
{
    memset(w, 0, sizeof *w);
    w->o = *o;
    snprintf(w->run, sizeof w->run, "%x%lx", (unsigned)getpid(),
             (unsigned long)time(NULL) & 0xfffff);
    snprintf(w->keydir, sizeof w->keydir, "%s/story-keys-%s", o->log_dir, w->run);
    if (mkdir(w->keydir, 0700) != 0) {
        s_err(w, "%s: %s", w->keydir, strerror(errno));
        return -1;
    }
    char err[256], pub[41];
    if (keys_write_pair(w->keydir, "broker", w->broker_pub, err, sizeof err) != 0) {
        s_err(w, "broker key pair: %s", err);
        return -1;
    }
    snprintf(w->keys, sizeof w->keys, "%s/keys", w->keydir);
    FILE *f = fopen(w->keys, "w");
    if (!f) {
        s_err(w, "%s: %s", w->keys, strerror(errno));
        return -1;
    }
    fputs("# story keys\n", f);
    for (int i = 0; i < STORY_NSVC; i++) {
        if (keys_write_pair(w->keydir, s_names[i], w->svc_pub[i], err, sizeof err) != 0) {
            fclose(f);
            s_err(w, "key pair %s: %s", s_names[i], err);
            return -1;
        }
        fprintf(f, "%s svc:%s\n", w->svc_pub[i], s_names[i]);
        snprintf(w->door[i], sizeof w->door[i], "tcp://127.0.0.1:%d", story_free_port());
    }
    for (size_t i = 0; o->clients && o->clients[i][0]; i++) {
        if (keys_write_pair(w->keydir, o->clients[i][0], pub, err, sizeof err) != 0) {
            fclose(f);
            s_err(w, "key pair %s: %s", o->clients[i][0], err);
            return -1;
        }
        fprintf(f, "%s %s\n", pub, o->clients[i][1]);
    }
    fclose(f);
    snprintf(w->pub_ep, sizeof w->pub_ep, "tcp://127.0.0.1:%d", story_free_port());
    snprintf(w->sub_ep, sizeof w->sub_ep, "tcp://127.0.0.1:%d", story_free_port());
    w->portal_port = story_free_port();
    w->fake_port = story_free_port();
    w->ctx = zmq_ctx_new();
    static const char *const order[] = {"broker", "fake-credit", "intake",    "recording",
                                        "review", "publication", "creditpush"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (story_start(w, order[i], S_START_MS) < 0) {
            char why[sizeof w->err];
            snprintf(why, sizeof why, "%s", w->err);
            story_world_stop(w);
            snprintf(w->err, sizeof w->err, "%s", why);
            return -1;
        }
    return 0;
}

int
story_world_stop(story_world_t *w)
{
    static const char *const order[] = {"creditpush", "publication", "review", "recording",
                                        "intake",     "fake-credit", "broker"};
    int bad = 0;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        pid_t *slot = story_pid(w, order[i]);
        if (*slot > 0 && story_stop(w, order[i], SIGTERM, 10000) != 0)
            bad++;
    }
    if (w->pg) {
        PQfinish(w->pg);
        w->pg = NULL;
    }
    if (w->ctx) {
        zmq_ctx_term(w->ctx);
        w->ctx = NULL;
    }
    return bad;
}

/* ---- Calls ------------------------------------------------------------------------------ */

void
story_reply_clear(story_reply_t *r)
{
    if (r) {
        json_decref(r->result);
        memset(r, 0, sizeof *r);
    }
}

int
story_call(story_world_t *w, story_svc_t door, const char *who, const char *op, const char *rid,
           const char *body, story_reply_t *out)
{
    memset(out, 0, sizeof *out);
    char path[700], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "%s/%s.key", w->keydir, who);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0) {
        s_err(w, "%s: %s", who, err);
        return -1;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    jsonmp_err_t jerr = {0};
    if (body && jsonmp_from_json(body, strlen(body), "body", 2, &b, &jerr) != 0) {
        char why[300];
        s_err(w, "%s: body: %s", op, jsonmp_err_str(&jerr, why, sizeof why));
        msgpack_sbuffer_destroy(&b);
        return -1;
    }
    rpc_client_t *c =
        rpc_client_new(w->ctx, w->door[door], w->svc_pub[door], pub, sec, err, sizeof err);
    if (!c) {
        s_err(w, "%s: client: %s", op, err);
        msgpack_sbuffer_destroy(&b);
        return -1;
    }
    char myrid[64];
    if (!rid) {
        snprintf(myrid, sizeof myrid, "st-%s-%u", w->run, ++w->rid);
        rid = myrid;
    }
    rpc_reply_t r = {0};
    evmsg_err_t e = {{0}, {0}};
    int rc = rpc_call(c, op, rid, body ? b.data : NULL, body ? b.size : 0, 5000, 3, &r, &e);
    msgpack_sbuffer_destroy(&b);
    rpc_client_destroy(&c);
    if (rc != 0) {
        s_err(w, "%s to %s as %s: no reply: %s %s", op, s_names[door], who, e.path, e.reason);
        return -1;
    }
    out->ok = r.ok;
    if (r.ok) {
        char *text = jsonmp_to_json(r.result, r.result_len, "result", NULL, NULL);
        out->result = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (!out->result)
            out->result = json_object();
    } else {
        snprintf(out->code, sizeof out->code, "%s", r.code);
        snprintf(out->field, sizeof out->field, "%s", r.field);
        snprintf(out->en, sizeof out->en, "%s", r.en);
    }
    rpc_reply_clear(&r);
    return 0;
}

json_t *
story_do(story_world_t *w, story_svc_t door, const char *who, const char *op, const char *fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s_err(w, "%s: out of memory", op);
        return NULL;
    }
    story_reply_t r;
    int rc = story_call(w, door, who, op, NULL, body, &r);
    free(body);
    if (rc != 0)
        return NULL;
    if (!r.ok) {
        s_err(w, "%s as %s: %s at %s: %s", op, who, r.code, r.field, r.en);
        story_reply_clear(&r);
        return NULL;
    }
    return r.result;
}

json_t *
story_example(story_world_t *w, const char *who, const char *file)
{
    char path[1024], op[128];
    snprintf(path, sizeof path, "%s/deploy/examples/%s", w->o.top, file);
    const char *dash = strchr(file, '-');
    const char *dot = strrchr(file, '.');
    if (!dash || !dot || dot <= dash + 1 || (size_t)(dot - dash) > sizeof op) {
        s_err(w, "%s: not NN-<op>.json", file);
        return NULL;
    }
    snprintf(op, sizeof op, "%.*s", (int)(dot - dash - 1), dash + 1);
    FILE *f = fopen(path, "r");
    if (!f) {
        s_err(w, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return story_do(w, STORY_INTAKE, who, op, "%s", text);
}

/* ---- Subscribers ------------------------------------------------------------------------ */

struct story_sub {
    story_world_t *w;
    void *sock;
    json_t *events; /* [{topic, data}] in arrival order */
};

story_sub_t *
story_sub_new(story_world_t *w, const char *who, const char *const topics[])
{
    char path[700], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "%s/%s.key", w->keydir, who);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0) {
        s_err(w, "%s: %s", who, err);
        return NULL;
    }
    char blog[1024];
    s_log_path(w, "broker", blog, sizeof blog);
    long from = s_file_size(blog);
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.rcvhwm = 1000000;
    void *sock = zsock_client(w->ctx, ZMQ_SUB, w->broker_pub, pub, sec, &lim, err, sizeof err);
    if (!sock) {
        s_err(w, "subscriber %s: %s", who, err);
        return NULL;
    }
    for (size_t i = 0; topics && topics[i]; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
    if (zsock_connect(sock, w->sub_ep, err, sizeof err) != 0) {
        zsock_close(&sock);
        s_err(w, "subscriber %s: %s", who, err);
        return NULL;
    }
    /* Subscriptions reach the broker asynchronously: an event published before it
     * applied them would be missed, so wait until it logged each one. */
    for (size_t i = 0; topics && topics[i]; i++)
        for (int64_t end = story_now_ms() + 10000;; story_sleep_ms(10)) {
            if (s_log_has_after2(blog, from, "subscription accepted", topics[i]))
                break;
            if (story_now_ms() >= end) {
                zsock_close(&sock);
                s_err(w, "subscriber %s: the broker never accepted %s (see %s)", who, topics[i],
                      blog);
                return NULL;
            }
        }
    story_sub_t *s = calloc(1, sizeof *s);
    s->w = w;
    s->sock = sock;
    s->events = json_array();
    return s;
}

void
story_sub_destroy(story_sub_t **self_p)
{
    if (self_p && *self_p) {
        story_sub_t *s = *self_p;
        zsock_close(&s->sock);
        json_decref(s->events);
        free(s);
        *self_p = NULL;
    }
}

/* One message, if one is waiting: kept when it decodes. Returns 1, 0 (none), -1. */
static int
s_sub_recv(story_sub_t *s, int timeout_ms)
{
    zmq_pollitem_t it = {s->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    zmq_msg_t parts[2];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < 2)
            parts[n++] = m;
        else
            zmq_msg_close(&m);
    }
    if (n == 2) {
        evmsg_t *msg = NULL;
        evmsg_err_t e = {{0}, {0}};
        if (evmsg_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &msg, &e) == 0) {
            size_t dlen;
            const void *data = evmsg_data_bytes(msg, &dlen);
            char *json = jsonmp_to_json(data, dlen, "data", NULL, NULL);
            json_t *d = json ? json_loads(json, 0, NULL) : NULL;
            free(json);
            if (d)
                json_array_append_new(s->events, json_pack("{s:s%,s:o}", "topic",
                                                           (const char *)zmq_msg_data(&parts[0]),
                                                           zmq_msg_size(&parts[0]), "data", d));
            evmsg_destroy(&msg);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return 1;
}

void *
story_sub_socket(story_sub_t *s)
{
    return s->sock;
}

int
story_sub_next_ids(story_sub_t *s, int timeout_ms, char topic[129], int64_t *case_id,
                   int64_t *record_id)
{
    *case_id = *record_id = 0;
    topic[0] = '\0';
    zmq_pollitem_t it = {s->sock, 0, ZMQ_POLLIN, 0};
    if (timeout_ms > 0 && zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    zmq_msg_t parts[2];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, timeout_ms > 0 || n ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            return n ? -1 : 0;
        }
        more = zmq_msg_more(&m);
        if (n < 2)
            parts[n++] = m;
        else
            zmq_msg_close(&m);
    }
    int rc = -1;
    evmsg_t *msg = NULL;
    evmsg_err_t e = {{0}, {0}};
    if (n == 2 && evmsg_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &msg, &e) == 0) {
        size_t tl = zmq_msg_size(&parts[0]) < 128 ? zmq_msg_size(&parts[0]) : 128;
        memcpy(topic, zmq_msg_data(&parts[0]), tl);
        topic[tl] = '\0';
        evmsg_map_t d = evmsg_data(msg, &e);
        uint64_t v = 0;
        if (evmsg_map_uint(&d, "case_id", EVMSG_OPTIONAL, INT64_MAX, &v) == 1)
            *case_id = (int64_t)v;
        v = 0;
        if (evmsg_map_uint(&d, "record_id", EVMSG_OPTIONAL, INT64_MAX, &v) == 1)
            *record_id = (int64_t)v;
        evmsg_destroy(&msg);
        rc = 1;
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}

int
story_sub_pump(story_sub_t *s, int timeout_ms)
{
    int64_t end = story_now_ms() + timeout_ms;
    int wait = timeout_ms;
    while (s_sub_recv(s, wait) == 1)
        wait = 0;
    while (story_now_ms() < end && s_sub_recv(s, (int)(end - story_now_ms())) == 1)
        ;
    return (int)json_array_size(s->events);
}

static bool
s_match(json_t *ev, const char *topic, const char *key, json_int_t val)
{
    if (topic && strcmp(json_string_value(json_object_get(ev, "topic")), topic) != 0)
        return false;
    if (!key)
        return true;
    json_t *v = json_object_get(json_object_get(ev, "data"), key);
    return json_is_integer(v) && json_integer_value(v) == val;
}

int
story_sub_count(story_sub_t *s, const char *topic, const char *key, json_int_t val)
{
    int n = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(s->events, i, ev) n += s_match(ev, topic, key, val);
    return n;
}

json_t *
story_sub_wait(story_sub_t *s, const char *topic, const char *key, json_int_t val, int timeout_ms)
{
    size_t seen = 0;
    for (int64_t end = story_now_ms() + timeout_ms;;) {
        for (; seen < json_array_size(s->events); seen++) {
            json_t *ev = json_array_get(s->events, seen);
            if (s_match(ev, topic, key, val))
                return json_object_get(ev, "data");
        }
        int64_t left = end - story_now_ms();
        if (left <= 0)
            break;
        s_sub_recv(s, left > 100 ? 100 : (int)left);
    }
    if (key)
        s_err(s->w, "no event %s with %s = %lld in %d ms", topic, key, (long long)val, timeout_ms);
    else
        s_err(s->w, "no event %s in %d ms", topic, timeout_ms);
    return NULL;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

int
story_http_get(int port, const char *path, json_t **body)
{
    if (body)
        *body = NULL;
    char *text = NULL;
    int status = story_http_get_text(port, path, &text);
    if (body && text)
        *body = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    return status;
}

int
story_http_get_text(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (n >= (int)sizeof req || write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    size_t cap = 65536, got = 0;
    char *resp = malloc(cap);
    ssize_t r;
    while ((r = read(fd, resp + got, cap - 1 - got)) > 0) {
        got += (size_t)r;
        if (got + 1 == cap) {
            if (cap >= ((size_t)64 << 20))
                break;
            cap *= 2;
            resp = realloc(resp, cap);
        }
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/%*s %d", &status) != 1)
        status = 0;
    const char *b = strstr(resp, "\r\n\r\n");
    *body = strdup(b ? b + 4 : "");
    free(resp);
    return status;
}

json_t *
story_credit_stats(story_world_t *w)
{
    json_t *o = NULL;
    if (story_http_get(w->fake_port, "/admin/stats", &o) != 200) {
        json_decref(o);
        s_err(w, "fake-credit /admin/stats did not answer 200");
        return NULL;
    }
    return o;
}

/* ---- Waiting ---------------------------------------------------------------------------- */

int
story_wait(story_cond_fn *cond, void *arg, int timeout_ms, int step_ms)
{
    for (int64_t end = story_now_ms() + timeout_ms;; story_sleep_ms(step_ms)) {
        if (cond(arg))
            return 0;
        if (story_now_ms() >= end)
            return -1;
    }
}

long long
story_pg_count(story_world_t *w, const char *sql)
{
    if (!w->pg || PQstatus(w->pg) != CONNECTION_OK) {
        if (w->pg)
            PQfinish(w->pg);
        w->pg = PQconnectdb(w->o.pg_url);
        if (PQstatus(w->pg) != CONNECTION_OK) {
            s_err(w, "PostgreSQL: %s", PQerrorMessage(w->pg));
            return -1;
        }
    }
    PGresult *r = PQexec(w->pg, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        s_err(w, "%s: %s", sql, PQerrorMessage(w->pg));
    PQclear(r);
    return v;
}

int
story_pg_wait(story_world_t *w, const char *sql, long long want, int timeout_ms)
{
    long long v = -1;
    for (int64_t end = story_now_ms() + timeout_ms; story_now_ms() < end; story_sleep_ms(20))
        if ((v = story_pg_count(w, sql)) >= want)
            return 0;
    s_err(w, "%s: %lld after %d ms, wanted %lld", sql, v, timeout_ms, want);
    return -1;
}

/* ---- A case's life ---------------------------------------------------------------------- */

int
story_case_life(story_world_t *w, const story_case_t *c, int64_t *case_id)
{
    json_t *r;
    if (c->officers_json)
        r = story_do(w, STORY_INTAKE, c->who, "case.open",
                     "{\"case_no\":\"%s\",\"matter_code\":\"%s\",\"party\":%s,\"opened_on\":\"%s\","
                     "\"summary\":\"story\",\"on_site\":true,\"act_date\":\"%s\",\"officers\":%s}",
                     c->case_no, c->matter_code, c->party_json, c->date, c->date, c->officers_json);
    else
        r = story_do(w, STORY_INTAKE, c->who, "case.open",
                     "{\"case_no\":\"%s\",\"matter_code\":\"%s\",\"party\":%s,\"opened_on\":\"%s\","
                     "\"summary\":\"story\"}",
                     c->case_no, c->matter_code, c->party_json, c->date);
    if (!r)
        return -1;
    *case_id = json_integer_value(json_object_get(r, "case_id"));
    json_decref(r);
    r = story_do(w, STORY_INTAKE, c->who, "case.propose",
                 "{\"case_no\":\"%s\",\"category\":\"%s\",\"content\":\"%s\",\"fine\":\"%s\","
                 "\"legal_basis\":\"%s\"}",
                 c->case_no, c->penalty ? "罚款" : "准予行政许可",
                 c->penalty ? "处罚款" : "准予许可", c->fine ? c->fine : "0",
                 c->penalty ? "《中华人民共和国食品安全法》第一百二十六条"
                            : "《中华人民共和国行政许可法》第三十八条");
    if (!r)
        return -1;
    bool review = json_is_true(json_object_get(r, "requires_review"));
    json_decref(r);
    if (review) {
        s_err(w, "%s: the proposal requires review; story_case_life does not review", c->case_no);
        return -1;
    }
    char body[4][512];
    snprintf(body[0], sizeof body[0],
             "{\"case_no\":\"%s\",\"decision_no\":\"%s\",\"decision_date\":\"%s\"}", c->case_no,
             c->decision_no, c->date);
    snprintf(body[1], sizeof body[1],
             "{\"case_no\":\"%s\",\"served_on\":\"%s\",\"method\":\"direct\"}", c->case_no,
             c->date);
    snprintf(body[2], sizeof body[2],
             "{\"case_no\":\"%s\",\"executed_on\":\"%s\",\"method\":\"voluntary\"}", c->case_no,
             c->date);
    snprintf(body[3], sizeof body[3], "{\"case_no\":\"%s\",\"closed_on\":\"%s\"}", c->case_no,
             c->date);
    static const char *const ops[4] = {"case.decide", "case.serve", "case.execute", "case.close"};
    for (int i = 0; i < 4; i++) {
        if (i == 2 && !c->penalty)
            continue; /* a licence closes from served */
        if (!(r = story_do(w, STORY_INTAKE, c->who, ops[i], "%s", body[i])))
            return -1;
        json_decref(r);
    }
    return 0;
}
