/* events: sx-review's subscriber handler against a real PostgreSQL. Events are built as
 * intake would publish them (JSON in the tests, msgpack envelopes decoded by evmsg) and
 * handed to events_handle in a transaction, as common/bus does; what review writes
 * (its tables and its outbox) is read back with SQL. */
#include "rvfx.h"

typedef rvfx_t fx_t;

/* Agency a's registry: the agency, a catalogue rule (penalties from 1), a discretion band
 * (V-01 general: 0.5 to 2), officers A001 (no reviewer), A002 and A003 (reviewers), and
 * the pool's P001. */
static void
s_seed(fx_t *fx)
{

    char j[1024];
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"%s\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"name\":\"市场监管局\",\"level\":\"city\",\"domain\":\"市场监管\","
             "\"head_name\":\"张\",\"head_title\":\"局长\"}}",
             fx->a, fx->a);
    rvfx_ev(fx, "registry.agency", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"R-AMOUNT\",\"version\":1,\"entry\":{\"agency\":\"%s\","
             "\"id\":\"R-AMOUNT\",\"description\":\"较大数额罚款\",\"case_type\":\"penalty\","
             "\"domain\":null,\"level\":null,\"amount_threshold\":\"1\",\"hearing\":null,"
             "\"major_public_interest\":null,\"social_risk\":null,\"complex\":null,"
             "\"active\":true}}",
             fx->a);
    rvfx_ev(fx, "registry.review_rule", fx->a, j);
    snprintf(j, sizeof j,
             "{\"action\":\"put\",\"key\":\"V-01/general\",\"version\":1,\"entry\":{\"agency\":"
             "\"%s\",\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"fine_min\":\"0.5\","
             "\"fine_max\":\"2\",\"basis\":\"第3条\",\"active\":true}}",
             fx->a);
    rvfx_ev(fx, "registry.discretion", fx->a, j);
    rvfx_officer(fx, fx->a, "A001", 1, false, false, true);
    rvfx_officer(fx, fx->a, "A002", 1, true, true, true);
    rvfx_officer(fx, fx->a, "A003", 1, true, false, true);
    rvfx_officer(fx, fx->pool, "P001", 1, true, true, true);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    rvfx_init(fx, "revev");
    s_seed(fx);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    rvfx_fini(fx);
    free(fx);
    return 0;
}

static void
test_not_required_names_the_rule(void **state)
{
    fx_t *fx = *state;
    rvfx_opened(fx, 1, "\"A001\"");
    rvfx_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    char topic[160];
    char *json = rvfx_last_event(fx, topic, sizeof topic);
    char want[160];
    snprintf(want, sizeof want, "review.not_required.%s", fx->a);
    assert_string_equal(topic, want);
    assert_non_null(strstr(json, "\"case_id\":1,\"proposal_version\":1"));
    assert_non_null(strstr(json, "R-AMOUNT: amount 0.999999 below threshold 1"));
    free(json);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task"), 0);

    /* the same proposal again (a replay): nothing new */
    rvfx_propose(fx, fx->a, 1, 1, "0.999999", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.outbox"), 1);

    /* version 2 at the threshold: judged afresh, a task */
    rvfx_propose(fx, fx->a, 1, 2, "1", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 1 AND"
                                    " version = 2 AND status = 'open' AND rules = '{R-AMOUNT}'"),
                     1);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.outbox"), 1);
}

static void
test_handler_never_assigned_least_loaded_first(void **state)
{
    fx_t *fx = *state;
    char b[64];
    /* A002 handled case 1: A003 gets it */
    rvfx_opened(fx, 1, "\"A001\",\"A002\"");
    rvfx_propose(fx, fx->a, 1, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 1", b, sizeof b), "A003");
    /* case 2 handled by nobody of them: A002 has no open task, A003 has one */
    rvfx_opened(fx, 2, "\"A001\"");
    rvfx_propose(fx, fx->a, 2, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 2", b, sizeof b), "A002");
    /* case 3: both at one task each; the legally qualified first */
    rvfx_opened(fx, 3, "\"A001\"");
    rvfx_propose(fx, fx->a, 3, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 3", b, sizeof b), "A002");
    /* A recorded officer counts as a handler too */
    rvfx_ev(fx, "case.recorded", fx->a,
            "{\"case_id\":4,\"case_no\":\"C-4\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
            "\"state\":\"open\",\"record_no\":1,\"officers\":[\"A003\"]}");
    rvfx_propose(fx, fx->a, 4, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 4", b, sizeof b), "A002");
}

static void
test_pool_when_no_reviewer_of_the_agency(void **state)
{
    fx_t *fx = *state;
    char b[64];
    rvfx_opened(fx, 5, "\"A002\",\"A003\"");
    rvfx_propose(fx, fx->a, 5, 1, "1.5", NULL);
    char want[64];
    snprintf(want, sizeof want, "%s/P001/true", fx->pool);
    assert_string_equal(
        rvfx_one(fx,
                 "SELECT reviewer_agency || '/' || reviewer || '/' || pool FROM review.task"
                 " WHERE case_id = 5",
                 b, sizeof b),
        want);
    /* and nobody at all: the task waits for any reviewer of the agency */
    rvfx_officer(fx, fx->pool, "P001", 2, true, true, false);
    rvfx_opened(fx, 12, "\"A002\",\"A003\"");
    rvfx_propose(fx, fx->a, 12, 1, "1.5", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 12 AND"
                                    " reviewer IS NULL AND NOT pool"),
                     1);
}

static void
test_out_of_band_fine_flagged(void **state)
{
    fx_t *fx = *state;
    char b[512];
    rvfx_opened(fx, 6, "\"A001\"");
    rvfx_propose(fx, fx->a, 6, 1, "3", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 6", b, sizeof b),
        "{out_of_band}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 6", b, sizeof b),
               "above the band 0.5 to 2"));
    /* within the band, no flag; far from three recent decisions of 1: flagged */
    for (int i = 0; i < 3; i++) {
        char j[512];
        snprintf(j, sizeof j,
                 "{\"case_id\":%d,\"case_no\":\"D-%d\",\"type\":\"penalty\",\"matter_code\":"
                 "\"PEN-1\",\"state\":\"decided\",\"version\":1,\"decision_no\":\"N%d\","
                 "\"decision_date\":\"2019-10-10\",\"reviewed\":true,\"category\":\"罚款\","
                 "\"content\":\"x\",\"fine\":\"1\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
                 "\"violation_code\":\"V-01\",\"circumstance\":\"general\"}",
                 100 + i, i, i);
        rvfx_ev(fx, "case.decided", fx->a, j);
    }
    rvfx_propose(fx, fx->a, 7, 1, "1.2", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 7", b, sizeof b), "{}");
    rvfx_propose(fx, fx->a, 8, 1, "1.9", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 8", b, sizeof b),
        "{unlike_recent}");
}

static void
test_new_version_supersedes_and_intake_rules_count(void **state)
{
    fx_t *fx = *state;
    char b[256];
    rvfx_propose(fx, fx->a, 9, 1, "1.5", NULL);
    rvfx_propose(fx, fx->a, 9, 2, "1.6", NULL);
    assert_string_equal(rvfx_one(fx,
                                 "SELECT string_agg(version || ':' || status, ',' ORDER BY version)"
                                 " FROM review.task WHERE case_id = 9",
                                 b, sizeof b),
                        "1:superseded,2:open");
    /* intake found review required (a discretion deviation) where the catalogue did not */
    rvfx_propose(fx, fx->a, 10, 1, "0.1",
                 "\"requires_review\":true,\"review_rules\":[\"discretion_deviation\"]");
    assert_string_equal(
        rvfx_one(fx, "SELECT rules FROM review.task WHERE case_id = 10", b, sizeof b),
        "{discretion_deviation}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT reason FROM review.judgement WHERE case_id = 10", b, sizeof b),
               "required by intake's judgement"));
    /* and one the catalogue alone requires, without intake's rule */
    rvfx_propose(fx, fx->a, 13, 1, "1", NULL);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 13"), 1);
}

static void
test_retired_reviewer_and_due_dates(void **state)
{
    fx_t *fx = *state;
    char b[256];
    rvfx_officer(fx, fx->a, "A002", 2, true, true, false); /* retired */
    rvfx_officer(fx, fx->a, "A002", 1, true, true, true);  /* an older version: ignored */
    rvfx_propose(fx, fx->a, 11, 1, "1.5", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT reviewer FROM review.task WHERE case_id = 11", b, sizeof b), "A003");
    /* due after 5 working days, the warning one before */
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.task WHERE case_id = 11 AND"
                                    " due_on > current_date AND warn_on < due_on"),
                     1);
    /* their timers: test_deadlines.c */
}

static void
test_review_past_the_statutory_deadline_flagged(void **state)
{
    fx_t *fx = *state;
    char b[600];
    /* opened with a deadline 2 days away: a 5-working-day review would end after it */
    rvfx_ev(fx, "case.opened", fx->a,
            "{\"case_id\":20,\"case_no\":\"C-20\",\"type\":\"penalty\",\"matter_code\":"
            "\"PEN-1\",\"state\":\"open\",\"officers\":[\"A001\"],\"deadline\":\"2000-01-03\"}");
    rvfx_one(fx,
             "UPDATE review.case_deadline SET deadline = current_date + 2 WHERE case_id = 20"
             " RETURNING 1",
             b, sizeof b);
    rvfx_propose(fx, fx->a, 20, 1, "1.2", NULL);
    assert_string_equal(
        rvfx_one(fx, "SELECT flags FROM review.task WHERE case_id = 20", b, sizeof b),
        "{statutory_limit}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT flag_note FROM review.task WHERE case_id = 20", b, sizeof b),
               "after the statutory deadline"));
    /* a deadline 90 days away: no flag */
    rvfx_one(fx,
             "UPDATE review.case_deadline SET deadline = current_date + 90 WHERE case_id = 20"
             " RETURNING 1",
             b, sizeof b);
    rvfx_propose(fx, fx->a, 20, 2, "1.2", NULL);
    assert_string_equal(rvfx_one(fx,
                                 "SELECT flags FROM review.task WHERE case_id = 20 AND"
                                 " version = 2",
                                 b, sizeof b),
                        "{}");
}

static void
test_malformed_event_rejected(void **state)
{
    fx_t *fx = *state;
    rvfx_ev(fx, "case.proposed", fx->a, "{\"case_id\":\"twelve\"}");
    char b[256];
    assert_string_equal(rvfx_one(fx, "SELECT reason FROM review.bus_rejected", b, sizeof b),
                        "data.case_id: expected integer");
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.judgement"), 0);
}

/* ---- Batches: many events in one events_handle call, as common/bus hands them ---------- */

#define S_EVS_MAX 256

/* Events to hand over: topics' event part, agency, data as JSON. */
typedef struct {
    int n;
    char event[S_EVS_MAX][40];
    char agency[S_EVS_MAX][19];
    char *json[S_EVS_MAX];
} s_evs_t;

static void
s_add(s_evs_t *l, const char *event, const char *agency, const char *fmt, ...)
{
    assert_true(l->n < S_EVS_MAX);
    char j[2048];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(j, sizeof j, fmt, ap);
    va_end(ap);
    assert_true(len > 0 && (size_t)len < sizeof j);
    snprintf(l->event[l->n], sizeof l->event[l->n], "%s", event);
    snprintf(l->agency[l->n], sizeof l->agency[l->n], "%s", agency);
    l->json[l->n] = strdup(j);
    assert_non_null(l->json[l->n]);
    l->n++;
}

static void
s_evs_free(s_evs_t *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->json[i]);
    free(l);
}

/* Hands the events over one per transaction. */
static void
s_one_by_one(fx_t *fx, const s_evs_t *l)
{
    for (int i = 0; i < l->n; i++)
        rvfx_ev(fx, l->event[i], l->agency[i], l->json[i]);
}

/* Hands the events over in one events_handle call and one transaction; first_seq 0 goes
 * on from the fixture's last seq (another value: a redelivery from there). */
static void
s_as_batch(fx_t *fx, const s_evs_t *l, uint64_t first_seq)
{
    if (first_seq)
        fx->seq = first_seq - 1;
    bus_event_t *ev = calloc((size_t)l->n, sizeof *ev);
    evmsg_t **msg = calloc((size_t)l->n, sizeof *msg);
    char(*topic)[160] = calloc((size_t)l->n, sizeof *topic);
    assert_true(ev && msg && topic);
    for (int i = 0; i < l->n; i++) {
        msgpack_sbuffer data, env;
        msgpack_sbuffer_init(&data);
        msgpack_sbuffer_init(&env);
        jsonmp_err_t jerr;
        if (jsonmp_from_json(l->json[i], strlen(l->json[i]), "data", 2, &data, &jerr) < 0) {
            char b[256];
            fail_msg("json: %s: %s", jsonmp_err_str(&jerr, b, sizeof b), l->json[i]);
        }
        evmsg_header_t h = {++fx->seq, fx->seq, "intake", fx->at_ms ? fx->at_ms : util_unix_ms(),
                            1};
        evmsg_err_t err = {{0}, {0}};
        assert_int_equal(evmsg_encode(&env, &h, data.data, data.size, &err), 0);
        assert_int_equal(evmsg_decode(env.data, env.size, &msg[i], &err), 0);
        snprintf(topic[i], sizeof topic[i], "%s.%s", l->event[i], l->agency[i]);
        ev[i] = (bus_event_t){h.seq, h.aseq, h.at, 1, topic[i], msg[i]};
        msgpack_sbuffer_destroy(&data);
        msgpack_sbuffer_destroy(&env);
    }
    assert_int_equal(db_begin(fx->db), 0);
    if (events_handle(fx->db, ev, l->n, &fx->app) != 0)
        fail_msg("events_handle: %s", db_error(fx->db));
    assert_int_equal(db_commit(fx->db), 0);
    for (int i = 0; i < l->n; i++)
        evmsg_destroy(&msg[i]);
    free(ev);
    free(msg);
    free(topic);
}

/* Everything the handler writes, as one text (malloc'ed): judgements, case facts, tasks
 * (with their ids) and the outbox's events in order. */
static char *
s_dump(fx_t *fx)
{
    static const char *const sql =
        "SELECT concat_ws(E'\\n', "
        "(SELECT string_agg(concat_ws(',', case_id, version, agency, required, rules, reason),"
        "  E'\\n' ORDER BY case_id, version) FROM review.judgement),"
        "(SELECT string_agg(case_id || ',' || deadline, ';' ORDER BY case_id)"
        "  FROM review.case_deadline),"
        "(SELECT string_agg(case_id || ',' || cert_no, ';' ORDER BY case_id, cert_no)"
        "  FROM review.case_officer),"
        "(SELECT string_agg(concat_ws(',', case_id, record_no, stage), ';' ORDER BY case_id,"
        "  record_no) FROM review.case_record),"
        "(SELECT string_agg(concat_ws(',', case_id, agency, violation_code, circumstance, fine,"
        "  decided_at), ';' ORDER BY case_id) FROM review.decided_fine),"
        "(SELECT string_agg(concat_ws(',', id, case_id, version, kind, agency, case_no,"
        "  case_type, md5(proposal), rules, reviewer_agency, coalesce(reviewer, '-'), pool,"
        "  flags, flag_note, status, due_on, warn_on, closed_at IS NULL), E'\\n' ORDER BY id)"
        "  FROM review.task),"
        "(SELECT string_agg(topic || ' ' || encode(data, 'hex'), E'\\n' ORDER BY id)"
        "  FROM review.outbox))";
    PGresult *r = db_query(fx->db, sql, 0, NULL);
    if (!r)
        fail_msg("dump: %s", db_error(fx->db));
    char *s = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_non_null(s);
    return s;
}

static void
s_agency_ev(s_evs_t *l, const char *code, int version, const char *level)
{
    s_add(l, "registry.agency", code,
          "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
          "\"name\":\"交通运输局\",\"level\":\"%s\",\"domain\":\"交通运输\",\"head_name\":\"李\","
          "\"head_title\":\"局长\"}}",
          code, version, code, level);
}

/* A rule of agency code for penalties: at or above threshold (NULL: any amount), of an
 * agency at level (NULL: any). */
static void
s_rule_ev(s_evs_t *l, const char *code, const char *id, int version, const char *threshold,
          const char *level, bool active)
{
    char amount[64] = "null", lv[64] = "null";
    if (threshold)
        snprintf(amount, sizeof amount, "\"%s\"", threshold);
    if (level)
        snprintf(lv, sizeof lv, "\"%s\"", level);
    s_add(l, "registry.review_rule", code,
          "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
          "\"id\":\"%s\",\"description\":\"规则 %s\",\"case_type\":\"penalty\",\"level\":%s,"
          "\"amount_threshold\":%s,\"active\":%s}}",
          id, version, code, id, id, lv, amount, active ? "true" : "false");
}

static void
s_officer_ev(s_evs_t *l, const char *code, const char *cert, int version, bool reviewer,
             bool active)
{
    s_add(l, "registry.officer", code,
          "{\"action\":\"put\",\"key\":\"%s\",\"version\":%d,\"entry\":{\"agency\":\"%s\","
          "\"cert_no\":\"%s\",\"name\":\"n-%s\",\"valid_from\":\"2015-01-01\","
          "\"valid_to\":\"2030-12-31\",\"area\":\"全市\",\"legal_qualified\":false,"
          "\"reviewer\":%s,\"active\":%s}}",
          cert, version, code, cert, cert, reviewer ? "true" : "false", active ? "true" : "false");
}

static void
s_opened_ev(s_evs_t *l, const char *code, int case_id, const char *officer, const char *deadline)
{
    s_add(l, "case.opened", code,
          "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
          "\"state\":\"open\",\"officers\":[\"%s\"],\"deadline\":\"%s\"}",
          case_id, case_id, officer, deadline);
}

static void
s_proposed_ev(s_evs_t *l, const char *code, int case_id, int version, const char *fine,
              bool intake_requires)
{
    s_add(l, "case.proposed", code,
          "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
          "\"state\":\"proposed\",\"version\":%d,\"category\":\"罚款\",\"content\":\"罚款\","
          "\"fine\":\"%s\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
          "\"violation_code\":\"V-01\",\"circumstance\":\"general\",\"hearing\":false,"
          "\"major_public_interest\":false,\"social_risk\":false,\"complex\":false,"
          "\"requires_review\":%s,\"review_rules\":[%s],\"discretion\":null,"
          "\"deviation_reason\":null}",
          case_id, case_id, version, fine, intake_requires ? "true" : "false",
          intake_requires ? "\"discretion_deviation\"" : "");
}

static void
s_recorded_ev(s_evs_t *l, const char *code, int case_id, int record_no, const char *officer)
{
    s_add(l, "case.recorded", code,
          "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
          "\"state\":\"open\",\"record_no\":%d,\"stage\":\"调查取证\",\"officers\":[\"%s\"]}",
          case_id, case_id, record_no, officer);
}

static void
s_decided_ev(s_evs_t *l, const char *code, int case_id, const char *fine)
{
    s_add(l, "case.decided", code,
          "{\"case_id\":%d,\"case_no\":\"C-%d\",\"type\":\"penalty\",\"matter_code\":\"PEN-1\","
          "\"state\":\"decided\",\"version\":1,\"decision_no\":\"N%d\","
          "\"decision_date\":\"2019-10-10\",\"reviewed\":true,\"category\":\"罚款\","
          "\"content\":\"x\",\"fine\":\"%s\",\"confiscation\":\"0\",\"legal_basis\":\"法\","
          "\"violation_code\":\"V-01\",\"circumstance\":\"general\"}",
          case_id, case_id, case_id, fine);
}

/* Many cases of agencies a and b, with registry changes among them, second versions, a
 * repeated proposal and a repeated opening: what common/bus could hand over at once. */
static s_evs_t *
s_mixed(const fx_t *fx)
{
    static const char *const fines[] = {"1.5", "0.5", "3", "0.1", "1.9"};
    s_evs_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    s_agency_ev(l, fx->b, 1, "district");
    s_rule_ev(l, fx->b, "R-B", 1, "2", NULL, true);
    s_officer_ev(l, fx->b, "B001", 1, true, true);
    s_officer_ev(l, fx->b, "B002", 1, false, true);
    for (int k = 0; k < 30; k++) {
        int c = 100 + k;
        const char *ag = k % 2 ? fx->b : fx->a;
        s_opened_ev(l, ag, c, k % 2 ? "B002" : "A001", k % 3 == 0 ? "2000-01-03" : "2030-12-31");
        if (k == 12) /* b's rule now takes fines from 0.4 */
            s_rule_ev(l, fx->b, "R-B", 2, "0.4", NULL, true);
        if (k == 16) /* A003 retires: a's later tasks go to A002 */
            s_officer_ev(l, fx->a, "A003", 2, true, false);
        if (k == 20) /* and b gets a rule for its level */
            s_rule_ev(l, fx->b, "R-LVL", 1, NULL, "district", true);
        s_proposed_ev(l, ag, c, 1, fines[k % 5], k % 5 == 3);
        if (k % 4 == 0)
            s_recorded_ev(l, ag, c, 1, k % 2 ? "B001" : "A002");
        if (k % 3 == 1)
            s_decided_ev(l, ag, c, "1");
    }
    s_proposed_ev(l, fx->a, 100, 2, "1.6", false);    /* a second version: supersedes */
    s_proposed_ev(l, fx->b, 103, 2, "0.1", false);    /* b's second version: supersedes */
    s_proposed_ev(l, fx->a, 102, 1, "3", false);      /* the same proposal again */
    s_opened_ev(l, fx->a, 104, "A001", "2031-01-01"); /* a later deadline wins */
    s_recorded_ev(l, fx->a, 104, 1, "A001");          /* the same record again */
    s_decided_ev(l, fx->a, 104, "2");                 /* a case decided twice: the first */
    s_proposed_ev(l, fx->a, 140, 1, "1.2", false);    /* judged after the decisions before it */
    return l;
}

/* A batch of many cases of two agencies has exactly the effects and the events of the
 * same events handed over one by one: judgements, case facts, tasks (reviewers, flags,
 * due dates, supersedes) and the outbox in order. */
static void
test_batch_same_as_one_by_one(void **state)
{
    fx_t *fx = *state;
    fx_t *fb = calloc(1, sizeof *fb);
    rvfx_init(fb, "revevbatch");
    s_seed(fb);
    fx->at_ms = fb->at_ms = util_unix_ms();
    s_evs_t *l = s_mixed(fx);
    s_one_by_one(fx, l);
    s_as_batch(fb, l, 0);
    char *one = s_dump(fx), *batch = s_dump(fb);
    assert_string_equal(batch, one);
    free(one);
    /* and the mix is what it claims to be */
    if (getenv("SX_TEST_DUMP"))
        printf("%s\n", batch);
    assert_int_equal(rvfx_count(fb, "SELECT count(*) FROM review.judgement"), 33);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE status = 'open'") >= 10);
    assert_int_equal(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE case_id = 100 AND"
                                    " version = 1 AND status = 'superseded'"),
                     1);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.outbox") >= 5);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE"
                               " 'statutory_limit' = ANY (flags)") >= 3);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE"
                               " 'unlike_recent' = ANY (flags)") >= 1);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE reviewer = 'A003'") >= 1);
    assert_true(rvfx_count(fb, "SELECT count(*) FROM review.task WHERE reviewer = 'B001'") >= 1);
    assert_int_equal(rvfx_count(fb, "SELECT count(*) FROM review.case_deadline WHERE"
                                    " case_id = 104 AND deadline = '2031-01-01'"),
                     1);
    free(batch);
    s_evs_free(l);
    rvfx_fini(fb);
    free(fb);
}

/* A batch handed over again (the cursor's transaction lost after the commit, say)
 * changes nothing and emits nothing. */
static void
test_batch_redelivered_changes_nothing(void **state)
{
    fx_t *fx = *state;
    fx->at_ms = util_unix_ms();
    s_evs_t *l = s_mixed(fx);
    uint64_t first = fx->seq + 1;
    s_as_batch(fx, l, 0);
    char *before = s_dump(fx);
    long long events = rvfx_count(fx, "SELECT count(*) FROM review.outbox");
    assert_true(events >= 5);
    fx->at_ms += 86400000LL * 3; /* later: new due dates would show */
    s_as_batch(fx, l, first);
    char *after = s_dump(fx);
    assert_string_equal(after, before);
    assert_int_equal(rvfx_count(fx, "SELECT count(*) FROM review.outbox"), events);
    free(before);
    free(after);
    s_evs_free(l);
}

/* A registry change inside a batch is seen by the batch's later events, not its earlier
 * ones: the agency's row (level) and its rules (added, retired) as they stand at each
 * proposal. */
static void
test_batch_sees_registry_changes_in_order(void **state)
{
    fx_t *fx = *state;
    s_evs_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    s_proposed_ev(l, fx->b, 1, 1, "5", false); /* b unknown: no rule */
    s_agency_ev(l, fx->b, 1, "district");
    s_rule_ev(l, fx->b, "R-LVL", 1, NULL, "district", true);
    s_proposed_ev(l, fx->b, 2, 1, "0.1", false); /* the district rule matches */
    s_agency_ev(l, fx->b, 2, "city");
    s_proposed_ev(l, fx->b, 3, 1, "0.1", false); /* b is a city agency now: no match */
    s_agency_ev(l, fx->b, 3, "district");
    s_rule_ev(l, fx->b, "R-LVL", 2, NULL, "district", false);
    s_proposed_ev(l, fx->b, 4, 1, "0.1", false); /* the rule retired */
    s_proposed_ev(l, fx->a, 5, 1, "1.5", false); /* a untouched: its rule matches */
    s_as_batch(fx, l, 0);
    char b[4096];
    assert_string_equal(
        rvfx_one(fx,
                 "SELECT string_agg(case_id || ':' || required || ':' || rules::text,"
                 " ' ' ORDER BY case_id) FROM review.judgement",
                 b, sizeof b),
        "1:false:{} 2:true:{R-LVL} 3:false:{} 4:false:{} 5:true:{R-AMOUNT}");
    assert_non_null(
        strstr(rvfx_one(fx, "SELECT reason FROM review.judgement WHERE case_id = 3", b, sizeof b),
               "R-LVL: level city, not district"));
    /* review.not_required of 1, 3 and 4 in order, each with the rules it was checked by */
    PGresult *r = db_query(fx->db, "SELECT topic, data FROM review.outbox ORDER BY id", 0, NULL);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 3);
    static const char *const want[] = {"\"case_id\":1,\"proposal_version\":1,\"rules_checked\":0",
                                       "\"case_id\":3,\"proposal_version\":1,\"rules_checked\":1",
                                       "\"case_id\":4,\"proposal_version\":1,\"rules_checked\":0"};
    for (int i = 0; i < 3; i++) {
        char topic[64];
        snprintf(topic, sizeof topic, "review.not_required.%s", fx->b);
        assert_string_equal(PQgetvalue(r, i, 0), topic);
        size_t len = 0;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 1), &len);
        char *json = jsonmp_to_json(bytes, len, "data", NULL, NULL);
        PQfreemem(bytes);
        assert_non_null(json);
        if (!strstr(json, want[i]))
            fail_msg("event %d: %s", i, json);
        free(json);
    }
    PQclear(r);
    s_evs_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_required_names_the_rule, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_handler_never_assigned_least_loaded_first, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_pool_when_no_reviewer_of_the_agency, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_out_of_band_fine_flagged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_new_version_supersedes_and_intake_rules_count, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_retired_reviewer_and_due_dates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_review_past_the_statutory_deadline_flagged, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_event_rejected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_same_as_one_by_one, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_redelivered_changes_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_sees_registry_changes_in_order, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("review_events", tests, NULL, NULL);
}
