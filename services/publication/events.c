/* events: case and registry events in, publication events out. */
#include "events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"
#include "log.h"
#include "pgarray.h"
#include "records.h"
#include "sgs.h"
#include "workflow.h"

const char *const events_prefixes[] = {"case.", "registry.", "inspection.", NULL};
const char *const events_review_prefixes[] = {"review.", NULL};
const char *const events_recording_prefixes[] = {"record.", NULL};

static const char *const s_types[] = {"licence", "penalty", "coercion", "inspection", "levy", NULL};

int
events_prepare(db_t *db)
{
    int rc = 0;
    /* Registry entries: the highest version per key wins (events of a key come in
     * version order, but a replay must not step back). */
    rc |= db_prepare(db, "pub_agency_put",
                     "INSERT INTO publication.agency (code, name, version) VALUES ($1, $2, $3) "
                     "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
                     "version = EXCLUDED.version WHERE agency.version < EXCLUDED.version",
                     3);
    rc |= db_prepare(db, "pub_officer_put",
                     "INSERT INTO publication.officer (agency, cert_no, name, area, valid_from, "
                     "valid_to, active, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                     "ON CONFLICT (agency, cert_no) DO UPDATE SET name = EXCLUDED.name, "
                     "area = EXCLUDED.area, valid_from = EXCLUDED.valid_from, "
                     "valid_to = EXCLUDED.valid_to, active = EXCLUDED.active, "
                     "version = EXCLUDED.version WHERE officer.version < EXCLUDED.version",
                     8);
    rc |= db_prepare(db, "pub_entry_put",
                     "INSERT INTO publication.registry_entry (agency, list, key, version, active, "
                     "entry) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agency, list, key) DO "
                     "UPDATE SET version = EXCLUDED.version, active = EXCLUDED.active, "
                     "entry = EXCLUDED.entry WHERE registry_entry.version < EXCLUDED.version",
                     6);
    rc |= db_prepare(db, "pub_entry_history",
                     "INSERT INTO publication.registry_history (agency, list, key, version, "
                     "action, entry) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                     6);
    /* The hot path (case.opened, case.decided, ...) is set-based: one statement per table
     * for a whole batch of events, from binary arrays (common/pgarray.h). */
    rc |= db_prepare(db, "pub_party_many",
                     "INSERT INTO publication.party (agency, case_id, case_no, kind, name, "
                     "id_type, id_no, summary) SELECT * FROM unnest($1::text[], $2::int8[], "
                     "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) "
                     "ON CONFLICT (agency, case_id) DO NOTHING",
                     8);
    /* What a draft needs besides its event: the party (case.opened), the agency's name
     * and its 轻微 switch (publication.settings). One primary-key probe per key whatever
     * the statistics say: a plain join's cached generic plan, made while the tables were
     * young and unanalysed, went on scanning them whole. */
    rc |= db_prepare(db, "pub_party_find",
                     "SELECT k.i, p.kind, p.name, p.id_type, p.id_no, coalesce(p.summary, ''), "
                     "coalesce(a.name, ''), coalesce(s.publish_minor, false) "
                     "FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS k(agency, case_id, i) "
                     "CROSS JOIN LATERAL (SELECT x.kind, x.name, x.id_type, x.id_no, x.summary "
                     "FROM publication.party x WHERE x.agency = k.agency AND x.case_id = k.case_id "
                     "LIMIT 1) p "
                     "LEFT JOIN LATERAL (SELECT y.name FROM publication.agency y "
                     "WHERE y.code = k.agency LIMIT 1) a ON true "
                     "LEFT JOIN LATERAL (SELECT z.publish_minor FROM publication.agency_setting z "
                     "WHERE z.agency = k.agency LIMIT 1) s ON true",
                     2);
    /* In event order (ORDER BY i), so ids follow the stream and, should a case come twice,
     * the first wins as it would one event at a time. */
    /* Each new draft (or record published at once with an expiry) is queued for its
     * timers (006_arming.sql). */
    rc |= db_prepare(db, "pub_record_many",
                     "WITH ins AS (INSERT INTO publication.record (agency, case_id, case_no, "
                     "type, decision_no, decision_date, party_name, party_uscc, body, due_on, "
                     "warn_on, due_uncovered, expires_on, state, repair_from) "
                     "SELECT a, c, cn, t, dn, dd, pn, nullif(pu, ''), b::jsonb, du, wo, un, ex, "
                     "st, rf FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], "
                     "$5::text[], $6::date[], $7::text[], $8::text[], $9::text[], $10::date[], "
                     "$11::date[], $12::bool[], $13::date[], $14::text[], $15::date[]) "
                     "WITH ORDINALITY AS u(a, c, cn, t, dn, dd, pn, pu, b, du, wo, un, ex, st, rf, "
                     "i) ORDER BY i ON CONFLICT (agency, case_id) DO NOTHING "
                     "RETURNING id, agency, case_id, state, expires_on), "
                     "q AS (INSERT INTO publication.arming (id) SELECT id FROM ins "
                     "WHERE state = 'draft' OR (state = 'published' AND expires_on IS NOT NULL)) "
                     "SELECT id, agency, case_id FROM ins",
                     15);
    rc |= db_prepare(db, "pub_record_withdraw",
                     "UPDATE publication.record SET state = 'withdrawn', withdrawn_kind = $3, "
                     "withdrawn_reason = $4, withdrawn_on = $5, withdrawn_at = now(), "
                     "version = version + 1 WHERE agency = $1 AND case_id = $2 "
                     "AND state <> 'withdrawn' "
                     "RETURNING id, case_no, type, decision_no, published_at IS NOT NULL",
                     5);
    /* Statistics facts (003_stats.sql): keyed by what makes each one fact, so a replayed
     * event inserts nothing. */
    rc |= db_prepare(db, "st_case_many",
                     "INSERT INTO publication.stat_case (agency, case_id, type, opened_on) "
                     "SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::date[]) "
                     "ON CONFLICT DO NOTHING",
                     4);
    rc |= db_prepare(db, "st_proposal_many",
                     "INSERT INTO publication.stat_proposal (agency, case_id, version, "
                     "proposed_on, requires_review) SELECT * FROM unnest($1::text[], $2::int8[], "
                     "$3::int4[], $4::date[], $5::bool[]) ON CONFLICT DO NOTHING",
                     5);
    rc |= db_prepare(db, "st_deadline_many",
                     "INSERT INTO publication.stat_deadline (agency, case_id, deadline, on_day) "
                     "SELECT * FROM unnest($1::text[], $2::int8[], $3::date[], $4::date[]) "
                     "ON CONFLICT DO NOTHING",
                     4);
    return rc ? -1 : 0;
}

int
events_prepare_stats(db_t *db)
{
    int rc = 0;
    rc |= db_prepare(db, "st_review_many",
                     "INSERT INTO publication.stat_review (agency, case_id, proposal_version, "
                     "outcome, on_day) SELECT * FROM unnest($1::text[], $2::int8[], $3::int4[], "
                     "$4::text[], $5::date[]) ON CONFLICT DO NOTHING",
                     5);
    rc |= db_prepare(db, "st_gap_put",
                     "INSERT INTO publication.stat_gap (agency, case_id, stage, rule, opened_on) "
                     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                     5);
    /* A gap closed before its record.gap was seen (never, in stream order; kept safe) is
     * inserted closed. The first closing day stays. */
    rc |= db_prepare(db, "st_gap_close",
                     "INSERT INTO publication.stat_gap (agency, case_id, stage, rule, opened_on, "
                     "closed_on) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (agency, case_id, "
                     "stage, rule) DO UPDATE SET closed_on = EXCLUDED.closed_on "
                     "WHERE stat_gap.closed_on IS NULL",
                     5);
    return rc ? -1 : 0;
}

/* Whether the outbox may still hold rows for the relay to sequence (bus_emit_batch_ordered):
 * every event of the stream is written through it, by the service's one loop thread. */
static bool s_relay_rows = true;

int
events_emit(db_t *tx, const char *event, const char *agency, const json_t *data)
{
    char topic[EVMSG_TOPIC_MAX + 1];
    snprintf(topic, sizeof topic, "publication.%s.%s", event, agency);
    char *text = json_dumps(data, JSON_COMPACT);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr = {0};
    evmsg_err_t err = {0};
    int rc = -1;
    if (text && jsonmp_from_json(text, strlen(text), "data", 2, &sb, &jerr) == 0) {
        bus_event_in_t ev = {topic, 1, sb.data, sb.size};
        rc = bus_emit_batch_ordered(tx, PUB_SCHEMA, &s_relay_rows, &ev, 1, &err);
    }
    if (rc < 0)
        log_error("event not emitted", "topic=%s error=%s%s", topic, jerr.reason, err.reason);
    free(text);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Room for one more event in o; false (o bad) when memory ran out. */
static bool
s_out_room(events_out_t *o)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        bus_event_in_t *ev = realloc(o->ev, cap * sizeof *ev);
        if (!ev) {
            o->bad = true;
            return false;
        }
        o->ev = ev;
        o->cap = cap;
    }
    return true;
}

int
events_out_add_packed(events_out_t *o, const char *event, const char *agency, msgpack_sbuffer *sb)
{
    char *topic = o->bad ? NULL : malloc(EVMSG_TOPIC_MAX + 1);
    if (!topic || !s_out_room(o)) {
        if (!o->bad)
            log_error("event not emitted", "event=%s agency=%s error=%s", event, agency,
                      "out of memory");
        free(topic);
        msgpack_sbuffer_destroy(sb);
        msgpack_sbuffer_init(sb);
        o->bad = true;
        return -1;
    }
    snprintf(topic, EVMSG_TOPIC_MAX + 1, "publication.%s.%s", event, agency);
    o->ev[o->n++] = (bus_event_in_t){topic, 1, sb->data, sb->size};
    msgpack_sbuffer_init(sb); /* o owns the data now */
    return 0;
}

int
events_out_add(events_out_t *o, const char *event, const char *agency, const json_t *data)
{
    if (o->bad || !s_out_room(o))
        return -1;
    char *topic = malloc(EVMSG_TOPIC_MAX + 1);
    char *text = json_dumps(data, JSON_COMPACT);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr = {0};
    if (topic)
        snprintf(topic, EVMSG_TOPIC_MAX + 1, "publication.%s.%s", event, agency);
    if (!topic || !text || jsonmp_from_json(text, strlen(text), "data", 2, &sb, &jerr) < 0) {
        log_error("event not emitted", "event=%s agency=%s error=%s", event, agency,
                  jerr.reason[0] ? jerr.reason : "out of memory");
        free(topic);
        free(text);
        msgpack_sbuffer_destroy(&sb);
        o->bad = true;
        return -1;
    }
    free(text);
    o->ev[o->n++] = (bus_event_in_t){topic, 1, sb.data, sb.size};
    return 0;
}

/* Frees the events of o (not the array). */
static void
s_out_clear(events_out_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free((char *)o->ev[i].topic);
        free((void *)o->ev[i].data);
    }
    o->n = 0;
}

int
events_out_flush(db_t *tx, events_out_t *o)
{
    int rc = o->bad ? -1 : 0;
    for (size_t at = 0; rc == 0 && at < o->n; at += BUS_BATCH_MAX) {
        size_t k = o->n - at < BUS_BATCH_MAX ? o->n - at : BUS_BATCH_MAX;
        evmsg_err_t err = {0};
        rc = bus_emit_batch_ordered(tx, PUB_SCHEMA, &s_relay_rows, o->ev + at, k, &err);
        if (rc < 0)
            log_error("events not emitted", "n=%zu error=%s%s", k, err.reason, db_error(tx));
    }
    s_out_clear(o);
    o->bad = false;
    return rc;
}

void
events_out_free(events_out_t *o)
{
    s_out_clear(o);
    free(o->ev);
    *o = (events_out_t){0};
}

/* The fields every case event starts with. Returns 0 or -1 (err). */
static int
s_case_head(evmsg_map_t *d, pub_case_t *c)
{
    int t = 0;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &c->case_id);
    evmsg_map_str(d, "case_no", EVMSG_NONEMPTY, 64, c->case_no);
    if (evmsg_map_enum(d, "type", 0, s_types, &t) == 1)
        snprintf(c->type, sizeof c->type, "%s", s_types[t]);
    return d->state < 0 || (d->err && d->err->reason[0]) ? -1 : 0;
}

/* registry.agency / registry.officer: data {action, key, version, entry}. Returns 0, 1
 * when the event cannot be used, -1 on a database failure. */
static int
s_registry(db_t *tx, const char *list, const char *agency, evmsg_map_t *d)
{
    evmsg_map_t e;
    uint64_t version = 0;
    evmsg_map_uint(d, "version", 0, INT32_MAX, &version);
    evmsg_map_map(d, "entry", 0, &e);
    char ver[16], name[201];
    snprintf(ver, sizeof ver, "%" PRIu64, version);
    evmsg_map_str(&e, "name", EVMSG_NONEMPTY, 200, name);
    PGresult *r;
    if (strcmp(list, "agency") == 0) {
        if (d->err->reason[0])
            return 1;
        r = db_exec_prepared(tx, "pub_agency_put", 3, (const char *[]){agency, name, ver}, NULL,
                             NULL, 0);
    } else {
        char cert[65], area[201];
        date_t from = 0, to = 0;
        bool active = true;
        evmsg_map_str(&e, "cert_no", EVMSG_NONEMPTY, 64, cert);
        evmsg_map_str(&e, "area", EVMSG_NONEMPTY, 200, area);
        evmsg_map_date(&e, "valid_from", 0, &from);
        evmsg_map_date(&e, "valid_to", 0, &to);
        evmsg_map_bool(&e, "active", EVMSG_OPTIONAL, &active);
        if (d->err->reason[0])
            return 1;
        char f[11], t[11];
        const char *v[] = {agency,
                           cert,
                           name,
                           area,
                           date_format(from, f),
                           date_format(to, t),
                           active ? "true" : "false",
                           ver};
        r = db_exec_prepared(tx, "pub_officer_put", 8, v, NULL, NULL, 0);
    }
    PQclear(r);
    return r ? 0 : -1;
}

/* Keeps any registry entry for the agency page (事前公开): {action, key, version,
 * entry}. An officer's page shows what identifies the officer to the public (name,
 * certificate, area, validity), not internal flags. Returns 0, 1 (unusable), -1. */
static int
s_entry(db_t *tx, const char *list, const char *agency, const bus_event_t *ev)
{
    size_t len = 0;
    const void *bytes = evmsg_data_bytes(ev->msg, &len);
    char *text = jsonmp_to_json(bytes, len, "data", NULL, NULL);
    json_t *d = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *entry = json_object_get(d, "entry");
    const char *key = json_string_value(json_object_get(d, "key"));
    const char *action = json_string_value(json_object_get(d, "action"));
    json_t *ver = json_object_get(d, "version");
    if (!json_is_object(entry) || !key || !action || !json_is_integer(ver)) {
        json_decref(d);
        return 1;
    }
    if (strcmp(list, "officer") == 0) {
        static const char *const keep[] = {"cert_no",  "name",   "area", "valid_from",
                                           "valid_to", "active", NULL};
        json_t *o = json_object();
        for (int i = 0; keep[i]; i++)
            if (json_object_get(entry, keep[i]))
                json_object_set(o, keep[i], json_object_get(entry, keep[i]));
        entry = o;
    } else
        json_incref(entry);
    char *etext = json_dumps(entry, JSON_COMPACT);
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)json_integer_value(ver));
    const char *active = strcmp(action, "retire") == 0 ? "false" : "true";
    int rc = 0;
    if (!etext)
        rc = -1;
    else {
        const char *a[] = {agency, list, key, v, active, etext};
        PGresult *r = db_exec_prepared(tx, "pub_entry_put", 6, a, NULL, NULL, 0);
        const char *h[] = {agency, list, key, v, action, etext};
        PGresult *r2 = r ? db_exec_prepared(tx, "pub_entry_history", 6, h, NULL, NULL, 0) : NULL;
        rc = r && r2 ? 0 : -1;
        PQclear(r);
        PQclear(r2);
    }
    free(etext);
    json_decref(entry);
    json_decref(d);
    return rc;
}

static bool
s_is(const char *topic, const char *prefix)
{
    return strncmp(topic, prefix, strlen(prefix)) == 0;
}

/* ---- Set-based handling ---------------------------------------------------------------
 * A batch of intake events is read once and its effects gathered per table; each table
 * then gets one statement for the whole batch (pgarray's binary unnest). Effects that
 * later events of the batch depend on are written before them: parties before the
 * drafts that read them, and everything gathered before a registry or case.revoked
 * event, which are applied one at a time (rare, and order-sensitive). */

typedef struct {
    pgarray_t party[8]; /* publication.party, from case.opened */
    pgarray_t scase[4]; /* stat_case, from case.opened */
    pgarray_t prop[5];  /* stat_proposal, from case.proposed */
    pgarray_t dl[4];    /* stat_deadline, from case.deadline.overdue */
    int *decided;       /* indexes (into the events) of case.decided / inspection.resulted */
    int ndecided;
} s_batch_t;

static void
s_batch_begin(s_batch_t *b)
{
    static const uint32_t party[8] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT,
                                      PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT};
    static const uint32_t scase[4] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_DATE};
    static const uint32_t prop[5] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_INT4, PGARRAY_DATE,
                                     PGARRAY_BOOL};
    static const uint32_t dl[4] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_DATE, PGARRAY_DATE};
    for (int i = 0; i < 8; i++)
        pgarray_begin(&b->party[i], party[i]);
    for (int i = 0; i < 4; i++)
        pgarray_begin(&b->scase[i], scase[i]);
    for (int i = 0; i < 5; i++)
        pgarray_begin(&b->prop[i], prop[i]);
    for (int i = 0; i < 4; i++)
        pgarray_begin(&b->dl[i], dl[i]);
    b->ndecided = 0;
}

static void
s_batch_free(s_batch_t *b)
{
    for (int i = 0; i < 8; i++)
        pgarray_free(&b->party[i]);
    for (int i = 0; i < 4; i++)
        pgarray_free(&b->scase[i]);
    for (int i = 0; i < 5; i++)
        pgarray_free(&b->prop[i]);
    for (int i = 0; i < 4; i++)
        pgarray_free(&b->dl[i]);
    free(b->decided);
    b->decided = NULL;
}

/* Runs statement name over arrays a[0..n) when they hold rows. Returns 0 or -1. */
static int
s_exec_many(db_t *tx, const char *name, pgarray_t *a, int n)
{
    if (a[0].count == 0)
        return 0;
    PGresult *r = pgarray_exec(tx, name, a, n, 0);
    if (!r)
        log_error("batch not written", "statement=%s error=%s", name, db_error(tx));
    PQclear(r);
    return r ? 0 : -1;
}

/* case.opened: the party (kept unmasked) and the case counted (统计). Returns 0, or 1 when
 * the event cannot be used. */
static int
s_opened(s_batch_t *b, const char *agency, evmsg_map_t *d, date_t day)
{
    pub_case_t c = {0};
    static const char *const kinds[] = {"person", "org", NULL};
    evmsg_map_t p;
    int k = 0;
    char summary[2001] = "";
    s_case_head(d, &c);
    evmsg_map_str(d, "summary", EVMSG_OPTIONAL, 2000, summary);
    evmsg_map_map(d, "party", 0, &p);
    evmsg_map_enum(&p, "kind", 0, kinds, &k);
    evmsg_map_str(&p, "name", EVMSG_NONEMPTY, 200, c.party_name);
    evmsg_map_str(&p, "id_type", EVMSG_NONEMPTY, 15, c.party_id_type);
    evmsg_map_str(&p, "id_no", EVMSG_NONEMPTY, 32, c.party_id_no);
    date_t opened_on = day;
    evmsg_map_date(d, "opened_on", EVMSG_OPTIONAL, &opened_on);
    if (d->err->reason[0])
        return 1;
    const char *v[] = {agency,        NULL,
                       c.case_no,     kinds[k],
                       c.party_name,  c.party_id_type,
                       c.party_id_no, summary[0] ? summary : NULL};
    for (int i = 0; i < 8; i++)
        if (i == 1)
            pgarray_int8(&b->party[i], (int64_t)c.case_id);
        else
            pgarray_str(&b->party[i], v[i]);
    pgarray_str(&b->scase[0], agency);
    pgarray_int8(&b->scase[1], (int64_t)c.case_id);
    pgarray_str(&b->scase[2], c.type);
    pgarray_date(&b->scase[3], opened_on);
    return 0;
}

/* case.proposed: a proposal version, a review request unless review says not_required. */
static int
s_proposed(s_batch_t *b, const char *agency, evmsg_map_t *d, date_t day)
{
    uint64_t case_id = 0, version = 0;
    bool requires = false;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_uint(d, "version", 0, INT32_MAX, &version);
    evmsg_map_bool(d, "requires_review", EVMSG_OPTIONAL, &requires);
    if (d->err->reason[0])
        return 1;
    pgarray_str(&b->prop[0], agency);
    pgarray_int8(&b->prop[1], (int64_t)case_id);
    pgarray_int4(&b->prop[2], (int32_t)version);
    pgarray_date(&b->prop[3], day);
    pgarray_bool(&b->prop[4], requires);
    return 0;
}

/* case.deadline.overdue: a statutory case deadline missed (counted against the agency). */
static int
s_deadline_missed(s_batch_t *b, const char *agency, evmsg_map_t *d, date_t day)
{
    uint64_t case_id = 0;
    date_t deadline = 0;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_date(d, "deadline", 0, &deadline);
    if (d->err->reason[0])
        return 1;
    pgarray_str(&b->dl[0], agency);
    pgarray_int8(&b->dl[1], (int64_t)case_id);
    pgarray_date(&b->dl[2], deadline);
    pgarray_date(&b->dl[3], day);
    return 0;
}

/* Reads case.decided into c (all but the party). Returns 0, or 1 when the event cannot be
 * used (why written). */
static int
s_decided_read(const char *agency, evmsg_map_t *d, pub_case_t *c, char *why, size_t whylen)
{
    static const char *const circ[] = {"minor", "general", "serious", NULL};
    int ci = -1;
    snprintf(c->agency, sizeof c->agency, "%s", agency);
    s_case_head(d, c);
    evmsg_map_str(d, "decision_no", EVMSG_NONEMPTY, 64, c->decision_no);
    evmsg_map_date(d, "decision_date", 0, &c->decision_date);
    evmsg_map_str(d, "category", 0, 200, c->category);
    evmsg_map_str(d, "content", 0, 4000, c->content);
    evmsg_map_str(d, "legal_basis", 0, 2000, c->legal_basis);
    evmsg_map_str(d, "fine", EVMSG_OPTIONAL, 31, c->fine);
    evmsg_map_str(d, "confiscation", EVMSG_OPTIONAL, 31, c->confiscation);
    evmsg_map_str(d, "violation_code", EVMSG_OPTIONAL, 64, c->violation_code);
    if (evmsg_map_enum(d, "circumstance", EVMSG_OPTIONAL, circ, &ci) == 1)
        snprintf(c->circumstance, sizeof c->circumstance, "%s", circ[ci]);
    if (d->err->reason[0]) {
        evmsg_err_str(d->err, why, whylen);
        return 1;
    }
    return 0;
}

/* Reads inspection.resulted (双随机、一公开: the result of a random inspection is
 * published too) into c as a record of type inspection: the result date stands for the
 * decision date, the case number for the decision number. Returns as s_decided_read. */
static int
s_resulted_read(const char *agency, evmsg_map_t *d, pub_case_t *c, char *why, size_t whylen)
{
    static const char *const results[] = {"compliant", "problems_found", "not_located", "refused",
                                          NULL};
    static const char *const zh[] = {"未发现问题", "发现问题", "未发现/查无下落", "拒绝检查"};
    int ri = 0;
    char problems[1601] = "", handled[1201] = "";
    snprintf(c->agency, sizeof c->agency, "%s", agency);
    s_case_head(d, c);
    evmsg_map_date(d, "result_date", 0, &c->decision_date);
    evmsg_map_enum(d, "result", 0, results, &ri);
    /* Cut to fit the record's content (4000 bytes) rather than refused. */
    const char *pp = NULL, *hp = NULL;
    size_t pl = 0, hl = 0;
    evmsg_map_strp(d, "problems", EVMSG_OPTIONAL, 4000, &pp, &pl);
    evmsg_map_strp(d, "handled", EVMSG_OPTIONAL, 2000, &hp, &hl);
    if (d->err->reason[0]) {
        evmsg_err_str(d->err, why, whylen);
        return 1;
    }
    if (pp)
        records_utf8_cut(problems, sizeof problems, pp, pl);
    if (hp)
        records_utf8_cut(handled, sizeof handled, hp, hl);
    snprintf(c->decision_no, sizeof c->decision_no, "%s", c->case_no);
    snprintf(c->category, sizeof c->category, "双随机抽查");
    snprintf(c->content, sizeof c->content, "%s%s%s%s%s", zh[ri],
             problems[0] ? "；发现的问题：" : "", problems, handled[0] ? "；处理情况：" : "",
             handled);
    return 0;
}

/* Fills c's party, summary and agency name from row of pub_party_find's result. */
static void
s_party_fill(pub_case_t *c, const PGresult *r, int row)
{
    if (!c->fine[0])
        snprintf(c->fine, sizeof c->fine, "0");
    if (!c->confiscation[0])
        snprintf(c->confiscation, sizeof c->confiscation, "0");
    snprintf(c->party_kind, sizeof c->party_kind, "%s", PQgetvalue(r, row, 1));
    snprintf(c->party_name, sizeof c->party_name, "%s", PQgetvalue(r, row, 2));
    snprintf(c->party_id_type, sizeof c->party_id_type, "%s", PQgetvalue(r, row, 3));
    snprintf(c->party_id_no, sizeof c->party_id_no, "%s", PQgetvalue(r, row, 4));
    snprintf(c->summary, sizeof c->summary, "%s", PQgetvalue(r, row, 5));
    snprintf(c->agency_name, sizeof c->agency_name, "%s", PQgetvalue(r, row, 6));
}

/* What a draft's event needs once its row is in. */
typedef struct {
    const char *agency; /* in the event's topic */
    uint64_t case_id;
    int64_t record_id; /* 0: no row written (skipped, or the case already had one) */
    bool used;         /* a row was offered to pub_record_many */
    bool exempt;
    char case_no[65];
    char type[16];
    char due[11], warn[11];
} s_draft_t;

/* The case_id of a case event, 0 when it has none (the event is then skipped later). */
static uint64_t
s_case_id(const bus_event_t *ev)
{
    evmsg_err_t err = {0};
    evmsg_map_t d = evmsg_data(ev->msg, &err);
    uint64_t id = 0;
    evmsg_map_uint(&d, "case_id", 0, INT64_MAX, &id);
    return id;
}

/* case.decided and inspection.resulted of the batch (idx[0..n) into events): a draft
 * public record each (masked, with its deadlines; a 轻微 penalty kept exempt unless the
 * agency set publish_minor), publication.drafted for each new draft, in event order. An
 * unusable event is logged and skipped. Returns 0 or -1 (database failure). */
static int
s_draft_many(db_t *tx, const publication_t *app, const bus_event_t *events, const int *idx, int n)
{
    static const uint32_t types[15] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_TEXT, PGARRAY_TEXT,
                                       PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_TEXT,
                                       PGARRAY_TEXT, PGARRAY_DATE, PGARRAY_DATE, PGARRAY_BOOL,
                                       PGARRAY_DATE, PGARRAY_TEXT, PGARRAY_DATE};
    if (n == 0)
        return 0;
    int rc = -1;
    pgarray_t key[2] = {{0}}, rec[15] = {{0}};
    PGresult *pr = NULL, *rr = NULL;
    s_draft_t *dr = calloc((size_t)n, sizeof *dr);
    int *prow = malloc((size_t)n * sizeof *prow);
    pub_case_t *c = malloc(sizeof *c);
    events_out_t out = {0};
    if (!dr || !prow || !c)
        goto done;
    pgarray_begin(&key[0], PGARRAY_TEXT);
    pgarray_begin(&key[1], PGARRAY_INT8);
    for (int i = 0; i < n; i++) {
        const bus_event_t *ev = &events[idx[i]];
        dr[i].agency = ev->topic + strlen(ev->topic) - EVMSG_AGENCY_LEN;
        dr[i].case_id = s_case_id(ev);
        pgarray_str(&key[0], dr[i].agency);
        pgarray_int8(&key[1], (int64_t)dr[i].case_id);
        prow[i] = -1;
    }
    if (!(pr = pgarray_exec(tx, "pub_party_find", key, 2, 0)))
        goto done;
    for (int r = 0; r < PQntuples(pr); r++) {
        long i = strtol(PQgetvalue(pr, r, 0), NULL, 10) - 1;
        if (i >= 0 && i < n)
            prow[i] = r;
    }
    for (int f = 0; f < 15; f++)
        pgarray_begin(&rec[f], types[f]);
    int nrec = 0;
    for (int i = 0; i < n; i++) {
        const bus_event_t *ev = &events[idx[i]];
        evmsg_err_t err = {0};
        evmsg_map_t d = evmsg_data(ev->msg, &err);
        char why[256] = "";
        memset(c, 0, sizeof *c);
        bool result = s_is(ev->topic, "inspection.resulted.");
        int skip = result ? s_resulted_read(dr[i].agency, &d, c, why, sizeof why)
                          : s_decided_read(dr[i].agency, &d, c, why, sizeof why);
        if (!skip && prow[i] < 0) {
            snprintf(why, sizeof why, "no case.opened seen for case %" PRIu64, c->case_id);
            skip = 1;
        }
        date_t due = 0, warn = 0;
        bool uncovered = false;
        if (!skip) {
            s_party_fill(c, pr, prow[i]);
            if (workflow_due(app->cal, c->type, c->decision_date, &due, &warn, &uncovered) < 0) {
                snprintf(why, sizeof why, "deadline not computable");
                skip = 1;
            }
        }
        if (skip) {
            if (!why[0])
                evmsg_err_str(&err, why, sizeof why);
            log_error("event skipped", "topic=%s seq=%" PRIu64 " why=%s", ev->topic, ev->seq, why);
            continue;
        }
        json_t *body = records_public(c);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text)
            goto done;
        pub_party_t p;
        records_mask_party(c, &p);
        /* 信用修复管理办法 (in force 2026-04-01): penalty information is published for at
         * most 3 months (轻微), 1 year (一般), 3 years (严重); 轻微 is in principle not
         * published at all, so such a record is kept as exempt and never drafted ...
         * unless the agency set otherwise (publication.settings). */
        bool penalty = strcmp(c->type, "penalty") == 0;
        bool exempt = penalty && strcmp(c->circumstance, "minor") == 0 &&
                      PQgetvalue(pr, prow[i], 7)[0] != 't';
        pgarray_str(&rec[0], dr[i].agency);
        pgarray_int8(&rec[1], (int64_t)c->case_id);
        pgarray_str(&rec[2], c->case_no);
        pgarray_str(&rec[3], c->type);
        pgarray_str(&rec[4], c->decision_no);
        pgarray_date(&rec[5], c->decision_date);
        pgarray_str(&rec[6], p.name);
        pgarray_str(&rec[7], p.uscc);
        pgarray_str(&rec[8], text);
        pgarray_date(&rec[9], due);
        pgarray_date(&rec[10], warn);
        pgarray_bool(&rec[11], uncovered);
        if (penalty)
            pgarray_date(&rec[12], sgs_publish_until(c->decision_date, c->circumstance));
        else
            pgarray_null(&rec[12]);
        pgarray_str(&rec[13], exempt ? "exempt" : "draft");
        if (penalty)
            pgarray_date(&rec[14], sgs_repair_from(c->decision_date, c->circumstance));
        else
            pgarray_null(&rec[14]);
        free(text);
        dr[i].used = true;
        dr[i].exempt = exempt;
        dr[i].case_id = c->case_id;
        snprintf(dr[i].case_no, sizeof dr[i].case_no, "%s", c->case_no);
        snprintf(dr[i].type, sizeof dr[i].type, "%s", c->type);
        date_format(due, dr[i].due);
        date_format(warn, dr[i].warn);
        nrec++;
    }
    if (nrec == 0) {
        rc = 0;
        goto done;
    }
    if (!(rr = pgarray_exec(tx, "pub_record_many", rec, 15, 0)))
        goto done;
    /* RETURNING comes in no promised order: each row goes back to the first event of its
     * case (the one ORDER BY i inserted). */
    for (int r = 0; r < PQntuples(rr); r++) {
        uint64_t cid = strtoull(PQgetvalue(rr, r, 2), NULL, 10);
        const char *ag = PQgetvalue(rr, r, 1);
        for (int i = 0; i < n; i++)
            if (dr[i].used && dr[i].case_id == cid && !dr[i].record_id &&
                memcmp(dr[i].agency, ag, EVMSG_AGENCY_LEN) == 0) {
                dr[i].record_id = strtoll(PQgetvalue(rr, r, 0), NULL, 10);
                break;
            }
    }
    for (int i = 0; i < n; i++) {
        if (!dr[i].record_id || dr[i].exempt)
            continue;
        json_t *e = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s}", "record_id", (json_int_t)dr[i].record_id,
                              "case_id", (json_int_t)dr[i].case_id, "case_no", dr[i].case_no,
                              "type", dr[i].type, "due_on", dr[i].due, "warn_on", dr[i].warn);
        int erc = e ? events_out_add(&out, "drafted", dr[i].agency, e) : -1;
        json_decref(e);
        if (erc < 0)
            goto done;
    }
    rc = events_out_flush(tx, &out);
done:
    if (rc < 0 && db_error(tx)[0])
        log_error("drafts not written", "n=%d error=%s", n, db_error(tx));
    PQclear(pr);
    PQclear(rr);
    pgarray_free(&key[0]);
    pgarray_free(&key[1]);
    for (int f = 0; f < 15; f++)
        pgarray_free(&rec[f]);
    events_out_free(&out);
    free(c);
    free(prow);
    free(dr);
    return rc;
}

/* Writes what b gathered, in dependency order, and begins it again. Returns 0 or -1. */
static int
s_batch_flush(db_t *tx, const publication_t *app, const bus_event_t *events, s_batch_t *b)
{
    int rc = s_exec_many(tx, "pub_party_many", b->party, 8) < 0 ||
                     s_exec_many(tx, "st_case_many", b->scase, 4) < 0 ||
                     s_exec_many(tx, "st_proposal_many", b->prop, 5) < 0 ||
                     s_exec_many(tx, "st_deadline_many", b->dl, 4) < 0 ||
                     s_draft_many(tx, app, events, b->decided, b->ndecided) < 0
                 ? -1
                 : 0;
    s_batch_begin(b);
    return rc;
}

static int
s_revoked(db_t *tx, const char *agency, evmsg_map_t *d)
{
    static const char *const kinds[] = {"revoke", "confirm_illegal", "change", "invalid", NULL};
    pub_case_t c = {0};
    int k = 0;
    char reason[2001];
    date_t on = 0;
    s_case_head(d, &c);
    evmsg_map_enum(d, "kind", 0, kinds, &k);
    evmsg_map_str(d, "reason", EVMSG_NONEMPTY, 2000, reason);
    evmsg_map_date(d, "revoked_on", 0, &on);
    if (d->err->reason[0])
        return 1;
    char id[24], day[11];
    snprintf(id, sizeof id, "%" PRIu64, c.case_id);
    date_format(on, day);
    const char *v[] = {agency, id, kinds[k], reason, day};
    PGresult *r = db_exec_prepared(tx, "pub_record_withdraw", 5, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1) {
        /* 行政处罚法 2021 art. 48: withdrawn within 3 days, with the reason. */
        json_t *e = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "record_id",
                              (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_id",
                              (json_int_t)c.case_id, "case_no", PQgetvalue(r, 0, 1), "type",
                              PQgetvalue(r, 0, 2), "decision_no", PQgetvalue(r, 0, 3), "kind",
                              kinds[k], "reason", reason, "withdrawn_on", day, "was_published",
                              PQgetvalue(r, 0, 4)[0] == 't');
        rc = e ? events_emit(tx, "withdrawn", agency, e) : -1;
        json_decref(e);
    }
    PQclear(r);
    return rc;
}

int
events_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    const publication_t *app = arg;
    s_batch_t b = {0};
    s_batch_begin(&b);
    int rc = 0;
    if (n > 0 && !(b.decided = malloc((size_t)n * sizeof *b.decided)))
        rc = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        const bus_event_t *ev = &events[i];
        evmsg_err_t err = {0};
        evmsg_map_t d = evmsg_data(ev->msg, &err);
        size_t tlen = strlen(ev->topic);
        if (tlen < EVMSG_AGENCY_LEN + 1)
            continue;
        const char *agency = ev->topic + tlen - EVMSG_AGENCY_LEN;
        int erc = 0;
        date_t day = date_from_unix_cst(ev->at / 1000);
        if (s_is(ev->topic, "registry.")) {
            /* registry.<list>.<agency>: every list goes to the agency page. After what
             * came before it (a draft takes the agency's name as it was then). */
            if (s_batch_flush(tx, app, events, &b) < 0) {
                rc = -1;
                break;
            }
            char list[32] = "";
            const char *l = ev->topic + 9;
            size_t llen = tlen - 9 - EVMSG_AGENCY_LEN - 1;
            if (tlen > 9 + EVMSG_AGENCY_LEN + 1 && llen < sizeof list)
                snprintf(list, sizeof list, "%.*s", (int)llen, l);
            erc = list[0] ? s_entry(tx, list, agency, ev) : 1;
            if (erc == 0 && (strcmp(list, "agency") == 0 || strcmp(list, "officer") == 0))
                erc = s_registry(tx, list, agency, &d);
        } else if (s_is(ev->topic, "case.opened."))
            erc = s_opened(&b, agency, &d, day);
        else if (s_is(ev->topic, "case.proposed."))
            erc = s_proposed(&b, agency, &d, day);
        else if (s_is(ev->topic, "case.deadline.overdue."))
            erc = s_deadline_missed(&b, agency, &d, day);
        else if (s_is(ev->topic, "case.decided.") || s_is(ev->topic, "inspection.resulted."))
            b.decided[b.ndecided++] = i; /* read, and logged when unusable, at the flush */
        else if (s_is(ev->topic, "case.revoked.")) {
            /* Withdraws the record, so the draft must be in first. */
            if (s_batch_flush(tx, app, events, &b) < 0) {
                rc = -1;
                break;
            }
            erc = s_revoked(tx, agency, &d);
        }
        if (erc < 0)
            rc = -1;
        else if (erc > 0) {
            char why[256];
            evmsg_err_str(&err, why, sizeof why);
            log_error("event skipped", "topic=%s seq=%" PRIu64 " why=%s", ev->topic, ev->seq, why);
        }
    }
    if (rc == 0)
        rc = s_batch_flush(tx, app, events, &b);
    s_batch_free(&b);
    return rc;
}

/* review.<outcome>.<agency> -> a stat_review row in a (5 arrays). Returns 0, 1 (unusable or
 * not counted). */
static int
s_review(pgarray_t *a, const char *outcome, const char *agency, evmsg_map_t *d, date_t day)
{
    static const char *const counted[] = {"not_required", "approved", "returned", "referred",
                                          "escalated",    "overdue",  NULL};
    bool known = false;
    for (int i = 0; counted[i]; i++)
        known = known || strcmp(outcome, counted[i]) == 0;
    if (!known)
        return 0; /* review.due_soon: nothing to count */
    uint64_t case_id = 0, version = 0;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_uint(d, "proposal_version", 0, INT32_MAX, &version);
    if (d->err->reason[0])
        return 1;
    pgarray_str(&a[0], agency);
    pgarray_int8(&a[1], (int64_t)case_id);
    pgarray_int4(&a[2], (int32_t)version);
    pgarray_str(&a[3], outcome);
    pgarray_date(&a[4], day);
    return 0;
}

/* record.gap / record.gap_closed -> stat_gap. Returns 0, 1 (unusable), -1. */
static int
s_gap(db_t *tx, bool closed, const char *agency, evmsg_map_t *d, date_t day)
{
    uint64_t case_id = 0;
    char stage[65], rule[65], id[24], on[11];
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_str(d, "stage", EVMSG_NONEMPTY, 64, stage);
    evmsg_map_str(d, "rule", EVMSG_NONEMPTY, 64, rule);
    /* The day the gap was revealed (closed): the time in the event, else the envelope's. */
    uint64_t at = 0;
    if (evmsg_map_uint(d, "at", EVMSG_OPTIONAL, INT64_MAX, &at) == 1)
        day = date_from_unix_cst((int64_t)(at / 1000));
    if (d->err->reason[0])
        return 1;
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *v[] = {agency, id, stage, rule, date_format(day, on)};
    PGresult *r = db_exec_prepared(tx, closed ? "st_gap_close" : "st_gap_put", 5, v, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

int
events_handle_stats(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    (void)arg;
    /* The reviews (one or more a case) in one statement; gaps (rare) one at a time. */
    static const uint32_t types[5] = {PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_INT4, PGARRAY_TEXT,
                                      PGARRAY_DATE};
    pgarray_t rv[5] = {{0}};
    for (int f = 0; f < 5; f++)
        pgarray_begin(&rv[f], types[f]);
    int src = 0;
    for (int i = 0; i < n && src == 0; i++) {
        const bus_event_t *ev = &events[i];
        size_t tlen = strlen(ev->topic);
        const char *dot = strchr(ev->topic, '.');
        if (tlen < EVMSG_AGENCY_LEN + 4 || !dot || ev->topic[tlen - EVMSG_AGENCY_LEN - 1] != '.')
            continue;
        const char *agency = ev->topic + tlen - EVMSG_AGENCY_LEN;
        char name[40] = "";
        size_t nlen = (size_t)(ev->topic + tlen - EVMSG_AGENCY_LEN - 1 - (dot + 1));
        if (dot + 1 < agency && nlen < sizeof name)
            snprintf(name, sizeof name, "%.*s", (int)nlen, dot + 1);
        evmsg_err_t err = {0};
        evmsg_map_t d = evmsg_data(ev->msg, &err);
        date_t day = date_from_unix_cst(ev->at / 1000);
        int rc = 0;
        if (s_is(ev->topic, "review."))
            rc = s_review(rv, name, agency, &d, day);
        else if (strcmp(name, "gap") == 0 || strcmp(name, "gap_closed") == 0)
            rc = s_gap(tx, name[3] == '_', agency, &d, day);
        if (rc < 0)
            src = -1;
        else if (rc > 0) {
            char why[256];
            evmsg_err_str(&err, why, sizeof why);
            log_error("event skipped", "topic=%s seq=%" PRIu64 " why=%s", ev->topic, ev->seq, why);
        }
    }
    if (src == 0)
        src = s_exec_many(tx, "st_review_many", rv, 5);
    for (int f = 0; f < 5; f++)
        pgarray_free(&rv[f]);
    return src;
}

int
events_handle_stats_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    return events_handle_stats(tx, ev, 1, arg);
}

int
events_shard_key(const bus_event_t *ev, void *arg, char *key, size_t keylen)
{
    (void)arg;
    size_t tlen = strlen(ev->topic);
    if (strncmp(ev->topic, "case.", 5) != 0 || tlen < EVMSG_AGENCY_LEN)
        return -1;
    evmsg_err_t err = {0};
    evmsg_map_t d = evmsg_data(ev->msg, &err);
    uint64_t id = 0;
    if (evmsg_map_uint(&d, "case_id", 0, INT64_MAX, &id) != 1)
        return -1;
    snprintf(key, keylen, "%s/%" PRIu64, ev->topic + tlen - EVMSG_AGENCY_LEN, id);
    return 0;
}

int
events_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    return events_handle(tx, ev, 1, arg);
}
