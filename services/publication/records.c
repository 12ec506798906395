/* records: building the public record of a decided case, masked. */
#include "records.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "sgs.h"

void
records_mask_party(const pub_case_t *c, pub_party_t *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(c->party_kind, "org") == 0) {
        /* Organisations are shown in full (sgs-fields.md, "Masking natural persons"). */
        snprintf(out->name, sizeof out->name, "%s", c->party_name);
        snprintf(out->id_no, sizeof out->id_no, "%s", c->party_id_no);
        if (strcmp(c->party_id_type, "uscc") == 0)
            snprintf(out->uscc, sizeof out->uscc, "%s", c->party_id_no);
        return;
    }
    /* Anything not known to be an organisation is treated as a person: masked. */
    if (ident_mask_name(c->party_name, out->name, sizeof out->name) < 0)
        out->name[0] = '\0';
    if (ident_mask_idno(c->party_id_no, out->id_no, sizeof out->id_no) < 0)
        out->id_no[0] = '\0';
}

void
records_utf8_cut(char *dst, size_t size, const char *src, size_t len)
{
    if (size == 0)
        return;
    if (len > size - 1) {
        len = size - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
            len--; /* src[len] continues a character: cut before that character */
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

const char *
records_type_zh(const char *type)
{
    static const char *const map[][2] = {{"penalty", "行政处罚"},
                                         {"licence", "行政许可"},
                                         {"coercion", "行政强制"},
                                         {"inspection", "行政检查"},
                                         {"levy", "行政征收"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(type, map[i][0]) == 0)
            return map[i][1];
    return type;
}

json_t *
records_public(const pub_case_t *c)
{
    pub_party_t p;
    records_mask_party(c, &p);
    char day[11];
    date_format(c->decision_date, day);
    json_t *sgs = sgs_fields(c, &p);
    json_t *o =
        json_pack("{s:{s:s,s:s},s:{s:s,s:s,s:s,s:s},s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}",
                  "agency", "code", c->agency, "name", c->agency_name, "party", "kind",
                  c->party_kind, "name", p.name, "id_type", c->party_id_type, "id_no", p.id_no,
                  "case_no", c->case_no, "type", c->type, "type_zh", records_type_zh(c->type),
                  "conclusion", c->content, "decision_no", c->decision_no, "decision_date", day,
                  "category", c->category, "legal_basis", c->legal_basis, "fine", c->fine,
                  "confiscation", c->confiscation, "sgs", sgs ? sgs : json_null());
    return o;
}

/* Sets key of o to s when o has key and its value equals was (or was is NULL). */
static void
s_set_if(json_t *o, const char *key, const char *was, const char *s)
{
    const char *cur = json_string_value(json_object_get(o, key));
    if (cur && (!was || strcmp(cur, was) == 0))
        json_object_set_new(o, key, json_string(s));
}

int
records_correct(json_t *body, const char *conclusion, const char *legal_basis, const char *category)
{
    if (!json_is_object(body))
        return -1;
    json_t *sgs = json_object_get(body, "sgs");
    bool penalty = json_object_get(sgs, "CF_WSH") != NULL;
    if (conclusion) {
        /* CF_SY (案由) carries the conclusion when the case had no summary. */
        const char *old = json_string_value(json_object_get(body, "conclusion"));
        char *was = strdup(old ? old : "");
        if (!was)
            return -1;
        if (penalty) {
            s_set_if(sgs, "CF_SY", was, conclusion);
            s_set_if(sgs, "CF_NR", NULL, conclusion);
        } else
            s_set_if(sgs, "XK_NR", NULL, conclusion);
        free(was);
        json_object_set_new(body, "conclusion", json_string(conclusion));
    }
    if (legal_basis) {
        s_set_if(sgs, "CF_YJ", NULL, legal_basis);
        json_object_set_new(body, "legal_basis", json_string(legal_basis));
    }
    if (category) {
        /* CF_WFXW carries the category when the decision had no violation code. */
        const char *old = json_string_value(json_object_get(body, "category"));
        char *was = strdup(old ? old : "");
        if (!was)
            return -1;
        if (penalty) {
            s_set_if(sgs, "CF_WFXW", was, category);
            s_set_if(sgs, "CF_CFLB", NULL, category);
        } else
            s_set_if(sgs, "XK_XKLB", NULL, sgs_xklb(category));
        free(was);
        json_object_set_new(body, "category", json_string(category));
    }
    return 0;
}
