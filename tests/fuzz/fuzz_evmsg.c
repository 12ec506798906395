/* fuzz_evmsg: the one bounded decoder of msgpack input, under libFuzzer.
 *
 * Each input is decoded as an envelope and as a plain map (a request). What decodes is
 * walked through every reader, key by key and element by element, and the envelope is
 * encoded again and decoded again: the header and data bytes must survive unchanged.
 * The input is also offered as a topic. Any crash, sanitizer report or broken
 * invariant (abort) is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evmsg.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An error is either absent or complete: a reason, and a path that fits. */
static void
s_err_sane(const evmsg_err_t *err, int rc)
{
    CHECK(strlen(err->path) < sizeof err->path);
    CHECK(strlen(err->reason) < sizeof err->reason);
    if (rc < 0)
        CHECK(err->reason[0] != '\0');
    else
        CHECK(err->reason[0] == '\0');
    char line[300];
    evmsg_err_str(err, line, sizeof line);
    for (const char *p = err->path; *p; p++) /* paths are printable */
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

static void s_walk_map(const evmsg_map_t *m, int depth);

/* Reads left for the current input: a walk over 64 keys of 64 elements, 8 deep, would
 * otherwise never finish. */
static int s_budget;

/* Reads element i of a every way an array can be read. */
static void
s_walk_elem(const evmsg_array_t *a, size_t i, int depth)
{
    evmsg_err_t err = {0};
    evmsg_array_t arr = *a;
    arr.err = &err;
    char buf[257];
    int rc = evmsg_array_str_at(&arr, i, 0, 256, buf);
    s_err_sane(&err, rc < 0 ? -1 : 0);
    if (rc == 1)
        CHECK(memchr(buf, '\0', sizeof buf) != NULL);
    memset(&err, 0, sizeof err);
    int64_t v;
    rc = evmsg_array_int_at(&arr, i, INT64_MIN, INT64_MAX, &v);
    s_err_sane(&err, rc < 0 ? -1 : 0);
    memset(&err, 0, sizeof err);
    evmsg_map_t sub;
    rc = evmsg_array_map_at(&arr, i, &sub);
    s_err_sane(&err, rc < 0 ? -1 : 0);
    if (rc == 1) {
        sub.err = NULL;
        s_walk_map(&sub, depth + 1);
    }
}

/* Reads the value under key every way a map value can be read. */
static void
s_walk_key(const evmsg_map_t *mm, const char *key, int depth)
{
    if (s_budget-- <= 0)
        return;
    static const char *const names[] = {"penalty", "licence", "", "a", NULL};
    static const int flags[] = {EVMSG_REQUIRED, EVMSG_OPTIONAL,
                                EVMSG_NONEMPTY | EVMSG_ALLOW_CONTROL};
    evmsg_err_t err;
    evmsg_map_t m = *mm;
    m.err = &err;
    for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
        char buf[65];
        memset(&err, 0, sizeof err);
        int rc = evmsg_map_str(&m, key, flags[f], 64, buf);
        s_err_sane(&err, rc < 0 ? -1 : 0);
        if (rc == 1)
            CHECK(memchr(buf, '\0', sizeof buf) != NULL);
        const char *p;
        size_t n;
        memset(&err, 0, sizeof err);
        rc = evmsg_map_strp(&m, key, flags[f], EVMSG_MAX_BYTES, &p, &n);
        s_err_sane(&err, rc < 0 ? -1 : 0);
        if (rc == 1 && !(flags[f] & EVMSG_ALLOW_CONTROL))
            CHECK(n == 0 || memchr(p, '\0', n) == NULL);
    }
    memset(&err, 0, sizeof err);
    int64_t i;
    s_err_sane(&err, evmsg_map_int(&m, key, EVMSG_OPTIONAL, -1000, 1000, &i) < 0 ? -1 : 0);
    memset(&err, 0, sizeof err);
    s_err_sane(&err, evmsg_map_int(&m, key, 0, INT64_MIN, INT64_MAX, &i) < 0 ? -1 : 0);
    uint64_t u;
    memset(&err, 0, sizeof err);
    s_err_sane(&err, evmsg_map_uint(&m, key, 0, 1000, &u) < 0 ? -1 : 0);
    bool b;
    memset(&err, 0, sizeof err);
    s_err_sane(&err, evmsg_map_bool(&m, key, 0, &b) < 0 ? -1 : 0);
    int e;
    memset(&err, 0, sizeof err);
    s_err_sane(&err, evmsg_map_enum(&m, key, 0, names, &e) < 0 ? -1 : 0);
    for (int scale = 0; scale <= 6; scale++) {
        int64_t d;
        memset(&err, 0, sizeof err);
        int rc = evmsg_map_decimal(&m, key, 0, scale, INT64_MIN, INT64_MAX, &d);
        s_err_sane(&err, rc < 0 ? -1 : 0);
        memset(&err, 0, sizeof err);
        rc = evmsg_map_decimal(&m, key, 0, scale, -1000000, 1000000, &d);
        s_err_sane(&err, rc < 0 ? -1 : 0);
        if (rc == 1)
            CHECK(d >= -1000000 && d <= 1000000);
    }
    date_t day;
    memset(&err, 0, sizeof err);
    s_err_sane(&err, evmsg_map_date(&m, key, 0, &day) < 0 ? -1 : 0);

    evmsg_map_t sub;
    memset(&err, 0, sizeof err);
    int rc = evmsg_map_map(&m, key, 0, &sub);
    s_err_sane(&err, rc < 0 ? -1 : 0);
    if (rc == 1) {
        CHECK(depth < EVMSG_MAX_DEPTH);
        s_walk_map(&sub, depth + 1);
    }
    evmsg_array_t arr;
    memset(&err, 0, sizeof err);
    rc = evmsg_map_array(&m, key, 0, 1000000, &arr);
    s_err_sane(&err, rc < 0 ? -1 : 0);
    if (rc == 1) {
        CHECK(depth < EVMSG_MAX_DEPTH);
        size_t n = evmsg_array_count(&arr);
        for (size_t k = 0; k < n && k < 64; k++)
            s_walk_elem(&arr, k, depth + 1);
    }
}

static void
s_walk_map(const evmsg_map_t *mm, int depth)
{
    static const char *const allowed[] = {"a", "data", "seq", NULL};
    evmsg_err_t err = {0};
    evmsg_map_t m = *mm;
    m.err = &err;
    s_err_sane(&err, evmsg_map_only(&m, allowed));
    size_t n = evmsg_map_count(&m);
    for (size_t i = 0; i < n && i < 64; i++) {
        const char *k;
        size_t len;
        evmsg_map_key_at(&m, i, &k, &len);
        char key[65];
        if (len >= sizeof key || memchr(k, '\0', len))
            continue;
        memcpy(key, k, len);
        key[len] = '\0';
        s_walk_key(&m, key, depth);
    }
    /* Absent keys, required and optional. */
    s_walk_key(&m, "no-such-key", depth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    evmsg_err_t err = {0};
    evmsg_t *msg = (evmsg_t *)&err;
    s_budget = 500;
    int rc = evmsg_decode(data, size, &msg, &err);
    s_err_sane(&err, rc);
    if (rc < 0) {
        CHECK(msg == NULL);
    } else {
        CHECK(size <= EVMSG_MAX_BYTES);
        evmsg_map_t d = evmsg_data(msg, NULL);
        s_walk_map(&d, 2);

        /* Encode again from what was decoded: it must be accepted and decode to the
         * same header and the same data bytes. */
        const evmsg_header_t *h = evmsg_header(msg);
        size_t dlen;
        const void *dbytes = evmsg_data_bytes(msg, &dlen);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rc = evmsg_encode(&sb, h, dbytes, dlen, &err);
        if (rc < 0)
            fprintf(stderr, "re-encode: %s: %s\n", err.path, err.reason);
        CHECK(rc == 0);
        CHECK(sb.size <= size);
        evmsg_t *again = NULL;
        CHECK(evmsg_decode(sb.data, sb.size, &again, &err) == 0);
        const evmsg_header_t *h2 = evmsg_header(again);
        CHECK(h2->seq == h->seq && h2->aseq == h->aseq && h2->at == h->at && h2->v == h->v);
        CHECK(strcmp(h2->src, h->src) == 0);
        size_t dlen2;
        const void *dbytes2 = evmsg_data_bytes(again, &dlen2);
        CHECK(dlen2 == dlen && memcmp(dbytes2, dbytes, dlen) == 0);
        /* And the fixed-buffer encoder writes the same bytes. */
        unsigned char *buf = malloc(sb.size);
        size_t n = 0;
        CHECK(buf && evmsg_encode_buf(buf, sb.size, h, dbytes, dlen, &n, &err) == 0);
        CHECK(n == sb.size && memcmp(buf, sb.data, n) == 0);
        free(buf);
        evmsg_destroy(&again);
        msgpack_sbuffer_destroy(&sb);
        evmsg_destroy(&msg);
        CHECK(msg == NULL);
    }

    /* The same bytes as a request. */
    memset(&err, 0, sizeof err);
    rc = evmsg_decode_map(data, size, &msg, &err);
    s_err_sane(&err, rc);
    if (rc == 0) {
        s_budget = 500;
        evmsg_map_t r = evmsg_data(msg, NULL);
        s_walk_map(&r, 1);
        evmsg_destroy(&msg);
    }

    /* And as a topic frame. */
    char code[EVMSG_AGENCY_LEN + 1];
    memset(&err, 0, sizeof err);
    rc = evmsg_topic_check((const char *)data, size, code, &err);
    s_err_sane(&err, rc);
    if (rc == 0) {
        CHECK(size <= EVMSG_TOPIC_MAX && strlen(code) == EVMSG_AGENCY_LEN);
        CHECK(!evmsg_topic_is_system((const char *)data, size));
    }
    (void)evmsg_topic_is_system((const char *)data, size);
    return 0;
}
