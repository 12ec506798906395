#include "decision_gate.h"
#include "pgarray.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_ops.h"

const char *const gate_circ_names[GATE_CIRC_COUNT + 1] = {"minor", "general", "serious", NULL};

/* Matching rules and the discretion band, per proposal, in input order. Amounts travel
 * as integers scaled 10^6 and are compared as numeric, exactly. */
static const char s_assess_sql[] =
    "SELECT p.i,"
    " (SELECT string_agg(r.id, E'\\x1f' ORDER BY r.id) FROM intake.review_rule r"
    "   WHERE r.agency = p.agency::char(18) AND r.active"
    "     AND (r.case_type IS NULL OR r.case_type = p.type)"
    "     AND (r.domain IS NULL OR r.domain = a.domain)"
    "     AND (r.level IS NULL OR r.level = a.level)"
    "     AND (r.amount_threshold IS NULL"
    "          OR (p.fine + p.confiscation)::numeric / 1000000 >= r.amount_threshold)"
    "     AND (r.hearing IS NULL OR r.hearing = p.hearing)"
    "     AND (r.major_public_interest IS NULL OR r.major_public_interest = p.mpi)"
    "     AND (r.social_risk IS NULL OR r.social_risk = p.risk)"
    "     AND (r.complex IS NULL OR r.complex = p.complex)),"
    " (d.fine_min * 1000000)::bigint, (d.fine_max * 1000000)::bigint"
    " FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::bool[], $6::bool[],"
    "             $7::bool[], $8::bool[], $9::text[], $10::text[])"
    "      WITH ORDINALITY AS p(agency, type, fine, confiscation, hearing, mpi, risk, complex,"
    "                           vcode, circ, i)"
    " LEFT JOIN intake.agency a ON a.code = p.agency::char(18)"
    " LEFT JOIN intake.discretion d ON d.agency = p.agency::char(18) AND d.active"
    "      AND d.violation_code = p.vcode AND d.circumstance = p.circ"
    " ORDER BY p.i";

static char *
s_join_deviation(const char *rules, size_t *nrules)
{
    size_t len = strlen(rules);
    char *out = malloc(len + sizeof GATE_RULE_DEVIATION + 1);
    if (!out)
        return NULL;
    if (len)
        snprintf(out, len + sizeof GATE_RULE_DEVIATION + 1, "%s\x1f%s", rules, GATE_RULE_DEVIATION);
    else
        snprintf(out, sizeof GATE_RULE_DEVIATION, "%s", GATE_RULE_DEVIATION);
    (*nrules)++;
    return out;
}

int
decision_gate_assess(db_t *db, gate_proposal_t *p, size_t n)
{
    enum { NA = 10 };
    pgarray_t a[NA];
    memset(a, 0, sizeof a);
    static const uint32_t oids[NA] = {PGARRAY_TEXT, PGARRAY_TEXT, PGARRAY_INT8, PGARRAY_INT8,
                                      PGARRAY_BOOL, PGARRAY_BOOL, PGARRAY_BOOL, PGARRAY_BOOL,
                                      PGARRAY_TEXT, PGARRAY_TEXT};
    for (int k = 0; k < NA; k++)
        pgarray_begin(&a[k], oids[k]);
    for (size_t i = 0; i < n; i++) {
        p[i].rules = NULL;
        pgarray_str(&a[0], p[i].agency);
        pgarray_str(&a[1], case_type_name(p[i].type));
        pgarray_int8(&a[2], p[i].fine);
        pgarray_int8(&a[3], p[i].confiscation);
        pgarray_bool(&a[4], p[i].hearing);
        pgarray_bool(&a[5], p[i].major_public_interest);
        pgarray_bool(&a[6], p[i].social_risk);
        pgarray_bool(&a[7], p[i].complex);
        if (p[i].violation_code && p[i].circumstance >= 0 && p[i].circumstance < GATE_CIRC_COUNT) {
            pgarray_text(&a[8], p[i].violation_code, p[i].violation_code_len);
            pgarray_str(&a[9], gate_circ_names[p[i].circumstance]);
        } else {
            pgarray_null(&a[8]);
            pgarray_null(&a[9]);
        }
    }
    int rc = -1, bad = 0;
    const char *values[NA];
    int lengths[NA], formats[NA];
    for (int k = 0; k < NA; k++) {
        bad |= pgarray_finish(&a[k]);
        values[k] = a[k].buf;
        lengths[k] = (int)a[k].len;
        formats[k] = 1;
    }
    PGresult *r = NULL;
    if (bad || db_prepare(db, "gate_assess", s_assess_sql, NA) < 0)
        goto done;
    r = db_exec_prepared(db, "gate_assess", NA, values, lengths, formats, 0);
    if (!r)
        goto done;
    if ((size_t)PQntuples(r) != n)
        goto done;
    for (size_t i = 0; i < n; i++) {
        gate_proposal_t *g = &p[i];
        const char *rules = PQgetisnull(r, (int)i, 1) ? "" : PQgetvalue(r, (int)i, 1);
        g->nrules = 0;
        if (rules[0]) {
            g->nrules = 1;
            for (const char *c = rules; *c; c++)
                g->nrules += *c == '\x1f';
        }
        g->band_found = !PQgetisnull(r, (int)i, 2) && !PQgetisnull(r, (int)i, 3);
        g->band_min = g->band_found ? strtoll(PQgetvalue(r, (int)i, 2), NULL, 10) : 0;
        g->band_max = g->band_found ? strtoll(PQgetvalue(r, (int)i, 3), NULL, 10) : 0;
        g->band = !g->band_found ? 0 : g->fine < g->band_min ? -1 : g->fine > g->band_max ? 1 : 0;
        if (g->band != 0 && g->deviation)
            g->rules = s_join_deviation(rules, &g->nrules);
        else
            g->rules = strdup(rules);
        if (!g->rules)
            goto done;
        g->requires_review = g->nrules > 0;
    }
    rc = 0;
done:
    PQclear(r);
    for (int k = 0; k < NA; k++)
        pgarray_free(&a[k]);
    if (rc < 0)
        decision_gate_clear(p, n);
    return rc;
}

void
decision_gate_clear(gate_proposal_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].rules);
        p[i].rules = NULL;
    }
}

/* The verdict on the exact version asked for, from the case's own agency only. Each key
 * is an index probe (LATERAL ... LIMIT 1) whatever the statistics say: as plain joins the
 * generic plan cached while the tables were young hashed sequential scans of both. */
static const char s_check_sql[] =
    "SELECT k.i, p.requires_review, v.verdict"
    " FROM unnest($1::int8[], $2::int4[], $3::text[]) WITH ORDINALITY AS k(case_id, version,"
    "                                                                     agency, i)"
    " LEFT JOIN LATERAL (SELECT p0.requires_review FROM intake.case_proposal p0"
    "                    WHERE p0.case_id = k.case_id AND p0.version = k.version LIMIT 1) p ON true"
    " LEFT JOIN LATERAL (SELECT v0.verdict FROM intake.review_verdict v0"
    "                    WHERE v0.case_id = k.case_id AND v0.proposal_version = k.version"
    "                    AND v0.agency = k.agency::char(18) LIMIT 1) v ON true"
    " ORDER BY k.i";

int
decision_gate_check(db_t *db, gate_check_t *c, size_t n)
{
    pgarray_t a[3];
    memset(a, 0, sizeof a);
    pgarray_begin(&a[0], PGARRAY_INT8);
    pgarray_begin(&a[1], PGARRAY_INT4);
    pgarray_begin(&a[2], PGARRAY_TEXT);
    for (size_t i = 0; i < n; i++) {
        pgarray_int8(&a[0], c[i].case_id);
        pgarray_int4(&a[1], c[i].version);
        pgarray_str(&a[2], c[i].agency);
    }
    int bad = pgarray_finish(&a[0]) | pgarray_finish(&a[1]) | pgarray_finish(&a[2]);
    int rc = -1;
    PGresult *r = NULL;
    if (bad || db_prepare(db, "gate_check", s_check_sql, 3) < 0)
        goto done;
    const char *values[3] = {a[0].buf, a[1].buf, a[2].buf};
    const int lengths[3] = {(int)a[0].len, (int)a[1].len, (int)a[2].len};
    const int formats[3] = {1, 1, 1};
    r = db_exec_prepared(db, "gate_check", 3, values, lengths, formats, 0);
    if (!r || (size_t)PQntuples(r) != n)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (PQgetisnull(r, (int)i, 1))
            c[i].verdict = GATE_NO_PROPOSAL;
        else if (strcmp(PQgetvalue(r, (int)i, 1), "t") != 0)
            c[i].verdict = GATE_NOT_REQUIRED;
        else if (PQgetisnull(r, (int)i, 2))
            c[i].verdict = GATE_PENDING;
        else if (strcmp(PQgetvalue(r, (int)i, 2), "approved") == 0)
            c[i].verdict = GATE_APPROVED;
        else
            c[i].verdict = GATE_RETURNED;
    }
    rc = 0;
done:
    PQclear(r);
    for (int k = 0; k < 3; k++)
        pgarray_free(&a[k]);
    return rc;
}

bool
decision_gate_allows(gate_verdict_t v)
{
    return v == GATE_NOT_REQUIRED || v == GATE_APPROVED;
}

const char *
decision_gate_refusal(gate_verdict_t v, int version, char *en, size_t en_size, char *zh,
                      size_t zh_size)
{
    switch (v) {
    case GATE_PENDING:
        snprintf(en, en_size,
                 "proposal version %d requires legal review and has no verdict yet; decide "
                 "after it is approved",
                 version);
        snprintf(zh, zh_size, "第%d版拟作决定须经法制审核，尚无审核结论，审核通过后方可作出决定",
                 version);
        return "review_pending";
    case GATE_RETURNED:
        snprintf(en, en_size,
                 "legal review returned proposal version %d; submit a new proposal "
                 "(case.propose) and have it approved",
                 version);
        snprintf(zh, zh_size,
                 "第%d版拟作决定未通过法制审核（已退回），须重新提交拟作决定并经审核通过", version);
        return "review_required";
    case GATE_NO_PROPOSAL:
        snprintf(en, en_size, "the case has no proposal version %d", version);
        snprintf(zh, zh_size, "案件没有第%d版拟作决定", version);
        return "no_proposal";
    case GATE_NOT_REQUIRED:
    case GATE_APPROVED:
        break;
    }
    if (en_size)
        en[0] = '\0';
    if (zh_size)
        zh[0] = '\0';
    return NULL;
}
