/* evmsg: the envelope round trip, every way a message is refused, and the readers'
 * bounds, all as a service calling the API would see them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "evmsg.h"

/* ---- Helpers --------------------------------------------------------------------------- */

static void
pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
pk_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str_with_body(pk, s, n);
}

static const evmsg_header_t s_hdr = {
    .seq = 42, .aseq = 7, .src = "intake", .at = 1700000000123, .v = 1};

/* A data map with a bit of everything, nested. */
static void
s_pack_data(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    pk_str(&pk, "case_no");
    pk_str(&pk, "嘉执罚〔2019〕12号");
    pk_str(&pk, "amount");
    pk_str(&pk, "12.5");
    pk_str(&pk, "decided_on");
    pk_str(&pk, "2019-09-27");
    pk_str(&pk, "kind");
    pk_str(&pk, "penalty");
    pk_str(&pk, "public");
    msgpack_pack_true(&pk);
    pk_str(&pk, "parties");
    msgpack_pack_array(&pk, 3);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_map(&pk, 2);
        pk_str(&pk, "name");
        pk_str(&pk, i == 0 ? "张三" : i == 1 ? "李四" : "王五");
        pk_str(&pk, "addr");
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "city");
        pk_str(&pk, "嘉兴");
    }
    pk_str(&pk, "tags");
    msgpack_pack_array(&pk, 2);
    pk_str(&pk, "a");
    pk_str(&pk, "b");
}

/* A valid envelope around s_pack_data, appended to sb. */
static void
s_valid(msgpack_sbuffer *sb)
{
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    s_pack_data(&data);
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_encode(sb, &s_hdr, data.data, data.size, &err), 0);
    msgpack_sbuffer_destroy(&data);
}

/* An envelope packed by hand: the six fields, except that `field` is left out (fn NULL)
 * or its value packed by fn; a field name not among the six is added with fn's value. */
typedef void (*s_packfn_t)(msgpack_packer *pk);

static void
s_build(msgpack_sbuffer *sb, const char *field, s_packfn_t fn)
{
    static const char *const names[] = {"seq", "aseq", "src", "at", "v", "data"};
    bool known = false;
    for (int i = 0; i < 6; i++)
        known |= field && strcmp(field, names[i]) == 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6 + (!known && field ? 1 : 0) - (known && !fn ? 1 : 0));
    for (int i = 0; i < 6; i++) {
        if (field && strcmp(field, names[i]) == 0) {
            if (fn) {
                pk_str(&pk, names[i]);
                fn(&pk);
            }
            continue;
        }
        pk_str(&pk, names[i]);
        switch (i) {
        case 0:
            msgpack_pack_uint64(&pk, 1);
            break;
        case 1:
            msgpack_pack_uint64(&pk, 1);
            break;
        case 2:
            pk_str(&pk, "review");
            break;
        case 3:
            msgpack_pack_int64(&pk, 1);
            break;
        case 4:
            msgpack_pack_uint32(&pk, 1);
            break;
        default:
            msgpack_pack_map(&pk, 0);
        }
    }
    if (!known && field) {
        pk_str(&pk, field);
        fn(&pk);
    }
}

/* Decodes and expects failure with exactly this path and reason. */
static void
s_refused(const void *buf, size_t len, const char *path, const char *reason)
{
    evmsg_err_t err = {0};
    evmsg_t *msg = (evmsg_t *)&err; /* must be set to NULL */
    assert_int_equal(evmsg_decode(buf, len, &msg, &err), -1);
    assert_null(msg);
    assert_string_equal(err.path, path);
    assert_string_equal(err.reason, reason);
}

static void
s_build_refused(const char *field, s_packfn_t fn, const char *path, const char *reason)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_build(&sb, field, fn);
    s_refused(sb.data, sb.size, path, reason);
    msgpack_sbuffer_destroy(&sb);
}

/* A message whose data is one map {key: value packed by fn}, for the reader tests. */
typedef struct {
    evmsg_t *msg;
    evmsg_err_t err;
    evmsg_map_t d;
} s_one_t;

static s_packfn_t s_one_fn;

static void
s_one_data(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "f");
    s_one_fn(pk);
}

static void
s_one(s_one_t *o, s_packfn_t fn)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_one_fn = fn;
    s_build(&sb, "data", s_one_data);
    memset(o, 0, sizeof *o);
    assert_int_equal(evmsg_decode(sb.data, sb.size, &o->msg, &o->err), 0);
    o->d = evmsg_data(o->msg, &o->err);
    msgpack_sbuffer_destroy(&sb);
}

/* A one-field message holding the string s (n bytes). */
static const char *s_str_val;
static size_t s_str_len;

static void
s_pack_strval(msgpack_packer *pk)
{
    pk_strn(pk, s_str_val, s_str_len);
}

static void
s_one_str(s_one_t *o, const char *s, size_t n)
{
    s_str_val = s;
    s_str_len = n;
    s_one(o, s_pack_strval);
}

/* ---- Round trip -------------------------------------------------------------------- */

static void
test_round_trip(void **state)
{
    (void)state;
    msgpack_sbuffer data, sb;
    msgpack_sbuffer_init(&data);
    msgpack_sbuffer_init(&sb);
    s_pack_data(&data);
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_encode(&sb, &s_hdr, data.data, data.size, &err), 0);
    assert_string_equal(err.reason, "");

    /* encode_buf writes the same bytes. */
    unsigned char buf[1024];
    size_t n = 0;
    assert_int_equal(evmsg_encode_buf(buf, sizeof buf, &s_hdr, data.data, data.size, &n, &err), 0);
    assert_int_equal(n, sb.size);
    assert_memory_equal(buf, sb.data, n);

    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(sb.data, sb.size, &msg, &err), 0);
    assert_non_null(msg);
    memset(sb.data, 0, sb.size); /* the message owns a copy */
    const evmsg_header_t *h = evmsg_header(msg);
    assert_int_equal(h->seq, 42);
    assert_int_equal(h->aseq, 7);
    assert_string_equal(h->src, "intake");
    assert_int_equal(h->at, 1700000000123);
    assert_int_equal(h->v, 1);
    size_t dlen;
    const void *dbytes = evmsg_data_bytes(msg, &dlen);
    assert_int_equal(dlen, data.size);
    assert_memory_equal(dbytes, data.data, dlen);

    evmsg_map_t d = evmsg_data(msg, &err);
    static const char *const keys[] = {"case_no", "amount",  "decided_on", "kind",
                                       "public",  "parties", "tags",       NULL};
    static const char *const kinds[] = {"licence", "penalty", NULL};
    assert_int_equal(evmsg_map_only(&d, keys), 0);
    char case_no[65];
    assert_int_equal(evmsg_map_str(&d, "case_no", EVMSG_REQUIRED, 64, case_no), 1);
    assert_string_equal(case_no, "嘉执罚〔2019〕12号");
    int64_t amount;
    assert_int_equal(evmsg_map_decimal(&d, "amount", EVMSG_REQUIRED, 6, 0, INT64_MAX, &amount), 1);
    assert_int_equal(amount, 12500000);
    date_t day;
    assert_int_equal(evmsg_map_date(&d, "decided_on", EVMSG_REQUIRED, &day), 1);
    assert_int_equal(day, date_from_ymd(2019, 9, 27));
    int kind = -1;
    assert_int_equal(evmsg_map_enum(&d, "kind", EVMSG_REQUIRED, kinds, &kind), 1);
    assert_int_equal(kind, 1);
    bool pub = false;
    assert_int_equal(evmsg_map_bool(&d, "public", EVMSG_REQUIRED, &pub), 1);
    assert_true(pub);
    evmsg_array_t parties;
    assert_int_equal(evmsg_map_array(&d, "parties", EVMSG_REQUIRED, 10, &parties), 1);
    assert_int_equal(evmsg_array_count(&parties), 3);
    evmsg_map_t p2, addr;
    assert_int_equal(evmsg_array_map_at(&parties, 2, &p2), 1);
    assert_string_equal(p2.path, "data.parties[2]");
    char name[17], city[17];
    assert_int_equal(evmsg_map_str(&p2, "name", EVMSG_REQUIRED, 16, name), 1);
    assert_string_equal(name, "王五");
    assert_int_equal(evmsg_map_map(&p2, "addr", EVMSG_REQUIRED, &addr), 1);
    assert_string_equal(addr.path, "data.parties[2].addr");
    assert_int_equal(evmsg_map_str(&addr, "city", EVMSG_REQUIRED, 16, city), 1);
    assert_string_equal(city, "嘉兴");
    evmsg_array_t tags;
    assert_int_equal(evmsg_map_array(&d, "tags", EVMSG_REQUIRED, 2, &tags), 1);
    char tag[2];
    assert_int_equal(evmsg_array_str_at(&tags, 1, 0, 1, tag), 1);
    assert_string_equal(tag, "b");
    /* Reading again gives the same answer. */
    amount = 0;
    assert_int_equal(evmsg_map_decimal(&d, "amount", EVMSG_REQUIRED, 6, 0, INT64_MAX, &amount), 1);
    assert_int_equal(amount, 12500000);
    assert_string_equal(err.reason, "");

    evmsg_destroy(&msg);
    assert_null(msg);
    evmsg_destroy(&msg); /* idempotent */
    msgpack_sbuffer_destroy(&data);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_decode_map_for_requests(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "rid");
    pk_str(&pk, "r-1");
    pk_str(&pk, "body");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "n");
    msgpack_pack_int(&pk, -3);
    evmsg_err_t err = {0};
    evmsg_t *msg;
    assert_int_equal(evmsg_decode_map(sb.data, sb.size, &msg, &err), 0);
    assert_int_equal(evmsg_header(msg)->seq, 0);
    evmsg_map_t r = evmsg_data(msg, &err), body;
    assert_string_equal(r.path, "");
    char op[17];
    assert_int_equal(evmsg_map_str(&r, "op", EVMSG_REQUIRED, 16, op), -1);
    assert_int_equal(evmsg_map_map(&r, "body", EVMSG_REQUIRED, &body), 1);
    int64_t nv;
    assert_int_equal(evmsg_map_int(&body, "n", EVMSG_REQUIRED, 0, 10, &nv), -1);
    char text[300];
    assert_string_equal(evmsg_err_str(&err, text, sizeof text), "op: missing");
    size_t dlen;
    evmsg_data_bytes(msg, &dlen);
    assert_int_equal(dlen, sb.size);
    evmsg_destroy(&msg);
    /* The envelope decoder refuses a request: it has no header. */
    s_refused(sb.data, sb.size, "rid", "unknown key");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- Refused messages --------------------------------------------------------------- */

static void
test_every_truncation_refused(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_valid(&sb);
    for (size_t n = 0; n < sb.size; n++) {
        /* A fresh heap copy of exactly n bytes, so ASan sees any read past the end. */
        char *cut = malloc(n ? n : 1);
        memcpy(cut, sb.data, n);
        evmsg_err_t err = {0};
        evmsg_t *msg = NULL;
        assert_int_equal(evmsg_decode(cut, n, &msg, &err), -1);
        assert_null(msg);
        if (n == 0)
            assert_string_equal(err.reason, "empty message");
        else if (!strstr(err.reason, "truncated"))
            fail_msg("prefix %zu: %s: %s", n, err.path, err.reason);
        free(cut);
    }
    /* One cut, in full: inside data.parties[1]'s name. */
    evmsg_err_t err = {0};
    evmsg_t *msg = NULL;
    const char *p = memmem(sb.data, sb.size, "李四", 6);
    assert_non_null(p);
    size_t n = (size_t)(p - sb.data) + 2;
    assert_int_equal(evmsg_decode(sb.data, n, &msg, &err), -1);
    assert_string_equal(err.path, "data.parties[1].name");
    assert_string_equal(err.reason, "truncated");
    msgpack_sbuffer_destroy(&sb);
}

/* Packs data {"s": "xxx..."} with the string sized so the envelope is total bytes. */
static void
s_sized(msgpack_sbuffer *sb, size_t total)
{
    static char big[70000];
    memset(big, 'x', sizeof big);
    msgpack_sbuffer probe;
    msgpack_sbuffer_init(&probe);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &probe, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "s");
    pk_strn(&pk, big, 1000); /* str 16 like the final one */
    evmsg_err_t err = {0};
    msgpack_sbuffer env;
    msgpack_sbuffer_init(&env);
    assert_int_equal(evmsg_encode(&env, &s_hdr, probe.data, probe.size, &err), 0);
    size_t len = 1000 + total - env.size;
    assert_true(len < 65536);
    /* Pack by hand, so sizes over the limit can be built too. */
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(sb, env.data, env.size - probe.size);
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "s");
    pk_strn(&pk, big, len);
    assert_int_equal(sb->size, total);
    msgpack_sbuffer_destroy(&probe);
    msgpack_sbuffer_destroy(&env);
}

static void
test_size_limit(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_sized(&sb, 65536);
    evmsg_err_t err = {0};
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(sb.data, sb.size, &msg, &err), 0);
    evmsg_destroy(&msg);
    msgpack_sbuffer_clear(&sb);
    s_sized(&sb, 65537);
    s_refused(sb.data, sb.size, "", "message larger than 65536 bytes");

    /* The encoder refuses to build it, and leaves its buffer as it was. */
    size_t dlen;
    const char *head_end = memmem(sb.data, sb.size, "data", 4);
    assert_non_null(head_end);
    dlen = sb.size - (size_t)(head_end + 4 - sb.data);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_sbuffer_write(&out, "ab", 2);
    assert_int_equal(evmsg_encode(&out, &s_hdr, head_end + 4, dlen, &err), -1);
    assert_string_equal(err.reason, "message larger than 65536 bytes");
    assert_int_equal(out.size, 2);
    msgpack_sbuffer_destroy(&out);
    msgpack_sbuffer_destroy(&sb);
}

/* data = {"a": {"a": ... {}}} with `levels` maps. */
static int s_levels;

static void
s_pack_nested(msgpack_packer *pk)
{
    for (int i = 1; i < s_levels; i++) {
        msgpack_pack_map(pk, 1);
        pk_str(pk, "a");
    }
    msgpack_pack_map(pk, 0);
}

static void
test_nesting_limit(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_levels = 7; /* the envelope and data's 7 maps: 8 deep */
    s_build(&sb, "data", s_pack_nested);
    evmsg_err_t err = {0};
    evmsg_t *msg = NULL;
    assert_int_equal(evmsg_decode(sb.data, sb.size, &msg, &err), 0);
    evmsg_destroy(&msg);
    s_levels = 8;
    s_build_refused("data", s_pack_nested, "data.a.a.a.a.a.a.a", "nesting deeper than 8");

    /* Arrays count as nesting too; a deep message far beyond the limit stops at 9. */
    static unsigned char deep[4096];
    const unsigned char head[] = {0x81, 0xa4, 'd', 'a', 't', 'a'};
    memcpy(deep, head, sizeof head);
    memset(deep + sizeof head, 0x91, sizeof deep - sizeof head);
    s_refused(deep, sizeof deep, "data[0][0][0][0][0][0][0]", "nesting deeper than 8");
    msgpack_sbuffer_destroy(&sb);
}

static void
test_huge_claimed_counts_refused_quickly(void **state)
{
    (void)state;
    /* {"data": array32 of 2^32-1 elements} in 10 bytes. */
    const unsigned char arr[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
    /* map32 of 2^32-1 entries at the root, with a few bytes after. */
    const unsigned char map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    /* str32 claiming 4 GiB. */
    const unsigned char str[] = {0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    /* ext32 and bin32 likewise. */
    const unsigned char ext[] = {0x81, 0xa1, 'a', 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01, 'x'};
    const unsigned char bin[] = {0x81, 0xa1, 'a', 0xc6, 0x00, 0x01, 0x00, 0x00, 'x'};
    clock_t t0 = clock();
    for (int i = 0; i < 1000; i++) {
        s_refused(arr, sizeof arr, "data", "truncated (claims 4294967295 elements, 0 bytes left)");
        s_refused(map, sizeof map, "", "truncated (claims 4294967295 entries, 3 bytes left)");
        s_refused(str, sizeof str, "a", "truncated");
        s_refused(ext, sizeof ext, "a", "truncated");
        s_refused(bin, sizeof bin, "a", "truncated");
    }
    /* 5000 refusals: a huge allocation would take far longer than this. */
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
    /* A count that the remaining bytes can hold exactly is fine. */
    const unsigned char ok[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0x92, 0xc0, 0xc0};
    evmsg_t *msg;
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_decode_map(ok, sizeof ok, &msg, &err), 0);
    evmsg_destroy(&msg);
}

static void
test_keys_must_be_unique_strings(void **state)
{
    (void)state;
    /* {"data": {1: 2}} */
    const unsigned char intkey[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0x81, 0x01, 0x02};
    s_refused(intkey, sizeof intkey, "data", "map key is not a string");
    /* {"data": {"x": [{nil: 1}]}} */
    const unsigned char nilkey[] = {0x81, 0xa4, 'd',  'a',  't',  'a', 0x81,
                                    0xa1, 'x',  0x91, 0x81, 0xc0, 0x01};
    s_refused(nilkey, sizeof nilkey, "data.x[0]", "map key is not a string");
    /* {"seq": 1, "seq": 2} */
    const unsigned char dupseq[] = {0x82, 0xa3, 's', 'e', 'q', 0x01, 0xa3, 's', 'e', 'q', 0x02};
    s_refused(dupseq, sizeof dupseq, "seq", "duplicate key");
    /* {"data": {"p": [{"n": 1, "n": 1}]}} */
    const unsigned char dupnest[] = {0x81, 0xa4, 'd',  'a', 't',  'a',  0x81, 0xa1, 'p',
                                     0x91, 0x82, 0xa1, 'n', 0x01, 0xa1, 'n',  0x01};
    s_refused(dupnest, sizeof dupnest, "data.p[0].n", "duplicate key");

    /* A map of 5,000 distinct keys is fine; the same with the last key repeated is
     * refused (the large-map path sorts rather than comparing every pair). */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int dup = 0; dup < 2; dup++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        pk_str(&pk, "data");
        msgpack_pack_map(&pk, 5000);
        char key[16];
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof key, "k%d", dup && i == 4999 ? 17 : i);
            pk_str(&pk, key);
            msgpack_pack_nil(&pk);
        }
        if (!dup) {
            evmsg_t *msg;
            evmsg_err_t err = {0};
            assert_int_equal(evmsg_decode_map(sb.data, sb.size, &msg, &err), 0);
            evmsg_destroy(&msg);
        }
    }
    s_refused(sb.data, sb.size, "data.k17", "duplicate key");
    msgpack_sbuffer_destroy(&sb);
}

static void
test_trailing_and_foreign_bytes(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_valid(&sb);
    msgpack_sbuffer_write(&sb, "\xc0\xc0", 2);
    s_refused(sb.data, sb.size, "", "trailing bytes after the message (2)");
    const unsigned char c1[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0xc1};
    s_refused(c1, sizeof c1, "data", "not msgpack (byte 0xc1 at byte 6)");
    const unsigned char arr[] = {0x90};
    s_refused(arr, sizeof arr, "", "expected map");
    s_refused("\x01", 1, "", "expected map");
    msgpack_sbuffer_destroy(&sb);
}

static void
pk_neg(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, -1);
}
static void
pk_zero(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 0);
}
static void
pk_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.0);
}
static void
pk_upper(msgpack_packer *pk)
{
    pk_str(pk, "Intake");
}
static void
pk_long_src(msgpack_packer *pk)
{
    pk_str(pk, "a23456789012345678901234567890123");
}
static void
pk_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void
pk_big_v(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
}
static void
pk_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}

static void
test_envelope_fields(void **state)
{
    (void)state;
    s_build_refused("seq", NULL, "seq", "missing");
    s_build_refused("aseq", pk_nil, "aseq", "missing");
    s_build_refused("seq", pk_neg, "seq", "expected unsigned integer");
    s_build_refused("aseq", pk_float, "aseq", "expected unsigned integer");
    s_build_refused("src", NULL, "src", "missing");
    s_build_refused("src", pk_upper, "src", "expected service name [a-z][a-z0-9_-]{0,31}");
    s_build_refused("src", pk_long_src, "src", "longer than 32 bytes");
    s_build_refused("src", pk_zero, "src", "expected string");
    s_build_refused("at", pk_neg, "at", "must be between 0 and 9223372036854775807");
    s_build_refused("at", pk_float, "at", "expected integer");
    s_build_refused("v", pk_zero, "v", "must be between 1 and 4294967295");
    s_build_refused("v", pk_big_v, "v", "must be between 1 and 4294967295");
    s_build_refused("data", NULL, "data", "missing");
    s_build_refused("data", pk_array, "data", "expected map");
    s_build_refused("extra", pk_zero, "extra", "unknown key");

    /* Boundaries that are fine: seq at its maximum, at 0. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    evmsg_header_t h = s_hdr;
    h.seq = UINT64_MAX;
    h.at = 0;
    h.v = UINT32_MAX;
    evmsg_err_t err = {0};
    assert_int_equal(evmsg_encode(&sb, &h, "\x80", 1, &err), 0);
    evmsg_t *msg;
    assert_int_equal(evmsg_decode(sb.data, sb.size, &msg, &err), 0);
    assert_true(evmsg_header(msg)->seq == UINT64_MAX);
    assert_int_equal(evmsg_header(msg)->at, 0);
    assert_int_equal(evmsg_header(msg)->v, UINT32_MAX);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_encode_checks_its_input(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    evmsg_err_t err = {0};
    evmsg_header_t h = s_hdr;
    strcpy(h.src, "9lives");
    assert_int_equal(evmsg_encode(&sb, &h, "\x80", 1, &err), -1);
    assert_string_equal(err.path, "src");
    h = s_hdr;
    h.v = 0;
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_encode(&sb, &h, "\x80", 1, &err), -1);
    assert_string_equal(err.path, "v");
    h.v = 1;
    h.at = -5;
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_encode(&sb, &h, "\x80", 1, &err), -1);
    assert_string_equal(err.path, "at");

    struct {
        const char *bytes;
        size_t len;
        const char *path, *reason;
    } bad[] = {
        {"\x90", 1, "data", "expected map"},
        {"", 0, "data", "empty message"},
        {"\x81\xa1x\x01\xc0", 5, "data", "trailing bytes after the message (1)"},
        {"\x82\xa1x\x01\xa1x\x02", 7, "data.x", "duplicate key"},
        {"\x81\xa1x", 3, "data.x", "truncated"},
        {"\x81\x01\x01", 3, "data", "map key is not a string"},
        /* data may nest 7 deep inside the envelope, not 8 */
        {"\x81\xa1x\x91\x91\x91\x91\x91\x91\x90", 10, "data.x[0][0][0][0][0][0]",
         "nesting deeper than 8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(evmsg_encode(&sb, &s_hdr, bad[i].bytes, bad[i].len, &err), -1);
        assert_string_equal(err.path, bad[i].path);
        assert_string_equal(err.reason, bad[i].reason);
    }
    assert_int_equal(sb.size, 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_encode(&sb, &s_hdr, "\x81\xa1x\x91\x91\x91\x91\x91\x90", 9, &err), 0);

    unsigned char small[16];
    size_t n;
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_encode_buf(small, sizeof small, &s_hdr, "\x80", 1, &n, &err), -1);
    assert_non_null(strstr(err.reason, "buffer too small"));
    msgpack_sbuffer_destroy(&sb);
}

/* ---- Readers ------------------------------------------------------------------------- */

static void
s_done(s_one_t *o)
{
    evmsg_destroy(&o->msg);
}

/* Reads f as a string of at most max bytes; returns the reader's result. */
static int
s_read_str(const char *s, size_t n, int flags, size_t max, char *out, evmsg_err_t *err_out)
{
    s_one_t o;
    s_one_str(&o, s, n);
    int rc = evmsg_map_str(&o.d, "f", flags, max, out);
    *err_out = o.err;
    s_done(&o);
    return rc;
}

static void
test_str_bounds_and_utf8(void **state)
{
    (void)state;
    char buf[64];
    evmsg_err_t err;
    assert_int_equal(s_read_str("abcd", 4, 0, 4, buf, &err), 1);
    assert_string_equal(buf, "abcd");
    assert_int_equal(s_read_str("abcde", 5, 0, 4, buf, &err), -1);
    assert_string_equal(err.path, "data.f");
    assert_string_equal(err.reason, "longer than 4 bytes");
    assert_int_equal(s_read_str("", 0, 0, 4, buf, &err), 1);
    assert_string_equal(buf, "");
    assert_int_equal(s_read_str("", 0, EVMSG_NONEMPTY, 4, buf, &err), -1);
    assert_string_equal(err.reason, "empty");
    /* 4-byte and 3-byte forms at their edges are fine. */
    assert_int_equal(s_read_str("\xf4\x8f\xbf\xbf\xe4\xb8\xad\xc2\x80", 9, 0, 16, buf, &err), 1);

    struct {
        const char *s;
        size_t n;
        const char *reason;
    } bad[] = {
        {"ab\xff", 3, "not valid UTF-8 at byte 2"},
        {"\xc0\x80", 2, "not valid UTF-8 at byte 0"},         /* overlong NUL */
        {"a\xc1\xbf", 3, "not valid UTF-8 at byte 1"},        /* overlong */
        {"\xe0\x80\x80", 3, "not valid UTF-8 at byte 0"},     /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 4, "not valid UTF-8 at byte 0"}, /* overlong 4-byte */
        {"xyz\xed\xa0\x80", 6, "not valid UTF-8 at byte 3"},  /* surrogate D800 */
        {"\xed\xbf\xbf", 3, "not valid UTF-8 at byte 0"},     /* surrogate DFFF */
        {"\xf4\x90\x80\x80", 4, "not valid UTF-8 at byte 0"}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, "not valid UTF-8 at byte 0"}, /* beyond */
        {"\xe4\xb8", 2, "not valid UTF-8 at byte 0"},         /* cut short */
        {"\xe4\x41\x80", 3, "not valid UTF-8 at byte 0"},     /* bad continuation */
        {"\x80", 1, "not valid UTF-8 at byte 0"},             /* lone continuation */
        {"a\x01", 2, "control character at byte 1"},
        {"a\0b", 3, "control character at byte 1"},
        {"\x1b[2J", 4, "control character at byte 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(buf, "unchanged");
        assert_int_equal(s_read_str(bad[i].s, bad[i].n, 0, 16, buf, &err), -1);
        assert_string_equal(err.path, "data.f");
        assert_string_equal(err.reason, bad[i].reason);
        assert_string_equal(buf, "unchanged");
    }
    assert_int_equal(s_read_str("a\tb\r\nc", 6, 0, 16, buf, &err), 1);
    assert_int_equal(s_read_str("a\x01", 2, EVMSG_ALLOW_CONTROL, 16, buf, &err), 1);
    /* NUL is never allowed: the copy is a C string. */
    assert_int_equal(s_read_str("a\0", 2, EVMSG_ALLOW_CONTROL, 16, buf, &err), -1);
    assert_string_equal(err.reason, "control character at byte 1");

    /* Not a string; strp points into the message. */
    s_one_t o;
    s_one(&o, pk_zero);
    assert_int_equal(evmsg_map_str(&o.d, "f", 0, 16, buf), -1);
    assert_string_equal(o.err.reason, "expected string");
    s_done(&o);
    s_one_str(&o, "hello", 5);
    const char *p;
    size_t n;
    assert_int_equal(evmsg_map_strp(&o.d, "f", 0, 16, &p, &n), 1);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    s_done(&o);
    /* "" is a real empty string, never a NULL pointer. */
    s_one_str(&o, "", 0);
    p = NULL;
    assert_int_equal(evmsg_map_strp(&o.d, "f", 0, 16, &p, &n), 1);
    assert_non_null(p);
    assert_int_equal(n, 0);
    s_done(&o);
}

static void
test_absent_optional_and_nil(void **state)
{
    (void)state;
    s_one_t o;
    s_one(&o, pk_nil); /* {"f": nil} */
    char buf[8] = "keep";
    int64_t i = 99;
    assert_int_equal(evmsg_map_str(&o.d, "f", EVMSG_OPTIONAL, 7, buf), 0);
    assert_int_equal(evmsg_map_int(&o.d, "g", EVMSG_OPTIONAL, 0, 1, &i), 0);
    assert_string_equal(buf, "keep");
    assert_int_equal(i, 99);
    assert_string_equal(o.err.reason, "");
    assert_int_equal(evmsg_map_str(&o.d, "f", EVMSG_REQUIRED, 7, buf), -1);
    assert_string_equal(o.err.path, "data.f");
    assert_string_equal(o.err.reason, "missing");

    /* An absent optional map reads as absent throughout; a failed one fails quietly. */
    evmsg_map_t sub;
    memset(&o.err, 0, sizeof o.err);
    assert_int_equal(evmsg_map_map(&o.d, "none", EVMSG_OPTIONAL, &sub), 0);
    assert_int_equal(evmsg_map_str(&sub, "x", EVMSG_REQUIRED, 7, buf), 0);
    assert_int_equal(evmsg_map_count(&sub), 0);
    assert_string_equal(o.err.reason, "");
    assert_int_equal(evmsg_map_map(&o.d, "none", EVMSG_REQUIRED, &sub), -1);
    assert_string_equal(o.err.path, "data.none");
    assert_int_equal(evmsg_map_str(&sub, "x", EVMSG_REQUIRED, 7, buf), -1);
    assert_string_equal(o.err.path, "data.none");
    evmsg_array_t arr;
    assert_int_equal(evmsg_map_array(&o.d, "none", EVMSG_OPTIONAL, 3, &arr), 0);
    assert_int_equal(evmsg_array_count(&arr), 0);
    s_done(&o);
}

static void
test_first_error_kept(void **state)
{
    (void)state;
    s_one_t o;
    s_one_str(&o, "abc", 3);
    int64_t i;
    char buf[8];
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, 0, 1, &i), -1);
    assert_int_equal(evmsg_map_str(&o.d, "missing", 0, 7, buf), -1);
    assert_string_equal(o.err.path, "data.f");
    assert_string_equal(o.err.reason, "expected integer");
    /* Reads that succeed still work after an error. */
    assert_int_equal(evmsg_map_str(&o.d, "f", 0, 7, buf), 1);
    assert_string_equal(buf, "abc");
    char text[64];
    assert_string_equal(evmsg_err_str(&o.err, text, sizeof text), "data.f: expected integer");
    assert_string_equal(evmsg_err_str(&o.err, text, 8), "data.f:");
    evmsg_err_t none = {0};
    assert_string_equal(evmsg_err_str(&none, text, sizeof text), "");
    /* A NULL err is allowed: the result alone tells. */
    evmsg_map_t quiet = o.d;
    quiet.err = NULL;
    assert_int_equal(evmsg_map_int(&quiet, "f", 0, 0, 1, &i), -1);
    s_done(&o);
}

static void
pk_i_neg5(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, -5);
}
static void
pk_u_max(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, UINT64_MAX);
}
static void
pk_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}

static void
test_int_uint_bool(void **state)
{
    (void)state;
    s_one_t o;
    int64_t i = 0;
    uint64_t u = 0;
    bool b = false;
    s_one(&o, pk_i_neg5);
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, -5, 5, &i), 1);
    assert_int_equal(i, -5);
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, -4, 5, &i), -1);
    assert_string_equal(o.err.reason, "must be between -4 and 5");
    memset(&o.err, 0, sizeof o.err);
    assert_int_equal(evmsg_map_uint(&o.d, "f", 0, 10, &u), -1);
    assert_string_equal(o.err.reason, "expected unsigned integer");
    memset(&o.err, 0, sizeof o.err);
    assert_int_equal(evmsg_map_bool(&o.d, "f", 0, &b), -1);
    assert_string_equal(o.err.reason, "expected boolean");
    s_done(&o);

    s_one(&o, pk_u_max);
    assert_int_equal(evmsg_map_uint(&o.d, "f", 0, UINT64_MAX, &u), 1);
    assert_true(u == UINT64_MAX);
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, INT64_MIN, INT64_MAX, &i), -1);
    assert_string_equal(o.err.reason,
                        "must be between -9223372036854775808 and 9223372036854775807");
    memset(&o.err, 0, sizeof o.err);
    assert_int_equal(evmsg_map_uint(&o.d, "f", 0, 100, &u), -1);
    assert_string_equal(o.err.reason, "must be at most 100");
    s_done(&o);

    s_one(&o, pk_true);
    assert_int_equal(evmsg_map_bool(&o.d, "f", 0, &b), 1);
    assert_true(b);
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, 0, 1, &i), -1);
    assert_string_equal(o.err.reason, "expected integer");
    s_done(&o);

    s_one(&o, pk_float);
    assert_int_equal(evmsg_map_int(&o.d, "f", 0, 0, 1, &i), -1);
    assert_string_equal(o.err.reason, "expected integer");
    s_done(&o);
}

static int
s_read_dec(const char *s, int scale, int64_t min, int64_t max, int64_t *out, evmsg_err_t *err)
{
    s_one_t o;
    s_one_str(&o, s, strlen(s));
    int rc = evmsg_map_decimal(&o.d, "f", 0, scale, min, max, out);
    *err = o.err;
    s_done(&o);
    return rc;
}

static void
test_decimal(void **state)
{
    (void)state;
    struct {
        const char *s;
        int scale;
        int64_t want;
    } good[] = {
        {"0", 6, 0},
        {"0.5", 6, 500000},
        {"12.5", 6, 12500000},
        {"12.50", 2, 1250},
        {"-0.000001", 6, -1},
        {"100", 0, 100},
        {"999999999999999", 0, 999999999999999},
        {"999999999999999.99", 2, 99999999999999999},
        {"-922337203685.4775", 4, -INT64_C(9223372036854775)},
        {"9223372036854.775807", 6, INT64_MAX},
        {"-9223372036854.775808", 6, INT64_MIN},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t v = 12345;
        evmsg_err_t err;
        if (s_read_dec(good[i].s, good[i].scale, INT64_MIN, INT64_MAX, &v, &err) != 1)
            fail_msg("%s: %s", good[i].s, err.reason);
        assert_int_equal(v, good[i].want);
    }
    const char *bad[] = {"",    "-",    "+1",   "01",        "00.5",
                         "1.",  ".5",   "1e3",  "1.1234567", " 1",
                         "1 ",  "1,5",  "0x10", "1.2.3",     "1234567890123456",
                         "--1", "1.-5", "١٢"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 12345;
        evmsg_err_t err;
        assert_int_equal(s_read_dec(bad[i], 6, INT64_MIN, INT64_MAX, &v, &err), -1);
        assert_string_equal(err.path, "data.f");
        assert_string_equal(err.reason, "expected decimal with at most 6 decimals");
        assert_int_equal(v, 12345);
    }
    int64_t v;
    evmsg_err_t err;
    assert_int_equal(s_read_dec("1.5", 0, 0, 100, &v, &err), -1);
    assert_string_equal(err.reason, "expected decimal with no decimals");
    assert_int_equal(s_read_dec("-0", 2, -100, 100, &v, &err), -1);
    assert_string_equal(err.reason, "negative zero");
    assert_int_equal(s_read_dec("-0.00", 2, -100, 100, &v, &err), -1);
    assert_string_equal(err.reason, "negative zero");
    assert_int_equal(s_read_dec("100.01", 2, 0, 10000, &v, &err), -1);
    assert_string_equal(err.reason, "must be between 0.00 and 100.00");
    assert_int_equal(s_read_dec("-0.01", 2, 0, 10000, &v, &err), -1);
    assert_string_equal(err.reason, "must be between 0.00 and 100.00");
    /* 15 digits at scale 6 overflow 64 bits: out of range, not wrapped. */
    assert_int_equal(s_read_dec("999999999999999.999999", 6, INT64_MIN, INT64_MAX, &v, &err), -1);
    assert_string_equal(err.reason,
                        "must be between -9223372036854.775808 and 9223372036854.775807");
    assert_int_equal(s_read_dec("9223372036854.775808", 6, INT64_MIN, INT64_MAX, &v, &err), -1);

    s_one_t o;
    s_one(&o, pk_zero);
    assert_int_equal(evmsg_map_decimal(&o.d, "f", 0, 2, 0, 100, &v), -1);
    assert_string_equal(o.err.reason, "expected decimal string");
    s_done(&o);
}

static void
test_date(void **state)
{
    (void)state;
    s_one_t o;
    date_t d = 0;
    s_one_str(&o, "2020-02-29", 10);
    assert_int_equal(evmsg_map_date(&o.d, "f", 0, &d), 1);
    assert_int_equal(d, date_from_ymd(2020, 2, 29));
    s_done(&o);
    s_one_str(&o, "2019-02-29", 10);
    assert_int_equal(evmsg_map_date(&o.d, "f", 0, &d), -1);
    assert_string_equal(o.err.path, "data.f");
    assert_string_equal(o.err.reason, "no such date");
    assert_int_equal(d, date_from_ymd(2020, 2, 29));
    s_done(&o);
    s_one_str(&o, "2019/02/28", 10);
    assert_int_equal(evmsg_map_date(&o.d, "f", 0, &d), -1);
    assert_string_equal(o.err.reason, "expected YYYY-MM-DD");
    s_done(&o);
    s_one_str(&o, "2019-02-28T00", 13);
    assert_int_equal(evmsg_map_date(&o.d, "f", 0, &d), -1);
    assert_string_equal(o.err.reason, "expected YYYY-MM-DD");
    s_done(&o);
    s_one(&o, pk_zero);
    assert_int_equal(evmsg_map_date(&o.d, "f", 0, &d), -1);
    assert_string_equal(o.err.reason, "expected string");
    s_done(&o);
}

static void
test_enum_lists_allowed(void **state)
{
    (void)state;
    static const char *const kinds[] = {"penalty", "licence", "inspection", NULL};
    s_one_t o;
    int k = -1;
    s_one_str(&o, "inspection", 10);
    assert_int_equal(evmsg_map_enum(&o.d, "f", 0, kinds, &k), 1);
    assert_int_equal(k, 2);
    s_done(&o);
    s_one_str(&o, "Penalty", 7);
    assert_int_equal(evmsg_map_enum(&o.d, "f", 0, kinds, &k), -1);
    assert_string_equal(o.err.reason, "expected one of: penalty, licence, inspection");
    assert_int_equal(k, 2);
    /* A long list is cut with "..." and never overflows the reason. */
    static const char *const many[] = {"administrative_penalty",
                                       "administrative_licensing",
                                       "administrative_coercion",
                                       "administrative_inspection",
                                       "administrative_collection",
                                       "administrative_confirmation",
                                       "administrative_reward",
                                       "administrative_adjudication",
                                       "other",
                                       NULL};
    memset(&o.err, 0, sizeof o.err);
    assert_int_equal(evmsg_map_enum(&o.d, "f", 0, many, &k), -1);
    size_t n = strlen(o.err.reason);
    assert_true(n < sizeof o.err.reason);
    assert_string_equal(o.err.reason + n - 3, "...");
    assert_memory_equal(o.err.reason, "expected one of: administrative_penalty, ", 41);
    s_done(&o);
}

/* data = {"parties": [{"name": "a"}, {"name": "b"}, {"name": 7, "ids": ["x", 1]}]} */
static void
s_pack_parties(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "parties");
    msgpack_pack_array(pk, 4);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(pk, 1);
        pk_str(pk, "name");
        pk_str(pk, i ? "b" : "a");
    }
    msgpack_pack_map(pk, 2);
    pk_str(pk, "name");
    msgpack_pack_int(pk, 7);
    pk_str(pk, "ids");
    msgpack_pack_array(pk, 2);
    pk_str(pk, "x");
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 5);
}

static void
test_paths_through_arrays(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_build(&sb, "data", s_pack_parties);
    evmsg_err_t err = {0};
    evmsg_t *msg;
    assert_int_equal(evmsg_decode(sb.data, sb.size, &msg, &err), 0);
    evmsg_map_t d = evmsg_data(msg, &err), p;
    evmsg_array_t parties, ids;
    assert_int_equal(evmsg_map_array(&d, "parties", 0, 3, &parties), -1);
    assert_string_equal(err.path, "data.parties");
    assert_string_equal(err.reason, "more than 3 elements");
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_map_array(&d, "parties", 0, 4, &parties), 1);
    assert_int_equal(evmsg_array_count(&parties), 4);
    char name[8];
    assert_int_equal(evmsg_array_map_at(&parties, 2, &p), 1);
    assert_int_equal(evmsg_map_str(&p, "name", 0, 7, name), -1);
    assert_string_equal(err.path, "data.parties[2].name");
    assert_string_equal(err.reason, "expected string");
    char text[200];
    assert_string_equal(evmsg_err_str(&err, text, sizeof text),
                        "data.parties[2].name: expected string");
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_map_array(&p, "ids", 0, 2, &ids), 1);
    assert_int_equal(evmsg_array_str_at(&ids, 0, 0, 7, name), 1);
    assert_string_equal(name, "x");
    assert_int_equal(evmsg_array_str_at(&ids, 1, 0, 7, name), -1);
    assert_string_equal(err.path, "data.parties[2].ids[1]");
    memset(&err, 0, sizeof err);
    int64_t v;
    assert_int_equal(evmsg_array_int_at(&ids, 1, 0, 9, &v), 1);
    assert_int_equal(v, 1);
    assert_int_equal(evmsg_array_map_at(&parties, 3, &p), -1);
    assert_string_equal(err.path, "data.parties[3]");
    assert_string_equal(err.reason, "expected map");
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_map_map(&d, "parties", 0, &p), -1);
    assert_string_equal(err.reason, "expected map");
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_map_array(&p, "x", 0, 1, &ids), -1); /* failed reader: quiet */
    assert_string_equal(err.reason, "");
    /* Keys can be walked generically. */
    assert_int_equal(evmsg_map_count(&d), 1);
    const char *k;
    size_t kl;
    evmsg_map_key_at(&d, 0, &k, &kl);
    assert_int_equal(kl, 7);
    assert_memory_equal(k, "parties", 7);
    evmsg_destroy(&msg);
    msgpack_sbuffer_destroy(&sb);
}

static void
pk_odd_keys(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "ok");
    msgpack_pack_int(pk, 1);
    pk_strn(pk, "bad\nkey\x1b", 8);
    msgpack_pack_int(pk, 2);
}

static void
test_map_only_names_unknown_key(void **state)
{
    (void)state;
    s_one_t o;
    s_one(&o, pk_odd_keys);
    evmsg_map_t f;
    assert_int_equal(evmsg_map_map(&o.d, "f", 0, &f), 1);
    static const char *const ok[] = {"ok", NULL};
    static const char *const both[] = {"ok", "bad\nkey\x1b", NULL};
    assert_int_equal(evmsg_map_only(&f, both), 0);
    assert_int_equal(evmsg_map_only(&f, ok), -1);
    /* The key is named, with bytes that could forge output shown as '?'. */
    assert_string_equal(o.err.path, "data.f.bad?key?");
    assert_string_equal(o.err.reason, "unknown key");
    s_done(&o);

    /* Paths stay within their buffer however deep and long. */
    memset(&o, 0, sizeof o);
    evmsg_map_t m = {.obj = NULL, .err = &o.err, .state = 1};
    memset(m.path, 'p', sizeof m.path - 1);
    m.path[sizeof m.path - 1] = '\0';
    evmsg_map_t sub;
    evmsg_map_map(&m, "child", 0, &sub);
    assert_int_equal(strlen(sub.path), sizeof sub.path - 1);
}

static void
test_topics(void **state)
{
    (void)state;
    char code[19];
    evmsg_err_t err = {0};
    const char *t = "case.decided.11620200013926143X";
    assert_int_equal(evmsg_topic_check(t, strlen(t), code, &err), 0);
    assert_string_equal(code, "11620200013926143X");
    assert_int_equal(evmsg_topic_check("registry.11620200013926143X", 27, NULL, &err), 0);
    assert_int_equal(evmsg_topic_check("a_b.c2.91330400MA2BBBBB0Y", 25, NULL, &err), 0);

    struct {
        const char *t;
        const char *reason;
    } bad[] = {
        {"", "empty"},
        {"case.decided", "expected <event>.<agency-code>"},
        {"case.decided11620200013926143X", "expected <event>.<agency-code>"},
        {".11620200013926143X", "expected <event>.<agency-code>"},
        {"Case.decided.11620200013926143X", "event must start with a lowercase letter"},
        {"1case.11620200013926143X", "event must start with a lowercase letter"},
        {"case..decided.11620200013926143X", "empty event segment at byte 5"},
        {"case.decided..11620200013926143X", "empty event segment at byte 13"},
        {"case.de-cided.11620200013926143X", "byte 0x2d at 7 not allowed in an event name"},
        {"case.decided.11620200013926143x",
         "agency code: byte 0x78 at 17 not in the GB 32100 charset"},
        {"case.decided.1162020001392614IX",
         "agency code: byte 0x49 at 16 not in the GB 32100 charset"},
        {"_hb.intake", "a system topic, not an event topic"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(evmsg_topic_check(bad[i].t, strlen(bad[i].t), code, &err), -1);
        assert_string_equal(err.path, "topic");
        assert_string_equal(err.reason, bad[i].reason);
    }
    /* Length: 128 bytes is the most. */
    char longt[140];
    memset(longt, 'a', sizeof longt);
    memcpy(longt + 128 - 19, ".11620200013926143X", 19);
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_topic_check(longt, 128, NULL, &err), 0);
    memset(longt, 'a', sizeof longt);
    memcpy(longt + 129 - 19, ".11620200013926143X", 19);
    assert_int_equal(evmsg_topic_check(longt, 129, NULL, &err), -1);
    assert_string_equal(err.reason, "longer than 128 bytes");
    /* The length given is the topic: a NUL inside is refused, not a terminator. */
    memset(&err, 0, sizeof err);
    assert_int_equal(evmsg_topic_check("case\0x.11620200013926143X", 25, NULL, &err), -1);

    assert_true(evmsg_topic_is_system("_hb.intake", 10));
    assert_true(evmsg_topic_is_system("_hb.credit-push", 15));
    assert_false(evmsg_topic_is_system("_", 1));
    assert_false(evmsg_topic_is_system("_hb.", 4));
    assert_false(evmsg_topic_is_system("_hb..x", 6));
    assert_false(evmsg_topic_is_system("_HB", 3));
    assert_false(evmsg_topic_is_system("hb.intake", 9));
    assert_false(evmsg_topic_is_system(t, strlen(t)));
    assert_true(evmsg_src_valid("creditpush", 10));
    assert_false(evmsg_src_valid("", 0));
    assert_false(evmsg_src_valid("-x", 2));
}

/* ---- Fuzz seeds ------------------------------------------------------------------------
 * SX_EVMSG_SEEDS=DIR build/tests/test_evmsg writes the seed corpus of tests/fuzz/fuzz_evmsg
 * into DIR instead of running the tests, so the seeds follow the format when it changes. */

static void
s_seed(const char *dir, const char *name, const void *bytes, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

static void
s_seed_sb(const char *dir, const char *name, void (*build)(msgpack_sbuffer *))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    build(&sb);
    s_seed(dir, name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void
s_seed_nested(msgpack_sbuffer *sb)
{
    s_levels = 7;
    s_build(sb, "data", s_pack_nested);
}

static void
s_seed_parties(msgpack_sbuffer *sb)
{
    s_build(sb, "data", s_pack_parties);
}

static void
s_seed_request(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "op");
    pk_str(&pk, "case.submit");
    pk_str(&pk, "rid");
    pk_str(&pk, "2f1c");
    pk_str(&pk, "body");
    msgpack_pack_map(&pk, 4);
    pk_str(&pk, "amount");
    pk_str(&pk, "-0.000001");
    pk_str(&pk, "on");
    pk_str(&pk, "2019-02-29");
    pk_str(&pk, "n");
    msgpack_pack_int64(&pk, INT64_MIN);
    pk_str(&pk, "bin");
    msgpack_pack_bin_with_body(&pk, "\x01\x02", 2);
}

static void
s_write_seeds(const char *dir)
{
    s_seed_sb(dir, "envelope", s_valid);
    s_seed_sb(dir, "nested8", s_seed_nested);
    s_seed_sb(dir, "parties", s_seed_parties);
    s_seed_sb(dir, "request", s_seed_request);
    const unsigned char huge[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
    s_seed(dir, "huge-count", huge, sizeof huge);
    const unsigned char dup[] = {0x82, 0xa3, 's', 'e', 'q', 0x01, 0xa3, 's', 'e', 'q', 0x02};
    s_seed(dir, "dup-key", dup, sizeof dup);
    const unsigned char ext[] = {0x81, 0xa1, 'a', 0xd8, 0x01, 0,  1,  2,  3,  4, 5,
                                 6,    7,    8,   9,    10,   11, 12, 13, 14, 15};
    s_seed(dir, "fixext16", ext, sizeof ext);
    s_seed(dir, "topic", "case.decided.11620200013926143X", 31);
    s_seed(dir, "topic-system", "_hb.intake", 10);
}

int
main(void)
{
    const char *seeds = getenv("SX_EVMSG_SEEDS");
    if (seeds) {
        s_write_seeds(seeds);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_map_for_requests),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_huge_claimed_counts_refused_quickly),
        cmocka_unit_test(test_keys_must_be_unique_strings),
        cmocka_unit_test(test_trailing_and_foreign_bytes),
        cmocka_unit_test(test_envelope_fields),
        cmocka_unit_test(test_encode_checks_its_input),
        cmocka_unit_test(test_str_bounds_and_utf8),
        cmocka_unit_test(test_absent_optional_and_nil),
        cmocka_unit_test(test_first_error_kept),
        cmocka_unit_test(test_int_uint_bool),
        cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_enum_lists_allowed),
        cmocka_unit_test(test_paths_through_arrays),
        cmocka_unit_test(test_map_only_names_unknown_key),
        cmocka_unit_test(test_topics),
    };
    return cmocka_run_group_tests_name("evmsg", tests, NULL, NULL);
}
