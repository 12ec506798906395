/* fuzz_sgs_record: the 双公示 record checks (common/sgs_record), which see every record
 * creditpush builds from publication's events and everything tools/fake-credit receives,
 * under libFuzzer. Input: one selector byte (bit 0: penalty or licence; bit 1: the data
 * is the whole public record for sgs_record_build rather than the fields) and JSON.
 *
 * Never a crash, and: a refusal names a field ("FIELD: why"); fields the check accepts
 * build into a record that is accepted again, and every one of its fields has a column
 * of the export (nothing is lost in the CSV); a reason is valid UTF-8 whatever the keys; status
 * changes built from any text are accepted by their own checks or refused with a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sgs_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
s_named(int rc, const char *reason)
{
    if (rc < 0 && (!reason[0] || !strstr(reason, ": ")))
        abort();
    if (rc == 0 && reason[0])
        abort();
    json_t *text = json_string(reason); /* valid UTF-8: it is stored and sent as text */
    if (!text)
        abort();
    json_decref(text);
}

/* Every field of d is the value of one of kind's columns. */
static void
s_all_exported(const json_t *d, const char *kind)
{
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)d, key, val)
    {
        int found = 0;
        for (const char *const *c = sgs_record_columns(kind); *c && !found; c++)
            found = sgs_record_value(d, kind, *c) == json_string_value(val);
        if (!found)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const char *kind = data[0] & 1 ? "licence" : "penalty";
    json_t *j = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return 0;
    char reason[SGS_REASON_MAX] = "";
    if (data[0] & 2) {
        const char *k = NULL;
        json_t *d = sgs_record_build(j, &k, reason);
        if (!d && !reason[0])
            abort();
        if (d) {
            if (sgs_record_check(d, k, reason) != 0)
                abort();
            s_all_exported(d, k);
            sgs_record_key_domain(d);
            sgs_record_serious(d);
            json_decref(d);
        }
    } else {
        int rc = sgs_record_check(j, kind, reason);
        s_named(rc, reason);
        if (rc == 0) {
            json_t *rec = json_pack("{s:s,s:O}", "type", kind, "sgs", j);
            const char *k = NULL;
            json_t *d = rec ? sgs_record_build(rec, &k, reason) : NULL;
            if (rec && !d)
                abort(); /* accepted fields always build */
            if (d && sgs_record_check(d, k, reason) != 0)
                abort();
            if (d)
                s_all_exported(d, k);
            json_decref(d);
            json_decref(rec);
        }
        s_named(sgs_record_check_withdrawal(j, kind, reason), reason);
        s_named(sgs_record_check_repair(j, kind, reason), reason);
        /* Status changes from whatever text the input holds. */
        const char *a = json_string_value(json_object_get(j, "CF_WSH"));
        const char *b = json_string_value(json_object_get(j, "BZ"));
        const char *u = json_string_value(json_object_get(j, "CF_GSJZQ"));
        if (a && b) {
            json_t *w = sgs_record_withdrawal(kind, a, b);
            if (w) {
                int wrc = sgs_record_check_withdrawal(w, kind, reason);
                s_named(wrc, reason);
                if (wrc < 0 && a[0] && b[0])
                    abort(); /* non-empty text makes a valid withdrawal */
            }
            json_decref(w);
            json_t *r = sgs_record_repair(a, u ? u : "2026/11/27", b);
            if (r)
                s_named(sgs_record_check_repair(r, "penalty", reason), reason);
            json_decref(r);
        }
    }
    json_decref(j);
    return 0;
}
