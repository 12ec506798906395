/* zsock: ZeroMQ sockets made the one way every service makes them (see zsock.h). */
#include "zsock.h"
#include "util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "keys.h"

/* A draft option in libzmq 4.3 headers, present in the library Debian ships. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static int
s_set(void *s, int opt, const char *name, const void *v, size_t len, char *err, size_t errlen)
{
    if (zmq_setsockopt(s, opt, v, len) == 0)
        return 0;
    util_errf(err, errlen, "%s: %s", name, zmq_strerror(zmq_errno()));
    return -1;
}

#define S_SET(s, opt, v) s_set((s), (opt), #opt, &(v), sizeof(v), err, errlen)

/* A socket of type with limits applied; NULL with the reason in err. */
static void *
s_new(void *ctx, int type, const zsock_limits_t *limits, char *err, size_t errlen)
{
    const zsock_limits_t *l = limits;
    if (!l || l->linger_ms < 0 || l->sndhwm <= 0 || l->rcvhwm <= 0 || l->maxmsgsize <= 0) {
        util_errf(err, errlen, "limits: linger must be >= 0, HWMs and maxmsgsize > 0");
        return NULL;
    }
    void *s = zmq_socket(ctx, type);
    if (!s) {
        util_errf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    if (S_SET(s, ZMQ_LINGER, l->linger_ms) || S_SET(s, ZMQ_SNDHWM, l->sndhwm) ||
        S_SET(s, ZMQ_RCVHWM, l->rcvhwm) || S_SET(s, ZMQ_MAXMSGSIZE, l->maxmsgsize)) {
        zsock_close(&s);
        return NULL;
    }
    return s;
}

static int
s_set_key(void *s, int opt, const char *name, const char *z85, char *err, size_t errlen)
{
    if (!keys_z85_valid(z85)) {
        util_errf(err, errlen, "%s: not a 40-character Z85 key", name);
        return -1;
    }
    return s_set(s, opt, name, z85, KEYS_Z85_LEN, err, errlen);
}

void *
zsock_server(void *ctx, int type, const zap_t *zap, const char *domain, const char *secret_z85,
             const zsock_limits_t *limits, char *err, size_t errlen)
{
    assert(zap); /* the handler must exist before any server socket */
    if (!domain || !*domain) {
        util_errf(err, errlen, "a CURVE server needs a ZAP domain");
        return NULL;
    }
    void *s = s_new(ctx, type, limits, err, errlen);
    if (!s)
        return NULL;
    int one = 1;
    if (S_SET(s, ZMQ_CURVE_SERVER, one) ||
        s_set_key(s, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", secret_z85, err, errlen) ||
        s_set(s, ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", domain, strlen(domain), err, errlen) ||
        S_SET(s, ZMQ_ZAP_ENFORCE_DOMAIN, one))
        zsock_close(&s);
    return s;
}

void *
zsock_client(void *ctx, int type, const char *server_public_z85, const char *public_z85,
             const char *secret_z85, const zsock_limits_t *limits, char *err, size_t errlen)
{
    void *s = s_new(ctx, type, limits, err, errlen);
    if (!s)
        return NULL;
    if (s_set_key(s, ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", server_public_z85, err, errlen) ||
        s_set_key(s, ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", public_z85, err, errlen) ||
        s_set_key(s, ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", secret_z85, err, errlen))
        zsock_close(&s);
    return s;
}

void *
zsock_plain(void *ctx, int type, const zsock_limits_t *limits, char *err, size_t errlen)
{
    return s_new(ctx, type, limits, err, errlen);
}

int
zsock_bind(void *sock, const char *endpoint, char *err, size_t errlen)
{
    if (zmq_bind(sock, endpoint) == 0)
        return 0;
    util_errf(err, errlen, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return -1;
}

int
zsock_connect(void *sock, const char *endpoint, char *err, size_t errlen)
{
    if (zmq_connect(sock, endpoint) == 0)
        return 0;
    util_errf(err, errlen, "connect %s: %s", endpoint, zmq_strerror(zmq_errno()));
    return -1;
}

int
zsock_endpoint(void *sock, char *buf, size_t size)
{
    size_t len = size;
    return zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len) == 0 ? 0 : -1;
}

void
zsock_close(void **sock_p)
{
    if (sock_p && *sock_p) {
        zmq_close(*sock_p);
        *sock_p = NULL;
    }
}
