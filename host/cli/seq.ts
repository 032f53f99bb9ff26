/**
 * `idwrap seq train|score`: offline training and scoring of a sequence
 * detector wrapper on recorded traces — seq (the paper's Seq_id, the
 * default) or, with `--detector ngram`, the n-gram language model
 * (docs/detect.md) — through the same build/wrappers/<name>.wasm and the
 * host runtime (host/seq/replay.ts), with the model in the wrapper store
 * (Deno KV) live runs use.
 *
 *   idwrap seq train --program sendmail --format unm normal/*.int
 *   idwrap seq score --program sendmail --format unm --json intrusion/*.int
 *   idwrap seq score --detector ngram --program sendmail --format unm --json intrusion/*.int
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { DETECTOR_NAMES, type DetectorName } from "../seq/detectors.ts";
import { readTraces, score, scoreWith, TRACE_FORMATS, type TraceFormat, train } from "../seq/replay.ts";
import { defaultStorePath, WrapperStore } from "../store/kv.ts";

interface SeqCliOptions {
  detector: DetectorName;
  program: string;
  format: TraceFormat;
  store?: string;
  json?: boolean;
  window?: string;
  frame?: string;
  threshold?: string;
  order?: string;
}

function positiveInt(value: string): string {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError("expected a positive integer");
  return value;
}

/** Progress on standard error, only when it is a terminal. */
function progress(verb: string): ((done: number, total: number) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const enc = new TextEncoder();
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 200) return;
    last = now;
    Deno.stderr.writeSync(enc.encode(`\r${verb}: ${done}/${total} traces${done === total ? "\n" : ""}`));
  };
}

function settings(opts: SeqCliOptions): Record<string, string> {
  // A setting the chosen detector does not have would be silently ignored by its wrapper.
  if (opts.window && opts.detector !== "seq") {
    throw new InvalidArgumentError(`--window is a setting of seq, not of ${opts.detector} (ngram: --order)`);
  }
  if (opts.order && opts.detector !== "ngram") {
    throw new InvalidArgumentError(`--order is a setting of ngram, not of ${opts.detector} (seq: --window)`);
  }
  const s: Record<string, string> = {};
  if (opts.window) s.window = opts.window;
  if (opts.frame) s.frame = opts.frame;
  if (opts.threshold) s.threshold = opts.threshold;
  if (opts.order) s.order = opts.order;
  return s;
}

function common(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--detector <name>", "the detector wrapper (docs/detect.md)").choices([...DETECTOR_NAMES]).default(
        "seq",
      ),
    )
    .requiredOption("--program <name>", "the database's name (a program)")
    .addOption(new Option("--format <format>", "trace format").choices([...TRACE_FORMATS]).makeOptionMandatory())
    .option("--store <path>", "the wrapper store (Deno KV)", defaultStorePath())
    .option("--window <k>", "seq: sequence length, 1..6 (default 6)", positiveInt)
    .option("--order <n>", "ngram: the longest n-gram, 1..6 (default 6)", positiveInt)
    .option("--frame <n>", "locality frame, in calls (seq: 1..64, ngram: 1..1024; default 20)", positiveInt)
    .option(
      "--threshold <n>",
      "alert threshold (seq: locality frame count, default 3; ngram: bits of surprisal in the frame, default 120)",
      positiveInt,
    )
    .argument("<files...>", "trace files");
}

/** Adds the seq command to the CLI. */
export function registerSeq(program: Command): void {
  const seq = program.command("seq")
    .description("train and score a sequence-based detector (seq or ngram wrapper) on recorded traces");

  common(seq.command("train"))
    .description("add the traces' call sequences to a program's model (mode=record)")
    .action(async (files: string[], opts: SeqCliOptions) => {
      const traces = await readTraces(files, opts.format);
      const store = await WrapperStore.open(opts.store);
      try {
        await train(traces, {
          store,
          detector: opts.detector,
          program: opts.program,
          mode: "record",
          settings: settings(opts),
          progress: progress("train"),
        });
      } finally {
        await store.close();
      }
      const calls = traces.reduce((n, t) => n + t.nrs.length, 0);
      console.error(`${opts.detector}: trained "${opts.program}" on ${traces.length} traces, ${calls} calls`);
    });

  common(seq.command("score"))
    .description("score each trace against a program's model (mode=detect)")
    .option(
      "--json",
      "one JSON object per trace (seq: id, calls, mismatches, maxLocalityFrame, anomalyRate; " +
        "ngram: id, calls, score, meanBits, maxFrameBits)",
    )
    .action(async (files: string[], opts: SeqCliOptions) => {
      const traces = await readTraces(files, opts.format);
      const store = await WrapperStore.open(opts.store);
      const replay = {
        store,
        detector: opts.detector,
        program: opts.program,
        mode: "detect" as const,
        settings: settings(opts),
        progress: progress("score"),
      };
      try {
        if (opts.detector === "seq") printSeq(await score(traces, replay), opts.json);
        else printScores(await scoreWith(traces, replay), opts.json);
      } finally {
        await store.close();
      }
    });
}

function printSeq(scores: Awaited<ReturnType<typeof score>>, json?: boolean): void {
  for (const s of scores) {
    const { id, calls, mismatches, maxLocalityFrame, anomalyRate } = s;
    if (json) console.log(JSON.stringify({ id, calls, mismatches, maxLocalityFrame, anomalyRate }));
    else {
      console.log(
        `${id}\tcalls=${calls}\tmismatches=${mismatches}\tmax_lfc=${maxLocalityFrame}\trate=${anomalyRate.toFixed(4)}`,
      );
    }
  }
}

/** The ngram detector: score = mean surprisal (bits per call); maxFrameBits = the live alarm's measure. */
function printScores(scores: Awaited<ReturnType<typeof scoreWith>>, json?: boolean): void {
  for (const s of scores) {
    if (json) console.log(JSON.stringify({ id: s.id, calls: s.calls, score: s.score, ...s.fields }));
    else {
      const fields = Object.entries(s.fields).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`);
      console.log([s.id, `calls=${s.calls}`, `score=${s.score.toFixed(4)}`, ...fields].join("\t"));
    }
  }
}
