/**
 * The seccomp source's EINTR window, counted (`deno task bench:eintr`): a
 * notified call waits interruptibly until the supervisor has read it, so a
 * signal whose handler lacks SA_RESTART fails it with EINTR — from calls that
 * never fail so natively (docs/seccomp.md, "Signals and EINTR"). bench/c/eintr.c
 * makes N getppid calls under a 100 µs timer, three ways in each round:
 * unwatched (the control: never EINTR), under the C floor supervisor
 * (bench/c/floor_supervisor.c, the fastest we can write) and under idwrap
 * with a policy that observes getppid. The kernel module has no such window:
 * tests/sources/kmod/vm_test.ts counts that side in its VM.
 *
 * Options: --rounds R (default 3), --calls N (default 20000).
 * Prints a table; keeps the raw counts and the run's provenance in
 * bench/results/eintr.json (`--save-run`: also docs/runs/eintr-DATE.json).
 *
 * @module
 */
import { scratchFile } from "../tests/temp.ts";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Policy } from "../host/policy/policy.ts";
import { runUnderSeccomp } from "../host/sources/seccomp/source.ts";
import { compileBenchC, keepResults, median, runInfo, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUILD = `${ROOT}build/bench`;
const EINTR = `${BUILD}/eintr`;
const POLICY: Policy = { name: "bench-eintr", file: "(bench)", observe: ["getppid"], rules: [], wrappers: [] };

/** One run of bench/c/eintr.c. */
interface Count {
  calls: number;
  eintr: number;
  signals: number;
}

type CaseId = "bare" | "floor" | "idwrap";

function parse(text: string, what: string): Count {
  const m = text.match(/calls (\d+) eintr (\d+) signals (\d+)/);
  if (!m) throw new Error(`${what}: unexpected output ${JSON.stringify(text)}`);
  return { calls: Number(m[1]), eintr: Number(m[2]), signals: Number(m[3]) };
}

async function direct(program: string, args: string[]): Promise<Count> {
  const out = await new Deno.Command(program, { args, stdin: "null" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${program} failed (exit ${out.code}): ${dec.decode(out.stderr).trim()}`);
  return parse(dec.decode(out.stdout), program);
}

async function underIdwrap(calls: number): Promise<Count> {
  const file = await scratchFile({ prefix: "idwrap-eintr-" });
  try {
    const r = await runUnderSeccomp([EINTR, String(calls), "notified", file], { policies: [POLICY] });
    if (r.exitCode !== 0) throw new Error(`eintr under idwrap exited ${r.exitCode}`);
    return parse(await Deno.readTextFile(file), "eintr under idwrap");
  } finally {
    await Deno.remove(file);
  }
}

const CASES: { id: CaseId; label: string; run: (calls: number) => Promise<Count> }[] = [
  { id: "bare", label: "unwatched (control)", run: (n) => direct(EINTR, [String(n), "notified"]) },
  {
    id: "floor",
    label: "notified, C floor supervisor",
    run: (n) => direct(`${BUILD}/floor_supervisor`, [EINTR, String(n)]),
  },
  { id: "idwrap", label: "notified, idwrap (seccomp)", run: underIdwrap },
];

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string" }, calls: { type: "string" }, "save-run": { type: "boolean" } },
  });
  const rounds = Number(values.rounds ?? 3), calls = Number(values.calls ?? 20000);
  await compileBenchC(ROOT, BUILD, ["eintr", "floor_supervisor"]);
  const info = await runInfo(ROOT);
  const samples: ({ round: number; case: CaseId } & Count)[] = [];
  for (let round = 0; round < rounds; round++) {
    // Rotated order: drift over the run spreads over every case.
    for (let i = 0; i < CASES.length; i++) {
      const c = CASES[(round + i) % CASES.length];
      samples.push({ round, case: c.id, ...await c.run(calls) });
    }
  }
  const rows = CASES.map((c) => {
    const mine = samples.filter((s) => s.case === c.id);
    const eintr = median(mine.map((s) => s.eintr)), signals = median(mine.map((s) => s.signals));
    return [c.label, String(calls), String(signals), String(eintr), (eintr / Math.max(1, signals)).toFixed(3)];
  });
  console.log(
    `EINTR window: ${calls} getppid calls under a 100 µs timer without SA_RESTART, median of ${rounds} rounds`,
  );
  console.log(`(${info.date}, commit ${info.commit}, Linux ${info.kernel}, ${info.cpus} CPUs)\n`);
  console.log(table([["case", "calls", "signals", "EINTR", "EINTR per signal"], ...rows]));
  const bare = samples.filter((s) => s.case === "bare");
  if (bare.some((s) => s.eintr !== 0)) console.log("\nUNEXPECTED: the unwatched control got EINTR");
  await keepResults(ROOT, "eintr", { rounds, calls, samples });
}
