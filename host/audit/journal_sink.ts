/**
 * The supervisor thread's sink for notable events (verdicts, alerts, faults,
 * lifecycle): each one's audit records are written to the journal
 * (./journal.ts) the moment the event is emitted — the supervisor emits a
 * call's record before it answers the call — and the events go to the main
 * thread in batches, with where each one ends in the journal, for the audit
 * log to index.
 *
 * Memory stays bounded under an alert flood by back-pressure: the main
 * thread counts, in a shared buffer, the events whose records reached Deno
 * KV; while more than `high` sent events are not yet there, `emit` blocks
 * the supervisor thread (so the flooding caller waits for its answer) until
 * the backlog is back to half. Waits are counted and reported with each
 * session's summary (`auditWaits`: `idwrap run` prints them).
 *
 * @module
 */
import type { EventSink } from "../decider.ts";
import { isNotable } from "../event_text.ts";
import type { HostEvent } from "../events.ts";
import type { JournalMarks, JournalWriter } from "./journal.ts";
import { toAuditRecords } from "./record.ts";

/** Slots of the shared Int32Array between the supervisor thread and the main thread. */
export const PRESSURE = {
  /** Events the main thread has kept (their records are in Deno KV, or failed to get there). Main writes. */
  kept: 0,
} as const;

/** A shared buffer for the counters above. */
export function pressureBuffer(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** Events sent and not yet kept beyond which the supervisor waits. */
export const DEFAULT_HIGH_WATER = 4096;

/** A journal this long is closed for a new one (once the main thread kept everything in it). */
export const DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024;

/** Tuning of a JournalSink. */
export interface JournalSinkOptions {
  /** Events sent and not kept beyond which `emit` waits. @default DEFAULT_HIGH_WATER */
  high?: number;
  /** Journal size at which it is rotated. @default DEFAULT_ROTATE_BYTES */
  rotateBytes?: number;
}

/** What the sink needs to report. */
export type PostEvents = (events: HostEvent[], marks?: JournalMarks) => void;

/** Journals notable events, then batches them for the main thread; see the module doc. */
export class JournalSink implements EventSink {
  readonly wantsSyscalls: boolean;
  #batch: HostEvent[] = [];
  #ends: number[] = [];
  #sent = 0;
  #waits = 0;
  #waitedMs = 0;
  #unjournaled = 0;
  readonly #high: number;
  readonly #rotateBytes: number;

  constructor(
    private readonly post: PostEvents,
    private readonly local: EventSink | undefined,
    private journal: JournalWriter | undefined,
    private readonly pressure: Int32Array | undefined,
    options: JournalSinkOptions = {},
  ) {
    this.wantsSyscalls = local?.wantsSyscalls ?? false;
    this.#high = options.high ?? DEFAULT_HIGH_WATER;
    this.#rotateBytes = options.rotateBytes ?? DEFAULT_ROTATE_BYTES;
  }

  /** The journal being written (it changes on rotation). */
  get journalPath(): string | undefined {
    return this.journal?.path;
  }

  /** Events other than calls' that could not be journaled (they still went to the main thread). */
  get unjournaled(): number {
    return this.#unjournaled;
  }

  /**
   * Journals the event's records, then batches it. A call's record that cannot be journaled (a full disk) throws, so
   * the supervisor fails that call closed and reports a fault. Other events (lifecycle, faults, a wrapper's reports,
   * which the call's own record repeats) are counted instead: throwing there would stop the supervisor, or count as
   * the reporting wrapper's failure.
   */
  emit(event: HostEvent): void {
    this.local?.emit(event);
    if (!isNotable(event)) return;
    let end = this.journal?.offset ?? 0;
    if (this.journal) {
      const records = toAuditRecords(event);
      try {
        if (records.length) end = this.journal.append(records);
      } catch (e) {
        if (event.kind === "syscall") throw e;
        this.#unjournaled++;
      }
    }
    this.#batch.push(event);
    this.#ends.push(end);
    if (this.pressure && this.#backlog(this.#sent + this.#batch.length) > this.#high) {
      this.flush();
      this.#waitForMain(this.#high / 2);
    }
    if (this.journal && this.journal.offset >= this.#rotateBytes) this.#rotate();
  }

  /**
   * Starts a new journal once the main thread kept everything sent (so the old one's records are all in the store,
   * or failed to get there and are marked as not): the old one, closed and unlocked, is then the audit log's to
   * remove on its next replay, and the journal does not grow without bound in a long-running daemon.
   */
  #rotate(): void {
    this.flush();
    if (this.pressure) this.#waitForMain(0);
    const next = this.journal!.successor();
    this.journal!.close();
    this.journal = next;
  }

  flush(): void {
    this.local?.flush();
    if (!this.#batch.length) return;
    const events = this.#batch.splice(0);
    const ends = this.#ends.splice(0);
    this.#sent += events.length;
    this.post(events, this.journal ? { file: this.journal.file, ends } : undefined);
  }

  /** Times `emit` waited for the main thread to catch up, and for how long in all. */
  get waits(): { count: number; ms: number } {
    return { count: this.#waits, ms: this.#waitedMs };
  }

  /** Closes the journal (its lock goes: the audit log then indexes what is left and removes it). */
  close(): void {
    this.flush();
    this.journal?.close();
  }

  /** Sent (or about to be) and not kept; the counters are 32-bit and wrap, so the difference is taken modulo 2^32. */
  #backlog(sent: number): number {
    return ((sent | 0) - Atomics.load(this.pressure!, PRESSURE.kept)) | 0;
  }

  /** Blocks this thread until at most `target` sent events are not kept by the main thread. */
  #waitForMain(target: number): void {
    if (this.#backlog(this.#sent) <= target) return;
    const started = performance.now();
    while (this.#backlog(this.#sent) > target) {
      Atomics.wait(this.pressure!, PRESSURE.kept, Atomics.load(this.pressure!, PRESSURE.kept), 100);
    }
    const ms = Math.round(performance.now() - started);
    this.#waits++;
    this.#waitedMs += ms;
  }
}
