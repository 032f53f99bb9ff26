/**
 * What every benchmark here prints and keeps: medians, a plain-text table.
 *
 * @module
 */

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Rows of cells as an aligned table: the first row is the header, the first column left-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ").trimEnd();
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.slice(1).map(line)].join("\n");
}

/** Where a benchmark's numbers come from: kept beside them in its JSON, quoted beside them in the docs. */
export interface RunInfo {
  date: string;
  commit: string;
  kernel: string;
  cpus: number;
  memoryGiB: number;
}

/** The run's date, the checkout's commit (with "+dirty" when it has changes), the kernel and the machine's size. */
export async function runInfo(root: string): Promise<RunInfo> {
  const git = async (...args: string[]) =>
    new TextDecoder().decode((await new Deno.Command("git", { args, cwd: root }).output()).stdout).trim();
  const dirty = (await git("status", "--porcelain", "--untracked-files=no")) !== "";
  return {
    date: new Date().toISOString(),
    commit: (await git("rev-parse", "--short", "HEAD")) + (dirty ? "+dirty" : ""),
    kernel: Deno.osRelease(),
    cpus: navigator.hardwareConcurrency,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
  };
}

/** Compiles bench/c/NAME.c into `outDir` for each name (-O2, warnings on). */
export async function compileBenchC(root: string, outDir: string, names: string[]): Promise<void> {
  await Deno.mkdir(outDir, { recursive: true });
  for (const name of names) {
    const out = await new Deno.Command(Deno.env.get("CC") ?? "cc", {
      args: ["-O2", "-Wall", "-Wextra", "-o", `${outDir}/${name}`, `${root}/bench/c/${name}.c`],
    }).output();
    if (!out.success) throw new Error(`Cannot compile bench/c/${name}.c:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Keeps a benchmark's raw numbers with the run they came from: `bench/results/NAME.json` (git-ignored, the latest
 * run) and, with `--save-run` on the command line, `docs/runs/NAME-YYYY-MM-DD.json` (committed, the run the docs
 * quote: a figure in docs/ names the file it came from). Returns the paths written.
 */
export async function keepResults(root: string, name: string, data: Record<string, unknown>): Promise<string[]> {
  const run = await runInfo(root);
  const text = JSON.stringify({ run, deno: Deno.version, ...data }, null, 2) + "\n";
  const paths = [`${root.replace(/\/$/, "")}/bench/results/${name}.json`];
  if (Deno.args.includes("--save-run")) {
    paths.push(`${root.replace(/\/$/, "")}/docs/runs/${name}-${run.date.slice(0, 10)}.json`);
  }
  for (const path of paths) {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  console.log(`\n(${run.date}, commit ${run.commit}, Linux ${run.kernel}, ${run.cpus} CPUs)`);
  console.log(`raw numbers: ${paths.join(", ")}`);
  return paths;
}
