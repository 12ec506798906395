/* deliver: libcurl POST of a signed batch. */
#include "deliver.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "util.h"

#define S_ANSWER_MAX (1024 * 1024) /* bytes of the platform's answer kept */

struct deliver_s {
    CURL *curl;      /* one handle, reused: keeps the connection alive between batches */
    char *url;       /* the push endpoint */
    char *token;     /* "Authorization: Bearer <token>" header line */
    char *key;       /* HMAC key */
    char *ca_file;   /* CA bundle or NULL */
    long timeout_ms; /* per request */
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
    if (!self || !(self->curl = curl_easy_init()) || !(self->url = strdup(cfg->url)) ||
        !(self->key = strdup(cfg->key)) || !(self->token = malloc(tlen)) ||
        (cfg->ca_file && !(self->ca_file = strdup(cfg->ca_file)))) {
        util_errf(err, errlen, "out of memory");
        deliver_destroy(&self);
        return NULL;
    }
    snprintf(self->token, tlen, "Authorization: Bearer %s", cfg->token);
    self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    return self;
}

void
deliver_destroy(deliver_t **self_p)
{
    if (self_p && *self_p) {
        deliver_t *self = *self_p;
        if (self->curl)
            curl_easy_cleanup(self->curl);
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
deliver_post(deliver_t *self, const char *body, size_t len, deliver_answer_t *ans)
{
    memset(ans, 0, sizeof *ans);
    char sig[65], line[96];
    deliver_sign(self->key, body, len, sig);
    snprintf(line, sizeof line, "X-Signature: %s", sig);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = h ? curl_slist_append(h, self->token) : NULL;
    h = h ? curl_slist_append(h, line) : NULL;
    h = h ? curl_slist_append(h, "Expect:") : NULL; /* no 100-continue round trip */
    if (!h) {
        snprintf(ans->error, sizeof ans->error, "out of memory");
        return -1;
    }
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
    curl_easy_setopt(c, CURLOPT_WRITEDATA, ans);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(ans->error, sizeof ans->error, "%s", curl_easy_strerror(rc));
        ans->status = 0;
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ans->status);
    return 0;
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
