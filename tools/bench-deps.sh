#!/usr/bin/env bash
# The Debian packages `deno task bench:tables` (bench/tables.ts) needs, beyond tools/debian-deps.sh's.
#   tools/bench-deps.sh --check    list what is missing (exit 1 if anything is)
#   tools/bench-deps.sh --install  apt-get install what is missing (needs root); the bench calls this itself
# wrk: the web load generator; auditd: the Linux audit peer (auditctl; the daemon is started by the bench,
# never by the package); linux-source-6.1 (+ flex, bison, bc, libelf-dev): the build workload, a tinyconfig
# Linux kernel; nginx, vsftpd, curl, strace: the servers, the FTP client and the ptrace peer.
set -euo pipefail
packages=(gcc libc6-dev make strace nginx vsftpd curl wrk auditd linux-source-6.1 flex bison bc libelf-dev xz-utils)

exec "$(dirname "$0")/apt-ensure.sh" bench-deps.sh "${1:---check}" "${packages[@]}"
