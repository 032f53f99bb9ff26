/**
 * `idwrap audit query --rule --program --outcome --host --since --until` (host/cli/audit.ts): the records printed are
 * the scan's, for each option and together; a bad --outcome is a usage error.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { AuditFilter } from "../../host/audit/filter.ts";
import { AuditLog } from "../../host/audit/log.ts";
import { idwrap } from "../helpers.ts";
import { mixed, scanned, T0 } from "./index_fixture.ts";

Deno.test("audit query by rule, program, outcome, host and time prints what the scan selects", async () => {
  const store = `${await scratchDir({ prefix: "idwrap-idx-cli-" })}/audit.kv`;
  const log = await AuditLog.open(store);
  log.append(Array.from({ length: 2000 }, (_, i) => mixed(i)));
  await log.close();
  const at = (s: number) => new Date(T0 + s * 1000);
  const iso = (s: number) => at(s).toISOString();
  const cases: [string[], AuditFilter][] = [
    [["--rule", "rare-rule"], { wrapper: "rare-rule" }],
    [["--rule", "net-deny", "--outcome", "failure"], { wrapper: "net-deny", outcome: "failure" }],
    [["--host", "other-host", "--program", "/usr/bin/*"], { host: "other-host", program: "/usr/bin/*" }],
    [["--since", iso(100), "--until", iso(400), "--outcome", "success"], {
      since: at(100),
      until: at(400),
      outcome: "success",
    }],
    [["--program", "ssh*", "--limit", "5"], { program: "ssh*", limit: 5 }],
  ];
  const reader = await AuditLog.open(store);
  try {
    for (const [args, filter] of cases) {
      const ran = await idwrap(["audit", "query", "--json", "--store", store, ...args]);
      assertEquals(ran.code, 0, ran.stderr);
      const got = ran.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)["event.sequence"]);
      const want = await scanned(reader, filter);
      assert(want.length > 0, `${args.join(" ")} selects something`);
      assertEquals(got, want, args.join(" "));
    }
  } finally {
    await reader.close();
  }
  const bad = await idwrap(["audit", "query", "--store", store, "--outcome", "maybe"]);
  assertEquals(bad.code, 2);
  assert(/--outcome "maybe": expected one of success, failure, unknown/.test(bad.stderr), bad.stderr);
});
