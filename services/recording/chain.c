/* chain: canonical entry bytes and the SHA-256 chain (chain.h). */
#include "chain.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#define S_VERSION 1 /* "v" of the canonical bytes */

static const char *const s_stages[] = {"start", "investigation", "review_decision",
                                       "service_execution", NULL};
static const char *const s_kinds[] = {"text", "audio", "video", "photo", NULL};
static const char *const s_classes[] = {"public", "internal", "sensitive", NULL};
static const char *const s_types[] = {"licence", "penalty", "coercion", "inspection", "levy", NULL};

const char *
chain_stage_name(int stage)
{
    return stage >= 0 && stage < CHAIN_STAGES ? s_stages[stage] : NULL;
}

int
chain_stage_parse(const char *name)
{
    for (int i = 0; name && s_stages[i]; i++)
        if (strcmp(name, s_stages[i]) == 0)
            return i;
    return CHAIN_STAGE_NONE;
}

char *
chain_hex(const uint8_t hash[CHAIN_HASH_LEN], char hex[2 * CHAIN_HASH_LEN + 1])
{
    sodium_bin2hex(hex, 2 * CHAIN_HASH_LEN + 1, hash, CHAIN_HASH_LEN);
    return hex;
}

void
chain_hash(const uint8_t *prev, const void *body, size_t len, uint8_t out[CHAIN_HASH_LEN])
{
    static const uint8_t zero[CHAIN_HASH_LEN] = {0};
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, prev ? prev : zero, CHAIN_HASH_LEN);
    crypto_hash_sha256_update(&st, body, len);
    crypto_hash_sha256_final(&st, out);
}

/* True when s is exactly 64 lowercase hex digits. */
static bool
s_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 64;
}

static void
s_fail(evmsg_err_t *err, const char *path, const char *reason)
{
    if (err && !err->reason[0]) {
        snprintf(err->path, sizeof err->path, "%s", path);
        snprintf(err->reason, sizeof err->reason, "%s", reason);
    }
}

/* The event name of topic (without ".<agency>") into ev; the agency into agency. */
static int
s_split_topic(const char *topic, char *ev, size_t evlen, char agency[EVMSG_AGENCY_LEN + 1])
{
    size_t len = strlen(topic);
    if (evmsg_topic_check(topic, len, agency, NULL) < 0 || len - EVMSG_AGENCY_LEN - 1 >= evlen)
        return -1;
    memcpy(ev, topic, len - EVMSG_AGENCY_LEN - 1);
    ev[len - EVMSG_AGENCY_LEN - 1] = '\0';
    return 0;
}

/* Reads an officers array (1..10 distinct certificate numbers) into e. */
static void
s_officers(const evmsg_map_t *m, const char *key, chain_entry_t *e)
{
    evmsg_array_t a;
    if (evmsg_map_array(m, key, EVMSG_REQUIRED, CHAIN_OFFICERS_MAX, &a) < 0)
        return;
    e->n_officers = evmsg_array_count(&a);
    for (size_t i = 0; i < e->n_officers; i++)
        evmsg_array_str_at(&a, i, EVMSG_NONEMPTY, CHAIN_STR_MAX, e->officers[i]);
}

/* The record fields of case.recorded. */
static void
s_record(const evmsg_map_t *d, chain_entry_t *e, evmsg_err_t *err)
{
    chain_record_t *r = &e->record;
    int kind = 0, cls = 0;
    evmsg_map_t media;
    e->has_record = true;
    evmsg_map_uint(d, "record_no", EVMSG_REQUIRED, INT64_MAX, &r->record_no);
    evmsg_map_enum(d, "kind", EVMSG_REQUIRED, s_kinds, &kind);
    evmsg_map_str(d, "doc_type", EVMSG_NONEMPTY, CHAIN_STR_MAX, r->doc_type);
    s_officers(d, "officers", e);
    evmsg_map_str(d, "device", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CHAIN_DEVICE_MAX, r->device);
    evmsg_map_uint(d, "started_at", EVMSG_REQUIRED, 253402300799999ULL, &r->started_at);
    evmsg_map_uint(d, "ended_at", EVMSG_REQUIRED, 253402300799999ULL, &r->ended_at);
    evmsg_map_map(d, "media", EVMSG_REQUIRED, &media);
    evmsg_map_str(&media, "sha256", EVMSG_REQUIRED, 64, r->media_sha256);
    evmsg_map_str(&media, "uri", EVMSG_NONEMPTY, CHAIN_URI_MAX, r->media_uri);
    evmsg_map_uint(&media, "size", EVMSG_REQUIRED, (1ULL << 53) - 1, &r->media_size);
    evmsg_map_enum(d, "classification", EVMSG_REQUIRED, s_classes, &cls);
    if (err && err->reason[0])
        return;
    if (!s_hex64(r->media_sha256))
        s_fail(err, "data.media.sha256", "expected 64 lowercase hex digits");
    snprintf(r->kind, sizeof r->kind, "%s", s_kinds[kind]);
    snprintf(r->classification, sizeof r->classification, "%s", s_classes[cls]);
}

int
chain_entry_from_event(const char *topic, uint64_t seq, int64_t at, const evmsg_map_t *data,
                       const void *data_bytes, size_t data_len, chain_entry_t *e, chain_facts_t *f,
                       evmsg_err_t *err)
{
    char ev[CHAIN_EVENT_MAX + 1], agency[EVMSG_AGENCY_LEN + 1];
    if ((strncmp(topic, "case.", 5) != 0 && strncmp(topic, "inspection.", 11) != 0) ||
        s_split_topic(topic, ev, sizeof ev, agency) < 0)
        return 0;
    memset(e, 0, sizeof *e);
    memset(f, 0, sizeof *f);
    snprintf(e->event, sizeof e->event, "%s", ev);
    memcpy(e->agency, agency, sizeof e->agency);
    e->seq = seq;
    e->at = at < 0 ? 0 : (uint64_t)at;
    e->stage = CHAIN_STAGE_NONE;

    int type = 0;
    evmsg_map_uint(data, "case_id", EVMSG_REQUIRED, INT64_MAX, &e->case_id);
    evmsg_map_str(data, "case_no", EVMSG_NONEMPTY, CHAIN_STR_MAX, e->case_no);
    evmsg_map_enum(data, "type", EVMSG_REQUIRED, s_types, &type);
    evmsg_map_str(data, "matter_code", EVMSG_NONEMPTY, CHAIN_STR_MAX, f->matter_code);
    evmsg_map_str(data, "state", EVMSG_OPTIONAL | EVMSG_NONEMPTY, sizeof e->state - 1, e->state);
    if (err && err->reason[0])
        return -1;
    snprintf(f->type, sizeof f->type, "%s", s_types[type]);

    if (strcmp(ev, "case.opened") == 0) {
        e->stage = CHAIN_START;
        evmsg_map_bool(data, "on_site", EVMSG_REQUIRED, &f->on_site);
        s_officers(data, "officers", e);
    } else if (strcmp(ev, "case.recorded") == 0) {
        char stage[24];
        if (evmsg_map_str(data, "stage", EVMSG_REQUIRED, sizeof stage - 1, stage) == 1 &&
            (e->stage = chain_stage_parse(stage)) == CHAIN_STAGE_NONE)
            s_fail(err, "data.stage",
                   "expected one of: start, investigation, review_decision, "
                   "service_execution");
        s_record(data, e, err);
    } else if (strcmp(ev, "inspection.resulted") == 0) {
        e->stage = CHAIN_INVESTIGATION;
    } else if (strcmp(ev, "case.proposed") == 0) {
        e->stage = CHAIN_REVIEW_DECISION;
        evmsg_map_bool(data, "hearing", EVMSG_OPTIONAL, &f->hearing);
    } else if (strcmp(ev, "case.decided") == 0) {
        e->stage = CHAIN_REVIEW_DECISION;
    } else if (strcmp(ev, "case.served") == 0) {
        char method[16] = "";
        e->stage = CHAIN_SERVICE_EXECUTION;
        evmsg_map_str(data, "method", EVMSG_OPTIONAL, sizeof method - 1, method);
        f->left_service = strcmp(method, "left") == 0;
    } else if (strcmp(ev, "case.executed") == 0) {
        e->stage = CHAIN_SERVICE_EXECUTION;
    }
    if (err && err->reason[0])
        return -1;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data_bytes, data_len);
    chain_hex(h, e->data_sha256);
    return 1;
}

/* ---- Canonical bytes ------------------------------------------------------------------ */

static void
s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
s_str_or_nil(msgpack_packer *pk, const char *s)
{
    if (s && s[0])
        s_str(pk, s);
    else
        msgpack_pack_nil(pk);
}

int
chain_encode(const chain_entry_t *e, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    size_t before = out->size;
    msgpack_pack_map(&pk, 13);
    s_str(&pk, "v");
    msgpack_pack_uint64(&pk, S_VERSION);
    s_str(&pk, "case_id");
    msgpack_pack_uint64(&pk, e->case_id);
    s_str(&pk, "n");
    msgpack_pack_uint64(&pk, e->n);
    s_str(&pk, "agency");
    s_str(&pk, e->agency);
    s_str(&pk, "case_no");
    s_str(&pk, e->case_no);
    s_str(&pk, "event");
    s_str(&pk, e->event);
    s_str(&pk, "stage");
    s_str_or_nil(&pk, chain_stage_name(e->stage));
    s_str(&pk, "at");
    msgpack_pack_uint64(&pk, e->at);
    s_str(&pk, "seq");
    msgpack_pack_uint64(&pk, e->seq);
    s_str(&pk, "state");
    s_str_or_nil(&pk, e->state);
    s_str(&pk, "officers");
    msgpack_pack_array(&pk, e->n_officers);
    for (size_t i = 0; i < e->n_officers; i++)
        s_str(&pk, e->officers[i]);
    s_str(&pk, "data_sha256");
    s_str(&pk, e->data_sha256);
    s_str(&pk, "record");
    if (!e->has_record) {
        msgpack_pack_nil(&pk);
    } else {
        const chain_record_t *r = &e->record;
        msgpack_pack_map(&pk, 8);
        s_str(&pk, "record_no");
        msgpack_pack_uint64(&pk, r->record_no);
        s_str(&pk, "kind");
        s_str(&pk, r->kind);
        s_str(&pk, "doc_type");
        s_str(&pk, r->doc_type);
        s_str(&pk, "device");
        s_str_or_nil(&pk, r->device);
        s_str(&pk, "started_at");
        msgpack_pack_uint64(&pk, r->started_at);
        s_str(&pk, "ended_at");
        msgpack_pack_uint64(&pk, r->ended_at);
        s_str(&pk, "media");
        msgpack_pack_map(&pk, 3);
        s_str(&pk, "sha256");
        s_str(&pk, r->media_sha256);
        s_str(&pk, "uri");
        s_str(&pk, r->media_uri);
        s_str(&pk, "size");
        msgpack_pack_uint64(&pk, r->media_size);
        s_str(&pk, "classification");
        s_str(&pk, r->classification);
    }
    return out->size > before ? 0 : -1;
}

int
chain_decode(const void *buf, size_t len, chain_entry_t *e, evmsg_err_t *err)
{
    static const char *const keys[] = {"v",        "case_id",     "n",      "agency", "case_no",
                                       "event",    "stage",       "at",     "seq",    "state",
                                       "officers", "data_sha256", "record", NULL};
    static const char *const rkeys[] = {"record_no", "kind",           "doc_type",
                                        "device",    "started_at",     "ended_at",
                                        "media",     "classification", NULL};
    static const char *const mkeys[] = {"sha256", "uri", "size", NULL};
    evmsg_err_t local = {0};
    if (!err)
        err = &local;
    evmsg_t *msg = NULL;
    if (evmsg_decode_map(buf, len, &msg, err) < 0)
        return -1;
    memset(e, 0, sizeof *e);
    evmsg_map_t d = evmsg_data(msg, err);
    uint64_t v = 0;
    char stage[24] = "";
    int kind = 0, cls = 0;
    evmsg_map_only(&d, keys);
    evmsg_map_uint(&d, "v", EVMSG_REQUIRED, S_VERSION, &v);
    evmsg_map_uint(&d, "case_id", EVMSG_REQUIRED, INT64_MAX, &e->case_id);
    evmsg_map_uint(&d, "n", EVMSG_REQUIRED, INT32_MAX, &e->n);
    evmsg_map_str(&d, "agency", EVMSG_NONEMPTY, EVMSG_AGENCY_LEN, e->agency);
    evmsg_map_str(&d, "case_no", EVMSG_NONEMPTY, CHAIN_STR_MAX, e->case_no);
    evmsg_map_str(&d, "event", EVMSG_NONEMPTY, CHAIN_EVENT_MAX, e->event);
    evmsg_map_str(&d, "stage", EVMSG_OPTIONAL, sizeof stage - 1, stage);
    evmsg_map_uint(&d, "at", EVMSG_REQUIRED, INT64_MAX, &e->at);
    evmsg_map_uint(&d, "seq", EVMSG_REQUIRED, INT64_MAX, &e->seq);
    evmsg_map_str(&d, "state", EVMSG_OPTIONAL | EVMSG_NONEMPTY, sizeof e->state - 1, e->state);
    s_officers(&d, "officers", e);
    evmsg_map_str(&d, "data_sha256", EVMSG_REQUIRED, 64, e->data_sha256);
    evmsg_map_t r;
    if (evmsg_map_map(&d, "record", EVMSG_OPTIONAL, &r) == 1) {
        evmsg_map_t m;
        e->has_record = true;
        evmsg_map_only(&r, rkeys);
        evmsg_map_uint(&r, "record_no", EVMSG_REQUIRED, INT64_MAX, &e->record.record_no);
        evmsg_map_enum(&r, "kind", EVMSG_REQUIRED, s_kinds, &kind);
        evmsg_map_str(&r, "doc_type", EVMSG_NONEMPTY, CHAIN_STR_MAX, e->record.doc_type);
        evmsg_map_str(&r, "device", EVMSG_OPTIONAL | EVMSG_NONEMPTY, CHAIN_DEVICE_MAX,
                      e->record.device);
        evmsg_map_uint(&r, "started_at", EVMSG_REQUIRED, INT64_MAX, &e->record.started_at);
        evmsg_map_uint(&r, "ended_at", EVMSG_REQUIRED, INT64_MAX, &e->record.ended_at);
        evmsg_map_map(&r, "media", EVMSG_REQUIRED, &m);
        evmsg_map_only(&m, mkeys);
        evmsg_map_str(&m, "sha256", EVMSG_REQUIRED, 64, e->record.media_sha256);
        evmsg_map_str(&m, "uri", EVMSG_NONEMPTY, CHAIN_URI_MAX, e->record.media_uri);
        evmsg_map_uint(&m, "size", EVMSG_REQUIRED, INT64_MAX, &e->record.media_size);
        evmsg_map_enum(&r, "classification", EVMSG_REQUIRED, s_classes, &cls);
    }
    int rc = err->reason[0] ? -1 : 0;
    if (rc == 0) {
        e->stage = chain_stage_parse(stage);
        if (stage[0] && e->stage == CHAIN_STAGE_NONE)
            s_fail(err, "stage", "unknown stage"), rc = -1;
        if (e->has_record) {
            snprintf(e->record.kind, sizeof e->record.kind, "%s", s_kinds[kind]);
            snprintf(e->record.classification, sizeof e->record.classification, "%s",
                     s_classes[cls]);
        }
    }
    evmsg_destroy(&msg);
    if (rc < 0)
        return -1;
    /* Only the canonical form: the same entry encoded again must give the same bytes. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (chain_encode(e, &sb) < 0 || sb.size != len || memcmp(sb.data, buf, len) != 0)
        s_fail(err, "", "not canonical"), rc = -1;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
