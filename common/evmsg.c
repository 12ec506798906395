/* evmsg: the event envelope, and the one bounded decoder of msgpack input.
 *
 * Decoding runs in three passes over bytes already bounded by EVMSG_MAX_BYTES:
 *   1. s_scan: our own walk over the raw bytes. It checks depth, that every length and
 *      every element count fits in the bytes that remain, that map keys are strings,
 *      and that nothing trails. msgpack-c allocates map and array storage from the
 *      declared count before it reads a single element, so this pass is what keeps its
 *      allocations bounded by the input size (each element needs at least one byte).
 *   2. msgpack_unpack_next builds the tree (strings point into our copy of the input).
 *   3. s_check_tree refuses duplicate keys in any map.
 * The envelope is then read with the same typed readers that services use. */
#include "evmsg.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WHY 160

struct evmsg_t {
    evmsg_header_t hdr;         /* all zero for evmsg_decode_map */
    msgpack_unpacked tree;      /* msgpack-c's tree; its strings point into bytes */
    const msgpack_object *data; /* the data map (or the root map), inside tree */
    bool envelope;              /* decoded by evmsg_decode, so data's path is "data" */
    size_t data_off;            /* where data's bytes start within bytes */
    size_t data_len;            /* and how many there are */
    size_t len;                 /* bytes in the input */
    unsigned char bytes[];      /* a copy of the input */
};

/* ---- Errors and paths ---------------------------------------------------------------- */

/* Records the first error only: a caller may read many fields and check once. */
static int s_fail_path(evmsg_err_t *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail_path(evmsg_err_t *err, const char *path, const char *fmt, ...)
{
    if (err && err->reason[0] == '\0') {
        size_t n = strlen(path);
        if (n >= sizeof err->path)
            n = sizeof err->path - 1;
        memcpy(err->path, path, n);
        err->path[n] = '\0';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->reason, sizeof err->reason, fmt, ap);
        va_end(ap);
        if (err->reason[0] == '\0') /* an error must never read as "no error" */
            snprintf(err->reason, sizeof err->reason, "invalid");
    }
    return -1;
}

/* Appends to out (holding *n chars, capacity EVMSG_PATH_MAX), truncating. Bytes from
 * input outside printable ASCII become '?', so a path can be printed or logged as is. */
static void
s_path_put(char *out, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < len && *n < EVMSG_PATH_MAX - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        out[(*n)++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[*n] = '\0';
}

/* out = base + ".key" (or "key" when base is empty). out may alias base. */
static void
s_path_key(char out[EVMSG_PATH_MAX], const char *base, const char *key, size_t key_len)
{
    char tmp[EVMSG_PATH_MAX];
    size_t n = 0;
    tmp[0] = '\0';
    s_path_put(tmp, &n, base, strlen(base));
    if (n > 0)
        s_path_put(tmp, &n, ".", 1);
    s_path_put(tmp, &n, key, key_len);
    memcpy(out, tmp, n + 1);
}

/* out = base + "[index]". out may alias base. */
static void
s_path_index(char out[EVMSG_PATH_MAX], const char *base, size_t index)
{
    char tmp[EVMSG_PATH_MAX], num[32];
    size_t n = 0;
    tmp[0] = '\0';
    s_path_put(tmp, &n, base, strlen(base));
    int k = snprintf(num, sizeof num, "[%zu]", index);
    s_path_put(tmp, &n, num, (size_t)k);
    memcpy(out, tmp, n + 1);
}

/* A path as a chain of segments on the C stack, turned into text only on error. */
typedef struct s_seg {
    const struct s_seg *up;
    const char *key; /* NULL for an array index */
    size_t key_len;
    size_t index;
} s_seg_t;

static void
s_seg_text(const s_seg_t *seg, char out[EVMSG_PATH_MAX])
{
    if (!seg->up) {
        size_t n = 0;
        out[0] = '\0';
        s_path_put(out, &n, seg->key, seg->key_len);
        return;
    }
    s_seg_text(seg->up, out);
    if (seg->key)
        s_path_key(out, out, seg->key, seg->key_len);
    else
        s_path_index(out, out, seg->index);
}

char *
evmsg_err_str(const evmsg_err_t *err, char *buf, size_t size)
{
    assert(buf && size > 0);
    if (!err || err->reason[0] == '\0')
        buf[0] = '\0';
    else if (err->path[0] == '\0')
        snprintf(buf, size, "%s", err->reason);
    else
        snprintf(buf, size, "%s: %s", err->path, err->reason);
    return buf;
}

/* ---- Pass 1: the structural pre-scan ----------------------------------------------- */

typedef enum { K_SCALAR, K_STR, K_ARRAY, K_MAP } s_kind_t;

typedef struct {
    uint64_t left;      /* items still to read (a map counts keys and values) */
    uint64_t index;     /* items read so far */
    bool is_map;        /* else an array */
    const uint8_t *key; /* the last key read, for paths (maps) */
    size_t key_len;
} s_frame_t;

typedef struct {
    const uint8_t *start, *p, *end;
    const char *root; /* path of the root object */
    int max_depth;
    int depth;
    s_frame_t st[EVMSG_MAX_DEPTH];
    bool want_data; /* record where the root's "data" value lies */
    size_t data_off, data_len;
} s_scan_t;

static uint64_t
s_be(const uint8_t *p, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the head of the object at p: its kind, its header length, and n (payload bytes
 * for scalars and strings, elements for arrays, entries for maps). Returns 0, -1 when
 * the head itself is cut short, -2 for the byte msgpack never uses (0xc1). */
static int
s_head(const uint8_t *p, const uint8_t *end, s_kind_t *kind, size_t *hlen, uint64_t *n)
{
    size_t avail = (size_t)(end - p);
    uint8_t b = p[0];
    size_t w = 0; /* width of a big-endian length/count after the type byte */
    *kind = K_SCALAR;
    *hlen = 1;
    *n = 0;
    if (b <= 0x7f || b >= 0xe0)
        return 0;
    if (b <= 0x8f) {
        *kind = K_MAP;
        *n = b & 0x0f;
        return 0;
    }
    if (b <= 0x9f) {
        *kind = K_ARRAY;
        *n = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        *kind = K_STR;
        *n = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xc0: /* nil */
    case 0xc2: /* false */
    case 0xc3: /* true */
        return 0;
    case 0xc1:
        return -2;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        w = (size_t)1 << (b - 0xc4);
        break;
    case 0xc7: /* ext 8/16/32: length, then a type byte */
    case 0xc8:
    case 0xc9:
        w = (size_t)1 << (b - 0xc7);
        if (avail < 2 + w)
            return -1;
        *n = s_be(p + 1, w);
        *hlen = 2 + w;
        return 0;
    case 0xca:
        *n = 4;
        return 0;
    case 0xcb:
        *n = 8;
        return 0;
    case 0xcc: /* uint 8..64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        *n = (uint64_t)1 << (b - 0xcc);
        return 0;
    case 0xd0: /* int 8..64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        *n = (uint64_t)1 << (b - 0xd0);
        return 0;
    case 0xd4: /* fixext 1..16: a type byte, then the payload */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *hlen = 2;
        *n = (uint64_t)1 << (b - 0xd4);
        return avail < 2 ? -1 : 0;
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        *kind = K_STR;
        w = (size_t)1 << (b - 0xd9);
        break;
    case 0xdc: /* array 16/32 */
    case 0xdd:
        *kind = K_ARRAY;
        w = (size_t)2 << (b - 0xdc);
        break;
    default: /* 0xde, 0xdf: map 16/32 */
        *kind = K_MAP;
        w = (size_t)2 << (b - 0xde);
        break;
    }
    if (avail < 1 + w)
        return -1;
    *n = s_be(p + 1, w);
    *hlen = 1 + w;
    return 0;
}

/* The path of the object about to be read. */
static void
s_scan_path(const s_scan_t *s, char out[EVMSG_PATH_MAX])
{
    size_t n = 0;
    out[0] = '\0';
    s_path_put(out, &n, s->root, strlen(s->root));
    for (int i = 0; i < s->depth; i++) {
        const s_frame_t *f = &s->st[i];
        if (f->is_map) {
            if (f->index & 1) /* at a value: name its key */
                s_path_key(out, out, (const char *)f->key, f->key_len);
        } else {
            s_path_index(out, out, (size_t)f->index);
        }
    }
}

static int s_scan_fail(const s_scan_t *s, evmsg_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_scan_fail(const s_scan_t *s, evmsg_err_t *err, const char *fmt, ...)
{
    if (err && err->reason[0] == '\0') {
        char path[EVMSG_PATH_MAX], why[S_WHY];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        s_scan_path(s, path);
        s_fail_path(err, path, "%s", why);
    }
    return -1;
}

static bool
s_frame_at_data(const s_scan_t *s)
{
    const s_frame_t *f = &s->st[0];
    return s->want_data && s->depth == 1 && (f->index & 1) && f->key_len == 4 &&
           memcmp(f->key, "data", 4) == 0;
}

static int
s_scan(s_scan_t *s, evmsg_err_t *err)
{
    for (;;) {
        s_frame_t *top = s->depth ? &s->st[s->depth - 1] : NULL;
        if (s->p >= s->end)
            return s_scan_fail(s, err, "truncated");
        s_kind_t kind;
        size_t hlen;
        uint64_t n;
        int rc = s_head(s->p, s->end, &kind, &hlen, &n);
        if (rc == -2)
            return s_scan_fail(s, err, "not msgpack (byte 0xc1 at byte %zu)",
                               (size_t)(s->p - s->start));
        if (rc < 0)
            return s_scan_fail(s, err, "truncated");
        bool at_key = top && top->is_map && !(top->index & 1);
        if (at_key && kind != K_STR)
            return s_scan_fail(s, err, "map key is not a string");
        if (!top && kind != K_MAP)
            return s_scan_fail(s, err, "expected map");
        if (s_frame_at_data(s))
            s->data_off = (size_t)(s->p - s->start);
        uint64_t rem = (uint64_t)(s->end - s->p) - hlen;
        if (kind == K_SCALAR || kind == K_STR) {
            if (n > rem)
                return s_scan_fail(s, err, "truncated");
            if (at_key) {
                top->key = s->p + hlen;
                top->key_len = (size_t)n;
            }
            s->p += hlen + (size_t)n;
        } else {
            if (s->depth >= s->max_depth)
                /* data checked on its own is one level below the envelope: report the
                 * limit as a subscriber would meet it */
                return s_scan_fail(s, err, "nesting deeper than %d", EVMSG_MAX_DEPTH);
            uint64_t items = kind == K_MAP ? 2 * n : n;
            if (items > rem)
                return s_scan_fail(s, err,
                                   "truncated (claims %" PRIu64 " %s, %" PRIu64 " bytes left)", n,
                                   kind == K_MAP ? "entries" : "elements", rem);
            s->p += hlen;
            if (items > 0) {
                s->st[s->depth++] = (s_frame_t){.left = items, .is_map = kind == K_MAP};
                continue;
            }
        }
        /* One object complete: count it in its container, closing containers as they
         * fill up. */
        for (;;) {
            if (s->depth == 0)
                return 0;
            s_frame_t *f = &s->st[s->depth - 1];
            if (s_frame_at_data(s))
                s->data_len = (size_t)(s->p - s->start) - s->data_off;
            f->index++;
            if (--f->left > 0)
                break;
            s->depth--;
        }
    }
}

/* ---- Pass 3: duplicate keys ---------------------------------------------------------- */

static int
s_key_cmp(const void *a, const void *b)
{
    const msgpack_object_str *x = &(*(const msgpack_object_kv *const *)a)->key.via.str;
    const msgpack_object_str *y = &(*(const msgpack_object_kv *const *)b)->key.via.str;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return x->size ? memcmp(x->ptr, y->ptr, x->size) : 0;
}

static bool
s_key_eq(const msgpack_object_kv *a, const msgpack_object_kv *b)
{
    return a->key.via.str.size == b->key.via.str.size &&
           (a->key.via.str.size == 0 ||
            memcmp(a->key.via.str.ptr, b->key.via.str.ptr, a->key.via.str.size) == 0);
}

/* Finds a key that occurs twice in map o (keys are strings, the scan saw to that). */
static const msgpack_object_kv *
s_find_dup(const msgpack_object *o, bool *nomem)
{
    uint32_t n = o->via.map.size;
    const msgpack_object_kv *kv = o->via.map.ptr;
    *nomem = false;
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (s_key_eq(&kv[i], &kv[j]))
                    return &kv[i];
        return NULL;
    }
    /* Sort pointers: a hostile map of 30,000 keys must not cost 30,000^2 compares. */
    const msgpack_object_kv **idx = malloc(n * sizeof *idx);
    if (!idx) {
        *nomem = true;
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++)
        idx[i] = &kv[i];
    qsort(idx, n, sizeof *idx, s_key_cmp);
    const msgpack_object_kv *dup = NULL;
    for (uint32_t i = 1; i < n && !dup; i++)
        if (s_key_eq(idx[i], idx[i - 1]))
            dup = idx[i];
    free(idx);
    return dup;
}

/* msgpack-c leaves the pointer of an empty str, bin or ext NULL; point it at "" so no
 * reader, caller or memcmp ever meets a NULL that means "empty". */
static void
s_no_null(msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == 0)
        o->via.str.ptr = "";
    else if (o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 0)
        o->via.bin.ptr = "";
    else if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.size == 0)
        o->via.ext.ptr = "";
}

/* Refuses duplicate keys anywhere below o (the tree is ours, so it also fixes up empty
 * pointers on the way). */
static int
s_check_tree(msgpack_object *o, const s_seg_t *seg, evmsg_err_t *err)
{
    char path[EVMSG_PATH_MAX];
    s_no_null(o);
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++)
            s_no_null(&o->via.map.ptr[i].key);
        bool nomem;
        const msgpack_object_kv *dup = s_find_dup(o, &nomem);
        if (nomem) {
            s_seg_text(seg, path);
            return s_fail_path(err, path, "out of memory");
        }
        if (dup) {
            s_seg_t s = {seg, dup->key.via.str.ptr, dup->key.via.str.size, 0};
            s_seg_text(&s, path);
            return s_fail_path(err, path, "duplicate key");
        }
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            msgpack_object_kv *kv = &o->via.map.ptr[i];
            s_seg_t s = {seg, kv->key.via.str.ptr, kv->key.via.str.size, 0};
            if (s_check_tree(&kv->val, &s, err) < 0)
                return -1;
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            s_seg_t s = {seg, NULL, 0, i};
            if (s_check_tree(&o->via.array.ptr[i], &s, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* All three passes over buf. On success *tree holds the root map (the caller destroys
 * it) and, when want_data, *data_off and *data_len the span of the root's "data" value. */
static int
s_parse(const uint8_t *buf, size_t len, int max_depth, const char *root, bool want_data,
        msgpack_unpacked *tree, size_t *data_off, size_t *data_len, evmsg_err_t *err)
{
    msgpack_unpacked_init(tree);
    if (len > EVMSG_MAX_BYTES)
        return s_fail_path(err, root, "message larger than %d bytes", EVMSG_MAX_BYTES);
    if (len == 0)
        return s_fail_path(err, root, "empty message");
    s_scan_t s = {.start = buf,
                  .p = buf,
                  .end = buf + len,
                  .root = root,
                  .max_depth = max_depth,
                  .want_data = want_data};
    if (s_scan(&s, err) < 0)
        return -1;
    if (s.p != s.end)
        return s_fail_path(err, root, "trailing bytes after the message (%zu)",
                           (size_t)(s.end - s.p));
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(tree, (const char *)buf, len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len || tree->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(tree);
        msgpack_unpacked_init(tree);
        return s_fail_path(err, root, "%s",
                           rc == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory"
                                                            : "msgpack-c refused the message");
    }
    s_seg_t top = {NULL, root, strlen(root), 0};
    if (s_check_tree(&tree->data, &top, err) < 0) {
        msgpack_unpacked_destroy(tree);
        msgpack_unpacked_init(tree);
        return -1;
    }
    if (data_off)
        *data_off = s.data_off;
    if (data_len)
        *data_len = s.data_len;
    return 0;
}

/* ---- Decoding ------------------------------------------------------------------------ */

static evmsg_t *
s_msg_new(const void *buf, size_t len)
{
    evmsg_t *self = calloc(1, sizeof *self + len);
    if (self) {
        memcpy(self->bytes, buf, len);
        self->len = len;
        msgpack_unpacked_init(&self->tree);
    }
    return self;
}

/* Reads and checks the header fields of the root map of self. */
static int
s_read_envelope(evmsg_t *self, evmsg_err_t *err)
{
    static const char *const keys[] = {"seq", "aseq", "src", "at", "v", "data", NULL};
    evmsg_map_t root = {.obj = &self->tree.data, .err = err, .state = 1, .path = ""};
    evmsg_header_t *h = &self->hdr;
    const char *src;
    size_t src_len;
    int64_t at, v;
    evmsg_map_t data;
    int bad = 0;
    bad |= evmsg_map_only(&root, keys) < 0;
    bad |= evmsg_map_uint(&root, "seq", EVMSG_REQUIRED, UINT64_MAX, &h->seq) < 0;
    bad |= evmsg_map_uint(&root, "aseq", EVMSG_REQUIRED, UINT64_MAX, &h->aseq) < 0;
    if (evmsg_map_strp(&root, "src", EVMSG_REQUIRED, EVMSG_SRC_MAX, &src, &src_len) < 0)
        bad = 1;
    else if (!evmsg_src_valid(src, src_len))
        bad = s_fail_path(err, "src", "expected service name [a-z][a-z0-9_-]{0,31}") < 0;
    else {
        memcpy(h->src, src, src_len);
        h->src[src_len] = '\0';
    }
    if (evmsg_map_int(&root, "at", EVMSG_REQUIRED, 0, INT64_MAX, &at) < 0)
        bad = 1;
    else
        h->at = at;
    if (evmsg_map_int(&root, "v", EVMSG_REQUIRED, 1, UINT32_MAX, &v) < 0)
        bad = 1;
    else
        h->v = (uint32_t)v;
    if (evmsg_map_map(&root, "data", EVMSG_REQUIRED, &data) < 0)
        bad = 1;
    else
        self->data = data.obj;
    return bad ? -1 : 0;
}

static int
s_decode(const void *buf, size_t len, bool envelope, evmsg_t **msg_p, evmsg_err_t *err)
{
    assert(msg_p);
    assert(buf || len == 0);
    *msg_p = NULL;
    if (len > EVMSG_MAX_BYTES) /* before copying anything */
        return s_fail_path(err, "", "message larger than %d bytes", EVMSG_MAX_BYTES);
    evmsg_t *self = s_msg_new(buf, len);
    if (!self)
        return s_fail_path(err, "", "out of memory");
    self->envelope = envelope;
    if (s_parse(self->bytes, len, EVMSG_MAX_DEPTH, "", envelope, &self->tree, &self->data_off,
                &self->data_len, err) < 0 ||
        (envelope && s_read_envelope(self, err) < 0)) {
        evmsg_destroy(&self);
        return -1;
    }
    if (!envelope) {
        self->data = &self->tree.data;
        self->data_off = 0;
        self->data_len = len;
    }
    *msg_p = self;
    return 0;
}

int
evmsg_decode(const void *buf, size_t len, evmsg_t **msg_p, evmsg_err_t *err)
{
    return s_decode(buf, len, true, msg_p, err);
}

int
evmsg_decode_map(const void *buf, size_t len, evmsg_t **msg_p, evmsg_err_t *err)
{
    return s_decode(buf, len, false, msg_p, err);
}

void
evmsg_destroy(evmsg_t **msg_p)
{
    assert(msg_p);
    if (*msg_p) {
        evmsg_t *self = *msg_p;
        msgpack_unpacked_destroy(&self->tree);
        free(self);
        *msg_p = NULL;
    }
}

const evmsg_header_t *
evmsg_header(const evmsg_t *msg)
{
    assert(msg);
    return &msg->hdr;
}

evmsg_map_t
evmsg_data(const evmsg_t *msg, evmsg_err_t *err)
{
    assert(msg);
    evmsg_map_t m = {.obj = msg->data, .err = err, .state = 1};
    if (msg->envelope)
        memcpy(m.path, "data", 5);
    return m;
}

const void *
evmsg_data_bytes(const evmsg_t *msg, size_t *len)
{
    assert(msg && len);
    *len = msg->data_len;
    return msg->bytes + msg->data_off;
}

/* ---- Encoding ------------------------------------------------------------------------ */

typedef struct {
    unsigned char *buf;
    size_t size, len;
} s_fixbuf_t;

static int
s_fix_write(void *data, const char *buf, size_t len)
{
    s_fixbuf_t *fb = data;
    if (len > fb->size - fb->len)
        return -1;
    memcpy(fb->buf + fb->len, buf, len);
    fb->len += len;
    return 0;
}

/* Checks hdr and data, and packs the envelope's head (everything before data's bytes)
 * into head (64 + EVMSG_SRC_MAX bytes suffice: 6 keys, 5 values). */
static int
s_encode_head(const evmsg_header_t *hdr, const void *data, size_t data_len, unsigned char head[128],
              size_t *head_len, evmsg_err_t *err)
{
    assert(hdr);
    assert(data || data_len == 0);
    size_t src_len = strnlen(hdr->src, sizeof hdr->src);
    if (!evmsg_src_valid(hdr->src, src_len))
        return s_fail_path(err, "src", "expected service name [a-z][a-z0-9_-]{0,31}");
    if (hdr->at < 0)
        return s_fail_path(err, "at", "must be between 0 and %" PRId64, INT64_MAX);
    if (hdr->v < 1)
        return s_fail_path(err, "v", "must be between 1 and %" PRIu32, UINT32_MAX);

    s_fixbuf_t fb = {head, 128, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, s_fix_write);
    int rc = msgpack_pack_map(&pk, 6);
    rc |= msgpack_pack_str_with_body(&pk, "seq", 3);
    rc |= msgpack_pack_uint64(&pk, hdr->seq);
    rc |= msgpack_pack_str_with_body(&pk, "aseq", 4);
    rc |= msgpack_pack_uint64(&pk, hdr->aseq);
    rc |= msgpack_pack_str_with_body(&pk, "src", 3);
    rc |= msgpack_pack_str_with_body(&pk, hdr->src, src_len);
    rc |= msgpack_pack_str_with_body(&pk, "at", 2);
    rc |= msgpack_pack_int64(&pk, hdr->at);
    rc |= msgpack_pack_str_with_body(&pk, "v", 1);
    rc |= msgpack_pack_uint32(&pk, hdr->v);
    rc |= msgpack_pack_str_with_body(&pk, "data", 4);
    assert(rc == 0); /* 128 bytes always hold the head */
    (void)rc;
    *head_len = fb.len;

    if (data_len > EVMSG_MAX_BYTES - fb.len)
        return s_fail_path(err, "", "message larger than %d bytes", EVMSG_MAX_BYTES);
    /* What the producer packed is held to the consumer's rules here, so a bad event is
     * refused at its source instead of by every subscriber. */
    msgpack_unpacked tree;
    if (s_parse(data, data_len, EVMSG_MAX_DEPTH - 1, "data", false, &tree, NULL, NULL, err) < 0)
        return -1;
    msgpack_unpacked_destroy(&tree);
    return 0;
}

int
evmsg_encode(msgpack_sbuffer *out, const evmsg_header_t *hdr, const void *data, size_t data_len,
             evmsg_err_t *err)
{
    assert(out);
    unsigned char head[128];
    size_t head_len;
    if (s_encode_head(hdr, data, data_len, head, &head_len, err) < 0)
        return -1;
    size_t was = out->size;
    if (msgpack_sbuffer_write(out, (const char *)head, head_len) != 0 ||
        (data_len && msgpack_sbuffer_write(out, data, data_len) != 0)) {
        out->size = was;
        return s_fail_path(err, "", "out of memory");
    }
    return 0;
}

int
evmsg_encode_buf(void *buf, size_t size, const evmsg_header_t *hdr, const void *data,
                 size_t data_len, size_t *len_out, evmsg_err_t *err)
{
    assert(buf && len_out);
    unsigned char head[128];
    size_t head_len;
    if (s_encode_head(hdr, data, data_len, head, &head_len, err) < 0)
        return -1;
    if (size < head_len + data_len)
        return s_fail_path(err, "", "buffer too small (%zu bytes, %zu needed)", size,
                           head_len + data_len);
    memcpy(buf, head, head_len);
    if (data_len)
        memcpy((unsigned char *)buf + head_len, data, data_len);
    *len_out = head_len + data_len;
    return 0;
}

/* ---- Value checks (each fills why on failure) ---------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static int
s_check_text(const uint8_t *s, size_t n, int flags, char why[S_WHY])
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && (c == 0 || (!(flags & EVMSG_ALLOW_CONTROL) && c != '\t' && c != '\n' &&
                                        c != '\r'))) {
                snprintf(why, S_WHY, "control character at byte %zu", i);
                return -1;
            }
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong below */
            if (c == 0xed)
                hi = 0x9f; /* surrogates above */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f; /* beyond U+10FFFF above */
        } else {
            len = 0;
        }
        bool ok = len > 0 && n - i >= len && s[i + 1] >= lo && s[i + 1] <= hi;
        for (size_t k = 2; ok && k < len; k++)
            ok = (s[i + k] & 0xc0) == 0x80;
        if (!ok) {
            snprintf(why, S_WHY, "not valid UTF-8 at byte %zu", i);
            return -1;
        }
        i += len;
    }
    return 0;
}

static int
s_check_str(const msgpack_object *v, int flags, size_t max_bytes, char why[S_WHY])
{
    if (v->type != MSGPACK_OBJECT_STR) {
        snprintf(why, S_WHY, "expected string");
        return -1;
    }
    if (v->via.str.size > max_bytes) {
        snprintf(why, S_WHY, "longer than %zu bytes", max_bytes);
        return -1;
    }
    if ((flags & EVMSG_NONEMPTY) && v->via.str.size == 0) {
        snprintf(why, S_WHY, "empty");
        return -1;
    }
    return s_check_text((const uint8_t *)v->via.str.ptr, v->via.str.size, flags, why);
}

static int
s_check_int(const msgpack_object *v, int64_t min, int64_t max, int64_t *out, char why[S_WHY])
{
    int64_t x;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > INT64_MAX)
            goto range;
        x = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        x = v->via.i64;
    } else {
        snprintf(why, S_WHY, "expected integer");
        return -1;
    }
    if (x < min || x > max)
        goto range;
    *out = x;
    return 0;
range:
    snprintf(why, S_WHY, "must be between %" PRId64 " and %" PRId64, min, max);
    return -1;
}

/* Writes v / 10^scale as a decimal ("-0.000001"). */
static void
s_fmt_decimal(int64_t v, int scale, char out[32])
{
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    uint64_t p = 1;
    for (int i = 0; i < scale; i++)
        p *= 10;
    if (scale == 0)
        snprintf(out, 32, "%s%" PRIu64, v < 0 ? "-" : "", mag);
    else
        snprintf(out, 32, "%s%" PRIu64 ".%0*" PRIu64, v < 0 ? "-" : "", mag / p, scale, mag % p);
}

static int
s_check_decimal(const msgpack_object *v, int scale, int64_t min, int64_t max, int64_t *out,
                char why[S_WHY])
{
    if (v->type != MSGPACK_OBJECT_STR) {
        snprintf(why, S_WHY, "expected decimal string");
        return -1;
    }
    const char *s = v->via.str.ptr;
    size_t n = v->via.str.size, i = 0;
    bool neg = n > 0 && s[0] == '-';
    i = neg;
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t int_digits = i - int_start;
    size_t frac_digits = 0;
    bool ok = int_digits >= 1 && int_digits <= 15 && !(int_digits > 1 && s[int_start] == '0');
    if (ok && i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        frac_digits = i - f;
        ok = frac_digits >= 1 && frac_digits <= (size_t)scale;
    }
    if (!ok || i != n) {
        if (scale == 0)
            snprintf(why, S_WHY, "expected decimal with no decimals");
        else
            snprintf(why, S_WHY, "expected decimal with at most %d decimals", scale);
        return -1;
    }
    /* The magnitude scaled: at most 15 + 6 digits, which may overflow 64 bits. */
    uint64_t mag = 0;
    bool over = false;
    for (size_t k = int_start; k < n; k++) {
        if (s[k] == '.')
            continue;
        over |= __builtin_mul_overflow(mag, 10, &mag);
        over |= __builtin_add_overflow(mag, (uint64_t)(s[k] - '0'), &mag);
    }
    for (size_t k = frac_digits; k < (size_t)scale; k++)
        over |= __builtin_mul_overflow(mag, 10, &mag);
    if (neg && mag == 0) {
        snprintf(why, S_WHY, "negative zero");
        return -1;
    }
    int64_t x = 0;
    if (!over && !neg && mag <= INT64_MAX)
        x = (int64_t)mag;
    else if (!over && neg && mag <= (uint64_t)INT64_MAX + 1)
        x = (int64_t)(0 - mag);
    else
        over = true;
    if (over || x < min || x > max) {
        char a[32], b[32];
        s_fmt_decimal(min, scale, a);
        s_fmt_decimal(max, scale, b);
        snprintf(why, S_WHY, "must be between %s and %s", a, b);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---- Map readers --------------------------------------------------------------------- */

static const msgpack_object *
s_find(const msgpack_object *map, const char *key, size_t key_len)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->via.str.size == key_len &&
            (key_len == 0 || memcmp(k->via.str.ptr, key, key_len) == 0))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int
s_fail_key(const evmsg_map_t *m, const char *key, const char *why)
{
    if (m->err && m->err->reason[0] == '\0') {
        char path[EVMSG_PATH_MAX];
        s_path_key(path, m->path, key, strlen(key));
        s_fail_path(m->err, path, "%s", why);
    }
    return -1;
}

/* Finds key in m: 1 with *val set (never nil), 0 absent and allowed, -1 failed. */
static int
s_lookup(const evmsg_map_t *m, const char *key, int flags, const msgpack_object **val)
{
    assert(m && key);
    if (m->state < 0)
        return -1;
    if (m->state == 0 || !m->obj)
        return 0;
    const msgpack_object *v = s_find(m->obj, key, strlen(key));
    if (!v || v->type == MSGPACK_OBJECT_NIL)
        return (flags & EVMSG_OPTIONAL) ? 0 : s_fail_key(m, key, "missing");
    *val = v;
    return 1;
}

int
evmsg_map_strp(const evmsg_map_t *m, const char *key, int flags, size_t max_bytes, const char **ptr,
               size_t *len)
{
    assert(ptr && len);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    char why[S_WHY];
    if (s_check_str(v, flags, max_bytes, why) < 0)
        return s_fail_key(m, key, why);
    /* msgpack-c leaves ptr NULL for "": callers get a real empty string */
    *ptr = v->via.str.size ? v->via.str.ptr : "";
    *len = v->via.str.size;
    return 1;
}

int
evmsg_map_str(const evmsg_map_t *m, const char *key, int flags, size_t max_bytes, char *buf)
{
    assert(buf);
    const char *p;
    size_t n;
    int rc = evmsg_map_strp(m, key, flags, max_bytes, &p, &n);
    if (rc == 1) {
        if (n)
            memcpy(buf, p, n);
        buf[n] = '\0';
    }
    return rc;
}

int
evmsg_map_int(const evmsg_map_t *m, const char *key, int flags, int64_t min, int64_t max,
              int64_t *out)
{
    assert(out && min <= max);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    char why[S_WHY];
    if (s_check_int(v, min, max, out, why) < 0)
        return s_fail_key(m, key, why);
    return 1;
}

int
evmsg_map_uint(const evmsg_map_t *m, const char *key, int flags, uint64_t max, uint64_t *out)
{
    assert(out);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    char why[S_WHY];
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_fail_key(m, key, "expected unsigned integer");
    if (v->via.u64 > max) {
        snprintf(why, sizeof why, "must be at most %" PRIu64, max);
        return s_fail_key(m, key, why);
    }
    *out = v->via.u64;
    return 1;
}

int
evmsg_map_bool(const evmsg_map_t *m, const char *key, int flags, bool *out)
{
    assert(out);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return s_fail_key(m, key, "expected boolean");
    *out = v->via.boolean;
    return 1;
}

int
evmsg_map_enum(const evmsg_map_t *m, const char *key, int flags, const char *const names[],
               int *out)
{
    assert(names && out);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    if (v->type == MSGPACK_OBJECT_STR)
        for (int i = 0; names[i]; i++)
            if (strlen(names[i]) == v->via.str.size &&
                (v->via.str.size == 0 || memcmp(names[i], v->via.str.ptr, v->via.str.size) == 0)) {
                *out = i;
                return 1;
            }
    /* "expected one of: a, b, c", cut with "..." where the reason would overflow. */
    char why[S_WHY];
    size_t n = (size_t)snprintf(why, sizeof why, "expected one of: ");
    for (int i = 0; names[i]; i++) {
        size_t k = strlen(names[i]);
        if (n + (i ? 2 : 0) + k + 4 >= sizeof why) {
            memcpy(why + n, "...", 4);
            n += 3;
            break;
        }
        if (i) {
            memcpy(why + n, ", ", 2);
            n += 2;
        }
        memcpy(why + n, names[i], k);
        n += k;
        why[n] = '\0';
    }
    return s_fail_key(m, key, why);
}

int
evmsg_map_decimal(const evmsg_map_t *m, const char *key, int flags, int scale, int64_t min,
                  int64_t max, int64_t *out)
{
    assert(out && scale >= 0 && scale <= 6 && min <= max);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    char why[S_WHY];
    if (s_check_decimal(v, scale, min, max, out, why) < 0)
        return s_fail_key(m, key, why);
    return 1;
}

int
evmsg_map_date(const evmsg_map_t *m, const char *key, int flags, date_t *out)
{
    assert(out);
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc <= 0)
        return rc;
    if (v->type != MSGPACK_OBJECT_STR)
        return s_fail_key(m, key, "expected string");
    const char *why = NULL;
    if (date_parse(v->via.str.ptr, v->via.str.size, out, &why) < 0)
        return s_fail_key(m, key, why ? why : "expected YYYY-MM-DD");
    return 1;
}

int
evmsg_map_map(const evmsg_map_t *m, const char *key, int flags, evmsg_map_t *out)
{
    assert(m && key && out);
    evmsg_map_t r = {.err = m->err, .state = -1};
    s_path_key(r.path, m->path, key, strlen(key));
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc == 1 && v->type != MSGPACK_OBJECT_MAP)
        rc = s_fail_key(m, key, "expected map");
    if (rc == 1)
        r.obj = v;
    r.state = rc;
    *out = r;
    return rc;
}

int
evmsg_map_array(const evmsg_map_t *m, const char *key, int flags, size_t max_count,
                evmsg_array_t *out)
{
    assert(m && key && out);
    evmsg_array_t r = {.err = m->err, .state = -1};
    s_path_key(r.path, m->path, key, strlen(key));
    const msgpack_object *v;
    int rc = s_lookup(m, key, flags, &v);
    if (rc == 1 && v->type != MSGPACK_OBJECT_ARRAY)
        rc = s_fail_key(m, key, "expected array");
    if (rc == 1 && v->via.array.size > max_count) {
        char why[S_WHY];
        snprintf(why, sizeof why, "more than %zu elements", max_count);
        rc = s_fail_key(m, key, why);
    }
    if (rc == 1)
        r.obj = v;
    r.state = rc;
    *out = r;
    return rc;
}

int
evmsg_map_only(const evmsg_map_t *m, const char *const allowed[])
{
    assert(m && allowed);
    if (m->state < 0)
        return -1;
    if (m->state == 0 || !m->obj)
        return 0;
    for (uint32_t i = 0; i < m->obj->via.map.size; i++) {
        const msgpack_object_str *k = &m->obj->via.map.ptr[i].key.via.str;
        bool known = false;
        for (int j = 0; allowed[j] && !known; j++)
            known = strlen(allowed[j]) == k->size &&
                    (k->size == 0 || memcmp(allowed[j], k->ptr, k->size) == 0);
        if (!known) {
            char path[EVMSG_PATH_MAX];
            s_path_key(path, m->path, k->ptr, k->size);
            return s_fail_path(m->err, path, "unknown key");
        }
    }
    return 0;
}

size_t
evmsg_map_count(const evmsg_map_t *m)
{
    assert(m);
    return m->state == 1 && m->obj ? m->obj->via.map.size : 0;
}

void
evmsg_map_key_at(const evmsg_map_t *m, size_t i, const char **key, size_t *len)
{
    assert(key && len && i < evmsg_map_count(m));
    const msgpack_object_str *k = &m->obj->via.map.ptr[i].key.via.str;
    *key = k->size ? k->ptr : "";
    *len = k->size;
}

/* ---- Array readers ------------------------------------------------------------------- */

size_t
evmsg_array_count(const evmsg_array_t *a)
{
    assert(a);
    return a->state == 1 && a->obj ? a->obj->via.array.size : 0;
}

static int
s_fail_at(const evmsg_array_t *a, size_t i, const char *why)
{
    if (a->err && a->err->reason[0] == '\0') {
        char path[EVMSG_PATH_MAX];
        s_path_index(path, a->path, i);
        s_fail_path(a->err, path, "%s", why);
    }
    return -1;
}

int
evmsg_array_map_at(const evmsg_array_t *a, size_t i, evmsg_map_t *out)
{
    assert(out && i < evmsg_array_count(a));
    evmsg_map_t r = {.err = a->err, .state = -1};
    s_path_index(r.path, a->path, i);
    const msgpack_object *v = &a->obj->via.array.ptr[i];
    if (v->type != MSGPACK_OBJECT_MAP) {
        *out = r;
        return s_fail_at(a, i, "expected map");
    }
    r.obj = v;
    r.state = 1;
    *out = r;
    return 1;
}

int
evmsg_array_str_at(const evmsg_array_t *a, size_t i, int flags, size_t max_bytes, char *buf)
{
    assert(buf && i < evmsg_array_count(a));
    const msgpack_object *v = &a->obj->via.array.ptr[i];
    char why[S_WHY];
    if (s_check_str(v, flags, max_bytes, why) < 0)
        return s_fail_at(a, i, why);
    if (v->via.str.size)
        memcpy(buf, v->via.str.ptr, v->via.str.size);
    buf[v->via.str.size] = '\0';
    return 1;
}

int
evmsg_array_int_at(const evmsg_array_t *a, size_t i, int64_t min, int64_t max, int64_t *out)
{
    assert(out && min <= max && i < evmsg_array_count(a));
    char why[S_WHY];
    if (s_check_int(&a->obj->via.array.ptr[i], min, max, out, why) < 0)
        return s_fail_at(a, i, why);
    return 1;
}

/* ---- Topics -------------------------------------------------------------------------- */

static bool
s_is_lower_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* GB 32100: digits and capitals without I, O, S, V, Z. */
static bool
s_is_uscc_char(char c)
{
    return (c >= '0' && c <= '9') ||
           (c >= 'A' && c <= 'Z' && c != 'I' && c != 'O' && c != 'S' && c != 'V' && c != 'Z');
}

bool
evmsg_src_valid(const char *name, size_t len)
{
    if (!name || len < 1 || len > EVMSG_SRC_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++)
        if (!s_is_lower_digit(name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

int
evmsg_topic_check(const char *topic, size_t len, char *agency_out, evmsg_err_t *err)
{
    assert(topic || len == 0);
    if (len == 0)
        return s_fail_path(err, "topic", "empty");
    if (len > EVMSG_TOPIC_MAX)
        return s_fail_path(err, "topic", "longer than %d bytes", EVMSG_TOPIC_MAX);
    if (topic[0] == '_')
        return s_fail_path(err, "topic", "a system topic, not an event topic");
    if (len < EVMSG_AGENCY_LEN + 2 || topic[len - EVMSG_AGENCY_LEN - 1] != '.')
        return s_fail_path(err, "topic", "expected <event>.<agency-code>");
    size_t ev_len = len - EVMSG_AGENCY_LEN - 1;
    if (topic[0] < 'a' || topic[0] > 'z')
        return s_fail_path(err, "topic", "event must start with a lowercase letter");
    for (size_t i = 0; i < ev_len; i++) {
        char c = topic[i];
        if (c == '.') {
            if (i + 1 == ev_len || topic[i + 1] == '.')
                return s_fail_path(err, "topic", "empty event segment at byte %zu", i + 1);
        } else if (!s_is_lower_digit(c) && c != '_') {
            return s_fail_path(err, "topic", "byte 0x%02x at %zu not allowed in an event name",
                               (unsigned char)c, i);
        }
    }
    const char *code = topic + ev_len + 1;
    for (size_t i = 0; i < EVMSG_AGENCY_LEN; i++)
        if (!s_is_uscc_char(code[i]))
            return s_fail_path(err, "topic",
                               "agency code: byte 0x%02x at %zu not in the GB 32100 charset",
                               (unsigned char)code[i], i);
    if (agency_out) {
        memcpy(agency_out, code, EVMSG_AGENCY_LEN);
        agency_out[EVMSG_AGENCY_LEN] = '\0';
    }
    return 0;
}

bool
evmsg_topic_is_system(const char *topic, size_t len)
{
    if (!topic || len < 2 || len > EVMSG_TOPIC_MAX || topic[0] != '_')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = topic[i];
        if (c == '.') {
            if (i + 1 == len || topic[i + 1] == '.')
                return false;
        } else if (!s_is_lower_digit(c) && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}
