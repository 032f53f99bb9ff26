/**
 * An output: a live subscription to the audit log (behind the journal, so it never holds up the answer to a call)
 * that delivers the records of its queues, at least as severe as it asks, through its transport. A failed delivery
 * is retried with a doubling back-off (250 ms up to `max_backoff_ms` for webhook and nats; file and syslog: up to 5 s) until it goes
 * through; meanwhile new records wait in the subscription's buffer (`buffer` records, in memory). The store is the
 * buffer on disk: when the subscription was full and dropped records, the output reads them back from the store
 * (they are there: the journal put them there); and it keeps where it got to in the store (its cursor), so after a
 * restart, or a daemon killed, it first delivers what came since. Only records the store no longer has (expired)
 * are dropped — counted (`dropped`) and logged. Delivery is at least once: a record can come twice after a failure
 * part way, never be lost silently.
 *
 * @module
 */
import type { AuditLog } from "../audit/log.ts";
import type { AuditRecord } from "../audit/record.ts";
import { isMissed } from "../audit/subscription.ts";
import type { AuditSubscription } from "../audit/subscription.ts";
import type { OutputConfig } from "./config.ts";
import { severityOf } from "./format.ts";
import { openTransport, PartialDelivery, redactUrls, Rejected, type Transport, Undeliverable } from "./transports.ts";

/** What an output did so far (the daemon's metrics). */
export interface OutputStats {
  name: string;
  type: OutputConfig["type"];
  /** Records delivered. */
  delivered: number;
  /**
   * Records dropped: missed and gone from the store (expired), refused for good by the receiver (HTTP 4xx), or too big
   * for the transport even cut down.
   */
  dropped: number;
  /** Records it missed live (its buffer was full) and read back from the store. */
  recovered: number;
  /** Records it stopped without delivering: after its cursor, delivered from the store at its next start. */
  undelivered: number;
  /** Failed delivery attempts (each retried). */
  failures: number;
  /** Records waiting: buffered, and the batch being delivered. */
  queued: number;
  /** The last failure's message, until a delivery succeeds. */
  lastError?: string;
}

const FIRST_BACKOFF_MS = 250;

/** One running output. */
export class Output {
  readonly #auditLog: AuditLog;
  readonly #config: OutputConfig;
  readonly #sub: AuditSubscription;
  readonly #transport: Transport;
  readonly #log: (line: string) => void;
  readonly #done: Promise<void>;
  #inFlight = 0;
  #delivered = 0;
  #failures = 0;
  #dropped = 0;
  #recovered = 0;
  /** The last sequence delivered or passed over (filtered out); what the store holds after it is still to do. */
  #last = 0;
  #cursorWrite: Promise<void> = Promise.resolve();
  #cursorQueued = false;
  #lastError: string | undefined;
  #stopping = false;
  /** Records it stopped without delivering (they stay after its cursor in the store). */
  #undelivered = 0;
  #wakeRetry: (() => void) | undefined;

  constructor(log: AuditLog, config: OutputConfig, say: (line: string) => void, transport?: Transport) {
    this.#auditLog = log;
    this.#config = config;
    this.#log = say;
    this.#transport = transport ?? openTransport(config);
    // Live records from here on are numbered after `live`: what the store has up to it comes from the store.
    this.#sub = log.subscribe(config.queues, { maxBuffered: config.buffer });
    // An output that breaks (the store unreadable) stops alone, said: it never takes the daemon down.
    this.#done = this.#run(log.lastSequence).catch((e) => {
      this.#lastError = redactUrls((e as Error).message);
      this.#log(
        `output ${this.name}: stopped by an error; it resumes from its cursor at the next start: ${
          redactUrls(String(e))
        }`,
      );
    });
  }

  get name(): string {
    return this.#config.name;
  }

  stats(): OutputStats {
    const s: OutputStats = {
      name: this.#config.name,
      type: this.#config.type,
      delivered: this.#delivered,
      dropped: this.#dropped,
      recovered: this.#recovered,
      undelivered: this.#undelivered,
      failures: this.#failures,
      queued: this.#sub.size + this.#inFlight,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    return s;
  }

  async #run(live: number): Promise<void> {
    const max = this.#config.type === "webhook" || this.#config.type === "nats" ? this.#config.batch : 500;
    const cursor = await this.#auditLog.cursor(this.name).catch(() => undefined);
    // First start: from now on. Since: what the store got meanwhile (a restart, a daemon killed), first.
    this.#last = cursor ?? live;
    if (cursor === undefined) this.#saveCursor();
    else if (cursor < live) {
      const n = await this.#fromStore(cursor, live + 1, max);
      if (n) this.#log(`output ${this.name}: delivered ${n} records kept while it was not running`);
    }
    let missed = 0;
    for (;;) {
      const first = await this.#sub.next();
      if (first.done) break;
      const batch: AuditRecord[] = [];
      for (const item of [first.value, ...this.#sub.drain(max - 1)]) {
        if (isMissed(item)) {
          missed += item.missed;
          continue;
        }
        const seq = item["event.sequence"] ?? 0;
        if (missed) {
          // The buffer was full: what it dropped is in the store, between the last record handled and this one.
          await this.#deliverAll(batch.splice(0));
          const found = await this.#fromStore(this.#last, seq, max);
          this.#recovered += Math.min(found, missed);
          if (found < missed) {
            this.#dropped += missed - found;
            this.#log(`output ${this.name}: dropped ${missed - found} records, no longer in the store`);
          }
          this.#log(`output ${this.name}: its buffer was full; read ${found} records back from the store`);
          missed = 0;
        }
        if (seq <= this.#last) continue; // delivered from the store already
        if (severityOf(item) >= this.#config.minSeverity) batch.push(item);
        else if (!batch.length) this.#passed(seq);
      }
      await this.#deliverAll(batch);
    }
    if (missed) await this.#fromStore(this.#last, this.#auditLog.lastSequence + 1, max);
    await this.#cursorWrite;
    await this.#transport.close().catch(() => {});
  }

  /**
   * Delivers the stored records of its queues numbered after `after` and before `before`, at least as severe as it
   * asks, in batches; returns how many of its queues' records the store had there (delivered or filtered out).
   */
  async #fromStore(after: number, before: number, max: number): Promise<number> {
    const queues = new Set<string>(this.#config.queues);
    let found = 0;
    let batch: AuditRecord[] = [];
    for await (const r of this.#auditLog.range(after + 1, before - 1)) {
      if (!queues.has(r["idwrap.queue"])) continue;
      found++;
      if (severityOf(r) >= this.#config.minSeverity) batch.push(r);
      if (batch.length >= max) {
        await this.#deliverAll(batch);
        batch = [];
      }
    }
    await this.#deliverAll(batch);
    if (before - 1 > this.#last) this.#passed(before - 1);
    return found;
  }

  /** Delivers a batch (retrying), then moves the cursor past it. */
  async #deliverAll(batch: AuditRecord[]): Promise<void> {
    if (!batch.length) return;
    if (await this.#deliver(batch)) this.#passed(batch[batch.length - 1]["event.sequence"] ?? this.#last);
  }

  /** Everything up to `seq` is done: keep it in the store (in order, one write at a time). */
  #passed(seq: number): void {
    // Stopped with records undelivered: the cursor stays before them, for the next start.
    if (seq <= this.#last || this.#undelivered) return;
    this.#last = seq;
    this.#saveCursor();
  }

  /** One write at a time, of the latest position when it runs: a burst of moves costs one or two writes. */
  #saveCursor(): void {
    if (this.#cursorQueued) return;
    this.#cursorQueued = true;
    this.#cursorWrite = this.#cursorWrite.then(() => {
      this.#cursorQueued = false;
      return this.#auditLog.setCursor(this.name, this.#last);
    }).catch(() => {});
  }

  /** Delivers a batch, retrying until it goes through (true) or the output stops (false). */
  async #deliver(batch: AuditRecord[]): Promise<boolean> {
    if (this.#stopping && this.#undelivered) {
      this.#undelivered += batch.length; // still failing at stop: no more attempts, the next start delivers them
      return false;
    }
    let rest = batch;
    this.#inFlight = rest.length;
    const cap = this.#config.type === "webhook" || this.#config.type === "nats" ? this.#config.maxBackoffMs : 5000;
    for (let backoff = FIRST_BACKOFF_MS;;) {
      try {
        await this.#transport.deliver(rest);
        this.#delivered += rest.length;
        if (this.#lastError !== undefined) this.#log(`output ${this.name}: delivering again`);
        this.#lastError = undefined;
        break;
      } catch (e) {
        if (e instanceof Rejected) {
          this.#failures++;
          await this.#rejected(rest, e);
          break;
        }
        if (e instanceof Undeliverable) {
          // Too big for the transport even cut down: dropped alone, at once; the records after it follow.
          this.#delivered += e.index;
          this.#dropped++;
          this.#log(`output ${this.name}: ${redactUrls(e.message)}; dropped, the store has it`);
          rest = rest.slice(e.index + 1);
          this.#inFlight = rest.length;
          if (!rest.length) break;
          continue;
        }
        if (e instanceof PartialDelivery) {
          this.#delivered += e.delivered;
          rest = rest.slice(e.delivered);
          this.#inFlight = rest.length;
        }
        this.#failures++;
        const message = redactUrls((e as Error).message); // whatever the transport, no token reaches a log
        if (this.#lastError === undefined) this.#log(`output ${this.name}: cannot deliver, retrying: ${message}`);
        this.#lastError = message;
        if (this.#stopping) {
          this.#inFlight = 0;
          if (!this.#undelivered) {
            this.#log(`output ${this.name}: stopping with records undelivered; it delivers them when it next starts`);
          }
          this.#undelivered += rest.length;
          return false;
        }
        await new Promise<void>((r) => {
          const timer = setTimeout(r, backoff);
          this.#wakeRetry = () => {
            clearTimeout(timer);
            r();
          };
        });
        this.#wakeRetry = undefined;
        backoff = Math.min(backoff * 2, cap);
      }
    }
    this.#inFlight = 0;
    return true;
  }

  /**
   * The receiver refused a batch for good: halves are sent apart until the records it refuses are alone, and those
   * are dropped, counted and logged (the store keeps them) — one bad record must not hold back every later one.
   */
  async #rejected(batch: AuditRecord[], e: Rejected): Promise<void> {
    if (batch.length === 1) {
      this.#dropped++;
      this.#log(
        `output ${this.name}: record ${batch[0]["event.sequence"]} refused (${
          redactUrls(e.message)
        }), dropped; the store has it`,
      );
      return;
    }
    const half = batch.length >> 1;
    for (const part of [batch.slice(0, half), batch.slice(half)]) {
      try {
        await this.#transport.deliver(part);
        this.#delivered += part.length;
      } catch (again) {
        if (again instanceof Rejected) await this.#rejected(part, again);
        else await this.#deliver(part); // a passing failure: retried as any other
      }
    }
  }

  /**
   * Stops once what it holds is delivered, waiting at most `graceMs` (then one last attempt each, and what still
   * fails is counted dropped).
   */
  async stop(graceMs = 5000): Promise<void> {
    this.#sub.end(); // what it holds is delivered; nothing new comes
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graced = new Promise<void>((r) => timer = setTimeout(r, graceMs));
    await Promise.race([this.#done, graced]);
    clearTimeout(timer);
    this.#stopping = true;
    this.#wakeRetry?.();
    await this.#done;
    this.#sub.close();
  }
}

/** Every configured output of a daemon. */
export class Outputs {
  readonly #outputs: Output[];

  constructor(log: AuditLog, configs: readonly OutputConfig[], say: (line: string) => void) {
    this.#outputs = configs.map((c) => new Output(log, c, say));
  }

  stats(): OutputStats[] {
    return this.#outputs.map((o) => o.stats());
  }

  async stop(graceMs?: number): Promise<void> {
    await Promise.all(this.#outputs.map((o) => o.stop(graceMs)));
  }
}
