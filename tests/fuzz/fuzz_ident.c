/* fuzz_ident: the identifier checks and masks, which see every party a department
 * submits, under libFuzzer. Any bytes: never a crash; a code the check accepts keeps
 * being accepted after masking is applied to a copy (masks never write past their
 * buffer and never grow the text). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* inputs are C strings: stop at the first NUL like callers do */
    ident_err_t err;
    if (ident_uscc_check(s, &err) < 0 && (err.en[0] == '\0' || err.zh[0] == '\0'))
        abort();
    if (ident_orgcode_check(s, &err) < 0 && err.en[0] == '\0')
        abort();
    if (ident_idcard_check(s, date_from_ymd(2026, 11, 27), &err) < 0 && err.en[0] == '\0')
        abort();
    char out[64];
    for (size_t cap = 0; cap <= sizeof out; cap += 7) {
        ident_mask_idno(s, out, cap);
        ident_mask_name(s, out, cap);
    }
    size_t n = strlen(s);
    char *big = malloc(n + 1);
    if (big) {
        if (ident_mask_name(s, big, n + 1) == 0 && strlen(big) > n)
            abort();
        if (ident_mask_idno(s, big, n + 1) == 0 && strlen(big) > n)
            abort();
        free(big);
    }
    free(s);
    return 0;
}
