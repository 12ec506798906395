/* events: chain appends, AV checks and archives from intake's events (events.h). */
#include "events.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "av_rules.h"
#include "chain.h"
#include "log.h"
#include "pgarray.h"

const char *const recording_events_prefixes[] = {"case.", "inspection.", "registry.", NULL};

static char s_load[DB_STMT_NAME_MAX], s_ins[DB_STMT_NAME_MAX], s_up[DB_STMT_NAME_MAX],
    s_avput[DB_STMT_NAME_MAX], s_avget[DB_STMT_NAME_MAX], s_gopen[DB_STMT_NAME_MAX],
    s_gclose[DB_STMT_NAME_MAX], s_rej[DB_STMT_NAME_MAX];

/* Whether recording's outbox may still hold rows for the relay to sequence
 * (bus_emit_batch_ordered; recording is the stream's one producer). */
static bool s_relay_rows = true;

int
recording_events_prepare(db_t *db)
{
    if (db_prepare_in(db, RECORDING_SCHEMA, "ev_load",
                      /* One primary-key probe per case, whatever the statistics say: as
                       * case_id = ANY($1) the generic plan, made while rcase was young,
                       * scanned the whole table (36 ms a batch at 40,000 cases). */
                      "SELECT r.case_id, r.agency::text, r.case_no, r.matter_code, r.type, r.n,"
                      " r.head, r.stage, r.checked, r.av_mask, r.flags, r.closed_at"
                      " FROM (SELECT DISTINCT unnest($1::int8[]) AS id) k"
                      " CROSS JOIN LATERAL (SELECT * FROM {s}.rcase r0 WHERE r0.case_id = k.id"
                      " LIMIT 1) r",
                      1, s_load) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_entries",
                      "INSERT INTO {s}.entry (case_id, n, event, stage, classification, seq,"
                      " body, hash) SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[],"
                      " $4::text[], $5::text[], $6::int8[], $7::bytea[], $8::bytea[])",
                      8, s_ins) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_cases",
                      "INSERT INTO {s}.rcase (case_id, agency, case_no, matter_code, type, n,"
                      " head, stage, checked, av_mask, flags, closed_at)"
                      " SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[],"
                      " $5::text[], $6::int4[], $7::bytea[], $8::int4[], $9::int4[], $10::int4[],"
                      " $11::int4[], $12::int8[])"
                      " ON CONFLICT (case_id) DO UPDATE SET n = EXCLUDED.n, head = EXCLUDED.head,"
                      " stage = EXCLUDED.stage, checked = EXCLUDED.checked,"
                      " av_mask = EXCLUDED.av_mask, flags = EXCLUDED.flags,"
                      " closed_at = EXCLUDED.closed_at, updated_at = now()",
                      12, s_up) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_avput",
                      "INSERT INTO {s}.av_matter (agency, matter_code, stages, active, version)"
                      " VALUES ($1, $2, string_to_array($3, ','), $4::bool, $5::int4)"
                      " ON CONFLICT (agency, matter_code) DO UPDATE SET stages = EXCLUDED.stages,"
                      " active = EXCLUDED.active, version = EXCLUDED.version"
                      " WHERE av_matter.version < EXCLUDED.version",
                      5, s_avput) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_avget",
                      "SELECT array_to_string(stages, ',') FROM {s}.av_matter"
                      " WHERE agency = $1 AND matter_code = $2 AND active",
                      2, s_avget) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_gopen",
                      "INSERT INTO {s}.gap (case_id, agency, stage, rule, opened_at)"
                      " VALUES ($1::int8, $2, $3, $4, $5::int8) ON CONFLICT DO NOTHING",
                      5, s_gopen) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_gclose",
                      "UPDATE {s}.gap SET closed_at = $3::int8, closed_by = $4::int4"
                      " WHERE case_id = $1::int8 AND stage = $2 AND closed_at IS NULL"
                      " RETURNING rule",
                      4, s_gclose) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "ev_reject",
                      "INSERT INTO {s}.bus_rejected (stream, seq, topic, reason)"
                      " VALUES ($1, $2::int8, $3, $4) ON CONFLICT DO NOTHING",
                      4, s_rej) < 0 ||

        archive_prepare(db) < 0)
        return -1;
    return 0;
}

/* ---- The batch's state ------------------------------------------------------------ */

/* A case touched by the batch: loaded once, changed in memory, written back once. */
typedef struct {
    uint64_t case_id; /* 0 = free slot */
    char agency[EVMSG_AGENCY_LEN + 1];
    char case_no[CHAIN_STR_MAX + 1];
    char matter_code[CHAIN_STR_MAX + 1];
    char type[16];
    int n; /* entries so far */
    uint8_t head[CHAIN_HASH_LEN];
    int stage, checked, av_mask, flags;
    int64_t closed_at; /* -1 = open */
    int list_mask;     /* the AV matter list's stages; -1 = not looked up yet */
} s_case_t;

#define S_ENTRY_COLS 8
#define S_CASE_COLS  12

typedef struct {
    db_t *tx;
    const recording_t *app;
    s_case_t *cases; /* open addressing on case_id */
    size_t cap;
    pgarray_t ent[S_ENTRY_COLS];
    size_t nent;
    msgpack_sbuffer *ev; /* outgoing events' data */
    char (*topic)[EVMSG_TOPIC_MAX + 1];
    size_t nev, evcap;
} s_batch_t;

static s_case_t *
s_slot(s_batch_t *b, uint64_t case_id)
{
    size_t i = (size_t)(case_id * 0x9E3779B97F4A7C15ULL) & (b->cap - 1);
    while (b->cases[i].case_id && b->cases[i].case_id != case_id)
        i = (i + 1) & (b->cap - 1);
    return &b->cases[i];
}

static void
s_entries_begin(s_batch_t *b)
{
    static const uint32_t oids[S_ENTRY_COLS] = {PGARRAY_INT8,  PGARRAY_INT4, PGARRAY_TEXT,
                                                PGARRAY_TEXT,  PGARRAY_TEXT, PGARRAY_INT8,
                                                PGARRAY_BYTEA, PGARRAY_BYTEA};
    for (int k = 0; k < S_ENTRY_COLS; k++)
        pgarray_begin(&b->ent[k], oids[k]);
    b->nent = 0;
}

/* Writes the entries gathered so far. Returns 0 or -1. */
static int
s_entries_flush(s_batch_t *b)
{
    if (b->nent == 0)
        return 0;
    PGresult *r = pgarray_exec(b->tx, s_ins, b->ent, S_ENTRY_COLS, 0);
    if (!r)
        return -1;
    PQclear(r);
    s_entries_begin(b);
    return 0;
}

/* A new outgoing event's packer (data map packed by the caller), or NULL. */
static msgpack_sbuffer *
s_event(s_batch_t *b, const char *event, const char *agency)
{
    if (b->nev == b->evcap) {
        size_t cap = b->evcap ? 2 * b->evcap : 256;
        msgpack_sbuffer *ev = realloc(b->ev, cap * sizeof *ev);
        if (!ev)
            return NULL;
        b->ev = ev;
        char(*topic)[EVMSG_TOPIC_MAX + 1] = realloc(b->topic, cap * sizeof *topic);
        if (!topic)
            return NULL;
        b->topic = topic;
        b->evcap = cap;
    }
    snprintf(b->topic[b->nev], sizeof b->topic[0], "%s.%s", event, agency);
    msgpack_sbuffer_init(&b->ev[b->nev]);
    return &b->ev[b->nev++];
}

static void
s_kstr(msgpack_packer *pk, const char *k, const char *v)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
    if (!v) {
        msgpack_pack_nil(pk);
        return;
    }
    n = strlen(v);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v, n);
}

static void
s_kuint(msgpack_packer *pk, const char *k, uint64_t v)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
    msgpack_pack_uint64(pk, v);
}

static int
s_emit_gap(s_batch_t *b, const s_case_t *c, const char *event, int stage, const char *rule,
           int64_t at, uint64_t n)
{
    msgpack_sbuffer *sb = s_event(b, event, c->agency);
    if (!sb)
        return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n ? 7 : 6);
    s_kuint(&pk, "case_id", c->case_id);
    s_kstr(&pk, "case_no", c->case_no);
    s_kstr(&pk, "matter_code", c->matter_code);
    s_kstr(&pk, "stage", chain_stage_name(stage));
    s_kstr(&pk, "rule", rule);
    s_kuint(&pk, "at", at < 0 ? 0 : (uint64_t)at);
    if (n)
        s_kuint(&pk, "n", n);
    return 0;
}

/* The stages the AV matter list requires for the case's matter (cached per batch). */
static int
s_list_mask(s_batch_t *b, s_case_t *c)
{
    if (c->list_mask >= 0)
        return c->list_mask;
    const char *v[] = {c->agency, c->matter_code};
    PGresult *r = db_exec_prepared(b->tx, s_avget, 2, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int mask = 0;
    if (PQntuples(r) == 1) {
        char *list = PQgetvalue(r, 0, 0), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int s = chain_stage_parse(t);
            if (s >= 0)
                mask |= 1 << s;
        }
    }
    PQclear(r);
    return c->list_mask = mask;
}

/* The AV check of stage s of the case, at time at: opens a gap per rule broken. */
static int
s_check(s_batch_t *b, s_case_t *c, int s, int64_t at)
{
    if (c->av_mask & (1 << s))
        return 0;
    int list = s_list_mask(b, c);
    if (list < 0)
        return -1;
    const char *rules[AV_RULES_MAX];
    int nr = av_rules_required(s, (unsigned)list, (unsigned)c->flags, rules);
    for (int i = 0; i < nr; i++) {
        char id[24], ats[24];
        snprintf(id, sizeof id, "%" PRIu64, c->case_id);
        snprintf(ats, sizeof ats, "%" PRId64, at);
        const char *v[] = {id, c->agency, chain_stage_name(s), rules[i], ats};
        PGresult *r = db_exec_prepared(b->tx, s_gopen, 5, v, NULL, NULL, 0);
        if (!r)
            return -1;
        int opened = atoi(PQcmdTuples(r)) == 1;
        PQclear(r);
        if (opened && s_emit_gap(b, c, "record.gap", s, rules[i], at, 0) < 0)
            return -1;
    }
    return 0;
}

/* A late AV record of stage s (entry n) closes the stage's open gaps. */
static int
s_close_gaps(s_batch_t *b, s_case_t *c, int s, int64_t at, uint64_t n)
{
    char id[24], ats[24], ns[16];
    snprintf(id, sizeof id, "%" PRIu64, c->case_id);
    snprintf(ats, sizeof ats, "%" PRId64, at);
    snprintf(ns, sizeof ns, "%" PRIu64, n);
    const char *v[] = {id, chain_stage_name(s), ats, ns};
    PGresult *r = db_exec_prepared(b->tx, s_gclose, 4, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++)
        rc = s_emit_gap(b, c, "record.gap_closed", s, PQgetvalue(r, i, 0), at, n);
    PQclear(r);
    return rc;
}

/* registry.av_matter.<code>: keep the entry with the highest version. */
static int
s_av_matter(s_batch_t *b, const bus_event_t *ev)
{
    evmsg_err_t err = {0};
    evmsg_map_t d = evmsg_data(ev->msg, &err), entry;
    evmsg_array_t stages;
    char key[131] = "", agency[EVMSG_AGENCY_LEN + 1] = "", list[80] = "", ver[16];
    int64_t version = 0;
    bool active = true;
    evmsg_map_str(&d, "key", EVMSG_NONEMPTY, 130, key);
    evmsg_map_int(&d, "version", EVMSG_REQUIRED, 1, INT32_MAX, &version);
    evmsg_map_map(&d, "entry", EVMSG_REQUIRED, &entry);
    evmsg_map_array(&entry, "stages", EVMSG_REQUIRED, CHAIN_STAGES, &stages);
    evmsg_map_bool(&entry, "active", EVMSG_OPTIONAL, &active);
    for (size_t i = 0; i < evmsg_array_count(&stages); i++) {
        char st[24];
        if (evmsg_array_str_at(&stages, i, 0, sizeof st - 1, st) == 1) {
            if (chain_stage_parse(st) < 0) {
                snprintf(err.path, sizeof err.path, "data.entry.stages[%zu]", i);
                snprintf(err.reason, sizeof err.reason, "unknown stage");
                break;
            }
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", st);
        }
    }
    if (evmsg_topic_check(ev->topic, strlen(ev->topic), agency, &err) < 0 || err.reason[0]) {
        char why[300];
        const char *v[] = {RECORDING_SOURCE, NULL, ev->topic, evmsg_err_str(&err, why, sizeof why)};
        char seq[24];
        snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
        v[1] = seq;
        log_warn("av_matter event skipped", "seq=%" PRIu64 " error=%s", ev->seq, why);
        PGresult *r = db_exec_prepared(b->tx, s_rej, 4, v, NULL, NULL, 0);
        if (!r)
            return -1;
        PQclear(r);
        return 0;
    }
    snprintf(ver, sizeof ver, "%" PRId64, version);
    const char *v[] = {agency, key, list, active ? "true" : "false", ver};
    PGresult *r = db_exec_prepared(b->tx, s_avput, 5, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    for (size_t i = 0; i < b->cap; i++) /* the list changed: look it up again */
        b->cases[i].list_mask = -1;
    return 0;
}

static int
s_reject(s_batch_t *b, const bus_event_t *ev, const evmsg_err_t *err)
{
    char why[300], seq[24];
    evmsg_err_str(err, why, sizeof why);
    snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
    log_warn("case event not recorded", "seq=%" PRIu64 " topic=%s error=%s", ev->seq, ev->topic,
             why);
    const char *v[] = {RECORDING_SOURCE, seq, ev->topic, why};
    PGresult *r = db_exec_prepared(b->tx, s_rej, 4, v, NULL, NULL, 0);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Appends entry e (its n set here) to case c and emits record.appended. */
static int
s_append(s_batch_t *b, s_case_t *c, chain_entry_t *e)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    e->n = (uint64_t)++c->n;
    if (chain_encode(e, &body) < 0) {
        msgpack_sbuffer_destroy(&body);
        return -1;
    }
    chain_hash(c->head, body.data, body.size, c->head);
    pgarray_int8(&b->ent[0], (int64_t)c->case_id);
    pgarray_int4(&b->ent[1], (int32_t)e->n);
    pgarray_str(&b->ent[2], e->event);
    pgarray_str(&b->ent[3], chain_stage_name(e->stage));
    pgarray_str(&b->ent[4], e->has_record ? e->record.classification : NULL);
    pgarray_int8(&b->ent[5], (int64_t)e->seq);
    pgarray_elem(&b->ent[6], body.data, body.size);
    pgarray_elem(&b->ent[7], c->head, CHAIN_HASH_LEN);
    b->nent++;
    msgpack_sbuffer_destroy(&body);

    char hex[2 * CHAIN_HASH_LEN + 1];
    msgpack_sbuffer *sb = s_event(b, "record.appended", c->agency);
    if (!sb)
        return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    s_kuint(&pk, "case_id", c->case_id);
    s_kstr(&pk, "case_no", c->case_no);
    s_kuint(&pk, "n", e->n);
    s_kstr(&pk, "event", e->event);
    s_kstr(&pk, "stage", chain_stage_name(e->stage));
    s_kuint(&pk, "seq", e->seq);
    s_kstr(&pk, "head", chain_hex(c->head, hex));
    return 0;
}

/* One case event, in stream order. */
static int
s_case_event(s_batch_t *b, const bus_event_t *ev, chain_entry_t *e, const chain_facts_t *f)
{
    s_case_t *c = s_slot(b, e->case_id);
    if (!c->case_id) { /* first event of a case recording has not seen */
        memset(c, 0, sizeof *c);
        c->case_id = e->case_id;
        memcpy(c->agency, e->agency, sizeof c->agency);
        snprintf(c->case_no, sizeof c->case_no, "%s", e->case_no);
        snprintf(c->matter_code, sizeof c->matter_code, "%s", f->matter_code);
        snprintf(c->type, sizeof c->type, "%s", f->type);
        c->stage = CHAIN_STAGE_NONE;
        c->closed_at = -1;
        c->list_mask = -1;
    } else if (strcmp(c->agency, e->agency) != 0) {
        evmsg_err_t err = {"topic", "the case belongs to another agency"};
        return s_reject(b, ev, &err);
    }
    if (strcmp(e->event, "case.opened") == 0 && f->on_site && strcmp(f->type, "coercion") == 0)
        c->flags |= AV_F_ONSITE_COERCION;
    if (f->hearing)
        c->flags |= AV_F_HEARING;
    if (f->left_service)
        c->flags |= AV_F_LEFT_SERVICE;
    if (s_append(b, c, e) < 0)
        return -1;

    int64_t at = (int64_t)e->at;
    if (e->has_record && e->stage >= 0 && av_rules_is_av(e->record.kind)) {
        c->av_mask |= 1 << e->stage;
        if (e->stage < c->checked && s_close_gaps(b, c, e->stage, at, e->n) < 0)
            return -1;
    }
    if (e->stage > c->stage) {
        c->stage = e->stage;
        for (; c->checked < e->stage; c->checked++)
            if (s_check(b, c, c->checked, at) < 0)
                return -1;
    }
    if (strcmp(e->event, "case.closed") == 0) {
        for (; c->checked <= c->stage; c->checked++)
            if (s_check(b, c, c->checked, at) < 0)
                return -1;
        c->closed_at = at;
        char head[2 * CHAIN_HASH_LEN + 1], sig[2 * 64 + 1];
        if (s_entries_flush(b) < 0)
            return -1;
        int sealed = archive_seal(b->tx, b->app, c->case_id, c->agency, c->case_no, at, head, sig);
        if (sealed < 0)
            return -1;
        if (sealed) {
            msgpack_sbuffer *sb = s_event(b, "record.archived", c->agency);
            if (!sb)
                return -1;
            msgpack_packer pk;
            msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 6);
            s_kuint(&pk, "case_id", c->case_id);
            s_kstr(&pk, "case_no", c->case_no);
            s_kuint(&pk, "count", (uint64_t)c->n);
            s_kstr(&pk, "head", head);
            s_kuint(&pk, "closed_at", (uint64_t)at);
            s_kstr(&pk, "signature", sig);
        }
    }
    return 0;
}

/* Loads the cases the batch's entries name (one query). */
static int
s_load_cases(s_batch_t *b, const chain_entry_t *entries, const int *kinds, int n)
{
    pgarray_t ids = {0};
    pgarray_begin(&ids, PGARRAY_INT8);
    for (int i = 0; i < n; i++)
        if (kinds[i] == 1)
            pgarray_int8(&ids, (int64_t)entries[i].case_id);
    if (ids.count == 0) {
        pgarray_free(&ids);
        return 0;
    }
    PGresult *r = pgarray_exec(b->tx, s_load, &ids, 1, 0);
    pgarray_free(&ids);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        uint64_t id = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        s_case_t *c = s_slot(b, id);
        c->case_id = id;
        snprintf(c->agency, sizeof c->agency, "%s", PQgetvalue(r, i, 1));
        snprintf(c->case_no, sizeof c->case_no, "%s", PQgetvalue(r, i, 2));
        snprintf(c->matter_code, sizeof c->matter_code, "%s", PQgetvalue(r, i, 3));
        snprintf(c->type, sizeof c->type, "%s", PQgetvalue(r, i, 4));
        c->n = atoi(PQgetvalue(r, i, 5));
        const char *hx = PQgetvalue(r, i, 6); /* text form of bytea: \x + hex */
        size_t len = 0;
        if (strncmp(hx, "\\x", 2) != 0 ||
            sodium_hex2bin(c->head, CHAIN_HASH_LEN, hx + 2, strlen(hx + 2), NULL, &len, NULL) ||
            len != CHAIN_HASH_LEN) {
            log_error("rcase head unreadable", "case_id=%" PRIu64, id);
            PQclear(r);
            return -1;
        }
        c->stage = atoi(PQgetvalue(r, i, 7));
        c->checked = atoi(PQgetvalue(r, i, 8));
        c->av_mask = atoi(PQgetvalue(r, i, 9));
        c->flags = atoi(PQgetvalue(r, i, 10));
        c->closed_at = PQgetisnull(r, i, 11) ? -1 : strtoll(PQgetvalue(r, i, 11), NULL, 10);
        c->list_mask = -1;
    }
    PQclear(r);
    return 0;
}

/* Writes every touched case back (one statement). */
static int
s_store_cases(s_batch_t *b)
{
    static const uint32_t oids[S_CASE_COLS] = {
        PGARRAY_INT8,  PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT4,
        PGARRAY_BYTEA, PGARRAY_INT4, PGARRAY_INT4, PGARRAY_INT4, PGARRAY_INT4, PGARRAY_INT8};
    pgarray_t a[S_CASE_COLS] = {{0}};
    for (int k = 0; k < S_CASE_COLS; k++)
        pgarray_begin(&a[k], oids[k]);
    size_t count = 0;
    for (size_t i = 0; i < b->cap; i++) {
        const s_case_t *c = &b->cases[i];
        if (!c->case_id)
            continue;
        count++;
        pgarray_int8(&a[0], (int64_t)c->case_id);
        pgarray_str(&a[1], c->agency);
        pgarray_str(&a[2], c->case_no);
        pgarray_str(&a[3], c->matter_code);
        pgarray_str(&a[4], c->type);
        pgarray_int4(&a[5], c->n);
        pgarray_elem(&a[6], c->head, CHAIN_HASH_LEN);
        pgarray_int4(&a[7], c->stage);
        pgarray_int4(&a[8], c->checked);
        pgarray_int4(&a[9], c->av_mask);
        pgarray_int4(&a[10], c->flags);
        if (c->closed_at >= 0)
            pgarray_int8(&a[11], c->closed_at);
        else
            pgarray_null(&a[11]);
    }
    int rc = 0;
    if (count) {
        PGresult *r = pgarray_exec(b->tx, s_up, a, S_CASE_COLS, 0);
        rc = r ? 0 : -1;
        PQclear(r);
    }
    for (int k = 0; k < S_CASE_COLS; k++)
        pgarray_free(&a[k]);
    return rc;
}

/* Writes the batch's events into recording's outbox, with their seq (bus_emit_batch_seq:
 * the stream's head row is then held to the commit, which follows at once: only the
 * cursor's row is written after this) unless rows from before still wait for the relay
 * (bus_emit_batch_ordered). */
static int
s_emit_all(s_batch_t *b)
{
    if (b->nev == 0)
        return 0;
    bus_event_in_t in[BUS_BATCH_MAX];
    for (size_t i = 0; i < b->nev;) {
        size_t k = 0;
        for (; k < BUS_BATCH_MAX && i + k < b->nev; k++)
            in[k] = (bus_event_in_t){b->topic[i + k], RECORDING_EVENT_V, b->ev[i + k].data,
                                     b->ev[i + k].size};
        evmsg_err_t err = {0};
        int rc = bus_emit_batch_ordered(b->tx, RECORDING_SCHEMA, &s_relay_rows, in, k, &err);
        if (rc < 0) {
            char why[300];
            log_error("recording events not written", "error=%s",
                      err.reason[0] ? evmsg_err_str(&err, why, sizeof why) : db_error(b->tx));
            return -1;
        }
        i += k;
    }
    return 0;
}

int
recording_events_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    s_batch_t b = {.tx = tx, .app = arg};
    chain_entry_t *entries = calloc((size_t)n, sizeof *entries);
    chain_facts_t *facts = calloc((size_t)n, sizeof *facts);
    int *kinds = calloc((size_t)n, sizeof *kinds);
    for (b.cap = 64; b.cap < 2 * (size_t)n; b.cap *= 2)
        ;
    b.cases = calloc(b.cap, sizeof *b.cases);
    int rc = -1;
    if (!entries || !facts || !kinds || !b.cases)
        goto done;
    s_entries_begin(&b);

    /* Read every event first, so the cases are loaded in one query. */
    evmsg_err_t *errs = calloc((size_t)n, sizeof *errs);
    if (!errs)
        goto done;
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const void *bytes = evmsg_data_bytes(events[i].msg, &len);
        evmsg_map_t d = evmsg_data(events[i].msg, &errs[i]);
        kinds[i] = chain_entry_from_event(events[i].topic, events[i].seq, events[i].at, &d, bytes,
                                          len, &entries[i], &facts[i], &errs[i]);
    }
    rc = s_load_cases(&b, entries, kinds, n);
    for (int i = 0; i < n && rc == 0; i++) {
        if (kinds[i] == 1)
            rc = s_case_event(&b, &events[i], &entries[i], &facts[i]);
        else if (kinds[i] < 0)
            rc = s_reject(&b, &events[i], &errs[i]);
        else if (strncmp(events[i].topic, "registry.av_matter.", 19) == 0)
            rc = s_av_matter(&b, &events[i]);
    }
    free(errs);
    if (rc == 0)
        rc = s_entries_flush(&b);
    if (rc == 0)
        rc = s_store_cases(&b);
    if (rc == 0)
        rc = s_emit_all(&b);
    if (rc < 0)
        log_warn("recording batch failed", "events=%d error=%s", n, db_error(tx));

done:
    for (int k = 0; k < S_ENTRY_COLS; k++)
        pgarray_free(&b.ent[k]);
    for (size_t i = 0; i < b.nev; i++)
        msgpack_sbuffer_destroy(&b.ev[i]);
    free(b.ev);
    free(b.topic);
    free(b.cases);
    free(entries);
    free(facts);
    free(kinds);
    return rc;
}

int
recording_events_handle_one(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    return recording_events_handle(tx, ev, 1, arg);
}
