/**
 * The ngram detector's costs (wrappers/ngram, docs/detect.md): per-call
 * time in detect mode on replayed traces, driven through
 * WrapperChain.decide() as the supervisor drives it (host/seq/replay.ts),
 * metering on; the same traces through the no-op wrapper give the chain's
 * own cost, and the difference is the time spent inside the ngram module
 * (target ≤ 1 µs per call). seq (Forrest's stide) is measured the same way,
 * same run, for comparison. Also: the per-process cost (instance, model
 * load, exit record), training time per call, and the model's size in KV.
 *
 *   deno run --allow-all bench/ngram_bench.ts
 *
 * Data: UNM sendmail and lpr (<repo>/../shared/datasets/unm) and ADFA-LD's
 * development part (tools/detect/data.ts). Writes bench/results/ngram.json.
 *
 * @module
 */
import { join } from "node:path";
import { type DetectorName, DETECTORS } from "../host/seq/detectors.ts";
import { SeqReplayer, train } from "../host/seq/replay.ts";
import { WrapperStore } from "../host/store/kv.ts";
import { buildWrappers } from "../tools/build_wrappers.ts";
import { adfa, ROOT, unmLpr, unmSendmail } from "../tools/detect/data.ts";
import { keepResults, median, table } from "./_report.ts";
import { callCount, longTrace, timeReplay, tinyTraces } from "./_replay.ts";

const ROUNDS = 3;

await buildWrappers();
const noop = await Deno.readFile(join(ROOT, "build", "wrappers", "noop.wasm"));

const sendmail = await unmSendmail();
const lpr = await unmLpr();
const adfaData = await adfa();
const sets = [
  { program: "sendmail", train: sendmail.train, score: sendmail.heldOut },
  { program: "lpr", train: lpr.train, score: lpr.heldOut },
  // 200 dev-normal traces and the attack traces (the whole development part takes minutes).
  { program: "adfa", train: adfaData.train, score: [...adfaData.normal.slice(0, 200), ...adfaData.attack] },
];

interface Result {
  program: string;
  detector: DetectorName;
  trainCalls: number;
  scoreCalls: number;
  trainNsPerCall: number;
  steadyNsPerCall: number[];
  steadyNoopNsPerCall: number[];
  perTraceNsPerCall: number[];
  perTraceNoopNsPerCall: number[];
  perProcessUs: number[];
  perProcessNoopUs: number[];
  modelBytes: number;
  kvValues: number;
}
const results: Result[] = [];

for (const set of sets) {
  for (const detector of ["seq", "ngram"] as const) {
    const store = await WrapperStore.open(":memory:");
    const t0 = performance.now();
    await train(set.train, { store, program: set.program, mode: "record", detector });
    const trainNsPerCall = (performance.now() - t0) * 1e6 / callCount(set.train);
    const long = longTrace(set.score);
    const tiny = tinyTraces(long, 100, 2);
    const ns = await store.load(detector);
    const prefix = new TextEncoder().encode(DETECTORS[detector].modelPrefix(set.program, {}));
    let modelBytes = 0;
    let kvValues = 0;
    for (const key of ns.list(prefix)) {
      modelBytes += key.length + (ns.get(key)?.length ?? 0);
      kvValues++;
    }
    const res: Result = {
      program: set.program,
      detector,
      trainCalls: callCount(set.train),
      scoreCalls: long.nrs.length,
      trainNsPerCall,
      steadyNsPerCall: [],
      steadyNoopNsPerCall: [],
      perTraceNsPerCall: [],
      perTraceNoopNsPerCall: [],
      perProcessUs: [],
      perProcessNoopUs: [],
      modelBytes,
      kvValues,
    };
    for (let round = 0; round < ROUNDS; round++) {
      const det = await SeqReplayer.open({ store, program: set.program, mode: "detect", detector });
      const base = await SeqReplayer.open({ store, program: set.program, mode: "detect", detector, baseline: noop });
      timeReplay(det, set.score.slice(0, 3)); // warm up
      timeReplay(base, set.score.slice(0, 3));
      res.steadyNsPerCall.push(timeReplay(det, [long]));
      res.steadyNoopNsPerCall.push(timeReplay(base, [long]));
      res.perTraceNsPerCall.push(timeReplay(det, set.score));
      res.perTraceNoopNsPerCall.push(timeReplay(base, set.score));
      res.perProcessUs.push(timeReplay(det, tiny) * 2 / 1000);
      res.perProcessNoopUs.push(timeReplay(base, tiny) * 2 / 1000);
    }
    await store.close();
    results.push(res);
    console.error(`${set.program} ${detector} done`);
  }
}

const f = (n: number) => n.toFixed(0);
console.log(`ngram detector benchmark: Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${ROUNDS} rounds, medians\n`);
console.log(table([
  [
    "program",
    "detector",
    "train ns/call",
    "scored calls",
    "steady: wrapper / no-op / inside ns/call",
    "per trace, all costs: wrapper / no-op ns/call",
    "per process: wrapper / no-op µs",
    "model in KV",
  ],
  ...results.map((r) => [
    r.program,
    r.detector,
    f(r.trainNsPerCall),
    String(r.scoreCalls),
    `${f(median(r.steadyNsPerCall))} / ${f(median(r.steadyNoopNsPerCall))} / ${
      f(median(r.steadyNsPerCall) - median(r.steadyNoopNsPerCall))
    }`,
    `${f(median(r.perTraceNsPerCall))} / ${f(median(r.perTraceNoopNsPerCall))}`,
    `${f(median(r.perProcessUs))} / ${f(median(r.perProcessNoopUs))}`,
    `${(r.modelBytes / 1024).toFixed(0)} KiB (${r.kvValues} values)`,
  ]),
]));
console.log("\ntarget: inside ngram ≤ 1000 ns per call (detect mode, steady state: one long process)");

await keepResults(ROOT, "ngram", { rounds: ROUNDS, results });
