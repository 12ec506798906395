/* drafts: the publisher's work list (专人审查), the rpc op `publication.drafts`
 * (schemas/messages/publication.md is the contract).
 *
 * The agency's drafts awaiting approval, and its rejected records awaiting correction
 * and resubmission (退回后更正重新提交), by id, paged: each with its id, case, type,
 * decision number and date, due date (due_on: 7 or 20 working days), whether it is late
 * (China time today is past due_on) and the reason of its last rejection, if any.
 *
 * Who: `dept:<code>:publisher` (the agency's designated publisher, who approves) and
 * `dept:<code>:system` (its case-handling system), for agency <code> only: the list is
 * read with the caller's agency, so another agency's records are never in it. */
#ifndef SX_PUBLICATION_DRAFTS_H
#define SX_PUBLICATION_DRAFTS_H

#include "publication.h"
#include "rpc.h"

#define DRAFTS_ALLOW     "dept:*:publisher dept:*:system"
#define DRAFTS_LIMIT_MAX 500 /* items per page */
#define DRAFTS_LIMIT_DEF 100

/* Registers `publication.drafts` (RPC_READ) on rpc; app is borrowed. Its statement is
 * prepared on the door's connection at first use. Returns 0, or -1 (logged) when
 * rpc_register refuses. */
int drafts_register(rpc_server_t *rpc, publication_t *app);

#endif
