import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { GramIndex, grams, type TermFrequency } from "../../../tools/detect/nearest.ts";

/** A small deterministic generator (a linear congruential one), so that a failure reproduces. */
function random(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** The n-grams of a trace as strings with their counts, for the brute-force reference. */
function counts(nrs: readonly number[], orders: readonly number[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of orders) {
    for (let i = 0; i + n <= nrs.length; i++) {
      const key = nrs.slice(i, i + n).join(",");
      m.set(key, (m.get(key) ?? 0) + 1);
    }
  }
  return m;
}

/** Brute force of GramIndex.views: every training trace compared with the trace, as the definitions say. */
function reference(train: readonly number[][], nrs: readonly number[], orders: number[], tf: TermFrequency, k: number) {
  const weigh = (c: number) => tf === "raw" ? c : tf === "log" ? 1 + Math.log(c) : 1;
  const all = train.map((t) => counts(t, orders));
  const df = (g: string) => all.filter((m) => m.has(g)).length;
  const idf = (g: string) => Math.log((train.length + 1) / (df(g) + 1)) + 1;
  const unit = (m: Map<string, number>) => {
    const v = new Map([...m].map(([g, c]) => [g, weigh(c) * idf(g)]));
    const norm = Math.sqrt([...v.values()].reduce((s, x) => s + x * x, 0)) || 1;
    return new Map([...v].map(([g, x]) => [g, x / norm]));
  };
  const x = counts(nrs, orders);
  const ux = unit(x);
  const cosines = all.map((m) => {
    const um = unit(m);
    return [...ux].reduce((s, [g, w]) => s + w * (um.get(g) ?? 0), 0);
  }).sort((a, b) => b - a).slice(0, k);
  const shared = all.map((m) => [...x.keys()].filter((g) => m.has(g)).length);
  return {
    missing: 1 - Math.max(...shared.map((s) => s / x.size)),
    jaccard: 1 - Math.max(...shared.map((s, j) => s / (x.size + all[j].size - s))),
    cosine: 1 - cosines.reduce((a, b) => a + b, 0) / cosines.length,
    novel: [...x.keys()].filter((g) => df(g) === 0).length / x.size,
  };
}

Deno.test("GramIndex.views: containment, Jaccard, TF-IDF cosine and novelty equal a brute-force comparison", () => {
  const next = random(18);
  const trace = (n: number, alphabet: number) => Array.from({ length: n }, () => Math.floor(next() * alphabet));
  const tfs: TermFrequency[] = ["raw", "log", "binary"];
  for (let round = 0; round < 30; round++) {
    const alphabet = 2 + round % 4;
    const orders = round % 2 ? [3] : [2, 3, 4];
    const tf = tfs[round % 3];
    const k = 1 + round % 3;
    const train = Array.from({ length: 2 + round % 5 }, () => trace(4 + Math.floor(next() * 40), alphabet));
    const probe = trace(5 + Math.floor(next() * 40), alphabet + 1);
    const got = new GramIndex(train, orders, tf).views(probe, k);
    const want = reference(train, probe, orders, tf, k);
    for (const field of ["missing", "jaccard", "cosine", "novel"] as const) {
      ok(Math.abs(got[field] - want[field]) < 1e-9, `round ${round} ${field}: got ${got[field]}, want ${want[field]}`);
    }
  }
});

Deno.test("GramIndex.views: a copy of a training trace is at distance 0, a trace of unseen calls at 1", () => {
  const index = new GramIndex([[1, 2, 3, 1, 2, 3], [4, 5, 6, 4]], [3]);
  const copy = index.views([1, 2, 3, 1, 2, 3]);
  ok(Math.abs(copy.cosine) < 1e-12 && copy.missing === 0 && copy.jaccard === 0 && copy.novel === 0);
  assertEquals(index.views([7, 8, 9, 7]), { missing: 1, jaccard: 1, cosine: 1, novel: 1, top: [0] });
});

Deno.test("grams: n-grams of different lengths never share a key", () => {
  // [1, 2] as a 2-gram and [0, 1, 2] as a 3-gram would collide if symbols were the call numbers themselves.
  const keys = [...grams([0, 1, 2], [2, 3]).keys()];
  assertEquals(new Set(keys).size, keys.length);
  assertEquals(keys.length, 3);
});
