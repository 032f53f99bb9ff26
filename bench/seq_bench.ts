/**
 * The seq wrapper's costs (Seq_id, wrappers/seq/): per-call time in detect
 * mode on replayed UNM traces, driven through WrapperChain.decide() as the
 * supervisor drives it (host/seq/replay.ts), metering on; the same traces
 * through the no-op wrapper give the chain's own cost, and the difference
 * is the time spent inside the seq module (target ≤ 500 ns per call).
 * Also: training time per call and each program's database size in the KV
 * store (bytes of keys and values).
 *
 *   deno run --allow-all bench/seq_bench.ts
 *
 * Writes bench/results/seq.json. Needs the UNM data sets at
 * <repo>/../shared/datasets/unm.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { databaseSize, readTraces, SeqReplayer, train } from "../host/seq/replay.ts";
import { WrapperStore } from "../host/store/kv.ts";
import { buildWrappers } from "../tools/build_wrappers.ts";
import { keepResults, median, table } from "./_report.ts";
import { callCount, longTrace, timeReplay, tinyTraces } from "./_replay.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const UNM = join(ROOT, "..", "shared", "datasets", "unm");
const ROUNDS = 5;

if (!existsSync(UNM)) {
  console.error(`no UNM data sets at ${UNM}`);
  Deno.exit(1);
}
await buildWrappers();
const noop = await Deno.readFile(join(ROOT, "build", "wrappers", "noop.wasm"));

const sets = [
  {
    program: "sendmail",
    train: ["bounce-1.int", "bounce-2.int", "bounce.int", "plus.int", "queue.int"].map((f) =>
      join(UNM, "sendmail", "normal", f)
    ),
    score: [join(UNM, "sendmail", "normal", "sendmail.log.int"), join(UNM, "sendmail", "intrusion", "sm-280.int")],
  },
  {
    program: "lpr",
    train: [join(UNM, "lpr", "normal", "lpr-normal-10.txt")],
    score: [join(UNM, "lpr", "normal", "lpr-normal-11.txt")],
  },
];

interface Result {
  program: string;
  trainCalls: number;
  scoreCalls: number;
  trainNsPerCall: number[];
  detectNsPerCall: number[];
  noopNsPerCall: number[];
  steadyNsPerCall: number[];
  steadyNoopNsPerCall: number[];
  perProcessUs: number[];
  perProcessNoopUs: number[];
  sequences: number;
  dbBytes: number;
  kvValues: number;
}
const results: Result[] = [];

for (const set of sets) {
  const trainTraces = await readTraces(set.train, "unm");
  const scoreTraces = await readTraces(set.score, "unm");
  const long = longTrace(scoreTraces);
  const tinyPerProcess = 2;
  const tiny = tinyTraces(long, 500, tinyPerProcess);
  const res: Result = {
    program: set.program,
    trainCalls: callCount(trainTraces),
    scoreCalls: callCount(scoreTraces),
    trainNsPerCall: [],
    detectNsPerCall: [],
    noopNsPerCall: [],
    steadyNsPerCall: [],
    steadyNoopNsPerCall: [],
    perProcessUs: [],
    perProcessNoopUs: [],
    sequences: 0,
    dbBytes: 0,
    kvValues: 0,
  };
  for (let round = 0; round < ROUNDS; round++) {
    const store = await WrapperStore.open(":memory:");
    const t0 = performance.now();
    await train(trainTraces, { store, program: set.program, mode: "record" });
    res.trainNsPerCall.push((performance.now() - t0) * 1e6 / res.trainCalls);
    const seq = await SeqReplayer.open({ store, program: set.program, mode: "detect" });
    const base = await SeqReplayer.open({ store, program: set.program, mode: "detect", baseline: noop });
    timeReplay(seq, scoreTraces.slice(0, 5)); // warm up
    timeReplay(base, scoreTraces.slice(0, 5));
    res.detectNsPerCall.push(timeReplay(seq, scoreTraces));
    res.noopNsPerCall.push(timeReplay(base, scoreTraces));
    res.steadyNsPerCall.push(timeReplay(seq, [long]));
    res.steadyNoopNsPerCall.push(timeReplay(base, [long]));
    res.perProcessUs.push(timeReplay(seq, tiny) * tinyPerProcess / 1000);
    res.perProcessNoopUs.push(timeReplay(base, tiny) * tinyPerProcess / 1000);
    const size = await databaseSize(store, set.program);
    Object.assign(res, { sequences: size.sequences, dbBytes: size.bytes, kvValues: size.values });
    await store.close();
  }
  results.push(res);
  console.error(`${set.program} done`);
}

const f = (n: number) => n.toFixed(0);
console.log(`seq wrapper benchmark: Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${ROUNDS} rounds, medians\n`);
console.log(table([
  [
    "program",
    "train calls",
    "train ns/call",
    "scored calls",
    "detect ns/call (chain)",
    "no-op ns/call (chain)",
    "inside seq ns/call",
    "steady: seq / no-op / inside ns/call",
    "per process: seq / no-op µs",
    "sequences",
    "DB bytes in KV",
  ],
  ...results.map((r) => [
    r.program,
    String(r.trainCalls),
    f(median(r.trainNsPerCall)),
    String(r.scoreCalls),
    f(median(r.detectNsPerCall)),
    f(median(r.noopNsPerCall)),
    f(median(r.detectNsPerCall) - median(r.noopNsPerCall)),
    `${f(median(r.steadyNsPerCall))} / ${f(median(r.steadyNoopNsPerCall))} / ${
      f(median(r.steadyNsPerCall) - median(r.steadyNoopNsPerCall))
    }`,
    `${f(median(r.perProcessUs))} / ${f(median(r.perProcessNoopUs))}`,
    String(r.sequences),
    `${r.dbBytes} (${r.kvValues} values)`,
  ]),
]));
console.log(
  "\ntarget: inside seq ≤ 500 ns per call (detect mode, steady state: one long process);" +
    " the per-trace columns also carry each process's instance, database load and exit record",
);

await keepResults(ROOT, "seq", { rounds: ROUNDS, results });
