/**
 * The WSS's one interest model: what every source must intercept, and how,
 * from the policies' observe lists and rules and the wrappers' declarations.
 * Each source compiles it into its own form (the module's interest mask:
 * host/sources/kmod/interest.ts; BPF maps); the WSS answers the `late` calls
 * first on a source that holds every call (seccomp).
 *
 * Per call and phase: `decide` (a rule or wrapper may deny, kill or
 * rewrite it: the caller waits) or `observe` (reported: rules that alert,
 * observe lists, the trace, watchers). A call is `late` when only wrappers
 * that declared MAY_KILL without DENY watch it and no rule or observe list
 * covers it: they tolerate a kill landing late and read no argument before
 * the call runs (seq), so a source that must hold every call it sees
 * (seccomp) may answer first and look after.
 *
 * A call may carry predicates on its integer arguments (`when`): it is wanted only when one holds. Only rules give
 * them (host/policy/predicates.ts: open flags, signal numbers); a call that anything wants whatever its arguments — a
 * wrapper that examines it, a rule without an integer condition, an observe list, a source's own needs — has none.
 * Sources that can check registers before a call waits compile them (seccomp: its filter); the others take the call
 * whole. The supervisor still checks every rule: a predicate only narrows what reaches it.
 *
 * The hybrid source (host/sources/hybrid/hybrid.ts) serves the two kinds apart:
 * {@link splitInterest} gives the calls something may decide, with the calls
 * the source holds whatever acts on them (its opens: the tamper guard's), held
 * on seccomp, and the calls that are only observed (the eBPF ring, never waiting).
 *
 * @module
 */
import type { Policy } from "../policy/policy.ts";
import { type ArgPredicate, type CallPredicate, rulePredicate, writeOpenPredicate } from "../policy/predicates.ts";
import { firesOnSuccess, ruleSyscalls } from "../policy/rule_decider.ts";
import { ABI_MODULE, DECLARE_DENY, DECLARE_KILL, DECLARE_POST, DECLARE_PRE, DECLARE_WRITES } from "../runtime/abi.ts";
import type { WrapperModule } from "../runtime/module.ts";
import { ALWAYS_DENIED_SYSCALLS, OPEN_SYSCALLS, resolveSyscalls } from "../syscalls/mod.ts";

/** How a phase of a call is intercepted, the stronger last. */
export type PhaseInterest = "observe" | "decide";

/** How one syscall is intercepted. */
export interface CallInterest {
  pre?: PhaseInterest;
  post?: PhaseInterest;
  /** Only late watchers want it (see the module comment). */
  late?: boolean;
  /** Wanted only when one of these holds (see the module comment); absent: whatever its arguments. */
  when?: ArgPredicate[];
  /**
   * Decided (pre) only when one of these holds, observed otherwise: what may deny it says which calls it may deny (a
   * rule's integer conditions, a wrapper's DECLARE_WRITES on an open). Absent on a decided call: decided whatever its
   * arguments. A source that holds every call it sees (seccomp) ignores it; the hybrid holds only these.
   */
  decideWhen?: ArgPredicate[];
  /**
   * A wrapper's post hook examines the call's result (an open's new fd: wr_fstat), so a source that splits calls
   * (the hybrid) keeps it whole. Not set by an output's wish for every call's result: that changes only what is
   * reported, and the hybrid's launcher compiles its filter without it.
   */
  resultExamined?: true;
}

/** What the loaded policies and wrappers ask every source to intercept. */
export interface Interest {
  /** x86_64 syscall number → how it is intercepted. */
  readonly calls: ReadonlyMap<number, CallInterest>;
  /** Some rule or wrapper may deny or kill: calls left waiting when the host is gone get EPERM, not ALLOW. */
  readonly failClosed: boolean;
  /** The wrapper that may hand the kernel a window filter (ABI 1.4), and the calls it covers. */
  readonly filter?: FilterInterest;
}

/**
 * What a wrapper that publishes window filters (it imports filter_windows, ABI 1.4: seq) covers. Its `window` calls
 * (those it declares in pre) make up a process's window, as the wrapper sees them; of those, the `filterable` ones have
 * no other consumer — no other wrapper declares them, no rule or observe list names them, the output does not want
 * every call, the wrapper wants no post of them — and a source may drop them in the kernel when their window is known.
 * The calls after which a process's account is closed are never filterable, so the calls dropped before them reach
 * the wrapper first: execve, execveat (the program changes), exit, exit_group (docs/bpf.md).
 */
export interface FilterInterest {
  wrapper: string;
  window: ReadonlySet<number>;
  filterable: ReadonlySet<number>;
}

/** Calls that close a process's account with a filtering wrapper: never dropped (see FilterInterest). */
const FLUSHING_CALLS = ["execve", "execveat", "exit", "exit_group"];

/** The filter interest of the first wrapper that imports filter_windows, if any (see FilterInterest). */
export function filterInterest(
  wrappers: WrapperModule[],
  others: ReadonlySet<number>,
  wantsAll: boolean,
): FilterInterest | undefined {
  // A declaration-only stand-in (no compiled module: the interest tests') publishes nothing.
  const index = wrappers.findIndex((w) =>
    w.module instanceof WebAssembly.Module &&
    WebAssembly.Module.imports(w.module).some((i) => i.module === ABI_MODULE && i.name === "filter_windows")
  );
  if (index < 0) return undefined;
  const w = wrappers[index];
  const window = new Set<number>(), filterable = new Set<number>();
  const flushing = resolveSyscalls(FLUSHING_CALLS);
  const elsewhere = new Set(others);
  wrappers.forEach((o, i) => {
    if (i !== index) { for (const nr of o.declarations.syscalls.keys()) elsewhere.add(nr); }
  });
  for (const [nr, flags] of w.declarations.syscalls) {
    if (!(flags & DECLARE_PRE)) continue;
    window.add(nr);
    if (!wantsAll && !(flags & (DECLARE_POST | DECLARE_DENY)) && !elsewhere.has(nr) && !flushing.has(nr)) {
      filterable.add(nr);
    }
  }
  return { wrapper: w.spec.name, window, filterable };
}

/**
 * The interest of a set of policies and wrappers.
 *
 * @param wantsAll the output wants every observed call with its result (trace, --verbose): post observed too
 * @param always calls every source must make wait whatever the policy says (a source's tamper guard)
 */
export function buildInterest(
  policies: Policy[],
  wrappers: WrapperModule[],
  wantsAll: boolean,
  always: Iterable<number> = [],
): Interest {
  const calls = new Map<number, CallInterest>();
  /** Calls something wants whatever their arguments: their predicates are dropped at the end. */
  const whole = new Set<number>();
  const add = (nr: number, pre: PhaseInterest | undefined, post?: PhaseInterest, when?: CallPredicate) => {
    const c = calls.get(nr) ?? {};
    if (pre && c.pre !== "decide") c.pre = pre;
    if (post && c.post !== "decide") c.post = post;
    if (when === undefined) whole.add(nr);
    else c.when = [...(c.when ?? []), ...when];
    calls.set(nr, c);
  };
  /** Calls something may decide whatever their arguments; and the predicates of those decided only by some. */
  const decidedWhole = new Set<number>();
  const decidedWhen = new Map<number, ArgPredicate[]>();
  const decides = (nr: number, when: CallPredicate) => {
    if (when === undefined) decidedWhole.add(nr);
    else decidedWhen.set(nr, [...(decidedWhen.get(nr) ?? []), ...when]);
  };
  const ruled = new Set<number>();
  for (const policy of policies) {
    for (const nr of resolveSyscalls(policy.observe)) {
      ruled.add(nr);
      add(nr, "observe", wantsAll ? "observe" : undefined);
    }
    for (const rule of policy.rules) {
      const pre = rule.action === "alert" ? "observe" : "decide";
      // An alert rule fires on success by default: the call's result is wanted (a source that has none for this call
      // fires it at the attempt: host/policy/rule_decider.ts).
      const result = wantsAll || firesOnSuccess(rule, -1, "all", "") ? "observe" : undefined;
      for (const nr of ruleSyscalls(rule)) {
        ruled.add(nr);
        const when = rulePredicate(rule, nr);
        add(nr, pre, result, when);
        if (pre === "decide") decides(nr, when);
      }
    }
  }
  const opens = resolveSyscalls(OPEN_SYSCALLS);
  const late = new Set<number>(), notLate = new Set<number>(ruled);
  for (const w of wrappers) {
    for (const [nr, flags] of w.declarations.syscalls) {
      const deny = (flags & DECLARE_DENY) !== 0;
      if (flags & DECLARE_PRE) add(nr, deny ? "decide" : "observe");
      // In post only a kill acts: the caller waits only where the wrapper may kill.
      if (flags & DECLARE_POST) add(nr, undefined, deny ? "decide" : "observe"), calls.get(nr)!.resultExamined = true;
      // DECLARE_WRITES (ABI 1.5): only the opens that may write can be denied, before they run.
      const writes = (flags & DECLARE_WRITES) !== 0 && !(flags & DECLARE_POST) ? writeOpenPredicate(nr) : undefined;
      if (deny) decides(nr, writes);
      if (wantsAll) add(nr, undefined, "observe");
      // A watcher that tolerates a late kill and wants no open's result (the seccomp source runs those itself).
      if ((flags & DECLARE_KILL) !== 0 && !deny && !(opens.has(nr) && flags & DECLARE_POST)) late.add(nr);
      else notLate.add(nr);
    }
  }
  for (const nr of late) if (!notLate.has(nr)) calls.get(nr)!.late = true;
  // Refused whenever tried; the host says so.
  for (const nr of resolveSyscalls(ALWAYS_DENIED_SYSCALLS)) add(nr, "decide"), decides(nr, undefined);
  const held = [...always];
  for (const nr of held) add(nr, "decide"), decides(nr, undefined);
  for (const nr of whole) delete calls.get(nr)!.when;
  for (const [nr, when] of decidedWhen) {
    const c = calls.get(nr)!;
    if (!decidedWhole.has(nr) && c.post !== "decide") c.decideWhen = when;
  }
  const others = new Set<number>([...ruled, ...resolveSyscalls(ALWAYS_DENIED_SYSCALLS), ...held]);
  const filter = filterInterest(wrappers, others, wantsAll);
  return { calls, failClosed: failsClosed(policies, wrappers), ...(filter ? { filter } : {}) };
}

/** Whether any loaded policy would deny or kill: calls left waiting then fail closed. */
export function failsClosed(policies: Policy[], wrappers: WrapperModule[]): boolean {
  if (policies.some((p) => p.rules.some((r) => r.action !== "alert"))) return true;
  return wrappers.some((w) =>
    w.spec.fail === "closed" && [...w.declarations.syscalls.values()].some((f) => (f & DECLARE_DENY) !== 0)
  );
}

/** The calls a source may answer before they are examined (see the module comment). */
export function lateCalls(interest: Interest): Set<number> {
  const calls = new Set<number>();
  for (const [nr, c] of interest.calls) if (c.late) calls.add(nr);
  return calls;
}

/** An interest split by what may act on each call (see splitInterest). */
export interface SplitInterest {
  /** Calls a rule or wrapper may deny, kill before they run or rewrite, in either phase: they must be held. */
  readonly decided: Interest;
  /** Calls only observed: reported (rules that alert, observe lists, the trace) or killed late (MAY_KILL: seq). */
  readonly observed: Interest;
}

/**
 * Splits an interest into the calls that must be held before they run and the calls that are only observed. A `late`
 * call (only MAY_KILL watchers without DENY) is observed: its kill lands after the call on every source that does not
 * hold it, which is what MAY_KILL accepts.
 *
 * @param held calls held whenever the interest names them, whatever acts on them: the source's guard examines them
 *   only where they are held (the hybrid's opens: an open of /proc/<supervisor>/mem that only an alert rule examines
 *   would otherwise run unseen by the guard, docs/bpf.md)
 */
export function splitInterest(interest: Interest, held: ReadonlySet<number> = new Set()): SplitInterest {
  const decided = new Map<number, CallInterest>(), observed = new Map<number, CallInterest>();
  for (const [nr, c] of interest.calls) {
    (c.pre === "decide" || c.post === "decide" || held.has(nr) ? decided : observed).set(nr, c);
  }
  return {
    decided: { calls: decided, failClosed: interest.failClosed },
    observed: { calls: observed, failClosed: false },
  };
}
