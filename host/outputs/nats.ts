/**
 * The `nats` output's transport: each record published to a NATS JetStream stream on `<prefix>.<host>.<queue>`, one
 * after the other, each waiting for the stream's acknowledgement (so a batch is stored in order, and the output's
 * cursor moves only past what the stream acknowledged). Each message carries `Nats-Msg-Id: <agent.id>:<sequence>`:
 * a record published again after a failure part way (its acknowledgement lost) is dropped by the stream as a
 * duplicate within its duplicate window (2 minutes unless the stream says otherwise). Any failure closes the
 * connection; the next attempt connects again (the output retries with its back-off), so a dead server costs one
 * connection attempt per retry and never holds anything but this output.
 *
 * @module
 */
import { natsAuthOptions } from "./nats_auth.ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import type { AuditRecord } from "../audit/record.ts";
import type { NatsOutputConfig } from "./config.ts";
import { formatRecord } from "./format.ts";
import { PartialDelivery, type Transport, Undeliverable } from "./delivery.ts";
import { cutToFit } from "../audit/fit.ts";

const encoder = new TextEncoder();

/** Room kept in a message for its headers (`Nats-Msg-Id` and the protocol's own line): the server's limit counts both. */
const HEADER_ROOM = 512;

/** A record's id across the fleet: its store's agent id and its sequence there (both kept with the record). */
export function recordId(r: AuditRecord): string {
  return `${r["agent.id"] ?? "unknown-agent"}:${r["event.sequence"] ?? 0}`;
}

/** The subject a record goes to. */
export function natsSubject(config: NatsOutputConfig, r: AuditRecord): string {
  return `${config.subjectPrefix}.${config.host}.${r["idwrap.queue"]}`;
}

/** Publishes batches to a JetStream stream, creating the stream (subjects `<prefix>.>`) when it is missing. */
export class NatsTransport implements Transport {
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;

  constructor(private readonly config: NatsOutputConfig) {}

  async #open(): Promise<JetStreamClient> {
    if (this.#js) return this.#js;
    const { servers, timeoutMs: timeout, stream, subjectPrefix } = this.config;
    // No automatic reconnection: the output's retry is the one loop that decides when to try again.
    const nc = await connect({
      servers,
      timeout,
      reconnect: false,
      name: `idwrap ${this.config.host}`,
      ...natsAuthOptions(this.config.auth),
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout });
      await jsm.streams.info(stream).catch(() => jsm.streams.add({ name: stream, subjects: [`${subjectPrefix}.>`] }));
    } catch (e) {
      await nc.close().catch(() => {});
      throw new Error(`stream ${stream}: ${(e as Error).message}`);
    }
    this.#nc = nc;
    this.#js = jetstream(nc, { timeout });
    return this.#js;
  }

  async #reset(): Promise<void> {
    const nc = this.#nc;
    this.#nc = undefined;
    this.#js = undefined;
    await nc?.close().catch(() => {});
  }

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    let js: JetStreamClient;
    try {
      js = await this.#open();
    } catch (e) {
      await this.#reset();
      throw new Error(`NATS ${this.config.servers.join(",")}: ${(e as Error).message}`);
    }
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      // A message over the server's max_payload is refused every time: cut the record to fit (marked truncated).
      const max = (this.#nc?.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM;
      const encode = (x: AuditRecord) => encoder.encode(JSON.stringify(formatRecord(x, this.config.format)));
      let data = encode(r);
      if (data.length > max) {
        const { value, bytes } = cutToFit(r, (x) => encode(x).length, max);
        if (bytes > max) {
          throw new Undeliverable(i, `record ${r["event.sequence"]}: ${bytes} bytes, more than max_payload allows`);
        }
        data = encode(value);
      }
      try {
        await js.publish(natsSubject(this.config, r), data, { msgID: recordId(r), timeout: this.config.timeoutMs });
      } catch (e) {
        await this.#reset();
        throw new PartialDelivery(i, new Error(`NATS publish: ${(e as Error).message}`));
      }
    }
  }

  close(): Promise<void> {
    return this.#reset();
  }
}
