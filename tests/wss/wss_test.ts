/**
 * The WSS driven through a scripted in-memory source (./scripted_source.ts),
 * with real rules, real WebAssembly wrappers (WAT and the built Com_id) and
 * the real audit journal, no kernel: the verdict pipeline, argument reading
 * as one step before the hooks, composition, activation at exec, the
 * refusals every source applies, late kills, audit wiring and fault reports.
 * Each test has its control inside (the same script without the condition
 * gets the other answer), so it can fail.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type Decider, type EventSink, LayeredDecider } from "../../host/decider.ts";
import type { HostEvent, LifecycleEvent, SyscallEvent, WrapperReport } from "../../host/events.ts";
import { JournalWriter } from "../../host/audit/journal.ts";
import { JournalSink } from "../../host/audit/journal_sink.ts";
import { type Policy, type Rule, WRAPPER_DEFAULTS, type WrapperSpec } from "../../host/policy/policy.ts";
import { RuleDecider } from "../../host/policy/rule_decider.ts";
import { WrapperChain } from "../../host/runtime/chain.ts";
import { v8Engine } from "../../host/runtime/engine.ts";
import { loadWrapper, type WrapperModule } from "../../host/runtime/module.ts";
import { KvNamespace } from "../../host/store/kv.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";
import { buildInterest } from "../../host/wss/interest.ts";
import { TAMPER_ALERT, UNREFUSED_ALERT } from "../../host/wss/refusal.ts";
import { RACE_ALERT, type Session, SYSTEM_SESSION, Wss } from "../../host/wss/supervisor.ts";
import type { ProgramIdentity } from "../../host/events.ts";
import { ROOT } from "../helpers.ts";
import { watToWasm } from "../runtime/wat.ts";
import { program, ScriptedSource, type Step } from "./scripted_source.ts";

/** Pids no real process has (above the kernel's PID_MAX_LIMIT): activation never finds them in /proc. */
const PID = 5_000_001, CHILD = 5_000_002, OTHER = 5_000_003;
const SH = program("/usr/bin/dash"), CAT = program("/usr/bin/cat");
const EACCES = 13, EPERM = 1, EFAULT = 14, ENOSYS = 38;
const nr = (name: string) => syscallNumber(name)!;

class Collect implements EventSink {
  readonly events: HostEvent[] = [];
  constructor(readonly wantsSyscalls = false, readonly log?: string[]) {}
  emit(e: HostEvent): void {
    this.events.push(e);
    if (e.kind === "syscall") this.log?.push(`event ${e.syscall} ${e.verdict ?? ""}`.trim());
  }
  flush(): void {}
  calls(): SyscallEvent[] {
    return this.events.filter((e): e is SyscallEvent => e.kind === "syscall");
  }
  reports(kind: WrapperReport["kind"]): WrapperReport[] {
    return this.events.filter((e): e is WrapperReport => e.kind === kind);
  }
}

function rule(r: Partial<Rule> & { syscalls: string[] }): Rule {
  return { id: "r", action: "deny", errno: EACCES, ...r };
}

function policy(rules: Rule[], observe: string[] = []): Policy {
  return { name: "t", file: "t.yaml", observe, rules, wrappers: [] };
}

function spec(name: string, extra: Partial<WrapperSpec> = {}): WrapperSpec {
  return { name, module: `${name}.wasm`, settings: {}, ...WRAPPER_DEFAULTS, clock: false, ...extra };
}

function wat(name: string, text: string, extra: Partial<WrapperSpec> = {}): WrapperModule {
  return loadWrapper(spec(name, extra), watToWasm(text), v8Engine, `${name}.wasm`);
}

/**
 * A wrapper on `syscall` (declared with `flags`): alerts "<name> saw <arg0>" and answers `verdict` when argument 0
 * is `when`; with `readPath`, it also reads the path (event_string), so the WSS must read memory for it.
 */
function hookWat(syscall: string, flags: number, when: number, verdict: number, readPath = false): string {
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (import "idwrap" "event_arg" (func $arg (param i32) (result i64)))
    (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
    ${readPath ? `(import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))` : ""}
    (memory (export "memory") 1)
    (data (i32.const 0) "hook saw it")
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const ${
    nr(syscall)
  }) (i32.const ${flags}))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32)
      ${readPath ? "(drop (call $s (i32.const 0) (i32.const 100) (i32.const 200)))" : ""}
      (if (i64.ne (call $arg (i32.const 0)) (i64.const ${when})) (then (return (i32.const 0))))
      (call $alert (i32.const 0) (i32.const 0) (i32.const 11))
      (i32.const ${verdict})))`;
}

/** An emitter of `event` (Com_id's input): on `syscall` with argument 0 = 1 it emits, and turns answer 2 into kill. */
function emitterWat(event: string, syscall: string): string {
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (import "idwrap" "declare_emit" (func $de (param i32 i32) (result i32)))
    (import "idwrap" "emit" (func $emit (param i32 i32 i32) (result i32)))
    (import "idwrap" "event_arg" (func $arg (param i32) (result i64)))
    (memory (export "memory") 1)
    (data (i32.const 0) "${event}")
    (data (i32.const 100) "warning")
    (global $h (mut i32) (i32.const -1))
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32)
      (drop (call $d (i32.const ${nr(syscall)}) (i32.const 5)))
      (global.set $h (call $de (i32.const 0) (i32.const ${event.length})))
      (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32)
      (if (i64.ne (call $arg (i32.const 0)) (i64.const 1)) (then (return (i32.const 0))))
      (if (i32.eq (call $emit (i32.const 0) (i32.const 100) (i32.const 7)) (i32.const 2)) (then (return (i32.const 2))))
      (i32.const 0)))`;
}

const PRE = 1, POST = 2, DENY = 4, KILL = 8;

interface Rig {
  wss: Wss;
  source: ScriptedSource;
  sink: Collect;
  sessions: Session[];
}

/** A WSS over a scripted source with these rules and wrappers; processes' programs come from `programs`. */
function rig(
  options: {
    rules?: Rule[];
    wrappers?: WrapperModule[];
    sink?: EventSink & { events?: HostEvent[] };
    wantsSyscalls?: boolean;
    programs?: Map<number, ProgramIdentity>;
    systemWide?: boolean;
    closesSessions?: boolean;
    log?: string[];
  } = {},
): Rig {
  const sink = new Collect(options.wantsSyscalls ?? false, options.log);
  const out: EventSink = options.sink ?? sink;
  const wrappers = options.wrappers ?? [];
  const policies = [policy(options.rules ?? [])];
  const layers: Decider[] = [new RuleDecider(policies)];
  if (wrappers.length) {
    const kv = new Map(wrappers.map((w) => [w.spec.name, new KvNamespace([], () => {})]));
    layers.push(new WrapperChain(wrappers, { engine: v8Engine, sink: out, kv, source: "seccomp" }));
  }
  const source = new ScriptedSource({ closesSessions: options.closesSessions });
  const programs = options.programs ?? new Map();
  const wss = new Wss({
    source,
    decider: new LayeredDecider(layers),
    sink: out,
    wrappers: wrappers.map((w) => w.spec),
    interest: buildInterest(policies, wrappers, false),
    systemWide: options.systemWide,
    programOf: (pid) => ({ ppid: 1, program: programs.get(pid) ?? SH }),
    alive: () => true,
  });
  return { wss, source, sink, sessions: [] };
}

/** Plays the steps (one batch) and serves them. */
async function play(r: Rig, ...steps: Step[]): Promise<void> {
  r.source.play(...steps);
  // Returns at the first idle moment: the script's batch has been served.
  await r.wss.run({ idle: () => r.wss.stop(), onSessionEnd: (s) => r.sessions.push(s) });
}

Deno.test("WSS pipeline: a deny rule is decided on the path read from memory, journaled, then answered", async () => {
  const log: string[] = [];
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })], log });
  const original = r.source.answer.bind(r.source);
  r.source.answer = (c, v, w) => {
    log.push(`answer ${v.action}`);
    original(c, v, w);
  };
  await play(
    r,
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/shadow" } } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hostname" } } }, // control: same call, other file
  );
  assertEquals(r.source.answered(), [`openat deny ${EACCES}`, "openat allow"]);
  assertEquals(r.source.reads.map((x) => x.needs), ["memory", "memory"]);
  // The deny's event reached the sink before the answer (the audit journal's rule).
  assertEquals(log.slice(0, 2), ["event openat deny EACCES", "answer deny"]);
  assertEquals(r.sink.calls().find((e) => e.verdict?.startsWith("deny"))?.decoded.path, "/etc/shadow");
});

Deno.test("WSS pipeline: a call nobody examines is answered at once, without reading the caller's memory", async () => {
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  await play(r, { call: { pid: PID, syscall: "getpid" } }, { call: { pid: PID, syscall: "openat" } });
  assertEquals(r.source.answered(), ["getpid allow", "openat allow"]);
  assertEquals(r.source.reads, [{ syscall: "openat", needs: "memory" }]); // the control: the ruled call is read
});

Deno.test("WSS argument reading: a hook that imports no argument reader gets the registers only; one that reads the path gets memory, once, before it runs", async () => {
  for (const readPath of [false, true]) {
    const w = wat("w", hookWat("getpid", PRE | DENY, 7, 0x0d01, readPath));
    const r = rig({ wrappers: [w] });
    await play(r, { call: { pid: PID, syscall: "getpid", args: [7n, 0n, 0n, 0n, 0n, 0n], memory: { path: "/x" } } });
    assertEquals(r.source.answered(), [`getpid deny ${EACCES}`]);
    // Denied: the audit record wants its arguments, so a registers-only call is read once more before the answer.
    assertEquals(r.source.reads.map((x) => x.needs), readPath ? ["memory"] : ["registers", "memory"]);
    const r2 = rig({ wrappers: [wat("w", hookWat("getpid", PRE | DENY, 7, 0x0d01, readPath))] });
    await play(r2, { call: { pid: PID, syscall: "getpid", args: [8n, 0n, 0n, 0n, 0n, 0n], memory: { path: "/x" } } });
    assertEquals(r2.source.answered(), ["getpid allow"]);
    assertEquals(r2.source.reads.map((x) => x.needs), [readPath ? "memory" : "registers"]);
  }
});

Deno.test("WSS: a caller gone after its memory was read (the id is no longer valid) gets no answer and no verdict", async () => {
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  await play(
    r,
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/shadow" }, valid: false } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/shadow" } } }, // control
  );
  assertEquals(r.source.answered(), [`openat deny ${EACCES}`]);
  assertEquals(r.sink.calls().length, 1);
});

Deno.test("WSS: an examined call whose pointer argument cannot be read is refused with EFAULT, never run unchecked", async () => {
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  await play(
    r,
    { call: { pid: PID, syscall: "openat", memory: { fault: "arg1" } } },
    { call: { pid: PID, syscall: "getpid", memory: { fault: "arg1" } } }, // control: nobody examines it
  );
  assertEquals(r.source.answered(), [`openat deny ${EFAULT}`, "getpid allow"]);
});

Deno.test("WSS refusals: int 0x80 and x32 calls get ENOSYS and io_uring_setup EPERM, whatever the policy, with the reason", async () => {
  const r = rig();
  await play(
    r,
    { call: { pid: PID, syscall: "getpid", abi: "i386" } },
    { call: { pid: PID, syscall: "getpid", abi: "x32" } },
    { call: { pid: PID, syscall: "io_uring_setup" } },
    { call: { pid: PID, syscall: "getpid" } }, // control
  );
  assertEquals(r.source.answered(), [
    `getpid deny ${ENOSYS}`,
    `getpid deny ${ENOSYS}`,
    `io_uring_setup deny ${EPERM}`,
    "getpid allow",
  ]);
  assertEquals(r.sink.calls().map((e) => e.reason), [
    "i386 system call ABI is not allowed",
    "x32 system call ABI is not allowed",
    "io_uring bypasses system call interception",
  ]);
});

Deno.test("WSS, an observe-only source (bpf): an i386 call and io_uring_setup that ran are recorded as run and alerted, never as denied; one the kernel side refused stays a denial (rt9 F2)", async () => {
  const r = rig({ rules: [rule({ id: "shadow", syscalls: ["open"], path: "/etc/shadow", action: "alert" })] });
  await play(
    r,
    // The script numbers a call by its x86_64 name: x86_64 fstat is 5, i386 open's number.
    { call: { pid: PID, syscall: "fstat", abi: "i386", waits: false, memory: { path: "/etc/shadow" } } },
    { call: { pid: PID, syscall: "io_uring_setup", waits: false } },
    // kmod: refused in the kernel, reported after the fact.
    { call: { pid: PID, syscall: "getpid", abi: "i386", waits: false, refusedErrno: ENOSYS } },
  );
  assertEquals(r.source.answered(), []);
  const [open, setup, refused] = r.sink.calls();
  assertEquals([open.verdict, open.alerts, open.decoded.path], [undefined, ["shadow", UNREFUSED_ALERT], "/etc/shadow"]);
  assertEquals([setup.verdict, setup.alerts], [undefined, [UNREFUSED_ALERT]]);
  assertEquals(refused.verdict, "deny ENOSYS");
});

Deno.test("WSS refusals: the source's tamper guard refuses before any hook runs, and raises the tamper alert", async () => {
  const w = wat("w", hookWat("kill", PRE | DENY, 0, 0, false));
  const r = rig({ wrappers: [w] });
  const refusal = { reason: "signals the supervisor", technique: "T1562.001" };
  await play(
    r,
    { call: { pid: PID, syscall: "kill", refusal } },
    { call: { pid: PID, syscall: "kill", args: [1n, 0n, 0n, 0n, 0n, 0n] } }, // control: not the supervisor
  );
  assertEquals(r.source.answered(), [`kill deny ${EPERM}`, "kill allow"]);
  const refused = r.sink.calls()[0];
  assertEquals(refused.alerts, [TAMPER_ALERT]);
  assertEquals(refused.reason, "signals the supervisor (T1562.001)");
  assertEquals(r.sink.reports("alert").length, 0); // the wrapper's hook never ran on the refused call
});

Deno.test("WSS composition (Com_id): a process is killed only when both detectors warned, each alone alerts", async () => {
  const com = loadWrapper(spec("com"), await Deno.readFile(`${ROOT}build/wrappers/com.wasm`), v8Engine, "com.wasm");
  const seq = wat("seq", emitterWat("seq-warning", "getpid"));
  const imapd = wat("imapd", emitterWat("imapd-warning", "getuid"));
  const r = rig({ wrappers: [seq, imapd, com] });
  const warn = (pid: number, syscall: string) => ({ call: { pid, syscall, args: [1n, 0n, 0n, 0n, 0n, 0n] } });
  await play(r, warn(PID, "getpid"), warn(OTHER, "getuid"), warn(PID, "getpid"), warn(PID, "getuid"));
  // PID: seq, seq again, then imapd: killed at the call where both have fired. OTHER: imapd alone.
  assertEquals(r.source.answered(), ["getpid allow", "getuid allow", "getpid allow", "getuid kill"]);
  const alerts = r.sink.reports("alert").filter((a) => a.wrapper === "com");
  assertEquals(alerts.map((a) => [a.pid, a.severity]), [[PID, 2], [OTHER, 2], [PID, 2], [PID, 4]]);
  assertEquals(r.wss.processes().find((p) => p.pid === PID)?.wrappers, ["seq", "imapd", "com"]);
});

Deno.test("WSS activation at exec: a wrapper bound to cat runs in the process only after it execs cat", async () => {
  const activate = { program: ["/usr/bin/cat"] };
  const w = loadWrapper(
    spec("w", { activate }),
    watToWasm(hookWat("getpid", PRE | DENY, 0, 0x0d01)),
    v8Engine,
    "w.wasm",
  );
  const r = rig({ wrappers: [w] });
  const getpid = { call: { pid: PID, syscall: "getpid" } };
  await play(r, getpid, { lifecycle: { kind: "exec", pid: PID, program: CAT } }, getpid);
  // As dash, unbound: the call runs; as cat, bound: denied by the hook.
  assertEquals(r.source.answered(), ["getpid allow", `getpid deny ${EACCES}`]);
  assertEquals(r.wss.processes().map((p) => [p.program.exe, p.wrappers]), [["/usr/bin/cat", ["w"]]]);
  // The exec is reported, and bindings are re-evaluated again at the next exec (back to dash: unbound).
  await play(r, { lifecycle: { kind: "exec", pid: PID, program: SH } }, getpid);
  assertEquals(r.source.answered().at(-1), "getpid allow");
  assertEquals(r.sink.events.filter((e) => e.kind === "exec").length, 2);
});

Deno.test("WSS system-wide activation: a held exec is taken (watch) only when some wrapper's criteria bind it", async () => {
  const w = loadWrapper(
    spec("w", { activate: { program: ["/usr/bin/cat"] } }),
    watToWasm(hookWat("getpid", PRE | DENY, 0, 0x0d01)),
    v8Engine,
    "w.wasm",
  );
  const r = rig({ wrappers: [w], systemWide: true });
  await play(
    r,
    { lifecycle: { kind: "exec", pid: PID, ppid: 1, program: SH, candidate: true, call: r.source.heldExec(PID) } },
    { lifecycle: { kind: "exec", pid: CHILD, ppid: 1, program: CAT, candidate: true, call: r.source.heldExec(CHILD) } },
  );
  assertEquals(r.source.answered(), ["execve allow", "execve allow watch"]);
  assertEquals(r.wss.processes().map((p) => [p.pid, p.session]), [[CHILD, SYSTEM_SESSION]]);
  // Its next exec deactivates it (dash binds nothing): answered unwatch, and it leaves the table.
  await play(r, { lifecycle: { kind: "exec", pid: CHILD, program: SH, call: r.source.heldExec(CHILD) } });
  assertEquals(r.source.answered().at(-1), "execve allow unwatch");
  assertEquals(r.wss.processes(), []);
});

Deno.test("WSS late kill: a kill decided on an observed call is carried out by the source; the next waiting call gets kill", async () => {
  const w = wat("w", hookWat("getpid", PRE | KILL, 9, 2));
  const r = rig({ wrappers: [w] });
  await play(
    r,
    { call: { pid: PID, syscall: "getpid", args: [9n, 0n, 0n, 0n, 0n, 0n], waits: false } },
    { call: { pid: OTHER, syscall: "getpid", args: [8n, 0n, 0n, 0n, 0n, 0n], waits: false } }, // control
    { call: { pid: PID, syscall: "getuid" } },
  );
  assertEquals(r.source.kills, [PID]);
  assertEquals(r.source.answered(), ["getuid kill"]);
  const late = r.sink.calls().find((e) => e.verdict === "kill");
  assertEquals(late?.reason, "late kill (the call was only observed)");
});

Deno.test("WSS late watchers: a call only MAY_KILL wrappers watch is answered before the hook runs, and read registers only", async () => {
  const w = wat("w", hookWat("getpid", PRE | KILL, 9, 2));
  const r = rig({ wrappers: [w] });
  await play(r, { call: { pid: PID, syscall: "getpid", args: [9n, 0n, 0n, 0n, 0n, 0n] } });
  // Allowed first (the caller goes on), then killed late by the hook.
  assertEquals(r.source.answered(), ["getpid allow"]);
  assertEquals(r.source.kills, [PID]);
  assertEquals(r.source.reads.map((x) => x.needs), ["registers"]);
  // Control: the same wrapper declaring DENY holds the call and kills it in its answer.
  const r2 = rig({ wrappers: [wat("w", hookWat("getpid", PRE | DENY, 9, 2))] });
  await play(r2, { call: { pid: PID, syscall: "getpid", args: [9n, 0n, 0n, 0n, 0n, 0n] } });
  assertEquals(r2.source.answered(), ["getpid kill"]);
  assertEquals(r2.source.kills, []);
});

Deno.test("WSS post: a post hook sees the result; its kill is carried out late on an observed post", async () => {
  const w = wat("w", hookWat("getpid", POST | KILL, 3, 2));
  const r = rig({ wrappers: [w] });
  await play(
    r,
    { call: { pid: PID, syscall: "getpid", phase: "post", waits: false, ret: -2n, args: [3n, 0n, 0n, 0n, 0n, 0n] } },
    { call: { pid: OTHER, syscall: "getpid", phase: "post", waits: false, ret: 5n } }, // control
  );
  assertEquals(r.source.kills, [PID]);
  const posts = r.sink.calls();
  assertEquals(posts.map((e) => [e.pid, e.ret, e.errno, e.verdict]), [[PID, -1, "ENOENT", "kill"], [
    OTHER,
    5,
    undefined,
    undefined,
  ]]);
});

Deno.test("WSS faults: a wrapper that traps fails its call closed and is reported; a WSS bug fails the call closed too", async () => {
  const trap = wat(
    "trap",
    `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const ${
      nr("getpid")
    }) (i32.const 5))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32) unreachable))`,
  );
  const r = rig({ wrappers: [trap] });
  await play(r, { call: { pid: PID, syscall: "getpid" } }, { call: { pid: PID, syscall: "getuid" } });
  assertEquals(r.source.answered(), [`getpid deny ${EPERM}`, "getuid allow"]);
  assert(r.sink.reports("fault")[0].message.includes("trapped"), JSON.stringify(r.sink.reports("fault")));

  // A bug in the host while serving (here: the source's read throws) fails that call closed, and the next is served.
  const r2 = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  const read = r2.source.readArgs.bind(r2.source);
  r2.source.readArgs = (c, n, needs) => {
    if (n === "openat") throw new Error("boom");
    return read(c, n, needs);
  };
  await play(r2, { call: { pid: PID, syscall: "openat" } }, { call: { pid: PID, syscall: "getpid" } });
  assertEquals(r2.source.answered(), [`openat deny ${EPERM}`, "getpid allow"]);
  const fault = r2.sink.reports("fault")[0];
  assertEquals([fault.wrapper, fault.message.split(":")[0]], [
    "idwrap",
    "internal error while serving a call (failed closed)",
  ]);
});

Deno.test("WSS audit wiring: a denied call's audit record is in the journal (on disk) before the caller is answered", async () => {
  const dir = await scratchDir({ prefix: "idwrap-wss-journal-" });
  const journal = JournalWriter.create(`${dir}/store.kv`)!;
  const sink = new JournalSink(() => {}, undefined, journal, undefined);
  const r = rig({ rules: [rule({ id: "no-shadow", syscalls: ["openat"], path: "/etc/shadow" })], sink });
  const seen: string[] = [];
  const answer = r.source.answer.bind(r.source);
  r.source.answer = (c, v, w) => {
    seen.push(Deno.readTextFileSync(journal.path));
    answer(c, v, w);
  };
  await play(
    r,
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hostname" } } }, // control: nothing to journal
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/shadow" } } },
  );
  assert(!seen[0].includes("/etc/shadow"), seen[0]);
  assert(seen[1].includes("/etc/shadow") && seen[1].includes("no-shadow"), seen[1]);
  sink.close();
});

Deno.test("WSS sessions: a session ends when the processes it had are gone, with its summary", async () => {
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  r.wss.attach(7, PID);
  assertEquals(r.source.attached, [[7, PID]]);
  await play(
    r,
    { lifecycle: { kind: "fork", pid: PID, ppid: 1, session: 7, program: SH } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/shadow" } } },
    { lifecycle: { kind: "fork", pid: CHILD, ppid: PID } },
    { call: { pid: CHILD, syscall: "openat", memory: { path: "/etc/hostname" } } },
    { lifecycle: { kind: "exit", pid: PID, status: 0 } },
  );
  assertEquals(r.sessions.length, 0); // the child still runs
  assertEquals(r.wss.processes().map((p) => [p.pid, p.session]), [[CHILD, 7]]);
  await play(r, { lifecycle: { kind: "exit", pid: CHILD, status: 9 } });
  assertEquals(r.sessions.map((s) => [s.id, s.summary.notifications, s.summary.denied]), [[7, 2, 1]]);
  assertEquals(r.source.detached, [7]);
  const exits = r.sink.events.filter((e): e is LifecycleEvent => e.kind === "exit");
  assertEquals(exits.map((e) => [e.pid, e.exitCode, e.signal]), [[PID, 0, undefined], [CHILD, undefined, "SIGKILL"]]);
  assertEquals(r.source.forgotten, [PID, CHILD]);
});

Deno.test("WSS settle: an allow the source cannot carry out safely becomes its refusal, with its reason, before the answer", async () => {
  const r = rig({ rules: [rule({ syscalls: ["openat"], path: "/etc/shadow" })] });
  const settle = {
    verdict: { action: "deny", errno: EPERM } as const,
    reason: "the caller's root could not be entered",
  };
  await play(
    r,
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hostname" }, settle } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hostname" } } }, // control
    {
      call: {
        pid: PID,
        syscall: "openat",
        memory: { path: "/etc/hosts" },
        settle: { verdict: { action: "allow" }, emulated: true },
      },
    },
  );
  assertEquals(r.source.answered(), [`openat deny ${EPERM}`, "openat allow", "openat allow"]);
  assertEquals(r.sink.calls().map((e) => [e.verdict, e.reason, e.emulated]), [
    ["deny EPERM", "the caller's root could not be entered", undefined],
    ["allow", undefined, undefined],
    ["allow", undefined, true],
  ]);
});

Deno.test("WSS exec race: a process whose exec ran another file than the one allowed is decided again, and killed if refused", async () => {
  const r = rig({ rules: [rule({ syscalls: ["execve"], path: "/usr/bin/evil", action: "deny" })] });
  const raced = (pid: number, exe: string) => ({
    lifecycle: {
      kind: "exec" as const,
      pid,
      program: program(exe),
      decidedOn: { path: "/usr/bin/true", nr: nr("execve"), ident: "8:1" },
    },
  });
  await play(
    r,
    { call: { pid: PID, syscall: "getpid" } },
    { call: { pid: OTHER, syscall: "getpid" } },
    raced(PID, "/usr/bin/evil"),
    raced(OTHER, "/usr/bin/good"), // control: the file that ran is allowed too
  );
  assertEquals(r.source.kills, [PID]);
  const killed = r.sink.calls().find((e) => e.verdict === "kill");
  assertEquals(
    killed?.reason,
    "exec raced: decided on /usr/bin/true, the kernel ran /usr/bin/evil; killed at its first notified call",
  );
});

Deno.test("WSS emulated calls: the result of a call the source ran itself carries the call's alerts, and is not another notification", async () => {
  const r = rig({ rules: [rule({ id: "watch", syscalls: ["openat"], path: "/etc/hosts", action: "alert" })] });
  r.wss.attach(1, PID);
  const ran = { verdict: { action: "allow" } as const, emulated: true };
  await play(
    r,
    { lifecycle: { kind: "fork", pid: PID, ppid: 1, session: 1, program: SH } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hosts" }, settle: ran } },
    { call: { pid: PID, syscall: "openat", phase: "post", emulated: true, ret: 3n } },
    { call: { pid: PID, syscall: "openat", memory: { path: "/etc/hosts" } } }, // control: the kernel ran it
    { call: { pid: PID, syscall: "openat", phase: "post", emulated: true, ret: 4n, waits: false } },
    { lifecycle: { kind: "exit", pid: PID, status: 0 } },
  );
  const posts = r.sink.calls().filter((e) => e.phase === "post");
  assertEquals(posts.map((e) => [e.ret, e.alerts]), [[3, ["watch"]], [4, undefined]]);
  assertEquals(r.source.answered(), ["openat allow", "openat allow", "openat allow"]);
  // Two pre calls and the kernel-run call's post; the post of the call the source ran is the same notification.
  assertEquals(r.sessions.map((s) => [s.summary.notifications, s.summary.emulated]), [[3, 1]]);
});

/** Subscribes to "warning" and answers 0; takes close's post event and exec/exit lifecycle; traps on getuid. */
const COUNTED_SUBSCRIBER = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "declare_subscribe" (func $sub (param i32 i32) (result i32)))
  (import "idwrap" "declare_lifecycle" (func $life (param i32) (result i32)))
  (import "idwrap" "event_syscall" (func $nr (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "warning")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32)
    (drop (call $sub (i32.const 0) (i32.const 7)))
    (drop (call $d (i32.const ${nr("close")}) (i32.const ${POST})))
    (drop (call $d (i32.const ${nr("getuid")}) (i32.const ${PRE | DENY})))
    (drop (call $life (i32.const 3)))
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (if (i32.eq (call $nr) (i32.const ${nr("getuid")})) (then (unreachable)))
    (i32.const 0))
  (func (export "idwrap_on_lifecycle") (param i32))
  (func (export "idwrap_on_abstract") (param i32 i32) (result i32) (i32.const 0)))`;

Deno.test("WSS summary: each session counts, per wrapper, exactly the hook runs, non-allow verdicts, alerts and faults of its processes", async () => {
  const r = rig({
    wrappers: [
      wat("a", hookWat("getpid", PRE | DENY, 7, 0x0d01)), // alerts and denies getpid(7)
      wat("e", emitterWat("warning", "getppid")), // emits "warning" on getppid(1)
      wat("s", COUNTED_SUBSCRIBER, { fail: "closed", maxFailures: 100 }),
    ],
  });
  r.wss.attach(7, PID);
  r.wss.attach(8, OTHER);
  const getpid = (pid: number, arg: bigint): Step => ({
    call: { pid, syscall: "getpid", args: [arg, 0n, 0n, 0n, 0n, 0n] },
  });
  await play(
    r,
    { lifecycle: { kind: "fork", pid: PID, ppid: 1, session: 7, program: SH } },
    { lifecycle: { kind: "fork", pid: OTHER, ppid: 1, session: 8, program: SH } },
    getpid(PID, 7n), // a: pre, deny, alert
    getpid(PID, 8n), // a: pre
    getpid(PID, 8n), // a: pre
    // s: pre, trapped, fail closed: a fault and a deny (its instance is dropped: a fresh one at the next event)
    { call: { pid: PID, syscall: "getuid" } },
    { call: { pid: PID, syscall: "getppid", args: [1n, 0n, 0n, 0n, 0n, 0n] } }, // e: pre; s: abstract
    { call: { pid: PID, syscall: "getppid" } }, // e: pre, nothing emitted
    { call: { pid: PID, syscall: "close" } }, // nobody's pre hook
    { call: { pid: PID, syscall: "close", phase: "post", ret: 0n } }, // s: post
    { lifecycle: { kind: "exec", pid: PID, program: CAT } }, // s: lifecycle (a and e declare none)
    { lifecycle: { kind: "fork", pid: CHILD, ppid: PID } },
    getpid(CHILD, 8n), // a: pre (same session)
    { lifecycle: { kind: "exit", pid: CHILD, status: 0 } }, // s has no instance in CHILD: no hook runs
    { lifecycle: { kind: "exit", pid: PID, status: 0 } }, // s: lifecycle
    getpid(OTHER, 7n), // the other session's: a: pre, deny, alert
    { lifecycle: { kind: "exit", pid: OTHER, status: 0 } },
  );
  assertEquals(r.source.answered(), [
    `getpid deny ${EACCES}`,
    "getpid allow",
    "getpid allow",
    `getuid deny ${EPERM}`,
    "getppid allow",
    "getppid allow",
    "close allow",
    "close allow",
    "getpid allow",
    `getpid deny ${EACCES}`,
  ]);
  const zero = { pre: 0, post: 0, lifecycle: 0, abstract: 0, verdicts: 0, alerts: 0, faults: 0 };
  const hooks = new Map(r.sessions.map((s) => [s.id, s.summary.hooks]));
  assertEquals(hooks.get(7), [
    { ...zero, wrapper: "a", pre: 4, verdicts: 1, alerts: 1 },
    { ...zero, wrapper: "e", pre: 2 },
    { ...zero, wrapper: "s", pre: 1, post: 1, lifecycle: 2, abstract: 1, verdicts: 1, faults: 1 },
  ]);
  // The other tree's calls are counted in its own summary only.
  assertEquals(hooks.get(8), [{ ...zero, wrapper: "a", pre: 1, verdicts: 1, alerts: 1 }, { ...zero, wrapper: "e" }, {
    ...zero,
    wrapper: "s",
  }]);
  assertEquals(r.sessions.map((s) => [s.id, s.summary.denied]), [[7, 2], [8, 1]]);
});

Deno.test("WSS emulated calls: a call whose record cannot be kept fails closed and is not counted as run by the source", async () => {
  const failing: EventSink = {
    wantsSyscalls: false,
    emit: (e) => {
      if (e.kind === "syscall" && e.phase === "pre") throw new Error("journal full");
    },
    flush: () => {},
  };
  const r = rig({
    rules: [rule({ id: "watch", syscalls: ["openat"], path: "/etc/hosts", action: "alert" })],
    sink: failing,
  });
  r.wss.attach(1, PID);
  await play(
    r,
    { lifecycle: { kind: "fork", pid: PID, ppid: 1, session: 1, program: SH } },
    {
      call: {
        pid: PID,
        syscall: "openat",
        memory: { path: "/etc/hosts" },
        settle: { verdict: { action: "allow" }, emulated: true },
      },
    },
    { lifecycle: { kind: "exit", pid: PID, status: 0 } },
  );
  assertEquals(r.source.answered(), ["openat deny 1"]);
  assertEquals(r.sessions.map((s) => s.summary.emulated), [0]);
});

Deno.test("WSS race report: a call the kernel side ran on its copy while the caller's memory said otherwise is alerted, never answered", async () => {
  const r = rig();
  r.wss.attach(1, PID);
  await play(
    r,
    { lifecycle: { kind: "fork", pid: PID, ppid: 1, session: 1, program: SH } },
    { call: { pid: PID, syscall: "unlink", waits: false, raced: { said: "/etc/shadow", ranOn: "/tmp/x" } } },
    { call: { pid: PID, syscall: "connect", waits: false, refusedErrno: EACCES, raced: { said: "", ranOn: "" } } },
    { lifecycle: { kind: "exit", pid: PID, status: 0 } },
  );
  assertEquals(r.sink.calls().map((e) => [e.syscall, e.alerts, e.verdict ?? "", /raced: /.test(e.reason ?? "")]), [
    ["unlink", [RACE_ALERT], "", true],
    ["connect", [RACE_ALERT], "deny EACCES", true],
  ]);
  assertEquals(r.source.answered(), []);
});
