/**
 * What deciding on the real object costs (issue 13): per-call time of path
 * calls under a path rule, with this tree's supervisor (paths resolved in the
 * caller's world, the call run on the checked object) against a baseline
 * tree's (the string decided on; opens emulated on the string, other calls
 * let through), in the same run, rounds alternating. Unwrapped times give
 * the scale. Timing is inside bench/c/path_calls.c, around the loop only.
 *
 * Options: --rounds R (3), --calls N (2000), --baseline DIR (an idwrap tree
 * to compare with; default: the commit given by --base, default
 * `git merge-base HEAD main`, exported to a temp dir, its launcher built),
 * --scoped (no path rule: a wrapper scoped to a program that never runs, so
 * opens are notified but nothing examines them; the tamper guard's cost),
 * --name NAME (the results file's name: default paths, or paths-scoped).
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUILD = join(ROOT, "build", "bench");
const PROG = join(BUILD, "path_calls");
const CASES = ["open", "open-link", "stat", "chmod", "rename"] as const;
const decoder = new TextDecoder();

async function sh(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** A baseline tree to run: exported from git, with the shared node_modules and its launcher built. */
async function baselineTree(rev: string): Promise<string> {
  const dir = await scratchDir({ prefix: "idwrap-baseline-" });
  await sh("sh", ["-c", `git -C "${ROOT}" archive "${rev}" | tar -x -C "${dir}"`]);
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  await Deno.mkdir(join(dir, "build"), { recursive: true });
  await sh(Deno.env.get("CC") ?? "cc", [
    "-O2",
    "-Wall",
    "-o",
    join(dir, "build", "idwrap-launch"),
    join(dir, "kmod", "seccomp", "launch.c"),
    "-lpthread",
  ]);
  return dir;
}

/** Runs the loop (wrapped by `tree`'s idwrap, or bare); the loop's ns per call. */
async function perCall(
  tree: string | undefined,
  policy: string,
  call: string,
  n: number,
  dir: string,
): Promise<number> {
  const args = [call, String(n), dir];
  const out = tree ? await sh(join(tree, "idwrap"), ["run", "-p", policy, "--", PROG, ...args]) : await sh(PROG, args);
  const ns = Number(out.trim().split("\n").at(-1));
  if (!Number.isFinite(ns)) throw new Error(`${call}: no timing in ${JSON.stringify(out.slice(-200))}`);
  return ns / n;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      calls: { type: "string" },
      baseline: { type: "string" },
      base: { type: "string" },
      "save-run": { type: "boolean" },
      scoped: { type: "boolean" },
      name: { type: "string" },
    },
  });
  const rounds = Number(values.rounds ?? 3), n = Number(values.calls ?? 2000);
  await Deno.mkdir(BUILD, { recursive: true });
  await sh(Deno.env.get("CC") ?? "cc", [
    "-O2",
    "-Wall",
    "-Wextra",
    "-o",
    PROG,
    join(ROOT, "bench", "c", "path_calls.c"),
  ]);
  const rev = values.base ?? (await sh("git", ["-C", ROOT, "merge-base", "HEAD", "main"])).trim();
  const baseline = values.baseline ?? await baselineTree(rev);
  const work = await scratchDir({ prefix: "idwrap-paths-bench-" });
  await Deno.writeTextFile(join(work, "f"), "f\n");
  await Deno.symlink("f", join(work, "l"));
  const policy = join(work, "policy.yaml");
  const cases = values.scoped ? CASES.filter((c) => c.startsWith("open")) : CASES;
  await Deno.writeTextFile(
    policy,
    values.scoped
      // Opens wait (the wrapper could activate at any exec), nothing examines them: before F4 the WSS's hot path.
      ? `wrappers:\n  - name: httpd\n    settings: { docroot: [/var/www], ports: [80], upstreams: [], response: deny }\n` +
        `    activate: { program: nginx }\n`
      : `rules:\n  - id: protect\n    syscalls: [open, openat, newfstatat, stat, chmod, fchmodat, rename, renameat, renameat2]\n` +
        `    path: /nonexistent/protected\n    action: deny\n`,
  );

  type Who = "bare" | "baseline" | "this tree";
  const samples: { round: number; case: string; who: Who; perCallNs: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const c of cases) {
      const order: Who[] = round % 2 ? ["this tree", "baseline", "bare"] : ["baseline", "this tree", "bare"];
      for (const who of order) {
        const tree = who === "bare" ? undefined : who === "baseline" ? baseline : ROOT;
        samples.push({ round, case: c, who, perCallNs: await perCall(tree, policy, c, n, work) });
      }
    }
    console.error(`round ${round + 1}/${rounds} done`);
  }
  const med = (c: string, who: Who) =>
    median(samples.filter((s) => s.case === c && s.who === who).map((s) => s.perCallNs));
  const rows = [[
    values.scoped ? "call (notified, nothing examines it)" : "call (path rule examines it)",
    "unwrapped µs",
    "baseline µs",
    "this tree µs",
    "this / baseline",
  ]];
  const ratios: Record<string, number> = {};
  for (const c of cases) {
    const [bare, base, now] = [med(c, "bare"), med(c, "baseline"), med(c, "this tree")];
    ratios[c] = now / base;
    rows.push([
      c,
      (bare / 1000).toFixed(2),
      (base / 1000).toFixed(2),
      (now / 1000).toFixed(2),
      `${ratios[c].toFixed(2)}×`,
    ]);
  }
  console.log(
    `path calls: kernel ${Deno.osRelease()}, ${rounds} rounds × ${n} calls, baseline ${values.baseline ?? rev}\n`,
  );
  console.log(table(rows));
  await keepResults(ROOT, values.name ?? (values.scoped ? "paths-scoped" : "paths"), {
    baseline: values.baseline ?? rev,
    rounds,
    calls: n,
    ratios,
    samples,
  });
}
