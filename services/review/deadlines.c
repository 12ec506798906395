/* deadlines: review deadlines as Redis timers; see deadlines.h. */
#include "deadlines.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define S_PAGE      5000 /* tasks read per query while arming */
#define S_PAGES_MAX 1000 /* pages per arming run: 5M open tasks, a bound never reached */
#define S_CST_MS    (8 * 3600 * 1000LL)
#define S_CLAIM     64
#define S_ROUNDS    16 /* claims a step: at most 1024 firings */

struct deadlines {
    db_t *db;            /* own connection (owned) */
    timers_t *timers;    /* own Redis handle (owned) */
    const review_t *app; /* calendar and gauges (borrowed) */
    int64_t sweep_ms;    /* full rearm interval */
    int64_t watermark;   /* highest task id armed so far */
    int64_t next_sweep;  /* when the next full rearm is due (unix ms) */
    int64_t next_scan;   /* ... the next scan for new tasks */
    int64_t next_claim;  /* ... the next claim of due timers */
    bool redis_down;     /* the last Redis call failed (logged once per outage) */
    deadlines_stats_t n; /* counters */
    ops_metric_t *m_armed, *m_fired, *m_due_soon, *m_overdue, *m_limit, *m_errors; /* or NULL */
};

/* The arming source's state. */
typedef struct {
    deadlines_t *self;
    int64_t from; /* read tasks with id > from */
    int64_t seen; /* highest id read */
    long count;   /* timers handed to the batch */
    int64_t now;  /* wall clock of the run */
} s_source_t;

int64_t
deadlines_midnight_ms(date_t day)
{
    return (int64_t)day * 86400000LL - S_CST_MS;
}

/* The working day before the statutory deadline (the calendar day before without a
 * calendar, or when the walk fails). */
static date_t
s_limit_day(const deadlines_t *self, date_t deadline)
{
    date_t day = deadline - 1;
    bool unc = false;
    if (self->app && self->app->calendar)
        workday_add(self->app->calendar, deadline, -1, &day, &unc);
    return day;
}

static bool
s_parse_date(const char *s, date_t *out)
{
    return s && s[0] && date_parse(s, strlen(s), out, NULL) == 0;
}

/* The moments of a task's timers from its dates (deadline may be ""): *limit_ms is 0
 * when the task gets no limit timer (no statutory deadline known, or the review was due
 * after it from the start). Returns false when the dates are unusable. */
static bool
s_moments(const deadlines_t *self, const char *warn_on, const char *due_on, const char *deadline,
          int64_t *warn_ms, int64_t *over_ms, int64_t *limit_ms)
{
    date_t warn, due, limit;
    if (!s_parse_date(warn_on, &warn) || !s_parse_date(due_on, &due))
        return false;
    *warn_ms = deadlines_midnight_ms(warn);
    *over_ms = deadlines_midnight_ms(due + 1); /* the due day itself is still in time */
    *limit_ms = 0;
    if (s_parse_date(deadline, &limit) && due <= limit)
        *limit_ms = deadlines_midnight_ms(s_limit_day(self, limit));
    return true;
}

static void
s_count(uint64_t *n, ops_metric_t *m, uint64_t by)
{
    *n += by;
    ops_add(m, by);
}

/* The task and its case's statutory deadline, as the timers need them. */
#define S_TASK_COLS                                                                                \
    " to_char(t.warn_on, 'YYYY-MM-DD'), to_char(t.due_on, 'YYYY-MM-DD'),"                          \
    " coalesce(to_char(d.deadline, 'YYYY-MM-DD'), ''), t.warned, t.overdue,"                       \
    " 'statutory_limit' = ANY (t.flags)"
#define S_TASK_FROM " FROM review.task t LEFT JOIN review.case_deadline d ON d.case_id = t.case_id"

static int
s_prepare(db_t *db)
{
    static const struct {
        const char *name, *sql;
        int n;
    } st[] = {
        {"rvd_open",
         "SELECT t.id," S_TASK_COLS S_TASK_FROM
         " WHERE t.status = 'open' AND t.id > $1 ORDER BY t.id LIMIT $2",
         2},
        {"rvd_max", "SELECT coalesce(max(id), 0) FROM review.task", 0},
        {"rvd_lock",
         "SELECT t.status = 'open'," S_TASK_COLS ", t.agency, t.case_id, t.version,"
         " t.reviewer" S_TASK_FROM " WHERE t.id = $1 FOR UPDATE OF t",
         1},
        {"rvd_warned", "UPDATE review.task SET warned = true WHERE id = $1", 1},
        {"rvd_overdue", "UPDATE review.task SET overdue = true, warned = true WHERE id = $1", 1},
        {"rvd_limit",
         "UPDATE review.task SET flags = array_append(flags, 'statutory_limit'),"
         " flag_note = left(flag_note || CASE WHEN flag_note = '' THEN '' ELSE '; ' END || $2,"
         " 4000) WHERE id = $1",
         2},
        {"rvd_gauges",
         "SELECT (SELECT count(*) FROM review.task WHERE status = 'open'),"
         " (SELECT count(*) FROM review.task WHERE status = 'open' AND overdue),"
         " (SELECT count(*) FROM (SELECT agency FROM review.officer WHERE active"
         "  GROUP BY agency HAVING count(*) FILTER (WHERE reviewer) * 100 <"
         "  5 * count(*) FILTER (WHERE NOT reviewer)) x)",
         0},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        if (db_prepare(db, st[i].name, st[i].sql, st[i].n) < 0)
            return -1;
    return 0;
}

deadlines_t *
deadlines_new(db_t *db, timers_t *timers, const review_t *app, int64_t sweep_ms)
{
    deadlines_t *self = db && timers && sweep_ms > 0 ? calloc(1, sizeof *self) : NULL;
    if (!self) {
        db_destroy(&db);
        timers_destroy(&timers);
        return NULL;
    }
    self->db = db;
    self->timers = timers;
    self->app = app;
    self->sweep_ms = sweep_ms;
    if (s_prepare(db) < 0) {
        log_error("deadlines: statements not prepared", "error=%s", db_error(db));
        deadlines_destroy(&self);
        return NULL;
    }
    ops_t *ops = app ? app->ops : NULL;
    if (ops) {
        const char *ev = "sx_review_deadline_events_total";
        const char *evh = "Deadline events: review.due_soon, review.overdue, statutory_limit flags";
        self->m_due_soon = ops_counter(ops, ev, "kind=\"due_soon\"", evh);
        self->m_overdue = ops_counter(ops, ev, "kind=\"overdue\"", evh);
        self->m_limit = ops_counter(ops, ev, "kind=\"statutory_limit\"", evh);
        self->m_armed = ops_counter(ops, "sx_review_deadline_timers_armed_total", NULL,
                                    "Deadline timers armed (rearms and new-task scans)");
        self->m_fired = ops_counter(ops, "sx_review_deadline_timers_fired_total", NULL,
                                    "Deadline timers claimed and handled");
        self->m_errors = ops_counter(ops, "sx_review_deadline_errors_total", NULL,
                                     "Deadline work that failed on Postgres or Redis (retried)");
    }
    return self;
}

void
deadlines_destroy(deadlines_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        deadlines_t *self = *self_p;
        db_destroy(&self->db);
        timers_destroy(&self->timers);
        free(self);
        *self_p = NULL;
    }
}

deadlines_stats_t
deadlines_stats(const deadlines_t *self)
{
    return self->n;
}

/* timer_source_fn: the pending timers of every open task with id > src->from. */
static int
s_source(void *arg, timer_batch_t *batch)
{
    s_source_t *src = arg;
    deadlines_t *self = src->self;
    for (int page = 0; page < S_PAGES_MAX; page++) {
        char from[24], limit[24];
        snprintf(from, sizeof from, "%" PRId64, src->seen > src->from ? src->seen : src->from);
        snprintf(limit, sizeof limit, "%d", S_PAGE);
        PGresult *r =
            db_exec_prepared(self->db, "rvd_open", 2, (const char *[]){from, limit}, NULL, NULL, 0);
        if (!r) {
            log_warn("deadlines: open tasks not read", "error=%s", db_error(self->db));
            return -1;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            const char *id = PQgetvalue(r, i, 0);
            int64_t idv = strtoll(id, NULL, 10);
            if (idv > src->seen)
                src->seen = idv;
            int64_t warn_ms, over_ms, limit_ms;
            if (!s_moments(self, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                           &warn_ms, &over_ms, &limit_ms)) {
                log_warn("deadlines: task dates unusable", "task_id=%s due_on=%s", id,
                         PQgetvalue(r, i, 2));
                continue;
            }
            bool warned = PQgetvalue(r, i, 4)[0] == 't', overdue = PQgetvalue(r, i, 5)[0] == 't';
            bool flagged = PQgetvalue(r, i, 6)[0] == 't';
            /* A warning after the task is overdue tells nobody anything. */
            int rc = 0;
            if (!warned && !overdue && over_ms > src->now) {
                rc = timer_batch_add(batch, DEADLINES_KIND_WARN, id, warn_ms);
                src->count++;
            }
            if (rc == 0 && !overdue) {
                rc = timer_batch_add(batch, DEADLINES_KIND_OVERDUE, id, over_ms);
                src->count++;
            }
            if (rc == 0 && !flagged && limit_ms) {
                rc = timer_batch_add(batch, DEADLINES_KIND_LIMIT, id, limit_ms);
                src->count++;
            }
            if (rc < 0) {
                PQclear(r);
                return -1;
            }
        }
        PQclear(r);
        if (n < S_PAGE)
            return 0;
    }
    return 0;
}

/* timer_fail_fn: Redis failed; logged once an outage. */
static void
s_redis_failed(void *arg, const char *what)
{
    deadlines_t *self = arg;
    s_count(&self->n.errors, self->m_errors, 1);
    if (!self->redis_down)
        log_warn("deadlines: redis failed; retrying", "what=%s error=%s", what,
                 timer_error(self->timers));
    self->redis_down = true;
}

/* Arms the open tasks after `from` (0 and full: every open task). Returns 0 or -1. */
static int
s_arm(deadlines_t *self, int64_t from, bool full, int64_t now)
{
    PGresult *r = db_exec_prepared(self->db, "rvd_max", 0, NULL, NULL, NULL, 0);
    if (!r) {
        s_count(&self->n.errors, self->m_errors, 1);
        log_warn("deadlines: max task id not read", "error=%s", db_error(self->db));
        return -1;
    }
    int64_t top = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (!full && top <= from)
        return 0;
    s_source_t src = {self, from, from, 0, now};
    long n = timer_rearm(self->timers, s_source, &src);
    if (n < 0) {
        s_redis_failed(self, full ? "rearm" : "arm new tasks");
        return -1;
    }
    if (self->redis_down)
        log_info("deadlines: redis back", "armed=%ld", n);
    self->redis_down = false;
    int64_t seen = src.seen > top ? src.seen : top;
    if (seen > self->watermark)
        self->watermark = seen;
    s_count(&self->n.armed, self->m_armed, (uint64_t)src.count);
    if (full)
        log_debug("deadlines: timers armed from postgres", "timers=%ld up_to_task=%" PRId64,
                  src.count, self->watermark);
    return 0;
}

static void
s_gauges(deadlines_t *self)
{
    if (!self->app || !self->app->m_open)
        return;
    PGresult *r = db_exec_prepared(self->db, "rvd_gauges", 0, NULL, NULL, NULL, 0);
    if (r && PQntuples(r) == 1) {
        ops_set(self->app->m_open, atof(PQgetvalue(r, 0, 0)));
        ops_set(self->app->m_overdue, atof(PQgetvalue(r, 0, 1)));
        ops_set(self->app->m_understaffed, atof(PQgetvalue(r, 0, 2)));
    }
    PQclear(r);
}

enum { S_WARN, S_OVERDUE, S_LIMIT }; /* the kinds, as indexes */

/* The task's event (review.due_soon / review.overdue) from row r of rvd_lock. */
static int
s_emit(deadlines_t *self, PGresult *r, const char *key, const char *event)
{
    review_out_t *out = review_out_new();
    msgpack_packer pk;
    if (!out || !review_out_add(out, &pk, event, PQgetvalue(r, 0, 7), 5)) {
        review_out_destroy(&out);
        return -1;
    }
    review_pack_int(&pk, "task_id", strtoll(key, NULL, 10));
    review_pack_int(&pk, "case_id", strtoll(PQgetvalue(r, 0, 8), NULL, 10));
    review_pack_int(&pk, "proposal_version", strtoll(PQgetvalue(r, 0, 9), NULL, 10));
    review_pack_str(&pk, "due_on", PQgetvalue(r, 0, 2));
    review_pack_str(&pk, "reviewer", PQgetisnull(r, 0, 10) ? NULL : PQgetvalue(r, 0, 10));
    int rc = review_out_flush(out, self->db);
    review_out_destroy(&out);
    return rc;
}

/* One fired timer, in one transaction. TIMER_FIRE_MOVED sets *due to the moment it is armed
 * again for. */
static timer_fire_t
s_fire(void *arg, const timer_fired_t *f, int64_t now, int64_t *due)
{
    deadlines_t *self = arg;
    char *end;
    errno = 0;
    long long id = strtoll(f->key, &end, 10);
    int kind = strcmp(f->kind, DEADLINES_KIND_WARN) == 0      ? S_WARN
               : strcmp(f->kind, DEADLINES_KIND_OVERDUE) == 0 ? S_OVERDUE
               : strcmp(f->kind, DEADLINES_KIND_LIMIT) == 0   ? S_LIMIT
                                                              : -1;
    if (errno || *end || id <= 0 || kind < 0) {
        log_warn("deadlines: unknown timer dropped", "kind=%s key=%s", f->kind, f->key);
        return TIMER_FIRE_DONE;
    }
    if (db_begin(self->db) < 0)
        return TIMER_FIRE_RETRY;
    const char *key = f->key;
    PGresult *r = db_exec_prepared(self->db, "rvd_lock", 1, &key, NULL, NULL, 0);
    if (!r)
        goto fail;
    timer_fire_t out = TIMER_FIRE_DONE;
    int done = -1; /* the kind acted on, counted once committed */
    int64_t warn_ms, over_ms, limit_ms;
    /* Gone, or closed (an opinion, a newer version): nothing is due any more. */
    if (PQntuples(r) == 0 || PQgetvalue(r, 0, 0)[0] != 't' ||
        !s_moments(self, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), &warn_ms,
                   &over_ms, &limit_ms))
        goto commit;
    bool warned = PQgetvalue(r, 0, 4)[0] == 't', overdue = PQgetvalue(r, 0, 5)[0] == 't';
    bool flagged = PQgetvalue(r, 0, 6)[0] == 't';
    if ((kind == S_WARN && (warned || overdue)) || (kind == S_OVERDUE && overdue) ||
        (kind == S_LIMIT && (flagged || !limit_ms)))
        goto commit; /* done before: a second firing, a restart, a rearm */
    *due = kind == S_WARN ? warn_ms : kind == S_OVERDUE ? over_ms : limit_ms;
    if (*due > now) { /* the dates moved since the timer was armed */
        out = TIMER_FIRE_MOVED;
        goto commit;
    }
    if (kind == S_WARN && now >= over_ms)
        goto commit; /* overdue already: its own timer says so */
    const char *const stmts[] = {"rvd_warned", "rvd_overdue", "rvd_limit"};
    char note[300];
    snprintf(note, sizeof note,
             "review still open the working day before the statutory deadline %s"
             " (法定办案期限)",
             PQgetvalue(r, 0, 3));
    const char *p[2] = {key, note};
    PGresult *u =
        db_exec_prepared(self->db, stmts[kind], kind == S_LIMIT ? 2 : 1, p, NULL, NULL, 0);
    if (!u)
        goto fail;
    PQclear(u);
    if (kind != S_LIMIT &&
        s_emit(self, r, key, kind == S_WARN ? "review.due_soon" : "review.overdue") < 0)
        goto fail;
    done = kind;
    log_info("review deadline reached", "task_id=%s kind=%s due_on=%s deadline=%s agency=%s", key,
             f->kind, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 7));
commit:
    PQclear(r);
    if (db_commit(self->db) != 0) {
        /* Also DB_UNKNOWN: the timer fires again and the task's flags decide. */
        log_warn("deadlines: commit failed", "task_id=%s error=%s", key, db_error(self->db));
        db_rollback(self->db);
        return TIMER_FIRE_RETRY;
    }
    if (done == S_WARN)
        s_count(&self->n.due_soon, self->m_due_soon, 1);
    else if (done == S_OVERDUE)
        s_count(&self->n.overdue, self->m_overdue, 1);
    else if (done == S_LIMIT)
        s_count(&self->n.limit, self->m_limit, 1);
    return out;
fail:
    PQclear(r);
    log_warn("deadlines: firing failed; it fires again", "task_id=%s kind=%s error=%s", key,
             f->kind, db_error(self->db));
    db_rollback(self->db);
    return TIMER_FIRE_RETRY;
}

static void
s_claim(deadlines_t *self, int64_t now)
{
    timer_fired_t f[S_CLAIM];
    timer_claim_t c = {s_fire, s_redis_failed, self, 0, 0, 0};
    timer_claim_each(self->timers, now, f, S_CLAIM, S_ROUNDS, &c);
    s_count(&self->n.fired, self->m_fired, c.fired);
    s_count(&self->n.errors, self->m_errors, c.retried);
    self->n.moved += c.moved;
}

int
deadlines_step(deadlines_t *self, int64_t now_ms)
{
    assert(self);
    if (now_ms >= self->next_claim) {
        /* First: a claim is what notices that Redis lost the timers. */
        s_claim(self, now_ms);
        self->next_claim = now_ms + DEADLINES_CLAIM_MS;
    }
    if (timer_needs_rearm(self->timers) || now_ms >= self->next_sweep) {
        if (s_arm(self, 0, true, now_ms) == 0) {
            self->next_sweep = now_ms + self->sweep_ms;
            s_gauges(self);
            /* what a rearm armed may be due already: claim it now, not a second later */
            self->next_claim = now_ms;
        }
        self->next_scan = now_ms + DEADLINES_SCAN_MS;
    } else if (now_ms >= self->next_scan) {
        int64_t before = self->watermark;
        if (s_arm(self, self->watermark, false, now_ms) == 0 && self->watermark > before)
            self->next_claim = now_ms;
        self->next_scan = now_ms + DEADLINES_SCAN_MS;
    }
    int64_t next = self->next_claim < self->next_scan ? self->next_claim : self->next_scan;
    if (self->next_sweep < next)
        next = self->next_sweep;
    int64_t wait = next - now_ms;
    return wait < 10 ? 10 : wait > 1000 ? 1000 : (int)wait;
}
