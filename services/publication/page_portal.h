/* page_portal: the portal's HTML pages in Chinese (执法公示平台), rendered on the server
 * from the same JSON the API serves, readable without script, every value escaped
 * (html.h). portal.c fetches and decides the status; these only write the page.
 *
 *   page_search    GET /                   执法公示查询: the form and a page of results
 *   page_decision  GET /decisions/<id>     one published decision (事后公开)
 *   page_withdrawn (404 of the above)      a withdrawn decision: no content, the reason
 *   page_agency    GET /agencies/<code>    事前公开: the agency and its lists
 *   page_officer   GET /officers[?cert_no] 事中公示: the certificate check
 *
 * Each returns a new NUL-terminated page (the caller frees it) or NULL when out of memory. */
#ifndef SX_PUB_PAGE_PORTAL_H
#define SX_PUB_PAGE_PORTAL_H

#include <jansson.h>

#include "query.h"

/* The search page. q: the validated search (its values fill the form back in; NULL for
 * an empty form); agencies: [{code, name}] for the agency choice (may be NULL); result:
 * the API's {page, size, total, items} (NULL: no results shown); error_zh: a message
 * shown above the form (the 400 of a bad parameter), or NULL. */
char *page_search(const query_search_t *q, const json_t *agencies, const json_t *result,
                  const char *error_zh);

/* A published decision: rec is the public record + id, published_at (the API's 200). */
char *page_decision(const json_t *rec);

/* A decision no longer published because it was withdrawn (撤回, 行政处罚法 2021 art. 48):
 * its number, the kind (revoke, confirm_illegal, change, invalid), the reason and the day,
 * and nothing of its content. */
char *page_withdrawn(const char *id, const char *kind, const char *reason,
                     const char *withdrawn_on);

/* The agency page: doc is the API's {code, agency, lists}; today (YYYY-MM-DD, China time)
 * decides which certificates are shown as valid. */
char *page_agency(const json_t *doc, const char *today);

/* The certificate check: cert NULL shows the form only; else result is the API's
 * {cert_no, status, ...}. error_zh (or NULL) is shown above the form (a 400). */
char *page_officer(const char *cert, const json_t *result, const char *error_zh);

/* The Chinese of a withdrawal kind (revoke -> 撤销 ...), or kind itself. */
const char *page_withdraw_kind_zh(const char *kind);

#endif
