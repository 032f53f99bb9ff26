/**
 * Runs a workload's configurations in rounds, alternating (each round runs
 * every configuration once, in a rotated order: ABC, BCA, CAB …), retrying a
 * run that failed, and giving up on a configuration that fails every attempt
 * of two rounds (its row then says why, as it does for one that never ran).
 *
 * @module
 */
import { type Config, sourced } from "./configs.ts";
import type { IdwrapReport } from "./idwrap_report.ts";
import { log } from "./log.ts";

/** One measured run. */
export interface Sample {
  config: string;
  round: number;
  /** Metric name → value (seconds, ms, req/s, Mbit/s …). */
  metrics: Record<string, number>;
  report?: IdwrapReport;
  /** Failed attempts before this one (retried). */
  failedAttempts: number;
  failures?: string[];
  /** Extra facts (audit log bytes, errors …). */
  notes?: Record<string, number | string>;
}

export interface RoundsResult {
  samples: Sample[];
  /** Configuration id → why it has no numbers (every attempt of a round failed). */
  unavailable: Record<string, string>;
  /** Failed attempts that a retry recovered, per configuration. */
  retried: Record<string, string[]>;
}

export async function runRounds(
  workload: string,
  configs: Config[],
  rounds: number,
  once: (c: Config, round: number) => Promise<Omit<Sample, "config" | "round" | "failedAttempts">>,
  opts: { attempts?: number; deadline?: number } = {},
): Promise<RoundsResult> {
  const attempts = opts.attempts ?? 3;
  const result: RoundsResult = { samples: [], unavailable: {}, retried: {} };
  /** Rounds in which every attempt of a configuration failed; two such rounds and it is given up. */
  const lostRounds: Record<string, number> = Object.fromEntries(configs.map((c) => [c.id, 0]));
  const lastError: Record<string, string> = {};
  for (let round = 0; round < rounds; round++) {
    if (opts.deadline && Date.now() > opts.deadline && round >= 2) {
      log(`${workload}: time budget spent; stopping after ${round} rounds`);
      break;
    }
    const order = configs.map((_, i) => configs[(i + round) % configs.length]);
    for (const c of order) {
      if (result.unavailable[c.id]) continue;
      const failures: string[] = [];
      let done = false;
      for (let a = 0; a < attempts && !done; a++) {
        try {
          const s = await once(c, round);
          result.samples.push({ config: c.id, round, failedAttempts: failures.length, ...s });
          done = true;
        } catch (e) {
          const msg = (e as Error).message.trim();
          failures.push(msg);
          log(`${workload}: ${c.label}: attempt ${a + 1} failed: ${msg.split("\n").slice(-3).join(" | ")}`);
        }
      }
      if (failures.length) (result.retried[c.id] ??= []).push(...failures);
      if (!done) {
        lastError[c.id] = failures.at(-1) ?? "failed";
        if (++lostRounds[c.id] >= 2) result.unavailable[c.id] = lastError[c.id];
      }
    }
    log(`${workload}: round ${round + 1}/${rounds} done`);
  }
  // A configuration without a single sample is unavailable, with its last error.
  for (const c of configs) {
    if (!result.samples.some((s) => s.config === c.id) && lastError[c.id]) result.unavailable[c.id] = lastError[c.id];
  }
  return result;
}

/** One run of seq's training: a record run, or the detect run that checks the database. */
export interface TrainingRun {
  mode: "record" | "detect" | "record+detect";
  calls?: number;
  mismatches?: number;
  /** The workload's own measure of the run (seconds, requests, fetches). */
  metrics?: Record<string, number>;
  notes?: Record<string, number | string>;
  error?: string;
}

/**
 * Records seq's normal database for a workload: a record run, then a detect run to check it, until the check sees no
 * mismatch, `rounds` pairs have run, or the deadline passed. A failed pair is retried `retries` times (a server can
 * die under the supervisor).
 *
 * @returns the runs, and the last error if training gave up before any database was checked (seq's rows are then
 *   unavailable, with it)
 */
export async function trainSeq(
  workload: string,
  once: (c: Config) => Promise<Omit<Sample, "config" | "round" | "failedAttempts">>,
  configs: { record: Config; detect: Config },
  opts: { rounds: number; deadline: number; retries: number },
): Promise<{ runs: TrainingRun[]; error?: string }> {
  const runs: TrainingRun[] = [];
  let failures = 0;
  for (let i = 0; i < opts.rounds; i++) {
    try {
      const r = await once(configs.record);
      runs.push({ mode: "record", calls: r.report?.seqCalls, metrics: r.metrics, notes: r.notes });
      const d = await once(configs.detect);
      const [calls, mismatches] = [d.report?.seqCalls, d.report?.seqMismatches];
      runs.push({ mode: "detect", calls, mismatches, metrics: d.metrics, notes: d.notes });
      log(`${workload}: seq training ${i + 1}: detect check: ${mismatches ?? "?"} mismatches in ${calls ?? "?"} calls`);
      if (!mismatches || Date.now() > opts.deadline) break;
    } catch (e) {
      const error = (e as Error).message;
      runs.push({ mode: "record+detect", error });
      log(`${workload}: seq training pair failed: ${error.split("\n").slice(-3).join(" | ")}`);
      // Given up: without any checked database seq's rows cannot run; with one, they run on it (and say if they fail).
      if (++failures > opts.retries) return runs.some((r) => r.mode === "detect") ? { runs } : { runs, error };
      i--;
    }
  }
  return { runs };
}

/**
 * Trains seq for the workload's own source and for each extra source whose seq rows run (--sources), each into that
 * source's store (`sourced()`), and names the rows that cannot run because their source's training failed.
 */
export async function trainSeqPerSource(
  workload: string,
  once: (c: Config) => Promise<Omit<Sample, "config" | "round" | "failedAttempts">>,
  o: {
    record: Config;
    configs: Config[];
    sources?: string[];
    storeBase?: string;
    /** The ids of the rows that need the database (seq, httpdSeq…), without a source suffix. */
    seqRows: string[];
    /** What failed, for the rows' "unavailable" note: "nginx fails under seq". */
    failure: string;
    rounds: number;
    deadline: number;
    retries: number;
  },
): Promise<{
  training: { runs: TrainingRun[]; error?: string };
  bySource: Record<string, { runs: TrainingRun[]; error?: string }>;
  unavailable: Record<string, string>;
}> {
  const opts = { rounds: o.rounds, deadline: o.deadline, retries: o.retries };
  const unavailable: Record<string, string> = {};
  const note = (suffix: string, error: string) => {
    for (const id of o.seqRows) unavailable[id + suffix] = `${o.failure}: ${error}`;
  };
  const training = await trainSeq(workload, once, {
    record: o.record,
    detect: o.configs.find((c) => c.id === "seq")!,
  }, opts);
  if (training.error) note("", training.error);
  const bySource: Record<string, { runs: TrainingRun[]; error?: string }> = {};
  for (const source of o.sources ?? []) {
    const detect = o.configs.find((c) => c.id === `seq@${source}`);
    if (!detect) continue;
    const t = await trainSeq(`${workload} [${source}]`, once, {
      record: sourced(o.record, source, o.storeBase),
      detect,
    }, opts);
    bySource[source] = t;
    if (t.error) note(`@${source}`, t.error);
  }
  return { training, bySource, unavailable };
}
