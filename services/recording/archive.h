/* archive: the archive manifest (归档) of a closed case, sealed with the service's
 * Ed25519 key (libsodium crypto_sign_detached).
 *
 * The manifest is canonical msgpack (schemas/messages/recording.md, "Archive manifest"):
 *   {v: 1, case_id, agency, case_no, closed_at (unix ms), count, head (hex),
 *    entries: [[n, hash (hex)], ...]}
 * and the seal is the detached signature over exactly those bytes.
 *
 * The key: SX_RECORDING_SIGN_KEY names a file holding the 32-byte Ed25519 seed as 64 hex
 * digits and a newline, mode 0600. When the file does not exist the service creates it
 * (O_EXCL, 0600) and logs the public key at warn: losing the file later makes earlier
 * seals unverifiable with the new key (record.verify then says "sealed by another key"),
 * so operators back it up like any other key. */
#ifndef SX_ARCHIVE_H
#define SX_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "db.h"
#include "recording.h"

/* Loads the seal key from path into app->sign_pk/sign_sk; when the file does not exist
 * and create is true, makes a new key there first (*created set). Returns 0, or -1 with
 * the reason in err (unreadable, not 64 hex digits, mode not 0600 or 0400, cannot
 * create). */
int archive_key_load(const char *path, bool create, recording_t *app, bool *created, char *err,
                     size_t errlen);

/* Prepares archive's statements on db (call once per connection user). Returns 0 or -1. */
int archive_prepare(db_t *db);

/* Seals the case: reads every entry's n and hash (committed or written earlier in tx),
 * builds the manifest with closing time closed_at, signs it and inserts the archive row
 * (once: a second call for the case does nothing and returns 0). On success the head and
 * the signature's hex are written to head_hex / sig_hex (65 / 129 bytes) when not NULL.
 * Returns 1 when sealed now, 0 when already sealed, -1 on a database failure (db_error). */
int archive_seal(db_t *tx, const recording_t *app, uint64_t case_id, const char *agency,
                 const char *case_no, int64_t closed_at, char *head_hex, char *sig_hex);

/* The outcome of checking a case's seal against its chain. */
typedef struct {
    bool sealed;        /* an archive row exists */
    bool ok;            /* signature good, by this service's key, manifest matches the chain */
    uint64_t first_bad; /* the first entry whose hash differs from the manifest's (0: none) */
    char problem[160];  /* when !ok: what is wrong */
} archive_check_t;

/* Checks the seal of case_id against the chain's hashes (hashes[i] is entry i+1's, as
 * recomputed, count of them). Returns 0 with *out filled, or -1 on a database failure. */
int archive_check(db_t *db, const recording_t *app, uint64_t case_id,
                  const uint8_t (*hashes)[CHAIN_HASH_LEN], size_t count, archive_check_t *out);

#endif
