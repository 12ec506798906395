/* fuzz_keys: the key file parser (deploy/keys/, reloaded by the broker on SIGHUP) under
 * libFuzzer. Any bytes: a table or an error naming a line, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    keys_t *k = keys_parse((const char *)data, size, err, sizeof err);
    if (!k && err[0] == '\0')
        abort();
    if (k) {
        uint8_t key[32];
        memset(key, 0xab, sizeof key);
        (void)keys_lookup(k, key);
        (void)keys_count(k);
    }
    keys_destroy(&k);
    return 0;
}
