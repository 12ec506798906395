/* registry: the five lists (五个清单) and what they rest on, per agency.
 *
 * 嘉政办发〔2019〕56号 四(二) asks every enforcement agency for five lists:
 * 执法机构及其主要负责人清单 (agency), 行政执法事项清单 (matter), 随机抽查事项清单
 * (inspection_item), 音像记录事项清单 (av_matter, item 8), 重大执法决定法制审核目录清单
 * (review_rule, item 14); beside them the officers (执法人员) and the discretion standards
 * (自由裁量基准, item 16). Item 3 wants them public and adjusted as things change
 * (动态调整): every change is a new version, kept in registry_change and emitted as
 * registry.<list>.<agency>.
 *
 * Each list is a table described once below (s_list_t: its fields, limits and SQL); one
 * generic group-commit handler serves every registry.<list>.put, with one statement per
 * table per batch (text arrays in binary format through unnest). A put replaces the
 * whole entry; the caller names the version it replaces (0 = create), so two writers
 * never overwrite each other unseen. Contract: schemas/messages/intake/registry.md. */
#include "registry.h"
#include "pgarray.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "bus.h"
#include "ident.h"
#include "intake.h"
#include "log.h"

#define S_FIELDS_MAX  12 /* fields of a list, agency and version excluded */
#define S_KEYTEXT_MAX (2 * REGISTRY_KEY_MAX + 2)
#define S_DEC_MAX     INT64_C(999999999999999999) /* numeric(18, 6) */
#define S_VERSION_MAX 2147483646
#define S_GET_LIMIT   1000
#define S_GET_BUDGET  (RPC_RESULT_MAX - 2048) /* bytes of entries in one get reply */

/* ---- Lists ------------------------------------------------------------------------- */

typedef enum { K_STR, K_ENUM, K_INT, K_BOOL, K_DATE, K_DEC, K_STAGES } s_kind_t;

/* Field flags. */
#define F_OPT      0x1 /* may be absent or nil: dflt is stored (NULL dflt = SQL NULL, "any") */
#define F_NONEMPTY 0x2 /* strings: "" refused */
#define F_KEY      0x4 /* part of the entry's key: no blanks, no '/', at most 64 bytes */

static const char *const s_levels[] = {"province", "city", "district", "county", "township", NULL};
static const char *const s_types[] = {"licence", "penalty", "coercion", "inspection", "levy", NULL};
static const char *const s_units[] = {"workday", "day", NULL};
static const char *const s_circumstances[] = {"minor", "general", "serious", NULL};
static const char *const s_stages[] = {"start", "investigation", "review_decision",
                                       "service_execution", NULL};

typedef struct {
    const char *name;
    s_kind_t kind;
    int flags;
    int64_t max;              /* K_STR: bytes; K_INT: largest value */
    const char *const *names; /* K_ENUM: the names */
    const char *dflt;         /* F_OPT: text stored when absent (NULL: SQL NULL) */
} s_field_t;

typedef struct {
    const char *list;    /* "officer": registry_change.list, the topic's middle */
    const char *op;      /* "registry.officer.put" */
    const char *st_read; /* statement names */
    const char *st_write;
    const char *st_get;
    const s_field_t *fields; /* the entry's fields; the key fields come first */
    int nfields;
    int nkeys;             /* 0 (the agency list: the key is the code), 1 or 2 */
    bool has_active;       /* active=false retires the entry */
    const char *sql_read;  /* ($1 agency[], $2.. keys[]) -> i, agency exists, version,
                            * matter active (av_matter) */
    const char *sql_write; /* (agency[], fields[]..., version[], base[], by[]) upsert,
                            * RETURNING agency, keys */
    const char *sql_get;   /* a page: ($1 agency[, $2.. after keys, limit]) -> keys,
                            * fields as canonical text, version */
} s_list_t;

/* 执法机构及其主要负责人清单. The key is the agency's code itself. */
static const s_field_t s_agency_fields[] = {
    {"name", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"level", K_ENUM, 0, 0, s_levels, NULL},
    {"domain", K_STR, F_NONEMPTY, 100, NULL, NULL},
    {"head_name", K_STR, F_NONEMPTY, 100, NULL, NULL},
    {"head_title", K_STR, F_NONEMPTY, 100, NULL, NULL},
};

/* 执法人员 and their certificates (执法证). */
static const s_field_t s_officer_fields[] = {
    {"cert_no", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"name", K_STR, F_NONEMPTY, 100, NULL, NULL},
    {"valid_from", K_DATE, 0, 0, NULL, NULL},
    {"valid_to", K_DATE, 0, 0, NULL, NULL},
    {"area", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"legal_qualified", K_BOOL, F_OPT, 0, NULL, "f"},
    {"reviewer", K_BOOL, F_OPT, 0, NULL, "f"},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

/* 行政执法事项清单 (item 3: 名称、受理机构、审批机构、受理条件、办理时限、服务指南). */
static const s_field_t s_matter_fields[] = {
    {"code", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"name", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"type", K_ENUM, 0, 0, s_types, NULL},
    {"legal_basis", K_STR, F_NONEMPTY, 4000, NULL, NULL},
    {"accepting_body", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"approving_body", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"conditions", K_STR, 0, 4000, NULL, NULL},
    {"time_limit", K_INT, 0, 3650, NULL, NULL},
    {"time_limit_unit", K_ENUM, 0, 0, s_units, NULL},
    {"guide", K_STR, 0, 16000, NULL, NULL},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

/* 随机抽查事项清单 (双随机、一公开). */
static const s_field_t s_inspection_fields[] = {
    {"code", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"name", K_STR, F_NONEMPTY, 200, NULL, NULL},
    {"basis", K_STR, F_NONEMPTY, 4000, NULL, NULL},
    {"subjects", K_STR, F_NONEMPTY, 1000, NULL, NULL},
    {"method", K_STR, F_NONEMPTY, 1000, NULL, NULL},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

/* 音像记录事项清单 (item 8: which matters, which stages). */
static const s_field_t s_av_fields[] = {
    {"matter_code", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"stages", K_STAGES, 0, 0, s_stages, NULL},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

/* 重大执法决定法制审核目录清单 (item 14): absent criteria match anything. */
static const s_field_t s_review_fields[] = {
    {"id", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"description", K_STR, F_NONEMPTY, 1000, NULL, NULL},
    {"case_type", K_ENUM, F_OPT, 0, s_types, NULL},
    {"domain", K_STR, F_OPT | F_NONEMPTY, 100, NULL, NULL},
    {"level", K_ENUM, F_OPT, 0, s_levels, NULL},
    {"amount_threshold", K_DEC, F_OPT, 0, NULL, NULL},
    {"hearing", K_BOOL, F_OPT, 0, NULL, NULL},
    {"major_public_interest", K_BOOL, F_OPT, 0, NULL, NULL},
    {"social_risk", K_BOOL, F_OPT, 0, NULL, NULL},
    {"complex", K_BOOL, F_OPT, 0, NULL, NULL},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

/* 自由裁量基准 (item 16): the fine band per violation and circumstance. */
static const s_field_t s_discretion_fields[] = {
    {"violation_code", K_STR, F_KEY | F_NONEMPTY, REGISTRY_KEY_MAX, NULL, NULL},
    {"circumstance", K_ENUM, F_KEY, 0, s_circumstances, NULL},
    {"fine_min", K_DEC, 0, 0, NULL, NULL},
    {"fine_max", K_DEC, 0, 0, NULL, NULL},
    {"basis", K_STR, F_NONEMPTY, 4000, NULL, NULL},
    {"active", K_BOOL, F_OPT, 0, NULL, "t"},
};

#define S_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The common tail of the read statements: the agency's existence and the row's version. */
#define S_READ_HEAD(keys)                                                                          \
    "SELECT r.i, a.code IS NOT NULL, t.version, NULL::boolean FROM unnest($1::text[]" keys         \
    ") WITH ORDINALITY AS r"

static const s_list_t s_lists[] = {
    {"agency", "registry.agency.put", "reg_agency_read", "reg_agency_write", "reg_agency_get",
     s_agency_fields, S_N(s_agency_fields), 0, false,
     "SELECT r.i, true, t.version, NULL::boolean FROM unnest($1::text[]) WITH ORDINALITY AS "
     "r(agency, i) LEFT JOIN intake.agency t ON t.code = r.agency::char(18) ORDER BY r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) AS r(agency, name, level, "
     "domain, head_name, head_title, version, base, who))"
     " INSERT INTO intake.agency AS t (code, name, level, domain, head_name, head_title, "
     "version, updated_by)"
     " SELECT agency, name, level, domain, head_name, head_title, version::integer, who FROM r"
     " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level, "
     "domain = EXCLUDED.domain, head_name = EXCLUDED.head_name, head_title = "
     "EXCLUDED.head_title, version = EXCLUDED.version, updated_at = now(), updated_by = "
     "EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.code)"
     " RETURNING t.code",
     "SELECT code, name, level, domain, head_name, head_title, version FROM intake.agency "
     "WHERE code = $1"},
    {"officer", "registry.officer.put", "reg_officer_read", "reg_officer_write", "reg_officer_get",
     s_officer_fields, S_N(s_officer_fields), 1, true,
     S_READ_HEAD(", $2::text[]") "(agency, k1, i)"
                                 " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
                                 " LEFT JOIN intake.officer t ON t.agency = r.agency::char(18) AND "
                                 "t.cert_no "
                                 "= r.k1 ORDER BY r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
     "$12::text[]) AS r(agency, cert_no, name, valid_from, valid_to, area, legal_qualified, "
     "reviewer, active, version, base, who))"
     " INSERT INTO intake.officer AS t (agency, cert_no, name, valid_from, valid_to, area, "
     "legal_qualified, reviewer, active, version, updated_by)"
     " SELECT agency, cert_no, name, valid_from::date, valid_to::date, area, "
     "legal_qualified::boolean, reviewer::boolean, active::boolean, version::integer, who "
     "FROM r"
     " ON CONFLICT (agency, cert_no) DO UPDATE SET name = EXCLUDED.name, valid_from = "
     "EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to, area = EXCLUDED.area, "
     "legal_qualified = EXCLUDED.legal_qualified, reviewer = EXCLUDED.reviewer, active = "
     "EXCLUDED.active, version = EXCLUDED.version, updated_at = now(), updated_by = "
     "EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND "
     "r.cert_no = t.cert_no)"
     " RETURNING t.agency, t.cert_no",
     "SELECT cert_no, name, to_char(valid_from, 'YYYY-MM-DD'), to_char(valid_to, "
     "'YYYY-MM-DD'), area, legal_qualified, reviewer, active, version FROM intake.officer "
     "WHERE agency = $1 AND cert_no COLLATE \"C\" > $2 ORDER BY cert_no COLLATE \"C\" "
     "LIMIT $3::integer"},
    {"matter", "registry.matter.put", "reg_matter_read", "reg_matter_write", "reg_matter_get",
     s_matter_fields, S_N(s_matter_fields), 1, true,
     S_READ_HEAD(
         ", $2::text[]") "(agency, k1, i)"
                         " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
                         " LEFT JOIN intake.matter t ON t.agency = r.agency::char(18) AND t.code = "
                         "r.k1 ORDER BY r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
     "$12::text[], $13::text[], $14::text[], $15::text[]) AS r(agency, code, name, type, "
     "legal_basis, accepting_body, approving_body, conditions, time_limit, time_limit_unit, "
     "guide, active, version, base, who))"
     " INSERT INTO intake.matter AS t (agency, code, name, type, legal_basis, accepting_body, "
     "approving_body, conditions, time_limit, time_limit_unit, guide, active, version, "
     "updated_by)"
     " SELECT agency, code, name, type, legal_basis, accepting_body, approving_body, "
     "conditions, time_limit::integer, time_limit_unit, guide, active::boolean, "
     "version::integer, who FROM r"
     " ON CONFLICT (agency, code) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type, "
     "legal_basis = EXCLUDED.legal_basis, accepting_body = EXCLUDED.accepting_body, "
     "approving_body = EXCLUDED.approving_body, conditions = EXCLUDED.conditions, "
     "time_limit = EXCLUDED.time_limit, time_limit_unit = EXCLUDED.time_limit_unit, guide = "
     "EXCLUDED.guide, active = EXCLUDED.active, version = EXCLUDED.version, updated_at = "
     "now(), updated_by = EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND r.code "
     "= t.code)"
     " RETURNING t.agency, t.code",
     "SELECT code, name, type, legal_basis, accepting_body, approving_body, conditions, "
     "time_limit, time_limit_unit, guide, active, version FROM intake.matter WHERE agency = "
     "$1 AND code COLLATE \"C\" > $2 ORDER BY code COLLATE \"C\" LIMIT $3::integer"},
    {"inspection_item", "registry.inspection_item.put", "reg_insp_read", "reg_insp_write",
     "reg_insp_get", s_inspection_fields, S_N(s_inspection_fields), 1, true,
     S_READ_HEAD(
         ", $2::text[]") "(agency, k1, i)"
                         " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
                         " LEFT JOIN intake.inspection_item t ON t.agency = r.agency::char(18) AND "
                         "t.code = r.k1 ORDER BY "
                         "r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS r(agency, "
     "code, name, basis, subjects, method, active, version, base, who))"
     " INSERT INTO intake.inspection_item AS t (agency, code, name, basis, subjects, method, "
     "active, version, updated_by)"
     " SELECT agency, code, name, basis, subjects, method, active::boolean, version::integer, "
     "who FROM r"
     " ON CONFLICT (agency, code) DO UPDATE SET name = EXCLUDED.name, basis = EXCLUDED.basis, "
     "subjects = EXCLUDED.subjects, method = EXCLUDED.method, active = EXCLUDED.active, "
     "version = EXCLUDED.version, updated_at = now(), updated_by = EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND r.code "
     "= t.code)"
     " RETURNING t.agency, t.code",
     "SELECT code, name, basis, subjects, method, active, version FROM intake.inspection_item "
     "WHERE agency = $1 AND code COLLATE \"C\" > $2 ORDER BY code COLLATE \"C\" LIMIT "
     "$3::integer"},
    {"av_matter", "registry.av_matter.put", "reg_av_read", "reg_av_write", "reg_av_get",
     s_av_fields, S_N(s_av_fields), 1, true,
     "SELECT r.i, a.code IS NOT NULL, t.version, m.active FROM unnest($1::text[], "
     "$2::text[]) WITH ORDINALITY AS r(agency, k1, i)"
     " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
     " LEFT JOIN intake.matter m ON m.agency = r.agency::char(18) AND m.code = r.k1"
     " LEFT JOIN intake.av_matter t ON t.agency = r.agency::char(18) AND t.matter_code = r.k1 "
     "ORDER BY "
     "r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[]) AS r(agency, matter_code, stages, active, version, "
     "base, who))"
     " INSERT INTO intake.av_matter AS t (agency, matter_code, stages, active, version, "
     "updated_by)"
     " SELECT agency, matter_code, string_to_array(stages, ','), active::boolean, "
     "version::integer, who FROM r"
     " ON CONFLICT (agency, matter_code) DO UPDATE SET stages = EXCLUDED.stages, active = "
     "EXCLUDED.active, version = EXCLUDED.version, updated_at = now(), updated_by = "
     "EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND "
     "r.matter_code = t.matter_code)"
     " RETURNING t.agency, t.matter_code",
     "SELECT matter_code, array_to_string(stages, ','), active, version FROM intake.av_matter "
     "WHERE agency = $1 AND matter_code COLLATE \"C\" > $2 ORDER BY matter_code COLLATE \"C\" "
     "LIMIT $3::integer"},
    {"review_rule", "registry.review_rule.put", "reg_review_read", "reg_review_write",
     "reg_review_get", s_review_fields, S_N(s_review_fields), 1, true,
     S_READ_HEAD(", $2::text[]") "(agency, k1, i)"
                                 " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
                                 " LEFT JOIN intake.review_rule t ON t.agency = r.agency::char(18) "
                                 "AND t.id "
                                 "= r.k1 ORDER BY r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
     "$12::text[], $13::text[], $14::text[], $15::text[]) AS r(agency, id, description, "
     "case_type, domain, level, amount_threshold, hearing, major_public_interest, "
     "social_risk, complex, active, version, base, who))"
     " INSERT INTO intake.review_rule AS t (agency, id, description, case_type, domain, level, "
     "amount_threshold, hearing, major_public_interest, social_risk, complex, active, "
     "version, updated_by)"
     " SELECT agency, id, description, case_type, domain, level, amount_threshold::numeric, "
     "hearing::boolean, major_public_interest::boolean, social_risk::boolean, "
     "complex::boolean, active::boolean, version::integer, who FROM r"
     " ON CONFLICT (agency, id) DO UPDATE SET description = EXCLUDED.description, case_type = "
     "EXCLUDED.case_type, domain = EXCLUDED.domain, level = EXCLUDED.level, "
     "amount_threshold = EXCLUDED.amount_threshold, hearing = EXCLUDED.hearing, "
     "major_public_interest = EXCLUDED.major_public_interest, social_risk = "
     "EXCLUDED.social_risk, complex = EXCLUDED.complex, active = EXCLUDED.active, version = "
     "EXCLUDED.version, updated_at = now(), updated_by = EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND r.id = "
     "t.id)"
     " RETURNING t.agency, t.id",
     "SELECT id, description, case_type, domain, level, trim_scale(amount_threshold)::text, "
     "hearing, major_public_interest, social_risk, complex, active, version FROM "
     "intake.review_rule WHERE agency = $1 AND id COLLATE \"C\" > $2 ORDER BY id COLLATE "
     "\"C\" LIMIT $3::integer"},
    {"discretion", "registry.discretion.put", "reg_disc_read", "reg_disc_write", "reg_disc_get",
     s_discretion_fields, S_N(s_discretion_fields), 2, true,
     S_READ_HEAD(
         ", $2::text[], $3::text[]") "(agency, k1, k2, i)"
                                     " LEFT JOIN intake.agency a ON a.code = r.agency::char(18)"
                                     " LEFT JOIN intake.discretion t ON t.agency = "
                                     "r.agency AND t.violation_code = r.k1 AND "
                                     "t.circumstance = r.k2 ORDER BY r.i",
     "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS r(agency, "
     "violation_code, circumstance, fine_min, fine_max, basis, active, version, base, who))"
     " INSERT INTO intake.discretion AS t (agency, violation_code, circumstance, fine_min, "
     "fine_max, basis, active, version, updated_by)"
     " SELECT agency, violation_code, circumstance, fine_min::numeric, fine_max::numeric, "
     "basis, active::boolean, version::integer, who FROM r"
     " ON CONFLICT (agency, violation_code, circumstance) DO UPDATE SET fine_min = "
     "EXCLUDED.fine_min, fine_max = EXCLUDED.fine_max, basis = EXCLUDED.basis, active = "
     "EXCLUDED.active, version = EXCLUDED.version, updated_at = now(), updated_by = "
     "EXCLUDED.updated_by"
     " WHERE t.version = (SELECT r.base::integer FROM r WHERE r.agency = t.agency AND "
     "r.violation_code = t.violation_code AND r.circumstance = t.circumstance)"
     " RETURNING t.agency, t.violation_code, t.circumstance",
     "SELECT violation_code, circumstance, trim_scale(fine_min)::text, "
     "trim_scale(fine_max)::text, basis, active, version FROM intake.discretion WHERE agency = "
     "$1 AND (violation_code COLLATE \"C\", circumstance COLLATE \"C\") > ($2, $3) ORDER BY "
     "violation_code COLLATE \"C\", circumstance COLLATE \"C\" LIMIT $4::integer"},
};

#define S_NLISTS S_N(s_lists)

static const char s_sql_change[] =
    "INSERT INTO intake.registry_change (agency, list, key, version, action, body, by)"
    " SELECT agency, list, key, version::integer, action, body, who FROM unnest($1::text[], "
    "$2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[]) WITH ORDINALITY "
    "AS r(agency, list, key, version, action, body, who, i) ORDER BY i";

/* ---- Binary arrays ------------------------------------------------------------------
 * A one-dimensional array parameter in PostgreSQL's binary format: header (ndim 1,
 * has-null flag, element type, length, lower bound 1), then per element its length (-1
 * for NULL) and bytes. One such parameter per column sends a whole batch in one
 * round trip (DESIGN.md, "Speed"). */

/* Runs prepared statement name with the arrays as binary parameters, text results. */
static PGresult *
s_exec_arrays(db_t *db, const char *name, const char *sql, pgarray_t *arr, int n)
{
    if (db_prepare(db, name, sql, n) < 0)
        return NULL;
    PGresult *r = pgarray_exec(db, name, arr, n, 0);
    if (!r && db_error(db)[0] == '\0')
        log_error("registry: out of memory", "stmt=%s", name);
    return r;
}

/* ---- Values ------------------------------------------------------------------------ */

/* A field's value as canonical text: what is bound to SQL, packed into events, and read
 * back by registry.get (t/f for booleans, YYYY-MM-DD, decimals without trailing zeros,
 * stages joined by ','). */
typedef struct {
    bool null;
    const char *p; /* into the request or buf; not NUL-terminated */
    size_t len;
    char buf[64];
} s_val_t;

static void
s_val_text(s_val_t *v, const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof v->buf)
        n = sizeof v->buf - 1;
    memcpy(v->buf, s, n);
    v->buf[n] = '\0';
    v->p = v->buf;
    v->len = n;
    v->null = false;
}

/* "12.5" for 12500000 at scale 6: the shortest exact decimal. */
static void
s_dec_format(int64_t scaled, char *buf, size_t size)
{
    int64_t whole = scaled / 1000000, frac = scaled % 1000000;
    if (frac < 0)
        frac = -frac;
    if (frac == 0) {
        snprintf(buf, size, "%s%" PRId64, scaled < 0 && whole == 0 ? "-" : "", whole);
        return;
    }
    char f[8];
    snprintf(f, sizeof f, "%06" PRId64, frac);
    for (int i = 5; i > 0 && f[i] == '0'; i--)
        f[i] = '\0';
    snprintf(buf, size, "%s%" PRId64 ".%s", scaled < 0 && whole == 0 ? "-" : "", whole, f);
}

/* Packs value v of a field of kind into pk (nil for NULL). */
static void
s_pack_val(msgpack_packer *pk, s_kind_t kind, const s_val_t *v)
{
    if (v->null) {
        msgpack_pack_nil(pk);
        return;
    }
    switch (kind) {
    case K_INT: {
        char tmp[32];
        size_t n = v->len < sizeof tmp - 1 ? v->len : sizeof tmp - 1;
        memcpy(tmp, v->p, n);
        tmp[n] = '\0';
        msgpack_pack_int64(pk, strtoll(tmp, NULL, 10));
        break;
    }
    case K_BOOL:
        if (v->len > 0 && v->p[0] == 't')
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case K_STAGES: {
        size_t count = v->len ? 1 : 0;
        for (size_t i = 0; i < v->len; i++)
            count += v->p[i] == ',';
        msgpack_pack_array(pk, count);
        const char *s = v->p, *end = v->p + v->len;
        while (count-- > 0) {
            const char *c = memchr(s, ',', (size_t)(end - s));
            const char *e = c ? c : end;
            msgpack_pack_str_with_body(pk, s, (size_t)(e - s));
            s = e + 1;
        }
        break;
    }
    default:
        msgpack_pack_str_with_body(pk, v->p, v->len);
    }
}

static void
s_pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Packs an entry map {agency, <fields>...} of list L. */
static void
s_pack_entry(msgpack_packer *pk, const s_list_t *L, const char *agency, const s_val_t *vals)
{
    msgpack_pack_map(pk, (size_t)L->nfields + 1);
    s_pack_cstr(pk, "agency");
    s_pack_cstr(pk, agency);
    for (int f = 0; f < L->nfields; f++) {
        s_pack_cstr(pk, L->fields[f].name);
        s_pack_val(pk, L->fields[f].kind, &vals[f]);
    }
}

/* ---- Authorization ----------------------------------------------------------------- */

/* Who may touch agency's lists (intake.h): its own dept:<code>:system, any agency's for
 * the legal office (司法局, dept:<code>:legal_office), and for reads any svc:. Returns 0,
 * or -1 with the request failed `forbidden` (logged). */
static int
s_authorize(rpc_req_t *req, const char *agency, bool write)
{
    const char *who = rpc_req_identity(req), *own = rpc_req_agency(req);
    const char *role = strrchr(who, ':');
    role = role ? role + 1 : "";
    if (own && strcmp(role, "legal_office") == 0)
        return 0;
    if (own && strcmp(role, "system") == 0 && strcmp(own, agency) == 0)
        return 0;
    if (!write && strncmp(who, "svc:", 4) == 0)
        return 0;
    log_warn("registry: forbidden", "op=%s identity=%s agency=%s rid=%s", rpc_req_op(req), who,
             agency, rpc_req_rid(req));
    rpc_fail(req, "forbidden", "body.agency", "无权操作其他执法机构的清单",
             "this identity may not act on another agency's lists");
    return -1;
}

/* Reads body.agency: present, 18 characters with a valid check digit (GB 32100).
 * Returns 0 with the code in agency (19 bytes), or -1 with the request failed. */
static int
s_read_agency(rpc_req_t *req, const evmsg_map_t *body, evmsg_err_t *err, char *agency)
{
    if (evmsg_map_str(body, "agency", EVMSG_REQUIRED | EVMSG_NONEMPTY, EVMSG_AGENCY_LEN, agency) <
        0) {
        rpc_fail_evmsg(req, err);
        return -1;
    }
    ident_err_t ie;
    if (ident_uscc_check(agency, &ie) < 0) {
        char zh[192];
        snprintf(zh, sizeof zh, "统一社会信用代码无效：%s", ie.zh);
        rpc_fail(req, "bad_field", "body.agency", zh, ie.en);
        return -1;
    }
    return 0;
}

/* ---- Puts -------------------------------------------------------------------------- */

enum { P_BAD = 0, P_PENDING, P_OK };

/* One put of a batch. */
typedef struct {
    rpc_req_t *req;
    int state; /* P_BAD (answered), P_PENDING (valid), P_OK (accepted) */
    char agency[EVMSG_AGENCY_LEN + 1];
    char key[S_KEYTEXT_MAX + 1]; /* k1, or k1/k2; the agency list: the code */
    int64_t expect;              /* the version the caller replaces */
    int32_t version;             /* the version it makes */
    bool active;
    int slot; /* its distinct (agency, key) in the batch */
    s_val_t v[S_FIELDS_MAX];
} s_put_t;

/* A distinct (agency, key) of the batch: the rows are written once, with the last
 * accepted put's entry. */
typedef struct {
    const char *agency, *key; /* of the first put that named it */
    int32_t base;             /* version in the table before the batch (0: none) */
    int32_t cur;              /* after the puts accepted so far */
    int last;                 /* index of the last accepted put, -1 none */
    int first;                /* index of the first put, for the read's answers */
    bool agency_ok;           /* the agency is registered */
    int matter;               /* av_matter: 1 matter active, 0 retired, -1 absent */
} s_slot_t;

/* Refuses a key field holding blanks, control bytes or '/' (keys are joined by '/'
 * and appear in topics' data and logs). */
static int
s_key_check(rpc_req_t *req, const char *field, const s_val_t *v)
{
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char)v->p[i];
        if (c <= 0x20 || c == 0x7f || c == '/') {
            char path[96];
            snprintf(path, sizeof path, "body.%s", field);
            rpc_fail(req, "bad_field", path, "不得包含空白字符或“/”",
                     "must not contain blanks, control characters or '/'");
            return -1;
        }
    }
    return 0;
}

/* Reads one field into v. Returns 0, or -1 with the first error in err. */
static int
s_read_field(const evmsg_map_t *body, const s_field_t *f, s_val_t *v, evmsg_err_t *err)
{
    int flags = (f->flags & F_OPT) ? EVMSG_OPTIONAL : EVMSG_REQUIRED;
    if (f->flags & F_NONEMPTY)
        flags |= EVMSG_NONEMPTY;
    int rc = 0;
    v->null = false;
    switch (f->kind) {
    case K_STR:
        rc = evmsg_map_strp(body, f->name, flags, (size_t)f->max, &v->p, &v->len);
        break;
    case K_ENUM: {
        int idx;
        rc = evmsg_map_enum(body, f->name, flags, f->names, &idx);
        if (rc == 1)
            s_val_text(v, f->names[idx]);
        break;
    }
    case K_INT: {
        int64_t x;
        rc = evmsg_map_int(body, f->name, flags, 1, f->max, &x);
        if (rc == 1) {
            char t[24];
            snprintf(t, sizeof t, "%" PRId64, x);
            s_val_text(v, t);
        }
        break;
    }
    case K_BOOL: {
        bool b;
        rc = evmsg_map_bool(body, f->name, flags, &b);
        if (rc == 1)
            s_val_text(v, b ? "t" : "f");
        break;
    }
    case K_DATE: {
        date_t d;
        rc = evmsg_map_date(body, f->name, flags, &d);
        if (rc == 1) {
            char t[11];
            s_val_text(v, date_format(d, t));
        }
        break;
    }
    case K_DEC: {
        int64_t x;
        rc = evmsg_map_decimal(body, f->name, flags, 6, 0, S_DEC_MAX, &x);
        if (rc == 1) {
            char t[32];
            s_dec_format(x, t, sizeof t);
            s_val_text(v, t);
        }
        break;
    }
    case K_STAGES: {
        evmsg_array_t a;
        rc = evmsg_map_array(body, f->name, flags, 4, &a);
        if (rc != 1)
            break;
        size_t n = evmsg_array_count(&a);
        if (n == 0) {
            snprintf(err->path, sizeof err->path, "body.%s", f->name);
            snprintf(err->reason, sizeof err->reason, "empty");
            return -1;
        }
        int seen = 0;
        char joined[64] = "";
        for (size_t i = 0; i < n; i++) {
            char s[32];
            if (evmsg_array_str_at(&a, i, 0, 31, s) < 0)
                return -1;
            int idx = -1;
            for (int k = 0; f->names[k]; k++)
                if (strcmp(s, f->names[k]) == 0)
                    idx = k;
            if (idx < 0 || (seen & (1 << idx))) {
                snprintf(err->path, sizeof err->path, "body.%s[%zu]", f->name, i);
                snprintf(err->reason, sizeof err->reason, "%s",
                         idx < 0 ? "expected one of: start, investigation, review_decision, "
                                   "service_execution"
                                 : "duplicate stage");
                return -1;
            }
            seen |= 1 << idx;
        }
        /* Stored in the statute's order, whatever order they came in. */
        for (int k = 0; f->names[k]; k++)
            if (seen & (1 << k)) {
                if (joined[0])
                    strcat(joined, ",");
                strcat(joined, f->names[k]);
            }
        s_val_text(v, joined);
        break;
    }
    }
    if (rc < 0)
        return -1;
    if (rc == 0) { /* absent optional */
        if (f->dflt)
            s_val_text(v, f->dflt);
        else
            v->null = true;
    }
    return 0;
}

/* The rules across fields: a certificate's validity runs forward; a fine band's upper
 * bound is not below its lower. Returns 0, or -1 with the request failed. */
static int
s_cross_check(const s_list_t *L, s_put_t *p)
{
    if (strcmp(L->list, "officer") == 0) {
        /* valid_from and valid_to are YYYY-MM-DD: text order is date order. */
        if (memcmp(p->v[3].p, p->v[2].p, 10) < 0) {
            rpc_fail(p->req, "bad_field", "body.valid_to", "有效期截止日期早于起始日期",
                     "must not be before valid_from");
            return -1;
        }
    } else if (strcmp(L->list, "discretion") == 0) {
        int64_t lo = 0, hi = 0;
        evmsg_err_t e = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(p->req, &e);
        evmsg_map_decimal(&body, "fine_min", EVMSG_REQUIRED, 6, 0, S_DEC_MAX, &lo);
        evmsg_map_decimal(&body, "fine_max", EVMSG_REQUIRED, 6, 0, S_DEC_MAX, &hi);
        if (hi < lo) {
            rpc_fail(p->req, "bad_field", "body.fine_max", "罚款上限低于下限",
                     "must not be below fine_min");
            return -1;
        }
    }
    return 0;
}

/* Decodes, checks and authorizes one put. Returns 0 (p->state P_PENDING) or -1 (the
 * request answered, P_BAD). */
static int
s_decode_put(const s_list_t *L, s_put_t *p)
{
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(p->req, &err);
    const char *keys[S_FIELDS_MAX + 3];
    int nk = 0;
    keys[nk++] = "agency";
    keys[nk++] = "version";
    for (int f = 0; f < L->nfields; f++)
        keys[nk++] = L->fields[f].name;
    keys[nk] = NULL;
    if (evmsg_map_only(&body, keys) < 0) {
        rpc_fail_evmsg(p->req, &err);
        return -1;
    }
    if (s_read_agency(p->req, &body, &err, p->agency) < 0 ||
        s_authorize(p->req, p->agency, true) < 0)
        return -1;
    evmsg_map_int(&body, "version", EVMSG_REQUIRED, 0, S_VERSION_MAX - 1, &p->expect);
    for (int f = 0; f < L->nfields && !err.reason[0]; f++)
        s_read_field(&body, &L->fields[f], &p->v[f], &err);
    if (err.reason[0]) {
        rpc_fail_evmsg(p->req, &err);
        return -1;
    }
    for (int f = 0; f < L->nkeys; f++)
        if (s_key_check(p->req, L->fields[f].name, &p->v[f]) < 0)
            return -1;
    if (s_cross_check(L, p) < 0)
        return -1;
    if (L->nkeys == 0)
        snprintf(p->key, sizeof p->key, "%s", p->agency);
    else if (L->nkeys == 1)
        snprintf(p->key, sizeof p->key, "%.*s", (int)p->v[0].len, p->v[0].p);
    else
        snprintf(p->key, sizeof p->key, "%.*s/%.*s", (int)p->v[0].len, p->v[0].p, (int)p->v[1].len,
                 p->v[1].p);
    p->active = true;
    if (L->has_active) {
        const s_val_t *a = &p->v[L->nfields - 1]; /* active is every list's last field */
        p->active = a->len > 0 && a->p[0] == 't';
    }
    p->state = P_PENDING;
    return 0;
}

/* Reads, in one statement, whether each distinct key's agency exists, its row's
 * version, and (av_matter) its matter's state. Returns 0, or -1 when the database
 * failed. */
static int
s_read_slots(db_t *db, const s_list_t *L, const s_put_t *puts, s_slot_t *slots, int nslots)
{
    pgarray_t arr[3] = {{0}};
    int narr = 1 + L->nkeys, rc = -1;
    for (int a = 0; a < narr; a++)
        pgarray_begin(&arr[a], PGARRAY_TEXT);
    for (int s = 0; s < nslots; s++) {
        const s_put_t *p = &puts[slots[s].first];
        pgarray_str(&arr[0], p->agency);
        for (int k = 0; k < L->nkeys; k++)
            pgarray_elem(&arr[1 + k], p->v[k].p, p->v[k].len);
    }
    PGresult *r = s_exec_arrays(db, L->st_read, L->sql_read, arr, narr);
    if (!r)
        goto done;
    if (PQntuples(r) != nslots || PQnfields(r) != 4) {
        log_error("registry: unexpected read result", "list=%s rows=%d", L->list, PQntuples(r));
        PQclear(r);
        goto done;
    }
    for (int s = 0; s < nslots; s++) {
        slots[s].agency_ok = PQgetvalue(r, s, 1)[0] == 't';
        slots[s].base = PQgetisnull(r, s, 2) ? 0 : (int32_t)atol(PQgetvalue(r, s, 2));
        slots[s].cur = slots[s].base;
        slots[s].matter = PQgetisnull(r, s, 3) ? -1 : PQgetvalue(r, s, 3)[0] == 't';
    }
    PQclear(r);
    rc = 0;
done:
    for (int a = 0; a < narr; a++)
        pgarray_free(&arr[a]);
    return rc;
}

/* Decides each pending put in arrival order against its key's running version. */
static void
s_decide(const s_list_t *L, s_put_t *puts, size_t n, s_slot_t *slots)
{
    for (size_t i = 0; i < n; i++) {
        s_put_t *p = &puts[i];
        if (p->state != P_PENDING)
            continue;
        s_slot_t *s = &slots[p->slot];
        if (L->nkeys > 0 && !s->agency_ok) {
            rpc_fail(p->req, "unknown_agency", "body.agency",
                     "执法机构未登记：请先提交执法机构清单 (registry.agency.put)",
                     "the agency is not registered: put it with registry.agency.put first");
            p->state = P_BAD;
            continue;
        }
        /* 音像记录事项 must be matters of the agency's own list (item 8); a retired matter
         * may only have its AV entry retired too. */
        if (strcmp(L->list, "av_matter") == 0 && (s->matter < 0 || (s->matter == 0 && p->active))) {
            rpc_fail(p->req, "unknown_matter", "body.matter_code",
                     "该事项不在本机构有效的行政执法事项清单中",
                     "the matter is not in the agency's active matter list");
            p->state = P_BAD;
            continue;
        }
        if (p->expect != s->cur) {
            char zh[128], en[128];
            snprintf(zh, sizeof zh, "版本冲突：当前版本为 %" PRId32, s->cur);
            snprintf(en, sizeof en, "version conflict: the current version is %" PRId32, s->cur);
            rpc_fail(p->req, "version_conflict", "body.version", zh, en);
            p->state = P_BAD;
            continue;
        }
        p->version = ++s->cur;
        s->last = (int)i;
        p->state = P_OK;
    }
}

/* Writes the entry rows (one statement) and refuses, as version_conflict, the puts of
 * any key another transaction changed since s_read_slots. Returns 0 or -1 (database). */
static int
s_write_rows(db_t *db, const s_list_t *L, s_put_t *puts, s_slot_t *slots, int nslots)
{
    int ncols = 1 + L->nfields + 3, rc = -1, rows = 0;
    pgarray_t arr[S_FIELDS_MAX + 4] = {{0}};
    for (int a = 0; a < ncols; a++)
        pgarray_begin(&arr[a], PGARRAY_TEXT);
    for (int s = 0; s < nslots; s++) {
        if (slots[s].last < 0)
            continue;
        const s_put_t *p = &puts[slots[s].last];
        char ver[16], base[16];
        snprintf(ver, sizeof ver, "%" PRId32, slots[s].cur);
        snprintf(base, sizeof base, "%" PRId32, slots[s].base);
        pgarray_str(&arr[0], p->agency);
        for (int f = 0; f < L->nfields; f++)
            pgarray_elem(&arr[1 + f], p->v[f].null ? NULL : p->v[f].p, p->v[f].len);
        pgarray_str(&arr[1 + L->nfields], ver);
        pgarray_str(&arr[2 + L->nfields], base);
        pgarray_str(&arr[3 + L->nfields], rpc_req_identity(p->req));
        rows++;
    }
    if (rows == 0) {
        rc = 0;
        goto done;
    }
    PGresult *r = s_exec_arrays(db, L->st_write, L->sql_write, arr, ncols);
    if (!r)
        goto done;
    /* A key missing from RETURNING lost a race with another writer. */
    bool *written = calloc((size_t)nslots, sizeof *written);
    if (!written) {
        PQclear(r);
        goto done;
    }
    for (int t = 0; t < PQntuples(r); t++) {
        char key[S_KEYTEXT_MAX + 1];
        if (L->nkeys == 0)
            snprintf(key, sizeof key, "%s", PQgetvalue(r, t, 0));
        else if (L->nkeys == 1)
            snprintf(key, sizeof key, "%s", PQgetvalue(r, t, 1));
        else
            snprintf(key, sizeof key, "%s/%s", PQgetvalue(r, t, 1), PQgetvalue(r, t, 2));
        const char *agency = PQgetvalue(r, t, 0);
        for (int s = 0; s < nslots; s++)
            if (strcmp(slots[s].key, key) == 0 && strcmp(slots[s].agency, agency) == 0)
                written[s] = true;
    }
    PQclear(r);
    for (int s = 0; s < nslots; s++) {
        if (slots[s].last < 0 || written[s])
            continue;
        for (int i = slots[s].first; i <= slots[s].last; i++) {
            if (puts[i].slot != s || puts[i].state != P_OK)
                continue;
            rpc_fail(puts[i].req, "version_conflict", "body.version",
                     "版本冲突：该条目刚被另一请求修改，请读取后重试",
                     "version conflict: the entry was changed concurrently; read it and retry");
            puts[i].state = P_BAD;
        }
    }
    free(written);
    rc = 0;
done:
    for (int a = 0; a < ncols; a++)
        pgarray_free(&arr[a]);
    return rc;
}

/* The accepted puts into registry_change (one statement) and their events into the
 * outbox (bus_emit_batch_seq: sequenced as written, so that the events of one turn keep
 * its order, with the case ops' events); then their replies. Returns 0 or -1 (database). */
static int
s_record(db_t *db, const s_list_t *L, s_put_t *puts, size_t n)
{
    pgarray_t arr[7] = {{0}};
    msgpack_sbuffer *events = calloc(n, sizeof *events);
    bus_event_in_t *ev = calloc(n, sizeof *ev);
    char(*topics)[EVMSG_TOPIC_MAX + 1] = calloc(n, sizeof *topics);
    int rc = -1;
    size_t ne = 0;
    if (!events || !ev || !topics)
        goto done;
    for (int a = 0; a < 7; a++)
        pgarray_begin(&arr[a], a == 5 ? PGARRAY_BYTEA : PGARRAY_TEXT);
    for (size_t i = 0; i < n; i++) {
        s_put_t *p = &puts[i];
        if (p->state != P_OK)
            continue;
        const char *action = p->active ? "put" : "retire";
        char ver[16];
        snprintf(ver, sizeof ver, "%" PRId32, p->version);
        /* The body as submitted, re-encoded from its decoded form (same keys, order and
         * values; rpc keeps the payload's SHA-256 under the rid). */
        evmsg_err_t e = {{0}, {0}};
        evmsg_map_t body = rpc_req_body(p->req, &e);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *body.obj);
        pgarray_str(&arr[0], p->agency);
        pgarray_str(&arr[1], L->list);
        pgarray_str(&arr[2], p->key);
        pgarray_str(&arr[3], ver);
        pgarray_str(&arr[4], action);
        pgarray_elem(&arr[5], sb.data ? sb.data : "", sb.size);
        pgarray_str(&arr[6], rpc_req_identity(p->req));
        msgpack_sbuffer_destroy(&sb);

        /* registry.<list>.<agency> {action, key, version, entry} */
        msgpack_sbuffer_init(&events[ne]);
        msgpack_packer_init(&pk, &events[ne], msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        s_pack_cstr(&pk, "action");
        s_pack_cstr(&pk, action);
        s_pack_cstr(&pk, "key");
        s_pack_cstr(&pk, p->key);
        s_pack_cstr(&pk, "version");
        msgpack_pack_int32(&pk, p->version);
        s_pack_cstr(&pk, "entry");
        s_pack_entry(&pk, L, p->agency, p->v);
        snprintf(topics[ne], sizeof topics[ne], "registry.%s.%s", L->list, p->agency);
        ev[ne] = (bus_event_in_t){topics[ne], INTAKE_EVENT_V, events[ne].data, events[ne].size};
        ne++;
    }
    if (ne == 0) {
        rc = 0;
        goto done;
    }
    PGresult *r = s_exec_arrays(db, "reg_change", s_sql_change, arr, 7);
    if (!r)
        goto done;
    PQclear(r);
    evmsg_err_t err = {{0}, {0}};
    if (bus_emit_batch_seq(db, INTAKE_SCHEMA, ev, ne, &err) < 0) {
        if (err.reason[0]) {
            char why[256];
            log_error("registry: event refused", "list=%s reason=%s", L->list,
                      evmsg_err_str(&err, why, sizeof why));
        }
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        s_put_t *p = &puts[i];
        if (p->state != P_OK)
            continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        s_pack_cstr(&pk, "list");
        s_pack_cstr(&pk, L->list);
        s_pack_cstr(&pk, "key");
        s_pack_cstr(&pk, p->key);
        s_pack_cstr(&pk, "version");
        msgpack_pack_int32(&pk, p->version);
        s_pack_cstr(&pk, "action");
        s_pack_cstr(&pk, p->active ? "put" : "retire");
        rpc_ok(p->req, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    rc = 0;
done:
    for (int a = 0; a < 7; a++)
        pgarray_free(&arr[a]);
    if (events)
        for (size_t i = 0; i < ne; i++)
            msgpack_sbuffer_destroy(&events[i]);
    free(events);
    free(ev);
    free(topics);
    return rc;
}

/* registry.<list>.put, for a run of n requests (arg: the s_list_t). */
static int
s_put(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    const s_list_t *L = arg;
    s_put_t *puts = calloc(n, sizeof *puts);
    s_slot_t *slots = calloc(n, sizeof *slots);
    int rc = -1, nslots = 0;
    if (!puts || !slots) {
        log_error("registry: out of memory", "op=%s n=%zu", L->op, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        puts[i].req = reqs[i];
        if (s_decode_put(L, &puts[i]) < 0)
            continue;
        int s = 0;
        while (s < nslots &&
               (strcmp(slots[s].key, puts[i].key) != 0 || strcmp(slots[s].agency, puts[i].agency)))
            s++;
        if (s == nslots)
            slots[nslots++] = (s_slot_t){puts[i].agency, puts[i].key, 0, 0, -1, (int)i, false, -1};
        puts[i].slot = s;
    }
    if (nslots == 0) {
        rc = 0;
        goto done;
    }
    if (s_read_slots(db, L, puts, slots, nslots) < 0)
        goto done;
    s_decide(L, puts, n, slots);
    if (s_write_rows(db, L, puts, slots, nslots) < 0 || s_record(db, L, puts, n) < 0)
        goto done;
    rc = 0;
done:
    free(puts);
    free(slots);
    return rc;
}

/* ---- registry.get ------------------------------------------------------------------ */

/* Packs one page of list L from `after` (k1, k2) into entries, adding at most *room
 * entries and keeping the packed size under S_GET_BUDGET. Sets *full when it stopped for
 * lack of room; last_key gets the key of the last entry packed. Returns the number packed,
 * or -1 when the database failed. */
static int
s_get_list(db_t *db, const s_list_t *L, const char *agency, const char *k1, const char *k2,
           msgpack_sbuffer *entries, int *room, bool *full, char *last_key)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", *room + 1);
    const char *params[4] = {agency, k1, k2, lim};
    int np = 1;
    if (L->nkeys == 1) {
        params[2] = lim;
        np = 3;
    } else if (L->nkeys == 2) {
        np = 4;
    }
    if (db_prepare(db, L->st_get, L->sql_get, np) < 0)
        return -1;
    PGresult *r = db_exec_prepared(db, L->st_get, np, params, NULL, NULL, 0);
    if (!r)
        return -1;
    int packed = 0, nf = L->nfields, ncol = PQnfields(r);
    for (int t = 0; t < PQntuples(r); t++) {
        if (*room == 0) {
            *full = true;
            break;
        }
        s_val_t v[S_FIELDS_MAX];
        int kcol = L->nkeys == 0 ? 1 : 0; /* agency: column 0 is the code, not a field */
        for (int f = 0; f < nf; f++) {
            v[f].null = PQgetisnull(r, t, kcol + f);
            v[f].p = PQgetvalue(r, t, kcol + f);
            v[f].len = (size_t)PQgetlength(r, t, kcol + f);
        }
        char key[S_KEYTEXT_MAX + 1];
        if (L->nkeys == 0)
            snprintf(key, sizeof key, "%s", agency);
        else if (L->nkeys == 1)
            snprintf(key, sizeof key, "%s", PQgetvalue(r, t, 0));
        else
            snprintf(key, sizeof key, "%s/%s", PQgetvalue(r, t, 0), PQgetvalue(r, t, 1));
        msgpack_sbuffer one;
        msgpack_sbuffer_init(&one);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &one, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        s_pack_cstr(&pk, "list");
        s_pack_cstr(&pk, L->list);
        s_pack_cstr(&pk, "key");
        s_pack_cstr(&pk, key);
        s_pack_cstr(&pk, "version");
        msgpack_pack_int64(&pk, atoll(PQgetvalue(r, t, ncol - 1)));
        s_pack_cstr(&pk, "entry");
        s_pack_entry(&pk, L, agency, v);
        bool fits = entries->size + one.size <= S_GET_BUDGET;
        if (fits)
            msgpack_sbuffer_write(entries, one.data, one.size);
        msgpack_sbuffer_destroy(&one);
        if (!fits) {
            *full = true;
            break;
        }
        snprintf(last_key, S_KEYTEXT_MAX + 1, "%s", key);
        (*room)--;
        packed++;
    }
    PQclear(r);
    return packed;
}

/* One registry.get: answers req, or returns -1 when the database failed. */
static int
s_get_one(db_t *db, rpc_req_t *req)
{
    static const char *const keys[] = {"agency", "list", "after", "limit", NULL};
    static const char *const lists[] = {"agency",    "officer",     "matter",     "inspection_item",
                                        "av_matter", "review_rule", "discretion", NULL};
    static const char *const after_keys[] = {"list", "key", NULL};
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t body = rpc_req_body(req, &err), after;
    char agency[EVMSG_AGENCY_LEN + 1];
    if (evmsg_map_only(&body, keys) < 0) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    if (s_read_agency(req, &body, &err, agency) < 0 || s_authorize(req, agency, false) < 0)
        return 0;
    int only = -1, from = 0;
    int64_t limit = S_GET_LIMIT;
    char akey[S_KEYTEXT_MAX + 1] = "";
    evmsg_map_enum(&body, "list", EVMSG_OPTIONAL, lists, &only);
    evmsg_map_map(&body, "after", EVMSG_OPTIONAL, &after);
    evmsg_map_only(&after, after_keys);
    evmsg_map_enum(&after, "list", EVMSG_REQUIRED, lists, &from);
    evmsg_map_str(&after, "key", EVMSG_REQUIRED, S_KEYTEXT_MAX, akey);
    evmsg_map_int(&body, "limit", EVMSG_OPTIONAL, 1, S_GET_LIMIT, &limit);
    if (err.reason[0]) {
        rpc_fail_evmsg(req, &err);
        return 0;
    }
    bool has_after = evmsg_map_count(&after) > 0;
    if (only >= 0 && has_after && from != only) {
        rpc_fail(req, "bad_field", "body.after.list", "分页游标与所请求的清单不一致",
                 "the cursor is for another list");
        return 0;
    }
    if (only >= 0 && !has_after)
        from = only;

    PGresult *r = db_query(db, "SELECT 1 FROM intake.agency WHERE code = $1", 1,
                           (const char *const[]){agency});
    if (!r)
        return -1;
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    if (!exists) {
        rpc_fail(req, "unknown_agency", "body.agency", "执法机构未登记",
                 "the agency is not registered");
        return 0;
    }

    msgpack_sbuffer entries;
    msgpack_sbuffer_init(&entries);
    int room = (int)limit, count = 0;
    bool full = false;
    char last_key[S_KEYTEXT_MAX + 1] = "";
    const char *last_list = NULL;
    int end = only >= 0 ? only + 1 : S_NLISTS;
    for (int li = from; li < end && !full && room > 0; li++) {
        const s_list_t *L = &s_lists[li];
        char k1[S_KEYTEXT_MAX + 1] = "", k2[S_KEYTEXT_MAX + 1] = "";
        if (has_after && li == from) {
            if (L->nkeys == 0)
                continue; /* the agency entry was in an earlier page */
            snprintf(k1, sizeof k1, "%s", akey);
            char *slash = L->nkeys == 2 ? strrchr(k1, '/') : NULL;
            if (slash) {
                *slash = '\0';
                snprintf(k2, sizeof k2, "%s", slash + 1);
            }
        }
        int got = s_get_list(db, L, agency, k1, k2, &entries, &room, &full, last_key);
        if (got < 0) {
            msgpack_sbuffer_destroy(&entries);
            return -1;
        }
        if (got > 0)
            last_list = L->list;
        count += got;
        if (!full && room == 0 && li + 1 < end)
            full = true; /* the limit was reached: later lists may have more */
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    s_pack_cstr(&pk, "agency");
    s_pack_cstr(&pk, agency);
    s_pack_cstr(&pk, "entries");
    msgpack_pack_array(&pk, (size_t)count);
    if (entries.size)
        msgpack_sbuffer_write(&sb, entries.data, entries.size);
    s_pack_cstr(&pk, "next");
    if (full && last_list) {
        msgpack_pack_map(&pk, 2);
        s_pack_cstr(&pk, "list");
        s_pack_cstr(&pk, last_list);
        s_pack_cstr(&pk, "key");
        s_pack_cstr(&pk, last_key);
    } else {
        msgpack_pack_nil(&pk);
    }
    rpc_ok(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&entries);
    return 0;
}

static int
s_get(db_t *db, rpc_req_t *const *reqs, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++)
        if (s_get_one(db, reqs[i]) < 0)
            return -1;
    return 0;
}

/* ---- Registration ------------------------------------------------------------------ */

int
registry_register(rpc_server_t *rpc, intake_t *app)
{
    (void)app;
    for (int i = 0; i < S_NLISTS; i++) {
        rpc_op_t op = {s_lists[i].op, RPC_WRITE, "dept:*:system dept:*:legal_office", s_put,
                       (void *)&s_lists[i]};
        if (rpc_register(rpc, &op) < 0)
            return -1;
    }
    rpc_op_t get = {"registry.get", RPC_READ, "dept:*:system dept:*:legal_office svc:", s_get,
                    NULL};
    return rpc_register(rpc, &get);
}

/* ---- Read helpers (registry.h) ----------------------------------------------------- */

int
registry_matter_get(db_t *db, const char *agency, const char *code, registry_matter_t *out)
{
    if (db_prepare(db, "reg_h_matter",
                   "SELECT m.type, m.time_limit, m.time_limit_unit = 'workday',"
                   " CASE WHEN v.active THEN array_to_string(v.stages, ',') ELSE '' END"
                   " FROM intake.matter m LEFT JOIN intake.av_matter v"
                   " ON v.agency = m.agency AND v.matter_code = m.code"
                   " WHERE m.agency = $1 AND m.code = $2 AND m.active",
                   2) < 0)
        return -1;
    PGresult *r =
        db_exec_prepared(db, "reg_h_matter", 2, (const char *[]){agency, code}, NULL, NULL, 0);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found) {
        snprintf(out->type, sizeof out->type, "%s", PQgetvalue(r, 0, 0));
        out->time_limit = atoi(PQgetvalue(r, 0, 1));
        out->workdays = PQgetvalue(r, 0, 2)[0] == 't';
        out->av_stages = 0;
        const char *st = PQgetisnull(r, 0, 3) ? "" : PQgetvalue(r, 0, 3);
        for (int k = 0; s_stages[k]; k++) {
            size_t len = strlen(s_stages[k]);
            for (const char *s = st; (s = strstr(s, s_stages[k])) != NULL; s += len)
                if ((s == st || s[-1] == ',') && (s[len] == ',' || s[len] == '\0'))
                    out->av_stages |= 1 << k;
        }
    }
    PQclear(r);
    return found;
}

int
registry_officers_valid(db_t *db, const char *agency, const char *const cert_nos[], size_t n,
                        date_t on, bool valid[])
{
    if (n > 64)
        return -1;
    if (n == 0)
        return 0;
    pgarray_t arr = {0};
    pgarray_begin(&arr, PGARRAY_TEXT);
    for (size_t i = 0; i < n; i++)
        pgarray_str(&arr, cert_nos[i]);
    int rc = -1;
    char day[11];
    date_format(on, day);
    if (pgarray_finish(&arr) < 0 ||
        db_prepare(db, "reg_h_officers",
                   "SELECT c.i, o.cert_no IS NOT NULL FROM unnest($2::text[]) WITH ORDINALITY"
                   " AS c(cert_no, i) LEFT JOIN intake.officer o ON o.agency = $1"
                   " AND o.cert_no = c.cert_no AND o.active"
                   " AND $3::date BETWEEN o.valid_from AND o.valid_to ORDER BY c.i",
                   3) < 0)
        goto done;
    const char *values[3] = {agency, arr.buf, day};
    const int lengths[3] = {0, (int)arr.len, 0}, formats[3] = {0, 1, 0};
    PGresult *r = db_exec_prepared(db, "reg_h_officers", 3, values, lengths, formats, 0);
    if (!r)
        goto done;
    if ((size_t)PQntuples(r) == n) {
        rc = 0;
        for (size_t i = 0; i < n; i++) {
            valid[i] = PQgetvalue(r, (int)i, 1)[0] == 't';
            rc += valid[i];
        }
    }
    PQclear(r);
done:
    pgarray_free(&arr);
    return rc;
}

/* 嘉政办发〔2019〕56号 item 14: a decision goes to legal review when it matches the
 * catalogue; a rule's unset criteria match anything, its amount is a floor. */
int
registry_review_match(db_t *db, const char *agency, const registry_decision_t *d, char *rule_id)
{
    if (db_prepare(db, "reg_h_review",
                   "SELECT r.id FROM intake.review_rule r JOIN intake.agency a ON a.code = "
                   "r.agency WHERE r.agency = $1 AND r.active"
                   " AND (r.case_type IS NULL OR r.case_type = $2)"
                   " AND (r.domain IS NULL OR r.domain = a.domain)"
                   " AND (r.level IS NULL OR r.level = a.level)"
                   " AND (r.amount_threshold IS NULL OR $3::numeric >= r.amount_threshold)"
                   " AND (r.hearing IS NULL OR r.hearing = $4::boolean)"
                   " AND (r.major_public_interest IS NULL OR r.major_public_interest = "
                   "$5::boolean)"
                   " AND (r.social_risk IS NULL OR r.social_risk = $6::boolean)"
                   " AND (r.complex IS NULL OR r.complex = $7::boolean)"
                   " ORDER BY r.id COLLATE \"C\" LIMIT 1",
                   7) < 0)
        return -1;
    char amount[32];
    s_dec_format(d->amount, amount, sizeof amount);
    const char *v[7] = {agency,
                        d->case_type,
                        amount,
                        d->hearing ? "t" : "f",
                        d->major_public_interest ? "t" : "f",
                        d->social_risk ? "t" : "f",
                        d->complex ? "t" : "f"};
    PGresult *r = db_exec_prepared(db, "reg_h_review", 7, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found && rule_id)
        snprintf(rule_id, REGISTRY_KEY_MAX + 1, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return found;
}

/* Parses a numeric(18, 6) in text form into units of 10^-6. */
static int64_t
s_dec_parse(const char *s)
{
    int64_t whole = 0, frac = 0;
    int digits = 0;
    bool neg = *s == '-';
    if (neg)
        s++;
    for (; *s >= '0' && *s <= '9'; s++)
        whole = whole * 10 + (*s - '0');
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9' && digits < 6; s++, digits++)
            frac = frac * 10 + (*s - '0');
    for (; digits < 6; digits++)
        frac *= 10;
    int64_t v = whole * 1000000 + frac;
    return neg ? -v : v;
}

int
registry_discretion_get(db_t *db, const char *agency, const char *violation_code,
                        const char *circumstance, int64_t *min, int64_t *max)
{
    if (db_prepare(db, "reg_h_discretion",
                   "SELECT fine_min::text, fine_max::text FROM intake.discretion WHERE agency = "
                   "$1 AND violation_code = $2 AND circumstance = $3 AND active",
                   3) < 0)
        return -1;
    PGresult *r =
        db_exec_prepared(db, "reg_h_discretion", 3,
                         (const char *[]){agency, violation_code, circumstance}, NULL, NULL, 0);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found) {
        *min = s_dec_parse(PQgetvalue(r, 0, 0));
        *max = s_dec_parse(PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return found;
}
