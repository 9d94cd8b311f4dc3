# MariaDB cases of the fault matrix (integration/fault_test.sh, which sources this file after its
# helpers: report, start_sluice...). sysbench is the load; a counter table and its log the check.
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

