/* push: a batch out, the answer in. */
#include "push.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "log.h"
#include "queue.h"

#define S_BATCH_MAX 1000

int64_t
push_backoff(const push_config_t *cfg, int attempts)
{
    int64_t d = cfg->backoff_ms > 0 ? cfg->backoff_ms : 1000;
    for (int i = 1; i < attempts && d < cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->backoff_max_ms)
        d = cfg->backoff_max_ms;
    uint32_t half = (uint32_t)(d / 2 > 0 ? d / 2 : 1);
    return d - half + randombytes_uniform(half + 1);
}

/* The batch body {"records":[{key, kind, op, data}]}; NULL when out of memory. */
static char *
s_body(const queue_item_t *items, int n, size_t *len)
{
    json_t *recs = json_array();
    for (int i = 0; recs && i < n; i++) {
        json_t *data = json_loads(items[i].data, 0, NULL);
        if (!data || json_array_append_new(recs, json_pack("{s:s,s:s,s:s,s:o}", "key", items[i].key,
                                                           "kind", items[i].kind, "op", items[i].op,
                                                           "data", data)) < 0) {
            json_decref(recs);
            return NULL;
        }
    }
    json_t *doc = recs ? json_pack("{s:o}", "records", recs) : NULL;
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    *len = s ? strlen(s) : 0;
    return s;
}

/* The result for key in a 200 answer, or NULL. */
static json_t *
s_result(json_t *ans, const char *key)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(ans, "results"), i, r)
    {
        const char *k = json_string_value(json_object_get(r, "key"));
        if (k && strcmp(k, key) == 0)
            return r;
    }
    return NULL;
}

#define S_KEPT_MAX 8192 /* bytes of the platform's answer kept with a dead letter */

/* The platform's answer as it may be stored and shown: at most S_KEPT_MAX bytes of valid
 * UTF-8, a NUL or another control byte (but \t \n \r) or a byte of a broken sequence
 * written '?'. The answer comes from outside: stored as received, a stray byte would make
 * PostgreSQL refuse the dead letter, and the batch would be pushed again for ever. */
static void
s_clean(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; in && i < len && o + 5 < size;) {
        unsigned char c = (unsigned char)in[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++)
            ok = ((unsigned char)in[i + k] & 0xc0) == 0x80;
        if (ok && n == 2)
            ok = c >= 0xc2; /* no overlong forms */
        if (ok && n == 3) {
            unsigned char d = (unsigned char)in[i + 1];
            ok = !(c == 0xe0 && d < 0xa0) && !(c == 0xed && d >= 0xa0); /* overlong, surrogate */
        }
        if (ok && n == 4) {
            unsigned char d = (unsigned char)in[i + 1];
            ok = c <= 0xf4 && !(c == 0xf0 && d < 0x90) && !(c == 0xf4 && d >= 0x90);
        }
        if (ok && n == 1 && (c < 0x20 || c == 0x7f) && c != '\t' && c != '\n' && c != '\r')
            ok = false;
        if (!ok) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, in + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
}

/* Writes the outcome of every item; inside one transaction. */
static int
s_apply(db_t *db, const push_config_t *cfg, queue_item_t *items, int n, const deliver_answer_t *a,
        push_result_t *res)
{
    json_t *ans = a->status == 200 && a->body ? json_loads(a->body, 0, NULL) : NULL;
    char cause[300];
    static char kept[S_KEPT_MAX + 8];
    s_clean(a->body, a->body ? a->len : 0, kept, sizeof kept);
    const char *answer = a->body ? kept : NULL;
    if (a->status == 0)
        snprintf(cause, sizeof cause, "no answer: %s", a->error);
    else
        snprintf(cause, sizeof cause, "HTTP %ld", a->status);
    bool dead_all = a->status >= 400 && a->status < 500 && a->status != 429 && a->status != 408;
    bool retry_all = !dead_all && !ans;
    int most = 0;
    for (int i = 0; i < n; i++)
        most = items[i].attempts > most ? items[i].attempts : most;
    int64_t delay = push_backoff(cfg, most + 1); /* one delay for the platform, not per record */
    if (db_begin(db) < 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        queue_item_t *it = &items[i];
        int rc;
        if (dead_all) {
            rc = queue_mark_dead(db, it->id, cause, answer);
            res->dead++;
        } else if (retry_all) {
            rc = queue_mark_retry(db, it->id, delay, cause, answer);
            res->retried++;
        } else {
            json_t *r = s_result(ans, it->key);
            const char *st = json_string_value(json_object_get(r, "status"));
            if (st && (strcmp(st, "accepted") == 0 || strcmp(st, "duplicate") == 0)) {
                rc = queue_mark_sent(db, it->id);
                res->sent++;
            } else if (st && strcmp(st, "rejected") == 0) {
                char *text = json_dumps(r, JSON_COMPACT);
                const char *why = json_string_value(json_object_get(r, "reason"));
                rc = queue_mark_dead(db, it->id, why ? why : "rejected", text);
                free(text);
                res->dead++;
                log_warn("record refused by the platform", "key=%s reason=%s", it->key,
                         why ? why : "");
            } else {
                rc = queue_mark_retry(db, it->id, push_backoff(cfg, it->attempts + 1),
                                      "missing from the platform's results", answer);
                res->retried++;
            }
        }
        if (rc < 0) {
            db_rollback(db);
            goto fail;
        }
    }
    if (retry_all && queue_hold_all(db, delay) < 0) {
        db_rollback(db);
        goto fail;
    }
    if (db_commit(db) != 0)
        goto fail;
    json_decref(ans);
    return 0;
fail:
    json_decref(ans);
    return -1;
}

int
push_step(db_t *db, deliver_t *d, const push_config_t *cfg, push_result_t *res)
{
    memset(res, 0, sizeof *res);
    int max = cfg->batch < 1 ? 1 : cfg->batch > S_BATCH_MAX ? S_BATCH_MAX : cfg->batch;
    queue_item_t *items = calloc((size_t)max, sizeof *items);
    int n = items ? queue_pick(db, max, items) : -1;
    if (n <= 0) {
        free(items);
        return n;
    }
    res->picked = n;
    size_t len = 0;
    char *body = s_body(items, n, &len);
    if (!body) {
        queue_items_free(items, n);
        free(items);
        return -1;
    }
    deliver_answer_t a;
    deliver_post(d, body, len, &a);
    free(body);
    res->status = a.status;
    int rc = s_apply(db, cfg, items, n, &a, res);
    if (a.status != 200)
        log_warn("push not taken", "records=%d status=%ld error=%s", n, a.status,
                 a.status ? "" : a.error);
    deliver_answer_free(&a);
    queue_items_free(items, n);
    free(items);
    return rc < 0 ? -1 : n;
}
