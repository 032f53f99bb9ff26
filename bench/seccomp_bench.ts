/**
 * The seccomp micro-benchmark (`deno task bench`): what one system call costs
 * under idwrap, against a minimal C supervisor (the floor) for notified calls
 * and against no filter at all for calls the filter lets through.
 *
 * Every round runs every case once, in a rotated order so drift over the run
 * (thermal, other load) spreads over all cases; medians across rounds are
 * compared. Timing happens inside bench/c/loop.c, around the call loop only,
 * so process start-up and the idwrap handshake are not counted.
 *
 * Options: --rounds R, --notified N (calls per notified run), --plain N.
 *
 * @module
 */
import { scratchFile } from "../tests/temp.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Policy } from "../host/policy/policy.ts";
import { runUnderSeccomp } from "../host/sources/seccomp/source.ts";
import { compileBenchC, keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUILD = join(ROOT, "build", "bench");
const LOOP = join(BUILD, "loop");
const FLOOR = join(BUILD, "floor_supervisor");

/** getppid is observed, so notified; getuid (loop.c's plain mode) is not. */
const POLICY: Policy = { name: "bench", file: "(bench)", observe: ["getppid"], rules: [], wrappers: [] };

type CaseId = "floor" | "floorNoSync" | "idwrap" | "plainFiltered" | "plain";

interface Case {
  id: CaseId;
  label: string;
  mode: "notified" | "plain";
  /** Runs `calls` calls; returns the loop's elapsed ns. */
  run(calls: number): Promise<number>;
}

/** One measurement, kept raw in the JSON. */
interface Sample {
  round: number;
  case: CaseId;
  calls: number;
  elapsedNs: number;
  perCallNs: number;
}

const decoder = new TextDecoder();
/** What the setups reported about SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP. */
const syncWakeUp: { floor?: boolean; idwrap?: boolean } = {};

function compile(): Promise<void> {
  return compileBenchC(ROOT, BUILD, ["loop", "floor_supervisor"]);
}

/** Runs a program to completion; its stdout must be one number (loop.c's). */
async function elapsedFrom(program: string, args: string[]): Promise<{ ns: number; stderr: string }> {
  const out = await new Deno.Command(program, { args, stdin: "null" }).output();
  const stderr = decoder.decode(out.stderr);
  const ns = Number(decoder.decode(out.stdout).trim());
  if (!out.success || !Number.isFinite(ns)) {
    throw new Error(`${program} ${args.join(" ")} failed (exit ${out.code}): ${stderr.trim()}`);
  }
  return { ns, stderr };
}

async function floor(calls: number, sync: boolean): Promise<number> {
  const { ns, stderr } = await elapsedFrom(FLOOR, [...(sync ? [] : ["--no-sync"]), LOOP, String(calls)]);
  if (sync) syncWakeUp.floor = /sync_wake_up 1/.test(stderr);
  return ns;
}

/** runUnderSeccomp inherits stdio, so loop.c writes its number to a file. */
async function underIdwrap(calls: number, mode: "notified" | "plain"): Promise<number> {
  const outFile = await scratchFile({ prefix: "idwrap-bench-" });
  try {
    // No trace option: the supervisor takes its no-op path (allow, no event).
    const result = await runUnderSeccomp([LOOP, String(calls), mode, outFile], { policies: [POLICY] });
    if (result.exitCode !== 0) throw new Error(`loop ${calls} ${mode} under idwrap exited ${result.exitCode}`);
    if (mode === "notified") {
      syncWakeUp.idwrap = result.summary.syncWakeUp;
      // Guards against a filter that silently stopped notifying getppid.
      if (result.summary.notifications < calls) {
        throw new Error(`idwrap saw ${result.summary.notifications} notifications for ${calls} calls`);
      }
    }
    return Number((await Deno.readTextFile(outFile)).trim());
  } finally {
    await Deno.remove(outFile).catch(() => {});
  }
}

const CASES: Case[] = [
  { id: "floor", label: "notified, C floor supervisor", mode: "notified", run: (n) => floor(n, true) },
  {
    id: "floorNoSync",
    label: "notified, C floor, no SYNC_WAKE_UP",
    mode: "notified",
    run: (n) => floor(n, false),
  },
  { id: "idwrap", label: "notified, idwrap", mode: "notified", run: (n) => underIdwrap(n, "notified") },
  {
    id: "plain",
    label: "plain, no filter",
    mode: "plain",
    run: async (n) => (await elapsedFrom(LOOP, [String(n), "plain"])).ns,
  },
  { id: "plainFiltered", label: "plain, idwrap filter", mode: "plain", run: (n) => underIdwrap(n, "plain") },
];

/** The ratios the benchmark exists for: numerator case -> [denominator case, target]. */
const RATIOS: Partial<Record<CaseId, [CaseId, number]>> = {
  idwrap: ["floor", 1.25],
  plainFiltered: ["plain", 1.05],
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      notified: { type: "string" },
      plain: { type: "string" },
      "save-run": { type: "boolean" },
    },
  });
  const rounds = Number(values.rounds ?? 7);
  const calls = { notified: Number(values.notified ?? 200_000), plain: Number(values.plain ?? 5_000_000) };

  await compile();
  const samples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = CASES.map((_, i) => CASES[(i + round) % CASES.length]);
    for (const c of order) {
      const n = calls[c.mode];
      const elapsedNs = await c.run(n);
      samples.push({ round, case: c.id, calls: n, elapsedNs, perCallNs: elapsedNs / n });
    }
    console.error(`round ${round + 1}/${rounds} done`);
  }

  const stats = new Map(CASES.map((c) => {
    const per = samples.filter((s) => s.case === c.id).map((s) => s.perCallNs);
    return [c.id, { median: median(per), min: Math.min(...per), max: Math.max(...per) }];
  }));
  const ratios: Record<string, { ratio: number; target: number; ok: boolean }> = {};
  const rows = [["case", "per call (ns) median", "min", "max", "ratio", "target"]];
  for (const c of CASES) {
    const s = stats.get(c.id)!;
    const ratio = RATIOS[c.id];
    let ratioCell = "", targetCell = "";
    if (ratio) {
      const value = s.median / stats.get(ratio[0])!.median;
      ratios[c.id] = { ratio: value, target: ratio[1], ok: value <= ratio[1] };
      ratioCell = `${value.toFixed(3)} vs ${ratio[0]}`;
      targetCell = `<= ${ratio[1].toFixed(2)} ${value <= ratio[1] ? "ok" : "MISSED"}`;
    }
    rows.push([c.label, s.median.toFixed(1), s.min.toFixed(1), s.max.toFixed(1), ratioCell, targetCell]);
  }

  const kernel = Deno.osRelease();
  console.log(
    `seccomp micro-benchmark: kernel ${kernel}, ${rounds} rounds, ` +
      `${calls.notified} notified / ${calls.plain} plain calls per run`,
  );
  console.log(`SYNC_WAKE_UP accepted: C floor ${syncWakeUp.floor}, idwrap ${syncWakeUp.idwrap}\n`);
  console.log(table(rows));

  await keepResults(ROOT, "seccomp", {
    syncWakeUp,
    config: { rounds, notifiedCalls: calls.notified, plainCalls: calls.plain },
    cases: Object.fromEntries(CASES.map((c) => [c.id, { label: c.label, ...stats.get(c.id)! }])),
    ratios,
    samples,
  });
}

if (import.meta.main) await main();
