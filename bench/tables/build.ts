/**
 * The build workload (the paper's Kernel Build): Debian's linux-source-6.1,
 * configured with `make tinyconfig` (x86_64) once, then `make -j2 TARGET`
 * timed from the same prepared output directory (a fresh copy per run) under
 * each configuration. The tarball is unpacked once into a cache directory
 * ($IDWRAP_BENCH_CACHE, else $XDG_CACHE_HOME/idwrap-bench, else
 * ~/.cache/idwrap-bench) and reused; builds write only under the work
 * directory (O=…), tmpfs when there is one.
 *
 * @module
 */
import { scratchDir } from "../../tests/temp.ts";
import { join } from "node:path";
import { type Config, withCompared, withSources, type WorkloadOptions, wrapCommand } from "./configs.ts";
import { readReport } from "./idwrap_report.ts";
import { log } from "./log.ts";
import { DEFAULT_POLICY, IDWRAP } from "./paths.ts";
import { runCommand } from "./processes.ts";
import { type RoundsResult, runRounds, type TrainingRun, trainSeqPerSource } from "./rounds.ts";

export interface BuildOptions extends WorkloadOptions {
  target: string;
  /** Policies (paths) written by the caller. */
  policies: { empty: string; seq: string; seqRecord: string };
  /** A bare build before everything (page cache, time limit). */
  warmup: boolean;
}

export interface BuildResult extends RoundsResult {
  configs: Config[];
  source: string;
  target: string;
  startupMs: number[];
  training: { runs: TrainingRun[]; error?: string };
  /** The same per extra source (--sources), each in its own store. */
  trainingBySource: Record<string, { runs: TrainingRun[]; error?: string }>;
}

function cacheDir(): string {
  const explicit = Deno.env.get("IDWRAP_BENCH_CACHE");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  return join(xdg || join(Deno.env.get("HOME") ?? "/tmp", ".cache"), "idwrap-bench");
}

/** The newest /usr/src/linux-source-*.tar.xz. */
function tarball(): string | undefined {
  let best: string | undefined;
  try {
    for (const e of Deno.readDirSync("/usr/src")) {
      if (/^linux-source-[\d.]+\.tar\.xz$/.test(e.name) && (!best || e.name > best)) best = e.name;
    }
  } catch { /* no /usr/src */ }
  return best ? join("/usr/src", best) : undefined;
}

/** Unpacks the kernel source once (checked by a stamp of the tarball's size and mtime); returns its directory. */
async function kernelSource(): Promise<string> {
  const tar = tarball();
  if (!tar) throw new Error("no /usr/src/linux-source-*.tar.xz (Debian package linux-source-6.1)");
  const info = Deno.statSync(tar);
  const stampText = `${tar} ${info.size} ${info.mtime?.getTime()}\n`;
  const name = tar.split("/").pop()!.replace(/\.tar\.xz$/, "");
  const cache = cacheDir();
  const src = join(cache, name);
  const stamp = join(cache, `${name}.stamp`);
  let ok = false;
  try {
    ok = Deno.readTextFileSync(stamp) === stampText && Deno.statSync(join(src, "Makefile")).isFile;
  } catch { /* not there */ }
  if (!ok) {
    log(`build: unpacking ${tar} into ${cache} (once; about 1.5 GB)`);
    await Deno.mkdir(cache, { recursive: true });
    const tmp = await scratchDir({ dir: cache, prefix: "unpack-" });
    try {
      const r = await runCommand(["tar", "-xJf", tar, "-C", tmp], { timeoutMs: 600000 });
      if (r.code !== 0) throw new Error(`tar failed: ${r.stderr}`);
      await Deno.remove(src, { recursive: true }).catch(() => {});
      await Deno.rename(join(tmp, name), src);
      await Deno.writeTextFile(stamp, stampText);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }
  // An out-of-tree build (O=) needs a clean source tree.
  try {
    Deno.statSync(join(src, ".config"));
    log("build: the cached source tree has an in-tree configuration; make mrproper");
    await runCommand(["make", "-s", "-C", src, "mrproper"], { timeoutMs: 300000 });
  } catch { /* clean */ }
  return src;
}

const MAKE = "/usr/bin/make";

/**
 * The prepared output directory (tinyconfig + prepare), made once per source and
 * kept in the cache next to it; each run copies it.
 */
async function preparedBase(src: string, env: Record<string, string>): Promise<string> {
  const base = `${src}-x86_64-tinyconfig`;
  const stamp = `${base}.stamp`;
  const srcStamp = `${src}.stamp`;
  const want = Deno.readTextFileSync(srcStamp);
  try {
    if (Deno.readTextFileSync(stamp) === want && Deno.statSync(join(base, ".config")).isFile) return base;
  } catch { /* not there */ }
  log("build: make tinyconfig + prepare (once per source, kept in the cache; not timed)");
  await Deno.remove(base, { recursive: true }).catch(() => {});
  for (const step of [["tinyconfig"], ["-j2", "prepare"]]) {
    const r = await runCommand([MAKE, "-s", "-C", src, `O=${base}`, "ARCH=x86_64", ...step], {
      timeoutMs: 900000,
      env,
    });
    if (r.code !== 0) throw new Error(`make ${step.join(" ")} failed:\n${r.stderr.slice(-2000)}`);
  }
  await Deno.writeTextFile(stamp, want);
  return base;
}

/** The lines of a failed build's stderr that say what failed (errors first), at most `n`. */
export function failureLines(stderr: string, n = 4): string {
  // idwrap's start-up warnings (docs/seccomp.md's EINTR hazards) say what may fail, not what did.
  const lines = stderr.split("\n").filter((l) => l.trim() && !l.startsWith("idwrap: warning:"));
  const telling = lines.filter((l) =>
    /error|Bad address|Cannot fork|Interrupted|not found|No such|denied|Killed|idwrap:/i.test(l) &&
    !/^make(\[\d+\])?: \*\*\* /.test(l)
  );
  return (telling.length ? telling : lines.slice(-n)).slice(0, n).join("\n");
}

export async function buildWorkload(o: BuildOptions): Promise<BuildResult> {
  const src = await kernelSource();
  const base = await preparedBase(src, o.env);
  const makeArgs = (out: string) => [MAKE, "-s", "-C", src, `O=${out}`, "ARCH=x86_64"];

  const configs: Config[] = withSources(
    withCompared([
      { id: "bare", label: "bare", kind: "bare", paperRow: "no WSS" },
      {
        id: "wss",
        label: "WSS only (idwrap, no wrapper)",
        kind: "idwrap",
        policies: [o.policies.empty],
        paperRow: "WSS only",
      },
      // Issue 8: what `idwrap run` applies with no --policy (baseline wrapper).
      { id: "default", label: "default policy", kind: "idwrap", policies: [DEFAULT_POLICY] },
      { id: "seq", label: "seq (detect)", kind: "idwrap", policies: [o.policies.seq], paperRow: "Seq_id" },
      { id: "seqRecord", label: "seq (record)", kind: "idwrap", policies: [o.policies.seqRecord], record: true },
      { id: "strace", label: "strace -f", kind: "strace" },
      { id: "audit", label: "auditd (all calls of the tree)", kind: "audit" },
    ], o.compare),
    o.sources,
    o.env.IDWRAP_STORE,
  );

  let runNo = 0;
  let timeoutMs = 30 * 60 * 1000;
  /** One timed build from a fresh copy of the prepared tree. */
  const buildOnce = async (c: Config) => {
    // The same path every run: programs built in the tree (fixdep, objtool) are named by it, and seq's databases are
    // per executable path (under build-run-N every run's fixdep was a new, untrained program: ~34,000 mismatches).
    const out = join(o.work, "build-tree");
    const report = join(o.work, `build-report-${++runNo}.txt`);
    await Deno.remove(out, { recursive: true }).catch(() => {});
    const cp = await runCommand(["cp", "-a", base, out]);
    if (cp.code !== 0) throw new Error(`cp failed: ${cp.stderr}`);
    let removeRule: (() => Promise<void>) | undefined;
    try {
      if (c.kind === "audit") removeRule = await o.audit!.addRule();
      const auditBefore = c.kind === "audit" ? o.audit!.logBytes(o.auditDir) : 0;
      const cmd = wrapCommand(c, [...makeArgs(out), "-j2", o.target], report, o.idwrapArgs);
      const r = await runCommand(cmd, { env: o.env, timeoutMs });
      await removeRule?.();
      removeRule = undefined;
      if (r.timedOut) throw new Error(`timed out after ${timeoutMs / 1000} s`);
      if (r.code !== 0) {
        throw new Error(`exited ${r.code}: ${failureLines(r.stderr)}`);
      }
      const rep = c.kind === "idwrap" ? await readReport(report, r.stderr) : undefined;
      const notes: Record<string, number | string> = {};
      if (c.kind === "audit") {
        // The log rotates at 64 MB: a smaller sum means it rotated, and the growth is unknown.
        const grown = o.audit!.logBytes(o.auditDir) - auditBefore;
        if (grown >= 0) notes.auditLogBytes = grown;
      }
      return { metrics: { timeS: r.wallMs / 1000 }, report: rep, notes };
    } finally {
      await removeRule?.();
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await Deno.remove(report).catch(() => {});
    }
  };

  // One bare build first: the page cache warm, the time limit for the others (10 x bare, at least 1 min:
  // a build hung by the EINTR window, docs/seccomp.md, costs ten builds, not more).
  if (o.warmup) {
    log(`build: warm-up build of ${o.target} (bare, not counted)`);
    const warm = await buildOnce(configs[0]);
    timeoutMs = Math.max(60000, warm.metrics.timeS * 1000 * 10);
    log(`build: warm-up took ${warm.metrics.timeS.toFixed(1)} s`);
  }

  // seq needs a normal database: record runs of the same build, then a detect run to check (bounded), per source.
  const { training, bySource: trainingBySource, unavailable } = await trainSeqPerSource("build", buildOnce, {
    record: configs.find((c) => c.id === "seqRecord")!,
    configs,
    sources: o.sources,
    storeBase: o.env.IDWRAP_STORE,
    seqRows: ["seq", "seqRecord"],
    failure: "the build fails under seq",
    rounds: o.trainingRounds,
    deadline: o.deadline,
    retries: 0,
  });
  if (!o.audit) unavailable.audit = `unavailable: ${o.auditUnavailable ?? "no audit"}`;
  const active = configs.filter((c) => !unavailable[c.id]);

  const startupMs: number[] = [];
  const rounds = await runRounds("build", active, o.rounds, async (c, round) => {
    if (c.id === "bare" && startupMs.length <= round) {
      // idwrap's fixed cost (Deno start, policy load, handshake, exit), once per round.
      const r = await runCommand([
        IDWRAP,
        "run",
        ...o.idwrapArgs,
        "-o",
        "/dev/null",
        "-p",
        o.policies.empty,
        "--",
        "/bin/true",
      ], {
        env: o.env,
      });
      if (r.code === 0) startupMs.push(r.wallMs);
    }
    return await buildOnce(c);
  }, { deadline: o.deadline });
  Object.assign(rounds.unavailable, unavailable);
  return { ...rounds, configs, source: src, target: o.target, startupMs, training, trainingBySource };
}
