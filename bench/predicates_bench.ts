/**
 * What the filter's argument predicates save (issue 15; docs/seccomp.md, "Argument predicates"): an open-heavy `tar`
 * and a read loop under a policy whose only open rule denies write-opens of /etc/ld.so.preload — notified only for
 * write-opens (`narrowed`) — against the same policy with every open notified (`all`: a path-only alert rule on the
 * opens that matches no file, which is what a flags rule cost before the predicates), and bare; ratios to bare from
 * the same run.
 *
 *   deno task build && deno run --allow-all bench/predicates_bench.ts [--rounds 3] [--tree /usr/share/doc] [--save-run]
 *
 * Every round runs every case once, in a rotated order. Wall time includes idwrap's own start (the `/bin/true` rows).
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { keepResults, median, table } from "./_report.ts";
import { timedRun } from "./policy_bench.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ARG_CALLS = `${ROOT}build/tests/arg_calls`;
const LOOP = 20_000;

const DENY = `version: 1
name: preload-write
rules:
  - id: preload-write
    syscalls: [open, openat, openat2, creat]
    path: /etc/ld.so.preload
    flags: write
    action: deny
`;
const ALL = `${DENY}  - id: every-open
    syscalls: [open, openat, openat2, creat]
    path: /nonexistent/idwrap-bench
    action: alert
`;

type Mode = "bare" | "narrowed" | "all";
interface Case {
  id: string;
  label: string;
  mode: Mode;
  command: (work: string, tree: string) => string[];
}

const tar = (work: string, tree: string) => ["tar", "cf", `${work}/out.tar`, tree];
const loop = () => [ARG_CALLS, "read", "/etc/hostname", String(LOOP)];
const truth = () => ["/bin/true"];
const CASES: Case[] = [];
for (const [name, command] of [["tar", tar], ["read loop", loop], ["/bin/true", truth]] as const) {
  for (const mode of ["bare", "narrowed", "all"] as const) {
    CASES.push({ id: `${name}-${mode}`, label: `\`${name}\`, ${mode}`, mode, command });
  }
}

interface Sample {
  round: number;
  case: string;
  seconds: number;
  notified: number | null;
}

async function runCase(c: Case, work: string, tree: string, round: number, policies: Record<Mode, string>) {
  const idwrapArgs = c.mode === "bare" ? null : ["run", "--source", "seccomp", "-p", policies[c.mode]];
  return { round, case: c.id, ...await timedRun(work, c.command(work, tree), idwrapArgs, c.label) };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { rounds: { type: "string" }, tree: { type: "string" }, "save-run": { type: "boolean" } },
  });
  const rounds = Number(values.rounds ?? 3), tree = values.tree ?? "/usr/share/doc";
  const work = await scratchDir({ prefix: "idwrap-predicates-bench-" });
  const policies = { bare: "", narrowed: `${work}/narrowed.yaml`, all: `${work}/all.yaml` };
  await Deno.writeTextFile(policies.narrowed, DENY);
  await Deno.writeTextFile(policies.all, ALL);
  const samples: Sample[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < CASES.length; i++) {
        samples.push(await runCase(CASES[(round + i) % CASES.length], work, tree, round, policies));
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  const med = (id: string) => median(samples.filter((s) => s.case === id).map((s) => s.seconds));
  const rows = CASES.map((c) => {
    const mine = samples.filter((s) => s.case === c.id);
    const secs = mine.map((s) => s.seconds);
    const notified = mine.map((s) => s.notified).filter((n): n is number => n !== null);
    const bare = med(`${c.id.slice(0, c.id.lastIndexOf("-"))}-bare`);
    // The command's own time: less idwrap's start, /bin/true's time in the same mode.
    const own = median(secs) - med(`/bin/true-${c.mode}`) + med("/bin/true-bare");
    return [
      c.label,
      `${median(secs).toFixed(3)} (${Math.min(...secs).toFixed(3)}–${Math.max(...secs).toFixed(3)})`,
      `${(median(secs) / bare).toFixed(2)}×`,
      `${own.toFixed(3)} (${(own / bare).toFixed(2)}×)`,
      notified.length ? String(median(notified)) : "—",
    ];
  });
  // What a notified open costs: the read loop's difference between every open notified and none, per open.
  const perOpen = (med("read loop-all") - med("read loop-narrowed")) / LOOP * 1e6;
  console.log(
    `write-deny on opens, seccomp: tar cf of ${tree}, ${LOOP} read-only opens; medians of ${rounds} rounds\n`,
  );
  console.log(
    table([
      ["command", "median (min–max), s", "vs bare", "less idwrap's start, s (vs bare)", "notified calls"],
      ...rows,
    ]),
  );
  console.log(`\na notified read-only open costs ${perOpen.toFixed(1)} µs more than one the filter lets through`);
  await keepResults(ROOT, "predicates", {
    rounds,
    tree,
    loop: LOOP,
    loadavg: Deno.loadavg(),
    perOpenUs: perOpen,
    samples,
  });
}
