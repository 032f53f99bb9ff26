/**
 * An EventSink that writes events as text lines (strace-like) or JSON lines,
 * buffered, to a file or standard error.
 *
 * @module
 */
import type { EventSink } from "../decider.ts";
import { formatArgs, isNotable, isReport } from "../event_text.ts";
import { eventJsonReplacer, type HostEvent } from "../events.ts";

/** Output format of `idwrap trace`. */
export type TraceFormat = "text" | "json";

/** Where and how a TraceSink writes. */
export interface TraceSinkOptions {
  format: TraceFormat;
  /** A file path; standard error when absent. */
  output?: string;
  /** Report every notified call, not only those a rule examines. @default true */
  allSyscalls?: boolean;
  /** Report only calls that were denied, killed or alerted, and lifecycle. @default false */
  notableOnly?: boolean;
}

const FLUSH_AT = 64 * 1024;

/** One event as one line of text. */
export function formatEvent(e: HostEvent): string {
  if (isReport(e)) {
    const level = e.severity !== undefined ? `/${e.severity}` : "";
    return `${e.pid} *** ${e.kind}${level} ${e.wrapper}${e.syscall ? ` (${e.syscall})` : ""}: ${e.message}`;
  }
  if (e.kind !== "syscall") {
    const who = `${e.program.exe || "?"} (${e.program.argv0 || "?"}) uid=${e.program.uid}`;
    if (e.kind === "spawn") return `${e.pid} +++ spawn ppid=${e.ppid} ${who}`;
    // An exec carries the rules that fired on its success (`when: success`).
    if (e.kind === "exec") return `${e.pid} +++ exec ${who}${e.alerts?.length ? ` [${e.alerts.join(",")}]` : ""}`;
    return `${e.pid} +++ exit${e.exitCode !== undefined ? ` code=${e.exitCode}` : ""}${
      e.signal ? ` signal=${e.signal}` : ""
    }`;
  }
  const abi = e.abi === "x86_64" ? "" : `[${e.abi}] `;
  let line = `${e.tid} ${abi}${e.syscall}(${formatArgs(e.decoded)})`;
  if (e.phase === "post") line += ` = ${e.ret}${e.errno ? ` ${e.errno}` : ""}`;
  else if (e.verdict && e.verdict !== "allow") line += ` ! ${e.verdict}`;
  if (e.alerts?.length) line += ` [${e.alerts.join(",")}]`;
  if (e.reason) line += ` (${e.reason})`;
  return line;
}

/** Writes events as they come, flushing in blocks and when idle. */
export class TraceSink implements EventSink {
  readonly wantsSyscalls: boolean;
  readonly #format: TraceFormat;
  readonly #file: Deno.FsFile | undefined;
  readonly #notableOnly: boolean;
  readonly #encoder = new TextEncoder();
  #pending: string[] = [];
  #size = 0;

  constructor(options: TraceSinkOptions) {
    this.#format = options.format;
    this.wantsSyscalls = options.allSyscalls ?? true;
    this.#notableOnly = options.notableOnly ?? false;
    this.#file = options.output
      ? Deno.openSync(options.output, { write: true, create: true, truncate: true })
      : undefined;
  }

  emit(event: HostEvent): void {
    if (this.#notableOnly && event.kind === "syscall" && !isNotable(event)) return;
    // Text shows an emulated call once, with its result.
    if (this.#format === "text" && event.kind === "syscall" && event.phase === "pre" && event.emulated) return;
    const line = (this.#format === "json" ? JSON.stringify(event, eventJsonReplacer) : formatEvent(event)) + "\n";
    this.#pending.push(line);
    this.#size += line.length;
    if (this.#size >= FLUSH_AT) this.flush();
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#size = 0;
    const out = this.#file ?? Deno.stderr;
    for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
  }
}
