/**
 * An output: a live subscription to the audit log (behind the journal, so it never holds up the answer to a call)
 * that delivers the records of its queues, at least as severe as it asks, through its transport. A failed delivery
 * is retried with a doubling back-off (250 ms up to `max_backoff_ms`; file and syslog: up to 5 s) until it goes
 * through; meanwhile new records wait in the subscription's buffer (`buffer` records), and when that is full the
 * oldest are dropped — counted (`dropped`), logged, and still in the store. Nothing is dropped silently.
 *
 * @module
 */
import type { AuditLog } from "../audit/log.ts";
import type { AuditRecord } from "../audit/record.ts";
import { isMissed } from "../audit/subscription.ts";
import type { AuditSubscription } from "../audit/subscription.ts";
import type { OutputConfig } from "./config.ts";
import { severityOf } from "./format.ts";
import { openTransport, PartialDelivery, type Transport } from "./transports.ts";

/** What an output did so far (the daemon's metrics). */
export interface OutputStats {
  name: string;
  type: OutputConfig["type"];
  /** Records delivered. */
  delivered: number;
  /** Records dropped: its buffer was full (records arrived faster than it delivered), or it stopped undelivered. */
  dropped: number;
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
  readonly #config: OutputConfig;
  readonly #sub: AuditSubscription;
  readonly #transport: Transport;
  readonly #log: (line: string) => void;
  readonly #done: Promise<void>;
  #inFlight = 0;
  #delivered = 0;
  #failures = 0;
  #droppedAtStop = 0;
  #lastError: string | undefined;
  #stopping = false;
  #wakeRetry: (() => void) | undefined;

  constructor(log: AuditLog, config: OutputConfig, say: (line: string) => void, transport?: Transport) {
    this.#config = config;
    this.#log = say;
    this.#transport = transport ?? openTransport(config);
    this.#sub = log.subscribe(config.queues, { maxBuffered: config.buffer });
    this.#done = this.#run();
  }

  get name(): string {
    return this.#config.name;
  }

  stats(): OutputStats {
    const s: OutputStats = {
      name: this.#config.name,
      type: this.#config.type,
      delivered: this.#delivered,
      dropped: this.#sub.dropped + this.#droppedAtStop,
      failures: this.#failures,
      queued: this.#sub.size + this.#inFlight,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    return s;
  }

  async #run(): Promise<void> {
    const max = this.#config.type === "webhook" ? this.#config.batch : 500;
    for (;;) {
      const first = await this.#sub.next();
      if (first.done) break;
      const batch: AuditRecord[] = [];
      for (const item of [first.value, ...this.#sub.drain(max - 1)]) {
        if (isMissed(item)) {
          this.#log(`output ${this.name}: dropped ${item.missed} records, its buffer was full (the store has them)`);
        } else if (severityOf(item) >= this.#config.minSeverity) batch.push(item);
      }
      if (batch.length) await this.#deliver(batch);
    }
    await this.#transport.close().catch(() => {});
  }

  async #deliver(batch: AuditRecord[]): Promise<void> {
    let rest = batch;
    this.#inFlight = rest.length;
    const cap = this.#config.type === "webhook" ? this.#config.maxBackoffMs : 5000;
    for (let backoff = FIRST_BACKOFF_MS;;) {
      try {
        await this.#transport.deliver(rest);
        this.#delivered += rest.length;
        if (this.#lastError !== undefined) this.#log(`output ${this.name}: delivering again`);
        this.#lastError = undefined;
        break;
      } catch (e) {
        if (e instanceof PartialDelivery) {
          this.#delivered += e.delivered;
          rest = rest.slice(e.delivered);
          this.#inFlight = rest.length;
        }
        this.#failures++;
        const message = (e as Error).message;
        if (this.#lastError === undefined) this.#log(`output ${this.name}: cannot deliver, retrying: ${message}`);
        this.#lastError = message;
        if (this.#stopping) {
          this.#droppedAtStop += rest.length;
          this.#log(`output ${this.name}: stopped with ${rest.length} records undelivered (the store has them)`);
          break;
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
    await this.#done.catch(() => {});
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
