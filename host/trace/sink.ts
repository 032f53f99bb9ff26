/**
 * An EventSink that writes events as text lines (strace-like) or JSON lines,
 * buffered, to a file or standard error.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { EventSink } from "../decider.ts";
import { isNotable, isReport } from "../event_text.ts";
import { eventJsonReplacer, type HostEvent, type SyscallEvent } from "../events.ts";
import { DEFAULT_STRING_LIMIT, escapeText, formatCall, resultText } from "./strace_text.ts";

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
  /** text: strings (written data, argv) are cut after this many bytes, as strace's -s. @default 32 */
  stringLimit?: number;
  /** text: the time each call took where its result is known, as strace's -T. */
  times?: boolean;
  /**
   * json: the bytes writes write (what wrappers read as event_data) as `decoded.dataBase64`, so that `idwrap policy
   * test` can replay them. Off unless asked for: they may hold secrets (passwords written to a socket), and reports
   * and audit records never carry them. @default false
   */
  recordData?: boolean;
}

const FLUSH_AT = 64 * 1024;

/** How a text line shows a call's result. */
export interface TextOptions {
  stringLimit?: number;
  /** The result, where known: the call's post event, or what its caller's next step showed (a failed execve). */
  result?: { ret: number; errno?: string; ms?: number };
  times?: boolean;
}

/** The rules that fired on a line, ` [a,b]`: a wrapper names them, so they are escaped as any program text. */
function alertsText(alerts: readonly string[] | undefined): string {
  return alerts?.length ? ` [${alerts.map(escapeText).join(",")}]` : "";
}

/**
 * One event as one line of text: a call as strace prints it (`123 openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3`),
 * `= ?` where the source does not report the result, `= -1 EACCES (Permission denied) <denied>` where idwrap refused
 * it; lifecycle as `+++`, wrappers' reports as `***`.
 */
export function formatEvent(e: HostEvent, options: TextOptions = {}): string {
  if (isReport(e)) {
    const level = e.severity !== undefined ? `/${e.severity}` : "";
    // Escaped: a value with a newline would end the line and forge the next one.
    const call = e.syscall ? ` (${escapeText(e.syscall)})` : "";
    return `${e.pid} *** ${e.kind}${level} ${escapeText(e.wrapper)}${call}: ${escapeText(e.message)}`;
  }
  if (e.kind !== "syscall") {
    const who = `${escapeText(e.program.exe || "?")} (${escapeText(e.program.argv0 || "?")}) uid=${e.program.uid}`;
    if (e.kind === "spawn") return `${e.pid} +++ spawn ppid=${e.ppid} ${who}`;
    // An exec carries the rules that fired on its success (`when: success`).
    if (e.kind === "exec") return `${e.pid} +++ exec ${who}${alertsText(e.alerts)}`;
    return `${e.pid} +++ exit${e.exitCode !== undefined ? ` code=${e.exitCode}` : ""}${
      e.signal ? ` signal=${e.signal}` : ""
    }`;
  }
  const abi = e.abi === "x86_64" ? "" : `[${e.abi}] `;
  let line = `${e.tid} ${abi}${formatCall(e, options.stringLimit ?? DEFAULT_STRING_LIMIT)}`;
  const denied = e.verdict?.startsWith("deny ") ? e.verdict.slice(5) : undefined;
  const r = options.result ?? (e.phase === "post" ? { ret: e.ret ?? 0, errno: e.errno } : undefined);
  if (denied) line += `${resultText(-1, denied)} <denied>`;
  else if (e.verdict === "kill") line += " = ? <killed>";
  else if (r) line += r.ret === -1 && !r.errno ? " = -1 (errno not known)" : resultText(r.ret, r.errno);
  else line += " = ?";
  if (options.times && r?.ms !== undefined) line += ` <${(r.ms / 1000).toFixed(3)}>`;
  if (e.verdict?.startsWith("rewrite")) line += ` <${e.verdict}>`;
  line += alertsText(e.alerts);
  if (e.reason) line += ` (${escapeText(e.reason)})`;
  return line;
}

/**
 * One event as a JSON line. With `recordData`, the bytes a write writes (`decoded.data`, which the event JSON leaves
 * out) are recorded as `decoded.dataBase64`, so that a replay (`idwrap policy test`) hands wrappers what they read live
 * (event_data).
 */
export function jsonLine(event: HostEvent, recordData = false): string {
  if (!recordData || event.kind !== "syscall" || event.decoded.data === undefined) {
    return JSON.stringify(event, eventJsonReplacer);
  }
  const dataBase64 = Buffer.from(event.decoded.data).toString("base64");
  return JSON.stringify({ ...event, decoded: { ...event.decoded, dataBase64 } }, eventJsonReplacer);
}

/**
 * Writes events as they come, flushing in blocks and when idle. Text holds a call until its result is known (its post
 * event: one line per call, as strace) or its thread's next step shows it: an execve followed by the process's exec
 * returned 0; one followed by another call of its thread, or by the exit, failed (ENOENT where the path named nothing
 * when it was resolved). A call whose result the source does not report is printed with `= ?` at its thread's next
 * event or when the source is idle.
 */
export class TraceSink implements EventSink {
  readonly wantsSyscalls: boolean;
  readonly #format: TraceFormat;
  readonly #file: Deno.FsFile | undefined;
  readonly #notableOnly: boolean;
  readonly #recordData: boolean;
  readonly #text: TextOptions;
  readonly #encoder = new TextEncoder();
  /** tid → the call whose result the line waits for. */
  readonly #held = new Map<number, SyscallEvent>();
  /** tid → an execve printed as run at its exec: the source's own post event for it, if any follows, is not repeated. */
  readonly #shownExec = new Map<number, number>();
  #pending: string[] = [];
  #size = 0;

  constructor(options: TraceSinkOptions) {
    this.#format = options.format;
    this.wantsSyscalls = options.allSyscalls ?? true;
    this.#notableOnly = options.notableOnly ?? false;
    this.#recordData = options.recordData ?? false;
    this.#text = { stringLimit: options.stringLimit, times: options.times };
    this.#file = options.output
      ? Deno.openSync(options.output, { write: true, create: true, truncate: true })
      : undefined;
  }

  emit(event: HostEvent): void {
    if (this.#notableOnly && event.kind === "syscall" && !isNotable(event)) return;
    if (this.#format === "json") return this.#write(jsonLine(event, this.#recordData));
    if (event.kind === "syscall") return this.#call(event);
    if (event.kind === "exec" || event.kind === "exit") {
      for (const held of [...this.#held.values()]) {
        if (held.pid !== event.pid) continue;
        const exec = held.syscall === "execve" || held.syscall === "execveat";
        this.#release(held, exec ? (event.kind === "exec" ? "ran" : "failed") : "unknown");
      }
    }
    this.#write(formatEvent(event, this.#text));
  }

  #call(e: SyscallEvent): void {
    const shown = this.#shownExec.get(e.tid);
    this.#shownExec.delete(e.tid);
    if (e.phase === "post" && shown === e.nr && !e.alerts?.length && !e.verdict) return;
    const held = this.#held.get(e.tid);
    if (e.phase === "post" && held?.nr === e.nr) {
      // The result of the call held: one line, with the time it took.
      this.#held.delete(e.tid);
      const result = { ret: e.ret ?? 0, errno: e.errno, ms: e.time - held.time };
      const alerts = [...new Set([...held.alerts ?? [], ...e.alerts ?? []])];
      const line = { ...held, alerts: alerts.length ? alerts : undefined, reason: e.reason ?? held.reason };
      if (e.verdict === "kill") line.verdict = "kill";
      return this.#write(formatEvent(line, { ...this.#text, result }));
    }
    // The thread went on: an execve held failed (the process did not exec), other calls' results are not known.
    if (held) this.#release(held, held.syscall === "execve" || held.syscall === "execveat" ? "failed" : "unknown");
    if (e.phase === "pre" && (e.verdict === undefined || e.verdict === "allow")) {
      this.#held.set(e.tid, e);
      return;
    }
    this.#write(formatEvent(e, this.#text));
  }

  /** Prints a held call: it ran (execve: = 0), failed (an execve the process went on from), or nothing is known. */
  #release(e: SyscallEvent, how: "ran" | "failed" | "unknown"): void {
    this.#held.delete(e.tid);
    if (how === "unknown") return this.#write(formatEvent(e, this.#text));
    // A failed execve: ENOENT when its path named nothing (no dev:ino) and was read; else the errno is not known.
    const enoent = how === "failed" && e.decoded.ident === undefined && e.decoded.fault === undefined &&
      e.decoded.path !== undefined;
    const result = how === "ran" ? { ret: 0 } : { ret: -1, errno: enoent ? "ENOENT" : undefined };
    if (how === "ran") this.#shownExec.set(e.tid, e.nr);
    this.#write(formatEvent(e, { ...this.#text, result }));
  }

  #write(text: string): void {
    const line = text + "\n";
    this.#pending.push(line);
    this.#size += line.length;
    if (this.#size >= FLUSH_AT) this.flush();
  }

  flush(): void {
    // Idle: the results of calls still held will not come (the source does not report them); an execve's comes with
    // its exec or its thread's next call.
    for (const held of [...this.#held.values()]) {
      if (held.syscall !== "execve" && held.syscall !== "execveat") this.#release(held, "unknown");
    }
    if (this.#pending.length === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#size = 0;
    const out = this.#file ?? Deno.stderr;
    for (let off = 0; off < bytes.length;) off += out.writeSync(bytes.subarray(off));
  }
}
