/**
 * Which host events are audit data, in which queue, with which ECS fields.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, ProgramIdentity, SyscallEvent } from "../../host/events.ts";
import { type AuditRecord, MAX_MESSAGE, toAuditRecords } from "../../host/audit/record.ts";

const T = Date.UTC(2024, 4, 1, 10, 0, 0, 123);
const CAT: ProgramIdentity = { exe: "/usr/bin/cat", argv0: "cat", uid: 1000, gid: 100 };

function call(over: Partial<SyscallEvent>): SyscallEvent {
  return {
    kind: "syscall",
    source: "seccomp",
    phase: "pre",
    time: T,
    pid: 42,
    tid: 43,
    abi: "x86_64",
    nr: 257,
    syscall: "openat",
    args: ["4294967196", "140000", "0", "0", "0", "0"],
    decoded: { dirfd: "AT_FDCWD", path: "/etc/shadow", flags: "O_RDONLY" },
    program: CAT,
    verdict: "allow",
    ...over,
  };
}

interface Case {
  name: string;
  event: HostEvent;
  /** Per record made, the fields it must have (others are not compared); undefined values must be absent. */
  expect: Partial<Record<keyof AuditRecord, unknown>>[];
}

const CASES: Case[] = [
  { name: "a plain allowed call is not audit data", event: call({}), expect: [] },
  {
    name: "a post event repeats the pre event's alerts: nothing",
    event: call({ phase: "post", verdict: undefined, ret: 3, alerts: ["watch"] }),
    expect: [],
  },
  {
    name: "a rule that denies: one alert and one verdict",
    event: call({ verdict: "deny EACCES", alerts: ["no-shadow"] }),
    expect: [
      {
        "idwrap.queue": "alerts",
        "event.kind": "alert",
        "event.category": ["intrusion_detection", "file"],
        "event.type": ["denied"],
        "event.action": "openat",
        "event.outcome": "failure",
        "event.dataset": "idwrap.alerts",
        "rule.name": "no-shadow",
        "idwrap.verdict": "deny EACCES",
        "message": 'rule no-shadow: openat(AT_FDCWD, "/etc/shadow", O_RDONLY) ! deny EACCES',
        "process.pid": 42,
        "process.thread.id": 43,
        "process.executable": "/usr/bin/cat",
        "process.name": "cat",
        "process.args": ["cat"],
        "user.id": "1000",
        "group.id": "100",
        "file.path": "/etc/shadow",
        "idwrap.syscall.nr": 257,
        "idwrap.syscall.args": ["4294967196", "140000", "0", "0", "0", "0"],
        "idwrap.source": "seccomp",
        "event.severity": undefined,
      },
      {
        "idwrap.queue": "verdicts",
        "event.kind": "alert",
        "event.type": ["denied"],
        "event.outcome": "failure",
        "event.dataset": "idwrap.verdicts",
        "idwrap.verdict": "deny EACCES",
        "idwrap.alerts": ["no-shadow"],
        "rule.name": undefined,
        "message": 'openat(AT_FDCWD, "/etc/shadow", O_RDONLY) ! deny EACCES',
        "file.path": "/etc/shadow",
      },
    ],
  },
  {
    name: "an alert-only rule: one alert, outcome unknown",
    event: call({ alerts: ["watch-shadow", "watch-etc"] }),
    expect: [
      { "idwrap.queue": "alerts", "rule.name": "watch-shadow", "event.outcome": "unknown", "event.type": ["info"] },
      { "idwrap.queue": "alerts", "rule.name": "watch-etc", "event.outcome": "unknown" },
    ],
  },
  {
    name: "a wrapper's alert on a call comes as its WrapperReport, not again from the call",
    event: call({ verdict: "deny EACCES", alerts: ["deny_path: denied open of /etc/shadow"] }),
    expect: [{ "idwrap.queue": "verdicts", "idwrap.alerts": ["deny_path: denied open of /etc/shadow"] }],
  },
  {
    name: "a killed connect: destination address and port",
    event: call({
      nr: 42,
      syscall: "connect",
      verdict: "kill",
      decoded: { addr: "inet:10.0.0.1:4444" },
      alerts: ["no-c2"],
    }),
    expect: [
      { "idwrap.queue": "alerts", "event.category": ["intrusion_detection", "network"], "rule.name": "no-c2" },
      {
        "idwrap.queue": "verdicts",
        "event.action": "connect",
        "event.category": ["intrusion_detection", "network"],
        "destination.address": "10.0.0.1",
        "destination.ip": "10.0.0.1",
        "destination.port": 4444,
        "idwrap.syscall.addr": "inet:10.0.0.1:4444",
        "idwrap.verdict": "kill",
        "file.path": undefined,
        "message": "connect(inet:10.0.0.1:4444) ! kill",
      },
    ],
  },
  {
    name: "a denied bind: the address is the source",
    event: call({ nr: 49, syscall: "bind", verdict: "deny EPERM", decoded: { addr: "inet6:[::1]:22" } }),
    expect: [{
      "idwrap.queue": "verdicts",
      "source.address": "::1",
      "source.port": 22,
      "destination.address": undefined,
    }],
  },
  {
    name: "a foreign-ABI call the host refused",
    event: call({
      abi: "i386",
      nr: 5,
      syscall: "open",
      decoded: {},
      verdict: "deny ENOSYS",
      reason: "i386 system call ABI is not allowed",
    }),
    expect: [{
      "idwrap.queue": "verdicts",
      "event.category": ["intrusion_detection", "file"],
      "idwrap.syscall.abi": "i386",
      "idwrap.reason": "i386 system call ABI is not allowed",
      "message": "open() ! deny ENOSYS (i386 system call ABI is not allowed)",
    }],
  },
  {
    name: "spawn",
    event: { kind: "spawn", source: "seccomp", time: T, pid: 50, ppid: 42, program: CAT },
    expect: [{
      "idwrap.queue": "lifecycle",
      "event.kind": "event",
      "event.category": ["process"],
      "event.type": ["start"],
      "event.action": "spawn",
      "event.outcome": "success",
      "event.dataset": "idwrap.lifecycle",
      "process.pid": 50,
      "process.parent.pid": 42,
      "process.executable": "/usr/bin/cat",
      "message": "spawn 50 by 42: /usr/bin/cat",
    }],
  },
  {
    name: "exec",
    event: {
      kind: "exec",
      source: "kmod",
      time: T,
      pid: 50,
      program: { exe: "/bin/sh", argv0: "sh", uid: 0, gid: 0 },
    },
    expect: [{
      "idwrap.queue": "lifecycle",
      "event.action": "exec",
      "event.type": ["start"],
      "process.name": "sh",
      "user.id": "0",
      "idwrap.source": "kmod",
      "process.parent.pid": undefined,
    }],
  },
  {
    name: "a clean exit",
    event: { kind: "exit", source: "seccomp", time: T, pid: 50, program: CAT, exitCode: 0 },
    expect: [{
      "event.action": "exit",
      "event.type": ["end"],
      "event.outcome": "success",
      "process.exit_code": 0,
      "message": "process 50 exited with 0",
    }],
  },
  {
    name: "an exit on a signal",
    event: { kind: "exit", source: "seccomp", time: T, pid: 50, program: CAT, signal: "SIGKILL" },
    expect: [{
      "event.outcome": "failure",
      "idwrap.signal": "SIGKILL",
      "process.exit_code": undefined,
      "message": "process 50 exited on SIGKILL",
    }],
  },
  {
    name: "a wrapper's alert",
    event: {
      kind: "alert",
      source: "seccomp",
      time: T,
      pid: 42,
      wrapper: "deny_path",
      severity: 3,
      message: "denied open of /etc/passwd",
      program: CAT,
      syscall: "openat",
    },
    expect: [{
      "idwrap.queue": "alerts",
      "event.kind": "alert",
      "event.category": ["intrusion_detection", "file"],
      "event.action": "openat",
      "event.severity": 3,
      "rule.name": "deny_path",
      "idwrap.wrapper": "deny_path",
      "idwrap.syscall.name": "openat",
      "message": "denied open of /etc/passwd",
      "process.thread.id": undefined,
    }],
  },
  {
    name: "wr_audit",
    event: {
      kind: "audit",
      source: "seccomp",
      time: T,
      pid: 42,
      wrapper: "ftpd_watch",
      message: "login anonymous",
      program: { exe: "", argv0: "", uid: -1, gid: -1 },
    },
    expect: [{
      "idwrap.queue": "audit",
      "event.kind": "event",
      "event.category": ["process"],
      "event.type": ["info"],
      "event.action": "wrapper-audit",
      "event.outcome": "unknown",
      "event.dataset": "idwrap.audit",
      "idwrap.wrapper": "ftpd_watch",
      "user.id": undefined,
      "process.executable": undefined,
      "process.name": undefined,
    }],
  },
  {
    name: "a wrapper fault",
    event: {
      kind: "fault",
      source: "seccomp",
      time: T,
      pid: 42,
      wrapper: "spin",
      message: "idwrap_on_syscall: budget exhausted; call denied (fail closed)",
      program: CAT,
      syscall: "read",
    },
    expect: [{
      "idwrap.queue": "faults",
      "event.kind": "event",
      "event.type": ["info"],
      "event.action": "wrapper-fault",
      "error.message": "idwrap_on_syscall: budget exhausted; call denied (fail closed)",
      "error.type": "wrapper-fault",
      "event.outcome": "failure",
      "idwrap.syscall.name": "read",
      "message": "spin: idwrap_on_syscall: budget exhausted; call denied (fail closed)",
    }],
  },
  {
    name: "a wrapper's log is not audit data",
    event: {
      kind: "log",
      source: "seccomp",
      time: T,
      pid: 42,
      wrapper: "x",
      severity: 1,
      message: "hello",
      program: CAT,
    },
    expect: [],
  },
];

for (const c of CASES) {
  Deno.test(`record: ${c.name}`, () => {
    const records = toAuditRecords(c.event);
    assertEquals(records.length, c.expect.length, JSON.stringify(records, null, 1));
    records.forEach((r, i) => {
      assertEquals(r["@timestamp"], "2024-05-01T10:00:00.123Z");
      assertEquals(r["event.module"], "idwrap");
      assertEquals(r["event.dataset"], `idwrap.${r["idwrap.queue"]}`);
      assertEquals(r["event.sequence"], undefined, "the log numbers records, not the mapping");
      assert(r["ecs.version"].startsWith("8."));
      for (const [field, want] of Object.entries(c.expect[i])) {
        if (want === undefined) {
          assert(!(field in r), `${field} should be absent, is ${JSON.stringify(r[field as keyof AuditRecord])}`);
        } else assertEquals(r[field as keyof AuditRecord], want, field);
      }
      // A flat object: dotted keys, no nested objects.
      for (const v of Object.values(r)) assert(typeof v !== "object" || Array.isArray(v));
      assertEquals(JSON.parse(JSON.stringify(r)), r);
    });
  });
}

Deno.test("record: a huge message is cut and marked", () => {
  const [r] = toAuditRecords({
    kind: "audit",
    source: "seccomp",
    time: T,
    pid: 1,
    wrapper: "w",
    message: "x".repeat(MAX_MESSAGE * 3),
    program: CAT,
  });
  assertEquals(r.message.length, MAX_MESSAGE + 1);
  assertEquals(r["idwrap.truncated"], true);
});

Deno.test("a wrapper's alert names its rule and technique only where the message says so", () => {
  const report = (wrapper: string, message: string): AuditRecord =>
    toAuditRecords({
      kind: "alert",
      source: "seccomp",
      time: T,
      pid: 42,
      wrapper,
      message,
      program: CAT,
      severity: 3,
    })[0];
  const a = report("baseline", "baseline.credential-read: /etc/shadow read by /usr/bin/cat (T1003.008)");
  assertEquals([a["rule.name"], a["rule.id"], a["rule.ruleset"]], [
    "baseline.credential-read",
    "baseline.credential-read",
    "baseline",
  ]);
  assertEquals([a["threat.technique.id"], a["threat.technique.subtechnique.id"]], ["T1003", "T1003.008"]);
  const b = report("baseline", "baseline.service-shell: /bin/sh started by /srv/app (T1059)");
  assertEquals([b["threat.technique.id"], b["threat.technique.subtechnique.id"]], ["T1059", undefined]);
  // Another wrapper's name in the message is not this wrapper's rule; no technique at the end, no threat fields.
  const c = report("imapd", "baseline.credential-read: forged (T1003.008) here");
  assertEquals([c["rule.name"], c["threat.framework"]], ["imapd", undefined]);
  // A program identity with the whole argv and a cgroup.
  const d = toAuditRecords({
    kind: "exec",
    source: "seccomp",
    time: T,
    pid: 42,
    program: { ...CAT, args: ["cat", "-n", "x"], argc: 70, cgroup: "/system.slice/x.service" },
  })[0];
  assertEquals([d["process.args"], d["process.args_count"], d["idwrap.cgroup"]], [
    ["cat", "-n", "x"],
    70,
    "/system.slice/x.service",
  ]);
  assertEquals(d["container.id"], undefined);
});

/** ECS 8.x: the event types each category expects (ecs_flat.yml, `expected_event_types`), for the categories used. */
const EXPECTED_TYPES: Record<string, string[]> = {
  intrusion_detection: ["allowed", "denied", "info"],
  process: ["access", "change", "end", "info", "start"],
  file: ["access", "change", "creation", "deletion", "info"],
  network: ["access", "allowed", "connection", "denied", "end", "info", "protocol", "start"],
};

Deno.test("every record's event.type is one ECS expects for one of its categories, and kind is alert or event", () => {
  for (const c of CASES) {
    for (const r of toAuditRecords(c.event)) {
      assert(["alert", "event"].includes(r["event.kind"]), c.name);
      assert(r["event.category"].length > 0, c.name);
      for (const type of r["event.type"]) {
        assert(
          r["event.category"].some((cat) => EXPECTED_TYPES[cat]?.includes(type)),
          `${c.name}: type ${type} for ${r["event.category"].join(",")}`,
        );
      }
      assertEquals(r["event.kind"] === "alert", r["idwrap.queue"] === "alerts" || r["idwrap.queue"] === "verdicts");
    }
  }
});
