#!/usr/bin/env bash
# `sluice passwd`: the secrets it prints work where they are pasted. Differential: each one is
# given to the real server (ALTER ROLE ... PASSWORD, CREATE USER ... IDENTIFIED BY PASSWORD) and
# the password logs in there directly; then the same secrets are Sluice's [[users]] entries and the
# password logs in through Sluice too (which logs in to the server with keys recovered from the
# client's proof, never the plaintext). A wrong password is refused both ways.
#   integration/passwd_test.sh /path/to/sluice
set -euo pipefail
BIN="${1:?usage: $0 /path/to/sluice}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
MY_PORT="${SLUICE_MY_PRIMARY_PORT:-13306}"
PORT="${SLUICE_TEST_PORT:-16540}"
WORK="$(mktemp -d)"
PW='pa$s w0rd-ü'
SLUICE_PID=
DROP_ROLE="DO \$\$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pw_scram') THEN
  DROP OWNED BY pw_scram; DROP ROLE pw_scram; END IF; END \$\$;"
cleanup() {
  [ -n "$SLUICE_PID" ] && { kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; }
  psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -c "$DROP_ROLE" >/dev/null 2>&1 || true
  mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u root -e "DROP USER IF EXISTS 'pw_native'@'%'" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/sluice.log" ] && cat "$WORK/sluice.log" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

secret() {  # user, line number among the password lines (1 SCRAM, 2 md5, 3 MySQL)
  printf '%s\n' "$PW" | "$BIN" passwd "$1" | grep '^password = ' | sed -n "${2}p" | sed 's/^password = "\(.*\)"$/\1/'
}
SCRAM="$(secret pw_scram 1)"
NATIVE="$(secret pw_native 3)"
[[ "$SCRAM" == SCRAM-SHA-256\$4096:* ]] || fail "no SCRAM verifier: $SCRAM"
[[ "$NATIVE" =~ ^\*[0-9A-F]{40}$ ]] || fail "no MySQL hash: $NATIVE"
printf '%s\n' "$PW" | "$BIN" passwd pw_scram | grep -qF "$PW" && fail "the password is in the output"
ok "secrets printed, the password not among them"

# Directly on the servers.
psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d app -v ON_ERROR_STOP=1 >/dev/null <<SQL
$DROP_ROLE
CREATE ROLE pw_scram LOGIN PASSWORD '$SCRAM';
SQL
mariadb --protocol=TCP -h 127.0.0.1 -P "$MY_PORT" -u root >/dev/null <<SQL
DROP USER IF EXISTS 'pw_native'@'%';
CREATE USER 'pw_native'@'%' IDENTIFIED BY PASSWORD '$NATIVE';
GRANT SELECT ON app.* TO 'pw_native'@'%';
SQL
pg_login() {  # port password
  PGPASSWORD="$2" psql -X -q -A -t -h 127.0.0.1 -p "$1" -U pw_scram -d app -c "SELECT current_user" 2>&1 || true
}
my_login() {  # port password
  mariadb --protocol=TCP -h 127.0.0.1 -P "$1" -u pw_native -p"$2" --batch --skip-column-names app \
    -e "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)" 2>&1 || true
}
[ "$(pg_login "$PG_PORT" "$PW")" = pw_scram ] || fail "PostgreSQL refused the verifier's password"
pg_login "$PG_PORT" "wrong" | grep -q "password authentication failed" || fail "PostgreSQL took a wrong password"
[ "$(my_login "$MY_PORT" "$PW")" = pw_native ] || fail "MariaDB refused the hash's password"
my_login "$MY_PORT" "wrong" | grep -q "Access denied" || fail "MariaDB took a wrong password"
ok "the servers take the secrets: the password logs in, a wrong one does not"

# Through Sluice, the same secrets as its users' passwords.
cat >"$WORK/sluice.toml" <<CONF
[general]
workers = 1
log_level = "warn"
[postgres]
listen = "127.0.0.1:$PORT"
[mysql]
listen = "127.0.0.1:$((PORT + 1))"
[[users]]
name = "pw_scram"
password = "$SCRAM"
[[users]]
name = "pw_native"
password = "$NATIVE"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
[clusters.my]
protocol = "mysql"
primary = "127.0.0.1:$MY_PORT"
[[pools]]
database = "app"
cluster = "pg"
[[pools]]
database = "app"
cluster = "my"
CONF
"$BIN" --check -c "$WORK/sluice.toml" >/dev/null || fail "Sluice refused the configuration"
"$BIN" -c "$WORK/sluice.toml" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
[ "$(pg_login "$PORT" "$PW")" = pw_scram ] || fail "Sluice (PostgreSQL) refused the password: $(pg_login "$PORT" "$PW")"
pg_login "$PORT" "wrong" | grep -q "password authentication failed" || fail "Sluice (PostgreSQL) took a wrong password"
[ "$(my_login "$((PORT + 1))" "$PW")" = pw_native ] || fail "Sluice (MySQL) refused the password: $(my_login "$((PORT + 1))" "$PW")"
my_login "$((PORT + 1))" "wrong" | grep -q "Access denied" || fail "Sluice (MySQL) took a wrong password"
ok "Sluice takes the secrets on both protocols and logs in to the servers with them"
echo "[doctest] test cases: $passed | $passed passed | 0 failed |"
