/* sxctl: the operator and integrator command line. main only dispatches: each verb is a
 * sxctl_verb_t in its own verb_<name>.c (see sxctl.h). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sxctl.h"

/* Every verb, in the order `sxctl --help` lists them. */
static const sxctl_verb_t *const s_verbs[] = {
    &sxctl_verb_workday, &sxctl_verb_ident,  &sxctl_verb_keygen, &sxctl_verb_call,
    &sxctl_verb_tail,    &sxctl_verb_record, &sxctl_verb_credit,
};
#define S_NVERBS (sizeof s_verbs / sizeof s_verbs[0])

static void
s_vprint(const char *verb, const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, "sxctl %s: %s", verb, what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int
sxctl_usage(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vprint(verb, "", fmt, ap);
    va_end(ap);
    /* "ident uscc" -> "sxctl ident --help": the help belongs to the verb, the first word. */
    fprintf(stderr, "try 'sxctl %.*s --help'\n", (int)strcspn(verb, " "), verb);
    return SXCTL_USAGE;
}

int
sxctl_fail(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vprint(verb, "", fmt, ap);
    va_end(ap);
    return SXCTL_FAIL;
}

void
sxctl_warn(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vprint(verb, "warning: ", fmt, ap);
    va_end(ap);
}

static void
s_overview(FILE *out)
{
    fputs("usage: sxctl VERB [ARGS...]\n"
          "       sxctl VERB --help\n"
          "\n"
          "sxctl is the sanxiang (三项制度) operator and integrator tool.\n"
          "\n"
          "verbs:\n",
          out);
    for (size_t i = 0; i < S_NVERBS; i++)
        fprintf(out, "  %-10s %s\n", s_verbs[i]->name, s_verbs[i]->summary);
    fputs("\n"
          "exit status: 0 done or valid, 1 negative answer or failure (reason on stderr),\n"
          "2 usage error.\n",
          out);
}

static bool
s_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static const sxctl_verb_t *
s_find(const char *name)
{
    for (size_t i = 0; i < S_NVERBS; i++)
        if (strcmp(s_verbs[i]->name, name) == 0)
            return s_verbs[i];
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        s_overview(stderr);
        return SXCTL_USAGE;
    }
    const char *name = argv[1];
    if (s_is_help(name) || strcmp(name, "help") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            const sxctl_verb_t *verb = s_find(argv[2]);
            if (!verb) {
                fprintf(stderr, "sxctl: no verb '%s'; try 'sxctl --help'\n", argv[2]);
                return SXCTL_USAGE;
            }
            fputs(verb->help, stdout);
            return SXCTL_OK;
        }
        s_overview(stdout);
        return SXCTL_OK;
    }
    const sxctl_verb_t *verb = s_find(name);
    if (!verb) {
        fprintf(stderr, "sxctl: no verb '%s'; try 'sxctl --help'\n", name);
        return SXCTL_USAGE;
    }
    /* --help anywhere among the verb's arguments, up to a "--", shows its help. */
    for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (s_is_help(argv[i])) {
            fputs(verb->help, stdout);
            return SXCTL_OK;
        }
    }
    return verb->run(argc - 1, argv + 1);
}
