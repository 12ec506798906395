#!/usr/bin/env bash
# make bench-portal: requests per second of the public portal (issue 7, "Benchmark"),
# with nginx serving a static file of the same size as the search answer, measured in the
# same run as the reference. Runs under tests/harness/with-servers (fsync on).
#
#   A real sx-publication (with a real sx-broker) over BENCH_RECORDS (default 20000)
#   published decisions of 30 agencies, 2024..2026, loaded into PostgreSQL with SQL
#   (penalties with their 双公示 fields, licences, inspections; a third natural persons,
#   masked). Then wrk (-t2 -c BENCH_CONN, default 64, BENCH_SECONDS each, default 10):
#
#   search_rps         GET /api/v1/decisions?type=penalty&page=2 (JSON, 20 items) on an
#                      sx-publication as shipped: SX_PORTAL_MAX_STALE_MS at its default
#                      (1000: answers may lag a commit by up to 1 s, sparing the
#                      data-version read per request; portal.h); search_html_rps the same
#                      search as the HTML page
#   *_strict_rps       on a second sx-publication over the same database with
#                      SX_PORTAL_MAX_STALE_MS=0 (every answer reflects every commit made
#                      before the request):
#     search_strict_rps       the JSON search above
#     search_html_strict_rps  GET /?type=penalty&page=2      (the HTML search page)
#     detail_rps              GET /api/v1/decisions/<id>     (JSON)
#     detail_html_rps         GET /decisions/<id>            (the HTML decision page)
#     search_mixed_strict_rps the JSON search over 8000 different type/page/size keys (wrk
#                      script, random): most requests are the first of their key, so
#                      this is mostly the database's figure, not the cache's
#   nginx_static_rps   nginx (nginx-light, its own temp prefix, worker_processes 2) serving
#                      a static file of the same size as the search JSON answer
#   p99_ms             wrk's 99th percentile latency of search_rps
#   search_vs_nginx    search_rps / nginx_static_rps (issue target >= 0.6); and
#                      search_strict_vs_nginx
set -euo pipefail
B=${SX_BIN:?}
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-build/bench/portal.json}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONN:-64}
records=${BENCH_RECORDS:-20000}
mkdir -p "$(dirname "$out")"
K=$SX_TMP/portal-keys
N=$SX_TMP/portal-nginx
mkdir -p "$K" "$N/logs" "$N/html"
PSQL=(psql -qtA -v ON_ERROR_STOP=1 "$SX_PG_URL")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
        { echo "bench-portal: $tool not installed (deploy/install-deps)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# 30 agency codes (统一社会信用代码) with their GB 32100 check character.
agencies=$(python3 - <<'PY'
cs = "0123456789ABCDEFGHJKLMNPQRTUWXY"
w = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
for i in range(30):
    body = "116202000139%05d" % (26100 + i)
    c = (31 - sum(cs.index(ch) * w[k] for k, ch in enumerate(body)) % 31) % 31
    print(body + cs[c])
PY
)
bpub=$("$B/sxctl" keygen --dir "$K" broker)
ppub=$("$B/sxctl" keygen --dir "$K" publication)
echo "$ppub svc:publication" >"$K/keys"
pub_ep=tcp://127.0.0.1:$(free_port)
sub_ep=tcp://127.0.0.1:$(free_port)
rpc_ep=tcp://127.0.0.1:$(free_port)
port=$(free_port)
SX_BROKER_PUB_BIND=$pub_ep SX_BROKER_SUB_BIND=$sub_ep SX_BROKER_KEY_FILE=$K/broker.key \
    SX_KEYS_FILE=$K/keys SX_OPS_PORT=0 SX_LOG_LEVEL=warn "$B/sx-broker" 2>"$SX_TMP/broker.log" &
pids+=($!)
SX_PUBLICATION_BIND=$rpc_ep SX_KEY_FILE=$K/publication.key SX_KEYS_FILE=$K/keys \
    SX_BROKER_PUB=$pub_ep SX_BROKER_SUB=$sub_ep SX_BROKER_PUBLIC_KEY=$bpub \
    SX_OPS_PORT=0 SX_PORTAL_PORT=$port SX_PORTAL_MAX_STALE_MS=0 SX_SCHEMAS="$top/schemas" \
    SX_CALENDAR="$top/schemas/calendar/cn-workdays.json" \
    SX_LOG_LEVEL=warn "$B/sx-publication" 2>"$SX_TMP/publication.log" &
spid=$!
pids+=($spid)
wait_up() { # PORT PID LOG
    for _ in $(seq 150); do
        curl -sf -o /dev/null "http://127.0.0.1:$1/healthz" && return 0
        kill -0 "$2" 2>/dev/null || { echo "bench-portal: sx-publication exited" >&2; cat "$3" >&2; exit 1; }
        sleep 0.2
    done
    echo "bench-portal: sx-publication did not answer on $1" >&2
    exit 1
}
wait_up "$port" "$spid" "$SX_TMP/publication.log"
# The second instance: every instance serves reads (issue 7, "Scaling").
sport=$(free_port)
SX_PUBLICATION_BIND=tcp://127.0.0.1:$(free_port) SX_KEY_FILE=$K/publication.key SX_KEYS_FILE=$K/keys \
    SX_BROKER_PUB=$pub_ep SX_BROKER_SUB=$sub_ep SX_BROKER_PUBLIC_KEY=$bpub \
    SX_OPS_PORT=0 SX_PORTAL_PORT=$sport SX_SCHEMAS="$top/schemas" \
    SX_CALENDAR="$top/schemas/calendar/cn-workdays.json" \
    SX_LOG_LEVEL=warn "$B/sx-publication" 2>"$SX_TMP/publication2.log" &
s2pid=$!
pids+=($s2pid)
wait_up "$sport" "$s2pid" "$SX_TMP/publication2.log"

# The published records, as publication keeps them (body = what the public sees).
codes=$(echo $agencies | sed "s/ /','/g")
"${PSQL[@]}" <<SQL
INSERT INTO publication.agency (code, name, version)
    SELECT c, '嘉峪关市第' || n || '执法局', 1
    FROM unnest(ARRAY['$codes']) WITH ORDINALITY AS a(c, n);
INSERT INTO publication.record (agency, case_id, case_no, type, decision_no, decision_date,
    party_name, party_uscc, body, state, due_on, warn_on, published_at, decided_by, version)
SELECT a.code, g, 'C-' || g, t.type, d.no, d.day, p.name, p.uscc,
    jsonb_build_object(
        'agency', jsonb_build_object('code', a.code, 'name', a.name),
        'party', jsonb_build_object('kind', p.kind, 'name', p.name, 'id_type', p.id_type,
                                    'id_no', p.id_no),
        'case_no', 'C-' || g, 'type', t.type, 'type_zh', t.zh,
        'conclusion', t.concl, 'decision_no', d.no, 'decision_date', d.day::text,
        'category', t.cat, 'legal_basis', '《中华人民共和国食品安全法》第一百二十六条第一款第（五）项',
        'fine', t.fine, 'confiscation', '0',
        'sgs', CASE WHEN t.type = 'penalty' THEN jsonb_build_object(
                'CF_WSH', d.no, 'CF_XDR_MC', p.name, 'CF_XDR_LB', p.lb,
                'CF_XDR_SHXYM', coalesce(p.uscc, ''), 'CF_XDR_ZJLX', '01',
                'CF_XDR_ZJHM', p.id_no, 'CF_WFXW', t.cat, 'CF_SY', '经营超过保质期的食品',
                'CF_YJ', '《中华人民共和国食品安全法》第一百二十四条', 'CF_CFLB', '罚款;没收违法所得',
                'CF_NR', t.concl, 'CF_NR_FK', t.fine, 'CF_NR_WFFF', '0',
                'CF_JDRQ', to_char(d.day, 'YYYY/MM/DD'), 'CF_YXQ', '2099/12/31',
                'CF_GSJZQ', to_char(d.day + 365, 'YYYY/MM/DD'), 'CF_CFJG', a.name,
                'CF_CFJGDM', a.code, 'CF_SJLY', a.name, 'CF_SJLYDM', a.code)
             WHEN t.type = 'licence' THEN jsonb_build_object(
                'XK_XKWS', '食品经营许可决定书', 'XK_WSH', d.no, 'XK_XDR_MC', p.name,
                'XK_XDR_LB', p.lb, 'XK_XKLB', '01', 'XK_NR', t.concl,
                'XK_JDRQ', to_char(d.day, 'YYYY/MM/DD'), 'XK_YXQZ', to_char(d.day, 'YYYY/MM/DD'),
                'XK_YXQZI', '2099/12/31', 'XK_XKJG', a.name, 'XK_XKJGDM', a.code,
                'XK_LYDW', a.name, 'XK_LYDWDM', a.code, 'XK_ZT', '1')
             ELSE NULL END),
    'published', d.day + 9, d.day + 7, d.day::timestamptz + interval '5 days', 'bench', 1
FROM generate_series(1, $records) AS g
CROSS JOIN LATERAL (SELECT code, name FROM publication.agency
                    ORDER BY code OFFSET g % 30 LIMIT 1) AS a
CROSS JOIN LATERAL (SELECT (date '2024-01-01' + (g * 7919) % 1050) AS day,
                           '嘉市监罚〔' || (2024 + (g % 3)) || '〕' || g || '号' AS no) AS d
CROSS JOIN LATERAL (SELECT * FROM (VALUES
        (0, 'penalty', '行政处罚', '罚款', '罚款人民币' || (g % 50 + 1) * 1000 || '元，没收违法所得',
         ((g % 50 + 1) * 0.1)::text),
        (1, 'licence', '行政许可', '普通', '准予食品经营许可，许可项目：预包装食品销售', '0'),
        (2, 'inspection', '行政检查', '双随机抽查', '未发现问题', '0'),
        (3, 'penalty', '行政处罚', '警告', '警告，责令改正', '0'))
        AS x(k, type, zh, cat, concl, fine) WHERE k = g % 4) AS t
CROSS JOIN LATERAL (SELECT CASE WHEN g % 3 = 0 THEN 'person' ELSE 'org' END AS kind,
        CASE WHEN g % 3 = 0 THEN '张**' ELSE '嘉峪关某某' || g || '商贸有限公司' END AS name,
        CASE WHEN g % 3 = 0 THEN 'idcard' ELSE 'uscc' END AS id_type,
        CASE WHEN g % 3 = 0 THEN '620200************' ELSE '' END AS id_no,
        CASE WHEN g % 3 = 0 THEN NULL END AS uscc,
        CASE WHEN g % 3 = 0 THEN '自然人' ELSE '法人及非法人组织' END AS lb) AS p;
ANALYZE publication.record;
SQL
n=$("${PSQL[@]}" -c "SELECT count(*) FROM publication.record WHERE state = 'published'")
id=$("${PSQL[@]}" -c "SELECT id FROM publication.record WHERE type = 'penalty' ORDER BY id LIMIT 1 OFFSET 100")
echo "bench-portal: $n published records, wrk -t2 -c$conns ${secs}s per endpoint, fsync on" >&2

base=http://127.0.0.1:$port
search="/api/v1/decisions?type=penalty&page=2"
curl -sf -o "$N/html/search.json" "$base$search"
size=$(stat -c %s "$N/html/search.json")
for u in "$search" "/?type=penalty&page=2" "/api/v1/decisions/$id" "/decisions/$id"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base$u")
    [ "$code" = 200 ] || { echo "bench-portal: $u answered $code" >&2; exit 1; }
done

# The reference: a static file of the search answer's size (its own bytes, so the same).
nport=$(free_port)
cat >"$N/nginx.conf" <<CONF
worker_processes 2;
pid $N/nginx.pid;
error_log $N/logs/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $N/tmp; proxy_temp_path $N/tmp; fastcgi_temp_path $N/tmp;
    uwsgi_temp_path $N/tmp; scgi_temp_path $N/tmp;
    server {
        listen 127.0.0.1:$nport;
        root $N/html;
        location / { add_header Cache-Control "public, max-age=60"; etag on; }
    }
}
CONF
mkdir -p "$N/tmp"
"$NGINX" -p "$N" -c "$N/nginx.conf" 2>"$N/logs/stderr.log" &
npid=$!
pids+=($npid)
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$nport/search.json" && break
    kill -0 "$npid" 2>/dev/null || { echo "bench-portal: nginx exited" >&2; cat "$N/logs/"* >&2; exit 1; }
    sleep 0.1
done

# The mixed search: 2 types x 200 pages x 20 page sizes, in a random order per thread.
cat >"$N/mixed.lua" <<'LUA'
local types = {"penalty", "licence"}
request = function()
    local path = "/api/v1/decisions?type=" .. types[math.random(2)] .. "&page=" ..
        math.random(200) .. "&size=" .. math.random(11, 30)
    return wrk.format("GET", path)
end
LUA

# run NAME URL [wrk args...]: prints "rps p99_ms".
run() {
    local name=$1 url=$2
    shift 2
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$url" >"$N/$name.out" 2>&1 ||
        { echo "bench-portal: wrk $name failed" >&2; cat "$N/$name.out" >&2; exit 1; }
    local rps p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$N/$name.out")
    p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; print v}' "$N/$name.out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$N/$name.out")
    [ -z "$non2xx" ] || { echo "bench-portal: $name: $non2xx non-2xx answers" >&2; exit 1; }
    echo "$rps ${p99:-0}"
}
read -r nginx_rps nginx_p99 < <(run nginx "http://127.0.0.1:$nport/search.json")
read -r search_rps search_p99 < <(run search "$base$search")
read -r shtml_rps shtml_p99 < <(run search_html "$base/?type=penalty&page=2")
read -r detail_rps detail_p99 < <(run detail "$base/api/v1/decisions/$id")
read -r dhtml_rps dhtml_p99 < <(run detail_html "$base/decisions/$id")
read -r mixed_rps mixed_p99 < <(run mixed "$base/api/v1/decisions" -s "$N/mixed.lua")
sbase=http://127.0.0.1:$sport
read -r stale_rps stale_p99 < <(run search_stale "$sbase$search")
read -r sthtml_rps sthtml_p99 < <(run search_html_stale "$sbase/?type=penalty&page=2")
# nginx again at the end: the machine is shared, so the reference brackets the run.
read -r nginx2_rps nginx2_p99 < <(run nginx2 "http://127.0.0.1:$nport/search.json")
kill -0 "$spid" 2>/dev/null || { echo "bench-portal: sx-publication died" >&2; exit 1; }
nginx_avg=$(echo "($nginx_rps + $nginx2_rps) / 2" | bc -l)
ratio=$(echo "$search_rps / $nginx_avg" | bc -l)
sratio=$(echo "$stale_rps / $nginx_avg" | bc -l)

printf '\n%-24s %12s %10s %10s\n' endpoint requests_s p99_ms target
printf '%-24s %12.0f %10.2f %10s\n' search_json "$stale_rps" "$stale_p99" ">=0.6x"
printf '%-24s %12.0f %10.2f %10s\n' search_html "$sthtml_rps" "$sthtml_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' search_json_strict "$search_rps" "$search_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' search_html_strict "$shtml_rps" "$shtml_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' detail_json_strict "$detail_rps" "$detail_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' detail_html_strict "$dhtml_rps" "$dhtml_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' search_mixed_json_strict "$mixed_rps" "$mixed_p99" ""
printf '%-24s %12.0f %10.2f %10s\n' nginx_static_before "$nginx_rps" "$nginx_p99" "(ref)"
printf '%-24s %12.0f %10.2f %10s\n' nginx_static_after "$nginx2_rps" "$nginx2_p99" "(ref)"
printf '%-24s %12.2f %10s %10s\n' search_vs_nginx "$sratio" "" ">=0.6"
printf '%-24s %12.2f %10s %10s\n' search_strict_vs_nginx "$ratio" "" ""
printf '(%s published records; answer size %s bytes; wrk -t2 -c%s, %ss each; *_strict: SX_PORTAL_MAX_STALE_MS=0, the others at its default, 1000)\n' "$n" "$size" "$conns" "$secs"
cat >"$out" <<JSON
{
  "records": $n,
  "connections": $conns,
  "seconds": $secs,
  "fsync": true,
  "body_bytes": $size,
  "max_stale_ms": 1000,
  "search_rps": $(printf '%.0f' "$stale_rps"),
  "search_html_rps": $(printf '%.0f' "$sthtml_rps"),
  "search_strict_rps": $(printf '%.0f' "$search_rps"),
  "search_html_strict_rps": $(printf '%.0f' "$shtml_rps"),
  "detail_rps": $(printf '%.0f' "$detail_rps"),
  "detail_html_rps": $(printf '%.0f' "$dhtml_rps"),
  "search_mixed_strict_rps": $(printf '%.0f' "$mixed_rps"),
  "p99_ms": $stale_p99,
  "p99_ms_by_endpoint": {"search": $stale_p99, "search_html": $sthtml_p99,
                         "search_strict": $search_p99, "search_html_strict": $shtml_p99,
                         "detail_strict": $detail_p99, "detail_html_strict": $dhtml_p99,
                         "search_mixed_strict": $mixed_p99},
  "nginx_static_rps": $(printf '%.0f' "$nginx_avg"),
  "nginx_static_rps_before_after": [$(printf '%.0f' "$nginx_rps"), $(printf '%.0f' "$nginx2_rps")],
  "search_vs_nginx": $(printf '%.3f' "$sratio"),
  "search_strict_vs_nginx": $(printf '%.3f' "$ratio"),
  "targets": {"search_vs_nginx": 0.6}
}
JSON
echo "wrote $out" >&2
