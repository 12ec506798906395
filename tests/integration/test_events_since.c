/* events.since on the doors of recording, review and publication, and publication.drafts
 * (the publisher's work list): the real binaries beside a real sx-broker, PostgreSQL and
 * Redis, with real CURVE keys.
 *
 * The departments here never subscribe to anything: every event they get, they get from
 * the producers' doors. The test plays intake (its outbox and relay): decided cases
 * become publication drafts, so publication.drafted / published / rejected are the
 * service's own events. Review's and recording's events are written into their outboxes
 * with bus_emit (what those services' event code calls), and sequenced by the services'
 * own relays: the op reads what the relay sequenced, whoever wrote it. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "bus.h"
#include "rpc.h"
#include "tproc.h"
#include "tsupport.h"

#define AGENCY "11620200013926143G"
#define OTHER  "11330400MB00000019"
#define LEGAL  "116202000139261871" /* the legal office (司法局), also the review pool */
#define BIG    "12620200MB00000032" /* an agency with large events */

typedef struct {
    tp_world_t w;
    char pub[3][41]; /* recording, review, publication: public keys */
    char ep[3][64];  /* their doors */
    int ops[3];      /* their ops ports */
    pid_t svc[3];
    int portal_port;
    tp_producer_t intake; /* the test plays intake */
    tp_producer_t out[2]; /* writes into recording's and review's outboxes (never relayed here) */
} fx_t;

enum { REC, REV, PUB };
static const char *const s_svc[3] = {"recording", "review", "publication"};

static fx_t *s_fx;

static rpc_reply_t
s_call(fx_t *fx, int svc, const char *who, const char *op, const char *json)
{
    return tp_world_call(&fx->w, fx->ep[svc], fx->pub[svc], who, op, json, 3000, 3);
}

/* An ok reply's result; fails the test on an error. */
static json_t *
s_ok(fx_t *fx, int svc, const char *who, const char *op, const char *json)
{
    rpc_reply_t rep = s_call(fx, svc, who, op, json);
    json_t *j = tp_reply_json(&rep);
    rpc_reply_clear(&rep);
    return j;
}

/* An error reply with code at field. */
static void
s_err(fx_t *fx, int svc, const char *who, const char *op, const char *json, const char *code,
      const char *field)
{
    rpc_reply_t rep = s_call(fx, svc, who, op, json);
    if (rep.ok)
        fail_msg("%s %s %s: ok, wanted %s", s_svc[svc], op, json, code);
    assert_string_equal(rep.code, code);
    assert_string_equal(rep.field, field);
    assert_true(rep.zh[0] && rep.en[0]);
    rpc_reply_clear(&rep);
}

/* Every event of who's agency on svc's door, paging with limit (0: none given), at most
 * 50 pages; checks each page's shape (aseq gapless from 1, every topic the agency's,
 * more/last_aseq consistent) and returns the topics in order. */
static json_t *
s_all(fx_t *fx, int svc, const char *who, const char *agency, int limit)
{
    json_t *topics = json_array();
    uint64_t from = 0;
    for (int page = 0; page < 50; page++) {
        char body[64];
        if (limit)
            snprintf(body, sizeof body, "{\"from\":%llu,\"limit\":%d}", (unsigned long long)from,
                     limit);
        else
            snprintf(body, sizeof body, "{\"from\":%llu}", (unsigned long long)from);
        json_t *j = s_ok(fx, svc, who, "events.since", body);
        json_t *ev = json_object_get(j, "events");
        assert_true(json_is_array(ev));
        if (limit)
            assert_true(json_array_size(ev) <= (size_t)limit);
        size_t i;
        json_t *e;
        json_array_foreach(ev, i, e)
        {
            assert_int_equal(json_integer_value(json_object_get(e, "aseq")), from + 1);
            from++;
            const char *t = json_string_value(json_object_get(e, "topic"));
            assert_non_null(t);
            size_t n = strlen(t);
            assert_true(n > 19 && strcmp(t + n - 18, agency) == 0);
            assert_true(json_integer_value(json_object_get(e, "seq")) >= 1);
            assert_true(json_is_object(json_object_get(e, "data")));
            json_array_append_new(topics, json_string(t));
        }
        assert_int_equal(json_integer_value(json_object_get(j, "last_aseq")), from);
        bool more = json_is_true(json_object_get(j, "more"));
        json_decref(j);
        if (!more)
            return topics;
    }
    fail_msg("%s: events.since still had more after 50 pages", s_svc[svc]);
    return NULL;
}

/* Whether topics holds want in order (others may be between). */
static bool
s_in_order(const json_t *topics, const char *const want[])
{
    size_t k = 0;
    for (size_t i = 0; i < json_array_size(topics) && want[k]; i++)
        if (strcmp(json_string_value(json_array_get(topics, i)), want[k]) == 0)
            k++;
    return want[k] == NULL;
}

/* Sequenced rows of agency in svc's outbox. */
static long long
s_count(fx_t *fx, int svc, const char *agency)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM %s.outbox WHERE agency = '%s' AND aseq IS NOT NULL", s_svc[svc],
             agency);
    return tp_pg_num(fx->w.pg, sql);
}

static void
s_decide(fx_t *fx, const char *agency, int case_id)
{
    char topic[64], json[1024];
    snprintf(topic, sizeof topic, "case.opened.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"M1\","
             "\"state\":\"open\",\"party\":{\"kind\":\"org\",\"name\":\"某某公司%d\","
             "\"id_type\":\"uscc\",\"id_no\":\"91620200MA00000%03dX\"},\"summary\":null,"
             "\"opened_on\":\"2026-11-02\"}",
             case_id, case_id, case_id, case_id);
    tp_produce(&fx->intake, topic, json);
    snprintf(topic, sizeof topic, "case.decided.%s", agency);
    snprintf(json, sizeof json,
             "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"M1\","
             "\"state\":\"decided\",\"version\":1,\"decision_no\":\"嘉罚〔2026〕%d号\","
             "\"decision_date\":\"2026-11-20\",\"reviewed\":false,\"category\":\"罚款\","
             "\"content\":\"罚款2000元\",\"fine\":\"0.2\",\"confiscation\":\"0\","
             "\"legal_basis\":\"《食品安全法》\",\"violation_code\":null,\"circumstance\":null}",
             case_id, case_id, case_id);
    tp_produce(&fx->intake, topic, json);
}

/* A department that was never subscribed gets each service's events of its own agency,
 * in aseq order, page by page; another agency's and the legal office's stay theirs. */
static void
test_missed_events_from_every_door(void **state)
{
    fx_t *fx = *state;
    /* review and recording: three events for the agency, one for another, one for the
     * legal office, interleaved. */
    static const char *const rev_a[] = {"review.requested." AGENCY, "review.returned." AGENCY,
                                        "review.approved." AGENCY, NULL};
    static const char *const rec_a[] = {"record.sealed." AGENCY, "record.gap." AGENCY,
                                        "record.gap_closed." AGENCY, NULL};
    for (int i = 0; i < 3; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"case_id\":%d,\"n\":%d}", 100 + i, i);
        tp_produce(&fx->out[1], rev_a[i], json);
        tp_produce(&fx->out[0], rec_a[i], json);
        if (i == 1) {
            tp_produce(&fx->out[1], "review.returned." OTHER, json);
            tp_produce(&fx->out[0], "record.gap." OTHER, json);
            tp_produce(&fx->out[1], "review.escalated." LEGAL, json);
        }
    }
    /* publication: two drafts for the agency, one for another. */
    s_decide(fx, AGENCY, 1);
    s_decide(fx, OTHER, 2);
    s_decide(fx, AGENCY, 3);
    tp_pg_wait_num(fx->w.pg,
                   "SELECT count(*) FROM publication.outbox WHERE aseq IS NOT NULL AND topic LIKE "
                   "'publication.drafted.%'",
                   3, 20000, &fx->intake, 1);
    /* The services' own relays sequence the rows written into their outboxes. */
    tp_pg_wait_num(fx->w.pg, "SELECT count(*) FROM review.outbox WHERE aseq IS NULL", 0, 20000,
                   NULL, 0);
    tp_pg_wait_num(fx->w.pg, "SELECT count(*) FROM recording.outbox WHERE aseq IS NULL", 0, 20000,
                   NULL, 0);

    for (int svc = 0; svc < 3; svc++) {
        /* Whole, then one by one, then two by two: the same events. */
        json_t *all = s_all(fx, svc, "sys", AGENCY, 0);
        assert_int_equal((long long)json_array_size(all), s_count(fx, svc, AGENCY));
        for (int limit = 1; limit <= 2; limit++) {
            json_t *paged = s_all(fx, svc, "sys", AGENCY, limit);
            assert_true(json_equal(all, paged));
            json_decref(paged);
        }
        static const char *const pub_a[] = {"publication.drafted." AGENCY,
                                            "publication.drafted." AGENCY, NULL};
        assert_true(s_in_order(all, svc == REC ? rec_a : svc == REV ? rev_a : pub_a));
        json_decref(all);

        /* The other agency sees its own only. */
        json_t *other = s_all(fx, svc, "osys", OTHER, 0);
        assert_int_equal((long long)json_array_size(other), s_count(fx, svc, OTHER));
        assert_true(json_array_size(other) >= 1);
        json_decref(other);

        /* The legal office: its own code's rows, nobody else's. */
        json_t *legal = s_all(fx, svc, "legal", LEGAL, 0);
        assert_int_equal((long long)json_array_size(legal), s_count(fx, svc, LEGAL));
        if (svc == REV)
            assert_int_equal(json_array_size(legal), 1);
        json_decref(legal);

        /* A page from the middle, and past the end. */
        json_t *j = s_ok(fx, svc, "sys", "events.since", "{\"from\":1,\"limit\":1}");
        json_t *e = json_array_get(json_object_get(j, "events"), 0);
        assert_int_equal(json_integer_value(json_object_get(e, "aseq")), 2);
        assert_int_equal(json_integer_value(json_object_get(j, "last_aseq")), 2);
        json_decref(j);
        j = s_ok(fx, svc, "sys", "events.since", "{\"from\":1000000}");
        assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "last_aseq")), 1000000);
        assert_true(json_is_false(json_object_get(j, "more")));
        json_decref(j);

        /* Bad input is refused naming the field; an officer may not ask. */
        s_err(fx, svc, "sys", "events.since", "{}", "missing_field", "body.from");
        s_err(fx, svc, "sys", "events.since", "{\"from\":-1}", "bad_field", "body.from");
        s_err(fx, svc, "sys", "events.since", "{\"from\":\"0\"}", "bad_field", "body.from");
        s_err(fx, svc, "sys", "events.since", "{\"from\":0,\"limit\":0}", "bad_field",
              "body.limit");
        s_err(fx, svc, "sys", "events.since", "{\"from\":0,\"limit\":1001}", "bad_field",
              "body.limit");
        s_err(fx, svc, "sys", "events.since", "{\"from\":0,\"to\":1}", "unknown_field", "body.to");
        s_err(fx, svc, "officer", "events.since", "{\"from\":0}", "forbidden", "op");
    }
}

/* A reply stops at what fits in 60,000 bytes, with `more`; paging gets the rest. */
static void
test_reply_size_limit(void **state)
{
    fx_t *fx = *state;
    static char json[20100];
    for (int i = 0; i < 4; i++) {
        int n = snprintf(json, sizeof json, "{\"n\":%d,\"text\":\"", i);
        memset(json + n, 'a' + i, 20000);
        snprintf(json + n + 20000, sizeof json - (size_t)n - 20000, "\"}");
        tp_produce(&fx->out[1], "review.noted." BIG, json);
    }
    tp_pg_wait_num(fx->w.pg, "SELECT count(*) FROM review.outbox WHERE aseq IS NULL", 0, 20000,
                   NULL, 0);
    rpc_reply_t rep = s_call(fx, REV, "bsys", "events.since", "{\"from\":0}");
    assert_true(rep.ok);
    assert_true(rep.result_len <= 60000);
    json_t *j = tp_reply_json(&rep);
    rpc_reply_clear(&rep);
    size_t first = json_array_size(json_object_get(j, "events"));
    assert_true(first >= 1 && first < 4);
    assert_true(json_is_true(json_object_get(j, "more")));
    json_decref(j);
    json_t *all = s_all(fx, REV, "bsys", BIG, 0);
    assert_int_equal(json_array_size(all), 4);
    json_decref(all);
}

/* A drafts page: its ids and case numbers (at most 8), and its next_after_id. */
static size_t
s_drafts(fx_t *fx, const char *who, const char *body, long long ids[8], char cases[8][16],
         long long *next)
{
    json_t *j = s_ok(fx, PUB, who, "publication.drafts", body);
    json_t *items = json_object_get(j, "items");
    assert_true(json_is_array(items));
    size_t n = json_array_size(items);
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        ids[i] = json_integer_value(json_object_get(it, "id"));
        snprintf(cases[i], 16, "%s", json_string_value(json_object_get(it, "case_no")));
        assert_true(json_is_boolean(json_object_get(it, "late")));
        assert_string_equal(json_string_value(json_object_get(it, "type")), "penalty");
        assert_string_equal(json_string_value(json_object_get(it, "decision_date")), "2026-11-20");
        assert_true(json_is_string(json_object_get(it, "due_on")));
        assert_true(json_is_string(json_object_get(it, "decision_no")));
        assert_true(json_is_integer(json_object_get(it, "case_id")));
    }
    if (next)
        *next = json_integer_value(json_object_get(j, "next_after_id"));
    json_decref(j);
    return n;
}

/* The publisher's work list: its drafts, paged; a rejected one with its reason; an
 * approved one no more; another agency's never. (The drafts of cases 1-3 come from the
 * test before.) */
static void
test_drafts_work_list(void **state)
{
    fx_t *fx = *state;
    s_decide(fx, AGENCY, 11);
    s_decide(fx, OTHER, 12);
    s_decide(fx, AGENCY, 13);
    tp_pg_wait_num(fx->w.pg, "SELECT count(*) FROM publication.record WHERE state = 'draft'", 6,
                   20000, &fx->intake, 1);
    long long ids[8], next = -1, id2[8];
    char cases[8][16], c2[8][16];
    assert_int_equal(s_drafts(fx, "publisher", "{}", ids, cases, &next), 4);
    assert_int_equal(next, 0);
    static const char *const mine[] = {"C-1", "C-3", "C-11", "C-13"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(cases[i], mine[i]);
        assert_true(i == 0 || ids[i - 1] < ids[i]);
    }
    /* Page by page (limit 1): the same ids, then next_after_id 0. */
    long long after = 0;
    for (int i = 0; i < 4; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"after_id\":%lld,\"limit\":1}", after);
        assert_int_equal(s_drafts(fx, "publisher", body, id2, c2, &next), 1);
        assert_int_equal(id2[0], ids[i]);
        assert_int_equal(next, i < 3 ? ids[i] : 0);
        after = next;
    }
    /* The agency's system reads the same list; the other agency's publisher its own. */
    assert_int_equal(s_drafts(fx, "sys", "{}", id2, c2, NULL), 4);
    assert_int_equal(s_drafts(fx, "opub", "{}", id2, c2, NULL), 2);
    assert_string_equal(c2[0], "C-2");
    assert_string_equal(c2[1], "C-12");

    /* Approve C-1: gone from the list. Reject C-3: listed with its reason. */
    char body[128];
    snprintf(body, sizeof body, "{\"record_id\":%lld}", ids[0]);
    json_decref(s_ok(fx, PUB, "publisher", "publication.approve", body));
    snprintf(body, sizeof body, "{\"record_id\":%lld,\"reason\":\"当事人名称有误\"}", ids[1]);
    json_decref(s_ok(fx, PUB, "publisher", "publication.reject", body));
    json_t *j = s_ok(fx, PUB, "publisher", "publication.drafts", "{}");
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 3);
    json_t *it = json_array_get(items, 0);
    assert_int_equal(json_integer_value(json_object_get(it, "id")), ids[1]);
    assert_string_equal(json_string_value(json_object_get(it, "state")), "rejected");
    assert_string_equal(json_string_value(json_object_get(it, "rejected_reason")),
                        "当事人名称有误");
    assert_int_equal(json_integer_value(json_object_get(it, "rejections")), 1);
    it = json_array_get(items, 1);
    assert_int_equal(json_integer_value(json_object_get(it, "id")), ids[2]);
    assert_string_equal(json_string_value(json_object_get(it, "state")), "draft");
    assert_true(json_is_null(json_object_get(it, "rejected_reason")));
    assert_string_equal(json_string_value(json_object_get(it, "decision_no")), "嘉罚〔2026〕11号");
    assert_int_equal(json_integer_value(json_object_get(it, "case_id")), 11);
    json_decref(j);
    assert_int_equal(s_drafts(fx, "opub", "{}", id2, c2, NULL), 2);

    /* Who and what: an officer may not; bad paging is refused naming the field. */
    s_err(fx, PUB, "officer", "publication.drafts", "{}", "forbidden", "op");
    s_err(fx, PUB, "legal", "publication.drafts", "{}", "forbidden", "op");
    s_err(fx, PUB, "publisher", "publication.drafts", "{\"limit\":0}", "bad_field", "body.limit");
    s_err(fx, PUB, "publisher", "publication.drafts", "{\"limit\":501}", "bad_field", "body.limit");
    s_err(fx, PUB, "publisher", "publication.drafts", "{\"after_id\":-1}", "bad_field",
          "body.after_id");
    s_err(fx, PUB, "publisher", "publication.drafts", "{\"page\":1}", "unknown_field", "body.page");
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    static const char *const ids[][2] = {
        {"recording", "svc:recording"},         {"review", "svc:review"},
        {"publication", "svc:publication"},     {"intake", "svc:intake"},
        {"sys", "dept:" AGENCY ":system"},      {"publisher", "dept:" AGENCY ":publisher"},
        {"officer", "dept:" AGENCY ":officer"}, {"osys", "dept:" OTHER ":system"},
        {"opub", "dept:" OTHER ":publisher"},   {"legal", "dept:" LEGAL ":legal_office"},
        {"bsys", "dept:" BIG ":system"},        {NULL, NULL}};
    tp_world_open(&fx->w, "since", ids, "since-broker");
    char sec[41];
    for (int s = 0; s < 3; s++) {
        tp_world_pair(&fx->w, s_svc[s], fx->pub[s], sec);
        snprintf(fx->ep[s], sizeof fx->ep[s], "tcp://127.0.0.1:%d", tp_free_port());
        fx->ops[s] = tp_free_port();
    }
    fx->portal_port = tp_free_port();
    tp_producer_open(&fx->intake, &fx->w, "intake");

    char *dir = ts_mkdtemp("since-seal");
    char seal[640], portal[32], redis[600];
    snprintf(seal, sizeof seal, "SX_RECORDING_SIGN_KEY=%s/seal.key", dir);
    free(dir);
    snprintf(portal, sizeof portal, "SX_PORTAL_PORT=%d", fx->portal_port);
    snprintf(redis, sizeof redis, "SX_REDIS_URL=%s", ts_env("SX_REDIS_URL"));
    const char *env_rec[] = {seal, redis, NULL};
    const char *env_rev[] = {"SX_REVIEW_POOL_AGENCY=" LEGAL, redis, NULL};
    const char *env_pub[] = {portal, redis, NULL};
    const char *const *env[3] = {env_rec, env_rev, env_pub};
    for (int s = 0; s < 3; s++)
        fx->svc[s] = tp_world_service(&fx->w, s_svc[s], fx->ep[s], fx->ops[s], s_svc[s], env[s]);
    for (int s = 0; s < 3; s++)
        tp_wait_http(fx->ops[s], "/healthz", 20000);
    /* After the services made their schemas: bus_migrate finds the bus tables there. */
    tp_producer_open(&fx->out[0], &fx->w, "recording");
    tp_producer_open(&fx->out[1], &fx->w, "review");
    tp_pump(&fx->intake, 1, 300);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    for (int s = 0; s < 3; s++)
        if (fx->svc[s])
            tp_stop(fx->svc[s], SIGTERM, 10000);
    tp_producer_close(&fx->out[0]);
    tp_producer_close(&fx->out[1]);
    tp_producer_close(&fx->intake);
    tp_world_close(&fx->w);
    free(fx);
    s_fx = NULL;
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missed_events_from_every_door),
        cmocka_unit_test(test_drafts_work_list),
        cmocka_unit_test(test_reply_size_limit),
    };
    return cmocka_run_group_tests_name("events_since", tests, s_setup, s_teardown);
}
