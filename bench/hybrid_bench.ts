/**
 * The hybrid source against seccomp and bare, in one run (issue 15): the same commands under `idwrap run` with the
 * default policy (policies/default.yaml), on `--source seccomp` and `--source hybrid`, and with no idwrap at all.
 *
 * Policies: the default one (its baseline wrapper may deny opens: they wait on both sources) and an observe-only one
 * (`/observe`: an alert rule on the same opens, getppid and close observed).
 *
 * - loop: tests/sources/hybrid/fixtures/work.c "loop", N rounds of getppid and an open+close of /etc/hostname, timed
 *   by the program itself (ns a round: idwrap's start is not in it).
 * - tar: `tar -cf /dev/null DIR`, timed by the shell that runs it (µs).
 *
 *   ./node_modules/.bin/deno run --allow-all bench/hybrid_bench.ts [N] [RUNS] [DIR] [--save-run] [--before=ROOT]
 *
 * --before=ROOT adds `hybrid (before)` rows: the same hybrid runs by another checkout's idwrap (ROOT/idwrap, built), in
 * the same rotated rounds: a before/after of a change on the same machine state.
 *
 * Repetitions alternate the configurations (bare, seccomp, hybrid, bare, …) so a change of load on the machine hits
 * each alike; ratios are medians against bare's median in the same run. Raw numbers: bench/results/hybrid.json
 * (--save-run: also docs/runs/hybrid-<date>.json).
 *
 * @module
 */
import { scratchFile } from "../tests/temp.ts";
import { keepResults, median, table } from "./_report.ts";
import { benchArgs, buildFixture, ROOT, tarCommand } from "./_workload.ts";

const { N, RUNS, DIR } = benchArgs({ n: 20_000, runs: 5 });
const FIXTURE = await buildFixture("tests/sources/hybrid/fixtures/work.c", "hybrid_work");

const WORKLOADS: Record<string, { cmd: string[]; unit: string }> = {
  loop: { cmd: [FIXTURE, "loop", String(N), "/etc/hostname"], unit: "ns/round" },
  tar: { cmd: tarCommand(DIR), unit: "µs" },
};
/**
 * An observe-only policy beside the default one: the same opens alerted on (never denied) and getppid observed. Every
 * call it names waits on seccomp; on the hybrid source none does.
 */
const OBSERVING = await scratchFile({ prefix: "idwrap-bench-", suffix: ".yaml" });
await Deno.writeTextFile(
  OBSERVING,
  `version: 1
name: bench-observe
observe: [getppid, close]
rules:
  - id: hostname-open
    syscalls: [open, openat]
    path: /etc/hostname
    action: alert
`,
);
const BEFORE = Deno.args.find((a) => a.startsWith("--before="))?.slice("--before=".length).replace(/\/?$/, "/");
const CONFIGS = [
  "bare",
  "seccomp",
  "hybrid",
  ...(BEFORE ? ["hybrid (before)"] : []),
  "seccomp/observe",
  "hybrid/observe",
  ...(BEFORE ? ["hybrid (before)/observe"] : []),
];

/** One run of `cmd` under `config`; the number it printed last. */
async function once(config: string, cmd: string[]): Promise<number> {
  const [which, policy] = config.split("/");
  const [source, idwrap] = which === "hybrid (before)" ? ["hybrid", `${BEFORE}idwrap`] : [which, `${ROOT}idwrap`];
  const argv = config === "bare"
    ? cmd
    : [idwrap, "run", "--source", source, ...(policy ? ["-p", OBSERVING] : []), "--", ...cmd];
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "piped", stderr: "piped" }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const value = Number(lines.at(-1));
  if (!out.success || !Number.isFinite(value)) {
    throw new Error(`${config} ${cmd.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return value;
}

const results: Record<string, Record<string, number[]>> = {};
for (const [name, w] of Object.entries(WORKLOADS)) {
  results[name] = Object.fromEntries(CONFIGS.map((c) => [c, []]));
  await once("bare", w.cmd); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const config of CONFIGS) results[name][config].push(await once(config, w.cmd));
  }
}

const rows = [["workload", "source/policy", "median", "vs bare (median)", "vs seccomp (same policy)", "runs"]];
for (const [name, w] of Object.entries(WORKLOADS)) {
  const bare = median(results[name].bare);
  for (const config of CONFIGS) {
    const m = median(results[name][config]);
    const seccomp = median(results[name][config.endsWith("/observe") ? "seccomp/observe" : "seccomp"]);
    rows.push([
      `${name} (${w.unit})`,
      config,
      m.toFixed(1),
      `${(m / bare).toFixed(2)}×`,
      `${(m / seccomp).toFixed(2)}×`,
      results[name][config].map((x) => x.toFixed(0)).join(" "),
    ]);
  }
}
console.log(table(rows));
await keepResults(ROOT, "hybrid", {
  n: N,
  runs: RUNS,
  dir: DIR,
  ...(BEFORE ? { before: BEFORE } : {}),
  policies: { default: "policies/default.yaml", observe: await Deno.readTextFile(OBSERVING) },
  results,
});
await Deno.remove(OBSERVING);
