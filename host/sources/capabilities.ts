/**
 * What each event source can serve (DESIGN.md's capability table), so the
 * host refuses a wrapper it cannot serve instead of silently skipping hooks.
 *
 * @module
 */
import type { SourceName } from "../events.ts";
import { OPEN_SYSCALLS, resolveSyscalls } from "../syscalls/mod.ts";

/** One source's abilities. */
export interface SourceCapabilities {
  name: SourceName;
  /** Syscalls with post events; "all" where every call has them. */
  post: ReadonlySet<number> | "all";
  /** Can rewrite arguments (verdict action 3). */
  rewrite: boolean;
}

/** The seccomp source: post results only where it emulates the call. */
export const SECCOMP_CAPABILITIES: SourceCapabilities = {
  name: "seccomp",
  post: resolveSyscalls(OPEN_SYSCALLS),
  rewrite: false,
};

/** The kernel module: post results for every call, argument rewrite. */
export const KMOD_CAPABILITIES: SourceCapabilities = {
  name: "kmod",
  post: "all",
  rewrite: true,
};

/** The bpf source (observation only, docs/bpf.md): post results for every call, no rewrite. */
export const BPF_CAPABILITIES: SourceCapabilities = {
  name: "bpf",
  post: "all",
  rewrite: false,
};

/** The capabilities of a source by name. */
export function capabilitiesOf(source: SourceName): SourceCapabilities {
  return source === "kmod" ? KMOD_CAPABILITIES : source === "bpf" ? BPF_CAPABILITIES : SECCOMP_CAPABILITIES;
}
