#!/usr/bin/env bash
# pgbench through Sluice in transaction mode, pool_size = 10: every case must finish with 0 failed
# transactions and every transaction processed; tpcb-like must keep pgbench's balance invariant.
#   integration/pgbench_test.sh /path/to/sluice
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice}"
HOST="${SLUICE_PG_HOST:-127.0.0.1}"
PG_PORT="${SLUICE_PG_PORT:-${SLUICE_PG_PRIMARY_PORT:-15432}}"
PORT="${SLUICE_TEST_PORT:-16532}"
WORK="$(mktemp -d)"
CONF="$WORK/sluice.toml"
cat >"$CONF" <<CONF
[general]
workers = 2
max_client_conn = 1000
log_level = "warn"
[postgres]
listen = "127.0.0.1:$PORT"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "$HOST:$PG_PORT"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
pool_size = 10
CONF
"$BIN" -c "$CONF" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
cleanup() {
  kill "$SLUICE_PID" 2>/dev/null || true
  wait "$SLUICE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.1
done

export PGPASSWORD=app
pgbench -i -q -s 1 -h "$HOST" -p "$PG_PORT" -U app app >/dev/null 2>&1

fail=0
run_case() {  # name, clients, transactions per client, pgbench options...
  local name="$1" clients="$2" txs="$3"
  shift 3
  local out
  out="$(timeout 300 pgbench -n -c "$clients" -j 2 -t "$txs" "$@" -h 127.0.0.1 -p "$PORT" -U app app 2>&1)" || true
  local expected=$((clients * txs))
  local processed failed
  processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")"
  local tps
  tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)"
  if [ "$processed" = "$expected" ] && [ "${failed:-0}" = 0 ]; then
    echo "ok   $name: $processed/$expected transactions, 0 failed, tps $tps"
  else
    echo "FAIL $name: processed=${processed:-?}/$expected failed=${failed:-?}"
    echo "$out" | tail -20
    fail=1
  fi
}
run_case "-S" 50 200 -S
run_case "-S -M extended" 50 200 -S -M extended
run_case "-S -M prepared" 50 200 -S -M prepared
run_case "tpcb-like" 50 40
run_case "tpcb-like -M prepared" 50 40 -M prepared
run_case "-S -C" 50 10 -S -C
run_case "-S, 200 clients" 200 20 -S -M prepared

# pgbench's invariant: every balance moved by tpcb-like is recorded in pgbench_history.
check="$(psql -X -At -h "$HOST" -p "$PG_PORT" -U app app -c "
  select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta),0) from pgbench_history)
     and (select sum(tbalance) from pgbench_tellers)  = (select coalesce(sum(delta),0) from pgbench_history)")"
if [ "$check" = t ]; then echo "ok   balance invariant holds"; else echo "FAIL balance invariant: $check"; fail=1; fi
if grep -q -E 'ERROR|AddressSanitizer' "$WORK/sluice.log"; then echo "FAIL sluice logged errors:"; cat "$WORK/sluice.log"; fail=1; fi
passed=$(( fail == 0 ? 1 : 0 ))
echo "$passed passed, $((1 - passed)) failed"
exit "$fail"
