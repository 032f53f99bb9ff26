/**
 * A hostile wrapper names its alerts as it likes (`wrapper.<anything>:` becomes `rule.name`), so the daemon's
 * `idwrap_alerts_total{rule}` must not grow a series per name (rt9 M1): past MAX_SERIES new names count as `other`,
 * and the overflow is counted. Driven through DaemonMetrics with the records such a wrapper's alerts become (a custom
 * .wasm is not needed to reach this code: the rule name is read from the record).
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { toAuditRecords } from "../../host/audit/record.ts";
import { DaemonMetrics, MAX_SERIES } from "../../host/daemon/metrics.ts";

const GAUGES = { sessions: 0, processes: {}, auditBacklog: 0, outputs: [], notified: {}, hooks: {} };

function alert(name: string) {
  return toAuditRecords({
    kind: "alert",
    source: "seccomp",
    time: Date.now(),
    pid: 1,
    wrapper: "hostile",
    message: `hostile.${name}: anything`,
    program: { exe: "/usr/bin/true", argv0: "true", uid: 0, gid: 0 },
  })[0];
}

Deno.test("idwrap_alerts_total keeps at most MAX_SERIES rule series; the rest count as other, the overflow counted", () => {
  const m = new DaemonMetrics();
  const names = 3 * MAX_SERIES;
  m.records(Array.from({ length: names }, (_, i) => alert(`r${i}`)));
  m.records([alert("r0"), alert("r0")]); // a name already kept still counts under its own series
  const text = m.render(GAUGES);
  const series = text.split("\n").filter((l) => l.startsWith("idwrap_alerts_total{"));
  assert(series.length <= MAX_SERIES + 1, `${series.length} series`);
  assert(series.some((l) => /rule="hostile\.r0".* 3$/.test(l)), series.slice(0, 3).join("\n"));
  const other = series.find((l) => l.includes('rule="other"'));
  assertEquals(other?.split(" ")[1], String(names - MAX_SERIES));
  assert(
    text.includes(`idwrap_metric_series_overflow_total{metric="idwrap_alerts_total"} ${names - MAX_SERIES}`),
    text.split("\n").filter((l) => l.includes("overflow")).join("\n"),
  );
});
