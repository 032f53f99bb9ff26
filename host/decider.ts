/**
 * What the supervisor asks about each call. A source hands every notified
 * call to one Decider and every event to one EventSink; the no-op versions
 * let callers skip "enabled?" checks.
 *
 * @module
 */
import type { HostEvent, SyscallEvent, Verdict, WindowFilter } from "./events.ts";
import { ALLOW } from "./events.ts";
import { errnoName } from "./errno.ts";
import type { HookTally } from "./hook_counts.ts";

/** Facts about a process the WSS knows when it starts a program (at spawn and at every execve). */
export interface ProcessFacts {
  pid: number;
  /** The executable's absolute path (`/proc/PID/exe`). */
  exe: string;
  argv0: string;
  /** Real uid: the invoker. */
  uid: number;
  /** Real gid. */
  gid: number;
  /** The parent's executable path. */
  parentExe: string;
}

/** Decides the fate of notified calls. Every method is required: a part with nothing to do implements it as a no-op. */
export interface Decider {
  /** x86_64 syscall numbers this decider must see (the filter notifies them). */
  readonly syscalls: ReadonlySet<number>;
  /** Whether `decide` looks at calls of this number (by this process); if not, they run unexamined. */
  examines(nr: number, pid?: number): boolean;
  /**
   * Whether deciding this call needs its pointer arguments decoded (paths, argv, data): the WSS reads them, once,
   * before the hooks run. A wrapper that imports no argument reader (seq) judges the registers alone.
   */
  readsArgs(nr: number, pid?: number): boolean;
  /** The verdict for one call; `event` is decoded as readsArgs() asked. */
  decide(event: SyscallEvent): Verdict;
  /** Whether some layer wants this call's post event (the source may then work harder). */
  examinesPost(nr: number, pid?: number): boolean;
  /** Post events and lifecycle; only a kill verdict is acted on. */
  observe(event: HostEvent): Verdict;
  /**
   * The wrappers (by their index in the enforcement's list) the WSS's activation bound to a process, set when it
   * appears and at every execve; `undefined`: the process is gone. `tally`: where the process's hook runs are counted
   * (its session's; host/hook_counts.ts). `facts`: what the WSS knows of the process (rule scopes read them).
   */
  bind(pid: number, wrappers: ReadonlySet<number> | undefined, tally?: HookTally, facts?: ProcessFacts): void;
  /** Names of the wrappers bound to a process that still run there (the WSS's process table). */
  bindings(pid: number): string[];
  /** Nothing to serve right now: a moment for work that would otherwise delay a call. */
  idle(): void;
  /**
   * The window filters wrapper instances published since the last call (ABI 1.4, filter_windows), taken: the WSS
   * hands each to its source, which may drop the calls they cover in the kernel.
   */
  filters(): WindowFilter[];
}

/** Receives every event, after the verdict was given. */
export interface EventSink {
  /** Whether syscall events are wanted at all (decoding them costs). */
  readonly wantsSyscalls: boolean;
  emit(event: HostEvent): void;
  /** Called when the source is idle and at the end. */
  flush(): void;
}

/**
 * A decider that examines nothing and lets everything run: every method a no-op, so a part that decides only some
 * things (the rules) overrides just those, and callers never branch on "does it implement…?".
 */
export class AllowAll implements Decider {
  readonly syscalls: ReadonlySet<number>;
  constructor(syscalls: Iterable<number> = []) {
    this.syscalls = new Set(syscalls);
  }
  examines(_nr: number, _pid?: number): boolean {
    return false;
  }
  readsArgs(_nr: number, _pid?: number): boolean {
    return false;
  }
  decide(_event: SyscallEvent): Verdict {
    return ALLOW;
  }
  examinesPost(_nr: number, _pid?: number): boolean {
    return false;
  }
  observe(_event: HostEvent): Verdict {
    return ALLOW;
  }
  bind(_pid: number, _wrappers: ReadonlySet<number> | undefined, _tally?: HookTally, _facts?: ProcessFacts): void {}
  bindings(): string[] {
    return [];
  }
  idle(): void {}
  filters(): WindowFilter[] {
    return NO_FILTERS;
  }
}

/** No filter published: shared, never written. */
const NO_FILTERS: WindowFilter[] = [];

/**
 * Layers deciders: each sees every call it examines, in order; the first
 * deny or kill decides, and later layers see it on `event.verdict`.
 */
export class LayeredDecider implements Decider {
  readonly syscalls: ReadonlySet<number>;
  readonly #layers: Decider[];

  constructor(layers: Decider[]) {
    this.#layers = layers;
    this.syscalls = new Set(layers.flatMap((d) => [...d.syscalls]));
  }

  examines(nr: number, pid?: number): boolean {
    // On every notified call: a plain loop, no closure.
    for (let i = 0; i < this.#layers.length; i++) if (this.#layers[i].examines(nr, pid)) return true;
    return false;
  }

  readsArgs(nr: number, pid?: number): boolean {
    for (let i = 0; i < this.#layers.length; i++) if (this.#layers[i].readsArgs(nr, pid)) return true;
    return false;
  }

  examinesPost(nr: number, pid?: number): boolean {
    for (let i = 0; i < this.#layers.length; i++) if (this.#layers[i].examinesPost(nr, pid)) return true;
    return false;
  }

  idle(): void {
    for (const d of this.#layers) d.idle();
  }

  filters(): WindowFilter[] {
    // After every call: no allocation unless a layer has some.
    let out: WindowFilter[] | undefined;
    for (let i = 0; i < this.#layers.length; i++) {
      const f = this.#layers[i].filters();
      if (f.length) (out ??= []).push(...f);
    }
    return out ?? NO_FILTERS;
  }

  bind(pid: number, wrappers: ReadonlySet<number> | undefined, tally?: HookTally, facts?: ProcessFacts): void {
    for (const d of this.#layers) d.bind(pid, wrappers, tally, facts);
  }

  /** The wrappers bound to a process, from the layers that bind any. */
  bindings(pid: number): string[] {
    return this.#layers.flatMap((d) => d.bindings(pid));
  }

  decide(event: SyscallEvent): Verdict {
    let verdict: Verdict = ALLOW;
    for (const d of this.#layers) {
      if (!d.examines(event.nr, event.pid)) continue;
      const v = d.decide(event);
      if (verdict.action === "allow" && v.action !== "allow") {
        verdict = v;
        event.verdict = describeVerdict(v);
      }
    }
    return verdict;
  }

  observe(event: HostEvent): Verdict {
    let verdict: Verdict = ALLOW;
    for (const d of [...this.#layers].reverse()) {
      const v = d.observe(event);
      if (v.action === "kill") verdict = v;
    }
    return verdict;
  }
}

/** "allow", "deny EACCES", "kill" or "rewrite arg1=0x10", as events and traces show a verdict. */
export function describeVerdict(verdict: Verdict): string {
  if (verdict.action === "deny") return `deny ${errnoName(verdict.errno)}`;
  if (verdict.action === "rewrite") {
    const arg = verdict.arg >= 0 ? ` arg${verdict.arg}=0x${BigInt.asUintN(64, verdict.value).toString(16)}` : "";
    return `rewrite${arg}${verdict.path === undefined ? "" : ` path=${JSON.stringify(verdict.path)}`}`;
  }
  return verdict.action;
}

/** Drops every event. */
export class NullSink implements EventSink {
  readonly wantsSyscalls = false;
  emit(): void {}
  flush(): void {}
}
