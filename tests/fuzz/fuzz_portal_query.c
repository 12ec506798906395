/* fuzz_portal_query: the one place the public portal validates HTTP parameters
 * (services/publication/query.c), under libFuzzer. The input is split into key=value
 * pairs at '&' and '=' as a query string would be; every validator sees them. Any bytes:
 * an answer or an error naming a parameter, never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fuzz build links common/ only: the service's validator is compiled in here. */
#include "../../services/publication/query.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    const char *s = (const char *)data;
    query_kv_t kv[QUERY_PARAMS_MAX + 2];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < QUERY_PARAMS_MAX + 2; i++) {
        if (i == size || s[i] == '&') {
            const char *p = s + start;
            size_t len = i - start;
            const char *eq = memchr(p, '=', len);
            kv[n].key = p;
            kv[n].key_len = eq ? (size_t)(eq - p) : len;
            kv[n].value = eq ? eq + 1 : p + len;
            kv[n].value_len = eq ? len - kv[n].key_len - 1 : 0;
            n++;
            start = i + 1;
        }
    }
    query_err_t err;
    query_search_t q;
    if (query_search(kv, n, &q, &err) < 0 && err.reason[0] == '\0')
        abort();
    memset(&err, 0, sizeof err);
    if (query_search_form(kv, n, &q, &err) < 0 && (err.reason[0] == '\0' || err.zh[0] == '\0'))
        abort();
    char cert[QUERY_CERT_MAX + 1];
    memset(&err, 0, sizeof err);
    if (query_officer(kv, n, cert, &err) < 0 && err.reason[0] == '\0')
        abort();
    query_stats_t st;
    memset(&err, 0, sizeof err);
    (void)query_stats(kv, n, 20000, &st, &err);
    char code[19];
    int64_t id;
    (void)query_agency(s, size, code, &err);
    (void)query_id(s, size, &id, &err);
    (void)query_utf8_chars(s, size);
    return 0;
}
