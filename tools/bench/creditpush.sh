#!/usr/bin/env bash
# make bench-creditpush: 双公示 records pushed to the credit platform per second through the
# real sx-creditpush (issue 8, "Benchmark"), beside tools/fake-credit, with the fake
# platform's own capacity measured in the same run as the reference. Runs under
# tests/harness/with-servers with fsync ON.
#
#   N publication.published events (valid penalties, every 5th in a key domain) are
#   written into publication's outbox and relayed to the broker by build/bin/creditload
#   (playing sx-publication). Phase 1: sx-creditpush takes them into its queue
#   (catch-up from Postgres, a batch of events per INSERT) while the platform is
#   unreachable. Phase 2: the platform is back (fake-credit, which checks the signature
#   and every field of every record); sx-creditpush, restarted, pushes the whole queue
#   (SX_CREDIT_BATCH records per POST, SX_CREDIT_INFLIGHT default 2 POSTs at once).
#   From creditpush.item:
#
#   records_per_s        records the platform took per second: (N - first batch) /
#                        (last sent_at - first sent_at)
#   queued_per_s         events turned into queue items per second (created_at span)
#   fake_records_per_s   the reference: creditload posting the same batches straight to
#                        fake-credit, one after another over one connection, for 10 s
#                        (fresh keys: every record checked and applied)
#
# BENCH_RECORDS (default 30000) sets N, BENCH_BATCH (default 500) the batch size.
set -euo pipefail
N=${BENCH_RECORDS:-30000}
BATCH=${BENCH_BATCH:-500}
B=${SX_BIN:?}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-build/bench/creditpush.json}
mkdir -p "$(dirname "$out")"
K=$SX_TMP/creditpush-keys
mkdir -p "$K"
PSQL=(psql -qtA -v ON_ERROR_STOP=1 "$SX_PG_URL")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bpub=$("$B/sxctl" keygen --dir "$K" broker)
cpub=$("$B/sxctl" keygen --dir "$K" creditpush)
{
    echo "$cpub svc:creditpush"
    echo "$("$B/sxctl" keygen --dir "$K" publication) svc:publication"
} >"$K/keys"
pub_ep=tcp://127.0.0.1:$(free_port)
sub_ep=tcp://127.0.0.1:$(free_port)
rpc_ep=tcp://127.0.0.1:$(free_port)
fake_port=$(free_port)
ops_port=$(free_port)
export SX_CREDIT_TOKEN=bench-token SX_CREDIT_HMAC_KEY=bench-hmac-key
url=http://127.0.0.1:$fake_port/api/v1/sgs

SX_BROKER_PUB_BIND=$pub_ep SX_BROKER_SUB_BIND=$sub_ep SX_BROKER_KEY_FILE=$K/broker.key \
    SX_KEYS_FILE=$K/keys SX_OPS_PORT=0 SX_LOG_LEVEL=warn "$B/sx-broker" 2>"$SX_TMP/broker.log" &
pids+=($!)
"$B/fake-credit" --port "$fake_port" 2>"$SX_TMP/fake-credit.log" &
pids+=($!)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$fake_port/admin/stats" && break
    sleep 0.1
done

echo "bench-creditpush: $N records, batches of $BATCH, fsync on" >&2
SX_KEY_FILE=$K/publication.key SX_BROKER_PUB=$pub_ep SX_BROKER_PUBLIC_KEY=$bpub \
    SX_SCHEMAS="$top/schemas" SX_LOG_LEVEL=warn \
    "$B/creditload" emit -n "$N" -d 600 >"$SX_TMP/emit.out" 2>"$SX_TMP/emit.log" &
epid=$!
pids+=($epid)
for _ in $(seq 1200); do
    grep -q emitted= "$SX_TMP/emit.out" && break
    kill -0 "$epid" 2>/dev/null || { echo "bench-creditpush: creditload emit exited" >&2; cat "$SX_TMP/emit.log" >&2; exit 1; }
    sleep 0.1
done
echo "creditload: $(cat "$SX_TMP/emit.out")" >&2

# Phase 1: creditpush takes the events into its queue while the platform is unreachable
# (a closed port: every POST refused at once, the queue held back for an hour).
cp_env=(SX_CREDITPUSH_BIND=$rpc_ep SX_KEY_FILE=$K/creditpush.key SX_KEYS_FILE=$K/keys
    SX_BROKER_PUB=$pub_ep SX_BROKER_SUB=$sub_ep SX_BROKER_PUBLIC_KEY=$bpub
    SX_CREDIT_BATCH=$BATCH SX_OPS_PORT=$ops_port SX_SCHEMAS="$top/schemas" SX_LOG_LEVEL=warn)
count() { "${PSQL[@]}" -c "SELECT count(*) FROM creditpush.item WHERE $1" 2>/dev/null || echo 0; }
wait_for() { # wait_for WHERE N PID: until N items match, bounded by 300 s
    local n=0
    for _ in $(seq 3000); do
        n=$(count "$1")
        [ "$n" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || { echo "bench-creditpush: sx-creditpush died" >&2; cat "$SX_TMP/creditpush.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench-creditpush: only $n of $2 items ($1) in 300 s" >&2
    exit 1
}
env "${cp_env[@]}" SX_CREDIT_URL=http://127.0.0.1:$(free_port)/api/v1/sgs \
    SX_CREDIT_BACKOFF_MS=3600000 SX_CREDIT_BACKOFF_MAX_MS=3600000 \
    "$B/sx-creditpush" 2>"$SX_TMP/creditpush.log" &
cppid=$!
pids+=($cppid)
wait_for "true" "$N" "$cppid"
qps=$("${PSQL[@]}" -c "SELECT round(count(*) / extract(epoch FROM max(created_at) - min(created_at))) FROM creditpush.item")
kill "$cppid"
wait "$cppid" || true
# Phase 2: the platform is back; the whole queue due now, pushed in batches.
"${PSQL[@]}" -c "UPDATE creditpush.item SET next_at = now()"
env "${cp_env[@]}" SX_CREDIT_URL=$url "$B/sx-creditpush" 2>>"$SX_TMP/creditpush.log" &
cppid=$!
pids+=($cppid)
wait_for "state = 'sent'" "$N" "$cppid"
dead=$(count "state = 'dead'")
read -r rps first <<<"$("${PSQL[@]}" -F ' ' -c "
    WITH f AS (SELECT min(sent_at) t FROM creditpush.item)
    SELECT round((count(*) - (SELECT count(*) FROM creditpush.item, f WHERE sent_at = f.t))
                 / extract(epoch FROM max(sent_at) - min(sent_at))),
           (SELECT count(*) FROM creditpush.item, f WHERE sent_at = f.t)
    FROM creditpush.item")"
stats=$(curl -s "http://127.0.0.1:$fake_port/admin/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["accepted"], s["duplicates"], s["rejected"])')
read -r accepted dups rejected <<<"$stats"
[ "$accepted" = "$N" ] || { echo "bench-creditpush: the platform accepted $accepted of $N" >&2; exit 1; }
kill -0 "$cppid" 2>/dev/null || { echo "bench-creditpush: sx-creditpush died" >&2; exit 1; }

# Reference: the fake platform's own capacity, same batches, one connection, same run.
line=$("$B/creditload" post "$url" -n "$BATCH" -d 10)
echo "creditload: $line" >&2
ref=$(echo "$line" | tr ' ' '\n' | awk -F= '$1 == "records_per_s" {print $2}')

printf '\n%-24s %14s %10s\n' metric value target
printf '%-24s %14.0f %10s\n' records_per_s "$rps" ">=5000"
printf '%-24s %14.0f %10s\n' fake_records_per_s "$ref" "(ref)"
printf '%-24s %14.2f %10s\n' records_vs_fake "$(echo "$rps / $ref" | bc -l)" ""
printf '%-24s %14.0f %10s\n' queued_per_s "$qps" ""
printf '%-24s %14s %10s\n' records "$N" ""
printf '%-24s %14s %10s\n' batch "$BATCH" ""
printf '%-24s %14s %10s\n' first_batch "$first" ""
printf '%-24s %14s %10s\n' accepted "$accepted" "$N"
printf '%-24s %14s %10s\n' duplicates "$dups" "0"
printf '%-24s %14s %10s\n' dead "$dead" "0"
cat >"$out" <<JSON
{
  "records": $N,
  "batch": $BATCH,
  "fsync": true,
  "records_per_s": $rps,
  "fake_records_per_s": $(printf '%.0f' "$ref"),
  "queued_per_s": $qps,
  "accepted": $accepted,
  "duplicates": $dups,
  "dead": $dead,
  "targets": {"records_per_s": 5000}
}
JSON
echo "wrote $out" >&2
