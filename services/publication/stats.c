/* stats: 统计年报 — figures, generation at period end, the JSON API and the HTML page. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "events.h"
#include "html.h"
#include "ident.h"
#include "jsonmp.h"
#include "log.h"
#include "query.h"
#include "workflow.h"

static const char *const s_types[] = {"licence", "penalty", "coercion", "inspection", "levy", NULL};

/* ---- Periods -------------------------------------------------------------------------- */

void
stats_period_make(int year, int half, stats_period_t *out)
{
    memset(out, 0, sizeof *out);
    if (half)
        snprintf(out->name, sizeof out->name, "%dH%d", year, half);
    else
        snprintf(out->name, sizeof out->name, "%d", year);
    out->from = date_from_ymd(year, half == 2 ? 7 : 1, 1);
    out->to = date_from_ymd(year, half == 1 ? 6 : 12, half == 1 ? 30 : 31);
    /* The half-year's report is due Jul 10, the year's Jan 10 (H2 has no report of its
     * own: the year covers it; its due day is the year's). */
    out->due = half == 1 ? date_from_ymd(year, 7, 10) : date_from_ymd(year + 1, 1, 10);
}

int
stats_period_parse(const char *s, stats_period_t *out)
{
    size_t len = strlen(s);
    if ((len != 4 && len != 6) || (len == 6 && (s[4] != 'H' || (s[5] != '1' && s[5] != '2'))))
        return -1;
    int year = 0;
    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        year = year * 10 + (s[i] - '0');
    }
    if (year < 2019 || year > 2100)
        return -1;
    stats_period_make(year, len == 6 ? s[5] - '0' : 0, out);
    return 0;
}

/* ---- Figures -------------------------------------------------------------------------- */

int
stats_prepare(db_t *db)
{
    int rc = 0;
    rc |=
        db_prepare(db, "st_agency_name",
                   "SELECT coalesce((SELECT name FROM publication.agency WHERE code = $1), '')", 1);
    rc |= db_prepare(db, "st_agency_list",
                     "SELECT code, name FROM publication.agency ORDER BY name, code LIMIT 1000", 0);
    rc |= db_prepare(db, "st_cases",
                     "SELECT type, count(*) FROM publication.stat_case WHERE agency = $1 "
                     "AND opened_on BETWEEN $2::date AND $3::date GROUP BY type",
                     3);
    /* Decisions of the period (by decision date) and what became of their publication:
     * on time = published (China day) on or before due_on. Amounts in 万元. ROLLUP's
     * NULL type row is the total. */
    rc |= db_prepare(
        db, "st_records",
        "SELECT type, count(*), "
        "count(*) FILTER (WHERE published_at IS NOT NULL), "
        "count(*) FILTER (WHERE (published_at AT TIME ZONE 'Asia/Shanghai')::date <= due_on), "
        "count(*) FILTER (WHERE (published_at AT TIME ZONE 'Asia/Shanghai')::date > due_on), "
        "count(*) FILTER (WHERE overdue), count(*) FILTER (WHERE state = 'withdrawn'), "
        "count(*) FILTER (WHERE state = 'draft'), count(*) FILTER (WHERE state = 'rejected'), "
        "count(*) FILTER (WHERE state = 'exempt'), count(*) FILTER (WHERE resubmissions > 0), "
        "coalesce(sum((body->>'fine')::numeric), 0)::text, "
        "coalesce(sum((body->>'confiscation')::numeric), 0)::text "
        "FROM publication.record WHERE agency = $1 AND decision_date BETWEEN $2::date AND "
        "$3::date GROUP BY ROLLUP (type) ORDER BY type NULLS LAST",
        3);
    /* What happened in the period to any of the agency's records. */
    rc |= db_prepare(db, "st_changes",
                     "SELECT count(*) FILTER (WHERE withdrawn_on BETWEEN $2::date AND $3::date), "
                     "count(*) FILTER (WHERE withdrawn_on BETWEEN $2::date AND $3::date AND "
                     "withdrawn_kind = 'revoke'), "
                     "count(*) FILTER (WHERE withdrawn_on BETWEEN $2::date AND $3::date AND "
                     "withdrawn_kind = 'confirm_illegal'), "
                     "count(*) FILTER (WHERE withdrawn_on BETWEEN $2::date AND $3::date AND "
                     "withdrawn_kind = 'change'), "
                     "count(*) FILTER (WHERE withdrawn_on BETWEEN $2::date AND $3::date AND "
                     "withdrawn_kind = 'invalid'), "
                     "count(*) FILTER (WHERE (expired_at AT TIME ZONE 'Asia/Shanghai')::date "
                     "BETWEEN $2::date AND $3::date), "
                     "count(*) FILTER (WHERE (repaired_at AT TIME ZONE 'Asia/Shanghai')::date "
                     "BETWEEN $2::date AND $3::date) "
                     "FROM publication.record WHERE agency = $1",
                     3);
    /* Review requests: the period's proposals review did not declare not_required; then
     * each outcome by the day it came. */
    rc |= db_prepare(db, "st_reviews",
                     "SELECT 'required', count(*) FROM publication.stat_proposal p "
                     "WHERE p.agency = $1 AND p.proposed_on BETWEEN $2::date AND $3::date "
                     "AND NOT EXISTS (SELECT 1 FROM publication.stat_review r WHERE "
                     "r.agency = p.agency AND r.case_id = p.case_id AND "
                     "r.proposal_version = p.version AND r.outcome = 'not_required') "
                     "UNION ALL SELECT outcome, count(*) FROM publication.stat_review "
                     "WHERE agency = $1 AND on_day BETWEEN $2::date AND $3::date "
                     "GROUP BY outcome",
                     3);
    rc |= db_prepare(db, "st_gaps",
                     "SELECT count(*) FILTER (WHERE opened_on BETWEEN $2::date AND $3::date), "
                     "count(*) FILTER (WHERE closed_on BETWEEN $2::date AND $3::date), "
                     "count(*) FILTER (WHERE opened_on <= $3::date AND "
                     "(closed_on IS NULL OR closed_on > $3::date)) "
                     "FROM publication.stat_gap WHERE agency = $1",
                     3);
    rc |= db_prepare(db, "st_deadlines",
                     "SELECT count(*) FROM publication.stat_deadline WHERE agency = $1 "
                     "AND on_day BETWEEN $2::date AND $3::date",
                     3);
    /* Generation. */
    rc |= db_prepare(db, "st_run",
                     "INSERT INTO publication.stat_run (period, agencies) VALUES ($1, 0) "
                     "ON CONFLICT DO NOTHING RETURNING period",
                     1);
    rc |= db_prepare(db, "st_run_done",
                     "UPDATE publication.stat_run SET agencies = $2::int WHERE period = $1", 2);
    rc |= db_prepare(db, "st_runs", "SELECT period FROM publication.stat_run WHERE period = $1", 1);
    rc |= db_prepare(db, "st_agencies",
                     "SELECT code FROM publication.agency UNION SELECT agency FROM "
                     "publication.record UNION SELECT agency FROM publication.stat_case UNION "
                     "SELECT agency FROM publication.stat_review UNION SELECT agency FROM "
                     "publication.stat_gap ORDER BY 1",
                     0);
    rc |= db_prepare(db, "st_report_put",
                     "INSERT INTO publication.stat_report (agency, period, from_day, to_day, "
                     "due_on, body) VALUES ($1, $2, $3, $4, $5, $6::jsonb) "
                     "ON CONFLICT (agency, period) DO NOTHING",
                     6);
    rc |= db_prepare(db, "st_report_get",
                     "SELECT body::text, to_char(generated_at AT TIME ZONE 'Asia/Shanghai', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS+08:00') FROM publication.stat_report "
                     "WHERE agency = $1 AND period = $2",
                     2);
    rc |= db_prepare(db, "st_reports",
                     "SELECT body::text FROM publication.stat_report WHERE period = $1 "
                     "ORDER BY agency",
                     1);
    return rc ? -1 : 0;
}

static json_int_t
s_int(PGresult *r, int row, int col)
{
    return (json_int_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs one of the (agency, from, to) statements. */
static PGresult *
s_run(db_t *db, const char *stmt, const char *agency, const char *from, const char *to)
{
    return db_exec_prepared(db, stmt, 3, (const char *[]){agency, from, to}, NULL, NULL, 0);
}

/* The weak links (薄弱环节): the figures that count against the agency, largest first. */
static json_t *
s_weak_links(json_t *o)
{
    static const struct {
        const char *key, *section, *field, *zh;
    } items[] = {
        {"publication_overdue", "publication", "overdue", "逾期未公示"},
        {"publication_late", "publication", "late", "超期公示"},
        {"av_gaps_open", "av_gaps", "open_at_end", "音像记录缺失未补正"},
        {"av_gaps", "av_gaps", "opened", "音像记录缺失"},
        {"review_overdue", "reviews", "overdue", "法制审核超期"},
        {"review_returned", "reviews", "returned", "法制审核退回"},
        {"deadlines_missed", NULL, "deadlines_missed", "超过法定办案期限"},
        {"withdrawals", "withdrawals", "total", "撤销后撤回公示"},
        {"publication_rejected", "publication", "rejected", "公示审查退回"},
    };
    size_t n = sizeof items / sizeof items[0];
    json_int_t counts[sizeof items / sizeof items[0]];
    for (size_t i = 0; i < n; i++) {
        json_t *s = items[i].section ? json_object_get(o, items[i].section) : o;
        counts[i] = json_integer_value(json_object_get(s, items[i].field));
    }
    json_t *a = json_array();
    /* A few items: a selection of the largest each round is plenty. */
    bool used[sizeof items / sizeof items[0]] = {false};
    for (size_t k = 0; k < n; k++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!used[i] && counts[i] > 0 && (best == n || counts[i] > counts[best]))
                best = i;
        if (best == n)
            break;
        used[best] = true;
        json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "item", items[best].key, "zh",
                                           items[best].zh, "count", counts[best]));
    }
    return a;
}

json_t *
stats_compute(db_t *db, const char *agency, const char *from, const char *to)
{
    json_t *o = json_object(), *opened = json_object(), *by = json_object();
    json_t *pubs = NULL, *reviews = NULL, *gaps = NULL, *wd = NULL;
    PGresult *r = NULL;
    json_int_t opened_total = 0;
    if (!o || !opened || !by)
        goto fail;
    if (!(r = db_exec_prepared(db, "st_agency_name", 1, (const char *[]){agency}, NULL, NULL, 0)))
        goto fail;
    json_object_set_new(o, "agency",
                        json_pack("{s:s,s:s}", "code", agency, "name", PQgetvalue(r, 0, 0)));
    json_object_set_new(o, "period", json_pack("{s:s,s:s}", "from", from, "to", to));
    PQclear(r);

    if (!(r = s_run(db, "st_cases", agency, from, to)))
        goto fail;
    for (int t = 0; s_types[t]; t++)
        json_object_set_new(opened, s_types[t], json_integer(0));
    for (int i = 0; i < PQntuples(r); i++) {
        json_object_set_new(opened, PQgetvalue(r, i, 0), json_integer(s_int(r, i, 1)));
        opened_total += s_int(r, i, 1);
    }
    PQclear(r);
    json_object_set_new(o, "cases",
                        json_pack("{s:I,s:o}", "opened", opened_total, "by_type", opened));
    opened = NULL;

    /* Decisions by type, and the totals row. */
    if (!(r = s_run(db, "st_records", agency, from, to)))
        goto fail;
    static const char *const cols[] = {"decisions", "published",  "on_time", "late",
                                       "overdue",   "withdrawn",  "pending", "rejected",
                                       "exempt",    "resubmitted"};
    const int ncols = (int)(sizeof cols / sizeof cols[0]);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *row = json_object();
        for (int c = 0; c < ncols; c++)
            json_object_set_new(row, cols[c], json_integer(s_int(r, i, c + 1)));
        json_object_set_new(row, "fines", json_string(PQgetvalue(r, i, ncols + 1)));
        json_object_set_new(row, "confiscations", json_string(PQgetvalue(r, i, ncols + 2)));
        if (PQgetisnull(r, i, 0))
            pubs = row;
        else
            json_object_set_new(by, PQgetvalue(r, i, 0), row);
    }
    PQclear(r);
    if (!pubs) /* no decision at all: ROLLUP has no rows */
        pubs = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:s}", "decisions", 0,
                         "published", 0, "on_time", 0, "late", 0, "overdue", 0, "withdrawn", 0,
                         "pending", 0, "rejected", 0, "exempt", 0, "resubmitted", 0, "fines", "0",
                         "confiscations", "0");
    json_object_set_new(o, "by_type", by);
    by = NULL;
    json_object_set(o, "fines", json_object_get(pubs, "fines"));
    json_object_set(o, "confiscations", json_object_get(pubs, "confiscations"));
    json_object_del(pubs, "fines");
    json_object_del(pubs, "confiscations");
    json_object_set_new(o, "publication", pubs);

    if (!(r = s_run(db, "st_changes", agency, from, to)))
        goto fail;
    wd = json_pack("{s:I,s:I,s:I,s:I,s:I}", "total", s_int(r, 0, 0), "revoke", s_int(r, 0, 1),
                   "confirm_illegal", s_int(r, 0, 2), "change", s_int(r, 0, 3), "invalid",
                   s_int(r, 0, 4));
    json_object_set_new(o, "withdrawals", wd);
    json_object_set_new(o, "expiries", json_integer(s_int(r, 0, 5)));
    json_object_set_new(o, "repairs", json_integer(s_int(r, 0, 6)));
    PQclear(r);

    if (!(r = s_run(db, "st_reviews", agency, from, to)))
        goto fail;
    reviews = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "required", 0, "not_required", 0,
                        "approved", 0, "returned", 0, "referred", 0, "escalated", 0, "overdue", 0);
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(reviews, PQgetvalue(r, i, 0), json_integer(s_int(r, i, 1)));
    PQclear(r);
    json_object_set_new(o, "reviews", reviews);

    if (!(r = s_run(db, "st_gaps", agency, from, to)))
        goto fail;
    gaps = json_pack("{s:I,s:I,s:I}", "opened", s_int(r, 0, 0), "closed", s_int(r, 0, 1),
                     "open_at_end", s_int(r, 0, 2));
    PQclear(r);
    json_object_set_new(o, "av_gaps", gaps);

    if (!(r = s_run(db, "st_deadlines", agency, from, to)))
        goto fail;
    json_object_set_new(o, "deadlines_missed", json_integer(s_int(r, 0, 0)));
    PQclear(r);

    json_object_set_new(o, "weak_links", s_weak_links(o));
    return o;
fail:
    json_decref(opened);
    json_decref(by);
    json_decref(o);
    return NULL;
}

/* ---- Generation ----------------------------------------------------------------------- */

/* How badly an agency did: what the legal office looks at first. */
static json_int_t
s_weak_score(const json_t *f)
{
    const json_t *p = json_object_get(f, "publication");
    return json_integer_value(json_object_get(p, "overdue")) +
           json_integer_value(json_object_get(p, "late")) +
           json_integer_value(json_object_get(json_object_get(f, "av_gaps"), "open_at_end")) +
           json_integer_value(json_object_get(json_object_get(f, "reviews"), "overdue")) +
           json_integer_value(json_object_get(f, "deadlines_missed"));
}

/* One agency's line in the city summary. */
static json_t *
s_summary(const json_t *f)
{
    const json_t *p = json_object_get(f, "publication");
    const json_t *a = json_object_get(f, "agency");
    return json_pack(
        "{s:O,s:O,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "agency", json_object_get(a, "code"),
        "name", json_object_get(a, "name"), "weak_score", s_weak_score(f), "decisions",
        json_integer_value(json_object_get(p, "decisions")), "published",
        json_integer_value(json_object_get(p, "published")), "overdue",
        json_integer_value(json_object_get(p, "overdue")), "late",
        json_integer_value(json_object_get(p, "late")), "av_gaps_open",
        json_integer_value(json_object_get(json_object_get(f, "av_gaps"), "open_at_end")),
        "review_overdue",
        json_integer_value(json_object_get(json_object_get(f, "reviews"), "overdue")),
        "deadlines_missed", json_integer_value(json_object_get(f, "deadlines_missed")),
        "withdrawals",
        json_integer_value(json_object_get(json_object_get(f, "withdrawals"), "total")));
}

static int
s_cmp_weak(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t sx = json_integer_value(json_object_get(x, "weak_score"));
    json_int_t sy = json_integer_value(json_object_get(y, "weak_score"));
    if (sx != sy)
        return sx > sy ? -1 : 1;
    const char *ax = json_string_value(json_object_get(x, "agency"));
    const char *ay = json_string_value(json_object_get(y, "agency"));
    return strcmp(ax ? ax : "", ay ? ay : "");
}

/* The city's agencies from their figures (an array, consumed), weak first, at most max
 * rows and STATS_CITY_BYTES of JSON (an event or an rpc result holds at most 64 KiB);
 * *total gets how many there were. */
static json_t *
s_city(json_t *figures, size_t max, size_t *total)
{
    size_t n = json_array_size(figures);
    json_t **rows = calloc(n ? n : 1, sizeof *rows);
    json_t *out = json_array();
    if (rows && out) {
        for (size_t i = 0; i < n; i++)
            rows[i] = s_summary(json_array_get(figures, i));
        qsort(rows, n, sizeof *rows, s_cmp_weak);
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            char *text = i < max ? json_dumps(rows[i], JSON_COMPACT) : NULL;
            if (text && (bytes += strlen(text) + 1) <= STATS_CITY_BYTES)
                json_array_append(out, rows[i]);
            else
                max = i; /* the rest are left to the per-agency reports */
            free(text);
            json_decref(rows[i]);
        }
    }
    free(rows);
    json_decref(figures);
    *total = n;
    return out;
}

typedef struct {
    stats_period_t p;
    const char *legal; /* may be NULL */
    int agencies;
    bool made; /* this call made the reports (else: already made) */
} s_gen_t;

static int
s_generate_tx(db_t *db, void *arg)
{
    s_gen_t *g = arg;
    PGresult *r = db_exec_prepared(db, "st_run", 1, (const char *[]){g->p.name}, NULL, NULL, 0);
    if (!r)
        return -1;
    bool first = PQntuples(r) == 1;
    PQclear(r);
    g->made = first;
    if (!first)
        return 0; /* another instance, or an earlier firing, made it */
    if (!(r = db_exec_prepared(db, "st_agencies", 0, NULL, NULL, NULL, 0)))
        return -1;
    char from[11], to[11], due[11];
    date_format(g->p.from, from);
    date_format(g->p.to, to);
    date_format(g->p.due, due);
    json_t *all = json_array();
    int rc = all ? 0 : -1;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *agency = PQgetvalue(r, i, 0);
        json_t *f = stats_compute(db, agency, from, to);
        char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
        const char *v[] = {agency, g->p.name, from, to, due, text};
        PGresult *w = text ? db_exec_prepared(db, "st_report_put", 6, v, NULL, NULL, 0) : NULL;
        json_t *e = w ? json_pack("{s:s,s:s,s:s,s:s,s:O}", "period", g->p.name, "from", from, "to",
                                  to, "due_on", due, "report", f)
                      : NULL;
        rc = e && events_emit(db, "statistics", agency, e) == 0 ? 0 : -1;
        json_decref(e);
        PQclear(w);
        free(text);
        if (f)
            json_array_append_new(all, f);
    }
    g->agencies = PQntuples(r);
    PQclear(r);
    if (rc == 0 && g->legal) {
        size_t total = 0;
        json_t *city = s_city(all, STATS_CITY_MAX, &total);
        all = NULL;
        json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:I,s:o}", "period", g->p.name, "from", from, "to",
                              to, "due_on", due, "total", (json_int_t)total, "agencies", city);
        rc = e && events_emit(db, "report", g->legal, e) == 0 ? 0 : -1;
        json_decref(e);
    }
    json_decref(all);
    char n[16];
    snprintf(n, sizeof n, "%d", g->agencies);
    if (rc == 0 && !(r = db_exec_prepared(db, "st_run_done", 2, (const char *[]){g->p.name, n},
                                          NULL, NULL, 0)))
        rc = -1;
    else if (rc == 0)
        PQclear(r);
    return rc;
}

int
stats_generate(db_t *db, const char *period, const char *legal_office)
{
    s_gen_t g = {.legal = legal_office};
    if (stats_period_parse(period, &g.p) < 0)
        return 0;
    if (db_tx(db, s_generate_tx, &g, 3) != 0) {
        log_error("statistics not generated", "period=%s error=%s", period, db_error(db));
        return -1;
    }
    if (g.made)
        log_info("statistics generated", "period=%s agencies=%d", period, g.agencies);
    return 0;
}

/* Arms period p's timer at 00:00 China time of the day after it ends, unless it ran. */
static int
s_arm_one(db_t *db, timers_t *timers, const stats_period_t *p)
{
    PGresult *r = db_exec_prepared(db, "st_runs", 1, (const char *[]){p->name}, NULL, NULL, 0);
    if (!r)
        return -1;
    bool ran = PQntuples(r) > 0;
    PQclear(r);
    if (ran)
        return 0;
    return timer_arm(timers, STATS_TIMER, p->name, workflow_day_ms(p->to + 1));
}

int
stats_arm(db_t *db, timers_t *timers, date_t today)
{
    int y, m, d;
    date_to_ymd(today, &y, &m, &d);
    stats_period_t next_h1, year, last_h1, last_year;
    stats_period_make(m <= 6 ? y : y + 1, 1, &next_h1);
    stats_period_make(y, 0, &year);
    stats_period_make(m <= 6 ? y - 1 : y, 1, &last_h1);
    stats_period_make(y - 1, 0, &last_year);
    int rc = 0;
    rc |= s_arm_one(db, timers, &next_h1);
    rc |= s_arm_one(db, timers, &year);
    /* Missed ones (down at the period's end, Redis lost): made now, if recent. */
    if (last_h1.from >= date_from_ymd(2019, 1, 1) && today - last_h1.to <= STATS_LATE_GRACE)
        rc |= s_arm_one(db, timers, &last_h1);
    if (last_year.from >= date_from_ymd(2019, 1, 1) && today - last_year.to <= STATS_LATE_GRACE)
        rc |= s_arm_one(db, timers, &last_year);
    if (rc)
        log_warn("statistics timers not armed", "error=%s%s", db_error(db), timer_error(timers));
    return rc ? -1 : 0;
}

/* ---- rpc: publication.statistics ------------------------------------------------------ */

/* Packs the JSON object o as the request's result. Returns 0, or -1 (answered internal). */
static int
s_reply_json(rpc_req_t *req, const json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr = {0};
    int rc = -1;
    if (text && jsonmp_from_json(text, strlen(text), "result", 2, &sb, &jerr) == 0)
        rc = rpc_ok(req, sb.data, sb.size);
    if (rc < 0)
        rpc_fail(req, "internal", "", "统计结果无法返回", "the statistics could not be packed");
    free(text);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* The figures of every agency for p: the stored reports once generated, else computed. */
static json_t *
s_all_figures(db_t *db, const stats_period_t *p, bool *generated)
{
    PGresult *r = db_exec_prepared(db, "st_runs", 1, (const char *[]){p->name}, NULL, NULL, 0);
    if (!r)
        return NULL;
    *generated = PQntuples(r) > 0;
    PQclear(r);
    json_t *all = json_array();
    if (*generated) {
        if (!(r = db_exec_prepared(db, "st_reports", 1, (const char *[]){p->name}, NULL, NULL,
                                   0))) {
            json_decref(all);
            return NULL;
        }
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(all, json_loads(PQgetvalue(r, i, 0), 0, NULL));
        PQclear(r);
        return all;
    }
    if (!(r = db_exec_prepared(db, "st_agencies", 0, NULL, NULL, NULL, 0))) {
        json_decref(all);
        return NULL;
    }
    char from[11], to[11];
    date_format(p->from, from);
    date_format(p->to, to);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *f = stats_compute(db, PQgetvalue(r, i, 0), from, to);
        if (!f) {
            PQclear(r);
            json_decref(all);
            return NULL;
        }
        json_array_append_new(all, f);
    }
    PQclear(r);
    return all;
}

/* One request: {period, agency?}. Returns 0, or -1 on a database failure. */
static int
s_statistics_one(db_t *db, rpc_req_t *req)
{
    static const char *const only[] = {"period", "agency", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t b = rpc_req_body(req, &err);
    char period[16] = "", agency[19] = "";
    evmsg_map_str(&b, "period", EVMSG_NONEMPTY, 15, period);
    int has_agency = evmsg_map_str(&b, "agency", EVMSG_OPTIONAL, 18, agency);
    evmsg_map_only(&b, only);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    stats_period_t p;
    if (stats_period_parse(period, &p) < 0) {
        rpc_fail(req, "bad_field", "body.period", "统计期间应为如 2026H1、2026H2 或 2026 的形式",
                 "expected a period such as 2026H1, 2026H2 or 2026 (years 2019..2100)");
        return 0;
    }
    ident_err_t ie;
    if (has_agency == 1 && ident_uscc_check(agency, &ie) != 0) {
        rpc_fail(req, "bad_field", "body.agency", "机关代码不是有效的统一社会信用代码",
                 "not a valid unified social credit code");
        return 0;
    }
    /* A publisher reads its own agency's figures. */
    const char *own = rpc_req_agency(req);
    const char *identity = rpc_req_identity(req);
    size_t il = strlen(identity);
    bool publisher = il > 10 && strcmp(identity + il - 10, ":publisher") == 0;
    if (publisher) {
        if (has_agency == 1 && strcmp(agency, own) != 0) {
            rpc_fail(req, "forbidden", "body.agency", "只能查询本机关的统计",
                     "a publisher reads its own agency's statistics only");
            return 0;
        }
        snprintf(agency, sizeof agency, "%s", own);
        has_agency = 1;
    }
    char from[11], to[11], due[11];
    date_format(p.from, from);
    date_format(p.to, to);
    date_format(p.due, due);
    json_t *out = NULL;
    if (has_agency == 1) {
        const char *v[] = {agency, p.name};
        PGresult *r = db_exec_prepared(db, "st_report_get", 2, v, NULL, NULL, 0);
        if (!r)
            return -1;
        json_t *f = PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
        json_t *at = PQntuples(r) ? json_string(PQgetvalue(r, 0, 1)) : json_null();
        PQclear(r);
        if (!f && !(f = stats_compute(db, agency, from, to))) {
            json_decref(at);
            return -1;
        }
        out = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "period", p.name, "from", from, "to", to,
                        "due_on", due, "generated_at", at, "report", f);
    } else {
        bool generated = false;
        json_t *all = s_all_figures(db, &p, &generated);
        if (!all)
            return -1;
        size_t total = 0;
        json_t *city = s_city(all, STATS_CITY_MAX, &total);
        out = json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:o}", "period", p.name, "from", from, "to", to,
                        "due_on", due, "generated", generated, "total", (json_int_t)total,
                        "agencies", city);
    }
    int rc = out ? s_reply_json(req, out) : -1;
    json_decref(out);
    return rc;
}

static int
s_statistics(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (s_statistics_one(db, reqs[i]) < 0)
            return -1;
    return 0;
}

int
stats_register(rpc_server_t *rpc, publication_t *app)
{
    return rpc_register(rpc, &(rpc_op_t){"publication.statistics", RPC_READ,
                                         "dept:*:legal_office dept:*:publisher svc:", s_statistics,
                                         app});
}

/* ---- HTTP ----------------------------------------------------------------------------- */

bool
stats_route(const char *url)
{
    return strcmp(url, "/api/v1/statistics") == 0 || strcmp(url, "/statistics") == 0;
}

static char *s_index_html(db_t *db, date_t today);

/* Fills *out: status, a new body (NULL when memory ran out), its kind. */
static void
s_answer(stats_answer_t *out, unsigned int status, char *body, bool html)
{
    *out = (stats_answer_t){status, body, html};
}

void
stats_answer(db_t *db, const char *url, const query_kv_t *kv, size_t n, stats_answer_t *out)
{
    bool html = strcmp(url, "/statistics") == 0;
    query_stats_t q;
    query_err_t err;
    date_t today = date_from_unix_cst(time(NULL));
    if (html && n == 0) { /* /statistics: the agencies and their latest closed periods */
        char *body = s_index_html(db, today);
        if (!body) {
            log_error("statistics index failed", "error=%s", db_error(db));
            s_answer(out, 503, strdup("{\"error\":\"unavailable\"}"), false);
        } else {
            s_answer(out, 200, body, true);
        }
        return;
    }
    if (query_stats(kv, n, today, &q, &err) < 0) {
        char *body = NULL;
        if (html)
            body = html_message_page("统计年报", "查询参数有误", err.zh, "/statistics");
        else {
            json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "error", "bad_parameter", "parameter",
                                  err.param, "reason", err.reason, "zh", err.zh);
            body = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
        s_answer(out, 400, body, html);
        return;
    }
    json_t *f = stats_compute(db, q.agency, q.from, q.to);
    if (!f) {
        log_error("statistics query failed", "error=%s", db_error(db));
        s_answer(out, 503, strdup("{\"error\":\"unavailable\"}"), false);
        return;
    }
    char *body = html ? stats_html(f) : json_dumps(f, JSON_COMPACT);
    json_decref(f);
    s_answer(out, 200, body, html);
}

/* ---- The HTML page -------------------------------------------------------------------- */

static json_int_t
s_get(const json_t *o, const char *section, const char *field)
{
    const json_t *s = section ? json_object_get(o, section) : o;
    return json_integer_value(json_object_get(s, field));
}

/* A horizontal bar chart: n bars with labels and values, in SVG, scaled to the largest. */
static void
s_bars(FILE *f, const char *title, const char *const *labels, const json_int_t *values, int n,
       const char *color)
{
    json_int_t max = 1;
    for (int i = 0; i < n; i++)
        if (values[i] > max)
            max = values[i];
    const int row = 26, left = 170, width = 360;
    fprintf(f,
            "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\"><title>",
            left + width + 60, n * row + 8, left + width + 60, n * row + 8);
    html_escape(f, title);
    fputs("</title>", f);
    for (int i = 0; i < n; i++) {
        int w = (int)(values[i] * width / max);
        int y = i * row + 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"13\">", left - 8,
                y + 15);
        html_escape(f, labels[i]);
        fprintf(f,
                "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"18\" fill=\"%s\"/>"
                "<text x=\"%d\" y=\"%d\" font-size=\"13\">%lld</text>",
                left, y, w, color, left + w + 6, y + 15, (long long)values[i]);
    }
    fputs("</svg><figcaption>", f);
    html_escape(f, title);
    fputs("</figcaption></figure>\n", f);
}

/* A table of label / value rows. */
static void
s_table(FILE *f, const char *const *labels, const json_int_t *values, int n)
{
    fputs("<table>", f);
    for (int i = 0; i < n; i++) {
        fputs("<tr><th>", f);
        html_escape(f, labels[i]);
        fprintf(f, "</th><td>%lld</td></tr>", (long long)values[i]);
    }
    fputs("</table>\n", f);
}

/* 上半年 / 下半年 / 年度 from the period's days. */
static void
s_period_zh(const json_t *o, char *buf, size_t len)
{
    const char *from = json_string_value(json_object_get(json_object_get(o, "period"), "from"));
    const char *to = json_string_value(json_object_get(json_object_get(o, "period"), "to"));
    if (!from || !to || strlen(from) != 10 || strlen(to) != 10) {
        snprintf(buf, len, "统计期间");
        return;
    }
    const char *what = strncmp(from + 5, "01", 2) == 0 && strncmp(to + 5, "06", 2) == 0 ? "上半年"
                       : strncmp(from + 5, "07", 2) == 0 ? "下半年"
                                                         : "年度";
    snprintf(buf, len, "%.4s年%s（%s 至 %s）", from, what, from, to);
}

char *
stats_html(const json_t *o)
{
    html_doc_t doc;
    if (html_doc_open(&doc) < 0)
        return NULL;
    FILE *f = doc.f;
    const json_t *agency = json_object_get(o, "agency");
    const char *name = json_string_value(json_object_get(agency, "name"));
    const char *code = json_string_value(json_object_get(agency, "code"));
    char period[128];
    s_period_zh(o, period, sizeof period);
    char title[320];
    snprintf(title, sizeof title, "%s 行政执法统计年报", name && name[0] ? name : code);
    html_page_begin(f, title, HTML_NAV_STATISTICS);
    fputs("<h1>", f);
    html_escape(f, name && name[0] ? name : code);
    fputs(" 行政执法统计年报</h1>\n<p>", f);
    html_escape(f, period);
    fputs(" · 统一社会信用代码 ", f);
    html_escape(f, code);
    fputs("</p>\n", f);

    /* The weak links first (薄弱环节). */
    const json_t *weak = json_object_get(o, "weak_links");
    fputs("<section id=\"weak\" style=\"background:#fff3f0;border:1px solid #e0b4a8;"
          "padding:.5em 1em\"><h2>薄弱环节</h2>",
          f);
    size_t nw = json_array_size(weak);
    if (nw == 0)
        fputs("<p>本期未发现逾期公示、音像记录缺失、审核超期或超过办案期限等问题。</p>", f);
    else {
        const char *labels[16];
        json_int_t values[16];
        int n = 0;
        for (size_t i = 0; i < nw && n < 16; i++, n++) {
            labels[n] = json_string_value(json_object_get(json_array_get(weak, i), "zh"));
            values[n] = json_integer_value(json_object_get(json_array_get(weak, i), "count"));
        }
        s_bars(f, "薄弱环节（件）", labels, values, n, "#c0392b");
    }
    fputs("</section>\n", f);

    /* Cases and decisions by type. */
    static const char *const type_zh[] = {"行政许可", "行政处罚", "行政强制", "行政检查",
                                          "行政征收"};
    const json_t *opened = json_object_get(json_object_get(o, "cases"), "by_type");
    const json_t *by = json_object_get(o, "by_type");
    json_int_t ov[5], dv[5];
    for (int t = 0; t < 5; t++) {
        ov[t] = json_integer_value(json_object_get(opened, s_types[t]));
        dv[t] = s_get(json_object_get(by, s_types[t]), NULL, "decisions");
    }
    fputs("<section id=\"cases\"><h2>案件情况</h2>", f);
    s_bars(f, "立案数（按执法类别）", type_zh, ov, 5, "#2e86c1");
    s_bars(f, "作出决定数（按执法类别）", type_zh, dv, 5, "#1f618d");
    fputs("<table><tr><th>罚款金额（万元）</th><td>", f);
    html_escape(f, json_string_value(json_object_get(o, "fines")));
    fputs("</td></tr><tr><th>没收金额（万元）</th><td>", f);
    html_escape(f, json_string_value(json_object_get(o, "confiscations")));
    fputs("</td></tr></table></section>\n", f);

    /* Publication. */
    static const char *const pub_l[] = {"应公示决定", "已公示",         "按时公示",
                                        "超期公示",   "逾期未公示",     "待审查",
                                        "审查退回",   "退回后重新提交", "轻微不予公示"};
    static const char *const pub_k[] = {"decisions", "published", "on_time",     "late",  "overdue",
                                        "pending",   "rejected",  "resubmitted", "exempt"};
    json_int_t pv[9];
    for (int i = 0; i < 9; i++)
        pv[i] = s_get(o, "publication", pub_k[i]);
    fputs("<section id=\"publication\"><h2>执法公示</h2>", f);
    s_bars(f, "公示及时性（件）", pub_l + 1, pv + 1, 4, "#27ae60");
    s_table(f, pub_l, pv, 9);
    fputs("</section>\n", f);

    /* Legal review. */
    static const char *const rev_l[] = {"需法制审核",   "无需审核", "审核通过", "退回",
                                        "移送司法机关", "提请复核", "审核超期"};
    static const char *const rev_k[] = {"required", "not_required", "approved", "returned",
                                        "referred", "escalated",    "overdue"};
    json_int_t rv[7];
    for (int i = 0; i < 7; i++)
        rv[i] = s_get(o, "reviews", rev_k[i]);
    fputs("<section id=\"reviews\"><h2>重大执法决定法制审核</h2>", f);
    s_bars(f, "法制审核（件）", rev_l, rv, 7, "#8e44ad");
    fputs("</section>\n", f);

    /* Whole-process records, withdrawals, expiries, deadlines. */
    static const char *const gap_l[] = {"新发现音像记录缺失", "已补正", "期末仍缺失"};
    json_int_t gv[3] = {s_get(o, "av_gaps", "opened"), s_get(o, "av_gaps", "closed"),
                        s_get(o, "av_gaps", "open_at_end")};
    fputs("<section id=\"records\"><h2>执法全过程记录</h2>", f);
    s_bars(f, "音像记录缺失（处）", gap_l, gv, 3, "#d35400");
    fputs("</section>\n", f);
    static const char *const oth_l[] = {"撤回公示（撤销、确认违法、变更、无效）", "公示期满下线",
                                        "信用修复下线", "超过法定办案期限"};
    json_int_t xv[4] = {s_get(o, "withdrawals", "total"), s_get(o, NULL, "expiries"),
                        s_get(o, NULL, "repairs"), s_get(o, NULL, "deadlines_missed")};
    fputs("<section id=\"other\"><h2>撤回、下线与办案期限</h2>", f);
    s_table(f, oth_l, xv, 4);
    /* The same figures as JSON: the period back from its days (query_stats' form). */
    const char *from = json_string_value(json_object_get(json_object_get(o, "period"), "from"));
    const char *to = json_string_value(json_object_get(json_object_get(o, "period"), "to"));
    fputs("</section>\n<p><a href=\"/api/v1/statistics?agency=", f);
    html_escape(f, code);
    if (from && to && strlen(from) == 10 && strlen(to) == 10) {
        fprintf(f, "&amp;year=%.4s", from);
        if (strncmp(from + 5, "01", 2) == 0 && strncmp(to + 5, "06", 2) == 0)
            fputs("&amp;half=1", f);
        else if (strncmp(from + 5, "07", 2) == 0)
            fputs("&amp;half=2", f);
    }
    fputs("\">JSON 数据</a></p>\n", f);
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}

/* /statistics: every agency publication knows, with links to its latest closed half-year
 * and years. */
static char *
s_index_html(db_t *db, date_t today)
{
    PGresult *r = db_exec_prepared(db, "st_agency_list", 0, NULL, NULL, NULL, 0);
    if (!r)
        return NULL;
    int y, m, d;
    date_to_ymd(today, &y, &m, &d);
    /* The closed periods: this year's first half once July has come, last year's halves and
     * last year itself. */
    typedef struct {
        int year, half;
        const char *zh;
    } s_link_t;
    s_link_t links[4];
    int n = 0;
    if (m >= 7)
        links[n++] = (s_link_t){y, 1, "上半年"};
    links[n++] = (s_link_t){y - 1, 0, "年度"};
    links[n++] = (s_link_t){y - 1, 2, "下半年"};
    links[n++] = (s_link_t){y - 1, 1, "上半年"};
    html_doc_t doc;
    if (html_doc_open(&doc) < 0) {
        PQclear(r);
        return NULL;
    }
    FILE *f = doc.f;
    html_page_begin(f, "统计年报", HTML_NAV_STATISTICS);
    fputs("<h1>行政执法统计年报</h1>\n<p>各执法机关按半年度（7月10日前）和年度（次年1月10日前）"
          "统计执法案件、法制审核、执法公示、音像记录等情况。</p>\n",
          f);
    if (PQntuples(r) == 0)
        fputs("<p>暂无执法机关。</p>\n", f);
    else
        fputs("<table><tr><th>执法机关</th><th>统计期间</th></tr>\n", f);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *code = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
        fputs("<tr><th>", f);
        html_escape(f, name[0] ? name : code);
        fputs("</th><td>", f);
        for (int k = 0; k < n; k++) {
            if (links[k].year < 2019)
                continue;
            fputs("<a href=\"/statistics?agency=", f);
            html_url_escape(f, code);
            fprintf(f, "&amp;year=%d", links[k].year);
            if (links[k].half)
                fprintf(f, "&amp;half=%d", links[k].half);
            fprintf(f, "\">%d年%s</a> ", links[k].year, links[k].zh);
        }
        fputs("</td></tr>\n", f);
    }
    if (PQntuples(r) > 0)
        fputs("</table>\n", f);
    PQclear(r);
    html_page_end(f);
    return html_doc_close(&doc, NULL);
}
