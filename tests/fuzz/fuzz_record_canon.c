/* fuzz_record_canon: the recording service's canonical-bytes path under libFuzzer
 * (services/recording/chain.c, compiled in: the fuzz build links common/ only).
 *
 * The first byte picks the case event's topic; the rest is its data map, decoded as
 * every event's data is (evmsg, bounded). Whatever it holds: never a crash; an event
 * that chain_entry_from_event accepts encodes to bytes that chain_decode accepts and that
 * encode again to the same bytes. The whole input is also fed to chain_decode (what
 * record.verify reads back from PostgreSQL): bytes it accepts re-encode to themselves. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/recording/chain.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_topics[] = {
    "case.opened.91110000600037341L",         "case.recorded.91110000600037341L",
    "case.proposed.91110000600037341L",       "case.decided.91110000600037341L",
    "case.served.91110000600037341L",         "case.closed.91110000600037341L",
    "inspection.resulted.91110000600037341L", "case.deadline.warning.91110000600037341L",
    "registry.officer.91110000600037341L"};

static void
s_roundtrip(const chain_entry_t *e)
{
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    chain_entry_t d;
    evmsg_err_t err = {0};
    if (chain_encode(e, &a) < 0)
        abort();
    if (chain_decode(a.data, a.size, &d, &err) < 0) {
        fprintf(stderr, "canonical bytes refused: %s: %s\n", err.path, err.reason);
        abort();
    }
    if (chain_encode(&d, &b) < 0 || a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
        abort();
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *topic = s_topics[data[0] % (sizeof s_topics / sizeof s_topics[0])];
    evmsg_t *msg = NULL;
    evmsg_err_t err = {0};
    if (evmsg_decode_map(data + 1, size - 1, &msg, &err) == 0) {
        chain_entry_t e;
        chain_facts_t f;
        size_t len = 0;
        const void *bytes = evmsg_data_bytes(msg, &len);
        evmsg_map_t d = evmsg_data(msg, &err);
        int rc = chain_entry_from_event(topic, 42, 1700000000000, &d, bytes, len, &e, &f, &err);
        if (rc < 0 && !err.reason[0])
            abort(); /* a refusal always says why */
        if (rc == 1) {
            e.n = 1 + data[0];
            s_roundtrip(&e);
        }
        evmsg_destroy(&msg);
    }
    chain_entry_t e;
    evmsg_err_t err2 = {0};
    if (chain_decode(data, size, &e, &err2) == 0) {
        msgpack_sbuffer a;
        msgpack_sbuffer_init(&a);
        if (chain_encode(&e, &a) < 0 || a.size != size || memcmp(a.data, data, size) != 0)
            abort();
        msgpack_sbuffer_destroy(&a);
    } else if (!err2.reason[0]) {
        abort();
    }
    return 0;
}
