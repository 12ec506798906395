/* opsrpc: the operators' ops on creditpush's request door (common/rpc; allowed:
 * svc:sxctl and svc:ops): creditpush.dead_letters, creditpush.retry, creditpush.depth,
 * creditpush.export (the records as pushed, for `sxctl credit export`).
 * schemas/messages/creditpush.md documents them. */
#ifndef SX_CP_OPSRPC_H
#define SX_CP_OPSRPC_H

#include "queue.h"
#include "rpc.h"

/* Registers the ops' statements on db (the door's connection). 0 or -1. */
int opsrpc_prepare(db_t *db);

/* Registers the ops; app->pending is set when a retry queues an item again. 0 or -1. */
int opsrpc_register(rpc_server_t *rpc, queue_app_t *app);

#endif
