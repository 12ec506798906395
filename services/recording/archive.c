/* archive: the sealed archive manifest (archive.h). */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

#define S_MANIFEST_V 1

static char s_sel[DB_STMT_NAME_MAX], s_ins[DB_STMT_NAME_MAX], s_get[DB_STMT_NAME_MAX];

/* ---- The key ---------------------------------------------------------------------- */

static int
s_key_create(const char *path, char *err, size_t errlen)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    char hex[2 * crypto_sign_SEEDBYTES + 2];
    randombytes_buf(seed, sizeof seed);
    sodium_bin2hex(hex, sizeof hex - 1, seed, sizeof seed);
    sodium_memzero(seed, sizeof seed);
    strcat(hex, "\n");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        util_errf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, hex, strlen(hex));
    int rc = (w == (ssize_t)strlen(hex) && fsync(fd) == 0) ? 0 : -1;
    close(fd);
    sodium_memzero(hex, sizeof hex);
    if (rc < 0)
        util_errf(err, errlen, "%s: cannot write the new key", path);
    return rc;
}

int
archive_key_load(const char *path, bool create, recording_t *app, bool *created, char *err,
                 size_t errlen)
{
    if (created)
        *created = false;
    if (sodium_init() < 0) {
        util_errf(err, errlen, "libsodium did not initialise");
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT && create) {
        if (s_key_create(path, err, errlen) < 0)
            return -1;
        if (created)
            *created = true;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        util_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char buf[200];
    ssize_t r = read(fd, buf, sizeof buf - 1);
    int ok = fstat(fd, &st) == 0;
    close(fd);
    if (!ok || (st.st_mode & 077)) {
        util_errf(err, errlen, "%s: must not be readable by group or others (chmod 600)", path);
        return -1;
    }
    unsigned char seed[crypto_sign_SEEDBYTES];
    size_t len = 0;
    const char *end = NULL;
    if (r < 2 * (ssize_t)crypto_sign_SEEDBYTES ||
        sodium_hex2bin(seed, sizeof seed, buf, (size_t)r, NULL, &len, &end) != 0 ||
        len != sizeof seed || (*end != '\n' && *end != '\0') ||
        (size_t)(end - buf) + (*end == '\n') != (size_t)r) {
        sodium_memzero(buf, sizeof buf);
        util_errf(err, errlen, "%s: expected 64 hex digits (an Ed25519 seed) and a newline", path);
        return -1;
    }
    crypto_sign_seed_keypair(app->sign_pk, app->sign_sk, seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

/* ---- The manifest ----------------------------------------------------------------- */

int
archive_prepare(db_t *db)
{
    if (db_prepare_in(db, RECORDING_SCHEMA, "arc_entries",
                      "SELECT n, hash FROM {s}.entry WHERE case_id = $1::int8 ORDER BY n", 1,
                      s_sel) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "arc_insert",
                      "INSERT INTO {s}.archive (case_id, agency, case_no, n, head, closed_at,"
                      " manifest, signature, public_key) VALUES ($1::int8, $2, $3, $4::int4,"
                      " $5::bytea, $6::int8, $7::bytea, $8::bytea, $9::bytea)"
                      " ON CONFLICT (case_id) DO NOTHING",
                      9, s_ins) < 0 ||
        db_prepare_in(db, RECORDING_SCHEMA, "arc_get",
                      "SELECT agency::text, case_no, closed_at, n, manifest, signature,"
                      " public_key FROM {s}.archive WHERE case_id = $1::int8",
                      1, s_get) < 0)
        return -1;
    return 0;
}

static void
s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The manifest header (everything before the entries' elements). */
static void
s_header(msgpack_sbuffer *sb, uint64_t case_id, const char *agency, const char *case_no,
         int64_t closed_at, size_t count, const uint8_t *head)
{
    static const uint8_t zero[CHAIN_HASH_LEN] = {0};
    char hex[2 * CHAIN_HASH_LEN + 1];
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    s_str(&pk, "v");
    msgpack_pack_uint64(&pk, S_MANIFEST_V);
    s_str(&pk, "case_id");
    msgpack_pack_uint64(&pk, case_id);
    s_str(&pk, "agency");
    s_str(&pk, agency);
    s_str(&pk, "case_no");
    s_str(&pk, case_no);
    s_str(&pk, "closed_at");
    msgpack_pack_uint64(&pk, closed_at < 0 ? 0 : (uint64_t)closed_at);
    s_str(&pk, "count");
    msgpack_pack_uint64(&pk, count);
    s_str(&pk, "head");
    s_str(&pk, chain_hex(head ? head : zero, hex));
    s_str(&pk, "entries");
    msgpack_pack_array(&pk, count);
}

static void
s_entry(msgpack_sbuffer *sb, uint64_t n, const uint8_t *hash)
{
    char hex[2 * CHAIN_HASH_LEN + 1];
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, n);
    s_str(&pk, chain_hex(hash, hex));
}

static uint32_t
s_be32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static int64_t
s_be64(const char *p)
{
    uint64_t hi = s_be32(p), lo = s_be32(p + 4);
    return (int64_t)(hi << 32 | lo);
}

int
archive_seal(db_t *tx, const recording_t *app, uint64_t case_id, const char *agency,
             const char *case_no, int64_t closed_at, char *head_hex, char *sig_hex)
{
    char id[24], closed[24], count[16];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *p1[] = {id};
    PGresult *r = db_exec_prepared(tx, s_sel, 1, p1, NULL, NULL, 1);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const uint8_t *head = rows ? (const uint8_t *)PQgetvalue(r, rows - 1, 1) : NULL;
    s_header(&sb, case_id, agency, case_no, closed_at, (size_t)rows, head);
    for (int i = 0; i < rows; i++)
        s_entry(&sb, s_be32(PQgetvalue(r, i, 0)), (const uint8_t *)PQgetvalue(r, i, 1));
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)sb.data, sb.size, app->sign_sk);
    uint8_t head_copy[CHAIN_HASH_LEN] = {0};
    if (head)
        memcpy(head_copy, head, CHAIN_HASH_LEN);
    PQclear(r);

    snprintf(closed, sizeof closed, "%" PRId64, closed_at);
    snprintf(count, sizeof count, "%d", rows);
    const char *v[] = {id,
                       agency,
                       case_no,
                       count,
                       (const char *)head_copy,
                       closed,
                       sb.data,
                       (const char *)sig,
                       (const char *)app->sign_pk};
    int lens[] = {
        0, 0, 0, 0, CHAIN_HASH_LEN, 0, (int)sb.size, crypto_sign_BYTES, crypto_sign_PUBLICKEYBYTES};
    int fmts[] = {0, 0, 0, 0, 1, 0, 1, 1, 1};
    r = db_exec_prepared(tx, s_ins, 9, v, lens, fmts, 0);
    msgpack_sbuffer_destroy(&sb);
    if (!r)
        return -1;
    int sealed = atoi(PQcmdTuples(r)) == 1;
    PQclear(r);
    if (head_hex)
        chain_hex(head_copy, head_hex);
    if (sig_hex)
        sodium_bin2hex(sig_hex, 2 * crypto_sign_BYTES + 1, sig, sizeof sig);
    return sealed;
}

int
archive_check(db_t *db, const recording_t *app, uint64_t case_id,
              const uint8_t (*hashes)[CHAIN_HASH_LEN], size_t count, archive_check_t *out)
{
    memset(out, 0, sizeof *out);
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, case_id);
    const char *p1[] = {id};
    PGresult *r = db_exec_prepared(db, s_get, 1, p1, NULL, NULL, 1);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    out->sealed = true;
    char agency[EVMSG_AGENCY_LEN + 1] = "", case_no[CHAIN_STR_MAX + 1] = "";
    snprintf(agency, sizeof agency, "%.*s", PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
    snprintf(case_no, sizeof case_no, "%.*s", PQgetlength(r, 0, 1), PQgetvalue(r, 0, 1));
    int64_t closed_at = s_be64(PQgetvalue(r, 0, 2));
    size_t n = s_be32(PQgetvalue(r, 0, 3));
    const char *man = PQgetvalue(r, 0, 4);
    size_t man_len = (size_t)PQgetlength(r, 0, 4);
    const unsigned char *sig = (const unsigned char *)PQgetvalue(r, 0, 5);
    const unsigned char *pk = (const unsigned char *)PQgetvalue(r, 0, 6);
    if (PQgetlength(r, 0, 5) != crypto_sign_BYTES ||
        PQgetlength(r, 0, 6) != crypto_sign_PUBLICKEYBYTES ||
        crypto_sign_verify_detached(sig, (const unsigned char *)man, man_len, pk) != 0) {
        snprintf(out->problem, sizeof out->problem, "the seal does not match the manifest");
    } else if (sodium_memcmp(pk, app->sign_pk, crypto_sign_PUBLICKEYBYTES) != 0) {
        snprintf(out->problem, sizeof out->problem, "sealed by another key");
    } else {
        /* The manifest is authentic: rebuild it from the chain and name the first entry
         * that differs. */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        const uint8_t *head = n && n <= count ? hashes[n - 1] : NULL;
        s_header(&sb, case_id, agency, case_no, closed_at, n, head);
        /* The head is fixed-length hex, so entries sit at the same offsets even when it
         * differs: compare them one by one, then the header. */
        bool head_same = sb.size <= man_len && memcmp(sb.data, man, sb.size) == 0;
        for (size_t i = 0; i < n; i++) {
            size_t before = sb.size;
            if (i >= count) {
                out->first_bad = i + 1;
                snprintf(out->problem, sizeof out->problem,
                         "entry %zu is sealed in the archive but missing from the chain", i + 1);
                break;
            }
            s_entry(&sb, i + 1, hashes[i]);
            if (sb.size > man_len || memcmp(sb.data + before, man + before, sb.size - before)) {
                out->first_bad = i + 1;
                snprintf(out->problem, sizeof out->problem,
                         "entry %zu differs from the sealed manifest", i + 1);
                break;
            }
        }
        if (!out->problem[0] && (!head_same || sb.size != man_len))
            snprintf(out->problem, sizeof out->problem,
                     "the manifest's header differs from the case");
        if (!out->problem[0])
            out->ok = true;
        msgpack_sbuffer_destroy(&sb);
    }
    PQclear(r);
    return 0;
}
