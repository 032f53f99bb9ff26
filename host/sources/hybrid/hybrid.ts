/**
 * The hybrid source (issue 15; docs/bpf.md, "The hybrid"): one WSS fed by two
 * transports on one process tree. Calls a rule or wrapper may deny, kill before
 * they run or rewrite are held on seccomp user-notify (host/sources/seccomp);
 * calls that are only observed come through the bpf ring (./transport.ts) and
 * never wait.
 *
 * Each call is seen once: the interest is split (host/wss/interest.ts,
 * splitInterest) and the two parts compiled apart — the filter notifies the
 * decided part, the bpf interest map holds the observed part with no enter for
 * a notified call. Two records can still stand for a notified call: its
 * `sys_enter` record when the filter notified it by an argument check and let
 * it run (the tamper guard's checks on calls the policy observes), and its
 * `sys_exit` record when it did not run (denied, killed) or the seccomp
 * transport already gave its result (an emulated open). The kernel runs seccomp
 * before the `sys_enter` tracepoint and the caller waits for its answer, so
 * that record is the thread's very next one of that kind: it is dropped by a
 * per-thread marker set when the call is answered. Calls of a foreign ABI (i386, x32) are always notified and
 * refused on seccomp: the ring's reports of them are dropped.
 *
 * Order: before anything from seccomp reaches the WSS, the ring is drained, so
 * every record a thread made before a notified call is served before it.
 * Lifecycle (fork, exec, exit) comes from the ring's records; the seccomp
 * transport's own reports are dropped except a fork (a pid the ring already
 * reported is ignored by the WSS), an exec it re-decides (`decidedOn`) and its
 * `closed` (the filter has no users left: the session ends).
 *
 * @module
 */
import type { DecodedArgs, SyscallEvent, Verdict } from "../../events.ts";
import { OPEN_SYSCALLS, resolveSyscalls, syscallName } from "../../syscalls/mod.ts";
import { TargetMemory } from "../../unsafe/memory.ts";
import { decodeArgs, memoryReader } from "../../wss/decode.ts";
import type { CallInterest, Interest } from "../../wss/interest.ts";
import { type ArgPredicate, writeOpenPredicate } from "../../policy/predicates.ts";
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
  SourceLifecycle,
  WatchChange,
} from "../../wss/source.ts";
import type { SupervisorSummary } from "../../wss/summary.ts";
import { HYBRID_CAPABILITIES } from "../capabilities.ts";
import type { ArgumentCheck } from "../seccomp/filter.ts";
import { compileNotify, compileNotifySet, type NotifyPlan } from "../seccomp/source.ts";
import { SeccompSource } from "../seccomp/transport.ts";
import { interestFor } from "../bpf/interest.ts";
import type { InterestEntry } from "../bpf/layout.ts";
import { BpfTransport } from "../bpf/transport.ts";
import type { BpfTracerOptions } from "../bpf/tracer.ts";

/** The interest compiled for each transport. */
export interface HybridPlan {
  /** x86_64 calls the seccomp filter may notify (before its argument checks: `filter`, and the guard's). */
  notify: Set<number>;
  /** The filter's plan: `notify` split into calls notified whatever their arguments and the rules' checks. */
  filter: NotifyPlan;
  /** The bpf interest map: observed calls in their phases; of notified calls, the exit only (their result). */
  ring: Map<number, InterestEntry>;
  /** Of HELD_EXITS, those the WSS has no interest in: answered here, once the ring is drained. */
  quietExits: Set<number>;
}

/**
 * exit and exit_group are always held, so that a thread's records still in the ring are served while it exists: a
 * wrapper's wr_stat and wr_fstat (/proc/PID/root, fd/) and the program read when a record is served need it there,
 * and a kill decided on an observed call (seq, Com_id) lands before the process ends by itself. One round trip per
 * thread's end.
 */
const HELD_EXITS = resolveSyscalls(["exit", "exit_group"]);

/** The calls whose result the seccomp transport hands over itself when it runs them (an emulated open). */
const RESULT_FROM_SECCOMP = resolveSyscalls([...OPEN_SYSCALLS, "open_by_handle_at"]);

/** The open family: held on seccomp whenever the interest names them, so the tamper guard sees each one. */
const GUARDED_OPENS = resolveSyscalls([...OPEN_SYSCALLS, "open_by_handle_at"]);

/**
 * Splits an interest between the two transports.
 *
 * A call decided only when a predicate holds (`decideWhen`: a rule's integer conditions, a wrapper's DECLARE_WRITES on
 * an open) is held only then: the filter checks the predicate, and the ring observes the same call's other instances
 * (its enter record of a held instance is dropped as a duplicate, see the module comment). Every open the interest names
 * is held for the tamper guard (it checks opens of `/proc/<supervisor>/…` only on notified calls, as on the seccomp
 * source) — whole, unless the kernel keeps the tree out of the supervisor's ptrace-checked entries (`guardedByKernel`:
 * the launcher's Landlock domain, ./landlock.ts); then only the opens that may write are held for it.
 *
 * @param interest the WSS's interest, with the tamper guard's `always` calls (they are decided)
 * @param emulateOpens the seccomp transport runs allowed opens itself (the credential calls are then notified too)
 * @param guardedByKernel the tree runs in the launcher's Landlock domain (read-only opens need not be held)
 */
export function compileHybrid(interest: Interest, emulateOpens: boolean, guardedByKernel = false): HybridPlan {
  const calls = new Map<number, CallInterest>();
  for (const [nr, c] of interest.calls) {
    const decides = c.pre === "decide" || c.post === "decide";
    const guarded = GUARDED_OPENS.has(nr);
    if (!decides && !guarded) continue;
    let when: ArgPredicate[] | undefined = decides ? c.decideWhen : [];
    if (guarded) {
      // An open whose result something examines stays whole: held (and emulated), its result is handed over while the
      // caller waits, so a hook that looks at the new fd (wr_fstat) sees the file it opened, not a later one.
      // Only a wrapper's post hook counts (resultExamined), not the output's wish for every result (--verbose): the
      // launcher compiles its filter without that wish, and both compilations must hold the same opens.
      const forGuard = guardedByKernel && !c.resultExamined ? writeOpenPredicate(nr) : undefined;
      when = when === undefined || forGuard === undefined ? undefined : [...when, ...forGuard];
    }
    // A call decided whatever its arguments keeps what the interest wants of it (`when`: only rules narrow that).
    calls.set(nr, { ...c, when: when ?? c.when });
  }
  const decided: Interest = { calls, failClosed: interest.failClosed };
  const filter = compileNotify(decided, emulateOpens);
  // A call with predicates is held when one holds; when none does, no rule can match it: the ring needs it no more.
  const notify = compileNotifySet(decided, emulateOpens);
  const quietExits = new Set<number>();
  for (const nr of HELD_EXITS) {
    if (!notify.has(nr) && !interest.calls.has(nr)) quietExits.add(nr);
    notify.add(nr);
    filter.always.add(nr);
    filter.checks = filter.checks.filter((c) => c.nr !== nr);
  }
  const ring = new Map<number, InterestEntry>();
  for (const [nr, c] of interest.calls) {
    // A call held whatever its arguments: its pre comes from seccomp; its post (the result) from the ring's exit record.
    // Of a call held by its arguments, the ring reports the instances the filter let run (the held ones' are dropped),
    // unless nothing wants those: every predicate the call is wanted under is one it is held under.
    const held = calls.get(nr)?.when;
    const allHeld = c.when !== undefined && held !== undefined &&
      c.when.every((p) => held.some((h) => samePredicate(p, h)));
    const enter = !filter.always.has(nr) && c.pre !== undefined && !allHeld;
    const exit = c.post !== undefined;
    if (enter || exit) ring.set(nr, interestFor(syscallName(nr), { enter, exit }));
  }
  return { notify, filter, ring, quietExits };
}

const predicateKey = (p: ArgPredicate | ArgumentCheck) =>
  JSON.stringify(p, (_, v) => typeof v === "bigint" ? `${v}n` : v);
const samePredicate = (a: ArgPredicate, b: ArgPredicate) => predicateKey(a) === predicateKey(b);

/**
 * Whether the installed filter's plan notifies call `nr` whenever the new plan would: always, or the same checks as
 * written (a check the installed ones only imply is refused: conservative).
 */
export function filterCovers(installed: NotifyPlan, wanted: NotifyPlan, nr: number): boolean {
  if (installed.always.has(nr)) return true;
  if (wanted.always.has(nr)) return false;
  const have = new Set(installed.checks.filter((c) => c.nr === nr).map(predicateKey));
  return wanted.checks.filter((c) => c.nr === nr).every((c) => have.has(predicateKey(c)));
}

/** How the hybrid transport loads. */
export interface HybridTransportOptions extends BpfTracerOptions {
  interest: Interest;
  /** @default true */
  emulateOpens?: boolean;
  /** idwrap-holder's socket: told the seccomp listeners' latest notification ids (../seccomp/transport.ts). */
  holderFd?: number;
  /** idwrap-holder's pid: the tamper guard protects it as it protects this process. */
  holderPid?: number;
  /** The tree runs in the launcher's Landlock domain (./landlock.ts): read-only opens need not be held. */
  guardedByKernel?: boolean;
}

/** A record of a notified call that the ring will also make, to drop (see the module comment). */
interface Duplicate {
  pid: number;
  nr: number;
  phase: "pre" | "post";
}

/** Seccomp for decided calls, the bpf ring for observed ones, as one EventSource. */
export class HybridTransport implements EventSource {
  readonly capabilities: SourceCapabilities = HYBRID_CAPABILITIES;
  readonly failClosedFds: readonly number[] = [];
  /** The seccomp listener's EPOLLHUP ends a session (its tree can make no more calls). */
  readonly closesSessions = true;
  readonly #seccomp: SeccompSource;
  readonly #bpf: BpfTransport;
  readonly #emulateOpens: boolean;
  readonly #guardedByKernel: boolean;
  #plan: HybridPlan;
  /** The ring call being served (the WSS calls back with it); any other call is seccomp's. */
  #bpfCall: SourceCall | undefined;
  /** Notified calls answered, by thread: the ring record of the same call to drop. */
  readonly #duplicates = new Map<number, Duplicate>();
  /** The notified call settle() said the seccomp transport runs itself. */
  #emulatedId: bigint | undefined;
  /** Depth of seccomp calls being served (an emulated open's post is handed over from inside its pre's answer). */
  #depth = 0;
  /** Ring records dropped as duplicates of notified calls (tests check the count). */
  duplicatesDropped = 0;
  /** Ring calls whose copies had faulted, read again from the caller's memory (readArgs). */
  faultsReread = 0;
  readonly #memory = new TargetMemory();

  constructor(options: HybridTransportOptions) {
    this.#emulateOpens = options.emulateOpens ?? true;
    this.#guardedByKernel = options.guardedByKernel ?? false;
    this.#plan = compileHybrid(options.interest, this.#emulateOpens, this.#guardedByKernel);
    this.#bpf = BpfTransport.observing(this.#plan.ring, options);
    try {
      this.#seccomp = new SeccompSource({
        emulateOpens: this.#emulateOpens,
        holderFd: options.holderFd,
        holderPid: options.holderPid,
      });
    } catch (e) {
      this.#bpf.close();
      throw e;
    }
  }

  /** What each transport was given (tests: the filter's notify set, the ring's interest). */
  get plan(): HybridPlan {
    return this.#plan;
  }

  get wakeFd(): number {
    return this.#seccomp.wakeFd;
  }

  /** Records the programs dropped (a full ring), as reported so far. */
  get lost(): number {
    return this.#bpf.lost;
  }

  /**
   * A reload: the ring's interest follows the new policies; the filter was installed at launch and cannot change.
   *
   * @throws naming the calls the new policies would decide that the filter does not notify
   */
  setInterest(interest: Interest): void {
    const plan = compileHybrid(interest, this.#emulateOpens, this.#guardedByKernel);
    const unheld = [...plan.notify].filter((nr) =>
      !this.#plan.notify.has(nr) || !filterCovers(this.#plan.filter, plan.filter, nr)
    );
    if (unheld.length) {
      throw new Error(
        `Cannot decide ${unheld.map(syscallName).join(", ")} on the hybrid source: the seccomp filter installed at ` +
          "launch does not notify them (restart the command to change which calls are decided)",
      );
    }
    // Calls the old filter notifies whatever their arguments stay held: their enter must not come from the ring as well.
    const ring = new Map<number, InterestEntry>();
    for (const [nr, c] of interest.calls) {
      const enter = !this.#plan.filter.always.has(nr) && c.pre !== undefined;
      const exit = c.post !== undefined;
      if (enter || exit) ring.set(nr, interestFor(syscallName(nr), { enter, exit }));
    }
    this.#bpf.setRing(ring);
    this.#plan = { ...this.#plan, ring, quietExits: plan.quietExits };
  }

  /** The launcher's pid of a session about to attach (attach() gets only the listener from the WSS). */
  readonly #launchers = new Map<number, number>();

  /** Says which pid session `session`'s launcher has: call before the WSS attaches the session. */
  expectLauncher(session: number, pid: number): void {
    this.#launchers.set(session, pid);
  }

  /**
   * Serves a tree: its filter's listener on seccomp, and the launcher's pid (expectLauncher) watched by the programs,
   * before it execs the command, so its first call is seen.
   */
  attach(session: number, listener: number): Partial<SupervisorSummary> {
    const pid = this.#launchers.get(session);
    if (pid === undefined) throw new Error(`hybrid: session ${session} attached without its launcher's pid`);
    this.#launchers.delete(session);
    this.#bpf.attach(session, pid);
    return this.#seccomp.attach(session, listener);
  }

  detach(session: number): void {
    this.#seccomp.detach(session);
    this.#bpf.detach();
  }

  poll(timeoutMs: number, handler: SourceHandler): PollResult {
    let served = this.#drain(handler);
    // Records below the ring's wake-up threshold wait for this timeout: the WSS's idle poll is short (worker).
    const r = this.#seccomp.poll(served ? 0 : timeoutMs, this.#fromSeccomp(handler));
    served += r.served + this.#drain(handler);
    return { served, woken: r.woken };
  }

  /**
   * A ring call's arguments are the programs' copies; where one could not be copied (a page not yet mapped: the
   * programs run where no page can be faulted in), it is read from the caller's memory now, as the seccomp source
   * reads every argument — else a path in a freshly mapped page would hide an open from every rule that matches paths.
   * Read after the call started, so a racing thread may have changed it: observation, never a basis for a deny.
   */
  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs {
    const decoded = this.#of(call).readArgs(call, name, needs);
    if (call !== this.#bpfCall || needs !== "memory" || decoded.fault === undefined) return decoded;
    const live = decodeArgs(name, BigUint64Array.from(call.args), memoryReader(call.tid, this.#memory));
    if (live.fault !== undefined) return decoded;
    this.faultsReread++;
    return live;
  }

  guardsObject(call: SourceCall): boolean {
    return call !== this.#bpfCall && this.#seccomp.guardsObject?.(call) === true;
  }

  refusal(call: SourceCall, name: string, decoded?: DecodedArgs): Refusal | undefined {
    return this.#of(call).refusal(call, name, decoded);
  }

  settle(call: SourceCall, event: SyscallEvent, verdict: Verdict, judged: Judged): Settled {
    const settled = this.#of(call).settle(call, event, verdict, judged);
    this.#emulatedId = settled.emulated ? call.id : undefined;
    return settled;
  }

  stillValid(call: SourceCall): boolean {
    return this.#of(call).stillValid(call);
  }

  answer(call: SourceCall, verdict: Verdict, watch?: WatchChange): void {
    const emulated = this.#emulatedId === call.id;
    this.#emulatedId = undefined;
    if (call.phase === "pre" && call.abi === "x86_64" && call !== this.#bpfCall) this.#expect(call, verdict, emulated);
    this.#of(call).answer(call, verdict, watch);
  }

  kill(pid: number): void {
    // The seccomp transport also fails the call it holds for the process; the pidfd kill covers a process it never saw.
    this.#seccomp.kill(pid);
    this.#bpf.kill(pid);
  }

  forget(pid: number): void {
    this.#seccomp.forget(pid);
    for (const [tid, d] of this.#duplicates) if (d.pid === pid) this.#duplicates.delete(tid);
  }

  close(handler?: SourceHandler): void {
    try {
      this.#seccomp.close();
    } finally {
      this.#bpf.close(handler);
    }
  }

  #of(call: SourceCall): EventSource {
    return call === this.#bpfCall ? this.#bpf : this.#seccomp;
  }

  /**
   * After a notified call's answer, the ring record that stands for the same call: its enter when it runs and the ring
   * reports the call's enter (notified by an argument check); its exit when it does not run, or when the seccomp
   * transport ran it and handed its result over itself (an open).
   */
  #expect(call: SourceCall, verdict: Verdict, emulated: boolean): void {
    const entry = this.#plan.ring.get(call.nr);
    if (!entry) return;
    // Anything but allow fails the call in seccomp (a kill too, after the signal; a rewrite cannot be carried out).
    const refused = verdict.action !== "allow";
    const resultGiven = !refused && emulated && RESULT_FROM_SECCOMP.has(call.nr);
    const runsInKernel = !refused && !emulated;
    if (runsInKernel && entry.enter) this.#duplicates.set(call.tid, { pid: call.pid, nr: call.nr, phase: "pre" });
    else if ((refused || resultGiven) && entry.exit) {
      this.#duplicates.set(call.tid, { pid: call.pid, nr: call.nr, phase: "post" });
    }
  }

  /** Serves every record in the ring now. */
  #drain(handler: SourceHandler): number {
    return this.#bpf.drain(this.#fromRing(handler));
  }

  /** The WSS's handler for ring records: duplicates of notified calls dropped, the call being served known. */
  #fromRing(handler: SourceHandler): SourceHandler {
    return {
      call: (call) => {
        // The filter notifies every call of a foreign ABI (i386, x32) and the WSS refuses it there; the programs report
        // them whatever the interest (their exit record: a refused call still passes the exit tracepoint).
        if (call.abi !== "x86_64") {
          this.duplicatesDropped++;
          return;
        }
        const dup = this.#duplicates.get(call.tid);
        if (dup) {
          // The thread's next record after a notified call's answer: that call's own, or the marker is stale.
          this.#duplicates.delete(call.tid);
          if (dup.nr === call.nr && dup.phase === call.phase) {
            this.duplicatesDropped++;
            return;
          }
        }
        this.#bpfCall = call;
        try {
          handler.call(call);
        } finally {
          this.#bpfCall = undefined;
        }
      },
      lifecycle: (event) => {
        if (event.kind === "exit") {
          for (const [tid, d] of this.#duplicates) if (d.pid === event.pid) this.#duplicates.delete(tid);
        }
        handler.lifecycle(event);
      },
      fault: (pid, message) => handler.fault(pid, message),
    };
  }

  /** The WSS's handler for seccomp's reports: the ring drained first (order), lifecycle taken from the ring. */
  #fromSeccomp(handler: SourceHandler): SourceHandler {
    const first = () => {
      if (this.#depth === 0) this.#drain(handler);
    };
    return {
      call: (call) => {
        first();
        if (call.abi === "x86_64" && this.#plan.quietExits.has(call.nr)) {
          // Held only so that the ring was drained above while the thread still existed (HELD_EXITS).
          this.#seccomp.answer(call, { action: "allow" });
          return;
        }
        this.#depth++;
        try {
          handler.call(call);
        } finally {
          this.#depth--;
        }
      },
      lifecycle: (event: SourceLifecycle) => {
        first();
        if (event.kind === "exit") return; // the ring's exit record reports it, after the process's last records
        if (event.kind === "exec" && !event.decidedOn) return; // the ring's exec record reported it
        handler.lifecycle(event);
      },
      fault: (pid, message) => handler.fault(pid, message),
    };
  }
}
