/* deadlines: statutory time limits as timers; see deadlines.h. */
#include "deadlines.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "bus.h"
#include "intake.h"
#include "log.h"

#define S_PAGE      5000 /* cases read per query while arming */
#define S_PAGES_MAX 1000 /* pages per arming run: 5M cases, a bound, never reached */
#define S_CST_MS    (8 * 3600 * 1000LL)

/* A case is pending while no decision exists: the limit runs to the decision (作出决定). */
#define S_PENDING "state IN ('open', 'proposed')"

struct deadlines {
    db_t *db;           /* own connection (owned) */
    timers_t *timers;   /* own Redis handle (owned) */
    int64_t watermark;  /* highest case id armed so far */
    int64_t next_sweep; /* when the next full rearm is due (unix ms) */
    int64_t next_scan;  /* ... the next scan for new cases */
    int64_t next_claim; /* ... the next claim of due timers */
    bool redis_down;    /* last Redis call failed (logged once per outage) */
    pthread_t thread;   /* deadlines_start's thread */
    bool running;       /* the thread exists */
    atomic_bool stop;   /* tells the thread to end */
    _Atomic uint64_t armed, fired, warnings, overdue, moved, errors;
    ops_metric_t *m_armed, *m_fired, *m_warn, *m_overdue, *m_errors; /* may be NULL */
};

/* The arming source's state: which ids to read and the highest seen. */
typedef struct {
    deadlines_t *self;
    int64_t from; /* read cases with id > from */
    int64_t seen; /* highest id read */
    long count;   /* timers handed to the batch */
} s_source_t;

int64_t
deadlines_due_ms(bool warning, date_t due, date_t warn_on)
{
    date_t day = warning ? warn_on : due + 1; /* the due day itself is still in time */
    return (int64_t)day * 86400000LL - S_CST_MS;
}

static void
s_count(_Atomic uint64_t *n, ops_metric_t *m, uint64_t by)
{
    atomic_fetch_add(n, by);
    ops_add(m, by);
}

/* The case's deadline (007_deadline_in_case.sql: due and warn_on computed at case.open,
 * met_on set by the decision). The pending ones are read through cases_deadline_pending. */
static int
s_prepare(deadlines_t *self)
{
    static const char *const stmts[][3] = {
        {"dl_pending",
         "SELECT id, to_char(due, 'YYYY-MM-DD'), to_char(warn_on, 'YYYY-MM-DD')"
         " FROM intake.cases WHERE id > $1 AND met_on IS NULL"
         " ORDER BY id LIMIT $2",
         "2"},
        {"dl_max", "SELECT coalesce(max(id), 0) FROM intake.cases", "0"},
        {"dl_case",
         "SELECT agency, met_on IS NULL AND state IN ('open', 'proposed'),"
         " to_char(due, 'YYYY-MM-DD'), type, matter_code, case_no, to_char(warn_on, 'YYYY-MM-DD')"
         " FROM intake.cases WHERE id = $1 FOR SHARE",
         "1"},
        {"dl_mark",
         "INSERT INTO intake.deadline_event (case_id, kind, deadline)"
         " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING case_id",
         "3"},
        {"dl_warned", "UPDATE intake.cases SET warned_at = now() WHERE id = $1", "1"},
        {"dl_overdue", "UPDATE intake.cases SET overdue_at = now() WHERE id = $1", "1"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if (db_prepare(self->db, stmts[i][0], stmts[i][1], atoi(stmts[i][2])) < 0)
            return -1;
    return 0;
}

deadlines_t *
deadlines_new(db_t *db, timers_t *timers, ops_t *ops)
{
    deadlines_t *self = db && timers ? calloc(1, sizeof *self) : NULL;
    if (!self) {
        db_destroy(&db);
        timers_destroy(&timers);
        return NULL;
    }
    self->db = db;
    self->timers = timers;
    atomic_init(&self->stop, false);
    if (s_prepare(self) < 0) {
        deadlines_destroy(&self);
        return NULL;
    }
    if (ops) {
        const char *ev = "sx_intake_deadline_events_total";
        const char *evh = "Deadline events emitted, by kind";
        self->m_warn = ops_counter(ops, ev, "kind=\"warning\"", evh);
        self->m_overdue = ops_counter(ops, ev, "kind=\"overdue\"", evh);
        self->m_armed = ops_counter(ops, "sx_intake_deadline_timers_armed_total", NULL,
                                    "Deadline timers armed (rearms and new-case scans)");
        self->m_fired = ops_counter(ops, "sx_intake_deadline_timers_fired_total", NULL,
                                    "Deadline timers claimed and handled");
        self->m_errors = ops_counter(ops, "sx_intake_deadline_errors_total", NULL,
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
        if (self->running) {
            atomic_store(&self->stop, true);
            pthread_join(self->thread, NULL);
        }
        db_destroy(&self->db);
        timers_destroy(&self->timers);
        free(self);
        *self_p = NULL;
    }
}

deadlines_stats_t
deadlines_stats(const deadlines_t *self)
{
    deadlines_t *s = (deadlines_t *)self; /* atomics are read, not changed */
    return (deadlines_stats_t){atomic_load(&s->armed),    atomic_load(&s->fired),
                               atomic_load(&s->warnings), atomic_load(&s->overdue),
                               atomic_load(&s->moved),    atomic_load(&s->errors)};
}

static bool
s_parse_date(const char *s, date_t *out)
{
    return s && date_parse(s, strlen(s), out, NULL) == 0;
}

/* timer_source_fn: every pending case with id > src->from, both timers. */
static int
s_source(void *arg, timer_batch_t *batch)
{
    s_source_t *src = arg;
    deadlines_t *self = src->self;
    int64_t now = timer_now_ms();
    for (int page = 0; page < S_PAGES_MAX; page++) {
        char from[24], limit[24];
        snprintf(from, sizeof from, "%" PRId64, src->seen > src->from ? src->seen : src->from);
        snprintf(limit, sizeof limit, "%d", S_PAGE);
        PGresult *r = db_exec_prepared(self->db, "dl_pending", 2, (const char *[]){from, limit},
                                       NULL, NULL, 0);
        if (!r) {
            log_warn("deadlines: pending cases not read", "error=%s", db_error(self->db));
            return -1;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            const char *id = PQgetvalue(r, i, 0);
            int64_t idv = strtoll(id, NULL, 10);
            if (idv > src->seen)
                src->seen = idv;
            date_t due, warn_on;
            if (!s_parse_date(PQgetvalue(r, i, 1), &due) ||
                !s_parse_date(PQgetvalue(r, i, 2), &warn_on)) {
                log_warn("deadlines: case deadline unusable", "case_id=%s due=%s", id,
                         PQgetvalue(r, i, 1));
                continue;
            }
            int64_t warn_ms = deadlines_due_ms(true, due, warn_on);
            int64_t over_ms = deadlines_due_ms(false, due, warn_on);
            /* A warning after the deadline has passed tells nobody anything. */
            if (warn_ms < over_ms && over_ms > now) {
                if (timer_batch_add(batch, "warning", id, warn_ms) < 0) {
                    PQclear(r);
                    return -1;
                }
                src->count++;
            }
            if (timer_batch_add(batch, "overdue", id, over_ms) < 0) {
                PQclear(r);
                return -1;
            }
            src->count++;
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
    s_count(&self->errors, self->m_errors, 1);
    if (!self->redis_down)
        log_warn("deadlines: redis failed; retrying", "what=%s error=%s", what,
                 timer_error(self->timers));
    self->redis_down = true;
}

/* Arms the cases after `from` (0: every pending case). Returns 0 or -1 (logged). */
static int
s_arm(deadlines_t *self, int64_t from, bool full)
{
    /* Every id up to the current maximum is covered, even those found not pending, so
     * the next scan need not look at them again; a scan with nothing new stops here.
     * (A case committed out of id order, by another instance, waits for the sweep.) */
    PGresult *r = db_exec_prepared(self->db, "dl_max", 0, NULL, NULL, NULL, 0);
    if (!r) {
        s_count(&self->errors, self->m_errors, 1);
        log_warn("deadlines: max case id not read", "error=%s", db_error(self->db));
        return -1;
    }
    int64_t top = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (!full && top <= from)
        return 0;
    s_source_t src = {self, from, from, 0};
    long n = timer_rearm(self->timers, s_source, &src);
    if (n < 0) {
        s_redis_failed(self, full ? "rearm" : "arm new cases");
        return -1;
    }
    if (self->redis_down)
        log_info("deadlines: redis back", "armed=%ld", n);
    self->redis_down = false;
    int64_t seen = src.seen > top ? src.seen : top;
    if (seen > self->watermark)
        self->watermark = seen;
    s_count(&self->armed, self->m_armed, (uint64_t)src.count);
    if (full)
        log_info("deadlines: timers armed from postgres", "timers=%ld up_to_case=%" PRId64,
                 src.count, self->watermark);
    return 0;
}

/* The event's data: {case_id, case_no, type, matter_code, deadline[, warn_on]}. */
static void
s_pack_event(msgpack_sbuffer *sb, int64_t id, PGresult *r, bool warning)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, warning ? 6 : 5);
    const char *keys[] = {"case_no", "type", "matter_code", "deadline"};
    const int cols[] = {5, 3, 4, 2};
    msgpack_pack_str_with_body(&pk, "case_id", 7);
    msgpack_pack_int64(&pk, id);
    for (int i = 0; i < 4; i++) {
        const char *v = PQgetvalue(r, 0, cols[i]);
        msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
        msgpack_pack_str_with_body(&pk, v, strlen(v));
    }
    if (warning) {
        const char *v = PQgetvalue(r, 0, 6);
        msgpack_pack_str_with_body(&pk, "warn_on", 7);
        msgpack_pack_str_with_body(&pk, v, strlen(v));
    }
}

/* One fired timer, in one transaction. TIMER_FIRE_MOVED sets *due to the new moment. */
static timer_fire_t
s_fire(void *arg, const timer_fired_t *f, int64_t now, int64_t *due)
{
    deadlines_t *self = arg;
    char *end;
    errno = 0;
    long long id = strtoll(f->key, &end, 10);
    bool warning = strcmp(f->kind, "warning") == 0;
    if (errno || *end || id <= 0 || (!warning && strcmp(f->kind, "overdue") != 0)) {
        log_warn("deadlines: unknown timer dropped", "kind=%s key=%s", f->kind, f->key);
        return TIMER_FIRE_DONE;
    }
    if (db_begin(self->db) < 0)
        return TIMER_FIRE_RETRY;
    const char *key = f->key;
    PGresult *r = db_exec_prepared(self->db, "dl_case", 1, &key, NULL, NULL, 0);
    if (!r)
        goto fail;
    timer_fire_t out = TIMER_FIRE_DONE;
    date_t deadline, warn_on;
    if (PQntuples(r) == 0 || strcmp(PQgetvalue(r, 0, 1), "t") != 0)
        goto commit; /* gone, or the decision was made: nothing is due any more */
    if (!s_parse_date(PQgetvalue(r, 0, 2), &deadline) ||
        !s_parse_date(PQgetvalue(r, 0, 6), &warn_on))
        goto commit;
    *due = deadlines_due_ms(warning, deadline, warn_on);
    int64_t over_ms = deadlines_due_ms(false, deadline, warn_on);
    if (*due > now) { /* extended (延长期限) since the timer was armed */
        out = TIMER_FIRE_MOVED;
        goto commit;
    }
    if (warning && now >= over_ms)
        goto commit;
    const char *agency = PQgetvalue(r, 0, 0);
    const char *mark[3] = {key, f->kind, PQgetvalue(r, 0, 2)};
    PGresult *m = db_exec_prepared(self->db, "dl_mark", 3, mark, NULL, NULL, 0);
    if (!m)
        goto fail;
    bool first = PQntuples(m) == 1;
    PQclear(m);
    if (first) {
        PGresult *u = db_exec_prepared(self->db, warning ? "dl_warned" : "dl_overdue", 1, &key,
                                       NULL, NULL, 0);
        if (!u)
            goto fail;
        PQclear(u);
        char topic[EVMSG_TOPIC_MAX + 1];
        snprintf(topic, sizeof topic, "case.deadline.%s.%s", f->kind, agency);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_pack_event(&sb, id, r, warning);
        evmsg_err_t err = {{0}, {0}};
        int rc = bus_emit(self->db, INTAKE_SCHEMA, topic, INTAKE_EVENT_V, sb.data, sb.size, &err);
        msgpack_sbuffer_destroy(&sb);
        if (rc < 0) {
            char why[300];
            log_error("deadlines: event not emitted", "case_id=%lld kind=%s error=%s", id, f->kind,
                      err.reason[0] ? evmsg_err_str(&err, why, sizeof why) : db_error(self->db));
            goto fail;
        }
        if (warning)
            s_count(&self->warnings, self->m_warn, 1);
        else
            s_count(&self->overdue, self->m_overdue, 1);
        log_info("deadline event emitted", "case_id=%lld kind=%s deadline=%s agency=%s", id,
                 f->kind, mark[2], agency);
    }
commit:
    PQclear(r);
    if (db_commit(self->db) != 0) {
        /* Also DB_UNKNOWN: the timer fires again and the unique mark decides. */
        log_warn("deadlines: commit failed", "case_id=%lld error=%s", id, db_error(self->db));
        db_rollback(self->db);
        return TIMER_FIRE_RETRY;
    }
    return out;
fail:
    PQclear(r);
    log_warn("deadlines: firing failed; it fires again", "case_id=%lld kind=%s error=%s", id,
             f->kind, db_error(self->db));
    db_rollback(self->db);
    return TIMER_FIRE_RETRY;
}

static void
s_claim(deadlines_t *self, int64_t now)
{
    timer_fired_t f[64];
    timer_claim_t c = {s_fire, s_redis_failed, self, 0, 0, 0};
    timer_claim_each(self->timers, now, f, 64, 16, &c); /* at most 1024 firings a step */
    s_count(&self->fired, self->m_fired, c.fired);
    s_count(&self->errors, self->m_errors, c.retried);
    atomic_fetch_add(&self->moved, c.moved);
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
        if (s_arm(self, 0, true) == 0) {
            self->next_sweep = now_ms + DEADLINES_SWEEP_MS;
            self->next_scan = now_ms + DEADLINES_SCAN_MS;
        } else
            self->next_scan = now_ms + DEADLINES_SCAN_MS; /* rearm tried again then */
    } else if (now_ms >= self->next_scan) {
        s_arm(self, self->watermark, false);
        self->next_scan = now_ms + DEADLINES_SCAN_MS;
    }
    int64_t next = self->next_claim < self->next_scan ? self->next_claim : self->next_scan;
    int64_t wait = next - now_ms;
    return wait < 10 ? 10 : wait > 1000 ? 1000 : (int)wait;
}

static void *
s_thread(void *arg)
{
    deadlines_t *self = arg;
    while (!atomic_load(&self->stop)) {
        int wait = deadlines_step(self, timer_now_ms());
        /* Sleep in short slices so a stop is seen within 50 ms. */
        for (int slept = 0; slept < wait && !atomic_load(&self->stop); slept += 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int
deadlines_start(deadlines_t *self)
{
    assert(self);
    if (self->running)
        return -1;
    if (pthread_create(&self->thread, NULL, s_thread, self) != 0)
        return -1;
    self->running = true;
    return 0;
}
