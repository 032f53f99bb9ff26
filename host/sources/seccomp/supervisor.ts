/**
 * The seccomp user-notify loop (seccomp_unotify(2); the kernel's
 * samples/seccomp/user-trap.c is the canonical shape). One supervisor per
 * listener, run synchronously on its own thread: receive a notification,
 * decode what the decider and sink need, check the notification is still
 * valid, answer, then report.
 *
 * @module
 */
import { type Decider, describeVerdict, type EventSink } from "../../decider.ts";
import type { DecodedArgs, LifecycleEvent, ProgramIdentity, SyscallAbi, SyscallEvent, Verdict } from "../../events.ts";
import { ALLOW } from "../../events.ts";
import { errnoName } from "../../errno.ts";
import { i386SyscallName, OPEN_SYSCALLS, resolveSyscalls, syscallName, syscallNumber } from "../../syscalls/mod.ts";
import { decodeArgs, memoryReader } from "../../wss/decode.ts";
import { Emulator, type OpenArgs, PATH_CALLS, type PathCheck, REFUSED_WHEN_PATH_RULED } from "./emulate.ts";
import { PATH_ARGS } from "./paths.ts";
import { CallerWorld, failed, type Resolved } from "./world.ts";
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
import { readProgram, readTaskStatus, type TaskStatus } from "../../wss/procfs.ts";
import type { WrapperSpec } from "../../policy/policy.ts";
import { Bindings } from "../../wss/bindings.ts";
import { type Refusal, TAMPER_ALERT } from "../../wss/refusal.ts";
import { GUARDED_SYSCALLS, TamperGuard } from "../../wss/tamper.ts";

const ENOENT = 2, EINTR = 4, EPERM = 1, EFAULT = 14, ENOSYS = 38;
const SIGKILL = 9n;
// epoll data (u64) as two u32 halves, read as numbers (no BigInt on the hot path):
// the high half says what the fd is, the low half which one (a tgid, a session id).
const KIND_PIDFD = 0, KIND_LISTENER = 1, KIND_WAKE = 2;

/** How a supervisor runs. */
export interface SupervisorOptions {
  decider: Decider;
  sink: EventSink;
  /** Run the open family in the supervisor (TOCTOU-free paths, post results). @default true */
  emulateOpens?: boolean;
  /** Calls only watched (./interest.ts answerFirstCalls): answered before they are examined. */
  answerFirst?: ReadonlySet<number>;
  /** The enforcement's wrappers, in the decider's order: activation binds them to processes. */
  wrappers?: readonly WrapperSpec[];
}

export type { ProcessEntry, SupervisorSummary } from "../enforce.ts";
import type { ProcessEntry, SupervisorSummary } from "../enforce.ts";

/** One wrapped tree: a listener and what happened on it. */
export interface Session {
  id: number;
  listener: number;
  summary: SupervisorSummary;
  /** The filter has no users any more (EPOLLHUP); ends when its processes are gone. */
  closed: boolean;
  closedAt: number;
}

interface Proc {
  session: Session;
  tgid: number;
  ppid: number;
  pidfd: number;
  program: ProgramIdentity;
  sameRoot: boolean;
  execPending: boolean;
  /** The file an examined, allowed exec was decided on: checked against /proc/PID/exe after the exec. */
  execChecked?: { ident: string; path: string; nr: number };
}

interface Task {
  proc: Proc;
  creds: TaskStatus;
}

const OPEN_FAMILY = resolveSyscalls(OPEN_SYSCALLS);
const EXEC_FAMILY = new Set(["execve", "execveat"].map((n) => syscallNumber(n)!));
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

/** Answers every notification of one listener until the wrapped tree is gone. */
export class Supervisor {
  #decider: Decider;
  readonly #sink: EventSink;
  readonly #emulateOpens: boolean;
  #answerFirst: ReadonlySet<number>;
  readonly #epoll: number;
  /** eventfd that wakes the loop so the thread's messages get handled. */
  readonly wakeFd: number;
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
  readonly #procs = new Map<number, Proc>();
  readonly #tasks = new Map<number, Task>();
  readonly #sessions = new Map<number, Session>();
  readonly #rootStat = statKey("/");
  readonly #guard = new TamperGuard();
  readonly #bindings: Bindings;
  /** The listener of the notification being served (one at a time: this is a single thread). */
  #fd = -1;
  #current!: Session;
  #emulator: Emulator | undefined;
  /** The path arguments of the call being served, resolved in the caller's world (released after the answer). */
  #check: PathCheck | undefined;
  #stopped = false;
  /** Sessions closed but not yet ended. */
  #closing = 0;
  /** The notification being served and not yet answered. */
  #pending: bigint | undefined;

  constructor(options: SupervisorOptions) {
    this.#decider = options.decider;
    this.#sink = options.sink;
    this.#emulateOpens = options.emulateOpens ?? true;
    this.#answerFirst = options.answerFirst ?? new Set();
    this.#bindings = new Bindings(options.wrappers ?? []);
    this.#epoll = libc.symbols.epoll_create1(EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw new Error(`Cannot create an epoll instance: errno ${errno()}`);
    this.wakeFd = libc.symbols.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (this.wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno()}`);
    this.#watch(this.wakeFd, KIND_WAKE, 0);
  }

  /**
   * Serves a new wrapped tree's listener; the supervisor closes it when the tree is gone.
   *
   * @returns the session, whose summary fills as calls are served
   */
  addSession(id: number, listener: number): Session {
    const summary: SupervisorSummary = { notifications: 0, denied: 0, killed: 0, emulated: 0, syncWakeUp: false };
    // Linux 6.6+: wake this thread on the caller's CPU, halving the round trip.
    // The flags are the ioctl's argument itself, not a pointer to them.
    summary.syncWakeUp =
      libc.symbols.ioctl_value(listener, SECCOMP_IOCTL.NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) === 0;
    const session: Session = { id, listener, summary, closed: false, closedAt: 0 };
    this.#sessions.set(id, session);
    this.#watch(listener, KIND_LISTENER, id);
    return session;
  }

  /** Makes the loop return once it is woken (see wakeFd). */
  stop(): void {
    this.#stopped = true;
  }

  /** Replaces the decider (a policy reload); calls already answered are not revisited. */
  setDecider(
    decider: Decider,
    answerFirst: ReadonlySet<number> = new Set(),
    wrappers: readonly WrapperSpec[] = [],
  ): void {
    this.#decider = decider;
    this.#answerFirst = answerFirst;
    this.#bindings.setSpecs(wrappers);
    for (const p of this.#procs.values()) {
      this.#decider.bind(p.tgid, this.#bindings.bind(p.tgid, p.ppid, p.program));
    }
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

  /**
   * Serves notifications: until every session has ended (`untilIdle`), or until stop().
   *
   * @param options.idle called when nothing happened for `idleMs` ("idle"), when woken ("woken"),
   *   and every `idleMs` while busy ("busy"); it may be async (the thread's messages are handled
   *   while it waits), and should return at once when busy with nothing to do
   * @param options.onSessionEnd called when a session's tree is gone
   */
  async run(options: {
    idle?: (why: "idle" | "woken" | "busy") => Promise<void> | void;
    onSessionEnd?: (session: Session) => void;
    untilIdle?: boolean;
    idleMs?: number;
  } = {}): Promise<void> {
    const idleMs = options.idleMs ?? 100;
    let lastIdle = performance.now();
    while (!this.#stopped && !(options.untilIdle && this.#sessions.size === 0)) {
      const n = libc.symbols.epoll_wait(this.#epoll, this.#events, 64, idleMs);
      if (n < 0) {
        if (errno() === EINTR) continue;
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
          const session = this.#sessions.get(id);
          if (!session) continue;
          if (mask & EPOLLIN) this.#serveGuarded(session);
          else if (mask & EPOLLHUP && !session.closed) {
            // No task uses the filter any more; its exits may still be queued.
            session.closed = true;
            session.closedAt = performance.now();
            this.#closing++;
          }
        } else {
          this.#exited(id);
        }
      }
      if (this.#closing) this.#endSessions(options.onSessionEnd);
      // When idle, woken, and at least every idleMs when busy: flush output, let async work run.
      if (n === 0 || woken || performance.now() - lastIdle > idleMs) {
        this.#sink.flush();
        this.#decider.idle?.();
        const pending = options.idle?.(n === 0 ? "idle" : woken ? "woken" : "busy");
        if (pending) await pending;
        lastIdle = performance.now();
      }
    }
    this.#sink.flush();
  }

  /** Ends closed sessions whose processes are all gone (or that waited a second for them). */
  #endSessions(onEnd?: (session: Session) => void): void {
    for (const session of this.#sessions.values()) {
      if (!session.closed) continue;
      const left = [...this.#procs.values()].filter((p) => p.session === session);
      if (left.length && performance.now() - session.closedAt < 1000) continue;
      for (const p of left) this.#exited(p.tgid); // never seen to exit: not ours to wait for
      libc.symbols.epoll_ctl(this.#epoll, EPOLL_CTL_DEL, session.listener, new Uint8Array(EPOLL_EVENT.size));
      libc.symbols.close(session.listener);
      this.#sessions.delete(session.id);
      this.#closing--;
      onEnd?.(session);
    }
  }

  /** The wrapped processes: the WSS's process table, with the wrappers bound to each. */
  processes(): ProcessEntry[] {
    return [...this.#procs.values()].map((p) => ({
      pid: p.tgid,
      ppid: p.ppid,
      session: p.session.id,
      program: p.program,
      wrappers: this.#decider.bindings?.(p.tgid) ?? [],
    }));
  }

  /** Closes what the supervisor holds; sessions still open lose their supervisor (fail closed). */
  close(): void {
    for (const p of [...this.#procs.keys()]) this.#exited(p);
    for (const s of this.#sessions.values()) libc.symbols.close(s.listener);
    this.#sessions.clear();
    libc.symbols.close(this.wakeFd);
    libc.symbols.close(this.#epoll);
  }

  /** A bug while serving one call fails that call (closed) and is reported; the rest goes on. */
  #serveGuarded(session: Session): void {
    try {
      this.#serveOne(session);
    } catch (e) {
      const id = this.#pending;
      if (id !== undefined) this.#fail(id, EPERM);
      this.#sink.emit({
        kind: "fault",
        source: "seccomp",
        time: Date.now(),
        pid: 0,
        wrapper: "idwrap",
        message: `internal error while serving a call (failed closed): ${(e as Error).stack ?? e}`,
        program: { exe: "", argv0: "", uid: -1, gid: -1 },
      });
    } finally {
      this.#pending = undefined;
      for (const r of this.#check?.resolved ?? []) CallerWorld.release(r);
      this.#check = undefined;
    }
  }

  #serveOne(session: Session): void {
    this.#current = session;
    this.#fd = session.listener;
    this.#notif.fill(0); // NOTIF_RECV wants a zeroed struct
    if (libc.symbols.ioctl(this.#fd, SECCOMP_IOCTL.NOTIF_RECV, this.#notif) < 0) {
      const e = errno();
      if (e === ENOENT || e === EINTR) return; // the caller died or was signalled before we read
      throw new Error(`SECCOMP_IOCTL_NOTIF_RECV failed: errno ${e}`);
    }
    session.summary.notifications++;
    const v = this.#notifView;
    const id = v.getBigUint64(NOTIF.id, true);
    this.#pending = id;
    const tid = v.getUint32(NOTIF.pid, true);
    const nr = v.getInt32(NOTIF.nr, true);
    const arch = v.getUint32(NOTIF.arch, true);
    for (let i = 0; i < 6; i++) this.#args[i] = v.getBigUint64(NOTIF.args + i * 8, true);

    const task = this.#task(tid, id);
    if (!task) return void this.#fail(id, EPERM); // gone before we could learn who it was

    if (arch !== AUDIT_ARCH_X86_64 || nr & X32_SYSCALL_BIT) {
      // int 0x80 or x32: the filter notified it only so we can refuse and say so.
      const abi: SyscallAbi = arch !== AUDIT_ARCH_X86_64 ? "i386" : "x32";
      const name = abi === "i386" ? i386SyscallName(nr) : syscallName(nr & ~X32_SYSCALL_BIT);
      const verdict: Verdict = { action: "deny", errno: ENOSYS };
      this.#emitCall(tid, task, abi, nr, name, {}, verdict, `${abi} system call ABI is not allowed`);
      this.#respond(id, verdict);
      return;
    }

    const name = syscallName(nr);
    if (EXEC_FAMILY.has(nr)) task.proc.execPending = true;
    if (CRED_FAMILY.has(nr)) this.#forgetCreds(task.proc.tgid);
    if (name === "io_uring_setup") {
      // io_uring runs file and network operations that no seccomp filter sees.
      const verdict: Verdict = { action: "deny", errno: EPERM };
      this.#emitCall(tid, task, "x86_64", nr, name, {}, verdict, "io_uring bypasses system call interception");
      this.#respond(id, verdict);
      return;
    }

    // Only the few calls that can reach another process (no closure built for the rest: this runs on every call).
    if (GUARDED_SYSCALLS.has(nr)) {
      const read = (addr: bigint, len: number) => this.#memory.readBytes(tid, addr, len);
      const tamper = this.#guard.check(nr, this.#args, task.proc.tgid, tid, read);
      if (tamper) return this.#refuseTamper(id, tid, task, nr, name, {}, tamper);
    }

    const examined = this.#decider.examines(nr, task.proc.tgid);
    if (!examined && !this.#sink.wantsSyscalls) return void this.#respond(id, ALLOW);

    // Pointer arguments are read when first looked at (a rule's path, a wrapper's event_path, open emulation, the
    // trace): a wrapper that judges the call number alone (seq) costs no process_vm_readv (7-12 µs each, 64 KiB for a
    // write's data). Whatever was read is read before the answer, and checked still to be the caller's.
    const args = new LazyArgs(() => this.#decode(tid, task, name));
    if (this.#answerFirst.has(nr) && !(this.#emulateOpens && OPEN_FAMILY.has(nr) && this.#sink.wantsSyscalls)) {
      return this.#watchOnly(id, tid, task, nr, name, args, examined);
    }
    const pathCall = OPEN_FAMILY.has(nr) || name === "open_by_handle_at";
    if (this.#sink.wantsSyscalls || pathCall) args.read();
    const event = this.#event(tid, task, "x86_64", nr, name, args.decoded);
    let verdict = examined ? this.#decider.decide(event) : ALLOW;
    // A denied or flagged call's record goes to audit with its arguments: read them while they are the caller's.
    if (verdict.action !== "allow" || event.alerts?.length) args.read();
    if (args.wasRead) {
      if (!this.#valid(id)) return; // the bytes we read may not be the caller's any more
      // Unreadable now is no proof of unreadable when the kernel reads: never let it run unchecked.
      if (args.decoded.fault && (examined || pathCall)) return void this.#fail(id, EFAULT);
    }
    // A plain object from here on: events cross to the main thread by structured clone, which refuses a Proxy.
    event.decoded = args.wasRead ? args.read() : {};
    // On the canonical path: /proc/self/../PID/mem, a relative open from /proc, a symlink are all the same entry.
    const procEntry = pathCall && OPEN_FAMILY.has(nr) && event.decoded.path !== undefined &&
      this.#guard.checkPath(event.decoded.path, () => this.#opensReadOnly(tid, name));
    if (procEntry) return this.#refuseTamper(id, tid, task, nr, name, event.decoded, procEntry);
    const check = this.#check;
    if (verdict.action === "allow" && check?.reason && (examined || (pathCall && this.#emulateOpens))) {
      // The caller's world could not be entered: deciding or acting in ours would be deciding on another file.
      verdict = { action: "deny", errno: EPERM };
      event.reason = check.reason;
    } else if (verdict.action === "allow" && examined && REFUSED_WHEN_PATH_RULED.has(name)) {
      // Not run here exactly, so a thread could change the path after the check: refused while examined.
      verdict = { action: "deny", errno: EPERM };
      event.reason =
        `${name} cannot be checked race-free on the seccomp source: refused while a rule or wrapper examines it`;
    }
    event.verdict = describeVerdict(verdict);

    // ADDFD cannot install an O_PATH file (the kernel's fget refuses them): such opens run in the kernel. An O_PATH fd
    // reads and writes nothing; whatever is opened through it later is checked on its own object.
    const oPath = pathCall && (this.#openArgs(tid, name)?.flags ?? 0) & O_PATH;
    const unresolved = check?.resolved[0];
    if (verdict.action === "allow" && this.#emulateOpens && oPath && unresolved && failed(unresolved)) {
      // Its failure is known (the same lookup, as the caller): answered here, with a post result, race-free.
      event.emulated = true;
      this.#sink.emit(event);
      this.#emulateOpen(id, tid, task, event, check!);
      return;
    }
    if (verdict.action === "allow" && this.#emulateOpens && pathCall && check && !oPath) {
      event.emulated = true;
      this.#sink.emit(event);
      this.#emulateOpen(id, tid, task, event, check);
      return;
    }
    // utimensat with a NULL path is futimens on its fd: nothing by path to check, the kernel runs it.
    const byFd = name === "utimensat" && this.#args[1] === 0n;
    if (verdict.action === "allow" && this.#emulateOpens && examined && check && PATH_CALLS.has(name) && !byFd) {
      event.emulated = true;
      this.#emulatePathCall(id, tid, task, event, check);
      return;
    }
    if (EXEC_FAMILY.has(nr) && examined && verdict.action === "allow" && event.decoded.ident) {
      task.proc.execChecked = { ident: event.decoded.ident, path: event.decoded.path ?? "", nr };
    }
    this.#sink.emit(event); // journaled before the answer (host/audit/journal_sink.ts)
    this.#respond(id, verdict, task.proc);
  }

  /** The call's arguments from the caller's memory, its path arguments resolved in the caller's world. */
  #decode(tid: number, task: Task, name: string): DecodedArgs {
    const decoded = decodeArgs(name, this.#args, memoryReader(tid, this.#memory));
    const handle = name === "open_by_handle_at";
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
      const open = OPEN_FAMILY.has(syscallNumber(name)!) ? this.#openArgs(tid, name) : undefined;
      if (open === null) {
        decoded.fault = "arg2";
        return decoded;
      }
      check = this.#emulator.check(caller, name, this.#args, [decoded.path, decoded.path2], open);
    }
    this.#check = check;
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

  /** Runs a path call (unlink, rename, chmod, …) on the checked objects and answers with its result. */
  #emulatePathCall(id: bigint, tid: number, task: Task, event: SyscallEvent, check: PathCheck): void {
    const caller = { tgid: task.proc.tgid, tid, creds: task.creds };
    const target = event.syscall === "symlink" || event.syscall === "symlinkat" ? event.decoded.path : undefined;
    let times: Uint8Array | undefined;
    if (event.syscall === "utimensat" && this.#args[2] !== 0n) {
      // Read once, here, and checked to be the caller's: the call uses this copy.
      times = this.#memory.readBytes(tid, this.#args[2], 32);
      if (!times || !this.#valid(id)) return void this.#fail(id, EFAULT);
    }
    const result = this.#emulator!.run(caller, event.syscall, this.#args, check, target, times);
    this.#current.summary.emulated++;
    this.#sink.emit(event); // journaled before the answer
    if ("errno" in result) this.#fail(id, result.errno);
    else this.#send(id, 0, 0, BigInt(result.fd));
  }

  /**
   * A call only MAY_KILL watchers declared (answerFirstCalls): the caller goes on at once, as under
   * the module's OBSERVE, and the watchers see it after (a kill lands a call late). Pointer arguments
   * are then read only if a hook asks, after the call ran; a trace still gets them read before.
   */
  #watchOnly(id: bigint, tid: number, task: Task, nr: number, name: string, args: LazyArgs, examined: boolean): void {
    if (this.#sink.wantsSyscalls) args.read();
    this.#respond(id, ALLOW);
    const event = this.#event(tid, task, "x86_64", nr, name, args.decoded);
    const verdict = examined ? this.#decider.decide(event) : ALLOW;
    event.decoded = args.wasRead ? args.read() : {};
    event.verdict = describeVerdict(verdict);
    if (verdict.action === "kill") {
      event.reason = "late kill (the call was only observed)";
      this.#kill(task.proc);
    } else if (verdict.action !== "allow") {
      event.reason = `${event.verdict} not enforced: the call was only observed`;
    }
    this.#sink.emit(event);
  }

  /** The open being served asks only to read (O_RDONLY, no O_CREAT or O_TRUNC); unreadable flags count as not. */
  #opensReadOnly(tid: number, name: string): boolean {
    const flags = this.#openArgs(tid, name)?.flags;
    return flags !== undefined && (flags & 0o1103) === 0; // O_ACCMODE | O_CREAT | O_TRUNC
  }

  /** A call that reaches the supervisor itself (or could): refused whatever the policy says, and always reported. */
  #refuseTamper(
    id: bigint,
    tid: number,
    task: Task,
    nr: number,
    name: string,
    decoded: DecodedArgs,
    refusal: Refusal,
  ): void {
    const verdict: Verdict = { action: "deny", errno: refusal.errno ?? EPERM };
    const event = this.#event(tid, task, "x86_64", nr, name, decoded);
    event.verdict = describeVerdict(verdict);
    event.reason = `${refusal.reason} (${refusal.technique})`;
    if (!refusal.quiet) event.alerts = [TAMPER_ALERT];
    this.#sink.emit(event); // journaled before the answer
    this.#respond(id, verdict);
  }

  #emulateOpen(id: bigint, tid: number, task: Task, pre: SyscallEvent, check: PathCheck): void {
    const open = this.#openArgs(tid, pre.syscall);
    if (!open || !this.#valid(id)) return void this.#fail(id, EFAULT);
    const resolved = check.resolved[0];
    const send = !this.#decider.examinesPost?.(pre.nr, pre.pid);
    const caller = { tgid: task.proc.tgid, tid, creds: task.creds };
    const result = !resolved
      ? { errno: EFAULT }
      : failed(resolved)
      ? { errno: resolved.errno }
      : this.#emulator!.open(caller, resolved as Resolved, open, { id, listener: this.#fd, send });
    const req = { send };
    this.#current.summary.emulated++;
    if ("errno" in result && result.errno === ENOENT && !this.#valid(id)) return; // ADDFD: the caller is gone
    const post: SyscallEvent = {
      ...pre,
      phase: "post",
      verdict: undefined,
      emulated: true,
      ret: "fd" in result ? result.fd : -1,
      errno: "errno" in result ? errnoName(result.errno) : undefined,
    };
    // With post hooks the fd is installed but the call not yet completed, so a kill lands first.
    const verdict = this.#decider.observe?.(post) ?? ALLOW;
    this.#sink.emit(post); // journaled before the answer
    if (verdict.action === "kill") this.#respond(id, verdict, task.proc);
    else if ("errno" in result) this.#fail(id, result.errno);
    else if (!req.send) this.#send(id, 0, 0, BigInt(result.fd));
  }

  /** Answers with a verdict, counting it. */
  #respond(id: bigint, verdict: Verdict, proc?: Proc): void {
    if (verdict.action === "allow") return this.#send(id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    if (verdict.action === "kill") {
      // seccomp has no "kill" answer: signal the process, then fail the call.
      if (proc) this.#kill(proc);
      else this.#current.summary.killed++;
      return this.#send(id, EPERM, 0);
    }
    this.#current.summary.denied++;
    // seccomp cannot rewrite arguments (the chain refuses such verdicts here): fail closed.
    this.#send(id, verdict.action === "deny" ? verdict.errno : EPERM, 0);
  }

  /** Fails the call with the errno the kernel would have given (not a verdict). */
  #fail(id: bigint, err: number): void {
    this.#send(id, err, 0);
  }

  #send(id: bigint, err: number, flags: number, val = 0n): void {
    this.#pending = undefined; // answered, whatever happens next
    const v = this.#respView;
    v.setBigUint64(RESP.id, id, true);
    v.setBigInt64(RESP.val, val, true);
    v.setInt32(RESP.error, -err, true);
    v.setUint32(RESP.flags, flags, true);
    if (libc.symbols.ioctl(this.#fd, SECCOMP_IOCTL.NOTIF_SEND, this.#resp) < 0) {
      const e = errno();
      // ENOENT: the caller died or took a signal meanwhile; not an error (user-trap.c).
      if (e !== ENOENT) throw new Error(`SECCOMP_IOCTL_NOTIF_SEND failed: errno ${e}`);
    }
  }

  #valid(id: bigint): boolean {
    this.#idBuf[0] = id;
    return libc.symbols.ioctl(this.#fd, SECCOMP_IOCTL.NOTIF_ID_VALID, new Uint8Array(this.#idBuf.buffer)) === 0;
  }

  /** The task behind a notification, learning about new threads and processes. */
  #task(tid: number, id: bigint): Task | undefined {
    const known = this.#tasks.get(tid);
    if (known) {
      // A process killed for an exec that ran another file than the one checked gets no call answered.
      if (known.proc.execPending && this.#refreshProgram(known.proc)) return undefined;
      return known;
    }
    const creds = readTaskStatus(tid);
    if (!creds) return undefined;
    let proc = this.#procs.get(creds.tgid);
    // After an exec from a non-leader thread the caller has a tid we never saw.
    if (proc?.execPending && this.#refreshProgram(proc)) return undefined;
    if (!proc) {
      const pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(creds.tgid), 0n, 0n, 0n, 0n, 0n));
      // Checked after pidfd_open: the pid cannot have been recycled under us.
      if (pidfd < 0 || !this.#valid(id)) {
        if (pidfd >= 0) libc.symbols.close(pidfd);
        return undefined;
      }
      proc = {
        session: this.#current,
        tgid: creds.tgid,
        ppid: creds.ppid,
        pidfd,
        program: readProgram(creds.tgid, creds),
        sameRoot: statKey(`/proc/${creds.tgid}/root`) === this.#rootStat,
        execPending: false,
      };
      this.#procs.set(creds.tgid, proc);
      this.#watch(pidfd, KIND_PIDFD, creds.tgid);
      this.#lifecycle({
        kind: "spawn",
        source: "seccomp",
        time: Date.now(),
        pid: creds.tgid,
        ppid: creds.ppid,
        session: this.#current.id,
        program: proc.program,
      });
    }
    const task = { proc, creds };
    this.#tasks.set(tid, task);
    return task;
  }

  /** Learns the program after an exec; true if the process was killed for it. */
  #refreshProgram(proc: Proc): boolean {
    proc.execPending = false;
    const status = readTaskStatus(proc.tgid);
    if (!status) return false;
    this.#forgetCreds(proc.tgid);
    const program = readProgram(proc.tgid, status);
    const checked = proc.execChecked;
    proc.execChecked = undefined;
    const ran = checked && statKey(`/proc/${proc.tgid}/exe`);
    const killed = !!checked && !!ran && ran !== checked.ident && this.#verifyExec(proc, program, checked, ran);
    proc.sameRoot = statKey(`/proc/${proc.tgid}/root`) === this.#rootStat;
    if (program.exe === proc.program.exe && program.argv0 === proc.program.argv0) return killed; // exec failed
    proc.program = program;
    this.#lifecycle({ kind: "exec", source: "seccomp", time: Date.now(), pid: proc.tgid, program }, proc);
    return killed;
  }

  /**
   * The kernel ran another file than the one the exec was decided on (a thread changed the path after the check):
   * the decision is made again on the file that runs, and a deny or kill kills the process now, at its first notified
   * call (docs/seccomp.md, "exec").
   */
  #verifyExec(proc: Proc, program: ProgramIdentity, checked: { path: string; nr: number }, ident: string): boolean {
    const event: SyscallEvent = {
      kind: "syscall",
      source: "seccomp",
      phase: "pre",
      time: Date.now(),
      pid: proc.tgid,
      tid: proc.tgid,
      abi: "x86_64",
      nr: checked.nr,
      syscall: syscallName(checked.nr),
      args: [],
      decoded: { path: program.exe, rawPath: checked.path, ident },
      program,
    };
    const verdict = this.#decider.decide(event);
    if (verdict.action === "allow") return false;
    this.#kill(proc);
    event.verdict = "kill";
    event.reason =
      `exec raced: decided on ${checked.path}, the kernel ran ${program.exe}; killed at its first notified call`;
    this.#sink.emit(event);
    return true;
  }

  /** Reports a lifecycle event to the sink and the decider (a kill verdict at exec is honoured). */
  #lifecycle(event: LifecycleEvent, proc?: Proc): void {
    // The WSS's activation: bindings re-evaluated when a process appears and at every execve.
    if (event.kind === "exit") {
      this.#bindings.forget(event.pid);
    } else {
      this.#decider.bind(event.pid, this.#bindings.bind(event.pid, event.ppid, event.program));
    }
    this.#sink.emit(event);
    const verdict = this.#decider.observe?.(event);
    if (verdict?.action === "kill" && proc) this.#kill(proc);
  }

  /** SIGKILL through the pidfd (never a recycled pid), counted. */
  #kill(proc: Proc): void {
    this.#current.summary.killed++;
    libc.symbols.syscall(SYS.pidfd_send_signal, BigInt(proc.pidfd), SIGKILL, 0n, 0n, 0n, 0n);
  }

  #forgetCreds(tgid: number): void {
    for (const [tid, task] of this.#tasks) if (task.proc.tgid === tgid) this.#tasks.delete(tid);
  }

  #exited(tgid: number): void {
    const proc = this.#procs.get(tgid);
    if (!proc) return;
    this.#procs.delete(tgid);
    this.#forgetCreds(tgid);
    libc.symbols.epoll_ctl(this.#epoll, EPOLL_CTL_DEL, proc.pidfd, new Uint8Array(EPOLL_EVENT.size));
    libc.symbols.close(proc.pidfd);
    this.#lifecycle({ kind: "exit", source: "seccomp", time: Date.now(), pid: tgid, program: proc.program });
  }

  #event(tid: number, task: Task, abi: SyscallAbi, nr: number, name: string, decoded: DecodedArgs): SyscallEvent {
    return {
      kind: "syscall",
      source: "seccomp",
      phase: "pre",
      time: Date.now(),
      pid: task.proc.tgid,
      tid,
      abi,
      nr,
      syscall: name,
      args: Array.from(this.#args, String),
      decoded,
      program: task.proc.program,
    };
  }

  #emitCall(
    tid: number,
    task: Task,
    abi: SyscallAbi,
    nr: number,
    name: string,
    decoded: DecodedArgs,
    verdict: Verdict,
    reason: string,
  ): void {
    const event = this.#event(tid, task, abi, nr, name, decoded);
    event.verdict = describeVerdict(verdict);
    event.reason = reason;
    this.#sink.emit(event);
  }
}

export { describeVerdict };

/**
 * An event's decoded arguments, read from the caller's memory the first time
 * any field is looked at (a Proxy, so rules, wrappers' imports and sinks need
 * not know). Fields read later, after the answer, would not be the caller's:
 * the supervisor forces the read before it answers wherever it may be needed.
 */
class LazyArgs {
  #values: DecodedArgs | undefined;
  readonly #readArgs: () => DecodedArgs;
  readonly decoded: DecodedArgs;

  constructor(readArgs: () => DecodedArgs) {
    this.#readArgs = readArgs;
    this.decoded = new Proxy({} as DecodedArgs, {
      get: (_t, key) => (this.read() as Record<string | symbol, unknown>)[key],
      has: (_t, key) => key in this.read(),
      ownKeys: () => Reflect.ownKeys(this.read()),
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(this.read(), key);
        return d && { ...d, configurable: true };
      },
      set: (_t, key, value) => Reflect.set(this.read(), key, value),
    });
  }

  get wasRead(): boolean {
    return this.#values !== undefined;
  }

  read(): DecodedArgs {
    return this.#values ??= this.#readArgs();
  }
}

/** dev:ino of a path, to compare roots; "" if it cannot be read. */
function statKey(path: string): string {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return "";
  }
}
