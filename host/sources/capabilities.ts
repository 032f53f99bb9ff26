/**
 * What each event source can serve (DESIGN.md's capability table), so the
 * host refuses a wrapper it cannot serve instead of silently skipping hooks.
 *
 * @module
 */
import type { SourceCapabilities } from "../capabilities.ts";
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

/** The capabilities of a source by name. */
export function capabilitiesOf(source: "seccomp" | "kmod"): SourceCapabilities {
  return source === "kmod" ? KMOD_CAPABILITIES : SECCOMP_CAPABILITIES;
}
