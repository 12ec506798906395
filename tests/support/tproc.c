#include "tproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "keys.h"
#include "tsupport.h"

int64_t
tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
tp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int
tp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("no free port: %s", strerror(errno));
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

pid_t
tp_spawn(const char *bin, const char *const args[], const char *log, const char *const env[])
{
    char path[1024], logfile[1024];
    snprintf(path, sizeof path, "%s/%s", ts_env("SX_BIN"), bin);
    snprintf(logfile, sizeof logfile, "%s/%s.log", ts_env("SX_TMP"), log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        const char *argv[32] = {path};
        for (size_t i = 0; args && args[i] && i + 2 < 32; i++)
            argv[i + 1] = args[i];
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int
tp_stop(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int status = 0;
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_sleep_ms(20))
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

bool
tp_log_has(const char *log, const char *text, const char *text2)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.log", ts_env("SX_TMP"), log);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) && (!text2 || strstr(line, text2));
    fclose(f);
    return found;
}

void
tp_wait_log(const char *log, const char *text, int timeout_ms)
{
    for (int64_t end = tp_now_ms() + timeout_ms; tp_now_ms() < end; tp_sleep_ms(50))
        if (tp_log_has(log, text, NULL))
            return;
    fail_msg("%s.log never said \"%s\" (in %s)", log, text, ts_env("SX_TMP"));
}

int
tp_http_get(int port, const char *path, char *buf, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    char resp[65536];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof resp && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/%*s %d", &status) != 1)
        return 0;
    const char *body = strstr(resp, "\r\n\r\n");
    if (buf && size) {
        snprintf(buf, size, "%s", body ? body + 4 : "");
    }
    return status;
}

void
tp_world_init(tp_world_t *w, const char *pg_url, const char *const ids[][2])
{
    memset(w, 0, sizeof *w);
    char *dir = ts_mkdtemp("keys");
    snprintf(w->keydir, sizeof w->keydir, "%s", dir);
    free(dir);
    snprintf(w->pg_url, sizeof w->pg_url, "%s", pg_url ? pg_url : "");
    char err[256], pub[41];
    if (keys_write_pair(w->keydir, "broker", w->broker_pub, err, sizeof err) != 0)
        fail_msg("broker key pair: %s", err);
    snprintf(w->keys, sizeof w->keys, "%s/keys", w->keydir);
    FILE *f = fopen(w->keys, "w");
    assert_non_null(f);
    fputs("# test keys\n", f);
    for (size_t i = 0; ids && ids[i][0]; i++) {
        if (keys_write_pair(w->keydir, ids[i][0], pub, err, sizeof err) != 0)
            fail_msg("key pair %s: %s", ids[i][0], err);
        fprintf(f, "%s %s\n", pub, ids[i][1]);
    }
    fclose(f);
    snprintf(w->pub_ep, sizeof w->pub_ep, "tcp://127.0.0.1:%d", tp_free_port());
    snprintf(w->sub_ep, sizeof w->sub_ep, "tcp://127.0.0.1:%d", tp_free_port());
}

void
tp_world_pair(const tp_world_t *w, const char *name, char *pub, char *sec)
{
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/%s.key", w->keydir, name);
    if (keys_read_pair(path, pub, sec, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

pid_t
tp_world_broker(const tp_world_t *w, const char *log)
{
    char pub[96], sub[96], keyfile[700], keys[700];
    snprintf(pub, sizeof pub, "SX_BROKER_PUB_BIND=%s", w->pub_ep);
    snprintf(sub, sizeof sub, "SX_BROKER_SUB_BIND=%s", w->sub_ep);
    snprintf(keyfile, sizeof keyfile, "SX_BROKER_KEY_FILE=%s/broker.key", w->keydir);
    snprintf(keys, sizeof keys, "SX_KEYS_FILE=%s", w->keys);
    const char *env[] = {pub, sub, keyfile, keys, "SX_OPS_PORT=0", NULL};
    return tp_spawn("sx-broker", NULL, log, env);
}

pid_t
tp_world_spawn(const tp_world_t *w, const char *bin, const char *const args[], const char *key,
               const char *log, const char *const env[])
{
    char pg[700], keyfile[700], keys[700], pub[96], sub[96], server[96], schemas[700];
    snprintf(pg, sizeof pg, "SX_PG_URL=%s", w->pg_url);
    snprintf(keyfile, sizeof keyfile, "SX_KEY_FILE=%s/%s.key", w->keydir, key);
    snprintf(keys, sizeof keys, "SX_KEYS_FILE=%s", w->keys);
    snprintf(pub, sizeof pub, "SX_BROKER_PUB=%s", w->pub_ep);
    snprintf(sub, sizeof sub, "SX_BROKER_SUB=%s", w->sub_ep);
    snprintf(server, sizeof server, "SX_BROKER_PUBLIC_KEY=%s", w->broker_pub);
    snprintf(schemas, sizeof schemas, "SX_SCHEMAS=%s/schemas", ts_env("SX_TOP"));
    const char *all[48] = {pg, keyfile, keys, pub, sub, server, schemas, "SX_OPS_PORT=0"};
    size_t n = 8;
    for (size_t i = 0; env && env[i] && n + 1 < 48; i++)
        all[n++] = env[i];
    all[n] = NULL;
    return tp_spawn(bin, args, log, all);
}
