/**
 * The WSS's interest model (host/wss/interest.ts) as the seccomp source
 * needs it: the calls it may answer before it examines them. Every notified
 * call waits; where only late watchers want a call (MAY_KILL without DENY, no
 * rule or observe list: seq), the caller goes on at once, as under the
 * module's OBSERVE, and the watchers see it after. Opens whose result a post
 * hook wants are left out: this source runs those itself.
 *
 * @module
 */
import type { Policy } from "../../policy/policy.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { buildInterest, lateCalls } from "../../wss/interest.ts";

/** The calls answered before they are examined. */
export function answerFirstCalls(policies: Policy[], wrappers: WrapperModule[]): Set<number> {
  return lateCalls(buildInterest(policies, wrappers, false));
}
