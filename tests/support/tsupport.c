#include "tsupport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

const char *
ts_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run the tests under tests/harness/with-servers (make test)", name);
    return v;
}

char *
ts_fresh_db(const char *prefix)
{
    static int counter;
    const char *url = ts_env("SX_PG_URL");
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(c));

    char name[64];
    snprintf(name, sizeof name, "t_%s_%d_%d", prefix, (int)getpid(), ++counter);
    char *ident = PQescapeIdentifier(c, name, strlen(name));
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", ident);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("CREATE DATABASE %s: %s", name, PQerrorMessage(c));
    PQclear(r);
    PQfreemem(ident);
    PQfinish(c);

    char *out = malloc(strlen(url) + sizeof name + 32);
    assert_non_null(out);
    /* The harness's URL is postgresql://user@[host:port]/db[?host=dir&port=n]: swap the
     * database name, the path after the authority, and keep the parameters. */
    const char *auth = strstr(url, "://");
    assert_non_null(auth);
    const char *slash = strchr(auth + 3, '/');
    assert_non_null(slash);
    const char *rest = slash + strcspn(slash, "?");
    sprintf(out, "%.*s/%s%s", (int)(slash - url), url, name, rest);
    return out;
}

/* Reads what fd has into buf (kept NUL-terminated, extra bytes dropped); returns what
 * read(2) returned, so 0 means the writer closed its end. */
static ssize_t
s_drain(int fd, char *buf, size_t size, size_t *len)
{
    char scratch[4096];
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n <= 0 || size == 0)
        return n;
    size_t room = size > *len + 1 ? size - *len - 1 : 0;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, scratch, take);
    *len += take;
    buf[*len] = '\0';
    return n;
}

int
ts_run(const char *const argv[], const char *input, char *out, size_t out_size, char *err,
       size_t err_size)
{
    int pin[2], pout[2], perr[2];
    /* O_CLOEXEC: a child forked at the same time by another thread (tests run commands
     * concurrently) must not inherit these ends, or this reader never sees EOF. */
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (input)
        (void)!write(pin[1], input, strlen(input));
    close(pin[1]);

    size_t olen = 0, elen = 0;
    if (out_size)
        out[0] = '\0';
    if (err_size)
        err[0] = '\0';
    struct pollfd fds[2] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, 30000) <= 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = i == 0 ? s_drain(fds[i].fd, out, out_size, &olen)
                               : s_drain(fds[i].fd, err, err_size, &elen);
            if (n <= 0 && !(n < 0 && errno == EINTR)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

char *
ts_write_tmp(const char *name, const char *text)
{
    const char *tmp = ts_env("SX_TMP");
    char *path = malloc(strlen(tmp) + strlen(name) + 2);
    assert_non_null(path);
    sprintf(path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    return path;
}

char *
ts_mkdtemp(const char *prefix)
{
    const char *tmp = ts_env("SX_TMP");
    char *path = malloc(strlen(tmp) + strlen(prefix) + 16);
    assert_non_null(path);
    sprintf(path, "%s/%s.XXXXXX", tmp, prefix);
    if (!mkdtemp(path))
        fail_msg("mkdtemp %s: %s", path, strerror(errno));
    return path;
}

void
ts_sql(db_t *db, const char *sql)
{
    PGresult *r = db_query(db, sql, 0, NULL);
    if (!r)
        fail_msg("%s: %s", sql, db_error(db));
    PQclear(r);
}
