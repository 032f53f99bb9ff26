/**
 * `idwrap audit query …` (reads the audit store directly, no daemon needed)
 * and `idwrap audit tail …` (follows the daemon's audit queues).
 *
 * @module
 */
import type { Command } from "commander";
import type { AuditFilter } from "../audit/filter.ts";
import { AUDIT_STORE_DEFAULT, AuditLog } from "../audit/log.ts";
import { isMissed } from "../audit/subscription.ts";
import { AUDIT_QUEUES, type AuditRecord, isAuditQueue } from "../audit/record.ts";
import { NoDaemonError, tailClient } from "../audit/stream.ts";
import { EXIT_NO_DAEMON, UsageError } from "./exit.ts";
import { escapeText } from "../trace/strace_text.ts";

export { AUDIT_STORE_DEFAULT };

/** Where `registerAudit` finds the store and the daemon. */
export interface AuditCliContext {
  /** The audit store (a Deno KV path); AUDIT_STORE_DEFAULT unless told otherwise. */
  storePath: () => string;
  /** The daemon's Unix socket in a run directory (the default one when none is given). */
  daemonSocket: (runDir?: string) => string;
}

/** Options of `idwrap audit query`. */
export interface AuditQueryOptions {
  since?: string;
  until?: string;
  queue?: string;
  program?: string;
  wrapper?: string;
  rule?: string;
  outcome?: string;
  host?: string;
  limit?: string;
  json?: boolean;
  store?: string;
}

/** Options of `idwrap audit tail`. */
export interface AuditTailOptions {
  queue?: string[];
  json?: boolean;
  runDir?: string;
}

export { UsageError };

/** ECS `event.outcome` values. */
const OUTCOMES = ["success", "failure", "unknown"];

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A time argument: an ISO date or date-time (`2024-05-01`, `2024-05-01T10:00:00Z`),
 * `now`, or a relative time ago: `30s`, `10m`, `2h`, `1d`, `1w`.
 */
export function parseTime(text: string, now = Date.now()): Date {
  const t = text.trim();
  if (t === "now") return new Date(now);
  const rel = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(t);
  if (rel) return new Date(now - Number(rel[1]) * UNITS[rel[2]]);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const ms = Date.parse(t);
    if (!Number.isNaN(ms)) return new Date(ms);
  }
  throw new UsageError(
    `bad time "${text}": expected an ISO date (2024-05-01, 2024-05-01T10:00:00Z) or a time ago (30s, 10m, 2h, 1d, 1w)`,
  );
}

/** The query filter the options describe; throws UsageError for bad ones. */
export function queryFilter(opts: AuditQueryOptions, now = Date.now()): AuditFilter {
  const filter: AuditFilter = {};
  if (opts.since !== undefined) filter.since = parseTime(opts.since, now);
  if (opts.until !== undefined) filter.until = parseTime(opts.until, now);
  if (filter.since && filter.until && filter.since > filter.until) {
    throw new UsageError(`--since (${filter.since.toISOString()}) is after --until (${filter.until.toISOString()})`);
  }
  if (opts.queue !== undefined) filter.queue = checkQueue(opts.queue);
  if (opts.program !== undefined) filter.program = opts.program;
  if (opts.wrapper !== undefined && opts.rule !== undefined && opts.wrapper !== opts.rule) {
    throw new UsageError(`--wrapper "${opts.wrapper}" and --rule "${opts.rule}" differ: give one`);
  }
  const rule = opts.rule ?? opts.wrapper;
  if (rule !== undefined) filter.wrapper = rule;
  if (opts.outcome !== undefined) {
    if (!OUTCOMES.includes(opts.outcome)) {
      throw new UsageError(`bad --outcome "${opts.outcome}": expected one of ${OUTCOMES.join(", ")}`);
    }
    filter.outcome = opts.outcome;
  }
  if (opts.host !== undefined) filter.host = opts.host;
  if (opts.limit !== undefined) {
    if (!/^\d+$/.test(opts.limit) || Number(opts.limit) < 1) {
      throw new UsageError(`bad --limit "${opts.limit}": expected a positive integer`);
    }
    filter.limit = Number(opts.limit);
  }
  return filter;
}

function checkQueue(q: string): string {
  if (!isAuditQueue(q)) throw new UsageError(`unknown queue "${q}": expected one of ${AUDIT_QUEUES.join(", ")}`);
  return q;
}

/** Whether to colour standard output: a terminal, and NO_COLOR unset or empty. */
export function useColour(): boolean {
  return !Deno.env.get("NO_COLOR") && Deno.stdout.isTerminal();
}

const QUEUE_COLOUR: Record<string, string> = {
  alerts: "\x1b[1;31m",
  verdicts: "\x1b[33m",
  faults: "\x1b[35m",
  audit: "\x1b[36m",
  lifecycle: "\x1b[2m",
};
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/** One record as one line: time, queue, pid, program, message. */
export function formatRecord(r: AuditRecord, colour = false): string {
  const queue = r["idwrap.queue"].padEnd(9);
  // The program's path and a wrapper's message quote what the program chose (a file name, argv): no control
  // character of theirs reaches the operator's terminal (an escape sequence, a newline forging a record).
  const program = escapeText(r["process.executable"] || r["process.name"] || "?");
  let message = r.message;
  const verdict = r["idwrap.verdict"];
  if (verdict && verdict !== "allow" && !message.includes(verdict)) message += ` ! ${verdict}`;
  if (r["event.severity"] !== undefined) message = `[${r["event.severity"]}] ${message}`;
  message = escapeText(message);
  if (!colour) return `${r["@timestamp"]} ${queue} ${r["process.pid"]} ${program} ${message}`;
  const c = QUEUE_COLOUR[r["idwrap.queue"]] ?? "";
  return `${DIM}${r["@timestamp"]}${RESET} ${c}${queue}${RESET} ${r["process.pid"]} ${program} ${message}`;
}

/** Buffered writes to standard output; false once the reader has gone (EPIPE). */
class Output {
  #parts: string[] = [];
  #size = 0;
  #gone = false;
  readonly #encoder = new TextEncoder();

  get gone(): boolean {
    return this.#gone;
  }

  line(text: string, flushNow = false): void {
    if (this.#gone) return;
    this.#parts.push(text + "\n");
    this.#size += text.length + 1;
    if (flushNow || this.#size >= 64 * 1024) this.flush();
  }

  flush(): void {
    if (this.#gone || this.#parts.length === 0) return;
    const bytes = this.#encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    try {
      for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    } catch (e) {
      if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
      this.#gone = true;
    }
  }
}

/** Adds `audit query` and `audit tail` to the CLI. */
export function registerAudit(program: Command, options: AuditCliContext): void {
  const audit = program.command("audit")
    .description("query the audit log, or follow the daemon's audit queues");

  audit.command("query")
    .description("print stored audit records (reads the audit store, through its indexes; no daemon needed)")
    .option("--since <time>", "records at or after: an ISO date, or a time ago (10m, 2h, 1d)")
    .option("--until <time>", "records at or before: an ISO date, or a time ago")
    .option("--queue <queue>", `one queue: ${AUDIT_QUEUES.join(", ")}`)
    .option("--program <glob>", "a glob on the program's path or name (/usr/bin/*, ssh*)")
    .option("--wrapper <name>", "records of this wrapper or rule")
    .option("--rule <name>", "the same as --wrapper: idwrap.wrapper or rule.name")
    .option("--outcome <outcome>", `event.outcome: ${OUTCOMES.join(", ")}`)
    .option("--host <name>", "host.name: records kept on this host")
    .option("--limit <n>", "at most n records, the first in sequence order")
    .option("--json", "one ECS JSON record per line")
    .option("--store <path>", "the audit store (a Deno KV path; default: $IDWRAP_STORE or the user's state directory)")
    .action(async (opts: AuditQueryOptions) => {
      const filter = queryFilter(opts); // a UsageError exits 2
      const path = opts.store ?? options.storePath();
      if (!(await storeExists(path))) return; // nothing recorded yet: nothing matches
      const log = await AuditLog.open(path);
      const out = new Output();
      const colour = !opts.json && useColour();
      try {
        for await (const r of log.query(filter)) {
          out.line(opts.json ? JSON.stringify(r) : formatRecord(r, colour));
          if (out.gone) break;
        }
        out.flush();
      } finally {
        await log.close();
      }
    });

  audit.command("tail")
    .description("follow audit records live from the idwrap daemon")
    .option("--queue <queue>", `a queue to follow (repeatable; all when absent): ${AUDIT_QUEUES.join(", ")}`, collect)
    .option("--json", "one ECS JSON record per line")
    .option("--run-dir <dir>", "the daemon's control sockets (default: the daemon's default run directory)")
    .action(async (opts: AuditTailOptions) => {
      const queues = opts.queue?.length ? opts.queue.map(checkQueue) : "all"; // a UsageError exits 2
      const socket = options.daemonSocket(opts.runDir);
      const out = new Output();
      const colour = !opts.json && useColour();
      try {
        for await (const item of tailClient(socket, queues)) {
          if (isMissed(item)) {
            console.error(`idwrap: missed ${item.missed} records`);
            continue;
          }
          out.line(opts.json ? JSON.stringify(item) : formatRecord(item, colour), true);
          if (out.gone) return;
        }
      } catch (e) {
        if (e instanceof NoDaemonError) {
          console.error(`idwrap: no idwrap daemon at ${socket}; start one with \`idwrap daemon\``);
          Deno.exitCode = EXIT_NO_DAEMON;
          return;
        }
        throw e;
      }
      console.error(`idwrap: the daemon at ${socket} closed the connection`);
      Deno.exitCode = 1;
    });
}

/** Whether a store path names an existing file (remote and in-memory stores count as existing). */
async function storeExists(path: string): Promise<boolean> {
  if (path === ":memory:" || /^https?:/.test(path)) return true;
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
