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

/** The capabilities of a source by name. */
export function capabilitiesOf(source: SourceName): SourceCapabilities {
  return source === "kmod" ? KMOD_CAPABILITIES : source === "bpf" ? BPF_CAPABILITIES : SECCOMP_CAPABILITIES;
}
