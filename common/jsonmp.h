/* jsonmp: JSON text <-> msgpack, for the people and programs that speak JSON to sanxiang
 * (sxctl call and tail, later the HTTP portal). Both directions hold the input to the
 * system's limits (EVMSG_MAX_BYTES, EVMSG_MAX_DEPTH) and name the place at fault with a
 * path like `body.parties[2].name`.
 *
 * The mapping, the same both ways, so that JSON -> msgpack -> JSON -> msgpack gives the
 * same msgpack bytes:
 *
 *   JSON                       msgpack
 *   object (string keys)       map (string keys, never repeated)
 *   array                      array
 *   string (UTF-8)             str (strict UTF-8: no overlong form, no surrogate)
 *   integer (no '.', no 'e')   int, the smallest form; beyond int64/uint64 refused
 *   other number               float64 (float32 is read as its double value)
 *   true false null            true false nil
 *   {"$bin": "<hex>"}          bin (an object with the key "$bin" has no other key, and
 *                              its value is an even number of hex digits)
 *   -                          ext: refused, sanxiang does not use it
 *
 * JSON -> msgpack: RFC 8259 strictly (no comments, no trailing commas, no NaN); a UTF-8
 * byte order mark at the start is skipped; the document is one object. Errors found while
 * reading the text carry its 1-based line and column (in characters).
 *
 * msgpack -> JSON: the input goes through evmsg_decode_map first (size, nesting, string
 * keys, no duplicate key, no trailing bytes, before msgpack-c allocates anything), so
 * untrusted bytes are safe to give it. Output is one line of compact JSON; strings keep
 * their UTF-8, and only '"', '\\' and control characters are escaped. NaN and infinities
 * are refused.
 *
 * No globals; thread-safe. */
#ifndef SX_JSONMP_H
#define SX_JSONMP_H

#include <stddef.h>

#include <msgpack.h>

#include "evmsg.h"

#define JSONMP_MAX_BYTES EVMSG_MAX_BYTES /* JSON text in, msgpack in and out */
#define JSONMP_MAX_DEPTH EVMSG_MAX_DEPTH /* containers nested in a whole message */

/* Where a conversion failed. reason[0] == '\0' means no error. path is like
 * `body.parties[2].name` (the root's name alone when the fault is the document as a
 * whole; key names keep printable ASCII, other bytes show as '?'). line and column
 * (1-based) point into the JSON text; both 0 when the fault has no place in a text
 * (msgpack input, or a check made on the whole document such as a duplicate key). */
typedef struct {
    char path[EVMSG_PATH_MAX];
    char reason[160];
    int line, column;
} jsonmp_err_t;

/* Converts the JSON text (len bytes, need not be NUL-terminated) to one msgpack map,
 * appended to out. root names the document in error paths ("body"; "" for none). level
 * is where the document will sit in the message that carries it: 1 when it is the
 * message, 2 for a request's body or an envelope's data; containers may nest at most
 * JSONMP_MAX_DEPTH deep counted from that message, so what is converted here is never
 * refused for nesting by evmsg later. Refused: more than JSONMP_MAX_BYTES of text or of
 * msgpack, a root that is not an object, syntax errors, bad UTF-8 or escapes, control
 * characters in strings, integers beyond int64/uint64, numbers beyond float64's range,
 * duplicate keys, a malformed "$bin" object. Returns 0; or -1 with err filled (err may
 * be NULL) and out left as it was. */
int jsonmp_from_json(const char *text, size_t len, const char *root, int level,
                     msgpack_sbuffer *out, jsonmp_err_t *err);

/* Converts one msgpack map (len bytes) to JSON text. root names the map in error paths.
 * Returns the text (malloc'ed, NUL-terminated, the caller frees it) with its length in
 * *out_len (may be NULL); or NULL with err filled (err may be NULL): anything evmsg
 * refuses, a string or key that is not valid UTF-8, NaN or an infinity, an ext value,
 * out of memory. */
char *jsonmp_to_json(const void *buf, size_t len, const char *root, size_t *out_len,
                     jsonmp_err_t *err);

/* Writes "line L, column C: path: reason" (the parts that are set) into buf,
 * NUL-terminated and truncated to size; "" when there is no error. Returns buf. */
char *jsonmp_err_str(const jsonmp_err_t *err, char *buf, size_t size);

#endif
