/* stats: the statistics (统计年报) of an agency for a half-year or a year — cases by type,
 * fines and confiscations, legal reviews and their outcomes, publications on time and
 * late, audio/video record gaps, withdrawals, expiries, statutory deadlines missed — with
 * the weak links first; served as JSON and as a Chinese HTML page with SVG charts, and
 * generated when each period ends, for the city's legal office (司法局).
 *
 * Everything is counted from fact rows (schemas/sql/publication/003_stats.sql) that the
 * event handlers insert idempotently, and from publication.record; nothing is a running
 * counter, so a redelivered event never counts twice.
 *
 * Periods: "<year>H1" (Jan 1 .. Jun 30, report due Jul 10), "<year>H2" (Jul 1 .. Dec 31,
 * on request only), "<year>" (the year, due Jan 10 of the next). A report is generated at
 * 00:00 China time of the day after the period ends (Redis timer STATS_TIMER, key the
 * period), stored in publication.stat_report, announced as publication.statistics.<agency>
 * per agency and publication.report.<legal office> for the city, and read with the rpc op
 * publication.statistics (schemas/messages/publication.md). */
#ifndef SX_PUB_STATS_H
#define SX_PUB_STATS_H

#include <stdbool.h>

#include <jansson.h>

#include "date.h"
#include "db.h"
#include "publication.h"
#include "query.h"
#include "rpc.h"
#include "timer.h"

#define STATS_TIMER      "pub_stats"
#define STATS_CITY_MAX   200   /* agencies listed in the city event and rpc result, */
#define STATS_CITY_BYTES 40000 /* within this much JSON (the rest: the per-agency reports) */
#define STATS_LATE_GRACE 60    /* days after a period's end in which a missed run still runs */
#define STATS_PERIOD_MAX 8     /* "2026H1" + NUL */

/* A period. name: "2026H1", "2026H2" or "2026". */
typedef struct {
    char name[STATS_PERIOD_MAX];
    date_t from, to, due; /* due: the report's due day (Jul 10 / Jan 10) */
} stats_period_t;

/* Parses a period name (years 2019..2100). Returns 0, or -1 when malformed. */
int stats_period_parse(const char *s, stats_period_t *out);

/* The period of year (half 0: the whole year, 1 or 2: that half). */
void stats_period_make(int year, int half, stats_period_t *out);

/* Prepares the statements of this module on db (any of the service's connections that
 * calls into it: the portal's, the timers', the rpc door's). Returns 0 or -1. */
int stats_prepare(db_t *db);

/* The figures of agency (a 统一社会信用代码) for the days from..to (YYYY-MM-DD) as of now:
 * a new JSON object (the caller json_decref's it), or NULL on a database failure or out of
 * memory. Its shape is documented in schemas/messages/publication.md ("Statistics"). */
json_t *stats_compute(db_t *db, const char *agency, const char *from, const char *to);

/* ---- Generation at the end of each period ------------------------------------------- */

/* Arms the timers of the next half-year's and year's ends after today (China time), and,
 * at once, those of the latest ended ones still without a run when they ended at most
 * STATS_LATE_GRACE days ago (the service was down, Redis lost them). Idempotent. Returns
 * 0, or -1 (logged). */
int stats_arm(db_t *db, timers_t *timers, date_t today);

/* Generates the reports of period (a timer's key) in one transaction, once: for every
 * agency publication knows, stat_report and publication.statistics.<agency>; then
 * publication.report.<legal_office> (when legal_office is not NULL) with the city's
 * agencies, weak first. A period already generated, or a malformed key, does nothing.
 * Returns 0 (done or nothing to do), or -1 (the timer fires again). */
int stats_generate(db_t *db, const char *period, const char *legal_office);

/* ---- rpc ---------------------------------------------------------------------------- */

/* Registers publication.statistics (RPC_READ; dept:*:legal_office, the agencies'
 * dept:*:publisher for their own figures, svc:). Returns 0 or -1. */
int stats_register(rpc_server_t *rpc, publication_t *app);

/* ---- HTTP (the portal's thread) ----------------------------------------------------- */

/* True for the URLs stats_serve answers: /api/v1/statistics (JSON) and /statistics (the
 * HTML page), both ?agency=&year=&half= (query_stats). */
bool stats_route(const char *url);

/* The answer to a GET or HEAD of a stats_route URL, for the portal to send (with its
 * headers, and a strong ETag on a 200): 200, 400 naming the bad parameter (query_stats on
 * kv[0..n), the URL's parameters), or 503 when the database failed. body is new (the
 * caller frees it), NULL when memory ran out; html tells its type from JSON. */
typedef struct {
    unsigned int status;
    char *body;
    bool html;
} stats_answer_t;
void stats_answer(db_t *db, const char *url, const query_kv_t *kv, size_t n, stats_answer_t *out);

/* The HTML page (Chinese, SVG charts, no script) for figures from stats_compute: a new
 * string (the caller frees it), or NULL when out of memory. */
char *stats_html(const json_t *figures);

#endif
