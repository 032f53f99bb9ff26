/**
 * The consumers' protocol over a real Unix socket: a server loop calling
 * serveTail per connection, tailClient on the other side, and a consumer
 * that stops reading while others keep up.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { AuditLog } from "../../host/audit/log.ts";
import { isMissed, type Missed } from "../../host/audit/subscription.ts";
import type { AuditRecord } from "../../host/audit/record.ts";
import { NoDaemonError, readLine, serveTail, tailClient } from "../../host/audit/stream.ts";

function rec(queue: AuditRecord["idwrap.queue"] = "alerts"): AuditRecord {
  return {
    "@timestamp": new Date().toISOString(),
    "ecs.version": "8.11.0",
    "event.kind": "alert",
    "event.category": ["intrusion_detection", "file"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": "unknown",
    "event.module": "idwrap",
    "event.dataset": `idwrap.${queue}`,
    message: 'rule no-shadow: openat(AT_FDCWD, "/etc/shadow", O_RDONLY)',
    "process.pid": 7,
    "process.executable": "/usr/bin/cat",
    "file.path": "/etc/shadow",
    "idwrap.queue": queue,
    "idwrap.source": "seccomp",
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A daemon stand-in: a Unix socket, one serveTail per connection. */
class Server {
  readonly path: string;
  readonly store: string;
  readonly log: AuditLog;
  readonly #listener: Deno.Listener;
  readonly #served: Promise<void>[] = [];
  readonly #loop: Promise<void>;
  /** Tail connections accepted and subscribed so far. */
  tails = 0;

  private constructor(path: string, store: string, log: AuditLog) {
    this.path = path;
    this.store = store;
    this.log = log;
    this.#listener = Deno.listen({ transport: "unix", path });
    this.#loop = this.#accept();
  }

  static async start(): Promise<Server> {
    const dir = await scratchDir({ prefix: "idwrap-tail-" });
    return new Server(`${dir}/daemon.sock`, `${dir}/audit.kv`, await AuditLog.open(`${dir}/audit.kv`));
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#served.push((async () => {
          const line = await readLine(conn);
          if (line === null) return conn.close();
          const request = JSON.parse(line);
          assertEquals(request.op, "tail");
          const served = serveTail(conn, request, this.log); // subscribes before its first await
          this.tails++;
          await served;
        })());
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.BadResource)) throw e;
    }
  }

  /** Resolves once n tail consumers are subscribed. */
  async waitForTails(n: number): Promise<void> {
    while (this.tails < n) await new Promise((r) => setTimeout(r, 5));
  }

  /** Closes the log (ending every tail), then the listener; waits for every serveTail to return. */
  async stop(): Promise<void> {
    await this.log.close();
    this.#listener.close();
    await this.#loop;
    await Promise.all(this.#served);
  }
}

Deno.test("stream: tailClient receives live records of its queues", async () => {
  const server = await Server.start();
  const client = tailClient(server.path, ["alerts", "verdicts"]);
  const first = client.next(); // connects and subscribes
  await server.waitForTails(1);
  server.log.append([rec("lifecycle"), rec("alerts"), rec("audit"), rec("verdicts")]);
  const a = (await first).value as AuditRecord;
  const b = (await client.next()).value as AuditRecord;
  assertEquals([a["event.sequence"], a["idwrap.queue"]], [2, "alerts"]);
  assertEquals([b["event.sequence"], b["idwrap.queue"]], [4, "verdicts"]);
  assertEquals(a["file.path"], "/etc/shadow");
  await client.return(undefined); // the consumer disconnects
  await server.stop();
});

Deno.test("stream: the daemon's refusal and a missing daemon are errors", async () => {
  const server = await Server.start();
  let message = "";
  try {
    for await (const _ of tailClient(server.path, ["bogus"])) { /* nothing */ }
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes('Unknown audit queue "bogus"'), message);
  await server.stop();

  let error: unknown;
  try {
    await tailClient(server.path, "all").next(); // the socket file is gone with the listener
  } catch (e) {
    error = e;
  }
  assert(error instanceof NoDaemonError, String(error));
  assert(error.message.includes(server.path));
});

Deno.test("stream: the tail ends when the daemon closes the log", async () => {
  const server = await Server.start();
  const got: (AuditRecord | Missed)[] = [];
  const reading = (async () => {
    for await (const item of tailClient(server.path, "all")) got.push(item);
  })();
  await server.waitForTails(1);
  server.log.append([rec(), rec()]);
  await server.stop();
  await reading;
  assertEquals(got.map((r) => (r as AuditRecord)["event.sequence"]), [1, 2]);
});

Deno.test("stream: a consumer that never reads blocks nothing; a fast one gets everything", async () => {
  const TOTAL = 50_000;
  const server = await Server.start();

  // The stalled consumer: a raw connection that sends its request and then reads nothing.
  const stalled = await Deno.connect({ transport: "unix", path: server.path });
  await stalled.write(new TextEncoder().encode('{"op":"tail","queues":"all"}\n'));

  const fast: (AuditRecord | Missed)[] = [];
  let fastRecords = 0;
  const reading = (async () => {
    for await (const item of tailClient(server.path, ["alerts", "verdicts"])) {
      fast.push(item);
      if (!isMissed(item) && ++fastRecords === TOTAL) return;
    }
  })();
  await server.waitForTails(2);

  const started = performance.now();
  for (let i = 0; i < TOTAL; i += 250) {
    server.log.append(Array.from({ length: 250 }, (_, j) => rec((i + j) % 2 ? "alerts" : "verdicts")));
    // An event source yields between bursts. The pacing follows the fast consumer only, so that it does not
    // fall 10,000 records behind on a loaded machine; the stalled consumer is never waited for.
    while (server.log.lastSequence - fastRecords > 5000) await new Promise((r) => setTimeout(r, 1));
    await tick();
  }
  console.log(`appended ${TOTAL} records in ${(performance.now() - started).toFixed(0)} ms`);
  await reading;
  assert(fast.every((i) => !isMissed(i)), "the fast consumer missed nothing");
  assertEquals(fast.map((r) => (r as AuditRecord)["event.sequence"]), Array.from({ length: TOTAL }, (_, i) => i + 1));

  // The stalled consumer reads at last: what fitted in the socket, a missed marker, then the newest records.
  const seen: number[] = [];
  let missed = 0;
  let answer: unknown;
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let rest = "";
  while (seen.at(-1) !== TOTAL) {
    const n = await stalled.read(buf);
    assert(n !== null, "the daemon closed the stalled consumer");
    rest += decoder.decode(buf.subarray(0, n), { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      const item = JSON.parse(line);
      if (answer === undefined) answer = item;
      else if ("missed" in item) missed += item.missed;
      else seen.push(item["event.sequence"]);
    }
  }
  stalled.close();
  assertEquals(answer, { ok: true });
  assert(missed > 0, "the stalled consumer was told it missed records");
  assertEquals(seen.length + missed, TOTAL);
  assert(seen.every((s, i) => i === 0 || s > seen[i - 1]), "in order");
  console.log(`stalled consumer: ${seen.length} records, ${missed} missed`);

  await server.stop();
  // And the store has them all.
  const log = await AuditLog.open(server.store);
  assertEquals(log.lastSequence, TOTAL);
  await log.close();
});
