/* events: case and registry events in, publication events out. */
#include "events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jsonmp.h"
#include "log.h"
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
    rc |= db_prepare(db, "pub_party_put",
                     "INSERT INTO publication.party (agency, case_id, case_no, kind, name, "
                     "id_type, id_no, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                     "ON CONFLICT (agency, case_id) DO NOTHING",
                     8);
    rc |= db_prepare(db, "pub_party_get",
                     "SELECT p.kind, p.name, p.id_type, p.id_no, coalesce(p.summary, ''), "
                     "coalesce(a.name, '') FROM publication.party p LEFT JOIN "
                     "publication.agency a ON a.code = p.agency "
                     "WHERE p.agency = $1 AND p.case_id = $2",
                     2);
    rc |= db_prepare(db, "pub_record_put",
                     "INSERT INTO publication.record (agency, case_id, case_no, type, "
                     "decision_no, decision_date, party_name, party_uscc, body, due_on, "
                     "warn_on, due_uncovered, expires_on, state, repair_from) VALUES ($1, $2, $3, "
                     "$4, $5, $6, $7, nullif($8, ''), $9, $10, $11, $12, $13, $14, $15) "
                     "ON CONFLICT (agency, case_id) DO NOTHING RETURNING id",
                     15);
    rc |= db_prepare(db, "pub_record_withdraw",
                     "UPDATE publication.record SET state = 'withdrawn', withdrawn_kind = $3, "
                     "withdrawn_reason = $4, withdrawn_on = $5, withdrawn_at = now(), "
                     "version = version + 1 WHERE agency = $1 AND case_id = $2 "
                     "AND state <> 'withdrawn' "
                     "RETURNING id, case_no, type, decision_no, published_at IS NOT NULL",
                     5);
    /* 轻微 penalties are published only when the agency set it (publication.settings). */
    rc |= db_prepare(db, "pub_minor_on",
                     "SELECT coalesce((SELECT publish_minor FROM publication.agency_setting "
                     "WHERE agency = $1), false)",
                     1);
    /* Statistics facts (003_stats.sql): keyed by what makes each one fact, so a replayed
     * event inserts nothing. */
    rc |= db_prepare(db, "st_case_put",
                     "INSERT INTO publication.stat_case (agency, case_id, type, opened_on) "
                     "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                     4);
    rc |= db_prepare(db, "st_proposal_put",
                     "INSERT INTO publication.stat_proposal (agency, case_id, version, "
                     "proposed_on, requires_review) VALUES ($1, $2, $3, $4, $5) "
                     "ON CONFLICT DO NOTHING",
                     5);
    rc |= db_prepare(db, "st_deadline_put",
                     "INSERT INTO publication.stat_deadline (agency, case_id, deadline, on_day) "
                     "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                     4);
    return rc ? -1 : 0;
}

int
events_prepare_stats(db_t *db)
{
    int rc = 0;
    rc |= db_prepare(db, "st_review_put",
                     "INSERT INTO publication.stat_review (agency, case_id, proposal_version, "
                     "outcome, on_day) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
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
        rc = bus_emit_batch(tx, PUB_SCHEMA, &ev, 1, &err);
    }
    if (rc < 0)
        log_error("event not emitted", "topic=%s error=%s%s", topic, jerr.reason, err.reason);
    free(text);
    msgpack_sbuffer_destroy(&sb);
    return rc;
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

static int
s_opened(db_t *tx, const char *agency, evmsg_map_t *d, date_t day)
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
    char id[24], on[11];
    snprintf(id, sizeof id, "%" PRIu64, c.case_id);
    const char *v[] = {agency,        id,
                       c.case_no,     kinds[k],
                       c.party_name,  c.party_id_type,
                       c.party_id_no, summary[0] ? summary : NULL};
    PGresult *r = db_exec_prepared(tx, "pub_party_put", 8, v, NULL, NULL, 0);
    PQclear(r);
    if (!r)
        return -1;
    /* 统计: cases opened, by type. */
    const char *sv[] = {agency, id, c.type, date_format(opened_on, on)};
    r = db_exec_prepared(tx, "st_case_put", 4, sv, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

/* case.proposed: a proposal version, a review request unless review says not_required. */
static int
s_proposed(db_t *tx, const char *agency, evmsg_map_t *d, date_t day)
{
    uint64_t case_id = 0, version = 0;
    bool requires = false;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_uint(d, "version", 0, INT32_MAX, &version);
    evmsg_map_bool(d, "requires_review", EVMSG_OPTIONAL, &requires);
    if (d->err->reason[0])
        return 1;
    char id[24], ver[16], on[11];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    snprintf(ver, sizeof ver, "%" PRIu64, version);
    const char *v[] = {agency, id, ver, date_format(day, on), requires ? "true" : "false"};
    PGresult *r = db_exec_prepared(tx, "st_proposal_put", 5, v, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

/* case.deadline.overdue: a statutory case deadline missed (counted against the agency). */
static int
s_deadline_missed(db_t *tx, const char *agency, evmsg_map_t *d, date_t day)
{
    uint64_t case_id = 0;
    date_t deadline = 0;
    evmsg_map_uint(d, "case_id", 0, INT64_MAX, &case_id);
    evmsg_map_date(d, "deadline", 0, &deadline);
    if (d->err->reason[0])
        return 1;
    char id[24], dl[11], on[11];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *v[] = {agency, id, date_format(deadline, dl), date_format(day, on)};
    PGresult *r = db_exec_prepared(tx, "st_deadline_put", 4, v, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

static int s_party_load(db_t *tx, const char *agency, pub_case_t *c, char *why, size_t whylen);

/* Reads case.decided into c (the party from publication.party). Returns 0, 1 when the
 * event cannot be used (logged by the caller), -1 on a database failure. */
static int
s_decided_read(db_t *tx, const char *agency, evmsg_map_t *d, pub_case_t *c, char *why,
               size_t whylen)
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
    return s_party_load(tx, agency, c, why, whylen);
}

/* Reads inspection.resulted (双随机、一公开: the result of a random inspection is
 * published too) into c as a record of type inspection: the result date stands for the
 * decision date, the case number for the decision number. Returns as s_decided_read. */
static int
s_resulted_read(db_t *tx, const char *agency, evmsg_map_t *d, pub_case_t *c, char *why,
                size_t whylen)
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
    return s_party_load(tx, agency, c, why, whylen);
}

/* Fills c's party, summary and agency name from what case.opened and the registry left. */
static int
s_party_load(db_t *tx, const char *agency, pub_case_t *c, char *why, size_t whylen)
{
    if (!c->fine[0])
        snprintf(c->fine, sizeof c->fine, "0");
    if (!c->confiscation[0])
        snprintf(c->confiscation, sizeof c->confiscation, "0");
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, c->case_id);
    PGresult *r =
        db_exec_prepared(tx, "pub_party_get", 2, (const char *[]){agency, id}, NULL, NULL, 0);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(why, whylen, "no case.opened seen for case %s", id);
        return 1;
    }
    snprintf(c->party_kind, sizeof c->party_kind, "%s", PQgetvalue(r, 0, 0));
    snprintf(c->party_name, sizeof c->party_name, "%s", PQgetvalue(r, 0, 1));
    snprintf(c->party_id_type, sizeof c->party_id_type, "%s", PQgetvalue(r, 0, 2));
    snprintf(c->party_id_no, sizeof c->party_id_no, "%s", PQgetvalue(r, 0, 3));
    snprintf(c->summary, sizeof c->summary, "%s", PQgetvalue(r, 0, 4));
    snprintf(c->agency_name, sizeof c->agency_name, "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
    return 0;
}

static int
s_decided(db_t *tx, const publication_t *app, const char *agency, evmsg_map_t *d, bool result,
          char *why, size_t whylen)
{
    pub_case_t *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    int rc = result ? s_resulted_read(tx, agency, d, c, why, whylen)
                    : s_decided_read(tx, agency, d, c, why, whylen);
    date_t due, warn;
    bool uncovered = false;
    if (rc == 0 && workflow_due(app->cal, c->type, c->decision_date, &due, &warn, &uncovered) < 0) {
        snprintf(why, whylen, "deadline not computable");
        rc = 1;
    }
    json_t *body = rc == 0 ? records_public(c) : NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (rc == 0 && !text)
        rc = -1;
    if (rc == 0) {
        pub_party_t p;
        records_mask_party(c, &p);
        char id[24], dd[11], dueb[11], warnb[11], expb[11], repb[11];
        snprintf(id, sizeof id, "%" PRIu64, c->case_id);
        /* 信用修复管理办法 (in force 2026-04-01): penalty information is published for at
         * most 3 months (轻微), 1 year (一般), 3 years (严重); 轻微 is in principle not
         * published at all, so such a record is kept as exempt and never drafted. */
        bool penalty = strcmp(c->type, "penalty") == 0;
        bool exempt = penalty && strcmp(c->circumstance, "minor") == 0;
        if (exempt) {
            /* ... unless the agency set otherwise (publication.settings). */
            PGresult *m =
                db_exec_prepared(tx, "pub_minor_on", 1, (const char *[]){agency}, NULL, NULL, 0);
            if (!m)
                rc = -1;
            else if (PQgetvalue(m, 0, 0)[0] == 't')
                exempt = false;
            PQclear(m);
        }
        if (penalty) {
            date_format(sgs_publish_until(c->decision_date, c->circumstance), expb);
            date_format(sgs_repair_from(c->decision_date, c->circumstance), repb);
        }
        const char *v[] = {agency,
                           id,
                           c->case_no,
                           c->type,
                           c->decision_no,
                           date_format(c->decision_date, dd),
                           p.name,
                           p.uscc,
                           text,
                           date_format(due, dueb),
                           date_format(warn, warnb),
                           uncovered ? "true" : "false",
                           penalty ? expb : NULL,
                           exempt ? "exempt" : "draft",
                           penalty ? repb : NULL};
        PGresult *r = rc == 0 ? db_exec_prepared(tx, "pub_record_put", 15, v, NULL, NULL, 0) : NULL;
        if (!r)
            rc = -1;
        else if (PQntuples(r) == 1 && !exempt) {
            json_t *e = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s}", "record_id",
                                  (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "case_id",
                                  (json_int_t)c->case_id, "case_no", c->case_no, "type", c->type,
                                  "due_on", dueb, "warn_on", warnb);
            rc = e ? events_emit(tx, "drafted", agency, e) : -1;
            json_decref(e);
        }
        PQclear(r);
    }
    free(text);
    json_decref(body);
    free(c);
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

static bool
s_is(const char *topic, const char *prefix)
{
    return strncmp(topic, prefix, strlen(prefix)) == 0;
}

int
events_handle(db_t *tx, const bus_event_t *events, int n, void *arg)
{
    const publication_t *app = arg;
    for (int i = 0; i < n; i++) {
        const bus_event_t *ev = &events[i];
        evmsg_err_t err = {0};
        evmsg_map_t d = evmsg_data(ev->msg, &err);
        size_t tlen = strlen(ev->topic);
        if (tlen < EVMSG_AGENCY_LEN + 1)
            continue;
        const char *agency = ev->topic + tlen - EVMSG_AGENCY_LEN;
        char why[256] = "";
        int rc = 0;
        date_t day = date_from_unix_cst(ev->at / 1000);
        if (s_is(ev->topic, "registry.")) {
            /* registry.<list>.<agency>: every list goes to the agency page. */
            char list[32] = "";
            const char *l = ev->topic + 9;
            size_t llen = tlen - 9 - EVMSG_AGENCY_LEN - 1;
            if (tlen > 9 + EVMSG_AGENCY_LEN + 1 && llen < sizeof list)
                snprintf(list, sizeof list, "%.*s", (int)llen, l);
            rc = list[0] ? s_entry(tx, list, agency, ev) : 1;
            if (rc == 0 && (strcmp(list, "agency") == 0 || strcmp(list, "officer") == 0))
                rc = s_registry(tx, list, agency, &d);
        } else if (s_is(ev->topic, "case.opened."))
            rc = s_opened(tx, agency, &d, day);
        else if (s_is(ev->topic, "case.proposed."))
            rc = s_proposed(tx, agency, &d, day);
        else if (s_is(ev->topic, "case.deadline.overdue."))
            rc = s_deadline_missed(tx, agency, &d, day);
        else if (s_is(ev->topic, "case.decided."))
            rc = s_decided(tx, app, agency, &d, false, why, sizeof why);
        else if (s_is(ev->topic, "inspection.resulted."))
            rc = s_decided(tx, app, agency, &d, true, why, sizeof why);
        else if (s_is(ev->topic, "case.revoked."))
            rc = s_revoked(tx, agency, &d);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            if (!why[0])
                evmsg_err_str(&err, why, sizeof why);
            log_error("event skipped", "topic=%s seq=%" PRIu64 " why=%s", ev->topic, ev->seq, why);
        }
    }
    return 0;
}

/* review.<outcome>.<agency> -> stat_review. Returns 0, 1 (unusable or not counted), -1. */
static int
s_review(db_t *tx, const char *outcome, const char *agency, evmsg_map_t *d, date_t day)
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
    char id[24], ver[16], on[11];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    snprintf(ver, sizeof ver, "%" PRIu64, version);
    const char *v[] = {agency, id, ver, outcome, date_format(day, on)};
    PGresult *r = db_exec_prepared(tx, "st_review_put", 5, v, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
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
    for (int i = 0; i < n; i++) {
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
            rc = s_review(tx, name, agency, &d, day);
        else if (strcmp(name, "gap") == 0 || strcmp(name, "gap_closed") == 0)
            rc = s_gap(tx, name[3] == '_', agency, &d, day);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            char why[256];
            evmsg_err_str(&err, why, sizeof why);
            log_error("event skipped", "topic=%s seq=%" PRIu64 " why=%s", ev->topic, ev->seq, why);
        }
    }
    return 0;
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
