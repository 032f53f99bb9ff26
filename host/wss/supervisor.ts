/**
 * The Wrapper Support Subsystem's supervisor: one, source-neutral, above a
 * thin {@link EventSource}. It owns the process table and sessions,
 * activation and bindings, the refusals every source applies (foreign ABIs,
 * io_uring, the source's tamper guard), argument reading as one explicit step
 * before the hooks run, the verdict pipeline, late kills, event building,
 * summaries and fault reports; every event goes to one EventSink (the audit
 * journal, the trace) before the call it describes is answered.
 *
 * The path of one call: source.poll() → call() → (refusals) → readArgs() as
 * the decider's readsArgs() asks → stillValid() → decider.decide() →
 * sink.emit() → source.answer().
 *
 * @module
 */
import { type Decider, describeVerdict, type EventSink } from "../decider.ts";
import { errnoName } from "../errno.ts";
import type { DecodedArgs, LifecycleEvent, ProgramIdentity, SyscallEvent, Verdict } from "../events.ts";
import { ALLOW } from "../events.ts";
import type { WrapperSpec } from "../policy/policy.ts";
import { i386SyscallName, syscallName, syscallNumber } from "../syscalls/mod.ts";
import { Bindings } from "./bindings.ts";
import { type Interest, lateCalls } from "./interest.ts";
import { readProgram, readTaskStatus } from "./procfs.ts";
import { hookWatch } from "../runtime/watchdog.ts";
import {
  foreignAbiRefusal,
  IO_URING_REFUSAL,
  type Refusal,
  TAMPER_ALERT,
  UNREFUSED_ALERT,
  unrefusedReason,
} from "./refusal.ts";
import type { ArgNeeds, EventSource, SourceCall, SourceHandler, SourceLifecycle, WatchChange } from "./source.ts";
import { newSummary, type ProcessEntry, type SupervisorSummary } from "./summary.ts";

const EPERM = 1, EFAULT = 14;

/** The alert on a call whose arguments a racing thread changed after the kernel side copied them for the decision. */
export const RACE_ALERT = "idwrap.argument-raced";

/** The session of processes wrapped system-wide (by activation at exec), not by `idwrap run`. */
export const SYSTEM_SESSION = 0x7fffffff;
const NO_PROGRAM: ProgramIdentity = Object.freeze({ exe: "", argv0: "", uid: -1, gid: -1 });

/** One wrapped tree. */
export interface Session {
  id: number;
  summary: SupervisorSummary;
  /** Its processes, by pid. */
  procs: Set<number>;
  /** The source said no task can make calls in it any more; it ends when its processes are gone. */
  closed: boolean;
  closedAt: number;
  /** It has had a process: it ends when it has none (sources that do not report `closed`). */
  seen: boolean;
}

interface Proc {
  pid: number;
  ppid: number;
  session: Session;
  program: ProgramIdentity;
}

/** How the WSS runs. */
export interface WssOptions {
  source: EventSource;
  decider: Decider;
  sink: EventSink;
  /** The enforcement's wrappers, in the decider's order: activation binds them to processes. */
  wrappers: readonly WrapperSpec[];
  /** What the policies and wrappers intercept (the calls only late watchers want are answered first). */
  interest: Interest;
  /** How often to look for processes gone without an exit report (a dropped record); 0: never. @default 0 */
  sweepMs?: number;
  /** Whether a process first seen by system-wide activation at its exec is wrapped: the source sees every process. */
  systemWide?: boolean;
  /** Reads a new process's program when the source does not give it. @default /proc */
  programOf?: (pid: number) => { ppid: number; program: ProgramIdentity } | undefined;
  /** Whether a process still exists (for the sweep). @default /proc/PID exists */
  alive?: (pid: number) => boolean;
}

/** What run() is told. */
export interface RunOptions {
  /**
   * Called when nothing happened for `idleMs` ("idle"), when woken ("woken"), and every `idleMs` while busy
   * ("busy"); it may be async (the thread's messages are handled while it waits), and should return at once when
   * busy with nothing to do.
   */
  idle?: (why: "idle" | "woken" | "busy") => Promise<void> | void;
  /** Called when a session's tree is gone. */
  onSessionEnd?: (session: Session) => void;
  /** Return once every session has ended. */
  untilIdle?: boolean;
  /** @default 100 */
  idleMs?: number;
}

/** The WSS over one event source. */
export class Wss implements SourceHandler {
  readonly #source: EventSource;
  readonly #sink: EventSink;
  readonly #bindings: Bindings;
  readonly #sweepMs: number;
  /** Processes found gone at the last sweep, still in the table: pid → the source's `caughtUp` then. */
  #goneAtSweep = new Map<number, number>();
  readonly #systemWide: boolean;
  readonly #programOf: NonNullable<WssOptions["programOf"]>;
  readonly #alive: NonNullable<WssOptions["alive"]>;
  #decider: Decider;
  #late: ReadonlySet<number>;
  readonly #procs = new Map<number, Proc>();
  readonly #sessions = new Map<number, Session>();
  readonly #system: Session = newSession(SYSTEM_SESSION);
  /** tid → the last pre event's decoded args, for a post call that carries none; `ran`: the source ran it (settle). */
  readonly #lastPre = new Map<number, { nr: number; decoded: DecodedArgs; ran?: SyscallEvent }>();
  /** Processes a late kill was sent to: their next waiting call gets kill. */
  readonly #doomed = new Set<number>();
  /** The waiting call being served and not yet answered. */
  #pending: SourceCall | undefined;
  #stopped = false;
  #lastSweep = 0;

  constructor(options: WssOptions) {
    this.#source = options.source;
    this.#decider = options.decider;
    this.#sink = options.sink;
    this.#bindings = new Bindings(options.wrappers);
    this.#late = lateCalls(options.interest);
    this.#sweepMs = options.sweepMs ?? 0;
    this.#systemWide = options.systemWide ?? false;
    this.#programOf = options.programOf ?? procProgram;
    this.#alive = options.alive ?? procAlive;
  }

  /** Starts serving a wrapped tree through the source (seccomp: a listener fd; kmod: the launcher's pid). */
  attach(id: number, handle: number): Session {
    const session = newSession(id);
    this.#sessions.set(id, session);
    Object.assign(session.summary, this.#source.attach(id, handle));
    return session;
  }

  /** A policy reload: calls already answered are not revisited; processes are bound afresh at their next exec. */
  reload(decider: Decider, wrappers: readonly WrapperSpec[], interest: Interest): void {
    this.#source.setInterest(interest);
    this.#decider = decider;
    this.#bindings.setSpecs(wrappers);
    this.#late = lateCalls(interest);
    for (const proc of this.#procs.values()) {
      this.#decider.bind(
        proc.pid,
        this.#bindings.bind(proc.pid, proc.ppid, proc.program),
        proc.session.summary.hooks,
        this.#bindings.facts(proc.pid),
      );
    }
  }

  /** Makes run() return once it is woken. */
  stop(): void {
    this.#stopped = true;
  }

  /** The wrapped processes: the process table, with the wrappers bound to each. */
  processes(): ProcessEntry[] {
    return [...this.#procs.values()].map((p) => ({
      pid: p.pid,
      ppid: p.ppid,
      session: p.session.id,
      program: p.program,
      wrappers: this.#decider.bindings(p.pid),
    }));
  }

  /** Releases the source: calls still waiting get its fail mode. */
  close(): void {
    this.#source.close();
  }

  /** Serves the source until stop() (or, with `untilIdle`, until every session has ended); may be called again. */
  async run(options: RunOptions = {}): Promise<void> {
    this.#stopped = false;
    const idleMs = options.idleMs ?? 100;
    let lastIdle = performance.now();
    while (!this.#stopped && !(options.untilIdle && this.#sessions.size === 0)) {
      const { served, woken } = this.#source.poll(idleMs, this);
      const now = performance.now();
      if (this.#sweepMs && now - this.#lastSweep > this.#sweepMs) {
        this.#lastSweep = now;
        this.#sweep();
      }
      this.#endSessions(options.onSessionEnd);
      if (served === 0 || woken || now - lastIdle > idleMs) {
        this.#sink.flush();
        this.#decider.idle();
        const pending = options.idle?.(served === 0 ? "idle" : woken ? "woken" : "busy");
        if (pending) await pending;
        lastIdle = performance.now();
      }
    }
    this.#sink.flush();
  }

  // ---- SourceHandler: what the source hands over while it polls ----

  /** One call. A bug while serving it fails the call (closed) and is reported; the rest goes on. */
  call(call: SourceCall): void {
    this.#pending = call.waits ? call : undefined;
    try {
      this.#serve(call);
    } catch (e) {
      if (this.#pending) this.#source.answer(this.#pending, { action: "deny", errno: EPERM });
      this.fault(call.pid, `internal error while serving a call (failed closed): ${(e as Error).stack ?? e}`);
    } finally {
      this.#pending = undefined;
      this.#handFilters();
    }
  }

  /** Hands the window filters instances published (ABI 1.4) to the source. */
  #handFilters(): void {
    const filters = this.#decider.filters();
    for (let i = 0; i < filters.length; i++) this.#source.publishFilter?.(filters[i]);
  }

  lifecycle(event: SourceLifecycle): void {
    try {
      this.#lifecycleOf(event);
    } finally {
      this.#handFilters();
    }
  }

  #lifecycleOf(event: SourceLifecycle): void {
    switch (event.kind) {
      case "fork": {
        if (this.#procs.has(event.pid)) return;
        const parent = this.#procs.get(event.ppid);
        if (!parent && event.session === undefined && !event.watched) return; // not ours
        const session = event.session !== undefined
          ? this.#sessions.get(event.session) ?? this.#system
          : this.#sessionOf(parent);
        // A fork runs its parent's program until it execs.
        this.#track(event.pid, event.ppid, session, event.program ?? (parent ? { ...parent.program } : undefined));
        return;
      }
      case "exec":
        return this.#exec(event);
      case "exit":
        return this.#exit(event.pid, event.status);
      case "lost":
        this.#system.summary.lost = (this.#system.summary.lost ?? 0) + event.count;
        for (const s of this.#sessions.values()) s.summary.lost = (s.summary.lost ?? 0) + event.count;
        this.fault(0, `the source dropped ${event.count} observed calls (its ring was full)`);
        return;
      case "closed": {
        const session = this.#sessions.get(event.session);
        if (session && !session.closed) {
          session.closed = true;
          session.closedAt = performance.now();
        }
        return;
      }
    }
  }

  /** A fault of the host itself (not of a wrapper), reported like a wrapper's. */
  fault(pid: number, message: string): void {
    this.#sink.emit({
      kind: "fault",
      source: this.#source.capabilities.name,
      time: Date.now(),
      pid,
      wrapper: "idwrap",
      message,
      program: this.#procs.get(pid)?.program ?? NO_PROGRAM,
    });
  }

  // ---- the verdict pipeline ----

  #serve(call: SourceCall): void {
    const proc = this.#procs.get(call.pid) ??
      this.#track(
        call.pid,
        call.ppid,
        this.#sessionOf(call.ppid === undefined ? undefined : this.#procs.get(call.ppid)),
      );
    // A post call the source made of a call it ran itself (settle) is the same notification.
    const ranHere = call.phase === "post" && call.emulated && this.#lastPre.get(call.tid)?.ran?.nr === call.nr;
    if (!ranHere) {
      proc.session.summary.notifications++;
      hookWatch.notified(); // the daemon's metrics, live
    }

    if (call.abi !== "x86_64") {
      const name = call.abi === "i386" ? i386SyscallName(call.nr) : syscallName(call.nr);
      // Observed, and not refused by the kernel side (kmod reports its own ENOSYS as refusedErrno): it ran.
      if (!call.waits && call.refusedErrno === undefined) return this.#observedForeign(call, proc, name);
      const refusal = foreignAbiRefusal(call.abi);
      return this.#refuse(call, proc, name, {}, { action: "deny", errno: refusal.errno }, refusal.reason);
    }
    const name = syscallName(call.nr);
    if (call.raced) return this.#raced(call, proc, name, call.raced);
    if (call.refusedErrno !== undefined && call.tamper) {
      return this.#refuseTamper(call, proc, name, call.tamper, this.#source.readArgs(call, name, "memory"));
    }
    if (call.refusedErrno !== undefined) {
      // The kernel side refused it itself (the module's io_uring_setup): reported, answered the same.
      const reason = name === "io_uring_setup" ? IO_URING_REFUSAL.reason : "refused by the source";
      const verdict: Verdict = { action: "deny", errno: call.refusedErrno || EPERM };
      return this.#refuse(call, proc, name, this.#source.readArgs(call, name, "memory"), verdict, reason, false);
    }
    if (call.phase === "post") return this.#post(call, proc, name);
    if (call.killedInKernel) return this.#killedAtCall(call, proc, name, call.killedInKernel);
    if (name === "io_uring_setup" && !call.waits) {
      // Observed only (bpf): it ran. Alerted as what it is, never recorded as refused (rt9 F2).
      const event = this.#event(call, proc, name, this.#source.readArgs(call, name, "registers"));
      event.alerts = [UNREFUSED_ALERT];
      event.reason = unrefusedReason(name, call.abi);
      return this.#sink.emit(event);
    }
    if (name === "io_uring_setup") {
      const verdict: Verdict = { action: "deny", errno: IO_URING_REFUSAL.errno };
      return this.#refuse(call, proc, name, {}, verdict, IO_URING_REFUSAL.reason);
    }
    const refusal = call.waits ? this.#source.refusal(call, name) : undefined;
    if (refusal) return this.#refuseTamper(call, proc, name, refusal, this.#source.readArgs(call, name, "registers"));

    const pid = proc.pid;
    const examined = this.#decider.examines(call.nr, pid);
    // Only late watchers want it: the caller goes on at once, as under an observe-only source; a kill lands late.
    // Not where the output wants a result the source gets only by holding the call (seccomp's emulated opens).
    const late = call.waits && this.#late.has(call.nr) && !(this.#sink.wantsSyscalls && this.#heldForResult(call.nr));
    // The hot path: nothing examines, reports or waits for the call's result, and the guard needs no object of it.
    const guarded = call.waits && this.#source.guardsObject?.(call) === true;
    if (!examined && !guarded && !this.#sink.wantsSyscalls && !late && !this.#decider.examinesPost(call.nr, pid)) {
      return this.#answer(call, proc, this.#doomed.has(pid) ? { action: "kill" } : ALLOW);
    }
    const wantsPost = this.#decider.examinesPost(call.nr, pid);
    const waits = call.waits && !late;

    // The one argument-reading step, before any hook runs: what the decider says its hooks read, all of it for the
    // sink; the registers alone (no read of the caller's memory) for hooks that judge the call number (seq).
    const reads = this.#decider.readsArgs(call.nr, pid);
    let needs: ArgNeeds = this.#sink.wantsSyscalls || (reads && !late) ? "memory" : "registers";
    let decoded = this.#read(call, name, needs, proc);
    if (decoded === undefined) return; // the caller is gone: nothing to answer
    // The guard again, on the objects the call names now that they are read (an open of the supervisor's /proc).
    const named = this.#pending === call ? this.#source.refusal(call, name, decoded) : undefined;
    if (named) return this.#refuseTamper(call, proc, name, named, decoded);
    if (late) {
      this.#answer(call, proc, ALLOW);
      // Read after the answer, for hooks that look at a call they only watch (the bytes may have changed since).
      if (reads && needs === "registers") {
        decoded = this.#read(call, name, needs = "memory", proc)!;
      }
    }
    const event = this.#event(call, proc, name, decoded);
    let verdict = examined ? this.#decider.decide(event) : ALLOW;
    if (needs === "registers" && waits && (verdict.action !== "allow" || event.alerts?.length)) {
      // A denied or flagged call's record goes to audit with its arguments: read them while they are the caller's.
      decoded = this.#read(call, name, "memory", proc);
      if (decoded === undefined) return;
      event.decoded = { ...decoded, ...event.decoded };
    }
    // Unreadable now is no proof of unreadable when the kernel reads: never let an examined call run unchecked.
    if (event.decoded.fault && verdict.action === "allow" && waits && examined && needs === "memory") {
      verdict = { action: "deny", errno: EFAULT };
    }
    if (wantsPost || this.#sink.wantsSyscalls) this.#lastPre.set(call.tid, { nr: call.nr, decoded: event.decoded });
    if (this.#doomed.has(pid)) verdict = { action: "kill" };
    if (waits) {
      const settled = this.#source.settle(call, event, verdict, { examined, wantsPost });
      if (settled.verdict !== verdict) {
        verdict = settled.verdict;
        if (settled.reason) event.reason = settled.reason;
      }
      if (settled.emulated) {
        event.emulated = true;
        // Its post call (the result) stands for the call in text output: it carries the pre event's alerts and reason.
        this.#lastPre.set(call.tid, { nr: call.nr, decoded: event.decoded, ran: event });
      }
      event.verdict = describeVerdict(verdict);
      // The source runs an allowed call itself (emulated); a refused one it does not run at all.
      if (verdict.action !== "allow" && verdict.action !== "rewrite") event.emulated = undefined;
      // Journaled before the answer (host/audit/journal_sink.ts): SIGKILL of idwrap after the caller saw its
      // verdict cannot lose the record; a record that cannot be journaled throws, and the call fails closed.
      this.#sink.emit(event);
      if (event.emulated) proc.session.summary.emulated++; // counted once it is sure to run

      return this.#answer(call, proc, verdict);
    }
    if ((verdict.action === "kill" || verdict.action === "deny") && this.#source.killedInKernel?.(event)) {
      // The kernel kills it if the exec runs, and that is reported with the exec (rt8 M3: not twice, not as late).
      event.alerts!.pop();
      if (!event.alerts!.length) delete event.alerts;
      delete event.verdict;
      this.#sink.emit(event);
      return;
    }
    if (verdict.action === "kill") {
      // Observed only: the call has run on; the process does not get further.
      event.verdict = "kill";
      event.reason = "late kill (the call was only observed)";
      this.#sink.emit(event);
      return this.#lateKill(proc);
    }
    if (verdict.action !== "allow") {
      event.verdict = describeVerdict(verdict);
      event.reason = `${describeVerdict(verdict)} not enforced: the call was only observed`;
    }
    this.#sink.emit(event);
  }

  /**
   * An i386 or x32 call a source only observed (bpf): it ran, it was not refused. Reported as such with its copied
   * arguments, and judged by the rules as the x86_64 call of the same name where there is one (an i386 open of an
   * alerted file is alerted); a kill lands late. A post record carries its result only (rt9 F2).
   */
  #observedForeign(call: SourceCall, proc: Proc, name: string): void {
    const decoded = this.#source.readArgs(call, name, "memory");
    const event = this.#event(call, proc, name, decoded);
    if (call.phase === "post") {
      const ret = Number(call.ret ?? 0n);
      const failed = ret < 0 && ret >= -4095;
      event.ret = failed ? -1 : ret;
      if (failed) event.errno = errnoName(-ret);
      const nr = syscallNumber(name);
      if (nr !== undefined) {
        // Rules that fire on success (`when: success`) settle on the result, under the x86_64 number they matched.
        const judged: SyscallEvent = { ...event, nr, abi: "x86_64" };
        this.#decider.observe(judged);
        if (judged.alerts?.length) event.alerts = [...judged.alerts];
      }
      return this.#sink.emit(event);
    }
    const nr = syscallNumber(name);
    const examined = nr !== undefined && this.#decider.examines(nr, proc.pid);
    let verdict: Verdict = ALLOW;
    if (examined) {
      // The decider knows x86_64 numbers: it judges the same call under its x86_64 number, and the record keeps the
      // call as made.
      const judged: SyscallEvent = { ...event, nr, abi: "x86_64" };
      verdict = this.#decider.decide(judged);
      if (judged.alerts?.length) event.alerts = [...judged.alerts];
    }
    event.alerts = [...(event.alerts ?? []), UNREFUSED_ALERT];
    event.reason = unrefusedReason(name, call.abi, examined ? name : undefined);
    if (verdict.action === "kill") {
      event.verdict = "kill";
      event.reason += "; late kill (the call was only observed)";
      this.#sink.emit(event);
      return this.#lateKill(proc);
    }
    this.#sink.emit(event);
  }

  /** The source can give this call's result only by holding it (it runs the call itself: seccomp's opens). */
  #heldForResult(nr: number): boolean {
    const caps = this.#source.capabilities;
    return !caps.observeWithoutBlocking && caps.post !== "all" && caps.post.has(nr);
  }

  /** A post call: its result, to the post hooks; only a kill acts (late unless the caller waits). */
  #post(call: SourceCall, proc: Proc, name: string): void {
    const last = this.#lastPre.get(call.tid);
    this.#lastPre.delete(call.tid);
    // A post call's copies are made after the call (execve's are of the old image): the pre copies are what ran.
    const decoded = last?.nr === call.nr ? { ...last.decoded } : this.#source.readArgs(call, name, "memory");
    const event = this.#event(call, proc, name, decoded);
    event.phase = "post";
    const ran = last?.nr === call.nr && call.emulated ? last.ran : undefined;
    if (ran?.alerts) event.alerts = [...ran.alerts];
    if (ran?.reason) event.reason = ran.reason;
    const ret = Number(call.ret ?? 0n);
    const failed = ret < 0 && ret >= -4095;
    event.ret = failed ? -1 : ret;
    if (failed) event.errno = errnoName(-ret);
    const verdict = this.#decider.observe(event);
    const kill = verdict.action === "kill" || this.#doomed.has(proc.pid);
    if (verdict.action === "kill") {
      event.verdict = "kill";
      if (!call.waits) event.reason = "late kill (the call was only observed)";
    }
    this.#sink.emit(event); // journaled before the answer
    if (call.waits) this.#answer(call, proc, kill ? { action: "kill" } : ALLOW);
    else if (verdict.action === "kill") this.#lateKill(proc);
  }

  /** Reads the call's arguments; undefined when the caller is gone since (a waiting call then gets no answer). */
  #read(call: SourceCall, name: string, needs: ArgNeeds, proc: Proc): DecodedArgs | undefined {
    const decoded = this.#source.readArgs(call, name, needs);
    // Still the caller's while it waits: a recycled pid or a dead caller means the bytes are someone else's.
    if (needs === "memory" && this.#pending === call && !this.#source.stillValid(call)) {
      this.#pending = undefined;
      this.#doomed.delete(proc.pid);
      return undefined;
    }
    return decoded;
  }

  /** A call the WSS refuses whatever the policy says: reported, then answered. */
  #refuse(
    call: SourceCall,
    proc: Proc,
    name: string,
    decoded: DecodedArgs,
    verdict: Verdict,
    reason: string,
    count = true,
  ): void {
    const event = this.#event(call, proc, name, decoded);
    event.verdict = describeVerdict(verdict);
    event.reason = reason;
    event.emulated = undefined;
    this.#sink.emit(event); // journaled before the answer
    if (call.waits) count ? this.#answer(call, proc, verdict) : this.#source.answer(call, verdict);
  }

  /**
   * A call whose argument a racing thread changed after the kernel side copied it: the kernel ran it on the copy
   * decided on (or refused it). Not the call's post record (that one follows, if asked for): an alert of its own.
   */
  #raced(call: SourceCall, proc: Proc, name: string, raced: { said: string; ranOn: string }): void {
    const event = this.#event(call, proc, name, this.#source.readArgs(call, name, "registers"));
    if (call.refusedErrno !== undefined) {
      event.verdict = describeVerdict({ action: "deny", errno: call.refusedErrno || EPERM });
      const what = name === "connect" || name === "bind" ? "the sockaddr" : "the argument";
      event.reason = `raced: ${what} changed after the decision; refused`;
    } else {
      event.reason = `raced: the argument changed after the decision (the caller's memory then said ${
        JSON.stringify(raced.said)
      }); the call ran on ${JSON.stringify(raced.ranOn)}`;
    }
    event.emulated = undefined;
    event.alerts = [RACE_ALERT];
    this.#sink.emit(event);
  }

  /** A call that reaches the supervisor itself (or could): refused, and always reported (alerted unless quiet). */
  #refuseTamper(call: SourceCall, proc: Proc, name: string, refusal: Refusal, decoded: DecodedArgs): void {
    const verdict: Verdict = { action: "deny", errno: refusal.errno ?? EPERM };
    const event = this.#event(call, proc, name, decoded);
    event.verdict = describeVerdict(verdict);
    event.reason = `${refusal.reason} (${refusal.technique})`;
    event.emulated = undefined;
    if (!refusal.quiet) event.alerts = [refusal.alert ?? TAMPER_ALERT];
    this.#sink.emit(event); // journaled before the answer
    this.#answer(call, proc, verdict);
  }

  /** Answers a waiting call through the source, counting the verdict. */
  #answer(call: SourceCall, proc: Proc, verdict: Verdict, watch?: WatchChange): void {
    if (!call.waits || this.#pending !== call) return;
    this.#pending = undefined;
    const summary = proc.session.summary;
    if (verdict.action === "deny") summary.denied++;
    else if (verdict.action === "kill") {
      summary.killed++;
      this.#doomed.add(proc.pid);
    } else if (verdict.action === "rewrite") summary.rewritten = (summary.rewritten ?? 0) + 1;
    this.#source.answer(call, verdict, watch);
  }

  // ---- the process table ----

  #sessionOf(proc: Proc | undefined): Session {
    return proc?.session ?? this.#system;
  }

  /** Adds a process to the table (its program from /proc unless given), binds its wrappers, reports its spawn. */
  #track(pid: number, ppid: number | undefined, session: Session, program?: ProgramIdentity): Proc {
    const known = program && ppid !== undefined ? undefined : this.#programOf(pid);
    const proc: Proc = {
      pid,
      ppid: ppid ?? known?.ppid ?? 0,
      session,
      program: program ?? known?.program ?? { ...NO_PROGRAM },
    };
    this.#procs.set(pid, proc);
    session.procs.add(pid);
    session.seen = true;
    this.#decider.bind(
      pid,
      this.#bindings.bind(pid, proc.ppid, proc.program),
      session.summary.hooks,
      this.#bindings.facts(pid),
    );
    this.#lifecycle({
      kind: "spawn",
      source: this.#source.capabilities.name,
      time: Date.now(),
      pid,
      ppid: proc.ppid,
      session: session.id,
      program: proc.program,
    }, proc);
    return proc;
  }

  #exec(event: Extract<SourceLifecycle, { kind: "exec" }>): void {
    let proc = this.#procs.get(event.pid);
    const call = event.call;
    const program = event.program ?? this.#programOf(event.pid)?.program ?? { ...NO_PROGRAM };
    this.#pending = call;
    try {
      if (!proc) {
        if (!event.watched && !(event.candidate && this.#systemWide && call)) return this.#release(call);
        if (event.candidate) {
          // System-wide activation: wrap the new program only if some wrapper's criteria bind it.
          const bound = this.#bindings.bind(event.pid, event.ppid, program);
          if (!bound.size) {
            this.#bindings.forget(event.pid);
            return this.#release(call);
          }
          proc = this.#track(event.pid, event.ppid, this.#system, program);
          this.#lifecycle({ kind: "exec", source: this.#name, time: Date.now(), pid: event.pid, program }, proc);
          return this.#answer(call!, proc, ALLOW, "watch");
        }
        proc = this.#track(event.pid, event.ppid, this.#sessionOf(this.#procs.get(event.ppid ?? -1)));
      }
      if (event.decidedOn) this.#decideAgain(proc, program, event.decidedOn);
      if (event.killedInKernel) this.#killedAtExec(proc, program, event.killedInKernel);
      proc.program = program;
      this.#decider.bind(
        proc.pid,
        this.#bindings.bind(proc.pid, undefined, program),
        proc.session.summary.hooks,
        this.#bindings.facts(proc.pid),
      );
      const verdict = this.#lifecycle(
        { kind: "exec", source: this.#name, time: Date.now(), pid: proc.pid, program },
        proc,
        !call,
      );
      if (!call) return;
      // Deactivated by the new program: no wrapper left, stop intercepting it.
      const unwatch = proc.session === this.#system && this.#systemWide && !this.#decider.bindings(proc.pid).length;
      this.#answer(call, proc, verdict.action === "kill" ? verdict : ALLOW, unwatch ? "unwatch" : undefined);
      if (unwatch) this.#forget(proc);
    } finally {
      this.#pending = undefined;
    }
  }

  /**
   * The kernel ran another file than the one the exec was allowed on (a thread changed the path after the check): the
   * decision is made again on the file that runs, and a refusal kills the process before it gets further
   * (docs/seccomp.md, "exec").
   */
  #decideAgain(proc: Proc, program: ProgramIdentity, on: { path: string; nr: number; ident: string }): void {
    const event = this.#execEvent(proc, program, on.nr, { path: program.exe, rawPath: on.path, ident: on.ident });
    if (this.#decider.decide(event).action === "allow") return;
    this.#lateKill(proc);
    event.verdict = "kill";
    event.reason =
      `exec raced: decided on ${on.path}, the kernel ran ${program.exe}; killed at its first notified call`;
    this.#sink.emit(event);
  }

  /** The kernel side killed the process at its exec (a rule it enforces alone): the kill is reported as the rule's. */
  #killedAtExec(proc: Proc, program: ProgramIdentity, killed: { rule: string; reason: string }): void {
    this.#killedInKernel(proc, this.#execEvent(proc, program, syscallNumber("execve")!, { path: program.exe }), killed);
  }

  /** A call the kernel side killed the caller at for an exec rule (bpf: an executable mapping of the program). */
  #killedAtCall(call: SourceCall, proc: Proc, name: string, killed: { rule: string; reason: string }): void {
    const event = this.#event(call, proc, name, this.#source.readArgs(call, name, "registers"));
    this.#killedInKernel(proc, event, killed);
  }

  /** Reports a kill the kernel side made for a rule, as that rule's, and counts it once per process. */
  #killedInKernel(proc: Proc, event: SyscallEvent, killed: { rule: string; reason: string }): void {
    event.verdict = "kill";
    event.reason = killed.reason;
    event.alerts = [killed.rule];
    if (!this.#doomed.has(proc.pid)) proc.session.summary.killed++;
    this.#doomed.add(proc.pid);
    this.#sink.emit(event);
  }

  /** An exec's event made from the process's lifecycle record (no registers): what the WSS reports of it afterwards. */
  #execEvent(proc: Proc, program: ProgramIdentity, nr: number, decoded: SyscallEvent["decoded"]): SyscallEvent {
    return {
      kind: "syscall",
      source: this.#name,
      phase: "pre",
      time: Date.now(),
      pid: proc.pid,
      tid: proc.pid,
      abi: "x86_64",
      nr,
      syscall: syscallName(nr),
      args: [],
      decoded,
      program,
    };
  }

  /** Lets a held exec go on without the WSS taking the process. */
  #release(call: SourceCall | undefined): void {
    if (call) this.#source.answer(call, ALLOW);
    this.#pending = undefined;
  }

  get #name() {
    return this.#source.capabilities.name;
  }

  /** Reports a lifecycle event to the sink and the decider; a kill verdict is carried out at once unless held. */
  #lifecycle(event: LifecycleEvent, proc: Proc, killNow = true): Verdict {
    // An exec is observed first: the rules it fires (`when: success` on the exec) are recorded on it.
    if (event.kind !== "exec") this.#sink.emit(event);
    const verdict = this.#decider.observe(event);
    if (event.kind === "exec") this.#sink.emit(event);
    if (verdict.action === "kill" && killNow && event.kind !== "exit") this.#lateKill(proc);
    return verdict;
  }

  #lateKill(proc: Proc): void {
    proc.session.summary.killed++;
    this.#doomed.add(proc.pid);
    this.#source.kill(proc.pid);
  }

  #exit(pid: number, status?: number): void {
    const proc = this.#procs.get(pid);
    if (!proc) return;
    this.#forget(proc);
    this.#lifecycle(
      {
        kind: "exit",
        source: this.#name,
        time: Date.now(),
        pid,
        program: proc.program,
        ...(status === undefined ? {} : waitStatus(status)),
      },
      proc,
    );
  }

  /** Drops a process from the table (and its session). */
  #forget(proc: Proc): void {
    this.#procs.delete(proc.pid);
    proc.session.procs.delete(proc.pid);
    this.#doomed.delete(proc.pid);
    this.#bindings.forget(proc.pid);
    for (const [tid] of this.#lastPre) if (tid === proc.pid) this.#lastPre.delete(tid);
    this.#source.forget(proc.pid);
  }

  /** Processes gone without an exit report (a dropped one): reported as exited. */
  #sweep(): void {
    // Gone at two sweeps in a row: a source that reports after the fact may still hold the last records of a process
    // that has just exited, and its exit record after them. One that counts its catch-ups (bpf) must also have read
    // everything it held when the process was first seen gone: a host seconds behind the tree would otherwise end
    // the process, then its session, with its last records unread (rt9 F7). Its exit status is unknown then.
    const caughtUp = this.#source.caughtUp;
    const gone = new Map<number, number>();
    for (const pid of this.#procs.keys()) {
      if (this.#alive(pid)) continue;
      const seen = this.#goneAtSweep.get(pid);
      if (seen !== undefined && (caughtUp === undefined || caughtUp > seen)) this.#exit(pid);
      else gone.set(pid, seen ?? caughtUp ?? 0);
    }
    this.#goneAtSweep = gone;
  }

  /**
   * Ends sessions whose trees are gone: closed ones when their processes are (or after a second, for processes
   * never seen to exit), others when the processes they had are.
   */
  #endSessions(onEnd?: (session: Session) => void): void {
    for (const session of this.#sessions.values()) {
      if (session.closed) {
        if (session.procs.size && performance.now() - session.closedAt < 1000) continue;
      } else if (!session.seen || session.procs.size || this.#source.closesSessions) continue;
      for (const pid of [...session.procs]) this.#exit(pid); // never seen to exit: not ours to wait for
      this.#source.reportUncarried?.(this); // every drop in its summary, even one no record carried yet
      this.#sessions.delete(session.id);
      this.#source.detach(session.id);
      onEnd?.(session);
    }
  }

  #event(call: SourceCall, proc: Proc, name: string, decoded: DecodedArgs): SyscallEvent {
    const event: SyscallEvent = {
      kind: "syscall",
      source: this.#name,
      phase: call.phase,
      time: call.time,
      pid: proc.pid,
      tid: call.tid,
      abi: call.abi,
      nr: call.nr,
      syscall: name,
      args: Array.from(call.args, String),
      decoded,
      program: proc.program,
    };
    if (call.emulated) event.emulated = true;
    if (call.window) event.window = call.window;
    return event;
  }
}

function newSession(id: number): Session {
  return { id, summary: newSummary(), procs: new Set(), closed: false, closedAt: 0, seen: false };
}

function procProgram(pid: number): { ppid: number; program: ProgramIdentity } | undefined {
  const status = readTaskStatus(pid);
  return status && { ppid: status.ppid, program: readProgram(pid, status) };
}

function procAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
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
