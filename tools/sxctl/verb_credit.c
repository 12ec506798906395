/* sxctl credit: the 双公示 records sx-creditpush pushes to the credit platform, for
 * platforms that ingest files.
 *
 *   usage: sxctl credit export --from DATE --to DATE [--kind penalty|licence]
 *                              [--out FILE] [--endpoint URL] [--key KEYFILE]
 *                              [--server-key Z85|FILE] [--timeout MS]
 *
 * Reads the records through creditpush's request door (op creditpush.export, a page at
 * a time; the service's own checks and filters, no database credentials on the
 * operator's machine) and writes them as CSV: UTF-8 with a BOM, CRLF line ends, the
 * standard's column names (common/sgs_record: sgs_record_columns) as the header. With
 * --out the file appears only once complete (written beside it, then renamed). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "date.h"
#include "jsonmp.h"
#include "keys.h"
#include "rpc.h"
#include "sgs_record.h"
#include "client.h"
#include "sxctl.h"

#define S_ENDPOINT   "tcp://127.0.0.1:7751"
#define S_TIMEOUT_MS 10000
#define S_PAGES_MAX  1000000 /* pages of one export: a bound, far above any real one */
#define S_COLS_MAX   64

typedef struct {
    const char *from, *to, *kind, *out, *endpoint, *key_file, *server_key;
    int timeout_ms;
} s_args_t;

/* The header: kind's columns, or both kinds' (each column once) when kind is NULL. */
static int
s_columns(const char *kind, const char *cols[S_COLS_MAX])
{
    int n = 0;
    const char *kinds[2] = {kind ? kind : "penalty", kind ? NULL : "licence"};
    for (int k = 0; k < 2 && kinds[k]; k++)
        for (const char *const *c = sgs_record_columns(kinds[k]); *c && n < S_COLS_MAX; c++) {
            bool seen = false;
            for (int i = 0; i < n && !seen; i++)
                seen = strcmp(cols[i], *c) == 0;
            if (!seen)
                cols[n++] = *c;
        }
    return n;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, quote, CR, LF or starts or ends
 * with a space; quotes doubled. */
static void
s_field(FILE *f, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0)
        return;
    bool quote = strpbrk(v, ",\"\r\n") || v[0] == ' ' || v[n - 1] == ' ';
    if (!quote) {
        fwrite(v, 1, n, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void
s_row(FILE *f, const char *const *cols, int n, const json_t *data, const char *kind)
{
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        s_field(f, data ? sgs_record_value(data, kind, cols[i]) : cols[i]);
    }
    fputs("\r\n", f);
}

static int
s_date_arg(const char *opt, const char *v, date_t *out)
{
    const char *why = NULL;
    if (date_parse(v, strlen(v), out, &why) < 0)
        return sxctl_usage("credit export", "%s: %s, got '%s'", opt, why, v);
    return SXCTL_OK;
}

static int
s_parse(int argc, char **argv, s_args_t *a)
{
    if (argc < 2 || strcmp(argv[1], "export") != 0)
        return sxctl_usage("credit", "expected 'export'");
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        const char **opt = NULL;
        if (strcmp(arg, "--from") == 0)
            opt = &a->from;
        else if (strcmp(arg, "--to") == 0)
            opt = &a->to;
        else if (strcmp(arg, "--kind") == 0)
            opt = &a->kind;
        else if (strcmp(arg, "--out") == 0)
            opt = &a->out;
        else if (strcmp(arg, "--endpoint") == 0)
            opt = &a->endpoint;
        else if (strcmp(arg, "--key") == 0)
            opt = &a->key_file;
        else if (strcmp(arg, "--server-key") == 0)
            opt = &a->server_key;
        else if (strcmp(arg, "--timeout") == 0) {
            char *end;
            errno = 0;
            long v = ++i < argc ? strtol(argv[i], &end, 10) : 0;
            if (i >= argc || errno || *end || v < 1 || v > 3600000)
                return sxctl_usage("credit export", "--timeout: expected 1..3600000 ms");
            a->timeout_ms = (int)v;
            continue;
        } else
            return sxctl_usage("credit export", "unexpected argument '%s'", arg);
        if (++i == argc)
            return sxctl_usage("credit export", "%s needs a value", arg);
        *opt = argv[i];
    }
    date_t from, to;
    if (!a->from || !a->to)
        return sxctl_usage("credit export", "--from and --to are required (YYYY-MM-DD)");
    if (s_date_arg("--from", a->from, &from) || s_date_arg("--to", a->to, &to))
        return SXCTL_USAGE;
    if (to < from)
        return sxctl_usage("credit export", "--to %s is before --from %s", a->to, a->from);
    if (a->kind && !sgs_record_columns(a->kind))
        return sxctl_usage("credit export", "--kind: expected penalty or licence, got '%s'",
                           a->kind);
    if (!a->endpoint)
        a->endpoint = getenv("SX_CREDITPUSH_ENDPOINT");
    if (!a->endpoint || !*a->endpoint)
        a->endpoint = S_ENDPOINT;
    return sxctl_keys_default("credit export", &a->key_file, &a->server_key, "SX_SERVER_PUBLIC_KEY",
                              "server key");
}

/* One page: the reply's result as JSON (caller json_decref's), or NULL with the reason
 * printed. */
static json_t *
s_page(rpc_client_t *c, const s_args_t *a, long long after, int page)
{
    char body[256], rid[RPC_RID_MAX + 1];
    if (sxctl_fresh_rid("sxctl-export-", 8, rid) < 0) {
        sxctl_fail("credit export", "no randomness for a rid");
        return NULL;
    }
    size_t n = strlen(rid);
    snprintf(rid + n, sizeof rid - n, "-%d", page);
    if (a->kind)
        snprintf(body, sizeof body,
                 "{\"from\":\"%s\",\"to\":\"%s\",\"kind\":\"%s\",\"after_id\":%lld}", a->from,
                 a->to, a->kind, after);
    else
        snprintf(body, sizeof body, "{\"from\":\"%s\",\"to\":\"%s\",\"after_id\":%lld}", a->from,
                 a->to, after);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    jsonmp_err_t jerr = {0};
    rpc_reply_t rep = {0};
    evmsg_err_t eerr = {0};
    json_t *o = NULL;
    if (jsonmp_from_json(body, strlen(body), "body", 2, &sb, &jerr) < 0) {
        sxctl_fail("credit export", "request not encoded");
    } else if (rpc_call(c, "creditpush.export", rid, sb.data, sb.size, a->timeout_ms, 3, &rep,
                        &eerr) != 0) {
        char why[300];
        sxctl_fail("credit export", "%s: no reply: %s", a->endpoint,
                   evmsg_err_str(&eerr, why, sizeof why));
    } else if (!rep.ok) {
        sxctl_fail("credit export", "%s: %s (%s)", rep.field, rep.en, rep.code);
        rpc_reply_clear(&rep);
    } else {
        char *text = jsonmp_to_json(rep.result, rep.result_len, "result", NULL, NULL);
        o = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        rpc_reply_clear(&rep);
        if (!o)
            sxctl_fail("credit export", "the reply is not the expected JSON");
    }
    msgpack_sbuffer_destroy(&sb);
    return o;
}

static int
s_export(const s_args_t *a)
{
    sxctl_keys_t keys;
    int rc = sxctl_keys_read("credit export", a->key_file, a->server_key, "server key", &keys);
    if (rc != SXCTL_OK)
        return rc;

    char tmp[4200] = "";
    FILE *f = stdout;
    if (a->out) {
        snprintf(tmp, sizeof tmp, "%s.part", a->out);
        if (!(f = fopen(tmp, "wb")))
            return sxctl_fail("credit export", "%s: %s", tmp, strerror(errno));
    }
    const char *cols[S_COLS_MAX];
    int ncols = s_columns(a->kind, cols);
    fputs("\xef\xbb\xbf", f); /* the BOM: spreadsheet tools read the file as UTF-8 */
    s_row(f, cols, ncols, NULL, NULL);

    sxctl_client_t c = {0};
    rc = sxctl_client_open("credit export", a->endpoint, &keys, &c);
    long long after = 0, records = 0;
    for (int page = 0; rc == SXCTL_OK && page < S_PAGES_MAX; page++) {
        json_t *o = s_page(c.rpc, a, after, page);
        if (!o) {
            rc = SXCTL_FAIL;
            break;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(o, "items"), i, it)
        {
            const char *kind = json_string_value(json_object_get(it, "kind"));
            s_row(f, cols, ncols, json_object_get(it, "data"), kind);
            records++;
        }
        long long next = (long long)json_integer_value(json_object_get(o, "next_after_id"));
        json_decref(o);
        if (next <= after)
            break; /* 0: the last page */
        after = next;
    }
    sxctl_client_close(&c);
    if (fflush(f) != 0 || ferror(f))
        rc = sxctl_fail("credit export", "%s: write failed", a->out ? tmp : "stdout");
    if (a->out) {
        if (fclose(f) != 0 && rc == SXCTL_OK)
            rc = sxctl_fail("credit export", "%s: write failed", tmp);
        if (rc == SXCTL_OK && rename(tmp, a->out) != 0)
            rc = sxctl_fail("credit export", "%s: %s", a->out, strerror(errno));
        if (rc != SXCTL_OK)
            unlink(tmp);
    }
    if (rc == SXCTL_OK)
        fprintf(stderr, "sxctl credit export: %lld records\n", records);
    return rc;
}

static int
s_credit(int argc, char **argv)
{
    s_args_t a = {.timeout_ms = S_TIMEOUT_MS};
    int rc = s_parse(argc, argv, &a);
    return rc == SXCTL_OK ? s_export(&a) : rc;
}

const sxctl_verb_t sxctl_verb_credit = {
    "credit",
    "export the 双公示 records pushed to the credit platform as CSV",
    "usage: sxctl credit export --from DATE --to DATE [--kind penalty|licence]\n"
    "                           [--out FILE] [--endpoint URL] [--key KEYFILE]\n"
    "                           [--server-key Z85|FILE] [--timeout MS]\n"
    "\n"
    "Writes the penalty (行政处罚) and licence (行政许可) records that sx-creditpush\n"
    "pushes to the credit platform (信用中国), exactly as pushed, as CSV for platforms\n"
    "that ingest files: UTF-8 with a BOM, CRLF line ends, a header of the standard's\n"
    "column names (CF_XDR_MC, ..., CF_WSH, ... for penalties; XK_* for licences; both\n"
    "sets, each column once, without --kind).\n"
    "\n"
    "The records are those whose decision date (CF_JDRQ / XK_JDRQ) is in\n"
    "[--from, --to] (YYYY-MM-DD, both included), oldest first, that were not\n"
    "dead-lettered and not since withdrawn (撤销) or taken down by credit repair\n"
    "(信用修复): what the platform shows. They are read through creditpush's request\n"
    "door (op creditpush.export), so the operator needs its key, not the database.\n"
    "\n"
    "options:\n"
    "  --kind K              penalty or licence only.\n"
    "  --out FILE            write FILE (complete or not at all); default stdout.\n"
    "  --endpoint URL        creditpush's door; default $SX_CREDITPUSH_ENDPOINT or\n"
    "                        " S_ENDPOINT ".\n"
    "  --key KEYFILE         this client's key pair (a svc:sxctl or svc:ops identity in\n"
    "                        creditpush's key file). Default: $SX_KEY_FILE.\n"
    "  --server-key Z85|FILE creditpush's public key. Default: $SX_SERVER_PUBLIC_KEY.\n"
    "  --timeout MS          per page, default 10000 (each page is sent up to 3 times).\n"
    "\n"
    "exit status: 0 written (the count on stderr), 1 no reply or an error reply,\n"
    "2 usage error.\n",
    s_credit,
};
