/**
 * The audit journal and its replay: what a killed writer journaled and no
 * one indexed is indexed once — not lost, not twice — a live writer's
 * journal is left alone, a damaged line is skipped and counted, and two logs
 * writing one store never reuse a sequence number.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { JournalWriter } from "../../host/audit/journal.ts";
import { AuditLog } from "../../host/audit/log.ts";
import type { AuditRecord } from "../../host/audit/record.ts";

async function storePath(): Promise<string> {
  return `${await scratchDir({ prefix: "idwrap-journal-" })}/state/audit.kv`;
}

/** An alert record whose message is `m`. */
function rec(m: string): AuditRecord {
  return {
    "@timestamp": new Date().toISOString(),
    "ecs.version": "8.11.0",
    "event.kind": "alert",
    "event.category": ["process"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": "unknown",
    "event.module": "idwrap",
    "event.dataset": "idwrap.alerts",
    message: m,
    "idwrap.queue": "alerts",
  } as AuditRecord;
}

async function messages(log: AuditLog): Promise<string[]> {
  const out: string[] = [];
  for await (const r of log.query()) out.push(r.message);
  return out;
}

const journalFiles = (path: string) => [...Deno.readDirSync(`${path}.journal`)].map((e) => e.name);

Deno.test("replay indexes exactly what the store does not have, once, and removes the journal", async () => {
  const path = await storePath();
  const first = await AuditLog.open(path);
  const writer = JournalWriter.create(path)!;
  // Ten events, the second of two records (one journal line each); the first four reach the store.
  const groups = Array.from({ length: 10 }, (_, i) => i === 1 ? [rec("1a"), rec("1b")] : [rec(String(i))]);
  const ends = groups.map((g) => writer.append(g));
  first.appendJournaled(groups.slice(0, 4), { file: writer.file, ends: ends.slice(0, 4) });
  await first.flush();
  // While the writer lives, its journal is not another's to replay.
  const meanwhile = await AuditLog.open(path);
  assertEquals((await meanwhile.replay()).records, 0);
  await meanwhile.close();
  assertEquals(journalFiles(path).length, 1);
  // The writer dies (its lock goes): the next open indexes the other six, once.
  writer.close();
  const second = await AuditLog.open(path);
  const expected = ["0", "1a", "1b", "2", "3", "4", "5", "6", "7", "8", "9"];
  assertEquals(await messages(second), expected);
  assertEquals(journalFiles(path), []);
  assertEquals((await second.replay()).records, 0);
  await second.close();
  await first.close();
  const third = await AuditLog.open(path);
  const all = [];
  for await (const r of third.query()) all.push(r["event.sequence"]);
  assertEquals(all.length, expected.length);
  assertEquals(new Set(all).size, all.length, "no sequence number is used twice");
  await third.close();
});

Deno.test("replay skips and counts a damaged line and a last line cut short", async () => {
  const path = await storePath();
  await (await AuditLog.open(path)).close();
  const writer = JournalWriter.create(path)!;
  writer.append([rec("a")]);
  writer.close();
  const good = JSON.stringify([rec("b")]) + "\n";
  await Deno.writeTextFile(writer.path, `{not json\n${good}[{"message":"cut`, { append: true });
  const log = await AuditLog.open(path, { replay: false });
  const report = await log.replay();
  assertEquals([report.journals, report.records], [1, 2]);
  assertEquals(report.damagedBytes, "{not json".length + '[{"message":"cut'.length);
  assertEquals(await messages(log), ["a", "b"]);
  await log.close();
});

Deno.test("two logs appending to one store concurrently never reuse a sequence number", async () => {
  const path = await storePath();
  const a = await AuditLog.open(path), b = await AuditLog.open(path);
  for (let i = 0; i < 5; i++) {
    a.append([rec(`a${i}`)]);
    b.append([rec(`b${i}`)]);
    await Promise.all([a.flush(), b.flush()]);
  }
  await a.close();
  await b.close();
  const log = await AuditLog.open(path);
  const stored = await messages(log);
  await log.close();
  assertEquals(stored.length, 10, `stored ${stored.join(",")}`);
  assert(["a", "b"].every((p) => stored.filter((m) => m.startsWith(p)).length === 5));
});
