#!/usr/bin/env bash
# pgbench against two systems, alternately, with one workload (insert.sql beside this script):
#   cluster:  hacluster on loopback, a coordinator, one primary and its synchronous mirror;
#   postgres: PostgreSQL with one synchronous streaming standby on loopback.
# Both are made, started and stopped by this script in a temporary directory that it removes
# on exit, failure and interruption included. Run with --help for the options.
set -euo pipefail
export LC_ALL=C

usage() {
    cat <<EOF
Usage: $(basename "$0") [OPTIONS]

Runs 'pgbench -n -f insert.sql -c C -j C -T DURATION' against hacluster (coordinator, one
primary, a synchronous mirror) and PostgreSQL (primary and a synchronous streaming standby),
both on loopback, alternating cluster, postgres, cluster, postgres ... for each client count.
Each system is started once and stopped at the end; the table 'bench' is created once per
system and grows across the runs. Prints a Markdown table per round and a summary per client
count: median TPS, median mean latency, and the ratios hacluster/PostgreSQL. Progress goes to
standard error, the tables to standard output.

Options (each also settable by the environment variable in brackets):
  --only SYSTEM           cluster, postgres or both [ONLY, default both]
  -T, --duration SECONDS  length of one pgbench run [T, default 20]
  -R, --rounds N          runs per system and client count [R, default 3]
  --clients "LIST"        client counts, space-separated [CLIENTS, default "1 8"]
  --hacluster PATH        the hacluster binary [HACLUSTER, default
                          \${CARGO_TARGET_DIR:-REPO/target}/release/hacluster, built with
                          'RUSTFLAGS= cargo build --release -p cluster --features real-io'
                          if missing]
  --pg-bindir DIR         PostgreSQL's server binaries [PG_BINDIR, default: pg_config
                          --bindir, /usr/lib/postgresql/15/bin, or where pg_ctl is found]
  --pg-user NAME          OS user that runs PostgreSQL when this script runs as root
                          [PG_OS_USER, default postgres; created with useradd if missing]
  --cluster-base-port P   hacluster's coordinator port; the primary and mirror take P+1, P+2,
                          the agent P+4; P..P+4 must be free [CLUSTER_BASE_PORT, default 25432]
  --cluster-sql-port S    hacluster's SQL (PostgreSQL protocol) port [CLUSTER_SQL_PORT,
                          default 25440]
  --pg-port P             PostgreSQL primary's port [PG_PORT, default 25450]
  --pg-standby-port P     PostgreSQL standby's port [PG_STANDBY_PORT, default 25451]
  --ready-timeout SECONDS how long to wait for each system to be up and synchronized
                          [READY_TIMEOUT, default 120]
  -h, --help              this text

Examples:
  $(basename "$0")                            # both systems, T=20, R=3, C = 1 and 8
  T=5 R=1 $(basename "$0") --only postgres    # a quick look at PostgreSQL alone
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
SQL_FILE=$SCRIPT_DIR/insert.sql

ONLY=${ONLY:-both}
T=${T:-20}
R=${R:-3}
CLIENTS=${CLIENTS:-1 8}
HACLUSTER=${HACLUSTER:-}
PG_BINDIR=${PG_BINDIR:-}
PG_OS_USER=${PG_OS_USER:-postgres}
CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-25432}
CLUSTER_SQL_PORT=${CLUSTER_SQL_PORT:-25440}
PG_PORT=${PG_PORT:-25450}
PG_STANDBY_PORT=${PG_STANDBY_PORT:-25451}
READY_TIMEOUT=${READY_TIMEOUT:-120}

say() { printf '%s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

need_value() { [[ $# -ge 2 ]] || die "option $1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        -T | --duration) need_value "$@"; T=$2; shift 2 ;;
        -R | --rounds) need_value "$@"; R=$2; shift 2 ;;
        --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
        --hacluster) need_value "$@"; HACLUSTER=$2; shift 2 ;;
        --pg-bindir) need_value "$@"; PG_BINDIR=$2; shift 2 ;;
        --pg-user) need_value "$@"; PG_OS_USER=$2; shift 2 ;;
        --cluster-base-port) need_value "$@"; CLUSTER_BASE_PORT=$2; shift 2 ;;
        --cluster-sql-port) need_value "$@"; CLUSTER_SQL_PORT=$2; shift 2 ;;
        --pg-port) need_value "$@"; PG_PORT=$2; shift 2 ;;
        --pg-standby-port) need_value "$@"; PG_STANDBY_PORT=$2; shift 2 ;;
        --ready-timeout) need_value "$@"; READY_TIMEOUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_port() { is_count "$1" && (($1 < 65536)); }

case $ONLY in
    both) SYSTEMS=(cluster postgres) ;;
    cluster | postgres) SYSTEMS=("$ONLY") ;;
    *) die "--only takes cluster, postgres or both, not '$ONLY'" ;;
esac
is_count "$T" || die "duration '$T' is not a positive whole number of seconds"
is_count "$R" || die "rounds '$R' is not a positive whole number"
is_count "$READY_TIMEOUT" || die "ready timeout '$READY_TIMEOUT' is not a positive whole number"
read -r -a CLIENT_COUNTS <<<"$CLIENTS"
[[ ${#CLIENT_COUNTS[@]} -gt 0 ]] || die "no client counts given"
for c in "${CLIENT_COUNTS[@]}"; do
    is_count "$c" || die "client count '$c' is not a positive whole number"
done
for p in "$CLUSTER_BASE_PORT" "$CLUSTER_SQL_PORT" "$PG_PORT" "$PG_STANDBY_PORT"; do
    is_port "$p" || die "'$p' is not a port"
done
((CLUSTER_BASE_PORT + 4 < 65536)) || die "--cluster-base-port leaves no room for 5 ports"
[[ -r $SQL_FILE ]] || die "cannot read $SQL_FILE"

wants() {
    local s
    for s in "${SYSTEMS[@]}"; do [[ $s == "$1" ]] && return 0; done
    return 1
}

# ---------------------------------------------------------------------------------------------
# State that the exit trap reads; everything it stops or removes was made by this script.

WORK=""
CHILD_PID=""
CLUSTER_DIR=""
CLUSTER_MADE=0
PG_ROOT=""
PG_PRIMARY_MADE=0
PG_STANDBY_MADE=0
B=""
PG_CTL=""

# The last lines of every log this run wrote, to see why it failed.
show_logs() {
    local f
    [[ -n $WORK && -d $WORK ]] || return 0
    while IFS= read -r f; do
        say "---- last lines of ${f#"$WORK"/}"
        tail -n 15 -- "$f" >&2
    done < <(find "$WORK" -name '*.log' -type f 2>/dev/null | sort)
}

# Kills, by the pid files under $1 (postmaster.pid, instance.pid, the agent's), the processes
# still running whose command line names $1 (so never a process that merely reused a pid).
kill_leftovers_under() {
    local dir=$1 f pid
    [[ -d $dir ]] || return 0
    while IFS= read -r f; do
        pid=$(head -n 1 -- "$f" 2>/dev/null | tr -dc '0-9')
        [[ -n $pid && -r /proc/$pid/cmdline ]] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"; then
            say "killing leftover process $pid ($f)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done < <(find "$dir" -name '*.pid' -type f 2>/dev/null)
}

stop_cluster() {
    ((CLUSTER_MADE)) || return 0
    CLUSTER_MADE=0
    say "stopping hacluster"
    if ! "$B" stop --cluster "$CLUSTER_DIR/cluster.json" >>"$WORK/cluster-stop.log" 2>&1; then
        "$B" stop -M immediate --cluster "$CLUSTER_DIR/cluster.json" \
            >>"$WORK/cluster-stop.log" 2>&1 || true
    fi
    kill_leftovers_under "$CLUSTER_DIR"
}

stop_pg_instance() {
    local dir=$1
    [[ -f $dir/postmaster.pid ]] || return 0
    as_pg "$PG_CTL" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_pg "$PG_CTL" -D "$dir" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    kill_leftovers_under "$dir"
}

stop_postgres() {
    if ((PG_PRIMARY_MADE)); then
        PG_PRIMARY_MADE=0
        say "stopping PostgreSQL primary"
        stop_pg_instance "$PG_ROOT/primary"
    fi
    if ((PG_STANDBY_MADE)); then
        PG_STANDBY_MADE=0
        say "stopping PostgreSQL standby"
        stop_pg_instance "$PG_ROOT/standby"
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM HUP
    # A reader gone (a closed pipe) must not cut the cleanup short: writes just fail.
    trap '' PIPE
    # A signal may arrive inside a redirected command; report on the script's own streams.
    exec 1>&3 2>&4
    if [[ -n $CHILD_PID ]]; then
        kill "$CHILD_PID" 2>/dev/null
        wait "$CHILD_PID" 2>/dev/null
        CHILD_PID=""
    fi
    # Logs help with a failure, not with an interruption.
    ((rc == 0 || rc == 129 || rc == 130 || rc == 141 || rc == 143)) || show_logs
    stop_cluster
    stop_postgres
    if [[ -n $WORK && -d $WORK ]]; then
        rm -rf -- "$WORK"
        say "removed $WORK"
    fi
    exit "$rc"
}
# The script's own streams, for the exit trap (the servers started below do not inherit them).
exec 3>&1 4>&2
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
trap 'say "hung up"; exit 129' HUP
trap 'exit 141' PIPE

# Runs $2... to completion in the background, its output into file $1, so that a signal reaches
# the traps at once (the exit trap then kills it); returns its status.
run_child() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

port_busy() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports_free() {
    local p
    for p in "$@"; do
        ! port_busy "$p" || die "port $p on 127.0.0.1 is in use; choose other ports (see --help)"
    done
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

has_server_tools() {
    local t
    for t in postgres initdb pg_ctl pg_basebackup; do [[ -x $1/$t ]] || return 1; done
}

# Sets PG_BINDIR to a directory holding postgres, initdb, pg_ctl and pg_basebackup.
find_pg_bindir() {
    local d
    local -a candidates=()
    if [[ -n $PG_BINDIR ]]; then
        has_server_tools "$PG_BINDIR" ||
            die "$PG_BINDIR lacks one of postgres, initdb, pg_ctl, pg_basebackup"
        return 0
    fi
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null) && candidates+=("$d")
    fi
    candidates+=(/usr/lib/postgresql/15/bin)
    for d in pg_ctl postgres; do
        if command -v "$d" >/dev/null 2>&1; then
            candidates+=("$(dirname "$(readlink -f "$(command -v "$d")")")")
        fi
    done
    for d in "${candidates[@]}"; do
        if has_server_tools "$d"; then
            PG_BINDIR=$d
            return 0
        fi
    done
    return 1
}

# Runs $@ as the PostgreSQL OS user (PostgreSQL refuses to run as root), from $PG_ROOT.
as_pg() {
    if ((EUID == 0)); then
        (cd "$PG_ROOT" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$PG_ROOT" && "$@")
    fi
}

pg_psql() {
    local port=$1
    shift
    "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

start_postgres() {
    local primary standby deadline n
    PG_CTL=$PG_BINDIR/pg_ctl
    if ((EUID == 0)); then
        command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run PostgreSQL as $PG_OS_USER"
        if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
            say "creating system user $PG_OS_USER to run PostgreSQL"
            useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
        fi
    fi
    check_ports_free "$PG_PORT" "$PG_STANDBY_PORT"
    PG_ROOT=$WORK/pg
    mkdir "$PG_ROOT"
    if ((EUID == 0)); then chown "$PG_OS_USER:" "$PG_ROOT"; fi
    as_pg test -w "$PG_ROOT" || die "$PG_OS_USER cannot write $PG_ROOT (is TMPDIR private?)"
    primary=$PG_ROOT/primary
    standby=$PG_ROOT/standby

    say "PostgreSQL: initdb in $primary"
    as_pg "$PG_BINDIR/initdb" -D "$primary" -U postgres --auth=trust --no-locale -E UTF8 \
        >"$PG_ROOT/initdb.log" 2>&1 || die "initdb failed: see $PG_ROOT/initdb.log"
    # Appended last, so these win over the defaults above them; fsync stays on (the default).
    # Only TCP on loopback: no Unix socket.
    as_pg tee -a "$primary/postgresql.conf" >/dev/null <<EOF

# pgbench_vs_postgres.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
fsync = on
synchronous_commit = on
synchronous_standby_names = '*'
wal_level = replica
max_wal_senders = 10
EOF
    PG_PRIMARY_MADE=1
    say "PostgreSQL: starting the primary on 127.0.0.1:$PG_PORT"
    as_pg "$PG_CTL" -D "$primary" -l "$PG_ROOT/primary.log" -w -t "$READY_TIMEOUT" start \
        >/dev/null 3>&- 4>&- || die "the PostgreSQL primary did not start"

    say "PostgreSQL: pg_basebackup -R into $standby"
    as_pg "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$standby" \
        -R -X stream -c fast >"$PG_ROOT/basebackup.log" 2>&1 ||
        die "pg_basebackup failed: see $PG_ROOT/basebackup.log"
    as_pg tee -a "$standby/postgresql.conf" >/dev/null <<EOF

# pgbench_vs_postgres.sh: the standby's own port
port = $PG_STANDBY_PORT
EOF
    PG_STANDBY_MADE=1
    say "PostgreSQL: starting the standby on 127.0.0.1:$PG_STANDBY_PORT"
    as_pg "$PG_CTL" -D "$standby" -l "$PG_ROOT/standby.log" -w -t "$READY_TIMEOUT" start \
        >/dev/null 3>&- 4>&- || die "the PostgreSQL standby did not start"

    say "PostgreSQL: waiting for the standby to stream synchronously"
    deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        n=$(pg_psql "$PG_PORT" -c "SELECT count(*) FROM pg_stat_replication
                                   WHERE state = 'streaming' AND sync_state = 'sync'" 2>/dev/null) ||
            n=0
        [[ $n == 1 ]] && break
        ((SECONDS < deadline)) || die "the standby was not a synchronous standby within ${READY_TIMEOUT} s"
        sleep 0.5
    done
    [[ $(pg_psql "$PG_STANDBY_PORT" -c "SELECT pg_is_in_recovery()") == t ]] ||
        die "the standby is not in recovery"
    pg_psql "$PG_PORT" -c "CREATE TABLE bench (id bigint PRIMARY KEY, v text)"
    PG_SETTINGS=$(pg_psql "$PG_PORT" -F ' ' -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
        FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'synchronous_standby_names',
        'wal_sync_method', 'shared_buffers', 'full_page_writes')")
    PG_VERSION=$("$PG_BINDIR/postgres" --version)
    say "PostgreSQL: ready ($PG_SETTINGS)"
}

# ---------------------------------------------------------------------------------------------
# hacluster

find_hacluster() {
    local target
    if [[ -n $HACLUSTER ]]; then
        [[ -x $HACLUSTER ]] || die "$HACLUSTER is not an executable"
        B=$HACLUSTER
        return 0
    fi
    target=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
    [[ $target == /* ]] || target=$REPO_ROOT/$target
    B=$target/release/hacluster
    if [[ ! -x $B ]]; then
        say "building $B"
        # An empty RUSTFLAGS clears the simulator's --cfg madsim (.cargo/config.toml).
        (cd "$REPO_ROOT" && RUSTFLAGS='' cargo build --release -p cluster --features real-io) >&2 ||
            die "the build failed"
        [[ -x $B ]] || die "the build made no $B"
    fi
}

start_cluster() {
    local deadline state
    find_hacluster
    # init-local: the coordinator on the base port, the primary and mirror after it, the host's
    # agent at base + 4.
    check_ports_free "$CLUSTER_BASE_PORT" "$((CLUSTER_BASE_PORT + 1))" \
        "$((CLUSTER_BASE_PORT + 2))" "$((CLUSTER_BASE_PORT + 3))" "$((CLUSTER_BASE_PORT + 4))" \
        "$CLUSTER_SQL_PORT"
    CLUSTER_DIR=$WORK/cluster
    say "hacluster: init-local in $CLUSTER_DIR"
    CLUSTER_MADE=1
    "$B" init-local --dir "$CLUSTER_DIR" --base-port "$CLUSTER_BASE_PORT" \
        --sql-port "$CLUSTER_SQL_PORT" >"$WORK/cluster-init.log" 2>&1 ||
        die "hacluster init-local failed (cluster-init.log below)"
    say "hacluster: starting (coordinator 127.0.0.1:$CLUSTER_BASE_PORT, SQL 127.0.0.1:$CLUSTER_SQL_PORT)"
    "$B" start --cluster "$CLUSTER_DIR/cluster.json" >"$WORK/cluster-start.log" 2>&1 3>&- 4>&- ||
        die "hacluster start failed (cluster-start.log below)"

    say "hacluster: waiting until every pair is synchronized"
    deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        # Every connection to the cluster is authenticated: state needs the cluster secret.
        state=$("$B" state --coordinator "127.0.0.1:$CLUSTER_BASE_PORT" \
            --secret "$CLUSTER_DIR/cluster.secret" 2>&1) || state=""
        grep -q "Pairs not synchronized: 0" <<<"$state" && break
        ((SECONDS < deadline)) ||
            die "hacluster was not synchronized within ${READY_TIMEOUT} s; last state: $state"
        sleep 0.5
    done
    [[ -r $CLUSTER_DIR/sql.password ]] || die "init-local wrote no $CLUSTER_DIR/sql.password"
    CLUSTER_PASSWORD=$(<"$CLUSTER_DIR/sql.password")
    PGPASSWORD=$CLUSTER_PASSWORD "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
        -p "$CLUSTER_SQL_PORT" -U gpadmin -d postgres \
        -c "CREATE TABLE bench (id bigint PRIMARY KEY, v text) DISTRIBUTED BY (id)" ||
        die "hacluster: CREATE TABLE bench failed"
    CLUSTER_VERSION=$("$B" --version 2>/dev/null || echo "hacluster (version unknown)")
    say "hacluster: ready"
}

# ---------------------------------------------------------------------------------------------
# Runs and results

declare -A TPS_OF LAT_OF
RUN_TPS="" RUN_LAT="" RUN_TXNS="" RUN_FAILED=""

# One pgbench run of system $1 with $2 clients (round $3); sets RUN_*.
run_pgbench() {
    local system=$1 c=$2 round=$3 out rc=0
    local -a conn
    out=$WORK/pgbench-$system-c$c-r$round.out
    case $system in
        cluster) conn=(-h 127.0.0.1 -p "$CLUSTER_SQL_PORT" -U gpadmin) ;;
        postgres) conn=(-h 127.0.0.1 -p "$PG_PORT" -U postgres) ;;
    esac
    say "round $round, C=$c: pgbench on $system for $T s"
    if [[ $system == cluster ]]; then
        PGPASSWORD=$CLUSTER_PASSWORD run_child "$out" "$PGBENCH" "${conn[@]}" -n -f "$SQL_FILE" \
            -c "$c" -j "$c" -T "$T" postgres || rc=$?
    else
        run_child "$out" "$PGBENCH" "${conn[@]}" -n -f "$SQL_FILE" \
            -c "$c" -j "$c" -T "$T" postgres || rc=$?
    fi
    if ((rc != 0)); then
        cat -- "$out" >&2
        die "pgbench on $system exited with status $rc"
    fi
    RUN_TPS=$(sed -n 's/^tps = \([0-9][0-9.]*\).*/\1/p' "$out" | head -n 1)
    RUN_LAT=$(sed -n 's/^latency average = \([0-9][0-9.]*\) ms.*/\1/p' "$out" | head -n 1)
    RUN_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)
    RUN_FAILED=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n 1)
    if [[ -z $RUN_TPS || -z $RUN_LAT || -z $RUN_TXNS ]]; then
        cat -- "$out" >&2
        die "could not read TPS, mean latency and transactions from pgbench's output"
    fi
    RUN_FAILED=${RUN_FAILED:-0}
    TPS_OF[$system,$c]+=" $RUN_TPS"
    LAT_OF[$system,$c]+=" $RUN_LAT"
}

label() {
    case $1 in
        cluster) echo hacluster ;;
        postgres) echo PostgreSQL ;;
    esac
}

# The median of the numbers in $1 (space-separated), or "-" for none.
median() {
    awk '{ for (i = 1; i <= NF; i++) print $i }' <<<"$1" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f\n", m
        }'
}

ratio() {
    if [[ $1 == - || $2 == - ]]; then
        echo -
    else
        awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f\n", a / b }'
    fi
}

fmt() { if [[ $1 == - ]]; then echo -; else printf "%.${2}f" "$1"; fi; }

# ---------------------------------------------------------------------------------------------
# Main

if ! find_pg_bindir; then
    wants postgres && die "no PostgreSQL server binaries found; pass --pg-bindir"
    PG_BINDIR=""
fi
# One pgbench and psql for both systems: those beside the server if there, else the PATH's.
if [[ -n $PG_BINDIR && -x $PG_BINDIR/pgbench ]]; then PGBENCH=$PG_BINDIR/pgbench; else
    PGBENCH=$(command -v pgbench) || die "no pgbench found"
fi
if [[ -n $PG_BINDIR && -x $PG_BINDIR/psql ]]; then PSQL=$PG_BINDIR/psql; else
    PSQL=$(command -v psql) || die "no psql found"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgbench-vs-postgres.XXXXXX")
chmod 0711 "$WORK"
say "working in $WORK"

PG_VERSION="" PG_SETTINGS="" CLUSTER_VERSION="" CLUSTER_PASSWORD=""
if wants cluster; then start_cluster; fi
if wants postgres; then start_postgres; fi

commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "# pgbench: hacluster vs PostgreSQL"
echo
echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, tree $commit"
echo "- $("$PGBENCH" --version): -n -f insert.sql -c C -j C -T $T, $R rounds, C in: ${CLIENT_COUNTS[*]}"
if wants cluster; then
    echo "- hacluster: $CLUSTER_VERSION ($B); coordinator + one primary + synchronous mirror on loopback"
fi
if wants postgres; then
    echo "- PostgreSQL: $PG_VERSION; primary + synchronous streaming standby on loopback; $PG_SETTINGS"
fi
echo

for c in "${CLIENT_COUNTS[@]}"; do
    for ((round = 1; round <= R; round++)); do
        rows=()
        for system in "${SYSTEMS[@]}"; do
            run_pgbench "$system" "$c" "$round"
            rows+=("| $(label "$system") | $(fmt "$RUN_TPS" 1) | $(fmt "$RUN_LAT" 3) | $RUN_TXNS | $RUN_FAILED |")
        done
        echo "## C=$c, round $round of $R"
        echo
        echo "| system | TPS | mean latency (ms) | transactions | failed |"
        echo "|---|---:|---:|---:|---:|"
        printf '%s\n' "${rows[@]}"
        echo
    done
done

echo "## Summary: medians over $R rounds of $T s"
echo
echo "| C | hacluster TPS | PostgreSQL TPS | TPS hacluster/PostgreSQL | hacluster latency (ms) | PostgreSQL latency (ms) | latency hacluster/PostgreSQL |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for c in "${CLIENT_COUNTS[@]}"; do
    ct=$(median "${TPS_OF[cluster,$c]:-}")
    pt=$(median "${TPS_OF[postgres,$c]:-}")
    cl=$(median "${LAT_OF[cluster,$c]:-}")
    pl=$(median "${LAT_OF[postgres,$c]:-}")
    echo "| $c | $(fmt "$ct" 1) | $(fmt "$pt" 1) | $(ratio "$ct" "$pt") | $(fmt "$cl" 3) | $(fmt "$pl" 3) | $(ratio "$cl" "$pl") |"
done
