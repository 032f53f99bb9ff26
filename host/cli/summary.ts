/**
 * How `idwrap run` reports a tree's summary (host/wss/summary.ts): one text
 * line by default, a line per wrapper's hook counts with --verbose, and one
 * JSON record (the report's last line) with --json. docs/audit.md describes
 * the fields.
 *
 * @module
 */
import type { WrapperHookCounts } from "../hook_counts.ts";
import type { SupervisorSummary } from "../wss/summary.ts";

/** The JSON form of a run's end: the last line of `idwrap run --json`. */
export interface SummaryRecord extends SupervisorSummary {
  kind: "summary";
  command: string[];
  exitCode: number;
  signal?: string;
  /** The daemon served the command. */
  daemon?: boolean;
}

/**
 * The counts of the text summary line, after "exited with N" (empty without a summary).
 *
 * @param s the tree's summary
 * @returns "; N calls notified, …"
 */
export function summaryCounts(s: SupervisorSummary | undefined): string {
  if (!s) return "";
  return `; ${s.notifications} calls notified, ${s.denied} denied, ${s.killed} killed, ${s.emulated} opens emulated${
    s.rewritten ? `, ${s.rewritten} rewritten` : ""
  }${s.lost ? `, ${s.lost} records lost` : ""}${
    s.auditWaits
      ? `; calls waited ${s.auditWaits.count} times (${s.auditWaits.ms} ms) for the audit store to catch up`
      : ""
  }${s.unjournaled ? `; ${s.unjournaled} records could not be journaled` : ""}`;
}

/**
 * One line per wrapper: how often its hooks ran and what they answered (`idwrap run -v`).
 *
 * @param s the tree's summary
 * @returns lines such as "hooks of baseline: 812 pre, 0 post, 40 lifecycle, 0 abstract; 0 non-allow verdicts, 1 alert, 0 faults"
 */
export function hookLines(s: SupervisorSummary | undefined): string[] {
  return (s?.hooks ?? []).map((c: WrapperHookCounts) =>
    `hooks of ${c.wrapper}: ${c.pre} pre, ${c.post} post, ${c.lifecycle} lifecycle, ${c.abstract} abstract; ` +
    `${plural(c.verdicts, "non-allow verdict")}, ${plural(c.alerts, "alert")}, ${plural(c.faults, "fault")}`
  );
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}
