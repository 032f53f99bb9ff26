/**
 * The WSS's interest model (host/wss/interest.ts) compiled into the kernel
 * module's interest mask: a call waits for the host (DECIDE) only where a
 * rule or a wrapper may deny, kill or rewrite it; where they only watch, the
 * module reports it through its ring and the call goes on at once (OBSERVE);
 * the rare calls that could reach the supervisor (its guard: ./tamper.ts)
 * always wait.
 *
 * @module
 */
import type { Policy } from "../../policy/policy.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { resolveSyscalls } from "../../syscalls/mod.ts";
import { buildInterest, type Interest } from "../../wss/interest.ts";
import { MMAP } from "../../policy/rule_decider.ts";
import { KMOD_GUARDED_SYSCALLS } from "./tamper.ts";
import { INTEREST, MAX_SYSCALLS } from "./uapi.ts";

/**
 * The interest as syscall number → INTEREST bits. The supervisor's guard is added whatever the policy: opens are
 * guarded only where the policy makes them wait anyway (making every open wait would undo what the module is for,
 * and idwrap being non-dumpable already keeps a program that is not root out of its /proc entries).
 */
export function compileInterest(interest: Interest): Map<number, number> {
  const mask = new Map<number, number>();
  const add = (nr: number, bits: number) => {
    if (nr >= 0 && nr < MAX_SYSCALLS) mask.set(nr, (mask.get(nr) ?? 0) | bits);
  };
  for (const [nr, c] of interest.calls) {
    // An exec rule's executable mappings (host/policy/rule_decider.ts stopsProgram): the module does not give the
    // mapped fd's file yet, so holding them would cost every mmap and catch none (docs/policy.md, "Rules").
    if (nr === MMAP && c.when) continue;
    // A DECIDE bit makes the OBSERVE bit of the same phase redundant.
    if (c.pre) add(nr, c.pre === "decide" ? INTEREST.PRE_DECIDE : INTEREST.PRE_OBSERVE);
    if (c.post) add(nr, c.post === "decide" ? INTEREST.POST_DECIDE : INTEREST.POST_OBSERVE);
  }
  for (const nr of resolveSyscalls(KMOD_GUARDED_SYSCALLS)) {
    add(nr, INTEREST.PRE_DECIDE);
    mask.set(nr, mask.get(nr)! & ~INTEREST.PRE_OBSERVE);
  }
  return mask;
}

/**
 * Syscall number → INTEREST bits, for policies and wrappers.
 *
 * @param wantsAll the output wants every observed call with its result (trace, --verbose): post records too
 */
export function interestMask(policies: Policy[], wrappers: WrapperModule[], wantsAll: boolean): Map<number, number> {
  return compileInterest(buildInterest(policies, wrappers, wantsAll));
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
