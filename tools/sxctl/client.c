/* client: the sxctl verbs' shared client setup (client.h). */
#include "client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <zmq.h>

#include "sxctl.h"

int
sxctl_keys_default(const char *verb, const char **key_file, const char **server_key,
                   const char *server_env, const char *server_what)
{
    if (!*key_file)
        *key_file = getenv("SX_KEY_FILE");
    if (!*server_key)
        *server_key = getenv(server_env);
    if (!*key_file || !**key_file)
        return sxctl_usage(verb, "no key pair: give --key KEYFILE or set SX_KEY_FILE");
    if (!*server_key || !**server_key)
        return sxctl_usage(verb, "no %s: give --server-key or set %s", server_what, server_env);
    return SXCTL_OK;
}

int
sxctl_keys_read(const char *verb, const char *key_file, const char *server_key,
                const char *server_what, sxctl_keys_t *k)
{
    char err[512];
    if (keys_read_pair(key_file, k->pub, k->sec, err, sizeof err) < 0)
        return sxctl_usage(verb, "key pair: %s", err);
    if (keys_z85_valid(server_key))
        memcpy(k->srv, server_key, sizeof k->srv);
    else if (keys_read_public(server_key, k->srv, err, sizeof err) < 0)
        return sxctl_usage(verb, "%s: not a Z85 key, and as a file: %s", server_what, err);
    return SXCTL_OK;
}

int
sxctl_fresh_rid(const char *prefix, size_t nbytes, char out[RPC_RID_MAX + 1])
{
    unsigned char r[32];
    if (nbytes > sizeof r)
        nbytes = sizeof r;
    if (getrandom(r, nbytes, 0) != (ssize_t)nbytes)
        return -1;
    int n = snprintf(out, RPC_RID_MAX + 1, "%s", prefix);
    for (size_t i = 0; i < nbytes && n < RPC_RID_MAX; i++)
        n += snprintf(out + n, (size_t)(RPC_RID_MAX + 1 - n), "%02x", r[i]);
    return 0;
}

int
sxctl_client_open(const char *verb, const char *endpoint, sxctl_keys_t *k, sxctl_client_t *c)
{
    char err[512] = "";
    c->ctx = zmq_ctx_new();
    c->rpc =
        c->ctx ? rpc_client_new(c->ctx, endpoint, k->srv, k->pub, k->sec, err, sizeof err) : NULL;
    explicit_bzero(k->sec, sizeof k->sec);
    if (!c->rpc) {
        bool had_ctx = c->ctx != NULL;
        sxctl_client_close(c);
        return sxctl_fail(verb, "%s: %s", endpoint, had_ctx ? err : "no ZeroMQ context");
    }
    return SXCTL_OK;
}

void
sxctl_client_close(sxctl_client_t *c)
{
    rpc_client_destroy(&c->rpc);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    c->ctx = NULL;
}
