/**
 * The supervisor's guard against its own wrapped tree (docs/threat-model.md,
 * "Tamper resistance"). A wrapped program, even root, must not take the
 * listener out of the supervisor (pidfd_getfd(2)), trace it, read or write
 * its memory, or signal it: any of those would let it answer its own calls
 * or end supervision without a record. The filter notifies the calls that
 * can reach another process (guardFilter), and the supervisor refuses them
 * when they reach its own thread group (TamperGuard), whatever the policy.
 *
 * @module
 */
import { syscallNumber } from "../../syscalls/mod.ts";
import { errno, libc, SYS } from "./ffi.ts";
import type { ArgumentCheck } from "./filter.ts";

const nr = (name: string): number => syscallNumber(name)!;
const SIGKILL = 9, SIGSTOP = 19;
const PTRACE_ATTACH = 16, PTRACE_SEIZE = 0x4206;
const PIDFD_THREAD = 0x80; // O_EXCL, Linux 6.9

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
 * through PTRACE_ATTACH or PTRACE_SEIZE.
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
    ],
  };
}

/** Why a call was refused: the audit record's reason and its ATT&CK technique. */
export interface Refusal {
  reason: string;
  technique: string;
}

const NR = {
  kill: nr("kill"),
  tkill: nr("tkill"),
  tgkill: nr("tgkill"),
  rt_sigqueueinfo: nr("rt_sigqueueinfo"),
  rt_tgsigqueueinfo: nr("rt_tgsigqueueinfo"),
  pidfd_open: nr("pidfd_open"),
  pidfd_getfd: nr("pidfd_getfd"),
  pidfd_send_signal: nr("pidfd_send_signal"),
  process_vm_readv: nr("process_vm_readv"),
  process_vm_writev: nr("process_vm_writev"),
  ptrace: nr("ptrace"),
};

/** The system calls TamperGuard.check() looks at. */
export const GUARDED_SYSCALLS: ReadonlySet<number> = new Set(Object.values(NR));

/** What a wrapped ps(1) or top(1) may read of the supervisor in /proc: nothing it could act through. */
const READABLE_PROC_ENTRIES: ReadonlySet<string> = new Set([
  "",
  "task",
  "stat",
  "statm",
  "status",
  "cmdline",
  "comm",
  "cgroup",
  "limits",
  "io",
  "wchan",
  "schedstat",
  "oom_score",
  "loginuid",
  "sessionid",
]);

const int32 = (v: bigint): number => Number(BigInt.asIntN(32, v));

/** Decides, for one supervisor process, whether a wrapped call reaches it. */
export class TamperGuard {
  readonly #self: number;
  readonly #pgid: number;
  readonly #pidns: string;

  /** @param self the supervisor's pid (its thread group) */
  constructor(self: number = Deno.pid) {
    this.#self = self;
    this.#pgid = Number(libc.symbols.syscall(SYS.getpgid, 0n, 0n, 0n, 0n, 0n, 0n));
    this.#pidns = nsKey(`/proc/${self}/ns/pid`);
  }

  /**
   * Whether a notified call of a wrapped process reaches the supervisor.
   *
   * @param caller the calling process's pid (thread group) in our namespace
   * @param callerPidfd a pidfd of the caller, to read the fds it names
   * @returns why it is refused, or undefined to let the policy decide
   */
  check(nr: number, args: BigUint64Array, caller: number, callerPidfd: number): Refusal | undefined {
    if (!GUARDED_SYSCALLS.has(nr)) return undefined;
    // A process in another pid namespace names pids of its own: ours are not among them.
    const numbersAreOurs = nsKey(`/proc/${caller}/ns/pid`) === this.#pidns;
    const ours = (pid: number) => numbersAreOurs && this.#isOurThread(pid);
    const signal = (sig: number, how: string, target: boolean) =>
      sig !== 0 && target
        ? { reason: `${how} of signal ${sig} to the idwrap supervisor`, technique: "T1562.001" }
        : undefined;
    switch (nr) {
      case NR.kill: {
        const pid = int32(args[0]), sig = int32(args[1]);
        if (pid > 0) return signal(sig, "kill", ours(pid));
        // Groups and broadcasts: idwrap ignores every catchable signal that would end it (ignoreHarmfulSignals);
        // only the two it cannot catch are refused, and only where idwrap is in the target set.
        if (sig !== SIGKILL && sig !== SIGSTOP) return undefined;
        const group = pid === 0 ? this.#pgidOf(caller) : -pid;
        return signal(sig, pid === -1 ? "kill(-1)" : "process-group kill", pid === -1 || group === this.#pgid);
      }
      case NR.tkill:
      case NR.rt_sigqueueinfo:
        return signal(int32(args[1]), nr === NR.tkill ? "tkill" : "rt_sigqueueinfo", ours(int32(args[0])));
      case NR.tgkill:
      case NR.rt_tgsigqueueinfo:
        return signal(int32(args[2]), nr === NR.tgkill ? "tgkill" : "rt_tgsigqueueinfo", ours(int32(args[0])));
      case NR.pidfd_send_signal:
        return signal(int32(args[1]), "pidfd_send_signal", this.#fdNamesUs(callerPidfd, int32(args[0])));
      case NR.pidfd_open:
        return ours(int32(args[0]))
          ? { reason: "pidfd_open of the idwrap supervisor", technique: "T1562.001" }
          : undefined;
      case NR.pidfd_getfd:
        return this.#fdNamesUs(callerPidfd, int32(args[0]))
          ? { reason: "pidfd_getfd from the idwrap supervisor (its listener)", technique: "T1562.001" }
          : undefined;
      case NR.process_vm_readv:
      case NR.process_vm_writev:
        return ours(int32(args[0]))
          ? {
            reason: `${nr === NR.process_vm_readv ? "process_vm_readv" : "process_vm_writev"} of the idwrap supervisor`,
            technique: "T1055",
          }
          : undefined;
      case NR.ptrace: {
        const request = int32(args[0]);
        const attach = request === PTRACE_ATTACH || request === PTRACE_SEIZE;
        return attach && ours(int32(args[1]))
          ? { reason: "ptrace attach to the idwrap supervisor", technique: "T1055.008" }
          : undefined;
      }
    }
    return undefined;
  }

  /**
   * Whether an open reaches into the supervisor through /proc: anything but a
   * read of the entries ps(1) and top(1) read (READABLE_PROC_ENTRIES) —
   * mem, fd/, environ, map_files/, root/, oom_score_adj and the rest.
   *
   * @param readOnly the open asks for O_RDONLY without O_CREAT/O_TRUNC
   */
  checkPath(path: string, readOnly: boolean): Refusal | undefined {
    const m = path.match(/^\/proc\/(\d+)(?:\/task\/(\d+))?(?:\/([^/]*))?/);
    if (!m) return undefined;
    const ours = this.#isOurThread(Number(m[1])) || (m[2] !== undefined && this.#isOurThread(Number(m[2])));
    if (!ours) return undefined;
    const entry = m[3] ?? "";
    if (readOnly && READABLE_PROC_ENTRIES.has(entry) && !path.slice(m[0].length).includes("/")) return undefined;
    return { reason: `open of the idwrap supervisor's ${path}`, technique: "T1562.001" };
  }

  /** A thread id of the supervisor's thread group (its pid included). */
  #isOurThread(tid: number): boolean {
    if (tid === this.#self) return true;
    if (tid <= 0) return false;
    try {
      Deno.statSync(`/proc/${this.#self}/task/${tid}`);
      return true;
    } catch {
      return false;
    }
  }

  #pgidOf(pid: number): number {
    return Number(libc.symbols.syscall(SYS.getpgid, BigInt(pid), 0n, 0n, 0n, 0n, 0n));
  }

  /** Whether the caller's fd is a pidfd, or a /proc/PID directory, of the supervisor. */
  #fdNamesUs(callerPidfd: number, fd: number): boolean {
    const copy = Number(libc.symbols.syscall(SYS.pidfd_getfd, BigInt(callerPidfd), BigInt(fd), 0n, 0n, 0n, 0n));
    if (copy < 0) {
      // EBADF: not an fd of the caller, so the call fails by itself; anything else: we cannot tell, so refuse.
      return errno() !== 9;
    }
    try {
      const info = Deno.readTextFileSync(`/proc/self/fdinfo/${copy}`);
      const pid = info.match(/^Pid:\s*(-?\d+)/m);
      if (pid) return this.#isOurThread(Number(pid[1]));
      const link = Deno.readLinkSync(`/proc/self/fd/${copy}`);
      const dir = link.match(/^\/proc\/(\d+)$/);
      return dir !== null && this.#isOurThread(Number(dir[1]));
    } catch {
      return true; // unreadable: refuse rather than guess
    } finally {
      libc.symbols.close(copy);
    }
  }
}

/** The inode of a namespace link, "" if unreadable. */
function nsKey(path: string): string {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return "";
  }
}

/**
 * Signals idwrap must survive when a wrapped program sends them to its whole
 * process group or to every process (kill(0, sig), kill(-1, sig)): those whose
 * default action ends the process and that idwrap does not already handle
 * (SIGINT, SIGTERM, SIGHUP, SIGQUIT are forwarded to the command).
 */
const SURVIVED: Deno.Signal[] = [
  "SIGUSR1",
  "SIGUSR2",
  "SIGALRM",
  "SIGVTALRM",
  "SIGPROF",
  "SIGPOLL",
  "SIGPWR",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGTRAP",
  "SIGSYS",
  "SIGPIPE",
];

/**
 * Makes the supervisor process harder to reach from the tree it wraps:
 * non-dumpable (ptrace, pidfd_getfd, process_vm_* and /proc/PID/mem then need
 * CAP_SYS_PTRACE, which a program running as the same ordinary user lacks),
 * and deaf to the catchable signals that would end it.
 */
export function hardenSupervisorProcess(): void {
  libc.symbols.prctl(4, /* PR_SET_DUMPABLE */ 0n, 0n, 0n, 0n);
  for (const sig of SURVIVED) {
    try {
      Deno.addSignalListener(sig, () => {});
    } catch { /* not catchable on this platform */ }
  }
}
