#!/usr/bin/env bash
# Unix-domain sockets on both sides. Sluice listens on PostgreSQL's socket naming
# (<dir>/.s.PGSQL.<port>, so `psql -h <dir> -p <port>` finds it) and on a MySQL socket file, with
# the configured mode (and, for MySQL, owner and group); it reaches MariaDB over the sandbox server's own socket (the server sees
# a localhost connection, not 127.0.0.1) and PostgreSQL over another Sluice's socket. A stale
# socket file from a killed process is replaced; a live one is refused; a clean stop removes
# the files.
#   integration/unix_socket_test.sh /path/to/sluice
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
SANDBOX="${SLUICE_SANDBOX:-$(cd "$(dirname "$0")/.." && pwd)/.sandbox}"
MY_SOCK="$SANDBOX/mysql/primary/mariadbd.sock"
PORT="${SLUICE_TEST_PORT:-16550}"
WORK="$(mktemp -d /tmp/sluice-unix.XXXXXX)"
A_PID= B_PID=
cleanup() {
  for p in $A_PID $B_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -15 "$f" >&2; }; done; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
[ -S "$MY_SOCK" ] || fail "no MariaDB socket at $MY_SOCK"

mkdir -p "$WORK/pg"
PG_SOCK="$WORK/pg/.s.PGSQL.$PORT"
cat >"$WORK/a.toml" <<CONF
[general]
workers = 2
admin_users = ["app"]
[postgres]
listen = ["127.0.0.1:$PORT", "$PG_SOCK"]
unix_socket_mode = "0700"
[mysql]
listen = ["127.0.0.1:$((PORT + 1))", "$WORK/mysqld.sock"]
unix_socket_mode = "0770"
unix_socket_owner = "nobody"
unix_socket_group = "nogroup"
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
[clusters.my]
protocol = "mysql"
primary = "$MY_SOCK"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "transaction"
[[pools]]
database = "app"
cluster = "my"
pool_mode = "transaction"
CONF
start_a() {
  "$BIN" -c "$WORK/a.toml" 2>>"$WORK/a.log" &
  A_PID=$!
  for _ in $(seq 1 100); do [ -S "$PG_SOCK" ] && [ -S "$WORK/mysqld.sock" ] && return 0; sleep 0.1; done
  fail "Sluice A made no sockets"
}
start_a
[ "$(stat -c %a "$PG_SOCK")" = 700 ] || fail "PostgreSQL socket mode $(stat -c %a "$PG_SOCK"), not 700"
[ "$(stat -c %a "$WORK/mysqld.sock")" = 770 ] || fail "MySQL socket mode $(stat -c %a "$WORK/mysqld.sock")"
[ "$(stat -c %U:%G "$WORK/mysqld.sock")" = nobody:nogroup ] ||
  fail "MySQL socket owner $(stat -c %U:%G "$WORK/mysqld.sock"), not nobody:nogroup"
ok "sockets $PG_SOCK (0700) and $WORK/mysqld.sock (0770, nobody:nogroup)"

psql_a() { PGPASSWORD=app psql -X -A -t -q -h "$WORK/pg" -p "$PORT" -U app -d "$1" -c "$2"; }
[ "$(psql_a app 'SELECT 6 * 7')" = 42 ] || fail "psql over the Unix socket"
ADDRS="$(psql_a sluice 'SHOW CLIENTS' | cut -d'|' -f5-6 | sort -u | tr '\n' ' ')"
grep -q "unix" <<<"$ADDRS" || fail "SHOW CLIENTS does not say unix: $ADDRS"
ok "psql -h <dir> -p <port> finds .s.PGSQL.<port>; SHOW CLIENTS says unix"

my_a() { mariadb --protocol=SOCKET --socket="$WORK/mysqld.sock" -u app -papp --batch --skip-column-names app -e "$1"; }
[ "$(my_a 'SELECT 6 * 7')" = 42 ] || fail "mysql over the Unix socket"
# The server connection runs over MariaDB's own socket: the server sees localhost.
HOST="$(my_a "SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()")"
[ "$HOST" = localhost ] || fail "MariaDB sees $HOST, not localhost (a Unix socket connection)"
ok "mysql --socket works; Sluice reaches MariaDB over $MY_SOCK (the server sees localhost)"

# Sluice B reaches PostgreSQL through A's socket: a server over a Unix socket, PostgreSQL side.
cat >"$WORK/b.toml" <<CONF
[general]
workers = 1
[postgres]
listen = "127.0.0.1:$((PORT + 2))"
[mysql]
enabled = false
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "$PG_SOCK"
[[pools]]
database = "app"
cluster = "pg"
pool_mode = "session"
CONF
"$BIN" -c "$WORK/b.toml" 2>"$WORK/b.log" &
B_PID=$!
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$((PORT + 2))" && break; sleep 0.1; done
[ "$(PGPASSWORD=app psql -X -A -t -h 127.0.0.1 -p "$((PORT + 2))" -U app -d app -c 'SELECT 40 + 2')" = 42 ] ||
  fail "Sluice B through A's Unix socket"
# B's idle server connection (session mode keeps it) is a client of A's database app over the
# socket; the console's own connection (database sluice) is not counted.
SERVERS="$(psql_a sluice 'SHOW CLIENTS' | awk -F'|' '$3 == "app" && $5 == "unix"' | wc -l)"
[ "$SERVERS" -ge 1 ] || fail "A does not see B's server connection as a unix client of app"
ok "a PostgreSQL server over a Unix socket (B -> A's socket -> PostgreSQL)"
kill "$B_PID"; wait "$B_PID" || true; B_PID=

# A second Sluice on the same socket is refused while A listens.
if "$BIN" -c "$WORK/a.toml" 2>"$WORK/second.log"; then fail "a second Sluice started on A's sockets"; fi
grep -q "another process listens there\|Address already in use" "$WORK/second.log" || fail "no reason given"
[ "$(psql_a app 'SELECT 1')" = 1 ] || fail "A stopped answering after the refused second start"
ok "a live socket is refused to a second process, which says why; A keeps it"

# Killed: the files stay; the next start replaces them.
kill -9 "$A_PID"; wait "$A_PID" 2>/dev/null || true; A_PID=
[ -S "$PG_SOCK" ] || fail "the killed process's socket file is already gone (nothing to test)"
start_a
for _ in $(seq 1 50); do psql_a app 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(psql_a app 'SELECT 2')" = 2 ] || fail "no service after replacing a stale socket"
ok "a stale socket file from a killed Sluice is replaced at start"

# A clean stop removes them.
kill -TERM "$A_PID"; wait "$A_PID" || fail "exit status $? after SIGTERM"; A_PID=
[ ! -e "$PG_SOCK" ] && [ ! -e "$WORK/mysqld.sock" ] || fail "the socket files outlived a clean stop"
ok "a clean stop removes the socket files"
echo "[doctest] test cases: $passed | $passed passed | 0 failed |"
