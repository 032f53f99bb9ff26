/**
 * The sequence detectors `idwrap seq train|score --detector NAME` and the
 * offline replay (host/seq/replay.ts) can drive: each is a wrapper in
 * wrappers/<name>/, built to build/wrappers/<name>.wasm, whose exit audit
 * record carries the trace's score.
 *
 * - `seq`: the paper's Seq_id (Forrest's stide, docs/seq.md); score = the
 *   share of calls whose k-sequence was never seen (mismatches / calls).
 * - `ngram`: a Witten–Bell smoothed n-gram language model (docs/detect.md);
 *   score = the mean surprisal, in bits per call.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The names of the detectors. */
export type DetectorName = "seq" | "ngram";
export const DETECTOR_NAMES: readonly DetectorName[] = ["seq", "ngram"];

/** One trace's score from any detector. */
export interface DetectorScore {
  id: string;
  calls: number;
  /** One number per trace, larger when more abnormal. */
  score: number;
  /** The detector's own numbers (seq: mismatches, maxLocalityFrame; ngram: meanBits, maxFrameBits). */
  fields: Record<string, number>;
  /** Alerts the wrapper raised on this trace. */
  alerts: number;
}

/** A detector wrapper and how to read its exit record. */
export interface Detector {
  name: DetectorName;
  /** build/wrappers/<name>.wasm */
  wasm: string;
  /** The KV key prefix of a program's model, for sizes: `<prefix><program>/`. */
  modelPrefix(program: string, settings: Record<string, string>): string;
  /** The score in a detect-mode exit audit record, or undefined if the record is not one. */
  parse(message: string): Omit<DetectorScore, "id" | "alerts"> | undefined;
}

const wasmOf = (name: string) => fileURLToPath(new URL(`../../build/wrappers/${name}.wasm`, import.meta.url));

const SEQ_DETECT = /^seq detect .* calls=(\d+) mismatches=(\d+) max_lfc=(\d+)$/;
const NGRAM_DETECT = /^ngram detect .* calls=(\d+) millibits=(\d+) max_frame_millibits=(\d+)$/;

/** Every detector by name. */
export const DETECTORS: Readonly<Record<DetectorName, Detector>> = {
  seq: {
    name: "seq",
    wasm: wasmOf("seq"),
    modelPrefix: (program, s) => `db/${s.window ?? "6"}/${program}/`,
    parse(message) {
      const m = SEQ_DETECT.exec(message);
      if (!m) return undefined;
      const calls = Number(m[1]);
      const mismatches = Number(m[2]);
      const anomalyRate = calls ? mismatches / calls : 0;
      return { calls, score: anomalyRate, fields: { mismatches, maxLocalityFrame: Number(m[3]), anomalyRate } };
    },
  },
  ngram: {
    name: "ngram",
    wasm: wasmOf("ngram"),
    modelPrefix: (program, s) => `lm/${s.order ?? "6"}/${program}/`,
    parse(message) {
      const m = NGRAM_DETECT.exec(message);
      if (!m) return undefined;
      const calls = Number(m[1]);
      const meanBits = calls ? Number(m[2]) / 1000 / calls : 0;
      return { calls, score: meanBits, fields: { meanBits, maxFrameBits: Number(m[3]) / 1000 } };
    },
  },
};
