/* records: the after-publication (事后公开) record of a decided case, built from the
 * case's events and masked for the public (国办发〔2018〕118号; sgs-fields.md "Masking"). */
#ifndef SX_PUB_RECORDS_H
#define SX_PUB_RECORDS_H

#include <stdint.h>

#include <jansson.h>

#include "date.h"

/* What publication keeps of a decided case: the party from case.opened, the decision
 * from case.decided, the agency's name from registry.agency. Strings NUL-terminated. */
typedef struct {
    char agency[19];
    char agency_name[201]; /* "" when the registry event has not been seen */
    uint64_t case_id;
    char case_no[65];
    char type[16];      /* licence, penalty, coercion, inspection, levy */
    char party_kind[8]; /* person, org */
    char party_name[201];
    char party_id_type[16];
    char party_id_no[33];
    char summary[2001]; /* 案由 (used as CF_SY), "" when none */
    char decision_no[65];
    date_t decision_date;
    char category[201];
    char content[4001];
    char legal_basis[2001];
    char fine[32];         /* 万元, decimal string */
    char confiscation[32]; /* 万元, decimal string */
    char violation_code[65];
    char circumstance[16]; /* minor, general, serious or "" */
} pub_case_t;

/* The party as the public sees it: natural persons' names keep the first character and
 * ID numbers the first 6 (ident_mask_name / ident_mask_idno); organisations in full.
 * uscc gets the party's USCC for an organisation identified by one, else "". */
typedef struct {
    char name[201];
    char id_no[33];
    char uscc[33]; /* holds at most 18 characters */
} pub_party_t;

void records_mask_party(const pub_case_t *c, pub_party_t *out);

/* Copies at most size - 1 bytes of the len bytes at src (valid UTF-8) into dst, cut at a
 * character boundary, NUL-terminated. */
void records_utf8_cut(char *dst, size_t size, const char *src, size_t len);

/* The Chinese name of a case type (行政处罚 ...), or the type itself when unknown. */
const char *records_type_zh(const char *type);

/* The public record (a new JSON object, the caller json_decref's it), or NULL when out of
 * memory: agency {code, name} (执法机关), party {kind, name, id_type, id_no} masked
 * (执法对象), type / type_zh (执法类别), conclusion (执法结论: the decision's content),
 * decision_no, decision_date, category, legal_basis, fine, confiscation, and sgs: the
 * 双公示 fields for penalties and licences (sgs.h), null for the other types. */
json_t *records_public(const pub_case_t *c);

/* Corrects a public record's body (from records_public) before it is resubmitted after a
 * reject (publication.resubmit): each of conclusion (执法结论), legal_basis and category
 * that is not NULL replaces the field and its 双公示 counterparts (CF_NR, and CF_SY when it
 * held the conclusion; CF_YJ; CF_CFLB, and CF_WFXW when it held the category; XK_NR,
 * XK_XKLB). Party, dates, amounts and numbers are never corrected here: they come from the
 * case. Returns 0, or -1 (body not an object, out of memory; body may be partly changed). */
int records_correct(json_t *body, const char *conclusion, const char *legal_basis,
                    const char *category);

#endif
