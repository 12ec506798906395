/* acl: who may subscribe to what on the broker, and what a topic may look like.
 *
 * Topics are "<event>.<code>": printable ASCII without spaces, 1..128 bytes. A topic may
 * hold an 18-character agency code (统一社会信用代码) only as its last dot-separated
 * segment; otherwise a department's full-topic subscription "<event>.<own code>" could
 * prefix-match "<event>.<own code>.<other code>" and leak another agency's events, so the
 * broker drops such topics at the door.
 *
 * Subscriptions (the subscriber's User-Id from ZAP):
 *   svc:*          any prefix, including "" (everything) and system topics ("_...").
 *   dept:<code>:*  only a full topic "<event>.<code>" ending in its own agency code,
 *                  where <event> is non-empty and does not start with '_' (heartbeats and
 *                  other system topics are for services only). Anything shorter, the
 *                  empty prefix, or another agency's code is refused.
 *   no User-Id     refused (libzmq hands unsubscriptions of a closed connection over
 *                  without metadata; the broker treats those separately). */
#ifndef SX_BROKER_ACL_H
#define SX_BROKER_ACL_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ACL_OK = 0,
    ACL_NO_IDENTITY,    /* no or malformed User-Id */
    ACL_EMPTY,          /* the empty prefix (everything) */
    ACL_SYSTEM,         /* a '_' system topic, services only */
    ACL_NOT_FULL_TOPIC, /* not "<event>.<code>" */
    ACL_OTHER_AGENCY,   /* ends in another agency's code */
} acl_verdict_t;

/* May `identity` (NULL when the message had no User-Id) subscribe to the len-byte
 * prefix? Pure function, thread-safe. */
acl_verdict_t acl_subscribe(const char *identity, const uint8_t *prefix, size_t len);

/* A short reason for logs: "ok", "no identity", "empty prefix", ... */
const char *acl_reason(acl_verdict_t v);

/* Checks a published topic (see above). Returns 0, or -1 with *why set to a static
 * reason ("empty topic", "topic longer than 128 bytes", ...). */
int acl_topic_check(const uint8_t *topic, size_t len, const char **why);

#endif
