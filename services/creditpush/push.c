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
#include "sgs_record.h"

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

/* True when s is made of [0-9a-z-] only: the key ("<record_id>-<version>", built by
 * SQL), kind and op (CHECK constraints) go into the body without escaping. */
static bool
s_plain(const char *s)
{
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || *s == '-'))
            return false;
    return true;
}

/* The batch body {"records":[{key, kind, op, serious (only when true), data}]}, written
 * as text: data is jsonb's
 * own output (valid JSON), so it is copied, not parsed and printed again (that was half
 * the deliverer's time at 500 records a batch). NULL when out of memory or an item is
 * not plain. */
static char *
s_body(const queue_item_t *items, int n, size_t *len)
{
    size_t size = 32;
    for (int i = 0; i < n; i++)
        size += strlen(items[i].data) + strlen(items[i].key) + 96;
    char *s = malloc(size);
    if (!s)
        return NULL;
    size_t o = (size_t)snprintf(s, size, "{\"records\":[");
    for (int i = 0; i < n; i++) {
        const queue_item_t *it = &items[i];
        if (!s_plain(it->key) || !s_plain(it->kind) || !s_plain(it->op)) {
            free(s);
            return NULL;
        }
        o += (size_t)snprintf(
            s + o, size - o,
            "%s{\"key\":\"%s\",\"kind\":\"%s\",\"op\":\"%s\",%s\"data\":", i ? "," : "", it->key,
            it->kind, it->op, it->serious ? "\"serious\":true," : "");
        size_t dl = strlen(it->data);
        memcpy(s + o, it->data, dl);
        o += dl;
        s[o++] = '}';
    }
    memcpy(s + o, "]}", 3);
    *len = o + 2;
    return s;
}

/* The result for key in a 200 answer, or NULL; the platform answers in order, so the
 * hint-th result is looked at first. */
static json_t *
s_result(json_t *ans, const char *key, size_t hint)
{
    json_t *all = json_object_get(ans, "results");
    json_t *r = json_array_get(all, hint);
    const char *k = json_string_value(json_object_get(r, "key"));
    if (k && strcmp(k, key) == 0)
        return r;
    size_t i;
    json_array_foreach(all, i, r)
    {
        k = json_string_value(json_object_get(r, "key"));
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

/* One POST in flight and its items. */
typedef struct {
    deliver_t *d;        /* its own connection */
    queue_item_t *items; /* the batch, S_BATCH_MAX slots */
    int n;               /* items in flight; 0 when the slot is free */
} s_slot_t;

struct push_s {
    const push_config_t *cfg; /* batch size, slots and backoff (borrowed) */
    s_slot_t slot[PUSH_INFLIGHT_MAX];
    int nslots;
    int64_t *ids; /* scratch for the statements over many items */
};

push_t *
push_new(const deliver_config_t *dc, const push_config_t *cfg, char *err, size_t errlen)
{
    push_t *self = calloc(1, sizeof *self);
    int n = cfg->inflight < 1                   ? 1
            : cfg->inflight > PUSH_INFLIGHT_MAX ? PUSH_INFLIGHT_MAX
                                                : cfg->inflight;
    if (!self || !(self->ids = calloc(S_BATCH_MAX * PUSH_INFLIGHT_MAX, sizeof *self->ids))) {
        snprintf(err, errlen, "out of memory");
        push_destroy(&self);
        return NULL;
    }
    self->cfg = cfg;
    for (int i = 0; i < n; i++, self->nslots++) {
        s_slot_t *s = &self->slot[i];
        if (!(s->d = deliver_new(dc, err, errlen)) ||
            !(s->items = calloc(S_BATCH_MAX, sizeof *s->items))) {
            if (s->d && !s->items)
                snprintf(err, errlen, "out of memory");
            self->nslots++;
            push_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void
push_destroy(push_t **self_p)
{
    if (self_p && *self_p) {
        push_t *self = *self_p;
        for (int i = 0; i < self->nslots; i++) {
            s_slot_t *s = &self->slot[i];
            if (s->items)
                queue_items_free(s->items, s->n);
            free(s->items);
            deliver_destroy(&s->d);
        }
        free(self->ids);
        free(self);
        *self_p = NULL;
    }
}

/* Writes the outcome of every item; inside one transaction, the sent ones in one
 * statement, a whole batch dead or held in one statement. */
static int
s_apply(push_t *self, db_t *db, s_slot_t *slot, const deliver_answer_t *a, push_result_t *res)
{
    const push_config_t *cfg = self->cfg;
    queue_item_t *items = slot->items;
    int n = slot->n;
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
    int rc = 0, k = 0;
    for (int i = 0; i < n; i++)
        self->ids[k++] = items[i].id;
    if (dead_all) {
        rc = queue_mark_dead_many(db, self->ids, k, cause, answer);
        res->dead = n;
    } else if (retry_all) {
        rc = queue_mark_retry_many(db, self->ids, k, delay, cause, answer);
        res->retried = n;
        if (rc == 0)
            rc = queue_hold_all(db, delay);
    } else {
        k = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            queue_item_t *it = &items[i];
            json_t *r = s_result(ans, it->key, (size_t)i);
            const char *st = json_string_value(json_object_get(r, "status"));
            if (st && (strcmp(st, "accepted") == 0 || strcmp(st, "duplicate") == 0)) {
                self->ids[k++] = it->id;
                res->sent++;
            } else if (st && strcmp(st, "rejected") == 0) {
                char *text = json_dumps(r, JSON_COMPACT);
                const char *why = json_string_value(json_object_get(r, "reason"));
                char wclean[SGS_REASON_MAX + 8];
                s_clean(why, why ? strlen(why) : 0, wclean, sizeof wclean);
                rc = queue_mark_dead(db, it->id, why ? wclean : "rejected", text);
                free(text);
                res->dead++;
                log_warn("record refused by the platform", "key=%s reason=%s", it->key,
                         why ? wclean : "");
            } else {
                rc = queue_mark_retry(db, it->id, push_backoff(cfg, it->attempts + 1),
                                      "missing from the platform's results", answer);
                res->retried++;
            }
        }
        if (rc == 0)
            rc = queue_mark_sent_many(db, self->ids, k);
    }
    if (rc < 0) {
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

bool
push_can_start(const push_t *self)
{
    for (int i = 0; i < self->nslots; i++)
        if (self->slot[i].n == 0)
            return true;
    return false;
}

bool
push_busy(const push_t *self)
{
    for (int i = 0; i < self->nslots; i++)
        if (self->slot[i].n > 0)
            return true;
    return false;
}

int
push_start(push_t *self, db_t *db)
{
    s_slot_t *free_slot = NULL;
    int k = 0;
    for (int i = 0; i < self->nslots; i++) {
        s_slot_t *s = &self->slot[i];
        if (s->n == 0 && !free_slot)
            free_slot = s;
        for (int j = 0; j < s->n; j++)
            self->ids[k++] = s->items[j].id; /* in flight: not picked again */
    }
    if (!free_slot)
        return 0;
    const push_config_t *cfg = self->cfg;
    int max = cfg->batch < 1 ? 1 : cfg->batch > S_BATCH_MAX ? S_BATCH_MAX : cfg->batch;
    int n = queue_pick(db, max, self->ids, k, free_slot->items);
    if (n <= 0)
        return n;
    size_t len = 0;
    char *body = s_body(free_slot->items, n, &len);
    if (!body || deliver_start(free_slot->d, body, len) < 0) {
        queue_items_free(free_slot->items, n);
        return -1;
    }
    free_slot->n = n;
    return n;
}

int
push_pollitems(push_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    for (int i = 0; i < self->nslots; i++)
        if (self->slot[i].n > 0)
            n += deliver_pollitems(self->slot[i].d, items + n, max - n);
    return n;
}

long
push_wait_ms(push_t *self, long cap)
{
    for (int i = 0; i < self->nslots; i++)
        if (self->slot[i].n > 0)
            cap = deliver_wait_ms(self->slot[i].d, cap);
    return cap;
}

int
push_turn(push_t *self, db_t *db, push_result_t *res)
{
    memset(res, 0, sizeof *res);
    for (int i = 0; i < self->nslots; i++) {
        s_slot_t *s = &self->slot[i];
        deliver_answer_t a;
        if (s->n == 0 || deliver_turn(s->d, &a) != 1)
            continue;
        res->picked = s->n;
        res->status = a.status;
        int rc = s_apply(self, db, s, &a, res);
        if (a.status != 200)
            log_warn("push not taken", "records=%d status=%ld error=%s", s->n, a.status,
                     a.status ? "" : a.error);
        deliver_answer_free(&a);
        queue_items_free(s->items, s->n);
        s->n = 0;
        return rc < 0 ? -1 : 1;
    }
    return 0;
}
