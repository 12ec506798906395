#!/usr/bin/env bash
# make bench-pipeline: cases per second from intake to the credit platform, each stage's
# lag over time, and each process's peak resident memory, with pgbench's one-row insert
# transactions measured in the same run as the reference (these machines are noisy; only
# ratios compare). Runs under tests/harness/with-servers with fsync ON.
#
# tools/pipeload starts the world (sx-broker, the five services, fake-credit: the
# processes whose VmHWM it reports), registers one agency, drives licence cases for
# BENCH_SECONDS (default 60) — case.open + case.propose + case.decide from the bureau's
# system, publication.approve from its publisher for each draft it hears — with at most
# BENCH_INFLIGHT (default 5000) cases between submission and publication, then waits
# (bounded: 120 s for publication, 120 s for pushes) until every case was pushed.
# BENCH_CLIENTS (pipeload's default 8, at most 16) intake connections, each with up to
# 256 requests in flight.
#
#   cases_per_s         cases pushed / (last push - first submission)
#   max_stage_lag_s     the largest time a case spent in one stage (intake: submitted ->
#                       decided; intake_relay: decided -> case.decided heard through the
#                       broker; publication_draft: that event -> drafted; approval:
#                       drafted -> published; creditpush: published -> sent)
#   stage_lag_growth_s_per_min, rss_growth_mb_per_min
#                       the least-squares slope of each stage's per-second max lag and of
#                       each process's RSS over the second half of the load: near 0 when
#                       a stage keeps up and a service's memory is flat
#   peak_rss_mb         VmHWM per process at the end (the 64 MiB target is sanxiang's;
#                       fake-credit stands in for the platform's database and keeps every
#                       record it accepted, so it grows with the run by design)
#   cpu_s, cpu_us_per_case
#                       CPU seconds from the first submission to the last push, and per
#                       case pushed: each process, Postgres (postmaster and every backend),
#                       the machine (every process, /proc/stat); cpu_budget_us_per_case is
#                       what the target leaves a case (cores * 1e6 / 5000)
#   pg_single_insert_tps  pgbench -c 16 -j 2, one INSERT per transaction, 10 s
#
# Output: the table on stdout, $BENCH_OUT (build/bench/pipeline.json) and pipeline.svg
# beside it (the lags over time).
set -euo pipefail
S=${BENCH_SECONDS:-60}
INF=${BENCH_INFLIGHT:-5000}
B=${SX_BIN:?}
out=${BENCH_OUT:-build/bench/pipeline.json}
svg="$(dirname "$out")/pipeline.svg"
mkdir -p "$(dirname "$out")"
top=$(cd "$(dirname "$0")/../.." && pwd)
export SX_TOP="$top"

# Reference first, on the same server, while nothing else runs.
PSQL=(psql -qtA "$SX_PG_URL")
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS bench_ref (id bigserial PRIMARY KEY, v int, t text)"
echo "INSERT INTO bench_ref (v, t) VALUES (1, 'x');" >"$SX_TMP/ref.sql"
pgbench -n -c 16 -j 2 -T 10 -f "$SX_TMP/ref.sql" "$SX_PG_URL" >"$SX_TMP/pgbench.out" 2>&1
pgtps=$(grep -oE 'tps = [0-9.]+' "$SX_TMP/pgbench.out" | head -1 | awk '{print $3}')
"${PSQL[@]}" -c "DROP TABLE bench_ref"
echo "bench-pipeline: pgbench reference $pgtps one-row insert tps; now $S s of pipeline load" >&2

rc=0
timeout $((S + 420)) "$B/pipeload" --seconds "$S" --inflight "$INF" --out "$out" --svg "$svg" \
    --reference-tps "$pgtps" ${BENCH_CLIENTS:+--clients "$BENCH_CLIENTS"} || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "bench-pipeline: pipeload exited $rc; service logs in $SX_TMP (SX_KEEP_TMP=1 keeps them)" >&2
    grep -h 'level=error' "$SX_TMP"/*.log 2>/dev/null | head -20 >&2 || true
fi
[ -f "$out" ] && echo "wrote $out and $svg" >&2
exit "$rc"
