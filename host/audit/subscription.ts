/**
 * One subscriber's view of the audit log (./log.ts): a bounded buffer of
 * live records that drops its oldest unread ones, counted and reported as a
 * missed marker, when the subscriber does not keep up.
 *
 * @module
 */
import type { AuditRecord } from "./record.ts";

/** What a subscriber reads instead of records it lost because it did not keep up. */
export interface Missed {
  missed: number;
}

/** What a subscription yields. */
export type AuditItem = AuditRecord | Missed;

/** Whether an item is a missed-records marker. */
export function isMissed(item: AuditItem): item is Missed {
  return "missed" in item && !("idwrap.queue" in item);
}

/** Options of `AuditLog.subscribe`. */
export interface SubscribeOptions {
  /** Records kept for a subscriber that is not reading; beyond, its oldest unread records are dropped. @default 10000 */
  maxBuffered?: number;
}

/**
 * One subscriber's view of the log: an async iterator of records (in
 * sequence order) and missed markers. It buffers at most `maxBuffered`
 * records; when full, the oldest is dropped and counted, and the next read
 * returns `{ missed: N }` before the (newer) buffered records. Made by
 * `AuditLog.subscribe`.
 */
export class AuditSubscription implements AsyncIterableIterator<AuditItem> {
  /** The queues this subscription receives, or "all". */
  readonly queues: ReadonlySet<string> | "all";
  readonly #capacity: number;
  readonly #ring: (AuditRecord | undefined)[];
  #head = 0;
  #size = 0;
  #missed = 0;
  #dropped = 0;
  #waiter: ((result: IteratorResult<AuditItem>) => void) | undefined;
  #ended = false;
  #closed = false;
  #detach: (() => void) | undefined;

  /** @internal Use `AuditLog.subscribe`. */
  constructor(queues: ReadonlySet<string> | "all", maxBuffered: number, detach: () => void) {
    this.queues = queues;
    this.#capacity = maxBuffered;
    this.#ring = new Array(maxBuffered);
    this.#detach = detach;
  }

  /** Records dropped for this subscriber so far (reported or not). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Records it holds, unread. */
  get size(): number {
    return this.#size;
  }

  /** Whether it will yield nothing more than what it holds. */
  get ended(): boolean {
    return this.#ended || this.#closed;
  }

  /** @internal Called by the log for every record; never blocks. */
  offer(record: AuditRecord): void {
    if (this.#closed || this.#ended) return;
    if (this.queues !== "all" && !this.queues.has(record["idwrap.queue"])) return;
    if (this.#waiter) {
      // A waiting reader means nothing is buffered or missed: hand it over.
      const w = this.#waiter;
      this.#waiter = undefined;
      w({ value: record, done: false });
      return;
    }
    if (this.#size === this.#capacity) {
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#capacity;
      this.#size--;
      this.#missed++;
      this.#dropped++;
    }
    this.#ring[(this.#head + this.#size) % this.#capacity] = record;
    this.#size++;
  }

  /** @internal Called when the log closes: what is buffered can still be read. */
  end(): void {
    this.#ended = true;
    this.#detach = undefined;
    this.#wake();
  }

  /** The next item if one is ready, without waiting. */
  take(): AuditItem | undefined {
    if (this.#closed) return undefined;
    if (this.#missed > 0) {
      const missed = this.#missed;
      this.#missed = 0;
      return { missed };
    }
    if (this.#size === 0) return undefined;
    const record = this.#ring[this.#head]!;
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#capacity;
    this.#size--;
    return record;
  }

  /** Every item ready now (at most `max`), without waiting. */
  drain(max = Infinity): AuditItem[] {
    const out: AuditItem[] = [];
    for (let item; out.length < max && (item = this.take()) !== undefined;) out.push(item);
    return out;
  }

  next(): Promise<IteratorResult<AuditItem>> {
    const item = this.take();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#closed || this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter) return Promise.reject(new Error("AuditSubscription.next: a read is already waiting"));
    return new Promise((resolve) => this.#waiter = resolve);
  }

  return(): Promise<IteratorResult<AuditItem>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<AuditItem> {
    return this;
  }

  /** Stops receiving; buffered records are discarded and a waiting read ends. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring.fill(undefined);
    this.#size = 0;
    this.#missed = 0;
    this.#detach?.();
    this.#detach = undefined;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.({ value: undefined, done: true });
  }
}
