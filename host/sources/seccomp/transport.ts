/**
 * The seccomp user-notify source as a transport (host/wss/source.ts) under
 * the one WSS (seccomp_unotify(2); the kernel's samples/seccomp/user-trap.c
 * is the canonical shape): receive a notification, learn its task, read its
 * memory and resolve its paths in the caller's world when the WSS asks,
 * check the notification is still valid, answer — with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE, an errno, or by running the call itself
 * on the checked objects (opens through ADDFD, path calls), which is how
 * this source decides on pointer arguments without a race.
 *
 * One transport serves every listener of the thread (one per wrapped tree),
 * with an epoll set of the listeners, a pidfd per process (its exit) and an
 * eventfd (the thread's messages).
 *
 * @module
 */
import type { DecodedArgs, ProgramIdentity, SyscallAbi, SyscallEvent, Verdict } from "../../events.ts";
import { E } from "../../errno.ts";
import { OPEN_SYSCALLS, resolveSyscalls, syscallName, syscallNumber } from "../../syscalls/mod.ts";
import {
  AUDIT_ARCH_X86_64,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_EVENT,
  EPOLLHUP,
  EPOLLIN,
  NOTIF,
  RESP,
  SECCOMP_IOCTL,
  SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
  SECCOMP_USER_NOTIF_FLAG_CONTINUE,
  X32_SYSCALL_BIT,
} from "../../unsafe/layouts.ts";
import { errno, libc, SYS } from "../../unsafe/libc.ts";
import { TargetMemory } from "../../unsafe/memory.ts";
import { decodeArgs, memoryReader } from "../../wss/decode.ts";
import { readProgram, readTaskStatus, type TaskStatus } from "../../wss/procfs.ts";
import type { Refusal } from "../../wss/refusal.ts";
import type {
  ArgNeeds,
  EventSource,
  Judged,
  PollResult,
  Settled,
  SourceCall,
  SourceCapabilities,
  SourceHandler,
  WatchChange,
} from "../../wss/source.ts";
import type { SupervisorSummary } from "../../wss/summary.ts";
import { GUARDED_SYSCALLS, TamperGuard } from "../../wss/tamper.ts";
import { SECCOMP_CAPABILITIES } from "../capabilities.ts";
import type { Interest } from "../../wss/interest.ts";
import { Emulator, type OpenArgs, PATH_CALLS, type PathCheck, REFUSED_WHEN_PATH_RULED } from "./emulate.ts";
import { PATH_ARGS } from "./paths.ts";
import { CallerWorld, failed, type Resolved } from "./world.ts";

const SIGKILL = 9n;
// epoll data (u64) as two u32 halves, read as numbers (no BigInt on the hot path):
// the high half says what the fd is, the low half which one (a tgid, a session id).
const KIND_PIDFD = 0, KIND_LISTENER = 1, KIND_WAKE = 2;
const OPEN_FAMILY = resolveSyscalls(OPEN_SYSCALLS);
const EXEC_FAMILY = new Set(["execve", "execveat"].map((n) => syscallNumber(n)!));
const OPEN_BY_HANDLE = syscallNumber("open_by_handle_at")!;
const MMAP = syscallNumber("mmap")!;
const PROT_EXEC = 4n, MAP_ANONYMOUS = 0x20n;
/** Calls after which a task's cached credentials, umask or root are stale. */
export const CRED_SYSCALLS: readonly string[] = [
  "setuid",
  "setgid",
  "setreuid",
  "setregid",
  "setresuid",
  "setresgid",
  "setfsuid",
  "setfsgid",
  "setgroups",
  "capset",
  "umask",
  "chroot",
];
const CRED_FAMILY = new Set(CRED_SYSCALLS.map((n) => syscallNumber(n)!));
const O_CREAT = 0o100, O_PATH = 0o10000000;
/** CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_SYS_PTRACE: what could open another's procfs entries. */
const PROC_REACHING_CAPS = (1n << 1n) | (1n << 2n) | (1n << 3n) | (1n << 19n);

/** How the transport runs. */
export interface SeccompSourceOptions {
  /** Run the open family in the supervisor (TOCTOU-free paths, post results). @default true */
  emulateOpens?: boolean;
  /**
   * idwrap-holder's socket (./holder.ts): told, now and then, the id of a notification each session received, so
   * that once this process is gone the holder can find and answer the calls it received but never answered.
   */
  holderFd?: number;
  /** idwrap-holder's pid: the tamper guard protects it as it protects this process. */
  holderPid?: number;
}

/** How often each session's latest notification id is told to the holder, at most. */
const HOLDER_REPORT_MS = 50;

/** The file an examined, allowed exec was decided on ("" ident: its path did not resolve when checked). */
interface ExecCheck {
  ident: string;
  path: string;
  nr: number;
}

interface Proc {
  session: number;
  tgid: number;
  pidfd: number;
  program: ProgramIdentity;
  /** dev:ino of /proc/PID/exe for `program`: an exec that ran is seen by it changing. */
  exeKey: string;
  /**
   * Execs let run and not known to be finished, by the thread that made them (null: not examined). Kept until the
   * program changes (the exec ran: reported, and re-decided on the file that runs) or the thread that made it is
   * back from it with the old program (it failed): a sibling's call while the exec is in flight is the old program's.
   */
  execs: Map<number, ExecCheck | null>;
}

interface Task {
  proc: Proc;
  creds: TaskStatus;
}

/** The notification being served (one at a time: this is a single thread). */
interface Current {
  call: SourceCall;
  task: Task;
  listener: number;
  /** Its arguments, decoded once (the path calls' resolved in the caller's world). */
  decoded?: DecodedArgs;
  /** Its path arguments resolved in the caller's world (released after the answer). */
  check?: PathCheck;
  /** What settle() chose: this source runs the call itself. */
  emulate?: "open" | "path";
  /** A post hook wants the result (settle() was told). */
  wantsPost?: boolean;
  /** An examined exec: what it was decided on, recorded as pending if it is let run. */
  execCheck?: ExecCheck;
}

/** Seccomp listeners as an EventSource. */
export class SeccompSource implements EventSource {
  readonly capabilities: SourceCapabilities = SECCOMP_CAPABILITIES;
  /** eventfd that wakes the loop so the thread's messages get handled. */
  readonly wakeFd: number;
  readonly failClosedFds: readonly number[] = [];
  readonly closesSessions = true;
  readonly #emulateOpens: boolean;
  readonly #holderFd: number | undefined;
  /** session → when its latest id was told to the holder. */
  readonly #reported = new Map<number, number>();
  readonly #epoll: number;
  readonly #notif = new Uint8Array(NOTIF.size);
  readonly #notifView = new DataView(this.#notif.buffer);
  readonly #args = new BigUint64Array(6);
  readonly #resp = new Uint8Array(RESP.size);
  readonly #respView = new DataView(this.#resp.buffer);
  readonly #idBuf = new BigUint64Array(1);
  readonly #events = new Uint8Array(EPOLL_EVENT.size * 64);
  readonly #eventsView = new DataView(this.#events.buffer);
  readonly #wakeBuf = new Uint8Array(8);
  readonly #memory = new TargetMemory();
  readonly #guard: TamperGuard;
  readonly #listeners = new Map<number, number>();
  readonly #procs = new Map<number, Proc>();
  readonly #tasks = new Map<number, Task>();
  /** Processes the WSS asked to kill while a call of theirs was being served. */
  readonly #killed = new Set<number>();
  #emulator: Emulator | undefined;
  #current: Current | undefined;
  #handler: SourceHandler | undefined;

  constructor(options: SeccompSourceOptions = {}) {
    this.#emulateOpens = options.emulateOpens ?? true;
    this.#holderFd = options.holderFd;
    this.#guard = new TamperGuard(
      Deno.pid,
      options.holderPid === undefined ? [] : [options.holderPid],
      (caller, target) => this.#inTree(caller, target),
    );
    this.#epoll = libc.symbols.epoll_create1(EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw new Error(`Cannot create an epoll instance: errno ${errno()}`);
    this.wakeFd = libc.symbols.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (this.wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno()}`);
    this.#watch(this.wakeFd, KIND_WAKE, 0);
  }

  /**
   * The filter is compiled from this same interest at launch (source.ts, compileNotifySet) and installed by the
   * launcher before the command's first instruction; a seccomp filter cannot be changed afterwards, so nothing to
   * install here.
   */
  setInterest(_interest: Interest): void {}

  /** Serves a new wrapped tree's listener; closed when the tree is gone (detach). */
  attach(session: number, listener: number): Partial<SupervisorSummary> {
    // Linux 6.6+: wake this thread on the caller's CPU, halving the round trip.
    // The flags are the ioctl's argument itself, not a pointer to them.
    const syncWakeUp =
      libc.symbols.ioctl_value(listener, SECCOMP_IOCTL.NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) === 0;
    this.#listeners.set(session, listener);
    this.#watch(listener, KIND_LISTENER, session);
    return { syncWakeUp };
  }

  detach(session: number): void {
    const listener = this.#listeners.get(session);
    if (listener === undefined) return;
    this.#unwatch(listener);
    libc.symbols.close(listener);
    this.#listeners.delete(session);
    this.#reported.delete(session);
  }

  /** Tells the holder a notification id of the session (ids are sequential per filter), every HOLDER_REPORT_MS. */
  #reportId(session: number, id: bigint): void {
    if (this.#holderFd === undefined) return;
    const now = performance.now();
    const last = this.#reported.get(session);
    if (last !== undefined && now - last < HOLDER_REPORT_MS) return;
    this.#reported.set(session, now);
    const text = new TextEncoder().encode(`at ${session} ${id}`);
    libc.symbols.write(this.#holderFd, text, BigInt(text.length));
  }

  #watch(fd: number, kind: number, id: number): void {
    const ev = new Uint8Array(EPOLL_EVENT.size);
    const v = new DataView(ev.buffer);
    v.setUint32(EPOLL_EVENT.events, EPOLLIN, true);
    v.setUint32(EPOLL_EVENT.dataLo, id, true);
    v.setUint32(EPOLL_EVENT.dataHi, kind, true);
    if (libc.symbols.epoll_ctl(this.#epoll, EPOLL_CTL_ADD, fd, ev) < 0) {
      throw new Error(`Cannot watch fd ${fd}: errno ${errno()}`);
    }
  }

  #unwatch(fd: number): void {
    libc.symbols.epoll_ctl(this.#epoll, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT.size));
  }

  poll(timeoutMs: number, handler: SourceHandler): PollResult {
    this.#handler = handler;
    const n = libc.symbols.epoll_wait(this.#epoll, this.#events, 64, timeoutMs);
    if (n < 0) {
      if (errno() === E.EINTR) return { served: 0, woken: false };
      throw new Error(`epoll_wait failed: errno ${errno()}`);
    }
    let woken = false;
    for (let i = 0; i < n; i++) {
      const at = i * EPOLL_EVENT.size;
      const mask = this.#eventsView.getUint32(at + EPOLL_EVENT.events, true);
      const id = this.#eventsView.getUint32(at + EPOLL_EVENT.dataLo, true);
      const kind = this.#eventsView.getUint32(at + EPOLL_EVENT.dataHi, true);
      if (kind === KIND_WAKE) {
        libc.symbols.read(this.wakeFd, this.#wakeBuf, 8n);
        woken = true;
      } else if (kind === KIND_LISTENER) {
        const listener = this.#listeners.get(id);
        if (listener === undefined) continue;
        // No task uses the filter any more (EPOLLHUP); its exits may still be queued.
        if (mask & EPOLLIN) this.#receive(id, listener, handler);
        else if (mask & EPOLLHUP) handler.lifecycle({ kind: "closed", session: id });
      } else {
        handler.lifecycle({ kind: "exit", pid: id });
        this.forget(id);
      }
    }
    return { served: n, woken };
  }

  /** One notification: its task, then the call to the WSS. A bug here fails the call (closed) and is reported. */
  #receive(session: number, listener: number, handler: SourceHandler): void {
    this.#notif.fill(0); // NOTIF_RECV wants a zeroed struct
    if (libc.symbols.ioctl(listener, SECCOMP_IOCTL.NOTIF_RECV, this.#notif) < 0) {
      const e = errno();
      if (e === E.ENOENT || e === E.EINTR) return; // the caller died or was signalled before we read
      throw new Error(`SECCOMP_IOCTL_NOTIF_RECV failed: errno ${e}`);
    }
    const v = this.#notifView;
    const id = v.getBigUint64(NOTIF.id, true);
    this.#reportId(session, id);
    let answered = false;
    try {
      const tid = v.getUint32(NOTIF.pid, true);
      const nr = v.getInt32(NOTIF.nr, true);
      const arch = v.getUint32(NOTIF.arch, true);
      for (let i = 0; i < 6; i++) this.#args[i] = v.getBigUint64(NOTIF.args + i * 8, true);
      const task = this.#task(session, listener, tid, id, handler);
      if (!task) return; // gone before we could learn who it was, or killed for its exec: failed below
      const abi: SyscallAbi = arch !== AUDIT_ARCH_X86_64 ? "i386" : nr & X32_SYSCALL_BIT ? "x32" : "x86_64";
      if (abi === "x86_64" && CRED_FAMILY.has(nr)) this.#forgetCreds(task.proc.tgid);
      const call: SourceCall = {
        id,
        pid: task.proc.tgid,
        tid,
        ppid: task.creds.ppid,
        abi,
        nr: abi === "x32" ? nr & ~X32_SYSCALL_BIT : nr,
        args: this.#args,
        phase: "pre",
        waits: true,
        time: Date.now(),
      };
      this.#current = { call, task, listener };
      handler.call(call);
      answered = true;
    } catch (e) {
      handler.fault(0, `internal error while serving a call (failed closed): ${(e as Error).stack ?? e}`);
    } finally {
      if (!answered && this.#current?.call.id !== id) this.#send(listener, id, E.EPERM, 0);
      const check = this.#current?.check;
      if (check) { for (const r of check.resolved) CallerWorld.release(r); }
      this.#current = undefined;
    }
  }

  /**
   * The task behind a notification, learning about new threads and processes (reported to the WSS as a fork) and
   * new programs after an exec (an exec).
   */
  #task(session: number, listener: number, tid: number, id: bigint, handler: SourceHandler): Task | undefined {
    let known = this.#tasks.get(tid);
    if (known?.proc.execs.size) {
      // A process killed for an exec that ran another file than the one checked gets no call answered.
      const after = this.#refreshProgram(known.proc, tid, handler);
      if (after === "killed") return undefined;
      if (after === "exec") known = undefined; // a new program: its credentials are read again
    }
    if (known) return known;
    const creds = readTaskStatus(tid);
    if (!creds) return undefined;
    let proc = this.#procs.get(creds.tgid);
    // After an exec from a non-leader thread the caller has a tid we never saw.
    if (proc?.execs.size && this.#refreshProgram(proc, tid, handler) === "killed") return undefined;
    if (!proc) {
      const pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(creds.tgid), 0n, 0n, 0n, 0n, 0n));
      // Checked after pidfd_open: the pid cannot have been recycled under us.
      if (pidfd < 0 || !this.#valid(listener, id)) {
        if (pidfd >= 0) libc.symbols.close(pidfd);
        return undefined;
      }
      const { program, key: exeKey } = readImage(creds.tgid, creds);
      proc = {
        session,
        tgid: creds.tgid,
        pidfd,
        program,
        exeKey,
        execs: new Map(),
      };
      this.#procs.set(creds.tgid, proc);
      this.#watch(pidfd, KIND_PIDFD, creds.tgid);
      handler.lifecycle({ kind: "fork", pid: creds.tgid, ppid: creds.ppid, session, program: proc.program });
    }
    const task = { proc, creds };
    this.#tasks.set(tid, task);
    return task;
  }

  /**
   * While an exec is pending, at each call of the process (thread `tid`): has the exec run? If so it is reported, and
   * re-decided on the file that runs unless that is the file it was decided on ("killed": the WSS had the process
   * killed for it). If not, the call is the old program's: a sibling's while the exec is in flight (kept pending), or
   * the exec's own thread back from a failed exec (no longer pending).
   */
  #refreshProgram(proc: Proc, tid: number, handler: SourceHandler): "same" | "exec" | "killed" {
    const status = readTaskStatus(proc.tgid);
    if (!status) return "same";
    const { program, key: ran } = readImage(proc.tgid, status);
    if (ran === proc.exeKey && program.exe === proc.program.exe && program.argv0 === proc.program.argv0) {
      proc.execs.delete(tid);
      return "same";
    }
    const checks = [...proc.execs.values()].filter((c): c is ExecCheck => c !== null);
    proc.execs.clear();
    this.#forgetCreds(proc.tgid);
    // Which thread's exec ran is not known (de_thread gives it the leader's tid): it is the file decided on only if
    // some examined exec was decided on that very file; an unresolved path ("") never is.
    const checked = checks.find((c) => c.ident !== "" && c.ident === ran) ?? checks[0];
    const raced = !!checked && (ran === "" || ran !== checked.ident);
    proc.program = program;
    proc.exeKey = ran;
    this.#killed.delete(proc.tgid);
    handler.lifecycle({
      kind: "exec",
      pid: proc.tgid,
      program,
      ...(raced && checked ? { decidedOn: { ident: ran, path: checked.path, nr: checked.nr } } : {}),
    });
    return this.#killed.has(proc.tgid) ? "killed" : "exec";
  }

  /**
   * The call's arguments from the caller's memory (`memory`), its path arguments resolved in the caller's world.
   * The open family and open_by_handle_at are always read in full: this source runs them itself.
   */
  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs {
    const cur = this.#serving(call);
    if (cur.decoded) return { ...cur.decoded };
    const pathCall = OPEN_FAMILY.has(call.nr) || call.nr === OPEN_BY_HANDLE;
    if (needs === "registers" && !pathCall) return decodeArgs(name, this.#args, NO_MEMORY);
    cur.decoded = this.#decode(cur, name);
    return { ...cur.decoded };
  }

  /**
   * Whether an open must be resolved for the guard even when nothing examines it: it could reach the supervisor's
   * procfs entries by a name the registers do not show (another procfs mount, a bind mount, a symlink). The kernel
   * itself keeps a caller out of them unless it may ptrace the supervisor (mem, fd/, environ…: CAP_SYS_PTRACE, the
   * supervisor being non-dumpable) or may write files of root's (its entries belong to root then: oom_score_adj…):
   * only a caller with fsuid 0 or one of those capabilities, in any user namespace, pays for the check.
   */
  guardsObject(call: SourceCall): boolean {
    if (!OPEN_FAMILY.has(call.nr)) return false;
    const creds = this.#current?.call === call ? this.#current.task.creds : undefined;
    return !creds || creds.fsuid === 0 || creds.euid === 0 || (creds.capEff & PROC_REACHING_CAPS) !== 0n;
  }

  /**
   * The guard: calls that reach this process by their registers (before anything is read), and opens of its /proc
   * entries by the canonical path the call acts on (once read: /proc/self/../PID/mem, a relative open from /proc, a
   * symlink are all the same entry).
   */
  refusal(call: SourceCall, name: string, decoded?: DecodedArgs): Refusal | undefined {
    if (!decoded) {
      if (!GUARDED_SYSCALLS.has(call.nr)) return undefined; // no closure built: this runs on every call
      const read = (addr: bigint, len: number) => this.#memory.readBytes(call.tid, addr, len);
      return this.#guard.check(call.nr, this.#args, call.pid, call.tid, read);
    }
    // Any path resolved through a magic link of the supervisor's /proc (fd/N, cwd, root…): refused, whatever the call.
    for (const r of this.#serving(call).check?.resolved ?? []) {
      if (!r?.via) continue;
      const passed = this.#guard.checkPassages(r.via, decoded.rawPath ?? decoded.path ?? "a path", call.tid);
      if (passed) return passed;
    }
    if (!OPEN_FAMILY.has(call.nr) || decoded.path === undefined) return undefined;
    const readOnly = () => this.#opensReadOnly(call.tid, name);
    const named = this.#guard.checkPath(decoded.path, readOnly, call.pid);
    if (named) return named;
    // The object itself: the same entries reached through another procfs mount or a bind mount of /proc/PID.
    const r = this.#serving(call).check?.resolved[0];
    if (!r || failed(r)) return undefined;
    return this.#guard.checkObject(r.fd >= 0 ? r.fd : r.parent, r.path, call.tid, readOnly);
  }

  /**
   * Refuses what cannot be carried out race-free here, and says which calls this source runs itself: the open family
   * (through ADDFD, on the object checked) and, when examined, the path calls (unlink, rename, chmod…).
   */
  settle(call: SourceCall, event: SyscallEvent, verdict: Verdict, judged: Judged): Settled {
    const cur = this.#serving(call);
    const examined = judged.examined;
    cur.wantsPost = judged.wantsPost;
    const name = event.syscall;
    const pathCall = OPEN_FAMILY.has(call.nr) || call.nr === OPEN_BY_HANDLE;
    const check = cur.check;
    // Unreadable now is no proof of unreadable when the kernel reads: never let it run unchecked.
    if (cur.decoded?.fault && (examined || pathCall)) {
      return { verdict: { action: "deny", errno: E.EFAULT }, reason: `argument unreadable (${cur.decoded.fault})` };
    }
    if (verdict.action !== "allow") return { verdict };
    if (check?.reason && (examined || (pathCall && this.#emulateOpens))) {
      // The caller's world could not be entered: deciding or acting in ours would be deciding on another file.
      return { verdict: { action: "deny", errno: E.EPERM }, reason: check.reason };
    }
    if (examined && REFUSED_WHEN_PATH_RULED.has(name)) {
      // Not run here exactly, so a thread could change the path after the check: refused while examined.
      return {
        verdict: { action: "deny", errno: E.EPERM },
        reason:
          `${name} cannot be checked race-free on the seccomp source: refused while a rule or wrapper examines it`,
      };
    }
    if (this.#emulateOpens && check && pathCall) {
      // ADDFD cannot install an O_PATH file (the kernel's fget refuses them): such opens run in the kernel, unless
      // their failure is already known (the same lookup, as the caller). An O_PATH fd reads and writes nothing;
      // whatever is opened through it later is checked on its own object.
      const oPath = (this.#openArgs(call.tid, name)?.flags ?? 0) & O_PATH;
      const unresolved = check.resolved[0];
      if (!oPath || (unresolved && failed(unresolved))) {
        cur.emulate = "open";
        return { verdict, emulated: true };
      }
    }
    // utimensat with a NULL path is futimens on its fd: nothing by path to check, the kernel runs it.
    const byFd = name === "utimensat" && this.#args[1] === 0n;
    if (this.#emulateOpens && check && examined && PATH_CALLS.has(name) && !byFd) {
      cur.emulate = "path";
      return { verdict, emulated: true };
    }
    this.#noteExec(cur, examined, event);
    return { verdict };
  }

  /**
   * An examined, allowed exec: the file it was decided on, checked against what runs after it. A path that did not
   * resolve at the check ("" ident) may name a file by the time the kernel looks (a thread renames or rewrites it):
   * whatever then runs is decided again.
   */
  #noteExec(cur: Current, examined: boolean, event: SyscallEvent): void {
    if (EXEC_FAMILY.has(cur.call.nr) && cur.call.abi === "x86_64" && examined) {
      cur.execCheck = { ident: event.decoded.ident ?? "", path: event.decoded.path ?? "", nr: cur.call.nr };
    }
  }

  stillValid(call: SourceCall): boolean {
    return this.#valid(this.#serving(call).listener, call.id);
  }

  answer(call: SourceCall, verdict: Verdict, _watch?: WatchChange): void {
    const cur = this.#current;
    // The post half of an emulated open (handed to the WSS from #emulateOpen): the pre notification completes here.
    if (cur?.call !== call) return this.#answerPost(call, verdict);
    const { listener, check } = cur;
    if (verdict.action === "allow") {
      // The exec runs from here on: pending until its thread is back from it or the program has changed.
      if (EXEC_FAMILY.has(call.nr) && call.abi === "x86_64") cur.task.proc.execs.set(call.tid, cur.execCheck ?? null);
      if (cur.emulate === "open") return this.#emulateOpen(cur, syscallName(call.nr), check!);
      if (cur.emulate === "path") return this.#emulatePathCall(cur, syscallName(call.nr), check!);
      return this.#send(listener, call.id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    }
    if (verdict.action === "kill") {
      // seccomp has no "kill" answer: signal the process, then fail the call.
      this.kill(call.pid);
      return this.#send(listener, call.id, E.EPERM, 0);
    }
    // seccomp cannot rewrite arguments (the chain refuses such verdicts here): fail closed.
    this.#send(listener, call.id, verdict.action === "deny" ? verdict.errno : E.EPERM, 0);
  }

  /**
   * Whether `target` (a pid or tid) is in `caller`'s tree: it, or an ancestor of it (its parent, that one's parent…),
   * is a process of the caller's session we know and that is still alive (its pidfd: the pid then still names it, as
   * a pid is not reused before its process is reaped). A process outside never has one inside among its ancestors (a
   * tree's children inherit its filter); a tree process reparented outside (its parent gone) and never seen by this
   * source is taken for outside: refused, fail-closed. What stays open: between this answer and the kernel's lookup,
   * the tree could end and reap the target and an outside process take its number — the pid allocator would have to
   * come round to exactly that pid in that moment (docs/threat-model.md).
   */
  #inTree(caller: number, target: number): boolean {
    const session = this.#procs.get(caller)?.session;
    if (session === undefined) return false;
    let pid = readTaskStatus(target)?.tgid ?? 0;
    for (let hops = 0; pid > 1 && hops < 1024; hops++) {
      const proc = this.#procs.get(pid);
      if (proc?.session === session) {
        return libc.symbols.syscall(SYS.pidfd_send_signal, BigInt(proc.pidfd), 0n, 0n, 0n, 0n, 0n) === 0n;
      }
      pid = readTaskStatus(pid)?.ppid ?? 0;
    }
    return false;
  }

  /** SIGKILL through the pidfd (never a recycled pid). */
  kill(pid: number): void {
    const proc = this.#procs.get(pid);
    if (!proc) return;
    this.#killed.add(pid);
    libc.symbols.syscall(SYS.pidfd_send_signal, BigInt(proc.pidfd), SIGKILL, 0n, 0n, 0n, 0n);
  }

  forget(pid: number): void {
    const proc = this.#procs.get(pid);
    if (!proc) return;
    this.#procs.delete(pid);
    this.#killed.delete(pid);
    this.#forgetCreds(pid);
    this.#unwatch(proc.pidfd);
    libc.symbols.close(proc.pidfd);
  }

  /** Closes what the source holds; trees still running lose their supervisor (fail closed). */
  close(): void {
    for (const pid of [...this.#procs.keys()]) this.forget(pid);
    for (const session of [...this.#listeners.keys()]) this.detach(session);
    libc.symbols.close(this.wakeFd);
    libc.symbols.close(this.#epoll);
  }

  #serving(call: SourceCall): Current {
    const cur = this.#current;
    if (!cur || cur.call.id !== call.id) throw new Error(`Notification ${call.id} is not the one being served`);
    return cur;
  }

  /** The call's arguments from the caller's memory, its path arguments resolved in the caller's world. */
  #decode(cur: Current, name: string): DecodedArgs {
    const { call, task } = cur;
    const tid = call.tid;
    const decoded = decodeArgs(name, this.#args, memoryReader(tid, this.#memory));
    const handle = call.nr === OPEN_BY_HANDLE;
    if (call.nr === MMAP) return this.#mappedFile(tid, decoded);
    if (decoded.fault || !(PATH_ARGS[name] || handle)) return decoded;
    this.#emulator ??= new Emulator();
    const caller = { tgid: task.proc.tgid, tid, creds: task.creds };
    let check: PathCheck;
    if (handle) {
      // struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[]; } (MAX_HANDLE_SZ 128)
      const head = this.#memory.readBytes(tid, this.#args[1], 8);
      const size = head ? new DataView(head.buffer).getUint32(0, true) : 0;
      const whole = head && size <= 128 ? this.#memory.readBytes(tid, this.#args[1], 8 + size) : undefined;
      if (!whole) {
        decoded.fault = "arg1";
        return decoded;
      }
      check = this.#emulator.checkHandle(caller, this.#args, whole);
    } else {
      const open = OPEN_FAMILY.has(call.nr) ? this.#openArgs(tid, name) : undefined;
      if (open === null) {
        decoded.fault = "arg2";
        return decoded;
      }
      check = this.#emulator.check(caller, name, this.#args, [decoded.path, decoded.path2], open);
    }
    cur.check = check;
    check.resolved.forEach((r, nth) => {
      if (r && failed(r)) {
        if (r.path === undefined) return;
        r = { fd: -1, parent: -1, name: "", path: r.path }; // only its name: nothing to act on
      }
      if (!r) return;
      if (nth === 0) {
        if (decoded.path !== undefined) decoded.rawPath = decoded.path;
        decoded.path = r.path;
        if (r.ident) decoded.ident = r.ident;
      } else {
        if (decoded.path2 !== undefined) decoded.rawPath2 = decoded.path2;
        decoded.path2 = r.path;
        if (r.ident) decoded.ident2 = r.ident;
      }
    });
    return decoded;
  }

  /**
   * An executable file mapping's file (path and dev:ino), through the caller thread's fd table in procfs: an exec rule
   * decides it as an exec of that file (host/policy/rule_decider.ts). Another thread may put another file at that
   * number before the kernel maps it (docs/rules.md: the limits of exec rules).
   */
  #mappedFile(tid: number, decoded: DecodedArgs): DecodedArgs {
    const fd = Number(BigInt.asIntN(32, this.#args[4]));
    if ((this.#args[2] & PROT_EXEC) === 0n || (this.#args[3] & MAP_ANONYMOUS) !== 0n || fd < 0) return decoded;
    const at = `/proc/${tid}/fd/${fd}`;
    try {
      const info = Deno.statSync(at);
      decoded.ident = `${info.dev}:${info.ino}`;
      decoded.path = Deno.readLinkSync(at);
    } catch {
      // No such fd: the kernel fails the call (EBADF).
    }
    return decoded;
  }

  /** An open's flags, mode and resolve flags (openat2's from its struct); null if they cannot be read. */
  #openArgs(tid: number, name: string): OpenArgs | null {
    const a = this.#args;
    const at = name === "openat" || name === "openat2";
    let flags = Number((at ? a[2] : a[1]) & 0xffffffffn);
    let mode = Number((at ? a[3] : a[2]) & 0o7777n);
    let resolve = 0n;
    if (name === "creat") {
      flags = 0o1101; // O_CREAT|O_WRONLY|O_TRUNC
      mode = Number(a[1] & 0o7777n);
    } else if (name === "openat2") {
      const how = this.#memory.readBytes(tid, a[2], 24);
      if (!how) return null;
      const hv = new DataView(how.buffer);
      flags = Number(hv.getBigUint64(0, true) & 0xffffffffn);
      mode = Number(hv.getBigUint64(8, true) & 0o7777n);
      resolve = hv.getBigUint64(16, true);
    } else if (name === "open_by_handle_at") {
      flags = Number(a[2] & 0xffffffffn);
      mode = 0;
    }
    return { flags, mode: flags & O_CREAT || (flags & 0o20200000) === 0o20200000 ? mode : 0, resolve };
  }

  /** The open being served asks only to read (O_RDONLY, no O_CREAT or O_TRUNC); unreadable flags count as not. */
  #opensReadOnly(tid: number, name: string): boolean {
    const flags = this.#openArgs(tid, name)?.flags;
    return flags !== undefined && (flags & 0o1103) === 0; // O_ACCMODE | O_CREAT | O_TRUNC
  }

  /**
   * Runs an allowed open on the checked object and hands its result to the WSS as a post call (post hooks, the
   * trace): with post hooks the fd is installed but the call not yet completed, so a post kill lands first.
   * ADDFD cannot install an O_PATH file (the kernel's fget refuses them): such opens run in the kernel, unless their
   * failure is already known (the same lookup, as the caller).
   */
  #emulateOpen(cur: Current, name: string, check: PathCheck): void {
    const { call, task, listener } = cur;
    const open = this.#openArgs(call.tid, name);
    if (!open || !this.#valid(listener, call.id)) return this.#send(listener, call.id, E.EFAULT, 0);
    const resolved = check.resolved[0];
    const handler = this.#handler!;
    // Nobody wants the result before the caller goes on: install and complete at once (SECCOMP_ADDFD_FLAG_SEND).
    const send = !cur.wantsPost;
    const caller = { tgid: task.proc.tgid, tid: call.tid, creds: task.creds };
    const result = !resolved
      ? { errno: E.EFAULT }
      : failed(resolved)
      ? { errno: resolved.errno }
      : this.#emulator!.open(caller, resolved as Resolved, open, { id: call.id, listener, send });
    if ("errno" in result && result.errno === E.ENOENT && !this.#valid(listener, call.id)) return; // ADDFD: gone
    if ("fault" in result && result.fault) handler.fault(call.pid, result.fault); // idwrap's own: reported
    const ret = "fd" in result ? BigInt(result.fd) : BigInt(-result.errno);
    const completed = send && "fd" in result;
    this.#post = { call, listener, result, completed };
    handler.call({ ...call, phase: "post", waits: !completed, ret, emulated: true, args: call.args });
    // The WSS answered the post call (#answerPost), unless it had no verdict to give (observed only).
    if (this.#post) this.#finishPost(E.EPERM);
  }

  /** The open whose post call is with the WSS. */
  #post:
    | { call: SourceCall; listener: number; result: { fd: number } | { errno: number }; completed: boolean }
    | undefined;

  #answerPost(call: SourceCall, verdict: Verdict): void {
    const post = this.#post;
    if (!post || post.call.id !== call.id) throw new Error(`Notification ${call.id} is not being served`);
    if (verdict.action === "kill") {
      this.kill(call.pid);
      return this.#finishPost(E.EPERM);
    }
    // A deny here is the WSS failing the call closed (an error while serving its result, a record it could not
    // keep): the caller gets the error, not the fd (as the supervisor before the WSS did).
    if (verdict.action === "deny") return this.#finishPost(verdict.errno);
    this.#finishPost();
  }

  /** Completes an emulated open: its fd or errno, or `err` (a kill); nothing if ADDFD already completed it. */
  #finishPost(err?: number): void {
    const post = this.#post!;
    this.#post = undefined;
    if (post.completed) return;
    if (err !== undefined) return this.#send(post.listener, post.call.id, err, 0);
    if ("errno" in post.result) return this.#send(post.listener, post.call.id, post.result.errno, 0);
    this.#send(post.listener, post.call.id, 0, 0, BigInt(post.result.fd));
  }

  /** Runs a path call (unlink, rename, chmod, …) on the checked objects and answers with its result. */
  #emulatePathCall(cur: Current, name: string, check: PathCheck): void {
    const { call, task, listener } = cur;
    const caller = { tgid: task.proc.tgid, tid: call.tid, creds: task.creds };
    const target = name === "symlink" || name === "symlinkat" ? cur.decoded?.path : undefined;
    let times: Uint8Array | undefined;
    if (name === "utimensat" && this.#args[2] !== 0n) {
      // Read once, here, and checked to be the caller's: the call uses this copy.
      times = this.#memory.readBytes(call.tid, this.#args[2], 32);
      if (!times || !this.#valid(listener, call.id)) return this.#send(listener, call.id, E.EFAULT, 0);
    }
    const result = this.#emulator!.run(caller, name, this.#args, check, target, times);
    if ("errno" in result) this.#send(listener, call.id, result.errno, 0);
    else this.#send(listener, call.id, 0, 0, BigInt(result.fd));
  }

  #send(listener: number, id: bigint, err: number, flags: number, val = 0n): void {
    const v = this.#respView;
    v.setBigUint64(RESP.id, id, true);
    v.setBigInt64(RESP.val, val, true);
    v.setInt32(RESP.error, -err, true);
    v.setUint32(RESP.flags, flags, true);
    if (libc.symbols.ioctl(listener, SECCOMP_IOCTL.NOTIF_SEND, this.#resp) < 0) {
      const e = errno();
      // ENOENT: the caller died or took a signal meanwhile; not an error (user-trap.c).
      if (e !== E.ENOENT) throw new Error(`SECCOMP_IOCTL_NOTIF_SEND failed: errno ${e}`);
    }
  }

  #valid(listener: number, id: bigint): boolean {
    this.#idBuf[0] = id;
    return libc.symbols.ioctl(listener, SECCOMP_IOCTL.NOTIF_ID_VALID, new Uint8Array(this.#idBuf.buffer)) === 0;
  }

  #forgetCreds(tgid: number): void {
    for (const [tid, task] of this.#tasks) if (task.proc.tgid === tgid) this.#tasks.delete(tid);
  }
}

/** A memory that reads nothing ("not read", not "unreadable"): the registers only. */
const NO_MEMORY = { path: () => null, argv: () => null, bytes: () => null };

/** dev:ino of a path, to compare files; "" if it cannot be read. */
function statKey(path: string): string {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return "";
  }
}

/**
 * The program a process runs and its file's dev:ino, read as one: an exec in flight changes /proc/PID/exe and then
 * the memory /proc/PID/cmdline is read from, so a read between the two steps mixes the old program and the new; it is
 * read again until the file is the same before and after.
 */
function readImage(pid: number, status: TaskStatus): { program: ProgramIdentity; key: string } {
  const exe = `/proc/${pid}/exe`;
  let key = statKey(exe);
  for (let i = 0;; i++) {
    const program = readProgram(pid, status);
    const after = statKey(exe);
    if (after === key || i === 8) return { program, key: after };
    key = after;
  }
}
