/* ident: the identifiers on enforcement records, checked digit by digit, and masked for
 * publication (公示).
 *
 *   统一社会信用代码 unified social credit code (USCC), GB 32100-2015: 18 characters from
 *     0-9 and the capitals without I O S V Z, the 18th a mod-31 check character.
 *   组织机构代码 organisation code, GB 11714-1997: 8 characters 0-9/A-Z and a mod-11
 *     check character (0-9 or X), commonly written "XXXXXXXX-X".
 *   居民身份证号码 citizen ID number, GB 11643-1999: a 6-digit region code, an 8-digit
 *     birth date, a 3-digit sequence, and a mod 11-2 (ISO 7064) check character.
 *
 * The checks take any NUL-terminated bytes (any length, non-ASCII, invalid UTF-8) and
 * never read past the terminator. On failure they fill an ident_err_t: what kind of
 * fault, the 1-based character position (a UTF-8 sequence counts as one character), and
 * the message in English and in Chinese, each meant to follow a field path:
 *
 *   if (ident_uscc_check(code, &e) != 0)
 *       reply_error("%s: %s", "data.agency", e.en);   // data.agency: check digit is ...
 *
 * Messages quote the offending character only when it is printable ASCII, so they are
 * always valid UTF-8 and safe to log or put in JSON.
 *
 * Masking (脱敏): natural persons' names and ID numbers are published masked
 * (国办发〔2018〕118号: 公示 must protect personal information). */
#ifndef SX_IDENT_H
#define SX_IDENT_H

#include <stddef.h>

#include "date.h"

typedef enum {
    IDENT_OK = 0,
    IDENT_ELENGTH, /* wrong number of characters; pos = 0 */
    IDENT_ECHAR,   /* a character not allowed at pos */
    IDENT_ECHECK,  /* the check character at pos is wrong */
    IDENT_EDATE,   /* ID number: the birth date at pos 7..14 is not real, < 1900 or future */
    IDENT_EREGION, /* ID number: positions 1-2 are not a province-level region code */
} ident_kind_t;

typedef struct {
    ident_kind_t kind; /* IDENT_OK after a successful check */
    int pos;           /* 1-based character position of the fault; 0 for length */
    char en[128];      /* e.g. "character 5 'I' is not allowed"; "" when valid */
    char zh[128];      /* e.g. "第5位字符'I'不合法"; "" when valid */
} ident_err_t;

/* Short English name of a kind ("length", "character", "check digit", "date", "region"),
 * for logs and metrics labels. */
const char *ident_kind_name(ident_kind_t kind);

/* Checks a 统一社会信用代码 (GB 32100-2015): 18 characters of
 * 0123456789ABCDEFGHJKLMNPQRTUWXY (lower case refused, with a message saying so), the
 * 18th equal to the check character: weights 3^(i-1) mod 31 over positions 1..17,
 * check = (31 - sum mod 31) mod 31. Structure within the code (registration authority,
 * region) is not checked. Returns 0, or -1 with err (may be NULL) filled. */
int ident_uscc_check(const char *code, ident_err_t *err);

/* Checks a 组织机构代码 (GB 11714-1997): "XXXXXXXX-X" or "XXXXXXXXX", eight of 0-9/A-Z
 * then the check character: weights 3 7 9 10 5 8 4 2, C = 11 - sum mod 11, written
 * 'X' for 10 and '0' for 11. Returns 0, or -1 with err (may be NULL) filled. */
int ident_orgcode_check(const char *code, ident_err_t *err);

/* Checks a 居民身份证号码 (GB 11643-1999): 17 digits then a digit or X (x accepted);
 * positions 1-2 a province-level code (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81,
 * 82); positions 7-14 a real birth date YYYYMMDD from 1900-01-01 to today (pass
 * date_from_unix_cst(time(NULL)) outside tests); the 18th the ISO 7064 mod 11-2 check,
 * "10X98765432"[sum mod 11] with weights 2^(18-i) mod 11. Checked in this order, the
 * first fault reported: length, characters, region, birth date, check character. The old
 * 15-digit numbers are refused (length). Returns 0, or -1 with err (may be NULL) filled. */
int ident_idcard_check(const char *id, date_t today, ident_err_t *err);

/* The check character for the first 17 characters of body (a USCC), or '\0' when body
 * has fewer than 17 characters or one outside the charset. For making fixtures. */
char ident_uscc_check_char(const char *body);

/* The check character for the first 8 characters of body (an organisation code), or
 * '\0' when one is not 0-9/A-Z or body is shorter. */
char ident_orgcode_check_char(const char *body);

/* The check character for the first 17 digits of body (an ID number), or '\0' when
 * one is not a digit or body is shorter. */
char ident_idcard_check_char(const char *body);

/* Masks an ID number for publication: keeps the first 6 characters (the region code) and
 * writes '*' for each further character, so "11010519491231002X" -> "110105************".
 * An input of 6 characters or fewer is not an ID number; it is masked entirely rather
 * than published whole. Characters are UTF-8 sequences; a byte that is not valid UTF-8
 * or is a control character is written as '*' even among the first 6, so the output is
 * always valid, printable UTF-8, never longer than the input. Returns 0, or -1 when
 * outsize < strlen(id) + 1 (out is then "" if outsize > 0). */
int ident_mask_idno(const char *id, char *out, size_t outsize);

/* Masks a natural person's name for publication: keeps the first character (UTF-8) and
 * writes one '*' for each further character: "张三丰" -> "张**", "买买提·艾力" ->
 * "买*****". A one-character name is kept as is (it reveals no more than the first
 * character of any other name); "" stays "". Invalid UTF-8 and control characters are
 * written as '*', as in ident_mask_idno. Returns 0, or -1 when outsize <
 * strlen(name) + 1 (out is then "" if outsize > 0). */
int ident_mask_name(const char *name, char *out, size_t outsize);

#endif
