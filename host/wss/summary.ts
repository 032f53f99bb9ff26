/**
 * What the WSS reports about its wrapped trees: the per-session summary and
 * a row of its process table (`idwrap ps`).
 *
 * @module
 */
import type { ProgramIdentity } from "../events.ts";
import type { HookTally } from "../hook_counts.ts";

/** What a finished wrapped tree reports. */
export interface SupervisorSummary {
  /** Calls the source handed to the host (seccomp: notifications; kmod: syscall records). */
  notifications: number;
  denied: number;
  killed: number;
  /** Calls run by the supervisor (seccomp) or the module (kmod) on the checked arguments. */
  emulated: number;
  /** seccomp: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP was accepted. */
  syncWakeUp: boolean;
  /** kmod: calls run with rewritten arguments. */
  rewritten?: number;
  /** kmod: observe records the module dropped (ring full). */
  lost?: number;
  /** Times the supervisor held calls while the audit log caught up (an alert flood's back-pressure), and for how long. */
  auditWaits?: { count: number; ms: number };
  /** Records the audit journal could not take (a full disk), other than calls' (those calls failed closed). */
  unjournaled?: number;
  /** Per wrapper (by name, in load order): how often each of its hooks ran in this tree, and what they answered. */
  hooks: HookTally;
}

/** An empty summary. */
export function newSummary(): SupervisorSummary {
  return { notifications: 0, denied: 0, killed: 0, emulated: 0, syncWakeUp: false, hooks: [] };
}

/** A row of `idwrap ps`. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  session: number;
  program: ProgramIdentity;
  wrappers: string[];
}
