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
 * The calls to notify for a supervisor of pid `self` whose threads are `threads`
 * now, and the single-threaded `holders` of its listeners (idwrap-holder). kill(2), tkill(2) and rt_sigqueueinfo(2) accept any thread id of a
 * process: they are notified when their target is one of those threads, and
 * kill(2) also when it names a process group or every process (0 or negative:
 * the guard decides whether idwrap is among them). Notifying every kill would
 * put every script's `kill $a $b` in the EINTR window (docs/seccomp.md): the
 * SIGCHLD of the first child's death failed the second kill, unseen, and the
 * script waited for a child that was never signalled. A thread the supervisor
 * starts after the filter is built is not named (docs/threat-model.md).
 * tgkill(2) and rt_tgsigqueueinfo(2) check the thread group id, pidfd_open(2)
 * without PIDFD_THREAD takes only a leader, and ptrace(2) reaches another task
 * only through PTRACE_ATTACH or PTRACE_SEIZE. The other ways to a pidfd (a
 * socket peer's: SO_PEERPIDFD, SO_PASSPIDFD), to a signal the kernel sends
 * on another's behalf (F_SETOWN, FIOSETOWN, SIOCSPGRP: SIGIO; F_SETSIG: which
 * signal that is) and to another process's limits (prlimit64: RLIMIT_CPU
 * kills, RLIMIT_FSIZE stops the audit journal) are notified by their
 * argument; TIOCSTI too, which types into a terminal for a shell outside the
 * tree to run.
 */
export function guardFilter(
  self: number,
  threads: readonly number[] = [self],
  holders: readonly number[] = [],
): GuardFilter {
  // A holder (idwrap-holder) is single-threaded: its pid is its one thread id and its thread group.
  const ids = [...new Set([self, ...threads, ...holders])];
  const groups = [self, ...holders];
  return {
    always: [
      "pidfd_getfd",
      "pidfd_send_signal",
      "process_vm_readv",
      "process_vm_writev",
    ].map(nr),
    checks: [
      // pid 0 and negative pids (low 32 bits from 0x80000000): a process group, or every process.
      { nr: nr("kill"), arg: 0, equals: [...ids, 0], anyBits: 0x80000000 },
      { nr: nr("tkill"), arg: 0, equals: ids },
      { nr: nr("rt_sigqueueinfo"), arg: 0, equals: ids },
      { nr: nr("ptrace"), arg: 0, equals: [PTRACE_ATTACH, PTRACE_SEIZE] },
      { nr: nr("tgkill"), arg: 0, equals: groups },
      { nr: nr("rt_tgsigqueueinfo"), arg: 0, equals: groups },
      { nr: nr("pidfd_open"), arg: 0, equals: groups },
      { nr: nr("pidfd_open"), arg: 1, anyBits: PIDFD_THREAD },
      { nr: nr("getsockopt"), arg: 2, equals: [SO_PEERPIDFD] },
      { nr: nr("setsockopt"), arg: 2, equals: [SO_PASSPIDFD] },
      { nr: nr("fcntl"), arg: 1, equals: [F_SETOWN, F_SETOWN_EX, F_SETSIG] },
      { nr: nr("ioctl"), arg: 1, equals: [TIOCSTI, FIOSETOWN, SIOCSPGRP] },
      { nr: nr("prlimit64"), arg: 0, anyBits: 0xffffffff },
    ],
  };
}

/** The ids of this process's threads now (/proc/self/task). */
export function ownThreads(): number[] {
  return [...Deno.readDirSync("/proc/self/task")].map((e) => Number(e.name)).filter(Number.isInteger);
}
