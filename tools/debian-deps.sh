#!/usr/bin/env bash
# The Debian packages idwrap's build and tests use, in one place.
#   tools/debian-deps.sh --check    list what is missing (exit 1 if anything is)
#   tools/debian-deps.sh --install  apt-get install what is missing (needs root)
set -euo pipefail
# gcc + libc6-dev: idwrap-launch and the test programs; strace: conformance tests;
# passwd (useradd) and util-linux (setpriv): tests that run as real other users;
# nginx, vsftpd, curl: the server wrappers' tests (started by the tests, on loopback only).
packages=(gcc libc6-dev strace passwd util-linux nginx vsftpd curl)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

case "${1:---check}" in
  --install)
    export DEBIAN_FRONTEND=noninteractive
    # Installing servers (nginx, vsftpd) must not start them: the tests start their own, on loopback.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    ;;
  *)
    echo "idwrap: missing Debian packages: ${missing[*]}" >&2
    echo "        install them with: sudo tools/debian-deps.sh --install" >&2
    exit 1
    ;;
esac
