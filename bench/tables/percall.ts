/**
 * Where a notified call's time goes under idwrap's seccomp source, measured
 * inside a tight loop of getppid (bench/c/loop.c: its own clock, so process
 * start-up and idwrap's handshake are not counted), under:
 *
 * - no idwrap (the plain system call);
 * - a policy that observes getppid (notified, decoded, reported: the round
 *   trip through the supervisor thread, no wrapper);
 * - the noop wrapper (the same plus one WebAssembly hook call);
 * - seq in detect mode, trained on this loop first (one hook call with the
 *   sequence lookup and locality frame);
 * - seq in record mode.
 *
 * And per process: `idwrap run -- /bin/true` under the empty policy, the noop
 * wrapper and seq (instance creation, seq's database load from Deno KV at
 * init and its store at exit), against bare /bin/true.
 *
 * Usable alone: `deno run -A bench/tables/percall.ts [--calls N] [--rounds R]`.
 *
 * @module
 */
import { scratchDir } from "../../tests/temp.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { log } from "./log.ts";
import { IDWRAP, ROOT } from "./paths.ts";
import { runCommand } from "./processes.ts";
import { median } from "./stats.ts";

const LOOP = join(ROOT, "build", "bench", "loop");

export interface PerCallResult {
  calls: number;
  rounds: number;
  /** Case → median ns per call. */
  perCallNs: Record<string, number>;
  /** Case → median ms per `idwrap run -- /bin/true` process (whole run). */
  perRunMs: Record<string, number>;
  /** Case → median µs per process of a shell loop of fork + exec /bin/true + exit (idwrap's start-up excluded). */
  perProcessUs: Record<string, number>;
  processes: number;
  /** Cases that could not run, and why. */
  errors: Record<string, string>;
  labels: Record<string, string>;
}

async function ensureLoop(): Promise<void> {
  try {
    Deno.statSync(LOOP);
    return;
  } catch { /* build it */ }
  await Deno.mkdir(join(ROOT, "build", "bench"), { recursive: true });
  const r = await runCommand([Deno.env.get("CC") ?? "cc", "-O2", "-o", LOOP, join(ROOT, "bench", "c", "loop.c")]);
  if (r.code !== 0) throw new Error(`cannot compile bench/c/loop.c: ${r.stderr}`);
}

export async function perCall(work: string, calls = 20000, rounds = 3): Promise<PerCallResult> {
  await ensureLoop();
  const env = { IDWRAP_STORE: join(work, "percall.kv") };
  const pol = (name: string, text: string) => {
    const p = join(work, `percall-${name}.yaml`);
    Deno.writeTextFileSync(p, text);
    return p;
  };
  const policies = {
    empty: pol("empty", "version: 1\nname: pc-empty\n"),
    observe: pol("observe", "version: 1\nname: pc-observe\nobserve: [getppid]\n"),
    noop: pol("noop", "version: 1\nname: pc-noop\nwrappers:\n  - name: noop\n"),
    seq: pol("seq", "version: 1\nname: pc-seq\nwrappers:\n  - name: seq\n"),
    seqRecord: pol("seqrec", "version: 1\nname: pc-seqrec\nwrappers:\n  - name: seq\n    settings: { mode: record }\n"),
  };
  const labels: Record<string, string> = {
    plain: "getppid, no idwrap",
    observe: "notified + reported (observe: [getppid]), no wrapper",
    noop: "notified + noop wrapper (one WASM hook call)",
    seq: "notified + seq detect (trained)",
    seqRecord: "notified + seq record",
  };
  const out = join(work, "percall.out");
  const loopOnce = async (policy?: string): Promise<number> => {
    const cmd = [LOOP, String(calls), "notified", out];
    const args = policy ? [IDWRAP, "run", "-o", "/dev/null", "-p", policy, "--", ...cmd] : cmd;
    const r = await runCommand(args, { env, timeoutMs: 300000 });
    if (r.code !== 0) throw new Error(`${args.join(" ")} exited ${r.code}: ${r.stderr.slice(-500)}`);
    return Number(Deno.readTextFileSync(out).trim()) / calls;
  };
  // seq's database for the loop: one record run (the loop is deterministic). A case that cannot run is left out.
  const errors: Record<string, string> = {};
  await loopOnce(policies.seqRecord).catch((e) => errors.seq = errors.seqRecord = (e as Error).message);
  const cases: [string, string | undefined][] = [
    ["plain", undefined],
    ["observe", policies.observe],
    ["noop", policies.noop],
    ["seq", policies.seq],
    ["seqRecord", policies.seqRecord],
  ];
  const samples: Record<string, number[]> = {};
  const runCases: [string, string | undefined][] = [
    ["bare", undefined],
    ["empty", policies.empty],
    ["noop", policies.noop],
    ["seq", policies.seq],
  ];
  const runSamples: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [id, p] of cases.map((_, i) => cases[(i + r) % cases.length])) {
      if (errors[id]) continue;
      try {
        (samples[id] ??= []).push(await loopOnce(p));
      } catch (e) {
        errors[id] = (e as Error).message;
      }
    }
    for (const [id, p] of runCases) {
      const args = p ? [IDWRAP, "run", "-o", "/dev/null", "-p", p, "--", "/bin/true"] : ["/bin/true"];
      const res = await runCommand(args, { env });
      if (res.code === 0) (runSamples[id] ??= []).push(res.wallMs);
    }
  }
  // Per process: a shell loop of PROCS × /bin/true, bare and under the empty policy (lifecycle calls only) and
  // seq; idwrap's own start-up (the /bin/true run above) subtracted.
  const PROCS = 300;
  const loopScript = `i=0; while [ $i -lt ${PROCS} ]; do /bin/true; i=$((i+1)); done`;
  const procSamples: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [id, p] of runCases) {
      const sh = ["/bin/sh", "-c", loopScript];
      const args = p ? [IDWRAP, "run", "-o", "/dev/null", "-p", p, "--", ...sh] : sh;
      const res = await runCommand(args, { env });
      if (res.code === 0) (procSamples[id] ??= []).push(res.wallMs);
    }
  }
  const perCallNs = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const perRunMs = Object.fromEntries(Object.entries(runSamples).map(([k, v]) => [k, median(v)]));
  const perProcessUs = Object.fromEntries(
    Object.entries(procSamples).map((
      [k, v],
    ) => [k, (median(v) - (k === "bare" ? 0 : perRunMs[k] ?? 0)) / PROCS * 1000]),
  );
  return { calls, rounds, perCallNs, perRunMs, labels, perProcessUs, processes: PROCS, errors };
}

export function perCallTable(p: PerCallResult): string {
  const lines = [
    "| case | ns per call (median) | added vs previous row |",
    "| --- | ---: | ---: |",
  ];
  let prev: number | undefined;
  for (const id of ["plain", "observe", "noop", "seq", "seqRecord"]) {
    const v = p.perCallNs[id];
    if (v === undefined) {
      if (p.errors[id]) {
        lines.push(`| ${p.labels[id]} | unavailable: ${p.errors[id].split("\n").at(-1)?.slice(0, 120)} | |`);
      }
      continue;
    }
    const d = prev === undefined ? 0 : v - prev;
    const added = prev === undefined || id === "seqRecord" ? "—" : `${d >= 0 ? "+" : ""}${d.toFixed(0)}`;
    lines.push(`| ${p.labels[id]} | ${v.toFixed(0)} | ${added} |`);
    if (id !== "seqRecord") prev = v;
  }
  lines.push("");
  lines.push("| whole `idwrap run -- /bin/true` | ms (median) |");
  lines.push("| --- | ---: |");
  const runLabels: Record<string, string> = {
    bare: "/bin/true alone",
    empty: "empty policy (WSS only)",
    noop: "noop wrapper (one instance)",
    seq: "seq detect (instance + database load/store in Deno KV)",
  };
  for (const [id, label] of Object.entries(runLabels)) {
    if (p.perRunMs[id] !== undefined) lines.push(`| ${label} | ${p.perRunMs[id].toFixed(1)} |`);
  }
  lines.push("");
  lines.push(
    `| per process: sh loop of ${p.processes} × /bin/true (fork, exec, exit), start-up subtracted | µs per process |`,
  );
  lines.push("| --- | ---: |");
  for (const [id, label] of Object.entries(runLabels)) {
    if (p.perProcessUs[id] !== undefined) {
      lines.push(`| ${id === "bare" ? "bare" : label} | ${p.perProcessUs[id].toFixed(0)} |`);
    }
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { calls: { type: "string" }, rounds: { type: "string" } } });
  const work = await scratchDir({ prefix: "idwrap-percall-" });
  try {
    const r = await perCall(work, Number(values.calls ?? 20000), Number(values.rounds ?? 3));
    log("per-call profile done");
    console.log(perCallTable(r));
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
