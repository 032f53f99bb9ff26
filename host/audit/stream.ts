/**
 * The consumers' side of the daemon socket (docs/audit.md, "Consumers"):
 * newline-delimited JSON over a Unix stream socket. A consumer sends
 * `{"op":"tail","queues":[…]}`; the daemon answers `{"ok":true}` and then
 * one record per line, with `{"missed":N}` lines where it dropped N records
 * for that consumer. Each consumer has its own subscription: one that stops
 * reading fills only its own buffer.
 *
 * @module
 */
import type { AuditRecord } from "./record.ts";
import type { AuditLog } from "./log.ts";
import type { AuditItem, AuditSubscription, Missed } from "./subscription.ts";

/** A tail request as the consumer sends it. */
export interface TailRequest {
  op?: "tail";
  queues?: string[] | "all";
}

/** Thrown by tailClient when nothing listens on the socket. */
export class NoDaemonError extends Error {
  readonly socketPath: string;
  constructor(socketPath: string, options?: ErrorOptions) {
    super(`no idwrap daemon at ${socketPath}`, options);
    this.name = "NoDaemonError";
    this.socketPath = socketPath;
  }
}

/** Lines longer than this are a protocol error. */
const MAX_LINE = 1024 * 1024;
/** Items written to the socket in one write, at most. */
const CHUNK_ITEMS = 1000;

const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Errors that mean the other end went away. */
function isDisconnect(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.NotConnected ||
    e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}

/**
 * Reads one request line (without its newline) from a fresh connection;
 * null if the peer closed first. Bytes after the newline are discarded: a
 * consumer sends nothing after its request.
 */
export async function readLine(conn: Deno.Conn, maxBytes = 64 * 1024): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return total ? new TextDecoder().decode(concat(chunks, total)) : null;
    const nl = buf.subarray(0, n).indexOf(10);
    const part = buf.slice(0, nl >= 0 ? nl : n);
    chunks.push(part);
    total += part.length;
    if (nl >= 0) return new TextDecoder().decode(concat(chunks, total));
    if (total > maxBytes) throw new Error(`request line longer than ${maxBytes} bytes`);
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Serves one tail consumer until it disconnects or the log closes, then
 * closes `conn`. The request line has been read already (`readLine`).
 * Answers `{"ok":false,"error":…}` and returns for a bad request. Records
 * reach the socket from this function's own loop, so a consumer that stops
 * reading blocks only that loop; its subscription drops its oldest records
 * and the next write starts with `{"missed":N}`.
 */
export async function serveTail(
  conn: Deno.Conn,
  request: { queues?: string[] | "all" },
  log: AuditLog,
): Promise<void> {
  let sub: AuditSubscription;
  try {
    const queues = request.queues ?? "all";
    if (queues !== "all" && (!Array.isArray(queues) || queues.some((q) => typeof q !== "string"))) {
      throw new Error(`"queues" must be "all" or an array of queue names`);
    }
    sub = log.subscribe(queues);
  } catch (e) {
    try {
      await writeAll(conn, encoder.encode(JSON.stringify({ ok: false, error: (e as Error).message }) + "\n"));
    } catch (w) {
      if (!isDisconnect(w)) throw w;
    } finally {
      closeQuietly(conn);
    }
    return;
  }
  // Notice a consumer that goes away even while no record comes.
  const watch = (async () => {
    const buf = new Uint8Array(1024);
    try {
      while (await conn.read(buf) !== null) { /* a consumer sends nothing after its request */ }
    } catch { /* closed under us */ }
    sub.close();
  })();
  try {
    await writeAll(conn, encoder.encode('{"ok":true}\n'));
    while (true) {
      const first = await sub.next();
      if (first.done) break;
      const items: AuditItem[] = [first.value, ...sub.drain(CHUNK_ITEMS - 1)];
      let text = "";
      for (const item of items) text += JSON.stringify(item) + "\n";
      await writeAll(conn, encoder.encode(text));
    }
  } catch (e) {
    if (!isDisconnect(e)) throw e;
  } finally {
    sub.close();
    closeQuietly(conn);
    await watch;
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * Follows audit queues through the daemon: connects, sends the request,
 * checks the answer and yields records and missed markers as they come;
 * returns when the daemon closes the connection. Throws NoDaemonError when
 * nothing listens at the path, and an Error with the daemon's words when it
 * refuses the request.
 */
export async function* tailClient(
  socketPath: string,
  queues: string[] | "all",
): AsyncGenerator<AuditRecord | Missed> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socketPath });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.ConnectionRefused) {
      throw new NoDaemonError(socketPath, { cause: e });
    }
    throw e;
  }
  try {
    await writeAll(conn, encoder.encode(JSON.stringify({ op: "tail", queues }) + "\n"));
    let answered = false;
    for await (const line of lines(conn)) {
      if (line === "") continue;
      const message = JSON.parse(line);
      if (!answered) {
        answered = true;
        if (message?.ok !== true) throw new Error(`the idwrap daemon refused: ${message?.error ?? line}`);
        continue;
      }
      yield message as AuditRecord | Missed;
    }
    if (!answered) throw new Error(`the idwrap daemon at ${socketPath} closed the connection without answering`);
  } finally {
    closeQuietly(conn);
  }
}

/** The lines a connection sends, without their newlines. */
async function* lines(conn: Deno.Conn): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let rest = "";
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    rest += decoder.decode(buf.subarray(0, n), { stream: true });
    let nl: number;
    let from = 0;
    while ((nl = rest.indexOf("\n", from)) >= 0) {
      yield rest.slice(from, nl);
      from = nl + 1;
    }
    rest = rest.slice(from);
    if (rest.length > MAX_LINE) throw new Error(`the idwrap daemon sent a line longer than ${MAX_LINE} bytes`);
  }
  rest += decoder.decode();
  if (rest) yield rest;
}
