/**
 * What one wrapper's hooks did in one wrapped tree: how often each hook ran
 * and what they answered. The chain counts (host/runtime/chain.ts), the WSS
 * keeps one tally per session (host/wss/summary.ts), `idwrap run` reports it.
 *
 * @module
 */

/** One wrapper's counts in one session (or in a chain the WSS does not drive). */
export interface WrapperHookCounts {
  /** The wrapper's name in the policy. */
  wrapper: string;
  /** `idwrap_on_syscall` runs on pre events (before the kernel runs the call). */
  pre: number;
  /** `idwrap_on_syscall` runs on post events (the call's result known). */
  post: number;
  /** `idwrap_on_lifecycle` runs (exec, exit). */
  lifecycle: number;
  /** `idwrap_on_abstract` runs (an abstract event it subscribes to was emitted). */
  abstract: number;
  /**
   * Verdicts other than allow it gave on calls (deny, kill, rewrite): its own, its `on_alert` response's and its fail
   * mode's. Whether the verdict was enforced (a deny in a post hook is not) is the session's `denied`/`killed`.
   */
  verdicts: number;
  /** Alerts it raised. */
  alerts: number;
  /** Its failures: traps, budget or memory overruns, malformed verdicts, `idwrap_init` refusals. */
  faults: number;
}

/** A session's counts, one entry per wrapper, in the order wrappers were first bound. */
export type HookTally = WrapperHookCounts[];

/**
 * The entry of `wrapper` in `tally`, added (at zero) if missing.
 *
 * @param tally a session's counts
 * @param wrapper a wrapper's name
 * @returns the entry, to be counted in place
 */
export function countsOf(tally: HookTally, wrapper: string): WrapperHookCounts {
  let row = tally.find((r) => r.wrapper === wrapper);
  if (!row) {
    tally.push(row = { wrapper, pre: 0, post: 0, lifecycle: 0, abstract: 0, verdicts: 0, alerts: 0, faults: 0 });
  }
  return row;
}
