/* keys: CURVE key pairs, key pair files, and the key file that maps public keys to
 * identities.
 *
 * Key pair files (written by `sxctl keygen NAME`, see deploy/keys/README.md):
 *   NAME.key  mode 0600   "public=<40 Z85 chars>\nsecret=<40 Z85 chars>\n"
 *   NAME.pub  mode 0644   "<40 Z85 chars>\n"
 *
 * Key file (deploy/keys/, SX_KEYS_FILE): one key per line,
 *   <public key, 40 Z85 chars> <identity>
 * separated by spaces or tabs; lines whose first non-blank is '#' and blank lines are
 * skipped. Identities:
 *   svc:<service>            service [a-z][a-z0-9_-]{0,31}
 *   dept:<code>:<role>       code a 统一社会信用代码 (unified social credit code, 18
 *                            characters, check character verified), role [a-z_]{1,32}
 * Parsing is strict: anything else (a third field, a bad key, a control character, a
 * line over 512 bytes) is an error naming the 1-based line number. The same key twice is
 * refused; one identity may have several keys (key rotation).
 *
 * A keys_t is immutable once loaded, so readers in several threads may share it. */
#ifndef SX_KEYS_H
#define SX_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_Z85_LEN      40 /* a 32-byte CURVE key in Z85 */
#define KEYS_IDENTITY_MAX 64
#define KEYS_LINE_MAX     512
#define KEYS_FILE_MAX     (1024 * 1024)

typedef struct keys keys_t;

typedef enum { KEYS_ID_NONE = 0, KEYS_ID_SVC, KEYS_ID_DEPT } keys_id_kind_t;

/* Makes a new CURVE key pair: pub and sec receive 40 Z85 characters and a NUL.
 * Returns 0, or -1 when libzmq has no CURVE support. */
int keys_keypair(char pub[KEYS_Z85_LEN + 1], char sec[KEYS_Z85_LEN + 1]);

/* Writes a new pair as dir/NAME.key (0600) and dir/NAME.pub (0644) and copies the public
 * key into pub. name is [A-Za-z0-9_.-]{1,64} not starting with '.' or '-'. Refuses to
 * overwrite: when either file exists nothing is written. Returns 0, or -1 with the
 * reason in err (and no file left behind). */
int keys_write_pair(const char *dir, const char *name, char pub[KEYS_Z85_LEN + 1], char *err,
                    size_t errlen);

/* Reads a NAME.key file into pub and sec (Z85, NUL-terminated). Refused when the file
 * is readable by group or others, malformed, or its public key does not belong to its
 * secret key. Returns 0, or -1 with the reason in err. */
int keys_read_pair(const char *path, char pub[KEYS_Z85_LEN + 1], char sec[KEYS_Z85_LEN + 1],
                   char *err, size_t errlen);

/* Reads a public key from a NAME.pub file (one Z85 key, optional final newline) or from
 * a NAME.key file (its public= line). Returns 0, or -1 with the reason in err. */
int keys_read_public(const char *path, char pub[KEYS_Z85_LEN + 1], char *err, size_t errlen);

/* True when s is exactly 40 Z85 characters that decode to a key. */
bool keys_z85_valid(const char *s);

/* Checks an identity ("svc:broker", "dept:<code>:officer"); returns its kind, or
 * KEYS_ID_NONE with the reason in err (err may be NULL). */
keys_id_kind_t keys_identity_check(const char *identity, char *err, size_t errlen);

/* For a valid dept identity, a pointer to its 18-character agency code inside identity
 * (not NUL-terminated there); NULL for any other string. */
const char *keys_dept_code(const char *identity);

/* Parses a key file's text (len bytes; need not be NUL-terminated). Returns a new table
 * (the caller owns it), or NULL with "line N: reason" (or "out of memory") in err. */
keys_t *keys_parse(const char *text, size_t len, char *err, size_t errlen);

/* Reads and parses the key file at path (at most KEYS_FILE_MAX bytes). Returns a new
 * table, or NULL with "PATH: line N: reason" or "PATH: <errno text>" in err. */
keys_t *keys_load(const char *path, char *err, size_t errlen);

/* Frees the table; sets *self_p to NULL. Idempotent. */
void keys_destroy(keys_t **self_p);

/* The identity of a 32-byte public key, or NULL when the key is unknown. The string is
 * owned by the table and valid until keys_destroy. */
const char *keys_lookup(const keys_t *self, const uint8_t key[32]);

/* The number of keys in the table. */
size_t keys_count(const keys_t *self);

#endif
