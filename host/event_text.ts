/**
 * What the trace printer and the audit record both say about an event:
 * decoded arguments as strace prints them, and which events are notable
 * (refused, alerted, matched a rule, or lifecycle). Kept apart from both
 * so that the audit record is built without the trace printer.
 *
 * @module
 */
import type { DecodedArgs, HostEvent, WrapperReport } from "./events.ts";

/** Formats decoded arguments the way strace prints them. */
export function formatArgs(d: DecodedArgs): string {
  const parts: string[] = [];
  if (d.dirfd !== undefined) parts.push(String(d.dirfd));
  if (d.path !== undefined) parts.push(JSON.stringify(d.path));
  if (d.path2 !== undefined) parts.push(JSON.stringify(d.path2));
  if (d.argv !== undefined) parts.push(JSON.stringify(d.argv));
  if (d.addr !== undefined) parts.push(d.addr);
  if (d.flags !== undefined) parts.push(d.flags);
  if (d.mode !== undefined) parts.push(d.mode);
  if (d.cloneFlags !== undefined) parts.push(d.cloneFlags);
  if (d.signal !== undefined) parts.push(`sig ${d.signal}`);
  if (d.data !== undefined) parts.push(`<${d.data.length} bytes>`);
  if (d.fault !== undefined) parts.push(`<fault ${d.fault}>`);
  return parts.join(", ");
}

/** Whether an event is a wrapper's report (alert, audit, fault, log). */
export function isReport(e: HostEvent): e is WrapperReport {
  return e.kind === "alert" || e.kind === "audit" || e.kind === "fault" || e.kind === "log";
}

/** Whether a call was refused or matched a rule. */
export function isNotable(e: HostEvent): boolean {
  return e.kind !== "syscall" || (e.verdict !== undefined && e.verdict !== "allow") || !!e.alerts?.length ||
    e.reason !== undefined;
}
