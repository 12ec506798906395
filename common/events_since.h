/* events_since: the rpc op `events.since` of every service that produces events
 * (schemas/messages/rpc.md, "events.since" is the contract).
 *
 * A department subscribes to its topics through the broker (PUB/SUB): what is published
 * while it is disconnected, or while the broker restarts, never reaches it. The service's
 * outbox (schemas/sql/bus/001_bus.sql) keeps every event with its per-agency sequence
 * `aseq`, so a department that sees a gap in aseq (or comes back after downtime) re-reads
 * its own events from the producer's door:
 *
 *   events_since_register(rpc, "review", EVENTS_SINCE_ALLOW);
 *
 * What it returns: the sequenced rows of <schema>.outbox whose agency is the caller's
 * (rpc_req_agency: the agency of a dept identity; the legal office reads its own code's
 * rows, like everyone), with aseq > `from`, in aseq order, at most `limit`
 * (1..EVENTS_SINCE_MAX) and at most what fits in one reply (RPC_RESULT_MAX), with `more`
 * when the caller should ask again from `last_aseq`. Rows the relay has not sequenced yet
 * (aseq NULL) are never returned. */
#ifndef SX_EVENTS_SINCE_H
#define SX_EVENTS_SINCE_H

#include "rpc.h"

#define EVENTS_SINCE_OP  "events.since"
#define EVENTS_SINCE_MAX 1000 /* events per reply, the default and the most `limit` takes */

/* Who may call it on the doors of recording, review and publication: an agency's
 * case-handling system, and the legal office (its own agency's rows only). */
#define EVENTS_SINCE_ALLOW "dept:*:system dept:*:legal_office"

/* Registers `events.since` (RPC_READ) on rpc, reading <schema>.outbox (schema: the
 * service's own, [a-z_][a-z0-9_]{0,62}, a string that outlives the server, e.g. a
 * literal), callable by the identities in allow (rpc_op_t.allow). A caller without an
 * agency (an svc: identity an allow pattern let in) is answered `forbidden`. Returns 0,
 * or -1 (logged) when rpc_register refuses or schema is malformed. */
int events_since_register(rpc_server_t *rpc, const char *schema, const char *allow);

#endif
