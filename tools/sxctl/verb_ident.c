/* sxctl ident: checks and masks identifiers (common/ident). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "date.h"
#include "ident.h"
#include "sxctl.h"

static int s_run(int argc, char **argv);

const sxctl_verb_t sxctl_verb_ident = {
    .name = "ident",
    .summary = "check or mask identifiers: uscc, orgcode, idcard, mask-idno, mask-name",
    .help = "usage: sxctl ident uscc CODE          统一社会信用代码 (GB 32100-2015)\n"
            "       sxctl ident orgcode CODE       组织机构代码 (GB 11714), XXXXXXXX-X or "
            "XXXXXXXXX\n"
            "       sxctl ident idcard NUMBER      居民身份证号码 (GB 11643-1999)\n"
            "       sxctl ident mask-idno NUMBER   prints the number masked for publication\n"
            "       sxctl ident mask-name NAME     prints the name masked for publication\n"
            "\n"
            "uscc, orgcode and idcard check the characters, the check digit and, for an ID\n"
            "number, the province code and the birth date (a real date, from 1900 to\n"
            "today). A valid code prints \"valid\"; an invalid one prints the reason on\n"
            "stderr in English and Chinese, with the 1-based character position.\n"
            "\n"
            "Masking (脱敏) keeps an ID number's first 6 characters and a name's first\n"
            "character, and writes '*' for every other character.\n"
            "\n"
            "exit status: 0 valid (or masked), 1 invalid, 2 usage error.\n",
    .run = s_run,
};

static int
s_check(const char *form, const char *code)
{
    ident_err_t e;
    int rc;
    if (strcmp(form, "uscc") == 0)
        rc = ident_uscc_check(code, &e);
    else if (strcmp(form, "orgcode") == 0)
        rc = ident_orgcode_check(code, &e);
    else
        rc = ident_idcard_check(code, date_from_unix_cst((int64_t)time(NULL)), &e);
    if (rc == 0) {
        puts("valid");
        return SXCTL_OK;
    }
    fprintf(stderr, "sxctl ident %s: invalid: %s (%s)\n", form, e.en, e.zh);
    return SXCTL_FAIL;
}

static int
s_mask(const char *form, const char *text)
{
    size_t size = strlen(text) + 1;
    char *out = malloc(size);
    if (!out)
        return sxctl_fail("ident", "out of memory");
    if (strcmp(form, "mask-idno") == 0)
        ident_mask_idno(text, out, size);
    else
        ident_mask_name(text, out, size);
    puts(out);
    free(out);
    return SXCTL_OK;
}

static int
s_run(int argc, char **argv)
{
    /* A "--" before the code lets a code start with '-'. */
    int i = 1;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i == argc)
        return sxctl_usage("ident", "expected uscc, orgcode, idcard, mask-idno or mask-name");
    const char *form = argv[i++];
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    bool check =
        strcmp(form, "uscc") == 0 || strcmp(form, "orgcode") == 0 || strcmp(form, "idcard") == 0;
    bool mask = strcmp(form, "mask-idno") == 0 || strcmp(form, "mask-name") == 0;
    if (!check && !mask)
        return sxctl_usage("ident",
                           "unknown form '%s' (expected uscc, orgcode, idcard, mask-idno or "
                           "mask-name)",
                           form);
    if (argc - i != 1)
        return sxctl_usage("ident", "%s takes exactly one %s", form,
                           strcmp(form, "mask-name") == 0 ? "NAME" : "CODE");
    return check ? s_check(form, argv[i]) : s_mask(form, argv[i]);
}
