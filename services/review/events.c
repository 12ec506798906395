/* events: see events.h. */
#include "events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
#include "date.h"
#include "discretion.h"
#include "log.h"
#include "pgarray.h"
#include "reviewers.h"
#include "util.h"

const char *const events_prefixes[] = {"case.", "registry.", NULL};

#define S_RULES_MAX 256 /* catalogue rules of one agency considered */

/* ---- Gathered events ----------------------------------------------------------------- */

review_out_t *
review_out_new(void)
{
    review_out_t *self = calloc(1, sizeof *self);
    return self;
}

void
review_out_destroy(review_out_t **self_p)
{
    if (self_p && *self_p) {
        review_out_t *self = *self_p;
        for (size_t i = 0; i < self->n; i++)
            msgpack_sbuffer_destroy(&self->data[i]);
        free(self);
        *self_p = NULL;
    }
}

msgpack_packer *
review_out_add(review_out_t *self, msgpack_packer *pk, const char *event, const char *agency,
               uint32_t nkeys)
{
    if (self->n >= REVIEW_OUT_MAX)
        return NULL;
    size_t i = self->n++;
    snprintf(self->topic[i], sizeof self->topic[i], "%s.%s", event, agency);
    msgpack_sbuffer_init(&self->data[i]);
    msgpack_packer_init(pk, &self->data[i], msgpack_sbuffer_write);
    msgpack_pack_map(pk, nkeys);
    return pk;
}

/* Whether the outbox may still hold rows for the relay to sequence (bus_emit_batch_ordered):
 * every event of the stream is written through review_out_flush, by the loop thread. */
static bool s_relay_rows = true;

int
review_out_flush(review_out_t *self, db_t *tx)
{
    int rc = 0;
    if (self->n) {
        bus_event_in_t ev[REVIEW_OUT_MAX];
        for (size_t i = 0; i < self->n; i++)
            ev[i] = (bus_event_in_t){self->topic[i], REVIEW_EVENT_V, self->data[i].data,
                                     self->data[i].size};
        evmsg_err_t err = {{0}, {0}};
        rc = bus_emit_batch_ordered(tx, REVIEW_SCHEMA, &s_relay_rows, ev, self->n, &err);
        if (rc < 0)
            log_error("review events not written", "path=%s reason=%s db=%s", err.path, err.reason,
                      db_error(tx));
    }
    for (size_t i = 0; i < self->n; i++)
        msgpack_sbuffer_destroy(&self->data[i]);
    self->n = 0;
    return rc;
}

void
review_pack_str(msgpack_packer *pk, const char *key, const char *val)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    if (val)
        msgpack_pack_str_with_body(pk, val, strlen(val));
    else
        msgpack_pack_nil(pk);
}

void
review_pack_int(msgpack_packer *pk, const char *key, int64_t val)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_int64(pk, val);
}

void
review_pack_bool(msgpack_packer *pk, const char *key, bool val)
{
    msgpack_pack_str_with_body(pk, key, strlen(key));
    if (val)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* ---- Statements ---------------------------------------------------------------------- */

/* The writes of the common path (case facts, judgements, supersedes) take the whole batch
 * as binary arrays (pgarray): one statement per batch and kind of work, not per event. */
int
events_prepare(db_t *db)
{
    static const struct {
        const char *name, *sql;
        int n;
    } st[] = {
        {"rv_agency_put",
         "INSERT INTO review.agency (code, domain, level, version) VALUES ($1, $2, $3, $4)"
         " ON CONFLICT (code) DO UPDATE SET domain = EXCLUDED.domain, level = EXCLUDED.level,"
         " version = EXCLUDED.version WHERE review.agency.version < EXCLUDED.version",
         4},
        {"rv_officer_put",
         "INSERT INTO review.officer (agency, cert_no, name, legal_qualified, reviewer, active,"
         " version) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (agency, cert_no) DO UPDATE"
         " SET name = EXCLUDED.name, legal_qualified = EXCLUDED.legal_qualified,"
         " reviewer = EXCLUDED.reviewer, active = EXCLUDED.active, version = EXCLUDED.version"
         " WHERE review.officer.version < EXCLUDED.version",
         7},
        {"rv_rule_put",
         "INSERT INTO review.rule (agency, id, description, case_type, domain, level,"
         " amount_threshold, hearing, major_public_interest, social_risk, complex, active,"
         " version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
         " ON CONFLICT (agency, id) DO UPDATE SET description = EXCLUDED.description,"
         " case_type = EXCLUDED.case_type, domain = EXCLUDED.domain, level = EXCLUDED.level,"
         " amount_threshold = EXCLUDED.amount_threshold, hearing = EXCLUDED.hearing,"
         " major_public_interest = EXCLUDED.major_public_interest,"
         " social_risk = EXCLUDED.social_risk, complex = EXCLUDED.complex,"
         " active = EXCLUDED.active, version = EXCLUDED.version"
         " WHERE review.rule.version < EXCLUDED.version",
         13},
        {"rv_band_put",
         "INSERT INTO review.band (agency, violation_code, circumstance, fine_min, fine_max,"
         " active, version) VALUES ($1, $2, $3, $4, $5, $6, $7)"
         " ON CONFLICT (agency, violation_code, circumstance) DO UPDATE SET"
         " fine_min = EXCLUDED.fine_min, fine_max = EXCLUDED.fine_max,"
         " active = EXCLUDED.active, version = EXCLUDED.version"
         " WHERE review.band.version < EXCLUDED.version",
         7},
        {"rv_handlers_add",
         "INSERT INTO review.case_officer (case_id, cert_no)"
         " SELECT * FROM unnest($1::int8[], $2::text[]) ON CONFLICT DO NOTHING",
         2},
        /* The last deadline of a case wins, as one upsert per event did (one statement
         * may not update a row twice). */
        {"rv_deadlines_put",
         "INSERT INTO review.case_deadline (case_id, deadline)"
         " SELECT DISTINCT ON (c) c, d FROM unnest($1::int8[], $2::date[]) WITH ORDINALITY"
         " AS u(c, d, i) ORDER BY c, i DESC"
         " ON CONFLICT (case_id) DO UPDATE SET deadline = EXCLUDED.deadline",
         2},
        {"rv_deadline_get", "SELECT deadline FROM review.case_deadline WHERE case_id = $1", 1},
        {"rv_records_add",
         "INSERT INTO review.case_record (case_id, record_no, stage)"
         " SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[]) ON CONFLICT DO NOTHING",
         3},
        {"rv_decided_add",
         "INSERT INTO review.decided_fine (case_id, agency, violation_code, circumstance, fine,"
         " decided_at) SELECT c, a, vc, ci, f::numeric, to_timestamp(at / 1000.0)"
         " FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])"
         " AS u(c, a, vc, ci, f, at) ON CONFLICT DO NOTHING",
         6},
        {"rv_agency_get", "SELECT domain, level, review_days FROM review.agency WHERE code = $1",
         1},
        {"rv_rules_get",
         "SELECT id, case_type, domain, level, (amount_threshold * 1000000)::bigint, hearing,"
         " major_public_interest, social_risk, complex FROM review.rule"
         " WHERE agency = $1 AND active ORDER BY id LIMIT 256",
         1},
        /* Each judgement's rule ids come flat ($6: the judgement's ordinal, $7: the id).
         * RETURNING names the judgements that are new: only they have effects. */
        {"rv_judged",
         "WITH f AS (SELECT j, array_agg(id ORDER BY k) AS ids"
         " FROM unnest($6::int8[], $7::text[]) WITH ORDINALITY AS f(j, id, k) GROUP BY j)"
         " INSERT INTO review.judgement (case_id, version, agency, required, rules, reason)"
         " SELECT u.c, u.v, u.a, u.r, coalesce(f.ids, '{}'), u.why"
         " FROM unnest($1::int8[], $2::int4[], $3::text[], $4::bool[], $5::text[])"
         " WITH ORDINALITY AS u(c, v, a, r, why, i) LEFT JOIN f ON f.j = u.i ORDER BY u.i"
         " ON CONFLICT DO NOTHING RETURNING case_id, version",
         7},
        /* Each case's open tasks found by a probe of (case_id, version, kind) and updated
         * by ctid, whatever the statistics say (a plan cached while task was young could
         * scan it all for every batch). */
        {"rv_supersede",
         "UPDATE review.task t SET status = 'superseded', closed_at = now()"
         " FROM (SELECT x.t FROM unnest($1::int8[], $2::int4[]) AS u(c, v)"
         " CROSS JOIN LATERAL (SELECT y.ctid AS t FROM review.task y WHERE y.case_id = u.c"
         " AND y.version < u.v AND y.status = 'open') x) k"
         " WHERE t.ctid = k.t AND t.status = 'open'",
         2},
        {"rv_task_add",
         "INSERT INTO review.task (case_id, version, agency, case_no, case_type, proposal, rules,"
         " reviewer_agency, reviewer, pool, flags, flag_note, due_on, warn_on) VALUES"
         " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
         14},
        {"rv_reject",
         "INSERT INTO review.bus_rejected (stream, seq, topic, reason) VALUES ('intake', $1, $2,"
         " $3) ON CONFLICT DO NOTHING",
         3},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        if (db_prepare(db, st[i].name, st[i].sql, st[i].n) < 0)
            return -1;
    return discretion_prepare(db) < 0 || reviewers_prepare(db) < 0 ? -1 : 0;
}

/* ---- Helpers --------------------------------------------------------------------------- */

static bool
s_prefix(const char *topic, const char *prefix)
{
    return strncmp(topic, prefix, strlen(prefix)) == 0;
}

static PGresult *
s_exec(db_t *tx, const char *name, int n, const char *const *vals)
{
    return db_exec_prepared(tx, name, n, vals, NULL, NULL, 0);
}

/* Runs a command; 0 or -1. */
static int
s_cmd(db_t *tx, const char *name, int n, const char *const *vals)
{
    PGresult *r = s_exec(tx, name, n, vals);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

static const char *
s_tf(bool b)
{
    return b ? "t" : "f";
}

/* A nullable boolean criterion as text ("t", "f" or NULL). */
static const char *
s_opt_bool(const evmsg_map_t *m, const char *key)
{
    bool b = false;
    return evmsg_map_bool(m, key, EVMSG_OPTIONAL, &b) == 1 ? s_tf(b) : NULL;
}

/* ---- One batch ------------------------------------------------------------------------- */

/* An agency as review knows it, read once per batch: its row (unknown: its domain and
 * level match no rule) and its active rules. A registry event of the agency drops it, so
 * the batch's later events read it again. */
typedef struct {
    char code[EVMSG_AGENCY_LEN + 1];
    bool known;
    char domain[101], level[16];
    int days;      /* review days */
    PGresult *res; /* holds the rules' strings */
    int nrules;
    catalogue_rule_t rules[S_RULES_MAX];
} s_agency_t;

/* A judged case.proposed waiting for the batch's judgement insert. */
typedef struct {
    const bus_event_t *ev; /* valid during events_handle */
    int64_t case_id, version, fine;
    char agency[EVMSG_AGENCY_LEN + 1], case_no[65], type[16], vcode[65], circ[16];
    bool required;
    int nrules, days;
    pgarray_t ra; /* the rule ids, kept for a required one's task */
    bool fresh;   /* its judgement is new: it has effects */
    char reason[CATALOGUE_REASON_MAX + 200];
} s_prop_t;

/* Array groups of the batch statements ($1.. of each). */
enum { S_DL = 2, S_OFF = 2, S_REC = 3, S_DEC = 6, S_JD = 7, S_SUP = 2 };

/* What a batch gathers between flushes (s_flush writes it, in event order where order
 * matters). A required proposal's task reads what the case facts and registry events
 * write (case_deadline, case_officer, decided_fine, officer, band), so while one waits
 * such an event flushes first; a second proposal of a case that waits flushes first too
 * (its judgement conflict and its supersede must see the first's effects). Proposals not
 * required read nothing the others write: the common path flushes once per batch. */
typedef struct {
    db_t *tx;
    const review_t *app;
    review_out_t *out;
    s_agency_t **ag; /* the agencies read in this batch */
    size_t nag, agcap;
    s_prop_t *prop; /* room for every event of the batch */
    size_t nprop;
    bool req;             /* a required proposal waits */
    pgarray_t dl[S_DL];   /* case_deadline: case_id, deadline */
    pgarray_t off[S_OFF]; /* case_officer: case_id, cert_no */
    pgarray_t rec[S_REC]; /* case_record: case_id, record_no, stage */
    pgarray_t dec[S_DEC]; /* decided_fine: case_id, agency, code, circumstance, fine, at */
    pgarray_t jd[S_JD];   /* judgement: case_id, version, agency, required, reason; the
                           * rule ids flat: judgement ordinal, id */
    pgarray_t sup[S_SUP]; /* supersede: case_id, version */
} s_batch_t;

static void
s_begin(pgarray_t *a, const uint32_t *oid, int n)
{
    for (int i = 0; i < n; i++)
        pgarray_begin(&a[i], oid[i]);
}

static const uint32_t s_dl_t[S_DL] = {PGARRAY_INT8, PGARRAY_DATE};
static const uint32_t s_off_t[S_OFF] = {PGARRAY_INT8, PGARRAY_TEXT};
static const uint32_t s_rec_t[S_REC] = {PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT};
static const uint32_t s_dec_t[S_DEC] = {PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT,
                                        PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT8};
static const uint32_t s_jd_t[S_JD] = {PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT, PGARRAY_BOOL,
                                      PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_TEXT};
static const uint32_t s_sup_t[S_SUP] = {PGARRAY_INT8, PGARRAY_INT4};

/* Empties what waits (the arrays keep their buffers). */
static void
s_reset(s_batch_t *b)
{
    for (size_t i = 0; i < b->nprop; i++)
        pgarray_free(&b->prop[i].ra);
    b->nprop = 0;
    b->req = false;
    s_begin(b->dl, s_dl_t, S_DL);
    s_begin(b->off, s_off_t, S_OFF);
    s_begin(b->rec, s_rec_t, S_REC);
    s_begin(b->dec, s_dec_t, S_DEC);
    s_begin(b->jd, s_jd_t, S_JD);
    s_begin(b->sup, s_sup_t, S_SUP);
}

static void
s_batch_fini(s_batch_t *b)
{
    for (size_t i = 0; i < b->nprop; i++)
        pgarray_free(&b->prop[i].ra);
    free(b->prop);
    for (size_t i = 0; i < b->nag; i++) {
        PQclear(b->ag[i]->res);
        free(b->ag[i]);
    }
    free(b->ag);
    pgarray_t *groups[] = {b->dl, b->off, b->rec, b->dec, b->jd, b->sup};
    int sizes[] = {S_DL, S_OFF, S_REC, S_DEC, S_JD, S_SUP};
    for (int g = 0; g < 6; g++)
        for (int i = 0; i < sizes[g]; i++)
            pgarray_free(&groups[g][i]);
    review_out_destroy(&b->out);
}

/* A batch for n events. Returns 0, or -1 when out of memory (b is finished then). */
static int
s_batch_init(s_batch_t *b, db_t *tx, const review_t *app, int n)
{
    memset(b, 0, sizeof *b);
    b->tx = tx;
    b->app = app;
    b->out = review_out_new();
    b->prop = calloc(n > 0 ? (size_t)n : 1, sizeof *b->prop);
    if (!b->out || !b->prop) {
        s_batch_fini(b);
        return -1;
    }
    s_reset(b);
    return 0;
}

/* Runs the batch statement name on the n arrays a when they hold rows, then begins them
 * again. Returns 0 or -1. */
static int
s_write(s_batch_t *b, const char *name, pgarray_t *a, const uint32_t *oid, int n)
{
    if (a[0].count == 0)
        return 0;
    PGresult *r = pgarray_exec(b->tx, name, a, n, 0);
    s_begin(a, oid, n);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Loads the agency's active rules into rules (strings in store, which the caller
 * frees with PQclear of *res). Returns the count, or -1. */
static int
s_rules(db_t *tx, const char *agency, catalogue_rule_t *rules, PGresult **res)
{
    PGresult *r = s_exec(tx, "rv_rules_get", 1, (const char *[]){agency});
    if (!r)
        return -1;
    int n = PQntuples(r) < S_RULES_MAX ? PQntuples(r) : S_RULES_MAX;
    for (int i = 0; i < n; i++) {
        catalogue_rule_t *x = &rules[i];
        x->id = PQgetvalue(r, i, 0);
        x->case_type = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
        x->domain = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
        x->level = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
        x->has_amount = !PQgetisnull(r, i, 4);
        x->amount_threshold = x->has_amount ? strtoll(PQgetvalue(r, i, 4), NULL, 10) : 0;
        cat_tri_t *tri[4] = {&x->hearing, &x->major_public_interest, &x->social_risk, &x->complex};
        for (int k = 0; k < 4; k++)
            *tri[k] = PQgetisnull(r, i, 5 + k)            ? CAT_ANY
                      : PQgetvalue(r, i, 5 + k)[0] == 't' ? CAT_TRUE
                                                          : CAT_FALSE;
    }
    *res = r;
    return n;
}

/* The agency code as this batch knows it, read on first use. NULL: the database failed
 * or memory ran out. */
static const s_agency_t *
s_agency(s_batch_t *b, const char *code)
{
    for (size_t i = 0; i < b->nag; i++)
        if (strcmp(b->ag[i]->code, code) == 0)
            return b->ag[i];
    if (b->nag == b->agcap) {
        size_t cap = b->agcap ? b->agcap * 2 : 4;
        s_agency_t **ag = realloc(b->ag, cap * sizeof *ag);
        if (!ag)
            return NULL;
        b->ag = ag;
        b->agcap = cap;
    }
    s_agency_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    snprintf(a->code, sizeof a->code, "%s", code);
    a->days = REVIEW_DAYS_DEFAULT;
    PGresult *r = s_exec(b->tx, "rv_agency_get", 1, (const char *[]){code});
    if (!r) {
        free(a);
        return NULL;
    }
    a->known = PQntuples(r) == 1;
    if (a->known) {
        snprintf(a->domain, sizeof a->domain, "%s", PQgetvalue(r, 0, 0));
        snprintf(a->level, sizeof a->level, "%s", PQgetvalue(r, 0, 1));
        a->days = atoi(PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    a->nrules = s_rules(b->tx, code, a->rules, &a->res);
    if (a->nrules < 0) {
        free(a);
        return NULL;
    }
    b->ag[b->nag++] = a;
    return a;
}

/* Forgets what the batch read of agency code (a registry event of it was applied). */
static void
s_agency_drop(s_batch_t *b, const char *code)
{
    for (size_t i = 0; i < b->nag; i++)
        if (strcmp(b->ag[i]->code, code) == 0) {
            PQclear(b->ag[i]->res);
            free(b->ag[i]);
            b->ag[i] = b->ag[--b->nag];
            return;
        }
}

/* Gathers the officers (array of cert numbers, at most 10) who handled case_id: none
 * when one of them is malformed (err set). */
static void
s_officers(s_batch_t *b, int64_t case_id, const evmsg_map_t *d, evmsg_err_t *err)
{
    evmsg_array_t arr;
    evmsg_map_array(d, "officers", EVMSG_OPTIONAL, 10, &arr);
    if (err->reason[0] || evmsg_array_count(&arr) == 0)
        return;
    char cert[10][65];
    size_t n = evmsg_array_count(&arr) < 10 ? evmsg_array_count(&arr) : 10;
    for (size_t i = 0; i < n; i++)
        if (evmsg_array_str_at(&arr, i, EVMSG_NONEMPTY, 64, cert[i]) < 0)
            return;
    for (size_t i = 0; i < n; i++) {
        pgarray_int8(&b->off[0], case_id);
        pgarray_str(&b->off[1], cert[i]);
    }
}

/* Gathers the statutory deadline of case.opened, the record number and stage of
 * case.recorded. Returns 0, or 1 (err set). */
static int
s_case_facts(s_batch_t *b, const bus_event_t *ev, int64_t case_id, const evmsg_map_t *d,
             evmsg_err_t *err)
{
    if (s_prefix(ev->topic, "case.opened.")) {
        date_t due = 0;
        if (evmsg_map_date(d, "deadline", EVMSG_OPTIONAL, &due) != 1)
            return err->reason[0] ? 1 : 0;
        pgarray_int8(&b->dl[0], case_id);
        pgarray_date(&b->dl[1], due);
        return 0;
    }
    int64_t no = 0;
    char stage[32] = "";
    evmsg_map_int(d, "record_no", EVMSG_OPTIONAL, 1, INT32_MAX, &no);
    evmsg_map_str(d, "stage", EVMSG_OPTIONAL, 31, stage);
    if (err->reason[0])
        return 1;
    if (!no || !stage[0])
        return 0;
    pgarray_int8(&b->rec[0], case_id);
    pgarray_int4(&b->rec[1], (int32_t)no);
    pgarray_str(&b->rec[2], stage);
    return 0;
}

/* Gathers the fine a case.decided decided. Returns 0, or 1 (err set). */
static int
s_decided(s_batch_t *b, const bus_event_t *ev, evmsg_err_t *err)
{
    evmsg_map_t d = evmsg_data(ev->msg, err);
    int64_t case_id = 0, fine = 0;
    char vcode[65] = "", circ[16] = "", f[40];
    evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
    evmsg_map_str(&d, "violation_code", EVMSG_OPTIONAL, 64, vcode);
    evmsg_map_str(&d, "circumstance", EVMSG_OPTIONAL, 15, circ);
    evmsg_map_decimal(&d, "fine", EVMSG_OPTIONAL, 6, 0, INT64_MAX, &fine);
    if (err->reason[0])
        return 1;
    if (!vcode[0] || !circ[0])
        return 0;
    catalogue_amount_str(fine, f, sizeof f);
    pgarray_int8(&b->dec[0], case_id);
    pgarray_str(&b->dec[1], ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN);
    pgarray_str(&b->dec[2], vcode);
    pgarray_str(&b->dec[3], circ);
    pgarray_str(&b->dec[4], f);
    pgarray_int8(&b->dec[5], ev->at);
    return 0;
}

/* ---- Registry -------------------------------------------------------------------------- */

/* One registry.<list> event. Returns 0, -1 (database), or 1 with err set (malformed). */
static int
s_registry(db_t *tx, const bus_event_t *ev, evmsg_err_t *err)
{
    evmsg_map_t d = evmsg_data(ev->msg, err), e;
    int64_t version = 0;
    evmsg_map_int(&d, "version", EVMSG_REQUIRED, 1, INT32_MAX, &version);
    evmsg_map_map(&d, "entry", EVMSG_REQUIRED, &e);
    char ver[24], agency[EVMSG_AGENCY_LEN + 1];
    snprintf(ver, sizeof ver, "%" PRId64, version);
    snprintf(agency, sizeof agency, "%s", ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN);
    if (s_prefix(ev->topic, "registry.agency.")) {
        char domain[101], level[16];
        evmsg_map_str(&e, "domain", EVMSG_REQUIRED, 100, domain);
        evmsg_map_str(&e, "level", EVMSG_REQUIRED, 15, level);
        if (err->reason[0])
            return 1;
        return s_cmd(tx, "rv_agency_put", 4, (const char *[]){agency, domain, level, ver});
    }
    if (s_prefix(ev->topic, "registry.officer.")) {
        char cert[65], name[101];
        bool lq = false, rev = false, active = true;
        evmsg_map_str(&e, "cert_no", EVMSG_REQUIRED, 64, cert);
        evmsg_map_str(&e, "name", EVMSG_REQUIRED, 100, name);
        evmsg_map_bool(&e, "legal_qualified", EVMSG_OPTIONAL, &lq);
        evmsg_map_bool(&e, "reviewer", EVMSG_OPTIONAL, &rev);
        evmsg_map_bool(&e, "active", EVMSG_OPTIONAL, &active);
        if (err->reason[0])
            return 1;
        return s_cmd(tx, "rv_officer_put", 7,
                     (const char *[]){agency, cert, name, s_tf(lq), s_tf(rev), s_tf(active), ver});
    }
    if (s_prefix(ev->topic, "registry.review_rule.")) {
        char id[65], desc[1001], type[16] = "", domain[101] = "", level[16] = "", amount[40] = "";
        bool active = true;
        evmsg_map_str(&e, "id", EVMSG_REQUIRED, 64, id);
        evmsg_map_str(&e, "description", EVMSG_REQUIRED, 1000, desc);
        int ht = evmsg_map_str(&e, "case_type", EVMSG_OPTIONAL, 15, type);
        int hd = evmsg_map_str(&e, "domain", EVMSG_OPTIONAL, 100, domain);
        int hl = evmsg_map_str(&e, "level", EVMSG_OPTIONAL, 15, level);
        int64_t amt = 0;
        int ha = evmsg_map_decimal(&e, "amount_threshold", EVMSG_OPTIONAL, 6, 0, INT64_MAX, &amt);
        evmsg_map_bool(&e, "active", EVMSG_OPTIONAL, &active);
        const char *h = s_opt_bool(&e, "hearing"), *mpi = s_opt_bool(&e, "major_public_interest");
        const char *sr = s_opt_bool(&e, "social_risk"), *cx = s_opt_bool(&e, "complex");
        if (err->reason[0])
            return 1;
        if (ha == 1)
            catalogue_amount_str(amt, amount, sizeof amount);
        return s_cmd(tx, "rv_rule_put", 13,
                     (const char *[]){agency, id, desc, ht == 1 ? type : NULL,
                                      hd == 1 ? domain : NULL, hl == 1 ? level : NULL,
                                      ha == 1 ? amount : NULL, h, mpi, sr, cx, s_tf(active), ver});
    }
    if (s_prefix(ev->topic, "registry.discretion.")) {
        char code[65], circ[16], min[40], max[40];
        int64_t lo = 0, hi = 0;
        bool active = true;
        evmsg_map_str(&e, "violation_code", EVMSG_REQUIRED, 64, code);
        evmsg_map_str(&e, "circumstance", EVMSG_REQUIRED, 15, circ);
        evmsg_map_decimal(&e, "fine_min", EVMSG_REQUIRED, 6, 0, INT64_MAX, &lo);
        evmsg_map_decimal(&e, "fine_max", EVMSG_REQUIRED, 6, 0, INT64_MAX, &hi);
        evmsg_map_bool(&e, "active", EVMSG_OPTIONAL, &active);
        if (err->reason[0])
            return 1;
        catalogue_amount_str(lo, min, sizeof min);
        catalogue_amount_str(hi, max, sizeof max);
        return s_cmd(tx, "rv_band_put", 7,
                     (const char *[]){agency, code, circ, min, max, s_tf(active), ver});
    }
    return 0; /* lists review does not need (matter, inspection_item, av_matter) */
}

/* ---- case.proposed --------------------------------------------------------------------- */

/* Writes what waits, in event order where order matters, and empties it. Returns 0 or -1
 * (the batch is to be rolled back). */
static int s_flush(s_batch_t *b);

/* Judges a case.proposed against its agency's catalogue as the batch knows it and queues
 * the judgement; its effects follow in s_flush when the judgement is new. Returns 0, 1
 * (err set: malformed) or -1. */
static int
s_proposed(s_batch_t *b, const bus_event_t *ev, evmsg_err_t *err)
{
    evmsg_map_t d = evmsg_data(ev->msg, err), disc;
    int64_t case_id = 0, version = 0, fine = 0, conf = 0;
    char case_no[65], type[16], vcode[65] = "", circ[16] = "";
    bool hearing = false, mpi = false, sr = false, cx = false, intake_req = false;
    evmsg_array_t irules;
    evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
    evmsg_map_str(&d, "case_no", EVMSG_REQUIRED, 64, case_no);
    evmsg_map_str(&d, "type", EVMSG_REQUIRED, 15, type);
    evmsg_map_int(&d, "version", EVMSG_REQUIRED, 1, INT32_MAX, &version);
    evmsg_map_decimal(&d, "fine", EVMSG_REQUIRED, 6, 0, INT64_MAX / 2, &fine);
    evmsg_map_decimal(&d, "confiscation", EVMSG_REQUIRED, 6, 0, INT64_MAX / 2, &conf);
    evmsg_map_str(&d, "violation_code", EVMSG_OPTIONAL, 64, vcode);
    evmsg_map_str(&d, "circumstance", EVMSG_OPTIONAL, 15, circ);
    evmsg_map_bool(&d, "hearing", EVMSG_OPTIONAL, &hearing);
    evmsg_map_bool(&d, "major_public_interest", EVMSG_OPTIONAL, &mpi);
    evmsg_map_bool(&d, "social_risk", EVMSG_OPTIONAL, &sr);
    evmsg_map_bool(&d, "complex", EVMSG_OPTIONAL, &cx);
    evmsg_map_bool(&d, "requires_review", EVMSG_OPTIONAL, &intake_req);
    evmsg_map_array(&d, "review_rules", EVMSG_OPTIONAL, 64, &irules);
    evmsg_map_map(&d, "discretion", EVMSG_OPTIONAL, &disc);
    if (err->reason[0])
        return 1;
    char agency[EVMSG_AGENCY_LEN + 1];
    snprintf(agency, sizeof agency, "%s", ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN);

    /* Another version of a case that waits: the first one's effects come first. */
    for (size_t i = 0; i < b->nprop; i++)
        if (b->prop[i].case_id == case_id) {
            if (s_flush(b) < 0)
                return -1;
            break;
        }
    const s_agency_t *ag = s_agency(b, agency);
    if (!ag)
        return -1;
    s_prop_t *p = &b->prop[b->nprop];
    memset(p, 0, sizeof *p);
    p->ev = ev;
    p->case_id = case_id;
    p->version = version;
    p->fine = fine;
    p->nrules = ag->nrules;
    p->days = ag->days;
    snprintf(p->agency, sizeof p->agency, "%s", agency);
    snprintf(p->case_no, sizeof p->case_no, "%s", case_no);
    snprintf(p->type, sizeof p->type, "%s", type);
    snprintf(p->vcode, sizeof p->vcode, "%s", vcode);
    snprintf(p->circ, sizeof p->circ, "%s", circ);

    catalogue_case_t c = {type,
                          ag->known ? ag->domain : NULL,
                          ag->known ? ag->level : NULL,
                          fine + conf,
                          hearing,
                          mpi,
                          sr,
                          cx};
    size_t matched[S_RULES_MAX], nm = 0;
    p->required = catalogue_evaluate(ag->rules, (size_t)ag->nrules, &c, matched, &nm, p->reason,
                                     sizeof p->reason);
    if (!p->required && intake_req) {
        p->required = true;
        size_t len = strlen(p->reason);
        snprintf(p->reason + len, sizeof p->reason - len, "; required by intake's judgement");
    }
    /* The rule ids: the catalogue's, then intake's own that review cannot see. */
    int64_t ord = (int64_t)b->nprop + 1; /* the judgement's ordinal in rv_judged */
    if (p->required)
        pgarray_begin(&p->ra, PGARRAY_TEXT);
    for (size_t i = 0; i < nm; i++) {
        pgarray_int8(&b->jd[5], ord);
        pgarray_str(&b->jd[6], ag->rules[matched[i]].id);
        if (p->required)
            pgarray_str(&p->ra, ag->rules[matched[i]].id);
    }
    for (size_t i = 0; i < evmsg_array_count(&irules); i++) {
        char rid[65];
        if (evmsg_array_str_at(&irules, i, 0, 64, rid) < 0)
            break;
        bool dup = false;
        for (size_t k = 0; k < nm && !dup; k++)
            dup = strcmp(ag->rules[matched[k]].id, rid) == 0;
        if (!dup) {
            pgarray_int8(&b->jd[5], ord);
            pgarray_str(&b->jd[6], rid);
            if (p->required)
                pgarray_str(&p->ra, rid);
        }
    }
    err->reason[0] = err->path[0] = '\0'; /* a bad rule id from intake: ignored */
    pgarray_int8(&b->jd[0], case_id);
    pgarray_int4(&b->jd[1], (int32_t)version);
    pgarray_str(&b->jd[2], agency);
    pgarray_bool(&b->jd[3], p->required);
    pgarray_str(&b->jd[4], p->reason);
    b->nprop++;
    b->req = b->req || p->required;
    return 0;
}

/* Due and warning dates of a review opened today (CST): the agency's review days on the
 * official calendar, the warning a working day before. */
static void
s_due(const review_t *app, int days, int64_t now_ms, char due[11], char warn[11])
{
    date_t today = date_from_unix_cst(now_ms / 1000), d = today, w = today;
    bool unc = false;
    if (app && app->calendar) {
        workday_add(app->calendar, today, days, &d, &unc);
        workday_add(app->calendar, today, days > 1 ? days - 1 : 0, &w, &unc);
    } else {
        d = today + days;
        w = d - 1;
    }
    date_format(d, due);
    date_format(w, warn);
}

/* The review task of a new judgement that requires one: discretion flags first, so the
 * reviewer sees them when opening it. Returns 0 or -1. */
static int
s_task(s_batch_t *b, s_prop_t *p)
{
    db_t *tx = b->tx;
    char id[24], ver[24];
    snprintf(id, sizeof id, "%" PRId64, p->case_id);
    snprintf(ver, sizeof ver, "%" PRId64, p->version);
    pgarray_t fa = {0};
    pgarray_begin(&fa, PGARRAY_TEXT);
    char note[DISC_NOTE_MAX] = "";
    if (p->vcode[0] && p->circ[0]) {
        int flags = discretion_check(tx, p->agency, p->vcode, p->circ, p->fine, note, sizeof note);
        if (flags < 0) {
            pgarray_free(&fa);
            return -1;
        }
        if (flags & DISC_OUT_OF_BAND)
            pgarray_str(&fa, "out_of_band");
        if (flags & DISC_UNLIKE_RECENT)
            pgarray_str(&fa, "unlike_recent");
    }
    char due[11], warn[11];
    s_due(b->app, p->days, p->ev->at, due, warn);
    PGresult *r = s_exec(tx, "rv_deadline_get", 1, (const char *[]){id});
    if (!r) {
        pgarray_free(&fa);
        return -1;
    }
    if (PQntuples(r) == 1 && strcmp(due, PQgetvalue(r, 0, 0)) > 0) {
        /* YYYY-MM-DD compares as text */
        pgarray_str(&fa, "statutory_limit");
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len,
                 "%sreview due %s is after the statutory deadline %s (法定办案期限)",
                 len ? "; " : "", due, PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    char rev_agency[65], cert[65];
    bool pool = false;
    int got = reviewers_assign(tx, p->agency, p->case_id, b->app ? b->app->pool_agency : NULL,
                               rev_agency, cert, &pool);
    if (got < 0 || pgarray_finish(&fa) < 0 || pgarray_finish(&p->ra) < 0) {
        pgarray_free(&fa);
        return -1;
    }
    if (!got)
        snprintf(rev_agency, sizeof rev_agency, "%s", p->agency); /* any reviewer of it */
    size_t plen = 0;
    const void *pdata = evmsg_data_bytes(p->ev->msg, &plen);
    const char *tv[14] = {id,        ver,        p->agency,         p->case_no, p->type, pdata,
                          p->ra.buf, rev_agency, got ? cert : NULL, s_tf(pool), fa.buf,  note,
                          due,       warn};
    int tl[14] = {0, 0, 0, 0, 0, (int)plen, (int)p->ra.len, 0, 0, 0, (int)fa.len, 0, 0, 0};
    int tf[14] = {0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0};
    r = db_exec_prepared(tx, "rv_task_add", 14, tv, tl, tf, 0);
    pgarray_free(&fa);
    if (!r)
        return -1;
    PQclear(r);
    if (!got)
        log_warn("review task without a reviewer", "case_id=%s version=%s agency=%s", id, ver,
                 p->agency);
    return 0;
}

/* The effects of one new judgement, in event order: the open task of an earlier version
 * superseded (gathered; written before the next task is assigned, since assignment counts
 * open tasks, and at the end), then review.not_required or a task. Returns 0 or -1. */
static int
s_judged(s_batch_t *b, s_prop_t *p)
{
    if (p->version > 1) { /* a first version has no earlier task */
        pgarray_int8(&b->sup[0], p->case_id);
        pgarray_int4(&b->sup[1], (int32_t)p->version);
    }
    if (p->required)
        return s_write(b, "rv_supersede", b->sup, s_sup_t, S_SUP) < 0 ? -1 : s_task(b, p);
    msgpack_packer pk;
    if (!review_out_add(b->out, &pk, "review.not_required", p->agency, 4))
        return -1;
    review_pack_int(&pk, "case_id", p->case_id);
    review_pack_int(&pk, "proposal_version", p->version);
    review_pack_int(&pk, "rules_checked", p->nrules);
    review_pack_str(&pk, "reason", p->reason);
    return 0;
}

static int
s_flush(s_batch_t *b)
{
    int rc = 0;
    if (s_write(b, "rv_deadlines_put", b->dl, s_dl_t, S_DL) < 0 ||
        s_write(b, "rv_handlers_add", b->off, s_off_t, S_OFF) < 0 ||
        s_write(b, "rv_records_add", b->rec, s_rec_t, S_REC) < 0 ||
        s_write(b, "rv_decided_add", b->dec, s_dec_t, S_DEC) < 0)
        rc = -1;
    if (rc == 0 && b->nprop) {
        /* Judged once per version: a replayed event changes nothing. */
        PGresult *r = pgarray_exec(b->tx, "rv_judged", b->jd, S_JD, 0);
        if (!r) {
            rc = -1;
        } else {
            for (int i = 0; i < PQntuples(r); i++) {
                int64_t c = strtoll(PQgetvalue(r, i, 0), NULL, 10);
                int64_t v = strtoll(PQgetvalue(r, i, 1), NULL, 10);
                for (size_t k = 0; k < b->nprop; k++)
                    if (b->prop[k].case_id == c && b->prop[k].version == v)
                        b->prop[k].fresh = true;
            }
            PQclear(r);
        }
        for (size_t k = 0; k < b->nprop && rc == 0; k++)
            if (b->prop[k].fresh)
                rc = s_judged(b, &b->prop[k]);
        if (rc == 0)
            rc = s_write(b, "rv_supersede", b->sup, s_sup_t, S_SUP);
    }
    s_reset(b);
    return rc;
}

/* ---- The handler ----------------------------------------------------------------------- */

int
events_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    s_batch_t b;
    if (s_batch_init(&b, tx, arg, n) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const bus_event_t *ev = &events[i];
        evmsg_err_t err = {{0}, {0}};
        if (ev->v != 1) {
            snprintf(err.reason, sizeof err.reason, "version %u not understood (1 is)", ev->v);
            snprintf(err.path, sizeof err.path, "v");
            rc = 1;
        } else if (s_prefix(ev->topic, "registry.")) {
            /* applied now; a waiting task must not see it, later judgements must */
            rc = b.req ? s_flush(&b) : 0;
            if (rc == 0)
                rc = s_registry(tx, ev, &err);
            s_agency_drop(&b, ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN);
        } else if (s_prefix(ev->topic, "case.proposed.")) {
            rc = s_proposed(&b, ev, &err);
        } else if (s_prefix(ev->topic, "case.opened.") || s_prefix(ev->topic, "case.recorded.")) {
            rc = b.req ? s_flush(&b) : 0;
            if (rc == 0) {
                evmsg_map_t d = evmsg_data(ev->msg, &err);
                int64_t case_id = 0;
                evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
                if (err.reason[0]) {
                    rc = 1;
                } else {
                    s_officers(&b, case_id, &d, &err);
                    rc = s_case_facts(&b, ev, case_id, &d, &err);
                }
                if (rc == 0 && err.reason[0])
                    rc = 1;
            }
        } else if (s_prefix(ev->topic, "case.decided.")) {
            rc = b.req ? s_flush(&b) : 0;
            if (rc == 0)
                rc = s_decided(&b, ev, &err);
        }
        if (rc == 1) {
            char why[512], seq[24];
            evmsg_err_str(&err, why, sizeof why);
            snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
            log_warn("intake event rejected", "seq=%s topic=%s reason=%s", seq, ev->topic, why);
            rc = s_cmd(tx, "rv_reject", 3, (const char *[]){seq, ev->topic, why});
        }
    }
    if (rc == 0)
        rc = s_flush(&b);
    if (rc == 0)
        rc = review_out_flush(b.out, tx);
    s_batch_fini(&b);
    return rc;
}
