/**
 * The fourth round of issue 18's candidates on ADFA-LD's development part
 * (docs/detect.md, "A fourth round"): views of a trace that are not a
 * next-call model — containment of its distinct n-grams in the nearest
 * training trace, TF-IDF profiles, rare calls — and scores that combine
 * different kinds of evidence (Witten–Bell surprisal, covering, profile
 * distance) after normalising each against the training traces' own scores
 * (cross-fitted: each fold of train/ scored by models of the other folds),
 * so that no dev trace, normal or attack, sets a weight or a scale. One
 * number per trace, larger when more abnormal; prints AUC, DR@1 %, DR@10 %
 * and the AUC per attack class. Deterministic.
 *
 *   deno run --allow-all tools/detect/round4.ts [--quick]
 *
 * The per-trace views are cached in build/detect/round4-views.json (delete it to recompute).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { SuffixAutomaton } from "./cover.ts";
import { adfa, type Labelled, ROOT } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { GramIndex, grams, type TermFrequency } from "./nearest.ts";
import { CountTrie, wittenBell } from "./ngram.ts";

const K = 6, FOLDS = 5;
const data = await adfa();
const quick = Deno.args.includes("--quick");
const normal = quick ? data.normal.filter((_, i) => i % 4 === 0) : data.normal;
const attack = data.attack;
const classes = [...new Set(attack.map((t) => t.group))].sort();

const mean = (s: readonly number[]) => s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;

type Views = Record<string, number>;

/** Every view of a set of traces, against models built from `train`. */
function viewsOf(train: readonly Labelled[], traces: readonly Labelled[]): Views[] {
  const trie = new CountTrie(K);
  for (const t of train) trie.add(t.nrs);
  trie.finish();
  const sam = new SuffixAutomaton(train.map((t) => t.nrs));
  const idx3 = new GramIndex(train.map((t) => t.nrs), [3]);
  const idx36 = new GramIndex(train.map((t) => t.nrs), [3, 4, 5, 6]);
  const idx6 = new GramIndex(train.map((t) => t.nrs), [6]);
  const idx1 = new GramIndex(train.map((t) => t.nrs), [1]);
  return traces.map((t) => {
    const wb = wittenBell(trie, t.nrs, K);
    const lengths = sam.match(t.nrs).lengths;
    const v3 = idx3.views(t.nrs), v36 = idx36.views(t.nrs), v6 = idx6.views(t.nrs), v1 = idx1.views(t.nrs);
    // Rare calls: calls (and distinct calls) that at most 1 % of the training traces make.
    const rareLimit = Math.max(1, Math.floor(0.01 * train.length));
    const key1 = (n: number) => Math.min(n, 399) + 1;
    const rare = t.nrs.filter((n) => idx1.df(key1(n)) <= rareLimit).length;
    const distinct = [...new Set(t.nrs)];
    return {
      wb: mean(wb),
      cover: mean(lengths.map((l) => 1 / Math.max(1, Math.min(l, 20)))),
      tfidf3: v3.cosine,
      missing3: v3.missing,
      missing36: v36.missing,
      missing6: v6.missing,
      jaccard36: v36.jaccard,
      novel36: v36.novel,
      tfidf36: v36.cosine,
      missingCalls: v1.missing,
      rareCalls: rare / Math.max(1, t.nrs.length),
      rareDistinct: distinct.filter((n) => idx1.df(key1(n)) <= rareLimit).length / Math.max(1, distinct.length),
    };
  });
}

const CACHE = `${ROOT}build/detect/round4-views${quick ? "-quick" : ""}.json`;
let views: { train: Views[]; normal: Views[]; attack: Views[] };
if (existsSync(CACHE)) views = JSON.parse(await Deno.readTextFile(CACHE));
else {
  const t0 = performance.now();
  const train: Views[] = [];
  for (let f = 0; f < FOLDS; f++) {
    const held = data.train.filter((_, i) => i % FOLDS === f);
    const fitted = viewsOf(data.train.filter((_, i) => i % FOLDS !== f), held);
    let j = 0;
    data.train.forEach((_, i) => {
      if (i % FOLDS === f) train[i] = fitted[j++];
    });
  }
  const [n, a] = [viewsOf(data.train, normal), viewsOf(data.train, attack)];
  views = { train, normal: n, attack: a };
  await Deno.mkdir(`${ROOT}build/detect`, { recursive: true });
  await Deno.writeTextFile(CACHE, JSON.stringify(views));
  console.log(`# views computed in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

let rows = 0;
/** Prints one row: name, AUC, DR@1 %, DR@10 %, AUC per attack class. */
function report(name: string, score: (v: Views) => number) {
  rows++;
  const ns = views.normal.map(score), as = views.attack.map(score);
  const perClass = classes.map((c) => `${c} ${auc(ns, as.filter((_, i) => attack[i].group === c)).toFixed(3)}`);
  console.log(
    [
      name.padEnd(60),
      `AUC ${auc(ns, as).toFixed(3)}`,
      `DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}`,
      `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
      perClass.join(", "),
    ].join("  "),
  );
}

const names = Object.keys(views.normal[0]);
/** Each view record's trace length (for the feature vectors below). */
const lengthOf = new Map<Views, number>([
  ...views.normal.map((v, i) => [v, normal[i].nrs.length] as const),
  ...views.attack.map((v, i) => [v, attack[i].nrs.length] as const),
]);
console.log("## single views (train/ only)");
for (const n of names) report(n, (v) => v[n]);

// Normalisation against the training traces' cross-fitted scores: per view, the share of training traces scoring
// below (ties half; +1/+2 so that a score above all of them is not certain), and a robust z-score of log(1 + x).
function ecdf(view: string) {
  const ref = views.train.map((v) => v[view]).sort((a, b) => a - b);
  return (x: number) => {
    let lo = 0, hi = ref.length;
    while (lo < hi) ref[(lo + hi) >> 1] < x ? lo = (lo + hi) / 2 + 1 | 0 : hi = (lo + hi) >> 1;
    let eq = lo;
    while (eq < ref.length && ref[eq] === x) eq++;
    return (lo + (eq - lo) / 2 + 1) / (ref.length + 2);
  };
}
function robustZ(view: string) {
  const ref = views.train.map((v) => Math.log1p(1000 * v[view])).sort((a, b) => a - b);
  const med = ref[ref.length >> 1];
  const mad = [...ref.map((x) => Math.abs(x - med))].sort((a, b) => a - b)[ref.length >> 1] || 1e-9;
  return (x: number) => (Math.log1p(1000 * x) - med) / (1.4826 * mad);
}
const E = Object.fromEntries(names.map((n) => [n, ecdf(n)]));
const Z = Object.fromEntries(names.map((n) => [n, robustZ(n)]));

const COMBOS: [string, string[]][] = [
  ["wb + cover", ["wb", "cover"]],
  ["wb + tfidf3", ["wb", "tfidf3"]],
  ["cover + tfidf3", ["cover", "tfidf3"]],
  ["wb + cover + tfidf3", ["wb", "cover", "tfidf3"]],
  ["wb + cover + missing36", ["wb", "cover", "missing36"]],
  ["wb + cover + tfidf3 + missing36", ["wb", "cover", "tfidf3", "missing36"]],
  ["wb + tfidf3 + rareCalls", ["wb", "tfidf3", "rareCalls"]],
  ["wb + cover + tfidf3 + missing36 + rareCalls", ["wb", "cover", "tfidf3", "missing36", "rareCalls"]],
];
console.log("## combinations, normalised against cross-fitted train/ scores");
for (const [name, vs] of COMBOS) {
  report(`mean rank: ${name}`, (v) => mean(vs.map((n) => E[n](v[n]))));
  report(`Fisher −Σ ln(1 − rank): ${name}`, (v) => -vs.reduce((s, n) => s + Math.log(1 - E[n](v[n])), 0));
  report(`robust z sum: ${name}`, (v) => vs.reduce((s, n) => s + Z[n](v[n]), 0));
  report(`min rank (all views agree): ${name}`, (v) => Math.min(...vs.map((n) => E[n](v[n]))));
  report(`max rank (any view): ${name}`, (v) => Math.max(...vs.map((n) => E[n](v[n]))));
}

/** Scores every normal and attack trace with `f` and reports the row. */
function reportTraces(name: string, f: (nrs: readonly number[]) => number) {
  rows++;
  const ns = normal.map((t) => f(t.nrs)), as = attack.map((t) => f(t.nrs));
  const perClass = classes.map((c) => `${c} ${auc(ns, as.filter((_, i) => attack[i].group === c)).toFixed(3)}`);
  console.log(
    [
      name.padEnd(60),
      `AUC ${auc(ns, as).toFixed(3)}`,
      `DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}`,
      `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
      perClass.join(", "),
    ].join("  "),
  );
}
const trainNrs = data.train.map((t) => t.nrs);

console.log("## TF-IDF profile variants: n, the count's weight, k nearest");
for (const n of [2, 3, 4, 5]) {
  for (const tf of ["raw", "log", "binary"] as TermFrequency[]) {
    const index = new GramIndex(trainNrs, [n], tf);
    for (const k of [1, 3]) reportTraces(`TF-IDF ${n}-gram, tf ${tf}, ${k}-NN`, (nrs) => index.views(nrs, k).cosine);
  }
}

console.log("## profiles of windows: each window of W calls (step W/2) against the nearest training window");
for (const w of [50, 100, 200]) {
  const cut = (nrs: readonly number[]) => {
    if (nrs.length <= w) return [nrs];
    const out: (readonly number[])[] = [];
    for (let j = 0; j + w <= nrs.length; j += w / 2) out.push(nrs.slice(j, j + w));
    return out;
  };
  const index = new GramIndex(trainNrs.flatMap(cut), [3]);
  const scores = new Map<readonly number[], number[]>();
  const of = (nrs: readonly number[]) => {
    let s = scores.get(nrs);
    if (!s) scores.set(nrs, s = cut(nrs).map((x) => index.views(x).cosine));
    return s;
  };
  reportTraces(`TF-IDF 3-gram windows of ${w}: mean over windows`, (nrs) => mean(of(nrs)));
  reportTraces(`TF-IDF 3-gram windows of ${w}: max over windows`, (nrs) => Math.max(...of(nrs)));
}

console.log("## repetition: occurrences of an n-gram beyond the most any training trace has, per call");
for (const n of [2, 3, 4, 6]) {
  const most = new Map<number, number>();
  for (const t of trainNrs) for (const [key, c] of grams(t, [n])) most.set(key, Math.max(most.get(key) ?? 0, c));
  for (const seenOnly of [true, false]) {
    reportTraces(`excess ${n}-grams${seenOnly ? ", seen in training only" : ", all"}`, (nrs) => {
      let excess = 0;
      for (const [key, c] of grams(nrs, [n])) {
        const m = most.get(key) ?? 0;
        if (!seenOnly || m > 0) excess += Math.max(0, c - m);
      }
      return excess / Math.max(1, nrs.length);
    });
  }
}

console.log("## dilated contexts (a count-based stand-in for a dilated convolution): WB over the calls at these lags");
for (const lags of [[1, 2, 3, 4, 5], [1, 2, 4, 8], [1, 2, 4, 8, 16], [1, 2, 3, 4, 8, 16], [1, 3, 9, 27]]) {
  // Per context (the calls at the first d lags, d = 0..lags.length): counts of what followed, their total, distinct.
  const follow = new Map<string, number>(), total = new Map<string, number>(), distinct = new Map<string, number>();
  const contexts = (nrs: readonly number[], i: number) => {
    const out = [""];
    for (const l of lags) out.push(`${out[out.length - 1]},${i - l >= 0 ? nrs[i - l] : -1}`);
    return out;
  };
  for (const t of trainNrs) {
    for (let i = 0; i < t.length; i++) {
      for (const h of contexts(t, i)) {
        const hw = `${h}>${t[i]}`;
        if (!follow.has(hw)) distinct.set(h, (distinct.get(h) ?? 0) + 1);
        follow.set(hw, (follow.get(hw) ?? 0) + 1);
        total.set(h, (total.get(h) ?? 0) + 1);
      }
    }
  }
  reportTraces(`dilated WB, lags ${lags.join(",")}: mean surprisal`, (nrs) => {
    let bits = 0;
    for (let i = 0; i < nrs.length; i++) {
      let p = 1 / 512;
      for (const h of contexts(nrs, i)) {
        const c = total.get(h) ?? 0;
        if (c === 0) break;
        const t = distinct.get(h)!;
        p = ((follow.get(`${h}>${nrs[i]}`) ?? 0) + t * p) / (c + t);
      }
      bits -= Math.log2(p);
    }
    return bits / Math.max(1, nrs.length);
  });
}

console.log("## one-class models over trace-level feature vectors, fitted on the cross-fitted train/ views");
const FEATURES = ["wb", "cover", "tfidf3", "missing36", "novel36"];
const vector = (v: Views, length: number) => [...FEATURES.map((n) => v[n]), Math.log(Math.max(1, length))];
const trainX = views.train.map((v, i) => vector(v, data.train[i].nrs.length));
const mu = trainX[0].map((_, d) => mean(trainX.map((x) => x[d])));
const sd = trainX[0].map((_, d) => Math.sqrt(mean(trainX.map((x) => (x[d] - mu[d]) ** 2))) || 1);
const standard = (x: number[]) => x.map((v, d) => (v - mu[d]) / sd[d]);
const trainZ = trainX.map(standard);
const knn5 = (x: number[]) => {
  const z = standard(x);
  const ds = trainZ.map((y) => Math.sqrt(y.reduce((s, v, d) => s + (v - z[d]) ** 2, 0))).sort((a, b) => a - b);
  return mean(ds.slice(0, 5));
};
report("5-NN distance, standardised views + log length", (v) => knn5(vector(v, lengthOf.get(v)!)));
const forest = isolationForest(trainX, 200, 256);
report("isolation forest (200 trees of 256), views + log length", (v) => forest(vector(v, lengthOf.get(v)!)));

console.log("## diagnostic, not a candidate (trains on dev-normal): the nearest profile with more normal data");
// Where the normal traces far from train/ come from: trained on train/ + every second dev-normal trace, scored on the
// others (and all attack traces), as round3.ts's Witten–Bell diagnostic.
{
  const heldOut = data.normal.filter((_, i) => i % 2 === 1 && (!quick || i % 4 === 1));
  for (
    const [name, traces] of [["train/", trainNrs], ["train/ + even dev-normal", [
      ...trainNrs,
      ...data.normal.filter((_, i) => i % 2 === 0).map((t) => t.nrs),
    ]]] as const
  ) {
    const index = new GramIndex(traces, [3]);
    const ns = heldOut.map((t) => index.views(t.nrs).cosine), as = attack.map((t) => index.views(t.nrs).cosine);
    rows++;
    console.log(
      `diagnostic: TF-IDF 3-gram 1-NN on ${name}, odd dev-normal`.padEnd(60),
      `AUC ${auc(ns, as).toFixed(3)}  DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}  ` +
        `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
    );
  }
}

// Are the normal traces far from train/ unlike anything, or like other normal traces? For the tenth of dev-normal
// farthest from train/ (TF-IDF 3-gram 1-NN), the distance to the nearest other dev-normal trace.
{
  const index = new GramIndex(trainNrs, [3]), among = new GramIndex(normal.map((t) => t.nrs), [3]);
  const far = normal.map((t) => ({ t, d: index.views(t.nrs).cosine })).sort((a, b) => b.d - a.d)
    .slice(0, Math.ceil(normal.length / 10));
  // The nearest other: the second largest cosine (the largest is the trace itself, or a copy of it).
  const other = far.map(({ t }) => 1 - (among.views(t.nrs, 2).top[1] ?? 0)).sort((a, b) => a - b);
  const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `diagnostic: the ${far.length} dev-normal traces farthest from train/: distance to train/ median ` +
      `${median(far.map((f) => f.d)).toFixed(3)}, to the nearest other dev-normal trace median ` +
      `${median(other).toFixed(3)}; within 0.1 of another dev-normal trace: ` +
      `${(other.filter((d) => d < 0.1).length / other.length).toFixed(3)}; attack traces' distance to train/ median ` +
      `${median(attack.map((t) => index.views(t.nrs).cosine)).toFixed(3)}`,
  );
}

// How far the best of the round is from 0.90: a bootstrap over the traces (normal and attack resampled apart, 1,000
// times, the seeded PRNG) of the TF-IDF 3-gram 1-NN AUC.
{
  const index = new GramIndex(trainNrs, [3]);
  const ns = normal.map((t) => index.views(t.nrs).cosine), as = attack.map((t) => index.views(t.nrs).cosine);
  const random = prng(90);
  const resample = (xs: readonly number[]) => xs.map(() => xs[Math.floor(random() * xs.length)]);
  const aucs = Array.from({ length: 1000 }, () => auc(resample(ns), resample(as))).sort((a, b) => a - b);
  console.log(
    `bootstrap: TF-IDF 3-gram 1-NN AUC ${auc(ns, as).toFixed(3)}, 95 % interval ` +
      `[${aucs[25].toFixed(3)}, ${aucs[974].toFixed(3)}]; resamples at or above 0.90: ${
        aucs.filter((a) => a >= 0.9).length
      }`,
  );
}

console.log(`# ${rows} rows`);

/** A deterministic PRNG (mulberry32), so that the forest is the same on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An isolation forest (Liu, Ting and Zhou 2008): random axis-parallel splits isolate an outlier in few steps; the
 * score 2^(−mean path length / c(ψ)) is larger for points that are easier to isolate.
 */
function isolationForest(xs: readonly number[][], trees: number, psi: number): (x: number[]) => number {
  const random = prng(18);
  const c = (n: number) => n <= 1 ? 0 : 2 * (Math.log(n - 1) + 0.5772156649) - 2 * (n - 1) / n;
  type Tree = { size: number } | { dim: number; split: number; left: Tree; right: Tree };
  const grow = (points: number[][], depth: number, maxDepth: number): Tree => {
    if (depth >= maxDepth || points.length <= 1) return { size: points.length };
    const dim = Math.floor(random() * points[0].length);
    const lo = Math.min(...points.map((p) => p[dim])), hi = Math.max(...points.map((p) => p[dim]));
    if (lo === hi) return { size: points.length };
    const split = lo + random() * (hi - lo);
    return {
      dim,
      split,
      left: grow(points.filter((p) => p[dim] < split), depth + 1, maxDepth),
      right: grow(points.filter((p) => p[dim] >= split), depth + 1, maxDepth),
    };
  };
  const forest = Array.from({ length: trees }, () => {
    const sample = [...xs].map((x) => [random(), x] as const).sort((a, b) => a[0] - b[0]).slice(0, psi);
    return grow(sample.map(([, x]) => x), 0, Math.ceil(Math.log2(psi)));
  });
  const path = (x: number[], t: Tree, depth: number): number =>
    "size" in t ? depth + c(t.size) : path(x, x[t.dim] < t.split ? t.left : t.right, depth + 1);
  return (x) => 2 ** (-mean(forest.map((t) => path(x, t, 0))) / c(psi));
}
