/* discretion: see discretion.h. */
#include "discretion.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"

int
discretion_judge(int64_t fine, bool has_band, int64_t min, int64_t max, const int64_t *recent,
                 size_t nrecent, char *note, size_t notelen)
{
    int flags = 0;
    char f[32], a[32], b[32];
    note[0] = '\0';
    catalogue_amount_str(fine, f, sizeof f);
    if (has_band && (fine < min || fine > max)) {
        flags |= DISC_OUT_OF_BAND;
        snprintf(note, notelen, "fine %s is %s the band %s to %s (过罚不相当?)", f,
                 fine < min ? "below" : "above", catalogue_amount_str(min, a, sizeof a),
                 catalogue_amount_str(max, b, sizeof b));
    }
    if (nrecent >= DISC_RECENT_MIN) {
        __int128 sum = 0;
        for (size_t i = 0; i < nrecent; i++)
            sum += recent[i];
        int64_t mean = (int64_t)(sum / (__int128)nrecent);
        int64_t diff = fine > mean ? fine - mean : mean - fine;
        if ((mean == 0 && fine > 0) || (__int128)diff * 2 > (__int128)mean) {
            flags |= DISC_UNLIKE_RECENT;
            size_t len = strlen(note);
            snprintf(note + len, notelen - len,
                     "%sfine %s is far from the mean %s of the %zu"
                     " latest decisions on this violation (同案不同罚?)",
                     len ? "; " : "", f, catalogue_amount_str(mean, a, sizeof a), nrecent);
        }
    }
    return flags;
}

int
discretion_prepare(db_t *db)
{
    if (db_prepare(db, "rv_band",
                   "SELECT (fine_min * 1000000)::bigint, (fine_max * 1000000)::bigint"
                   " FROM review.band WHERE agency = $1 AND violation_code = $2"
                   " AND circumstance = $3 AND active",
                   3) < 0)
        return -1;
    return db_prepare(db, "rv_recent",
                      "SELECT (fine * 1000000)::bigint FROM review.decided_fine"
                      " WHERE agency = $1 AND violation_code = $2 AND circumstance = $3"
                      " ORDER BY decided_at DESC, case_id DESC LIMIT 10",
                      3);
}

int
discretion_check(db_t *tx, const char *agency, const char *violation, const char *circumstance,
                 int64_t fine, char *note, size_t notelen)
{
    const char *p[3] = {agency, violation, circumstance};
    PGresult *r = db_exec_prepared(tx, "rv_band", 3, p, NULL, NULL, 0);
    if (!r)
        return -1;
    bool has_band = PQntuples(r) == 1;
    int64_t min = has_band ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    int64_t max = has_band ? strtoll(PQgetvalue(r, 0, 1), NULL, 10) : 0;
    PQclear(r);
    if (!(r = db_exec_prepared(tx, "rv_recent", 3, p, NULL, NULL, 0)))
        return -1;
    int64_t recent[DISC_RECENT_N];
    size_t n = 0;
    for (int i = 0; i < PQntuples(r) && n < DISC_RECENT_N; i++)
        recent[n++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return discretion_judge(fine, has_band, min, max, recent, n, note, notelen);
}
