/**
 * Tests of host/runtime/wasm/ (summary and metering): modules built from WAT with wabt (and one from AssemblyScript with asc), then
 * summarized, instrumented, validated and run against their originals.
 */
import { scratchDir } from "../temp.ts";
import { appendCustomSection } from "../../host/runtime/settings.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";
import { instrument, signatureText, summarize, WasmBinaryError } from "../../host/runtime/wasm/mod.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const wabt = await wabtInit();

/** Post-MVP features the tests use (multi_memory is accepted by wabt but missing from its typings). */
const FEATURES: Parameters<typeof wabt.parseWat>[2] = Object.assign(
  { sat_float_to_int: true, sign_extension: true, multi_value: true, bulk_memory: true, reference_types: true },
  { tail_call: true, simd: true, threads: true, exceptions: true, multi_memory: true },
);

/** A binary from WAT text (V8 validates it when a test instantiates it). */
function wat(text: string): Uint8Array {
  const module = wabt.parseWat("test.wat", text, FEATURES);
  try {
    return module.toBinary({ write_debug_names: true }).buffer;
  } finally {
    module.destroy();
  }
}

type Fn = (...args: number[]) => number;
type Exports = Record<string, Fn> & { idwrap_fuel: WebAssembly.Global; memory: WebAssembly.Memory };

/** Instantiates a binary. */
function instantiate(bytes: Uint8Array, imports: WebAssembly.Imports = {}): Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), imports).exports as Exports;
}

/** instrument() with a generous cap, checking the result validates. */
function metered(bytes: Uint8Array, maxMemoryPages = 256): Uint8Array {
  const out = instrument(bytes, { maxMemoryPages });
  assert(WebAssembly.validate(out as Uint8Array<ArrayBuffer>), "instrumented module does not validate");
  return out;
}

/** Loops, blocks, br_table, calls, if/else and memory: squares into memory, then sums them back. */
const MIXED = wat(`(module
  (memory (export "memory") 1)
  (func $classify (param $x i32) (result i32)
    (block $c (block $b (block $a (br_table $a $b $c (local.get $x)))
      (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  (func $sq (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func (export "run") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.shl (local.get $i) (i32.const 2)) (call $sq (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.set $i (i32.const 0))
    (loop $m
      (if (i32.and (local.get $i) (i32.const 1))
        (then (local.set $acc (i32.add (local.get $acc) (i32.load (i32.shl (local.get $i) (i32.const 2))))))
        (else (local.set $acc (i32.sub (local.get $acc) (call $classify (i32.rem_u (local.get $i) (i32.const 4)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $m (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))`);

/** What MIXED's run(n) returns, computed here (its second loop runs at least once). */
function mixedResult(n: number): number {
  let acc = 0;
  for (let i = 0; i < Math.max(n, 1); i++) acc += i % 2 ? i * i : -(i % 4 === 0 ? 10 : 30);
  return acc;
}

/** MIXED's run(n) fuel: run's entry, n entries of $sq, $classify's for even i, then the two loops' iterations. */
function mixedFuel(n: number): number {
  const m = Math.max(n, 1);
  return 1 + n + Math.ceil(m / 2) + (n + 1) + m;
}

/** The fuel `call` uses, from a budget of 1,000,000. */
function fuelUsed(inst: Exports, call: () => unknown): number {
  inst.idwrap_fuel.value = 1_000_000;
  call();
  return 1_000_000 - (inst.idwrap_fuel.value as number);
}

/**
 * Checks that `call` needs exactly `used` units, wherever the last one is spent: with any budget below it traps and
 * leaves the global at -1 (the host's "ran past its CPU budget"), with `used` it runs and leaves 0.
 */
function assertExactFuel(inst: Exports, used: number, call: () => unknown): void {
  for (let budget = 0; budget < used; budget++) {
    inst.idwrap_fuel.value = budget;
    throws(call, WebAssembly.RuntimeError, `budget ${budget} of ${used}`);
    assertEquals(inst.idwrap_fuel.value, -1, `budget ${budget} of ${used}`);
  }
  inst.idwrap_fuel.value = used;
  call();
  assertEquals(inst.idwrap_fuel.value, 0);
}

/** A binary's text (wabt), to check what instrument() put where. */
function text(bytes: Uint8Array): string {
  const module = wabt.readWasm(bytes, { readDebugNames: true, ...FEATURES });
  try {
    return module.toText({});
  } finally {
    module.destroy();
  }
}

/** The text of function `name` (with debug names), up to the next function. */
function funcText(bytes: Uint8Array, name: string): string {
  const all = text(bytes);
  const start = all.indexOf(`(func $${name} `);
  assert(start >= 0, `no function $${name}`);
  const next = all.indexOf("\n  (func ", start + 1);
  return all.slice(start, next < 0 ? undefined : next);
}

/** Byte offset of the section with id `id` (its id byte); sections of these small modules have 1-byte sizes. */
function sectionAt(bytes: Uint8Array, id: number): number {
  for (let at = 8; at < bytes.length; at += 2 + bytes[at + 1]) {
    assert(bytes[at + 1] < 0x80);
    if (bytes[at] === id) return at;
  }
  throw new Error(`no section ${id}`);
}

Deno.test("summarize lists imports, exports and the first defined memory", () => {
  const bytes = wat(`(module
    (import "env" "log" (func $log (param i32)))
    (import "env" "g" (global $g i32))
    (import "env" "t" (table 1 funcref))
    (memory (export "memory") 2 10)
    (global $h (mut i32) (i32.const 0))
    (func (export "go") (call $log (global.get $g)))
    (export "h" (global $h)))`);
  // wabt writes a "name" custom section: the custom sections are compared below.
  const { custom: _names, ...summary } = summarize(bytes);
  assertEquals(summary, {
    imports: [
      { module: "env", name: "log", kind: "func", signature: "i>" },
      { module: "env", name: "g", kind: "global" },
      { module: "env", name: "t", kind: "table" },
    ],
    exports: [
      { name: "memory", kind: "memory", index: 0 },
      { name: "go", kind: "func", index: 1, signature: ">" },
      { name: "h", kind: "global", index: 1 },
    ],
    memory: { initial: 2, maximum: 10 },
  });
  assertEquals(summarize(wat(`(module (memory 3))`)).memory, { initial: 3 });
  assertEquals(summarize(wat(`(module (import "env" "m" (memory 1)))`)).memory, undefined);
  // Custom sections (ABI 1.3's settings schema is one), by name and payload, in file order.
  const named = appendCustomSection(
    appendCustomSection(wat(`(module)`), "idwrap.settings", new Uint8Array([123, 125])),
    "other",
    new Uint8Array([1]),
  );
  assertEquals(summarize(named).custom.filter((c) => c.name !== "name"), [
    { name: "idwrap.settings", payload: new Uint8Array([123, 125]) },
    { name: "other", payload: new Uint8Array([1]) },
  ]);
  new WebAssembly.Module(named); // still a valid module
});

Deno.test("summarize gives each function import and export its signature; signatureText writes it as WAT does", () => {
  const bytes = wat(`(module
    (type $unused (func (param f32)))
    (import "idwrap" "verdict_rewrite" (func (param i32 i64) (result i32)))
    (func (export "pair") (param f64) (result i32 i64) (i32.const 0) (i64.const 0))
    (func (export "none")))`);
  const { imports, exports } = summarize(bytes);
  assertEquals(imports.map((i) => i.signature), ["iI>i"]);
  assertEquals(exports.map((e) => [e.name, e.signature]), [["pair", "F>iI"], ["none", ">"]]);
  assertEquals(["iI>i", "F>iI", ">", "i>"].map(signatureText), [
    "(i32, i64) -> i32",
    "(f64) -> (i32, i64)",
    "() -> void",
    "(i32) -> void",
  ]);
});

Deno.test("instrumented code computes the same results", () => {
  const original = instantiate(MIXED);
  const inst = instantiate(metered(MIXED));
  for (const n of [0, 1, 2, 7, 100, 1000]) {
    assertEquals(inst.run(n), original.run(n));
    assertEquals(inst.run(n), mixedResult(n));
  }
  assertEquals(new Uint8Array(inst.memory.buffer), new Uint8Array(original.memory.buffer));
});

Deno.test("fuel decreases by exactly the function entries and loop iterations", () => {
  const inst = instantiate(metered(MIXED));
  for (const n of [0, 1, 10, 999]) {
    inst.idwrap_fuel.value = 1_000_000;
    assertEquals(inst.run(n), mixedResult(n));
    assertEquals(1_000_000 - inst.idwrap_fuel.value, mixedFuel(n));
  }
  // Exactly enough fuel runs; one unit less traps.
  inst.idwrap_fuel.value = mixedFuel(10);
  assertEquals(inst.run(10), mixedResult(10));
  assertEquals(inst.idwrap_fuel.value, 0);
  inst.idwrap_fuel.value = mixedFuel(10) - 1;
  throws(() => inst.run(10), WebAssembly.RuntimeError);
});

Deno.test("immediates that look like loop or end opcodes are not taken for them", () => {
  // 0x03 is loop and 0x0b end: LEB128 and float bytes full of them, at the extremes of each encoding.
  const bytes = wat(`(module (func (export "f") (result i32)
    (i32.add (i32.const -2147483648) (i32.const 0x0b0b0b03))
    (i64.eq (i64.const -9223372036854775808) (i64.const 0x7fffffffffffffff))
    (i32.add)
    (i32.trunc_f32_s (f32.const 0x1.06060600p+3))
    (i32.add)
    (i32.trunc_f64_s (f64.const 0x1.0b0b0b0b0b0b0p+11))
    (i32.add)))`);
  const inst = instantiate(metered(bytes));
  inst.idwrap_fuel.value = 10;
  assertEquals(inst.f(), instantiate(bytes).f());
  assertEquals(inst.idwrap_fuel.value, 9);
});

Deno.test("an infinite loop or recursion traps when the fuel runs out", () => {
  const inst = instantiate(metered(wat(`(module
    (func (export "spin") (loop $l (br $l)))
    (func $down (export "down") (call $down)))`)));
  inst.idwrap_fuel.value = 1000;
  throws(() => inst.spin(), WebAssembly.RuntimeError);
  assert((inst.idwrap_fuel.value as number) < 0);
  inst.idwrap_fuel.value = 1000; // far fewer calls than would overflow the stack
  throws(() => inst.down(), (e: unknown) => e instanceof WebAssembly.RuntimeError && !/stack/i.test(String(e)));
});

Deno.test("fuel lives in a local: loaded at entry, written back before calls and at exits, reloaded after calls", () => {
  const bytes = wat(`(module
    (func $leaf (param i32) (result i32) (local.get 0))
    (func $f (export "f") (param $x i32) (result i32) (local $i i32)
      (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 3))))
      (call $leaf (local.get $i))))`);
  const f = funcText(metered(bytes), "f");
  // The new local comes after the parameter and the existing local: index 2.
  assert(f.includes("(local $i i32) (local i32)"), f);
  const steps = [
    "global.get 0\n    i32.const 1\n    i32.sub\n    local.tee 2\n    i32.const 0\n    i32.lt_s\n    if",
    "local.get 2\n      global.set 0\n      unreachable\n    end\n    block (result i32)",
    "loop", // $l
    "local.get 2\n        i32.const 1\n        i32.sub\n        local.tee 2\n        i32.const 0\n        i32.lt_s\n        if",
    "local.get 2\n          global.set 0\n          unreachable\n        end",
    "local.get 1\n      local.get 2\n      global.set 0\n      call 0\n      global.get 0\n      local.set 2\n    end",
    "local.get 2\n    global.set 0)",
  ];
  let at = 0;
  for (const step of steps) {
    const next = f.indexOf(step, at);
    assert(next >= at, `expected, in order:\n${step}\nin:\n${f}`);
    at = next + step.length;
  }
  const inst = instantiate(metered(bytes));
  assertEquals(fuelUsed(inst, () => inst.f(0)), 1 + 3 + 1);
});

Deno.test("recursion is metered exactly across calls", () => {
  const bytes = wat(`(module
    ;; sum(n) = n + (n - 1) + ... + 1, counting up in a loop of n iterations before recursing
    (func $sum (export "sum") (param $n i32) (result i32) (local $k i32) (local $acc i32)
      (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
      (loop $l
        (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $k) (local.get $n))))
      (i32.add (local.get $acc) (call $sum (i32.sub (local.get $n) (i32.const 1)))))
    (func $fib (export "fib") (param $n i32) (result i32)
      (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
        (then (local.get $n))
        (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                       (call $fib (i32.sub (local.get $n) (i32.const 2))))))))`);
  const inst = instantiate(metered(bytes));
  for (const n of [0, 1, 2, 10, 100]) {
    // n + 1 entries, then m iterations in the call with argument m
    assertEquals(fuelUsed(inst, () => assertEquals(inst.sum(n), n * (n + 1) / 2)), n + 1 + n * (n + 1) / 2);
  }
  assertEquals(fuelUsed(inst, () => assertEquals(inst.fib(20), 6765)), 2 * 10946 - 1); // calls: 2 fib(21) - 1
  assertExactFuel(inst, 4 + 6 + 5, () => inst.sum(3) + inst.fib(3)); // sum(3): 4 entries, 6 iterations; fib(3): 5 calls
  assertExactFuel(inst, 11 + 55, () => inst.sum(10));
});

Deno.test("return from inside nested blocks, loops and ifs writes the fuel back", () => {
  const bytes = wat(`(module
    ;; the first (i, j) with i * j = target in row order, as i * 100 + j; -1 if none
    (func $find (export "find") (param $n i32) (param $target i32) (result i32) (local $i i32) (local $j i32)
      (block $outer
        (loop $li
          (br_if $outer (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $j (i32.const 0))
          (block $inner
            (loop $lj
              (br_if $inner (i32.ge_u (local.get $j) (local.get $n)))
              (if (i32.eq (i32.mul (local.get $i) (local.get $j)) (local.get $target))
                (then (if (local.get $i) (then (return (i32.add (i32.mul (local.get $i) (i32.const 100)) (local.get $j))))
                        (else (return (i32.sub (i32.const -100) (local.get $j)))))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $lj)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $li)))
      (i32.const -1))
    ;; return with other values below on the stack, and code after it
    (func $early (export "early") (param $x i32) (result i32)
      (i32.const 99)
      (i32.const 98)
      (if (local.get $x) (then (return (i32.const 7))))
      (drop)
      (return)
      (i32.const 8))
    ;; return in a function without results
    (func $void (export "void") (param $x i32) (local $i i32)
      (loop $l
        (if (i32.eq (local.get $i) (local.get $x)) (then (return)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l))))`);
  const model = (n: number, target: number): [number, number] => {
    let fuel = 1;
    for (let i = 0;; i++) {
      fuel++; // $li
      if (i >= n) return [-1, fuel];
      for (let j = 0;; j++) {
        fuel++; // $lj
        if (j >= n) break;
        if (i * j === target) return [i ? i * 100 + j : -100 - j, fuel];
      }
    }
  };
  const original = instantiate(bytes);
  const inst = instantiate(metered(bytes));
  for (const [n, target] of [[0, 0], [5, 0], [5, 12], [5, 16], [5, 17], [30, 29 * 29], [30, 1000]]) {
    const [result, fuel] = model(n, target);
    assertEquals(original.find(n, target), result);
    assertEquals(fuelUsed(inst, () => assertEquals(inst.find(n, target), result)), fuel);
  }
  assertExactFuel(inst, model(5, 12)[1], () => inst.find(5, 12));
  assertEquals(fuelUsed(inst, () => assertEquals(inst.early(1), 7)), 1);
  assertEquals(fuelUsed(inst, () => assertEquals(inst.early(0), 99)), 1);
  for (const x of [0, 1, 50]) assertEquals(fuelUsed(inst, () => inst.void(x)), 1 + x + 1);
  assertExactFuel(inst, 1 + 7, () => inst.void(6));
});

Deno.test("br, br_if and br_table to the function's own label land at the wrapper's end", () => {
  // The wrapper block is the outermost label inside the function, so a branch to depth d from d labels deep, which
  // left the function, now leaves the wrapper, where the fuel is written back: the depths are left as they are.
  const bytes = wat(`(module
    (func $pick (export "pick") (param $x i32) (result i32) (local $i i32)
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
      (i32.add (i32.const 1000)
        (block $a (result i32)
          (i32.add (i32.const 100)
            (block $b (result i32)
              (drop (br_if 2 (i32.const 5) (i32.eq (local.get $x) (i32.const 7))))
              (br_table $b $a 2 (i32.const 10) (local.get $x)))))))
    (func $top (export "top") (param $x i32) (result i32) (local $i i32)
      (drop (br_if 0 (i32.const 42) (local.get $x)))
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 3))))
      (br 0 (i32.const 43)))
    (func $none (export "none") (param $x i32)
      (block (br_table 0 1 (local.get $x)))
      (loop $l (br_if $l (i32.eqz (local.get $x))))))`);
  const out = metered(bytes);
  const pick = funcText(out, "pick");
  assert(
    /block \(result i32\)[^]*br_if 2 [^]*br_table 0 [^\n]* 1 [^\n]* 2 [^]*end\n {4}local.get 2\n {4}global.set 0\)/
      .test(pick),
    pick,
  );
  const original = instantiate(bytes);
  const inst = instantiate(out);
  for (const [x, result] of [[0, 1110], [1, 1010], [2, 10], [3, 10], [7, 5], [-1, 10]]) {
    assertEquals(original.pick(x), result);
    assertEquals(fuelUsed(inst, () => assertEquals(inst.pick(x), result)), 1 + 3); // every exit writes back
  }
  assertExactFuel(inst, 4, () => inst.pick(2));
  assertExactFuel(inst, 4, () => inst.pick(7));
  assertEquals(fuelUsed(inst, () => assertEquals(inst.top(1), 42)), 1);
  assertEquals(fuelUsed(inst, () => assertEquals(inst.top(0), 43)), 1 + 3);
  assertEquals(fuelUsed(inst, () => inst.none(1)), 1); // br_table's default: the function
  assertEquals(fuelUsed(inst, () => inst.none(5)), 1);
  inst.idwrap_fuel.value = 100;
  throws(() => inst.none(0), WebAssembly.RuntimeError); // block exits to the loop, which never ends
  assertEquals(inst.idwrap_fuel.value, -1);
});

Deno.test("call_indirect, including to an import that re-enters the module, is metered exactly", () => {
  const bytes = wat(`(module
    (import "env" "reenter" (func $reenter (param i32) (result i32)))
    (type $un (func (param i32) (result i32)))
    (table 3 funcref)
    (elem (i32.const 0) $inc $count $reenter)
    (func $inc (type $un) (i32.add (local.get 0) (i32.const 1)))
    ;; max(x, 1) iterations
    (func $count (export "count") (type $un) (local $i i32)
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
      (local.get $i))
    (func (export "run") (param $x i32) (result i32) (local $k i32) (local $acc i32)
      (loop $l
        (local.set $acc (i32.add (local.get $acc)
          (call_indirect (type $un) (local.get $x) (i32.rem_u (local.get $k) (i32.const 3)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $k) (i32.const 6))))
      (local.get $acc)))`);
  const inst: Exports = instantiate(metered(bytes), { env: { reenter: (x: number) => inst.count(x) } });
  for (const x of [0, 1, 5, 100]) {
    const m = Math.max(x, 1);
    // run's entry and 6 iterations; twice each: $inc's entry, $count's entry and m iterations, and the same again
    // through the import
    const fuel = 1 + 6 + 2 * 1 + 2 * (1 + m) + 2 * (1 + m);
    assertEquals(fuelUsed(inst, () => assertEquals(inst.run(x), 2 * (x + 1) + 4 * m)), fuel);
  }
  assertExactFuel(inst, 1 + 6 + 2 + 4 * (1 + 3), () => inst.run(3));
});

Deno.test("the fuel local does not clobber parameters or locals", () => {
  const bytes = wat(`(module
    (func $mix (export "mix") (param $a i32) (param $b i64) (param $c f64) (result f64)
      (local $x f32) (local $y i64) (local $i i32) (local $z i32)
      (local.set $z (i32.const 7))
      (loop $l
        (local.set $x (f32.add (local.get $x) (f32.const 1.5)))
        (local.set $y (i64.add (local.get $y) (local.get $b)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $z (i32.add (i32.mul (local.get $z) (i32.const 3)) (local.get $i)))
        (br_if $l (i32.lt_s (local.get $i) (local.get $a))))
      (f64.add
        (f64.add (local.get $c) (f64.promote_f32 (local.get $x)))
        (f64.add (f64.convert_i64_s (local.get $y)) (f64.convert_i32_s (local.get $z)))))
    ;; 200 locals: the fuel local's index (201) takes two LEB128 bytes
    (func $wide (export "wide") (param $n i32) (result i64) (local ${"i64 ".repeat(199)}) (local $last i32)
      (loop $l
        (local.set 199 (i64.add (local.get 199) (i64.extend_i32_u (local.get $n))))
        (local.set 1 (i64.add (local.get 1) (i64.const 1)))
        (local.set $last (i32.add (local.get $last) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $last) (local.get $n))))
      (i64.add (local.get 199) (i64.mul (local.get 1) (i64.const 1000)))))`);
  const out = metered(bytes);
  assert(funcText(out, "mix").includes("(local $x f32) (local $y i64) (local $i i32) (local $z i32) (local i32)"));
  assert(funcText(out, "wide").includes("(local $last i32) (local i32)"));
  assert(funcText(out, "wide").includes("local.tee 201"));
  const original = instantiate(bytes);
  const inst = instantiate(out);
  const mix = (e: Exports, a: number, b: bigint, c: number) =>
    (e.mix as unknown as (...a: unknown[]) => number)(a, b, c);
  const wide = (e: Exports, n: number) => (e.wide as unknown as (n: number) => bigint)(n);
  for (const [a, b, c] of [[1, 2n, 0.25], [10, -3n, 1e10], [100, 1n << 40n, -7.5]] as const) {
    let x = 0, y = 0n, i = 0, z = 7;
    do {
      x = Math.fround(x + 1.5);
      y = BigInt.asIntN(64, y + b);
      i++;
      z = (z * 3 + i) | 0;
    } while (i < a);
    assertEquals(mix(original, a, b, c), c + x + (Number(y) + z));
    assertEquals(mix(inst, a, b, c), mix(original, a, b, c));
    assertEquals(fuelUsed(inst, () => mix(inst, a, b, c)), 1 + a);
  }
  for (const n of [1, 2, 300]) {
    assertEquals(wide(original, n), BigInt(n) * BigInt(n) + BigInt(n) * 1000n);
    assertEquals(wide(inst, n), wide(original, n));
  }
});

Deno.test("multi-value functions: a [] -> results type is the wrapper's block type, else global-only metering", () => {
  const bytes = wat(`(module
    (type $pairResults (func (result i32 i32)))
    (func $pair (export "pair") (param $x i32) (result i32 i32) (local $i i32)
      (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 3))))
      (if (local.get $x) (then (return (i32.const 1) (i32.const 2))))
      (local.get $i) (call $triple (local.get $x)) (drop) (drop))
    (func $triple (export "triple") (param $x i32) (result i32 i32 i64) (local $i i32)
      (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $x))))
      (if (i32.eq (local.get $x) (i32.const 2)) (then (return (i32.const 5) (i32.const 6) (i64.const 7))))
      (local.get $x) (call $pair (i32.const 1)) (i64.extend_i32_u)))`);
  const out = metered(bytes);
  const pair = funcText(out, "pair");
  // (a block with two results can only be encoded with a type index; wabt prints that type's results)
  assert(pair.includes("(local $i i32) (local i32)") && pair.includes("block (result i32 i32)"), pair);
  const triple = funcText(out, "triple");
  assert(triple.includes("(local $i i32)\n    global.get 0\n    i32.const 1\n    i32.sub\n    global.set 0\n"), triple);
  assert(!triple.includes("(local i32)") && !triple.includes("block (result"), triple);
  const original = instantiate(bytes);
  const inst = instantiate(out);
  const call = (e: Exports, name: string, x: number) => (e[name] as unknown as (x: number) => unknown)(x);
  for (const x of [0, 1, 2, 5]) {
    assertEquals(call(inst, "pair", x), call(original, "pair", x));
    assertEquals(call(inst, "triple", x), call(original, "triple", x));
  }
  // pair(0): entry, 3 iterations, then triple(0): entry, 1 iteration, pair(1): entry, 3 iterations
  assertEquals(fuelUsed(inst, () => call(inst, "pair", 0)), 4 + 2 + 4);
  assertEquals(fuelUsed(inst, () => call(inst, "triple", 2)), 1 + 2);
  assertExactFuel(inst, 4 + 2 + 4, () => call(inst, "pair", 0));
  assertExactFuel(inst, 1 + 5 + 4, () => call(inst, "triple", 5));
});

Deno.test("a function at V8's limit on locals keeps the global-only metering", () => {
  // V8 allows 50,000 locals, parameters included: the first function has room for the fuel local, the second not.
  const fn = (name: string, locals: number) =>
    `(func $${name} (export "${name}") (param $n i32) (result i32)
      (local ${"i32 ".repeat(locals - 1)}) (local $i i32)
      (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
      (local.get $i))`;
  const out = metered(wat(`(module ${fn("roomy", 49_998)} ${fn("full", 49_999)})`));
  assert(funcText(out, "roomy").includes("local.tee 49999"));
  assert(!funcText(out, "full").includes("local.tee 50000"));
  const inst = instantiate(out);
  assertEquals(fuelUsed(inst, () => assertEquals(inst.roomy(10), 10)), 11);
  assertEquals(fuelUsed(inst, () => assertEquals(inst.full(10), 10)), 11);
  assertExactFuel(inst, 6, () => inst.full(5));
});

Deno.test("the memory maximum is clamped to the cap", () => {
  const grow = (memory: string, cap: number) => {
    const bytes = wat(
      `(module (memory ${memory}) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`,
    );
    const out = metered(bytes, cap);
    return { out, grow: instantiate(out).grow };
  };
  const none = grow("1", 4); // no maximum: set to the cap
  assertEquals(summarize(none.out).memory, { initial: 1, maximum: 4 });
  assertEquals(none.grow(3), 1);
  assertEquals(none.grow(1), -1);
  const big = grow("1 100", 4); // larger maximum: clamped
  assertEquals(summarize(big.out).memory, { initial: 1, maximum: 4 });
  assertEquals(big.grow(4), -1);
  assertEquals(big.grow(3), 1);
  const small = grow("1 2", 4); // smaller maximum: kept
  assertEquals(summarize(small.out).memory, { initial: 1, maximum: 2 });
  assertEquals(small.grow(2), -1);
  throws(() => instrument(wat(`(module (memory 5))`), { maxMemoryPages: 4 }), /exceeds the cap of 4 pages/);
  throws(() => instrument(wat(`(module (memory 5))`), { maxMemoryPages: 4 }), WasmBinaryError);
  assertEquals(summarize(instrument(wat(`(module (memory 4))`), { maxMemoryPages: 4 })).memory, {
    initial: 4,
    maximum: 4,
  });
});

Deno.test("a module without global and export sections gets them, in order", () => {
  // Its only way to run is the start function, which the initial fuel pays for.
  const bytes = wat(`(module
    (import "env" "report" (func $report (param i32)))
    (func $main (local $i i32)
      (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 5))))
      (call $report (local.get $i)))
    (start $main))`);
  assertEquals(summarize(bytes).exports, []);
  const out = instrument(bytes, { maxMemoryPages: 1, initialFuel: 100 });
  assert(WebAssembly.validate(out as Uint8Array<ArrayBuffer>));
  assertEquals(summarize(out).exports, [{ name: "idwrap_fuel", kind: "global", index: 0 }]);
  const reported: number[] = [];
  const inst = instantiate(out, { env: { report: (v: number) => reported.push(v) } });
  assertEquals(reported, [5]);
  assertEquals(inst.idwrap_fuel.value, 100 - 1 - 5);
  // With no fuel the start function traps.
  const starved = instrument(bytes, { maxMemoryPages: 1, initialFuel: 0 });
  throws(() => instantiate(starved, { env: { report: () => {} } }), WebAssembly.RuntimeError);
});

Deno.test("existing globals keep their indices; the fuel global comes after imported and defined ones", () => {
  const bytes = wat(`(module
    (import "env" "base" (global $base i32))
    (global $a (mut i32) (i32.const 7))
    (global $b i32 (global.get $base))
    (export "a" (global $a))
    (func (export "sum") (result i32) (i32.add (global.get $a) (global.get $b))))`);
  const out = metered(bytes);
  assertEquals(summarize(out).exports.at(-1), { name: "idwrap_fuel", kind: "global", index: 3 });
  const inst = instantiate(out, { env: { base: 35 } });
  assertEquals(inst.idwrap_fuel.value, 10_000_000); // the default initial fuel
  assertEquals(inst.sum(), 42);
  assertEquals(inst.idwrap_fuel.value, 10_000_000 - 1);
  assertEquals((inst.a as unknown as WebAssembly.Global).value, 7);
  throws(() => instrument(out, { maxMemoryPages: 1 }), /already exports "idwrap_fuel"/);
});

Deno.test("post-MVP instructions are decoded and still run", () => {
  const bytes = wat(`(module
    (type $pair (func (param i32) (result i32 i32)))
    (type $un (func (param i32) (result i32)))
    (memory $m0 1)
    (memory $m1 1)
    (table $t0 2 funcref)
    (table $t1 2 funcref)
    (table $refs 2 externref)
    (data $d "\\01\\02\\03\\04\\05")
    (elem $e func $inc $dbl)
    (elem declare func $inc)
    (func $inc (type $un) (i32.add (local.get 0) (i32.const 1)))
    (func $dbl (type $un) (i32.mul (local.get 0) (i32.const 2)))
    (func $tail (param i32) (result i32) (return_call $inc (local.get 0)))
    (func $tailIndirect (param i32) (result i32) (return_call_indirect $t1 (type $un) (local.get 0) (i32.const 1)))
    (func (export "run") (param $x i32) (result i32) (local $acc i32) (local $r externref)
      ;; multi-value block with a type index: x -> (x, 3), leaving 10 * (x + 3)
      (local.get $x)
      (block (type $pair) (param i32) (result i32 i32) (i32.const 3) (br 0))
      (local.set $acc (i32.mul (i32.add) (i32.const 10)))
      ;; sign extension and saturating truncation
      (local.set $acc (i32.add (local.get $acc) (i32.extend8_s (i32.const 0xff))))
      (local.set $acc (i32.add (local.get $acc) (i32.wrap_i64 (i64.extend32_s (i64.const 5)))))
      (local.set $acc (i32.add (local.get $acc) (i32.trunc_sat_f64_s (f64.const 1e30))))
      (local.set $acc (i32.sub (local.get $acc) (i32.const 0x7fffffff)))
      ;; bulk memory on two memories
      (memory.init $m1 $d (i32.const 100) (i32.const 0) (i32.const 5))
      (memory.copy $m0 $m1 (i32.const 200) (i32.const 100) (i32.const 5))
      (memory.fill $m0 (i32.const 300) (i32.const 9) (i32.const 3))
      (data.drop $d)
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u $m0 offset=204 (i32.const 0))))
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u $m1 offset=102 (i32.const 0))))
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u (i32.const 302))))
      ;; tables: init, copy, call_indirect with a table index, grow/size/fill, get/set, ref.null/is_null/func
      (table.init $t1 $e (i32.const 0) (i32.const 0) (i32.const 2))
      (elem.drop $e)
      (table.copy $t0 $t1 (i32.const 0) (i32.const 0) (i32.const 2))
      (local.set $acc (call_indirect $t0 (type $un) (local.get $acc) (i32.const 1)))
      (local.set $acc (i32.add (local.get $acc) (table.grow $t0 (ref.null func) (i32.const 3))))
      (table.fill $t0 (i32.const 2) (ref.func $inc) (i32.const 3))
      (local.set $acc (i32.add (local.get $acc) (table.size $t0)))
      (table.set $t1 (i32.const 0) (table.get $t0 (i32.const 4)))
      (local.set $acc (call_indirect $t1 (type $un) (local.get $acc) (i32.const 0)))
      (table.set $refs (i32.const 1) (local.get $r))
      (local.set $acc (i32.add (local.get $acc) (ref.is_null (table.get $refs (i32.const 1)))))
      ;; typed select, tail calls
      (local.set $acc (select (result i32) (local.get $acc) (i32.const -1) (local.get $x)))
      (call $tailIndirect (call $tail (local.get $acc)))))`);
  const out = metered(bytes);
  for (const x of [0, 1, 5]) { // fresh instances: run() drops its segments and grows a table
    const original = instantiate(bytes);
    const inst = instantiate(out);
    inst.idwrap_fuel.value = 1000;
    assertEquals(inst.run(x), original.run(x));
    // run, $dbl and $inc through the tables, $tail, $inc, $tailIndirect, $dbl; the bulk table operations by size
    // (one unit per 2 entries: init 2, copy 2, grow 3, fill 3); the 5-byte memory operations are under 32 bytes
    assertEquals(1000 - inst.idwrap_fuel.value, 7 + 4);
  }
});

Deno.test("bulk memory and table operations are metered by their size, before they run", () => {
  const bytes = wat(`(module
    (memory (export "memory") 32)
    (table $t 16 funcref)
    (func $f)
    (elem declare func $f)
    ;; one fill of n bytes, in a function that gets a fuel local, and in one that cannot (two results, no [] -> type)
    (func (export "fill") (param $n i32) (memory.fill (i32.const 0) (i32.const 7) (local.get $n)))
    (func $two (param $n i32) (result i32 i64)
      (memory.fill (i32.const 0) (i32.const 7) (local.get $n)) (i32.const 0) (i64.const 0))
    (func (export "fillGlobal") (param $n i32) (drop (drop (call $two (local.get $n)))))
    (func (export "copy") (param $n i32) (memory.copy (i32.const 0x10000) (i32.const 0) (local.get $n)))
    (func (export "tableFill") (param $n i32) (table.fill $t (i32.const 0) (ref.func $f) (local.get $n)))
    ;; the attack the per-instruction count missed: a short loop of large fills
    (func (export "spin") (param $times i32)
      (loop $l
        (memory.fill (i32.const 0) (local.get $times) (i32.const 0x200000))
        (br_if $l (local.tee $times (i32.sub (local.get $times) (i32.const 1)))))))`);
  const inst = instantiate(metered(bytes));
  const mem = new Uint8Array((inst.memory as WebAssembly.Memory).buffer);
  const cost = (run: () => unknown, fuel = 1_000_000) => {
    inst.idwrap_fuel.value = fuel;
    run();
    return fuel - (inst.idwrap_fuel.value as number);
  };
  assertEquals(cost(() => inst.fill(0)), 1); // the function's entry
  assertEquals(cost(() => inst.fill(32 * 1000)), 1 + 1000);
  assertEquals(cost(() => inst.fillGlobal(32 * 1000)), 2 + 1000); // two entries
  assertEquals(cost(() => inst.copy(32 * 100)), 1 + 100);
  assertEquals(cost(() => inst.tableFill(16)), 1 + 8);
  // Past the budget: trapped before the fill, which wrote nothing; the fuel left below 0 for the host to see.
  mem.fill(0, 0, 0x10000);
  inst.idwrap_fuel.value = 1000;
  throws(() => inst.fill(0x10000), /unreachable/);
  assert((inst.idwrap_fuel.value as number) < 0);
  assertEquals(mem.subarray(0, 0x10000).every((b) => b === 0), true);
  inst.idwrap_fuel.value = 1000;
  throws(() => inst.fillGlobal(0x10000), /unreachable/);
  assert((inst.idwrap_fuel.value as number) < 0);
  // 2 MiB fills: 65,536 units each, so a 10,000,000 budget stops the loop after about 150 of them (not 10^7).
  inst.idwrap_fuel.value = 10_000_000;
  throws(() => inst.spin(1_000_000), /unreachable/);
  // A size of 2^32 - 1 charges 2^27 - 1 units (no wrap-around to a small or negative charge): one unit short, it is
  // the budget that stops it; with enough fuel, the fill itself (out of bounds).
  inst.idwrap_fuel.value = 2 ** 27 - 1;
  throws(() => inst.fill(-1), /unreachable/);
  assert((inst.idwrap_fuel.value as number) < 0);
  inst.idwrap_fuel.value = 2 ** 27;
  throws(() => inst.fill(-1), /out of bounds/);
});

Deno.test("SIMD, threads and exception handling are refused with the opcode's offset", () => {
  const refused = (text: string, pattern: RegExp, opcode: number) => {
    const bytes = wat(text);
    throws(() => instrument(bytes, { maxMemoryPages: 1 }), (e: unknown) => {
      assert(e instanceof WasmBinaryError);
      const match = pattern.exec(e.message);
      assert(match, e.message);
      assertEquals(bytes[Number(match[1])], opcode);
      return true;
    });
  };
  refused(
    `(module (func (result i32) (i32x4.extract_lane 0 (v128.const i32x4 1 2 3 4))))`,
    /^Cannot instrument wrapper: SIMD opcode 0xfd at byte (\d+) is not supported$/,
    0xfd,
  );
  refused(
    `(module (memory 1 1 shared) (func (result i32) (i32.atomic.load (i32.const 0))))`,
    /threads \(atomics\) opcode 0xfe at byte (\d+) is not supported/,
    0xfe,
  );
  refused(
    `(module (tag $t) (func (try (do (throw $t)) (catch_all))))`,
    /exception-handling opcode 0x06 at byte (\d+) is not supported/,
    0x06,
  );
});

Deno.test("malformed binaries throw WasmBinaryError", () => {
  const bad = (bytes: Uint8Array, pattern: RegExp) => {
    throws(() => instrument(bytes, { maxMemoryPages: 1 }), WasmBinaryError);
    throws(() => instrument(bytes, { maxMemoryPages: 1 }), pattern);
    throws(() => summarize(bytes), WasmBinaryError);
  };
  bad(new Uint8Array(), /truncated header/);
  bad(Uint8Array.of(0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0), /\(bad magic\) at byte 0$/);
  bad(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0), /unsupported binary version/);
  for (const cut of [9, 20, MIXED.length >> 1, MIXED.length - 1]) bad(MIXED.subarray(0, cut), /truncated/);
  // A function body whose declared size ends before its final end: the decoder must not read past it.
  const broken = wat(`(module (func (result i32) (i32.const 1)))`);
  const code = sectionAt(broken, 10);
  assertEquals([...broken.subarray(code + 2, code + 8)], [1, 4, 0, 0x41, 1, 0x0b]); // 1 body of 4 bytes
  broken[code + 3] = 3;
  throws(() => instrument(broken, { maxMemoryPages: 1 }), /truncated function body \(no final end\) at byte/);
  throws(() => instrument(MIXED, { maxMemoryPages: 65537 }), RangeError);
});

Deno.test("the type and function sections must describe every function body", () => {
  const header = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  // A GC struct type (0x5f): summarize() (which reads the signatures) and instrument() refuse it.
  const struct = Uint8Array.of(...header, 1, 3, 1, 0x5f, 0);
  throws(() => summarize(struct), /Cannot read wrapper: type form 0x5f at byte 11 is not supported/);
  throws(() => instrument(struct, { maxMemoryPages: 1 }), WasmBinaryError);
  throws(
    () => instrument(struct, { maxMemoryPages: 1 }),
    /Cannot instrument wrapper: type form 0x5f at byte 11 is not supported \(only function types are\)$/,
  );
  // Type [] -> []; two functions declared, one body.
  const counts = Uint8Array.of(...header, 1, 4, 1, 0x60, 0, 0, 3, 3, 2, 0, 0, 10, 4, 1, 2, 0, 0x0b);
  throws(
    () => instrument(counts, { maxMemoryPages: 1 }),
    /function body count 1 at byte 21 differs from the function section's 2/,
  );
  // A function of type 1, which does not exist.
  const type = Uint8Array.of(...header, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 1, 10, 4, 1, 2, 0, 0x0b);
  throws(() => instrument(type, { maxMemoryPages: 1 }), /type index 1 of function body 0 at byte \d+ is out of range/);
});

Deno.test("custom sections are kept byte for byte", () => {
  const out = metered(MIXED);
  const names = (bytes: Uint8Array) =>
    WebAssembly.Module.customSections(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), "name").map((b) =>
      new Uint8Array(b)
    );
  assertEquals(names(out), names(MIXED));
  assert(names(out).length === 1);
});

Deno.test("an AssemblyScript module still computes the same results", async () => {
  const dir = await scratchDir({ prefix: "idwrap-wasm-binary-" });
  try {
    await Deno.writeTextFile(
      `${dir}/input.ts`,
      `export function sumTo(n: i32): i32 {
        let s: i32 = 0;
        for (let i = 0; i < n; i++) s += i * 3 + (i & 7);
        return s;
      }
      export function bytes(n: i32): i32 {
        const a = new Uint8Array(n);
        a.fill(3);
        const b = a.slice(1);
        let s = 0;
        for (let i = 0; i < b.length; i++) s += <i8>b[i] + <i8>(i * 37);
        return s;
      }
      export function text(n: i32): i32 {
        let s = "";
        for (let i = 0; i < n; i++) s += i.toString();
        return s.length;
      }`,
    );
    const asc = await new Deno.Command(`${ROOT}node_modules/.bin/asc`, {
      args: [`${dir}/input.ts`, "-o", `${dir}/out.wasm`, "--runtime", "incremental", "--optimize"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(asc.success, new TextDecoder().decode(asc.stderr));
    const bytes = await Deno.readFile(`${dir}/out.wasm`);
    const imports = {
      env: {
        abort: () => {
          throw new Error("abort called");
        },
      },
    };
    const original = instantiate(bytes, imports);
    const inst = instantiate(metered(bytes), imports);
    const full = () => inst.idwrap_fuel.value = 0x7fffffff; // text(12345) copies some 10^8 bytes: past the default
    for (const n of [0, 1, 100, 12345]) {
      full();
      assertEquals(inst.sumTo(n), original.sumTo(n));
      full();
      assertEquals(inst.bytes(n), original.bytes(n));
      full();
      assertEquals(inst.text(n), original.text(n));
    }
    inst.idwrap_fuel.value = 1_000_000;
    inst.sumTo(1000);
    assert(1_000_000 - (inst.idwrap_fuel.value as number) >= 1000);
    inst.idwrap_fuel.value = 100;
    throws(() => inst.sumTo(1000), WebAssembly.RuntimeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
