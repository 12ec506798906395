/* portal: the public JSON API (libmicrohttpd). Only published records are reachable;
 * parameters are validated by query.h alone.
 *
 *   GET /api/v1/decisions?party=&uscc=&agency=&type=&from=&to=&page=&size=
 *       200 {page, size, total, items: [record + id, published_at]}
 *   GET /api/v1/decisions/<id>
 *       200 record + id, published_at; 410 {error: "withdrawn", kind, reason,
 *       withdrawn_on} for a published decision since withdrawn; 404 for anything else
 *   GET /api/v1/agencies/<code>
 *       200 {code, agency: its entry, lists: {officer: [...], matter: [...], ...}}
 *   GET /api/v1/statistics?agency=&year=&half=
 *       200 {agency, period {from, to}, by_type: {type: {decisions, published, on_time,
 *       late, overdue, withdrawn, pending, fines, confiscations}}} for a closed period
 *   GET /api/v1/officers?cert_no=
 *       200 {cert_no, status: valid | expired | unknown, name, agency, area, validity}
 *   400 {error: "bad_parameter", parameter, reason}; 404 {error: "not_found"};
 *   405 for methods other than GET and HEAD.
 * Every 200 has a strong ETag (FNV-1a 64 of the body) and answers If-None-Match with
 * 304; Cache-Control: public, max-age=60 (search), 300 (a decision, a 410). */
#ifndef SX_PUB_PORTAL_H
#define SX_PUB_PORTAL_H

#include <stddef.h>

typedef struct portal portal_t;

/* Starts the portal on bind_addr (IPv4 dotted quad) and port (0: any free one), with
 * its own PostgreSQL connection to pg_url (used by the portal's one thread). Returns
 * NULL with the reason in err. */
portal_t *portal_new(const char *pg_url, const char *bind_addr, int port, char *err, size_t errlen);

/* The port actually bound. */
int portal_port(const portal_t *self);

/* Stops the listener and frees everything; sets *self_p to NULL. Idempotent. */
void portal_destroy(portal_t **self_p);

#endif
