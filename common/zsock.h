/* zsock: ZeroMQ sockets made the one way every service makes them.
 *
 * Every socket gets ZMQ_LINGER, ZMQ_SNDHWM, ZMQ_RCVHWM and ZMQ_MAXMSGSIZE from a
 * zsock_limits_t, so none is left at a libzmq default by accident. MAXMSGSIZE is set on
 * every socket (it only matters on the receiving ones, and a PUB that never reads is
 * harmless): a peer that sends a larger frame is disconnected by libzmq, the frame never
 * reaches the application.
 *
 * A CURVE server takes the zap_t, so it cannot be made before the ZAP handler is bound,
 * and sets ZMQ_ZAP_DOMAIN and ZMQ_ZAP_ENFORCE_DOMAIN (libzmq then refuses every
 * connection when no handler answers, instead of admitting it).
 *
 * Sockets are libzmq's: not thread-safe, used from one thread at a time. */
#ifndef SX_ZSOCK_H
#define SX_ZSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "zap.h"

/* The system's message limit: a 64 KiB envelope plus a topic of at most 128 bytes. */
#define ZSOCK_TOPIC_MAX  128
#define ZSOCK_MAXMSGSIZE (65536 + ZSOCK_TOPIC_MAX)

typedef struct {
    int linger_ms;      /* ZMQ_LINGER: how long close waits for unsent messages */
    int sndhwm;         /* ZMQ_SNDHWM, messages (0 would mean unlimited: refused) */
    int rcvhwm;         /* ZMQ_RCVHWM, messages (0 refused likewise) */
    int64_t maxmsgsize; /* ZMQ_MAXMSGSIZE, bytes per frame; must be > 0 */
} zsock_limits_t;

/* linger 1 s, HWM 10,000 each way, MAXMSGSIZE = ZSOCK_MAXMSGSIZE. */
#define ZSOCK_LIMITS_DEFAULT ((zsock_limits_t){1000, 10000, 10000, ZSOCK_MAXMSGSIZE})

/* A CURVE server socket of type (ZMQ_ROUTER, ZMQ_XPUB, ...) with secret_z85 (40 Z85
 * characters) as its secret key, authenticated by zap on ZAP domain `domain`
 * (non-empty; register its policy with zap_allow). Not bound: see zsock_bind.
 * Returns the socket (close it with zsock_close), or NULL with the reason in err. */
void *zsock_server(void *ctx, int type, const zap_t *zap, const char *domain,
                   const char *secret_z85, const zsock_limits_t *limits, char *err, size_t errlen);

/* A CURVE client socket of type with the server's public key and its own key pair (Z85).
 * Not connected: see zsock_connect. Returns the socket, or NULL with the reason in err. */
void *zsock_client(void *ctx, int type, const char *server_public_z85, const char *public_z85,
                   const char *secret_z85, const zsock_limits_t *limits, char *err, size_t errlen);

/* A socket without CURVE, for inproc plumbing inside one process only (never bind or
 * connect it over tcp). Same limits. Returns the socket, or NULL with the reason in err. */
void *zsock_plain(void *ctx, int type, const zsock_limits_t *limits, char *err, size_t errlen);

/* zmq_bind / zmq_connect with the endpoint and libzmq's reason in err. Returns 0 or -1. */
int zsock_bind(void *sock, const char *endpoint, char *err, size_t errlen);
int zsock_connect(void *sock, const char *endpoint, char *err, size_t errlen);

/* The endpoint a socket is bound to last (resolves "tcp://127.0.0.1:*" to the real port)
 * into buf. Returns 0, or -1. */
int zsock_endpoint(void *sock, char *buf, size_t size);

/* Closes the socket (its linger applies) and sets *sock_p to NULL. Idempotent. */
void zsock_close(void **sock_p);

#endif
