# deploy/lib/servers.sh: start and stop a PostgreSQL 15 and a redis-server on loopback,
# by PID. Sourced by tests/harness/with-servers (throw-away servers) and deploy/dev-stack
# (`make run`, servers whose data is kept under var/).
#
# After sx_pg_start DIR: sx_pg_pid, sx_pg_port. After sx_redis_start DIR: sx_redis_pid,
# sx_redis_port. Both pick a free loopback port and retry on a bind race.

SX_PGBIN=${SX_PGBIN:-/usr/lib/postgresql/15/bin}
sx_pg_pid=""
sx_redis_pid=""
# A caller that stops the servers itself, in order, sets sx_detach=(setsid): the servers
# then leave the terminal's process group, so Ctrl-C reaches only the caller.
sx_detach=()

sx_check_tools() {
    [ -x "$SX_PGBIN/initdb" ] || { echo "no PostgreSQL 15 in $SX_PGBIN (run deploy/install-deps)" >&2; return 2; }
    command -v redis-server >/dev/null || { echo "redis-server not found (run deploy/install-deps)" >&2; return 2; }
}

# PostgreSQL refuses to run as root: then the cluster belongs to the 'postgres' system
# user (made by the postgresql package) or, failing that, 'nobody'. setpriv execs in
# place (runuser would fork and not pass signals on), so $! is the postmaster itself.
sx_as_pg=()
sx_pguser=""
if [ "$(id -u)" -eq 0 ]; then
    sx_pguser=postgres
    id "$sx_pguser" >/dev/null 2>&1 || sx_pguser=nobody
    sx_as_pg=(setpriv --reuid="$sx_pguser" --regid="$(id -g "$sx_pguser")" --init-groups --)
fi

sx_stop_pid() { # pid signal [target]: signal target (default pid), wait up to 10 s, then SIGKILL
    local pid=$1 sig=$2 target=${3:-$1} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" -- "$target" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "$target" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

sx_port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sx_free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        sx_port_taken "$p" || { echo "$p"; return; }
    done
}

# sx_pg_start DIR [PORT] [extra postgres args...]: initdb DIR/pg once (user sx, trust auth
# on loopback), start it, wait until it answers, make database sx. Sockets in DIR/pgsock.
# The Postgres settings sanxiang runs with (docker-compose.yml passes the same; README,
# "Postgres"): room for the services' hot tables and a WAL stream of tens of MB/s. With
# the defaults (128MB, wal_buffers 4MB, max_wal_size 1GB) bench-pipeline checkpointed
# every 27 s and its backends wrote dirty pages themselves: 1,378 cases/s against 1,540.
# min_wal_size=2GB keeps that much WAL in recycled segments through a quiet spell: a
# segment made anew is zero-filled and fsynced inside some commit (bench-intake's p99 on
# a fresh cluster: 28.8 ms, against 19.7 ms on recycled segments).
sx_pg_tuning=(-c shared_buffers=1GB -c wal_buffers=64MB -c max_wal_size=8GB
    -c min_wal_size=2GB -c checkpoint_timeout=15min)

# sx_pg_url DIR: the libpq URL of the cluster sx_pg_start DIR started, through its Unix
# socket in DIR/pgsock. Loopback TCP costs every statement a trip through the network
# stack on both ends: bench-intake gave 16,850 acks/s over TCP and 19,339 over the socket
# (pgbench's reference 16,413 and 17,543). A directory a URL cannot carry as it is
# falls back to TCP on 127.0.0.1.
sx_pg_url() {
    local sock=$1/pgsock
    case $sock in
    *[!A-Za-z0-9/._-]*) echo "postgresql://sx@127.0.0.1:$sx_pg_port/sx" ;;
    *) echo "postgresql://sx@/sx?host=$sock&port=$sx_pg_port" ;;
    esac
}

# initdb's collation is C: byte order, which for UTF-8 is the code-point order C.UTF-8
# sorts by too, but compared with memcmp instead of strcoll (Postgres 15 treats only "C"
# and "POSIX" as the fast case). Text keys (agency codes, case numbers, rids) are in most
# of the hot indexes: intake's statements took 7% less time (pg_stat_statements,
# bench-intake). Character classes (upper, lower, regexes) stay C.UTF-8's.
sx_pg_start() {
    local dir=$1 want=${2:-} attempt i port
    shift 2 || shift $#
    mkdir -p "$dir/pgsock"
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
        mkdir -p "$dir/pg"
        [ -z "$sx_pguser" ] || chown "$sx_pguser" "$dir/pg" "$dir/pgsock"
        "${sx_as_pg[@]}" "$SX_PGBIN/initdb" -D "$dir/pg" -U sx --auth=trust -E UTF8 \
            --locale=C.UTF-8 --lc-collate=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 2; }
    fi
    [ -z "$sx_pguser" ] || chown "$sx_pguser" "$dir/pgsock"
    for attempt in 1 2 3 4 5; do
        port=${want:-$(sx_free_port)}
        "${sx_detach[@]}" "${sx_as_pg[@]}" "$SX_PGBIN/postgres" -D "$dir/pg" -p "$port" -k "$dir/pgsock" \
            -c listen_addresses=127.0.0.1 -c max_connections=200 "${sx_pg_tuning[@]}" \
            "$@" >>"$dir/pg.log" 2>&1 &
        sx_pg_pid=$!
        for i in $(seq 1 100); do
            "$SX_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U sx && break
            kill -0 "$sx_pg_pid" 2>/dev/null || break
            sleep 0.1
        done
        if "$SX_PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U sx; then
            sx_pg_port=$port
            "$SX_PGBIN/psql" -qtA -h 127.0.0.1 -p "$port" -U sx -d postgres \
                -c "SELECT 1 FROM pg_database WHERE datname = 'sx'" | grep -q 1 ||
                "$SX_PGBIN/psql" -q -h 127.0.0.1 -p "$port" -U sx -d postgres \
                    -c 'CREATE DATABASE sx' >/dev/null
            return 0
        fi
        sx_stop_pid "$sx_pg_pid" INT
        sx_pg_pid=""
        [ -z "$want" ] || break
    done
    echo "PostgreSQL did not start; its log:" >&2
    tail -n 20 "$dir/pg.log" >&2
    return 2
}

# sx_redis_start DIR [PORT] [extra redis-server args...]
sx_redis_start() {
    local dir=$1 want=${2:-} attempt i port
    shift 2 || shift $#
    for attempt in 1 2 3 4 5; do
        port=${want:-$(sx_free_port)}
        "${sx_detach[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no \
            --logfile "$dir/redis.log" "$@" &
        sx_redis_pid=$!
        for i in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
            kill -0 "$sx_redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            sx_redis_port=$port
            return 0
        fi
        sx_stop_pid "$sx_redis_pid" TERM
        sx_redis_pid=""
        [ -z "$want" ] || break
    done
    echo "redis-server did not start; its log:" >&2
    tail -n 20 "$dir/redis.log" >&2
    return 2
}

# Stops both, PostgreSQL with its "fast" shutdown (SIGINT).
sx_servers_stop() {
    sx_stop_pid "$sx_redis_pid" TERM
    sx_stop_pid "$sx_pg_pid" INT
}
