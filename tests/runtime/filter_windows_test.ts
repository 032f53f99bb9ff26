/**
 * ABI 1.4's filter_windows and event_window on a real process (the seccomp source, which keeps no window): the
 * statuses docs/abi.md promises for bad and good arguments (-ENOSYS for a good set: this source keeps none), and
 * event_window's answer where the source drops nothing (0, both values written as 0), so a wrapper written for 1.4 behaves there as before.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { ABI_MINOR } from "../../host/runtime/abi.ts";
import { reports, traced, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";

/** The checks the module runs: [what, the call (WAT, leaves an i32), the status expected]. */
const INIT_CHECKS: [string, string, number][] = [
  ["k 0", "(call $fw (i32.const 0) (i32.const 1024) (i32.const 1))", -22],
  ["k 7", "(call $fw (i32.const 7) (i32.const 1024) (i32.const 1))", -22],
  ["a window of 0", "(call $fw (i32.const 1) (i32.const 1040) (i32.const 1))", -22],
  ["a window wider than k", "(call $fw (i32.const 1) (i32.const 1032) (i32.const 1))", -22],
  ["too many", "(call $fw (i32.const 1) (i32.const 1024) (i32.const 65537))", -7],
  ["outside memory", "(call $fw (i32.const 1) (i32.const 65528) (i32.const 2))", -22],
  ["a negative count", "(call $fw (i32.const 1) (i32.const 1024) (i32.const -1))", -22],
  // Valid sets: the seccomp source drops nothing in the kernel, so the host does not keep them.
  ["one good window, on seccomp", "(call $fw (i32.const 1) (i32.const 1024) (i32.const 1))", -38],
  ["none (an empty set), on seccomp", "(call $fw (i32.const 2) (i32.const 1024) (i32.const 0))", -38],
];
const HOOK_CHECKS: [string, string, number][] = [
  ["event_window on seccomp", "(call $ew (i32.const 2048))", 0],
  [
    "what it wrote",
    "(i32.or (i32.wrap_i64 (i64.load (i32.const 2048))) (i32.wrap_i64 (i64.load (i32.const 2056))))",
    0,
  ],
  ["event_window outside memory", "(call $ew (i32.const 65528))", -22],
];

/** Alerts "ok <what>" or "bad <what>" for each check; every message sits in the data segment. */
function checks(list: [string, string, number][], base: number): { code: string; data: string } {
  let code = "", data = "", at = base;
  for (const [what, call, expected] of list) {
    const ok = `ok ${what}`, bad = `bad ${what}`;
    data += `(data (i32.const ${at}) "${ok}") (data (i32.const ${at + 64}) "${bad}")`;
    code += `(if (i32.eq ${call} (i32.const ${expected}))
      (then (call $alert (i32.const 0) (i32.const ${at}) (i32.const ${ok.length})))
      (else (call $alert (i32.const 0) (i32.const ${at + 64}) (i32.const ${bad.length}))))`;
    at += 128;
  }
  return { code, data };
}

const init = checks(INIT_CHECKS, 4096);
const hook = checks(HOOK_CHECKS, 4096 + 128 * INIT_CHECKS.length);
const MODULE = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "filter_windows" (func $fw (param i32 i32 i32) (result i32)))
  (import "idwrap" "event_window" (func $ew (param i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  ${init.data} ${hook.data}
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x0001000${ABI_MINOR}))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 110) (i32.const 1))) (i32.const 0))
  (func (export "idwrap_init") (result i32)
    (i64.store (i32.const 1024) (i64.const 5))
    (i64.store (i32.const 1032) (i64.const 1024))
    (i64.store (i32.const 1040) (i64.const 0))
    ${init.code}
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (i64.store (i32.const 2048) (i64.const -1))
    (i64.store (i32.const 2056) (i64.const -1))
    ${hook.code}
    (i32.const 0)))`;

Deno.test("filter_windows and event_window (ABI 1.4) answer as docs/abi.md says; a source without a filter reports no window", async () => {
  const module = await writeWasm("filterer", watToWasm(MODULE));
  const policy = await writePolicy(`wrappers:\n  - { name: filterer, module: ${module} }\n`);
  const r = await traced("run", ["--source", "seccomp", "-p", policy], ["/bin/sh", "-c", "echo $PPID >/dev/null"]);
  assertEquals(r.code, 0, r.stderr);
  const got = reports(r.events, "alert").filter((a) => a.wrapper === "filterer").map((a) => a.message);
  const want = [...INIT_CHECKS, ...HOOK_CHECKS].map(([what]) => `ok ${what}`);
  // Every check passed, in order, for the first process (others follow with the same answers).
  assertEquals(got.slice(0, want.length), want);
  assertEquals(got.filter((m) => m.startsWith("bad ")), []);
});
