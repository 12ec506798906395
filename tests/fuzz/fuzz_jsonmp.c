/* fuzz_jsonmp: JSON <-> msgpack under libFuzzer.
 *
 * Each input is read as JSON text: what converts must convert back to JSON, and that JSON
 * must convert to the very same msgpack bytes (the round trip is exact). The input is
 * also offered as msgpack to the msgpack -> JSON side. Errors must be complete (a reason,
 * a printable path that fits). Any crash, sanitizer report or broken invariant (abort)
 * is a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void
s_err_sane(const jsonmp_err_t *err, int rc)
{
    CHECK(strlen(err->path) < sizeof err->path);
    CHECK(strlen(err->reason) < sizeof err->reason);
    CHECK(rc < 0 ? err->reason[0] != '\0' : err->reason[0] == '\0');
    CHECK(err->line >= 0 && err->column >= 0);
    for (const char *p = err->path; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    char line[400];
    jsonmp_err_str(err, line, sizeof line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* JSON -> msgpack -> JSON -> msgpack */
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    jsonmp_err_t err = {0};
    int level = size ? 1 + data[0] % 2 : 1; /* a message of its own, or a body */
    int rc = jsonmp_from_json((const char *)data, size, "body", level, &a, &err);
    s_err_sane(&err, rc);
    if (rc == 0) {
        CHECK(a.size > 0 && a.size <= JSONMP_MAX_BYTES);
        size_t len = 0;
        char *text = jsonmp_to_json(a.data, a.size, "body", &len, &err);
        s_err_sane(&err, text ? 0 : -1);
        CHECK(text != NULL);
        CHECK(strlen(text) == len); /* NUL never appears raw: it is written \u0000 */
        rc = jsonmp_from_json(text, len, "body", level, &b, &err);
        s_err_sane(&err, rc);
        CHECK(rc == 0);
        CHECK(b.size == a.size && memcmp(a.data, b.data, a.size) == 0);
        /* ... and the text is a fixed point */
        char *again = jsonmp_to_json(b.data, b.size, "body", NULL, &err);
        CHECK(again && strcmp(again, text) == 0);
        free(again);
        free(text);
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);

    /* the same bytes as msgpack */
    jsonmp_err_t err2 = {0};
    size_t len2 = 0;
    char *text2 = jsonmp_to_json(data, size, "data", &len2, &err2);
    s_err_sane(&err2, text2 ? 0 : -1);
    if (text2) {
        CHECK(strlen(text2) == len2);
        free(text2);
    }
    return 0;
}
