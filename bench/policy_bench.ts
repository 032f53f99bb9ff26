/**
 * What a policy costs a whole program on the seccomp source (docs/rules.md, "Why not in the default"): wall time and
 * notified calls of a file-heavy `tar` and of `/bin/true`, bare, under the default policy, and under the default policy
 * plus `seq-trained.yaml` (seq loaded, no database for these programs: the notifications alone).
 *
 *   deno task build && deno run --allow-all bench/policy_bench.ts [--rounds 5] [--tree /usr/share/doc] [--save-run]
 *
 * Every round runs every case once, in a rotated order, so drift over the run spreads over all of them; each wrapped
 * run has a fresh store. Wall time includes idwrap's own start.
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const IDWRAP = `${ROOT}idwrap`;

interface Case {
  id: string;
  label: string;
  policies: string[] | null; // null: bare
  command: (work: string, tree: string) => string[];
}

const tar = (work: string, tree: string) => ["tar", "cf", `${work}/out.tar`, tree];
const truth = () => ["/bin/true"];
const DEFAULT = [`${ROOT}policies/default.yaml`];
const SEQ = [...DEFAULT, `${ROOT}policies/seq-trained.yaml`];
const CASES: Case[] = [
  { id: "tar-bare", label: "`tar`, bare", policies: null, command: tar },
  { id: "tar-default", label: "`tar`, default policy", policies: DEFAULT, command: tar },
  { id: "tar-seq", label: "`tar`, default + `seq-trained.yaml`", policies: SEQ, command: tar },
  { id: "true-default", label: "`/bin/true`, default policy", policies: DEFAULT, command: truth },
  { id: "true-seq", label: "`/bin/true`, default + `seq-trained.yaml`", policies: SEQ, command: truth },
];

interface Sample {
  round: number;
  case: string;
  seconds: number;
  notified: number | null;
}

/**
 * One timed run of `command` in `work`: bare (`idwrapArgs` null) or under `idwrap <idwrapArgs> -- command`, with a
 * private store; its wall time and, under idwrap, the calls notified (the summary line on stderr).
 */
export async function timedRun(
  work: string,
  command: string[],
  idwrapArgs: string[] | null,
  label: string,
): Promise<{ seconds: number; notified: number | null }> {
  const store = await scratchDir({ dir: work, prefix: "store-" });
  const args = idwrapArgs === null ? command.slice(1) : [...idwrapArgs, "-o", "/dev/null", "--", ...command];
  const start = performance.now();
  const out = await new Deno.Command(idwrapArgs === null ? command[0] : IDWRAP, {
    args,
    env: { IDWRAP_STORE: `${store}/store.kv` },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - start) / 1000;
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${label} failed (exit ${out.code}): ${stderr}`);
  await Deno.remove(store, { recursive: true });
  // With -o the report goes to the file; the summary line still reaches stderr.
  const notified = /(\d+) calls notified/.exec(stderr)?.[1];
  return { seconds, notified: notified === undefined ? null : Number(notified) };
}

async function runCase(c: Case, work: string, tree: string, round: number): Promise<Sample> {
  const idwrapArgs = c.policies === null ? null : ["run", ...c.policies.flatMap((p) => ["--policy", p])];
  return { round, case: c.id, ...await timedRun(work, c.command(work, tree), idwrapArgs, c.label) };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string" }, tree: { type: "string" }, "save-run": { type: "boolean" } },
  });
  const rounds = Number(values.rounds ?? 5), tree = values.tree ?? "/usr/share/doc";
  const work = await scratchDir({ prefix: "idwrap-policy-bench-" });
  const samples: Sample[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < CASES.length; i++) {
        samples.push(await runCase(CASES[(round + i) % CASES.length], work, tree, round));
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  const rows = CASES.map((c) => {
    const mine = samples.filter((s) => s.case === c.id);
    const secs = mine.map((s) => s.seconds);
    const notified = mine.map((s) => s.notified).filter((n): n is number => n !== null);
    return [
      c.label,
      `${median(secs).toFixed(2)} (${Math.min(...secs).toFixed(2)}–${Math.max(...secs).toFixed(2)})`,
      notified.length ? String(median(notified)) : "—",
    ];
  });
  console.log(`policy cost on the seccomp source: tar cf of ${tree}, medians of ${rounds} rounds\n`);
  console.log(
    table([["command (wall time includes idwrap's own start)", "median (min–max), s", "notified calls"], ...rows]),
  );
  await keepResults(ROOT, "policy", { rounds, tree, loadavg: Deno.loadavg(), samples });
}
