/**
 * tests/audit/index_test.ts's victim: journals and appends alert records as the supervisor does, batch after
 * batch, until it is killed; says "committed" once some batches are in the store.
 *
 * @module
 */
import { JournalWriter } from "../../host/audit/journal.ts";
import { AuditLog } from "../../host/audit/log.ts";
import type { AuditRecord } from "../../host/audit/record.ts";

const path = Deno.args[0];
const log = await AuditLog.open(path);
const writer = JournalWriter.create(path)!;
const rec = (i: number): AuditRecord => ({
  "@timestamp": new Date().toISOString(),
  "ecs.version": "8.11.0",
  "event.kind": "alert",
  "event.category": ["file"],
  "event.type": ["info"],
  "event.action": "openat",
  "event.outcome": i % 2 ? "failure" : "success",
  "event.module": "idwrap",
  "event.dataset": "idwrap.alerts",
  message: `m${i}`,
  "process.pid": i,
  "process.executable": `/usr/bin/p${i % 13}`,
  "process.name": `p${i % 13}`,
  "idwrap.queue": "alerts",
  "idwrap.wrapper": `rule-${i % 17}`,
  "idwrap.source": "seccomp",
} as AuditRecord);
for (let i = 0, round = 0;; round++) {
  // The journal first, then the store, as the supervisor and the main thread do; never waiting for the store.
  const groups = Array.from({ length: 200 }, () => [rec(i++)]);
  const ends = groups.map((g) => writer.append(g));
  log.appendJournaled(groups, { file: writer.file, ends });
  if (round === 5) {
    await log.flush();
    await Deno.stdout.write(new TextEncoder().encode("committed\n"));
  }
  await new Promise((r) => setTimeout(r, 0));
}
