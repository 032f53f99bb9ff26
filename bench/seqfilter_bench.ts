/**
 * seq's kernel filter on the bpf source (ABI 1.4, docs/bpf.md "Filters a wrapper hands the kernel"), in one run:
 * each workload bare, under `idwrap run --source bpf` with seq in detect mode handing its database to the kernel, and
 * the same with `kernel_filter: false` (every call seq declares leaves the kernel, as before 1.4). seq is trained on
 * each workload first (record mode, in a private store), so the detect runs see only known windows.
 *
 * - getppid: tests/sources/bpf/fixtures/getppid_loop.c, N raw getppid calls, timed by the program (ns a call: idwrap's
 *   start and the first calls before the host arms the process are in it, spread over N).
 * - tar: `tar -cf /dev/null DIR`, timed by the shell that runs it (µs).
 *
 *   ./node_modules/.bin/deno run --allow-all bench/seqfilter_bench.ts [N] [RUNS] [DIR] [--save-run]
 *
 * Repetitions alternate the configurations so a change of load hits each alike; ratios are medians against bare's
 * median in the same run. Raw numbers: bench/results/seqfilter.json (--save-run: also docs/runs/).
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { keepResults, median, table } from "./_report.ts";
import { benchArgs, buildFixture, ROOT, tarCommand } from "./_workload.ts";

const { N, RUNS, DIR } = benchArgs({ n: 200_000, runs: 5 });
const FIXTURE = await buildFixture("tests/sources/bpf/fixtures/getppid_loop.c", "getppid_loop");

const WORKLOADS: Record<string, { cmd: string[]; unit: string }> = {
  getppid: { cmd: [FIXTURE, String(N)], unit: "ns/call" },
  tar: { cmd: tarCommand(DIR), unit: "µs" },
};

const dir = await scratchDir({ prefix: "idwrap-bench-seqf-" });
const env = { ...Deno.env.toObject(), IDWRAP_STORE: `${dir}/store.kv` };
const policy = async (name: string, settings: string) => {
  const file = `${dir}/${name}.yaml`;
  await Deno.writeTextFile(file, `wrappers:\n  - name: seq\n    settings: ${settings}\n`);
  return file;
};
const POLICIES = {
  record: await policy("record", "{ mode: record }"),
  filter: await policy("filter", "{ mode: detect }"),
  nofilter: await policy("nofilter", "{ mode: detect, kernel_filter: false }"),
};
const CONFIGS = ["bare", "seq, no filter", "seq, filter"] as const;

/** One run of `cmd`; the number it printed last, and idwrap's count of calls handed to the host. */
async function once(policyFile: string | undefined, cmd: string[]): Promise<{ value: number; handed?: number }> {
  const out = `${dir}/out.jsonl`;
  const argv = policyFile === undefined
    ? cmd
    : [`${ROOT}idwrap`, "run", "--source", "bpf", "--json", "-o", out, "-p", policyFile, "--", ...cmd];
  const r = await new Deno.Command(argv[0], { args: argv.slice(1), env, stdout: "piped", stderr: "piped" }).output();
  const value = Number(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1));
  if (!r.success || !Number.isFinite(value)) {
    throw new Error(`${argv.join(" ")}: exit ${r.code}: ${new TextDecoder().decode(r.stderr)}`);
  }
  if (policyFile === undefined) return { value };
  const summary = (await Deno.readTextFile(out)).split("\n").filter(Boolean).map((l) => JSON.parse(l))
    .find((e) => e.kind === "summary");
  return { value, handed: summary?.notifications };
}

const results: Record<string, Record<string, number[]>> = {};
const handed: Record<string, Record<string, number[]>> = {};
for (const [name, w] of Object.entries(WORKLOADS)) {
  for (let i = 0; i < 3; i++) await once(POLICIES.record, w.cmd); // train
  results[name] = Object.fromEntries(CONFIGS.map((c) => [c, []]));
  handed[name] = Object.fromEntries(CONFIGS.map((c) => [c, []]));
  await once(undefined, w.cmd); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const config of CONFIGS) {
      const p = config === "bare" ? undefined : config === "seq, filter" ? POLICIES.filter : POLICIES.nofilter;
      const r = await once(p, w.cmd);
      results[name][config].push(r.value);
      if (r.handed !== undefined) handed[name][config].push(r.handed);
    }
  }
}

const rows = [["workload", "configuration", "median", "vs bare (median)", "calls handed to the host", "runs"]];
for (const [name, w] of Object.entries(WORKLOADS)) {
  const bare = median(results[name].bare);
  for (const config of CONFIGS) {
    const m = median(results[name][config]);
    rows.push([
      `${name} (${w.unit})`,
      config,
      m.toFixed(1),
      `${(m / bare).toFixed(2)}×`,
      handed[name][config].length ? String(median(handed[name][config])) : "",
      results[name][config].map((x) => x.toFixed(0)).join(" "),
    ]);
  }
}
console.log(table(rows));
await keepResults(ROOT, "seqfilter", { n: N, runs: RUNS, dir: DIR, results, handed });
await Deno.remove(dir, { recursive: true });
