/* catalogue: see catalogue.h. */
#include "catalogue.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

char *
catalogue_amount_str(int64_t amount, char *buf, size_t size)
{
    const char *sign = amount < 0 ? "-" : "";
    uint64_t a = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    char frac[8];
    snprintf(frac, sizeof frac, "%06" PRIu64, a % 1000000);
    for (int i = 5; i >= 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(buf, size, "%s%" PRIu64 "%s%s", sign, a / 1000000, frac[0] ? "." : "", frac);
    return buf;
}

static bool
s_tri(cat_tri_t want, bool have, const char *name, char *why, size_t whylen)
{
    if (want == CAT_ANY || (want == CAT_TRUE) == have)
        return true;
    if (why)
        snprintf(why, whylen, "%s %s", name, have ? "set" : "not set");
    return false;
}

static bool
s_str(const char *want, const char *have, const char *name, char *why, size_t whylen)
{
    if (!want || (have && strcmp(want, have) == 0))
        return true;
    if (why)
        snprintf(why, whylen, "%s %s, not %s", name, have ? have : "unknown", want);
    return false;
}

bool
catalogue_rule_matches(const catalogue_rule_t *r, const catalogue_case_t *c, char *why,
                       size_t whylen)
{
    if (!s_str(r->case_type, c->case_type, "case type", why, whylen) ||
        !s_str(r->domain, c->domain, "domain", why, whylen) ||
        !s_str(r->level, c->level, "level", why, whylen))
        return false;
    if (r->has_amount && c->amount < r->amount_threshold) {
        if (why) {
            char a[32], t[32];
            snprintf(why, whylen, "amount %s below threshold %s",
                     catalogue_amount_str(c->amount, a, sizeof a),
                     catalogue_amount_str(r->amount_threshold, t, sizeof t));
        }
        return false;
    }
    return s_tri(r->hearing, c->hearing, "hearing", why, whylen) &&
           s_tri(r->major_public_interest, c->major_public_interest, "major_public_interest", why,
                 whylen) &&
           s_tri(r->social_risk, c->social_risk, "social_risk", why, whylen) &&
           s_tri(r->complex, c->complex, "complex", why, whylen);
}

/* Appends to buf (NUL-terminated, size bytes), truncating. */
static void
s_cat(char *buf, size_t size, const char *s)
{
    size_t len = strlen(buf);
    if (len + 1 < size)
        snprintf(buf + len, size - len, "%s", s);
}

bool
catalogue_evaluate(const catalogue_rule_t *rules, size_t n, const catalogue_case_t *c,
                   size_t *matched, size_t *n_matched, char *reason, size_t reasonlen)
{
    *n_matched = 0;
    char notes[CATALOGUE_REASON_MAX] = "";
    for (size_t i = 0; i < n; i++) {
        char why[200] = "";
        if (catalogue_rule_matches(&rules[i], c, why, sizeof why)) {
            matched[(*n_matched)++] = i;
        } else {
            char line[300];
            snprintf(line, sizeof line, "%s%s: %s", notes[0] ? "; " : "", rules[i].id, why);
            s_cat(notes, sizeof notes, line);
        }
    }
    reason[0] = '\0';
    if (*n_matched) {
        snprintf(reason, reasonlen, "matched:");
        for (size_t i = 0; i < *n_matched; i++) {
            s_cat(reason, reasonlen, i ? ", " : " ");
            s_cat(reason, reasonlen, rules[matched[i]].id);
        }
        return true;
    }
    if (n == 0)
        snprintf(reason, reasonlen, "the agency's review catalogue is empty");
    else
        snprintf(reason, reasonlen, "no rule of %zu matches: %s", n, notes);
    return false;
}
