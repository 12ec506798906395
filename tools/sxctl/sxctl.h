/* sxctl: the operator and integrator command line.
 *
 *   sxctl VERB [ARGS...]
 *
 * Each verb lives in its own verb_<name>.c and exports one sxctl_verb_t; main.c lists
 * them in a table. Adding a verb: write verb_<name>.c with `const sxctl_verb_t
 * sxctl_verb_<name> = {...}`, declare it below, add it to s_verbs in main.c.
 *
 * Exit codes, the same for every verb: 0 done (or "valid"), 1 the answer is negative or
 * the operation failed (reason on stderr), 2 usage error (bad arguments). */
#ifndef SX_SXCTL_H
#define SX_SXCTL_H

#define SXCTL_OK    0
#define SXCTL_FAIL  1
#define SXCTL_USAGE 2

typedef struct {
    const char *name;    /* the word after sxctl */
    const char *summary; /* one line for `sxctl --help` */
    const char *help;    /* the full text for `sxctl VERB --help`: usage, each form, exits */
    /* Runs the verb. argv[0] is the verb's name; "--help" has been handled already.
     * Returns the process exit code (SXCTL_*). */
    int (*run)(int argc, char **argv);
} sxctl_verb_t;

extern const sxctl_verb_t sxctl_verb_workday;
extern const sxctl_verb_t sxctl_verb_ident;
extern const sxctl_verb_t sxctl_verb_keygen;
extern const sxctl_verb_t sxctl_verb_call;
extern const sxctl_verb_t sxctl_verb_tail;
extern const sxctl_verb_t sxctl_verb_record;
extern const sxctl_verb_t sxctl_verb_credit;

/* Prints "sxctl VERB: MESSAGE" and a pointer to `sxctl VERB --help` on stderr; returns
 * SXCTL_USAGE, so a verb can `return sxctl_usage(...)`. */
int sxctl_usage(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "sxctl VERB: MESSAGE" on stderr; returns SXCTL_FAIL. */
int sxctl_fail(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "sxctl VERB: warning: MESSAGE" on stderr. */
void sxctl_warn(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
