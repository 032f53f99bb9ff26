/**
 * The audit journal: an append-only file of audit records that the thread
 * answering calls writes with write(2) *before* it answers, so a record
 * whose call was answered survives SIGKILL of idwrap (the kernel holds the
 * bytes once write(2) returns; fsync is about power loss, and the audit log
 * does it in the background, off the supervisor thread: docs/audit.md). The
 * audit log (./log.ts) indexes the records into Deno KV in the background
 * and commits, with each batch, how far into which journal it got; a later
 * start (run, daemon) or `audit query` replays what no one indexed.
 *
 * Layout: beside the store file `S`, the directory `S.journal/` (0700) holds
 * one file per writing thread, `<pid>-<ms>-<random>.jsonl` (0600), one line per
 * event: the JSON array of that event's audit records. The writer holds an
 * exclusive flock(2) on its file for as long as it writes, so a replayer
 * takes only files whose writer is gone (the kernel drops the lock when a
 * killed process's fds close).
 *
 * @module
 */
import { basename, join } from "node:path";
import type { AuditRecord } from "./record.ts";
import { errno, libc } from "../unsafe/libc.ts";

// fcntl.h, sys/file.h (x86_64)
const O_WRONLY = 0o1, O_RDONLY = 0, O_CREAT = 0o100, O_EXCL = 0o200, O_APPEND = 0o2000, O_CLOEXEC = 0o2000000;
const LOCK_EX = 2, LOCK_NB = 4;
const EINTR = 4, EWOULDBLOCK = 11;

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** The journal directory of a store file, or undefined for stores that have no file (`:memory:`, remote). */
export function journalDir(storePath: string): string | undefined {
  if (storePath === ":memory:" || /^https?:/.test(storePath)) return undefined;
  return `${storePath}.journal`;
}

/** Where the records of one posted batch end in the journal: the end offset after each event's line. */
export interface JournalMarks {
  /** The journal file's name (its base name: the key of its progress in the store). */
  file: string;
  /** The byte offset just past each event's line, in event order. */
  ends: number[];
}

/** The writing end, owned by one thread: write(2) per event, nothing buffered in memory. */
export class JournalWriter {
  readonly file: string;
  readonly path: string;
  readonly #storePath: string;
  #fd: number;
  #offset = 0;
  readonly #encoder = new TextEncoder();

  private constructor(storePath: string, path: string, fd: number) {
    this.#storePath = storePath;
    this.path = path;
    this.file = basename(path);
    this.#fd = fd;
  }

  /** Creates this process's journal file (0600, in a 0700 directory) and locks it. */
  static create(storePath: string): JournalWriter | undefined {
    const dir = journalDir(storePath);
    if (!dir) return undefined;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(dir, 0o700); // an older idwrap may have made it with the umask
    const path = join(dir, `${Deno.pid}-${Date.now()}-${crypto.randomUUID().slice(0, 8)}.jsonl`);
    const fd = libc.symbols.open(cString(path), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600);
    if (fd < 0) throw new Error(`Cannot create the audit journal ${path}: errno ${errno()}`);
    if (libc.symbols.flock(fd, LOCK_EX | LOCK_NB) < 0) {
      const e = errno();
      libc.symbols.close(fd);
      throw new Error(`Cannot lock the audit journal ${path}: errno ${e}`);
    }
    return new JournalWriter(storePath, path, fd);
  }

  /** A new journal for the same store (rotation; the caller closes this one). */
  successor(): JournalWriter {
    return JournalWriter.create(this.#storePath)!;
  }

  /** Bytes written so far. */
  get offset(): number {
    return this.#offset;
  }

  /**
   * Appends one event's records as one line with write(2); returns the offset
   * just past it. When this returns the line survives the death of this
   * process (not yet a power loss: the audit log fdatasyncs in the background).
   */
  append(records: readonly AuditRecord[]): number {
    if (this.#fd < 0) throw new Error("The audit journal is closed");
    const bytes = this.#encoder.encode(JSON.stringify(records) + "\n");
    for (let done = 0; done < bytes.length;) {
      const n = Number(libc.symbols.write(this.#fd, bytes.subarray(done), BigInt(bytes.length - done)));
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        // No half line left behind (ENOSPC after a partial write): the next line must start a line.
        if (done > 0) libc.symbols.ftruncate(this.#fd, BigInt(this.#offset));
        throw new Error(`Cannot write the audit journal ${this.path}: errno ${e}`);
      }
      done += n;
    }
    this.#offset += bytes.length;
    return this.#offset;
  }

  /** Closes, releasing the lock: the file is then a replayer's to index and remove. */
  close(): void {
    if (this.#fd < 0) return;
    libc.symbols.close(this.#fd);
    this.#fd = -1;
  }
}

/** A journal whose writer is gone, locked by us until `release`. */
export interface OrphanJournal {
  path: string;
  file: string;
  release(): void;
}

/** Journal files whose writer is gone (their lock is free), each locked for the caller. */
export function orphanJournals(storePath: string): OrphanJournal[] {
  const dir = journalDir(storePath);
  if (!dir) return [];
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".jsonl")).map((e) => e.name);
  } catch (e) {
    // None yet, or another user's store (its journals are its owner's to replay).
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) return [];
    throw e;
  }
  const out: OrphanJournal[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    const fd = libc.symbols.open(cString(path), O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) continue; // removed meanwhile by another replayer
    if (libc.symbols.flock(fd, LOCK_EX | LOCK_NB) < 0) {
      const e = errno();
      libc.symbols.close(fd);
      if (e === EWOULDBLOCK) continue; // its writer is alive
      throw new Error(`Cannot lock the audit journal ${path}: errno ${e}`);
    }
    out.push({ path, file: name, release: () => void libc.symbols.close(fd) });
  }
  return out;
}

/** One event's records read back from a journal, with the offset just past its line. */
export interface JournalEntry {
  records: AuditRecord[];
  end: number;
}

/**
 * Reads a journal from `from` in chunks of about `chunkBytes`, yielding whole
 * lines. A line that is not JSON, or a last line without its newline (a
 * write cut short), is reported to `onBad` and not yielded.
 */
export async function* readJournal(
  path: string,
  from: number,
  onBad?: (bytes: number) => void,
  chunkBytes = 1 << 20,
): AsyncGenerator<JournalEntry> {
  using file = await Deno.open(path, { read: true });
  await file.seek(from, Deno.SeekMode.Start);
  const decoder = new TextDecoder();
  const buf = new Uint8Array(chunkBytes);
  let carry = new Uint8Array(0);
  let offset = from; // the file offset of carry[0]
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    const data = new Uint8Array(carry.length + n);
    data.set(carry);
    data.set(buf.subarray(0, n), carry.length);
    let start = 0;
    for (let nl; (nl = data.indexOf(10, start)) >= 0; start = nl + 1) {
      const line = decoder.decode(data.subarray(start, nl));
      const end = offset + nl + 1;
      if (!line) continue;
      let records: AuditRecord[];
      try {
        records = JSON.parse(line);
      } catch {
        onBad?.(nl - start); // a damaged line: counted, the rest is still read
        continue;
      }
      yield { records, end };
    }
    offset += start;
    carry = data.slice(start);
  }
  if (carry.length) onBad?.(carry.length);
}
