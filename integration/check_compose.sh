#!/usr/bin/env bash
# Validates docker-compose.yml with Debian's docker-compose (no Docker engine needed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
docker-compose -f "$ROOT/docker-compose.yml" config -q
echo "docker-compose.yml is valid"
echo "1 passed, 0 failed"
