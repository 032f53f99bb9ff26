/**
 * Evaluates the sequence detectors (host/seq/detectors.ts: seq, ngram)
 * through their wrappers' .wasm, replayed offline (host/seq/replay.ts), on
 *
 * - ADFA-LD's development part (../shared/datasets/adfa-dev.tar.xz,
 *   unpacked into build/datasets/): trained on train/ only, scored on
 *   dev-normal/ and dev-attack/; the score is the detector's one number per
 *   trace (seq: mismatch rate; ngram: mean surprisal, bits per call); prints
 *   AUC and the detection rate at 1% and 10% false alarms, overall and per
 *   attack class;
 * - the UNM sendmail and lpr traces, as the papers count: an intrusion file
 *   is detected when one of its processes scores above every held-out
 *   normal process; the per-process score is the live alarm's measure (seq:
 *   largest locality-frame count; ngram: largest frame surprisal).
 *
 *   deno run --allow-all tools/detect/eval.ts [--detector seq|ngram]... [--quick] [--json FILE] [--only adfa|unm]
 *
 * --quick scores every fourth dev-normal trace (for development). The full
 * run scores 2,186 + 429 traces per detector (minutes on this machine:
 * run it under nice).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { DETECTOR_NAMES, type DetectorName, type DetectorScore } from "../../host/seq/detectors.ts";
import { scoreWith, type Trace, train } from "../../host/seq/replay.ts";
import { WrapperStore } from "../../host/store/kv.ts";
import { buildWrappers } from "../build_wrappers.ts";
import { adfa, unmLpr, unmSendmail, type UnmSplit } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { keepResults } from "../../bench/_report.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    detector: { type: "string", multiple: true },
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    only: { type: "string" },
    setting: { type: "string", multiple: true },
    "save-run": { type: "boolean" },
  },
});
const detectors = (values.detector ?? [...DETECTOR_NAMES]) as DetectorName[];
for (const d of detectors) {
  if (!DETECTOR_NAMES.includes(d)) throw new Error(`Unknown detector "${d}": expected one of ${DETECTOR_NAMES}`);
}
const settings: Record<string, string> = {};
for (const s of values.setting ?? []) {
  const [k, v] = s.split("=");
  if (!k || v === undefined) throw new Error(`Bad --setting "${s}": expected name=value`);
  settings[k] = v;
}

/** The per-process measure of the live alarm, for the UNM counting. */
const frameScore = (d: DetectorName, s: DetectorScore) =>
  d === "seq" ? s.fields.maxLocalityFrame : s.fields.maxFrameBits;

async function trained(detector: DetectorName, program: string, traces: Trace[]) {
  const store = await WrapperStore.open(":memory:");
  await train(traces, { store, program, mode: "record", detector, settings });
  return store;
}

const f3 = (n: number) => n.toFixed(3);
const results: Record<string, unknown> = {};
await buildWrappers();

async function evalAdfa(detector: DetectorName) {
  const data = await adfa();
  const normal = values.quick ? data.normal.filter((_, i) => i % 4 === 0) : data.normal;
  const t0 = performance.now();
  const store = await trained(detector, "adfa", data.train);
  const trainMs = performance.now() - t0;
  const t1 = performance.now();
  const opts = { store, program: "adfa", mode: "detect" as const, detector, settings };
  const ns = (await scoreWith(normal, opts)).map((s) => s.score);
  const as = (await scoreWith(data.attack, opts)).map((s) => s.score);
  const scoreMs = performance.now() - t1;
  await store.close();
  const classes = [...new Set(data.attack.map((t) => t.group))].sort();
  const row = (a: number[]) => ({
    auc: auc(ns, a),
    dr1: detectionAt(ns, a, 0.01).detectionRate,
    dr10: detectionAt(ns, a, 0.1).detectionRate,
  });
  const all = row(as);
  const perClass = Object.fromEntries(classes.map((c) => [c, row(as.filter((_, i) => data.attack[i].group === c))]));
  console.log(
    `ADFA-dev ${detector}: ${data.train.length} train, ${normal.length} normal, ${as.length} attack traces; ` +
      `AUC ${f3(all.auc)}, DR@1% ${f3(all.dr1)}, DR@10% ${f3(all.dr10)} ` +
      `(train ${(trainMs / 1000).toFixed(1)} s, score ${(scoreMs / 1000).toFixed(1)} s)`,
  );
  for (const [c, r] of Object.entries(perClass)) {
    console.log(`  ${c.padEnd(10)} AUC ${f3(r.auc)}, DR@1% ${f3(r.dr1)}, DR@10% ${f3(r.dr10)}`);
  }
  results[`adfa/${detector}`] = { ...all, perClass, normal: normal.length, attack: as.length, quick: values.quick };
}

async function evalUnm(detector: DetectorName, split: UnmSplit) {
  const store = await trained(detector, split.program, split.train);
  const opts = { store, program: split.program, mode: "detect" as const, detector, settings };
  const held = (await scoreWith(split.heldOut, opts)).map((s) => frameScore(detector, s));
  const heldMax = Math.max(0, ...held);
  const files = [];
  for (const f of split.intrusions) {
    const max = Math.max(0, ...(await scoreWith(f.traces, opts)).map((s) => frameScore(detector, s)));
    files.push({ file: f.file, processes: f.traces.length, max, detected: max > heldMax });
  }
  await store.close();
  const detected = files.filter((f) => f.detected).length;
  console.log(
    `UNM ${split.program} ${detector}: held-out normal max ${heldMax.toFixed(1)} (${held.length} processes); ` +
      `intrusion files detected ${detected}/${files.length}`,
  );
  for (const f of files) console.log(`  ${f.file}: max ${f.max.toFixed(1)}${f.detected ? " *" : ""}`);
  results[`unm-${split.program}/${detector}`] = { heldOutMax: heldMax, detected, files };
}

for (const d of detectors) {
  if (values.only !== "unm") await evalAdfa(d);
  if (values.only !== "adfa") {
    await evalUnm(d, await unmSendmail());
    await evalUnm(d, await unmLpr());
  }
}
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify({ settings, results }, null, 2) + "\n");
// bench/results/detect.json, and with --save-run docs/runs/detect-DATE.json: the run docs/detect.md quotes.
if (!values.quick) await keepResults(fileURLToPath(new URL("../..", import.meta.url)), "detect", { settings, results });
