/**
 * The bpf source's cost, on this machine's kernel, as ratios against bare in
 * the same run (issue 15's targets: an observed getppid ≤ 4× bare, a process
 * outside every watched tree ≤ 1.05× on tar, zero records lost at tar's rate):
 *
 * - getppid (tests/sources/bpf/fixtures/calls.c "flood", which times its own loop): bare; with the programs
 *   attached but the process unwatched (pid-hash mode, and cgroup mode: one compare); one no-op program on sys_enter,
 *   tp_btf against raw_tp (which type costs less to have attached); observed (enter and exit
 *   recorded) with batched wake-ups into events, the same with records taken and dropped (no decoding), and with a
 *   wake-up per record (the ring buffer's default).
 * - `tar -cf /dev/null /usr/share` (timed by the shell that runs it): bare, unwatched (both modes), observed with
 *   every call recorded (enter and exit, path copies), and the records lost at that rate.
 * - Unwatched with an interest in entries only: sys_exit is then not attached (one program per call, not two).
 * - With IDWRAP_BENCH_BASE=DIR (another checkout, e.g. of integration, its build/ made): the observed rows again
 *   through DIR's host code, in the same run.
 *
 * The configurations alternate within each repetition (bare, unwatched, observed, … then again), so a change in the
 * machine's load shifts all of them alike.
 *
 *   [IDWRAP_BENCH_BASE=DIR] ./node_modules/.bin/deno run --allow-all bench/bpf_bench.ts [N] [RUNS]
 *
 * Raw numbers go to bench/results/bpf.json (--save-run: also docs/runs/bpf-<date>.json); a table to stdout.
 *
 * @module
 */
import { interestIn, interestInEverything } from "../host/sources/bpf/interest.ts";
import { attachProbe, cgroup2Mount } from "../host/sources/bpf/probe.ts";
import { observeCommand } from "../host/sources/bpf/run.ts";
import { BpfTracer, type BpfTracerOptions } from "../host/sources/bpf/tracer.ts";
import type { InterestEntry } from "../host/sources/bpf/layout.ts";
import { keepResults, median, table } from "./_report.ts";
import { benchArgs, buildFixture, ROOT, tarCommand } from "./_workload.ts";

const { N, RUNS } = benchArgs({ n: 200_000, runs: 3 });
const FIXTURE = await buildFixture("tests/sources/bpf/fixtures/calls.c", "bpf_calls");
const TAR = tarCommand("/usr/share");

const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();

/** Runs a command outside any watched tree; its stdout as a number. */
async function bare(cmd: string[]): Promise<number> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "null" }).output();
  return Number(text(out.stdout));
}

/** The same with the programs attached, watching nothing this command belongs to. */
async function unwatched(
  cmd: string[],
  options: BpfTracerOptions,
  interest: ReadonlyMap<number, InterestEntry> = interestInEverything(),
): Promise<number> {
  const tracer = BpfTracer.load(options);
  tracer.setInterest(interest);
  try {
    return await bare(cmd);
  } finally {
    tracer.close();
  }
}

/** The same with one no-op program of build/bpf/probes.o attached to sys_enter (tp_btf against raw_tp). */
async function withProbe(cmd: string[], program: string): Promise<number> {
  const detach = attachProbe(program);
  try {
    return await bare(cmd);
  } finally {
    detach();
  }
}

/** Observed: the command's tree watched, `interest` recorded; its number and the records lost. */
async function observed(
  cmd: string[],
  interest: ReturnType<typeof interestIn>,
  extra: BpfTracerOptions = {},
  observe: typeof observeCommand = observeCommand,
): Promise<{ value: number; lost: number; records: number }> {
  let records = 0;
  const r = await observe(cmd, {
    interest,
    ...extra,
    stdout: "piped",
    stderr: "null",
    onEvents: (e) => records += e.length,
  });
  return { value: Number(text(r.stdout!)), lost: r.lost, records };
}

/**
 * Observed with the records taken from the ring and dropped, not decoded: the kernel side and the transport alone
 * (the cost a consumer that builds no event, or a faster one, would give).
 */
async function observedRaw(cmd: string[], interest: ReturnType<typeof interestIn>): Promise<number> {
  const tracer = BpfTracer.load({});
  try {
    tracer.setInterest(interest);
    // The shell waits for a line before it execs the command, so the watch is in place first.
    const child = new Deno.Command("/bin/sh", {
      args: ["-c", 'read _; exec "$0" "$@"', ...cmd],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    tracer.watch(child.pid);
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("\n"));
    await w.close();
    let done = false;
    const output = child.output().then((o) => (done = true, o));
    let turn = performance.now();
    while (!done) {
      tracer.poll(5);
      if (performance.now() - turn >= 20) {
        await new Promise((r) => setTimeout(r, 0));
        turn = performance.now();
      }
    }
    tracer.drain();
    lostRaw.push(tracer.lostTotal());
    return Number(text((await output).stdout));
  } finally {
    tracer.close();
  }
}

const cgroupDir = `${cgroup2Mount() ?? "/sys/fs/cgroup"}/idwrap-bench-${Deno.pid}`;
Deno.mkdirSync(cgroupDir, { recursive: true });
const cgroup: BpfTracerOptions = { mode: "cgroup", cgroup: cgroupDir };
const flood = [FIXTURE, "flood", String(N)];
const small = [FIXTURE, "flood", String(Math.round(N / 10))];
const BASE = Deno.env.get("IDWRAP_BENCH_BASE");
const baseObserve: typeof observeCommand | undefined = BASE
  ? (await import(`${BASE}/host/sources/bpf/run.ts`)).observeCommand
  : undefined;
const enterOnly = (m: Map<number, InterestEntry>) => new Map([...m].map(([nr, e]) => [nr, { ...e, exit: false }]));

type Row = { median: number; runs: number[]; lost?: number[]; records?: number[] };
const results: Record<string, Row> = {};
/** Each configuration: its key, and one run of it (its number; losses and records go in its row). */
const configs: [string, (row: Row) => Promise<number>][] = [
  ["getppid_bare", () => bare(flood)],
  ["getppid_noop_tp_btf", () => withProbe(flood, "probe_tp_btf")],
  ["getppid_noop_raw_tp", () => withProbe(flood, "probe_raw_tp")],
  ["getppid_unwatched_pids", () => unwatched(flood, {})],
  ["getppid_unwatched_enter_only", () => unwatched(flood, {}, enterOnly(interestInEverything()))],
  ["getppid_unwatched_cgroup", () => unwatched(flood, cgroup)],
  ["getppid_observed", async (row) => {
    const o = await observed(flood, interestIn(["getppid"]));
    (row.lost ??= []).push(o.lost);
    return o.value;
  }],
  ...(baseObserve
    ? [["getppid_observed_base", async (row: Row) => {
      const o = await observed(flood, interestIn(["getppid"]), {}, baseObserve);
      (row.lost ??= []).push(o.lost);
      return o.value;
    }] as [string, (row: Row) => Promise<number>]]
    : []),
  ["getppid_observed_enter_only", async (row) => {
    const o = await observed(flood, interestIn(["getppid"], { enter: true, exit: false }));
    (row.lost ??= []).push(o.lost);
    return o.value;
  }],
  ["getppid_observed_raw", async (row) => {
    const v = await observedRaw(flood, interestIn(["getppid"]));
    (row.lost ??= []).push(lostRaw.at(-1)!);
    return v;
  }],
  ["getppid_observed_wake_each", async () => (await observed(small, interestIn(["getppid"]), { wakeBytes: 0 })).value],
  ["tar_bare", () => bare(TAR)],
  ["tar_unwatched_pids", () => unwatched(TAR, {})],
  ["tar_unwatched_enter_only", () => unwatched(TAR, {}, enterOnly(interestInEverything()))],
  ["tar_unwatched_cgroup", () => unwatched(TAR, cgroup)],
  ["tar_observed_all", async (row) => {
    const o = await observed(TAR, interestInEverything());
    (row.lost ??= []).push(o.lost);
    (row.records ??= []).push(o.records);
    return o.value;
  }],
  ...(baseObserve
    ? [["tar_observed_all_base", async (row: Row) => {
      const o = await observed(TAR, interestInEverything(), {}, baseObserve);
      (row.lost ??= []).push(o.lost);
      (row.records ??= []).push(o.records);
      return o.value;
    }] as [string, (row: Row) => Promise<number>]]
    : []),
];
const lostRaw: number[] = [];
try {
  for (const [key] of configs) results[key] = { median: 0, runs: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const [key, once] of configs) results[key].runs.push(await once(results[key]));
  }
  for (const row of Object.values(results)) row.median = median(row.runs);
} finally {
  Deno.removeSync(cgroupDir);
}

const ratio = (k: string, base: string) =>
  `${(results[k].median / results[base].median).toFixed(2)}× (best ${
    (Math.min(...results[k].runs) / Math.min(...results[base].runs)).toFixed(2)
  }×)`;
const LABELS: Record<string, string> = {
  getppid_bare: "getppid bare (ns/call)",
  getppid_noop_tp_btf: "getppid, a no-op tp_btf/sys_enter attached",
  getppid_noop_raw_tp: "getppid, a no-op raw_tp/sys_enter attached",
  getppid_unwatched_pids: "getppid unwatched, pid hash (enter + exit programs)",
  getppid_unwatched_enter_only: "getppid unwatched, pid hash, interest in entries only (sys_enter only)",
  getppid_unwatched_cgroup: "getppid unwatched, cgroup id",
  getppid_observed: "getppid observed (enter + exit), into events",
  getppid_observed_base: "getppid observed (enter + exit), into events: IDWRAP_BENCH_BASE's host",
  getppid_observed_enter_only: "getppid observed, enter only, into events",
  getppid_observed_raw: "getppid observed, records taken, not decoded",
  getppid_observed_wake_each: "getppid observed (wake-up per record)",
  tar_bare: "tar bare (µs)",
  tar_unwatched_pids: "tar unwatched, pid hash (enter + exit programs)",
  tar_unwatched_enter_only: "tar unwatched, pid hash, interest in entries only",
  tar_unwatched_cgroup: "tar unwatched, cgroup id",
  tar_observed_all: "tar observed, every call, into events",
  tar_observed_all_base: "tar observed, every call, into events: IDWRAP_BENCH_BASE's host",
};
const rows = [["workload", "median", "vs bare, medians (fastest runs)", "lost"]];
for (const key of Object.keys(results)) {
  const base = key.startsWith("tar") ? "tar_bare" : "getppid_bare";
  const m = results[key].median;
  rows.push([
    LABELS[key] ?? key,
    key.startsWith("tar") ? String(m) : m.toFixed(1),
    key === base ? "1.00×" : ratio(key, base),
    results[key].lost?.join("/") ?? "",
  ]);
}
console.log(table(rows));
console.log(
  `(${RUNS} runs each, alternating, medians; getppid N=${N}; tar records per run: ${
    results.tar_observed_all.records?.join("/")
  }; load average ${Deno.loadavg().map((x) => x.toFixed(1)).join(" ")}${BASE ? `; base ${BASE}` : ""})`,
);
await keepResults(ROOT, "bpf", { n: N, runs: RUNS, base: BASE ?? null, loadavg: Deno.loadavg(), results });
