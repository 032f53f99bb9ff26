/**
 * Prototype n-gram models in TypeScript, for choosing a detector by
 * measurement (tools/detect/eval.ts): a count trie over system-call
 * n-grams of the training traces, and per-call surprisals (−log2 P) under
 * stide's mismatch rule, Witten–Bell and interpolated Kneser–Ney
 * smoothing. The chosen model runs in AssemblyScript in the wrapper; these
 * are only for measurement.
 *
 * @module
 */

/** Symbol 0 is "before the trace" (padding); a call numbered n is n + 1. */
const BOS = 0;
const RADIX = 1024;

/** A trie of n-gram counts up to order `maxOrder`: node 0 is the empty context. */
export class CountTrie {
  readonly maxOrder: number;
  /** child id by parent * RADIX + symbol. */
  readonly #child = new Map<number, number>();
  /** Per node: occurrences of the n-gram it stands for (as a context: of it followed by anything). */
  readonly count: number[] = [0];
  /** Per node: distinct followers. */
  readonly followers: number[] = [0];
  /** Per node: Kneser–Ney continuation count N1+(• ngram): distinct left extensions. */
  readonly continuation: number[] = [0];
  /** Per node: sum of continuation counts of its children (the KN denominator for a lower order). */
  readonly childContinuation: number[] = [0];
  /** Per node: sum of its children's counts (its occurrences as a context). */
  readonly childCount: number[] = [0];
  readonly depth: number[] = [0];
  readonly parent: number[] = [-1];
  readonly sym: number[] = [-1];

  constructor(maxOrder: number) {
    this.maxOrder = maxOrder;
  }

  child(node: number, sym: number): number {
    return this.#child.get(node * RADIX + sym) ?? -1;
  }

  #childOrAdd(node: number, sym: number): number {
    const key = node * RADIX + sym;
    let c = this.#child.get(key);
    if (c === undefined) {
      c = this.count.length;
      this.#child.set(key, c);
      this.count.push(0);
      this.followers.push(0);
      this.continuation.push(0);
      this.childContinuation.push(0);
      this.childCount.push(0);
      this.depth.push(this.depth[node] + 1);
      this.parent.push(node);
      this.sym.push(sym);
      this.followers[node]++;
    }
    return c;
  }

  /**
   * Adds every n-gram (n ≤ maxOrder) of one trace, with BOS padding at its start; with `oncePerTrace`, an n-gram
   * counts at most once per trace (document frequency, not occurrences).
   */
  add(nrs: readonly number[], oncePerTrace = false): void {
    const seen = oncePerTrace ? new Set<number>() : undefined;
    const syms = [...Array(this.maxOrder - 1).fill(BOS), ...nrs.map((n) => Math.min(n, RADIX - 2) + 1)];
    for (let end = this.maxOrder - 1; end < syms.length; end++) {
      // n-grams ending at `end`, read left to right from each start.
      for (let start = end; start >= end - this.maxOrder + 1; start--) {
        let node = 0;
        for (let i = start; i <= end; i++) node = this.#childOrAdd(node, syms[i]);
        if (seen?.has(node)) continue;
        seen?.add(node);
        this.count[node]++;
      }
      this.count[0]++;
    }
  }

  /** Computes the Kneser–Ney continuation counts once all traces are added. */
  finish(): void {
    // For every n-gram x·g (n ≥ 2) the suffix g gains one distinct left extension.
    for (let node = 1; node < this.count.length; node++) {
      if (this.depth[node] < 2) continue;
      const path: number[] = [];
      for (let n = node; n > 0; n = this.parent[n]) path.unshift(this.sym[n]);
      let suffix = 0;
      for (let i = 1; i < path.length; i++) suffix = this.child(suffix, path[i]);
      this.continuation[suffix]++;
    }
    for (let node = 1; node < this.count.length; node++) {
      this.childContinuation[this.parent[node]] += this.continuation[node];
      this.childCount[this.parent[node]] += this.count[node];
    }
  }

  /** The node of ngram syms[from..to] (inclusive), or -1. */
  find(syms: readonly number[], from: number, to: number): number {
    let node = 0;
    for (let i = from; i <= to && node >= 0; i++) node = this.child(node, syms[i]);
    return node;
  }
}

/** A trace as symbols, padded for a model of order k. */
export function symbols(nrs: readonly number[], k: number): number[] {
  return [...Array(k - 1).fill(BOS), ...nrs.map((n) => Math.min(n, RADIX - 2) + 1)];
}

/** stide: 1 per call whose k-gram (with the calls before it) was never seen, else 0. */
export function stideMisses(trie: CountTrie, nrs: readonly number[], k: number): number[] {
  const s = symbols(nrs, k);
  const out: number[] = [];
  for (let end = k - 1; end < s.length; end++) out.push(trie.find(s, end - k + 1, end) >= 0 ? 0 : 1);
  return out;
}

/** Vocabulary size for the base distribution (seen or not). */
const VOCAB = 512;

/** Per-call surprisal, −log2 P(call | up to k−1 previous calls), Witten–Bell interpolated. */
export function wittenBell(trie: CountTrie, nrs: readonly number[], k: number): number[] {
  const s = symbols(nrs, k);
  const out: number[] = [];
  for (let end = k - 1; end < s.length; end++) {
    const w = s[end];
    let p = 1 / VOCAB;
    // From the empty context up to k−1 calls of context.
    for (let ctxLen = 0; ctxLen <= k - 1; ctxLen++) {
      const ctx = ctxLen === 0 ? 0 : trie.find(s, end - ctxLen, end - 1);
      if (ctx < 0) break;
      const c = trie.childCount[ctx];
      const t = trie.followers[ctx];
      if (c === 0) break;
      const cw = trie.child(ctx, w);
      const chw = cw >= 0 ? trie.count[cw] : 0;
      p = (chw + t * p) / (c + t);
    }
    out.push(-Math.log2(p));
  }
  return out;
}

/** Per-call surprisal under interpolated Kneser–Ney with one discount d. */
export function kneserNey(trie: CountTrie, nrs: readonly number[], k: number, d = 0.75): number[] {
  const s = symbols(nrs, k);
  const out: number[] = [];
  for (let end = k - 1; end < s.length; end++) {
    const w = s[end];
    let p = 1 / VOCAB;
    for (let ctxLen = 0; ctxLen <= k - 1; ctxLen++) {
      const ctx = ctxLen === 0 ? 0 : trie.find(s, end - ctxLen, end - 1);
      if (ctx < 0) break;
      const top = ctxLen === k - 1;
      // The highest order uses counts; lower orders continuation counts.
      const denom = top ? trie.childCount[ctx] : trie.childContinuation[ctx];
      if (denom === 0) break;
      const cw = trie.child(ctx, w);
      const num = cw < 0 ? 0 : top ? trie.count[cw] : trie.continuation[cw];
      const t = trie.followers[ctx];
      p = Math.max(num - d, 0) / denom + (d * t / denom) * p;
    }
    out.push(-Math.log2(p));
  }
  return out;
}
