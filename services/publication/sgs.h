/* sgs: the 双公示 (double publicity) fields of penalty (CF_*) and licence (XK_*) records,
 * as ../shared/data/sgs-fields.md lays them out (the 2019-2021 national layout that 信用中国
 * platforms ingest): amounts in 万元, dates YYYY/MM/DD, 2099/12/31 for no expiry. */
#ifndef SX_PUB_SGS_H
#define SX_PUB_SGS_H

#include <jansson.h>

#include "records.h"

/* The 双公示 fields of c (a new JSON object of strings; the caller json_decref's it), with
 * the party already masked in p; NULL when c is neither a penalty nor a licence, or out
 * of memory. */
json_t *sgs_fields(const pub_case_t *c, const pub_party_t *p);

/* Writes day as YYYY/MM/DD into buf (11 bytes). Returns buf. */
char *sgs_date(date_t day, char buf[11]);

/* The licence category code (XK_XKLB) for a category text: 01 普通, 02 特许, 03 认可,
 * 04 核准, 05 登记, anything else 06 其他. */
const char *sgs_xklb(const char *category);

/* The end of publication (CF_GSJZQ) for a penalty decided on day with circumstance
 * (minor, general, serious, or "" read as general): the maximum period of 信用修复管理办法
 * (in force 2026-04-01): 轻微 3 months, 一般 1 year, 严重 3 years. */
date_t sgs_publish_until(date_t day, const char *circumstance);

/* The first day credit repair (信用修复) may take a penalty decided on day down: the
 * minimum period of 信用修复管理办法: 一般 (and "") 3 months, 严重 1 year; 轻微 at once. */
date_t sgs_repair_from(date_t day, const char *circumstance);

#endif
