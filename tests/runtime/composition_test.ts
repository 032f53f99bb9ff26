/**
 * Composition on real processes (the paper's section 2.1): layered — pre
 * from the outermost wrapper in, post from the innermost out, the first deny
 * wins and later layers are told — and active — an emitted abstract event
 * runs the subscribers at once and their answer returns to the emitter.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, reports, traced, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";

/** What /bin/sh is: wrappers see the canonical path of what runs (docs/seccomp.md, "Paths"). */
const SH_REAL = Deno.realPathSync("/bin/sh");

const dir = await scratchDir({ prefix: "idwrap-compose-" });
const target = `${dir}/target.txt`;
await Deno.writeTextFile(target, "target\n");

/**
 * A layer: on openat of the target (by length, enough here) it alerts
 * "<name> pre denied=<0|1>" and, if `errno`, denies with it; in post it
 * alerts "<name> post".
 */
function layer(name: string, errno: number): string {
  const pre = `${name} pre denied=`;
  const post = `${name} post`;
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
    (import "idwrap" "event_phase" (func $phase (result i32)))
    (import "idwrap" "event_denied" (func $denied (result i32)))
    (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "${pre}")
    (data (i32.const 100) "${post}")
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 7))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32)
      (if (i32.ne (call $s (i32.const 0) (i32.const 1024) (i32.const 1024)) (i32.const ${target.length}))
        (then (return (i32.const 0))))
      (if (call $phase) (then (call $alert (i32.const 0) (i32.const 100) (i32.const ${post.length})) (return (i32.const 0))))
      (i32.store8 (i32.const ${pre.length}) (i32.add (i32.const 48) (call $denied)))
      (call $alert (i32.const 0) (i32.const 0) (i32.const ${pre.length + 1}))
      (i32.const ${errno ? `0x${((errno << 8) | 1).toString(16)}` : 0})))`;
}

Deno.test("layered: pre runs outermost first, post innermost first; the first deny wins and later layers are told", async () => {
  const a = await writeWasm("a", watToWasm(layer("A", 0)));
  const b = await writeWasm("b", watToWasm(layer("B", 13))); // EACCES
  const c = await writeWasm("c", watToWasm(layer("C", 2))); // ENOENT, never the answer
  const policy = await writePolicy(`
wrappers:
  - { name: A, module: ${a} }
  - { name: B, module: ${b} }
  - { name: C, module: ${c} }
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", target]);
  assert(r.stderr.includes("Permission denied"), r.stderr);
  assertEquals(
    reports(r.events, "alert").map((x) => x.message),
    ["A pre denied=0", "B pre denied=0", "C pre denied=1"],
  );
  assertEquals(calls(r.events).find((e) => e.decoded.path === target)?.verdict, "deny EACCES");

  // Without a deny, the call runs and post comes back out through the layers.
  const pa = await writeWasm("pa", watToWasm(layer("A", 0)));
  const pb = await writeWasm("pb", watToWasm(layer("B", 0)));
  const allow = await writePolicy(`wrappers:\n  - { name: A, module: ${pa} }\n  - { name: B, module: ${pb} }\n`);
  const r2 = await traced("run", ["-p", allow], ["/bin/cat", target]);
  assertEquals(r2.stdout, "target\n");
  assertEquals(
    reports(r2.events, "alert").map((x) => x.message),
    ["A pre denied=0", "B pre denied=0", "B post", "A post"],
  );
});

/** Emits "warning" on execve with the path; kills when the answer is 2, denies EACCES on 1. */
const EMITTER = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "declare_emit" (func $de (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (import "idwrap" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "warning")
  (global $h (mut i32) (i32.const -1))
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32)
    (drop (call $d (i32.const 59) (i32.const 5)))
    (global.set $h (call $de (i32.const 0) (i32.const 7)))
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32) (local $answer i32)
    (local.set $answer (call $emit (i32.const 0) (i32.const 1024) (call $s (i32.const 0) (i32.const 1024) (i32.const 1024))))
    (if (i32.eq (local.get $answer) (i32.const 2)) (then (return (i32.const 2))))
    (if (i32.eq (local.get $answer) (i32.const 1)) (then (return (i32.const 0x0d01))))
    (i32.const 0)))`;

/** Subscribes to "warning"; alerts "<emitter>:<payload>" and answers with its setting "answer". */
const SUBSCRIBER = `(module
  (import "idwrap" "declare_subscribe" (func $sub (param i32 i32) (result i32)))
  (import "idwrap" "abstract_payload" (func $payload (param i32 i32) (result i32)))
  (import "idwrap" "abstract_emitter" (func $emitter (param i32 i32) (result i32)))
  (import "idwrap" "settings_get" (func $setting (param i32 i32 i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "warning")
  (data (i32.const 16) "answer")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $sub (i32.const 0) (i32.const 7))) (i32.const 0))
  (func (export "idwrap_on_abstract") (param $sub i32) (param $len i32) (result i32) (local $n i32)
    (local.set $n (call $emitter (i32.const 1024) (i32.const 64)))
    (i32.store8 (i32.add (i32.const 1024) (local.get $n)) (i32.const 58))
    (local.set $n (i32.add (i32.add (local.get $n) (i32.const 1))
      (call $payload (i32.add (i32.const 1025) (local.get $n)) (i32.const 512))))
    (call $alert (i32.const 2) (i32.const 1024) (local.get $n))
    (drop (call $setting (i32.const 16) (i32.const 6) (i32.const 2048) (i32.const 4)))
    (i32.sub (i32.load8_u (i32.const 2048)) (i32.const 48))))`;

for (const [answer, outcome] of [[0, "runs"], [2, "is killed"]] as const) {
  Deno.test(`active: a subscriber's answer ${answer} returns to the emitter, and the program ${outcome}`, async () => {
    const emitter = await writeWasm("emitter", watToWasm(EMITTER));
    const subscriber = await writeWasm("subscriber", watToWasm(SUBSCRIBER));
    const policy = await writePolicy(`
wrappers:
  - { name: emitter, module: ${emitter} }
  - { name: subscriber, module: ${subscriber}, settings: { answer: "${answer}" } }
`);
    const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", "/bin/true; echo done"]);
    const alerts = reports(r.events, "alert").map((a) => `${a.wrapper}|${a.message}`);
    assertEquals(alerts[0], `subscriber|emitter:${SH_REAL}`);
    if (answer === 0) {
      assertEquals(r.stdout, "done\n");
      assert(alerts.includes(`subscriber|emitter:${Deno.realPathSync("/bin/true")}`), alerts.join("\n"));
    } else {
      assertEquals(r.code, 137);
      assertEquals(r.stdout, "");
      assert(calls(r.events).some((e) => e.syscall === "execve" && e.verdict === "kill"));
    }
  });
}
