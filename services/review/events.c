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
        {"rv_handler_add",
         "INSERT INTO review.case_officer (case_id, cert_no) SELECT $1, unnest($2::text[])"
         " ON CONFLICT DO NOTHING",
         2},
        {"rv_deadline_put",
         "INSERT INTO review.case_deadline (case_id, deadline) VALUES ($1, $2)"
         " ON CONFLICT (case_id) DO UPDATE SET deadline = EXCLUDED.deadline",
         2},
        {"rv_deadline_get", "SELECT deadline FROM review.case_deadline WHERE case_id = $1", 1},
        {"rv_record_add",
         "INSERT INTO review.case_record (case_id, record_no, stage) VALUES ($1, $2, $3)"
         " ON CONFLICT DO NOTHING",
         3},
        {"rv_decided_add",
         "INSERT INTO review.decided_fine (case_id, agency, violation_code, circumstance, fine,"
         " decided_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000.0))"
         " ON CONFLICT DO NOTHING",
         6},
        {"rv_agency_get", "SELECT domain, level, review_days FROM review.agency WHERE code = $1",
         1},
        {"rv_rules_get",
         "SELECT id, case_type, domain, level, (amount_threshold * 1000000)::bigint, hearing,"
         " major_public_interest, social_risk, complex FROM review.rule"
         " WHERE agency = $1 AND active ORDER BY id LIMIT 256",
         1},
        {"rv_judged",
         "INSERT INTO review.judgement (case_id, version, agency, required, rules, reason)"
         " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
         6},
        {"rv_supersede",
         "UPDATE review.task SET status = 'superseded', closed_at = now()"
         " WHERE case_id = $1 AND version < $2 AND status = 'open'",
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

/* Records the officers (array of cert numbers, at most 10) who handled case_id. */
static int
s_officers(db_t *tx, const char *case_id, const evmsg_map_t *d, evmsg_err_t *err)
{
    evmsg_array_t arr;
    evmsg_map_array(d, "officers", EVMSG_OPTIONAL, 10, &arr);
    if (err->reason[0] || evmsg_array_count(&arr) == 0)
        return 0;
    pgarray_t a = {0};
    pgarray_begin(&a, PGARRAY_TEXT);
    for (size_t i = 0; i < evmsg_array_count(&arr); i++) {
        char cert[65];
        if (evmsg_array_str_at(&arr, i, EVMSG_NONEMPTY, 64, cert) < 0)
            break;
        pgarray_str(&a, cert);
    }
    if (err->reason[0] || pgarray_finish(&a) < 0) {
        pgarray_free(&a);
        return 0;
    }
    const char *vals[2] = {case_id, (const char *)a.buf};
    int lens[2] = {0, (int)a.len};
    int fmts[2] = {0, 1};
    PGresult *r = db_exec_prepared(tx, "rv_handler_add", 2, vals, lens, fmts, 0);
    pgarray_free(&a);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* The statutory deadline of case.opened, the record number and stage of case.recorded.
 * Returns 0, 1 (err set) or -1. */
static int
s_case_facts(db_t *tx, const bus_event_t *ev, const char *id, const evmsg_map_t *d,
             evmsg_err_t *err)
{
    if (s_prefix(ev->topic, "case.opened.")) {
        date_t due = 0;
        if (evmsg_map_date(d, "deadline", EVMSG_OPTIONAL, &due) != 1)
            return err->reason[0] ? 1 : 0;
        char dd[11];
        date_format(due, dd);
        return s_cmd(tx, "rv_deadline_put", 2, (const char *[]){id, dd});
    }
    int64_t no = 0;
    char stage[32] = "", num[24];
    evmsg_map_int(d, "record_no", EVMSG_OPTIONAL, 1, INT32_MAX, &no);
    evmsg_map_str(d, "stage", EVMSG_OPTIONAL, 31, stage);
    if (err->reason[0])
        return 1;
    if (!no || !stage[0])
        return 0;
    snprintf(num, sizeof num, "%" PRId64, no);
    return s_cmd(tx, "rv_record_add", 3, (const char *[]){id, num, stage});
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

static int
s_proposed(db_t *tx, const review_t *app, const bus_event_t *ev, review_out_t *out,
           evmsg_err_t *err)
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
    char agency[EVMSG_AGENCY_LEN + 1], id[24], ver[24];
    snprintf(agency, sizeof agency, "%s", ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN);
    snprintf(id, sizeof id, "%" PRId64, case_id);
    snprintf(ver, sizeof ver, "%" PRId64, version);

    /* The agency as review knows it; unknown, its domain and level match no rule. */
    PGresult *r = s_exec(tx, "rv_agency_get", 1, (const char *[]){agency});
    if (!r)
        return -1;
    char domain[101] = "", level[16] = "";
    int days = REVIEW_DAYS_DEFAULT;
    bool known = PQntuples(r) == 1;
    if (known) {
        snprintf(domain, sizeof domain, "%s", PQgetvalue(r, 0, 0));
        snprintf(level, sizeof level, "%s", PQgetvalue(r, 0, 1));
        days = atoi(PQgetvalue(r, 0, 2));
    }
    PQclear(r);

    catalogue_rule_t rules[S_RULES_MAX];
    PGresult *rres = NULL;
    int nrules = s_rules(tx, agency, rules, &rres);
    if (nrules < 0)
        return -1;
    catalogue_case_t c = {
        type, known ? domain : NULL, known ? level : NULL, fine + conf, hearing, mpi, sr, cx};
    size_t matched[S_RULES_MAX], nm = 0;
    char reason[CATALOGUE_REASON_MAX + 200];
    bool required =
        catalogue_evaluate(rules, (size_t)nrules, &c, matched, &nm, reason, sizeof reason);
    /* The rule ids: the catalogue's, then intake's own that review cannot see. */
    pgarray_t ra = {0};
    pgarray_begin(&ra, PGARRAY_TEXT);
    for (size_t i = 0; i < nm; i++)
        pgarray_str(&ra, rules[matched[i]].id);
    for (size_t i = 0; i < evmsg_array_count(&irules); i++) {
        char rid[65];
        if (evmsg_array_str_at(&irules, i, 0, 64, rid) < 0)
            break;
        bool dup = false;
        for (size_t k = 0; k < nm && !dup; k++)
            dup = strcmp(rules[matched[k]].id, rid) == 0;
        if (!dup)
            pgarray_str(&ra, rid);
    }
    PQclear(rres);
    err->reason[0] = err->path[0] = '\0'; /* a bad rule id from intake: ignored */
    if (!required && intake_req) {
        required = true;
        size_t len = strlen(reason);
        snprintf(reason + len, sizeof reason - len, "; required by intake's judgement");
    }
    if (pgarray_finish(&ra) < 0) {
        pgarray_free(&ra);
        return -1;
    }

    /* Judged once per version: a replayed event changes nothing. */
    const char *jv[6] = {id, ver, agency, s_tf(required), ra.buf, reason};
    int jl[6] = {0, 0, 0, 0, (int)ra.len, 0}, jf[6] = {0, 0, 0, 0, 1, 0};
    r = db_exec_prepared(tx, "rv_judged", 6, jv, jl, jf, 0);
    if (!r) {
        pgarray_free(&ra);
        return -1;
    }
    bool fresh = PQntuples(r) == 1;
    PQclear(r);
    if (!fresh) {
        pgarray_free(&ra);
        return 0;
    }
    if (s_cmd(tx, "rv_supersede", 2, (const char *[]){id, ver}) < 0) {
        pgarray_free(&ra);
        return -1;
    }
    msgpack_packer pk;
    if (!required) {
        pgarray_free(&ra);
        if (!review_out_add(out, &pk, "review.not_required", agency, 4))
            return -1;
        review_pack_int(&pk, "case_id", case_id);
        review_pack_int(&pk, "proposal_version", version);
        review_pack_int(&pk, "rules_checked", nrules);
        review_pack_str(&pk, "reason", reason);
        return 0;
    }

    /* A task: discretion flags first, so the reviewer sees them when opening it. */
    pgarray_t fa = {0};
    pgarray_begin(&fa, PGARRAY_TEXT);
    char note[DISC_NOTE_MAX] = "";
    if (vcode[0] && circ[0]) {
        int flags = discretion_check(tx, agency, vcode, circ, fine, note, sizeof note);
        if (flags < 0) {
            pgarray_free(&ra);
            pgarray_free(&fa);
            return -1;
        }
        if (flags & DISC_OUT_OF_BAND)
            pgarray_str(&fa, "out_of_band");
        if (flags & DISC_UNLIKE_RECENT)
            pgarray_str(&fa, "unlike_recent");
    }
    char due[11], warn[11];
    s_due(app, days, ev->at, due, warn);
    r = s_exec(tx, "rv_deadline_get", 1, (const char *[]){id});
    if (!r) {
        pgarray_free(&ra);
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
    int got = reviewers_assign(tx, agency, case_id, app ? app->pool_agency : NULL, rev_agency, cert,
                               &pool);
    if (got < 0 || pgarray_finish(&fa) < 0) {
        pgarray_free(&ra);
        pgarray_free(&fa);
        return -1;
    }
    if (!got)
        snprintf(rev_agency, sizeof rev_agency, "%s", agency); /* any reviewer of it */
    size_t plen = 0;
    const void *pdata = evmsg_data_bytes(ev->msg, &plen);
    const char *tv[14] = {
        id,         ver,    agency, case_no, type, pdata, ra.buf, rev_agency, got ? cert : NULL,
        s_tf(pool), fa.buf, note,   due,     warn};
    int tl[14] = {0, 0, 0, 0, 0, (int)plen, (int)ra.len, 0, 0, 0, (int)fa.len, 0, 0, 0};
    int tf[14] = {0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0};
    r = db_exec_prepared(tx, "rv_task_add", 14, tv, tl, tf, 0);
    pgarray_free(&ra);
    pgarray_free(&fa);
    if (!r)
        return -1;
    PQclear(r);
    if (!got)
        log_warn("review task without a reviewer", "case_id=%s version=%s agency=%s", id, ver,
                 agency);
    return 0;
}

/* ---- The handler ----------------------------------------------------------------------- */

int
events_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    const review_t *app = arg;
    review_out_t *out = review_out_new();
    if (!out)
        return -1;
    for (int i = 0; i < n; i++) {
        const bus_event_t *ev = &events[i];
        evmsg_err_t err = {{0}, {0}};
        int rc = 0;
        if (ev->v != 1) {
            snprintf(err.reason, sizeof err.reason, "version %u not understood (1 is)", ev->v);
            snprintf(err.path, sizeof err.path, "v");
            rc = 1;
        } else if (s_prefix(ev->topic, "registry.")) {
            rc = s_registry(tx, ev, &err);
        } else if (s_prefix(ev->topic, "case.proposed.")) {
            rc = s_proposed(tx, app, ev, out, &err);
        } else if (s_prefix(ev->topic, "case.opened.") || s_prefix(ev->topic, "case.recorded.")) {
            evmsg_map_t d = evmsg_data(ev->msg, &err);
            int64_t case_id = 0;
            char id[24];
            evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
            snprintf(id, sizeof id, "%" PRId64, case_id);
            rc = err.reason[0] ? 1 : s_officers(tx, id, &d, &err);
            if (rc == 0)
                rc = s_case_facts(tx, ev, id, &d, &err);
            if (rc == 0 && err.reason[0])
                rc = 1;
        } else if (s_prefix(ev->topic, "case.decided.")) {
            evmsg_map_t d = evmsg_data(ev->msg, &err);
            int64_t case_id = 0, fine = 0;
            char id[24], vcode[65] = "", circ[16] = "", f[40], at[24];
            evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
            evmsg_map_str(&d, "violation_code", EVMSG_OPTIONAL, 64, vcode);
            evmsg_map_str(&d, "circumstance", EVMSG_OPTIONAL, 15, circ);
            evmsg_map_decimal(&d, "fine", EVMSG_OPTIONAL, 6, 0, INT64_MAX, &fine);
            if (err.reason[0]) {
                rc = 1;
            } else if (vcode[0] && circ[0]) {
                snprintf(id, sizeof id, "%" PRId64, case_id);
                snprintf(at, sizeof at, "%" PRId64, ev->at);
                catalogue_amount_str(fine, f, sizeof f);
                const char *agency = ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN;
                rc = s_cmd(tx, "rv_decided_add", 6,
                           (const char *[]){id, agency, vcode, circ, f, at});
            }
        }
        if (rc < 0) {
            review_out_destroy(&out);
            return -1;
        }
        if (rc == 1) {
            char why[512], seq[24];
            evmsg_err_str(&err, why, sizeof why);
            snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
            log_warn("intake event rejected", "seq=%s topic=%s reason=%s", seq, ev->topic, why);
            if (s_cmd(tx, "rv_reject", 3, (const char *[]){seq, ev->topic, why}) < 0) {
                review_out_destroy(&out);
                return -1;
            }
        }
    }
    int rc = review_out_flush(out, tx);
    review_out_destroy(&out);
    return rc;
}
