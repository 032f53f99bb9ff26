#!/usr/bin/env bash
# The Debian packages `deno task bench:tables` (bench/tables.ts) needs, beyond tools/debian-deps.sh's.
#   tools/bench-deps.sh --check    list what is missing (exit 1 if anything is)
#   tools/bench-deps.sh --install  apt-get install what is missing (needs root); the bench calls this itself
# wrk: the web load generator; auditd: the Linux audit peer (auditctl; the daemon is started by the bench,
# never by the package); linux-source-6.1 (+ flex, bison, bc, libelf-dev): the build workload, a tinyconfig
# Linux kernel; nginx, vsftpd, curl, strace: the servers, the FTP client and the ptrace peer.
set -euo pipefail
packages=(gcc libc6-dev make strace nginx vsftpd curl wrk auditd linux-source-6.1 flex bison bc libelf-dev xz-utils)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

case "${1:---check}" in
  --install)
    if [ "$(id -u)" -ne 0 ]; then
      echo "idwrap: bench-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Installing servers and auditd must not start them: the bench starts its own, on loopback, and stops them.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    ;;
  *)
    echo "idwrap: bench-deps: missing Debian packages: ${missing[*]}" >&2
    echo "        install them with: sudo tools/bench-deps.sh --install" >&2
    exit 1
    ;;
esac
