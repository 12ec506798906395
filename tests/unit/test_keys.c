/* keys: key pair files, `sxctl keygen`, and the key file's strict parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "ident.h"
#include "keys.h"
#include "tsupport.h"

static void
s_code(const char *body17, char out[19])
{
    memcpy(out, body17, 17);
    out[17] = ident_uscc_check_char(body17);
    out[18] = '\0';
}

static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
test_write_pair_files_and_modes(void **state)
{
    (void)state;
    char *dir = ts_mkdtemp("keys");
    char pub[KEYS_Z85_LEN + 1], err[256];
    assert_int_equal(keys_write_pair(dir, "svc-intake", pub, err, sizeof err), 0);
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/svc-intake.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = s_slurp(path);
    assert_int_equal(strlen(text), 7 + 40 + 1 + 7 + 40 + 1);
    assert_memory_equal(text, "public=", 7);
    assert_memory_equal(text + 7, pub, 40);
    free(text);

    char p2[KEYS_Z85_LEN + 1], s2[KEYS_Z85_LEN + 1], derived[KEYS_Z85_LEN + 1];
    assert_int_equal(keys_read_pair(path, p2, s2, err, sizeof err), 0);
    assert_string_equal(p2, pub);
    assert_int_equal(zmq_curve_public(derived, s2), 0);
    assert_string_equal(derived, pub);

    snprintf(path, sizeof path, "%s/svc-intake.pub", dir);
    text = s_slurp(path);
    char want[64];
    snprintf(want, sizeof want, "%s\n", pub);
    assert_string_equal(text, want);
    free(text);
    assert_int_equal(keys_read_public(path, p2, err, sizeof err), 0);
    assert_string_equal(p2, pub);

    /* Never overwritten; nothing changes. */
    char again[KEYS_Z85_LEN + 1];
    assert_int_equal(keys_write_pair(dir, "svc-intake", again, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists, not overwritten"));
    text = s_slurp(path);
    assert_string_equal(text, want);
    free(text);

    assert_int_equal(keys_write_pair(dir, "../evil", again, err, sizeof err), -1);
    assert_int_equal(keys_write_pair(dir, "", again, err, sizeof err), -1);
    free(dir);
}

static void
test_read_pair_refuses_loose_mode_and_mismatch(void **state)
{
    (void)state;
    char *dir = ts_mkdtemp("keys");
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1], err[256];
    assert_int_equal(keys_write_pair(dir, "b", pub, err, sizeof err), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/b.key", dir);
    chmod(path, 0644);
    assert_int_equal(keys_read_pair(path, pub, sec, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by group or others"));

    char other_pub[41], other_sec[41], text[128];
    keys_keypair(other_pub, other_sec);
    keys_keypair(pub, sec);
    snprintf(text, sizeof text, "public=%s\nsecret=%s\n", other_pub, sec);
    char *p = ts_write_tmp("mismatch.key", text);
    chmod(p, 0600);
    assert_int_equal(keys_read_pair(p, pub, sec, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not match"));
    free(p);
    free(dir);
}

/* sxctl keygen, the binary, once the lead has wired the verb into sxctl's table. */
static void
test_sxctl_keygen(void **state)
{
    (void)state;
    char bin[512];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    char *dir = ts_mkdtemp("keygen");
    char out[512], err[512];
    const char *argv[] = {bin, "keygen", "--dir", dir, "relay", NULL};
    int rc = ts_run(argv, NULL, out, sizeof out, err, sizeof err);
    if (rc == 2 && strstr(err, "no verb")) {
        free(dir);
        skip(); /* keygen not in sxctl's verb table yet */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(out), 41);
    out[40] = '\0';
    assert_true(keys_z85_valid(out));
    char path[512], pub[41];
    snprintf(path, sizeof path, "%s/relay.pub", dir);
    assert_int_equal(keys_read_public(path, pub, err, sizeof err), 0);
    assert_string_equal(pub, out);

    assert_int_equal(ts_run(argv, NULL, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "not overwritten"));
    const char *none[] = {bin, "keygen", NULL};
    assert_int_equal(ts_run(none, NULL, out, sizeof out, err, sizeof err), 2);
    const char *two[] = {bin, "keygen", "a", "b", NULL};
    assert_int_equal(ts_run(two, NULL, out, sizeof out, err, sizeof err), 2);
    free(dir);
}

static void
test_identities(void **state)
{
    (void)state;
    char code[19], id[64], err[256];
    s_code("91110000100000000", code);
    assert_int_equal(keys_identity_check("svc:broker", err, sizeof err), KEYS_ID_SVC);
    assert_int_equal(keys_identity_check("svc:a_b-9", err, sizeof err), KEYS_ID_SVC);
    snprintf(id, sizeof id, "dept:%s:officer", code);
    assert_int_equal(keys_identity_check(id, err, sizeof err), KEYS_ID_DEPT);
    assert_memory_equal(keys_dept_code(id), code, 18);

    assert_int_equal(keys_identity_check("svc:", err, sizeof err), KEYS_ID_NONE);
    assert_int_equal(keys_identity_check("svc:Broker", err, sizeof err), KEYS_ID_NONE);
    assert_int_equal(keys_identity_check("user:x", err, sizeof err), KEYS_ID_NONE);
    snprintf(id, sizeof id, "dept:%s:Officer", code);
    assert_int_equal(keys_identity_check(id, err, sizeof err), KEYS_ID_NONE);
    snprintf(id, sizeof id, "dept:%s:", code);
    assert_int_equal(keys_identity_check(id, err, sizeof err), KEYS_ID_NONE);
    /* A wrong check character, and a letter outside the charset (I O S V Z). */
    snprintf(id, sizeof id, "dept:%.17s%c:officer", code, code[17] == '0' ? '1' : '0');
    assert_int_equal(keys_identity_check(id, err, sizeof err), KEYS_ID_NONE);
    assert_non_null(strstr(err, "agency code"));
    assert_int_equal(keys_identity_check("dept:91110000I00000000X:officer", err, sizeof err),
                     KEYS_ID_NONE);
    assert_null(keys_dept_code("svc:x"));
}

/* Parses text and returns the error ("" when it parsed). */
static const char *
s_parse_err(const char *text)
{
    static char err[256];
    err[0] = '\0';
    keys_t *k = keys_parse(text, strlen(text), err, sizeof err);
    if (k)
        err[0] = '\0';
    keys_destroy(&k);
    return err;
}

static void
test_key_file_parse(void **state)
{
    (void)state;
    char a[41], b[41], s[41], code[19], text[2048], err[256];
    keys_keypair(a, s);
    keys_keypair(b, s);
    s_code("91310000200000000", code);
    snprintf(text, sizeof text,
             "# broker keys\n\n   # indented comment\n%s svc:relay\n  %s \t dept:%s:reviewer  \n",
             a, b, code);
    keys_t *k = keys_parse(text, strlen(text), err, sizeof err);
    assert_non_null(k);
    assert_int_equal(keys_count(k), 2);
    uint8_t bin[32];
    zmq_z85_decode(bin, b);
    char want[64];
    snprintf(want, sizeof want, "dept:%s:reviewer", code);
    assert_string_equal(keys_lookup(k, bin), want);
    zmq_z85_decode(bin, a);
    assert_string_equal(keys_lookup(k, bin), "svc:relay");
    bin[0] ^= 1;
    assert_null(keys_lookup(k, bin));
    keys_destroy(&k);
    keys_destroy(&k);
    assert_null(k);

    assert_string_equal(s_parse_err(""), "");
    snprintf(text, sizeof text, "# c\n%s svc:relay\n%s\n", a, b);
    assert_non_null(strstr(s_parse_err(text), "line 3: expected"));
    snprintf(text, sizeof text, "%s svc:relay extra\n", a);
    assert_non_null(strstr(s_parse_err(text), "line 1: "));
    snprintf(text, sizeof text, "\n\n%.39s svc:relay\n", a);
    assert_non_null(strstr(s_parse_err(text), "line 3: public key must be 40"));
    snprintf(text, sizeof text, "%s svc:relay\n%s svc:Relay\n", a, b);
    assert_non_null(strstr(s_parse_err(text), "line 2: svc:<service>"));
    snprintf(text, sizeof text, "%s svc:relay\n%s svc:intake\n%s svc:review\n", a, b, a);
    assert_string_equal(s_parse_err(text), "line 3: duplicate key (first on line 1)");
    snprintf(text, sizeof text, "%s svc:relay\r\n", a);
    assert_non_null(strstr(s_parse_err(text), "line 1: byte 51 is not printable"));
    assert_non_null(strstr(s_parse_err("\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\""
                                       "\"\"\"\"\"\"\"\"\"\"\" svc:x\n"),
                           "line 1: public key is not valid Z85"));

    /* keys_load names the file as well. */
    snprintf(text, sizeof text, "%s svc:relay\nbroken\n", a);
    char *path = ts_write_tmp("keys.bad", text);
    assert_null(keys_load(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, ": line 2: "));
    free(path);
    assert_null(keys_load("/nonexistent/keys", err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_pair_files_and_modes),
        cmocka_unit_test(test_read_pair_refuses_loose_mode_and_mismatch),
        cmocka_unit_test(test_sxctl_keygen),
        cmocka_unit_test(test_identities),
        cmocka_unit_test(test_key_file_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
