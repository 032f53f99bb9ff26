/**
 * Nearest-training-trace views for tools/detect/round4.ts: the training
 * traces as sets (or TF-IDF profiles) of their n-grams in an inverted index,
 * and a trace's distance to the nearest of them. Both can be kept up to date
 * call by call (a counter per training trace, raised when the trace meets an
 * n-gram for the first time), which is what an online wrapper would need.
 *
 * @module
 */

/** Symbols are call numbers + 1 below RADIX, so n-grams of different lengths never share a key. */
const RADIX = 401;

/** The distinct n-grams (each n in `orders`) of a trace, as numeric keys, with their counts. */
export function grams(nrs: readonly number[], orders: readonly number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const n of orders) {
    for (let j = 0; j + n <= nrs.length; j++) {
      let key = 0;
      for (let d = 0; d < n; d++) key = key * RADIX + Math.min(nrs[j + d], RADIX - 2) + 1;
      m.set(key, (m.get(key) ?? 0) + 1);
    }
  }
  return m;
}

/** How a profile weighs an n-gram's count c in a trace: c, 1 + ln c, or 1. */
export type TermFrequency = "raw" | "log" | "binary";

const weigh = (count: number, tf: TermFrequency) => tf === "raw" ? count : tf === "log" ? 1 + Math.log(count) : 1;

/** An inverted index of training traces' n-grams (the `orders` given). */
export class GramIndex {
  readonly traces: number;
  readonly orders: readonly number[];
  readonly tf: TermFrequency;
  /** Per n-gram key: the training traces holding it, and its TF-IDF weight in each (unit-length profiles). */
  readonly #postings = new Map<number, { ids: number[]; tfidf: number[] }>();
  /** Per training trace: its number of distinct n-grams. */
  readonly #sizes: number[];

  constructor(train: readonly (readonly number[])[], orders: readonly number[], tf: TermFrequency = "raw") {
    this.traces = train.length;
    this.orders = orders;
    this.tf = tf;
    const all = train.map((t) => grams(t, orders));
    this.#sizes = all.map((g) => g.size);
    const df = new Map<number, number>();
    for (const g of all) for (const key of g.keys()) df.set(key, (df.get(key) ?? 0) + 1);
    all.forEach((g, id) => {
      const w = [...g].map(([key, count]) => [key, weigh(count, tf) * this.idf(df.get(key) ?? 0)] as const);
      const norm = Math.sqrt(w.reduce((s, [, x]) => s + x * x, 0)) || 1;
      for (const [key, x] of w) {
        let p = this.#postings.get(key);
        if (!p) this.#postings.set(key, p = { ids: [], tfidf: [] });
        p.ids.push(id);
        p.tfidf.push(x / norm);
      }
    });
  }

  /** ln((N + 1) / (df + 1)) + 1: an n-gram no training trace holds weighs most. */
  idf(df: number): number {
    return Math.log((this.traces + 1) / (df + 1)) + 1;
  }

  /** How many training traces hold the n-gram. */
  df(key: number): number {
    return this.#postings.get(key)?.ids.length ?? 0;
  }

  /**
   * Views of one trace against its nearest training trace:
   * `missing`: 1 − max over training traces of the share of the trace's distinct n-grams that training trace holds
   * (containment; it only grows by new distinct n-grams, so it can be kept online);
   * `jaccard`: 1 − the largest Jaccard similarity of the two sets;
   * `cosine`: 1 − the mean of the `k` largest cosines of the TF-IDF profiles;
   * `novel`: the share of the trace's distinct n-grams that no training trace holds;
   * `top`: the `k` largest cosines, largest first.
   */
  views(
    nrs: readonly number[],
    k = 1,
  ): { missing: number; jaccard: number; cosine: number; novel: number; top: number[] } {
    const g = grams(nrs, this.orders);
    if (g.size === 0) return { missing: 0, jaccard: 0, cosine: 0, novel: 0, top: [] };
    const shared = new Int32Array(this.traces);
    const dot = new Float64Array(this.traces);
    let novel = 0, norm = 0;
    const weighted: [number, number][] = [];
    for (const [key, count] of g) {
      const p = this.#postings.get(key);
      const x = weigh(count, this.tf) * this.idf(p?.ids.length ?? 0);
      norm += x * x;
      weighted.push([key, x]);
      if (!p) {
        novel++;
        continue;
      }
      for (let i = 0; i < p.ids.length; i++) shared[p.ids[i]]++;
    }
    norm = Math.sqrt(norm) || 1;
    for (const [key, x] of weighted) {
      const p = this.#postings.get(key);
      if (!p) continue;
      for (let i = 0; i < p.ids.length; i++) dot[p.ids[i]] += (x / norm) * p.tfidf[i];
    }
    let contain = 0, jac = 0;
    for (let j = 0; j < this.traces; j++) {
      contain = Math.max(contain, shared[j] / g.size);
      jac = Math.max(jac, shared[j] / (g.size + this.#sizes[j] - shared[j]));
    }
    const top = k === 1 ? [Math.max(...dot)] : [...dot].sort((a, b) => b - a).slice(0, k);
    const cos = top.reduce((a, b) => a + b, 0) / top.length;
    return { missing: 1 - contain, jaccard: 1 - jac, cosine: 1 - cos, novel: novel / g.size, top };
  }
}
