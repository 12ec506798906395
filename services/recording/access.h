/* access: supervised retrieval (调阅监督) through recording's rpc door.
 *
 *   record.get         (write: it writes the access log) a case's chain, with a stated
 *                      reason; the agency's own identities and the legal office
 *   record.verify      (read) recomputes the chain and the archive seal and names the
 *                      first entry that does not match; the agency, the legal office, svc:
 *   record.access_log  (read) the access log by case, identity or period; legal office only
 *
 * Every record.get and record.verify, allowed or refused, is written to
 * recording.access_log before its answer is sent (record.get: in the turn's transaction,
 * with the stored reply). Classified records (`sensitive`: 国家秘密/商业秘密/个人隐私)
 * are returned in full only to dept:<code>:legal_office and to the roles the agency
 * lists in recording.classified_role (set by the agency: classified.h); others see the
 * entry's place and hash, redacted.
 * An agency never reads another agency's records (`forbidden`). */
#ifndef SX_ACCESS_H
#define SX_ACCESS_H

#include "rpc.h"
#include "recording.h"

/* Registers the three ops on rpc; app (borrowed) holds the seal key for verify. Prepares
 * the statements on db (the rpc server's connection). Returns 0, or -1 (logged). */
int access_register(rpc_server_t *rpc, db_t *db, recording_t *app);

#endif
