/**
 * The audit log's secondary indexes (host/audit/index.ts): a query through an index finds exactly what the scan
 * finds, a SIGKILL mid-append or a journal replay never leaves a record without its index entries (or the
 * reverse), index entries expire with their record, and an old store's records are still found.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import type { AuditFilter } from "../../host/audit/filter.ts";
import { INDEX_PREFIX, indexKeys } from "../../host/audit/index.ts";
import { AUDIT_PREFIX, AuditLog } from "../../host/audit/log.ts";
import type { AuditRecord } from "../../host/audit/record.ts";
import { mixed, scanned, T0 } from "./index_fixture.ts";

async function storePath(): Promise<string> {
  return `${await scratchDir({ prefix: "idwrap-idx-" })}/state/audit.kv`;
}

async function collect(it: AsyncIterable<AuditRecord>): Promise<number[]> {
  const out: number[] = [];
  for await (const r of it) out.push(r["event.sequence"]!);
  return out;
}

/** Record and index keys of a store, and whether each record has all its index entries and each entry its record. */
async function consistency(path: string): Promise<{ records: number; entries: number; problems: string[] }> {
  const kv = await Deno.openKv(path);
  try {
    const entries = new Set<string>();
    for await (const e of kv.list({ prefix: [...INDEX_PREFIX] })) entries.add(JSON.stringify(e.key, big));
    const problems: string[] = [];
    const expected = new Set<string>();
    let records = 0;
    for await (const e of kv.list<AuditRecord>({ prefix: [...AUDIT_PREFIX] })) {
      records++;
      for (const key of indexKeys(e.value)) {
        const k = JSON.stringify(key, big);
        expected.add(k);
        if (!entries.has(k)) problems.push(`record ${e.value["event.sequence"]} lacks ${k}`);
      }
    }
    for (const k of entries) if (!expected.has(k)) problems.push(`index entry ${k} has no record`);
    return { records, entries: entries.size, problems };
  } finally {
    kv.close();
  }
}
const big = (_: string, v: unknown) => typeof v === "bigint" ? `${v}n` : v;

Deno.test("index: a query through each index finds what the scan finds, on 3,000 mixed records", async () => {
  const path = await storePath();
  let log = await AuditLog.open(path);
  log.append(Array.from({ length: 3000 }, (_, i) => mixed(i)));
  await log.close();
  log = await AuditLog.open(path);
  const here = log.identity["host.name"];
  const at = (s: number) => new Date(T0 + s * 1000);
  const filters: [AuditFilter, string][] = [
    [{ wrapper: "rare-rule" }, "rule"],
    [{ wrapper: "baseline" }, "rule"],
    [{ wrapper: "baseline.credential-read" }, "rule"],
    [{ wrapper: "net-deny", outcome: "failure" }, "rule"],
    [{ wrapper: "nothing-such" }, "rule"],
    [{ outcome: "failure" }, "outcome"],
    [{ queue: "alerts" }, "queue"],
    [{ outcome: "failure", host: "other-host" }, "host"],
    [{ host: "other-host" }, "host"],
    [{ host: here, queue: "faults", program: "/opt/*" }, "queue"],
    [{ queue: "faults", since: at(100), until: at(160) }, "time"],
    [{ since: at(3000) }, "time"],
    [{ until: at(0) }, "time"],
    [{ since: at(10), until: at(10) }, "time"],
    [{ program: "/usr/bin/*" }, "program"],
    [{ program: "/usr/bin/ssh" }, "program"],
    [{ program: "ssh*" }, "program"],
    [{ program: "/opt/a/**" }, "program"],
    [{ program: "/opt/a/" }, "program"],
    [{ program: "/usr/{bin,sbin}/ssh*" }, "program"],
    [{ program: "*sh" }, "scan"],
    [{ program: "**/cat" }, "scan"],
    [{ program: "!(/usr/bin/cat)", wrapper: "rare-rule" }, "rule"],
    [{ wrapper: "baseline", limit: 7 }, "rule"],
    [{ program: "/usr/sbin/*", since: at(0), until: at(3000), limit: 30 }, "program"],
    [{}, "scan"],
    [{ since: at(200), until: at(100) }, "time"],
  ];
  for (const [filter, index] of filters) {
    const name = JSON.stringify(filter);
    assertEquals((await log.plan(filter)).index, index, `${name}: the index used`);
    const want = await scanned(log, filter);
    assertEquals(await collect(log.query(filter)), want, `${name}: the index's answer is the scan's`);
  }
  assertEquals((await collect(log.query({ wrapper: "rare-rule" }))).length, 4, "the rare rule is found");
  await log.close();
});

Deno.test("index: every record is committed with its index entries, each with the record's expiry", async () => {
  const path = await storePath();
  const log = await AuditLog.open(path, { retentionDays: 2 });
  // Long program paths: the index values are cut, and the batches stay within Deno KV's key budget.
  const long = "/srv/" + "ü".repeat(1500);
  log.append(Array.from({ length: 1500 }, (_, i) => ({ ...mixed(i), "process.executable": long + (i % 3) })));
  await log.close();
  const c = await consistency(path);
  assertEquals(c.problems, []);
  assertEquals(c.records, 1500);
  assert(c.entries >= 1500 * 5, `${c.entries} index entries`);
  const db = new DatabaseSync(path, { readOnly: true });
  const rows = db.prepare("SELECT expiration_ms FROM kv").all() as { expiration_ms: number }[];
  db.close();
  // Every row that is not a meta key expires, two days on.
  const expiring = rows.map((r) => Number(r.expiration_ms)).filter((e) => e !== -1);
  assertEquals(expiring.length, c.records + c.entries, "the records and their index entries expire");
  const spread = Math.max(...expiring) - Math.min(...expiring);
  assert(spread < 60_000, `one retention for all (spread ${spread} ms)`);
  assert(Math.min(...expiring) > Date.now() + 2 * 86_400_000 - 600_000, "two days");
  const reopened = await AuditLog.open(path);
  assertEquals(await collect(reopened.query({ program: "/srv/ü*" })), await scanned(reopened, { program: "/srv/ü*" }));
  assertEquals(
    (await collect(reopened.query({ program: long + "1" }))).length,
    500,
    "an exact program past the cut still matches only its own",
  );
  await reopened.close();
});

Deno.test("index: index entries whose record is gone (expired first) are passed over", async () => {
  const path = await storePath();
  let log = await AuditLog.open(path);
  log.append(Array.from({ length: 200 }, (_, i) => mixed(i)));
  await log.close();
  const kv = await Deno.openKv(path);
  for (let s = 1n; s <= 100n; s++) await kv.delete([...AUDIT_PREFIX, s]);
  kv.close();
  log = await AuditLog.open(path);
  for (const filter of [{ wrapper: "baseline" }, { host: "other-host" }, { program: "/usr/bin/*" }]) {
    const got = await collect(log.query(filter));
    assert(got.length > 0 && got.every((s) => s > 100), JSON.stringify(filter));
    assertEquals(got, await scanned(log, filter));
  }
  await log.close();
});

Deno.test("index: a store written before the indexes is still answered in full", async () => {
  const path = await storePath();
  // As the code before the indexes wrote it: records and last-sequence, no index entries.
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const kv = await Deno.openKv(path);
  for (let i = 1; i <= 300; i++) await kv.set([...AUDIT_PREFIX, BigInt(i)], { ...mixed(i), "event.sequence": i });
  await kv.set(["audit", "meta", "last-sequence"], 300n);
  kv.close();
  let log = await AuditLog.open(path);
  log.append(Array.from({ length: 300 }, (_, i) => mixed(i + 300)));
  await log.close();
  log = await AuditLog.open(path);
  assertEquals((await log.plan({ wrapper: "baseline" })).indexedFrom, 301);
  for (
    const filter of [{ wrapper: "baseline" }, { host: "other-host" }, { program: "/opt/*" }, { outcome: "success" }]
  ) {
    const got = await collect(log.query(filter));
    assert(got.some((s) => s <= 300) && got.some((s) => s > 300), JSON.stringify(filter));
    assertEquals(got, await scanned(log, filter), JSON.stringify(filter));
  }
  await log.close();
});

const CHILD = fileURLToPath(new URL("./index_child.ts", import.meta.url));

Deno.test("index: SIGKILL mid-append, then the journal's replay, leave no record without its index entries", async () => {
  const path = await storePath();
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CHILD, path],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Kill once it has committed a few batches and is writing more.
  const reader = child.stdout.getReader();
  let seen = "";
  while (!seen.includes("committed\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  await new Promise((r) => setTimeout(r, 150 + Math.random() * 200));
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});

  const killed = await consistency(path);
  assert(killed.records > 0, "the child committed records before it died");
  assertEquals(killed.problems.slice(0, 5), [], `after SIGKILL (${killed.records} records)`);
  const log = await AuditLog.open(path); // replays the dead child's journal
  const total = log.lastSequence;
  await log.close();
  const replayed = await consistency(path);
  assert(replayed.records > killed.records, `the replay indexed more (${killed.records} → ${replayed.records})`);
  assertEquals(replayed.records, total);
  assertEquals(replayed.problems.slice(0, 5), [], "after the replay");
});

Deno.test("index: a filter whose every index range holds over a quarter of the records scans, with the same answer", async () => {
  const path = await storePath();
  let log = await AuditLog.open(path);
  log.append(Array.from({ length: 8000 }, (_, i) => mixed(i)));
  await log.close();
  log = await AuditLog.open(path);
  // A third of 8,000 fail; the cap is a quarter (2,000): a get per record would cost more than the scan.
  for (const [filter, index] of [[{ outcome: "failure" }, "scan"], [{ queue: "faults" }, "queue"]] as const) {
    assertEquals((await log.plan(filter)).index, index, JSON.stringify(filter));
    assertEquals(await collect(log.query(filter)), await scanned(log, filter), JSON.stringify(filter));
  }
  await log.close();
});
