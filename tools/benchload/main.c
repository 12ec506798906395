/* benchload: a load client for a service's rpc door (make bench-intake).
 *
 *   benchload [-c CLIENTS] [-i INFLIGHT] [-w WARMUP_S] [-d SECONDS] [-o OP]
 *             ENDPOINT SERVER_PUBLIC_KEY KEYDIR
 *
 * CLIENTS (default 16) DEALER clients, each with its own key pair KEYDIR/client<i>.key
 * (i from 0; each a department's key), keep up to INFLIGHT (default 16) requests of OP
 * (default case.open) in flight each, for WARMUP_S seconds (default 2) unmeasured and
 * then SECONDS (default 20) measured. A request's body is KEYDIR/client<i>.json, or
 * KEYDIR/body.json when that is missing: JSON in which every %N% is replaced by a number
 * unique to the request (for case numbers and the like). Every request has a fresh rid.
 *
 * Prints one line of key=value figures on stdout: acks (ok replies in the measured
 * window), acks_per_s, p50_ack_ms, p90_ack_ms, p99_ack_ms, max_ack_ms (send to reply),
 * errors (error replies; the first few codes go to stderr). Exit 0 when it ran, 1 when
 * it could not start, 2 on bad usage. Bounded: it stops after WARMUP_S + SECONDS + 10 s
 * whatever happens, and waits at most 5 s for the replies still in flight. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "util.h"

#define S_CLIENTS_MAX  64
#define S_INFLIGHT_MAX 256
#define S_BODY_MAX     (64 * 1024)

typedef struct {
    rpc_client_t *rpc;
    char *tmpl;                        /* the body's JSON with %N% placeholders */
    uint64_t seq;                      /* requests sent */
    int inflight;                      /* requests awaiting a reply */
    uint64_t slot_seq[S_INFLIGHT_MAX]; /* which request each slot holds (0: free) */
    int64_t slot_t0[S_INFLIGHT_MAX];   /* its send time, µs */
} s_client_t;

static int64_t
s_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(S_BODY_MAX + 1);
    size_t n = buf ? fread(buf, 1, S_BODY_MAX, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* The body of request number n: the template with %N% replaced, as msgpack. */
static int
s_body(const char *tmpl, uint64_t n, msgpack_sbuffer *out)
{
    char json[S_BODY_MAX + 1024], num[24];
    int numlen = snprintf(num, sizeof num, "%" PRIu64, n);
    size_t len = 0;
    for (const char *p = tmpl; *p && len + 32 < sizeof json;) {
        if (strncmp(p, "%N%", 3) == 0) {
            memcpy(json + len, num, (size_t)numlen);
            len += (size_t)numlen;
            p += 3;
        } else
            json[len++] = *p++;
    }
    msgpack_sbuffer_clear(out);
    jsonmp_err_t err = {{0}, {0}, 0, 0};
    if (jsonmp_from_json(json, len, "body", 2, out, &err) < 0) {
        char why[300];
        fprintf(stderr, "benchload: body: %s\n", jsonmp_err_str(&err, why, sizeof why));
        return -1;
    }
    return 0;
}

static int
s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
s_pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int
main(int argc, char **argv)
{
    int nclients = 16, inflight = 16, warmup = 2, seconds = 20, opt;
    const char *op = "case.open";
    while ((opt = getopt(argc, argv, "c:i:w:d:o:")) != -1) {
        switch (opt) {
        case 'c':
            nclients = atoi(optarg);
            break;
        case 'i':
            inflight = atoi(optarg);
            break;
        case 'w':
            warmup = atoi(optarg);
            break;
        case 'd':
            seconds = atoi(optarg);
            break;
        case 'o':
            op = optarg;
            break;
        default:
            return 2;
        }
    }
    if (argc - optind != 3 || nclients < 1 || nclients > S_CLIENTS_MAX || inflight < 1 ||
        inflight > S_INFLIGHT_MAX || warmup < 0 || seconds < 1 || seconds > 3600) {
        fprintf(stderr, "usage: benchload [-c CLIENTS] [-i INFLIGHT] [-w WARMUP_S] [-d SECONDS]"
                        " [-o OP] ENDPOINT SERVER_PUBLIC_KEY KEYDIR\n");
        return 2;
    }
    const char *endpoint = argv[optind], *server = argv[optind + 1], *dir = argv[optind + 2];
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 2);
    s_client_t *cl = calloc((size_t)nclients, sizeof *cl);
    zmq_pollitem_t *items = calloc((size_t)nclients, sizeof *items);
    size_t cap = (size_t)seconds * 200000 + 1000;
    double *lat = malloc(cap * sizeof *lat);
    int rc = 1;
    msgpack_sbuffer body, req;
    msgpack_sbuffer_init(&body);
    msgpack_sbuffer_init(&req);
    if (!cl || !items || !lat)
        goto done;
    char path[1024], err[512], pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
    for (int i = 0; i < nclients; i++) {
        snprintf(path, sizeof path, "%s/client%d.key", dir, i);
        if (keys_read_pair(path, pub, sec, err, sizeof err) < 0) {
            fprintf(stderr, "benchload: %s\n", err);
            goto done;
        }
        cl[i].rpc = rpc_client_new(ctx, endpoint, server, pub, sec, err, sizeof err);
        if (!cl[i].rpc) {
            fprintf(stderr, "benchload: %s\n", err);
            goto done;
        }
        snprintf(path, sizeof path, "%s/client%d.json", dir, i);
        if (!(cl[i].tmpl = s_read_file(path))) {
            snprintf(path, sizeof path, "%s/body.json", dir);
            if (!(cl[i].tmpl = s_read_file(path))) {
                fprintf(stderr, "benchload: no %s/client%d.json or %s\n", dir, i, path);
                goto done;
            }
        }
        items[i] = (zmq_pollitem_t){rpc_client_socket(cl[i].rpc), 0, ZMQ_POLLIN, 0};
    }

    char run[16];
    snprintf(run, sizeof run, "%x", (unsigned)(util_unix_ms() & 0xffffff));
    int64_t start = s_us(), t_measure = start + (int64_t)warmup * 1000000;
    int64_t t_end = t_measure + (int64_t)seconds * 1000000, t_abort = t_end + 10000000;
    size_t nlat = 0;
    uint64_t acks = 0, errors = 0, bad = 0;
    for (int64_t now = start; now < t_abort;) {
        bool sending = now < t_end;
        int open = 0;
        for (int i = 0; i < nclients; i++) {
            s_client_t *c = &cl[i];
            while (sending && c->inflight < inflight) {
                uint64_t seq = ++c->seq;
                uint64_t n = (uint64_t)i * 1000000000ULL + seq;
                char rid[RPC_RID_MAX + 1];
                snprintf(rid, sizeof rid, "bl-%s-%d-%" PRIu64, run, i, seq);
                if (s_body(c->tmpl, n, &body) < 0 ||
                    rpc_request_pack(&req, op, rid, body.data, body.size) < 0)
                    goto done;
                if (rpc_client_send(c->rpc, req.data, req.size) < 0)
                    break;
                int s = 0;
                while (c->slot_seq[s])
                    s++;
                c->slot_seq[s] = seq;
                c->slot_t0[s] = s_us();
                c->inflight++;
            }
            open += c->inflight;
        }
        if (!sending && open == 0)
            break;
        if (!sending && now > t_end + 5000000)
            break; /* replies still missing after 5 s: counted as lost below */
        if (zmq_poll(items, nclients, 100) < 0)
            break;
        now = s_us();
        for (int i = 0; i < nclients; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            s_client_t *c = &cl[i];
            for (int k = 0; k < 4 * inflight; k++) {
                rpc_reply_t r = {0};
                evmsg_err_t e = {{0}, {0}};
                int got = rpc_client_recv(c->rpc, 0, &r, &e);
                if (got <= 0) {
                    bad += got < 0;
                    break;
                }
                now = s_us();
                const char *dash = strrchr(r.rid, '-');
                uint64_t seq = dash ? strtoull(dash + 1, NULL, 10) : 0;
                for (int s = 0; s < inflight; s++) {
                    if (!seq || c->slot_seq[s] != seq)
                        continue;
                    if (now >= t_measure && now < t_end) {
                        if (r.ok) {
                            acks++;
                            if (nlat < cap)
                                lat[nlat++] = (double)(now - c->slot_t0[s]) / 1000.0;
                        } else if (errors++ < 5)
                            fprintf(stderr, "benchload: error reply: %s %s %s\n", r.code, r.field,
                                    r.en);
                    }
                    c->slot_seq[s] = 0;
                    c->inflight--;
                    break;
                }
                rpc_reply_clear(&r);
            }
        }
    }
    int64_t lost = 0;
    for (int i = 0; i < nclients; i++)
        lost += cl[i].inflight;
    qsort(lat, nlat, sizeof *lat, s_cmp);
    printf("acks=%" PRIu64 " acks_per_s=%.0f p50_ack_ms=%.2f p90_ack_ms=%.2f p99_ack_ms=%.2f"
           " max_ack_ms=%.2f errors=%" PRIu64 " undecodable=%" PRIu64 " unanswered=%" PRId64
           " clients=%d inflight=%d seconds=%d\n",
           acks, (double)acks / seconds, s_pct(lat, nlat, 0.50), s_pct(lat, nlat, 0.90),
           s_pct(lat, nlat, 0.99), nlat ? lat[nlat - 1] : 0.0, errors, bad, lost, nclients,
           inflight, seconds);
    rc = 0;
done:
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&req);
    for (int i = 0; cl && i < nclients; i++) {
        rpc_client_destroy(&cl[i].rpc);
        free(cl[i].tmpl);
    }
    free(cl);
    free(items);
    free(lat);
    zmq_ctx_term(ctx);
    return rc;
}
