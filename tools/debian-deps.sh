#!/usr/bin/env bash
# The Debian packages idwrap's build and tests use, in one place.
#   tools/debian-deps.sh --check    list what is missing (exit 1 if anything is)
#   tools/debian-deps.sh --install  apt-get install what is missing (needs root)
set -euo pipefail
# gcc + libc6-dev: idwrap-launch and the test programs; strace: conformance tests;
# passwd (useradd) and util-linux (setpriv): tests that run as real other users;
# nginx, vsftpd, curl: the server wrappers' tests (started by the tests, on loopback only);
# git, python3: the benign workloads (tests/baseline/benign_test.ts), which CI must not skip.
# clang, bpftool, libbpf-dev: the BPF programs (kmod/bpf, tools/build_bpf.ts: CO-RE against vmlinux.h from the kernel BTF);
# libbpf1: the bpf source loads them through libbpf.so.1 (host/sources/bpf/libbpf.ts).
# libnss-systemd: a name service beyond the files (it synthesizes nobody), for tests/policy/nss_test.ts.
# busybox-static (or busybox): its nc and mount, the rules library's network-tool and container tests (tests/policy/library_live_test.ts).
# nats-server: the NATS output and fleet policy tests start a real JetStream server (tests/daemon/nats_fleet_test.ts).
# debootstrap: the clean Debian 12 root the .deb is installed on (tests/package/; dpkg-deb, which builds it, is essential).
packages=(gcc libc6-dev strace passwd util-linux nginx vsftpd curl git python3 clang bpftool libbpf-dev libbpf1 libnss-systemd busybox-static nats-server debootstrap)

exec "$(dirname "$0")/apt-ensure.sh" debian-deps.sh "${1:---check}" "${packages[@]}"
