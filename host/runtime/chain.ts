/**
 * The wrapper chain: one instance per wrapped process per wrapper, created
 * at the process's first event the wrapper wants; layered composition (pre
 * outermost first, post innermost first, first deny wins, later layers told)
 * and active composition (abstract events run subscribers at once); failures
 * answered with the wrapper's fail mode. Failures are counted per process: a
 * `fail: closed` wrapper that keeps failing in a process stays closed there
 * (the process is killed or its calls denied, on_max_failures); a `fail:
 * open` one is disabled for that process. No process's failures change what
 * another gets. Which wrappers run in a process is the WSS's activation
 * (host/wss/bindings.ts), told through bind(); a process it never bound (an
 * offline replay, a benchmark) runs every wrapper. Every hook run, non-allow
 * verdict, alert and failure is counted, per wrapper, in the tally the WSS
 * bound the process to (its session's), else in the chain's own (counts()).
 * Implements the Decider the WSS calls.
 *
 * @module
 */
import type { Decider, EventSink } from "../decider.ts";
import type { HostEvent, ProgramIdentity, SourceName, SyscallEvent, Verdict, WindowFilter } from "../events.ts";
import { ALLOW } from "../events.ts";
import { errnoName } from "../errno.ts";
import { countsOf, type HookTally, type WrapperHookCounts } from "../hook_counts.ts";
import type { KvNamespace } from "../store/kv.ts";
import {
  ACTION_ALLOW,
  ACTION_DENY,
  ACTION_KILL,
  ACTION_REWRITE,
  DECLARE_DENY,
  DECLARE_KILL,
  DECLARE_POST,
  DECLARE_PRE,
  LIFECYCLE_EXEC,
  LIFECYCLE_EXIT,
  MAX_EMIT_DEPTH,
  STATUS,
} from "./abi.ts";
import type { WasmEngine } from "./engine.ts";
import { createImports, type HookFrame, type InstanceHost } from "./imports.ts";
import type { WrapperModule } from "./module.ts";
import { type HookName, hookWatch } from "./watchdog.ts";

const EPERM = 1;
/** The imports through which a hook reads a call's decoded arguments (host/runtime/imports.ts). */
const ARG_READERS: ReadonlySet<string> = new Set([
  "event_string",
  "event_argc",
  "event_argv",
  "event_data",
  "verdict_rewrite_path",
]);
/** The largest errno a deny may carry (the kernel's MAX_ERRNO). */
const MAX_ERRNO = 4095;

/** One loaded wrapper and its running state. */
interface Loaded {
  index: number;
  mod: WrapperModule;
  kv: KvNamespace;
  /** pid → the wrapper's failures in a row in that process. */
  failures: Map<number, number>;
  /**
   * pid → what the wrapper does there after max_failures in a row: "broken" (fail: closed: no hook runs, every event
   * gets on_max_failures) or "disabled" (fail: open: it examines nothing there any more).
   */
  gaveUp: Map<number, "broken" | "disabled">;
  /** subscription name → subscription number. */
  subscriptions: Map<string, number>;
}

/** One wrapper's instance for one process. */
class Instance {
  readonly exports: WebAssembly.Exports;
  /** Absent only when loaded unmetered (benchmarks). */
  readonly #fuel: WebAssembly.Global | undefined;
  readonly #memory: WebAssembly.Memory;

  constructor(readonly loaded: Loaded, engine: WasmEngine, readonly host: PooledHost) {
    const { imports, bind } = createImports({ mode: "run", spec: loaded.mod.spec, host });
    const instance = engine.instantiate(loaded.mod.module, imports);
    bind(instance);
    this.exports = instance.exports;
    this.#fuel = instance.exports.idwrap_fuel as WebAssembly.Global | undefined;
    this.#memory = instance.exports.memory as WebAssembly.Memory;
  }

  /** Calls an export with a fresh CPU budget, under the watchdog; a trap propagates with its cause named. */
  call(name: HookName, ...args: number[]): number {
    if (this.#fuel) this.#fuel.value = this.loaded.mod.spec.budget;
    hookWatch.enter(this.loaded.index, name);
    try {
      return (this.exports[name] as (...a: number[]) => number)(...args) ?? 0;
    } catch (e) {
      const spec = this.loaded.mod.spec;
      if (this.#fuel && (this.#fuel.value as number) < 0) {
        throw new HookFailure(`ran past its CPU budget of ${spec.budget} units`);
      }
      const mib = this.#memory.buffer.byteLength / 2 ** 20;
      const full = mib >= spec.memoryMiB ? ` (memory at its cap of ${spec.memoryMiB} MiB)` : "";
      if (e instanceof HookFailure) throw e;
      throw new HookFailure(`trapped: ${(e as Error).message}${full}`);
    } finally {
      hookWatch.leave();
    }
  }
}

/** An InstanceHost whose process is set when the (possibly pre-made) instance is handed out. */
interface PooledHost extends InstanceHost {
  pid: number;
}

/** No filter published (shared, never written). */
const NO_FILTERS: WindowFilter[] = [];

/** Spare instances kept per wrapper, made while idle so a new process need not wait for V8. */
const SPARES_PER_WRAPPER = 2;

class HookFailure extends Error {
  /** The export that failed, where it is not the one the caller was calling. */
  constructor(message: string, readonly hook?: string) {
    super(message);
  }
}

/** Options of a chain. */
export interface ChainOptions {
  engine: WasmEngine;
  sink: EventSink;
  /** Each wrapper's store namespace, by wrapper name. */
  kv: Map<string, KvNamespace>;
  source: SourceName;
  /** The source can carry out rewrite verdicts (action 3); elsewhere they are faults. @default false */
  rewrite?: boolean;
}

/** The wrappers of the loaded policies, in layer order, as a Decider. */
export class WrapperChain implements Decider {
  readonly syscalls: ReadonlySet<number>;
  readonly #loaded: Loaded[];
  readonly #opts: ChainOptions;
  readonly #pre = new Map<number, Loaded[]>();
  readonly #post = new Map<number, Loaded[]>();
  /** pid → instance per wrapper index. */
  readonly #instances = new Map<number, (Instance | undefined)[]>();
  /** wrapper index → instances not yet bound to a process. */
  readonly #spares = new Map<number, Instance[]>();
  readonly #frames: HookFrame[] = [];
  readonly #programs = new Map<number, ProgramIdentity>();
  /** pid → indexes of the wrappers the WSS bound to it. */
  readonly #bound = new Map<number, ReadonlySet<number>>();
  /** Every wrapper, for a process the WSS never bound. */
  readonly #all: ReadonlySet<number>;
  /** syscall → the wrappers whose pre hook may read its decoded arguments. */
  readonly #readers = new Map<number, Loaded[]>();
  /** Wrappers that subscribe to abstract events and may read the emitting call's arguments. */
  readonly #readingSubscribers: Loaded[];
  /** pid → its tally's entry per wrapper index (made at bind, so counting on the hot path allocates nothing). */
  readonly #rows = new Map<number, WrapperHookCounts[]>();
  /** A tally → its entries per wrapper index. */
  readonly #rowsIn = new WeakMap<HookTally, WrapperHookCounts[]>();
  /** The counts of processes bound to no tally (an offline replay, a benchmark). */
  readonly #own: HookTally = [];
  readonly #ownRows: WrapperHookCounts[];
  /** Window filters instances published (ABI 1.4), by process, until the WSS takes them. */
  readonly #published = new Map<number, WindowFilter>();

  constructor(modules: WrapperModule[], options: ChainOptions) {
    this.#opts = options;
    this.#loaded = modules.map((mod, index) => {
      const kv = options.kv.get(mod.spec.name);
      if (!kv) throw new Error(`No store loaded for wrapper "${mod.spec.name}"`);
      return {
        index,
        mod,
        kv,
        failures: new Map(),
        gaveUp: new Map(),
        subscriptions: new Map(mod.declarations.subscriptions.map((name, i) => [name, i])),
      };
    });
    const all = new Set<number>();
    for (const l of this.#loaded) {
      for (const [nr, flags] of l.mod.declarations.syscalls) {
        all.add(nr);
        if (flags & DECLARE_PRE) push(this.#pre, nr, l);
        if (flags & DECLARE_POST) push(this.#post, nr, l);
      }
    }
    for (const list of this.#post.values()) list.reverse(); // post runs innermost first
    this.syscalls = all;
    this.#all = new Set(this.#loaded.map((l) => l.index));
    const reads = (l: Loaded) => WebAssembly.Module.imports(l.mod.module).some((i) => ARG_READERS.has(i.name));
    const readers = this.#loaded.filter(reads);
    for (const l of readers) {
      for (const [nr, flags] of l.mod.declarations.syscalls) if (flags & DECLARE_PRE) push(this.#readers, nr, l);
    }
    this.#readingSubscribers = readers.filter((l) => l.subscriptions.size > 0);
    this.#ownRows = this.#entries(this.#own);
  }

  /** The counts of the processes the WSS bound to no tally (all of them where no WSS drives the chain). */
  counts(): HookTally {
    return this.#own;
  }

  #entries(tally: HookTally): WrapperHookCounts[] {
    let rows = this.#rowsIn.get(tally);
    if (!rows) this.#rowsIn.set(tally, rows = this.#loaded.map((l) => countsOf(tally, l.mod.spec.name)));
    return rows;
  }

  #rowsOf(pid: number): WrapperHookCounts[] {
    return this.#rows.get(pid) ?? this.#ownRows;
  }

  /**
   * Whether a wrapper bound to `pid` that takes this call in pre may read its decoded arguments (it imports an
   * argument reader), or one that subscribes to abstract events does (it may run inside the hook, on this call).
   */
  readsArgs(nr: number, pid?: number): boolean {
    if (!this.examines(nr, pid)) return false;
    const bound = pid === undefined ? this.#all : this.#bound.get(pid) ?? this.#all;
    const runs = (l: Loaded) => bound.has(l.index) && l.gaveUp.get(pid!) !== "disabled";
    return (this.#readers.get(nr) ?? []).some(runs) || this.#readingSubscribers.some(runs);
  }

  /** Whether a wrapper bound to `pid` (any wrapper, without a pid) takes this call in pre. */
  examines(nr: number, pid?: number): boolean {
    const list = this.#pre.get(nr);
    if (!list) return false;
    const bound = pid === undefined ? undefined : this.#bound.get(pid);
    return !bound || list.some((l) => bound.has(l.index) && l.gaveUp.get(pid!) !== "disabled");
  }

  /** Whether some wrapper wants this call's post event. */
  examinesPost(nr: number, pid?: number): boolean {
    const list = this.#post.get(nr);
    if (!list) return false;
    const bound = pid === undefined ? undefined : this.#bound.get(pid);
    return !bound || list.some((l) => bound.has(l.index) && l.gaveUp.get(pid!) !== "disabled");
  }

  /** The names of the wrappers bound to a process. */
  bindings(pid: number): string[] {
    return [...this.#boundTo(pid)].map((i) => this.#loaded[i]).filter((l) => l.gaveUp.get(pid) !== "disabled")
      .map((l) => l.mod.spec.name);
  }

  /** The WSS's activation bound these wrappers to a process (at its spawn, at every execve); others lose their instance. */
  bind(pid: number, wrappers: ReadonlySet<number> | undefined, tally?: HookTally): void {
    if (!wrappers) {
      this.#rows.delete(pid);
      return void this.#bound.delete(pid);
    }
    if (tally) this.#rows.set(pid, this.#entries(tally));
    this.#bound.set(pid, wrappers);
    const instances = this.#instances.get(pid);
    if (instances) { for (const l of this.#loaded) if (!wrappers.has(l.index)) instances[l.index] = undefined; }
  }

  #boundTo(pid: number): ReadonlySet<number> {
    return this.#bound.get(pid) ?? this.#all;
  }

  decide(event: SyscallEvent): Verdict {
    this.#programs.set(event.pid, event.program);
    let verdict: Verdict = ALLOW;
    const deniedBefore = event.verdict !== undefined && event.verdict !== "allow";
    const bound = this.#boundTo(event.pid);
    for (const l of this.#pre.get(event.nr) ?? []) {
      if (!bound.has(l.index) || l.gaveUp.get(event.pid) === "disabled") continue;
      const denied = deniedBefore || verdict.action !== "allow";
      const v = this.#hook(l, event, denied);
      if (!denied && v.action !== "allow") verdict = v;
    }
    return verdict;
  }

  /** Post events and lifecycle; the only verdict that counts here is kill. */
  observe(event: HostEvent): Verdict {
    if (event.kind === "syscall") {
      if (event.phase !== "post") return ALLOW;
      let verdict: Verdict = ALLOW;
      const bound = this.#boundTo(event.pid);
      for (const l of this.#post.get(event.nr) ?? []) {
        if (!bound.has(l.index) || l.gaveUp.get(event.pid) === "disabled") continue;
        const v = this.#hook(l, event, false);
        if (v.action === "kill") verdict = v;
      }
      return verdict;
    }
    let verdict: Verdict = ALLOW;
    this.#programs.set(event.pid, event.program);
    if (event.kind === "exec" || event.kind === "exit") {
      if (event.kind === "exec") verdict = this.#brokenAtExec(event.pid);
      const kind = event.kind === "exec" ? LIFECYCLE_EXEC : LIFECYCLE_EXIT;
      const instances = this.#instances.get(event.pid) ?? [];
      for (const l of this.#loaded) {
        const inst = instances[l.index];
        if (
          !inst || l.gaveUp.has(event.pid) || !(l.mod.declarations.lifecycle & kind) ||
          !this.#boundTo(event.pid).has(l.index)
        ) {
          continue;
        }
        this.#rowsOf(event.pid)[l.index].lifecycle++;
        const r = this.#guard(
          l,
          event.pid,
          "idwrap_on_lifecycle",
          undefined,
          () => inst.call("idwrap_on_lifecycle", kind),
        );
        if (!r.ok && r.verdict.action === "kill" && event.kind === "exec") verdict = r.verdict;
      }
      if (event.kind === "exit") {
        this.#instances.delete(event.pid);
        this.#published.delete(event.pid);
        this.#programs.delete(event.pid);
        this.#bound.delete(event.pid);
        this.#rows.delete(event.pid);
        for (const l of this.#loaded) [l.failures, l.gaveUp].forEach((m) => m.delete(event.pid));
      }
    }
    return verdict;
  }

  /** Kill, at exec, a process a wrapper that kills has given up on (its new program may not run unwrapped). */
  #brokenAtExec(pid: number): Verdict {
    for (const l of this.#loaded) {
      if (l.gaveUp.get(pid) !== "broken" || !this.#boundTo(pid).has(l.index)) continue;
      const v = this.#brokenVerdict(l, undefined);
      if (v.action === "kill") return v;
    }
    return ALLOW;
  }

  /** Runs one wrapper's idwrap_on_syscall, counted; failures give the fail mode. */
  #hook(l: Loaded, event: SyscallEvent, denied: boolean): Verdict {
    const row = this.#rowsOf(event.pid)[l.index];
    const verdict = this.#runHook(l, event, denied, row);
    if (verdict.action !== "allow") row.verdicts++;
    return verdict;
  }

  #runHook(l: Loaded, event: SyscallEvent, denied: boolean, row: WrapperHookCounts): Verdict {
    if (l.gaveUp.get(event.pid) === "broken") return this.#brokenVerdict(l, event);
    const frame: HookFrame = { event, denied, alerts: 0 };
    const result = this.#guard(l, event.pid, "idwrap_on_syscall", event, () => {
      const inst = this.#instance(l, event.pid);
      if (event.phase === "pre") row.pre++;
      else row.post++;
      this.#frames.push(frame);
      try {
        return inst.call("idwrap_on_syscall");
      } finally {
        this.#frames.pop();
      }
    });
    if (!result.ok) return result.verdict;
    // A closed subscriber that failed on an event this hook emitted: the call gets its fail mode.
    if (frame.failed && frame.failed.action !== "allow") return frame.failed;
    const raw = result.value;
    const action = raw & 0xff;
    const errno = (raw >>> 8) & 0xffff;
    if (action > ACTION_REWRITE || raw >>> 24 !== 0 || (action === ACTION_DENY && errno > MAX_ERRNO)) {
      const why = action > ACTION_REWRITE
        ? `unknown verdict ${raw} from wrapper ${l.mod.spec.name} (action ${action} is none of allow 0, deny 1, kill 2, rewrite 3)`
        : `malformed verdict ${raw} (0x${(raw >>> 0).toString(16)}) from wrapper ${l.mod.spec.name} (${
          raw >>> 24 !== 0 ? "bits 24-31 must be 0" : `errno ${errno} is past ${MAX_ERRNO}`
        })`;
      return this.#fault(l, event.pid, "idwrap_on_syscall", event, why);
    }
    const declared = l.mod.declarations.syscalls.get(event.nr) ?? 0;
    const mayDeny = (declared & DECLARE_DENY) !== 0;
    // KILL alone: the call may already have run when the kill lands (an observed call on the kernel module).
    const mayKill = mayDeny || (declared & DECLARE_KILL) !== 0;
    const pre = event.phase === "pre";
    if (action === ACTION_ALLOW) {
      // The policy's response to this wrapper's alerts (on_alert), where it may deny or kill the call.
      const response = l.mod.spec.onAlert;
      if (!frame.alerts || response === "alert" || !pre) return ALLOW;
      if (response === "kill" && mayKill) return { action: "kill" };
      return response === "deny" && mayDeny ? { action: "deny", errno: EPERM } : ALLOW;
    }
    if (action === ACTION_KILL && mayKill && pre) return { action: "kill" };
    if (action === ACTION_DENY && mayDeny && pre) return { action: "deny", errno: errno || EPERM };
    if (action === ACTION_KILL && !pre) return { action: "kill" };
    if (action === ACTION_REWRITE && this.#opts.rewrite && mayDeny && pre) {
      const r = frame.rewrite;
      if (r && (r.arg !== undefined || r.path !== undefined)) {
        // A path alone rewrites the path argument in place (the module copies it); arg/value default to no change.
        const arg = r.arg ?? -1;
        return { action: "rewrite", arg, value: r.value ?? 0n, ...(r.path !== undefined ? { path: r.path } : {}) };
      }
      return this.#fault(
        l,
        event.pid,
        "idwrap_on_syscall",
        event,
        "returned rewrite without calling verdict_rewrite or verdict_rewrite_path",
      );
    }
    // A verdict this wrapper may not give here (documented to count as allow): reported, not a failure.
    const why = badVerdict(raw, mayDeny, this.#opts.source, this.#opts.rewrite ?? false, pre);
    row.faults++;
    this.#report(l, event.pid, "fault", undefined, `idwrap_on_syscall: ${why}; ignored, call allowed`, event.syscall);
    return ALLOW;
  }

  /** Calls into a wrapper; on failure reports, drops the instance, counts, and gives the failure's verdict. */
  #guard(
    l: Loaded,
    pid: number,
    hook: string,
    event: SyscallEvent | undefined,
    fn: () => number,
  ): { ok: true; value: number } | { ok: false; verdict: Verdict } {
    try {
      const value = fn();
      if (l.failures.size) l.failures.delete(pid);
      return { ok: true, value };
    } catch (e) {
      if (!(e instanceof HookFailure) && !(e instanceof WebAssembly.RuntimeError) && !(e instanceof RangeError)) {
        if (!(e instanceof WebAssembly.LinkError) && !(e instanceof WebAssembly.CompileError)) throw e;
      }
      const instances = this.#instances.get(pid);
      if (instances) instances[l.index] = undefined; // a fresh instance next time
      return { ok: false, verdict: this.#fault(l, pid, (e as HookFailure).hook ?? hook, event, (e as Error).message) };
    }
  }

  /**
   * Counts one failure of a wrapper in process `pid` on `event` (none: a lifecycle hook), reports it saying what
   * happens to the call, and returns that verdict: the fail mode, or on_max_failures once the wrapper has failed
   * max_failures times in a row in that process. A fail: closed wrapper is never unloaded; a fail: open one is then
   * disabled for that process.
   */
  #fault(l: Loaded, pid: number, hook: string, event: SyscallEvent | undefined, why: string): Verdict {
    this.#rowsOf(pid)[l.index].faults++;
    const failures = (l.failures.get(pid) ?? 0) + 1;
    l.failures.set(pid, failures);
    const spec = l.mod.spec;
    const closed = spec.fail === "closed";
    const limit = failures >= spec.maxFailures && !l.gaveUp.has(pid);
    if (limit && closed) {
      l.gaveUp.set(pid, "broken");
      this.#dropInstance(l, pid);
      const kills = (spec.onMaxFailures ?? "kill") === "kill";
      this.#report(
        l,
        pid,
        "fault",
        undefined,
        `${hook}: ${why}; failed ${failures} times in a row in this process (max_failures ${spec.maxFailures}), ` +
          `fail closed: ${
            kills
              ? "the process is killed"
              : "this call and every call of the process the wrapper examines from now on are denied with EPERM"
          } (on_max_failures: ${kills ? "kill" : "deny"})`,
        event?.syscall,
      );
      if (kills) return { action: "kill" };
      return event?.phase === "pre" ? { action: "deny", errno: EPERM } : ALLOW;
    }
    let outcome: string, verdict: Verdict = ALLOW;
    if (!event) outcome = "no call to decide (lifecycle event); the instance is discarded";
    else if (event.phase === "post") outcome = "the call had already run (post event); the instance is discarded";
    else if (closed) {
      // Declared without DENY, the call may already run (a source that only observes it): the deny is then not enforced.
      const holds = hook === "idwrap_on_abstract" ||
        ((l.mod.declarations.syscalls.get(event.nr) ?? 0) & DECLARE_DENY) !== 0;
      outcome = holds
        ? "call denied (fail closed)"
        : "call denied (fail closed) where the source holds it (declared without DENY, it may only be observed)";
      verdict = { action: "deny", errno: EPERM };
    } else outcome = "call allowed (fail open)";
    this.#report(l, pid, "fault", undefined, `${hook}: ${why}; ${outcome}`, event?.syscall);
    if (limit) {
      l.gaveUp.set(pid, "disabled");
      this.#dropInstance(l, pid);
      this.#report(
        l,
        pid,
        "fault",
        undefined,
        `disabled for this process after ${failures} failures in a row (fail: open): the calls it examined there ` +
          "now run without it",
        event?.syscall,
      );
    }
    return verdict;
  }

  /** The verdict for an event of a process a fail: closed wrapper has given up on (reported when it gave up). */
  #brokenVerdict(l: Loaded, event: SyscallEvent | undefined): Verdict {
    if ((l.mod.spec.onMaxFailures ?? "kill") === "kill") return { action: "kill" };
    return event?.phase === "pre" ? { action: "deny", errno: EPERM } : ALLOW;
  }

  #dropInstance(l: Loaded, pid: number): void {
    const list = this.#instances.get(pid);
    if (list) list[l.index] = undefined;
  }

  #report(
    l: Loaded,
    pid: number,
    kind: "alert" | "audit" | "fault" | "log",
    severity: number | undefined,
    message: string,
    syscall?: string,
  ): void {
    this.#opts.sink.emit({
      kind,
      source: this.#opts.source,
      time: Date.now(),
      pid,
      wrapper: l.mod.spec.name,
      severity,
      message,
      program: this.#programs.get(pid) ?? { exe: "", argv0: "", uid: -1, gid: -1 },
      syscall,
    });
  }

  /** The process's instance of a wrapper, made (and initialised) on first use. */
  #instance(l: Loaded, pid: number): Instance {
    let list = this.#instances.get(pid);
    if (!list) this.#instances.set(pid, list = []);
    const existing = list[l.index];
    if (existing) return existing;
    const inst = this.#spares.get(l.index)?.pop() ?? new Instance(l, this.#opts.engine, this.#hostFor(l));
    inst.host.pid = pid;
    if ("idwrap_init" in inst.exports) {
      const r = inst.call("idwrap_init");
      if (r !== 0) throw new HookFailure(`returned ${r}`, "idwrap_init");
    }
    list[l.index] = inst;
    return inst;
  }

  /** The window filters published since the last call (ABI 1.4), taken. */
  filters(): WindowFilter[] {
    if (!this.#published.size) return NO_FILTERS;
    const out = [...this.#published.values()];
    this.#published.clear();
    return out;
  }

  /** Tops up the spare instances (instantiation dominates a new process's cost); call when idle. */
  idle(): void {
    for (const l of this.#loaded) {
      const spares = this.#spares.get(l.index) ?? [];
      this.#spares.set(l.index, spares);
      try {
        while (spares.length < SPARES_PER_WRAPPER) spares.push(new Instance(l, this.#opts.engine, this.#hostFor(l)));
      } catch { /* its failure is reported when a process needs it */ }
    }
  }

  #hostFor(l: Loaded): PooledHost {
    const host: PooledHost = {
      pid: -1,
      kv: l.kv,
      program: () => this.#programs.get(host.pid) ?? { exe: "", argv0: "", uid: -1, gid: -1 },
      frame: () => this.#frames.at(-1),
      report: (kind, severity, message) => {
        const frame = this.#frames.at(-1);
        const event = frame?.event;
        if (kind === "alert") {
          this.#rowsOf(host.pid)[l.index].alerts++;
          if (frame) frame.alerts = (frame.alerts ?? 0) + 1;
        }
        if (kind === "alert" && event && event.pid === host.pid) {
          (event.alerts ??= []).push(`${l.mod.spec.name}: ${message}`);
        }
        this.#report(l, host.pid, kind, severity, message, event?.syscall);
      },
      emit: (handle, payload) => this.#emit(l, host.pid, handle, payload),
      canRewrite: this.#opts.rewrite ?? false,
      publishFilter: (k, windows) => {
        // Only the bpf source drops calls in the kernel (docs/bpf.md): elsewhere the set would be held for nothing.
        if (this.#opts.source !== "bpf") return STATUS.ENOSYS;
        // A pre-made instance's init runs when it is handed out, with its process set: never for pid -1.
        if (host.pid < 0) return STATUS.EPERM;
        // The latest set per process: a process that publishes again before the WSS took the last one replaces it.
        this.#published.set(host.pid, { pid: host.pid, exe: host.program().exe, wrapper: l.mod.spec.name, k, windows });
        return 0;
      },
    };
    return host;
  }

  /** Active composition: every subscriber on this process, in load order; the largest answer. */
  #emit(from: Loaded, pid: number, handle: number, payload: Uint8Array): number {
    const name = from.mod.declarations.emits[handle];
    if (name === undefined) return STATUS.EINVAL;
    if (this.#frames.length > MAX_EMIT_DEPTH) return STATUS.ELOOP;
    const outer = this.#frames.at(-1);
    let answer = 0;
    for (const l of this.#loaded) {
      const sub = l.subscriptions.get(name);
      if (sub === undefined || l.gaveUp.get(pid) === "disabled" || !this.#boundTo(pid).has(l.index)) continue;
      if (l.gaveUp.get(pid) === "broken") {
        if (outer) outer.failed ??= this.#brokenVerdict(l, outer.event);
        continue;
      }
      const r = this.#guard(l, pid, "idwrap_on_abstract", outer?.event, () => {
        const inst = this.#instance(l, pid);
        this.#rowsOf(pid)[l.index].abstract++;
        this.#frames.push({
          event: outer?.event,
          denied: outer?.denied ?? false,
          abstract: { payload, emitter: from.mod.spec.name },
        });
        try {
          return inst.call("idwrap_on_abstract", sub, payload.length);
        } finally {
          this.#frames.pop();
        }
      });
      if (!r.ok) {
        // The subscriber's fail mode applies to the call that led to the emit.
        if (outer && r.verdict.action !== "allow") outer.failed ??= r.verdict;
        continue;
      }
      if (r.value > answer) answer = r.value;
    }
    return answer;
  }
}

function push(map: Map<number, Loaded[]>, nr: number, l: Loaded): void {
  const list = map.get(nr) ?? [];
  list.push(l);
  map.set(nr, list);
}

function badVerdict(raw: number, mayDeny: boolean, source: string, rewrite: boolean, pre: boolean): string {
  const action = raw & 0xff;
  if (action === ACTION_REWRITE) {
    if (!rewrite) return `returned a rewrite verdict, which the ${source} source cannot carry out`;
    if (!pre) return "returned rewrite in a post hook";
    return "returned rewrite without declaring DENY for the call";
  }
  if (action === ACTION_DENY || action === ACTION_KILL) {
    return mayDeny
      ? "returned deny in a post hook"
      : `returned ${
        action === ACTION_KILL ? "kill" : `deny ${errnoName((raw >>> 8) & 0xffff || EPERM)}`
      } without declaring DENY for the call`;
  }
  return `returned an unknown verdict 0x${(raw >>> 0).toString(16)}`;
}
