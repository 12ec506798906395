#!/usr/bin/env bash
# make bench-bus: the event bus's durable and replay throughput, with pgbench's one-row
# insert transactions measured in the same run as the reference (these machines are
# noisy; only ratios compare). Runs under tests/harness/with-servers with fsync ON.
#
#   durable_events_per_s   producer commit -> subscriber's committed effect, N events
#                          (one producer writing batches of 1000 through bus_emit_batch,
#                          one relay, the broker, one subscriber applying each event
#                          into its effects table in the transaction that moves its
#                          cursor, a batch at a time)
#   replay_events_per_s    a new subscriber catching up the N-event backlog from Postgres
#   pg_single_insert_tps   pgbench -c 16 -j 2, one INSERT per transaction, 10 s
#
# BENCH_EVENTS (default 1000000) sets N.
set -euo pipefail
N=${BENCH_EVENTS:-1000000}
B=${SX_BIN:?}
out=${BENCH_OUT:-build/bench/bus.json}
mkdir -p "$(dirname "$out")"
K=$SX_TMP/keys
mkdir -p "$K"
PSQL=(psql -qtA "$SX_PG_URL")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { echo $((20000 + RANDOM % 40000)); }
bpub=$("$B/sxctl" keygen --dir "$K" broker)
printf '%s svc:bench-relay\n%s svc:bench-cons\n' \
    "$("$B/sxctl" keygen --dir "$K" relay)" "$("$B/sxctl" keygen --dir "$K" cons)" >"$K/keys"
pub_ep=tcp://127.0.0.1:$(free_port)
sub_ep=tcp://127.0.0.1:$(free_port)
SX_BROKER_PUB_BIND=$pub_ep SX_BROKER_SUB_BIND=$sub_ep SX_BROKER_KEY_FILE=$K/broker.key \
    SX_KEYS_FILE=$K/keys SX_OPS_PORT=0 SX_LOG_LEVEL=warn "$B/sx-broker" 2>"$SX_TMP/broker.log" &
pids+=($!)
export SX_BROKER_PUB=$pub_ep SX_BROKER_SUB=$sub_ep SX_BROKER_PUBLIC_KEY=$bpub SX_LOG_LEVEL=warn
"$B/bustest" migrate cons_live cons_replay

wait_cursor() { # schema want timeout_s
    local t0=$SECONDS
    while :; do
        local c
        c=$("${PSQL[@]}" -c "SELECT coalesce((SELECT seq FROM $1.bus_cursor WHERE stream='prod'),0)")
        [ "$c" -ge "$2" ] && return 0
        [ $((SECONDS - t0)) -lt "$3" ] || { echo "bench-bus: $1 stuck at $c of $2" >&2; return 1; }
        sleep 0.05
    done
}
now() { date +%s.%N; }

SX_KEY_FILE=$K/relay.key "$B/bustest" relay 2>"$SX_TMP/relay.log" &
pids+=($!)
SX_KEY_FILE=$K/cons.key "$B/bustest" consume cons_live --batch 2>"$SX_TMP/cons_live.log" &
pids+=($!)
sleep 1
echo "bench-bus: $N events, fsync on" >&2
t0=$(now)
SX_KEY_FILE=$K/relay.key "$B/bustest" produce "$N" 1000 >"$SX_TMP/produce.out"
t_prod=$(now)
wait_cursor cons_live "$N" 900
t1=$(now)
durable=$(echo "$N / ($t1 - $t0)" | bc -l)
produce=$(echo "$N / ($t_prod - $t0)" | bc -l)

# Replay: a subscriber that starts with the whole stream behind it.
t2=$(now)
SX_KEY_FILE=$K/cons.key "$B/bustest" consume cons_replay --batch 2>"$SX_TMP/cons_replay.log" &
pids+=($!)
wait_cursor cons_replay "$N" 900
t3=$(now)
replay=$(echo "$N / ($t3 - $t2)" | bc -l)
# Both subscribers applied every event once, in order.
check=$("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM cons_live.effects) || ' ' ||
    (SELECT count(*) FROM cons_replay.effects) || ' ' ||
    (SELECT count(*) FROM cons_live.effects WHERE coalesce(prev,0) <> seq - 1) || ' ' ||
    (SELECT count(*) FROM cons_replay.effects WHERE coalesce(prev,0) <> seq - 1)")
[ "$check" = "$N $N 0 0" ] || { echo "bench-bus: wrong effects: $check" >&2; exit 1; }

# Reference: pgbench one-row insert transactions, 16 clients, same server, same run.
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS bench_ref (id bigserial PRIMARY KEY, v int, t text)"
echo "INSERT INTO bench_ref (v, t) VALUES (1, 'x');" >"$SX_TMP/ref.sql"
pgbench -n -c 16 -j 2 -T 10 -f "$SX_TMP/ref.sql" "$SX_PG_URL" >"$SX_TMP/pgbench.out" 2>&1
pgtps=$(grep -oE 'tps = [0-9.]+' "$SX_TMP/pgbench.out" | head -1 | awk '{print $3}')

printf '\n%-24s %14s %10s\n' metric value target
printf '%-24s %14.0f %10s\n' durable_events_per_s "$durable" ">=20000"
printf '%-24s %14.0f %10s\n' replay_events_per_s "$replay" ">=50000"
printf '%-24s %14.0f %10s\n' pg_single_insert_tps "$pgtps" "(ref)"
printf '%-24s %14.0f %10s\n' producer_events_per_s "$produce" ""
printf '%-24s %14.2f %10s\n' durable_vs_pgbench "$(echo "$durable / $pgtps" | bc -l)" ""
cat >"$out" <<JSON
{
  "events": $N,
  "fsync": true,
  "durable_events_per_s": $(printf '%.0f' "$durable"),
  "replay_events_per_s": $(printf '%.0f' "$replay"),
  "pg_single_insert_tps": $(printf '%.0f' "$pgtps"),
  "producer_events_per_s": $(printf '%.0f' "$produce"),
  "targets": {"durable_events_per_s": 20000, "replay_events_per_s": 50000}
}
JSON
echo "wrote $out" >&2
