/**
 * The seccomp source's guard (../seccomp/tamper.ts, TamperGuard) on the
 * kernel-module source: which calls the module must hand to the host
 * synchronously so the guard sees every one that could reach the
 * supervisor, and the path an open acts on, from the module's copy, for
 * TamperGuard.checkPath.
 *
 * @module
 */
import { resolveSyscalls, syscallNumber } from "../../syscalls/mod.ts";
import type { TargetMemory } from "../../unsafe/memory.ts";
import type { Refusal } from "../../wss/refusal.ts";
import { EVF, type KmodRecord } from "./uapi.ts";

/**
 * Calls whose target the guard judges from their registers alone (a pid, a
 * thread id, a pidfd): DECIDE in every kmod mask. The seccomp filter also
 * notifies fcntl(F_SETOWN*), ioctl(FIOSETOWN, SIOCSPGRP, TIOCSTI) and
 * get/setsockopt(SO_*PIDFD) by their argument, which the module's mask cannot
 * select: making every fcntl and ioctl wait would cost every program, so
 * those stay out (docs/threat-model.md says what that leaves).
 */
export const KMOD_GUARDED_SYSCALLS: readonly string[] = [
  "kill",
  "tkill",
  "tgkill",
  "rt_sigqueueinfo",
  "rt_tgsigqueueinfo",
  "pidfd_open",
  "pidfd_getfd",
  "pidfd_send_signal",
  "process_vm_readv",
  "process_vm_writev",
  "ptrace",
  "prlimit64",
];

/**
 * The opens: where the policy makes them wait (a deny rule, a DENY wrapper), an open of the supervisor's /proc
 * entries is refused. They are not made to wait for the guard alone (every open would wait for the host); idwrap is
 * non-dumpable, so only root reaches those entries anyway.
 */
export const KMOD_GUARDED_OPENS: readonly string[] = ["open", "openat", "openat2", "creat"];

const GUARDED = resolveSyscalls(KMOD_GUARDED_SYSCALLS);
const OPENS = resolveSyscalls(KMOD_GUARDED_OPENS);
const NR_OPENAT = syscallNumber("openat")!, NR_OPENAT2 = syscallNumber("openat2")!, NR_CREAT = syscallNumber("creat")!;
const AT_FDCWD = -100;
/** Symbolic links followed before giving up (the kernel's MAXSYMLINKS). */
const MAX_LINKS = 40;

/** Whether TamperGuard.check() is asked about this call on the kmod source. */
export const guardedCall = (nr: number): boolean => GUARDED.has(nr);

/** Whether the call is an open whose path TamperGuard.checkPath() is asked about. */
export const guardedOpen = (nr: number): boolean => OPENS.has(nr);

/** The calls the module refuses at sys_enter by their registers (io_uring, TIOCSTI, SO_PEERPIDFD/SO_PASSPIDFD). */
const REFUSED_AT_ENTRY = resolveSyscalls([
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "ioctl",
  "getsockopt",
  "setsockopt",
]);

/**
 * A refused record of any other call is the module's guard refusing it inside the call (kmod/idwrap_guard.c): a
 * ptrace access check (/proc/<idwrap>/fd, cwd, root, mem, environ, map_files, ptrace, process_vm_*, pidfd_getfd) or a
 * signal aimed at idwrap's thread group, decided on the task the kernel was about to expose. Reported as the tamper
 * alert, as the host's own guard reports what it refuses.
 */
export function moduleGuardRefusal(rec: KmodRecord): Refusal | undefined {
  const other = EVF.POST | EVF.RACED | EVF.COMPAT | EVF.X32 | EVF.VERDICT;
  if (!(rec.flags & EVF.DENIED) || rec.flags & other || REFUSED_AT_ENTRY.has(rec.nr)) return undefined;
  return {
    reason: "access to the idwrap supervisor refused by the module (a ptrace access check or a signal, on the task)",
    technique: "T1562.001",
  };
}

/**
 * The path an open record acts on, as the kernel will resolve it for the caller: its copied name, joined to the
 * directory the module pinned for a relative one (path2), `.`, `..`, `/proc/self`, `/proc/thread-self` and symbolic
 * links (magic links of /proc/PID/{fd,cwd,root} included, by their names) followed in the caller's root. Resolved now:
 * a link the tree swaps between this check and the open is not seen (docs/threat-model.md).
 *
 * @returns undefined when the start directory of a relative name cannot be known
 */
export function openTarget(rec: KmodRecord): string | undefined {
  const name = rec.path;
  if (name === undefined) return undefined;
  let start = "";
  if (!name.startsWith("/")) {
    const dirfd = rec.nr === NR_OPENAT || rec.nr === NR_OPENAT2 ? Number(BigInt.asIntN(32, rec.args[0])) : AT_FDCWD;
    // openat2's dirfd is not pinned by the module (it runs the original call): read the caller's table.
    const from = rec.nr !== NR_OPENAT2 && rec.path2 !== undefined
      ? rec.path2
      : readLink(`/proc/${rec.pid}/task/${rec.tid}/${dirfd === AT_FDCWD ? "cwd" : `fd/${dirfd}`}`);
    if (from === undefined || !from.startsWith("/")) return undefined;
    start = from;
  }
  return resolveInCaller(`${start}/${name}`, rec.pid, rec.tid);
}

/** An absolute path resolved in the root of process `pid` (thread `tid`), without touching the file itself. */
export function resolveInCaller(path: string, pid: number, tid: number): string {
  const root = `/proc/${pid}/root`;
  let todo = path.split("/");
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    // The caller's own /proc links, which a read of ours would resolve to idwrap.
    if (done.length === 1 && done[0] === "proc" && part === "self") {
      done.push(String(pid));
      continue;
    }
    if (done.length === 1 && done[0] === "proc" && part === "thread-self") {
      done.push(String(pid), "task", String(tid));
      continue;
    }
    done.push(part);
    if (links >= MAX_LINKS) continue;
    const target = readLink(`${root}/${done.join("/")}`);
    if (target === undefined) continue;
    // A magic link to no path (pipe:[…], anon_inode:…, socket:[…]) reopens that object, nothing under /proc.
    if (!target.startsWith("/") && done[0] === "proc" && /^[a-z_]+:/.test(target)) continue;
    links++;
    done.pop();
    if (target.startsWith("/")) done.length = 0;
    todo = [...target.split("/"), ...todo];
  }
  return "/" + done.join("/");
}

function readLink(path: string): string | undefined {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return undefined; // not a link, or gone
  }
}

/** Whether an open record asks only to read (O_RDONLY, no O_CREAT or O_TRUNC); unreadable flags count as not. */
export function opensReadOnly(rec: KmodRecord, memory: TargetMemory): boolean {
  let flags: number;
  if (rec.nr === NR_CREAT) return false;
  if (rec.nr === NR_OPENAT2) {
    const how = memory.readBytes(rec.tid, rec.args[2], 8); // struct open_how { u64 flags; … }
    if (!how) return false;
    flags = Number(new DataView(how.buffer, how.byteOffset, 8).getBigUint64(0, true) & 0xffffffffn);
  } else flags = Number(rec.args[rec.nr === NR_OPENAT ? 2 : 1] & 0xffffffffn);
  return (flags & 0o1103) === 0; // O_ACCMODE | O_CREAT | O_TRUNC
}
