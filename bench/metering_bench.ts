/**
 * The fuel-metering micro-benchmark: what host/runtime/wasm/metering.ts's instrument() costs a wrapper's code, as the
 * per-call time of an instrumented function against the same function uninstrumented.
 *
 * Three loop-heavy functions, built from WAT with wabt: (a) summing `n` i32s from memory, (b) a register-only
 * arithmetic loop, (c) a loop calling a small function each iteration. Each case's two instances are warmed up first
 * (so V8 has tiered them up to TurboFan); then every round times one call of each, in a rotated order so drift over
 * the run spreads over all of them, and medians across rounds are compared; so are the per-round ratios of the two
 * (run back to back), which drift and other load on the machine disturb less. Times are medians, in ms per call.
 * Every call's result is checked against the original's, and the instrumented one's fuel use against the metering
 * rule (one unit per function entry and per loop iteration).
 *
 * Run: `node_modules/.bin/deno run --allow-all bench/metering_bench.ts [--rounds R] [--n N] [--warmup W]`.
 * Prints a table; writes the raw numbers to bench/results/metering.json.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import wabtInit from "wabt";
import { instrument } from "../host/runtime/wasm/mod.ts";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The largest instrumented/original ratio we accept. */
const TARGET = 1.15;
/** Enough fuel for any one call here. */
const FUEL = 0x7fffffff;

/** The loop shape all cases share: `for (i = 0; i < n; i++) <body>`, with the exit test at the top. */
function loop(body: string): string {
  return `(block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      ${body}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))`;
}

interface Case {
  id: "memorySum" | "registerLoop" | "callLoop";
  label: string;
  wat: string;
  /** The fuel one run(n) uses: the metering rule applied to the code. */
  fuel(n: number): number;
  /** Fills memory before the runs, where the case reads it. */
  setup?(memory: WebAssembly.Memory, n: number): void;
}

const CASES: Case[] = [
  {
    id: "memorySum",
    label: "(a) sum n i32s from memory",
    wat: `(module (memory (export "memory") 640 640)
      (func (export "run") (param $n i32) (result i32) (local $i i32) (local $s i32)
        ${loop(`(local.set $s (i32.add (local.get $s) (i32.load (i32.shl (local.get $i) (i32.const 2)))))`)}
        (local.get $s)))`,
    fuel: (n) => 1 + (n + 1), // entry, n iterations and the one that exits
    setup(memory, n) {
      const words = new Int32Array(memory.buffer);
      for (let i = 0; i < n; i++) words[i] = i & 1023;
    },
  },
  {
    id: "registerLoop",
    label: "(b) register-only arithmetic loop",
    wat: `(module (memory (export "memory") 1)
      (func (export "run") (param $n i32) (result i32) (local $i i32) (local $s i32)
        ${loop(`(local.set $s (i32.add (local.get $s) (i32.xor (local.get $i) (i32.const 1023))))`)}
        (local.get $s)))`,
    fuel: (n) => 1 + (n + 1),
  },
  {
    id: "callLoop",
    label: "(c) loop calling a small function",
    wat: `(module (memory (export "memory") 1)
      (func $step (param $s i32) (param $i i32) (result i32)
        (i32.add (local.get $s) (i32.add (i32.mul (local.get $i) (i32.const 3)) (i32.const 1))))
      (func (export "run") (param $n i32) (result i32) (local $i i32) (local $s i32)
        ${loop(`(local.set $s (call $step (local.get $s) (local.get $i)))`)}
        (local.get $s)))`,
    fuel: (n) => 1 + (n + 1) + n, // and one entry of $step per iteration
  },
];

type Variant = "original" | "instrumented";
const VARIANTS: Variant[] = ["original", "instrumented"];

interface Sample {
  round: number;
  case: Case["id"];
  variant: Variant;
  ms: number;
}

interface RunExports {
  run(n: number): number;
  memory: WebAssembly.Memory;
  idwrap_fuel?: WebAssembly.Global;
}

const wabt = await wabtInit();

function compileWat(text: string): Uint8Array {
  const module = wabt.parseWat("bench.wat", text, {});
  try {
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

function instantiate(bytes: Uint8Array): RunExports {
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  return new WebAssembly.Instance(module, {}).exports as unknown as RunExports;
}

/** One timed call; checks its result and, instrumented, its fuel use. */
function timeCall(e: RunExports, n: number, expected: number, fuel?: number): number {
  if (e.idwrap_fuel) e.idwrap_fuel.value = FUEL;
  const t = performance.now();
  const result = e.run(n);
  const ms = performance.now() - t;
  if (result !== expected) throw new Error(`run(${n}) returned ${result}, expected ${expected}`);
  if (e.idwrap_fuel && FUEL - (e.idwrap_fuel.value as number) !== fuel) {
    throw new Error(`run(${n}) used ${FUEL - (e.idwrap_fuel.value as number)} fuel, expected ${fuel}`);
  }
  return ms;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      n: { type: "string" },
      warmup: { type: "string" },
      "save-run": { type: "boolean" },
    },
  });
  const rounds = Number(values.rounds ?? 15);
  const n = Number(values.n ?? 10_000_000);
  const warmup = Number(values.warmup ?? 10);
  if (n > 640 * 16384) throw new RangeError(`--n must be at most ${640 * 16384} (case (a)'s memory)`);

  const setups = CASES.map((c) => {
    const original = compileWat(c.wat);
    const instances = {
      original: instantiate(original),
      instrumented: instantiate(instrument(original, { maxMemoryPages: 1024 })),
    };
    for (const v of VARIANTS) c.setup?.(instances[v].memory, n);
    const expected = instances.original.run(n);
    const call = (v: Variant) => timeCall(instances[v], n, expected, c.fuel(n));
    for (let i = 0; i < warmup; i++) for (const v of VARIANTS) call(v);
    return { c, call };
  });

  const samples: Sample[] = [];
  const pairs = setups.flatMap((s) => VARIANTS.map((v) => ({ ...s, v })));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < pairs.length; i++) {
      const { c, call, v } = pairs[(i + round) % pairs.length];
      samples.push({ round, case: c.id, variant: v, ms: call(v) });
    }
  }

  const stats = (id: Case["id"], v: Variant) => {
    const ms = samples.filter((s) => s.case === id && s.variant === v).map((s) => s.ms);
    return { median: median(ms), min: Math.min(...ms), max: Math.max(...ms) };
  };
  /** Each round's instrumented/original ratio (the two ran back to back): less sensitive to drift. */
  const paired = (id: Case["id"]) => {
    const ratios = [];
    for (let round = 0; round < rounds; round++) {
      const [o, m] = VARIANTS.map((v) => samples.find((s) => s.round === round && s.case === id && s.variant === v)!);
      ratios.push(m.ms / o.ms);
    }
    const sorted = ratios.sort((a, b) => a - b);
    return {
      median: median(sorted),
      p25: sorted[Math.floor((sorted.length - 1) / 4)],
      p75: sorted[Math.ceil((sorted.length - 1) * 3 / 4)],
    };
  };
  const rows = [[
    "case",
    "original ms",
    "instrumented ms",
    "ratio of medians",
    "per-round ratio, median [p25..p75]",
    "target",
  ]];
  const cases: Record<string, unknown> = {};
  for (const c of CASES) {
    const [o, m, p] = [stats(c.id, "original"), stats(c.id, "instrumented"), paired(c.id)];
    const ratio = m.median / o.median;
    const ok = ratio <= TARGET;
    cases[c.id] = { label: c.label, original: o, instrumented: m, ratio, pairedRatio: p, target: TARGET, ok };
    rows.push([
      c.label,
      o.median.toFixed(2),
      m.median.toFixed(2),
      ratio.toFixed(3),
      `${p.median.toFixed(3)} [${p.p25.toFixed(2)}..${p.p75.toFixed(2)}]`,
      `<= ${TARGET.toFixed(2)} ${ok ? "ok" : "MISSED"}`,
    ]);
  }

  console.log(
    `fuel-metering micro-benchmark: Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${rounds} rounds, ` +
      `n = ${n} iterations per call, ${warmup} warm-up calls\n`,
  );
  console.log(table(rows));

  await keepResults(ROOT, "metering", { config: { rounds, n, warmup }, cases, samples });
}

if (import.meta.main) await main();
