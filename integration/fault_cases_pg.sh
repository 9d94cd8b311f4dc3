# PostgreSQL cases of the fault matrix (integration/fault_test.sh, which sources this file after
# its helpers: load, finish, report, common_checks, start_sluice...). Each case_<name> runs under
# a pgbench tpcb-like load through Sluice; see fault_test.sh's header.
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
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$SLUICE_PID/stat"; }  # user + system, 10 ms each
  txs() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/$1.out"; }
  local ticks0 calm_ticks
  ticks0="$(cpu_ticks)"
  pg6 calm 4
  calm_ticks=$(( $(cpu_ticks) - ticks0 ))
  ticks0="$(cpu_ticks)"
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
  local sent rate per_conn
  read -r sent rate _ <"$WORK/flood.out" || true
  # Sluice's CPU per flood connection: its CPU during the flood less [::1]'s transactions at
  # their calm cost.
  per_conn="$(awk -v t="$(( $(cpu_ticks) - ticks0 ))" -v n="${sent:-0}" -v ct="$calm_ticks" -v cx="$(txs calm)" \
    -v fx="$(txs flood)" 'BEGIN {if (n > 0 && cx > 0) printf "%.0f", (t - ct * fx / cx) * 10000 / n; else print "?"}')"
  local a_calm a_flood p_calm p_flood refusals
  a_calm="$(avg calm)" a_flood="$(avg flood)" p_calm="$(p99 calm)" p_flood="$(p99 flood)"
  refusals="$(PGPASSWORD=app psql -X -At -h ::1 -p "$PORT" -U app -d sluice -c "show limits" 2>/dev/null |
    awk -F'|' '$1 == "connections_per_second_per_address" && $2 == "*" {print $5}')"
  local ok=0
  awk -v c="$a_calm" -v f="$a_flood" 'BEGIN {exit !(c > 0 && f > 0 && f <= 2 * c)}' || ok=1
  [ "${refusals:-0}" -gt 1000 ] || ok=1
  report $ok address_flood "${sent:-?} connections from 127.0.0.1 (${rate:-?}/s), ${refusals:-?} refused at accept (Sluice's CPU about ${per_conn} us each); [::1]'s pgbench -S latency average ${a_calm} ms calm, ${a_flood} ms under the flood (p99 ${p_calm} -> ${p_flood} us)"
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
