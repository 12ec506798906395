/* keys: CURVE key pairs, key pair files, and the key file (see keys.h). */
#include "keys.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "ident.h"

typedef struct {
    uint8_t key[32];                  /* the public key, binary */
    char identity[KEYS_IDENTITY_MAX]; /* "svc:..." or "dept:<code>:<role>" */
    int line;                         /* 1-based line in the file, for duplicate errors */
} s_entry_t;

struct keys {
    s_entry_t *entries; /* sorted by key, for bsearch */
    size_t count;       /* entries in use */
};

int
keys_keypair(char pub[KEYS_Z85_LEN + 1], char sec[KEYS_Z85_LEN + 1])
{
    return zmq_curve_keypair(pub, sec) == 0 ? 0 : -1;
}

bool
keys_z85_valid(const char *s)
{
    if (!s || strlen(s) != KEYS_Z85_LEN)
        return false;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

static bool
s_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Creates path exclusively with mode and writes text; on failure removes what it made. */
static int
s_write_new(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        util_errf(err, errlen, "%s: %s", path,
                  errno == EEXIST ? "exists, not overwritten" : strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int rc = (n == (ssize_t)len && fsync(fd) == 0) ? 0 : -1;
    int saved = errno;
    if (close(fd) != 0)
        rc = -1;
    if (rc != 0) {
        util_errf(err, errlen, "%s: %s", path, strerror(saved ? saved : EIO));
        unlink(path);
    }
    return rc;
}

int
keys_write_pair(const char *dir, const char *name, char pub[KEYS_Z85_LEN + 1], char *err,
                size_t errlen)
{
    if (!s_name_ok(name)) {
        util_errf(err, errlen, "name must be 1-64 of A-Z a-z 0-9 _ . - and not start with . or -");
        return -1;
    }
    char kpath[4096], ppath[4096];
    if (snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name) >= (int)sizeof kpath ||
        snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= (int)sizeof ppath) {
        util_errf(err, errlen, "path too long");
        return -1;
    }
    /* Checked before writing either, so a refused run leaves nothing behind. */
    struct stat st;
    if (stat(kpath, &st) == 0 || stat(ppath, &st) == 0) {
        util_errf(err, errlen, "%s: exists, not overwritten",
                  stat(kpath, &st) == 0 ? kpath : ppath);
        return -1;
    }
    char p[KEYS_Z85_LEN + 1], s[KEYS_Z85_LEN + 1];
    if (keys_keypair(p, s) != 0) {
        util_errf(err, errlen, "libzmq has no CURVE support");
        return -1;
    }
    char text[128];
    snprintf(text, sizeof text, "public=%s\nsecret=%s\n", p, s);
    int rc = s_write_new(kpath, 0600, text, err, errlen);
    explicit_bzero(text, sizeof text);
    explicit_bzero(s, sizeof s);
    if (rc != 0)
        return -1;
    snprintf(text, sizeof text, "%s\n", p);
    if (s_write_new(ppath, 0644, text, err, errlen) != 0) {
        unlink(kpath);
        return -1;
    }
    memcpy(pub, p, sizeof p);
    return 0;
}

/* Reads a small file (< size bytes) into buf, NUL-terminated. */
static int
s_slurp(const char *path, char *buf, size_t size, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        util_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        util_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            util_errf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size) {
            util_errf(err, errlen, "%s: too large", path);
            close(fd);
            return -1;
        }
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

/* Finds "<field>=<40 Z85>\n" as a whole line in text and copies the key into out. */
static int
s_field(const char *text, const char *field, char out[KEYS_Z85_LEN + 1])
{
    size_t flen = strlen(field);
    for (const char *line = text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        size_t len = strcspn(line, "\n");
        if (len == flen + 1 + KEYS_Z85_LEN && strncmp(line, field, flen) == 0 &&
            line[flen] == '=') {
            memcpy(out, line + flen + 1, KEYS_Z85_LEN);
            out[KEYS_Z85_LEN] = '\0';
            return keys_z85_valid(out) ? 0 : -1;
        }
    }
    return -1;
}

int
keys_read_pair(const char *path, char pub[KEYS_Z85_LEN + 1], char sec[KEYS_Z85_LEN + 1], char *err,
               size_t errlen)
{
    char text[256];
    struct stat st;
    if (s_slurp(path, text, sizeof text, &st, err, errlen) != 0)
        return -1;
    int rc = -1;
    if (st.st_mode & 077)
        util_errf(err, errlen, "%s: readable by group or others (mode %03o); chmod 600 it", path,
                  (unsigned)(st.st_mode & 0777));
    else if (s_field(text, "public", pub) != 0 || s_field(text, "secret", sec) != 0)
        util_errf(err, errlen, "%s: expected \"public=<key>\" and \"secret=<key>\" lines (Z85)",
                  path);
    else {
        char derived[KEYS_Z85_LEN + 1];
        if (zmq_curve_public(derived, sec) != 0 || strcmp(derived, pub) != 0)
            util_errf(err, errlen, "%s: the public key does not match the secret key", path);
        else
            rc = 0;
    }
    explicit_bzero(text, sizeof text);
    if (rc != 0)
        explicit_bzero(sec, KEYS_Z85_LEN + 1);
    return rc;
}

int
keys_read_public(const char *path, char pub[KEYS_Z85_LEN + 1], char *err, size_t errlen)
{
    char text[256];
    struct stat st;
    if (s_slurp(path, text, sizeof text, &st, err, errlen) != 0)
        return -1;
    size_t len = strcspn(text, "\n");
    int rc = -1;
    if (len == KEYS_Z85_LEN && (text[len] == '\0' || text[len + 1] == '\0')) {
        memcpy(pub, text, KEYS_Z85_LEN);
        pub[KEYS_Z85_LEN] = '\0';
        rc = keys_z85_valid(pub) ? 0 : -1;
    } else
        rc = s_field(text, "public", pub);
    if (rc != 0)
        util_errf(err, errlen, "%s: expected one Z85 public key or a \"public=<key>\" line", path);
    explicit_bzero(text, sizeof text);
    return rc;
}

static bool
s_in(char c, const char *lo_hi_pairs)
{
    for (const char *p = lo_hi_pairs; p[0] && p[1]; p += 2)
        if (c >= p[0] && c <= p[1])
            return true;
    return false;
}

keys_id_kind_t
keys_identity_check(const char *id, char *err, size_t errlen)
{
    size_t n = strlen(id);
    if (n >= KEYS_IDENTITY_MAX) {
        util_errf(err, errlen, "identity longer than %d bytes", KEYS_IDENTITY_MAX - 1);
        return KEYS_ID_NONE;
    }
    if (strncmp(id, "svc:", 4) == 0) {
        const char *s = id + 4;
        size_t len = strlen(s);
        bool ok = len >= 1 && len <= 32 && s_in(s[0], "az");
        for (size_t i = 1; ok && i < len; i++)
            ok = s_in(s[i], "az09__--");
        if (!ok) {
            util_errf(err, errlen,
                      "svc:<service>: service must be [a-z][a-z0-9_-]{0,31}, got \"%s\"", s);
            return KEYS_ID_NONE;
        }
        return KEYS_ID_SVC;
    }
    if (strncmp(id, "dept:", 5) == 0) {
        const char *c = id + 5;
        const char *colon = strchr(c, ':');
        if (!colon || colon - c != 18) {
            util_errf(err, errlen, "dept:<code>:<role>: code must be 18 characters");
            return KEYS_ID_NONE;
        }
        char code[19];
        memcpy(code, c, 18);
        code[18] = '\0';
        ident_err_t e;
        if (ident_uscc_check(code, &e) != 0) {
            util_errf(err, errlen, "dept:<code>:<role>: agency code %s: %s", code, e.en);
            return KEYS_ID_NONE;
        }
        const char *r = colon + 1;
        size_t len = strlen(r);
        bool ok = len >= 1 && len <= 32;
        for (size_t i = 0; ok && i < len; i++)
            ok = s_in(r[i], "az__");
        if (!ok) {
            util_errf(err, errlen, "dept:<code>:<role>: role must be [a-z_]{1,32}");
            return KEYS_ID_NONE;
        }
        return KEYS_ID_DEPT;
    }
    util_errf(err, errlen, "identity must start with \"svc:\" or \"dept:\"");
    return KEYS_ID_NONE;
}

const char *
keys_dept_code(const char *identity)
{
    if (!identity || keys_identity_check(identity, NULL, 0) != KEYS_ID_DEPT)
        return NULL;
    return identity + 5;
}

static int
s_cmp(const void *a, const void *b)
{
    return memcmp(((const s_entry_t *)a)->key, ((const s_entry_t *)b)->key, 32);
}

/* Parses one line (no '\n'); returns 1 for an entry, 0 for blank/comment, -1 on error. */
static int
s_parse_line(const char *line, size_t len, s_entry_t *out, char *why, size_t whylen)
{
    if (len > KEYS_LINE_MAX) {
        util_errf(why, whylen, "longer than %d bytes", KEYS_LINE_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c >= 0x7f) {
            util_errf(why, whylen, "byte %zu is not printable ASCII (0x%02x)", i + 1, c);
            return -1;
        }
    }
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#')
        return 0;
    /* Fields: key, identity; nothing else but blanks. */
    const char *f[3];
    size_t flen[3];
    int nf = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        if (nf == 3)
            break;
        f[nf] = line + start;
        flen[nf++] = i - start;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
    }
    if (nf != 2) {
        util_errf(why, whylen, "expected \"<public key> <identity>\", got %s field%s",
                  nf < 2 ? "one" : "more than two", nf < 2 ? "" : "s");
        return -1;
    }
    char key[KEYS_Z85_LEN + 1];
    if (flen[0] != KEYS_Z85_LEN) {
        util_errf(why, whylen, "public key must be 40 Z85 characters, got %zu", flen[0]);
        return -1;
    }
    memcpy(key, f[0], KEYS_Z85_LEN);
    key[KEYS_Z85_LEN] = '\0';
    if (!zmq_z85_decode(out->key, key)) {
        util_errf(why, whylen, "public key is not valid Z85");
        return -1;
    }
    if (flen[1] >= KEYS_IDENTITY_MAX) {
        util_errf(why, whylen, "identity longer than %d bytes", KEYS_IDENTITY_MAX - 1);
        return -1;
    }
    memcpy(out->identity, f[1], flen[1]);
    out->identity[flen[1]] = '\0';
    if (keys_identity_check(out->identity, why, whylen) == KEYS_ID_NONE)
        return -1;
    return 1;
}

keys_t *
keys_parse(const char *text, size_t len, char *err, size_t errlen)
{
    keys_t *self = calloc(1, sizeof *self);
    if (!self) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    size_t cap = 0;
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;
        s_entry_t e;
        char why[200];
        int rc = s_parse_line(line, llen, &e, why, sizeof why);
        if (rc < 0) {
            util_errf(err, errlen, "line %d: %s", lineno, why);
            keys_destroy(&self);
            return NULL;
        }
        if (rc == 0)
            continue;
        if (self->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            s_entry_t *n = realloc(self->entries, ncap * sizeof *n);
            if (!n) {
                util_errf(err, errlen, "out of memory");
                keys_destroy(&self);
                return NULL;
            }
            self->entries = n;
            cap = ncap;
        }
        e.line = lineno;
        self->entries[self->count++] = e;
    }
    if (self->count)
        qsort(self->entries, self->count, sizeof *self->entries, s_cmp);
    for (size_t i = 1; i < self->count; i++) {
        if (s_cmp(&self->entries[i - 1], &self->entries[i]) == 0) {
            int a = self->entries[i - 1].line, b = self->entries[i].line;
            util_errf(err, errlen, "line %d: duplicate key (first on line %d)", a > b ? a : b,
                      a < b ? a : b);
            keys_destroy(&self);
            return NULL;
        }
    }
    return self;
}

keys_t *
keys_load(const char *path, char *err, size_t errlen)
{
    char *buf = malloc(KEYS_FILE_MAX + 1);
    if (!buf) {
        util_errf(err, errlen, "out of memory");
        return NULL;
    }
    struct stat st;
    keys_t *self = NULL;
    if (s_slurp(path, buf, KEYS_FILE_MAX + 1, &st, err, errlen) == 0) {
        char why[256];
        self = keys_parse(buf, strlen(buf), why, sizeof why);
        if (!self)
            util_errf(err, errlen, "%s: %s", path, why);
        else if (strlen(buf) != (size_t)st.st_size) {
            util_errf(err, errlen, "%s: holds a NUL byte", path);
            keys_destroy(&self);
        }
    }
    free(buf);
    return self;
}

void
keys_destroy(keys_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->entries);
        free(*self_p);
        *self_p = NULL;
    }
}

const char *
keys_lookup(const keys_t *self, const uint8_t key[32])
{
    if (!self || self->count == 0)
        return NULL;
    s_entry_t probe;
    memcpy(probe.key, key, 32);
    const s_entry_t *e = bsearch(&probe, self->entries, self->count, sizeof *e, s_cmp);
    return e ? e->identity : NULL;
}

size_t
keys_count(const keys_t *self)
{
    return self ? self->count : 0;
}
