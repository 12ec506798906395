/* The deployment files stay true to the code:
 *   - docker-compose.yml validates (`docker-compose config -q`, Debian's docker-compose,
 *     installed by deploy/install-deps; no Docker engine needed) and has every service;
 *   - every SX_ variable the code reads (a "SX_..." string literal in common/, services/,
 *     tools/) is listed in .env.example, and every SX_ variable docker-compose.yml and
 *     deploy/systemd set is one the code reads (a typo there would be silently ignored);
 *   - the systemd units pass `systemd-analyze verify` without a warning (skipped when
 *     systemd-analyze is missing), with ExecStart pointed at this tree's binaries;
 *   - deploy/nginx/portal.conf passes `nginx -t` (the replicas' names mapped to
 *     127.0.0.1; skipped without nginx);
 *   - every file deploy/docker/Dockerfile copies from the tree exists. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tsupport.h"

#define MAX_NAMES 256
#define NAME_MAX_ 64
#define FILE_MAX  (1024 * 1024)
#define OUT_SIZE  65536

typedef struct {
    char names[MAX_NAMES][NAME_MAX_];
    int n;
} s_names_t;

static void
s_add(s_names_t *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0)
            return;
    assert_true(set->n < MAX_NAMES);
    snprintf(set->names[set->n++], NAME_MAX_, "%s", name);
}

static bool
s_has(const s_names_t *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0)
            return true;
    return false;
}

/* The whole file (malloc'ed, NUL-terminated), or NULL when it cannot be read. */
static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(FILE_MAX + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, FILE_MAX, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static bool
s_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Adds every SX_NAME in text that starts right after one of the characters in before
 * and ends right before one of the characters in after. */
static void
s_scan(const char *text, const char *before, const char *after, s_names_t *set)
{
    for (const char *p = text; (p = strstr(p, "SX_")); p += 3) {
        if (p == text || !strchr(before, p[-1]))
            continue;
        size_t len = 3;
        while (s_name_char(p[len]))
            len++;
        if (len == 3 || len >= NAME_MAX_ || !p[len] || !strchr(after, p[len]))
            continue;
        char name[NAME_MAX_];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        s_add(set, name);
    }
}

/* The SX_ names read by the C sources under dir/<sub>/ (one level of folders below dir,
 * or dir itself when flat): "SX_NAME" string literals. */
static void
s_scan_sources(const char *dir, bool nested, s_names_t *set)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("%s: cannot open", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && nested) {
            s_scan_sources(path, false, set);
        } else if (S_ISREG(st.st_mode)) {
            size_t n = strlen(e->d_name);
            if (n > 2 && strcmp(e->d_name + n - 2, ".c") == 0) {
                char *text = s_slurp(path);
                assert_non_null(text);
                s_scan(text, "\"", "\"", set);
                free(text);
            }
        }
    }
    closedir(d);
}

/* Every SX_ name the code reads. */
static void
s_code_names(s_names_t *set)
{
    const char *top = ts_env("SX_TOP");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/common", top);
    s_scan_sources(dir, false, set);
    snprintf(dir, sizeof dir, "%s/services", top);
    s_scan_sources(dir, true, set);
    snprintf(dir, sizeof dir, "%s/tools", top);
    s_scan_sources(dir, true, set);
    /* A sanity floor: the scan found the settings every service has. */
    assert_true(s_has(set, "SX_PG_URL") && s_has(set, "SX_KEYS_FILE") && s_has(set, "SX_OPS_PORT"));
}

static char *
s_top_file(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ts_env("SX_TOP"), rel);
    char *text = s_slurp(path);
    if (!text)
        fail_msg("%s: cannot read", path);
    return text;
}

static bool
s_have(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char out[64], err[64];
    return ts_run(argv, NULL, out, sizeof out, err, sizeof err) == 0;
}

static void
test_compose_config_validates(void **state)
{
    (void)state;
    if (!s_have("docker-compose"))
        fail_msg("docker-compose not installed (deploy/install-deps installs it)");
    char file[1024];
    snprintf(file, sizeof file, "%s/docker-compose.yml", ts_env("SX_TOP"));
    static char out[OUT_SIZE], err[OUT_SIZE];
    const char *check[] = {"docker-compose", "-f", file, "config", "-q", NULL};
    int rc = ts_run(check, NULL, out, sizeof out, err, sizeof err);
    if (rc != 0 || err[0])
        fail_msg("docker-compose config -q: exit %d\n%s%s", rc, out, err);
    const char *list[] = {"docker-compose", "-f", file, "config", "--services", NULL};
    assert_int_equal(ts_run(list, NULL, out, sizeof out, err, sizeof err), 0);
    static const char *const want[] = {"postgres",      "redis",
                                       "keys",          "broker",
                                       "intake",        "recording",
                                       "review",        "publication-0",
                                       "publication-1", "publication-2",
                                       "portal",        "creditpush",
                                       "fake-credit",   NULL};
    for (int i = 0; want[i]; i++) {
        char line[80];
        snprintf(line, sizeof line, "\n%s\n", want[i]);
        char padded[OUT_SIZE + 2];
        snprintf(padded, sizeof padded, "\n%s", out);
        if (!strstr(padded, line))
            fail_msg("docker-compose.yml has no service %s:\n%s", want[i], out);
    }
}

static void
test_env_example_lists_every_setting(void **state)
{
    (void)state;
    static s_names_t code, listed;
    memset(&code, 0, sizeof code);
    memset(&listed, 0, sizeof listed);
    s_code_names(&code);
    char *env = s_top_file(".env.example");
    s_scan(env, "\n# ", "=", &listed);
    free(env);
    char missing[4096] = "";
    for (int i = 0; i < code.n; i++)
        if (!s_has(&listed, code.names[i]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s",
                     code.names[i]);
    if (missing[0])
        fail_msg(".env.example does not list (as NAME=default):%s", missing);
}

static void
test_deploy_files_set_only_settings_the_code_reads(void **state)
{
    (void)state;
    static s_names_t code, set;
    memset(&code, 0, sizeof code);
    s_code_names(&code);
    static const char *const files[][3] = {
        /* file, the character before a name, the one after */
        {"docker-compose.yml", " ", ":"},
        {"deploy/systemd/sanxiang.env", "\n", "="},
        {"deploy/systemd/sx-broker.service", "= ", "="},
        {"deploy/systemd/sx-intake.service", "= ", "="},
        {"deploy/systemd/sx-recording.service", "= ", "="},
        {"deploy/systemd/sx-review.service", "= ", "="},
        {"deploy/systemd/sx-publication@.service", "= ", "="},
        {"deploy/systemd/sx-creditpush.service", "= ", "="},
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        memset(&set, 0, sizeof set);
        char *text = s_top_file(files[f][0]);
        s_scan(text, files[f][1], files[f][2], &set);
        free(text);
        assert_true(set.n > 0);
        for (int i = 0; i < set.n; i++)
            if (!s_has(&code, set.names[i]))
                fail_msg("%s sets %s, which no service reads", files[f][0], set.names[i]);
    }
}

static void
test_systemd_units_verify(void **state)
{
    (void)state;
    if (!s_have("systemd-analyze"))
        skip();
    /* The units as installed, with ExecStart pointed at this tree (verify checks that
     * the programs exist), in a temp dir. */
    char *dir = ts_mkdtemp("systemd");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; cp '%1$s'/deploy/systemd/*.service '%1$s'/deploy/systemd/*.target '%2$s'/; "
             "sed -i 's#/usr/local/libexec/sanxiang/#%1$s/deploy/docker/#; "
             "s#/usr/local/bin/#%3$s/#' '%2$s'/*.service; cd '%2$s'; "
             "cp sx-publication@.service sx-publication@1.service; "
             "systemd-analyze verify ./sx-keys.service ./sx-broker.service ./sx-intake.service "
             "./sx-recording.service ./sx-review.service ./sx-creditpush.service "
             "./sx-publication@1.service ./sanxiang.target 2>&1",
             ts_env("SX_TOP"), dir, ts_env("SX_BIN"));
    const char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    static char out[OUT_SIZE], err[OUT_SIZE];
    int rc = ts_run(argv, NULL, out, sizeof out, err, sizeof err);
    /* verify exits 0 on warnings (an unknown key, a bad value): any output is a fault. */
    if (rc != 0 || out[0] || err[0])
        fail_msg("systemd-analyze verify: exit %d\n%s%s", rc, out, err);
    free(dir);
}

static void
test_nginx_portal_conf_parses(void **state)
{
    (void)state;
    if (!s_have("nginx"))
        skip();
    char *dir = ts_mkdtemp("nginx");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; sed 's/publication-[0-9]*:/127.0.0.1:/' '%1$s/deploy/nginx/portal.conf' "
             ">'%2$s/portal.conf'; printf 'pid %2$s/nginx.pid;\\nerror_log %2$s/error.log;\\n"
             "events {}\\nhttp {\\n include %2$s/portal.conf;\\n}\\n' >'%2$s/nginx.conf'; "
             "nginx -q -t -p '%2$s' -c '%2$s/nginx.conf' 2>&1",
             ts_env("SX_TOP"), dir);
    const char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    static char out[OUT_SIZE], err[OUT_SIZE];
    int rc = ts_run(argv, NULL, out, sizeof out, err, sizeof err);
    if (rc != 0 || out[0] || err[0])
        fail_msg("nginx -t on deploy/nginx/portal.conf: exit %d\n%s%s", rc, out, err);
    free(dir);
}

static void
test_dockerfile_copies_files_that_exist(void **state)
{
    (void)state;
    char *text = s_top_file("deploy/docker/Dockerfile");
    int copies = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(text, "\n", &save_line); line;
         line = strtok_r(NULL, "\n", &save_line)) {
        if (strncmp(line, "COPY ", 5) != 0 || strstr(line, "--from="))
            continue;
        /* COPY src... dest: every word but the last is a path in the tree. */
        char *words[16], *save = NULL;
        int n = 0;
        for (char *w = strtok_r(line + 5, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
            words[n++] = w;
        assert_true(n >= 2);
        for (int i = 0; i < n - 1; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", ts_env("SX_TOP"), words[i]);
            if (access(path, R_OK) != 0)
                fail_msg("deploy/docker/Dockerfile copies %s, which is not in the tree", words[i]);
            copies++;
        }
    }
    free(text);
    assert_true(copies >= 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_config_validates),
        cmocka_unit_test(test_env_example_lists_every_setting),
        cmocka_unit_test(test_deploy_files_set_only_settings_the_code_reads),
        cmocka_unit_test(test_systemd_units_verify),
        cmocka_unit_test(test_nginx_portal_conf_parses),
        cmocka_unit_test(test_dockerfile_copies_files_that_exist),
    };
    return cmocka_run_group_tests_name("deploy_files", tests, NULL, NULL);
}
