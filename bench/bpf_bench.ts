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
 *
 *   ./node_modules/.bin/deno run --allow-all bench/bpf_bench.ts [N] [RUNS]
 *
 * Raw numbers go to bench/results/bpf.json (--save-run: also docs/runs/bpf-<date>.json); a table to stdout.
 *
 * @module
 */
import { interestIn, interestInEverything } from "../host/sources/bpf/interest.ts";
import { attachProbe, cgroup2Mount } from "../host/sources/bpf/probe.ts";
import { observeCommand } from "../host/sources/bpf/run.ts";
import { BpfTracer, type BpfTracerOptions } from "../host/sources/bpf/tracer.ts";
import { compileC } from "../tools/build.ts";
import { keepResults, median, table } from "./_report.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const positional = Deno.args.filter((a) => !a.startsWith("--"));
const N = Number(positional[0] ?? 200_000);
const RUNS = Number(positional[1] ?? 3);
const FIXTURE = `${ROOT}build/tests/bpf_calls`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/calls.c`, FIXTURE);
const TAR = [
  "/bin/sh",
  "-c",
  "s=$(date +%s%N); tar -cf /dev/null /usr/share 2>/dev/null; e=$(date +%s%N); echo $(((e-s)/1000))",
];

const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();

/** Runs a command outside any watched tree; its stdout as a number. */
async function bare(cmd: string[]): Promise<number> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "null" }).output();
  return Number(text(out.stdout));
}

/** The same with the programs attached, watching nothing this command belongs to. */
async function unwatched(cmd: string[], options: BpfTracerOptions): Promise<number> {
  const tracer = BpfTracer.load(options);
  tracer.setInterest(interestInEverything());
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
): Promise<{ value: number; lost: number; records: number }> {
  let records = 0;
  const r = await observeCommand(cmd, {
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

async function medianOf(f: () => Promise<number>): Promise<{ median: number; runs: number[] }> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await f());
  return { median: median(runs), runs };
}

const cgroupDir = `${cgroup2Mount() ?? "/sys/fs/cgroup"}/idwrap-bench-${Deno.pid}`;
Deno.mkdirSync(cgroupDir, { recursive: true });
const cgroup: BpfTracerOptions = { mode: "cgroup", cgroup: cgroupDir };
const flood = [FIXTURE, "flood", String(N)];
const lostObs: number[] = [], lostTar: number[] = [], recTar: number[] = [], lostRaw: number[] = [];
const results: Record<string, { median: number; runs: number[]; lost?: number[]; records?: number[] }> = {};
try {
  results.getppid_bare = await medianOf(() => bare(flood));
  results.getppid_noop_tp_btf = await medianOf(() => withProbe(flood, "probe_tp_btf"));
  results.getppid_noop_raw_tp = await medianOf(() => withProbe(flood, "probe_raw_tp"));
  results.getppid_unwatched_pids = await medianOf(() => unwatched(flood, {}));
  results.getppid_unwatched_cgroup = await medianOf(() => unwatched(flood, cgroup));
  results.getppid_observed = await medianOf(async () => {
    const o = await observed(flood, interestIn(["getppid"]));
    lostObs.push(o.lost);
    return o.value;
  });
  results.getppid_observed.lost = lostObs;
  results.getppid_observed_raw = await medianOf(() => observedRaw(flood, interestIn(["getppid"])));
  results.getppid_observed_raw.lost = lostRaw;
  const small = [FIXTURE, "flood", String(Math.round(N / 10))];
  results.getppid_observed_wake_each = await medianOf(async () =>
    (await observed(small, interestIn(["getppid"]), { wakeBytes: 0 })).value
  );
  results.tar_bare = await medianOf(() => bare(TAR));
  results.tar_unwatched_pids = await medianOf(() => unwatched(TAR, {}));
  results.tar_unwatched_cgroup = await medianOf(() => unwatched(TAR, cgroup));
  results.tar_observed_all = await medianOf(async () => {
    const o = await observed(TAR, interestInEverything());
    lostTar.push(o.lost);
    recTar.push(o.records);
    return o.value;
  });
  results.tar_observed_all.lost = lostTar;
  results.tar_observed_all.records = recTar;
} finally {
  Deno.removeSync(cgroupDir);
}

const ratio = (k: string, base: string) =>
  `${(results[k].median / results[base].median).toFixed(2)}× (best ${
    (Math.min(...results[k].runs) / Math.min(...results[base].runs)).toFixed(2)
  }×)`;
const rows = [
  ["workload", "median", "vs bare, medians (fastest runs)", "lost"],
  ["getppid bare (ns/call)", results.getppid_bare.median.toFixed(1), "1.00×", ""],
  [
    "getppid, a no-op tp_btf/sys_enter attached",
    results.getppid_noop_tp_btf.median.toFixed(1),
    ratio("getppid_noop_tp_btf", "getppid_bare"),
    "",
  ],
  [
    "getppid, a no-op raw_tp/sys_enter attached",
    results.getppid_noop_raw_tp.median.toFixed(1),
    ratio("getppid_noop_raw_tp", "getppid_bare"),
    "",
  ],
  [
    "getppid unwatched, pid hash",
    results.getppid_unwatched_pids.median.toFixed(1),
    ratio("getppid_unwatched_pids", "getppid_bare"),
    "",
  ],
  [
    "getppid unwatched, cgroup id",
    results.getppid_unwatched_cgroup.median.toFixed(1),
    ratio("getppid_unwatched_cgroup", "getppid_bare"),
    "",
  ],
  [
    "getppid observed (batched wake-ups)",
    results.getppid_observed.median.toFixed(1),
    ratio("getppid_observed", "getppid_bare"),
    lostObs.join("/"),
  ],
  [
    "getppid observed, records taken, not decoded",
    results.getppid_observed_raw.median.toFixed(1),
    ratio("getppid_observed_raw", "getppid_bare"),
    lostRaw.join("/"),
  ],
  [
    "getppid observed (wake-up per record)",
    results.getppid_observed_wake_each.median.toFixed(1),
    ratio("getppid_observed_wake_each", "getppid_bare"),
    "",
  ],
  ["tar bare (µs)", String(results.tar_bare.median), "1.00×", ""],
  ["tar unwatched, pid hash", String(results.tar_unwatched_pids.median), ratio("tar_unwatched_pids", "tar_bare"), ""],
  [
    "tar unwatched, cgroup id",
    String(results.tar_unwatched_cgroup.median),
    ratio("tar_unwatched_cgroup", "tar_bare"),
    "",
  ],
  [
    "tar observed, every call",
    String(results.tar_observed_all.median),
    ratio("tar_observed_all", "tar_bare"),
    lostTar.join("/"),
  ],
];
console.log(table(rows));
console.log(`(${RUNS} runs each, medians; getppid N=${N}; tar records per run: ${recTar.join("/")})`);
await keepResults(ROOT, "bpf", { n: N, runs: RUNS, results });
