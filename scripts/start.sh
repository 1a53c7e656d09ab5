#!/usr/bin/env bash
# Runs Gatehouse from a clone (the README's first command; `npm start` calls it): Node.js 24
# first on PATH (scripts/node24.sh fetches it when the system's Node is older), `npm ci` when
# the lockfile changed or the native modules were built for another Node, the build, then
# `gatehouse server` with the arguments given (bash scripts/start.sh --port 9443 …).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node24.sh
gatehouse_install
echo "Building" >&2
npm run --silent build >/dev/null
exec node --no-memory-reducer --heap-growing-percent=100 packages/cli/bin/gatehouse.js server "$@"
