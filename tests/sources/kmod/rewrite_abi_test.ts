/**
 * The rewrite verdict's host side (ABI 1.2), where no module is needed: the
 * wrapper chain turns action 3 plus verdict_rewrite / verdict_rewrite_path
 * into a rewrite verdict for a source that can carry it out (kmod), and a
 * wrapper under the seccomp source gets -ENOSYS and cannot rewrite — on a
 * real process too. Modules built for 1.0 still load on this 1.2 host.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { EventSink } from "../../../host/decider.ts";
import type { HostEvent, SyscallEvent } from "../../../host/events.ts";
import { WRAPPER_DEFAULTS, type WrapperSpec } from "../../../host/policy/policy.ts";
import { WrapperChain } from "../../../host/runtime/chain.ts";
import { v8Engine } from "../../../host/runtime/engine.ts";
import { loadWrapper } from "../../../host/runtime/module.ts";
import { KvNamespace } from "../../../host/store/kv.ts";
import { reports, traced, writePolicy } from "../../helpers.ts";
import { watToWasm, writeWasm } from "../../runtime/wat.ts";
import { denyOpenWat, rewriteWat } from "./wrappers.ts";

const FROM = "/tmp/idwrap-rw/secret", TO = "/tmp/idwrap-rw/decoy";

function spec(name: string): WrapperSpec {
  return { name, module: `${name}.wasm`, settings: {}, ...WRAPPER_DEFAULTS, clock: false };
}

class Collect implements EventSink {
  readonly wantsSyscalls = true;
  events: HostEvent[] = [];
  emit(e: HostEvent) {
    this.events.push(e);
  }
  flush() {}
}

function event(nr: number, name: string, args: bigint[], path?: string): SyscallEvent {
  return {
    kind: "syscall",
    source: "kmod",
    phase: "pre",
    time: Date.now(),
    pid: 4242,
    tid: 4242,
    abi: "x86_64",
    nr,
    syscall: name,
    args: args.map(String),
    decoded: path === undefined ? {} : { path, dirfd: "AT_FDCWD" },
    program: { exe: "/bin/cat", argv0: "cat", uid: 0, gid: 0 },
  };
}

function chain(source: "kmod" | "seccomp", rewrite: boolean) {
  const mod = loadWrapper(spec("rw"), watToWasm(rewriteWat(FROM, TO)), v8Engine, "rw.wasm");
  const sink = new Collect();
  const kv = new Map([["rw", new KvNamespace([], () => {})]]);
  return { c: new WrapperChain([mod], { engine: v8Engine, sink, kv, source, rewrite }), sink };
}

Deno.test("rewrite (ABI 1.2): the kmod chain turns action 3 into rewrite verdicts", () => {
  const { c, sink } = chain("kmod", true);
  assertEquals(c.decide(event(1, "write", [1n, 4096n, 5n, 0n, 0n, 0n])), { action: "rewrite", arg: 0, value: 2n });
  // Not fd 1: allowed unchanged.
  assertEquals(c.decide(event(1, "write", [2n, 4096n, 5n, 0n, 0n, 0n])), { action: "allow" });
  assertEquals(c.decide(event(257, "openat", [0xffffff9cn, 4096n, 0n, 0n, 0n, 0n], FROM)), {
    action: "rewrite",
    arg: -1,
    value: 0n,
    path: TO,
  });
  assertEquals(c.decide(event(257, "openat", [0xffffff9cn, 4096n, 0n, 0n, 0n, 0n], "/etc/passwd")), {
    action: "allow",
  });
  assertEquals(reports(sink.events), []);
});

Deno.test("rewrite (ABI 1.2): where the source cannot rewrite, verdict_rewrite is -ENOSYS and action 3 a fault", () => {
  const { c, sink } = chain("seccomp", false);
  assertEquals(c.decide(event(1, "write", [1n, 4096n, 5n, 0n, 0n, 0n])), { action: "allow" });
  assertEquals(reports(sink.events).map((r) => [r.kind, r.message]), [["alert", "rewrite: -38"]]);

  // A wrapper that returns 3 anyway: reported as a fault, the call allowed (as before ABI 1.2).
  const blunt = `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010002))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 1) (i32.const 5))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32) (i32.const 3)))`;
  for (
    const [source, rewrite, message] of [
      ["seccomp", false, "returned a rewrite verdict, which the seccomp source cannot carry out"],
      ["kmod", true, "returned rewrite without calling verdict_rewrite or verdict_rewrite_path"],
    ] as const
  ) {
    const mod = loadWrapper(spec("blunt"), watToWasm(blunt), v8Engine, "blunt.wasm");
    const s = new Collect();
    const kv = new Map([["blunt", new KvNamespace([], () => {})]]);
    const c2 = new WrapperChain([mod], { engine: v8Engine, sink: s, kv, source, rewrite });
    const v = c2.decide(event(1, "write", [1n, 4096n, 5n, 0n, 0n, 0n]));
    assertEquals(v, source === "seccomp" ? { action: "allow" } : { action: "deny", errno: 1 });
    const faults = reports(s.events, "fault").map((r) => r.message);
    assert(faults.some((m) => m.includes(message)), `${source}: ${faults.join("; ")}`);
  }
});

Deno.test("rewrite (ABI 1.2): a 1.0 module loads on this host; a wrapper that rewrites runs unchanged under seccomp", async () => {
  loadWrapper(spec("old"), watToWasm(denyOpenWat("/nonexistent")), v8Engine, "old.wasm"); // 0x00010000
  const wasm = await writeWasm("rw", watToWasm(rewriteWat(FROM, TO)));
  const policy = await writePolicy(`wrappers:\n  - { name: rw, module: ${wasm} }\n`);
  const r = await traced("run", ["--source", "seccomp", "-p", policy], ["/bin/echo", "hello"]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout, "hello\n");
  assert(reports(r.events, "alert").some((a) => a.message === "rewrite: -38"), r.stderr);
});
