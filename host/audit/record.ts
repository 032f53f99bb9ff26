/**
 * Audit records: the host events that are audit data, as flat JSON objects
 * with Elastic Common Schema (ECS 8.x) field names, each in one named audit
 * queue (docs/audit.md has the mapping and every field).
 *
 * @module
 */
import type { HostEvent, LifecycleEvent, ProgramIdentity, SourceName, SyscallEvent, WrapperReport } from "../events.ts";
import { SYSCALL_GROUPS } from "../syscalls/mod.ts";
import { formatArgs } from "../event_text.ts";
import { techniqueOf, type ThreatFields, threatFields } from "./attack.ts";
import { containerOf } from "./container.ts";

/** The audit queues, in the order docs/audit.md lists them. */
export const AUDIT_QUEUES = ["alerts", "audit", "faults", "verdicts", "lifecycle"] as const;

/** One audit queue: engines and consumers register for queues by these names. */
export type AuditQueue = typeof AUDIT_QUEUES[number];

/** Whether a string names an audit queue. */
export function isAuditQueue(name: string): name is AuditQueue {
  return (AUDIT_QUEUES as readonly string[]).includes(name);
}

/** The ECS version the records follow. */
export const ECS_VERSION = "8.11.0";

/** The longest `message` a record keeps, in characters; longer ones are cut and `idwrap.truncated` set. */
export const MAX_MESSAGE = 16 * 1024;

/**
 * One audit record: a flat JSON object whose keys are ECS field names
 * (dotted, not nested), plus idwrap's own fields under `idwrap.*`.
 */
export interface AuditRecord {
  /** When the event happened (ISO 8601, UTC). */
  "@timestamp": string;
  "ecs.version": string;
  /** "alert" for alerts, denials and kills; "event" otherwise. */
  "event.kind": "alert" | "event";
  /** ECS categories: "process", "file", "network", and "intrusion_detection" for alerts and verdicts. */
  "event.category": string[];
  /** ECS types: "start", "end", "info", "denied" (each expected by ECS for the record's categories). */
  "event.type": string[];
  /** The syscall name, or "spawn", "exec", "exit", "wrapper-alert", "wrapper-audit", "wrapper-fault". */
  "event.action": string;
  "event.outcome": "success" | "failure" | "unknown";
  "event.module": "idwrap";
  /** `idwrap.<queue>`. */
  "event.dataset": string;
  /** The audit log's sequence number, assigned by `AuditLog.append`: increasing, never reused. */
  "event.sequence"?: number;
  /** 0 info, 1 low, 2 medium, 3 high, 4 critical: only where a wrapper gave one. */
  "event.severity"?: number;
  message: string;
  /** faults: what failed in the wrapper. */
  "error.message"?: string;
  /** faults: `wrapper-fault`. */
  "error.type"?: string;
  "process.pid": number;
  "process.parent.pid"?: number;
  "process.thread.id"?: number;
  "process.executable"?: string;
  "process.name"?: string;
  /** The argument vector at the process's last exec (bounded: at most 64 arguments, 1 Ki characters each, 8 Ki in all). */
  "process.args"?: string[];
  /** How many arguments the exec really had. */
  "process.args_count"?: number;
  "process.exit_code"?: number;
  "user.id"?: string;
  "group.id"?: string;
  /** The path argument as the process passed it (it may be relative to its cwd or a dirfd). */
  "file.path"?: string;
  "destination.address"?: string;
  "destination.ip"?: string;
  "destination.port"?: number;
  "source.address"?: string;
  "source.ip"?: string;
  "source.port"?: number;
  /** The rule: a policy rule's id, a wrapper's rule (`baseline.credential-read`), else the wrapper's name. */
  "rule.name"?: string;
  /** The same as `rule.name`: rule ids are names in idwrap. */
  "rule.id"?: string;
  /** Wrapper reports: the wrapper whose rule it is. */
  "rule.ruleset"?: string;
  "threat.framework"?: ThreatFields["threat.framework"];
  "threat.technique.id"?: string;
  "threat.technique.name"?: string;
  "threat.technique.reference"?: string;
  "threat.technique.subtechnique.id"?: string;
  "threat.technique.subtechnique.name"?: string;
  "threat.technique.subtechnique.reference"?: string;
  /** Tags of the policy rules that matched. */
  tags?: string[];
  /** The container the process's cgroup names (64 hex digits). */
  "container.id"?: string;
  /** docker, containerd, cri-o or podman, where the cgroup's name says. */
  "container.runtime"?: string;
  /** kubernetes, for a cgroup under kubepods. */
  "orchestrator.type"?: string;
  /** Set by the audit log (./identity.ts) on every record it keeps. */
  "host.name"?: string;
  "host.hostname"?: string;
  "host.id"?: string;
  "host.os.type"?: string;
  "agent.type"?: string;
  "agent.name"?: string;
  "agent.version"?: string;
  "agent.id"?: string;
  "idwrap.queue": AuditQueue;
  "idwrap.source": SourceName;
  "idwrap.wrapper"?: string;
  /** "allow", "deny EACCES" or "kill", where a call was decided. */
  "idwrap.verdict"?: string;
  /** Why the host itself decided (foreign ABI, io_uring). */
  "idwrap.reason"?: string;
  /** Every alert the call raised: rule ids and "<wrapper>: <message>". */
  "idwrap.alerts"?: string[];
  "idwrap.syscall.name"?: string;
  "idwrap.syscall.nr"?: number;
  /** Only when not x86_64 (int 0x80 or x32 calls, always refused). */
  "idwrap.syscall.abi"?: string;
  /** The six raw argument registers, as unsigned decimal strings. */
  "idwrap.syscall.args"?: string[];
  /** The second path (rename, link, symlink). */
  "idwrap.syscall.path2"?: string;
  /** The argument vector an exec call passes. */
  "idwrap.syscall.argv"?: string[];
  "idwrap.syscall.flags"?: string;
  /** The socket address as idwrap prints it: `inet:127.0.0.1:80`, `unix:/path`. */
  "idwrap.syscall.addr"?: string;
  /** exit: the signal that ended the process. */
  "idwrap.signal"?: string;
  /** Set when `message` was cut at MAX_MESSAGE characters. */
  "idwrap.truncated"?: boolean;
  /** The process's cgroup path (v2), where the source read it. */
  "idwrap.cgroup"?: string;
}

/** Every field a record may have, in the order docs/audit.md lists them (tests/audit/fields_test.ts compares). */
export const AUDIT_FIELDS = [
  "@timestamp",
  "ecs.version",
  "event.kind",
  "event.category",
  "event.type",
  "event.action",
  "event.outcome",
  "event.module",
  "event.dataset",
  "event.sequence",
  "event.severity",
  "message",
  "error.message",
  "error.type",
  "process.pid",
  "process.parent.pid",
  "process.thread.id",
  "process.executable",
  "process.name",
  "process.args",
  "process.args_count",
  "process.exit_code",
  "user.id",
  "group.id",
  "file.path",
  "destination.address",
  "destination.ip",
  "destination.port",
  "source.address",
  "source.ip",
  "source.port",
  "rule.name",
  "rule.id",
  "rule.ruleset",
  "threat.framework",
  "threat.technique.id",
  "threat.technique.name",
  "threat.technique.reference",
  "threat.technique.subtechnique.id",
  "threat.technique.subtechnique.name",
  "threat.technique.subtechnique.reference",
  "tags",
  "container.id",
  "container.runtime",
  "orchestrator.type",
  "host.name",
  "host.hostname",
  "host.id",
  "host.os.type",
  "agent.type",
  "agent.name",
  "agent.version",
  "agent.id",
  "idwrap.queue",
  "idwrap.source",
  "idwrap.wrapper",
  "idwrap.verdict",
  "idwrap.reason",
  "idwrap.alerts",
  "idwrap.syscall.name",
  "idwrap.syscall.nr",
  "idwrap.syscall.abi",
  "idwrap.syscall.args",
  "idwrap.syscall.path2",
  "idwrap.syscall.argv",
  "idwrap.syscall.flags",
  "idwrap.syscall.addr",
  "idwrap.signal",
  "idwrap.truncated",
  "idwrap.cgroup",
] as const satisfies readonly (keyof AuditRecord)[];

/** Fails to compile while AuditRecord has a field AUDIT_FIELDS does not list. */
const _everyFieldListed: [Exclude<keyof AuditRecord, typeof AUDIT_FIELDS[number]>] extends [never] ? true : never =
  true;

/** The audit records an event makes: none for plain allowed calls and wrappers' logs. */
export function toAuditRecords(e: HostEvent): AuditRecord[] {
  switch (e.kind) {
    case "syscall":
      return syscallRecords(e);
    case "exec":
      return [lifecycleRecord(e), ...successRecords(e)];
    case "spawn":
    case "exit":
      return [lifecycleRecord(e)];
    case "alert":
    case "audit":
    case "fault":
      return [reportRecord(e)];
    case "log":
      return [];
  }
}

/** The fields every record has. */
function base(
  queue: AuditQueue,
  e: HostEvent,
  kind: "alert" | "event",
  category: string[],
  type: string[],
  action: string,
  outcome: AuditRecord["event.outcome"],
  message: string,
): AuditRecord {
  const r: AuditRecord = {
    "@timestamp": new Date(e.time).toISOString(),
    "ecs.version": ECS_VERSION,
    "event.kind": kind,
    "event.category": category,
    "event.type": type,
    "event.action": action,
    "event.outcome": outcome,
    "event.module": "idwrap",
    "event.dataset": `idwrap.${queue}`,
    message: message.length > MAX_MESSAGE ? message.slice(0, MAX_MESSAGE) + "…" : message,
    "process.pid": e.pid,
    "idwrap.queue": queue,
    "idwrap.source": e.source,
  };
  if (message.length > MAX_MESSAGE) r["idwrap.truncated"] = true;
  return r;
}

function addProgram(r: AuditRecord, p: ProgramIdentity | undefined): void {
  if (!p) return;
  if (p.exe) r["process.executable"] = p.exe;
  const name = basename(p.exe) || basename(p.argv0);
  if (name) r["process.name"] = name;
  if (p.args?.length) r["process.args"] = [...p.args];
  else if (p.argv0) r["process.args"] = [p.argv0];
  if (p.argc !== undefined) r["process.args_count"] = p.argc;
  if (p.uid >= 0) r["user.id"] = String(p.uid);
  if (p.gid >= 0) r["group.id"] = String(p.gid);
  if (p.cgroup !== undefined) {
    r["idwrap.cgroup"] = p.cgroup;
    const c = containerOf(p.cgroup);
    if (c) {
      r["container.id"] = c.id;
      if (c.runtime) r["container.runtime"] = c.runtime;
      if (c.orchestrator) r["orchestrator.type"] = c.orchestrator;
    }
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

const GROUP_OF = new Map<string, string>();
for (const name of SYSCALL_GROUPS.file) GROUP_OF.set(name, "file");
for (const name of SYSCALL_GROUPS.net) GROUP_OF.set(name, "network");
for (const name of SYSCALL_GROUPS.process) GROUP_OF.set(name, "process");

/** The ECS category of a system call: process for the process group, then network, file; process otherwise. */
export function syscallCategory(syscall: string | undefined): string {
  return (syscall && GROUP_OF.get(syscall)) || "process";
}

/** Alerts a wrapper raised are in `alerts` as "<wrapper>: <message>"; they also come as WrapperReports. */
function isWrapperAlert(alert: string): boolean {
  return /^[^:\s]+: /.test(alert);
}

function syscallRecords(e: SyscallEvent): AuditRecord[] {
  // Rules and verdicts decide before the call: post events repeat the pre event's alerts, and add the rules that fire
  // on success (onSuccess).
  if (e.phase !== "pre" && !e.onSuccess?.length) return [];
  const out: AuditRecord[] = [];
  const fired = e.phase === "pre" ? e.alerts ?? [] : e.onSuccess!;
  const refused = e.verdict !== undefined && e.verdict !== "allow";
  const call = `${e.syscall}(${formatArgs(e.decoded)})`;
  const decided = refused ? ` ! ${e.verdict}` : "";
  const category = syscallCategory(e.syscall);
  for (const rule of fired) {
    if (isWrapperAlert(rule)) continue;
    const r = base(
      "alerts",
      e,
      "alert",
      ["intrusion_detection", category],
      [refused ? "denied" : "info"],
      e.syscall,
      refused ? "failure" : "unknown",
      `rule ${rule}: ${call}${decided}`,
    );
    r["rule.name"] = r["rule.id"] = rule;
    addThreat(r, e);
    out.push(syscallFields(r, e));
  }
  if (refused && e.phase === "pre") {
    const r = base(
      "verdicts",
      e,
      "alert",
      ["intrusion_detection", category],
      ["denied"],
      e.syscall,
      "failure",
      `${call}${decided}${e.reason ? ` (${e.reason})` : ""}`,
    );
    out.push(syscallFields(r, e));
  }
  return out;
}

/**
 * The ATT&CK technique and tags of the policy rules that matched the call. ECS has one technique per record, and an
 * event carries the union of its rules' ids: the first is kept (a call two rules with different techniques match is
 * rare; each rule still has its own record, by rule.name).
 */
function addThreat(r: AuditRecord, e: { attack?: string[]; tags?: string[] }): void {
  if (e.attack?.length) Object.assign(r, threatFields(e.attack[0]));
  if (e.tags?.length) r.tags = [...e.tags];
}

/** An exec that ran fired these `when: success` rules on the exec call. */
function successRecords(e: LifecycleEvent): AuditRecord[] {
  return (e.onSuccess ?? []).map((rule) => {
    const exe = e.program.exe || e.program.argv0 || "?";
    const r = base(
      "alerts",
      e,
      "alert",
      ["intrusion_detection", "process"],
      ["info"],
      "execve",
      "success",
      `rule ${rule}: exec ${exe}`,
    );
    r["rule.name"] = r["rule.id"] = rule;
    addThreat(r, e);
    addProgram(r, e.program);
    return r;
  });
}

function syscallFields(r: AuditRecord, e: SyscallEvent): AuditRecord {
  r["process.thread.id"] = e.tid;
  addProgram(r, e.program);
  const d = e.decoded;
  if (d.path !== undefined) r["file.path"] = d.path;
  if (d.addr !== undefined) addAddress(r, e.syscall === "bind" ? "source" : "destination", d.addr);
  if (e.verdict !== undefined) r["idwrap.verdict"] = e.verdict;
  if (e.reason !== undefined) r["idwrap.reason"] = e.reason;
  if (e.alerts?.length) r["idwrap.alerts"] = [...e.alerts];
  r["idwrap.syscall.name"] = e.syscall;
  r["idwrap.syscall.nr"] = e.nr;
  if (e.abi !== "x86_64") r["idwrap.syscall.abi"] = e.abi;
  r["idwrap.syscall.args"] = [...e.args];
  if (d.path2 !== undefined) r["idwrap.syscall.path2"] = d.path2;
  if (d.argv !== undefined) r["idwrap.syscall.argv"] = [...d.argv];
  if (d.flags !== undefined) r["idwrap.syscall.flags"] = d.flags;
  if (d.addr !== undefined) r["idwrap.syscall.addr"] = d.addr;
  return r;
}

/** `inet:1.2.3.4:80`, `inet6:[::1]:80`, `unix:/path` as ECS address, ip and port. */
function addAddress(r: AuditRecord, side: "source" | "destination", addr: string): void {
  let m = /^inet:([\d.]+):(\d+)$/.exec(addr) ?? /^inet6:\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(addr);
  if (m) {
    r[`${side}.address`] = m[1];
    r[`${side}.ip`] = m[1];
    r[`${side}.port`] = Number(m[2]);
    return;
  }
  m = /^unix:(.+)$/.exec(addr);
  if (m) r[`${side}.address`] = m[1];
}

function lifecycleRecord(e: LifecycleEvent): AuditRecord {
  const exe = e.program.exe || e.program.argv0 || "?";
  let r: AuditRecord;
  if (e.kind === "exit") {
    const outcome = e.signal || (e.exitCode !== undefined && e.exitCode !== 0)
      ? "failure"
      : e.exitCode === 0
      ? "success"
      : "unknown";
    const how = e.signal ? ` on ${e.signal}` : e.exitCode !== undefined ? ` with ${e.exitCode}` : "";
    r = base("lifecycle", e, "event", ["process"], ["end"], "exit", outcome, `process ${e.pid} exited${how}`);
    if (e.exitCode !== undefined) r["process.exit_code"] = e.exitCode;
    if (e.signal) r["idwrap.signal"] = e.signal;
  } else if (e.kind === "spawn") {
    const parent = e.ppid !== undefined ? ` by ${e.ppid}` : "";
    r = base("lifecycle", e, "event", ["process"], ["start"], "spawn", "success", `spawn ${e.pid}${parent}: ${exe}`);
    if (e.ppid !== undefined) r["process.parent.pid"] = e.ppid;
  } else {
    r = base("lifecycle", e, "event", ["process"], ["start"], "exec", "success", `exec ${e.pid}: ${exe}`);
  }
  addProgram(r, e.program);
  return r;
}

/** The rule a wrapper's alert names first (`baseline.credential-read: …`: its own name, a dot, the rule). */
function ruleOf(wrapper: string, message: string): string | undefined {
  const m = /^([A-Za-z0-9_.-]+): /.exec(message);
  return m && m[1].startsWith(`${wrapper}.`) && m[1].length > wrapper.length + 1 ? m[1] : undefined;
}

function reportRecord(e: WrapperReport): AuditRecord {
  const category = syscallCategory(e.syscall);
  let r: AuditRecord;
  if (e.kind === "alert") {
    const action = e.syscall ?? "wrapper-alert";
    r = base("alerts", e, "alert", ["intrusion_detection", category], ["info"], action, "unknown", e.message);
  } else if (e.kind === "audit") {
    r = base("audit", e, "event", [category], ["info"], e.syscall ?? "wrapper-audit", "unknown", e.message);
  } else {
    // ECS expects no "error" type for process, file or network events: a fault is an info event that failed.
    r = base("faults", e, "event", [category], ["info"], "wrapper-fault", "failure", `${e.wrapper}: ${e.message}`);
    r["error.message"] = e.message;
    r["error.type"] = "wrapper-fault";
  }
  if (e.severity !== undefined && e.kind === "alert") r["event.severity"] = e.severity;
  r["rule.name"] = r["rule.id"] = (e.kind === "alert" && ruleOf(e.wrapper, e.message)) || e.wrapper;
  r["rule.ruleset"] = e.wrapper;
  r["idwrap.wrapper"] = e.wrapper;
  const technique = e.kind === "alert" ? techniqueOf(e.message) : undefined;
  if (technique) Object.assign(r, threatFields(technique));
  if (e.syscall !== undefined) r["idwrap.syscall.name"] = e.syscall;
  addProgram(r, e.program);
  return r;
}
