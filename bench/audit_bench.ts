/**
 * What keeping every record costs (docs/audit.md): an alert flood under `idwrap run` (peak RSS of idwrap, alerts
 * per second, how often calls waited for the store), and the journal's choice of write(2) over fdatasync(2) per record
 * (the price of each on this machine's disk).
 *
 *   deno task build && deno run --allow-all bench/audit_bench.ts [--floods 20000,100000] [--records 20000]
 *     [--synced 1000] [--save-run]
 *
 * Floods run one after another (each with a fresh store, so each indexes all it makes); the journal figures write
 * records of 512 bytes into a file beside the default store (`--journal-dir` to move it; tmpfs would make fdatasync
 * free), as the journal does (an append per record).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultStorePath } from "../host/store/kv.ts";
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
  const store = await Deno.makeTempDir({ dir: work, prefix: "store-" });
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
      "save-run": { type: "boolean" },
    },
  });
  const floods = (values.floods ?? "20000,100000").split(",").map(Number);
  const records = Number(values.records ?? 20_000), synced = Number(values.synced ?? 1_000);
  const rounds = Number(values.rounds ?? 3);
  const work = await Deno.makeTempDir({ prefix: "idwrap-audit-bench-" });
  try {
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
