/**
 * What each event source can serve (DESIGN.md's capability table), so the
 * host refuses a wrapper it cannot serve instead of silently skipping hooks.
 *
 * @module
 */
import type { SourceCapabilities } from "../capabilities.ts";
import type { SourceName } from "../events.ts";
import { OPEN_SYSCALLS, resolveSyscalls } from "../syscalls/mod.ts";

export type { SourceCapabilities } from "../capabilities.ts";

/** The seccomp source: post results only where it emulates the call. */
export const SECCOMP_CAPABILITIES: SourceCapabilities = {
  name: "seccomp",
  decide: true,
  post: resolveSyscalls(OPEN_SYSCALLS),
  rewrite: false,
  observeWithoutBlocking: false,
  systemWide: false,
  copiesArguments: false,
};

/** The kernel module: post results for every call, argument rewrite. */
export const KMOD_CAPABILITIES: SourceCapabilities = {
  name: "kmod",
  decide: true,
  post: "all",
  rewrite: true,
  observeWithoutBlocking: true,
  systemWide: false,
  copiesArguments: true,
};

/**
 * The bpf source (docs/bpf.md): observation only — every call is reported without waiting, with its result, and a
 * kill lands after the call ran; copies are taken at sys_enter and may race.
 */
export const BPF_CAPABILITIES: SourceCapabilities = {
  name: "bpf",
  decide: false,
  post: "all",
  rewrite: false,
  observeWithoutBlocking: true,
  systemWide: false,
  copiesArguments: false,
};

/**
 * The hybrid source (docs/bpf.md, "The hybrid"): calls something may deny are held on seccomp user-notify, the
 * rest observed through the bpf ring. Every call's result reaches post hooks (the ring's exit record, or the seccomp
 * source's own emulated open); no rewrite (seccomp cannot).
 */
export const HYBRID_CAPABILITIES: SourceCapabilities = {
  name: "hybrid",
  decide: true,
  post: "all",
  rewrite: false,
  observeWithoutBlocking: true,
  systemWide: false,
  copiesArguments: false,
};

const BY_NAME: Record<SourceName, SourceCapabilities> = {
  seccomp: SECCOMP_CAPABILITIES,
  kmod: KMOD_CAPABILITIES,
  bpf: BPF_CAPABILITIES,
  hybrid: HYBRID_CAPABILITIES,
};

/** The capabilities of a source by name. */
export function capabilitiesOf(source: SourceName): SourceCapabilities {
  return BY_NAME[source];
}
