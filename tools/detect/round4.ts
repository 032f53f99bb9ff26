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
import { GramIndex } from "./nearest.ts";
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
console.log(`# ${rows} rows`);
