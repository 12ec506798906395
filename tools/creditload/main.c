/* creditload: the load for make bench-creditpush (tools/bench/creditpush.sh).
 *
 *   creditload post URL -n BATCH -d SECONDS
 *       The reference: the fake platform's own capacity. POSTs signed batches of BATCH
 *       valid penalty records (fresh idempotency keys, so every record is checked and
 *       applied, none a duplicate) one after another over one kept-alive connection, as
 *       creditpush does, for SECONDS. Token and key from SX_CREDIT_TOKEN and
 *       SX_CREDIT_HMAC_KEY. Prints "records=N seconds=S records_per_s=R errors=E".
 *
 *   creditload emit -n COUNT -d SECONDS
 *       Plays sx-publication: writes COUNT publication.published events of valid
 *       penalty records (record ids 1..COUNT; every 5th in a key domain) into the
 *       publication outbox of SX_PG_URL (500 a transaction), then runs the stream's relay
 *       to the broker (SX_BROKER_PUB, SX_BROKER_PUBLIC_KEY, this process's key pair
 *       SX_KEY_FILE, a svc:publication identity) until SECONDS have passed or SIGTERM.
 *       Prints "emitted=N emit_per_s=R" once the events are written.
 *
 * Exit 0 when it ran, 1 when it could not, 2 on bad usage. Bounded by SECONDS + 10 s. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "bus.h"
#include "db.h"
#include "ident.h"
#include "jsonmp.h"
#include "keys.h"
#include "util.h"
#include "zsock.h"

#define S_AGENCY  "11620200013926143G"
#define S_TX_ROWS 500

static volatile sig_atomic_t s_stop; /* the stop flag */

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* The sgs fields of penalty n (valid: sgs_record_check accepts them). */
static json_t *
s_penalty(long n)
{
    char party[19], agency[19], wsh[64];
    memcpy(party, "91620200MA71XXXXX", 17);
    party[17] = ident_uscc_check_char(party);
    party[18] = '\0';
    memcpy(agency, "11620200013926143", 17);
    agency[17] = ident_uscc_check_char(agency);
    agency[18] = '\0';
    snprintf(wsh, sizeof wsh, "嘉市监罚〔2026〕%ld号", n);
    bool key = n % 5 == 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
                     "CF_XDR_MC", "嘉峪关某某商贸有限公司", "CF_XDR_LB", "法人及非法人组织",
                     "CF_XDR_SHXYM", party, "CF_WSH", wsh, "CF_WFXW", key ? "食品安全" : "占道经营",
                     "CF_SY", "占用城市道路摆摊", "CF_YJ", "《城市道路管理条例》第四十二条",
                     "CF_CFLB", "警告;罚款", "CF_NR", "警告，罚款2000元", "CF_NR_FK", "0.2",
                     "CF_JDRQ", "2026/05/06", "CF_YXQ", "2099/12/31", "CF_GSJZQ", "2027/05/06",
                     "CF_CFJG", "嘉峪关市城市管理综合执法局", "CF_CFJGDM", agency, "CF_SJLY",
                     "嘉峪关市城市管理综合执法局", "CF_SJLYDM", agency);
}

static size_t
s_sink(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static int
s_post(const char *url, int batch, int secs)
{
    const char *token = getenv("SX_CREDIT_TOKEN"), *key = getenv("SX_CREDIT_HMAC_KEY");
    if (!token || !key || sodium_init() < 0) {
        fprintf(stderr, "creditload post: SX_CREDIT_TOKEN and SX_CREDIT_HMAC_KEY required\n");
        return 2;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return 1;
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    long records = 0, errors = 0, next = 1;
    int64_t start = util_mono_ms(), end = start + (int64_t)secs * 1000;
    while (!s_stop && util_mono_ms() < end) {
        json_t *recs = json_array();
        for (int i = 0; i < batch; i++, next++) {
            char k[32];
            snprintf(k, sizeof k, "load-%ld-1", next);
            json_array_append_new(recs, json_pack("{s:s,s:s,s:s,s:o}", "key", k, "kind", "penalty",
                                                  "op", "publish", "data", s_penalty(next)));
        }
        json_t *doc = json_pack("{s:o}", "records", recs);
        char *body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!body)
            return 1;
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state h;
        crypto_auth_hmacsha256_init(&h, (const unsigned char *)key, strlen(key));
        crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, strlen(body));
        crypto_auth_hmacsha256_final(&h, mac);
        char hex[65], sig[96];
        sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
        snprintf(sig, sizeof sig, "X-Signature: %s", hex);
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        hd = curl_slist_append(hd, auth);
        hd = curl_slist_append(hd, sig);
        hd = curl_slist_append(hd, "Expect:");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_sink);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hd);
        free(body);
        if (status == 200)
            records += batch;
        else
            errors++;
    }
    double s = (double)(util_mono_ms() - start) / 1000.0;
    printf("records=%ld seconds=%.2f records_per_s=%.0f errors=%ld\n", records, s,
           s > 0 ? (double)records / s : 0.0, errors);
    curl_easy_cleanup(c);
    return 0;
}

static int
s_emit(long count, int secs)
{
    const char *pg = getenv("SX_PG_URL"), *bpub = getenv("SX_BROKER_PUB"),
               *bkey = getenv("SX_BROKER_PUBLIC_KEY"), *kf = getenv("SX_KEY_FILE"),
               *schemas = getenv("SX_SCHEMAS");
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1], err[512], dir[4200];
    if (!pg || !bpub || !bkey || !kf || !schemas) {
        fprintf(stderr, "creditload emit: SX_PG_URL, SX_BROKER_PUB, SX_BROKER_PUBLIC_KEY, "
                        "SX_KEY_FILE and SX_SCHEMAS required\n");
        return 2;
    }
    if (keys_read_pair(kf, pub, sec, err, sizeof err) < 0) {
        fprintf(stderr, "creditload emit: %s\n", err);
        return 2;
    }
    db_t *db = db_open(pg, "creditload", 10000), *rdb = db_open(pg, "creditload-relay", 10000);
    snprintf(dir, sizeof dir, "%s/sql/bus", schemas);
    if (!db || !rdb || bus_migrate(db, "publication", dir) < 0) {
        fprintf(stderr, "creditload emit: database: %s\n", db ? db_error(db) : "no connection");
        return 1;
    }
    int64_t t0 = util_mono_ms();
    char topic[64];
    snprintf(topic, sizeof topic, "publication.published.%s", S_AGENCY);
    for (long id = 1; id <= count;) {
        if (db_begin(db) < 0)
            return 1;
        for (int i = 0; i < S_TX_ROWS && id <= count; i++, id++) {
            char wsh[64];
            snprintf(wsh, sizeof wsh, "嘉市监罚〔2026〕%ld号", id);
            json_t *d = json_pack("{s:I,s:I,s:s,s:s,s:s,s:b,s:{s:s,s:s,s:o}}", "record_id",
                                  (json_int_t)id, "case_id", (json_int_t)id, "case_no", "C", "type",
                                  "penalty", "decision_no", wsh, "late", 0, "record", "type",
                                  "penalty", "decision_no", wsh, "sgs", s_penalty(id));
            char *text = json_dumps(d, JSON_COMPACT);
            json_decref(d);
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            jsonmp_err_t jerr = {0};
            evmsg_err_t eerr = {0};
            int rc = text ? jsonmp_from_json(text, strlen(text), "data", 2, &sb, &jerr) : -1;
            if (rc == 0)
                rc = bus_emit(db, "publication", topic, 1, sb.data, sb.size, &eerr);
            msgpack_sbuffer_destroy(&sb);
            free(text);
            if (rc < 0) {
                fprintf(stderr, "creditload emit: event %ld: %s %s\n", id, eerr.reason,
                        db_error(db));
                return 1;
            }
        }
        if (db_commit(db) != 0)
            return 1;
    }
    double s = (double)(util_mono_ms() - t0) / 1000.0;
    printf("emitted=%ld emit_per_s=%.0f\n", count, s > 0 ? (double)count / s : 0.0);
    fflush(stdout);

    void *ctx = zmq_ctx_new();
    zsock_limits_t lim = ZSOCK_LIMITS_DEFAULT;
    lim.linger_ms = 0;
    void *sock = zsock_client(ctx, ZMQ_PUB, bkey, pub, sec, &lim, err, sizeof err);
    if (!sock || zsock_connect(sock, bpub, err, sizeof err) < 0) {
        fprintf(stderr, "creditload emit: broker: %s\n", err);
        return 1;
    }
    bus_relay_t *relay = bus_relay_new(rdb, "publication", sock);
    int64_t end = util_mono_ms() + (int64_t)secs * 1000;
    while (relay && !s_stop && util_mono_ms() < end) {
        int wait = bus_relay_step(relay, util_mono_ms());
        util_sleep_ms(wait < 0 ? 200 : wait > 50 ? 50 : wait);
    }
    bus_relay_destroy(&relay);
    zsock_close(&sock);
    zmq_ctx_term(ctx);
    db_destroy(&db);
    db_destroy(&rdb);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "", *url = NULL;
    long n = 0;
    int secs = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            secs = (int)strtol(argv[++i], NULL, 10);
        else if (!url && argv[i][0] != '-')
            url = argv[i];
        else
            n = -1;
    }
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    if (strcmp(mode, "post") == 0 && url && n >= 1 && n <= 5000 && secs >= 1 && secs <= 3600)
        return s_post(url, (int)n, secs);
    if (strcmp(mode, "emit") == 0 && !url && n >= 1 && n <= 10000000 && secs >= 1 && secs <= 3600)
        return s_emit(n, secs);
    fprintf(stderr, "usage: creditload post URL -n BATCH -d SECONDS\n"
                    "       creditload emit -n COUNT -d SECONDS\n");
    return 2;
}
