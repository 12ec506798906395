/* query: THE one place where the public portal's HTTP parameters are validated (STYLE.md
 * rule 4: untrusted bytes decoded in one module, with limits). Every parameter is checked
 * against its limit before anything reaches the database; the first bad one is named in
 * the error, which the portal answers with 400.
 *
 * Search (/api/v1/decisions), every parameter optional, each at most once:
 *   party   the party's name as published (a substring): 1..QUERY_PARTY_MAX characters
 *           of letters, digits, CJK, spaces and ( ) （ ） · . & - ; no quotes, ';', '<',
 *           '>', '%', '\', comment markers or control characters
 *   uscc    the party's 统一社会信用代码 (GB 32100, check character verified)
 *   agency  the agency's 统一社会信用代码 (same)
 *   type    licence | penalty | coercion | inspection | levy
 *   from,to decision date range, YYYY-MM-DD, real dates in 1990..2100, from <= to
 *   page    1..QUERY_PAGE_MAX (default 1)
 *   size    1..QUERY_SIZE_MAX (default QUERY_SIZE_DEFAULT)
 * Any other parameter is refused (unknown_parameter), so a typo never silently widens a
 * search. Values must be valid UTF-8 without NUL. */
#ifndef SX_PUB_QUERY_H
#define SX_PUB_QUERY_H

#include <stddef.h>
#include <stdint.h>

#define QUERY_PARAMS_MAX   16
#define QUERY_PARTY_MAX    100 /* characters */
#define QUERY_VALUE_MAX    400 /* bytes in any value */
#define QUERY_PAGE_MAX     1000
#define QUERY_SIZE_MAX     50
#define QUERY_SIZE_DEFAULT 20

/* One parameter as the HTTP layer decoded it; value may be NULL ("?party"). Lengths are
 * in bytes, so an embedded NUL is seen. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} query_kv_t;

/* A validated search. Empty strings for filters not given. */
typedef struct {
    char party[QUERY_VALUE_MAX + 1];
    char uscc[19];
    char agency[19];
    char type[16];
    char from[11], to[11];
    int page, size;
} query_search_t;

/* The parameter at fault and why: reason in English (printable ASCII only, safe in
 * JSON), zh the same in Chinese naming the field (UTF-8, e.g. "执法类别（type）：不在可选
 * 范围内"), shown on the HTML pages and as "zh" in the JSON 400. */
typedef struct {
    char param[40];
    char reason[160];
    char zh[256];
} query_err_t;

/* Validates n parameters into *out. Returns 0, or -1 with err naming the first bad one
 * (out then unspecified). */
int query_search(const query_kv_t *kv, size_t n, query_search_t *out, query_err_t *err);

/* The same validation for the HTML search form (GET /): a browser submits every field of
 * the form, so a parameter with an empty value counts as not given; everything else as
 * query_search. */
int query_search_form(const query_kv_t *kv, size_t n, query_search_t *out, query_err_t *err);

/* The Chinese label of a parameter name (party -> 当事人名称), or NULL when unknown. */
const char *query_param_zh(const char *param);

/* Officer verification (/api/v1/officers?cert_no=...): exactly one parameter, cert_no,
 * 1..32 characters of letters, digits, CJK and '-' (e.g. 甘JYG001), into cert (at most
 * QUERY_CERT_MAX bytes + NUL). Returns 0, or -1 with err. */
#define QUERY_CERT_MAX 64
int query_officer(const query_kv_t *kv, size_t n, char cert[QUERY_CERT_MAX + 1], query_err_t *err);

/* Validates an agency code from the URL path (/api/v1/agencies/<code>): a 统一社会信用代码
 * with its check character. Returns 0 with code, or -1 with err (param "code"). */
int query_agency(const char *s, size_t len, char code[19], query_err_t *err);

/* Statistics (/api/v1/statistics?agency=&year=&half=): agency required (USCC), year
 * 2019..2100 required, half 1 or 2 optional (without it: the whole year). The period must
 * have ended by today (CST day number): statistics are of closed periods. */
typedef struct {
    char agency[19];
    char from[11], to[11];
} query_stats_t;
int query_stats(const query_kv_t *kv, size_t n, int32_t today, query_stats_t *out,
                query_err_t *err);

/* Validates a decision id from the URL path (decimal, 1..2^53-1, no sign or leading
 * zero, at most 16 digits). Returns 0 with *out, or -1 with err (param "id"). */
int query_id(const char *s, size_t len, int64_t *out, query_err_t *err);

/* Strict UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). Returns the number of
 * characters, or -1 when len bytes of s are not valid UTF-8. */
long query_utf8_chars(const char *s, size_t len);

#endif
