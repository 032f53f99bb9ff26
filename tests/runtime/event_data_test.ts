/**
 * ABI 1.1's event_data on real processes: a wrapper sees the bytes a write
 * is about to write and can refuse it.
 */
import { ABI_MINOR } from "../../host/runtime/abi.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, traced, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";

/** Denies (EPERM) a write whose bytes start with "SECRET"; others pass. */
const DENY_SECRET_WRITES = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_data" (func $data (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "SECRET")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010001))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 1) (i32.const 5))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32) (local $n i32) (local $i i32)
    (local.set $n (call $data (i32.const 1024) (i32.const 4096)))
    (if (i32.lt_s (local.get $n) (i32.const 6)) (then (return (i32.const 0))))
    (block $differ
      (loop $next
        (br_if $differ (i32.ne (i32.load8_u (local.get $i)) (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 6))))
      (return (i32.const 1)))
    (i32.const 0)))`;

Deno.test("event_data: a wrapper reads a write's bytes and refuses the one it must", async () => {
  const wasm = await writeWasm("deny_secret_writes", watToWasm(DENY_SECRET_WRITES));
  const policy = await writePolicy(`wrappers:\n  - { name: writes, module: ${wasm} }\n`);
  // The secret is put together at run time: the command line (in every event's process.args) never holds it whole.
  const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", 'echo public; s=SECRET; echo "$s data"; echo after']);
  assertEquals(r.stdout, "public\nafter\n");
  const denied = calls(r.events).filter((e) => e.syscall === "write" && e.verdict === "deny EPERM");
  assertEquals(denied.length, 1);
  assert(!JSON.stringify(r.events).includes("SECRET data"), "the written bytes stay out of the JSON report");
  assert(!JSON.stringify(r.events).includes("dataBase64"), "…in any encoding (trace --record-data only)");
});

Deno.test("event_data: writes of any size pass through a wrapper that examines them (64 KiB are shown)", async () => {
  const wasm = await writeWasm("deny_secret_writes", watToWasm(DENY_SECRET_WRITES));
  const policy = await writePolicy(`wrappers:\n  - { name: writes, module: ${wasm} }\n`);
  const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", "head -c 300000 /dev/zero | cat | wc -c"]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim(), "300000");
});

Deno.test("a module built for a newer minor ABI is refused with both versions named", async () => {
  const next = ABI_MINOR + 1;
  const newer = await writeWasm(
    "newer",
    watToWasm(DENY_SECRET_WRITES.replace("0x00010001", `0x0001${next.toString(16).padStart(4, "0")}`)),
  );
  const policy = await writePolicy(`wrappers:\n  - { name: newer, module: ${newer} }\n`);
  const r = await traced("run", ["-p", policy], ["/bin/true"]);
  assertEquals(r.code, 2);
  assert(r.stderr.includes(`built for hook ABI 1.${next}; this idwrap speaks 1.${ABI_MINOR}`), r.stderr);
});
