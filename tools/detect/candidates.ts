/**
 * Candidate detectors measured on ADFA-LD's development part, as TypeScript
 * prototypes (tools/detect/ngram.ts): each gives per-call scores, turned
 * into one number per trace by an aggregator (mean, max of a sliding
 * window's mean, top-q mean). Prints AUC and detection rates at 1% and 10%
 * false alarms; the chosen one is implemented in the wrapper and measured
 * through it by tools/detect/eval.ts.
 *
 *   deno run --allow-all tools/detect/candidates.ts [--quick]
 *
 * @module
 */
import { adfa, type Labelled } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { CountTrie, kneserNey, stideMisses, wittenBell } from "./ngram.ts";

type PerCall = (nrs: readonly number[]) => number[];
type Aggregate = (s: number[]) => number;

const mean: Aggregate = (s) => s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;
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
  const sorted = [...s].sort((a, b) => b - a);
  return mean(sorted.slice(0, Math.max(1, Math.ceil(q * s.length))));
};

const AGGREGATES: [string, Aggregate][] = [
  ["mean", mean],
  ["max10", maxWindow(10)],
  ["max20", maxWindow(20)],
  ["max50", maxWindow(50)],
  ["top10%", topMean(0.1)],
  ["top1%", topMean(0.01)],
];

const data = await adfa();
const quick = Deno.args.includes("--quick");
const normal = quick ? data.normal.filter((_, i) => i % 4 === 0) : data.normal;
const attack = data.attack;

function report(name: string, perCall: PerCall) {
  const n = normal.map((t) => perCall(t.nrs));
  const a = attack.map((t) => perCall(t.nrs));
  for (const [aggName, agg] of AGGREGATES) {
    const ns = n.map(agg);
    const as = a.map(agg);
    const classes = [...new Set(attack.map((t) => t.group))].sort();
    const perClass = classes.map((c) => {
      const cs = as.filter((_, i) => attack[i].group === c);
      return `${c} ${auc(ns, cs).toFixed(3)}`;
    });
    console.log(
      [
        name.padEnd(16),
        aggName.padEnd(7),
        `AUC ${auc(ns, as).toFixed(3)}`,
        `DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}`,
        `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
        perClass.join(", "),
      ].join("  "),
    );
  }
}

const trained = (k: number) => {
  const trie = new CountTrie(k);
  for (const t of data.train as Labelled[]) trie.add(t.nrs);
  trie.finish();
  return trie;
};

const orders = Deno.args.filter((a) => /^\d+$/.test(a)).map(Number);
for (const k of orders.length ? orders : [3, 4, 5, 6, 7, 8]) {
  const t0 = performance.now();
  const trie = trained(k);
  console.log(`# k=${k}: ${trie.count.length} trie nodes, built in ${(performance.now() - t0).toFixed(0)} ms`);
  report(`stide k=${k}`, (nrs) => stideMisses(trie, nrs, k));
  report(`WB k=${k}`, (nrs) => wittenBell(trie, nrs, k));
  report(`KN k=${k}`, (nrs) => kneserNey(trie, nrs, k));
}
