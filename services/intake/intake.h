/* intake: the department gateway (sx-intake). What its parts share.
 *
 * main.c reads the settings, wires the sockets and runs the loop; each part registers its
 * ops on the rpc server and keeps its logic in its own file:
 *   registry.c       the five lists (五个清单) and what they rest on        registry_register
 *   case_ops.c       the life of a case: open, record, propose, decide ...  case_ops_register
 *   case_state.c     which op may act in which state (pure)
 *   decision_gate.c  the legal-review gate on case.decide (follows review.* events)
 *   deadlines.c      statutory time limits as timers, warning and overdue events
 *
 * Identities (the ZAP User-Id of the caller's CURVE key, see deploy/keys/README.md):
 *   dept:<code>:system        the agency's case-handling system: its own cases and lists
 *   dept:<code>:legal_office  the city legal office (司法局): every agency's lists
 *   svc:<name>                sanxiang services and sxctl operators
 * An agency never reads or touches another agency's case: refused (`forbidden`), logged,
 * nothing written.
 *
 * Events leave through the outbox of schema "intake" (common/bus), topics
 * `<event>.<agency code>`: registry.<list>.<code>, case.opened.<code>, ... (see
 * schemas/messages/intake/). */
#ifndef SX_INTAKE_H
#define SX_INTAKE_H

#include "db.h"
#include "ops.h"
#include "rpc.h"
#include "timer.h"
#include "workday.h"

#define INTAKE_SCHEMA  "intake"
#define INTAKE_STREAM  "intake"
#define INTAKE_EVENT_V 1 /* schema version of every event's data */

/* The service's shared state: built by main.c, borrowed by the parts. */
typedef struct {
    const workday_t *calendar; /* the official working-day calendar */
    timers_t *timers;          /* deadline timers (Redis); may be NULL in tests */
    ops_t *ops;                /* metrics; may be NULL in tests */
} intake_t;

/* Each part registers its ops on rpc (and its metrics on app->ops when set). Return 0,
 * or -1 (logged) when an op could not be registered. */
int registry_register(rpc_server_t *rpc, intake_t *app);
int case_ops_register(rpc_server_t *rpc, intake_t *app);

#endif
