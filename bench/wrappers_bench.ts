/**
 * The end-to-end cost of each ID wrapper on a real, syscall-heavy workload,
 * against the same workload unwrapped, in one run. Each configuration is the
 * whole `./idwrap run -p POLICY -- CMD` (Deno start, policy and wrapper load,
 * supervision, exit), as a user pays it.
 *
 * The workload: `/bin/sh` running `tar -b 16 -cf OUT -C TREE .` PASSES times
 * over a generated tree of small files (same names, sizes and bytes every
 * run), archive on tmpfs when there is one. `-b 16` makes tar write 8 KiB
 * records: idwrap's write decoding faults on writes larger than 8 KiB (the
 * reader's buffer is 8 KiB, MAX_DATA 64 KiB), which fails the write with
 * EFAULT under any wrapper that examines `write` (seq).
 *
 * Rows: bare; idwrap with a policy without rules and wrappers (lifecycle
 * only: the paper's "WSS only"); policies/default.yaml (baseline); seq in
 * detect mode, trained first by record-mode runs of the same workload into a
 * private store ($IDWRAP_STORE); policies/imapd.yaml (its wrappers activate
 * only for imapd, so here: their declared calls notified, no instance);
 * baseline + seq. Every round runs every configuration once, in a rotated
 * order; medians across rounds are compared. The run's summary line gives
 * the notified calls; lines flagged (alerts, denials) are counted too.
 *
 * Options: --rounds R (default 5), --passes N (tar runs per workload,
 * default 30), --keep (leave the work directory).
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { keepResults, median, table } from "./_report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const IDWRAP = join(ROOT, "idwrap");
const decoder = new TextDecoder();

/** The tree: DIRS × SUBDIRS directories of FILES files each. */
const DIRS = 50, SUBDIRS = 4, FILES = 20;

const SEQ_POLICY = "version: 1\nname: bench-seq\nwrappers:\n  - name: seq\n";
const SEQ_RECORD_POLICY =
  "version: 1\nname: bench-seq-record\nwrappers:\n  - name: seq\n    settings: { mode: record }\n";
const EMPTY_POLICY = "version: 1\nname: bench-empty\n";

type CaseId = "bare" | "empty" | "default" | "seq" | "imapd" | "baselineSeq";

interface Case {
  id: CaseId;
  label: string;
  /** Policy files for `idwrap run -p`; none: run bare. */
  policies?: string[];
}

/** What one run printed and took. */
interface RunResult {
  wallMs: number;
  notified?: number;
  emulated?: number;
  denied?: number;
  /** Lines reporting alerts, denials or kills (not lifecycle, not audit). */
  flagged: number;
  /** seq's exit records: calls and mismatches summed over processes. */
  seqCalls?: number;
  seqMismatches?: number;
}

interface Sample extends RunResult {
  round: number;
  case: CaseId;
}

/** Writes the tree: deterministic names, sizes (40..4000 bytes) and content. */
async function makeTree(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0, bytes = 0;
  for (let d = 0; d < DIRS; d++) {
    for (let s = 0; s < SUBDIRS; s++) {
      const sub = join(dir, `d${String(d).padStart(2, "0")}`, `s${s}`);
      await Deno.mkdir(sub, { recursive: true });
      for (let f = 0; f < FILES; f++) {
        const text = `${d}-${s}-${f} `.repeat(20 + (d * 7 + s * 3 + f) % 200) + "\n";
        await Deno.writeTextFile(join(sub, `f${String(f).padStart(2, "0")}.txt`), text);
        files++;
        bytes += text.length;
      }
    }
  }
  return { files, bytes };
}

/** Runs a command to completion, stdout to /dev/null, stderr kept; fails on a non-zero exit. */
async function run(program: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  const t0 = performance.now();
  const out = await new Deno.Command(program, { args, env, stdin: "null", stdout: "null", stderr: "piped" }).output();
  const wallMs = performance.now() - t0;
  const stderr = decoder.decode(out.stderr);
  if (!out.success) throw new Error(`${program} ${args.join(" ")} exited ${out.code}:\n${stderr.slice(-2000)}`);
  const result: RunResult = { wallMs, flagged: 0 };
  let seqCalls = 0, seqMismatches = 0, seqSeen = false;
  for (const line of stderr.split("\n")) {
    const summary = line.match(/; (\d+) calls notified, (\d+) denied, (\d+) killed, (\d+) opens emulated$/);
    if (summary) {
      result.notified = Number(summary[1]);
      result.denied = Number(summary[2]);
      result.emulated = Number(summary[4]);
      continue;
    }
    const seq = line.match(/\*\*\* audit seq: seq detect program=\S+ calls=(\d+) mismatches=(\d+)/);
    if (seq) {
      seqSeen = true;
      seqCalls += Number(seq[1]);
      seqMismatches += Number(seq[2]);
      continue;
    }
    if (line === "" || line.startsWith("idwrap:") || / \+\+\+ /.test(line) || / \*\*\* audit /.test(line)) continue;
    result.flagged++;
  }
  if (seqSeen) Object.assign(result, { seqCalls, seqMismatches });
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      passes: { type: "string" },
      keep: { type: "boolean" },
      "save-run": { type: "boolean" },
    },
  });
  const rounds = Number(values.rounds ?? 5);
  const passes = Number(values.passes ?? 30);
  if (!(rounds >= 1 && passes >= 1)) throw new Error("--rounds and --passes must be positive numbers");

  let shm = false;
  try {
    shm = Deno.statSync("/dev/shm").isDirectory;
  } catch { /* no tmpfs there */ }
  const work = await scratchDir({ prefix: "idwrap-wrappers-bench-", ...(shm ? { dir: "/dev/shm" } : {}) });
  try {
    const tree = join(work, "tree");
    const { files, bytes } = await makeTree(tree);
    const policy = (name: string, text: string) => {
      const path = join(work, name);
      Deno.writeTextFileSync(path, text);
      return path;
    };
    const empty = policy("empty.yaml", EMPTY_POLICY);
    const seq = policy("seq.yaml", SEQ_POLICY);
    const seqRecord = policy("seq-record.yaml", SEQ_RECORD_POLICY);
    const defaultPolicy = join(ROOT, "policies", "default.yaml");
    const imapd = join(ROOT, "policies", "imapd.yaml");
    // A private store: seq's database and the audit records of every run stay here.
    const env = { IDWRAP_STORE: join(work, "store.kv") };

    const script = `i=0; while [ $i -lt ${passes} ]; do tar -b 16 -cf ${join(work, "out.tar")} -C ${tree} .; ` +
      `i=$((i+1)); done`;
    const workload = ["/bin/sh", "-c", script];
    const runCase = (c: Case) =>
      c.policies
        ? run(IDWRAP, ["run", ...c.policies.flatMap((p) => ["-p", p]), "--", ...workload], env)
        : run(workload[0], workload.slice(1), env);

    const CASES: Case[] = [
      { id: "bare", label: "bare (no idwrap)" },
      { id: "empty", label: "idwrap, no rules/wrappers (WSS only)", policies: [empty] },
      { id: "default", label: "default policy (baseline)", policies: [defaultPolicy] },
      { id: "seq", label: "seq, detect (trained)", policies: [seq] },
      { id: "imapd", label: "imapd policy (imapd + com)", policies: [imapd] },
      { id: "baselineSeq", label: "baseline + seq", policies: [defaultPolicy, seq] },
    ];

    // Train seq on the workload until a detect run of it is clean (it is deterministic: one run should do).
    const training: { recordRuns: number; recordMs: number[]; check: RunResult[] } = {
      recordRuns: 0,
      recordMs: [],
      check: [],
    };
    for (let attempt = 0; attempt < 4; attempt++) {
      const rec = await runCase({ id: "seq", label: "seq record", policies: [seqRecord] });
      training.recordRuns++;
      training.recordMs.push(rec.wallMs);
      const check = await runCase(CASES.find((c) => c.id === "seq")!);
      training.check.push(check);
      console.error(
        `seq training: record run ${attempt + 1} (${(rec.wallMs / 1000).toFixed(1)} s); detect check: ` +
          `${check.seqMismatches} mismatches in ${check.seqCalls} calls, ${check.flagged} lines flagged`,
      );
      if (check.seqMismatches === 0 && check.flagged === 0) break;
    }

    // idwrap's fixed cost, for reading the rows: the whole run around /bin/true.
    const startupMs: number[] = [];
    const samples: Sample[] = [];
    for (let round = 0; round < rounds; round++) {
      const order = CASES.map((_, i) => CASES[(i + round) % CASES.length]);
      for (const c of order) samples.push({ round, case: c.id, ...await runCase(c) });
      startupMs.push((await run(IDWRAP, ["run", "-p", empty, "--", "/bin/true"], env)).wallMs);
      console.error(`round ${round + 1}/${rounds} done`);
    }

    const bareMedian = median(samples.filter((s) => s.case === "bare").map((s) => s.wallMs));
    const startupMedian = median(startupMs);
    const opt = (xs: (number | undefined)[]) => {
      const defined = xs.filter((x): x is number => x !== undefined);
      return defined.length ? median(defined) : undefined;
    };
    const stats = CASES.map((c) => {
      const mine = samples.filter((s) => s.case === c.id);
      const wall = mine.map((s) => s.wallMs);
      const med = median(wall);
      return {
        id: c.id,
        label: c.label,
        policies: c.policies?.map((p) => p.startsWith(ROOT) ? p.slice(ROOT.length) : `(generated) ${p}`) ?? [],
        medianMs: med,
        minMs: Math.min(...wall),
        maxMs: Math.max(...wall),
        spreadPct: (Math.max(...wall) - Math.min(...wall)) / med * 100,
        penaltyPct: (med / bareMedian - 1) * 100,
        /** The penalty without idwrap's fixed cost (the /bin/true run): what the supervision of the workload adds. */
        netPenaltyPct: c.policies ? ((med - startupMedian) / bareMedian - 1) * 100 : 0,
        notified: opt(mine.map((s) => s.notified)),
        emulated: opt(mine.map((s) => s.emulated)),
        flagged: Math.max(...mine.map((s) => s.flagged)),
        seqMismatches: opt(mine.map((s) => s.seqMismatches)),
      };
    });

    const s = (ms: number) => (ms / 1000).toFixed(3);
    const rows = [[
      "configuration",
      "median (s)",
      "min",
      "max",
      "spread",
      "vs bare",
      "net of start-up",
      "notified calls",
      "opens emulated",
      "flagged",
    ]];
    for (const r of stats) {
      rows.push([
        r.label,
        s(r.medianMs),
        s(r.minMs),
        s(r.maxMs),
        `${r.spreadPct.toFixed(1)}%`,
        r.id === "bare" ? "—" : `${r.penaltyPct >= 0 ? "+" : ""}${r.penaltyPct.toFixed(1)}%`,
        r.id === "bare" ? "—" : `${r.netPenaltyPct >= 0 ? "+" : ""}${r.netPenaltyPct.toFixed(1)}%`,
        r.notified?.toString() ?? "—",
        r.emulated?.toString() ?? "—",
        r.id === "bare"
          ? "—"
          : String(r.flagged) + (r.seqMismatches !== undefined ? ` (${r.seqMismatches} mism.)` : ""),
      ]);
    }

    const kernel = Deno.osRelease();
    const load = Deno.loadavg();
    console.log(
      `wrappers end-to-end benchmark: kernel ${kernel}, ${navigator.hardwareConcurrency} CPUs, ` +
        `load ${load.map((l) => l.toFixed(2)).join(" ")}, ${rounds} rounds`,
    );
    console.log(
      `workload: sh loop of ${passes} × tar -b 16 -cf OUT over ${files} files (${(bytes / 1e6).toFixed(1)} MB)` +
        ` in ${shm ? "tmpfs (/dev/shm)" : work}; seq trained with ${training.recordRuns} record run(s)\n`,
    );
    console.log(table(rows));
    console.log(
      `\nspread = (max - min) / median; vs bare = median / bare median - 1; net of start-up: the same after ` +
        `subtracting idwrap's fixed cost (below); flagged = stderr lines with ` +
        `alerts or denials (seq: its mismatches, from its exit records).`,
    );
    console.log(
      `idwrap's fixed cost (idwrap run -p empty -- /bin/true, whole run): median ${s(startupMedian)} s` +
        ` (${s(Math.min(...startupMs))}–${s(Math.max(...startupMs))}).`,
    );

    await keepResults(ROOT, "wrappers", {
      loadavgAtEnd: load,
      config: { rounds, passes, files, bytes, tmpfs: shm, workload: workload.join(" ") },
      training,
      startupMs,
      cases: stats,
      samples,
    });
  } finally {
    if (!values.keep) await Deno.remove(work, { recursive: true }).catch(() => {});
    else console.error(`work directory kept: ${work}`);
  }
}

if (import.meta.main) await main();
