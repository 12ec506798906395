/* classified: which roles an agency allows to read its classified records in full
 * (涉密记录: `sensitive` records, 国家秘密 / 商业秘密 / 个人隐私), set by the agency
 * through recording's door.
 *
 *   record.classified_roles.put  (write) replaces the agency's list of roles; names the
 *                                version it replaces (0 the first time), as the registry's
 *                                puts do; dept:<code>:system for its own agency,
 *                                dept:*:legal_office for any
 *   record.classified_roles.get  (read) the list in force, its version and who set it;
 *                                the agency's own identities, the legal office, svc:
 *
 * The list in force is recording.classified_role (what access.c reads at every
 * record.get); every change is kept in recording.classified_role_change (append-only:
 * the list, its version, the identity and rid that set it). legal_office always sees
 * classified records in full, listed or not. Contract: schemas/messages/recording.md. */
#ifndef SX_CLASSIFIED_H
#define SX_CLASSIFIED_H

#include "rpc.h"

#define CLASSIFIED_ROLES_MAX 20 /* roles in one agency's list */
#define CLASSIFIED_ROLE_MAX  32 /* bytes in a role, [a-z_]{1,32} as in dept:<code>:<role> */

/* Registers the two ops on rpc and prepares their statements on db (the rpc server's
 * connection). Returns 0, or -1 (logged). */
int classified_register(rpc_server_t *rpc, db_t *db);

#endif
