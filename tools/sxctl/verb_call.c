/* sxctl call: one request to a service's request/reply door (common/rpc), JSON in and out.
 *
 *   usage: sxctl call ENDPOINT OP FILE.json [--rid RID] [--key KEYFILE]
 *                     [--server-key Z85|FILE] [--timeout MS] [--tries N]
 *
 * Reads the body from FILE (- for stdin), converts it with common/jsonmp, sends
 * {op, rid, body} over a CURVE DEALER (rpc_call: the same rid is sent again when no reply
 * comes within MS, at most N times), and prints the reply as one JSON line. The rid is
 * printed on stderr so that a retry can reuse it.
 *
 * exit status: 0 ok reply, 1 error reply or no reply, 2 usage error (arguments, the file,
 * its JSON, keys). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "client.h"
#include "sxctl.h"

#define S_TIMEOUT_MS 5000
#define S_TRIES      3

typedef struct {
    const char *endpoint, *op, *file, *rid, *key_file, *server_key;
    int timeout_ms, tries;
} s_args_t;

/* A positive int from text, at most max; -1 when it is not one. */
static int
s_int_arg(const char *s, int max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    return (int)v;
}

static bool
s_op_ok(const char *op)
{
    size_t n = strlen(op);
    if (n < 1 || n > RPC_OP_MAX || op[0] < 'a' || op[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((op[i] >= 'a' && op[i] <= 'z') || (op[i] >= '0' && op[i] <= '9') || op[i] == '_' ||
              op[i] == '.'))
            return false;
    return true;
}

static bool
s_rid_ok(const char *rid)
{
    size_t n = strlen(rid);
    if (n < 1 || n > RPC_RID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (rid[i] < 0x21 || rid[i] > 0x7e)
            return false;
    return true;
}

/* Reads FILE (or stdin for "-"), at most JSONMP_MAX_BYTES. Returns the text (malloc'ed)
 * and its length, or NULL with the reason in err. */
static char *
s_read_body(const char *path, size_t *len, char *err, size_t errlen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(JSONMP_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, JSONMP_MAX_BYTES + 1, f) : 0;
    bool bad = !buf || ferror(f);
    if (!is_stdin)
        fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", is_stdin ? "stdin" : path,
                 buf ? "cannot read" : "out of memory");
        free(buf);
        return NULL;
    }
    if (n > JSONMP_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", is_stdin ? "stdin" : path,
                 JSONMP_MAX_BYTES);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The reply as msgpack {rid, ok, result} or {rid, ok, error: {code, field, zh, en}},
 * then as JSON, printed on stdout. Returns 0, or -1 (reason on stderr). */
static int
s_print_reply(const rpc_reply_t *rep)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "rid", 3);
    if (rep->rid_nil)
        msgpack_pack_nil(&pk);
    else
        msgpack_pack_str_with_body(&pk, rep->rid, strlen(rep->rid));
    msgpack_pack_str_with_body(&pk, "ok", 2);
    if (rep->ok) {
        msgpack_pack_true(&pk);
        msgpack_pack_str_with_body(&pk, "result", 6);
        if (rep->result_len)
            msgpack_sbuffer_write(&sb, rep->result, rep->result_len);
        else
            msgpack_pack_map(&pk, 0);
    } else {
        msgpack_pack_false(&pk);
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_map(&pk, 4);
        const char *const kv[] = {"code", rep->code, "field", rep->field,
                                  "zh",   rep->zh,   "en",    rep->en};
        for (size_t i = 0; i < 8; i++)
            msgpack_pack_str_with_body(&pk, kv[i], strlen(kv[i]));
    }
    jsonmp_err_t jerr = {0};
    size_t len;
    char *text = jsonmp_to_json(sb.data, sb.size, "reply", &len, &jerr);
    msgpack_sbuffer_destroy(&sb);
    if (!text) {
        char why[300];
        sxctl_fail("call", "the reply cannot be shown as JSON: %s",
                   jsonmp_err_str(&jerr, why, sizeof why));
        return -1;
    }
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(text);
    return 0;
}

static int
s_parse_args(int argc, char **argv, s_args_t *a)
{
    const char *pos[3];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **opt = NULL;
        int *num = NULL, max = 0;
        if (strcmp(arg, "--rid") == 0)
            opt = &a->rid;
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
                return sxctl_usage("call", "%s needs a value", arg);
            if (opt) {
                *opt = argv[i];
            } else if ((*num = s_int_arg(argv[i], max)) < 0) {
                return sxctl_usage("call", "%s: expected a whole number 1..%d, got '%s'", arg, max,
                                   argv[i]);
            }
        } else if (strcmp(arg, "--") == 0) {
            for (i++; i < argc && npos < 3; i++)
                pos[npos++] = argv[i];
            if (i < argc)
                return sxctl_usage("call", "unexpected argument '%s'", argv[i]);
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return sxctl_usage("call", "unknown option '%s'", arg);
        } else if (npos < 3) {
            pos[npos++] = arg;
        } else {
            return sxctl_usage("call", "unexpected argument '%s'", arg);
        }
    }
    if (npos < 3)
        return sxctl_usage("call", "expected ENDPOINT OP FILE.json");
    a->endpoint = pos[0];
    a->op = pos[1];
    a->file = pos[2];
    if (!strstr(a->endpoint, "://"))
        return sxctl_usage("call", "ENDPOINT: expected e.g. tcp://127.0.0.1:7001, got '%s'",
                           a->endpoint);
    if (!s_op_ok(a->op))
        return sxctl_usage("call", "OP: expected [a-z][a-z0-9_.]{0,63}, got '%s'", a->op);
    if (a->rid && !s_rid_ok(a->rid))
        return sxctl_usage("call", "--rid: expected 1-%d printable ASCII characters, no space",
                           RPC_RID_MAX);
    return sxctl_keys_default("call", &a->key_file, &a->server_key, "SX_SERVER_PUBLIC_KEY",
                              "server key");
}

static int
s_call(int argc, char **argv)
{
    s_args_t a = {.timeout_ms = S_TIMEOUT_MS, .tries = S_TRIES};
    int rc = s_parse_args(argc, argv, &a);
    if (rc != SXCTL_OK)
        return rc;

    sxctl_keys_t keys;
    char err[512];
    if ((rc = sxctl_keys_read("call", a.key_file, a.server_key, "server key", &keys)) != SXCTL_OK)
        return rc;

    size_t len;
    char *text = s_read_body(a.file, &len, err, sizeof err);
    if (!text)
        return sxctl_usage("call", "%s", err);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    jsonmp_err_t jerr = {0};
    /* level 2: the body sits inside the request map */
    rc = jsonmp_from_json(text, len, "body", 2, &body, &jerr);
    free(text);
    if (rc < 0) {
        char why[400];
        msgpack_sbuffer_destroy(&body);
        return sxctl_usage("call", "%s: %s", strcmp(a.file, "-") ? a.file : "stdin",
                           jsonmp_err_str(&jerr, why, sizeof why));
    }

    char rid[RPC_RID_MAX + 1];
    if (a.rid) {
        snprintf(rid, sizeof rid, "%s", a.rid);
    } else if (sxctl_fresh_rid("sxctl-", 12, rid) < 0) {
        msgpack_sbuffer_destroy(&body);
        return sxctl_fail("call", "no randomness for a rid: %s", strerror(errno));
    }
    /* The server disconnects a peer whose message is too large: say so before sending. */
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    rc = rpc_request_pack(&req, a.op, rid, body.data, body.size);
    size_t req_size = req.size;
    msgpack_sbuffer_destroy(&req);
    if (rc < 0 || req_size > EVMSG_MAX_BYTES) {
        msgpack_sbuffer_destroy(&body);
        return sxctl_usage("call", "the request is larger than %d bytes as msgpack",
                           EVMSG_MAX_BYTES);
    }
    fprintf(stderr, "sxctl call: rid %s\n", rid);

    sxctl_client_t client;
    if ((rc = sxctl_client_open("call", a.endpoint, &keys, &client)) != SXCTL_OK) {
        msgpack_sbuffer_destroy(&body);
        return rc;
    }
    rpc_reply_t rep;
    evmsg_err_t eerr = {{0}, {0}};
    rc = rpc_call(client.rpc, a.op, rid, body.data, body.size, a.timeout_ms, a.tries, &rep, &eerr);
    msgpack_sbuffer_destroy(&body);
    sxctl_client_close(&client);
    if (rc < 0) {
        char why[300];
        return sxctl_fail("call", "%s %s: %s (the same --rid %s is safe to send again)", a.endpoint,
                          a.op, evmsg_err_str(&eerr, why, sizeof why), rid);
    }
    int shown = s_print_reply(&rep);
    bool ok = rep.ok;
    if (!ok && strcmp(rep.code, "unavailable") == 0)
        sxctl_warn("call", "the service could not commit; send again with --rid %s", rid);
    rpc_reply_clear(&rep);
    return shown == 0 && ok ? SXCTL_OK : SXCTL_FAIL;
}

const sxctl_verb_t sxctl_verb_call = {
    "call",
    "send one request to a service (JSON in, JSON reply out)",
    "usage: sxctl call ENDPOINT OP FILE.json [--rid RID] [--key KEYFILE]\n"
    "                  [--server-key Z85|FILE] [--timeout MS] [--tries N]\n"
    "\n"
    "Sends the request {op, rid, body} to the service at ENDPOINT (e.g.\n"
    "tcp://127.0.0.1:7001) over CURVE and prints its reply as one line of JSON:\n"
    "  {\"rid\":\"...\",\"ok\":true,\"result\":{...}}\n"
    "  {\"rid\":\"...\",\"ok\":false,\"error\":{\"code\":\"...\",\"field\":\"...\",\"zh\":\"...\","
    "\"en\":\"...\"}}\n"
    "OP is the operation, e.g. case.open (schemas/messages/ describes each op and its\n"
    "body). FILE.json holds the body, one JSON object (- reads stdin), at most 64 KiB,\n"
    "nested at most 7 deep (the request adds one level).\n"
    "JSON integers become msgpack integers (int64/uint64), other numbers float64;\n"
    "{\"$bin\": \"<hex>\"} stands for binary data, both ways.\n"
    "\n"
    "options:\n"
    "  --rid RID             the idempotency key (1-64 printable ASCII, no space). Without\n"
    "                        it a fresh random one is made. It is printed on stderr: a\n"
    "                        request sent again with the same rid is answered with the\n"
    "                        stored reply and changes nothing.\n"
    "  --key KEYFILE         this client's key pair file (NAME.key, from `sxctl keygen`);\n"
    "                        its public key must be in the service's key file.\n"
    "                        Default: $SX_KEY_FILE.\n"
    "  --server-key Z85|FILE the service's public key: 40 Z85 characters, or a NAME.pub\n"
    "                        or NAME.key file. Default: $SX_SERVER_PUBLIC_KEY (same forms).\n"
    "  --timeout MS          how long to wait for the reply to each try, default 5000.\n"
    "  --tries N             how many times to send (the same rid) when no reply comes,\n"
    "                        default 3.\n"
    "\n"
    "environment: SX_KEY_FILE, SX_SERVER_PUBLIC_KEY (defaults for --key, --server-key).\n"
    "\n"
    "A key the service does not know is refused without an answer: that shows as no\n"
    "reply. An `unavailable` error means the service could not commit: send the same\n"
    "request again with the same --rid.\n"
    "\n"
    "exit status: 0 ok reply, 1 error reply or no reply (reason on stderr), 2 usage error\n"
    "(arguments, an unreadable file, bad JSON with its line and column, keys).\n",
    s_call,
};
