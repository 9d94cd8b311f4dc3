#!/usr/bin/env bash
# Installs what Sluice needs to build, test and benchmark, from Debian 12 packages only.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
PACKAGES=(
  build-essential clang-16 libclang-rt-16-dev llvm-16 cmake ninja-build ccache pkg-config
  libboost1.81-dev libpq-dev libmariadb-dev libssl-dev libtomlplusplus-dev libfmt-dev doctest-dev
  libidn-dev libsodium-dev zlib1g-dev libzstd-dev libre2-dev python3-psycopg python3-psycopg2 python3-pymysql
  postgresql-15 postgresql-client-15 postgresql-contrib mariadb-server mariadb-client redis-tools sysbench
  pgbouncer haproxy docker-compose procps iproute2 openssl systemd man-db groff-base
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# promtool (the Prometheus text-format checker the admin tests run): unpacked from Debian's
# prometheus package into .tools/ rather than installed, since installing the package would also
# start a Prometheus server.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
if [ ! -x "$TOOLS/usr/bin/promtool" ] && ! command -v promtool >/dev/null; then
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"
  if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
                     { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; }); then
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p "$TOOLS/usr/bin"
    cp "$tmp/x/usr/bin/promtool" "$TOOLS/usr/bin/promtool"
    echo "setup: promtool unpacked into $TOOLS/usr/bin"
  else
    echo "setup: could not download Debian's prometheus package (promtool); the metrics test will fail" >&2
  fi
  rm -rf "$tmp"
fi
# Node.js drivers for integration/drivers/node (pg, pg-cursor, postgres, mysql2), from the npm
# registry at the versions package-lock.json records, into that folder's node_modules.
command -v npm >/dev/null || missing+=(nodejs npm)
node_drivers() {
  local dir="$ROOT/integration/drivers/node"
  [ -d "$dir/node_modules/pg-cursor" ] && [ -d "$dir/node_modules/mysql2" ] && return 0
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) &&
    echo "setup: Node.js drivers installed in $dir/node_modules" ||
    echo "setup: npm ci failed in $dir; the node_drivers test will fail" >&2
}
if [ ${#missing[@]} -eq 0 ]; then
  node_drivers
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
  exit 1
fi
# The sandbox runs its own PostgreSQL clusters: do not let the package create and start one on 5432.
if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q "install ok installed"; then
  mkdir -p /etc/postgresql-common
  grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf 2>/dev/null ||
    echo "create_main_cluster = false" >>/etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]}"
node_drivers
