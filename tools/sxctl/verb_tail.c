/* sxctl tail: events from the broker as JSON lines.
 *
 *   usage: sxctl tail TOPIC-PREFIX [--endpoint SUB_ENDPOINT] [--key KEYFILE]
 *                     [--server-key Z85|FILE] [--count N] [--timeout MS] [--heartbeats]
 *
 * Subscribes to TOPIC-PREFIX on the broker's subscriber side (CURVE SUB) and prints one
 * line per event, envelopes decoded by evmsg and data converted by jsonmp:
 *   {"topic":...,"seq":...,"aseq":...,"src":...,"at":...,"v":...,"data":{...}}
 * Malformed messages are reported on stderr and skipped. Stops after N events, after MS,
 * or on SIGINT/SIGTERM.
 *
 * exit status: 0 stopped as asked (N events, the timeout without --count, a signal),
 * 1 fewer than N events before the timeout, or the socket failed, 2 usage error. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "evmsg.h"
#include "jsonmp.h"
#include "keys.h"
#include "client.h"
#include "sxctl.h"
#include "zsock.h"

#define S_ENDPOINT "tcp://127.0.0.1:7702" /* the broker's default SX_BROKER_SUB_BIND */

/* The process's stop flag (SIGINT, SIGTERM). */
static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    const char *prefix, *endpoint, *key_file, *server_key;
    long long count;      /* 0: no limit */
    long long timeout_ms; /* 0: none */
    bool heartbeats;
} s_args_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A topic frame as printable text for a warning (other bytes as '?', truncated). */
static void
s_show_topic(const char *t, size_t n, char out[EVMSG_TOPIC_MAX + 1])
{
    size_t k = n < EVMSG_TOPIC_MAX ? n : EVMSG_TOPIC_MAX;
    for (size_t i = 0; i < k; i++)
        out[i] = (t[i] >= 0x20 && t[i] < 0x7f) ? t[i] : '?';
    out[k] = '\0';
}

/* Handles one [topic][envelope] message. Returns 1 printed, 0 skipped. */
static int
s_event(const char *topic, size_t tlen, const void *env, size_t elen, bool heartbeats)
{
    char shown[EVMSG_TOPIC_MAX + 1];
    s_show_topic(topic, tlen, shown);
    bool system = evmsg_topic_is_system(topic, tlen);
    if (system && tlen >= 4 && memcmp(topic, "_hb.", 4) == 0 && !heartbeats)
        return 0;
    evmsg_err_t e = {{0}, {0}};
    char why[300];
    if (!system && evmsg_topic_check(topic, tlen, NULL, &e) < 0) {
        sxctl_warn("tail", "skipped a message: topic \"%s\": %s", shown,
                   evmsg_err_str(&e, why, sizeof why));
        return 0;
    }
    evmsg_t *msg;
    if (evmsg_decode(env, elen, &msg, &e) < 0) {
        sxctl_warn("tail", "skipped a message on %s: %s", shown,
                   evmsg_err_str(&e, why, sizeof why));
        return 0;
    }
    size_t dlen;
    const void *data = evmsg_data_bytes(msg, &dlen);
    jsonmp_err_t jerr = {0};
    size_t jlen;
    char *json = jsonmp_to_json(data, dlen, "data", &jlen, &jerr);
    if (!json) {
        sxctl_warn("tail", "skipped a message on %s: %s", shown,
                   jsonmp_err_str(&jerr, why, sizeof why));
        evmsg_destroy(&msg);
        return 0;
    }
    /* The topic and src were checked above ([a-zA-Z0-9_.-] only): no escaping needed. */
    const evmsg_header_t *h = evmsg_header(msg);
    printf("{\"topic\":\"%.*s\",\"seq\":%" PRIu64 ",\"aseq\":%" PRIu64
           ",\"src\":\"%s\",\"at\":%" PRId64 ",\"v\":%" PRIu32 ",\"data\":",
           (int)tlen, topic, h->seq, h->aseq, h->src, h->at, h->v);
    fwrite(json, 1, jlen, stdout);
    fputs("}\n", stdout);
    fflush(stdout);
    free(json);
    evmsg_destroy(&msg);
    return 1;
}

/* Receives one message (all its frames) from sub and handles it. Returns 1 printed,
 * 0 skipped, -1 when libzmq failed (EINTR included). */
static int
s_receive(void *sub, zmq_msg_t *frames, bool heartbeats)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t *f = &frames[n < 2 ? n : 2]; /* frames past the second are dropped */
        if (zmq_msg_recv(f, sub, 0) < 0)
            return -1;
        more = zmq_msg_more(f);
        n++;
    }
    if (n != 2) {
        sxctl_warn("tail", "skipped a message of %d frames (expected [topic][envelope])", n);
        return 0;
    }
    return s_event(zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]), zmq_msg_data(&frames[1]),
                   zmq_msg_size(&frames[1]), heartbeats);
}

static int
s_parse_args(int argc, char **argv, s_args_t *a)
{
    bool have_prefix = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **opt = NULL;
        long long *num = NULL;
        if (strcmp(arg, "--endpoint") == 0)
            opt = &a->endpoint;
        else if (strcmp(arg, "--key") == 0)
            opt = &a->key_file;
        else if (strcmp(arg, "--server-key") == 0)
            opt = &a->server_key;
        else if (strcmp(arg, "--count") == 0)
            num = &a->count;
        else if (strcmp(arg, "--timeout") == 0)
            num = &a->timeout_ms;
        if (opt || num) {
            if (++i == argc)
                return sxctl_usage("tail", "%s needs a value", arg);
            if (opt) {
                *opt = argv[i];
                continue;
            }
            char *end;
            errno = 0;
            long long v = strtoll(argv[i], &end, 10);
            if (errno || end == argv[i] || *end || v < 1 || v > INT32_MAX)
                return sxctl_usage("tail", "%s: expected a whole number 1..%d, got '%s'", arg,
                                   INT32_MAX, argv[i]);
            *num = v;
        } else if (strcmp(arg, "--heartbeats") == 0) {
            a->heartbeats = true;
        } else if (strcmp(arg, "--") == 0 && i + 1 < argc && !have_prefix) {
            a->prefix = argv[++i];
            have_prefix = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return sxctl_usage("tail", "unknown option '%s'", arg);
        } else if (!have_prefix) {
            a->prefix = arg;
            have_prefix = true;
        } else {
            return sxctl_usage("tail", "expected one TOPIC-PREFIX, got '%s' too", arg);
        }
    }
    if (!have_prefix)
        return sxctl_usage("tail", "expected TOPIC-PREFIX ('' for every topic)");
    if (strlen(a->prefix) > EVMSG_TOPIC_MAX)
        return sxctl_usage("tail", "TOPIC-PREFIX longer than %d bytes", EVMSG_TOPIC_MAX);
    if (!a->endpoint)
        a->endpoint = getenv("SX_BROKER_SUB");
    if (!a->endpoint || !*a->endpoint)
        a->endpoint = S_ENDPOINT;
    if (!strstr(a->endpoint, "://"))
        return sxctl_usage("tail", "--endpoint: expected e.g. %s, got '%s'", S_ENDPOINT,
                           a->endpoint);
    return sxctl_keys_default("tail", &a->key_file, &a->server_key, "SX_BROKER_PUBLIC_KEY",
                              "broker key");
}

static int
s_tail(int argc, char **argv)
{
    s_args_t a = {0};
    int rc = s_parse_args(argc, argv, &a);
    if (rc != SXCTL_OK)
        return rc;
    sxctl_keys_t keys;
    char err[512] = "";
    if ((rc = sxctl_keys_read("tail", a.key_file, a.server_key, "broker key", &keys)) != SXCTL_OK)
        return rc;

    /* No SA_RESTART: a signal ends zmq_poll with EINTR, and the loop looks at the flag. */
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    if (!ctx)
        return sxctl_fail("tail", "no ZeroMQ context");
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    void *sub = zsock_client(ctx, ZMQ_SUB, keys.srv, keys.pub, keys.sec, &lim, err, sizeof err);
    explicit_bzero(keys.sec, sizeof keys.sec);
    if (!sub || zsock_connect(sub, a.endpoint, err, sizeof err) < 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, a.prefix, strlen(a.prefix)) != 0) {
        if (sub && !err[0])
            snprintf(err, sizeof err, "subscribe: %s", zmq_strerror(zmq_errno()));
        zsock_close(&sub);
        zmq_ctx_term(ctx);
        return sxctl_fail("tail", "%s: %s", a.endpoint, err);
    }

    zmq_msg_t frames[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&frames[i]);
    long long printed = 0;
    int64_t deadline = a.timeout_ms ? s_now_ms() + a.timeout_ms : INT64_MAX;
    rc = SXCTL_OK;
    while (!s_stop && (!a.count || printed < a.count)) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0) {
            if (a.count)
                rc = sxctl_fail("tail", "timeout: %lld of %lld events in %lld ms", printed, a.count,
                                a.timeout_ms);
            break;
        }
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, left < 1000 ? (long)left : 1000);
        if (n < 0 && zmq_errno() == EINTR)
            continue;
        if (n < 0) {
            rc = sxctl_fail("tail", "zmq_poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (n == 0)
            continue;
        int got = s_receive(sub, frames, a.heartbeats);
        if (got < 0 && zmq_errno() != EINTR) {
            rc = sxctl_fail("tail", "receive: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (got > 0)
            printed++;
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&frames[i]);
    zsock_close(&sub);
    zmq_ctx_term(ctx);
    return rc;
}

const sxctl_verb_t sxctl_verb_tail = {
    "tail",
    "print events from the broker as JSON lines",
    "usage: sxctl tail TOPIC-PREFIX [--endpoint SUB_ENDPOINT] [--key KEYFILE]\n"
    "                  [--server-key Z85|FILE] [--count N] [--timeout MS] [--heartbeats]\n"
    "\n"
    "Subscribes at the broker to every topic that starts with TOPIC-PREFIX (e.g.\n"
    "case.decided.; '' for all) and prints one line of JSON per event:\n"
    "  {\"topic\":\"...\",\"seq\":1,\"aseq\":1,\"src\":\"intake\",\"at\":1700000000000,\"v\":1,"
    "\"data\":{...}}\n"
    "at is unix time in ms; data is the event's map (msgpack bin shows as\n"
    "{\"$bin\": \"<hex>\"}). A message that does not decode is reported on stderr\n"
    "and skipped. The broker checks subscriptions against the key's identity: a service\n"
    "(svc:...) may subscribe to any prefix; a department only to whole topics that end in\n"
    "its own agency code, and a refused subscription simply receives nothing. Events sent\n"
    "before the subscription reached the broker are not seen (PUB/SUB).\n"
    "\n"
    "options:\n"
    "  --endpoint SUB_ENDPOINT  the broker's subscriber side. Default: $SX_BROKER_SUB,\n"
    "                           else " S_ENDPOINT ".\n"
    "  --key KEYFILE            this client's key pair file (NAME.key, from `sxctl\n"
    "                           keygen`), registered in the broker's key file.\n"
    "                           Default: $SX_KEY_FILE.\n"
    "  --server-key Z85|FILE    the broker's public key: 40 Z85 characters, or a NAME.pub\n"
    "                           or NAME.key file. Default: $SX_BROKER_PUBLIC_KEY.\n"
    "  --count N                stop after printing N events.\n"
    "  --timeout MS             stop after MS milliseconds.\n"
    "  --heartbeats             also print the streams' heartbeats (topics _hb.<stream>,\n"
    "                           whose seq is the stream's last), skipped otherwise;\n"
    "                           the prefix must cover them (_hb. or '').\n"
    "Without --count and --timeout it runs until SIGINT or SIGTERM.\n"
    "\n"
    "environment: SX_BROKER_SUB, SX_KEY_FILE, SX_BROKER_PUBLIC_KEY (defaults for\n"
    "--endpoint, --key, --server-key).\n"
    "\n"
    "exit status: 0 stopped as asked (N events; the timeout when no --count; a signal),\n"
    "1 fewer than N events before the timeout, or the connection failed (reason on\n"
    "stderr), 2 usage error.\n",
    s_tail,
};
