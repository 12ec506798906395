/* deliver: one HTTPS POST of a batch to the credit-information platform (libcurl), signed
 * as schemas/messages/creditpush.md says: `Authorization: Bearer <token>` and
 * `X-Signature: <hex HMAC-SHA256 of the body>` (libsodium crypto_auth_hmacsha256).
 * Certificate verification is always on (peer and host); SX_CREDIT_CA names a CA bundle
 * for a platform whose certificate the system store does not vouch for. */
#ifndef SX_CP_DELIVER_H
#define SX_CP_DELIVER_H

#include <stddef.h>

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

/* Signs and POSTs body (application/json). Fills ans (free with deliver_answer_free).
 * Returns 0 when an answer came (any status), -1 when none did (ans->error says why). */
int deliver_post(deliver_t *self, const char *body, size_t len, deliver_answer_t *ans);

/* Frees ans->body; idempotent. */
void deliver_answer_free(deliver_answer_t *ans);

/* Writes the hex HMAC-SHA256 of body under key into hex (65 bytes). */
void deliver_sign(const char *key, const char *body, size_t len, char hex[65]);

#endif
