/**
 * What the table benchmark's workloads share: the configurations (bare,
 * idwrap under policies, strace -f, Linux audit), process trees started and
 * stopped whatever happens, cleanup on Ctrl-C, statistics, the parsing of
 * idwrap's report.
 *
 * @module
 */
import type { AuditPeer } from "./audit.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, freeRange } from "../../tests/loopback.ts";

export { freePort, freeRange };

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const IDWRAP = join(ROOT, "idwrap");
/** The policy `idwrap run` applies without --policy (issue 8's default policy). */
export const DEFAULT_POLICY = join(ROOT, "policies", "default.yaml");
export const decoder = new TextDecoder();

// ------------------------------------------------------------------------------------------ cleanup

type Cleanup = () => void | Promise<void>;
const cleanups = new Map<number, Cleanup>();
let nextCleanup = 0;

/** Registers something to undo on exit, failure or Ctrl-C; returns its handle for `undo`. */
export function onCleanup(fn: Cleanup): number {
  cleanups.set(++nextCleanup, fn);
  return nextCleanup;
}

/** Runs one registered cleanup now (and forgets it). */
export async function undo(handle: number): Promise<void> {
  const fn = cleanups.get(handle);
  cleanups.delete(handle);
  if (fn) await fn();
}

/** Runs every registered cleanup, latest first; never throws. */
export async function cleanupAll(): Promise<void> {
  for (const h of [...cleanups.keys()].reverse()) {
    try {
      await undo(h);
    } catch (e) {
      console.error(`bench: cleanup failed: ${(e as Error).message}`);
    }
  }
}

/** On SIGINT/SIGTERM: clean up, then exit 130. */
export function cleanupOnSignals(): void {
  let busy = false;
  const handler = async () => {
    if (busy) return;
    busy = true;
    console.error("\nbench: interrupted; stopping servers, deleting audit rules, removing temp files");
    await cleanupAll();
    Deno.exit(130);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) Deno.addSignalListener(sig, handler);
}

// ------------------------------------------------------------------------------------------ processes

/** Children of each pid, from /proc/<pid>/stat. */
function childrenMap(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = map.get(ppid) ?? [];
      list.push(Number(e.name));
      map.set(ppid, list);
    } catch { /* gone */ }
  }
  return map;
}

/** A pid and all its descendants, parents first. */
export function processTree(pid: number): number[] {
  const map = childrenMap();
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of map.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

/** SIGTERM to a tree (the root first, so wrappers forward it), SIGKILL to what is left after `graceMs`. */
export async function killTree(pid: number, graceMs = 5000): Promise<void> {
  const tree = processTree(pid);
  for (const p of tree) signal(p, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (tree.every((p) => !alive(p))) return;
    await sleep(50);
  }
  for (const p of [...tree, ...processTree(pid)]) signal(p, "SIGKILL");
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a finished command did. */
export interface Finished {
  code: number;
  wallMs: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion with a time limit, its tree killed on timeout or
 * interruption. stdout is kept only when asked (a build's output is not).
 */
export async function runCommand(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; stdout?: boolean } = {},
): Promise<Finished & { timedOut: boolean }> {
  const t0 = performance.now();
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: opts.stdout ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  const handle = onCleanup(() => killTree(child.pid, 2000));
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      killTree(child.pid, 2000);
    }, opts.timeoutMs)
    : undefined;
  try {
    const out = await child.output();
    const wallMs = performance.now() - t0;
    return {
      code: out.code,
      wallMs,
      stdout: opts.stdout ? decoder.decode(out.stdout) : "",
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
    cleanups.delete(handle);
  }
}

/** A long-running process (a server under a configuration), stopped with its whole tree. */
export class Service {
  #stderr: Promise<string>;
  #stdout: Promise<string>;
  #handle: number;
  private constructor(readonly child: Deno.ChildProcess) {
    this.#stderr = new Response(child.stderr).text();
    this.#stdout = new Response(child.stdout).text();
    this.#handle = onCleanup(() => killTree(child.pid, 2000));
  }

  static spawn(args: string[], env?: Record<string, string>): Service {
    const child = new Deno.Command(args[0], {
      args: args.slice(1),
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Service(child);
  }

  /** SIGTERM to the tree, SIGKILL after the grace time; the exit code and what it printed. */
  async stop(graceMs = 10000): Promise<{ code: number; stderr: string; stdout: string }> {
    await killTree(this.child.pid, graceMs);
    const status = await this.child.status;
    cleanups.delete(this.#handle);
    return { code: status.code, stderr: await this.#stderr, stdout: await this.#stdout };
  }

  /** Whether the root process is still running (it has not been reaped). */
  async exited(): Promise<boolean> {
    return await Promise.race([this.child.status.then(() => true), sleep(0).then(() => false)]);
  }

  async stderrText(): Promise<string> {
    return await this.#stderr;
  }
}

/** Waits (bounded) until something accepts TCP connections on 127.0.0.1:port. */
export async function waitListening(port: number, service: Service, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await service.exited()) throw new Error(`server exited before listening:\n${await service.stderrText()}`);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms (the server is still running)`);
}

// ------------------------------------------------------------------------------------------ configurations

/** How a workload's subject (the build's make, a server) is run. */
export type ConfigKind = "bare" | "idwrap" | "strace" | "audit";

export interface Config {
  id: string;
  label: string;
  kind: ConfigKind;
  /** For idwrap: the policy files. */
  policies?: string[];
  /** The paper's row this one corresponds to, if any. */
  paperRow?: string;
  /** seq in record mode (its database grows; not a detection row). */
  record?: boolean;
  /** For idwrap: run this idwrap instead of the checkout's (--compare). */
  idwrap?: string;
}

/** What every workload is given. */
export interface WorkloadOptions {
  work: string;
  rounds: number;
  env: Record<string, string>;
  audit?: AuditPeer;
  auditDir: string;
  auditUnavailable?: string;
  /** Passed to every `idwrap run` (--source). */
  idwrapArgs: string[];
  /** No new round starts past it (after two rounds). */
  deadline: number;
  /** At most this many record + detect-check pairs to train seq. */
  trainingRounds: number;
  /** Another idwrap (an older checkout's) whose rows run beside this one's, for a before/after in one run. */
  compare?: string;
}

/**
 * The configurations to measure: with `compare`, each idwrap row twice, the second run by the other idwrap
 * (rotated in the same rounds, so both see the same machine).
 */
export function withCompared(configs: Config[], compare?: string): Config[] {
  if (!compare) return configs;
  return configs.flatMap((c) =>
    c.kind === "idwrap" && !c.record
      ? [c, { ...c, id: `${c.id}Compared`, label: `${c.label} [${compare}]`, idwrap: compare, paperRow: undefined }]
      : [c]
  );
}

/** The loginuid the audit configuration gives the subject, so a rule can select its tree (auid=…). */
export const AUDIT_AUID = 3133700;

/**
 * The command line that runs `command` under a configuration. idwrap writes its report
 * (text) to `report`; strace writes its trace to /dev/null; the audit configuration sets
 * the tree's loginuid (the rule is added by the audit peer).
 */
export function wrapCommand(config: Config, command: string[], report: string, idwrapArgs: string[] = []): string[] {
  switch (config.kind) {
    case "bare":
      return command;
    case "idwrap":
      return [
        config.idwrap ?? IDWRAP,
        "run",
        ...idwrapArgs,
        "-o",
        report,
        ...(config.policies ?? []).flatMap((p) => ["-p", p]),
        "--",
        ...command,
      ];
    case "strace":
      return ["strace", "-f", "-qq", "-o", "/dev/null", "--", ...command];
    case "audit":
      return ["/bin/sh", "-c", `echo ${AUDIT_AUID} > /proc/self/loginuid && exec "$@"`, "sh", ...command];
  }
}

/** What idwrap's text report said. */
export interface IdwrapReport {
  notified?: number;
  denied?: number;
  emulated?: number;
  /** Lines with alerts, denials, kills or faults (not lifecycle, not audit records). */
  flagged: number;
  flaggedSample: string[];
  seqCalls?: number;
  seqMismatches?: number;
  seqMaxLfc?: number;
  seqNew?: number;
}

/** Parses idwrap's text report (the -o file, and its stderr for the summary line). */
export function parseReport(text: string): IdwrapReport {
  const r: IdwrapReport = { flagged: 0, flaggedSample: [] };
  let seqSeen = false, calls = 0, mism = 0, maxLfc = 0, added = 0;
  for (const line of text.split("\n")) {
    const summary = line.match(/; (\d+) calls notified, (\d+) denied, (\d+) killed, (\d+) opens emulated/);
    if (summary) {
      r.notified = Number(summary[1]);
      r.denied = Number(summary[2]);
      r.emulated = Number(summary[4]);
      continue;
    }
    const det = line.match(/\*\*\* audit seq: seq detect program=\S+ calls=(\d+) mismatches=(\d+)(?: max_lfc=(\d+))?/);
    if (det) {
      seqSeen = true;
      calls += Number(det[1]);
      mism += Number(det[2]);
      maxLfc = Math.max(maxLfc, Number(det[3] ?? 0));
      continue;
    }
    const rec = line.match(/\*\*\* audit seq: seq record program=\S+ calls=(\d+) new=(\d+)/);
    if (rec) {
      seqSeen = true;
      calls += Number(rec[1]);
      added += Number(rec[2]);
      continue;
    }
    if (line === "" || line.startsWith("idwrap:") || / \+\+\+ /.test(line) || / \*\*\* audit /.test(line)) continue;
    r.flagged++;
    if (r.flaggedSample.length < 5) r.flaggedSample.push(line.slice(0, 300));
  }
  if (seqSeen) Object.assign(r, { seqCalls: calls, seqMismatches: mism, seqMaxLfc: maxLfc, seqNew: added });
  return r;
}

export async function readReport(path: string, stderr = ""): Promise<IdwrapReport> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch { /* no report */ }
  return parseReport(text + "\n" + stderr);
}

// ------------------------------------------------------------------------------------------ statistics

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function stdev(xs: number[]): number {
  if (xs.length < 2) return 0;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

/** Median, min, max, σ and spread ((max − min) / median) of a metric over the runs. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  sd: number;
  spreadPct: number;
  n: number;
}

export function stat(xs: number[]): Stat | undefined {
  if (!xs.length) return undefined;
  const med = median(xs);
  return {
    median: med,
    min: Math.min(...xs),
    max: Math.max(...xs),
    sd: stdev(xs),
    spreadPct: med ? (Math.max(...xs) - Math.min(...xs)) / Math.abs(med) * 100 : 0,
    n: xs.length,
  };
}

/**
 * The penalty against bare, in percent, for a metric where larger is worse
 * (times, latencies) or better (throughputs), from the medians of the same run.
 */
export function penalty(value: number, bare: number, higherIsBetter = false): number {
  return higherIsBetter ? (1 - value / bare) * 100 : (value / bare - 1) * 100;
}

/** A deterministic pseudo-random sequence (LCG), for file sets and request orders. */
/** WebStone 2's file classes: size in bytes, share of requests (percent). */
export const WEBSTONE_CLASSES: [number, number][] = [[500, 35], [5000, 50], [50000, 14], [500000, 0.9], [5000000, 0.1]];

/** A server's fixed file set, and the fixed order of requests over it, drawn once with the classes' shares. */
export interface FileSet {
  /** The request order: file names (with `prefix`). */
  order: string[];
  summary: { files: number; bytes: number; classes: [number, number][] };
}

/**
 * Writes `perClass` files of each WebStone class into `dir` (deterministic content from `seed`) and draws an order
 * of `orderLength` requests over them (from `orderSeed`).
 */
export async function webstoneFiles(
  dir: string,
  o: { perClass: number; orderLength: number; seed: number; orderSeed: number; ext: string; prefix: string },
): Promise<FileSet> {
  const names: string[][] = [];
  let bytes = 0;
  for (const [ci, [size]] of WEBSTONE_CLASSES.entries()) {
    names.push([]);
    for (let f = 0; f < o.perClass; f++) {
      const name = `c${ci}-${f}.${o.ext}`;
      await writeFileOfSize(join(dir, name), size, o.seed + ci * 100 + f);
      names[ci].push(o.prefix + name);
      bytes += size;
    }
  }
  const next = lcg(o.orderSeed);
  const order: string[] = [];
  for (let i = 0; i < o.orderLength; i++) {
    let x = next() * 100, ci = 0;
    while (ci < WEBSTONE_CLASSES.length - 1 && x >= WEBSTONE_CLASSES[ci][1]) x -= WEBSTONE_CLASSES[ci++][1];
    order.push(names[ci][Math.floor(next() * o.perClass)]);
  }
  return { order, summary: { files: WEBSTONE_CLASSES.length * o.perClass, bytes, classes: WEBSTONE_CLASSES } };
}

export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A file of `size` deterministic bytes. */
export async function writeFileOfSize(path: string, size: number, seed: number): Promise<void> {
  const next = lcg(seed);
  const line = new TextEncoder().encode(
    Array.from({ length: 63 }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join("") + "\n",
  );
  const buf = new Uint8Array(size);
  for (let i = 0; i < size; i += line.length) buf.set(line.subarray(0, Math.min(line.length, size - i)), i);
  await Deno.writeFile(path, buf);
}

/** A directory readable by everyone (servers drop privileges; Deno makes 0700 temp dirs). */
export async function publicDir(path: string): Promise<string> {
  await Deno.mkdir(path, { recursive: true });
  await Deno.chmod(path, 0o755);
  return path;
}

export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  console.error(`[${t}] ${msg}`);
}
