/**
 * What keeping every record costs (docs/audit.md): an alert flood under `idwrap run` (peak RSS of idwrap, alerts
 * per second, how often calls waited for the store), and the journal's choice of write(2) over fdatasync(2) per record
 * (the price of each on this machine's disk).
 *
 *   deno task build && deno run --allow-all bench/audit_bench.ts [--floods 20000,100000] [--records 20000]
 *     [--synced 1000] [--query-records 100000] [--only-query] [--save-run]
 *
 * Floods run one after another (each with a fresh store, so each indexes all it makes); the journal figures write
 * records of 512 bytes into a file beside the default store (`--journal-dir` to move it; tmpfs would make fdatasync
 * free), as the journal does (an append per record).
 *
 * The query row: a store of `--query-records` records (in the temporary folder) where one rule is rare (10
 * records), and `audit query --rule` for it through the rule index (AuditLog.query) against the scan of every record
 * (what query did before the indexes), in the same run; medians, and their ratio. Kept as `audit-query`.
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultStorePath } from "../host/store/kv.ts";
import { type AuditFilter, auditFilter } from "../host/audit/filter.ts";
import { AuditLog } from "../host/audit/log.ts";
import type { AuditRecord } from "../host/audit/record.ts";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const IDWRAP = `${ROOT}idwrap`;
const OPEN_COUNT = `${ROOT}build/tests/open_count`;

/** The most memory the process ever had resident (VmHWM), in MiB, or 0 once it is gone. */
function peakRssMiB(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

interface Flood {
  alerts: number;
  peakRssMiB: number;
  seconds: number;
  alertsPerSecond: number;
  summary: string;
}

/** `idwrap run` of a program that opens a watched file `alerts` times under a one-rule alert policy. */
async function flood(work: string, alerts: number): Promise<Flood> {
  const watched = `${work}/watched`, policy = `${work}/flood.yaml`;
  await Deno.writeTextFile(watched, "w\n");
  await Deno.writeTextFile(
    policy,
    `rules:\n  - id: flood-open\n    syscalls: [open, openat]\n    path: ${watched}\n    action: alert\n`,
  );
  const store = await scratchDir({ dir: work, prefix: "store-" });
  const start = performance.now();
  const child = new Deno.Command(IDWRAP, {
    args: ["run", "--policy", policy, "--", OPEN_COUNT, watched, String(alerts)],
    env: { IDWRAP_STORE: `${store}/store.kv` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  const sampler = setInterval(() => peak = Math.max(peak, peakRssMiB(child.pid)), 50);
  const out = await child.output();
  clearInterval(sampler);
  const seconds = (performance.now() - start) / 1000;
  const stdout = new TextDecoder().decode(out.stdout).trim().split("\n");
  if (!out.success || stdout.at(-1) !== String(alerts)) {
    throw new Error(`the flood of ${alerts} failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  const summary = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
  return { alerts, peakRssMiB: Math.round(peak), seconds, alertsPerSecond: Math.round(alerts / seconds), summary };
}

/** Microseconds per 512-byte append: write(2) alone, or write(2) then fdatasync(2). */
function appendCost(path: string, records: number, sync: boolean): number {
  const line = new TextEncoder().encode("x".repeat(511) + "\n");
  Deno.writeFileSync(path, new Uint8Array());
  const file = Deno.openSync(path, { append: true });
  try {
    const start = performance.now();
    for (let i = 0; i < records; i++) {
      file.writeSync(line);
      if (sync) file.syncDataSync();
    }
    return ((performance.now() - start) * 1000) / records;
  } finally {
    file.close();
  }
}

/** Record i of the query bench's store: ten of them (spread out) are of the rare rule. */
function benchRecord(i: number, n: number): AuditRecord {
  const rare = i % Math.floor(n / 10) === 7;
  const rule = rare ? "rare-rule" : `rule-${i % 20}`;
  return {
    "@timestamp": new Date(Date.UTC(2026, 11, 1) + i * 1000).toISOString(),
    "ecs.version": "8.11.0",
    "event.kind": "alert",
    "event.category": ["file"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": i % 3 ? "success" : "failure",
    "event.module": "idwrap",
    "event.dataset": "idwrap.alerts",
    message: `open of /srv/data/${i % 1000} by ${rule}`,
    "process.pid": 1000 + (i % 50),
    "process.executable": `/usr/bin/prog${i % 40}`,
    "process.name": `prog${i % 40}`,
    "idwrap.queue": i % 4 ? "alerts" : "audit",
    "idwrap.source": "seccomp",
    "idwrap.wrapper": rule,
    "rule.name": rule,
  } as AuditRecord;
}

interface QueryBench {
  records: number;
  buildSeconds: number;
  matches: number;
  indexedMs: number[];
  scanMs: number[];
  ratio: number;
}

/** A query for the rare rule, through the index and by the scan, on one store of `n` records. */
async function queryBench(work: string, n: number, rounds: number): Promise<QueryBench> {
  const path = `${work}/query.kv`;
  let log = await AuditLog.open(path);
  const start = performance.now();
  for (let i = 0; i < n; i += 1000) {
    log.append(Array.from({ length: Math.min(1000, n - i) }, (_, j) => benchRecord(i + j, n)));
    await log.flush();
  }
  await log.close();
  const buildSeconds = (performance.now() - start) / 1000;
  log = await AuditLog.open(path);
  const filter: AuditFilter = { wrapper: "rare-rule" };
  const matchesFilter = auditFilter(filter);
  const indexedMs: number[] = [], scanMs: number[] = [];
  let matches = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      let t = performance.now(), found = 0, scanned = 0;
      for await (const _ of log.query(filter)) found++;
      indexedMs.push(performance.now() - t);
      t = performance.now();
      for await (const rec of log.range(1, log.lastSequence)) if (matchesFilter(rec)) scanned++;
      scanMs.push(performance.now() - t);
      if (found !== scanned) throw new Error(`the index found ${found} records, the scan ${scanned}`);
      matches = found;
    }
  } finally {
    await log.close();
  }
  return { records: n, buildSeconds, matches, indexedMs, scanMs, ratio: median(scanMs) / median(indexedMs) };
}

/** The type of the filesystem holding `dir` (`df --output=fstype`), for the record. */
async function filesystemOf(dir: string): Promise<string> {
  const out = await new Deno.Command("df", { args: ["--output=fstype", dir], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "unknown";
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      floods: { type: "string" },
      records: { type: "string" },
      synced: { type: "string" },
      rounds: { type: "string" },
      "journal-dir": { type: "string" },
      "query-records": { type: "string" },
      "only-query": { type: "boolean" },
      "save-run": { type: "boolean" },
    },
  });
  const floods = (values.floods ?? "20000,100000").split(",").map(Number);
  const records = Number(values.records ?? 20_000), synced = Number(values.synced ?? 1_000);
  const rounds = Number(values.rounds ?? 3);
  const queryRecords = Number(values["query-records"] ?? 100_000);
  const work = await scratchDir({ prefix: "idwrap-audit-bench-" });
  try {
    if (queryRecords > 0) {
      const q = await queryBench(work, queryRecords, rounds);
      console.log(`audit query --rule for a rule with ${q.matches} of ${q.records} records, medians of ${rounds}\n`);
      console.log(table([
        ["query", "ms"],
        ["through the rule index", median(q.indexedMs).toFixed(2)],
        ["scan of every record", median(q.scanMs).toFixed(1)],
        ["scan / index", q.ratio.toFixed(0)],
      ]));
      console.log(`(the store took ${q.buildSeconds.toFixed(1)} s to write, index entries included)\n`);
      await keepResults(ROOT, "audit-query", { query: q, loadavg: Deno.loadavg() });
    }
    if (values["only-query"]) {
      await Deno.remove(work, { recursive: true });
      Deno.exit(0);
    }
    const floodRuns = [];
    for (const n of floods) floodRuns.push(await flood(work, n));
    console.log("alert flood under `idwrap run` (one alert rule, one open per alert)\n");
    console.log(table([
      ["alerts", "peak RSS of idwrap (MiB)", "seconds", "alerts/s", "summary"],
      ...floodRuns.map((
        f,
      ) => [String(f.alerts), String(f.peakRssMiB), f.seconds.toFixed(1), String(f.alertsPerSecond), f.summary]),
    ]));

    const journal = `${values["journal-dir"] ?? dirname(defaultStorePath())}/idwrap-audit-bench-journal`;
    const writeUs: number[] = [], syncUs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      writeUs.push(appendCost(journal, records, false));
      syncUs.push(appendCost(journal, synced, true));
    }
    await Deno.remove(journal);
    console.log(`\njournal appends of 512 bytes in ${journal}, medians of ${rounds} rounds\n`);
    console.log(table([
      ["per record", "µs", "records"],
      ["write(2)", median(writeUs).toFixed(1), String(records)],
      ["write(2) + fdatasync(2)", median(syncUs).toFixed(1), String(synced)],
    ]));
    await keepResults(ROOT, "audit", {
      floods: floodRuns,
      journal: {
        path: journal,
        filesystem: await filesystemOf(dirname(journal)),
        records,
        synced,
        rounds,
        writeUs,
        syncUs,
      },
      loadavg: Deno.loadavg(),
    });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
