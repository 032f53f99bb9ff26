#!/usr/bin/env bash
# Checks or installs Debian packages for one of idwrap's package lists (tools/debian-deps.sh, tools/bench-deps.sh).
#   tools/apt-ensure.sh SCRIPT --check|--install PACKAGE...
# SCRIPT names the calling script in messages. --install needs root; it never starts a service it installs (the tests
# and the bench start their own servers and auditd, on loopback, and stop them).
set -euo pipefail
script=$1 mode=$2
shift 2
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

case "$mode" in
  --install)
    if [ "$(id -u)" -ne 0 ]; then
      echo "idwrap: $script: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    ;;
  *)
    echo "idwrap: $script: missing Debian packages: ${missing[*]}" >&2
    echo "        install them with: sudo tools/$script --install" >&2
    exit 1
    ;;
esac
