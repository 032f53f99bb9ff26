/**
 * The kernel-module source's loop: read /dev/idwrap's record stream, turn
 * each record into the events every source produces (`source: "kmod"`), ask
 * the decider, write the verdict where the caller waits. One device, one
 * opener: this loop serves every wrapped tree of the host (the trees `idwrap
 * run` starts, and with `systemWide` every program whose activation criteria
 * match at its execve).
 *
 * Records that only observe never block their process; a kill that a
 * wrapper decides on one (or on a post record nobody waits on) is carried
 * out with pidfd_send_signal, and with KILL on that process's next waiting
 * record if one is already queued.
 *
 * @module
 */
import { type Decider, describeVerdict, type EventSink } from "../../decider.ts";
import { errnoName } from "../../errno.ts";
import type { DecodedArgs, LifecycleEvent, ProgramIdentity, SyscallAbi, SyscallEvent, Verdict } from "../../events.ts";
import { ALLOW } from "../../events.ts";
import { type ArgKind, i386SyscallName, syscallName, syscallNumber } from "../../syscalls/mod.ts";
import { newSummary, type ProcessEntry, type SupervisorSummary } from "../enforce.ts";
import { type ArgReader, decodeArgs } from "../seccomp/decode.ts";
import { TargetMemory } from "../seccomp/memory.ts";
import { readProgram, readTaskStatus } from "../seccomp/procfs.ts";
import { type Refusal, TAMPER_ALERT, TamperGuard } from "../seccomp/tamper.ts";
import {
  DEVICE,
  EAGAIN,
  EBUSY,
  EINTR,
  errno,
  killProcess,
  libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  openPath,
  POLLFD_SIZE,
  POLLIN,
} from "./ffi.ts";
import { guardedCall, guardedOpen, opensReadOnly, openTarget } from "./tamper.ts";
import {
  ABI_VERSION,
  ACT,
  CFG,
  encodeConfig,
  encodeInterest,
  encodeVerdict,
  encodeWatch,
  EV,
  EVF,
  INTEREST,
  IOC,
  type KmodRecord,
  type KmodVerdict,
  parseRecord,
  splitArgv,
  VF,
} from "./uapi.ts";

const EPERM = 1, EFAULT = 14, ENOSYS = 38;
/** The session of processes wrapped system-wide (by activation at exec), not by `idwrap run`. */
export const SYSTEM_SESSION = 0x7fffffff;
const READ_BUFFER = 1 << 20;
const MAX_READS_PER_WAKE = 4;
/** How often processes that went without an EXIT record are looked for. */
const SWEEP_MS = 1000;

/** How the kmod loop runs. */
export interface KmodSupervisorOptions {
  decider: Decider;
  sink: EventSink;
  /** Syscall number → INTEREST bits. */
  interest: ReadonlyMap<number, number>;
  /** Waiting calls get DENY EPERM (true) or ALLOW (false) on timeout, host exit or unload. */
  failClosed: boolean;
  /** A waiting call's limit; 0: the module's default (5 s). */
  timeoutMs?: number;
  /** Every process on the host is a candidate: EXEC records wait for a watch verdict (the WSS's activation). */
  systemWide?: boolean;
  /** @default /dev/idwrap */
  device?: string;
}

/** Why the device cannot be used, in words for doctor and `--source auto`. */
export class DeviceError extends Error {}

/**
 * Opens the device and checks its ABI.
 *
 * @throws DeviceError saying why not (absent, busy, not root, another ABI)
 */
export function openDevice(path = DEVICE): number {
  const fd = openPath(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const e = -fd;
    const why = e === 2
      ? `${path} does not exist (the idwrap module is not loaded: idwrap kmod load)`
      : e === EBUSY
      ? `${path} is in use by another idwrap (the module serves one opener at a time)`
      : e === 13 || e === EPERM
      ? `${path} needs root or CAP_SYS_ADMIN`
      : `cannot open ${path}: errno ${e}`;
    throw new DeviceError(why);
  }
  const abi = libc.symbols.ioctl_none(fd, IOC.VERSION, 0n);
  if (abi !== ABI_VERSION) {
    const e = errno();
    libc.symbols.close(fd);
    throw new DeviceError(
      abi < 0
        ? `IDWRAP_IOC_VERSION failed on ${path}: errno ${e}`
        : `${path} speaks ABI ${abi}; this idwrap speaks ${ABI_VERSION}`,
    );
  }
  return fd;
}

interface Proc {
  pid: number;
  ppid: number;
  session: number;
  program: ProgramIdentity;
}

interface Session {
  id: number;
  summary: SupervisorSummary;
  procs: Set<number>;
}

/**
 * The argument whose bytes the module copies as `data` for a syscall record: the buffer of write, pwrite64 and
 * sendto, the sockaddr of connect and bind (kmod/idwrap_hook.c's idw_spec). Others are not copied.
 */
const DATA_ARG = 1;

/** execve and execveat: their pre records carry argv as data (NUL-separated, cut at data_max). */
const EXEC_NRS = new Set(["execve", "execveat"].map((name) => syscallNumber(name)));

/**
 * Decodes from the module's copies: the paths it copied, data for sockaddr and write buffers, and execve's argv
 * (the module copies it once, so the verdict is on the bytes it saw). Only a record without that copy (an empty
 * argv, or a module that did not carry it) falls back, while the caller waits, to reading the caller's memory (as
 * the seccomp source does, with its TOCTOU caveat).
 */
export function recordReader(rec: KmodRecord, memory: TargetMemory): ArgReader {
  const faulted = (rec.flags & EVF.FAULT) !== 0;
  const waits = (rec.flags & EVF.VERDICT) !== 0 && !(rec.flags & EVF.POST);
  const exec = EXEC_NRS.has(rec.nr) && !(rec.flags & EVF.COMPAT) && !(rec.flags & EVF.POST);
  return {
    path: (raw, nth) => {
      const p = nth === 0 ? rec.path : rec.path2;
      if (p !== undefined) return p;
      return raw !== 0n && faulted ? undefined : null;
    },
    argv: (raw) => {
      if (exec && rec.data) return splitArgv(rec.data);
      if (exec && faulted && raw !== 0n) return undefined;
      return waits ? memory.readStringArray(rec.tid, raw) : null;
    },
    bytes: (_raw, len, kind: ArgKind, index) => {
      // clone_args, open_how, sendto's destination: not copied.
      if ((kind !== "sockaddr" && kind !== "data") || index !== DATA_ARG) return null;
      if (rec.data) return kind === "data" ? rec.data : rec.data.subarray(0, len);
      if (kind === "data" && len === 0) return new Uint8Array(0);
      return faulted ? undefined : null;
    },
  };
}

/** A wait status as exit code or signal. */
function waitStatus(status: number): { exitCode?: number; signal?: string } {
  const sig = status & 0x7f;
  if (sig === 0) return { exitCode: (status >> 8) & 0xff };
  return { signal: SIGNALS[sig] ?? `SIG${sig}` };
}
const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
};

/** The alert on a call whose arguments a racing thread changed after the module copied them (EVF_RACED). */
export const RACE_ALERT = "idwrap.argument-raced";

/** Serves /dev/idwrap until stop(). */
export class KmodSupervisor {
  #decider: Decider;
  readonly #sink: EventSink;
  readonly #systemWide: boolean;
  /** The device, held for the loop's life; closing it gives every waiting call the fail mode. */
  readonly fd: number;
  readonly wakeFd: number;
  readonly #buf = new Uint8Array(READ_BUFFER);
  readonly #pollfds = new Uint8Array(POLLFD_SIZE * 2);
  readonly #wakeBuf = new Uint8Array(8);
  readonly #memory = new TargetMemory();
  /** Refuses the tree's calls that reach this process (the seccomp source's guard). */
  readonly #guard = new TamperGuard();
  readonly #procs = new Map<number, Proc>();
  readonly #sessions = new Map<number, Session>();
  readonly #system: Session = { id: SYSTEM_SESSION, summary: newSummary(), procs: new Set() };
  /** tid → the last pre event's decoded args, for a post record that carries no copies. */
  readonly #lastPre = new Map<number, { nr: number; decoded: DecodedArgs }>();
  /** Processes a late kill was sent to: their next waiting record gets KILL. */
  readonly #doomed = new Set<number>();
  #stopped = false;
  #lastSweep = 0;
  /** The id of the last verdict written. */
  #lastWritten = -1n;

  constructor(options: KmodSupervisorOptions) {
    this.#decider = options.decider;
    this.#sink = options.sink;
    this.#systemWide = options.systemWide ?? false;
    this.fd = openDevice(options.device);
    try {
      const flags = this.#systemWide ? CFG.ALL_PROCESSES | CFG.EXEC_SYNC : 0;
      this.#ioctl(
        IOC.CONFIG,
        encodeConfig({
          flags,
          timeoutMs: options.timeoutMs ?? 0,
          failAction: options.failClosed ? ACT.DENY : ACT.ALLOW,
          failErrno: options.failClosed ? EPERM : 0,
        }),
        "IDWRAP_IOC_CONFIG",
      );
      this.setInterest(options.interest);
      this.wakeFd = libc.symbols.eventfd(0, 0o2004000 /* EFD_CLOEXEC | EFD_NONBLOCK */);
      if (this.wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno()}`);
    } catch (e) {
      libc.symbols.close(this.fd);
      throw e;
    }
    const v = new DataView(this.#pollfds.buffer);
    v.setInt32(0, this.fd, true);
    v.setInt16(4, POLLIN, true);
    v.setInt32(POLLFD_SIZE, this.wakeFd, true);
    v.setInt16(POLLFD_SIZE + 4, POLLIN, true);
  }

  #ioctl(request: number, arg: Uint8Array, what: string): void {
    if (libc.symbols.ioctl(this.fd, request, arg) < 0) throw new Error(`${what} failed: errno ${errno()}`);
  }

  /**
   * Replaces the interest mask (a policy reload).
   *
   * @throws naming the calls the module cannot decide in this kernel (no traceable entry point), if any
   */
  setInterest(mask: ReadonlyMap<number, number>): void {
    if (libc.symbols.ioctl(this.fd, IOC.INTEREST, encodeInterest(mask)) === 0) return;
    const e = errno();
    if (e !== 22) throw new Error(`IDWRAP_IOC_INTEREST failed: errno ${e}`);
    // EINVAL: some call cannot wait for a verdict here. Find which, one at a time, and say so.
    const undecidable = [...mask].filter(([nr, bits]) =>
      bits & (INTEREST.PRE_DECIDE | INTEREST.POST_DECIDE) &&
      libc.symbols.ioctl(this.fd, IOC.INTEREST, encodeInterest(new Map([[nr, bits]]))) < 0
    ).map(([nr]) => syscallName(nr));
    throw new Error(
      `the kernel module cannot make ${undecidable.join(", ") || "some call"} wait for a verdict in this kernel ` +
        "(no traceable entry point): use --source seccomp, or drop the rules or wrappers that may deny it",
    );
  }

  /** Replaces the decider; records already answered are not revisited. */
  setDecider(decider: Decider): void {
    this.#decider = decider;
  }

  /**
   * Watches a process (and its future children) as a wrapped tree: `idwrap
   * run`'s launcher, before it execs the command.
   */
  addSession(id: number, pid: number): void {
    const session: Session = { id, summary: newSummary(), procs: new Set() };
    this.#sessions.set(id, session);
    this.#ioctl(IOC.WATCH, encodeWatch(pid), `IDWRAP_IOC_WATCH(${pid})`);
    this.#track(pid, undefined, session);
  }

  /** Makes the loop return once it is woken. */
  stop(): void {
    this.#stopped = true;
  }

  /** The wrapped processes: the WSS's process table. */
  processes(): ProcessEntry[] {
    return [...this.#procs.values()].map((p) => ({
      pid: p.pid,
      ppid: p.ppid,
      session: p.session,
      program: p.program,
      wrappers: this.#decider.bindings?.(p.pid) ?? [],
    }));
  }

  /** Closes the device: every waiting call gets the fail mode, interception stops. */
  close(): void {
    libc.symbols.close(this.fd);
    libc.symbols.close(this.wakeFd);
  }

  /** Serves records until stop(). Same contract as the seccomp Supervisor's run(). */
  async run(options: {
    idle?: (why: "idle" | "woken" | "busy") => Promise<void> | void;
    onSessionEnd?: (session: { id: number; summary: SupervisorSummary }) => void;
    idleMs?: number;
  } = {}): Promise<void> {
    const idleMs = options.idleMs ?? 100;
    let lastIdle = performance.now();
    const v = new DataView(this.#pollfds.buffer);
    while (!this.#stopped) {
      v.setInt16(6, 0, true);
      v.setInt16(POLLFD_SIZE + 6, 0, true);
      const n = libc.symbols.poll(this.#pollfds, 2n, idleMs);
      if (n < 0) {
        if (errno() === EINTR) continue;
        throw new Error(`poll failed: errno ${errno()}`);
      }
      let woken = false, served = 0;
      if (v.getInt16(POLLFD_SIZE + 6, true) & POLLIN) {
        libc.symbols.read(this.wakeFd, this.#wakeBuf, 8n);
        woken = true;
      }
      if (v.getInt16(6, true)) served = this.#drain();
      const now = performance.now();
      if (now - this.#lastSweep > SWEEP_MS) {
        this.#lastSweep = now;
        this.#sweep();
      }
      this.#endSessions(options.onSessionEnd);
      if (n === 0 || woken || now - lastIdle > idleMs || served === 0) {
        this.#sink.flush();
        this.#decider.idle?.();
        const pending = options.idle?.(n === 0 ? "idle" : woken ? "woken" : "busy");
        if (pending) await pending;
        lastIdle = performance.now();
      }
    }
    this.#sink.flush();
  }

  /**
   * Reads until the stream is empty, or a few buffers' worth (so a busy host still gets to the thread's messages
   * and the store); returns how many records were served.
   */
  #drain(): number {
    let served = 0;
    for (let reads = 0; reads < MAX_READS_PER_WAKE; reads++) {
      const got = Number(libc.symbols.read(this.fd, this.#buf, BigInt(this.#buf.length)));
      if (got < 0) {
        const e = errno();
        if (e === EAGAIN || e === EINTR) return served;
        throw new Error(`read(/dev/idwrap) failed: errno ${e}`);
      }
      if (got === 0) return served;
      for (let at = 0; at < got;) {
        const rec = parseRecord(this.#buf.subarray(0, got), at);
        at += rec.size;
        this.#serveGuarded(rec);
        served++;
      }
    }
    return served;
  }

  /** A bug while serving one record fails that call (closed) and is reported; the rest goes on. */
  #serveGuarded(rec: KmodRecord): void {
    try {
      this.#serve(rec);
    } catch (e) {
      this.#report(rec.pid, `internal error while serving a record (failed closed): ${(e as Error).stack ?? e}`);
    }
    // Every waiting record gets exactly one verdict.
    if (rec.flags & EVF.VERDICT && this.#lastWritten !== rec.id) {
      this.#write({ id: rec.id, action: ACT.DENY, err: EPERM });
    }
  }

  /** Serves one record; true when a waiting record was answered. */
  #serve(rec: KmodRecord): boolean {
    switch (rec.type) {
      case EV.SYSCALL:
        return this.#syscall(rec);
      case EV.FORK:
        this.#fork(rec);
        return false;
      case EV.EXEC:
        return this.#exec(rec);
      case EV.EXIT:
        this.#exit(rec.pid, Number(rec.ret));
        return false;
      case EV.LOST:
        this.#system.summary.lost = (this.#system.summary.lost ?? 0) + Number(rec.lost);
        for (const s of this.#sessions.values()) s.summary.lost = (s.summary.lost ?? 0) + Number(rec.lost);
        this.#report(0, `the module dropped ${rec.lost} observe records (its ring was full)`);
        return false;
      default:
        this.#report(rec.pid, `unknown record type ${rec.type} (flags 0x${rec.flags.toString(16)})`);
        return false;
    }
  }

  #sessionOf(proc: Proc | undefined): Session {
    return (proc && this.#sessions.get(proc.session)) ?? this.#system;
  }

  /** Adds a process to the table (its program from /proc unless given) and reports its spawn. */
  #track(pid: number, ppid: number | undefined, session: Session, program?: ProgramIdentity): Proc {
    const status = readTaskStatus(pid);
    const proc: Proc = {
      pid,
      ppid: ppid ?? status?.ppid ?? 0,
      session: session.id,
      program: program ??
        (status ? readProgram(pid, status) : { exe: "", argv0: "", uid: -1, gid: -1 }),
    };
    this.#procs.set(pid, proc);
    session.procs.add(pid);
    this.#lifecycle({
      kind: "spawn",
      source: "kmod",
      time: Date.now(),
      pid,
      ppid: proc.ppid,
      session: session.id,
      program: proc.program,
    }, proc);
    return proc;
  }

  #fork(rec: KmodRecord): void {
    if (rec.flags & EVF.THREAD) return; // a thread of a process we may track: nothing new
    const parent = this.#procs.get(rec.ppid);
    if (!parent && !(rec.flags & EVF.WATCHED)) return; // not ours
    if (this.#procs.has(rec.pid)) return;
    // A fork runs its parent's program until it execs.
    this.#track(rec.pid, rec.ppid, this.#sessionOf(parent), parent ? { ...parent.program } : undefined);
  }

  /** The new program of an EXEC record: the executable as the kernel sees it now, argv[0] from the copy. */
  #programOf(rec: KmodRecord): ProgramIdentity {
    let exe = rec.path ?? "";
    try {
      exe = Deno.readLinkSync(`/proc/${rec.pid}/exe`);
    } catch { /* gone already: the path as executed */ }
    const argv = splitArgv(rec.data);
    return { exe, argv0: argv[0] ?? "", uid: rec.uid, gid: rec.gid };
  }

  #exec(rec: KmodRecord): boolean {
    const waits = (rec.flags & EVF.VERDICT) !== 0;
    let proc = this.#procs.get(rec.pid);
    if (!proc && !(rec.flags & EVF.WATCHED) && !(waits && this.#systemWide)) return false;
    const program = this.#programOf(rec);
    let flags = 0;
    let verdict: Verdict = ALLOW;
    if (!proc) {
      if (!(rec.flags & EVF.WATCHED) && waits) {
        // System-wide activation: wrap the new program if some policy's criteria bind it.
        const probe: LifecycleEvent = {
          kind: "spawn",
          source: "kmod",
          time: Date.now(),
          pid: rec.pid,
          ppid: rec.ppid,
          session: SYSTEM_SESSION,
          program,
        };
        this.#decider.observe?.(probe);
        if (!(this.#decider.bindings?.(rec.pid).length)) {
          this.#decider.observe?.({ ...probe, kind: "exit" }); // forget it: not ours
          this.#write({ id: rec.id, action: ACT.ALLOW, flags: 0 });
          return true;
        }
        flags = VF.WATCH;
        proc = this.#track(rec.pid, rec.ppid, this.#system, program);
        this.#lifecycle({ kind: "exec", source: "kmod", time: Date.now(), pid: rec.pid, program }, proc);
        this.#write({ id: rec.id, action: ACT.ALLOW, flags });
        return true;
      }
      proc = this.#track(rec.pid, rec.ppid, this.#sessionOf(this.#procs.get(rec.ppid)));
    }
    proc.program = program;
    verdict = this.#lifecycle({ kind: "exec", source: "kmod", time: Date.now(), pid: proc.pid, program }, proc, !waits);
    if (!waits) return false;
    if (proc.session === SYSTEM_SESSION && this.#systemWide && !(this.#decider.bindings?.(proc.pid).length)) {
      // Deactivated by the new program: stop intercepting it.
      flags = VF.UNWATCH;
    }
    if (verdict.action === "kill") {
      this.#sessionOf(proc).summary.killed++;
      this.#write({ id: rec.id, action: ACT.KILL, flags });
    } else this.#write({ id: rec.id, action: ACT.ALLOW, flags });
    if (flags === VF.UNWATCH) this.#forget(proc);
    return true;
  }

  /** Reports a lifecycle event; a kill verdict is carried out at once unless the caller answers it. */
  #lifecycle(event: LifecycleEvent, proc: Proc, killNow = true): Verdict {
    this.#sink.emit(event);
    const verdict = this.#decider.observe?.(event) ?? ALLOW;
    if (verdict.action === "kill" && killNow && event.kind !== "exit") this.#lateKill(proc.pid);
    return verdict;
  }

  #lateKill(pid: number): void {
    const proc = this.#procs.get(pid);
    this.#sessionOf(proc).summary.killed++;
    this.#doomed.add(pid);
    killProcess(pid);
  }

  #exit(pid: number, status: number): void {
    const proc = this.#procs.get(pid);
    if (!proc) return;
    this.#doomed.delete(pid);
    this.#forget(proc);
    this.#lifecycle(
      { kind: "exit", source: "kmod", time: Date.now(), pid, program: proc.program, ...waitStatus(status) },
      proc,
    );
  }

  /** Drops a process from the table (and its session). */
  #forget(proc: Proc): void {
    this.#procs.delete(proc.pid);
    this.#sessionOf(proc).procs.delete(proc.pid);
    this.#lastPre.delete(proc.pid);
  }

  /** Processes gone without an EXIT record (a dropped one): reported as exited. */
  #sweep(): void {
    for (const pid of [...this.#procs.keys()]) {
      try {
        Deno.statSync(`/proc/${pid}`);
      } catch {
        this.#exit(pid, 0);
      }
    }
  }

  #endSessions(onEnd?: (session: { id: number; summary: SupervisorSummary }) => void): void {
    for (const s of this.#sessions.values()) {
      if (s.procs.size) continue;
      this.#sessions.delete(s.id);
      onEnd?.(s);
    }
  }

  #syscall(rec: KmodRecord): boolean {
    const waits = (rec.flags & EVF.VERDICT) !== 0;
    const post = (rec.flags & EVF.POST) !== 0;
    const proc = this.#procs.get(rec.pid) ?? this.#track(rec.pid, rec.ppid, this.#sessionOf(this.#procs.get(rec.ppid)));
    const session = this.#sessionOf(proc);
    session.summary.notifications++;
    if (rec.flags & EVF.EMULATED && post) session.summary.emulated++;

    if (rec.flags & (EVF.COMPAT | EVF.X32)) {
      // The module never runs these for a watched process; say so.
      const abi: SyscallAbi = rec.flags & EVF.COMPAT ? "i386" : "x32";
      const name = abi === "i386" ? i386SyscallName(rec.nr) : syscallName(rec.nr & ~0x40000000);
      const event = this.#event(rec, proc, abi, name, "pre", {});
      event.verdict = describeVerdict({ action: "deny", errno: ENOSYS });
      event.reason = `${abi} system call ABI is not allowed`;
      this.#sink.emit(event); // journaled before the answer (host/audit/journal_sink.ts)
      if (waits) this.#write({ id: rec.id, action: ACT.DENY, err: ENOSYS });
      return waits;
    }

    const name = syscallName(rec.nr);
    let decoded: DecodedArgs;
    const last = this.#lastPre.get(rec.tid);
    // A post record's copies are made after the call (execve's are of the old image): the pre copies are what ran.
    if (post && last?.nr === rec.nr) decoded = { ...last.decoded };
    else decoded = decodeArgs(name, rec.args, recordReader(rec, this.#memory));
    if (rec.flags & EVF.FAULT) decoded.fault ??= "a pointer argument";
    const event = this.#event(rec, proc, "x86_64", name, post ? "post" : "pre", decoded);
    if (rec.flags & EVF.EMULATED) event.emulated = true;

    if (rec.flags & EVF.RACED) {
      // An allowed call whose argument changed in the caller's memory after the module copied it (a racing thread,
      // Watson's attack): the kernel ran the call on the copy decided on (a sockaddr that changed: refused). Not the
      // call's post record (that one follows, if asked for): an alert of its own.
      const refused = (rec.flags & EVF.DENIED) !== 0;
      if (refused) event.verdict = `deny ${errnoName(Number(-rec.ret))}`;
      event.reason = refused
        ? "raced: the sockaddr changed after the decision; refused"
        : `raced: the path changed after the decision (the caller's memory then said ${
          JSON.stringify(rec.path2 ?? "")
        }); the call ran on ${JSON.stringify(rec.path ?? "")}`;
      event.alerts = [RACE_ALERT];
      this.#sink.emit(event);
      return waits;
    }

    if (rec.flags & EVF.DENIED) {
      // The module refused the call itself (io_uring_setup…).
      event.verdict = `deny ${errnoName(Number(-rec.ret))}`;
      event.reason = name === "io_uring_setup" ? "io_uring bypasses system call interception" : "refused by the module";
      this.#sink.emit(event); // journaled before the answer
      if (waits) this.#write({ id: rec.id, action: ACT.DENY, err: Number(-rec.ret) || EPERM });
      return waits;
    }

    if (post) {
      const ret = Number(rec.ret);
      event.ret = ret < 0 && ret >= -4095 ? -1 : ret;
      if (ret < 0 && ret >= -4095) event.errno = errnoName(-ret);
      this.#lastPre.delete(rec.tid);
      const verdict = this.#decider.observe?.(event) ?? ALLOW;
      const kill = verdict.action === "kill" || this.#doomed.has(proc.pid);
      if (verdict.action === "kill") {
        event.verdict = "kill";
        if (waits) session.summary.killed++;
        else event.reason = "late kill (the call was only observed)";
      }
      this.#sink.emit(event); // journaled before the answer
      if (waits) this.#write({ id: rec.id, action: kill ? ACT.KILL : ACT.ALLOW });
      else if (verdict.action === "kill") this.#lateKill(proc.pid);
      return waits;
    }

    this.#lastPre.set(rec.tid, { nr: rec.nr, decoded });
    if (name === "io_uring_setup") {
      const verdict: Verdict = { action: "deny", errno: EPERM };
      event.verdict = describeVerdict(verdict);
      event.reason = "io_uring bypasses system call interception";
      this.#sink.emit(event); // journaled before the answer
      if (waits) this.#answer(rec, verdict, session, proc);
      return waits;
    }
    const tamper = waits ? this.#tamper(rec) : undefined;
    if (tamper) {
      // Refused whatever the policy says, and always reported (but for the quiet refusals of the guard).
      const verdict: Verdict = { action: "deny", errno: tamper.errno ?? EPERM };
      event.verdict = describeVerdict(verdict);
      event.reason = `${tamper.reason} (${tamper.technique})`;
      event.emulated = undefined;
      if (!tamper.quiet) event.alerts = [TAMPER_ALERT];
      this.#sink.emit(event); // journaled before the answer
      this.#answer(rec, verdict, session, proc);
      return waits;
    }
    const examined = this.#decider.examines(rec.nr, proc.pid);
    if (!examined) {
      this.#sink.emit(event);
      if (waits) this.#answer(rec, this.#doomed.has(proc.pid) ? { action: "kill" } : ALLOW, session, proc);
      return waits;
    }
    let verdict = this.#decider.decide(event);
    // Unreadable for the module is unreadable for the kernel: never let an examined call run unchecked.
    if (decoded.fault && verdict.action === "allow" && waits) verdict = { action: "deny", errno: EFAULT };
    if (this.#doomed.has(proc.pid)) verdict = { action: "kill" };
    if (waits) {
      event.verdict = describeVerdict(verdict);
      // The module runs an open it was allowed to (EVF_EMULATED); a refused one it does not run at all.
      if (verdict.action !== "allow" && verdict.action !== "rewrite") event.emulated = undefined;
      // Journaled before the answer (host/audit/journal_sink.ts): SIGKILL of idwrap after the caller saw its
      // verdict cannot lose the record; a record that cannot be journaled throws, and the call fails closed.
      this.#sink.emit(event);
      this.#answer(rec, verdict, session, proc);
      return waits;
    }
    if (verdict.action === "kill") {
      // Observed only: the call has run on; the process does not get further.
      event.verdict = "kill";
      event.reason = "late kill (the call was only observed)";
      this.#sink.emit(event);
      this.#lateKill(proc.pid);
      return waits;
    }
    if (verdict.action !== "allow") {
      event.reason = `${describeVerdict(verdict)} not enforced: the call was only observed`;
    }
    this.#sink.emit(event);
    return waits;
  }

  /**
   * Whether a waiting call reaches the supervisor (TamperGuard): the calls of KMOD_GUARDED_SYSCALLS by their
   * registers, and an open by the path it acts on. The module never intercepts our own thread group.
   */
  #tamper(rec: KmodRecord): Refusal | undefined {
    if (guardedCall(rec.nr)) {
      return this.#guard.check(rec.nr, rec.args, rec.pid, rec.tid, (a, n) => this.#memory.readBytes(rec.tid, a, n));
    }
    if (!guardedOpen(rec.nr) || rec.path === undefined) return undefined;
    const target = openTarget(rec);
    // A relative name whose start we cannot know: the rules see it as it is; it reaches our /proc only from /proc.
    if (target === undefined) return undefined;
    return this.#guard.checkPath(target, () => opensReadOnly(rec, this.#memory));
  }

  /** Writes the verdict for a waiting pre record, counting it. */
  #answer(rec: KmodRecord, verdict: Verdict, session: Session, proc: Proc): void {
    switch (verdict.action) {
      case "allow":
        return this.#write({ id: rec.id, action: ACT.ALLOW });
      case "deny":
        session.summary.denied++;
        return this.#write({ id: rec.id, action: ACT.DENY, err: verdict.errno });
      case "kill":
        session.summary.killed++;
        this.#doomed.add(proc.pid);
        return this.#write({ id: rec.id, action: ACT.KILL });
      case "rewrite": {
        session.summary.rewritten = (session.summary.rewritten ?? 0) + 1;
        // A path alone: the module runs the open on the new path; the registers stay as they are.
        const arg = verdict.arg >= 0 ? verdict.arg : 0;
        const value = verdict.arg >= 0 ? verdict.value : rec.args[0];
        return this.#write({ id: rec.id, action: ACT.REWRITE, arg, value, path: verdict.path });
      }
    }
  }

  #write(v: KmodVerdict): void {
    this.#lastWritten = v.id;
    const bytes = encodeVerdict(v);
    const n = Number(libc.symbols.write(this.fd, bytes, BigInt(bytes.length)));
    if (n < 0) {
      const e = errno();
      // ENOENT/ESRCH: the caller is gone (killed, timed out) — not an error.
      if (e !== 2 && e !== 3) this.#report(0, `writing the verdict for record ${v.id} failed: errno ${e}`);
    }
  }

  #event(
    rec: KmodRecord,
    proc: Proc,
    abi: SyscallAbi,
    name: string,
    phase: "pre" | "post",
    decoded: DecodedArgs,
  ): SyscallEvent {
    return {
      kind: "syscall",
      source: "kmod",
      phase,
      time: Number(rec.timeNs / 1_000_000n),
      pid: proc.pid,
      tid: rec.tid,
      abi,
      nr: rec.nr,
      syscall: name,
      args: Array.from(rec.args, String),
      decoded,
      program: proc.program,
    };
  }

  #report(pid: number, message: string): void {
    this.#sink.emit({
      kind: "fault",
      source: "kmod",
      time: Date.now(),
      pid,
      wrapper: "idwrap",
      message,
      program: this.#procs.get(pid)?.program ?? { exe: "", argv0: "", uid: -1, gid: -1 },
    });
  }
}
