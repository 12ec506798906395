/* fault_system: the system fault suite (make test-fault, issue 9).
 *
 * The whole world (tests/support/story: broker, five services, fake-credit) on the
 * PostgreSQL and Redis that tests/fault-system/run started for the suite (under
 * tests/harness/with-servers, whose own two servers it leaves alone).
 * 嘉峪关市市场监督管理局 is registered from
 * deploy/examples (without its AV matter, so no case waits on a video), with a legal
 * reviewer. Then, as the bureau's systems would, the driver runs cases through intake's
 * door: licences, penalties without review, penalties that need legal review (approved by
 * the reviewer on review's door), inspections, and some licences and penalties revoked once
 * published. A publisher approves every draft on publication's door; fake-credit receives
 * the pushes.
 *
 *   1. Reference: one case of each variant, without faults, to quiescence. Its final state
 *      (the "signature" below) is what every case of that variant must end in.
 *   2. Load: SX_FAULT_CASES (default 2000) cases on SX_FAULT_THREADS connections while
 *      fault_chaos SIGKILLs and restarts every service, the broker and Redis at random
 *      moments (seed SX_FAULT_SEED, printed), and restarts PostgreSQL once. A client that
 *      gets no reply resends the same bytes with the same rid (schemas/messages/rpc.md);
 *      `unavailable` is retried the same way after a pause.
 *   3. Quiet period (bounded): faults stop; the signatures of every case are read until
 *      they all equal their variant's reference, or the bound passes.
 *
 * A case's signature, as its users see it: intake's case.get (state, proposal version);
 * review's tasks of the case (how many, their status); recording's record.verify (ok,
 * entry count, sealed, seal ok); publication's records of the case (how many, their
 * states) and the portal's answer for it (200 / 410);
 * fake-credit's keys <record>-1 (the record) and <record>-2 (the withdrawal). And for the
 * whole run: the platform accepted each expected key exactly once (duplicates are
 * answered `duplicate`, never applied twice), nothing unexpected, no withdrawal before its
 * record, nothing rejected; creditpush has no dead letter and nothing queued.
 *
 * Prints the timeline of faults, PASS or FAIL with the first differences; exits 1 on any
 * difference, 2 when the world could not be set up. The whole run is bounded
 * (SX_FAULT_LOAD_S for the load, SX_FAULT_QUIET_S for the quiet period, SX_FAULT_BUDGET_S
 * for everything). SX_FAULT_DUP_CASE=N is the suite's self-check: load case N gets its
 * proposal twice under two rids (a duplicated effect), and the run must FAIL naming it. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <msgpack.h>

#include "fault_chaos.h"
#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "story.h"
#include "tsupport.h"

#define AGENCY   "11620200013926143G" /* 嘉峪关市市场监督管理局 (deploy/examples) */
#define LEGAL    "116202000139261871" /* 嘉峪关市司法局 */
#define M_CF     "620200-SJ-CF-0126"
#define M_XK     "620200-SJ-XK-0001"
#define M_JC     "620200-SJ-JC-0003"
#define REVIEWER "甘JYG003"
#define CALL_MS  240000 /* how long one call is retried before the case fails */
#define MAX_THR  32

typedef enum { V_LIC, V_PEN, V_INS, V_REV, V_LIC_X, V_PEN_X, V_REV_X, V_N } variant_t;
static const char *const s_vname[V_N] = {"licence",
                                         "penalty",
                                         "inspection",
                                         "reviewed penalty",
                                         "licence revoked",
                                         "penalty revoked",
                                         "reviewed penalty revoked"};
/* The mix: 10 cases, 3 of them revoked. */
static const variant_t s_mix[10] = {V_LIC, V_PEN, V_INS,   V_REV,   V_LIC,
                                    V_PEN, V_INS, V_LIC_X, V_PEN_X, V_REV_X};

typedef struct {
    variant_t v;
    int64_t case_id;
    char sig[512]; /* the last signature read */
    char err[512]; /* why driving it failed, "" when it did not */
    bool driven;
} s_case_t;

typedef struct {
    story_world_t w;
    char *pg_url;
    char redis[600];
    char today[11];
    s_case_t *cases; /* V_N reference cases, then the load */
    int ncases, nref;
    atomic_int next;  /* the next case a worker takes */
    atomic_int done;  /* cases driven */
    atomic_bool quit; /* tells the publisher and reviewer to stop */
    atomic_int approved, opinions, timeouts, unavailable, portal_retries;
    int dup_case;     /* SX_FAULT_DUP_CASE: the case index driven with a duplicate, or -1 */
    int64_t load_end; /* workers take no new case after this (story_now_ms) */
    int64_t hard_end; /* no call is tried after this: the run's time budget */
    char ref_sig[V_N][512];
} s_run_t;

static s_run_t s_r;

/* ---- Calls that retry as a department must ----------------------------------------------- */

typedef struct {
    rpc_client_t *c;
    story_svc_t door;
} s_cli_t;

static int
s_cli_open(s_cli_t *cli, story_svc_t door, const char *who)
{
    char path[700], pub[41], sec[41], err[256];
    snprintf(path, sizeof path, "%s/%s.key", s_r.w.keydir, who);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0)
        return -1;
    cli->door = door;
    cli->c =
        rpc_client_new(s_r.w.ctx, s_r.w.door[door], s_r.w.svc_pub[door], pub, sec, err, sizeof err);
    return cli->c ? 0 : -1;
}

/* Sends op/rid/body (JSON) until a reply other than `unavailable` comes: no reply within
 * 2 s or `unavailable` means the same bytes again (after a pause for the latter), for at
 * most CALL_MS. Returns the result (ok; caller json_decref's) or NULL with *code set to
 * the error code ("timeout" when none came) and why filled. */
static json_t *
s_call(s_cli_t *cli, const char *op, const char *rid, const char *body, char code[64], char *why,
       size_t whylen)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    jsonmp_err_t jerr = {0};
    code[0] = '\0';
    if (jsonmp_from_json(body, strlen(body), "body", 2, &b, &jerr) != 0) {
        char e[300];
        snprintf(code, 64, "bad_body");
        snprintf(why, whylen, "%s: body: %s", op, jsonmp_err_str(&jerr, e, sizeof e));
        msgpack_sbuffer_destroy(&b);
        return NULL;
    }
    json_t *res = NULL;
    int pause = 100;
    int64_t t0 = story_now_ms(), end = t0 + CALL_MS;
    if (end > s_r.hard_end)
        end = s_r.hard_end;
    for (;;) {
        if (story_now_ms() >= end) {
            snprintf(code, 64, "timeout");
            snprintf(why, whylen, "%s %s: no reply before the time budget ran out", op, rid);
            break;
        }
        rpc_reply_t r = {0};
        evmsg_err_t e = {{0}, {0}};
        int rc = rpc_call(cli->c, op, rid, b.data, b.size, 2000, 1, &r, &e);
        if (rc == 0 && r.ok) {
            char *text = jsonmp_to_json(r.result, r.result_len, "result", NULL, NULL);
            res = text ? json_loads(text, 0, NULL) : NULL;
            free(text);
            if (!res)
                res = json_object();
            rpc_reply_clear(&r);
            break;
        }
        if (rc == 0 && strcmp(r.code, "unavailable") != 0) {
            snprintf(code, 64, "%s", r.code);
            snprintf(why, whylen, "%s %s: %s at %.100s: %.200s", op, rid, r.code, r.field, r.en);
            rpc_reply_clear(&r);
            break;
        }
        if (rc == 0) {
            atomic_fetch_add(&s_r.unavailable, 1);
            story_sleep_ms(pause);
            pause = pause < 2000 ? pause * 2 : 2000;
        } else {
            atomic_fetch_add(&s_r.timeouts, 1);
        }
        rpc_reply_clear(&r);
        if (story_now_ms() >= end) {
            snprintf(code, 64, "timeout");
            snprintf(why, whylen, "%s %s: no reply in %lld s (%s %s)", op, rid,
                     (long long)(story_now_ms() - t0) / 1000, e.path, e.reason);
            break;
        }
    }
    msgpack_sbuffer_destroy(&b);
    return res;
}

/* ---- One case as the bureau's system drives it ------------------------------------------ */

static const char *
s_party(int i)
{
    switch (i % 3) {
    case 0:
        return "{\"kind\":\"org\",\"name\":\"嘉峪关市雄关食品商贸有限公司\",\"id_type\":\"uscc\","
               "\"id_no\":\"91620200MA73A2B880\"}";
    case 1:
        return "{\"kind\":\"org\",\"name\":\"嘉峪关市镜铁区王记家常菜馆\",\"id_type\":\"uscc\","
               "\"id_no\":\"92620200MA74C5D214\"}";
    default:
        return "{\"kind\":\"person\",\"name\":\"马文博\",\"id_type\":\"idcard\",\"id_no\":"
               "\"620201199207081818\"}";
    }
}

/* A case's publication record state and id, from publication's table (-1: none yet). */
static int64_t
s_pub_state(PGconn **pg, int64_t case_id, char state[32])
{
    state[0] = '\0';
    if (!*pg || PQstatus(*pg) != CONNECTION_OK) {
        PQfinish(*pg);
        *pg = PQconnectdb(s_r.pg_url);
        if (PQstatus(*pg) != CONNECTION_OK)
            return -1;
    }
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)case_id);
    const char *params[1] = {id};
    PGresult *r = PQexecParams(*pg, "SELECT id, state FROM publication.record WHERE case_id = $1",
                               1, NULL, params, NULL, NULL, 0);
    int64_t rec = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1) {
        rec = atoll(PQgetvalue(r, 0, 0));
        snprintf(state, 32, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return rec;
}

#define STEP(op, rid_suffix, ...)                                                                  \
    do {                                                                                           \
        snprintf(body, sizeof body, __VA_ARGS__);                                                  \
        snprintf(rid, sizeof rid, "%s-%d-%s", s_r.w.run, i, rid_suffix);                           \
        json_t *res_ = s_call(cli, op, rid, body, code, c->err, sizeof c->err);                    \
        if (!res_)                                                                                 \
            return -1;                                                                             \
        if (strcmp(op, "case.open") == 0)                                                          \
            c->case_id = json_integer_value(json_object_get(res_, "case_id"));                     \
        json_decref(res_);                                                                         \
    } while (0)

/* Drives case i to its end. Returns 0, or -1 with c->err. */
static int
s_drive(s_cli_t *cli, PGconn **pg, int i)
{
    s_case_t *c = &s_r.cases[i];
    const char *t = s_r.today;
    char body[2048], rid[64], code[64], no[64], dno[64];
    snprintf(no, sizeof no, "嘉市监F%s-%d号", s_r.w.run, i);
    snprintf(dno, sizeof dno, "嘉市监决F%s-%d号", s_r.w.run, i);
    variant_t v = c->v;
    bool lic = v == V_LIC || v == V_LIC_X, rev = v == V_REV || v == V_REV_X;
    if (v == V_INS) {
        STEP("case.open", "open",
             "{\"case_no\":\"%s\",\"matter_code\":\"" M_JC "\",\"party\":%s,\"summary\":"
             "\"双随机抽查\",\"opened_on\":\"%s\",\"on_site\":true,\"act_date\":\"%s\","
             "\"officers\":[\"甘JYG001\",\"甘JYG002\"]}",
             no, s_party(1), t, t);
        STEP(
            "inspection.result", "result",
            "{\"case_no\":\"%s\",\"result_date\":\"%s\",\"subject\":\"嘉峪关市镜铁区王记家常菜馆\","
            "\"result\":\"problems_found\",\"problems\":\"冷冻肉制品未张贴标签\",\"handled\":"
            "\"当场责令改正\"}",
            no, t);
        STEP("case.close", "close", "{\"case_no\":\"%s\",\"closed_on\":\"%s\"}", no, t);
        return 0;
    }
    STEP("case.open", "open",
         "{\"case_no\":\"%s\",\"matter_code\":\"%s\",\"party\":%s,\"summary\":\"%s\","
         "\"opened_on\":\"%s\"}",
         no, lic ? M_XK : M_CF, s_party(i), lic ? "申请食品经营许可" : "销售未经进货查验的食品", t);
    if (lic)
        STEP("case.propose", "propose",
             "{\"case_no\":\"%s\",\"category\":\"准予行政许可\",\"content\":\"准予食品经营许可\","
             "\"fine\":\"0\",\"legal_basis\":\"《中华人民共和国行政许可法》第三十八条\"}",
             no);
    else if (!rev)
        STEP("case.propose", "propose",
             "{\"case_no\":\"%s\",\"category\":\"罚款\",\"content\":\"处罚款\",\"fine\":\"0.8\","
             "\"legal_basis\":\"《中华人民共和国食品安全法》第一百二十六条\"}",
             no);
    else /* 6 万元: the review catalogue's rule (5 万元 or more) needs legal review */
        STEP("case.propose", "propose",
             "{\"case_no\":\"%s\",\"category\":\"罚款;没收违法所得\",\"content\":\"罚款伍万元，"
             "没收违法所得壹万元\",\"fine\":\"5\",\"confiscation\":\"1\",\"legal_basis\":"
             "\"《中华人民共和国食品安全法》第一百二十六条第一款第（三）项\"}",
             no);
    /* The suite's self-check (SX_FAULT_DUP_CASE): the proposal sent again under a new rid,
     * as a client that does not keep its rid would: a duplicated effect that must FAIL. */
    if (i == s_r.dup_case && !rev)
        STEP("case.propose", "propose-again",
             "{\"case_no\":\"%s\",\"category\":\"%s\",\"content\":\"%s\",\"fine\":\"%s\","
             "\"legal_basis\":\"%s\"}",
             no, lic ? "准予行政许可" : "罚款", lic ? "准予食品经营许可" : "处罚款",
             lic ? "0" : "0.8",
             lic ? "《中华人民共和国行政许可法》第三十八条"
                 : "《中华人民共和国食品安全法》第一百二十六条");
    /* A review_pending answer is stored under its rid: ask again with a new one. */
    for (int k = 0;; k++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "decide%d", k);
        snprintf(body, sizeof body,
                 "{\"case_no\":\"%s\",\"decision_no\":\"%s\",\"decision_date\":\"%s\"}", no, dno,
                 t);
        snprintf(rid, sizeof rid, "%s-%d-%s", s_r.w.run, i, suffix);
        json_t *res = s_call(cli, "case.decide", rid, body, code, c->err, sizeof c->err);
        if (res) {
            json_decref(res);
            break;
        }
        if (strcmp(code, "review_pending") != 0 || k >= 1200)
            return -1;
        story_sleep_ms(200);
    }
    c->err[0] = '\0';
    STEP("case.serve", "serve", "{\"case_no\":\"%s\",\"served_on\":\"%s\",\"method\":\"direct\"}",
         no, t);
    if (!lic)
        STEP("case.execute", "execute",
             "{\"case_no\":\"%s\",\"executed_on\":\"%s\",\"method\":\"voluntary\"}", no, t);
    STEP("case.close", "close", "{\"case_no\":\"%s\",\"closed_on\":\"%s\"}", no, t);
    if (v != V_LIC_X && v != V_PEN_X && v != V_REV_X)
        return 0;
    /* Revoked once published (so that the withdrawal follows a pushed record). */
    char state[32];
    for (int64_t end = story_now_ms() + CALL_MS;; story_sleep_ms(200)) {
        if (end > s_r.hard_end)
            end = s_r.hard_end;
        if (s_pub_state(pg, c->case_id, state) > 0 && strcmp(state, "published") == 0)
            break;
        if (story_now_ms() >= end) {
            snprintf(c->err, sizeof c->err, "case %lld never published (state %s)",
                     (long long)c->case_id, state[0] ? state : "none");
            return -1;
        }
    }
    STEP("case.revoke", "revoke",
         "{\"case_no\":\"%s\",\"kind\":\"revoke\",\"reason\":\"行政复议决定撤销\","
         "\"revoked_on\":\"%s\"}",
         no, t);
    return 0;
}

typedef struct {
    int from, to; /* the cases [from, to) this worker may take (through s_r.next) */
} s_span_t;

static void *
s_worker(void *arg)
{
    s_span_t *span = arg;
    s_cli_t cli = {0};
    PGconn *pg = NULL;
    if (s_cli_open(&cli, STORY_INTAKE, "scjg") != 0) {
        fprintf(stderr, "fault: worker: no intake client\n");
        return NULL;
    }
    for (;;) {
        int i = atomic_fetch_add(&s_r.next, 1);
        if (i >= span->to)
            break;
        if (story_now_ms() >= s_r.load_end) {
            snprintf(s_r.cases[i].err, sizeof s_r.cases[i].err,
                     "not driven: the load's time limit (SX_FAULT_LOAD_S) passed");
            atomic_fetch_add(&s_r.done, 1);
            continue;
        }
        if (s_drive(&cli, &pg, i) != 0)
            fprintf(stderr, "fault: case %d (%s): %s\n", i, s_vname[s_r.cases[i].v],
                    s_r.cases[i].err);
        s_r.cases[i].driven = true;
        atomic_fetch_add(&s_r.done, 1);
    }
    PQfinish(pg);
    rpc_client_destroy(&cli.c);
    return NULL;
}

/* ---- The publisher and the reviewer ------------------------------------------------------ */

/* The publisher approves every draft. Departments hear drafts on publication.drafted, but
 * the broker being killed loses events and publication offers departments no re-sync op
 * (intake has events.since), so the drafts are read from publication.record. */
static void *
s_publisher(void *arg)
{
    (void)arg;
    s_cli_t cli = {0};
    if (s_cli_open(&cli, STORY_PUBLICATION, "publisher") != 0)
        return NULL;
    PGconn *pg = NULL;
    while (!atomic_load(&s_r.quit)) {
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = PQconnectdb(s_r.pg_url);
        }
        PGresult *r = PQexec(pg, "SELECT id FROM publication.record WHERE state = 'draft' "
                                 "ORDER BY id LIMIT 500");
        int n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
        for (int k = 0; k < n && !atomic_load(&s_r.quit); k++) {
            char body[64], rid[64], code[64], why[512];
            long long id = atoll(PQgetvalue(r, k, 0));
            snprintf(body, sizeof body, "{\"record_id\":%lld}", id);
            snprintf(rid, sizeof rid, "%s-approve-%lld", s_r.w.run, id);
            json_t *res = s_call(&cli, "publication.approve", rid, body, code, why, sizeof why);
            if (res)
                atomic_fetch_add(&s_r.approved, 1);
            else
                fprintf(stderr, "fault: publisher: %s\n", why);
            json_decref(res);
        }
        PQclear(r);
        if (n == 0)
            story_sleep_ms(200);
    }
    PQfinish(pg);
    rpc_client_destroy(&cli.c);
    return NULL;
}

static void
s_points(char *buf, size_t size)
{
    static const char *const keys[] = {"subject",   "facts",     "basis",   "discretion",
                                       "procedure", "documents", "referral"};
    size_t n = (size_t)snprintf(buf, size, "{");
    for (int i = 0; i < 7; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s\"%s\":{\"pass\":true,\"comment\":\"无异议\"}",
                              i ? "," : "", keys[i]);
    snprintf(buf + n, size - n, "}");
}

/* The bureau's legal reviewer approves every task it is given. */
static void *
s_reviewer(void *arg)
{
    (void)arg;
    s_cli_t cli = {0};
    if (s_cli_open(&cli, STORY_REVIEW, "reviewer") != 0)
        return NULL;
    char points[1024];
    s_points(points, sizeof points);
    for (unsigned n = 0; !atomic_load(&s_r.quit); n++) {
        char rid[64], code[64], why[512], body[1400];
        snprintf(rid, sizeof rid, "%s-tasks-%u", s_r.w.run, n);
        json_t *res = s_call(&cli, "review.tasks", rid, "{\"reviewer\":\"" REVIEWER "\"}", code,
                             why, sizeof why);
        size_t k, got = 0;
        json_t *task;
        json_array_foreach(json_object_get(res, "tasks"), k, task)
        {
            json_int_t id = json_integer_value(json_object_get(task, "task_id"));
            snprintf(rid, sizeof rid, "%s-opinion-%lld", s_r.w.run, (long long)id);
            snprintf(body, sizeof body,
                     "{\"task_id\":%lld,\"reviewer\":\"" REVIEWER "\",\"points\":%s,"
                     "\"verdict\":\"approve\"}",
                     (long long)id, points);
            json_t *o = s_call(&cli, "review.opinion", rid, body, code, why, sizeof why);
            if (o)
                atomic_fetch_add(&s_r.opinions, 1);
            else if (strcmp(code, "task_closed") != 0)
                fprintf(stderr, "fault: reviewer: %s\n", why);
            json_decref(o);
            got++;
        }
        json_decref(res);
        if (got == 0)
            story_sleep_ms(200);
    }
    rpc_client_destroy(&cli.c);
    return NULL;
}

/* ---- Signatures -------------------------------------------------------------------------- */

typedef struct {
    int n;          /* publication records of the case */
    char state[64]; /* their states, joined */
    int64_t rec;    /* the (first) record id */
} s_pub_t;

/* Reads every case's signature into cases[from..to). Returns how many differ from their
 * variant's reference (refs NULL: none compared). */
static int
s_signatures(int from, int to, bool compare)
{
    s_cli_t intake = {0}, rec = {0};
    if (s_cli_open(&intake, STORY_INTAKE, "scjg") != 0 ||
        s_cli_open(&rec, STORY_RECORDING, "scjg") != 0)
        return to - from;
    PGconn *pg = PQconnectdb(s_r.pg_url);
    PGresult *pr = PQexec(pg, "SELECT case_id, count(*), string_agg(state, ',' ORDER BY id), "
                              "min(id) FROM publication.record GROUP BY case_id");
    /* The legal review tasks of each case: one per proposal that needs review. */
    PGresult *rr = PQexec(pg, "SELECT case_id, count(*), string_agg(status, ',' ORDER BY id) "
                              "FROM review.task GROUP BY case_id");
    int64_t maxid = 0;
    for (int i = from; i < to; i++)
        maxid = s_r.cases[i].case_id > maxid ? s_r.cases[i].case_id : maxid;
    int *pub_row = calloc((size_t)maxid + 1, sizeof *pub_row); /* row + 1 by case_id */
    int *rev_row = calloc((size_t)maxid + 1, sizeof *rev_row);
    for (int k = 0; PQresultStatus(pr) == PGRES_TUPLES_OK && k < PQntuples(pr); k++) {
        long long id = atoll(PQgetvalue(pr, k, 0));
        if (id > 0 && id <= maxid)
            pub_row[id] = k + 1;
    }
    for (int k = 0; PQresultStatus(rr) == PGRES_TUPLES_OK && k < PQntuples(rr); k++) {
        long long id = atoll(PQgetvalue(rr, k, 0));
        if (id > 0 && id <= maxid)
            rev_row[id] = k + 1;
    }
    json_t *stats = story_credit_stats(&s_r.w);
    json_t *keys = json_object_get(stats, "keys");
    int bad = 0;
    for (int i = from; i < to; i++) {
        s_case_t *c = &s_r.cases[i];
        char code[64], why[512], body[128], rid[64];
        char state[32] = "-", chain[96] = "-";
        long long pv = -1;
        snprintf(body, sizeof body, "{\"case_id\":%lld}", (long long)c->case_id);
        snprintf(rid, sizeof rid, "%s-get-%d", s_r.w.run, i);
        json_t *g =
            c->case_id ? s_call(&intake, "case.get", rid, body, code, why, sizeof why) : NULL;
        if (g) {
            snprintf(state, sizeof state, "%s",
                     json_string_value(json_object_get(g, "state")) ?: "?");
            pv = json_integer_value(json_object_get(g, "proposal_version"));
        }
        json_decref(g);
        snprintf(rid, sizeof rid, "%s-verify-%d", s_r.w.run, i);
        json_t *vr =
            c->case_id ? s_call(&rec, "record.verify", rid, body, code, why, sizeof why) : NULL;
        if (vr)
            snprintf(chain, sizeof chain, "ok=%d count=%lld sealed=%d seal_ok=%d",
                     json_is_true(json_object_get(vr, "ok")),
                     (long long)json_integer_value(json_object_get(vr, "count")),
                     json_is_true(json_object_get(vr, "sealed")),
                     json_is_true(json_object_get(vr, "seal_ok")));
        json_decref(vr);
        s_pub_t p = {0, "none", 0};
        int k = c->case_id > 0 ? pub_row[c->case_id] - 1 : -1;
        if (k >= 0) {
            p.n = atoi(PQgetvalue(pr, k, 1));
            snprintf(p.state, sizeof p.state, "%s", PQgetvalue(pr, k, 2));
            p.rec = atoll(PQgetvalue(pr, k, 3));
        }
        char review[96] = "0:none";
        k = c->case_id > 0 ? rev_row[c->case_id] - 1 : -1;
        if (k >= 0)
            snprintf(review, sizeof review, "%s:%.80s", PQgetvalue(rr, k, 1), PQgetvalue(rr, k, 2));
        int status = -1;
        if (p.rec) {
            /* A 503 (publication lost its database) or no connection is "try again", as a
             * reader's browser would: counted, then asked again (bounded). */
            char path[64];
            snprintf(path, sizeof path, "/api/v1/decisions/%lld", (long long)p.rec);
            for (int k = 0; k < 50; k++) {
                status = story_http_get(s_r.w.portal_port, path, NULL);
                if (status != 503 && status != 0)
                    break;
                atomic_fetch_add(&s_r.portal_retries, 1);
                story_sleep_ms(100);
            }
        }
        char k1[48], k2[48];
        snprintf(k1, sizeof k1, "%lld-1", (long long)p.rec);
        snprintf(k2, sizeof k2, "%lld-2", (long long)p.rec);
        snprintf(c->sig, sizeof c->sig,
                 "state=%s proposals=%lld reviews=%s chain[%s] records=%d:%s portal=%d pushed=%s "
                 "withdrawn=%s",
                 state, pv, review, chain, p.n, p.state, status,
                 json_object_get(keys, k1) ? "yes" : "no",
                 json_object_get(keys, k2) ? "yes" : "no");
        if (compare && (c->err[0] || strcmp(c->sig, s_r.ref_sig[c->v]) != 0))
            bad++;
    }
    json_decref(stats);
    free(pub_row);
    free(rev_row);
    PQclear(rr);
    PQclear(pr);
    PQfinish(pg);
    rpc_client_destroy(&intake.c);
    rpc_client_destroy(&rec.c);
    return bad;
}

/* Whether a reference signature is final: what the variant must end in. */
static bool
s_ref_final(variant_t v, const char *sig)
{
    bool x = v == V_LIC_X || v == V_PEN_X || v == V_REV_X;
    if (!strstr(sig, "ok=1") || !strstr(sig, "sealed=1 seal_ok=1"))
        return false;
    if (!strstr(sig, v == V_REV || v == V_REV_X ? "reviews=1:approved" : "reviews=0:none"))
        return false;
    if (x)
        return strstr(sig, "state=revoked") && strstr(sig, "records=1:withdrawn") &&
               strstr(sig, "pushed=yes withdrawn=yes");
    if (v == V_INS)
        return strstr(sig, "state=closed") && strstr(sig, "records=1:published") &&
               strstr(sig, "pushed=no withdrawn=no");
    return strstr(sig, "state=closed") && strstr(sig, "records=1:published") &&
           strstr(sig, "pushed=yes withdrawn=no");
}

/* ---- Global checks ---------------------------------------------------------------------- */

/* The platform and creditpush agree with the cases: appends differences to out. */
static int
s_global(char *out, size_t size)
{
    int bad = 0;
    size_t n = strlen(out);
#define S_DIFF(...)                                                                                \
    do {                                                                                           \
        bad++;                                                                                     \
        if (n < size)                                                                              \
            n += (size_t)snprintf(out + n, size - n, __VA_ARGS__);                                 \
    } while (0)
    json_t *st = story_credit_stats(&s_r.w);
    if (!st) {
        S_DIFF("  fake-credit: no /admin/stats\n");
        return bad;
    }
    long long want = 0, want_pub = 0, want_wd = 0;
    for (int i = 0; i < s_r.ncases; i++) {
        const char *s = s_r.cases[i].sig;
        want_pub += strstr(s, "pushed=yes") != NULL;
        want_wd += strstr(s, "withdrawn=yes") != NULL;
    }
    want = want_pub + want_wd;
    long long accepted = json_integer_value(json_object_get(st, "accepted"));
    long long withdrawn = json_integer_value(json_object_get(st, "withdrawn"));
    json_t *keys = json_object_get(st, "keys");
    /* Each record applied once, each withdrawal once: a resend is a `duplicate`. */
    if (accepted != want_pub || withdrawn != want_wd)
        S_DIFF("  fake-credit: %lld records and %lld withdrawals applied; the cases have %lld "
               "and %lld\n",
               accepted, withdrawn, want_pub, want_wd);
    if ((long long)json_object_size(keys) != want)
        S_DIFF("  fake-credit: %zu distinct keys, the cases have %lld\n", json_object_size(keys),
               want);
    static const char *const zero[] = {"early_withdrawals", "rejected", "bad_auth", "bad_body"};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        if (json_integer_value(json_object_get(st, zero[i])) != 0)
            S_DIFF("  fake-credit: %s = %lld, expected 0\n", zero[i],
                   (long long)json_integer_value(json_object_get(st, zero[i])));
    printf("fault: platform: received %lld, accepted %lld, withdrawn %lld, duplicates %lld "
           "(answered, not applied), keys %zu\n",
           (long long)json_integer_value(json_object_get(st, "received")), accepted, withdrawn,
           (long long)json_integer_value(json_object_get(st, "duplicates")),
           json_object_size(keys));
    json_decref(st);
    s_cli_t cp = {0};
    char code[64], why[512], rid[64];
    snprintf(rid, sizeof rid, "%s-depth", s_r.w.run);
    json_t *d = s_cli_open(&cp, STORY_CREDITPUSH, "sxctl") == 0
                    ? s_call(&cp, "creditpush.depth", rid, "{}", code, why, sizeof why)
                    : NULL;
    rpc_client_destroy(&cp.c);
    if (!d)
        S_DIFF("  creditpush.depth: %s\n", why);
    else {
        json_t *dead = json_object_get(d, "dead"), *queued = json_object_get(d, "queued");
        char *text = json_dumps(d, JSON_COMPACT);
        if ((json_is_integer(dead) && json_integer_value(dead) != 0) ||
            (json_is_string(dead) && strcmp(json_string_value(dead), "0") != 0) ||
            (json_is_integer(queued) && json_integer_value(queued) != 0) ||
            (json_is_string(queued) && strcmp(json_string_value(queued), "0") != 0))
            S_DIFF("  creditpush.depth: %s, expected no dead letter and nothing queued\n", text);
        free(text);
        json_decref(d);
    }
    long long cases =
        story_pg_count(&s_r.w, "SELECT count(*) FROM intake.cases WHERE agency = '" AGENCY
                               "' AND case_no LIKE '嘉市监F%'");
    if (cases != s_r.ncases)
        S_DIFF("  intake: %lld cases, the driver opened %d\n", cases, s_r.ncases);
#undef S_DIFF
    return bad;
}

/* ---- Main ------------------------------------------------------------------------------- */

static int
s_setup_registry(void)
{
    json_t *r = story_example(&s_r.w, "legal", "01-registry.agency.put.json");
    if (!r)
        return -1;
    json_decref(r);
    static const char *const files[] = {
        "02-registry.officer.put.json",     "03-registry.officer.put.json",
        "04-registry.matter.put.json",      "05-registry.matter.put.json",
        "06-registry.matter.put.json",      "07-registry.inspection_item.put.json",
        "09-registry.review_rule.put.json", "10-registry.discretion.put.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!(r = story_example(&s_r.w, "scjg", files[i])))
            return -1;
        json_decref(r);
    }
    r = story_do(&s_r.w, STORY_INTAKE, "scjg", "registry.officer.put",
                 "{\"agency\":\"" AGENCY "\",\"version\":0,\"cert_no\":\"" REVIEWER "\",\"name\":"
                 "\"周明\",\"valid_from\":\"2024-01-01\",\"valid_to\":\"2030-12-31\",\"area\":"
                 "\"嘉峪关市\",\"legal_qualified\":true,\"reviewer\":true}");
    if (!r)
        return -1;
    json_decref(r);
    /* Every service has the registry before the first case (publication's portal lists
     * the matters once it consumed them). */
    for (int64_t end = story_now_ms() + 30000; story_now_ms() < end; story_sleep_ms(100)) {
        json_t *a = NULL;
        bool ok = story_http_get(s_r.w.portal_port, "/api/v1/agencies/" AGENCY, &a) == 200 &&
                  json_array_size(json_object_get(json_object_get(a, "lists"), "matter")) == 3;
        json_decref(a);
        if (ok)
            return 0;
    }
    snprintf(s_r.w.err, sizeof s_r.w.err, "publication never listed the bureau's 3 matters");
    return -1;
}

static int
s_env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "fault: %s=%s: want %d..%d; using %d\n", name, v, lo, hi, def);
        return def;
    }
    return (int)n;
}

static void
s_run_threads(int from, int to, int nthreads)
{
    pthread_t th[MAX_THR];
    s_span_t span = {from, to};
    atomic_store(&s_r.next, from);
    for (int t = 0; t < nthreads; t++)
        pthread_create(&th[t], NULL, s_worker, &span);
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
}

int
main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int64_t t_start = story_now_ms();
    int ncases = s_env_int("SX_FAULT_CASES", 2000, 10, 100000);
    int nthreads = s_env_int("SX_FAULT_THREADS", 8, 1, MAX_THR);
    int quiet_s = s_env_int("SX_FAULT_QUIET_S", 120, 10, 3600);
    int load_s_max = s_env_int("SX_FAULT_LOAD_S", 300, 10, 36000);
    int budget_s = s_env_int("SX_FAULT_BUDGET_S", 480, 60, 36000);
    s_r.hard_end = t_start + (int64_t)budget_s * 1000;
    /* The self-check: load case N (1-based; a licence or a penalty without review) gets
     * its proposal twice; the run must then FAIL naming it. */
    s_r.dup_case = s_env_int("SX_FAULT_DUP_CASE", 0, 0, ncases) - 1;
    if (s_r.dup_case >= 0) {
        s_r.dup_case += V_N;
        printf("fault: self-check: load case %d gets a duplicated proposal; expect FAIL\n",
               s_r.dup_case);
    }
    s_r.load_end = s_r.hard_end;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    const char *es = getenv("SX_FAULT_SEED");
    if (es && *es)
        seed = strtoull(es, NULL, 10);
    printf("fault: seed %llu (replay: SX_FAULT_SEED=%llu make test-fault), %d cases, %d "
           "connections\n",
           (unsigned long long)seed, (unsigned long long)seed, ncases, nthreads);

    s_r.pg_url = ts_fresh_db("fault");
    snprintf(s_r.redis, sizeof s_r.redis, "%s", ts_env("SX_REDIS_URL"));
    char *slash = strrchr(s_r.redis, '/');
    if (slash && slash > s_r.redis + 8)
        snprintf(slash, sizeof s_r.redis - (size_t)(slash - s_r.redis), "/8");
    story_today(s_r.today);
    static const char *const clients[][2] = {{"legal", "dept:" LEGAL ":legal_office"},
                                             {"scjg", "dept:" AGENCY ":system"},
                                             {"publisher", "dept:" AGENCY ":publisher"},
                                             {"reviewer", "dept:" AGENCY ":reviewer"},
                                             {"sxctl", "svc:sxctl"},
                                             {NULL, NULL}};
    story_opts_t o = {.bin_dir = ts_env("SX_BIN"),
                      .log_dir = ts_env("SX_TMP"),
                      .top = ts_env("SX_TOP"),
                      .pg_url = s_r.pg_url,
                      .redis_url = s_r.redis,
                      .clients = clients,
                      .pool_agency = LEGAL};
    if (story_world_start(&s_r.w, &o) != 0) {
        printf("fault: FAIL: the world did not start: %s\n", s_r.w.err);
        return 2;
    }
    char err[1024];
    fault_chaos_t *chaos = fault_chaos_new(&s_r.w, seed, ts_env("SX_TMP"), ts_env("SX_REDIS_URL"),
                                           s_r.pg_url, err, sizeof err);
    int rc = 2;
    pthread_t pub, rev;
    bool helpers = false;
    if (!chaos) {
        printf("fault: FAIL: %s\n", err);
        goto out;
    }
    if (s_setup_registry() != 0) {
        printf("fault: FAIL: registry: %s\n", s_r.w.err);
        goto out;
    }
    s_r.nref = V_N;
    s_r.ncases = V_N + ncases;
    s_r.cases = calloc((size_t)s_r.ncases, sizeof *s_r.cases);
    for (int i = 0; i < V_N; i++)
        s_r.cases[i].v = (variant_t)i;
    for (int i = 0; i < ncases; i++)
        s_r.cases[V_N + i].v = s_mix[(uint64_t)i % 10];
    pthread_create(&pub, NULL, s_publisher, NULL);
    pthread_create(&rev, NULL, s_reviewer, NULL);
    helpers = true;

    /* 1. The reference, without faults. */
    s_run_threads(0, V_N, V_N);
    bool ref_ok = false;
    for (int64_t end = story_now_ms() + 60000; !ref_ok && story_now_ms() < end;
         story_sleep_ms(300)) {
        s_signatures(0, V_N, false);
        ref_ok = true;
        for (int v = 0; v < V_N; v++)
            ref_ok &= !s_r.cases[v].err[0] && s_ref_final((variant_t)v, s_r.cases[v].sig);
    }
    printf("fault: reference (no faults, %.1f s since start):\n",
           (double)(story_now_ms() - t_start) / 1000.0);
    for (int v = 0; v < V_N; v++) {
        snprintf(s_r.ref_sig[v], sizeof s_r.ref_sig[v], "%s", s_r.cases[v].sig);
        printf("  %-25s %s%s%s\n", s_vname[v], s_r.ref_sig[v], s_r.cases[v].err[0] ? " ERROR " : "",
               s_r.cases[v].err);
    }
    if (!ref_ok) {
        printf("fault: FAIL: the reference cases did not reach their final state without "
               "faults\n");
        rc = 1;
        goto out;
    }

    /* 2. The load under faults. */
    int64_t t_load = story_now_ms();
    s_r.load_end = t_load + (int64_t)load_s_max * 1000;
    if (fault_chaos_start(chaos, 500, 2000, 800, err, sizeof err) != 0) {
        printf("fault: FAIL: %s\n", err);
        goto out;
    }
    pthread_t th[MAX_THR];
    s_span_t span = {V_N, s_r.ncases};
    atomic_store(&s_r.next, V_N);
    atomic_store(&s_r.done, 0);
    for (int t = 0; t < nthreads; t++)
        pthread_create(&th[t], NULL, s_worker, &span);
    bool pg_asked = false;
    while (atomic_load(&s_r.done) < ncases) {
        story_sleep_ms(1000);
        int done = atomic_load(&s_r.done);
        if (!pg_asked && done >= ncases / 3) {
            fault_chaos_pg_now(chaos);
            pg_asked = true;
        }
        fprintf(stderr,
                "fault: %d/%d cases driven, %d approved, %d opinions, %d timeouts, %d "
                "unavailable\n",
                done, ncases, atomic_load(&s_r.approved), atomic_load(&s_r.opinions),
                atomic_load(&s_r.timeouts), atomic_load(&s_r.unavailable));
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    /* A load that ended before every target was hit: the faults go on (bounded) while
     * the consumers are still catching up. */
    for (int64_t end = story_now_ms() + 60000; !fault_chaos_all_hit(chaos) && story_now_ms() < end;)
        story_sleep_ms(200);
    double load_s = (double)(story_now_ms() - t_load) / 1000.0;
    int down = fault_chaos_halt(chaos);
    printf("fault: load: %d cases driven, faults for %.1f s (%d rpc timeouts resent, %d "
           "unavailable retried); %d process(es) not running after the faults\n",
           ncases, load_s, atomic_load(&s_r.timeouts), atomic_load(&s_r.unavailable), down);

    /* 3. The quiet period: every signature equal to its reference, or the bound. */
    int64_t t_quiet = story_now_ms();
    int bad = s_r.ncases;
    for (int64_t end = story_now_ms() + (int64_t)quiet_s * 1000;
         story_now_ms() < end && story_now_ms() < s_r.hard_end; story_sleep_ms(1000)) {
        fault_chaos_supervise(chaos);
        bad = s_signatures(V_N, s_r.ncases, true);
        fprintf(stderr, "fault: quiet period %.0f s: %d cases differ\n",
                (double)(story_now_ms() - t_quiet) / 1000.0, bad);
        if (bad == 0)
            break;
    }
    /* The final read, with the portal's answers. */
    bad = s_signatures(0, s_r.ncases, true);
    atomic_store(&s_r.quit, true);
    pthread_join(pub, NULL);
    pthread_join(rev, NULL);
    helpers = false;

    fault_chaos_print(chaos, stdout);
    static const char *const targets[] = {"broker",      "intake",     "recording", "review",
                                          "publication", "creditpush", "redis",     "postgres"};
    printf("fault: kills:");
    int never = 0;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        int k = fault_chaos_kills(chaos, targets[i]);
        printf(" %s %d", targets[i], k);
        never += k == 0;
    }
    printf("\n");
    char diffs[8192] = "";
    size_t dn = 0;
    int shown = 0;
    for (int i = 0; i < s_r.ncases; i++) {
        s_case_t *c = &s_r.cases[i];
        if (!c->err[0] && strcmp(c->sig, s_r.ref_sig[c->v]) == 0)
            continue;
        if (shown++ < 10 && dn < sizeof diffs)
            dn +=
                (size_t)snprintf(diffs + dn, sizeof diffs - dn,
                                 "  case %d (case_id %lld, %s)%s%s\n    got      %s\n    expected "
                                 "%s\n",
                                 i, (long long)c->case_id, s_vname[c->v], c->err[0] ? ": " : "",
                                 c->err, c->sig, s_r.ref_sig[c->v]);
    }
    int gbad = s_global(diffs, sizeof diffs);
    printf("fault: portal answered 503 or refused %d time(s) (asked again)\n",
           atomic_load(&s_r.portal_retries));
    printf("fault: %d cases (%d reference), %d differ from the run without faults; %d global "
           "difference(s); quiet period %.1f s; total %.1f s\n",
           s_r.ncases, V_N, bad, gbad, (double)(story_now_ms() - t_quiet) / 1000.0,
           (double)(story_now_ms() - t_start) / 1000.0);
    if (story_now_ms() >= s_r.hard_end)
        printf("fault: the time budget (SX_FAULT_BUDGET_S=%d) ran out: calls after it were "
               "not tried\n",
               budget_s);
    if (bad || gbad || never || down) {
        if (never)
            printf("fault: %d target(s) were never killed: the load ended too soon\n", never);
        printf("fault: first differences:\n%s", diffs);
        printf("fault: FAIL (seed %llu)\n", (unsigned long long)seed);
        rc = 1;
    } else {
        printf("fault: PASS (seed %llu)\n", (unsigned long long)seed);
        rc = 0;
    }

out:
    if (helpers) {
        atomic_store(&s_r.quit, true);
        pthread_join(pub, NULL);
        pthread_join(rev, NULL);
    }
    if (chaos)
        fault_chaos_halt(chaos);
    int unclean = story_world_stop(&s_r.w);
    if (unclean)
        printf("fault: %d process(es) did not stop cleanly on SIGTERM\n", unclean);
    if (chaos)
        fault_chaos_stop_servers(chaos);
    fault_chaos_destroy(&chaos);
    free(s_r.cases);
    free(s_r.pg_url);
    return rc;
}
