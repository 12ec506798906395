/* acl: who may subscribe to what on the broker (see acl.h). */
#include "acl.h"

#include <stdbool.h>
#include <string.h>

#include "keys.h"
#include "zsock.h"

#define S_CODE_LEN 18

static bool
s_code_char(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z' && !strchr("IOSVZ", c));
}

int
acl_topic_check(const uint8_t *topic, size_t len, const char **why)
{
    if (len == 0) {
        *why = "empty topic";
        return -1;
    }
    if (len > ZSOCK_TOPIC_MAX) {
        *why = "topic longer than 128 bytes";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (topic[i] <= 0x20 || topic[i] >= 0x7f) {
            *why = "topic not printable ASCII";
            return -1;
        }
    }
    /* An agency code only as the last segment. */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && topic[i] != '.')
            continue;
        if (i < len && i - start == S_CODE_LEN) {
            bool code = true;
            for (size_t j = start; j < i && code; j++)
                code = s_code_char(topic[j]);
            if (code) {
                *why = "agency code before the last segment";
                return -1;
            }
        }
        start = i + 1;
    }
    return 0;
}

acl_verdict_t
acl_subscribe(const char *identity, const uint8_t *prefix, size_t len)
{
    if (!identity)
        return ACL_NO_IDENTITY;
    keys_id_kind_t kind = keys_identity_check(identity, NULL, 0);
    if (kind == KEYS_ID_SVC)
        return ACL_OK;
    if (kind != KEYS_ID_DEPT)
        return ACL_NO_IDENTITY;
    if (len == 0)
        return ACL_EMPTY;
    if (prefix[0] == '_')
        return ACL_SYSTEM;
    const char *why;
    if (len < S_CODE_LEN + 2 || prefix[len - S_CODE_LEN - 1] != '.' ||
        acl_topic_check(prefix, len, &why) != 0)
        return ACL_NOT_FULL_TOPIC;
    for (size_t i = len - S_CODE_LEN; i < len; i++)
        if (!s_code_char(prefix[i]))
            return ACL_NOT_FULL_TOPIC;
    if (memcmp(prefix + len - S_CODE_LEN, keys_dept_code(identity), S_CODE_LEN) != 0)
        return ACL_OTHER_AGENCY;
    return ACL_OK;
}

const char *
acl_reason(acl_verdict_t v)
{
    switch (v) {
    case ACL_OK:
        return "ok";
    case ACL_NO_IDENTITY:
        return "no identity";
    case ACL_EMPTY:
        return "empty prefix";
    case ACL_SYSTEM:
        return "system topic";
    case ACL_NOT_FULL_TOPIC:
        return "not a full topic ending in the agency code";
    case ACL_OTHER_AGENCY:
        return "another agency's code";
    }
    return "unknown";
}
