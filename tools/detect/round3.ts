/**
 * The third round of issue 18's candidates on ADFA-LD's development part
 * (docs/detect.md, "A third round"): ideas beyond a fixed-order next-call
 * model, each trained on train/ only and scored as one number per trace
 * (larger: more abnormal). Deterministic; prints AUC, the detection rates
 * at 1 % and 10 % false alarms, the attack runs with a trace above the 1 %
 * threshold (the UNM papers' counting, per intrusion) and the AUC per
 * attack class.
 *
 *   deno run --allow-all tools/detect/round3.ts [--quick]
 *
 * --quick scores every fourth dev-normal trace; without it, all of them.
 *
 * @module
 */
import { SuffixAutomaton } from "./cover.ts";
import { adfa, type Labelled } from "./data.ts";
import { auc, detectionAt } from "./metrics.ts";
import { CountTrie, stideMisses, wittenBell } from "./ngram.ts";

const K = 6;
const data = await adfa();
const quick = Deno.args.includes("--quick");
const normal = quick ? data.normal.filter((_, i) => i % 4 === 0) : data.normal;
const attack = data.attack;
const classes = [...new Set(attack.map((t) => t.group))].sort();

const mean = (s: readonly number[]) => s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;
const quantile = (s: readonly number[], q: number) => {
  const sorted = [...s].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
};

/** The attack run a trace belongs to (dev-attack/<Class>_<run>/...). */
const runOf = (t: Labelled) => /dev-attack\/([^/]+)\//.exec(t.id)?.[1] ?? t.id;

/**
 * Attack runs with at least one trace above the threshold at `fpr` false alarms, and what scores unrelated to the
 * traces would give on average (each trace of a run above the threshold with probability `fpr`).
 */
function runsDetected(ns: readonly number[], as: readonly number[], attacks: readonly Labelled[], fpr: number) {
  const { threshold } = detectionAt(ns, as, fpr);
  const runs = new Map<string, { traces: number; hit: boolean }>();
  attacks.forEach((t, i) => {
    const r = runs.get(runOf(t)) ?? { traces: 0, hit: false };
    runs.set(runOf(t), { traces: r.traces + 1, hit: r.hit || as[i] > threshold });
  });
  const hits = [...runs.values()].filter((r) => r.hit).length;
  const chance = [...runs.values()].reduce((sum, r) => sum + 1 - (1 - fpr) ** r.traces, 0);
  return `${hits}/${runs.size} (chance ${chance.toFixed(1)})`;
}

/** Prints one row: the candidate's name, AUC, DR@1 %, DR@10 %, attack runs caught at 1 %, AUC per attack class. */
function report(name: string, ns: readonly number[], as: readonly number[], attacks: readonly Labelled[] = attack) {
  const perClass = classes.map((c) => `${c} ${auc(ns, as.filter((_, i) => attacks[i].group === c)).toFixed(3)}`);
  console.log(
    [
      name.padEnd(58),
      `AUC ${auc(ns, as).toFixed(3)}`,
      `DR@1% ${detectionAt(ns, as, 0.01).detectionRate.toFixed(3)}`,
      `DR@10% ${detectionAt(ns, as, 0.1).detectionRate.toFixed(3)}`,
      `runs@1% ${runsDetected(ns, as, attacks, 0.01)}`,
      perClass.join(", "),
    ].join("  "),
  );
}

/** Scores every normal and attack trace with `f` and reports the row. */
function row(name: string, f: (t: Labelled, i: number, group: "normal" | "attack") => number) {
  report(name, normal.map((t, i) => f(t, i, "normal")), attack.map((t, i) => f(t, i, "attack")));
}

function trieOf(traces: readonly Labelled[], k = K): CountTrie {
  const trie = new CountTrie(k);
  for (const t of traces) trie.add(t.nrs);
  trie.finish();
  return trie;
}

// The baseline: Witten–Bell k=6, mean surprisal (what ngram.wasm runs), its per-call surprisals kept for reuse.
const global = trieOf(data.train);
const wb = {
  normal: normal.map((t) => wittenBell(global, t.nrs, K)),
  attack: attack.map((t) => wittenBell(global, t.nrs, K)),
};
const wbOf = (i: number, g: "normal" | "attack") => wb[g][i];
row("Witten–Bell k=6, mean surprisal (baseline)", (_, i, g) => mean(wbOf(i, g)));
row("stide k=6, mismatch rate (for comparison)", (t) => mean(stideMisses(global, t.nrs, K)));

// 1. Sequence covering: unbounded matches against the training traces.
const sam = new SuffixAutomaton(data.train.map((t) => t.nrs));
const matches = {
  normal: normal.map((t) => sam.match(t.nrs)),
  attack: attack.map((t) => sam.match(t.nrs)),
};
row("covering: greedy pieces per call", (t, i, g) => matches[g][i].pieces / Math.max(1, t.nrs.length));
for (const cap of [6, 10, 20, 100]) {
  row(
    `covering: mean 1/min(L, ${cap}), L the longest match ending at a call`,
    (_, i, g) => mean(matches[g][i].lengths.map((l) => 1 / Math.max(1, Math.min(l, cap)))),
  );
}
row(
  "covering: mean −ln min(L, 10)",
  (_, i, g) => -mean(matches[g][i].lengths.map((l) => Math.log(Math.max(1, Math.min(l, 10))))),
);
row("covering: share of calls with L < 20", (_, i, g) => mean(matches[g][i].lengths.map((l) => l < 20 ? 1 : 0)));

// 2. Start-up weighted: the first calls of a process (its start-up) counted more.
for (const [first, weight] of [[1, 0.3], [1, 1], [10, 0.3], [20, 1]]) {
  row(
    `WB k=6: mean + ${weight} × mean of the first ${first} call(s)`,
    (_, i, g) => mean(wbOf(i, g)) + weight * mean(wbOf(i, g).slice(0, first)),
  );
}

// 3. A cache model: the global model mixed with a Witten–Bell model (k=3) of the process's own calls so far,
//    so that a novel but repeated loop stops being surprising after its first rounds.
function ownHistoryProbabilities(nrs: readonly number[], k: number): number[] {
  const counts = new Map<number, number>(), contexts = new Map<number, number>(), followers = new Map<number, number>();
  const s = [...Array(k - 1).fill(0), ...nrs.map((n) => Math.min(n, 1022) + 1)];
  const key = (from: number, to: number) => {
    let x = 0;
    for (let j = from; j < to; j++) x = x * 1024 + s[j];
    return x;
  };
  const out: number[] = [];
  for (let end = k - 1; end < s.length; end++) {
    let p = 1 / 1024;
    for (let len = 0; len < k; len++) {
      const h = key(end - len, end);
      const ch = contexts.get(len === 0 ? -1 : h) ?? 0;
      if (ch === 0) break;
      const t = followers.get(len === 0 ? -1 : h) ?? 0;
      p = ((counts.get(key(end - len, end + 1)) ?? 0) + t * p) / (ch + t);
    }
    out.push(p);
    for (let len = 0; len < k; len++) {
      const h = len === 0 ? -1 : key(end - len, end);
      const g = key(end - len, end + 1);
      if (!counts.has(g)) followers.set(h, (followers.get(h) ?? 0) + 1);
      counts.set(g, (counts.get(g) ?? 0) + 1);
      contexts.set(h, (contexts.get(h) ?? 0) + 1);
    }
  }
  return out;
}
const own = {
  normal: normal.map((t) => ownHistoryProbabilities(t.nrs, 3)),
  attack: attack.map((t) => ownHistoryProbabilities(t.nrs, 3)),
};
for (const lambda of [0.8, 0.9, 0.97]) {
  row(
    `cache: ${lambda} × WB k=6 + ${(1 - lambda).toFixed(2)} × own-history WB k=3`,
    (_, i, g) => mean(wbOf(i, g).map((bits, j) => -Math.log2(lambda * 2 ** -bits + (1 - lambda) * own[g][i][j]))),
  );
}

// 4. Programs stood in for by clusters: k-means on the training traces' call histograms (square roots of the
//    shares), a Witten–Bell model per cluster mixed with the global one; a trace scores against its best cluster.
const HIST = 350;
function histogram(nrs: readonly number[]): Float64Array {
  const h = new Float64Array(HIST);
  for (const n of nrs) h[Math.min(n, HIST - 1)]++;
  return h.map((x) => Math.sqrt(x / Math.max(1, nrs.length)));
}
const distance2 = (a: Float64Array, b: Float64Array) => a.reduce((s, x, j) => s + (x - b[j]) ** 2, 0);
function kmeans(xs: readonly Float64Array[], c: number, rounds = 50): number[] {
  // Deterministic seeds: evenly spaced training traces.
  const centres = Array.from({ length: c }, (_, j) => Float64Array.from(xs[Math.floor(j * xs.length / c)]));
  let labels: number[] = [];
  for (let r = 0; r < rounds; r++) {
    labels = xs.map((x) =>
      centres.reduce((best, ctr, j) => distance2(x, ctr) < distance2(x, centres[best]) ? j : best, 0)
    );
    centres.forEach((ctr, j) => {
      const members = xs.filter((_, i) => labels[i] === j);
      if (members.length) ctr.set(members[0].map((_, d) => mean(members.map((m) => m[d]))));
    });
  }
  return labels;
}
const CLUSTERS = 8, MIX = 0.3;
const labels = kmeans(data.train.map((t) => histogram(t.nrs)), CLUSTERS);
const clusterTries = Array.from({ length: CLUSTERS }, (_, c) => trieOf(data.train.filter((_, i) => labels[i] === c)));
row(
  `clusters: ${CLUSTERS} k-means programs, ${MIX} × global + ${1 - MIX} × cluster WB k=6, best cluster`,
  (t, i, g) =>
    Math.min(...clusterTries.map((trie) => {
      const local = wittenBell(trie, t.nrs, K);
      return mean(wbOf(i, g).map((bits, j) => -Math.log2(MIX * 2 ** -bits + (1 - MIX) * 2 ** -local[j])));
    })),
);

// 5. Two stages: per-trace features of the WB surprisals (mean, median, 90th percentile, shares above 2 and 6 bits),
//    the training traces' own from 5-fold cross-fitting; a trace's score is its mean distance to the 20 nearest.
const FOLDS = 5;
const features = (bits: readonly number[]) => [
  mean(bits),
  quantile(bits, 0.5),
  quantile(bits, 0.9),
  mean(bits.map((b) => b > 2 ? 1 : 0)),
  mean(bits.map((b) => b > 6 ? 1 : 0)),
];
const trainFeatures: number[][] = [];
for (let f = 0; f < FOLDS; f++) {
  const trie = trieOf(data.train.filter((_, i) => i % FOLDS !== f));
  data.train.forEach((t, i) => {
    if (i % FOLDS === f) trainFeatures[i] = features(wittenBell(trie, t.nrs, K));
  });
}
const mu = trainFeatures[0].map((_, d) => mean(trainFeatures.map((x) => x[d])));
const sd = trainFeatures[0].map((_, d) => Math.sqrt(mean(trainFeatures.map((x) => (x[d] - mu[d]) ** 2))) || 1);
const standard = (x: readonly number[]) => x.map((v, d) => (v - mu[d]) / sd[d]);
const trainStandard = trainFeatures.map(standard);
row("two stages: WB-surprisal features, mean distance to 20 nearest", (_, i, g) => {
  const x = standard(features(wbOf(i, g)));
  const ds = trainStandard.map((y) => Math.sqrt(y.reduce((s, v, d) => s + (v - x[d]) ** 2, 0))).sort((a, b) => a - b);
  return mean(ds.slice(0, 20));
});

// 6. Distinct novel n-grams (each unseen 6-gram counted once per trace), per call.
const seen6 = new Set<string>();
for (const t of data.train) for (let j = 0; j + K <= t.nrs.length; j++) seen6.add(t.nrs.slice(j, j + K).join(","));
row("distinct unseen 6-grams per call", (t) => {
  const novel = new Set<string>();
  for (let j = 0; j + K <= t.nrs.length; j++) {
    const g = t.nrs.slice(j, j + K).join(",");
    if (!seen6.has(g)) novel.add(g);
  }
  return novel.size / Math.max(1, t.nrs.length);
});

// 7a. A frequency profile with TF-IDF weights: a trace as the counts of its n-grams, each weighted by
//     ln((N + 1) / (df + 1)) + 1 (df: the training traces holding it; an unseen one weighs most), and its score 1 − the
//     cosine to the nearest training trace. The earlier rounds' profiles (raw counts) reached 0.761–0.839.
function tfidf(n: number) {
  const gramsOf = (nrs: readonly number[]) => {
    const m = new Map<number, number>();
    for (let j = 0; j + n <= nrs.length; j++) {
      let key = 0;
      for (let d = 0; d < n; d++) key = key * 1024 + Math.min(nrs[j + d], 1023);
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    return m;
  };
  const grams = data.train.map((t) => gramsOf(t.nrs));
  const df = new Map<number, number>();
  for (const g of grams) for (const key of g.keys()) df.set(key, (df.get(key) ?? 0) + 1);
  const N = data.train.length;
  const weighted = (g: Map<number, number>) => {
    const v = [...g].map(([key, count]) => [key, count * (Math.log((N + 1) / ((df.get(key) ?? 0) + 1)) + 1)] as const);
    const norm = Math.sqrt(v.reduce((sum, [, x]) => sum + x * x, 0)) || 1;
    return v.map(([key, x]) => [key, x / norm] as const);
  };
  // An inverted index: per n-gram, the training traces holding it and their weights.
  const index = new Map<number, [number, number][]>();
  grams.forEach((g, j) => {
    for (const [key, x] of weighted(g)) {
      let list = index.get(key);
      if (!list) index.set(key, list = []);
      list.push([j, x]);
    }
  });
  return (nrs: readonly number[]) => {
    const dot = new Float64Array(N);
    for (const [key, x] of weighted(gramsOf(nrs))) for (const [j, y] of index.get(key) ?? []) dot[j] += x * y;
    return 1 - Math.max(...dot);
  };
}
const nearestProfile: Record<number, { normal: number[]; attack: number[] }> = {};
for (const n of [3, 4]) {
  const score = tfidf(n);
  nearestProfile[n] = { normal: normal.map((t) => score(t.nrs)), attack: attack.map((t) => score(t.nrs)) };
  row(`TF-IDF ${n}-gram profile, 1 − cosine to the nearest training trace`, (_, i, g) => nearestProfile[n][g][i]);
}
const covering20 = (i: number, g: "normal" | "attack") =>
  mean(matches[g][i].lengths.map((l) => 1 / Math.max(1, Math.min(l, 20))));
row(
  "product: TF-IDF 3-gram profile × covering mean 1/min(L, 20)",
  (_, i, g) => nearestProfile[3][g][i] * covering20(i, g),
);
row(
  "product: TF-IDF 3-gram × 4-gram profiles × covering",
  (_, i, g) => nearestProfile[3][g][i] * nearestProfile[4][g][i] * covering20(i, g),
);

// 7. A diagnostic, not a candidate (it trains on development traces): is more normal data what is missing?
//    WB k=6 trained on train/ alone and on train/ plus every second dev-normal trace, both scored on the others.
const heldOut = data.normal.filter((_, i) => i % 2 === 1 && (!quick || i % 4 === 1));
for (
  const [name, traces] of [["train/", data.train], ["train/ + even dev-normal", [
    ...data.train,
    ...data.normal.filter((_, i) => i % 2 === 0),
  ]]] as const
) {
  const trie = trieOf(traces);
  report(
    `diagnostic: WB k=6 trained on ${name}, odd dev-normal`,
    heldOut.map((t) => mean(wittenBell(trie, t.nrs, K))),
    attack.map((t) => mean(wittenBell(trie, t.nrs, K))),
  );
}

// 8. Covering with the start-up weighting of 2 (the first call's WB surprisal, in bits, scaled to the covering's 0..1).
for (const weight of [0.01, 0.03, 0.1]) {
  row(
    `covering mean 1/min(L, 20) + ${weight} × the first call's WB bits`,
    (_, i, g) =>
      mean(matches[g][i].lengths.map((l) => 1 / Math.max(1, Math.min(l, 20)))) + weight * (wbOf(i, g)[0] ?? 0),
  );
}
