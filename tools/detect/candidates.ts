/**
 * Candidate detectors measured on ADFA-LD's development part, as TypeScript
 * prototypes (tools/detect/ngram.ts): each gives per-call scores, turned
 * into one number per trace by an aggregator (mean, max of a sliding
 * window's mean, top-q mean). Prints AUC and detection rates at 1% and 10%
 * false alarms; the chosen one is implemented in the wrapper and measured
 * through it by tools/detect/eval.ts.
 *
 *   deno run --allow-all tools/detect/candidates.ts [--quick] [K...]            # stide, Witten–Bell, Kneser–Ney
 *   deno run --allow-all tools/detect/candidates.ts [--quick] --rare            # t-stide, count-weighted scores
 *   deno run --allow-all tools/detect/candidates.ts [--quick] --variants        # caps, thresholds, end symbol
 *   deno run --allow-all tools/detect/candidates.ts [--quick] --profile         # nearest frequency profile, ensembles
 *
 * --quick scores every fourth dev-normal trace (docs/detect.md's table used every second).
 *
 * @module
 */
import { adfa, type Labelled } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { CountTrie, kneserNey, stideMisses, symbols, wittenBell } from "./ngram.ts";
import { cosine, l1, nearest, profile } from "./profile.ts";

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

/** One number per trace for both sets, AUC and detection rates. */
function reportScores(name: string, score: (nrs: readonly number[]) => number) {
  const ns = normal.map((t) => score(t.nrs));
  const as = attack.map((t) => score(t.nrs));
  console.log(
    `${name.padEnd(34)} AUC ${auc(ns, as).toFixed(3)}  DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}  ` +
      `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
  );
  return [ns, as] as const;
}

if (Deno.args.includes("--rare")) {
  const trie = trained(8);
  // The training count of the k-gram each call completes (0: never seen).
  const counts = (nrs: readonly number[], k: number) => {
    const s = symbols(nrs, k);
    const out: number[] = [];
    for (let e = k - 1; e < s.length; e++) {
      const n = trie.find(s, e - k + 1, e);
      out.push(n < 0 ? 0 : trie.count[n]);
    }
    return out;
  };
  for (const k of [4, 6, 8]) {
    for (const m of [1, 2, 3, 5, 10, 20]) {
      reportScores(`t-stide k=${k} count<${m}`, (nrs) => mean(counts(nrs, k).map((c) => c < m ? 1 : 0)));
    }
    reportScores(`mean -log(c+1) k=${k}`, (nrs) => mean(counts(nrs, k).map((c) => -Math.log(c + 1))));
    reportScores(`mean 1/(c+1) k=${k}`, (nrs) => mean(counts(nrs, k).map((c) => 1 / (c + 1))));
  }
} else if (Deno.args.includes("--variants")) {
  const trie = trained(6);
  const wb = (nrs: readonly number[]) => wittenBell(trie, nrs, 6);
  for (const cap of [2, 4, 6, 8, 12]) {
    reportScores(`WB6 capped at ${cap} bits`, (n) => mean(wb(n).map((v) => Math.min(v, cap))));
  }
  for (const th of [1, 2, 4, 6]) {
    reportScores(`WB6 share above ${th} bits`, (n) => mean(wb(n).map((v) => v > th ? 1 : 0)));
  }
  // Each n-gram counted once per training trace (document frequency): long repetitive traces weigh less.
  const once = new CountTrie(8);
  for (const t of data.train) once.add(t.nrs, true);
  once.finish();
  for (const k of [3, 4, 6, 8]) reportScores(`WB${k} counted once per trace`, (n) => mean(wittenBell(once, n, k)));
  // An end-of-trace symbol, in training and scoring: how a trace ends (only known at its end: not online).
  const EOS = 1000;
  const withEnd = new CountTrie(8);
  for (const t of data.train) withEnd.add([...t.nrs, EOS]);
  withEnd.finish();
  for (const k of [4, 6, 8]) {
    const s = (nrs: readonly number[]) => wittenBell(withEnd, [...nrs, EOS], k);
    reportScores(`WB${k} end symbol, mean`, (n) => mean(s(n)));
    reportScores(`WB${k} end symbol, mean + last/20`, (n) => {
      const x = s(n);
      return mean(x) + x[x.length - 1] / 20;
    });
  }
} else if (Deno.args.includes("--profile")) {
  for (const n of [1, 2, 3]) {
    const train = data.train.map((t) => profile(t.nrs, n));
    for (const [dn, d] of [["L1", l1], ["cosine", cosine]] as const) {
      for (const k of [1, 3]) {
        reportScores(`${k}-NN ${dn} ${n}-gram profile`, (x) => nearest(profile(x, n), train, d, k));
      }
    }
  }
  // Ensembles of the language model and the profile distance, z-scored on the normal traces.
  const trie = trained(8);
  const train3 = data.train.map((t) => profile(t.nrs, 3));
  const [lmN, lmA] = reportScores("WB8 mean", (x) => mean(wittenBell(trie, x, 8)));
  const [kN, kA] = reportScores("1-NN cosine 3-gram", (x) => nearest(profile(x, 3), train3, cosine, 1));
  const z = (xs: readonly number[]) => {
    const m = mean([...xs]);
    const sd = Math.sqrt(mean(xs.map((x) => (x - m) ** 2))) || 1;
    return (x: number) => (x - m) / sd;
  };
  const [zl, zk] = [z(lmN), z(kN)];
  for (const w of [0.3, 0.5, 0.7]) {
    const ns = lmN.map((l, i) => w * zl(l) + (1 - w) * zk(kN[i]));
    const as = lmA.map((l, i) => w * zl(l) + (1 - w) * zk(kA[i]));
    console.log(`ensemble w=${w}`.padEnd(34), `AUC ${auc(ns, as).toFixed(3)}`);
  }
  console.log(
    "product".padEnd(34),
    `AUC ${auc(lmN.map((l, i) => l * kN[i]), lmA.map((l, i) => l * kA[i])).toFixed(3)}`,
  );
} else {
  const orders = Deno.args.filter((a) => /^\d+$/.test(a)).map(Number);
  for (const k of orders.length ? orders : [3, 4, 5, 6, 7, 8]) {
    const t0 = performance.now();
    const trie = trained(k);
    console.log(`# k=${k}: ${trie.count.length} trie nodes, built in ${(performance.now() - t0).toFixed(0)} ms`);
    report(`stide k=${k}`, (nrs) => stideMisses(trie, nrs, k));
    report(`WB k=${k}`, (nrs) => wittenBell(trie, nrs, k));
    report(`KN k=${k}`, (nrs) => kneserNey(trie, nrs, k));
  }
}
