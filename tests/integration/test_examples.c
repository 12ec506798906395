/* deploy/examples/, sent as a department would send them: the real sx-broker and
 * sx-intake as processes with real CURVE keys, and every example file, in order, through
 * the real `sxctl call` binary with the key of the identity the README names (the legal
 * office registers the agency; the agency's own system sends everything else). Each must
 * be answered ok. One write is then sent again with the same --rid: the stored reply,
 * byte for byte, and nothing new (a fresh rid is refused case_exists). The README must
 * name every file. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "keys.h"
#include "tproc.h"
#include "tsupport.h"

#define AGENCY       "11620200013926143G" /* 嘉峪关市市场监督管理局, as in the examples */
#define LEGAL_OFFICE "116202000139261871" /* 嘉峪关市司法局 */
#define MAX_FILES    64
#define OUT_SIZE     65536

typedef struct {
    char *url;
    tp_world_t w; /* keys, the key file, the broker's endpoints */
    char intake_pub_file[600], legal_key[600], system_key[600];
    char rpc_ep[64];
    int ops_port;
    pid_t broker, intake;
    char dir[600]; /* deploy/examples */
    char *files[MAX_FILES];
    int nfiles;
    char *open_out; /* the reply to the first case.open, for the idempotency test */
    char open_rid[64], open_file[700];
} fx_t;

static fx_t *s_fx;

static pid_t
s_start_intake(fx_t *fx)
{
    char bind[96], ops[32];
    snprintf(bind, sizeof bind, "SX_INTAKE_BIND=%s", fx->rpc_ep);
    snprintf(ops, sizeof ops, "SX_OPS_PORT=%d", fx->ops_port);
    const char *env[] = {bind, ops, NULL};
    return tp_world_spawn(&fx->w, "sx-intake", NULL, "intake", "examples-intake", env);
}

/* True when something listens on 127.0.0.1:port (intake's ops port: it is up). */
static bool
s_listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Key pairs as an operator makes them (sxctl keygen writes the same files), and the key
 * file that maps public keys to identities. */
static void
s_write_keys(fx_t *fx)
{
    static const char *const ids[][2] = {{"intake", "svc:intake"},
                                         {"legal", "dept:" LEGAL_OFFICE ":legal_office"},
                                         {"system", "dept:" AGENCY ":system"},
                                         {NULL, NULL}};
    tp_world_init(&fx->w, fx->url, ids);
    snprintf(fx->intake_pub_file, sizeof fx->intake_pub_file, "%s/intake.pub", fx->w.keydir);
    snprintf(fx->legal_key, sizeof fx->legal_key, "%s/legal.key", fx->w.keydir);
    snprintf(fx->system_key, sizeof fx->system_key, "%s/system.key", fx->w.keydir);
}

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The example files NN-<op>.json, in name order. */
static void
s_list_files(fx_t *fx)
{
    snprintf(fx->dir, sizeof fx->dir, "%s/deploy/examples", ts_env("SX_TOP"));
    DIR *d = opendir(fx->dir);
    if (!d)
        fail_msg("%s: cannot open", fx->dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 8 && strcmp(e->d_name + n - 5, ".json") == 0) {
            assert_true(fx->nfiles < MAX_FILES);
            fx->files[fx->nfiles++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(fx->files, (size_t)fx->nfiles, sizeof fx->files[0], s_cmp);
}

/* The op of "NN-<op>.json". */
static void
s_op_of(const char *file, char *op, size_t size)
{
    const char *dash = strchr(file, '-');
    assert_non_null(dash);
    snprintf(op, size, "%.*s", (int)(strlen(dash + 1) - 5), dash + 1);
}

/* sxctl call, as in the README; returns the exit status, the reply in out. */
static int
s_sxctl_call(fx_t *fx, const char *op, const char *path, const char *rid, const char *key,
             char *out, char *err)
{
    char bin[600];
    snprintf(bin, sizeof bin, "%s/sxctl", ts_env("SX_BIN"));
    const char *argv[] = {
        bin, "call",         fx->rpc_ep,          op,          path,   "--rid", rid, "--key",
        key, "--server-key", fx->intake_pub_file, "--timeout", "5000", NULL};
    return ts_run(argv, NULL, out, OUT_SIZE, err, 8192);
}

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    s_fx = fx;
    fx->url = ts_fresh_db("examples");
    s_write_keys(fx);
    s_list_files(fx);
    snprintf(fx->rpc_ep, sizeof fx->rpc_ep, "tcp://127.0.0.1:%d", tp_free_port());
    fx->ops_port = tp_free_port();
    fx->broker = tp_world_broker(&fx->w, "examples-broker");
    fx->intake = s_start_intake(fx);
    int64_t end = tp_now_ms() + 20000;
    while (!s_listening(fx->ops_port) && tp_now_ms() < end)
        tp_sleep_ms(100);
    assert_true(tp_now_ms() < end);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state ? *state : s_fx;
    if (!fx)
        return 0;
    tp_stop(fx->intake, SIGTERM, 10000);
    tp_stop(fx->broker, SIGTERM, 10000);
    for (int i = 0; i < fx->nfiles; i++)
        free(fx->files[i]);
    free(fx->open_out);
    free(fx->url);
    free(fx);
    s_fx = NULL;
    return 0;
}

/* ---- Tests ------------------------------------------------------------------------ */

static void
test_every_file_is_accepted_in_order(void **state)
{
    fx_t *fx = *state;
    /* Every op of intake has an example (schemas/messages/intake/). */
    static const char *const ops[] = {"registry.agency.put",
                                      "registry.officer.put",
                                      "registry.matter.put",
                                      "registry.inspection_item.put",
                                      "registry.av_matter.put",
                                      "registry.review_rule.put",
                                      "registry.discretion.put",
                                      "registry.get",
                                      "case.open",
                                      "case.record",
                                      "case.propose",
                                      "case.decide",
                                      "case.serve",
                                      "case.execute",
                                      "case.close",
                                      "case.revoke",
                                      "inspection.result",
                                      "case.get",
                                      "events.since"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        bool found = false;
        for (int j = 0; j < fx->nfiles && !found; j++) {
            char op[128];
            s_op_of(fx->files[j], op, sizeof op);
            found = strcmp(op, ops[i]) == 0;
        }
        if (!found)
            fail_msg("no example for %s in %s", ops[i], fx->dir);
    }

    char *out = malloc(OUT_SIZE), err[8192];
    for (int i = 0; i < fx->nfiles; i++) {
        char op[128], path[700], rid[64];
        s_op_of(fx->files[i], op, sizeof op);
        snprintf(path, sizeof path, "%s/%s", fx->dir, fx->files[i]);
        snprintf(rid, sizeof rid, "example-%.2s", fx->files[i]);
        /* The README: the legal office registers the agency, the agency's system does
         * everything else. */
        const char *key = strcmp(op, "registry.agency.put") == 0 ? fx->legal_key : fx->system_key;
        int rc = s_sxctl_call(fx, op, path, rid, key, out, err);
        if (rc != 0 || !strstr(out, "\"ok\":true"))
            fail_msg("%s: exit %d\nstdout: %s\nstderr: %s", fx->files[i], rc, out, err);
        /* What the README promises about some of them. */
        if (strcmp(op, "case.propose") == 0 && !strstr(out, "\"requires_review\":false"))
            fail_msg("%s: expected no legal review: %s", fx->files[i], out);
        if (strcmp(op, "case.get") == 0 && !strstr(out, "\"state\":\"closed\""))
            fail_msg("%s: expected the case closed: %s", fx->files[i], out);
        if (strcmp(op, "case.open") == 0 && !fx->open_out) {
            fx->open_out = strdup(out);
            snprintf(fx->open_rid, sizeof fx->open_rid, "%s", rid);
            snprintf(fx->open_file, sizeof fx->open_file, "%s", path);
        }
    }
    free(out);
    assert_non_null(fx->open_out);
}

static void
test_same_rid_gets_the_stored_reply(void **state)
{
    fx_t *fx = *state;
    assert_non_null(fx->open_out);
    char *out = malloc(OUT_SIZE), err[8192];
    int rc = s_sxctl_call(fx, "case.open", fx->open_file, fx->open_rid, fx->system_key, out, err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, fx->open_out);
    /* The first did open the case: the same body under a new rid is refused. */
    rc = s_sxctl_call(fx, "case.open", fx->open_file, "example-again", fx->system_key, out, err);
    assert_int_equal(rc, 1);
    if (!strstr(out, "\"code\":\"case_exists\""))
        fail_msg("expected case_exists: %s", out);
    free(out);
}

static void
test_readme_names_every_file(void **state)
{
    fx_t *fx = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/README.md", fx->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot open", path);
    static char text[256 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (int i = 0; i < fx->nfiles; i++)
        if (!strstr(text, fx->files[i]))
            fail_msg("README.md does not name %s", fx->files[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_file_is_accepted_in_order),
        cmocka_unit_test(test_same_rid_gets_the_stored_reply),
        cmocka_unit_test(test_readme_names_every_file),
    };
    return cmocka_run_group_tests_name("examples", tests, s_setup, s_teardown);
}
