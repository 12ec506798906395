/* review_events: review verdicts into intake.review_verdict; see review_events.h. */
#include "review_events.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "evmsg.h"

const char *const review_events_prefixes[] = {"review.approved.", "review.returned.", NULL};

int
review_events_prepare(db_t *db)
{
    if (db_prepare(db, "rv_case", "SELECT 1 FROM intake.cases WHERE id = $1 AND agency = $2", 2) <
        0)
        return -1;
    /* The same verdict twice (the review service retried) changes nothing. The one
     * change allowed: a returned version approved later on escalation to the legal
     * office (法制审核 escalation: the legal office's opinion stands). */
    return db_prepare(db, "rv_insert",
                      "INSERT INTO intake.review_verdict AS v"
                      " (case_id, proposal_version, agency, verdict, opinion, reviewer, at,"
                      " review_seq) VALUES ($1, $2, $3, $4, $5, $6,"
                      " to_timestamp($7::bigint / 1000.0), $8)"
                      " ON CONFLICT (case_id, proposal_version) DO UPDATE"
                      " SET verdict = excluded.verdict, opinion = excluded.opinion,"
                      " reviewer = excluded.reviewer, at = excluded.at,"
                      " review_seq = excluded.review_seq"
                      " WHERE v.verdict = 'returned' AND excluded.verdict = 'approved'",
                      8);
}

int
review_events_handle(db_t *tx, const bus_event_t *ev, void *arg, char *why, size_t whylen)
{
    (void)arg;
    const char *verdict;
    if (strncmp(ev->topic, review_events_prefixes[0], strlen(review_events_prefixes[0])) == 0)
        verdict = "approved";
    else if (strncmp(ev->topic, review_events_prefixes[1], strlen(review_events_prefixes[1])) == 0)
        verdict = "returned";
    else
        return 0; /* another review.* event: not the gate's business */
    size_t tlen = strlen(ev->topic);
    if (ev->v != 1) {
        snprintf(why, whylen, "v: version %u not understood (1 is)", ev->v);
        return BUS_REJECT;
    }

    /* The contract: schemas/messages/review.md, fields in its order. */
    evmsg_err_t err = {{0}, {0}};
    evmsg_map_t d = evmsg_data(ev->msg, &err);
    static const char *const keys[] = {"case_id", "proposal_version", "opinion", "reviewer", NULL};
    int64_t case_id = 0, version = 0;
    char opinion[REVIEW_OPINION_MAX + 1], reviewer[REVIEW_REVIEWER_MAX + 1];
    evmsg_map_only(&d, keys);
    evmsg_map_int(&d, "case_id", EVMSG_REQUIRED, 1, INT64_MAX, &case_id);
    evmsg_map_int(&d, "proposal_version", EVMSG_REQUIRED, 1, INT32_MAX, &version);
    evmsg_map_str(&d, "opinion", EVMSG_REQUIRED, REVIEW_OPINION_MAX, opinion);
    evmsg_map_str(&d, "reviewer", EVMSG_REQUIRED | EVMSG_NONEMPTY, REVIEW_REVIEWER_MAX, reviewer);
    if (err.reason[0]) {
        evmsg_err_str(&err, why, whylen);
        return BUS_REJECT;
    }

    char id[24], ver[24], at[24], seq[24], agency[EVMSG_AGENCY_LEN + 1];
    snprintf(id, sizeof id, "%" PRId64, case_id);
    snprintf(ver, sizeof ver, "%" PRId64, version);
    snprintf(at, sizeof at, "%" PRId64, ev->at);
    snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
    snprintf(agency, sizeof agency, "%s", ev->topic + tlen - EVMSG_AGENCY_LEN);
    PGresult *r = db_exec_prepared(tx, "rv_case", 2, (const char *[]){id, agency}, NULL, NULL, 0);
    if (!r)
        return -1;
    bool found = PQntuples(r) == 1;
    PQclear(r);
    if (!found) {
        snprintf(why, whylen, "data.case_id: no case %s of agency %s", id, agency);
        return BUS_REJECT;
    }
    /* A row the table refuses (a proposal version it does not know, say) is the event's
     * fault, not the database's: the savepoint keeps the transaction usable to reject it. */
    if (db_command(tx, "SAVEPOINT review_verdict") < 0)
        return -1;
    const char *vals[8] = {id, ver, agency, verdict, opinion, reviewer, at, seq};
    r = db_exec_prepared(tx, "rv_insert", 8, vals, NULL, NULL, 0);
    if (!r) {
        if (strncmp(db_sqlstate(tx), "23", 2) != 0 ||
            db_command(tx, "ROLLBACK TO SAVEPOINT review_verdict") < 0)
            return -1;
        snprintf(why, whylen, "data: verdict refused: %s", db_error(tx));
        return BUS_REJECT;
    }
    PQclear(r);
    return db_command(tx, "RELEASE SAVEPOINT review_verdict") < 0 ? -1 : 0;
}
