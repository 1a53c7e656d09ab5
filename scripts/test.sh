#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine of this kind, then runs every
# check on Node.js 24 (scripts/node24.sh): typecheck, lint, unit + API tests against SQLite and PostgreSQL, and the e2e
# tests that start the real `gatehouse` executable. Safe to run again (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests use: PostgreSQL, the age CLI (decrypts what we seal), xlsx2csv
# (reads the break-glass workbook the way a holder without Excel would).
need_apt=()
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v xlsx2csv >/dev/null 2>&1 || need_apt+=(xlsx2csv)
# Debian's aws CLI at /usr/bin/aws downloads what the S3 target wrote (tests call it by path).
[ -x /usr/bin/aws ] || need_apt+=(awscli)
# A throwaway Ceph cluster whose RADOS Gateway enforces SigV4 and bucket policies
# (packages/breakglass/src/rgw.test.ts; ceph-common comes with them: ceph, radosgw-admin).
command -v radosgw >/dev/null 2>&1 || need_apt+=(radosgw)
command -v ceph-mon >/dev/null 2>&1 || need_apt+=(ceph-mon)
command -v ceph-osd >/dev/null 2>&1 || need_apt+=(ceph-osd)
# OpenSSH on both sides of the SSH gateway (test/e2e/ssh-gateway.test.ts): a private sshd
# as the device, ssh/sftp/scp as the user's client, sshpass to type the user's password.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sshpass >/dev/null 2>&1 || need_apt+=(sshpass)
# OpenSSH 10.2p1 built from its release tarball (scripts/openssh10.sh; GATEHOUSE_OPENSSH_TARBALL) as the ML-KEM peer of the
# post-quantum key exchange tests (test/e2e/ssh-pq.test.ts): a C toolchain, OpenSSL, zlib.
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need_apt+=(build-essential)
[ -e /usr/include/openssl/evp.h ] || need_apt+=(libssl-dev)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
# rsync through the gateway: a binary exec download is kept as its size and SHA-256.
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
# The clients ops teams run through the gateway with user+device user names
# (test/e2e/ssh-clients.test.ts): git over ssh, lftp's sftp:// URLs, Ansible ad hoc.
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v lftp >/dev/null 2>&1 || need_apt+=(lftp)
command -v ansible >/dev/null 2>&1 || need_apt+=(ansible-core)
# Network namespaces and veth pairs for the device only its segment's gateway can reach
# (test/e2e/gateway-netns.test.ts).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# The host agent starts sessions as the user through setpriv (util-linux); its test finds a
# session's processes with pgrep (packages/cli/src/agent/session-server.test.ts).
[ -x /usr/bin/setpriv ] || need_apt+=(util-linux)
command -v pgrep >/dev/null 2>&1 || need_apt+=(procps)
# Debian's Chromium, driven headless by playwright-core, for the web console's tests
# (test/e2e/console.test.ts), with a font for the screenshots.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
# Desktops (issue 21): VNC targets (TigerVNC's Xtigervnc, Xvfb + x11vnc) with known content
# (xsetroot, xterm), a native viewer (xtigervncviewer), typing and reading back (xdotool,
# xclip), and for RDP: xrdp as the target, FreeRDP rendering into a per-session Xvfb.
[ -x /usr/bin/Xvfb ] || need_apt+=(xvfb)
[ -x /usr/bin/x11vnc ] || need_apt+=(x11vnc)
[ -x /usr/bin/Xtigervnc ] || need_apt+=(tigervnc-standalone-server)
[ -x /usr/bin/vncpasswd ] || need_apt+=(tigervnc-tools)
[ -x /usr/bin/xtigervncviewer ] || need_apt+=(tigervnc-viewer)
[ -x /usr/bin/xterm ] || need_apt+=(xterm)
[ -x /usr/bin/xsetroot ] || need_apt+=(x11-xserver-utils)
[ -x /usr/bin/xdotool ] || need_apt+=(xdotool)
[ -x /usr/bin/xclip ] || need_apt+=(xclip)
[ -x /usr/bin/xfreerdp ] || need_apt+=(freerdp2-x11)
[ -x /usr/sbin/xrdp ] || need_apt+=(xrdp)
[ -e /usr/lib/xorg/modules/drivers/xrdpdev_drv.so ] || need_apt+=(xorgxrdp)
# kubectl kustomize renders deploy/kubernetes (test/e2e/kubernetes-manifests.test.ts); Debian 12's
# kubernetes-client (1.20, kustomize v2) renders it the same as kubectl 1.32 (kustomize v5).
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "Installing apt packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# FreeRDP 3 (xfreerdp3), which browser RDP prefers, is in Debian 12's backports suite only
# (freerdp3-x11); FreeRDP 2 above stays as the fallback the renderer tests also run.
if [ ! -x /usr/bin/xfreerdp3 ]; then
  echo "Installing freerdp3-x11 from bookworm-backports"
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d; then
    # The same Debian mirror as the machine's bookworm suite (a deb822 stanza or a one-line entry).
    mirror=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && /URIs:/ {match($0,/URIs: *[^ \n]+/); print substr($0,RSTART+5,RLENGTH-5); exit}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | tr -d ' ')
    [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    printf '%s\n' 'Types: deb' "URIs: ${mirror:?no Debian bookworm mirror found in the apt sources}" 'Suites: bookworm-backports' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -t bookworm-backports freerdp3-x11
fi

# PostgreSQL on 127.0.0.1:5432 with trust auth, as these machines run it.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "Starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432; the tests need it." >&2; exit 1; }

# Node.js 24 LTS first on PATH (from npm when the machine's Node is older): the install, the
# native modules' build, typecheck, lint and every test run on it.
source scripts/node24.sh
echo "Node.js $(node --version)"

npm ci --no-audit --no-fund
gatehouse_mark_natives
bash scripts/openssh10.sh
npm run build
npm run ci
