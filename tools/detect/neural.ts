/**
 * The recurrent language model (tools/detect/gru.ts) measured on ADFA-LD's
 * development part, alone and mixed with the Witten–Bell n-gram model
 * (docs/detect.md, issue 18). Trains on train/ minus every tenth trace,
 * which is held out for early stopping (never dev-normal or dev-attack);
 * keeps the epoch with the lowest held-out bits per call; then scores
 * dev-normal and dev-attack and prints AUC, DR@1%, DR@10% and per-class AUC
 * for several aggregations, mixtures and a cascade.
 *
 *   nice -n 15 deno run --allow-all tools/detect/neural.ts [--hidden 32] [--bptt 50] [--epochs 8] [--lr 0.005] [--decay 1]
 *     [--seed 1] [--train-every N] [--quick] [--save FILE] [--load FILE] [--scores FILE]
 *
 * --decay multiplies the learning rate after each epoch. --load A.json,B.json scores with an ensemble: the
 * per-call surprisals of the models, averaged. --train-every N trains on every Nth training trace (prototyping); --quick
 * scores every fourth dev-normal trace; --load skips training; --save keeps
 * the weights as JSON (build/detect/ is a good place); --scores writes the
 * per-trace scores as JSON.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { adfa } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { CountTrie, wittenBell } from "./ngram.ts";
import {
  cloneParams,
  type GruParams,
  type GruShape,
  initParams,
  meanBits,
  rng,
  surprisals,
  train,
  Vocabulary,
} from "./gru.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    hidden: { type: "string", default: "32" },
    bptt: { type: "string", default: "50" },
    epochs: { type: "string", default: "8" },
    lr: { type: "string", default: "0.005" },
    decay: { type: "string", default: "1" },
    seed: { type: "string", default: "1" },
    "train-every": { type: "string", default: "1" },
    quick: { type: "boolean", default: false },
    save: { type: "string" },
    load: { type: "string" },
    scores: { type: "string" },
  },
});

const data = await adfa();
const vocab = new Vocabulary(data.train.flatMap((t) => t.nrs));
const shape: GruShape = { vocab: vocab.size, hidden: Number(a.hidden) };
const every = Number(a["train-every"]);
const heldOut = data.train.filter((_, i) => i % 10 === 9).map((t) => vocab.encode(t.nrs));
const trainSet = data.train.filter((_, i) => i % 10 !== 9 && i % every === 0).map((t) => vocab.encode(t.nrs));
const normal = a.quick ? data.normal.filter((_, i) => i % 4 === 0) : data.normal;
const attack = data.attack;

type Saved = { shape: GruShape; calls: number[]; params: Record<keyof GruParams, number[]> };
let params: GruParams;
let models: { shape: GruShape; params: GruParams }[] = [];
if (a.load) {
  models = a.load.split(",").map((f) => {
    const s = JSON.parse(Deno.readTextFileSync(f)) as Saved;
    if (s.calls.join() !== vocab.calls.join()) throw new Error(`${f}: its vocabulary is not train/'s`);
    const p = Object.fromEntries(Object.entries(s.params).map(([k, v]) => [k, Float32Array.from(v)])) as never;
    return { shape: s.shape, params: p };
  });
  params = models[0].params;
} else {
  params = initParams(shape, Number(a.seed));
  let best = { bits: Infinity, epoch: 0, params: cloneParams(params) };
  const t0 = performance.now();
  console.log(
    `# GRU H=${shape.hidden} V=${shape.vocab} bptt=${a.bptt} lr=${a.lr}: ${trainSet.length} training traces ` +
      `(${trainSet.reduce((s, t) => s + t.length - 1, 0)} calls), ${heldOut.length} held out`,
  );
  train(shape, params, trainSet, heldOut, {
    epochs: Number(a.epochs),
    bptt: Number(a.bptt),
    lr: Number(a.lr),
    lrDecay: Number(a.decay),
    seed: Number(a.seed),
    onEpoch: (epoch, trainBits, heldBits, p) => {
      console.log(
        `epoch ${epoch}: train ${trainBits.toFixed(4)} bits/call, held-out ${heldBits.toFixed(4)}, ` +
          `${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
      if (heldBits < best.bits) best = { bits: heldBits, epoch, params: cloneParams(p) };
      return epoch - best.epoch < 2; // stop after two epochs without improvement
    },
  });
  params = best.params;
  console.log(`# kept epoch ${best.epoch} (held-out ${best.bits.toFixed(4)} bits/call)`);
  if (a.save) {
    const saved: Saved = {
      shape,
      calls: vocab.calls,
      params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [...v]])) as never,
    };
    Deno.writeTextFileSync(a.save, JSON.stringify(saved));
  }
  models = [{ shape, params }];
}
/** Per-call surprisals, averaged over the models. */
const score = (nrs: readonly number[]) => {
  const syms = vocab.encode(nrs);
  const all = models.map((m) => surprisals(m.shape, m.params, syms));
  return all[0].map((_, i) => all.reduce((s, x) => s + x[i], 0) / all.length);
};
for (const m of models) {
  console.log(`# H=${m.shape.hidden}: held-out ${meanBits(m.shape, m.params, heldOut).toFixed(4)} bits/call`);
}

type Aggregate = (s: number[]) => number;
const mean: Aggregate = (s) => s.length ? s.reduce((x, y) => x + y, 0) / s.length : 0;
const maxWindow = (w: number): Aggregate => (s) => {
  if (s.length <= w) return mean(s);
  let sum = 0;
  for (let i = 0; i < w; i++) sum += s[i];
  let best = sum;
  for (let i = w; i < s.length; i++) {
    sum += s[i] - s[i - w];
    if (sum > best) best = sum;
  }
  return best / w;
};
const topMean = (q: number): Aggregate => (s) => {
  if (!s.length) return 0;
  const sorted = [...s].sort((x, y) => y - x);
  return mean(sorted.slice(0, Math.max(1, Math.ceil(q * s.length))));
};
const capped = (c: number): Aggregate => (s) => mean(s.map((v) => Math.min(v, c)));

const classes = [...new Set(attack.map((t) => t.group))].sort();
function report(name: string, ns: number[], as: number[]) {
  const perClass = classes.map((c) => `${c} ${auc(ns, as.filter((_, i) => attack[i].group === c)).toFixed(3)}`);
  console.log(
    `${name.padEnd(30)} AUC ${auc(ns, as).toFixed(3)}  DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}  ` +
      `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}  ${perClass.join(", ")}`,
  );
}

const t1 = performance.now();
const gruN = normal.map((t) => score(t.nrs));
const gruA = attack.map((t) => score(t.nrs));
console.log(`# scored ${normal.length} + ${attack.length} traces in ${((performance.now() - t1) / 1000).toFixed(0)} s`);
const aggregates: [string, Aggregate][] = [
  ["mean", mean],
  ["max20", maxWindow(20)],
  ["max50", maxWindow(50)],
  ["top10%", topMean(0.1)],
  ["capped 8 bits", capped(8)],
];
for (const [n, f] of aggregates) report(`GRU ${n}`, gruN.map(f), gruA.map(f));

// The n-gram model the wrapper runs, and mixtures z-scored on the normal traces.
const trie = new CountTrie(6);
for (const t of data.train) trie.add(t.nrs);
trie.finish();
const wbN = normal.map((t) => mean(wittenBell(trie, t.nrs, 6)));
const wbA = attack.map((t) => mean(wittenBell(trie, t.nrs, 6)));
report("WB k=6 mean", wbN, wbA);
const gN = gruN.map(mean), gA = gruA.map(mean);
const z = (xs: readonly number[]) => {
  const m = mean([...xs]);
  const sd = Math.sqrt(mean(xs.map((x) => (x - m) ** 2))) || 1;
  return (x: number) => (x - m) / sd;
};
const [zg, zw] = [z(gN), z(wbN)];
for (const w of [0.25, 0.5, 0.75]) {
  report(
    `z: ${w} GRU + ${1 - w} WB`,
    gN.map((g, i) => w * zg(g) + (1 - w) * zw(wbN[i])),
    gA.map((g, i) => w * zg(g) + (1 - w) * zw(wbA[i])),
  );
}
// A cascade: WB decides where it is sure (below the q0 or above the q1 quantile of its normal scores); between them the
// mixture reorders the traces, clamped into the band so that the two regions keep their order.
for (const [q0, q1] of [[0.5, 0.99], [0.8, 0.99], [0.9, 0.995]]) {
  const sorted = wbN.map(zw).sort((x, y) => x - y);
  const lo = sorted[Math.floor(q0 * (sorted.length - 1))], hi = sorted[Math.floor(q1 * (sorted.length - 1))];
  const cascade = (w: number, g: number) => {
    const zwb = zw(w);
    return zwb < lo || zwb > hi ? zwb : Math.min(hi, Math.max(lo, (zwb + zg(g)) / 2));
  };
  report(
    `cascade WB, GRU in q${q0}..q${q1}`,
    wbN.map((w, i) => cascade(w, gN[i])),
    wbA.map((w, i) => cascade(w, gA[i])),
  );
}
report("product GRU × WB", gN.map((g, i) => g * wbN[i]), gA.map((g, i) => g * wbA[i]));
// Per call: the mean of the two models' surprisals (a mixture in bits).
const perCallMix = (g: number[], nrs: readonly number[]) => {
  const w = wittenBell(trie, nrs, 6);
  return mean(g.map((v, i) => (v + w[i]) / 2));
};
report(
  "per-call mean of both",
  gruN.map((g, i) => perCallMix(g, normal[i].nrs)),
  gruA.map((g, i) => perCallMix(g, attack[i].nrs)),
);
// Is the difference to WB more than the sampling noise? A paired bootstrap over the traces (seeded).
{
  const r = rng(7);
  const pick = (n: number) => Array.from({ length: n }, () => Math.floor(r() * n));
  const diffs: number[] = [];
  for (let b = 0; b < 200; b++) {
    const ni = pick(normal.length), ai = pick(attack.length);
    diffs.push(
      auc(ni.map((i) => gN[i]), ai.map((i) => gA[i])) - auc(ni.map((i) => wbN[i]), ai.map((i) => wbA[i])),
    );
  }
  diffs.sort((x, y) => x - y);
  console.log(
    `# AUC(GRU mean) - AUC(WB): ${(auc(gN, gA) - auc(wbN, wbA)).toFixed(3)}, ` +
      `95 % bootstrap interval [${diffs[5].toFixed(3)}, ${diffs[194].toFixed(3)}]`,
  );
}
if (a.scores) {
  Deno.writeTextFileSync(
    a.scores,
    JSON.stringify({
      normal: normal.map((t, i) => ({ id: t.id, gru: gN[i], wb: wbN[i] })),
      attack: attack.map((t, i) => ({ id: t.id, group: t.group, gru: gA[i], wb: wbA[i] })),
    }),
  );
}
