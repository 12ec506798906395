/* client: what the sxctl verbs that talk to a service share — the key options' defaults
 * from the environment, the key pair and the server's key, a fresh rid, and the CURVE
 * request client (rpc.h) with its ZeroMQ context.
 *
 *   sxctl_keys_t k;
 *   sxctl_client_t c;
 *   if ((rc = sxctl_keys_read("call", key_file, server_key, "server key", &k)) != SXCTL_OK ||
 *       (rc = sxctl_client_open("call", endpoint, &k, &c)) != SXCTL_OK)
 *       return rc;
 *   rpc_call(c.rpc, ...);
 *   sxctl_client_close(&c);
 */
#ifndef SX_SXCTL_CLIENT_H
#define SX_SXCTL_CLIENT_H

#include <stddef.h>

#include "keys.h"
#include "rpc.h"

/* This client's key pair and the server's public key, Z85. */
typedef struct {
    char pub[KEYS_Z85_LEN + 1], sec[KEYS_Z85_LEN + 1];
    char srv[KEYS_Z85_LEN + 1];
} sxctl_keys_t;

/* A ZeroMQ context and a request client on it. */
typedef struct {
    void *ctx;
    rpc_client_t *rpc;
} sxctl_client_t;

/* Fills the options not given from the environment: *key_file from SX_KEY_FILE,
 * *server_key from server_env. Returns SXCTL_OK, or SXCTL_USAGE after printing which is
 * missing ("no key pair: ...", "no <server_what>: give --server-key or set <server_env>"). */
int sxctl_keys_default(const char *verb, const char **key_file, const char **server_key,
                       const char *server_env, const char *server_what);

/* Reads the key pair from key_file and the server's key, given as 40 Z85 characters or
 * as a .pub/.key file, into *k. Returns SXCTL_OK, or SXCTL_USAGE after printing why
 * ("key pair: ...", "<server_what>: not a Z85 key, and as a file: ..."). */
int sxctl_keys_read(const char *verb, const char *key_file, const char *server_key,
                    const char *server_what, sxctl_keys_t *k);

/* Writes prefix and 2 * nbytes random hex digits into out. Returns 0, or -1 when the
 * system has no randomness to give (errno set). */
int sxctl_fresh_rid(const char *prefix, size_t nbytes, char out[RPC_RID_MAX + 1]);

/* Opens a context and a CURVE request client to endpoint with k's keys, then wipes
 * k->sec. Returns SXCTL_OK, or SXCTL_FAIL after printing "<endpoint>: <why>" with *c
 * left closed. */
int sxctl_client_open(const char *verb, const char *endpoint, sxctl_keys_t *k, sxctl_client_t *c);

/* Destroys the client and terminates the context. Idempotent. */
void sxctl_client_close(sxctl_client_t *c);

#endif
