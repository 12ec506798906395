/* evmsg: the event envelope, and the one bounded decoder of msgpack input.
 *
 * Wire frames are [topic][envelope]. The topic is `<event>.<agency-code>`, e.g.
 * `case.decided.11620200013926143X`; the envelope is one msgpack map
 *
 *   { seq: u64, aseq: u64, src: "intake", at: unix-ms, v: u32 >= 1, data: { ... } }
 *
 * (schemas/messages/envelope.md is the contract, schemas/messages/README.md the types).
 *
 * Every msgpack byte that reaches sanxiang from outside goes through evmsg_decode or
 * evmsg_decode_map, which hold it to fixed limits before msgpack-c builds a tree:
 * at most EVMSG_MAX_BYTES, nesting at most EVMSG_MAX_DEPTH, map keys strings and never
 * repeated, no trailing bytes. A structural pre-scan runs first, so msgpack-c never
 * allocates for element counts the input cannot hold.
 *
 * Fields are then read through typed, bounded readers that name the field on error:
 *
 *   evmsg_err_t err = {0};
 *   evmsg_t *msg;
 *   if (evmsg_decode(buf, len, &msg, &err) < 0) { log ...evmsg_err_str(&err, ...) }
 *   evmsg_map_t d = evmsg_data(msg, &err);
 *   char name[65];
 *   int64_t amount;
 *   static const char *const keys[] = {"name", "amount", NULL};
 *   evmsg_map_only(&d, keys);
 *   evmsg_map_str(&d, "name", EVMSG_REQUIRED, 64, name);
 *   evmsg_map_decimal(&d, "amount", EVMSG_REQUIRED, 6, 0, INT64_MAX, &amount);
 *   if (err.reason[0]) { ... "data.amount: expected decimal with at most 6 decimals" }
 *   evmsg_destroy(&msg);
 *
 * The err struct keeps the FIRST error: later failures return -1 but do not overwrite
 * it, so a caller may read every field and check once at the end. Readers never change
 * the message, so reading a field twice is fine. No globals; thread-compatible (one
 * message per thread at a time). */
#ifndef SX_EVMSG_H
#define SX_EVMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "date.h"

#define EVMSG_MAX_BYTES  65536 /* a whole envelope (or request), in bytes */
#define EVMSG_MAX_DEPTH  8     /* containers nested, the outermost map counting as 1 */
#define EVMSG_TOPIC_MAX  128   /* bytes in a topic frame */
#define EVMSG_SRC_MAX    32    /* bytes in a service name */
#define EVMSG_AGENCY_LEN 18    /* 统一社会信用代码 (unified social credit code) */
#define EVMSG_PATH_MAX   128

/* Reader flags. */
#define EVMSG_REQUIRED      0x0 /* absent (or nil) is an error: "missing" */
#define EVMSG_OPTIONAL      0x1 /* absent (or nil) returns 0, output unchanged */
#define EVMSG_NONEMPTY      0x2 /* strings: "" is an error: "empty" */
#define EVMSG_ALLOW_CONTROL 0x4 /* strings: allow C0 control bytes other than NUL */

/* Where a decode or a read failed: path like `data.parties[2].name` (empty for the
 * message as a whole), reason in plain English. reason[0] == '\0' means no error.
 * Key names copied from input keep printable ASCII only; other bytes show as '?'. */
typedef struct {
    char path[EVMSG_PATH_MAX];
    char reason[160];
} evmsg_err_t;

/* The envelope's header fields. */
typedef struct {
    uint64_t seq;                /* gapless per producing stream */
    uint64_t aseq;               /* gapless per stream and agency */
    char src[EVMSG_SRC_MAX + 1]; /* producing service, [a-z][a-z0-9_-]{0,31} */
    int64_t at;                  /* unix time in ms, >= 0 */
    uint32_t v;                  /* schema version of data, >= 1 */
} evmsg_header_t;

/* A decoded message (opaque): owns a copy of the input and the msgpack tree over it. */
typedef struct evmsg_t evmsg_t;

/* A reader over one map of a decoded message: a value type, cheap to copy; valid while
 * the message lives. Fields are for evmsg.c; use the functions. */
typedef struct {
    const msgpack_object *obj; /* the map; NULL when absent or failed */
    evmsg_err_t *err;          /* where the first error goes; may be NULL */
    int state;                 /* 1 present, 0 absent (optional), -1 failed */
    char path[EVMSG_PATH_MAX]; /* path of this map ("" for a request's root) */
} evmsg_map_t;

/* A reader over one array, as evmsg_map_t. */
typedef struct {
    const msgpack_object *obj;
    evmsg_err_t *err;
    int state;
    char path[EVMSG_PATH_MAX];
} evmsg_array_t;

/* ---- Decoding ---------------------------------------------------------------------- */

/* Decodes one envelope of len bytes. On success returns 0 and *msg_p is a new message
 * (the caller destroys it); buf is not referenced afterwards. On failure returns -1,
 * sets *msg_p to NULL and fills err (if not NULL; an earlier error in err is kept).
 * Refused: more than EVMSG_MAX_BYTES, nesting deeper than EVMSG_MAX_DEPTH, truncated,
 * trailing bytes, a map key that is not a string, a duplicate key in any map, a byte
 * that is not msgpack (0xc1), a missing/mistyped/out-of-range header field, an unknown
 * envelope key, data that is not a map. */
int evmsg_decode(const void *buf, size_t len, evmsg_t **msg_p, evmsg_err_t *err);

/* Decodes any msgpack map under the same limits (requests such as {op, rid, body}).
 * The header of the result is all zero and evmsg_data reads the root map, whose path
 * is "" (so errors read "op: missing", "body.x: ..."). Returns as evmsg_decode. */
int evmsg_decode_map(const void *buf, size_t len, evmsg_t **msg_p, evmsg_err_t *err);

/* Frees the message and sets *msg_p to NULL. Idempotent; NULL-safe. Readers over the
 * message must not be used afterwards. */
void evmsg_destroy(evmsg_t **msg_p);

/* The header fields (owned by the message). */
const evmsg_header_t *evmsg_header(const evmsg_t *msg);

/* A reader over data (path "data"; for evmsg_decode_map, the root map, path "").
 * Errors from reads go to err (may be NULL). */
evmsg_map_t evmsg_data(const evmsg_t *msg, evmsg_err_t *err);

/* The packed bytes of data exactly as received (owned by the message), for storing or
 * forwarding without re-packing; *len is set to their length. */
const void *evmsg_data_bytes(const evmsg_t *msg, size_t *len);

/* ---- Encoding ---------------------------------------------------------------------- */

/* Appends one envelope to out: the header fields of hdr and data, the event's map
 * already packed by msgpack_packer (data_len bytes; the outbox stores these). data is
 * checked as evmsg_decode would check it (a map, depth <= EVMSG_MAX_DEPTH - 1, string
 * keys, no duplicates, no trailing bytes), as are the header fields, so what is
 * encoded always decodes. Returns 0; or -1 with err filled ("message larger than 65536
 * bytes", "src: ...", "data...: ...", "out of memory") and out left as it was. */
int evmsg_encode(msgpack_sbuffer *out, const evmsg_header_t *hdr, const void *data, size_t data_len,
                 evmsg_err_t *err);

/* As evmsg_encode, into buf (size bytes); *len_out gets the length. Also fails with
 * "buffer too small" when size is not enough; buf contents are then unspecified. */
int evmsg_encode_buf(void *buf, size_t size, const evmsg_header_t *hdr, const void *data,
                     size_t data_len, size_t *len_out, evmsg_err_t *err);

/* ---- Errors ------------------------------------------------------------------------ */

/* Writes "path: reason" (or "reason" when path is empty, "" when no error) into buf,
 * NUL-terminated and truncated to size. Returns buf. */
char *evmsg_err_str(const evmsg_err_t *err, char *buf, size_t size);

/* ---- Map readers ----------------------------------------------------------------------
 * Each reads key from map m. Returns 1 when the value was present and valid (output
 * written), 0 when absent or nil and EVMSG_OPTIONAL (output unchanged), -1 on error
 * (output unchanged, first error recorded with path "<map path>.<key>"). On a reader
 * over an absent optional map every key reads as absent (0), REQUIRED included: the
 * requirement holds when the map is there. On a failed reader every read returns -1
 * without recording anything new (the cause is already in err). */

/* A string of at most max_bytes bytes copied into buf, which holds max_bytes + 1 bytes
 * and is NUL-terminated. Strict UTF-8 (no overlong forms, no surrogates, <= U+10FFFF);
 * no NUL, no C0 control byte other than \t \n \r unless EVMSG_ALLOW_CONTROL (NUL never).
 * Reasons: "expected string", "longer than N bytes", "not valid UTF-8 at byte I",
 * "control character at byte I", "empty" (with EVMSG_NONEMPTY). Byte offsets count
 * from 0. */
int evmsg_map_str(const evmsg_map_t *m, const char *key, int flags, size_t max_bytes, char *buf);

/* As evmsg_map_str without the copy: *ptr points into the message (not NUL-terminated,
 * valid while the message lives) and *len is its length. */
int evmsg_map_strp(const evmsg_map_t *m, const char *key, int flags, size_t max_bytes,
                   const char **ptr, size_t *len);

/* An integer within [min, max]. Reasons: "expected integer", "must be between MIN and
 * MAX". A float is not an integer, even 1.0. */
int evmsg_map_int(const evmsg_map_t *m, const char *key, int flags, int64_t min, int64_t max,
                  int64_t *out);

/* An unsigned integer <= max. Reasons: "expected unsigned integer" (negatives too),
 * "must be at most MAX". */
int evmsg_map_uint(const evmsg_map_t *m, const char *key, int flags, uint64_t max, uint64_t *out);

/* true or false. Reason: "expected boolean". */
int evmsg_map_bool(const evmsg_map_t *m, const char *key, int flags, bool *out);

/* A string equal to one of names (NULL-terminated list); *out gets its index.
 * Reason: "expected one of: a, b, c" (the list truncated with "..." when long). */
int evmsg_map_enum(const evmsg_map_t *m, const char *key, int flags, const char *const names[],
                   int *out);

/* Money and other exact decimals: a msgpack string -?[0-9]{1,15}(\.[0-9]{1,scale})?
 * without exponent, '+', leading zeros (except "0") or negative zero, returned scaled
 * by 10^scale ("12.5" at scale 6 is 12500000) and within [min, max] (scaled units).
 * scale is 0..6 (amounts in 万元 use 6). Reasons: "expected decimal string",
 * "expected decimal with at most S decimals", "must be between MIN and MAX" (MIN and
 * MAX written as decimals). */
int evmsg_map_decimal(const evmsg_map_t *m, const char *key, int flags, int scale, int64_t min,
                      int64_t max, int64_t *out);

/* A date "YYYY-MM-DD" that exists (years 1..9999), as a day number (common/date.h).
 * Reasons: "expected string", "expected YYYY-MM-DD", "no such date". */
int evmsg_map_date(const evmsg_map_t *m, const char *key, int flags, date_t *out);

/* A nested map: *out becomes a reader over it with the path extended by key. *out is
 * always set: present (1), absent (0: reads on it return 0) or failed (-1). Reason:
 * "expected map". */
int evmsg_map_map(const evmsg_map_t *m, const char *key, int flags, evmsg_map_t *out);

/* An array of at most max_count elements; *out is always set, as evmsg_map_map.
 * Reasons: "expected array", "more than N elements". */
int evmsg_map_array(const evmsg_map_t *m, const char *key, int flags, size_t max_count,
                    evmsg_array_t *out);

/* Refuses keys not in allowed (NULL-terminated). Returns 0, or -1 with the error path
 * naming the first unknown key and reason "unknown key". Absent map: 0. */
int evmsg_map_only(const evmsg_map_t *m, const char *const allowed[]);

/* The number of keys (0 for an absent or failed reader). */
size_t evmsg_map_count(const evmsg_map_t *m);

/* The i-th key (i < evmsg_map_count) as bytes in the message, not NUL-terminated. For
 * generic walkers (printing, fuzzing); services read keys by name. */
void evmsg_map_key_at(const evmsg_map_t *m, size_t i, const char **key, size_t *len);

/* ---- Array readers ------------------------------------------------------------------
 * Element i must be < evmsg_array_count (a programmer error otherwise). Paths read
 * `parties[2]`. Return 1 or -1 as the map readers; a nil element is an error. */

/* The number of elements (0 for an absent or failed reader). */
size_t evmsg_array_count(const evmsg_array_t *a);

/* Element i as a map reader (*out always set). */
int evmsg_array_map_at(const evmsg_array_t *a, size_t i, evmsg_map_t *out);

/* Element i as a string, as evmsg_map_str (flags: EVMSG_NONEMPTY, EVMSG_ALLOW_CONTROL). */
int evmsg_array_str_at(const evmsg_array_t *a, size_t i, int flags, size_t max_bytes, char *buf);

/* Element i as an integer within [min, max], as evmsg_map_int. */
int evmsg_array_int_at(const evmsg_array_t *a, size_t i, int64_t min, int64_t max, int64_t *out);

/* ---- Topics ------------------------------------------------------------------------ */

/* Checks an event topic `<event>.<agency-code>` of len bytes: at most EVMSG_TOPIC_MAX;
 * event = segments of [a-z0-9_] separated by '.', starting with [a-z]; then '.' and the
 * 18-character agency code in the GB 32100 charset (0-9, A-Z without I O S V Z; the
 * check digit is common/ident's business). Returns 0 and, when agency_out is not NULL,
 * copies the code there (19 bytes, NUL-terminated); or -1 with err (path "topic"). */
int evmsg_topic_check(const char *topic, size_t len, char *agency_out, evmsg_err_t *err);

/* True when topic is a well-formed system topic: '_' then segments of [a-z0-9_-]
 * separated by '.', at most EVMSG_TOPIC_MAX bytes (e.g. "_hb.intake"). */
bool evmsg_topic_is_system(const char *topic, size_t len);

/* True when name is a valid service name [a-z][a-z0-9_-]{0,31} (src, "_hb.<src>"). */
bool evmsg_src_valid(const char *name, size_t len);

#endif
