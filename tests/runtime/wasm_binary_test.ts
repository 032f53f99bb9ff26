/**
 * Tests of host/runtime/wasm_binary.ts: modules built from WAT with wabt (and one from AssemblyScript with asc), then
 * summarized, instrumented, validated and run against their originals.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";
import { instrument, summarize, WasmBinaryError } from "../../host/runtime/wasm_binary.ts";

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
  assertEquals(summarize(bytes), {
    imports: [
      { module: "env", name: "log", kind: "func" },
      { module: "env", name: "g", kind: "global" },
      { module: "env", name: "t", kind: "table" },
    ],
    exports: [
      { name: "memory", kind: "memory", index: 0 },
      { name: "go", kind: "func", index: 1 },
      { name: "h", kind: "global", index: 1 },
    ],
    memory: { initial: 2, maximum: 10 },
  });
  assertEquals(summarize(wat(`(module (memory 3))`)), { imports: [], exports: [], memory: { initial: 3 } });
  assertEquals(summarize(wat(`(module (import "env" "m" (memory 1)))`)).memory, undefined);
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
    // run, $dbl and $inc through the tables, $tail, $inc, $tailIndirect, $dbl
    assertEquals(1000 - inst.idwrap_fuel.value, 7);
  }
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
  const dir = await Deno.makeTempDir({ prefix: "idwrap-wasm-binary-" });
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
    for (const n of [0, 1, 100, 12345]) {
      assertEquals(inst.sumTo(n), original.sumTo(n));
      assertEquals(inst.bytes(n), original.bytes(n));
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
