#!/usr/bin/env bash
# sysbench through Sluice's MySQL front end: 64 threads over pool_size = 16, transaction mode,
# sysbench's default prepared statements. Every case must finish with 0 errors (ignored ones
# included) and 0 reconnects, within a bounded number of events.
#   integration/sysbench_test.sh /path/to/sluice
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
PORT="${SLUICE_TEST_PORT:-16533}"
PG_PORT=$((PORT + 1))
WORK="$(mktemp -d)"
CONF="$WORK/sluice.toml"
cat >"$CONF" <<CONF
[general]
workers = 2
max_client_conn = 1000
log_level = "warn"
[postgres]
listen = "127.0.0.1:$PG_PORT"
[mysql]
listen = "127.0.0.1:$PORT"
[[users]]
name = "app"
password = "app"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
pool_size = 16
CONF
"$BIN" -c "$CONF" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
cleanup() {
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
  cat "$WORK/sluice.log" >&2
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

COMMON=(--db-driver=mysql --mysql-user=app --mysql-password=app --mysql-db=app --tables=4 --table-size=10000)
# Tables are prepared directly on the server (not part of what is tested).
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" --threads=4 prepare >/dev/null

fail=0
run_case() {  # name, events, sysbench test
  local name="$1" events="$2" test="$3"
  local out
  out="$(timeout 300 sysbench "$test" "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$PORT" --threads=64 \
    --events="$events" --time=120 --mysql-ignore-errors=none run 2>&1)" || true
  local total errors reconnects tps
  total="$(sed -n 's/^ *total number of events: *\([0-9]*\).*/\1/p' <<<"$out")"
  errors="$(sed -n 's/^ *ignored errors: *\([0-9]*\).*/\1/p' <<<"$out")"
  reconnects="$(sed -n 's/^ *reconnects: *\([0-9]*\).*/\1/p' <<<"$out")"
  tps="$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' <<<"$out")"
  if [ "$total" = "$events" ] && [ "$errors" = 0 ] && [ "$reconnects" = 0 ]; then
    echo "ok   $name: $total/$events events, 0 errors, 0 reconnects, $tps tps"
  else
    echo "FAIL $name: events ${total:-?}/$events, errors ${errors:-?}, reconnects ${reconnects:-?}"
    echo "$out" | tail -30
    fail=1
  fi
}
run_case oltp_point_select 20000 oltp_point_select
run_case oltp_read_only 2000 oltp_read_only
run_case oltp_read_write 1000 oltp_read_write

# The pool never grew past pool_size.
conns="$(mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u root -N -e \
  "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app'")"
if [ "$conns" -le 16 ]; then echo "ok   server connections for app: $conns (pool_size 16)"; else echo "FAIL server connections: $conns > 16"; fail=1; fi
sysbench oltp_read_write "${COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" cleanup >/dev/null 2>&1 || true
exit $fail
