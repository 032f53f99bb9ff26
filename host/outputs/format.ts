/**
 * Records as outputs write them: ECS (the record as the store keeps it) or an OCSF Detection Finding (class 2004,
 * OCSF 1.3), and RFC 5424 syslog lines around either.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import { FACILITIES, type OutputFormat } from "./config.ts";

/**
 * How severe a record is, 0 info … 4 critical: a wrapper's alert says (`event.severity`); a verdict (a denied or
 * killed call) and a wrapper fault are 3 (high), a policy rule's alert 2 (medium), anything else 0.
 */
export function severityOf(r: AuditRecord): number {
  if (r["event.severity"] !== undefined) return r["event.severity"];
  switch (r["idwrap.queue"]) {
    case "verdicts":
    case "faults":
      return 3;
    case "alerts":
      return 2;
    default:
      return 0;
  }
}

/** The OCSF version the findings follow. */
export const OCSF_VERSION = "1.3.0";

const OCSF_SEVERITY = ["Informational", "Low", "Medium", "High", "Critical"];

/** A record as an OCSF Detection Finding (alerts and verdicts; config.ts refuses other queues for OCSF). */
export function toOcsf(r: AuditRecord): Record<string, unknown> {
  const sev = severityOf(r);
  const denied = r["event.type"].includes("denied");
  const killed = r["idwrap.verdict"] === "kill";
  const rule = r["rule.name"] ?? (r["idwrap.queue"] === "verdicts" ? "verdict" : "idwrap");
  const attack: Record<string, unknown> = {};
  if (r["threat.technique.id"]) {
    attack.technique = { uid: r["threat.technique.id"], name: r["threat.technique.name"] };
    if (r["threat.technique.subtechnique.id"]) {
      attack.sub_technique = {
        uid: r["threat.technique.subtechnique.id"],
        name: r["threat.technique.subtechnique.name"],
      };
    }
    attack.version = "v15";
  }
  const process: Record<string, unknown> = { pid: r["process.pid"] };
  if (r["process.name"]) process.name = r["process.name"];
  if (r["process.executable"]) process.file = { path: r["process.executable"], name: r["process.name"] };
  if (r["process.args"]) process.cmd_line = r["process.args"].join(" ");
  if (r["process.thread.id"] !== undefined) process.tid = r["process.thread.id"];
  if (r["user.id"] !== undefined) process.user = { uid: r["user.id"] };
  if (r["container.id"]) process.container = { uid: r["container.id"], runtime: r["container.runtime"] };
  const finding: Record<string, unknown> = {
    class_uid: 2004,
    class_name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
    activity_id: 1,
    activity_name: "Create",
    type_uid: 200401,
    type_name: "Detection Finding: Create",
    time: Date.parse(r["@timestamp"]),
    severity_id: sev + 1,
    severity: OCSF_SEVERITY[sev],
    status_id: 1,
    status: "New",
    action_id: denied ? 2 : 1,
    action: denied ? "Denied" : "Allowed",
    disposition_id: killed ? 4 : denied ? 2 : 17,
    disposition: killed ? "Quarantined" : denied ? "Blocked" : "Logged",
    message: r.message,
    metadata: {
      version: OCSF_VERSION,
      product: { name: "idwrap", vendor_name: "idwrap", version: r["agent.version"] },
      uid: r["event.sequence"] !== undefined ? `${r["agent.id"] ?? ""}:${r["event.sequence"]}` : undefined,
      log_name: r["idwrap.queue"],
      original_time: r["@timestamp"],
    },
    finding_info: {
      uid: `${r["agent.id"] ?? ""}:${r["event.sequence"] ?? ""}`,
      title: rule,
      desc: r.message,
      types: [r["idwrap.queue"] === "verdicts" ? "Enforcement" : "Detection"],
      analytic: { name: rule, uid: r["rule.id"], type_id: 1, type: "Rule", category: r["rule.ruleset"] },
      attacks: Object.keys(attack).length ? [attack] : undefined,
    },
    device: {
      hostname: r["host.name"],
      uid: r["host.id"],
      type_id: 0,
      os: { type_id: 200, type: "Linux", name: "Linux" },
    },
    actor: { process },
    unmapped: {
      "idwrap.verdict": r["idwrap.verdict"],
      "idwrap.syscall.name": r["idwrap.syscall.name"],
      "file.path": r["file.path"],
      "destination.address": r["destination.address"],
      "agent.id": r["agent.id"],
      "idwrap.cgroup": r["idwrap.cgroup"],
    },
  };
  return JSON.parse(JSON.stringify(finding)); // drops the undefined members
}

/** A record in an output's format, as one JSON value. */
export function formatRecord(r: AuditRecord, format: OutputFormat): unknown {
  return format === "ocsf" ? toOcsf(r) : r;
}

/** RFC 5424 severities (0 emergency … 7 debug) for idwrap's 0 info … 4 critical. */
const SYSLOG_SEVERITY = [6, 5, 4, 3, 2];

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME idwrap PROCID QUEUE - JSON`, with the record (in the output's
 * format) as the message. Header fields are printable US-ASCII without spaces (the RFC's PRINTUSASCII), cut to their
 * lengths.
 */
export function syslogLine(r: AuditRecord, format: OutputFormat, facility: string): string {
  const pri = FACILITIES[facility] * 8 + SYSLOG_SEVERITY[severityOf(r)];
  const field = (s: string | undefined, max: number) => (s ?? "").replace(/[^\x21-\x7e]/g, "").slice(0, max) || "-";
  const host = field(r["host.name"] ?? Deno.hostname(), 255);
  return `<${pri}>1 ${r["@timestamp"]} ${host} idwrap ${Deno.pid} ${field(r["idwrap.queue"], 32)} - ${
    JSON.stringify(formatRecord(r, format))
  }`;
}
