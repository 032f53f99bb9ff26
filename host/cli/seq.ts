/**
 * `idwrap seq train|score`: offline training and scoring of the seq wrapper
 * (the paper's Seq_id) on recorded traces, through the same
 * build/wrappers/seq.wasm and the host runtime (host/seq/replay.ts), with
 * the database in the wrapper store (Deno KV) live runs use.
 *
 *   idwrap seq train --program sendmail --format unm normal/*.int
 *   idwrap seq score --program sendmail --format unm --json intrusion/*.int
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { readTraces, score, TRACE_FORMATS, type TraceFormat, train } from "../seq/replay.ts";
import { defaultStorePath, WrapperStore } from "../store/kv.ts";

interface SeqCliOptions {
  program: string;
  format: TraceFormat;
  store?: string;
  json?: boolean;
  window?: string;
  frame?: string;
  threshold?: string;
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
  const s: Record<string, string> = {};
  if (opts.window) s.window = opts.window;
  if (opts.frame) s.frame = opts.frame;
  if (opts.threshold) s.threshold = opts.threshold;
  return s;
}

function common(cmd: Command): Command {
  return cmd
    .requiredOption("--program <name>", "the database's name (a program)")
    .addOption(new Option("--format <format>", "trace format").choices([...TRACE_FORMATS]).makeOptionMandatory())
    .option("--store <path>", "the wrapper store (Deno KV)", defaultStorePath())
    .option("--window <k>", "sequence length, 1..6 (default 6)", positiveInt)
    .option("--frame <n>", "locality frame, in calls, 1..64 (default 20)", positiveInt)
    .option("--threshold <n>", "alert threshold on the locality frame count (default 3)", positiveInt)
    .argument("<files...>", "trace files");
}

/** Adds the seq command to the CLI. */
export function registerSeq(program: Command): void {
  const seq = program.command("seq")
    .description("train and score the sequence-based detector (seq wrapper) on recorded traces");

  common(seq.command("train"))
    .description("add the traces' call sequences to a program's database (seq mode=record)")
    .action(async (files: string[], opts: SeqCliOptions) => {
      const traces = await readTraces(files, opts.format);
      const store = await WrapperStore.open(opts.store);
      try {
        await train(traces, {
          store,
          program: opts.program,
          mode: "record",
          settings: settings(opts),
          progress: progress("train"),
        });
      } finally {
        await store.close();
      }
      const calls = traces.reduce((n, t) => n + t.nrs.length, 0);
      console.error(`seq: trained "${opts.program}" on ${traces.length} traces, ${calls} calls`);
    });

  common(seq.command("score"))
    .description("score each trace against a program's database (seq mode=detect)")
    .option("--json", "one JSON object per trace: id, calls, mismatches, maxLocalityFrame, anomalyRate")
    .action(async (files: string[], opts: SeqCliOptions) => {
      const traces = await readTraces(files, opts.format);
      const store = await WrapperStore.open(opts.store);
      let scores;
      try {
        scores = await score(traces, {
          store,
          program: opts.program,
          mode: "detect",
          settings: settings(opts),
          progress: progress("score"),
        });
      } finally {
        await store.close();
      }
      for (const s of scores) {
        const { id, calls, mismatches, maxLocalityFrame, anomalyRate } = s;
        if (opts.json) console.log(JSON.stringify({ id, calls, mismatches, maxLocalityFrame, anomalyRate }));
        else {
          console.log(
            `${id}\tcalls=${calls}\tmismatches=${mismatches}\tmax_lfc=${maxLocalityFrame}\trate=${
              anomalyRate.toFixed(4)
            }`,
          );
        }
      }
    });
}
