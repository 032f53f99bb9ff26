/**
 * What the seccomp filter adds so the supervisor's guard (host/wss/tamper.ts)
 * sees every call that could reach the supervisor: the calls that can reach
 * another process are notified (guardFilter), and the guard refuses them when
 * they reach the supervisor's own thread group, whatever the policy.
 *
 * @module
 */
import { syscallNumber } from "../../syscalls/mod.ts";
import type { ArgumentCheck } from "./filter.ts";

const nr = (name: string): number => syscallNumber(name)!;
const PTRACE_ATTACH = 16, PTRACE_SEIZE = 0x4206;
const PIDFD_THREAD = 0x80; // O_EXCL, Linux 6.9
const SO_PASSPIDFD = 76, SO_PEERPIDFD = 77; // asm-generic/socket.h, Linux 6.5
const F_SETOWN = 8, F_SETSIG = 10, F_SETOWN_EX = 15; // asm-generic/fcntl.h
const TIOCSTI = 0x5412, FIOSETOWN = 0x8901, SIOCSPGRP = 0x8902;

/** What the filter must add so the guard sees every call that could reach the supervisor. */
export interface GuardFilter {
  /** Notified whatever their arguments: their target is a thread id or an fd, unknown to the filter. */
  always: number[];
  /** Notified when an integer argument names the supervisor (the rest never can). */
  checks: ArgumentCheck[];
}

/**
 * The calls to notify for a supervisor of pid `self`. kill(2) and
 * rt_sigqueueinfo(2) accept any thread id of a process, and a thread's id is
 * not known when the filter is built, so they are notified always; tgkill(2)
 * and rt_tgsigqueueinfo(2) check the thread group id, pidfd_open(2) without
 * PIDFD_THREAD takes only a leader, and ptrace(2) reaches another task only
 * through PTRACE_ATTACH or PTRACE_SEIZE. The other ways to a pidfd (a
 * socket peer's: SO_PEERPIDFD, SO_PASSPIDFD), to a signal the kernel sends
 * on another's behalf (F_SETOWN, FIOSETOWN, SIOCSPGRP: SIGIO; F_SETSIG: which
 * signal that is) and to another
 * process's limits (prlimit64: RLIMIT_CPU kills, RLIMIT_FSIZE stops the
 * audit journal) are notified by their argument; TIOCSTI too, which types
 * into a terminal for a shell outside the tree to run.
 */
export function guardFilter(self: number): GuardFilter {
  return {
    always: [
      "kill",
      "tkill",
      "rt_sigqueueinfo",
      "pidfd_getfd",
      "pidfd_send_signal",
      "process_vm_readv",
      "process_vm_writev",
    ].map(nr),
    checks: [
      { nr: nr("ptrace"), arg: 0, equals: [PTRACE_ATTACH, PTRACE_SEIZE] },
      { nr: nr("tgkill"), arg: 0, equals: [self] },
      { nr: nr("rt_tgsigqueueinfo"), arg: 0, equals: [self] },
      { nr: nr("pidfd_open"), arg: 0, equals: [self] },
      { nr: nr("pidfd_open"), arg: 1, anyBits: PIDFD_THREAD },
      { nr: nr("getsockopt"), arg: 2, equals: [SO_PEERPIDFD] },
      { nr: nr("setsockopt"), arg: 2, equals: [SO_PASSPIDFD] },
      { nr: nr("fcntl"), arg: 1, equals: [F_SETOWN, F_SETOWN_EX, F_SETSIG] },
      { nr: nr("ioctl"), arg: 1, equals: [TIOCSTI, FIOSETOWN, SIOCSPGRP] },
      { nr: nr("prlimit64"), arg: 0, anyBits: 0xffffffff },
    ],
  };
}
