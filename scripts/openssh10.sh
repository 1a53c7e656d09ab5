#!/usr/bin/env bash
# Builds OpenSSH portable 10.2p1 (client and server with mlkem768x25519-sha256, which Debian 12's
# 9.2p1 lacks) into .tmp/openssh-10.2p1, once, from the upstream release tarball
# openssh-10.2p1.tar.gz (OpenSSH portable's own release, checked against the SHA-256 below; it is not
# in this repository). The tarball is $GATEHOUSE_OPENSSH_TARBALL when set, else
# ../shared/vendor/openssh-10.2p1.tar.gz (next to the clone, where the project's CI machine keeps it). The
# post-quantum key exchange tests (test/e2e/ssh-pq.test.ts) run its ssh, sftp, scp and sshd
# from there and skip, saying why, when it is absent. Needs build-essential, libssl-dev and
# zlib1g-dev (scripts/test.sh installs them). ~1 min on 2 cores. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tarball="${GATEHOUSE_OPENSSH_TARBALL:-$root/../shared/vendor/openssh-10.2p1.tar.gz}"
sha256=8d5fa5b27b6a7d1148f630f0e3412b3e0cb2027bbcfc1c7a41107e222cc75ce6
dir="$root/.tmp/openssh-10.2p1"

if [ -x "$dir/ssh" ] && [ -x "$dir/sshd" ] && [ -f "$dir/.gatehouse-built" ]; then
  exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "OpenSSH 10.2p1 not built: $tarball is absent (the ML-KEM tests will be skipped; set GATEHOUSE_OPENSSH_TARBALL to the path of openssh-10.2p1.tar.gz to build it)" >&2
  exit 0
fi
echo "$sha256  $tarball" | sha256sum --check --status ||
  { echo "$tarball does not have the expected SHA-256 ($sha256); not building it" >&2; exit 1; }
echo "Building OpenSSH 10.2p1 into .tmp/openssh-10.2p1 (once, ~1 min)"
rm -rf "$dir"
mkdir -p "$root/.tmp"
tar -xzf "$tarball" -C "$root/.tmp"
cd "$dir"
./configure --prefix="$dir/inst" --without-pam --with-privsep-path="$dir/empty" \
  --with-privsep-user=nobody >configure.out 2>&1 || { tail -n 30 configure.out >&2; exit 1; }
make -j2 >make.out 2>&1 || { tail -n 30 make.out >&2; exit 1; }
./ssh -Q kex | grep -qx mlkem768x25519-sha256 ||
  { echo "the OpenSSH built in $dir does not offer mlkem768x25519-sha256" >&2; exit 1; }
# sshd's privilege separation directory (compiled in; `make install` would make it): root's, not writable by others.
mkdir -p "$dir/empty" && chmod 755 "$dir/empty"
touch .gatehouse-built
echo "OpenSSH $(./ssh -V 2>&1) built in .tmp/openssh-10.2p1"
