/* sxctl keygen: makes a CURVE key pair for a service or a department (common/keys).
 *
 *   usage: sxctl keygen [--dir DIR] NAME
 *
 * Writes DIR/NAME.key ("public=...\nsecret=...\n", mode 0600) and DIR/NAME.pub (the public
 * key and a newline, mode 0644), DIR defaulting to the current directory, and prints the
 * public key on stdout: add "<public key> <identity>" to the key file (deploy/keys/).
 * Never overwrites: when NAME.key or NAME.pub exists, nothing is written.
 * NAME is 1-64 of A-Z a-z 0-9 _ . - and does not start with '.' or '-'.
 *
 * exit status: 0 written, 1 failed (reason on stderr), 2 usage error. */
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "sxctl.h"

static int
s_keygen(int argc, char **argv)
{
    const char *dir = ".", *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0) {
            if (++i == argc)
                return sxctl_usage("keygen", "--dir needs a directory");
            dir = argv[i];
        } else if (strcmp(argv[i], "--") == 0 && i + 1 < argc && !name) {
            name = argv[++i];
        } else if (argv[i][0] == '-') {
            return sxctl_usage("keygen", "unknown option '%s'", argv[i]);
        } else if (!name) {
            name = argv[i];
        } else {
            return sxctl_usage("keygen", "expected one NAME, got '%s' too", argv[i]);
        }
    }
    if (!name)
        return sxctl_usage("keygen", "expected NAME (usage: sxctl keygen [--dir DIR] NAME)");
    char pub[KEYS_Z85_LEN + 1], err[512];
    if (keys_write_pair(dir, name, pub, err, sizeof err) != 0) {
        if (strstr(err, "name must be"))
            return sxctl_usage("keygen", "%s", err);
        return sxctl_fail("keygen", "%s", err);
    }
    printf("%s\n", pub);
    return SXCTL_OK;
}

const sxctl_verb_t sxctl_verb_keygen = {
    "keygen",
    "make a CURVE key pair for a service or a department (密钥)",
    "usage: sxctl keygen [--dir DIR] NAME\n"
    "\n"
    "Writes DIR/NAME.key (public and secret key, mode 0600) and DIR/NAME.pub (the public\n"
    "key, mode 0644); DIR is the current directory unless given. Prints the public key:\n"
    "add \"<public key> <identity>\" to the key file (deploy/keys/), where identity is\n"
    "svc:<service> or dept:<agency code>:<role>. Never overwrites an existing file.\n"
    "NAME: 1-64 of A-Z a-z 0-9 _ . - not starting with '.' or '-'.\n"
    "\n"
    "exit status: 0 written, 1 failed (reason on stderr), 2 usage error.\n",
    s_keygen,
};
