/**
 * host/log.ts: the level of each kind of line the daemon and its outputs log (they pass lines, not levels), and
 * the two forms of a line. The real runs are in log_format_test.ts.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { daemonLevel, formatLog } from "../host/log.ts";

Deno.test("daemonLevel: each line the daemon and its outputs write gets its deliberate level", () => {
  const lines: [string, string][] = [
    ["serving users 0 on /run/idwrap; policies: /etc/idwrap/a.yaml", "info"],
    ["reloaded: a; wrappers: none", "info"],
    ["a policy file changed: reloading", "info"],
    ["session 3: uid 1000 runs /bin/sh -c x (pid 42)", "info"],
    ["output o: file, json, queues alerts", "info"],
    ["output o: delivering again", "info"],
    ["stopped", "info"],
    ["warning: policy p (f) makes the seccomp source notify close: …", "warning"],
    ["refused: a wrapped process asked", "warning"],
    ["output o: cannot deliver, retrying: ECONNREFUSED", "warning"],
    ["output o: dropped 3 records, no longer in the store", "warning"],
    ["output o: stopping with records undelivered; it delivers them when it next starts", "warning"],
    ["fleet: b not reached within 5000 ms: serving the local policies", "warning"],
    ["session 3: its run does not keep up; events not sent are in the store", "warning"],
    ["session 3: 12 events were not sent to its run (it fell behind); the store has them", "warning"],
    ["reload refused, the previous policies stay in force: a.yaml:3: …", "error"],
    ["output o: record 7 refused (HTTP 400), dropped; the store has it", "warning"],
    ["output o: its buffer was full; read 9 records back from the store", "warning"],
    ["fleet: lost b; the policies in force stay", "warning"],
    ["fleet: reconnected to b", "info"],
    ["fleet: k revision 4 in force", "info"],
    ["fleet: k revision 5 refused, the last good policy stays: k:1: …", "error"],
    ["fleet: stopped following b: closed", "error"],
    ["output o: stopped by an error; it resumes from its cursor at the next start: E", "error"],
    ["uid 1000: Broken pipe", "error"],
    ["session 3: cannot take its listener (EBADF): its holder answers it", "error"],
    ["session 3: connection reset", "error"],
    ["cannot index the audit journals: EIO", "error"],
  ];
  assertEquals(lines.map(([l]) => [l, daemonLevel(l)]), lines);
});

Deno.test("formatLog: today's text, or one JSON object with time, level, logger and message first-class", () => {
  const now = new Date("2026-12-05T05:00:00.000Z");
  assertEquals(formatLog("warning", "w", {}, "idwrap", "text", now), "idwrap: warning: w");
  assertEquals(formatLog("error", "e", {}, "idwrap", "text", now), "idwrap: e");
  assertEquals(formatLog("warning", "warning: w", {}, "idwrap daemon", "text", now), "idwrap daemon: warning: w");
  assertEquals(formatLog("info", "run \x1b[31mred\ttab", {}, "idwrap", "text", now), "idwrap: run \\x1b[31mred\ttab");
  // Fields add to the object; they never replace what every line has.
  assertEquals(JSON.parse(formatLog("info", "m", { session: 3, level: "x" }, "idwrap daemon", "json", now)), {
    session: 3,
    time: "2026-12-05T05:00:00.000Z",
    level: "info",
    logger: "idwrap daemon",
    message: "m",
  });
});
