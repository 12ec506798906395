/* jsonmp: JSON <-> msgpack round trips, and every refusal with the path (and, for JSON
 * text, the line and column) a user would be shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonmp.h"

/* ---- Helpers --------------------------------------------------------------------------- */

/* JSON -> msgpack -> JSON; returns the JSON (static), fails the test on any error. */
static const char *
s_round(const char *json)
{
    static char out[70000];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t err = {0};
    char why[300];
    if (jsonmp_from_json(json, strlen(json), "body", 1, &sb, &err) != 0)
        fail_msg("from_json(%s): %s", json, jsonmp_err_str(&err, why, sizeof why));
    size_t n = 0;
    char *text = jsonmp_to_json(sb.data, sb.size, "body", &n, &err);
    if (!text)
        fail_msg("to_json(%s): %s", json, jsonmp_err_str(&err, why, sizeof why));
    assert_int_equal(strlen(text), n);
    /* and once more: the msgpack bytes must be the same */
    msgpack_sbuffer sb2;
    msgpack_sbuffer_init(&sb2);
    assert_int_equal(jsonmp_from_json(text, n, "body", 1, &sb2, &err), 0);
    assert_int_equal(sb2.size, sb.size);
    assert_memory_equal(sb2.data, sb.data, sb.size);
    snprintf(out, sizeof out, "%s", text);
    free(text);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&sb2);
    return out;
}

/* JSON that must be refused: checks "line L, column C: path: reason" contains want. */
static void
s_refuse_json_at(const char *json, size_t len, int level, const char *want)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "x", 1); /* out is left as it was */
    jsonmp_err_t err = {0};
    char why[300];
    int rc = jsonmp_from_json(json, len, "body", level, &sb, &err);
    jsonmp_err_str(&err, why, sizeof why);
    if (rc != -1 || !strstr(why, want))
        fail_msg("want refusal \"%s\"; got rc=%d \"%s\"", want, rc, why);
    assert_int_equal(sb.size, 1);
    msgpack_sbuffer_destroy(&sb);
}

static void
s_refuse_json(const char *json, const char *want)
{
    s_refuse_json_at(json, strlen(json), 1, want);
}

/* msgpack that must be refused by to_json, with want in the error. */
static void
s_refuse_mp(const void *buf, size_t len, const char *want)
{
    jsonmp_err_t err = {0};
    char why[300];
    size_t n = 99;
    char *text = jsonmp_to_json(buf, len, "data", &n, &err);
    jsonmp_err_str(&err, why, sizeof why);
    if (text || !strstr(why, want))
        fail_msg("want refusal \"%s\"; got %s \"%s\"", want, text ? text : "NULL", why);
    assert_int_equal(n, 99);
}

/* ---- Round trips ----------------------------------------------------------------------- */

static void
test_round_trip_nested(void **state)
{
    (void)state;
    assert_string_equal(s_round("{}"), "{}");
    assert_string_equal(s_round(" {\n \"a\" : [ 1 , -2 , true , false , null , [ ] , { } ] }\n"),
                        "{\"a\":[1,-2,true,false,null,[],{}]}");
    assert_string_equal(
        s_round("{\"case\":{\"parties\":[{\"name\":\"x\",\"ids\":[[1,[2,[3]]]]}],\"n\":0}}"),
        "{\"case\":{\"parties\":[{\"name\":\"x\",\"ids\":[[1,[2,[3]]]]}],\"n\":0}}");
    /* Eight deep, counting the root: the limit itself is fine. */
    assert_string_equal(s_round("{\"a\":[[[[[[{\"b\":1}]]]]]]}"), "{\"a\":[[[[[[{\"b\":1}]]]]]]}");
    /* Key order is kept. */
    assert_string_equal(s_round("{\"z\":1,\"a\":2,\"m\":3}"), "{\"z\":1,\"a\":2,\"m\":3}");
    /* A byte order mark is skipped. */
    assert_string_equal(s_round("\xef\xbb\xbf{\"a\":1}"), "{\"a\":1}");
}

static void
test_round_trip_strings(void **state)
{
    (void)state;
    /* UTF-8 stays UTF-8; escapes are decoded; only '"', '\\' and controls are escaped. */
    assert_string_equal(s_round("{\"名称\":\"嘉兴市市场监督管理局 — 罚款 ✓ 𝄞\"}"),
                        "{\"名称\":\"嘉兴市市场监督管理局 — 罚款 ✓ 𝄞\"}");
    assert_string_equal(s_round("{\"s\":\"\\u5609\\u5174 \\ud834\\udd1e \\/ \\\" \\\\\"}"),
                        "{\"s\":\"嘉兴 𝄞 / \\\" \\\\\"}");
    assert_string_equal(s_round("{\"c\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u0000x\"}"),
                        "{\"c\":\"\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\\u0000x\"}");
    assert_string_equal(s_round("{\"\":\"\"}"), "{\"\":\"\"}");
}

static void
test_round_trip_numbers(void **state)
{
    (void)state;
    assert_string_equal(s_round("{\"a\":[0,-0,127,128,255,256,65535,65536,-1,-32,-33,-128,-129]}"),
                        "{\"a\":[0,0,127,128,255,256,65535,65536,-1,-32,-33,-128,-129]}");
    assert_string_equal(s_round("{\"max\":18446744073709551615,\"i64max\":9223372036854775807,"
                                "\"min\":-9223372036854775808}"),
                        "{\"max\":18446744073709551615,\"i64max\":9223372036854775807,"
                        "\"min\":-9223372036854775808}");
    assert_string_equal(
        s_round("{\"f\":[1.5,-0.25,1.0,0.1,1e300,2.5E-3,-0.0,1e-320,123456789.125]}"),
        "{\"f\":[1.5,-0.25,1.0,0.1,1e+300,0.0025,-0.0,9.99988867182683e-321,"
        "123456789.125]}");
    assert_string_equal(s_round("{\"pi\":3.141592653589793,\"third\":0.3333333333333333}"),
                        "{\"pi\":3.141592653589793,\"third\":0.3333333333333333}");

    /* Integers become msgpack ints in their smallest form, non-integers float64. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const char *json = "{\"a\":1,\"b\":-1,\"c\":1.0}";
    assert_int_equal(jsonmp_from_json(json, strlen(json), "", 1, &sb, NULL), 0);
    static const unsigned char want[] = {0x83, 0xa1, 'a',  0x01, 0xa1, 'b', 0xff, 0xa1, 'c',
                                         0xcb, 0x3f, 0xf0, 0,    0,    0,   0,    0,    0};
    assert_int_equal(sb.size, sizeof want);
    assert_memory_equal(sb.data, want, sizeof want);
    msgpack_sbuffer_destroy(&sb);

    /* float32 reads as its double value */
    static const unsigned char f32[] = {0x81, 0xa1, 'f', 0xca, 0x3f, 0xc0, 0, 0};
    char *text = jsonmp_to_json(f32, sizeof f32, "data", NULL, NULL);
    assert_string_equal(text, "{\"f\":1.5}");
    free(text);
}

static void
test_round_trip_bin(void **state)
{
    (void)state;
    assert_string_equal(s_round("{\"sha\":{\"$bin\":\"00ff10AB\"},\"e\":{\"$bin\":\"\"}}"),
                        "{\"sha\":{\"$bin\":\"00ff10ab\"},\"e\":{\"$bin\":\"\"}}");
    /* A bin inside eight containers is a scalar there: its {"$bin"} may be the 9th level. */
    assert_string_equal(s_round("{\"a\":[[[[[[[{\"$bin\":\"01\"}]]]]]]]}"),
                        "{\"a\":[[[[[[[{\"$bin\":\"01\"}]]]]]]]}");

    /* msgpack bin -> {"$bin": hex} */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, "\x01\xfe", 2);
    char *text = jsonmp_to_json(sb.data, sb.size, "data", NULL, NULL);
    assert_string_equal(text, "{\"b\":{\"$bin\":\"01fe\"}}");
    free(text);
    msgpack_sbuffer_destroy(&sb);
}

/* The whole 64 KiB is usable. */
static void
test_round_trip_large(void **state)
{
    (void)state;
    size_t n = JSONMP_MAX_BYTES;
    char *big = malloc(n + 1);
    memcpy(big, "{\"s\":\"", 6);
    memset(big + 6, 'x', n - 8);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t err = {0};
    assert_int_equal(jsonmp_from_json(big, n, "body", 1, &sb, &err), 0);
    size_t len;
    char *text = jsonmp_to_json(sb.data, sb.size, "body", &len, &err);
    assert_non_null(text);
    assert_int_equal(len, n);
    assert_memory_equal(text, big, n);
    free(text);
    msgpack_sbuffer_destroy(&sb);
    free(big);
}

/* ---- Refusals: JSON -------------------------------------------------------------------- */

static void
test_refuse_depth(void **state)
{
    (void)state;
    s_refuse_json("{\"a\":[[[[[[[[1]]]]]]]]}", "line 1, column 13: body.a[0][0][0][0][0][0][0]: "
                                               "nesting deeper than 8");
    s_refuse_json("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}",
                  "body.a.b.c.d.e.f.g.h: nesting deeper than 8");
    /* A request's body sits one level down: 8 levels in it are 9 in the request. */
    const char *eight = "{\"a\":[[[[[[[1]]]]]]]}";
    s_refuse_json_at(eight, strlen(eight), 2, "body.a[0][0][0][0][0][0]: nesting deeper than 8");
    const char *seven = "{\"a\":[[[[[[1]]]]]]}";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(jsonmp_from_json(seven, strlen(seven), "body", 2, &sb, NULL), 0);
    msgpack_sbuffer_destroy(&sb);
    /* A deep hostile document is refused at the limit, not after 100,000 recursions. */
    static char deep[200001];
    deep[0] = '{', deep[1] = '"', deep[2] = 'a', deep[3] = '"', deep[4] = ':';
    memset(deep + 5, '[', 60000);
    s_refuse_json_at(deep, 60005, 1, "nesting deeper than 8");
}

static void
test_refuse_size(void **state)
{
    (void)state;
    size_t n = JSONMP_MAX_BYTES + 1;
    char *big = malloc(n);
    memcpy(big, "{\"s\":\"", 6);
    memset(big + 6, 'x', n - 8);
    memcpy(big + n - 2, "\"}", 2);
    s_refuse_json_at(big, n, 1, "body: JSON text larger than 65536 bytes");
    free(big);
    /* Floats grow from 4 characters to 9 bytes: refused as msgpack. */
    size_t count = 15000, len = 0;
    char *arr = malloc(count * 4 + 16);
    len += (size_t)sprintf(arr, "{\"f\":[");
    for (size_t i = 0; i < count; i++)
        len += (size_t)sprintf(arr + len, "%s1.5", i ? "," : "");
    len += (size_t)sprintf(arr + len, "]}");
    assert_true(len <= JSONMP_MAX_BYTES);
    s_refuse_json_at(arr, len, 1, "body: larger than 65536 bytes as msgpack");
    free(arr);
}

static void
test_refuse_utf8_and_strings(void **state)
{
    (void)state;
    s_refuse_json("{\"a\":\"ok\",\n \"name\": \"ab\xff\"}",
                  "line 2, column 13: body.name: not valid UTF-8 (byte 0xff)");
    s_refuse_json("{\"a\":\"\xc0\xaf\"}", "body.a: not valid UTF-8");     /* overlong '/' */
    s_refuse_json("{\"a\":\"\xed\xa0\x80\"}", "body.a: not valid UTF-8"); /* a surrogate */
    s_refuse_json("{\"a\":\"\xf4\x90\x80\x80\"}", "not valid UTF-8");     /* > U+10FFFF */
    s_refuse_json("{\"a\":\"\xe5\x98\"}", "not valid UTF-8");             /* cut short */
    s_refuse_json("{\"k\xff\":1}", "line 1, column 4: body: not valid UTF-8");
    s_refuse_json("{\"a\":\"x\ty\"}", "body.a: control character (byte 0x09) in string");
    s_refuse_json("{\"a\":\"\\x\"}", "line 1, column 7: body.a: unknown escape '\\x'");
    s_refuse_json("{\"a\":\"\\u12\"}", "body.a: \\u needs four hex digits");
    s_refuse_json("{\"a\":\"\\udc00\"}", "body.a: lone low surrogate \\uDC00");
    s_refuse_json("{\"a\":\"\\ud800x\"}", "body.a: high surrogate \\uD800 without a low one");
    s_refuse_json("{\"a\":\"\\ud800\\u0041\"}", "high surrogate \\uD800 without a low one");
    s_refuse_json("{\"a\":\"abc", "line 1, column 6: body.a: unterminated string");
    s_refuse_json("{\"a\":\"abc\\", "unterminated string");
}

static void
test_refuse_numbers(void **state)
{
    (void)state;
    s_refuse_json("{\"n\":18446744073709551616}", "body.n: integer out of range (beyond uint64)");
    s_refuse_json("{\"n\":-9223372036854775809}", "body.n: integer out of range (beyond int64)");
    s_refuse_json("{\"n\":99999999999999999999999}", "integer out of range");
    s_refuse_json("{\"n\":1e400}", "body.n: number out of range for float64");
    s_refuse_json("{\"n\":-1e400}", "number out of range for float64");
    s_refuse_json("{\"n\":NaN}", "body.n: unexpected 'N'");
    s_refuse_json("{\"n\":Infinity}", "unexpected 'I'");
    s_refuse_json("{\"n\":01}", "body.n: malformed number (leading zero)");
    s_refuse_json("{\"n\":1.}", "malformed number (no digit after '.')");
    s_refuse_json("{\"n\":.5}", "unexpected '.'");
    s_refuse_json("{\"n\":1e}", "malformed number (no digit in the exponent)");
    s_refuse_json("{\"n\":+1}", "unexpected '+'");
    s_refuse_json("{\"n\":-}", "malformed number");
    s_refuse_json("{\"n\":0x10}", "expected ',' or '}' in the object, found 'x'");
}

static void
test_refuse_syntax(void **state)
{
    (void)state;
    s_refuse_json("", "line 1, column 1: body: empty document");
    s_refuse_json("  \n ", "line 2, column 2: body: empty document");
    s_refuse_json("[1]", "body: expected a JSON object, found '['");
    s_refuse_json("\"x\"", "expected a JSON object");
    s_refuse_json("{\"a\":1} x", "line 1, column 9: body: trailing characters after the JSON "
                                 "object: 'x'");
    s_refuse_json("{\"a\":1}{}", "trailing characters");
    s_refuse_json_at("{\"a\":1}\0", 8, 1, "trailing characters after the JSON object: byte 0x00");
    s_refuse_json("{\"a\":1,}", "line 1, column 8: body: expected a key string, found '}'");
    s_refuse_json("{\"a\":[1,]}", "body.a[1]: unexpected ']'");
    s_refuse_json("{\"a\" 1}", "body.a: expected ':' after the key, found '1'");
    s_refuse_json("{a:1}", "body: expected a key string, found 'a'");
    s_refuse_json("{\"a\":tru}", "body.a: unexpected character (expected true?)");
    s_refuse_json("{\"a\":1 // c\n}", "found '/'");
    s_refuse_json("{\"a\":", "body.a: unexpected end of input");
    s_refuse_json("{\"a\":[1", "body.a: expected ',' or ']' in the array, found end of input");
    s_refuse_json("{\"a\":\x01}", "unexpected byte 0x01");
    /* Duplicate keys are refused (JSON allows them, msgpack in sanxiang does not). */
    s_refuse_json("{\"p\":[{\"name\":1,\"x\":2,\"name\":3}]}", "body.p[0].name: duplicate key");
}

static void
test_refuse_bin_forms(void **state)
{
    (void)state;
    s_refuse_json("{\"a\":{\"$bin\":\"0\"}}", "body.a.$bin: \"$bin\" takes an even number");
    s_refuse_json("{\"a\":{\"$bin\":\"zz\"}}", "body.a.$bin: \"$bin\" takes a string of hex");
    s_refuse_json("{\"a\":{\"$bin\":12}}", "\"$bin\" takes a string of hex digits");
    s_refuse_json("{\"a\":{\"$bin\":\"00\",\"x\":1}}",
                  "body.a.x: \"$bin\" must be the only key of its object");
    s_refuse_json("{\"a\":{\"x\":1,\"$bin\":\"00\"}}",
                  "body.a.$bin: \"$bin\" must be the only key of its object");
    s_refuse_json("{\"$bin\":\"00\"}", "the document must be an object");
    /* An empty object one level too deep is a map: refused. */
    s_refuse_json("{\"a\":[[[[[[[{}]]]]]]]}", "nesting deeper than 8");
}

/* ---- Refusals: msgpack ----------------------------------------------------------------- */

static void
test_refuse_msgpack(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    /* NaN and infinities */
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_double(&pk, 1.0);
    msgpack_pack_double(&pk, 0.0 / 0.0);
    s_refuse_mp(sb.data, sb.size, "data.x[1]: NaN is not a JSON number");
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_float(&pk, -1.0f / 0.0f);
    s_refuse_mp(sb.data, sb.size, "data.x: an infinity is not a JSON number");

    /* a non-string key, at depth */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "parties", 7);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_nil(&pk);
    s_refuse_mp(sb.data, sb.size, "data.parties[2]: map key is not a string");

    /* bad UTF-8 in a value and in a key */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "ab\xc3", 3);
    s_refuse_mp(sb.data, sb.size, "data.name: not valid UTF-8 at byte 2");
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "k\xff", 2);
    msgpack_pack_nil(&pk);
    s_refuse_mp(sb.data, sb.size, "data.k?: not valid UTF-8 at byte 1");

    /* ext */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "e", 1);
    msgpack_pack_ext_with_body(&pk, "\x01\x02", 2, 5);
    s_refuse_mp(sb.data, sb.size, "data.e: ext values are not supported");

    /* duplicate key, trailing bytes, not a map, truncated, depth 9, too large, empty */
    static const unsigned char dup[] = {0x82, 0xa1, 'a', 1, 0xa1, 'a', 2};
    s_refuse_mp(dup, sizeof dup, "data.a: duplicate key");
    static const unsigned char trail[] = {0x80, 0xc0};
    s_refuse_mp(trail, sizeof trail, "data: trailing bytes");
    static const unsigned char arr[] = {0x91, 0x01};
    s_refuse_mp(arr, sizeof arr, "data: expected map");
    static const unsigned char cut[] = {0x82, 0xa1, 'a'};
    s_refuse_mp(cut, sizeof cut, "truncated");
    static const unsigned char deep[] = {0x81, 0xa1, 'a',  0x91, 0x91, 0x91,
                                         0x91, 0x91, 0x91, 0x91, 0x91, 0x01};
    s_refuse_mp(deep, sizeof deep, "nesting deeper than 8");
    s_refuse_mp("", 0, "data: empty message");
    unsigned char *big = calloc(1, JSONMP_MAX_BYTES + 1);
    s_refuse_mp(big, JSONMP_MAX_BYTES + 1, "data: message larger than 65536 bytes");
    free(big);
    static const unsigned char huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    s_refuse_mp(huge, sizeof huge, "truncated");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- Garbage --------------------------------------------------------------------------- */

/* Random and mutated input either converts or is refused with a reason; never crashes
 * (the sanitizer build makes that a real check). */
static void
test_garbage_never_crashes(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "{\"a\":[1,2,{\"b\":\"c\"}],\"d\":{\"$bin\":\"00ff\"},\"e\":-1.5e3,\"f\":null}",
        "{\"名\":\"\\ud834\\udd1e\",\"x\":[[[[]]]],\"t\":true}",
    };
    const char alphabet[] = "{}[]\":,.-+eE0123456789abtrufnl\\u$ \n\xff\xc3\xa9";
    srand(20190927);
    char buf[512];
    int ok = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        const char *seed = seeds[i % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + rand() % 4;
        for (int k = 0; k < edits; k++) {
            size_t at = (size_t)rand() % n;
            int how = rand() % 3;
            if (how == 0)
                buf[at] = alphabet[rand() % (int)(sizeof alphabet - 1)];
            else if (how == 1 && n > 1)
                n = at + 1; /* cut */
            else
                buf[at] = (char)(rand() & 0xff);
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        jsonmp_err_t err = {0};
        if (jsonmp_from_json(buf, n, "body", 1, &sb, &err) == 0) {
            ok++;
            char *text = jsonmp_to_json(sb.data, sb.size, "body", NULL, &err);
            assert_non_null(text);
            free(text);
        } else {
            refused++;
            assert_true(err.reason[0] != '\0');
        }
        /* the same bytes as msgpack */
        jsonmp_err_t err2 = {0};
        char *text = jsonmp_to_json(buf, n, "data", NULL, &err2);
        if (text)
            free(text);
        else
            assert_true(err2.reason[0] != '\0');
        msgpack_sbuffer_destroy(&sb);
    }
    assert_true(ok > 100);
    assert_true(refused > 100);
}

static void
test_err_str(void **state)
{
    (void)state;
    char buf[300];
    jsonmp_err_t none = {0};
    assert_string_equal(jsonmp_err_str(&none, buf, sizeof buf), "");
    assert_string_equal(jsonmp_err_str(NULL, buf, sizeof buf), "");
    jsonmp_err_t e = {.path = "body.a", .reason = "bad", .line = 3, .column = 7};
    assert_string_equal(jsonmp_err_str(&e, buf, sizeof buf), "line 3, column 7: body.a: bad");
    assert_string_equal(jsonmp_err_str(&e, buf, 10), "line 3, c");
    jsonmp_err_t f = {.path = "", .reason = "bad"};
    assert_string_equal(jsonmp_err_str(&f, buf, sizeof buf), "bad");
    /* The first error is kept. */
    jsonmp_err_t keep = {.reason = "first"};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(jsonmp_from_json("[", 1, "body", 1, &sb, &keep), -1);
    assert_string_equal(keep.reason, "first");
    msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_nested),
        cmocka_unit_test(test_round_trip_strings),
        cmocka_unit_test(test_round_trip_numbers),
        cmocka_unit_test(test_round_trip_bin),
        cmocka_unit_test(test_round_trip_large),
        cmocka_unit_test(test_refuse_depth),
        cmocka_unit_test(test_refuse_size),
        cmocka_unit_test(test_refuse_utf8_and_strings),
        cmocka_unit_test(test_refuse_numbers),
        cmocka_unit_test(test_refuse_syntax),
        cmocka_unit_test(test_refuse_bin_forms),
        cmocka_unit_test(test_refuse_msgpack),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_err_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
