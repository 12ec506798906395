/* pipeload: the pipeline bench's load driver (make bench-pipeline, tools/bench/pipeline.sh).
 *
 * Starts the whole world (tests/support/story: the broker, the five services and
 * fake-credit) on the PostgreSQL and Redis it is given, registers one agency from
 * deploy/examples, then, for --seconds, drives licence cases as the bureau's system
 * would: case.open, case.propose and case.decide sent back to back on one connection
 * (intake applies a connection's requests in arrival order), and, as the publisher,
 * publication.approve for every publication.drafted it hears; at most --inflight cases
 * between submission and publication. Then it stops submitting and waits (bounded) until
 * every submitted case was pushed to the credit platform.
 *
 * Per case it keeps the wall-clock time of each stage: submitted, decided (intake's
 * reply), the case.decided event heard through the broker (intake_relay: intake's outbox
 * relay sequenced and published it), drafted (publication's event), published (the event
 * after approval) and pushed
 * (creditpush.item.sent_at: the platform's answer was recorded). A stage's lag is the time
 * a case spent getting there from the stage before; "over time" is the largest lag of the
 * cases that reached the stage in each second. Every second it also reads each process's
 * VmRSS, and at the end its VmHWM.
 *
 * Writes a table on stdout, the JSON (--out) and an SVG chart of the lags (--svg).
 * Usage: pipeload --seconds N (60) --out FILE --svg FILE [--inflight N (5000)]
 *                 [--clients N (8)] [--reference-tps X (pgbench's, for the ratio)]
 * Exits 0 when every submitted case was pushed without an error reply, 3 otherwise.
 * Environment: SX_PG_URL, SX_REDIS_URL, SX_BIN, SX_TMP, SX_TOP. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <msgpack.h>
#include <zmq.h>

#include "keys.h"
#include "story.h"

#define AGENCY         "11620200013926143G"
#define LEGAL          "116202000139261871"
#define M_XK           "620200-SJ-XK-0001"
#define MAX_CASES      2000000
#define MAX_CLI        16
#define WINDOW         256 /* requests in flight per intake connection */
#define APPROVE_WINDOW 512
#define NSTAGE         6 /* submitted, decided, decided event, drafted, published, pushed */
#define T_SUB          0
#define T_DECIDED      1
#define T_EVENT        2 /* case.decided heard through the broker (intake's relay sequenced it) */
#define T_DRAFTED      3
#define T_PUBLISHED    4
#define T_PUSHED       5

static const char *const s_stage[NSTAGE] = {"submitted",         "intake",   "intake_relay",
                                            "publication_draft", "approval", "creditpush"};
static const char *const s_procs[] = {"broker",      "intake",     "recording",  "review",
                                      "publication", "creditpush", "fake-credit"};
#define NPROC ((int)(sizeof s_procs / sizeof s_procs[0]))

typedef struct {
    int64_t t[NSTAGE]; /* wall-clock ms of each stage, 0 until reached */
    int64_t record_id;
} s_case_t;

typedef struct {
    story_world_t w;
    s_case_t *cases;
    int n;               /* cases submitted */
    int64_t *case_of_id; /* intake case_id -> index + 1 */
    size_t case_of_id_cap;
    int64_t *approve_q; /* record ids waiting for approval (ring) */
    size_t aq_head, aq_tail, aq_cap;
    int errors;
    char today[11];
    char run[24];
    long rss_peak_kb[NPROC];   /* largest VmRSS sampled */
    long (*rss_series)[NPROC]; /* VmRSS kB per sample (one a second) */
    int nsamples;
} s_load_t;

static volatile sig_atomic_t s_stop; /* the stop flag */

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int64_t
s_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Packs the request op for case i into out. */
static void
s_request(s_load_t *L, int i, int op, msgpack_sbuffer *out)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    char no[64], dno[64], rid[64];
    snprintf(no, sizeof no, "PL-%s-%d", L->run, i);
    static const char *const ops[3] = {"case.open", "case.propose", "case.decide"};
    if (op == 0) {
        msgpack_pack_map(&pk, 5);
        s_str(&pk, "case_no");
        s_str(&pk, no);
        s_str(&pk, "matter_code");
        s_str(&pk, M_XK);
        s_str(&pk, "party");
        msgpack_pack_map(&pk, 4);
        s_str(&pk, "kind");
        s_str(&pk, "org");
        s_str(&pk, "name");
        s_str(&pk, "嘉峪关市雄关食品商贸有限公司");
        s_str(&pk, "id_type");
        s_str(&pk, "uscc");
        s_str(&pk, "id_no");
        s_str(&pk, "91620200MA73A2B880");
        s_str(&pk, "summary");
        s_str(&pk, "申请食品经营许可");
        s_str(&pk, "opened_on");
        s_str(&pk, L->today);
    } else if (op == 1) {
        msgpack_pack_map(&pk, 4);
        s_str(&pk, "case_no");
        s_str(&pk, no);
        s_str(&pk, "category");
        s_str(&pk, "准予行政许可");
        s_str(&pk, "content");
        s_str(&pk, "准予食品经营许可，核发食品经营许可证");
        s_str(&pk, "legal_basis");
        s_str(&pk, "《中华人民共和国行政许可法》第三十八条第一款");
    } else {
        snprintf(dno, sizeof dno, "PLD-%s-%d", L->run, i);
        msgpack_pack_map(&pk, 3);
        s_str(&pk, "case_no");
        s_str(&pk, no);
        s_str(&pk, "decision_no");
        s_str(&pk, dno);
        s_str(&pk, "decision_date");
        s_str(&pk, L->today);
    }
    snprintf(rid, sizeof rid, "%c-%s-%d", "opd"[op], L -> run, i);
    rpc_request_pack(out, ops[op], rid, body.data, body.size);
    msgpack_sbuffer_destroy(&body);
}

static int64_t
s_result_uint(const rpc_reply_t *r, const char *key)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int64_t v = -1;
    size_t kl = strlen(key);
    if (r->result &&
        msgpack_unpack_next(&u, r->result, r->result_len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kl &&
                memcmp(kv->key.via.str.ptr, key, kl) == 0 &&
                kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = (int64_t)kv->val.via.u64;
        }
    msgpack_unpacked_destroy(&u);
    return v;
}

static void
s_map_case(s_load_t *L, int64_t case_id, int i)
{
    if (case_id <= 0)
        return;
    if ((size_t)case_id >= L->case_of_id_cap) {
        size_t cap = L->case_of_id_cap ? L->case_of_id_cap : 1024;
        while (cap <= (size_t)case_id)
            cap *= 2;
        L->case_of_id = realloc(L->case_of_id, cap * sizeof *L->case_of_id);
        memset(L->case_of_id + L->case_of_id_cap, 0, (cap - L->case_of_id_cap) * sizeof(int64_t));
        L->case_of_id_cap = cap;
    }
    L->case_of_id[case_id] = i + 1;
}

static int
s_case_index(s_load_t *L, int64_t case_id)
{
    if (case_id <= 0 || (size_t)case_id >= L->case_of_id_cap)
        return -1;
    return (int)L->case_of_id[case_id] - 1;
}

static void
s_aq_push(s_load_t *L, int64_t rec)
{
    if (L->aq_tail - L->aq_head == L->aq_cap) {
        size_t cap = L->aq_cap ? L->aq_cap * 2 : 4096;
        int64_t *q = malloc(cap * sizeof *q);
        for (size_t k = 0; k < L->aq_cap; k++)
            q[k] = L->approve_q[(L->aq_head + k) % L->aq_cap];
        free(L->approve_q);
        L->approve_q = q;
        L->aq_tail -= L->aq_head;
        L->aq_head = 0;
        L->aq_cap = cap;
    }
    L->approve_q[L->aq_tail++ % L->aq_cap] = rec;
}

static rpc_client_t *
s_client(s_load_t *L, story_svc_t door, const char *who)
{
    char path[700], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "%s/%s.key", L->w.keydir, who);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0) {
        fprintf(stderr, "pipeload: %s\n", err);
        return NULL;
    }
    rpc_client_t *c =
        rpc_client_new(L->w.ctx, L->w.door[door], L->w.svc_pub[door], pub, sec, err, sizeof err);
    if (!c)
        fprintf(stderr, "pipeload: client: %s\n", err);
    return c;
}

/* CPU seconds (user + system) a process has used, with those of its children that ended
 * when children is set; or -1. ppid, when not NULL, gets its parent's pid. */
static double
s_cpu_s(pid_t pid, bool children, pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after the command name */
    int pp;
    unsigned long ut, st;
    long cut, cst;
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &pp, &ut,
                     &st, &cut, &cst) != 5)
        return -1;
    if (ppid)
        *ppid = pp;
    double ticks = (double)(ut + st) + (children ? (double)(cut + cst) : 0);
    return ticks / (double)sysconf(_SC_CLK_TCK);
}

/* Postgres's CPU seconds: the postmaster's, its live backends' and those of the backends
 * that ended (a backend's time moves into the postmaster's when it is reaped, so a delta
 * counts each backend once). -1 when the postmaster cannot be read. */
static double
s_pg_cpu_s(pid_t postmaster)
{
    double sum = s_cpu_s(postmaster, true, NULL);
    DIR *d = sum >= 0 ? opendir("/proc") : NULL;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9') {
            pid_t pp = 0;
            double c = s_cpu_s((pid_t)atoi(e->d_name), false, &pp);
            if (c > 0 && pp == postmaster)
                sum += c;
        }
    closedir(d);
    return sum;
}

/* Busy CPU seconds of the whole machine, every core (/proc/stat: all but idle and
 * iowait), or -1. */
static double
s_machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (k != 8)
        return -1;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU the load cost, sampled before its first submission and after its last push. */
enum { CPU_SELF = NPROC, CPU_PG, CPU_MACHINE, NCPU };

static void
s_cpu_sample(s_load_t *L, pid_t postmaster, double out[NCPU])
{
    for (int p = 0; p < NPROC; p++)
        out[p] = s_cpu_s(*story_pid(&L->w, s_procs[p]), false, NULL);
    out[CPU_SELF] = s_cpu_s(getpid(), false, NULL);
    out[CPU_PG] = postmaster > 0 ? s_pg_cpu_s(postmaster) : -1;
    out[CPU_MACHINE] = s_machine_busy_s();
}

#define MAX_SAMPLES 1200

/* The least-squares slope of y over its index (one a second), per minute, skipping
 * negative values (no sample); 0 with fewer than 10 values. "Flat" is this near 0. */
static double
s_slope_per_min(const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0)
            continue;
        sx += i, sy += y[i], sxx += (double)i * i, sxy += i * y[i];
        k++;
    }
    double d = k * sxx - sx * sx;
    return k >= 10 && d > 0 ? (k * sxy - sx * sy) / d * 60.0 : 0;
}

static void
s_sample_rss(s_load_t *L)
{
    long *row = L->nsamples < MAX_SAMPLES ? L->rss_series[L->nsamples++] : NULL;
    for (int p = 0; p < NPROC; p++) {
        if (row)
            row[p] = -1;
        pid_t *pid = story_pid(&L->w, s_procs[p]);
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)*pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
                if (kb > L->rss_peak_kb[p])
                    L->rss_peak_kb[p] = kb;
                if (row)
                    row[p] = kb;
                break;
            }
        fclose(f);
    }
}

/* The registry the cases need: the agency (legal office), its matters and officers. */
static int
s_registry(s_load_t *L)
{
    static const char *const files[] = {
        "01-registry.agency.put.json", "02-registry.officer.put.json",
        "03-registry.officer.put.json", "05-registry.matter.put.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        json_t *r = story_example(&L->w, i == 0 ? "legal" : "scjg", files[i]);
        if (!r) {
            fprintf(stderr, "pipeload: %s\n", L->w.err);
            return -1;
        }
        json_decref(r);
    }
    return 0;
}

/* Reads creditpush's sent times into the cases. Returns how many were pushed. */
static int
s_read_pushed(s_load_t *L, int64_t *record_case, size_t rcap)
{
    PGconn *pg = PQconnectdb(L->w.o.pg_url);
    PGresult *r = PQexec(pg, "SELECT record_id, (extract(epoch FROM sent_at) * 1000)::bigint"
                             " FROM creditpush.item WHERE op = 'publish' AND state = 'sent'");
    int n = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int k = 0; k < PQntuples(r); k++) {
            long long rec = atoll(PQgetvalue(r, k, 0));
            if (rec > 0 && (size_t)rec < rcap && record_case[rec] > 0) {
                L->cases[record_case[rec] - 1].t[T_PUSHED] = atoll(PQgetvalue(r, k, 1));
                n++;
            }
        }
    else
        fprintf(stderr, "pipeload: %s", PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return n;
}

static const char *const s_colour[NSTAGE] = {"#000",    "#1f77b4", "#9467bd",
                                             "#2ca02c", "#ff7f0e", "#d62728"};

/* The SVG chart: for each stage, the largest lag of the cases that reached it in each
 * second of the run. */
static int
s_svg(const char *path, double (*lag)[NSTAGE], int secs, double ymax)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const int W = 1000, H = 420, X0 = 60, Y0 = 30, PW = 780, PH = 330;
    if (ymax <= 0)
        ymax = 1;
    double ytop = ceil(ymax);
    int xs = secs > 1 ? secs : 1;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<title>sanxiang pipeline: largest stage lag per second</title>\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n"
            "<text x=\"%d\" y=\"18\" font-size=\"14\">Largest lag per stage (s) of the cases "
            "reaching it, each second of the run</text>\n",
            W, H, X0);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", X0, Y0 + PH,
            X0 + PW, Y0 + PH);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", X0, Y0, X0,
            Y0 + PH);
    for (int k = 0; k <= 4; k++) {
        double v = ytop * k / 4;
        int y = Y0 + PH - (int)(PH * k / 4);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.2f</text>\n",
                X0, y, X0 + PW, y, X0 - 5, y + 4, v);
        int x = X0 + PW * k / 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d s</text>\n", x, Y0 + PH + 16,
                xs * k / 4);
    }
    for (int s = 1; s < NSTAGE; s++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                s_colour[s]);
        for (int t = 0; t < secs; t++)
            if (lag[t][s] >= 0)
                fprintf(f, "%.1f,%.1f ", X0 + (double)PW * t / xs,
                        Y0 + PH - PH * (lag[t][s] > ytop ? ytop : lag[t][s]) / ytop);
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", X0 + PW + 15,
                Y0 + 16 * s, s_colour[s], s_stage[s]);
    }
    fprintf(f, "</svg>\n");
    fclose(f);
    return 0;
}

int
main(int argc, char **argv)
{
    int seconds = 60, inflight = 5000, nclients = 8;
    const char *out = "build/bench/pipeline.json", *svg = "build/bench/pipeline.svg";
    double ref_tps = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--inflight") == 0)
            inflight = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--clients") == 0)
            nclients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--svg") == 0)
            svg = argv[i + 1];
        else if (strcmp(argv[i], "--reference-tps") == 0)
            ref_tps = atof(argv[i + 1]);
    }
    const char *pg = getenv("SX_PG_URL"), *redis = getenv("SX_REDIS_URL"), *bin = getenv("SX_BIN"),
               *tmp = getenv("SX_TMP"), *top = getenv("SX_TOP");
    if (seconds < 1 || seconds > 600 || inflight < 1 || nclients < 1 || nclients > MAX_CLI || !pg ||
        !redis || !bin || !tmp || !top) {
        fprintf(stderr, "usage: pipeload --seconds 1..600 --out FILE --svg FILE [--inflight N]"
                        " [--clients 1..16] [--reference-tps X]\n"
                        "  with SX_PG_URL, SX_REDIS_URL, SX_BIN, SX_TMP, SX_TOP set\n");
        return 2;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);

    s_load_t *L = calloc(1, sizeof *L);
    L->cases = calloc(MAX_CASES, sizeof *L->cases);
    L->rss_series = calloc(MAX_SAMPLES, sizeof *L->rss_series);
    story_today(L->today);
    static const char *const clients[][2] = {{"legal", "dept:" LEGAL ":legal_office"},
                                             {"scjg", "dept:" AGENCY ":system"},
                                             {"publisher", "dept:" AGENCY ":publisher"},
                                             {NULL, NULL}};
    story_opts_t o = {.bin_dir = bin,
                      .log_dir = tmp,
                      .top = top,
                      .pg_url = pg,
                      .redis_url = redis,
                      .clients = clients,
                      .log_level =
                          getenv("PIPELOAD_LOG_LEVEL") ? getenv("PIPELOAD_LOG_LEVEL") : "warn",
                      .pool_agency = LEGAL,
                      .broker_sndhwm = 1000000};
    if (story_world_start(&L->w, &o) != 0) {
        fprintf(stderr, "pipeload: %s\n", L->w.err);
        return 1;
    }
    snprintf(L->run, sizeof L->run, "%s", L->w.run);
    int rc = 1;
    rpc_client_t *cli[MAX_CLI] = {0}, *pubc = NULL;
    story_sub_t *sub = NULL;
    int64_t *record_case = NULL;
    size_t rcap = 0;
    if (s_registry(L) != 0)
        goto done;
    /* case.decided too: how long intake's relay took to sequence and publish the event
     * (intake_relay) is then told apart from publication's drafting. */
    static const char *const topics[] = {"case.decided." AGENCY, "publication.drafted." AGENCY,
                                         "publication.published." AGENCY, NULL};
    if (!(sub = story_sub_new(&L->w, "publisher", topics))) {
        fprintf(stderr, "pipeload: %s\n", L->w.err);
        goto done;
    }
    for (int c = 0; c < nclients; c++)
        if (!(cli[c] = s_client(L, STORY_INTAKE, "scjg")))
            goto done;
    if (!(pubc = s_client(L, STORY_PUBLICATION, "publisher")))
        goto done;
    /* Wait for publication to know the matter's agency (the first drafts need it). */
    if (story_pg_wait(&L->w, "SELECT count(*) FROM publication.agency", 1, 30000) != 0) {
        fprintf(stderr, "pipeload: %s\n", L->w.err);
        goto done;
    }

    fprintf(stderr, "pipeload: %d s of load, %d cases in flight at most, %d intake clients\n",
            seconds, inflight, nclients);
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    int cin[MAX_CLI] = {0}; /* requests in flight per client */
    int ain = 0;            /* approvals in flight */
    int decided = 0, drafted = 0, published = 0;
    pid_t postmaster = 0;
    long long backend = story_pg_count(&L->w, "SELECT pg_backend_pid()");
    if (backend <= 0 || s_cpu_s((pid_t)backend, false, &postmaster) < 0)
        fprintf(stderr, "pipeload: cannot find the postmaster: no Postgres CPU figure\n");
    double cpu0[NCPU], cpu[NCPU];
    s_cpu_sample(L, postmaster, cpu0);
    int64_t t_start = s_wall_ms(), m_start = story_now_ms(), next_sample = m_start;
    int64_t load_end = m_start + (int64_t)seconds * 1000, drain_end = load_end + 120000;
    bool loading = true;
    int64_t last_move = m_start; /* the last time a case reached a stage */
    while (!s_stop) {
        int64_t now = story_now_ms();
        if (loading && now >= load_end) {
            loading = false;
            fprintf(stderr, "pipeload: load stopped after %d cases; draining\n", L->n);
        }
        if (!loading && (published >= L->n || now >= drain_end || now - last_move > 20000))
            break;
        if (now >= next_sample) {
            s_sample_rss(L);
            next_sample += 1000;
            fprintf(stderr, "pipeload: t=%llds submitted %d decided %d drafted %d published %d\n",
                    (long long)((now - m_start) / 1000), L->n, decided, drafted, published);
        }
        /* Submit: three requests per case, one client, back to back. */
        for (int c = 0; loading && c < nclients; c++)
            while (cin[c] + 3 <= WINDOW && L->n - published < inflight && L->n < MAX_CASES) {
                int i = L->n;
                bool sent = true;
                for (int op = 0; op < 3 && sent; op++) {
                    s_request(L, i, op, &req);
                    sent = rpc_client_send(cli[c], req.data, req.size) == 0;
                }
                if (!sent) {
                    fprintf(stderr, "pipeload: send failed: %s\n", zmq_strerror(errno));
                    s_stop = 1;
                    break;
                }
                L->cases[i].t[T_SUB] = s_wall_ms();
                L->n++;
                cin[c] += 3;
            }
        /* Approve what was drafted. */
        while (ain < APPROVE_WINDOW && L->aq_head < L->aq_tail) {
            int64_t rec = L->approve_q[L->aq_head++ % L->aq_cap];
            msgpack_sbuffer body;
            msgpack_sbuffer_init(&body);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 1);
            s_str(&pk, "record_id");
            msgpack_pack_int64(&pk, rec);
            char rid[64];
            snprintf(rid, sizeof rid, "a-%s-%" PRId64, L->run, rec);
            rpc_request_pack(&req, "publication.approve", rid, body.data, body.size);
            msgpack_sbuffer_destroy(&body);
            if (rpc_client_send(pubc, req.data, req.size) != 0)
                break;
            ain++;
        }
        zmq_pollitem_t items[MAX_CLI + 2];
        for (int c = 0; c < nclients; c++)
            items[c] = (zmq_pollitem_t){rpc_client_socket(cli[c]), 0, ZMQ_POLLIN, 0};
        items[nclients] = (zmq_pollitem_t){rpc_client_socket(pubc), 0, ZMQ_POLLIN, 0};
        items[nclients + 1] = (zmq_pollitem_t){story_sub_socket(sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(items, nclients + 2, 10) <= 0)
            continue;
        for (int c = 0; c <= nclients; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            rpc_client_t *cl = c < nclients ? cli[c] : pubc;
            rpc_reply_t r = {0};
            evmsg_err_t e = {{0}, {0}};
            for (int k = 0; k < 4096 && rpc_client_recv(cl, 0, &r, &e) == 1; k++) {
                if (c < nclients)
                    cin[c]--;
                else
                    ain--;
                const char *dash = strrchr(r.rid, '-');
                int i = dash ? atoi(dash + 1) : -1;
                if (!r.ok) {
                    if (L->errors++ < 10)
                        fprintf(stderr, "pipeload: %s: %s at %s: %s\n", r.rid, r.code, r.field,
                                r.en);
                } else if (r.rid[0] == 'o' && i >= 0 && i < L->n) {
                    s_map_case(L, s_result_uint(&r, "case_id"), i);
                } else if (r.rid[0] == 'd' && i >= 0 && i < L->n) {
                    L->cases[i].t[T_DECIDED] = s_wall_ms();
                    decided++;
                    last_move = story_now_ms();
                }
                rpc_reply_clear(&r);
            }
        }
        char topic[129];
        int64_t case_id, rec;
        for (int k = 0; k < 4096 && story_sub_next_ids(sub, 0, topic, &case_id, &rec) == 1; k++) {
            int i = s_case_index(L, case_id);
            if (i < 0)
                continue;
            if (strncmp(topic, "case.decided.", 13) == 0 && !L->cases[i].t[T_EVENT]) {
                L->cases[i].t[T_EVENT] = s_wall_ms();
            } else if (strncmp(topic, "publication.drafted.", 20) == 0 &&
                       !L->cases[i].t[T_DRAFTED]) {
                L->cases[i].t[T_DRAFTED] = s_wall_ms();
                L->cases[i].record_id = rec;
                drafted++;
                last_move = story_now_ms();
                s_aq_push(L, rec);
            } else if (strncmp(topic, "publication.published.", 22) == 0 &&
                       !L->cases[i].t[T_PUBLISHED]) {
                L->cases[i].t[T_PUBLISHED] = s_wall_ms();
                published++;
                last_move = story_now_ms();
            }
        }
    }
    msgpack_sbuffer_destroy(&req);

    /* Wait (bounded) until creditpush sent every published record. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM creditpush.item WHERE op = 'publish' AND"
             " state = 'sent'");
    for (int64_t end = story_now_ms() + 120000; story_now_ms() < end && !s_stop;
         story_sleep_ms(200)) {
        if (story_pg_count(&L->w, sql) >= published)
            break;
        s_sample_rss(L);
    }
    s_sample_rss(L);
    for (int i = 0; i < L->n; i++)
        if (L->cases[i].record_id > 0 && (size_t)L->cases[i].record_id >= rcap)
            rcap = (size_t)L->cases[i].record_id + 1;
    record_case = calloc(rcap ? rcap : 1, sizeof *record_case);
    for (int i = 0; i < L->n; i++)
        if (L->cases[i].record_id > 0)
            record_case[L->cases[i].record_id] = i + 1;
    int pushed = s_read_pushed(L, record_case, rcap);
    json_t *stats = story_credit_stats(&L->w);
    json_int_t accepted = stats ? json_integer_value(json_object_get(stats, "accepted")) : -1;
    json_decref(stats);
    long hwm[NPROC];
    for (int p = 0; p < NPROC; p++)
        hwm[p] = story_vmhwm_kb(*story_pid(&L->w, s_procs[p]));
    s_cpu_sample(L, postmaster, cpu);
    for (int k = 0; k < NCPU; k++)
        cpu[k] = cpu[k] >= 0 && cpu0[k] >= 0 ? cpu[k] - cpu0[k] : -1;

    /* Throughput: pushed cases over the time from the first submission to the last push. */
    int64_t last = t_start;
    for (int i = 0; i < L->n; i++)
        if (L->cases[i].t[T_PUSHED] > last)
            last = L->cases[i].t[T_PUSHED];
    double span = (double)(last - t_start) / 1000.0;
    double cps = span > 0 ? pushed / span : 0;
    int secs = (int)((last - t_start) / 1000) + 1;
    double(*lag)[NSTAGE] = calloc((size_t)secs, sizeof *lag);
    for (int t = 0; t < secs; t++)
        for (int s = 0; s < NSTAGE; s++)
            lag[t][s] = -1;
    double maxlag[NSTAGE] = {0}, sumlag[NSTAGE] = {0};
    int nlag[NSTAGE] = {0};
    for (int i = 0; i < L->n; i++)
        for (int s = 1; s < NSTAGE; s++) {
            s_case_t *c = &L->cases[i];
            if (!c->t[s] || !c->t[s - 1])
                continue;
            double l = (double)(c->t[s] - c->t[s - 1]) / 1000.0;
            if (l < 0)
                l = 0; /* pushed is Postgres's clock, the rest ours: same host */
            int t = (int)((c->t[s] - t_start) / 1000);
            if (t < 0 || t >= secs)
                continue;
            if (l > lag[t][s])
                lag[t][s] = l;
            if (l > maxlag[s])
                maxlag[s] = l;
            sumlag[s] += l;
            nlag[s]++;
        }
    double maxall = 0;
    for (int s = 1; s < NSTAGE; s++)
        if (maxlag[s] > maxall)
            maxall = maxlag[s];
    /* Growth over the second half of the load (the drain after it excluded): a stage that
     * keeps up has a flat lag and a service that does not leak a flat RSS, so a slope well
     * above 0 says one is falling behind or growing however long the run. */
    int h0 = seconds / 2, h1 = seconds < secs ? seconds : secs;
    /* Room for either series: both end at or before the load's last second. */
    double *y = calloc((size_t)(seconds > 0 ? seconds : 1), sizeof *y);
    double lag_growth[NSTAGE] = {0}, rss_growth[NPROC] = {0};
    for (int s = 1; s < NSTAGE && y; s++) {
        for (int t = h0; t < h1; t++)
            y[t - h0] = lag[t][s];
        lag_growth[s] = s_slope_per_min(y, h1 - h0);
    }
    int r1 = seconds < L->nsamples ? seconds : L->nsamples;
    for (int p = 0; p < NPROC && y && r1 > h0; p++) {
        for (int k = h0; k < r1; k++)
            y[k - h0] = L->rss_series[k][p] >= 0 ? L->rss_series[k][p] / 1024.0 : -1;
        rss_growth[p] = s_slope_per_min(y, r1 - h0);
    }
    free(y);

    /* The table. */
    printf("pipeline: %d s of load, then drained; %d submitted, %d decided, %d drafted, %d "
           "published, %d pushed (platform accepted %lld), %d error replies\n",
           seconds, L->n, decided, drafted, published, pushed, (long long)accepted, L->errors);
    printf("%-26s %12.1f   (target >= 5000)\n", "cases_per_s", cps);
    if (ref_tps > 0)
        printf("%-26s %12.1f   cases_per_s / pgbench = %.3f\n", "pg_single_insert_tps", ref_tps,
               cps / ref_tps);
    printf("%-26s %12s %12s %14s\n", "stage lag (s)", "max", "mean", "growth s/min");
    for (int s = 1; s < NSTAGE; s++)
        printf("  %-24s %12.3f %12.3f %14.3f\n", s_stage[s], maxlag[s],
               nlag[s] ? sumlag[s] / nlag[s] : 0.0, lag_growth[s]);
    /* CPU from the first submission to the last push, also per case pushed, beside the
     * budget the target leaves: every core's second shared by 5,000 cases. */
    double us_case[NCPU];
    for (int k = 0; k < NCPU; k++)
        us_case[k] = cpu[k] >= 0 && pushed > 0 ? cpu[k] / pushed * 1e6 : -1;
    long ncores = sysconf(_SC_NPROCESSORS_ONLN);
    double budget = (double)(ncores > 0 ? ncores : 1) * 1e6 / 5000;
    printf("%-26s %12s %12s %10s %10s %14s   (target <= 64 MiB)\n", "process", "VmHWM MiB",
           "max VmRSS", "CPU s", "us/case", "RSS MiB/min");
    /* The target is for sanxiang's processes; fake-credit stands in for the platform's
     * database and keeps every key it accepted (its duplicate check), so it grows with
     * the run by design. */
    for (int p = 0; p < NPROC; p++) {
        bool platform = strcmp(s_procs[p], "fake-credit") == 0;
        printf("  %-24s %12.1f %12.1f %10.1f %10.0f %14.2f%s\n", s_procs[p], hwm[p] / 1024.0,
               L->rss_peak_kb[p] / 1024.0, cpu[p], us_case[p], rss_growth[p],
               platform             ? "   (the platform's stand-in: keeps every record)"
               : hwm[p] > 64 * 1024 ? "   OVER"
                                    : "");
    }
    printf("  %-24s %12s %12s %10.1f %10.0f\n", "pipeload (this driver)", "", "", cpu[CPU_SELF],
           us_case[CPU_SELF]);
    printf("  %-24s %12s %12s %10.1f %10.0f\n", "postgres (every backend)", "", "", cpu[CPU_PG],
           us_case[CPU_PG]);
    printf("  %-24s %12s %12s %10.1f %10.0f   (%ld cores at 5000 cases/s: %.0f us/case)\n",
           "machine (every process)", "", "", cpu[CPU_MACHINE], us_case[CPU_MACHINE], ncores,
           budget);

    /* The JSON. */
    json_t *j = json_object();
    json_object_set_new(j, "load_seconds", json_integer(seconds));
    json_object_set_new(j, "inflight_max", json_integer(inflight));
    json_object_set_new(j, "submitted", json_integer(L->n));
    json_object_set_new(j, "decided", json_integer(decided));
    json_object_set_new(j, "published", json_integer(published));
    json_object_set_new(j, "pushed", json_integer(pushed));
    json_object_set_new(j, "platform_accepted", json_integer(accepted));
    json_object_set_new(j, "error_replies", json_integer(L->errors));
    json_object_set_new(j, "span_s", json_real(span));
    json_object_set_new(j, "cases_per_s", json_real(round(cps * 10) / 10));
    json_object_set_new(j, "max_stage_lag_s", json_real(round(maxall * 1000) / 1000));
    json_t *sl = json_object(), *ml = json_object(), *rss = json_object(), *rssmax = json_object();
    for (int s = 1; s < NSTAGE; s++) {
        json_object_set_new(sl, s_stage[s], json_real(round(maxlag[s] * 1000) / 1000));
        json_object_set_new(ml, s_stage[s],
                            json_real(nlag[s] ? round(sumlag[s] / nlag[s] * 1000) / 1000 : 0));
    }
    for (int p = 0; p < NPROC; p++) {
        json_object_set_new(rss, s_procs[p], json_real(round(hwm[p] / 102.4) / 10));
        json_object_set_new(rssmax, s_procs[p], json_real(round(L->rss_peak_kb[p] / 102.4) / 10));
    }
    static const char *const s_cpu_name[NCPU - NPROC] = {"pipeload", "postgres", "machine"};
    json_t *cpuj = json_object(), *cpuc = json_object();
    for (int k = 0; k < NCPU; k++) {
        const char *name = k < NPROC ? s_procs[k] : s_cpu_name[k - NPROC];
        json_object_set_new(cpuj, name, json_real(round(cpu[k] * 10) / 10));
        json_object_set_new(cpuc, name, json_real(round(us_case[k])));
    }
    json_object_set_new(j, "cpu_s", cpuj);
    json_object_set_new(j, "cpu_us_per_case", cpuc);
    json_object_set_new(j, "cpu_budget_us_per_case", json_real(budget));
    json_object_set_new(j, "stage_max_lag_s", sl);
    json_object_set_new(j, "stage_mean_lag_s", ml);
    json_t *lg = json_object(), *rg = json_object();
    for (int s = 1; s < NSTAGE; s++)
        json_object_set_new(lg, s_stage[s], json_real(round(lag_growth[s] * 1000) / 1000));
    for (int p = 0; p < NPROC; p++)
        json_object_set_new(rg, s_procs[p], json_real(round(rss_growth[p] * 100) / 100));
    json_object_set_new(j, "stage_lag_growth_s_per_min", lg);
    json_object_set_new(j, "rss_growth_mb_per_min", rg);
    json_object_set_new(j, "peak_rss_mb", rss);
    json_object_set_new(j, "max_sampled_rss_mb", rssmax);
    if (ref_tps > 0) {
        json_object_set_new(j, "pg_single_insert_tps", json_real(ref_tps));
        json_object_set_new(j, "cases_per_s_vs_pgbench",
                            json_real(round(cps / ref_tps * 1000) / 1000));
    }
    json_t *series = json_array();
    for (int t = 0; t < secs; t++) {
        json_t *row = json_object();
        json_object_set_new(row, "t", json_integer(t));
        for (int s = 1; s < NSTAGE; s++)
            json_object_set_new(row, s_stage[s],
                                lag[t][s] >= 0 ? json_real(lag[t][s]) : json_null());
        json_array_append_new(series, row);
    }
    json_object_set_new(j, "lag_over_time", series);
    json_t *rs = json_object();
    for (int p = 0; p < NPROC; p++) {
        json_t *a = json_array();
        for (int k = 0; k < L->nsamples; k++)
            json_array_append_new(a, L->rss_series[k][p] >= 0
                                         ? json_real(round(L->rss_series[k][p] / 102.4) / 10)
                                         : json_null());
        json_object_set_new(rs, s_procs[p], a);
    }
    json_object_set_new(j, "rss_mb_each_second", rs);
    if (json_dump_file(j, out, JSON_INDENT(1)) != 0)
        fprintf(stderr, "pipeload: cannot write %s\n", out);
    json_decref(j);
    if (s_svg(svg, lag, secs, maxall) != 0)
        fprintf(stderr, "pipeload: cannot write %s\n", svg);
    free(lag);
    rc = pushed == L->n && L->errors == 0 ? 0 : 3;
    if (rc)
        fprintf(stderr, "pipeload: %d of %d cases not pushed, %d error replies\n", L->n - pushed,
                L->n, L->errors);
done:
    for (int c = 0; c < MAX_CLI; c++)
        rpc_client_destroy(&cli[c]);
    rpc_client_destroy(&pubc);
    story_sub_destroy(&sub);
    story_world_stop(&L->w);
    free(record_case);
    free(L->case_of_id);
    free(L->approve_q);
    free(L->cases);
    free(L->rss_series);
    free(L);
    return rc;
}
