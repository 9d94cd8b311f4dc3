#!/usr/bin/env bash
# The fault matrix (issue 8), each case under a running pgbench tpcb-like load through Sluice
# (and, where it matters, a read-only load that the router sends to the replica). Every case
# asserts: Sluice stays up; clients the fault does not touch see no error; affected clients only
# lose work in flight; afterwards no server connection is left inside a transaction; and the data
# is consistent (pgbench's invariant: the sums of pgbench_branches.bbalance,
# pgbench_tellers.tbalance and pgbench_accounts.abalance equal the sum of pgbench_history.delta).
#   integration/fault_test.sh /path/to/sluice [case ...]     # default: every case
# Cases: killed_clients replica_kill replica_immediate replica_stop reload_storm connection_storm slow_clients
#        mysql_killed_clients (sysbench oltp_read_write as the load, a counter table as the check)
#        mysql_replica_kill mysql_replica_shutdown (sysbench oltp_read_only as the load)
#        password_flood address_flood killed_mid_stream
#        online_upgrade (SIGUSR2 twice under a pgbench load of writes and replica reads)
#        cache_staleness (two more Sluice instances, the cache on with invalidation = "stream",
#        sharing the sandbox's Redis, killed mid-run: integration/staleness_check.py for
#        STALENESS_SECONDS, default 60)
#        mysql_primary_failover primary_failover (last: they rebuild the sandbox's replicas)
# Uses the sandbox from SLUICE_SANDBOX_SCRIPT (ports from the SLUICE_PG_* variables).
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice [case ...]}"
shift
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(killed_clients replica_kill replica_immediate replica_stop reload_storm
                                  connection_storm slow_clients killed_mid_stream mysql_killed_clients
                                  mysql_replica_kill mysql_replica_shutdown password_flood address_flood
                                  online_upgrade cache_staleness mysql_primary_failover
                                  primary_failover)
SANDBOX="${SLUICE_SANDBOX_SCRIPT:?set SLUICE_SANDBOX_SCRIPT to integration/sandbox.sh}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PG_REPLICA_PORT="${SLUICE_PG_REPLICA_PORT:-15433}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
MY_REPLICA_PORT="${SLUICE_MY_REPLICA_PORT:-13307}"
PORT="${SLUICE_TEST_PORT:-26540}"
MYSQL_PORT=$((PORT + 1))
MAX_CLIENTS=40
WORK="$(mktemp -d)"
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
SLUICE_PID=""
BG=()

cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
  # An upgraded Sluice is not this script's child: stopped by the pid its file names.
  if [ -n "${UPGRADE_PID_FILE:-}" ] && [ -f "$UPGRADE_PID_FILE" ]; then kill "$(cat "$UPGRADE_PID_FILE")" 2>/dev/null || true; fi
  # Leave the replica running whatever happened.
  if [ -n "${STOPPED_PID:-}" ]; then kill -CONT $STOPPED_PID 2>/dev/null || true; fi
  "$SANDBOX" start-pg-replica >/dev/null 2>&1 || true
  if [ -n "$SLUICE_PID" ]; then kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

write_config() {  # extra [general] lines
  cat >"$WORK/sluice.toml" <<CONF
[general]
workers = 2
max_client_conn = $MAX_CLIENTS
log_level = "${LOG_LEVEL:-warn}"
query_wait_timeout = "20s"
client_login_timeout = "3s"
login_failure_delay = "4s"  # far above any login's own time, so a held correct login shows
$1
[postgres]
listen = ["127.0.0.1:$PORT", "[::1]:$PORT"]
[mysql]
listen = "127.0.0.1:$MYSQL_PORT"
$2
[[users]]
name = "app"
password = "app"
auth = "password"  # a raw test client logs in without SCRAM
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
replicas = ["127.0.0.1:$PG_REPLICA_PORT"]
health_check_period = "200ms"
consistency = "read_your_writes"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 8
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
replicas = ["127.0.0.1:$MY_REPLICA_PORT"]
health_check_period = "200ms"
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 8
CONF
}

start_sluice() {  # [general] lines, more sections
  write_config "${1:-}" "${2:-}"
  "$BIN" -c "$WORK/sluice.toml" 2>>"$WORK/sluice.log" &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && return 0; sleep 0.1; done
  echo "FAIL Sluice did not start"; cat "$WORK/sluice.log"; exit 1
}

restart_sluice() {  # as start_sluice, after stopping the running one
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
  start_sluice "$@"
}

direct() { psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -c "$1"; }

invariant_holds() {
  [ "$(direct "select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(tbalance) from pgbench_tellers)  = (select coalesce(sum(delta),0) from pgbench_history)")" = t ]
}

# Server connections of the app user left inside a transaction (Sluice's own or orphaned).
in_transaction() {
  direct "select count(*) from pg_stat_activity where usename = 'app' and state like 'idle in transaction%'"
}

# pgbench through Sluice in the background: name, seconds, clients, options...
load() {
  local name=$1 secs=$2 clients=$3
  shift 3
  PGPASSWORD=app timeout $((secs + 60)) pgbench -n -c "$clients" -j 2 -T "$secs" "$@" -h 127.0.0.1 -p "$PORT" -U app app \
    >"$WORK/$name.out" 2>&1 &
  BG+=($!)
  eval "${name}_PID=$!"
}

# Waits for a load; sets PROCESSED, ABORTED (clients pgbench aborted on an error), FAILED
# (transactions pgbench reports failed) and STATUS.
finish() {
  local pid_var="${1}_PID"
  STATUS=0
  wait "${!pid_var}" || STATUS=$?
  PROCESSED="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/$1.out")"
  PROCESSED="${PROCESSED:-0}"
  ABORTED="$(grep -c "client [0-9]* .*aborted" "$WORK/$1.out" || true)"
  FAILED="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/$1.out")"
  FAILED="${FAILED:-0}"
}

fail=0
report() {  # ok?, case, message
  if [ "$1" = 0 ]; then echo "ok   $2: $3"; else echo "FAIL $2: $3"; fail=1; fi
}

common_checks() {  # case name: Sluice up, nothing left in a transaction, invariant
  local c=$1 ok=0
  kill -0 "$SLUICE_PID" 2>/dev/null || { report 1 "$c" "Sluice exited"; cat "$WORK/sluice.log"; exit 1; }
  local left=1
  for _ in $(seq 1 50); do left="$(in_transaction)"; [ "$left" = 0 ] && break; sleep 0.1; done
  [ "$left" = 0 ] || ok=1
  invariant_holds || ok=1
  report $ok "$c" "Sluice up; $left server sessions left in a transaction; balance invariant $(invariant_holds && echo holds || echo BROKEN)"
}

# 4. Clients killed mid-transaction: a pgbench whose transactions pause between their statements
# is killed with SIGKILL while most of its clients are inside one. Their server connections must
# be rolled back or closed, never handed to another client mid-transaction (which would commit
# half a transfer and break the invariant). Meanwhile a normal load runs untouched.
case_killed_clients() {
  cat >"$WORK/slow_tpcb.sql" <<'SQL'
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
\sleep 30 ms
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
\sleep 30 ms
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
SQL
  load steady 8 4
  for round in 1 2 3; do
    PGPASSWORD=app pgbench -n -c 6 -j 1 -T 30 -f "$WORK/slow_tpcb.sql" -h 127.0.0.1 -p "$PORT" -U app app \
      >"$WORK/victim$round.out" 2>&1 &
    local victim=$!
    sleep 1.5
    kill -9 "$victim"
    wait "$victim" 2>/dev/null || true
  done
  finish steady
  local processed=$PROCESSED aborted=$ABORTED status=$STATUS
  local ok=0
  { [ "$status" = 0 ] && [ "$aborted" = 0 ] && [ "$processed" -gt 0 ]; } || ok=1
  report $ok killed_clients "untouched load: $processed transactions, $aborted aborted clients, exit $status"
  common_checks killed_clients
}

# 4 (continued). Clients that vanish mid-COPY FROM STDIN and in the middle of a large result:
# raw connections that send part of a COPY (or read part of the rows) and then close. Their
# server connections are in no state to reuse: Sluice must close them (the COPY rolls back: no
# partial rows land), and the load beside them continues.
case_killed_mid_stream() {
  load steady 8 4
  python3 - "$PORT" >"$WORK/midstream.out" 2>&1 <<'PY'
import socket, struct, sys, time
port = int(sys.argv[1])
def msg(t, body): return t + struct.pack(">I", len(body) + 4) + body
def login():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = struct.pack(">I", 196608) + b"user\0app\0database\0app\0\0"
    s.sendall(struct.pack(">I", len(body) + 4) + body)
    buf = b""
    while b"Z\0\0\0\x05" not in buf:
        data = s.recv(65536)
        if not data: raise SystemExit("closed during login")
        buf += data
        if b"R\0\0\0\x08\0\0\0\x03" in buf:
            buf = buf.replace(b"R\0\0\0\x08\0\0\0\x03", b"")
            s.sendall(msg(b"p", b"app\0"))
    return s
for i in range(3):
    s = login()  # mid-COPY: the server waits for more data when the client disappears
    s.sendall(msg(b"Q", b"COPY pgbench_history (tid, bid, aid, delta) FROM STDIN\0"))
    time.sleep(0.2)
    s.sendall(msg(b"d", b"".join(b"1\t1\t1\t%d\n" % (1000 + j) for j in range(500))))
    time.sleep(0.3)
    s.close()
    s = login()  # mid-result: a few KB of a large answer read, then gone
    s.sendall(msg(b"Q", b"select repeat('x', 200) from generate_series(1, 200000)\0"))
    got = 0
    while got < 20000:
        got += len(s.recv(4096))
    s.close()
    time.sleep(0.2)
print("done")
PY
  finish steady
  local ok=0
  { [ "$STATUS" = 0 ] && [ "$ABORTED" = 0 ] && [ "$PROCESSED" -gt 0 ] && grep -q done "$WORK/midstream.out"; } || ok=1
  report $ok killed_mid_stream "load beside 3 abandoned COPYs and 3 abandoned results: $PROCESSED transactions, $ABORTED aborted, exit $STATUS"
  local partial
  partial="$(direct "select count(*) from pgbench_history where delta between 1000 and 1499 and tid = 1 and aid = 1")"
  ok=0
  [ "$partial" = 0 ] || ok=1
  report $ok killed_mid_stream "rows from the abandoned COPYs in pgbench_history: $partial"
  local busy
  busy="$(direct "select count(*) from pg_stat_activity where usename = 'app' and state = 'active' and query like 'COPY%'")"
  [ "$busy" = 0 ]; report $? killed_mid_stream "server sessions still in the abandoned COPY: $busy"
  common_checks killed_mid_stream
}

# Checks the "writes" and "reads" loads of a replica fault: writes untouched; reads served, with
# at most `allowed` clients aborted by an error in flight on the replica.
writes_and_reads() {  # case, allowed
  finish writes
  local ok=0
  { [ "$STATUS" = 0 ] && [ "$ABORTED" = 0 ] && [ "$PROCESSED" -gt 0 ]; } || ok=1
  report $ok "$1" "writes: $PROCESSED transactions, $ABORTED aborted clients, exit $STATUS"
  finish reads
  ok=0
  { [ "$PROCESSED" -gt 0 ] && [ "$ABORTED" -le "$2" ] && { [ "$2" != 0 ] || [ "$STATUS" = 0 ]; }; } || ok=1
  report $ok "$1" "reads: $PROCESSED transactions, $ABORTED clients aborted by an error in flight (allowed: $2), exit $STATUS"
}

# 1. The replica goes away under a write load and three read loads (pgbench -S over the simple,
# extended and prepared protocols), then comes back: kill -9 of its postmaster (its backends end
# their connections with FATAL "unexpected postmaster exit") or pg_ctl stop -m immediate (a
# "terminating connection" warning, then the close). A pooler hides exactly this: reads in
# flight there run again on another member; no client is aborted and no transaction fails.
replica_fault_pg() {  # case, kill9 | immediate
  local c=$1
  load writes 10 4
  load rsimple 10 3 -S -M simple
  load rextended 10 3 -S -M extended
  load rprepared 10 3 -S -M prepared
  sleep 2
  if [ "$2" = kill9 ]; then kill -9 "$("$SANDBOX" pid pg-replica)"; else "$SANDBOX" stop-pg-replica >/dev/null; fi
  sleep 3
  "$SANDBOX" start-pg-replica >/dev/null
  local load ok
  for load in writes rsimple rextended rprepared; do
    finish "$load"
    ok=0
    { [ "$STATUS" = 0 ] && [ "$ABORTED" = 0 ] && [ "$FAILED" = 0 ] && [ "$PROCESSED" -gt 0 ]; } || ok=1
    report $ok "$c" "$load: $PROCESSED transactions, $ABORTED aborted clients, $FAILED failed, exit $STATUS"
    # The errors that aborted clients (pgbench prints them before its summary), then the summary.
    [ $ok = 0 ] || { grep -m5 -i "error\|aborted" "$WORK/$load.out" || true; tail -5 "$WORK/$load.out"; }
  done
  common_checks "$c"
}
case_replica_kill() { replica_fault_pg replica_kill kill9; }
case_replica_immediate() { replica_fault_pg replica_immediate immediate; }

# 3. SIGSTOP the replica for longer than the health check timeout, then SIGCONT: the health
# checks take it out, new reads go to the primary meanwhile, writes are untouched, and reads
# stuck on the stopped server finish once it continues.
case_replica_stop() {
  load writes 10 4
  load reads 10 4 -S
  sleep 2
  # The whole server: its postmaster and every process it started (backends, WAL receiver).
  local postmaster
  postmaster="$("$SANDBOX" pid pg-replica)"
  STOPPED_PID="$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
  kill -STOP $STOPPED_PID
  sleep 4
  kill -CONT $STOPPED_PID
  STOPPED_PID=""
  writes_and_reads replica_stop 0
  grep -q "failed its health check" "$WORK/sluice.log" || { report 1 replica_stop "no health check noticed the stop"; }
  common_checks replica_stop
}

# 8. The config reloaded 30 times under load: nobody notices.
case_reload_storm() {
  load writes 6 4
  load reads 6 4 -S
  for _ in $(seq 1 30); do kill -HUP "$SLUICE_PID"; sleep 0.15; done
  finish writes
  local wp=$PROCESSED wa=$ABORTED ws=$STATUS
  finish reads
  local rp=$PROCESSED ra=$ABORTED rs=$STATUS
  local ok=0
  { [ "$ws" = 0 ] && [ "$wa" = 0 ] && [ "$rs" = 0 ] && [ "$ra" = 0 ]; } || ok=1
  report $ok reload_storm "writes $wp, reads $rp transactions; aborted clients $wa/$ra; exit $ws/$rs"
  common_checks reload_storm
}

# 5. A connection storm at 10x max_client_conn: the excess gets a clear error (53300, too many
# connections) at login, connected clients are untouched, and Sluice serves new ones afterwards.
case_connection_storm() {
  load steady 8 4
  sleep 1
  local storm=$((MAX_CLIENTS * 10))
  PGPASSWORD=app timeout 60 pgbench -n -c "$storm" -j 2 -t 5 -S -h 127.0.0.1 -p "$PORT" -U app app >"$WORK/storm.out" 2>&1 || true
  local refused
  refused="$(grep -c "too many\|53300" "$WORK/storm.out" || true)"
  finish steady
  local processed=$PROCESSED aborted=$ABORTED status=$STATUS
  local ok=0
  { [ "$status" = 0 ] && [ "$aborted" = 0 ] && [ "$processed" -gt 0 ] && [ "$refused" -gt 0 ]; } || ok=1
  report $ok connection_storm "$storm connections at once: refused with 'too many' ($refused lines); steady load $processed transactions, $aborted aborted, exit $status"
  local after
  after="$(PGPASSWORD=app psql -X -At -h 127.0.0.1 -p "$PORT" -U app -d app -c 'select 42' 2>&1)"
  [ "$after" = 42 ]; report $? connection_storm "a new client after the storm: $after"
  common_checks connection_storm
}

# 6. Slow clients: one sends its startup packet a byte a second (client_login_timeout ends it),
# another asks for a large result and stops reading. Others keep their speed; Sluice's memory
# stays bounded (it reads from the server only as fast as that client takes the rows).
case_slow_clients() {
  local rss_before rss_after
  rss_before="$(awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status")"
  python3 - "$PORT" >"$WORK/slow.out" 2>&1 <<'PY' &
import socket, struct, sys, threading, time
port = int(sys.argv[1])

def msg(t, body):
    return t + struct.pack(">I", len(body) + 4) + body

def dribble():  # the startup packet, one byte per second
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = struct.pack(">I", 196608) + b"user\0app\0database\0app\0\0"
    start, closed = time.time(), None
    for b in struct.pack(">I", len(body) + 4) + body:
        try:
            s.sendall(bytes([b]))
            s.settimeout(1.0)
            if s.recv(1024) == b"":
                closed = time.time() - start
                break
        except socket.timeout:
            pass
        except OSError:
            closed = time.time() - start
            break
    print("dribble closed after %.1f" % closed if closed is not None else "dribble closed after never", flush=True)

def stall():  # logs in (auth = "password"), asks for ~25 MB of rows, never reads them
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = struct.pack(">I", 196608) + b"user\0app\0database\0app\0\0"
    s.sendall(struct.pack(">I", len(body) + 4) + body)
    buf = b""
    while b"Z\0\0\0\x05" not in buf:
        data = s.recv(4096)
        if not data:
            print("stall: connection closed during login", flush=True)
            return
        buf += data
        if b"R\0\0\0\x08\0\0\0\x03" in buf:  # AuthenticationCleartextPassword
            buf = buf.replace(b"R\0\0\0\x08\0\0\0\x03", b"")
            s.sendall(msg(b"p", b"app\0"))
    s.sendall(msg(b"Q", b"select repeat(md5(g::text), 25) from generate_series(1, 30000) g\0"))
    print("stall: query sent, not reading", flush=True)
    time.sleep(14)
    s.close()

t = threading.Thread(target=stall)
t.start()
dribble()
t.join()
PY
  BG+=($!)
  local helper=$!
  sleep 1
  load steady 6 4 -S
  finish steady
  local processed=$PROCESSED aborted=$ABORTED status=$STATUS
  rss_after="$(awk '/VmRSS/ {print $2}' "/proc/$SLUICE_PID/status")"
  local ok=0
  { [ "$status" = 0 ] && [ "$aborted" = 0 ] && [ "$processed" -gt 100 ]; } || ok=1
  report $ok slow_clients "load beside a stalled reader and a dribbling login: $processed transactions, $aborted aborted, exit $status"
  wait "$helper" 2>/dev/null || true
  local closed
  closed="$(sed -n 's/^dribble closed after \([0-9.]*\).*/\1/p' "$WORK/slow.out")"
  ok=0
  { [ -n "$closed" ] && [ "${closed%.*}" -le 6 ]; } || ok=1
  report $ok slow_clients "the byte-a-second login was closed after ${closed:-never} s (client_login_timeout 3s)"
  grep -q "query sent, not reading" "$WORK/slow.out" || { report 1 slow_clients "the stalled reader did not get to its query: $(cat "$WORK/slow.out")"; }
  if [ "${SLUICE_SANITIZED:-0}" = 1 ]; then
    echo "     slow_clients: RSS not checked under sanitizers (ASan's quarantine keeps freed memory)"
  else
    ok=0
    [ $((rss_after - rss_before)) -lt 16384 ] || ok=1
    report $ok slow_clients "Sluice RSS ${rss_before} -> ${rss_after} KiB with a 25 MB result unread"
  fi
  common_checks slow_clients
}

# 7. A flood of wrong passwords from 8 parallel guessers for 5 s (all from 127.0.0.1, like the
# load): after login_failure_burst failures the address's failures are answered only after
# login_failure_delay (4 s here), so the guessers get a few dozen tries instead of thousands; the running
# load and a correct login in the middle of the flood are not slowed.
# 12. A flood of new connections from one address (127.0.0.1, about 5,000 a second for 4 s)
# while clients from another address ([::1]) run a read load: with [limits]
# connections_per_second_per_address the flood is refused at accept, before any protocol or
# password work, and the other address's latency stays within 2x of calm (average; p99 is
# reported beside it).
case_address_flood() {
  restart_sluice 'stats_users = ["app"]' "[limits]
connections_per_second_per_address = 100"
  local calm flood
  pg6() {  # name, seconds: pgbench -S from [::1] with a per-transaction log
    PGPASSWORD=app timeout 60 pgbench -n -c 4 -j 1 -T "$2" -S -l --log-prefix="$WORK/$1" -h ::1 -p "$PORT" -U app app \
      >"$WORK/$1.out" 2>&1
  }
  p99() { cat "$WORK/$1".* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print a[i]}'; }
  avg() { sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$WORK/$1.out"; }
  pg6 calm 4
  # The flood runs niced: it is to load Sluice's accept path, not to take the CPU from the others.
  nice -n 10 python3 - "$PORT" >"$WORK/flood.out" 2>&1 <<'PY' &
import socket, struct, sys, time
port, rate, secs = int(sys.argv[1]), 5000, 4
ssl = struct.pack(">II", 8, 80877103)  # an SSLRequest: a real client's first bytes
start, n, refused = time.time(), 0, 0
while True:
    now = time.time()
    if now - start >= secs: break
    if n > (now - start) * rate:  # paced at the target rate
        time.sleep(0.0005)
        continue
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(ssl)
        s.close()
    except OSError:
        refused += 1
    n += 1
print(n, f"{n / (time.time() - start):.0f}", refused)
PY
  local flooder=$!
  sleep 0.5
  pg6 flood 3
  wait "$flooder" || true
  local sent rate
  read -r sent rate _ <"$WORK/flood.out" || true
  local a_calm a_flood p_calm p_flood refusals
  a_calm="$(avg calm)" a_flood="$(avg flood)" p_calm="$(p99 calm)" p_flood="$(p99 flood)"
  refusals="$(PGPASSWORD=app psql -X -At -h ::1 -p "$PORT" -U app -d sluice -c "show limits" 2>/dev/null |
    awk -F'|' '$1 == "connections_per_second_per_address" && $2 == "*" {print $5}')"
  local ok=0
  awk -v c="$a_calm" -v f="$a_flood" 'BEGIN {exit !(c > 0 && f > 0 && f <= 2 * c)}' || ok=1
  [ "${refusals:-0}" -gt 1000 ] || ok=1
  report $ok address_flood "${sent:-?} connections from 127.0.0.1 (${rate:-?}/s), ${refusals:-?} refused at accept; [::1]'s pgbench -S latency average ${a_calm} ms calm, ${a_flood} ms under the flood (p99 ${p_calm} -> ${p_flood} us)"
  restart_sluice "" ""
  common_checks address_flood
}

case_password_flood() {
  load steady 8 4
  sleep 1
  # The same correct login before the flood: what it costs here (sanitized builds are slow).
  local b0 b1 base_ms
  b0=$(date +%s%N)
  PGPASSWORD=app psql -X -At -h 127.0.0.1 -p "$PORT" -U app -d app -c 'select 42' >/dev/null 2>&1
  b1=$(date +%s%N)
  base_ms=$(((b1 - b0) / 1000000))
  # 8 guessers in one process (a psql per try would be too slow to flood anything).
  python3 - "$PORT" >"$WORK/guesses" 2>&1 <<'PY' &
import socket, struct, sys, threading, time
port, end, counts = int(sys.argv[1]), time.time() + 5, []
def guess():
    n = 0
    body = struct.pack(">I", 196608) + b"user\0app\0database\0app\0\0"
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(struct.pack(">I", len(body) + 4) + body)
            s.recv(1024)  # AuthenticationCleartextPassword
            s.sendall(b"p" + struct.pack(">I", 4 + 6) + b"wrong\0")
            s.settimeout(10)
            s.recv(1024)  # the ErrorResponse, when Sluice sends it
            s.close()
        except OSError:
            pass
        n += 1
    counts.append(n)
threads = [threading.Thread(target=guess) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(counts))
PY
  local guesser=$!
  sleep 2
  local t0 t1 answer
  t0=$(date +%s%N)
  answer="$(PGPASSWORD=app psql -X -At -h 127.0.0.1 -p "$PORT" -U app -d app -c 'select 42' 2>&1)"
  t1=$(date +%s%N)
  wait "$guesser"
  local attempts
  attempts="$(tail -1 "$WORK/guesses")"
  finish steady
  local ok=0
  { [ "$STATUS" = 0 ] && [ "$ABORTED" = 0 ] && [ "$PROCESSED" -gt 0 ]; } || ok=1
  report $ok password_flood "load beside the flood: $PROCESSED transactions, $ABORTED aborted, exit $STATUS"
  ok=0
  # Held like a failure, it would take at least login_failure_delay (4 s) longer than before.
  local took_ms=$(((t1 - t0) / 1000000))
  { [ "$answer" = 42 ] && [ "$took_ms" -lt $((base_ms + 3000)) ]; } || ok=1
  report $ok password_flood "a correct login during the flood: '$answer' in $took_ms ms (before the flood: $base_ms ms)"
  ok=0
  [ "$attempts" -lt 200 ] || ok=1
  report $ok password_flood "8 guessers made $attempts attempts in 5 s (burst 10, then held 4 s each)"
  common_checks password_flood
}

# 2. kill -9 the primary (postmaster and backends, as a crash), promote the replica with an
# external command, keep writing: clients with work in flight on the dead primary get an error;
# Sluice finds the promoted server by its health checks (no restart, no reload) and new writes
# succeed there; the promoted server's data keeps the invariant. The sandbox is rebuilt after.
case_primary_failover() {
  load writes 12 8
  sleep 3
  local postmaster
  postmaster="$("$SANDBOX" pid pg-primary)"
  kill -9 $postmaster $(pgrep -P "$postmaster" | tr '\n' ' ') 2>/dev/null || true
  "$SANDBOX" promote-pg-replica-only >/dev/null
  local t0=$SECONDS routed=""
  while [ $((SECONDS - t0)) -lt 20 ]; do
    routed="$(PGPASSWORD=app psql -X -At -h 127.0.0.1 -p "$PORT" -U app -d app \
      -c "begin" -c "select pg_is_in_recovery()" -c "commit" 2>/dev/null | sed -n 2p || true)"
    [ "$routed" = f ] && break
    sleep 0.2
  done
  finish writes
  local ok=0
  { kill -0 "$SLUICE_PID" && [ "$ABORTED" -le 8 ]; } || ok=1
  report $ok primary_failover "load during the crash: $PROCESSED transactions, $ABORTED clients aborted by errors on the dead primary (at most its 8)"
  ok=0
  [ "$routed" = f ] || ok=1
  report $ok primary_failover "writes reach the promoted server after $((SECONDS - t0)) s"
  load after 5 4
  finish after
  ok=0
  { [ "$STATUS" = 0 ] && [ "$ABORTED" = 0 ] && [ "$PROCESSED" -gt 0 ]; } || ok=1
  report $ok primary_failover "writing on after the failover: $PROCESSED transactions, $ABORTED aborted, exit $STATUS"
  local promoted_ok
  promoted_ok="$(psql -X -At -h 127.0.0.1 -p "$PG_REPLICA_PORT" -U postgres -d app -c "select
       (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta),0) from pgbench_history)
   and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta),0) from pgbench_history)
   and (select sum(tbalance) from pgbench_tellers)  = (select coalesce(sum(delta),0) from pgbench_history)")"
  [ "$promoted_ok" = t ]; report $? primary_failover "balance invariant on the promoted server: $promoted_ok"
  "$SANDBOX" rebuild-pg-replica >/dev/null
  kill -0 "$SLUICE_PID" 2>/dev/null; report $? primary_failover "Sluice up after the sandbox was rebuilt"
}

# MySQL 4. Clients killed mid-transaction while sysbench oltp_read_write runs: each victim
# transaction adds to a counter and logs the amount in two statements with a pause between; a
# server connection handed on mid-transaction would commit half of one (counter != log sum).
my_direct() { mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u app -papp --batch --skip-column-names app -e "$1"; }
# The MariaDB cases' data: a counter and its log (both empty), and sysbench's sbtest1 fresh.
SB_OPTS=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=1 --table-size=10000)
mysql_fault_tables() {
  my_direct "CREATE TABLE IF NOT EXISTS fault_counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB;
             CREATE TABLE IF NOT EXISTS fault_log (id BIGINT AUTO_INCREMENT PRIMARY KEY, delta INT NOT NULL) ENGINE=InnoDB;
             DELETE FROM fault_log; REPLACE INTO fault_counter VALUES (1, 0);"
  sysbench oltp_read_write "${SB_OPTS[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
  sysbench oltp_read_write "${SB_OPTS[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" prepare >/dev/null
}
case_mysql_killed_clients() {
  local sb=("${SB_OPTS[@]}")
  mysql_fault_tables
  timeout 120 sysbench oltp_read_write "${sb[@]}" --mysql-host=127.0.0.1 --mysql-port="$MYSQL_PORT" --threads=4 \
    --time=8 --mysql-ignore-errors=1213,1205 run >"$WORK/sysbench.out" 2>&1 &
  local sbpid=$!
  BG+=($sbpid)
  for i in $(seq 1 400); do
    echo "BEGIN; UPDATE fault_counter SET n = n + $i WHERE id = 1; DO SLEEP(0.02); INSERT INTO fault_log (delta) VALUES ($i); COMMIT;"
  done >"$WORK/victim.sql"
  for round in 1 2 3; do
    local victims=()
    for _ in 1 2 3 4; do
      mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -u app -papp app <"$WORK/victim.sql" >/dev/null 2>&1 &
      victims+=($!)
    done
    sleep 1.2
    kill -9 "${victims[@]}" 2>/dev/null || true
    wait "${victims[@]}" 2>/dev/null || true
  done
  local sbstatus=0
  wait "$sbpid" || sbstatus=$?
  local errors
  errors="$(sed -n 's/.*ignored errors: *\([0-9]*\).*/\1/p' "$WORK/sysbench.out")"
  local tx
  tx="$(sed -n 's/.*transactions: *\([0-9]*\).*/\1/p' "$WORK/sysbench.out")"
  local ok=0
  { [ "$sbstatus" = 0 ] && [ "${tx:-0}" -gt 0 ]; } || ok=1
  report $ok mysql_killed_clients "sysbench oltp_read_write beside them: ${tx:-?} transactions, exit $sbstatus (no error but InnoDB deadlocks, ${errors:-?}, which sysbench retries)"
  kill -0 "$SLUICE_PID" 2>/dev/null || { report 1 mysql_killed_clients "Sluice exited"; exit 1; }
  local counter logsum
  counter="$(my_direct "SELECT n FROM fault_counter WHERE id = 1")"
  logsum="$(my_direct "SELECT COALESCE(SUM(delta), 0) FROM fault_log")"
  ok=0
  { [ "$counter" = "$logsum" ] && [ "$counter" != 0 ]; } || ok=1
  report $ok mysql_killed_clients "counter $counter = sum of logged deltas $logsum"
  local open_tx
  open_tx="$(mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u root --batch --skip-column-names \
    -e "SELECT COUNT(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE p.user = 'app'")"
  ok=0
  [ "$open_tx" = 0 ] || ok=1
  report $ok mysql_killed_clients "$open_tx server sessions of app left inside a transaction"
}

# Runs `sql` through Sluice's MySQL listener every 0.2 s, at most `tries` times, until it answers
# `want`; prints the last answer.
sluice_my_until() {  # want, tries, sql
  local answer="" _
  for _ in $(seq 1 "$2"); do
    answer="$(mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -u app -papp --batch --skip-column-names app \
      -e "$3" 2>/dev/null || true)"
    [ "$answer" = "$1" ] && break
    sleep 0.2
  done
  echo "$answer"
}

# MySQL 1. The MariaDB replica goes away under sysbench oltp_read_only without transactions (so
# its reads, prepared statements, go to the replica), then comes back: kill -9, or SHUTDOWN (the
# server ends its connections). Reads in flight there run again elsewhere, prepared there first:
# sysbench sees no error (--mysql-ignore-errors=none) and no reconnect.
replica_fault_my() {  # case, kill9 | shutdown
  local c=$1
  mysql_fault_tables
  for _ in $(seq 1 100); do
    [ "$(my_root "$MY_REPLICA_PORT" "SELECT COUNT(*) FROM app.sbtest1" 2>/dev/null)" = 10000 ] && break
    sleep 0.1
  done
  timeout 120 sysbench oltp_read_only "${SB_OPTS[@]}" --mysql-host=127.0.0.1 --mysql-port="$MYSQL_PORT" --threads=8 \
    --time=10 --skip-trx=on --mysql-ignore-errors=none run >"$WORK/$c.out" 2>&1 &
  local sbpid=$!
  BG+=($sbpid)
  sleep 3
  if [ "$2" = kill9 ]; then kill -9 "$("$SANDBOX" pid my-replica)"; else my_root "$MY_REPLICA_PORT" "SHUTDOWN" || true; fi
  sleep 3
  "$SANDBOX" start-mysql-replica >/dev/null
  local sbstatus=0
  wait "$sbpid" || sbstatus=$?
  local tx errors reconnects
  tx="$(sed -n 's/.*transactions: *\([0-9]*\).*/\1/p' "$WORK/$c.out")"
  errors="$(sed -n 's/.*ignored errors: *\([0-9]*\).*/\1/p' "$WORK/$c.out")"
  reconnects="$(sed -n 's/.*reconnects: *\([0-9]*\).*/\1/p' "$WORK/$c.out")"
  local ok=0
  { [ "$sbstatus" = 0 ] && [ "${tx:-0}" -gt 0 ] && [ "${errors:-x}" = 0 ] && [ "${reconnects:-x}" = 0 ] &&
    ! grep -q FATAL "$WORK/$c.out"; } || ok=1
  report $ok "$c" "sysbench oltp_read_only across the replica's loss: ${tx:-?} transactions, ${errors:-?} errors, ${reconnects:-?} reconnects, exit $sbstatus"
  [ $ok = 0 ] || grep -E "FATAL|error" "$WORK/$c.out" | head -5
  kill -0 "$SLUICE_PID" 2>/dev/null || { report 1 "$c" "Sluice exited"; cat "$WORK/sluice.log"; exit 1; }
  local routed
  routed="$(sluice_my_until 1 100 "SELECT @@read_only")"
  [ "$routed" = 1 ]; report $? "$c" "reads reach the replica again after it is back (read_only = ${routed:-?})"
}
case_mysql_replica_kill() { replica_fault_my mysql_replica_kill kill9; }
case_mysql_replica_shutdown() { replica_fault_my mysql_replica_shutdown shutdown; }

# MySQL 2. The MariaDB primary is killed with kill -9 under sysbench oltp_read_write and
# counter-and-log writers, and the replica is promoted by an external command (replication
# stopped, read_only off). Sluice must find the new primary by itself and keep writing; on the
# promoted server no transaction may be half there: the counter equals the sum of the logged
# deltas, and sbtest1 keeps its 10000 rows (oltp_read_write deletes and re-inserts a row in one
# transaction). Afterwards the sandbox's replica is rebuilt from the restarted old primary.
my_root() { mariadb --protocol=TCP -h 127.0.0.1 -P "$1" -u root --batch --skip-column-names -e "$2"; }
case_mysql_primary_failover() {
  local c=mysql_primary_failover
  local sb=("${SB_OPTS[@]}")
  mysql_fault_tables
  # The old primary is restarted afterwards: with InnoDB's log written at each commit, a killed
  # server (not a crashed machine) keeps everything it committed.
  my_root "$MY_PORT" "SET GLOBAL innodb_flush_log_at_trx_commit = 2"
  local pos=""
  pos="$(my_root "$MY_PORT" "SELECT @@gtid_binlog_pos")"
  for _ in $(seq 1 200); do
    [ "$(my_root "$MY_REPLICA_PORT" "SELECT @@gtid_slave_pos")" = "$pos" ] && break
    sleep 0.1
  done
  for i in $(seq 1 40); do
    echo "BEGIN; UPDATE fault_counter SET n = n + $i WHERE id = 1; DO SLEEP(0.01); INSERT INTO fault_log (delta) VALUES ($i); COMMIT;"
  done >"$WORK/writer.sql"
  local deadline=$((SECONDS + 14))
  timeout 120 sysbench oltp_read_write "${sb[@]}" --mysql-host=127.0.0.1 --mysql-port="$MYSQL_PORT" --threads=4 \
    --time=14 --mysql-ignore-errors=all run >"$WORK/sysbench.out" 2>&1 &
  local sbpid=$!
  BG+=($sbpid)
  # Writers: each client runs batches of counter-and-log transactions until the deadline; a batch
  # stops at its first error (the transaction in flight is lost whole), the next one logs in again.
  local writers=()
  for w in 1 2; do
    (
      okb=0 failed=0
      while [ $SECONDS -lt $deadline ]; do
        if timeout 30 mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -u app -papp app <"$WORK/writer.sql" >/dev/null 2>>"$WORK/writer$w.err"; then
          okb=$((okb + 1))
        else
          failed=$((failed + 1))
          sleep 0.2
        fi
      done
      echo "$okb $failed" >"$WORK/writer$w.count"
    ) &
    writers+=($!)
    BG+=($!)
  done
  sleep 4
  local mariadbd
  mariadbd="$("$SANDBOX" pid my-primary)"
  kill -9 "$mariadbd"
  local killed_at=$SECONDS
  "$SANDBOX" promote-mysql-replica-only >/dev/null
  local routed
  routed="$(sluice_my_until 2 100 "BEGIN; SELECT @@server_id; COMMIT")"
  local ok=0
  [ "$routed" = 2 ] || ok=1
  report $ok $c "writes reach the promoted server (server_id ${routed:-none}) $((SECONDS - killed_at)) s after the kill"
  local sbstatus=0
  wait "$sbpid" || sbstatus=$?
  wait "${writers[@]}" || true
  local tx errors
  tx="$(sed -n 's/.*transactions: *\([0-9]*\).*/\1/p' "$WORK/sysbench.out")"
  errors="$(sed -n 's/.*ignored errors: *\([0-9]*\).*/\1/p' "$WORK/sysbench.out")"
  ok=0
  { [ "$sbstatus" = 0 ] && [ "${tx:-0}" -gt 0 ]; } || ok=1
  report $ok $c "sysbench oltp_read_write across the failover: ${tx:-?} transactions, ${errors:-?} errors retried (work in flight at the kill, and statements refused in the second without a primary), exit $sbstatus"
  kill -0 "$SLUICE_PID" 2>/dev/null || { report 1 $c "Sluice exited"; cat "$WORK/sluice.log"; exit 1; }
  local w1 w2
  read -r -a w1 <"$WORK/writer1.count" || w1=(0 0)
  read -r -a w2 <"$WORK/writer2.count" || w2=(0 0)
  local after
  after="$(mariadb --protocol=TCP -h 127.0.0.1 -P "$MYSQL_PORT" -u app -papp --batch --skip-column-names app \
    -e "INSERT INTO fault_log (delta) VALUES (0); SELECT @@server_id" 2>&1 || true)"
  ok=0
  [ "$after" = 2 ] || ok=1
  report $ok $c "writers: $((w1[0] + w2[0])) batches of 40 transactions done, $((w1[1] + w2[1])) stopped by the failover; a new write lands on server_id ${after}"
  local counter logsum rows open_tx
  counter="$(my_root "$MY_REPLICA_PORT" "SELECT n FROM app.fault_counter WHERE id = 1")"
  logsum="$(my_root "$MY_REPLICA_PORT" "SELECT COALESCE(SUM(delta), 0) FROM app.fault_log")"
  rows="$(my_root "$MY_REPLICA_PORT" "SELECT COUNT(*) FROM app.sbtest1")"
  ok=0
  { [ "$counter" = "$logsum" ] && [ "$counter" != 0 ] && [ "$rows" = 10000 ]; } || ok=1
  report $ok $c "on the promoted server: counter $counter = sum of logged deltas $logsum; sbtest1 has $rows rows (10000)"
  open_tx="$(my_root "$MY_REPLICA_PORT" "SELECT COUNT(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE p.user = 'app'")"
  ok=0
  [ "$open_tx" = 0 ] || ok=1
  report $ok $c "$open_tx server sessions of app left inside a transaction on the promoted server"
  "$SANDBOX" rebuild-mysql-replica >/dev/null
  routed="$(sluice_my_until 1 50 "BEGIN; SELECT @@server_id; COMMIT")"
  ok=0
  { kill -0 "$SLUICE_PID" 2>/dev/null && [ "$routed" = 1 ]; } || ok=1
  report $ok $c "Sluice up after the sandbox was rebuilt; writes back on the old primary (server_id ${routed:-none})"
}

# Online upgrade under load: SIGUSR2 twice while pgbench writes (tpcb-like) and reads (-S, routed
# to the replica under read_your_writes) through Sluice. Every client goes to the new process at
# its next idle point, with nothing lost: no client aborted, every pgbench exits 0, and each old
# process exits once its clients went. Then a third SIGUSR2 with an invalid configuration: the new
# process does not start and the running one keeps serving the load. Afterwards a fresh Sluice (a child of this script) is
# started for the cases that follow.
case_online_upgrade() {
  local c=online_upgrade ok=0 pid_file="$WORK/sluice.pid" old new handed=""
  UPGRADE_PID_FILE="$pid_file"  # cleanup stops whichever process it names
  LOG_LEVEL=info restart_sluice "pid_file = \"$pid_file\""
  load writes 10 4
  load reads 10 4 -S
  for at in 2 5; do
    sleep 2.5
    old="$(cat "$pid_file")"
    kill -USR2 "$old"
    new="$old"
    for _ in $(seq 1 100); do new="$(cat "$pid_file" 2>/dev/null || echo "$old")"; [ "$new" != "$old" ] && break; sleep 0.1; done
    for _ in $(seq 1 100); do [ -d "/proc/$old" ] && ! grep -q '^State:.*Z' "/proc/$old/status" 2>/dev/null || break; sleep 0.1; done
    [ "$old" = "$SLUICE_PID" ] && wait "$SLUICE_PID" 2>/dev/null || true
    if [ "$new" = "$old" ] || { [ -d "/proc/$old" ] && ! grep -q '^State:.*Z' "/proc/$old/status"; }; then ok=1; fi
    handed="$handed $( (grep -o 'upgrade: done; [0-9]* clients' "$WORK/sluice.log" || true) | tail -1 | grep -o '[0-9]*' || echo '?')"
  done
  # A third, whose new binary cannot start (its configuration is invalid): the running process
  # keeps its clients and the load goes on untouched.
  sleep 1.5
  cp "$WORK/sluice.toml" "$WORK/sluice.toml.good"
  sed -i 's/^max_client_conn = .*/max_client_conn = "many"/' "$WORK/sluice.toml"
  old="$(cat "$pid_file")"
  kill -USR2 "$old"
  local failed=""
  for _ in $(seq 1 50); do failed="$(grep -c 'upgrade failed' "$WORK/sluice.log" || true)"; [ "$failed" -gt 0 ] && break; sleep 0.1; done
  cp "$WORK/sluice.toml.good" "$WORK/sluice.toml"
  { [ "$failed" -gt 0 ] && [ "$(cat "$pid_file")" = "$old" ] && kill -0 "$old"; } || ok=1
  finish writes
  local wp=$PROCESSED wa=$ABORTED wf=$FAILED ws=$STATUS
  finish reads
  local rp=$PROCESSED ra=$ABORTED rf=$FAILED rs=$STATUS
  { [ "$ws" = 0 ] && [ "$wa" = 0 ] && [ "$wf" = 0 ] && [ "$rs" = 0 ] && [ "$ra" = 0 ] && [ "$rf" = 0 ] &&
    [ "$wp" -gt 0 ] && [ "$rp" -gt 0 ]; } || ok=1
  report $ok $c "2 upgrades under load (clients handed over each time:$handed), then one whose new binary has an invalid configuration (upgrade_failed logged: ${failed:-0}; the same process goes on); writes $wp, reads $rp transactions; aborted $wa/$ra, failed $wf/$rf, exit $ws/$rs"
  SLUICE_PID="$(cat "$pid_file")"
  common_checks $c
  # Back to a Sluice that is this script's child.
  kill "$SLUICE_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -d "/proc/$SLUICE_PID" ] || break; sleep 0.1; done
  SLUICE_PID=""
  UPGRADE_PID_FILE=""
  start_sluice
}

# The result cache never stale beyond the documented lag: a writer bumping a version directly on
# the primary and through Sluice, 32 readers over two instances that follow the change stream.
# The two instances share the sandbox's Redis, which is killed a third of the way in and started
# again at two thirds.
case_cache_staleness() {
  local out ok=0
  out="$(SLUICE_TEST_PORT_BASE=$((PORT + 10)) SLUICE_STALENESS_REDIS="127.0.0.1:${SLUICE_REDIS_PORT:-16379}" \
    SLUICE_STALENESS_KILL_REDIS="$SANDBOX" timeout $((${STALENESS_SECONDS:-60} + 120)) /usr/bin/python3 \
    "$(dirname "$0")/staleness_check.py" "$BIN" "${STALENESS_SECONDS:-60}" 32 2>&1)" || ok=1
  report $ok cache_staleness "$(grep -v '^\[doctest\]' <<<"$out" | tail -n 5)"
  common_checks cache_staleness
}

PGPASSWORD=app pgbench -i -q -s 1 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1
start_sluice
for c in "${CASES[@]}"; do
  "case_$c"
  BG=()
done
if [ "$fail" = 0 ]; then echo "fault matrix: all cases passed"; else echo "fault matrix: FAILED"; fi
exit $fail
