#!/usr/bin/env bash
# `npm test`: works on a fresh clone of a fresh Debian machine. Installs what is
# missing (openssh-server, rsync, rclone; npm packages), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi
exec node node_modules/vitest/vitest.mjs run "$@"
