/**
 * What an event source can serve (DESIGN.md's capability table): the host
 * refuses, with a clear error naming the wrapper and hook, a wrapper whose
 * required hooks the active source cannot serve (runtime/module.ts), and the
 * WSS plans around the rest. Core: every floor may read it.
 *
 * @module
 */
import type { SourceName } from "./events.ts";

/** One source's abilities. */
export interface SourceCapabilities {
  name: SourceName;
  /** pre calls can wait for a verdict (deny with an errno). bpf: false (observation only). */
  decide: boolean;
  /** Syscalls with post events; "all" where every call has them. */
  post: ReadonlySet<number> | "all";
  /** Can carry out rewrite verdicts (verdict action 3: a new argument value or path). */
  rewrite: boolean;
  /** Calls can be reported without their caller waiting; a kill on such a call lands late. */
  observeWithoutBlocking: boolean;
  /** Sees every process on the host (activation at exec), not only the trees it was attached to. */
  systemWide: boolean;
  /**
   * Pointer arguments are copied once where the kernel uses them, so a decision on them is on the bytes the
   * kernel acts on (kmod). Where false, the caller's memory is read and a racing thread may change it after the
   * check (Watson, WOOT 2007): the source must act on the checked object itself (seccomp's emulation).
   */
  copiesArguments: boolean;
}
