/* opinion: the legal review opinion (法制审核意见书, 嘉政办发〔2019〕56号 item 17).
 *
 * Seven points, each pass or fail with a comment: 主体是否合法 (subject), 事实是否清楚
 * (facts), 依据是否准确 (basis), 裁量是否合理 (discretion), 程序是否合法 (procedure),
 * 文书是否完备 (documents), 是否涉嫌犯罪需移送 (referral: pass = no crime suspected).
 * Verdict 同意 (approve: every point passes), 存在问题 (problems: some point fails),
 * 移送司法机关 (refer: the referral point fails). The opinion is rendered as text and
 * HTML and kept (review.opinion); the ops are in opinion.c (opinion_register). */
#ifndef SX_REVIEW_OPINION_H
#define SX_REVIEW_OPINION_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "evmsg.h"

#define OPINION_POINTS      7
#define OPINION_COMMENT_MAX 360  /* bytes in a point's comment */
#define OPINION_SUMMARY_MAX 500  /* bytes in the closing opinion */
#define OPINION_TEXT_MAX    4000 /* the rendered text fits review.approved's opinion */
/* HTML: every input byte may become a 6-byte entity (&quot;): 6 x (7 x 360 + 500 + 2 x 64)
 * plus the page, about 20 KB; 16000 refused valid opinions as too large. */
#define OPINION_HTML_MAX 32768

typedef enum { OPINION_APPROVE, OPINION_PROBLEMS, OPINION_REFER } opinion_verdict_t;

extern const char *const opinion_point_keys[OPINION_POINTS + 1]; /* "subject", ... NULL */
extern const char *const opinion_point_names[OPINION_POINTS];    /* "主体是否合法", ... */
extern const char *const opinion_verdict_keys[4];                /* "approve", ... NULL */
extern const char *const opinion_verdict_names[3];               /* "同意", ... */

typedef struct {
    bool pass[OPINION_POINTS];
    char comment[OPINION_POINTS][OPINION_COMMENT_MAX + 1];
    opinion_verdict_t verdict;
    char summary[OPINION_SUMMARY_MAX + 1];
} opinion_t;

/* What the document names. */
typedef struct {
    const char *case_no, *agency, *reviewer, *date; /* date YYYY-MM-DD */
    long long case_id;
    int version;
} opinion_head_t;

/* Reads body.points (a map of the seven keys, each {pass, comment}), body.verdict and
 * body.summary into *op. Returns 0; -1 with err set (a missing point reads
 * "body.points.facts: missing"; *missing then is its index, else -1); -2 when the
 * verdict contradicts the points (why says how); -3 when a point fails without a
 * comment saying why (*missing is its index). */
int opinion_decode(const evmsg_map_t *body, opinion_t *op, int *missing, evmsg_err_t *err,
                   char *why, size_t whylen);

/* Renders the document as plain text (at most OPINION_TEXT_MAX bytes: comments are
 * bounded so it always fits) and as HTML (escaped). Return the length written, or -1
 * when buf is too small. */
int opinion_render_text(const opinion_t *op, const opinion_head_t *h, char *buf, size_t size);
int opinion_render_html(const opinion_t *op, const opinion_head_t *h, char *buf, size_t size);

/* Prepares the statements of the ops on db (the rpc server's). Returns 0 or -1. */
int opinion_prepare(db_t *db);

#endif
