/**
 * The audit log: every audit record, numbered, kept in Deno KV for a
 * retention period and fanned out live to subscribers (the paper's audit
 * queues, section 2.3). `append` is synchronous and never waits: records
 * reach Deno KV in order in the background, and a subscriber that does not
 * keep up loses its oldest unread records (counted, never silently), not the
 * log's copy.
 *
 * Keys: `["audit", "seq", <sequence: bigint>]` → the record, with `expireIn`;
 * `["audit", "meta", "last-sequence"]` → the last sequence written (no
 * expiry), so numbers are never reused even when every record has expired.
 * Each record's index entries (`["audit", "idx", …]`, ./index.ts) are
 * committed with it, with the same `expireIn`; `["audit", "meta",
 * "indexed-from"]` → the first sequence written with them (records below it,
 * from a store older than the indexes, are scanned).
 * The wrappers' store (host/store/kv.ts) uses `["idwrap", …]`, so both live
 * in one file.
 *
 * Beside it: one subscriber's buffer (./subscription.ts), what a query
 * selects (./filter.ts), a record cut to fit a Deno KV value (./fit.ts).
 *
 * @module
 */
import { defaultStorePath, prepareStoreFile } from "../store/kv.ts";
import { join } from "node:path";
import { journalDir, type JournalMarks, orphanJournals, readJournal } from "./journal.ts";
import { type AuditFilter, auditFilter } from "./filter.ts";
import { fit } from "./fit.ts";
import { indexKeys, type IndexRange, indexRanges } from "./index.ts";
import { agentId, type AgentIdentity, agentIdentity } from "./identity.ts";
import { AUDIT_QUEUES, type AuditRecord, isAuditQueue } from "./record.ts";
import { AuditSubscription, type SubscribeOptions } from "./subscription.ts";

/** Where the audit log lives unless told: the wrappers' store file (`$IDWRAP_STORE`, else the state directory). */
export const AUDIT_STORE_DEFAULT: () => string = defaultStorePath;

/** The key prefix of the records. */
export const AUDIT_PREFIX = ["audit", "seq"] as const;
const LAST_KEY = ["audit", "meta", "last-sequence"] as const;
/** `[…, <journal file name>]` → how far (bytes) that journal is indexed; committed with the records. */
const JOURNAL_KEY = ["audit", "meta", "journal"] as const;
/** `[…, <output name>]` → the last sequence an output has delivered or passed over (host/outputs/output.ts). */
const CURSOR_KEY = ["audit", "meta", "output"] as const;
/** The first sequence stored with its index entries (no expiry): the ones below it are older than the indexes. */
const INDEXED_FROM_KEY = ["audit", "meta", "indexed-from"] as const;
/** Journal entries replayed between two waits for Deno KV (bounds the replay's memory). */
const REPLAY_CHUNK = 2000;

const DAY_MS = 24 * 60 * 60 * 1000;
/** Deno KV takes at most 1000 mutations and 800 KiB per atomic commit; we stay well under. */
const BATCH_RECORDS = 500;
const BATCH_BYTES = 600 * 1024;
/** With the index entries: mutations (of at most 1000) and key bytes (of at most 80 KiB) per commit. */
const BATCH_MUTATIONS = 900;
const BATCH_KEY_BYTES = 60 * 1024;
/** An index whose range holds more than this share of the records is not worth a get per record: scan. */
const INDEX_MAX_SHARE = 0.25;

/** How `query` answers a filter (for tests and benchmarks). */
export interface QueryPlan {
  /** The index used for the records written with index entries, or "scan". */
  index: IndexRange["field"] | "scan";
  /** Records below this sequence are older than the indexes and scanned. */
  indexedFrom: number;
}

/** Options of `AuditLog.open`. */
export interface AuditLogOptions {
  /** How long records are kept (Deno KV `expireIn`). @default 30 */
  retentionDays?: number;
  /** Index the journals no live process writes (./journal.ts) before returning. @default true */
  replay?: boolean;
}

/** What a replay of the journals found. */
export interface ReplayReport {
  journals: number;
  records: number;
  /** Bytes of damaged or cut-short lines skipped. */
  damagedBytes: number;
}

/** `more`: the next pending record is of the same journal line (batches never split a line). */
type Pending = { record: AuditRecord; bytes: number; more?: boolean; mark?: { file: string; end: number } };
type Waiter = { seq: number; resolve: () => void; reject: (e: unknown) => void };

/** The audit log over one Deno KV database. */
export class AuditLog {
  readonly #kv: Deno.Kv;
  readonly #path: string;
  readonly #expireIn: number;
  /** host.* and agent.* of every record kept (./identity.ts). */
  #identity: [string, unknown][] = [];
  /** The versionstamp of the last-sequence key as we last wrote or read it: another writer changes it. */
  #lastStamp: string | null = null;
  readonly #subscribers = new Set<AuditSubscription>();
  /** The last sequence number assigned. */
  #seq: number;
  /** The last sequence number known durable. */
  #durable: number;
  #pending: Pending[] = [];
  /** Journal files with records appended here and not yet committed: a replay leaves them to this log. */
  readonly #unindexed = new Map<string, number>();
  #syncing: Promise<void> | undefined;
  #syncNext: string | undefined;
  #writer: Promise<void> | undefined;
  #waiters: Waiter[] = [];
  #error: unknown;
  #closed = false;
  /** The first sequence stored with index entries. */
  #indexedFrom = 1;

  private constructor(kv: Deno.Kv, path: string, last: number, retentionDays: number) {
    this.#kv = kv;
    this.#path = path;
    this.#seq = this.#durable = last;
    this.#expireIn = Math.max(1, Math.round(retentionDays * DAY_MS));
  }

  /**
   * Opens (creating if needed) the log.
   *
   * @param path a file path (its directory is created), `:memory:`, or a remote KV URL
   */
  static async open(path: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    const retentionDays = options.retentionDays ?? 30;
    if (!(retentionDays > 0) || !Number.isFinite(retentionDays)) {
      throw new RangeError(`retentionDays must be a positive number, got ${retentionDays}`);
    }
    await prepareStoreFile(path);
    const kv = await Deno.openKv(path);
    try {
      let last = 0;
      const meta = await kv.get<bigint>(LAST_KEY);
      if (typeof meta.value === "bigint") last = Number(meta.value);
      const stamp = meta.versionstamp;
      for await (const e of kv.list({ prefix: [...AUDIT_PREFIX] }, { reverse: true, limit: 1 })) {
        const seq = e.key[e.key.length - 1];
        if (typeof seq === "bigint" && Number(seq) > last) last = Number(seq);
      }
      const log = new AuditLog(kv, path, last, retentionDays);
      log.#lastStamp = stamp;
      log.#indexedFrom = await indexedFrom(kv, last);
      log.#identity = Object.entries(agentIdentity(await agentId(kv)));
      if (options.replay ?? true) await log.replay();
      return log;
    } catch (e) {
      kv.close();
      throw e;
    }
  }

  /** The last sequence number assigned (0 for an empty log). */
  get lastSequence(): number {
    return this.#seq;
  }

  /** The host and agent fields this log sets on the records it keeps. */
  get identity(): AgentIdentity {
    return Object.fromEntries(this.#identity) as unknown as AgentIdentity;
  }

  /** Live subscriptions. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Why the last background write failed, if it did (the next append or flush retries). */
  get lastError(): unknown {
    return this.#error;
  }

  /**
   * Numbers the records (`event.sequence`), hands them to live subscribers
   * and queues them for Deno KV. Never waits. The records are copied, and
   * the copies frozen: subscribers share them.
   */
  append(records: readonly AuditRecord[]): void {
    if (this.#closed) throw new Error("The audit log is closed");
    if (records.length === 0) return;
    for (const record of records) this.#add(record);
    this.#schedule();
  }

  /**
   * Appends records the supervisor journaled, one group per journal line;
   * `marks.ends[i]` is where group i's line ends. Each Deno KV batch also
   * records how far into the journal it reaches, so a replay indexes exactly
   * what was not (./journal.ts).
   */
  appendJournaled(groups: readonly (readonly AuditRecord[])[], marks?: JournalMarks): void {
    if (this.#closed) throw new Error("The audit log is closed");
    if (marks) this.#syncJournal(marks.file);
    groups.forEach((records, i) => {
      records.forEach((record, j) => {
        const last = j === records.length - 1;
        this.#add(record, !last, last && marks ? { file: marks.file, end: marks.ends[i] } : undefined);
      });
    });
    this.#schedule();
  }

  /**
   * fdatasync(2)s a journal in the background (Deno's blocking-call threads), at most one at a time, so the records
   * not yet in Deno KV survive a power loss too. Never on the supervisor thread: under other I/O one can take seconds.
   */
  #syncJournal(file: string): void {
    const dir = journalDir(this.#path);
    if (!dir) return;
    if (this.#syncing) {
      this.#syncNext = file;
      return;
    }
    this.#syncing = (async () => {
      try {
        using f = await Deno.open(join(dir, file), { read: true });
        await f.syncData();
      } catch { /* rotated and removed meanwhile: its records are in Deno KV */ }
    })().finally(() => {
      this.#syncing = undefined;
      const next = this.#syncNext;
      this.#syncNext = undefined;
      if (next !== undefined && !this.#closed) this.#syncJournal(next);
    });
  }

  /** Records appended and not yet known to be in Deno KV. */
  get backlog(): number {
    return this.#seq - this.#durable;
  }

  #add(record: AuditRecord, more?: boolean, mark?: Pending["mark"]): void {
    const full: Record<string, unknown> = { ...record, "event.sequence": ++this.#seq };
    // A record that already names its host (kept elsewhere, then replayed here) keeps it.
    for (const [k, v] of this.#identity) if (!(k in full)) full[k] = v;
    const { value, bytes } = fit(full as unknown as AuditRecord);
    const fields = value as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(fields)) if (Array.isArray(v)) fields[k] = Object.freeze(v.slice());
    Object.freeze(value);
    for (const sub of this.#subscribers) sub.offer(value);
    this.#pending.push({ record: value, bytes, more, mark });
    if (mark) this.#unindexed.set(mark.file, (this.#unindexed.get(mark.file) ?? 0) + 1);
  }

  /**
   * Indexes every journal whose writer is gone (killed, or ended) from where
   * the store says it stopped, then removes it. Memory stays bounded: the
   * journal is read in chunks and each chunk reaches Deno KV before the next.
   */
  async replay(): Promise<ReplayReport> {
    const report: ReplayReport = { journals: 0, records: 0, damagedBytes: 0 };
    for (const j of orphanJournals(this.#path)) {
      if (this.#unindexed.get(j.file)) {
        j.release(); // its last records are on their way from this log; the next replay takes the file
        continue;
      }
      try {
        const done = await this.#kv.get<bigint>([...JOURNAL_KEY, j.file]);
        const from = typeof done.value === "bigint" ? Number(done.value) : 0;
        let groups: AuditRecord[][] = [];
        let ends: number[] = [];
        const push = async () => {
          this.appendJournaled(groups, { file: j.file, ends });
          report.records += groups.reduce((n, g) => n + g.length, 0);
          groups = [];
          ends = [];
          await this.flush();
        };
        for await (const entry of readJournal(j.path, from, (bytes) => report.damagedBytes += bytes)) {
          groups.push(entry.records);
          ends.push(entry.end);
          if (groups.length >= REPLAY_CHUNK) await push();
        }
        await push();
        await Deno.remove(j.path).catch(() => {});
        report.journals++;
      } finally {
        j.release();
      }
    }
    return report;
  }

  /** Resolves when every record appended so far is in Deno KV; rejects if a write failed. */
  flush(): Promise<void> {
    if (this.#durable >= this.#seq) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ seq: this.#seq, resolve, reject }));
    this.#schedule();
    return done;
  }

  /**
   * A live view of the queues from now on.
   *
   * @param queues queue names (see AUDIT_QUEUES) or "all"
   */
  subscribe(queues: readonly string[] | "all", options: SubscribeOptions = {}): AuditSubscription {
    const maxBuffered = options.maxBuffered ?? 10000;
    if (!Number.isInteger(maxBuffered) || maxBuffered < 1) {
      throw new RangeError(`maxBuffered must be a positive integer, got ${maxBuffered}`);
    }
    if (queues !== "all") {
      const unknown = queues.find((q) => !isAuditQueue(q));
      if (unknown !== undefined) {
        throw new Error(`Unknown audit queue "${unknown}": expected one of ${AUDIT_QUEUES.join(", ")} or "all"`);
      }
    }
    const set = queues === "all" ? "all" : new Set(queues);
    const sub: AuditSubscription = new AuditSubscription(set, maxBuffered, () => this.#subscribers.delete(sub));
    if (this.#closed) sub.end();
    else this.#subscribers.add(sub);
    return sub;
  }

  /**
   * Stored records matching the filter, in sequence order (after flushing what was appended here). The records
   * written with index entries are found through the most selective index the filter names (./index.ts), then got
   * one by one; a filter no index covers, or whose smallest index range holds too many records, scans. Records older
   * than the indexes (below `indexed-from`) are always scanned.
   */
  async *query(filter: AuditFilter = {}): AsyncGenerator<AuditRecord> {
    const limit = filter.limit ?? Infinity;
    if (limit <= 0) return;
    if (filter.since && filter.until && filter.since > filter.until) return; // nothing, and an inverted key range
    if (!this.#closed) await this.flush();
    const matches = auditFilter(filter);
    let n = 0;
    const picked = await this.#pick(filter);
    // Everything when no index answers; else only the records older than the indexes, if any.
    const scan: Deno.KvListSelector | undefined = picked === undefined
      ? { prefix: [...AUDIT_PREFIX] }
      : this.#indexedFrom > 1
      ? { prefix: [...AUDIT_PREFIX], end: [...AUDIT_PREFIX, BigInt(this.#indexedFrom)] }
      : undefined;
    if (scan) {
      for await (const e of this.#kv.list<AuditRecord>(scan, { batchSize: 500 })) {
        const r = e.value;
        if (!matches(r)) continue;
        yield r;
        if (++n >= limit) return;
      }
    }
    if (picked === undefined) return;
    // Index entries whose record is gone (expired first, or deleted) are passed over.
    for (let i = 0; i < picked.length; i += 100) {
      const chunk = picked.slice(i, i + 100);
      const got = await Promise.all(
        Array.from(
          { length: Math.ceil(chunk.length / 10) },
          (_, j) => this.#kv.getMany<AuditRecord[]>(chunk.slice(j * 10, j * 10 + 10).map((q) => [...AUDIT_PREFIX, q])),
        ),
      );
      for (const e of got.flat()) {
        const r = e.value;
        if (r === null || !matches(r)) continue;
        yield r;
        if (++n >= limit) return;
      }
    }
  }

  /** How `query` would answer a filter now. */
  async plan(filter: AuditFilter): Promise<QueryPlan> {
    const ranges = indexRanges(filter);
    const picked = ranges.length ? await this.#smallest(ranges) : undefined;
    return { index: picked?.field ?? "scan", indexedFrom: this.#indexedFrom };
  }

  /** The sorted sequences (at or above indexed-from) of the smallest index range the filter names, if one is small. */
  async #pick(filter: AuditFilter): Promise<bigint[] | undefined> {
    const ranges = indexRanges(filter);
    if (ranges.length === 0) return undefined;
    return (await this.#smallest(ranges))?.seqs;
  }

  /**
   * Lists the ranges side by side, a batch from each in turn, until one ends: the smallest, at the cost of reading
   * as much of each of the others. None when every range holds more than INDEX_MAX_SHARE of the records.
   */
  async #smallest(ranges: IndexRange[]): Promise<{ field: IndexRange["field"]; seqs: bigint[] } | undefined> {
    const cap = Math.max(1000, Math.ceil((this.#seq - this.#indexedFrom + 1) * INDEX_MAX_SHARE));
    const lists = ranges.map((r) => ({
      field: r.field,
      it: this.#kv.list<boolean>(r.selector, { batchSize: 500 })[Symbol.asyncIterator](),
      seqs: [] as bigint[],
    }));
    for (;;) {
      for (const l of lists) {
        for (let k = 0; k < 500; k++) {
          const next = await l.it.next();
          if (next.done) {
            const seqs = [...new Set(l.seqs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
            return { field: l.field, seqs };
          }
          const seq = next.value.key[next.value.key.length - 1] as bigint;
          if (seq >= this.#indexedFrom) l.seqs.push(seq);
        }
        if (lists.every((x) => x.seqs.length > cap)) return undefined;
      }
    }
  }

  /** Stored records with sequence numbers from `from` to `to` (both inclusive), in order (after a flush). */
  async *range(from: number, to: number): AsyncGenerator<AuditRecord> {
    if (to < from) return;
    if (!this.#closed) await this.flush();
    const start = [...AUDIT_PREFIX, BigInt(from)];
    const end = [...AUDIT_PREFIX, BigInt(to) + 1n];
    for await (const e of this.#kv.list<AuditRecord>({ start, end }, { batchSize: 500 })) yield e.value;
  }

  /** Where an output got to (the last sequence it delivered or passed over), if it ever delivered. */
  async cursor(output: string): Promise<number | undefined> {
    const v = (await this.#kv.get<bigint>([...CURSOR_KEY, output])).value;
    return typeof v === "bigint" ? Number(v) : undefined;
  }

  /** Records where an output got to (kept without expiry, beside last-sequence). */
  async setCursor(output: string, sequence: number): Promise<void> {
    if (this.#closed) return;
    await this.#kv.set([...CURSOR_KEY, output], BigInt(sequence));
  }

  /**
   * Ends every subscription (they can still read what they hold), flushes,
   * indexes and removes the journals no one writes any more (this process's
   * own, once its supervisor closed it), and closes the database.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const sub of this.#subscribers) sub.end();
    this.#subscribers.clear();
    try {
      await this.flush();
      await this.#syncing;
      await this.replay();
    } finally {
      this.#closed = true;
      this.#kv.close();
    }
  }

  /** Gives `items` the numbers after `base`, in order; waiters follow their records. */
  #renumber(items: Pending[], base: number): void {
    const shift = base + 1 - items[0].record["event.sequence"]!;
    if (shift <= 0) return;
    for (const item of items) {
      item.record = Object.freeze({ ...item.record, "event.sequence": item.record["event.sequence"]! + shift });
    }
    this.#seq += shift;
    this.#durable = base;
    for (const w of this.#waiters) w.seq += shift;
  }

  #schedule(): void {
    if (this.#writer || this.#pending.length === 0) return;
    this.#writer = this.#write().finally(() => {
      this.#writer = undefined;
      if (this.#pending.length && this.#error === undefined) this.#schedule();
    });
  }

  /** Writes what is pending, in order, in atomic batches. Never rejects: failures go to the flush waiters. */
  async #write(): Promise<void> {
    this.#error = undefined;
    while (this.#pending.length) {
      const items = this.#pending;
      this.#pending = [];
      for (let i = 0; i < items.length;) {
        const start = i;
        const atomic = this.#kv.atomic();
        let bytes = 0, mutations = 0, keyBytes = 0;
        const marks = new Map<string, number>();
        let index = indexKeys(items[i].record);
        while (
          i < items.length &&
          (items[i - 1]?.more && i > start ||
            i - start < BATCH_RECORDS && (i === start ||
                bytes + items[i].bytes <= BATCH_BYTES && mutations + 1 + index.length <= BATCH_MUTATIONS &&
                  keyBytes + keySize(index) <= BATCH_KEY_BYTES))
        ) {
          const { record, mark } = items[i++];
          const seq = record["event.sequence"]!;
          // The record and its index entries in one commit, with one expiry: neither is ever kept without the other.
          atomic.set([...AUDIT_PREFIX, BigInt(seq)], record, { expireIn: this.#expireIn });
          for (const key of index) atomic.set(key, true, { expireIn: this.#expireIn });
          if (mark) marks.set(mark.file, mark.end);
          bytes += items[i - 1].bytes;
          mutations += 1 + index.length;
          keyBytes += keySize(index) + 16;
          if (i < items.length) index = indexKeys(items[i].record);
        }
        const last = items[i - 1].record["event.sequence"]!;
        atomic.set(LAST_KEY, BigInt(last));
        // Another process writing the same store (a daemon, a standalone run, a replay) takes numbers too.
        atomic.check({ key: LAST_KEY, versionstamp: this.#lastStamp });
        for (const [file, end] of marks) {
          atomic.set([...JOURNAL_KEY, file], BigInt(end), { expireIn: this.#expireIn });
        }
        try {
          const r = await commitRetrying(atomic);
          if (!r.ok) {
            // Renumber what is not written yet after the other writer's last number, and retry.
            const meta = await this.#kv.get<bigint>(LAST_KEY);
            this.#lastStamp = meta.versionstamp;
            const base = typeof meta.value === "bigint" ? Number(meta.value) : 0;
            const rest = items.slice(start).concat(this.#pending);
            this.#renumber(rest, base);
            this.#pending = rest;
            i = items.length; // restart the outer loop on the renumbered records
            break;
          }
          this.#lastStamp = r.versionstamp;
          for (const item of items.slice(start, i)) {
            if (!item.mark) continue;
            const left = (this.#unindexed.get(item.mark.file) ?? 1) - 1;
            if (left > 0) this.#unindexed.set(item.mark.file, left);
            else this.#unindexed.delete(item.mark.file);
          }
        } catch (e) {
          // Keep the unwritten records, in order, for the next attempt.
          this.#pending = items.slice(start).concat(this.#pending);
          this.#error = e;
          const waiters = this.#waiters;
          this.#waiters = [];
          for (const w of waiters) w.reject(e);
          return;
        }
        this.#durable = last;
        if (this.#waiters.length) {
          const ready = this.#waiters.filter((w) => w.seq <= last);
          this.#waiters = this.#waiters.filter((w) => w.seq > last);
          for (const w of ready) w.resolve();
        }
      }
    }
  }
}

/** About how many bytes the keys take in a commit (Deno KV bounds their total). */
function keySize(keys: Deno.KvKey[]): number {
  let n = 0;
  for (const key of keys) for (const part of key) n += typeof part === "string" ? part.length * 3 + 2 : 10;
  return n;
}

/**
 * The first sequence stored with index entries: set once, on the first open by code that writes them, after the
 * last sequence the store had then (an old store's records stay below it and are scanned).
 */
async function indexedFrom(kv: Deno.Kv, last: number): Promise<number> {
  for (;;) {
    const got = await kv.get<bigint>(INDEXED_FROM_KEY);
    if (typeof got.value === "bigint") return Number(got.value);
    const r = await commitRetrying(
      kv.atomic().check({ key: INDEXED_FROM_KEY, versionstamp: null }).set(INDEXED_FROM_KEY, BigInt(last + 1)),
    );
    if (r.ok) return last + 1;
  }
}

/**
 * Commits, waiting out another process's write: SQLite refuses with "database is locked" while another connection
 * (a daemon, a standalone run, a replay) holds the write lock, and Deno KV does not wait for it.
 */
async function commitRetrying(atomic: Deno.AtomicOperation): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let tries = 0;; tries++) {
    try {
      return await atomic.commit();
    } catch (e) {
      if (tries >= 100 || !/database is locked|busy/i.test(String((e as Error).message))) throw e;
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
    }
  }
}
