/**
 * What a transport promises the output (./output.ts): deliver a batch or throw, saying how much of it went out or
 * that the receiver refused it for good. Apart from ./transports.ts so that a transport in a module of its own
 * (./nats.ts) needs nothing of the others.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";

/** A batch that failed part way: its first `delivered` records went out (the output does not send them again). */
export class PartialDelivery extends Error {
  constructor(readonly delivered: number, readonly reason: unknown) {
    super((reason as Error)?.message ?? String(reason));
    this.name = "PartialDelivery";
  }
}

/** The receiver refused the batch for good (HTTP 4xx other than 408 and 429): sending it again cannot help. */
export class Rejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Rejected";
  }
}

/**
 * The record at `index` can never go through this transport (too big for it even cut down): the records before it
 * went out; it is dropped (counted and logged, the store keeps it) and the ones after it follow. Retrying it would
 * hold back every later record for good.
 */
export class Undeliverable extends Error {
  constructor(readonly index: number, message: string) {
    super(message);
    this.name = "Undeliverable";
  }
}

/** Delivers batches of records. */
export interface Transport {
  /** Delivers every record of the batch, or throws (then none is counted delivered, and the batch is retried). */
  deliver(records: readonly AuditRecord[]): Promise<void>;
  close(): Promise<void>;
}
