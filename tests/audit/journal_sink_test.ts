/**
 * The supervisor thread's JournalSink, driven directly: each notable event
 * is in the journal when `emit` returns (before the supervisor answers), a
 * long journal is rotated once the main thread kept everything in it, and
 * rotated journals are indexed and removed without a record lost or doubled.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { JournalWriter } from "../../host/audit/journal.ts";
import { JournalSink, PRESSURE, pressureBuffer } from "../../host/audit/journal_sink.ts";
import { AuditLog } from "../../host/audit/log.ts";
import { toAuditRecords } from "../../host/audit/record.ts";
import type { HostEvent } from "../../host/events.ts";

function alert(i: number): HostEvent {
  return {
    kind: "alert",
    source: "seccomp",
    time: Date.now(),
    pid: 7,
    wrapper: "w",
    message: `alert ${i}`,
    program: { exe: "/usr/bin/cat", argv0: "cat", uid: 0, gid: 0 },
  };
}

Deno.test("JournalSink: journaled on emit, rotated when long, rotated journals replayed once and removed", async () => {
  const path = `${await scratchDir({ prefix: "idwrap-sink-" })}/store.kv`;
  const log = await AuditLog.open(path);
  const pressure = pressureBuffer();
  const sink = new JournalSink(
    (events, marks) => {
      log.appendJournaled(events.map(toAuditRecords), marks);
      // The main thread's part: count them kept once in the store (here at once: one thread).
      Atomics.add(pressure, PRESSURE.kept, events.length);
    },
    undefined,
    JournalWriter.create(path),
    pressure,
    { high: 16, rotateBytes: 4096 },
  );
  const dir = `${path}.journal`;
  const first = sink.journalPath!;
  for (let i = 0; i < 200; i++) {
    const before = sink.journalPath!;
    sink.emit(alert(i));
    // In the journal when emit returns (the one it was written to, if that was then rotated).
    assert(Deno.readTextFileSync(before).includes(`"alert ${i}"`), `alert ${i} is not in ${before}`);
  }
  sink.flush();
  const files = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert(files.length > 2, `rotated: ${files.join(", ")}`);
  assert(!files.includes(first) || files.length > 1);
  await log.flush();
  const report = await log.replay();
  assertEquals(report.records, 0, "every rotated journal was already indexed");
  assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), [sink.journalPath!.split("/").at(-1)]);
  sink.close();
  await log.close(); // the last journal too
  assertEquals([...Deno.readDirSync(dir)], []);
  const again = await AuditLog.open(path);
  const messages: string[] = [];
  for await (const r of again.query()) messages.push(r.message);
  await again.close();
  assertEquals(messages, Array.from({ length: 200 }, (_, i) => `alert ${i}`));
});
