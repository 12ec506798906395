/* settings: per-agency review settings the legal office (司法局) keeps: how many working
 * days a review may take (review.agency.review_days, default REVIEW_DAYS_DEFAULT), op
 * `review.days.set` (schemas/messages/review.md). A task takes the days its agency has
 * when it opens (events.c); tasks already open keep their due dates. */
#ifndef SX_REVIEW_SETTINGS_H
#define SX_REVIEW_SETTINGS_H

#include "review.h"

#define SETTINGS_DAYS_MIN 1
#define SETTINGS_DAYS_MAX 60 /* as the column's CHECK */

/* Prepares the statements of the op on db (the rpc server's). Returns 0 or -1. */
int settings_prepare(db_t *db);

/* Registers review.days.set (write): the pool agency's legal office, or an svc operator.
 * Returns 0, or -1 (logged) when it could not be registered. */
int settings_register(rpc_server_t *rpc, review_t *app);

#endif
