/**
 * Hostile wrappers: each is stopped or refused with a clear message, the
 * wrapped program gets the policy's fail mode, and the host and the other
 * wrappers keep working.
 */
import { scratchDir } from "../temp.ts";
import { ABI_MINOR } from "../../host/runtime/abi.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, idwrap, reports, traced, writePolicy } from "../helpers.ts";
import { watToWasm, witnessWat, writeWasm } from "./wat.ts";

const dir = await scratchDir({ prefix: "idwrap-hostile-" });
await Deno.writeTextFile(`${dir}/file.txt`, "content\n");

/** A module that declares openat and runs `body` in its hook. */
function hooked(body: string, version = "0x00010000"): string {
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "idwrap_abi_version") (result i32) (i32.const ${version}))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 5))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32) ${body}))`;
}

/**
 * A module that declares openat and runs `body` in its hook on opens of paths under `prefix` only (a wrapper that
 * fails on everything would keep the dynamic loader from opening libc, now that fail: closed stays closed).
 */
function hookedUnder(prefix: string, body: string, pages = 1, imports = ""): string {
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
    ${imports}
    (memory (export "memory") ${pages})
    (data (i32.const 0) "${prefix}")
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 5))) (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32)
      (local $i i32)
      (if (i32.lt_s (call $s (i32.const 0) (i32.const 4096) (i32.const 4096)) (i32.const ${prefix.length}))
        (then (return (i32.const 0))))
      (loop $next
        (if (i32.ne (i32.load8_u (local.get $i)) (i32.load8_u (i32.add (i32.const 4096) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const ${prefix.length}))))
      ${body}))`;
}

/** A well-behaved wrapper beside the hostile one: it alerts on every openat. */
const witness = await writeWasm("witness", watToWasm(witnessWat("seen", "syscall")));

const RUNAWAY: [string, string, string][] = [
  ["an infinite loop", "(loop $l (br $l)) (i32.const 0)", "ran past its CPU budget of 100000 units"],
  ["a trap", "(unreachable)", "trapped: unreachable"],
  [
    "memory grown past its cap",
    "(block $full (loop $grow (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $grow))) " +
    "(i32.store (i32.const 0x7ffffff0) (i32.const 1)) (i32.const 0)",
    "memory at its cap of 2 MiB",
  ],
];

for (const [what, body, message] of RUNAWAY) {
  Deno.test(`a wrapper with ${what} is stopped, the call fails closed, and the other wrapper keeps working`, async () => {
    const hostile = await writeWasm("hostile", watToWasm(hookedUnder(dir, body)));
    const policy = await writePolicy(`
wrappers:
  - { name: hostile, module: ${hostile}, budget: 100000, memory: 2, max_failures: 3, on_max_failures: deny }
  - { name: witness, module: ${witness} }
`);
    const r = await traced("run", ["-p", policy], [
      "/bin/sh",
      "-c",
      `cat ${[1, 2, 3, 4, 5].map(() => `${dir}/file.txt`).join(" ")}; cat ${dir}/file.txt; echo alive`,
    ]);
    // The host survived: sh ran to the end and idwrap reported its exit.
    assert(r.stdout.includes("alive"), r.stdout + r.stderr);
    const faults = reports(r.events, "fault").filter((f) => f.wrapper === "hostile");
    assert(faults.length >= 1, "no fault reported");
    assert(faults[0].message.includes(message), faults[0].message);
    assert(faults[0].message.includes("call denied (fail closed)"), faults[0].message);
    const brokenAt = faults.find((f) =>
      f.message.includes("failed 3 times in a row in this process (max_failures 3), fail closed")
    )
      ?.time;
    assert(brokenAt !== undefined, faults.map((f) => f.message).join("\n"));
    assert(!faults.some((f) => /unloaded|disabled/.test(f.message)), "unloaded");
    // Fail closed, also past max_failures (on_max_failures: deny): no open of the file ever ran.
    assert(calls(r.events).some((e) => e.syscall === "openat" && e.verdict === "deny EPERM"));
    assert(!calls(r.events).some((e) => e.decoded.path === `${dir}/file.txt` && e.verdict === "allow"));
    assert(!r.stdout.includes("content"), r.stdout);
    // The witness saw opens after the hostile wrapper gave up.
    assert(reports(r.events, "alert").some((a) => a.wrapper === "witness" && a.time >= brokenAt));
  });
}

Deno.test("a hook looping on large memory.fill is stopped by its budget (bulk operations are metered by size)", async () => {
  // 2 MiB per fill: 65,536 units each, so the default budget of 10^7 stops it after ~150 fills (milliseconds); counted
  // as one unit per iteration it would fill 10^7 times (20 TB) and only the wall-clock watchdog would stop it.
  const body = "(loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 0x200000)) (br $l)) (i32.const 0)";
  const filler = await writeWasm("filler", watToWasm(hookedUnder(dir, body, 32)));
  const policy = await writePolicy(`wrappers:\n  - { name: filler, module: ${filler} }\n`);
  const began = performance.now();
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/file.txt`]);
  assertEquals(r.stdout, "");
  const faults = reports(r.events, "fault").map((f) => f.message);
  assert(faults.length >= 1 && faults[0].includes("ran past its CPU budget of 10000000 units"), r.stderr);
  assert(!r.stderr.includes("wall-clock"), r.stderr);
  assert(performance.now() - began < 10_000);
});

Deno.test("a hook looping on an import that copies 32 KiB is stopped by its budget (copies are charged)", async () => {
  // kv_get of a 32 KiB value: 1,024 units per call, so ~10^4 calls per default budget, not 10^7 (minutes).
  const imports = `(import "idwrap" "kv_set" (func $set (param i32 i32 i32 i32) (result i32)))
    (import "idwrap" "kv_get" (func $get (param i32 i32 i32 i32) (result i32)))`;
  const body = "(drop (call $set (i32.const 0) (i32.const 1) (i32.const 65536) (i32.const 32768))) " +
    "(loop $l (drop (call $get (i32.const 0) (i32.const 1) (i32.const 65536) (i32.const 32768))) (br $l)) (i32.const 0)";
  const copier = await writeWasm("copier", watToWasm(hookedUnder(dir, body, 2, imports)));
  const policy = await writePolicy(`wrappers:\n  - { name: copier, module: ${copier} }\n`);
  const began = performance.now();
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/file.txt`]);
  assertEquals(r.stdout, "");
  const faults = reports(r.events, "fault").map((f) => f.message);
  assert(faults.length >= 1 && faults[0].includes("ran past its CPU budget of 10000000 units"), r.stderr);
  assert(!r.stderr.includes("wall-clock"), r.stderr);
  assert(performance.now() - began < 10_000);
});

Deno.test("a failing wrapper with fail: open lets the call run", async () => {
  const hostile = await writeWasm("hostile", watToWasm(hooked("(unreachable)")));
  const policy = await writePolicy(`
wrappers:
  - { name: hostile, module: ${hostile}, fail: open }
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/file.txt`]);
  assertEquals(r.stdout, "content\n");
  assert(reports(r.events, "fault").some((f) => f.message.includes("call allowed (fail open)")));
});

/** A module with a hook of the given WAT signature (and body), otherwise valid. */
function withHook(signature: string, body = ""): () => Uint8Array {
  return () =>
    watToWasm(`(module
      (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
      (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 5))) (i32.const 0))
      (func (export "idwrap_on_syscall") ${signature} ${body}))`);
}

/** What a bad wrapper is, its bytes, `run`'s message; whether `policy check` (source-independent) refuses it too. */
/** What, the module, the error, whether `policy check` refuses it too, and the source it is refused on (default auto). */
const REFUSED: [string, () => Uint8Array, RegExp, boolean?, string?][] = [
  [
    "exports its syscall hook without a result (read as allow before)",
    withHook(""),
    /Cannot load wrapper "bad": exports "idwrap_on_syscall" with signature \(\) -> void, expected signature \(\) -> i32/,
  ],
  [
    "exports its syscall hook returning i64",
    withHook("(result i64)", "(i64.const 1)"),
    /Cannot load wrapper "bad": exports "idwrap_on_syscall" with signature \(\) -> i64, expected signature \(\) -> i32/,
  ],
  [
    "exports its syscall hook with a parameter",
    withHook("(param i32) (result i32)", "(i32.const 1)"),
    /Cannot load wrapper "bad": exports "idwrap_on_syscall" with signature \(i32\) -> i32, expected signature \(\) -> i32/,
  ],
  [
    "exports memory as a global",
    () =>
      watToWasm(`(module (global (export "memory") i32 (i32.const 0))
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
      (func (export "idwrap_declare") (result i32) (i32.const 0)))`),
    /Cannot load wrapper "bad": exports "memory" as a global, expected a memory/,
  ],
  [
    "imports an ABI function with the wrong signature",
    () =>
      watToWasm(`(module (import "idwrap" "event_string" (func (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
      (func (export "idwrap_declare") (result i32) (i32.const 0)))`),
    /Cannot load wrapper "bad": imports "idwrap\.event_string" with signature \(i32\) -> i32, expected \(i32, i32, i32\) -> i32/,
  ],
  [
    "imports something outside the ABI",
    () =>
      watToWasm(`(module (import "env" "abort" (func (param i32 i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
      (func (export "idwrap_declare") (result i32) (i32.const 0)))`),
    /Cannot load wrapper "bad": imports "env\.abort" \(func\), which is outside the ABI/,
  ],
  [
    "claims an unknown ABI version",
    () => watToWasm(hooked("(i32.const 0)", "0x00020000")),
    new RegExp(`Cannot load wrapper "bad": it was built for hook ABI 2\\.0; this idwrap speaks 1\\.${ABI_MINOR}`),
  ],
  [
    "is a malformed binary",
    () => new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff]),
    /Cannot load wrapper "bad": .* is not a valid WebAssembly module/,
  ],
  [
    "asks for post events the seccomp source cannot serve",
    () =>
      watToWasm(`(module
      (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
      (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 87) (i32.const 2))) (i32.const 0))
      (func (export "idwrap_on_syscall") (result i32) (i32.const 0)))`),
    /Cannot load wrapper "bad": it asks for post events of unlink, which the seccomp source cannot serve/,
    false,
    "seccomp", // named: bpf and the hybrid serve every call's result
  ],
];

for (const [what, bytes, message, checked = true, source = "auto"] of REFUSED) {
  Deno.test(`a wrapper that ${what} is refused before anything runs`, async () => {
    const bad = await writeWasm("bad", bytes());
    const marker = `${dir}/ran-${crypto.randomUUID()}`;
    const policy = await writePolicy(`wrappers:\n  - { name: bad, module: ${bad} }\n`);
    const r = await idwrap(["run", "--source", source, "-p", policy, "--", "/bin/touch", marker]);
    assertEquals(r.code, 2, r.stderr);
    assert(message.test(r.stderr), r.stderr);
    await Deno.stat(marker).then(() => assert(false, "the command ran"), () => {});
    if (!checked) return;
    const check = await idwrap(["policy", "check", policy]);
    assertEquals(check.code, 2, check.stdout + check.stderr);
    assert(check.stderr.startsWith(`${policy}: `) && message.test(check.stderr), check.stderr);
  });
}
