/**
 * What the detector benches (seq_bench.ts, ngram_bench.ts) set up alike around a replay: call counts, a timed replay,
 * the one long process that gives the steady per-call cost, and the tiny processes that give the per-process cost.
 *
 * @module
 */
import type { SeqReplayer, Trace } from "../host/seq/replay.ts";

/** The calls in some traces. */
export function callCount(traces: Trace[]): number {
  return traces.reduce((n, t) => n + t.nrs.length, 0);
}

/**
 * Replays traces and times them.
 *
 * @returns ns per call
 */
export function timeReplay(r: SeqReplayer, traces: Trace[]): number {
  const t0 = performance.now();
  for (const t of traces) r.replay(t);
  return (performance.now() - t0) * 1e6 / callCount(traces);
}

/** One long process: every trace end to end (the per-call cost without per-process costs). */
export function longTrace(traces: Trace[]): Trace {
  return { id: "long", nrs: traces.flatMap((t) => t.nrs), names: traces.flatMap((t) => t.names) };
}

/**
 * `count` processes of the first `calls` calls of `trace` each: the per-process cost (instance, idwrap_init's database
 * load, exit record).
 */
export function tinyTraces(trace: Trace, count: number, calls: number): Trace[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `tiny${i}`,
    nrs: trace.nrs.slice(0, calls),
    names: trace.names.slice(0, calls),
  }));
}
