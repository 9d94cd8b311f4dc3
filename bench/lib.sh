# Shared by the bench/ scripts (sourced): build and sandbox, a work directory whose processes
# are stopped on exit, CPU accounting and medians.
# Expects ROOT; sets BIN, WORK, PIDS.
BIN="${SLUICE_BIN:-$ROOT/build/sluice}"
[ -x "$BIN" ] || "$ROOT/integration/dev.sh" build
"$ROOT/integration/sandbox.sh" up >/dev/null

# The sandbox servers accept TLS; libpq's default (sslmode=prefer) would then encrypt direct and
# HAProxy connections only. Plain TCP unless a script asks for TLS.
export PGSSLMODE="${PGSSLMODE:-disable}"

WORK="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# utime+stime of a process (all threads), in microseconds.
cpu_us() { echo $(($(awk '{print $14 + $15}' "/proc/$1/stat") * 1000000 / $(getconf CLK_TCK))); }
# utime alone (user space: the proxy's own instructions; the rest is the kernel's work for it).
user_us() { echo $(($(awk '{print $14}' "/proc/$1/stat") * 1000000 / $(getconf CLK_TCK))); }
# Voluntary context switches of a process so far (its live threads): how often it waited.
waits_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {v += $2} END {print v + 0}'; }
# Runs a command; after its output, one line "rusage USER_US SYS_US WAITS PREEMPTIONS" (its
# getrusage: CPU time, voluntary and involuntary context switches, all its threads).
with_rusage() {
  python3 -c 'import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
sys.stdout.flush()
print("rusage %d %d %d %d" % (ru.ru_utime * 1e6, ru.ru_stime * 1e6, ru.ru_nvcsw, ru.ru_nivcsw))
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else 0)' "$@"
}
# Waits (up to a minute) until the sandbox's PostgreSQL replica ($PG_REPLICA_PORT) has replayed
# everything the primary ($PG_PORT) has written so far.
wait_pg_replica() {
  local lsn
  lsn="$(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -c 'select pg_current_wal_lsn()')"
  for _ in $(seq 1 600); do
    [ "$(psql -X -At -h 127.0.0.1 -p "$PG_REPLICA_PORT" -U postgres -d app \
          -c "select pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
    sleep 0.1
  done
}
# Median of the whitespace-separated numbers on stdin ("-" when there are none).
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }

# PgBouncer in transaction mode in front of the sandbox primary's database "app" (user app/app,
# SCRAM), listening on 127.0.0.1:$1 with default_pool_size $2; further [pgbouncer] lines (TLS)
# on stdin. Writes $WORK/pgbouncer.ini and $WORK/userlist.txt.
# The user list holds the server's own SCRAM secret for app (read from pg_authid): PgBouncer then
# checks a client's proof against it and logs in to the server with the client's keys, as its
# documentation describes for identical secrets, with no key derivation of its own. Given
# the plain password instead, it would derive the salted key (4096 PBKDF2 rounds, about 6.6 ms
# of CPU here) at every client login, which the benches' CPU per transaction would count.
# BENCH_BOUNCER_PLAIN=1 keeps that plain-password set-up (the benches' before 2026-12-07).
write_pgbouncer_ini() {
  local secret=""
  if [ "${BENCH_BOUNCER_PLAIN:-0}" != 1 ]; then
    secret="$(psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
      -c "select rolpassword from pg_authid where rolname = 'app'" 2>/dev/null || true)"
    case "$secret" in
      SCRAM-SHA-256\$*) ;;
      *) echo "bench: no SCRAM secret for app on port $PG_PORT; PgBouncer gets the plain password" >&2; secret="" ;;
    esac
  fi
  echo "\"app\" \"${secret:-app}\"" >"$WORK/userlist.txt"
  {
    cat <<CONF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $1
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = $2
max_client_conn = 2000
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
unix_socket_dir =
CONF
    cat
  } >"$WORK/pgbouncer.ini"
}

# Starts PgBouncer from $WORK/pgbouncer.ini (daemonized) and prints its PID. As root it runs as
# postgres (it refuses root) through setpriv, which keeps this shell's open-file limit (runuser
# starts from the default one).
start_pgbouncer() {
  find "$WORK" -maxdepth 1 -type f -exec chmod 644 {} +
  rm -f "$WORK/pgbouncer.pid"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$WORK"
    setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer -d "$WORK/pgbouncer.ini" 2>>"$WORK/pgbouncer.err"
  else
    pgbouncer -d "$WORK/pgbouncer.ini" 2>>"$WORK/pgbouncer.err"
  fi
  for _ in $(seq 1 50); do [ -s "$WORK/pgbouncer.pid" ] && break; sleep 0.1; done
  cat "$WORK/pgbouncer.pid"
}

# A Sluice config in front of the sandbox primary's database "app" (user app/app, plain TCP to
# the server), transaction mode: written to $1, listening on 127.0.0.1:$2, `workers = $3`,
# pool_size $4; further [general] lines on stdin.
write_sluice_pg_toml() {
  {
    printf '[general]\nworkers = %s\nlog_level = "warn"\n' "$3"
    cat
    cat <<CONF
[postgres]
listen = "127.0.0.1:$2"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
server_tls = "disable"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = $4
CONF
  } >"$1"
}

# A Sluice config in front of the sandbox MariaDB primary's database "app" (user app/app),
# transaction mode: written to $1, MySQL on 127.0.0.1:$2 (PostgreSQL on $2 + 1000, unused),
# `workers = $3`, pool_size $4, `server_tls = $5` when given; further [general] lines on stdin.
# Expects MY_PORT.
write_sluice_my_toml() {
  {
    printf '[general]\nworkers = %s\nlog_level = "warn"\n' "$3"
    cat
    cat <<CONF
[postgres]
listen = "127.0.0.1:$(($2 + 1000))"
[mysql]
listen = "127.0.0.1:$2"
[[users]]
name = "app"
password = "app"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
CONF
    [ -n "${5:-}" ] && printf 'server_tls = "%s"\n' "$5"
    cat <<CONF
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = $4
CONF
  } >"$1"
}

# HAProxy in TCP mode in front of the sandbox MariaDB primary (one server connection per client):
# written to $1, listening on 127.0.0.1:$2, `maxconn $3`; further [global] lines on stdin.
# Expects MY_PORT.
write_haproxy_my_cfg() {
  {
    printf 'global\n  maxconn %s\n' "$3"
    sed 's/^/  /'
    cat <<CONF
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen my
  bind 127.0.0.1:$2
  server primary 127.0.0.1:$MY_PORT
CONF
  } >"$1"
}

# For the many-client benches: $WORK/sluice.toml (default workers, 127.0.0.1:$SLUICE_PORT),
# $WORK/sluice1.toml (one worker, $SLUICE1_PORT) and $WORK/pgbouncer.ini ($BOUNCER_PORT, plain TCP
# to the server), pool_size $POOL_SIZE, all admitting $1 clients.
write_many_client_configs() {
  write_sluice_pg_toml "$WORK/sluice.toml" "$SLUICE_PORT" 0 "$POOL_SIZE" <<<"max_client_conn = $1"
  sed -e "s/^workers = .*/workers = 1/" -e "s/127.0.0.1:$SLUICE_PORT/127.0.0.1:$SLUICE1_PORT/" "$WORK/sluice.toml" \
    >"$WORK/sluice1.toml"
  write_pgbouncer_ini "$BOUNCER_PORT" "$POOL_SIZE" </dev/null
  sed -i -e "s/^max_client_conn = .*/max_client_conn = $1/" "$WORK/pgbouncer.ini"
  echo "server_tls_sslmode = disable" >>"$WORK/pgbouncer.ini"
}

# PgBouncer, Sluice (default workers) and Sluice with one worker from the files
# write_many_client_configs wrote, waited for, their PIDs kept for cleanup; then
# `port_of target` and `pid_of target` (pgbouncer, sluice, sluice-1w).
start_pg_proxies() {
  BOUNCER_PID="$(start_pgbouncer)"
  PIDS+=("$BOUNCER_PID")
  "$BIN" -c "$WORK/sluice.toml" >/dev/null 2>>"$WORK/sluice.log" &
  SLUICE_PID=$!
  PIDS+=("$SLUICE_PID")
  "$BIN" -c "$WORK/sluice1.toml" >/dev/null 2>>"$WORK/sluice1.log" &
  SLUICE1_PID=$!
  PIDS+=("$SLUICE1_PID")
  local port
  for port in $BOUNCER_PORT $SLUICE_PORT $SLUICE1_PORT; do
    for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.1; done
  done
}
port_of() { case "$1" in pgbouncer) echo "$BOUNCER_PORT" ;; sluice) echo "$SLUICE_PORT" ;; *) echo "$SLUICE1_PORT" ;; esac; }
pid_of() { case "$1" in pgbouncer) echo "$BOUNCER_PID" ;; sluice) echo "$SLUICE_PID" ;; *) echo "$SLUICE1_PID" ;; esac; }

# The instructions callgrind counts in process $2 (its dumps in $WORK/cg-$1) while the command
# after the first three arguments runs: counters zeroed before it, dumped after it. With
# BENCH_KEEP the dump is kept as $BENCH_KEEP/$1.$3. CG_USER: run callgrind_control as that user
# (the one that owns the process).
callgrind_count() {
  local name=$1 pid=$2 tag=$3 f
  shift 3
  local ctl=(callgrind_control)
  [ -n "${CG_USER:-}" ] && ctl=(runuser -u "$CG_USER" -- callgrind_control)
  "${ctl[@]}" -z "$pid" >/dev/null
  "$@" >/dev/null 2>&1
  "${ctl[@]}" -d "$pid" >/dev/null
  sleep 0.5  # the dump file is complete
  f="$(ls -t "$WORK/cg-$name"/cg.out.*.* | head -1)"
  if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp "$f" "$BENCH_KEEP/$name.$tag"; fi
  callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
