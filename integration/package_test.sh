#!/usr/bin/env bash
# The Debian package: built with cpack from a build directory, unpacked into a scratch root, and
# checked as an operator would meet it. The unit passes `systemd-analyze verify` with no remark
# (its ExecStart pointed at the scratch root's binary, the only change), the man pages render
# with no groff warning, the packaged configuration validates, and the installed binary serves a
# client against the sandbox while telling a Type=notify service manager READY=1, RELOADING=1 on
# SIGHUP and STOPPING=1 on SIGTERM (a NOTIFY_SOCKET of our own stands in for systemd).
#   integration/package_test.sh <cmake build directory>
set -euo pipefail
BUILD="${1:?usage: $0 <cmake build directory>}"
PG_PORT="${SLUICE_PG_PRIMARY_PORT:-15432}"
PORT="${SLUICE_TEST_PORT:-16545}"
WORK="$(mktemp -d)"
SLUICE_PID= LISTEN_PID=
cleanup() {
  [ -n "$SLUICE_PID" ] && { kill "$SLUICE_PID" 2>/dev/null || true; wait "$SLUICE_PID" 2>/dev/null || true; }
  [ -n "$LISTEN_PID" ] && { kill "$LISTEN_PID" 2>/dev/null || true; wait "$LISTEN_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/sluice.log" ] && tail -20 "$WORK/sluice.log" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

(cd "$BUILD" && cpack -G DEB -B "$WORK/out" >"$WORK/cpack.log" 2>&1) || { cat "$WORK/cpack.log"; fail "cpack"; }
VERSION="$("$BUILD/sluice" --version | awk '{print $2}')"
DEB="$WORK/out/sluice_${VERSION}_amd64.deb"
[ -f "$DEB" ] || fail "no $DEB: $(ls "$WORK/out")"
INFO="$(dpkg-deb -I "$DEB")"
grep -q "^ Package: sluice$" <<<"$INFO" || fail "package name"
grep -q "^ Depends: .*adduser.*libssl3" <<<"$INFO" || fail "Depends misses adduser or libssl3: $INFO"
[ "$(dpkg-deb -f "$DEB" Architecture)" = amd64 ] || fail "architecture"
FILES="$(dpkg-deb -c "$DEB" | awk '{print $6}')"
for f in ./usr/bin/sluice ./etc/sluice/sluice.toml ./usr/lib/systemd/system/sluice.service \
         ./usr/share/man/man1/sluice.1.gz ./usr/share/man/man5/sluice.toml.5.gz; do
  grep -qx "$f" <<<"$FILES" || fail "$f not in the package"
done
mkdir -p "$WORK/control"
dpkg-deb -e "$DEB" "$WORK/control"
grep -qx /etc/sluice/sluice.toml "$WORK/control/conffiles" || fail "the configuration is not a conffile"
for s in postinst prerm postrm; do sh -n "$WORK/control/$s" || fail "$s does not parse"; done
grep -q "adduser --system" "$WORK/control/postinst" || fail "postinst adds no system user"
ok "sluice_${VERSION}_amd64.deb: binary, conffile, unit, man pages, maintainer scripts, dependencies"

ROOT="$WORK/root"
dpkg-deb -x "$DEB" "$ROOT"
UNIT="$ROOT/usr/lib/systemd/system/sluice.service"
for key in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "NoNewPrivileges=yes" "ProtectSystem=strict" \
           "PrivateTmp=yes" "CapabilityBoundingSet=" "LimitNOFILE=65536" "User=sluice"; do
  grep -qxF "$key" "$UNIT" || fail "the unit lacks $key"
done
mkdir -p "$WORK/unit"
sed "s|/usr/bin/sluice|$ROOT/usr/bin/sluice|g; s|/etc/sluice/|$ROOT/etc/sluice/|g" "$UNIT" >"$WORK/unit/sluice.service"
REMARKS="$(systemd-analyze verify --man=no "$WORK/unit/sluice.service" 2>&1)" || fail "systemd-analyze verify: $REMARKS"
[ -z "$REMARKS" ] || fail "systemd-analyze verify: $REMARKS"
ok "systemd-analyze verify: no remark"

for page in man1/sluice.1.gz man5/sluice.toml.5.gz; do
  TEXT="$(MANWIDTH=80 man -l "$ROOT/usr/share/man/$page" 2>"$WORK/man.err")" || fail "man -l $page"
  [ -s "$WORK/man.err" ] && fail "man -l $page: $(cat "$WORK/man.err")"
  grep -q "^NAME" <<<"$TEXT" && grep -q "SEE ALSO" <<<"$TEXT" || fail "$page does not render"
  WARN="$(zcat "$ROOT/usr/share/man/$page" | groff -man -ww -z 2>&1)"
  [ -z "$WARN" ] || fail "groff warns on $page: $WARN"
done
ok "man sluice, man sluice.toml render without a warning"

"$ROOT/usr/bin/sluice" --check -c "$ROOT/etc/sluice/sluice.toml" >/dev/null || fail "the packaged configuration"
ok "the packaged /etc/sluice/sluice.toml validates"

# The installed binary, under a stand-in for systemd's notification socket.
python3 - "$WORK/notify.sock" "$WORK/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a", buffering=1) as log:
    try:
        while True:
            log.write(s.recv(4096).decode().replace("\n", " ") + "\n")
    except socket.timeout:
        pass
PY
LISTEN_PID=$!
for _ in $(seq 1 50); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done
cat >"$WORK/sluice.toml" <<CONF
[general]
workers = 1
log_level = "info"
[postgres]
listen = "127.0.0.1:$PORT"
[mysql]
enabled = false
[[users]]
name = "app"
password = "app"
[clusters.pg]
protocol = "postgres"
primary = "127.0.0.1:$PG_PORT"
[[pools]]
database = "app"
cluster = "pg"
CONF
NOTIFY_SOCKET="$WORK/notify.sock" "$ROOT/usr/bin/sluice" -c "$WORK/sluice.toml" 2>"$WORK/sluice.log" &
SLUICE_PID=$!
notified() { for _ in $(seq 1 100); do grep -q "$1" "$WORK/notify.log" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
notified "^READY=1" || fail "no READY=1"
[ "$(PGPASSWORD=app psql -X -A -t -h 127.0.0.1 -p "$PORT" -U app -d app -c 'SELECT 40 + 2')" = 42 ] ||
  fail "the installed binary does not serve"
ok "the installed binary said READY=1 and serves"
kill -HUP "$SLUICE_PID"
notified "^RELOADING=1 MONOTONIC_USEC=[0-9]" || fail "no RELOADING=1 on SIGHUP"
[ "$(grep -c '^READY=1' "$WORK/notify.log")" -ge 2 ] || notified "^READY=1$" || fail "no READY=1 after the reload"
kill -TERM "$SLUICE_PID"
notified "^STOPPING=1" || fail "no STOPPING=1 on SIGTERM"
wait "$SLUICE_PID" || fail "exit status $? after SIGTERM"
SLUICE_PID=
ok "RELOADING=1 and READY=1 on SIGHUP, STOPPING=1 on SIGTERM, exit 0"
echo "[doctest] test cases: $passed | $passed passed | 0 failed |"
