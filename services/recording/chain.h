/* chain: the per-case record chain (执法全过程记录) — the canonical bytes of an entry and
 * the SHA-256 hash chain over them (libsodium crypto_hash_sha256). Pure: no database.
 *
 * An entry is made from one intake case event (chain_entry_from_event). Its canonical
 * bytes (chain_encode) are one msgpack map with a fixed key set in a fixed order and the
 * shortest msgpack form of every value (schemas/messages/recording.md, "Canonical
 * entry bytes"); chain_decode accepts exactly those bytes and nothing else, so
 * decode(encode(e)) == e and encode(decode(b)) == b. Each entry's hash is
 *
 *   hash_n = SHA-256(hash_{n-1} || canonical bytes of entry n),  hash_0 = 32 zero bytes
 *
 * and the chain head of a case is the hash of its last entry. */
#ifndef SX_CHAIN_H
#define SX_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "evmsg.h"

#define CHAIN_HASH_LEN     32
#define CHAIN_OFFICERS_MAX 10
#define CHAIN_STR_MAX      64   /* case_no, matter_code, doc_type, officer */
#define CHAIN_URI_MAX      1024 /* media.uri */
#define CHAIN_DEVICE_MAX   128
#define CHAIN_EVENT_MAX    40 /* event name without the agency, "case.recorded" */

/* Stages of a case (启动, 调查取证, 审核决定, 送达执行), in order; -1 = none. */
enum {
    CHAIN_STAGE_NONE = -1,
    CHAIN_START,
    CHAIN_INVESTIGATION,
    CHAIN_REVIEW_DECISION,
    CHAIN_SERVICE_EXECUTION,
    CHAIN_STAGES
};

/* A text or audio/video record's metadata (case.recorded). */
typedef struct {
    uint64_t record_no;
    char kind[8];                      /* text, audio, video, photo */
    char doc_type[CHAIN_STR_MAX + 1];  /* 文书/记录类型 */
    char device[CHAIN_DEVICE_MAX + 1]; /* "" = nil */
    uint64_t started_at, ended_at;     /* unix ms */
    char media_sha256[65];             /* 64 lowercase hex */
    char media_uri[CHAIN_URI_MAX + 1];
    uint64_t media_size;
    char classification[12]; /* public, internal, sensitive */
} chain_record_t;

/* One entry, as chained. */
typedef struct {
    uint64_t case_id;
    uint64_t n;                        /* 1, 2, ... within the case */
    char agency[EVMSG_AGENCY_LEN + 1]; /* the case's agency */
    char case_no[CHAIN_STR_MAX + 1];
    char event[CHAIN_EVENT_MAX + 1]; /* what happened: "case.opened", ... */
    int stage;                       /* the stage this event belongs to, or CHAIN_STAGE_NONE */
    uint64_t at;                     /* when: the event's time, unix ms */
    uint64_t seq;                    /* the event's seq on the intake stream */
    char state[16];                  /* the case's state after the event */
    size_t n_officers;               /* who: the officers named by the event */
    char officers[CHAIN_OFFICERS_MAX][CHAIN_STR_MAX + 1];
    char data_sha256[65]; /* SHA-256 (hex) of the event's data bytes exactly as published */
    bool has_record;
    chain_record_t record; /* case.recorded only */
} chain_entry_t;

/* What else an event tells the recording service beyond the entry (not chained). */
typedef struct {
    char matter_code[CHAIN_STR_MAX + 1];
    char type[16];     /* licence, penalty, coercion, inspection, levy */
    bool on_site;      /* case.opened */
    bool hearing;      /* case.proposed: a hearing (听证) was held */
    bool left_service; /* case.served with method `left` (留置送达) */
} chain_facts_t;

/* The stage names on the wire ("start", ...); NULL for CHAIN_STAGE_NONE. */
const char *chain_stage_name(int stage);

/* The stage of a name, or CHAIN_STAGE_NONE when it is none of them. */
int chain_stage_parse(const char *name);

/* Builds entry e (n and case-independent fields; e->n is left 0 for the caller) and facts
 * f from one intake event: topic (NUL-terminated), its stream seq and time, and its data
 * read through data (its exact bytes data_bytes/data_len for data_sha256). Returns 1 when
 * it is a case event (case.* or inspection.*) that was read, 0 when the topic is no case
 * event (nothing written), -1 when the data does not hold what the contract
 * (schemas/messages/intake/case.md) says (err says where). */
int chain_entry_from_event(const char *topic, uint64_t seq, int64_t at, const evmsg_map_t *data,
                           const void *data_bytes, size_t data_len, chain_entry_t *e,
                           chain_facts_t *f, evmsg_err_t *err);

/* Appends the canonical bytes of e to out. Returns 0, or -1 when memory ran out. */
int chain_encode(const chain_entry_t *e, msgpack_sbuffer *out);

/* Reads canonical bytes (len bytes) into *e. Returns 0, or -1 with err filled when they
 * are not exactly the canonical bytes of some entry (also when they decode but would
 * encode differently: "not canonical"). */
int chain_decode(const void *buf, size_t len, chain_entry_t *e, evmsg_err_t *err);

/* out = SHA-256(prev || body). prev is CHAIN_HASH_LEN bytes (NULL = hash_0, zeros). */
void chain_hash(const uint8_t *prev, const void *body, size_t len, uint8_t out[CHAIN_HASH_LEN]);

/* Lowercase hex of a hash into hex (65 bytes, NUL-terminated). Returns hex. */
char *chain_hex(const uint8_t hash[CHAIN_HASH_LEN], char hex[2 * CHAIN_HASH_LEN + 1]);

#endif
