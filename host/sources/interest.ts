/**
 * What each event source must intercept, and how. The kernel module's
 * interest mask, from the same inputs as the seccomp filter (policies'
 * observe lists and rules, the wrappers' declarations), but finer: a call
 * waits for the host (DECIDE) only where a rule or a wrapper may deny, kill
 * or rewrite it; where they only watch, the module reports it through its
 * ring and the call goes on at once (OBSERVE); the rare calls that could reach
 * the supervisor (its guard: kmod/tamper.ts) always wait. And the calls the seccomp
 * source may answer before it examines them.
 *
 * @module
 */
import type { Policy } from "../policy/policy.ts";
import { DECLARE_DENY, DECLARE_KILL, DECLARE_POST, DECLARE_PRE } from "../runtime/abi.ts";
import type { WrapperModule } from "../runtime/module.ts";
import { ALWAYS_DENIED_SYSCALLS, OPEN_SYSCALLS, resolveSyscalls } from "../syscalls/mod.ts";
import { KMOD_GUARDED_SYSCALLS } from "./kmod/tamper.ts";
import { INTEREST, MAX_SYSCALLS } from "./kmod/uapi.ts";

/**
 * Syscall number → INTEREST bits.
 *
 * @param wantsAll the output wants every observed call with its result (trace, --verbose): post records too
 */
export function interestMask(policies: Policy[], wrappers: WrapperModule[], wantsAll: boolean): Map<number, number> {
  const mask = new Map<number, number>();
  const add = (nr: number, bits: number) => {
    if (nr >= 0 && nr < MAX_SYSCALLS) mask.set(nr, (mask.get(nr) ?? 0) | bits);
  };
  for (const policy of policies) {
    // Observed calls are reported; with the output wanting every call, with their results.
    for (const nr of resolveSyscalls(policy.observe)) {
      add(nr, INTEREST.PRE_OBSERVE | (wantsAll ? INTEREST.POST_OBSERVE : 0));
    }
    for (const rule of policy.rules) {
      const bits = rule.action === "alert" ? INTEREST.PRE_OBSERVE : INTEREST.PRE_DECIDE;
      for (const nr of resolveSyscalls(rule.syscalls)) add(nr, bits | (wantsAll ? INTEREST.POST_OBSERVE : 0));
    }
  }
  for (const w of wrappers) {
    for (const [nr, flags] of w.declarations.syscalls) {
      const deny = (flags & DECLARE_DENY) !== 0;
      if (flags & DECLARE_PRE) add(nr, deny ? INTEREST.PRE_DECIDE : INTEREST.PRE_OBSERVE);
      // In post only a kill acts: the caller waits only where the wrapper may kill.
      if (flags & DECLARE_POST) add(nr, deny ? INTEREST.POST_DECIDE : INTEREST.POST_OBSERVE);
      if (wantsAll) add(nr, INTEREST.POST_OBSERVE);
    }
  }
  // Reported whenever tried (the module refuses io_uring itself; the host says so).
  for (const nr of resolveSyscalls(ALWAYS_DENIED_SYSCALLS)) add(nr, INTEREST.PRE_DECIDE);
  // The supervisor's guard, whatever the policy: the calls that could reach it (rare ones) wait for the host, which
  // refuses them when they do (host/sources/kmod/tamper.ts). Opens are guarded where the policy makes them wait
  // anyway: making every open wait would undo what the module is for, and idwrap being non-dumpable already keeps a
  // program that is not root out of its /proc entries.
  for (const nr of resolveSyscalls(KMOD_GUARDED_SYSCALLS)) add(nr, INTEREST.PRE_DECIDE);
  // A DECIDE bit makes the OBSERVE bit of the same phase redundant.
  for (const [nr, bits] of mask) {
    let b = bits;
    if (b & INTEREST.PRE_DECIDE) b &= ~INTEREST.PRE_OBSERVE;
    if (b & INTEREST.POST_DECIDE) b &= ~INTEREST.POST_OBSERVE;
    mask.set(nr, b);
  }
  return mask;
}

/**
 * Calls the seccomp source answers before they are examined: every wrapper
 * that declares the call declared it `MAY_KILL` (it watches, tolerates a kill
 * landing a call late, and reads the call's pointer arguments, if at all,
 * after the call ran: seq) and no rule or observe list covers it (those read
 * arguments for matching and reports). The module observes such calls without
 * waiting anyway (OBSERVE records). Opens whose result a post hook wants are
 * left out: the seccomp source runs those itself.
 */
export function answerFirstCalls(policies: Policy[], wrappers: WrapperModule[]): Set<number> {
  const ruled = new Set<number>();
  for (const p of policies) {
    for (const nr of resolveSyscalls(p.observe)) ruled.add(nr);
    for (const r of p.rules) for (const nr of resolveSyscalls(r.syscalls)) ruled.add(nr);
  }
  const opens = resolveSyscalls(OPEN_SYSCALLS);
  const calls = new Set<number>();
  const refused = new Set<number>();
  for (const w of wrappers) {
    for (const [nr, flags] of w.declarations.syscalls) {
      const watchesLate = (flags & DECLARE_KILL) !== 0 && (flags & DECLARE_DENY) === 0 &&
        !(opens.has(nr) && flags & DECLARE_POST);
      if (watchesLate && !ruled.has(nr)) calls.add(nr);
      else refused.add(nr);
    }
  }
  for (const nr of refused) calls.delete(nr);
  return calls;
}

/** Whether any loaded policy would deny or kill: the module's fail mode is then closed. */
export function failClosed(policies: Policy[], wrappers: WrapperModule[]): boolean {
  if (policies.some((p) => p.rules.some((r) => r.action !== "alert"))) return true;
  return wrappers.some((w) =>
    w.spec.fail === "closed" && [...w.declarations.syscalls.values()].some((f) => (f & DECLARE_DENY) !== 0)
  );
}

/** A mask as "openat:pre-decide,post-observe …", for doctor and the verbose log. */
export function describeMask(mask: ReadonlyMap<number, number>, name: (nr: number) => string): string {
  const words: [number, string][] = [
    [INTEREST.PRE_OBSERVE, "pre-observe"],
    [INTEREST.PRE_DECIDE, "pre-decide"],
    [INTEREST.POST_OBSERVE, "post-observe"],
    [INTEREST.POST_DECIDE, "post-decide"],
  ];
  return [...mask].sort((a, b) => a[0] - b[0]).map(([nr, bits]) =>
    `${name(nr)}:${words.filter(([b]) => bits & b).map(([, w]) => w).join(",")}`
  ).join(" ");
}
