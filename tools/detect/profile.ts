/**
 * Frequency-profile prototypes for tools/detect/candidates.ts: a trace as
 * the counts of its n-grams, and its distance (L1 of the normalized
 * profiles, or cosine) to the nearest training traces.
 *
 * @module
 */

/** Counts of the trace's n-grams (numbers below 400 each, as in ADFA-LD). */
export function profile(nrs: readonly number[], n: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = n - 1; i < nrs.length; i++) {
    let key = 0;
    for (let j = i - n + 1; j <= i; j++) key = key * 400 + Math.min(nrs[j], 399);
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
}

/** L1 distance of the two profiles normalized to sum 1. */
export function l1(a: Map<number, number>, b: Map<number, number>): number {
  const sa = [...a.values()].reduce((x, y) => x + y, 0) || 1;
  const sb = [...b.values()].reduce((x, y) => x + y, 0) || 1;
  let s = 0;
  for (const [k, v] of a) s += Math.abs(v / sa - (b.get(k) ?? 0) / sb);
  for (const [k, v] of b) if (!a.has(k)) s += v / sb;
  return s;
}

/** 1 − cosine similarity. */
export function cosine(a: Map<number, number>, b: Map<number, number>): number {
  let dot = 0, na = 0, nb = 0;
  for (const [k, v] of a) {
    dot += v * (b.get(k) ?? 0);
    na += v * v;
  }
  for (const v of b.values()) nb += v * v;
  return 1 - dot / Math.sqrt(na * nb || 1);
}

/** The mean distance to the `k` nearest of `train`. */
export function nearest(
  p: Map<number, number>,
  train: readonly Map<number, number>[],
  distance: (a: Map<number, number>, b: Map<number, number>) => number,
  k: number,
): number {
  const ds = train.map((t) => distance(p, t)).sort((a, b) => a - b);
  return ds.slice(0, k).reduce((a, b) => a + b, 0) / k;
}
