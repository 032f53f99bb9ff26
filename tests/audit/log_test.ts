/**
 * The audit log on real Deno KV files: durability across reopen, sequence
 * numbers, retention, queries, and subscribers that do or do not keep up.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AuditLog } from "../../host/audit/log.ts";
import { type AuditItem, type AuditSubscription, isMissed } from "../../host/audit/subscription.ts";
import type { AuditQueue, AuditRecord } from "../../host/audit/record.ts";
import { WrapperStore } from "../../host/store/kv.ts";

/** A fresh store path in a directory that does not exist yet (open creates it). */
async function storePath(): Promise<string> {
  return `${await scratchDir({ prefix: "idwrap-audit-" })}/state/audit.kv`;
}

interface Spec {
  queue?: AuditQueue;
  time?: number;
  exe?: string;
  wrapper?: string;
  message?: string;
}

function rec(s: Spec = {}): AuditRecord {
  const queue = s.queue ?? "alerts";
  const exe = s.exe ?? "/usr/bin/cat";
  const r: AuditRecord = {
    "@timestamp": new Date(s.time ?? Date.now()).toISOString(),
    "ecs.version": "8.11.0",
    "event.kind": queue === "alerts" || queue === "verdicts" ? "alert" : "event",
    "event.category": ["process"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": "unknown",
    "event.module": "idwrap",
    "event.dataset": `idwrap.${queue}`,
    message: s.message ?? "m",
    "process.pid": 7,
    "process.executable": exe,
    "process.name": exe.slice(exe.lastIndexOf("/") + 1),
    "idwrap.queue": queue,
    "idwrap.source": "seccomp",
  };
  if (s.wrapper) {
    r["idwrap.wrapper"] = s.wrapper;
    r["rule.name"] = s.wrapper;
  }
  return r;
}

async function all(log: AuditLog, filter = {}): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of log.query(filter)) out.push(r);
  return out;
}

const seqs = (rs: AuditRecord[]) => rs.map((r) => r["event.sequence"]!);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("log: append, flush, close and reopen lose nothing; sequences keep increasing", async () => {
  const path = await storePath();
  let log = await AuditLog.open(path);
  assertEquals(log.lastSequence, 0);
  // More than one atomic batch.
  log.append(Array.from({ length: 1200 }, (_, i) => rec({ message: `a${i}` })));
  await log.flush();
  log.append([rec({ message: "b" })]);
  await log.close(); // close flushes

  log = await AuditLog.open(path);
  assertEquals(log.lastSequence, 1201);
  let got = await all(log);
  assertEquals(seqs(got), range(1, 1201));
  assertEquals(got[0].message, "a0");
  assertEquals(got[1199].message, "a1199");
  assertEquals(got[1200].message, "b");

  const mine = rec({ message: "c" });
  log.append([mine, rec({ message: "d" })]);
  assertEquals(mine["event.sequence"], undefined, "append copies");
  await log.close(); // no flush: close must write it

  log = await AuditLog.open(path);
  got = await all(log);
  assertEquals(seqs(got), range(1, 1203));
  assertEquals(got.at(-1)!.message, "d");
  await log.close();
});

Deno.test("log: a query on the same log sees what was just appended", async () => {
  const log = await AuditLog.open(await storePath());
  log.append([rec(), rec()]);
  assertEquals(seqs(await all(log)), [1, 2]);
  await log.close();
});

Deno.test("log: records are kept with the retention as Deno KV expireIn", async () => {
  // Deno KV expires keys lazily (a background sweep), so a short retention cannot be watched from the API.
  // The records must still be there after reopening, and Deno KV's SQLite table must hold their expiry.
  for (const days of [30, 1]) {
    const path = await storePath();
    const before = Date.now();
    let log = await AuditLog.open(path, { retentionDays: days });
    log.append([rec(), rec()]);
    await log.close();
    const after = Date.now();
    log = await AuditLog.open(path);
    assertEquals(seqs(await all(log)), [1, 2]);
    await log.close();

    const db = new DatabaseSync(path, { readOnly: true });
    const rows = db.prepare("SELECT expiration_ms FROM kv").all() as { expiration_ms: number }[];
    db.close();
    const expiries = rows.map((r) => Number(r.expiration_ms)).sort((a, b) => a - b);
    // Each record has 6 index entries here (time, program twice, outcome, host, queue: host/audit/index.ts).
    assertEquals(
      expiries.length,
      3 + 2 * 7,
      "two records and their index entries, last-sequence, agent id, indexed-from",
    );
    assertEquals(expiries.slice(0, 3), [-1, -1, -1], "last-sequence, the agent id and indexed-from never expire");
    const ms = days * 86_400_000;
    for (const e of expiries.slice(3)) assert(e >= before + ms && e <= after + ms, `expiry ${e} for ${days} days`);
  }
});

Deno.test("log: sequence numbers are not reused when the newest records are gone", async () => {
  const path = await storePath();
  let log = await AuditLog.open(path);
  log.append([rec(), rec(), rec()]);
  await log.close();
  // As if the records had expired.
  const kv = await Deno.openKv(path);
  for await (const e of kv.list({ prefix: ["audit", "seq"] })) await kv.delete(e.key);
  kv.close();
  log = await AuditLog.open(path);
  log.append([rec()]);
  assertEquals(seqs(await all(log)), [4]);
  await log.close();
});

Deno.test("log: the audit log and the wrappers' store share one Deno KV file", async () => {
  const path = await storePath();
  const log = await AuditLog.open(path);
  const store = await WrapperStore.open(path);
  const ns = await store.load("deny_path");
  ns.set(new TextEncoder().encode("k"), new TextEncoder().encode("v"));
  log.append([rec()]);
  await Promise.all([store.close(), log.close()]);

  const kv = await Deno.openKv(path);
  const prefixes: unknown[] = [];
  for await (const e of kv.list({ prefix: [] })) if (e.key[1] !== "idx") prefixes.push(e.key[0]);
  kv.close();
  // a record, last-sequence, agent-id, indexed-from (and the record's index entries)
  assertEquals(prefixes.sort(), ["audit", "audit", "audit", "audit", "idwrap"]);
  const again = await WrapperStore.open(path);
  assertEquals((await again.load("deny_path")).list(new Uint8Array()).length, 1);
  await again.close();
  const reopened = await AuditLog.open(path);
  assertEquals((await all(reopened)).length, 1);
  await reopened.close();
});

Deno.test("log: query filters by time, queue, program, wrapper and limit", async () => {
  const log = await AuditLog.open(await storePath());
  const t0 = Date.UTC(2024, 0, 1);
  const H = 3_600_000;
  log.append([
    rec({ time: t0, queue: "alerts", exe: "/usr/bin/cat", wrapper: "deny_path" }), // 1
    rec({ time: t0 + H, queue: "verdicts", exe: "/usr/bin/ssh" }), // 2
    rec({ time: t0 + 2 * H, queue: "lifecycle", exe: "/bin/sh" }), // 3
    rec({ time: t0 + 3 * H, queue: "alerts", exe: "/usr/sbin/sshd", wrapper: "ftp_watch" }), // 4
    rec({ time: t0 + 4 * H, queue: "audit", exe: "/opt/x/ssh-agent", wrapper: "deny_path" }), // 5
    rec({ time: t0 + 5 * H, queue: "faults", exe: "/usr/bin/cat", wrapper: "spin" }), // 6
  ]);
  const q = async (filter: Parameters<AuditLog["query"]>[0]) => seqs(await all(log, filter));
  assertEquals(await q({}), [1, 2, 3, 4, 5, 6]);
  assertEquals(await q({ since: new Date(t0 + H) }), [2, 3, 4, 5, 6]);
  assertEquals(await q({ until: new Date(t0 + 2 * H) }), [1, 2, 3]);
  assertEquals(await q({ since: new Date(t0 + H), until: new Date(t0 + 3 * H - 1) }), [2, 3]);
  assertEquals(await q({ queue: "alerts" }), [1, 4]);
  assertEquals(await q({ queue: "nope" }), []);
  assertEquals(await q({ program: "/usr/bin/*" }), [1, 2, 6]);
  assertEquals(await q({ program: "ssh*" }), [2, 4, 5], "a glob without a slash matches the name too");
  assertEquals(await q({ program: "**/sshd" }), [4]);
  assertEquals(await q({ program: "cat" }), [1, 6]);
  assertEquals(await q({ wrapper: "deny_path" }), [1, 5]);
  assertEquals(await q({ limit: 2 }), [1, 2]);
  assertEquals(await q({ limit: 1, queue: "alerts", since: new Date(t0 + 1) }), [4]);
  assertEquals(await q({ wrapper: "deny_path", program: "/usr/bin/*", queue: "alerts" }), [1]);
  await log.close();
});

Deno.test("log: subscribers get their queues live", async () => {
  const log = await AuditLog.open(await storePath());
  const alerts = log.subscribe(["alerts", "verdicts"]);
  const every = log.subscribe("all");
  const waiting = alerts.next(); // a read waiting before the record exists
  log.append([rec({ queue: "lifecycle" }), rec({ queue: "verdicts" }), rec({ queue: "alerts" })]);
  assertEquals(((await waiting).value as AuditRecord)["event.sequence"], 2);
  assertEquals(alerts.drain().map((r) => (r as AuditRecord)["event.sequence"]), [3]);
  assertEquals(every.drain().map((r) => (r as AuditRecord)["idwrap.queue"]), ["lifecycle", "verdicts", "alerts"]);
  assert(Object.isFrozen(every.take() ?? Object.freeze({})));
  assertEquals(log.subscribers, 2);
  alerts.close();
  assertEquals(log.subscribers, 1);
  assertEquals(await alerts.next(), { value: undefined, done: true });
  // Closing the log ends a waiting read.
  const pending = every.next();
  await log.close();
  assertEquals(await pending, { value: undefined, done: true });
  let threw = false;
  try {
    log.subscribe(["bogus"]);
  } catch {
    threw = true;
  }
  assert(threw, "an unknown queue is refused");
});

Deno.test("log: a subscriber that never reads does not block append; it gets {missed} then the newest", async () => {
  const TOTAL = 50_000;
  const MAX = 1000;
  const path = await storePath();
  const log = await AuditLog.open(path);
  const stalled = log.subscribe("all", { maxBuffered: MAX });
  const live = log.subscribe("all");
  const received: AuditItem[] = [];
  const reader = (async () => {
    for await (const item of live) received.push(item);
  })();

  const started = performance.now();
  // An event source appends in bursts and yields between them; it never waits on a subscriber.
  for (let i = 0; i < TOTAL; i += 500) {
    log.append(Array.from({ length: 500 }, () => rec({ queue: i % 1000 ? "alerts" : "lifecycle" })));
    await tick();
  }
  const appended = performance.now() - started;
  await log.flush();
  console.log(
    `appended ${TOTAL} records in ${appended.toFixed(0)} ms, durable after ${
      (performance.now() - started).toFixed(0)
    } ms`,
  );
  assertEquals(stalled.dropped, TOTAL - MAX);

  // The stalled one reads at last.
  const first = await stalled.next();
  assertEquals(first.value, { missed: TOTAL - MAX });
  const rest = stalled.drain();
  assert(rest.every((r) => !isMissed(r)));
  assertEquals(seqs(rest as AuditRecord[]), range(TOTAL - MAX + 1, TOTAL));
  assertEquals(stalled.take(), undefined);

  // The live one got everything, in order.
  await log.close();
  await reader;
  assert(received.every((r) => !isMissed(r)), "the live subscriber missed nothing");
  assertEquals(seqs(received as AuditRecord[]), range(1, TOTAL));

  // The store is complete regardless.
  const reopened = await AuditLog.open(path);
  let n = 0;
  for await (const _ of reopened.query()) n++;
  assertEquals(n, TOTAL);
  await reopened.close();
});

Deno.test("log: missed markers sit where records were lost", async () => {
  const log = await AuditLog.open(await storePath());
  const sub: AuditSubscription = log.subscribe(["alerts"], { maxBuffered: 2 });
  log.append([rec(), rec(), rec()]); // 1 dropped
  assertEquals(sub.drain().map((i) => isMissed(i) ? i : i["event.sequence"]), [{ missed: 1 }, 2, 3]);
  log.append([rec({ queue: "audit" }), rec()]); // another queue: not counted
  assertEquals(sub.drain().map((i) => isMissed(i) ? i : i["event.sequence"]), [5]);
  log.append([rec(), rec(), rec(), rec(), rec()]); // 6..10, 3 dropped
  assertEquals(sub.drain().map((i) => isMissed(i) ? i : i["event.sequence"]), [{ missed: 3 }, 9, 10]);
  assertEquals(sub.dropped, 4);
  await log.close();
});

Deno.test("log: a record too big for a Deno KV value is cut to fit, and marked", async () => {
  const path = await storePath();
  const log = await AuditLog.open(path);
  const big = rec({ message: "é€".repeat(50_000) });
  big["idwrap.syscall.argv"] = Array.from({ length: 100_000 }, (_, i) => `arg${i}`);
  big["file.path"] = "/tmp/" + "p".repeat(70_000);
  log.append([big, rec({ message: "small" })]);
  await log.close();
  const reopened = await AuditLog.open(path);
  const [cut, small] = await all(reopened);
  await reopened.close();
  assertEquals(cut["idwrap.truncated"], true);
  assert(cut.message.startsWith("é€é€") && cut.message.endsWith("…"));
  assert(cut["file.path"]!.startsWith("/tmp/ppp"));
  assert(cut["idwrap.syscall.argv"]!.length < 100_000 && cut["idwrap.syscall.argv"]![0] === "arg0");
  assertEquals(small.message, "small");
  assertEquals(small["idwrap.truncated"], undefined);
});
