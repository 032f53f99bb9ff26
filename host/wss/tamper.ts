/**
 * The supervisor's guard against its own wrapped tree (docs/threat-model.md,
 * "Tamper resistance"), for every source. A wrapped program, even root, must
 * not take a listener or the device out of the supervisor (pidfd_getfd(2)),
 * trace it, read or write its memory, or signal it: any of those would let it
 * answer its own calls or end supervision without a record. Each source makes
 * the calls that can reach another process wait (seccomp: its filter,
 * host/sources/seccomp/tamper.ts; kmod: its interest mask), and TamperGuard
 * refuses them when they reach the supervisor's own thread group, whatever
 * the policy.
 *
 * @module
 */
import { syscallNumber } from "../syscalls/mod.ts";
import { addressOf, libc, SYS } from "../unsafe/libc.ts";
import { OUTSIDE_TREE_ALERT, type Refusal, UNPLACED_PROCFS_ALERT } from "./refusal.ts";

const nr = (name: string): number => syscallNumber(name)!;
const PTRACE_ATTACH = 16, PTRACE_SEIZE = 0x4206;
const F_SETOWN = 8, F_SETSIG = 10; // asm-generic/fcntl.h
const F_OWNER_PGRP = 2;
const TIOCSTI = 0x5412;
const ENOPROTOOPT = 92;

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
  getsockopt: nr("getsockopt"),
  setsockopt: nr("setsockopt"),
  fcntl: nr("fcntl"),
  ioctl: nr("ioctl"),
  prlimit64: nr("prlimit64"),
};

/** The system calls TamperGuard.check() looks at. */
export const GUARDED_SYSCALLS: ReadonlySet<number> = new Set(Object.values(NR));

/** What a wrapped ps(1) or top(1) may read of the supervisor in /proc: nothing it could act through. */
const READABLE_PROC_ENTRIES: ReadonlySet<string> = new Set([
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

/**
 * Signals idwrap survives (hardenSupervisorProcess, SURVIVED, and those whose default is to do nothing): the only ones
 * F_SETSIG may pick in a wrapped tree. Not SIGINT, SIGTERM, SIGHUP, SIGQUIT: `run` forwards them to the command, but
 * the daemon stops or reloads on them. A file's owner set by F_SETOWN_EX, FIOSETOWN or
 * SIOCSPGRP is read from the caller's memory, which a thread can change between the guard's read and the kernel's, so
 * the owner cannot be checked race-free; the signal can (a register), and none of these ends or stops idwrap.
 */
const SURVIVABLE_SIGNALS: ReadonlySet<number> = new Set([
  0, // the default: SIGIO
  5, // SIGTRAP
  10, // SIGUSR1
  12, // SIGUSR2
  13, // SIGPIPE
  14, // SIGALRM
  17, // SIGCHLD (ignored by default)
  18, // SIGCONT
  23, // SIGURG (ignored by default)
  24, // SIGXCPU
  25, // SIGXFSZ
  26, // SIGVTALRM
  27, // SIGPROF
  28, // SIGWINCH (ignored by default)
  29, // SIGIO
  30, // SIGPWR
  31, // SIGSYS
]);

/** Group signals let through besides SURVIVABLE_SIGNALS: forwarded to the command (`kill 0` in a script), or a stop. */
const GROUP_SIGNALS_LET_THROUGH: ReadonlySet<number> = new Set([1, 2, 3, 15, 20, 21, 22]);

/** Decides, for one supervisor process, whether a wrapped call reaches it. */
export class TamperGuard {
  readonly #self: number;
  /** Single-threaded processes of idwrap's guarded like the supervisor: its idwrap-holder (listeners' keeper). */
  readonly #helpers: ReadonlySet<number>;
  readonly #pgid: number;

  /**
   * Whether `target` (a pid or tid, in our pid namespace) belongs to the caller's wrapped tree; without it every
   * target outside the supervisor is let through. A tree must not drive a process outside it (ptrace attach,
   * process_vm_writev/readv): that process's calls are not supervised (rt9 F4).
   */
  readonly #inTree: ((caller: number, target: number) => boolean) | undefined;

  /**
   * @param self the supervisor's pid (its thread group)
   * @param helpers pids of idwrap's own single-threaded helpers to guard as well (idwrap-holder)
   * @param inTree whether a target belongs to the caller's tree (the source's process table); without it, targets
   *   outside the supervisor are not checked
   */
  constructor(
    self: number = Deno.pid,
    helpers: number[] = [],
    inTree?: (caller: number, target: number) => boolean,
  ) {
    this.#inTree = inTree;
    this.#self = self;
    this.#helpers = new Set(helpers);
    this.#pgid = Number(libc.symbols.syscall(SYS.getpgid, 0n, 0n, 0n, 0n, 0n, 0n));
  }

  /**
   * Whether a notified call of a wrapped process reaches the supervisor.
   *
   * @param caller the calling process's pid (thread group) in our namespace
   * @param tid the calling thread: fds are looked up in its table (a thread may have its own: CLONE_FILES unset)
   * @param read reads the caller's memory (a struct an argument points to)
   * @returns why it is refused, or undefined to let the policy decide
   */
  check(
    nr: number,
    args: BigUint64Array,
    caller: number,
    tid: number,
    read: (addr: bigint, len: number) => Uint8Array | undefined,
  ): Refusal | undefined {
    if (!GUARDED_SYSCALLS.has(nr)) return undefined;
    // A process in a child pid namespace names pids of its own: ours are not among them.
    const numbersAreOurs = !inChildPidNamespace(caller);
    const ours = (pid: number) => numbersAreOurs && this.#isOurThread(pid);
    const signal = (sig: number, how: string, target: boolean) =>
      sig !== 0 && target
        ? { reason: `${how} of signal ${sig} to the idwrap supervisor`, technique: "T1562.001" }
        : undefined;
    const owner = (pid: number, how: string) =>
      (pid > 0 ? ours(pid) : pid < 0 && -pid === this.#pgid)
        ? { reason: `${how}: SIGIO to the idwrap supervisor`, technique: "T1562.001" }
        : undefined;
    switch (nr) {
      case NR.kill: {
        const pid = int32(args[0]), sig = int32(args[1]);
        if (pid > 0) return signal(sig, "kill", ours(pid));
        // Groups and broadcasts: idwrap survives most signals (hardenSupervisorProcess; SIGINT, SIGTERM, SIGHUP,
        // SIGQUIT are forwarded to the command; the job-control stops only hold calls): the others (SIGKILL, SIGSTOP,
        // SIGABRT, real-time signals…: `kill -ABRT 0` ended idwrap) are refused where idwrap is in the target set.
        if (SURVIVABLE_SIGNALS.has(sig) || GROUP_SIGNALS_LET_THROUGH.has(sig)) return undefined;
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
        return signal(int32(args[1]), "pidfd_send_signal", this.#fdNamesUs(caller, tid, int32(args[0])));
      case NR.pidfd_open:
        return ours(int32(args[0]))
          ? { reason: "pidfd_open of the idwrap supervisor", technique: "T1562.001" }
          : undefined;
      case NR.pidfd_getfd:
        // Whatever the pidfd names when we look, another thread can dup2() another pidfd onto its number before the
        // kernel looks again: no check of it is race-free, so no wrapped process takes another's fds.
        return this.#fdNamesUs(caller, tid, int32(args[0]))
          ? { reason: "pidfd_getfd from the idwrap supervisor (its listener)", technique: "T1562.001" }
          : {
            reason: "pidfd_getfd is refused in a wrapped tree: the process it takes from cannot be checked race-free",
            technique: "T1562.001",
            quiet: true,
          };
      case NR.getsockopt:
      case NR.setsockopt:
        // A pidfd of the socket's peer (SO_PEERPIDFD, or SCM_PIDFD once SO_PASSPIDFD is set): a connection to any
        // socket idwrap serves would hand one out. Refused with the kernel's answer before Linux 6.5.
        return {
          reason: `${nr === NR.getsockopt ? "SO_PEERPIDFD" : "SO_PASSPIDFD"} is refused in a wrapped tree: ` +
            "a peer's pidfd could be the supervisor's",
          technique: "T1562.001",
          errno: ENOPROTOOPT,
          quiet: true,
        };
      case NR.fcntl: {
        if (int32(args[1]) === F_SETOWN) return owner(int32(args[2]), "fcntl(F_SETOWN)");
        if (int32(args[1]) === F_SETSIG) {
          const sig = int32(args[2]);
          return SURVIVABLE_SIGNALS.has(sig) ? undefined : {
            reason: `fcntl(F_SETSIG) of signal ${sig} is refused in a wrapped tree: a file's owner cannot be checked ` +
              "race-free, and this signal would end or stop the idwrap supervisor",
            technique: "T1562.001",
          };
        }
        const ex = read(args[2], 8); // struct f_owner_ex { int type; pid_t pid; }
        if (!ex) return undefined; // the kernel fails it with EFAULT too
        const v = new DataView(ex.buffer, ex.byteOffset, 8);
        const pid = v.getInt32(4, true);
        return owner(v.getInt32(0, true) === F_OWNER_PGRP ? -pid : pid, "fcntl(F_SETOWN_EX)");
      }
      case NR.ioctl: {
        const request = Number(args[1] & 0xffffffffn);
        if (request === TIOCSTI) {
          return {
            reason: "TIOCSTI: input pushed into a terminal is run by whatever reads it, outside supervision",
            technique: "T1059",
          };
        }
        const arg = read(args[2], 4);
        if (!arg) return undefined;
        const pid = new DataView(arg.buffer, arg.byteOffset, 4).getInt32(0, true);
        return owner(pid, `ioctl(0x${request.toString(16)})`);
      }
      case NR.prlimit64:
        return ours(int32(args[0]))
          ? { reason: "prlimit64 on the idwrap supervisor (RLIMIT_CPU would kill it)", technique: "T1562.001" }
          : undefined;
      case NR.process_vm_readv:
      case NR.process_vm_writev: {
        const how = nr === NR.process_vm_readv ? "process_vm_readv" : "process_vm_writev";
        const target = int32(args[0]);
        if (ours(target)) return { reason: `${how} of the idwrap supervisor`, technique: "T1055" };
        return this.#outside(numbersAreOurs, caller, target, how, "T1055");
      }
      case NR.ptrace: {
        const request = int32(args[0]);
        if (request !== PTRACE_ATTACH && request !== PTRACE_SEIZE) return undefined;
        const target = int32(args[1]);
        if (ours(target)) return { reason: "ptrace attach to the idwrap supervisor", technique: "T1055.008" };
        return this.#outside(numbersAreOurs, caller, target, "ptrace attach", "T1055.008");
      }
    }
    return undefined;
  }

  /**
   * A call that would drive `target`, refused when it is outside the caller's tree. A caller in a pid namespace of
   * its own names pids there: a namespace the tree made holds only the tree's processes (let through; joining another
   * one takes CAP_SYS_ADMIN over it). A target that does not exist is let through: the kernel fails it (ESRCH).
   */
  #outside(
    numbersAreOurs: boolean,
    caller: number,
    target: number,
    how: string,
    technique: string,
  ): Refusal | undefined {
    if (!this.#inTree || !numbersAreOurs || target <= 0 || this.#inTree(caller, target)) return undefined;
    try {
      Deno.statSync(`/proc/${target}`);
    } catch {
      return undefined;
    }
    return {
      reason: `${how} of process ${target}, outside the wrapped tree: its calls are not supervised`,
      technique,
      alert: OUTSIDE_TREE_ALERT,
    };
  }

  /**
   * Whether an open reaches into the supervisor through /proc: anything but a
   * read of the entries ps(1) and top(1) read (READABLE_PROC_ENTRIES) —
   * mem, fd/, environ, map_files/, root/, oom_score_adj and the rest.
   *
   * @param readOnly whether the open asks for O_RDONLY without O_CREAT/O_TRUNC (asked only for the supervisor's
   *   entries: reading openat2's flags costs a read of the caller's memory)
   */
  checkPath(path: string, readOnly: () => boolean, caller?: number): Refusal | undefined {
    return path.startsWith("/proc/") ? this.#checkInProcfs(path.slice(5), path, readOnly, caller) : undefined;
  }

  /**
   * The same decision on the object an open resolved to, wherever its procfs is mounted: a second procfs mount, a
   * bind mount of /proc/PID or of one of its entries (CAP_SYS_ADMIN in the wrapped tree) name the same entries under
   * other strings. A procfs object is placed in its filesystem by its mount (the caller's mountinfo: the mount's root
   * inside procfs and where it is mounted), so `<mnt>/PID/mem` and a bind of /proc/PID at `<mnt>` both read PID/mem.
   *
   * @param fd an O_PATH fd of the object (or of its parent directory, then `path` names the object in it)
   * @param path the object's canonical path in the caller's root (where the fd was resolved)
   * @param caller a thread of the caller (its mount namespace and root place the mount)
   */
  checkObject(fd: number, path: string, caller: number, readOnly: () => boolean): Refusal | undefined {
    if (fd < 0 || !onProcfs(fd)) return undefined;
    const inner = procfsPathOf(fd, path, caller);
    if (inner === undefined) {
      // A procfs object we cannot place could be ours: refused rather than guessed.
      return {
        reason: `open of ${path} on a procfs mount idwrap cannot place: it could be the supervisor's (failed closed)`,
        technique: "T1562.001",
        alert: UNPLACED_PROCFS_ALERT,
      };
    }
    return this.#checkInProcfs(inner, path, readOnly, pidOf(caller));
  }

  /**
   * Whether a resolution left one of the supervisor's per-process procfs directories through a magic link: its fd/N
   * (the file behind the supervisor's fd N: its journal, its store, its pipes), fdinfo/, map_files/R, cwd, root, exe,
   * ns/, of any of its threads (/PID/task/TID/…, /TID/…), in any procfs mount. Decided on each directory's object, as
   * checkObject decides, so dirfds, "..", symbolic links and /proc/self aliases all reach the same answer.
   *
   * @param via the procfs directories the resolution followed a magic link out of (world.ts, Passage)
   * @param shown how the call named the path (for the report)
   * @param caller a thread of the caller (its mount namespace and root place each mount)
   */
  checkPassages(via: readonly { fd: number; path: string }[], shown: string, caller: number): Refusal | undefined {
    for (const { fd, path } of via) {
      const inner = fd < 0 ? undefined : procfsPathOf(fd, path, caller);
      if (inner === undefined) {
        return {
          reason: `${shown} followed a magic link in ${path}, on a procfs mount idwrap cannot place (failed closed)`,
          technique: "T1562.001",
          alert: UNPLACED_PROCFS_ALERT,
        };
      }
      const m = inner.match(/^\/(\d+)(?:\/task\/(\d+))?(?:\/|$)/);
      if (!m) continue;
      if (this.#isOurThread(Number(m[1])) || (m[2] !== undefined && this.#isOurThread(Number(m[2])))) {
        const where = path.startsWith("/proc/") ? "" : ` (procfs ${inner})`;
        return {
          reason: `${shown} goes through the idwrap supervisor's ${path}${where}: a magic link to its files`,
          technique: "T1562.001",
        };
      }
    }
    return undefined;
  }

  /** `inner`: a path inside a procfs ("/PID/mem"); `shown`: how the call named it. */
  #checkInProcfs(inner: string, shown: string, readOnly: () => boolean, caller?: number): Refusal | undefined {
    const m = inner.match(/^\/(\d+)(?:\/task\/(\d+))?(?:\/([^/]*))?/);
    if (!m) return undefined;
    const ours = this.#isOurThread(Number(m[1])) || (m[2] !== undefined && this.#isOurThread(Number(m[2])));
    if (!ours) {
      // Another process's memory opened for writing is process_vm_writev by another name (rt9 F4).
      if (caller === undefined || m[3] !== "mem" || inner.length !== m[0].length || readOnly()) return undefined;
      const how = `open of ${shown} for writing`;
      return this.#outside(!inChildPidNamespace(caller), caller, Number(m[1]), how, "T1055");
    }
    const entry = m[3] ?? "";
    if (READABLE_PROC_ENTRIES.has(entry) && readOnly() && !inner.slice(m[0].length).includes("/")) return undefined;
    const where = shown.startsWith("/proc/") ? "" : ` (procfs ${inner})`;
    return { reason: `open of the idwrap supervisor's ${shown}${where}`, technique: "T1562.001" };
  }

  /** A thread id of the supervisor's thread group (its pid included). */
  #isOurThread(tid: number): boolean {
    if (tid === this.#self || this.#helpers.has(tid)) return true;
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

  /**
   * Whether the calling thread's fd is a pidfd of the supervisor, or a /proc/PID directory of it (in any procfs
   * mount), read from that thread's own fd table in /proc, never through a copy: a copy by the process's pidfd
   * comes from the main thread's table, which a thread created without CLONE_FILES does not share.
   */
  #fdNamesUs(caller: number, tid: number, fd: number): boolean {
    const base = `/proc/${caller}/task/${tid}`;
    try {
      const pid = Deno.readTextFileSync(`${base}/fdinfo/${fd}`).match(/^Pid:\s*(-?\d+)/m);
      if (pid) return this.#isOurThread(Number(pid[1]));
      const dir = Deno.readLinkSync(`${base}/fd/${fd}`).match(/\/(\d+)$/);
      return dir !== null && this.#isOurThread(Number(dir[1])) && isProcfs(`${base}/fd/${fd}`);
    } catch (e) {
      // No such fd: the call fails by itself. Anything else: we cannot tell, so refuse.
      return !(e instanceof Deno.errors.NotFound);
    }
  }
}

/** Whether a process is in a pid namespace below ours (NSpid lists a pid per level); unreadable counts as not. */
function inChildPidNamespace(pid: number): boolean {
  try {
    const line = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^NSpid:\s*(.*)$/m);
    return line !== null && line[1].trim().split(/\s+/).length > 1;
  } catch {
    return false;
  }
}

const PROC_SUPER_MAGIC = 0x9fa0n;

/** Whether an fd's object is on a procfs; true when it cannot tell. */
function onProcfs(fd: number): boolean {
  const st = new BigInt64Array(15); // struct statfs (120 bytes), f_type first
  return libc.symbols.fstatfs(fd, new Uint8Array(st.buffer)) !== 0 || st[0] === PROC_SUPER_MAGIC;
}

/**
 * Where a procfs object is inside its procfs ("/1234/mem"), from the mount it was reached through: that mount's
 * root in the filesystem and its mount point, in the caller's /proc/TID/mountinfo (paths there are relative to the
 * caller's root, as `path` is). Undefined when the mount or the path cannot be placed.
 */
function procfsPathOf(fd: number, path: string, caller: number): string | undefined {
  try {
    const id = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`).match(/^mnt_id:\s*(\d+)$/m)?.[1];
    if (!id) return undefined;
    for (const line of Deno.readTextFileSync(`/proc/${caller}/mountinfo`).split("\n")) {
      const f = line.split(" ");
      if (f[0] !== id) continue;
      const root = unescapeMountinfo(f[3]), point = unescapeMountinfo(f[4]);
      const under = point === "/"
        ? path
        : path === point
        ? ""
        : path.startsWith(point + "/")
        ? path.slice(point.length)
        : undefined;
      if (under === undefined) return undefined;
      return (root === "/" ? "" : root) + (under === "" ? "" : under) || "/";
    }
  } catch { /* the caller is gone: nothing to place */ }
  return undefined;
}

/** The thread group of a thread (itself when /proc cannot say). */
function pidOf(tid: number): number {
  try {
    return Number(Deno.readTextFileSync(`/proc/${tid}/status`).match(/^Tgid:\s*(\d+)$/m)?.[1] ?? tid);
  } catch {
    return tid;
  }
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** Whether a path (magic links followed) is on a procfs mount; true when it cannot tell. */
function isProcfs(path: string): boolean {
  const buf = new Uint8Array(path.length * 3 + 1);
  const { written } = new TextEncoder().encodeInto(path, buf);
  buf[written] = 0;
  const fd = Number(libc.symbols.syscall(SYS.openat, -100n, addressOf(buf), 0o10000000n, /* O_PATH */ 0n, 0n, 0n));
  if (fd < 0) return true;
  try {
    const st = new BigInt64Array(15); // struct statfs (120 bytes), f_type first
    return libc.symbols.fstatfs(fd, new Uint8Array(st.buffer)) !== 0 || st[0] === PROC_SUPER_MAGIC;
  } finally {
    libc.symbols.close(fd);
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
