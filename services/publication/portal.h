/* portal: the public portal (执法公示平台, libmicrohttpd): a JSON API under /api/v1/ and the
 * same data as Chinese HTML pages, rendered on the server (page_portal.h, html.h), usable
 * without script. Only published records are reachable; parameters are validated by
 * query.h alone, the same for JSON and HTML.
 *
 * JSON:
 *   GET /api/v1/decisions?party=&uscc=&agency=&type=&from=&to=&page=&size=
 *       200 {page, size, total, items: [record + id, published_at]}
 *   GET /api/v1/decisions/<id>
 *       200 record + id, published_at; 410 {error: "withdrawn", kind, reason,
 *       withdrawn_on} for a published decision since withdrawn; 404 for anything else
 *   GET /api/v1/agencies/<code>
 *       200 {code, agency: its entry, lists: {officer: [...], matter: [...], ...}}
 *   GET /api/v1/statistics?agency=&year=&half=     (stats.h)
 *   GET /api/v1/officers?cert_no=
 *       200 {cert_no, status: valid | expired | unknown, name, agency, area, validity}
 *   400 {error: "bad_parameter", parameter, reason, zh}; 404 {error: "not_found"}.
 *
 * HTML (text/html; charset=utf-8, lang zh-CN, no script, Content-Security-Policy without
 * script sources):
 *   GET /                      执法公示查询: the search form and a page of results; the same
 *                              parameters as /api/v1/decisions, an empty field counting as
 *                              not given (query_search_form); a bad one: 400, the form and
 *                              a Chinese message naming the field
 *   GET /decisions/<id>        a published decision (执法机关, 执法对象 masked, 执法类别,
 *                              执法结论, the 双公示 fields); 410 for one withdrawn after
 *                              publication, the page giving the kind, reason and day of the
 *                              withdrawal (行政处罚法 2021 art. 48) and nothing else; 404 for
 *                              anything else not published
 *   GET /agencies/<code>       事前公开: the agency and head, officers (certificate, area,
 *                              validity), matters with their service guides, the random-
 *                              inspection list, the AV and review lists, 监督方式, 救济渠道
 *   GET /officers              the certificate check form; ?cert_no=<no>: the result,
 *                              有效 / 已过期 / 未查到 (400 page for a malformed number)
 *   GET /statistics?...        统计年报 (stats.h)
 *   anything else              404 page
 *
 * Both: 405 for methods other than GET and HEAD. Every 200 has a strong ETag (FNV-1a 64
 * of the body) and answers If-None-Match with 304; Cache-Control: public, max-age=60
 * (search, officer check), 300 (a decision, a 410, an agency). GET /healthz: 200.
 *
 * Rendered answers (200, 404, 410) are kept in memory keyed on the validated request and
 * the database snapshot they were read under (pg_current_snapshot): any commit changes
 * the snapshot, so nothing staler than the request is ever served. A request waits for
 * a snapshot read that started after it arrived; one thread makes those reads, each
 * shared by every request waiting, so an unchanged database serves from memory
 * (portal_opts_t.max_stale_ms trades that freshness for fewer reads). */
#ifndef SX_PUB_PORTAL_H
#define SX_PUB_PORTAL_H

#include <stddef.h>

#define PORTAL_THREADS_DEFAULT 8 /* MHD threads, each with its own PostgreSQL connection */
#define PORTAL_THREADS_MAX     64
#define PORTAL_MAX_STALE_MS    10000
/* sx-publication's SX_PORTAL_MAX_STALE_MS default: the public may see a change up to 1 s
 * late (pages already allow caches 60 s, Cache-Control), and each answer spares the
 * data-version read that strict freshness costs (make bench-portal: ~0.2x nginx strict,
 * ~0.7x at 1 s). Tests that read right after a change run with 0. */
#define PORTAL_STALE_DEFAULT_MS 1000

typedef struct portal portal_t;

/* Starts the portal on bind_addr (IPv4 dotted quad) and port (0: any free one) with
 * PORTAL_THREADS_DEFAULT threads, each with its own PostgreSQL connection to pg_url.
 * Returns NULL with the reason in err. */
portal_t *portal_new(const char *pg_url, const char *bind_addr, int port, char *err, size_t errlen);

/* Settings (main.c: SX_PORTAL_THREADS, SX_PORTAL_MAX_STALE_MS). */
typedef struct {
    int threads;      /* 1..PORTAL_THREADS_MAX; out of range: PORTAL_THREADS_DEFAULT */
    int max_stale_ms; /* 0 (the default): every answer reflects every commit made before the
                       * request arrived; n > 0: answers may lag a commit by up to n ms
                       * (at most PORTAL_MAX_STALE_MS), sparing the data-version read per
                       * burst of requests — still far within Cache-Control's max-age */
} portal_opts_t;

/* portal_new with opts (NULL: the defaults). */
portal_t *portal_new_opts(const char *pg_url, const char *bind_addr, int port,
                          const portal_opts_t *opts, char *err, size_t errlen);

/* The port actually bound. */
int portal_port(const portal_t *self);

/* Stops the listener and frees everything; sets *self_p to NULL. Idempotent. */
void portal_destroy(portal_t **self_p);

#endif
