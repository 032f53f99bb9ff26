/**
 * The wrapper runtime's costs (`deno task bench:runtime`): one hook call
 * through the chain (a no-op wrapper, a wrapper reading the decoded path, a
 * loop-heavy hook), a new process's instance, and memory per instance —
 * each with metering on and off, side by side in one run. The hooks are
 * driven through WrapperChain.decide() exactly as the supervisor drives them,
 * without a kernel in the loop: this measures the runtime alone.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EventSink } from "../host/decider.ts";
import type { SyscallEvent } from "../host/events.ts";
import { WRAPPER_DEFAULTS, type WrapperSpec } from "../host/policy/policy.ts";
import { WrapperChain } from "../host/runtime/chain.ts";
import { v8Engine } from "../host/runtime/engine.ts";
import { loadWrapper } from "../host/runtime/module.ts";
import { WrapperStore } from "../host/store/kv.ts";
import { buildWrappers } from "../tools/build_wrappers.ts";
import wabtInit from "wabt";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ROUNDS = 7;

/** A hook that sums 0..99999: the loop-heavy case for metering. */
const LOOP_WAT = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 1))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32) (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.load (i32.and (local.get $i) (i32.const 0xfffc)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
    (i32.and (local.get $s) (i32.const 0))))`;

const spec = (name: string, settings: Record<string, string> = {}): WrapperSpec => ({
  name,
  module: name,
  settings,
  fail: WRAPPER_DEFAULTS.fail,
  memoryMiB: WRAPPER_DEFAULTS.memoryMiB,
  budget: WRAPPER_DEFAULTS.budget,
  maxFailures: WRAPPER_DEFAULTS.maxFailures,
  clock: false,
  onAlert: WRAPPER_DEFAULTS.onAlert,
});

const sink: EventSink = { wantsSyscalls: false, emit() {}, flush() {} };
const store = await WrapperStore.open(":memory:");

async function chainFor(name: string, bytes: Uint8Array, meter: boolean, settings = {}): Promise<WrapperChain> {
  const mod = loadWrapper(spec(name, settings), bytes, v8Engine, name, { meter });
  const kv = new Map([[name, await store.load(name)]]);
  return new WrapperChain([mod], { engine: v8Engine, sink, kv, source: "seccomp" });
}

function event(pid: number, nr: number, path: string): SyscallEvent {
  return {
    kind: "syscall",
    source: "seccomp",
    phase: "pre",
    time: 0,
    pid,
    tid: pid,
    abi: "x86_64",
    nr,
    syscall: nr === 110 ? "getppid" : "openat",
    args: ["0", "0", "0", "0", "0", "0"],
    decoded: { path },
    program: { exe: "/usr/bin/bench", argv0: "bench", uid: 0, gid: 0 },
  };
}

/** ns per decide() on one process (its instance made before timing). */
function perCall(chain: WrapperChain, e: SyscallEvent, calls: number): number {
  for (let i = 0; i < 1000; i++) chain.decide(e);
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) chain.decide(e);
  return (performance.now() - t0) * 1e6 / calls;
}

/**
 * µs per new process's first decide() (an instance, idwrap_init, the hook).
 * With `spares`, the chain gets its idle moment between processes (untimed),
 * as the supervisor gives it between calls; without, every instance is made cold.
 */
function perInstance(chain: WrapperChain, nr: number, count: number, firstPid: number, spares: boolean): number {
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (spares) chain.idle();
    const t0 = performance.now();
    chain.decide(event(firstPid + i, nr, "/etc/hostname"));
    total += performance.now() - t0;
  }
  return total * 1e3 / count;
}

await buildWrappers();
const noop = await Deno.readFile(join(ROOT, "build", "wrappers", "noop.wasm"));
const denyPath = await Deno.readFile(join(ROOT, "build", "wrappers", "deny_path.wasm"));
const wabt = await wabtInit();
const loopMod = wabt.parseWat("loop.wat", LOOP_WAT);
const loop = new Uint8Array(loopMod.toBinary({}).buffer);
loopMod.destroy();

type Row = { id: string; label: string; unit: string; target?: string; samples: number[] };
const rows: Row[] = [];
const row = (id: string, label: string, unit: string, target?: string) => {
  const r = { id, label, unit, target, samples: [] as number[] };
  rows.push(r);
  return r;
};
const cases = [
  { id: "noop", bytes: noop, nr: 110, path: "", calls: 200_000, label: "no-op hook call" },
  {
    id: "path",
    bytes: denyPath,
    nr: 257,
    path: "/etc/hostname",
    calls: 200_000,
    label: "hook reading the decoded path",
  },
  { id: "loop", bytes: loop, nr: 257, path: "", calls: 500, label: "loop-heavy hook (100k iterations)" },
];
const callRows = cases.flatMap((c) =>
  [true, false].map((meter) => ({
    c,
    meter,
    row: row(
      `${c.id}-${meter ? "metered" : "unmetered"}`,
      `${c.label}, metering ${meter ? "on" : "off"}`,
      "ns/call",
      c.id === "noop" && meter ? "≤ 1000" : undefined,
    ),
  }))
);
const instRows = [[true, true], [true, false], [false, false]].map(([meter, spares]) => ({
  meter,
  spares,
  row: row(
    `instance-${meter ? "metered" : "unmetered"}-${spares ? "spare" : "cold"}`,
    `new process's instance (noop), ${spares ? "from the spares" : "made cold"}, metering ${meter ? "on" : "off"}`,
    "µs/instance",
    meter && spares ? "≤ 100" : undefined,
  ),
}));

let pid = 1_000_000;
for (let round = 0; round < ROUNDS; round++) {
  for (const { c, meter, row } of round % 2 ? [...callRows].reverse() : callRows) {
    const chain = await chainFor(`${c.id}`, c.bytes, meter, { path: "/nonexistent" });
    row.samples.push(perCall(chain, event(pid++, c.nr, c.path), c.calls));
  }
  for (const { meter, spares, row } of instRows) {
    const chain = await chainFor("noop", noop, meter);
    row.samples.push(perInstance(chain, 110, 1000, pid, spares));
    pid += 1000;
  }
  console.error(`round ${round + 1}/${ROUNDS} done`);
}

// Memory per instance: resident memory grown by N live instances, after full GCs (--expose-gc).
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const memChain = await chainFor("noop", noop, true);
gc();
const before = Deno.memoryUsage();
const N = 2000;
for (let i = 0; i < N; i++) memChain.decide(event(pid + i, 110, ""));
gc();
const after = Deno.memoryUsage();
const perInstanceBytes = (after.rss - before.rss) / N;
const perInstanceHeap = (after.heapUsed + after.external - before.heapUsed - before.external) / N;

const byId = (id: string) => median(rows.find((r) => r.id === id)!.samples);
const fmt = (n: number, unit: string) => `${n >= 100 ? n.toFixed(0) : n.toFixed(2)} ${unit}`;
console.log(`wrapper runtime benchmark: Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${ROUNDS} rounds\n`);
console.log(table([
  ["case", "median", "min", "max", "target"],
  ...rows.map((r) => [
    r.label,
    fmt(median(r.samples), r.unit),
    fmt(Math.min(...r.samples), r.unit),
    fmt(Math.max(...r.samples), r.unit),
    r.target ?? "",
  ]),
]));
const meteringCost = byId("loop-metered") / byId("loop-unmetered");
console.log(`\nmetering cost on the loop-heavy hook: ${meteringCost.toFixed(3)}× (target ≤ 1.15×)`);
console.log(
  `memory per instance (noop, AssemblyScript): ${(perInstanceBytes / 1024).toFixed(1)} KiB resident, ` +
    `of which ${(perInstanceHeap / 1024).toFixed(1)} KiB V8 heap and external`,
);

await keepResults(ROOT, "runtime", { rounds: ROUNDS, rows, meteringCost, perInstanceBytes, perInstanceHeap });
