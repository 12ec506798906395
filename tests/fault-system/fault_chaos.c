#include "fault_chaos.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define S_MAX_EVENTS 4096
#define S_NTARGET    7

/* What can be killed, in the order of the seeded shuffle's input. */
static const char *const s_targets[S_NTARGET] = {"broker",      "intake",     "recording", "review",
                                                 "publication", "creditpush", "redis"};
/* The world's processes the supervisor watches. */
static const char *const s_world[] = {"broker", "fake-credit", "intake",    "recording",
                                      "review", "publication", "creditpush"};
#define S_NWORLD ((int)(sizeof s_world / sizeof s_world[0]))

typedef struct {
    int64_t t_ms; /* since the monkey was made */
    char what[200];
} s_event_t;

struct fault_chaos {
    story_world_t *w;    /* the world (not owned) */
    uint64_t rng;        /* splitmix64 state */
    char tmp[512];       /* SX_TMP: pg/, redis.log */
    char redis_host[64]; /* the suite's Redis (run started it) */
    int redis_port;
    pid_t redis_pid;  /* the running redis-server */
    bool redis_mine;  /* started by us (a child: waitpid) */
    char pg_url[600]; /* to see PostgreSQL answer */
    pid_t pg_pid;     /* the postmaster we started, 0 while run's first one runs */
    int64_t t0;       /* story_now_ms at creation */
    pthread_t thread;
    bool running;        /* the thread was started and not joined */
    atomic_bool stop;    /* asks the thread to end */
    atomic_bool pg_want; /* restart PostgreSQL at the next step */
    bool pg_done;
    int min_gap, max_gap, max_down;
    int kills[S_NTARGET + 1]; /* per target, then postgres */
    pthread_mutex_t lock;     /* guards events */
    s_event_t *events;
    int nevents;
};

uint64_t
fault_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
s_event(fault_chaos_t *self, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int64_t t = story_now_ms() - self->t0;
    pthread_mutex_lock(&self->lock);
    if (self->nevents < S_MAX_EVENTS) {
        self->events[self->nevents].t_ms = t;
        snprintf(self->events[self->nevents].what, sizeof self->events[0].what, "%s", what);
        self->nevents++;
    }
    pthread_mutex_unlock(&self->lock);
    fprintf(stderr, "fault: %7.2fs %s\n", (double)t / 1000.0, what);
}

/* ---- Redis ------------------------------------------------------------------------------ */

/* A connection to the suite's Redis within 200 ms, or NULL. */
static redisContext *
s_redis_connect(fault_chaos_t *self)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout(self->redis_host, self->redis_port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

static bool
s_redis_up(fault_chaos_t *self)
{
    redisContext *c = s_redis_connect(self);
    if (!c)
        return false;
    redisReply *r = redisCommand(c, "PING");
    bool up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return up;
}

/* The running server's pid from INFO server, or 0. */
static pid_t
s_redis_find_pid(fault_chaos_t *self)
{
    redisContext *c = s_redis_connect(self);
    if (!c)
        return 0;
    redisReply *r = redisCommand(c, "INFO server");
    pid_t pid = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "process_id:");
        if (p)
            pid = (pid_t)atoi(p + strlen("process_id:"));
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return pid;
}

/* Starts redis-server with the arguments run gave it, on the same port; waits (10 s) until
 * it answers. Returns 0 or -1. */
static int
s_redis_start(fault_chaos_t *self)
{
    char port[16], log[600];
    snprintf(port, sizeof port, "%d", self->redis_port);
    snprintf(log, sizeof log, "%s/redis.log", self->tmp);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
               self->tmp, "--daemonize", "no", "--logfile", log, "--save", "", "--appendonly", "no",
               (char *)NULL);
        _exit(127);
    }
    self->redis_pid = pid;
    self->redis_mine = true;
    for (int64_t end = story_now_ms() + 10000; story_now_ms() < end; story_sleep_ms(20)) {
        if (s_redis_up(self))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            self->redis_pid = 0;
            return -1;
        }
    }
    return -1;
}

/* SIGKILL to Redis; waits (5 s) until its port is closed. */
static void
s_redis_kill(fault_chaos_t *self)
{
    if (self->redis_pid <= 0)
        return;
    kill(self->redis_pid, SIGKILL);
    if (self->redis_mine)
        waitpid(self->redis_pid, NULL, 0);
    for (int64_t end = story_now_ms() + 5000; story_now_ms() < end && s_redis_up(self);)
        story_sleep_ms(10);
    self->redis_pid = 0;
}

/* ---- PostgreSQL ------------------------------------------------------------------------- */

static pid_t
s_pg_pidfile(const fault_chaos_t *self)
{
    char path[600];
    snprintf(path, sizeof path, "%s/pg/postmaster.pid", self->tmp);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* The postmaster's command line from postmaster.opts ("bin" "-D" "dir" ...): fills argv
 * (strings in buf) and returns argc, or -1. */
static int
s_pg_opts(const fault_chaos_t *self, char *buf, size_t size, char *argv[], int max)
{
    char path[600];
    snprintf(path, sizeof path, "%s/pg/postmaster.opts", self->tmp);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    int argc = 0;
    char *p = buf;
    while (*p && argc + 1 < max) {
        while (*p == ' ' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *start, *end;
        if (*p == '"') {
            start = ++p;
            end = strchr(p, '"');
        } else {
            start = p;
            end = p + strcspn(p, " \n");
        }
        if (!end)
            return -1;
        p = *end ? end + 1 : end;
        *end = '\0';
        argv[argc++] = start;
    }
    argv[argc] = NULL;
    return argc > 1 ? argc : -1;
}

static bool
s_pg_up(const fault_chaos_t *self)
{
    return PQping(self->pg_url) == PQPING_OK;
}

/* Stops the postmaster (SIGINT: fast shutdown), leaves it down for down_ms and starts it
 * again with the same command line, as the data dir's owner. Returns 0 or -1 (why in the
 * timeline). */
static int
s_pg_restart(fault_chaos_t *self, int down_ms)
{
    pid_t old = self->pg_pid ? self->pg_pid : s_pg_pidfile(self);
    char buf[4096], *argv[64];
    if (old <= 0 || s_pg_opts(self, buf, sizeof buf, argv, 64) < 0) {
        s_event(self, "postgres: no postmaster.pid / postmaster.opts under %s/pg", self->tmp);
        return -1;
    }
    s_event(self, "postgres pid %d: SIGINT (fast shutdown, down %d ms)", (int)old, down_ms);
    self->kills[S_NTARGET]++;
    kill(old, SIGINT);
    char pidpath[600];
    snprintf(pidpath, sizeof pidpath, "%s/pg/postmaster.pid", self->tmp);
    struct stat st;
    for (int64_t end = story_now_ms() + 60000; story_now_ms() < end && stat(pidpath, &st) == 0;)
        story_sleep_ms(20);
    if (self->pg_pid)
        waitpid(self->pg_pid, NULL, 0);
    self->pg_pid = 0;
    if (stat(pidpath, &st) == 0) {
        s_event(self, "postgres: still running 60 s after SIGINT");
        return -1;
    }
    story_sleep_ms(down_ms);
    char datadir[600], log[600];
    snprintf(datadir, sizeof datadir, "%s/pg", self->tmp);
    snprintf(log, sizeof log, "%s/pg.log", self->tmp);
    if (stat(datadir, &st) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* PostgreSQL refuses root: run as the data directory's owner, like the harness. */
        if (geteuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    self->pg_pid = pid;
    for (int64_t end = story_now_ms() + 60000; story_now_ms() < end; story_sleep_ms(50)) {
        if (s_pg_up(self)) {
            s_event(self, "postgres started again: pid %d", (int)pid);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            self->pg_pid = 0;
            s_event(self, "postgres exited at start: see %s", log);
            return -1;
        }
    }
    s_event(self, "postgres did not answer 60 s after its start");
    return -1;
}

/* ---- The monkey ------------------------------------------------------------------------- */

fault_chaos_t *
fault_chaos_new(story_world_t *w, uint64_t seed, const char *tmp, const char *redis_url,
                const char *pg_url, char *err, size_t errlen)
{
    fault_chaos_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->w = w;
    self->rng = seed;
    self->t0 = story_now_ms();
    pthread_mutex_init(&self->lock, NULL);
    self->events = calloc(S_MAX_EVENTS, sizeof *self->events);
    snprintf(self->tmp, sizeof self->tmp, "%s", tmp);
    snprintf(self->pg_url, sizeof self->pg_url, "%s", pg_url);
    if (sscanf(redis_url, "redis://%63[^:]:%d", self->redis_host, &self->redis_port) != 2) {
        snprintf(err, errlen, "SX_REDIS_URL %s: not redis://host:port/db", redis_url);
        fault_chaos_destroy(&self);
        return NULL;
    }
    self->redis_pid = s_redis_find_pid(self);
    if (self->redis_pid <= 0) {
        snprintf(err, errlen, "Redis at %s:%d: no process_id in INFO server", self->redis_host,
                 self->redis_port);
        fault_chaos_destroy(&self);
        return NULL;
    }
    if (s_pg_pidfile(self) <= 0) {
        snprintf(err, errlen,
                 "no %s/pg/postmaster.pid: not the PostgreSQL of tests/fault-system/run", tmp);
        fault_chaos_destroy(&self);
        return NULL;
    }
    s_event(self, "monkey ready: seed %llu, redis pid %d, postgres pid %d",
            (unsigned long long)seed, (int)self->redis_pid, (int)s_pg_pidfile(self));
    return self;
}

/* Starts a world process or Redis, 3 tries a second apart. Returns 0 or -1. */
static int
s_start(fault_chaos_t *self, const char *name)
{
    for (int attempt = 1; attempt <= 3; attempt++) {
        if (strcmp(name, "redis") == 0) {
            if (s_redis_start(self) == 0) {
                s_event(self, "redis started again: pid %d", (int)self->redis_pid);
                return 0;
            }
            s_event(self, "redis: start %d failed", attempt);
        } else {
            pid_t pid = story_start(self->w, name, 30000);
            if (pid > 0) {
                s_event(self, "%s started again: pid %d", name, (int)pid);
                return 0;
            }
            s_event(self, "%s: start %d failed: %s", name, attempt, self->w->err);
        }
        story_sleep_ms(1000);
    }
    return -1;
}

int
fault_chaos_supervise(fault_chaos_t *self)
{
    int n = 0;
    for (int i = 0; i < S_NWORLD; i++) {
        pid_t *slot = story_pid(self->w, s_world[i]);
        int st = 0;
        if (*slot > 0 && waitpid(*slot, &st, WNOHANG) == *slot) {
            s_event(self, "%s pid %d ended by itself (%s %d): restarting", s_world[i], (int)*slot,
                    WIFSIGNALED(st) ? "signal" : "exit",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            *slot = 0;
        }
        if (*slot <= 0) {
            s_start(self, s_world[i]);
            n++;
        }
    }
    bool gone = self->redis_pid <= 0 ||
                (self->redis_mine ? waitpid(self->redis_pid, NULL, WNOHANG) == self->redis_pid
                                  : kill(self->redis_pid, 0) != 0);
    if (gone) {
        s_event(self, "redis pid %d gone: restarting", (int)self->redis_pid);
        self->redis_pid = 0;
        s_start(self, "redis");
        n++;
    }
    return n;
}

/* Sleeps ms in steps, supervising, until stop. Returns false when asked to stop. */
static bool
s_nap(fault_chaos_t *self, int ms)
{
    for (int64_t end = story_now_ms() + ms; story_now_ms() < end;) {
        if (atomic_load(&self->stop))
            return false;
        story_sleep_ms(50);
        fault_chaos_supervise(self);
    }
    return !atomic_load(&self->stop);
}

static int
s_target_index(const char *target)
{
    if (strcmp(target, "postgres") == 0)
        return S_NTARGET;
    for (int i = 0; i < S_NTARGET; i++)
        if (strcmp(target, s_targets[i]) == 0)
            return i;
    return -1;
}

static void *
s_run(void *arg)
{
    fault_chaos_t *self = arg;
    int order[S_NTARGET];
    for (int i = 0; i < S_NTARGET; i++)
        order[i] = i;
    for (int i = S_NTARGET - 1; i > 0; i--) {
        int j = (int)(fault_rand(&self->rng) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int round = 0;; round++) {
        int gap = self->min_gap +
                  (int)(fault_rand(&self->rng) % (uint64_t)(self->max_gap - self->min_gap + 1));
        int down = (int)(fault_rand(&self->rng) % (uint64_t)(self->max_down + 1));
        int pick =
            round < S_NTARGET ? order[round] : (int)(fault_rand(&self->rng) % (uint64_t)S_NTARGET);
        if (!s_nap(self, gap))
            break;
        if (atomic_load(&self->pg_want) && !self->pg_done) {
            self->pg_done = true;
            if (s_pg_restart(self, 1000 + down) != 0)
                s_event(self, "postgres restart FAILED");
            continue;
        }
        const char *name = s_targets[pick];
        self->kills[pick]++;
        if (strcmp(name, "redis") == 0) {
            s_event(self, "redis pid %d: SIGKILL (down %d ms)", (int)self->redis_pid, down);
            s_redis_kill(self);
        } else {
            s_event(self, "%s pid %d: SIGKILL (down %d ms)", name, (int)*story_pid(self->w, name),
                    down);
            story_stop(self->w, name, SIGKILL, 5000);
        }
        story_sleep_ms(down);
        s_start(self, name);
    }
    return NULL;
}

int
fault_chaos_start(fault_chaos_t *self, int min_gap_ms, int max_gap_ms, int max_down_ms, char *err,
                  size_t errlen)
{
    self->min_gap = min_gap_ms;
    self->max_gap = max_gap_ms > min_gap_ms ? max_gap_ms : min_gap_ms;
    self->max_down = max_down_ms > 0 ? max_down_ms : 0;
    atomic_store(&self->stop, false);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(errno));
        return -1;
    }
    self->running = true;
    return 0;
}

void
fault_chaos_pg_now(fault_chaos_t *self)
{
    atomic_store(&self->pg_want, true);
}

int
fault_chaos_halt(fault_chaos_t *self)
{
    if (self->running) {
        atomic_store(&self->stop, true);
        pthread_join(self->thread, NULL);
        self->running = false;
        s_event(self, "monkey stopped");
    }
    fault_chaos_supervise(self);
    int bad = 0;
    for (int i = 0; i < S_NWORLD; i++)
        bad += *story_pid(self->w, s_world[i]) <= 0;
    bad += !s_redis_up(self);
    bad += !s_pg_up(self);
    return bad;
}

int
fault_chaos_kills(const fault_chaos_t *self, const char *target)
{
    int i = s_target_index(target);
    return i < 0 ? 0 : self->kills[i];
}

bool
fault_chaos_all_hit(const fault_chaos_t *self)
{
    for (int i = 0; i < S_NTARGET; i++)
        if (self->kills[i] == 0)
            return false;
    return !atomic_load(&self->pg_want) || self->kills[S_NTARGET] > 0;
}

void
fault_chaos_print(const fault_chaos_t *self, FILE *f)
{
    fprintf(f, "fault: timeline (s since the world started)\n");
    for (int i = 0; i < self->nevents; i++)
        fprintf(f, "  %8.2f  %s\n", (double)self->events[i].t_ms / 1000.0, self->events[i].what);
}

void
fault_chaos_stop_servers(fault_chaos_t *self)
{
    if (self->redis_mine && self->redis_pid > 0) {
        kill(self->redis_pid, SIGTERM);
        for (int64_t end = story_now_ms() + 10000; story_now_ms() < end; story_sleep_ms(20))
            if (waitpid(self->redis_pid, NULL, WNOHANG) == self->redis_pid)
                break;
        kill(self->redis_pid, SIGKILL);
        waitpid(self->redis_pid, NULL, WNOHANG);
        self->redis_pid = 0;
    }
    if (self->pg_pid > 0) {
        kill(self->pg_pid, SIGINT);
        for (int64_t end = story_now_ms() + 30000; story_now_ms() < end; story_sleep_ms(20))
            if (waitpid(self->pg_pid, NULL, WNOHANG) == self->pg_pid)
                break;
        self->pg_pid = 0;
    }
}

void
fault_chaos_destroy(fault_chaos_t **self_p)
{
    if (self_p && *self_p) {
        fault_chaos_t *self = *self_p;
        if (self->running) {
            atomic_store(&self->stop, true);
            pthread_join(self->thread, NULL);
        }
        pthread_mutex_destroy(&self->lock);
        free(self->events);
        free(self);
        *self_p = NULL;
    }
}
