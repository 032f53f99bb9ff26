/**
 * Shared test helpers: run the real CLI (./idwrap) on real programs, read
 * its JSON traces, write throwaway policy files.
 *
 * @module
 */
import { scratchDir, scratchFile } from "./temp.ts";
import { fileURLToPath } from "node:url";
import type { HostEvent, SyscallEvent, WrapperReport } from "../host/events.ts";
import type { SummaryRecord } from "../host/cli/summary.ts";

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** The CLI shim. */
export const IDWRAP = `${ROOT}idwrap`;

// Build the launcher and the test programs once per test process.
const build = await new Deno.Command(`${ROOT}node_modules/.bin/deno`, {
  args: ["run", "--allow-all", `${ROOT}tools/build.ts`],
  stdout: "null",
}).output();
if (!build.success) throw new Error(`deno task build failed:\n${new TextDecoder().decode(build.stderr)}`);

/** Path of a compiled test program from tests/progs/. */
export function prog(name: string): string {
  return `${ROOT}build/tests/${name}`;
}

/** What a finished command printed and returned. */
export interface Ran {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Where and with what a command runs. */
export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /**
   * After this long the command's whole process group is killed and the test fails with what it printed so far: a hang
   * (a server a script left running keeps `idwrap run` serving it) fails its test instead of stalling the suite.
   * @default 600_000
   */
  timeoutMs?: number;
}

/** A wrapper store (Deno KV) private to this test process, unless a test names its own. */
export const TEST_STORE = `${await scratchDir({ prefix: "idwrap-store-" })}/store.kv`;

/**
 * Runs a command to completion, capturing its output. It runs in a session of its own (setsid), so that on timeout
 * everything it started is killed with it.
 */
export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<Ran> {
  // PWD follows cwd, as a shell would set it: programs (sh) read it.
  const env = { IDWRAP_STORE: TEST_STORE, ...(options.cwd ? { PWD: options.cwd } : {}), ...options.env };
  // Not a group leader (Deno's child), setsid(1) calls setsid() itself and execs: the child's pid is the group's id.
  const child = new Deno.Command("setsid", {
    args: [cmd, ...args],
    cwd: options.cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timeoutMs = options.timeoutMs ?? 600_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    const ran = { code: out.code, signal: out.signal, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (timedOut) {
      throw new Error(
        `${cmd} ${args.join(" ")}: still running after ${timeoutMs / 1000} s, killed with its process group\n` +
          `stdout (tail):\n${ran.stdout.slice(-4000)}\nstderr (tail):\n${ran.stderr.slice(-4000)}`,
      );
    }
    return ran;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `./idwrap ARGS…`. */
export function idwrap(args: string[], options: RunOptions = {}): Promise<Ran> {
  return run(IDWRAP, args, options);
}

/**
 * Runs `./idwrap ARGS…` as an ordinary user (setpriv, no supplementary groups), with a home, Deno cache and wrapper
 * store of its own in `home` (created, and given to the user).
 */
export async function idwrapAsUser(uid: number, home: string, args: string[], options: RunOptions = {}): Promise<Ran> {
  await Deno.mkdir(home, { recursive: true });
  await Deno.chown(home, uid, null);
  const env = [`HOME=${home}`, `DENO_DIR=${home}/deno`, `IDWRAP_STORE=${home}/store.kv`];
  return run("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", "env", ...env, IDWRAP, ...args], {
    ...options,
    env: { ...options.env, IDWRAP_STORE: `${home}/store.kv` },
  });
}

/** A traced run: the command's result, every event idwrap reported and (`run`) the tree's summary, its last line. */
export interface Traced extends Ran {
  events: HostEvent[];
  summary?: SummaryRecord;
}

/** Parses JSON-lines output. */
export function parseJsonLines(text: string): HostEvent[] {
  return jsonLines(text).filter((l): l is HostEvent => l.kind !== "summary");
}

/** The summary record `idwrap run --json` ends its report with, if any. */
export function parseSummary(text: string): SummaryRecord | undefined {
  return jsonLines(text).find((l): l is SummaryRecord => l.kind === "summary");
}

function jsonLines(text: string): (HostEvent | SummaryRecord)[] {
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

/**
 * Runs `idwrap <verb> --json -o FILE [flags] -- command…` and reads the events.
 *
 * @param verb "trace" or "run"
 * @param flags options before `--`
 * @param command the program and its arguments
 */
export async function traced(
  verb: "trace" | "run",
  flags: string[],
  command: string[],
  options: RunOptions | string = {},
): Promise<Traced> {
  const out = await scratchFile({ prefix: "idwrap-test-", suffix: ".jsonl" });
  try {
    const opts = typeof options === "string" ? { cwd: options } : options;
    const ran = await idwrap([verb, "--json", "-o", out, ...flags, "--", ...command], opts);
    const text = await Deno.readTextFile(out);
    const summary = parseSummary(text);
    return { ...ran, events: parseJsonLines(text), ...(summary ? { summary } : {}) };
  } finally {
    await Deno.remove(out);
  }
}

/** Only the wrappers' reports (alert, audit, fault, log), optionally of one kind. */
export function reports(events: HostEvent[], kind?: WrapperReport["kind"]): WrapperReport[] {
  return events.filter((e): e is WrapperReport =>
    (e.kind === "alert" || e.kind === "audit" || e.kind === "fault" || e.kind === "log") && (!kind || e.kind === kind)
  );
}

/** Only the syscall events, optionally of one phase. */
export function calls(events: HostEvent[], phase?: "pre" | "post"): SyscallEvent[] {
  return events.filter((e): e is SyscallEvent => e.kind === "syscall" && (!phase || e.phase === phase));
}

/** Writes a policy file into a fresh temp dir and returns its path. */
export async function writePolicy(yaml: string): Promise<string> {
  const dir = await scratchDir({ prefix: "idwrap-policy-" });
  const file = `${dir}/policy.yaml`;
  await Deno.writeTextFile(file, yaml);
  return file;
}

/** Creates a system user for a test if it does not exist (tests run as root); returns its uid. */
export async function ensureUser(name: string): Promise<number> {
  const id = await run("id", ["-u", name]);
  if (id.code !== 0) {
    const add = await run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
    if (add.code !== 0) throw new Error(`useradd ${name} failed: ${add.stderr}`);
  }
  return Number((await run("id", ["-u", name])).stdout.trim());
}

/** Whether a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether a path exists now, not followed (a dangling symbolic link exists). */
export function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
