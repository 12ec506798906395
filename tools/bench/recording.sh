#!/usr/bin/env bash
# make bench-recording: the whole-process record's append and verify speed (issue 5,
# "Benchmark") through the real sx-recording, with PostgreSQL references measured in the
# same run. Runs under tests/harness/with-servers with fsync ON.
#
#   build/bin/recload plays intake: it writes case events into intake's outbox, sequenced as
#   written like intake's case ops (batches of 1000 per transaction), and runs intake's
#   relay; the real sx-broker carries them; the real sx-recording appends each as the next
#   entry of its case's chain, in the transaction that moves its cursor (with its
#   record.appended event, sequenced as written too).
#
#   appends_per_s          live: BENCH_EVENTS events (default 200000) over BENCH_CASES
#                          cases (default 20, so 10,000 entries each), from the first
#                          produced to the last entry committed, recording running
#                          throughout (producer and relay on the same 2 cores)
#   catchup_appends_per_s  recording stopped, BENCH_EVENTS more events produced, then
#                          recording started: from its start to the last entry committed
#   verify_10k_ms          record.verify of one 10,000-entry chain through the door
#                          (median of 5; recomputes every entry's canonical bytes and hash)
#   wal_bytes_per_append   WAL written by the catch-up (recording alone, from a checkpoint,
#                          to its last event sequenced) over the entries appended:
#                          repeatable on a shared machine, where the rates are not
#   wal_records_per_append the same in WAL records (pg_stat_wal)
#   live_wal_bytes_per_append  WAL during the live run, producer and both relays included
#   cpu_us_per_append      catch-up: CPU time (user + system) of sx-recording and of its
#                          Postgres backends over the entries appended (steadier than
#                          the rates on a shared machine)
#   pg_single_insert_tps   reference: pgbench -c 16 -j 2, one INSERT per transaction, 10 s
#   pg_batch_events_per_s  reference: pgbench -c 1, transactions of 1000 "events", each one
#                          entry-shaped row (same columns, indexes, body size) and one
#                          outbox-shaped row: the bare writes of an append, 10 s
set -euo pipefail
B=${SX_BIN:?}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-build/bench/recording.json}
N=${BENCH_EVENTS:-200000}
C=${BENCH_CASES:-20}
mkdir -p "$(dirname "$out")"
K=$SX_TMP/rec-keys
mkdir -p "$K"
PSQL=(psql -qtA -v ON_ERROR_STOP=1 "$SX_PG_URL")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

bpub=$("$B/sxctl" keygen --dir "$K" broker)
{
    echo "$("$B/sxctl" keygen --dir "$K" intake) svc:intake"
    echo "$("$B/sxctl" keygen --dir "$K" recording) svc:recording"
    echo "$("$B/sxctl" keygen --dir "$K" ops) svc:sxctl"
} >"$K/keys"
pub_ep=tcp://127.0.0.1:$(free_port)
sub_ep=tcp://127.0.0.1:$(free_port)
rpc_ep=tcp://127.0.0.1:$(free_port)
ops_port=$(free_port)
SX_BROKER_PUB_BIND=$pub_ep SX_BROKER_SUB_BIND=$sub_ep SX_BROKER_KEY_FILE=$K/broker.key \
    SX_KEYS_FILE=$K/keys SX_OPS_PORT=0 SX_LOG_LEVEL=warn "$B/sx-broker" 2>"$SX_TMP/broker.log" &
pids+=($!)
export SX_BROKER_PUB=$pub_ep SX_BROKER_SUB=$sub_ep SX_BROKER_PUBLIC_KEY=$bpub
SX_KEY_FILE=$K/intake.key SX_LOG_LEVEL=warn "$B/recload" relay 2>"$SX_TMP/relay.log" &
pids+=($!)
for _ in $(seq 100); do
    [ "$("${PSQL[@]}" -c "SELECT to_regclass('intake.outbox') IS NOT NULL")" = t ] && break
    sleep 0.1
done

rpid=
start_recording() {
    SX_RECORDING_BIND=$rpc_ep SX_KEY_FILE=$K/recording.key SX_KEYS_FILE=$K/keys \
        SX_RECORDING_SIGN_KEY=$K/seal.key SX_OPS_PORT=$ops_port SX_SCHEMAS="$top/schemas" \
        SX_LOG_LEVEL=warn "$B/sx-recording" 2>>"$SX_TMP/recording.log" &
    rpid=$!
    pids+=($rpid)
    for _ in $(seq 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$ops_port/healthz" && return 0
        kill -0 "$rpid" 2>/dev/null || { echo "bench-recording: sx-recording exited" >&2; cat "$SX_TMP/recording.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench-recording: sx-recording not healthy" >&2
    exit 1
}
cursor() { "${PSQL[@]}" -c "SELECT coalesce((SELECT seq FROM recording.bus_cursor WHERE stream = 'intake'), 0)"; }
wait_cursor() { # want timeout_s
    local t0=$SECONDS c
    while :; do
        c=$(cursor)
        [ "$c" -ge "$1" ] && return 0
        [ $((SECONDS - t0)) -lt "$2" ] || { echo "bench-recording: recording stuck at $c of $1" >&2; return 1; }
        kill -0 "$rpid" 2>/dev/null || { echo "bench-recording: sx-recording died" >&2; return 1; }
        sleep 0.05
    done
}

# Until no row of schema $1's outbox waits for its relay (rows written sequenced never do).
wait_sequenced() { # schema timeout_s
    local t0=$SECONDS c
    while :; do
        c=$("${PSQL[@]}" -c "SELECT count(*) FROM $1.outbox WHERE seq IS NULL")
        [ "$c" -eq 0 ] && return 0
        [ $((SECONDS - t0)) -lt "$2" ] || { echo "bench-recording: $c rows of $1.outbox unsequenced" >&2; return 1; }
        sleep 0.05
    done
}
lsn() { "${PSQL[@]}" -c "SELECT pg_current_wal_lsn() || ' ' || wal_records FROM pg_stat_wal"; }

# 1. Live: recording running while intake's events arrive.
start_recording
echo "bench-recording: $N events over $C cases, live, fsync on" >&2
read -r lsn0 _ <<<"$(lsn)"
t0=$(now)
prod=$("$B/recload" produce "$N" "$C" 1)
wait_cursor "$N" 900
t1=$(now)
wait_sequenced recording 300
read -r lsn1 _ <<<"$(lsn)"
echo "recload: $prod" >&2
live=$(echo "$N / ($t1 - $t0)" | bc -l)

# Exactly once, and the chains are what they should be.
check=$("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM recording.entry) || ' ' ||
    (SELECT count(DISTINCT seq) FROM recording.entry) || ' ' ||
    (SELECT count(*) FROM recording.rcase WHERE n = $N / $C) || ' ' ||
    (SELECT count(*) FROM recording.outbox WHERE topic LIKE 'record.appended.%')")
[ "$check" = "$N $N $C $N" ] || { echo "bench-recording: wrong result: $check (want $N $N $C $N)" >&2; exit 1; }
body=$("${PSQL[@]}" -c "SELECT round(avg(octet_length(body))) FROM recording.entry")

# 2. verify of a 10,000-entry chain (case 1 holds N / C entries).
vline=$(SX_KEY_FILE=$K/ops.key "$B/recload" verify "$rpc_ep" "$K/recording.pub" 1 5)
echo "recload: $vline" >&2
vget() { echo "$vline" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
verify_ms=$(vget verify_ms) verify_count=$(vget count)
[ "$(vget ok)" = true ] || { echo "bench-recording: case 1 does not verify" >&2; exit 1; }

# 3. Catch-up: recording stopped while N more events pile up in intake's outbox.
kill "$rpid"
wait "$rpid" || true
"$B/recload" produce "$N" "$C" $((C + 1)) >/dev/null
wait_sequenced intake 300
"${PSQL[@]}" -c "CHECKPOINT"
read -r lsn2 rec2 <<<"$(lsn)"
t2=$(now)
start_recording
wait_cursor $((2 * N)) 900
t3=$(now)
wait_sequenced recording 300
read -r lsn3 rec3 <<<"$(lsn)"
# CPU of sx-recording and of its Postgres backends, all started with the catch-up.
bpids=$("${PSQL[@]}" -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
    WHERE application_name LIKE 'sx-recording%'")
ticks=0
for p in $rpid $bpids; do
    t=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
    ticks=$((ticks + t))
done
cpu=$(echo "$ticks * 1000000 / $(getconf CLK_TCK) / $N" | bc -l)
wal=$("${PSQL[@]}" -c "SELECT round(pg_wal_lsn_diff('$lsn3', '$lsn2') / $N)")
walrec=$(echo "($rec3 - $rec2) / $N" | bc -l)
livewal=$("${PSQL[@]}" -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / $N)")
catchup=$(echo "$N / ($t3 - $t2)" | bc -l)
entries=$("${PSQL[@]}" -c "SELECT count(*) || ' ' || count(DISTINCT seq) FROM recording.entry")
[ "$entries" = "$((2 * N)) $((2 * N))" ] || { echo "bench-recording: entries $entries after catch-up" >&2; exit 1; }
kill "$rpid"
wait "$rpid" || true

# References, same server, same run.
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS bench_ref (id bigserial PRIMARY KEY, v int, t text)"
echo "INSERT INTO bench_ref (v, t) VALUES (1, 'x');" >"$SX_TMP/ref.sql"
pgbench -n -c 16 -j 2 -T 10 -f "$SX_TMP/ref.sql" "$SX_PG_URL" >"$SX_TMP/pgbench.out" 2>&1
pgtps=$(grep -oE 'tps = [0-9.]+' "$SX_TMP/pgbench.out" | head -1 | awk '{print $3}')
"${PSQL[@]}" <<SQL
CREATE TABLE bench_entry (case_id bigint NOT NULL, n integer NOT NULL, event text NOT NULL,
    stage text, classification text, seq bigint NOT NULL, body bytea NOT NULL,
    hash bytea NOT NULL, PRIMARY KEY (case_id, n));
CREATE UNIQUE INDEX bench_entry_seq ON bench_entry (seq);
CREATE TABLE bench_outbox (id bigserial PRIMARY KEY, topic text NOT NULL, v int NOT NULL,
    data bytea NOT NULL, seq bigint);
CREATE SEQUENCE bench_seq;
SQL
cat >"$SX_TMP/ref_batch.sql" <<SQL
BEGIN;
SELECT nextval('bench_seq') * 1000 AS base \gset
INSERT INTO bench_entry SELECT (:base + g) % 20, (:base + g) / 20, 'case.recorded', 'investigation',
    'internal', :base + g, convert_to(repeat('x', $body), 'UTF8'), sha256(int8send(:base + g))
    FROM generate_series(0, 999) g;
INSERT INTO bench_outbox (topic, v, data) SELECT 'record.appended.91110000600037341L', 1,
    convert_to(repeat('y', 160), 'UTF8') FROM generate_series(0, 999) g;
COMMIT;
SQL
pgbench -n -c 1 -T 10 -f "$SX_TMP/ref_batch.sql" "$SX_PG_URL" >"$SX_TMP/pgbench_batch.out" 2>&1
bref=$(grep -oE 'tps = [0-9.]+' "$SX_TMP/pgbench_batch.out" | head -1 | awk '{print $3 * 1000}')

printf '\n%-26s %14s %10s\n' metric value target
printf '%-26s %14.0f %10s\n' appends_per_s "$live" ">=10000"
printf '%-26s %14.0f %10s\n' catchup_appends_per_s "$catchup" ">=10000"
printf '%-26s %14.1f %10s\n' verify_10k_ms "$verify_ms" ""
printf '%-26s %14s %10s\n' verify_chain_entries "$verify_count" "10000"
printf '%-26s %14s %10s\n' wal_bytes_per_append "$wal" ""
printf '%-26s %14.2f %10s\n' wal_records_per_append "$walrec" ""
printf '%-26s %14s %10s\n' live_wal_bytes_per_append "$livewal" ""
printf '%-26s %14.1f %10s\n' cpu_us_per_append "$cpu" ""
printf '%-26s %14.0f %10s\n' pg_single_insert_tps "$pgtps" "(ref)"
printf '%-26s %14.0f %10s\n' pg_batch_events_per_s "$bref" "(ref)"
printf '%-26s %14.2f %10s\n' appends_vs_pg_single "$(echo "$live / $pgtps" | bc -l)" ""
printf '%-26s %14.2f %10s\n' appends_vs_pg_batch "$(echo "$live / $bref" | bc -l)" ""
printf '%-26s %14s %10s\n' entry_body_bytes "$body" ""
cat >"$out" <<JSON
{
  "events": $N,
  "cases": $C,
  "fsync": true,
  "appends_per_s": $(printf '%.0f' "$live"),
  "catchup_appends_per_s": $(printf '%.0f' "$catchup"),
  "verify_10k_ms": $verify_ms,
  "verify_chain_entries": $verify_count,
  "wal_bytes_per_append": $wal,
  "wal_records_per_append": $(printf '%.2f' "$walrec"),
  "live_wal_bytes_per_append": $livewal,
  "cpu_us_per_append": $(printf '%.1f' "$cpu"),
  "pg_single_insert_tps": $(printf '%.0f' "$pgtps"),
  "pg_batch_events_per_s": $(printf '%.0f' "$bref"),
  "entry_body_bytes": $body,
  "targets": {"appends_per_s": 10000}
}
JSON
echo "wrote $out" >&2
