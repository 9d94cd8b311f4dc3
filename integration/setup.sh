#!/usr/bin/env bash
# Installs what Sluice needs to build, test and benchmark, from Debian 12 packages only.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
PACKAGES=(
  build-essential clang cmake ninja-build ccache pkg-config
  libboost1.81-dev libpq-dev libmariadb-dev libssl-dev libtomlplusplus-dev libfmt-dev doctest-dev
  postgresql-15 postgresql-client-15 postgresql-contrib mariadb-server mariadb-client sysbench
  pgbouncer haproxy docker-compose procps iproute2
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
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
