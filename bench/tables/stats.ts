/**
 * Statistics of a configuration's rounds: median, standard deviation, the
 * penalty against bare.
 *
 * @module
 */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function stdev(xs: number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

/** Median, min, max, σ and spread ((max − min) / median) of a metric over the runs. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  sd: number;
  spreadPct: number;
  n: number;
}

export function stat(xs: number[]): Stat | undefined {
  if (!xs.length) return undefined;
  const med = median(xs);
  return {
    median: med,
    min: Math.min(...xs),
    max: Math.max(...xs),
    sd: stdev(xs),
    spreadPct: med ? (Math.max(...xs) - Math.min(...xs)) / Math.abs(med) * 100 : 0,
    n: xs.length,
  };
}

/**
 * The penalty against bare, in percent, for a metric where larger is worse
 * (times, latencies) or better (throughputs), from the medians of the same run.
 */
export function penalty(value: number, bare: number, higherIsBetter = false): number {
  return higherIsBetter ? (1 - value / bare) * 100 : (value / bare - 1) * 100;
}
