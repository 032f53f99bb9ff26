/**
 * Offline replay of system-call traces through a sequence detector wrapper
 * (wrappers/seq/, the paper's Seq_id, by default; wrappers/ngram/, the
 * n-gram language model, with `detector: "ngram"`; host/seq/detectors.ts
 * lists them): the same build/wrappers/<name>.wasm a policy loads, driven through the host runtime (loadWrapper +
 * WrapperChain) with one synthetic process per trace — a spawn, one pre
 * SyscallEvent per call, an exit — exactly as the supervisor drives it,
 * against a WrapperStore (Deno KV). Training runs the wrapper with
 * mode=record, scoring with mode=detect; the wrapper's exit audit record
 * ("seq detect … calls=N mismatches=M max_lfc=L") gives each trace's score.
 *
 * Trace formats:
 * - `unm`: "PID NUMBER" lines (UNM data sets), split by PID, one trace per
 *   PID per file. The numbers are SunOS 4 numbers and pass through as the
 *   event's `nr` unmapped: the wrapper only compares numbers, and training
 *   and scoring see the same numbering.
 * - `adfa`: one trace per file, space-separated numbers (ADFA-LD, i386
 *   numbers, also passed through; names from the i386 table).
 * - `strace`: `strace -f` output; names mapped to x86_64 numbers
 *   (host/syscalls syscallNumber); unknown names, "resumed" halves, signal
 *   and exit lines are skipped. Lines without a pid prefix belong to one
 *   trace.
 *
 * The wrapper declares (live) only the calls it wants from the kernel; the
 * traces hold every call, so the replay widens the loaded module's
 * declarations to every number 0..1022: the database learned offline holds
 * complete sequences. (A database learned offline therefore suits offline
 * scoring; a live one is learned live.)
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { EventSink } from "../decider.ts";
import type { HostEvent, ProgramIdentity, SyscallEvent, WrapperReport } from "../events.ts";
import { WRAPPER_DEFAULTS, WRAPPER_LIMITS, type WrapperSpec } from "../policy/policy.ts";
import { DECLARE_PRE } from "../runtime/abi.ts";
import { WrapperChain } from "../runtime/chain.ts";
import { v8Engine } from "../runtime/engine.ts";
import { loadWrapper } from "../runtime/module.ts";
import type { WrapperStore } from "../store/kv.ts";
import { i386SyscallName, syscallNumber } from "../syscalls/mod.ts";
import { type DetectorName, DETECTORS, type DetectorScore } from "./detectors.ts";

/** Where the built wrapper is. */
export const SEQ_WASM = fileURLToPath(new URL("../../build/wrappers/seq.wasm", import.meta.url));

/** The wrapper's name, which names its KV namespace (as in a policy: `name: seq`). */
export const SEQ_WRAPPER = "seq";

/** Trace file formats. */
export type TraceFormat = "unm" | "adfa" | "strace";
export const TRACE_FORMATS: readonly TraceFormat[] = ["unm", "adfa", "strace"];

/** One process's calls. */
export interface Trace {
  /** file:pid (or the file alone for adfa). */
  id: string;
  nrs: number[];
  names: string[];
}

/** One trace's score (detect mode). */
export interface TraceScore {
  id: string;
  calls: number;
  mismatches: number;
  /** The largest locality-frame count (mismatches among `frame` consecutive calls). */
  maxLocalityFrame: number;
  /** mismatches / calls. */
  anomalyRate: number;
  /** Alerts the wrapper raised on this trace. */
  alerts: number;
}

/** Splits one file into traces. */
export function parseTraces(text: string, format: TraceFormat, file: string): Trace[] {
  if (format === "adfa") {
    const nrs = text.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n >= 0);
    return [{ id: file, nrs, names: nrs.map(i386SyscallName) }];
  }
  const byPid = new Map<string, Trace>();
  const traceOf = (pid: string) => {
    let t = byPid.get(pid);
    if (!t) byPid.set(pid, t = { id: `${file}:${pid}`, nrs: [], names: [] });
    return t;
  };
  for (const line of text.split("\n")) {
    if (format === "unm") {
      const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(line);
      if (!m) continue;
      const t = traceOf(m[1]);
      t.nrs.push(Number(m[2]));
      t.names.push(`unm_${m[2]}`);
      continue;
    }
    // strace -f: "[pid  123] name(…" or "123 name(…" or "name(…"; skip "<... x resumed>", "--- SIG…", "+++ exited".
    const m = /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:\d+(?:\.\d+)?\s+)?([a-z_][a-z0-9_]*)\(/.exec(line);
    if (!m) continue;
    const nr = syscallNumber(m[3]);
    if (nr === undefined) continue;
    const t = traceOf(m[1] ?? m[2] ?? "0");
    t.nrs.push(nr);
    t.names.push(m[3]);
  }
  return [...byPid.values()];
}

/** Reads and parses files. */
export async function readTraces(files: string[], format: TraceFormat): Promise<Trace[]> {
  const out: Trace[] = [];
  for (const f of files) out.push(...parseTraces(await Deno.readTextFile(f), format, f));
  return out;
}

/** Options of a replay. */
export interface ReplayOptions {
  store: WrapperStore;
  program: string;
  mode: "record" | "detect";
  /** Other wrapper settings (window, frame, threshold), as text. */
  settings?: Record<string, string>;
  /** Called after each trace with (done, total). */
  progress?: (done: number, total: number) => void;
  /** The module's bytes (default: the detector's build/wrappers/<name>.wasm). */
  wasm?: Uint8Array;
  /** A module replayed in the detector's place and given no settings: a bench's baseline (noop.wasm declares none). */
  baseline?: Uint8Array;
  /** Which detector wrapper (default "seq"). */
  detector?: DetectorName;
}

const AUDIT_DETECT = / calls=(\d+) mismatches=(\d+) max_lfc=(\d+)$/;

/** A chain of one seq wrapper with its reports collected per pid. */
export class SeqReplayer {
  readonly chain: WrapperChain;
  readonly #reports = new Map<number, WrapperReport[]>();
  readonly #program: ProgramIdentity;
  #nextPid = 100_000;

  private constructor(chain: WrapperChain, program: ProgramIdentity, reports: Map<number, WrapperReport[]>) {
    this.chain = chain;
    this.#program = program;
    this.#reports = reports;
  }

  static async open(opts: ReplayOptions): Promise<SeqReplayer> {
    const detector = DETECTORS[opts.detector ?? "seq"];
    const bytes = opts.baseline ?? opts.wasm ?? await Deno.readFile(detector.wasm);
    const spec: WrapperSpec = {
      name: detector.name,
      module: detector.name,
      settings: opts.baseline ? {} : { ...opts.settings, mode: opts.mode, program: opts.program },
      fail: "open",
      memoryMiB: 64,
      // Offline: no process waits, and a whole model is loaded (and in record mode merged and rewritten) per trace.
      budget: WRAPPER_LIMITS.budget,
      maxFailures: WRAPPER_DEFAULTS.maxFailures,
      clock: false,
      onAlert: WRAPPER_DEFAULTS.onAlert,
    };
    const mod = loadWrapper(spec, bytes, v8Engine, detector.wasm);
    for (let nr = 0; nr < 1023; nr++) {
      if (!mod.declarations.syscalls.has(nr)) mod.declarations.syscalls.set(nr, DECLARE_PRE);
    }
    const reports = new Map<number, WrapperReport[]>();
    const sink: EventSink = {
      wantsSyscalls: false,
      emit(e: HostEvent) {
        if (e.kind === "alert" || e.kind === "audit" || e.kind === "fault" || e.kind === "log") {
          const list = reports.get(e.pid) ?? [];
          if (e.kind === "fault") {
            // The wrapper's own log lines say why (a bad setting, for one).
            const said = list.filter((r) => r.kind === "log").map((r) => r.message);
            throw new Error(
              `${detector.name} wrapper failed: ${e.message}${said.length ? `: ${said.join("; ")}` : ""}`,
            );
          }
          list.push(e);
          reports.set(e.pid, list);
        }
      },
      flush() {},
    };
    const kv = new Map([[detector.name, await opts.store.load(detector.name)]]);
    const chain = new WrapperChain([mod], { engine: v8Engine, sink, kv, source: "seccomp" });
    const program = { exe: `/replay/${opts.program}`, argv0: opts.program, uid: 0, gid: 0 };
    return new SeqReplayer(chain, program, reports);
  }

  /** Runs one trace as one process; returns its reports. */
  replay(trace: Trace): WrapperReport[] {
    const pid = this.#nextPid++;
    const program = this.#program;
    this.chain.observe({ kind: "spawn", source: "seccomp", time: 0, pid, ppid: 1, program });
    const event: SyscallEvent = {
      kind: "syscall",
      source: "seccomp",
      phase: "pre",
      time: 0,
      pid,
      tid: pid,
      abi: "x86_64",
      nr: 0,
      syscall: "",
      args: ["0", "0", "0", "0", "0", "0"],
      decoded: {},
      program,
    };
    const { nrs, names } = trace;
    for (let i = 0; i < nrs.length; i++) {
      event.nr = nrs[i];
      event.syscall = names[i];
      this.chain.decide(event);
      if (event.alerts) event.alerts = undefined;
    }
    this.chain.observe({ kind: "exit", source: "seccomp", time: 0, pid, program });
    const out = this.#reports.get(pid) ?? [];
    this.#reports.delete(pid);
    return out;
  }

  /** Replays one trace in detect mode and reads its score from the exit record. */
  score(trace: Trace): TraceScore {
    const reports = this.replay(trace);
    const audit = reports.find((r) => r.kind === "audit" && AUDIT_DETECT.test(r.message));
    const m = audit ? AUDIT_DETECT.exec(audit.message)! : undefined;
    const calls = m ? Number(m[1]) : trace.nrs.length;
    const mismatches = m ? Number(m[2]) : 0;
    if (!m && trace.nrs.length) throw new Error(`seq gave no score for ${trace.id} (is mode detect?)`);
    return {
      id: trace.id,
      calls,
      mismatches,
      maxLocalityFrame: m ? Number(m[3]) : 0,
      anomalyRate: calls ? mismatches / calls : 0,
      alerts: reports.filter((r) => r.kind === "alert").length,
    };
  }

  /** Replays one trace in detect mode and reads the detector's score from its exit record. */
  detectorScore(trace: Trace, detector: DetectorName): DetectorScore {
    const reports = this.replay(trace);
    const alerts = reports.filter((r) => r.kind === "alert").length;
    for (const r of reports) {
      if (r.kind !== "audit") continue;
      const s = DETECTORS[detector].parse(r.message);
      if (s) return { id: trace.id, alerts, ...s };
    }
    if (trace.nrs.length) throw new Error(`${detector} gave no score for ${trace.id} (is mode detect?)`);
    return { id: trace.id, alerts, calls: 0, score: 0, fields: {} };
  }
}

/** Trains (record mode) on traces; flushes the store. */
export async function train(traces: Trace[], opts: ReplayOptions): Promise<void> {
  const r = await SeqReplayer.open({ ...opts, mode: "record" });
  traces.forEach((t, i) => {
    r.replay(t);
    opts.progress?.(i + 1, traces.length);
  });
  await opts.store.flush();
}

/** Scores (detect mode) traces. */
export async function score(traces: Trace[], opts: ReplayOptions): Promise<TraceScore[]> {
  const r = await SeqReplayer.open({ ...opts, mode: "detect" });
  return traces.map((t, i) => {
    const s = r.score(t);
    opts.progress?.(i + 1, traces.length);
    return s;
  });
}

/** Scores (detect mode) traces with any detector: one number per trace, larger when more abnormal. */
export async function scoreWith(traces: Trace[], opts: ReplayOptions): Promise<DetectorScore[]> {
  const detector = opts.detector ?? "seq";
  const r = await SeqReplayer.open({ ...opts, mode: "detect" });
  return traces.map((t, i) => {
    const s = r.detectorScore(t, detector);
    opts.progress?.(i + 1, traces.length);
    return s;
  });
}

/** Bytes and sequences of one program's database in the store's seq namespace (window k). */
export async function databaseSize(
  store: WrapperStore,
  program: string,
  window = 6,
): Promise<{ sequences: number; bytes: number; values: number }> {
  const ns = await store.load(SEQ_WRAPPER);
  const enc = new TextEncoder();
  const prefix = `db/${window}/${program}/`;
  let bytes = 0;
  let values = 0;
  for (const key of ns.list(enc.encode(prefix))) {
    bytes += key.length + (ns.get(key)?.length ?? 0);
    values++;
  }
  const n = ns.get(enc.encode(prefix + "n"));
  const sequences = n && n.length === 8 ? Number(new DataView(n.buffer, n.byteOffset).getBigInt64(0, true)) : 0;
  return { sequences, bytes, values };
}
