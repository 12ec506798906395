/* deliver: libcurl (multi) POST of a signed batch, driven by the service's loop. */
#include "deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <curl/curl.h>
#include <sodium.h>

#include "util.h"

#define S_ANSWER_MAX (1024 * 1024) /* bytes of the platform's answer kept */

struct deliver_s {
    CURLM *multi;            /* runs the POST inside the caller's loop */
    CURL *curl;              /* one handle, reused: the multi keeps the connection alive */
    char *url;               /* the push endpoint */
    char *token;             /* "Authorization: Bearer <token>" header line */
    char *key;               /* HMAC key */
    char *ca_file;           /* CA bundle or NULL */
    long timeout_ms;         /* per request */
    bool busy;               /* a POST is running or its answer not yet collected */
    char *body;              /* the running POST's body (owned) */
    struct curl_slist *hdrs; /* its headers (owned) */
    deliver_answer_t ans;    /* its answer so far */
};

void
deliver_sign(const char *key, const char *body, size_t len, char hex[65])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state h;
    crypto_auth_hmacsha256_init(&h, (const unsigned char *)key, strlen(key));
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&h, mac);
    sodium_bin2hex(hex, 65, mac, sizeof mac);
}

deliver_t *
deliver_new(const deliver_config_t *cfg, char *err, size_t errlen)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        util_errf(err, errlen, "libsodium or libcurl did not start");
        return NULL;
    }
    deliver_t *self = calloc(1, sizeof *self);
    size_t tlen = strlen(cfg->token) + 32;
    if (!self || !(self->multi = curl_multi_init()) || !(self->curl = curl_easy_init()) ||
        !(self->url = strdup(cfg->url)) || !(self->key = strdup(cfg->key)) ||
        !(self->token = malloc(tlen)) ||
        (cfg->ca_file && !(self->ca_file = strdup(cfg->ca_file)))) {
        util_errf(err, errlen, "out of memory");
        deliver_destroy(&self);
        return NULL;
    }
    snprintf(self->token, tlen, "Authorization: Bearer %s", cfg->token);
    self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    return self;
}

/* Ends the running POST (if any) and frees what it held; ans is left to the caller. */
static void
s_end(deliver_t *self)
{
    if (self->busy)
        curl_multi_remove_handle(self->multi, self->curl);
    curl_slist_free_all(self->hdrs);
    self->hdrs = NULL;
    free(self->body);
    self->body = NULL;
    self->busy = false;
}

void
deliver_destroy(deliver_t **self_p)
{
    if (self_p && *self_p) {
        deliver_t *self = *self_p;
        s_end(self);
        deliver_answer_free(&self->ans);
        if (self->curl)
            curl_easy_cleanup(self->curl);
        if (self->multi)
            curl_multi_cleanup(self->multi);
        free(self->url);
        if (self->key)
            sodium_memzero(self->key, strlen(self->key));
        free(self->key);
        if (self->token)
            sodium_memzero(self->token, strlen(self->token));
        free(self->token);
        free(self->ca_file);
        free(self);
        *self_p = NULL;
    }
}

static size_t
s_write(char *p, size_t size, size_t n, void *arg)
{
    deliver_answer_t *ans = arg;
    size_t len = size * n;
    if (ans->len + len > S_ANSWER_MAX)
        return len; /* the rest is dropped; the status is what matters */
    char *b = realloc(ans->body, ans->len + len + 1);
    if (!b)
        return 0;
    memcpy(b + ans->len, p, len);
    ans->body = b;
    ans->len += len;
    b[ans->len] = '\0';
    return len;
}

int
deliver_start(deliver_t *self, char *body, size_t len)
{
    if (self->busy) {
        free(body);
        return -1;
    }
    memset(&self->ans, 0, sizeof self->ans);
    char sig[65], line[96];
    deliver_sign(self->key, body, len, sig);
    snprintf(line, sizeof line, "X-Signature: %s", sig);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *t = h ? curl_slist_append(h, self->token) : NULL;
    t = t ? curl_slist_append(h, line) : NULL;
    t = t ? curl_slist_append(h, "Expect:") : NULL; /* no 100-continue round trip */
    if (!t) {
        curl_slist_free_all(h);
        free(body);
        return -1;
    }
    self->hdrs = h;
    self->body = body;
    CURL *c = self->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, self->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, self->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L); /* never off */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (self->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, self->ca_file);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &self->ans);
    if (curl_multi_add_handle(self->multi, c) != CURLM_OK) {
        s_end(self);
        return -1;
    }
    self->busy = true;
    return 0;
}

bool
deliver_busy(const deliver_t *self)
{
    return self->busy;
}

int
deliver_pollitems(deliver_t *self, zmq_pollitem_t *items, int max)
{
    fd_set r, w, e;
    int maxfd = -1, n = 0;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&e);
    if (!self->busy || curl_multi_fdset(self->multi, &r, &w, &e, &maxfd) != CURLM_OK)
        return 0;
    for (int fd = 0; fd <= maxfd && n < max; fd++) {
        short ev =
            (short)((FD_ISSET(fd, &r) ? ZMQ_POLLIN : 0) | (FD_ISSET(fd, &w) ? ZMQ_POLLOUT : 0) |
                    (FD_ISSET(fd, &e) ? ZMQ_POLLERR : 0));
        if (ev)
            items[n++] = (zmq_pollitem_t){NULL, fd, ev, 0};
    }
    return n;
}

long
deliver_wait_ms(deliver_t *self, long cap)
{
    long t = -1;
    if (!self->busy || curl_multi_timeout(self->multi, &t) != CURLM_OK || t < 0 || t > cap)
        return cap;
    return t;
}

int
deliver_turn(deliver_t *self, deliver_answer_t *ans)
{
    if (!self->busy)
        return -1;
    int running = 0;
    curl_multi_perform(self->multi, &running);
    int left = 0;
    CURLMsg *m;
    bool done = false;
    CURLcode rc = CURLE_OK;
    while ((m = curl_multi_info_read(self->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == self->curl) {
            done = true;
            rc = m->data.result;
        }
    if (!done)
        return 0;
    *ans = self->ans;
    memset(&self->ans, 0, sizeof self->ans);
    if (rc != CURLE_OK) {
        snprintf(ans->error, sizeof ans->error, "%s", curl_easy_strerror(rc));
        ans->status = 0;
    } else {
        curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &ans->status);
    }
    s_end(self);
    return 1;
}

int
deliver_post(deliver_t *self, const char *body, size_t len, deliver_answer_t *ans)
{
    memset(ans, 0, sizeof *ans);
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, body, len);
        copy[len] = '\0';
    }
    if (!copy || deliver_start(self, copy, len) < 0) {
        snprintf(ans->error, sizeof ans->error, "out of memory or busy");
        return -1;
    }
    int rc;
    while ((rc = deliver_turn(self, ans)) == 0)
        curl_multi_poll(self->multi, NULL, 0, (int)deliver_wait_ms(self, 1000), NULL);
    return ans->status ? 0 : -1;
}

void
deliver_answer_free(deliver_answer_t *ans)
{
    if (ans) {
        free(ans->body);
        ans->body = NULL;
        ans->len = 0;
    }
}
