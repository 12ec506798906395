/* jsonmp: JSON text <-> msgpack with the system's limits (see jsonmp.h).
 *
 * JSON -> msgpack reads the text twice with one recursive-descent reader: the first pass
 * checks everything and records each container's element count (msgpack writes counts
 * before elements), the second, over text now known to be good, packs. Recursion is
 * bounded by JSONMP_MAX_DEPTH. jansson is not used here: its integers are long long, so
 * it cannot carry a uint64 above INT64_MAX either way (seq is a u64), and its nesting
 * limit is 2048, not 8.
 *
 * Numbers are read and written with strtod and snprintf in the "C" locale, which is what
 * a program that never calls setlocale has. */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"

#define S_NUM_MAX  512        /* characters in one JSON number */
#define S_KEY_SHOW 64         /* bytes of a key kept for error paths */
#define S_BIN_FLAG 0x80000000 /* in a shape entry: the object is {"$bin": ...} */

/* ---- Errors and paths ---------------------------------------------------------------- */

/* A path as a chain of segments on the C stack, turned into text only on error. */
typedef struct s_seg {
    const struct s_seg *up;
    const char *key; /* NULL for an array index */
    size_t key_len;
    size_t index;
} s_seg_t;

/* Appends to out (holding *n chars, capacity EVMSG_PATH_MAX), truncating; bytes outside
 * printable ASCII become '?', so a path can be printed as is. */
static void
s_path_put(char *out, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < len && *n < EVMSG_PATH_MAX - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        out[(*n)++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[*n] = '\0';
}

static void
s_seg_text(const char *root, const s_seg_t *seg, char out[EVMSG_PATH_MAX], size_t *n)
{
    if (!seg) {
        *n = 0;
        out[0] = '\0';
        s_path_put(out, n, root, strlen(root));
        return;
    }
    s_seg_text(root, seg->up, out, n);
    if (seg->key) {
        if (*n > 0)
            s_path_put(out, n, ".", 1);
        s_path_put(out, n, seg->key, seg->key_len);
    } else {
        char num[32];
        int k = snprintf(num, sizeof num, "[%zu]", seg->index);
        s_path_put(out, n, num, (size_t)k);
    }
}

static void s_err_set(jsonmp_err_t *err, const char *root, const s_seg_t *seg, int line, int column,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Records the first error only, as evmsg does. */
static void
s_err_set(jsonmp_err_t *err, const char *root, const s_seg_t *seg, int line, int column,
          const char *fmt, ...)
{
    if (!err || err->reason[0])
        return;
    size_t n;
    s_seg_text(root, seg, err->path, &n);
    err->line = line;
    err->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof err->reason, fmt, ap);
    va_end(ap);
    if (!err->reason[0])
        snprintf(err->reason, sizeof err->reason, "error");
}

/* An evmsg error on a document named root: its path is relative to "". */
static void
s_err_from_evmsg(jsonmp_err_t *err, const char *root, const evmsg_err_t *e)
{
    if (!err || err->reason[0])
        return;
    size_t n = 0;
    err->path[0] = '\0';
    s_path_put(err->path, &n, root, strlen(root));
    if (e->path[0]) {
        if (n > 0 && e->path[0] != '[')
            s_path_put(err->path, &n, ".", 1);
        s_path_put(err->path, &n, e->path, strlen(e->path));
    }
    err->line = err->column = 0;
    snprintf(err->reason, sizeof err->reason, "%s", e->reason[0] ? e->reason : "error");
}

char *
jsonmp_err_str(const jsonmp_err_t *err, char *buf, size_t size)
{
    if (!size)
        return buf;
    buf[0] = '\0';
    if (!err || !err->reason[0])
        return buf;
    size_t n = 0;
    if (err->line > 0)
        n = (size_t)snprintf(buf, size, "line %d, column %d: ", err->line, err->column);
    if (n < size && err->path[0])
        n += (size_t)snprintf(buf + n, size - n, "%s: ", err->path);
    if (n < size)
        snprintf(buf + n, size - n, "%s", err->reason);
    return buf;
}

/* ---- UTF-8 --------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (at most avail bytes), or 0 when it is not
 * one: overlong forms, surrogates and code points above U+10FFFF are refused. */
static size_t
s_utf8_len(const uint8_t *p, size_t avail)
{
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2, cp = b & 0x1f, min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3, cp = b & 0x0f, min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4, cp = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static size_t
s_utf8_put(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

static int
s_hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- JSON -> msgpack ----------------------------------------------------------------- */

typedef struct {
    const uint8_t *start, *p, *end;
    const char *root;
    int max_nest;       /* containers the document may nest (the root counting 1) */
    uint32_t *shape;    /* per container, in opening order: its count (| S_BIN_FLAG) */
    size_t nshape, cap; /* pass 1: entries recorded */
    size_t next;        /* pass 2: the next entry to use */
    msgpack_packer *pk; /* pass 2 only; NULL while checking */
    uint8_t *scratch;   /* the last string decoded (never longer than the text) */
    bool nomem;         /* the packer or the shape table ran out of memory */
    jsonmp_err_t *err;
} s_reader_t;

static int s_fail_at(s_reader_t *r, const uint8_t *at, const s_seg_t *seg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fails at byte `at` of the text, with its line and column (characters, 1-based). */
static int
s_fail_at(s_reader_t *r, const uint8_t *at, const s_seg_t *seg, const char *fmt, ...)
{
    if (r->pk) /* the second pass reads checked text: only memory can fail there */
        return -1;
    int line = 1, column = 1;
    for (const uint8_t *q = r->start; q < at; q++) {
        if (*q == '\n')
            line++, column = 1;
        else if ((*q & 0xc0) != 0x80)
            column++;
    }
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    s_err_set(r->err, r->root, seg, line, column, "%s", why);
    return -1;
}

/* What the reader met, for messages: "end of input", "'x'", "byte 0x9f". */
static const char *
s_show(const s_reader_t *r, char buf[16])
{
    if (r->p >= r->end)
        return "end of input";
    uint8_t c = *r->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static void
s_ws(s_reader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int
s_pk(s_reader_t *r, int rc)
{
    if (rc != 0)
        r->nomem = true;
    return rc ? -1 : 0;
}

/* Reads the string at r->p (on its opening quote) into r->scratch; *len gets its length
 * in bytes. seg names the value (or the object, for a key). */
static int
s_string(s_reader_t *r, const s_seg_t *seg, size_t *len)
{
    const uint8_t *open = r->p++;
    size_t n = 0;
    for (;;) {
        if (r->p >= r->end)
            return s_fail_at(r, open, seg, "unterminated string");
        uint8_t c = *r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            return s_fail_at(r, r->p, seg,
                             "control character (byte 0x%02x) in string: write it as an escape", c);
        if (c != '\\') {
            size_t k = s_utf8_len(r->p, (size_t)(r->end - r->p));
            if (!k)
                return s_fail_at(r, r->p, seg, "not valid UTF-8 (byte 0x%02x)", c);
            memcpy(r->scratch + n, r->p, k);
            n += k;
            r->p += k;
            continue;
        }
        const uint8_t *esc = r->p;
        if (r->end - r->p < 2)
            return s_fail_at(r, open, seg, "unterminated string");
        uint8_t e = r->p[1];
        r->p += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            r->scratch[n++] = (uint8_t)to[hit - from];
            continue;
        }
        if (e != 'u')
            return s_fail_at(r, esc, seg, "unknown escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
        uint32_t cp = 0;
        for (int pair = 0; pair < 2; pair++) {
            uint32_t u = 0;
            for (int i = 0; i < 4; i++) {
                int d = r->p < r->end ? s_hex_digit(*r->p) : -1;
                if (d < 0)
                    return s_fail_at(r, esc, seg, "\\u needs four hex digits");
                u = u << 4 | (uint32_t)d;
                r->p++;
            }
            if (pair == 0) {
                if (u >= 0xdc00 && u <= 0xdfff)
                    return s_fail_at(r, esc, seg, "lone low surrogate \\u%04X", (unsigned)u);
                if (u < 0xd800 || u > 0xdbff) {
                    cp = u;
                    break;
                }
                cp = u;
                if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                    return s_fail_at(r, esc, seg, "high surrogate \\u%04X without a low one",
                                     (unsigned)u);
                r->p += 2;
            } else {
                if (u < 0xdc00 || u > 0xdfff)
                    return s_fail_at(r, esc, seg, "high surrogate \\u%04X without a low one",
                                     (unsigned)cp);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (u - 0xdc00);
            }
        }
        n += s_utf8_put(r->scratch + n, cp);
    }
    *len = n;
    return 0;
}

static int
s_number(s_reader_t *r, const s_seg_t *seg)
{
    const uint8_t *s = r->p, *q = r->p;
    bool neg = false, integer = true;
    if (q < r->end && *q == '-')
        neg = true, q++;
    if (q >= r->end || *q < '0' || *q > '9')
        return s_fail_at(r, s, seg, "malformed number");
    if (*q == '0' && q + 1 < r->end && q[1] >= '0' && q[1] <= '9')
        return s_fail_at(r, s, seg, "malformed number (leading zero)");
    while (q < r->end && *q >= '0' && *q <= '9')
        q++;
    const uint8_t *int_end = q;
    if (q < r->end && *q == '.') {
        integer = false;
        if (++q >= r->end || *q < '0' || *q > '9')
            return s_fail_at(r, s, seg, "malformed number (no digit after '.')");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        integer = false;
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return s_fail_at(r, s, seg, "malformed number (no digit in the exponent)");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q - s > S_NUM_MAX)
        return s_fail_at(r, s, seg, "number longer than %d characters", S_NUM_MAX);
    r->p = q;
    if (integer) {
        uint64_t v = 0;
        for (const uint8_t *d = s + neg; d < int_end; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (v > (UINT64_MAX - digit) / 10)
                return s_fail_at(r, s, seg, "integer out of range (beyond uint64)");
            v = v * 10 + digit;
        }
        if (neg && v > (uint64_t)INT64_MAX + 1)
            return s_fail_at(r, s, seg, "integer out of range (beyond int64)");
        if (!r->pk)
            return 0;
        if (neg && v > 0)
            return s_pk(r, msgpack_pack_int64(r->pk, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                                                  : -(int64_t)v));
        return s_pk(r, msgpack_pack_uint64(r->pk, v));
    }
    char buf[S_NUM_MAX + 1];
    memcpy(buf, s, (size_t)(q - s));
    buf[q - s] = '\0';
    double d = strtod(buf, NULL);
    if (isinf(d) || isnan(d))
        return s_fail_at(r, s, seg, "number out of range for float64");
    return r->pk ? s_pk(r, msgpack_pack_double(r->pk, d)) : 0;
}

static int s_value(s_reader_t *r, const s_seg_t *seg, int depth);

/* The value of "$bin": a string of an even number of hex digits. */
static int
s_bin_value(s_reader_t *r, const s_seg_t *seg)
{
    const uint8_t *at = r->p;
    size_t n;
    if (r->p >= r->end || *r->p != '"')
        return s_fail_at(r, at, seg, "\"$bin\" takes a string of hex digits");
    if (s_string(r, seg, &n) < 0)
        return -1;
    if (n % 2)
        return s_fail_at(r, at, seg, "\"$bin\" takes an even number of hex digits");
    for (size_t i = 0; i < n; i += 2) {
        int hi = s_hex_digit(r->scratch[i]), lo = s_hex_digit(r->scratch[i + 1]);
        if (hi < 0 || lo < 0)
            return s_fail_at(r, at, seg, "\"$bin\" takes a string of hex digits");
        r->scratch[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    if (!r->pk)
        return 0;
    if (s_pk(r, msgpack_pack_bin(r->pk, n / 2)) < 0)
        return -1;
    return s_pk(r, msgpack_pack_bin_body(r->pk, r->scratch, n / 2));
}

/* Reserves (pass 1) or takes (pass 2) the shape entry of the container opening now. */
static int
s_shape_open(s_reader_t *r, size_t *slot, uint32_t *shape)
{
    if (r->pk) {
        *slot = r->next;
        *shape = r->shape[r->next++];
        return 0;
    }
    if (r->nshape == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        uint32_t *p = realloc(r->shape, cap * sizeof *p);
        if (!p) {
            r->nomem = true;
            return -1;
        }
        r->shape = p;
        r->cap = cap;
    }
    *slot = r->nshape;
    *shape = 0;
    r->shape[r->nshape++] = 0;
    return 0;
}

static int
s_object(s_reader_t *r, const s_seg_t *seg, int depth)
{
    const uint8_t *open = r->p++;
    size_t slot;
    uint32_t shape;
    if (s_shape_open(r, &slot, &shape) < 0)
        return -1;
    /* One level too deep is still fine for {"$bin": ...}: in msgpack it is a scalar. */
    bool over = depth > r->max_nest;
    bool bin = false;
    if (r->pk && !(shape & S_BIN_FLAG) && s_pk(r, msgpack_pack_map(r->pk, shape)) < 0)
        return -1;
    uint32_t count = 0;
    s_ws(r);
    if (r->p < r->end && *r->p == '}') {
        if (over)
            return s_fail_at(r, open, seg, "nesting deeper than %d", JSONMP_MAX_DEPTH);
        r->p++;
        return 0;
    }
    for (;;) {
        char show[16];
        s_ws(r);
        const uint8_t *key_at = r->p;
        if (r->p >= r->end || *r->p != '"')
            return s_fail_at(r, r->p, seg, "expected a key string, found %s", s_show(r, show));
        size_t n;
        if (s_string(r, seg, &n) < 0)
            return -1;
        char key[S_KEY_SHOW];
        size_t key_len = n < sizeof key ? n : sizeof key;
        memcpy(key, r->scratch, key_len);
        s_seg_t kseg = {seg, key, key_len, 0};
        bool is_bin = n == 4 && memcmp(r->scratch, "$bin", 4) == 0;
        if (is_bin && count > 0)
            return s_fail_at(r, key_at, &kseg, "\"$bin\" must be the only key of its object");
        if (!is_bin && bin)
            return s_fail_at(r, key_at, &kseg, "\"$bin\" must be the only key of its object");
        if (!is_bin && over)
            return s_fail_at(r, open, seg, "nesting deeper than %d", JSONMP_MAX_DEPTH);
        if (is_bin && depth == 1)
            return s_fail_at(r, open, seg, "the document must be an object, not {\"$bin\": ...}");
        if (r->pk && !is_bin) {
            if (s_pk(r, msgpack_pack_str(r->pk, n)) < 0 ||
                s_pk(r, msgpack_pack_str_body(r->pk, r->scratch, n)) < 0)
                return -1;
        }
        s_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return s_fail_at(r, r->p, &kseg, "expected ':' after the key, found %s",
                             s_show(r, show));
        r->p++;
        s_ws(r);
        if (is_bin) {
            bin = true;
            if (s_bin_value(r, &kseg) < 0)
                return -1;
        } else if (s_value(r, &kseg, depth) < 0) {
            return -1;
        }
        count++;
        s_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            break;
        }
        return s_fail_at(r, r->p, seg, "expected ',' or '}' in the object, found %s",
                         s_show(r, show));
    }
    if (!r->pk)
        r->shape[slot] = count | (bin ? S_BIN_FLAG : 0);
    return 0;
}

static int
s_array(s_reader_t *r, const s_seg_t *seg, int depth)
{
    const uint8_t *open = r->p++;
    if (depth > r->max_nest)
        return s_fail_at(r, open, seg, "nesting deeper than %d", JSONMP_MAX_DEPTH);
    size_t slot;
    uint32_t shape;
    if (s_shape_open(r, &slot, &shape) < 0)
        return -1;
    if (r->pk && s_pk(r, msgpack_pack_array(r->pk, shape)) < 0)
        return -1;
    uint32_t count = 0;
    s_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }
    for (;;) {
        char show[16];
        s_seg_t iseg = {seg, NULL, 0, count};
        if (s_value(r, &iseg, depth) < 0)
            return -1;
        count++;
        s_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            break;
        }
        return s_fail_at(r, r->p, seg, "expected ',' or ']' in the array, found %s",
                         s_show(r, show));
    }
    if (!r->pk)
        r->shape[slot] = count;
    return 0;
}

static int
s_literal(s_reader_t *r, const s_seg_t *seg, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return s_fail_at(r, r->p, seg, "unexpected character (expected %s?)", word);
    r->p += n;
    if (!r->pk)
        return 0;
    if (word[0] == 'n')
        return s_pk(r, msgpack_pack_nil(r->pk));
    return s_pk(r, word[0] == 't' ? msgpack_pack_true(r->pk) : msgpack_pack_false(r->pk));
}

/* One value at r->p (whitespace skipped), inside `depth` containers. */
static int
s_value(s_reader_t *r, const s_seg_t *seg, int depth)
{
    char show[16];
    s_ws(r);
    if (r->p >= r->end)
        return s_fail_at(r, r->p, seg, "unexpected end of input");
    size_t n;
    switch (*r->p) {
    case '{':
        return s_object(r, seg, depth + 1);
    case '[':
        return s_array(r, seg, depth + 1);
    case '"':
        if (s_string(r, seg, &n) < 0)
            return -1;
        if (!r->pk)
            return 0;
        if (s_pk(r, msgpack_pack_str(r->pk, n)) < 0)
            return -1;
        return s_pk(r, msgpack_pack_str_body(r->pk, r->scratch, n));
    case 't':
        return s_literal(r, seg, "true");
    case 'f':
        return s_literal(r, seg, "false");
    case 'n':
        return s_literal(r, seg, "null");
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return s_number(r, seg);
        return s_fail_at(r, r->p, seg, "unexpected %s", s_show(r, show));
    }
}

/* One pass over the whole text. */
static int
s_document(s_reader_t *r)
{
    char show[16];
    r->p = r->start;
    if (r->end - r->p >= 3 && memcmp(r->p, "\xef\xbb\xbf", 3) == 0)
        r->p += 3;
    s_ws(r);
    if (r->p >= r->end)
        return s_fail_at(r, r->p, NULL, "empty document: expected a JSON object");
    if (*r->p != '{')
        return s_fail_at(r, r->p, NULL, "expected a JSON object, found %s", s_show(r, show));
    if (s_object(r, NULL, 1) < 0)
        return -1;
    s_ws(r);
    if (r->p < r->end)
        return s_fail_at(r, r->p, NULL, "trailing characters after the JSON object: %s",
                         s_show(r, show));
    return 0;
}

int
jsonmp_from_json(const char *text, size_t len, const char *root, int level, msgpack_sbuffer *out,
                 jsonmp_err_t *err)
{
    assert(out && root && level >= 1 && level <= JSONMP_MAX_DEPTH);
    if (!text) {
        text = "";
        len = 0;
    }
    if (len > JSONMP_MAX_BYTES) {
        s_err_set(err, root, NULL, 0, 0, "JSON text larger than %d bytes", JSONMP_MAX_BYTES);
        return -1;
    }
    s_reader_t r = {.start = (const uint8_t *)text,
                    .end = (const uint8_t *)text + len,
                    .root = root,
                    .max_nest = JSONMP_MAX_DEPTH - level + 1,
                    .err = err};
    msgpack_sbuffer tmp;
    msgpack_sbuffer_init(&tmp);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &tmp, msgpack_sbuffer_write);
    int rc = -1;
    r.scratch = malloc(len ? len : 1);
    if (!r.scratch) {
        r.nomem = true;
        goto done;
    }
    if (s_document(&r) < 0)
        goto done;
    r.pk = &pk;
    if (s_document(&r) < 0)
        goto done;
    if (tmp.size > JSONMP_MAX_BYTES) {
        s_err_set(err, root, NULL, 0, 0, "larger than %d bytes as msgpack (%zu)", JSONMP_MAX_BYTES,
                  tmp.size);
        goto done;
    }
    /* Duplicate keys, and what evmsg will hold any message to: checked on the result. */
    evmsg_err_t e = {{0}, {0}};
    evmsg_t *msg = NULL;
    if (evmsg_decode_map(tmp.data, tmp.size, &msg, &e) < 0) {
        if (strcmp(e.reason, "out of memory") == 0)
            r.nomem = true;
        else
            s_err_from_evmsg(err, root, &e);
        goto done;
    }
    evmsg_destroy(&msg);
    if (msgpack_sbuffer_write(out, tmp.data, tmp.size) != 0) {
        r.nomem = true;
        goto done;
    }
    rc = 0;
done:
    if (rc < 0) /* both only when nothing more precise was recorded */
        s_err_set(err, root, NULL, 0, 0, "%s", r.nomem ? "out of memory" : "internal error");
    free(r.scratch);
    free(r.shape);
    msgpack_sbuffer_destroy(&tmp);
    return rc;
}

/* ---- msgpack -> JSON ----------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    bool nomem;
    const char *root;
    jsonmp_err_t *err;
} s_writer_t;

static void
s_put(s_writer_t *w, const char *s, size_t n)
{
    if (w->nomem)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *p = realloc(w->data, cap);
        if (!p) {
            w->nomem = true;
            return;
        }
        w->data = p;
        w->cap = cap;
    }
    memcpy(w->data + w->len, s, n);
    w->len += n;
    w->data[w->len] = '\0';
}

static void
s_puts(s_writer_t *w, const char *s)
{
    s_put(w, s, strlen(s));
}

/* msgpack-c leaves the pointer of an empty str or bin NULL. */
static const char *
s_ptr(const char *p)
{
    return p ? p : "";
}

static int
s_write_str(s_writer_t *w, const char *s, size_t n, const s_seg_t *seg)
{
    const uint8_t *p = (const uint8_t *)s_ptr(s);
    s_put(w, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        const char *esc = NULL;
        char u[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (esc) {
            s_put(w, (const char *)p + i - run, run);
            run = 0;
            s_puts(w, esc);
            i++;
            continue;
        }
        size_t k = s_utf8_len(p + i, n - i);
        if (!k) {
            s_err_set(w->err, w->root, seg, 0, 0, "not valid UTF-8 at byte %zu", i);
            return -1;
        }
        run += k;
        i += k;
    }
    s_put(w, (const char *)p + n - run, run);
    s_put(w, "\"", 1);
    return 0;
}

static void
s_write_double(s_writer_t *w, double d)
{
    char b[40];
    /* The shortest of 15..17 significant digits that reads back as the same double. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, d);
        if (strtod(b, NULL) == d)
            break;
    }
    s_puts(w, b);
    if (!strpbrk(b, ".e")) /* "1.0", not "1": a float stays a float when read back */
        s_puts(w, ".0");
}

static int
s_write(s_writer_t *w, const msgpack_object *o, const s_seg_t *seg)
{
    char num[32];
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        s_puts(w, "null");
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        s_puts(w, o->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
        s_puts(w, num);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, o->via.i64);
        s_puts(w, num);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) {
            s_err_set(w->err, w->root, seg, 0, 0, "%s is not a JSON number",
                      isnan(o->via.f64) ? "NaN" : "an infinity");
            return -1;
        }
        s_write_double(w, o->via.f64);
        return 0;
    case MSGPACK_OBJECT_STR:
        return s_write_str(w, o->via.str.ptr, o->via.str.size, seg);
    case MSGPACK_OBJECT_BIN: {
        static const char hex[] = "0123456789abcdef";
        s_puts(w, "{\"$bin\":\"");
        const uint8_t *b = (const uint8_t *)o->via.bin.ptr;
        for (uint32_t i = 0; i < o->via.bin.size; i++) {
            char two[2] = {hex[b[i] >> 4], hex[b[i] & 15]};
            s_put(w, two, 2);
        }
        s_puts(w, "\"}");
        return 0;
    }
    case MSGPACK_OBJECT_ARRAY:
        s_put(w, "[", 1);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            s_seg_t iseg = {seg, NULL, 0, i};
            if (i)
                s_put(w, ",", 1);
            if (s_write(w, &o->via.array.ptr[i], &iseg) < 0)
                return -1;
        }
        s_put(w, "]", 1);
        return 0;
    case MSGPACK_OBJECT_MAP:
        s_put(w, "{", 1);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            /* evmsg saw to it that keys are strings */
            s_seg_t kseg = {seg, s_ptr(kv->key.via.str.ptr), kv->key.via.str.size, 0};
            if (i)
                s_put(w, ",", 1);
            if (s_write_str(w, kv->key.via.str.ptr, kv->key.via.str.size, &kseg) < 0)
                return -1;
            s_put(w, ":", 1);
            if (s_write(w, &kv->val, &kseg) < 0)
                return -1;
        }
        s_put(w, "}", 1);
        return 0;
    default: /* MSGPACK_OBJECT_EXT */
        s_err_set(w->err, w->root, seg, 0, 0, "ext values are not supported");
        return -1;
    }
}

char *
jsonmp_to_json(const void *buf, size_t len, const char *root, size_t *out_len, jsonmp_err_t *err)
{
    assert(root);
    evmsg_err_t e = {{0}, {0}};
    evmsg_t *msg = NULL;
    if (evmsg_decode_map(buf, len, &msg, &e) < 0) {
        s_err_from_evmsg(err, root, &e);
        return NULL;
    }
    evmsg_destroy(&msg);
    /* evmsg keeps its tree to itself; the bytes are now known to be one bounded map, so
     * msgpack-c may unpack them. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    s_writer_t w = {.root = root, .err = err};
    int rc = -1;
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        s_err_set(err, root, NULL, 0, 0, "out of memory");
        goto done;
    }
    rc = s_write(&w, &up.data, NULL);
    if (rc == 0 && w.nomem) {
        s_err_set(err, root, NULL, 0, 0, "out of memory");
        rc = -1;
    }
done:
    msgpack_unpacked_destroy(&up);
    if (rc < 0) {
        free(w.data);
        return NULL;
    }
    if (out_len)
        *out_len = w.len;
    return w.data;
}
