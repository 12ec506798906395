/* sx-publication (执法公示): what its parts share. */
#ifndef SX_PUBLICATION_H
#define SX_PUBLICATION_H

#include "ops.h"
#include "workday.h"

#define PUB_SCHEMA    "publication" /* its Postgres schema, and the stream it produces */
#define PUB_STREAM    "publication"
#define INTAKE_STREAM "intake"

/* Shared by the parts of one process; borrowed. */
typedef struct {
    const workday_t *cal; /* the working-day calendar */
    ops_t *ops;           /* metrics (may be NULL in tests) */
} publication_t;

#endif
