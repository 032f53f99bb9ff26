/**
 * A mixed audit store for the index tests (./index_test.ts, ./index_cli_test.ts), and the scan's answer to compare.
 *
 * @module
 */
import { type AuditFilter, auditFilter } from "../../host/audit/filter.ts";
import type { AuditLog } from "../../host/audit/log.ts";
import type { AuditQueue, AuditRecord } from "../../host/audit/record.ts";

const QUEUES: AuditQueue[] = ["alerts", "verdicts", "audit", "faults", "lifecycle"];
const PROGRAMS = ["/usr/bin/cat", "/usr/bin/ssh", "/usr/sbin/sshd", "/bin/sh", "/opt/a", "/opt/a/b", "ssh-agent"];
const RULES = ["baseline", "baseline.credential-read", "net-deny", "rare-rule"];
const OUTCOMES = ["success", "failure", "unknown"];
export const T0 = Date.parse("2026-12-01T00:00:00Z");

/** Record i of a mixed store: the fields cycle with different periods, so every combination occurs. */
export function mixed(i: number): AuditRecord {
  const exe = PROGRAMS[i % 7];
  const r: Record<string, unknown> = {
    "@timestamp": new Date(T0 + (i * 7919 % 3001) * 1000).toISOString(), // not in sequence order
    "ecs.version": "8.11.0",
    "event.kind": "event",
    "event.category": ["process"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": OUTCOMES[i % 3],
    "event.module": "idwrap",
    "event.dataset": "idwrap.audit",
    message: `m${i}`,
    "process.pid": i,
    "process.executable": exe,
    "process.name": exe.slice(exe.lastIndexOf("/") + 1),
    "idwrap.queue": QUEUES[i % 5],
    "idwrap.source": "seccomp",
  };
  if (i % 4 !== 0) r["idwrap.wrapper"] = RULES[i % 4 === 1 ? 0 : 2];
  if (i % 4 === 1 && i % 3 === 0) r["rule.name"] = RULES[1];
  if (i % 997 === 5) r["rule.name"] = r["idwrap.wrapper"] = RULES[3];
  if (i % 11 === 0) r["host.name"] = "other-host"; // kept elsewhere: the log keeps it
  return r as unknown as AuditRecord;
}

/** The scan's answer, by a path that uses no index: every record in order, filtered. */
export async function scanned(log: AuditLog, filter: AuditFilter): Promise<number[]> {
  const matches = auditFilter(filter);
  const out: number[] = [];
  for await (const r of log.range(1, log.lastSequence)) {
    if (matches(r)) out.push(r["event.sequence"]!);
    if (out.length >= (filter.limit ?? Infinity)) break;
  }
  return out;
}
