/* sxctl record: the whole-process record (执法全过程记录) through sx-recording's door.
 *
 *   usage: sxctl record verify CASE [--endpoint EP] [--key KEYFILE]
 *                                   [--server-key Z85|FILE] [--timeout MS] [--tries N]
 *                                   [--json]
 *
 * `verify` sends record.verify {case_id} (schemas/messages/recording.md): the service
 * recomputes the case's hash chain from the stored bytes and checks the archive seal, and
 * this verb prints what it found, naming the first entry that does not match.
 *
 * exit status: 0 the chain and the seal verify, 1 they do not (or the service refused,
 * or did not answer), 2 usage error. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "client.h"
#include "sxctl.h"

#define S_VERB        "record verify"
#define S_ENDPOINT    "tcp://127.0.0.1:7721" /* sx-recording's default door */
#define S_TIMEOUT_MS  30000                  /* a long chain takes a while to recompute */
#define S_TRIES       2
#define S_PROBLEM_MAX 200

typedef struct {
    const char *endpoint, *key_file, *server_key;
    uint64_t case_id;
    int timeout_ms, tries;
    bool json;
} s_args_t;

/* What record.verify answered. */
typedef struct {
    uint64_t case_id, count, first_bad; /* first_bad 0: none */
    bool ok, sealed, seal_ok;
    char head[65];
    char problem[S_PROBLEM_MAX + 1], seal_problem[S_PROBLEM_MAX + 1];
} s_result_t;

/* A positive whole number from text, at most max; 0 when it is not one. */
static uint64_t
s_uint_arg(const char *s, uint64_t max)
{
    if (!s[0] || s[0] == '-' || s[0] == '+')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return 0;
    return (uint64_t)v;
}

static int
s_parse_args(int argc, char **argv, s_args_t *a)
{
    const char *pos = NULL;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char **opt = NULL;
        int *num = NULL, max = 0;
        if (strcmp(arg, "--endpoint") == 0)
            opt = &a->endpoint;
        else if (strcmp(arg, "--key") == 0)
            opt = &a->key_file;
        else if (strcmp(arg, "--server-key") == 0)
            opt = &a->server_key;
        else if (strcmp(arg, "--timeout") == 0)
            num = &a->timeout_ms, max = 3600 * 1000;
        else if (strcmp(arg, "--tries") == 0)
            num = &a->tries, max = 100;
        if (opt || num) {
            if (++i == argc)
                return sxctl_usage(S_VERB, "%s needs a value", arg);
            if (opt) {
                *opt = argv[i];
            } else if ((*num = (int)s_uint_arg(argv[i], (uint64_t)max)) == 0) {
                return sxctl_usage(S_VERB, "%s: expected a whole number 1..%d, got '%s'", arg, max,
                                   argv[i]);
            }
        } else if (strcmp(arg, "--json") == 0) {
            a->json = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return sxctl_usage(S_VERB, "unknown option '%s'", arg);
        } else if (!pos) {
            pos = arg;
        } else {
            return sxctl_usage(S_VERB, "unexpected argument '%s'", arg);
        }
    }
    if (!pos)
        return sxctl_usage(S_VERB, "expected CASE (the case_id)");
    if ((a->case_id = s_uint_arg(pos, INT64_MAX)) == 0)
        return sxctl_usage(S_VERB, "CASE: expected a case_id (a whole number >= 1), got '%s'", pos);
    if (!a->endpoint)
        a->endpoint = getenv("SX_RECORDING_ENDPOINT");
    if (!a->endpoint || !*a->endpoint)
        a->endpoint = S_ENDPOINT;
    if (!strstr(a->endpoint, "://"))
        return sxctl_usage(S_VERB, "--endpoint: expected e.g. %s, got '%s'", S_ENDPOINT,
                           a->endpoint);
    return sxctl_keys_default(S_VERB, &a->key_file, &a->server_key, "SX_SERVER_PUBLIC_KEY",
                              "server key");
}

/* Reads record.verify's result map (len bytes) into *out. Returns 0, or -1 with err. */
static int
s_read_result(const void *buf, size_t len, s_result_t *out, evmsg_err_t *err)
{
    evmsg_t *msg = NULL;
    memset(out, 0, sizeof *out);
    if (evmsg_decode_map(buf, len, &msg, err) < 0)
        return -1;
    evmsg_map_t m = evmsg_data(msg, err);
    evmsg_map_uint(&m, "case_id", EVMSG_REQUIRED, UINT64_MAX, &out->case_id);
    evmsg_map_bool(&m, "ok", EVMSG_REQUIRED, &out->ok);
    evmsg_map_uint(&m, "count", EVMSG_REQUIRED, UINT64_MAX, &out->count);
    evmsg_map_str(&m, "head", EVMSG_REQUIRED, 64, out->head);
    evmsg_map_uint(&m, "first_bad", EVMSG_OPTIONAL, UINT64_MAX, &out->first_bad);
    evmsg_map_str(&m, "problem", EVMSG_OPTIONAL, S_PROBLEM_MAX, out->problem);
    evmsg_map_bool(&m, "sealed", EVMSG_REQUIRED, &out->sealed);
    evmsg_map_bool(&m, "seal_ok", EVMSG_OPTIONAL, &out->seal_ok);
    evmsg_map_str(&m, "seal_problem", EVMSG_OPTIONAL, S_PROBLEM_MAX, out->seal_problem);
    evmsg_destroy(&msg);
    return err->reason[0] ? -1 : 0;
}

/* The verdict in words, on stdout. */
static void
s_print(const s_result_t *r)
{
    if (r->ok) {
        printf("case %" PRIu64 ": ok, %" PRIu64 " entries, head %s\n", r->case_id, r->count,
               r->head);
        printf("seal: %s\n", r->sealed ? "ok (the archive manifest matches the chain)"
                                       : "none (the case is not closed)");
        return;
    }
    if (r->first_bad)
        printf("case %" PRIu64 ": FAILED: entry %" PRIu64 " does not match\n", r->case_id,
               r->first_bad);
    else
        printf("case %" PRIu64 ": FAILED\n", r->case_id);
    printf("chain: %s\n", r->problem[0] ? r->problem : "ok");
    if (!r->sealed)
        printf("seal: none (the case is not closed)\n");
    else
        printf("seal: %s\n", r->seal_ok ? "ok" : r->seal_problem);
    printf("count %" PRIu64 ", head %s (as stored)\n", r->count, r->head);
}

static int
s_verify(const s_args_t *a)
{
    sxctl_keys_t keys;
    int rc = sxctl_keys_read(S_VERB, a->key_file, a->server_key, "server key", &keys);
    if (rc != SXCTL_OK)
        return rc;
    char rid[RPC_RID_MAX + 1];
    if (sxctl_fresh_rid("sxctl-verify-", 10, rid) < 0)
        return sxctl_fail(S_VERB, "no randomness for a rid: %s", strerror(errno));

    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "case_id", 7);
    msgpack_pack_uint64(&pk, a->case_id);

    sxctl_client_t client;
    if ((rc = sxctl_client_open(S_VERB, a->endpoint, &keys, &client)) != SXCTL_OK) {
        msgpack_sbuffer_destroy(&body);
        return rc;
    }
    rpc_reply_t rep;
    evmsg_err_t eerr = {{0}, {0}};
    rc = rpc_call(client.rpc, "record.verify", rid, body.data, body.size, a->timeout_ms, a->tries,
                  &rep, &eerr);
    msgpack_sbuffer_destroy(&body);
    sxctl_client_close(&client);
    if (rc < 0) {
        char why[300];
        return sxctl_fail(S_VERB, "%s: %s", a->endpoint, evmsg_err_str(&eerr, why, sizeof why));
    }
    if (!rep.ok) {
        rc = sxctl_fail(S_VERB, "case %" PRIu64 ": refused: %s (%s%s%s) %s", a->case_id, rep.en,
                        rep.code, rep.field[0] ? ", " : "", rep.field, rep.zh);
        rpc_reply_clear(&rep);
        return rc;
    }
    s_result_t r;
    if (s_read_result(rep.result, rep.result_len, &r, &eerr) < 0) {
        char why[300];
        rpc_reply_clear(&rep);
        return sxctl_fail(S_VERB, "the reply does not read as record.verify's result: %s",
                          evmsg_err_str(&eerr, why, sizeof why));
    }
    if (a->json) {
        size_t len;
        char *text = jsonmp_to_json(rep.result, rep.result_len, "result", &len, NULL);
        if (text) {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
            free(text);
        }
    } else {
        s_print(&r);
    }
    rpc_reply_clear(&rep);
    fflush(stdout);
    return r.ok ? SXCTL_OK : SXCTL_FAIL;
}

static int
s_record(int argc, char **argv)
{
    if (argc < 2)
        return sxctl_usage("record", "expected a subcommand: verify");
    if (strcmp(argv[1], "verify") != 0)
        return sxctl_usage("record", "unknown subcommand '%s' (expected verify)", argv[1]);
    s_args_t a = {.timeout_ms = S_TIMEOUT_MS, .tries = S_TRIES};
    int rc = s_parse_args(argc, argv, &a);
    return rc != SXCTL_OK ? rc : s_verify(&a);
}

const sxctl_verb_t sxctl_verb_record = {
    "record",
    "verify a case's whole-process record (hash chain and archive seal)",
    "usage: sxctl record verify CASE [--endpoint EP] [--key KEYFILE]\n"
    "                               [--server-key Z85|FILE] [--timeout MS] [--tries N]\n"
    "                               [--json]\n"
    "\n"
    "Asks sx-recording (record.verify, over CURVE) to recompute case CASE's record\n"
    "(执法全过程记录): every entry's canonical bytes, the SHA-256 chain to the stored head,\n"
    "and, once the case is closed, the Ed25519 seal of its archive manifest (归档). Prints\n"
    "  case 42: ok, 8 entries, head <hex>\n"
    "  seal: ok (the archive manifest matches the chain)\n"
    "or names the first entry that does not match and what is wrong:\n"
    "  case 42: FAILED: entry 3 does not match\n"
    "  chain: entry 3: stored hash differs from the recomputed one\n"
    "  seal: entry 3 differs from the sealed manifest\n"
    "The request is logged by the service (调阅监督) under this key's identity. Allowed:\n"
    "the case's own agency, the legal office (dept:*:legal_office) and svc: operators.\n"
    "\n"
    "options:\n"
    "  --endpoint EP         sx-recording's door; default $SX_RECORDING_ENDPOINT, else\n"
    "                        " S_ENDPOINT ".\n"
    "  --key KEYFILE         this client's key pair file (sxctl keygen); its public key\n"
    "                        must be in the service's key file. Default: $SX_KEY_FILE.\n"
    "  --server-key Z85|FILE sx-recording's public key. Default: $SX_SERVER_PUBLIC_KEY.\n"
    "  --timeout MS          how long to wait for the answer to each try, default 30000.\n"
    "  --tries N             how many times to ask when no answer comes, default 2.\n"
    "  --json                print record.verify's result as one line of JSON instead.\n"
    "\n"
    "exit status: 0 the record verifies, 1 it does not, or the service refused (e.g.\n"
    "not_found, forbidden: reason on stderr) or did not answer, 2 usage error.\n",
    s_record,
};
