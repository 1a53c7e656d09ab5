#!/usr/bin/env bash
# Runs Gatehouse from a clone (the README's first command; `npm start` calls it): Node.js 24
# first on PATH (scripts/node24.sh fetches it when the system's Node is older), the
# dependencies installed with `npm ci` when the lockfile changed or their native modules were
# built for another Node, the build, then `gatehouse server` with the arguments given
# (bash scripts/start.sh --port 9443 …).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node24.sh

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
  [ "$(cat "$(gatehouse_natives_stamp)" 2>/dev/null)" != "$(node -p 'process.versions.modules')" ]; then
  echo "Installing dependencies on Node.js $(node --version) (npm ci)" >&2
  npm ci --no-audit --no-fund
  gatehouse_mark_natives
fi
echo "Building" >&2
npm run --silent build >/dev/null
exec node --no-memory-reducer packages/cli/bin/gatehouse.js server "$@"
