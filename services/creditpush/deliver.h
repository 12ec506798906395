/* deliver: one HTTPS POST of a batch to the credit-information platform (libcurl), signed
 * as schemas/messages/creditpush.md says: `Authorization: Bearer <token>` and
 * `X-Signature: <hex HMAC-SHA256 of the body>` (libsodium crypto_auth_hmacsha256).
 * Certificate verification is always on (peer and host); SX_CREDIT_CA names a CA bundle
 * for a platform whose certificate the system store does not vouch for.
 *
 * The POST runs in the caller's loop (libcurl multi): deliver_start begins it,
 * deliver_pollitems / deliver_wait_ms say what to poll and for how long, deliver_turn
 * moves it on without blocking and says when the answer is in. A platform that hangs
 * therefore never holds the service's request door or its bus subscriber. */
#ifndef SX_CP_DELIVER_H
#define SX_CP_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

#include <zmq.h>

typedef struct deliver_s deliver_t;

typedef struct {
    const char *url;     /* the push endpoint, https:// (http:// only for loopback tests) */
    const char *token;   /* bearer token */
    const char *key;     /* HMAC key (the bytes of the string) */
    const char *ca_file; /* CA bundle, or NULL for the system store */
    long timeout_ms;     /* the whole request */
} deliver_config_t;

typedef struct {
    long status;     /* HTTP status; 0 when there was no answer (refused, timeout, reset) */
    char error[256]; /* libcurl's reason when status is 0 */
    char *body;      /* the platform's answer, NUL-terminated, owned; may be NULL */
    size_t len;
} deliver_answer_t;

/* A deliverer for cfg (the strings are copied). NULL with err filled on failure. */
deliver_t *deliver_new(const deliver_config_t *cfg, char *err, size_t errlen);

/* Idempotent; NULLs *self_p. */
void deliver_destroy(deliver_t **self_p);

/* Signs body (application/json, len bytes) and starts its POST; the deliverer takes
 * body (malloc'ed) and frees it when the POST ends. One POST at a time. Returns 0, or -1
 * when one is already running or memory ran out (body is freed either way). */
int deliver_start(deliver_t *self, char *body, size_t len);

/* True while a POST started by deliver_start has not been collected by deliver_turn. */
bool deliver_busy(const deliver_t *self);

/* Fills items (at most max) with the POST's sockets, to be polled beside the service's
 * own (zmq_poll takes plain fds). Returns how many were written. */
int deliver_pollitems(deliver_t *self, zmq_pollitem_t *items, int max);

/* How long the loop may wait before deliver_turn must run (libcurl's timers), at most
 * cap ms; cap when no POST is running. */
long deliver_wait_ms(deliver_t *self, long cap);

/* Moves the running POST on without blocking. Returns 1 when it ended (ans filled: free
 * with deliver_answer_free; status 0 with ans->error when no answer came), 0 while it
 * runs, -1 when none is running. */
int deliver_turn(deliver_t *self, deliver_answer_t *ans);

/* Signs and POSTs body, waiting for the end (for tools and tests: deliver_start and
 * deliver_turn in a loop of its own). Fills ans (free with deliver_answer_free).
 * Returns 0 when an answer came (any status), -1 when none did (ans->error says why). */
int deliver_post(deliver_t *self, const char *body, size_t len, deliver_answer_t *ans);

/* Frees ans->body; idempotent. */
void deliver_answer_free(deliver_answer_t *ans);

/* Writes the hex HMAC-SHA256 of body under key into hex (65 bytes). */
void deliver_sign(const char *key, const char *body, size_t len, char hex[65]);

#endif
