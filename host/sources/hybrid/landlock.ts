/**
 * The hybrid's kernel-side guard for read-only opens (docs/bpf.md, "The hybrid"). The tamper guard examines an open of
 * `/proc/<supervisor>/…` only where the filter notifies it; holding every open for it kept the hybrid's opens round
 * trips. Where the kernel has Landlock with scopes (ABI 6, Linux 6.12), the launcher (kmod/seccomp/launch.c,
 * `--landlock`) puts the tree in a Landlock domain before its filter: the kernel then refuses, from inside the domain,
 * every ptrace access check on a task outside it — `/proc/<supervisor>/mem`, `fd/N`, `cwd`, `root`, `exe`,
 * `map_files/`, `maps`, ptrace, process_vm_*, pidfd_getfd — whatever the caller's capabilities and by any name. The
 * opens that may write stay held for the guard (an `oom_score_adj` or `attr/` write has no ptrace check).
 *
 * The domain scopes abstract unix sockets (the least a domain can handle: a file-system right would refuse mounts), so
 * the tree cannot connect to an abstract socket bound outside it; and it cannot ptrace or inspect through
 * `/proc/PID/{fd,maps,…}` any process outside it.
 *
 * @module
 */
import { libc } from "../../unsafe/libc.ts";

const SYS_LANDLOCK_CREATE_RULESET = 444n;
const LANDLOCK_CREATE_RULESET_VERSION = 1n;
/** The first Landlock ABI with scopes (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET): the launcher's domain needs it. */
export const LANDLOCK_SCOPED_ABI = 6;

/** The kernel's Landlock ABI version, or 0 when it has none (not built, not enabled: `lsm=` lacks it). */
export function landlockAbi(): number {
  const v = libc.symbols.syscall(SYS_LANDLOCK_CREATE_RULESET, 0n, 0n, LANDLOCK_CREATE_RULESET_VERSION, 0n, 0n, 0n);
  return v > 0n ? Number(v) : 0;
}

/**
 * Whether the hybrid's launcher puts the tree in a Landlock domain: when the kernel can, unless
 * `IDWRAP_HYBRID_LANDLOCK=0` (then every open the policies name is held on seccomp, as before).
 */
export function hybridLandlock(): boolean {
  if (Deno.env.get("IDWRAP_HYBRID_LANDLOCK") === "0") return false;
  return landlockAbi() >= LANDLOCK_SCOPED_ABI;
}
