/**
 * The refusals the WSS applies on every source, whatever the policy says,
 * and the shape of a source's own (its tamper guard's).
 *
 * @module
 */
import type { SyscallAbi } from "../events.ts";

const EPERM = 1, ENOSYS = 38;

/** The alert id of a refused attempt on the supervisor, on every source. */
export const TAMPER_ALERT = "idwrap.supervisor-tamper";

/** The alert id of a refused attempt to drive a process outside the tree (ptrace attach, process_vm_writev/readv). */
export const OUTSIDE_TREE_ALERT = "idwrap.outside-tree";

/**
 * The alert id of an open refused because the guard could not tell whether it reaches the supervisor: a procfs object
 * on a mount it cannot place (a mount namespace of the tree's own, as `unshare -Urm` makes, before its /proc/self/uid_map
 * is written). Failed closed; not evidence of an attempt on the supervisor (rt9 M2).
 */
export const UNPLACED_PROCFS_ALERT = "idwrap.procfs-unplaced";

/** Why a call was refused: the audit record's reason, its ATT&CK technique, the errno the caller gets. */
export interface Refusal {
  reason: string;
  technique: string;
  /** @default EPERM */
  errno?: number;
  /** Refused as a rule of the tree, not because it aimed at the supervisor: recorded, not alerted. */
  quiet?: boolean;
  /** The alert's id when it aimed at something else than the supervisor (default TAMPER_ALERT). */
  alert?: string;
}

/** int 0x80 and x32 calls never run: a filter that let them through would be blind to them. */
export function foreignAbiRefusal(abi: SyscallAbi): { errno: number; reason: string } {
  return { errno: ENOSYS, reason: `${abi} system call ABI is not allowed` };
}

/** io_uring runs file and network operations that no system call interception sees. */
export const IO_URING_REFUSAL = { errno: EPERM, reason: "io_uring bypasses system call interception" } as const;

/**
 * The alert of a call that every deciding source refuses (an int 0x80 or x32 call, io_uring_setup) seen on a source
 * that only observes (bpf): it was not refused and ran, so it is reported as what it is, never as a denial (red team
 * rt9 F2).
 */
export const UNREFUSED_ALERT = "idwrap.unrefused-call";

/** Why such a call is alerted: what ran, and what no rule or wrapper sees because of it. */
export function unrefusedReason(name: string, abi: SyscallAbi, judgedAs?: string): string {
  if (abi === "x86_64") {
    return `${name} ran: this source only observes and cannot refuse it (seccomp and kmod do); the ring's operations ` +
      "(opens, reads, writes, connects) are not system calls, and no rule or wrapper sees them";
  }
  return `an ${abi} system call ran: this source only observes and cannot refuse it (seccomp and kmod do, ENOSYS); ` +
    (judgedAs ? `rules judged it as the x86_64 ${judgedAs}` : "no rule or wrapper judged it");
}
